/*
 * test_fixtures.c
 *	  Consistency of the committed fixtures (test/fixtures/manifest.json and
 *	  the files it names), without Python and without the engine: every
 *	  file is there with the size its shape says, checkpoint folders are
 *	  complete, prompt ids have the documented structure (docs/encoder.md#page-prompt,
 *	  #query-prompt), embedding rows are unit vectors, and the MaxSim goldens agree
 *	  with a float64 MaxSim of the embedding goldens.  A failure here means
 *	  the fixtures are damaged or were regenerated inconsistently.
 */
#include <math.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "test_util.h"

#define FIX "../fixtures/"

/* size of a fixture file, or -1 */
static long long
file_size(const char *rel)
{
	char		path[2048];
	struct stat st;

	snprintf(path, sizeof(path), FIX "%s", rel);
	return stat(path, &st) == 0 ? (long long) st.st_size : -1;
}

/* number of elements of an {file, dtype, shape} entry */
static long long
entry_numel(json_t *e)
{
	json_t	   *shape = json_object_get(e, "shape");
	long long	n = 1;
	size_t		i;

	for (i = 0; i < json_array_size(shape); i++)
		n *= json_integer_value(json_array_get(shape, i));
	return n;
}

/* read an f32 entry (malloc'd), checking that the file size matches */
static float *
read_entry(json_t *e)
{
	const char *rel = json_string_value(json_object_get(e, "file"));
	long long	n = entry_numel(e);
	char		path[2048];
	FILE	   *f;
	float	   *p;

	CHECK(rel != NULL && strcmp(json_string_value(json_object_get(e, "dtype")), "f32") == 0,
		  "entry without file or not f32");
	if (rel == NULL)
		return NULL;
	CHECK(file_size(rel) == n * 4, "%s: %lld bytes, shape says %lld", rel, file_size(rel), n * 4);
	if (file_size(rel) != n * 4)
		return NULL;
	snprintf(path, sizeof(path), FIX "%s", rel);
	f = fopen(path, "rb");
	p = malloc((size_t) (n > 0 ? n : 1) * sizeof(float));
	if (f == NULL || p == NULL || fread(p, sizeof(float), (size_t) n, f) != (size_t) n)
	{
		CHECK(false, "cannot read %s", rel);
		free(p);
		p = NULL;
	}
	if (f)
		fclose(f);
	return p;
}

/* check that dir (relative to the fixtures) holds name */
static void
expect_file(const char *dir, const char *name)
{
	char		rel[1024];

	snprintf(rel, sizeof(rel), "%s/%s", dir, name);
	CHECK(file_size(rel) > 0, "%s missing", rel);
}

/* folders of every model entry are complete */
static void
test_models(json_t *m)
{
	json_t	   *models = json_object_get(m, "models");
	json_t	   *goldens = json_object_get(m, "goldens");
	size_t		i;

	CHECK(json_array_size(models) >= 8, "few models: %zu", json_array_size(models));
	for (i = 0; i < json_array_size(models); i++)
	{
		json_t	   *e = json_array_get(models, i);
		const char *dir = json_string_value(json_object_get(e, "dir"));
		const char *base = json_string_value(json_object_get(e, "base_dir"));
		const char *g = json_string_value(json_object_get(e, "golden"));
		char		rel[1024];

		CHECK(dir != NULL && g != NULL && json_object_get(goldens, g) != NULL,
			  "model entry %zu incomplete", i);
		if (dir == NULL)
			continue;
		expect_file(dir, "tokenizer.json");
		expect_file(dir, "tokenizer_config.json");
		snprintf(rel, sizeof(rel), "%s/processor_config.json", dir);
		if (file_size(rel) < 0)
			expect_file(dir, "preprocessor_config.json");
		if (base)
		{
			expect_file(dir, "adapter_config.json");
			expect_file(dir, "adapter_model.safetensors");
			expect_file(base, "config.json");
			expect_file(base, "model.safetensors");
			continue;
		}
		expect_file(dir, "config.json");
		snprintf(rel, sizeof(rel), "%s/model.safetensors", dir);
		if (file_size(rel) < 0)
			expect_file(dir, "model.safetensors.index.json");
	}
}

