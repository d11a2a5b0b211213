//! The `mounts` of config.json: option parsing (runc's table) and mounting one entry.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Mount;

use crate::error::{Context, Error, Result};

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR__ATIME: u64 = 0x70;
const MOUNT_ATTR_RELATIME: u64 = 0x0;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

/// A parsed `options` list.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// Flags for mount(2).
    pub flags: MsFlags,
    /// Flags explicitly cleared ("rw", "suid", …), so a remount does not keep them.
    pub cleared: MsFlags,
    /// Propagation changes, applied one by one after the mount.
    pub propagation: Vec<MsFlags>,
    /// mount_setattr(2) attributes set and cleared recursively ("rro", "rnosuid", …).
    pub rec_set: u64,
    pub rec_clr: u64,
    /// Filesystem-specific options, passed as mount(2)'s data.
    pub data: Vec<String>,
    /// runc's "tmpcopyup": copy what the destination held into the new tmpfs.
    pub tmpcopyup: bool,
}

pub fn parse_options(opts: &[String]) -> Options {
    let mut o = Options {
        flags: MsFlags::empty(),
        cleared: MsFlags::empty(),
        propagation: Vec::new(),
        rec_set: 0,
        rec_clr: 0,
        data: Vec::new(),
        tmpcopyup: false,
    };
    for opt in opts {
        let (set, clr): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "async" => (0, libc::MS_SYNCHRONOUS),
            "atime" => (0, libc::MS_NOATIME),
            "bind" => (libc::MS_BIND, 0),
            "defaults" => (0, 0),
            // Id-mapped mounts are made before init runs (rootfs::detached).
            "idmap" | "ridmap" => (0, 0),
            "dev" => (0, libc::MS_NODEV),
            "diratime" => (0, libc::MS_NODIRATIME),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "iversion" => (libc::MS_I_VERSION, 0),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "loud" => (0, libc::MS_SILENT),
            "mand" => (libc::MS_MANDLOCK, 0),
            "noatime" => (libc::MS_NOATIME, 0),
            "nodev" => (libc::MS_NODEV, 0),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "noexec" => (libc::MS_NOEXEC, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "nomand" => (0, libc::MS_MANDLOCK),
            "norelatime" => (0, libc::MS_RELATIME),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "nosuid" => (libc::MS_NOSUID, 0),
            "nosymfollow" => (libc::MS_NOSYMFOLLOW, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "silent" => (libc::MS_SILENT, 0),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "suid" => (0, libc::MS_NOSUID),
            "symfollow" => (0, libc::MS_NOSYMFOLLOW),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation
                    .push(propagation_flag(opt).expect("listed above"));
                continue;
            }
            "tmpcopyup" => {
                o.tmpcopyup = true;
                continue;
            }
            r if r.starts_with('r') && recursive_attr(&r[1..]).is_some() => {
                let (set, clr) = recursive_attr(&r[1..]).expect("checked");
                o.rec_set |= set;
                o.rec_clr |= clr;
                continue;
            }
            _ => {
                o.data.push(opt.clone());
                continue;
            }
        };
        o.flags = MsFlags::from_bits_retain((o.flags.bits() | set) & !clr);
        o.cleared = MsFlags::from_bits_retain((o.cleared.bits() | clr) & !set);
    }
    o
}

