//! cgroup v1: resources, the freezer and stats (device rules: `devices`).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use crate::error::{Context, Error, Result};

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

fn write(dir: &Path, file: &str, value: impl std::fmt::Display) -> Result<()> {
    let p = dir.join(file);
    let v = value.to_string();
    fs::write(&p, &v).ctx(|| format!("{}: write {v:?} to {}", super::field_of(file), p.display()))
}

/// `linux.resources` on v1 hierarchies (each controller in its own directory).
pub fn apply_resources(pl: &super::Placement, r: &LinuxResources) -> Result<()> {
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(Error::msg(
            "invalid configuration: linux.resources.unified needs cgroup v2, but this host runs cgroup v1",
        )
        .with_hint("remove the unified map or run on a cgroup v2 host"));
    }
    let dir = |c: &str| {
        pl.v1_dir(c).ok_or_else(|| {
            let field = match c {
                "hugetlb" => "linux.resources.hugepageLimits",
                "net_cls" => "linux.resources.network.classID",
                "net_prio" => "linux.resources.network.priorities",
                "rdma" => "linux.resources.rdma",
                _ => "linux.resources",
            };
            Error::msg(format!("{field}: the {c} cgroup controller is not mounted"))
        })
    };
    if let Some(m) = r.memory() {
        let d = dir("memory")?;
        if m.check_before_update() == Some(true) {
            super::check_usage_below(d, "memory.usage_in_bytes", m.limit())?;
        }
        // memsw must stay >= limit at every step: raise memsw first when growing, last when
        // shrinking, as runc does.
        let cur = fs::read_to_string(d.join("memory.limit_in_bytes"))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok());
        let limit = m.limit();
        let swap = m.swap();
        let grows = match (limit, cur) {
            (Some(l), Some(c)) => l == -1 || l > c,
            _ => true,
        };
        if grows {
            if let Some(s) = swap {
                write(d, "memory.memsw.limit_in_bytes", s)?;
            }
            if let Some(l) = limit {
                write(d, "memory.limit_in_bytes", l)?;
            }
        } else {
            if let Some(l) = limit {
                write(d, "memory.limit_in_bytes", l)?;
            }
            if let Some(s) = swap {
                write(d, "memory.memsw.limit_in_bytes", s)?;
            }
        }
        if let Some(v) = m.reservation() {
            write(d, "memory.soft_limit_in_bytes", v)?;
        }
        if let Some(v) = m.kernel_tcp() {
            write(d, "memory.kmem.tcp.limit_in_bytes", v)?;
        }
        if let Some(v) = m.swappiness() {
            if v > 100 {
                return Err(Error::msg(format!(
                    "linux.resources.memory.swappiness {v}: must be 0-100"
                )));
            }
            write(d, "memory.swappiness", v)?;
        }
        if m.disable_oom_killer() == Some(true) {
            write(d, "memory.oom_control", 1)?;
        }
        if let Some(h) = m.use_hierarchy() {
            write(d, "memory.use_hierarchy", u8::from(h))?;
        }
    }
    if let Some(c) = r.cpu() {
        if c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
        {
            let d = dir("cpu")?;
            if let Some(v) = c.shares() {
                write(d, "cpu.shares", v)?;
                // The kernel clamps shares to 2..=262144 silently; say so, as runc does.
                let got = super::read_u64(d, "cpu.shares");
                if got != 0 && got != v {
                    let bound = if v < got { "minimum" } else { "maximum" };
                    return Err(Error::msg(format!(
                        "linux.resources.cpu.shares {v}: the {bound} allowed is {got}"
                    )));
                }
            }
            // A period shorter than the current one can be refused (EINVAL) while the old
            // quota over the new period exceeds a parent's limit: then the quota goes first
            // and the period after it (runc's order).
            let mut period_later = None;
            if let Some(v) = c.period() {
                match write(d, "cpu.cfs_period_us", v) {
                    Err(e)
                        if e.errno() == Some(nix::errno::Errno::EINVAL) && c.quota().is_some() =>
                    {
                        period_later = Some(v)
                    }
                    r => r?,
                }
            }
            if let Some(v) = c.quota() {
                write(d, "cpu.cfs_quota_us", v)?;
            }
            if let Some(v) = period_later {
                write(d, "cpu.cfs_period_us", v)?;
            }
            if let Some(v) = c.burst() {
                write(d, "cpu.cfs_burst_us", v)?;
            }
            if let Some(v) = c.realtime_period() {
                write(d, "cpu.rt_period_us", v)?;
            }
            if let Some(v) = c.realtime_runtime() {
                write(d, "cpu.rt_runtime_us", v)?;
            }
        }
        if c.cpus().as_ref().is_some_and(|s| !s.is_empty())
            || c.mems().as_ref().is_some_and(|s| !s.is_empty())
        {
            let d = dir("cpuset")?;
            if let Some(v) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
                write(d, "cpuset.cpus", v)?;
            }
            if let Some(v) = c.mems().as_ref().filter(|s| !s.is_empty()) {
                write(d, "cpuset.mems", v)?;
            }
        }
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() > 0 {
            p.limit().to_string()
        } else {
            "max".into()
        };
        write(dir("pids")?, "pids.max", v)?;
    }
    if let Some(b) = r.block_io() {
        let d = dir("blkio")?;
        // Kernels without CFQ (5.0 on) have BFQ's weights only, under their own names.
        let bfq = |file: &'static str, bfq_file: &'static str| {
            if !d.join(file).exists() && d.join(bfq_file).exists() {
                bfq_file
            } else {
                file
            }
        };
        if let Some(w) = b.weight() {
            write(d, bfq("blkio.weight", "blkio.bfq.weight"), w)?;
        }
        // Leaf weights were CFQ's; BFQ (the only weighted scheduler from 5.0) has none.
        let leaf = d.join("blkio.leaf_weight").exists();
        let wants_leaf = b.leaf_weight().is_some()
            || b.weight_device()
                .iter()
                .flatten()
                .any(|w| w.leaf_weight().is_some());
        if wants_leaf && !leaf {
            crate::log::warn("linux.resources.blockIO leaf weights: this kernel's blkio has none (CFQ is gone): ignored");
        }
        if let Some(w) = b.leaf_weight().filter(|_| leaf) {
            write(d, "blkio.leaf_weight", w)?;
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight() {
                write(
                    d,
                    bfq("blkio.weight_device", "blkio.bfq.weight_device"),
                    format!("{}:{} {w}", wd.major(), wd.minor()),
                )?;
            }
            if let Some(w) = wd.leaf_weight().filter(|_| leaf) {
                write(
                    d,
                    "blkio.leaf_weight_device",
                    format!("{}:{} {w}", wd.major(), wd.minor()),
                )?;
            }
        }
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                b.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                b.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                b.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                b.throttle_write_iops_device(),
            ),
        ];
        for (file, list) in throttles {
            for t in list.iter().flatten() {
                write(d, file, format!("{}:{} {}", t.major(), t.minor(), t.rate()))?;
            }
        }
    }
    for line in super::rdma_lines(r) {
        write(dir("rdma")?, "rdma.max", line)?;
    }
    for h in r.hugepage_limits().iter().flatten() {
        write(
            dir("hugetlb")?,
            &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            h.limit(),
        )?;
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            write(dir("net_cls")?, "net_cls.classid", id)?;
        }
        for p in n.priorities().iter().flatten() {
            write(
                dir("net_prio")?,
                "net_prio.ifpriomap",
                format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    Ok(())
}

/// runc's `events` stats from v1 hierarchies.
pub fn stats(pl: &super::Placement) -> serde_json::Value {
    let mut data = serde_json::json!({});
    if let Some(d) = pl.v1_dir("cpuacct") {
        let percpu: Vec<u64> = fs::read_to_string(d.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // cpuacct.stat counts USER_HZ ticks (100 a second); stats are in nanoseconds.
        let st = super::flat_keyed(d, "cpuacct.stat");
        let ticks = |k: &str| st.get(k).and_then(|v| v.as_u64()).unwrap_or(0) * 10_000_000;
        data["cpu"]["usage"] = serde_json::json!({
            "total": super::read_u64(d, "cpuacct.usage"), "percpu": percpu, "kernel": ticks("system"), "user": ticks("user"),
        });
    }
    if let Some(d) = pl.v1_dir("cpu") {
        let st = super::flat_keyed(d, "cpu.stat");
        let get = |k: &str| st.get(k).cloned().unwrap_or(serde_json::json!(0));
        data["cpu"]["throttling"] = serde_json::json!({
            "periods": get("nr_periods"), "throttled_periods": get("nr_throttled"), "throttled_time": get("throttled_time"),
        });
    }
    if let Some(d) = pl.v1_dir("memory") {
        let entry = |prefix: &str| {
            serde_json::json!({
                "limit": super::read_u64(d, &format!("{prefix}limit_in_bytes")),
                "usage": super::read_u64(d, &format!("{prefix}usage_in_bytes")),
                "max": super::read_u64(d, &format!("{prefix}max_usage_in_bytes")),
                "failcnt": super::read_u64(d, &format!("{prefix}failcnt")),
            })
        };
        data["memory"] = serde_json::json!({
            "usage": entry("memory."), "swap": entry("memory.memsw."), "kernel": entry("memory.kmem."),
            "kernelTCP": entry("memory.kmem.tcp."), "raw": super::flat_keyed(d, "memory.stat"),
        });
    }
    if let Some(d) = pl.v1_dir("pids") {
        data["pids"] = serde_json::json!({"current": super::read_u64(d, "pids.current"), "limit": super::read_u64(d, "pids.max")});
    }
    data
}

/// The kernel's count of OOM kills in this cgroup (memory.oom_control's oom_kill).
pub fn oom_kills(pl: &super::Placement) -> u64 {
    pl.v1_dir("memory").map_or(0, oom_kill_count)
}

/// memory.oom_control's oom_kill in a memory cgroup directory.
pub fn oom_kill_count(dir: &Path) -> u64 {
    super::flat_keyed(dir, "memory.oom_control")
        .get("oom_kill")
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}
