/*
 * test_weights.c
 *	  Safetensors reader, sharded checkpoints, LoRA merge: valid files written
 *	  here from C, and every kind of broken file we could think of.  Fixture
 *	  checkpoints written by transformers (test/fixtures/) are opened too
 *	  when present.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weights.h"
#include "test_util.h"

static char tmpdir[256];

/* write u64 header length + header + data to path */
static void
write_raw(const char *path, uint64_t hlen, const char *header, size_t header_len,
		  const void *data, size_t datalen)
{
	FILE	   *f = fopen(path, "wb");
	uint8_t		le[8];
	int			i;

	for (i = 0; i < 8; i++)
		le[i] = (uint8_t) (hlen >> (8 * i));
	fwrite(le, 1, 8, f);
	if (header_len)
		fwrite(header, 1, header_len, f);
	if (datalen)
		fwrite(data, 1, datalen, f);
	fclose(f);
}

static void
write_st(const char *path, const char *header, const void *data, size_t datalen)
{
	write_raw(path, strlen(header), header, strlen(header), data, datalen);
}

static char *
tpath(const char *name)
{
	static char buf[8][512];
	static int	k = 0;

	k = (k + 1) % 8;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
	return buf[k];
}

static char *
tdir(const char *name)
{
	char	   *p = tpath(name);

	mkdir(p, 0755);
	return p;
}

/* parse a header held in memory */
static CpStatus
parse_mem(const char *header, size_t datalen, CpError *err, int *count)
{
	size_t		hl = strlen(header);
	uint8_t    *buf = calloc(1, 8 + hl + datalen);
	CpTensor   *ts = NULL;
	CpStatus	st;
	int			i;

	for (i = 0; i < 8; i++)
		buf[i] = (uint8_t) ((uint64_t) hl >> (8 * i));
	memcpy(buf + 8, header, hl);
	st = cp_safetensors_parse_header(buf, 8 + hl + datalen, &ts, count, NULL, err);
	cp_safetensors_free_header(ts, *count);
	free(buf);
	return st;
}

static void
test_conversions(void)
{
	/* values fixed by the IEEE 754 binary16 / bfloat16 definitions */
	CHECK(cp_f16_to_f32(0x3c00) == 1.0f, "f16 1.0");
	CHECK(cp_f16_to_f32(0xc000) == -2.0f, "f16 -2.0");
	CHECK(cp_f16_to_f32(0x7bff) == 65504.0f, "f16 max");
	CHECK(cp_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "f16 min subnormal");
	CHECK(cp_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24), "f16 max subnormal");
	CHECK(isinf(cp_f16_to_f32(0xfc00)) && cp_f16_to_f32(0xfc00) < 0, "f16 -inf");
	CHECK(isnan(cp_f16_to_f32(0x7e00)), "f16 nan");
	CHECK(cp_bf16_to_f32(0x3f80) == 1.0f, "bf16 1.0");
	CHECK(cp_bf16_to_f32(0xc0a0) == -5.0f, "bf16 -5");
	CHECK(cp_f32_to_bf16(1.0f) == 0x3f80, "bf16 of 1");
	/* 1 + 2^-8 is a tie between 0x3f80 and 0x3f81: even wins */
	CHECK(cp_f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80, "bf16 tie to even down");
	/* 1 + 3*2^-8 is a tie between 0x3f81 and 0x3f82: even wins */
	CHECK(cp_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82, "bf16 tie to even up");
	CHECK(cp_f32_to_bf16(1.0f + ldexpf(1.0f, -7) + ldexpf(1.0f, -9)) == 0x3f81, "bf16 below half");
	CHECK(isnan(cp_bf16_to_f32(cp_f32_to_bf16(NAN))), "bf16 nan stays nan");
	CHECK(cp_f32_to_bf16(INFINITY) == 0x7f80, "bf16 inf");
}

