//! runc's command line: the global flags and one module per verb. Each verb is a thin layer
//! over the library; errors become one line on stderr (and in `--log`) and exit status 1.

mod checkpoint;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod restore;
mod run;
mod spec;
mod start;
mod state;
mod update;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};

#[derive(Parser)]
#[command(
    name = "husk",
    about = "Open Container Initiative runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    version: bool,
    /// Directory for container state (default /run/husk, or $XDG_RUNTIME_DIR/husk when rootless).
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Append log lines to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<String>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log debug lines, including the duration of each phase of create.
    #[arg(long, global = true)]
    debug: bool,
    /// Use the systemd cgroup driver.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (before the verb, as with runc).
    #[arg(long = "rootless", id = "global_rootless", num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<String>,
    /// Path to criu (accepted for runc compatibility).
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container from a bundle; it waits for `start`.
    Create(create::Args),
    /// Start a created container's process.
    Start(start::Args),
    /// Create and start a container (and, without --detach, wait for it).
    Run(run::Args),
    /// Print a container's state as JSON.
    State(state::Args),
    /// Send a signal to a container's init (or every process with --all).
    Kill(kill::Args),
    /// Delete a container and everything it holds.
    Delete(delete::Args),
    /// List containers.
    List(list::Args),
    /// Run a new process in a running container.
    Exec(exec::Args),
    /// Show the processes in a container.
    Ps(ps::Args),
    /// Suspend every process in a container.
    Pause(pause::Args),
    /// Resume a paused container.
    Resume(pause::Args),
    /// Write a default config.json.
    Spec(spec::Args),
    /// Print the features this runtime supports, as JSON.
    Features(features::Args),
    /// Change a running container's resource limits.
    Update(update::Args),
    /// Print resource statistics and OOM events of a container as JSON lines.
    Events(events::Args),
    /// Checkpoint a running container with CRIU.
    Checkpoint(checkpoint::Args),
    /// Restore a container from a CRIU checkpoint.
    Restore(restore::Args),
}

pub struct Global {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    /// `--criu PATH`: the criu binary for checkpoint and restore (else criu in PATH).
    pub criu: Option<PathBuf>,
}

/// A usage error goes to `--log` too when one is given: go-runc reads the error it reports
/// from that file, and clap's own message only reaches stderr.
fn log_usage_error(args: &[String], msg: &str) {
    let value = |flag: &str| {
        args.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix(flag)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
                .or_else(|| (a == flag).then(|| args.get(i + 1).cloned()).flatten())
        })
    };
    let Some(log) = value("--log") else { return };
    let json = value("--log-format").as_deref() == Some("json");
    if crate::log::init(Some(&log), json, false).is_ok() {
        let first = msg.lines().next().unwrap_or(msg);
        crate::log::error(first.strip_prefix("error: ").unwrap_or(first));
    }
}

/// Help in the layout of runc's (urfave/cli), naming the program as it was invoked: installed
/// as `runc`, husk answers as runc does.
const TOP_HELP: &str = "NAME:\n   {name} - {about}\n\nUSAGE:\n   {usage}\n\nCOMMANDS:\n{subcommands}\n\nOPTIONS:\n{options}\n";
fn verb_help(program: &str, verb: &str) -> &'static str {
    let t =
        format!("NAME:\n   {program} {verb} - {{about}}\n\nUSAGE:\n   {{usage}}\n\n{{all-args}}\n");
    Box::leak(t.into_boxed_str())
}

fn program_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "husk".into())
}

fn version_text(name: &str) -> String {
    format!(
        "{name} version {}\ncommit: husk-{}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
        crate::spec::OCI_VERSION
    )
}

/// Go's flag package (runc's) accepts `-flag` for long flags: rewrite those we know to `--flag`
/// so scripts written for runc keep working. Stops at the first argument after the verb's own
/// options, so a container command's flags are never touched.
fn normalise_args(args: Vec<String>) -> Vec<String> {
    const LONG: &[&str] = &[
        "root",
        "log",
        "log-format",
        "debug",
        "systemd-cgroup",
        "rootless",
        "criu",
        "cgroup",
        "ignore-paused",
        "bundle",
        "pid-file",
        "console-socket",
        "no-pivot",
        "no-new-keyring",
        "preserve-fds",
        "detach",
        "force",
        "all",
        "format",
        "quiet",
        "process",
        "tty",
        "cwd",
        "env",
        "user",
        "additional-gids",
        "cap",
        "no-new-privs",
        "process-label",
        "apparmor",
        "help",
        "version",
        "keep",
        "no-subreaper",
    ];
    let mut out = Vec::with_capacity(args.len());
    let mut positional = 0;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || positional >= 2 {
            out.push(a);
            continue;
        }
        if let Some(rest) = a
            .strip_prefix('-')
            .filter(|r| !r.starts_with('-') && r.len() > 1)
        {
            let name = rest.split('=').next().unwrap_or("");
            if LONG.contains(&name) {
                out.push(format!("-{a}"));
                continue;
            }
        }
        if a == "--" {
            positional = 2;
        } else if !a.starts_with('-') && !out.last().is_some_and(|p: &String| takes_value(p)) {
            positional += 1;
        }
        out.push(a);
    }
    out
}

