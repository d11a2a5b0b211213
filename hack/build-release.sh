#!/usr/bin/env bash
# Builds what ships into target/dist/: husk, and containerd-shim-husk-v2 linked statically
# (glibc static-pie). A shim lives as long as its pod; libc.so and ld.so would add about
# 1 MiB of mapped pages to each one's resident size. Cargo cannot set that flag for one
# package, hence this script.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build -q --release -p husk
RUSTFLAGS="-C target-feature=+crt-static" \
	cargo build -q --release -p containerd-shim-husk-v2 --target "$host"
mkdir -p target/dist
cp --remove-destination target/release/husk target/dist/husk
cp --remove-destination "target/$host/release/containerd-shim-husk-v2" target/dist/
echo "target/dist: husk containerd-shim-husk-v2"
