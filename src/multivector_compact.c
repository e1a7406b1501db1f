/*
 * multivector_compact.c
 *	  The compact sibling types of multivector: halfmultivector (IEEE
 *	  binary16 elements) and bitmultivector (one sign bit per dimension):
 *	  text and binary I/O and the casts between all three formats and
 *	  real[].  Layout, limits and typmod are multivector's (multivector.h);
 *	  only the element format byte and the data differ.
 *
 * Text forms:
 *	 halfmultivector  '[[x,...],...]' as multivector; each number is rounded
 *	                  once, to nearest even, to half; output writes each
 *	                  element's exact value with the shortest float32 text,
 *	                  which reads back to the same half (dump is bit-exact).
 *	 bitmultivector   '[0110...,1001...]': one run of '0'/'1' a row,
 *	                  character k = dimension k (1 = positive).
 *
 * Binary forms: multivector's 12-byte header with format 1 (half) or 2
 * (binary), then N D big-endian binary16 (no Inf/NaN patterns), or N rows
 * of ceil(D / 8) bytes, most significant bit first, padding bits zero.
 *
 * Conversions: to half rounds to nearest even and rejects values that
 * round past 65504 (22003), never giving infinity; to binary takes the sign,
 * with x >= 0 (both zeros included) -> 1 and x < 0 -> 0; from binary gives
 * +1 and -1.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/memutils.h"

#include "cast_memo.h"
#include "maxsim_compact.h"
#include "multivector.h"
#include "mv_half.h"

PG_FUNCTION_INFO_V1(halfmultivector_in);
PG_FUNCTION_INFO_V1(halfmultivector_out);
PG_FUNCTION_INFO_V1(halfmultivector_recv);
PG_FUNCTION_INFO_V1(halfmultivector_send);
PG_FUNCTION_INFO_V1(bitmultivector_in);
PG_FUNCTION_INFO_V1(bitmultivector_out);
PG_FUNCTION_INFO_V1(bitmultivector_recv);
PG_FUNCTION_INFO_V1(bitmultivector_send);
PG_FUNCTION_INFO_V1(multivector_to_halfmultivector);
PG_FUNCTION_INFO_V1(halfmultivector_to_multivector);
PG_FUNCTION_INFO_V1(multivector_to_bitmultivector);
PG_FUNCTION_INFO_V1(halfmultivector_to_bitmultivector);
PG_FUNCTION_INFO_V1(bitmultivector_to_multivector);
PG_FUNCTION_INFO_V1(bitmultivector_to_halfmultivector);
PG_FUNCTION_INFO_V1(array_to_halfmultivector);
PG_FUNCTION_INFO_V1(array_to_bitmultivector);
PG_FUNCTION_INFO_V1(halfmultivector_to_float4_array);
PG_FUNCTION_INFO_V1(bitmultivector_to_float4_array);

#define DatumGetMV(d)		((MultiVector *) PG_DETOAST_DATUM(d))

#define HALF_PLUS_ONE	0x3c00
#define HALF_MINUS_ONE	0xbc00

/*
 * FloatToHalf
 *		One element to half, or the documented ERROR: element `i` (0-based)
 *		is reported 1-based.
 */
static inline uint16
FloatToHalf(double x, Size i)
{
	uint16		h;
	int			rc = mv_double_to_half(x, &h);

	if (unlikely(rc < 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s not allowed in halfmultivector",
						isnan(x) ? "NaN" : "infinite value")));
	if (unlikely(rc > 0))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value out of range for a half-precision element: overflow"),
				 errdetail("Element %zu (%g) rounds beyond 65504.", i + 1, x)));
	return h;
}

/* Set or clear dimension k of a bit row. */
static inline void
SetBit(uint8 *row, int k, bool positive)
{
	if (positive)
		row[k / 8] |= (uint8) (0x80 >> (k % 8));
}

static inline bool
GetBit(const uint8 *row, int k)
{
	return (row[k / 8] >> (7 - k % 8)) & 1;
}

/* ---- halfmultivector I/O -------------------------------------------------- */

