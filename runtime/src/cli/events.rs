use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{bad_usage, Global};
use crate::cgroups::oom;
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
    // A thread reads the count the moment the kernel gives notice; this loop reads it at each
    // tick as well (a watcher that failed to start, a notice lost).
    let counter = c
        .state
        .cgroup
        .oom_counter()
        .map(|c| Arc::new(Mutex::new(c)));
    let kills = || counter.as_ref().map_or(0, |c| lock(c).read());
    let mut seen = kills();
    let (tx, counts) = std::sync::mpsc::channel();
    let watching = counter.as_ref().is_some_and(|c| {
        oom::watch(c.clone(), move |n| {
            let _ = tx.send(n);
        })
        .is_ok()
    });
    drop(c);
    let tick = interval.min(Duration::from_millis(100));
    let mut next_stats = Instant::now();
    let mut out = std::io::stdout();
    let mut report = |out: &mut std::io::Stdout, now: u64| {
        for _ in 0..now.saturating_sub(seen).min(100) {
            let _ = writeln!(out, "{}", event("oom", &a.id, None));
        }
        seen = seen.max(now);
    };
    loop {
        let Ok(c) = Container::load(&g.root, &a.id) else {
            return Ok(0);
        };
        let mut now = kills();
        now = counts.try_iter().fold(now, u64::max);
        if c.status() == Status::Stopped {
            // An OOM kill may be what stopped the container: the watcher's last word, read
            // when the cgroup emptied, may come just after the exit shows.
            if watching {
                let until = Instant::now() + Duration::from_millis(200);
                while let Some(left) = until.checked_duration_since(Instant::now()) {
                    match counts.recv_timeout(left) {
                        Ok(n) => now = now.max(n),
                        Err(_) => break,
                    }
                }
            }
            report(&mut out, now);
            let _ = out.flush();
            return Ok(0);
        }
        report(&mut out, now);
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
        match counts.recv_timeout(tick) {
            Ok(n) => report(&mut out, n),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(tick),
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
