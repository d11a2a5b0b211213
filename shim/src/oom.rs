//! TaskOOM: the kernel's OOM notices for the container's memory cgroup
//! (`husk::cgroups::oom`), published once per kill and before the exit they caused.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use containerd_shim_protos::events::task::TaskOOM;
use containerd_shim_protos::topics::TASK_OOM_EVENT_TOPIC;
use husk::cgroups::oom::Counter;
use husk::error::Result;

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

/// One container's OOM reporting. The watcher thread and the exit path both report what the
/// cgroup counts, so an OOM kill is published before the exit it caused, whichever of them
/// sees it first, and once.
pub struct Watch {
    counter: Arc<Mutex<Counter>>,
    published: Mutex<u64>,
    container: String,
    publisher: Arc<Publisher>,
}

impl Watch {
    /// Publishes TaskOOM if the kernel has counted an OOM kill not reported yet.
    pub fn flush(&self) {
        let kills = lock(&self.counter).read();
        self.note(kills);
    }

    fn note(&self, kills: u64) {
        let mut published = lock(&self.published);
        if kills > *published {
            *published = kills;
            let e = TaskOOM {
                container_id: self.container.clone(),
                ..Default::default()
            };
            self.publisher.publish(TASK_OOM_EVENT_TOPIC, &e);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn watch(pid: u32, container: &str, publisher: Arc<Publisher>) -> Result<Option<Arc<Watch>>> {
    let unified = unified();
    let Some(dir) = memory_cgroup(pid, unified) else {
        return Ok(None); // no memory controller: nothing to watch
    };
    let counter = Arc::new(Mutex::new(Counter::new(&dir, unified)));
    let w = Arc::new(Watch {
        // A new container's cgroup has counted nothing: start from 0, so that an OOM kill
        // that beat this watcher's set-up is still reported.
        published: Mutex::new(0),
        counter: counter.clone(),
        container: container.to_string(),
        publisher,
    });
    let watch = w.clone();
    husk::cgroups::oom::watch(counter, move |n| watch.note(n))?;
    Ok(Some(w))
}
