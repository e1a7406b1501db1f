/*
 * test_token_pool.c
 *	  Hierarchical token pooling (src/engine/token_pool.c) against the goldens
 *	  of colpali-engine's HierarchicalTokenPooler (test/fixtures/pool/, written
 *	  by test/fixtures/pool_goldens.py): identical cluster ids, the same number
 *	  of pooled rows, pooled rows within 1e-6; plus the error cases, the
 *	  cancel callback and determinism.
 */
#include <math.h>
#include <string.h>

#include "test_util.h"
#include "token_pool.h"

#define FIX "../fixtures/"

static float *
read_floats(const char *rel, size_t count)
{
	char		path[1024];
	size_t		len;
	float	   *p;

	snprintf(path, sizeof(path), FIX "%s", rel);
	p = read_file(path, &len);
	CHECK(p != NULL && len == count * sizeof(float), "%s: %zu bytes, want %zu",
		  rel, len, count * sizeof(float));
	if (p != NULL && len != count * sizeof(float))
	{
		free(p);
		p = NULL;
	}
	return p;
}

/* pool, with a fresh workspace */
static CpStatus
pool(const float *x, int n, int dim, int factor, int *labels, float *out,
	 int *npooled, CpPoolProgressFn progress, CpError *err)
{
	size_t		bytes = cp_token_pool_workspace_bytes(n);
	void	   *ws = bytes ? malloc(bytes) : NULL;
	CpStatus	st;

	st = cp_token_pool(x, n, dim, factor, ws, labels, out, npooled, progress,
					   NULL, err);
	free(ws);
	return st;
}

static int
check_case(const char *name, const char *in_rel, int n, int dim, int factor,
		   const char *labels_rel, const char *pooled_rel, int npooled_want)
{
	float	   *x = read_floats(in_rel, (size_t) n * dim);
	float	   *want = read_floats(pooled_rel, (size_t) npooled_want * dim);
	char		path[1024];
	size_t		len;
	char	   *ltext;
	int		   *labels = malloc(sizeof(int) * n);
	int		   *labels2 = malloc(sizeof(int) * n);
	float	   *out = malloc(sizeof(float) * (size_t) n * dim);
	float	   *out2 = malloc(sizeof(float) * (size_t) n * dim);
	int			npooled = -1;
	int			npooled2 = -1;
	int			label_diff = 0;
	double		maxdiff = 0.0;
	CpError		err = {0};
	CpStatus	st;
	char	   *p;

	snprintf(path, sizeof(path), FIX "%s", labels_rel);
	ltext = read_file(path, &len);
	CHECK(ltext != NULL, "%s unreadable", labels_rel);
	if (x == NULL || want == NULL || ltext == NULL)
		return 0;

	st = pool(x, n, dim, factor, labels, out, &npooled, NULL, &err);
	CHECK(st == CP_OK, "%s f%d: %s", name, factor, err.msg);
	CHECK(npooled == npooled_want, "%s f%d: %d pooled rows, colpali-engine %d",
		  name, factor, npooled, npooled_want);
	CHECK(npooled <= cp_token_pool_max_clusters(n, factor), "%s f%d: over the maximum", name, factor);
	p = ltext;
	for (int i = 0; i < n; i++)
	{
		long		v = strtol(p, &p, 10);

		if (v != labels[i])
			label_diff++;
	}
	CHECK(label_diff == 0, "%s f%d: %d of %d cluster ids differ", name, factor, label_diff, n);
	if (st == CP_OK && npooled == npooled_want)
	{
		for (size_t i = 0; i < (size_t) npooled * dim; i++)
			if (fabs((double) out[i] - want[i]) > maxdiff)
				maxdiff = fabs((double) out[i] - want[i]);
		CHECK(maxdiff <= 1e-6, "%s f%d: pooled rows differ by %g", name, factor, maxdiff);
	}

	/* the same input gives the same bits, with the SIMD and generic row functions */
	for (int generic = 0; generic <= 1; generic++)
	{
		cp_token_pool_force_generic(generic);
		st = pool(x, n, dim, factor, labels2, out2, &npooled2, NULL, &err);
		cp_token_pool_force_generic(false);
		CHECK(st == CP_OK && npooled2 == npooled &&
			  memcmp(labels, labels2, sizeof(int) * n) == 0 &&
			  memcmp(out, out2, sizeof(float) * (size_t) npooled * dim) == 0,
			  "%s f%d: a second run differs (generic row functions: %d)", name, factor, generic);
	}

	free(x);
	free(want);
	free(ltext);
	free(labels);
	free(labels2);
	free(out);
	free(out2);
	return 1;
}

