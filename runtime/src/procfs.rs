//! Writes into the container's procfs (sysctls, LSM labels) through a procfs husk has
//! checked: a process sharing a volume or the mount namespace can put a bind mount or a
//! symlink on a /proc path to send such a write elsewhere (CVE-2025-52881). /proc must be the
//! root of a procfs, and each file is opened beneath it without following a symlink or
//! crossing into another mount.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};

use crate::error::{Context, Error, Result};

/// The inode number of every procfs root.
const PROC_ROOT_INO: u64 = 1;

/// Writes `value` to `/proc/<rel>`. A leading `thread-self/` (a symlink, which is not
/// followed) is spelt out as this thread's `<pid>/task/<tid>/`.
pub fn write(rel: &str, value: &[u8]) -> Result<()> {
    let shown = format!("/proc/{rel}");
    let f = open(rel, OFlag::O_WRONLY)?;
    let n = nix::unistd::write(&f, value).ctx(|| format!("write {shown}"))?;
    if n != value.len() {
        return Err(Error::msg(format!(
            "write {shown}: {n} of {} bytes",
            value.len()
        )));
    }
    Ok(())
}

/// Whether `/proc/<rel>` exists (in the checked procfs).
pub fn exists(rel: &str) -> bool {
    open(rel, OFlag::O_PATH).is_ok()
}

fn open(rel: &str, mode: OFlag) -> Result<OwnedFd> {
    let rel = match rel.strip_prefix("thread-self/") {
        Some(rest) => format!(
            "{}/task/{}/{rest}",
            nix::unistd::getpid(),
            nix::unistd::gettid()
        ),
        None => rel.to_string(),
    };
    let proc = proc_root()?;
    let how = OpenHow::new()
        .flags(mode | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    let f = openat2(&proc, rel.as_str(), how).map_err(|e| {
        let err = Error::sys(format!("open /proc/{rel}"), e);
        match e {
            Errno::EXDEV => {
                err.with_hint("a mount covers this /proc path: refusing to write through it")
            }
            Errno::ELOOP => {
                err.with_hint("a symlink sits on this /proc path: refusing to follow it")
            }
            _ => err,
        }
    })?;
    check_procfs(&f).ctx(|| format!("/proc/{rel}"))?;
    Ok(f)
}

/// /proc, checked to be the root of a procfs mount.
fn proc_root() -> Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    let proc = openat2(nix::fcntl::AT_FDCWD, "/proc", how).ctx(|| "open /proc")?;
    check_procfs(&proc).ctx(|| "/proc")?;
    let st = nix::sys::stat::fstat(&proc).ctx(|| "stat /proc")?;
    if st.st_ino != PROC_ROOT_INO {
        return Err(Error::msg(format!(
            "/proc is not the root of a procfs (inode {})",
            st.st_ino
        )));
    }
    Ok(proc)
}

fn check_procfs(f: &impl AsFd) -> Result<()> {
    let fs = fstatfs(f).ctx(|| "statfs")?;
    if fs.filesystem_type() != PROC_SUPER_MAGIC {
        return Err(Error::msg(format!(
            "not on a procfs (filesystem magic {:#x})",
            fs.filesystem_type().0
        )));
    }
    Ok(())
}
