/*
 * config.c
 *	  CpModelConfig from a checkpoint folder's JSON files, with transformers'
 *	  defaults for absent keys.
 *
 * Layouts (docs/encoder.md#config-layouts):
 *	- HF-native ColPali (model_type "colpali"): PaliGemma config nested under
 *	  "vlm_config" (absent = PaliGemma defaults), "embedding_dim" on top;
 *	- colpali-engine merged / base ("paligemma", architectures ColPali):
 *	  the PaliGemma config itself at top level.
 * A sub-config given as an object gets the defaults of its own class
 * (GemmaConfig, SiglipVisionConfig) for missing keys; an absent sub-config
 * gets PaliGemma's built-in values (Gemma-2B, SigLIP-So400m/14 at 224).
 * That is what transformers (4.x and 5.x) does, so a config that loads
 * there means the same here.
 *
 * Image processor settings come from preprocessor_config.json (transformers
 * 4 checkpoints) and/or the "image_processor" object of
 * processor_config.json (transformers 5), which wins; prompts from
 * processor_config.json ("query_prefix", "visual_prompt_prefix"); the
 * augmentation token is the tokenizer's pad token (tokenizer_config.json).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "config_internal.h"
#include "file_util.h"
#include "weights.h"

/* sanity bound for every size in a config */
#define CP_CFG_MAX_DIM (1 << 24)

/*
 * get_int
 *		obj[key] as a positive-or-zero int when present (else *out unchanged).
 *		null counts as absent, as it does for Python defaults.  The files are
 *		parsed with integers as doubles (tokenizer_config.json holds
 *		model_max_length = 1e30, beyond any C integer), so an integral
 *		number is what is accepted here.
 */
static CpStatus
get_int(json_t *obj, const char *file, const char *key, int *out, CpError *err)
{
	json_t	   *v = json_object_get(obj, key);
	double		d;

	if (v == NULL || json_is_null(v))
		return CP_OK;
	d = json_number_value(v);
	if (!json_is_number(v) || d != floor(d) || d < 0 || d > CP_CFG_MAX_DIM)
		return cp_error(err, CP_ERR_FORMAT, "%s: \"%s\" must be an integer between 0 and %d", file, key, CP_CFG_MAX_DIM);
	*out = (int) d;
	return CP_OK;
}

/*
 * get_float
 *		obj[key] as a finite number when present.
 */
static CpStatus
get_float(json_t *obj, const char *file, const char *key, float *out, CpError *err)
{
	json_t	   *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return CP_OK;
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return cp_error(err, CP_ERR_FORMAT, "%s: \"%s\" must be a number", file, key);
	*out = (float) json_number_value(v);
	return CP_OK;
}

/*
 * get_double
 *		obj[key] as a finite number when present, full precision.
 */
static CpStatus
get_double(json_t *obj, const char *file, const char *key, double *out, CpError *err)
{
	json_t	   *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return CP_OK;
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return cp_error(err, CP_ERR_FORMAT, "%s: \"%s\" must be a number", file, key);
	*out = json_number_value(v);
	return CP_OK;
}

/*
 * get_bool
 *		obj[key] as a boolean when present.
 */
static CpStatus
get_bool(json_t *obj, const char *file, const char *key, bool *out, CpError *err)
{
	json_t	   *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return CP_OK;
	if (!json_is_boolean(v))
		return cp_error(err, CP_ERR_FORMAT, "%s: \"%s\" must be true or false", file, key);
	*out = json_is_true(v);
	return CP_OK;
}

/*
 * get_string
 *		obj[key] copied into buf (size bytes) when present.
 */
static CpStatus
get_string(json_t *obj, const char *file, const char *key, char *buf, size_t size, CpError *err)
{
	json_t	   *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return CP_OK;
	if (!json_is_string(v))
		return cp_error(err, CP_ERR_FORMAT, "%s: \"%s\" must be a string", file, key);
	if (json_string_length(v) >= size || strlen(json_string_value(v)) != json_string_length(v))
		return cp_error(err, CP_ERR_LIMIT, "%s: \"%s\" is longer than %zu bytes or contains NUL", file, key, size - 1);
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return CP_OK;
}

