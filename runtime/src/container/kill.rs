//! `kill`: a signal to the container's init, or with `--all` to every process in its cgroup.

use std::path::Path;
use std::str::FromStr;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Container;
use crate::error::{Context, Error, Result};
use crate::state::Status;

/// Accepts what runc accepts: `KILL`, `SIGKILL`, `9`, in any case.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || Error::msg(format!("invalid signal {s:?}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

pub fn kill(root: &Path, id: &str, sig: Signal, all: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    if c.status() == Status::Stopped {
        if all {
            // Processes of a container without its own pid namespace may outlive its init.
            return c.state.cgroup.signal_all(sig);
        }
        return Err(Error::msg("container not running"));
    }
    if all || !c.state.own_pid_ns {
        c.state.cgroup.signal_all(sig)?;
        if all {
            return Ok(());
        }
    }
    nix::sys::signal::kill(Pid::from_raw(c.state.pid), sig)
        .ctx(|| format!("kill {} with {sig}", c.state.pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_numbers_and_prefixes() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), Signal::SIGUSR1);
        for bad in ["", "SIGFOO", "0x9", "999", "-1"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