Datum
halfmultivector_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	Size		cap = mv_text_max_elements(strlen(lit));
	uint16	   *buf = palloc(cap * sizeof(uint16));
	int			dim;
	int			nvec;
	MvParseError err;
	MultiVector *result;

	if (mv_parse_text_half(lit, buf, cap, &nvec, &dim, &err) != MVP_OK)
		MultiVectorReportParseError("halfmultivector", lit, &err);
	MultiVectorCheckTypmod(dim, typmod);
	result = InitMultiVectorFormat(nvec, dim, MV_FORMAT_HALF);
	memcpy(MV_HALF_DATA(result), buf, (Size) nvec * dim * sizeof(uint16));
	pfree(buf);
	PG_RETURN_POINTER(result);
}

Datum
halfmultivector_out(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	const uint16 *h = MV_HALF_DATA(mv);
	StringInfoData s;
	int			i;
	int			k;

	MultiVectorCheckAnyFormat(mv, MV_FORMAT_HALF);
	initStringInfo(&s);
	/* at most 12 characters ("-6.1035156e-05") and a separator an element */
	enlargeStringInfo(&s, (int) Min((Size) mv->nvec * (mv->dim * 16 + 3) + 3,
									MaxAllocSize - 1));
	appendStringInfoChar(&s, '[');
	for (i = 0; i < mv->nvec; i++)
	{
		if (i > 0)
			appendStringInfoChar(&s, ',');
		appendStringInfoChar(&s, '[');
		for (k = 0; k < mv->dim; k++)
		{
			char		num[FLOAT_SHORTEST_DECIMAL_LEN];

			if (k > 0)
				appendStringInfoChar(&s, ',');
			float_to_shortest_decimal_buf(mv_half_to_float(h[(Size) i * mv->dim + k]), num);
			appendStringInfoString(&s, num);
		}
		appendStringInfoChar(&s, ']');
	}
	appendStringInfoChar(&s, ']');
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_CSTRING(s.data);
}

/*
 * RecvHeader
 *		Read and check a binary header of the expected format and the data
 *		length (data_bytes for the shape); returns the data.
 */
static const uint8 *
RecvHeader(StringInfo buf, int format, int32 typmod, int *nvec, int *dim,
		   const char *typname)
{
	const uint8 *data = (const uint8 *) buf->data + buf->cursor;
	Size		len = buf->len - buf->cursor;
	MvParseError err;
	Size		want;

	if (mv_parse_binary_header_format(data, len, format, nvec, dim, &err) != MVP_OK)
		MultiVectorReportParseError(typname, NULL, &err);
	MultiVectorCheckTypmod(*dim, typmod);
	want = format == MV_FORMAT_HALF ? (Size) *nvec * *dim * sizeof(uint16) :
		(Size) *nvec * MV_BIT_ROW_BYTES(*dim);
	if (len - MV_BINARY_HEADER_SIZE != want)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("%s binary data has %zu bytes, expected %zu for %d vectors of %d dimensions",
						typname, len - MV_BINARY_HEADER_SIZE, want, *nvec, *dim)));
	return data + MV_BINARY_HEADER_SIZE;
}

/* The binary header of a value (format, dims) into buf. */
static void
SendHeader(StringInfo buf, const MultiVector *mv, Size data_bytes)
{
	pq_begintypsend(buf);
	enlargeStringInfo(buf, MV_BINARY_HEADER_SIZE + data_bytes);
	pq_sendint16(buf, mv->dim);
	pq_sendbyte(buf, mv->format);
	pq_sendbyte(buf, 0);
	pq_sendint32(buf, mv->nvec);
	pq_sendint32(buf, 0);
}

Datum
halfmultivector_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int			nvec;
	int			dim;
	const uint8 *data = RecvHeader(buf, MV_FORMAT_HALF, typmod, &nvec, &dim,
								   "halfmultivector");
	MultiVector *result = InitMultiVectorFormat(nvec, dim, MV_FORMAT_HALF);
	MvParseError err;

	if (mv_parse_binary_half(data, (Size) nvec * dim * sizeof(uint16), nvec,
							 dim, MV_HALF_DATA(result), &err) != MVP_OK)
		MultiVectorReportParseError("halfmultivector", NULL, &err);
	buf->cursor = buf->len;
	PG_RETURN_POINTER(result);
}

