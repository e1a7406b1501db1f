/*
 * lora.c
 *	  PEFT LoRA adapters merged into their base checkpoint at load
 *	  (docs/encoder.md#lora): adapter_config.json, then each adapter
 *	  tensor in turn, a lora_A/lora_B pair merged into a float32 copy of its
 *	  base matrix, or a full tensor (modules_to_save) replacing or joining
 *	  the base's.
 */
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "lora.h"
#include "weights_internal.h"

#define LORA_A_SUFFIX ".lora_A.weight"
#define LORA_B_SUFFIX ".lora_B.weight"

/*
 * lora_config_from_json
 *		Fill lc from a parsed adapter_config.json; what names it in
 *		messages.  lc->root takes root (freed by cp_lora_config_free).
 */
static CpStatus
lora_config_from_json(json_t *root, const char *what, CpLoraConfig *lc,
					  CpError *err)
{
	json_t	   *v;

	lc->root = root;
	if (!json_is_object(root))
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" is not a JSON object", what);
	v = json_object_get(root, "peft_type");
	if (v != NULL && !(json_is_string(v) && strcmp(json_string_value(v), "LORA") == 0))
		return cp_error(err, CP_ERR_UNSUPPORTED, "\"%s\": only LoRA adapters are supported (peft_type \"%s\")",
						what, json_is_string(v) ? json_string_value(v) : "?");
	v = json_object_get(root, "r");
	lc->r = 8;					/* PEFT default */
	if (v != NULL)
	{
		if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > INT_MAX)
			return cp_error(err, CP_ERR_FORMAT, "\"%s\": \"r\" must be a positive integer", what);
		lc->r = (int) json_integer_value(v);
	}
	v = json_object_get(root, "lora_alpha");
	lc->alpha = 8;				/* PEFT default */
	if (v != NULL)
	{
		if (!json_is_number(v))
			return cp_error(err, CP_ERR_FORMAT, "\"%s\": \"lora_alpha\" must be a number", what);
		lc->alpha = json_number_value(v);
	}
	v = json_object_get(root, "use_rslora");
	lc->rslora = json_is_true(v);
	if (json_is_true(json_object_get(root, "use_dora")))
		return cp_error(err, CP_ERR_UNSUPPORTED, "\"%s\": DoRA adapters (use_dora) are not supported", what);
	if (json_is_true(json_object_get(root, "fan_in_fan_out")))
		return cp_error(err, CP_ERR_UNSUPPORTED, "\"%s\": fan_in_fan_out adapters are not supported", what);
	v = json_object_get(root, "alpha_pattern");
	if (v != NULL && !json_is_null(v) && !(json_is_object(v) && json_object_size(v) == 0))
		return cp_error(err, CP_ERR_UNSUPPORTED, "\"%s\": per-module \"alpha_pattern\" is not supported", what);
	v = json_object_get(root, "rank_pattern");
	if (v != NULL && !json_is_null(v) && !(json_is_object(v) && json_object_size(v) == 0))
		return cp_error(err, CP_ERR_UNSUPPORTED, "\"%s\": per-module \"rank_pattern\" is not supported", what);
	v = json_object_get(root, "target_modules");
	if (json_is_string(v))
	{
		/* PEFT uses re.fullmatch; POSIX ERE covers the usual patterns */
		size_t		n = strlen(json_string_value(v));
		char	   *pat = malloc(n + 5);

		if (pat == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		snprintf(pat, n + 5, "^(%s)$", json_string_value(v));
		lc->have_regex = (regcomp(&lc->regex, pat, REG_EXTENDED | REG_NOSUB) == 0);
		free(pat);
	}
	else if (json_is_array(v))
		lc->targets = v;
	return CP_OK;
}

/*
 * cp_lora_config_parse
 *		See lora.h.
 */
CpStatus
cp_lora_config_parse(const char *json, size_t len, CpLoraConfig *lc, CpError *err)
{
	json_error_t jerr;
	json_t	   *root;

	memset(lc, 0, sizeof(*lc));
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return cp_error(err, CP_ERR_FORMAT, "adapter_config.json is not valid JSON: %s (line %d)",
						jerr.text, jerr.line);
	return lora_config_from_json(root, "adapter_config.json", lc, err);
}

/*
 * lora_config_read
 *		Read dir/adapter_config.json into lc.
 */
