//! One error type that carries context from the point of failure to the single line the user sees.
//!
//! An error is built where the syscall fails (`what` names the operation, the path and the value),
//! then each phase wraps it with its name on the way up, so the line reads outermost first:
//! `create c1: prepare rootfs: mount "proc" on "/proc": EPERM: Operation not permitted`.

use std::fmt;

use nix::errno::Errno;

#[derive(Debug, Clone)]
pub struct Error {
    /// What was being done, outermost phase first.
    what: String,
    /// The kernel's answer, when a syscall failed.
    errno: Option<Errno>,
    /// How to fix it, where we know.
    hint: Option<String>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(what: impl Into<String>) -> Self {
        Error {
            what: what.into(),
            errno: None,
            hint: None,
        }
    }

    pub fn sys(what: impl Into<String>, errno: Errno) -> Self {
        Error {
            what: what.into(),
            errno: Some(errno),
            hint: None,
        }
    }

    pub fn io(what: impl Into<String>, err: &std::io::Error) -> Self {
        match err.raw_os_error() {
            Some(e) => Error::sys(what, Errno::from_raw(e)),
            None => Error::msg(format!("{}: {err}", what.into())),
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the name of an enclosing phase or operation.
    pub fn context(mut self, outer: impl fmt::Display) -> Self {
        self.what = format!("{outer}: {}", self.what);
        self
    }

    pub fn errno(&self) -> Option<Errno> {
        self.errno
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if let Some(e) = self.errno {
            write!(f, ": {e}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Attaches a description of the failed operation to a low-level error.
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::io(what(), &e))
    }
}

impl<T> Context<T> for Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.context(what().into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_reads_outermost_first_with_errno_and_hint() {
        let e = Error::sys("mount \"proc\" on \"/proc\"", Errno::EPERM)
            .with_hint("is the mount namespace owned by this user?")
            .context("prepare rootfs")
            .context("create c1");
        assert_eq!(
            e.to_string(),
            "create c1: prepare rootfs: mount \"proc\" on \"/proc\": EPERM: Operation not permitted \
             (is the mount namespace owned by this user?)"
        );
    }
}
