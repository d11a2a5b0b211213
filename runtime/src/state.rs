//! What lives under `--root`: one directory per container holding `state.json` (written
//! atomically), a private copy of its `config.json` and, until `start`, the `exec.fifo`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::cgroups::Placement;
use crate::error::{Context, Error, Result};

/// Where create journals the cgroup it is about to make (see `Placement::create`).
pub const CGROUP_FILE: &str = "cgroup.json";
pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct State {
    pub id: String,
    /// The container's init in the runtime's pid namespace.
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot, to tell it from a later process of the same pid.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub cgroup: Placement,
    /// Whether the container has a pid namespace of its own (if not, `kill`/`delete` must reach
    /// every process in its cgroup).
    #[serde(default)]
    pub own_pid_ns: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// Container ids become directory and cgroup names: the same rule as runc keeps them safe.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "invalid container id {id:?}: use letters, digits and _ + - . only"
        )))
    }
}

pub fn default_root() -> PathBuf {
    if !nix::unistd::geteuid().is_root() {
        if let Ok(x) = std::env::var("XDG_RUNTIME_DIR") {
            if !x.is_empty() {
                return PathBuf::from(x).join("husk");
            }
        }
    }
    PathBuf::from("/run/husk")
}

/// A container's directory under the root, locked for the lifetime of this value so that
/// concurrent commands on one id take turns.
pub struct ContainerDir {
    pub path: PathBuf,
    _lock: Flock<fs::File>,
}

impl ContainerDir {
    /// The fd holding the lock; forked children close their copy (`sys::close_inherited`).
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self._lock.as_raw_fd()
    }

    /// Claims a new id: fails if a container of that id exists.
    pub fn create(root: &Path, id: &str) -> Result<ContainerDir> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .ctx(|| format!("create state root {}", root.display()))?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::msg(format!(
                    "container with id {id:?} already exists"
                )))
            }
            Err(e) => {
                return Err(Error::io(
                    format!("create state dir {}", path.display()),
                    &e,
                ))
            }
        }
        Self::lock(path)
    }

    pub fn open(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        let path = root.join(id);
        let gone = || Error::msg(format!("container {id:?} does not exist"));
        if !path.join(STATE_FILE).exists() {
            return Err(gone());
        }
        let dir = Self::lock(path).map_err(|_| gone())?;
        // Whoever held the lock before us may have deleted the container.
        if !dir.path.join(STATE_FILE).exists() {
            return Err(gone());
        }
        Ok(dir)
    }

    /// A directory whose create never finished (no state file), for `delete --force`.
    pub fn open_partial(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        let dir = Self::lock(root.join(id))?;
        if !dir.path.exists() {
            return Err(Error::msg(format!("container {id:?} does not exist")));
        }
        Ok(dir)
    }

    /// The cgroup directories a create is about to make, saved before it makes them.
    pub fn save_cgroup(&self, p: &crate::cgroups::Placement) -> Result<()> {
        let bytes = serde_json::to_vec(p).expect("placement serialises");
        write_atomic(&self.path.join(CGROUP_FILE), &bytes)
    }

    pub fn load_cgroup(&self) -> Option<crate::cgroups::Placement> {
        let bytes = fs::read(self.path.join(CGROUP_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn lock(path: PathBuf) -> Result<ContainerDir> {
        let f = fs::File::open(&path).ctx(|| format!("open state dir {}", path.display()))?;
        let lock = Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys(format!("lock state dir {}", path.display()), e))?;
        Ok(ContainerDir { path, _lock: lock })
    }

    pub fn load(&self) -> Result<State> {
        let p = self.path.join(STATE_FILE);
        let bytes = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::msg(format!("parse {}: {e}", p.display())))
    }

    pub fn save(&self, state: &State) -> Result<()> {
        let bytes = serde_json::to_vec(state).expect("state serialises");
        write_atomic(&self.path.join(STATE_FILE), &bytes)
    }

    pub fn exec_fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn remove(self) -> Result<()> {
        fs::remove_dir_all(&self.path).ctx(|| format!("remove state dir {}", self.path.display()))
    }
}

/// Writes a file so that a reader sees either the old or the new content, even after a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write()
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
        .ctx(|| format!("write {}", path.display()))
}

/// The name init carries until it execs (as runc's "runc:[2:INIT]").
pub const INIT_COMM: &std::ffi::CStr = c"husk:[2:INIT]";

/// What `/proc/PID/stat` says of a process: whether it lives, and when it started.
pub fn proc_start_time(pid: Pid) -> Option<(char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl State {
    /// Whether the recorded init still runs (a zombie counts as gone).
    pub fn init_alive(&self) -> bool {
        self.pid > 0
            && matches!(proc_start_time(Pid::from_raw(self.pid)),
                Some((st, start)) if start == self.pid_start && st != 'Z' && st != 'X')
    }

    /// Whether init still waits for `start` (it has not exec'd the user's program).
    fn init_waiting(&self) -> bool {
        fs::read_to_string(format!("/proc/{}/comm", self.pid))
            .is_ok_and(|c| c.trim_end().as_bytes() == INIT_COMM.to_bytes())
    }

    pub fn status(&self, dir: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        // A `start` killed after it released init leaves the fifo: init's name tells.
        if dir.join(EXEC_FIFO).exists() && self.init_waiting() {
            return Status::Created;
        }
        if self.cgroup.is_frozen() {
            return Status::Paused;
        }
        Status::Running
    }

    /// The state hooks get on stdin.
    pub fn hook_state(&self, status: &str) -> serde_json::Value {
        crate::hooks::state_json(&self.id, status, self.pid, &self.bundle, &self.annotations)
    }

    /// The JSON `husk state` prints: runc's fields, in runc's shape.
    pub fn to_json(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        let mut v = serde_json::json!({
            "ociVersion": crate::spec::OCI_VERSION,
            "id": self.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
        });
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::json!(self.annotations);
        }
        v["owner"] = serde_json::json!(self.owner);
        v
    }
}

/// A container's state read without its lock (writes are atomic, so a reader sees a whole
/// state): for `list`, which must not wait behind a create or a delete.
pub fn read_unlocked(root: &Path, id: &str) -> Option<State> {
    let bytes = fs::read(root.join(id).join(STATE_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every container id under `root`, sorted. A directory without a state file is a create that
/// has not finished (or was killed): it is listed with status `creating`.
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("read {}", root.display()), &e)),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| validate_id(id).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_the_root_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\0b",
            "sp ace",
            &"x".repeat(1025),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "test_busybox", "k8s.pod-1+x", &"f".repeat(64)] {
            validate_id(good).unwrap();
        }
    }

    #[test]
    fn reads_own_start_time() {
        let (st, start) = proc_start_time(nix::unistd::getpid()).unwrap();
        assert!(st == 'R' || st == 'S', "{st}");
        assert!(start > 0);
    }
}
