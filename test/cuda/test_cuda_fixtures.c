/*
 * test_cuda_fixtures.c
 *	  The tiny fixture checkpoints (test/fixtures, every layout and dtype)
 *	  encoded through the engine on the CUDA backend: every page and query
 *	  row must have cosine >= 0.999 with the fp32 transformers goldens, and
 *	  each embedding the golden's shape.  Run from test/cuda (fixtures at
 *	  ../fixtures).  Without a GPU it prints SKIP and succeeds, unless
 *	  COLPALI_CUDA_REQUIRE=1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backend_loader.h"
#include "colpali_engine.h"

#define FIXTURES "../fixtures"
#define MIN_COSINE 0.999

static int	failures = 0;

/*
 * Gemma attention of the goldens, as test/engine/test_model.c decides it:
 * each golden set's "attention" field; for older manifests the top-level
 * "gemma_attention", else causal for goldens made by transformers >= 5.
 */
static CpAttentionMode golden_attention = CP_ATTENTION_BIDIRECTIONAL;

/* CUDA_TEST_CPU=1: run the same checks on the CPU backend (tests the test) */
static bool on_cpu = false;

/*
 * read_file
 *		Whole file into a malloc'd buffer.
 */
static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf;
	long		n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n > 0 ? (size_t) n : 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t) n;
	return buf;
}

/*
 * check_rows
 *		Compare an embedding with a golden .f32 file of shape [rows, dim].
 */
static double
check_rows(const char *what, const CpEmbedding *e, json_t *golden)
{
	char		path[1024];
	json_t	   *shape = json_object_get(golden, "shape");
	int			rows = (int) json_integer_value(json_array_get(shape, 0));
	int			dim = (int) json_integer_value(json_array_get(shape, 1));
	size_t		len = 0;
	float	   *g;
	double		worst = 1.0;
	int			r;

	snprintf(path, sizeof(path), FIXTURES "/%s",
			 json_string_value(json_object_get(golden, "file")));
	g = (float *) read_file(path, &len);
	if (g == NULL || len != sizeof(float) * (size_t) rows * dim)
	{
		printf("FAIL %s: cannot read golden %s\n", what, path);
		failures++;
		free(g);
		return -1.0;
	}
	if (e->nvec != rows || e->dim != dim)
	{
		printf("FAIL %s: shape %dx%d, golden %dx%d\n", what, e->nvec, e->dim, rows, dim);
		failures++;
		free(g);
		return -1.0;
	}
	for (r = 0; r < rows; r++)
	{
		double		dot = 0,
					na = 0,
					nb = 0,
					c;
		int			j;

		for (j = 0; j < dim; j++)
		{
			double		a = e->data[(size_t) r * dim + j],
						b = g[(size_t) r * dim + j];

			dot += a * b;
			na += a * a;
			nb += b * b;
		}
		c = (na > 0 && nb > 0) ? dot / sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
		if (!(c >= worst))
			worst = c;
	}
	free(g);
	return worst;
}

/*
 * run_model
 *		Encode one manifest model's pages and queries on CUDA and check them.
 */
