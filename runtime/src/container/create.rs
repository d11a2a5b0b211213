//! `create`: runtime-spec "Lifecycle" steps 1–6, read top to bottom in `create`.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{phase, wait_gone};
use crate::cgroups::Placement;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Kind};
use crate::init::{self, InitContext};
use crate::namespaces::{self, Plan};
use crate::state::{self, ContainerDir, State, CONFIG_FILE};
use crate::sync::{self, Msg};
use crate::{process, spec, sys};

pub enum Console {
    /// `--console-socket PATH`.
    Socket(PathBuf),
    /// An already-connected socket (foreground `run` with a terminal).
    Fd(OwnedFd),
}

pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console: Option<Console>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// `--systemd-cgroup`: the cgroup is a systemd scope.
    pub systemd_cgroup: bool,
}

/// What a failed create must undo, undone on drop unless the create succeeded.
struct Undo {
    dir: Option<ContainerDir>,
    placement: Option<Placement>,
    pids: Vec<Pid>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        for pid in &self.pids {
            let start = state::proc_start_time(*pid).map(|(_, s)| s).unwrap_or(0);
            let _ = kill(*pid, Signal::SIGKILL);
            wait_gone(*pid, start, Duration::from_secs(5));
        }
        if let Some(p) = self.placement.take() {
            p.destroy();
        }
        if let Some(d) = self.dir.take() {
            let _ = d.remove();
        }
    }
}

pub fn create(root: &Path, o: CreateOptions) -> Result<State> {
    state::validate_id(&o.id)?;
    let bundle = phase("open bundle", || {
        std::fs::canonicalize(&o.bundle).ctx(|| format!("bundle {}", o.bundle.display()))
    })?;
    let spec = phase("load config", || spec::load(&bundle))?;
    let rootfs = phase("check rootfs", || check_rootfs(&spec, &bundle))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::msg("config has no process: nothing to run"))?;
    crate::lsm::check(process)?;
    if process.terminal() == Some(true) && o.console.is_none() {
        return Err(
            Error::msg("process.terminal is true but no --console-socket was given")
                .with_hint("pass --console-socket, or set process.terminal to false"),
        );
    }
    let plan = phase("open namespaces", || Plan::from_spec(&spec))?;
    let seccomp_profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let seccomp = phase("compile seccomp", || {
        seccomp_profile.map(crate::seccomp::compile).transpose()
    })?;
    if !plan.creates(LinuxNamespaceType::Mount) {
        return Err(Error::msg("linux.namespaces: husk needs a new mount namespace (type \"mount\") to build the rootfs in"));
    }

    let mut undo = Undo {
        dir: None,
        placement: None,
        pids: Vec::new(),
    };
    let dir = phase("claim id", || ContainerDir::create(root, &o.id))?;
    let dir = undo.dir.insert(dir);
    phase("save config", || save_config(dir, &spec))?;
    let placement = phase("create cgroup", || {
        Placement::create(&spec, &o.id, o.systemd_cgroup, |planned| {
            dir.save_cgroup(planned)
        })
    })?;
    // init's copy: the directories it mounts in the container, settled by now.
    let init_placement = placement.expected()?;
    let placement = undo.placement.insert(placement);
    let fifo = phase("make exec fifo", || make_exec_fifo(&dir.exec_fifo()))?;
    let console = phase("connect console socket", || match o.console {
        Some(Console::Socket(ref p)) => crate::console::connect(p).map(Some),
        Some(Console::Fd(ref fd)) => fd.try_clone().ctx(|| "dup console fd").map(Some),
        None => Ok(None),
    })?;
    let detached = phase("make detached mounts", || {
        crate::rootfs::detached::prepare(&spec, plan.creates(LinuxNamespaceType::User))
    })?;
    let (listen_fds, extra_env) = systemd_listen_fds();

    let ctx = InitContext {
        id: &o.id,
        spec: &spec,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        plan,
        placement: &init_placement,
        fifo,
        console,
        no_pivot: o.no_pivot,
        no_new_keyring: o.no_new_keyring,
        preserve_fds: o.preserve_fds + listen_fds,
        extra_env,
        seccomp,
        detached,
        lock_fd: dir.lock_fd(),
    };
    let (parent, child) = sync::pair()?;
    let intermediate = match sys::fork().ctx(|| "fork")? {
        ForkResult::Child => {
            drop(parent);
            init::run_child(&child, || init::intermediate(&ctx, &child))
        }
        ForkResult::Parent { child: pid } => pid,
    };
    drop(child);
    undo.pids.push(intermediate);

    // Every step with the container's processes alive: one of them dying mid-create closes the
    // sync channel, and the OOM killer is the usual cause.
    let started = (|| -> Result<(Pid, u64, State)> {
        phase("join cgroup", || placement.join_init(intermediate, &spec))?;
        if let Some(score) = process.oom_score_adj() {
            phase("set oom_score_adj", || {
                process::set_oom_score_adj(intermediate, score)
            })?;
        }
        parent.send(&Msg::Go)?;
        if ctx.plan.new_user {
            phase("map user namespace ids", || {
                parent.expect(Msg::MapIds)?;
                namespaces::write_id_maps(intermediate, &spec)?;
                parent.send(&Msg::Go)
            })?;
        }
        let pid = phase("create namespaces", || match parent.recv()? {
            Some(Msg::InitPid { pid }) => Ok(Pid::from_raw(pid)),
            Some(Msg::Error { msg }) => Err(Error::msg(msg)),
            other => Err(Error::msg(format!(
                "intermediate process failed before forking init ({other:?})"
            ))),
        })?;
        parent.send(&Msg::Go)?;
        let _ = waitpid(intermediate, None);
        undo.pids = vec![pid];
        let st = new_state(
            &o.id,
            pid,
            bundle,
            rootfs,
            &spec,
            placement.clone(),
            ctx.plan.creates(LinuxNamespaceType::Pid),
        );
        let pid_start = st.pid_start;
        phase("prepare rootfs", || parent.expect(Msg::RunHooks))?;
        phase("run createRuntime hooks", || {
            let hs = st.hook_state("creating");
            hooks::run(Kind::Prestart, spec.hooks().as_ref(), &hs)?;
            hooks::run(Kind::CreateRuntime, spec.hooks().as_ref(), &hs)?;
            parent.send(&Msg::HooksDone)
        })?;
        phase("finish container init", || loop {
            match parent.recv_with_fd()? {
                Some((Msg::Ready, _)) => {
                    crate::log::debug(&format!(
                        "init: closing the pipe to signal completion: init {pid} is ready"
                    ));
                    return Ok(());
                }
                Some((Msg::SeccompListener, Some(fd))) => {
                    let profile = seccomp_profile.expect("a listener comes from a profile");
                    crate::seccomp::send_to_agent(profile, &fd, &st.hook_state("creating"))?;
                }
                Some((Msg::Error { msg }, _)) => return Err(Error::msg(msg)),
                Some((m, _)) => return Err(Error::msg(format!("container init sent {m:?} out of turn"))),
                None if seccomp_profile.is_some() => {
                    return Err(Error::msg("container init died after loading its seccomp filter").with_hint(
                        "the profile must allow what the runtime does before exec: sendto, openat, write, close, execve",
                    ))
                }
                None => return Err(Error::msg("container init died before it was ready")),
            }
        })?;
        Ok((pid, pid_start, st))
    })();
    let oom = |e: Error| {
        if placement.oom_kills() > 0 {
            e.with_hint("the OOM killer killed the container's init: linux.resources.memory.limit is too low")
        } else {
            e
        }
    };
    let (pid, pid_start, mut st) = started.map_err(oom)?;

    // The init may have been reparented and restarted its clock: take its start time again.
    st.pid_start = state::proc_start_time(pid)
        .map(|(_, s)| s)
        .unwrap_or(pid_start);
    phase("save state", || dir.save(&st))?;
    if let Some(p) = &o.pid_file {
        phase("write pid file", || write_pid_file(p, pid))?;
    }
    // Success: keep everything (dropping the directory handle only releases its lock).
    undo.pids.clear();
    undo.placement = None;
    undo.dir = None;
    Ok(st)
}

