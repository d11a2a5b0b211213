//! The task service containerd calls over ttrpc (containerd.task.v2.Task, and the same
//! messages as containerd.task.v3.Task for 2.x). Behaviour follows containerd's runc shim: the
//! init process and execs of each container, their stdio, exit statuses and events, with an
//! init's exit published only after the exits of its execs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::api::*;
use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::shim::oci::{self, ProcessDetails};
use containerd_shim_protos::topics::*;
use containerd_shim_protos::types::task::{ProcessInfo, Status};
use husk::error::{Context, Error};
use nix::unistd::Pid;
use protobuf::{Message, MessageField};
use ttrpc::{Code, TtrpcContext};

use crate::events::{exit_event, timestamp, to_any, Publisher};
use crate::options::Options;
use crate::reaper::{Exit, Reaper};
use crate::runtime::Runtime;
use crate::stdio::{Attached, Paths, Prepared};
use crate::{metrics, mounts, oom};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Created,
    Running,
    Paused,
    Stopped,
}

struct Proc {
    exec_id: String,
    /// 0 until the process exists (an exec before Start).
    pid: u32,
    state: State,
    exit: Option<Exit>,
    paths: Paths,
    io: Option<Attached>,
    /// An exec's process spec (JSON), as containerd sent it.
    spec: Vec<u8>,
}

impl Proc {
    fn running(&self) -> bool {
        self.pid != 0 && self.exit.is_none()
    }
}

struct Container {
    bundle: PathBuf,
    runtime: Runtime,
    init: Proc,
    execs: HashMap<String, Proc>,
    /// The init's exit, held back until no exec is left running.
    pending_init_exit: Option<Exit>,
    /// Without its own pid namespace the container's processes outlive its init: kill them.
    shares_pid_ns: bool,
    mounted_rootfs: bool,
    io_uid: u32,
    io_gid: u32,
    oom: Option<Arc<oom::Watch>>,
    /// Created from a checkpoint (its CRIU images here): Start restores it.
    restore: Option<String>,
}

pub struct Service {
    containers: Mutex<HashMap<String, Container>>,
    /// Signalled whenever an exit becomes visible.
    exited: Condvar,
    reaper: Arc<Reaper>,
    events: Arc<Publisher>,
    namespace: String,
    shutdown: Mutex<std::sync::mpsc::Sender<()>>,
}

type TResult<T> = ttrpc::Result<T>;

fn status(code: Code, msg: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.into()))
}

fn unknown(e: Error) -> ttrpc::Error {
    status(Code::UNKNOWN, e.to_string())
}

fn not_found(what: impl std::fmt::Display) -> ttrpc::Error {
    status(Code::NOT_FOUND, format!("{what}: not found"))
}

fn proc_state(s: State) -> Status {
    match s {
        State::Created => Status::CREATED,
        State::Running => Status::RUNNING,
        State::Paused => Status::PAUSED,
        State::Stopped => Status::STOPPED,
    }
}

impl Container {
    fn proc(&self, exec_id: &str) -> TResult<&Proc> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs
            .get(exec_id)
            .ok_or_else(|| not_found(format_args!("process {exec_id} does not exist")))
    }

    fn proc_mut(&mut self, exec_id: &str) -> TResult<&mut Proc> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs
            .get_mut(exec_id)
            .ok_or_else(|| not_found(format_args!("process {exec_id} does not exist")))
    }
}

fn read_pid(path: &Path) -> Result<u32, Error> {
    std::fs::read_to_string(path)
        .ctx(|| format!("reading pid file {}", path.display()))?
        .trim()
        .parse()
        .map_err(|_| Error::msg(format!("pid file {} holds no pid", path.display())))
}

/// Whether the bundle's config joins no new pid namespace.
fn shares_pid_ns(bundle: &Path) -> bool {
    let Ok(data) = std::fs::read(bundle.join("config.json")) else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap_or_default();
    !v["linux"]["namespaces"].as_array().is_some_and(|ns| {
        ns.iter()
            .any(|n| n["type"] == "pid" && n["path"].as_str().unwrap_or("").is_empty())
    })
}