/* the special id of a token, from manifest.tokenizer.special_ids */
static int
special_id(json_t *m, const char *tok)
{
	json_t	   *v = json_object_get(json_object_get(json_object_get(m, "tokenizer"),
													"special_ids"), tok);

	return v ? (int) json_integer_value(v) : -1;
}

/* unit rows, count and width of one embedding golden */
static float *
check_embedding(json_t *e, int rows)
{
	float	   *x = read_entry(e);
	json_t	   *shape = json_object_get(e, "shape");
	int			n = (int) json_integer_value(json_array_get(shape, 0));
	int			d = (int) json_integer_value(json_array_get(shape, 1));
	double		worst = 0;
	int			i,
				j;

	CHECK(n == rows && d == 128, "%s: shape [%d, %d], %d ids",
		  json_string_value(json_object_get(e, "file")), n, d, rows);
	if (x == NULL || n != rows || d != 128)
	{
		free(x);
		return NULL;
	}
	for (i = 0; i < n; i++)
	{
		double		s = 0;

		for (j = 0; j < d; j++)
			s += (double) x[i * d + j] * x[i * d + j];
		if (fabs(sqrt(s) - 1) > worst)
			worst = fabs(sqrt(s) - 1);
	}
	CHECK(worst < 1e-5, "%s: row norm off by %g", json_string_value(json_object_get(e, "file")), worst);
	return x;
}

/* MaxSim in float64: sum over query rows of the best dot product */
static double
maxsim(const float *q, int nq, const float *p, int np)
{
	double		total = 0;
	int			i,
				j,
				k;

	for (i = 0; i < nq; i++)
	{
		double		best = -INFINITY;

		for (j = 0; j < np; j++)
		{
			double		s = 0;

			for (k = 0; k < 128; k++)
				s += (double) q[i * 128 + k] * p[j * 128 + k];
			if (s > best)
				best = s;
		}
		total += best;
	}
	return total;
}

/* ids structure, embedding files and scores of one golden set */
static void
test_golden(json_t *m, const char *name, json_t *g)
{
	json_t	   *pages = json_object_get(g, "pages");
	json_t	   *queries = json_object_get(g, "queries");
	json_t	   *page_ids = json_object_get(g, "page_ids");
	int			nimg = (int) json_integer_value(json_object_get(g, "num_image_tokens"));
	int			bos = special_id(m, "<bos>"),
				pad = special_id(m, "<pad>"),
				nl = special_id(m, "\n"),
				image = special_id(m, "<image>");
	int			npages = (int) json_array_size(pages),
				nqueries = (int) json_array_size(queries);
	float	  **pe = calloc(npages + 1, sizeof(float *));
	float	  **qe = calloc(nqueries + 1, sizeof(float *));
	float	   *scores;
	const char *att = json_string_value(json_object_get(g, "attention"));
	int			plen = (int) json_array_size(page_ids);
	int			i,
				j;

	CHECK(att && (strcmp(att, "bidirectional") == 0 || strcmp(att, "causal") == 0),
		  "%s: attention", name);
	CHECK(nimg > 0 && plen > nimg + 2, "%s: page ids", name);
	for (i = 0; i < plen; i++)
	{
		int			id = (int) json_integer_value(json_array_get(page_ids, i));

		if (i < nimg)
			CHECK(id == image, "%s: page id %d is %d, not <image>", name, i, id);
		else if (i == nimg)
			CHECK(id == bos, "%s: page id %d is not <bos>", name, i);
		else if (i == plen - 1)
			CHECK(id == nl, "%s: page prompt does not end with \\n", name);
		else
			CHECK(id != image && id != bos, "%s: page id %d", name, i);
	}
	for (i = 0; i < npages; i++)
		pe[i] = check_embedding(json_array_get(pages, i), plen);
	for (i = 0; i < nqueries; i++)
	{
		json_t	   *q = json_array_get(queries, i);
		json_t	   *ids = json_object_get(q, "ids");
		int			n = (int) json_array_size(ids);

		CHECK(n >= 12 && json_integer_value(json_array_get(ids, 0)) == bos &&
			  json_integer_value(json_array_get(ids, n - 1)) == nl,
			  "%s: query %d is not <bos> ... \\n", name, i);
		for (j = n - 11; j >= 0 && j < n - 1; j++)
			CHECK(json_integer_value(json_array_get(ids, j)) == pad,
				  "%s: query %d lacks the 10 <pad>", name, i);
		qe[i] = check_embedding(q, n);
	}
	scores = read_entry(json_object_get(g, "scores"));
	CHECK(scores != NULL && entry_numel(json_object_get(g, "scores")) == (long long) npages * nqueries,
		  "%s: scores shape", name);
	for (i = 0; scores && i < nqueries; i++)
		for (j = 0; j < npages; j++)
		{
			double		want;

			if (qe[i] == NULL || pe[j] == NULL)
				continue;
			want = maxsim(qe[i], (int) json_array_size(json_object_get(json_array_get(queries, i), "ids")),
						  pe[j], plen);
			CHECK(fabs(want - scores[i * npages + j]) < 1e-3,
				  "%s: MaxSim q%d p%d golden %g, recomputed %g", name, i, j,
				  scores[i * npages + j], want);
		}
	for (i = 0; i < npages; i++)
		free(pe[i]);
	for (i = 0; i < nqueries; i++)
		free(qe[i]);
	free(pe);
	free(qe);
	free(scores);
}

