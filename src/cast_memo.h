/*
 * cast_memo.h
 *	  The last result of a cast, kept per call site (src/cast_memo.c).
 */
#ifndef CAST_MEMO_H
#define CAST_MEMO_H

#include "postgres.h"

#include "fmgr.h"

/*
 * CastMemoGet
 *		A copy (in the current memory context) of what this call site's cast
 *		gave last for the same input bytes and typmod, or NULL.
 */
extern struct varlena *CastMemoGet(FunctionCallInfo fcinfo,
								   const struct varlena *in, int32 typmod);

/*
 * CastMemoPut
 *		Keep `out` as this call site's result for `in` and typmod (inputs of
 *		a query's size only).
 */
extern void CastMemoPut(FunctionCallInfo fcinfo, const struct varlena *in,
						int32 typmod, const struct varlena *out);

#endif							/* CAST_MEMO_H */
