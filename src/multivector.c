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
 * The parsing itself (text -> floats and shape, binary buffer -> floats) is
 * PostgreSQL-free, in multivector_parse.c, so that it can be fuzzed; this
 * file turns its status codes into errors.
 *
 * Errors: malformed text 22P02 (invalid_text_representation), malformed
 * binary 22P03 (invalid_binary_representation), NaN or infinite element
 * 22023 (invalid_parameter_value), element outside the float4 range 22003
 * (numeric_value_out_of_range), D, N or N * D above the limits 54000
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
#include "storage/shmem.h"		/* add_size, mul_size */
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
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
	return InitMultiVectorFormat(nvec, dim, MV_FORMAT_FLOAT32);
}

/*
 * InitMultiVectorFormat
 *		Allocate a zero-filled nvec x dim value of any of the three formats.
 */
MultiVector *
InitMultiVectorFormat(int nvec, int dim, int format)
{
	Size		size = format == MV_FORMAT_HALF ? MV_HALF_SIZE(nvec, dim) :
		format == MV_FORMAT_BINARY ? MV_BIT_SIZE(nvec, dim) : MV_SIZE(nvec, dim);
	MultiVector *result;

	Assert(nvec >= 1 && nvec <= MV_MAX_VECTORS);
	Assert(dim >= 1 && dim <= MV_MAX_DIM);

	result = (MultiVector *) palloc0(size);
	SET_VARSIZE(result, size);
	result->dim = dim;
	result->format = format;
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
void
MultiVectorCheckTypmod(int dim, int32 typmod)
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
 *		A multivector holds float32 elements; anything else on disk is
 *		corruption (in and recv never produce it).
 */
void
MultiVectorCheckFormat(const MultiVector *mv)
{
	MultiVectorCheckAnyFormat(mv, MV_FORMAT_FLOAT32);
}

/*
 * MultiVectorCheckAnyFormat
 *		The header check of all three types, for the expected format.
 */
void
MultiVectorCheckAnyFormat(const MultiVector *mv, int format)
{
	Size		expect = 0;

	if (mv->dim >= 1 && mv->dim <= MV_MAX_DIM &&
		mv->nvec >= 1 && mv->nvec <= MV_MAX_VECTORS)
		expect = format == MV_FORMAT_HALF ? MV_HALF_SIZE(mv->nvec, mv->dim) :
			format == MV_FORMAT_BINARY ? MV_BIT_SIZE(mv->nvec, mv->dim) :
			MV_SIZE(mv->nvec, mv->dim);
	if (mv->format != format || mv->flags != 0 || expect == 0 ||
		VARSIZE_ANY(mv) != expect)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid multivector header"),
				 errdetail("Format %d, flags %d, %d vectors of %d dimensions in %zu bytes.",
						   mv->format, mv->flags, mv->nvec, mv->dim,
						   (Size) VARSIZE_ANY(mv))));
}

pg_noreturn static void SyntaxError(const char *typname, const char *lit, const char *detail);

/*
 * SyntaxError
 *		Report malformed multivector (or sibling type) text.
 */
static void
SyntaxError(const char *typname, const char *lit, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type %s: \"%s\"", typname, lit),
			 errdetail_internal("%s", detail)));
}

/*
 * CheckElementCount
 *		N * D is bounded so that every value has a text form well under 1 GB
 *		(see multivector_parse.h).
 */
static void
CheckElementCount(Size nvec, Size dim)
{
	if (nvec * dim > MV_MAX_ELEMENTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("multivector cannot have more than %d elements",
						MV_MAX_ELEMENTS),
				 errdetail("%zu vectors of %zu dimensions have %zu elements.",
						   nvec, dim, nvec * dim)));
}

/*
 * ReportParseError
 *		ereport a status of the PostgreSQL-free parsers (multivector_parse.c)
 *		with its documented SQLSTATE.  `lit` is the text input, or NULL for
 *		binary input.
 */
pg_noreturn static void ReportParseError(const char *lit, const MvParseError *err);

static void
ReportParseError(const char *lit, const MvParseError *err)
{
	MultiVectorReportParseError("multivector", lit, err);
}

/*
 * MultiVectorReportParseError
 *		ReportParseError for any of the multivector types (`typname` names the
 *		type in syntax errors).
 */
