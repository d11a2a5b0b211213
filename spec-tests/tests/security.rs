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
