/*
 * test_config.c
 *	  config.json / preprocessor_config.json / processor_config.json parsing.
 *	  Expected values are ColPali v1.x's (docs/encoder.md#forward and
 *	  #config-layouts) and
 *	  transformers' GemmaConfig / SiglipVisionConfig / PaliGemmaConfig
 *	  defaults (read from transformers 5.24 source).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "test_util.h"

/* vidore/colpali-v1.3-hf style (HF-native, transformers 4.x) */
static const char *hf_native =
"{\"architectures\":[\"ColPaliForRetrieval\"],\"embedding_dim\":128,\"model_type\":\"colpali\","
"\"torch_dtype\":\"bfloat16\",\"vlm_config\":{\"architectures\":[\"PaliGemmaForConditionalGeneration\"],"
"\"bos_token_id\":2,\"eos_token_id\":1,\"hidden_size\":2048,\"ignore_index\":-100,\"image_token_index\":257152,"
"\"model_type\":\"paligemma\",\"pad_token_id\":0,\"projection_dim\":2048,"
"\"text_config\":{\"hidden_size\":2048,\"intermediate_size\":16384,\"model_type\":\"gemma\",\"num_attention_heads\":8,"
"\"num_hidden_layers\":18,\"num_image_tokens\":1024,\"num_key_value_heads\":1,\"torch_dtype\":\"float32\","
"\"vocab_size\":257216},\"torch_dtype\":\"bfloat16\",\"vision_config\":{\"hidden_size\":1152,\"image_size\":448,"
"\"intermediate_size\":4304,\"model_type\":\"siglip_vision_model\",\"num_attention_heads\":16,"
"\"num_hidden_layers\":27,\"num_image_tokens\":1024,\"patch_size\":14,\"projection_dim\":2048,"
"\"projector_hidden_act\":\"gelu_fast\",\"vision_use_head\":false}}}";

/* colpali-engine merged (top-level paligemma), older key names */
static const char *engine_merged =
"{\"architectures\":[\"ColPali\"],\"model_type\":\"paligemma\",\"image_token_index\":257152,\"hidden_size\":2048,"
"\"projection_dim\":2048,\"pad_token_id\":0,\"bos_token_id\":2,"
"\"text_config\":{\"hidden_activation\":\"gelu_pytorch_tanh\",\"hidden_size\":2048,\"intermediate_size\":16384,"
"\"model_type\":\"gemma\",\"num_attention_heads\":8,\"num_hidden_layers\":18,\"num_key_value_heads\":1,"
"\"vocab_size\":257216,\"rope_theta\":10000.0},"
"\"vision_config\":{\"hidden_size\":1152,\"image_size\":448,\"intermediate_size\":4304,\"num_attention_heads\":16,"
"\"num_hidden_layers\":27,\"patch_size\":14}}";

/* transformers 5 style: image_token_id, rope_parameters, processor_config.json */
static const char *v5_config =
"{\"model_type\":\"colpali\",\"embedding_dim\":128,\"vlm_config\":{\"model_type\":\"paligemma\",\"image_token_id\":97,"
"\"projection_dim\":64,\"text_config\":{\"model_type\":\"gemma\",\"hidden_size\":64,\"intermediate_size\":128,"
"\"num_attention_heads\":4,\"num_key_value_heads\":1,\"head_dim\":16,\"num_hidden_layers\":2,\"vocab_size\":100,"
"\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":5000.0},\"rms_norm_eps\":1e-05,"
"\"use_bidirectional_attention\":true},"
"\"vision_config\":{\"model_type\":\"siglip_vision_model\",\"hidden_size\":32,\"intermediate_size\":48,"
"\"num_attention_heads\":4,\"num_hidden_layers\":2,\"image_size\":[56,56],\"patch_size\":14,\"layer_norm_eps\":1e-05}}}";
static const char *v5_processor =
"{\"image_processor\":{\"image_processor_type\":\"SiglipImageProcessorPil\",\"size\":{\"height\":56,\"width\":56},"
"\"resample\":3,\"rescale_factor\":0.00392156862745098,\"image_mean\":[0.5,0.4,0.3],\"image_std\":[0.25,0.5,1.0],"
"\"image_seq_length\":16},\"query_prefix\":\"Query: \",\"visual_prompt_prefix\":\"Describe the page.\","
"\"processor_class\":\"ColPaliProcessor\"}";

