#!/bin/bash
# bench/gpu_smoke.sh: the short GPU check (about 2 minutes): build
# colpali_cuda.so with nvcc on the GPU machine and run the GPU op tests and
# the tiny fixtures through CUDA.  Same preparation as bench/gpu_check.sh
# (bench/gpu_prepare.sh, carry .gpucarry).
GPU_CHECK_SMOKE=1 exec bash "$(dirname "$0")/gpu_check.sh" "$@"