Datum
halfmultivector_send(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	Size		n = (Size) mv->nvec * mv->dim;
	const uint16 *h = MV_HALF_DATA(mv);
	StringInfoData buf;
	Size		i;

	MultiVectorCheckAnyFormat(mv, MV_FORMAT_HALF);
	SendHeader(&buf, mv, n * sizeof(uint16));
	for (i = 0; i < n; i++)
		pq_sendint16(&buf, h[i]);
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---- bitmultivector I/O --------------------------------------------------- */

Datum
bitmultivector_in(PG_FUNCTION_ARGS)
{
	char	   *lit = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	Size		cap = mv_bits_text_max_bytes(strlen(lit));
	uint8	   *buf = palloc(cap);
	int			dim;
	int			nvec;
	MvParseError err;
	MultiVector *result;

	if (mv_parse_text_bits(lit, buf, cap, &nvec, &dim, &err) != MVP_OK)
		MultiVectorReportParseError("bitmultivector", lit, &err);
	MultiVectorCheckTypmod(dim, typmod);
	result = InitMultiVectorFormat(nvec, dim, MV_FORMAT_BINARY);
	memcpy(MV_BIT_DATA(result), buf, (Size) nvec * MV_BIT_ROW_BYTES(dim));
	pfree(buf);
	PG_RETURN_POINTER(result);
}

Datum
bitmultivector_out(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	Size		rb = MV_BIT_ROW_BYTES(mv->dim);
	char	   *out = palloc((Size) mv->nvec * (mv->dim + 1) + 2);
	char	   *p = out;
	int			i;
	int			k;

	MultiVectorCheckAnyFormat(mv, MV_FORMAT_BINARY);
	*p++ = '[';
	for (i = 0; i < mv->nvec; i++)
	{
		const uint8 *row = MV_BIT_DATA(mv) + (Size) i * rb;

		if (i > 0)
			*p++ = ',';
		for (k = 0; k < mv->dim; k++)
			*p++ = GetBit(row, k) ? '1' : '0';
	}
	*p++ = ']';
	*p = '\0';
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_CSTRING(out);
}

Datum
bitmultivector_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int			nvec;
	int			dim;
	const uint8 *data = RecvHeader(buf, MV_FORMAT_BINARY, typmod, &nvec, &dim,
								   "bitmultivector");
	MultiVector *result = InitMultiVectorFormat(nvec, dim, MV_FORMAT_BINARY);
	MvParseError err;

	if (mv_parse_binary_bits(data, (Size) nvec * MV_BIT_ROW_BYTES(dim), nvec,
							 dim, MV_BIT_DATA(result), &err) != MVP_OK)
		MultiVectorReportParseError("bitmultivector", NULL, &err);
	buf->cursor = buf->len;
	PG_RETURN_POINTER(result);
}