static const char *preproc_448 =
"{\"do_convert_rgb\":null,\"do_normalize\":true,\"do_rescale\":true,\"do_resize\":true,\"image_mean\":[0.5,0.5,0.5],"
"\"image_processor_type\":\"SiglipImageProcessor\",\"image_seq_length\":1024,\"image_std\":[0.5,0.5,0.5],"
"\"processor_class\":\"ColPaliProcessor\",\"resample\":3,\"rescale_factor\":0.00392156862745098,"
"\"size\":{\"height\":448,\"width\":448}}";

static void
check_colpali_3b(const CpModelConfig *c, const char *what)
{
	CHECK(c->vision.hidden_size == 1152 && c->vision.intermediate_size == 4304 && c->vision.num_layers == 27 &&
		  c->vision.num_heads == 16 && c->vision.head_dim == 72, "%s vision dims", what);
	CHECK(c->vision.image_size == 448 && c->vision.patch_size == 14 && c->vision.num_patches == 1024 &&
		  c->num_image_tokens == 1024, "%s patches", what);
	CHECK(c->vision.layer_norm_eps == 1e-6f && c->vision.hidden_act == CP_ACT_GELU_TANH, "%s vision eps/act", what);
	CHECK(c->text.hidden_size == 2048 && c->text.intermediate_size == 16384 && c->text.num_layers == 18 &&
		  c->text.num_heads == 8 && c->text.num_kv_heads == 1 && c->text.head_dim == 256, "%s text dims", what);
	CHECK(c->text.vocab_size == 257216 && c->text.rms_norm_eps == 1e-6f && c->text.rope_theta == 10000.0f &&
		  c->text.hidden_act == CP_ACT_GELU_TANH, "%s text vocab/eps/theta", what);
	CHECK(c->image_token_id == 257152 && c->pad_token_id == 0 && c->bos_token_id == 2, "%s ids", what);
	CHECK(c->projector_dim == 2048 && c->embedding_dim == 128 && c->bidirectional, "%s head", what);
}

static void
test_layouts(void)
{
	CpModelConfig c;
	CpError		err = {0};

	CHECK(cp_config_parse(hf_native, preproc_448, NULL, NULL, &c, &err) == CP_OK, "hf native: %s", err.msg);
	check_colpali_3b(&c, "hf-native");
	CHECK(strcmp(c.model_type, "colpali") == 0, "model_type");
	CHECK(c.image.width == 448 && c.image.height == 448 && c.image.resample == 3 && c.image.do_rescale &&
		  c.image.do_normalize && c.image.do_convert_rgb, "image processor");
	CHECK(fabs(c.image.rescale_factor - 1.0 / 255.0) < 1e-12 && c.image.mean[1] == 0.5f && c.image.std[2] == 0.5f,
		  "rescale/mean/std");
	CHECK(strcmp(c.prompt.query_prefix, "Question: ") == 0 &&
		  strcmp(c.prompt.visual_prompt_prefix, "Describe the image.") == 0 &&
		  strcmp(c.prompt.query_augmentation_token, "<pad>") == 0 && c.prompt.query_augmentation_tokens == 10,
		  "prompt defaults (transformers ColPaliProcessor)");

	CHECK(cp_config_parse(engine_merged, preproc_448, NULL, NULL, &c, &err) == CP_OK, "engine merged: %s", err.msg);
	check_colpali_3b(&c, "engine-merged");
	CHECK(strcmp(c.model_type, "paligemma") == 0, "model_type paligemma");
	/* no preprocessor config at all: size follows the vision tower */
	CHECK(cp_config_parse(engine_merged, NULL, NULL, NULL, &c, &err) == CP_OK && c.image.width == 448,
		  "no preprocessor: %s", err.msg);

	CHECK(cp_config_parse(v5_config, NULL, v5_processor, "{\"pad_token\":{\"content\":\"<pad>\",\"special\":true}}",
						  &c, &err) == CP_OK, "v5: %s", err.msg);
	CHECK(c.image_token_id == 97 && c.projector_dim == 64 && c.text.head_dim == 16 && c.text.num_heads == 4,
		  "v5 ids/dims");
	CHECK(c.text.rope_theta == 5000.0f && c.text.rms_norm_eps == 1e-5f && c.vision.layer_norm_eps == 1e-5f,
		  "v5 rope_parameters, eps");
	CHECK(c.vision.image_size == 56 && c.num_image_tokens == 16 && c.vision.head_dim == 8, "v5 vision");
	CHECK(c.image.width == 56 && c.image.mean[0] == 0.5f && c.image.mean[2] == 0.3f && c.image.std[0] == 0.25f,
		  "v5 image processor");
	CHECK(strcmp(c.prompt.query_prefix, "Query: ") == 0 &&
		  strcmp(c.prompt.visual_prompt_prefix, "Describe the page.") == 0 &&
		  strcmp(c.prompt.query_augmentation_token, "<pad>") == 0, "v5 prompts");
}

