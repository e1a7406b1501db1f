# cuda/cuda.mk: the optional CUDA backend, colpali_cuda.so (-include'd by
# the top Makefile).
#
#   USE_CUDA=auto (default)  build it when nvcc is found (PATH, $(CUDA_HOME),
#                            /usr/local/cuda)
#   USE_CUDA=1               build it, fail without nvcc
#   USE_CUDA=0               never build it
#
#   make cudacheck           GPU op tests and tiny-fixture parity (needs a GPU)
#
# The library is self-contained (it uses no engine object); the engine
# dlopen()s it at run time (src/engine/backend_loader.c), so colpali.so and
# the CLI never link against CUDA and nothing here enters PGXS OBJS (PGXS
# would try to make LLVM bitcode of anything there, which nvcc cannot).

USE_CUDA ?= auto
CUDA_HOME ?= /usr/local/cuda
CUDA_ARCH_FLAGS ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90

ifeq ($(USE_CUDA),0)
NVCC :=
else
NVCC := $(shell command -v nvcc 2>/dev/null || { test -x $(CUDA_HOME)/bin/nvcc && echo $(CUDA_HOME)/bin/nvcc; })
endif

CUDA_SRCS = $(sort $(wildcard cuda/*.cu))
CUDA_OBJS = $(patsubst cuda/%.cu,build/cuda/%.o,$(CUDA_SRCS))
CUDA_LIB = colpali_cuda.so
CUDA_TESTS = $(patsubst test/cuda/%.c,build/cuda/%,$(sort $(wildcard test/cuda/test_*.c)))

ifeq ($(WERROR),1)
NVCC_WERROR = -Werror all-warnings -Xcompiler -Werror
endif

NVCC_FLAGS = -std=c++17 -O3 -lineinfo $(CUDA_ARCH_FLAGS) \
	-Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra,-Wno-unused-parameter \
	$(NVCC_WERROR) -Isrc/engine -Icuda $(NVCC_EXTRA_FLAGS)
CUDA_LDLIBS = -lcublasLt -lcublas -lcudart

ifneq ($(NVCC),)
CUDA_LIBDIR := $(patsubst %/bin/nvcc,%,$(NVCC))/lib64

all: $(CUDA_LIB)
install: install-cuda

build/cuda/%.o: cuda/%.cu $(wildcard cuda/*.h) src/engine/backend.h src/engine/backend_cuda_abi.h src/engine/cp_status.h src/engine/dtype.h src/engine/weights.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c -o $@ $<

$(CUDA_LIB): $(CUDA_OBJS)
	$(NVCC) -shared $(CUDA_ARCH_FLAGS) -o $@ $(CUDA_OBJS) -L$(CUDA_LIBDIR) $(CUDA_LDLIBS) \
	  -Xlinker -rpath,$(CUDA_LIBDIR) -Xlinker --no-undefined

install-cuda: $(CUDA_LIB) installdirs
	$(INSTALL_SHLIB) $(CUDA_LIB) '$(DESTDIR)$(pkglibdir)/$(CUDA_LIB)'

# GPU tests: plain C programs linked with the engine (CPU reference) that
# load colpali_cuda.so through the engine's loader, like production.
build/cuda/test_%: test/cuda/test_%.c build/libcolpali_engine.a $(CUDA_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ENGINE_CFLAGS) -Icuda -o $@ $< build/libcolpali_engine.a $(ENGINE_LIBS) -ldl

# bench/gpu_check.sh's helper: runs the model from prepared ids and pixels
build/cuda/cuda_tool: test/cuda/cuda_tool.c build/libcolpali_engine.a $(CUDA_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ENGINE_CFLAGS) -Icuda -o $@ $< build/libcolpali_engine.a $(ENGINE_LIBS) -ldl

cudacheck: $(CUDA_TESTS) $(CUDA_LIB)
	@set -e; for t in $(CUDA_TESTS); do echo "== $$t"; \
	  (cd test/cuda && COLPALI_CUDA_LIB=$(CURDIR)/$(CUDA_LIB) ../../$$t); done

else

all: cuda-skip-note
cuda-skip-note:
	@echo "colpali: nvcc not found (USE_CUDA=$(USE_CUDA)): colpali_cuda.so not built"
cudacheck:
	@echo "colpali: nvcc not found: cudacheck needs the CUDA toolkit and a GPU" && false
ifeq ($(USE_CUDA),1)
$(error USE_CUDA=1 but nvcc was found neither on PATH nor in $(CUDA_HOME)/bin)
endif

endif

EXTRA_CLEAN += $(CUDA_LIB)

.PHONY: install-cuda cudacheck cuda-skip-note
