/*
 * engine.c
 *	  The public entry points of colpali_engine.h: open a checkpoint folder
 *	  (config, tokenizer, weights, backend, model), and encode pages and
 *	  queries in batches.
 *
 * Devices.  CP_DEVICE_CPU uses backend_cpu.c.  CP_DEVICE_CUDA loads the
 * CUDA backend from a separate shared library (colpali_cuda.so, found by
 * backend_loader.c) with dlopen and calls its CP_CUDA_BACKEND_SYMBOL; when
 * that library or a GPU is absent, CUDA gives CP_ERR_UNSUPPORTED and AUTO
 * falls back to the CPU.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "backend_loader.h"
#include "colpali_engine.h"
#include "config.h"
#include "image.h"
#include "model.h"
#include "prompt.h"
#include "tokenizer.h"
#include "weights.h"

#include "engine_internal.h"


/*
 * file_exists
 *		True if dir/name is a regular file.
 */
static bool
file_exists(const char *dir, const char *name)
{
	char		path[PATH_MAX];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int) sizeof(path))
		return false;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * open_cuda_backend
 *		Load colpali_cuda.so and create its backend (backend_loader.c).
 */
static CpStatus
open_cuda_backend(CpEngine *e, const CpBackendOptions *bo, CpError *err)
{
	return cp_backend_load_cuda(NULL, bo, &e->cuda_lib, &e->be, err);
}

/*
 * cp_engine_open
 *		Load everything needed to encode; see colpali_engine.h.
 */
