//! `linux.seccomp`: compiles the profile to a classic BPF program and loads it.
//!
//! seccompiler (our first choice) gives one match action per filter, so a profile with
//! per-syscall actions, errno values, NOTIFY and several architectures would have to be split
//! into stacked filters, which changes NOTIFY's semantics and multiplies the per-syscall cost.
//! A profile is a short linear program, so husk emits it directly, in libseccomp's shape:
//! check the architecture, load the syscall number, one block per syscall whose rules are
//! tried in order, and the default action.

mod syscalls;

use std::os::fd::OwnedFd;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use crate::error::{Error, Result};

const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_KILL_THREAD: u32 = 0;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const ARM_NR_BASE: u32 = 0x000f_0000;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;
const AND_K: u16 = 0x54;

const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg(i: usize, high: bool) -> u32 {
    16 + 8 * i as u32 + if high { 4 } else { 0 }
}

pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// A compiled profile, ready for seccomp(2).
#[derive(Debug)]
pub struct Filter {
    pub program: Vec<libc::sock_filter>,
    pub flags: u32,
    /// Whether some rule notifies a listener: loading returns the listener fd.
    pub notify: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Next,
    Label(usize),
}

struct Asm {
    insns: Vec<(u16, Target, Target, u32)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.insns.len());
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push((code, Target::Next, Target::Next, k));
    }
    fn jump(&mut self, code: u16, k: u32, jt: Target, jf: Target) {
        self.insns.push((code, jt, jf, k));
    }
    fn ja(&mut self, l: usize) {
        self.insns.push((JA, Target::Label(l), Target::Next, 0));
    }
    fn finish(self) -> Result<Vec<libc::sock_filter>> {
        let mut out = Vec::with_capacity(self.insns.len());
        for (pos, (code, jt, jf, k)) in self.insns.iter().enumerate() {
            let rel = |t: &Target| -> Result<u32> {
                match t {
                    Target::Next => Ok(0),
                    Target::Label(l) => {
                        let dest = self.labels[*l].expect("label bound");
                        Ok((dest - pos - 1) as u32)
                    }
                }
            };
            let (jt, jf) = (rel(jt)?, rel(jf)?);
            if *code == JA {
                out.push(libc::sock_filter {
                    code: *code,
                    jt: 0,
                    jf: 0,
                    k: jt,
                });
                continue;
            }
            if jt > 255 || jf > 255 {
                return Err(Error::msg(
                    "linux.seccomp: a rule is too large for a BPF conditional jump",
                ));
            }
            out.push(libc::sock_filter {
                code: *code,
                jt: jt as u8,
                jf: jf as u8,
                k: *k,
            });
        }
        if out.len() > 4096 {
            return Err(Error::msg(format!("linux.seccomp: the profile compiles to {} BPF instructions; the kernel allows 4096", out.len())));
        }
        Ok(out)
    }
}

fn action_ret(a: LinuxSeccompAction, errno: Option<u32>) -> u32 {
    let data = |default: u32| errno.unwrap_or(default) & 0xffff;
    match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data(libc::EPERM as u32),
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data(libc::EPERM as u32),
        LinuxSeccompAction::ScmpActNotify => RET_USER_NOTIF,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
    }
}

/// A syscall ABI a filter can have a section for.
struct Abi {
    arch: Arch,
    /// seccomp_data.arch of its calls; x32's come in as x86-64's with X32_SYSCALL_BIT set.
    audit: u32,
    table: &'static [(&'static str, u32)],
    /// 32-bit ABIs pass 32-bit arguments: only the low words are compared.
    wide: bool,
    /// Numbers from here up are the architecture's own calls, not ones newer than the table.
    private_from: Option<u32>,
}

const ABI_X86_64: Abi = Abi {
    arch: Arch::ScmpArchX86_64,
    audit: AUDIT_ARCH_X86_64,
    table: syscalls::X86_64,
    wide: true,
    private_from: None,
};
const ABI_X86: Abi = Abi {
    arch: Arch::ScmpArchX86,
    audit: AUDIT_ARCH_I386,
    table: syscalls::X86,
    wide: false,
    private_from: None,
};
const ABI_X32: Abi = Abi {
    arch: Arch::ScmpArchX32,
    audit: AUDIT_ARCH_X86_64,
    table: syscalls::X32,
    wide: true,
    private_from: None,
};
const ABI_AARCH64: Abi = Abi {
    arch: Arch::ScmpArchAarch64,
    audit: AUDIT_ARCH_AARCH64,
    table: syscalls::AARCH64,
    wide: true,
    private_from: None,
};
const ABI_ARM: Abi = Abi {
    arch: Arch::ScmpArchArm,
    audit: AUDIT_ARCH_ARM,
    table: syscalls::ARM,
    wide: false,
    private_from: Some(ARM_NR_BASE),
};

