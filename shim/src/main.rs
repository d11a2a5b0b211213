//! containerd-shim-husk-v2: containerd's runtime v2 shim (`io.containerd.husk.v2`) for husk.
//!
//! containerd runs this binary three ways: `start` spawns the long-lived daemon and prints its
//! ttrpc address, `delete` cleans up after a daemon that is gone, and with no verb it is the
//! daemon, serving the task API on the socket `start` bound.

mod events;
mod flags;
mod metrics;
mod mounts;
mod oom;
mod options;
mod reaper;
mod runtime;
mod service;
mod start;
mod stdio;

use std::collections::HashMap;
use std::sync::Arc;

use husk::error::{Context, Error, Result};

fn main() {
    let flags = match flags::Flags::parse(std::env::args().skip(1)) {
        Ok(f) => f,
        Err(e) => fail(e),
    };
    if flags.version {
        println!(
            "containerd-shim-husk-v2:\n  Version: {}",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    let done = match flags.action.as_deref() {
        Some("start") => start::start(&flags),
        Some("delete") => start::delete(&flags),
        None => serve(&flags),
        Some(other) => Err(Error::msg(format!(
            "unknown action {other:?}: expected start, delete or none"
        ))),
    };
    if let Err(e) = done {
        fail(e)
    }
}

fn fail(e: Error) -> ! {
    eprintln!("containerd-shim-husk-v2: {e}");
    std::process::exit(1)
}

/// The daemon: the task service on the inherited socket until Shutdown.
fn serve(flags: &flags::Flags) -> Result<()> {
    // First, while this is the only thread: every later thread inherits SIGCHLD blocked.
    let (reaper, exits) = reaper::start()?;
    let fd: i32 = std::env::var(start::LISTEN_FD_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let socket = nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(fd)
        .ok()
        .and_then(|a| a.path().map(|p| p.to_path_buf()));
    let publisher = Arc::new(events::Publisher::start(events::Target {
        namespace: flags.namespace.clone(),
        ttrpc_address: std::env::var("TTRPC_ADDRESS")
            .ok()
            .filter(|a| !a.is_empty()),
        publish_binary: flags.publish_binary.clone(),
        containerd_address: flags.address.clone(),
    }));
    let (shutdown_tx, shutdown_rx) = std::sync::mpsc::channel();
    let service = Arc::new(service::Service::new(
        reaper,
        publisher,
        flags.namespace.clone(),
        shutdown_tx,
    ));
    let s = service.clone();
    std::thread::Builder::new()
        .name("exits".into())
        .stack_size(256 * 1024)
        .spawn(move || s.dispatch_exits(exits))
        .ctx(|| "starting the exit dispatcher")?;
    // containerd 1.6/1.7 call containerd.task.v2.Task; 2.x may call v3: same messages.
    let v3 = containerd_shim_protos::create_task(service.clone());
    let v2: HashMap<_, _> = containerd_shim_protos::create_task(service)
        .into_iter()
        .map(|(k, v)| (k.replace("containerd.task.v3.", "containerd.task.v2."), v))
        .collect();
    // containerd keeps one connection; two idle workers suffice, more start when Waits block.
    let mut server = ttrpc::Server::new()
        .set_thread_count_min(1)
        .set_thread_count_default(2)
        .set_thread_count_max(3)
        .add_listener(fd)
        .map_err(|e| Error::msg(format!("ttrpc listener on fd {fd}: {e}")))?
        .register_service(v3)
        .register_service(v2);
    server
        .start()
        .map_err(|e| Error::msg(format!("starting the ttrpc server: {e}")))?;
    let _ = shutdown_rx.recv();
    // Let the Shutdown reply reach containerd before the socket goes.
    std::thread::sleep(std::time::Duration::from_millis(20));
    if let Some(p) = socket {
        let _ = std::fs::remove_file(p);
    }
    std::process::exit(0)
}
