/*
 * engine_internal.h
 *	  The engine's state, shared by engine.c (the public entry points,
 *	  ColPali's batched path) and engine_qwen.c (ColQwen2 / ColQwen2.5).
 */
#ifndef CP_ENGINE_INTERNAL_H
#define CP_ENGINE_INTERNAL_H

#include "backend.h"
#include "colpali_engine.h"
#include "config.h"
#include "model.h"
#include "tokenizer.h"
#include "weights.h"

/* Longest query prompt accepted, in tokens (attention scratch is T^2). */
#define CP_MAX_QUERY_TOKENS 2048
/* Queries encoded together (padded to the longest). */
#define CP_QUERY_BATCH 16
/* Default pages per forward pass on the CPU (bounds activation memory). */
#define CP_CPU_PAGE_BATCH 4
/* Default pages per forward pass on a GPU (activations ~0.3 GB per page). */
#define CP_CUDA_PAGE_BATCH 16

struct CpEngine
{
	CpModelConfig cfg;
	CpTokenizer *tok;
	CpWeights  *weights;
	CpBackend  *be;
	void	   *cuda_lib;		/* dlopen handle of the CUDA backend */
	CpModel    *model;
	int32_t    *page_ids;		/* page prompt, identical for every page */
	int			page_len;
	int			max_batch;
	int64_t		max_image_pixels;
	CpCancelFn	cancel;
	void	   *cancel_arg;
	/* for cp_engine_model_info */
	char		query_format[512];
	char		page_format[1024];
	bool		bf16_requested;
	int			page_rows;
	int			visual_tokens;
};

/* ColQwen2 / ColQwen2.5 pages and queries, one at a time (engine_qwen.c). */
extern CpStatus cp_engine_qwen_encode_images(CpEngine *e, int n,
											 const uint8_t *const *bytes,
											 const size_t *lengths,
											 CpEmbedding *out, CpError *err);
extern CpStatus cp_engine_qwen_encode_queries(CpEngine *e, int n,
											  const char *const *texts,
											  CpEmbedding *out, CpError *err);

#endif							/* CP_ENGINE_INTERNAL_H */
