/*
 * fuzz_multivector_text.c
 *	  libFuzzer harness for mv_parse_text, the multivector text input
 *	  (src/multivector_parse.c): any bytes up to the first NUL as the text.
 *	  A buffer of mv_text_max_elements() floats must always be enough; an
 *	  accepted value must satisfy the limits and round-trip through text and
 *	  the binary form; an out-of-range number must lie inside the input.
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
	char	   *lit = malloc(size + 1);
	size_t		len;
	size_t		cap;
	float	   *x;
	int			nvec = 0;
	int			dim = 0;
	MvParseError err;
	MvParseStatus st;

	if (lit == NULL)
		abort();
	memcpy(lit, data, size);
	lit[size] = '\0';
	len = strlen(lit);
	cap = mv_text_max_elements(len);
	x = malloc(cap * sizeof(float));
	if (x == NULL)
		abort();

	st = mv_parse_text(lit, x, cap, &nvec, &dim, &err);
	if (st != err.status && st != MVP_OK)
		abort();
	switch (st)
	{
		case MVP_OK:
			mv_fuzz_check_value(x, nvec, dim);
			break;
		case MVP_OUT_OF_RANGE:
			if (err.token_len == 0 || err.token_start > len ||
				err.token_len > len - err.token_start)
				abort();
			break;
		case MVP_SYNTAX_ROW_LONGER:
		case MVP_SYNTAX_ROW_SHORTER:
			if (err.row < 2 || err.dim < 1 || err.dim > MV_MAX_DIM)
				abort();
			break;
		case MVP_BUFFER_TOO_SMALL:
		case MVP_BIN_SHORT_HEADER:
		case MVP_BIN_FORMAT:
		case MVP_BIN_RESERVED:
		case MVP_BIN_NO_DIM:
		case MVP_BIN_NO_VECTOR:
		case MVP_BIN_LENGTH:
			abort();			/* never from text input */
		default:
			break;
	}
	free(x);
	free(lit);
	return 0;
}
