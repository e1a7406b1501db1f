/*
 * token_pool.c
 *	  Hierarchical token pooling (docs/pooling.md), PostgreSQL-free.
 *
 * The steps, each computed the way colpali-engine's HierarchicalTokenPooler
 * (with SciPy underneath) computes it, so that the clusters are the same:
 *
 *	1. s_ij = <x_i, x_j> rounded to float32, and the "distance rows"
 *	   r_i = 1 - s_i (float32).  The pooler hands these N rows of N numbers
 *	   to SciPy's linkage as observations, so the clustering is Ward's method
 *	   on the Euclidean distances between distance rows (not on the cosine
 *	   distances themselves).
 *	2. d_ij = || r_i - r_j || in double (the condensed distance matrix).
 *	3. Ward agglomeration with the nearest-neighbour-chain algorithm, in
 *	   exactly SciPy's order of scanning, tie rule (a strictly smaller
 *	   distance replaces the candidate; the previous chain element is the
 *	   initial candidate) and Lance-Williams update formula.
 *	4. The merges sorted by distance (stable), relabelled with a union-find.
 *	5. The flat clustering "maxclust" with t = max(N / factor, 1) (integer
 *	   division): the smallest merge height h, found by SciPy's bisection
 *	   over the sorted merges, for which cutting the tree at h leaves at
 *	   most t clusters; clusters are numbered in the order a depth-first walk
 *	   from the root (first child first) meets them.  Equal merge heights can
 *	   leave fewer than t clusters.
 *	6. Each cluster's rows are averaged and the mean divided by
 *	   max(||mean||, 1e-12); the pooled rows come in cluster order.
 *
 * The arithmetic of steps 2-5 must not be contracted into fused
 * multiply-adds (the Makefile builds this file with -ffp-contract=off), so
 * that every distance is the one SciPy computes, bit for bit, whenever the
 * float32 similarities agree.
 */
#include "token_pool.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* One merge of the agglomeration: clusters a and b at distance dist. */
typedef struct PoolMerge
{
	double		dist;
	int			a;
	int			b;
	int			size;
} PoolMerge;

/* The workspace, carved out of the caller's memory. */
typedef struct PoolWork
{
	float	   *r;				/* N x N distance rows */
	double	   *d;				/* condensed N (N - 1) / 2 distances */
	PoolMerge  *z;				/* N - 1 merges */
	PoolMerge  *ztmp;			/* N - 1, merge sort buffer */
	double	   *md;				/* N - 1, max merge height below each node */
	int		   *size;			/* N, current cluster sizes (0 = gone) */
	int		   *chain;			/* N, nearest-neighbour chain */
	int		   *parent;			/* 2N - 1, union-find */
	int		   *stack;			/* N, tree walk */
	int		   *flat;			/* N, flat cluster numbers (1-based) */
	int		   *order;			/* N, rows sorted by cluster */
	unsigned char *visited;		/* 2N - 1 */
} PoolWork;

#define ALIGN8(x)	(((x) + 7) & ~(size_t) 7)

/*
 * Byte layout of the workspace; fills w when base is not NULL and returns
 * the total size.
 */
static size_t
pool_layout(int n, char *base, PoolWork *w)
{
	size_t		off = 0;
	size_t		nn = (size_t) n;
	size_t		m = nn > 1 ? nn - 1 : 1;

#define CARVE(field, type, count) \
	do { \
		if (base) \
			w->field = (type *) (base + off); \
		off = ALIGN8(off + sizeof(type) * (count)); \
	} while (0)

	CARVE(r, float, nn * nn);
	CARVE(d, double, nn * (nn - 1) / 2 + 1);
	CARVE(z, PoolMerge, m);
	CARVE(ztmp, PoolMerge, m);
	CARVE(md, double, m);
	CARVE(size, int, nn);
	CARVE(chain, int, nn);
	CARVE(parent, int, 2 * nn);
	CARVE(stack, int, nn);
	CARVE(flat, int, nn);
	CARVE(order, int, nn);
	CARVE(visited, unsigned char, 2 * nn);
#undef CARVE
	return off;
}