static void
test_valid_file(void)
{
	/* a: F32 [2,3]; b: BF16 [3]; c: F16 [2]; d: I64 [1] (kept out); e: empty */
	float		a[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
	uint16_t	b[3] = {0x3f80, 0xc0a0, 0x0000};
	uint16_t	c[2] = {0x3c00, 0xc000};
	int64_t		d[1] = {42};
	uint8_t		data[24 + 6 + 4 + 8];
	const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
		"\"model.language_model.model.layers.0.self_attn.q_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
		"\"model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]},"
		"\"custom_text_proj.bias\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[30,34]},"
		"\"position_ids\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[34,42]},"
		"\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[42,42]}}";
	char	   *dir = tdir("valid");
	CpWeights  *w = NULL;
	CpError		err = {0};
	CpStatus	st;
	const CpTensor *t;
	float		f[6];
	float	   *all = NULL;
	int64_t		shape23[2] = {2, 3};
	int64_t		shape32[2] = {3, 2};
	char		path[600];
	int			i;

	memcpy(data, a, 24);
	memcpy(data + 24, b, 6);
	memcpy(data + 30, c, 4);
	memcpy(data + 34, d, 8);
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	write_st(path, hdr, data, sizeof(data));

	st = cp_weights_open(dir, NULL, &w, &err);
	CHECK(st == CP_OK, "open valid: %s", err.msg);
	if (st != CP_OK)
		return;
	CHECK(cp_weights_count(w) == 4, "4 float tensors kept, got %d", cp_weights_count(w));

	/* canonical suffixes */
	t = cp_weights_find(w, "language_model.layers.0.self_attn.q_proj.weight");
	CHECK(t != NULL && t->dtype == CP_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3,
		  "find text q_proj");
	if (t)
	{
		cp_tensor_to_f32(t, 0, 6, f);
		CHECK(memcmp(f, a, sizeof(a)) == 0, "f32 data");
		CHECK(((uintptr_t) t->data % 4) == 0, "aligned");
		cp_tensor_to_f32(t, 4, 2, f);
		CHECK(f[0] == a[4] && f[1] == a[5], "f32 range");
	}
	/* bare layer suffix is ambiguous between the towers */
	CHECK(cp_weights_find(w, "layers.0.self_attn.q_proj.weight") == NULL, "ambiguous suffix");
	st = cp_weights_lookup(w, "layers.0.self_attn.q_proj.weight", &t, &err);
	CHECK(st == CP_ERR_FORMAT && strstr(err.msg, "ambiguous"), "ambiguous message: %s", err.msg);
	/* suffix only at '.' boundaries */
	CHECK(cp_weights_find(w, "q_proj.weight") == NULL, "q_proj.weight ambiguous");
	CHECK(cp_weights_find(w, "_proj.weight") == NULL, "no match inside a component");
	CHECK(cp_weights_find(w, "proj.bias") == NULL, "no match inside component (proj.bias)");
	t = cp_weights_find(w, "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight");
	CHECK(t != NULL && t->dtype == CP_DTYPE_BF16, "find vision");
	if (t)
	{
		cp_tensor_to_f32(t, 0, 3, f);
		CHECK(f[0] == 1.0f && f[1] == -5.0f && f[2] == 0.0f, "bf16 data");
	}
	t = cp_weights_find(w, "custom_text_proj.bias");
	CHECK(t != NULL && t->dtype == CP_DTYPE_F16, "find f16");
	if (t)
	{
		CHECK(cp_tensor_load_f32(t, &all, &err) == CP_OK, "load f32");
		CHECK(all && all[0] == 1.0f && all[1] == -2.0f, "f16 data");
		free(all);
	}
	/* full stored name works too */
	CHECK(cp_weights_find(w, "model.language_model.model.layers.0.self_attn.q_proj.weight") != NULL,
		  "stored name");
	CHECK(cp_weights_find(w, "position_ids") == NULL, "I64 left out");
	t = cp_weights_find(w, "empty");
	CHECK(t != NULL && t->numel == 0, "empty tensor");

	st = cp_weights_require(w, "language_model.layers.0.self_attn.q_proj.weight", 2, shape23, &t, &err);
	CHECK(st == CP_OK && t != NULL, "require ok: %s", err.msg);
	st = cp_weights_require(w, "language_model.layers.0.self_attn.q_proj.weight", 2, shape32, &t, &err);
	CHECK(st == CP_ERR_SHAPE && t == NULL && strstr(err.msg, "q_proj") && strstr(err.msg, "[2, 3]") &&
		  strstr(err.msg, "[3, 2]"), "require shape message: %s", err.msg);
	st = cp_weights_require(w, "language_model.layers.1.self_attn.q_proj.weight", 2, shape23, &t, &err);
	CHECK(st == CP_ERR_NOT_FOUND && strstr(err.msg, "layers.1.self_attn.q_proj"), "missing message: %s", err.msg);
	for (i = 1; i < cp_weights_count(w); i++)
		CHECK(strcmp(cp_weights_at(w, i - 1)->name, cp_weights_at(w, i)->name) < 0, "sorted");
	CHECK(cp_weights_at(w, 99) == NULL && cp_weights_at(w, -1) == NULL, "at out of range");
	cp_weights_close(w);
}

/* other layouts map to the same canonical names */
static void
test_layouts(void)
{
	static const char *names[][2] = {
		{"vlm.language_model.model.norm.weight", "vlm.vision_tower.vision_model.post_layernorm.weight"},
		{"vlm.model.language_model.norm.weight", "vlm.model.vision_tower.vision_model.post_layernorm.weight"},
		{"model.model.language_model.norm.weight", "model.model.vision_tower.vision_model.post_layernorm.weight"},
		{"language_model.model.norm.weight", "vision_tower.vision_model.post_layernorm.weight"},
	};
	int			k;

	for (k = 0; k < 4; k++)
	{
		char		hdr[1024];
		char		dname[32];
		char	   *dir;
		char		path[600];
		float		data[4] = {1, 2, 3, 4};
		CpWeights  *w = NULL;
		CpError		err = {0};

		snprintf(hdr, sizeof(hdr),
				 "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
				 "\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
				 names[k][0], names[k][1]);
		snprintf(dname, sizeof(dname), "layout%d", k);
		dir = tdir(dname);
		snprintf(path, sizeof(path), "%s/model.safetensors", dir);
		write_st(path, hdr, data, sizeof(data));
		CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_OK, "layout %d: %s", k, err.msg);
		if (!w)
			continue;
		CHECK(cp_weights_find(w, "language_model.norm.weight") != NULL, "layout %d text norm", k);
		CHECK(cp_weights_find(w, "vision_tower.vision_model.post_layernorm.weight") != NULL,
			  "layout %d vision norm", k);
		/* "norm.weight" matches only the text norm at a '.' boundary */
		CHECK(cp_weights_find(w, "norm.weight") == cp_weights_find(w, "language_model.norm.weight"),
			  "layout %d norm.weight", k);
		cp_weights_close(w);
	}
}

