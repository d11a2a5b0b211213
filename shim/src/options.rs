//! The runtime options containerd passes with Create: runc's `Options` (containerd.runc.v1,
//! what `ctr --runc-binary` and a runc-type runtime config send) or CRI's
//! `runtimeoptions.v1.Options`, whose ConfigPath/ConfigBody hold the same keys in TOML.
//! They are saved in the bundle so that `delete` after a crash uses the same runtime and root.

use std::path::Path;

use containerd_shim_protos::shim::oci;
use husk::error::{Context, Error, Result};
use protobuf::well_known_types::any::Any;
use protobuf::{CodedInputStream, Message};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    pub binary_name: String,
    pub root: String,
    pub systemd_cgroup: bool,
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
    pub io_uid: u32,
    pub io_gid: u32,
    pub shim_cgroup: String,
}

pub const DEFAULT_BINARY: &str = "husk";
pub const DEFAULT_ROOT: &str = "/run/containerd/husk";

impl Options {
    pub fn from_any(any: Option<&Any>) -> Result<Options> {
        let Some(any) = any.filter(|a| !a.type_url.is_empty()) else {
            return Ok(Options::default());
        };
        let name = any.type_url.rsplit('/').next().unwrap_or_default();
        match name {
            "containerd.runc.v1.Options" => {
                let o = oci::Options::parse_from_bytes(&any.value)
                    .map_err(|e| Error::msg(format!("decoding runc options: {e}")))?;
                Ok(Options {
                    binary_name: o.binary_name,
                    root: o.root,
                    systemd_cgroup: o.systemd_cgroup,
                    no_pivot_root: o.no_pivot_root,
                    no_new_keyring: o.no_new_keyring,
                    io_uid: o.io_uid,
                    io_gid: o.io_gid,
                    shim_cgroup: o.shim_cgroup,
                })
            }
            "runtimeoptions.v1.Options" => {
                let (path, body) = cri_config(&any.value)?;
                let toml = if !body.is_empty() {
                    body
                } else if !path.is_empty() {
                    std::fs::read_to_string(&path).ctx(|| format!("reading runtime config {path}"))?
                } else {
                    String::new()
                };
                Ok(Options::from_toml(&toml))
            }
            other => Err(Error::msg(format!(
                "unsupported runtime options type {other:?}: expected containerd.runc.v1.Options or runtimeoptions.v1.Options"
            ))),
        }
    }

    /// The flat `Key = value` lines of a runc options TOML file.
    fn from_toml(s: &str) -> Options {
        let mut o = Options::default();
        for line in s.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').to_string();
            match k.trim() {
                "BinaryName" => o.binary_name = v,
                "Root" => o.root = v,
                "SystemdCgroup" => o.systemd_cgroup = v == "true",
                "NoPivotRoot" => o.no_pivot_root = v == "true",
                "NoNewKeyring" => o.no_new_keyring = v == "true",
                "IoUid" => o.io_uid = v.parse().unwrap_or(0),
                "IoGid" => o.io_gid = v.parse().unwrap_or(0),
                "ShimCgroup" => o.shim_cgroup = v,
                _ => {}
            }
        }
        o
    }

    pub fn binary(&self) -> String {
        if self.binary_name.is_empty() {
            DEFAULT_BINARY.to_string()
        } else {
            self.binary_name.clone()
        }
    }

    /// The runtime's `--root`: one directory per containerd namespace, as runc's shim does.
    pub fn root(&self, namespace: &str) -> String {
        let base = if self.root.is_empty() {
            DEFAULT_ROOT
        } else {
            &self.root
        };
        Path::new(base)
            .join(namespace)
            .to_string_lossy()
            .into_owned()
    }

    pub fn save(&self, bundle: &Path) -> Result<()> {
        let v = serde_json::json!({
            "binary_name": self.binary_name, "root": self.root, "systemd_cgroup": self.systemd_cgroup,
        });
        let path = bundle.join("options.json");
        std::fs::write(&path, v.to_string()).ctx(|| format!("writing {}", path.display()))
    }

    pub fn load(bundle: &Path) -> Options {
        let v: serde_json::Value = std::fs::read(bundle.join("options.json"))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        Options {
            binary_name: v["binary_name"].as_str().unwrap_or_default().to_string(),
            root: v["root"].as_str().unwrap_or_default().to_string(),
            systemd_cgroup: v["systemd_cgroup"].as_bool().unwrap_or(false),
            ..Default::default()
        }
    }
}

/// ConfigPath (2) and ConfigBody (3) of CRI's runtimeoptions.v1.Options, decoded by hand: the
/// message has no generated type in containerd-shim-protos.
fn cri_config(data: &[u8]) -> Result<(String, String)> {
    let mut input = CodedInputStream::from_bytes(data);
    let (mut path, mut body) = (String::new(), String::new());
    let bad = |e: protobuf::Error| Error::msg(format!("decoding runtimeoptions.v1.Options: {e}"));
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(bad)? {
        match tag {
            x if x == (2 << 3 | 2) => path = input.read_string().map_err(bad)?,
            x if x == (3 << 3 | 2) => body = input.read_string().map_err(bad)?,
            _ => input
                .skip_field(
                    protobuf::rt::WireType::new(tag & 7)
                        .ok_or_else(|| Error::msg("runtimeoptions.v1.Options: bad wire type"))?,
                )
                .map_err(bad)?,
        }
    }
    Ok((path, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_and_cri_options() {
        let o = oci::Options {
            binary_name: "/usr/bin/husk".into(),
            systemd_cgroup: true,
            ..Default::default()
        };
        let any = crate::events::to_any("containerd.runc.v1.Options", &o);
        let got = Options::from_any(Some(&any)).unwrap();
        assert_eq!(got.binary(), "/usr/bin/husk");
        assert!(got.systemd_cgroup);
        assert_eq!(got.root("k8s.io"), "/run/containerd/husk/k8s.io");

        // runtimeoptions.v1.Options{type_url: "x", config_body: "..."}
        let body = "BinaryName = \"/opt/husk\"\nRoot = \"/r\"\nSystemdCgroup = true\n";
        let mut value = vec![0x0a, 1, b'x', 0x1a, body.len() as u8];
        value.extend_from_slice(body.as_bytes());
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value,
            ..Default::default()
        };
        let got = Options::from_any(Some(&any)).unwrap();
        assert_eq!(got.binary(), "/opt/husk");
        assert_eq!(got.root("default"), "/r/default");
        assert!(got.systemd_cgroup);

        let any = Any {
            type_url: "x.y.Z".into(),
            ..Default::default()
        };
        assert!(Options::from_any(Some(&any))
            .unwrap_err()
            .to_string()
            .contains("x.y.Z"));
        assert_eq!(Options::from_any(None).unwrap(), Options::default());
    }
}
