#!/usr/bin/env bash
# Runs runc 1.1.5's own bats integration suite (from Debian's runc source package) with
# RUNC=husk, and checks the result against hack/conformance-expected-pass.txt: a test on that
# list that fails, fails the run. The list only grows.
#
#   hack/conformance.sh            # build, run, compare
#   hack/conformance.sh FILTER     # only tests whose file matches FILTER (e.g. "kill|delete")
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
. hack/lib.sh
ensure_packages bats golang-go golang-github-opencontainers-runc-dev golang-github-seccomp-libseccomp-golang-dev \
	golang-github-containerd-console-dev golang-github-urfave-cli-dev golang-github-coreos-go-systemd-dev \
	golang-dbus-dev libseccomp-dev busybox-static debootstrap jq gawk dpkg-dev bsdutils pkg-config

work=$repo/target/conformance
mkdir -p "$work"

# 1. runc's source, through a temporary deb-src entry.
if [ ! -d "$work/runc/tests/integration" ]; then
	src=/etc/apt/sources.list.d/husk-deb-src.sources
	trap 'rm -f "$src"' EXIT
	sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$src"
	apt-get update -qq >/dev/null
	(cd "$work" && apt-get source --download-only runc >/dev/null 2>&1)
	rm -f "$src"
	apt-get update -qq >/dev/null
	(cd "$work" && dpkg-source -x runc_*.dsc runc >/dev/null)
fi
tree=$work/runc

# 2. The suite's helpers, built in GOPATH mode over Debian's Go sources.
gp=$work/gopath
mkdir -p "$gp/src/github.com/opencontainers"
ln -sfn "$tree" "$gp/src/github.com/opencontainers/runc"
for h in recvtty sd-helper seccompagent; do
	if [ ! -x "$tree/contrib/cmd/$h/$h" ]; then
		(cd "$gp/src/github.com/opencontainers/runc/contrib/cmd/$h" &&
			GO111MODULE=off GOPATH=$gp:/usr/share/gocode GOFLAGS= go build -tags seccomp -o "$h" .)
	fi
done

# 3. Images from local sources: busybox-static and a debootstrapped Debian.
img=$work/images
mkdir -p "$img"
if [ ! -f "$img/busybox.tar" ]; then
	rm -rf "$img/busybox" && make_busybox_rootfs "$img/busybox"
	rm -rf "$img/busybox/proc" "$img/busybox/sys"
	tar -C "$img/busybox" -cf "$img/busybox.tar" .
fi
if [ ! -f "$img/debian.tar" ]; then
	rm -rf "$img/debian"
	debootstrap --variant=minbase bookworm "$img/debian" >/dev/null
	tar -C "$img/debian" -cf "$img/debian.tar" .
fi
cat >"$tree/tests/integration/get-images.sh" <<EOS
#!/bin/bash
echo BUSYBOX_IMAGE=$img/busybox.tar
echo DEBIAN_IMAGE=$img/debian.tar
EOS

# 4. Run it. bats' tty tests need a terminal: script(1) gives one.
cargo build -q -p husk
# Installed under runc's name, husk answers help and version as runc does (the help tests
# look for "runc"). A copy, so that a rebuild during the run changes nothing.
mkdir -p "$work/bin"
cp --remove-destination "$repo/target/debug/husk" "$work/bin/runc"
husk=$work/bin/runc
files=$(cd "$tree/tests/integration" && ls ./*.bats | sed 's|^\./||')
if [ $# -gt 0 ]; then files=$(echo "$files" | grep -E "$1" || true); fi
tap=$work/results.tap
: >"$tap"
# The suite's tests make cgroups under this parent themselves (mkdir -p) and leave the ones
# runc's delete would remove but husk's does not (husk removes only what it made). Left
# over, they break later tests (rt_runtime_us sums) and the end-of-suite residue check, so
# each file starts without them; rmdir spares any that still holds a process.
clean_bats_cgroups() {
	find /sys/fs/cgroup -depth -type d -path '*/runc-cgroups-integration-test*' \
		-exec rmdir {} \; 2>/dev/null || true
	# Their helpers mkdir -p a directory per v1 controller, mounted or not: where the
	# /sys/fs/cgroup tmpfs is writable that leaves plain empty directories (hugetlb, …).
	find /sys/fs/cgroup -mindepth 1 -maxdepth 1 -type d -empty -exec rmdir {} \; 2>/dev/null || true
}
# checkpoint.bats writes /etc/criu/default.conf and removes it only when its test passes;
# left behind, it points every later criu run on the machine at a log file of its own.
criu_conf_existed=$([ -e /etc/criu/default.conf ] && echo 1 || true)
# One file at a time, each with its own time limit: a test that hangs (or leaves a helper
# holding bats' output open) costs its file, not the run.
for f in $files; do
	clean_bats_cgroups
	set +e
	(cd "$tree" && RUNC=$husk timeout -k 10 300 script -qec "bats -t tests/integration/$f" /dev/null) |
		tr -d '\r' >>"$tap"
	rc=${PIPESTATUS[0]}
	set -e
	if [ "$rc" -ge 124 ]; then echo "# $f: timed out (status $rc); its remaining tests did not run" >>"$tap"; fi
	pkill -9 -f "$tree/tests/integration/../../contrib/cmd/" 2>/dev/null || true
done
clean_bats_cgroups
if [ -z "$criu_conf_existed" ]; then
	rm -f /etc/criu/default.conf
	rmdir /etc/criu 2>/dev/null || true
fi
rm -f /tmp/runc-criu-*.conf

# 5. Compare with the expected passes.
expected=$repo/hack/conformance-expected-pass.txt
passed=$( (grep -E '^ok ' "$tap" || true) | (grep -v '# skip' || true) | sed -E 's/^ok [0-9]+ //' | sort -u)
failed=$( (grep -E '^not ok ' "$tap" || true) | sed -E 's/^not ok [0-9]+ //' | sort -u)
skipped=$(grep -cE '^ok .*# skip' "$tap" || true)
npass=$(echo -n "$passed" | grep -c '^' || true)
nfail=$(echo -n "$failed" | grep -c '^' || true)
echo "runc bats suite with husk: $npass tests pass, $nfail do not (see hack/conformance-expected-fail.txt), $skipped skipped"
# A full run must pass every expected test (one that did not run, say after a time-out,
# counts as failed); a filtered run answers for the tests it ran.
if [ $# -eq 0 ]; then
	regressions=$(comm -23 <(grep -v '^#' "$expected" | sed '/^$/d' | sort -u) <(echo "$passed"))
else
	regressions=$(comm -12 <(grep -v '^#' "$expected" | sed '/^$/d' | sort -u) <(echo "$failed"))
fi
new=$(comm -13 <(grep -v '^#' "$expected" | sed '/^$/d' | sort -u) <(echo "$passed"))
if [ -n "$new" ] && [ $# -eq 0 ]; then
	echo "newly passing (add to $expected):"
	echo "$new" | sed 's/^/  /'
fi
if [ -n "$regressions" ]; then
	echo "REGRESSIONS: expected to pass, failed:"
	echo "$regressions" | sed 's/^/  /'
	exit 1
fi