/*
 * cp_token_pool_max_clusters
 *		The cluster-count rule: max(N / factor, 1), N for factor 1.
 */
int
cp_token_pool_max_clusters(int nrows, int factor)
{
	int			t;

	if (nrows < 1 || factor < 1)
		return 0;
	if (factor == 1)
		return nrows;
	t = nrows / factor;
	return t < 1 ? 1 : t;
}

/*
 * cp_token_pool_workspace_bytes
 *		Workspace for nrows rows, or 0 when nrows is out of range.
 */
size_t
cp_token_pool_workspace_bytes(int nrows)
{
	if (nrows < 1 || nrows > CP_POOL_MAX_ROWS)
		return 0;
	return pool_layout(nrows, NULL, NULL);
}

/* Index of (i, j), i != j, in the condensed upper triangle, as SciPy has it. */
static inline size_t
condensed_index(size_t n, size_t i, size_t j)
{
	if (i > j)
	{
		size_t		t = i;

		i = j;
		j = t;
	}
	return n * i - (i * (i + 1) / 2) + (j - i - 1);
}

/*
 * Ward's Lance-Williams update: distance from cluster i to the union of x
 * and y, written operation for operation as SciPy writes it.
 */
static inline double
ward_update(double d_xi, double d_yi, double d_xy, int size_x, int size_y,
			int size_i)
{
	double		t = 1.0 / (size_x + size_y + size_i);

	return sqrt((size_i + size_x) * t * d_xi * d_xi +
				(size_i + size_y) * t * d_yi * d_yi -
				size_i * t * d_xy * d_xy);
}

/*
 * Dot product (in double) and Euclidean distance of two float rows of n
 * elements.  Each keeps 32 independent partial sums, lane l of vector
 * accumulator a taking the elements k = 32 j + 8 a + l of the whole blocks
 * of 32, accumulator 0 also the blocks of 8 after them, a scalar sum the
 * last n mod 8 elements; at the end the four accumulators are added
 * ((0 + 1) + (2 + 3)), the tail to lane 0, the lanes pairwise.  The same
 * operations in every build, so the compiled variants below give the same
 * bits and differ only in how many lanes one instruction handles.
 */
typedef double PoolV8d __attribute__((vector_size(64)));
typedef float PoolV8f __attribute__((vector_size(32)));

#define LOAD8(p)	({ PoolV8f v_; memcpy(&v_, (p), sizeof(v_)); __builtin_convertvector(v_, PoolV8d); })

#define ROW_REDUCE_BODY(a, b, n, TERM, STERM, FINISH) \
	do { \
		PoolV8d		acc0 = {0, 0, 0, 0, 0, 0, 0, 0}; \
		PoolV8d		acc1 = acc0; \
		PoolV8d		acc2 = acc0; \
		PoolV8d		acc3 = acc0; \
		double		tail = 0.0; \
		int			k = 0; \
		for (; k + 32 <= (n); k += 32) \
		{ \
			acc0 += TERM(LOAD8((a) + k), LOAD8((b) + k)); \
			acc1 += TERM(LOAD8((a) + k + 8), LOAD8((b) + k + 8)); \
			acc2 += TERM(LOAD8((a) + k + 16), LOAD8((b) + k + 16)); \
			acc3 += TERM(LOAD8((a) + k + 24), LOAD8((b) + k + 24)); \
		} \
		for (; k + 8 <= (n); k += 8) \
			acc0 += TERM(LOAD8((a) + k), LOAD8((b) + k)); \
		for (; k < (n); k++) \
			tail += STERM((double) (a)[k], (double) (b)[k]); \
		acc0 = (acc0 + acc1) + (acc2 + acc3); \
		acc0[0] += tail; \
		return FINISH(((acc0[0] + acc0[1]) + (acc0[2] + acc0[3])) + \
					  ((acc0[4] + acc0[5]) + (acc0[6] + acc0[7]))); \
	} while (0)

#define TERM_DOT(x, y)		((x) * (y))
#define TERM_SQDIFF(x, y)	(((x) - (y)) * ((x) - (y)))
#define FINISH_DOT(s)		(s)
#define FINISH_DIST(s)		sqrt(s)