/// A kernel husk runs on. Its filter has sections only for the ABIs that kernel runs:
/// architectures it cannot run are irrelevant to the filter (as libseccomp).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Machine {
    X86_64,
    Aarch64,
}

impl Machine {
    /// Native first: SCMP_ARCH_NATIVE, and a profile without architectures, mean that one.
    fn abis(self) -> &'static [Abi] {
        match self {
            Machine::X86_64 => &[ABI_X86_64, ABI_X86, ABI_X32],
            Machine::Aarch64 => &[ABI_AARCH64, ABI_ARM],
        }
    }
}

/// This build's kernel: SCMP_ARCH_NATIVE is the build target, as in libseccomp. Big-endian
/// aarch64 has another audit arch and puts an argument's high word first, which `off_arg` does
/// not know, so it has none.
const NATIVE: Option<Machine> = if cfg!(target_arch = "x86_64") {
    Some(Machine::X86_64)
} else if cfg!(all(target_arch = "aarch64", target_endian = "little")) {
    Some(Machine::Aarch64)
} else {
    None
};

fn lookup(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| table[i].1)
}

pub fn compile(s: &LinuxSeccomp) -> Result<Filter> {
    let Some(machine) = NATIVE else {
        return Err(Error::msg(format!(
            "linux.seccomp: husk has no syscall tables for {}",
            std::env::consts::ARCH
        )));
    };
    compile_for(s, machine)
}

fn compile_for(s: &LinuxSeccomp, machine: Machine) -> Result<Filter> {
    let default = action_ret(s.default_action(), s.default_errno_ret());
    let mut notify = s.default_action() == LinuxSeccompAction::ScmpActNotify;
    let mut archs: Vec<Arch> = s.architectures().clone().unwrap_or_default();
    if archs.is_empty() {
        archs.push(Arch::ScmpArchNative);
    }
    let abis = machine.abis();
    let listed: Vec<bool> = abis
        .iter()
        .map(|abi| {
            archs
                .iter()
                .any(|a| *a == abi.arch || (*a == Arch::ScmpArchNative && abi.arch == abis[0].arch))
        })
        .collect();
    let x32 = abis
        .iter()
        .zip(&listed)
        .any(|(abi, l)| *l && abi.arch == Arch::ScmpArchX32);
    // x32's calls are reached through x86-64's section, which needs entering for them alone.
    let entered = |abi: &Abi, listed: bool| listed || (abi.arch == Arch::ScmpArchX86_64 && x32);
    for sc in s.syscalls().iter().flatten() {
        notify |= sc.action() == LinuxSeccompAction::ScmpActNotify;
        // The runtime writes the exec fifo after loading the filter: a notified write would
        // wait on an agent that is waiting on us.
        if sc.action() == LinuxSeccompAction::ScmpActNotify
            && sc.names().iter().any(|n| n == "write")
        {
            return Err(Error::msg(
                "linux.seccomp: SCMP_ACT_NOTIFY cannot be used for the write syscall",
            ));
        }
        for a in sc.args().iter().flatten() {
            if a.index() > 5 {
                return Err(Error::msg(format!(
                    "linux.seccomp: argument index {} of {:?} is out of range (0-5)",
                    a.index(),
                    sc.names()
                )));
            }
        }
    }

    let mut asm = Asm {
        insns: Vec::new(),
        labels: Vec::new(),
    };
    let sections: Vec<usize> = abis.iter().map(|_| asm.label()).collect();
    asm.stmt(LD_W_ABS, OFF_ARCH);
    for (i, abi) in abis.iter().enumerate() {
        if abi.arch == Arch::ScmpArchX32 || !entered(abi, listed[i]) {
            continue;
        }
        let skip = asm.label();
        asm.jump(JEQ_K, abi.audit, Target::Next, Target::Label(skip));
        asm.ja(sections[i]);
        asm.bind(skip);
    }
    // An architecture the profile does not list must not be a way around it.
    asm.stmt(RET_K, RET_KILL_PROCESS);

    let x32_section = abis
        .iter()
        .position(|abi| abi.arch == Arch::ScmpArchX32)
        .map(|i| sections[i]);
    for (i, abi) in abis.iter().enumerate() {
        if !entered(abi, listed[i]) {
            continue;
        }
        asm.bind(sections[i]);
        asm.stmt(LD_W_ABS, OFF_NR);
        if abi.arch == Arch::ScmpArchX86_64 {
            // x32 syscalls arrive with the x86-64 audit arch and the x32 bit set.
            let not_x32 = asm.label();
            asm.jump(JGE_K, X32_SYSCALL_BIT, Target::Next, Target::Label(not_x32));
            match x32_section {
                Some(l) if x32 => asm.ja(l),
                _ => asm.stmt(RET_K, RET_KILL_PROCESS),
            }
            asm.bind(not_x32);
            if !listed[i] {
                asm.stmt(RET_K, RET_KILL_PROCESS);
                continue;
            }
        }
        emit_rules(&mut asm, s, abi)?;
        // Syscalls newer than this table get ENOSYS, so that libc falls back (clone3 → clone)
        // instead of failing on the profile's default errno.
        if !matches!(
            s.default_action(),
            LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog
        ) {
            let max = abi
                .table
                .iter()
                .map(|(_, n)| *n)
                .filter(|n| abi.private_from.is_none_or(|p| *n < p))
                .max()
                .unwrap_or(0);
            let known = asm.label();
            asm.jump(JGT_K, max, Target::Next, Target::Label(known));
            if let Some(p) = abi.private_from {
                asm.jump(JGE_K, p, Target::Label(known), Target::Next);
            }
            asm.stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32);
            asm.bind(known);
        }
        asm.stmt(RET_K, default);
    }
    let program = asm.finish()?;

    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        };
    }
    if notify {
        flags |= FLAG_NEW_LISTENER;
        // TSYNC and a listener cannot be asked for together (without TSYNC_ESRCH).
        flags &= !FLAG_TSYNC;
    }
    Ok(Filter {
        program,
        flags,
        notify,
    })
}