static CpStatus
lora_config_read(const char *dir, CpLoraConfig *lc, CpError *err)
{
	char		path[4096];
	json_error_t jerr;
	json_t	   *root;
	CpStatus	st;

	memset(lc, 0, sizeof(*lc));
	st = cp_join_path(path, sizeof(path), dir, "adapter_config.json", err);
	if (st != CP_OK)
		return st;
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" is not valid JSON: %s (line %d)", path, jerr.text, jerr.line);
	return lora_config_from_json(root, path, lc, err);
}

/*
 * cp_lora_config_free
 *		See lora.h.
 */
void
cp_lora_config_free(CpLoraConfig *lc)
{
	if (lc->have_regex)
		regfree(&lc->regex);
	json_decref(lc->root);
	memset(lc, 0, sizeof(*lc));
}

/*
 * cp_lora_targets_module
 *		Is module (path without "base_model.model.") a LoRA target?  Unknown
 *		(uncompilable regex, no target list) counts as yes.
 */
bool
cp_lora_targets_module(const CpLoraConfig *lc, const char *module)
{
	size_t		i;

	if (lc->have_regex)
		return regexec(&lc->regex, module, 0, NULL, 0) == 0;
	if (lc->targets == NULL)
		return true;
	for (i = 0; i < json_array_size(lc->targets); i++)
	{
		json_t	   *t = json_array_get(lc->targets, i);

		if (json_is_string(t) &&
			cp_suffix_match(module, json_string_value(t), strlen(json_string_value(t))))
			return true;
	}
	return false;
}

/*
 * lora_rank_update
 *		w[nr, in] += scale * b[nr, r] @ a[r, in], row by row, four ranks per
 *		pass: the rank r is small (4..64), a stays in cache, and the inner
 *		loop vectorises.  No BLAS here, so the safetensors reader links alone
 *		(fuzz harness).
 */
static void
lora_rank_update(float *w, int64_t nr, int64_t in, const float *b, const float *a,
				 int64_t r, float scale)
{
	int64_t		o;
	int64_t		k;
	int64_t		j;

	for (o = 0; o < nr; o++)
	{
		float	   *row = w + o * in;

		/* four ranks per pass: a quarter of the row traffic */
		for (k = 0; k + 4 <= r; k += 4)
		{
			float		b0 = scale * b[o * r + k];
			float		b1 = scale * b[o * r + k + 1];
			float		b2 = scale * b[o * r + k + 2];
			float		b3 = scale * b[o * r + k + 3];
			const float *a0 = a + k * in;
			const float *a1 = a0 + in;
			const float *a2 = a1 + in;
			const float *a3 = a2 + in;

#pragma omp simd
			for (j = 0; j < in; j++)
				row[j] += b0 * a0[j] + b1 * a1[j] + b2 * a2[j] + b3 * a3[j];
		}
		for (; k < r; k++)
		{
			float		bk = scale * b[o * r + k];
			const float *ak = a + k * in;

#pragma omp simd
			for (j = 0; j < in; j++)
				row[j] += bk * ak[j];
		}
	}
}

/*
 * merge_lora
 *		base[out, in] += scale * B[out, r] @ A[r, in], into an owned float32
 *		copy of the base tensor.  The merged tensor stays float32: rounding it
 *		back to a bf16 base's dtype would lose the low-rank delta, which is
 *		often below one bf16 ulp of the weight (transformers applies an
 *		unmerged adapter in float32, and so do our goldens).
 */
