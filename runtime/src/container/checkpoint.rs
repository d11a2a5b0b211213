//! `checkpoint` and `restore`: a running container's processes saved to images by CRIU and
//! brought back from them, through the `criu` command. What criu is told follows runc (which
//! drives criu over its RPC): bind mounts, masked files and devices are external mounts keyed
//! by their path in the container; the network namespace is left empty (runc does not manage
//! network devices); stdio pipes are re-wired on restore from `descriptors.json`.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{phase, Container};
use crate::cgroups::Placement;
use crate::error::{Context, Error, Result};
use crate::namespaces::Plan;
use crate::rootfs::mounts::is_bind;
use crate::state::{self, ContainerDir, State, Status};
use crate::{spec, sys};

/// The image directory's record of init's stdio (readlink of fds 0-2), as runc writes it.
const DESCRIPTORS: &str = "descriptors.json";

/// What `checkpoint` and `restore` share (runc's flags of the same names).
#[derive(Default)]
pub struct CriuOptions {
    /// The criu binary (`--criu`); None: criu in PATH.
    pub criu: Option<PathBuf>,
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    /// soft, full, strict or ignore; None: criu's default (soft).
    pub manage_cgroups_mode: Option<String>,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
}

#[derive(Default)]
pub struct CheckpointOptions {
    pub criu: CriuOptions,
    pub leave_running: bool,
    pub pre_dump: bool,
    /// Relative to the image path, as runc takes it.
    pub parent_path: Option<PathBuf>,
    /// ADDRESS:PORT.
    pub page_server: Option<String>,
    pub status_fd: Option<i32>,
    pub tcp_skip_in_flight: bool,
    pub link_remap: bool,
}

pub struct RestoreOptions {
    pub criu: CriuOptions,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub systemd_cgroup: bool,
}

impl CriuOptions {
    /// Options of both verbs; `log` is the log file's name in the work directory.
    fn args(&self, log: &str) -> Result<Vec<OsString>> {
        let mut a: Vec<OsString> = vec!["-D".into(), self.image_path.clone().into()];
        if let Some(w) = &self.work_path {
            a.extend(["-W".into(), w.clone().into()]);
        }
        a.extend(["-v4".into(), "-o".into(), log.into()]);
        match self.manage_cgroups_mode.as_deref() {
            None => a.push("--manage-cgroups".into()),
            Some(m @ ("soft" | "full" | "strict" | "ignore")) => {
                a.push(format!("--manage-cgroups={m}").into())
            }
            Some(m) => {
                return Err(Error::msg(format!(
                    "--manage-cgroups-mode {m:?}: want soft, full, strict or ignore"
                )))
            }
        }
        // runc does not manage network devices: criu neither saves nor restores them.
        a.extend(["--empty-ns".into(), "net".into()]);
        for (on, flag) in [
            (self.tcp_established, "--tcp-established"),
            (self.ext_unix_sk, "--ext-unix-sk"),
            (self.shell_job, "--shell-job"),
            (self.file_locks, "--file-locks"),
            (self.auto_dedup, "--auto-dedup"),
            (self.lazy_pages, "--lazy-pages"),
        ] {
            if on {
                a.push(flag.into());
            }
        }
        Ok(a)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.work_path
            .as_ref()
            .unwrap_or(&self.image_path)
            .join(name)
    }
}

