# colpali: PGXS build.
#
#   make                 build colpali.so, the engine library, colpali-encode
#   make install         install the extension (and colpali_cuda.so when built)
#   make installcheck    pg_regress suite against a running server
#   make prove_installcheck   TAP suite (test/t/*.pl), starts its own clusters
#   make enginecheck     standalone engine tests (no PostgreSQL needed)
#   make fuzzcheck       short libFuzzer runs of the input parsers (clang)
#
# Options: WERROR=1 (warnings are errors, as in CI), USE_CUDA=auto|0|1.
#
# The version lives only in colpali.control; everything else derives from it.

EXTENSION = colpali
EXTVERSION = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" $(EXTENSION).control)

MODULE_big = colpali
# Only C glue objects go into OBJS.  The PostgreSQL-free engine is built as a
# static PIC archive with its own flags and linked in through SHLIB_LINK; CUDA
# code lives in its own colpali_cuda.so (cuda/cuda.mk), never in OBJS.
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/index/*.c)))
HEADERS = src/multivector.h src/multivector_parse.h

# The install script is assembled from one file per concern, in order.
SQL_SECTIONS = $(sort $(wildcard sql/sections/*.sql))
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
# Upgrade scripts, and the install scripts of released versions (frozen, so
# that ALTER EXTENSION ... UPDATE can be tested from them).
DATA = $(wildcard sql/$(EXTENSION)--*--*.sql) sql/$(EXTENSION)--0.1.0.sql \
	sql/$(EXTENSION)--0.2.0.sql sql/$(EXTENSION)--0.3.0.sql

TESTS = $(sort $(wildcard test/sql/*.sql))
REGRESS = $(patsubst test/sql/%.sql,%,$(TESTS))
REGRESS_OPTS = --inputdir=test --load-extension=$(EXTENSION)
# TAP tests run through our own prove_installcheck target (they live in test/t).

ifeq ($(WERROR),1)
WERROR_FLAG = -Werror
endif

ENGINE_CFLAGS = -std=gnu11 -O2 -g -fPIC -fopenmp -Wall -Wextra -Wno-unused-parameter \
	-Wmissing-prototypes -Wdeclaration-after-statement $(WERROR_FLAG) -Isrc/engine \
	$(ENGINE_EXTRA_CFLAGS)
ENGINE_LIBS = -ljansson -ljpeg -lpcre2-8 -lutf8proc -lm -fopenmp

PG_CPPFLAGS = -Isrc -Isrc/engine -DCOLPALI_VERSION='"$(EXTVERSION)"'
PG_CFLAGS = -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare $(WERROR_FLAG)
SHLIB_LINK = build/libcolpali_engine.a $(ENGINE_LIBS) -ldl
SHLIB_PREREQS = build/libcolpali_engine.a

EXTRA_CLEAN = build colpali-encode $(DATA_built)

# Our C glue is not worth JIT inlining, and nvcc/OpenMP objects have no bitcode.
override with_llvm = no

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PG15's pg_regress reads expected/ from the output directory (the top level);
# from PG16 on it reads <expecteddir>/expected/, by default under --inputdir.
ifeq ($(shell test $(MAJORVERSION) -ge 16 && echo yes),yes)
REGRESS_OPTS += --expecteddir=.
endif

ifneq ($(wildcard src/engine/cli.c),)
all: colpali-encode
install: install-cli
endif

# PGXS has no header dependencies unless the server was configured with
# --enable-depend: rebuild the glue when any of our headers changes.
$(OBJS): $(wildcard src/*.h src/index/*.h src/engine/*.h)

$(DATA_built): $(SQL_SECTIONS) $(EXTENSION).control
	@mkdir -p $(dir $@)
	( printf '%s\n' '/* $(EXTENSION) $(EXTVERSION) install script: generated from sql/sections/, do not edit */'; \
	  printf '%s\n' '\echo Use "CREATE EXTENSION $(EXTENSION)" to load this file. \quit'; \
	  for f in $(SQL_SECTIONS); do echo; cat $$f; done ) > $@

