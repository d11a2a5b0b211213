//! exec: a second process in a running container.

use spec_tests::*;

fn running(name: &str) -> Ctx {
    let c = Ctx::new(name, &["sleep", "100"]);
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    c
}

#[test]
fn exec_runs_in_the_container_namespaces_with_its_exit_status() {
    let c = running("exec");
    let out = c.husk(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "echo $$ $(hostname); readlink /proc/1/exe; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.starts_with("1 "), "exec must not be pid 1: {text}");
    assert!(
        text.contains(" husk\n") && text.contains("/bin/busybox"),
        "{text}"
    );
}

#[test]
fn exec_options_env_cwd_user_and_caps() {
    let c = running("execopts");
    let out = c.husk(&[
        "exec",
        "--env",
        "A=1",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        "--additional-gids",
        "7",
        &c.id,
        "sh",
        "-c",
        "echo $A; pwd; id -u; id -G",
    ]);
    assert_eq!(stdout(&out), "1\n/tmp\n1000\n1000 7\n", "{}", stderr(&out));
    let out = c.husk(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        &c.id,
        "sh",
        "-c",
        "grep CapEff /proc/self/status",
    ]);
    let eff = u64::from_str_radix(&status_field(&stdout(&out), "CapEff"), 16).unwrap();
    assert!(eff & (1 << 21) != 0, "CAP_SYS_ADMIN not added: {eff:x}");
}

#[test]
fn exec_with_a_process_file_and_detach_writes_pid_file() {
    let c = running("execproc");
    let dir = c.root.parent().unwrap().to_path_buf();
    let proc_json = json!({"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "echo from-file > /tmp/out; sleep 100"], "cwd": "/", "env": ["PATH=/bin"]});
    std::fs::write(dir.join("p.json"), proc_json.to_string()).unwrap();
    let pidfile = dir.join("exec.pid");
    let out = c.husk(&[
        "exec",
        "--detach",
        "--process",
        dir.join("p.json").to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(pid.parse::<i32>().is_ok(), "pid file {pid:?}");
    let out = c.husk(&["ps", "--format", "json", &c.id]);
    let pids: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        pids.as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_i64() == pid.parse().ok()),
        "{pids} lacks {pid}"
    );
}

#[test]
fn exec_into_a_stopped_container_or_a_missing_program_fails() {
    let c = running("execstopped");
    // exec's own failures exit 255 (as runc's), distinct from the process's status.
    let out = c.husk(&["exec", &c.id, "no-such-binary"]);
    assert_one_line_error_code(&out, 255, &["no-such-binary", "not found"]);
    assert!(c.husk(&["kill", &c.id, "9"]).status.success());
    c.wait_status("stopped");
    let out = c.husk(&["exec", &c.id, "true"]);
    assert_one_line_error_code(&out, 255, &["stopped"]);
}

#[test]
fn exec_process_file_may_leave_out_user_and_cwd() {
    // runc's Go types default them (root, /); scripts and the bats suite rely on it.
    let c = running("execminimal");
    let dir = c.root.parent().unwrap().to_path_buf();
    std::fs::write(
        dir.join("min.json"),
        r#"{"args": ["sh", "-c", "id -u; pwd"], "env": ["PATH=/bin"]}"#,
    )
    .unwrap();
    let out = c.husk(&[
        "exec",
        "--process",
        dir.join("min.json").to_str().unwrap(),
        &c.id,
    ]);
    assert_eq!(stdout(&out), "0\n/\n", "{}", stderr(&out));
}

#[test]
fn exec_into_a_sub_cgroup() {
    if !std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        return; // the v1 form CONTROLLER:PATH is what this checks
    }
    let mut c = Ctx::new("execcg", &["sleep", "100"]);
    let path = format!("/husk-execcg/{}", c.id);
    c.config()["linux"]["cgroupsPath"] = json!(path);
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    std::fs::create_dir_all(format!("/sys/fs/cgroup/memory{path}/sub")).unwrap();
    let out = c.husk(&[
        "exec",
        "--cgroup",
        "memory:sub",
        &c.id,
        "cat",
        "/proc/self/cgroup",
    ]);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.ends_with(&format!(":memory:{path}/sub"))),
        "{text}{}",
        stderr(&out)
    );
    assert!(
        text.lines().any(|l| l.ends_with(&format!(":pids:{path}"))),
        "{text}"
    );
    assert_one_line_error_code(
        &c.husk(&["exec", "--cgroup", "..", &c.id, "true"]),
        255,
        &["not a sub cgroup path"],
    );
    assert_one_line_error_code(
        &c.husk(&["exec", "--cgroup", "nope", &c.id, "true"]),
        255,
        &["nope/cgroup.procs"],
    );
    assert_one_line_error_code(
        &c.husk(&["exec", "--cgroup", "whaaat:/", &c.id, "true"]),
        255,
        &["unknown controller"],
    );
    // delete removes the sub-cgroup the test made inside the container's.
    assert!(c.husk(&["delete", "--force", &c.id]).status.success());
    c.assert_no_residue();
}

