/*
 * test_maxsim_codes_amx.c
 *	  The quantized MaxSim of residual codes in int8, on AMX-INT8 tiles
 *	  (src/engine/maxsim_codes_amx.c) and with AVX-512 VNNI
 *	  (src/engine/maxsim_codes_vnni.c, codes decoded with VBMI or with
 *	  AVX-512BW alone), each form this CPU runs:
 *	  - bit for bit against a scalar form of the same integer arithmetic
 *		(the int8 query rows of the prepared tiles times the int8 levels of
 *		each dimension's code value, summed in int64, then fmaf with the
 *		row's scale and the centroid score, and the running maximum);
 *	  - against a scalar double reference of the formula, sum_i max_t
 *		(cs[list_t][i] + sum_d q[i][d] * weights[c_td]), row by row:
 *	  - every row's maximum is within the rigorous bound of the int8
 *		roundings (cp_codes_error_bound, the largest over the document's
 *		tokens) plus a float allowance;
 *	  - the mean error is far below the bound (typical rows, not the worst
 *		case), and the test prints both;
 *	  - the centroid maxima (ciAcc) are bit for bit the largest centroid
 *		score, tokens with a bad list number are skipped, and a document
 *		folded in pieces gives the bits of one call;
 *	  - a row that is not finite keeps only its centroid scores.
 * Shapes: dims 64, 128, 192; 1, 2 and 4 bits; 1 to 70 query rows (blocks
 * of 32 and partial ones); 1 to 1030 tokens (partial blocks of 16).
 * Finally the test checks that it can fail: with the sign of one int8
 * level flipped the bound must be exceeded somewhere.
 * A form this CPU lacks is skipped with a message.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maxsim_codes_amx.h"
#include "test_util.h"

#define TEST_RNG_SEED 0x9E3779B97F4A7C15ULL
#include "test_rng.h"

static double sum_err = 0;
static double sum_bound = 0;
static double max_err = 0;
static long nrows_checked = 0;
static CpCodesKernel kernel;	/* the form under test */

/*
 * OracleMaxSim
 *		The scalar form of the int8 arithmetic: acc and ciAcc (nq floats
 *		each, from -FLT_MAX) for n tokens, reading the int8 query rows
 *		from cq's tiles (row i, dimension d at the position TDPBSSD's B
 *		tiles give it) and the levels from cq->levels.
 */
static void
OracleMaxSim(const CpCodesQuery *cq, const uint16_t *lists,
			 const uint8_t *codes, int codeSize, int n, const float *cs,
			 int ldcs, int nlists, float *acc, float *ciAcc)
{
	int			ksteps = cq->dim / CP_CODES_KSTEP;
	int			mask = (1 << cq->nbits) - 1;
	int			i;
	int			t;
	int			d;

	for (i = 0; i < cq->nq; i++)
		acc[i] = ciAcc[i] = -FLT_MAX;
	for (t = 0; t < n; t++)
	{
		const uint8_t *code = codes + (size_t) t * codeSize;

		if (lists[t] >= nlists)
			continue;
		for (i = 0; i < cq->nq; i++)
		{
			int			blk = i / CP_CODES_BLOCK;
			int			cb = (i % CP_CODES_BLOCK) / 16;
			int			col = i % 16;
			float		c = cs[(size_t) lists[t] * ldcs + i];
			long long	sum = 0;
			float		v;

			for (d = 0; d < cq->dim; d++)
			{
				int			k = d % CP_CODES_KSTEP;
				size_t		tile = ((size_t) blk * ksteps + d / CP_CODES_KSTEP) * 2 + cb;
				int			bit = d * cq->nbits;
				int			level = cq->levels[(code[bit / 8] >> (bit % 8)) & mask];

				sum += (long long) cq->tiles[tile * 1024 + (size_t) (k / 4) * 64 + col * 4 + k % 4] * level;
			}
			v = fmaf((float) sum, cq->scale[i], c);
			acc[i] = v > acc[i] ? v : acc[i];
			ciAcc[i] = c > ciAcc[i] ? c : ciAcc[i];
		}
	}
}

/*
 * RunCase
 *		One document of n tokens against nq query rows; returns the number
 *		of rows outside the bound (0 when the case passed).  corrupt flips
 *		the sign of int8 level 1 after preparing.
 */
