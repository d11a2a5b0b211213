//! `process.capabilities`: the five sets, applied around the switch to the container's user.
//!
//! Names the kernel or this build does not know are warned about and ignored, as runc does, so
//! a config written for a newer kernel still runs.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability};
use oci_spec::runtime::{Capabilities, Capability as SpecCap, LinuxCapabilities};

use crate::error::{Context, Result};

/// The capability sets as bitmasks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

fn mask(set: Option<&Capabilities>) -> u64 {
    let last = last_cap();
    let mut m = 0u64;
    for c in set.into_iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        match Capability::from_str(&name) {
            Ok(cap) if cap.index() <= last => m |= cap.bitmask(),
            _ => crate::log::warn(&format!(
                "capability {name} is not known to this kernel: ignored"
            )),
        }
    }
    m
}

impl Sets {
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Sets {
        let Some(c) = c else { return Sets::default() };
        Sets {
            bounding: mask(c.bounding().as_ref()),
            effective: mask(c.effective().as_ref()),
            permitted: mask(c.permitted().as_ref()),
            inheritable: mask(c.inheritable().as_ref()),
            ambient: mask(c.ambient().as_ref()),
        }
    }
}

/// Before the uid switch: shrink the bounding set (needs CAP_SETPCAP, which we still have).
pub fn drop_bounding(s: &Sets) -> Result<()> {
    for i in 0..=last_cap() {
        if s.bounding & (1 << i) == 0 {
            if let Some(cap) = caps::all().into_iter().find(|c| c.index() == i) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                    crate::error::Error::msg(format!("drop {cap} from the bounding set: {e}"))
                })?;
            }
        }
    }
    Ok(())
}

/// After the uid switch (with PR_SET_KEEPCAPS): set effective, permitted and inheritable at
/// once, then raise the ambient set.
pub fn apply(s: &Sets) -> Result<()> {
    crate::sys::capset(s.effective, s.permitted, s.inheritable)
        .ctx(|| {
            format!(
                "capset effective={:#x} permitted={:#x} inheritable={:#x}",
                s.effective, s.permitted, s.inheritable
            )
        })
        .map_err(|e| match beyond_our_own(s.permitted | s.effective) {
            // The usual cause: a capability the runtime itself was not given.
            Some(names) => e.with_hint(format!(
                "husk itself lacks {names}, so no container of it can have them: drop them from process.capabilities"
            )),
            None => e,
        })?;
    for cap in caps::all() {
        if s.ambient & cap.bitmask() != 0 {
            // The kernel requires an ambient capability to be permitted and inheritable; runc
            // ignores the failure (its default spec asks for ambient without inheritable).
            if let Err(e) = caps::raise(None, CapSet::Ambient, cap) {
                crate::log::debug(&format!("raise ambient {cap}: {e}"));
            }
        }
    }
    Ok(())
}

/// The capabilities in `wanted` that this process's own permitted set lacks, by name.
fn beyond_our_own(wanted: u64) -> Option<String> {
    let own = caps::read(None, CapSet::Permitted).ok()?;
    let missing: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| wanted & c.bitmask() != 0 && !own.contains(c))
        .map(|c| c.to_string())
        .collect();
    (!missing.is_empty()).then(|| missing.join(", "))
}

/// Drops the capability names this build does not know from a raw config, with a warning, so
/// that parsing the config does not fail on them (runc ignores them too).
pub fn drop_unknown_names(config: &mut serde_json::Value) {
    let Some(sets) = config
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return;
    };
    for (set, names) in sets.iter_mut() {
        if let Some(list) = names.as_array_mut() {
            list.retain(|n| {
                let known = n
                    .as_str()
                    .is_some_and(|n| Capability::from_str(&caps::to_canonical(n)).is_ok());
                if !known {
                    crate::log::warn(&format!(
                        "process.capabilities.{set}: unknown capability {n}: ignored"
                    ));
                }
                known
            });
        }
    }
}

/// Parses names given on the command line (`exec --cap`).
pub fn parse_names(names: &[String]) -> Result<HashSet<SpecCap>> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value(serde_json::Value::String(caps::to_canonical(n)))
                .map_err(|_| crate::error::Error::msg(format!("--cap {n:?}: unknown capability")))
        })
        .collect()
}
