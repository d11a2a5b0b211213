//! runc-compatible logging: `--log FILE` (appended), `--log-format text|json`, `--debug`.
//!
//! containerd's go-runc reads the JSON lines `{"level","msg","time"}` from the log file and shows the
//! last `error` line to the user, so every fatal error goes there as well as to stderr.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    file: Option<File>,
    json: bool,
    min: Level,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets the log destination once, at start-up. Without `--log`, lines go to stderr.
pub fn init(path: Option<&str>, json: bool, debug: bool) -> std::io::Result<()> {
    let file = match path {
        Some(p) if !p.is_empty() => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        _ => None,
    };
    let min = if debug { Level::Debug } else { Level::Info };
    let _ = LOGGER.set(Logger { file, json, min });
    Ok(())
}

pub fn enabled(level: Level) -> bool {
    LOGGER
        .get()
        .map_or(level >= Level::Warn, |l| level >= l.min)
}

/// Whether errors already reach stderr through the logger (no `--log` given).
pub fn logs_to_stderr() -> bool {
    LOGGER.get().is_none_or(|l| l.file.is_none())
}

/// The raw fd of the log file, so that forked children can keep logging to it.
pub fn file_fd() -> Option<i32> {
    LOGGER
        .get()
        .and_then(|l| l.file.as_ref().map(|f| f.as_raw_fd()))
}

pub fn log(level: Level, msg: &str) {
    if !enabled(level) {
        return;
    }
    let line = format_line(level, msg, LOGGER.get().is_some_and(|l| l.json));
    // One write per line so that lines from concurrent processes never interleave.
    match LOGGER.get().and_then(|l| l.file.as_ref()) {
        Some(mut f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

fn format_line(level: Level, msg: &str, json: bool) -> String {
    let time = rfc3339_now();
    if json {
        let v = serde_json::json!({"level": level.name(), "msg": msg, "time": time});
        format!("{v}\n")
    } else {
        format!("time={:?} level={} msg={:?}\n", time, level.name(), msg)
    }
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg)
}
pub fn info(msg: &str) {
    log(Level::Info, msg)
}
pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}
pub fn error(msg: &str) {
    log(Level::Error, msg)
}

/// Formats the current time as RFC 3339 in UTC with nanoseconds, as Go's logrus does.
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_500_000, 0), "2026-11-24T06:00:00.000000000Z");
    }

    #[test]
    fn json_line_has_the_fields_go_runc_reads() {
        let line = format_line(Level::Error, "boom \"x\"", true);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert!(line.ends_with('\n'));
    }
}
