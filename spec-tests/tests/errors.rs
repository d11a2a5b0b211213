//! Bad input: one line naming what failed, exit status 1, nothing left behind.

use spec_tests::*;

#[test]
fn malformed_config_json() {
    let c = Ctx::new("badjson", &["true"]);
    std::fs::write(c.bundle.dir.join("config.json"), "{\"ociVersion\": ").unwrap();
    let b = c.bundle.dir.to_string_lossy().to_string();
    let out = c.husk(&["create", "--bundle", &b, &c.id]);
    assert_one_line_error(&out, &["config.json", "invalid JSON"]);
    c.assert_no_residue();
}

#[test]
fn missing_rootfs() {
    let mut c = Ctx::new("norootfs", &["true"]);
    c.config()["root"]["path"] = json!("does-not-exist");
    let out = c.create();
    assert_one_line_error(&out, &["root.path", "does-not-exist", "ENOENT"]);
    c.assert_no_residue();
}

#[test]
fn unknown_namespace_type() {
    let mut c = Ctx::new("badnstype", &["true"]);
    c.config()["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "bogus"}));
    let out = c.create();
    assert_one_line_error(&out, &["bogus"]);
    c.assert_no_residue();
}

#[test]
fn duplicate_id_is_refused_and_the_first_survives() {
    let c = Ctx::new("dup", &["sleep", "100"]);
    c.create_ok();
    let out = c.create();
    assert_one_line_error(&out, &[&c.id, "already exists"]);
    assert_eq!(c.status(), "created");
}

#[test]
fn unknown_container_for_each_verb() {
    let c = Ctx::new("unknown", &["true"]);
    for verb in [
        &["start"][..],
        &["state"],
        &["kill"],
        &["delete"],
        &["pause"],
        &["resume"],
        &["ps"],
        &["exec", "x", "true"],
    ] {
        let mut args: Vec<&str> = verb.to_vec();
        if verb[0] == "exec" {
            args = vec!["exec", "nope-x", "true"];
        } else {
            args.push("nope-x");
        }
        let out = c.husk(&args);
        let code = if verb[0] == "exec" { 255 } else { 1 };
        assert_one_line_error_code(&out, code, &["nope-x", "does not exist"]);
    }
}

#[test]
fn invalid_id_is_refused() {
    let c = Ctx::new("badid", &["true"]);
    let b = c.bundle.dir.to_string_lossy().to_string();
    for id in ["../escape", "a/b"] {
        let out = c.husk(&["create", "--bundle", &b, id]);
        assert_one_line_error(&out, &["invalid container id"]);
    }
}

#[test]
fn json_log_lines_carry_level_msg_and_time() {
    let mut c = Ctx::new("jsonlog", &["true"]);
    c.config()["root"]["path"] = json!("missing-rootfs");
    c.bundle.write();
    let log = c.root.parent().unwrap().join("log.json");
    let b = c.bundle.dir.to_string_lossy().to_string();
    let out = c.husk(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        &b,
        &c.id,
    ]);
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"].as_str().unwrap().contains("missing-rootfs"),
        "{last}"
    );
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let c = Ctx::new("badflag", &["true"]);
    let out = c.husk(&["create", "--no-such-flag", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--no-such-flag"));

    // With --log, the usage error is in the log too: go-runc reports what it finds there.
    let log = c.root.parent().unwrap().join("usage.json");
    let out = c.husk(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "restore",
        "--no-such-flag",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"].as_str().unwrap().contains("--no-such-flag"),
        "{last}"
    );

    // go-runc's restore flags (values, and -no-subreaper with one dash) parse.
    let out = c.husk(&[
        "restore",
        "--image-path",
        "/nonexistent",
        "--work-path",
        "/nonexistent-w",
        "--detach",
        "--pid-file",
        "/nonexistent-p",
        "-no-subreaper",
        "--bundle",
        "/nonexistent-b",
        "x",
    ]);
    assert_one_line_error(&out, &["/nonexistent-b"]);
}
