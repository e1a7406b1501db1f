/*
 * test_image_qwen.c
 *	  Qwen2-VL page preprocessing against test/fixtures/qwen (written by
 *	  generate_qwen.py from transformers' smart_resize and
 *	  Qwen2VLImageProcessorPil): every smart_resize case of the manifest
 *	  (including the 43 where a reordered expression lands elsewhere), and
 *	  the pixel values of every golden page, compared bit for bit through
 *	  their SHA-256.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "image_qwen.h"
#include "test_util.h"

/* ---- SHA-256 (FIPS 180-4), only to compare with the manifest's hashes ---- */

static const uint32_t sha_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
sha256_block(uint32_t h[8], const uint8_t *p)
{
	uint32_t	w[64];
	uint32_t	a, b, c, d, e, f, g, hh;
	int			i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t) p[4 * i] << 24 | (uint32_t) p[4 * i + 1] << 16 |
			(uint32_t) p[4 * i + 2] << 8 | p[4 * i + 3];
	for (i = 16; i < 64; i++)
	{
		uint32_t	s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t	s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4]; f = h[5]; g = h[6]; hh = h[7];
	for (i = 0; i < 64; i++)
	{
		uint32_t	t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
		uint32_t	t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));

		hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
	}
	h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

/* hex SHA-256 of data[0..n) into hex (65 bytes) */
static void
sha256_hex(const void *data, size_t n, char *hex)
{
	uint32_t	h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	const uint8_t *p = data;
	uint8_t		tail[128];
	size_t		full = n / 64 * 64;
	size_t		rest = n - full;
	size_t		tlen;
	uint64_t	bits = (uint64_t) n * 8;
	size_t		i;

	for (i = 0; i < full; i += 64)
		sha256_block(h, p + i);
	memset(tail, 0, sizeof(tail));
	memcpy(tail, p + full, rest);
	tail[rest] = 0x80;
	tlen = rest + 1 + 8 <= 64 ? 64 : 128;
	for (i = 0; i < 8; i++)
		tail[tlen - 1 - i] = (uint8_t) (bits >> (8 * i));
	for (i = 0; i < tlen; i += 64)
		sha256_block(h, tail + i);
	for (i = 0; i < 8; i++)
		sprintf(hex + 8 * i, "%08x", h[i]);
}

/* ---- tests ---- */

/*
 * test_sha256
 *		The hash itself on FIPS 180-4's "abc" and a two-block message.
 */
static void
test_sha256(void)
{
	char		hex[65];
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	sha256_hex("abc", 3, hex);
	CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "sha256(abc) %s", hex);
	sha256_hex(two, strlen(two), hex);
	CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0, "sha256(2 blocks) %s", hex);
}

/*
 * test_smart_resize
 *		Every case of manifest smart_resize.cases[].
 */
static void
test_smart_resize(json_t *manifest)
{
	json_t	   *cases = json_object_get(json_object_get(manifest, "smart_resize"), "cases");
	size_t		i;
	int			reordered = 0;

	CHECK(json_array_size(cases) >= 400, "smart_resize cases: %zu", json_array_size(cases));
	for (i = 0; i < json_array_size(cases); i++)
	{
		json_t	   *c = json_array_get(cases, i);
		int			h = (int) json_integer_value(json_object_get(c, "height"));
		int			w = (int) json_integer_value(json_object_get(c, "width"));
		int64_t		mn = json_integer_value(json_object_get(c, "min_pixels"));
		int64_t		mx = json_integer_value(json_object_get(c, "max_pixels"));
		json_t	   *want = json_object_get(c, "resized");
		int			rh = 0;
		int			rw = 0;
		CpError		err = {0};
		CpStatus	st = cp_qwen_smart_resize(h, w, 28, mn, mx, &rh, &rw, &err);

		if (json_is_null(want))
			CHECK(st == CP_ERR_UNSUPPORTED && strstr(err.msg, "aspect ratio"),
				  "%dx%d: refused by the reference, got %s", h, w, cp_status_name(st));
		else
			CHECK(st == CP_OK && rh == json_integer_value(json_array_get(want, 0)) &&
				  rw == json_integer_value(json_array_get(want, 1)),
				  "%dx%d min %lld max %lld: got %dx%d, want %lldx%lld (%s)", h, w,
				  (long long) mn, (long long) mx, rh, rw,
				  (long long) json_integer_value(json_array_get(want, 0)),
				  (long long) json_integer_value(json_array_get(want, 1)), err.msg);
		reordered += json_is_true(json_object_get(c, "naive_differs"));
	}
	CHECK(reordered >= 20, "cases where the expression order matters: %d", reordered);
	printf("smart_resize: %zu cases (%d order-sensitive)\n", json_array_size(cases), reordered);
}

/*
 * test_pixels
 *		Pixel values and grid of every golden page of one model.
 */
