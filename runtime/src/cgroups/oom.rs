//! The kernel's notice of OOM kills in a memory cgroup, for `events` and the shim's TaskOOM.
//!
//! v2 touches memory.events (inotify), v1 signals an eventfd registered for
//! memory.oom_control. systemd removes a scope's cgroup as soon as its last process is gone,
//! which an OOM kill may cause, and the count goes with it: the count is read the moment the
//! kernel gives notice (the shim on a thread of its own) and `Counter` keeps a kill its cgroup
//! took with it. containerd's and conmon's watchers lose the race
//! (containerd/containerd#12714, containers/conmon#426).

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::error::{Context, Error, Result};

/// A memory cgroup's count of OOM kills, as `events` and the shim report it: never lower than
/// what was reported, and on v2 not lost with the cgroup. When the cgroup is gone before a
/// kill could be read (systemd removes an emptied scope at once), its parent has counted it:
/// v2's memory.events is hierarchical. So if the cgroup was at its limit just before it went,
/// the kills its parent counted since are taken as its own. A sibling's kill in that same
/// moment would be miscounted; without this, the OOM is lost whenever systemd is quicker.
pub struct Counter {
    dir: PathBuf,
    unified: bool,
    last: u64,
    /// v2, below the root: the parent and its count when this cgroup's was last read.
    parent: Option<(PathBuf, u64)>,
    /// memory.events' max + oom at the last reading, and when they last rose.
    limit_hits: u64,
    at_limit: Option<Instant>,
}

/// oom_kill, and max + oom (the times the limit was hit), from memory.events or oom_control.
fn read_kills(dir: &Path, file: &str) -> Option<(u64, u64)> {
    let text = fs::read_to_string(dir.join(file)).ok()?;
    let (mut kills, mut hits) = (0, 0);
    for l in text.lines() {
        let (k, v) = l.split_once(' ').unwrap_or((l, ""));
        let v: u64 = v.trim().parse().unwrap_or(0);
        match k {
            "oom_kill" => kills = v,
            "max" | "oom" => hits += v,
            _ => {}
        }
    }
    Some((kills, hits))
}

impl Counter {
    pub fn new(dir: &Path, unified: bool) -> Counter {
        let mut c = Counter {
            dir: dir.to_path_buf(),
            unified,
            last: 0,
            parent: None,
            limit_hits: 0,
            at_limit: None,
        };
        if unified {
            c.parent = dir
                .parent()
                .and_then(|p| Some((p.to_path_buf(), read_kills(p, "memory.events")?.0)));
        }
        c.read();
        c
    }

    /// The kills counted so far.
    pub fn read(&mut self) -> u64 {
        if !self.unified {
            let n = read_kills(&self.dir, "memory.oom_control").map_or(0, |k| k.0);
            self.last = self.last.max(n);
            return self.last;
        }
        // The parent's count before and after this cgroup's: equal, the pair is consistent.
        for _ in 0..3 {
            let before = self.parent_kills();
            let Some((n, hits)) = read_kills(&self.dir, "memory.events") else {
                break;
            };
            let after = self.parent_kills();
            self.last = self.last.max(n);
            if hits > self.limit_hits {
                self.limit_hits = hits;
                self.at_limit = Some(Instant::now());
            }
            if before == after {
                if let (Some(p), Some(after)) = (&mut self.parent, after) {
                    p.1 = after;
                }
                return self.last;
            }
        }
        let recent = |t: Instant| t.elapsed() < Duration::from_secs(1);
        if !self.dir.exists() && self.at_limit.is_some_and(recent) {
            if let Some((dir, base)) = &mut self.parent {
                if let Some((now, _)) = read_kills(dir, "memory.events") {
                    self.last += now.saturating_sub(*base);
                    *base = now;
                }
            }
        }
        self.last
    }

    fn parent_kills(&self) -> Option<u64> {
        let (dir, _) = self.parent.as_ref()?;
        Some(read_kills(dir, "memory.events")?.0)
    }

    /// The count after a notice from `Notices`. v1's eventfd fires for an OOM or the cgroup's
    /// removal: while the cgroup is there, the notice is an OOM even if the kill is not counted
    /// yet (or never: kernels before 4.13 have no count).
    pub fn on_notice(&mut self) -> u64 {
        let before = self.last;
        let n = self.read();
        if !self.unified && n == before && self.dir.exists() {
            self.last += 1;
        }
        self.last
    }

    /// The kernel's notices for this cgroup, for a caller that waits on them itself.
    pub fn notices(&self) -> Result<Notices> {
        if self.unified {
            Notices::v2(&self.dir)
        } else {
            Notices::v1(&self.dir)
        }
    }
}

/// Reads `counter` on a thread of its own each time the kernel gives notice, and a last time
/// when the cgroup has no process left, and calls `report` with the count. Set-up errors are
/// returned; the thread ends with the cgroup.
pub fn watch(
    counter: Arc<Mutex<Counter>>,
    mut report: impl FnMut(u64) + Send + 'static,
) -> Result<()> {
    let notices = lock(&counter).notices()?;
    std::thread::Builder::new()
        .name("oom".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            let alive = notices.wait(None).unwrap_or(false);
            let n = if alive {
                lock(&counter).on_notice()
            } else {
                lock(&counter).read()
            };
            report(n);
            if !alive || notices.ended() {
                return;
            }
        })
        .map(drop)
        .ctx(|| "starting the OOM watcher")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The kernel's notices of a memory cgroup's OOMs.
