//! `start`: opens the exec fifo, which releases the waiting init into the user's program.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::{phase, Container};
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Kind};
use crate::state::Status;

pub fn start(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Created => {}
        Status::Stopped => return Err(Error::msg("cannot start a container that has stopped")),
        Status::Running | Status::Paused => {
            return Err(Error::msg("cannot start an already running container"))
        }
        Status::Creating => {
            return Err(Error::msg(
                "cannot start a container that is still being created",
            ))
        }
    }
    let fifo = c.dir.exec_fifo();
    let fd = phase("open exec fifo", || open_exec_fifo(&fifo))?;
    phase("release init", || release_init(&c, &fd))?;
    phase("remove exec fifo", || {
        std::fs::remove_file(&fifo).ctx(|| format!("remove {}", fifo.display()))
    })?;
    phase("run poststart hooks", || {
        let spec = c.spec()?;
        hooks::run_warn(
            Kind::Poststart,
            spec.hooks().as_ref(),
            &c.state.hook_state(Status::Running.as_str()),
        );
        Ok(())
    })?;
    Ok(())
}

/// Non-blocking, so that an init that died meanwhile cannot hang us.
fn open_exec_fifo(fifo: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {}", fifo.display()))
}

/// Reads the byte the waiting init wrote: from here on it runs the user's program.
fn release_init(c: &Container, fd: &OwnedFd) -> Result<()> {
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let n = match poll(&mut fds, PollTimeout::from(100u16)) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => r.ctx(|| "poll exec fifo")?,
        };
        if n > 0 {
            let mut b = [0u8; 1];
            match nix::unistd::read(fd, &mut b) {
                Ok(1) => return Ok(()),
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(Error::sys("read exec fifo", e)),
            }
        }
        if !c.state.init_alive() {
            return Err(Error::msg(
                "container init exited before it could be started",
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
