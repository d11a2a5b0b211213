use super::Global;
use crate::error::Result;

#[derive(clap::Args)]
pub struct Args {
    /// table or json.
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only the ids.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(g: &Global, a: Args) -> Result<i32> {
    let mut rows = Vec::new();
    for id in crate::state::list_ids(&g.root)? {
        let dir = g.root.join(&id);
        match crate::state::read_unlocked(&g.root, &id) {
            Some(st) => rows.push(st.to_json(st.status(&dir))),
            // No state yet: a create in progress, or one killed half-way (delete --force
            // clears it). Shown as it is rather than hidden.
            None if dir.exists() => rows.push(serde_json::json!({
                "ociVersion": crate::spec::OCI_VERSION, "id": id, "pid": 0, "status": "creating",
                "bundle": "", "rootfs": "", "created": "0001-01-01T00:00:00Z", "owner": "",
            })),
            None => {}
        }
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or(""));
        }
    } else if a.format == "json" {
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let cols = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                ["id", "pid", "status", "bundle", "created", "owner"]
                    .iter()
                    .map(|k| match &r[*k] {
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = cols.iter().map(|c| c.len()).collect();
        for row in &table {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    s.push_str(&format!("{:w$}", c, w = widths[i] + 3));
                }
            }
            println!("{}", s.trim_end());
        };
        line(cols.to_vec());
        for row in &table {
            line(row.iter().map(|s| s.as_str()).collect());
        }
    }
    Ok(0)
}
