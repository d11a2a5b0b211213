//! Attacks from inside the container on the runtime itself, after runc's CVEs.

use spec_tests::*;

/// The fd numbers `ls` finds in a /proc/PID/fd directory, seen from inside the container.
fn fds(c: &Ctx, pid: &str) -> Vec<String> {
    let out = c.husk(&["exec", &c.id, "ls", &format!("/proc/{pid}/fd")]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).split_whitespace().map(String::from).collect()
}

/// CVE-2024-21626: no fd of the runtime (state dir, its lock, the sync socket, cgroup files,
/// the bundle) reaches the container's processes, neither its init nor an exec'd one, and
/// their cwd is the configured one inside the root. Checked to catch the leak by disabling
/// the close-on-exec sweep in process::prepare_fds: the init then shows fds 3 and up.
#[test]
fn no_runtime_fd_reaches_the_container_and_cwd_is_inside() {
    let mut c = Ctx::new("fdleak", &["sleep", "100"]);
    c.config()["process"]["cwd"] = json!("/tmp");
    c.bundle.write();
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    assert_eq!(fds(&c, "1"), ["0", "1", "2"], "the init's fds");
    // ls's own: stdio and the directory it reads.
    assert_eq!(
        fds(&c, "self"),
        ["0", "1", "2", "3"],
        "an exec'd process's fds"
    );
    let cwd = c.husk(&["exec", &c.id, "readlink", "/proc/1/cwd"]);
    assert_eq!(stdout(&cwd).trim(), "/tmp");
    let cwd = c.husk(&["exec", "--cwd", "/etc", &c.id, "readlink", "/proc/self/cwd"]);
    assert_eq!(stdout(&cwd).trim(), "/etc");
}

/// CVE-2019-5736: while an exec'd process is still husk's binary but already has the
/// container's credentials and capabilities (just before its execve), a process of the
/// container must not open /proc/PID/exe and so reach husk's binary on the host for writing.
/// The exec is stopped in that window (HUSK_FAULT_STOP_AFTER). Checked to catch the attack by removing the PR_SET_DUMPABLE call
/// in container/exec.rs: the attacker then prints "opened".
#[test]
fn a_container_cannot_reach_husks_binary_through_an_exec() {
    let c = Ctx::new("cve5736", &["sleep", "100"]);
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    let mut victim = c
        .cmd(&["exec", &c.id, "true"])
        .env("HUSK_FAULT_STOP_AFTER", "exec child about to exec")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The stopped child: a husk process in state T, in the container's cgroup.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stopped = loop {
        let found = pids().into_iter().find(|pid| {
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            proc_state(*pid) == Some('T') && cgroup.contains(&c.id)
        });
        if let Some(pid) = found {
            break pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the exec never stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    // husk's argv holds "--root"; the script spells it so that its own argv does not.
    let attack =
        "for p in /proc/[0-9]*; do grep -q -- --ro\"\"ot $p/cmdline 2>/dev/null || continue; \
                  echo victim $p; cat $p/exe > /dev/null 2>&1 && echo opened $p/exe; done; true";
    let out = c.husk(&["exec", &c.id, "sh", "-c", attack]);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(stopped as i32),
        nix::sys::signal::SIGKILL,
    );
    let _ = victim.kill();
    let _ = victim.wait();
    let text = stdout(&out);
    assert!(
        text.contains("victim"),
        "the attacker must see the stopped exec: {text}{}",
        stderr(&out)
    );
    assert!(
        !text.contains("opened"),
        "husk's binary was reachable: {text}"
    );
}

