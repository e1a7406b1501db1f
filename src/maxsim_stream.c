/*
 * maxsim_stream.c
 *	  MaxSim of a stored document without materialising it.
 *
 * An exact scan (ORDER BY emb <#> q) or the mvivf rerank scores one stored
 * page per row.  A ColPali page is 527 kB of float32 stored out of line,
 * uncompressed, in about 264 TOAST chunks of 1,996 bytes; detoasting it
 * copies every chunk into a fresh 527 kB buffer which the kernel then reads
 * again, so the copy into memory the cache no longer holds cost more than
 * the arithmetic.  Here an out-of-line, uncompressed value is read chunk by
 * chunk (with the checks of chunk numbers and sizes heap_fetch_toast_slice
 * makes), its bytes are gathered into a small staging buffer that stays in
 * the L1/L2 cache, and every time the buffer holds STREAM_FLUSH_BYTES of
 * rows they are fed to the streaming kernels (maxsim_kernels.h:
 * mvk_stream_*; half rows are widened and binary rows expanded on the way,
 * binary x binary uses the hamming minima).  The result
 * has the bits of the materialised computation: every row enters every
 * query row's running maximum in row order, and the sums are those of
 * mvk_maxsim.  Float and half rows are screened first where the CPU has
 * AMX (maxsim_screening.c, src/engine/maxsim_screen.h): the stage then holds
 * a screening batch of rows, and only the rows that can hold a query row's
 * maximum reach the kernel, in row order (same bits).
 *
 * The chunks are read as toast_stream.c reads them: the TOAST heap walked
 * block by block where they lie in order, the TOAST index asked elsewhere,
 * with the checks and ERRORs of detoasting.
 *
 * Every other storage form (inline, short header, compressed inline or out
 * of line, indirect, or a TOAST table that is not heap) is detoasted as
 * before and scored in memory.  The header (the first 12 bytes of the
 * stored data) is checked against the value's size before any row is
 * scored, and interrupts are checked between kernel calls.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "maxsim_compact.h"
#include "maxsim_kernels.h"
#include "maxsim_screen.h"
#include "maxsim_stream.h"
#include "multivector.h"
#include "toast_stream.h"

/* Bytes of kernel input (float rows, or bit rows for hamming) per kernel call. */
#define STREAM_FLUSH_BYTES	(16 * 1024)

/* Rows per call that make whole register blocks for every float kernel. */
#define STREAM_ROWS_MULTIPLE 30

/* Bytes of the stored header after the varlena header. */
#define STORED_HEADER_BYTES	(MV_HEADER_SIZE - VARHDRSZ)

bool		maxsim_streaming = true;

/* Backend-lifetime buffers (MaxSimGrowBuffer), reused by every value. */
static void *stage_buf = NULL;
static Size stage_size = 0;
static void *rows_buf = NULL;
static Size rows_size = 0;
static void *stream_scratch = NULL;
static Size stream_scratch_size = 0;
static void *query_wide = NULL;
static Size query_wide_size = 0;
static void *hamming_best = NULL;
static Size hamming_best_size = 0;

/*
 * The stream of the last query, kept with a copy of the query's values: a
 * scan scores one document per row against the same query, and
 * transposing the query for each document cost about 2 % of a scan.
 */
static MvkStream last_stream;
static bool last_stream_valid = false;
static void *last_query = NULL;
static Size last_query_size = 0;

/* One value being read and scored. */
typedef struct StreamState
{
	/* the header, assembled behind a varlena header of the stored size */
	union
	{
		MultiVector mv;
		char		bytes[MV_HEADER_SIZE];
	}			hdr;
	Size		hdr_have;		/* header bytes seen so far */
	int32		extsize;		/* stored bytes (varlena header excluded) */
	int			docformat;		/* expected document format, or -1 */
	const MultiVector *query;
	int			queryformat;	/* expected query format, or -1 */
	bool		started;		/* header checked, kernels ready */
	bool		dims_differ;	/* header read, D differs: stop */

	int			format;			/* the document's MV_FORMAT_* */
	Size		rowbytes;		/* stored bytes per row */
	int			flushrows;		/* rows per kernel call */
	uint8	   *stage;			/* flushrows rows of stored bytes */
	Size		staged;			/* bytes in stage */
	float	   *rows;			/* half/binary rows widened to float32 */
	bool		hamming;		/* binary x binary */
	int32	   *best;			/* hamming minima, one per query row */
	MvkStream	st;				/* float kernels */
	MvsScreen  *screen;			/* screened exact MaxSim, or NULL */
} StreamState;

