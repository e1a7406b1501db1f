/*
 * realshape_gen.h
 *	  Deterministic generator of the "realshape" test checkpoint: ColPali's
 *	  real widths (SigLIP 1152/4304, 448 px, Gemma 2048/16384, vocabulary
 *	  257216, head 128) with one layer per tower, bf16 weights.  The same
 *	  generator is implemented in numpy by test/fixtures/generate.py, which
 *	  ran transformers on it and committed only the golden outputs
 *	  (test/fixtures/goldens/realshape, manifest.json "realshape") and the
 *	  small files of the folder (test/fixtures/realshape/).  The weights
 *	  (1.3 GB) are rebuilt here, without Python.
 *
 *	  Specification (test/fixtures/README.md, "realshape"): element i of the
 *	  tensor stored under name N is
 *		seed = FNV-1a-64(N);  h = mix64(seed + (i + 1) * 0x9E3779B97F4A7C15)
 *		s = h >> 56  (0..255)
 *		W, B, RMS:  v = (2 s - 255) * 2^-(8 + e)
 *		LN:         v = (56 + (s >> 4)) * 2^-6	(0.875 .. 1.109375)
 *	  with e = floor(log2(fan_in) / 2) for W (fan_in = numel / shape[0]),
 *	  4 for B, 3 for RMS; every value is exact in bf16, stored as the upper
 *	  16 bits of its float32.  mix64 is the splitmix64 finaliser.  The
 *	  per-tensor check value is sum_i mix64(bits_i ^ (i << 16)) mod 2^64.
 *
 *	  Header-only (static inline) so that each standalone test program can
 *	  include it; no engine code is used, so the engine's safetensors reader
 *	  is tested against an independent writer.
 */
#ifndef REALSHAPE_GEN_H
#define REALSHAPE_GEN_H

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define RS_GAMMA UINT64_C(0x9E3779B97F4A7C15)
#define RS_STAMP "realshape-gen 1\n"
#define RS_MAX_TENSORS 48

typedef struct RsTensor
{
	char		name[128];
	int			ndim;
	int64_t		shape[4];
	char		kind;			/* 'W' matrix, 'B' bias, 'L' LayerNorm, 'R' RMSNorm */
} RsTensor;

