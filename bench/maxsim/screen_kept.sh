#!/usr/bin/env bash
# bench/maxsim/screen_kept.sh: screened exact MaxSim on the benchmark corpora.
#
#   bench/maxsim/screen_kept.sh [NDOCS=300] [NQUERIES=20] [PROFILES="topics hard"]
#
# For each corpus profile of bench/index/corpora.sh (bench/index/gen.c with
# its traits): the rows of each 1030 x 128 page that the screen keeps for the
# exact kernel (one bf16 part, hi + lo parts), and the kernel CPU time per
# page unscreened and screened (one core), after checking every score's bits
# against the unscreened kernel.  Needs a CPU with AMX-BF16.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
N=${1:-300}
NQ=${2:-20}
PROFILES=${3:-topics hard}
SEED=${GEN_SEED:-42}
work=$(mktemp -d /tmp/screen-kept.XXXXXX)
trap 'rm -rf "$work"' EXIT

cc -O2 -o "$work/gen" "$root/bench/index/gen.c" -lm
cc -O2 -std=gnu11 -Wall -fopenmp -I"$root/src/engine" -o "$work/screen_kept" \
	"$here/screen_kept.c" "$root/src/engine/maxsim_kernels.c" \
	"$root/src/engine/maxsim_screen.c" "$root/src/engine/maxsim_compact.c" \
	"$root/src/engine/gemm_amx.c" "$root/src/engine/gemm_bf16.c" -lm

# the profiles' traits (profile_env), as bench/index/corpora.sh sets them
. "$root/bench/index/profiles.sh"

echo "== screened exact MaxSim: $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
for p in $PROFILES; do
	env $(profile_env "$p") "$work/gen" docs "$N" "$SEED" > "$work/docs.copy"
	env $(profile_env "$p") "$work/gen" queries "$N" "$NQ" "$SEED" > "$work/queries.copy"
	printf '%-8s ' "$p"
	nice "$work/screen_kept" "$work/docs.copy" "$work/queries.copy" "$NQ"
done
