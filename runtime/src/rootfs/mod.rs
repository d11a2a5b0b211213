//! The container's filesystem: rootfs propagation, `mounts`, `/dev`, pivot_root, a readonly
//! root, masked and readonly paths. Runs in the container's init, in its new mount namespace.

pub mod detached;
pub mod devices;
pub mod mounts;

use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};
use oci_spec::runtime::{Mount, Spec};

use crate::cgroups::{Layout, Placement};
use crate::error::{Context, Error, Result};
use mounts::{mount_entry, propagation_flag, remount, remount_named, Spot, Target};

/// Makes the mount the rootfs lives on private (in the container's mount namespace) if it is
/// shared, as runc does.
fn parent_mount_private(rootfs: &Path) -> Result<()> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    let mut parent: Option<(PathBuf, bool)> = None;
    for line in info.lines() {
        let Some((pre, _)) = line.split_once(" - ") else {
            continue;
        };
        let f: Vec<&str> = pre.split(' ').collect();
        let Some(mp) = f.get(4).map(|m| PathBuf::from(crate::cgroups::unescape(m))) else {
            continue;
        };
        // The deepest mount point above the rootfs; a later line is a mount stacked on top.
        let deeper = parent
            .as_ref()
            .is_none_or(|(p, _)| mp.components().count() >= p.components().count());
        if rootfs.starts_with(&mp) && deeper {
            let shared = f.iter().skip(6).any(|o| o.starts_with("shared:"));
            parent = Some((mp, shared));
        }
    }
    if let Some((mp, true)) = parent {
        mount(
            None::<&str>,
            &mp,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .ctx(|| format!("make {} private", mp.display()))?;
    }
    Ok(())
}

/// rootfsPropagation modes that can only be given to the new root, after pivot_root.
const AFTER_PIVOT: MsFlags = MsFlags::MS_SHARED.union(MsFlags::MS_UNBINDABLE);

pub struct Rootfs<'a> {
    pub spec: &'a Spec,
    /// The rootfs as the runtime sees it, before pivot_root.
    pub path: PathBuf,
    pub cgroup: &'a Placement,
    pub cgroup_ns: bool,
    pub user_ns: bool,
    pub detached: &'a detached::Detached,
}

