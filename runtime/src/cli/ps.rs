use std::process::Command;

use super::Global;
use crate::container::Container;
use crate::error::{Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// table or json (a list of pids).
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    pub id: String,
    /// Options for ps(1); -ef by default.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let c = Container::load(&g.root, &a.id)?;
    let pids: Vec<i32> = c.state.cgroup.pids().iter().map(|p| p.as_raw()).collect();
    if a.format == "json" {
        println!("{}", serde_json::to_string(&pids).expect("json"));
        return Ok(0);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| Error::io("run ps", &e))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::msg("ps output has no PID column"))?;
    println!("{header}");
    for l in lines {
        if l.split_whitespace()
            .nth(col)
            .and_then(|p| p.parse().ok())
            .is_some_and(|p: i32| pids.contains(&p))
        {
            println!("{l}");
        }
    }
    Ok(0)
}
