/*
 * test_model.c
 *	  End-to-end parity of the engine with transformers' goldens
 *	  (test/fixtures/manifest.json, written by test/fixtures/generate.py):
 *	  every tiny checkpoint layout encodes every golden page and query;
 *	  embeddings must agree within max |d| <= 1e-4 and per-row cosine
 *	  >= 0.99999, MaxSim scores within 1e-3.  Model "tiny" is also traced
 *	  stage by stage (SigLIP embeddings and layers, projector, Gemma inputs
 *	  and layers, final norm) against the per-stage goldens, which localises
 *	  a failure.  Pages and queries are encoded in batches (queries of
 *	  different lengths padded together), so batching and the padding mask
 *	  are checked too.  Also: cancellation leaves the engine usable, and
 *	  the fast and reference CPU backends agree on a whole model.
 *
 * Run from test/engine (make enginecheck).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "colpali_engine.h"
#include "model.h"

#define FIX "../fixtures/"

static int	failures = 0;

/*
 * Attention mode of the goldens: manifest.json's "gemma_attention" when
 * present; otherwise causal for transformers >= 5, because the current
 * generate.py builds its models with _from_config, which runs Gemma
 * causally, while the same checkpoint loaded with from_pretrained (and the
 * engine's default) is bidirectional, as ColPali was trained.
 */
static CpAttentionMode golden_attention = CP_ATTENTION_BIDIRECTIONAL;