impl Service {
    pub fn new(
        reaper: Arc<Reaper>,
        events: Arc<Publisher>,
        namespace: String,
        shutdown: std::sync::mpsc::Sender<()>,
    ) -> Service {
        Service {
            containers: Mutex::new(HashMap::new()),
            exited: Condvar::new(),
            reaper,
            events,
            namespace,
            shutdown: Mutex::new(shutdown),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap()
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Container) -> TResult<T>) -> TResult<T> {
        let mut all = self.lock();
        let c = all
            .get_mut(id)
            .ok_or_else(|| not_found(format_args!("container {id}")))?;
        f(c)
    }

    fn runtime(&self, id: &str) -> TResult<Runtime> {
        self.with(id, |c| Ok(c.runtime.clone()))
    }

    /// The exit dispatcher: every reaped pid, matched to the process that owns it.
    pub fn dispatch_exits(&self, pids: Receiver<i32>) {
        for pid in pids {
            let mut all = self.lock();
            self.claim_exit(&mut all, pid as u32);
        }
    }

    /// Records the exit of `pid` if a live process of ours has that pid and it has been reaped.
    fn claim_exit(&self, all: &mut HashMap<String, Container>, pid: u32) {
        for (id, c) in all.iter_mut() {
            let is_init =
                c.init.pid == pid && c.init.exit.is_none() && c.pending_init_exit.is_none();
            let exec = c
                .execs
                .values()
                .find(|p| p.pid == pid && p.running())
                .map(|p| p.exec_id.clone());
            if !is_init && exec.is_none() {
                continue;
            }
            let Some(exit) = self.reaper.take(pid as i32) else {
                return;
            };
            // An OOM kill is reported before the exit it caused.
            if let Some(w) = &c.oom {
                w.flush();
            }
            if let Some(exec_id) = exec {
                let p = c.execs.get_mut(&exec_id).unwrap();
                p.exit = Some(exit);
                p.state = State::Stopped;
                self.events.publish(
                    TASK_EXIT_EVENT_TOPIC,
                    &exit_event(id, &exec_id, pid, exit.status, exit.at),
                );
            } else {
                if c.shares_pid_ns {
                    let rt = c.runtime.clone();
                    let id = id.clone();
                    let _ = std::thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || drop(rt.run(&["kill", "--all", &id, "KILL"], None)));
                }
                c.pending_init_exit = Some(exit);
            }
            if c.execs.values().all(|p| !p.running()) {
                if let Some(exit) = c.pending_init_exit.take() {
                    c.init.exit = Some(exit);
                    c.init.state = State::Stopped;
                    self.events.publish(
                        TASK_EXIT_EVENT_TOPIC,
                        &exit_event(id, "", c.init.pid, exit.status, exit.at),
                    );
                }
            }
            self.exited.notify_all();
            return;
        }
    }

    fn create_task(&self, req: &CreateTaskRequest) -> TResult<CreateTaskResponse> {
        let id = req.id.as_str();
        if self.lock().contains_key(id) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("container {id}: already exists"),
            ));
        }
        if !req.checkpoint.is_empty() && req.terminal {
            return Err(status(
                Code::UNIMPLEMENTED,
                "restoring a container with a terminal is not supported by husk",
            ));
        }
        let opts = Options::from_any(req.options.as_ref()).map_err(unknown)?;
        let bundle = PathBuf::from(&req.bundle);
        opts.save(&bundle).map_err(unknown)?;
        let runtime = Runtime::new(&opts, &self.namespace, &bundle, Some(self.reaper.clone()));
        let rootfs = bundle.join("rootfs");
        mounts::mount_rootfs(&rootfs, &req.rootfs).map_err(unknown)?;
        let paths = Paths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let cleanup = |rt: &Runtime| {
            let _ = rt.run(&["delete", "--force", id], None);
            if !req.rootfs.is_empty() {
                mounts::unmount_rootfs(&rootfs);
            }
        };
        let pid_file = bundle.join("init.pid");
        // From a checkpoint, as containerd's runc shim does: nothing runs until Start restores.
        let restore = (!req.checkpoint.is_empty()).then(|| req.checkpoint.clone());
        let created = (|| {
            if restore.is_some() {
                return Ok((0, None));
            }
            let mut stdio = Prepared::new(&paths, opts.io_uid, opts.io_gid, id, &self.namespace)?;
            let bundle_s = bundle.to_string_lossy();
            let pid_file_s = pid_file.to_string_lossy();
            let mut args = vec!["create", "--bundle", &bundle_s, "--pid-file", &pid_file_s];
            let console = stdio
                .console_socket()
                .map(|p| p.to_string_lossy().into_owned());
            if let Some(c) = &console {
                args.extend(["--console-socket", c]);
            }
            if opts.no_pivot_root {
                args.push("--no-pivot");
            }
            if opts.no_new_keyring {
                args.push("--no-new-keyring");
            }
            args.push(id);
            runtime.run_with_io(&args, stdio.take_io())?;
            let pid = read_pid(&pid_file)?;
            Ok::<_, Error>((pid, Some(stdio.attach()?)))
        })();
        let (pid, io) = match created {
            Ok(v) => v,
            Err(e) => {
                cleanup(&runtime);
                return Err(unknown(e));
            }
        };
        let shares = shares_pid_ns(&bundle);
        // Before Create returns, so that no Start can let an OOM happen unwatched.
        let oom = (pid != 0).then(|| self.watch_oom(pid, id)).flatten();
        {
            let mut all = self.lock();
            all.insert(
                id.to_string(),
                Container {
                    bundle: bundle.clone(),
                    runtime,
                    init: Proc {
                        exec_id: String::new(),
                        pid,
                        state: State::Created,
                        exit: None,
                        paths,
                        io,
                        spec: Vec::new(),
                    },
                    execs: HashMap::new(),
                    pending_init_exit: None,
                    shares_pid_ns: shares,
                    mounted_rootfs: !req.rootfs.is_empty(),
                    io_uid: opts.io_uid,
                    io_gid: opts.io_gid,
                    oom,
                    restore,
                },
            );
            self.events.publish(
                TASK_CREATE_EVENT_TOPIC,
                &ev::TaskCreate {
                    container_id: id.to_string(),
                    bundle: req.bundle.clone(),
                    rootfs: req.rootfs.clone(),
                    io: MessageField::some(ev::TaskIO {
                        stdin: req.stdin.clone(),
                        stdout: req.stdout.clone(),
                        stderr: req.stderr.clone(),
                        terminal: req.terminal,
                        ..Default::default()
                    }),
                    checkpoint: req.checkpoint.clone(),
                    pid,
                    ..Default::default()
                },
            );
            if pid != 0 {
                self.claim_exit(&mut all, pid);
            }
        }
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn watch_oom(&self, pid: u32, id: &str) -> Option<Arc<oom::Watch>> {
        oom::watch(pid, id, self.events.clone()).unwrap_or_else(|e| {
            eprintln!("containerd-shim-husk-v2: {id}: OOM events unavailable: {e}");
            None
        })
    }

    /// Start of a task created from a checkpoint: `husk restore` with the task's stdio, as
    /// containerd's runc shim runs `runc restore`. A failed restore's log is kept as
    /// <bundle>/criu-restore.log.
    fn restore_init(&self, id: &str, images: &str) -> TResult<StartResponse> {
        let (rt, bundle, paths, uid, gid) = self.with(id, |c| {
            Ok((
                c.runtime.clone(),
                c.bundle.clone(),
                c.init.paths.clone(),
                c.io_uid,
                c.io_gid,
            ))
        })?;
        let pid_file = bundle.join("init.pid");
        let work = bundle.join("criu-work");
        let started = (|| {
            let mut stdio = Prepared::new(&paths, uid, gid, id, &self.namespace)?;
            let (bundle_s, pid_s, work_s) = (
                bundle.to_string_lossy(),
                pid_file.to_string_lossy(),
                work.to_string_lossy(),
            );
            let args = [
                "restore",
                "--detach",
                "--pid-file",
                &pid_s,
                "--image-path",
                images,
                "--work-path",
                &work_s,
                "--bundle",
                &bundle_s,
                id,
            ];
            rt.run_with_io(&args, stdio.take_io())?;
            let pid = read_pid(&pid_file)?;
            Ok::<_, Error>((pid, stdio.attach()?))
        })();
        if started.is_err() {
            let _ = std::fs::copy(work.join("restore.log"), bundle.join("criu-restore.log"));
        }
        let _ = std::fs::remove_dir_all(&work);
        let (pid, io) = started.map_err(unknown)?;
        let oom = self.watch_oom(pid, id);
        let shares = shares_pid_ns(&bundle);
        let mut all = self.lock();
        let Some(c) = all.get_mut(id) else {
            return Err(not_found(format_args!("container {id}")));
        };
        c.init.pid = pid;
        c.init.state = State::Running;
        c.init.io = Some(io);
        c.oom = oom;
        c.shares_pid_ns = shares;
        self.events.publish(
            TASK_START_EVENT_TOPIC,
            &ev::TaskStart {
                container_id: id.to_string(),
                pid,
                ..Default::default()
            },
        );
        self.claim_exit(&mut all, pid);
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn start_init(&self, id: &str) -> TResult<StartResponse> {
        if let Some(images) = self.with(id, |c| Ok(c.restore.take()))? {
            return self.restore_init(id, &images);
        }
        let rt = self.runtime(id)?;
        rt.run(&["start", id], None).map_err(unknown)?;
        self.with(id, |c| {
            if c.init.state == State::Created && c.init.exit.is_none() {
                c.init.state = State::Running;
            }
            self.events.publish(
                TASK_START_EVENT_TOPIC,
                &ev::TaskStart {
                    container_id: id.to_string(),
                    pid: c.init.pid,
                    ..Default::default()
                },
            );
            Ok(StartResponse {
                pid: c.init.pid,
                ..Default::default()
            })
        })
    }

    fn start_exec(&self, id: &str, exec_id: &str) -> TResult<StartResponse> {
        let (rt, bundle, paths, spec, uid, gid) = self.with(id, |c| {
            if c.init.exit.is_some() || c.pending_init_exit.is_some() {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("container {id} is not running"),
                ));
            }
            let (rt, bundle, uid, gid) = (c.runtime.clone(), c.bundle.clone(), c.io_uid, c.io_gid);
            let p = c.proc_mut(exec_id)?;
            if p.pid != 0 {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("process {exec_id} already started"),
                ));
            }
            Ok((rt, bundle, p.paths.clone(), p.spec.clone(), uid, gid))
        })?;
        let spec_file = bundle.join(format!("exec-{exec_id}.json"));
        let pid_file = bundle.join(format!("exec-{exec_id}.pid"));
        let started = (|| {
            std::fs::write(&spec_file, &spec).ctx(|| format!("writing {}", spec_file.display()))?;
            let mut stdio = Prepared::new(&paths, uid, gid, id, &self.namespace)?;
            let spec_s = spec_file.to_string_lossy();
            let pid_s = pid_file.to_string_lossy();
            let mut args = vec![
                "exec",
                "--detach",
                "--process",
                &spec_s,
                "--pid-file",
                &pid_s,
            ];
            let console = stdio
                .console_socket()
                .map(|p| p.to_string_lossy().into_owned());
            if let Some(c) = &console {
                args.extend(["--console-socket", c]);
            }
            args.push(id);
            rt.run_with_io(&args, stdio.take_io())?;
            let pid = read_pid(&pid_file)?;
            Ok::<_, Error>((pid, stdio.attach()?))
        })();
        let _ = std::fs::remove_file(&spec_file);
        let _ = std::fs::remove_file(&pid_file);
        let (pid, io) = started.map_err(unknown)?;
        let mut all = self.lock();
        let Some(c) = all.get_mut(id) else {
            return Err(not_found(format_args!("container {id}")));
        };
        let p = c.proc_mut(exec_id)?;
        p.pid = pid;
        p.state = State::Running;
        p.io = Some(io);
        self.events.publish(
            TASK_EXEC_STARTED_EVENT_TOPIC,
            &ev::TaskExecStarted {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                pid,
                ..Default::default()
            },
        );
        // It may have exited already: its exit waits with the reaper until now.
        self.claim_exit(&mut all, pid);
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn delete_task(&self, id: &str, exec_id: &str) -> TResult<DeleteResponse> {
        if !exec_id.is_empty() {
            let mut p = self.with(id, |c| {
                let p = c.proc(exec_id)?;
                if p.running() {
                    return Err(status(
                        Code::FAILED_PRECONDITION,
                        format!("cannot delete running process {exec_id}"),
                    ));
                }
                Ok(c.execs.remove(exec_id).unwrap())
            })?;
            if let Some(io) = p.io.as_mut() {
                io.wait_output(Duration::from_secs(2));
            }
            return Ok(delete_response(&p));
        }
        let rt = self.with(id, |c| {
            if c.init.state != State::Created && c.init.exit.is_none() {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("cannot delete running task {id}"),
                ));
            }
            Ok(c.runtime.clone())
        })?;
        // Output first: what the process wrote before exiting belongs to the client.
        let mut io = self.with(id, |c| Ok(c.init.io.take()))?;
        if let Some(io) = io.as_mut() {
            io.wait_output(Duration::from_secs(2));
        }
        if let Err(e) = rt.run(&["delete", "--force", id], None) {
            if !e.to_string().contains("does not exist") {
                self.with(id, |c| {
                    c.init.io = io;
                    Ok(())
                })?;
                return Err(unknown(e));
            }
        }
        // A created init was killed by delete: give the reaper a moment to see it.
        let mut all = self.lock();
        let deadline = Instant::now() + Duration::from_secs(1);
        while all.get(id).is_some_and(|c| c.init.exit.is_none()) && Instant::now() < deadline {
            all = self
                .exited
                .wait_timeout(all, Duration::from_millis(20))
                .unwrap()
                .0;
        }
        let Some(c) = all.remove(id) else {
            return Err(not_found(format_args!("container {id}")));
        };
        drop(all);
        if c.mounted_rootfs {
            mounts::unmount_rootfs(&c.bundle.join("rootfs"));
        }
        let resp = delete_response(&c.init);
        self.events.publish(
            TASK_DELETE_EVENT_TOPIC,
            &ev::TaskDelete {
                container_id: id.to_string(),
                pid: resp.pid,
                exit_status: resp.exit_status,
                exited_at: resp.exited_at.clone(),
                id: id.to_string(),
                ..Default::default()
            },
        );
        self.exited.notify_all();
        Ok(resp)
    }

    fn kill_task(&self, req: &KillRequest) -> TResult<()> {
        let (rt, target) = self.with(&req.id, |c| {
            let p = c.proc(&req.exec_id)?;
            if p.exit.is_some() || (req.exec_id.is_empty() && c.pending_init_exit.is_some()) {
                return Err(not_found("process already finished"));
            }
            if p.pid == 0 {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("process {} not started", req.exec_id),
                ));
            }
            Ok((c.runtime.clone(), p.pid))
        })?;
        if req.exec_id.is_empty() {
            let sig = req.signal.to_string();
            let mut args = vec!["kill"];
            if req.all {
                args.push("--all");
            }
            args.extend([req.id.as_str(), sig.as_str()]);
            if let Err(e) = rt.run(&args, None) {
                let gone = self.with(&req.id, |c| {
                    Ok(c.init.exit.is_some() || c.pending_init_exit.is_some())
                })?;
                return Err(if gone {
                    not_found("process already finished")
                } else {
                    unknown(e)
                });
            }
            return Ok(());
        }
        if !(1..=64).contains(&req.signal) {
            return Err(status(
                Code::INVALID_ARGUMENT,
                format!("invalid signal {}", req.signal),
            ));
        }
        // Real-time signals too (systemd stops on SIGRTMIN+3): nix's Signal has none.
        match husk::sys::kill_raw(Pid::from_raw(target as i32), req.signal as i32) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::ESRCH) => Err(not_found("process already finished")),
            Err(e) => Err(unknown(Error::sys(format!("kill of exec pid {target}"), e))),
        }
    }

    /// Pause or resume through the runtime, then the state and event that follow.
    /// `husk checkpoint` with the options containerd sends (runc's CheckpointOptions), as
    /// containerd's runc shim runs it: a work directory of ours unless one is given, whose
    /// dump.log is kept as <bundle>/criu-dump.log when the dump fails. With `exit` the
    /// container's processes end with the dump and their exit comes from the reaper.
    fn checkpoint_task(&self, req: &CheckpointTaskRequest) -> TResult<()> {
        let id = req.id.as_str();
        let (rt, bundle) = self.with(id, |c| Ok((c.runtime.clone(), c.bundle.clone())))?;
        let o = match req.options.as_ref().filter(|a| !a.type_url.is_empty()) {
            Some(any) => oci::CheckpointOptions::parse_from_bytes(&any.value).map_err(|e| {
                status(
                    Code::INVALID_ARGUMENT,
                    format!("decoding checkpoint options: {e}"),
                )
            })?,
            None => oci::CheckpointOptions::default(),
        };
        let image = if o.image_path.is_empty() {
            req.path.clone()
        } else {
            o.image_path.clone()
        };
        if image.is_empty() {
            return Err(status(Code::INVALID_ARGUMENT, "checkpoint: no image path"));
        }
        let ours = o.work_path.is_empty();
        let work = if ours {
            bundle.join("criu-work").to_string_lossy().into_owned()
        } else {
            o.work_path.clone()
        };
        let mut args = vec!["checkpoint", "--image-path", &image, "--work-path", &work];
        for (on, flag) in [
            (!o.exit, "--leave-running"),
            (o.open_tcp, "--tcp-established"),
            (o.external_unix_sockets, "--ext-unix-sk"),
            (o.terminal, "--shell-job"),
            (o.file_locks, "--file-locks"),
        ] {
            if on {
                args.push(flag);
            }
        }
        for ns in &o.empty_namespaces {
            args.extend(["--empty-ns", ns]);
        }
        if !o.cgroups_mode.is_empty() {
            args.extend(["--manage-cgroups-mode", &o.cgroups_mode]);
        }
        args.push(id);
        let result = rt.run(&args, None);
        if result.is_err() {
            let _ = std::fs::copy(
                Path::new(&work).join("dump.log"),
                bundle.join("criu-dump.log"),
            );
        }
        if ours {
            let _ = std::fs::remove_dir_all(&work);
        }
        result.map_err(unknown)?;
        let e = ev::TaskCheckpointed {
            container_id: id.to_string(),
            ..Default::default()
        };
        self.events.publish(TASK_CHECKPOINTED_EVENT_TOPIC, &e);
        Ok(())
    }

    fn freeze(&self, id: &str, pause: bool) -> TResult<Empty> {
        let rt = self.runtime(id)?;
        rt.run(&[if pause { "pause" } else { "resume" }, id], None)
            .map_err(unknown)?;
        self.with(id, |c| {
            if c.init.exit.is_none() {
                c.init.state = if pause { State::Paused } else { State::Running };
            }
            Ok(())
        })?;
        if pause {
            let e = ev::TaskPaused {
                container_id: id.to_string(),
                ..Default::default()
            };
            self.events.publish(TASK_PAUSED_EVENT_TOPIC, &e);
        } else {
            let e = ev::TaskResumed {
                container_id: id.to_string(),
                ..Default::default()
            };
            self.events.publish(TASK_RESUMED_EVENT_TOPIC, &e);
        }
        Ok(Empty::new())
    }
}

