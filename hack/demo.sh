#!/usr/bin/env bash
# Builds husk, makes a busybox bundle and runs a container that shows where it lives.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
ensure_packages busybox-static jq

cargo build --release -q -p husk
husk=$PWD/target/release/husk
work=$(mktemp -d /tmp/husk-demo.XXXXXX)
root=$work/state
trap '"$husk" --root "$root" delete --force demo >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

make_busybox_rootfs "$work/bundle/rootfs"
"$husk" spec --bundle "$work/bundle"
jq '.process.terminal = false
  | .hostname = "husk-demo"
  | .process.args = ["sh", "-c", "echo \"id:       $(id)\"; echo \"hostname: $(hostname)\"; echo \"pid:      $$ (its own pid namespace)\"; echo \"caps:     $(grep CapEff /proc/self/status)\"; echo cgroups:; cat /proc/self/cgroup; sleep 2"]' \
  "$work/bundle/config.json" >"$work/config.json" && mv "$work/config.json" "$work/bundle/config.json"

echo "== husk run --detach demo"
"$husk" --root "$root" run --detach --bundle "$work/bundle" demo
echo "== husk list"
"$husk" --root "$root" list
sleep 2.5
echo "== husk delete demo"
"$husk" --root "$root" delete --force demo
"$husk" --root "$root" list