/*
 * MaxSimStreamInit
 *		Define colpali.maxsim_streaming (called from _PG_init).
 */
void
MaxSimStreamInit(void)
{
	DefineCustomBoolVariable("colpali.maxsim_streaming",
							 "Reads out-of-line documents chunk by chunk for MaxSim.",
							 "Off detoasts every stored document whole before scoring it, as "
							 "earlier versions did; the scores are the same.  For tests and "
							 "benchmarks.",
							 &maxsim_streaming,
							 true,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("colpali.maxsim_toast_walk",
							 "Reads the chunks of out-of-line documents by walking the TOAST table.",
							 "Off asks the TOAST index for every chunk; the scores are the same.  "
							 "For tests and benchmarks.",
							 &toast_stream_walk,
							 true,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
	MaxSimScreeningInit();
}

/*
 * CheckHeader
 *		ERROR unless mv (whose varlena size is the stored size) is a valid
 *		header of the expected format (any of the three when format < 0).
 */
static void
CheckHeader(const MultiVector *mv, int format)
{
	if (VARSIZE_ANY(mv) < MV_HEADER_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid multivector header"),
				 errdetail("The value has %zu bytes, fewer than a header.",
						   (Size) VARSIZE_ANY(mv))));
	if (format < 0)
		format = (mv->format == MV_FORMAT_HALF || mv->format == MV_FORMAT_BINARY) ?
			mv->format : MV_FORMAT_FLOAT32;
	MultiVectorCheckAnyFormat(mv, format);
}

/*
 * CheckPairAndDims
 *		Check the query's header and the (document, query) pair; false when
 *		the dimensions differ.
 */
static bool
CheckPairAndDims(const MultiVector *doc, const MultiVector *query,
				 int queryformat)
{
	CheckHeader(query, queryformat);
	if (!(query->format == MV_FORMAT_FLOAT32 || query->format == doc->format))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("MaxSim of a document of format %d and a query of format %d is not defined",
						doc->format, query->format)));
	return doc->dim == query->dim;
}

/*
 * ReportDims
 *		The ERROR of different document and query dimensions.
 */
static void
ReportDims(int docdim, int querydim)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("different multivector dimensions %d and %d",
					docdim, querydim),
			 errdetail("The document has %d dimensions and the query has %d.",
					   docdim, querydim)));
}

/*
 * StreamStart
 *		The header is complete: check it, the pair and the dimensions, and
 *		prepare the kernels.  False when the dimensions differ.
 */
