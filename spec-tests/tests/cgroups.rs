//! linux.resources and `update`: limits seen from inside the container, on v1 or v2.

use spec_tests::*;

#[test]
fn memory_pids_and_cpu_limits_apply() {
    let mut c = Ctx::new("limits", &["sh", "-c", limits_probe()]);
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    c.config()["linux"]["resources"]["pids"] = json!({"limit": 42});
    c.config()["linux"]["resources"]["cpu"] = json!({"shares": 1024});
    let shares = if cgroup_v2() { "39" } else { "1024" };
    assert_eq!(c.run_ok(), format!("67108864\n42\n{shares}\n"));
}

#[test]
fn pids_limit_is_enforced() {
    let mut c = Ctx::new(
        "pidsmax",
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6; do sleep 5 & done 2>&1; echo end",
        ],
    );
    c.config()["linux"]["resources"]["pids"] = json!({"limit": 3});
    // The shell gives up when fork fails: its error is what matters.
    let out = c.run();
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains("can't fork") || text.contains("Resource temporarily unavailable"),
        "{text}"
    );
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let mut c = Ctx::new("update", &["sleep", "100"]);
    c.config()["linux"]["resources"]["pids"] = json!({"limit": 10});
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    let out = c.husk(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "20",
        "--cpu-share",
        "512",
        &c.id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let read = || stdout(&c.husk(&["exec", &c.id, "sh", "-c", limits_probe()]));
    let shares = if cgroup_v2() { "20" } else { "512" };
    assert_eq!(read(), format!("134217728\n20\n{shares}\n"));
    // containerd's form: a LinuxResources document on stdin.
    let mut child = c
        .cmd(&["update", "--resources", "-", &c.id])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), br#"{"pids": {"limit": 33}}"#)
        .unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(read(), format!("134217728\n33\n{shares}\n"));
    // The new limits are kept for later updates.
    let out = c.husk(&["update", "--memory", "64m", &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read(), format!("67108864\n33\n{shares}\n"));
}

#[test]
fn bad_update_value_is_refused() {
    let c = Ctx::new("badupdate", &["sleep", "100"]);
    c.create_ok();
    let out = c.husk(&["update", "--memory", "lots", &c.id]);
    assert_one_line_error(&out, &["--memory", "lots"]);
}

#[test]
fn unified_map_on_cgroup_v1_is_refused() {
    if cgroup_v2() {
        return;
    }
    let mut c = Ctx::new("unifiedv1", &["true"]);
    c.config()["linux"]["resources"]["unified"] = json!({"memory.max": "1000000"});
    let out = c.create();
    assert_one_line_error(&out, &["unified", "cgroup v1"]);
    c.assert_no_residue();
}

