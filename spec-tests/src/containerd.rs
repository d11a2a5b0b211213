//! A private containerd for the shim's tests: its own root, state, sockets and namespace, the
//! busybox image imported from an archive `hack/make-oci-image.sh` builds, and `ctr` to drive
//! it. Dropping it kills whatever a failed test left and removes the lot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "docker.io/library/busybox:husk-test";

pub struct Containerd {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub namespace: String,
    child: Child,
}

fn target_dir() -> PathBuf {
    crate::husk_bin().parent().unwrap().to_path_buf()
}

/// PATH with the freshly built husk and containerd-shim-husk-v2 first.
pub fn path_env() -> String {
    format!(
        "{}:{}",
        target_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn image_archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let out = target_dir().join("busybox-oci.tar");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/make-oci-image.sh");
        let st = Command::new(script).arg(&out).arg(IMAGE).status().unwrap();
        assert!(st.success(), "hack/make-oci-image.sh failed");
        out
    })
}

impl Containerd {
    pub fn start(name: &str) -> Containerd {
        assert!(
            target_dir().join("containerd-shim-husk-v2").exists(),
            "build the shim first: cargo build --workspace"
        );
        let dir = PathBuf::from(format!("/tmp/husk-ctd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("c.sock");
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{s}\"\n[ttrpc]\n  address = \"{s}.ttrpc\"\n",
            d = dir.display(),
            s = sock.display()
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("PATH", path_env())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (apt-get install containerd)");
        let c = Containerd {
            dir,
            sock,
            namespace: format!("husk-{name}"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let archive = image_archive().to_string_lossy().into_owned();
        c.ctr_ok(&["images", "import", &archive]);
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.sock)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args)
            .env("PATH", path_env())
            .stdin(Stdio::null());
        cmd
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }

    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let o = self.ctr(args);
        assert!(
            o.status.success(),
            "ctr {args:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `ctr task ls` as (id, status) pairs.
    pub fn tasks(&self) -> Vec<(String, String)> {
        self.ctr_ok(&["task", "ls"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3).then(|| (f[0].to_string(), f[2].to_string()))
            })
            .collect()
    }

    pub fn task_status(&self, id: &str) -> Option<String> {
        self.tasks()
            .into_iter()
            .find(|(t, _)| t == id)
            .map(|(_, s)| s)
    }

    /// Pids of the shims serving this containerd.
    pub fn shims(&self) -> Vec<i32> {
        let want = format!("-address\0{}\0", self.sock.display());
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            if cmdline.contains("containerd-shim") && cmdline.contains(&want) {
                pids.push(pid);
            }
        }
        pids
    }

    /// husk's state directory for this namespace (the shim's default `--root`).
    pub fn husk_root(&self) -> PathBuf {
        Path::new("/run/containerd/husk").join(&self.namespace)
    }

    /// What is left of containers: shims, husk state, task bundles, rootfs mounts.
    fn residue(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .shims()
            .iter()
            .map(|p| format!("shim pid {p}"))
            .collect();
        let names = |d: &Path| -> Vec<String> {
            std::fs::read_dir(d)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path().display().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        left.extend(names(&self.husk_root()));
        let tasks = self
            .dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&self.namespace);
        left.extend(names(&tasks));
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        left.extend(
            mounts
                .lines()
                .filter(|l| l.contains(&*tasks.to_string_lossy()))
                .map(|l| format!("mount {l}")),
        );
        left
    }

    /// Checks that nothing of any container remains, allowing containerd and the shims a few
    /// seconds to finish their asynchronous cleanup.
    pub fn assert_no_residue(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.residue();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "left behind: {left:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Whatever a failed test left: its containers, shims and mounts.
        if let Ok(d) = std::fs::read_dir(self.husk_root()) {
            for e in d.flatten() {
                let _ = Command::new(crate::husk_bin())
                    .arg("--root")
                    .arg(self.husk_root())
                    .args(["delete", "--force"])
                    .arg(e.file_name())
                    .output();
            }
        }
        for pid in self.shims() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&*self.dir.to_string_lossy()))
            .collect();
        ours.reverse();
        for m in ours {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(self.husk_root());
    }
}