fn takes_value(flag: &str) -> bool {
    const VALUED: &[&str] = &[
        "--root",
        "--log",
        "--log-format",
        "--criu",
        "--bundle",
        "-b",
        "--pid-file",
        "--console-socket",
        "--preserve-fds",
        "--format",
        "-f",
        "--process",
        "-p",
        "--cwd",
        "--env",
        "-e",
        "--user",
        "-u",
        "--additional-gids",
        "-g",
        "--cap",
        "-c",
        "--process-label",
        "--apparmor",
        "--signal",
        "--cgroup",
        "--image-path",
        "--work-path",
        "--parent-path",
        "--manage-cgroups-mode",
        "--empty-ns",
        "--page-server",
        "--status-fd",
        "--lsm-profile",
        "--lsm-mount-context",
    ];
    !flag.contains('=') && VALUED.contains(&flag)
}

pub fn main() -> i32 {
    use clap::{CommandFactory, FromArgMatches};
    if let Some(code) = crate::container::criu_action() {
        return code;
    }
    let args = normalise_args(std::env::args().collect());
    // clap keeps command names for the whole run: leaking this one string is intended.
    let name: &'static str = Box::leak(program_name().into_boxed_str());
    let mut cmd = Cli::command()
        .name(name)
        .bin_name(name)
        .help_template(TOP_HELP)
        .mut_subcommands(|s| {
            let t = verb_help(name, s.get_name());
            s.help_template(t)
        });
    let asked_help = args.iter().any(|a| a == "-h" || a == "--help");
    let raw = args.clone();
    let parsed = cmd
        .try_get_matches_from_mut(args)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) if asked_help && e.kind() == clap::error::ErrorKind::InvalidSubcommand => {
            // runc's words for help on a verb that does not exist.
            let verb = e
                .get(clap::error::ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            eprintln!("No help topic for '{verb}'");
            return 3;
        }
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            if code == 1 {
                log_usage_error(&raw, &e.to_string());
            }
            let _ = e.print();
            return code;
        }
    };
    if cli.version {
        print!("{}", version_text(name));
        return 0;
    }
    let Some(command) = cli.command else {
        let _ = cmd.print_help();
        return 0;
    };
    if let Err(e) = crate::log::init(cli.log.as_deref(), cli.log_format == "json", cli.debug) {
        eprintln!(
            "husk: open log file {:?}: {e}",
            cli.log.as_deref().unwrap_or("")
        );
        return 1;
    }
    let g = Global {
        root: cli.root.clone().unwrap_or_else(crate::state::default_root),
        systemd_cgroup: cli.systemd_cgroup,
        criu: cli
            .criu
            .clone()
            .filter(|c| !c.is_empty())
            .map(PathBuf::from),
    };
    // runc exits 255 when exec itself fails, so callers can tell it from the process's status.
    let failure = if matches!(command, Command::Exec(_)) {
        255
    } else {
        1
    };
    let (verb, r) = dispatch(&g, command);
    match r {
        Ok(code) => code,
        Err(e) => {
            let line = format!("{verb}: {e}");
            crate::log::error(&line);
            if !crate::log::logs_to_stderr() || !crate::log::enabled(crate::log::Level::Error) {
                eprintln!("husk: {line}");
            }
            failure
        }
    }
}

fn dispatch(g: &Global, c: Command) -> (String, Result<i32>) {
    match c {
        Command::Create(a) => (format!("create {}", a.id), create::run(g, a)),
        Command::Start(a) => (format!("start {}", a.id), start::run(g, a)),
        Command::Run(a) => (format!("run {}", a.create.id), run::run(g, a)),
        Command::State(a) => (format!("state {}", a.id), state::run(g, a)),
        Command::Kill(a) => (format!("kill {}", a.id), kill::run(g, a)),
        Command::Delete(a) => (format!("delete {}", a.id), delete::run(g, a)),
        Command::List(a) => ("list".into(), list::run(g, a)),
        Command::Exec(a) => (format!("exec {}", a.id), exec::run(g, a)),
        Command::Ps(a) => (format!("ps {}", a.id), ps::run(g, a)),
        Command::Pause(a) => (format!("pause {}", a.id), pause::run(g, a, true)),
        Command::Resume(a) => (format!("resume {}", a.id), pause::run(g, a, false)),
        Command::Spec(a) => ("spec".into(), spec::run(a)),
        Command::Features(a) => ("features".into(), features::run(a)),
        Command::Update(a) => (format!("update {}", a.id), update::run(g, a)),
        Command::Events(a) => (format!("events {}", a.id), events::run(g, a)),
        Command::Checkpoint(a) => (format!("checkpoint {}", a.id), checkpoint::run(g, a)),
        Command::Restore(a) => (format!("restore {}", a.id), restore::run(g, a)),
    }
}

pub(crate) fn bad_usage(msg: impl Into<String>) -> Error {
    Error::msg(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn go_style_flags_become_long_flags_but_container_args_do_not() {
        assert_eq!(
            normalise_args(v(&[
                "husk", "-root", "/r", "exec", "-tty", "c1", "ls", "-root"
            ])),
            v(&["husk", "--root", "/r", "exec", "--tty", "c1", "ls", "-root"])
        );
        assert_eq!(
            normalise_args(v(&["husk", "kill", "-all", "c1", "KILL"])),
            v(&["husk", "kill", "--all", "c1", "KILL"])
        );
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
