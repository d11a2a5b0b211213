#!/usr/bin/env bash
# Runs the spec-tests in a pure cgroup v2 VM: Debian's kernel under QEMU, an initramfs with
# busybox, a static husk and the static spec-tests binaries (hack/vm/init is its /init). Most
# hosts are cgroup v2 only; the machines these scripts usually run on are v1 hybrid, so this is
# where husk's v2 code meets a real v2 host. shim.rs and cri.rs run behind a containerd copied in.
#
#   hack/vm.sh               # build, boot, run every test file; non-zero if one fails
#   hack/vm.sh FILTER        # only tests whose name contains FILTER (libtest's filter)
#   hack/vm.sh --systemd     # systemd as PID 1 (cgroup v2): the systemd-driver tests
#   hack/vm.sh --systemd-v1  # the same with systemd's v1/v2 hybrid layout
#   HUSK_VM_TIMEOUT=30m HUSK_VM_FILE_TIMEOUT=600 HUSK_VM_THREADS=2 hack/vm.sh
#   HUSK_VM_EXTRA=DIR hack/vm.sh   # DIR goes along as /extra; its run.sh runs first
#
# HUSK_VM_TIMEOUT bounds the whole VM (20m), HUSK_VM_FILE_TIMEOUT each test binary in it
# (300 s), HUSK_VM_THREADS is libtest's --test-threads (1: output in order).
#
# The console goes to target/vm/console-MODE.log (MODE: plain, systemd, systemd-v1). QEMU runs
# with TCG: KVM hangs on some of the machines this runs on; TCG works everywhere and is quick
# enough (the plain VM runs about 1.5 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
# shellcheck source=hack/lib.sh
. hack/lib.sh
# linux-libc-dev: seccomp.rs reads the syscall list from its unistd_64.h.
ensure_packages qemu-system-x86 busybox-static linux-libc-dev jq util-linux uidmap criu tar
mode=plain
case ${1:-} in
--systemd) mode=systemd && shift ;;
--systemd-v1) mode=systemd-v1 && shift ;;
esac
filter=${1:-}
vm=$repo/target/vm
mkdir -p "$vm"

# 1. Debian's current kernel, the one linux-image-amd64 points at, unpacked once and kept.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-.*-amd64\)$/\1/p' | head -1)
if [ -z "$kpkg" ]; then
	apt-get update -qq >/dev/null
	kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-.*-amd64\)$/\1/p' | head -1)
fi
kdir=$vm/kernel/$kpkg
if ! compgen -G "$kdir/boot/vmlinuz-*" >/dev/null; then
	rm -rf "$kdir" && mkdir -p "$kdir"
	# The sandbox user _apt cannot write into target/ when we are root.
	(cd "$vm/kernel" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >/dev/null)
	dpkg-deb -x "$vm/kernel/${kpkg}"_*.deb "$kdir"
	rm -f "$vm/kernel/${kpkg}"_*.deb
fi
vmlinuz=$(compgen -G "$kdir/boot/vmlinuz-*" | head -1)
# No modules go into the VM: everything the tests use is built in (overlay is a module, but the
# bundles are plain directories; loopback needs no veth).

# 2. Static binaries: the initramfs has no libc. --target keeps RUSTFLAGS off build scripts
# and proc-macros, which must stay dynamic. Debug tests: far quicker to build than release
# with its LTO, and their speed hardly matters next to husk's.
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-C target-feature=+crt-static"
cargo build -q --release -p husk -p containerd-shim-husk-v2 --target "$host"
# One test binary per file in spec-tests/tests, named after it.
tests=$(cargo test -q -p spec-tests --no-run --target "$host" --message-format=json-render-diagnostics |
	jq -r 'select(.reason == "compiler-artifact" and .target.kind == ["test"] and .executable != null)
		| "\(.target.name) \(.executable)"')
unset RUSTFLAGS

# 3. The initramfs: busybox, husk, the tests and the files they read, and /init.
stage=$vm/initramfs-$mode
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/etc" "$stage/husk/tests" "$stage/usr/include/x86_64-linux-gnu/asm"
cp /bin/busybox "$stage/bin/busybox"
cp "target/$host/release/husk" "$stage/husk/husk"
names=()
while read -r name exe; do
	case $mode:$name in
	systemd*:shim) continue ;; # the driver's own CRI test covers the shim there
	# Under systemd, its driver's tests. (The others give bundles no cgroupsPath, so their
	# cgroups go below the runner's own, which v2 refuses below a systemd service that has
	# processes: they need the plain VM, where the runner is in the root cgroup.)
	plain:* | *:systemd | *:cri | *:rootless) ;;
	*) continue ;;
	esac
	cp "$exe" "$stage/husk/tests/$name"
	names+=("$name")