/// `checkpoint`: dumps a running or paused container's processes into the image directory.
/// Unless it leaves them running (or only pre-dumps), the container is gone afterwards, as
/// with runc: criu has killed its processes, and husk deletes what remains.
pub fn checkpoint(root: &Path, id: &str, o: &CheckpointOptions) -> Result<()> {
    let c = Container::load(root, id)?;
    match c.status() {
        Status::Running | Status::Paused => {}
        s => {
            return Err(Error::msg(format!(
                "cannot checkpoint a container that is {}",
                s.as_str()
            ))
            .with_hint("only a running or paused container can be checkpointed"))
        }
    }
    let spec = c.spec()?;
    let criu = find_criu(o.criu.criu.as_deref())?;
    if let Some(p) = &o.parent_path {
        let full = o.criu.image_path.join(p);
        if p.is_absolute() || !full.is_dir() {
            return Err(Error::msg(format!(
                "invalid --parent-path {}: want a directory relative to --image-path",
                p.display()
            )));
        }
    }
    phase("make image directory", || {
        make_dir(&o.criu.image_path)?;
        o.criu.work_path.as_deref().map_or(Ok(()), make_dir)
    })?;

    let pid = c.state.pid;
    let verb = if o.pre_dump { "pre-dump" } else { "dump" };
    let log_name = format!("{verb}.log");
    let mut args: Vec<OsString> = vec![
        verb.into(),
        "-t".into(),
        pid.to_string().into(),
        "--root".into(),
        c.state.rootfs.clone().into(),
    ];
    args.extend(o.criu.args(&log_name)?);
    // The freezer stops the container at once; without it criu stops each task by ptrace.
    if let Some(dir) = c.state.cgroup.freezer_dir() {
        args.extend(["--freeze-cgroup".into(), dir.into()]);
    }
    if o.leave_running {
        args.push("--leave-running".into());
    }
    if o.tcp_skip_in_flight {
        args.push("--skip-in-flight".into());
    }
    if o.link_remap {
        args.push("--link-remap".into());
    }
    if let Some(p) = &o.parent_path {
        args.extend(["--prev-images-dir".into(), p.into(), "--track-mem".into()]);
    }
    if let Some(ps) = &o.page_server {
        let (addr, port) = ps
            .rsplit_once(':')
            .filter(|(a, p)| !a.is_empty() && !p.is_empty())
            .ok_or_else(|| Error::msg(format!("--page-server {ps:?}: want ADDRESS:PORT")))?;
        if o.criu.lazy_pages {
            // criu's lazy pages server listens on a port of its own; the address is not used.
            args.extend(["--port".into(), port.into()]);
        } else {
            args.extend([
                "--page-server".into(),
                "--address".into(),
                addr.into(),
                "--port".into(),
                port.into(),
            ]);
        }
    }
    if let Some(fd) = o.status_fd {
        args.extend(["--status-fd".into(), fd.to_string().into()]);
    }
    if !o.pre_dump {
        args.extend(dump_externals(&spec, pid)?);
        phase("save descriptors", || {
            save_descriptors(&o.criu.image_path, pid)
        })?;
    }
    let log = o.criu.log(&log_name);
    phase("checkpoint", || {
        let status = std::process::Command::new(&criu)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .status()
            .ctx(|| format!("run {}", criu.display()))?;
        criu_result(verb, status.code(), &log)
    })?;
    drop(c);
    if !(o.leave_running || o.pre_dump) {
        phase("delete checkpointed container", || {
            super::delete(root, id, true)
        })?;
    }
    Ok(())
}

