//! A process's stdio as containerd names it: fifo paths (copied through pipes, so the shim can
//! close stdin on CloseIO and keep output flowing if the client goes away), `file://` paths
//! (handed to the process directly), empty for /dev/null, or, with a terminal, a pty whose
//! master husk sends over a console socket.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use husk::error::{Context, Error, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::{fchown, Gid, Uid};

use crate::runtime::Io;

#[derive(Clone, Debug, Default)]
pub struct Paths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Stdio made ready before the runtime runs the process.
pub struct Prepared {
    pub io: Io,
    terminal: bool,
    console: Option<(UnixListener, PathBuf)>,
    stdin: Option<(File, String)>,
    /// (what the process writes into, the client's fifo, already open).
    outputs: Vec<(File, File)>,
}

/// The process's stdin as the copy thread and CloseIO share it.
#[derive(Default)]
struct Stdin {
    /// Into the process: a pipe, or a dup of the pty master.
    writer: Mutex<Option<File>>,
    /// The client's fifo the copy reads.
    fifo: Option<String>,
    close_requested: AtomicBool,
}

/// What the shim holds of a running process's stdio.
pub struct Attached {
    stdin: Arc<Stdin>,
    console: Option<File>,
    copiers: Vec<JoinHandle<()>>,
}

enum Target {
    Null,
    File(File),
    Fifo(String),
}

/// A `binary://` logging driver (containerd's protocol): the process's stdout and stderr
/// are pipes whose read ends the binary gets as fds 3 and 4; it closes fd 5 once ready.
/// Its query string becomes its arguments; CONTAINER_ID and CONTAINER_NAMESPACE its env.
fn start_logger(uri: &str, id: &str, namespace: &str, uid: u32, gid: u32) -> Result<(File, File)> {
    let rest = &uri["binary://".len()..];
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        args.push(percent_decode(k));
        if !v.is_empty() {
            args.push(percent_decode(v));
        }
    }
    let (out_r, out_w) = pipe_pair(uid, gid)?;
    let (err_r, err_w) = pipe_pair(uid, gid)?;
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe for the logger")?;
    let mut cmd = std::process::Command::new(path);
    cmd.args(&args)
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    husk::sys::spawn_with_fds(&mut cmd, &[out_r.into(), err_r.into(), ready_w])
        .ctx(|| format!("starting logging binary {path}"))?;
    // The binary closes fd 5 (or exits) when it is ready to read.
    let mut ready = File::from(ready_r);
    let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
    let n =
        poll(&mut fds, PollTimeout::from(10_000u16)).ctx(|| "poll on the logger's ready pipe")?;
    if n == 0 {
        return Err(Error::msg(format!(
            "logging binary {path} was not ready within 10 s"
        )));
    }
    let _ = ready.read(&mut [0u8; 1]);
    Ok((out_w, err_w))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()),
        ) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn target(path: &str, append_file: bool) -> Result<Target> {
    if path.is_empty() {
        return Ok(Target::Null);
    }
    if let Some(file) = path.strip_prefix("file://") {
        if let Some(dir) = Path::new(file).parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        }
        let f = OpenOptions::new()
            .append(append_file)
            .read(!append_file)
            .create(append_file)
            .open(file)
            .ctx(|| format!("opening stdio file {file}"))?;
        return Ok(Target::File(f));
    }
    Ok(Target::Fifo(path.to_string()))
}

fn pipe_pair(uid: u32, gid: u32) -> Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe for stdio")?;
    if uid != 0 || gid != 0 {
        for fd in [&r, &w] {
            fchown(
                fd.as_fd(),
                Some(Uid::from_raw(uid)),
                Some(Gid::from_raw(gid)),
            )
            .ctx(|| format!("chown of a stdio pipe to {uid}:{gid}"))?;
        }
    }
    Ok((File::from(r), File::from(w)))
}

static CONSOLES: AtomicU32 = AtomicU32::new(0);

