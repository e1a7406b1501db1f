/*
 * test_ops_qwen.c
 *	  The Qwen2-VL family's backend operations (backend.h: rmsnorm_plain,
 *	  rotary, swiglu, quick_gelu, gelu_erf) on both CPU backends against
 *	  their formulas evaluated here in double precision.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "test_util.h"

#define ROWS 7
#define NH 3
#define HD 16
#define DIM (NH * HD)

static float
frand(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float) ((double) (*s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
}

/* upload host data into a fresh activation buffer */
static CpBuf *
buf_of(CpBackend *be, const float *src, size_t n)
{
	CpBuf	   *b = NULL;

	if (be->alloc(be, n, &b) != CP_OK || be->upload(be, cp_view(b, 0), src, n) != CP_OK)
		return NULL;
	return b;
}

static double
maxdiff(const float *a, const double *b, size_t n)
{
	double		m = 0;
	size_t		i;

	for (i = 0; i < n; i++)
		if (fabs(a[i] - b[i]) > m)
			m = fabs(a[i] - b[i]);
	return m;
}

static void
test_backend(CpBackend *be)
{
	uint64_t	seed = 42;
	float		x[ROWS * DIM],
				y[ROWS * DIM],
				u[ROWS * DIM],
				w[DIM],
				c[ROWS * HD / 2],
				s[ROWS * HD / 2];
	double		want[ROWS * DIM];
	CpTensor	wt;
	CpBuf	   *wb = NULL;
	CpBuf	   *bx,
			   *bu,
			   *bc,
			   *bs;
	int			r,
				i,
				h,
				j;

	for (i = 0; i < ROWS * DIM; i++)
	{
		x[i] = frand(&seed);
		u[i] = frand(&seed);
	}
	for (i = 0; i < DIM; i++)
		w[i] = frand(&seed);
	for (i = 0; i < ROWS * HD / 2; i++)
	{
		float		a = frand(&seed) * 10.0f;

		c[i] = cosf(a);
		s[i] = sinf(a);
	}
	memset(&wt, 0, sizeof(wt));
	wt.name = "w";
	wt.dtype = CP_DTYPE_F32;
	wt.ndim = 1;
	wt.shape[0] = DIM;
	wt.numel = DIM;
	wt.data = w;
	wt.nbytes = sizeof(w);
	CHECK(be->weight_upload(be, &wt, CP_WEIGHT_VECTOR, &wb) == CP_OK, "%s: weight upload", be->name);

	/* rmsnorm_plain */
	bx = buf_of(be, x, ROWS * DIM);
	CHECK(be->rmsnorm_plain && be->rmsnorm_plain(be, cp_view(bx, 0), cp_view(bx, 0), wb, ROWS, DIM, 1e-6f) == CP_OK,
		  "%s: rmsnorm_plain", be->name);
	be->download(be, cp_view(bx, 0), y, ROWS * DIM);
	for (r = 0; r < ROWS; r++)
	{
		double		ss = 0;

		for (i = 0; i < DIM; i++)
			ss += (double) x[r * DIM + i] * x[r * DIM + i];
		for (i = 0; i < DIM; i++)
			want[r * DIM + i] = x[r * DIM + i] / sqrt(ss / DIM + 1e-6) * w[i];
	}
	CHECK(maxdiff(y, want, ROWS * DIM) < 1e-5, "%s: rmsnorm_plain off by %g", be->name, maxdiff(y, want, ROWS * DIM));
	be->free(be, bx);

	/* rotary: pairs (j, j + HD/2) of every head rotated by the row's angle j */
	bx = buf_of(be, x, ROWS * DIM);
	bc = buf_of(be, c, ROWS * HD / 2);
	bs = buf_of(be, s, ROWS * HD / 2);
	CHECK(be->rotary && be->rotary(be, cp_view(bx, 0), cp_view(bc, 0), cp_view(bs, 0), ROWS, NH, HD) == CP_OK,
		  "%s: rotary", be->name);
	be->download(be, cp_view(bx, 0), y, ROWS * DIM);
	for (r = 0; r < ROWS; r++)
		for (h = 0; h < NH; h++)
			for (j = 0; j < HD / 2; j++)
			{
				const float *v = x + (r * NH + h) * HD;
				double		cc = c[r * HD / 2 + j],
							sn = s[r * HD / 2 + j];

				want[(r * NH + h) * HD + j] = v[j] * cc - v[j + HD / 2] * sn;
				want[(r * NH + h) * HD + j + HD / 2] = v[j + HD / 2] * cc + v[j] * sn;
			}
	CHECK(maxdiff(y, want, ROWS * DIM) < 1e-5, "%s: rotary off by %g", be->name, maxdiff(y, want, ROWS * DIM));
	be->free(be, bx);
	be->free(be, bc);
	be->free(be, bs);

	/* swiglu, quick_gelu, gelu_erf */
	bx = buf_of(be, x, ROWS * DIM);
	bu = buf_of(be, u, ROWS * DIM);
	CHECK(be->swiglu && be->swiglu(be, cp_view(bx, 0), cp_view(bx, 0), cp_view(bu, 0), ROWS * DIM) == CP_OK,
		  "%s: swiglu", be->name);
	be->download(be, cp_view(bx, 0), y, ROWS * DIM);
	for (i = 0; i < ROWS * DIM; i++)
		want[i] = x[i] / (1.0 + exp(-(double) x[i])) * u[i];
	CHECK(maxdiff(y, want, ROWS * DIM) < 1e-5, "%s: swiglu off by %g", be->name, maxdiff(y, want, ROWS * DIM));
	be->upload(be, cp_view(bx, 0), x, ROWS * DIM);
	CHECK(be->quick_gelu && be->quick_gelu(be, cp_view(bx, 0), ROWS * DIM) == CP_OK, "%s: quick_gelu", be->name);
	be->download(be, cp_view(bx, 0), y, ROWS * DIM);
	for (i = 0; i < ROWS * DIM; i++)
		want[i] = x[i] / (1.0 + exp(-1.702 * x[i]));
	CHECK(maxdiff(y, want, ROWS * DIM) < 1e-5, "%s: quick_gelu off by %g", be->name, maxdiff(y, want, ROWS * DIM));
	be->upload(be, cp_view(bx, 0), x, ROWS * DIM);
	CHECK(be->gelu_erf && be->gelu_erf(be, cp_view(bx, 0), ROWS * DIM) == CP_OK, "%s: gelu_erf", be->name);
	be->download(be, cp_view(bx, 0), y, ROWS * DIM);
	for (i = 0; i < ROWS * DIM; i++)
		want[i] = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
	CHECK(maxdiff(y, want, ROWS * DIM) < 1e-5, "%s: gelu_erf off by %g", be->name, maxdiff(y, want, ROWS * DIM));
	be->free(be, bx);
	be->free(be, bu);
	be->free(be, wb);
}

int
main(void)
{
	CpBackendOptions opts;
	CpBackend  *be = NULL;
	CpError		err = {0};

	memset(&opts, 0, sizeof(opts));
	opts.threads = 2;
	CHECK(cp_backend_cpu_create(&opts, &be, &err) == CP_OK, "cpu backend: %s", err.msg);
	if (be)
	{
		test_backend(be);
		be->destroy(be);
	}
	be = NULL;
	CHECK(cp_backend_cpu_ref_create(&opts, &be, &err) == CP_OK, "reference backend: %s", err.msg);
	if (be)
	{
		test_backend(be);
		be->destroy(be);
	}
	if (failures)
	{
		printf("test_ops_qwen: %d failure(s) of %d checks\n", failures, checks);
		return 1;
	}
	printf("test_ops_qwen: ok (%d checks)\n", checks);
	return 0;
}