/// `restore`: a new container `id` from the bundle, its processes those of the images. The
/// container is running when this returns; its init is husk's child (criu restores it as
/// criu's sibling), for `restore` without --detach to wait on.
pub fn restore(root: &Path, o: &RestoreOptions) -> Result<State> {
    state::validate_id(&o.id)?;
    let bundle = phase("open bundle", || {
        fs::canonicalize(&o.bundle).ctx(|| format!("bundle {}", o.bundle.display()))
    })?;
    let mut spec = phase("load config", || spec::load(&bundle))?;
    let rootfs = phase("check rootfs", || {
        super::create::check_rootfs(&spec, &bundle)
    })?;
    if spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
    {
        return Err(Error::msg(
            "restore of a container with process.terminal: not supported by husk yet",
        )
        .with_hint("criu's command line cannot hand back a terminal's pty master: restore a container without process.terminal"));
    }
    let criu = find_criu(o.criu.criu.as_deref())?;
    let plan = phase("open namespaces", || Plan::from_spec(&spec))?;
    if !o.criu.image_path.join("inventory.img").exists() {
        return Err(Error::msg(format!(
            "--image-path {}: no checkpoint there (no inventory.img)",
            o.criu.image_path.display()
        )));
    }
    if let Some(w) = &o.criu.work_path {
        make_dir(w)?;
    }

    let mut undo = Undo {
        dir: None,
        placement: None,
        criu_root: None,
        pid: None,
    };
    let dir = phase("claim id", || ContainerDir::create(root, &o.id))?;
    let dir = undo.dir.insert(dir);
    let placement = phase("create cgroup", || {
        Placement::create(&spec, &o.id, o.systemd_cgroup, |planned| {
            dir.save_cgroup(planned)
        })
    })?;
    let placement = undo.placement.insert(placement);
    // criu needs a root that is a mount point whose parent is not mounted over.
    let criu_root = dir.path.join("criu-root");
    phase("mount criu root", || {
        fs::create_dir_all(&criu_root).ctx(|| format!("mkdir {}", criu_root.display()))?;
        mount(
            Some(&rootfs),
            &criu_root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind {} on {}", rootfs.display(), criu_root.display()))?;
        undo.criu_root = Some(criu_root.clone());
        Ok(())
    })?;
    phase("prepare mount points", || {
        prepare_mount_points(&spec, &criu_root)
    })?;

    let pidfile = dir.path.join("criu.pid");
    let mut args: Vec<OsString> = vec![
        "restore".into(),
        "--restore-detached".into(),
        "--restore-sibling".into(),
        "--pidfile".into(),
        pidfile.clone().into(),
        "--root".into(),
        criu_root.clone().into(),
        "--evasive-devices".into(),
    ];
    args.extend(o.criu.args("restore.log")?);
    args.extend(restore_externals(&spec));
    args.extend(inherit_stdio(&o.criu.image_path));
    let hooks = spec.hooks().as_ref();
    let env = if hooks.is_some_and(|h| h.prestart().is_some() || h.create_runtime().is_some()) {
        let exe = std::env::current_exe().ctx(|| "find husk's own binary")?;
        args.extend(["--action-script".into(), exe.into()]);
        vec![
            (ACTION_ID, o.id.clone().into()),
            (ACTION_BUNDLE, bundle.clone().into_os_string()),
        ]
    } else {
        Vec::new()
    };
    args.extend(restore_namespaces(&spec, &plan)?);
    let log = o.criu.log("restore.log");

    let result = phase("restore", || {
        run_criu_in_cgroup(&criu, &args, &env, |pid| placement.join_init(pid, &spec))
    });
    criu_result("restore", result?, &log)?;
    let pid = phase("read restored pid", || {
        let s = fs::read_to_string(&pidfile).ctx(|| format!("read {}", pidfile.display()))?;
        s.trim()
            .parse::<i32>()
            .map(Pid::from_raw)
            .map_err(|_| Error::msg(format!("{}: not a pid: {s:?}", pidfile.display())))
    })?;
    undo.pid = Some(pid);
    let _ = fs::remove_file(&pidfile);
    // criu restores into a time namespace of its own where the kernel has them: `exec` must
    // join it too, so the saved config names it.
    let own_time = |p: &str| fs::read_link(p).ok();
    if own_time(&format!("/proc/{pid}/ns/time")) != own_time("/proc/self/ns/time") {
        add_time_namespace(&mut spec);
    }
    phase("save config", || super::create::save_config(dir, &spec))?;
    let st = super::create::new_state(
        &o.id,
        pid,
        bundle,
        rootfs,
        &spec,
        placement.clone(),
        plan.creates(LinuxNamespaceType::Pid),
    );
    phase("save state", || dir.save(&st))?;
    if let Some(p) = &o.pid_file {
        phase("write pid file", || super::create::write_pid_file(p, pid))?;
    }
    undo.pid = None;
    undo.placement = None;
    undo.dir = None;
    Ok(st)
}

/// criu runs husk as its action script when the config has prestart or createRuntime hooks:
/// at "setup-namespaces" the restored init exists in its namespaces, and runc runs those hooks
/// then (with status "creating" and the restored pid). These name the container for it.
const ACTION_ID: &str = "HUSK_RESTORE_ID";
const ACTION_BUNDLE: &str = "HUSK_RESTORE_BUNDLE";

/// husk started by criu as its action script: runs the hooks due at "setup-namespaces" and
/// returns the exit code (non-zero fails the restore). None: not started by criu.
pub fn criu_action() -> Option<i32> {
    let action = std::env::var("CRTOOLS_SCRIPT_ACTION").ok()?;
    let id = std::env::var(ACTION_ID).ok()?;
    if action != "setup-namespaces" {
        return Some(0);
    }
    let run = || -> Result<()> {
        let bundle = PathBuf::from(std::env::var_os(ACTION_BUNDLE).unwrap_or_default());
        let pid: i32 = std::env::var("CRTOOLS_INIT_PID")
            .ok()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::msg("criu gave no CRTOOLS_INIT_PID"))?;
        // The bundle's config: the one restore loaded, before criu made the container.
        let spec = spec::load(&bundle)?;
        let annotations = spec.annotations().clone().unwrap_or_default();
        let st = crate::hooks::state_json(&id, "creating", pid, &bundle, &annotations);
        crate::hooks::run(crate::hooks::Kind::Prestart, spec.hooks().as_ref(), &st)?;
        crate::hooks::run(
            crate::hooks::Kind::CreateRuntime,
            spec.hooks().as_ref(),
            &st,
        )
    };
    Some(match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("husk: restore {id}: {e}");
            1
        }
    })
}