/// The attribute behind a recursive option ("ro" of "rro"): (set, clear) for mount_setattr.
fn recursive_attr(opt: &str) -> Option<(u64, u64)> {
    Some(match opt {
        "ro" => (MOUNT_ATTR_RDONLY, 0),
        "rw" => (0, MOUNT_ATTR_RDONLY),
        "nosuid" => (MOUNT_ATTR_NOSUID, 0),
        "suid" => (0, MOUNT_ATTR_NOSUID),
        "nodev" => (MOUNT_ATTR_NODEV, 0),
        "dev" => (0, MOUNT_ATTR_NODEV),
        "noexec" => (MOUNT_ATTR_NOEXEC, 0),
        "exec" => (0, MOUNT_ATTR_NOEXEC),
        "nodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "diratime" => (0, MOUNT_ATTR_NODIRATIME),
        "relatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "norelatime" => (0, MOUNT_ATTR__ATIME),
        "noatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "atime" => (0, MOUNT_ATTR__ATIME),
        "strictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "nostrictatime" => (0, MOUNT_ATTR__ATIME),
        "nosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "symfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

pub fn propagation_flag(opt: &str) -> Option<MsFlags> {
    Some(match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Resolves `path` inside `root` as the container will see it: symlinks are followed relative
/// to `root`, and `..` never climbs above it.
pub fn secure_join(root: &Path, path: &Path) -> Result<PathBuf> {
    let mut pending: Vec<PathBuf> = path
        .components()
        .rev()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        match Path::new(&c).components().next() {
            None | Some(Component::RootDir) | Some(Component::CurDir) => continue,
            Some(Component::ParentDir) => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = resolved.join(&c);
        let full = root.join(&candidate);
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(Error::sys(
                        format!("resolve {} in {}", path.display(), root.display()),
                        nix::errno::Errno::ELOOP,
                    ));
                }
                let target = fs::read_link(&full).ctx(|| format!("readlink {}", full.display()))?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                pending.extend(
                    target
                        .components()
                        .rev()
                        .map(|c| PathBuf::from(c.as_os_str())),
                );
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

/// A mountpoint held open (O_PATH): mounting on `/proc/self/fd/N` places the mount on the
/// inode that was checked, whatever a racing process does to the path meanwhile.
pub struct Target {
    fd: OwnedFd,
    path: PathBuf,
}

/// The magic link through which mount(2) reaches what `fd` has open.
pub fn fd_path(fd: BorrowedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Whether a mount is a bind (type "bind", or a "bind"/"rbind" option).
pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

impl Target {
    fn new(fd: OwnedFd) -> Target {
        let path = fd_path(fd.as_fd());
        Target { fd, path }
    }

    /// The path to hand to mount(2): the magic link of the fd.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn stat(&self) -> Result<nix::sys::stat::FileStat> {
        nix::sys::stat::fstat(&self.fd).ctx(|| "fstat")
    }

    /// Opens `path` inside the root we are in (after pivot_root): symlinks stay inside it and
    /// magic links are refused. None when it does not exist.
    pub fn in_root(path: &str) -> Result<Option<Target>> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match openat2(nix::fcntl::AT_FDCWD, path, how) {
            Ok(fd) => Ok(Some(Target::new(fd))),
            Err(nix::errno::Errno::ENOENT) => Ok(None),
            Err(e) => Err(Error::sys(format!("open {path}"), e)),
        }
    }

    /// Opens `path` inside the root we are in, following no symlink on the way and opening
    /// a final one as itself: for files husk made, which the caller then checks by type.
    pub fn exact(path: &str) -> Result<Target> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS);
        openat2(nix::fcntl::AT_FDCWD, path, how)
            .map(Target::new)
            .ctx(|| format!("open {path}"))
    }

    /// The container's /dev/null, checked to be the null device (1:3) and not a symlink:
    /// binding whatever sat there over masked paths would unmask them (CVE-2025-31133).
    pub fn dev_null() -> Result<Target> {
        let t = Target::exact("/dev/null")?;
        let st = t.stat().ctx(|| "/dev/null")?;
        let chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
        if !chr || st.st_rdev != nix::sys::stat::makedev(1, 3) {
            return Err(Error::msg(format!(
                "/dev/null in the container is not the null device (mode {:o}, device {}:{})",
                st.st_mode,
                nix::sys::stat::major(st.st_rdev),
                nix::sys::stat::minor(st.st_rdev)
            ))
            .with_hint("something replaced it after husk made /dev: refusing to mask with it"));
        }
        Ok(t)
    }
}

/// A place in the rootfs: `rel` (symlinks already resolved by secure_join) beneath the
/// rootfs directory `root`, opened fresh for each use.
#[derive(Clone)]
pub struct Spot<'a> {
    pub root: BorrowedFd<'a>,
    pub rel: PathBuf,
    /// The host path, for messages.
    pub shown: PathBuf,
}

impl<'a> Spot<'a> {
    /// Resolves `dest` in the rootfs at `rootfs` (open as `root`).
    pub fn resolve(root: BorrowedFd<'a>, rootfs: &Path, dest: &Path) -> Result<Spot<'a>> {
        let shown = secure_join(rootfs, dest)?;
        let rel = shown.strip_prefix(rootfs).unwrap_or(&shown).to_path_buf();
        Ok(Spot { root, rel, shown })
    }

    pub fn child(&self, name: &str) -> Spot<'a> {
        Spot {
            root: self.root,
            rel: self.rel.join(name),
            shown: self.shown.join(name),
        }
    }

    /// Opens the mountpoint, making what is missing (a directory, or an empty file for a file
    /// to be bound on), one component at a time and never through a symlink: `rel` had its
    /// symlinks resolved, so one found now was raced in (CVE-2021-30465, CVE-2023-27561) and
    /// fails the mount instead of leading it out of the rootfs.
    pub fn make(&self, file: bool) -> Result<Target> {
        let comps: Vec<_> = self.rel.components().collect();
        let mut cur = openat2(self.root, ".", beneath()).ctx(|| "open rootfs")?;
        for (i, c) in comps.iter().enumerate() {
            let c = c.as_os_str();
            let last = i + 1 == comps.len();
            cur = match openat2(&cur, c, beneath()) {
                Ok(fd) => fd,
                Err(nix::errno::Errno::ENOENT) => {
                    let made = if last && file {
                        nix::fcntl::openat(
                            &cur,
                            c,
                            OFlag::O_CREAT
                                | OFlag::O_EXCL
                                | OFlag::O_WRONLY
                                | OFlag::O_NOFOLLOW
                                | OFlag::O_CLOEXEC,
                            Mode::from_bits_truncate(0o644),
                        )
                        .map(drop)
                    } else {
                        nix::sys::stat::mkdirat(&cur, c, Mode::from_bits_truncate(0o755))
                    };
                    match made {
                        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(Error::sys(
                                format!("create mountpoint {}", self.shown.display()),
                                e,
                            ))
                        }
                    }
                    openat2(&cur, c, beneath())
                        .ctx(|| format!("open mountpoint {}", self.shown.display()))?
                }
                Err(e) => {
                    let err = Error::sys(format!("open mountpoint {}", self.shown.display()), e);
                    return Err(if e == nix::errno::Errno::ELOOP {
                        err.with_hint("a symlink appeared in the path after husk resolved it: is another process changing the rootfs?")
                    } else {
                        err
                    });
                }
            };
        }
        Ok(Target::new(cur))
    }

    /// Opens what is at the spot now: after a mount, that is the new mount's root (an fd
    /// opened before still shows the directory underneath).
    pub fn open(&self) -> Result<Target> {
        let rel = if self.rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &self.rel
        };
        openat2(self.root, rel, beneath())
            .map(Target::new)
            .ctx(|| format!("open {}", self.shown.display()))
    }
}

