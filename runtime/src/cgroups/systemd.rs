//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient scope
//! unit, `<prefix>-<name>.scope` in `<slice>` from a `slice:prefix:name` cgroupsPath, started
//! over D-Bus with the container's first process in it and `Delegate=yes`, so that systemd
//! leaves what husk writes below it alone. Resource limits go to systemd as unit properties
//! too (a `daemon-reload` re-applies a unit's own limits and would undo ones it never heard
//! of), and then to the cgroup files as with cgroupfs, which cover what systemd has no
//! property for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};
use serde::{Deserialize, Serialize};

use super::Layout;
use crate::dbus::{Bus, CallError, Value};
use crate::error::{Error, Result};

/// systemd's job time-out is longer, but a scope starts at once or never.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);
const ANNOTATION_PREFIX: &str = "org.systemd.property.";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// The scope, e.g. `cri-containerd-abc.scope`.
    pub name: String,
    /// Its slice, e.g. `kubepods-besteffort-pod1.slice`.
    pub slice: String,
    /// Whether it belongs to the user's service manager rather than the system's.
    #[serde(default)]
    pub user: bool,
    /// The container it was made for: a scope is stopped only by its own container (another
    /// may hold the name, and a create refused for that must not take it down).
    #[serde(default)]
    pub owner: String,
}

impl Unit {
    /// The unit a config's cgroupsPath names: `slice:prefix:name` (runc's format), or, when the
    /// path is unset, `husk-<id>.scope` in the manager's default slice.
    pub fn from_spec(spec: &Spec, id: &str, user: bool) -> Result<Unit> {
        let path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (slice, prefix, name) = if path.is_empty() {
            ("", "husk", id)
        } else {
            let parts: Vec<&str> = path.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                return Err(Error::msg(format!(
                    "linux.cgroupsPath {path:?}: the systemd driver wants \"slice:prefix:name\""
                ))
                .with_hint(
                    "e.g. \"system.slice:husk:c1\", or drop --systemd-cgroup for a cgroupfs path",
                ));
            };
            (slice, prefix, name)
        };
        let slice = if slice.is_empty() {
            if user { "user.slice" } else { "system.slice" }.to_string()
        } else {
            slice.to_string()
        };
        expand_slice(&slice)?;
        if name.ends_with(".slice") {
            return Err(Error::msg(format!(
                "linux.cgroupsPath {path:?}: a slice as the container's own unit is not supported"
            ))
            .with_hint("name a scope: \"slice:prefix:name\" with a name not ending in .slice"));
        }
        let name = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        if name.len() > 255
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
        {
            return Err(Error::msg(format!(
                "linux.cgroupsPath {path:?}: {name:?} is not a valid systemd unit name"
            ))
            .with_hint("use letters, digits and \":-_.\\@\" only"));
        }
        Ok(Unit {
            name,
            slice,
            user,
            owner: id.to_string(),
        })
    }

    /// The scope's cgroup below the hierarchy's root, as the system manager lays it out.
    pub fn cgroup_path(&self) -> String {
        let slice = expand_slice(&self.slice).unwrap_or_default();
        format!("{slice}/{}", self.name)
    }
}

/// A slice's cgroup path: `a-b-c.slice` lives at `/a.slice/a-b.slice/a-b-c.slice`.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = || {
        Error::msg(format!("systemd slice {slice:?}: not a valid slice name"))
            .with_hint("a slice is named like \"system.slice\" or \"kubepods-besteffort.slice\"")
    };
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(bad());
    };
    if slice.contains('/') {
        return Err(bad());
    }
    if stem == "-" {
        return Ok(String::new());
    }
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(bad());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Ok(path)
}

/// A connection to the service manager.
struct Manager {
    bus: Bus,
}

const DEST: &str = "org.freedesktop.systemd1";
const OBJECT: &str = "/org/freedesktop/systemd1";
const IFACE: &str = "org.freedesktop.systemd1.Manager";

