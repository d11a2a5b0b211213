//! The bad-input corpus (spec-tests/corpus/*.jsonl): each case is a broken config, id or
//! argument. Each must fail with exit status 1 and one error line naming what is wrong (the
//! case's `expect` strings), never a panic, and leave no state directory or cgroup behind.
//! Cases marked `"ok": true` are valid input that must work; `"v1_only": true`, input that is
//! wrong only on a cgroup v1 host.
//!
//! A case: `name`; the config as `raw` text, or the default config edited by `set`
//! ([JSON pointer, value] pairs; a pointer ending in `-` appends) and `remove` (pointers);
//! optional `id`; optional `setup: "create"` with `argv` (`{id}` replaced) to run against a
//! created container.

use std::path::Path;

use spec_tests::*;

fn pointer_parent<'a>(v: &'a mut Value, ptr: &str) -> (&'a mut Value, String) {
    let (parent, last) = ptr.rsplit_once('/').unwrap();
    let target = v
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("corpus: no {parent}"));
    (target, last.replace("~1", "/").replace("~0", "~"))
}

fn edit(config: &mut Value, case: &Value) {
    for ptr in case["remove"].as_array().into_iter().flatten() {
        let (parent, key) = pointer_parent(config, ptr.as_str().unwrap());
        match parent {
            Value::Object(m) => drop(m.remove(&key)),
            Value::Array(a) => drop(a.remove(key.parse::<usize>().unwrap())),
            _ => panic!("corpus: cannot remove {ptr}"),
        }
    }
    for pair in case["set"].as_array().into_iter().flatten() {
        set_pointer(config, pair[0].as_str().unwrap(), pair[1].clone());
    }
}

/// Sets `ptr` to `value`, making missing objects on the way; `-` appends to an array.
fn set_pointer(config: &mut Value, ptr: &str, value: Value) {
    let mut v = config;
    let tokens: Vec<&str> = ptr.split('/').skip(1).collect();
    for (i, t) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        if !v.is_object() && !v.is_array() {
            *v = json!({});
        }
        v = match v {
            Value::Array(a) => {
                let at = if *t == "-" {
                    a.push(Value::Null);
                    a.len() - 1
                } else {
                    t.parse::<usize>().unwrap()
                };
                &mut a[at]
            }
            Value::Object(m) => {
                m.entry(t.to_string())
                    .or_insert(if last { Value::Null } else { json!({}) })
            }
            _ => unreachable!(),
        };
    }
    *v = value;
}

fn residue(root: &Path, id: &str) -> Option<String> {
    if !id.is_empty() && root.join(id).exists() && !id.contains('/') && id != "." && id != ".." {
        return Some(format!("state dir {}", root.join(id).display()));
    }
    let found = find_dirs_named(Path::new("/sys/fs/cgroup"), id, 6);
    (!id.is_empty() && id.len() < 256 && !found.is_empty()).then(|| format!("cgroups {found:?}"))
}

#[test]
fn every_bad_input_gets_one_clear_error_and_leaves_nothing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let ctx = Ctx::new("corpus", &["true"]);
    let default = ctx.bundle.config.clone();
    let config_path = ctx.bundle.dir.join("config.json");
    let mut failures = Vec::new();
    let mut count = 0;
    for file in &files {
        for (n, line) in std::fs::read_to_string(file).unwrap().lines().enumerate() {
            let case: Value = serde_json::from_str(line).unwrap();
            count += 1;
            if case["v1_only"] == true && cgroup_v2() {
                continue;
            }
            let name = format!(
                "{}:{} {}",
                file.file_name().unwrap().to_string_lossy(),
                n + 1,
                case["name"]
            );
            let text = match case["raw"].as_str() {
                Some(raw) => raw.to_string(),
                None => {
                    let mut config = default.clone();
                    edit(&mut config, &case);
                    serde_json::to_string_pretty(&config).unwrap()
                }
            };
            let id = case["id"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("corpus-{}-{count}", std::process::id()));
            let bundle = ctx.bundle.dir.to_string_lossy().into_owned();
            let out = if case["setup"] == "create" {
                std::fs::write(&config_path, serde_json::to_vec(&default).unwrap()).unwrap();
                let created = ctx.husk(&["create", "--bundle", &bundle, &id]);
                assert!(
                    created.status.success(),
                    "{name}: setup: {}",
                    stderr(&created)
                );
                let argv: Vec<String> = case["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().replace("{id}", &id))
                    .collect();
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                let out = ctx.husk(&argv);
                ctx.husk(&["delete", "--force", &id]);
                out
            } else {
                std::fs::write(&config_path, &text).unwrap();
                ctx.husk(&["create", "--bundle", &bundle, &id])
            };
            let err = stderr(&out);
            let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            // HUSK_CORPUS_SHOW=1: every case's error line, to review the corpus by eye.
            if std::env::var_os("HUSK_CORPUS_SHOW").is_some() {
                eprintln!("{name}\n    {}", lines.join("\n    "));
            }
            if case["ok"] == true {
                if !out.status.success() {
                    failures.push(format!("{name}: should work, failed: {err}"));
                }
                ctx.husk(&["delete", "--force", &id]);
            } else if out.status.code() != Some(1) {
                failures.push(format!(
                    "{name}: exit status {:?}, stderr: {err}",
                    out.status
                ));
                ctx.husk(&["delete", "--force", &id]);
            } else if lines.len() != 1 || err.contains("panicked") {
                failures.push(format!("{name}: want one error line, got: {err}"));
            } else {
                for want in case["expect"].as_array().into_iter().flatten() {
                    let want = want.as_str().unwrap();
                    if !lines[0].contains(want) {
                        failures.push(format!("{name}: error {:?} lacks {want:?}", lines[0]));
                    }
                }
            }
            if let Some(left) = residue(&ctx.root, &id) {
                failures.push(format!("{name}: left behind {left}"));
                ctx.husk(&["delete", "--force", &id]);
            }
        }
    }
    assert!(count >= 100, "the corpus holds {count} cases");
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
