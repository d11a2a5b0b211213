use std::os::fd::AsRawFd;

use super::Global;
use crate::container::{self, Console};
use crate::error::Result;

#[derive(clap::Args)]
#[group(id = "run_args")]
pub struct Args {
    #[command(flatten)]
    pub create: super::create::Args,
    /// Return once the container has started, instead of waiting for it.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits (runc's --keep).
    #[arg(long)]
    pub keep: bool,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let id = a.create.id.clone();
    if a.detach {
        container::create(&g.root, a.create.options(g, None))?;
        return container::start(&g.root, &id).map(|_| 0);
    }
    let signals = crate::foreground::block_signals()?;
    let spec_terminal = crate::spec::load(
        &std::fs::canonicalize(&a.create.bundle).unwrap_or(a.create.bundle.clone()),
    )
    .ok()
    .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
    .unwrap_or(false);
    // With a terminal and no console socket of the caller's, we hold the pty master ourselves.
    let (console, ours) = if spec_terminal && a.create.console_socket.is_none() {
        let (x, y) = crate::console::local_pair()?;
        (Some(Console::Fd(y)), Some(x))
    } else {
        (None, None)
    };
    let st = container::create(&g.root, a.create.options(g, console))?;
    let pty = match ours {
        Some(s) => Some(crate::console::recv_fd(s.as_raw_fd())?),
        None => None,
    };
    let result = container::start(&g.root, &id).and_then(|_| {
        crate::foreground::supervise(nix::unistd::Pid::from_raw(st.pid), pty, signals)
    });
    if !a.keep {
        if let Err(e) = container::delete(&g.root, &id, true) {
            crate::log::warn(&format!("delete {id} after run: {e}"));
        }
    }
    result
}