static bool
StreamStart(StreamState *ss)
{
	MultiVector *hdr = &ss->hdr.mv;
	const MultiVector *query = ss->query;
	int			dim;
	Size		kernelrow;
	const float *qx;

	SET_VARSIZE(hdr, ss->extsize + VARHDRSZ);
	CheckHeader(hdr, ss->docformat);
	if (!CheckPairAndDims(hdr, query, ss->queryformat))
	{
		ss->dims_differ = true;
		return false;
	}
	dim = hdr->dim;
	ss->format = hdr->format;
	ss->rowbytes = ss->format == MV_FORMAT_BINARY ? MV_BIT_ROW_BYTES(dim) :
		ss->format == MV_FORMAT_HALF ? sizeof(uint16) * (Size) dim :
		sizeof(float) * (Size) dim;
	ss->hamming = ss->format == MV_FORMAT_BINARY &&
		query->format == MV_FORMAT_BINARY;

	if (ss->hamming)
	{
		int			j;

		ss->best = MaxSimGrowBuffer(&hamming_best, &hamming_best_size,
									sizeof(int32) * (Size) query->nvec);
		for (j = 0; j < query->nvec; j++)
			ss->best[j] = PG_INT32_MAX;
	}
	else
	{
		qx = query->x;
		if (query->format == MV_FORMAT_HALF)
		{
			Size		nq = (Size) query->nvec * dim;
			float	   *q = MaxSimGrowBuffer(&query_wide, &query_wide_size,
											 nq * sizeof(float));

			mvk_half_to_float(mvk_best(), MV_HALF_DATA(query), nq, q);
			qx = q;
		}
		if (last_stream_valid && last_stream.nquery == query->nvec &&
			last_stream.dim == dim && last_stream.kind == mvk_best() &&
			memcmp(last_query, qx, sizeof(float) * (Size) query->nvec * dim) == 0)
		{
			ss->st = last_stream;
			ss->st.query = qx;
			mvk_stream_restart(&ss->st);
		}
		else
		{
			Size		qbytes = sizeof(float) * (Size) query->nvec * dim;

			last_stream_valid = false;
			mvk_stream_begin(&ss->st, mvk_best(), qx, query->nvec, dim,
							 MaxSimGrowBuffer(&stream_scratch, &stream_scratch_size,
											  sizeof(float) * mvk_stream_scratch_floats(query->nvec, dim)));
			memcpy(MaxSimGrowBuffer(&last_query, &last_query_size, qbytes), qx, qbytes);
			last_stream = ss->st;
			last_stream_valid = true;
		}
		/* float and half documents: screened when possible */
		if (ss->format != MV_FORMAT_BINARY)
			ss->screen = MaxSimScreenFor(qx, query->nvec, dim);
	}

	/*
	 * Rows per kernel call: about STREAM_FLUSH_BYTES of kernel input, or a
	 * screening batch (whose kept rows are what the kernel then reads).
	 */
	kernelrow = ss->hamming ? ss->rowbytes : sizeof(float) * (Size) dim;
	ss->flushrows = Max(1, (int) (STREAM_FLUSH_BYTES / kernelrow));
	if (ss->flushrows >= STREAM_ROWS_MULTIPLE)
		ss->flushrows -= ss->flushrows % STREAM_ROWS_MULTIPLE;
	if (ss->screen)
		ss->flushrows = ss->screen->batch;
	ss->stage = MaxSimGrowBuffer(&stage_buf, &stage_size,
								 ss->rowbytes * ss->flushrows);
	ss->staged = 0;
	if (!ss->hamming && ss->format != MV_FORMAT_FLOAT32)
		ss->rows = MaxSimGrowBuffer(&rows_buf, &rows_size,
									sizeof(float) * (Size) dim * ss->flushrows);
	ss->started = true;
	return true;
}

/*
 * StreamFlush
 *		Score the staged rows (a whole number of them) and empty the stage.
 */
static void
StreamFlush(StreamState *ss)
{
	int			nrows = (int) (ss->staged / ss->rowbytes);
	int			dim = ss->hdr.mv.dim;
	const float *rows;
	int			b;

	if (ss->staged % ss->rowbytes != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("stored multivector ends inside a row")));
	if (nrows == 0)
		return;
	CHECK_FOR_INTERRUPTS();
	if (ss->hamming)
	{
		const MultiVector *query = ss->query;
		Size		qrb = MV_BIT_ROW_BYTES(dim);
		int			j0;

		for (j0 = 0; j0 < query->nvec; j0 += MVK_QUERY_BLOCK)
		{
			if (j0 > 0)
				CHECK_FOR_INTERRUPTS();
			mvk_hamming_minima(mvk_best(), ss->stage, nrows,
							   MV_BIT_DATA(query) + (Size) j0 * qrb,
							   Min(MVK_QUERY_BLOCK, query->nvec - j0), dim,
							   ss->best + j0);
		}
		ss->staged = 0;
		return;
	}
	if (ss->screen)
	{
		/* screened: the kept rows go to every query block */
		if (ss->format == MV_FORMAT_HALF)
			mvs_stream_half_rows(ss->screen, &ss->st, (const uint16 *) ss->stage,
								 nrows);
		else
			mvs_stream_rows(ss->screen, &ss->st, (const float *) ss->stage,
							nrows);
		ss->staged = 0;
		return;
	}
	if (ss->format == MV_FORMAT_HALF)
	{
		mvk_half_to_float(mvk_best(), (const uint16 *) ss->stage,
						  (Size) nrows * dim, ss->rows);
		rows = ss->rows;
	}
	else if (ss->format == MV_FORMAT_BINARY)
	{
		mvk_bits_to_pm1(ss->stage, nrows, dim, ss->rows);
		rows = ss->rows;
	}
	else
		rows = (const float *) ss->stage;
	for (b = 0; b < MVK_STREAM_BLOCKS(ss->query->nvec); b++)
	{
		if (b > 0)
			CHECK_FOR_INTERRUPTS();
		mvk_stream_rows(&ss->st, b, rows, nrows);
	}
	ss->staged = 0;
}

