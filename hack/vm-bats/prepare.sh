#!/usr/bin/env bash
# Builds a HUSK_VM_EXTRA directory that runs runc 1.1.5's own bats integration suite inside the
# pure cgroup v2 VM of hack/vm.sh, once with husk and once with runc, file by file.
#
#   hack/conformance.sh kill        # once: runc's tree, its helpers and the images (any filter)
#   hack/vm-bats/prepare.sh [DIR]   # DIR defaults to /tmp/vm-bats-extra
#   HUSK_VM_EXTRA=/tmp/vm-bats-extra HUSK_VM_TIMEOUT=50m hack/vm.sh zzz_no_such_test
#     | tee /tmp/vm-bats.log   # (target/vm/console-plain.log has the same, until the next run)
#   hack/vm-bats/summary.sh /tmp/vm-bats.log
#
# HUSK_VM_BATS_FILES (space-separated .bats names; empty: none), HUSK_VM_BATS_DEBUG (a script to
# run in the VM first) and HUSK_VM_BATS_LIMIT (seconds per file and
# runtime, default 300) change what runs.
#
# Layout of DIR (the VM sees it as /extra):
#   root/      merged onto the VM's / by run.sh: bash at /bin/bash, bats at /usr/{bin,lib,libexec},
#              Debian's userland (coreutils, gawk, jq, GNU tar, procps, util-linux, …) in
#              /opt/bats/bin, runc in /opt/bats/runc, and their libraries at their host paths
#              (the loader's default search path).
#   runc/      runc's tests/integration (with a local get-images.sh) and contrib/cmd helpers,
#              laid out as helpers.bash expects ($INTEGRATION_ROOT/../../contrib/cmd/…).
#   images/    busybox.tar (no debian.tar: 200 MB; the few tests that need it fail for both).
#   run.sh     busybox sh: merges root/, then execs bash run-bats.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
# shellcheck source=hack/lib.sh
. hack/lib.sh
out=${1:-/tmp/vm-bats-extra}
conf=$repo/target/conformance
tree=$conf/runc
for f in "$tree/tests/integration/helpers.bash" "$conf/images/busybox.tar" \
	"$tree/contrib/cmd/recvtty/recvtty" "$tree/contrib/cmd/sd-helper/sd-helper" \
	"$tree/contrib/cmd/seccompagent/seccompagent"; do
	[ -e "$f" ] || {
		echo "missing $f: run hack/conformance.sh first" >&2
		exit 1
	}
done

rm -rf "$out"
mkdir -p "$out/root/opt/bats/bin" "$out/root/opt/bats/runc" "$out/root/bin" "$out/images" \
	"$out/runc/tests" "$out/runc/contrib/cmd"
root=$out/root

# An executable into DIR (under its own name), its libraries under root/ at their paths.
install_bin() {
	local src=$1 dir=$2
	cp -L --preserve=mode "$src" "$dir/"
	copy_libs "$root" "$src"
}

# Debian's userland: what the suite and bats call, in their GNU forms (stat -f -c, tar
# --exclude, readlink -f, gawk, …); busybox's applets stay behind them in PATH.
pkgs="coreutils findutils grep sed gawk diffutils tar procps util-linux mount bsdutils jq psmisc gzip"
for p in $pkgs; do
	dpkg -L "$p" | grep -E '^/(usr/)?s?bin/[^/]+$' | while read -r f; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		install_bin "$f" "$root/opt/bats/bin"
	done
done
ln -sf gawk "$root/opt/bats/bin/awk"
install_bin /usr/bin/bash "$root/bin"
cp -a /usr/bin/bats "$root/opt/bats/bin/bats"
mkdir -p "$root/usr/lib" "$root/usr/libexec"
cp -a /usr/lib/bats-core "$root/usr/lib/"
cp -a /usr/libexec/bats-core "$root/usr/libexec/"
# /usr/bin/bats resolves its libexec relative to itself (../libexec/bats-core): keep it there.
mkdir -p "$root/usr/bin"
mv "$root/opt/bats/bin/bats" "$root/usr/bin/bats"
ln -s /usr/bin/bats "$root/opt/bats/bin/bats"
install_bin /usr/sbin/runc "$root/opt/bats/runc"

# Nothing in root/ may land on a busybox applet (cp would write through the symlink into
# busybox): only directories may already exist in the VM.
applets=$(busybox --list-full)
while read -r p; do
	if grep -qxF "${p#/}" <<<"$applets"; then
		echo "prepare: $p would overwrite a busybox applet" >&2
		exit 1
	fi
