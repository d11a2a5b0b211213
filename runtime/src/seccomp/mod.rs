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
    let archs: Vec<Arch> = s.architectures().clone().unwrap_or_default();
    let abis = machine.abis();
    // The native ABI is always filtered, listed or not: libseccomp's filters (and so runc's)
    // start with it, and a profile for other ABIs only adds theirs.
    let listed: Vec<bool> = abis
        .iter()
        .enumerate()
        .map(|(i, abi)| i == 0 || archs.contains(&abi.arch))
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
        let f = compile_for(
            &profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 6,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "unknown_call"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}
            ]
            })),
            Machine::X86_64,
        )
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
        let f = compile_for(&p, Machine::X86_64).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_millis(50));
        assert!(f.program.len() < 4096);
    }

    const JSET_K: u16 = 0x45;
    const SECCOMP_DATA_LEN: u32 = 64;
    const ALL_ARCHS: [&str; 5] = [
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
    ];
    const MACHINES: [Machine; 2] = [Machine::X86_64, Machine::Aarch64];
    /// Arguments a rule does not look at: a filter reading the wrong one sees this.
    const JUNK: u64 = 0xdead_beef_dead_beef;

    /// struct seccomp_data, as the kernel hands it to a filter.
    struct Data {
        nr: u32,
        arch: u32,
        ip: u64,
        args: [u64; 6],
    }

    impl Data {
        fn bytes(&self) -> Vec<u8> {
            let mut b = Vec::with_capacity(SECCOMP_DATA_LEN as usize);
            b.extend(self.nr.to_ne_bytes());
            b.extend(self.arch.to_ne_bytes());
            b.extend(self.ip.to_ne_bytes());
            for a in self.args {
                b.extend(a.to_ne_bytes());
            }
            b
        }
    }

    /// What the kernel's checker would refuse, and anything `run` cannot interpret.
    fn check(prog: &[libc::sock_filter]) {
        assert!(
            !prog.is_empty() && prog.len() <= 4096,
            "{} instructions",
            prog.len()
        );
        for (pc, i) in prog.iter().enumerate() {
            let last = |off: usize| pc + 1 + off < prog.len();
            match i.code {
                LD_W_ABS => assert!(
                    i.k % 4 == 0 && i.k + 4 <= SECCOMP_DATA_LEN,
                    "load of {:#x} at {pc}",
                    i.k
                ),
                AND_K | RET_K => {}
                JA => assert!(last(i.k as usize), "ja {} at {pc} leaves the program", i.k),
                JEQ_K | JGT_K | JGE_K | JSET_K => assert!(
                    last(i.jt as usize) && last(i.jf as usize),
                    "jump {}/{} at {pc} leaves the program",
                    i.jt,
                    i.jf
                ),
                c => panic!("opcode {c:#x} at {pc}"),
            }
        }
        assert_eq!(
            prog[prog.len() - 1].code,
            RET_K,
            "the program must end in a return"
        );
    }

    /// Classic BPF as the kernel runs a seccomp filter, for the opcodes `check` lets through;
    /// `check` also makes every jump forward and in range, so this ends.
    fn run(prog: &[libc::sock_filter], d: &Data) -> u32 {
        let mem = d.bytes();
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            let branch = |c: bool| usize::from(if c { i.jt } else { i.jf });
            match i.code {
                LD_W_ABS => {
                    let k = i.k as usize;
                    a = u32::from_ne_bytes(mem[k..k + 4].try_into().unwrap());
                }
                AND_K => a &= i.k,
                JA => pc += i.k as usize,
                JEQ_K => pc += branch(a == i.k),
                JGT_K => pc += branch(a > i.k),
                JGE_K => pc += branch(a >= i.k),
                JSET_K => pc += branch(a & i.k != 0),
                RET_K => return i.k,
                c => panic!("opcode {c:#x} at {}", pc - 1),
            }
        }
    }

    fn compiled(m: Machine, v: serde_json::Value) -> Vec<libc::sock_filter> {
        let prog = compile_for(&profile(v), m).unwrap().program;
        check(&prog);
        prog
    }

    fn call_nr(prog: &[libc::sock_filter], audit: u32, nr: u32, args: [u64; 6]) -> u32 {
        let d = Data {
            nr,
            arch: audit,
            ip: 0x7f12_3456_789a,
            args,
        };
        run(prog, &d)
    }

    /// The filter's answer to `name` on `abi`, or None where the ABI lacks it.
    fn call(prog: &[libc::sock_filter], abi: &Abi, name: &str, args: [u64; 6]) -> Option<u32> {
        lookup(abi.table, name).map(|nr| call_nr(prog, abi.audit, nr, args))
    }

    fn abi(a: Arch) -> &'static Abi {
        MACHINES
            .iter()
            .flat_map(|m| m.abis())
            .find(|abi| abi.arch == a)
            .unwrap()
    }

    /// The interpreter takes its arch values from the same constants as the compiler: check
    /// them against oci-spec's, which are libseccomp's SCMP_ARCH_* tokens, i.e. AUDIT_ARCH_*.
    #[test]
    fn audit_arches_are_the_kernels() {
        for abi in MACHINES.iter().flat_map(|m| m.abis()) {
            let want = match abi.arch {
                Arch::ScmpArchX32 => Arch::ScmpArchX86_64 as u32,
                a => a as u32,
            };
            assert_eq!(abi.audit, want, "{:?}", abi.arch);
        }
        assert_eq!(abi(Arch::ScmpArchAarch64).audit, 0xc000_00b7);
        assert_eq!(abi(Arch::ScmpArchArm).audit, 0x4000_0028);
    }

    #[test]
    fn interpreter_rejects_a_jump_out_of_the_program() {
        let bad = [
            libc::sock_filter {
                code: JEQ_K,
                jt: 0,
                jf: 1,
                k: 0,
            },
            libc::sock_filter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k: RET_ALLOW,
            },
        ];
        assert!(std::panic::catch_unwind(|| check(&bad)).is_err());
        check(&bad[1..]);
    }

    #[test]
    fn every_abi_allows_errnos_and_defaults_by_number() {
        let v = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ALL_ARCHS,
            "syscalls": [
                {"names": ["read", "write", "close", "openat", "open", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["reboot"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["ptrace"], "action": "SCMP_ACT_TRAP"},
                {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
                {"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW"}
            ]
        });
        let expect = [
            ("read", RET_ALLOW),
            ("write", RET_ALLOW),
            ("close", RET_ALLOW),
            ("openat", RET_ALLOW),
            ("open", RET_ALLOW),
            ("mkdirat", RET_ERRNO | 13),
            ("mkdir", RET_ERRNO | 13),
            ("reboot", RET_KILL_PROCESS),
            ("ptrace", RET_TRAP),
            ("getppid", RET_LOG),
            ("cacheflush", RET_ALLOW),
            ("getpid", RET_ERRNO | 1),
        ];
        for m in MACHINES {
            let prog = compiled(m, v.clone());
            for abi in m.abis() {
                let mut seen = 0;
                for (name, want) in expect {
                    if let Some(got) = call(&prog, abi, name, [JUNK; 6]) {
                        assert_eq!(got, want, "{name} on {:?}", abi.arch);
                        seen += 1;
                    }
                }
                assert!(seen >= 9, "{:?} knows only {seen} of the names", abi.arch);
                let max = abi
                    .table
                    .iter()
                    .map(|(_, n)| *n)
                    .filter(|n| abi.private_from.is_none_or(|p| *n < p))
                    .max()
                    .unwrap();
                let enosys = call_nr(&prog, abi.audit, max + 1, [0; 6]);
                assert_eq!(
                    enosys,
                    RET_ERRNO | libc::ENOSYS as u32,
                    "newer than {:?}'s table",
                    abi.arch
                );
            }
            // The other machine's ABIs cannot occur here; were one to, it is not let through.
            for other in MACHINES.iter().filter(|o| **o != m) {
                for abi in other.abis() {
                    if m.abis().iter().all(|own| own.audit != abi.audit) {
                        let nr = lookup(abi.table, "read").unwrap();
                        assert_eq!(call_nr(&prog, abi.audit, nr, [0; 6]), RET_KILL_PROCESS);
                    }
                }
            }
        }
        // ARM's own calls are not newer than the table: unlisted, they get the default.
        let prog = compiled(Machine::Aarch64, v);
        let get_tls = lookup(syscalls::ARM, "get_tls").unwrap();
        for nr in [get_tls, ARM_NR_BASE, ARM_NR_BASE + 0x100] {
            assert_eq!(
                call_nr(&prog, AUDIT_ARCH_ARM, nr, [0; 6]),
                RET_ERRNO | 1,
                "{nr:#x}"
            );
        }
        assert_eq!(
            call_nr(&prog, AUDIT_ARCH_ARM, ARM_NR_BASE - 1, [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
    }

    /// The comparison a rule asks for, on the words the ABI passes.
    fn holds(op: &str, arg: u64, value: u64, two: u64, wide: bool) -> bool {
        let w = |x: u64| if wide { x } else { x & 0xffff_ffff };
        let (arg, value, two) = (w(arg), w(value), w(two));
        match op {
            "SCMP_CMP_EQ" => arg == value,
            "SCMP_CMP_NE" => arg != value,
            "SCMP_CMP_GT" => arg > value,
            "SCMP_CMP_GE" => arg >= value,
            "SCMP_CMP_LT" => arg < value,
            "SCMP_CMP_LE" => arg <= value,
            "SCMP_CMP_MASKED_EQ" => arg & value == two,
            _ => unreachable!("{op}"),
        }
    }

    #[test]
    fn argument_comparisons_match_unsigned_64_bit_arithmetic() {
        // Values that differ in the high word only, the low word only, or by one at a boundary.
        let values: [u64; 10] = [
            0,
            1,
            5,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0005,
            0x8000_0000_0000_0005,
            u64::MAX,
        ];
        let ops = [
            "SCMP_CMP_EQ",
            "SCMP_CMP_NE",
            "SCMP_CMP_GT",
            "SCMP_CMP_GE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_MASKED_EQ",
        ];
        let mut checked = 0;
        for m in MACHINES {
            for (oi, op) in ops.iter().enumerate() {
                for (vi, &value) in values.iter().enumerate() {
                    let twos: &[u64] = if *op == "SCMP_CMP_MASKED_EQ" {
                        &values
                    } else {
                        &[0]
                    };
                    for &two in twos {
                        let index = (oi + vi) % 6;
                        let prog = compiled(
                            m,
                            serde_json::json!({
                                "defaultAction": "SCMP_ACT_ERRNO",
                                "architectures": ALL_ARCHS,
                                "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                                    "args": [{"index": index, "value": value, "valueTwo": two, "op": op}]}]
                            }),
                        );
                        for abi in m.abis() {
                            for &arg in &values {
                                let mut args = [JUNK; 6];
                                args[index] = arg;
                                let want = if holds(op, arg, value, two, abi.wide) {
                                    RET_ALLOW
                                } else {
                                    RET_ERRNO | libc::EPERM as u32
                                };
                                let got = call(&prog, abi, "personality", args).unwrap();
                                assert_eq!(
                                    got, want,
                                    "{:?}: arg{index} {arg:#x} {op} {value:#x} (two {two:#x})",
                                    abi.arch
                                );
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        // (6 ops × 10 values + MASKED_EQ's 10 × 10) × 5 ABIs × 10 arguments.
        assert_eq!(checked, 160 * 5 * 10);
    }

    #[test]
    fn conditions_on_different_arguments_all_hold_on_one_are_alternatives() {
        let v = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ALL_ARCHS,
            "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": 0x20008, "op": "SCMP_CMP_EQ"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_GT"},
                    {"index": 1, "value": 9, "op": "SCMP_CMP_NE"}]},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3}
            ]
        });
        let eperm = RET_ERRNO | libc::EPERM as u32;
        for m in MACHINES {
            let prog = compiled(m, v.clone());
            for abi in m.abis() {
                let c = |name, a0, a1| {
                    call(&prog, abi, name, [a0, a1, JUNK, JUNK, JUNK, JUNK]).unwrap()
                };
                assert_eq!(c("personality", 8, 0), RET_ALLOW);
                assert_eq!(c("personality", 0x20008, 0), RET_ALLOW);
                assert_eq!(c("personality", 0x20000, 0), eperm);
                assert_eq!(c("kill", 100, 15), RET_ALLOW);
                // A rule that fails falls to the next rule for the same syscall.
                assert_eq!(c("kill", 100, 9), RET_ERRNO | 3);
                assert_eq!(c("kill", 1, 15), RET_ERRNO | 3);
            }
        }
    }

    #[test]
    fn native_is_always_filtered_and_unlisted_abis_are_killed() {
        let with = |m: Machine, archs: serde_json::Value| {
            let mut v = serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
            });
            if !archs.is_null() {
                v["architectures"] = archs;
            }
            compiled(m, v)
        };
        let cases = [
            (
                Machine::Aarch64,
                serde_json::json!(null),
                vec![Arch::ScmpArchAarch64],
            ),
            (
                Machine::Aarch64,
                serde_json::json!(["SCMP_ARCH_NATIVE"]),
                vec![Arch::ScmpArchAarch64],
            ),
            (
                Machine::Aarch64,
                serde_json::json!(["SCMP_ARCH_ARM"]),
                vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
            ),
            (
                Machine::Aarch64,
                serde_json::json!(["SCMP_ARCH_NATIVE", "SCMP_ARCH_ARM"]),
                vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
            ),
            (
                Machine::Aarch64,
                serde_json::json!(ALL_ARCHS),
                vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
            ),
            (
                Machine::X86_64,
                serde_json::json!(null),
                vec![Arch::ScmpArchX86_64],
            ),
            (
                Machine::X86_64,
                serde_json::json!(["SCMP_ARCH_NATIVE", "SCMP_ARCH_X86"]),
                vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86],
            ),
            (
                Machine::X86_64,
                serde_json::json!(["SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"]),
                vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86],
            ),
            (
                Machine::X86_64,
                serde_json::json!(ALL_ARCHS),
                vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
            ),
        ];
        for (m, archs, allowed) in cases {
            let prog = with(m, archs.clone());
            for abi in MACHINES.iter().flat_map(|m| m.abis()) {
                let want = if allowed.contains(&abi.arch) {
                    RET_ALLOW
                } else {
                    RET_KILL_PROCESS
                };
                assert_eq!(
                    call(&prog, abi, "read", [0; 6]),
                    Some(want),
                    "{:?} with {archs} on {m:?}",
                    abi.arch
                );
            }
        }
    }

    #[test]
    fn x32_calls_are_told_apart_by_their_bit() {
        let v = |archs: &[&str]| {
            serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": archs,
                "syscalls": [{"names": ["read", "rt_sigaction"], "action": "SCMP_ACT_ALLOW"}]
            })
        };
        let (x86_64, x32) = (abi(Arch::ScmpArchX86_64), abi(Arch::ScmpArchX32));
        // x32's rt_sigaction is one of its own calls (512 up), not x86-64's number plus the bit.
        assert_eq!(
            lookup(x32.table, "rt_sigaction"),
            Some(X32_SYSCALL_BIT + 512)
        );
        let cases: [(&[&str], u32, u32); 3] = [
            (&["SCMP_ARCH_X86_64"], RET_ALLOW, RET_KILL_PROCESS),
            // The native ABI is filtered whatever the list says (libseccomp's rule).
            (&["SCMP_ARCH_X32"], RET_ALLOW, RET_ALLOW),
            (&["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"], RET_ALLOW, RET_ALLOW),
        ];
        for (archs, on_64, on_x32) in cases {
            let prog = compiled(Machine::X86_64, v(archs));
            for name in ["read", "rt_sigaction"] {
                assert_eq!(
                    call(&prog, x86_64, name, [0; 6]),
                    Some(on_64),
                    "{name} {archs:?}"
                );
                assert_eq!(
                    call(&prog, x32, name, [0; 6]),
                    Some(on_x32),
                    "{name} {archs:?}"
                );
            }
            let getpid = call(&prog, x32, "getpid", [0; 6]).unwrap();
            assert_eq!(
                getpid,
                if on_x32 == RET_ALLOW {
                    RET_ERRNO | 1
                } else {
                    RET_KILL_PROCESS
                }
            );
        }
        // x86-64's own numbering for rt_sigaction, with the bit, is no x32 call.
        let prog = compiled(Machine::X86_64, v(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"]));
        let nr = X32_SYSCALL_BIT + lookup(x86_64.table, "rt_sigaction").unwrap();
        assert_eq!(call_nr(&prog, AUDIT_ARCH_X86_64, nr, [0; 6]), RET_ERRNO | 1);
        // The bit means nothing on aarch64: such a number is merely newer than the table.
        let prog = compiled(Machine::Aarch64, v(&["SCMP_ARCH_AARCH64"]));
        let nr = X32_SYSCALL_BIT + lookup(syscalls::AARCH64, "read").unwrap();
        assert_eq!(
            call_nr(&prog, AUDIT_ARCH_AARCH64, nr, [0; 6]),
            RET_ERRNO | libc::ENOSYS as u32
        );
    }

    /// The shape of moby's default profile as dockerd writes it into config.json, with the
    /// per-arch names of both machines: most of it is a flat allow list.
    fn docker_profile() -> (serde_json::Value, Vec<&'static str>) {
        // Names absent from an ABI are skipped there, as in libseccomp.
        let allowed: Vec<&str> = "\
            accept accept4 access alarm bind brk capget capset chdir chmod chown clock_getres \
            clock_gettime clock_gettime64 clock_nanosleep close close_range connect \
            copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_pwait \
            epoll_wait eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 \
            fallocate fchdir fchmod fchmodat fchown fchownat fcntl fcntl64 fdatasync flock fork \
            fstat fstat64 fstatfs fsync ftruncate futex getcwd getdents getdents64 getegid \
            geteuid getgid getgroups getpeername getpgid getpid getppid getpriority getrandom \
            getrlimit getrusage getsid getsockname getsockopt gettid gettimeofday getuid \
            getxattr inotify_add_watch inotify_init1 io_uring_setup ioctl kill lchown link \
            linkat listen lseek lstat madvise membarrier memfd_create mkdir mkdirat mknodat \
            mlock mmap mmap2 mprotect mremap msync munmap nanosleep newfstatat open openat \
            openat2 pause pipe pipe2 poll ppoll prctl pread64 prlimit64 pselect6 pwrite64 read \
            readlink readlinkat readv recvfrom recvmsg rename renameat renameat2 restart_syscall \
            rmdir rseq rt_sigaction rt_sigprocmask rt_sigreturn sched_getaffinity sched_yield \
            select sendfile sendmsg sendto set_robust_list set_tid_address setgid setgroups \
            setsid setsockopt setuid shutdown sigaltstack socketpair splice stat stat64 statfs \
            statx symlink symlinkat sync sysinfo tgkill time timerfd_create times truncate umask \
            uname unlink unlinkat utimensat vfork wait4 waitid write writev arch_prctl \
            modify_ldt arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint \
            cacheflush set_tls"
            .split_whitespace()
            .collect();
        let v = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ALL_ARCHS,
            "syscalls": [
                {"names": allowed, "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 131080, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        });
        (v, allowed)
    }

    #[test]
    fn docker_profile_means_the_same_on_every_abi() {
        let (v, allowed) = docker_profile();
        let refused = [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "reboot",
            "kexec_load",
            "bpf",
            "init_module",
            "pivot_root",
            "keyctl",
            "open_by_handle_at",
            "swapon",
            "ptrace_no_such",
        ];
        let eperm = RET_ERRNO | 1;
        let abis: Vec<&Abi> = MACHINES.iter().flat_map(|m| m.abis()).collect();
        let progs: Vec<Vec<libc::sock_filter>> =
            MACHINES.iter().map(|m| compiled(*m, v.clone())).collect();
        let prog_of = |a: &Abi| {
            &progs[MACHINES
                .iter()
                .position(|m| m.abis().iter().any(|b| b.arch == a.arch))
                .unwrap()]
        };
        let expect: Vec<(&str, [u64; 6], u32)> = allowed
            .iter()
            .map(|n| (*n, [0; 6], RET_ALLOW))
            .chain(refused.iter().map(|n| (*n, [0; 6], eperm)))
            .chain([
                ("personality", [8, 0, 0, 0, 0, 0], RET_ALLOW),
                ("personality", [0xffff_ffff, 0, 0, 0, 0, 0], RET_ALLOW),
                ("personality", [3, 0, 0, 0, 0, 0], eperm),
                ("socket", [2, 1, 0, 0, 0, 0], RET_ALLOW),
                ("socket", [40, 1, 0, 0, 0, 0], eperm),
                ("clone", [0x11, 0, 0, 0, 0, 0], RET_ALLOW),
                ("clone", [0x1000_0011, 0, 0, 0, 0, 0], eperm),
                ("clone3", [0; 6], RET_ERRNO | 38),
            ])
            .collect();
        for (name, args, want) in expect {
            let mut on = Vec::new();
            for abi in &abis {
                if let Some(got) = call(prog_of(abi), abi, name, args) {
                    assert_eq!(got, want, "{name}{args:?} on {:?}", abi.arch);
                    on.push(abi.arch);
                }
            }
            // Every name a real one somewhere, the portable ones everywhere.
            if name != "ptrace_no_such" {
                assert!(!on.is_empty(), "{name} is in no table");
            }
            if [
                "read",
                "clone",
                "clone3",
                "personality",
                "socket",
                "mount",
                "openat",
            ]
            .contains(&name)
            {
                assert_eq!(on.len(), abis.len(), "{name} only on {on:?}");
            }
        }
    }

    #[test]
    fn every_known_name_fits_on_both_machines() {
        for m in MACHINES {
            let mut names: Vec<&str> = m
                .abis()
                .iter()
                .flat_map(|a| a.table.iter().map(|(n, _)| *n))
                .collect();
            names.sort_unstable();
            names.dedup();
            let prog = compiled(
                m,
                serde_json::json!({
                    "defaultAction": "SCMP_ACT_ERRNO",
                    "architectures": ALL_ARCHS,
                    "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
                }),
            );
            for abi in m.abis() {
                for (name, _) in abi.table {
                    assert_eq!(
                        call(&prog, abi, name, [0; 6]),
                        Some(RET_ALLOW),
                        "{name} on {:?}",
                        abi.arch
                    );
                }
            }
        }
    }
}
