/*
 * colpali_engine.h
 *	  Public API of the colpali engine: a PostgreSQL-free C library that
 *	  turns page images and query strings into ColPali multivectors.
 *
 * Used by the extension (src/encode.c, src/worker.c), by the CLI
 * colpali-encode (cli.c) and by the standalone tests.  Nothing here includes
 * postgres.h, exits, aborts or prints; every call returns a CpStatus.
 */
#ifndef COLPALI_ENGINE_H
#define COLPALI_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_status.h"

typedef struct CpEngine CpEngine;

/* Polled between layers; return true to stop with CP_ERR_CANCELLED. */
typedef bool (*CpCancelFn) (void *arg);

typedef enum CpDevice
{
	CP_DEVICE_AUTO = 0,			/* CUDA when available, else CPU */
	CP_DEVICE_CPU,
	CP_DEVICE_CUDA
} CpDevice;

/* How the CPU backend holds bf16/f16 matrices (F32 ones are used in place). */
typedef enum CpWeightMode
{
	CP_WEIGHTS_AUTO = 0,		/* the measured default: LAZY (engine.c) */
	CP_WEIGHTS_FP32,			/* converted to fp32 once at load */
	CP_WEIGHTS_LAZY				/* kept as mapped, converted tile by tile */
} CpWeightMode;

/*
 * Arithmetic of the CPU backend's weight GEMMs.  FP32 reproduces the
 * reference to ~1e-6; BF16 rounds the activations entering each weight GEMM
 * to bf16 (products exact, sums in fp32, everything else fp32) for about
 * twice the speed on CPUs with AVX512_BF16, and is FP32 elsewhere.
 */
typedef enum CpPrecision
{
	CP_PRECISION_FP32 = 0,
	CP_PRECISION_BF16
} CpPrecision;

/*
 * Gemma attention over the prompt.  ColPali was trained with bidirectional
 * attention (docs/encoder.md#attention), and transformers 5's ColPaliForRetrieval is
 * bidirectional when called as documented, model(**processor(...)); called
 * without the processor's token_type_ids it is causal (so are the current
 * fixture goldens).
 */
typedef enum CpAttentionMode
{
	CP_ATTENTION_AUTO = 0,		/* config's use_bidirectional_attention (unset = bidirectional) */
	CP_ATTENTION_BIDIRECTIONAL,
	CP_ATTENTION_CAUSAL
} CpAttentionMode;

/*
 * Prompt formats (docs/encoder.md#prompt-formats).  The published checkpoints
 * were trained with one prompt, and the Python packages that serve them build
 * others; no file of a checkpoint says which applies.
 */
typedef enum CpPromptFormat
{
	CP_FORMAT_TRAINED = 0,		/* what the published checkpoints were
								 * trained with (default) */
	CP_FORMAT_COLPALI_ENGINE,	/* what colpali-engine 0.3.18 builds */
	CP_FORMAT_TRANSFORMERS,		/* what transformers' native processors build */
	CP_FORMAT_CUSTOM			/* queries: query_prefix + text + query_suffix
								 * verbatim; pages: as TRAINED */
} CpPromptFormat;

typedef struct CpEngineOptions
{
	const char *model_dir;		/* checkpoint folder (config.json, *.safetensors,
								 * tokenizer.json, ...) or a LoRA adapter folder */
	const char *base_model_dir; /* base checkpoint for a LoRA adapter, or NULL */
	CpDevice	device;
	int			threads;		/* CPU threads; 0 = library default */
	int64_t		max_image_pixels;	/* decompression-bomb limit; 0 = none */
	CpCancelFn	cancel;			/* may be NULL */
	void	   *cancel_arg;
	CpWeightMode cpu_weights;	/* CPU weight handling; AUTO = default */
	int			max_batch;		/* pages per forward pass; 0 = default */
	CpAttentionMode attention;	/* Gemma attention mask; AUTO = config */
	CpPrecision cpu_precision;	/* CPU weight GEMMs: fp32 (default) or bf16 */
	int			max_visual_tokens;	/* ColQwen2: page budget in visual tokens,
									 * under the checkpoint's max_pixels;
									 * 0 = 768, the trained budget */
	CpPromptFormat query_format;	/* query prompt; TRAINED by default */
	const char *query_prefix;	/* CUSTOM: text before the query (NULL = "") */
	const char *query_suffix;	/* CUSTOM: text after the query (NULL = "") */
	CpPromptFormat page_format; /* page prompt (CUSTOM = TRAINED) */
	bool		cpu_no_amx;		/* no AMX tiles even where the CPU has them
								 * (to measure the paths CPUs without AMX
								 * take: AVX512_BF16 in bf16 precision, the
								 * AVX-512 FMA kernel in fp32) */
	const char *page_prompt;	/* instruction after the image; NULL or "" =
								 * the checkpoint's ("Describe the image.") */
} CpEngineOptions;

/* One output multivector: nvec rows of dim floats, row-major, malloc'd. */
typedef struct CpEmbedding
{
	int			nvec;
	int			dim;
	float	   *data;
} CpEmbedding;

extern CpStatus cp_engine_open(const CpEngineOptions *opts, CpEngine **engine,
							   CpError *err);
extern void cp_engine_close(CpEngine *engine);

/* Change the cancel callback (e.g. per call). */
extern void cp_engine_set_cancel(CpEngine *engine, CpCancelFn cancel, void *arg);

/*
 * Encode n page images (encoded bytes: PNG, JPEG, ...) / n query strings
 * (UTF-8).  out[i] receives a freshly allocated embedding; on failure nothing
 * needs freeing.  A batch is computed together (padded where needed).
 */
extern CpStatus cp_engine_encode_images(CpEngine *engine, int n,
										const uint8_t *const *bytes,
										const size_t *lengths,
										CpEmbedding *out, CpError *err);
extern CpStatus cp_engine_encode_queries(CpEngine *engine, int n,
										 const char *const *texts,
										 CpEmbedding *out, CpError *err);
extern void cp_embedding_free(CpEmbedding *emb);

/* Which device the engine actually runs on ("cpu" or "cuda"), model facts. */
extern const char *cp_engine_device_name(const CpEngine *engine);
extern int	cp_engine_embedding_dim(const CpEngine *engine);

/*
 * The compute kernels the engine runs, as space-separated key=value words
 * (docs/cpu-kernels.md), e.g. "gemm=openblas:SkylakeX gemm_few_rows=avx512f
 * bf16_gemm=amx-bf16 elementwise=avx512f" on the CPU, "cuda" on a GPU.
 */
extern const char *cp_engine_kernels(const CpEngine *engine);

/*
 * What an open engine computes, for model-info reports.  The strings belong
 * to the engine (valid until cp_engine_close).
 */
typedef struct CpModelInfo
{
	const char *architecture;	/* "ColPali", "ColQwen2", "ColQwen2.5" */
	int			embedding_dim;
	int			page_rows;		/* rows of a page embedding: every page
								 * (ColPali), the most at the page budget
								 * (ColQwen2) */
	int			visual_tokens;	/* image rows of such a page */
	const char *query_format;	/* e.g. "trained: Query: {query}<|endoftext|>x10" */
	const char *page_format;	/* e.g. "trained: <image>x1024<bos>Describe the image.\n" */
	const char *precision;		/* "fp32" or "bf16" (what the kernels do) */
	const char *device;			/* cp_engine_device_name */
	const char *kernels;		/* cp_engine_kernels */
} CpModelInfo;

extern void cp_engine_model_info(const CpEngine *engine, CpModelInfo *info);

#endif							/* COLPALI_ENGINE_H */