/* images, their decoded forms and pixel goldens */
static void
test_images(json_t *m)
{
	json_t	   *imgs = json_object_get(m, "images");
	json_t	   *pix = json_object_get(json_object_get(m, "pixel_values"), "entries");
	size_t		i;

	CHECK(json_array_size(imgs) >= 20, "few images");
	CHECK(json_array_size(pix) == json_array_size(imgs), "pixel goldens for every image");
	for (i = 0; i < json_array_size(imgs); i++)
	{
		json_t	   *e = json_array_get(imgs, i);

		CHECK(file_size(json_string_value(json_object_get(e, "file"))) > 0, "image %zu", i);
		CHECK(file_size(json_string_value(json_object_get(e, "decoded_rgb"))) > 0, "decoded %zu", i);
	}
	for (i = 0; i < json_array_size(pix); i++)
	{
		float	   *p = read_entry(json_array_get(pix, i));
		long long	n = entry_numel(json_array_get(pix, i));
		long long	k;
		bool		in_range = p != NULL;

		for (k = 0; p && k < n; k++)
			if (!(p[k] >= -1.0f && p[k] <= 1.0f))
				in_range = false;
		CHECK(in_range, "pixel golden %zu outside [-1, 1]", i);
		free(p);
	}
}

int
main(void)
{
	json_error_t jerr;
	json_t	   *m = json_load_file(FIX "manifest.json", 0, &jerr);
	json_t	   *goldens;
	const char *key;
	json_t	   *g;

	if (m == NULL)
	{
		printf("FAIL cannot read " FIX "manifest.json: %s\n", jerr.text);
		return 1;
	}
	CHECK(json_integer_value(json_object_get(m, "format_version")) == 1, "format_version");
	test_models(m);
	test_images(m);
	goldens = json_object_get(m, "goldens");
	json_object_foreach(goldens, key, g)
		test_golden(m, key, g);
	CHECK(json_object_get(m, "realshape") != NULL, "realshape section");
	if (json_object_get(m, "realshape"))
	{
		test_golden(m, "realshape", json_object_get(m, "realshape"));
		CHECK(json_array_size(json_object_get(json_object_get(m, "realshape"), "page_ids")) == 1030,
			  "realshape pages have 1030 rows");
	}
	json_decref(m);
	printf("test_fixtures: %d checks, %d failures\n", checks, failures);
	return failures != 0;
}
