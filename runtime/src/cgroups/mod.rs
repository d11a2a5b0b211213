//! Placing a container in its `cgroupsPath` on cgroup v1, v2 and the hybrid layout, and the
//! operations that work through the cgroup: listing, signalling, freezing and removing.
//!
//! The resolved directories are recorded in the container's state (`Placement`), so later
//! commands never re-derive them from a host whose mounts may have changed.

pub mod devices;
pub mod oom;
pub mod systemd;
pub mod v1;
pub mod v2;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// Only v1 hierarchies.
    #[default]
    Legacy,
    /// v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified.
    Hybrid,
    /// Pure cgroup v2.
    Unified,
}

/// Where a container's processes live: one directory per hierarchy.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Placement {
    pub layout: Layout,
    /// (controllers, directory) for each v1 hierarchy, e.g. ("cpu,cpuacct", /sys/fs/cgroup/cpu,cpuacct/c1).
    #[serde(default)]
    pub v1: Vec<(String, PathBuf)>,
    /// The directory in the cgroup2 hierarchy (unified or hybrid).
    #[serde(default)]
    pub v2: Option<PathBuf>,
    /// Directories husk made, in creation order; `delete` removes these and nothing else.
    #[serde(default)]
    pub created: Vec<PathBuf>,
    /// With the systemd driver, the scope that owns the cgroup (systemd makes and removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
    /// The cgroup mounts `create` read, kept for the rest of this run of husk: the systemd
    /// driver places its directories twice more (`expected`, `join_init`).
    #[serde(skip)]
    mounts: Vec<Mount>,
}

/// A cgroup mount as `/proc/self/mountinfo` describes it.
#[derive(Debug, Clone)]
pub struct Mount {
    pub mountpoint: PathBuf,
    /// The cgroup path at the root of this mount.
    pub root: String,
    /// v1: the controllers (and `name=` hierarchy) it carries, comma-joined as in /proc/self/cgroup.
    pub controllers: Option<String>,
}

const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The cgroup mounts of this mount namespace, first mount of each hierarchy only.
pub fn mounts() -> Result<Vec<Mount>> {
    let info = fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    Ok(parse_mountinfo(&info))
}

fn parse_mountinfo(info: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let controllers = match post[0] {
            "cgroup2" => None,
            "cgroup" => {
                let mut c: Vec<&str> = post[2]
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                    .collect();
                c.sort_by_key(|o| o.starts_with("name="));
                Some(c.join(","))
            }
            _ => continue,
        };
        if out.iter().any(|m| m.controllers == controllers) {
            continue;
        }
        out.push(Mount {
            mountpoint: PathBuf::from(unescape(pre[4])),
            root: unescape(pre[3]),
            controllers,
        });
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal.
pub(crate) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup in each hierarchy, keyed as in /proc/self/cgroup ("" for v2).
fn own_cgroups() -> Result<Vec<(String, String)>> {
    let s = fs::read_to_string("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup")?;
    Ok(s.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next()?;
            let ctrl = it.next()?;
            let path = it.next()?;
            let mut c: Vec<&str> = ctrl.split(',').filter(|c| !c.is_empty()).collect();
            c.sort_by_key(|o| o.starts_with("name="));
            Some((c.join(","), path.to_string()))
        })
        .collect())
}

/// The cgroup path a config asks for: absolute as given, relative to the runtime's own cgroup,
/// or, when unset, `<own cgroup>/<id>` (runc's rule for the cgroupfs driver).
fn wanted_path(spec: &Spec, id: &str, own: &str) -> Result<String> {
    let p = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let p = p
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if p.split('/').any(|c| c == "..") {
        return Err(Error::msg(format!(
            "linux.cgroupsPath {p:?}: must not contain \"..\""
        )));
    }
    if p.contains(':') && !p.starts_with('/') {
        return Err(Error::msg(format!(
            "linux.cgroupsPath {p:?}: looks like a systemd slice:prefix:name path"
        ))
        .with_hint("run with --systemd-cgroup, or give a path like /mygroup/c1"));
    }
    Ok(if p.starts_with('/') {
        p
    } else if p.is_empty() {
        format!("{}/{id}", own.trim_end_matches('/'))
    } else {
        format!("{}/{p}", own.trim_end_matches('/'))
    })
}

