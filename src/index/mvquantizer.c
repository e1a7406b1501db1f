/*
 * mvquantizer.c
 *	  The quantizer of mvivf: spherical k-means training of the centroids,
 *	  residual bucket tables, the coarse level of the two-level lists and
 *	  their AMX packing, and the backend's cache of trained quantizers.
 *	  Assigning rows to lists and encoding them is in mvassign.c.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "commands/progress.h"
#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/backend_progress.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "backend_cpu_blas.h"
#include "dots_transposed.h"
#include "gemm_amx.h"
#include "gemm_bf16.h"
#include "mvivf.h"
#include "scalar_levels.h"

#define MVIVF_QUANT_VALUES	(1 << 20)	/* residual coordinates for cutoffs */

/*
 * MvivfBlasSingleThread
 *		Make OpenBLAS run in the calling thread and return the previous
 *		thread count for MvivfBlasRestore.  Our products are small or many;
 *		OpenBLAS worker threads spent most of a build yielding to each other
 *		on a loaded machine, and a backend should use one core anyway.
 */
int
MvivfBlasSingleThread(void)
{
	int			threads = cp_blas_get_threads();

	if (threads > 1)
		cp_blas_set_threads(1);
	return threads;
}

/*
 * MvivfBlasRestore
 *		Undo MvivfBlasSingleThread.
 */
void
MvivfBlasRestore(int threads)
{
	if (threads > 1)
		cp_blas_set_threads(threads);
}

/*
 * The backend's quantizer cache: the quantizers of the last few indexes
 * used, each in its own memory context under TopMemoryContext, keyed by the
 * index's OID and relfilenode.  The centroids of an index never change
 * until it is rebuilt, and every rebuild of a trained index (REINDEX, also
 * CONCURRENTLY, TRUNCATE, VACUUM FULL, CLUSTER, a tablespace move) gives it
 * a new relfilenode: the relcache invalidation that follows a rebuild,
 * committed in any session, makes the next lookup miss, and a rolled-back
 * rebuild leaves the old relfilenode and its still valid entry.  The only
 * rebuild in place, a TRUNCATE in the transaction that created the table,
 * builds on an empty table (no centroids, nothing looked up).  As a guard
 * against a relfilenode number used again for another build (possible once
 * the old file is gone and the OID counter wraps around), an entry also
 * keeps the metapage's quantizer fields (list count, dimension, bits,
 * where the centroids start, the trained bucket cutoffs and weights) and is
 * used only while they match.  Saves reading the centroid pages on every
 * insert statement and scan, and grouping them on every insert statement;
 * several entries, so that a table with several mvivf indexes does not
 * reload them for every row.
 */
#define MVIVF_QUANTIZER_CACHE_SIZE 8

typedef struct MvivfCachedQuantizer
{
	Oid			relid;
	Oid			relfilenode;
	MvivfMetaPageData meta;		/* the metapage it was loaded with */
	uint64		lastUse;
	MemoryContext ctx;
	MvivfQuantizer *q;
	bool		grouped;		/* q has its two-level structure */
}			MvivfCachedQuantizer;

static MvivfCachedQuantizer quantizerCache[MVIVF_QUANTIZER_CACHE_SIZE];
static uint64 quantizerCacheClock = 0;

/*
 * SameQuantizer
 *		Whether two metapages describe the same trained quantizer.
 */
static bool
SameQuantizer(const MvivfMetaPageData * a, const MvivfMetaPageData * b)
{
	return a->nlists == b->nlists && a->dim == b->dim && a->nbits == b->nbits &&
		a->codeSize == b->codeSize && a->centroidStart == b->centroidStart &&
		a->centroidsPerPage == b->centroidsPerPage &&
		memcmp(a->weights, b->weights, sizeof(a->weights)) == 0 &&
		memcmp(a->cutoffs, b->cutoffs, sizeof(a->cutoffs)) == 0;
}

/*
 * GroupCachedQuantizer
 *		Give a cached quantizer its two-level structure, in the cache's
 *		memory.  The slot is empty while it runs, so that an error part way
 *		(out of memory) leaves no half-built structure behind: the next
 *		lookup loads the index's quantizer again.
 */
static void
GroupCachedQuantizer(MvivfCachedQuantizer * e)
{
	MvivfQuantizer *q = e->q;
	MemoryContext old;

	e->q = NULL;
	old = MemoryContextSwitchTo(e->ctx);
	MvivfPrepareCoarse(q);
	MemoryContextSwitchTo(old);
	e->q = q;
	e->grouped = true;
}

