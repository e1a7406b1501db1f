/*
 * model_qwen2vl.h
 *	  The ColQwen2 / ColQwen2.5 model's own entry (model_qwen2vl.c): one
 *	  sequence, a page with its patch grid or a query.
 */
#ifndef CP_MODEL_QWEN2VL_H
#define CP_MODEL_QWEN2VL_H

#include <stdint.h>

#include "model.h"

/*
 * Encode ids [n] (a page prompt from cp_build_qwen_image_prompt with the
 * pixel rows of cp_qwen_image_preprocess and their grid, or a query with
 * pixels NULL) into out [n, embedding_dim]: every row of the prompt,
 * L2-normalised.  Positions are computed here (cp_qwen_position_ids).
 */
extern CpStatus cp_qwen_model_encode(CpModel *m, const int32_t *ids, int n,
									 const float *pixels, int grid_h,
									 int grid_w, float *out, CpCancelFn cancel,
									 void *cancel_arg, CpError *err);

#endif							/* CP_MODEL_QWEN2VL_H */
