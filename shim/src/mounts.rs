//! The rootfs containerd describes in CreateTaskRequest (an overlay of the image's snapshot, or
//! a bind), mounted on `<bundle>/rootfs` before the runtime runs and unmounted on delete.

use std::os::fd::AsFd;
use std::path::Path;

use containerd_shim_protos::types::mount::Mount;
use husk::error::{Context, Result};
use husk::rootfs::mounts::Spot;
use nix::fcntl::OFlag;
use nix::mount::{umount2, MntFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::MountBuilder;

pub fn mount_rootfs(rootfs: &Path, mounts: &[Mount]) -> Result<()> {
    if mounts.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(rootfs).ctx(|| format!("creating {}", rootfs.display()))?;
    for m in mounts {
        // Opened afresh for each entry: the one before may have been mounted on the rootfs.
        let root = nix::fcntl::open(
            rootfs,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open {}", rootfs.display()))?;
        let dest = Spot::resolve(root.as_fd(), rootfs, Path::new(&m.target))?;
        let om = MountBuilder::default()
            .destination(&dest.shown)
            .typ(m.type_.clone())
            .source(&m.source)
            .options(m.options.clone())
            .build()
            .map_err(|e| husk::error::Error::msg(format!("rootfs mount {}: {e}", m.source)))?;
        if let Err(e) = husk::rootfs::mounts::mount_entry(&om, &dest, None, None) {
            unmount_rootfs(rootfs);
            return Err(e.context("mounting the container's rootfs"));
        }
    }
    Ok(())
}

/// Unmounts everything stacked on `rootfs`; lazily, so a process still holding it cannot
/// keep the shim from finishing delete.
pub fn unmount_rootfs(rootfs: &Path) {
    while umount2(rootfs, MntFlags::MNT_DETACH).is_ok() {}
}