static void
run_model(json_t *manifest, json_t *model)
{
	const char *name = json_string_value(json_object_get(model, "name"));
	const char *gname = json_string_value(json_object_get(model, "golden"));
	json_t	   *gold = json_object_get(json_object_get(manifest, "goldens"), gname);
	json_t	   *pages = json_object_get(gold, "pages");
	json_t	   *queries = json_object_get(gold, "queries");
	json_t	   *images = json_object_get(manifest, "images");
	char		dir[1024],
				base[1024];
	CpEngineOptions opts;
	CpEngine   *eng = NULL;
	CpError		err;
	size_t		np = json_array_size(pages),
				nq = json_array_size(queries),
				i,
				j;
	uint8_t   **bytes = calloc(np + 1, sizeof(uint8_t *));
	size_t	   *lens = calloc(np + 1, sizeof(size_t));
	const char **texts = calloc(nq + 1, sizeof(char *));
	CpEmbedding *pe = calloc(np + 1, sizeof(CpEmbedding));
	CpEmbedding *qe = calloc(nq + 1, sizeof(CpEmbedding));
	double		worst = 1.0;

	memset(&opts, 0, sizeof(opts));
	memset(&err, 0, sizeof(err));
	snprintf(dir, sizeof(dir), FIXTURES "/%s", json_string_value(json_object_get(model, "dir")));
	opts.model_dir = dir;
	if (json_object_get(model, "base_dir"))
	{
		snprintf(base, sizeof(base), FIXTURES "/%s",
				 json_string_value(json_object_get(model, "base_dir")));
		opts.base_model_dir = base;
	}
	opts.device = on_cpu ? CP_DEVICE_CPU : CP_DEVICE_CUDA;
	opts.attention = golden_attention;
	/* each golden set says how it was computed (fixtures README) */
	if (json_string_value(json_object_get(gold, "attention")) != NULL)
		opts.attention = strcmp(json_string_value(json_object_get(gold, "attention")), "causal") == 0 ?
			CP_ATTENTION_CAUSAL : CP_ATTENTION_BIDIRECTIONAL;
	opts.max_batch = 3;			/* several batches, one of them partial */
	if (cp_engine_open(&opts, &eng, &err) != CP_OK)
	{
		printf("FAIL %s: open on CUDA: %s\n", name, err.msg);
		failures++;
		goto done;
	}
	if (strcmp(cp_engine_device_name(eng), on_cpu ? "cpu" : "cuda") != 0)
	{
		printf("FAIL %s: engine runs on %s\n", name, cp_engine_device_name(eng));
		failures++;
		goto done;
	}

	for (i = 0; i < np; i++)
	{
		const char *img = json_string_value(json_object_get(json_array_get(pages, i), "image"));
		char		path[1024] = "";

		for (j = 0; j < json_array_size(images); j++)
		{
			json_t	   *im = json_array_get(images, j);

			if (strcmp(json_string_value(json_object_get(im, "name")), img) == 0)
				snprintf(path, sizeof(path), FIXTURES "/%s",
						 json_string_value(json_object_get(im, "file")));
		}
		bytes[i] = read_file(path, &lens[i]);
		if (bytes[i] == NULL)
		{
			printf("FAIL %s: cannot read image %s\n", name, path);
			failures++;
			goto done;
		}
	}
	for (i = 0; i < nq; i++)
		texts[i] = json_string_value(json_object_get(json_array_get(queries, i), "text"));

	if (np > 0 &&
		cp_engine_encode_images(eng, (int) np, (const uint8_t *const *) bytes, lens, pe, &err) != CP_OK)
	{
		printf("FAIL %s: encode pages: %s\n", name, err.msg);
		failures++;
		goto done;
	}
	if (nq > 0 && cp_engine_encode_queries(eng, (int) nq, texts, qe, &err) != CP_OK)
	{
		printf("FAIL %s: encode queries: %s\n", name, err.msg);
		failures++;
		goto done;
	}
	for (i = 0; i < np; i++)
	{
		double		c = check_rows(name, &pe[i], json_array_get(pages, i));

		if (c < worst)
			worst = c;
	}
	for (i = 0; i < nq; i++)
	{
		double		c = check_rows(name, &qe[i], json_array_get(queries, i));

		if (c < worst)
			worst = c;
	}
	if (!(worst >= MIN_COSINE))
	{
		printf("FAIL %-14s %zu pages, %zu queries: min row cosine %.6f < %.3f\n",
			   name, np, nq, worst, MIN_COSINE);
		failures++;
	}
	else
		printf("ok   %-14s %zu pages, %zu queries: min row cosine %.6f\n", name, np, nq, worst);

done:
	for (i = 0; i < np; i++)
	{
		cp_embedding_free(&pe[i]);
		free(bytes[i]);
	}
	for (i = 0; i < nq; i++)
		cp_embedding_free(&qe[i]);
	free(pe);
	free(qe);
	free(bytes);
	free(lens);
	free(texts);
	cp_engine_close(eng);
}

int
main(void)
{
	json_error_t jerr;
	json_t	   *manifest = json_load_file(FIXTURES "/manifest.json", 0, &jerr);
	json_t	   *models;
	CpBackendOptions bo;
	CpBackend  *be = NULL;
	void	   *lib = NULL;
	CpError		err;
	const char *req = getenv("COLPALI_CUDA_REQUIRE");
	size_t		i;

	if (manifest == NULL)
	{
		fprintf(stderr, "cannot read manifest: %s\n", jerr.text);
		return 1;
	}
	/* is there a GPU at all?  (other errors are failures, below) */
	memset(&bo, 0, sizeof(bo));
	on_cpu = getenv("CUDA_TEST_CPU") != NULL && strcmp(getenv("CUDA_TEST_CPU"), "1") == 0;
	if (on_cpu)
		printf("CUDA_TEST_CPU=1: checking on the CPU backend\n");
	else if (cp_backend_load_cuda(NULL, &bo, &lib, &be, &err) != CP_OK)
	{
		printf("SKIP: %s\n", err.msg);
		json_decref(manifest);
		return (req && strcmp(req, "1") == 0) ? 1 : 0;
	}
	else
	{
		be->destroy(be);
		cp_backend_unload(lib);
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
		run_model(manifest, json_array_get(models, i));
	json_decref(manifest);
	if (failures)
	{
		printf("%d fixture check(s) FAILED on CUDA\n", failures);
		return 1;
	}
	printf("all fixture checks passed on %s\n", on_cpu ? "the CPU (CUDA_TEST_CPU=1)" : "CUDA");
	return 0;
}
