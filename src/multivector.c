/*
 * multivector.c
 *	  The multivector type: text and binary I/O, typmod, casts and the small
 *	  functions dims(), num_vectors() and l2_normalize().
 *
 * Text form: '[[x,y,...],[x,y,...],...]', one inner list per row, every row
 * with the same number of elements.  Whitespace is allowed around brackets,
 * commas and numbers; numbers are anything strtof() reads (decimal with an
 * optional exponent).  Output uses the shortest text that reads back to the
 * same float32 bits, so text dump and restore is bit-exact (denormals,
 * +-3.4028235e38 and -0 included).
 *
 * Binary (network) form, big-endian, read and checked by multivector_recv as
 * strictly as the text input:
 *	 int16 dim (1 .. MV_MAX_DIM), int8 format (0 = float32), int8 flags (0),
 *	 int32 nvec (1 .. MV_MAX_VECTORS), int32 reserved (0),
 *	 then nvec*dim float4, row-major; nothing may follow.
 *
 * Errors: malformed text 22P02 (invalid_text_representation), malformed
 * binary 22P03 (invalid_binary_representation), NaN or infinite element
 * 22023 (invalid_parameter_value), element outside the float4 range 22003
 * (numeric_value_out_of_range), D or N above the limits 54000
 * (program_limit_exceeded), dimensions not matching a typmod or the other
 * operand 22000 (data_exception).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "parser/scansup.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "multivector.h"

PG_FUNCTION_INFO_V1(multivector_in);
PG_FUNCTION_INFO_V1(multivector_out);
PG_FUNCTION_INFO_V1(multivector_typmod_in);
PG_FUNCTION_INFO_V1(multivector_typmod_out);
PG_FUNCTION_INFO_V1(multivector_recv);
PG_FUNCTION_INFO_V1(multivector_send);
PG_FUNCTION_INFO_V1(multivector);
PG_FUNCTION_INFO_V1(array_to_multivector);
PG_FUNCTION_INFO_V1(float8_array_to_multivector);
PG_FUNCTION_INFO_V1(multivector_to_float4_array);
PG_FUNCTION_INFO_V1(multivector_dims);
PG_FUNCTION_INFO_V1(multivector_num_vectors);
PG_FUNCTION_INFO_V1(multivector_l2_normalize);

/*
 * InitMultiVector
 *		Allocate a zero-filled nvec x dim multivector in the current memory
 *		context.  The caller has checked the limits.
 */
MultiVector *
InitMultiVector(int nvec, int dim)
{
	Size		size = MV_SIZE(nvec, dim);
	MultiVector *result;

	Assert(nvec >= 1 && nvec <= MV_MAX_VECTORS);
	Assert(dim >= 1 && dim <= MV_MAX_DIM);

	result = (MultiVector *) palloc0(size);
	SET_VARSIZE(result, size);
	result->dim = dim;
	result->format = MV_FORMAT_FLOAT32;
	result->flags = 0;
	result->nvec = nvec;
	result->reserved = 0;
	return result;
}

/*
 * CheckDimLimit, CheckNvecLimit
 *		Enforce the documented size limits.
 */
static void
CheckDimLimit(long dim)
{
	if (dim > MV_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("multivector cannot have more than %d dimensions",
						MV_MAX_DIM)));
}

static void
CheckNvecLimit(long nvec)
{
	if (nvec > MV_MAX_VECTORS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("multivector cannot have more than %d vectors",
						MV_MAX_VECTORS)));
}

/*
 * CheckTypmod
 *		A declared multivector(D) accepts only values with D dimensions.
 */
static void
CheckTypmod(int dim, int32 typmod)
{
	if (typmod != -1 && dim != typmod)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", typmod, dim)));
}

/*
 * CheckElement
 *		NaN and infinities are not valid elements.
 */
