//! The command line containerd gives a shim, in Go's flag syntax: `-namespace ns -id x start`.

use husk::error::{Error, Result};

#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub namespace: String,
    pub id: String,
    /// containerd's gRPC socket; with the namespace and id it names the shim's socket.
    pub address: String,
    pub publish_binary: String,
    pub bundle: String,
    pub debug: bool,
    pub version: bool,
    /// `start`, `delete`, or none for the daemon itself.
    pub action: Option<String>,
}

impl Flags {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Flags> {
        let mut f = Flags::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                if f.action.is_some() {
                    return Err(Error::msg(format!("unexpected argument {arg:?}")));
                }
                f.action = Some(arg);
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| Error::msg(format!("flag needs an argument: -{name}")))
            };
            match name {
                "namespace" => f.namespace = value()?,
                "id" => f.id = value()?,
                "address" => f.address = value()?,
                "publish-binary" => f.publish_binary = value()?,
                "bundle" => f.bundle = value()?,
                // Accepted for compatibility; the socket comes from `start` as fd 3.
                "socket" | "debug-address" => drop(value()?),
                "debug" => f.debug = inline.as_deref() != Some("false"),
                "v" | "version" => f.version = true,
                _ => {
                    return Err(Error::msg(format!(
                        "flag provided but not defined: -{name}"
                    )))
                }
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Flags> {
        Flags::parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn containerd_command_lines() {
        let f = parse("-namespace k8s.io -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -id abc -debug start").unwrap();
        assert_eq!(f.namespace, "k8s.io");
        assert_eq!(f.id, "abc");
        assert_eq!(f.address, "/run/containerd/containerd.sock");
        assert!(f.debug);
        assert_eq!(f.action.as_deref(), Some("start"));
        let f = parse("--namespace=default -id x -bundle /b delete").unwrap();
        assert_eq!(f.bundle, "/b");
        assert_eq!(f.action.as_deref(), Some("delete"));
        assert!(parse("-nope 1").unwrap_err().to_string().contains("-nope"));
        assert!(parse("-id").unwrap_err().to_string().contains("-id"));
        assert!(parse("start delete").is_err());
    }
}