/// Where the manager listens: the system manager's private socket (root only, and no message
/// bus needed), else the system bus; the user's manager's private socket. `true` for a bus.
fn socket(user: bool) -> Result<(PathBuf, bool)> {
    let missing = |what: String| {
        Error::msg(format!(
            "--systemd-cgroup: systemd is not running here ({what})"
        ))
        .with_hint("drop --systemd-cgroup to use the cgroupfs driver")
    };
    if user {
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .ok_or_else(|| missing("XDG_RUNTIME_DIR is not set, so no user manager".into()))?;
        let p = Path::new(&dir).join("systemd/private");
        return match p.exists() {
            true => Ok((p, false)),
            false => Err(missing(format!("{} does not exist", p.display()))),
        };
    }
    let private = Path::new("/run/systemd/private");
    if private.exists() {
        return Ok((private.to_path_buf(), false));
    }
    let bus = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .and_then(|a| a.strip_prefix("unix:path=").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/run/dbus/system_bus_socket"));
    match bus.exists() {
        true => Ok((bus, true)),
        false => Err(missing(format!(
            "neither {} nor {} exists",
            private.display(),
            bus.display()
        ))),
    }
}

/// Fails early, before any process exists, where no manager could take the scope.
pub fn check(unit: &Unit) -> Result<()> {
    socket(unit.user).map(|_| ())
}

impl Manager {
    fn connect(user: bool) -> Result<Manager> {
        let (path, routed) = socket(user)?;
        let mut bus = Bus::connect(&path, routed)?;
        if routed {
            // Signals on a message bus reach only those who ask for them.
            bus.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                vec![Value::str(
                    "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1.Manager',member='JobRemoved'",
                )],
            )?
            .map_err(|e| call_error("AddMatch", &e))?;
        }
        Ok(Manager { bus })
    }

    fn call(
        &mut self,
        member: &str,
        args: Vec<Value>,
    ) -> Result<std::result::Result<Vec<Value>, CallError>> {
        self.bus.call(DEST, OBJECT, IFACE, member, args)
    }

    /// Waits for the job a call returned to finish, and says how it ended.
    fn wait_job(&mut self, reply: &[Value], what: &str) -> Result<String> {
        let Some(job) = reply.first().and_then(Value::as_str).map(str::to_string) else {
            return Err(Error::msg(format!("systemd: {what}: no job in the reply")));
        };
        let m = self
            .bus
            .wait_signal(JOB_TIMEOUT, |m| {
                m.member.as_deref() == Some("JobRemoved")
                    && m.body.get(1).and_then(Value::as_str) == Some(job.as_str())
            })
            .map_err(|e| e.context(format!("systemd: {what}")))?;
        Ok(m.body
            .get(3)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string())
    }

    /// `accepted` is set once systemd has taken the unit (and so owns something to stop).
    fn start_scope(
        &mut self,
        unit: &Unit,
        props: &[(String, Value)],
        accepted: &mut bool,
    ) -> Result<()> {
        let args = || {
            vec![
                Value::str(&unit.name),
                Value::str("replace"),
                property_array(props),
                Value::Array("(sa(sv))".into(), vec![]),
            ]
        };
        let what = format!("start unit {}", unit.name);
        let reply = match self.call("StartTransientUnit", args())? {
            Ok(r) => r,
            // A failed scope of an earlier container by this name stays loaded until reset.
            Err(e) if e.name.ends_with(".UnitExists") => {
                let _ = self.call("ResetFailedUnit", vec![Value::str(&unit.name)])?;
                self.call("StartTransientUnit", args())?.map_err(|e| {
                    if e.name.ends_with(".UnitExists") {
                        Error::msg(format!("systemd unit {} already exists", unit.name)).with_hint(
                            "another container uses this cgroupsPath; stop it or pick another name",
                        )
                    } else {
                        call_error(&what, &e)
                    }
                })?
            }
            Err(e) => return Err(call_error(&what, &e)),
        };
        *accepted = true;
        match self.wait_job(&reply, &what)?.as_str() {
            "done" => Ok(()),
            result => Err(Error::msg(format!(
                "systemd could not start unit {}: job {result}",
                unit.name
            ))
            .with_hint(format!("journalctl -u {}", unit.name))),
        }
    }

    fn stop(&mut self, unit: &Unit) -> Result<()> {
        let what = format!("stop unit {}", unit.name);
        match self.unit_property(unit, "org.freedesktop.systemd1.Unit", "Description")? {
            None => return Ok(()),
            Some(d) if d != description(&unit.owner) => {
                crate::log::debug(&format!("{}: not ours ({d:?}): left alone", unit.name));
                return Ok(());
            }
            Some(_) => {}
        }
        // A scope's stop is SIGTERM and a 90 s wait, which a container's pid 1 may ignore:
        // whatever still runs there goes first (a half-made container's journal names only
        // the unit, so husk may not know its processes).
        let _ = self.call(
            "KillUnit",
            vec![Value::str(&unit.name), Value::str("all"), Value::I32(9)],
        )?;
        match self.call(
            "StopUnit",
            vec![Value::str(&unit.name), Value::str("replace")],
        )? {
            Ok(reply) => {
                self.wait_job(&reply, &what)?;
            }
            Err(e) if e.name.ends_with(".NoSuchUnit") => {}
            Err(e) => return Err(call_error(&what, &e)),
        }
        // A scope whose processes were killed may be left "failed"; forget it.
        let _ = self.call("ResetFailedUnit", vec![Value::str(&unit.name)])?;
        Ok(())
    }

    fn set_properties(&mut self, unit: &Unit, props: &[(String, Value)]) -> Result<()> {
        let what = format!("set properties of unit {}", unit.name);
        self.call(
            "SetUnitProperties",
            vec![
                Value::str(&unit.name),
                Value::Bool(true),
                property_array(props),
            ],
        )?
        .map_err(|e| call_error(&what, &e))?;
        Ok(())
    }

    /// A string property of a loaded unit; None when no unit has the name.
    fn unit_property(&mut self, unit: &Unit, iface: &str, prop: &str) -> Result<Option<String>> {
        let what = format!("look up {prop} of unit {}", unit.name);
        let obj = match self.call("GetUnit", vec![Value::str(&unit.name)])? {
            Ok(obj) => obj,
            Err(e) if e.name.ends_with(".NoSuchUnit") => return Ok(None),
            Err(e) => return Err(call_error(&what, &e)),
        };
        let Some(obj) = obj.first().and_then(Value::as_str) else {
            return Err(Error::msg(format!("systemd: {what}: no object path")));
        };
        let reply = self
            .bus
            .call(
                DEST,
                obj,
                "org.freedesktop.DBus.Properties",
                "Get",
                vec![Value::str(iface), Value::str(prop)],
            )?
            .map_err(|e| call_error(&what, &e))?;
        match reply.first().and_then(Value::as_str) {
            Some(v) => Ok(Some(v.to_string())),
            None => Err(Error::msg(format!("systemd: {what}: not a string"))),
        }
    }

    /// The cgroup systemd gave the unit, relative to the hierarchy's root.
    fn control_group(&mut self, unit: &Unit) -> Result<String> {
        self.unit_property(unit, "org.freedesktop.systemd1.Scope", "ControlGroup")?
            .filter(|s| s.starts_with('/'))
            .ok_or_else(|| Error::msg(format!("systemd: unit {} has no ControlGroup", unit.name)))
    }
}

