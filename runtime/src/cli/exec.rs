use std::os::fd::AsRawFd;
use std::path::PathBuf;

use oci_spec::runtime::Process;

use super::{bad_usage, Global};
use crate::container::{self, Console, Container, ExecOptions};
use crate::error::{Context, Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Unix socket that receives the pty master (with --tty).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Add or override an environment variable (KEY=VALUE).
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// A process.json to run instead of the command line.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once the process has started.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// SELinux label for the process.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// AppArmor profile for the process.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability to the process's sets.
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Pass this many fds beyond stdio to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Exec even if the container is paused.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Join a sub-cgroup of the container's: PATH, or CONTROLLERS:PATH (repeatable).
    #[arg(long)]
    pub cgroup: Vec<String>,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn build_process(c: &Container, a: &Args) -> Result<Process> {
    if let Some(p) = &a.process {
        let bytes = std::fs::read(p).ctx(|| format!("--process {}", p.display()))?;
        let invalid = |e: serde_json::Error| {
            Error::msg(format!(
                "--process {}: invalid process JSON: {e}",
                p.display()
            ))
        };
        let mut raw: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
        // runc's Go types default what is left out: root, in /.
        if let Some(obj) = raw.as_object_mut() {
            obj.entry("user")
                .or_insert(serde_json::json!({"uid": 0, "gid": 0}));
            obj.entry("cwd").or_insert(serde_json::json!("/"));
        }
        let mut proc: Process = crate::spec::part_from_value(raw).map_err(|e| {
            Error::msg(format!(
                "--process {}: invalid process JSON: {e}",
                p.display()
            ))
        })?;
        if proc.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(Error::msg(format!(
                "--process {}: args must name a program",
                p.display()
            )));
        }
        if a.tty {
            proc.set_terminal(Some(true));
        }
        return Ok(proc);
    }
    if a.command.is_empty() {
        return Err(bad_usage("exec needs a command to run (or --process FILE)"));
    }
    let spec = c.spec()?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        let key = kv.split('=').next().unwrap_or(kv);
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, ""));
        user.set_uid(
            uid.parse()
                .map_err(|_| bad_usage(format!("--user {u:?}: want uid[:gid] as numbers")))?,
        );
        if !gid.is_empty() {
            user.set_gid(
                gid.parse()
                    .map_err(|_| bad_usage(format!("--user {u:?}: want uid[:gid] as numbers")))?,
            );
        }
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    p.set_user(user);
    if !a.cap.is_empty() {
        let add = crate::capabilities::parse_names(&a.cap)?;
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let extend = |s: &Option<oci_spec::runtime::Capabilities>| {
            let mut s = s.clone().unwrap_or_default();
            s.extend(add.iter().copied());
            Some(s)
        };
        caps.set_bounding(extend(caps.bounding()));
        caps.set_effective(extend(caps.effective()));
        caps.set_permitted(extend(caps.permitted()));
        caps.set_ambient(extend(caps.ambient()));
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &a.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &a.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    Ok(p)
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let process = {
        let c = Container::load(&g.root, &a.id)?;
        build_process(&c, &a)?
    };
    let tty = process.terminal() == Some(true);
    let mut o = ExecOptions {
        process,
        console: a.console_socket.clone().map(Console::Socket),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        ignore_paused: a.ignore_paused,
        sub_cgroups: a.cgroup.clone(),
    };
    if a.detach {
        container::exec(&g.root, &a.id, o)?;
        return Ok(0);
    }
    let signals = crate::foreground::block_signals()?;
    let mut ours = None;
    if tty && o.console.is_none() {
        let (x, y) = crate::console::local_pair()?;
        o.console = Some(Console::Fd(y));
        ours = Some(x);
    }
    let pid = container::exec(&g.root, &a.id, o)?;
    let pty = match ours {
        Some(s) => Some(crate::console::recv_fd(s.as_raw_fd())?),
        None => None,
    };
    crate::foreground::supervise(pid, pty, signals)
}
