//! `process.apparmorProfile` and `process.selinuxLabel`: the Linux security modules' labels,
//! set through /proc to take effect at the process's execve, as runc does.
//!
//! A profile for a host without AppArmor is refused (the container would run unconfined); a
//! SELinux label on a host without SELinux is ignored, as runc ignores it.

use std::path::Path;

use oci_spec::runtime::Process;

use crate::error::{Error, Result};

pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

fn apparmor_profile(p: &Process) -> Option<&str> {
    p.apparmor_profile().as_deref().filter(|s| !s.is_empty())
}

/// Before anything is created: a profile the host cannot apply is an error.
/// `linux.mountLabel` as the option that labels a new filesystem's files (SELinux): every
/// mount type but those the kernel labels itself, as runc does. The label has commas and
/// colons of its own, hence the quotes.
pub fn mount_context(typ: &str, label: Option<&str>) -> Option<String> {
    let label = label.filter(|l| !l.is_empty())?;
    match typ {
        "proc" | "sysfs" | "mqueue" | "cgroup" | "cgroup2" | "bind" => None,
        _ => Some(format!("context=\"{label}\"")),
    }
}

pub fn check(p: &Process) -> Result<()> {
    match apparmor_profile(p) {
        Some(profile) if !apparmor_enabled() => Err(Error::msg(format!(
            "process.apparmorProfile {profile:?}: AppArmor is not enabled on this host"
        ))
        .with_hint("remove the profile, or run on a host with AppArmor")),
        _ => Ok(()),
    }
}

/// In the container, just before execve: label what the execve will run.
pub fn apply_on_exec(p: &Process) -> Result<()> {
    if let Some(profile) = apparmor_profile(p) {
        // Kernels with LSM stacking have a per-module file; older ones only the shared one.
        let attr = if crate::procfs::exists("thread-self/attr/apparmor/exec") {
            "thread-self/attr/apparmor/exec"
        } else {
            "thread-self/attr/exec"
        };
        crate::procfs::write(attr, format!("exec {profile}").as_bytes()).map_err(|e| {
            e.context(format!("process.apparmorProfile {profile:?}"))
                .with_hint("is the profile loaded?")
        })?;
    }
    if let Some(label) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
        if selinux_enabled() {
            crate::procfs::write("thread-self/attr/exec", label.as_bytes())
                .map_err(|e| e.context(format!("process.selinuxLabel {label:?}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_labels_go_to_filesystems_the_kernel_does_not_label() {
        let l = Some("system_u:object_r:container_file_t:s0:c1,c2");
        assert_eq!(
            mount_context("tmpfs", l).as_deref(),
            Some("context=\"system_u:object_r:container_file_t:s0:c1,c2\"")
        );
        assert_eq!(
            mount_context("devpts", l)
                .as_deref()
                .map(|s| s.starts_with("context=")),
            Some(true)
        );
        for t in ["proc", "sysfs", "mqueue", "cgroup2", "bind"] {
            assert_eq!(mount_context(t, l), None, "{t}");
        }
        assert_eq!(mount_context("tmpfs", Some("")), None);
        assert_eq!(mount_context("tmpfs", None), None);
    }
}