#define DEFINE_ROW_FUNCTIONS(suffix, attr) \
	attr static double \
	row_dot_##suffix(const float *a, const float *b, int n) \
	{ \
		ROW_REDUCE_BODY(a, b, n, TERM_DOT, TERM_DOT, FINISH_DOT); \
	} \
	attr static double \
	row_distance_##suffix(const float *a, const float *b, int n) \
	{ \
		ROW_REDUCE_BODY(a, b, n, TERM_SQDIFF, TERM_SQDIFF, FINISH_DIST); \
	}

DEFINE_ROW_FUNCTIONS(generic,)
#if defined(__x86_64__) && defined(__GNUC__)
DEFINE_ROW_FUNCTIONS(avx2, __attribute__((target("avx2"))))
DEFINE_ROW_FUNCTIONS(avx512, __attribute__((target("avx512f"))))
#endif

typedef double (*RowReduceFn) (const float *a, const float *b, int n);

/* Set by tests only: use the generic variants everywhere. */
static bool force_generic = false;

/*
 * cp_token_pool_force_generic
 *		Tests: compute with the generic row functions (the SIMD variants must
 *		give the same bits).
 */
void
cp_token_pool_force_generic(bool on)
{
	force_generic = on;
}

/* The widest variants this CPU runs. */
static void
pick_row_functions(RowReduceFn *dot, RowReduceFn *distance)
{
	*dot = row_dot_generic;
	*distance = row_distance_generic;
	if (force_generic)
		return;
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
	{
		*dot = row_dot_avx512;
		*distance = row_distance_avx512;
	}
	else if (__builtin_cpu_supports("avx2"))
	{
		*dot = row_dot_avx2;
		*distance = row_distance_avx2;
	}
#endif
}

/*
 * Steps 1 and 2: distance rows and their pairwise Euclidean distances.
 */
static CpStatus
pool_distances(const float *x, int n, int dim, PoolWork *w,
			   CpPoolProgressFn progress, void *arg, CpError *err)
{
	RowReduceFn row_dot;
	RowReduceFn row_distance;

	pick_row_functions(&row_dot, &row_distance);
	for (int i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * dim;

		for (int j = i; j < n; j++)
		{
			float		sf = (float) row_dot(xi, x + (size_t) j * dim, dim);

			if (!isfinite(sf))
				return cp_error(err, CP_ERR_LIMIT,
								"the dot product of rows %d and %d is out of the float range",
								i + 1, j + 1);
			w->r[(size_t) i * n + j] = 1.0f - sf;
			w->r[(size_t) j * n + i] = 1.0f - sf;
		}
		if (progress && progress(arg))
			return cp_error(err, CP_ERR_CANCELLED, "token pooling cancelled");
	}

	/*
	 * Blocks of DIST_BLOCK rows i against every later row j, so that row j
	 * is read from memory once per block, not once per row (the rows are
	 * N floats each and do not all fit in the caches).
	 */
#define DIST_BLOCK 16
	for (int i0 = 0; i0 < n - 1; i0 += DIST_BLOCK)
	{
		int			i1 = i0 + DIST_BLOCK < n - 1 ? i0 + DIST_BLOCK : n - 1;

		for (int j = i0 + 1; j < n; j++)
		{
			const float *rj = w->r + (size_t) j * n;

			for (int i = i0; i < i1 && i < j; i++)
				w->d[condensed_index(n, i, j)] = row_distance(w->r + (size_t) i * n, rj, n);
		}
		if (progress && progress(arg))
			return cp_error(err, CP_ERR_CANCELLED, "token pooling cancelled");
	}
	return CP_OK;
}

/*
 * Step 3: Ward agglomeration by the nearest-neighbour chain, recording the
 * merges (a < b are the current slots of the two clusters) in w->z.
 */