done < <(cd "$root" && find . ! -type d | sed 's|^\.||')

# The suite, its helpers and the image.
cp -a "$tree/tests/integration" "$out/runc/tests/"
for h in recvtty sd-helper seccompagent; do
	mkdir -p "$out/runc/contrib/cmd/$h"
	install_bin "$tree/contrib/cmd/$h/$h" "$out/runc/contrib/cmd/$h"
done
cp "$conf/images/busybox.tar" "$out/images/"

# gcc: the tests build their testdata/*.c statically (dev.bats: gcc -static -o OUT SRC.c). The
# VM has no compiler: build them here, and a stand-in gcc copies the binary for SRC.
mkdir -p "$out/prebuilt"
for c in "$tree"/tests/integration/testdata/*.c; do
	gcc -static -O2 -o "$out/prebuilt/$(basename "$c" .c)" "$c"
done
cat >"$root/opt/bats/bin/gcc" <<'EOG'
#!/bin/bash
# Stand-in for gcc in the VM: "gcc ... -o OUT SRC.c" copies SRC's binary, prebuilt on the host.
out= src=
while [ $# -gt 0 ]; do
	case $1 in -o) out=$2 && shift ;; *.c) src=$1 ;; esac
	shift
done
bin=/extra/prebuilt/$(basename "${src:-none}" .c)
if [ -z "$out" ] || [ ! -x "$bin" ]; then
	echo "gcc (vm-bats stand-in): no prebuilt binary for ${src:-?}" >&2
	exit 127
fi
cp "$bin" "$out"
EOG
chmod +x "$root/opt/bats/bin/gcc"

# Modules of the kernel hack/vm.sh boots (its package: the one linux-image-amd64 depends on):
# loop for a block device (dev.bats takes the first one lsblk lists; cgroups.bats makes loop
# devices) and bfq for the io.bfq.weight test.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-.*-amd64\)$/\1/p' | head -1)
mkdir -p "$out/modules"
for m in drivers/block/loop.ko block/bfq.ko; do
	ko=$(compgen -G "$repo/target/vm/kernel/$kpkg/lib/modules/*/kernel/$m" | head -1 || true)
	if [ -n "$ko" ]; then
		cp "$ko" "$out/modules/"
	else
		echo "prepare: no $m for $kpkg (run hack/vm.sh once to unpack the kernel); tests that need it will skip or fail" >&2
	fi
done
cat >"$out/runc/tests/integration/get-images.sh" <<'EOS'
#!/bin/bash
echo BUSYBOX_IMAGE=/extra/images/busybox.tar
echo DEBIAN_IMAGE=/extra/images/debian.tar
EOS
chmod +x "$out/runc/tests/integration/get-images.sh"

# HUSK_VM_BATS_DEBUG=SCRIPT: runs in the VM (bash, after the setup) before the files, its
# output prefixed "BATS debug ".
if [ -n "${HUSK_VM_BATS_DEBUG:-}" ]; then install -m 0755 "$HUSK_VM_BATS_DEBUG" "$out/debug.sh"; fi
echo "${HUSK_VM_BATS_FILES-cgroups.bats update.bats events.bats pause.bats ps.bats delete.bats exec.bats run.bats create.bats kill.bats start_detached.bats start_hello.bats cgroup_delegation.bats dev.bats mounts.bats}" >"$out/files"
echo "${HUSK_VM_BATS_LIMIT:-300}" >"$out/limit"

cat >"$out/run.sh" <<'EOS'
#!/bin/sh
# Runs in the VM from hack/vm/run-tests (busybox sh, cwd /extra). Merges root/ onto / (the
# VM's / is a tmpfs) and hands over to bash.
cp -a /extra/root/. / || { echo "BATS setup: merging /extra/root failed"; exit 1; }
export PATH=/opt/bats/bin:/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin
# devtmpfs lacks what udev adds; bash's process substitution needs /dev/fd.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
[ -e /dev/stdin ] || ln -s /proc/self/fd/0 /dev/stdin
[ -e /dev/stdout ] || ln -s /proc/self/fd/1 /dev/stdout
[ -e /dev/stderr ] || ln -s /proc/self/fd/2 /dev/stderr
exec /bin/bash /extra/run-bats.sh
EOS
chmod +x "$out/run.sh"

