#!/bin/sh
# bench/encoder/run.sh [THREADS] [RUNS]
#
# The C engine (colpali-encode --bench) against transformers on PyTorch CPU
# (bench/encoder/torch_bench.py: sdpa attention unless TORCH_ATTN says
# otherwise, Pillow processor), side by side in one run, same model and
# thread count, each in both precisions: the engine in fp32 (the default)
# and with colpali.cpu_precision = bf16; transformers in float32 and in
# bfloat16 (dtype=torch.bfloat16, everything in bf16): a ColPali checkpoint with the
# real widths and 2 layers per tower, random bf16 weights (make_model.py,
# written once into build/bench/).  Prints pages/s, single-query latency and
# peak RSS for each, and the ratios.  Needs a Python with torch and
# transformers ($PYTHON, default /work/venv-fixtures/bin/python) and a built
# colpali-encode.
#
# BASE_ENCODE=/path/to/another/colpali-encode (e.g. built from main) adds its
# two rows (same model, same run) and the ratios of this build against it:
# before / after numbers side by side.
#
# ARCH=colqwen2 (or colqwen2_5) runs the same comparison for ColQwen2 /
# ColQwen2.5: Qwen2-VL-2B (Qwen2.5-VL-3B) widths, one layer per tower,
# random bf16 weights (test/fixtures/generate_qwen.py --realshape, written
# once into build/bench/), pages at the trained budget of 768 visual tokens,
# against colpali-engine's ColQwen2 on PyTorch (torch_bench_qwen.py; $PYTHON
# default /work/venv-qwen-fixtures/bin/python).
set -e
cd "$(dirname "$0")/../.."
THREADS=${1:-2}
RUNS=${2:-3}
ARCH=${ARCH:-colpali}
if [ "$ARCH" = colpali ]; then
	PYTHON=${PYTHON:-/work/venv-fixtures/bin/python}
	MODEL=${BENCH_MODEL_DIR:-build/bench/colpali-realwidth}
	IMAGES=${BENCH_IMAGES:-"test/fixtures/images/page_text.png test/fixtures/images/page_table.png"}
	TORCH_BENCH=bench/encoder/torch_bench.py
	make_model() { "$PYTHON" bench/encoder/make_model.py "$MODEL"; }
else
	PYTHON=${PYTHON:-/work/venv-qwen-fixtures/bin/python}
	MODEL=${BENCH_MODEL_DIR:-build/bench/$ARCH-realwidth/model}
	IMAGES=${BENCH_IMAGES:-"test/fixtures/images/page_text.png test/fixtures/qwen/images/banner_1200x300.png"}
	TORCH_BENCH=bench/encoder/torch_bench_qwen.py
	make_model() { "$PYTHON" test/fixtures/generate_qwen.py --realshape "$ARCH" "$(dirname "$MODEL")"; }
fi
# On a shared machine spinning OpenMP workers only steal time from the
# others; both sides get the same policy.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
QUERY="What is the total revenue in 2024?"

[ -x ./colpali-encode ] || { echo "build colpali-encode first (make)"; exit 1; }
[ -f "$MODEL/model.safetensors" ] || make_model

set -- $IMAGES
IMGARGS=""
for f in "$@"; do IMGARGS="$IMGARGS --image $f"; done

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, threads=$THREADS, runs=$RUNS (median)"
echo "# $ARCH; torch attention: ${TORCH_ATTN:-sdpa}; OMP_WAIT_POLICY=$OMP_WAIT_POLICY; model: $MODEL ($(du -m "$MODEL/model.safetensors" | cut -f1) MB bf16), load: $(cut -d' ' -f1-3 /proc/loadavg)"
c_fp32=$(./colpali-encode --model "$MODEL" --threads "$THREADS" --precision fp32 --bench --runs "$RUNS" $IMGARGS --query "$QUERY")
c_bf16=$(./colpali-encode --model "$MODEL" --threads "$THREADS" --precision bf16 --bench --runs "$RUNS" $IMGARGS --query "$QUERY")
if [ -n "$BASE_ENCODE" ]; then
	b_fp32=$("$BASE_ENCODE" --model "$MODEL" --threads "$THREADS" --precision fp32 --bench --runs "$RUNS" $IMGARGS --query "$QUERY")
	b_bf16=$("$BASE_ENCODE" --model "$MODEL" --threads "$THREADS" --precision bf16 --bench --runs "$RUNS" $IMGARGS --query "$QUERY")