impl Placement {
    /// Creates the container's cgroup directories and applies its resources (the spec's
    /// `linux.resources`), before any process is placed there. `journal` is given the
    /// directories about to be made before any is: a crash from then on leaves a record that
    /// `delete --force` cleans up from.
    ///
    /// With the systemd driver nothing is made yet: systemd makes the scope when it is given
    /// the container's first process (`join_init`).
    pub fn create(
        spec: &Spec,
        id: &str,
        use_systemd: bool,
        journal: impl FnOnce(&Placement) -> Result<()>,
    ) -> Result<Placement> {
        let mounts = mounts()?;
        let own = own_cgroups()?;
        let unified = mounts.iter().find(|m| m.controllers.is_none());
        let layout = match (unified, mounts.iter().any(|m| m.controllers.is_some())) {
            (Some(_), false) => Layout::Unified,
            (Some(_), true) => Layout::Hybrid,
            (None, true) => Layout::Legacy,
            (None, false) => {
                return Err(Error::msg("no cgroup filesystem is mounted")
                    .with_hint("mount cgroup2 on /sys/fs/cgroup"))
            }
        };
        let rootless = !nix::unistd::geteuid().is_root();
        // In a user namespace (rootless podman) the system's manager is out of reach too.
        let user = rootless || crate::namespaces::in_user_namespace();
        if use_systemd && user && layout != Layout::Unified {
            // A user's manager can delegate only on v2: elsewhere rootless goes without (runc).
            crate::log::warn("rootless: no cgroup (systemd delegates to users on cgroup v2 only): resource limits are not applied");
            let none = Placement {
                layout,
                ..Default::default()
            };
            journal(&none)?;
            return Ok(none);
        }
        if use_systemd {
            let unit = systemd::Unit::from_spec(spec, id, user)?;
            systemd::check(&unit)?;
            // Only the unit: its directories are known, and the container's, once systemd
            // has started the scope for it (another container may hold the name).
            let planned = Placement {
                layout,
                systemd: Some(unit),
                mounts,
                ..Default::default()
            };
            journal(&planned)?;
            return Ok(planned);
        }
        let mut targets = Vec::new();
        for m in &mounts {
            let key = m.controllers.clone().unwrap_or_default();
            let own_path = own
                .iter()
                .find(|(k, _)| *k == key)
                .map_or("/", |(_, p)| p.as_str());
            targets.push((m, host_dir(m, &wanted_path(spec, id, own_path)?)));
        }
        let mut planned = Placement {
            layout,
            ..Default::default()
        };
        for (m, dir) in &targets {
            match &m.controllers {
                Some(c) => planned.v1.push((c.clone(), dir.clone())),
                None => planned.v2 = Some(dir.clone()),
            }
            let mut missing: Vec<PathBuf> = dir
                .ancestors()
                .take_while(|p| !p.exists())
                .map(Path::to_path_buf)
                .collect();
            missing.reverse();
            planned.created.extend(missing);
        }
        journal(&planned)?;
        let mut pl = Placement {
            layout,
            ..Default::default()
        };
        let mut denied = Vec::new();
        let result = (|| -> Result<()> {
            for (m, dir) in targets {
                match pl.mkdir_all(&dir) {
                    Ok(()) => {}
                    Err(e)
                        if rootless
                            && matches!(
                                e.errno(),
                                Some(
                                    nix::errno::Errno::EACCES
                                        | nix::errno::Errno::EPERM
                                        | nix::errno::Errno::EROFS
                                )
                            ) =>
                    {
                        denied.push(m.mountpoint.display().to_string());
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                match &m.controllers {
                    Some(c) => {
                        if c.split(',').any(|x| x == "cpuset") {
                            v1::inherit_cpuset(&m.mountpoint, &dir)?;
                        }
                        pl.v1.push((c.clone(), dir))
                    }
                    None => pl.v2 = Some(dir),
                }
            }
            if !denied.is_empty() {
                crate::log::warn(&format!(
                    "rootless: no cgroup (no write access to {}): resource limits are not applied; delegate a cgroup v2 subtree to this user for them",
                    denied.join(", ")
                ));
            }
            // runc's warning, word for word: a shared cgroup is allowed, but rarely meant.
            let procs = pl.pids().len();
            if procs > 0 {
                crate::log::warn(&format!(
                    "container's cgroup is not empty: {procs} process(es) found"
                ));
            }
            // A frozen cgroup would hold the init forever before it could report anything.
            if pl.is_frozen() {
                return Err(Error::msg("container's cgroup unexpectedly frozen")
                    .with_hint("thaw it (freezer.state THAWED or cgroup.freeze 0) or use another cgroupsPath"));
            }
            pl.configure(spec, unified.map(|m| m.mountpoint.as_path()), rootless)
        })();
        match result {
            Ok(()) => Ok(pl),
            Err(e) => {
                pl.destroy();
                Err(e)
            }
        }
    }

    /// Device rules, controllers for the leaf, and the resource limits.
    fn configure(&self, spec: &Spec, unified_mount: Option<&Path>, rootless: bool) -> Result<()> {
        if let (Some(dir), false) = (self.v1_dir("devices"), rootless) {
            devices::apply_v1(dir, spec)?;
        }
        if let (Layout::Unified, Some(dir), false) = (self.layout, &self.v2, rootless) {
            devices::apply_v2(dir, spec)?;
        }
        if let (Layout::Unified, Some(dir), Some(m)) = (self.layout, &self.v2, unified_mount) {
            v2::enable_controllers(m, dir)?;
        }
        if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            self.apply(r)?;
        }
        Ok(())
    }

    /// Places the container's first process. With the systemd driver this is when the scope
    /// is started, with the process in it, and then set up as `create` sets up a cgroupfs one.
    pub fn join_init(&mut self, pid: Pid, spec: &Spec) -> Result<()> {
        let Some(unit) = self.systemd.clone() else {
            return self.add(pid);
        };
        let mut accepted = false;
        let cgroup = systemd::start(&unit, pid, spec, self.layout, &mut accepted);
        if cgroup.is_err() && !accepted {
            // Nothing of ours to stop (the name may even be another container's).
            self.systemd = None;
        }
        let cgroup = cgroup?;
        let mounts = self.cgroup_mounts()?;
        self.set_dirs(&mounts, &cgroup);
        // systemd makes the scope only in the hierarchies it manages (all of v2; on v1 those
        // its accounting properties name): the other controllers' directories are husk's.
        for dir in self
            .v1
            .iter()
            .map(|(_, d)| d.clone())
            .chain(self.v2.clone())
            .collect::<Vec<_>>()
        {
            self.mkdir_all(&dir)?;
        }
        for (c, dir) in &self.v1 {
            if c.split(',').any(|x| x == "cpuset") {
                let m = mounts.iter().find(|m| m.controllers.as_deref() == Some(c));
                if let Some(m) = m {
                    v1::inherit_cpuset(&m.mountpoint, dir)?;
                }
            }
        }
        self.add(pid)?;
        let unified = mounts.iter().find(|m| m.controllers.is_none());
        // A user's scope takes limits but no device filter (that needs CAP_SYS_ADMIN).
        self.configure(spec, unified.map(|m| m.mountpoint.as_path()), unit.user)
    }

    fn set_dirs(&mut self, mounts: &[Mount], cgroup: &str) {
        self.v1.clear();
        self.v2 = None;
        for m in mounts {
            let dir = host_dir(m, cgroup);
            match &m.controllers {
                Some(c) => self.v1.push((c.clone(), dir)),
                None => self.v2 = Some(dir),
            }
        }
    }

    /// What init is to see of its cgroups (to mount them in the container): with the systemd
    /// driver, the directories the manager will give the scope.
    pub fn expected(&self) -> Result<Placement> {
        let mut p = self.clone();
        if let Some(u) = &self.systemd {
            p.set_dirs(&self.cgroup_mounts()?, &systemd::expected_cgroup(u)?);
        }
        Ok(p)
    }

    fn cgroup_mounts(&self) -> Result<Vec<Mount>> {
        match self.mounts.is_empty() {
            true => mounts(),
            false => Ok(self.mounts.clone()),
        }
    }

    /// `update`: new limits, told to systemd too when it owns the cgroup.
    pub fn update(&self, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
        if let Some(unit) = &self.systemd {
            systemd::update(unit, r, self.layout)?;
        }
        self.apply(r)
    }

    fn mkdir_all(&mut self, dir: &Path) -> Result<()> {
        // A parent another container's delete removes under us (it was empty a moment ago)
        // shows up as ENOENT: look again.
        for attempt in 0.. {
            let mut missing = Vec::new();
            let mut p = dir;
            while !p.exists() {
                missing.push(p.to_path_buf());
                p = match p.parent() {
                    Some(p) => p,
                    None => break,
                };
            }
            let mut vanished = false;
            for d in missing.into_iter().rev() {
                match fs::create_dir(&d) {
                    Ok(()) => self.created.push(d),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    Err(e) if e.kind() == ErrorKind::NotFound && attempt < 5 => {
                        vanished = true;
                        break;
                    }
                    Err(e) => return Err(Error::io(format!("create cgroup {}", d.display()), &e)),
                }
            }
            if !vanished {
                break;
            }
        }
        Ok(())
    }

    /// Writes `linux.resources` (all but devices) into the container's cgroups: at create,
    /// and again for `update`.
    pub fn apply(&self, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let r = &unset_zeros(r);
        match (self.layout, &self.v2) {
            (Layout::Unified, Some(dir)) => v2::apply_resources(dir, r),
            (Layout::Unified, None) => Ok(()),
            _ => v1::apply_resources(self, r),
        }
    }

    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.split(',').any(|x| x == controller))
            .map(|(_, p)| p.as_path())
    }

    /// Moves a process (and so everything it forks later) into every hierarchy.
    pub fn add(&self, pid: Pid) -> Result<()> {
        self.add_to_sub(pid, &[])
    }

    /// Places an `exec`'s process in the container's cgroups. On v2 a container that has
    /// handed domain controllers on to sub-cgroups of its own (its cgroup namespace makes that
    /// easy) can hold no process at its top any more (EBUSY): the process then joins its
    /// init's cgroup, as with runc. `exec --cgroup /` asks for the top and gets the error.
    pub fn add_exec(&self, pid: Pid, init: Pid) -> Result<()> {
        let (Layout::Unified, Some(top)) = (self.layout, &self.v2) else {
            return self.add(pid);
        };
        match fs::write(top.join("cgroup.procs"), pid.to_string()) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            // In the words add() has for it.
            Err(_) => return self.add(pid),
        }
        let init_cgroup = fs::read_to_string(format!("/proc/{init}/cgroup"))
            .ctx(|| format!("read /proc/{init}/cgroup"))?;
        let cg = init_cgroup
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| Error::msg(format!("/proc/{init}/cgroup: no cgroup v2 line")))?;
        let m = self
            .cgroup_mounts()?
            .into_iter()
            .find(|m| m.controllers.is_none())
            .ok_or_else(|| Error::msg("no cgroup2 mount"))?;
        let f = host_dir(&m, cg).join("cgroup.procs");
        fs::write(&f, pid.to_string()).map_err(|e| {
            Error::io(
                format!("adding pid {pid} to init's cgroup {}", f.display()),
                &e,
            )
        })
    }

    /// Places a process in the container's cgroups or, for `exec --cgroup [CONTROLLERS:]PATH`,
    /// in sub-cgroups of them (for every hierarchy, or for the named controllers' only).
    pub fn add_to_sub(&self, pid: Pid, specs: &[String]) -> Result<()> {
        let mut bare: Option<&str> = None;
        let mut by_ctrl: Vec<(&str, &str)> = Vec::new();
        for s in specs {
            let (ctrls, path) = match s.split_once(':') {
                Some((c, p)) => (Some(c), p),
                None => (None, s.as_str()),
            };
            if path.split('/').any(|c| c == "..") {
                return Err(Error::msg(format!(
                    "--cgroup: {path} is not a sub cgroup path"
                )));
            }
            match ctrls {
                None => bare = Some(path),
                Some(list) => {
                    for c in list.split(',') {
                        let known = self.v1_dir(c).is_some()
                            || (self.layout == Layout::Unified && c.is_empty());
                        if !known {
                            return Err(Error::msg(format!("--cgroup: unknown controller {c:?}")));
                        }
                        by_ctrl.push((c, path));
                    }
                }
            }
        }
        let dirs = self
            .v1
            .iter()
            .map(|(c, d)| (c.as_str(), d.as_path()))
            .chain(self.v2.as_deref().map(|d| ("", d)));
        for (ctrls, dir) in dirs {
            let sub = by_ctrl
                .iter()
                .find(|(c, _)| ctrls.split(',').any(|x| x == *c))
                .map(|(_, p)| *p)
                .or(bare)
                .unwrap_or("");
            let mut target = dir.to_path_buf();
            target.extend(sub.split('/').filter(|c| !c.is_empty() && *c != "."));
            let f = target.join("cgroup.procs");
            if let Err(e) = fs::write(&f, pid.to_string()) {
                return Err(if e.kind() == ErrorKind::NotFound {
                    Error::msg(format!(
                        "adding pid {pid} to {}: no such file or directory",
                        f.display()
                    ))
                } else if e.raw_os_error() == Some(libc::EBUSY) {
                    // runc's words, which its tests match.
                    Error::msg(format!(
                        "adding pid {pid} to cgroups: {}: device or resource busy",
                        f.display()
                    ))
                    .with_hint("on cgroup v2 a cgroup that has given its controllers to sub-cgroups takes no process: name a sub-cgroup with --cgroup")
                } else if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                    // v2's no-internal-process rule: the parent holds processes (typically
                    // the caller's own cgroup, under a relative cgroupsPath).
                    Error::io(format!("adding pid {pid} to {}", f.display()), &e).with_hint(
                        "cgroup v2 puts no process below a cgroup that has processes itself: give linux.cgroupsPath an absolute path outside the caller's cgroup, or use --systemd-cgroup",
                    )
                } else {
                    Error::io(format!("adding pid {pid} to {}", f.display()), &e)
                });
            }
        }
        Ok(())
    }

    /// Resource usage in the shape of runc's `events` "data".
    pub fn stats(&self) -> serde_json::Value {
        match (self.layout, &self.v2) {
            (Layout::Unified, Some(d)) => v2::stats(d),
            _ => v1::stats(self),
        }
    }

    /// The container's count of OOM kills, kept past its cgroup (None without a memory cgroup).
    pub fn oom_counter(&self) -> Option<oom::Counter> {
        match (self.layout, &self.v2) {
            (Layout::Unified, Some(d)) => Some(oom::Counter::new(d, true)),
            _ => Some(oom::Counter::new(self.v1_dir("memory")?, false)),
        }
    }

    pub fn oom_kills(&self) -> u64 {
        match (self.layout, &self.v2) {
            (Layout::Unified, Some(d)) => v2::oom_kills(d),
            _ => v1::oom_kills(self),
        }
    }

    /// The processes in the container's cgroup.
    pub fn pids(&self) -> Vec<Pid> {
        let dir = match self.layout {
            Layout::Unified => self.v2.as_deref(),
            _ => self
                .v1_dir("pids")
                .or_else(|| self.v1.first().map(|(_, p)| p.as_path()))
                .or(self.v2.as_deref()),
        };
        let Some(dir) = dir else { return Vec::new() };
        let mut pids = Vec::new();
        collect_pids(dir, &mut pids);
        pids
    }

    /// Sends `sig` to every process in the cgroup, frozen first so that none forks away unseen.
    pub fn signal_all(&self, sig: i32) -> Result<()> {
        if sig == Signal::SIGKILL as i32 {
            if let Some(dir) = self
                .v2
                .as_deref()
                .filter(|_| self.layout == Layout::Unified)
            {
                if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                    return Ok(());
                }
            }
        }
        let freeze = self.freezer_dir().is_some() && !self.is_frozen();
        if freeze {
            let _ = self.freeze(true);
        }
        for pid in self.pids() {
            let _ = crate::sys::kill_raw(pid, sig);
        }
        if freeze {
            let _ = self.freeze(false);
        }
        Ok(())
    }

    /// The directory whose freezer `pause` uses (v2: cgroup.freeze).
    pub fn freezer_dir(&self) -> Option<&Path> {
        match self.layout {
            Layout::Unified => self.v2.as_deref(),
            _ => self.v1_dir("freezer"),
        }
    }

    pub fn is_frozen(&self) -> bool {
        match (self.layout, self.freezer_dir()) {
            (Layout::Unified, Some(d)) => v2::is_frozen(d),
            (_, Some(d)) => v1::is_frozen(d),
            _ => false,
        }
    }

    pub fn freeze(&self, frozen: bool) -> Result<()> {
        match (self.layout, self.freezer_dir()) {
            (Layout::Unified, Some(d)) => v2::freeze(d, frozen),
            (_, Some(d)) => v1::freeze(d, frozen),
            _ => Err(Error::msg("no freezer cgroup for this container")
                .with_hint("mount the v1 freezer controller or use cgroup v2")),
        }
    }

    /// Removes the directories husk created, children first. Processes left inside are killed
    /// first; a cgroup emptied by a dying process may stay busy for a moment.
    pub fn destroy(&self) {
        if !self.pids().is_empty() {
            let _ = self.signal_all(Signal::SIGKILL as i32);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let leaves: Vec<&Path> = self
            .v1
            .iter()
            .map(|(_, d)| d.as_path())
            .chain(self.v2.as_deref())
            .collect();
        // systemd removes the scope's cgroups when it stops the scope; the ones husk made in
        // hierarchies systemd leaves alone, and any it made below the scope, go below.
        let mut dirs: Vec<&Path> = self.created.iter().map(PathBuf::as_path).collect();
        if let Some(unit) = &self.systemd {
            if let Err(e) = systemd::stop(unit) {
                crate::log::warn(&e.to_string());
            }
            for l in &leaves {
                if !dirs.contains(l) {
                    dirs.push(l);
                }
            }
        }
        for dir in dirs.iter().rev() {
            let dir = *dir;
            // A parent made for this container may hold other containers' cgroups by now: it
            // goes only if empty. The container's own cgroups go with whatever was made inside.
            if !leaves.contains(&dir) {
                let _ = fs::remove_dir(dir);
                continue;
            }
            loop {
                match remove_tree(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        crate::log::warn(&format!("remove cgroup {}: {e}", dir.display()));
                        break;
                    }
                }
            }
        }
    }
}