pub enum Notices {
    /// memory.events, and cgroup.events so that the last process's exit is a notice too:
    /// a removal sends no IN_IGNORED for cgroupfs files (6.1).
    Inotify(Inotify, PathBuf),
    /// memory.oom_control, held open while the eventfd is registered for it.
    EventFd {
        efd: EventFd,
        _control: fs::File,
        dir: PathBuf,
    },
}

impl Notices {
    fn v2(dir: &Path) -> Result<Notices> {
        let ino = Inotify::init(InitFlags::IN_CLOEXEC).ctx(|| "inotify_init")?;
        for f in ["memory.events", "cgroup.events"] {
            let f = dir.join(f);
            ino.add_watch(&f, AddWatchFlags::IN_MODIFY)
                .ctx(|| format!("inotify on {}", f.display()))?;
        }
        Ok(Notices::Inotify(ino, dir.join("cgroup.events")))
    }

    fn v1(dir: &Path) -> Result<Notices> {
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).ctx(|| "eventfd")?;
        let counter = dir.join("memory.oom_control");
        let control = fs::File::open(&counter).ctx(|| format!("opening {}", counter.display()))?;
        let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
        fs::write(dir.join("cgroup.event_control"), line).map_err(|e| {
            Error::io(
                format!("registering for OOM events in {}", dir.display()),
                &e,
            )
        })?;
        Ok(Notices::EventFd {
            efd,
            _control: control,
            dir: dir.to_path_buf(),
        })
    }

    /// Waits up to `timeout` (None: for ever) for the kernel's next notice: None if none came,
    /// else whether more can come.
    pub fn wait(&self, timeout: Option<Duration>) -> Option<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let fd = match self {
            Notices::Inotify(ino, _) => ino.as_fd(),
            Notices::EventFd { efd, .. } => efd.as_fd(),
        };
        let timeout = timeout.map_or(PollTimeout::NONE, |t| {
            PollTimeout::from(u16::try_from(t.as_millis()).unwrap_or(u16::MAX))
        });
        match poll(&mut [PollFd::new(fd, PollFlags::POLLIN)], timeout) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return None,
            Err(_) => return Some(false),
        }
        Some(match self {
            Notices::Inotify(ino, _) => ino.read_events().is_ok_and(|evs| {
                !evs.iter()
                    .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
            }),
            Notices::EventFd { efd, .. } => efd.read().is_ok(),
        })
    }

    /// Whether the cgroup has no process left (v2) or is gone (v1, whose eventfd also fires
    /// at the removal).
    pub fn ended(&self) -> bool {
        match self {
            Notices::Inotify(_, events) => fs::read_to_string(events)
                .map_or(true, |s| s.lines().any(|l| l.trim() == "populated 0")),
            Notices::EventFd { dir, .. } => !dir.exists(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(dir: &Path, max: u64, kills: u64) {
        let text = format!("low 0\nhigh 0\nmax {max}\noom {kills}\noom_kill {kills}\n");
        fs::write(dir.join("memory.events"), text).unwrap();
    }

    /// A parent with one child cgroup, as files: the counter only reads them.
    fn tree(name: &str) -> (PathBuf, PathBuf) {
        let parent = std::env::temp_dir().join(format!("husk-oom-{name}-{}", std::process::id()));
        let child = parent.join("c");
        let _ = fs::remove_dir_all(&parent);
        fs::create_dir_all(&child).unwrap();
        events(&parent, 0, 3);
        events(&child, 0, 0);
        (parent, child)
    }

    #[test]
    fn a_kill_the_cgroup_took_with_it_is_found_in_its_parent() {
        let (parent, child) = tree("gone");
        let mut c = Counter::new(&child, true);
        assert_eq!(c.read(), 0);
        // At its limit, then killed and removed before it was read again.
        events(&child, 5, 0);
        events(&parent, 5, 3);
        assert_eq!(c.read(), 0);
        events(&parent, 5, 4);
        fs::remove_dir_all(&child).unwrap();
        assert_eq!(c.read(), 1);
        assert_eq!(c.read(), 1, "counted once");
        fs::remove_dir_all(&parent).unwrap();
    }

    #[test]
    fn a_siblings_kill_is_not_taken_for_a_cgroup_that_never_hit_its_limit() {
        let (parent, child) = tree("sibling");
        let mut c = Counter::new(&child, true);
        events(&parent, 5, 4);
        fs::remove_dir_all(&child).unwrap();
        assert_eq!(c.read(), 0);
        fs::remove_dir_all(&parent).unwrap();
    }

    #[test]
    fn counts_never_go_down_and_v1_notices_are_ooms() {
        let (parent, child) = tree("v1");
        fs::write(
            child.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\n",
        )
        .unwrap();
        let mut c = Counter::new(&child, false);
        assert_eq!(c.on_notice(), 1, "a notice before the kill is counted");
        fs::write(child.join("memory.oom_control"), "oom_kill 1\n").unwrap();
        assert_eq!(c.read(), 1, "the same kill, counted once");
        fs::remove_dir_all(&child).unwrap();
        assert_eq!(c.on_notice(), 1, "the removal's notice is no OOM");
        fs::remove_dir_all(&parent).unwrap();
    }
}
