//! `checkpoint` and `restore` through CRIU. They need a kernel `criu check` accepts: the cgroup
//! v2 VM (hack/vm.sh carries criu, GNU tar for tmpfs contents and the modules criu probes, and
//! sets HUSK_EXPECT_CRIU so that a failing `criu check` fails there instead of skipping). On
//! this machine criu 3.17 cannot parse the 6.18 kernel's vDSO, and the tests say so and pass.
//!
//! The containers join the VM's network namespace by path: criu cannot dump a new one there
//! (the VM loads no netlink families on demand), and a namespace joined by path is what runc
//! hands criu as external.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use spec_tests::*;

/// A container that counts, to /tmp/count in its rootfs and as "tick N" lines on stdout.
/// The count is renamed into place: a reader never sees the file empty between truncate and
/// write.
fn counter(name: &str) -> Ctx {
    let mut c = Ctx::new(
        name,
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/c; mv /tmp/c /tmp/count; echo tick $i; sleep 0.1; done",
        ],
    );
    c.config()["root"]["readonly"] = json!(false);
    let ns = c.config()["linux"]["namespaces"].as_array_mut().unwrap();
    for n in ns.iter_mut() {
        if n["type"] == "network" {
            n["path"] = json!("/proc/1/ns/net");
        }
    }
    c.bundle.write();
    c
}

fn count(c: &Ctx) -> u64 {
    std::fs::read_to_string(c.bundle.rootfs().join("tmp/count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_count_above(c: &Ctx, n: u64) -> u64 {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        let now = count(c);
        if now > n {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{}: the count stayed at {}", c.id, count(c));
}

/// `husk ARGS` with stdio pipes, as containerd gives them: stdin held open, stdout read by a
/// thread whose lines come back through the returned receiver, stderr passed on by another.
/// (criu refuses a descriptor on a file the container's mounts do not show, the test's
/// console or /dev/null among them.)
fn with_pipes(c: &Ctx, args: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = c
        .cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(|l| l.ok()) {
            eprintln!("{l}");
        }
    });
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(|l| l.ok()) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

fn next_tick(rx: &std::sync::mpsc::Receiver<String>) -> u64 {
    let l = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a tick on the container's stdout");
    l.strip_prefix("tick ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{l:?}"))
}

#[test]
fn checkpoint_and_restore_keep_the_processes_and_rewire_their_pipes() {
    if !criu_works() {
        return;
    }
    let c = counter("cr");
    let images = c.root.parent().unwrap().join("images");
    let images_s = images.to_str().unwrap();
    let b = c.bundle.dir.to_str().unwrap();
    let (mut run, ticks) = with_pipes(&c, &["run", "-d", "--bundle", b, &c.id]);
    assert!(run.wait().unwrap().success());
    next_tick(&ticks);
    let before = wait_count_above(&c, 3);

    let out = c.husk(&["checkpoint", "--image-path", images_s, &c.id]);
    assert!(out.status.success(), "checkpoint: {}", stderr(&out));
    // Dumped and gone: no state, no cgroup, the count still.
    assert!(!c.husk(&["state", &c.id]).status.success());
    c.assert_no_residue();
    let saved = count(&c);
    assert!(saved >= before);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count(&c),
        saved,
        "the processes still run after the checkpoint"
    );
    let fds: Vec<String> =
        serde_json::from_slice(&std::fs::read(images.join("descriptors.json")).unwrap()).unwrap();
    assert!(fds[1].starts_with("pipe:"), "{fds:?}");

    // Restored on new pipes: the count goes on from where it was, onto the new stdout.
    let (mut restore, ticks) = with_pipes(
        &c,
        &[
            "restore",
            "-d",
            "--image-path",
            images_s,
            "--bundle",
            b,
            &c.id,
        ],
    );
    assert!(restore.wait().unwrap().success());
    assert_eq!(c.status(), "running");
    let tick = next_tick(&ticks);
    assert!(tick > saved, "tick {tick} after a checkpoint at {saved}");
    let after = wait_count_above(&c, saved);
    assert!(
        after < saved + 100,
        "the count restarted: {saved} then {after}"
    );
    // The restored container is whole: exec joins it, ps lists it, its cgroup holds it.
    let out = c.husk(&["exec", &c.id, "cat", "/tmp/count"]);
    assert!(out.status.success(), "exec: {}", stderr(&out));
    assert!(stdout(&out).trim().parse::<u64>().unwrap() > saved);
    let pid = c.state()["pid"].as_u64().unwrap();
    let ps = c.husk(&["ps", "--format", "json", &c.id]);
    assert!(stdout(&ps).contains(&pid.to_string()), "{}", stdout(&ps));
    assert!(c.husk(&["delete", "--force", &c.id]).status.success());
    c.assert_no_residue();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("criu-root"), "{mounts}");
}

