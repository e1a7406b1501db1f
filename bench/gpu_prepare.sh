#!/bin/bash
# bench/gpu_prepare.sh: run on the development machine (no GPU needed) before
# bench/gpu_check.sh runs on a GPU machine.  The GPU machine has nvcc and
# CUDA but no jansson or OpenBLAS, so the engine-linked programs (GPU op
# tests, fixture test, cuda_tool) are built here, linked statically against
# OpenBLAS and jansson, stripped and packed with colpali_cuda.so and libgomp
# into .gpucarry/colpali-gpu.tar.xz (a few MB).  Then copy the checkout with
# .gpucarry to the GPU machine and run bench/gpu_check.sh; see docs/cuda.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT

EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '/.gpucarry/' "$EXCLUDE" 2>/dev/null || echo '/.gpucarry/' >> "$EXCLUDE"
# no WERROR here: a warning elsewhere must not cost the GPU window
make -s USE_CUDA=1 colpali_cuda.so build/libcolpali_engine.a

mkdir -p "$STAGE/bin" "$STAGE/lib"
CFLAGS="-std=gnu11 -O2 -fopenmp -Wall -Wextra -Wno-unused-parameter -Isrc/engine -Icuda"
LIBS="build/libcolpali_engine.a -Wl,-Bstatic -lopenblas -ljansson -lpcre2-8 -lutf8proc -Wl,-Bdynamic -lm -fopenmp -ldl -lpthread"
for prog in test/cuda/test_cuda_ops test/cuda/test_cuda_fixtures test/cuda/cuda_tool; do
	name=$(basename $prog)
	gcc $CFLAGS -o "$STAGE/bin/$name" $prog.c $LIBS
	strip "$STAGE/bin/$name"
done
cp colpali_cuda.so "$STAGE/lib/"
cp -L "$(gcc -print-file-name=libgomp.so.1)" "$STAGE/lib/"
git rev-parse HEAD > "$STAGE/COMMIT"
mkdir -p .gpucarry
tar -C "$STAGE" -cJf .gpucarry/colpali-gpu.tar.xz .
# an optional transformers timing script, named by $HF_BASELINE, travels along
if [ -n "${HF_BASELINE:-}" ] && [ -f "$HF_BASELINE" ]; then
	cp "$HF_BASELINE" .gpucarry/hf_baseline_gpu.py
fi
ls -la .gpucarry
echo "now: on the GPU machine, with .gpucarry beside the checkout: bash bench/gpu_check.sh"
