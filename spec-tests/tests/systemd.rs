//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient scope
//! that systemd makes, checked with systemctl (not husk's own D-Bus code). These run where
//! systemd is PID 1 — `hack/vm.sh --systemd` (cgroup v2) and `--systemd-v1` (hybrid), which set
//! HUSK_EXPECT_SYSTEMD so that a missing systemd fails instead of skipping. Elsewhere only the
//! clean refusal is tested.

use std::path::Path;

use spec_tests::*;

fn systemd() -> bool {
    let up = Path::new("/run/systemd/system").exists();
    if !up && std::env::var_os("HUSK_EXPECT_SYSTEMD").is_some() {
        panic!("HUSK_EXPECT_SYSTEMD is set but systemd is not running");
    }
    if !up {
        eprintln!("skipped: systemd is not PID 1 here");
    }
    up
}

fn sd(c: &Ctx, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--systemd-cgroup"];
    all.extend_from_slice(args);
    c.husk(&all)
}

fn create(c: &Ctx) -> std::process::Output {
    c.bundle.write();
    let b = c.bundle.dir.to_string_lossy().to_string();
    sd(c, &["create", "--bundle", &b, &c.id])
}

/// The container's cgroup directories on this host, in every hierarchy that has one.
fn cgroup_dirs(cgroup: &str) -> Vec<std::path::PathBuf> {
    let rel = cgroup.trim_start_matches('/');
    let dirs = if cgroup_v2() {
        vec![Path::new("/sys/fs/cgroup").join(rel)]
    } else {
        std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|e| e.path().join(rel))
            .collect()
    };
    dirs.into_iter().filter(|p| p.exists()).collect()
}

/// Whether a /proc/PID/cgroup table puts the process in `cgroup` in every hierarchy (a v1
/// hierarchy nobody mounted shows "/").
fn all_in(table: &str, cgroup: &str) -> bool {
    table.lines().any(|l| l.ends_with(cgroup))
        && table
            .lines()
            .all(|l| l.ends_with(cgroup) || l.ends_with(":/"))
}

