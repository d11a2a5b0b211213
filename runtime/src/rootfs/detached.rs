//! Mounts the runtime makes on the host before it forks, detached, for init to move into
//! place (move_mount) on its checked mountpoint:
//! - id-mapped mounts (`mounts[].uidMappings`/`gidMappings`, options `idmap` and `ridmap`):
//!   only there may husk change how a filesystem's owners appear. A detached copy of the
//!   source (open_tree) gets the maps of a user namespace made for it (mount_setattr
//!   MOUNT_ATTR_IDMAP).
//! - every bind mount of a container with its own user namespace: its root may not reach a
//!   source that only the host's root can (a 0700 directory, say).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};

use super::mounts::is_bind;
use crate::error::{Context, Error, Result};
use crate::namespaces::map_text;
use crate::sys;

/// The detached mounts, one slot per entry of `mounts`.
pub struct Detached(Vec<Option<OwnedFd>>);

impl Detached {
    pub fn get(&self, i: usize) -> Option<&OwnedFd> {
        self.0.get(i).and_then(Option::as_ref)
    }
}

/// Makes the config's detached mounts: the id-mapped ones, and with `user_ns` (a new user
/// namespace, made by a privileged husk) every bind.
pub fn prepare(spec: &Spec, user_ns: bool) -> Result<Detached> {
    let binds_too = user_ns && nix::unistd::geteuid().is_root();
    let mut userns: HashMap<String, OwnedFd> = HashMap::new();
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let at = |e: Error| e.context(format!("mounts[{i}]"));
        let mapping = wanted(spec, m).map_err(at)?;
        if mapping.is_none() && !(binds_too && is_bind(m)) {
            out.push(None);
            continue;
        }
        let source = m.source().clone().unwrap_or_default();
        let bind_rec = m
            .options()
            .iter()
            .flatten()
            .any(|o| o == "rbind" || o == "ridmap");
        let tree = sys::open_tree_clone(&source, bind_rec)
            .ctx(|| format!("open_tree {}", source.display()))
            .map_err(at)?;
        let Some(Mapping {
            uids,
            gids,
            recursive,
        }) = mapping
        else {
            out.push(Some(tree));
            continue;
        };
        let ns = match userns.entry(format!("{}|{}", map_text(&uids), map_text(&gids))) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(mapped_userns(&uids, &gids).map_err(at)?),
        };
        sys::mount_setattr_idmap(tree.as_fd(), recursive, ns.as_fd())
            .ctx(|| format!("id-map {}", source.display()))
            .map_err(|e| match e.errno() {
                Some(nix::errno::Errno::EINVAL) => e.with_hint(
                    "the filesystem may not support id-mapped mounts (Linux 5.12+; tmpfs needs 6.3+)",
                ),
                _ => e,
            })
            .map_err(at)?;
        out.push(Some(tree));
    }
    Ok(Detached(out))
}

struct Mapping {
    uids: Vec<LinuxIdMapping>,
    gids: Vec<LinuxIdMapping>,
    /// `ridmap`: submounts are id-mapped too.
    recursive: bool,
}

/// The mappings of an id-mapped mount, or None for a plain one. `idmap`/`ridmap` without
/// mappings of their own take the container's (runc's reading of the spec).
fn wanted(spec: &Spec, m: &Mount) -> Result<Option<Mapping>> {
    let opts = m.options().clone().unwrap_or_default();
    let recursive = opts.iter().any(|o| o == "ridmap");
    let flagged = recursive || opts.iter().any(|o| o == "idmap");
    let (u, g) = (m.uid_mappings().clone(), m.gid_mappings().clone());
    if u.is_none() && g.is_none() && !flagged {
        return Ok(None);
    }
    if !is_bind(m) {
        return Err(Error::msg(format!(
            "{}: id-mapped mounts must be bind mounts",
            m.destination().display()
        )));
    }
    let linux = spec.linux().as_ref();
    let (u, g) = match (u, g) {
        (Some(u), Some(g)) => (u, g),
        (None, None) => match (
            linux.and_then(|l| l.uid_mappings().clone()),
            linux.and_then(|l| l.gid_mappings().clone()),
        ) {
            (Some(u), Some(g)) => (u, g),
            _ => {
                return Err(Error::msg(format!(
                    "{}: idmap without uidMappings/gidMappings needs the container's user namespace mappings",
                    m.destination().display()
                )))
            }
        },
        _ => {
            return Err(Error::msg(format!(
                "{}: uidMappings and gidMappings go together",
                m.destination().display()
            )))
        }
    };
    if u.is_empty() || g.is_empty() {
        return Err(Error::msg(format!(
            "{}: empty uidMappings or gidMappings",
            m.destination().display()
        )));
    }
    Ok(Some(Mapping {
        uids: u,
        gids: g,
        recursive,
    }))
}

/// A user namespace with these maps, held by an fd: a child unshares it and waits while we
/// write its maps and open it, then exits.
fn mapped_userns(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let (ready_r, ready_w) = nix::unistd::pipe().ctx(|| "pipe")?;
    let (done_r, done_w) = nix::unistd::pipe().ctx(|| "pipe")?;
    let child = match sys::fork().ctx(|| "fork")? {
        ForkResult::Child => {
            drop(ready_r);
            drop(done_w);
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
            let _ = nix::unistd::write(&ready_w, if ok { b"1" } else { b"0" });
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&done_r, &mut b);
            sys::exit_now(0)
        }
        ForkResult::Parent { child } => child,
    };
    drop(ready_w);
    drop(done_r);
    let result = (|| {
        let mut b = [0u8; 1];
        nix::unistd::read(&ready_r, &mut b).ctx(|| "wait for the id-map user namespace")?;
        if b[0] != b'1' {
            return Err(Error::msg(
                "unshare a user namespace for an id-mapped mount failed",
            ));
        }
        for (file, map) in [("uid_map", uids), ("gid_map", gids)] {
            let p = format!("/proc/{child}/{file}");
            let text = map_text(map);
            std::fs::write(&p, &text).ctx(|| format!("write {p} {:?}", text.trim_end()))?;
        }
        std::fs::File::open(Path::new(&format!("/proc/{child}/ns/user")))
            .map(OwnedFd::from)
            .ctx(|| format!("open /proc/{child}/ns/user"))
    })();
    drop(done_w);
    let _ = waitpid(child, None);
    result
}