/* exported forms of the getters above (config_internal.h) */
CpStatus
cp_cfg_get_int(json_t *obj, const char *file, const char *key, int *out, CpError *err)
{
	return get_int(obj, file, key, out, err);
}

CpStatus
cp_cfg_get_float(json_t *obj, const char *file, const char *key, float *out, CpError *err)
{
	return get_float(obj, file, key, out, err);
}

CpStatus
cp_cfg_get_double(json_t *obj, const char *file, const char *key, double *out, CpError *err)
{
	return get_double(obj, file, key, out, err);
}

CpStatus
cp_cfg_get_string(json_t *obj, const char *file, const char *key, char *buf, size_t size, CpError *err)
{
	return get_string(obj, file, key, buf, size, err);
}

/*
 * parse_act
 *		Activation name to CP_ACT_*; gemma maps "gelu" to the tanh form.
 */
static CpStatus
parse_act(json_t *obj, const char *file, const char *key, bool gemma, int *out, CpError *err)
{
	json_t	   *v = json_object_get(obj, key);
	const char *s;

	if (v == NULL || json_is_null(v))
		return CP_OK;
	if (!json_is_string(v))
		return cp_error(err, CP_ERR_FORMAT, "%s: \"%s\" must be a string", file, key);
	s = json_string_value(v);
	if (strcmp(s, "gelu_pytorch_tanh") == 0 || strcmp(s, "gelu_new") == 0 ||
		strcmp(s, "gelu_fast") == 0 || (gemma && strcmp(s, "gelu") == 0))
		*out = CP_ACT_GELU_TANH;
	else if (strcmp(s, "gelu") == 0)
		*out = CP_ACT_GELU_ERF;
	else
		return cp_error(err, CP_ERR_UNSUPPORTED, "%s: activation \"%.64s\" is not supported", file, s);
	return CP_OK;
}

/*
 * parse_text
 *		Gemma text config (t may be NULL = PaliGemma's built-in one).
 */
static CpStatus
parse_text(json_t *t, CpTextConfig *c, int *bos, int *pad, bool *bidir, CpError *err)
{
	const char *f = "config.json text_config";
	CpStatus	st = CP_OK;
	json_t	   *rp;

	/* GemmaConfig defaults */
	c->vocab_size = 256000;
	c->hidden_size = 3072;
	c->intermediate_size = 24576;
	c->num_layers = 28;
	c->num_heads = 16;
	c->num_kv_heads = 16;
	c->head_dim = 256;
	c->rms_norm_eps = 1e-6f;
	c->rope_theta = 10000.0f;
	c->hidden_act = CP_ACT_GELU_TANH;
	*bos = 2;
	*pad = 0;
	*bidir = true;
	if (t == NULL || json_is_null(t))
	{
		/* PaliGemmaConfig's text_config init kwargs */
		c->hidden_size = 2048;
		c->num_layers = 18;
		c->intermediate_size = 16384;
		c->num_heads = 8;
		c->num_kv_heads = 1;
		c->vocab_size = 257152;
		return CP_OK;
	}
	if (!json_is_object(t))
		return cp_error(err, CP_ERR_FORMAT, "config.json: \"text_config\" is not an object");
	if (json_is_string(json_object_get(t, "model_type")) &&
		strcmp(json_string_value(json_object_get(t, "model_type")), "gemma") != 0)
		return cp_error(err, CP_ERR_UNSUPPORTED, "config.json: text model \"%.64s\" is not supported (expected gemma)",
						json_string_value(json_object_get(t, "model_type")));
	if (st == CP_OK)
		st = get_int(t, f, "vocab_size", &c->vocab_size, err);
	if (st == CP_OK)
		st = get_int(t, f, "hidden_size", &c->hidden_size, err);
	if (st == CP_OK)
		st = get_int(t, f, "intermediate_size", &c->intermediate_size, err);
	if (st == CP_OK)
		st = get_int(t, f, "num_hidden_layers", &c->num_layers, err);
	if (st == CP_OK)
		st = get_int(t, f, "num_attention_heads", &c->num_heads, err);
	if (st == CP_OK)
		st = get_int(t, f, "num_key_value_heads", &c->num_kv_heads, err);
	if (st == CP_OK)
		st = get_int(t, f, "head_dim", &c->head_dim, err);
	if (st == CP_OK)
		st = get_float(t, f, "rms_norm_eps", &c->rms_norm_eps, err);
	if (st == CP_OK)
		st = get_float(t, f, "rope_theta", &c->rope_theta, err);
	/* transformers 5: rope_parameters {"rope_type": "default", "rope_theta": x} */
	rp = json_object_get(t, "rope_parameters");
	if (st == CP_OK && json_is_object(rp))
	{
		json_t	   *rt = json_object_get(rp, "rope_type");

		if (rt != NULL && !(json_is_string(rt) && strcmp(json_string_value(rt), "default") == 0))
			return cp_error(err, CP_ERR_UNSUPPORTED, "%s: rope_type \"%.64s\" is not supported", f,
							json_is_string(rt) ? json_string_value(rt) : "?");
		st = get_float(rp, f, "rope_theta", &c->rope_theta, err);
	}
	if (st == CP_OK && json_is_object(json_object_get(t, "rope_scaling")))
		return cp_error(err, CP_ERR_UNSUPPORTED, "%s: rope_scaling is not supported", f);
	/* older Gemma configs: hidden_activation (null = gelu_pytorch_tanh) */
	if (st == CP_OK)
		st = parse_act(t, f, "hidden_act", true, &c->hidden_act, err);
	if (st == CP_OK)
		st = parse_act(t, f, "hidden_activation", true, &c->hidden_act, err);
	if (st == CP_OK)
		st = get_int(t, f, "bos_token_id", bos, err);
	if (st == CP_OK)
		st = get_int(t, f, "pad_token_id", pad, err);
	if (st == CP_OK)
		st = get_bool(t, f, "use_bidirectional_attention", bidir, err);
	return st;
}