/// CVE-2021-30465 / CVE-2023-27561: a mount destination swapped for a symlink after husk
/// resolved it (a container sharing a volume with this one can race that) must not carry the
/// mount out of the rootfs. The swap is made while init is stopped between resolving and
/// mounting (HUSK_FAULT_STOP_AFTER). Checked to catch the attack by mounting on the resolved
/// path instead of the fd in rootfs::mounts::mount_entry: create then succeeded and the tmpfs
/// landed on the symlink's target outside the rootfs.
#[test]
fn a_mount_destination_swapped_for_a_symlink_is_refused() {
    let mut c = Ctx::new("mntrace", &["true"]);
    let outside = c.root.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let data = c.bundle.rootfs().join("data");
    std::fs::create_dir_all(&data).unwrap();
    c.config()["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}));
    c.bundle.write();
    let b = c.bundle.dir.to_string_lossy().into_owned();
    // A file, not a pipe: a created container's init holds its stdio open.
    let err_path = c.root.parent().unwrap().join("create.err");
    let mut child = c
        .cmd(&["create", "--bundle", &b, &c.id])
        .env("HUSK_FAULT_STOP_AFTER", "resolve mount /data")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let init = wait_for_stopped(&c.id);
    std::fs::remove_dir(&data).unwrap();
    std::os::unix::fs::symlink(&outside, &data).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    let inside = c.husk(&["exec", &c.id, "grep", " /data ", "/proc/self/mountinfo"]);
    assert!(
        !status.success(),
        "create went on; /data in the container: {:?}",
        stdout(&inside)
    );
    assert!(
        err.lines().count() == 1 && err.contains("/data") && err.contains("ELOOP"),
        "{err}"
    );
    c.assert_no_residue();
}

/// Creates the container with init held at `fault`, runs `attack` on init's pid meanwhile,
/// and returns create's exit status and stderr.
fn create_attacked(
    c: &Ctx,
    extra: &[&str],
    fault: &str,
    attack: impl FnOnce(u32),
) -> (bool, String) {
    let b = c.bundle.dir.to_string_lossy().into_owned();
    // A file, not a pipe: a created container's init holds its stdio open.
    let err_path = c
        .root
        .parent()
        .unwrap()
        .join(format!("create-{}.err", fault.replace(' ', "-")));
    let mut args = vec!["create", "--bundle", &b];
    args.extend_from_slice(extra);
    args.push(&c.id);
    let mut child = c
        .cmd(&args)
        .env("HUSK_FAULT_STOP_AFTER", fault)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let init = wait_for_stopped(&c.id);
    attack(init);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    (
        status.success(),
        std::fs::read_to_string(&err_path).unwrap(),
    )
}

/// CVE-2025-31133: /dev/null replaced by a symlink (to a procfs file) before the masked paths
/// are bound: masking with it would expose that file where /proc/kcore was hidden. Checked to
/// catch the attack with the old mask_path (a bind of the path "/dev/null"): create went on.
#[test]
fn masking_with_a_swapped_dev_null_is_refused() {
    let c = Ctx::new("nullswap", &["sleep", "100"]);
    let (ok, err) = create_attacked(&c, &[], "finalize rootfs", |init| {
        let null = format!("/proc/{init}/root/dev/null");
        std::fs::remove_file(&null).unwrap();
        std::os::unix::fs::symlink("/proc/sys/kernel/hostname", &null).unwrap();
    });
    assert!(!ok, "create went on");
    assert!(
        err.lines().count() == 1 && err.contains("/dev/null") && err.contains("maskedPaths"),
        "{err}"
    );
    c.assert_no_residue();
}

/// CVE-2025-52565: /dev/console replaced by a symlink before the terminal is bound on it.
/// Checked to catch the attack with the old mount_console (a bind on the path): create went
/// on with the pty bound over the symlink's target.
#[test]
fn a_swapped_dev_console_is_refused() {
    let mut c = Ctx::new("consoleswap", &["sleep", "100"]);
    c.config()["process"]["terminal"] = json!(true);
    c.bundle.write();
    let sock = c.root.parent().unwrap().join("console.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let sock = sock.to_string_lossy().into_owned();
    let (ok, err) = create_attacked(&c, &["--console-socket", &sock], "bind console", |init| {
        let console = format!("/proc/{init}/root/dev/console");
        let _ = std::fs::remove_file(&console);
        std::os::unix::fs::symlink("/proc/sys/kernel/hostname", &console).unwrap();
    });
    assert!(!ok, "create went on");
    assert!(
        err.lines().count() == 1 && err.contains("/dev/console"),
        "{err}"
    );
    c.assert_no_residue();
}

/// CVE-2025-52881: a bind mount put over a /proc/sys file (here from inside the container's
/// mount namespace, as a racing process sharing it could) must not redirect a sysctl write.
/// Checked to catch the attack with the old apply_sysctl (a write to the path): create went
/// on and the value landed in the file bound there.
#[test]
fn a_sysctl_write_is_not_redirected_by_a_bind_mount() {
    let mut c = Ctx::new("sysctlbind", &["sleep", "100"]);
    c.config()["linux"]["sysctl"] = json!({"kernel.domainname": "attacked"});
    c.bundle.write();
    let trap = c.bundle.rootfs().join("tmp/trap");
    std::fs::create_dir_all(trap.parent().unwrap()).unwrap();
    std::fs::write(&trap, "").unwrap();
    let (ok, err) = create_attacked(&c, &[], "apply sysctl", |init| {
        let out = std::process::Command::new("nsenter")
            .args([
                "-t",
                &init.to_string(),
                "-m",
                "mount",
                "--bind",
                "/tmp/trap",
            ])
            .arg("/proc/sys/kernel/domainname")
            .output()
            .unwrap();
        assert!(out.status.success(), "nsenter mount: {}", stderr(&out));
    });
    assert!(!ok, "create went on");
    assert_eq!(
        std::fs::read_to_string(&trap).unwrap(),
        "",
        "the write was redirected"
    );
    assert!(
        err.lines().count() == 1 && err.contains("kernel.domainname") && err.contains("EXDEV"),
        "{err}"
    );
    c.assert_no_residue();
}