static void
expect_bad_header(const char *what, const char *hdr, size_t datalen, CpStatus want, const char *needle)
{
	CpError		err = {0};
	int			n = -1;
	CpStatus	st = parse_mem(hdr, datalen, &err, &n);

	CHECK(st == want, "%s: status %s, expected %s (%s)", what, cp_status_name(st), cp_status_name(want), err.msg);
	CHECK(needle == NULL || strstr(err.msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err.msg, needle);
}

static void
test_bad_headers(void)
{
	CpError		err = {0};
	CpTensor   *ts = NULL;
	int			n = 0;
	uint8_t		buf[64];
	int			i;

	expect_bad_header("not json", "{\"a\":", 0, CP_ERR_FORMAT, "JSON");
	expect_bad_header("array", "[1,2,3]", 0, CP_ERR_FORMAT, "object");
	expect_bad_header("entry not object", "{\"a\":3}", 0, CP_ERR_FORMAT, "\"a\"");
	expect_bad_header("no dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, CP_ERR_FORMAT, "dtype");
	expect_bad_header("bad dtype", "{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
					  CP_ERR_UNSUPPORTED, "Q4");
	expect_bad_header("dtype not string", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
					  CP_ERR_FORMAT, "dtype");
	expect_bad_header("negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
					  CP_ERR_FORMAT, "shape");
	expect_bad_header("float dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
					  CP_ERR_FORMAT, "shape");
	expect_bad_header("shape overflow",
					  "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
					  CP_ERR_FORMAT, "overflow");
	expect_bad_header("byte overflow",
					  "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4,
					  CP_ERR_FORMAT, "overflow");
	expect_bad_header("too many dims",
					  "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
					  CP_ERR_UNSUPPORTED, "dimensions");
	expect_bad_header("size mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8,
					  CP_ERR_FORMAT, "\"w\" needs 8 bytes");
	expect_bad_header("end past data", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
					  CP_ERR_FORMAT, "outside");
	expect_bad_header("begin after end", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8,
					  CP_ERR_FORMAT, "outside");
	expect_bad_header("negative offset", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8,
					  CP_ERR_FORMAT, "outside");
	expect_bad_header("huge offset",
					  "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9223372036854775806,9223372036854775807]}}",
					  8, CP_ERR_FORMAT, "outside");
	expect_bad_header("offsets not pair", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 8,
					  CP_ERR_FORMAT, "data_offsets");
	expect_bad_header("overlap",
					  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
					  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
					  CP_ERR_FORMAT, "overlap");
	expect_bad_header("overlap with skipped dtype",
					  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
					  "\"b\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[8,16]}}", 16,
					  CP_ERR_FORMAT, "overlap");
	expect_bad_header("duplicate key",
					  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
					  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
					  CP_ERR_FORMAT, "JSON");
	expect_bad_header("metadata not object", "{\"__metadata__\":[1]}", 0, CP_ERR_FORMAT, "__metadata__");
	expect_bad_header("empty name", "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
					  CP_ERR_FORMAT, "empty");

	/* two zero-length tensors at the same offset do not overlap */
	CHECK(parse_mem("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
					"\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, &err, &n) == CP_OK && n == 2,
		  "empty tensors: %s", err.msg);

	/* length field problems */
	CHECK(cp_safetensors_parse_header(buf, 7, &ts, &n, NULL, &err) == CP_ERR_FORMAT, "7 bytes");
	memset(buf, 0xff, 8);		/* 2^64 - 1 */
	CHECK(cp_safetensors_parse_header(buf, sizeof(buf), &ts, &n, NULL, &err) == CP_ERR_FORMAT &&
		  strstr(err.msg, "exceeds"), "huge header length: %s", err.msg);
	for (i = 0; i < 8; i++)
		buf[i] = 0;
	buf[0] = 57;				/* 57 > 64 - 8 */
	CHECK(cp_safetensors_parse_header(buf, sizeof(buf), &ts, &n, NULL, &err) == CP_ERR_FORMAT, "header past end");
	buf[0] = 0;
	CHECK(cp_safetensors_parse_header(buf, sizeof(buf), &ts, &n, NULL, &err) == CP_ERR_FORMAT, "zero header");
	{
		/* a 200 MB header length in a file that claims to be that large */
		size_t		big = (size_t) 200 * 1024 * 1024 + 8;
		uint8_t    *p = calloc(1, big);

		if (p)
		{
			uint64_t	hl = big - 8;

			for (i = 0; i < 8; i++)
				p[i] = (uint8_t) (hl >> (8 * i));
			CHECK(cp_safetensors_parse_header(p, big, &ts, &n, NULL, &err) == CP_ERR_LIMIT,
				  "header over 100 MB: %s", err.msg);
			free(p);
		}
	}
}

static void
test_bad_files(void)
{
	char	   *dir;
	char		path[600];
	CpWeights  *w = NULL;
	CpError		err = {0};
	float		data[4] = {1, 2, 3, 4};
	const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
	FILE	   *f;

	/* missing folder contents */
	dir = tdir("empty");
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_ERR_NOT_FOUND && strstr(err.msg, "model.safetensors"),
		  "no checkpoint: %s", err.msg);
	CHECK(cp_weights_open(tpath("does-not-exist"), NULL, &w, &err) == CP_ERR_NOT_FOUND, "no dir");
	CHECK(cp_weights_open(NULL, NULL, &w, &err) == CP_ERR_INVALID_ARG, "null dir");

	/* truncated data section */
	dir = tdir("trunc");
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	write_st(path, hdr, data, 12);
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_ERR_FORMAT && strstr(err.msg, "\"w\"") &&
		  strstr(err.msg, "model.safetensors"), "truncated: %s", err.msg);
	CHECK(w == NULL, "no weights on failure");

	/* truncated inside the header */
	f = fopen(path, "wb");
	fwrite("\x40\0\0\0\0\0\0\0{\"w\":", 1, 13, f);
	fclose(f);
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_ERR_FORMAT, "truncated header: %s", err.msg);

	/* empty file */
	f = fopen(path, "wb");
	fclose(f);
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_ERR_FORMAT && strstr(err.msg, "too small"),
		  "empty file: %s", err.msg);

	/* a directory where the file should be */
	dir = tdir("isdir");
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	mkdir(path, 0755);
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_ERR_IO, "directory as file: %s", err.msg);
	rmdir(path);

	/* odd header length: data not aligned in the mapping, copied */
	{
		char		h2[256];
		size_t		hl;
		float		f4[4];

		dir = tdir("unaligned");
		snprintf(path, sizeof(path), "%s/model.safetensors", dir);
		snprintf(h2, sizeof(h2), "%s ", hdr);	/* trailing space: legal padding */
		hl = strlen(h2);
		if (hl % 4 == 0)
			strcat(h2, " "), hl++;
		write_raw(path, hl, h2, hl, data, 16);
		CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_OK, "unaligned: %s", err.msg);
		if (w)
		{
			const CpTensor *t = cp_weights_find(w, "w");

			CHECK(t && ((uintptr_t) t->data % 4) == 0, "copy aligned");
			if (t)
			{
				cp_tensor_to_f32(t, 0, 4, f4);
				CHECK(memcmp(f4, data, 16) == 0, "unaligned data");
			}
			cp_weights_close(w);
			w = NULL;
		}
	}
}