/// What a failed restore must undo, undone on drop; the criu root is unmounted either way.
struct Undo {
    dir: Option<ContainerDir>,
    placement: Option<Placement>,
    criu_root: Option<PathBuf>,
    pid: Option<Pid>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(r) = self.criu_root.take() {
            let _ = umount2(&r, MntFlags::MNT_DETACH);
            let _ = fs::remove_dir(&r);
        }
        if let Some(pid) = self.pid.take() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(p) = self.placement.take() {
            let _ = p.signal_all(libc::SIGKILL);
            p.destroy();
        }
        if let Some(d) = self.dir.take() {
            let _ = d.remove();
        }
    }
}

fn find_criu(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        if !p.is_file() {
            return Err(Error::msg(format!("--criu {}: no such file", p.display())));
        }
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("criu"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::msg("criu: not found in PATH").with_hint(
                "checkpoint and restore need CRIU: apt-get install criu (Debian, Ubuntu)",
            )
        })
}

fn make_dir(p: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .ctx(|| format!("mkdir {}", p.display()))
}

/// One line for a failed criu: its exit status and the first error its log names.
fn criu_result(verb: &str, code: Option<i32>, log: &Path) -> Result<()> {
    if code == Some(0) {
        return Ok(());
    }
    let first_error = fs::read_to_string(log).ok().and_then(|l| cause(&l));
    let status = code.map_or("killed by a signal".to_string(), |c| {
        format!("exit status {c}")
    });
    Err(Error::msg(format!(
        "criu {verb}: {status}{}",
        first_error.map_or(String::new(), |e| format!(": {e}"))
    ))
    .with_hint(format!("criu's log: {}", log.display())))
}

/// The cause in a criu log: its last error, passing over the summaries that follow it
/// ("Dumping FAILED", "… failed with -1", "… finished with error") and the probes of helper
/// programs and kernel features that fail harmlessly before (util.c's).
fn cause(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .filter_map(|l| l.split_once("Error (").map(|(_, e)| e))
        .find(|e| {
            let generic = ["criu/util.c", "criu/cr-dump.c", "criu/cr-restore.c"];
            !generic.iter().any(|g| e.starts_with(g))
                && !e.contains("finished with error")
                && !e.contains(" failed with ")
        })
        .map(|e| e.split_once("): ").map_or(e, |(_, m)| m).trim().to_string())
}

/// Runs criu from a child that waits until `place` has put it in the container's cgroup: the
/// restored processes start where criu is, and criu takes that cgroup for its --cgroup-root.
fn run_criu_in_cgroup(
    criu: &Path,
    args: &[OsString],
    env: &[(&str, OsString)],
    place: impl FnOnce(Pid) -> Result<()>,
) -> Result<Option<i32>> {
    let (rx, tx) = nix::unistd::pipe().ctx(|| "pipe")?;
    match sys::fork().ctx(|| "fork")? {
        ForkResult::Child => {
            drop(tx);
            let mut b = [0u8; 1];
            if !matches!(nix::unistd::read(&rx, &mut b), Ok(1)) {
                sys::exit_now(1);
            }
            let mut cmd = std::process::Command::new(criu);
            cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
            for root in own_cgroup_roots() {
                cmd.args(["--cgroup-root".into(), root]);
            }
            let e = cmd.exec();
            eprintln!("husk: exec {}: {e}", criu.display());
            sys::exit_now(127)
        }
        ForkResult::Parent { child } => {
            drop(rx);
            let placed = place(child);
            if placed.is_ok() {
                let _ = nix::unistd::write(&tx, b"g");
            }
            drop(tx);
            let status = waitpid(child, None).ctx(|| "wait for criu")?;
            placed?;
            Ok(match status {
                WaitStatus::Exited(_, c) => Some(c),
                _ => None,
            })
        }
    }
}