/*
 * parse_vision
 *		SigLIP vision config (v may be NULL = PaliGemma's built-in one).
 */
static CpStatus
parse_vision(json_t *v, CpVisionConfig *c, CpError *err)
{
	const char *f = "config.json vision_config";
	CpStatus	st = CP_OK;
	json_t	   *is;

	/* SiglipVisionConfig defaults */
	c->hidden_size = 768;
	c->intermediate_size = 3072;
	c->num_layers = 12;
	c->num_heads = 12;
	c->num_channels = 3;
	c->image_size = 224;
	c->patch_size = 16;
	c->layer_norm_eps = 1e-6f;
	c->hidden_act = CP_ACT_GELU_TANH;
	if (v == NULL || json_is_null(v))
	{
		/* PaliGemmaConfig's vision_config init kwargs */
		c->intermediate_size = 4096;
		c->hidden_size = 1152;
		c->patch_size = 14;
		c->image_size = 224;
		c->num_layers = 27;
		c->num_heads = 16;
		return CP_OK;
	}
	if (!json_is_object(v))
		return cp_error(err, CP_ERR_FORMAT, "config.json: \"vision_config\" is not an object");
	if (json_is_string(json_object_get(v, "model_type")) &&
		strcmp(json_string_value(json_object_get(v, "model_type")), "siglip_vision_model") != 0)
		return cp_error(err, CP_ERR_UNSUPPORTED, "config.json: vision model \"%.64s\" is not supported (expected siglip_vision_model)",
						json_string_value(json_object_get(v, "model_type")));
	if (json_is_true(json_object_get(v, "vision_use_head")))
		return cp_error(err, CP_ERR_UNSUPPORTED, "%s: vision_use_head is not supported", f);
	st = get_int(v, f, "hidden_size", &c->hidden_size, err);
	if (st == CP_OK)
		st = get_int(v, f, "intermediate_size", &c->intermediate_size, err);
	if (st == CP_OK)
		st = get_int(v, f, "num_hidden_layers", &c->num_layers, err);
	if (st == CP_OK)
		st = get_int(v, f, "num_attention_heads", &c->num_heads, err);
	if (st == CP_OK)
		st = get_int(v, f, "num_channels", &c->num_channels, err);
	if (st == CP_OK)
		st = get_int(v, f, "patch_size", &c->patch_size, err);
	if (st == CP_OK)
		st = get_float(v, f, "layer_norm_eps", &c->layer_norm_eps, err);
	if (st == CP_OK)
		st = parse_act(v, f, "hidden_act", false, &c->hidden_act, err);
	if (st != CP_OK)
		return st;
	/* image_size: int, or [h, w] with h == w */
	is = json_object_get(v, "image_size");
	if (json_is_array(is))
	{
		json_t	   *h = json_array_get(is, 0);
		json_t	   *w = json_array_get(is, 1);

		int			hv = 0;
		int			wv = 0;

		if (json_array_size(is) != 2)
			return cp_error(err, CP_ERR_FORMAT, "%s: \"image_size\" must be an integer or [height, width]", f);
		if (!json_is_number(h) || !json_is_number(w) ||
			json_number_value(h) != floor(json_number_value(h)) ||
			json_number_value(h) <= 0 || json_number_value(h) > CP_CFG_MAX_DIM)
			return cp_error(err, CP_ERR_FORMAT, "%s: invalid \"image_size\"", f);
		hv = (int) json_number_value(h);
		wv = json_number_value(w) == hv ? hv : -1;
		if (wv != hv)
			return cp_error(err, CP_ERR_UNSUPPORTED, "%s: non-square image_size is not supported", f);
		c->image_size = hv;
	}
	else
		st = get_int(v, f, "image_size", &c->image_size, err);
	return st;
}