static CpStatus
pool_nn_chain(int n, PoolWork *w, CpPoolProgressFn progress, void *arg,
			  CpError *err)
{
	double	   *d = w->d;
	int		   *size = w->size;
	int		   *chain = w->chain;
	int			chain_length = 0;

	for (int i = 0; i < n; i++)
		size[i] = 1;

	for (int k = 0; k < n - 1; k++)
	{
		int			x = 0;
		int			y = 0;
		int			nx;
		int			ny;
		double		current_min;

		if (chain_length == 0)
		{
			chain_length = 1;
			for (int i = 0; i < n; i++)
			{
				if (size[i] > 0)
				{
					chain[0] = i;
					break;
				}
			}
		}

		/* follow nearest neighbours until two are each other's nearest */
		for (;;)
		{
			x = chain[chain_length - 1];
			/* the previous chain element is preferred on ties (no cycles) */
			if (chain_length > 1)
			{
				y = chain[chain_length - 2];
				current_min = d[condensed_index(n, x, y)];
			}
			else
				current_min = INFINITY;

			for (int i = 0; i < n; i++)
			{
				double		dist;

				if (size[i] == 0 || i == x)
					continue;
				dist = d[condensed_index(n, x, i)];
				if (dist < current_min)
				{
					current_min = dist;
					y = i;
				}
			}
			if (chain_length > 1 && y == chain[chain_length - 2])
				break;
			if (chain_length >= n)
				return cp_error(err, CP_ERR_INVALID_ARG,
								"token pooling found no nearest neighbour (non-finite distances)");
			chain[chain_length++] = y;
		}

		chain_length -= 2;
		if (x > y)
		{
			int			t = x;

			x = y;
			y = t;
		}
		nx = size[x];
		ny = size[y];
		w->z[k].a = x;
		w->z[k].b = y;
		w->z[k].dist = current_min;
		w->z[k].size = nx + ny;
		size[x] = 0;
		size[y] = nx + ny;

		for (int i = 0; i < n; i++)
		{
			int			ni = size[i];

			if (ni == 0 || i == y)
				continue;
			d[condensed_index(n, i, y)] =
				ward_update(d[condensed_index(n, i, x)],
							d[condensed_index(n, i, y)],
							current_min, nx, ny, ni);
		}
		if ((k & 63) == 63 && progress && progress(arg))
			return cp_error(err, CP_ERR_CANCELLED, "token pooling cancelled");
	}
	return CP_OK;
}

/* NumPy's sort order for doubles: NaN after everything else. */
static inline bool
merge_before(const PoolMerge *p, const PoolMerge *q)
{
	if (isnan(q->dist))
		return !isnan(p->dist);
	return p->dist < q->dist;
}

/*
 * Step 4a: stable merge sort of the merges by distance (NumPy's "mergesort"
 * is stable, so equal distances keep the order they were made in).
 */
static void
pool_sort_merges(PoolMerge *z, PoolMerge *tmp, int m)
{
	for (int width = 1; width < m; width *= 2)
	{
		for (int lo = 0; lo < m; lo += 2 * width)
		{
			int			mid = lo + width < m ? lo + width : m;
			int			hi = lo + 2 * width < m ? lo + 2 * width : m;
			int			i = lo;
			int			j = mid;
			int			o = lo;

			while (i < mid && j < hi)
			{
				/* take from the right only when strictly before */
				if (merge_before(&z[j], &z[i]))
					tmp[o++] = z[j++];
				else
					tmp[o++] = z[i++];
			}
			while (i < mid)
				tmp[o++] = z[i++];
			while (j < hi)
				tmp[o++] = z[j++];
		}
		memcpy(z, tmp, sizeof(PoolMerge) * m);
	}
}

/* Union-find root of node x. */
static int
uf_find(int *parent, int x)
{
	int			root = x;

	while (parent[root] != root)
		root = parent[root];
	while (parent[x] != root)
	{
		int			next = parent[x];

		parent[x] = root;
		x = next;
	}
	return root;
}

/*
 * Step 4b: name the clusters of the sorted merges as SciPy does: leaves
 * 0..N-1, the cluster made by sorted merge k is N + k, a < b.
 */