fn call_error(what: &str, e: &CallError) -> Error {
    Error::msg(format!("systemd: {what}: {} ({})", e.message, e.name))
}

fn property_array(props: &[(String, Value)]) -> Value {
    Value::Array(
        "(sv)".into(),
        props
            .iter()
            .map(|(k, v)| Value::Struct(vec![Value::str(k), Value::variant(v.clone())]))
            .collect(),
    )
}

fn description(id: &str) -> String {
    format!("husk container {id}")
}

/// Starts the container's scope with `pid` in it and returns the scope's cgroup path;
/// `accepted` says whether systemd took the unit, whatever came after.
pub fn start(
    unit: &Unit,
    pid: Pid,
    spec: &Spec,
    layout: Layout,
    accepted: &mut bool,
) -> Result<String> {
    let id = &unit.owner;
    let v2 = layout == Layout::Unified;
    let mut props: Vec<(String, Value)> = vec![
        ("Description".into(), Value::str(description(id))),
        ("Slice".into(), Value::str(&unit.slice)),
        ("Delegate".into(), Value::Bool(true)),
        (
            "PIDs".into(),
            Value::Array("u".into(), vec![Value::U32(pid.as_raw() as u32)]),
        ),
        // No ordering against shutdown.target and friends: the container's owner stops it.
        ("DefaultDependencies".into(), Value::Bool(false)),
        ("MemoryAccounting".into(), Value::Bool(true)),
        ("CPUAccounting".into(), Value::Bool(true)),
        ("TasksAccounting".into(), Value::Bool(true)),
        (
            if v2 {
                "IOAccounting"
            } else {
                "BlockIOAccounting"
            }
            .into(),
            Value::Bool(true),
        ),
    ];
    if let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        props.extend(resource_properties(r, layout)?);
    }
    props.extend(annotation_properties(spec)?);
    let mut m = Manager::connect(unit.user)?;
    m.start_scope(unit, &props, accepted)?;
    m.control_group(unit)
}