/// One block per syscall named in the profile: its rules in order, each a list of argument
/// conditions and an action; a syscall whose rules all fail falls to the default action.
fn emit_rules(asm: &mut Asm, s: &LinuxSeccomp, t: &Abi) -> Result<()> {
    let mut by_nr: Vec<(u32, Vec<(&oci_spec::runtime::LinuxSyscall, u32)>)> = Vec::new();
    for sc in s.syscalls().iter().flatten() {
        let ret = action_ret(sc.action(), sc.errno_ret());
        for name in sc.names() {
            // Names this architecture lacks are skipped, as runc does.
            let Some(nr) = lookup(t.table, name) else {
                continue;
            };
            match by_nr.iter_mut().find(|(n, _)| *n == nr) {
                Some((_, rules)) => rules.push((sc, ret)),
                None => by_nr.push((nr, vec![(sc, ret)])),
            }
        }
    }
    let default = action_ret(s.default_action(), s.default_errno_ret());
    for (nr, rules) in by_nr {
        // The common case (Docker's profile is nearly all of it): an unconditional first rule.
        if rules[0].0.args().as_ref().is_none_or(|a| a.is_empty()) {
            let next_syscall = asm.label();
            asm.jump(JEQ_K, nr, Target::Next, Target::Label(next_syscall));
            asm.stmt(RET_K, rules[0].1);
            asm.bind(next_syscall);
            continue;
        }
        let next_syscall = asm.label();
        asm.jump(JEQ_K, nr, Target::Next, Target::Label(next_syscall));
        for (sc, ret) in rules {
            let args: &[oci_spec::runtime::LinuxSeccompArg] =
                sc.args().as_deref().unwrap_or_default();
            // Conditions on different arguments must all hold; several conditions on one
            // argument could never all hold, and runc reads them as alternatives.
            let same_index = args.len() > 1 && args.iter().all(|a| a.index() == args[0].index());
            let alternatives: Vec<&[oci_spec::runtime::LinuxSeccompArg]> = if same_index {
                args.chunks(1).collect()
            } else {
                vec![args]
            };
            for conds in alternatives {
                let next_rule = asm.label();
                for a in conds {
                    emit_condition(asm, a, t.wide, next_rule);
                }
                asm.stmt(RET_K, ret);
                asm.bind(next_rule);
            }
        }
        // A failed rule's conditions clobbered the accumulator, but every path that gets here
        // returns; a mismatched syscall number skips the block with the number still loaded.
        asm.stmt(RET_K, default);
        asm.bind(next_syscall);
    }
    Ok(())
}