/*
 * MvivfGetQuantizer
 *		The quantizer of a trained index from the backend's cache; with
 *		forAssign, also its two-level structure (MvivfPrepareCoarse), which
 *		only assigning tokens (inserts) uses.  Scans score every centroid and
 *		do not wait for the grouping: a k-means over the centroids, several
 *		milliseconds at 4,000 lists and tens at 13,000, which every session's
 *		first scan of an index used to pay.
 */
const MvivfQuantizer *
MvivfGetQuantizer(Relation index, MvivfMetaPageData * meta, bool forAssign)
{
	Oid			relid = RelationGetRelid(index);
	Oid			node = index->rd_rel->relfilenode;
	MvivfCachedQuantizer *slot = NULL;
	MemoryContext old;
	int			i;

	for (i = 0; i < MVIVF_QUANTIZER_CACHE_SIZE; i++)
	{
		MvivfCachedQuantizer *e = &quantizerCache[i];

		if (e->q != NULL && e->relid == relid && e->relfilenode == node &&
			SameQuantizer(&e->meta, meta))
		{
			e->lastUse = ++quantizerCacheClock;
			if (forAssign && !e->grouped)
				GroupCachedQuantizer(e);
			return e->q;
		}
		/* an empty slot, else the least recently used one */
		if (slot == NULL || (slot->q != NULL && (e->q == NULL || e->lastUse < slot->lastUse)))
			slot = e;
	}

	if (slot->ctx == NULL)
		slot->ctx = AllocSetContextCreate(TopMemoryContext, "mvivf quantizer cache",
										  ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(slot->ctx);
	slot->q = NULL;
	slot->grouped = false;
	old = MemoryContextSwitchTo(slot->ctx);
	{
		MvivfQuantizer *q = palloc0(sizeof(MvivfQuantizer));

		MvivfLoadQuantizer(index, meta, q);
		slot->q = q;
	}
	MemoryContextSwitchTo(old);
	slot->relid = relid;
	slot->relfilenode = node;
	slot->meta = *meta;
	slot->lastUse = ++quantizerCacheClock;
	if (forAssign)
		GroupCachedQuantizer(slot);
	return slot->q;
}

/*
 * MvivfScoreCentroids
 *		scores[r * nlists + l] = dot(rows[r], centroid l).
 */
void
MvivfScoreCentroids(const MvivfQuantizer * q, const float *rows, int nrows,
					float *scores)
{
	int			threads = MvivfBlasSingleThread();

	cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nrows, q->nlists,
				q->dim, 1.0f, rows, q->dim, q->centroids, q->dim, 0.0f,
				scores, q->nlists);
	MvivfBlasRestore(threads);
}

/*
 * MvivfScoreCentroidsTransposed
 *		scores[l * ld + r] = dot(rows[r], centroid l), r < nrows: the
 *		transposed product (one token's scores for every row contiguous),
 *		as the approximate stage of a scan reads it, once per query.  The
 *		entries from nrows to ld - 1 of each line are left alone.  The
 *		engine's dots_transposed.c reads the centroids where the cache keeps
 *		them (an SGEMM packed them anew for every query, which cost as much
 *		as the product); CPUs without FMA keep the SGEMM.
 */
void
MvivfScoreCentroidsTransposed(const MvivfQuantizer * q, const float *rows,
							  int nrows, float *scores, int ld)
{
	static int	form = -1;
	int			threads;

	if (form < 0)
		form = MvivfCpuHasAvx512() ? CP_DOTS_AVX512 :
			cp_dots_form_available(CP_DOTS_AVX2) ? CP_DOTS_AVX2 : CP_DOTS_SCALAR;
	if (form != CP_DOTS_SCALAR)
	{
		float	   *qT = palloc(sizeof(float) * (Size) q->dim * CP_DOTS_ROWS);
		int			r0;

		for (r0 = 0; r0 < nrows; r0 += CP_DOTS_ROWS)
		{
			int			nr = Min(CP_DOTS_ROWS, nrows - r0);
			int			l0;

			cp_dots_transpose_rows(rows + (Size) r0 * q->dim, nr, q->dim, qT);
			/* a few thousand centroids between interrupt checks */
			for (l0 = 0; l0 < q->nlists; l0 += 4096)
			{
				CHECK_FOR_INTERRUPTS();
				cp_dots_transposed((CpDotsForm) form, q->centroids, l0,
								   Min(q->nlists, l0 + 4096), q->dim, qT, nr,
								   scores + r0, ld);
			}
		}
		pfree(qT);
		return;
	}
	threads = MvivfBlasSingleThread();
	cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q->nlists, nrows,
			 q->dim, 1.0f, q->centroids, q->dim, rows, q->dim, 0.0f,
			 scores, ld);
	MvivfBlasRestore(threads);
}

