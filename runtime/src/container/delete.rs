//! `delete`: stops what is left of the container, runs poststop hooks, and removes its cgroup
//! and state.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{phase, wait_gone, Container};
use crate::error::{Error, Result};
use crate::hooks::{self, Kind};
use crate::state::{ContainerDir, Status, STATE_FILE};

pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    crate::state::validate_id(id)?;
    if !root.join(id).join(STATE_FILE).exists() {
        // A create killed before it saved its state leaves a directory with, at most, the
        // journal of the cgroup it was making: --force clears both (and what runs there).
        let dir = root.join(id);
        if force {
            if dir.exists() {
                if let Ok(d) = ContainerDir::open_partial(root, id) {
                    if let Some(cgroup) = d.load_cgroup() {
                        cgroup.destroy();
                    }
                    d.remove()?;
                }
            }
            return Ok(());
        }
        return Err(Error::msg(format!("container {id:?} does not exist")));
    }
    let c = match Container::load(root, id) {
        // Another delete won the race: with --force, gone is what was asked for (as runc).
        Err(_) if force && !root.join(id).exists() => return Ok(()),
        r => r?,
    };
    let status = c.status();
    let alive = match status {
        Status::Stopped => false,
        Status::Created => true,
        Status::Running | Status::Paused | Status::Creating if force => true,
        s => {
            return Err(Error::msg(format!(
                "cannot delete container {id:?} that is not stopped: {}",
                s.as_str()
            ))
            .with_hint("stop it first, or use delete --force"))
        }
    };
    // Each phase can be cut short by a SIGKILL: a second delete finds the state file until
    // the last one and does the rest.
    phase("stop processes", || {
        if alive {
            stop(&c);
        }
        if !c.state.own_pid_ns {
            let _ = c.state.cgroup.signal_all(Signal::SIGKILL as i32);
        }
        Ok(())
    })?;
    phase("run poststop hooks", || {
        if let Ok(spec) = c.spec() {
            hooks::run_warn(
                Kind::Poststop,
                spec.hooks().as_ref(),
                &c.state.hook_state(Status::Stopped.as_str()),
            );
        }
        Ok(())
    })?;
    phase("remove cgroup", || {
        c.state.cgroup.destroy();
        Ok(())
    })?;
    phase("remove state", || c.dir.remove())
}

/// SIGKILL to everything in the container, thawing it so the signal lands.
fn stop(c: &Container) {
    let _ = nix::sys::signal::kill(Pid::from_raw(c.state.pid), Signal::SIGKILL);
    let _ = c.state.cgroup.signal_all(Signal::SIGKILL as i32);
    if c.state.cgroup.is_frozen() {
        let _ = c.state.cgroup.freeze(false);
    }
    wait_gone(
        Pid::from_raw(c.state.pid),
        c.state.pid_start,
        Duration::from_secs(10),
    );
}
