/*
 * multivector_parse.c
 *	  PostgreSQL-free parsers for the multivector text and binary forms
 *	  (formats in multivector.c's header comment, limits in
 *	  multivector_parse.h).  They return status codes; multivector.c reports
 *	  them.  Kept free of PostgreSQL so that libFuzzer targets can link them.
 */
#include "multivector_parse.h"
#include "mv_half.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * mv_isspace
 *		The whitespace PostgreSQL's scanner_isspace() accepts (not \v).
 */
static inline int
mv_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static inline const char *
skip_space(const char *p)
{
	while (mv_isspace(*p))
		p++;
	return p;
}

/*
 * fail
 *		Record a status in *err and return it.
 */
static MvParseStatus
fail(MvParseError *err, MvParseStatus status)
{
	err->status = status;
	return status;
}

/*
 * check_element
 *		NaN and infinities are not valid elements.
 */
static inline MvParseStatus
check_element(float val)
{
	if (isnan(val))
		return MVP_NAN;
	if (isinf(val))
		return MVP_INFINITE;
	return MVP_OK;
}

size_t
mv_text_max_elements(size_t len)
{
	size_t		n = len / 2 + 1;

	return n < MV_MAX_ELEMENTS ? n : MV_MAX_ELEMENTS;
}

/*
 * parse_text
 *		The text parser for float32 (out) or half (hout) elements: half
 *		elements are read as double and rounded once to half, so that no
 *		double rounding through float32 can move a value.
 */
static MvParseStatus
parse_text(const char *lit, float *out, uint16_t *hout, size_t cap,
		   int *nvec_out, int *dim_out, MvParseError *err)
{
	const char *p = lit;
	size_t		n = 0;
	int			dim = 0;
	int			nvec = 0;

	memset(err, 0, sizeof(*err));

	p = skip_space(p);
	if (*p != '[')
		return fail(err, MVP_SYNTAX_START);
	p = skip_space(p + 1);
	if (*p == ']')
		return fail(err, MVP_SYNTAX_NO_ROWS);

	for (;;)
	{
		int			count = 0;

		/* one row */
		if (*p != '[')
			return fail(err, MVP_SYNTAX_ROW_START);
		p = skip_space(p + 1);
		if (*p == ']')
			return fail(err, MVP_SYNTAX_EMPTY_ROW);
		if (nvec + 1 > MV_MAX_VECTORS)
			return fail(err, MVP_TOO_MANY_VECTORS);

		for (;;)
		{
			char	   *end;
			float		val;
			double		dval = 0.0;
			MvParseStatus st;

			if (*p == '\0' || *p == ',' || *p == ']' || *p == '[')
				return fail(err, MVP_SYNTAX_NUMBER);
			errno = 0;
			if (hout)
			{
				dval = strtod(p, &end);
				val = (float) dval;
			}
			else
				val = strtof(p, &end);
			if (end == p)
				return fail(err, MVP_SYNTAX_NUMBER);
			if (errno == ERANGE && (val == 0.0f || isinf(val)))
			{
				err->token_start = p - lit;
				err->token_len = end - p;
				return fail(err, MVP_OUT_OF_RANGE);
			}
			/* a finite double too large for float is a half overflow */
			st = check_element(hout && !isnan(dval) && !isinf(dval) ? 0.0f : val);
			if (st != MVP_OK)
				return fail(err, st);

			count++;
			if (nvec == 0)
			{
				if (count > MV_MAX_DIM)
					return fail(err, MVP_TOO_MANY_DIMS);
			}
			else if (count > dim)
			{
				err->row = nvec + 1;
				err->dim = dim;
				return fail(err, MVP_SYNTAX_ROW_LONGER);
			}
			if (n >= MV_MAX_ELEMENTS)
			{
				err->dim = dim;
				err->nvec = nvec + 1;
				return fail(err, MVP_TOO_MANY_ELEMENTS);
			}
			if (n >= cap)
				return fail(err, MVP_BUFFER_TOO_SMALL);
			if (hout)
			{
				if (mv_double_to_half(dval, &hout[n]) != 0)
				{
					err->token_start = p - lit;
					err->token_len = end - p;
					return fail(err, MVP_HALF_OVERFLOW);
				}
				n++;
			}
			else
				out[n++] = val;

			p = skip_space(end);
			if (*p == ',')
			{
				p = skip_space(p + 1);
				continue;
			}
			if (*p == ']')
				break;
			return fail(err, MVP_SYNTAX_AFTER_NUMBER);
		}

		if (nvec == 0)
			dim = count;
		else if (count != dim)
		{
			err->row = nvec + 1;
			err->dim = dim;
			return fail(err, MVP_SYNTAX_ROW_SHORTER);
		}
		nvec++;

		p = skip_space(p + 1);
		if (*p == ',')
		{
			p = skip_space(p + 1);
			continue;
		}
		if (*p == ']')
			break;
		return fail(err, MVP_SYNTAX_AFTER_ROW);
	}

	p = skip_space(p + 1);
	if (*p != '\0')
		return fail(err, MVP_SYNTAX_JUNK);

	*nvec_out = nvec;
	*dim_out = dim;
	return MVP_OK;
}

