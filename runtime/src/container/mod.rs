//! The lifecycle verbs of runtime-spec "Operations", one file each.

mod checkpoint;
mod create;
mod delete;
mod exec;
mod kill;
mod start;

pub use checkpoint::{
    checkpoint, criu_action, restore, CheckpointOptions, CriuOptions, RestoreOptions,
};
pub use create::{create, Console, CreateOptions};
pub use delete::delete;
pub use exec::{exec, ExecOptions};
pub use kill::{kill, parse_signal};
pub use start::start;

use std::path::Path;
use std::time::{Duration, Instant};

use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::error::{Error, Result};
use crate::state::{ContainerDir, State, Status, CONFIG_FILE};

/// A container looked up by id, its directory locked.
pub struct Container {
    pub dir: ContainerDir,
    pub state: State,
}

impl Container {
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        let dir = ContainerDir::open(root, id)?;
        let state = dir.load()?;
        Ok(Container { dir, state })
    }

    pub fn status(&self) -> Status {
        self.state.status(&self.dir.path)
    }

    /// The config as it was at create (the bundle may have changed since).
    pub fn spec(&self) -> Result<Spec> {
        let p = self.dir.path.join(CONFIG_FILE);
        let bytes =
            std::fs::read(&p).map_err(|e| Error::io(format!("read {}", p.display()), &e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::msg(format!("parse {}: {e}", p.display())))
            .and_then(crate::spec::from_value)
            .map_err(|e| e.context(p.display()))
    }
}

/// Waits until a process that is not our child has died (a zombie counts: its parent may
/// reap it late).
pub fn wait_gone(pid: Pid, start: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_micros(100);
    loop {
        match crate::state::proc_start_time(pid) {
            Some((st, s)) if s == start && st != 'Z' && st != 'X' => {}
            _ => return true,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

/// Runs one phase of a verb: on failure its name leads the error; with --debug its duration
/// is logged.
pub fn phase<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t = Instant::now();
    let r = f().map_err(|e| e.context(name));
    if crate::log::enabled(crate::log::Level::Debug) {
        crate::log::debug(&format!(
            "phase {name}: {:?}{}",
            t.elapsed(),
            if r.is_err() { " (failed)" } else { "" }
        ));
    }
    fault_point(name);
    r
}

/// Fault injection for the reliability and security tests: with HUSK_FAULT_STOP_AFTER=NAME
/// the process stops itself here, for the test to act while it is stopped.
pub fn fault_point(name: &str) {
    use nix::sys::signal::{raise, SigSet, Signal};
    if std::env::var_os("HUSK_FAULT_STOP_AFTER").is_none_or(|p| p != name) {
        return;
    }
    if nix::unistd::getpid().as_raw() != 1 {
        let _ = raise(Signal::SIGSTOP);
        return;
    }
    // A pid namespace's init ignores the SIGSTOP it sends itself: it waits for SIGCONT
    // instead, under a name the tests look for.
    let mut cont = SigSet::empty();
    cont.add(Signal::SIGCONT);
    let _ = cont.thread_block();
    let name = nix::sys::prctl::get_name();
    let _ = nix::sys::prctl::set_name(c"husk:stopped");
    let _ = cont.wait();
    if let Ok(name) = name {
        let _ = nix::sys::prctl::set_name(&name);
    }
    let _ = cont.thread_unblock();
}
