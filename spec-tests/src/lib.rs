//! Test support for husk's spec-tests: busybox bundles, a private `--root` per test, and checks
//! that nothing is left behind.
//!
//! Every test runs the real `husk` binary (built by `cargo build`, or `$HUSK`) on a real
//! container, and needs root and Debian's busybox-static.

pub mod containerd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub use serde_json::{json, Value};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn husk_bin() -> PathBuf {
    if let Ok(p) = std::env::var("HUSK") {
        return PathBuf::from(p);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("../target"));
    target.join("debug/husk")
}

/// Runs `cmd` to its end with stdout and stderr in files under `dir`, and returns both:
/// a pipe would stay open as long as any container process the command leaves behind
/// (a created container's init holds its stdio), and `output()` would wait for that.
pub fn output_via_files(cmd: &mut Command, dir: &Path) -> Output {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    std::fs::create_dir_all(dir).unwrap();
    let (o, e) = (dir.join(format!("out.{n}")), dir.join(format!("err.{n}")));
    let status = cmd
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .status()
        .unwrap_or_else(|err| panic!("run {:?}: {err}", cmd.get_program()));
    let out = Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    };
    let _ = std::fs::remove_file(o);
    let _ = std::fs::remove_file(e);
    out
}

/// Lazily unmounts whatever a daemon left mounted below `dir` (one that had to be killed),
/// the last mounted first.
pub fn detach_mounts_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut ours: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&*dir.to_string_lossy()))
        .collect();
    ours.reverse();
    for m in ours {
        let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `systemctl show -p PROP --value UNIT`: what systemd itself says, not husk's D-Bus code.
pub fn systemctl_show(unit: &str, prop: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", prop, "--value", unit])
        .output()
        .expect("run systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox not found: apt-get install busybox-static");
}

/// A bundle with a busybox rootfs and the config of `husk spec`, terminal off.
pub struct Bundle {
    pub dir: PathBuf,
    pub config: Value,
}

/// A private state root and a bundle; every container in the root is deleted on drop.
pub struct Ctx {
    pub root: PathBuf,
    pub bundle: Bundle,
    pub id: String,
}

impl Bundle {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn write(&self) {
        std::fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }
}

pub fn make_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["dev", "proc", "sys", "tmp", "etc", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(busybox(), bin.join("busybox")).unwrap();
    let list = Command::new(busybox()).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

impl Ctx {
    /// A fresh bundle whose process runs `args`.
    pub fn new(name: &str, args: &[&str]) -> Ctx {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base =
            std::env::temp_dir().join(format!("husk-spec-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("bundle");
        let root = base.join("root");
        make_rootfs(&dir.join("rootfs"));
        let out = Command::new(husk_bin())
            .args(["spec", "--bundle"])
            .arg(&dir)
            .output()
            .expect("run husk spec");
        assert!(
            out.status.success(),
            "husk spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        let id = format!("t{}-{n}-{name}", std::process::id());
        let ctx = Ctx {
            root,
            bundle: Bundle { dir, config },
            id,
        };
        ctx.bundle.write();
        ctx
    }

    pub fn config(&mut self) -> &mut Value {
        &mut self.bundle.config
    }

    /// `husk --root R ARGS…`, waiting for husk itself. Its output goes through files, not
    /// pipes: a container it leaves running keeps its stdio open for long after husk exits.
    pub fn husk(&self, args: &[&str]) -> Output {
        output_via_files(
            self.cmd(args).stdin(Stdio::null()),
            self.root.parent().unwrap(),
        )
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(husk_bin());
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Writes the config and runs the container in the foreground.
    pub fn run(&self) -> Output {
        self.bundle.write();
        let b = self.bundle.dir.to_string_lossy().to_string();
        self.husk(&["run", "--bundle", &b, &self.id])
    }

    /// Runs the container and returns its stdout, asserting success.
    pub fn run_ok(&self) -> String {
        let out = self.run();
        assert!(
            out.status.success(),
            "husk run failed ({:?}): {}{}",
            out.status,
            stderr(&out),
            stdout(&out)
        );
        stdout(&out)
    }

    pub fn create(&self) -> Output {
        self.bundle.write();
        let b = self.bundle.dir.to_string_lossy().to_string();
        self.husk(&["create", "--bundle", &b, &self.id])
    }

    pub fn create_ok(&self) {
        let out = self.create();
        assert!(out.status.success(), "husk create failed: {}", stderr(&out));
    }

    pub fn state(&self) -> Value {
        let out = self.husk(&["state", &self.id]);
        assert!(out.status.success(), "husk state: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap().to_string()
    }

    /// Waits until the container reports `want` (its init may be reaped late).
    pub fn wait_status(&self, want: &str) {
        for _ in 0..500 {
            if self.status() == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!(
            "container {} never became {want}: {}",
            self.id,
            self.status()
        );
    }

    /// Asserts husk left nothing of this container: no state dir, no cgroup in any hierarchy.
    pub fn assert_no_residue(&self) {
        assert!(
            !self.root.join(&self.id).exists(),
            "state dir of {} left behind",
            self.id
        );
        let found = find_dirs_named(Path::new("/sys/fs/cgroup"), &self.id, 6);
        assert!(
            found.is_empty(),
            "cgroups of {} left behind: {found:?}",
            self.id
        );
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = self.husk(&["delete", "--force", &self.id]);
        // Tests that make more containers in this root (ID-suffix) may have failed before
        // deleting them: whatever is left goes too, so a failed test leaves no cgroup.
        for e in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(id) = e.file_name().to_str() {
                let _ = self.husk(&["delete", "--force", id]);
            }
        }
        if let Some(base) = self.root.parent() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

pub fn find_dirs_named(dir: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if e.file_name() == name {
            out.push(e.path());
        } else if depth > 0 {
            out.extend(find_dirs_named(&e.path(), name, depth - 1));
        }
    }
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failed command printed exactly one line containing every piece of `want`.
pub fn assert_one_line_error(o: &Output, want: &[&str]) {
    assert_one_line_error_code(o, 1, want)
}

/// As `assert_one_line_error`, with the exit status expected (`exec` fails with 255, as runc).
pub fn assert_one_line_error_code(o: &Output, code: i32, want: &[&str]) {
    assert!(
        !o.status.success(),
        "expected failure, got success: {}",
        stdout(o)
    );
    assert_eq!(o.status.code(), Some(code), "exit status: {}", stderr(o));
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "want one error line, got: {err}");
    for w in want {
        assert!(
            lines[0].contains(w),
            "error line {:?} lacks {w:?}",
            lines[0]
        );
    }
}

/// A field of /proc/self/status as the container prints it (`grep Field /proc/self/status`).
pub fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} not in {out}"))
        .trim()
        .to_string()
}

/// One message from a unix socket and the fds it carries (SCM_RIGHTS), as a console-socket
/// reader or a seccomp agent receives them.
pub fn recv_with_fds(
    conn: &std::os::unix::net::UnixStream,
) -> (Vec<u8>, Vec<std::os::fd::OwnedFd>) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut buf = vec![0u8; 8192];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    let mut fds = Vec::new();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(f) = c {
            // SAFETY (test): the kernel installed these fds in our table for us.
            fds.extend(
                f.into_iter()
                    .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let n = msg.bytes;
    buf.truncate(n);
    (buf, fds)
}

/// The pids of all processes.
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// A process's state letter from /proc/PID/stat (R, S, T, Z…).
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// A process's arguments as one string, NULs kept.
pub fn cmdline(pid: u32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .into_owned()
}

/// Processes in a cgroup of container `id` whose state passes `keep`.
pub fn processes_of(id: &str, keep: impl Fn(char) -> bool) -> Vec<u32> {
    pids()
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cgroup")).is_ok_and(|c| c.contains(id))
                && proc_state(*p).is_some_and(&keep)
        })
        .collect()
}

/// Waits for a process of container `id` to stop itself (HUSK_FAULT_STOP_AFTER), and
/// returns its pid.
pub fn wait_for_stopped(id: &str) -> u32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // A pid namespace's init cannot stop itself: it waits under this name instead.
        let waiting = |p: &u32| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim_end() == "husk:stopped")
        };
        if let Some(p) = processes_of(id, |st| st == 'T' || st == 'S')
            .into_iter()
            .find(|p| proc_state(*p) == Some('T') || waiting(p))
        {
            return p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no process of {id} stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Runs a container with id-mapped mounts; None (the test skips) where the filesystem of the
/// test's directory cannot be id-mapped (tmpfs before Linux 6.3: the cgroup v2 VM).
pub fn run_idmapped(c: &Ctx) -> Option<String> {
    let out = c.run();
    let err = stderr(&out);
    if !out.status.success() && err.contains("id-map") && err.contains("EINVAL") {
        eprintln!("skipped: no id-mapped mounts here: {err}");
        return None;
    }
    assert!(out.status.success(), "husk run: {err}");
    Some(stdout(&out))
}

/// The length of a soak test: HUSK_SOAK, or `default` (CI's short run).
pub fn soak_rounds(default: usize) -> usize {
    std::env::var("HUSK_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether /sys/fs/cgroup is the unified (v2) hierarchy.
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Shell that prints, from inside a container, its memory limit, pids limit and cpu weight
/// (v2) or shares (v1), one per line.
pub fn limits_probe() -> &'static str {
    if cgroup_v2() {
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.weight"
    } else {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.shares"
    }
}

/// Removes the cgroup `rel` (a path below each hierarchy's root) and its parents up to the
/// root, where empty, in every hierarchy. For the parents clients put their containers under
/// (containerd's namespace, podman's libpod_parent): the first container's runtime makes one,
/// and, as with runc, nothing removes it while other containers may still be inside.
pub fn remove_empty_cgroups(rel: &str) {
    let roots: Vec<PathBuf> = if cgroup_v2() {
        vec![PathBuf::from("/sys/fs/cgroup")]
    } else {
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    for root in roots {
        let mut dir = root.join(rel.trim_start_matches('/'));
        while dir.starts_with(&root) && dir != root {
            if std::fs::remove_dir(&dir).is_err() && dir.exists() {
                break;
            }
            dir.pop();
        }
    }
}

/// Whether `criu check` passes here; with HUSK_EXPECT_CRIU set (the v2 VM) it must.
pub fn criu_works() -> bool {
    let ok = Command::new("criu")
        .arg("check")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok && std::env::var_os("HUSK_EXPECT_CRIU").is_some() {
        panic!("HUSK_EXPECT_CRIU is set but `criu check` fails");
    }
    if !ok {
        eprintln!("skipped: `criu check` fails on this kernel");
    }
    ok
}
