/*
 * test_qwen_model.c
 *	  The ColQwen2 / ColQwen2.5 model on the backend ops (model_qwen2vl.c)
 *	  against colpali-engine's embeddings in test/fixtures/qwen, on the
 *	  fast and the reference CPU backend, fp32: every golden page (the
 *	  engine's preprocessing and prompt) and query of the tiny
 *	  checkpoints; the MaxSim scores of those embeddings against the
 *	  golden score matrix; and the same through the public engine API for
 *	  every checkpoint of the manifest (hub, transformers-5, native and
 *	  LoRA layouts of both architectures).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backend.h"
#include "colpali_engine.h"
#include "config.h"
#include "image_qwen.h"
#include "model_qwen2vl.h"
#include "prompt.h"
#include "tokenizer.h"
#include "weights.h"
#include "golden_format.h"
#include "test_util.h"
#include "golden_compare.h"

#define QDIR "../fixtures/qwen/"

/*
 * MaxSim of a query [nq, E] over a page [np, E]; padded (the reference
 * scores a batch of pages zero-padded to the longest, so a shorter page
 * also offers a zero row)
 */
static double
maxsim(const float *q, int nq, const float *p, int np, int E, bool padded)
{
	double		total = 0;
	int			i,
				j,
				k;

	for (i = 0; i < nq; i++)
	{
		double		best = padded ? 0.0 : -1e300;

		for (j = 0; j < np; j++)
		{
			double		dot = 0;

			for (k = 0; k < E; k++)
				dot += (double) q[(size_t) i * E + k] * p[(size_t) j * E + k];
			if (dot > best)
				best = dot;
		}
		total += best;
	}
	return total;
}

/*
 * run_model
 *		All goldens of one folder on one backend.
 */
static void
run_model(const char *dir, json_t *manifest, const char *golden, bool reference)
{
	json_t	   *gold = json_object_get(json_object_get(manifest, "goldens"), golden);
	json_t	   *images = json_object_get(manifest, "images");
	json_t	   *pages = json_object_get(gold, "pages");
	json_t	   *queries = json_object_get(gold, "queries");
	CpModelConfig cfg;
	CpTokenizer *tok = NULL;
	CpWeights  *w = NULL;
	CpBackend  *be = NULL;
	CpModel    *m = NULL;
	CpBackendOptions opts;
	CpError		err = {0};
	char		path[512];
	double		maxdiff = 0,
				mincos = 1,
				maxscore = 0;
	float	   *pemb[64] = {0};
	int			prow[64] = {0};
	size_t		i,
				j;
	int			E;
	int			npages = 0;

	memset(&opts, 0, sizeof(opts));
	opts.threads = 2;
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	if (cp_config_load(dir, &cfg, &err) != CP_OK || cp_tokenizer_load(path, &tok, &err) != CP_OK ||
		cp_weights_open(dir, NULL, &w, &err) != CP_OK ||
		(reference ? cp_backend_cpu_ref_create(&opts, &be, &err) : cp_backend_cpu_create(&opts, &be, &err)) != CP_OK ||
		cp_model_load(&cfg, w, be, &m, &err) != CP_OK)
	{
		CHECK(false, "%s: %s", dir, err.msg);
		goto done;
	}
	E = cfg.embedding_dim;
	cfg.qwen.image.max_pixels = json_integer_value(json_object_get(gold, "max_pixels"));
	for (i = 0; i < json_array_size(pages) && i < 64; i++)
	{
		json_t	   *pg = json_array_get(pages, i);
		const char *name = json_string_value(json_object_get(pg, "image"));
		const char *file = NULL;
		uint8_t    *bytes;
		size_t		len;
		float	   *px = NULL;
		int			gh,
					gw,
					n = 0;
		int32_t    *ids = NULL;

		for (j = 0; j < json_array_size(images); j++)
			if (strcmp(json_string_value(json_object_get(json_array_get(images, j), "name")), name) == 0)
				file = json_string_value(json_object_get(json_array_get(images, j), "file"));
		snprintf(path, sizeof(path), "../fixtures/%s", file ? file : "?");
		bytes = read_file(path, &len);
		if (bytes == NULL ||
			cp_qwen_image_preprocess(bytes, len, &cfg.qwen.image, 0, &px, &gh, &gw, &err) != CP_OK ||
			cp_build_qwen_image_prompt(tok, &cfg, gh * gw / 4, &ids, &n, &err) != CP_OK)
		{
			CHECK(false, "page %s: %s", name, err.msg);
			free(bytes);
			continue;
		}
		pemb[i] = malloc(sizeof(float) * n * E);
		prow[i] = n;
		if (cp_qwen_model_encode(m, ids, n, px, gh, gw, pemb[i], NULL, NULL, &err) == CP_OK)
		{
			compare(name, pemb[i], json_object_get(pg, "embedding"), &maxdiff, &mincos);
			npages++;
		}
		else
			CHECK(false, "%s page %s: %s", dir, name, err.msg);
		free(ids);
		free(px);
		free(bytes);
	}
	{
		json_t	   *sc = json_object_get(gold, "scores");
		float	   *want;
		size_t		slen;
		int			ncols = (int) json_integer_value(json_array_get(json_object_get(sc, "shape"), 1));

		snprintf(path, sizeof(path), "../fixtures/%s", json_string_value(json_object_get(sc, "file")));
		want = read_file(path, &slen);
		CHECK(want != NULL, "scores %s", path);
		for (i = 0; i < json_array_size(queries) && want; i++)
		{
			json_t	   *q = json_array_get(queries, i);
			const char *text = json_string_value(json_object_get(q, "text"));
			CpModelConfig qc = cfg;
			int32_t    *ids = NULL;
			int			n = 0;
			float	   *emb;

			if (!golden_query_format(&qc, json_string_value(json_object_get(q, "format"))))
			{
				CHECK(false, "query %zu: unknown format", i);
				continue;
			}
			if (cp_build_qwen_query_prompt(tok, &qc, text, strlen(text), &ids, &n, &err) != CP_OK)
			{
				CHECK(false, "query: %s", err.msg);
				continue;
			}
			emb = malloc(sizeof(float) * n * E);
			if (cp_qwen_model_encode(m, ids, n, NULL, 0, 0, emb, NULL, NULL, &err) == CP_OK)
			{
				int			longest = 0;

				compare(text, emb, json_object_get(q, "embedding"), &maxdiff, &mincos);
				for (j = 0; j < 64; j++)
					longest = prow[j] > longest ? prow[j] : longest;
				for (j = 0; j < (size_t) ncols && j < 64; j++)
					if (pemb[j])
					{
						double		d = fabs(maxsim(emb, n, pemb[j], prow[j], E, prow[j] < longest) - want[i * ncols + j]);

						if (d > maxscore)
							maxscore = d;
					}
			}
			else
				CHECK(false, "%s query: %s", dir, err.msg);
			free(emb);
			free(ids);
		}
		free(want);
	}
	printf("%s (%s): %d pages + %zu queries: max |diff| %.3g, min row cosine %.9f, MaxSim |diff| %.3g\n",
		   dir, be->name, npages, json_array_size(queries), maxdiff, mincos, maxscore);
	CHECK(npages >= 10, "%s: %d pages", dir, npages);
	CHECK(maxdiff <= 1e-4 && mincos >= 0.99999 && maxscore <= 1e-3, "%s (%s): max |diff| %.3g, min cosine %.9f, MaxSim %.3g",
		  dir, be->name, maxdiff, mincos, maxscore);
done:
	for (i = 0; i < 64; i++)
		free(pemb[i]);
	if (m)
		cp_model_free(m);
	if (be)
		be->destroy(be);
	cp_weights_close(w);
	cp_tokenizer_free(tok);
}