static CpStatus
merge_lora(CpWeights *w, int bi, const CpTensor *A, const CpTensor *B,
		   double scale, CpError *err)
{
	CpTensor   *t = &w->tensors[bi];
	int64_t		out_dim;
	int64_t		in_dim;
	int64_t		r;
	float	   *a = NULL;
	float	   *b = NULL;
	float	   *dst = NULL;
	CpStatus	st;

	if (t->ndim != 2 || A->ndim != 2 || B->ndim != 2)
		return cp_error(err, CP_ERR_SHAPE, "LoRA for \"%s\": base and lora_A/lora_B must be matrices", t->name);
	out_dim = t->shape[0];
	in_dim = t->shape[1];
	r = A->shape[0];
	if (A->shape[1] != in_dim || B->shape[0] != out_dim || B->shape[1] != r)
		return cp_error(err, CP_ERR_SHAPE,
						"LoRA for \"%s\" [%lld, %lld]: lora_A is [%lld, %lld], lora_B is [%lld, %lld]",
						t->name, (long long) out_dim, (long long) in_dim,
						(long long) A->shape[0], (long long) A->shape[1],
						(long long) B->shape[0], (long long) B->shape[1]);
	if (out_dim > INT_MAX || in_dim > INT_MAX || r > INT_MAX)
		return cp_error(err, CP_ERR_LIMIT, "LoRA for \"%s\": matrix too large", t->name);
	st = cp_tensor_load_f32(A, &a, err);
	if (st == CP_OK)
		st = cp_tensor_load_f32(B, &b, err);
	if (st == CP_OK)
	{
		dst = malloc((size_t) (out_dim * in_dim) * sizeof(float) + 1);
		if (dst == NULL)
			st = cp_error(err, CP_ERR_NOMEM, "out of memory merging LoRA into \"%s\"", t->name);
	}
	if (st == CP_OK)
	{
		cp_tensor_to_f32(t, 0, out_dim * in_dim, dst);
		lora_rank_update(dst, out_dim, in_dim, b, a, r, (float) scale);
		st = cp_weights_add_owned(w, dst, err);	/* frees dst on failure */
		if (st == CP_OK)
		{
			t->data = dst;
			t->dtype = CP_DTYPE_F32;
			t->nbytes = (size_t) (out_dim * in_dim) * sizeof(float);
		}
		dst = NULL;
	}
	free(dst);
	free(a);
	free(b);
	return st;
}

/*
 * ends_with
 *		Does s end with suffix?
 */
