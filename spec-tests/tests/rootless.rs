//! Rootless: husk run by an ordinary user, with `spec --rootless`'s config: a user namespace
//! mapping the user to root, state under $XDG_RUNTIME_DIR, no cgroup where none is delegated.

use std::process::Command;

use spec_tests::*;

/// Runs husk as `nobody` with its own runtime dir. Output goes through files: a created
/// container's init keeps its stdio open.
fn as_nobody(c: &Ctx, xdg: &std::path::Path, args: &[&str]) -> std::process::Output {
    output_via_files(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(husk_bin())
            .args(args)
            .env("XDG_RUNTIME_DIR", xdg)
            .current_dir(&c.bundle.dir),
        c.root.parent().unwrap(),
    )
}

/// A v2 subtree handed to nobody as systemd hands one over (the directories and the files
/// that move processes and enable controllers), with a `runner` cgroup inside it: v2 allows
/// no process where controllers are handed on, so what runs as nobody starts there.
fn delegate(top: &std::path::Path) -> std::path::PathBuf {
    let runner = top.join("runner");
    std::fs::create_dir_all(&runner).unwrap();
    for d in [top, &runner] {
        for f in [
            "",
            "cgroup.procs",
            "cgroup.subtree_control",
            "cgroup.threads",
        ] {
            std::os::unix::fs::chown(d.join(f), Some(65534), Some(65534)).unwrap();
        }
    }
    runner
}

/// util-linux's setpriv by path: busybox's sh runs its own applet, which cannot switch user.
fn setpriv() -> std::path::PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join("setpriv"))
        .find(|p| p.exists())
        .unwrap()
}

/// `sh -c` that moves itself into `cgroup`, then execs `cmd` as nobody; stdout and stderr
/// through files (a container's init may hold them).
fn in_cgroup_as_nobody(
    c: &Ctx,
    xdg: &std::path::Path,
    cgroup: &std::path::Path,
    cmd: &str,
) -> (bool, String, String) {
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec {} --reuid=65534 --regid=65534 --clear-groups -- {cmd}",
        cgroup.display(),
        setpriv().display(),
    );
    let out = output_via_files(
        Command::new("sh")
            .args(["-c", &script])
            .env("XDG_RUNTIME_DIR", xdg)
            .current_dir(&c.bundle.dir),
        c.root.parent().unwrap(),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A bundle from `spec --rootless`, written by nobody, running `args`; None (the test skips)
/// where no setpriv can switch user.
fn rootless_bundle(name: &str, args: &[&str]) -> Option<(Ctx, std::path::PathBuf)> {
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
        eprintln!("skipped: no setpriv that switches user");
        return None;
    }
    let mut c = Ctx::new(name, &["true"]);
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
    config["process"]["args"] = json!(args);
    config["root"]["path"] = json!("rootfs");
    *c.config() = config;
    c.bundle.write();
    Some((c, xdg))
}