fn delete_response(p: &Proc) -> DeleteResponse {
    let exit = p.exit.unwrap_or(Exit {
        status: 0,
        at: SystemTime::now(),
    });
    DeleteResponse {
        pid: p.pid,
        exit_status: exit.status,
        exited_at: timestamp(exit.at),
        ..Default::default()
    }
}

impl containerd_shim_protos::Task for Service {
    fn state(&self, _: &TtrpcContext, req: StateRequest) -> TResult<StateResponse> {
        self.with(&req.id, |c| {
            let p = c.proc(&req.exec_id)?;
            let mut r = StateResponse {
                id: req.id.clone(),
                bundle: c.bundle.to_string_lossy().into_owned(),
                pid: p.pid,
                status: proc_state(p.state).into(),
                stdin: p.paths.stdin.clone(),
                stdout: p.paths.stdout.clone(),
                stderr: p.paths.stderr.clone(),
                terminal: p.paths.terminal,
                exec_id: req.exec_id.clone(),
                ..Default::default()
            };
            if let Some(e) = p.exit {
                r.exit_status = e.status;
                r.exited_at = timestamp(e.at);
            }
            Ok(r)
        })
    }

    fn create(&self, _: &TtrpcContext, req: CreateTaskRequest) -> TResult<CreateTaskResponse> {
        self.create_task(&req)
    }

