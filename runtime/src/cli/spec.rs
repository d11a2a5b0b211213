use std::io::Write;
use std::path::PathBuf;

use crate::error::{Context, Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write config.json.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// A spec for an unprivileged user: user namespace, no network namespace, /sys bound.
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(a: Args) -> Result<i32> {
    let path = a.bundle.join("config.json");
    let mut spec = crate::spec::default_spec(a.rootless);
    // On a cgroup v2 host the container gets its own cgroup namespace, as with runc's spec:
    // it sees its cgroup as `/` and can manage a subtree of it.
    let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if unified {
        if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
            ns.push(serde_json::json!({"type": "cgroup"}));
        }
    }
    let text = serde_json::to_string_pretty(&spec).expect("json");
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::msg(format!(
                "File {} exists. Remove it first",
                path.display()
            )))
        }
        Err(e) => return Err(Error::io(format!("create {}", path.display()), &e)),
    };
    f.write_all(text.as_bytes())
        .ctx(|| format!("write {}", path.display()))?;
    Ok(0)
}
