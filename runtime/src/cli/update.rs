use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

use super::{bad_usage, Global};
use crate::container::Container;
use crate::error::{Context, Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// A LinuxResources JSON file, or - for stdin (what containerd sends).
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long = "l3-cache-schema", hide = true)]
    pub l3_cache_schema: Option<String>,
    #[arg(long = "mem-bw-schema", hide = true)]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

/// "512m", "1G", "1024", "-1": bytes, as docker's RAMInBytes reads them.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let bad = || {
        bad_usage(format!(
            "--{flag} {s:?}: want bytes, optionally with a k, m, g or t suffix"
        ))
    };
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if n < 0.0 {
        return Err(bad());
    }
    Ok((n * mult as f64) as i64)
}

/// Memory made unlimited takes swap with it unless the same update sets swap (runc): a swap
/// limit kept from before would sit below the memory limit, which v1 refuses.
fn unlimited_memory_takes_swap(patch: &mut serde_json::Value) {
    if let Some(m) = patch.get_mut("memory").and_then(|m| m.as_object_mut()) {
        if m.get("limit").and_then(|l| l.as_i64()) == Some(-1) && !m.contains_key("swap") {
            m.insert("swap".into(), (-1).into());
        }
    }
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        return Err(Error::msg(
            "Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported by husk",
        ));
    }
    let c = Container::load(&g.root, &a.id)?;
    let mut spec = c.spec()?;
    let mut current = serde_json::to_value(
        spec.linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default(),
    )
    .expect("resources serialise");
    let mut devices_changed = false;
    if let Some(path) = &a.resources {
        let mut text = String::new();
        if path.as_os_str() == "-" {
            std::io::stdin()
                .read_to_string(&mut text)
                .ctx(|| "read resources from stdin")?;
        } else {
            text = std::fs::read_to_string(path).ctx(|| format!("read {}", path.display()))?;
        }
        let mut patch: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::msg(format!("--resources: invalid JSON: {e}")))?;
        devices_changed = patch.get("devices").is_some_and(|d| !d.is_null());
        unlimited_memory_takes_swap(&mut patch);
        merge(&mut current, patch);
    }
    let mut patch = serde_json::json!({});
    let mut set = |path: &[&str], v: serde_json::Value| {
        let mut cur = &mut patch;
        for k in &path[..path.len() - 1] {
            cur = cur
                .as_object_mut()
                .expect("object")
                .entry(*k)
                .or_insert(serde_json::json!({}));
        }
        cur[path[path.len() - 1]] = v;
    };
    if let Some(v) = a.blkio_weight {
        set(&["blockIO", "weight"], v.into());
    }
    if let Some(v) = a.cpu_period {
        set(&["cpu", "period"], v.into());
    }
    if let Some(v) = a.cpu_quota {
        set(&["cpu", "quota"], v.into());
    }
    if let Some(v) = a.cpu_burst {
        set(&["cpu", "burst"], v.into());
    }
    if let Some(v) = a.cpu_rt_period {
        set(&["cpu", "realtimePeriod"], v.into());
    }
    if let Some(v) = a.cpu_rt_runtime {
        set(&["cpu", "realtimeRuntime"], v.into());
    }
    if let Some(v) = a.cpu_share {
        set(&["cpu", "shares"], v.into());
    }
    if let Some(v) = &a.cpuset_cpus {
        set(&["cpu", "cpus"], v.clone().into());
    }
    if let Some(v) = &a.cpuset_mems {
        set(&["cpu", "mems"], v.clone().into());
    }
    for (flag, val, key) in [
        ("memory", &a.memory, "limit"),
        ("memory-reservation", &a.memory_reservation, "reservation"),
        ("memory-swap", &a.memory_swap, "swap"),
        ("kernel-memory", &a.kernel_memory, "kernel"),
        ("kernel-memory-tcp", &a.kernel_memory_tcp, "kernelTCP"),
    ] {
        if let Some(v) = val {
            set(&["memory", key], parse_bytes(flag, v)?.into());
        }
    }
    if let Some(v) = a.pids_limit {
        set(&["pids", "limit"], v.into());
    }
    unlimited_memory_takes_swap(&mut patch);
    merge(&mut current, patch);
    let resources: LinuxResources =
        crate::spec::part_from_value(current).map_err(|e| Error::msg(format!("resources: {e}")))?;
    // The merged set is written whole, so the cgroup matches what the container keeps.
    c.state.cgroup.update(&resources)?;
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    // v2: the new device filter is attached before the old one goes, so no access is ever
    // refused that both allow. (v1 keeps the rules of create: rewriting them would deny
    // everything for a moment.)
    if devices_changed {
        match (c.state.cgroup.layout, &c.state.cgroup.v2) {
            (crate::cgroups::Layout::Unified, Some(dir)) => {
                crate::cgroups::devices::apply_v2(dir, &spec)?
            }
            _ => crate::log::warn("update: device rules are kept as created on cgroup v1"),
        }
    }
    let bytes =
        serde_json::to_vec(&spec).map_err(|e| Error::msg(format!("serialise config: {e}")))?;
    crate::state::write_atomic(&c.dir.path.join(crate::state::CONFIG_FILE), &bytes)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("memory", "1024").unwrap(), 1024);
        assert_eq!(parse_bytes("memory", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("memory", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("memory", "-1").unwrap(), -1);
        assert!(parse_bytes("memory", "lots").is_err());
        assert!(parse_bytes("memory", "-5").is_err());
    }

    #[test]
    fn unlimited_memory_takes_swap_unless_swap_is_given() {
        let mut p = serde_json::json!({"memory": {"limit": -1}});
        unlimited_memory_takes_swap(&mut p);
        assert_eq!(p, serde_json::json!({"memory": {"limit": -1, "swap": -1}}));
        let mut p = serde_json::json!({"memory": {"limit": -1, "swap": 1000}});
        unlimited_memory_takes_swap(&mut p);
        assert_eq!(p["memory"]["swap"], 1000);
        let mut p = serde_json::json!({"memory": {"limit": 5000}});
        unlimited_memory_takes_swap(&mut p);
        assert!(p["memory"].get("swap").is_none());
    }
}