/*
 * run_engine
 *		The public API on one folder (with its LoRA base folder, or NULL):
 *		cp_engine_open with the goldens' visual-token budget, every golden
 *		page from its file bytes and every training-format query.
 */
static void
run_engine(const char *dir, const char *base_dir, json_t *manifest, const char *golden)
{
	json_t	   *gold = json_object_get(json_object_get(manifest, "goldens"), golden);
	json_t	   *images = json_object_get(manifest, "images");
	json_t	   *pages = json_object_get(gold, "pages");
	json_t	   *queries = json_object_get(gold, "queries");
	CpEngineOptions opts;
	CpEngine   *e = NULL;
	CpError		err = {0};
	double		maxdiff = 0,
				mincos = 1;
	size_t		i,
				j;
	int			npages = 0,
				nqueries = 0,
				want_queries = 0;

	memset(&opts, 0, sizeof(opts));
	opts.model_dir = dir;
	opts.base_model_dir = base_dir;
	opts.device = CP_DEVICE_CPU;
	opts.max_visual_tokens = (int) (json_integer_value(json_object_get(gold, "max_pixels")) / (28 * 28));
	if (cp_engine_open(&opts, &e, &err) != CP_OK)
	{
		CHECK(false, "engine %s: %s", dir, err.msg);
		return;
	}
	for (i = 0; i < json_array_size(pages); i++)
	{
		json_t	   *pg = json_array_get(pages, i);
		const char *name = json_string_value(json_object_get(pg, "image"));
		const char *file = NULL;
		char		path[512];
		const uint8_t *b[1];
		size_t		len[1];
		CpEmbedding out[1];

		for (j = 0; j < json_array_size(images); j++)
			if (strcmp(json_string_value(json_object_get(json_array_get(images, j), "name")), name) == 0)
				file = json_string_value(json_object_get(json_array_get(images, j), "file"));
		snprintf(path, sizeof(path), "../fixtures/%s", file ? file : "?");
		b[0] = read_file(path, &len[0]);
		if (b[0] != NULL && cp_engine_encode_images(e, 1, b, len, out, &err) == CP_OK)
		{
			CHECK(out[0].nvec == json_integer_value(json_array_get(json_object_get(json_object_get(pg, "embedding"), "shape"), 0)),
				  "engine page %s: %d rows", name, out[0].nvec);
			compare(name, out[0].data, json_object_get(pg, "embedding"), &maxdiff, &mincos);
			cp_embedding_free(&out[0]);
			npages++;
		}
		else
			CHECK(false, "engine page %s: %s", name, err.msg);
		free((void *) b[0]);
	}
	for (i = 0; i < json_array_size(queries); i++)
	{
		json_t	   *q = json_array_get(queries, i);
		const char *t[1] = {json_string_value(json_object_get(q, "text"))};
		CpEmbedding out[1];

		if (strcmp(json_string_value(json_object_get(q, "format")), "training") != 0)
			continue;
		want_queries++;
		if (cp_engine_encode_queries(e, 1, t, out, &err) == CP_OK)
		{
			CHECK((size_t) out[0].nvec == json_array_size(json_object_get(q, "ids")), "engine query rows %d", out[0].nvec);
			compare(t[0], out[0].data, json_object_get(q, "embedding"), &maxdiff, &mincos);
			cp_embedding_free(&out[0]);
			nqueries++;
		}
		else
			CHECK(false, "engine query: %s", err.msg);
	}
	printf("%s (engine API, %s): %d pages + %d queries: max |diff| %.3g, min row cosine %.9f\n",
		   dir, cp_engine_device_name(e), npages, nqueries, maxdiff, mincos);
	CHECK(npages >= 2 && (size_t) npages == json_array_size(pages) && nqueries >= 5 && nqueries == want_queries &&
		  maxdiff <= 1e-4 && mincos >= 0.99999, "engine %s: %d pages + %d queries, max |diff| %.3g, min cosine %.9f",
		  dir, npages, nqueries, maxdiff, mincos);
	cp_engine_close(e);
}