static inline void
CheckElement(float val)
{
	if (unlikely(isnan(val)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("NaN not allowed in multivector")));
	if (unlikely(isinf(val)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("infinite value not allowed in multivector")));
}

/*
 * MultiVectorCheckFormat
 *		Only float32 elements exist in this version; anything else on disk is
 *		corruption (in and recv never produce it).
 */
void
MultiVectorCheckFormat(const MultiVector *mv)
{
	if (mv->format != MV_FORMAT_FLOAT32 || mv->flags != 0 ||
		mv->dim < 1 || mv->dim > MV_MAX_DIM ||
		mv->nvec < 1 || mv->nvec > MV_MAX_VECTORS ||
		VARSIZE_ANY(mv) != MV_SIZE(mv->nvec, mv->dim))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid multivector header"),
				 errdetail("Format %d, flags %d, %d vectors of %d dimensions in %zu bytes.",
						   mv->format, mv->flags, mv->nvec, mv->dim,
						   (Size) VARSIZE_ANY(mv))));
}

static void SyntaxError(const char *lit, const char *detail) pg_attribute_noreturn();

/*
 * SyntaxError
 *		Report malformed multivector text.
 */
static void
SyntaxError(const char *lit, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type multivector: \"%s\"", lit),
			 errdetail_internal("%s", detail)));
}

/* Skip whitespace. */
static inline char *
SkipSpace(char *p)
{
	while (scanner_isspace(*p))
		p++;
	return p;
}

/*
 * multivector_in
 *		Parse '[[x,...],...]'.  Limits are checked while parsing, so huge
 *		input fails before it is stored.
 */
Datum
multivector_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	char	   *p = lit;
	float	   *buf;
	Size		cap = 1024;
	Size		n = 0;
	int			dim = 0;
	int			nvec = 0;
	MultiVector *result;

	buf = palloc(cap * sizeof(float));

	p = SkipSpace(p);
	if (*p != '[')
		SyntaxError(lit, "Multivector contents must start with \"[\".");
	p = SkipSpace(p + 1);
	if (*p == ']')
		SyntaxError(lit, "A multivector must have at least one row.");

	for (;;)
	{
		int			count = 0;

		/* one row */
		if (*p != '[')
			SyntaxError(lit, "Each row must start with \"[\".");
		p = SkipSpace(p + 1);
		if (*p == ']')
			SyntaxError(lit, "A row must have at least one element.");
		CheckNvecLimit((long) nvec + 1);

		for (;;)
		{
			char	   *end;
			float		val;

			if (*p == '\0' || *p == ',' || *p == ']' || *p == '[')
				SyntaxError(lit, "Expected a number.");
			errno = 0;
			val = strtof(p, &end);
			if (end == p)
				SyntaxError(lit, "Expected a number.");
			if (errno == ERANGE && (val == 0.0f || isinf(val)))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("\"%s\" is out of range for type real",
								pnstrdup(p, end - p))));
			CheckElement(val);

			count++;
			if (nvec == 0)
				CheckDimLimit(count);
			else if (count > dim)
				SyntaxError(lit, psprintf("Row %d is longer than row 1, which has %d elements.",
										  nvec + 1, dim));
			if (n == cap)
			{
				cap *= 2;
				buf = repalloc_huge(buf, cap * sizeof(float));
			}
			buf[n++] = val;

			p = SkipSpace(end);
			if (*p == ',')
			{
				p = SkipSpace(p + 1);
				continue;
			}
			if (*p == ']')
				break;
			SyntaxError(lit, "Expected \",\" or \"]\" after a number.");
		}

		if (nvec == 0)
			dim = count;
		else if (count != dim)
			SyntaxError(lit, psprintf("Row %d is shorter than row 1, which has %d elements.",
									  nvec + 1, dim));
		nvec++;

		p = SkipSpace(p + 1);
		if (*p == ',')
		{
			p = SkipSpace(p + 1);
			continue;
		}
		if (*p == ']')
			break;
		SyntaxError(lit, "Expected \",\" or \"]\" after a row.");
	}

	p = SkipSpace(p + 1);
	if (*p != '\0')
		SyntaxError(lit, "Junk after closing right bracket.");

	CheckTypmod(dim, typmod);

	result = InitMultiVector(nvec, dim);
	memcpy(result->x, buf, n * sizeof(float));
	pfree(buf);
	PG_RETURN_MULTIVECTOR_P(result);
}