Datum
bitmultivector_send(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	Size		n = (Size) mv->nvec * MV_BIT_ROW_BYTES(mv->dim);
	StringInfoData buf;

	MultiVectorCheckAnyFormat(mv, MV_FORMAT_BINARY);
	SendHeader(&buf, mv, n);
	pq_sendbytes(&buf, (const char *) MV_BIT_DATA(mv), n);
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---- casts between the formats ------------------------------------------- */

Datum
multivector_to_halfmultivector(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	int32		typmod = PG_GETARG_INT32(1);
	Size		n = (Size) mv->nvec * mv->dim;
	MultiVector *result;
	uint16	   *h;
	Size		i;

	result = (MultiVector *) CastMemoGet(fcinfo, (struct varlena *) mv, typmod);
	if (result == NULL)
	{
		MultiVectorCheckFormat(mv);
		MultiVectorCheckTypmod(mv->dim, typmod);
		result = InitMultiVectorFormat(mv->nvec, mv->dim, MV_FORMAT_HALF);
		h = MV_HALF_DATA(result);
		for (i = 0; i < n; i++)
			h[i] = FloatToHalf(mv->x[i], i);
		CastMemoPut(fcinfo, (struct varlena *) mv, typmod, (struct varlena *) result);
	}
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_POINTER(result);
}

Datum
halfmultivector_to_multivector(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	int32		typmod = PG_GETARG_INT32(1);
	MultiVector *result;

	MultiVectorCheckAnyFormat(mv, MV_FORMAT_HALF);
	MultiVectorCheckTypmod(mv->dim, typmod);
	result = InitMultiVector(mv->nvec, mv->dim);
	mvk_half_to_float(mvk_best(), MV_HALF_DATA(mv), (Size) mv->nvec * mv->dim,
					  result->x);
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_POINTER(result);
}

Datum
multivector_to_bitmultivector(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	int32		typmod = PG_GETARG_INT32(1);
	Size		rb = MV_BIT_ROW_BYTES(mv->dim);
	MultiVector *result;
	int			i;
	int			k;

	result = (MultiVector *) CastMemoGet(fcinfo, (struct varlena *) mv, typmod);
	if (result == NULL)
	{
		MultiVectorCheckFormat(mv);
		MultiVectorCheckTypmod(mv->dim, typmod);
		result = InitMultiVectorFormat(mv->nvec, mv->dim, MV_FORMAT_BINARY);
		for (i = 0; i < mv->nvec; i++)
		{
			const float *src = MV_ROW(mv, i);
			uint8	   *row = MV_BIT_DATA(result) + (Size) i * rb;

			for (k = 0; k < mv->dim; k++)
				SetBit(row, k, !(src[k] < 0.0f));
		}
		CastMemoPut(fcinfo, (struct varlena *) mv, typmod, (struct varlena *) result);
	}
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_POINTER(result);
}

Datum
halfmultivector_to_bitmultivector(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	int32		typmod = PG_GETARG_INT32(1);
	Size		rb = MV_BIT_ROW_BYTES(mv->dim);
	MultiVector *result;
	int			i;
	int			k;

	MultiVectorCheckAnyFormat(mv, MV_FORMAT_HALF);
	MultiVectorCheckTypmod(mv->dim, typmod);
	result = InitMultiVectorFormat(mv->nvec, mv->dim, MV_FORMAT_BINARY);
	for (i = 0; i < mv->nvec; i++)
	{
		const uint16 *src = MV_HALF_DATA(mv) + (Size) i * mv->dim;
		uint8	   *row = MV_BIT_DATA(result) + (Size) i * rb;

		/* negative: sign bit set and not -0 */
		for (k = 0; k < mv->dim; k++)
			SetBit(row, k, !((src[k] & 0x8000) && (src[k] & 0x7fff)));
	}
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_POINTER(result);
}

Datum
bitmultivector_to_multivector(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	int32		typmod = PG_GETARG_INT32(1);
	MultiVector *result;

	MultiVectorCheckAnyFormat(mv, MV_FORMAT_BINARY);
	MultiVectorCheckTypmod(mv->dim, typmod);
	result = InitMultiVector(mv->nvec, mv->dim);
	mvk_bits_to_pm1(MV_BIT_DATA(mv), mv->nvec, mv->dim, result->x);
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_POINTER(result);
}

Datum
bitmultivector_to_halfmultivector(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	int32		typmod = PG_GETARG_INT32(1);
	Size		rb = MV_BIT_ROW_BYTES(mv->dim);
	MultiVector *result;
	int			i;
	int			k;

	MultiVectorCheckAnyFormat(mv, MV_FORMAT_BINARY);
	MultiVectorCheckTypmod(mv->dim, typmod);
	result = InitMultiVectorFormat(mv->nvec, mv->dim, MV_FORMAT_HALF);
	for (i = 0; i < mv->nvec; i++)
	{
		const uint8 *row = MV_BIT_DATA(mv) + (Size) i * rb;
		uint16	   *dst = MV_HALF_DATA(result) + (Size) i * mv->dim;

		for (k = 0; k < mv->dim; k++)
			dst[k] = GetBit(row, k) ? HALF_PLUS_ONE : HALF_MINUS_ONE;
	}
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_POINTER(result);
}

/* ---- real[] --------------------------------------------------------------- */

/*
 * ArrayElements
 *		The float4 elements of a 2-D real[] without NULLs, within the limits
 *		and the typmod; NaN and infinities rejected.
 */
static const float *
ArrayElements(ArrayType *arr, int32 typmod, const char *typname, int *nvec,
			  int *dim)
{
	const float *src;
	Size		n;
	Size		i;

	if (ARR_ELEMTYPE(arr) != FLOAT4OID)
		elog(ERROR, "cast to %s expects real[], got type %u", typname,
			 ARR_ELEMTYPE(arr));
	MultiVectorArrayShape(arr, nvec, dim);
	MultiVectorCheckTypmod(*dim, typmod);
	src = (const float *) ARR_DATA_PTR(arr);
	n = (Size) *nvec * *dim;
	for (i = 0; i < n; i++)
		if (unlikely(isnan(src[i]) || isinf(src[i])))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s not allowed in %s",
							isnan(src[i]) ? "NaN" : "infinite value", typname)));
	return src;
}