# ---- engine (src/engine/, no PostgreSQL) ----
ENGINE_SRCS = $(filter-out src/engine/cli.c,$(sort $(wildcard src/engine/*.c)))
ENGINE_OBJS = $(patsubst src/engine/%.c,build/engine/%.o,$(ENGINE_SRCS))

build/engine/%.o: src/engine/%.c $(wildcard src/engine/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ENGINE_CFLAGS) -c -o $@ $<

# Token pooling must compute SciPy's distances operation for operation (no FMA).
build/engine/token_pool.o: ENGINE_CFLAGS += -ffp-contract=off

build/libcolpali_engine.a: $(ENGINE_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) crs $@ $(ENGINE_OBJS)

$(shlib): build/libcolpali_engine.a

colpali-encode: src/engine/cli.c build/libcolpali_engine.a
	$(CC) $(ENGINE_CFLAGS) -o $@ $< build/libcolpali_engine.a $(ENGINE_LIBS) -ldl

install-cli: colpali-encode
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) colpali-encode '$(DESTDIR)$(bindir)/colpali-encode'

# ---- standalone engine tests: test/engine/test_*.c, one program each ----
ENGINE_TESTS = $(patsubst test/engine/%.c,build/test/%,$(sort $(wildcard test/engine/test_*.c)))

build/test/%: test/engine/%.c build/libcolpali_engine.a $(wildcard test/engine/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ENGINE_CFLAGS) -Itest/engine -o $@ $< build/libcolpali_engine.a $(ENGINE_LIBS) -ldl

enginecheck: $(ENGINE_TESTS)
	@pass=0; fail=0; for t in $(ENGINE_TESTS); do echo "== $$t"; \
	  if (cd test/engine && ../../$$t); then pass=$$((pass + 1)); else fail=$$((fail + 1)); echo "FAILED: $$t"; fi; \
	done; echo "engine test programs: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]

# ---- fuzzing: test/fuzz/fuzz_*.c, libFuzzer + ASan/UBSan ----
FUZZ_SECONDS ?= 20
FUZZ_TARGETS = $(patsubst test/fuzz/%.c,build/fuzz/%,$(sort $(wildcard test/fuzz/fuzz_*.c)))
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-fsanitize-coverage-ignorelist=test/fuzz/coverage_ignore.txt -Isrc/engine

# The fuzzers exercise the input parsers only, not the compute backends.
FUZZ_ENGINE_SRCS = $(filter-out src/engine/backend% src/engine/model% src/engine/engine%,$(ENGINE_SRCS))

build/fuzz/%: test/fuzz/%.c $(FUZZ_ENGINE_SRCS) $(wildcard src/engine/*.h) test/fuzz/coverage_ignore.txt
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_ENGINE_SRCS) -ljansson -ljpeg -lpcre2-8 -lutf8proc -lopenblas -lm

# The multivector parsers are PostgreSQL-free glue files, not engine code.
build/fuzz/fuzz_multivector_%: test/fuzz/fuzz_multivector_%.c src/multivector_parse.c src/multivector_parse.h test/fuzz/mv_fuzz_util.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -Isrc -o $@ $< src/multivector_parse.c -lm

fuzzcheck: $(FUZZ_TARGETS)
	@set -e; for t in $(FUZZ_TARGETS); do n=$$(basename $$t); \
	  mkdir -p build/fuzz/corpus-$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  $$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/corpus-$$n test/fuzz/seeds/$$n 2>&1 | tail -n 3; \
	done

# ---- TAP tests live in test/t ----
prove_installcheck:
	rm -rf '$(CURDIR)'/tmp_check
	$(MKDIR_P) '$(CURDIR)'/tmp_check
	cd test && TESTDIR='$(CURDIR)' PATH="$(bindir):$(CURDIR):$$PATH" PGPORT='6$(DEF_PGPORT)' \
	  PG_REGRESS='$(top_builddir)/src/test/regress/pg_regress' \
	  $(PROVE) $(PG_PROVE_FLAGS) $(PROVE_FLAGS) $(if $(PROVE_TESTS),$(PROVE_TESTS),t/*.pl)

# ---- CUDA backend (optional): cuda/cuda.mk builds colpali_cuda.so ----
-include cuda/cuda.mk

.PHONY: install-cli enginecheck fuzzcheck prove_installcheck
