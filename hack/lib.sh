#!/usr/bin/env bash
# Shared helpers for hack/ scripts.

# Installs Debian packages that are missing (CI machines start fresh).
ensure_packages() {
	local missing=()
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}" >&2
	if [ "$(id -u)" -ne 0 ]; then
		echo "need root to install ${missing[*]}" >&2
		return 1
	fi
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# make_busybox_rootfs DIR: a minimal rootfs from Debian's busybox-static.
make_busybox_rootfs() {
	local dir=$1
	mkdir -p "$dir"/{bin,dev,proc,sys,tmp,etc,root}
	cp /bin/busybox "$dir/bin/busybox"
	local a
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -sf busybox "$dir/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$dir/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

# copy_libs ROOT FILE: the shared libraries FILE loads (as ldd names them, the loader too),
# copied under ROOT at their paths, resolved (/lib is a symlink here, a directory in the VMs).
copy_libs() {
	local root=$1 f
	for f in $(ldd "$2" 2>/dev/null | grep -o '/[^ ]*' || true); do
		[ -e "$root$f" ] && continue
		mkdir -p "$root$(dirname "$f")"
		cp -L --preserve=mode "$f" "$root$f"
	done
}
