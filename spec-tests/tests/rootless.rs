//! Rootless: husk run by an ordinary user, with `spec --rootless`'s config: a user namespace
//! mapping the user to root, state under $XDG_RUNTIME_DIR, no cgroup where none is delegated.

use std::process::Command;

use spec_tests::*;

/// Runs husk as `nobody` with its own runtime dir. Output goes through files: a created
/// container's init keeps its stdio open.
fn as_nobody(c: &Ctx, xdg: &std::path::Path, args: &[&str]) -> std::process::Output {
    let base = c.root.parent().unwrap();
    let (out, err) = (base.join("out"), base.join("err"));
    let status = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(husk_bin())
        .args(args)
        .env("XDG_RUNTIME_DIR", xdg)
        .current_dir(&c.bundle.dir)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    std::process::Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

#[test]
fn an_ordinary_user_runs_a_container() {
    // util-linux's setpriv; the cgroup v2 VM has only busybox's, which cannot switch user.
    let switch = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "true",
        ])
        .output();
    if !switch.is_ok_and(|o| o.status.success()) {
        return eprintln!("skipped: no setpriv that switches user");
    }
    let mut c = Ctx::new("rootless", &["true"]);
    let xdg = c.root.parent().unwrap().join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    std::os::unix::fs::chown(&xdg, Some(65534), Some(65534)).unwrap();
    // The user must be able to reach the bundle (the spec-tests make it as root).
    for d in [c.root.parent().unwrap(), &c.bundle.dir] {
        std::os::unix::fs::chown(d, Some(65534), Some(65534)).unwrap();
    }
    std::fs::remove_file(c.bundle.dir.join("config.json")).unwrap();
    let out = as_nobody(&c, &xdg, &["spec", "--rootless"]);
    assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.bundle.dir.join("config.json")).unwrap()).unwrap();
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", "cat /proc/self/uid_map; id -u; sleep 100"]);
    config["root"]["path"] = json!("rootfs");
    *c.config() = config;
    c.bundle.write();

    let id = c.id.clone();
    let out = as_nobody(&c, &xdg, &["create", &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    // Where no cgroup is delegated, one warning line says so.
    assert!(stderr(&out).lines().count() <= 1, "{}", stderr(&out));
    assert!(xdg.join("husk").join(&id).join("state.json").exists());
    let list = as_nobody(&c, &xdg, &["list", "-q"]);
    assert_eq!(stdout(&list).trim(), id);
    let out = as_nobody(&c, &xdg, &["start", &id]);
    assert!(out.status.success(), "start: {}", stderr(&out));
    let out = as_nobody(
        &c,
        &xdg,
        &["exec", &id, "sh", "-c", "cat /proc/1/uid_map; id -u"],
    );
    let words: Vec<String> = stdout(&out).split_whitespace().map(String::from).collect();
    assert_eq!(words, ["0", "65534", "1", "0"], "{}", stderr(&out));
    let state = as_nobody(&c, &xdg, &["state", &id]);
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    let pid = state["pid"].as_u64().unwrap() as u32;
    let out = as_nobody(&c, &xdg, &["delete", "--force", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    assert!(!xdg.join("husk").join(&id).exists(), "state left");
    // No cgroup to look in: the init it ran is gone (a zombie at most: this machine's
    // pid 1 reaps late).
    assert!(
        proc_state(pid).is_none_or(|s| s == 'Z'),
        "init {pid} still runs"
    );
}