/// A cgroup file holding one number (0 when absent or unreadable: stats are best effort).
/// The `linux.resources` field a cgroup file is written from, to name it in errors.
pub(crate) fn field_of(file: &str) -> &'static str {
    let (controller, rest) = file.split_once('.').unwrap_or((file, ""));
    match (controller, rest) {
        ("hugetlb", _) => "linux.resources.hugepageLimits",
        ("memory", "limit_in_bytes" | "max") => "linux.resources.memory.limit",
        ("memory", "soft_limit_in_bytes" | "low") => "linux.resources.memory.reservation",
        ("memory", "memsw.limit_in_bytes" | "swap.max") => "linux.resources.memory.swap",
        ("memory", "kmem.limit_in_bytes") => "linux.resources.memory.kernel",
        ("memory", "kmem.tcp.limit_in_bytes") => "linux.resources.memory.kernelTCP",
        ("memory", "swappiness") => "linux.resources.memory.swappiness",
        ("memory", "oom_control") => "linux.resources.memory.disableOOMKiller",
        ("cpu", "shares" | "weight") => "linux.resources.cpu.shares",
        ("cpu", "cfs_quota_us" | "max") => "linux.resources.cpu.quota",
        ("cpu", "cfs_period_us") => "linux.resources.cpu.period",
        ("cpu", "rt_runtime_us") => "linux.resources.cpu.realtimeRuntime",
        ("cpu", "rt_period_us") => "linux.resources.cpu.realtimePeriod",
        ("cpuset", "cpus") => "linux.resources.cpu.cpus",
        ("cpuset", "mems") => "linux.resources.cpu.mems",
        ("pids", _) => "linux.resources.pids.limit",
        ("blkio", "weight") | ("io", "weight" | "bfq.weight") => "linux.resources.blockIO.weight",
        ("blkio", "leaf_weight") => "linux.resources.blockIO.leafWeight",
        ("blkio", "weight_device") => "linux.resources.blockIO.weightDevice",
        ("blkio", _) | ("io", "max") => "linux.resources.blockIO",
        ("net_cls", _) => "linux.resources.network.classID",
        ("net_prio", _) => "linux.resources.network.priorities",
        ("rdma", _) => "linux.resources.rdma",
        ("memory", "use_hierarchy") => "linux.resources.memory.useHierarchy",
        _ => "linux.resources",
    }
}

