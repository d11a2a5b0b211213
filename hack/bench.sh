#!/usr/bin/env bash
# Side-by-side start-up benchmark: husk, runc, crun and youki (HUSK_BENCH_YOUKI=0 leaves it out) on
# the same busybox bundle, in one private mount namespace, in one run. Prints medians and
# ratios to runc and crun, and writes target/bench/<date>.json. Not a test: figures vary with
# the machine; only ratios taken in the same run mean anything.
#
#   hack/bench.sh                       # 30 runs per measurement
#   RUNS=100 HUSK_BENCH_YOUKI=0 hack/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
. hack/lib.sh
ensure_packages busybox-static jq hyperfine runc crun time containerd
runs=${RUNS:-30}

runtimes=("husk=$repo/target/dist/husk" "runc=$(command -v runc)" "crun=$(command -v crun)")
# youki is built from crates.io once (about 2 minutes on 2 cores); HUSK_BENCH_YOUKI=0 skips it.
if [ "${HUSK_BENCH_YOUKI:-1}" = 1 ]; then
	if ! command -v youki >/dev/null; then
		ensure_packages libseccomp-dev libsystemd-dev pkg-config
		cargo install -q youki --features "v1 v2 systemd seccomp"
	fi
	runtimes+=("youki=$(command -v youki)")
fi
hack/build-release.sh >/dev/null
# The same code linked dynamically against glibc, as crun is: the static build that ships
# carries the parts of glibc it calls (about 0.7 MiB), which buys start-up time and RSS.
cargo build -q --release -p husk
dynamic_size=$(stat -c %s target/release/husk)

work=$(mktemp -d /tmp/husk-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
make_busybox_rootfs "$work/bundle/rootfs"
# runc's own default config: crun 1.8 refuses newer ociVersion values.
(cd "$work/bundle" && runc spec)
jq '.process.terminal = false | .process.args = ["true"]' "$work/bundle/config.json" >"$work/c.json"
mv "$work/c.json" "$work/bundle/config.json"
jq '.process.args = ["sleep", "1000"]' "$work/bundle/config.json" >"$work/sleep.json"
mkdir -p "$work/sleepbundle" && cp -a "$work/bundle/rootfs" "$work/sleepbundle/rootfs"
cp "$work/sleep.json" "$work/sleepbundle/config.json"
out=$repo/target/bench
mkdir -p "$out"
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)