/*
 * multivector_out
 *		Shortest round-trip text for every element.
 */
Datum
multivector_out(PG_FUNCTION_ARGS)
{
	MultiVector *mv = PG_GETARG_MULTIVECTOR_P(0);
	Size		total;
	Size		rowlen;
	char	   *buf;
	char	   *p;
	int			i;
	int			k;

	MultiVectorCheckFormat(mv);

	/* each element: at most FLOAT_SHORTEST_DECIMAL_LEN - 1 chars plus ',' */
	rowlen = add_size(mul_size(mv->dim, FLOAT_SHORTEST_DECIMAL_LEN), 2);
	total = add_size(mul_size(mv->nvec, rowlen + 1), 3);
	if (total > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("multivector of %d vectors of %d dimensions is too large for text output",
						mv->nvec, mv->dim),
				 errhint("Use the binary format, e.g. COPY ... (FORMAT binary).")));

	p = buf = palloc(total);
	*p++ = '[';
	for (i = 0; i < mv->nvec; i++)
	{
		const float *row = MV_ROW(mv, i);

		if (i > 0)
			*p++ = ',';
		*p++ = '[';
		for (k = 0; k < mv->dim; k++)
		{
			if (k > 0)
				*p++ = ',';
			p += float_to_shortest_decimal_bufn(row[k], p);
		}
		*p++ = ']';
	}
	*p++ = ']';
	*p = '\0';

	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_CSTRING(buf);
}

/*
 * multivector_typmod_in
 *		multivector(D): D is the number of dimensions, 1 .. MV_MAX_DIM.
 */
Datum
multivector_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType  *ta = PG_GETARG_ARRAYTYPE_P(0);
	int32	   *tl;
	int			n;

	tl = ArrayGetIntegerTypmods(ta, &n);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid type modifier"),
				 errdetail("Type multivector takes one modifier, the number of dimensions.")));
	if (tl[0] < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type multivector must be at least 1")));
	if (tl[0] > MV_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type multivector cannot exceed %d",
						MV_MAX_DIM)));
	PG_RETURN_INT32(tl[0]);
}

/*
 * multivector_typmod_out
 *		Print the typmod as "(D)".
 */
Datum
multivector_typmod_out(PG_FUNCTION_ARGS)
{
	int32		typmod = PG_GETARG_INT32(0);

	if (typmod < 0)
		PG_RETURN_CSTRING(pstrdup(""));
	PG_RETURN_CSTRING(psprintf("(%d)", typmod));
}

/*
 * multivector_recv
 *		Binary input (format in the file header); as strict as text input.
 */
Datum
multivector_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int			dim;
	int			format;
	int			flags;
	int32		nvec;
	int32		reserved;
	MultiVector *result;
	Size		i;
	Size		n;

	if (buf->len - buf->cursor < 12)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("multivector binary data has %d bytes, fewer than its 12-byte header",
						buf->len - buf->cursor)));
	dim = (int) pq_getmsgint(buf, 2);
	format = pq_getmsgbyte(buf);
	flags = pq_getmsgbyte(buf);
	nvec = (int32) pq_getmsgint(buf, 4);
	reserved = (int32) pq_getmsgint(buf, 4);

	if (format != MV_FORMAT_FLOAT32)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("unsupported multivector element format %d", format)));
	if (flags != 0 || reserved != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("reserved multivector header fields must be zero")));
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("multivector must have at least one dimension")));
	if (nvec < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("multivector must have at least one vector")));
	CheckDimLimit(dim);
	CheckNvecLimit(nvec);
	CheckTypmod(dim, typmod);

	n = (Size) nvec * dim;
	if ((Size) (buf->len - buf->cursor) != n * sizeof(float))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("multivector binary data has %d bytes, expected %zu for %d vectors of %d dimensions",
						buf->len - buf->cursor, n * sizeof(float), nvec, dim)));

	result = InitMultiVector(nvec, dim);
	for (i = 0; i < n; i++)
	{
		result->x[i] = pq_getmsgfloat4(buf);
		CheckElement(result->x[i]);
	}
	PG_RETURN_MULTIVECTOR_P(result);
}