cat >"$out/run-bats.sh" <<'EOS'
#!/bin/bash
# For each file: husk (a copy named runc, as hack/conformance.sh installs it), then runc.
# Every TAP line goes to the console as "BATS RUNTIME LINE"; "BATS RUNTIME # end FILE status=N".
set -u
export HOME=/root TERM=${TERM:-linux} LANG=C
mkdir -p /root /run/runc
# /tmp, /run, /dev/pts and /dev/shm are mounted by /init already; make sure of them.
mountpoint -q /tmp || mount -t tmpfs -o mode=1777 tmpfs /tmp
mountpoint -q /dev/pts || { mkdir -p /dev/pts && mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts; }
mountpoint -q /dev/shm || { mkdir -p /dev/shm && mount -t tmpfs -o mode=1777 tmpfs /dev/shm; }
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
# Both runtimes run from a ramfs, not from the tmpfs that / is: runc 1.1's cloned_binary.c takes
# any shmem file (F_GET_SEALS succeeds) for an unsealed memfd, so from tmpfs its init copies
# its 8.7 MB binary into a memfd charged to the container's cgroup, and the 10 MB memory.max of
# the resources.unified tests OOM-kills it. On a real host the binary is on a disk filesystem.
# husk goes under its runc name (the help and version tests look for "runc").
bin=/run/vm-bats-bin
mkdir -p $bin && mount -t ramfs -o mode=0755 ramfs $bin
mkdir -p $bin/husk $bin/runc
cp /husk/husk $bin/husk/runc
cp /opt/bats/runc/runc $bin/runc/runc
declare -A runtime=([husk]=$bin/husk/runc [runc]=$bin/runc/runc)
# Block devices: loop (and bfq) are modules. One loop device with a backing file stays attached
# for the whole run: dev.bats uses the first device lsblk lists (an empty loop device is not
# listed).
for m in /extra/modules/*.ko; do
	[ -e "$m" ] && { insmod "$m" || echo "BATS setup: insmod $m failed"; }
done
if [ -e /dev/loop-control ]; then
	dd if=/dev/zero of=/run/vm-bats-disk.img bs=1M count=4 status=none
	losetup /dev/loop0 /run/vm-bats-disk.img || echo "BATS setup: losetup failed"
fi
echo "BATS setup: block devices: $(lsblk -nd -o NAME,MAJ:MIN | tr '\n' ' ')"
# helpers.bash detects the v2 freezer by a cgroup.freeze file below the root, which a systemd
# host always has: keep one empty cgroup for the whole run.
keep=/sys/fs/cgroup/vm-bats.keep
mkdir -p "$keep"
limit=$(cat /extra/limit)
echo "BATS setup: bash $BASH_VERSION, $(bats --version), $(${runtime[runc]} --version | head -1), husk: $(${runtime[husk]} --version | head -1)"
echo "BATS setup: cgroup $(stat -f -c %T /sys/fs/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
[ -x /extra/debug.sh ] && /extra/debug.sh 2>&1 | sed -u 's/^/BATS debug /'

# Whatever a file left in cgroups (a container that outlived its test) is killed and its
# cgroups removed, so that the next file starts from the same state.
clean_cgroups() {
	local d
	for d in $(find /sys/fs/cgroup -mindepth 1 -depth -type d ! -path "$keep"); do
		echo 1 >"$d/cgroup.kill" 2>/dev/null
	done
	sleep 0.2
	for d in $(find /sys/fs/cgroup -mindepth 1 -depth -type d ! -path "$keep"); do
		rmdir "$d" 2>/dev/null || sleep 0.5
		rmdir "$d" 2>/dev/null || echo "BATS cleanup: cannot remove $d"
	done
}
for f in $(cat /extra/files); do
	for rt in husk runc; do
		clean_cgroups
		echo "BATS $rt # begin $f"
		start=$(date +%s)
		(cd /extra/runc && RUNC=${runtime[$rt]} timeout -k 10 "$limit" script -qec "bats -t tests/integration/$f" /dev/null) 2>&1 |
			tr -d '\r' | sed -u "s/^/BATS $rt /"
		rc=${PIPESTATUS[0]}
		echo "BATS $rt # end $f status=$rc seconds=$(($(date +%s) - start))"
		pkill -9 -f /extra/runc/contrib/cmd/ 2>/dev/null
		# What bats left of this file (tests that failed before their teardown).
		rm -rf /tmp/bats-run-* 2>/dev/null
	done
done
clean_cgroups
echo "BATS done"
EOS
chmod +x "$out/run-bats.sh"
du -sh "$out"
