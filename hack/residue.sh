#!/usr/bin/env bash
# The end-of-suite residue check: `hack/residue.sh snapshot DIR` before the tests, and
# `hack/residue.sh check DIR` after them, which fails listing every mount, cgroup, state
# directory, process or session keyring that appeared meanwhile and is still there.
set -euo pipefail

dir=${2:?usage: hack/residue.sh snapshot|check DIR}

# Whether PID is this script or runs under it (its pipelines and command substitutions).
descends_from_self() {
	local p=$1 _c _s pp
	for _ in 1 2 3 4; do
		[ "$p" = $$ ] && return 0
		[ "$p" -gt 1 ] && [ -r "/proc/$p/stat" ] || return 1
		read -r _ _c _s pp _ <"/proc/$p/stat" || return 1
		p=$pp
	done
	return 1
}

# Each line is one thing that could be left behind, named so that a diff shows it.
inventory() {
	# Mounts of the host's namespace: husk mounts only inside containers' namespaces.
	awk '{print "mount " $5}' /proc/self/mountinfo
	find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | sed 's/^/cgroup /'
	# State roots: husk's default, the spec-tests' and containerd's where the tests run them.
	for d in /run/husk /run/runc /tmp/husk-spec-* /run/containerd/s; do
		[ -e "$d" ] && find "$d" -maxdepth 1 -mindepth 1 | sed 's/^/state /'
	done
	# Live processes, zombies aside (this machine's pid 1 reaps orphans late).
	for s in /proc/[0-9]*/stat; do
		{ read -r pid comm state _ <"$s"; } 2>/dev/null || continue
		[ "$state" = Z ] && continue
		descends_from_self "$pid" && continue
		# Kernel threads have no command line.
		cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)
		[ -n "$cmd" ] && echo "process $pid $comm $cmd"
	done
	grep -o '_ses\.[^:]*' /proc/keys 2>/dev/null | sed 's/^/keyring /' || true
}

case "$1" in
snapshot)
	mkdir -p "$dir"
	inventory | sort >"$dir/before"
	;;
check)
	# Let late reapers and the key garbage collector catch up before judging.
	for _ in $(seq 30); do
		inventory | sort >"$dir/after"
		comm -13 "$dir/before" "$dir/after" >"$dir/new"
		[ -s "$dir/new" ] || break
		sleep 1
	done
	if [ -s "$dir/new" ]; then
		echo "residue: the tests left these behind:" >&2
		cat "$dir/new" >&2
		exit 1
	fi
	echo "residue: nothing left behind (mounts, cgroups, state dirs, processes, keyrings)"
	;;
*)
	echo "usage: hack/residue.sh snapshot|check DIR" >&2
	exit 2
	;;
esac