/*
 * multivector_send
 *		Binary output (format in the file header).
 */
Datum
multivector_send(PG_FUNCTION_ARGS)
{
	MultiVector *mv = PG_GETARG_MULTIVECTOR_P(0);
	StringInfoData buf;
	Size		n = (Size) mv->nvec * mv->dim;
	Size		i;

	MultiVectorCheckFormat(mv);
	pq_begintypsend(&buf);
	enlargeStringInfo(&buf, 12 + n * sizeof(float));
	pq_sendint16(&buf, mv->dim);
	pq_sendbyte(&buf, mv->format);
	pq_sendbyte(&buf, mv->flags);
	pq_sendint32(&buf, mv->nvec);
	pq_sendint32(&buf, 0);
	for (i = 0; i < n; i++)
		pq_sendfloat4(&buf, mv->x[i]);
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * MultiVectorHeader
 *		Fetch only the 16-byte header: with STORAGE external the value is
 *		stored uncompressed, so this reads one TOAST chunk, not the matrix.
 */
static MultiVector *
MultiVectorHeader(Datum d)
{
	return (MultiVector *) PG_DETOAST_DATUM_SLICE(d, 0, MV_HEADER_SIZE - VARHDRSZ);
}

/*
 * multivector
 *		Length-coercion cast multivector -> multivector(D): checks D.
 */
Datum
multivector(PG_FUNCTION_ARGS)
{
	int32		typmod = PG_GETARG_INT32(1);

	if (typmod != -1)
		CheckTypmod(MultiVectorHeader(PG_GETARG_DATUM(0))->dim, typmod);
	PG_RETURN_DATUM(PG_GETARG_DATUM(0));
}

/*
 * ArrayShape
 *		Check that an array is 2-D without NULLs and within the limits;
 *		return its N and D.
 */
static void
ArrayShape(ArrayType *arr, int *nvec, int *dim)
{
	if (ARR_NDIM(arr) != 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("array must be two-dimensional"),
				 errdetail("A multivector is cast from an array of N rows of D elements; this array has %d dimensions.",
						   ARR_NDIM(arr))));
	if (array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("array must not contain nulls")));
	*nvec = ARR_DIMS(arr)[0];
	*dim = ARR_DIMS(arr)[1];
	CheckDimLimit(*dim);
	CheckNvecLimit(*nvec);
}

/*
 * array_to_multivector
 *		Cast real[][] -> multivector.
 */
Datum
array_to_multivector(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	int			nvec;
	int			dim;
	MultiVector *result;
	const float *src;
	Size		n;
	Size		i;

	if (ARR_ELEMTYPE(arr) != FLOAT4OID)
		elog(ERROR, "array_to_multivector expects real[], got type %u",
			 ARR_ELEMTYPE(arr));
	ArrayShape(arr, &nvec, &dim);
	CheckTypmod(dim, typmod);

	result = InitMultiVector(nvec, dim);
	n = (Size) nvec * dim;
	src = (const float *) ARR_DATA_PTR(arr);
	for (i = 0; i < n; i++)
	{
		CheckElement(src[i]);
		result->x[i] = src[i];
	}
	PG_RETURN_MULTIVECTOR_P(result);
}