/// Falls through when the condition holds, jumps to `fail` when it does not.
fn emit_condition(asm: &mut Asm, a: &oci_spec::runtime::LinuxSeccompArg, wide: bool, fail: usize) {
    let (v, i) = (a.value(), a.index());
    let (hi, lo) = ((v >> 32) as u32, v as u32);
    let pass = asm.label();
    let f = Target::Label(fail);
    let p = Target::Label(pass);
    let n = Target::Next;
    match a.op() {
        LinuxSeccompOperator::ScmpCmpEq => {
            if wide {
                asm.stmt(LD_W_ABS, off_arg(i, true));
                asm.jump(JEQ_K, hi, n, f);
            }
            asm.stmt(LD_W_ABS, off_arg(i, false));
            asm.jump(JEQ_K, lo, n, f);
        }
        LinuxSeccompOperator::ScmpCmpNe => {
            if wide {
                asm.stmt(LD_W_ABS, off_arg(i, true));
                asm.jump(JEQ_K, hi, n, p);
            }
            asm.stmt(LD_W_ABS, off_arg(i, false));
            asm.jump(JEQ_K, lo, f, n);
        }
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let want = a.value_two().unwrap_or(0);
            if wide {
                asm.stmt(LD_W_ABS, off_arg(i, true));
                asm.stmt(AND_K, hi);
                asm.jump(JEQ_K, (want >> 32) as u32, n, f);
            }
            asm.stmt(LD_W_ABS, off_arg(i, false));
            asm.stmt(AND_K, lo);
            asm.jump(JEQ_K, want as u32, n, f);
        }
        op @ (LinuxSeccompOperator::ScmpCmpGt | LinuxSeccompOperator::ScmpCmpGe) => {
            let code = if op == LinuxSeccompOperator::ScmpCmpGt {
                JGT_K
            } else {
                JGE_K
            };
            if wide {
                asm.stmt(LD_W_ABS, off_arg(i, true));
                asm.jump(JGT_K, hi, p, n);
                asm.jump(JEQ_K, hi, n, f);
            }
            asm.stmt(LD_W_ABS, off_arg(i, false));
            asm.jump(code, lo, n, f);
        }
        op @ (LinuxSeccompOperator::ScmpCmpLt | LinuxSeccompOperator::ScmpCmpLe) => {
            // a < v is !(a >= v); a <= v is !(a > v).
            let code = if op == LinuxSeccompOperator::ScmpCmpLt {
                JGE_K
            } else {
                JGT_K
            };
            if wide {
                asm.stmt(LD_W_ABS, off_arg(i, true));
                asm.jump(JGT_K, hi, f, n);
                asm.jump(JEQ_K, hi, n, p);
            }
            asm.stmt(LD_W_ABS, off_arg(i, false));
            asm.jump(code, lo, f, n);
        }
    }
    asm.bind(pass);
}

/// Loads the filter into this process; with a NOTIFY rule, returns the listener fd.
pub fn load(f: &Filter) -> Result<Option<OwnedFd>> {
    crate::sys::seccomp_load(&f.program, f.flags).map_err(|e| {
        let err = Error::sys(
            format!(
                "linux.seccomp: load filter of {} instructions (flags {:#x})",
                f.program.len(),
                f.flags
            ),
            e,
        );
        match e {
            nix::errno::Errno::EACCES => {
                err.with_hint("loading a filter needs noNewPrivileges or CAP_SYS_ADMIN")
            }
            nix::errno::Errno::EINVAL => {
                err.with_hint("does this kernel support every flag and action asked for?")
            }
            _ => err,
        }
    })
}

