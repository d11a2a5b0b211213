use std::io::Write;
use std::time::{Duration, Instant};

use super::{bad_usage, Global};
use crate::container::Container;
use crate::error::Result;
use crate::state::Status;

#[derive(clap::Args)]
pub struct Args {
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often to print stats (Go duration: 5s, 100ms, 1m).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    pub id: String,
}

fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || {
        bad_usage(format!(
            "--interval {s:?}: want a duration like 5s, 100ms or 1m"
        ))
    };
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if secs <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn event(kind: &str, id: &str, data: Option<serde_json::Value>) -> String {
    let mut v = serde_json::json!({"type": kind, "id": id});
    if let Some(d) = data {
        v["data"] = d;
    }
    v.to_string()
}

/// Stats every interval and an `oom` event whenever the kernel OOM-kills in the container,
/// until the container is gone. The container is looked up afresh each time, so `events`
/// never holds its lock against `delete`.
pub fn run(g: &Global, a: Args) -> Result<i32> {
    let interval = parse_duration(&a.interval)?;
    let c = Container::load(&g.root, &a.id)?;
    if a.stats {
        println!("{}", event("stats", &a.id, Some(c.state.cgroup.stats())));
        return Ok(0);
    }
    // The count is read as the kernel gives notice, at each tick, and once more at the end:
    // the counter keeps a kill that its cgroup took with it.
    let mut counter = c.state.cgroup.oom_counter();
    let mut notices = counter.as_ref().and_then(|c| c.notices().ok());
    let mut seen = counter.as_mut().map_or(0, |c| c.read());
    drop(c);
    let tick = interval.min(Duration::from_millis(100));
    let mut next_stats = Instant::now();
    let mut out = std::io::stdout();
    loop {
        let Ok(c) = Container::load(&g.root, &a.id) else {
            return Ok(0);
        };
        // An OOM kill may be what stopped the container: report it before leaving.
        let now = counter.as_mut().map_or(0, |c| c.read());
        for _ in 0..now.saturating_sub(seen).min(100) {
            let _ = writeln!(out, "{}", event("oom", &a.id, None));
        }
        seen = seen.max(now);
        if c.status() == Status::Stopped {
            let _ = out.flush();
            return Ok(0);
        }
        if Instant::now() >= next_stats {
            let _ = writeln!(
                out,
                "{}",
                event("stats", &a.id, Some(c.state.cgroup.stats()))
            );
            next_stats += interval;
        }
        drop(c);
        if out.flush().is_err() {
            return Ok(0);
        }
        match (&notices, &mut counter) {
            (Some(n), Some(c)) => match n.wait(Some(tick)) {
                Some(true) => drop(c.on_notice()),
                Some(false) => notices = None,
                None => {}
            },
            _ => std::thread::sleep(tick),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