    fn start(&self, _: &TtrpcContext, req: StartRequest) -> TResult<StartResponse> {
        if req.exec_id.is_empty() {
            self.start_init(&req.id)
        } else {
            self.start_exec(&req.id, &req.exec_id)
        }
    }

    fn delete(&self, _: &TtrpcContext, req: DeleteRequest) -> TResult<DeleteResponse> {
        self.delete_task(&req.id, &req.exec_id)
    }

    fn pids(&self, _: &TtrpcContext, req: PidsRequest) -> TResult<PidsResponse> {
        let rt = self.runtime(&req.id)?;
        let out = rt
            .run(&["ps", "--format", "json", &req.id], None)
            .map_err(unknown)?;
        let pids: Vec<u32> = serde_json::from_slice(&out)
            .map_err(|e| status(Code::UNKNOWN, format!("reading ps output: {e}")))?;
        self.with(&req.id, |c| {
            let processes = pids
                .into_iter()
                .map(|pid| {
                    let mut info = ProcessInfo {
                        pid,
                        ..Default::default()
                    };
                    if let Some(p) = c.execs.values().find(|p| p.pid == pid) {
                        let d = ProcessDetails {
                            exec_id: p.exec_id.clone(),
                            ..Default::default()
                        };
                        info.info =
                            MessageField::some(to_any("containerd.runc.v1.ProcessDetails", &d));
                    }
                    info
                })
                .collect();
            Ok(PidsResponse {
                processes,
                ..Default::default()
            })
        })
    }