/// The container dies under a running exec: exec ends with the process (killed with the
/// container's pid namespace), and delete leaves nothing.
#[test]
fn a_container_killed_while_exec_runs() {
    let c = running("execkill");
    let mut exec = c.cmd(&["exec", &c.id, "sleep", "100"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(c.husk(&["kill", &c.id, "KILL"]).status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = exec.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exec outlives its container"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    // Killed by SIGKILL: 128 + 9, as a shell would say.
    assert_eq!(status.code(), Some(137));
    c.wait_status("stopped");
    let out = c.husk(&["delete", &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    c.assert_no_residue();
}

/// cgroup v2, with the cgroup namespace `husk spec` gives there: the container sees its cgroup
/// as `/` and may hand controllers on to sub-cgroups of its own. Its top then takes no process,
/// so an exec joins its init's cgroup instead (runc's fallback); `--cgroup /` still asks for
/// the top and gets runc's "device or resource busy".
#[test]
fn exec_on_v2_joins_inits_cgroup_once_the_container_delegates() {
    if !cgroup_v2() {
        return eprintln!("skipped: cgroup v2 only");
    }
    let mut c = Ctx::new("execv2", &["sleep", "100"]);
    let ns = c.config()["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        ns.iter().any(|n| n["type"] == "cgroup"),
        "husk spec gives a cgroup namespace on v2: {ns:?}"
    );
    // The container may write its cgroup tree (runc's tests' set_cgroup_mount_writable).
    for m in c.config()["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/sys/fs/cgroup" {
            m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
        }
    }
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    let cgroup_of_exec = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&c.id, "cat", "/proc/self/cgroup"]);
        c.husk(&args)
    };
    assert_eq!(stdout(&cgroup_of_exec(&[])), "0::/\n");
    let out = c.husk(&[
        "exec",
        &c.id,
        "sh",
        "-euc",
        "mkdir /sys/fs/cgroup/sub; echo 1 > /sys/fs/cgroup/sub/cgroup.procs; \
         echo $$ > /sys/fs/cgroup/sub/cgroup.procs; echo +pids > /sys/fs/cgroup/cgroup.subtree_control",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cgroup_of_exec(&[]);
    assert_eq!(stdout(&out), "0::/sub\n", "{}", stderr(&out));
    assert_one_line_error_code(
        &cgroup_of_exec(&["--cgroup", "/"]),
        255,
        &[
            "adding pid ",
            " to cgroups: ",
            "/cgroup.procs: device or resource busy",
        ],
    );
    assert_eq!(stdout(&cgroup_of_exec(&["--cgroup", "sub"])), "0::/sub\n");
    assert!(c.husk(&["delete", "--force", &c.id]).status.success());
    c.assert_no_residue();
}
