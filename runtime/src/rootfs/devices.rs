//! `/dev`: the default devices, `linux.devices`, the standard symlinks and `/dev/console`.

use std::fs;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

use super::mounts::{fd_path, make_mountpoint, secure_join, Target};
use crate::error::{Context, Error, Result};

struct Device {
    path: PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The devices every container gets (runc's list).
const DEFAULTS: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn from_spec(d: &LinuxDevice) -> Result<Device> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::msg(format!(
                "linux.devices {}: type \"a\" is not a device",
                d.path().display()
            )))
        }
    };
    if !d.path().starts_with("/dev") {
        return Err(Error::msg(format!(
            "linux.devices {}: devices must be under /dev",
            d.path().display()
        )));
    }
    Ok(Device {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666),
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Creates the devices in the container's /dev. In a user namespace mknod is not allowed: the
/// host's device node is bind-mounted instead, as runc does.
pub fn create(spec: &Spec, rootfs: &Path, bind: bool) -> Result<()> {
    let mut devs: Vec<Device> = Vec::new();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        devs.push(from_spec(d)?);
    }
    for (p, major, minor) in DEFAULTS {
        if !devs.iter().any(|d| d.path == Path::new(p)) {
            devs.push(Device {
                path: p.into(),
                kind: SFlag::S_IFCHR,
                major: *major,
                minor: *minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
            });
        }
    }
    for d in &devs {
        let dest = secure_join(rootfs, &d.path)?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).ctx(|| format!("mkdir {}", parent.display()))?;
        }
        if bind {
            make_mountpoint(&dest, true)?;
            mount(
                Some(&d.path),
                &dest,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx(|| format!("bind device {} on {}", d.path.display(), dest.display()))?;
            continue;
        }
        let _ = fs::remove_file(&dest);
        // The mode is set after mknod, so the umask does not narrow it.
        mknod(
            &dest,
            d.kind,
            Mode::from_bits_truncate(d.mode),
            makedev(d.major, d.minor),
        )
        .ctx(|| format!("mknod {} {}:{}", d.path.display(), d.major, d.minor))?;
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &dest,
            Mode::from_bits_truncate(d.mode),
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )
        .ctx(|| format!("chmod {}", dest.display()))?;
        chown(
            &dest,
            Some(Uid::from_raw(d.uid)),
            Some(Gid::from_raw(d.gid)),
        )
        .ctx(|| format!("chown {}", dest.display()))?;
    }
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err}, /dev/ptmx and, where the host has it, /dev/core.
pub fn create_symlinks(rootfs: &Path) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "/dev/core"));
    }
    for (target, link) in links {
        let p = rootfs.join(link.trim_start_matches('/'));
        match symlink(target, &p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Error::io(
                    format!("symlink {} -> {target}", p.display()),
                    &e,
                ))
            }
        }
    }
    Ok(())
}

/// /dev/ptmx must be the ptmx of the container's own devpts instance.
pub fn setup_ptmx(rootfs: &Path) -> Result<()> {
    let p = rootfs.join("dev/ptmx");
    match fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("remove {}", p.display()), &e)),
    }
    symlink("pts/ptmx", &p).ctx(|| format!("symlink {} -> pts/ptmx", p.display()))
}

/// Binds the container's terminal onto /dev/console (after pivot_root), through fds of both:
/// the mountpoint must be the empty file made before pivot_root, not a symlink or anything
/// else raced into its place (CVE-2025-52565).
pub fn mount_console(slave: BorrowedFd, name: &str) -> Result<()> {
    crate::container::fault_point("bind console");
    let console = Path::new("/dev/console");
    if !console.exists() {
        make_mountpoint(console, true)?;
    }
    let target = Target::exact("/dev/console")?;
    let st = target.stat().ctx(|| "stat /dev/console")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::msg(format!(
            "/dev/console is not the file husk made for the terminal (mode {:o})",
            st.st_mode
        ))
        .with_hint("something replaced it after husk made /dev: refusing to mount on it"));
    }
    mount(
        Some(&fd_path(slave)),
        target.path(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind {name} on /dev/console"))
}
