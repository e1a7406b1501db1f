/*
 * cast_memo.c
 *	  The last result of a cast, kept per call site.
 *
 * A query cast inside ORDER BY, `emb <#> $1::bitmultivector`, is folded to
 * a constant by the planner only when $1 is known at planning; in a generic
 * plan (a prepared statement after its fifth execution, a PL/pgSQL query)
 * and wherever the query comes from another table, the cast runs once per
 * row scanned, the same conversion of the same query every time: measured,
 * a fifth of an exact binary scan.  So the casts from float keep, in the
 * call site's fn_extra, the input bytes, typmod and result of their last
 * call, and give a copy of that result when the same bytes come again.
 * Comparing the bytes (not the pointer: a parameter of a correlated
 * subquery changes from row to row, and memory is reused) costs a memcmp of
 * the input, a few percent of the conversion.  Only inputs of a query's size
 * are kept (CAST_MEMO_MAX_BYTES): a cast of stored pages sees new bytes on
 * every row and would only pay for the copies.
 */
#include "postgres.h"

#if PG_VERSION_NUM >= 160000
#include "varatt.h"			/* the varlena macros left postgres.h in 16 */
#endif

#include "utils/memutils.h"

#include "cast_memo.h"

/* Inputs up to this size are kept: 64 query rows of 128 float32. */
#define CAST_MEMO_MAX_BYTES (64 * 1024)

typedef struct CastMemo
{
	int32		typmod;
	Size		inlen;			/* 0: nothing kept */
	char	   *in;
	Size		outlen;
	char	   *out;
	Size		incap;
	Size		outcap;
} CastMemo;

struct varlena *
CastMemoGet(FunctionCallInfo fcinfo, const struct varlena *in, int32 typmod)
{
	CastMemo   *memo = (CastMemo *) fcinfo->flinfo->fn_extra;
	struct varlena *copy;

	if (memo == NULL || memo->inlen == 0 || memo->typmod != typmod ||
		memo->inlen != VARSIZE_ANY(in) ||
		memcmp(memo->in, in, memo->inlen) != 0)
		return NULL;
	copy = palloc(memo->outlen);
	memcpy(copy, memo->out, memo->outlen);
	return copy;
}

void
CastMemoPut(FunctionCallInfo fcinfo, const struct varlena *in, int32 typmod,
			const struct varlena *out)
{
	CastMemo   *memo = (CastMemo *) fcinfo->flinfo->fn_extra;
	Size		inlen = VARSIZE_ANY(in);
	Size		outlen = VARSIZE_ANY(out);

	if (inlen > CAST_MEMO_MAX_BYTES || outlen > CAST_MEMO_MAX_BYTES)
		return;
	if (memo == NULL)
	{
		memo = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CastMemo));
		fcinfo->flinfo->fn_extra = memo;
	}
	memo->inlen = 0;
	if (memo->incap < inlen)
	{
		memo->in = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, inlen);
		memo->incap = inlen;
	}
	if (memo->outcap < outlen)
	{
		memo->out = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, outlen);
		memo->outcap = outlen;
	}
	memcpy(memo->in, in, inlen);
	memcpy(memo->out, out, outlen);
	memo->outlen = outlen;
	memo->typmod = typmod;
	memo->inlen = inlen;
}