static void
pool_label(int n, PoolWork *w)
{
	int		   *parent = w->parent;
	int			next_label = n;

	for (int i = 0; i < 2 * n - 1; i++)
		parent[i] = i;
	for (int k = 0; k < n - 1; k++)
	{
		int			xr = uf_find(parent, w->z[k].a);
		int			yr = uf_find(parent, w->z[k].b);
		int			sx = xr < n ? 1 : w->z[xr - n].size;
		int			sy = yr < n ? 1 : w->z[yr - n].size;

		w->z[k].a = xr < yr ? xr : yr;
		w->z[k].b = xr < yr ? yr : xr;
		parent[xr] = next_label;
		parent[yr] = next_label;
		next_label++;
		w->z[k].size = sx + sy;
	}
}

/*
 * Step 5a: how many clusters a cut at height thresh gives, stopping as
 * soon as there are more than max_nc (then returns max_nc + 1).
 */
static int
pool_count_clusters(int n, PoolWork *w, double thresh, int max_nc)
{
	unsigned char *visited = w->visited;
	int		   *stack = w->stack;
	int			nc = 0;
	int			k = 0;

	memset(visited, 0, 2 * (size_t) n);
	stack[0] = 2 * n - 2;
	while (k >= 0)
	{
		int			root = stack[k] - n;
		int			lc = w->z[root].a;
		int			rc = w->z[root].b;

		if (w->md[root] <= thresh)
		{
			/* this subtree is one cluster */
			if (++nc > max_nc)
				return nc;
			k--;
			visited[lc] = 1;
			visited[rc] = 1;
			continue;
		}
		if (!visited[lc])
		{
			visited[lc] = 1;
			if (lc >= n)
			{
				stack[++k] = lc;
				continue;
			}
			if (++nc > max_nc)
				return nc;
		}
		if (!visited[rc])
		{
			visited[rc] = 1;
			if (rc >= n)
			{
				stack[++k] = rc;
				continue;
			}
			if (++nc > max_nc)
				return nc;
		}
		k--;
	}
	return nc;
}

/*
 * Step 5: flat clusters, at most max_nc, numbered from 1 in w->flat.
 */
static void
pool_flat_clusters(int n, PoolWork *w, int max_nc)
{
	unsigned char *visited = w->visited;
	int		   *stack = w->stack;
	int		   *flat = w->flat;
	int			lower = -1;
	int			upper = n - 1;
	double		cutoff;
	int			n_cluster = 0;
	int			leader = -1;
	int			k;

	if (max_nc >= n)
	{
		for (int i = 0; i < n; i++)
			flat[i] = i + 1;
		return;
	}

	/* highest merge below each node (the merges are sorted: children first) */
	for (int r = 0; r < n - 1; r++)
	{
		double		m = w->z[r].dist;

		if (w->z[r].a >= n && w->md[w->z[r].a - n] > m)
			m = w->md[w->z[r].a - n];
		if (w->z[r].b >= n && w->md[w->z[r].b - n] > m)
			m = w->md[w->z[r].b - n];
		w->md[r] = m;
	}

	/* bisection for the lowest admissible cut, over the sorted merges */
	while (upper - lower > 1)
	{
		int			i = (lower + upper) >> 1;

		if (pool_count_clusters(n, w, w->md[i], max_nc) > max_nc)
			lower = i;
		else
			upper = i;
	}
	cutoff = w->md[upper];

	/* number the clusters in depth-first order, first child first */
	memset(visited, 0, 2 * (size_t) n);
	k = 0;
	stack[0] = 2 * n - 2;
	while (k >= 0)
	{
		int			root = stack[k] - n;
		int			lc = w->z[root].a;
		int			rc = w->z[root].b;

		if (leader == -1 && w->md[root] <= cutoff)
		{
			leader = root;
			n_cluster++;
		}
		if (lc >= n && !visited[lc])
		{
			visited[lc] = 1;
			stack[++k] = lc;
			continue;
		}
		if (rc >= n && !visited[rc])
		{
			visited[rc] = 1;
			stack[++k] = rc;
			continue;
		}
		if (lc < n)
		{
			if (leader == -1)
				n_cluster++;
			flat[lc] = n_cluster;
		}
		if (rc < n)
		{
			if (leader == -1)
				n_cluster++;
			flat[rc] = n_cluster;
		}
		if (leader == root)
			leader = -1;
		k--;
	}
}

