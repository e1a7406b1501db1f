/*
 * model.h
 *	  The ColPali model (PaliGemma: SigLIP vision tower, projector, Gemma
 *	  decoder with bidirectional attention, 128-d head) written against the
 *	  backend operations of backend.h only.  See docs/encoder.md#forward.
 */
#ifndef CP_MODEL_H
#define CP_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "colpali_engine.h"
#include "config.h"
#include "weights.h"

typedef struct CpModel CpModel;

/*
 * Find every tensor (any layout of docs/encoder.md#tensor-names, by suffix), check
 * its shape against cfg and upload it to be.  w and be must outlive the
 * model.  Errors name the missing or mis-shaped tensor.
 */
extern CpStatus cp_model_load(const CpModelConfig *cfg, const CpWeights *w,
							  CpBackend *be, CpModel **out, CpError *err);
extern void cp_model_free(CpModel *m);

/* Gemma attention causal (true) or bidirectional (false, the default). */
extern void cp_model_set_causal(CpModel *m, bool causal);

/*
 * Run B sequences of padded length T through the model.
 *	ids		[B*T] token ids (padding positions hold any valid id)
 *	lens	[B] valid lengths (NULL = all T); padding keys are masked
 *	pixels	[B*3*H*W] pixel values (H = W = image size) or NULL when no
 *			sequence holds image tokens; sequence b must then hold exactly
 *			num_image_tokens image tokens, filled with image b's features
 *	out		[B*T*embedding_dim] host floats: L2-normalised rows; rows past
 *			a sequence's length are left zero
 * cancel is polled between layers.
 */
extern CpStatus cp_model_forward(CpModel *m, int B, int T, const int32_t *ids,
								 const int *lens, const float *pixels,
								 float *out, CpCancelFn cancel,
								 void *cancel_arg, CpError *err);

/*
 * Optional per-stage tracing (tests compare each stage with the PyTorch
 * goldens): called after each stage with the activation view, rows x cols.
 * Stages: "vision_embeddings", "vision_layer" (layer = N),
 * "vision_post_layernorm", "projector", "text_inputs_embeds", "text_layer"
 * (layer = N), "text_final_norm".
 */
typedef void (*CpTraceFn) (void *arg, const char *stage, int layer,
						   CpBackend *be, CpView v, int rows, int cols);
extern void cp_model_set_trace(CpModel *m, CpTraceFn fn, void *arg);

/* The model of an open engine (engine.c; for tests and tracing). */
extern CpModel *cp_engine_model(CpEngine *engine);

#endif							/* CP_MODEL_H */
