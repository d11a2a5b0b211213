//! `run` and `exec` without `--detach`: the runtime stays, forwards signals to the container's
//! process, proxies its terminal, and exits with its status (128+N for a signal, as a shell).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context, Result};

/// Blocks the signals we forward, so they queue for the signalfd instead of killing us. Call
/// before forking: the container's processes unblock them before exec.
pub fn block_signals() -> Result<SigSet> {
    let mut set = SigSet::all();
    set.remove(Signal::SIGSEGV);
    set.remove(Signal::SIGBUS);
    set.remove(Signal::SIGILL);
    set.remove(Signal::SIGFPE);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .ctx(|| "block signals")?;
    // Reparented orphans of the container come to us.
    nix::sys::prctl::set_child_subreaper(true).ctx(|| "prctl PR_SET_CHILD_SUBREAPER")?;
    Ok(set)
}

/// Restores the caller's terminal when the run ends.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

fn copy_winsize(from: BorrowedFd, to: BorrowedFd) {
    if let Ok((rows, cols)) = crate::sys::get_winsize(from) {
        let _ = crate::sys::set_winsize(to, rows, cols);
    }
}

/// Supervises `pid` until it exits; returns the exit code to exit with.
pub fn supervise(pid: Pid, pty: Option<OwnedFd>, signals: SigSet) -> Result<i32> {
    let sfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .ctx(|| "signalfd")?;
    let _raw = pty.as_ref().map(|_| RawMode::enter());
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    if let Some(m) = &pty {
        copy_winsize(stdin.as_fd(), m.as_fd());
    }
    let mut stdin_open = pty.is_some();
    let mut pty_open = pty.is_some();
    let mut exit: Option<i32> = None;
    let mut buf = [0u8; 8192];
    loop {
        if let Some(code) = exit {
            if !pty_open {
                return Ok(code);
            }
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let (Some(m), true) = (&pty, pty_open) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        if let (Some(_), true) = (&pty, stdin_open) {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        // Once the process has exited, drain what is left of its output, then stop.
        let timeout = if exit.is_some() {
            PollTimeout::from(100u16)
        } else {
            PollTimeout::NONE
        };
        let n = match poll(&mut fds, timeout) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.ctx(|| "poll")?,
        };
        if n == 0 && exit.is_some() {
            pty_open = false;
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(false)).collect();
        drop(fds);
        let mut i = 1;
        if let (Some(m), true) = (&pty, pty_open) {
            if ready[i] {
                match nix::unistd::read(m, &mut buf) {
                    Ok(0) | Err(nix::errno::Errno::EIO) => pty_open = false,
                    Ok(k) => write_all(stdout.as_fd(), &buf[..k]),
                    Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                    Err(_) => pty_open = false,
                }
            }
            i += 1;
        }
        if let (Some(m), true) = (&pty, stdin_open) {
            if ready[i] {
                match nix::unistd::read(stdin.as_fd(), &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(k) => write_all(m.as_fd(), &buf[..k]),
                }
            }
        }
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match sig {
                    Signal::SIGCHLD => {
                        if let Some(code) = reap(pid) {
                            exit = Some(code);
                        }
                    }
                    Signal::SIGWINCH => {
                        if let Some(m) = &pty {
                            copy_winsize(stdin.as_fd(), m.as_fd());
                        }
                    }
                    other => {
                        let _ = nix::sys::signal::kill(pid, other);
                    }
                }
            }
        }
    }
}

/// Reaps every exited child; the exit code if `pid` was among them.
fn reap(pid: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p == pid => code = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p == pid => code = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}

fn write_all(fd: BorrowedFd, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {
                let mut f = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut f, PollTimeout::from(100u16));
            }
            Err(_) => return,
        }
    }
}