done < <(sort <<<"$tests")
cp /usr/include/x86_64-linux-gnu/asm/unistd_64.h "$stage/usr/include/x86_64-linux-gnu/asm/"
# A host has these; the bad-input corpus uses /etc/passwd as a file that is not a namespace.
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$stage/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$stage/etc/group"
# containerd's CRI copies these into every sandbox.
printf '127.0.0.1 localhost\n' >"$stage/etc/hosts"
: >"$stage/etc/resolv.conf"
# Tests find their data (spec-tests/corpus) through CARGO_MANIFEST_DIR, a path of this machine,
# and run in it, as under `cargo test` (relative paths in a test resolve as they do there).
# /init binds the copy there once its own mounts are made (the clone may live under /tmp).
cp -a "$repo/spec-tests" "$stage/husk/spec-tests"
echo "$repo/spec-tests" >"$stage/husk/cwd"
printf '%s\n' "$filter" >"$stage/husk/filter"
echo "${HUSK_VM_THREADS:-1}" >"$stage/husk/threads"
echo "${HUSK_VM_FILE_TIMEOUT:-300}" >"$stage/husk/limit"
install -m 0755 hack/vm/init "$stage/init"
# HUSK_VM_EXTRA=DIR: a directory to take along (as /extra) whose run.sh runs before the tests,
# e.g. a conformance suite built elsewhere.
if [ -n "${HUSK_VM_EXTRA:-}" ]; then
	cp -a "$HUSK_VM_EXTRA" "$stage/extra"
fi
# util-linux's setpriv (busybox's cannot switch user) and newuidmap/newgidmap, with the
# libraries they load, for the rootless tests, and script(1) for the shim's tty test;
# /usr/local/bin comes first in run-tests' PATH.
copy_with_libs() {
	mkdir -p "$stage$(dirname "$1")"
	cp -L --preserve=mode "$1" "$stage$1"
	copy_libs "$stage" "$1"
}
mkdir -p "$stage/usr/local/bin"
# criu for checkpoint.rs, GNU tar (criu saves tmpfs contents with it; busybox's lacks its
# options), and the modules criu probes at start: sock_diag's families and nf_tables. The
# VM loads nothing on demand, so run-tests inserts them in this order.
for bin in /usr/sbin/criu /bin/tar; do
	copy_with_libs "$bin"
	mv "$stage$bin" "$stage/usr/local/bin/"