/// Hands a NOTIFY listener to the agent at `linux.seccomp.listenerPath`, with the container's
/// state, in the message format runc uses (runc's seccompagent reads it).
pub fn send_to_agent(
    s: &LinuxSeccomp,
    listener: &OwnedFd,
    state: &serde_json::Value,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    let Some(path) = s
        .listener_path()
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty())
    else {
        return Err(Error::msg(
            "linux.seccomp: a SCMP_ACT_NOTIFY rule needs listenerPath",
        ));
    };
    let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        Error::io(
            format!(
                "linux.seccomp.listenerPath: failed to connect with seccomp agent at {}",
                path.display()
            ),
            &e,
        )
    })?;
    let msg = serde_json::json!({
        "ociVersion": crate::spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": state["pid"],
        "metadata": s.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    });
    crate::console::send_fd(stream.as_raw_fd(), listener.as_raw_fd(), &msg.to_string())
        .map_err(|e| e.context(format!("linux.seccomp.listenerPath {}", path.display())))
}

/// Loads the filter in a container process; a NOTIFY listener goes to the runtime over `ch`,
/// which hands it to the agent.
pub fn apply(f: Option<&Filter>, ch: &crate::sync::Channel) -> Result<()> {
    let Some(f) = f else { return Ok(()) };
    if let Some(listener) = load(f)? {
        ch.send_fd(&crate::sync::Msg::SeccompListener, &listener)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tables_are_sorted_and_know_common_syscalls() {
        for t in [
            syscalls::X86_64,
            syscalls::X86,
            syscalls::X32,
            syscalls::AARCH64,
            syscalls::ARM,
        ] {
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
        }
        assert_eq!(lookup(syscalls::X86_64, "read"), Some(0));
        assert_eq!(lookup(syscalls::X86_64, "mkdir"), Some(83));
        assert_eq!(lookup(syscalls::X86, "mkdir"), Some(39));
        assert_eq!(lookup(syscalls::X86_64, "no_such_call"), None);
    }

    /// Spot checks against libseccomp's tables, so a generator slip (a missed __ARCH_WANT, OABI
    /// numbering) shows up here rather than as a container that cannot start.
    #[test]
    fn arm_tables_match_libseccomp() {
        let aarch64 = [
            ("openat", 56),
            ("read", 63),
            ("write", 64),
            ("clone", 220),
            ("clone3", 435),
            ("mkdirat", 34),
            ("unshare", 97),
            ("fcntl", 25),
            ("mmap", 222),
            ("newfstatat", 79),
            ("renameat", 38),
            ("getrlimit", 163),
            ("memfd_secret", 447),
            ("io_getevents", 4),
        ];
        for (name, nr) in aarch64 {
            assert_eq!(lookup(syscalls::AARCH64, name), Some(nr), "aarch64 {name}");
        }
        // asm-generic has no legacy path calls, and no time64 variants on a 64-bit long.
        for name in [
            "open",
            "mkdir",
            "fork",
            "stat",
            "clock_gettime64",
            "arch_specific_syscall",
        ] {
            assert_eq!(lookup(syscalls::AARCH64, name), None, "aarch64 {name}");
        }
        let arm = [
            ("read", 3),
            ("open", 5),
            ("clone", 120),
            ("exit", 1),
            ("mkdir", 39),
            ("openat", 322),
            ("clone3", 435),
            ("clock_gettime64", 403),
            ("arm_fadvise64_64", 270),
            ("cacheflush", 0x0f0002),
            ("set_tls", 0x0f0005),
        ];
        for (name, nr) in arm {
            assert_eq!(lookup(syscalls::ARM, name), Some(nr), "arm {name}");
        }
        // OABI-only calls are not in the EABI table.
        assert_eq!(lookup(syscalls::ARM, "time"), None);
    }

    #[test]
    fn compiles_actions_conditions_and_arches() {
        let f = compile(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 6,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "unknown_call"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}
            ]
        })))
        .unwrap();
        assert!(f.notify);
        assert_eq!(f.flags & FLAG_NEW_LISTENER, FLAG_NEW_LISTENER);
        assert!(
            f.program.len() > 20 && f.program.len() < 200,
            "{}",
            f.program.len()
        );
        assert_eq!(f.program.last().unwrap().k, RET_ERRNO | 6);
    }

    #[test]
    fn docker_sized_profile_compiles_fast_and_fits() {
        let names: Vec<&str> = syscalls::X86_64.iter().map(|(n, _)| *n).take(340).collect();
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
        }));
        let t = std::time::Instant::now();
        let f = compile(&p).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_millis(50));
        assert!(f.program.len() < 4096);
    }
}
