//! cgroup v2: the freezer.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};

pub fn is_frozen(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
}

pub fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    let f = dir.join("cgroup.freeze");
    fs::write(&f, if frozen { "1" } else { "0" }).ctx(|| format!("write {}", f.display()))?;
    // The write only starts the transition: cgroup.events says when every task has stopped.
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = dir.join("cgroup.events");
    loop {
        let s = fs::read_to_string(&events).ctx(|| format!("read {}", events.display()))?;
        if s.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::msg(format!(
                "{} never reported {want:?}",
                events.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