/// Where the manager will put the scope: the system manager lays out slices from the root,
/// a user's manager below its own cgroup (user@UID.service), which it is asked for.
pub fn expected_cgroup(unit: &Unit) -> Result<String> {
    if !unit.user {
        return Ok(unit.cgroup_path());
    }
    let mut m = Manager::connect(true)?;
    let root = m
        .bus
        .call(
            DEST,
            OBJECT,
            "org.freedesktop.DBus.Properties",
            "Get",
            vec![Value::str(IFACE), Value::str("ControlGroup")],
        )?
        .map_err(|e| call_error("look up the manager's ControlGroup", &e))?;
    let root = root.first().and_then(Value::as_str).unwrap_or("");
    Ok(format!(
        "{}{}",
        root.trim_end_matches('/'),
        unit.cgroup_path()
    ))
}

/// `update`: the new limits as unit properties (the cgroup files are written by the caller).
pub fn update(unit: &Unit, r: &LinuxResources, layout: Layout) -> Result<()> {
    let props = resource_properties(r, layout)?;
    if props.is_empty() {
        return Ok(());
    }
    Manager::connect(unit.user)?.set_properties(unit, &props)
}

/// Stops the scope (systemd removes its cgroups); a scope already gone is fine, and so is
/// no systemd at all (then no scope was ever started).
pub fn stop(unit: &Unit) -> Result<()> {
    if socket(unit.user).is_err() {
        return Ok(());
    }
    Manager::connect(unit.user)?.stop(unit)
}

/// The unit properties for `linux.resources`, with the names and units systemd uses on each
/// hierarchy (runc's choice of properties).
fn resource_properties(r: &LinuxResources, layout: Layout) -> Result<Vec<(String, Value)>> {
    let r = &super::unset_zeros(r);
    let v2 = layout == Layout::Unified;
    let mut p: Vec<(String, Value)> = Vec::new();
    let mut set = |k: &str, v: Value| p.push((k.to_string(), v));
    let bytes = |v: i64| Value::U64(if v < 0 { u64::MAX } else { v as u64 });
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().filter(|l| *l != 0) {
            set(if v2 { "MemoryMax" } else { "MemoryLimit" }, bytes(l));
        }
        if v2 {
            if let Some(v) = m.reservation().filter(|v| *v != 0) {
                set("MemoryLow", bytes(v));
            }
            match (m.swap(), m.limit()) {
                (Some(s), _) if s < 0 => set("MemorySwapMax", Value::U64(u64::MAX)),
                (Some(s), Some(l)) if l > 0 && s >= l => {
                    set("MemorySwapMax", Value::U64((s - l) as u64))
                }
                _ => {}
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s > 0) {
            if v2 {
                set("CPUWeight", Value::U64(super::v2::shares_to_weight(s)));
            } else {
                set("CPUShares", Value::U64(s));
            }
        }
        let period = c.period().filter(|p| *p > 0);
        if let Some(q) = c.quota() {
            let per_sec = if q > 0 {
                // systemd keeps whole percent (10 ms per second): round up, never below quota.
                let us = (q as u64 * 1_000_000).div_ceil(period.unwrap_or(100_000));
                us.div_ceil(10_000) * 10_000
            } else {
                u64::MAX
            };
            set("CPUQuotaPerSecUSec", Value::U64(per_sec));
        }
        if let Some(p) = period {
            set("CPUQuotaPeriodUSec", Value::U64(p));
        }
        if v2 {
            if let Some(cpus) = c.cpus().as_ref().filter(|s| !s.is_empty()) {
                set(
                    "AllowedCPUs",
                    Value::Array("y".into(), bitmask(cpus, "cpus")?),
                );
            }
            if let Some(mems) = c.mems().as_ref().filter(|s| !s.is_empty()) {
                set(
                    "AllowedMemoryNodes",
                    Value::Array("y".into(), bitmask(mems, "mems")?),
                );
            }
        }
    }
    if let Some(pids) = r.pids() {
        let v = if pids.limit() > 0 {
            pids.limit() as u64
        } else {
            u64::MAX
        };
        set("TasksMax", Value::U64(v));
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        if w > 0 {
            if v2 {
                set("IOWeight", Value::U64(super::v2::blkio_to_io_weight(w)));
            } else {
                set("BlockIOWeight", Value::U64(u64::from(w)));
            }
        }
    }
    Ok(p)
}

