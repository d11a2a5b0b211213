//! The only place with `unsafe`: raw syscalls that nix does not wrap safely.
//!
//! Each function is a thin, checked wrapper; callers see `nix::Result` like everywhere else.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid};

/// Forks the (single-threaded) runtime.
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: husk never starts threads, so the child inherits no lock held by another thread
    // and may allocate freely before it execs or exits.
    unsafe { nix::unistd::fork() }
}

/// Ends a forked child at once, without running the parent's atexit handlers or destructors.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

/// Makes the terminal on `fd` the controlling terminal of this (session-leading) process.
pub fn set_controlling_tty(fd: BorrowedFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument, not a pointer.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

pub fn set_winsize(fd: BorrowedFd, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the duration of the call.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
}

pub fn get_winsize(fd: BorrowedFd) -> nix::Result<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct that we own for the duration of the call.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) })?;
    Ok((ws.ws_row, ws.ws_col))
}

pub fn setdomainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    Errno::result(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// Sets the effective, permitted and inheritable capability sets of this thread in one call, so
/// that no intermediate state (effective beyond permitted) can be refused.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: version 3 takes a header and an array of exactly two data structs, both valid here.
    Errno::result(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) }).map(drop)
}

/// Marks every fd from `first` upwards close-on-exec, so nothing of the runtime leaks into the
/// container (CVE-2024-21626).
pub fn cloexec_from(first: RawFd) -> nix::Result<()> {
    // SAFETY: close_range takes only integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(r).map(drop)
}

/// Lets an fd the caller handed us (`--preserve-fds`) survive exec.
pub fn clear_cloexec(fd: RawFd) -> nix::Result<()> {
    // SAFETY: F_SETFD takes an integer; an fd that is not open gives EBADF, nothing worse.
    Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }).map(drop)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)`: changes mount attributes, recursively with AT_RECURSIVE.
pub fn mount_setattr(
    dirfd: RawFd,
    path: &str,
    flags: u32,
    set: u64,
    clr: u64,
    propagation: u64,
) -> nix::Result<()> {
    let path = CString::new(path).map_err(|_| Errno::EINVAL)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation,
        userns_fd: 0,
    };
    // SAFETY: path is a valid C string and attr a correctly sized mount_attr; both outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// `open_tree(2)` with OPEN_TREE_CLONE: a detached copy of the mount at `path` (with its
/// submounts when `recursive`), close-on-exec.
pub fn open_tree_clone(path: &std::path::Path, recursive: bool) -> nix::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: path is a valid C string that outlives the call; flags are open_tree's own.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    // SAFETY: on success open_tree returns a new fd that nothing else owns.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Makes the detached mount `tree` id-mapped through the user namespace `userns`.
pub fn mount_setattr_idmap(
    tree: BorrowedFd,
    recursive: bool,
    userns: BorrowedFd,
) -> nix::Result<()> {
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: the empty path is a valid C string, attr a correctly sized mount_attr; both
    // outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

/// `move_mount(2)`: attaches the detached mount `tree` on the mountpoint open as `target`.
pub fn move_mount_to(tree: BorrowedFd, target: BorrowedFd) -> nix::Result<()> {
    // SAFETY: both fds are open and the empty paths valid C strings.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

/// Restores every signal's default disposition and unblocks all signals, so that the container
/// process starts as a freshly exec'd program would, whatever the runtime had set up.
pub fn reset_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code, so no signal-safety rule is at stake.
        let _ = unsafe { sigaction(sig, &dfl) };
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
}

/// Ignores SIGPIPE-like signals so that a handler is never needed (used by the foreground loop).
pub fn ignore_signal(sig: nix::sys::signal::Signal) -> nix::Result<()> {
    use nix::sys::signal::{signal, SigHandler};
    // SAFETY: SIG_IGN runs no handler code.
    unsafe { signal(sig, SigHandler::SigIgn) }.map(drop)
}

/// Joins a new anonymous session keyring, so containers do not share the host's (runc does the same).
pub fn join_session_keyring(name: &str) -> nix::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    let name = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: keyctl reads the C string, which outlives the call.
    Errno::result(unsafe {
        libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr())
    })
    .map(drop)
}

/// `pidfd_open(2)`: a handle on a process that cannot be confused with a later one of the same pid.
pub fn pidfd_open(pid: Pid) -> nix::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes only integers.
    let fd = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) })?;
    // SAFETY: the kernel just returned this fd to us, and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Takes ownership of an fd the kernel installed in our table through SCM_RIGHTS.
pub fn own_received_fd(fd: RawFd) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: recvmsg just created this fd for us; no other owner exists.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Closes a forked child's copy of an fd whose owner lives on in the parent (the state
/// directory's lock): the child must not hold the lock, and must not unlock it either.
pub fn close_inherited(fd: RawFd) {
    // SAFETY: the owning value is in the parent's image; this process never drops or uses it,
    // since it only execs or exits from here on.
    unsafe { libc::close(fd) };
}

/// Makes `fd` also available as `target` (stdio of the container's process).
pub fn dup_onto(fd: BorrowedFd, target: RawFd) -> nix::Result<()> {
    // SAFETY: dup2 onto 0..=2 replaces stdio, which this process owns and never holds as an OwnedFd.
    Errno::result(unsafe { libc::dup2(fd.as_raw_fd(), target) }).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER)`: installs a BPF filter; with NEW_LISTENER, returns the
