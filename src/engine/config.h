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

#include "cp_status.h"

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
	char		query_prefix[256];	/* "Query: " (processor default) */
	char		visual_prompt_prefix[256];	/* "Describe the image." */
	int			query_augmentation_tokens;	/* 10 pad tokens appended */
	char		query_augmentation_token[32];	/* "<pad>" */
} CpPromptConfig;

typedef struct CpModelConfig
{
	char		model_type[64];		/* "colpali" (ColPaliForRetrieval) */
	CpVisionConfig vision;
	CpTextConfig text;
	int			projector_dim;		/* multi-modal projector output = text hidden */
	int			embedding_dim;		/* 128 */
	int			image_token_id;		/* 257152 */
	int			pad_token_id;		/* 0 */
	int			bos_token_id;		/* 2 */
	int			num_image_tokens;	/* = vision.num_patches */
	bool		bidirectional;		/* use_bidirectional_attention */
	CpImageConfig image;
	CpPromptConfig prompt;
} CpModelConfig;

/* Read dir/config.json (+ preprocessor/processor configs when present). */
extern CpStatus cp_config_load(const char *dir, CpModelConfig *cfg, CpError *err);

#endif							/* CP_CONFIG_H */
