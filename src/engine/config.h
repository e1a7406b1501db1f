/*
 * config.h
 *	  Hyper-parameters and processor settings read from a checkpoint folder:
 *	  config.json, preprocessor_config.json, processor_config.json
 *	  (all optional except config.json; defaults as transformers).  Nothing
 *	  about the model shape is hard-coded elsewhere.
 */
#ifndef CP_CONFIG_H
#define CP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "cp_status.h"
#include "image_qwen.h"

/* MLP activations found in configs */
#define CP_ACT_GELU_TANH 0		/* gelu_pytorch_tanh, gelu_new, gelu_fast; Gemma's "gelu" */
#define CP_ACT_GELU_ERF 1		/* exact gelu ("gelu" in SigLIP) */
#define CP_ACT_SILU 2			/* silu (Qwen2 MLPs, Qwen2.5-VL vision) */
#define CP_ACT_QUICK_GELU 3		/* x * sigmoid(1.702 x) (Qwen2-VL vision) */

/* The model family, always from config.json (docs/encoder.md#colqwen2-layouts). */
typedef enum CpArchitecture
{
	CP_ARCH_PALIGEMMA = 0,		/* ColPali */
	CP_ARCH_QWEN2_VL,			/* ColQwen2 */
	CP_ARCH_QWEN2_5_VL			/* ColQwen2.5 */
} CpArchitecture;

#define CP_QWEN_MAX_FULLATT 64

/* Qwen2-VL / Qwen2.5-VL vision tower and what only that family has. */
typedef struct CpQwenConfig
{
	int			depth;			/* vision blocks: 32 */
	int			vision_hidden;	/* embed_dim (2-VL) / hidden_size (2.5-VL): 1280 */
	int			vision_intermediate;	/* embed_dim * mlp_ratio / intermediate_size */
	int			vision_heads;	/* 16 */
	int			vision_head_dim;	/* vision_hidden / vision_heads */
	int			vision_act;		/* CP_ACT_QUICK_GELU (2-VL), CP_ACT_SILU (2.5-VL) */
	int			window_size;	/* 2.5-VL: 112 pixels; 0 = no window attention */
	int			fullatt_block_indexes[CP_QWEN_MAX_FULLATT];	/* 2.5-VL */
	int			n_fullatt;
	int			mrope_section[3];	/* t, h, w rotary pairs: 16, 24, 24 */
	int			vision_start_token_id;
	int			vision_end_token_id;
	int64_t		checkpoint_max_pixels;	/* preprocessor_config.json max_pixels */
	CpQwenImageConfig image;	/* max_pixels = the engine's default budget */
} CpQwenConfig;

typedef struct CpVisionConfig
{
	int			hidden_size;	/* 1152 */
	int			intermediate_size;	/* 4304 */
	int			num_layers;		/* 27 */
	int			num_heads;		/* 16 */
	int			head_dim;		/* hidden_size / num_heads = 72 */
	int			image_size;		/* 448 */
	int			patch_size;		/* 14 */
	int			num_channels;	/* 3 */
	int			num_patches;	/* (image_size / patch_size)^2 = 1024 */
	float		layer_norm_eps; /* 1e-6 */
	int			hidden_act;		/* CP_ACT_GELU_TANH */
} CpVisionConfig;

typedef struct CpTextConfig
{
	int			hidden_size;	/* 2048 */
	int			intermediate_size;	/* 16384 */
	int			num_layers;		/* 18 */
	int			num_heads;		/* 8 */
	int			num_kv_heads;	/* 1 */
	int			head_dim;		/* 256 */
	int			vocab_size;		/* 257216 */
	float		rms_norm_eps;	/* 1e-6 */
	float		rope_theta;		/* 10000 */
	int			hidden_act;		/* CP_ACT_GELU_TANH */
} CpTextConfig;

typedef struct CpImageConfig
{
	int			width;			/* resize target, 448 */
	int			height;
	int			resample;		/* PIL code, 3 = BICUBIC */
	bool		do_resize;
	bool		do_rescale;
	bool		do_normalize;
	bool		do_convert_rgb;
	double		rescale_factor; /* 1/255; double: HF rescales in float64 */
	float		mean[3];		/* 0.5 */
	float		std[3];			/* 0.5 */
} CpImageConfig;

typedef struct CpPromptConfig
{
	char		query_prefix[256];	/* "Question: " (transformers' ColPaliProcessor
									 * default), or processor_config.json */
	char		visual_prompt_prefix[256];	/* "Describe the image." */
	int			query_augmentation_tokens;	/* 10 pad tokens appended */
	char		query_augmentation_token[32];	/* tokenizer's pad token, "<pad>" */
	/* the chosen prompt format (prompt_format.c; set at engine open) */
	char		query_before[1024]; /* a query prompt is query_before + text */
	char		query_after[1024];	/* + query_after */
	int			page_bos;		/* ColPali: <bos> before the page instruction */
	bool		format_set;		/* false: the fields above are unset, the
								 * builders use the trained format */
} CpPromptConfig;

typedef struct CpModelConfig
{
	CpArchitecture arch;
	char		model_type[64];		/* "colpali" (ColPaliForRetrieval) */
	CpVisionConfig vision;
	CpTextConfig text;
	int			projector_dim;		/* multi-modal projector output = text hidden */
	int			embedding_dim;		/* 128 */
	int			image_token_id;		/* 257152 */
	int			pad_token_id;		/* 0 */
	int			bos_token_id;		/* 2 */
	int			num_image_tokens;	/* = vision.num_patches */
	bool		bidirectional;		/* use_bidirectional_attention (unset = true) */
	CpImageConfig image;		/* ColPali */
	CpPromptConfig prompt;
	CpQwenConfig qwen;			/* ColQwen2 / ColQwen2.5 only */
} CpModelConfig;

/*
 * Read dir/config.json (+ preprocessor_config.json, processor_config.json,
 * tokenizer_config.json when present).  Keys absent from the files get the
 * values transformers would use; inconsistent values (heads that do not
 * divide the width, a processor size other than the vision image size, an
 * image_seq_length other than (image_size / patch_size)^2, ...) are
 * CP_ERR_SHAPE, wrong JSON types CP_ERR_FORMAT, other model families
 * CP_ERR_UNSUPPORTED.
 */
extern CpStatus cp_config_load(const char *dir, CpModelConfig *cfg, CpError *err);

/*
 * For a LoRA adapter folder (or any folder lacking some files): each file is
 * read from dir when present there, else from base_dir (NULL: the adapter's
 * base_model_name_or_path when it is a local folder).  Processor settings
 * and prompts thus come from the adapter repository, as ColPaliProcessor.
 * from_pretrained(adapter) would read them, and config.json from the base.
 */
extern CpStatus cp_config_load_with_base(const char *dir, const char *base_dir,
										 CpModelConfig *cfg, CpError *err);

/* Same from JSON texts in memory (NULL = file absent); for tests/fuzzing. */
extern CpStatus cp_config_parse(const char *config_json,
								const char *preprocessor_json,
								const char *processor_json,
								const char *tokenizer_config_json,
								CpModelConfig *cfg, CpError *err);

#endif							/* CP_CONFIG_H */
