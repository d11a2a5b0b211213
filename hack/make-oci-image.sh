#!/usr/bin/env bash
# make-oci-image.sh OUT.tar NAME [CMD-JSON]: a one-layer OCI image archive of the busybox
# rootfs, for `ctr images import` (the test machines have no registry to pull from). CMD-JSON
# is the image's Cmd, ["sh"] by default (a pod's pause image needs one that stays up).
set -euo pipefail
out=$1 name=$2 cmd=${3:-'["sh"]'}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/lib.sh
source "$here/lib.sh"

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
make_busybox_rootfs "$w/rootfs"
mkdir -p "$w/oci/blobs/sha256"

# blob FILE: moves FILE into the blob store; prints "DIGEST SIZE".
blob() {
	local d s
	d=$(sha256sum "$1" | cut -d' ' -f1)
	s=$(stat -c %s "$1")
	mv "$1" "$w/oci/blobs/sha256/$d"
	echo "$d $s"
}

tar -C "$w/rootfs" --numeric-owner --sort=name --mtime=@0 -cf "$w/layer" .
read -r layer layer_size < <(blob "$w/layer")
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
	"$cmd" "$layer" >"$w/config"
read -r config config_size < <(blob "$w/config")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
	"$config" "$config_size" "$layer" "$layer_size" >"$w/manifest"
read -r manifest manifest_size < <(blob "$w/manifest")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
	"$manifest" "$manifest_size" "$name" "$name" >"$w/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$w/oci/oci-layout"
tar -C "$w/oci" -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
