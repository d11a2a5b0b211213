//! cgroup v2: the freezer.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use crate::error::{Context, Error, Result};

pub fn is_frozen(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
}

pub fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    let f = dir.join("cgroup.freeze");
    fs::write(&f, if frozen { "1" } else { "0" }).ctx(|| format!("write {}", f.display()))?;
    // The write only starts the transition: cgroup.events says when every task has stopped.
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = dir.join("cgroup.events");
    loop {
        let s = fs::read_to_string(&events).ctx(|| format!("read {}", events.display()))?;
        if s.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::msg(format!(
                "{} never reported {want:?}",
                events.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn write(dir: &Path, file: &str, value: impl std::fmt::Display) -> Result<()> {
    let p = dir.join(file);
    let v = value.to_string();
    fs::write(&p, &v)
        .ctx(|| format!("{}: write {v:?} to {}", super::field_of(file), p.display()))
        .map_err(|e| {
            if e.errno() == Some(nix::errno::Errno::ENOENT) {
                e.with_hint("is the controller enabled in the parent's cgroup.subtree_control?")
            } else {
                e
            }
        })
}

/// runc's conversion of v1 cpu.shares (2-262144) to v2 cpu.weight (1-10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// runc's conversion of v1 blkio.weight (10-1000) to v2 io.weight (1-10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990
}

fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Makes every controller the parent offers available to `dir`: each ancestor below the
/// mount point enables them in its cgroup.subtree_control.
pub fn enable_controllers(mountpoint: &Path, dir: &Path) -> Result<()> {
    let Ok(rel) = dir.strip_prefix(mountpoint) else {
        return Ok(());
    };
    let mut cur = mountpoint.to_path_buf();
    for c in rel.components() {
        let available = fs::read_to_string(cur.join("cgroup.controllers")).unwrap_or_default();
        let want: Vec<String> = available
            .split_whitespace()
            .map(|c| format!("+{c}"))
            .collect();
        if !want.is_empty() {
            // Controllers are enabled one at a time, so one the kernel refuses (a threaded
            // subtree, say) does not keep the others away.
            for w in &want {
                let _ = fs::write(cur.join("cgroup.subtree_control"), w);
            }
        }
        cur.push(c);
    }
    Ok(())
}

/// `linux.resources` on cgroup v2, converting v1-style values the way runc does.
pub fn apply_resources(dir: &Path, r: &LinuxResources) -> Result<()> {
    if let Some(m) = r.memory() {
        if m.check_before_update() == Some(true) {
            super::check_usage_below(dir, "memory.current", m.limit())?;
        }
        if let Some(l) = m.limit() {
            write(dir, "memory.max", limit(l))?;
        }
        if let Some(v) = m.reservation() {
            write(dir, "memory.low", limit(v))?;
        }
        if let Some(s) = m.swap() {
            // The spec's swap is memory+swap; v2 limits swap alone.
            let v = match (s, m.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l >= 0 => {
                    if s < l {
                        return Err(Error::msg(format!("linux.resources.memory: swap {s} is below the limit {l} (swap counts memory+swap)")));
                    }
                    (s - l).to_string()
                }
                (s, _) => s.to_string(),
            };
            write(dir, "memory.swap.max", v)?;
        }
        if m.disable_oom_killer() == Some(true) {
            crate::log::warn(
                "linux.resources.memory.disableOOMKiller has no cgroup v2 equivalent: ignored",
            );
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s > 0) {
            write(dir, "cpu.weight", shares_to_weight(s))?;
        }
        if c.quota().is_some() || c.period().is_some() {
            let period = c.period().filter(|p| *p > 0).unwrap_or(100_000);
            let quota = c
                .quota()
                .filter(|q| *q > 0)
                .map_or("max".to_string(), |q| q.to_string());
            write(dir, "cpu.max", format!("{quota} {period}"))?;
        }
        if let Some(v) = c.burst() {
            write(dir, "cpu.max.burst", v)?;
        }
        if let Some(v) = c.idle() {
            write(dir, "cpu.idle", v)?;
        }
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            return Err(Error::msg("linux.resources.cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no realtime limits"));
        }
        if let Some(v) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.cpus", v)?;
        }
        if let Some(v) = c.mems().as_ref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.mems", v)?;
        }
    }
    if let Some(p) = r.pids() {
        write(
            dir,
            "pids.max",
            if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            },
        )?;
    }
    if let Some(b) = r.block_io() {
        // With BFQ, its own weight file takes v1's values as they are (runc's choice).
        let bfq = dir.join("io.bfq.weight").exists();
        if let Some(w) = b.weight().filter(|w| *w > 0) {
            match bfq {
                true => write(dir, "io.bfq.weight", w)?,
                false => write(dir, "io.weight", blkio_to_io_weight(w))?,
            }
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight() {
                let (file, w) = match bfq {
                    true => ("io.bfq.weight", u64::from(w)),
                    false => ("io.weight", blkio_to_io_weight(w)),
                };
                write(dir, file, format!("{}:{} {w}", wd.major(), wd.minor()))?;
            }
        }
        let throttles = [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ];
        for (key, list) in throttles {
            for t in list.iter().flatten() {
                write(
                    dir,
                    "io.max",
                    format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        write(dir, &format!("hugetlb.{}.max", h.page_size()), h.limit())?;
    }
    for line in super::rdma_lines(r) {
        write(dir, "rdma.max", line)?;
    }
    for (k, v) in r.unified().iter().flatten() {
        if k.contains('/') || k.starts_with('.') {
            return Err(Error::msg(format!(
                "linux.resources.unified: {k:?} is not a cgroup file name"
            )));
        }
        write(dir, k, v)?;
    }
    Ok(())
}

/// runc's `events` stats from a cgroup v2 directory.
pub fn stats(dir: &Path) -> serde_json::Value {
    let cpu = super::flat_keyed(dir, "cpu.stat");
    let c = |k: &str| cpu.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let mem = super::flat_keyed(dir, "memory.stat");
    serde_json::json!({
        "cpu": {
            "usage": {"total": c("usage_usec") * 1000, "kernel": c("system_usec") * 1000, "user": c("user_usec") * 1000},
            "throttling": {"periods": c("nr_periods"), "throttled_periods": c("nr_throttled"), "throttled_time": c("throttled_usec") * 1000},
        },
        "memory": {
            "usage": {"usage": super::read_u64(dir, "memory.current"), "limit": super::read_u64(dir, "memory.max"), "max": super::read_u64(dir, "memory.peak")},
            "swap": {"usage": super::read_u64(dir, "memory.swap.current"), "limit": super::read_u64(dir, "memory.swap.max")},
            "raw": mem,
        },
        "pids": {"current": super::read_u64(dir, "pids.current"), "limit": super::read_u64(dir, "pids.max")},
    })
}

/// The kernel's count of OOM kills in this cgroup (memory.events' oom_kill).
pub fn oom_kills(dir: &Path) -> u64 {
    super::flat_keyed(dir, "memory.events")
        .get("oom_kill")
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }
}