impl Rootfs<'_> {
    /// Everything before pivot_root: propagation, the rootfs bind, every mount and /dev.
    pub fn prepare(&self) -> Result<()> {
        // Nothing below may propagate back to the host, pivot_root refuses shared mounts and
        // an unbindable / cannot give the rootfs bind below: a shared or unbindable
        // rootfsPropagation is applied to the new root after pivot_root.
        let prop = self.root_propagation()?;
        let before = if prop.intersects(AFTER_PIVOT) {
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        } else {
            prop
        };
        mount(None::<&str>, "/", None::<&str>, before, None::<&str>)
            .ctx(|| format!("set propagation {before:?} on /"))?;
        // A non-recursive mode leaves the mounts below / as they were, and pivot_root
        // refuses a new root whose parent mount is shared.
        parent_mount_private(&self.path)?;
        // pivot_root needs the rootfs to be a mount point.
        mount(
            Some(&self.path),
            &self.path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind rootfs {} on itself", self.path.display()))?;
        // Every mountpoint is opened beneath this fd (the bind just made) and mounted on
        // through its fd.
        let root = open(
            &self.path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open rootfs {}", self.path.display()))?;
        let mut readonly_later = Vec::new();
        for (i, m) in self.spec.mounts().iter().flatten().enumerate() {
            let at = |e: crate::error::Error| e.context(format!("mounts[{i}]"));
            check_proc_sys_dest(&self.path, m).map_err(at)?;
            let dest = Spot::resolve(root.as_fd(), &self.path, m.destination()).map_err(at)?;
            crate::container::fault_point(&format!("resolve mount {}", m.destination().display()));
            // A read-only tmpfs (/dev, say) is mounted writable so that mounts and devices can be
            // made beneath it, and made read-only once they are.
            let mut m = m.clone();
            if m.typ().as_deref() == Some("tmpfs") {
                let opts = m.options().clone().unwrap_or_default();
                if opts.iter().any(|o| o == "ro") {
                    m.set_options(Some(opts.into_iter().filter(|o| o != "ro").collect()));
                    readonly_later.push(dest.clone());
                }
            }
            let m = &m;
            let r = if m.typ().as_deref() == Some("cgroup") {
                self.mount_cgroup(m, &dest)
            } else {
                let label = self
                    .spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.mount_label().as_deref());
                mount_entry(m, &dest, self.detached.get(i), label)
            };
            r.map_err(|e| at(e.context(format!("mount {}", m.destination().display()))))?;
        }
        if !self.dev_is_bound() {
            devices::create(self.spec, &self.path, self.user_ns)?;
            devices::create_symlinks(&self.path)?;
            devices::setup_ptmx(&self.path)?;
        }
        // The terminal is bound on /dev/console after pivot_root, when /dev may be read-only.
        if self.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true) {
            mounts::make_mountpoint(&self.path.join("dev/console"), true)?;
        }
        for dest in readonly_later {
            remount_named(
                dest.open()?.path(),
                &dest.shown,
                MsFlags::MS_RDONLY,
                MsFlags::empty(),
            )?;
        }
        Ok(())
    }

    fn root_propagation(&self) -> Result<MsFlags> {
        match self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.rootfs_propagation().as_deref())
        {
            None | Some("") => Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            Some(p) => propagation_flag(p).ok_or_else(|| {
                Error::msg(format!(
                    "linux.rootfsPropagation {p:?}: unknown propagation"
                ))
            }),
        }
    }

    /// Whether /dev comes from the host (a bind): then no devices are made and no console is
    /// bound over it.
    pub fn dev_is_bound(&self) -> bool {
        self.spec.mounts().iter().flatten().any(|m| {
            m.destination() == Path::new("/dev")
                && (m.typ().as_deref() == Some("bind")
                    || m.options()
                        .iter()
                        .flatten()
                        .any(|o| o == "bind" || o == "rbind"))
        })
    }

    /// A `cgroup` mount: the container's own cgroups, read-only unless the config says rw.
    fn mount_cgroup(&self, m: &Mount, dest: &Spot) -> Result<()> {
        let o = mounts::parse_options(m.options().as_deref().unwrap_or_default());
        let flags = o.flags & !MsFlags::MS_RDONLY;
        if self.cgroup.layout == Layout::Unified {
            return self.mount_cgroup2(dest, o.flags, self.cgroup.v2.as_deref());
        }
        // v1: a tmpfs holding one directory per hierarchy, each showing the container's cgroup.
        let at = dest.make(false)?;
        mount(
            Some("tmpfs"),
            at.path(),
            Some("tmpfs"),
            flags,
            Some("mode=755"),
        )
        .ctx(|| format!("mount tmpfs on {}", dest.shown.display()))?;
        for (controllers, dir) in &self.cgroup.v1 {
            let name = controllers.strip_prefix("name=").unwrap_or(controllers);
            let sub = dest.child(name);
            let at = sub.make(false)?;
            if self.cgroup_ns {
                mount(
                    Some("cgroup"),
                    at.path(),
                    Some("cgroup"),
                    o.flags,
                    Some(controllers.as_str()),
                )
                .ctx(|| format!("mount cgroup {controllers} on {}", sub.shown.display()))?;
            } else {
                mount(
                    Some(dir),
                    at.path(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .ctx(|| format!("bind {} on {}", dir.display(), sub.shown.display()))?;
                remount_named(sub.open()?.path(), &sub.shown, o.flags, MsFlags::MS_REC)?;
            }
            // Co-mounted controllers ("cpu,cpuacct") are also reachable by each name.
            if controllers.contains(',') {
                let base = dest.open()?;
                for c in controllers.split(',') {
                    let link = base.path().join(c);
                    if !link.exists() {
                        std::os::unix::fs::symlink(name, &link)
                            .ctx(|| format!("symlink {}", dest.child(c).shown.display()))?;
                    }
                }
            }
        }
        if self.cgroup.layout == Layout::Hybrid {
            self.mount_cgroup2(&dest.child("unified"), o.flags, self.cgroup.v2.as_deref())?;
        }
        if o.flags.contains(MsFlags::MS_RDONLY) {
            remount_named(dest.open()?.path(), &dest.shown, o.flags, MsFlags::empty())?;
        }
        Ok(())
    }

    fn mount_cgroup2(&self, dest: &Spot, flags: MsFlags, host_dir: Option<&Path>) -> Result<()> {
        let at = dest.make(false)?;
        if self.cgroup_ns {
            match mount(
                Some("cgroup2"),
                at.path(),
                Some("cgroup2"),
                flags,
                None::<&str>,
            ) {
                // A user namespace whose cgroup namespace root it does not own (rootless
                // with no cgroup of its own) may not mount cgroup2: the container's cgroup,
                // if any, is bound instead, as runc does.
                Err(e @ (Errno::EPERM | Errno::EBUSY)) => crate::log::debug(&format!(
                    "mount cgroup2 on {}: {e}: binding the container's cgroup instead",
                    dest.shown.display()
                )),
                r => return r.ctx(|| format!("mount cgroup2 on {}", dest.shown.display())),
            }
        }
        let Some(dir) = host_dir else { return Ok(()) };
        mount(
            Some(dir),
            at.path(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind {} on {}", dir.display(), dest.shown.display()))?;
        remount_named(dest.open()?.path(), &dest.shown, flags, MsFlags::MS_REC)
    }

    /// Makes the rootfs the root: pivot_root, or with `--no-pivot` a move over / and chroot
    /// (for a rootfs on a ramfs, where pivot_root is not allowed).
    pub fn enter(&self, no_pivot: bool) -> Result<()> {
        if no_pivot {
            hide_host_proc_and_sys(&self.path)?;
            chdir(&self.path).ctx(|| format!("chdir {}", self.path.display()))?;
            mount(
                Some(&self.path),
                "/",
                None::<&str>,
                MsFlags::MS_MOVE,
                None::<&str>,
            )
            .ctx(|| format!("move {} over /", self.path.display()))?;
            chroot(".").ctx(|| "chroot into the rootfs")?;
            return chdir("/").ctx(|| "chdir /");
        }
        let old = open(
            "/",
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "open /")?;
        let new = open(
            &self.path,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open rootfs {}", self.path.display()))?;
        fchdir(new.as_fd()).ctx(|| "fchdir rootfs")?;
        // pivot_root(".", ".") stacks the old root under the new one, without a directory for it.
        pivot_root(".", ".")
            .ctx(|| format!("pivot_root into {}", self.path.display()))
            .map_err(|e| {
                if e.errno() == Some(nix::errno::Errno::EINVAL) {
                    e.with_hint("a rootfs on ramfs/initramfs cannot be pivoted: use --no-pivot")
                } else {
                    e
                }
            })?;
        fchdir(old.as_fd()).ctx(|| "fchdir old root")?;
        // The old root must not propagate its unmount back to the host.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "make old root a slave")?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount old root")?;
        chdir("/").ctx(|| "chdir /")?;
        // A shared or unbindable rootfsPropagation applies to the new root, now that
        // pivot_root is done.
        let prop = self.root_propagation()?;
        if prop.intersects(AFTER_PIVOT) {
            mount(None::<&str>, "/", None::<&str>, prop, None::<&str>)
                .ctx(|| format!("set propagation {prop:?} on the new /"))?;
        }
        Ok(())
    }

    /// After pivot_root: a readonly root, then masked and readonly paths.
    pub fn finalize(&self) -> Result<()> {
        let linux = self.spec.linux().as_ref();
        for p in linux
            .and_then(|l| l.readonly_paths().as_ref())
            .into_iter()
            .flatten()
        {
            readonly_path(p).map_err(|e| e.context(format!("linux.readonlyPaths {p}")))?;
        }
        for p in linux
            .and_then(|l| l.masked_paths().as_ref())
            .into_iter()
            .flatten()
        {
            mask_path(p).map_err(|e| e.context(format!("linux.maskedPaths {p}")))?;
        }
        if self
            .spec
            .root()
            .as_ref()
            .is_some_and(|r| r.readonly() == Some(true))
        {
            remount(Path::new("/"), MsFlags::MS_RDONLY, MsFlags::empty())
                .map_err(|e| e.context("root.readonly"))?;
        }
        Ok(())
    }
}

/// proc and sysfs over a symlink would land wherever the image points it (runc refuses too).
fn check_proc_sys_dest(rootfs: &Path, m: &Mount) -> Result<()> {
    if !matches!(m.typ().as_deref(), Some("proc" | "sysfs")) {
        return Ok(());
    }
    let p = rootfs.join(m.destination().strip_prefix("/").unwrap_or(m.destination()));
    if fs::symlink_metadata(&p).is_ok_and(|md| md.file_type().is_symlink()) {
        return Err(Error::msg(format!(
            "mount {}: {} must be mounted on ordinary directory, and this is a symlink in the rootfs",
            m.destination().display(),
            m.typ().as_deref().unwrap_or("")
        )));
    }
    Ok(())
}

/// Under --no-pivot the host's mounts stay in the namespace below the chroot, and the kernel
/// allows a new (unmasked) procfs mount whenever a full procfs or sysfs is visible anywhere in
/// it. Unmount the host's full proc and sysfs mounts, or cover them where that is refused.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<()> {
    let info = fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    let mut targets: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let fstype = post.split(' ').next()?;
            let (root, mp) = (*f.get(3)?, PathBuf::from(f.get(4)?));
            (root == "/" && (fstype == "proc" || fstype == "sysfs") && !mp.starts_with(rootfs))
                .then_some(mp)
        })
        .collect();
    // Deepest first, so a parent's unmount does not hide a child we still have to handle.
    targets.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in targets {
        match mount(
            None::<&str>,
            &p,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Err(nix::errno::Errno::ENOENT) => continue,
            r => r.ctx(|| format!("make {} a slave", p.display()))?,
        }
        match umount2(&p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => {
                mount(
                    Some("tmpfs"),
                    &p,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .ctx(|| format!("cover host {} with a tmpfs", p.display()))?;
            }
            Err(e) => return Err(Error::sys(format!("unmount host {}", p.display()), e)),
        }
    }
    Ok(())
}

/// Binds a path on itself read-only, through an fd of what is there.
fn readonly_path(p: &str) -> Result<()> {
    let Some(t) = Target::in_root(p)? else {
        return Ok(());
    };
    mount(
        Some(t.path()),
        t.path(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind {p} on itself"))?;
    let Some(bound) = Target::in_root(p)? else {
        return Err(Error::msg(format!(
            "{p} vanished while being made read-only"
        )));
    };
    remount_named(
        bound.path(),
        Path::new(p),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        MsFlags::MS_REC,
    )
}

/// Hides a path: the checked /dev/null over a file, an empty read-only tmpfs over a directory.
fn mask_path(p: &str) -> Result<()> {
    let Some(t) = Target::in_root(p)? else {
        return Ok(());
    };
    let st = t.stat().ctx(|| format!("stat {p}"))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        mount(
            Some("tmpfs"),
            t.path(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0,mode=755"),
        )
        .ctx(|| format!("mount empty tmpfs on {p}"))
    } else {
        let null = Target::dev_null()?;
        mount(
            Some(null.path()),
            t.path(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind /dev/null on {p}"))
    }
}

/// Writes `linux.sysctl` through the container's /proc/sys (checked: see procfs).
pub fn apply_sysctl(spec: &Spec) -> Result<()> {
    for (k, v) in spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        crate::procfs::write(&format!("sys/{}", k.replace('.', "/")), v.as_bytes())
            .map_err(|e| e.context(format!("linux.sysctl {k}={v:?}")))?;
    }
    Ok(())
}