static void
test_sharded(void)
{
	char	   *dir = tdir("sharded");
	char		path[600];
	CpWeights  *w = NULL;
	CpError		err = {0};
	float		d1[2] = {1, 2};
	float		d2[3] = {3, 4, 5};
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/model-00001-of-00002.safetensors", dir);
	write_st(path, "{\"model.language_model.model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
			 d1, 8);
	snprintf(path, sizeof(path), "%s/model-00002-of-00002.safetensors", dir);
	write_st(path, "{\"custom_text_proj.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
			 d2, 12);
	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
	f = fopen(path, "w");
	fprintf(f, "{\"metadata\":{\"total_size\":20},\"weight_map\":{"
			"\"model.language_model.model.norm.weight\":\"model-00001-of-00002.safetensors\","
			"\"custom_text_proj.bias\":\"model-00002-of-00002.safetensors\"}}");
	fclose(f);
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_OK, "sharded: %s", err.msg);
	if (w)
	{
		const CpTensor *t = cp_weights_find(w, "custom_text_proj.bias");
		float		x[3];

		CHECK(cp_weights_count(w) == 2, "2 tensors");
		CHECK(t != NULL, "shard 2 tensor");
		if (t)
		{
			cp_tensor_to_f32(t, 0, 3, x);
			CHECK(x[0] == 3 && x[2] == 5, "shard 2 data");
		}
		CHECK(cp_weights_find(w, "language_model.norm.weight") != NULL, "shard 1 tensor");
		cp_weights_close(w);
		w = NULL;
	}

	/* index lists a tensor the shard lacks */
	f = fopen(path, "w");
	fprintf(f, "{\"weight_map\":{\"model.language_model.model.norm.weight\":\"model-00001-of-00002.safetensors\","
			"\"lm_head.weight\":\"model-00001-of-00002.safetensors\","
			"\"custom_text_proj.bias\":\"model-00002-of-00002.safetensors\"}}");
	fclose(f);
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_ERR_NOT_FOUND && strstr(err.msg, "lm_head.weight"),
		  "index lists missing tensor: %s", err.msg);

	/* missing shard */
	f = fopen(path, "w");
	fprintf(f, "{\"weight_map\":{\"x\":\"model-00003-of-00002.safetensors\"}}");
	fclose(f);
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_ERR_NOT_FOUND && strstr(err.msg, "00003"),
		  "missing shard: %s", err.msg);

	/* path in the shard name */
	f = fopen(path, "w");
	fprintf(f, "{\"weight_map\":{\"x\":\"../valid/model.safetensors\"}}");
	fclose(f);
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_ERR_FORMAT && strstr(err.msg, "plain file"),
		  "shard path: %s", err.msg);

	/* index not JSON / no weight_map */
	f = fopen(path, "w");
	fprintf(f, "{\"weight_map\":");
	fclose(f);
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_ERR_FORMAT, "bad index: %s", err.msg);
	f = fopen(path, "w");
	fprintf(f, "{\"metadata\":{}}");
	fclose(f);
	CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_ERR_FORMAT && strstr(err.msg, "weight_map"),
		  "no weight_map: %s", err.msg);

	/* the same tensor in two shards */
	snprintf(path, sizeof(path), "%s/model-00002-of-00002.safetensors", dir);
	write_st(path, "{\"model.language_model.model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
			 d2, 12);
	snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
	f = fopen(path, "w");
	fprintf(f, "{\"weight_map\":{\"model.language_model.model.norm.weight\":\"model-00001-of-00002.safetensors\","
			"\"x\":\"model-00002-of-00002.safetensors\"}}");
	fclose(f);
	CHECK(cp_weights_open(dir, NULL, &w, &err) != CP_OK, "duplicate across shards: %s", err.msg);
}

