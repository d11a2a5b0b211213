//! `kill`: a signal to the container's init, or with `--all` to every process in its cgroup.

use std::path::Path;
use std::str::FromStr;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Container;
use crate::error::{Context, Error, Result};
use crate::state::Status;

/// Accepts what runc accepts: `KILL`, `SIGKILL`, `9`, in any case; `0` (None) only checks
/// that the processes exist.
pub fn parse_signal(s: &str) -> Result<Option<Signal>> {
    let bad = || Error::msg(format!("invalid signal {s:?}"));
    if s == "0" {
        return Ok(None);
    }
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map(Some).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map(Some).map_err(|_| bad())
}

pub fn kill(root: &Path, id: &str, sig: Option<Signal>, all: bool) -> Result<()> {
    let c = Container::load(root, id)?;
    if c.status() == Status::Stopped {
        if all {
            // Processes of a container without its own pid namespace may outlive its init.
            return sig.map_or(Ok(()), |s| c.state.cgroup.signal_all(s));
        }
        return Err(Error::msg("container not running"));
    }
    if all || !c.state.own_pid_ns {
        if let Some(s) = sig {
            c.state.cgroup.signal_all(s)?;
        }
        if all {
            return Ok(());
        }
    }
    nix::sys::signal::kill(Pid::from_raw(c.state.pid), sig).ctx(|| {
        format!(
            "kill {} with {}",
            c.state.pid,
            sig.map_or("0", |s| s.as_str())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_numbers_and_prefixes() {
        assert_eq!(parse_signal("KILL").unwrap(), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("sigterm").unwrap(), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("9").unwrap(), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("0").unwrap(), None);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), Some(Signal::SIGUSR1));
        for bad in ["", "SIGFOO", "0x9", "999", "-1"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