/// A cpuset list ("0-3,8") as the byte mask systemd's AllowedCPUs takes.
fn bitmask(list: &str, field: &str) -> Result<Vec<Value>> {
    let bad = || {
        Error::msg(format!(
            "linux.resources.cpu.{field} {list:?}: not a list like \"0-3,8\""
        ))
    };
    let mut bits: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a > b || b >= 1 << 16 {
            return Err(bad());
        }
        for i in a..=b {
            if bits.len() <= i / 8 {
                bits.resize(i / 8 + 1, 0);
            }
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    Ok(bits.into_iter().map(Value::Byte).collect())
}

/// `org.systemd.property.<Name>` annotations as unit properties. Values are written as
/// GVariant text, as runc reads them: `true`, `'text'`, `uint64 5`, or a bare number (uint64,
/// which is what nearly every numeric property is). `<Name>Sec` in seconds becomes
/// `<Name>USec`, as with runc.
fn annotation_properties(spec: &Spec) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for (k, v) in spec.annotations().iter().flatten() {
        let Some(name) = k.strip_prefix(ANNOTATION_PREFIX) else {
            continue;
        };
        let bad = || {
            Error::msg(format!(
                "annotation {k}: cannot read {v:?} as a property value"
            ))
            .with_hint("write 'text', true, false, a number, or a typed number like \"uint64 5\"")
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::msg(format!("annotation {k}: not a property name")));
        }
        if let Some(stem) = name.strip_suffix("Sec").filter(|s| !s.ends_with('U')) {
            let secs: f64 = v.trim().parse().map_err(|_| bad())?;
            if !(0.0..1e12).contains(&secs) {
                return Err(bad());
            }
            out.push((format!("{stem}USec"), Value::U64((secs * 1e6) as u64)));
            continue;
        }
        out.push((name.to_string(), parse_variant(v.trim()).ok_or_else(bad)?));
    }
    Ok(out)
}