    fn pause(&self, _: &TtrpcContext, req: PauseRequest) -> TResult<Empty> {
        self.freeze(&req.id, true)
    }

    fn resume(&self, _: &TtrpcContext, req: ResumeRequest) -> TResult<Empty> {
        self.freeze(&req.id, false)
    }

    fn checkpoint(&self, _: &TtrpcContext, req: CheckpointTaskRequest) -> TResult<Empty> {
        self.checkpoint_task(&req).map(|()| Empty::new())
    }

    fn kill(&self, _: &TtrpcContext, req: KillRequest) -> TResult<Empty> {
        self.kill_task(&req).map(|()| Empty::new())
    }

    fn exec(&self, _: &TtrpcContext, req: ExecProcessRequest) -> TResult<Empty> {
        self.with(&req.id, |c| {
            if c.execs.contains_key(&req.exec_id) {
                return Err(status(
                    Code::ALREADY_EXISTS,
                    format!("id {}: already exists", req.exec_id),
                ));
            }
            if c.init.exit.is_some() || c.pending_init_exit.is_some() {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("container {} is not running", req.id),
                ));
            }
            let spec = req
                .spec
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_default();
            c.execs.insert(
                req.exec_id.clone(),
                Proc {
                    exec_id: req.exec_id.clone(),
                    pid: 0,
                    state: State::Created,
                    exit: None,
                    paths: Paths {
                        stdin: req.stdin.clone(),
                        stdout: req.stdout.clone(),
                        stderr: req.stderr.clone(),
                        terminal: req.terminal,
                    },
                    io: None,
                    spec,
                },
            );
            self.events.publish(
                TASK_EXEC_ADDED_EVENT_TOPIC,
                &ev::TaskExecAdded {
                    container_id: req.id.clone(),
                    exec_id: req.exec_id.clone(),
                    ..Default::default()
                },
            );
            Ok(Empty::new())
        })
    }

    fn resize_pty(&self, _: &TtrpcContext, req: ResizePtyRequest) -> TResult<Empty> {
        self.with(&req.id, |c| {
            let p = c.proc(&req.exec_id)?;
            match &p.io {
                Some(io) => io.resize(req.width, req.height).map_err(unknown)?,
                None => {
                    return Err(status(
                        Code::FAILED_PRECONDITION,
                        "the process has no terminal",
                    ))
                }
            }
            Ok(Empty::new())
        })
    }

    fn close_io(&self, _: &TtrpcContext, req: CloseIORequest) -> TResult<Empty> {
        self.with(&req.id, |c| {
            if let Some(io) = &c.proc(&req.exec_id)?.io {
                io.close_stdin();
            }
            Ok(Empty::new())
        })
    }

    fn update(&self, _: &TtrpcContext, req: UpdateTaskRequest) -> TResult<Empty> {
        let rt = self.runtime(&req.id)?;
        let resources = req
            .resources
            .as_ref()
            .map(|r| r.value.clone())
            .unwrap_or_default();
        rt.run(&["update", "--resources", "-", &req.id], Some(&resources))
            .map_err(unknown)?;
        Ok(Empty::new())
    }

    fn wait(&self, _: &TtrpcContext, req: WaitRequest) -> TResult<WaitResponse> {
        let mut all = self.lock();
        loop {
            let c = all
                .get(&req.id)
                .ok_or_else(|| not_found(format_args!("container {}", req.id)))?;
            if let Some(e) = c.proc(&req.exec_id)?.exit {
                return Ok(WaitResponse {
                    exit_status: e.status,
                    exited_at: timestamp(e.at),
                    ..Default::default()
                });
            }
            all = self.exited.wait(all).unwrap();
        }
    }

    fn stats(&self, _: &TtrpcContext, req: StatsRequest) -> TResult<StatsResponse> {
        let rt = self.runtime(&req.id)?;
        let out = rt
            .run(&["events", "--stats", &req.id], None)
            .map_err(unknown)?;
        let v: serde_json::Value = serde_json::from_slice(&out)
            .map_err(|e| status(Code::UNKNOWN, format!("reading events --stats output: {e}")))?;
        Ok(StatsResponse {
            stats: MessageField::some(metrics::from_runc_stats(&v["data"], oom::unified())),
            ..Default::default()
        })
    }

    fn connect(&self, _: &TtrpcContext, req: ConnectRequest) -> TResult<ConnectResponse> {
        let task_pid = self.lock().get(&req.id).map_or(0, |c| c.init.pid);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            ..Default::default()
        })
    }

    fn shutdown(&self, _: &TtrpcContext, req: ShutdownRequest) -> TResult<Empty> {
        if req.now || self.lock().is_empty() {
            let _ = self.shutdown.lock().unwrap().send(());
        }
        Ok(Empty::new())
    }
}
