//! OCI hooks: each runs with the container's state JSON on stdin, its own args and env, and an
//! optional timeout. A failing prestart, createRuntime, createContainer or startContainer hook
//! fails the operation; poststart and poststop failures are warnings (runtime-spec "Lifecycle").

use std::io::{Read, Seek, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn select(self, hooks: &Hooks) -> &[Hook] {
        #[allow(deprecated)]
        let v = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        v.as_deref().unwrap_or_default()
    }
}

/// The state a hook reads on its stdin (runtime-spec "State").
pub fn state_json(
    id: &str,
    status: &str,
    pid: i32,
    bundle: &std::path::Path,
    annotations: &impl serde::Serialize,
) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "id": id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "annotations": annotations,
    })
}

/// Runs every hook of `kind` in order, stopping at the first failure.
pub fn run(kind: Kind, hooks: Option<&Hooks>, state: &serde_json::Value) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    let state = state.to_string();
    for (i, h) in kind.select(hooks).iter().enumerate() {
        run_one(h, &state).map_err(|e| {
            // runc's words ("error running hook"), which clients and tests match on.
            e.context(format!(
                "error running hook #{i} ({} {})",
                kind.name(),
                h.path().display()
            ))
        })?;
    }
    Ok(())
}

/// As `run`, but a failure is only logged: the lifecycle goes on.
pub fn run_warn(kind: Kind, hooks: Option<&Hooks>, state: &serde_json::Value) {
    if let Err(e) = run(kind, hooks, state) {
        crate::log::warn(&e.to_string());
    }
}

fn run_one(h: &Hook, state: &str) -> Result<()> {
    let args = h.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some((arg0, rest)) = args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for kv in h.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // Output goes to an unnamed file, not a pipe: a hook that leaves a daemon holding its stdout
    // must not hang the runtime. Where no such file can be made (a read-only /tmp in the
    // container), output is dropped.
    let out = tempfile();
    let sink = || {
        out.as_ref()
            .and_then(|f| f.try_clone().ok())
            .map_or(Stdio::null(), Stdio::from)
    };
    cmd.stdin(Stdio::piped()).stdout(sink()).stderr(sink());
    let mut child = cmd.spawn().map_err(|e| Error::io("start", &e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that ignores its stdin may exit before reading it: EPIPE is not a failure.
        let _ = stdin.write_all(state.as_bytes());
    }
    let timeout = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| Error::io("wait", &e))? {
            break st;
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::msg(format!(
                "timed out after {}s",
                timeout.unwrap().as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(
            if start.elapsed() < Duration::from_millis(20) {
                1
            } else {
                10
            },
        ));
    };
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    if let Some(mut f) = out {
        let _ = f.rewind();
        let _ = f.take(4096).read_to_string(&mut text);
    }
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("killed by signal {s}{}", signal_words(s)),
        _ => "failed".into(),
    };
    let text = text.trim();
    Err(Error::msg(if text.is_empty() {
        how
    } else {
        format!("{how}, output: {text}")
    }))
}

/// What a shell (and runc) says of the signals a failing hook most often dies of.
fn signal_words(sig: i32) -> &'static str {
    match sig {
        libc::SIGSYS => " (bad system call: a seccomp filter refused it)",
        libc::SIGKILL => " (killed)",
        libc::SIGSEGV => " (segmentation fault)",
        libc::SIGABRT => " (aborted)",
        libc::SIGTERM => " (terminated)",
        _ => "",
    }
}

fn tempfile() -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(std::env::temp_dir())
        .ok()
}