/*
 * parse_image_processor
 *		SiglipImageProcessor settings from one JSON object.
 */
static CpStatus
parse_image_processor(json_t *o, const char *f, CpImageConfig *c, int num_image_tokens, CpError *err)
{
	CpStatus	st = CP_OK;
	json_t	   *size = json_object_get(o, "size");
	const char *names[2] = {"image_mean", "image_std"};
	float	   *dst[2] = {c->mean, c->std};
	int			seq = -1;
	int			k;

	if (!json_is_object(o))
		return cp_error(err, CP_ERR_FORMAT, "%s is not a JSON object", f);
	if (json_is_object(size))
	{
		json_t	   *h = json_object_get(size, "height");
		json_t	   *w = json_object_get(size, "width");

		if (h == NULL && w == NULL)
			return cp_error(err, CP_ERR_UNSUPPORTED, "%s: only size {\"height\", \"width\"} is supported", f);
		st = get_int(size, f, "height", &c->height, err);
		if (st == CP_OK)
			st = get_int(size, f, "width", &c->width, err);
	}
	else if (json_is_number(size))
		st = get_int(o, f, "size", &c->width, err), c->height = c->width;
	else if (size != NULL && !json_is_null(size))
		return cp_error(err, CP_ERR_FORMAT, "%s: \"size\" must be an object or an integer", f);
	if (st == CP_OK)
		st = get_int(o, f, "resample", &c->resample, err);
	if (st == CP_OK)
		st = get_bool(o, f, "do_resize", &c->do_resize, err);
	if (st == CP_OK)
		st = get_bool(o, f, "do_rescale", &c->do_rescale, err);
	if (st == CP_OK)
		st = get_bool(o, f, "do_normalize", &c->do_normalize, err);
	if (st == CP_OK)
		st = get_bool(o, f, "do_convert_rgb", &c->do_convert_rgb, err);
	if (st == CP_OK)
		st = get_double(o, f, "rescale_factor", &c->rescale_factor, err);
	if (st == CP_OK)
		st = get_int(o, f, "image_seq_length", &seq, err);
	if (st != CP_OK)
		return st;
	if (seq >= 0 && seq != num_image_tokens)
		return cp_error(err, CP_ERR_SHAPE, "%s: image_seq_length %d differs from the model's %d image tokens",
						f, seq, num_image_tokens);
	for (k = 0; k < 2; k++)
	{
		json_t	   *v = json_object_get(o, names[k]);
		int			i;

		if (v == NULL || json_is_null(v))
			continue;
		if (json_is_number(v))
		{
			for (i = 0; i < 3; i++)
				dst[k][i] = (float) json_number_value(v);
			continue;
		}
		if (!json_is_array(v) || (json_array_size(v) != 3 && json_array_size(v) != 1))
			return cp_error(err, CP_ERR_FORMAT, "%s: \"%s\" must be a number or a list of 3 numbers", f, names[k]);
		for (i = 0; i < 3; i++)
		{
			json_t	   *x = json_array_get(v, json_array_size(v) == 1 ? 0 : i);

			if (!json_is_number(x) || !isfinite(json_number_value(x)))
				return cp_error(err, CP_ERR_FORMAT, "%s: \"%s\" must contain numbers", f, names[k]);
			dst[k][i] = (float) json_number_value(x);
		}
	}
	return CP_OK;
}

