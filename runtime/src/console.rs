//! `process.terminal`: a pty created inside the container, its slave made the process's
//! controlling terminal and /dev/console, its master sent over `--console-socket` as one fd
//! (SCM_RIGHTS), which is what go-runc, conmon and runc's recvtty expect.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use oci_spec::runtime::Process;

use crate::error::{Context, Error, Result};

/// A connected pair for a foreground `run` or `exec` with a terminal: the container sends the
/// pty master down one end, the runtime reads it from the other.
pub fn local_pair() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair for the terminal")
}

/// Connects to the caller's console socket (before any namespace is entered).
pub fn connect(path: &Path) -> Result<OwnedFd> {
    let s = UnixStream::connect(path).ctx(|| format!("--console-socket {}", path.display()))?;
    Ok(OwnedFd::from(s))
}

/// In the container, after pivot_root: make a pty, hand its master to `socket`, and make the
/// slave our stdio and controlling terminal.
pub fn setup(socket: &OwnedFd, p: &Process, mount_console: bool) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .ctx(|| "open /dev/ptmx")?;
    grantpt(&master).ctx(|| "grantpt")?;
    unlockpt(&master).ctx(|| "unlockpt")?;
    let name = ptsname_r(&master).ctx(|| "ptsname")?;
    if let Some(size) = p.console_size() {
        crate::sys::set_winsize(master.as_fd(), size.height() as u16, size.width() as u16)
            .ctx(|| "process.consoleSize: TIOCSWINSZ")?;
    }
    let slave = nix::fcntl::open(
        Path::new(&name),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open {name}"))?;
    // The process owns its terminal; the group stays devpts' (gid=5, tty, in runc's spec).
    nix::unistd::fchown(
        &slave,
        Some(nix::unistd::Uid::from_raw(p.user().uid())),
        None,
    )
    .ctx(|| format!("chown {name} to uid {}", p.user().uid()))?;
    if mount_console {
        crate::rootfs::devices::mount_console(slave.as_fd(), &name)?;
    }
    send_fd(socket.as_raw_fd(), master.as_raw_fd(), "/dev/ptmx")
        .map_err(|e| e.context("send pty master over console socket"))?;
    drop(master);
    crate::sys::set_controlling_tty(slave.as_fd())
        .ctx(|| format!("make {name} the controlling terminal"))?;
    for target in 0..=2 {
        crate::sys::dup_onto(slave.as_fd(), target).ctx(|| format!("dup {name} to fd {target}"))?;
    }
    Ok(())
}

pub fn send_fd(socket: RawFd, fd: RawFd, name: &str) -> Result<()> {
    let fds = [fd];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| "sendmsg")?;
    Ok(())
}

/// Receives the pty master a container sends (for `run` and `exec` in the foreground).
pub fn recv_fd(socket: RawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    match recv_msg(socket, &mut buf).map_err(|e| e.context("console socket"))? {
        (_, Some(fd)) => Ok(fd),
        _ => Err(Error::msg(
            "console socket closed without sending a pty master",
        )),
    }
}

/// One message and the first fd it carries (any further fds are closed).
pub fn recv_msg(socket: RawFd, buf: &mut [u8]) -> Result<(usize, Option<OwnedFd>)> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "recvmsg")?;
    let mut first = None;
    for c in msg.cmsgs().ctx(|| "read control message")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                let owned = crate::sys::own_received_fd(fd);
                if first.is_none() {
                    first = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, first))
}
