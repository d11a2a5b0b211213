//! containerd-shim-husk-v2 behind a real containerd (Debian's 1.6), driven with `ctr`; and the
//! same scenarios through containerd's own Go runc shim with husk as its BinaryName.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spec_tests::containerd::{Containerd, Shim, IMAGE};

/// Each scenario twice: on our shim, and on containerd's runc shim driving husk.
macro_rules! on_both_shims {
    ($($name:ident),* $(,)?) => {
        mod husk_shim {
            $( #[test] fn $name() { super::$name(super::Shim::Husk, stringify!($name)) } )*
        }
        mod runc_shim {
            $( #[test] fn $name() { super::$name(super::Shim::RuncGo, stringify!($name)) } )*
        }
    };
}

on_both_shims!(
    run_prints_output_and_passes_the_exit_code,
    exec_with_stdin_with_a_terminal_and_exit_codes,
    kill_pause_resume_ps_and_metrics,
    events_come_in_containerds_order_with_oom_before_exit,
    twenty_containers_at_once,
    a_killed_shim_is_cleaned_up_by_its_delete,
    a_failed_create_reports_husks_error_and_leaves_nothing,
    the_shim_outlives_a_containerd_restart,
    checkpoint_leaves_the_task_running_or_ends_it_with_exit,
    a_container_restored_from_its_checkpoint_runs_on,
);

fn start(shim: Shim, test: &str) -> Containerd {
    // Short names: they end up in socket paths.
    let tag: String = test
        .split('_')
        .take(3)
        .map(|w| &w[..w.len().min(3)])
        .collect();
    let suffix = if shim == Shim::Husk { "h" } else { "g" };
    Containerd::start_with(&format!("{tag}{suffix}"), shim)
}

/// `ctr run` arguments: the shim's flags, then `rest`.
fn run_args<'a>(c: &'a Containerd, head: &[&'a str], rest: &[&'a str]) -> Vec<String> {
    let mut a: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    a.extend(c.runtime_args());
    a.extend(rest.iter().map(|s| s.to_string()));
    a
}

/// `ctr run --rm` on this containerd's shim with `rest` (image, id, command).
fn run_rm(c: &Containerd, rest: &[&str]) -> std::process::Output {
    ctr(c, &run_args(c, &["run", "--rm"], rest))
}

fn ctr(c: &Containerd, args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    c.ctr(&args)
}

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run_detached(c: &Containerd, id: &str, args: &[&str]) {
    let mut rest = vec![IMAGE, id];
    rest.extend_from_slice(args);
    let o = ctr(c, &run_args(c, &["run", "-d"], &rest));
    assert!(o.status.success(), "ctr run -d {id}: {}", out(&o));
}

fn kill_and_remove(c: &Containerd, id: &str) {
    c.ctr_ok(&["task", "kill", "-s", "KILL", id]);
    wait_for(c, id, "STOPPED");
    c.ctr_ok(&["task", "rm", id]);
    c.ctr_ok(&["container", "rm", id]);
}

fn wait_for(c: &Containerd, id: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.task_status(id).as_deref() != Some(status) {
        assert!(
            Instant::now() < deadline,
            "{id} never became {status}: {:?}",
            c.task_status(id)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_prints_output_and_passes_the_exit_code(shim: Shim, test: &str) {
    let c = start(shim, test);
    let o = run_rm(
        &c,
        &[
            IMAGE,
            "r1",
            "sh",
            "-c",
            "echo hello from husk; echo to-stderr >&2; exit 3",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from husk\n");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("to-stderr"),
        "{}",
        out(&o)
    );
    c.assert_no_residue();
}

fn exec_with_stdin_with_a_terminal_and_exit_codes(shim: Shim, test: &str) {
    let c = start(shim, test);
    run_detached(&c, "e1", &["sleep", "1000"]);

    let o = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        "e1",
        "sh",
        "-c",
        "echo exec-out; exit 5",
    ]);
    assert_eq!(o.status.code(), Some(5), "{}", out(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "exec-out\n");

    // stdin reaches the process and its end is EOF.
    let mut child = c
        .ctr_cmd(&[
            "task",
            "exec",
            "--exec-id",
            "x2",
            "e1",
            "sh",
            "-c",
            "cat; echo done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"line one\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "line one\ndone\n");

    // A terminal: `script` gives ctr one, the process gets a pty from husk.
    let ctr = format!(
        "ctr --address {} --namespace {} task exec -t --exec-id x3 e1 sh -c 'tty; exit 4'",
        c.sock.display(),
        c.namespace
    );
    let o = Command::new("script")
        .args(["-qec", &ctr, "/dev/null"])
        .env("PATH", spec_tests::containerd::path_env())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("/dev/pts/"),
        "{}",
        out(&o)
    );

    kill_and_remove(&c, "e1");
    c.assert_no_residue();
}

fn kill_pause_resume_ps_and_metrics(shim: Shim, test: &str) {
    let c = start(shim, test);
    run_detached(&c, "o1", &["sleep", "1000"]);
    c.ctr_ok(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "bg",
        "o1",
        "sleep",
        "1000",
    ]);

    c.ctr_ok(&["task", "pause", "o1"]);
    assert_eq!(c.task_status("o1").as_deref(), Some("PAUSED"));
    c.ctr_ok(&["task", "resume", "o1"]);
    assert_eq!(c.task_status("o1").as_deref(), Some("RUNNING"));

    let ps = c.ctr_ok(&["task", "ps", "o1"]);
    assert_eq!(ps.lines().count(), 3, "init and one exec: {ps}");
    assert!(ps.contains("bg"), "the exec's id in ps: {ps}");

    let m = c.ctr_ok(&["task", "metrics", "o1"]);
    assert!(m.contains("pids.current") || m.contains("pids"), "{m}");
    assert!(m.contains("memory"), "{m}");

    // SIGTERM to a pid-1 `sleep` without a handler is ignored, as with runc.
    c.ctr_ok(&["task", "kill", "o1"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.task_status("o1").as_deref(), Some("RUNNING"));
    let o = c.ctr(&["task", "rm", "o1"]);
    assert!(!o.status.success(), "a running task cannot be deleted");

    c.ctr_ok(&["task", "kill", "-s", "KILL", "o1"]);
    wait_for(&c, "o1", "STOPPED");
    let o = c.ctr(&["task", "kill", "-s", "KILL", "o1"]);
    assert!(!o.status.success(), "killing a stopped task fails");
    let rm = c.ctr_ok(&["task", "rm", "o1"]);
    assert!(rm.is_empty(), "{rm}");
    c.ctr_ok(&["container", "rm", "o1"]);
    c.assert_no_residue();
}

fn events_come_in_containerds_order_with_oom_before_exit(shim: Shim, test: &str) {
    let c = start(shim, test);
    let log = c.dir.join("events.txt");
    let mut events = c
        .ctr_cmd(&["events"])
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    run_detached(&c, "v1", &["sleep", "1000"]);
    c.ctr_ok(&[
        "task",
        "exec",
        "-d",
        "--exec-id",
        "bg",
        "v1",
        "sleep",
        "1000",
    ]);
    kill_and_remove(&c, "v1");
    // containerd 1.6's Go shim starts watching for OOM only after Start returns, and misses
    // an OOM that comes sooner; ours watches from Create. The Go shim's run gets a head start.
    let hog = if c.shim == Shim::Husk {
        "x=a; while true; do x=$x$x; done"
    } else {
        "sleep 1; x=a; while true; do x=$x$x; done"
    };
    let o = run_rm(
        &c,
        &["--memory-limit", "16000000", IMAGE, "m1", "sh", "-c", hog],
    );
    assert_eq!(o.status.code(), Some(137), "{}", out(&o));
    std::thread::sleep(Duration::from_millis(300));
    let _ = events.kill();
    let _ = events.wait();

    let text = std::fs::read_to_string(&log).unwrap();
    let topics = |id: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("/tasks/") && l.contains(&format!("\"container_id\":\"{id}\"")))
            .map(|l| {
                let topic = l
                    .split_whitespace()
                    .find(|w| w.starts_with("/tasks/"))
                    .unwrap();
                let exec = if l.contains("\"id\":\"bg\"") || l.contains("\"exec_id\":\"bg\"") {
                    "(bg)"
                } else {
                    ""
                };
                format!("{topic}{exec}")
            })
            .collect()
    };
    assert_eq!(
        topics("v1"),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added(bg)",
            "/tasks/exec-started(bg)",
            "/tasks/exit(bg)",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{text}"
    );
    assert_eq!(
        topics("m1"),
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/oom",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "{text}"
    );
    c.assert_no_residue();
}

fn twenty_containers_at_once(shim: Shim, test: &str) {
    let c = start(shim, test);
    let ids: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
    std::thread::scope(|s| {
        for id in &ids {
            let c = &c;
            s.spawn(move || run_detached(c, id, &["sleep", "1000"]));
        }
    });
    let tasks = c.tasks();
    for id in &ids {
        assert!(
            tasks.contains(&(id.clone(), "RUNNING".into())),
            "{id}: {tasks:?}"
        );
    }
    std::thread::scope(|s| {
        for id in &ids {
            let c = &c;
            s.spawn(move || kill_and_remove(c, id));
        }
    });
    c.assert_no_residue();
}

fn a_killed_shim_is_cleaned_up_by_its_delete(shim: Shim, test: &str) {
    let c = start(shim, test);
    run_detached(&c, "k1", &["sleep", "1000"]);
    let shims = c.shims();
    assert_eq!(shims.len(), 1, "{shims:?}");
    let address = std::fs::read_to_string(
        c.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&c.namespace)
            .join("k1/address"),
    )
    .unwrap();
    let socket = std::path::PathBuf::from(address.trim().trim_start_matches("unix://"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shims[0]),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    // containerd sees the shim go, runs `containerd-shim-husk-v2 delete`, and the task is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.task_status("k1").is_some() {
        assert!(
            Instant::now() < deadline,
            "task k1 outlived its shim: {:?}\n{}",
            c.tasks(),
            c.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c.ctr_ok(&["container", "rm", "k1"]);
    c.assert_no_residue();
    // The dead shim's socket goes with it. containerd 1.6's Go shim leaves its own: removed
    // here, so that the end-of-suite residue check judges husk's shim only.
    if c.shim == Shim::Husk {
        assert!(!socket.exists(), "{} left", socket.display());
    } else {
        let _ = std::fs::remove_file(&socket);
    }
}

fn a_failed_create_reports_husks_error_and_leaves_nothing(shim: Shim, test: &str) {
    let c = start(shim, test);
    let o = run_rm(&c, &[IMAGE, "b1", "/no/such/binary"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/no/such/binary"), "{err}");
    let _ = c.ctr(&["container", "rm", "b1"]);
    c.assert_no_residue();
}

fn the_shim_outlives_a_containerd_restart(shim: Shim, test: &str) {
    let mut c = start(shim, test);
    run_detached(
        &c,
        "s1",
        &[
            "sh",
            "-c",
            "trap 'exit 9' TERM; while true; do sleep 0.1; done",
        ],
    );
    let shim = c.shims();
    assert_eq!(shim.len(), 1);
    // containerd's socket for this shim is for containerd alone.
    let address = std::fs::read_to_string(
        c.dir
            .join("state/io.containerd.runtime.v2.task")
            .join(&c.namespace)
            .join("s1/address"),
    )
    .unwrap();
    let socket = address.trim().trim_start_matches("unix://");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(socket).unwrap().permissions());
    if c.shim == Shim::Husk {
        assert_eq!(mode & 0o777, 0o600, "{socket}");
    }

    c.restart();
    assert_eq!(c.shims(), shim, "the same shim serves on");
    assert_eq!(c.task_status("s1").as_deref(), Some("RUNNING"));
    let o = c.ctr(&["task", "exec", "--exec-id", "x", "s1", "sh", "-c", "exit 6"]);
    assert_eq!(o.status.code(), Some(6), "{}", out(&o));
    c.ctr_ok(&["task", "kill", "s1"]);
    wait_for(&c, "s1", "STOPPED");
    c.ctr_ok(&["task", "rm", "s1"]);
    c.ctr_ok(&["container", "rm", "s1"]);
    c.assert_no_residue();
}

/// A `binary://` logging driver (nerdctl's default): the shim starts it with the container's
/// stdout and stderr as fds 3 and 4, waits for it to close fd 5, and passes the query as args.
#[test]
fn a_binary_logging_driver_gets_the_output() {
    let c = Containerd::start("binlog");
    let logger = c.dir.join("logger.sh");
    std::fs::write(
        &logger,
        "#!/bin/sh\necho \"$CONTAINER_ID $CONTAINER_NAMESPACE $1\" > \"$2.env\"\nexec 5>&-\n\
         cat <&3 > \"$2.out\" &\ncat <&4 > \"$2.err\" &\nwait\n",
    )
    .unwrap();
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let base = c.dir.join("log");
    let uri = format!("binary://{}?path={}", logger.display(), base.display());
    let o = ctr(
        &c,
        &run_args(
            &c,
            &["run", "--rm", "--log-uri", &uri],
            &[IMAGE, "l1", "sh", "-c", "echo to-out; echo to-err >&2"],
        ),
    );
    assert!(o.status.success(), "{}", out(&o));
    let read = |ext: &str| std::fs::read_to_string(base.with_extension(ext)).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while read("err") != "to-err\n" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(read("out"), "to-out\n");
    assert_eq!(read("err"), "to-err\n");
    assert_eq!(read("env"), format!("l1 {} path\n", c.namespace));
    // The logger ends when the container's output does (with its children reaped: it must
    // not inherit the shim's blocked SIGCHLD).
    let running = || {
        spec_tests::pids()
            .into_iter()
            .any(|pid| spec_tests::cmdline(pid).contains(&*logger.to_string_lossy()))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while running() {
        assert!(
            Instant::now() < deadline,
            "the logging binary outlived the container"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.assert_no_residue();
}

/// The task API's Checkpoint (what CRI's CheckpointContainer uses), with CRIU: where `criu
/// check` passes (the v2 VM). containerd keeps the images as a checkpoint image in its content
/// store (1.6 honours `--image-path` only for runtimes named io.containerd.runc*). Host
/// network: criu cannot dump a new network namespace in the VM.
fn checkpoint_leaves_the_task_running_or_ends_it_with_exit(shim: Shim, test: &str) {
    if !spec_tests::criu_works() {
        return;
    }
    let c = start(shim, test);
    // Two containers: ctr 1.6 refuses a second checkpoint of one whose spec blob it has
    // ("content … already exists").
    for id in ["ck", "cx"] {
        let o = ctr(
            &c,
            &run_args(
                &c,
                &["run", "-d", "--net-host"],
                &[
                    IMAGE,
                    id,
                    "sh",
                    "-c",
                    "while true; do date > /tmp/now; sleep 0.1; done",
                ],
            ),
        );
        assert!(o.status.success(), "ctr run -d {id}: {}", out(&o));
        wait_for(&c, id, "RUNNING");
    }
    let image = c.ctr_ok(&["task", "checkpoint", "ck"]);
    let image = image.trim();
    assert!(!image.is_empty(), "ctr names the checkpoint image");
    assert!(
        c.ctr_ok(&["image", "ls", "-q"]).lines().any(|l| l == image),
        "{image}"
    );
    assert_eq!(c.task_status("ck").as_deref(), Some("RUNNING"));
    c.ctr_ok(&[
        "task",
        "exec",
        "--exec-id",
        "after",
        "ck",
        "cat",
        "/tmp/now",
    ]);
    kill_and_remove(&c, "ck");

    // ctr 1.6 sends --exit (and --image-path) only to runtimes named io.containerd.runc*
    // ("withCheckpointOpts only suitable for runc runtime now"): our shim gets no options.
    if shim == Shim::Husk {
        kill_and_remove(&c, "cx");
        c.assert_no_residue();
        return;
    }
    let image = c.ctr_ok(&["task", "checkpoint", "--exit", "cx"]);
    assert!(!image.trim().is_empty());
    wait_for(&c, "cx", "STOPPED");
    c.ctr_ok(&["task", "rm", "cx"]);
    c.ctr_ok(&["container", "rm", "cx"]);
    c.assert_no_residue();
}

/// Create from a checkpoint, then Start: the task API's restore (`ctr containers checkpoint
/// --task`, then `ctr containers restore --live`), with CRIU where `criu check` passes.
fn a_container_restored_from_its_checkpoint_runs_on(shim: Shim, test: &str) {
    if !spec_tests::criu_works() {
        return;
    }
    let c = start(shim, test);
    let script =
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/c; mv /tmp/c /tmp/count; sleep 0.1; done";
    let o = ctr(
        &c,
        &run_args(
            &c,
            &["run", "-d", "--net-host"],
            &[IMAGE, "rs", "sh", "-c", script],
        ),
    );
    assert!(o.status.success(), "ctr run -d: {}", out(&o));
    wait_for(&c, "rs", "RUNNING");
    std::thread::sleep(Duration::from_millis(500));
    c.ctr_ok(&[
        "container",
        "checkpoint",
        "--task",
        "--rw",
        "rs",
        "checkpoint/rs:1",
    ]);
    kill_and_remove(&c, "rs");

    c.ctr_ok(&[
        "container",
        "restore",
        "--live",
        "--rw",
        "rs",
        "checkpoint/rs:1",
    ]);
    wait_for(&c, "rs", "RUNNING");
    // The restored loop counts on from where the checkpoint caught it (the rw layer came back
    // with the count it had then).
    let read = |exec: &str| -> u64 {
        let o = c.ctr_ok(&["task", "exec", "--exec-id", exec, "rs", "cat", "/tmp/count"]);
        o.trim().parse().unwrap_or_else(|_| panic!("count: {o:?}"))
    };
    let first = read("r1");
    std::thread::sleep(Duration::from_millis(500));
    let second = read("r2");
    assert!(first > 1 && second > first, "counts {first} then {second}");
    kill_and_remove(&c, "rs");
    c.ctr_ok(&["image", "rm", "checkpoint/rs:1"]);
    c.assert_no_residue();
}
