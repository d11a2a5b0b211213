//! Stats for containerd's `Stats` call: the runtime's `events --stats` data (runc's shape),
//! repacked as the cgroup metrics protos containerd decodes (io.containerd.cgroups.v1/v2.Metrics).

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use protobuf::well_known_types::any::Any;
use protobuf::MessageField;
use serde_json::Value;

use crate::events::to_any;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Copies memory.stat counters (`raw`) into proto fields; spelt out, because protobuf's
/// reflection would more than double the shim's code, and so its resident size.
macro_rules! from_raw {
    ($m:expr, $raw:expr, { $($field:ident: $key:literal),* $(,)? }) => {
        $( $m.$field = u(&$raw[$key]); )*
    };
}

pub fn from_runc_stats(data: &Value, unified: bool) -> Any {
    if unified {
        to_any("io.containerd.cgroups.v2.Metrics", &v2_metrics(data))
    } else {
        to_any("io.containerd.cgroups.v1.Metrics", &v1_metrics(data))
    }
}

fn v1_metrics(d: &Value) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(p) = d.get("pids") {
        m.pids = MessageField::some(v1::PidsStat {
            current: u(&p["current"]),
            limit: u(&p["limit"]),
            ..Default::default()
        });
    }
    if let Some(c) = d.get("cpu") {
        let usage = &c["usage"];
        let t = &c["throttling"];
        m.cpu = MessageField::some(v1::CPUStat {
            usage: MessageField::some(v1::CPUUsage {
                total: u(&usage["total"]),
                kernel: u(&usage["kernel"]),
                user: u(&usage["user"]),
                per_cpu: usage["percpu"]
                    .as_array()
                    .map(|a| a.iter().map(u).collect())
                    .unwrap_or_default(),
                ..Default::default()
            }),
            throttling: MessageField::some(v1::Throttle {
                periods: u(&t["periods"]),
                throttled_periods: u(&t["throttled_periods"]),
                throttled_time: u(&t["throttled_time"]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if let Some(mem) = d.get("memory") {
        let entry = |e: &Value| {
            MessageField::some(v1::MemoryEntry {
                limit: u(&e["limit"]),
                usage: u(&e["usage"]),
                max: u(&e["max"]),
                failcnt: u(&e["failcnt"]),
                ..Default::default()
            })
        };
        let mut s = v1::MemoryStat::new();
        from_raw!(s, mem["raw"], {
            cache: "cache", rss: "rss", rss_huge: "rss_huge", mapped_file: "mapped_file",
            dirty: "dirty", writeback: "writeback", pg_pg_in: "pgpgin", pg_pg_out: "pgpgout",
            pg_fault: "pgfault", pg_maj_fault: "pgmajfault", inactive_anon: "inactive_anon",
            active_anon: "active_anon", inactive_file: "inactive_file", active_file: "active_file",
            unevictable: "unevictable", hierarchical_memory_limit: "hierarchical_memory_limit",
            hierarchical_swap_limit: "hierarchical_memsw_limit", total_cache: "total_cache",
            total_rss: "total_rss", total_rss_huge: "total_rss_huge",
            total_mapped_file: "total_mapped_file", total_dirty: "total_dirty",
            total_writeback: "total_writeback", total_pg_pg_in: "total_pgpgin",
            total_pg_pg_out: "total_pgpgout", total_pg_fault: "total_pgfault",
            total_pg_maj_fault: "total_pgmajfault", total_inactive_anon: "total_inactive_anon",
            total_active_anon: "total_active_anon", total_inactive_file: "total_inactive_file",
            total_active_file: "total_active_file", total_unevictable: "total_unevictable",
        });
        s.usage = entry(&mem["usage"]);
        s.swap = entry(&mem["swap"]);
        s.kernel = entry(&mem["kernel"]);
        s.kernel_tcp = entry(&mem["kernelTCP"]);
        m.memory = MessageField::some(s);
    }
    m
}

fn v2_metrics(d: &Value) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    if let Some(p) = d.get("pids") {
        m.pids = MessageField::some(v2::PidsStat {
            current: u(&p["current"]),
            limit: u(&p["limit"]),
            ..Default::default()
        });
    }
    if let Some(c) = d.get("cpu") {
        let usage = &c["usage"];
        let t = &c["throttling"];
        m.cpu = MessageField::some(v2::CPUStat {
            usage_usec: u(&usage["total"]) / 1000,
            user_usec: u(&usage["user"]) / 1000,
            system_usec: u(&usage["kernel"]) / 1000,
            nr_periods: u(&t["periods"]),
            nr_throttled: u(&t["throttled_periods"]),
            throttled_usec: u(&t["throttled_time"]) / 1000,
            ..Default::default()
        });
    }
    if let Some(mem) = d.get("memory") {
        let mut s = v2::MemoryStat::new();
        from_raw!(s, mem["raw"], {
            anon: "anon", file: "file", kernel_stack: "kernel_stack", slab: "slab", sock: "sock",
            shmem: "shmem", file_mapped: "file_mapped", file_dirty: "file_dirty",
            file_writeback: "file_writeback", anon_thp: "anon_thp", inactive_anon: "inactive_anon",
            active_anon: "active_anon", inactive_file: "inactive_file", active_file: "active_file",
            unevictable: "unevictable", slab_reclaimable: "slab_reclaimable",
            slab_unreclaimable: "slab_unreclaimable", pgfault: "pgfault", pgmajfault: "pgmajfault",
            workingset_refault: "workingset_refault", workingset_activate: "workingset_activate",
            workingset_nodereclaim: "workingset_nodereclaim", pgrefill: "pgrefill",
            pgscan: "pgscan", pgsteal: "pgsteal", pgactivate: "pgactivate",
            pgdeactivate: "pgdeactivate", pglazyfree: "pglazyfree", pglazyfreed: "pglazyfreed",
            thp_fault_alloc: "thp_fault_alloc", thp_collapse_alloc: "thp_collapse_alloc",
        });
        s.usage = u(&mem["usage"]["usage"]);
        s.usage_limit = u(&mem["usage"]["limit"]);
        s.max_usage = u(&mem["usage"]["max"]);
        s.swap_usage = u(&mem["swap"]["usage"]);
        s.swap_limit = u(&mem["swap"]["limit"]);
        m.memory = MessageField::some(s);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::Message;

    #[test]
    fn runc_stats_become_containerd_metrics() {
        let d = serde_json::json!({
            "cpu": {"usage": {"total": 5_000_000, "kernel": 1_000_000, "user": 4_000_000, "percpu": [2, 3]},
                    "throttling": {"periods": 7, "throttled_periods": 1, "throttled_time": 9000}},
            "memory": {"usage": {"usage": 4096, "limit": 8192, "max": 5000, "failcnt": 0},
                       "swap": {"usage": 1, "limit": 2}, "raw": {"cache": 11, "pgfault": 12, "total_pgpgin": 13, "anon": 14, "file": 15}},
            "pids": {"current": 3, "limit": 10},
        });
        let a = from_runc_stats(&d, false);
        assert_eq!(a.type_url, "io.containerd.cgroups.v1.Metrics");
        let m = v1::Metrics::parse_from_bytes(&a.value).unwrap();
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.cpu.usage.per_cpu, vec![2, 3]);
        assert_eq!(m.memory.cache, 11);
        assert_eq!(m.memory.pg_fault, 12);
        assert_eq!(m.memory.total_pg_pg_in, 13);
        assert_eq!(m.memory.usage.limit, 8192);
        let a = from_runc_stats(&d, true);
        assert_eq!(a.type_url, "io.containerd.cgroups.v2.Metrics");
        let m = v2::Metrics::parse_from_bytes(&a.value).unwrap();
        assert_eq!(m.cpu.usage_usec, 5000);
        assert_eq!(m.memory.anon, 14);
        assert_eq!(m.memory.usage, 4096);
        assert_eq!(m.pids.limit, 10);
    }
}