/*
 * load_json
 *		Parse an optional JSON text (NULL stays NULL).
 */
static CpStatus
load_json(const char *text, const char *file, json_t **out, CpError *err)
{
	json_error_t jerr;

	*out = NULL;
	if (text == NULL)
		return CP_OK;
	*out = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
	if (*out == NULL)
		return cp_error(err, CP_ERR_FORMAT, "%s is not valid JSON: %s (line %d)", file, jerr.text, jerr.line);
	if (!json_is_object(*out))
		return cp_error(err, CP_ERR_FORMAT, "%s is not a JSON object", file);
	return CP_OK;
}

/*
 * check_positive
 *		Every size must be at least 1.
 */
static CpStatus
check_positive(int v, const char *what, CpError *err)
{
	if (v <= 0)
		return cp_error(err, CP_ERR_SHAPE, "config.json: %s must be positive (got %d)", what, v);
	return CP_OK;
}

/*
 * validate
 *		Cross-field consistency.
 */
static CpStatus
validate(CpModelConfig *c, CpError *err)
{
	CpStatus	st = CP_OK;
	const CpVisionConfig *v = &c->vision;
	const CpTextConfig *t = &c->text;

#define POS(x) if (st == CP_OK) st = check_positive(x, #x, err)
	POS(v->hidden_size);
	POS(v->intermediate_size);
	POS(v->num_layers);
	POS(v->num_heads);
	POS(v->image_size);
	POS(v->patch_size);
	POS(v->num_channels);
	POS(t->hidden_size);
	POS(t->intermediate_size);
	POS(t->num_layers);
	POS(t->num_heads);
	POS(t->num_kv_heads);
	POS(t->head_dim);
	POS(t->vocab_size);
	POS(c->projector_dim);
	POS(c->embedding_dim);
#undef POS
	if (st != CP_OK)
		return st;
	if (v->hidden_size % v->num_heads != 0)
		return cp_error(err, CP_ERR_SHAPE, "config.json: vision hidden_size %d is not divisible by num_attention_heads %d",
						v->hidden_size, v->num_heads);
	if (t->num_heads % t->num_kv_heads != 0)
		return cp_error(err, CP_ERR_SHAPE, "config.json: text num_attention_heads %d is not a multiple of num_key_value_heads %d",
						t->num_heads, t->num_kv_heads);
	if (v->patch_size > v->image_size)
		return cp_error(err, CP_ERR_SHAPE, "config.json: patch_size %d is larger than image_size %d",
						v->patch_size, v->image_size);
	if (t->head_dim % 2 != 0)
		return cp_error(err, CP_ERR_SHAPE, "config.json: text head_dim %d must be even (RoPE)", t->head_dim);
	if (v->num_channels != 3)
		return cp_error(err, CP_ERR_UNSUPPORTED, "config.json: %d image channels (only RGB is supported)", v->num_channels);
	if (c->image_token_id < 0 || c->image_token_id >= t->vocab_size)
		return cp_error(err, CP_ERR_SHAPE, "config.json: image_token_index %d is outside the %d-row embedding table",
						c->image_token_id, t->vocab_size);
	if (c->pad_token_id >= t->vocab_size || c->bos_token_id >= t->vocab_size)
		return cp_error(err, CP_ERR_SHAPE, "config.json: pad/bos token ids outside the embedding table");
	if (!(t->rms_norm_eps > 0) || !(v->layer_norm_eps > 0) || !(t->rope_theta > 0))
		return cp_error(err, CP_ERR_SHAPE, "config.json: eps and rope_theta must be positive");
	c->vision.head_dim = v->hidden_size / v->num_heads;
	c->vision.num_patches = (v->image_size / v->patch_size) * (v->image_size / v->patch_size);
	c->num_image_tokens = c->vision.num_patches;
	return CP_OK;
}

