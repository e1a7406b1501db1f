#!/bin/sh
# bench/encoder/run.sh [THREADS] [RUNS]
#
# The C engine (colpali-encode --bench) against transformers on PyTorch CPU
# (bench/encoder/torch_bench.py: float32, sdpa attention unless TORCH_ATTN
# says otherwise, Pillow processor), side by
# side in one run, same model and thread count: a ColPali checkpoint with the
# real widths and 2 layers per tower, random bf16 weights (make_model.py,
# written once into build/bench/).  Prints pages/s, single-query latency and
# peak RSS for each, and the ratios.  Needs a Python with torch and
# transformers ($PYTHON, default /work/venv-fixtures/bin/python) and a built
# colpali-encode.
set -e
cd "$(dirname "$0")/../.."
THREADS=${1:-2}
RUNS=${2:-3}
PYTHON=${PYTHON:-/work/venv-fixtures/bin/python}
MODEL=${BENCH_MODEL_DIR:-build/bench/colpali-realwidth}
IMAGES=${BENCH_IMAGES:-"test/fixtures/images/page_text.png test/fixtures/images/page_table.png"}
# On a shared machine spinning OpenMP workers only steal time from the
# others; both sides get the same policy.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
QUERY="What is the total revenue in 2024?"

[ -x ./colpali-encode ] || { echo "build colpali-encode first (make)"; exit 1; }
[ -f "$MODEL/model.safetensors" ] || "$PYTHON" bench/encoder/make_model.py "$MODEL"

set -- $IMAGES
IMGARGS=""
for f in "$@"; do IMGARGS="$IMGARGS --image $f"; done

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, threads=$THREADS, runs=$RUNS (median)"
echo "# torch attention: ${TORCH_ATTN:-sdpa}; OMP_WAIT_POLICY=$OMP_WAIT_POLICY; model: $MODEL ($(du -m "$MODEL/model.safetensors" | cut -f1) MB bf16), load: $(cut -d' ' -f1-3 /proc/loadavg)"
c_fp32=$(./colpali-encode --model "$MODEL" --threads "$THREADS" --weights fp32 --bench --runs "$RUNS" $IMGARGS --query "$QUERY")
c_lazy=$(./colpali-encode --model "$MODEL" --threads "$THREADS" --weights lazy --bench --runs "$RUNS" $IMGARGS --query "$QUERY")
torch=$("$PYTHON" bench/encoder/torch_bench.py "$MODEL" "$THREADS" "$RUNS" "$QUERY" $IMAGES 2>/dev/null | tail -1)
echo "C engine, fp32 weights:  $c_fp32"
echo "C engine, lazy bf16:     $c_lazy"
echo "transformers (torch):    $torch"
get() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
for v in fp32 lazy; do
	eval c=\$c_$v
	awk -v n="C $v" -v cp="$(get "$c" pages_per_s)" -v tp="$(get "$torch" pages_per_s)" \
		-v cq="$(get "$c" query_ms)" -v tq="$(get "$torch" query_ms)" \
		-v ccp="$(get "$c" cpu_s_per_page)" -v tcp="$(get "$torch" cpu_s_per_page)" \
		-v ccq="$(get "$c" query_cpu_ms)" -v tcq="$(get "$torch" query_cpu_ms)" \
		-v cr="$(get "$c" peak_rss_mb)" -v tr="$(get "$torch" peak_rss_mb)" \
		'BEGIN { printf "%-7s vs torch: pages/s x%.2f (CPU time x%.2f); query latency x%.2f (CPU time x%.2f); peak RSS %s MB vs %s MB\n", n, cp / tp, tcp / ccp, tq / cq, tcq / ccq, cr, tr }'
done