/// The state of a container whose init is `pid`, created now by us.
pub(super) fn new_state(
    id: &str,
    pid: Pid,
    bundle: PathBuf,
    rootfs: PathBuf,
    spec: &Spec,
    cgroup: Placement,
    own_pid_ns: bool,
) -> State {
    State {
        id: id.to_string(),
        pid: pid.as_raw(),
        pid_start: state::proc_start_time(pid).map(|(_, s)| s).unwrap_or(0),
        bundle,
        rootfs,
        created: crate::log::rfc3339_now(),
        owner: owner(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        cgroup,
        own_pid_ns,
    }
}

pub(super) fn check_rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let p = spec::rootfs_path(spec, bundle);
    let meta = std::fs::metadata(&p)
        .ctx(|| format!("root.path {}", p.display()))
        .map_err(|e| e.with_hint("the bundle must contain the container's root filesystem"))?;
    if !meta.is_dir() {
        return Err(Error::msg(format!(
            "root.path {}: not a directory",
            p.display()
        )));
    }
    std::fs::canonicalize(&p).ctx(|| format!("root.path {}", p.display()))
}

pub(super) fn save_config(dir: &ContainerDir, spec: &Spec) -> Result<()> {
    let bytes =
        serde_json::to_vec(spec).map_err(|e| Error::msg(format!("serialise config: {e}")))?;
    state::write_atomic(&dir.path.join(CONFIG_FILE), &bytes)
}

/// The fifo `start` opens: world-writable so that an init that switched to another user can
/// still open it through /proc/self/fd.
fn make_exec_fifo(path: &Path) -> Result<File> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .ctx(|| format!("mkfifo {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o622))
        .ctx(|| format!("chmod {}", path.display()))?;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
        .ctx(|| format!("open {}", path.display()))
}

/// go-runc reads the pid file as soon as it appears: write it whole, without a newline.
pub(super) fn write_pid_file(path: &Path, pid: Pid) -> Result<()> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    std::fs::write(&tmp, pid.to_string()).ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).ctx(|| format!("rename {} to {}", tmp.display(), path.display()))
}

/// systemd socket activation passes LISTEN_FDS fds starting at 3: hand them on, as runc does.
fn systemd_listen_fds() -> (i32, Vec<String>) {
    match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
    {
        Some(n) if n > 0 => (n, vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".into()]),
        _ => (0, Vec::new()),
    }
}

/// The owner `state` shows: the name /etc/passwd gives our uid (read directly, as runc does:
/// no NSS, which a static husk could not load).
fn owner() -> String {
    let uid = nix::unistd::geteuid().as_raw().to_string();
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid).then(|| name.to_string())
        })
        .unwrap_or(uid)
}
