//! The processes `create` forks: the intermediate, which enters the namespaces, and the
//! container's init, which builds the container around itself and waits for `start`.
//!
//! Both report failures to the runtime over the sync channel and exit; the runtime prints the
//! one line and cleans up.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, Gid, Uid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::Placement;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Kind};
use crate::namespaces::{self, Plan};
use crate::rootfs::Rootfs;
use crate::sync::{Channel, Msg};
use crate::{console, process, sys};

/// Everything the forked processes need, prepared by the runtime before the fork.
pub struct InitContext<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub plan: Plan,
    pub placement: &'a Placement,
    /// The exec fifo, opened O_PATH: reopened for writing once all is ready.
    pub fifo: File,
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    pub extra_env: Vec<String>,
    pub seccomp: Option<crate::seccomp::Filter>,
    /// Mounts made on the host (rootfs::detached), moved into place by init.
    pub detached: crate::rootfs::detached::Detached,
    /// The state directory's lock, which the container's processes must not keep.
    pub lock_fd: std::os::fd::RawFd,
}

/// Runs `f` in a forked child that reports its error on `ch` and never returns.
pub fn run_child(ch: &Channel, f: impl FnOnce() -> Result<()>) -> ! {
    let code = match f() {
        Ok(()) => 0,
        Err(e) => {
            let _ = ch.send(&Msg::Error { msg: e.to_string() });
            1
        }
    };
    sys::exit_now(code)
}

/// The intermediate: waits to be placed in the cgroup, enters the namespaces, and forks the
/// init (new pid and time namespaces only apply to children).
pub fn intermediate(ctx: &InitContext, ch: &Channel) -> Result<()> {
    // Were husk killed mid-create, an inherited lock would block `delete --force` for ever.
    sys::close_inherited(ctx.lock_fd);
    // runc's debug vocabulary for the same steps: tools and runc's tests grep for it.
    crate::log::debug(&format!(
        "nsexec container setup: intermediate process {} enters the namespaces",
        nix::unistd::getpid()
    ));
    ch.expect(Msg::Go)?;
    // CVE-2019-5736: undumpable until the container's program is exec'd, so that a process
    // sharing its pid namespace cannot open husk's binary through /proc/PID/exe. (With a user
    // namespace, /proc/self would then belong to the host's root, out of the init's reach;
    // and that root maps to nobody who could write the binary anyway.)
    if !ctx.plan.has(LinuxNamespaceType::User) {
        nix::sys::prctl::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE, 0)")?;
    }
    ctx.plan.enter()?;
    if ctx.plan.new_user {
        ch.send(&Msg::MapIds)?;
        ch.expect(Msg::Go)?;
        nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .ctx(|| "become root in the user namespace: setgid 0")?;
        nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .ctx(|| "become root in the user namespace: setuid 0")?;
    }
    if ctx.plan.creates(LinuxNamespaceType::Time) {
        namespaces::write_time_offsets(ctx.spec)?;
    }
    match sys::fork().ctx(|| "fork container init")? {
        // Init waits until we have reported its pid: nothing it sends may overtake that.
        ForkResult::Child => run_child(ch, || ch.expect(Msg::Go).and_then(|()| init(ctx, ch))),
        ForkResult::Parent { child } => ch.send(&Msg::InitPid {
            pid: child.as_raw(),
        }),
    }
}

fn hook_state(ctx: &InitContext, status: &str) -> serde_json::Value {
    let annotations = ctx.spec.annotations().clone().unwrap_or_default();
    hooks::state_json(
        ctx.id,
        status,
        nix::unistd::getpid().as_raw(),
        &ctx.bundle,
        &annotations,
    )
}

/// The container's init: the phases of runtime-spec "create", in order.
fn init(ctx: &InitContext, ch: &Channel) -> Result<()> {
    crate::log::debug("child process in init(): the container's init sets up root and process");
    nix::sys::prctl::set_name(crate::state::INIT_COMM).ctx(|| "prctl(PR_SET_NAME)")?;
    let spec = ctx.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::msg("config has no process"))?;
    nix::unistd::setsid().ctx(|| "setsid")?;
    if ctx.plan.creates(LinuxNamespaceType::Network) {
        sys::loopback_up().ctx(|| "bring up lo in the new network namespace")?;
    }

    let rootfs = Rootfs {
        spec,
        path: ctx.rootfs.clone(),
        cgroup: ctx.placement,
        cgroup_ns: ctx.plan.has(LinuxNamespaceType::Cgroup),
        user_ns: ctx.plan.has(LinuxNamespaceType::User),
        detached: &ctx.detached,
    };
    rootfs.prepare()?;
    make_cwd(ctx, process.cwd())?;

    ch.send(&Msg::RunHooks)?;
    ch.expect(Msg::HooksDone)?;
    // runc runs createContainer hooks from the rootfs; hooks written for it use relative paths.
    nix::unistd::chdir(&ctx.rootfs).ctx(|| format!("chdir {}", ctx.rootfs.display()))?;
    hooks::run(
        Kind::CreateContainer,
        spec.hooks().as_ref(),
        &hook_state(ctx, "created"),
    )?;

    rootfs
        .enter(ctx.no_pivot)
        .map_err(|e| e.context("pivot root"))?;
    if let Some(sock) = &ctx.console {
        console::setup(sock, process, !rootfs.dev_is_bound())
            .map_err(|e| e.context("set up terminal"))?;
    }
    namespaces::set_uts_names(spec)?;
    crate::container::fault_point("apply sysctl");
    crate::rootfs::apply_sysctl(spec)?;
    crate::container::fault_point("finalize rootfs");
    rootfs
        .finalize()
        .map_err(|e| e.context("finalize rootfs"))?;
    if !ctx.no_new_keyring {
        sys::join_session_keyring(&format!("_ses.{}", ctx.id))
            .ctx(|| "join a new session keyring")
            .map_err(|e| e.with_hint("use --no-new-keyring where keyctl is not allowed"))?;
    }
    let program = process::finalize(
        process,
        &ctx.extra_env,
        ctx.plan.has(LinuxNamespaceType::User),
        ctx.preserve_fds,
        ctx.seccomp.as_ref(),
        spec.linux().as_ref().and_then(|l| l.personality().as_ref()),
        ch,
    )?;

    ch.send(&Msg::Ready)?;
    // From here the runtime has returned: the log (or the container's stderr) is the only
    // place left to say why the container did not start.
    let started = (|| -> Result<std::convert::Infallible> {
        wait_for_start(&ctx.fifo)?;
        hooks::run(
            Kind::StartContainer,
            spec.hooks().as_ref(),
            &hook_state(ctx, "created"),
        )?;
        sys::reset_signals();
        Err(process::exec(&program.path, &program.args, &program.env))
    })();
    let Err(e) = started;
    crate::log::error(&e.to_string());
    Err(e)
}

/// runc creates a missing cwd inside the rootfs.
fn make_cwd(ctx: &InitContext, cwd: &std::path::Path) -> Result<()> {
    let p = crate::rootfs::mounts::secure_join(&ctx.rootfs, cwd)?;
    if !p.exists() {
        std::fs::create_dir_all(&p).ctx(|| format!("process.cwd: mkdir {}", p.display()))?;
    }
    Ok(())
}

/// Blocks until `start` opens the exec fifo for reading, then tells it we are going.
fn wait_for_start(fifo: &File) -> Result<()> {
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let fd = nix::fcntl::open(
        path.as_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| format!("open exec fifo through {path}"))?;
    nix::unistd::write(&fd, b"0").ctx(|| "write exec fifo")?;
    Ok(())
}