/*
 * StreamFeed
 *		The next len stored bytes of the value.  False once the header shows
 *		different dimensions (the rest need not be read).
 */
static bool
StreamFeed(StreamState *ss, const char *data, Size len)
{
	if (ss->hdr_have < STORED_HEADER_BYTES)
	{
		Size		n = Min(len, STORED_HEADER_BYTES - ss->hdr_have);

		memcpy(ss->hdr.bytes + VARHDRSZ + ss->hdr_have, data, n);
		ss->hdr_have += n;
		data += n;
		len -= n;
		if (ss->hdr_have < STORED_HEADER_BYTES)
			return true;
		if (!StreamStart(ss))
			return false;
	}
	while (len > 0)
	{
		Size		cap = ss->rowbytes * ss->flushrows;
		Size		n = Min(len, cap - ss->staged);

		memcpy(ss->stage + ss->staged, data, n);
		ss->staged += n;
		data += n;
		len -= n;
		if (ss->staged == cap)
			StreamFlush(ss);
	}
	return true;
}

/*
 * StreamFeedChunk
 *		ToastFeed of a StreamState.
 */
static bool
StreamFeedChunk(void *arg, const char *data, Size len)
{
	return StreamFeed((StreamState *) arg, data, len);
}

/*
 * StreamScore
 *		Read the out-of-line, uncompressed value `tp` chunk by chunk into the
 *		kernels (toast_stream.c).  Returns 1 with *score set, 0 when the
 *		dimensions differ (ss->hdr holds the document's header), -1 when the
 *		TOAST table is not heap (the caller detoasts).
 */
static int
StreamScore(StreamState *ss, const struct varatt_external *tp, double *score)
{
	int			r;

	if (ss->extsize < STORED_HEADER_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid multivector header"),
				 errdetail("The value has %zu bytes, fewer than a header.",
						   (Size) ss->extsize + VARHDRSZ)));
	r = ToastStreamValue(tp, StreamFeedChunk, ss);
	if (r <= 0)
		return r;

	/* the last rows (the chunk checks make the bytes add up to extsize) */
	StreamFlush(ss);
	if (ss->hamming)
		*score = mvk_hamming_sum(ss->best, ss->query->nvec, ss->hdr.mv.dim);
	else
		*score = mvk_stream_end(&ss->st);
	return 1;
}

/*
 * Scores of out-of-line documents against the current query.
 *
 * An index scan ordered by emb <#> q reranks its candidates with this very
 * function, and the executor then evaluates emb <#> q once more for every
 * row the scan returns (the ORDER BY expression is part of the scan's
 * output): with LIMIT 10 that is ten more 527 kB pages read for nothing.  So
 * the scores of streamed documents are kept, by TOAST pointer, while the
 * query (its bytes and both formats), the active snapshot and the settings
 * that choose how a value is read stay the same, and a document asked for
 * again gets the kept score: the bits it had (the same computation on the
 * same bytes).  A TOAST pointer names the same bytes for as long as a
 * snapshot that saw them is held: TOAST values are never changed in place,
 * and a value's OID is reused only after VACUUM removed all its chunks, which
 * it cannot while a snapshot that sees the value is active in this backend
 * (and a value written after the snapshot is invisible to it, so never
 * scored under it).  A snapshot identical in its horizon, command id and
 * count of completed transactions sees the same values.
 */
#define MEMO_SLOTS	1024

typedef struct ScoreMemo
{
	uint64		generation;		/* the memo's generation when written */
	Oid			toastrelid;
	Oid			valueid;
	int32		extsize;
	double		score;
} ScoreMemo;

static ScoreMemo *memo = NULL;
static uint64 memo_generation = 0;
static void *memo_query = NULL;
static Size memo_query_size = 0;
static Size memo_query_len = 0;
static int	memo_docformat;
static int	memo_queryformat;
static bool memo_walk;
static bool memo_screening;
static Snapshot memo_snapshot;
static TransactionId memo_xmin;
static TransactionId memo_xmax;
static CommandId memo_curcid;
static uint64 memo_completions;

/*
 * MemoSlot
 *		The slot of a document in the memo of this query and snapshot (a new
 *		generation when either changed), or NULL when no snapshot is active.
 */