/// Several id ranges for an ordinary user: husk hands them to newuidmap/newgidmap, which
/// check /etc/subuid and /etc/subgid (this test grants nobody a range there for its run).
#[test]
fn several_id_ranges_go_through_newuidmap() {
    if Command::new("newuidmap").output().is_err() {
        return eprintln!("skipped: no newuidmap (package uidmap)");
    }
    let Some((mut c, xdg)) = rootless_bundle(
        "subids",
        &["cat", "/proc/self/uid_map", "/proc/self/gid_map"],
    ) else {
        return;
    };
    let grant = "nobody:300000:1000\n";
    let _granted: Vec<Granted> = ["/etc/subuid", "/etc/subgid"]
        .iter()
        .map(|f| Granted::add(f, grant))
        .collect();
    let map = json!([{"containerID": 0, "hostID": 65534, "size": 1},
                     {"containerID": 1, "hostID": 300000, "size": 1000}]);
    c.config()["linux"]["uidMappings"] = map.clone();
    c.config()["linux"]["gidMappings"] = map;
    c.bundle.write();
    let out = as_nobody(&c, &xdg, &["run", &c.id.clone()]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let words: Vec<String> = stdout(&out).split_whitespace().map(String::from).collect();
    assert_eq!(
        words,
        ["0", "65534", "1", "1", "300000", "1000", "0", "65534", "1", "1", "300000", "1000"],
        "{}",
        stdout(&out)
    );
    assert!(!xdg.join("husk").join(&c.id).exists(), "state left");
}

/// A line added to a file for a test, taken out again when dropped.
struct Granted {
    file: &'static str,
    line: &'static str,
}

impl Granted {
    fn add(file: &'static str, line: &'static str) -> Granted {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        std::fs::write(file, format!("{text}{line}")).unwrap();
        Granted { file, line }
    }
}

impl Drop for Granted {
    fn drop(&mut self) {
        let text = std::fs::read_to_string(self.file).unwrap_or_default();
        let _ = std::fs::write(self.file, text.replacen(self.line, "", 1));
    }
}

#[test]
fn an_ordinary_user_runs_a_container() {
    let Some((c, xdg)) = rootless_bundle(
        "rootless",
        &["sh", "-c", "cat /proc/self/uid_map; id -u; sleep 100"],
    ) else {
        return;
    };
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

/// cgroup v2 with a delegated subtree (what systemd gives a user with Delegate=yes): the
/// ordinary user's container gets its limits there, without a warning. Runs on v2 hosts (the
/// VM); on v1 a user has no delegation and the test skips.
#[test]
fn a_delegated_v2_subtree_takes_the_limits() {
    if !cgroup_v2() {
        return eprintln!("skipped: cgroup v2 only");
    }
    let Some((mut c, xdg)) = rootless_bundle(
        "delegated",
        &[
            "cat",
            "/sys/fs/cgroup/pids.max",
            "/sys/fs/cgroup/memory.max",
        ],
    ) else {
        return;
    };
    let top = std::path::PathBuf::from(format!("/sys/fs/cgroup/husk-deleg-{}", c.id));
    let runner = delegate(&top);
    let _cleanup = RemoveOnDrop(vec![runner.clone(), top.clone()]);
    c.config()["linux"]["cgroupsPath"] = json!(format!("/husk-deleg-{}/c", c.id));
    c.config()["linux"]["resources"] =
        json!({"pids": {"limit": 42}, "memory": {"limit": 67108864}});
    c.bundle.write();
    let run = format!("{} run {}", husk_bin().display(), c.id);
    let (ok, out, err) = in_cgroup_as_nobody(&c, &xdg, &runner, &run);
    assert!(ok, "run: {err}");
    assert_eq!(out, "42\n67108864\n", "{err}");
    assert_eq!(err, "", "a delegated subtree needs no warning");
    assert!(!top.join("c").exists(), "the container's cgroup is left");
}

/// Directories removed (rmdir, in order) when dropped.
struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Rootless podman on a systemd host: husk as an ordinary user with --systemd-cgroup asks the
/// user's own service manager for the scope. A `systemd --user` runs as nobody in a delegated
/// subtree (as user@.service would), and the container's limits land in a scope of its
/// user.slice. Runs where systemd is PID 1 (hack/vm.sh --systemd).
#[test]
fn systemd_user_manager_gives_a_rootless_container_its_scope() {
    let sd = std::path::Path::new("/run/systemd/system").exists();
    assert!(
        sd || std::env::var_os("HUSK_EXPECT_SYSTEMD").is_none(),
        "HUSK_EXPECT_SYSTEMD is set but systemd is not running"
    );
    if !sd || !cgroup_v2() {
        return eprintln!("skipped: needs systemd on cgroup v2");
    }
    let Some((mut c, xdg)) = rootless_bundle("sduser", &["cat", "/sys/fs/cgroup/pids.max"]) else {
        return;
    };
    let top = std::path::PathBuf::from(format!("/sys/fs/cgroup/husk-user-{}", c.id));
    let runner = delegate(&top);
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    // The user's manager, in the delegated subtree's root; it moves itself to init.scope.
    let log_path = c.root.parent().unwrap().join("manager.log");
    let manager_log = std::fs::File::create(&log_path).unwrap();
    let mut manager = Command::new("sh")
        .args([
            "-c",
            &format!(
                "echo $$ > {}/cgroup.procs && exec {} --reuid=65534 --regid=65534 --clear-groups -- /lib/systemd/systemd --user",
                top.display(),
                setpriv().display()
            ),
        ])
        .env("XDG_RUNTIME_DIR", &xdg)
        .env("HOME", "/tmp")
        .env("SYSTEMD_LOG_TARGET", "console")
        .env("SYSTEMD_LOG_LEVEL", "debug")
        .stdout(manager_log.try_clone().unwrap())
        .stderr(manager_log)
        .spawn()
        .unwrap();
    let _cleanup = KillOnDrop(manager.id(), vec![runner.clone(), top.clone()]);
    let private = xdg.join("systemd/private");
    for _ in 0..300 {
        if private.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(private.exists(), "no user manager: {}", log());

    c.config()["linux"]["cgroupsPath"] = json!(format!(":husk:{}", c.id));
    c.config()["linux"]["resources"] = json!({"pids": {"limit": 42}});
    c.bundle.write();
    let run = format!("{} --systemd-cgroup run {}", husk_bin().display(), c.id);
    let (ok, out, err) = in_cgroup_as_nobody(&c, &xdg, &runner, &run);
    assert!(
        ok,
        "run: {err}\nmanager ({:?}): {}",
        manager.try_wait(),
        log()
    );
    assert_eq!(out, "42\n", "{err}");
    assert_eq!(err, "", "no warning");
    let scope = top.join(format!("user.slice/husk-{}.scope", c.id));
    assert!(!scope.exists(), "the scope's cgroup is left");
    let _ = manager.kill();
    let _ = manager.wait();
}

/// Kills a process and removes directories (children first) when dropped.
struct KillOnDrop(u32, Vec<std::path::PathBuf>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .status();
        std::thread::sleep(std::time::Duration::from_millis(200));
        for d in &self.1 {
            // The manager's own cgroups (init.scope, slices) go first, deepest first.
            let mut all: Vec<std::path::PathBuf> = walk(d);
            all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for p in all {
                let _ = std::fs::remove_dir(p);
            }
        }
    }
}

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![d.to_path_buf()];
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&e.path()));
        }
    }
    out
}

/// `--systemd-cgroup` for an ordinary user where cgroups are v1 (no delegation to users): the
/// container runs without a cgroup, after one warning line, as with runc.
#[test]
fn systemd_cgroup_on_v1_runs_rootless_without_a_cgroup() {
    if cgroup_v2() {
        return eprintln!("skipped: cgroup v1 only");
    }
    let Some((mut c, xdg)) = rootless_bundle("sdv1", &["id", "-u"]) else {
        return;
    };
    // podman's form: a systemd path, which the cgroupfs driver could not take.
    c.config()["linux"]["cgroupsPath"] = json!(format!("user.slice:libpod:{}", c.id));
    c.bundle.write();
    let out = as_nobody(&c, &xdg, &["--systemd-cgroup", "run", &c.id.clone()]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    assert_eq!(stdout(&out), "0\n");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no cgroup"), "{err}");
}