static int
RunCase(int dim, int nbits, int nq, int n, int nlists, bool corrupt,
		bool pieces)
{
	int			nvalues = 1 << nbits;
	int			codeSize = dim * nbits / 8;
	int			ldcs;
	float	   *q = malloc(sizeof(float) * nq * dim);
	float	   *weights = malloc(sizeof(float) * nvalues);
	uint16_t   *lists = malloc(sizeof(uint16_t) * n);
	uint8_t    *codes = malloc((size_t) codeSize * n);
	float	   *cs;
	float	   *acc;
	float	   *ciAcc;
	float	   *acc2;
	float	   *ciAcc2;
	CpCodesQuery cq;
	void	   *mem = malloc(cp_codes_query_bytes(nq, dim));
	int			outside = 0;
	int			i;
	int			t;
	int			d;
	int			c;

	/* reconstruction values of a trained quantizer: sorted, spread ~0.05 */
	for (c = 0; c < nvalues; c++)
		weights[c] = (float) (0.09 * ((c + 0.5) / nvalues - 0.5) * 2 + 0.004 * Gauss());
	for (i = 0; i < nq; i++)
	{
		double		norm = 0;

		for (d = 0; d < dim; d++)
		{
			q[i * dim + d] = (float) Gauss();
			norm += (double) q[i * dim + d] * q[i * dim + d];
		}
		for (d = 0; d < dim; d++)
			q[i * dim + d] /= (float) sqrt(norm);
	}
	if (nq > 3)
		memset(q + 2 * dim, 0, sizeof(float) * dim);	/* a zero row */
	if (nq > 5)
		q[5 * dim + 7] = NAN;	/* a row that is not finite */
	for (t = 0; t < n; t++)
	{
		lists[t] = (uint16_t) (Next() % nlists);
		if (t % 97 == 13)
			lists[t] = (uint16_t) (nlists + t % 3);	/* a bad list number */
		for (c = 0; c < codeSize; c++)
			codes[(size_t) t * codeSize + c] = (uint8_t) Next();
	}
	cp_codes_prepare(&cq, q, dim, nq, dim, nbits, weights, mem);
	cq.kernel = kernel;
	if (corrupt)
		cq.levels[1] = (int8_t) -cq.levels[1];
	ldcs = cq.nblocks * CP_CODES_BLOCK + 16 * (int) (Next() % 2);
	cs = calloc((size_t) nlists * ldcs, sizeof(float));
	for (c = 0; c < nlists; c++)
		for (i = 0; i < nq; i++)
			cs[(size_t) c * ldcs + i] = (float) (0.6 * Uniform());
	acc = malloc(sizeof(float) * cq.nblocks * CP_CODES_BLOCK);
	ciAcc = malloc(sizeof(float) * cq.nblocks * CP_CODES_BLOCK);
	acc2 = malloc(sizeof(float) * cq.nblocks * CP_CODES_BLOCK);
	ciAcc2 = malloc(sizeof(float) * cq.nblocks * CP_CODES_BLOCK);
	for (i = 0; i < cq.nblocks * CP_CODES_BLOCK; i++)
		acc[i] = ciAcc[i] = acc2[i] = ciAcc2[i] = -FLT_MAX;
	cp_codes_maxsim(&cq, lists, codes, codeSize, n, cs, ldcs, nlists, acc, ciAcc);
	if (!corrupt)
	{
		float	   *oacc = malloc(sizeof(float) * nq);
		float	   *ociAcc = malloc(sizeof(float) * nq);

		OracleMaxSim(&cq, lists, codes, codeSize, n, cs, ldcs, nlists, oacc, ociAcc);
		for (i = 0; i < nq; i++)
			if (memcmp(&acc[i], &oacc[i], sizeof(float)) != 0 ||
				memcmp(&ciAcc[i], &ociAcc[i], sizeof(float)) != 0)
				break;
		CHECK(i == nq, "%s, dim %d bits %d nq %d n %d: row %d is %.9g / %.9g, the scalar form %.9g / %.9g",
			  kernel == CP_CODES_AMX ? "AMX" : kernel == CP_CODES_VNNI ? "VNNI" : "VNNI (BW decoding)",
			  dim, nbits, nq, n, i,
			  i < nq ? acc[i] : 0, i < nq ? ciAcc[i] : 0,
			  i < nq ? oacc[i] : 0, i < nq ? ociAcc[i] : 0);
		free(oacc);
		free(ociAcc);
	}
	if (pieces)
	{
		/* the same document in pieces of random sizes */
		int			from = 0;

		while (from < n)
		{
			int			len = 1 + (int) (Next() % 300);

			if (len > n - from)
				len = n - from;
			cp_codes_maxsim(&cq, (const char *) lists + from * sizeof(uint16_t),
							codes + (size_t) from * codeSize, codeSize, len,
							cs, ldcs, nlists, acc2, ciAcc2);
			from += len;
		}
		CHECK(memcmp(acc, acc2, sizeof(float) * nq) == 0 &&
			  memcmp(ciAcc, ciAcc2, sizeof(float) * nq) == 0,
			  "dim %d bits %d nq %d n %d: pieces differ from one call", dim, nbits, nq, n);
	}

	for (i = 0; i < nq; i++)
	{
		const float *qi = q + i * dim;
		double		ref = -DBL_MAX;
		double		bound = 0;
		float		ciRef = -FLT_MAX;
		bool		finite = true;
		bool		any = false;

		for (d = 0; d < dim; d++)
			finite = finite && isfinite(qi[d]);
		for (t = 0; t < n; t++)
		{
			const uint8_t *code = codes + (size_t) t * codeSize;
			double		s = 0;
			double		b;

			if (lists[t] >= nlists)
				continue;
			any = true;
			for (d = 0; d < dim; d++)
			{
				int			bit = d * nbits;

				if (finite)
					s += (double) qi[d] * weights[(code[bit / 8] >> (bit % 8)) & (nvalues - 1)];
			}
			s += cs[(size_t) lists[t] * ldcs + i];
			if (s > ref)
				ref = s;
			if (cs[(size_t) lists[t] * ldcs + i] > ciRef)
				ciRef = cs[(size_t) lists[t] * ldcs + i];
			b = finite ? cp_codes_error_bound(&cq, i, qi, weights, code) : 0;
			if (b > bound)
				bound = b;
		}
		if (!corrupt)
		{
			CHECK(ciAcc[i] == ciRef, "dim %d bits %d nq %d n %d row %d: centroid max %.9g, expected %.9g",
				  dim, nbits, nq, n, i, ciAcc[i], ciRef);
			if (!any)
				CHECK(acc[i] == -FLT_MAX, "no valid token, yet row %d moved", i);
			if (!finite)
				CHECK(acc[i] == ciAcc[i], "row %d is not finite: its maximum %.9g is not the centroid maximum %.9g",
					  i, acc[i], ciAcc[i]);
		}
		if (any)
		{
			double		err = fabs(acc[i] - ref);
			double		allow = bound + 4e-6 * (fabs(ref) + 1);

			if (err > allow)
			{
				outside++;
				if (!corrupt)
					CHECK(false, "dim %d bits %d nq %d n %d row %d: %.9g against %.9g, error %.3g above the bound %.3g",
						  dim, nbits, nq, n, i, acc[i], ref, err, allow);
			}
			if (!corrupt && finite)
			{
				sum_err += err;
				sum_bound += bound;
				if (err > max_err)
					max_err = err;
				nrows_checked++;
			}
		}
	}
	free(q);
	free(weights);
	free(lists);
	free(codes);
	free(cs);
	free(acc);
	free(ciAcc);
	free(acc2);
	free(ciAcc2);
	free(mem);
	return outside;
}