/*
 * cp_config_parse
 *		See config.h.
 */
CpStatus
cp_config_parse(const char *config_json, const char *preprocessor_json,
				const char *processor_json, const char *tokenizer_config_json,
				CpModelConfig *cfg, CpError *err)
{
	json_t	   *root = NULL;
	json_t	   *pre = NULL;
	json_t	   *proc = NULL;
	json_t	   *tokc = NULL;
	json_t	   *vlm;
	const char *mt = "";
	CpStatus	st;
	int			text_bos;
	int			text_pad;

	memset(cfg, 0, sizeof(*cfg));
	if (config_json == NULL)
		return cp_error(err, CP_ERR_NOT_FOUND, "config.json is missing");
	st = load_json(config_json, "config.json", &root, err);
	if (st == CP_OK)
		st = load_json(preprocessor_json, "preprocessor_config.json", &pre, err);
	if (st == CP_OK)
		st = load_json(processor_json, "processor_config.json", &proc, err);
	if (st == CP_OK)
		st = load_json(tokenizer_config_json, "tokenizer_config.json", &tokc, err);
	if (st != CP_OK)
		goto done;

	if (json_object_get(root, "model_type") != NULL)
	{
		if (!json_is_string(json_object_get(root, "model_type")))
		{
			st = cp_error(err, CP_ERR_FORMAT, "config.json: \"model_type\" must be a string");
			goto done;
		}
		mt = json_string_value(json_object_get(root, "model_type"));
	}
	vlm = root;
	if (strcmp(mt, "qwen2_vl") == 0 || strcmp(mt, "qwen2_5_vl") == 0 || strcmp(mt, "colqwen2") == 0)
	{
		st = cp_config_parse_qwen(root, pre, proc, tokc, cfg, err);
		goto done;
	}
	if (strcmp(mt, "colpali") == 0)
	{
		vlm = json_object_get(root, "vlm_config");
		if (vlm != NULL && !json_is_null(vlm) && !json_is_object(vlm))
		{
			st = cp_error(err, CP_ERR_FORMAT, "config.json: \"vlm_config\" is not an object");
			goto done;
		}
		if (vlm != NULL && json_is_string(json_object_get(vlm, "model_type")) &&
			strcmp(json_string_value(json_object_get(vlm, "model_type")), "paligemma") != 0)
		{
			st = cp_error(err, CP_ERR_UNSUPPORTED, "config.json: vlm_config model \"%.64s\" is not supported (expected paligemma)",
						  json_string_value(json_object_get(vlm, "model_type")));
			goto done;
		}
		if (json_is_null(vlm))
			vlm = NULL;
	}
	else if (strcmp(mt, "paligemma") != 0)
	{
		st = cp_error(err, CP_ERR_UNSUPPORTED, "config.json: model_type \"%.64s\" is not supported (expected colpali or paligemma for ColPali, qwen2_vl or colqwen2 for ColQwen2, qwen2_5_vl for ColQwen2.5)", mt);
		goto done;
	}
	snprintf(cfg->model_type, sizeof(cfg->model_type), "%s", mt);

	st = parse_text(vlm ? json_object_get(vlm, "text_config") : NULL, &cfg->text, &text_bos, &text_pad,
					&cfg->bidirectional, err);
	if (st == CP_OK)
		st = parse_vision(vlm ? json_object_get(vlm, "vision_config") : NULL, &cfg->vision, err);
	if (st != CP_OK)
		goto done;

	/* PaliGemmaConfig top-level keys (image_token_id is the newer alias) */
	cfg->image_token_id = 256000;
	cfg->projector_dim = 2048;
	cfg->embedding_dim = 128;
	cfg->bos_token_id = text_bos;
	cfg->pad_token_id = text_pad;
	if (vlm != NULL)
	{
		st = get_int(vlm, "config.json", "image_token_index", &cfg->image_token_id, err);
		if (st == CP_OK)
			st = get_int(vlm, "config.json", "image_token_id", &cfg->image_token_id, err);
		if (st == CP_OK)
			st = get_int(vlm, "config.json", "projection_dim", &cfg->projector_dim, err);
		if (st == CP_OK)
			st = get_int(vlm, "config.json", "pad_token_id", &cfg->pad_token_id, err);
		if (st == CP_OK)
			st = get_int(vlm, "config.json", "bos_token_id", &cfg->bos_token_id, err);
	}
	if (st == CP_OK)
		st = get_int(root, "config.json", "embedding_dim", &cfg->embedding_dim, err);
	if (st == CP_OK)
		st = validate(cfg, err);
	if (st != CP_OK)
		goto done;

	/* image processor: SiglipImageProcessor defaults, size = the tower's */
	cfg->image.width = cfg->vision.image_size;
	cfg->image.height = cfg->vision.image_size;
	cfg->image.resample = 3;
	cfg->image.do_resize = true;
	cfg->image.do_rescale = true;
	cfg->image.do_normalize = true;
	cfg->image.do_convert_rgb = true;
	cfg->image.rescale_factor = 1.0 / 255.0;
	cfg->image.mean[0] = cfg->image.mean[1] = cfg->image.mean[2] = 0.5f;
	cfg->image.std[0] = cfg->image.std[1] = cfg->image.std[2] = 0.5f;
	if (pre != NULL)
		st = parse_image_processor(pre, "preprocessor_config.json", &cfg->image, cfg->num_image_tokens, err);
	if (st == CP_OK && proc != NULL && json_object_get(proc, "image_processor") != NULL)
		st = parse_image_processor(json_object_get(proc, "image_processor"),
								   "processor_config.json image_processor", &cfg->image, cfg->num_image_tokens, err);
	if (st != CP_OK)
		goto done;
	if (cfg->image.width != cfg->vision.image_size || cfg->image.height != cfg->vision.image_size)
	{
		st = cp_error(err, CP_ERR_SHAPE, "image processor resizes to %dx%d but the vision tower expects %dx%d",
					  cfg->image.width, cfg->image.height, cfg->vision.image_size, cfg->vision.image_size);
		goto done;
	}
	if (!cfg->image.do_resize)
	{
		st = cp_error(err, CP_ERR_UNSUPPORTED, "image processor without do_resize is not supported");
		goto done;
	}
	if (cfg->image.resample != 3)
	{
		st = cp_error(err, CP_ERR_UNSUPPORTED, "image processor resample %d is not supported (only 3 = BICUBIC)",
					  cfg->image.resample);
		goto done;
	}
	{
		int			i;

		for (i = 0; i < 3; i++)
			if (cfg->image.do_normalize && !(cfg->image.std[i] != 0.0f))
			{
				st = cp_error(err, CP_ERR_SHAPE, "image processor image_std contains 0");
				goto done;
			}
	}

	/* prompts: ColPaliProcessor defaults */
	snprintf(cfg->prompt.query_prefix, sizeof(cfg->prompt.query_prefix), "Question: ");
	snprintf(cfg->prompt.visual_prompt_prefix, sizeof(cfg->prompt.visual_prompt_prefix), "Describe the image.");
	snprintf(cfg->prompt.query_augmentation_token, sizeof(cfg->prompt.query_augmentation_token), "<pad>");
	cfg->prompt.query_augmentation_tokens = 10;
	if (proc != NULL)
	{
		st = get_string(proc, "processor_config.json", "query_prefix", cfg->prompt.query_prefix,
						sizeof(cfg->prompt.query_prefix), err);
		if (st == CP_OK)
			st = get_string(proc, "processor_config.json", "visual_prompt_prefix", cfg->prompt.visual_prompt_prefix,
							sizeof(cfg->prompt.visual_prompt_prefix), err);
	}
	if (st == CP_OK && tokc != NULL)
	{
		json_t	   *pt = json_object_get(tokc, "pad_token");

		/* a string, or an AddedToken dict {"content": ...} */
		if (json_is_object(pt))
			st = get_string(pt, "tokenizer_config.json pad_token", "content", cfg->prompt.query_augmentation_token,
							sizeof(cfg->prompt.query_augmentation_token), err);
		else
			st = get_string(tokc, "tokenizer_config.json", "pad_token", cfg->prompt.query_augmentation_token,
							sizeof(cfg->prompt.query_augmentation_token), err);
	}

done:
	json_decref(root);
	json_decref(pre);
	json_decref(proc);
	json_decref(tokc);
	return st;
}