#[test]
fn events_stats_and_oom() {
    let mut c = Ctx::new(
        "events",
        &[
            "sh",
            "-c",
            "sleep 1; a=$(head -c 67108864 /dev/zero | tr \"\\\\0\" x); sleep 100",
        ],
    );
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 16777216, "swap": 16777216});
    c.create_ok();
    let out = c.husk(&["events", "--stats", &c.id]);
    let line = stdout(&out);
    assert!(
        line.starts_with(&format!("{{\"type\":\"stats\",\"id\":\"{}\",", c.id)),
        "{line}"
    );
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["data"]["memory"]["usage"]["limit"], 16777216, "{v}");
    assert!(v["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{v}");

    let mut ev = c
        .cmd(&["events", "--interval", "100ms", &c.id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(c.husk(&["start", &c.id]).status.success());
    let stdout = ev.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut saw_oom = false;
    while std::time::Instant::now() < deadline {
        let Some(Ok(l)) = lines.next() else { break };
        if l.contains("\"type\":\"oom\"") {
            saw_oom = true;
            break;
        }
    }
    assert!(saw_oom, "no oom event");
    // events stops once the container is gone.
    assert!(c.husk(&["delete", "--force", &c.id]).status.success());
    let status = ev.wait().unwrap();
    assert!(status.success());
}

/// Device rules (v1 devices.allow/deny, v2 an eBPF filter): a node made with mknod opens only
/// when a rule allows the access asked for; /dev/null stays usable whatever the rules.
#[test]
fn device_rules_decide_which_nodes_open() {
    let script = "mknod /dev/hloop b 7 0 2>&1 && (exec 3</dev/null && echo null-ok); \
                  (exec 3</dev/hloop) 2>&1; echo read-done; (exec 3>/dev/hloop) 2>&1; echo write-done";
    let with_mknod = |c: &mut Ctx| {
        for set in ["bounding", "effective", "permitted"] {
            let caps = c.config()["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap();
            caps.push(json!("CAP_MKNOD"));
        }
    };
    let mut c = Ctx::new("devices", &["sh", "-c", script]);
    with_mknod(&mut c);
    c.config()["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    let denied = c.run_ok();
    assert!(denied.contains("null-ok"), "{denied}");
    let (read, write) = denied.split_once("read-done").unwrap();
    assert!(read.contains("Operation not permitted"), "{denied}");
    assert!(write.contains("Operation not permitted"), "{denied}");

    let mut c = Ctx::new("devices-r", &["sh", "-c", script]);
    with_mknod(&mut c);
    c.config()["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}
    ]);
    let out = c.run_ok();
    let (read, write) = out.split_once("read-done").unwrap();
    assert!(
        !read.contains("Operation not permitted"),
        "read is allowed: {out}"
    );
    assert!(
        write.contains("Operation not permitted"),
        "write is not: {out}"
    );
}

/// `update --resources` with device rules: on v2 the new eBPF filter replaces the old one in
/// a running container; on v1 the rules of create stay (with a warning), as rewriting
/// devices.deny/allow would refuse everything for a moment.
#[test]
fn update_replaces_device_rules_on_cgroup_v2() {
    let mut c = Ctx::new(
        "devupdate",
        &["sh", "-c", "mknod /dev/hloop b 7 0; sleep 100"],
    );
    for set in ["bounding", "effective", "permitted"] {
        c.config()["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    c.config()["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    c.bundle.write();
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let read = || {
        stdout(&c.husk(&[
            "exec",
            &c.id,
            "sh",
            "-c",
            "(exec 3</dev/hloop) 2>&1; echo done",
        ]))
    };
    assert!(read().contains("Operation not permitted"), "{}", read());

    let dir = c.root.parent().unwrap().to_path_buf();
    let rules = dir.join("devices.json");
    std::fs::write(
        &rules,
        r#"{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}]}"#,
    )
    .unwrap();
    let up = c.husk(&["update", "--resources", &rules.to_string_lossy(), &c.id]);
    assert!(up.status.success(), "{}", stderr(&up));
    if cgroup_v2() {
        assert!(
            !read().contains("Operation not permitted"),
            "the new rules hold: {}",
            read()
        );
    } else {
        assert!(
            stderr(&up).contains("device rules are kept"),
            "{}",
            stderr(&up)
        );
        assert!(read().contains("Operation not permitted"), "{}", read());
    }
}

/// memory.checkBeforeUpdate refuses a limit below what the container uses now (without it the
/// kernel would reclaim or OOM-kill to get there), and the old limit stays.
#[test]
fn check_before_update_refuses_a_limit_below_usage() {
    let mut c = Ctx::new("checkupd", &["sleep", "100"]);
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 268435456});
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    let mut child = c
        .cmd(&["update", "--resources", "-", &c.id])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        br#"{"memory": {"limit": 65536, "checkBeforeUpdate": true}}"#,
    )
    .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_one_line_error(&out, &["checkBeforeUpdate", "65536"]);
    let file = if cgroup_v2() {
        "/sys/fs/cgroup/memory.max"
    } else {
        "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    assert_eq!(
        stdout(&c.husk(&["exec", &c.id, "cat", file])),
        "268435456\n"
    );
}

/// linux.resources.rdma reaches rdma.max: a device the host lacks is refused by the kernel,
/// in one line naming the field and the device, and the create leaves nothing.
#[test]
fn rdma_limits_are_written_and_a_missing_device_is_named() {
    let mounted = if cgroup_v2() {
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|s| s.split_whitespace().any(|c| c == "rdma"))
    } else {
        std::path::Path::new("/sys/fs/cgroup/rdma").exists()
    };
    if !mounted {
        return eprintln!("skipped: no rdma controller");
    }
    let mut c = Ctx::new("rdma", &["true"]);
    c.config()["linux"]["resources"]["rdma"] =
        json!({"husk_no_such_hca": {"hcaHandles": 2, "hcaObjects": 2000}});
    let out = c.create();
    assert_one_line_error(
        &out,
        &[
            "linux.resources.rdma",
            "husk_no_such_hca hca_handle=2 hca_object=2000",
        ],
    );
    c.assert_no_residue();
}

/// A 0 in a limit means "not set", as runc reads it: Docker sends one for every limit it
/// leaves alone (cpu shares 0 would otherwise be refused, memory 0 be a limit of nothing).
#[test]
fn zero_limits_are_unset_as_docker_sends_them() {
    let mut c = Ctx::new("zeros", &["sh", "-c", limits_probe()]);
    c.config()["linux"]["resources"] = json!({
        "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0, "kernelTCP": 0},
        "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0, "realtimePeriod": 0},
        "pids": {"limit": 0},
        "blockIO": {"weight": 0}
    });
    let out = c.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    let unlimited = if cgroup_v2() {
        "max"
    } else {
        "9223372036854771712"
    };
    assert_eq!(lines[0], unlimited, "{out}");
    assert_eq!(lines[1], "max", "{out}");
}

/// Leaf weights were CFQ's, gone from kernels since 5.0 (BFQ has none): on v1 a container that
/// asks for them still runs, after one warning line that names the field, as runtime-tools
/// expects; where blkio still has them (an old kernel), they are written.
#[test]
fn blkio_leaf_weights_without_cfq_are_warned_about_once() {
    if cgroup_v2() {
        return eprintln!("skipped: v1 only (v2 has no leaf weights)");
    }
    let mut c = Ctx::new(
        "leafweight",
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/blkio/blkio.leaf_weight 2>/dev/null; true",
        ],
    );
    c.config()["linux"]["resources"]["blockIO"] = json!({"leafWeight": 300});
    let out = c.run();
    assert!(out.status.success(), "{}", stderr(&out));
    if std::path::Path::new("/sys/fs/cgroup/blkio/blkio.leaf_weight").exists() {
        assert_eq!(stdout(&out).trim(), "300");
    } else {
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("level=warn"), "{err}");
        assert!(
            err.contains("linux.resources.blockIO leaf weights"),
            "{err}"
        );
    }
}
