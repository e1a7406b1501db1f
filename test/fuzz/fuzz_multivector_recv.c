/*
 * fuzz_multivector_recv.c
 *	  libFuzzer harness for the multivector binary input (what
 *	  multivector_recv runs, src/multivector_parse.c): any bytes as the
 *	  received field.  Input is accepted only in its one canonical encoding,
 *	  so an accepted value re-encodes to exactly the input bytes, and it
 *	  round-trips through the text form.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multivector_parse.h"
#include "mv_fuzz_util.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int			nvec = 0;
	int			dim = 0;
	MvParseError err;
	float	   *x;
	uint8_t    *again;
	size_t		againlen;
	MvParseStatus st;

	st = mv_parse_binary_header(data, size, &nvec, &dim, &err);
	if (st != MVP_OK)
	{
		if (st < MVP_TOO_MANY_DIMS || st > MVP_BIN_NO_VECTOR)
			abort();			/* not a header error */
		return 0;
	}
	if (nvec < 1 || dim < 1 || (size_t) nvec * dim > MV_MAX_ELEMENTS)
		abort();
	/* as in multivector_recv: the length is checked before allocating */
	if (size - MV_BINARY_HEADER_SIZE != (size_t) nvec * dim * sizeof(float))
	{
		if (mv_parse_binary_data(data + MV_BINARY_HEADER_SIZE,
								 size - MV_BINARY_HEADER_SIZE,
								 nvec, dim, NULL, &err) != MVP_BIN_LENGTH)
			abort();
		return 0;
	}
	x = malloc((size_t) nvec * dim * sizeof(float));
	if (x == NULL)
		abort();
	st = mv_parse_binary_data(data + MV_BINARY_HEADER_SIZE,
							  size - MV_BINARY_HEADER_SIZE, nvec, dim, x, &err);
	if (st == MVP_OK)
	{
		mv_fuzz_check_value(x, nvec, dim);
		again = mv_fuzz_encode_binary(x, nvec, dim, &againlen);
		if (againlen != size || memcmp(again, data, size) != 0)
			abort();
		free(again);
	}
	else if (st != MVP_NAN && st != MVP_INFINITE)
		abort();
	free(x);
	return 0;
}
