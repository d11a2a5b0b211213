//! Loading and validating a bundle's `config.json`, and the default spec of `husk spec`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};

/// The runtime-spec versions this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// Reads `config.json` from `bundle` and checks what the spec requires before anything is created.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).ctx(|| format!("read {}", path.display()))?;
    let mut spec = parse(&bytes).map_err(|e| e.context(format!("config {}", path.display())))?;
    // A relative bind source is relative to the bundle (runc's reading), whatever our cwd.
    if let Some(mounts) = spec.mounts().clone() {
        let mounts = mounts
            .into_iter()
            .map(|mut m| {
                let bind = crate::rootfs::mounts::is_bind(&m);
                if let Some(src) = m.source().clone().filter(|s| bind && s.is_relative()) {
                    m.set_source(Some(bundle.join(src)));
                }
                m
            })
            .collect();
        spec.set_mounts(Some(mounts));
    }
    Ok(spec)
}

/// Fields that are JSON objects in the spec: serde would also take an array for them.
const OBJECTS: &[&str] = &[
    "",
    "/process",
    "/process/user",
    "/process/capabilities",
    "/process/consoleSize",
    "/root",
    "/hooks",
    "/linux",
    "/linux/resources",
    "/linux/resources/memory",
    "/linux/resources/cpu",
    "/linux/resources/pids",
    "/linux/resources/blockIO",
    "/linux/seccomp",
    "/linux/intelRdt",
    "/linux/personality",
];

pub fn parse(bytes: &[u8]) -> Result<Spec> {
    let mut raw: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Error::msg(format!("invalid JSON: {e}")))?;
    for ptr in OBJECTS {
        if let Some(v) = raw.pointer(ptr).filter(|v| !v.is_object()) {
            let field = if ptr.is_empty() {
                "the config".to_string()
            } else {
                ptr[1..].replace('/', ".")
            };
            return Err(Error::msg(format!(
                "invalid config: {field}: expected an object, got {v}"
            )));
        }
    }
    crate::capabilities::drop_unknown_names(&mut raw);
    let spec = from_value(raw)?;
    validate(&spec)?;
    Ok(spec)
}

/// The one way a Spec is deserialized (a second instantiation of its Deserialize code would
/// cost some 200 KiB of binary): serde_path_to_error names the field,
/// "linux.devices[0].type: unknown variant …".
pub fn from_value(raw: serde_json::Value) -> Result<Spec> {
    part_from_value(raw).map_err(|e| Error::msg(format!("invalid config: {e}")))
}

/// A part of a spec (`exec --process`, `update`'s resources) read as `from_value` reads the
/// whole: the same instantiation of its Deserialize code, the failing field named in the
/// error ("user.uid: invalid type …").
pub fn part_from_value<T: serde::de::DeserializeOwned>(
    raw: serde_json::Value,
) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(raw).map_err(|e| match e.path().to_string() {
        p if p == "." => e.inner().to_string(),
        p => format!("{p}: {}", e.inner()),
    })
}

/// The sysctls a container may set, by the namespace that isolates them (as runc decides).
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