/* snprintf through a function, so that truncated messages are allowed */
static inline void rs_fmt(char *buf, size_t size, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

static inline void
rs_fmt(char *buf, size_t size, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* splitmix64 finaliser */
static inline uint64_t
rs_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* FNV-1a, 64 bits, over the bytes of a NUL-terminated string */
static inline uint64_t
rs_fnv1a64(const char *s)
{
	uint64_t	h = UINT64_C(0xCBF29CE484222325);

	for (; *s; s++)
	{
		h ^= (unsigned char) *s;
		h *= UINT64_C(0x100000001B3);
	}
	return h;
}

/* append one tensor description to the table */
static inline void
rs_add(RsTensor *t, int *n, const char *prefix, const char *name, char kind,
	   int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
	RsTensor   *e = &t[(*n)++];

	rs_fmt(e->name, sizeof(e->name), "%s%s", prefix, name);
	e->kind = kind;
	e->ndim = ndim;
	e->shape[0] = d0;
	e->shape[1] = d1;
	e->shape[2] = d2;
	e->shape[3] = d3;
}

/*
 * Fill t (RS_MAX_TENSORS entries) with the stored tensors, in the names of
 * the hub's *-hf checkpoints; returns how many.
 */
static inline int
rs_tensor_table(RsTensor *t)
{
	const char *v = "vlm.vision_tower.vision_model.";
	const char *vl = "vlm.vision_tower.vision_model.encoder.layers.0.";
	const char *g = "vlm.language_model.model.";
	const char *gl = "vlm.language_model.model.layers.0.";
	const int64_t H = 1152,
				I = 4304,
				T = 2048,
				TI = 16384;
	static const char *const vp[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
	char		buf[64];
	int			n = 0;
	int			i;

	rs_add(t, &n, v, "embeddings.patch_embedding.weight", 'W', 4, H, 3, 14, 14);
	rs_add(t, &n, v, "embeddings.patch_embedding.bias", 'B', 1, H, 0, 0, 0);
	rs_add(t, &n, v, "embeddings.position_embedding.weight", 'W', 2, 1024, H, 0, 0);
	rs_add(t, &n, vl, "layer_norm1.weight", 'L', 1, H, 0, 0, 0);
	rs_add(t, &n, vl, "layer_norm1.bias", 'B', 1, H, 0, 0, 0);
	for (i = 0; i < 4; i++)
	{
		rs_fmt(buf, sizeof(buf), "self_attn.%s.weight", vp[i]);
		rs_add(t, &n, vl, buf, 'W', 2, H, H, 0, 0);
		rs_fmt(buf, sizeof(buf), "self_attn.%s.bias", vp[i]);
		rs_add(t, &n, vl, buf, 'B', 1, H, 0, 0, 0);
	}
	rs_add(t, &n, vl, "layer_norm2.weight", 'L', 1, H, 0, 0, 0);
	rs_add(t, &n, vl, "layer_norm2.bias", 'B', 1, H, 0, 0, 0);
	rs_add(t, &n, vl, "mlp.fc1.weight", 'W', 2, I, H, 0, 0);
	rs_add(t, &n, vl, "mlp.fc1.bias", 'B', 1, I, 0, 0, 0);
	rs_add(t, &n, vl, "mlp.fc2.weight", 'W', 2, H, I, 0, 0);
	rs_add(t, &n, vl, "mlp.fc2.bias", 'B', 1, H, 0, 0, 0);
	rs_add(t, &n, v, "post_layernorm.weight", 'L', 1, H, 0, 0, 0);
	rs_add(t, &n, v, "post_layernorm.bias", 'B', 1, H, 0, 0, 0);
	rs_add(t, &n, "", "vlm.multi_modal_projector.linear.weight", 'W', 2, T, H, 0, 0);
	rs_add(t, &n, "", "vlm.multi_modal_projector.linear.bias", 'B', 1, T, 0, 0, 0);
	rs_add(t, &n, g, "embed_tokens.weight", 'W', 2, 257216, T, 0, 0);
	rs_add(t, &n, gl, "input_layernorm.weight", 'R', 1, T, 0, 0, 0);
	rs_add(t, &n, gl, "self_attn.q_proj.weight", 'W', 2, T, T, 0, 0);
	rs_add(t, &n, gl, "self_attn.k_proj.weight", 'W', 2, 256, T, 0, 0);
	rs_add(t, &n, gl, "self_attn.v_proj.weight", 'W', 2, 256, T, 0, 0);
	rs_add(t, &n, gl, "self_attn.o_proj.weight", 'W', 2, T, T, 0, 0);
	rs_add(t, &n, gl, "post_attention_layernorm.weight", 'R', 1, T, 0, 0, 0);
	rs_add(t, &n, gl, "mlp.gate_proj.weight", 'W', 2, TI, T, 0, 0);
	rs_add(t, &n, gl, "mlp.up_proj.weight", 'W', 2, TI, T, 0, 0);
	rs_add(t, &n, gl, "mlp.down_proj.weight", 'W', 2, T, TI, 0, 0);
	rs_add(t, &n, g, "norm.weight", 'R', 1, T, 0, 0, 0);
	rs_add(t, &n, "", "embedding_proj_layer.weight", 'W', 2, 128, T, 0, 0);
	rs_add(t, &n, "", "embedding_proj_layer.bias", 'B', 1, 128, 0, 0, 0);
	return n;
}

/* number of elements */
static inline int64_t
rs_numel(const RsTensor *t)
{
	int64_t		n = 1;
	int			d;

	for (d = 0; d < t->ndim; d++)
		n *= t->shape[d];
	return n;
}

/* scale exponent e of the specification */
static inline int
rs_exponent(const RsTensor *t)
{
	int64_t		fan_in;
	int			bits = 0;

	switch (t->kind)
	{
		case 'B':
			return 4;
		case 'R':
			return 3;
		case 'L':
			return 6;
		default:
			fan_in = rs_numel(t) / t->shape[0];
			while ((fan_in >> bits) > 1)
				bits++;			/* floor(log2(fan_in)) */
			return bits / 2;
	}
}

/* bf16 bits of elements [start, start + count) of t into dst */
static inline void
rs_fill(const RsTensor *t, int64_t start, int64_t count, uint16_t *dst)
{
	uint64_t	seed = rs_fnv1a64(t->name);
	int			e = rs_exponent(t);
	float		scale = (t->kind == 'L') ? 0.015625f : 1.0f / (float) (1 << (8 + e));
	int64_t		i;

	for (i = 0; i < count; i++)
	{
		uint64_t	h = rs_mix64(seed + (uint64_t) (start + i + 1) * RS_GAMMA);
		int			s = (int) (h >> 56);
		float		v;
		uint32_t	bits;

		if (t->kind == 'L')
			v = (float) (56 + (s >> 4)) * scale;
		else
			v = (float) (2 * s - 255) * scale;
		memcpy(&bits, &v, sizeof(bits));
		dst[i] = (uint16_t) (bits >> 16);
	}
}

/* check value over bf16 bits of elements [start, start + count) */
static inline uint64_t
rs_hash(const uint16_t *bits, int64_t start, int64_t count)
{
	uint64_t	sum = 0;
	int64_t		i;

	for (i = 0; i < count; i++)
		sum += rs_mix64((uint64_t) bits[i] ^ ((uint64_t) (start + i) << 16));
	return sum;
}

/* qsort comparator: tensors by name, as safetensors files list them */
static inline int
rs_cmp_name(const void *a, const void *b)
{
	return strcmp(((const RsTensor *) a)->name, ((const RsTensor *) b)->name);
}

/* copy one file; false with a message on failure */
static inline bool
rs_copy_file(const char *from, const char *to, char *err, size_t errlen)
{
	FILE	   *in = fopen(from, "rb");
	FILE	   *out;
	char		buf[65536];
	size_t		n;
	bool		ok = true;

	if (in == NULL)
	{
		rs_fmt(err, errlen, "cannot open %s: %s", from, strerror(errno));
		return false;
	}
	out = fopen(to, "wb");
	if (out == NULL)
	{
		rs_fmt(err, errlen, "cannot create %s: %s", to, strerror(errno));
		fclose(in);
		return false;
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			ok = false;
	if (ferror(in))
		ok = false;
	fclose(in);
	if (fclose(out) != 0)
		ok = false;
	if (!ok)
		rs_fmt(err, errlen, "cannot copy %s to %s", from, to);
	return ok;
}

/* mkdir -p for a path of a few components */
static inline bool
rs_mkdirs(const char *dir, char *err, size_t errlen)
{
	char		path[4096];
	char	   *p;

	rs_fmt(path, sizeof(path), "%s", dir);
	for (p = path + 1; *p; p++)
	{
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
		{
			rs_fmt(err, errlen, "cannot create %s: %s", path, strerror(errno));
			return false;
		}
		*p = '/';
	}
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
	{
		rs_fmt(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return false;
	}
	return true;
}

/*
 * Write model.safetensors of the realshape checkpoint into dir (through a
 * temporary name, renamed at the end).
 */
static inline bool
rs_write_safetensors(const char *dir, char *err, size_t errlen)
{
	RsTensor	t[RS_MAX_TENSORS];
	int			n = rs_tensor_table(t);
	size_t		cap = 16384;
	size_t		len = 0;
	char	   *hdr = malloc(cap);
	uint64_t	off = 0;
	uint64_t	hlen;
	char		path[4096],
				tmp[4096];
	FILE	   *f;
	uint16_t   *buf;
	const int64_t chunk = 1 << 20;
	bool		ok = true;
	int			i;

	if (hdr == NULL)
	{
		rs_fmt(err, errlen, "out of memory");
		return false;
	}
	qsort(t, n, sizeof(RsTensor), rs_cmp_name);
	len += snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
	for (i = 0; i < n; i++)
	{
		uint64_t	bytes = (uint64_t) rs_numel(&t[i]) * 2;
		int			d;

		len += snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[", t[i].name);
		for (d = 0; d < t[i].ndim; d++)
			len += snprintf(hdr + len, cap - len, "%s%lld", d ? "," : "",
							(long long) t[i].shape[d]);
		len += snprintf(hdr + len, cap - len, "],\"data_offsets\":[%llu,%llu]}",
						(unsigned long long) off, (unsigned long long) (off + bytes));
		off += bytes;
	}
	len += snprintf(hdr + len, cap - len, "}");
	while (len % 8 != 0)
		hdr[len++] = ' ';
	if (len >= cap)
	{
		free(hdr);
		rs_fmt(err, errlen, "safetensors header too long");
		return false;
	}

	rs_fmt(path, sizeof(path), "%s/model.safetensors", dir);
	rs_fmt(tmp, sizeof(tmp), "%s/model.safetensors.tmp", dir);
	f = fopen(tmp, "wb");
	buf = malloc(chunk * sizeof(uint16_t));
	if (f == NULL || buf == NULL)
	{
		rs_fmt(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		if (f)
			fclose(f);
		free(buf);
		free(hdr);
		return false;
	}
	hlen = len;
	{
		unsigned char le[8];
		int			b;

		for (b = 0; b < 8; b++)
			le[b] = (unsigned char) (hlen >> (8 * b));
		ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
	}
	for (i = 0; ok && i < n; i++)
	{
		int64_t		total = rs_numel(&t[i]);
		int64_t		a;

		for (a = 0; ok && a < total; a += chunk)
		{
			int64_t		cnt = total - a < chunk ? total - a : chunk;
			int64_t		k;
			unsigned char *le = (unsigned char *) buf;

			rs_fill(&t[i], a, cnt, buf);
			/* store little-endian whatever the host order */
			for (k = 0; k < cnt; k++)
			{
				uint16_t	x = buf[k];

				le[2 * k] = (unsigned char) (x & 0xff);
				le[2 * k + 1] = (unsigned char) (x >> 8);
			}
			ok = fwrite(buf, 2, cnt, f) == (size_t) cnt;
		}
	}
	if (fclose(f) != 0)
		ok = false;
	free(buf);
	free(hdr);
	if (!ok || rename(tmp, path) != 0)
	{
		rs_fmt(err, errlen, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		return false;
	}
	return true;
}

/*
 * Make dir a complete realshape checkpoint folder: copy the small files
 * (config.json, preprocessor_config.json, tokenizer files) from files_from
 * (test/fixtures/realshape), always, and generate model.safetensors unless
 * the stamp left by an earlier complete run of this generator version says
 * it is already there.
 */
static inline bool
rs_ensure_checkpoint(const char *dir, const char *files_from, char *err,
					 size_t errlen)
{
	char		path[4096],
				from[4096],
				to[4096];
	FILE	   *f;
	DIR		   *d;
	struct dirent *de;
	bool		have = false;

	if (!rs_mkdirs(dir, err, errlen))
		return false;
	d = opendir(files_from);
	if (d == NULL)
	{
		rs_fmt(err, errlen, "cannot open %s: %s", files_from, strerror(errno));
		return false;
	}
	while ((de = readdir(d)) != NULL)
	{
		if (de->d_name[0] == '.')
			continue;
		rs_fmt(from, sizeof(from), "%s/%s", files_from, de->d_name);
		rs_fmt(to, sizeof(to), "%s/%s", dir, de->d_name);
		if (!rs_copy_file(from, to, err, errlen))
		{
			closedir(d);
			return false;
		}
	}
	closedir(d);

	rs_fmt(path, sizeof(path), "%s/REALSHAPE_STAMP", dir);
	f = fopen(path, "rb");
	if (f != NULL)
	{
		char		got[64] = {0};
		size_t		n = fread(got, 1, sizeof(got) - 1, f);
		struct stat st;

		fclose(f);
		rs_fmt(to, sizeof(to), "%s/model.safetensors", dir);
		have = n == strlen(RS_STAMP) && memcmp(got, RS_STAMP, n) == 0 &&
			stat(to, &st) == 0;
	}
	if (have)
		return true;
	unlink(path);
	if (!rs_write_safetensors(dir, err, errlen))
		return false;
	f = fopen(path, "wb");
	if (f == NULL || fputs(RS_STAMP, f) == EOF || fclose(f) != 0)
	{
		rs_fmt(err, errlen, "cannot write %s", path);
		return false;
	}
	return true;
}

/*
 * Where the realshape checkpoint lives: $COLPALI_REALSHAPE_DIR, else
 * build/realshape at the repository root (tests run in test/engine).
 */
static inline const char *
rs_default_dir(void)
{
	const char *e = getenv("COLPALI_REALSHAPE_DIR");

	return (e && *e) ? e : "../../build/realshape";
}

#endif							/* REALSHAPE_GEN_H */