static ScoreMemo *
MemoSlot(const struct varatt_external *tp, const MultiVector *query,
		 int docformat, int queryformat)
{
	Snapshot	snap;
	Size		qlen = VARSIZE(query);

	if (!ActiveSnapshotSet())
		return NULL;
	snap = GetActiveSnapshot();
	if (memo == NULL)
		memo = MemoryContextAllocZero(TopMemoryContext,
									  sizeof(ScoreMemo) * MEMO_SLOTS);
	if (memo_generation == 0 || snap != memo_snapshot ||
		snap->xmin != memo_xmin || snap->xmax != memo_xmax ||
		snap->curcid != memo_curcid ||
		snap->snapXactCompletionCount != memo_completions ||
		docformat != memo_docformat || queryformat != memo_queryformat ||
		toast_stream_walk != memo_walk || maxsim_screening != memo_screening ||
		qlen != memo_query_len || memcmp(memo_query, query, qlen) != 0)
	{
		memo_generation++;
		memcpy(MaxSimGrowBuffer(&memo_query, &memo_query_size, qlen), query, qlen);
		memo_query_len = qlen;
		memo_docformat = docformat;
		memo_queryformat = queryformat;
		memo_walk = toast_stream_walk;
		memo_screening = maxsim_screening;
		memo_snapshot = snap;
		memo_xmin = snap->xmin;
		memo_xmax = snap->xmax;
		memo_curcid = snap->curcid;
		memo_completions = snap->snapXactCompletionCount;
	}
	return &memo[(tp->va_valueid ^ (tp->va_toastrelid * 2654435761U)) & (MEMO_SLOTS - 1)];
}

/*
 * MaxSimStoredScore
 *		See maxsim_stream.h.
 */
bool
MaxSimStoredScore(Datum doc, int docformat, const MultiVector *query,
				  int queryformat, double *score, int *docdim)
{
	struct varlena *v = (struct varlena *) DatumGetPointer(doc);
	MultiVector *mv;
	bool		same;

	if (maxsim_streaming && VARATT_IS_EXTERNAL_ONDISK(v))
	{
		struct varatt_external tp;

		VARATT_EXTERNAL_GET_POINTER(tp, v);
		if (!VARATT_EXTERNAL_IS_COMPRESSED(tp))
		{
			StreamState ss;
			int			r;
			ScoreMemo  *slot = MemoSlot(&tp, query, docformat, queryformat);

			if (slot && slot->generation == memo_generation &&
				slot->toastrelid == tp.va_toastrelid &&
				slot->valueid == tp.va_valueid &&
				slot->extsize == VARATT_EXTERNAL_GET_EXTSIZE(tp))
			{
				*score = slot->score;
				*docdim = query->dim;
				return true;
			}
			memset(&ss, 0, sizeof(ss));
			ss.extsize = VARATT_EXTERNAL_GET_EXTSIZE(tp);
			ss.docformat = docformat;
			ss.query = query;
			ss.queryformat = queryformat;
			r = StreamScore(&ss, &tp, score);
			if (r == 1 && slot)
			{
				slot->generation = memo_generation;
				slot->toastrelid = tp.va_toastrelid;
				slot->valueid = tp.va_valueid;
				slot->extsize = ss.extsize;
				slot->score = *score;
			}
			if (r >= 0)
			{
				*docdim = ss.hdr.mv.dim;
				return r == 1;
			}
		}
	}

	/* any other form: detoast (a no-op for a plain inline value) */
	mv = (MultiVector *) PG_DETOAST_DATUM(doc);
	CheckHeader(mv, docformat);
	*docdim = mv->dim;
	same = CheckPairAndDims(mv, query, queryformat);
	if (same)
		*score = MaxSimPairScore(mv, query);
	if ((Pointer) mv != (Pointer) v)
		pfree(mv);
	return same;
}

/*
 * MaxSimStored
 *		MaxSimStoredScore with the standard ERROR for different dimensions.
 */
double
MaxSimStored(Datum doc, int docformat, const MultiVector *query,
			 int queryformat)
{
	double		score = 0.0;
	int			docdim;

	if (!MaxSimStoredScore(doc, docformat, query, queryformat, &score, &docdim))
		ReportDims(docdim, query->dim);
	return score;
}