/// notification fd.
pub fn seccomp_load(
    program: &[libc::sock_filter],
    flags: u32,
) -> nix::Result<Option<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points at `program`, which outlives the call; the kernel copies it.
    let r = Errno::result(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog,
        )
    })?;
    if flags & 8 != 0 {
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER the kernel returned a new fd we own.
        return Ok(Some(unsafe {
            std::os::fd::OwnedFd::from_raw_fd(r as RawFd)
        }));
    }
    Ok(None)
}

/// Brings the loopback interface of this network namespace up (runc does the same for a new
/// network namespace).
pub fn loopback_up() -> nix::Result<()> {
    use std::os::fd::FromRawFd;
    // SAFETY: socket takes only integers; the fd is owned by `sock` from here on.
    let raw = Errno::result(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: the kernel just returned this fd to us.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the flags of the ifreq we own for the duration of the call.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: the flags member of the union is the one SIOCGIFFLAGS wrote.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own for the duration of the call.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }).map(drop)
}

/// One `bpf(2)` call on `attr`, a `union bpf_attr` the caller filled (byte offsets as in
/// linux/bpf.h); 128 bytes covers every command used here, and the kernel wants the rest zero.
fn bpf(cmd: libc::c_int, attr: &mut [u8; 128]) -> nix::Result<libc::c_long> {
    // SAFETY: attr outlives the call; every pointer the wrappers below store in it points into
    // a slice they borrow for the duration of the call.
    Errno::result(unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) })
}

fn put32(attr: &mut [u8; 128], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(attr: &mut [u8; 128], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn owned(fd: libc::c_long) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: bpf(2) just returned this new fd; nothing else owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as RawFd) }
}

pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub const BPF_CGROUP_DEVICE: u32 = 6;
pub const BPF_F_ALLOW_MULTI: u32 = 2;

