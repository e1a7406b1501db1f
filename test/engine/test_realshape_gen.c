/*
 * test_realshape_gen.c
 *	  The C generator of the realshape checkpoint (realshape_gen.h) must give
 *	  bit-identical tensors to the numpy generator of
 *	  test/fixtures/generate.py, whose per-tensor check values are in
 *	  test/fixtures/manifest.json ("realshape" / "tensors").  Also writes the
 *	  checkpoint folder (default ../../build/realshape, or
 *	  $COLPALI_REALSHAPE_DIR) and verifies the file by reading it back with
 *	  its own JSON parse of the header, so tests of the model can use it.
 *
 *	  Usage: test_realshape_gen            all checks (run from test/engine)
 *	         test_realshape_gen --write DIR   only make the folder DIR
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realshape_gen.h"
#include "test_util.h"

#define FIXTURES "../fixtures/"

/* published reference values of FNV-1a 64 and splitmix64 */
static void
test_known_answers(void)
{
	CHECK(rs_fnv1a64("") == UINT64_C(0xcbf29ce484222325), "fnv1a64(\"\")");
	CHECK(rs_fnv1a64("a") == UINT64_C(0xaf63dc4c8601ec8c), "fnv1a64(\"a\")");
	CHECK(rs_fnv1a64("foobar") == UINT64_C(0x85944171f73967e8), "fnv1a64(\"foobar\")");
	/* first output of splitmix64 seeded with 0 */
	CHECK(rs_mix64(RS_GAMMA) == UINT64_C(0xe220a8397b1dcdaf), "splitmix64(0) first output");
}

/* the manifest's kind name of a table kind */
static const char *
kind_name(char k)
{
	switch (k)
	{
		case 'W':
			return "W";
		case 'B':
			return "B";
		case 'L':
			return "LN";
		default:
			return "RMS";
	}
}

/* check value of a whole generated tensor */
static uint64_t
generated_hash(const RsTensor *t)
{
	const int64_t chunk = 1 << 20;
	uint16_t   *buf = malloc(chunk * sizeof(uint16_t));
	int64_t		total = rs_numel(t);
	uint64_t	sum = 0;
	int64_t		a;

	if (buf == NULL)
		return 0;
	for (a = 0; a < total; a += chunk)
	{
		int64_t		cnt = total - a < chunk ? total - a : chunk;

		rs_fill(t, a, cnt, buf);
		sum += rs_hash(buf, a, cnt);
	}
	free(buf);
	return sum;
}

/* find the manifest entry of a tensor name, or NULL */
static json_t *
manifest_tensor(json_t *tensors, const char *name)
{
	size_t		i;

	for (i = 0; i < json_array_size(tensors); i++)
	{
		json_t	   *e = json_array_get(tensors, i);

		if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
			return e;
	}
	return NULL;
}

/* the manifest's hash of a tensor as a number */
static uint64_t
manifest_hash(json_t *e)
{
	const char *h = json_string_value(json_object_get(e, "hash"));

	return h ? strtoull(h, NULL, 16) : 0;
}

/* generator vs numpy: same tensors, shapes, kinds, scales and contents */
static void
test_against_numpy(json_t *tensors)
{
	RsTensor	t[RS_MAX_TENSORS];
	int			n = rs_tensor_table(t);
	int			i;

	CHECK((size_t) n == json_array_size(tensors), "C table has %d tensors, manifest %zu",
		  n, json_array_size(tensors));
	for (i = 0; i < n; i++)
	{
		json_t	   *e = manifest_tensor(tensors, t[i].name);
		json_t	   *shape;
		int			d;

		CHECK(e != NULL, "%s not in the manifest", t[i].name);
		if (e == NULL)
			continue;
		shape = json_object_get(e, "shape");
		CHECK(json_array_size(shape) == (size_t) t[i].ndim, "%s: rank", t[i].name);
		for (d = 0; d < t[i].ndim && d < (int) json_array_size(shape); d++)
			CHECK(json_integer_value(json_array_get(shape, d)) == t[i].shape[d],
				  "%s: dim %d", t[i].name, d);
		CHECK(strcmp(json_string_value(json_object_get(e, "kind")), kind_name(t[i].kind)) == 0,
			  "%s: kind", t[i].name);
		CHECK(json_integer_value(json_object_get(e, "exponent")) == rs_exponent(&t[i]),
			  "%s: exponent %d", t[i].name, rs_exponent(&t[i]));
		CHECK(generated_hash(&t[i]) == manifest_hash(e), "%s: contents differ from numpy",
			  t[i].name);
	}
}