void
MultiVectorReportParseError(const char *typname, const char *lit,
							const MvParseError *err)
{
	switch (err->status)
	{
		case MVP_SYNTAX_START:
			SyntaxError(typname, lit, "Multivector contents must start with \"[\".");
		case MVP_SYNTAX_NO_ROWS:
			SyntaxError(typname, lit, "A multivector must have at least one row.");
		case MVP_SYNTAX_ROW_START:
			SyntaxError(typname, lit, "Each row must start with \"[\".");
		case MVP_SYNTAX_EMPTY_ROW:
			SyntaxError(typname, lit, "A row must have at least one element.");
		case MVP_SYNTAX_NUMBER:
			SyntaxError(typname, lit, "Expected a number.");
		case MVP_SYNTAX_ROW_LONGER:
			SyntaxError(typname, lit, psprintf("Row %d is longer than row 1, which has %d elements.",
									  err->row, err->dim));
		case MVP_SYNTAX_AFTER_NUMBER:
			SyntaxError(typname, lit, "Expected \",\" or \"]\" after a number.");
		case MVP_SYNTAX_ROW_SHORTER:
			SyntaxError(typname, lit, psprintf("Row %d is shorter than row 1, which has %d elements.",
									  err->row, err->dim));
		case MVP_SYNTAX_AFTER_ROW:
			SyntaxError(typname, lit, "Expected \",\" or \"]\" after a row.");
		case MVP_SYNTAX_JUNK:
			SyntaxError(typname, lit, "Junk after closing right bracket.");
		case MVP_OUT_OF_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("\"%s\" is out of range for type real",
							pnstrdup(lit + err->token_start, err->token_len))));
			break;
		case MVP_NAN:
		case MVP_INFINITE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s not allowed in %s",
							err->status == MVP_NAN ? "NaN" : "infinite value", typname)));
			break;
		case MVP_TOO_MANY_DIMS:
			CheckDimLimit(MV_MAX_DIM + 1);
			break;
		case MVP_TOO_MANY_VECTORS:
			CheckNvecLimit(MV_MAX_VECTORS + 1);
			break;
		case MVP_TOO_MANY_ELEMENTS:
			if (lit != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("multivector cannot have more than %d elements",
								MV_MAX_ELEMENTS),
						 errdetail("Row %d of %d elements goes past the limit.",
								   err->nvec, err->dim)));
			CheckElementCount(err->nvec, err->dim);
			break;
		case MVP_BIN_SHORT_HEADER:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("multivector binary data has %d bytes, fewer than its 12-byte header",
							(int) err->nbytes)));
			break;
		case MVP_BIN_FORMAT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("unsupported multivector element format %d", err->format)));
			break;
		case MVP_BIN_RESERVED:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("reserved multivector header fields must be zero")));
			break;
		case MVP_BIN_NO_DIM:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("multivector must have at least one dimension")));
			break;
		case MVP_BIN_NO_VECTOR:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("multivector must have at least one vector")));
			break;
		case MVP_BIN_LENGTH:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("multivector binary data has %d bytes, expected %zu for %d vectors of %d dimensions",
							(int) err->nbytes,
							(Size) err->nvec * err->dim * sizeof(float),
							err->nvec, err->dim)));
			break;
		case MVP_HALF_OVERFLOW:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("\"%s\" is out of range for a half-precision element",
							pnstrdup(lit + err->token_start, err->token_len)),
					 errdetail("Half-precision elements lie between -65504 and 65504.")));
			break;
		case MVP_SYNTAX_BITS:
			SyntaxError(typname, lit, "Each row must be a run of \"0\" and \"1\" characters.");
		case MVP_BIN_PADDING:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("padding bits of bitmultivector row %d must be zero",
							err->row)));
			break;
		case MVP_OK:
		case MVP_BUFFER_TOO_SMALL:
			break;
	}
	elog(ERROR, "unexpected multivector parser status %d", (int) err->status);
	pg_unreachable();
}

/*
 * multivector_in
 *		Parse '[[x,...],...]' (multivector_parse.c).  Limits are checked while
 *		parsing, so huge input fails before it is stored.
 */
Datum
multivector_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	Size		cap = mv_text_max_elements(strlen(lit));
	int			dim;
	int			nvec;
	MvParseError err;
	MultiVector *result;

	/*
	 * Parse straight into a value with room for as many elements as the text
	 * can hold, then give back the unused tail: no second copy of the data.
	 */
	result = (MultiVector *) palloc(MV_SIZE(cap, 1));
	if (mv_parse_text(lit, result->x, cap, &nvec, &dim, &err) != MVP_OK)
		ReportParseError(lit, &err);

	MultiVectorCheckTypmod(dim, typmod);

	if (MV_SIZE(nvec, dim) < MV_SIZE(cap, 1))
		result = repalloc(result, MV_SIZE(nvec, dim));
	SET_VARSIZE(result, MV_SIZE(nvec, dim));
	result->dim = dim;
	result->format = MV_FORMAT_FLOAT32;
	result->flags = 0;
	result->nvec = nvec;
	result->reserved = 0;
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
	const uint8 *data = (const uint8 *) buf->data + buf->cursor;
	Size		len = buf->len - buf->cursor;
	int			dim;
	int			nvec;
	MvParseError err;
	MultiVector *result;

	if (mv_parse_binary_header(data, len, &nvec, &dim, &err) != MVP_OK)
		ReportParseError(NULL, &err);
	MultiVectorCheckTypmod(dim, typmod);

	/* the length is checked before anything is allocated */
	if (len - MV_BINARY_HEADER_SIZE != (Size) nvec * dim * sizeof(float))
	{
		err.status = MVP_BIN_LENGTH;
		err.nbytes = len - MV_BINARY_HEADER_SIZE;
		ReportParseError(NULL, &err);
	}
	result = InitMultiVector(nvec, dim);
	if (mv_parse_binary_data(data + MV_BINARY_HEADER_SIZE,
							 len - MV_BINARY_HEADER_SIZE,
							 nvec, dim, result->x, &err) != MVP_OK)
		ReportParseError(NULL, &err);
	buf->cursor = buf->len;
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
MultiVector *
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
		MultiVectorCheckTypmod(MultiVectorHeader(PG_GETARG_DATUM(0))->dim, typmod);
	PG_RETURN_DATUM(PG_GETARG_DATUM(0));
}

/*
 * ArrayShape
 *		Check that an array is 2-D without NULLs and within the limits;
 *		return its N and D.
 */
void
MultiVectorArrayShape(ArrayType *arr, int *nvec, int *dim)
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
	CheckElementCount(*nvec, *dim);
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
	MultiVectorArrayShape(arr, &nvec, &dim);
	MultiVectorCheckTypmod(dim, typmod);

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
	MultiVectorArrayShape(arr, &nvec, &dim);
	MultiVectorCheckTypmod(dim, typmod);

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
