/*
 * test_qwen_config.c
 *	  ColQwen2 / ColQwen2.5 checkpoints against test/fixtures/qwen
 *	  (generate_qwen.py): the architecture is recognised from config.json
 *	  in every layout, with the shapes the reference used; page and query
 *	  prompts give the reference's ids and the M-RoPE position ids its
 *	  decoder received; configurations that are not ColQwen are refused by
 *	  name; the engine opens a ColQwen checkpoint on the CPU and refuses
 *	  bad budgets and queries holding the image placeholder.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "colpali_engine.h"
#include "config.h"
#include "prompt.h"
#include "tokenizer.h"
#include "golden_format.h"
#include "test_util.h"

#define QDIR "../fixtures/qwen/"

/*
 * ids_equal
 *		got[0..n) against the JSON integer array want.
 */
static bool
ids_equal(const int32_t *got, int n, json_t *want)
{
	int			i;

	if (json_array_size(want) != (size_t) n)
		return false;
	for (i = 0; i < n; i++)
		if (got[i] != json_integer_value(json_array_get(want, i)))
			return false;
	return true;
}

/*
 * test_model_config
 *		One model folder: architecture, shapes, processor settings.
 */
static void
test_model_config(const char *dir, CpArchitecture arch, json_t *config_json)
{
	CpModelConfig cfg;
	CpError		err = {0};
	json_t	   *v = json_object_get(config_json, "vision_config");
	json_t	   *sec = json_object_get(json_object_get(config_json, "rope_scaling"), "mrope_section");

	CHECK(cp_config_load(dir, &cfg, &err) == CP_OK, "%s: %s", dir, err.msg);
	CHECK(cfg.arch == arch, "%s: architecture %d, want %d", dir, cfg.arch, arch);
	CHECK(cfg.text.hidden_size == json_integer_value(json_object_get(config_json, "hidden_size")) &&
		  cfg.text.num_layers == json_integer_value(json_object_get(config_json, "num_hidden_layers")) &&
		  cfg.text.num_kv_heads == json_integer_value(json_object_get(config_json, "num_key_value_heads")) &&
		  cfg.text.head_dim == cfg.text.hidden_size / cfg.text.num_heads,
		  "%s: text shape", dir);
	CHECK(cfg.qwen.mrope_section[0] == json_integer_value(json_array_get(sec, 0)) &&
		  cfg.qwen.mrope_section[2] == json_integer_value(json_array_get(sec, 2)), "%s: mrope_section", dir);
	CHECK(cfg.qwen.depth == json_integer_value(json_object_get(v, "depth")), "%s: vision depth %d", dir, cfg.qwen.depth);
	CHECK(cfg.image_token_id == json_integer_value(json_object_get(config_json, "image_token_id")), "%s: image token", dir);
	CHECK(cfg.embedding_dim == 128, "%s: embedding_dim %d", dir, cfg.embedding_dim);
	CHECK(cfg.qwen.checkpoint_max_pixels == 12845056, "%s: checkpoint max_pixels %lld", dir,
		  (long long) cfg.qwen.checkpoint_max_pixels);
	CHECK(cfg.qwen.image.max_pixels == 768 * 28 * 28, "%s: default budget %lld", dir, (long long) cfg.qwen.image.max_pixels);
	CHECK(cfg.qwen.image.min_pixels == 3136, "%s: min_pixels", dir);
	CHECK(strcmp(cfg.prompt.query_prefix, "Query: ") == 0, "%s: query prefix \"%s\"", dir, cfg.prompt.query_prefix);
	if (arch == CP_ARCH_QWEN2_5_VL)
		CHECK(cfg.qwen.n_fullatt == 1 && cfg.qwen.fullatt_block_indexes[0] == 1 && cfg.qwen.window_size == 56 &&
			  cfg.qwen.vision_act == CP_ACT_SILU, "%s: Qwen2.5-VL vision settings", dir);
	else
		CHECK(cfg.qwen.vision_act == CP_ACT_QUICK_GELU &&
			  cfg.qwen.vision_intermediate == cfg.qwen.vision_hidden * json_integer_value(json_object_get(v, "mlp_ratio")),
			  "%s: Qwen2-VL vision settings", dir);
}

/*
 * test_prompts
 *		Page and query ids and positions of one golden set.
 */
