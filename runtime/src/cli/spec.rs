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
    let text = serde_json::to_string_pretty(&crate::spec::default_spec(a.rootless)).expect("json");
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
