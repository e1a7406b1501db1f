/*
 * image_qwen.h
 *	  Page preprocessing of the Qwen2-VL family (ColQwen2, ColQwen2.5),
 *	  bit-compatible with transformers' Qwen2VLImageProcessorPil on Pillow
 *	  13 as colpali-engine calls it (docs/encoder.md#colqwen2-resize,
 *	  #colqwen2-pixels): convert("RGB"), smart_resize to a multiple of
 *	  patch_size * merge_size, Pillow BICUBIC, rescale and normalise, and
 *	  the patchify into rows of 2x2 merge blocks.
 */
#ifndef CP_IMAGE_QWEN_H
#define CP_IMAGE_QWEN_H

#include <stddef.h>
#include <stdint.h>

#include "cp_status.h"

/* Qwen2-VL's image processor settings (preprocessor_config.json). */
typedef struct CpQwenImageConfig
{
	int			patch_size;		/* 14 */
	int			merge_size;		/* 2 */
	int			temporal_patch_size;	/* 2: the frame is repeated */
	int64_t		min_pixels;		/* 3136 */
	int64_t		max_pixels;		/* after cp_qwen_max_pixels() */
	double		rescale_factor; /* 1/255, applied in float64 as HF does */
	float		mean[3];		/* CLIP mean */
	float		std[3];			/* CLIP std */
} CpQwenImageConfig;

/* The visual-token budget these checkpoints were trained with. */
#define CP_QWEN_TRAINED_VISUAL_TOKENS 768

/* Defaults of Qwen2-VL's processor with CLIP mean/std (max_pixels 12845056). */
extern void cp_qwen_image_config_default(CpQwenImageConfig *cfg);

/*
 * The max_pixels the engine uses: the smaller of the checkpoint's and
 * budget_tokens visual tokens (each one (patch_size * merge_size)^2
 * pixels).  budget_tokens <= 0 keeps the checkpoint's value.
 */
extern int64_t cp_qwen_max_pixels(const CpQwenImageConfig *cfg,
								  int64_t checkpoint_max_pixels,
								  int budget_tokens);

/*
 * smart_resize with the reference's exact floating-point expression order
 * (Python's round-half-even, h / beta / factor).  Aspect ratio over 200
 * -> CP_ERR_UNSUPPORTED; non-positive sizes or factor -> CP_ERR_INVALID_ARG.
 */
extern CpStatus cp_qwen_smart_resize(int height, int width, int factor,
									 int64_t min_pixels, int64_t max_pixels,
									 int *out_height, int *out_width,
									 CpError *err);

/*
 * Decode, convert to RGB (alpha dropped), smart_resize, Pillow BICUBIC,
 * rescale, normalise and patchify.  *out (malloc'd) receives
 * grid_h * grid_w rows of 3 * temporal_patch_size * patch_size^2 floats
 * (1176), rows ordered by merge block, i.e. pixel_values of one page.
 * max_image_pixels bounds the decoded image as in cp_image_decode.
 */
extern CpStatus cp_qwen_image_preprocess(const uint8_t *bytes, size_t len,
										 const CpQwenImageConfig *cfg,
										 int64_t max_image_pixels,
										 float **out, int *grid_h,
										 int *grid_w, CpError *err);

#endif							/* CP_IMAGE_QWEN_H */