#[test]
fn leave_running_and_pre_dump_keep_the_container_running() {
    if !criu_works() {
        return;
    }
    let c = counter("leave");
    let base = c.root.parent().unwrap().to_path_buf();
    let b = c.bundle.dir.to_str().unwrap();
    let (mut run, _ticks) = with_pipes(&c, &["run", "-d", "--bundle", b, &c.id]);
    assert!(run.wait().unwrap().success());
    wait_count_above(&c, 1);
    let images = base.join("images");
    let out = c.husk(&[
        "checkpoint",
        "--leave-running",
        "--image-path",
        images.to_str().unwrap(),
        &c.id,
    ]);
    assert!(out.status.success(), "checkpoint: {}", stderr(&out));
    assert!(images.join("inventory.img").exists());
    assert_eq!(c.status(), "running");
    let n = count(&c);
    wait_count_above(&c, n);

    // A pre-dump leaves it running too; a dump on top of it names it as its parent (relative
    // to the image path, as runc takes it), and restores.
    let feature = Command::new("criu")
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .is_ok_and(|o| o.status.success());
    if feature {
        let pre = base.join("pre");
        let out = c.husk(&[
            "checkpoint",
            "--pre-dump",
            "--image-path",
            pre.to_str().unwrap(),
            &c.id,
        ]);
        assert!(out.status.success(), "pre-dump: {}", stderr(&out));
        assert_eq!(c.status(), "running");
        let fin = base.join("final");
        std::fs::create_dir_all(&fin).unwrap();
        let out = c.husk(&[
            "checkpoint",
            "--image-path",
            fin.to_str().unwrap(),
            "--parent-path",
            "../pre",
            &c.id,
        ]);
        assert!(out.status.success(), "dump on a pre-dump: {}", stderr(&out));
        assert!(fin.join("parent").exists());
        let saved = count(&c);
        let (mut restore, _t) = with_pipes(
            &c,
            &[
                "restore",
                "-d",
                "--image-path",
                fin.to_str().unwrap(),
                "--bundle",
                b,
                &c.id,
            ],
        );
        assert!(restore.wait().unwrap().success());
        wait_count_above(&c, saved);
    } else {
        eprintln!("pre-dump skipped: criu lacks mem_dirty_track here");
    }

    // A parent path is relative to the image path and must exist.
    let out = c.husk(&[
        "checkpoint",
        "--image-path",
        base.join("second").to_str().unwrap(),
        "--parent-path",
        "/abs",
        &c.id,
    ]);
    assert_one_line_error(&out, &["--parent-path", "/abs"]);
    assert_eq!(c.status(), "running");
}

#[test]
fn bad_requests_fail_in_one_line_and_leave_nothing() {
    if !criu_works() {
        return;
    }
    let c = counter("bad");
    let base = c.root.parent().unwrap().to_path_buf();
    let images = base.join("images");
    // A container not started yet cannot be checkpointed.
    c.create_ok();
    let out = c.husk(&[
        "checkpoint",
        "--image-path",
        images.to_str().unwrap(),
        &c.id,
    ]);
    assert_one_line_error(&out, &["checkpoint", "created"]);
    assert_eq!(c.status(), "created");
    assert!(c.husk(&["delete", "--force", &c.id]).status.success());

    // Restoring from a directory with no checkpoint: one line, no state, no cgroup.
    std::fs::create_dir_all(&images).unwrap();
    let b = c.bundle.dir.to_str().unwrap();
    let out = c.husk(&[
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b,
        &c.id,
    ]);
    assert_one_line_error(&out, &["image-path", "no checkpoint"]);
    c.assert_no_residue();

    let out = c.husk(&["checkpoint", "--manage-cgroups-mode", "lazy", &c.id]);
    assert!(!out.status.success());
}

