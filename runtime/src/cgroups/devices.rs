//! `linux.resources.devices`: which device nodes the container may create, read and write.
//!
//! The rules are the config's own, then the devices every container may use (runc's list).
//! `linux.devices` only makes nodes: as with runc, using them takes a rule in
//! `linux.resources.devices` (docker and podman write one for each `--device`). cgroup v1 takes them one by one in
//! `devices.allow`/`devices.deny`; cgroup v2 has no such files: an eBPF program attached to the
//! cgroup (BPF_PROG_TYPE_CGROUP_DEVICE) answers each access, and it is compiled here from the
//! same rules with v1's meaning: a rule for all devices resets the default, later rules win.

use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, Spec};

use crate::error::{Context, Result};
use crate::sys;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// 'a' (all), 'b', 'c' or 'p'.
    pub typ: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// Some of "rwm".
    pub access: String,
}

/// The devices every container may use whatever its config says (runc allows the same).
const DEFAULT_ALLOWED: &[(char, Option<i64>, Option<i64>, &str)] = &[
    ('c', None, None, "m"),
    ('b', None, None, "m"),
    ('c', Some(1), Some(3), "rwm"),
    ('c', Some(1), Some(5), "rwm"),
    ('c', Some(1), Some(7), "rwm"),
    ('c', Some(1), Some(8), "rwm"),
    ('c', Some(1), Some(9), "rwm"),
    ('c', Some(5), Some(0), "rwm"),
    ('c', Some(5), Some(1), "rwm"),
    ('c', Some(5), Some(2), "rwm"),
    ('c', Some(136), None, "rwm"),
];

fn type_char(t: Option<LinuxDeviceType>) -> char {
    match t {
        Some(LinuxDeviceType::B) => 'b',
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::P) => 'p',
        Some(LinuxDeviceType::A) | None => 'a',
    }
}

fn config_rule(d: &LinuxDeviceCgroup) -> Rule {
    // Letters other than r, w and m mean nothing to the kernel (runc drops them too).
    let access: String = d
        .access()
        .as_deref()
        .unwrap_or("rwm")
        .chars()
        .filter(|c| "rwm".contains(*c))
        .collect();
    Rule {
        allow: d.allow(),
        typ: type_char(d.typ()),
        major: d.major(),
        minor: d.minor(),
        access: if access.is_empty() {
            "rwm".into()
        } else {
            access
        },
    }
}

pub fn rules(spec: &Spec) -> Vec<Rule> {
    let linux = spec.linux().as_ref();
    let mut rules: Vec<Rule> = linux
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
        .into_iter()
        .flatten()
        .map(config_rule)
        .collect();
    rules.extend(
        DEFAULT_ALLOWED
            .iter()
            .map(|&(typ, major, minor, access)| Rule {
                allow: true,
                typ,
                major,
                minor,
                access: access.into(),
            }),
    );
    rules
}

impl Rule {
    /// The line v1's devices.allow / devices.deny take.
    pub fn v1_line(&self) -> String {
        if self.typ == 'a' {
            return "a".into();
        }
        let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.typ,
            num(self.major),
            num(self.minor),
            self.access
        )
    }

    fn access_bits(&self) -> i32 {
        self.access.chars().fold(0, |b, c| {
            b | match c {
                'm' => 1, // BPF_DEVCG_ACC_MKNOD
                'r' => 2, // BPF_DEVCG_ACC_READ
                'w' => 4, // BPF_DEVCG_ACC_WRITE
                _ => 0,
            }
        })
    }
}

// eBPF encoding (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut i = [0u8; 8];
    i[0] = code;
    i[1] = (src << 4) | (dst & 0xf);
    i[2..4].copy_from_slice(&off.to_ne_bytes());
    i[4..8].copy_from_slice(&imm.to_ne_bytes());
    i
}

