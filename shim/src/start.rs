//! The two one-shot verbs containerd runs: `start` (spawn the daemon, or find the pod's
//! running one, and print its address) and `delete` (clean up after a shim that is gone).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use containerd_shim_protos::api::DeleteResponse;
use husk::error::{Context, Error, Result};
use protobuf::Message;
use sha2::{Digest, Sha256};

use crate::events::timestamp;
use crate::flags::Flags;
use crate::options::Options;
use crate::runtime::Runtime;

/// The fd number the daemon finds its listening socket under.
pub const LISTEN_FD_ENV: &str = "HUSK_SHIM_LISTEN_FD";
const SOCKET_DIR: &str = "/run/containerd/s";
const SANDBOX_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri-o.SandboxID",
];

/// Containers of one pod share a shim: they group by the sandbox id CRI annotates.
fn grouping(bundle: &Path, id: &str) -> String {
    let v: serde_json::Value = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default();
    SANDBOX_ANNOTATIONS
        .iter()
        .find_map(|k| v["annotations"][*k].as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(id)
        .to_string()
}

/// containerd's own naming: sha256 of `<address>/<namespace>/<group>` under /run/containerd/s.
pub fn socket_path(address: &str, namespace: &str, group: &str) -> PathBuf {
    let key = Path::new(address).join(namespace).join(group);
    let digest = Sha256::digest(key.to_string_lossy().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Path::new(SOCKET_DIR).join(hex)
}

pub fn start(flags: &Flags) -> Result<()> {
    let bundle = std::env::current_dir().ctx(|| "the bundle (current directory)")?;
    let path = socket_path(
        &flags.address,
        &flags.namespace,
        &grouping(&bundle, &flags.id),
    );
    let address = format!("unix://{}", path.display());
    let publish = |address: &str| -> Result<()> {
        std::fs::write(bundle.join("address"), address)
            .ctx(|| "writing the bundle's address file")?;
        print!("{address}");
        std::io::stdout()
            .flush()
            .ctx(|| "writing the address to stdout")
    };
    if UnixStream::connect(&path).is_ok() {
        return publish(&address); // the pod's shim is already serving
    }
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir_all(SOCKET_DIR).ctx(|| format!("creating {SOCKET_DIR}"))?;
    let listener = UnixListener::bind(&path).ctx(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .ctx(|| format!("chmod 0600 {}", path.display()))?;
    let spawned = spawn_daemon(flags, &bundle, &listener);
    let pid = match spawned {
        Ok(pid) => pid,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    let _ = std::fs::write(bundle.join("shim.pid"), pid.to_string());
    adjust_oom_score(pid);
    // containerd sends the runtime options on stdin; only ShimCgroup matters here.
    let mut opts = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut opts);
    if let Ok(any) = protobuf::well_known_types::any::Any::parse_from_bytes(&opts) {
        if let Ok(o) = Options::from_any(Some(&any)) {
            if !o.shim_cgroup.is_empty() {
                join_cgroup(pid, &o.shim_cgroup)?;
            }
        }
    }
    publish(&address)
}

fn spawn_daemon(flags: &Flags, bundle: &Path, listener: &UnixListener) -> Result<u32> {
    let fd = listener.as_raw_fd();
    husk::sys::clear_cloexec(fd).ctx(|| "clearing FD_CLOEXEC on the shim socket")?;
    let exe = std::env::current_exe().ctx(|| "finding the shim's own binary")?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "-namespace",
        &flags.namespace,
        "-id",
        &flags.id,
        "-address",
        &flags.address,
    ]);
    if !flags.publish_binary.is_empty() {
        cmd.args(["-publish-binary", &flags.publish_binary]);
    }
    if flags.debug {
        cmd.arg("-debug");
    }
    // containerd reads the shim's log from the bundle's `log` fifo when it made one.
    let log = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(bundle.join("log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let child = cmd
        .current_dir(bundle)
        .env(LISTEN_FD_ENV, fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        // Its own process group: containerd's restart or ^C must not take the shim with it.
        .process_group(0)
        .spawn()
        .ctx(|| "spawning the shim daemon")?;
    Ok(child.id())
}

use std::os::unix::fs::OpenOptionsExt;

/// As containerd does for its shims: one above containerd's own score, so the OOM killer
/// takes a shim before containerd.
fn adjust_oom_score(pid: u32) {
    let parent = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<u32>()
                .ok()
        });
    let Some(score) = parent
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/oom_score_adj")).ok())
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let _ = std::fs::write(
        format!("/proc/{pid}/oom_score_adj"),
        (score + 1).min(1000).to_string(),
    );
}

/// Moves the shim into the `ShimCgroup` option's cgroup, in each hierarchy that has it.
fn join_cgroup(pid: u32, cgroup: &str) -> Result<()> {
    let rel = cgroup.trim_start_matches('/');
    let mut joined = false;
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup").join(rel)];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        dirs.extend(rd.flatten().map(|e| e.path().join(rel)));
    }
    for d in dirs {
        if std::fs::write(d.join("cgroup.procs"), pid.to_string()).is_ok() {
            joined = true;
        }
    }
    if joined {
        Ok(())
    } else {
        Err(Error::msg(format!(
            "shim cgroup {cgroup}: no cgroup.procs to join under /sys/fs/cgroup"
        )))
    }
}

pub fn delete(flags: &Flags) -> Result<()> {
    let bundle = if flags.bundle.is_empty() {
        std::env::current_dir().ctx(|| "the bundle (current directory)")?
    } else {
        PathBuf::from(&flags.bundle)
    };
    let opts = Options::load(&bundle);
    let rt = Runtime::new(&opts, &flags.namespace, &bundle, None);
    if let Err(e) = rt.run(&["delete", "--force", &flags.id], None) {
        if !e.to_string().contains("does not exist") {
            eprintln!("containerd-shim-husk-v2: {e}");
        }
    }
    crate::mounts::unmount_rootfs(&bundle.join("rootfs"));
    // The dead daemon's socket, unless another container of its pod has one serving there.
    if let Ok(address) = std::fs::read_to_string(bundle.join("address")) {
        let path = address.trim().trim_start_matches("unix://");
        if UnixStream::connect(path).is_err() {
            let _ = std::fs::remove_file(path);
        }
    }
    let resp = DeleteResponse {
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: timestamp(SystemTime::now()),
        ..Default::default()
    };
    let bytes = resp
        .write_to_bytes()
        .map_err(|e| Error::msg(format!("encoding DeleteResponse: {e}")))?;
    std::io::stdout()
        .write_all(&bytes)
        .ctx(|| "writing the DeleteResponse")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_is_containerds() {
        // sha256("/run/containerd/containerd.sock/default/abc"), as containerd 1.6 computes it.
        let p = socket_path("/run/containerd/containerd.sock", "default", "abc");
        let expected = Sha256::digest(b"/run/containerd/containerd.sock/default/abc");
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(p, Path::new("/run/containerd/s").join(hex));
    }
}