/// O_PATH, beneath the directory, no symlink or magic link followed, no `..` above it.
fn beneath() -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS)
}

/// Creates the mountpoint: a directory, or an empty file when a file is to be bound on it.
pub fn make_mountpoint(dest: &Path, file: bool) -> Result<()> {
    if file {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).ctx(|| format!("mkdir {}", parent.display()))?;
        }
        if !dest.exists() {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(dest)
                .ctx(|| format!("create mountpoint {}", dest.display()))?;
        }
        Ok(())
    } else {
        fs::create_dir_all(dest).ctx(|| format!("mkdir {}", dest.display()))
    }
}

/// Mounts one entry of `mounts` at `spot`; a bind made already on the host (`detached`, see
/// rootfs::detached) is moved there instead.
pub fn mount_entry(
    m: &Mount,
    spot: &Spot,
    detached: Option<&OwnedFd>,
    mount_label: Option<&str>,
) -> Result<()> {
    let mut o = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let source = m.source().clone().unwrap_or_default();
    let is_bind = typ == "bind" || o.flags.contains(MsFlags::MS_BIND);
    if !is_bind && crate::lsm::selinux_enabled() {
        o.data.extend(crate::lsm::mount_context(typ, mount_label));
    }
    let data = o.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    let shown = &spot.shown;

    if is_bind {
        // A detached copy answers for its source, which init may not be allowed to reach.
        let shown_src = || format!("bind source {}", source.display());
        let is_dir = match detached {
            Some(tree) => {
                nix::sys::stat::fstat(tree).ctx(shown_src)?.st_mode & libc::S_IFMT == libc::S_IFDIR
            }
            None => fs::metadata(&source).ctx(shown_src)?.is_dir(),
        };
        let at = spot.make(!is_dir)?;
        let bind = o.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
        match detached {
            Some(tree) => crate::sys::move_mount_to(tree.as_fd(), at.fd())
                .ctx(|| format!("move {} on {}", source.display(), shown.display()))?,
            None => mount(Some(&source), at.path(), None::<&str>, bind, None::<&str>)
                .ctx(|| format!("bind {} on {}", source.display(), shown.display()))?,
        }
        // A bind mount ignores every other flag: they take a remount.
        let rest = o.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !rest.is_empty() || !o.cleared.is_empty() {
            remount_named(spot.open()?.path(), shown, rest, bind)?;
        }
    } else if o.flags.contains(MsFlags::MS_REMOUNT) {
        mount(
            None::<&str>,
            spot.open()?.path(),
            None::<&str>,
            o.flags,
            data,
        )
        .ctx(|| format!("remount {}", shown.display()))?;
    } else {
        let at = spot.make(false)?;
        let copy = o.tmpcopyup && typ == "tmpfs";
        let staged = if copy {
            Some(tmpcopyup_stage(at.path(), shown)?)
        } else {
            None
        };
        let mnt = mount(Some(&source), at.path(), Some(typ), o.flags, data).ctx(|| {
            format!(
                "mount {} ({typ}) on {} with {:?}",
                source.display(),
                shown.display(),
                data.unwrap_or("")
            )
        });
        if let Some(staged) = staged {
            mnt.as_ref().map_err(Clone::clone)?;
            copy_tree(&staged, spot.open()?.path())?;
            let _ = nix::mount::umount2(&staged, nix::mount::MntFlags::MNT_DETACH);
            let _ = fs::remove_dir(&staged);
        }
        mnt?;
    }
    if o.propagation.is_empty() && o.rec_set == 0 && o.rec_clr == 0 {
        return Ok(());
    }
    let mounted = spot.open()?;
    for p in &o.propagation {
        mount(None::<&str>, mounted.path(), None::<&str>, *p, None::<&str>)
            .ctx(|| format!("set propagation {p:?} on {}", shown.display()))?;
    }
    if o.rec_set != 0 || o.rec_clr != 0 {
        crate::sys::mount_setattr(
            libc::AT_FDCWD,
            &mounted.path().to_string_lossy(),
            libc::AT_RECURSIVE as u32,
            o.rec_set,
            o.rec_clr,
            0,
        )
        .ctx(|| format!("mount_setattr {} (recursive options)", shown.display()))
        .map_err(|e| {
            if e.errno() == Some(nix::errno::Errno::ENOSYS) {
                e.with_hint("recursive mount options need Linux 5.12 or later")
            } else {
                e
            }
        })?;
    }
    Ok(())
}