/// The device filter for `rules`: 1 allows the access, 0 denies it (EPERM).
pub fn program(rules: &[Rule]) -> Vec<[u8; 8]> {
    // v1's semantics: a rule for all devices sets the default and forgets what came before;
    // of the rest, the last one that matches decides.
    let mut default_allow = true;
    let mut exceptions: Vec<&Rule> = Vec::new();
    for r in rules {
        if r.typ == 'a' {
            default_allow = r.allow;
            exceptions.clear();
        } else if r.typ != 'p' {
            // Even a rule agreeing with the default counts: it overrides earlier exceptions.
            exceptions.push(r);
        }
    }
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; } in r1:
    // r2 = device type, r3 = requested access, r4 = major, r5 = minor.
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in exceptions.iter().rev() {
        let mut block: Vec<(u8, u8, i32)> = Vec::new(); // conditional jumps past the block
        let mut tail = Vec::new();
        block.push((JMP_JNE_K, 2, if r.typ == 'b' { 1 } else { 2 }));
        let bits = r.access_bits();
        // An allow needs every requested bit in the rule; a deny, any of them.
        if r.allow && bits != 7 {
            tail.push(insn(ALU64_MOV_X, 1, 3, 0, 0));
            tail.push(insn(ALU64_AND_K, 1, 0, 0, !bits & 7));
            tail.push(insn(JMP_JNE_K, 1, 0, -1, 0));
        } else if !r.allow && bits != 7 {
            tail.push(insn(ALU64_MOV_X, 1, 3, 0, 0));
            tail.push(insn(ALU64_AND_K, 1, 0, 0, bits));
            tail.push(insn(JMP_JEQ_K, 1, 0, -1, 0));
        }
        if let Some(m) = r.major {
            block.push((JMP_JNE_K, 4, m as i32));
        }
        if let Some(m) = r.minor {
            block.push((JMP_JNE_K, 5, m as i32));
        }
        let mut insns: Vec<[u8; 8]> = block
            .iter()
            .map(|&(code, reg, imm)| insn(code, reg, 0, -1, imm))
            .collect();
        insns.extend(tail);
        insns.push(insn(ALU64_MOV_K, 0, 0, 0, r.allow as i32));
        insns.push(insn(JMP_EXIT, 0, 0, 0, 0));
        // Every jump marked -1 skips to the end of the block.
        let len = insns.len();
        for (at, i) in insns.iter_mut().enumerate() {
            if i16::from_ne_bytes([i[2], i[3]]) == -1 {
                i[2..4].copy_from_slice(&((len - at - 1) as i16).to_ne_bytes());
            }
        }
        p.extend(insns);
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, default_allow as i32));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// cgroup v1: the rules, in order, into devices.allow and devices.deny.
pub fn apply_v1(dir: &Path, spec: &Spec) -> Result<()> {
    for r in rules(spec) {
        let f = dir.join(if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        });
        let line = r.v1_line();
        std::fs::write(&f, &line).ctx(|| format!("device rule {line:?}: write {}", f.display()))?;
    }
    Ok(())
}

