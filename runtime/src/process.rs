//! `process`: rlimits, oomScoreAdj, user and groups, umask, capabilities, noNewPrivileges, cwd,
//! env, preserved fds, and finally execve. Shared by the container's init and by `exec`.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::{Gid, Pid, Uid};
use oci_spec::runtime::{PosixRlimitType, Process};

use crate::capabilities::{self, Sets};
use crate::error::{Context, Error, Result};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn resource(t: PosixRlimitType) -> (Resource, &'static str) {
    match t {
        PosixRlimitType::RlimitCpu => (Resource::RLIMIT_CPU, "RLIMIT_CPU"),
        PosixRlimitType::RlimitFsize => (Resource::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        PosixRlimitType::RlimitData => (Resource::RLIMIT_DATA, "RLIMIT_DATA"),
        PosixRlimitType::RlimitStack => (Resource::RLIMIT_STACK, "RLIMIT_STACK"),
        PosixRlimitType::RlimitCore => (Resource::RLIMIT_CORE, "RLIMIT_CORE"),
        PosixRlimitType::RlimitRss => (Resource::RLIMIT_RSS, "RLIMIT_RSS"),
        PosixRlimitType::RlimitNproc => (Resource::RLIMIT_NPROC, "RLIMIT_NPROC"),
        PosixRlimitType::RlimitNofile => (Resource::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        PosixRlimitType::RlimitMemlock => (Resource::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        PosixRlimitType::RlimitAs => (Resource::RLIMIT_AS, "RLIMIT_AS"),
        PosixRlimitType::RlimitLocks => (Resource::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        PosixRlimitType::RlimitSigpending => (Resource::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        PosixRlimitType::RlimitMsgqueue => (Resource::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        PosixRlimitType::RlimitNice => (Resource::RLIMIT_NICE, "RLIMIT_NICE"),
        PosixRlimitType::RlimitRtprio => (Resource::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        PosixRlimitType::RlimitRttime => (Resource::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// `process.rlimits`. Raising a hard limit needs CAP_SYS_RESOURCE in the initial user namespace.
pub fn set_rlimits(p: &Process) -> Result<()> {
    for r in p.rlimits().iter().flatten() {
        let (res, name) = resource(r.typ());
        if let Err(e) = setrlimit(res, r.soft(), r.hard()) {
            let mut err = Error::sys(
                format!("process.rlimits {name} soft={} hard={}", r.soft(), r.hard()),
                e,
            );
            if e == nix::errno::Errno::EPERM {
                let hard = getrlimit(res).map(|(_, h)| h).unwrap_or(0);
                err = err.with_hint(format!(
                    "the current hard limit is {hard}; raising it needs CAP_SYS_RESOURCE"
                ));
            }
            return Err(err);
        }
    }
    Ok(())
}

/// `process.oomScoreAdj`, written by the runtime for the process it forked.
pub fn set_oom_score_adj(pid: Pid, score: i32) -> Result<()> {
    let p = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&p, score.to_string())
        .ctx(|| format!("process.oomScoreAdj {score}: write {p}"))
        .map_err(|e| {
            if e.errno() == Some(nix::errno::Errno::EACCES)
                || e.errno() == Some(nix::errno::Errno::EPERM)
            {
                e.with_hint("lowering oom_score_adj needs CAP_SYS_RESOURCE")
            } else {
                e
            }
        })
}

/// What execve gets: the program found in the container's PATH, its args and environment.
pub struct Program {
    pub path: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
}

/// The last steps before exec, shared by the container's init and `exec`: rlimits, the fds
/// to keep, the user switch with capabilities, cwd, the program lookup, and seccomp. Without
/// noNewPrivileges, loading a filter needs CAP_SYS_ADMIN, so it is loaded before the switch;
/// with it, as late as possible. A NOTIFY listener goes to the runtime over `ch`.
pub fn finalize(
    p: &Process,
    extra_env: &[String],
    in_user_ns: bool,
    preserve_fds: RawFd,
    seccomp: Option<&crate::seccomp::Filter>,
    personality: Option<&oci_spec::runtime::LinuxPersonality>,
    ch: &crate::sync::Channel,
) -> Result<Program> {
    set_rlimits(p)?;
    set_personality(personality)?;
    set_scheduler(p)?;
    set_io_priority(p)?;
    let mut env = environment(p);
    env.extend(extra_env.iter().cloned());
    let args = p.args().clone().unwrap_or_default();
    let nnp = p.no_new_privileges() == Some(true);
    // Before any filter: a profile need not allow close_range (runtime-tools' does not).
    prepare_fds(preserve_fds)?;
    if !nnp {
        crate::seccomp::apply(seccomp, ch)?;
    }
    let in_cwd = try_enter_cwd(p);
    become_user(p, setgroups_allowed(in_user_ns))?;
    if !in_cwd {
        enter_cwd(p)?;
    }
    let path = find_program(&args[0], &env)?;
    crate::lsm::apply_on_exec(p)?;
    if nnp {
        crate::seccomp::apply(seccomp, ch)?;
    }
    Ok(Program { path, args, env })
}

/// setgroups is denied in a user namespace an unprivileged runtime made.
/// `linux.personality`: the execution domain. The spec defines no flags yet.
fn set_personality(p: Option<&oci_spec::runtime::LinuxPersonality>) -> Result<()> {
    use oci_spec::runtime::LinuxPersonalityDomain;
    let Some(p) = p else { return Ok(()) };
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::msg(format!(
            "linux.personality.flags {:?}: the runtime spec defines no flags",
            p.flags().as_ref().unwrap()
        )));
    }
    let (name, persona) = match p.domain() {
        LinuxPersonalityDomain::PerLinux => ("LINUX", 0x0000),
        LinuxPersonalityDomain::PerLinux32 => ("LINUX32", 0x0008),
    };
    crate::sys::personality(persona)
        .ctx(|| format!("linux.personality.domain {name}: personality(2)"))
}

/// `process.scheduler`: sched_setattr(2), before capabilities are dropped (a real-time policy
/// needs CAP_SYS_NICE).
fn set_scheduler(p: &Process) -> Result<()> {
    use oci_spec::runtime::{LinuxSchedulerFlag as F, LinuxSchedulerPolicy as P};
    let Some(s) = p.scheduler() else {
        return Ok(());
    };
    let mut attr = crate::sys::SchedAttr {
        policy: match s.policy() {
            P::SchedOther => 0,
            P::SchedFifo => 1,
            P::SchedRr => 2,
            P::SchedBatch => 3,
            P::SchedIso => 4,
            P::SchedIdle => 5,
            P::SchedDeadline => 6,
        },
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0).max(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    for f in s.flags().iter().flatten() {
        attr.flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    crate::sys::sched_setattr(&mut attr).ctx(|| {
        format!(
            "process.scheduler {:?} nice={} priority={}: sched_setattr",
            s.policy(),
            attr.nice,
            attr.priority
        )
    })
}

/// `process.ioPriority`: ioprio_set(2).
fn set_io_priority(p: &Process) -> Result<()> {
    use oci_spec::runtime::IOPriorityClass as C;
    let Some(io) = p.io_priority() else {
        return Ok(());
    };
    let class = match io.class() {
        C::IoprioClassRt => 1,
        C::IoprioClassBe => 2,
        C::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&io.priority()) {
        return Err(Error::msg(format!(
            "process.ioPriority.priority {}: must be between 0 and 7",
            io.priority()
        )));
    }
    crate::sys::ioprio_set((class << 13) | io.priority() as i32).ctx(|| {
        format!(
            "process.ioPriority {:?} {}: ioprio_set",
            io.class(),
            io.priority()
        )
    })
}

fn setgroups_allowed(in_user_ns: bool) -> bool {
    !in_user_ns
        || std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() == "allow")
}

/// Becomes the configured user with the configured capabilities: bounding set first (while we
/// still hold CAP_SETPCAP), then groups, gid and uid with PR_SET_KEEPCAPS, then the other sets,
/// then noNewPrivileges.
pub fn become_user(p: &Process, setgroups_allowed: bool) -> Result<()> {
    let user = p.user();
    if let Some(mask) = user.umask() {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    let sets = Sets::from_spec(p.capabilities().as_ref());
    capabilities::drop_bounding(&sets)?;
    nix::sys::prctl::set_keepcaps(true).ctx(|| "prctl PR_SET_KEEPCAPS")?;
    if setgroups_allowed {
        let gids: Vec<Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        nix::unistd::setgroups(&gids).ctx(|| {
            format!(
                "process.user.additionalGids {:?}: setgroups",
                user.additional_gids().clone().unwrap_or_default()
            )
        })?;
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .ctx(|| format!("process.user.gid {gid}: setgid"))
        .map_err(|e| e.with_hint("is the gid mapped in the container's user namespace?"))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .ctx(|| format!("process.user.uid {uid}: setuid"))
        .map_err(|e| e.with_hint("is the uid mapped in the container's user namespace?"))?;
    capabilities::apply(&sets)?;
    nix::sys::prctl::set_keepcaps(false).ctx(|| "prctl PR_SET_KEEPCAPS")?;
    if p.no_new_privileges() == Some(true) {
        nix::sys::prctl::set_no_new_privs()
            .ctx(|| "process.noNewPrivileges: prctl PR_SET_NO_NEW_PRIVS")?;
    }
    Ok(())
}

/// `process.cwd`: tried before the user switch (a root user without CAP_DAC_OVERRIDE may not
/// reach it later) and, if that failed, after it (a directory only the user may enter).
fn try_enter_cwd(p: &Process) -> bool {
    nix::unistd::chdir(p.cwd()).is_ok()
}

pub fn enter_cwd(p: &Process) -> Result<()> {
    nix::unistd::chdir(p.cwd()).ctx(|| format!("process.cwd {}: chdir", p.cwd().display()))
}

/// The environment the program gets: `process.env`, with HOME added from the container's
/// /etc/passwd when unset (as runc does).
pub fn environment(p: &Process) -> Vec<String> {
    let mut env: Vec<String> = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = home_of(p.user().uid()).unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

fn home_of(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
    })
}

/// Finds the program as execvp would, in the container's PATH; fails early so that `create`
/// (not a later `start`) reports a missing binary.
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let not_found = || {
        Error::msg(format!(
            "process.args[0] {arg0:?}: executable file not found in $PATH"
        ))
    };
    if arg0.contains('/') {
        nix::unistd::access(arg0, nix::unistd::AccessFlags::X_OK)
            .map_err(|e| Error::sys(format!("process.args[0] {arg0:?}"), e))?;
        // access(X_OK) holds for directories too; execve would fail only after start.
        if std::fs::metadata(arg0).is_ok_and(|m| m.is_dir()) {
            return Err(Error::sys(
                format!("process.args[0] {arg0:?}"),
                nix::errno::Errno::EACCES,
            )
            .with_hint("it is a directory"));
        }
        return Ok(PathBuf::from(arg0));
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if let Ok(m) = std::fs::metadata(&cand) {
            if m.is_file() && nix::unistd::access(&cand, nix::unistd::AccessFlags::X_OK).is_ok() {
                return Ok(cand);
            }
        }
    }
    Err(not_found())
}

/// Keeps fds 3..3+n open across exec and marks every fd above them close-on-exec.
fn prepare_fds(preserve: RawFd) -> Result<()> {
    crate::sys::cloexec_from(3 + preserve).ctx(|| "close_range")?;
    for fd in 3..3 + preserve {
        crate::sys::clear_cloexec(fd).ctx(|| format!("--preserve-fds: fd {fd}"))?;
    }
    Ok(())
}

pub fn exec(program: &Path, args: &[String], env: &[String]) -> Error {
    let cstr =
        |s: &str| CString::new(s).map_err(|_| Error::msg(format!("{s:?} contains a NUL byte")));
    let run = || -> Result<std::convert::Infallible> {
        let prog = cstr(&program.to_string_lossy())?;
        let args = args.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
        let env = env.iter().map(|e| cstr(e)).collect::<Result<Vec<_>>>()?;
        nix::unistd::execve(&prog, &args, &env).ctx(|| format!("exec {}", program.display()))
    };
    match run() {
        Ok(never) => match never {},
        Err(e) => e,
    }
}