done
mkdir -p "$stage/husk/modules"
for m in crypto/crc32c_generic lib/libcrc32c net/netfilter/nfnetlink net/netfilter/nf_tables \
	net/ipv4/inet_diag net/ipv4/tcp_diag net/ipv4/udp_diag net/unix/unix_diag \
	net/netlink/netlink_diag net/packet/af_packet_diag; do
	cp "$(compgen -G "$kdir/lib/modules/*/kernel/$m.ko")" "$stage/husk/modules/"
	basename "$m" >>"$stage/husk/modules/order"
done
for bin in /usr/bin/setpriv /usr/bin/newuidmap /usr/bin/newgidmap /usr/bin/script; do
	copy_with_libs "$bin"
	mv "$stage$bin" "$stage/usr/local/bin/"
done
install -m 0755 hack/vm/run-tests "$stage/husk/run-tests"
# containerd for the CRI tests: its binary, overlayfs (a module), the shim, and the test
# images built here (the VM has no bash for hack/make-oci-image.sh).
copy_with_libs /usr/bin/containerd
copy_with_libs /usr/bin/ctr
copy_with_libs /usr/bin/containerd-shim-runc-v2 # CRI's runc-husk handler: husk as BinaryName
find "$kdir/lib/modules" -name overlay.ko -exec cp {} "$stage/husk/overlay.ko" \;
cp "target/$host/release/containerd-shim-husk-v2" "$stage/husk/"
hack/make-oci-image.sh "$stage/husk/busybox-oci.tar" docker.io/library/busybox:husk-test '["sh"]'
hack/make-oci-image.sh "$stage/husk/pause-oci.tar" docker.io/library/husk-pause:test '["sleep", "2147483647"]'
append="console=ttyS0 quiet panic=-1"
if [ "$mode" = plain ]; then
	append+=" cgroup_no_v1=all"
else
	# This machine's systemd, its systemctl (for the tests to check units with) and the
	# libraries they load, at the paths the loader looks in; its unit files; and one unit of
	# ours that runs the tests. systemd.unit= makes it the only thing systemd starts.
	ensure_packages systemd
	copy_with_libs /lib/systemd/systemd
	copy_with_libs /bin/systemctl
	mkdir -p "$stage/usr/lib/systemd" "$stage/etc/systemd/system"
	cp -a /usr/lib/systemd/system /usr/lib/systemd/user "$stage/usr/lib/systemd/"
	cp /etc/os-release "$stage/etc/"
	: >"$stage/etc/machine-id"
	: >"$stage/husk/systemd"
	cat >"$stage/etc/systemd/system/husk-tests.service" <<-EOF
		[Unit]
		Description=husk spec-tests
		DefaultDependencies=no
		[Service]
		Type=oneshot
		TimeoutStartSec=infinity
		Environment=HUSK_EXPECT_SYSTEMD=1
		ExecStart=/husk/run-tests
		StandardOutput=tty
		StandardError=tty
		TTYPath=/dev/console
	EOF
	echo systemd_ >"$stage/husk/filter-cri"
	echo systemd_ >"$stage/husk/filter-rootless"
	append+=" systemd.unit=husk-tests.service systemd.show_status=error"
	if [ "$mode" = systemd-v1 ]; then
		append+=" systemd.unified_cgroup_hierarchy=0"
	fi
fi
append+=" ${HUSK_VM_APPEND:-}"
(cd "$stage" && find . -mindepth 1 | busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$vm/initrd-$mode.gz"

# 4. Boot. The kernel prints little (quiet); /init prints the tests' output and a line per
# binary: "husk-vm: end NAME status=N". panic=-1 and -no-reboot turn a crash of /init into
# QEMU exiting rather than hanging until the time-out.
log=$vm/console-$mode.log
echo "booting $(basename "$vmlinuz") ($mode) with ${#names[@]} test binaries; console: $log"
start=$(date +%s)
set +e
# sed: the BIOS's terminal resets and the serial line's CRs would reach the terminal and log.
timeout -k 10 "${HUSK_VM_TIMEOUT:-20m}" qemu-system-x86_64 -accel tcg -m 2048 -smp 2 \
	-nographic -no-reboot -nic none -kernel "$vmlinuz" -initrd "$vm/initrd-$mode.gz" \
	-append "$append" </dev/null |
	sed -u 's/\r$//; s/\x1bc//g; s/\x1b\[[0-9;?]*[A-Za-z]//g' | tee "$log"
qemu_status=${PIPESTATUS[0]}
set -e
echo
echo "VM ran $(($(date +%s) - start)) s (qemu status $qemu_status)"

# 5. Summary: each binary's libtest verdict and failed tests; one without an end line (the VM
# died or timed out) counts as failed.
failed=0
for name in "${names[@]}"; do
	end=$(grep -E "^husk-vm: end $name status=" "$log" || true)
	status=$(sed -n 's/.* status=\([0-9]*\).*/\1/p' <<<"$end")
	result=$(sed -n "/^husk-vm: begin $name\$/,/^husk-vm: end $name /p" "$log" | grep -E '^test result:' || true)
	case $status in 137 | 143) status="$status: killed at the time limit" ;; esac
	printf '%-12s %s\n' "$name" "${result:-no result}${end:+ (status $status)}"
	# Kernel messages (an OOM kill) can split a "test … FAILED" line; libtest's header of
	# each failure's output stays whole.
	sed -n "/^husk-vm: begin $name\$/,/^husk-vm: end $name /s/^---- \(.*\) stdout ----\$/    FAILED \1/p" "$log"
	if [ -z "$result" ]; then
		# Killed or cut short: the test it was running is the last one it named.
		sed -n "/^husk-vm: begin $name\$/,/^husk-vm: end $name /p" "$log" | grep -E '^test ' | tail -1 | sed 's/^/    last: /'
	fi
	if [ "${status:-x}" != 0 ]; then failed=1; fi
done
if [ "$qemu_status" -ne 0 ]; then
	echo "qemu exited with status $qemu_status (124: timed out after ${HUSK_VM_TIMEOUT:-20m})"
	failed=1
fi
exit "$failed"