/// This process's cgroups as --cgroup-root values: "CONTROLLERS:PATH" (v1), "PATH" (v2).
fn own_cgroup_roots() -> Vec<OsString> {
    fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            Some(if ctrls.is_empty() {
                path.into()
            } else {
                format!("{ctrls}:{path}").into()
            })
        })
        .collect()
}

/// The dump's external mounts: binds (keyed by their destination), masked files (/dev/null
/// bound over them), devices, and a network or pid namespace joined by path.
fn dump_externals(spec: &Spec, pid: i32) -> Result<Vec<OsString>> {
    let mut a: Vec<OsString> = Vec::new();
    let mut ext = |k: String| a.extend(["--external".into(), k.into()]);
    for m in spec.mounts().iter().flatten().filter(|m| is_bind(m)) {
        let d = m.destination().display();
        ext(format!("mnt[{d}]:{d}"));
    }
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        let inside = PathBuf::from(format!("/proc/{pid}/root{p}"));
        if fs::metadata(&inside).is_ok_and(|m| !m.is_dir()) {
            ext(format!("mnt[{p}]:/dev/null"));
        }
    }
    device_externals(spec).for_each(&mut ext);
    for ns in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let (Some((kind, key)), Some(path)) = (external_ns(ns.typ()), ns.path()) else {
            continue;
        };
        use std::os::unix::fs::MetadataExt;
        let ino = fs::metadata(path)
            .ctx(|| format!("linux.namespaces: {}", path.display()))?
            .ino();
        ext(format!("{kind}[{ino}]:{key}"));
    }
    Ok(a)
}

/// The restore's map of the same external mounts to what they are on this host.
fn restore_externals(spec: &Spec) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut ext = |k: String| a.extend(["--external".into(), k.into()]);
    for m in spec.mounts().iter().flatten().filter(|m| is_bind(m)) {
        if let Some(src) = m.source() {
            ext(format!(
                "mnt[{}]:{}",
                m.destination().display(),
                src.display()
            ));
        }
    }
    let linux = spec.linux().as_ref();
    if linux
        .and_then(|l| l.masked_paths().as_ref())
        .is_some_and(|p| !p.is_empty())
    {
        ext("mnt[/dev/null]:/dev/null".into());
    }
    device_externals(spec).for_each(&mut ext);
    a
}

/// Namespaces the config joins by path (`plan`'s, opened and checked): a network or pid
/// namespace is the dump's external one, handed to criu as an inherited fd; others criu
/// joins itself.
fn restore_namespaces(spec: &Spec, plan: &Plan) -> Result<Vec<OsString>> {
    use std::os::fd::AsRawFd;
    let mut args = Vec::<OsString>::new();
    let list = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
    let path_of = |t: LinuxNamespaceType| {
        list.into_iter()
            .flatten()
            .find(|n| n.typ() == t)
            .and_then(|n| n.path().clone())
            .unwrap_or_default()
    };
    for (t, f) in &plan.join {
        let path = path_of(*t);
        if *t == LinuxNamespaceType::Cgroup {
            return Err(Error::msg(format!(
                "linux.namespaces: cannot restore into the cgroup namespace {}",
                path.display()
            )));
        }
        let Some((_, key)) = external_ns(*t) else {
            let name = crate::namespaces::proc_name(*t);
            args.extend([
                "--join-ns".into(),
                format!("{name}:{}", path.display()).into(),
            ]);
            continue;
        };
        // The fd must outlive exec into criu.
        nix::fcntl::fcntl(
            f,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .ctx(|| format!("fcntl {}", path.display()))?;
        args.extend([
            "--inherit-fd".into(),
            format!("fd[{}]:{key}", f.as_raw_fd()).into(),
        ]);
    }
    Ok(args)
}

/// criu's kind and runc's key for a namespace joined by path that criu takes as external.
fn external_ns(t: LinuxNamespaceType) -> Option<(&'static str, &'static str)> {
    match t {
        LinuxNamespaceType::Network => Some(("net", "extRootNetNS")),
        LinuxNamespaceType::Pid => Some(("pid", "extRootPidNS")),
        _ => None,
    }
}

/// Devices are external mounts by their path, in dump and restore alike (they may be binds
/// of the host's nodes).
fn device_externals(spec: &Spec) -> impl Iterator<Item = String> + '_ {
    let devices = spec.linux().as_ref().and_then(|l| l.devices().as_ref());
    devices.into_iter().flatten().map(|d| {
        let p = d.path().display();
        format!("mnt[{p}]:{p}")
    })
}

