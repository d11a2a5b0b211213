//! create → start → kill → delete, state transitions, pid file, list, run's exit status.

use spec_tests::*;

#[test]
fn create_start_kill_delete_walks_through_every_state() {
    let mut c = Ctx::new("life", &["sleep", "100"]);
    let pidfile = c.root.parent().unwrap().join("pidfile");
    c.bundle.write();
    let b = c.bundle.dir.to_string_lossy().to_string();
    let out = c.husk(&[
        "create",
        "--bundle",
        &b,
        "--pid-file",
        pidfile.to_str().unwrap(),
        &c.id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = c.state();
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], c.id.as_str());
    assert_eq!(st["bundle"], b.as_str());
    for k in ["ociVersion", "pid", "rootfs", "created", "owner"] {
        assert!(st.get(k).is_some(), "state lacks {k}: {st}");
    }
    // go-runc reads the pid file with no trailing newline.
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(pid, st["pid"].to_string());
    // The created init is alive and waiting, not yet running sleep.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");

    let out = c.husk(&["start", &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(c.status(), "running");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    let out = c.husk(&["start", &c.id]);
    assert_one_line_error(&out, &["already running"]);

    let out = c.husk(&["delete", &c.id]);
    assert_one_line_error(&out, &["not stopped", "running"]);

    let out = c.husk(&["kill", &c.id, "KILL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    c.wait_status("stopped");
    assert_eq!(c.state()["pid"], 0);
    let out = c.husk(&["kill", &c.id]);
    assert_one_line_error(&out, &["not running"]);

    let out = c.husk(&["delete", &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    c.assert_no_residue();
    let _ = c.config();
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    let c = Ctx::new("delcreated", &["true"]);
    c.create_ok();
    let pid = c.state()["pid"].as_i64().unwrap();
    let out = c.husk(&["delete", &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let alive =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"));
    assert!(!alive, "init {pid} survived delete");
    c.assert_no_residue();
}

#[test]
fn delete_force_stops_a_running_container_and_tolerates_unknown_ids() {
    let c = Ctx::new("delforce", &["sleep", "100"]);
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    let out = c.husk(&["delete", "--force", &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    c.assert_no_residue();
    assert!(c
        .husk(&["delete", "--force", "no-such-container"])
        .status
        .success());
    assert_one_line_error(
        &c.husk(&["delete", "no-such-container"]),
        &["no-such-container", "does not exist"],
    );
}

#[test]
fn run_exits_with_the_container_status() {
    let c = Ctx::new("exit", &["sh", "-c", "echo out; exit 7"]);
    let out = c.run();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    c.assert_no_residue();
    // Without a pid namespace of its own the shell is not an init, so SIGKILL kills it.
    let mut c = Ctx::new("signal", &["sh", "-c", "kill -9 $$"]);
    c.config()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    assert_eq!(c.run().status.code(), Some(137));
}

#[test]
fn run_forwards_signals_to_the_container() {
    let c = Ctx::new(
        "fwd",
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
        ],
    );
    c.bundle.write();
    let b = c.bundle.dir.to_string_lossy().to_string();
    let mut child = c
        .cmd(&["run", "--bundle", &b, &c.id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    nix_kill(child.id() as i32, libc::SIGTERM);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "got-term\n");
    assert_eq!(status.code(), Some(3));
}

fn nix_kill(pid: i32, sig: i32) {
    assert!(std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
}

#[test]
fn list_shows_containers_in_table_json_and_quiet_forms() {
    let c = Ctx::new("list", &["sleep", "100"]);
    c.create_ok();
    let out = c.husk(&["list"]);
    let text = stdout(&out);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&c.id) && l.contains("created")),
        "{text}"
    );
    let out = c.husk(&["list", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], c.id.as_str());
    assert_eq!(v[0]["status"], "created");
    assert_eq!(stdout(&c.husk(&["list", "-q"])), format!("{}\n", c.id));
}

#[test]
fn pause_and_resume_freeze_the_container() {
    let c = Ctx::new("pause", &["sleep", "100"]);
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    let out = c.husk(&["pause", &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(c.status(), "paused");
    let out = c.husk(&["resume", &c.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(c.status(), "running");
}

#[test]
fn ps_lists_the_container_processes() {
    let c = Ctx::new("ps", &["sleep", "100"]);
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    let pid = c.state()["pid"].as_i64().unwrap();
    let out = c.husk(&["ps", "--format", "json", &c.id]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, json!([pid]));
    let out = c.husk(&["ps", &c.id]);
    let text = stdout(&out);
    assert!(text.lines().next().unwrap().contains("PID"), "{text}");
    assert!(text.lines().any(|l| l.contains("sleep 100")), "{text}");
}

#[test]
fn kill_with_signal_0_probes_and_all_works_after_stop() {
    let c = Ctx::new("kill0", &["sleep", "100"]);
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    assert!(c.husk(&["kill", &c.id, "0"]).status.success());
    assert!(c.husk(&["kill", &c.id, "KILL"]).status.success());
    c.wait_status("stopped");
    let out = c.husk(&["kill", "--all", &c.id, "0"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn state_and_list_json_keep_runcs_field_order() {
    let c = Ctx::new("order", &["sleep", "100"]);
    c.create_ok();
    let out = stdout(&c.husk(&["list", "--format", "json"]));
    let keys: Vec<&str> = [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ]
    .to_vec();
    let pos: Vec<usize> = keys
        .iter()
        .map(|k| out.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{out}");
}

/// Real-time signals by name and number: systemd in a container stops on SIGRTMIN+3, and
/// containerd sends it as the number 37.
#[test]
fn kill_delivers_real_time_signals() {
    for sig in ["SIGRTMIN+3", "37"] {
        let c = Ctx::new(
            "rtsig",
            &[
                "sh",
                "-c",
                "trap 'exit 7' 37; while true; do sleep 0.1; done",
            ],
        );
        c.create_ok();
        assert!(c.husk(&["start", &c.id]).status.success());
        std::thread::sleep(std::time::Duration::from_millis(200));
        let k = c.husk(&["kill", &c.id, sig]);
        assert!(k.status.success(), "kill {sig}: {}", stderr(&k));
        c.wait_status("stopped");
    }
}