/* read the written model.safetensors back and check every tensor */
static void
test_file(const char *dir, json_t *tensors)
{
	char		path[4096];
	FILE	   *f;
	unsigned char le[8];
	uint64_t	hlen = 0;
	char	   *hdr;
	json_t	   *h;
	json_error_t jerr;
	long		data_start;
	size_t		i;
	int			b;
	const size_t chunk = 1 << 20;
	unsigned char *buf;
	uint16_t   *bits;

	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	f = fopen(path, "rb");
	CHECK(f != NULL, "cannot open %s", path);
	if (f == NULL)
		return;
	CHECK(fread(le, 1, 8, f) == 8, "short header length");
	for (b = 0; b < 8; b++)
		hlen |= (uint64_t) le[b] << (8 * b);
	CHECK(hlen % 8 == 0 && hlen < 1000000, "header length %" PRIu64, hlen);
	hdr = malloc(hlen + 1);
	buf = malloc(chunk * 2);
	bits = malloc(chunk * sizeof(uint16_t));
	if (hdr == NULL || buf == NULL || bits == NULL || hlen >= 1000000 ||
		fread(hdr, 1, hlen, f) != hlen)
	{
		CHECK(false, "cannot read the header of %s", path);
		free(hdr);
		free(buf);
		free(bits);
		fclose(f);
		return;
	}
	data_start = (long) (8 + hlen);
	h = json_loadb(hdr, hlen, 0, &jerr);
	CHECK(h != NULL, "header JSON: %s", jerr.text);
	CHECK(h == NULL || json_object_size(h) == json_array_size(tensors) + 1,
		  "header lists %zu entries", h ? json_object_size(h) : 0);
	for (i = 0; h && i < json_array_size(tensors); i++)
	{
		json_t	   *e = json_array_get(tensors, i);
		const char *name = json_string_value(json_object_get(e, "name"));
		json_t	   *te = json_object_get(h, name);
		json_t	   *offs = json_object_get(te, "data_offsets");
		uint64_t	a = (uint64_t) json_integer_value(json_array_get(offs, 0));
		uint64_t	z = (uint64_t) json_integer_value(json_array_get(offs, 1));
		uint64_t	sum = 0;
		int64_t		k = 0;
		bool		ok;

		CHECK(te != NULL, "%s missing from the file", name);
		if (te == NULL)
			continue;
		CHECK(strcmp(json_string_value(json_object_get(te, "dtype")), "BF16") == 0,
			  "%s: dtype", name);
		CHECK(json_equal(json_object_get(te, "shape"), json_object_get(e, "shape")),
			  "%s: shape", name);
		ok = fseek(f, data_start + (long) a, SEEK_SET) == 0;
		while (ok && a + 2 * (uint64_t) k < z)
		{
			size_t		want = (size_t) ((z - a) / 2 - k);
			size_t		j;

			if (want > chunk)
				want = chunk;
			ok = fread(buf, 2, want, f) == want;
			for (j = 0; ok && j < want; j++)
				bits[j] = (uint16_t) (buf[2 * j] | (buf[2 * j + 1] << 8));
			if (ok)
				sum += rs_hash(bits, k, (int64_t) want);
			k += (int64_t) want;
		}
		CHECK(ok, "%s: cannot read its data", name);
		CHECK(sum == manifest_hash(e), "%s: stored bytes differ from numpy", name);
	}
	json_decref(h);
	free(hdr);
	free(buf);
	free(bits);
	fclose(f);
}

int
main(int argc, char **argv)
{
	json_error_t jerr;
	json_t	   *manifest;
	json_t	   *tensors;
	char		err[512] = {0};
	const char *dir = rs_default_dir();

	if (argc == 3 && strcmp(argv[1], "--write") == 0)
	{
		if (!rs_ensure_checkpoint(argv[2], FIXTURES "realshape", err, sizeof(err)))
		{
			printf("error: %s\n", err);
			return 1;
		}
		printf("realshape checkpoint in %s\n", argv[2]);
		return 0;
	}
	test_known_answers();
	manifest = json_load_file(FIXTURES "manifest.json", 0, &jerr);
	CHECK(manifest != NULL, "cannot read " FIXTURES "manifest.json: %s", jerr.text);
	tensors = json_object_get(json_object_get(manifest, "realshape"), "tensors");
	CHECK(json_is_array(tensors), "manifest has no realshape.tensors");
	if (json_is_array(tensors))
	{
		test_against_numpy(tensors);
		CHECK(rs_ensure_checkpoint(dir, FIXTURES "realshape", err, sizeof(err)),
			  "writing %s: %s", dir, err);
		test_file(dir, tensors);
	}
	json_decref(manifest);
	printf("test_realshape_gen: %d checks, %d failures (checkpoint in %s)\n",
		   checks, failures, dir);
	return failures != 0;
}