static void
test_defaults(void)
{
	CpModelConfig c;
	CpError		err = {0};

	/* ColPaliConfig() / PaliGemmaConfig(): built-in Gemma-2B + SigLIP at 224 */
	CHECK(cp_config_parse("{\"model_type\":\"colpali\"}", NULL, NULL, NULL, &c, &err) == CP_OK, "bare colpali: %s", err.msg);
	CHECK(c.text.hidden_size == 2048 && c.text.num_layers == 18 && c.text.intermediate_size == 16384 &&
		  c.text.num_heads == 8 && c.text.num_kv_heads == 1 && c.text.vocab_size == 257152, "paligemma text defaults");
	CHECK(c.vision.hidden_size == 1152 && c.vision.intermediate_size == 4096 && c.vision.num_layers == 27 &&
		  c.vision.num_heads == 16 && c.vision.image_size == 224 && c.vision.patch_size == 14 && c.num_image_tokens == 256,
		  "paligemma vision defaults");
	CHECK(c.image_token_id == 256000 && c.projector_dim == 2048 && c.embedding_dim == 128 && c.bidirectional,
		  "paligemma top defaults");
	CHECK(c.image.width == 224, "image size follows vision");

	/* sub-configs given as objects take their own class defaults */
	CHECK(cp_config_parse("{\"model_type\":\"paligemma\",\"image_token_index\":5,\"text_config\":{},\"vision_config\":{}}",
						  NULL, NULL, NULL, &c, &err) == CP_OK, "empty subconfigs: %s", err.msg);
	CHECK(c.text.hidden_size == 3072 && c.text.intermediate_size == 24576 && c.text.num_layers == 28 &&
		  c.text.num_heads == 16 && c.text.num_kv_heads == 16 && c.text.head_dim == 256 && c.text.vocab_size == 256000,
		  "GemmaConfig defaults");
	CHECK(c.vision.hidden_size == 768 && c.vision.intermediate_size == 3072 && c.vision.num_layers == 12 &&
		  c.vision.num_heads == 12 && c.vision.image_size == 224 && c.vision.patch_size == 16 &&
		  c.num_image_tokens == 196, "SiglipVisionConfig defaults");
	/* Gemma "gelu" means the tanh form; SigLIP "gelu" the exact one */
	CHECK(cp_config_parse("{\"model_type\":\"paligemma\",\"image_token_index\":5,\"text_config\":{\"hidden_act\":\"gelu\"},"
						  "\"vision_config\":{\"hidden_act\":\"gelu\"}}", NULL, NULL, NULL, &c, &err) == CP_OK &&
		  c.text.hidden_act == CP_ACT_GELU_TANH && c.vision.hidden_act == CP_ACT_GELU_ERF, "gelu names");
	CHECK(cp_config_parse("{\"model_type\":\"paligemma\",\"image_token_index\":5,"
						  "\"text_config\":{\"use_bidirectional_attention\":false}}", NULL, NULL, NULL, &c, &err) == CP_OK &&
		  !c.bidirectional, "explicit causal flag kept");
}