#[test]
fn a_container_lives_in_its_own_delegated_scope_with_its_limits() {
    if !systemd() {
        return;
    }
    let mut c = Ctx::new("scope", &["sleep", "100"]);
    // Without the cgroup namespace `husk spec` gives on v2, an exec sees the scope's path.
    c.config()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "cgroup");
    let unit = format!("husk-{}.scope", c.id);
    let cgroup = format!("/system.slice/{unit}");
    c.config()["linux"]["cgroupsPath"] = json!(format!("system.slice:husk:{}", c.id));
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    c.config()["linux"]["resources"]["pids"] = json!({"limit": 42});
    c.config()["linux"]["resources"]["cpu"] = json!({"shares": 1024});
    let out = create(&c);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(systemctl_show(&unit, "ActiveState"), "active");
    assert_eq!(systemctl_show(&unit, "Delegate"), "yes");
    assert_eq!(systemctl_show(&unit, "ControlGroup"), cgroup);
    assert_eq!(systemctl_show(&unit, "TasksMax"), "42");
    let (mem_prop, shares) = if cgroup_v2() {
        ("MemoryMax", "39")
    } else {
        ("MemoryLimit", "1024")
    };
    assert_eq!(systemctl_show(&unit, mem_prop), "67108864");
    // The init is in the scope in every hierarchy, and the limits are in its cgroup files.
    let pid = c.state()["pid"].as_u64().unwrap();
    let table = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(all_in(&table, &cgroup), "want {cgroup}:\n{table}");
    assert!(c.husk(&["start", &c.id]).status.success());
    let read = || stdout(&c.husk(&["exec", &c.id, "sh", "-c", limits_probe()]));
    assert_eq!(read(), format!("67108864\n42\n{shares}\n"));
    // An exec joins the scope too.
    let own = stdout(&c.husk(&["exec", &c.id, "cat", "/proc/self/cgroup"]));
    assert!(all_in(&own, &cgroup), "want {cgroup}:\n{own}");

    // update reaches both the unit and the cgroup.
    let out = c.husk(&["update", "--memory", "128m", "--pids-limit", "20", &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(systemctl_show(&unit, mem_prop), "134217728");
    assert_eq!(systemctl_show(&unit, "TasksMax"), "20");
    assert_eq!(read(), format!("134217728\n20\n{shares}\n"));

    // systemd re-applies a unit's own limits on daemon-reload: they are the container's.
    let reload = std::process::Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .unwrap();
    assert!(reload.success());
    assert_eq!(read(), format!("134217728\n20\n{shares}\n"));

    assert!(c.husk(&["pause", &c.id]).status.success());
    assert_eq!(c.status(), "paused");
    assert!(c.husk(&["resume", &c.id]).status.success());
    assert_eq!(c.status(), "running");

    let out = sd(&c, &["delete", "--force", &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(systemctl_show(&unit, "LoadState"), "not-found");
    let left = cgroup_dirs(&cgroup);
    assert!(left.is_empty(), "left behind: {left:?}");
    c.assert_no_residue();
}

#[test]
fn slices_nest_and_the_default_is_husk_id_in_system_slice() {
    if !systemd() {
        return;
    }
    let mut c = Ctx::new("slice", &["sh", "-c", "cat /proc/self/cgroup"]);
    c.config()["linux"]["cgroupsPath"] = json!(format!("husk-test.slice:p:{}", c.id));
    // No cgroup namespace: /proc/self/cgroup shows the host's paths.
    let no_cgroupns = |c: &mut Ctx| {
        c.config()["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "cgroup")
    };
    no_cgroupns(&mut c);
    let b = c.bundle.dir.to_string_lossy().to_string();
    c.bundle.write();
    let out = sd(&c, &["run", "--bundle", &b, &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let want = format!("/husk.slice/husk-test.slice/p-{}.scope", c.id);
    assert!(all_in(&stdout(&out), &want), "{}", stdout(&out));
    assert!(cgroup_dirs(&want).is_empty());

    let mut d = Ctx::new("default", &["sh", "-c", "cat /proc/self/cgroup"]);
    no_cgroupns(&mut d);
    d.config()["linux"]
        .as_object_mut()
        .unwrap()
        .remove("cgroupsPath");
    d.bundle.write();
    let b = d.bundle.dir.to_string_lossy().to_string();
    let out = sd(&d, &["run", "--bundle", &b, &d.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let want = format!("/system.slice/husk-{}.scope", d.id);
    assert!(all_in(&stdout(&out), &want), "{}", stdout(&out));
}

#[test]
fn annotations_set_unit_properties() {
    if !systemd() {
        return;
    }
    let mut c = Ctx::new("props", &["sleep", "100"]);
    let unit = format!("husk-{}.scope", c.id);
    c.config()["linux"]["cgroupsPath"] = json!(format!(":husk:{}", c.id));
    c.config()["annotations"] = json!({
        "org.systemd.property.TimeoutStopSec": "17",
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
    });
    let out = create(&c);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(systemctl_show(&unit, "TimeoutStopUSec"), "17s");
    assert_eq!(systemctl_show(&unit, "CollectMode"), "inactive-or-failed");
    assert!(c.husk(&["delete", "--force", &c.id]).status.success());
    assert_eq!(systemctl_show(&unit, "LoadState"), "not-found");
}

#[test]
fn a_failed_create_leaves_no_scope_and_a_taken_name_is_refused() {
    if !systemd() {
        return;
    }
    // A createRuntime hook fails after the scope exists: the scope must go with the rest.
    let mut c = Ctx::new("hookfail", &["true"]);
    let unit = format!("husk-{}.scope", c.id);
    c.config()["linux"]["cgroupsPath"] = json!(format!("system.slice:husk:{}", c.id));
    c.config()["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    let out = create(&c);
    assert_one_line_error(&out, &["hook", "/bin/false"]);
    assert_eq!(systemctl_show(&unit, "LoadState"), "not-found");
    assert!(cgroup_dirs(&format!("/system.slice/{unit}")).is_empty());
    c.assert_no_residue();

    // Two containers naming one scope: the second is refused in one line and takes nothing
    // from the first.
    let mut a = Ctx::new("owner", &["sleep", "100"]);
    let shared = format!("system.slice:husk:shared-{}", a.id);
    let unit = format!("husk-shared-{}.scope", a.id);
    a.config()["linux"]["cgroupsPath"] = json!(shared);
    assert!(create(&a).status.success());
    let mut b = Ctx::new("intruder", &["sleep", "100"]);
    b.config()["linux"]["cgroupsPath"] = json!(shared);
    let out = create(&b);
    assert_one_line_error(&out, &[&unit, "already exists"]);
    b.assert_no_residue();
    assert_eq!(systemctl_show(&unit, "ActiveState"), "active");
    assert_eq!(a.status(), "created");
}

#[test]
fn an_oom_kill_in_a_scope_is_reported() {
    if !systemd() {
        return;
    }
    let mut c = Ctx::new(
        "oom",
        &[
            "sh",
            "-c",
            "sleep 1; a=$(head -c 67108864 /dev/zero | tr \"\\\\0\" x); sleep 100",
        ],
    );
    c.config()["linux"]["cgroupsPath"] = json!(format!("system.slice:husk:{}", c.id));
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 16777216, "swap": 16777216});
    assert!(create(&c).status.success());
    let mut ev = c
        .cmd(&["events", "--interval", "100ms", &c.id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(c.husk(&["start", &c.id]).status.success());
    let lines = std::io::BufRead::lines(std::io::BufReader::new(ev.stdout.take().unwrap()));
    let mut seen = Vec::new();
    for l in lines.take(400).map_while(|l| l.ok()) {
        let oom = l.contains("\"type\":\"oom\"");
        seen.push(l);
        if oom {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("\"type\":\"oom\"")),
        "no oom event in {} lines; last: {:?}; unit {}",
        seen.len(),
        seen.last(),
        systemctl_show(&format!("husk-{}.scope", c.id), "ActiveState")
    );
    assert!(c.husk(&["delete", "--force", &c.id]).status.success());
    let _ = ev.kill();
    let _ = ev.wait();
    c.assert_no_residue();
}

/// The cgroupfs driver still works on a systemd host (containerd without SystemdCgroup):
/// an absolute cgroupsPath outside systemd's slices, limits applied, nothing left.
#[test]
fn the_cgroupfs_driver_works_beside_systemd() {
    if !systemd() {
        return;
    }
    let mut c = Ctx::new("cgroupfs", &["sh", "-c", limits_probe()]);
    let path = format!("/husk-cgroupfs/{}", c.id);
    c.config()["linux"]["cgroupsPath"] = json!(path);
    c.config()["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    c.config()["linux"]["resources"]["pids"] = json!({"limit": 42});
    c.config()["linux"]["resources"]["cpu"] = json!({"shares": 1024});
    let shares = if cgroup_v2() { "39" } else { "1024" };
    assert_eq!(c.run_ok(), format!("67108864\n42\n{shares}\n"));
    assert!(cgroup_dirs(&path).is_empty());
    assert!(cgroup_dirs("/husk-cgroupfs").is_empty());
}

/// Where no systemd runs, --systemd-cgroup fails before anything is made, in one line.
#[test]
fn without_systemd_the_driver_is_refused_cleanly() {
    if Path::new("/run/systemd/system").exists() {
        eprintln!("skipped: systemd runs here");
        return;
    }
    let c = Ctx::new("nosystemd", &["true"]);
    let out = create(&c);
    assert_one_line_error(&out, &["--systemd-cgroup", "systemd is not running"]);
    c.assert_no_residue();
}
