#!/usr/bin/env bash
# Summarises a console log of hack/vm-bats (the output of hack/vm.sh, or target/vm/console-plain.log):
# per file, husk's and runc's pass/fail/skip counts; then the tests that pass with runc but fail
# with husk, with husk's failure output; then the tests that fail with both.
#   hack/vm-bats/summary.sh LOG
set -euo pipefail
log=${1:?usage: summary.sh LOG}
lines() { sed -n "s/^BATS $1 //p" "$log"; }
# TAP of one runtime, as "FILE<TAB>STATUS<TAB>NAME" (STATUS: ok, skip, fail).
results() {
	lines "$1" | awk '
		/^# begin / { file = $3; next }
		/^ok .* # skip/ { n = $0; sub(/^ok [0-9]+ /, "", n); sub(/ # skip.*/, "", n); print file "\tskip\t" n; next }
		/^ok / { n = $0; sub(/^ok [0-9]+ /, "", n); print file "\tok\t" n; next }
		/^not ok / { n = $0; sub(/^not ok [0-9]+ /, "", n); print file "\tfail\t" n; next }'
}
husk=$(results husk)
runc=$(results runc)
printf '%-24s %-18s %-18s\n' FILE "runc pass/fail/skip" "husk pass/fail/skip"
for f in $(sed -n 's/^BATS husk # begin //p' "$log"); do
	c() { awk -F'\t' -v f="$f" -v s="$2" '$1 == f && $2 == s' <<<"$1" | grep -c . || true; }
	st() { sed -n "s/^BATS $1 # end $f status=\([0-9]*\).*/\1/p" "$log"; }
	printf '%-24s %-18s %-18s\n' "$f" "$(c "$runc" ok)/$(c "$runc" fail)/$(c "$runc" skip) (rc $(st runc))" \
		"$(c "$husk" ok)/$(c "$husk" fail)/$(c "$husk" skip) (rc $(st husk))"
done
echo
echo "== pass with runc, fail with husk"
comm -12 <(awk -F'\t' '$2 == "ok" {print $1 "\t" $3}' <<<"$runc" | sort) \
	<(awk -F'\t' '$2 == "fail" {print $1 "\t" $3}' <<<"$husk" | sort) |
	while IFS=$'\t' read -r f name; do
		echo "--- $f: $name"
		# The failure's diagnostics: the "# " lines after "not ok N NAME" in husk's run of FILE.
		lines husk | awk -v f="$f" -v n="$name" '
			/^# begin / { infile = ($3 == f); next }
			infile && /^not ok / { t = $0; sub(/^not ok [0-9]+ /, "", t); show = (t == n); next }
			infile && /^(ok|not ok) / { show = 0 }
			show && /^#/ { print "    " $0 }
			/^# end / { show = 0 }'
	done
echo
echo "== fail with both"
comm -12 <(awk -F'\t' '$2 == "fail" {print $1 "\t" $3}' <<<"$runc" | sort) \
	<(awk -F'\t' '$2 == "fail" {print $1 "\t" $3}' <<<"$husk" | sort) | sed 's/\t/: /; s/^/  /'
echo
echo "== fail with runc only"
comm -23 <(awk -F'\t' '$2 == "fail" {print $1 "\t" $3}' <<<"$runc" | sort) \
	<(awk -F'\t' '$2 == "fail" {print $1 "\t" $3}' <<<"$husk" | sort) | sed 's/\t/: /; s/^/  /'
