/*
 * mv_fuzz_util.h
 *	  Shared checks of the multivector fuzz targets: the binary encoding of a
 *	  parsed value, and the round trips every accepted value must survive.
 */
#ifndef MV_FUZZ_UTIL_H
#define MV_FUZZ_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multivector_parse.h"

/* The canonical binary form of nvec x dim floats (malloc'd, *len set). */
static uint8_t *
mv_fuzz_encode_binary(const float *x, int nvec, int dim, size_t *len)
{
	size_t		n = (size_t) nvec * dim;
	uint8_t    *b = malloc(MV_BINARY_HEADER_SIZE + n * 4);
	size_t		i;

	if (b == NULL)
		abort();
	b[0] = (uint8_t) (dim >> 8);
	b[1] = (uint8_t) dim;
	b[2] = MV_FORMAT_FLOAT32;
	b[3] = 0;
	b[4] = (uint8_t) ((uint32_t) nvec >> 24);
	b[5] = (uint8_t) ((uint32_t) nvec >> 16);
	b[6] = (uint8_t) ((uint32_t) nvec >> 8);
	b[7] = (uint8_t) nvec;
	memset(b + 8, 0, 4);
	for (i = 0; i < n; i++)
	{
		uint32_t	u;

		memcpy(&u, &x[i], 4);
		b[MV_BINARY_HEADER_SIZE + 4 * i] = (uint8_t) (u >> 24);
		b[MV_BINARY_HEADER_SIZE + 4 * i + 1] = (uint8_t) (u >> 16);
		b[MV_BINARY_HEADER_SIZE + 4 * i + 2] = (uint8_t) (u >> 8);
		b[MV_BINARY_HEADER_SIZE + 4 * i + 3] = (uint8_t) u;
	}
	*len = MV_BINARY_HEADER_SIZE + n * 4;
	return b;
}

/*
 * mv_fuzz_check_value
 *		Invariants of an accepted value: shape within the limits, finite
 *		elements; its "%.9g" text and its binary form parse back to the same
 *		bits (9 significant digits identify every float32).
 */
static void
mv_fuzz_check_value(const float *x, int nvec, int dim)
{
	size_t		n = (size_t) nvec * dim;
	size_t		i;
	char	   *text;
	char	   *p;
	float	   *back;
	size_t		cap;
	int			bn,
				bd;
	uint8_t    *bin;
	size_t		binlen;
	MvParseError err;

	if (nvec < 1 || dim < 1 || nvec > MV_MAX_VECTORS || dim > MV_MAX_DIM ||
		n > MV_MAX_ELEMENTS)
		abort();
	for (i = 0; i < n; i++)
		if (!isfinite(x[i]))
			abort();

	/* text round trip */
	p = text = malloc(n * 18 + (size_t) nvec * 3 + 3);
	if (text == NULL)
		abort();
	*p++ = '[';
	for (i = 0; i < n; i++)
	{
		if (i % dim == 0)
			p += sprintf(p, "%s[", i > 0 ? "],": "");
		else
			*p++ = ',';
		p += sprintf(p, "%.9g", (double) x[i]);
	}
	strcpy(p, "]]");
	cap = mv_text_max_elements(strlen(text));
	back = malloc(cap * sizeof(float) + 1);
	if (back == NULL)
		abort();
	if (mv_parse_text(text, back, cap, &bn, &bd, &err) != MVP_OK ||
		bn != nvec || bd != dim || memcmp(back, x, n * sizeof(float)) != 0)
		abort();
	free(text);

	/* binary round trip */
	bin = mv_fuzz_encode_binary(x, nvec, dim, &binlen);
	if (mv_parse_binary_header(bin, binlen, &bn, &bd, &err) != MVP_OK ||
		bn != nvec || bd != dim ||
		mv_parse_binary_data(bin + MV_BINARY_HEADER_SIZE,
							 binlen - MV_BINARY_HEADER_SIZE,
							 bn, bd, back, &err) != MVP_OK ||
		memcmp(back, x, n * sizeof(float)) != 0)
		abort();
	free(bin);
	free(back);
}

#endif							/* MV_FUZZ_UTIL_H */