static void
test_goldens(void)
{
	size_t		len;
	char	   *text = read_file(FIX "pool/cases.txt", &len);
	char	   *line;
	char	   *save = NULL;
	int			cases = 0;
	int			tied = 0;

	CHECK(text != NULL, "test/fixtures/pool/cases.txt missing");
	if (text == NULL)
		return;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		char		name[128],
					in_rel[256],
					labels_rel[256],
					pooled_rel[256];
		int			n,
					dim,
					factor,
					npooled;

		if (line[0] == '#')
			continue;
		CHECK(sscanf(line, "%127s %255s %d %d %d %255s %255s %d", name, in_rel, &n, &dim,
					 &factor, labels_rel, pooled_rel, &npooled) == 8, "bad line: %s", line);
		cases += check_case(name, in_rel, n, dim, factor, labels_rel, pooled_rel, npooled);
		if (factor > 1 && npooled < cp_token_pool_max_clusters(n, factor))
			tied++;
	}
	CHECK(cases >= 50, "only %d golden cases", cases);
	/* the goldens must exercise equal merge heights (fewer clusters than allowed) */
	CHECK(tied > 0, "no golden case with tied merge heights");
	printf("%d golden cases compared (%d with tied merge heights)\n", cases, tied);
	free(text);
}

static int	cancel_calls = 0;

static bool
cancel_on_third(void *arg)
{
	return ++cancel_calls >= 3;
}

static void
test_errors(void)
{
	float		x[4 * 8];
	float		out[4 * 8];
	int			labels[4];
	int			npooled;
	CpError		err = {0};
	float	   *big;

	for (int i = 0; i < 32; i++)
		x[i] = (float) ((i * 7) % 11) - 5.0f;

	CHECK(pool(x, 4, 8, 0, labels, out, &npooled, NULL, &err) == CP_ERR_INVALID_ARG,
		  "factor 0 accepted");
	CHECK(pool(x, 4, 8, -3, labels, out, &npooled, NULL, &err) == CP_ERR_INVALID_ARG,
		  "factor -3 accepted");
	CHECK(pool(x, 0, 8, 2, labels, out, &npooled, NULL, &err) == CP_ERR_INVALID_ARG,
		  "zero rows accepted");
	CHECK(cp_token_pool_workspace_bytes(CP_POOL_MAX_ROWS + 1) == 0, "workspace for too many rows");
	CHECK(cp_token_pool_workspace_bytes(CP_POOL_MAX_ROWS) <= (size_t) 13 * CP_POOL_MAX_ROWS * CP_POOL_MAX_ROWS,
		  "workspace larger than documented");
	big = calloc((size_t) (CP_POOL_MAX_ROWS + 1) * 2, sizeof(float));
	CHECK(cp_token_pool(big, CP_POOL_MAX_ROWS + 1, 2, 2, big, NULL, big, &npooled, NULL, NULL,
						&err) == CP_ERR_LIMIT, "too many rows accepted");
	CHECK(strstr(err.msg, "at most") != NULL, "limit message: %s", err.msg);
	free(big);

	x[5] = NAN;
	CHECK(pool(x, 4, 8, 2, labels, out, &npooled, NULL, &err) == CP_ERR_INVALID_ARG,
		  "NaN accepted");
	x[5] = 3e30f;				/* its row's squared norm overflows float */
	CHECK(pool(x, 4, 8, 2, labels, out, &npooled, NULL, &err) == CP_ERR_LIMIT,
		  "overflowing dot product accepted: %s", err.msg);
	x[5] = 1.0f;

	/* the progress callback stops the work */
	{
		int			n = 200;
		float	   *y = malloc(sizeof(float) * n * 8);
		float	   *o = malloc(sizeof(float) * n * 8);

		for (int i = 0; i < n * 8; i++)
			y[i] = (float) sin(i * 0.37);
		CHECK(pool(y, n, 8, 2, NULL, o, &npooled, cancel_on_third, &err) == CP_ERR_CANCELLED,
			  "cancel ignored");
		CHECK(cancel_calls == 3, "cancel polled %d times", cancel_calls);
		free(y);
		free(o);
	}

	/* one row: one cluster, normalised (colpali-engine refuses one row) */
	{
		float		one[3] = {3.0f, 0.0f, 4.0f};
		float		o[3];
		int			l = -1;

		CHECK(pool(one, 1, 3, 2, &l, o, &npooled, NULL, &err) == CP_OK && npooled == 1 && l == 0 &&
			  fabsf(o[0] - 0.6f) < 1e-7f && o[1] == 0.0f && fabsf(o[2] - 0.8f) < 1e-7f,
			  "one row");
		CHECK(pool(one, 1, 3, 1, &l, o, &npooled, NULL, &err) == CP_OK && npooled == 1 &&
			  o[0] == 3.0f, "one row, factor 1");
	}

	/* the cluster-count rule */
	CHECK(cp_token_pool_max_clusters(1030, 3) == 343, "1030 / 3");
	CHECK(cp_token_pool_max_clusters(1030, 2) == 515, "1030 / 2");
	CHECK(cp_token_pool_max_clusters(5, 9) == 1, "5 / 9");
	CHECK(cp_token_pool_max_clusters(7, 1) == 7, "7 / 1");
}

int
main(void)
{
	test_goldens();
	test_errors();
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