/// `linux.resources` as runc reads it: a 0 in one of these limits means "not set", not "limit
/// to 0" — Docker sends a 0 for every limit it leaves alone.
pub(crate) fn unset_zeros(
    r: &oci_spec::runtime::LinuxResources,
) -> oci_spec::runtime::LinuxResources {
    fn nz<T: Default + PartialEq>(v: Option<T>) -> Option<T> {
        v.filter(|v| *v != T::default())
    }
    let mut r = r.clone();
    if let Some(mut m) = *r.memory() {
        let (l, res, sw, k, kt) = (
            m.limit(),
            m.reservation(),
            m.swap(),
            m.kernel(),
            m.kernel_tcp(),
        );
        m.set_limit(nz(l))
            .set_reservation(nz(res))
            .set_swap(nz(sw))
            .set_kernel(nz(k))
            .set_kernel_tcp(nz(kt));
        r.set_memory(Some(m));
    }
    if let Some(mut c) = r.cpu().clone() {
        let (sh, q, p) = (c.shares(), c.quota(), c.period());
        let (rr, rp) = (c.realtime_runtime(), c.realtime_period());
        c.set_shares(nz(sh))
            .set_quota(nz(q))
            .set_period(nz(p))
            .set_realtime_runtime(nz(rr))
            .set_realtime_period(nz(rp));
        r.set_cpu(Some(c));
    }
    if r.pids().as_ref().is_some_and(|p| p.limit() == 0) {
        r.set_pids(None);
    }
    if let Some(mut b) = r.block_io().clone() {
        let (w, lw) = (b.weight(), b.leaf_weight());
        b.set_weight(nz(w)).set_leaf_weight(nz(lw));
        r.set_block_io(Some(b));
    }
    r
}