fn parse_variant(s: &str) -> Option<Value> {
    match s {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    for q in ['\'', '"'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return (!inner.contains(q)).then(|| Value::str(inner));
        }
    }
    if let Some((ty, n)) = s.split_once(' ') {
        let n = n.trim();
        return match ty {
            "uint64" => n.parse().ok().map(Value::U64),
            "int64" => n.parse().ok().map(Value::I64),
            "uint32" => n.parse().ok().map(Value::U32),
            "int32" => n.parse().ok().map(Value::I32),
            "byte" => n.parse().ok().map(Value::Byte),
            "boolean" => parse_variant(n).filter(|v| matches!(v, Value::Bool(_))),
            _ => None,
        };
    }
    s.parse().ok().map(Value::U64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn slices_expand_like_systemd() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("kubepods-besteffort-pod1.slice").unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "");
        for bad in [
            "system",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            ".slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn units_come_from_slice_prefix_name() {
        let s = spec(
            serde_json::json!({"ociVersion": "1.0.2", "linux": {"cgroupsPath": "kubepods-pod1.slice:cri-containerd:abc"}}),
        );
        let u = Unit::from_spec(&s, "id", false).unwrap();
        assert_eq!(u.name, "cri-containerd-abc.scope");
        assert_eq!(
            u.cgroup_path(),
            "/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope"
        );
        let s = spec(serde_json::json!({"ociVersion": "1.0.2"}));
        let u = Unit::from_spec(&s, "c1", false).unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("husk-c1.scope", "system.slice")
        );
        let s = spec(serde_json::json!({"ociVersion": "1.0.2", "linux": {"cgroupsPath": ":p:n"}}));
        assert_eq!(Unit::from_spec(&s, "c1", true).unwrap().slice, "user.slice");
        for bad in [
            "/a/b",
            "a.slice:p",
            "a.slice:p:n:x",
            "bad:p:n",
            "a.slice:p:x y",
            "a.slice:p:n.slice",
        ] {
            let s = spec(serde_json::json!({"ociVersion": "1.0.2", "linux": {"cgroupsPath": bad}}));
            assert!(Unit::from_spec(&s, "c1", false).is_err(), "{bad}");
        }
    }

    #[test]
    fn resources_become_properties_per_hierarchy() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1_073_741_824, "swap": 2_147_483_648u64},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-2,9"},
            "pids": {"limit": 99},
            "blockIO": {"weight": 500}
        }))
        .unwrap();
        let v2 = resource_properties(&r, Layout::Unified).unwrap();
        let get =
            |p: &[(String, Value)], k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get(&v2, "MemoryMax"), Some(Value::U64(1 << 30)));
        assert_eq!(get(&v2, "MemorySwapMax"), Some(Value::U64(1 << 30)));
        assert_eq!(get(&v2, "CPUWeight"), Some(Value::U64(39)));
        assert_eq!(get(&v2, "CPUQuotaPerSecUSec"), Some(Value::U64(500_000)));
        assert_eq!(get(&v2, "TasksMax"), Some(Value::U64(99)));
        assert_eq!(get(&v2, "IOWeight"), Some(Value::U64(4950)));
        assert_eq!(
            get(&v2, "AllowedCPUs"),
            Some(Value::Array(
                "y".into(),
                vec![Value::Byte(0b111), Value::Byte(0b10)]
            ))
        );
        let v1 = resource_properties(&r, Layout::Hybrid).unwrap();
        assert_eq!(get(&v1, "MemoryLimit"), Some(Value::U64(1 << 30)));
        assert_eq!(get(&v1, "CPUShares"), Some(Value::U64(1024)));
        assert_eq!(get(&v1, "BlockIOWeight"), Some(Value::U64(500)));
        assert!(get(&v1, "AllowedCPUs").is_none());
        // 1 ms in 30 ms is 33.3 ms/s: rounded up to whole percent.
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"cpu": {"quota": 1000, "period": 30000}}))
                .unwrap();
        let p = resource_properties(&r, Layout::Unified).unwrap();
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(Value::U64(40_000)));
    }

    #[test]
    fn annotations_are_read_as_runc_reads_them() {
        let s = spec(serde_json::json!({"ociVersion": "1.0.2", "annotations": {
            "org.systemd.property.TimeoutStopSec": "2.5",
            "org.systemd.property.CollectMode": "'inactive-or-failed'",
            "org.systemd.property.IgnoreSIGPIPE": "false",
            "org.systemd.property.CPUQuotaPeriodUSec": "uint64 20000",
            "other": "x"
        }}));
        let mut p = annotation_properties(&s).unwrap();
        p.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            p,
            vec![
                ("CPUQuotaPeriodUSec".into(), Value::U64(20000)),
                ("CollectMode".into(), Value::str("inactive-or-failed")),
                ("IgnoreSIGPIPE".into(), Value::Bool(false)),
                ("TimeoutStopUSec".into(), Value::U64(2_500_000)),
            ]
        );
        let s = spec(
            serde_json::json!({"ociVersion": "1.0.2", "annotations": {"org.systemd.property.X": "[1, 2]"}}),
        );
        assert!(annotation_properties(&s).is_err());
    }
}