Datum
array_to_halfmultivector(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	int			nvec;
	int			dim;
	const float *src = ArrayElements(arr, typmod, "halfmultivector", &nvec, &dim);
	MultiVector *result = InitMultiVectorFormat(nvec, dim, MV_FORMAT_HALF);
	Size		n = (Size) nvec * dim;
	Size		i;

	for (i = 0; i < n; i++)
		MV_HALF_DATA(result)[i] = FloatToHalf(src[i], i);
	PG_RETURN_POINTER(result);
}

Datum
array_to_bitmultivector(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	int			nvec;
	int			dim;
	const float *src = ArrayElements(arr, typmod, "bitmultivector", &nvec, &dim);
	MultiVector *result = InitMultiVectorFormat(nvec, dim, MV_FORMAT_BINARY);
	Size		rb = MV_BIT_ROW_BYTES(dim);
	int			i;
	int			k;

	for (i = 0; i < nvec; i++)
		for (k = 0; k < dim; k++)
			SetBit(MV_BIT_DATA(result) + (Size) i * rb, k,
				   !(src[(Size) i * dim + k] < 0.0f));
	PG_RETURN_POINTER(result);
}

/* N x D real[] from nvec x dim floats. */
static ArrayType *
FloatsToArray(const float *x, int nvec, int dim)
{
	Size		n = (Size) nvec * dim;
	Datum	   *elems = palloc(n * sizeof(Datum));
	int			dims[2] = {nvec, dim};
	int			lbs[2] = {1, 1};
	Size		i;

	for (i = 0; i < n; i++)
		elems[i] = Float4GetDatum(x[i]);
	return construct_md_array(elems, NULL, 2, dims, lbs, FLOAT4OID,
							  sizeof(float4), true, TYPALIGN_INT);
}

Datum
halfmultivector_to_float4_array(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	Size		n = (Size) mv->nvec * mv->dim;
	float	   *x;
	ArrayType  *result;

	MultiVectorCheckAnyFormat(mv, MV_FORMAT_HALF);
	x = palloc(n * sizeof(float));
	mvk_half_to_float(mvk_best(), MV_HALF_DATA(mv), n, x);
	result = FloatsToArray(x, mv->nvec, mv->dim);
	pfree(x);
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_ARRAYTYPE_P(result);
}

Datum
bitmultivector_to_float4_array(PG_FUNCTION_ARGS)
{
	MultiVector *mv = DatumGetMV(PG_GETARG_DATUM(0));
	Size		n = (Size) mv->nvec * mv->dim;
	float	   *x;
	ArrayType  *result;

	MultiVectorCheckAnyFormat(mv, MV_FORMAT_BINARY);
	x = palloc(n * sizeof(float));
	mvk_bits_to_pm1(MV_BIT_DATA(mv), mv->nvec, mv->dim, x);
	result = FloatsToArray(x, mv->nvec, mv->dim);
	pfree(x);
	PG_FREE_IF_COPY(mv, 0);
	PG_RETURN_ARRAYTYPE_P(result);
}