/*
 * read_text
 *		Whole file as a NUL-terminated string; *out NULL when absent.
 */
static CpStatus
read_text(const char *dir, const char *name, char **out, CpError *err)
{
	char		path[4096];
	size_t		n;
	CpStatus	st;

	*out = NULL;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int) sizeof(path))
		return cp_error(err, CP_ERR_LIMIT, "path of %s in \"%s\" is too long", name, dir);
	st = cp_read_file(path, (size_t) 64 * 1024 * 1024, out, &n, err);
	if (st == CP_ERR_NOT_FOUND)
		return CP_OK;			/* optional file */
	if (st != CP_OK)
		return st;
	if (strlen(*out) != n)
	{
		free(*out);
		*out = NULL;
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" contains a NUL byte", path);
	}
	return CP_OK;
}

/*
 * cp_config_load_with_base
 *		See config.h.
 */
CpStatus
cp_config_load_with_base(const char *dir, const char *base_dir, CpModelConfig *cfg, CpError *err)
{
	char	   *texts[4] = {NULL, NULL, NULL, NULL};
	static const char *names[4] = {"config.json", "preprocessor_config.json",
	"processor_config.json", "tokenizer_config.json"};
	char		basebuf[4096];
	CpStatus	st = CP_OK;
	int			i;

	memset(cfg, 0, sizeof(*cfg));
	if (dir == NULL)
		return cp_error(err, CP_ERR_INVALID_ARG, "no checkpoint folder given");
	if (base_dir == NULL && cp_adapter_base_dir(dir, basebuf, sizeof(basebuf)))
		base_dir = basebuf;
	if (base_dir != NULL && base_dir[0] == '\0')
		base_dir = NULL;		/* "" = no fallback (cp_config_load) */
	for (i = 0; i < 4 && st == CP_OK; i++)
	{
		st = read_text(dir, names[i], &texts[i], err);
		if (st == CP_OK && texts[i] == NULL && base_dir != NULL)
			st = read_text(base_dir, names[i], &texts[i], err);
	}
	if (st == CP_OK && texts[0] == NULL)
		st = cp_error(err, CP_ERR_NOT_FOUND, "no config.json in \"%s\"%s%s%s", dir,
					  base_dir ? " or in \"" : "", base_dir ? base_dir : "", base_dir ? "\"" : "");
	if (st == CP_OK)
	{
		st = cp_config_parse(texts[0], texts[1], texts[2], texts[3], cfg, err);
		if (st != CP_OK && err != NULL)
		{
			char		tmp[CP_ERROR_MSG_LEN];

			snprintf(tmp, sizeof(tmp), "%s", err->msg);
			cp_error(err, st, "%s (in \"%s\")", tmp, dir);
		}
	}
	for (i = 0; i < 4; i++)
		free(texts[i]);
	return st;
}

/*
 * cp_config_load
 *		See config.h: only the files of dir.
 */
CpStatus
cp_config_load(const char *dir, CpModelConfig *cfg, CpError *err)
{
	static const char none[] = "";

	/* an empty base_dir disables the adapter fallback */
	return cp_config_load_with_base(dir, none, cfg, err);
}