CpStatus
cp_engine_open(const CpEngineOptions *opts, CpEngine **engine, CpError *err)
{
	CpEngine   *e;
	const char *cfg_dir;
	const char *tok_dir;
	const char *base_dir;
	char		base_buf[PATH_MAX];
	char		path[PATH_MAX];
	CpBackendOptions bo;
	CpStatus	st;
	bool		qwen;

	*engine = NULL;
	if (opts == NULL || opts->model_dir == NULL || opts->model_dir[0] == '\0')
		return cp_error(err, CP_ERR_INVALID_ARG, "no model directory given");
	e = calloc(1, sizeof(CpEngine));
	if (e == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	e->cancel = opts->cancel;
	e->cancel_arg = opts->cancel_arg;
	e->max_image_pixels = opts->max_image_pixels;

	/*
	 * a LoRA adapter folder may lack config.json / tokenizer.json: use the
	 * base's, given or resolved from the adapter's base_model_name_or_path
	 */
	base_dir = opts->base_model_dir;
	if ((base_dir == NULL || base_dir[0] == '\0') &&
		cp_adapter_base_dir(opts->model_dir, base_buf, sizeof(base_buf)))
		base_dir = base_buf;
	if (base_dir != NULL && base_dir[0] == '\0')
		base_dir = NULL;
	cfg_dir = opts->model_dir;
	if (!file_exists(cfg_dir, "config.json") && base_dir != NULL)
		cfg_dir = base_dir;
	tok_dir = opts->model_dir;
	if (!file_exists(tok_dir, "tokenizer.json") && base_dir != NULL)
		tok_dir = base_dir;

	st = cp_config_load(cfg_dir, &e->cfg, err);
	if (st != CP_OK)
		goto fail;
	qwen = (e->cfg.arch != CP_ARCH_PALIGEMMA);
	if (qwen)
	{
		/* pages at most the trained budget of visual tokens by default */
		if (opts->max_visual_tokens < 0 || opts->max_visual_tokens > 65536)
		{
			st = cp_error(err, CP_ERR_INVALID_ARG, "max_visual_tokens %d is out of range", opts->max_visual_tokens);
			goto fail;
		}
		e->cfg.qwen.image.max_pixels =
			cp_qwen_max_pixels(&e->cfg.qwen.image, e->cfg.qwen.checkpoint_max_pixels,
							   opts->max_visual_tokens > 0 ? opts->max_visual_tokens : CP_QWEN_TRAINED_VISUAL_TOKENS);
		if (e->cfg.qwen.image.max_pixels < e->cfg.qwen.image.min_pixels)
			e->cfg.qwen.image.max_pixels = e->cfg.qwen.image.min_pixels;
	}
	else if (e->cfg.image.width != e->cfg.vision.image_size ||
			 e->cfg.image.height != e->cfg.vision.image_size)
	{
		st = cp_error(err, CP_ERR_SHAPE,
					  "image processor size %dx%d differs from the vision tower's %d",
					  e->cfg.image.width, e->cfg.image.height,
					  e->cfg.vision.image_size);
		goto fail;
	}
	if (snprintf(path, sizeof(path), "%s/tokenizer.json", tok_dir) >= (int) sizeof(path))
	{
		st = cp_error(err, CP_ERR_INVALID_ARG, "model path too long");
		goto fail;
	}
	st = cp_tokenizer_load(path, &e->tok, err);
	if (st != CP_OK)
		goto fail;
	st = cp_prompt_apply_format(&e->cfg, opts->query_format, opts->query_prefix,
								opts->query_suffix, opts->page_format,
								opts->page_prompt, e->query_format,
								e->page_format, sizeof(e->query_format), err);
	if (st != CP_OK)
		goto fail;
	/* ColQwen pages have a prompt per grid (engine_qwen.c) */
	if (!qwen)
	{
		st = cp_build_image_prompt(e->tok, &e->cfg, &e->page_ids, &e->page_len, err);
		if (st != CP_OK)
			goto fail;
		e->page_rows = e->page_len;
		e->visual_tokens = e->cfg.num_image_tokens;
	}
	else
	{
		int32_t    *ids = NULL;
		int			n = 0;

		/* the prompt's text rows, plus the most visual tokens of a page */
		st = cp_build_qwen_image_prompt(e->tok, &e->cfg, 1, &ids, &n, err);
		free(ids);
		if (st != CP_OK)
			goto fail;
		{
			int64_t		cell = (int64_t) e->cfg.qwen.image.patch_size * e->cfg.qwen.image.merge_size;

			e->visual_tokens = (int) (e->cfg.qwen.image.max_pixels / (cell * cell));
		}
		e->page_rows = n - 1 + e->visual_tokens;
	}
	e->bf16_requested = (opts->cpu_precision == CP_PRECISION_BF16);
	st = cp_weights_open(opts->model_dir, opts->base_model_dir, &e->weights, err);
	if (st != CP_OK)
		goto fail;

	memset(&bo, 0, sizeof(bo));
	bo.threads = opts->threads;
	/*
	 * bf16/f16 matrices stay mapped and are converted tile by tile: half
	 * the resident memory of fp32 copies, shared through the page cache
	 * between backends, for ~5-10% more CPU time
	 * (bench/results/encoder.md).
	 */
	bo.lazy_convert = (opts->cpu_weights != CP_WEIGHTS_FP32);
	bo.bf16_matmul = (opts->cpu_precision == CP_PRECISION_BF16);
	bo.no_amx = opts->cpu_no_amx;
	/* the CUDA backend lacks the Qwen2-VL family's ops: AUTO stays on the CPU */
	if (opts->device == CP_DEVICE_CUDA || (opts->device == CP_DEVICE_AUTO && !qwen))
	{
		CpError		cuda_err;

		st = open_cuda_backend(e, &bo, &cuda_err);
		if (st != CP_OK)
		{
			e->cuda_lib = NULL;
			e->be = NULL;
			if (opts->device == CP_DEVICE_CUDA)
			{
				*err = cuda_err;
				goto fail;
			}
		}
	}
	if (e->be == NULL)
	{
		st = cp_backend_cpu_create(&bo, &e->be, err);
		if (st != CP_OK)
			goto fail;
	}
	e->max_batch = opts->max_batch > 0 ? opts->max_batch :
		(e->cuda_lib != NULL ? CP_CUDA_PAGE_BATCH : CP_CPU_PAGE_BATCH);

	st = cp_model_load(&e->cfg, e->weights, e->be, &e->model, err);
	if (st != CP_OK)
		goto fail;
	if (opts->attention != CP_ATTENTION_AUTO && !qwen)
		cp_model_set_causal(e->model, opts->attention == CP_ATTENTION_CAUSAL);
	*engine = e;
	return CP_OK;

fail:
	cp_engine_close(e);
	return st;
}

/*
 * cp_engine_close
 *		Free everything (NULL is a no-op).
 */
void
cp_engine_close(CpEngine *e)
{
	if (e == NULL)
		return;
	cp_model_free(e->model);
	if (e->be)
		e->be->destroy(e->be);
	cp_backend_unload(e->cuda_lib);
	cp_weights_close(e->weights);
	cp_tokenizer_free(e->tok);
	free(e->page_ids);
	free(e);
}

/*
 * cp_engine_set_cancel
 *		Replace the cancel callback.
 */
void
cp_engine_set_cancel(CpEngine *e, CpCancelFn cancel, void *arg)
{
	e->cancel = cancel;
	e->cancel_arg = arg;
}

/*
 * free_outputs
 *		Free out[0..n) after a failure, so that the caller frees nothing.
 */
static void
free_outputs(CpEmbedding *out, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		cp_embedding_free(&out[i]);
}

/*
 * split_rows
 *		Copy B sequences of [T, E] rows (first lens[b] rows) into fresh
 *		embeddings out[0..B).
 */
static CpStatus
split_rows(const float *rows, int B, int T, const int *lens, int E,
		   CpEmbedding *out, CpError *err)
{
	int			b;

	for (b = 0; b < B; b++)
	{
		int			L = lens ? lens[b] : T;

		out[b].nvec = L;
		out[b].dim = E;
		out[b].data = malloc(sizeof(float) * (size_t) L * E);
		if (out[b].data == NULL)
		{
			free_outputs(out, b);
			return cp_error(err, CP_ERR_NOMEM, "out of memory");
		}
		memcpy(out[b].data, rows + (size_t) b * T * E, sizeof(float) * (size_t) L * E);
	}
	return CP_OK;
}

/*
 * cp_engine_encode_images
 *		Preprocess and encode n pages, max_batch at a time.
 */
CpStatus
cp_engine_encode_images(CpEngine *e, int n, const uint8_t *const *bytes,
						const size_t *lengths, CpEmbedding *out, CpError *err)
{
	const CpModelConfig *c = &e->cfg;
	size_t		npix = (size_t) 3 * c->image.height * c->image.width;
	int			T = e->page_len,
				E = c->embedding_dim;
	int			maxb = n < e->max_batch ? n : e->max_batch;
	float	   *pixels = NULL,
			   *rows = NULL;
	int32_t    *ids = NULL;
	int			done = 0,
				b;
	CpStatus	st = CP_OK;

	if (n <= 0)
		return CP_OK;
	if (c->arch != CP_ARCH_PALIGEMMA)
		return cp_engine_qwen_encode_images(e, n, bytes, lengths, out, err);
	if (c->vision.num_channels != 3)
		return cp_error(err, CP_ERR_UNSUPPORTED, "vision tower with %d channels",
						c->vision.num_channels);
	memset(out, 0, sizeof(CpEmbedding) * n);
	pixels = malloc(sizeof(float) * npix * maxb);
	rows = malloc(sizeof(float) * (size_t) T * E * maxb);
	ids = malloc(sizeof(int32_t) * (size_t) T * maxb);
	if (pixels == NULL || rows == NULL || ids == NULL)
	{
		st = cp_error(err, CP_ERR_NOMEM, "out of memory");
		goto done;
	}
	for (b = 0; b < maxb; b++)
		memcpy(ids + (size_t) b * T, e->page_ids, sizeof(int32_t) * T);

	while (done < n)
	{
		int			B = (n - done < maxb) ? n - done : maxb;

		for (b = 0; b < B; b++)
		{
			st = cp_image_preprocess(bytes[done + b], lengths[done + b], &c->image,
									 e->max_image_pixels, pixels + (size_t) b * npix, err);
			if (st != CP_OK)
				goto done;
		}
		st = cp_model_forward(e->model, B, T, ids, NULL, pixels, rows,
							  e->cancel, e->cancel_arg, err);
		if (st != CP_OK)
			goto done;
		st = split_rows(rows, B, T, NULL, E, out + done, err);
		if (st != CP_OK)
			goto done;
		done += B;
	}

done:
	if (st != CP_OK)
		free_outputs(out, done);
	free(pixels);
	free(rows);
	free(ids);
	return st;
}

/*
 * cp_engine_encode_queries
 *		Tokenise n queries and encode them in padded batches.
 */
CpStatus
cp_engine_encode_queries(CpEngine *e, int n, const char *const *texts,
						 CpEmbedding *out, CpError *err)
{
	int			E = e->cfg.embedding_dim;
	int32_t   **qids;
	int		   *qlen;
	int			done = 0,
				batch,
				i;
	CpStatus	st = CP_OK;

	if (n <= 0)
		return CP_OK;
	if (e->cfg.arch != CP_ARCH_PALIGEMMA)
		return cp_engine_qwen_encode_queries(e, n, texts, out, err);
	memset(out, 0, sizeof(CpEmbedding) * n);
	qids = calloc(n, sizeof(int32_t *));
	qlen = calloc(n, sizeof(int));
	if (qids == NULL || qlen == NULL)
	{
		free(qids);
		free(qlen);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < n; i++)
	{
		if (texts[i] == NULL)
		{
			st = cp_error(err, CP_ERR_INVALID_ARG, "query %d is NULL", i);
			goto done;
		}
		st = cp_build_query_prompt(e->tok, &e->cfg, texts[i], strlen(texts[i]),
								   &qids[i], &qlen[i], err);
		if (st != CP_OK)
			goto done;
		if (qlen[i] > CP_MAX_QUERY_TOKENS)
		{
			st = cp_error(err, CP_ERR_LIMIT,
						  "query of %d tokens is longer than the limit of %d tokens",
						  qlen[i], CP_MAX_QUERY_TOKENS);
			goto done;
		}
		if (qlen[i] <= 0)
		{
			st = cp_error(err, CP_ERR_INVALID_ARG, "query %d has no tokens", i);
			goto done;
		}
	}

	/*
	 * On the CPU every query gets a forward pass of its own, so that its
	 * embedding is a function of its text alone: the fp32 GEMMs choose their
	 * kernel by the number of rows multiplied (our few-row kernel up to
	 * SMALL_M rows, OpenBLAS's small-matrix or blocked kernels above), and
	 * these kernels round differently, so the last bits of a query encoded
	 * in a padded batch would depend on which queries the worker batched
	 * with it.  Batching saves little there: a query's products are bound by
	 * arithmetic, not by reading the weights.  (cuBLAS also chooses by shape;
	 * the GPU keeps the batches and does not promise this.)
	 */
	batch = strcmp(e->be->name, "cpu") == 0 ? 1 : CP_QUERY_BATCH;
	while (done < n)
	{
		int			B = (n - done < batch) ? n - done : batch;
		int			T = 0,
					b;
		int32_t    *ids;
		float	   *rows;

		for (b = 0; b < B; b++)
			if (qlen[done + b] > T)
				T = qlen[done + b];
		ids = malloc(sizeof(int32_t) * (size_t) B * T);
		rows = malloc(sizeof(float) * (size_t) B * T * E);
		if (ids == NULL || rows == NULL)
		{
			free(ids);
			free(rows);
			st = cp_error(err, CP_ERR_NOMEM, "out of memory");
			goto done;
		}
		for (b = 0; b < B; b++)
		{
			int			t;

			memcpy(ids + (size_t) b * T, qids[done + b], sizeof(int32_t) * qlen[done + b]);
			for (t = qlen[done + b]; t < T; t++)
				ids[(size_t) b * T + t] = e->cfg.pad_token_id;
		}
		st = cp_model_forward(e->model, B, T, ids, qlen + done, NULL, rows,
							  e->cancel, e->cancel_arg, err);
		if (st == CP_OK)
			st = split_rows(rows, B, T, qlen + done, E, out + done, err);
		free(ids);
		free(rows);
		if (st != CP_OK)
			goto done;
		done += B;
	}

done:
	if (st != CP_OK)
		free_outputs(out, done);
	for (i = 0; i < n; i++)
		free(qids[i]);
	free(qids);
	free(qlen);
	return st;
}

/*
 * cp_embedding_free
 *		Free an embedding's rows (the struct itself belongs to the caller).
 */
void
cp_embedding_free(CpEmbedding *emb)
{
	if (emb == NULL)
		return;
	free(emb->data);
	emb->data = NULL;
	emb->nvec = 0;
}

/*
 * cp_engine_model
 *		The engine's model (model.h; tests use it for tracing).
 */
CpModel *
cp_engine_model(CpEngine *e)
{
	return e->model;
}

/*
 * cp_engine_device_name
 *		"cpu" or "cuda".
 */
const char *
cp_engine_device_name(const CpEngine *e)
{
	return e->be->name;
}

/*
 * cp_engine_kernels
 *		See colpali_engine.h.
 */
const char *
cp_engine_kernels(const CpEngine *e)
{
	if (strcmp(e->be->name, "cpu") == 0)
		return cp_backend_cpu_kernels(e->be);
	return e->be->name;
}

/*
 * cp_engine_embedding_dim
 *		Width of the output vectors (128 for ColPali).
 */
int
cp_engine_embedding_dim(const CpEngine *e)
{
	return e->cfg.embedding_dim;
}

/*
 * cp_engine_model_info
 *		See colpali_engine.h.  bf16 is reported only where it is computed:
 *		the CPU backend with a bf16 GEMM kernel, or CUDA (bf16 GEMMs always).
 */
void
cp_engine_model_info(const CpEngine *e, CpModelInfo *info)
{
	const char *kernels = cp_engine_kernels(e);
	bool		cpu = (strcmp(e->be->name, "cpu") == 0);

	memset(info, 0, sizeof(CpModelInfo));
	info->architecture = e->cfg.arch == CP_ARCH_QWEN2_VL ? "ColQwen2" :
		e->cfg.arch == CP_ARCH_QWEN2_5_VL ? "ColQwen2.5" : "ColPali";
	info->embedding_dim = e->cfg.embedding_dim;
	info->page_rows = e->page_rows;
	info->visual_tokens = e->visual_tokens;
	info->query_format = e->query_format;
	info->page_format = e->page_format;
	if (!cpu)
		info->precision = "bf16";
	else
		info->precision = (e->bf16_requested &&
						   strstr(kernels, "bf16_gemm=none") == NULL) ? "bf16" : "fp32";
	info->device = cp_engine_device_name(e);
	info->kernels = kernels;
}
