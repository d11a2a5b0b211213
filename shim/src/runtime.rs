//! Drives the runtime binary (husk, or any runc-compatible one named by the `BinaryName`
//! option) through its command line, as go-runc does for containerd's runc shim. Its errors come
//! back from the JSON `--log` it appends to, so the one line containerd shows is the runtime's.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use husk::error::{Context, Error, Result};
use nix::unistd::Pid;

use crate::reaper::Reaper;

#[derive(Clone)]
pub struct Runtime {
    pub binary: String,
    pub root: String,
    pub systemd_cgroup: bool,
    /// `<bundle>/log.json`.
    pub log: PathBuf,
    /// The daemon's reaper; `None` in the one-shot `delete`, which waits for its own child.
    pub reaper: Option<Arc<Reaper>>,
}

/// The container's stdio while a command runs (for create and exec, the process's own).
pub struct Io {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl Io {
    pub fn null() -> Io {
        Io {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }
}

/// Whether the bundle's cgroupsPath is a systemd one ("kubepods-pod1.slice:cri-containerd:id"):
/// containerd's CRI writes that form whenever the kubelet's cgroup parent is a slice, whatever
/// this runtime's SystemdCgroup option says, and only the systemd driver can take it.
fn systemd_cgroups_path(bundle: &Path) -> bool {
    let Ok(text) = fs::read(bundle.join("config.json")) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return false;
    };
    v["linux"]["cgroupsPath"]
        .as_str()
        .is_some_and(is_systemd_form)
}

fn is_systemd_form(p: &str) -> bool {
    let parts: Vec<&str> = p.split(':').collect();
    parts.len() == 3 && parts[0].ends_with(".slice") && !parts[0].contains('/')
}

impl Runtime {
    /// The runtime `opts` name, its state under the namespace's root, its log in the bundle.
    pub fn new(
        opts: &crate::options::Options,
        namespace: &str,
        bundle: &Path,
        reaper: Option<Arc<Reaper>>,
    ) -> Runtime {
        Runtime {
            binary: opts.binary(),
            root: opts.root(namespace),
            systemd_cgroup: opts.systemd_cgroup || systemd_cgroups_path(bundle),
            log: bundle.join("log.json"),
            reaper,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        husk::sys::unblock_signals_on_exec(&mut cmd);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        cmd.args(args);
        cmd
    }

    /// Runs one command to completion; its stdout is returned, a failure is the runtime's last
    /// logged error (or its stderr).
    pub fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>> {
        let mut cmd = self.command(args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        self.spawn_and_wait(cmd, args, input)
    }

    /// Runs a command whose stdio belongs to the container (`create`, `exec`).
    pub fn run_with_io(&self, args: &[&str], io: Io) -> Result<()> {
        let mut cmd = self.command(args);
        cmd.stdin(io.stdin).stdout(io.stdout).stderr(io.stderr);
        self.spawn_and_wait(cmd, args, None).map(drop)
    }

    fn spawn_and_wait(
        &self,
        mut cmd: Command,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let verb = args.first().copied().unwrap_or("");
        let log_start = fs::metadata(&self.log).map_or(0, |m| m.len());
        let mut child = cmd
            .spawn()
            .ctx(|| format!("running {} {verb}", self.binary))?;
        if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
            // A runtime that fails early closes its stdin: its error matters, not ours.
            let _ = stdin.write_all(input);
        }
        let mut out = Vec::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_end(&mut out);
        }
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        let status = match &self.reaper {
            Some(r) => r.wait(Pid::from_raw(child.id() as i32)).status,
            None => child.wait().map_or(255, |s| s.code().unwrap_or(255) as u32),
        };
        if status == 0 {
            return Ok(out);
        }
        let msg = last_logged_error(&self.log, log_start)
            .or_else(|| {
                err.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(String::from)
            })
            .unwrap_or_else(|| format!("exit status {status}"));
        Err(Error::msg(format!("{} {verb}: {msg}", self.binary)))
    }
}

/// The message of the last error-level line the runtime appended to its JSON log since `from`.
fn last_logged_error(log: &Path, from: u64) -> Option<String> {
    let data = fs::read(log).ok()?;
    let tail = data.get(from as usize..)?;
    String::from_utf8_lossy(tail).lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        matches!(v["level"].as_str(), Some("error" | "fatal"))
            .then(|| v["msg"].as_str().map(String::from))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_last_error_after_the_offset() {
        let dir = std::env::temp_dir().join(format!("husk-shim-log-{}", std::process::id()));
        let old = "{\"level\":\"error\",\"msg\":\"old\",\"time\":\"t\"}\n";
        fs::write(&dir, format!("{old}{{\"level\":\"warning\",\"msg\":\"w\"}}\n{{\"level\":\"error\",\"msg\":\"new one\"}}\n{{\"level\":\"info\",\"msg\":\"i\"}}\n")).unwrap();
        assert_eq!(last_logged_error(&dir, 0).as_deref(), Some("new one"));
        fs::write(&dir, old).unwrap();
        assert_eq!(last_logged_error(&dir, old.len() as u64), None);
        fs::remove_file(&dir).unwrap();
    }
}
