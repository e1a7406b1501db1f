#!/bin/sh
# bench/encoder/ab_pages.sh BASE_ENCODE [ROUNDS] [THREADS] [PRECISION]
#
# Two colpali-encode builds alternated on the same pages: ./colpali-encode
# (this tree) and BASE_ENCODE (e.g. built from main), ROUNDS rounds of
# `--bench --runs 2` each (2 pages, 2 runs: the median run), in the given
# precision (default bf16) and thread count (default 2).  Prints each
# round's wall and CPU seconds per page and query milliseconds for both,
# then the medians and the ratios base / this (above 1: this build is
# faster).  On a shared machine only these side-by-side ratios mean
# anything; CPU time per page is the steadier one.
set -e
cd "$(dirname "$0")/../.."
BASE=${1:?usage: $0 BASE_ENCODE [ROUNDS] [THREADS] [PRECISION]}
ROUNDS=${2:-4}
THREADS=${3:-2}
PREC=${4:-bf16}
MODEL=${BENCH_MODEL_DIR:-build/bench/colpali-realwidth}
IMGS="--image test/fixtures/images/page_text.png --image test/fixtures/images/page_table.png"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
get() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
out=$(mktemp)
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), precision=$PREC threads=$THREADS rounds=$ROUNDS, load: $(cut -d' ' -f1-3 /proc/loadavg)"
r=1
while [ "$r" -le "$ROUNDS" ]; do
	for side in this base; do
		if [ "$side" = this ]; then exe=./colpali-encode; else exe=$BASE; fi
		line=$("$exe" --model "$MODEL" --threads "$THREADS" --precision "$PREC" --bench --runs 2 $IMGS --query "What is the total revenue in 2024?")
		echo "$side $(get "$line" s_per_page) $(get "$line" cpu_s_per_page) $(get "$line" query_ms) $(get "$line" query_cpu_ms)" >> "$out"
		printf 'round %d %-4s s/page %s  CPU s/page %s  query ms %s (CPU %s)\n' "$r" "$side" \
			"$(get "$line" s_per_page)" "$(get "$line" cpu_s_per_page)" "$(get "$line" query_ms)" "$(get "$line" query_cpu_ms)"
	done
	r=$((r + 1))
done
med() { grep "^$1 " "$out" | awk -v c="$2" '{print $c}' | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
for side in this base; do
	printf 'median %-4s s/page %.3f  CPU s/page %.3f  query ms %.2f (CPU %.2f)\n' "$side" \
		"$(med $side 2)" "$(med $side 3)" "$(med $side 4)" "$(med $side 5)"
done
awk -v tw="$(med this 2)" -v bw="$(med base 2)" -v tc="$(med this 3)" -v bc="$(med base 3)" \
	-v tq="$(med this 5)" -v bq="$(med base 5)" \
	'BEGIN { printf "base / this: pages wall x%.3f, pages CPU x%.3f, query CPU x%.3f\n", bw / tw, bc / tc, bq / tq }'
rm -f "$out"
