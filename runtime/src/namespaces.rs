//! Linux namespaces: joining existing ones by path, creating new ones, user-namespace id
//! mappings, time offsets, and the UTS names that live in them.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};
use crate::spec::ns_name;

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        // CLONE_NEWTIME shares its value with CSIGNAL's bit 7; nix has no constant for it.
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The name of a namespace type under /proc/PID/ns.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Network => "net",
        other => ns_name(other),
    }
}

/// What the config asks for: namespaces to join (opened now, so a bad path fails before any
/// process exists) and namespaces to create.
pub struct Plan {
    /// In join order: the user namespace first, so the others are joined with its privileges.
    pub join: Vec<(LinuxNamespaceType, File)>,
    pub new: CloneFlags,
    pub new_user: bool,
    pub new_pid: bool,
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let mut plan = Plan {
            join: Vec::new(),
            new: CloneFlags::empty(),
            new_user: false,
            new_pid: false,
        };
        let list = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for ns in &list {
            match ns.path() {
                Some(p) if !p.as_os_str().is_empty() => {
                    let f = File::open(p).ctx(|| {
                        format!(
                            "linux.namespaces: open {} namespace {}",
                            ns_name(ns.typ()),
                            p.display()
                        )
                    })?;
                    check_kind(&f, ns.typ(), p)?;
                    plan.join.push((ns.typ(), f));
                }
                _ => {
                    plan.new |= clone_flag(ns.typ());
                    plan.new_user |= ns.typ() == LinuxNamespaceType::User;
                    plan.new_pid |= ns.typ() == LinuxNamespaceType::Pid;
                }
            }
        }
        plan.join
            .sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
        Ok(plan)
    }

    /// Joins the existing namespaces, then creates the new ones. New pid and time namespaces
    /// apply to children only: the caller forks the container's init afterwards.
    pub fn enter(&self) -> Result<()> {
        for (t, f) in &self.join {
            setns(f.as_fd(), clone_flag(*t)).ctx(|| format!("join {} namespace", ns_name(*t)))?;
        }
        if !self.new.is_empty() {
            unshare(self.new)
                .ctx(|| format!("create namespaces {:?}", self.new))
                .map_err(|e| {
                    if e.errno() == Some(nix::errno::Errno::EINVAL) {
                        e.with_hint("does this kernel support every namespace asked for?")
                    } else {
                        e
                    }
                })?;
        }
        Ok(())
    }

    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(clone_flag(t))
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.creates(t) || self.join.iter().any(|(j, _)| *j == t)
    }
}

/// A namespace path must be a namespace (nsfs) file; opened through /proc/PID/ns its fd's
/// link also names its kind ("net:[4026531992]"), which must be the one asked for. A bind
/// mount of one (/run/netns/NAME) links to its own path: setns checks its kind.
fn check_kind(f: &File, t: LinuxNamespaceType, path: &std::path::Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    const NSFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x6e73_6673);
    let is_nsfs = nix::sys::statfs::fstatfs(f).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC);
    if !is_nsfs {
        return Err(Error::msg(format!(
            "linux.namespaces: {} is not a {} namespace (not a namespace file at all)",
            path.display(),
            ns_name(t)
        )));
    }
    let link = std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap_or_default();
    let link = link.to_string_lossy();
    let Some((kind, _)) = link.split_once(":[") else {
        return Ok(());
    };
    // The kernel calls the network namespace "net" and the mount namespace "mnt".
    let want = match t {
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Mount => "mnt",
        other => ns_name(other),
    };
    if kind == want || kind == format!("{want}_for_children") {
        return Ok(());
    }
    Err(Error::msg(format!(
        "linux.namespaces: {} is not a {} namespace (it is {link})",
        path.display(),
        ns_name(t)
    )))
}

/// Writes the uid and gid maps of a process that has just created a user namespace.
/// An unprivileged runtime must deny setgroups first (user_namespaces(7)).
/// Whether this process runs in a user namespace other than the initial one.
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