/// BPF_PROG_LOAD of `insns` (8-byte eBPF instructions).
pub fn bpf_prog_load(
    prog_type: u32,
    insns: &[[u8; 8]],
    license: &std::ffi::CStr,
) -> nix::Result<std::os::fd::OwnedFd> {
    let mut a = [0u8; 128];
    put32(&mut a, 0, prog_type);
    put32(&mut a, 4, insns.len() as u32);
    put64(&mut a, 8, insns.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    bpf(5, &mut a).map(owned)
}

/// BPF_PROG_ATTACH (`attach`) or BPF_PROG_DETACH of `prog` on the cgroup directory `target`.
pub fn bpf_prog_attach(
    attach: bool,
    target: BorrowedFd,
    prog: BorrowedFd,
    attach_type: u32,
    flags: u32,
) -> nix::Result<()> {
    let mut a = [0u8; 128];
    put32(&mut a, 0, target.as_raw_fd() as u32);
    put32(&mut a, 4, prog.as_raw_fd() as u32);
    put32(&mut a, 8, attach_type);
    put32(&mut a, 12, flags);
    bpf(if attach { 8 } else { 9 }, &mut a).map(drop)
}

/// BPF_PROG_QUERY: the ids of the programs attached to `target` itself (at most 64).
pub fn bpf_prog_query(target: BorrowedFd, attach_type: u32) -> nix::Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    let mut a = [0u8; 128];
    put32(&mut a, 0, target.as_raw_fd() as u32);
    put32(&mut a, 4, attach_type);
    put64(&mut a, 16, ids.as_mut_ptr() as u64);
    put32(&mut a, 24, ids.len() as u32);
    bpf(16, &mut a)?;
    let count = u32::from_ne_bytes(a[24..28].try_into().unwrap()) as usize;
    Ok(ids[..count.min(ids.len())].to_vec())
}

/// BPF_PROG_GET_FD_BY_ID.
pub fn bpf_prog_get_fd_by_id(id: u32) -> nix::Result<std::os::fd::OwnedFd> {
    let mut a = [0u8; 128];
    put32(&mut a, 0, id);
    bpf(13, &mut a).map(owned)
}

/// `personality(2)`: the execution domain (PER_LINUX32 makes uname report i686).
pub fn personality(persona: libc::c_ulong) -> nix::Result<()> {
    // SAFETY: personality takes an integer and changes only this process's domain.
    Errno::result(unsafe { libc::personality(persona) }).map(drop)
}

/// `struct sched_attr` (sched_setattr(2)), SCHED_ATTR_SIZE_VER1.
#[repr(C)]
#[derive(Default)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

/// `sched_setattr(2)` on this process.
pub fn sched_setattr(attr: &mut SchedAttr) -> nix::Result<()> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: attr is a valid sched_attr whose size field says how much the kernel may read.
    Errno::result(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *mut SchedAttr, 0) })
        .map(drop)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)`: this process's I/O priority.
pub fn ioprio_set(prio: i32) -> nix::Result<()> {
    // SAFETY: ioprio_set takes only integers.
    Errno::result(unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) }).map(drop)
}

/// Spawns `cmd` with `fds[i]` as its fd 3+i (a containerd logging binary's pipes). The fds
/// are moved above the target range first, so that no dup2 overwrites one still to be copied.
pub fn spawn_with_fds(
    cmd: &mut std::process::Command,
    fds: &[std::os::fd::OwnedFd],
) -> std::io::Result<std::process::Child> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let high: Vec<std::os::fd::OwnedFd> = fds
        .iter()
        .map(|f| {
            nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100)).map(own_received_fd)
        })
        .collect::<nix::Result<_>>()?;
    let raw: Vec<RawFd> = high.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the closure runs in the child between fork and exec; it only calls dup2, which
    // is async-signal-safe, on fds this process owns, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    unblock_signals_on_exec(cmd);
    cmd.spawn()
}

/// A program started by a process that blocks signals (the shim blocks SIGCHLD for its
/// reaper) inherits the blocked set: a shell would then never see its children exit.
/// This makes `cmd` start with no signal blocked.
pub fn unblock_signals_on_exec(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs between fork and exec; sigemptyset and sigprocmask are async-signal-safe
    // and the set lives on the child's stack.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `kill(2)` with any signal number, real-time ones included (nix's Signal has none).
pub fn kill_raw(pid: nix::unistd::Pid, signo: i32) -> nix::Result<()> {
    // SAFETY: kill takes only integers.
    Errno::result(unsafe { libc::kill(pid.as_raw(), signo) }).map(drop)
}

/// Bytes written to a Unix stream socket that its peer has not read yet (SIOCOUTQ).
pub fn unread_by_peer(fd: BorrowedFd) -> nix::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int, which we own for the duration of the call.
    Errno::result(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) })?;
    Ok(n.max(0) as usize)
}