impl Prepared {
    /// `id` and `namespace` are for a `binary://` logger's environment.
    pub fn new(p: &Paths, uid: u32, gid: u32, id: &str, namespace: &str) -> Result<Prepared> {
        let mut prepared = Prepared {
            io: Io::null(),
            terminal: p.terminal,
            console: None,
            stdin: None,
            outputs: Vec::new(),
        };
        if p.terminal {
            // sun_path holds 108 bytes: bundles are too deep, the temp dir is not.
            let path = std::env::temp_dir().join(format!(
                "husk-pty-{}-{}.sock",
                std::process::id(),
                CONSOLES.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_file(&path);
            let l = UnixListener::bind(&path)
                .ctx(|| format!("binding console socket {}", path.display()))?;
            prepared.console = Some((l, path));
            if !p.stdin.is_empty() {
                prepared.stdin = Some((
                    File::open("/dev/null").ctx(|| "/dev/null")?,
                    p.stdin.clone(),
                ));
            }
            if let Target::Fifo(out) = target(&p.stdout, true)? {
                prepared.outputs.push((
                    File::open("/dev/null").ctx(|| "/dev/null")?,
                    open_output(&out)?,
                ));
            }
            return Ok(prepared);
        }
        match target(&p.stdin, false)? {
            Target::Null => {}
            Target::File(f) => prepared.io.stdin = f.into(),
            Target::Fifo(path) => {
                let (r, w) = pipe_pair(uid, gid)?;
                prepared.io.stdin = r.into();
                prepared.stdin = Some((w, path));
            }
        }
        if p.stdout.starts_with("binary://") {
            let (out, err) = start_logger(&p.stdout, id, namespace, uid, gid)?;
            prepared.io.stdout = out.into();
            prepared.io.stderr = err.into();
            return Ok(prepared);
        }
        for (i, path) in [&p.stdout, &p.stderr].into_iter().enumerate() {
            let end: Stdio = match target(path, true)? {
                Target::Null => Stdio::null(),
                Target::File(f) => f.into(),
                Target::Fifo(path) => {
                    let (r, w) = pipe_pair(uid, gid)?;
                    prepared.outputs.push((r, open_output(&path)?));
                    w.into()
                }
            };
            if i == 0 {
                prepared.io.stdout = end;
            } else {
                prepared.io.stderr = end;
            }
        }
        Ok(prepared)
    }

    /// The `--console-socket` to give the runtime, with a terminal.
    pub fn console_socket(&self) -> Option<&Path> {
        self.console.as_ref().map(|(_, p)| p.as_path())
    }

    /// Splits off the ends the runtime hands to the process.
    pub fn take_io(&mut self) -> Io {
        std::mem::replace(&mut self.io, Io::null())
    }

    /// After the runtime created the process: receive the pty master, start the copies.
    pub fn attach(mut self) -> Result<Attached> {
        let mut console = None;
        if let Some((listener, _)) = &self.console {
            let master = receive_master(listener)?;
            if let Some((w, _)) = self.stdin.as_mut() {
                *w = master.try_clone().ctx(|| "dup of the pty master")?;
            }
            if let Some((r, _)) = self.outputs.first_mut() {
                *r = master.try_clone().ctx(|| "dup of the pty master")?;
            }
            console = Some(master);
        }
        let mut copiers = Vec::new();
        let stdin = match self.stdin.take() {
            Some((w, path)) => Arc::new(Stdin {
                writer: Mutex::new(Some(w)),
                fifo: Some(path),
                ..Default::default()
            }),
            None => Arc::new(Stdin::default()),
        };
        if let Some(path) = stdin.fifo.clone() {
            let shared = stdin.clone();
            let close_at_eof = !self.terminal;
            // Detached: it blocks in open(2) until a writer comes, which may be never.
            spawn("stdin", move || copy_stdin(&path, &shared, close_at_eof))?;
        }
        for (r, w) in std::mem::take(&mut self.outputs) {
            copiers.push(spawn("stdout", move || copy_output(r, w))?);
        }
        Ok(Attached {
            stdin,
            console,
            copiers,
        })
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some((_, path)) = &self.console {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(64 * 1024)
        .spawn(f)
        .ctx(|| format!("starting the {name} copy thread"))
}

fn receive_master(listener: &UnixListener) -> Result<File> {
    // husk sent the master before `create` returned, so the connection waits in the backlog.
    let fd = listener.as_fd();
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let ready =
        poll(&mut fds, PollTimeout::from(10_000u16)).ctx(|| "poll on the console socket")?;
    if ready == 0 {
        return Err(Error::msg(
            "the runtime sent no pty master over the console socket within 10 s",
        ));
    }
    let (conn, _) = listener.accept().ctx(|| "accept on the console socket")?;
    let master: OwnedFd = husk::console::recv_fd(conn.as_raw_fd())?;
    Ok(File::from(master))
}

/// Reads `src` to its end (or an error: a pty master reads EIO once the last slave fd is
/// closed) into `write`; false if `write` gave up first.
fn pump(mut src: File, mut write: impl FnMut(&[u8]) -> bool) -> bool {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        };
        if !write(&buf[..n]) {
            return false;
        }
    }
}

fn copy_stdin(path: &str, stdin: &Stdin, close_at_eof: bool) {
    if let Ok(fifo) = File::open(path) {
        let ended = pump(fifo, |data| {
            let mut w = stdin.writer.lock().unwrap();
            w.as_mut().is_some_and(|w| w.write_all(data).is_ok())
        });
        if !ended {
            return;
        }
    }
    if close_at_eof || stdin.close_requested.load(Ordering::SeqCst) {
        stdin.writer.lock().unwrap().take();
    }
}

/// Opens a client's output fifo now, before the process exists: a client that reads a fifo
/// nobody has opened for writing sees end-of-file at once and would miss the output.
/// O_RDWR: the open never waits for a reader, and a client that goes away is no EPIPE.
fn open_output(path: &str) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ctx(|| format!("opening stdio fifo {path}"))
}

fn copy_output(src: File, mut dst: File) {
    pump(src, |data| dst.write_all(data).is_ok());
}

impl Attached {
    /// CloseIO: the client has sent all its input. What is still in the fifo reaches the
    /// process first: the copy closes the process's stdin at end-of-file. A copy still in
    /// open(2), waiting for a client that may never come, is woken by a writer that comes and
    /// goes at once. (Closing the process's stdin from here raced with a copy that had just
    /// opened the fifo: the client's input was lost.)
    pub fn close_stdin(&self) {
        self.stdin.close_requested.store(true, Ordering::SeqCst);
        let woken = self.stdin.fifo.as_ref().is_some_and(|p| {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(p)
                .is_ok()
        });
        // No reader (ENXIO): the copy has ended; what it left open goes now.
        if !woken {
            self.stdin.writer.lock().unwrap().take();
        }
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let Some(c) = &self.console else {
            return Err(Error::msg("the process has no terminal to resize"));
        };
        husk::sys::set_winsize(c.as_fd(), height as u16, width as u16)
            .ctx(|| "TIOCSWINSZ on the pty master")
    }

    /// Waits (up to `timeout`) for the output copies to drain, as the runc shim does on delete.
    pub fn wait_output(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.copiers.iter().any(|c| !c.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for c in std::mem::take(&mut self.copiers) {
            if c.is_finished() {
                let _ = c.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_decoded() {
        assert_eq!(super::percent_decode("a%2Fb+c%3d"), "a/b c=");
        assert_eq!(super::percent_decode("100%"), "100%");
    }
}
