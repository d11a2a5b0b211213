//! `exec`: runs another process in a container's namespaces and cgroup, as the container's
//! init was run: same user switch, capabilities and rlimits code.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::{phase, Console, Container};
use crate::error::{Context, Error, Result};
use crate::init::run_child;
use crate::state::Status;
use crate::sync::{self, Msg};
use crate::{console, namespaces, process, sys};

pub struct ExecOptions {
    pub process: Process,
    pub console: Option<Console>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    /// Exec into a paused container (the process stays frozen until resume).
    pub ignore_paused: bool,
    /// `--cgroup [CONTROLLERS:]PATH`: sub-cgroups to join instead of the container's own.
    pub sub_cgroups: Vec<String>,
}

/// Starts the process and returns its pid once it has exec'd (or the one line of why not).
pub fn exec(root: &Path, id: &str, o: ExecOptions) -> Result<Pid> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Stopped => return Err(Error::msg("cannot exec in a stopped container")),
        Status::Paused if !o.ignore_paused => {
            return Err(Error::msg("cannot exec in a paused container")
                .with_hint("resume it first, or pass --ignore-paused"))
        }
        _ => {}
    }
    if o.process.terminal() == Some(true) && o.console.is_none() {
        return Err(Error::msg(
            "--tty needs a terminal: give --console-socket, or run in the foreground",
        ));
    }
    let spec = c.spec()?;
    let personality = spec.linux().as_ref().and_then(|l| l.personality().clone());
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let seccomp = profile.as_ref().map(crate::seccomp::compile).transpose()?;
    let init = Pid::from_raw(c.state.pid);
    // exec changes nothing in the container's state: release its lock, so that a `resume`
    // can thaw a paused container this exec waits on (--ignore-paused).
    let state = c.state.clone();
    let cgroup = state.cgroup.clone();
    drop(c);
    let ns = namespaces::of_process(init, &spec)?;
    let has_user_ns = ns.iter().any(|(t, _)| *t == LinuxNamespaceType::User);
    let root_dir =
        File::open(format!("/proc/{init}/root")).ctx(|| format!("open /proc/{init}/root"))?;
    crate::lsm::check(&o.process)?;
    let console = match &o.console {
        Some(Console::Socket(p)) => Some(console::connect(p)?),
        Some(Console::Fd(fd)) => Some(fd.try_clone().ctx(|| "dup console fd")?),
        None => None,
    };
    let (parent, child) = sync::pair()?;
    let intermediate = match sys::fork().ctx(|| "fork")? {
        ForkResult::Child => {
            drop(parent);
            run_child(&child, || {
                crate::log::debug(&format!(
                    "nsexec container setup: intermediate process {} joins the namespaces of {init}",
                    nix::unistd::getpid()
                ));
                child.expect(Msg::Go)?;
                // CVE-2019-5736: until the execve, this process and its child are husk's
                // binary; undumpable, a process of the container cannot open their
                // /proc/PID/exe (nor their memory). execve makes the program dumpable again.
                if !has_user_ns {
                    nix::sys::prctl::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE, 0)")?;
                }
                for (t, f) in &ns {
                    nix::sched::setns(f.as_fd(), namespaces::clone_flag(*t))
                        .ctx(|| format!("join {} namespace of {init}", crate::spec::ns_name(*t)))?;
                }
                match sys::fork().ctx(|| "fork")? {
                    ForkResult::Child => run_child(&child, || {
                        crate::log::debug("child process in init(): the exec'd process sets up");
                        // Wait until the pid is reported: nothing we send may overtake it.
                        child.expect(Msg::Go)?;
                        nix::unistd::fchdir(root_dir.as_fd()).ctx(|| "enter container root")?;
                        nix::unistd::chroot(".").ctx(|| "chroot into container root")?;
                        nix::unistd::setsid().ctx(|| "setsid")?;
                        if let Some(sock) = &console {
                            console::setup(sock, &o.process, false)?;
                        }
                        let program = process::finalize(
                            &o.process,
                            &[],
                            has_user_ns,
                            o.preserve_fds,
                            seccomp.as_ref(),
                            personality.as_ref(),
                            &child,
                        )?;
                        sys::reset_signals();
                        crate::log::debug(&format!(
                            "setns_init: about to exec {}",
                            program.path.display()
                        ));
                        // With the container's credentials and capabilities, and still husk's
                        // binary: the window CVE-2019-5736 used.
                        super::fault_point("exec child about to exec");
                        Err(process::exec(&program.path, &program.args, &program.env))
                    }),
                    ForkResult::Parent { child: pid } => {
                        child.send(&Msg::InitPid { pid: pid.as_raw() })?
                    }
                }
                Ok(())
            })
        }
        ForkResult::Parent { child: pid } => pid,
    };
    drop(child);
    let result = (|| {
        phase("join cgroup", || {
            if o.sub_cgroups.is_empty() {
                cgroup.add_exec(intermediate, init)
            } else {
                cgroup.add_to_sub(intermediate, &o.sub_cgroups)
            }
        })?;
        let pid = phase("enter namespaces", || {
            parent.send(&Msg::Go)?;
            match parent.recv()? {
                Some(Msg::InitPid { pid }) => Ok(Pid::from_raw(pid)),
                Some(Msg::Error { msg }) => Err(Error::msg(msg)),
                _ => Err(Error::msg("exec: intermediate process died")),
            }
        })?;
        parent.send(&Msg::Go)?;
        // End of file: the process exec'd (the channel is close-on-exec).
        loop {
            match parent.recv_with_fd()? {
                None => return Ok(pid),
                Some((Msg::SeccompListener, Some(fd))) => {
                    let mut st = state.to_json(crate::state::Status::Running);
                    st["pid"] = pid.as_raw().into();
                    crate::seccomp::send_to_agent(
                        profile.as_ref().expect("listener from a profile"),
                        &fd,
                        &st,
                    )?;
                }
                Some((Msg::Error { msg }, _)) => return Err(Error::msg(msg)),
                Some((m, _)) => return Err(Error::msg(format!("exec: unexpected {m:?}"))),
            }
        }
    })();
    // On failure the intermediate may still wait for Go: it must not outlive us.
    if result.is_err() {
        let _ = nix::sys::signal::kill(intermediate, nix::sys::signal::Signal::SIGKILL);
    }
    drop(parent);
    let _ = waitpid(intermediate, None);
    let pid = result?;
    if let Some(p) = &o.pid_file {
        super::create::write_pid_file(p, pid)?;
    }
    Ok(pid)
}
