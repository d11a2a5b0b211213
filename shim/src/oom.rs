//! TaskOOM: the kernel's OOM notification for the container's memory cgroup — v1's
//! `memory.oom_control` through an eventfd registered in `cgroup.event_control`, v2's
//! `memory.events` watched with inotify. The watcher ends when the cgroup is removed.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

pub fn watch(pid: u32, container: &str, publisher: Arc<Publisher>) -> Result<()> {
    let unified = unified();
    let Some(dir) = memory_cgroup(pid, unified) else {
        return Ok(()); // no memory controller: nothing to watch
    };
    let id = container.to_string();
    let publish = move || {
        publisher.publish(
            TASK_OOM_EVENT_TOPIC,
            &TaskOOM {
                container_id: id.clone(),
                ..Default::default()
            },
        )
    };
    let spawn = |f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name("oom".into())
            .stack_size(64 * 1024)
            .spawn(f)
            .map(drop)
            .ctx(|| "starting the OOM watcher")
    };
    if unified {
        let events = dir.join("memory.events");
        let ino = Inotify::init(InitFlags::IN_CLOEXEC).ctx(|| "inotify_init")?;
        ino.add_watch(&events, AddWatchFlags::IN_MODIFY)
            .ctx(|| format!("inotify on {}", events.display()))?;
        let mut seen = oom_kills(&events);
        spawn(Box::new(move || loop {
            let Ok(evs) = ino.read_events() else { return };
            if evs
                .iter()
                .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
            {
                return; // the cgroup is gone
            }
            let now = oom_kills(&events);
            if now > seen {
                publish();
            }
            seen = now;
        }))
    } else {
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC).ctx(|| "eventfd")?;
        let control = File::open(dir.join("memory.oom_control"))
            .ctx(|| format!("opening {}/memory.oom_control", dir.display()))?;
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
        spawn(Box::new(move || {
            let _control = control;
            // The eventfd also fires when the cgroup is removed.
            while efd.read().is_ok() && dir.exists() {
                publish();
            }
        }))
    }
}

fn oom_kills(events: &Path) -> u64 {
    fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0)
}