pub fn write_id_maps(pid: Pid, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uid = linux.and_then(|l| l.uid_mappings().as_ref());
    let gid = linux.and_then(|l| l.gid_mappings().as_ref());
    if !nix::unistd::geteuid().is_root() {
        // An unprivileged process may map only itself, once; more takes the setuid helpers
        // of shadow's uidmap, which check /etc/subuid and /etc/subgid.
        if !only_self(uid, nix::unistd::geteuid().as_raw())
            || !only_self(gid, nix::unistd::getegid().as_raw())
        {
            helper_map(pid, "newuidmap", "uid", uid)?;
            return helper_map(pid, "newgidmap", "gid", gid);
        }
        let p = format!("/proc/{pid}/setgroups");
        std::fs::write(&p, "deny").ctx(|| format!("write deny to {p}"))?;
    }
    write_map(pid, "uid_map", uid)?;
    write_map(pid, "gid_map", gid)
}

/// A map as /proc/PID/uid_map takes it: a line of "inside outside size" per range.
pub fn map_text(map: &[LinuxIdMapping]) -> String {
    map.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Whether a map is one range of size 1 for `id` itself (what an unprivileged user may write).
fn only_self(map: Option<&Vec<LinuxIdMapping>>, id: u32) -> bool {
    map.is_some_and(|m| m.len() == 1 && m[0].host_id() == id && m[0].size() == 1)
}

/// Maps through newuidmap/newgidmap: `helper PID ns host size …`.
fn helper_map(
    pid: Pid,
    helper: &str,
    field: &str,
    map: Option<&Vec<LinuxIdMapping>>,
) -> Result<()> {
    let map = map
        .filter(|m| !m.is_empty())
        .ok_or_else(|| Error::msg(format!("a user namespace needs linux.{field}Mappings")))?;
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in map {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd.output().map_err(|e| {
        Error::io(format!("linux.{field}Mappings: run {helper}"), &e)
            .with_hint("an unprivileged user mapping more than itself needs shadow's uidmap package (newuidmap, newgidmap)")
    })?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "linux.{field}Mappings: {helper} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .with_hint(format!(
            "the ranges must be granted to this user in /etc/sub{field}"
        )));
    }
    Ok(())
}

fn write_map(pid: Pid, file: &str, map: Option<&Vec<LinuxIdMapping>>) -> Result<()> {
    let Some(map) = map.filter(|m| !m.is_empty()) else {
        return Err(Error::msg(format!(
            "a user namespace needs linux.{}Mappings",
            if file == "uid_map" { "uid" } else { "gid" }
        )));
    };
    let text = map_text(map);
    let p = format!("/proc/{pid}/{file}");
    std::fs::write(&p, &text)
        .ctx(|| {
            let field = if file == "uid_map" { "uid" } else { "gid" };
            format!("linux.{field}Mappings: write {p} {:?}", text.trim_end())
        })
        .map_err(|e| {
            e.with_hint(
                "each range must be mapped once, and an unprivileged user may map only itself",
            )
        })
}

/// Writes `linux.timeOffsets` for the time namespace just created (before any child exists).
pub fn write_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in offsets {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", &text).ctx(|| {
        format!(
            "linux.timeOffsets: write {:?} to /proc/self/timens_offsets",
            text.trim_end()
        )
    })
}

/// Sets `hostname` and `domainname` in the container's UTS namespace.
pub fn set_uts_names(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| format!("set hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        crate::sys::setdomainname(d).ctx(|| format!("set domainname {d:?}"))?;
    }
    Ok(())
}

/// The namespace files of a running container's init, for `exec` to join.
pub fn of_process(pid: Pid, spec: &Spec) -> Result<Vec<(LinuxNamespaceType, File)>> {
    let mut out = Vec::new();
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in list {
        let p = PathBuf::from(format!("/proc/{pid}/ns/{}", proc_name(ns.typ())));
        let f = File::open(&p).ctx(|| format!("open {}", p.display()))?;
        out.push((ns.typ(), f));
    }
    out.sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
    Ok(out)
}