/* write the base + adapter pair used by the LoRA tests */
static void
write_lora_case(const char *base, const char *adapter, const char *adapter_cfg,
				const char *lora_prefix)
{
	/* base: q [3,4] BF16, k [2,4] F32, proj [2,3] F32 (replaced), vision q [2,2] */
	uint16_t	q[12];
	float		k[8];
	float		proj[6] = {9, 9, 9, 9, 9, 9};
	float		vq[4] = {1, 1, 1, 1};
	uint8_t		data[24 + 32 + 24 + 16];
	char		hdr[2048];
	char		path[600];
	FILE	   *f;
	int			i;

	for (i = 0; i < 12; i++)
		q[i] = cp_f32_to_bf16((float) (i - 5) * 0.25f);
	for (i = 0; i < 8; i++)
		k[i] = (float) i * 0.5f - 1.0f;
	memcpy(data, q, 24);
	memcpy(data + 24, k, 32);
	memcpy(data + 56, proj, 24);
	memcpy(data + 80, vq, 16);
	snprintf(path, sizeof(path), "%s/model.safetensors", base);
	write_st(path,
			 "{\"model.language_model.model.layers.0.self_attn.q_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[3,4],\"data_offsets\":[0,24]},"
			 "\"model.language_model.model.layers.0.self_attn.k_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[24,56]},"
			 "\"custom_text_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[56,80]},"
			 "\"model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[80,96]}}",
			 data, sizeof(data));

	{
		/* adapter: r = 2; q A [2,4] B [3,2]; k A [2,4] B [2,2]; full proj */
		float		qa[8] = {1, 0, -1, 2, 0.5f, 0.5f, 0, 1};
		float		qb[6] = {1, 2, 0, -1, 3, 0.25f};
		float		ka[8] = {0, 1, 0, 1, 1, 0, 1, 0};
		float		kb[4] = {2, 0, 0, -2};
		float		np[6] = {1, 2, 3, 4, 5, 6};
		uint8_t		ad[32 + 24 + 32 + 16 + 24];

		memcpy(ad, qa, 32);
		memcpy(ad + 32, qb, 24);
		memcpy(ad + 56, ka, 32);
		memcpy(ad + 88, kb, 16);
		memcpy(ad + 104, np, 24);
		snprintf(hdr, sizeof(hdr),
				 "{\"base_model.model.%slayers.0.self_attn.q_proj.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]},"
				 "\"base_model.model.%slayers.0.self_attn.q_proj.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[32,56]},"
				 "\"base_model.model.%slayers.0.self_attn.k_proj.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[56,88]},"
				 "\"base_model.model.%slayers.0.self_attn.k_proj.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[88,104]},"
				 "\"base_model.model.custom_text_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[104,128]}}",
				 lora_prefix, lora_prefix, lora_prefix, lora_prefix);
		snprintf(path, sizeof(path), "%s/adapter_model.safetensors", adapter);
		write_st(path, hdr, ad, sizeof(ad));
	}
	snprintf(path, sizeof(path), "%s/adapter_config.json", adapter);
	f = fopen(path, "w");
	fputs(adapter_cfg, f);
	fclose(f);
}

static void
check_merged(CpWeights *w, double scale)
{
	float		qa[8] = {1, 0, -1, 2, 0.5f, 0.5f, 0, 1};
	float		qb[6] = {1, 2, 0, -1, 3, 0.25f};
	float		ka[8] = {0, 1, 0, 1, 1, 0, 1, 0};
	float		kb[4] = {2, 0, 0, -2};
	const CpTensor *t;
	float		got[12];
	int			o;
	int			j;
	int			r;

	t = cp_weights_find(w, "language_model.layers.0.self_attn.q_proj.weight");
	CHECK(t != NULL && t->dtype == CP_DTYPE_F32, "merged q is float32");
	if (t)
	{
		cp_tensor_to_f32(t, 0, 12, got);
		for (o = 0; o < 3; o++)
			for (j = 0; j < 4; j++)
			{
				double		want = cp_bf16_to_f32(cp_f32_to_bf16((float) (o * 4 + j - 5) * 0.25f));

				for (r = 0; r < 2; r++)
					want += scale * qb[o * 2 + r] * qa[r * 4 + j];
				/* merged in float32: float rounding only */
				CHECK(fabs(got[o * 4 + j] - want) <= fabs(want) * 1e-6 + 1e-6,
					  "q[%d][%d] = %g, want %g", o, j, got[o * 4 + j], want);
			}
	}
	t = cp_weights_find(w, "language_model.layers.0.self_attn.k_proj.weight");
	CHECK(t != NULL && t->dtype == CP_DTYPE_F32, "merged k F32");
	if (t)
	{
		cp_tensor_to_f32(t, 0, 8, got);
		for (o = 0; o < 2; o++)
			for (j = 0; j < 4; j++)
			{
				double		want = (o * 4 + j) * 0.5 - 1.0;

				for (r = 0; r < 2; r++)
					want += scale * kb[o * 2 + r] * ka[r * 4 + j];
				CHECK(fabs(got[o * 4 + j] - want) < 1e-6, "k[%d][%d] = %g, want %g", o, j, got[o * 4 + j], want);
			}
	}
	t = cp_weights_find(w, "custom_text_proj.weight");
	CHECK(t != NULL, "proj");
	if (t)
	{
		cp_tensor_to_f32(t, 0, 6, got);
		CHECK(got[0] == 1 && got[5] == 6, "proj replaced by the adapter's");
	}
	t = cp_weights_find(w, "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight");
	CHECK(t != NULL, "vision untouched present");
	if (t)
	{
		cp_tensor_to_f32(t, 0, 4, got);
		CHECK(got[0] == 1 && got[3] == 1, "vision untouched");
	}
}

