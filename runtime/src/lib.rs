//! husk: an OCI runtime-spec implementation for Linux that speaks runc's command line.
//!
//! One module per concern of the spec; `container` holds the lifecycle verbs and `init` the
//! processes `create` forks. Raw syscalls and every `unsafe` block live in `sys`.

pub mod capabilities;
pub mod cgroups;
pub mod cli;
pub mod console;
pub mod container;
pub mod dbus;
pub mod error;
pub mod foreground;
pub mod hooks;
pub mod init;
pub mod log;
pub mod lsm;
pub mod namespaces;
pub mod process;
pub mod procfs;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sync;
pub mod sys;