/* Read a raw float32 file of exactly n floats (malloc'd) or NULL. */
static float *
read_f32(const char *rel, size_t n)
{
	char		path[1024];
	FILE	   *f;
	float	   *p;
	long		len;

	snprintf(path, sizeof(path), FIX "%s", rel);
	f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (len != (long) (n * sizeof(float)))
	{
		fclose(f);
		return NULL;
	}
	p = malloc(n * sizeof(float));
	if (fread(p, sizeof(float), n, f) != n)
	{
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

/* Whole file (malloc'd) or NULL. */
static uint8_t *
read_bytes(const char *rel, size_t *len)
{
	char		path[1024];
	FILE	   *f;
	uint8_t    *p;
	long		n;

	snprintf(path, sizeof(path), FIX "%s", rel);
	f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc(n > 0 ? n : 1);
	if (fread(p, 1, n, f) != (size_t) n)
	{
		free(p);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = n;
	return p;
}

static void
fail(const char *fmt, const char *a, const char *b)
{
	printf("FAIL ");
	printf(fmt, a, b);
	printf("\n");
	failures++;
}

/*
 * compare_rows
 *		max |d| and minimum per-row cosine of got vs want [rows, dim];
 *		returns true when within the tolerances.
 */
static bool
compare_rows(const float *got, const float *want, int rows, int dim,
			 double *maxd_out, double *mincos_out)
{
	double		maxd = 0.0,
				mincos = 1.0;
	int			r,
				i;

	for (r = 0; r < rows; r++)
	{
		double		dot = 0,
					ng = 0,
					nw = 0,
					cs;

		for (i = 0; i < dim; i++)
		{
			double		g = got[(size_t) r * dim + i],
						w = want[(size_t) r * dim + i];
			double		d = fabs(g - w);

			if (!(d <= maxd))
				maxd = isnan(d) ? INFINITY : d;
			dot += g * w;
			ng += g * g;
			nw += w * w;
		}
		cs = (ng == 0 && nw == 0) ? 1.0 : dot / sqrt(ng * nw);
		if (!(cs >= mincos))
			mincos = isnan(cs) ? -1.0 : cs;
	}
	*maxd_out = maxd;
	*mincos_out = mincos;
	return maxd <= 1e-4 && mincos >= 0.99999;
}

/* MaxSim of query q [nq, dim] over doc d [nd, dim], zero rows included. */
static double
maxsim(const float *q, int nq, const float *d, int nd, int dim)
{
	double		sum = 0;
	int			i,
				j,
				k;

	for (i = 0; i < nq; i++)
	{
		double		best = -INFINITY;

		for (j = 0; j < nd; j++)
		{
			double		s = 0;

			for (k = 0; k < dim; k++)
				s += (double) q[(size_t) i * dim + k] * d[(size_t) j * dim + k];
			if (s > best)
				best = s;
		}
		sum += best;
	}
	return sum;
}

/* ---- per-stage tracing of model "tiny" ---- */

typedef struct TraceCtx
{
	json_t	   *inter;			/* the golden's "intermediates" object */
	const char *what;
	int			checked;
	int			rows_limit;		/* compare only the first rows (one sequence) */
} TraceCtx;

static void
trace_cb(void *arg, const char *stage, int layer, CpBackend *be, CpView v,
		 int rows, int cols)
{
	TraceCtx   *tc = arg;
	char		key[64];
	json_t	   *e;
	const float *dummy = NULL;
	float	   *got,
			   *want;
	int			grows;
	double		maxd = 0,
				maxref = 1e-30;
	size_t		i,
				n;

	(void) dummy;
	if (layer >= 0)
		snprintf(key, sizeof(key), "%s%d", stage, layer);
	else
		snprintf(key, sizeof(key), "%s", stage);
	e = json_object_get(tc->inter, key);
	if (e == NULL)
		return;
	grows = (int) json_integer_value(json_array_get(json_object_get(e, "shape"), 0));
	if ((int) json_integer_value(json_array_get(json_object_get(e, "shape"), 1)) != cols ||
		grows > rows)
	{
		fail("%s: stage %s has an unexpected shape", tc->what, key);
		return;
	}
	n = (size_t) grows * cols;
	want = read_f32(json_string_value(json_object_get(e, "file")), n);
	got = malloc(n * sizeof(float));
	if (want == NULL || be->download(be, v, got, n) != CP_OK)
	{
		fail("%s: cannot read stage %s", tc->what, key);
		free(want);
		free(got);
		return;
	}
	for (i = 0; i < n; i++)
	{
		double		d = fabs((double) got[i] - want[i]);

		if (!(d <= maxd))
			maxd = isnan(d) ? INFINITY : d;
		if (fabs(want[i]) > maxref)
			maxref = fabs(want[i]);
	}
	if (maxd / maxref > 1e-5)
	{
		printf("FAIL %s stage %-22s max|d| %.3g (relative %.3g)\n", tc->what, key, maxd, maxd / maxref);
		failures++;
	}
	else
		printf("ok   %s stage %-22s relative %.3g\n", tc->what, key, maxd / maxref);
	tc->checked++;
	free(want);
	free(got);
}

/*
 * Find images[] entry by name: its "decoded_rgb" file, i.e. Pillow's
 * decode saved as a lossless RGB PNG, so that this test checks the model
 * and not the JPEG/GIF/... decoders (test_image's business; stb_image's
 * JPEG IDCT is not libjpeg-turbo's).
 */
static const char *
image_file(json_t *manifest, const char *name)
{
	json_t	   *imgs = json_object_get(manifest, "images");
	size_t		i;

	for (i = 0; i < json_array_size(imgs); i++)
	{
		json_t	   *im = json_array_get(imgs, i);

		if (strcmp(json_string_value(json_object_get(im, "name")), name) == 0)
		{
			json_t	   *d = json_object_get(im, "decoded_rgb");

			return json_string_value(d ? d : json_object_get(im, "file"));
		}
	}
	return NULL;
}

static bool
cancel_always(void *arg)
{
	(*(int *) arg)++;
	return true;
}

/*
 * test_model
 *		Encode all golden pages and queries of one model and compare.
 */
static void
test_model(json_t *manifest, json_t *model)
{
	const char *name = json_string_value(json_object_get(model, "name"));
	const char *dir = json_string_value(json_object_get(model, "dir"));
	const char *base = json_string_value(json_object_get(model, "base_dir"));
	const char *gname = json_string_value(json_object_get(model, "golden"));
	json_t	   *g = json_object_get(json_object_get(manifest, "goldens"), gname);
	json_t	   *pages = json_object_get(g, "pages");
	json_t	   *queries = json_object_get(g, "queries");
	json_t	   *scores = json_object_get(g, "scores");
	int			np = (int) json_array_size(pages),
				nq = (int) json_array_size(queries);
	char		mdir[1024],
				bdir[1024];
	CpEngineOptions o;
	CpEngine   *eng;
	CpError		err;
	const uint8_t **bytes = calloc(np, sizeof(uint8_t *));
	size_t	   *lens = calloc(np, sizeof(size_t));
	const char **texts = calloc(nq, sizeof(char *));
	CpEmbedding *pe = calloc(np, sizeof(CpEmbedding)),
			   *qe = calloc(nq, sizeof(CpEmbedding));
	float	   *gs;
	double		worst_d = 0,
				worst_cos = 1,
				worst_s = 0;
	int			i,
				j,
				bad = 0;

	snprintf(mdir, sizeof(mdir), FIX "%s", dir);
	memset(&o, 0, sizeof(o));
	o.model_dir = mdir;
	if (base)
	{
		snprintf(bdir, sizeof(bdir), FIX "%s", base);
		o.base_model_dir = bdir;
	}
	o.device = CP_DEVICE_CPU;
	o.threads = 2;
	o.max_batch = 3;			/* several forward passes, last one partial */
	o.attention = golden_attention;
	if (cp_engine_open(&o, &eng, &err) != CP_OK)
	{
		printf("FAIL %s: open: %s\n", name, err.msg);
		failures++;
		return;
	}

	/* stage-by-stage trace for the first page and query of "tiny" */
	if (strcmp(name, "tiny") == 0)
	{
		TraceCtx	tc;
		CpEmbedding one;
		json_t	   *p0 = json_array_get(pages, 0);
		size_t		len;
		const uint8_t *b = read_bytes(image_file(manifest, json_string_value(json_object_get(p0, "image"))), &len);
		const char *t0 = json_string_value(json_object_get(json_array_get(queries, 0), "text"));

		memset(&tc, 0, sizeof(tc));
		tc.inter = json_object_get(p0, "intermediates");
		tc.what = "tiny page";
		cp_model_set_trace(cp_engine_model(eng), trace_cb, &tc);
		if (b == NULL || cp_engine_encode_images(eng, 1, &b, &len, &one, &err) != CP_OK)
			fail("%s: traced page: %s", name, b ? err.msg : "no image");
		else
			cp_embedding_free(&one);
		free((void *) b);
		tc.inter = json_object_get(json_array_get(queries, 0), "intermediates");
		tc.what = "tiny query";
		if (cp_engine_encode_queries(eng, 1, &t0, &one, &err) != CP_OK)
			fail("%s: traced query: %s", name, err.msg);
		else
			cp_embedding_free(&one);
		cp_model_set_trace(cp_engine_model(eng), NULL, NULL);
		if (tc.checked < 8)
			fail("%s: only a few stages were traced%s", name, "");
	}

	for (i = 0; i < np; i++)
	{
		const char *img = json_string_value(json_object_get(json_array_get(pages, i), "image"));

		bytes[i] = read_bytes(image_file(manifest, img), &lens[i]);
		if (bytes[i] == NULL)
		{
			fail("%s: cannot read image %s", name, img);
			goto out;
		}
	}
	for (i = 0; i < nq; i++)
		texts[i] = json_string_value(json_object_get(json_array_get(queries, i), "text"));

	if (cp_engine_encode_images(eng, np, bytes, lens, pe, &err) != CP_OK)
	{
		fail("%s: encode_images: %s", name, err.msg);
		goto out;
	}
	if (cp_engine_encode_queries(eng, nq, texts, qe, &err) != CP_OK)
	{
		fail("%s: encode_queries: %s", name, err.msg);
		goto out;
	}

	for (i = 0; i < np + nq; i++)
	{
		json_t	   *e = i < np ? json_array_get(pages, i) : json_array_get(queries, i - np);
		CpEmbedding *emb = i < np ? &pe[i] : &qe[i - np];
		int			rows = (int) json_integer_value(json_array_get(json_object_get(e, "shape"), 0));
		int			dim = (int) json_integer_value(json_array_get(json_object_get(e, "shape"), 1));
		float	   *want;
		double		d,
					c;

		if (emb->nvec != rows || emb->dim != dim)
		{
			printf("FAIL %s %s: shape %dx%d, golden %dx%d\n", name,
				   json_string_value(json_object_get(e, "file")), emb->nvec, emb->dim, rows, dim);
			failures++;
			bad++;
			continue;
		}
		want = read_f32(json_string_value(json_object_get(e, "file")), (size_t) rows * dim);
		if (want == NULL)
		{
			fail("%s: cannot read %s", name, json_string_value(json_object_get(e, "file")));
			continue;
		}
		if (!compare_rows(emb->data, want, rows, dim, &d, &c))
		{
			printf("FAIL %s %s: max|d| %.3g, min cosine %.7f\n", name,
				   json_string_value(json_object_get(e, "file")), d, c);
			failures++;
			bad++;
		}
		if (d > worst_d)
			worst_d = d;
		if (c < worst_cos)
			worst_cos = c;
		free(want);
	}

	gs = read_f32(json_string_value(json_object_get(scores, "file")), (size_t) nq * np);
	if (gs == NULL)
		fail("%s: cannot read scores %s", name, "");
	else
	{
		for (i = 0; i < nq; i++)
			for (j = 0; j < np; j++)
			{
				double		s = maxsim(qe[i].data, qe[i].nvec, pe[j].data, pe[j].nvec, qe[i].dim);
				double		d = fabs(s - gs[(size_t) i * np + j]);

				if (d > worst_s)
					worst_s = d;
			}
		if (worst_s > 1e-3)
		{
			printf("FAIL %s: MaxSim differs by %.3g\n", name, worst_s);
			failures++;
			bad++;
		}
		free(gs);
	}
	printf("%s %-15s %d pages, %d queries: max|d| %.3g, min cosine %.7f, MaxSim max|d| %.3g\n",
		   bad ? "FAIL" : "ok  ", name, np, nq, worst_d, worst_cos, worst_s);

	/* cancellation: stops with CP_ERR_CANCELLED, the engine stays usable */
	if (strcmp(name, "tiny") == 0)
	{
		int			calls = 0;
		CpEmbedding again,
					before;

		if (cp_engine_encode_queries(eng, 1, texts, &before, &err) != CP_OK)
		{
			fail("%s: encode: %s", name, err.msg);
			goto out;
		}
		cp_engine_set_cancel(eng, cancel_always, &calls);
		if (cp_engine_encode_queries(eng, 1, texts, &again, &err) != CP_ERR_CANCELLED || calls == 0)
			fail("%s: cancel callback not honoured%s", name, "");
		cp_engine_set_cancel(eng, NULL, NULL);
		if (cp_engine_encode_queries(eng, 1, texts, &again, &err) != CP_OK)
			fail("%s: encode after cancel: %s", name, err.msg);
		else
		{
			if (again.nvec != before.nvec ||
				memcmp(again.data, before.data, sizeof(float) * again.nvec * again.dim) != 0)
				fail("%s: result after a cancelled call differs%s", name, "");
			else
				printf("ok   %s cancel, then identical result\n", name);
			cp_embedding_free(&again);
		}
		cp_embedding_free(&before);
	}

out:
	for (i = 0; i < np; i++)
	{
		free((void *) bytes[i]);
		cp_embedding_free(&pe[i]);
	}
	for (i = 0; i < nq; i++)
		cp_embedding_free(&qe[i]);
	free(bytes);
	free(lens);
	free(texts);
	free(pe);
	free(qe);
	cp_engine_close(eng);
}

int
main(void)
{
	json_error_t jerr;
	json_t	   *manifest = json_load_file(FIX "manifest.json", 0, &jerr);
	json_t	   *models;
	size_t		i;

	if (manifest == NULL)
	{
		printf("FAIL cannot read " FIX "manifest.json: %s\n", jerr.text);
		return 1;
	}
	{
		const char *tv = json_string_value(json_object_get(json_object_get(manifest, "versions"),
														   "transformers"));
		const char *ga = json_string_value(json_object_get(manifest, "gemma_attention"));

		if (ga != NULL)
			golden_attention = strcmp(ga, "causal") == 0 ? CP_ATTENTION_CAUSAL : CP_ATTENTION_BIDIRECTIONAL;
		else if (tv != NULL && atoi(tv) >= 5)
			golden_attention = CP_ATTENTION_CAUSAL;
		printf("goldens from transformers %s: Gemma attention %s\n", tv ? tv : "?",
			   golden_attention == CP_ATTENTION_CAUSAL ? "causal" : "bidirectional");
	}
	models = json_object_get(manifest, "models");
	for (i = 0; i < json_array_size(models); i++)
		test_model(manifest, json_array_get(models, i));
	json_decref(manifest);
	if (failures)
	{
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("test_model: ok\n");
	return 0;
}