static void
test_lora(void)
{
	const char *cfg_regex =
		"{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":3,\"base_model_name_or_path\":\"../lbase\","
		"\"target_modules\":\"(.*(language_model).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$|.*(custom_text_proj).*$)\","
		"\"modules_to_save\":null}";
	const char *cfg_list =
		"{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":2,\"use_rslora\":true,"
		"\"target_modules\":[\"q_proj\",\"k_proj\"]}";
	char	   *base = tdir("lbase");
	char	   *ad = tdir("ladapter");
	CpWeights  *w = NULL;
	CpError		err = {0};
	char		path[600];
	FILE	   *f;

	/* adapter in the engine's pre-4.52 layout, base too */
	write_lora_case(base, ad, cfg_regex, "model.language_model.model.");
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_OK, "lora open: %s", err.msg);
	if (w)
	{
		check_merged(w, 3.0 / 2.0);
		cp_weights_close(w);
		w = NULL;
	}
	/* base found through base_model_name_or_path (relative) */
	CHECK(cp_weights_open(ad, NULL, &w, &err) == CP_OK, "lora via base_model_name_or_path: %s", err.msg);
	cp_weights_close(w);
	w = NULL;

	/* adapter saved from the newer layout (model.model.language_model.) */
	write_lora_case(base, ad, cfg_list, "model.model.language_model.");
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_OK, "lora newer layout: %s", err.msg);
	if (w)
	{
		check_merged(w, 2.0 / sqrt(2.0));
		cp_weights_close(w);
		w = NULL;
	}
	/* no base and none in the config */
	CHECK(cp_weights_open(ad, NULL, &w, &err) == CP_ERR_INVALID_ARG && strstr(err.msg, "base"),
		  "lora no base: %s", err.msg);
	/* ... unless the folder also holds a full checkpoint */
	{
		float		d[2] = {1, 2};

		snprintf(path, sizeof(path), "%s/model.safetensors", ad);
		write_st(path, "{\"custom_text_proj.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8);
		CHECK(cp_weights_open(ad, NULL, &w, &err) == CP_OK && cp_weights_count(w) == 1,
			  "full checkpoint beside adapter config: %s", err.msg);
		cp_weights_close(w);
		w = NULL;
		unlink(path);
	}

	/* rank disagrees with the config */
	write_lora_case(base, ad, "{\"r\":4,\"lora_alpha\":4}", "model.language_model.model.");
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_ERR_SHAPE && strstr(err.msg, "r = 4"),
		  "rank mismatch: %s", err.msg);

	/* module not targeted */
	write_lora_case(base, ad, "{\"r\":2,\"lora_alpha\":2,\"target_modules\":[\"v_proj\"]}",
					"model.language_model.model.");
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_ERR_FORMAT && strstr(err.msg, "target_modules"),
		  "untargeted: %s", err.msg);

	/* adapter for a module the base lacks */
	write_lora_case(base, ad, "{\"r\":2,\"lora_alpha\":2}", "model.language_model.model.");
	snprintf(path, sizeof(path), "%s/model.safetensors", base);
	{
		float		d[8] = {0};

		write_st(path, "{\"model.language_model.model.layers.0.self_attn.k_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]}}",
				 d, 32);
	}
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_ERR_NOT_FOUND && strstr(err.msg, "q_proj"),
		  "missing base module: %s", err.msg);

	/* mis-shaped lora_B */
	write_lora_case(base, ad, "{\"r\":2,\"lora_alpha\":2}", "model.language_model.model.");
	{
		float		d[16] = {0};

		snprintf(path, sizeof(path), "%s/adapter_model.safetensors", ad);
		write_st(path,
				 "{\"base_model.model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]},"
				 "\"base_model.model.model.language_model.model.layers.0.self_attn.q_proj.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[4,2],\"data_offsets\":[32,64]}}",
				 d, 64);
	}
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_ERR_SHAPE && strstr(err.msg, "q_proj"),
		  "lora_B shape: %s", err.msg);

	/* lora_A without lora_B */
	{
		float		d[8] = {0};

		write_st(path,
				 "{\"base_model.model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]}}",
				 d, 32);
	}
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_ERR_NOT_FOUND && strstr(err.msg, "lora_B"),
		  "lora_A alone: %s", err.msg);

	/* unsupported adapter kinds */
	snprintf(path, sizeof(path), "%s/adapter_config.json", ad);
	f = fopen(path, "w");
	fputs("{\"peft_type\":\"IA3\"}", f);
	fclose(f);
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_ERR_UNSUPPORTED && strstr(err.msg, "IA3"), "ia3: %s", err.msg);
	f = fopen(path, "w");
	fputs("{\"r\":2,\"use_dora\":true}", f);
	fclose(f);
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_ERR_UNSUPPORTED && strstr(err.msg, "DoRA"), "dora: %s", err.msg);
	f = fopen(path, "w");
	fputs("{\"r\":", f);
	fclose(f);
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_ERR_FORMAT, "bad adapter json: %s", err.msg);
	snprintf(path, sizeof(path), "%s/adapter_model.safetensors", ad);
	unlink(path);
	snprintf(path, sizeof(path), "%s/adapter_config.json", ad);
	f = fopen(path, "w");
	fputs("{\"r\":2}", f);
	fclose(f);
	CHECK(cp_weights_open(ad, base, &w, &err) == CP_ERR_NOT_FOUND && strstr(err.msg, "adapter_model"),
		  "no adapter weights: %s", err.msg);
}

/*
 * Checkpoints written by transformers/peft (test/fixtures/models, from the
 * fixtures helper's generate.py), when present: every layout opens, every
 * tensor the model needs is found under its canonical name, the layouts
 * that hold the tiny-bf16 weights under other names give identical bytes,
 * and the LoRA merge equals W + (alpha / r) B A recomputed here in double
 * from the raw adapter file.
 */