fn validate(spec: &Spec) -> Result<()> {
    let version = spec.version();
    match version.split('.').next() {
        Some("1") => {}
        _ => {
            return Err(Error::msg(format!(
                "ociVersion {version:?} is not supported: husk implements 1.x (up to {OCI_VERSION})"
            )))
        }
    }
    if spec.root().is_none() {
        return Err(Error::msg(
            "root: missing (the bundle must name its rootfs in root.path)",
        ));
    }
    if let Some(p) = spec.process() {
        if p.args().as_ref().is_none_or(|a| a.is_empty()) && p.command_line().is_none() {
            return Err(Error::msg(
                "process.args: must name at least the program to run",
            ));
        }
        if !p.cwd().is_absolute() {
            return Err(Error::msg(format!(
                "process.cwd {:?}: must be an absolute path",
                p.cwd()
            )));
        }
        if let Some(n) = p
            .scheduler()
            .as_ref()
            .and_then(|s| *s.nice())
            .filter(|n| !(-20..=19).contains(n))
        {
            return Err(Error::msg(format!(
                "process.scheduler.nice {n}: must be between -20 and 19"
            )));
        }
        if let Some(adj) = p.oom_score_adj().filter(|a| !(-1000..=1000).contains(a)) {
            return Err(Error::msg(format!(
                "process.oomScoreAdj {adj}: must be between -1000 and 1000"
            )));
        }
    }
    if let Some(hooks) = spec.hooks() {
        let kinds = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (kind, list) in kinds {
            for (i, h) in list.iter().flatten().enumerate() {
                if let Some(t) = h.timeout().filter(|t| *t <= 0) {
                    return Err(Error::msg(format!(
                        "hooks.{kind}[{i}].timeout {t}: must be a positive number of seconds"
                    )));
                }
            }
        }
    }
    if let Some(linux) = spec.linux() {
        let mut seen = Vec::new();
        for ns in linux.namespaces().iter().flatten() {
            if seen.contains(&ns.typ()) {
                return Err(Error::msg(format!(
                    "linux.namespaces: {:?} appears twice",
                    ns_name(ns.typ())
                )));
            }
            seen.push(ns.typ());
        }
        if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            && !seen.contains(&LinuxNamespaceType::User)
        {
            return Err(Error::msg(
                "linux.uidMappings: given without a user namespace in linux.namespaces",
            ));
        }
        let needs = |ns: LinuxNamespaceType, what: &str| -> Result<()> {
            if seen.contains(&ns) {
                return Ok(());
            }
            Err(Error::msg(format!(
                "{what}: needs a private {0} namespace (add {{\"type\": \"{0}\"}} to linux.namespaces)",
                ns_name(ns)
            )))
        };
        if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) {
            needs(LinuxNamespaceType::Uts, "hostname")?;
        }
        if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) {
            needs(LinuxNamespaceType::Uts, "domainname")?;
        }
        if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
            needs(LinuxNamespaceType::Time, "linux.timeOffsets")?;
        }
        for key in linux.sysctl().iter().flat_map(|s| s.keys()) {
            if key.is_empty() || key.contains('/') || key.split('.').any(|p| p.is_empty()) {
                return Err(Error::msg(format!(
                    "linux.sysctl {key:?}: not a sysctl name"
                )));
            }
            match sysctl_namespace(key) {
                Some(ns) => needs(ns, &format!("linux.sysctl {key:?}"))?,
                None => {
                    return Err(Error::msg(format!(
                        "linux.sysctl {key:?}: not isolated by any namespace, so a container may not set it"
                    )))
                }
            }
        }
        for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
            if let Some(p) = ns.path().as_ref().filter(|p| !p.as_os_str().is_empty()) {
                if !p.is_absolute() {
                    return Err(Error::msg(format!(
                        "linux.namespaces[{i}].path {}: must be an absolute path",
                        p.display()
                    )));
                }
            }
        }
        if let Some(r) = linux.resources() {
            validate_resources(r)?;
        }
        for (i, d) in linux.devices().iter().flatten().enumerate() {
            if d.major() < 0 || d.minor() < 0 {
                return Err(Error::msg(format!(
                    "linux.devices[{i}] {}: major {} and minor {} must not be negative",
                    d.path().display(),
                    d.major(),
                    d.minor()
                )));
            }
        }
        if linux.intel_rdt().is_some() {
            return Err(Error::msg(
                "linux.intelRdt: husk does not support Intel RDT (resctrl); remove it from the config",
            ));
        }
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(Error::msg(format!(
                "mounts: destination {:?} must be an absolute path",
                m.destination()
            )));
        }
    }
    Ok(())
}

