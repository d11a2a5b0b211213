//! Docker with husk as a runtime (`dockerd --add-runtime husk=…`, `docker run --runtime husk`):
//! a private dockerd (its own data and exec roots and socket, no bridge or iptables) behind
//! containerd's Go runc shim with husk as its binary, as Docker users would run it. Docker's
//! configs have their own habits (a 0 for every limit it leaves alone, its seccomp profile).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use spec_tests::*;

struct Docker {
    dir: PathBuf,
    daemon: Child,
}

impl Docker {
    fn new(name: &str) -> Option<Docker> {
        // hack/test.sh installs docker.io; the VMs have none.
        if Command::new("dockerd").arg("--version").output().is_err() {
            eprintln!("skipped: no dockerd");
            return None;
        }
        let dir = PathBuf::from(format!("/tmp/husk-docker-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let daemon = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("d.sock").display()))
            .args(["--bridge", "none", "--iptables=false", "--ip-masq=false"])
            .arg("--add-runtime")
            .arg(format!("husk={}", husk_bin().display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Docker { dir, daemon };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.run(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "dockerd did not start: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The busybox rootfs as an image: `docker import` of its tarball.
        let rootfs = d.dir.join("rootfs");
        make_rootfs(&rootfs);
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let o = d
            .cmd(&["import", "-", "husk-busybox:test"])
            .stdin(tar.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(tar.wait().unwrap().success());
        assert!(o.status.success(), "docker import: {}", stderr(&o));
        Some(d)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        // Debian's client, matching its daemon, where a machine has another one first.
        let client = ["/usr/bin/docker", "docker"]
            .into_iter()
            .find(|c| std::path::Path::new(c).exists())
            .unwrap_or("docker");
        let mut c = Command::new(client);
        c.arg("-H")
            .arg(format!("unix://{}", self.dir.join("d.sock").display()))
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `docker run --runtime husk --network none FLAGS husk-busybox:test CMD`.
    fn run_container(&self, flags: &[&str], cmd: &[&str]) -> Output {
        let mut a = vec!["run", "--runtime", "husk", "--network", "none"];
        a.extend_from_slice(flags);
        a.push("husk-busybox:test");
        a.extend_from_slice(cmd);
        self.run(&a)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-f", "bg"]);
        // SIGTERM: dockerd stops its containerd and unmounts what it mounted.
        let _ = Command::new("kill")
            .arg(self.daemon.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        detach_mounts_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        // Docker's cgroupfs driver puts its containers under /docker.
        remove_empty_cgroups("docker");
    }
}

fn cgroup_file(v1: &str, v2: &str) -> String {
    if cgroup_v2() {
        format!("/sys/fs/cgroup/{v2}")
    } else {
        format!("/sys/fs/cgroup/{v1}")
    }
}

#[test]
fn docker_runs_execs_limits_updates_and_stops_through_husk() {
    let Some(d) = Docker::new("life") else { return };
    let o = d.run_container(&["--rm"], &["sh", "-c", "echo docker-ok; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "docker-ok\n");

    // Docker's seccomp profile is in force (mode 2), and its capabilities (no SYS_ADMIN).
    let o = d.run_container(
        &["--rm"],
        &["grep", "-E", "^(Seccomp|CapEff):", "/proc/self/status"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Seccomp:\t2"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("CapEff:\t00000000a80425fb"),
        "{}",
        stdout(&o)
    );

    let o = d.run_container(
        &["-d", "--name", "bg", "-m", "64m", "--pids-limit", "50"],
        &["sleep", "1000"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let memory = cgroup_file("memory/memory.limit_in_bytes", "memory.max");
    let pids = cgroup_file("pids/pids.max", "pids.max");
    let read = || stdout(&d.run(&["exec", "bg", "cat", &memory, &pids]));
    assert_eq!(read(), "67108864\n50\n");
    let o = d.run(&["exec", "bg", "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(stdout(&o), "in-exec\n");
    let o = d.run(&["update", "--memory", "128m", "--memory-swap", "256m", "bg"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(), "134217728\n50\n");
    assert!(d.run(&["pause", "bg"]).status.success());
    let o = d.run(&["inspect", "-f", "{{.State.Status}}", "bg"]);
    assert_eq!(stdout(&o).trim(), "paused");
    assert!(d.run(&["unpause", "bg"]).status.success());
    let o = d.run(&["top", "bg"]);
    assert!(stdout(&o).contains("sleep 1000"), "{}", stdout(&o));
    let o = d.run(&["stop", "-t", "1", "bg"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = d.run(&["inspect", "-f", "{{.State.ExitCode}}", "bg"]);
    assert_eq!(stdout(&o).trim(), "137", "SIGKILL after the 1 s grace");
    assert!(d.run(&["rm", "bg"]).status.success());
    let o = d.run(&["ps", "-aq"]);
    assert_eq!(stdout(&o).trim(), "", "containers left");
}
