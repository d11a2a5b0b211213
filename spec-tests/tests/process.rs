//! `process`: user, groups, umask, cwd, env, capabilities, noNewPrivileges, rlimits — each seen
//! from inside the container.

use spec_tests::*;

#[test]
fn user_groups_and_umask() {
    let mut c = Ctx::new("user", &["sh", "-c", "id -u; id -g; id -G; umask"]);
    c.config()["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 63});
    assert_eq!(c.run_ok(), "1000\n1000\n1000 10 20\n0077\n");
}

#[test]
fn cwd_env_and_home() {
    let mut c = Ctx::new("cwd", &["sh", "-c", "pwd; echo $FOO; echo $HOME"]);
    c.config()["process"]["cwd"] = json!("/work/dir");
    c.config()["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    assert_eq!(c.run_ok(), "/work/dir\nbar baz\n/root\n");
}

#[test]
fn capabilities_all_five_sets() {
    let mut c = Ctx::new("caps", &["sh", "-c", "grep Cap /proc/self/status"]);
    c.config()["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"]
    });
    let out = c.run_ok();
    // CAP_CHOWN = bit 0, CAP_KILL = bit 5, CAP_NET_RAW = bit 13.
    assert_eq!(status_field(&out, "CapBnd"), "0000000000002021");
    assert_eq!(status_field(&out, "CapEff"), "0000000000000021");
    assert_eq!(status_field(&out, "CapPrm"), "0000000000000021");
    assert_eq!(status_field(&out, "CapInh"), "0000000000000020");
    assert_eq!(status_field(&out, "CapAmb"), "0000000000000020");
}

#[test]
fn capabilities_survive_the_switch_to_a_non_root_user() {
    let mut c = Ctx::new("capsuser", &["sh", "-c", "grep CapEff /proc/self/status"]);
    c.config()["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    c.config()["process"]["capabilities"] = json!({
        "bounding": ["CAP_NET_BIND_SERVICE"], "effective": ["CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_NET_BIND_SERVICE"], "inheritable": ["CAP_NET_BIND_SERVICE"], "ambient": ["CAP_NET_BIND_SERVICE"]
    });
    assert_eq!(status_field(&c.run_ok(), "CapEff"), "0000000000000400");
}

#[test]
fn unknown_capability_is_ignored_with_a_warning() {
    let mut c = Ctx::new("capunknown", &["true"]);
    c.config()["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_NOT_A_THING"]);
    let out = c.run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("CAP_NOT_A_THING"), "{}", stderr(&out));
}

#[test]
fn no_new_privileges() {
    let mut c = Ctx::new("nnp", &["sh", "-c", "grep NoNewPrivs /proc/self/status"]);
    c.config()["process"]["noNewPrivileges"] = json!(true);
    assert_eq!(status_field(&c.run_ok(), "NoNewPrivs"), "1");
    c.config()["process"]["noNewPrivileges"] = json!(false);
    assert_eq!(status_field(&c.run_ok(), "NoNewPrivs"), "0");
}

#[test]
fn rlimits_are_applied() {
    let mut c = Ctx::new("rlimit", &["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"]);
    c.config()["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    assert_eq!(c.run_ok(), "123\n456\n0\n");
}

#[test]
fn raising_a_hard_rlimit_without_cap_sys_resource_is_reported() {
    // This machine lacks CAP_SYS_RESOURCE; where it is present the raise simply works.
    let hard = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .unwrap();
    let hard: u64 = String::from_utf8_lossy(&hard.stdout)
        .trim()
        .parse()
        .unwrap_or(u64::MAX);
    let has_sys_resource = {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        let eff = u64::from_str_radix(&status_field(&s, "CapEff"), 16).unwrap();
        eff & (1 << 24) != 0
    };
    if has_sys_resource || hard == u64::MAX {
        return;
    }
    let mut c = Ctx::new("rlimitperm", &["true"]);
    c.config()["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]);
    let out = c.run();
    assert_one_line_error(&out, &["RLIMIT_NOFILE", "EPERM", "CAP_SYS_RESOURCE"]);
    c.assert_no_residue();
}

/// A capability the runtime itself was not given (this machine's husk has no
/// CAP_SYS_RESOURCE) cannot be the container's either: one line that names it.
#[test]
fn asking_for_a_capability_husk_lacks_names_it() {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let own = u64::from_str_radix(&status_field(&s, "CapEff"), 16).unwrap();
    if own & (1 << 24) != 0 {
        return eprintln!("skipped: this machine has CAP_SYS_RESOURCE");
    }
    let mut c = Ctx::new("lackcap", &["true"]);
    for set in ["bounding", "effective", "permitted"] {
        c.config()["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_RESOURCE"));
    }
    let out = c.create();
    assert_one_line_error(&out, &["capset", "EPERM", "lacks CAP_SYS_RESOURCE"]);
    c.assert_no_residue();
}

#[test]
fn program_not_found_fails_create_cleanly() {
    let c = Ctx::new("notfound", &["no-such-program"]);
    let out = c.create();
    assert_one_line_error(&out, &["no-such-program", "not found"]);
    c.assert_no_residue();
}

/// process.scheduler, process.ioPriority and linux.personality, as the process sees them.
#[test]
fn scheduler_io_priority_and_personality() {
    let mut c = Ctx::new(
        "sched",
        &["sh", "-c", "cat /proc/self/stat; ionice -p $$; uname -m"],
    );
    c.config()["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    c.config()["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    c.config()["linux"]["personality"] = json!({"domain": "LINUX32"});
    let out = c.run_ok();
    let mut lines = out.lines();
    let stat = lines.next().unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // After "(comm)": field 3 is [0], so nice (19) is [16] and policy (41) is [38].
    assert_eq!(fields[16], "7", "nice: {stat}");
    assert_eq!(fields[38], "3", "policy SCHED_BATCH: {stat}");
    let ionice = lines.next().unwrap();
    assert!(ionice.starts_with("idle"), "{ionice}");
    assert_eq!(lines.next(), Some("i686"), "{out}");
}
