//! linux.seccomp: actions, errno values, argument conditions, and a NOTIFY listener handed to
//! an agent — each seen from inside a container.

use std::os::unix::net::UnixListener;

use spec_tests::*;

fn with_profile(name: &str, script: &str, profile: Value) -> Ctx {
    let mut c = Ctx::new(name, &["sh", "-c", script]);
    c.config()["root"]["readonly"] = json!(false);
    c.config()["linux"]["seccomp"] = profile;
    c
}

#[test]
fn errno_action_with_errno_ret_and_argument_conditions() {
    let c = with_profile(
        "errno",
        "mkdir /tmp/x 2>&1; kill -USR1 $$ 2>&1; kill -0 $$ && echo probe-ok",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}
            ]
        }),
    );
    let out = c.run_ok();
    assert!(out.contains("No such device or address"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.ends_with("probe-ok\n"), "{out}");
}

/// Every x86-64 syscall name the kernel headers know.
fn all_syscalls() -> Vec<String> {
    let h = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
        .expect("linux-libc-dev headers");
    h.lines()
        .filter_map(|l| l.strip_prefix("#define __NR_"))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[test]
fn default_errno_ret_applies_to_everything_not_allowed() {
    let allowed: Vec<String> = all_syscalls()
        .into_iter()
        .filter(|n| n != "mkdir" && n != "mkdirat")
        .collect();
    let c = with_profile(
        "defaulterrno",
        "echo start; mkdir /tmp/y 2>&1; echo done",
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 6, "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}),
    );
    let out = c.run_ok();
    assert!(
        out.starts_with("start\n")
            && out.contains("No such device or address")
            && out.ends_with("done\n"),
        "{out}"
    );
}

#[test]
fn kill_process_action_kills_with_sigsys() {
    let c = with_profile(
        "kill",
        "mkdir /tmp/z; echo status=$?",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]}),
    );
    // The mkdir child dies by SIGSYS (31): the shell reports 128+31.
    assert_eq!(c.run_ok(), "status=159\n");
}

#[test]
fn filter_applies_to_exec_too() {
    let c = with_profile(
        "execfilter",
        "sleep 100",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6}]}),
    );
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    let out = c.husk(&[
        "exec",
        &c.id,
        "sh",
        "-c",
        "mkdir /tmp/e 2>&1; grep Seccomp: /proc/self/status",
    ]);
    let text = stdout(&out);
    assert!(
        text.contains("No such device or address") && text.contains("Seccomp:\t2"),
        "{text}"
    );
}

#[test]
fn notify_listener_reaches_the_agent_with_state_and_metadata() {
    let mut c = with_profile("notify", "mkdir /tmp/n 2>&1; echo done", json!(null));
    let sock = c.root.parent().unwrap().join("agent.sock");
    std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
    let listener = UnixListener::bind(&sock).unwrap();
    c.config()["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "meta-42",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (bytes, mut fds) = recv_with_fds(&conn);
        let fd = (!fds.is_empty()).then(|| fds.remove(0));
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        // Closing the listener makes the notified syscall fail with ENOSYS.
        drop(fd.expect("listener fd"));
        v
    });
    let out = c.run_ok();
    let v = agent.join().unwrap();
    assert_eq!(v["metadata"], "meta-42");
    assert_eq!(v["fds"], json!(["seccompFd"]));
    assert_eq!(v["state"]["id"], c.id.as_str());
    assert!(v["pid"].as_i64().unwrap() > 0);
    assert!(
        out.contains("Function not implemented") && out.ends_with("done\n"),
        "{out}"
    );
}

#[test]
fn bad_profile_fails_create_cleanly() {
    let c = with_profile(
        "badprofile",
        "true",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
    );
    let out = c.create();
    assert_one_line_error(&out, &["seccomp", "index 9"]);
    c.assert_no_residue();
}

#[test]
fn conditions_on_one_argument_are_alternatives() {
    // runc reads several conditions on the same argument as "any of" (they could never all hold).
    let c = with_profile(
        "samearg",
        "kill -USR1 $$ 2>&1; kill -USR2 $$ 2>&1; kill -0 $$ && echo probe-ok",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6, "args": [
            {"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 12, "op": "SCMP_CMP_EQ"}]}]}),
    );
    let out = c.run_ok();
    assert_eq!(out.matches("No such device or address").count(), 2, "{out}");
    assert!(out.ends_with("probe-ok\n"), "{out}");
}

#[test]
fn notify_on_write_is_refused() {
    let c = with_profile(
        "notifywrite",
        "true",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/tmp/none.sock", "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert_one_line_error(
        &c.create(),
        &["SCMP_ACT_NOTIFY cannot be used for the write syscall"],
    );
    c.assert_no_residue();
}

/// A profile written before close_range existed (runtime-tools' default among them) denies
/// it; without noNewPrivileges the filter is loaded early, so husk must have marked its fds
/// close-on-exec before that, not after (it failed every such container with EPERM).
#[test]
fn a_profile_that_denies_close_range_still_starts() {
    let mut c = with_profile(
        "noclose",
        "echo started",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]
        }),
    );
    c.config()["process"]["noNewPrivileges"] = json!(false);
    assert_eq!(c.run_ok(), "started\n");
    // And no runtime fd reached it: only stdio is open in the container.
    c.config()["process"]["args"] = json!(["ls", "/proc/self/fd"]);
    assert_eq!(c.run_ok(), "0\n1\n2\n3\n");
}