int
main(void)
{
	static const int dims[] = {64, 128, 192};
	static const int bits[] = {1, 2, 4};
	static const int nqs[] = {1, 20, 32, 36, 70};
	static const int ns[] = {1, 15, 16, 17, 100, 1030};
	int			caught = 0;
	size_t		a,
				b,
				c,
				e;
	int			k;

	CHECK(cp_codes_shape_supported(128, 2), "128 dimensions of 2 bits are supported");
	CHECK(!cp_codes_shape_supported(130, 2) && !cp_codes_shape_supported(128, 3),
		  "130 dimensions and 3 bits are not");
	for (k = 0; k < 3; k++)
	{
		static const char *const names[] = {
			"AMX-INT8", "AVX-512 VNNI (VBMI decoding)", "AVX-512 VNNI (AVX-512BW decoding)"
		};
		const char *name = names[k];

		kernel = k == 0 ? CP_CODES_AMX : k == 1 ? CP_CODES_VNNI : CP_CODES_VNNI_BW;
		if (!(k == 0 ? cp_codes_amx_usable() :
			  k == 1 ? cp_codes_vnni_usable() && cp_codes_vbmi_usable() :
			  cp_codes_vnni_usable()))
		{
			printf("no %s here: its cases were skipped\n", name);
			continue;
		}
		sum_err = sum_bound = max_err = 0;
		nrows_checked = 0;
		for (a = 0; a < sizeof(dims) / sizeof(dims[0]); a++)
			for (b = 0; b < sizeof(bits) / sizeof(bits[0]); b++)
				for (c = 0; c < sizeof(nqs) / sizeof(nqs[0]); c++)
					for (e = 0; e < sizeof(ns) / sizeof(ns[0]); e++)
						RunCase(dims[a], bits[b], nqs[c], ns[e], 300, false, e % 2 == 1);

		printf("%s: %ld rows: mean error %.3g, largest %.3g, mean bound %.3g\n",
			   name, nrows_checked, sum_err / nrows_checked, max_err, sum_bound / nrows_checked);
		CHECK(sum_err < 0.1 * sum_bound,
			  "the mean error %.3g is not far below the mean bound %.3g",
			  sum_err / nrows_checked, sum_bound / nrows_checked);

		/* the test can fail: one level of the wrong sign leaves the bound */
		caught = 0;
		for (b = 0; b < sizeof(bits) / sizeof(bits[0]); b++)
			caught += RunCase(128, bits[b], 32, 1030, 300, true, false) > 0;
		CHECK(caught == 3, "%s: a corrupt level was caught in %d of 3 cases", name, caught);
	}

	printf("%d checks, %d failures\n", checks, failures);
	return failures == 0 ? 0 : 1;
}