static void
test_prompts(const char *dir, json_t *gold)
{
	CpModelConfig cfg;
	CpTokenizer *tok = NULL;
	CpError		err = {0};
	char		path[512];
	json_t	   *pages = json_object_get(gold, "pages");
	json_t	   *queries = json_object_get(gold, "queries");
	size_t		i;
	int			pages_ok = 0;
	int			queries_ok = 0;

	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	if (cp_config_load(dir, &cfg, &err) != CP_OK || cp_tokenizer_load(path, &tok, &err) != CP_OK)
	{
		CHECK(false, "%s: %s", dir, err.msg);
		return;
	}
	for (i = 0; i < json_array_size(pages); i++)
	{
		json_t	   *pg = json_array_get(pages, i);
		json_t	   *grid = json_object_get(pg, "grid_thw");
		json_t	   *want_pos = json_object_get(pg, "position_ids");
		int			gh = (int) json_integer_value(json_array_get(grid, 1));
		int			gw = (int) json_integer_value(json_array_get(grid, 2));
		int32_t    *ids = NULL;
		int32_t    *pos;
		int			n = 0;
		int			r;
		bool		same;

		if (cp_build_qwen_image_prompt(tok, &cfg, gh * gw / 4, &ids, &n, &err) != CP_OK)
		{
			CHECK(false, "page prompt: %s", err.msg);
			continue;
		}
		same = ids_equal(ids, n, json_object_get(pg, "ids"));
		pos = malloc(sizeof(int32_t) * 3 * n);
		CHECK(cp_qwen_position_ids(ids, n, cfg.image_token_id, gh, gw, 2, pos, &err) == CP_OK, "positions: %s", err.msg);
		for (r = 0; r < 3; r++)
			same = same && ids_equal(pos + (size_t) r * n, n, json_array_get(want_pos, r));
		CHECK(same, "%s page %s: ids or positions differ", dir, json_string_value(json_object_get(pg, "image")));
		pages_ok += same;
		free(pos);
		free(ids);
	}
	for (i = 0; i < json_array_size(queries); i++)
	{
		json_t	   *q = json_array_get(queries, i);
		const char *text = json_string_value(json_object_get(q, "text"));
		const char *fmt = json_string_value(json_object_get(q, "format"));
		CpModelConfig qc = cfg;
		int32_t    *ids = NULL;
		int32_t    *pos;
		int			n = 0;
		bool		same;

		if (!golden_query_format(&qc, fmt))
		{
			CHECK(false, "query %zu: format %s", i, fmt ? fmt : "(none)");
			continue;
		}
		if (cp_build_qwen_query_prompt(tok, &qc, text, strlen(text), &ids, &n, &err) != CP_OK)
		{
			CHECK(false, "query prompt: %s", err.msg);
			continue;
		}
		same = ids_equal(ids, n, json_object_get(q, "ids"));
		pos = malloc(sizeof(int32_t) * 3 * n);
		CHECK(cp_qwen_position_ids(ids, n, cfg.image_token_id, 0, 0, 2, pos, &err) == CP_OK, "positions: %s", err.msg);
		same = same && pos[n - 1] == n - 1 && pos[2 * n + n - 1] == n - 1;
		CHECK(same, "%s query %zu (%s): ids differ", dir, i, fmt);
		queries_ok += same;
		free(pos);
		free(ids);
	}
	{
		int32_t    *ids = NULL;
		int			n = 0;
		const char *bad = "what is <|image_pad|> here";
		int32_t		two_runs[5];
		int32_t		pos[15];

		CHECK(cp_build_qwen_query_prompt(tok, &cfg, bad, strlen(bad), &ids, &n, &err) == CP_ERR_INVALID_ARG &&
			  strstr(err.msg, "image placeholder"), "query with the image pad token: %s", err.msg);
		free(ids);
		two_runs[0] = two_runs[2] = two_runs[3] = cfg.image_token_id;
		two_runs[1] = two_runs[4] = 1;
		CHECK(cp_qwen_position_ids(two_runs, 5, cfg.image_token_id, 2, 2, 2, pos, &err) == CP_ERR_INVALID_ARG,
			  "two image runs refused");
	}
	printf("%s: %d pages and %d queries with the reference's ids and positions\n", dir, pages_ok, queries_ok);
	CHECK(pages_ok >= 10 && queries_ok >= 5, "%s: too few prompts checked", dir);
	cp_tokenizer_free(tok);
}

/*
 * expect_refused
 *		A config.json that must not load, with a message naming why.
 */
static void
expect_refused(const char *what, const char *json, CpStatus want, const char *needle)
{
	CpModelConfig cfg;
	CpError		err = {0};
	CpStatus	st = cp_config_parse(json, NULL, NULL, NULL, &cfg, &err);

	CHECK(st == want && strstr(err.msg, needle) != NULL, "%s: got %s \"%s\"", what, cp_status_name(st), err.msg);
}

/*
 * test_refusals
 *		Not-ColQwen and inconsistent configurations.
 */