/// init's stdio as it is now, for `restore` to re-wire pipes with.
fn save_descriptors(images: &Path, pid: i32) -> Result<()> {
    let fds: Vec<String> = (0..3)
        .map(|fd| {
            fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let path = images.join(DESCRIPTORS);
    let bytes = serde_json::to_vec(&fds).map_err(|e| Error::msg(format!("{DESCRIPTORS}: {e}")))?;
    fs::write(&path, bytes).ctx(|| format!("write {}", path.display()))
}

/// Each pipe init had as stdio becomes this process's same fd in the restored init.
fn inherit_stdio(images: &Path) -> Vec<OsString> {
    let fds: Vec<String> = fs::read(images.join(DESCRIPTORS))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    fds.iter()
        .enumerate()
        .filter(|(_, f)| f.starts_with("pipe:"))
        .flat_map(|(i, f)| ["--inherit-fd".into(), format!("fd[{i}]:{f}").into()])
        .collect()
}

/// The destinations of bind mounts may be gone from the rootfs (a nested bind's target lives
/// in another bind's source): criu needs them to mount on.
fn prepare_mount_points(spec: &Spec, root: &Path) -> Result<()> {
    for m in spec.mounts().iter().flatten().filter(|m| is_bind(m)) {
        let target = root.join(m.destination().strip_prefix("/").unwrap_or(m.destination()));
        if fs::symlink_metadata(&target).is_ok() {
            continue;
        }
        let is_dir = m.source().as_ref().is_none_or(|s| s.is_dir());
        let made = if is_dir {
            fs::create_dir_all(&target)
        } else {
            target
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|_| fs::File::create(&target).map(drop))
        };
        made.ctx(|| format!("create mount point {}", target.display()))?;
    }
    Ok(())
}

fn add_time_namespace(spec: &mut Spec) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut list = linux.namespaces().clone().unwrap_or_default();
    if list.iter().any(|n| n.typ() == LinuxNamespaceType::Time) {
        return;
    }
    if let Ok(ns) = oci_spec::runtime::LinuxNamespaceBuilder::default()
        .typ(LinuxNamespaceType::Time)
        .build()
    {
        list.push(ns);
    }
    linux.set_namespaces(Some(list));
    spec.set_linux(Some(linux));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    fn strings(a: Vec<OsString>) -> Vec<String> {
        a.into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn external_mounts_are_keyed_by_their_container_path_as_runc_keys_them() {
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
                {"destination": "/etc/x", "source": "/etc/hosts", "options": ["bind", "ro"]},
                {"destination": "/proc", "type": "proc", "source": "proc"}
            ],
            "linux": {
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
                "maskedPaths": ["/proc/kcore"],
                "namespaces": [{"type": "network", "path": "/proc/self/ns/net"}, {"type": "mount"}]
            }
        }));
        let dump = strings(dump_externals(&s, std::process::id() as i32).unwrap());
        let pairs: Vec<&str> = dump.chunks(2).map(|p| p[1].as_str()).collect();
        assert!(dump.chunks(2).all(|p| p[0] == "--external"), "{dump:?}");
        assert!(pairs.contains(&"mnt[/data]:/data"), "{pairs:?}");
        assert!(pairs.contains(&"mnt[/etc/x]:/etc/x"));
        assert!(pairs.contains(&"mnt[/dev/fuse]:/dev/fuse"));
        assert!(
            !pairs.iter().any(|p| p.contains("/proc]")),
            "proc is no bind: {pairs:?}"
        );
        assert!(pairs
            .iter()
            .any(|p| p.starts_with("net[") && p.ends_with("]:extRootNetNS")));

        let restore = strings(restore_externals(&s));
        let pairs: Vec<&str> = restore.chunks(2).map(|p| p[1].as_str()).collect();
        assert!(pairs.contains(&"mnt[/data]:/srv/data"), "{pairs:?}");
        assert!(pairs.contains(&"mnt[/etc/x]:/etc/hosts"));
        assert!(pairs.contains(&"mnt[/dev/null]:/dev/null"));
        assert!(pairs.contains(&"mnt[/dev/fuse]:/dev/fuse"));
    }

    #[test]
    fn only_pipes_are_rewired_on_restore() {
        let dir = std::env::temp_dir().join(format!("husk-desc-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(DESCRIPTORS),
            r#"["/dev/null","pipe:[123]","pipe:[124]"]"#,
        )
        .unwrap();
        assert_eq!(
            strings(inherit_stdio(&dir)),
            [
                "--inherit-fd",
                "fd[1]:pipe:[123]",
                "--inherit-fd",
                "fd[2]:pipe:[124]"
            ]
        );
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            inherit_stdio(&dir).is_empty(),
            "no descriptors.json, nothing to re-wire"
        );
    }

    #[test]
    fn the_cause_is_the_last_error_before_the_summaries() {
        let dump = "(00.001) Error (criu/sockets.c:209): sockets: Diag module missing (-2)
(00.002) Error (criu/util.c:642): exited, status=1
(00.109) Error (criu/files-reg.c:1710): Can't lookup mount=25 for fd=0 path=/dev/null
(00.114) Error (criu/cr-dump.c:1635): Dump files (pid: 177) failed with -1
(00.143) Error (criu/cr-dump.c:2053): Dumping FAILED.";
        assert_eq!(
            cause(dump).unwrap(),
            "Can't lookup mount=25 for fd=0 path=/dev/null"
        );
        let kerndat = "(00.1) Error (criu/sockets.c:209): sockets: Diag module missing (-2)
(00.2) Error (criu/kerndat.c:1666): kerndat_has_nftables_concat failed when initializing kerndat.
(00.3) Error (criu/crtools.c:260): Could not initialize kernel features detection.";
        assert_eq!(
            cause(kerndat).unwrap(),
            "Could not initialize kernel features detection."
        );
        let restore = "(00.4) 1: Error (criu/mount-v2.c:891): mnt-v2: Failed to copy sharing
(00.5) Error (criu/cr-restore.c:2447): Restoring FAILED.";
        assert_eq!(cause(restore).unwrap(), "mnt-v2: Failed to copy sharing");
        assert_eq!(cause("nothing here"), None);
    }

    #[test]
    fn options_become_criu_flags() {
        let o = CriuOptions {
            image_path: "/img".into(),
            work_path: Some("/work".into()),
            tcp_established: true,
            manage_cgroups_mode: Some("ignore".into()),
            ..Default::default()
        };
        let a = strings(o.args("dump.log").unwrap());
        let has = |s: &str| a.iter().any(|x| x == s);
        assert!(
            has("--manage-cgroups=ignore") && has("--tcp-established"),
            "{a:?}"
        );
        assert!(a.windows(2).any(|w| w == ["-D", "/img"]));
        assert!(a.windows(2).any(|w| w == ["-W", "/work"]));
        assert!(a.windows(2).any(|w| w == ["--empty-ns", "net"]));
        assert_eq!(o.log("dump.log"), Path::new("/work/dump.log"));
        let bad = CriuOptions {
            manage_cgroups_mode: Some("lazy".into()),
            ..Default::default()
        };
        assert!(bad.args("x").unwrap_err().to_string().contains("lazy"));
    }
}
