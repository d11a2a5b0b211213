use std::path::PathBuf;

use super::Global;
use crate::container::{self, RestoreOptions};
use crate::error::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub criu: super::checkpoint::Criu,
    /// Path to the bundle (the directory holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return once the container is restored, instead of waiting for it.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the restored init's pid to this file (no trailing newline).
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket for the pty master (terminal containers cannot be restored yet).
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc's sake: the restored init is husk's own child either way.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Accepted for runc's sake: criu restores the root itself.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// LSM profile (TYPE:NAME) to restore the processes with.
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// SELinux context for the restored mounts.
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    if a.lsm_profile.is_some() || a.lsm_mount_context.is_some() {
        return Err(Error::msg(
            "restore: --lsm-profile and --lsm-mount-context are not supported by husk yet",
        ));
    }
    let o = RestoreOptions {
        criu: a.criu.options(g)?,
        id: a.id.clone(),
        bundle: a.bundle,
        pid_file: a.pid_file,
        systemd_cgroup: g.systemd_cgroup,
    };
    if a.detach {
        container::restore(&g.root, &o)?;
        return Ok(0);
    }
    // The restored init is our child (criu's sibling): wait for it as `run` does.
    let st = container::restore(&g.root, &o)?;
    let signals = crate::foreground::block_signals()?;
    let result = crate::foreground::supervise(nix::unistd::Pid::from_raw(st.pid), None, signals);
    if let Err(e) = container::delete(&g.root, &a.id, true) {
        crate::log::warn(&format!("delete {} after restore: {e}", a.id));
    }
    result
}