/*
 * PackGroups
 *		Where the CPU has AMX-BF16, keep the coarse centroids and each
 *		group's member centroids as bf16 AMX tiles: scoring tokens against
 *		them is most of a build, and the tiles do it several times faster
 *		than fp32 SGEMM.  bf16 rounding moves a token's centroid scores by about 3e-4
 *		(unit rows, 128 dimensions), so a token may go to a centroid whose
 *		fp32 score is that much below the best: its residual is no larger in
 *		any way that matters, and build and insert assign the same way.
 */
static void
PackGroups(MvivfQuantizer * q)
{
	int			dim = q->dim;
	Size		total = 0;
	uint16	   *bf;
	int			g;

	if (!MvivfUseAmx())
		return;
	q->groupPackedStart = palloc(sizeof(Size) * q->ncoarse);
	for (g = 0; g < q->ncoarse; g++)
	{
		q->groupPackedStart[g] = total;
		total += cp_amx_packed_words(q->groupStart[g + 1] - q->groupStart[g], dim);
	}
	/* 64-byte aligned tiles: allocate a line more and round up */
	q->groupPacked = palloc_extended(sizeof(uint32) * total + 64, MCXT_ALLOC_HUGE);
	bf = palloc_extended(sizeof(uint16) * (Size) q->nlists * dim, MCXT_ALLOC_HUGE);
	cp_round_to_bf16(q->groupCentroids, bf, (Size) q->nlists * dim);
	for (g = 0; g < q->ncoarse; g++)
	{
		int			ng = q->groupStart[g + 1] - q->groupStart[g];

		if (ng > 0)
			cp_amx_pack_weights(bf + (Size) q->groupStart[g] * dim, ng, dim,
								MvivfAmxAligned(q->groupPacked) + q->groupPackedStart[g], 1);
	}
	q->coarsePacked = palloc(sizeof(uint32) * cp_amx_packed_words(q->ncoarse, dim) + 64);
	cp_round_to_bf16(q->coarse, bf, (Size) q->ncoarse * dim);
	cp_amx_pack_weights(bf, q->ncoarse, dim, MvivfAmxAligned(q->coarsePacked), 1);
	pfree(bf);
}

/*
 * MvivfPrepareCoarse
 *		Group the centroids under about sqrt(nlists) coarse centroids
 *		(spherical k-means over the centroids, deterministic), so that a
 *		token is assigned by scoring the coarse centroids and then only the
 *		members of its MVIVF_COARSE_PROBES best groups: about
 *		(1 + MVIVF_COARSE_PROBES) * sqrt(nlists) dot products instead of
 *		nlists.  Build and insert both assign this way, so they agree; the
 *		assignment may miss the very nearest centroid, which only makes the
 *		residual a little larger.  Flat below MVIVF_COARSE_MIN_LISTS lists.
 */
