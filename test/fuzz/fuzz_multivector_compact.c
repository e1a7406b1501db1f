/*
 * fuzz_multivector_compact.c
 *	  libFuzzer harness for the halfmultivector and bitmultivector parsers
 *	  (src/multivector_parse.c): the input as half text, as bit text, and as
 *	  a binary value of either format.  The documented buffer sizes must
 *	  always be enough; accepted half values hold only finite halves,
 *	  accepted bit values zero padding bits and a shape within the limits;
 *	  an overflowing number must lie inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multivector_parse.h"
#include "mv_half.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
CheckShape(int nvec, int dim)
{
	if (nvec < 1 || nvec > MV_MAX_VECTORS || dim < 1 || dim > MV_MAX_DIM ||
		(size_t) nvec * dim > MV_MAX_ELEMENTS)
		abort();
}

static void
CheckBits(const uint8_t *bits, int nvec, int dim)
{
	size_t		rb = MV_BIT_ROW_BYTES(dim);
	int			i;

	CheckShape(nvec, dim);
	for (i = 0; i < nvec; i++)
		if (dim % 8 && (bits[i * rb + rb - 1] & (0xff >> (dim % 8))))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *lit = malloc(size + 1);
	size_t		len;
	size_t		cap;
	uint16_t   *h;
	uint8_t    *b;
	int			nvec = 0;
	int			dim = 0;
	MvParseError err;
	MvParseStatus st;
	size_t		i;

	if (lit == NULL)
		abort();
	memcpy(lit, data, size);
	lit[size] = '\0';
	len = strlen(lit);

	/* half text */
	cap = mv_text_max_elements(len);
	h = malloc(cap * sizeof(uint16_t));
	if (h == NULL)
		abort();
	st = mv_parse_text_half(lit, h, cap, &nvec, &dim, &err);
	if (st == MVP_BUFFER_TOO_SMALL || (st != MVP_OK && st != err.status))
		abort();
	if (st == MVP_OK)
	{
		CheckShape(nvec, dim);
		for (i = 0; i < (size_t) nvec * dim; i++)
			if (!mv_half_is_finite(h[i]))
				abort();
	}
	if (st == MVP_HALF_OVERFLOW &&
		(err.token_len == 0 || err.token_start > len || err.token_len > len - err.token_start))
		abort();
	free(h);

	/* bit text */
	cap = mv_bits_text_max_bytes(len);
	b = malloc(cap);
	if (b == NULL)
		abort();
	st = mv_parse_text_bits(lit, b, cap, &nvec, &dim, &err);
	if (st == MVP_BUFFER_TOO_SMALL || (st != MVP_OK && st != err.status))
		abort();
	if (st == MVP_OK)
		CheckBits(b, nvec, dim);
	free(b);
	free(lit);

	/* binary forms: the header's own format byte picks the parser */
	if (size >= MV_BINARY_HEADER_SIZE && (data[2] == MV_FORMAT_HALF || data[2] == MV_FORMAT_BINARY))
	{
		int			format = data[2];

		st = mv_parse_binary_header_format(data, size, format, &nvec, &dim, &err);
		if (st == MVP_OK)
		{
			size_t		want = format == MV_FORMAT_HALF ? (size_t) nvec * dim * 2 :
				(size_t) nvec * MV_BIT_ROW_BYTES(dim);

			CheckShape(nvec, dim);
			if (size - MV_BINARY_HEADER_SIZE == want)
			{
				void	   *out = malloc(want ? want : 1);

				if (out == NULL)
					abort();
				if (format == MV_FORMAT_HALF)
				{
					st = mv_parse_binary_half(data + MV_BINARY_HEADER_SIZE, want, nvec, dim, out, &err);
					if (st == MVP_OK)
						for (i = 0; i < (size_t) nvec * dim; i++)
							if (!mv_half_is_finite(((uint16_t *) out)[i]))
								abort();
				}
				else
				{
					st = mv_parse_binary_bits(data + MV_BINARY_HEADER_SIZE, want, nvec, dim, out, &err);
					if (st == MVP_OK)
						CheckBits(out, nvec, dim);
				}
				free(out);
			}
		}
	}
	return 0;
}
