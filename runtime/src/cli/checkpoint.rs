use std::path::PathBuf;

use super::Global;
use crate::container::{self, CheckpointOptions, CriuOptions};
use crate::error::{Error, Result};

/// runc's flags that `checkpoint` and `restore` share.
#[derive(clap::Args)]
pub struct Criu {
    /// Directory for the images (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for criu's log and work files (default: the image path).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs (a terminal of the caller's).
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft (default), full, strict or ignore.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Namespace to leave empty: only "network" (which husk leaves empty anyway, as runc).
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate pages against the parent images.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Use userfaultfd to load memory lazily.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

impl Criu {
    pub fn options(&self, g: &Global) -> Result<CriuOptions> {
        if let Some(ns) = self.empty_ns.iter().find(|n| *n != "network") {
            return Err(Error::msg(format!(
                "--empty-ns {ns:?}: only \"network\" can be left empty"
            )));
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        let abs = |p: &PathBuf| cwd.join(p);
        Ok(CriuOptions {
            criu: g.criu.clone(),
            image_path: self
                .image_path
                .as_ref()
                .map_or_else(|| cwd.join("checkpoint"), abs),
            work_path: self.work_path.as_ref().map(abs),
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            manage_cgroups_mode: self.manage_cgroups_mode.clone(),
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
        })
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub criu: Criu,
    /// Images of a pre-dump to build on, relative to --image-path.
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Leave the processes running after the checkpoint.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Only dump memory, for a later checkpoint with --parent-path.
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// Send pages to a criu page server at ADDRESS:PORT.
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// Write \0 to this fd once the lazy-pages server is ready.
    #[arg(long = "status-fd")]
    pub status_fd: Option<i32>,
    /// Skip TCP connections still being established.
    #[arg(long = "tcp-skip-in-flight")]
    pub tcp_skip_in_flight: bool,
    /// Allow criu to link unlinked files back.
    #[arg(long = "link-remap")]
    pub link_remap: bool,
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let o = CheckpointOptions {
        criu: a.criu.options(g)?,
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        parent_path: a.parent_path,
        page_server: a.page_server,
        status_fd: a.status_fd,
        tcp_skip_in_flight: a.tcp_skip_in_flight,
        link_remap: a.link_remap,
    };
    container::checkpoint(&g.root, &a.id, &o)?;
    Ok(0)
}