fi
t_fp32=$(TORCH_DTYPE=float32 "$PYTHON" "$TORCH_BENCH" "$MODEL" "$THREADS" "$RUNS" "$QUERY" $IMAGES 2>/dev/null | tail -1)
t_bf16=$(TORCH_DTYPE=bfloat16 "$PYTHON" "$TORCH_BENCH" "$MODEL" "$THREADS" "$RUNS" "$QUERY" $IMAGES 2>/dev/null | tail -1)
# The kernels each side ran: ours from colpali-encode's own report (gemm=,
# bf16_gemm=, elementwise=, attention=; docs/cpu-kernels.md), torch's CPU capability
# (the ATen vector ISA) and whether its oneDNN (mkldnn) backend is on.
kern() { echo "$1" | tr ' ' '\n' | grep -E '^(gemm|gemm_few_rows|gemm_many_rows|bf16_gemm|elementwise|attention)=' | tr '\n' ' '; }
torch_kernels=$("$PYTHON" -c 'import torch; print("cpu_capability=%s mkldnn=%s" % (torch.backends.cpu.get_cpu_capability(), torch.backends.mkldnn.is_available()))' 2>/dev/null || echo unknown)
echo "# CPU: $(lscpu | sed -n 's/^Model name: *//p') (family $(sed -n 's/^cpu family[^:]*: *//p' /proc/cpuinfo | head -1) model $(sed -n 's/^model[^:]*: *//p' /proc/cpuinfo | grep -v '[a-zA-Z]' | head -1)), AMX: $(grep -q amx_bf16 /proc/cpuinfo && echo yes || echo no), AVX512_BF16: $(grep -q avx512_bf16 /proc/cpuinfo && echo yes || echo no)"
echo "# kernels, C fp32: $(kern "$c_fp32")"
echo "# kernels, C bf16: $(kern "$c_bf16")"
echo "# kernels, torch: $torch_kernels"
echo "C engine, fp32 (default):        $c_fp32"
echo "C engine, colpali.cpu_precision=bf16: $c_bf16"
if [ -n "$BASE_ENCODE" ]; then
	echo "baseline build, fp32:            $b_fp32"
	echo "baseline build, bf16:            $b_bf16"
fi
echo "transformers, float32:           $t_fp32"
echo "transformers, bfloat16:          $t_bf16"
get() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
ratio() {
	awk -v n="$1" -v cp="$(get "$2" pages_per_s)" -v tp="$(get "$3" pages_per_s)" \
		-v cq="$(get "$2" query_ms)" -v tq="$(get "$3" query_ms)" \
		-v ccp="$(get "$2" cpu_s_per_page)" -v tcp="$(get "$3" cpu_s_per_page)" \
		-v ccq="$(get "$2" query_cpu_ms)" -v tcq="$(get "$3" query_cpu_ms)" \
		-v cr="$(get "$2" peak_rss_mb)" -v tr="$(get "$3" peak_rss_mb)" \
		'BEGIN { printf "%-30s pages/s x%.2f (CPU time x%.2f); query latency x%.2f (CPU time x%.2f); peak RSS %s MB vs %s MB\n", n, cp / tp, tcp / ccp, tq / cq, tcq / ccq, cr, tr }'
}
ratio "C fp32 vs torch float32:" "$c_fp32" "$t_fp32"
ratio "C bf16 vs torch float32:" "$c_bf16" "$t_fp32"
ratio "C bf16 vs torch bfloat16:" "$c_bf16" "$t_bf16"
if [ -n "$BASE_ENCODE" ]; then
	ratio "baseline fp32 vs torch float32:" "$b_fp32" "$t_fp32"
	ratio "baseline bf16 vs torch bfloat16:" "$b_bf16" "$t_bf16"
	ratio "C fp32 vs baseline fp32:" "$c_fp32" "$b_fp32"
	ratio "C bf16 vs baseline bf16:" "$c_bf16" "$b_bf16"
fi