/*
 * float8_array_to_multivector
 *		Cast double precision[][] -> multivector; each element must fit in
 *		float4, as for the float8 -> real cast.
 */
Datum
float8_array_to_multivector(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	int			nvec;
	int			dim;
	MultiVector *result;
	const float8 *src;
	Size		n;
	Size		i;

	if (ARR_ELEMTYPE(arr) != FLOAT8OID)
		elog(ERROR, "float8_array_to_multivector expects double precision[], got type %u",
			 ARR_ELEMTYPE(arr));
	ArrayShape(arr, &nvec, &dim);
	CheckTypmod(dim, typmod);

	result = InitMultiVector(nvec, dim);
	n = (Size) nvec * dim;
	src = (const float8 *) ARR_DATA_PTR(arr);
	for (i = 0; i < n; i++)
	{
		float8		d = src[i];
		float		f;

		if (isnan(d) || isinf(d))
			CheckElement((float) d);
		f = (float) d;
		if (isinf(f) || (f == 0.0f && d != 0.0))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("value out of range: %s",
							isinf(f) ? "overflow" : "underflow"),
					 errdetail("Element %zu (%g) does not fit in type real.",
							   i + 1, d)));
		result->x[i] = f;
	}
	PG_RETURN_MULTIVECTOR_P(result);
}

/*
 * multivector_to_float4_array
 *		Cast multivector -> real[][] (N rows of D elements).
 */
Datum
multivector_to_float4_array(PG_FUNCTION_ARGS)
{
	MultiVector *mv = PG_GETARG_MULTIVECTOR_P(0);
	Size		n = (Size) mv->nvec * mv->dim;
	Datum	   *elems;
	int			dims[2];
	int			lbs[2] = {1, 1};
	ArrayType  *result;
	Size		i;

	MultiVectorCheckFormat(mv);
	elems = palloc(n * sizeof(Datum));
	for (i = 0; i < n; i++)
		elems[i] = Float4GetDatum(mv->x[i]);
	dims[0] = mv->nvec;
	dims[1] = mv->dim;
	result = construct_md_array(elems, NULL, 2, dims, lbs, FLOAT4OID,
								sizeof(float4), true, TYPALIGN_INT);
	pfree(elems);
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_ARRAYTYPE_P(result);
}

/*
 * multivector_dims
 *		D, the number of dimensions of each row.
 */
Datum
multivector_dims(PG_FUNCTION_ARGS)
{
	MultiVector *mv = MultiVectorHeader(PG_GETARG_DATUM(0));

	PG_RETURN_INT32(mv->dim);
}

/*
 * multivector_num_vectors
 *		N, the number of rows.
 */
Datum
multivector_num_vectors(PG_FUNCTION_ARGS)
{
	MultiVector *mv = MultiVectorHeader(PG_GETARG_DATUM(0));

	PG_RETURN_INT32(mv->nvec);
}

/*
 * multivector_l2_normalize
 *		Scale every row to unit L2 norm (norm computed in double); all-zero
 *		rows stay zero.
 */
Datum
multivector_l2_normalize(PG_FUNCTION_ARGS)
{
	MultiVector *mv = PG_GETARG_MULTIVECTOR_P(0);
	MultiVector *result;
	int			i;
	int			k;

	MultiVectorCheckFormat(mv);
	result = InitMultiVector(mv->nvec, mv->dim);
	for (i = 0; i < mv->nvec; i++)
	{
		const float *src = MV_ROW(mv, i);
		float	   *dst = MV_ROW(result, i);
		double		ss = 0.0;

		for (k = 0; k < mv->dim; k++)
			ss += (double) src[k] * src[k];
		if (ss > 0.0)
		{
			double		norm = sqrt(ss);

			for (k = 0; k < mv->dim; k++)
				dst[k] = (float) (src[k] / norm);
		}
	}
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_MULTIVECTOR_P(result);
}