/*
 * Step 6: mean of each cluster's rows, divided by max(norm, 1e-12).
 * Returns the number of pooled rows.
 */
static int
pool_means(const float *x, int n, int dim, PoolWork *w, float *pooled)
{
	int		   *order = w->order;
	int		   *start = w->chain;	/* reused: first sorted row of each cluster */
	int			nclusters = 0;
	int			o = 0;

	for (int i = 0; i < n; i++)
		if (w->flat[i] > nclusters)
			nclusters = w->flat[i];
	/* rows grouped by cluster, in row order within a cluster */
	for (int c = 1; c <= nclusters; c++)
	{
		start[c - 1] = o;
		for (int i = 0; i < n; i++)
			if (w->flat[i] == c)
				order[o++] = i;
	}

	for (int c = 0; c < nclusters; c++)
	{
		int			first = start[c];
		int			count = (c + 1 < nclusters ? start[c + 1] : n) - first;
		float	   *out = pooled + (size_t) c * dim;
		double		norm2 = 0.0;
		double		scale;

		for (int k = 0; k < dim; k++)
		{
			double		s = 0.0;

			for (int m = 0; m < count; m++)
				s += x[(size_t) order[first + m] * dim + k];
			out[k] = (float) (s / count);
			norm2 += (double) out[k] * out[k];
		}
		scale = sqrt(norm2);
		if (scale < 1e-12)
			scale = 1e-12;
		for (int k = 0; k < dim; k++)
			out[k] = (float) (out[k] / scale);
	}
	return nclusters;
}

/*
 * cp_token_pool
 *		Pool the rows (see token_pool.h).
 */
CpStatus
cp_token_pool(const float *rows, int nrows, int dim, int factor,
			  void *workspace, int *labels, float *pooled, int *npooled,
			  CpPoolProgressFn progress, void *progress_arg, CpError *err)
{
	PoolWork	w;
	CpStatus	st;
	int			max_nc;

	if (rows == NULL || pooled == NULL || npooled == NULL || dim < 1)
		return cp_error(err, CP_ERR_INVALID_ARG, "token pooling: missing input or output");
	if (factor < 1)
		return cp_error(err, CP_ERR_INVALID_ARG,
						"pool factor must be at least 1, not %d", factor);
	if (nrows < 1)
		return cp_error(err, CP_ERR_INVALID_ARG, "token pooling needs at least one row");
	if (nrows > CP_POOL_MAX_ROWS)
		return cp_error(err, CP_ERR_LIMIT,
						"token pooling supports at most %d rows, not %d",
						CP_POOL_MAX_ROWS, nrows);
	for (size_t i = 0; i < (size_t) nrows * dim; i++)
		if (!isfinite(rows[i]))
			return cp_error(err, CP_ERR_INVALID_ARG,
							"token pooling needs finite values (row %zu)", i / dim + 1);

	if (factor == 1)
	{
		memcpy(pooled, rows, sizeof(float) * (size_t) nrows * dim);
		if (labels)
			memset(labels, 0, sizeof(int) * nrows);
		*npooled = nrows;
		return CP_OK;
	}
	if (workspace == NULL)
		return cp_error(err, CP_ERR_INVALID_ARG, "token pooling: missing workspace");
	pool_layout(nrows, (char *) workspace, &w);
	max_nc = cp_token_pool_max_clusters(nrows, factor);

	if (nrows == 1)
		w.flat[0] = 1;
	else
	{
		st = pool_distances(rows, nrows, dim, &w, progress, progress_arg, err);
		if (st != CP_OK)
			return st;
		st = pool_nn_chain(nrows, &w, progress, progress_arg, err);
		if (st != CP_OK)
			return st;
		pool_sort_merges(w.z, w.ztmp, nrows - 1);
		pool_label(nrows, &w);
		pool_flat_clusters(nrows, &w, max_nc);
	}
	*npooled = pool_means(rows, nrows, dim, &w, pooled);
	if (labels)
		for (int i = 0; i < nrows; i++)
			labels[i] = w.flat[i] - 1;
	return CP_OK;
}