static void
test_refusals(void)
{
	CpEngineOptions opts;
	CpEngine   *e = NULL;
	CpError		err = {0};

	expect_refused("chat model", "{\"model_type\":\"qwen2_vl\",\"architectures\":[\"Qwen2VLForConditionalGeneration\"],"
				   "\"rope_scaling\":{\"mrope_section\":[16,24,24]}}", CP_ERR_UNSUPPORTED, "not a ColQwen2");
	expect_refused("no mrope", "{\"model_type\":\"qwen2_vl\",\"architectures\":[\"ColQwen2\"]}", CP_ERR_FORMAT, "mrope_section");
	expect_refused("bad mrope", "{\"model_type\":\"qwen2_vl\",\"hidden_size\":64,\"num_attention_heads\":4,"
				   "\"num_key_value_heads\":2,\"rope_scaling\":{\"mrope_section\":[2,3,4]},"
				   "\"vision_config\":{\"hidden_size\":64}}", CP_ERR_SHAPE, "mrope_section");
	expect_refused("other family", "{\"model_type\":\"idefics3\"}", CP_ERR_UNSUPPORTED, "qwen2_5_vl for ColQwen2.5");
	expect_refused("native, other vlm", "{\"model_type\":\"colqwen2\",\"vlm_config\":{\"model_type\":\"qwen3_vl\"}}",
				   CP_ERR_UNSUPPORTED, "qwen3_vl");

	memset(&opts, 0, sizeof(opts));
	opts.model_dir = QDIR "models/colqwen2-hub2024";
	opts.max_visual_tokens = -1;
	CHECK(cp_engine_open(&opts, &e, &err) == CP_ERR_INVALID_ARG && e == NULL && strstr(err.msg, "max_visual_tokens"),
		  "negative visual-token budget: \"%s\"", err.msg);
	if (e)
		cp_engine_close(e);
	e = NULL;
	/* device AUTO: the CUDA backend lacks the family's ops, the CPU serves it */
	opts.max_visual_tokens = 0;
	CHECK(cp_engine_open(&opts, &e, &err) == CP_OK && e != NULL && strcmp(cp_engine_device_name(e), "cpu") == 0,
		  "engine on a ColQwen2 folder: \"%s\"", err.msg);
	if (e)
	{
		const char *q[1] = {"a query with <|image_pad|> inside"};
		CpEmbedding out[1];

		CHECK(cp_engine_encode_queries(e, 1, q, out, &err) == CP_ERR_INVALID_ARG && strstr(err.msg, "image placeholder"),
			  "query holding the image pad: \"%s\"", err.msg);
		cp_engine_close(e);
	}
}

/*
 * test_reduced_depth
 *		A Qwen2.5-VL config whose vision depth was cut (as in the real-shape
 *		check) keeps the real fullatt_block_indexes: transformers ignores
 *		the ones past the last block, so must the engine; a negative index
 *		is still refused.
 */
static void
test_reduced_depth(json_t *c25)
{
	json_t	   *cfg = json_deep_copy(c25);
	json_t	   *v = json_object_get(cfg, "vision_config");
	CpModelConfig mc;
	CpError		err = {0};
	char	   *text;
	CpStatus	st;

	json_object_set_new(v, "depth", json_integer(1));
	json_object_set_new(v, "fullatt_block_indexes", json_pack("[iiii]", 7, 15, 23, 31));
	text = json_dumps(cfg, 0);
	st = cp_config_parse(text, NULL, NULL, NULL, &mc, &err);
	CHECK(st == CP_OK && mc.qwen.depth == 1 && mc.qwen.n_fullatt == 4,
		  "depth 1 with fullatt_block_indexes [7, 15, 23, 31]: %s \"%s\"", cp_status_name(st), err.msg);
	free(text);
	json_object_set_new(v, "fullatt_block_indexes", json_pack("[i]", -1));
	text = json_dumps(cfg, 0);
	expect_refused("negative fullatt index", text, CP_ERR_FORMAT, "fullatt_block_indexes");
	free(text);
	json_decref(cfg);
}

int
main(void)
{
	json_error_t jerr;
	json_t	   *manifest = json_load_file(QDIR "manifest.json", 0, &jerr);
	json_t	   *c2 = json_load_file(QDIR "models/colqwen2-hub2024/config.json", 0, &jerr);
	json_t	   *c25 = json_load_file(QDIR "models/colqwen2_5-hub2024/config.json", 0, &jerr);

	CHECK(manifest && c2 && c25, "fixtures: %s", jerr.text);
	if (manifest && c2 && c25)
	{
		json_t	   *goldens = json_object_get(manifest, "goldens");

		test_model_config(QDIR "models/colqwen2-hub2024", CP_ARCH_QWEN2_VL, c2);
		test_model_config(QDIR "models/colqwen2-t5", CP_ARCH_QWEN2_VL, c2);
		test_model_config(QDIR "models/colqwen2_5-hub2024", CP_ARCH_QWEN2_5_VL, c25);
		test_model_config(QDIR "models/colqwen2_5-t5", CP_ARCH_QWEN2_5_VL, c25);
		test_model_config(QDIR "models/colqwen2-native", CP_ARCH_QWEN2_VL, c2);
		test_model_config(QDIR "models/colqwen2_5-native", CP_ARCH_QWEN2_5_VL, c25);
		test_prompts(QDIR "models/colqwen2-hub2024", json_object_get(goldens, "colqwen2"));
		test_prompts(QDIR "models/colqwen2_5-hub2024", json_object_get(goldens, "colqwen2_5"));
		test_reduced_depth(c25);
	}
	test_refusals();
	json_decref(manifest);
	json_decref(c2);
	json_decref(c25);
	if (failures)
	{
		printf("test_qwen_config: %d failure(s) of %d checks\n", failures, checks);
		return 1;
	}
	printf("test_qwen_config: ok (%d checks)\n", checks);
	return 0;
}
