/*
 * gemm_amx_tiles.h
 *	  Tile helpers shared by the AMX GEMM kernels (gemm_amx.c: x times the
 *	  packed weights; gemm_amx_rows.c: the weights in place times x^T).
 *	  The caller has loaded the tile configuration (cp_amx_load_tile_config).
 */
#ifndef GEMM_AMX_TILES_H
#define GEMM_AMX_TILES_H

#include <immintrin.h>
#include <stddef.h>

/*
 * acc_tiles_start
 *		Accumulator tiles 0-3 (a 32 x 32 block: rows 0-15 / 16-31 by columns
 *		0-15 / 16-31) loaded from c, whose rows lie stride bytes apart and
 *		whose row 16 starts `lower` floats after c; zeroed when c is NULL.
 */
static inline __attribute__((target("amx-tile"), always_inline)) void
acc_tiles_start(const float *c, size_t stride, size_t lower)
{
	if (c == NULL)
	{
		_tile_zero(0);
		_tile_zero(1);
		_tile_zero(2);
		_tile_zero(3);
		return;
	}
	_tile_loadd(0, c, stride);
	_tile_loadd(1, c + 16, stride);
	_tile_loadd(2, c + lower, stride);
	_tile_loadd(3, c + lower + 16, stride);
}

#endif							/* GEMM_AMX_TILES_H */