static void
expect_fail(const char *what, const char *config, const char *pre, const char *proc, const char *tokc,
			CpStatus want, const char *needle)
{
	CpModelConfig c;
	CpError		err = {0};
	CpStatus	st = cp_config_parse(config, pre, proc, tokc, &c, &err);

	CHECK(st == want, "%s: got %s want %s (%s)", what, cp_status_name(st), cp_status_name(want), err.msg);
	CHECK(needle == NULL || strstr(err.msg, needle), "%s: message \"%s\" lacks \"%s\"", what, err.msg, needle);
}

static void
test_errors(void)
{
	expect_fail("missing", NULL, NULL, NULL, NULL, CP_ERR_NOT_FOUND, "config.json");
	expect_fail("not json", "{", NULL, NULL, NULL, CP_ERR_FORMAT, "JSON");
	expect_fail("array", "[1]", NULL, NULL, NULL, CP_ERR_FORMAT, "object");
	expect_fail("qwen3", "{\"model_type\":\"qwen3_vl\"}", NULL, NULL, NULL, CP_ERR_UNSUPPORTED, "qwen3_vl");
	/* ColQwen2 is recognised (test_qwen_config.c); without M-RoPE it is malformed */
	expect_fail("qwen2_vl without mrope", "{\"model_type\":\"qwen2_vl\"}", NULL, NULL, NULL, CP_ERR_FORMAT, "mrope_section");
	expect_fail("no model_type", "{}", NULL, NULL, NULL, CP_ERR_UNSUPPORTED, "model_type");
	expect_fail("vlm not paligemma", "{\"model_type\":\"colpali\",\"vlm_config\":{\"model_type\":\"qwen2_vl\"}}",
				NULL, NULL, NULL, CP_ERR_UNSUPPORTED, "qwen2_vl");
	expect_fail("string dim", "{\"model_type\":\"paligemma\",\"text_config\":{\"hidden_size\":\"2048\"}}",
				NULL, NULL, NULL, CP_ERR_FORMAT, "hidden_size");
	expect_fail("negative dim", "{\"model_type\":\"paligemma\",\"vision_config\":{\"num_hidden_layers\":-1}}",
				NULL, NULL, NULL, CP_ERR_FORMAT, "num_hidden_layers");
	expect_fail("huge dim", "{\"model_type\":\"paligemma\",\"vision_config\":{\"hidden_size\":99999999999}}",
				NULL, NULL, NULL, CP_ERR_FORMAT, "hidden_size");
	expect_fail("zero heads", "{\"model_type\":\"paligemma\",\"vision_config\":{\"num_attention_heads\":0}}",
				NULL, NULL, NULL, CP_ERR_SHAPE, "num_heads");
	expect_fail("heads do not divide", "{\"model_type\":\"paligemma\",\"vision_config\":{\"num_attention_heads\":7}}",
				NULL, NULL, NULL, CP_ERR_SHAPE, "divisible");
	expect_fail("kv heads", "{\"model_type\":\"paligemma\",\"text_config\":{\"num_attention_heads\":8,\"num_key_value_heads\":3}}",
				NULL, NULL, NULL, CP_ERR_SHAPE, "num_key_value_heads");
	expect_fail("image token outside vocab", "{\"model_type\":\"paligemma\",\"image_token_index\":300000}",
				NULL, NULL, NULL, CP_ERR_SHAPE, "image_token_index");
	expect_fail("unknown act", "{\"model_type\":\"paligemma\",\"text_config\":{\"hidden_act\":\"silu\"}}",
				NULL, NULL, NULL, CP_ERR_UNSUPPORTED, "silu");
	expect_fail("rope scaling", "{\"model_type\":\"paligemma\",\"text_config\":{\"rope_parameters\":{\"rope_type\":\"linear\",\"factor\":2}}}",
				NULL, NULL, NULL, CP_ERR_UNSUPPORTED, "linear");
	expect_fail("vision head", "{\"model_type\":\"paligemma\",\"vision_config\":{\"vision_use_head\":true}}",
				NULL, NULL, NULL, CP_ERR_UNSUPPORTED, "vision_use_head");
	expect_fail("seq length", engine_merged,
				"{\"image_seq_length\":256,\"size\":{\"height\":448,\"width\":448}}", NULL, NULL, CP_ERR_SHAPE, "image_seq_length");
	expect_fail("size mismatch", engine_merged, "{\"size\":{\"height\":224,\"width\":224}}", NULL, NULL,
				CP_ERR_SHAPE, "224x224");
	expect_fail("shortest edge", engine_merged, "{\"size\":{\"shortest_edge\":448}}", NULL, NULL,
				CP_ERR_UNSUPPORTED, "height");
	expect_fail("resample", engine_merged, "{\"resample\":2}", NULL, NULL, CP_ERR_UNSUPPORTED, "resample");
	expect_fail("mean type", engine_merged, "{\"image_mean\":[0.5,0.5]}", NULL, NULL, CP_ERR_FORMAT, "image_mean");
	expect_fail("std zero", engine_merged, "{\"image_std\":0}", NULL, NULL, CP_ERR_SHAPE, "image_std");
	expect_fail("bad processor json", engine_merged, NULL, "{\"query_prefix\":", NULL, CP_ERR_FORMAT, "processor_config.json");
	expect_fail("prefix type", engine_merged, NULL, "{\"query_prefix\":3}", NULL, CP_ERR_FORMAT, "query_prefix");
	{
		char		longp[600];

		snprintf(longp, sizeof(longp), "{\"query_prefix\":\"%0300d\"}", 0);
		expect_fail("prefix too long", engine_merged, NULL, longp, NULL, CP_ERR_LIMIT, "query_prefix");
	}
	expect_fail("pad token type", engine_merged, NULL, NULL, "{\"pad_token\":7}", CP_ERR_FORMAT, "pad_token");
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char		path[600];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
}

