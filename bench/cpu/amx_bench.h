/*
 * amx_bench.h
 *	  What the stand-alone AMX bench programs of bench/cpu share: the Linux
 *	  request for the tile state and the one tile configuration they use
 *	  (palette 1, tiles 0-7 of 16 rows x 64 bytes, as src/engine/gemm_amx.c).
 *	  Header-only, so that each program still builds with one cc command.
 */
#ifndef AMX_BENCH_H
#define AMX_BENCH_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define TILE 512				/* bf16 elements (or 256 words x 2) per 1 KB tile */

typedef struct TileConfig
{
	uint8_t		palette;
	uint8_t		start_row;
	uint8_t		reserved[14];
	uint16_t	colsb[16];
	uint8_t		rows[16];
} TileConfig;

/* whether this CPU has AVX-512 and the kernel grants this process the tile state */
static inline int
amx_bench_usable(void)
{
	return __builtin_cpu_supports("avx512f") &&
		syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

/* load the tile configuration on the calling thread */
__attribute__((target("amx-tile")))
static inline void
amx_bench_load_config(void)
{
	TileConfig	cfg __attribute__((aligned(64)));
	int			i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.palette = 1;
	for (i = 0; i < 8; i++)
	{
		cfg.rows[i] = 16;
		cfg.colsb[i] = 64;
	}
	/* _tile_loadconfig declares too small a read: keep every store (gemm_amx.c) */
	__asm__ __volatile__("" : : "r"(&cfg) : "memory");
	_tile_loadconfig(&cfg);
}

#endif							/* AMX_BENCH_H */
