/*
 * multivector.h
 *	  The multivector type: an N x D matrix of float32, one row per token.
 *
 * On-disk (and in-memory) layout, version 1.  This is a forever contract:
 * pg_upgrade copies data files byte for byte.
 *
 *	 offset  size  field
 *	 0       4     varlena header (set with SET_VARSIZE, never touched directly)
 *	 4       2     dim      D, floats per row, 1 .. MV_MAX_DIM
 *	 6       1     format   element format: MV_FORMAT_FLOAT32 (0) for
 *	                        multivector, MV_FORMAT_HALF (1) for halfmultivector,
 *	                        MV_FORMAT_BINARY (2) for bitmultivector
 *	 7       1     flags    reserved, always 0 (recv and in reject anything else)
 *	 8       4     nvec     N, rows, 1 .. MV_MAX_VECTORS, and N * D at most
 *	                        MV_MAX_ELEMENTS for values made by 0.2.0 on (0.1.0
 *	                        accepted N * D up to 2^26: such values stay readable)
 *	 12      4     reserved always 0
 *	 16      ...   data     N*D elements, row-major: float32 (4 N D bytes),
 *	                        binary16 (2 N D bytes), or for bitmultivector N
 *	                        rows of ceil(D / 8) bytes, dimension k in byte
 *	                        k / 8 at bit 7 - k % 8 (1 = positive), padding
 *	                        bits zero
 *
 * The 16-byte header keeps the data 8-byte aligned within a MAXALIGNed datum.
 */
#ifndef MULTIVECTOR_H
#define MULTIVECTOR_H

#include "postgres.h"
#include "fmgr.h"

/* MV_MAX_DIM, MV_MAX_VECTORS, MV_MAX_ELEMENTS, MV_FORMAT_* and the parsers */
#include "multivector_parse.h"

typedef struct MultiVector
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	uint16		dim;			/* D: elements per row */
	uint8		format;			/* MV_FORMAT_* */
	uint8		flags;			/* reserved, always zero */
	int32		nvec;			/* N: rows */
	int32		reserved;		/* always zero */
	float		x[FLEXIBLE_ARRAY_MEMBER];	/* N*D floats, row-major */
} MultiVector;

#define MV_HEADER_SIZE		offsetof(MultiVector, x)
#define MV_SIZE(nvec, dim)	(MV_HEADER_SIZE + sizeof(float) * (Size) (nvec) * (Size) (dim))
#define MV_ROW(mv, i)		((mv)->x + (Size) (i) * (mv)->dim)

/* halfmultivector and bitmultivector share the header (src/multivector_compact.c) */
#define MV_HALF_SIZE(nvec, dim)	(MV_HEADER_SIZE + sizeof(uint16) * (Size) (nvec) * (Size) (dim))
#define MV_BIT_SIZE(nvec, dim)	(MV_HEADER_SIZE + (Size) (nvec) * MV_BIT_ROW_BYTES(dim))
#define MV_HALF_DATA(mv)		((uint16 *) (mv)->x)
#define MV_BIT_DATA(mv)			((uint8 *) (mv)->x)

#define DatumGetMultiVector(d)		((MultiVector *) PG_DETOAST_DATUM(d))
#define PG_GETARG_MULTIVECTOR_P(n)	DatumGetMultiVector(PG_GETARG_DATUM(n))
#define PG_RETURN_MULTIVECTOR_P(x)	PG_RETURN_POINTER(x)

extern MultiVector *InitMultiVector(int nvec, int dim);

/* ERROR (data_corrupted) unless the header is a valid version-1 float32 one. */
extern void MultiVectorCheckFormat(const MultiVector *mv);

/* ERROR (data_corrupted) unless a valid header of the given MV_FORMAT_*. */
extern void MultiVectorCheckAnyFormat(const MultiVector *mv, int format);

/* A zero-filled value of the given format (the caller checked the limits). */
extern MultiVector *InitMultiVectorFormat(int nvec, int dim, int format);

/* multivector.c helpers shared with the sibling types */
extern void MultiVectorCheckTypmod(int dim, int32 typmod);
extern MultiVector *MultiVectorHeader(Datum d);
struct ArrayType;
extern void MultiVectorArrayShape(struct ArrayType *arr, int *nvec, int *dim);

/*
 * PostgreSQL 18 marks functions that never return with a pg_noreturn prefix
 * and dropped the pg_attribute_noreturn() suffix; before 18 only the suffix
 * exists, and GCC and Clang accept its attribute in front of a declaration.
 */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/* Report a parser status (multivector_parse.h) as an ERROR; never returns. */
pg_noreturn extern void MultiVectorReportParseError(const char *typname, const char *lit,
													const MvParseError *err);

/*
 * MaxSim = sum over query rows of max over doc rows of <doc_row, query_row>.
 * MaxSimKernel works on raw row-major float arrays with the best kernel for
 * this CPU (AVX-512 / AVX2+FMA / scalar, all bit-identical; error bound in
 * src/engine/maxsim_kernels.h); it checks for interrupts between blocks of 64 query
 * rows and uses a backend-lifetime scratch buffer, so call it from the
 * backend's main thread only.  MaxSimScore checks the headers and the
 * dimensions (ERROR naming both) and calls it.  src/maxsim.c.
 */
extern double MaxSimKernel(const float *doc, int ndoc, const float *query,
						   int nquery, int dim);
extern double MaxSimScore(const MultiVector *doc, const MultiVector *query);
extern double MaxSimHalfKernel(const uint16 *doc, int ndoc, const float *query,
							   int nquery, int dim);

/*
 * The query argument argno detoasted; a stored (TOAST) query is fetched once
 * per call site, not once per row (*cached: do not free it).  maxsim_compact.c.
 */
extern MultiVector *MaxSimQueryArg(FunctionCallInfo fcinfo, int argno, bool *cached);

/* A backend-lifetime scratch buffer of at least `bytes` (maxsim_compact.c). */
extern void *MaxSimGrowBuffer(void **buf, Size *size, Size bytes);
extern void *MaxSimDocBuffer(Size bytes);

#endif							/* MULTIVECTOR_H */
