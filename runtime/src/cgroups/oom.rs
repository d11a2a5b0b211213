//! The kernel's notice of OOM kills in a container's memory cgroup, for `events`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{v1, v2};

/// The kernel's notice of OOM kills in a memory cgroup: v2 touches memory.events (inotify),
/// v1 signals an eventfd registered for memory.oom_control. Waking at once matters: systemd
/// removes a scope's cgroup as soon as its last process is gone, which an OOM kill may cause,
/// and the count goes with it.
pub struct OomWatch {
    fd: OomFd,
    /// v1: memory.oom_control, held open while the eventfd is registered for it.
    _control: Option<fs::File>,
    dir: PathBuf,
    /// The count seen so far, and kills seen but not yet taken.
    last: u64,
    pending: u64,
}

enum OomFd {
    Inotify(nix::sys::inotify::Inotify),
    EventFd(nix::sys::eventfd::EventFd),
}

impl OomWatch {
    pub(super) fn v2(dir: &Path, last: u64) -> Option<OomWatch> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
        ino.add_watch(&dir.join("memory.events"), AddWatchFlags::IN_MODIFY)
            .ok()?;
        Some(OomWatch {
            fd: OomFd::Inotify(ino),
            _control: None,
            dir: dir.to_path_buf(),
            last,
            pending: 0,
        })
    }

    pub(super) fn v1(dir: &Path, last: u64) -> Option<OomWatch> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        use std::os::fd::AsRawFd;
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).ok()?;
        let control = fs::File::open(dir.join("memory.oom_control")).ok()?;
        let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        fs::write(dir.join("cgroup.event_control"), line).ok()?;
        Some(OomWatch {
            fd: OomFd::EventFd(efd),
            _control: Some(control),
            dir: dir.to_path_buf(),
            last,
            pending: 0,
        })
    }

    fn count(&self) -> u64 {
        match self.fd {
            OomFd::Inotify(_) => v2::oom_kills(&self.dir),
            OomFd::EventFd(_) => v1::oom_kill_count(&self.dir),
        }
    }

    /// Counts kills the cgroup reports now (a wake-up may have been missed).
    fn observe(&mut self, n: u64) {
        if n > self.last {
            self.pending += n - self.last;
            self.last = n;
        }
    }

    /// Waits up to `timeout` for the kernel's notice, reading the count at once on one.
    pub fn wait(&mut self, timeout: Duration) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let fd = match &self.fd {
            OomFd::Inotify(i) => i.as_fd(),
            OomFd::EventFd(e) => e.as_fd(),
        };
        if !poll(
            &mut [PollFd::new(fd, PollFlags::POLLIN)],
            PollTimeout::from(ms),
        )
        .is_ok_and(|n| n > 0)
        {
            return;
        }
        let n = self.count();
        match &self.fd {
            OomFd::Inotify(i) => {
                let _ = i.read_events();
                self.observe(n);
            }
            OomFd::EventFd(e) => {
                let _ = e.read();
                // v1 notifies when the cgroup goes away too; a notice while it is still there
                // is an OOM, even if the kill is not counted yet.
                if self.dir.exists() {
                    self.observe(n.max(self.last + 1));
                }
            }
        }
    }

    /// The kills seen since the last call, given the count the cgroup shows now.
    pub fn take(&mut self, now: u64) -> u64 {
        self.observe(now);
        std::mem::take(&mut self.pending)
    }
}
