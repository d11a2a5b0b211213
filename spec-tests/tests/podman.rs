//! podman with `--runtime husk`: storage of its own, no network (no CNI here), husk behind
//! conmon as podman users would run it.

use std::path::PathBuf;
use std::process::{Command, Output};

use spec_tests::containerd::{images, IMAGE};
use spec_tests::*;

struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new(name: &str) -> Option<Podman> {
        // hack/test.sh installs podman; the cgroup v2 VM has none.
        if Command::new("podman").arg("--version").output().is_err() {
            eprintln!("skipped: no podman");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("husk-podman-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = Podman { dir };
        let archive = images()[0].to_string_lossy().into_owned();
        let o = p.run(&["load", "-i", &archive]);
        assert!(o.status.success(), "podman load: {}", stderr(&o));
        Some(p)
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .arg("--runtime")
            .arg(husk_bin())
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(args)
            .output()
            .unwrap()
    }

    /// `podman run` with what this machine needs: no network, and limits within the hard
    /// ones (no CAP_SYS_RESOURCE here; podman's default nofile of 1048576 fails, as with runc).
    fn run_container(&self, flags: &[&str], cmd: &[&str]) -> Output {
        let mut a = vec![
            "run",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        a.extend_from_slice(flags);
        a.push(IMAGE);
        a.extend_from_slice(cmd);
        self.run(&a)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = Command::new("umount").arg("-R").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
        // podman's cgroupfs manager keeps conmon in a cgroup of its own; for controllers this
        // host has not mounted it makes plain directories (with a `tasks` file) on the
        // /sys/fs/cgroup tmpfs instead.
        remove_empty_cgroups("libpod_parent/conmon");
        for e in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let tmpfs = nix::sys::statfs::statfs(&e.path())
                .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
            if tmpfs {
                let _ = std::fs::remove_dir_all(e.path().join("libpod_parent"));
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

#[test]
fn podman_runs_execs_stops_and_removes_through_husk() {
    let Some(p) = Podman::new("life") else { return };
    let o = p.run_container(&["--rm"], &["sh", "-c", "echo podman-ok; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "podman-ok\n");

    let o = p.run_container(&["--rm", "-t"], &["tty"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("/dev/pts/"), "{}", stdout(&o));

    let o = p.run_container(&["-d", "--name", "bg"], &["sleep", "1000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = p.run(&["exec", "bg", "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(stdout(&o), "in-exec\n");
    let o = p.run(&["stop", "-t", "1", "bg"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = p.run(&["rm", "bg"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = p.run(&["ps", "-aq"]);
    assert_eq!(stdout(&o).trim(), "", "containers left");
}