static bool
ends_with(const char *s, const char *suffix)
{
	size_t		n = strlen(s);
	size_t		m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/*
 * adapter_open
 *		The adapter's tensors (dir/adapter_model.safetensors) in a CpWeights
 *		of their own.
 */
static CpStatus
adapter_open(const char *dir, CpWeights **out, CpError *err)
{
	char		path[4096];
	char		binpath[4096];
	CpWeights  *ad;
	CpStatus	st;

	*out = NULL;
	st = cp_join_path(path, sizeof(path), dir, "adapter_model.safetensors", err);
	if (st != CP_OK)
		return st;
	if (!cp_file_exists(path))
	{
		if (cp_join_path(binpath, sizeof(binpath), dir, "adapter_model.bin", NULL) == CP_OK &&
			cp_file_exists(binpath))
			return cp_error(err, CP_ERR_UNSUPPORTED, "adapter \"%s\" is stored as a pickle (adapter_model.bin); only adapter_model.safetensors is supported", dir);
		return cp_error(err, CP_ERR_NOT_FOUND, "adapter folder \"%s\" has no adapter_model.safetensors", dir);
	}
	ad = calloc(1, sizeof(CpWeights));
	if (ad == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	st = cp_weights_add_file(ad, path, err);
	if (st == CP_OK)
		st = cp_weights_sort_and_check(ad, err);
	if (st != CP_OK)
	{
		cp_weights_close(ad);
		return st;
	}
	*out = ad;
	return CP_OK;
}

/*
 * base_index
 *		Index in w (among its first nbase tensors) of the base matrix of a
 *		LoRA module, by stored or canonical name.
 */
static CpStatus
base_index(const CpWeights *w, int nbase, const char *module, size_t mlen,
		   int *bi, CpError *err)
{
	char	   *bname = malloc(mlen + sizeof(".weight"));
	char	   *bcanon;
	CpStatus	st = CP_OK;

	if (bname == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	memcpy(bname, module, mlen);
	strcpy(bname + mlen, ".weight");
	bcanon = cp_canonical_name(bname);
	if (bcanon == NULL)
	{
		free(bname);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	*bi = cp_weights_find_exact(w, bname, bcanon);
	if (*bi == -1)
	{
		/*
		 * ColQwen2: the decoder is "model.layers.N" in the 2024 hub layout
		 * and "language_model.layers.N" in colpali-engine's transformers-5
		 * layout, and adapters come in either form over either base
		 * (docs/encoder.md#colqwen2-layouts): try the other form.
		 */
		static const char lm[] = "language_model.";
		size_t		clen = strlen(bcanon);
		char	   *alt = malloc(clen + sizeof(lm));

		if (alt == NULL)
		{
			free(bname);
			free(bcanon);
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		}
		if (strncmp(bcanon, lm, strlen(lm)) == 0)
			strcpy(alt, bcanon + strlen(lm));
		else
			snprintf(alt, clen + sizeof(lm), "%s%s", lm, bcanon);
		*bi = cp_weights_find_exact(w, "", alt);
		free(alt);
	}
	if (*bi < 0 || *bi >= nbase)
		st = cp_error(err, *bi == -2 ? CP_ERR_FORMAT : CP_ERR_NOT_FOUND,
					  "LoRA adapter targets \"%s\", which the base checkpoint %s", bname,
					  *bi == -2 ? "holds under several names" : "does not have");
	free(bname);
	free(bcanon);
	return st;
}

/*
 * merge_pair
 *		Adapter tensor ai is M.lora_A.weight: find its lora_B and the base
 *		matrix of M, check the rank, and merge.
 */
static CpStatus
merge_pair(CpWeights *w, int nbase, const CpWeights *ad, int ai,
		   const CpLoraConfig *lc, CpError *err)
{
	const CpTensor *A = &ad->tensors[ai];
	const char *name = A->name;
	const char *mod = cp_strip_prefix(name, "base_model.model.");
	size_t		mlen = strlen(mod) - strlen(LORA_A_SUFFIX);
	char	   *module;
	char	   *bname;
	bool		targeted;
	int			bi = -1;
	int			bj;
	double		scale;
	CpStatus	st;

	module = strndup(mod, mlen);
	if (module == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	targeted = cp_lora_targets_module(lc, module);
	free(module);
	if (!targeted)
		return cp_error(err, CP_ERR_FORMAT, "adapter tensor \"%s\": module \"%.*s\" is not in target_modules",
						name, (int) mlen, mod);

	/* the matching lora_B */
	bname = strdup(name);
	if (bname == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	bname[strlen(name) - strlen("A.weight")] = 'B';
	bj = cp_weights_find_exact(ad, bname, "");
	free(bname);
	if (bj < 0)
		return cp_error(err, CP_ERR_NOT_FOUND, "adapter has \"%s\" but no matching lora_B", name);

	st = base_index(w, nbase, mod, mlen, &bi, err);
	if (st != CP_OK)
		return st;
	if (A->ndim != 2 || (int64_t) lc->r != A->shape[0])
		return cp_error(err, CP_ERR_SHAPE, "adapter tensor \"%s\" has rank %lld but adapter_config.json says r = %d",
						name, A->ndim == 2 ? (long long) A->shape[0] : -1LL, lc->r);
	scale = lc->rslora ? lc->alpha / sqrt((double) lc->r) : lc->alpha / lc->r;
	return merge_lora(w, bi, A, &ad->tensors[bj], scale, err);
}

/*
 * take_full_tensor
 *		Adapter tensor i is a whole tensor (modules_to_save, e.g. the 128-d
 *		projection): it replaces the base tensor of the same name and shape,
 *		or joins the checkpoint.
 */
static CpStatus
take_full_tensor(CpWeights *w, const CpWeights *ad, int i, CpError *err)
{
	CpTensor	t = ad->tensors[i];
	const char *mod = cp_strip_prefix(t.name, "base_model.model.");
	char	   *canon = cp_canonical_name(mod);
	CpTensor   *bt;
	int			bi;
	int			d;

	if (canon == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	bi = cp_weights_find_exact(w, mod, canon);
	free(canon);
	if (bi == -2)
		return cp_error(err, CP_ERR_FORMAT, "adapter tensor \"%s\" matches several base tensors", t.name);
	if (bi < 0)
	{
		t.name = strdup(mod);
		if (t.name == NULL)
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		return cp_weights_add_tensor(w, &t, err);
	}
	bt = &w->tensors[bi];
	if (bt->ndim != t.ndim)
		return cp_error(err, CP_ERR_SHAPE, "adapter tensor \"%s\" does not have the shape of base tensor \"%s\"",
						t.name, bt->name);
	for (d = 0; d < t.ndim; d++)
		if (bt->shape[d] != t.shape[d])
			return cp_error(err, CP_ERR_SHAPE, "adapter tensor \"%s\" does not have the shape of base tensor \"%s\"",
							t.name, bt->name);
	bt->dtype = t.dtype;
	bt->data = t.data;
	bt->nbytes = t.nbytes;
	return CP_OK;
}

/*
 * apply_tensor
 *		Merge adapter tensor i into w: a lora_A with its lora_B, or a full
 *		tensor; a lora_B is handled with its lora_A.
 */
static CpStatus
apply_tensor(CpWeights *w, int nbase, const CpWeights *ad, int i,
			 const CpLoraConfig *lc, CpError *err)
{
	const char *name = ad->tensors[i].name;

	if (ends_with(name, LORA_B_SUFFIX))
		return CP_OK;
	if (strstr(name, "lora_embedding_") != NULL || strstr(name, "lora_magnitude") != NULL)
		return cp_error(err, CP_ERR_UNSUPPORTED, "adapter tensor \"%s\" (embedding LoRA or DoRA) is not supported", name);
	if (ends_with(name, LORA_A_SUFFIX))
		return merge_pair(w, nbase, ad, i, lc, err);
	return take_full_tensor(w, ad, i, err);
}

/*
 * adopt_storage
 *		The adapter's mappings and copies now back tensors of w: move them
 *		over, so that they live as long as w.
 */
static CpStatus
adopt_storage(CpWeights *w, CpWeights *ad, CpError *err)
{
	CpMapping  *nm = realloc(w->maps, (w->nmaps + ad->nmaps + 1) * sizeof(CpMapping));
	void	  **no;

	if (nm == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	w->maps = nm;
	no = realloc(w->owned, (w->nowned + ad->nowned + 1) * sizeof(void *));
	if (no == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	w->owned = no;
	memcpy(w->maps + w->nmaps, ad->maps, ad->nmaps * sizeof(CpMapping));
	w->nmaps += ad->nmaps;
	ad->nmaps = 0;
	memcpy(w->owned + w->nowned, ad->owned, ad->nowned * sizeof(void *));
	w->nowned += ad->nowned;
	ad->nowned = 0;
	return CP_OK;
}

/*
 * cp_lora_apply
 *		Merge the adapter in dir into the base tensors already in w
 *		(weights_internal.h).
 */
CpStatus
cp_lora_apply(CpWeights *w, const char *dir, CpError *err)
{
	CpLoraConfig lc;
	CpWeights  *ad = NULL;
	int			nbase = w->count;
	int			i;
	CpStatus	st;

	st = lora_config_read(dir, &lc, err);
	if (st == CP_OK)
		st = adapter_open(dir, &ad, err);
	for (i = 0; st == CP_OK && i < ad->count; i++)
		st = apply_tensor(w, nbase, ad, i, &lc, err);
	if (st == CP_OK)
		st = adopt_storage(w, ad, err);
	cp_lora_config_free(&lc);
	cp_weights_close(ad);
	return st;
}

/*
 * cp_adapter_base_dir
 *		When no base_dir is given, base_model_name_or_path of the adapter
 *		config if it names an existing local folder: absolute, relative to
 *		the adapter folder, or a sibling of it (a hub name such as
 *		"vidore/colpaligemma-3b-pt-448-base" downloaded next to the adapter
 *		as its last component).  Writes into buf; false if none.
 */
bool
cp_adapter_base_dir(const char *dir, char *buf, size_t size)
{
	char		path[4096];
	json_t	   *root;
	json_t	   *v;
	bool		ok = false;
	struct stat sb;

	if (snprintf(path, sizeof(path), "%s/adapter_config.json", dir) >= (int) sizeof(path))
		return false;
	root = json_load_file(path, 0, NULL);
	if (root == NULL)
		return false;
	v = json_object_get(root, "base_model_name_or_path");
	if (json_is_string(v) && json_string_value(v)[0] != '\0')
	{
		const char *p = json_string_value(v);
		const char *last = strrchr(p, '/');
		int			n;

		if (p[0] == '/')
		{
			n = snprintf(buf, size, "%s", p);
			ok = n > 0 && (size_t) n < size && stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode);
		}
		else
		{
			n = snprintf(buf, size, "%s/%s", dir, p);
			ok = n > 0 && (size_t) n < size && stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode);
			if (!ok)
			{
				n = snprintf(buf, size, "%s/../%s", dir, last ? last + 1 : p);
				ok = n > 0 && (size_t) n < size && stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode);
			}
		}
	}
	json_decref(root);
	return ok;
}
