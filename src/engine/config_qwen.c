/*
 * config_qwen.c
 *	  Reading a ColQwen2 (Qwen2-VL) or ColQwen2.5 (Qwen2.5-VL) checkpoint's
 *	  configuration (docs/encoder.md#colqwen2-layouts): the flat config.json
 *	  of the 2024 hub checkpoints and of colpali-engine's transformers-5 save
 *	  (text keys at the top level or under text_config), and transformers'
 *	  native ColQwen2 config (model_type colqwen2, the Qwen2-VL one under
 *	  vlm_config).  Keys absent get Qwen2-VL's transformers defaults.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "config_internal.h"

#define CFG "config.json"

/*
 * parse_qwen_act
 *		"silu" or "quick_gelu" when present.
 */
static CpStatus
parse_qwen_act(json_t *obj, const char *what, int *out, CpError *err)
{
	json_t	   *v = json_object_get(obj, "hidden_act");
	const char *s;

	if (v == NULL || json_is_null(v))
		return CP_OK;
	if (!json_is_string(v))
		return cp_error(err, CP_ERR_FORMAT, "config.json: %s \"hidden_act\" must be a string", what);
	s = json_string_value(v);
	if (strcmp(s, "silu") == 0)
		*out = CP_ACT_SILU;
	else if (strcmp(s, "quick_gelu") == 0)
		*out = CP_ACT_QUICK_GELU;
	else
		return cp_error(err, CP_ERR_UNSUPPORTED, "config.json: %s activation \"%.64s\" is not supported", what, s);
	return CP_OK;
}

/*
 * small_int
 *		A JSON number that is an integer in [lo, hi] (config.c reads every
 *		number as a double).
 */
static bool
small_int(json_t *v, int lo, int hi, int *out)
{
	double		d = json_number_value(v);

	if (!json_is_number(v) || d != floor(d) || d < lo || d > hi)
		return false;
	*out = (int) d;
	return true;
}

/*
 * parse_mrope
 *		mrope_section from rope_scaling (2024) or rope_parameters
 *		(transformers 5), and rope_theta from either place.
 */
static CpStatus
parse_mrope(json_t *t, CpModelConfig *cfg, CpError *err)
{
	const char *keys[2] = {"rope_scaling", "rope_parameters"};
	int			k;
	bool		found = false;
	CpStatus	st;

	for (k = 0; k < 2; k++)
	{
		json_t	   *r = json_object_get(t, keys[k]);
		json_t	   *sec = json_object_get(r, "mrope_section");
		size_t		i;

		if (r == NULL || json_is_null(r))
			continue;
		if (!json_is_object(r))
			return cp_error(err, CP_ERR_FORMAT, "config.json: \"%s\" is not an object", keys[k]);
		st = cp_cfg_get_float(r, CFG, "rope_theta", &cfg->text.rope_theta, err);
		if (st != CP_OK)
			return st;
		if (sec == NULL)
			continue;
		if (!json_is_array(sec) || json_array_size(sec) != 3)
			return cp_error(err, CP_ERR_FORMAT, "config.json: mrope_section must be an array of 3 integers");
		for (i = 0; i < 3; i++)
		{
			if (!small_int(json_array_get(sec, i), 1, 4096, &cfg->qwen.mrope_section[i]))
				return cp_error(err, CP_ERR_FORMAT, "config.json: mrope_section must be an array of 3 positive integers");
		}
		found = true;
	}
	if (!found)
		return cp_error(err, CP_ERR_FORMAT, "config.json: no rope_scaling.mrope_section (M-RoPE) for a Qwen2-VL model");
	return CP_OK;
}

/*
 * parse_qwen_text
 *		Qwen2 decoder hyper-parameters (t: the object holding them).
 */
