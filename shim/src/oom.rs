//! TaskOOM: the kernel's OOM notification for the container's memory cgroup — v1's
//! `memory.oom_control` through an eventfd registered in `cgroup.event_control`, v2's
//! `memory.events` watched with inotify. The watcher ends when the cgroup is removed.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_shim_protos::events::task::TaskOOM;
use containerd_shim_protos::topics::TASK_OOM_EVENT_TOPIC;
use husk::error::{Context, Error, Result};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::events::Publisher;

/// Whether /sys/fs/cgroup is the unified (v2) hierarchy.
pub fn unified() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The memory cgroup directory of `pid`.
fn memory_cgroup(pid: u32, unified: bool) -> Option<PathBuf> {
    let table = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    table.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if unified {
            (ctrls.is_empty()).then(|| Path::new("/sys/fs/cgroup").join(path))
        } else {
            ctrls
                .split(',')
                .any(|c| c == "memory")
                .then(|| Path::new("/sys/fs/cgroup/memory").join(path))
        }
    })
}

/// One container's OOM reporting. The watcher thread and the exit path both `flush`, so an
/// OOM kill is published before the exit it caused, whichever of them sees it first.
pub struct Watch {
    /// memory.events (v2) or memory.oom_control (v1): both count `oom_kill`.
    counter: PathBuf,
    published: Mutex<u64>,
    container: String,
    publisher: Arc<Publisher>,
}

impl Watch {
    /// Publishes TaskOOM if the kernel has counted an OOM kill not reported yet.
    pub fn flush(&self) {
        let mut published = self.published.lock().unwrap();
        let now = oom_kills(&self.counter);
        if now > *published {
            *published = now;
            self.publish();
        }
    }

    fn publish(&self) {
        let e = TaskOOM {
            container_id: self.container.clone(),
            ..Default::default()
        };
        self.publisher.publish(TASK_OOM_EVENT_TOPIC, &e);
    }
}

fn spawn(f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name("oom".into())
        .stack_size(64 * 1024)
        .spawn(f)
        .map(drop)
        .ctx(|| "starting the OOM watcher")
}

pub fn watch(pid: u32, container: &str, publisher: Arc<Publisher>) -> Result<Option<Arc<Watch>>> {
    let unified = unified();
    let Some(dir) = memory_cgroup(pid, unified) else {
        return Ok(None); // no memory controller: nothing to watch
    };
    let counter = dir.join(if unified {
        "memory.events"
    } else {
        "memory.oom_control"
    });
    let w = Arc::new(Watch {
        // A new container's cgroup has counted nothing: start from 0, so that an OOM kill
        // that beat this watcher's set-up is still reported.
        published: Mutex::new(0),
        counter: counter.clone(),
        container: container.to_string(),
        publisher,
    });
    let watch = w.clone();
    if unified {
        let ino = Inotify::init(InitFlags::IN_CLOEXEC).ctx(|| "inotify_init")?;
        // cgroup.events too: a cgroup's removal sends no IN_IGNORED for its files here (6.1),
        // so the watcher ends when the cgroup has no process left (populated 0), as
        // containerd's own watcher does; without that, each container left a thread and an fd.
        let events = dir.join("cgroup.events");
        for f in [&counter, &events] {
            ino.add_watch(f, AddWatchFlags::IN_MODIFY)
                .ctx(|| format!("inotify on {}", f.display()))?;
        }
        let emptied = move || {
            fs::read_to_string(&events)
                .map_or(true, |s| s.lines().any(|l| l.trim() == "populated 0"))
        };
        // Watches first, then the check: an exit in between still wakes the read.
        spawn(move || {
            while !emptied() {
                let Ok(evs) = ino.read_events() else { return };
                watch.flush();
                if evs
                    .iter()
                    .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
                {
                    return;
                }
            }
            watch.flush();
        })?;
    } else {
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).ctx(|| "eventfd")?;
        let control = File::open(&counter).ctx(|| format!("opening {}", counter.display()))?;
        fs::write(
            dir.join("cgroup.event_control"),
            format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
        )
        .map_err(|e| {
            Error::io(
                format!("registering for OOM events in {}", dir.display()),
                &e,
            )
        })?;
        // Kernels before 4.13 have no oom_kill count: there, every wake-up is an OOM.
        let counted = fs::read_to_string(&counter).is_ok_and(|s| s.contains("oom_kill "));
        spawn(move || {
            let _control = control;
            // The eventfd also fires when the cgroup is removed.
            while efd.read().is_ok() && dir.exists() {
                if counted {
                    watch.flush();
                } else {
                    watch.publish();
                }
            }
        })?;
    }
    Ok(Some(w))
}

fn oom_kills(counter: &Path) -> u64 {
    fs::read_to_string(counter)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0)
}