static const char *fixture_suffixes[] = {
	"vision_tower.vision_model.embeddings.patch_embedding.weight",
	"vision_tower.vision_model.embeddings.patch_embedding.bias",
	"vision_tower.vision_model.embeddings.position_embedding.weight",
	"vision_tower.vision_model.encoder.layers.%d.layer_norm1.weight",
	"vision_tower.vision_model.encoder.layers.%d.layer_norm2.bias",
	"vision_tower.vision_model.encoder.layers.%d.self_attn.q_proj.weight",
	"vision_tower.vision_model.encoder.layers.%d.self_attn.out_proj.bias",
	"vision_tower.vision_model.encoder.layers.%d.mlp.fc1.weight",
	"vision_tower.vision_model.encoder.layers.%d.mlp.fc2.bias",
	"vision_tower.vision_model.post_layernorm.weight",
	"multi_modal_projector.linear.weight",
	"multi_modal_projector.linear.bias",
	"language_model.embed_tokens.weight",
	"language_model.layers.%d.input_layernorm.weight",
	"language_model.layers.%d.self_attn.q_proj.weight",
	"language_model.layers.%d.self_attn.k_proj.weight",
	"language_model.layers.%d.self_attn.v_proj.weight",
	"language_model.layers.%d.self_attn.o_proj.weight",
	"language_model.layers.%d.post_attention_layernorm.weight",
	"language_model.layers.%d.mlp.gate_proj.weight",
	"language_model.layers.%d.mlp.up_proj.weight",
	"language_model.layers.%d.mlp.down_proj.weight",
	"language_model.norm.weight",
};

static const CpTensor *
find_head(const CpWeights *w, const char *what)
{
	char		name[64];
	const CpTensor *t;

	snprintf(name, sizeof(name), "custom_text_proj.%s", what);
	t = cp_weights_find(w, name);
	if (t == NULL)
	{
		snprintf(name, sizeof(name), "embedding_proj_layer.%s", what);
		t = cp_weights_find(w, name);
	}
	return t;
}

/* every needed tensor exists; with ref, identical bytes to ref's */
static void
check_fixture_tensors(const char *model, const CpWeights *w, const CpWeights *ref)
{
	size_t		k;
	int			layer;

	for (k = 0; k < sizeof(fixture_suffixes) / sizeof(fixture_suffixes[0]); k++)
		for (layer = 0; layer < 2; layer++)
		{
			char		name[256];
			const CpTensor *t;

			if (layer > 0 && strstr(fixture_suffixes[k], "%d") == NULL)
				continue;
			snprintf(name, sizeof(name), fixture_suffixes[k], layer);
			t = cp_weights_find(w, name);
			CHECK(t != NULL, "fixture %s lacks %s", model, name);
			if (t != NULL && ref != NULL)
			{
				const CpTensor *r = cp_weights_find(ref, name);

				CHECK(r != NULL && r->dtype == t->dtype && r->nbytes == t->nbytes &&
					  memcmp(r->data, t->data, t->nbytes) == 0, "fixture %s: %s differs from tiny-bf16", model, name);
			}
		}
	CHECK(find_head(w, "weight") != NULL && find_head(w, "bias") != NULL, "fixture %s head", model);
	if (ref != NULL && find_head(w, "weight") && find_head(ref, "weight"))
		CHECK(memcmp(find_head(w, "weight")->data, find_head(ref, "weight")->data,
					 find_head(ref, "weight")->nbytes) == 0, "fixture %s head weight", model);
}

