//! The shim is a child subreaper: the container's init and every exec are re-parented to it when
//! husk's intermediate processes exit. One thread reaps every child on SIGCHLD and keeps the exit
//! statuses until whoever owns the pid takes them, so a husk command the shim waits for and a
//! container process it tracks can never steal each other's exit.

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use husk::error::{Context, Result};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

#[derive(Clone, Copy, Debug)]
pub struct Exit {
    /// The code the process exited with, or 128 + the signal that killed it.
    pub status: u32,
    pub at: SystemTime,
}

pub struct Reaper {
    exits: Mutex<HashMap<i32, Exit>>,
    cv: Condvar,
}

/// Blocks SIGCHLD in the calling thread (call it before any other thread exists, so every
/// thread inherits the mask), becomes a subreaper, and starts the reaping thread. The receiver
/// gets the pid of every child reaped.
pub fn start() -> Result<(Arc<Reaper>, Receiver<i32>)> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().ctx(|| "blocking SIGCHLD")?;
    nix::sys::prctl::set_child_subreaper(true).ctx(|| "prctl(PR_SET_CHILD_SUBREAPER)")?;
    let sfd = SignalFd::new(&mask).ctx(|| "signalfd for SIGCHLD")?;
    let reaper = Arc::new(Reaper {
        exits: Mutex::new(HashMap::new()),
        cv: Condvar::new(),
    });
    let (tx, rx) = channel();
    let r = reaper.clone();
    std::thread::Builder::new()
        .name("reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || r.run(sfd, tx))
        .ctx(|| "starting the reaper thread")?;
    Ok((reaper, rx))
}

impl Reaper {
    fn run(&self, sfd: SignalFd, tx: Sender<i32>) {
        loop {
            self.reap_all(&tx);
            if sfd.read_signal().is_err() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    fn reap_all(&self, tx: &Sender<i32>) {
        loop {
            let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code as u32),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as u32),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            let exit = Exit {
                status,
                at: SystemTime::now(),
            };
            {
                let mut exits = self.exits.lock().unwrap();
                // Exits nobody claims (a container's orphans) must not pile up for ever.
                if exits.len() > 1024 {
                    let old = SystemTime::now() - Duration::from_secs(60);
                    exits.retain(|_, e| e.at > old);
                }
                exits.insert(pid.as_raw(), exit);
            }
            self.cv.notify_all();
            let _ = tx.send(pid.as_raw());
        }
    }

    /// The exit of `pid` if it has been reaped, removing it.
    pub fn take(&self, pid: i32) -> Option<Exit> {
        self.exits.lock().unwrap().remove(&pid)
    }

    /// Blocks until `pid`, a child this thread spawned, has exited.
    pub fn wait(&self, pid: Pid) -> Exit {
        let mut exits = self.exits.lock().unwrap();
        loop {
            if let Some(e) = exits.remove(&pid.as_raw()) {
                return e;
            }
            exits = self.cv.wait(exits).unwrap();
        }
    }
}
