use std::path::PathBuf;

use super::Global;
use crate::container::{self, Console, CreateOptions};
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Path to the bundle (the directory holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's pid to this file (no trailing newline).
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Use chroot with a moved mount instead of pivot_root (for a rootfs on ramfs).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of creating one for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass this many fds beyond stdio (3, 4, …) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    pub id: String,
}

impl Args {
    pub fn options(&self, g: &Global, console: Option<Console>) -> CreateOptions {
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console: console.or_else(|| self.console_socket.clone().map(Console::Socket)),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            systemd_cgroup: g.systemd_cgroup,
        }
    }
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    container::create(&g.root, a.options(g, None))?;
    Ok(0)
}
