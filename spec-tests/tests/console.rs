//! process.terminal: the pty master arrives over --console-socket as exactly one fd.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;

use spec_tests::*;

fn receive_master(listener: UnixListener) -> std::thread::JoinHandle<(usize, std::fs::File)> {
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (_, mut fds) = recv_with_fds(&conn);
        assert!(!fds.is_empty(), "no fd received");
        (fds.len(), std::fs::File::from(fds.remove(0)))
    })
}

#[test]
fn console_socket_receives_the_pty_master() {
    let mut c = Ctx::new(
        "tty",
        &[
            "sh",
            "-c",
            "tty; test -t 0 && echo stdin-tty; stty size; read x; echo got:$x",
        ],
    );
    c.config()["process"]["terminal"] = json!(true);
    c.config()["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    let sock = c.root.parent().unwrap().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let handle = receive_master(listener);
    c.bundle.write();
    let b = c.bundle.dir.to_string_lossy().to_string();
    let out = c.husk(&[
        "create",
        "--bundle",
        &b,
        "--console-socket",
        sock.to_str().unwrap(),
        &c.id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (count, mut master) = handle.join().unwrap();
    assert_eq!(count, 1, "exactly one fd");
    assert!(c.husk(&["start", &c.id]).status.success());
    let text = read_until(&mut master, "33 101");
    // Type only once the shell waits in `read`, so the echo cannot interleave.
    master.write_all(b"hello\n").unwrap();
    let text = text + &read_until(&mut master, "got:hello");
    let text = text.replace('\r', "");
    assert!(text.contains("/dev/pts/0\nstdin-tty\n33 101\n"), "{text}");
    assert!(text.contains("got:hello"), "{text}");
}

#[test]
fn terminal_without_console_socket_is_refused_for_create() {
    let mut c = Ctx::new("ttynosock", &["true"]);
    c.config()["process"]["terminal"] = json!(true);
    let out = c.create();
    assert_one_line_error(&out, &["console-socket"]);
    c.assert_no_residue();
}

fn read_until(f: &mut std::fs::File, want: &str) -> String {
    let mut text = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&text).contains(want) {
            break;
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn foreground_run_with_a_terminal_gives_the_user_its_tty_even_with_a_readonly_dev() {
    let mut c = Ctx::new(
        "ttyowner",
        &[
            "sh",
            "-c",
            "stat -c '%u %g' $(tty); test -t 1 && echo out-tty",
        ],
    );
    c.config()["process"]["terminal"] = json!(true);
    c.config()["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    for m in c.config()["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    let out = c.run_ok().replace('\r', "");
    assert_eq!(out, "1000 5\nout-tty\n");
}

#[test]
fn a_missing_console_socket_is_named_and_leaves_nothing() {
    let mut c = Ctx::new("ttygone", &["true"]);
    c.config()["process"]["terminal"] = json!(true);
    c.bundle.write();
    let sock = c.root.parent().unwrap().join("no-such.sock");
    let b = c.bundle.dir.to_string_lossy().to_string();
    let out = c.husk(&[
        "create",
        "--bundle",
        &b,
        "--console-socket",
        sock.to_str().unwrap(),
        &c.id,
    ]);
    assert_one_line_error(&out, &["no-such.sock", "ENOENT"]);
    c.assert_no_residue();
}