/* the merged tensors of tiny-lora against W + 2 B A from the raw files */
static void
check_fixture_lora(void)
{
	const char *ad_path = "../fixtures/models/tiny-lora/adapter_model.safetensors";
	CpWeights  *merged = NULL;
	CpWeights  *base = NULL;
	CpWeights  *viaconfig = NULL;
	CpError		err = {0};
	size_t		len = 0;
	uint8_t    *file = NULL;
	FILE	   *f;
	CpTensor   *ts = NULL;
	int			n = 0;
	size_t		start = 0;
	int			i;
	int			pairs = 0;

	CHECK(cp_weights_open("../fixtures/models/tiny-lora", "../fixtures/models/tiny-lora-base", &merged, &err) == CP_OK,
		  "tiny-lora: %s", err.msg);
	CHECK(cp_weights_open("../fixtures/models/tiny-lora-base", NULL, &base, &err) == CP_OK, "tiny-lora-base: %s", err.msg);
	/* base found through base_model_name_or_path ("tiny-lora-base", a sibling) */
	CHECK(cp_weights_open("../fixtures/models/tiny-lora", NULL, &viaconfig, &err) == CP_OK,
		  "tiny-lora without base_dir: %s", err.msg);
	cp_weights_close(viaconfig);
	f = fopen(ad_path, "rb");
	if (f != NULL)
	{
		fseek(f, 0, SEEK_END);
		len = (size_t) ftell(f);
		fseek(f, 0, SEEK_SET);
		file = malloc(len);
		if (fread(file, 1, len, f) != len)
			len = 0;
		fclose(f);
	}
	if (merged == NULL || base == NULL || file == NULL ||
		cp_safetensors_parse_header(file, len, &ts, &n, &start, &err) != CP_OK)
	{
		CHECK(0, "tiny-lora inputs: %s", err.msg);
		goto done;
	}
	check_fixture_tensors("tiny-lora", merged, NULL);
	for (i = 0; i < n; i++)
	{
		const char *an = ts[i].name;
		char		module[512];
		char		bname[600];
		const CpTensor *A = &ts[i];
		const CpTensor *B = NULL;
		const CpTensor *W0;
		const CpTensor *W1;
		float	   *a;
		float	   *b;
		float	   *w0;
		float	   *w1;
		int64_t		r;
		int64_t		o;
		int64_t		j;
		int			k;
		int			bad = 0;

		if (strstr(an, ".lora_A.weight") == NULL)
			continue;
		snprintf(module, sizeof(module), "%.*s", (int) (strstr(an, ".lora_A.weight") - an), an);
		snprintf(bname, sizeof(bname), "%s.lora_B.weight", module);
		for (k = 0; k < n; k++)
			if (strcmp(ts[k].name, bname) == 0)
				B = &ts[k];
		CHECK(B != NULL, "%s has lora_B", module);
		/* module path after base_model.model. in engine layout = base name */
		snprintf(bname, sizeof(bname), "%s.weight", module + strlen("base_model.model."));
		W0 = cp_weights_find(base, bname);
		W1 = cp_weights_find(merged, bname);
		CHECK(W0 != NULL && W1 != NULL, "base/merged %s", bname);
		if (B == NULL || W0 == NULL || W1 == NULL)
			continue;
		r = A->shape[0];
		CHECK(r == 4 && B->shape[1] == 4, "rank 4");
		a = malloc(A->nbytes);
		b = malloc(B->nbytes);
		memcpy(a, file + start + (uintptr_t) A->data, A->nbytes);	/* F32 in this fixture */
		memcpy(b, file + start + (uintptr_t) B->data, B->nbytes);
		CHECK(A->dtype == CP_DTYPE_F32 && B->dtype == CP_DTYPE_F32, "adapter f32");
		cp_tensor_load_f32(W0, &w0, &err);
		cp_tensor_load_f32(W1, &w1, &err);
		CHECK(W1->dtype == CP_DTYPE_F32, "merged weights are float32");
		for (o = 0; o < W0->shape[0]; o++)
			for (j = 0; j < W0->shape[1]; j++)
			{
				double		want = w0[o * W0->shape[1] + j];
				double		got = w1[o * W0->shape[1] + j];

				for (k = 0; k < r; k++)
					want += 2.0 * (double) b[o * r + k] * (double) a[k * W0->shape[1] + j];
				/* merged in float32: float rounding only */
				if (fabs(got - want) > fabs(want) * 1e-5 + 1e-7)
					bad++;
			}
		CHECK(bad == 0, "%s: %d merged values differ from W + 2BA", bname, bad);
		free(a);
		free(b);
		free(w0);
		free(w1);
		pairs++;
	}
	CHECK(pairs == 2 * 7 + 1, "LoRA pairs checked: %d", pairs);
	printf("fixture LoRA: %d merged matrices checked\n", pairs);
done:
	cp_safetensors_free_header(ts, n);
	free(file);
	cp_weights_close(merged);
	cp_weights_close(base);
}

static void
test_fixtures(void)
{
	static const char *models[] = {"tiny", "tiny-bf16", "tiny-f16", "tiny-hf-old", "tiny-sharded", "tiny-merged", "tiny-lora-base"};
	CpWeights  *ref = NULL;
	CpError		err = {0};
	size_t		i;

	if (access("../fixtures/models/tiny-bf16/model.safetensors", F_OK) != 0)
	{
		printf("note: ../fixtures/models not present, fixture layouts skipped\n");
		return;
	}
	CHECK(cp_weights_open("../fixtures/models/tiny-bf16", NULL, &ref, &err) == CP_OK, "tiny-bf16: %s", err.msg);
	for (i = 0; i < sizeof(models) / sizeof(models[0]); i++)
	{
		char		dir[256];
		CpWeights  *w = NULL;
		bool		same_weights;

		snprintf(dir, sizeof(dir), "../fixtures/models/%s", models[i]);
		CHECK(cp_weights_open(dir, NULL, &w, &err) == CP_OK, "fixture %s: %s", dir, err.msg);
		if (w == NULL)
			continue;
		same_weights = strcmp(models[i], "tiny-hf-old") == 0 || strcmp(models[i], "tiny-sharded") == 0 ||
			strcmp(models[i], "tiny-merged") == 0;
		check_fixture_tensors(models[i], w, same_weights ? ref : NULL);
		cp_weights_close(w);
	}
	cp_weights_close(ref);
	check_fixture_lora();

	/* real shapes (written by test_realshape_gen, which runs before us) */
	if (access("../../build/realshape/model.safetensors", F_OK) == 0)
	{
		CpWeights  *w = NULL;
		const CpTensor *t;
		int64_t		emb[2] = {257216, 2048};
		int64_t		fc1[2] = {4304, 1152};
		int64_t		patch[4] = {1152, 3, 14, 14};

		CHECK(cp_weights_open("../../build/realshape", NULL, &w, &err) == CP_OK, "realshape: %s", err.msg);
		CHECK(cp_weights_require(w, "language_model.embed_tokens.weight", 2, emb, &t, &err) == CP_OK, "%s", err.msg);
		CHECK(cp_weights_require(w, "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight", 2, fc1, &t, &err) == CP_OK,
			  "%s", err.msg);
		CHECK(cp_weights_require(w, "vision_tower.vision_model.embeddings.patch_embedding.weight", 4, patch, &t, &err) == CP_OK,
			  "%s", err.msg);
		cp_weights_close(w);
		printf("realshape checkpoint opened\n");
	}
	printf("fixture checkpoints: %zu layouts checked\n", sizeof(models) / sizeof(models[0]));
}

static void
rm_rf(const char *path)
{
	char		cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		printf("note: could not remove %s\n", path);
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cp_test_weights_XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
	{
		printf("FAIL: mkdtemp\n");
		return 1;
	}
	test_conversions();
	test_valid_file();
	test_layouts();
	test_bad_headers();
	test_bad_files();
	test_sharded();
	test_lora();
	test_fixtures();
	rm_rf(tmpdir);
	if (failures)
	{
		printf("test_weights: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_weights: ok\n");
	return 0;
}