void
MvivfPrepareCoarse(MvivfQuantizer * q)
{
	int			nc;
	int			dim = q->dim;
	float	   *scores;
	int		   *assign;
	int		   *count;
	int			it;
	int			l;
	int			g;
	int			threads;

	MvivfFreeCoarse(q);
	if (q->nlists < MVIVF_COARSE_MIN_LISTS)
		return;
	threads = MvivfBlasSingleThread();
	nc = (int) sqrt((double) q->nlists);
	q->coarse = palloc(sizeof(float) * nc * dim);
	for (g = 0; g < nc; g++)
		memcpy(q->coarse + (Size) g * dim,
			   q->centroids + (Size) ((int64) g * q->nlists / nc) * dim,
			   sizeof(float) * dim);
	scores = palloc_extended(sizeof(float) * (Size) q->nlists * nc, MCXT_ALLOC_HUGE);
	assign = palloc(sizeof(int) * q->nlists);
	count = palloc0(sizeof(int) * (nc + 1));
	for (it = 0; it <= 5; it++)
	{
		cp_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q->nlists, nc, dim,
					1.0f, q->centroids, dim, q->coarse, dim, 0.0f, scores, nc);
		for (l = 0; l < q->nlists; l++)
		{
			const float *s = scores + (Size) l * nc;
			int			best = 0;

			for (g = 1; g < nc; g++)
				if (s[g] > s[best])
					best = g;
			assign[l] = best;
		}
		if (it == 5)
			break;
		/* new coarse centroid = normalised mean of its members */
		memset(q->coarse, 0, sizeof(float) * nc * dim);
		memset(count, 0, sizeof(int) * nc);
		for (l = 0; l < q->nlists; l++)
		{
			float	   *c = q->coarse + (Size) assign[l] * dim;
			const float *x = q->centroids + (Size) l * dim;
			int			d;

			for (d = 0; d < dim; d++)
				c[d] += x[d];
			count[assign[l]]++;
		}
		for (g = 0; g < nc; g++)
		{
			float	   *c = q->coarse + (Size) g * dim;
			double		norm = 0;
			int			d;

			if (count[g] == 0)
			{
				memcpy(c, q->centroids + (Size) ((int64) g * q->nlists / nc) * dim,
					   sizeof(float) * dim);
				continue;
			}
			for (d = 0; d < dim; d++)
				norm += (double) c[d] * c[d];
			if (norm > 0)
				for (d = 0; d < dim; d++)
					c[d] = (float) (c[d] / sqrt(norm));
		}
	}
	/* CSR of the groups, with the member centroids copied contiguously */
	memset(count, 0, sizeof(int) * (nc + 1));
	for (l = 0; l < q->nlists; l++)
		count[assign[l] + 1]++;
	for (g = 0; g < nc; g++)
		count[g + 1] += count[g];
	q->groupStart = palloc(sizeof(int) * (nc + 1));
	memcpy(q->groupStart, count, sizeof(int) * (nc + 1));
	q->groupMembers = palloc(sizeof(int) * q->nlists);
	q->groupCentroids = palloc_extended(sizeof(float) * (Size) q->nlists * dim,
										MCXT_ALLOC_HUGE);
	for (l = 0; l < q->nlists; l++)
	{
		int			pos = count[assign[l]]++;

		q->groupMembers[pos] = l;
		memcpy(q->groupCentroids + (Size) pos * dim, q->centroids + (Size) l * dim,
			   sizeof(float) * dim);
	}
	q->ncoarse = nc;
	pfree(scores);
	pfree(assign);
	pfree(count);
	MvivfBlasRestore(threads);
	PackGroups(q);
}

/*
 * MvivfFreeCoarse
 *		Forget the two-level structure (after the centroids changed).
 */
void
MvivfFreeCoarse(MvivfQuantizer * q)
{
	if (q->ncoarse > 0)
	{
		pfree(q->coarse);
		pfree(q->groupStart);
		pfree(q->groupMembers);
		pfree(q->groupCentroids);
		if (q->groupPacked)
		{
			pfree(q->groupPacked);
			pfree(q->groupPackedStart);
			pfree(q->coarsePacked);
		}
	}
	q->groupPacked = NULL;
	q->coarsePacked = NULL;
	q->groupPackedStart = NULL;
	q->ncoarse = 0;
	q->coarse = NULL;
	q->groupStart = NULL;
	q->groupMembers = NULL;
	q->groupCentroids = NULL;
}


/*
 * NormalizeRow
 *		Scale a row to unit length (left alone when it is zero).
 */
static void
NormalizeRow(float *x, int dim)
{
	double		norm = 0;
	int			d;

	for (d = 0; d < dim; d++)
		norm += (double) x[d] * x[d];
	if (norm > 0)
	{
		float		inv = (float) (1.0 / sqrt(norm));

		for (d = 0; d < dim; d++)
			x[d] *= inv;
	}
}

/*
 * MvivfTrainQuantizer
 *		Spherical k-means over the n sample rows (shuffled in place) for the
 *		centroids of q (dim, nbits, nlists and codeSize set by the caller),
 *		then bucket cutoffs and weights from the sample residuals.  scores is
 *		scratch of MVIVF_ASSIGN_BLOCK x nlists floats.
 */