MvParseStatus
mv_parse_text(const char *lit, float *out, size_t cap,
			  int *nvec_out, int *dim_out, MvParseError *err)
{
	return parse_text(lit, out, NULL, cap, nvec_out, dim_out, err);
}

MvParseStatus
mv_parse_text_half(const char *lit, uint16_t *out, size_t cap,
				   int *nvec_out, int *dim_out, MvParseError *err)
{
	return parse_text(lit, NULL, out, cap, nvec_out, dim_out, err);
}

size_t
mv_bits_text_max_bytes(size_t len)
{
	return len + 1;
}

MvParseStatus
mv_parse_text_bits(const char *lit, uint8_t *out, size_t cap,
				   int *nvec_out, int *dim_out, MvParseError *err)
{
	const char *p = lit;
	size_t		n = 0;			/* bytes written */
	int			dim = 0;
	int			nvec = 0;

	memset(err, 0, sizeof(*err));

	p = skip_space(p);
	if (*p != '[')
		return fail(err, MVP_SYNTAX_START);
	p = skip_space(p + 1);
	if (*p == ']')
		return fail(err, MVP_SYNTAX_NO_ROWS);

	for (;;)
	{
		int			count = 0;
		size_t		row_start = n;

		if (*p != '0' && *p != '1')
			return fail(err, MVP_SYNTAX_BITS);
		if (nvec + 1 > MV_MAX_VECTORS)
			return fail(err, MVP_TOO_MANY_VECTORS);

		/* one row: a run of 0 and 1, character k = dimension k */
		while (*p == '0' || *p == '1')
		{
			count++;
			if (nvec == 0)
			{
				if (count > MV_MAX_DIM)
					return fail(err, MVP_TOO_MANY_DIMS);
			}
			else if (count > dim)
			{
				err->row = nvec + 1;
				err->dim = dim;
				return fail(err, MVP_SYNTAX_ROW_LONGER);
			}
			if ((size_t) nvec * (nvec == 0 ? 0 : dim) + count > MV_MAX_ELEMENTS)
			{
				err->dim = dim;
				err->nvec = nvec + 1;
				return fail(err, MVP_TOO_MANY_ELEMENTS);
			}
			if ((count - 1) % 8 == 0)
			{
				if (n >= cap)
					return fail(err, MVP_BUFFER_TOO_SMALL);
				out[n++] = 0;
			}
			if (*p == '1')
				out[row_start + (count - 1) / 8] |= (uint8_t) (0x80 >> ((count - 1) % 8));
			p++;
		}

		if (nvec == 0)
			dim = count;
		else if (count != dim)
		{
			err->row = nvec + 1;
			err->dim = dim;
			return fail(err, MVP_SYNTAX_ROW_SHORTER);
		}
		nvec++;

		p = skip_space(p);
		if (*p == ',')
		{
			p = skip_space(p + 1);
			continue;
		}
		if (*p == ']')
			break;
		return fail(err, MVP_SYNTAX_AFTER_ROW);
	}

	p = skip_space(p + 1);
	if (*p != '\0')
		return fail(err, MVP_SYNTAX_JUNK);

	*nvec_out = nvec;
	*dim_out = dim;
	return MVP_OK;
}

/* Big-endian readers. */
static inline uint32_t
read_be32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) |
		((uint32_t) p[2] << 8) | (uint32_t) p[3];
}

static inline uint16_t
read_be16(const uint8_t *p)
{
	return (uint16_t) (((unsigned) p[0] << 8) | (unsigned) p[1]);
}