# Everything below runs in one private mount namespace: crun 1.8 refuses this host's hybrid
# cgroups unless the unified mount is gone, so every runtime runs without it.
cat >"$work/inner.sh" <<'INNER'
set -euo pipefail
umount /sys/fs/cgroup/unified 2>/dev/null || true
work=$1 runs=$2; shift 2
# Every runtime keeps its state on a tmpfs, as in /run on a real host (husk fsyncs its state
# on disks; runc and crun do not).
mkdir -p "$work/roots" && mount -t tmpfs tmpfs "$work/roots"
results=$work/results.jsonl
: >"$results"
for entry in "$@"; do
	name=${entry%%=*} bin=${entry#*=}
	root=$work/roots/$name
	R="$bin --root $root"
	# The full lifecycle: create, start, wait for the exit, delete. The wait polls `state`
	# with a bash pattern, not jq: jq's start-up (~25 ms of CPU) swamped the runtimes' own
	# work in this figure.
	lifecycle="$R create --bundle $work/bundle c && $R start c && while [[ \"\$($R state c)\" != *'\"stopped\"'* ]]; do :; done && $R delete c"
	hyperfine --shell=bash -w 3 -r "$runs" --export-json "$work/$name-life.json" "$lifecycle" >/dev/null 2>&1
	# -N: no shell in between, so the few milliseconds measured are the runtime's.
	hyperfine -N -w 3 -r "$runs" --export-json "$work/$name-run.json" "$R run --bundle $work/bundle r" >/dev/null 2>&1
	$R run --detach --bundle "$work/sleepbundle" s
	hyperfine -N -w 3 -r "$runs" --export-json "$work/$name-exec.json" "$R exec s true" >/dev/null 2>&1
	$R delete --force s
	rss=$( { /usr/bin/time -f %M $R run --bundle "$work/bundle" m; } 2>&1 | tail -1)
	size=$(stat -c %s "$(readlink -f "$bin")")
	# Wall time per container with N `run`s started at once (median of 3): with 2 cores the
	# figure falls from 1 to 10, and should stay flat from there unless containers contend.
	per_container() {
		local n=$1 t=() t0 t1 i rep
		for rep in 1 2 3; do
			t0=$(date +%s%N)
			# A time limit: youki 0.7 was once seen to hang in one of 100 concurrent runs.
			for i in $(seq "$n"); do timeout -k 5 60 $R run --bundle "$work/bundle" "p$rep-$i" >/dev/null 2>&1 & done
			wait
			t1=$(date +%s%N)
			t+=("$(((t1 - t0) / n / 1000))")
		done
		printf '%s\n' "${t[@]}" | sort -n | sed -n 2p | awk '{printf "%.2f", $1 / 1000}'
	}
	c1=$(per_container 1) c10=$(per_container 10) c100=$(per_container 100)
	med() { jq '.results[0].median * 1000' "$work/$name-$1.json"; }
	printf '{"runtime":"%s","lifecycle_ms":%s,"run_ms":%s,"exec_ms":%s,"peak_rss_kib":%s,"binary_bytes":%s,"per_container_ms":{"1":%s,"10":%s,"100":%s}}\n' \
		"$name" "$(med life)" "$(med run)" "$(med exec)" "$rss" "$size" "$c1" "$c10" "$c100" >>"$results"
done
INNER
unshare -m bash ${BENCH_TRACE:+-x} "$work/inner.sh" "$work" "$runs" "${runtimes[@]}"

jq -s --arg date "$stamp" --argjson runs "$runs" --argjson dyn "$dynamic_size" \
	'{date: $date, runs: $runs, kernel: "'"$(uname -r)"'", husk_dynamic_binary_bytes: $dyn, results: .}' \
	"$work/results.jsonl" >"$out/$stamp.json"
echo "husk benchmark, $stamp, median of $runs runs (ms; RSS KiB; binary MiB); ratios: husk/runc and husk/crun"
jq -r '
  .results as $r
  | ($r | map(select(.runtime == "runc"))[0]) as $runc
  | ($r | map(select(.runtime == "crun"))[0]) as $crun
  | ["runtime", "lifecycle", "run", "exec", "peak RSS", "binary"],
    ($r[] | [.runtime, (.lifecycle_ms | . * 10 | round / 10), (.run_ms | . * 10 | round / 10), (.exec_ms | . * 10 | round / 10), .peak_rss_kib, (.binary_bytes / 1048576 | . * 10 | round / 10)]),
    ($r[] | select(.runtime == "husk") | ["husk/runc", (.lifecycle_ms / $runc.lifecycle_ms | . * 100 | round / 100), (.run_ms / $runc.run_ms | . * 100 | round / 100), (.exec_ms / $runc.exec_ms | . * 100 | round / 100), (.peak_rss_kib / $runc.peak_rss_kib | . * 100 | round / 100), (.binary_bytes / $runc.binary_bytes | . * 100 | round / 100)]),
    ($r[] | select(.runtime == "husk") | ["husk/crun", (.lifecycle_ms / $crun.lifecycle_ms | . * 100 | round / 100), (.run_ms / $crun.run_ms | . * 100 | round / 100), (.exec_ms / $crun.exec_ms | . * 100 | round / 100), (.peak_rss_kib / $crun.peak_rss_kib | . * 100 | round / 100), (.binary_bytes / $crun.binary_bytes | . * 100 | round / 100)])
  | @tsv' "$out/$stamp.json" | column -t -s $'\t'
jq -r '"husk linked dynamically (plain cargo build --release, as crun is linked): \(.husk_dynamic_binary_bytes / 1048576 * 100 | round / 100) MiB"' "$out/$stamp.json"
echo
echo "ms per container with N \`run\`s at once (median of 3); flat from 10 to 100 = no contention"
jq -r '["runtime", "N=1", "N=10", "N=100", "100 vs 10"],
  (.results[] | [.runtime, .per_container_ms["1"], .per_container_ms["10"], .per_container_ms["100"],
    (.per_container_ms["100"] / .per_container_ms["10"] | . * 100 | round / 100)]) | @tsv' \
	"$out/$stamp.json" | column -t -s $'\t'

# The shim, per pod: resident and proportional size of each shim serving one `sleep`
# container, and the latency of a whole `ctr run --rm … true`, beside containerd's Go runc
# shim (driving runc) under the same private containerd.
pods=${PODS:-5}
hack/make-oci-image.sh "$work/image.tar" docker.io/library/busybox:bench
ctd=$work/ctd
mkdir -p "$ctd"
printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s/c.sock"\n[ttrpc]\n  address = "%s/c.sock.ttrpc"\n' \
	"$ctd" "$ctd" "$ctd" "$ctd" >"$ctd/config.toml"
PATH=$repo/target/dist:$PATH containerd --config "$ctd/config.toml" >"$ctd/log" 2>&1 &
ctd_pid=$!
# The shims make a parent cgroup per containerd namespace (/bench) and leave it, as runc does.
trap 'kill $ctd_pid 2>/dev/null; wait $ctd_pid 2>/dev/null; for m in $(grep -o "$work[^ ]*" /proc/self/mounts | sort -r); do umount -l "$m"; done; rm -rf "$work"; find /sys/fs/cgroup -maxdepth 2 -type d -name bench -empty -exec rmdir {} \; 2>/dev/null || true' EXIT
ctr="ctr --address $ctd/c.sock --namespace bench"
for _ in $(seq 100); do $ctr version >/dev/null 2>&1 && break; sleep 0.1; done
$ctr images import "$work/image.tar" >/dev/null
: >"$work/shims.jsonl"
for entry in husk=io.containerd.husk.v2 runc-go=io.containerd.runc.v2; do
	name=${entry%%=*} rt=${entry#*=}
	for i in $(seq "$pods"); do $ctr run -d --runtime "$rt" docker.io/library/busybox:bench "$name-$i" sleep 1000; done
	rss=() pss=()
	for pid in $(pgrep -f "containerd-shim.*-address $ctd/c.sock"); do
		rss+=("$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")")
		pss+=("$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")")
	done
	for i in $(seq "$pods"); do
		$ctr task kill -s KILL "$name-$i"
	done
	sleep 0.5
	for i in $(seq "$pods"); do $ctr task rm "$name-$i" >/dev/null 2>&1; $ctr container rm "$name-$i"; done
	hyperfine --shell=bash -w 2 -r "$runs" --export-json "$work/ctr-$name.json" \
		"$ctr run --rm --runtime $rt docker.io/library/busybox:bench b\$RANDOM\$RANDOM true" >/dev/null 2>&1
	median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
	printf '{"shim":"%s","pods":%s,"rss_kib":%s,"pss_kib":%s,"ctr_run_ms":%s}\n' "$name" "${#rss[@]}" \
		"$(median "${rss[@]}")" "$(median "${pss[@]}")" "$(jq '.results[0].median * 1000' "$work/ctr-$name.json")" >>"$work/shims.jsonl"
done
jq --slurpfile shims "$work/shims.jsonl" '. + {shims: $shims}' "$out/$stamp.json" >"$work/all.json"
mv "$work/all.json" "$out/$stamp.json"
echo
echo "shim per pod (median of $pods pods; RSS and PSS in KiB; ctr run --rm … true in ms)"
jq -r '
  .shims as $s | ($s | map(select(.shim == "runc-go"))[0]) as $go
  | ["shim", "RSS", "PSS", "ctr run"],
    ($s[] | [.shim, .rss_kib, .pss_kib, (.ctr_run_ms | . * 10 | round / 10)]),
    ($s[] | select(.shim == "husk") | ["husk/runc-go", (.rss_kib / $go.rss_kib | . * 100 | round / 100), (.pss_kib / $go.pss_kib | . * 100 | round / 100), (.ctr_run_ms / $go.ctr_run_ms | . * 100 | round / 100)])
  | @tsv' "$out/$stamp.json" | column -t -s $'\t'
echo "(JSON: target/bench/$stamp.json)"