/// `linux.resources.rdma` as rdma.max lines ("mlx5_0 hca_handle=2 hca_object=2000"), the same
/// on v1 and v2; devices in name order, so the writes are the same from run to run.
pub(crate) fn rdma_lines(r: &oci_spec::runtime::LinuxResources) -> Vec<String> {
    let mut devices: Vec<_> = r.rdma().iter().flatten().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    devices
        .into_iter()
        .filter(|(_, l)| l.hca_handles().is_some() || l.hca_objects().is_some())
        .map(|(name, l)| {
            let mut line = name.clone();
            if let Some(h) = l.hca_handles() {
                line.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects() {
                line.push_str(&format!(" hca_object={o}"));
            }
            line
        })
        .collect()
}

/// memory.checkBeforeUpdate: a limit below what the cgroup uses now is refused instead of
/// letting the kernel reclaim (or OOM-kill) to reach it.
pub(crate) fn check_usage_below(dir: &Path, usage_file: &str, limit: Option<i64>) -> Result<()> {
    let Some(limit) = limit.filter(|l| *l > 0) else {
        return Ok(());
    };
    let usage = read_u64(dir, usage_file);
    if usage > limit as u64 {
        return Err(Error::msg(format!(
            "linux.resources.memory.limit {limit} is below the {usage} bytes the container uses now (checkBeforeUpdate)"
        ))
        .with_hint("raise the limit, or unset checkBeforeUpdate to let the kernel reclaim"));
    }
    Ok(())
}

pub(crate) fn read_u64(dir: &Path, file: &str) -> u64 {
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// "key value" lines (memory.stat, cpu.stat, cpuacct.stat) as a JSON object of numbers.
pub(crate) fn flat_keyed(dir: &Path, file: &str) -> serde_json::Map<String, serde_json::Value> {
    let text = fs::read_to_string(dir.join(file)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((
                k.to_string(),
                serde_json::json!(v.trim().parse::<u64>().ok()?),
            ))
        })
        .collect()
}

fn host_dir(m: &Mount, cg: &str) -> PathBuf {
    let rel = cg.strip_prefix(m.root.as_str()).unwrap_or(cg);
    let mut p = m.mountpoint.clone();
    for c in rel.split('/').filter(|c| !c.is_empty()) {
        p.push(c);
    }
    p
}

fn collect_pids(dir: &Path, out: &mut Vec<Pid>) {
    if let Ok(s) = fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .map(Pid::from_raw),
        );
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// rmdir of a cgroup and of any sub-cgroups the container made inside it.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    for e in fs::read_dir(dir)?.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    fs::remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 /sub /sys/fs/cgroup/memory rw shared:15 - cgroup cgroup rw,memory
35 30 0:31 / /sys/fs/cgroup/systemd rw shared:16 - cgroup cgroup rw,xattr,name=systemd
36 30 0:29 / /mnt/again rw shared:14 - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn zeros_mean_unset_as_docker_sends_them() {
        let r: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 0, "reservation": 0, "swap": 0, "swappiness": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "0"},
            "pids": {"limit": 0},
            "blockIO": {"weight": 0}
        }))
        .unwrap();
        let got = serde_json::to_value(unset_zeros(&r)).unwrap();
        assert_eq!(
            got,
            serde_json::json!({"memory": {"swappiness": 0}, "cpu": {"cpus": "0"}, "blockIO": {}})
        );
    }

    #[test]
    fn mountinfo_yields_each_hierarchy_once() {
        let m = parse_mountinfo(HYBRID);
        let keys: Vec<_> = m.iter().map(|m| m.controllers.clone()).collect();
        assert_eq!(
            keys,
            vec![
                None,
                Some("cpu,cpuacct".into()),
                Some("memory".into()),
                Some("name=systemd".into())
            ]
        );
        assert_eq!(
            host_dir(&m[2], "/sub/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/c1")
        );
    }

    #[test]
    fn cgroups_path_rules() {
        let mut spec: Spec = serde_json::from_value(crate::spec::default_spec(false)).unwrap();
        assert_eq!(
            wanted_path(&spec, "c1", "/user.slice").unwrap(),
            "/user.slice/c1"
        );
        let set = |spec: &mut Spec, p: &str| {
            let mut l = spec.linux().clone().unwrap();
            l.set_cgroups_path(Some(p.into()));
            spec.set_linux(Some(l));
        };
        set(&mut spec, "/a/b");
        assert_eq!(wanted_path(&spec, "c1", "/x").unwrap(), "/a/b");
        set(&mut spec, "a/b");
        assert_eq!(wanted_path(&spec, "c1", "/x").unwrap(), "/x/a/b");
        set(&mut spec, "/a/../../etc");
        assert!(wanted_path(&spec, "c1", "/").is_err());
        set(&mut spec, "system.slice:husk:c1");
        assert!(wanted_path(&spec, "c1", "/")
            .unwrap_err()
            .to_string()
            .contains("systemd"));
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