/// cgroup v2: attaches the filter for `spec`'s rules to `dir`, replacing any earlier one
/// (so `update` can change the rules of a running container).
pub fn apply_v2(dir: &Path, spec: &Spec) -> Result<()> {
    let insns = program(&rules(spec));
    let license = c"Apache-2.0";
    let prog = sys::bpf_prog_load(sys::BPF_PROG_TYPE_CGROUP_DEVICE, &insns, license)
        .ctx(|| "load the eBPF device filter (BPF_PROG_LOAD)")?;
    let cg = std::fs::File::open(dir).ctx(|| format!("open cgroup {}", dir.display()))?;
    let old = sys::bpf_prog_query(cg.as_fd(), sys::BPF_CGROUP_DEVICE).unwrap_or_default();
    sys::bpf_prog_attach(
        true,
        cg.as_fd(),
        prog.as_fd(),
        sys::BPF_CGROUP_DEVICE,
        sys::BPF_F_ALLOW_MULTI,
    )
    .ctx(|| format!("attach the eBPF device filter to {}", dir.display()))?;
    for id in old {
        if let Ok(p) = sys::bpf_prog_get_fd_by_id(id) {
            sys::bpf_prog_attach(false, cg.as_fd(), p.as_fd(), sys::BPF_CGROUP_DEVICE, 0)
                .ctx(|| format!("detach the previous device filter from {}", dir.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, typ: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
        Rule {
            allow,
            typ,
            major,
            minor,
            access: access.into(),
        }
    }

    /// Runs `program` the way the kernel would, for one access.
    fn eval(p: &[[u8; 8]], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i[1] & 0xf) as usize, (i[1] >> 4) as usize);
            let off = i16::from_ne_bytes([i[2], i[3]]) as isize;
            let imm = i32::from_ne_bytes(i[4..8].try_into().unwrap()) as i64 as u64;
            pc += 1;
            match i[0] {
                LDX_MEM_W => r[dst] = ctx[off as usize / 4] as u64,
                ALU64_AND_K => r[dst] &= imm,
                ALU64_RSH_K => r[dst] >>= imm,
                ALU64_MOV_K => r[dst] = imm,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JEQ_K if r[dst] == imm => pc = (pc as isize + off) as usize,
                JMP_JNE_K if r[dst] != imm => pc = (pc as isize + off) as usize,
                JMP_JEQ_K | JMP_JNE_K => {}
                JMP_EXIT => return r[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    const CHR: u32 = 2;
    const BLK: u32 = 1;
    const M: u32 = 1;
    const R: u32 = 2;
    const W: u32 = 4;

    #[test]
    fn deny_all_then_allow_list() {
        let mut rules = vec![rule(false, 'a', None, None, "rwm")];
        rules.extend(
            DEFAULT_ALLOWED
                .iter()
                .map(|&(t, a, b, acc)| rule(true, t, a, b, acc)),
        );
        rules.push(rule(true, 'b', Some(7), Some(0), "r"));
        let p = program(&rules);
        assert_eq!(eval(&p, CHR, R | W, 1, 3), 1, "/dev/null rw");
        assert_eq!(eval(&p, CHR, R, 1, 1), 0, "/dev/mem");
        assert_eq!(eval(&p, CHR, M, 10, 200), 1, "mknod of any char device");
        assert_eq!(eval(&p, CHR, R, 136, 4), 1, "any pty");
        assert_eq!(eval(&p, BLK, R, 7, 0), 1, "loop0 read");
        assert_eq!(eval(&p, BLK, R | W, 7, 0), 0, "loop0 write is not allowed");
        assert_eq!(eval(&p, BLK, R, 7, 1), 0, "loop1");
    }

    #[test]
    fn later_rules_win_and_a_resets() {
        let p = program(&[
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(false, 'c', Some(1), None, "w"),
        ]);
        assert_eq!(
            eval(&p, CHR, R, 1, 3),
            1,
            "default allow; the deny covers only w"
        );
        assert_eq!(eval(&p, CHR, W, 1, 3), 0, "the later deny wins");
        assert_eq!(eval(&p, CHR, W, 4, 1), 1, "default allow");
        let p = program(&[
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(false, 'a', None, None, "rwm"),
        ]);
        assert_eq!(eval(&p, CHR, R, 1, 3), 0, "'a' forgets the earlier rules");
        assert_eq!(rule(true, 'c', None, Some(3), "rw").v1_line(), "c *:3 rw");
        assert_eq!(rule(false, 'a', None, None, "rwm").v1_line(), "a");
    }

    /// The real kernel: loads, attaches, and enforces the filter, and a second attach
    /// replaces the first. Needs root and a cgroup2 mount (the unified one on hybrid hosts).
    #[test]
    fn the_kernel_enforces_and_replaces_the_filter() {
        let Some(base) = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .find(|p| {
                nix::sys::statfs::statfs(*p)
                    .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            })
        else {
            return eprintln!("skipped: no cgroup2 mount");
        };
        if !nix::unistd::geteuid().is_root() {
            return eprintln!("skipped: needs root");
        }
        let dir = Path::new(base).join(format!("husk-devtest-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let spec = |devices: serde_json::Value| -> Spec {
            serde_json::from_value(serde_json::json!({
                "ociVersion": "1.0.2", "linux": {"resources": {"devices": devices}}
            }))
            .unwrap()
        };
        let probe = || {
            let script = format!(
                "echo $$ > {}/cgroup.procs; exec 3</dev/null && echo null-ok; (exec 4</dev/kmsg) 2>&1",
                dir.display()
            );
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        apply_v2(
            &dir,
            &spec(serde_json::json!([{"allow": false, "access": "rwm"}])),
        )
        .unwrap();
        let denied = probe();
        apply_v2(&dir, &spec(serde_json::json!([]))).unwrap();
        let allowed = probe();
        let _ = std::fs::remove_dir(&dir);
        assert!(
            denied.contains("null-ok") && denied.contains("Operation not permitted"),
            "{denied}"
        );
        assert!(
            allowed.contains("null-ok") && !allowed.contains("not permitted"),
            "{allowed}"
        );
    }
}