void
MvivfTrainQuantizer(MvivfQuantizer * q, float *sample, int64 n, int iters,
					pg_prng_state *prng, float *scores)
{
	int			dim = q->dim;
	int			nlists = q->nlists;
	int			nb = 1 << q->nbits;
	float	   *sums;
	int64	   *counts;
	uint32	   *assign;
	float	   *vals;
	float	   *tmp;
	int64		nvals;
	int64		stride;
	int64		i;
	int			it;
	int			b;

	/* shuffle the sample so that its first nlists rows are a random seed */
	tmp = palloc(sizeof(float) * dim);
	for (i = n - 1; i > 0; i--)
	{
		int64		j = pg_prng_uint64_range(prng, 0, i);

		memcpy(tmp, sample + i * dim, sizeof(float) * dim);
		memcpy(sample + i * dim, sample + j * dim, sizeof(float) * dim);
		memcpy(sample + j * dim, tmp, sizeof(float) * dim);
	}
	pfree(tmp);
	q->centroids = palloc_extended(sizeof(float) * (Size) nlists * dim, MCXT_ALLOC_HUGE);
	memcpy(q->centroids, sample, sizeof(float) * (Size) nlists * dim);
	for (i = 0; i < nlists; i++)
		NormalizeRow(q->centroids + i * dim, dim);

	sums = palloc_extended(sizeof(float) * (Size) nlists * dim, MCXT_ALLOC_HUGE);
	counts = palloc(sizeof(int64) * nlists);
	assign = palloc_extended(sizeof(uint32) * n, MCXT_ALLOC_HUGE);
	/* no codes while training: the cutoffs come from its residuals */
	for (b = 0; b < MVIVF_MAX_BUCKETS; b++)
		q->cutoffs[b] = 0;

	for (it = 0; it < iters; it++)
	{
		const int64 chunk = MVIVF_TWOLEVEL_BLOCK;
		int64		start;

		MvivfPrepareCoarse(q);
		memset(sums, 0, sizeof(float) * (Size) nlists * dim);
		memset(counts, 0, sizeof(int64) * nlists);
		for (start = 0; start < n; start += chunk)
		{
			int64		m = Min(chunk, n - start);

			CHECK_FOR_INTERRUPTS();
			MvivfAssignEncode(q, sample + start * dim, m, assign + start,
							  NULL, scores);
		}
		for (i = 0; i < n; i++)
		{
			float	   *s = sums + (Size) assign[i] * dim;
			const float *x = sample + i * dim;
			int			d;

			for (d = 0; d < dim; d++)
				s[d] += x[d];
			counts[assign[i]]++;
		}
		for (i = 0; i < nlists; i++)
		{
			float	   *c = q->centroids + i * dim;

			if (counts[i] == 0)
			{
				/* re-seed an empty list with a random sample row */
				int64		r = pg_prng_uint64_range(prng, 0, n - 1);

				memcpy(c, sample + r * dim, sizeof(float) * dim);
			}
			else
				memcpy(c, sums + i * dim, sizeof(float) * dim);
			NormalizeRow(c, dim);
		}
		pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, it + 1);
	}

	/* final assignment, then quantiles of the residual coordinates */
	MvivfPrepareCoarse(q);
	for (i = 0; i < n; i += MVIVF_TWOLEVEL_BLOCK)
	{
		CHECK_FOR_INTERRUPTS();
		MvivfAssignEncode(q, sample + i * dim, Min(MVIVF_TWOLEVEL_BLOCK, n - i),
						  assign + i, NULL, scores);
	}
	stride = Max(1, (n * dim) / MVIVF_QUANT_VALUES);
	vals = palloc_extended(sizeof(float) * ((n * dim) / stride + 1), MCXT_ALLOC_HUGE);
	nvals = 0;
	for (i = 0; i < n * dim; i += stride)
	{
		int64		row = i / dim;
		int			d = i % dim;

		vals[nvals++] = sample[i] - q->centroids[(Size) assign[row] * dim + d];
	}
	qsort(vals, nvals, sizeof(float), MvivfFloatCmp);
	if (!cp_scalar_levels(vals, nvals, nb, q->weights, q->cutoffs))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed to train the residual levels of an mvivf index.")));
	if (message_level_is_interesting(DEBUG1))
	{
		StringInfoData buf;

		initStringInfo(&buf);
		for (b = 0; b < nb; b++)
			appendStringInfo(&buf, "%s%g", b ? " " : "", q->weights[b]);
		appendStringInfoString(&buf, ", cutoffs");
		for (b = 0; b < nb - 1; b++)
			appendStringInfo(&buf, " %g", q->cutoffs[b]);
		elog(DEBUG1, "mvivf residual levels %s from %lld coordinates", buf.data,
			 (long long) nvals);
		pfree(buf.data);
	}
	pfree(vals);
	pfree(sums);
	pfree(counts);
	pfree(assign);
}