MvParseStatus
mv_parse_binary_header(const uint8_t *data, size_t len,
					   int *nvec_out, int *dim_out, MvParseError *err)
{
	return mv_parse_binary_header_format(data, len, MV_FORMAT_FLOAT32,
										 nvec_out, dim_out, err);
}

MvParseStatus
mv_parse_binary_header_format(const uint8_t *data, size_t len, int want,
							  int *nvec_out, int *dim_out, MvParseError *err)
{
	int			dim;
	int			format;
	int			flags;
	int32_t		nvec;
	int32_t		reserved;

	memset(err, 0, sizeof(*err));
	if (len < MV_BINARY_HEADER_SIZE)
	{
		err->nbytes = len;
		return fail(err, MVP_BIN_SHORT_HEADER);
	}
	dim = read_be16(data);
	format = data[2];
	flags = data[3];
	nvec = (int32_t) read_be32(data + 4);
	reserved = (int32_t) read_be32(data + 8);
	err->dim = dim;
	err->nvec = nvec;
	err->format = format;

	if (format != want)
		return fail(err, MVP_BIN_FORMAT);
	if (flags != 0 || reserved != 0)
		return fail(err, MVP_BIN_RESERVED);
	if (dim < 1)
		return fail(err, MVP_BIN_NO_DIM);
	if (nvec < 1)
		return fail(err, MVP_BIN_NO_VECTOR);
	if (dim > MV_MAX_DIM)
		return fail(err, MVP_TOO_MANY_DIMS);
	if (nvec > MV_MAX_VECTORS)
		return fail(err, MVP_TOO_MANY_VECTORS);
	if ((size_t) nvec * (size_t) dim > MV_MAX_ELEMENTS)
		return fail(err, MVP_TOO_MANY_ELEMENTS);

	*nvec_out = nvec;
	*dim_out = dim;
	return MVP_OK;
}

MvParseStatus
mv_parse_binary_data(const uint8_t *data, size_t len, int nvec, int dim,
					 float *out, MvParseError *err)
{
	size_t		n = (size_t) nvec * (size_t) dim;
	size_t		i;

	memset(err, 0, sizeof(*err));
	err->nvec = nvec;
	err->dim = dim;
	if (len != n * sizeof(float))
	{
		err->nbytes = len;
		return fail(err, MVP_BIN_LENGTH);
	}
	for (i = 0; i < n; i++)
	{
		union
		{
			uint32_t	u;
			float		f;
		}			v;
		MvParseStatus st;

		v.u = read_be32(data + i * sizeof(float));
		st = check_element(v.f);
		if (st != MVP_OK)
			return fail(err, st);
		out[i] = v.f;
	}
	return MVP_OK;
}

MvParseStatus
mv_parse_binary_half(const uint8_t *data, size_t len, int nvec, int dim,
					 uint16_t *out, MvParseError *err)
{
	size_t		n = (size_t) nvec * (size_t) dim;
	size_t		i;

	memset(err, 0, sizeof(*err));
	err->nvec = nvec;
	err->dim = dim;
	if (len != n * sizeof(uint16_t))
	{
		err->nbytes = len;
		return fail(err, MVP_BIN_LENGTH);
	}
	for (i = 0; i < n; i++)
	{
		uint16_t	h = read_be16(data + i * sizeof(uint16_t));

		if (!mv_half_is_finite(h))
			return fail(err, (h & 0x3ff) ? MVP_NAN : MVP_INFINITE);
		out[i] = h;
	}
	return MVP_OK;
}

MvParseStatus
mv_parse_binary_bits(const uint8_t *data, size_t len, int nvec, int dim,
					 uint8_t *out, MvParseError *err)
{
	size_t		rb = MV_BIT_ROW_BYTES(dim);
	uint8_t		padmask = (uint8_t) (dim % 8 ? 0xff >> (dim % 8) : 0);
	int			i;

	memset(err, 0, sizeof(*err));
	err->nvec = nvec;
	err->dim = dim;
	if (len != (size_t) nvec * rb)
	{
		err->nbytes = len;
		return fail(err, MVP_BIN_LENGTH);
	}
	for (i = 0; i < nvec; i++)
	{
		if (data[i * rb + rb - 1] & padmask)
		{
			err->row = i + 1;
			return fail(err, MVP_BIN_PADDING);
		}
	}
	memcpy(out, data, len);
	return MVP_OK;
}