static void
test_pixels(json_t *manifest, const char *model)
{
	json_t	   *gold = json_object_get(json_object_get(manifest, "goldens"), model);
	json_t	   *pages = json_object_get(gold, "pages");
	json_t	   *images = json_object_get(manifest, "images");
	CpQwenImageConfig cfg;
	size_t		i;
	int			ok = 0;

	cp_qwen_image_config_default(&cfg);
	cfg.max_pixels = json_integer_value(json_object_get(gold, "max_pixels"));
	CHECK(json_array_size(pages) >= 10, "%s: %zu golden pages", model, json_array_size(pages));
	for (i = 0; i < json_array_size(pages); i++)
	{
		json_t	   *pg = json_array_get(pages, i);
		const char *name = json_string_value(json_object_get(pg, "image"));
		json_t	   *grid = json_object_get(pg, "grid_thw");
		const char *file = NULL;
		char		path[512];
		size_t		j;
		size_t		len;
		uint8_t    *bytes;
		float	   *px = NULL;
		int			gh = 0;
		int			gw = 0;
		CpError		err = {0};
		char		hex[65];

		for (j = 0; j < json_array_size(images); j++)
			if (strcmp(json_string_value(json_object_get(json_array_get(images, j), "name")), name) == 0)
				file = json_string_value(json_object_get(json_array_get(images, j), "file"));
		CHECK(file != NULL, "image %s not in the manifest", name);
		if (file == NULL)
			continue;
		snprintf(path, sizeof(path), "../fixtures/%s", file);
		bytes = read_file(path, &len);
		CHECK(bytes != NULL, "cannot read %s", path);
		if (bytes == NULL)
			continue;
		if (cp_qwen_image_preprocess(bytes, len, &cfg, 0, &px, &gh, &gw, &err) != CP_OK)
		{
			CHECK(false, "%s: %s", name, err.msg);
			free(bytes);
			continue;
		}
		CHECK(gh == json_integer_value(json_array_get(grid, 1)) &&
			  gw == json_integer_value(json_array_get(grid, 2)),
			  "%s %s: grid %dx%d, want %lldx%lld", model, name, gh, gw,
			  (long long) json_integer_value(json_array_get(grid, 1)),
			  (long long) json_integer_value(json_array_get(grid, 2)));
		sha256_hex(px, (size_t) gh * gw * 1176 * sizeof(float), hex);
		if (strcmp(hex, json_string_value(json_object_get(pg, "pixel_values_sha256"))) == 0)
			ok++;
		else
			CHECK(false, "%s %s: pixel values differ from the reference (sha256 %s)", model, name, hex);
		free(px);
		free(bytes);
	}
	printf("%s: %d of %zu pages with identical pixel values\n", model, ok, json_array_size(pages));
}

/*
 * test_budget
 *		Default max_pixels: the smaller of the checkpoint's and 768 tokens.
 */
static void
test_budget(void)
{
	CpQwenImageConfig cfg;
	int			rh = 0;
	int			rw = 0;
	CpError		err = {0};

	cp_qwen_image_config_default(&cfg);
	CHECK(cp_qwen_max_pixels(&cfg, 12845056, CP_QWEN_TRAINED_VISUAL_TOKENS) == 768 * 28 * 28, "768-token budget");
	CHECK(cp_qwen_max_pixels(&cfg, 200704, CP_QWEN_TRAINED_VISUAL_TOKENS) == 200704, "checkpoint smaller");
	CHECK(cp_qwen_max_pixels(&cfg, 12845056, 0) == 12845056, "no budget");
	CHECK(cp_qwen_max_pixels(&cfg, 12845056, 1) == cfg.min_pixels, "a budget below min_pixels gives min_pixels");
	/* an A4 scan at 300 dpi stays within 768 visual tokens */
	CHECK(cp_qwen_smart_resize(3508, 2480, 28, 3136, cp_qwen_max_pixels(&cfg, 12845056, 768), &rh, &rw, &err) == CP_OK &&
		  (int64_t) rh * rw <= 768 * 784, "A4 at 300 dpi: %dx%d", rw, rh);
	CHECK(cp_qwen_smart_resize(0, 10, 28, 3136, 1000, &rh, &rw, &err) == CP_ERR_INVALID_ARG, "zero height");
}

int
main(void)
{
	json_error_t jerr;
	json_t	   *manifest = json_load_file("../fixtures/qwen/manifest.json", 0, &jerr);

	test_sha256();
	test_budget();
	CHECK(manifest != NULL, "qwen manifest: %s", jerr.text);
	if (manifest)
	{
		test_smart_resize(manifest);
		test_pixels(manifest, "colqwen2");
		test_pixels(manifest, "colqwen2_5");
		json_decref(manifest);
	}
	if (failures)
	{
		printf("test_image_qwen: %d failure(s) of %d checks\n", failures, checks);
		return 1;
	}
	printf("test_image_qwen: ok (%d checks)\n", checks);
	return 0;
}