static void
test_load_dir(void)
{
	char		dir[] = "/tmp/cp_test_config_XXXXXX";
	CpModelConfig c;
	CpError		err = {0};
	char		cmd[100];

	if (mkdtemp(dir) == NULL)
	{
		CHECK(0, "mkdtemp");
		return;
	}
	CHECK(cp_config_load(dir, &c, &err) == CP_ERR_NOT_FOUND && strstr(err.msg, "config.json"), "empty dir: %s", err.msg);
	write_file(dir, "config.json", hf_native);
	write_file(dir, "preprocessor_config.json", preproc_448);
	write_file(dir, "processor_config.json", "{\"processor_class\":\"ColPaliProcessor\",\"query_prefix\":\"Query: \"}");
	write_file(dir, "tokenizer_config.json", "{\"pad_token\":\"<pad>\",\"add_bos_token\":true}");
	CHECK(cp_config_load(dir, &c, &err) == CP_OK, "load dir: %s", err.msg);
	check_colpali_3b(&c, "dir");
	CHECK(strcmp(c.prompt.query_prefix, "Query: ") == 0, "processor query_prefix");
	write_file(dir, "preprocessor_config.json", "{\"size\":{\"height\":447,\"width\":448}}");
	CHECK(cp_config_load(dir, &c, &err) == CP_ERR_SHAPE && strstr(err.msg, dir), "error names dir: %s", err.msg);
	{
		char		sub[600];

		/* a directory where config.json should be */
		snprintf(sub, sizeof(sub), "%s/config.json", dir);
		unlink(sub);
		mkdir(sub, 0755);
		CHECK(cp_config_load(dir, &c, &err) == CP_ERR_IO && strstr(err.msg, "regular file"), "config.json dir: %s", err.msg);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("note: could not remove %s\n", dir);
}

/*
 * Fixture checkpoints written by transformers (test/fixtures), when present:
 * the tiny models (README: SigLIP 32/80/2 layers/2 heads/56 px/patch 14;
 * Gemma 32/96/2 layers/4 heads of 16/1 KV head/vocab 2176; image token
 * 2152) and the real-shape model (ColPali widths, 1 layer per tower).
 */
static void
test_fixtures(void)
{
	static const char *models[] = {"tiny", "tiny-bf16", "tiny-f16", "tiny-hf-old", "tiny-sharded", "tiny-merged", "tiny-lora-base"};
	size_t		i;
	CpModelConfig c;
	CpError		err = {0};

	if (access("../fixtures/models/tiny/config.json", F_OK) != 0)
	{
		printf("note: ../fixtures/models not present, fixture configs skipped\n");
		return;
	}
	for (i = 0; i < sizeof(models) / sizeof(models[0]); i++)
	{
		char		dir[256];

		snprintf(dir, sizeof(dir), "../fixtures/models/%s", models[i]);
		if (cp_config_load(dir, &c, &err) != CP_OK)
		{
			CHECK(0, "fixture %s: %s", dir, err.msg);
			continue;
		}
		CHECK(c.vision.hidden_size == 32 && c.vision.intermediate_size == 80 && c.vision.num_layers == 2 &&
			  c.vision.num_heads == 2 && c.vision.head_dim == 16 && c.vision.image_size == 56 &&
			  c.vision.patch_size == 14 && c.num_image_tokens == 16, "fixture %s vision", models[i]);
		CHECK(c.text.hidden_size == 32 && c.text.intermediate_size == 96 && c.text.num_layers == 2 &&
			  c.text.num_heads == 4 && c.text.head_dim == 16 && c.text.num_kv_heads == 1 &&
			  c.text.vocab_size == 2176, "fixture %s text", models[i]);
		CHECK(c.image_token_id == 2152 && c.embedding_dim == 128 && c.image.width == 56 && c.image.height == 56,
			  "fixture %s ids/processor", models[i]);
		CHECK(strcmp(c.prompt.query_prefix, strcmp(models[i], "tiny-f16") == 0 ? "Query: " : "Question: ") == 0,
			  "fixture %s query prefix \"%s\"", models[i], c.prompt.query_prefix);
	}
	CHECK(cp_config_load("../fixtures/models/tiny-lora", &c, &err) == CP_ERR_NOT_FOUND, "adapter folder has no config.json");
	/* adapter: config.json from the base (given, or found as a sibling) */
	CHECK(cp_config_load_with_base("../fixtures/models/tiny-lora", "../fixtures/models/tiny-lora-base", &c, &err) == CP_OK &&
		  c.num_image_tokens == 16 && c.image_token_id == 2152, "adapter + base: %s", err.msg);
	CHECK(cp_config_load_with_base("../fixtures/models/tiny-lora", NULL, &c, &err) == CP_OK && c.text.hidden_size == 32,
		  "adapter, base from adapter_config.json: %s", err.msg);
	CHECK(cp_config_load_with_base("../fixtures/models/tiny", NULL, &c, &err) == CP_OK, "plain folder with_base: %s", err.msg);
	CHECK(cp_config_load("../fixtures/realshape", &c, &err) == CP_OK, "realshape: %s", err.msg);
	CHECK(c.vision.hidden_size == 1152 && c.vision.intermediate_size == 4304 && c.vision.num_layers == 1 &&
		  c.vision.head_dim == 72 && c.num_image_tokens == 1024 && c.text.hidden_size == 2048 &&
		  c.text.intermediate_size == 16384 && c.text.num_layers == 1 && c.text.vocab_size == 257216 &&
		  c.image_token_id == 2152 && c.image.width == 448, "realshape values");
	printf("fixture configs checked: %zu + realshape\n", sizeof(models) / sizeof(models[0]));
}

int
main(void)
{
	test_layouts();
	test_defaults();
	test_errors();
	test_load_dir();
	test_fixtures();
	if (failures)
	{
		printf("test_config: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_config: ok\n");
	return 0;
}
