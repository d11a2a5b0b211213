//! cgroup v1: the device allow-list and the freezer.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, Spec};

use crate::error::{Context, Error, Result};

/// The devices every container may use whatever its config says (runc allows the same), after
/// the config's own rules and its `linux.devices`.
const DEFAULT_ALLOWED: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

fn rule(
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> String {
    let t = match typ {
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::P) => "p",
        Some(LinuxDeviceType::A) | None => "a",
    };
    let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    if t == "a" {
        return "a".into();
    }
    format!("{t} {}:{} {access}", num(major), num(minor))
}

fn cgroup_rule(d: &LinuxDeviceCgroup) -> String {
    rule(
        d.typ(),
        d.major(),
        d.minor(),
        d.access().as_deref().unwrap_or("rwm"),
    )
}

pub fn apply_devices(dir: &Path, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let mut writes: Vec<(bool, String)> = Vec::new();
    for d in linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
        .into_iter()
        .flatten()
    {
        writes.push((d.allow(), cgroup_rule(d)));
    }
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        writes.push((
            true,
            rule(Some(d.typ()), Some(d.major()), Some(d.minor()), "rwm"),
        ));
    }
    writes.extend(DEFAULT_ALLOWED.iter().map(|r| (true, r.to_string())));
    for (allow, r) in writes {
        let f = dir.join(if allow {
            "devices.allow"
        } else {
            "devices.deny"
        });
        fs::write(&f, &r).ctx(|| format!("device rule {r:?}: write {}", f.display()))?;
    }
    Ok(())
}

pub fn is_frozen(dir: &Path) -> bool {
    fs::read_to_string(dir.join("freezer.state")).is_ok_and(|s| s.trim() != "THAWED")
}

pub fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let f = dir.join("freezer.state");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // FREEZING can stall on a task in an uninterruptible sleep: writing again retries it.
        fs::write(&f, want).ctx(|| format!("write {want} to {}", f.display()))?;
        let now = fs::read_to_string(&f).ctx(|| format!("read {}", f.display()))?;
        if now.trim() == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = fs::write(&f, "THAWED");
            return Err(Error::msg(format!(
                "{} stayed {} instead of {want}",
                f.display(),
                now.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A new v1 cpuset starts with no cpus and mems, and refuses tasks until given some: copy them
/// down from the parent, from the mount's root to `dir`, as runc does.
pub fn inherit_cpuset(mountpoint: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mountpoint) else {
        return Ok(());
    };
    let mut parent = mountpoint.to_path_buf();
    for c in rel.components() {
        let child = parent.join(c);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let cur = fs::read_to_string(child.join(f)).unwrap_or_default();
            if cur.trim().is_empty() {
                let v = fs::read_to_string(parent.join(f))
                    .ctx(|| format!("read {}", parent.join(f).display()))?;
                fs::write(child.join(f), v.trim())
                    .ctx(|| format!("write {}", child.join(f).display()))?;
            }
        }
        parent = child;
    }
    Ok(())
}