static CpStatus
parse_qwen_text(json_t *t, CpModelConfig *cfg, CpError *err)
{
	CpTextConfig *c = &cfg->text;
	CpStatus	st;

	/* Qwen2VLTextConfig defaults */
	c->vocab_size = 152064;
	c->hidden_size = 8192;
	c->intermediate_size = 29568;
	c->num_layers = 80;
	c->num_heads = 64;
	c->num_kv_heads = 8;
	c->rms_norm_eps = 1e-5f;
	c->rope_theta = 1000000.0f;
	c->hidden_act = CP_ACT_SILU;
	st = cp_cfg_get_int(t, CFG, "vocab_size", &c->vocab_size, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(t, CFG, "hidden_size", &c->hidden_size, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(t, CFG, "intermediate_size", &c->intermediate_size, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(t, CFG, "num_hidden_layers", &c->num_layers, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(t, CFG, "num_attention_heads", &c->num_heads, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(t, CFG, "num_key_value_heads", &c->num_kv_heads, err);
	if (st == CP_OK)
		st = cp_cfg_get_float(t, CFG, "rms_norm_eps", &c->rms_norm_eps, err);
	if (st == CP_OK)
		st = cp_cfg_get_float(t, CFG, "rope_theta", &c->rope_theta, err);
	if (st == CP_OK)
		st = parse_qwen_act(t, "text", &c->hidden_act, err);
	if (st == CP_OK)
		st = parse_mrope(t, cfg, err);
	if (st != CP_OK)
		return st;
	if (json_is_true(json_object_get(t, "use_sliding_window")))
		return cp_error(err, CP_ERR_UNSUPPORTED, "config.json: use_sliding_window is not supported");
	if (c->hidden_act != CP_ACT_SILU)
		return cp_error(err, CP_ERR_UNSUPPORTED, "config.json: the Qwen2 decoder needs silu");
	if (c->num_heads <= 0 || c->num_kv_heads <= 0 || c->hidden_size <= 0 ||
		c->hidden_size % c->num_heads != 0 || c->num_heads % c->num_kv_heads != 0)
		return cp_error(err, CP_ERR_SHAPE, "config.json: %d heads, %d key/value heads and width %d do not fit",
						c->num_heads, c->num_kv_heads, c->hidden_size);
	c->head_dim = c->hidden_size / c->num_heads;
	if (2 * (cfg->qwen.mrope_section[0] + cfg->qwen.mrope_section[1] + cfg->qwen.mrope_section[2]) != c->head_dim)
		return cp_error(err, CP_ERR_SHAPE, "config.json: mrope_section %d+%d+%d is not head_dim/2 = %d",
						cfg->qwen.mrope_section[0], cfg->qwen.mrope_section[1], cfg->qwen.mrope_section[2],
						c->head_dim / 2);
	if (c->intermediate_size <= 0 || c->num_layers <= 0 || c->vocab_size <= 0)
		return cp_error(err, CP_ERR_SHAPE, "config.json: the text model has no layers, MLP or vocabulary");
	return CP_OK;
}

/*
 * parse_qwen_vision
 *		The vision tower of Qwen2-VL (embed_dim, mlp_ratio, quick_gelu) or
 *		Qwen2.5-VL (hidden_size, intermediate_size, window attention).
 */
static CpStatus
parse_qwen_vision(json_t *v, CpModelConfig *cfg, CpError *err)
{
	CpQwenConfig *q = &cfg->qwen;
	bool		v25 = cfg->arch == CP_ARCH_QWEN2_5_VL;
	int			out_hidden;
	int			mlp_ratio = 4;
	int			in_channels = 3;
	int			patch = 14;
	int			merge = 2;
	int			temporal = 2;
	json_t	   *fa;
	CpStatus	st;

	if (v != NULL && !json_is_object(v))
		return cp_error(err, CP_ERR_FORMAT, "config.json: \"vision_config\" is not an object");
	q->depth = 32;
	q->vision_heads = 16;
	if (v25)
	{
		/* Qwen2_5_VLVisionConfig defaults */
		q->vision_hidden = 1280;
		q->vision_intermediate = 3420;
		out_hidden = 3584;
		q->vision_act = CP_ACT_SILU;
		q->window_size = 112;
		st = cp_cfg_get_int(v, CFG, "hidden_size", &q->vision_hidden, err);
		if (st == CP_OK)
			st = cp_cfg_get_int(v, CFG, "intermediate_size", &q->vision_intermediate, err);
		if (st == CP_OK)
			st = cp_cfg_get_int(v, CFG, "out_hidden_size", &out_hidden, err);
		if (st == CP_OK)
			st = cp_cfg_get_int(v, CFG, "window_size", &q->window_size, err);
	}
	else
	{
		q->vision_hidden = 1280;
		out_hidden = 3584;
		q->vision_act = CP_ACT_QUICK_GELU;
		st = cp_cfg_get_int(v, CFG, "embed_dim", &q->vision_hidden, err);
		if (st == CP_OK)
			st = cp_cfg_get_int(v, CFG, "hidden_size", &out_hidden, err);
		if (st == CP_OK)
			st = cp_cfg_get_int(v, CFG, "mlp_ratio", &mlp_ratio, err);
		q->vision_intermediate = q->vision_hidden * mlp_ratio;
	}
	if (st == CP_OK)
		st = cp_cfg_get_int(v, CFG, "depth", &q->depth, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(v, CFG, "num_heads", &q->vision_heads, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(v, CFG, "in_chans", &in_channels, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(v, CFG, "in_channels", &in_channels, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(v, CFG, "patch_size", &patch, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(v, CFG, "spatial_merge_size", &merge, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(v, CFG, "temporal_patch_size", &temporal, err);
	if (st == CP_OK)
		st = parse_qwen_act(v, "vision", &q->vision_act, err);
	if (st != CP_OK)
		return st;
	fa = json_object_get(v, "fullatt_block_indexes");
	if (v25 && fa != NULL && !json_is_null(fa))
	{
		size_t		i;

		if (!json_is_array(fa) || json_array_size(fa) > CP_QWEN_MAX_FULLATT)
			return cp_error(err, CP_ERR_FORMAT, "config.json: fullatt_block_indexes must be an array of at most %d integers",
							CP_QWEN_MAX_FULLATT);
		for (i = 0; i < json_array_size(fa); i++)
		{
			/*
			 * an index past the last block never matches, as in
			 * transformers (a reduced-depth copy keeps the real list)
			 */
			if (!small_int(json_array_get(fa, i), 0, 1 << 20, &q->fullatt_block_indexes[q->n_fullatt]))
				return cp_error(err, CP_ERR_FORMAT, "config.json: fullatt_block_indexes[%zu] is not a block index", i);
			q->n_fullatt++;
		}
	}
	if (in_channels != 3)
		return cp_error(err, CP_ERR_UNSUPPORTED, "config.json: %d image channels (only RGB is supported)", in_channels);
	if (q->vision_heads <= 0 || q->vision_hidden <= 0 || q->vision_hidden % q->vision_heads != 0 ||
		q->depth <= 0 || q->vision_intermediate <= 0 || patch <= 0 || merge <= 0 || temporal <= 0 ||
		patch > 64 || merge > 8 || temporal > 8)
		return cp_error(err, CP_ERR_SHAPE, "config.json: inconsistent vision tower (width %d, %d heads, depth %d, patch %d, merge %d)",
						q->vision_hidden, q->vision_heads, q->depth, patch, merge);
	q->vision_head_dim = q->vision_hidden / q->vision_heads;
	if (q->vision_head_dim % 4 != 0)
		return cp_error(err, CP_ERR_SHAPE, "config.json: vision head_dim %d is not a multiple of 4 (2-D rotary)", q->vision_head_dim);
	if (out_hidden != cfg->text.hidden_size)
		return cp_error(err, CP_ERR_SHAPE, "config.json: the vision merger gives width %d but the text model has %d",
						out_hidden, cfg->text.hidden_size);
	if (v25 && (q->window_size <= 0 || q->window_size % (patch * merge) != 0))
		return cp_error(err, CP_ERR_SHAPE, "config.json: window_size %d is not a multiple of patch_size * spatial_merge_size",
						q->window_size);
	q->image.patch_size = patch;
	q->image.merge_size = merge;
	q->image.temporal_patch_size = temporal;
	return CP_OK;
}

/*
 * parse_qwen_processor
 *		preprocessor_config.json (or processor_config.json image_processor):
 *		min/max pixels in either spelling, mean, std, rescale factor.  The
 *		patch, merge and temporal sizes must agree with the vision tower.
 */
static CpStatus
parse_qwen_processor(json_t *o, const char *file, CpQwenConfig *q, CpError *err)
{
	CpQwenImageConfig *im = &q->image;
	int			patch = im->patch_size;
	int			merge = im->merge_size;
	int			temporal = im->temporal_patch_size;
	double		mn = (double) im->min_pixels;
	double		mx = (double) q->checkpoint_max_pixels;
	json_t	   *size = json_object_get(o, "size");
	const char *arrays[2] = {"image_mean", "image_std"};
	float	   *dst[2] = {im->mean, im->std};
	int			k;
	CpStatus	st;

	st = cp_cfg_get_double(o, file, "min_pixels", &mn, err);
	if (st == CP_OK)
		st = cp_cfg_get_double(o, file, "max_pixels", &mx, err);
	if (st == CP_OK && json_is_object(size))
	{
		st = cp_cfg_get_double(size, file, "shortest_edge", &mn, err);
		if (st == CP_OK)
			st = cp_cfg_get_double(size, file, "longest_edge", &mx, err);
	}
	if (st == CP_OK)
		st = cp_cfg_get_int(o, file, "patch_size", &patch, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(o, file, "merge_size", &merge, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(o, file, "temporal_patch_size", &temporal, err);
	if (st == CP_OK)
		st = cp_cfg_get_double(o, file, "rescale_factor", &im->rescale_factor, err);
	if (st != CP_OK)
		return st;
	for (k = 0; k < 2; k++)
	{
		json_t	   *a = json_object_get(o, arrays[k]);
		int			i;

		if (a == NULL || json_is_null(a))
			continue;
		if (!json_is_array(a) || json_array_size(a) != 3)
			return cp_error(err, CP_ERR_FORMAT, "%s: \"%s\" must be an array of 3 numbers", file, arrays[k]);
		for (i = 0; i < 3; i++)
		{
			if (!json_is_number(json_array_get(a, i)))
				return cp_error(err, CP_ERR_FORMAT, "%s: \"%s\" must be an array of 3 numbers", file, arrays[k]);
			dst[k][i] = (float) json_number_value(json_array_get(a, i));
		}
	}
	if (patch != im->patch_size || merge != im->merge_size || temporal != im->temporal_patch_size)
		return cp_error(err, CP_ERR_SHAPE, "%s: patch %d / merge %d / temporal %d differ from the vision tower's %d / %d / %d",
						file, patch, merge, temporal, im->patch_size, im->merge_size, im->temporal_patch_size);
	if (!(mn >= 1 && mn <= 1e12 && mx >= mn && mx <= 1e12 && mn == floor(mn) && mx == floor(mx)))
		return cp_error(err, CP_ERR_FORMAT, "%s: min_pixels %.0f / max_pixels %.0f are not valid", file, mn, mx);
	for (k = 0; k < 3; k++)
		if (!(im->std[k] != 0.0f))
			return cp_error(err, CP_ERR_SHAPE, "%s: image_std contains 0", file);
	im->min_pixels = (int64_t) mn;
	q->checkpoint_max_pixels = (int64_t) mx;
	return CP_OK;
}

/*
 * cp_config_parse_qwen
 *		See config_internal.h.
 */
CpStatus
cp_config_parse_qwen(json_t *root, json_t *pre, json_t *proc, json_t *tokc,
					 CpModelConfig *cfg, CpError *err)
{
	json_t	   *vlm = root;
	json_t	   *text;
	json_t	   *arch = json_object_get(root, "architectures");
	const char *mt = json_string_value(json_object_get(root, "model_type"));
	CpStatus	st;

	if (strcmp(mt, "colqwen2") == 0)
	{
		/* transformers' ColQwen2ForRetrieval: the VLM config is nested */
		vlm = json_object_get(root, "vlm_config");
		if (!json_is_object(vlm) || !json_is_string(json_object_get(vlm, "model_type")))
			return cp_error(err, CP_ERR_FORMAT, "config.json: colqwen2 config without a vlm_config model_type");
		mt = json_string_value(json_object_get(vlm, "model_type"));
		if (strcmp(mt, "qwen2_vl") != 0 && strcmp(mt, "qwen2_5_vl") != 0)
			return cp_error(err, CP_ERR_UNSUPPORTED, "config.json: vlm_config model \"%.64s\" is not supported (expected qwen2_vl or qwen2_5_vl)", mt);
	}
	else if (json_is_array(arch) && json_array_size(arch) > 0)
	{
		/* a plain Qwen2-VL chat model has no retrieval head */
		size_t		i;
		bool		col = false;

		for (i = 0; i < json_array_size(arch); i++)
		{
			const char *a = json_string_value(json_array_get(arch, i));

			col = col || (a != NULL && strncmp(a, "ColQwen2", 8) == 0);
		}
		if (!col)
			return cp_error(err, CP_ERR_UNSUPPORTED,
							"config.json: architectures %.64s is not a ColQwen2 / ColQwen2.5 retrieval model",
							json_string_value(json_array_get(arch, 0)) ? json_string_value(json_array_get(arch, 0)) : "?");
	}
	cfg->arch = strcmp(mt, "qwen2_5_vl") == 0 ? CP_ARCH_QWEN2_5_VL : CP_ARCH_QWEN2_VL;
	snprintf(cfg->model_type, sizeof(cfg->model_type), "%s", mt);

	text = json_object_get(vlm, "text_config");
	if (text == NULL || json_is_null(text))
		text = vlm;
	else if (!json_is_object(text))
		return cp_error(err, CP_ERR_FORMAT, "config.json: \"text_config\" is not an object");
	st = parse_qwen_text(text, cfg, err);
	if (st == CP_OK)
		st = parse_qwen_vision(json_object_get(vlm, "vision_config"), cfg, err);
	if (st != CP_OK)
		return st;

	/* token ids: Qwen2-VL's defaults, then the file's */
	cfg->image_token_id = 151655;
	cfg->qwen.vision_start_token_id = 151652;
	cfg->qwen.vision_end_token_id = 151653;
	cfg->embedding_dim = 128;
	cfg->bos_token_id = -1;		/* Qwen2 prompts have no BOS */
	cfg->pad_token_id = 151643;
	st = cp_cfg_get_int(vlm, CFG, "image_token_id", &cfg->image_token_id, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(vlm, CFG, "vision_start_token_id", &cfg->qwen.vision_start_token_id, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(vlm, CFG, "vision_end_token_id", &cfg->qwen.vision_end_token_id, err);
	if (st == CP_OK)
		st = cp_cfg_get_int(root, CFG, "embedding_dim", &cfg->embedding_dim, err);
	if (st == CP_OK && (cfg->embedding_dim <= 0 || cfg->image_token_id >= cfg->text.vocab_size))
		st = cp_error(err, CP_ERR_SHAPE, "config.json: embedding_dim %d / image_token_id %d out of range",
					  cfg->embedding_dim, cfg->image_token_id);
	if (st != CP_OK)
		return st;
	cfg->projector_dim = cfg->text.hidden_size;
	cfg->bidirectional = false;

	/* image processor */
	{
		int			patch = cfg->qwen.image.patch_size;
		int			merge = cfg->qwen.image.merge_size;
		int			temporal = cfg->qwen.image.temporal_patch_size;

		cp_qwen_image_config_default(&cfg->qwen.image);
		cfg->qwen.image.patch_size = patch;
		cfg->qwen.image.merge_size = merge;
		cfg->qwen.image.temporal_patch_size = temporal;
		cfg->qwen.checkpoint_max_pixels = cfg->qwen.image.max_pixels;
	}
	if (pre != NULL)
		st = parse_qwen_processor(pre, "preprocessor_config.json", &cfg->qwen, err);
	if (st == CP_OK && proc != NULL && json_is_object(json_object_get(proc, "image_processor")))
		st = parse_qwen_processor(json_object_get(proc, "image_processor"),
								  "processor_config.json image_processor", &cfg->qwen, err);
	if (st != CP_OK)
		return st;
	cfg->qwen.image.max_pixels = cp_qwen_max_pixels(&cfg->qwen.image, cfg->qwen.checkpoint_max_pixels,
													CP_QWEN_TRAINED_VISUAL_TOKENS);

	/* prompts: the training format (docs/encoder.md#colqwen2-prompts) */
	snprintf(cfg->prompt.query_prefix, sizeof(cfg->prompt.query_prefix), "Query: ");
	snprintf(cfg->prompt.visual_prompt_prefix, sizeof(cfg->prompt.visual_prompt_prefix), "Describe the image.");
	snprintf(cfg->prompt.query_augmentation_token, sizeof(cfg->prompt.query_augmentation_token), "<|endoftext|>");
	cfg->prompt.query_augmentation_tokens = 10;
	if (proc != NULL)
	{
		st = cp_cfg_get_string(proc, "processor_config.json", "query_prefix", cfg->prompt.query_prefix,
							   sizeof(cfg->prompt.query_prefix), err);
		if (st != CP_OK)
			return st;
	}
	(void) tokc;				/* the augmentation token is <|endoftext|>, not the pad token */
	return CP_OK;
}