int
main(void)
{
	json_error_t jerr;
	json_t	   *manifest = json_load_file(QDIR "manifest.json", 0, &jerr);
	size_t		i;

	CHECK(manifest != NULL, "qwen manifest: %s", jerr.text);
	if (manifest)
	{
		json_t	   *models = json_object_get(manifest, "models");
		int			seen[2][4] = {{0}};

		run_model(QDIR "models/colqwen2-hub2024", manifest, "colqwen2", false);
		run_model(QDIR "models/colqwen2-t5", manifest, "colqwen2", false);
		run_model(QDIR "models/colqwen2_5-hub2024", manifest, "colqwen2_5", false);
		run_model(QDIR "models/colqwen2_5-t5", manifest, "colqwen2_5", false);
		run_model(QDIR "models/colqwen2-hub2024", manifest, "colqwen2", true);
		run_model(QDIR "models/colqwen2_5-hub2024", manifest, "colqwen2_5", true);
		/* every checkpoint of the manifest, in every layout, for both architectures */
		for (i = 0; i < json_array_size(models); i++)
		{
			json_t	   *mo = json_array_get(models, i);
			const char *arch = json_string_value(json_object_get(mo, "architecture"));
			const char *layout = json_string_value(json_object_get(mo, "layout"));
			const char *base = json_string_value(json_object_get(mo, "base_dir"));
			char		dir[512],
						base_dir[512];

			snprintf(dir, sizeof(dir), "../fixtures/%s", json_string_value(json_object_get(mo, "dir")));
			if (base)
				snprintf(base_dir, sizeof(base_dir), "../fixtures/%s", base);
			run_engine(dir, base ? base_dir : NULL, manifest, json_string_value(json_object_get(mo, "golden")));
			seen[strcmp(arch, "ColQwen2_5") == 0][strcmp(layout, "hub2024") == 0 ? 0 :
												   strcmp(layout, "colpali-engine-t5") == 0 ? 1 :
												   strncmp(layout, "transformers-native", 19) == 0 ? 2 : 3] += 1;
		}
		for (i = 0; i < 2; i++)
			CHECK(seen[i][0] == 1 && seen[i][1] == 1 && seen[i][2] == 1 && seen[i][3] == 2,
				  "%s: the manifest has the hub, transformers-5, native and both LoRA layouts (%d %d %d %d)",
				  i ? "ColQwen2.5" : "ColQwen2", seen[i][0], seen[i][1], seen[i][2], seen[i][3]);
		json_decref(manifest);
	}
	if (failures)
	{
		printf("test_qwen_model: %d failure(s) of %d checks\n", failures, checks);
		return 1;
	}
	printf("test_qwen_model: ok (%d checks)\n", checks);
	return 0;
}