/// Ranges the kernel would clamp or refuse differently on v1 and v2: checked once, here, so
/// that a config means the same on both.
fn validate_resources(r: &oci_spec::runtime::LinuxResources) -> Result<()> {
    let bad = |field: &str, v: &dyn std::fmt::Display, want: &str| {
        Err(Error::msg(format!("linux.resources.{field} {v}: {want}")))
    };
    if let Some(m) = r.memory() {
        for (field, v) in [
            ("memory.limit", m.limit()),
            ("memory.reservation", m.reservation()),
            ("memory.swap", m.swap()),
        ] {
            if let Some(v) = v.filter(|v| *v < -1) {
                return bad(field, &v, "must be -1 (unlimited) or a number of bytes");
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s != 0 && !(2..=262_144).contains(s)) {
            return bad("cpu.shares", &s, "must be between 2 and 262144");
        }
        if let Some(p) = c
            .period()
            .filter(|p| *p != 0 && !(1000..=1_000_000).contains(p))
        {
            return bad(
                "cpu.period",
                &p,
                "must be between 1000 and 1000000 microseconds",
            );
        }
    }
    if let Some(b) = r.block_io() {
        for (field, v) in [
            ("blockIO.weight", b.weight()),
            ("blockIO.leafWeight", b.leaf_weight()),
        ] {
            if let Some(w) = v.filter(|w| *w != 0 && !(10..=1000).contains(w)) {
                return bad(field, &w, "must be between 10 and 1000");
            }
        }
    }
    Ok(())
}

/// The rootfs as an absolute path: relative paths are relative to the bundle.
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> PathBuf {
    let root = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_else(|| "rootfs".into());
    if root.is_absolute() {
        root
    } else {
        bundle.join(root)
    }
}

pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// The config `husk spec` writes: runc's default, so that scripts written for `runc spec` work.
pub fn default_spec(rootless: bool) -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut spec = serde_json::json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "husk",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        // As runc: a user namespace mapping the caller to root, no network namespace, /sys bound
        // from the host (sysfs cannot be mounted without a network namespace of one's own), no
        // cgroup device rules (an unprivileged user cannot set them) and no devpts gid.
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let linux = &mut spec["linux"];
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux["namespaces"] = serde_json::json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}]);
        linux.as_object_mut().unwrap().remove("resources");
        let mounts = spec["mounts"].as_array_mut().unwrap();
        for m in mounts.iter_mut() {
            if m["destination"] == "/dev/pts" {
                m["options"] = serde_json::json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
            if m["destination"] == "/sys" {
                *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_and_validates() {
        for rootless in [false, true] {
            let v = default_spec(rootless);
            parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        }
    }

    #[test]
    fn rejects_unknown_major_version_and_bad_json() {
        let mut v = default_spec(false);
        v["ociVersion"] = "2.0.0".into();
        let e = parse(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ociVersion \"2.0.0\""), "{e}");
        let e = parse(b"{\"ociVersion\": ").unwrap_err().to_string();
        assert!(e.starts_with("invalid JSON"), "{e}");
        let e = parse(br#"{"ociVersion": "1.0.0", "process": 5}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid config"), "{e}");
    }

    #[test]
    fn rejects_unknown_namespace_naming_it() {
        let mut v = default_spec(false);
        v["linux"]["namespaces"] = serde_json::json!([{"type": "bogus"}]);
        let e = parse(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn parts_name_the_failing_field() {
        let e = part_from_value::<oci_spec::runtime::Process>(
            serde_json::json!({"args": ["true"], "cwd": "/", "user": {"uid": "x", "gid": 0}}),
        )
        .unwrap_err();
        assert!(e.starts_with("user.uid: invalid type"), "{e}");
        let e =
            part_from_value::<oci_spec::runtime::LinuxResources>(serde_json::json!(5)).unwrap_err();
        assert!(e.starts_with("invalid type"), "{e}");
    }

    // The check is the vendored oci-spec's hand-written one (runtime/vendor/oci-spec/HUSK.md).
    #[test]
    fn exec_cpu_affinity_is_checked_by_its_format() {
        let with = |list: &str| {
            let mut v = default_spec(false);
            v["process"]["execCPUAffinity"] = serde_json::json!({"initial": list, "final": "0"});
            parse(&serde_json::to_vec(&v).unwrap()).map_err(|e| e.to_string())
        };
        for good in ["0", "0-3", "0-3,7", "1,2,3", "10-12,4"] {
            with(good).unwrap();
        }
        for bad in [
            "", ",", "0-", "-1", "0-3,,7", "0-1-2", "1,x", "1 ", "\u{663}",
        ] {
            let e = with(bad).unwrap_err();
            assert!(
                e.contains("process.execCPUAffinity.initial"),
                "{bad:?}: {e}"
            );
        }
    }
}
