//! Hooks: order, the state on stdin, args and env, and what a failure does.

use spec_tests::*;

fn hook(log: &std::path::Path, name: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read s; echo \"{name} $HOOKENV $s\" >> {}", log.display())], "env": ["HOOKENV=e"]})
}

#[test]
fn every_hook_runs_in_order_with_state_on_stdin() {
    let mut c = Ctx::new("hooks", &["true"]);
    let log = c.root.parent().unwrap().join("hooks.log");
    let mut hooks = serde_json::Map::new();
    for k in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        hooks.insert(k.into(), json!([hook(&log, k)]));
    }
    c.config()["hooks"] = Value::Object(hooks);
    c.config()["mounts"].as_array_mut().unwrap().push(json!({"destination": "/hostbin", "type": "bind", "source": "/bin", "options": ["rbind", "ro"]}));
    // startContainer runs in the container: it needs a shell there and a log path it can reach.
    let inner = json!({"path": "/bin/sh", "args": ["sh", "-c", "read s; echo startContainer-in-container"]});
    c.config()["hooks"]["startContainer"] = json!([inner]);
    c.run_ok();
    let text = std::fs::read_to_string(&log).unwrap();
    let names: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    for line in text.lines() {
        let (_, rest) = line
            .split_once(" e ")
            .unwrap_or_else(|| panic!("env not passed: {line}"));
        let st: Value = serde_json::from_str(rest).unwrap();
        assert_eq!(st["id"], c.id.as_str());
        assert!(
            st["pid"].as_i64().unwrap() > 0 || line.starts_with("poststop"),
            "{line}"
        );
    }
}

#[test]
fn failing_prestart_hook_fails_create_and_leaves_nothing() {
    let mut c = Ctx::new("hookfail", &["true"]);
    c.config()["hooks"] =
        json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}]});
    let out = c.create();
    assert_one_line_error(&out, &["prestart", "exit status 3", "nope"]);
    c.assert_no_residue();
}

#[test]
fn hook_timeout_is_enforced() {
    let mut c = Ctx::new("hooktimeout", &["true"]);
    c.config()["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    let t = std::time::Instant::now();
    let out = c.create();
    assert_one_line_error(&out, &["createRuntime", "timed out"]);
    assert!(t.elapsed().as_secs() < 10);
    c.assert_no_residue();
}

#[test]
fn failing_poststart_hook_only_warns() {
    let mut c = Ctx::new("poststartfail", &["true"]);
    c.config()["hooks"] = json!({"poststart": [{"path": "/bin/false"}]});
    let out = c.run();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("poststart"), "{}", stderr(&out));
}
