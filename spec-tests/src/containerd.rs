//! A private containerd for the shim's tests: its own root, state, sockets and namespace, the
//! busybox image imported from an archive `hack/make-oci-image.sh` builds, and `ctr` to drive
//! it. Dropping it kills whatever a failed test left and removes the lot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "docker.io/library/busybox:husk-test";
/// The busybox image again, with a Cmd that stays up: the pods' sandbox ("pause") image.
pub const PAUSE_IMAGE: &str = "docker.io/library/husk-pause:test";

/// Which shim runs the containers: ours, or containerd's Go runc shim with husk as its
/// BinaryName (what a runc user switching to husk gets first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shim {
    Husk,
    RuncGo,
}

pub struct Containerd {
    pub shim: Shim,
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub namespace: String,
    /// husk's `--root` as the shim computes it for this containerd's namespace.
    pub husk_root: PathBuf,
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

fn make_image(file: &str, name: &str, cmd: &str) -> PathBuf {
    let out = target_dir().join(file);
    // The VM has no bash to run the script with: hack/vm.sh builds the archives beforehand.
    if std::env::var_os("HUSK_PREBUILT_IMAGES").is_some() && out.exists() {
        return out;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/make-oci-image.sh");
    let st = Command::new(script)
        .arg(&out)
        .arg(name)
        .arg(cmd)
        .status()
        .unwrap();
    assert!(st.success(), "hack/make-oci-image.sh failed");
    out
}

pub fn images() -> &'static [PathBuf; 2] {
    static ARCHIVES: OnceLock<[PathBuf; 2]> = OnceLock::new();
    ARCHIVES.get_or_init(|| {
        [
            make_image("busybox-oci.tar", IMAGE, r#"["sh"]"#),
            make_image("pause-oci.tar", PAUSE_IMAGE, r#"["sleep", "2147483647"]"#),
        ]
    })
}

fn spawn_containerd(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .unwrap();
    Command::new("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env("PATH", path_env())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("containerd (apt-get install containerd)")
}

impl Containerd {
    /// A containerd for `ctr`: CRI off.
    pub fn start(name: &str) -> Containerd {
        Containerd::launch(name, false, Shim::Husk)
    }

    /// A containerd for `ctr` whose containers run on `shim`.
    pub fn start_with(name: &str, shim: Shim) -> Containerd {
        Containerd::launch(name, false, shim)
    }

    /// `ctr run`'s flags that select this containerd's shim (and husk behind it).
    pub fn runtime_args(&self) -> Vec<String> {
        match self.shim {
            Shim::Husk => vec!["--runtime".into(), "io.containerd.husk.v2".into()],
            Shim::RuncGo => vec![
                "--runtime".into(),
                "io.containerd.runc.v2".into(),
                "--runc-binary".into(),
                crate::husk_bin().to_string_lossy().into_owned(),
            ],
        }
    }

    /// A containerd with its CRI plugin on, a `husk` runtime handler (io.containerd.husk.v2,
    /// options through ConfigPath as CRI passes them to non-runc shims) and a `runc-husk` one
    /// (containerd's runc shim with husk as BinaryName), both keeping husk's state in one root;
    /// host-network pods only (no CNI), and the images in the k8s.io namespace.
    pub fn start_cri(name: &str) -> Containerd {
        Containerd::launch(name, true, Shim::Husk)
    }

    fn launch(name: &str, cri: bool, shim: Shim) -> Containerd {
        assert!(
            target_dir().join("containerd-shim-husk-v2").exists(),
            "build the shim first: cargo build --workspace"
        );
        let dir = PathBuf::from(format!("/tmp/husk-ctd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("c.sock");
        let mut config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             [grpc]\n  address = \"{s}\"\n[ttrpc]\n  address = \"{s}.ttrpc\"\n",
            d = dir.display(),
            s = sock.display()
        );
        let (namespace, husk_root) = if cri {
            let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
            config += &format!(
                "[{cri}]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n  restrict_oom_score_adj = true\n\
                 [{cri}.containerd]\n  default_runtime_name = \"husk\"\n\
                 [{cri}.containerd.runtimes.husk]\n  runtime_type = \"io.containerd.husk.v2\"\n\
                 [{cri}.containerd.runtimes.husk.options]\n  ConfigPath = \"{d}/husk.toml\"\n\
                 [{cri}.containerd.runtimes.runc-husk]\n  runtime_type = \"io.containerd.runc.v2\"\n\
                 [{cri}.containerd.runtimes.runc-husk.options]\n  BinaryName = \"{b}\"\n  Root = \"{d}/husk\"\n\
                 [{cri}.cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"{d}/cni\"\n",
                d = dir.display(),
                b = crate::husk_bin().display()
            );
            std::fs::write(
                dir.join("husk.toml"),
                format!("Root = \"{}/husk\"\n", dir.display()),
            )
            .unwrap();
            ("k8s.io".to_string(), dir.join("husk/k8s.io"))
        } else {
            config += "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n";
            let ns = format!("husk-{name}");
            // Each shim keeps its runtime's state under its own default root.
            let base = match shim {
                Shim::Husk => "/run/containerd/husk",
                Shim::RuncGo => "/run/containerd/runc",
            };
            let root = Path::new(base).join(&ns);
            (ns, root)
        };
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let child = spawn_containerd(&dir);
        let c = Containerd {
            shim,
            dir,
            sock,
            namespace,
            husk_root,
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
        for archive in images() {
            c.ctr_ok(&["images", "import", &archive.to_string_lossy()]);
        }
        c
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills containerd (SIGKILL, as a crash would) and starts it again on the same state.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn_containerd(&self.dir);
        self.wait_ready();
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
        crate::pids()
            .into_iter()
            .filter(|pid| {
                let cmdline = crate::cmdline(*pid);
                cmdline.contains("containerd-shim") && cmdline.contains(&want)
            })
            .map(|pid| pid as i32)
            .collect()
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
        left.extend(names(&self.husk_root));
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
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("containerd's log, last lines:");
            for l in tail.iter().rev() {
                eprintln!("  {l}");
            }
        }
        // Whatever a failed test left: its containers, shims and mounts.
        if let Ok(d) = std::fs::read_dir(&self.husk_root) {
            for e in d.flatten() {
                let _ = Command::new(crate::husk_bin())
                    .arg("--root")
                    .arg(&self.husk_root)
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
        crate::detach_mounts_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.husk_root);
        // containerd puts a namespace's containers under /<namespace> (CRI: /k8s.io).
        crate::remove_empty_cgroups(&self.namespace);
    }
}
