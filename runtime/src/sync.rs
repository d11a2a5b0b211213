//! The channel between the runtime and the processes it forks: one message per datagram.
//!
//! If the child dies the channel reads end-of-file, so the parent never waits on a dead child;
//! the child's end is close-on-exec, so a successful `execve` also reads as end-of-file.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::socket::{send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(tag = "m")]
pub enum Msg {
    /// Parent → child: the cgroup, oom_score_adj and id mappings are in place; go on.
    Go,
    /// Child → parent: a user namespace exists; write its uid/gid maps.
    MapIds,
    /// Intermediate → parent: the container's init, as a pid in the parent's namespace.
    InitPid { pid: i32 },
    /// Init → parent: namespaces and mounts are ready; run prestart and createRuntime hooks.
    RunHooks,
    /// Parent → init: those hooks have run.
    HooksDone,
    /// Init → parent: the container is created and waits for `start`.
    Ready,
    /// Child → parent: the seccomp NOTIFY listener, as the message's fd.
    SeccompListener,
    /// Child → parent: a phase failed; the one line to show the user.
    Error { msg: String },
}

pub struct Channel(OwnedFd);

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "create sync socketpair")?;
    Ok((Channel(a), Channel(b)))
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        let bytes = serde_json::to_vec(msg).expect("message serialises");
        send(self.0.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL).ctx(|| "send on sync channel")?;
        Ok(())
    }

    /// Sends a message with an fd attached.
    pub fn send_fd(&self, msg: &Msg, fd: &OwnedFd) -> Result<()> {
        let bytes = serde_json::to_string(msg).expect("message serialises");
        crate::console::send_fd(self.0.as_raw_fd(), fd.as_raw_fd(), &bytes)
    }

    /// The next message, or None once the other side has gone.
    pub fn recv(&self) -> Result<Option<Msg>> {
        Ok(self.recv_with_fd()?.map(|(m, _)| m))
    }

    /// The next message and the fd it carries, if any.
    pub fn recv_with_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; 64 * 1024];
        let (n, fd) = loop {
            match crate::console::recv_msg(self.0.as_raw_fd(), &mut buf) {
                Err(e) if e.errno() == Some(nix::errno::Errno::EINTR) => continue,
                r => break r.map_err(|e| e.context("receive on sync channel"))?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n])
            .map_err(|e| Error::msg(format!("bad sync message: {e}")))?;
        Ok(Some((msg, fd)))
    }

    /// Waits for `want`; a child's error message or its death becomes an error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Error { msg }) => Err(Error::msg(msg)),
            Some(m) => Err(Error::msg(format!(
                "expected {want:?} on sync channel, got {m:?}"
            ))),
            None => Err(Error::msg(format!(
                "the other side exited before sending {want:?}"
            ))),
        }
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}