#[test]
fn a_failed_restore_names_criu_and_its_log_and_leaves_nothing() {
    if !criu_works() {
        return;
    }
    let c = counter("failed");
    let base = c.root.parent().unwrap().to_path_buf();
    let images = base.join("images");
    let b = c.bundle.dir.to_str().unwrap();
    let (mut run, _t) = with_pipes(&c, &["run", "-d", "--bundle", b, &c.id]);
    assert!(run.wait().unwrap().success());
    wait_count_above(&c, 1);
    let out = c.husk(&[
        "checkpoint",
        "--image-path",
        images.to_str().unwrap(),
        &c.id,
    ]);
    assert!(out.status.success(), "checkpoint: {}", stderr(&out));
    // The rootfs has lost the program the images map: criu cannot restore.
    std::fs::remove_file(c.bundle.rootfs().join("bin/busybox")).unwrap();
    let mut child = c
        .cmd(&[
            "restore",
            "-d",
            "--image-path",
            images.to_str().unwrap(),
            "--bundle",
            b,
            &c.id,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!child.wait().unwrap().success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("criu restore: exit status") && err.contains("restore.log"),
        "{err}"
    );
    c.assert_no_residue();
    assert!(!Path::new(&format!("{}/{}", c.root.display(), c.id)).exists());
}

#[test]
fn restore_without_detach_runs_the_hooks_waits_and_passes_on_the_status() {
    if !criu_works() {
        return;
    }
    let mut c = counter("attached");
    let base = c.root.parent().unwrap().to_path_buf();
    let images = base.join("images");
    let b = c.bundle.dir.to_str().unwrap().to_string();
    let b = b.as_str();
    let (mut run, _t) = with_pipes(&c, &["run", "-d", "--bundle", b, &c.id]);
    assert!(run.wait().unwrap().success());
    wait_count_above(&c, 1);
    let out = c.husk(&[
        "checkpoint",
        "--image-path",
        images.to_str().unwrap(),
        &c.id,
    ]);
    assert!(out.status.success(), "checkpoint: {}", stderr(&out));
    let saved = count(&c);

    // Restore runs the prestart and createRuntime hooks (criu calls back at setup-namespaces),
    // with the restored init's pid.
    let hook_out = base.join("hook.json");
    c.config()["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {}", hook_out.display())]
    }]});
    c.bundle.write();
    let pid_file = base.join("restored.pid");
    let (mut restore, _t) = with_pipes(
        &c,
        &[
            "restore",
            "--image-path",
            images.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
            b,
            &c.id,
        ],
    );
    wait_count_above(&c, saved);
    assert_eq!(c.status(), "running");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        pid,
        c.state()["pid"].to_string(),
        "pid file, without a newline"
    );
    let hook: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&hook_out).expect("the hook ran")).unwrap();
    assert_eq!(hook["pid"].to_string(), pid, "{hook}");
    assert_eq!(hook["id"], c.id.as_str());
    assert!(
        restore.try_wait().unwrap().is_none(),
        "restore returned while the container runs"
    );
    assert!(c.husk(&["kill", &c.id, "KILL"]).status.success());
    let status = restore.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(137),
        "the container's status: {status:?}"
    );
    c.assert_no_residue();
}

/// Not gated on criu: the refusal comes first.
#[test]
fn a_terminal_container_is_refused_in_one_line_and_leaves_nothing() {
    let mut c = counter("tty");
    c.config()["process"]["terminal"] = json!(true);
    c.bundle.write();
    let images = c.root.parent().unwrap().join("images");
    let b = c.bundle.dir.to_str().unwrap();
    let out = c.husk(&[
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b,
        &c.id,
    ]);
    assert_one_line_error(&out, &["terminal", "pty master"]);
    c.assert_no_residue();
}