/// Remounts a bind mount with new flags, keeping the flags the kernel locks on mounts that
/// came from a more privileged namespace (changing those gives EPERM).
pub fn remount(dest: &Path, flags: MsFlags, bind: MsFlags) -> Result<()> {
    remount_named(dest, dest, flags, bind)
}

/// `remount` of `dest` (an fd's magic link, say), named `shown` in messages.
pub fn remount_named(dest: &Path, shown: &Path, flags: MsFlags, bind: MsFlags) -> Result<()> {
    let f = flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | (bind & MsFlags::MS_REC);
    match mount(None::<&str>, dest, None::<&str>, f, None::<&str>) {
        Err(nix::errno::Errno::EPERM) => {
            let st =
                nix::sys::statvfs::statvfs(dest).ctx(|| format!("statvfs {}", shown.display()))?;
            let locked = MsFlags::from_bits_truncate(
                st.flags().bits() as libc::c_ulong
                    & (libc::MS_NOSUID
                        | libc::MS_NODEV
                        | libc::MS_NOEXEC
                        | libc::MS_RDONLY
                        | libc::MS_NOATIME
                        | libc::MS_NODIRATIME
                        | libc::MS_RELATIME),
            );
            mount(None::<&str>, dest, None::<&str>, f | locked, None::<&str>)
                .ctx(|| format!("remount {} with {:?}", shown.display(), flags))
        }
        r => r.ctx(|| format!("remount {} with {:?}", shown.display(), flags)),
    }
}

