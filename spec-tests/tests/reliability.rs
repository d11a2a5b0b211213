//! Crashes and crowds: husk SIGKILLed between any two phases of create, then
//! `delete --force`; a hundred lifecycles at once; twenty commands racing on one id.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spec_tests::*;

const CREATE_PHASES: &[&str] = &[
    "open bundle",
    "load config",
    "check rootfs",
    "open namespaces",
    "compile seccomp",
    "claim id",
    "save config",
    "create cgroup",
    "make exec fifo",
    "join cgroup",
    "create namespaces",
    "prepare rootfs",
    "run createRuntime hooks",
    "finish container init",
    "save state",
    "write pid file",
];

fn wait_stopped(pid: u32, phase: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = proc_state(pid);
        if state == Some('T') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "husk never stopped after {phase}: state {state:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn sigkill_between_any_two_create_phases_then_delete_force_leaves_nothing() {
    let c = Ctx::new("crash", &["sleep", "100"]);
    let bundle = c.bundle.dir.to_string_lossy().into_owned();
    for (n, phase) in CREATE_PHASES.iter().enumerate() {
        let id = format!("{}-k{n}", c.id);
        let pid_file = c.root.join(format!("{id}.pid"));
        let mut child = c
            .cmd(&[
                "create",
                "--bundle",
                &bundle,
                "--pid-file",
                &pid_file.to_string_lossy(),
                &id,
            ])
            .env("HUSK_FAULT_STOP_AFTER", phase)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_stopped(child.id(), phase);
        child.kill().unwrap();
        child.wait().unwrap();

        // A half-made container is listed as it is, not an error.
        let list = c.husk(&["list", "--format", "json"]);
        assert!(
            list.status.success(),
            "after {phase}: list: {}",
            stderr(&list)
        );
        let del = c.husk(&["delete", "--force", &id]);
        let listed = stdout(&list).contains(&format!("\"{id}\""));
        assert!(
            del.status.success() || !listed,
            "after {phase}: delete --force: {}",
            stderr(&del)
        );
        assert!(!c.root.join(&id).exists(), "after {phase}: state dir left");
        let cgroups = find_dirs_named(std::path::Path::new("/sys/fs/cgroup"), &id, 6);
        assert!(
            cgroups.is_empty(),
            "after {phase}: cgroups left: {cgroups:?}"
        );
        // Zombies aside (this machine's pid 1 reaps orphans late), nothing of it runs.
        let ps = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "for f in $(grep -l {id} /proc/[0-9]*/cgroup 2>/dev/null); do \
                 d=${{f%/cgroup}}; grep -q '^State:.*Z' $d/status || echo $d; done"
            ))
            .output()
            .unwrap();
        assert!(
            stdout(&ps).is_empty(),
            "after {phase}: processes left: {}",
            stdout(&ps)
        );
    }
}

#[test]
fn a_hundred_lifecycles_at_once_while_listing() {
    let c = Ctx::new("hundred", &["true"]);
    let bundle = c.bundle.dir.to_string_lossy().into_owned();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let lister = s.spawn(|| {
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let o = c.husk(&["list", "--format", "json"]);
                assert!(o.status.success(), "list during the storm: {}", stderr(&o));
                serde_json::from_str::<Value>(&stdout(&o)).expect("list prints JSON");
                n += 1;
            }
            n
        });
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (c, bundle) = (&c, &bundle);
                s.spawn(move || {
                    for i in 0..25 {
                        let id = format!("{}-{w}-{i}", c.id);
                        let o = c.husk(&["run", "--bundle", bundle, &id]);
                        assert!(o.status.success(), "run {id}: {}", stderr(&o));
                        assert!(!c.root.join(&id).exists(), "{id}: state left after run");
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(lister.join().unwrap() > 0);
    });
    let list = c.husk(&["list", "-q"]);
    assert_eq!(stdout(&list).trim(), "", "containers left");
}

#[test]
fn twenty_racing_deletes_of_one_container_one_wins() {
    let c = Ctx::new("race", &["true"]);
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    c.wait_status("stopped");
    let race = |c: &Ctx, args: &[&str]| -> Vec<std::process::Output> {
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..20).map(|_| s.spawn(|| c.husk(args))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let outs = race(&c, &["delete", &c.id]);
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(
        won,
        1,
        "exactly one delete wins: {:?}",
        outs.iter().map(stderr).collect::<Vec<_>>()
    );
    for o in outs.iter().filter(|o| !o.status.success()) {
        let e = stderr(o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("does not exist"), "the losers say why: {e}");
    }
    c.assert_no_residue();

    // --force is idempotent, as with runc: every racer succeeds, a running container goes.
    let c = Ctx::new("race-force", &["sleep", "100"]);
    c.create_ok();
    assert!(c.husk(&["start", &c.id]).status.success());
    for o in race(&c, &["delete", "--force", &c.id]) {
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stderr(&o), "");
    }
    c.assert_no_residue();
}

/// Syscall failures injected with strace: each create fails with one line naming the failed
/// step and errno, and leaves no state directory or cgroup.
#[test]
fn injected_syscall_failures_give_one_line_and_no_residue() {
    // hack/test.sh installs strace; the cgroup v2 VM has none.
    if Command::new("strace").arg("-V").output().is_err() {
        return eprintln!("skipped: no strace");
    }
    let cases = [
        ("mkdir:error=ENOSPC:when=1", "ENOSPC"),
        ("mkdir:error=EPERM:when=3", "EPERM"),
        ("mount:error=EBUSY:when=3", "EBUSY"),
        ("clone:error=EAGAIN:when=1", "fork"),
        ("write:error=ENOSPC:when=5", "ENOSPC"),
        ("mknodat:error=EPERM", "exec fifo"),
        ("symlink:error=EROFS", "EROFS"),
        ("close_range:error=EINVAL", "close_range"),
        ("pivot_root:error=EPERM", "pivot_root"),
        ("unshare:error=ENOMEM", "ENOMEM"),
        ("sethostname:error=EPERM", "hostname"),
        ("rename:error=EIO", "EIO"),
    ];
    let c = Ctx::new("inject", &["true"]);
    let bundle = c.bundle.dir.to_string_lossy().into_owned();
    for (n, (inject, want)) in cases.iter().enumerate() {
        let id = format!("{}-{n}", c.id);
        let root = c.root.join(format!("r{n}"));
        let out = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                &format!("inject={inject}"),
            ])
            .arg(husk_bin())
            .arg("--root")
            .arg(&root)
            .args(["run", "--bundle", &bundle, &id])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{inject}: {err}");
        assert_eq!(err.lines().count(), 1, "{inject}: {err}");
        assert!(err.contains(want), "{inject}: {err} lacks {want}");
        assert!(!root.join(&id).exists(), "{inject}: state left");
        let cgroups = find_dirs_named(std::path::Path::new("/sys/fs/cgroup"), &id, 6);
        assert!(cgroups.is_empty(), "{inject}: cgroups left: {cgroups:?}");
    }
}
