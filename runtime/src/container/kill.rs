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
/// A signal as runc takes it: a name (KILL, SIGKILL, RTMIN+3) or a number up to 64 (the
/// real-time signals included: systemd in a container stops on SIGRTMIN+3). 0 is a probe.
pub fn parse_signal(s: &str) -> Result<Option<i32>> {
    let bad = || Error::msg(format!("invalid signal {s:?}"));
    if s == "0" {
        return Ok(None);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        return match s.parse::<i32>() {
            Ok(n) if (1..=64).contains(&n) => Ok(Some(n)),
            _ => Err(bad()),
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    // glibc's SIGRTMIN is 34 (it keeps 32 and 33 for itself); SIGRTMAX is 64.
    let rt = |base: i32, off: &str, sign: i32| -> Option<i32> {
        let n = off.parse::<u8>().ok()? as i32;
        Some(base + sign * n).filter(|v| (34..=64).contains(v))
    };
    let n = if let Some(off) = name.strip_prefix("RTMIN") {
        off.strip_prefix('+')
            .map_or_else(|| off.is_empty().then_some(34), |o| rt(34, o, 1))
    } else if let Some(off) = name.strip_prefix("RTMAX") {
        off.strip_prefix('-')
            .map_or_else(|| off.is_empty().then_some(64), |o| rt(64, o, -1))
    } else {
        Signal::from_str(&format!("SIG{name}"))
            .ok()
            .map(|s| s as i32)
    };
    n.map(Some).ok_or_else(bad)
}

pub fn kill(root: &Path, id: &str, sig: Option<i32>, all: bool) -> Result<()> {
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
    crate::sys::kill_raw(Pid::from_raw(c.state.pid), sig.unwrap_or(0))
        .ctx(|| format!("kill {} with signal {}", c.state.pid, sig.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_numbers_and_prefixes() {
        assert_eq!(parse_signal("KILL").unwrap(), Some(9));
        assert_eq!(parse_signal("sigterm").unwrap(), Some(15));
        assert_eq!(parse_signal("9").unwrap(), Some(9));
        assert_eq!(parse_signal("0").unwrap(), None);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), Some(10));
        assert_eq!(parse_signal("SIGRTMIN+3").unwrap(), Some(37));
        assert_eq!(parse_signal("RTMIN").unwrap(), Some(34));
        assert_eq!(parse_signal("rtmax-1").unwrap(), Some(63));
        assert_eq!(parse_signal("37").unwrap(), Some(37));
        assert_eq!(parse_signal("64").unwrap(), Some(64));
        for bad in [
            "", "SIGFOO", "0x9", "999", "-1", "65", "RTMIN+31", "RTMAX-31", "RTMIN+", "+9",
        ] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