/// Moves the destination's current content aside (bind-mounted in a temporary dir), so it can be
/// copied into the tmpfs that covers it.
fn tmpcopyup_stage(dest: &Path, shown: &Path) -> Result<PathBuf> {
    let staged = PathBuf::from(format!("/tmp/.husk-tmpcopyup-{}", std::process::id()));
    fs::create_dir_all(&staged).ctx(|| format!("mkdir {}", staged.display()))?;
    mount(
        Some(dest),
        &staged,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| {
        format!(
            "tmpcopyup: bind {} on {}",
            shown.display(),
            staged.display()
        )
    })?;
    Ok(staged)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = fs::symlink_metadata(from).ctx(|| format!("stat {}", from.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .ctx(|| format!("chmod {}", to.display()))?;
    let _ = nix::unistd::chown(to, Some(meta.uid().into()), Some(meta.gid().into()));
    for e in fs::read_dir(from)
        .ctx(|| format!("read {}", from.display()))?
        .flatten()
    {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type().ctx(|| format!("stat {}", src.display()))?;
        if t.is_dir() {
            fs::create_dir_all(&dst).ctx(|| format!("mkdir {}", dst.display()))?;
            copy_tree(&src, &dst)?;
        } else if t.is_symlink() {
            let target = fs::read_link(&src).ctx(|| format!("readlink {}", src.display()))?;
            std::os::unix::fs::symlink(target, &dst)
                .ctx(|| format!("symlink {}", dst.display()))?;
        } else if t.is_file() {
            fs::copy(&src, &dst).ctx(|| format!("copy {}", src.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options_split_into_flags_propagation_recursive_and_data() {
        let o = parse_options(&s(&[
            "rbind",
            "ro",
            "nosuid",
            "rslave",
            "rnoexec",
            "mode=755",
            "size=65536k",
        ]));
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        );
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.rec_set, MOUNT_ATTR_NOEXEC);
        assert_eq!(o.data, s(&["mode=755", "size=65536k"]));
    }

    #[test]
    fn later_options_override_earlier() {
        let o = parse_options(&s(&["ro", "rw", "nosuid", "suid"]));
        assert!(o.flags.is_empty());
        assert_eq!(o.cleared, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
    }

    #[test]
    fn secure_join_stays_inside_root() {
        let root = std::env::temp_dir().join(format!("husk-sj-{}", std::process::id()));
        fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("a/b/up")).unwrap();
        assert_eq!(
            secure_join(&root, Path::new("/../../x")).unwrap(),
            root.join("x")
        );
        assert_eq!(
            secure_join(&root, Path::new("/abs/passwd")).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            secure_join(&root, Path::new("/a/b/up/y")).unwrap(),
            root.join("y")
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(secure_join(&root, Path::new("/loop")).is_err());
        fs::remove_dir_all(&root).unwrap();
    }
}
