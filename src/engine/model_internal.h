/*
 * model_internal.h
 *	  What the architecture-independent model code (model.c) shares with
 *	  each architecture's definition (model_paligemma.c, ...): the CpModel
 *	  structure, the table of an architecture's entry points, and helpers
 *	  for loading weights, workspace buffers, cancellation and tracing.
 */
#ifndef CP_MODEL_INTERNAL_H
#define CP_MODEL_INTERNAL_H

#include "model.h"

/* Workspace slots an architecture may use (see cp_model_workspace). */
#define CP_MODEL_MAX_WORKSPACE 32

/*
 * An architecture: its weights live in m->arch_state.
 *	load	find, check and upload every weight of m->cfg from w
 *	free	release them (m->arch_state may be partly filled)
 *	forward	B sequences of T ids (input checked, image rows mapped into
 *			m->image_rows by model.c) -> *emb, a [B*T, embedding_dim]
 *			backend view of L2-normalised rows (rows past a sequence's
 *			length may hold anything)
 */
typedef struct CpArch
{
	const char *name;
	CpStatus	(*load) (CpModel *m, const CpWeights *w, CpError *err);
	void		(*free) (CpModel *m);
	CpStatus	(*forward) (CpModel *m, int B, int T, const int32_t *ids,
							const int *lens, const float *pixels, CpView *emb,
							CpCancelFn cancel, void *cancel_arg, CpError *err);
} CpArch;

extern const CpArch cp_arch_paligemma;
extern const CpArch cp_arch_qwen2vl;	/* ColQwen2 and ColQwen2.5 */

struct CpModel
{
	CpModelConfig cfg;
	CpBackend  *be;
	const CpArch *arch;
	void	   *arch_state;		/* the architecture's weights */
	bool		causal;			/* text attention causal (cp_model_set_causal) */
	CpTraceFn	trace;
	void	   *trace_arg;
	/* activation buffers, grown on demand and reused across calls */
	CpBuf	   *ws[CP_MODEL_MAX_WORKSPACE];
	size_t		ws_n[CP_MODEL_MAX_WORKSPACE];
	/* rows of the <image> tokens, in order: row b*N+k of the image features
	 * goes to position image_rows[b*N+k] of the flattened batch */
	int		   *image_rows;
	int			n_image_rows;
	int			image_rows_cap;
};

/*
 * Find the first of ncand candidate names (printf formats taking layer),
 * check its shape, upload it as kind.  Errors name the tensor.
 */
extern CpStatus cp_model_load_tensor(CpModel *m, const CpWeights *w,
									 const char *const *cands, int ncand,
									 int layer, int ndim, const int64_t *shape,
									 CpWeightKind kind, CpBuf **out,
									 CpError *err);

/* Free n buffers of the backend (NULL ones skipped). */
extern void cp_model_free_buffers(CpBackend *be, CpBuf **bufs, int n);

/* Workspace slot with at least n floats, as a view at offset 0. */
extern CpStatus cp_model_workspace(CpModel *m, int slot, size_t n, CpView *v,
								   CpError *err);

/* Poll the cancel callback. */
static inline bool
cp_model_cancelled(CpCancelFn cancel, void *arg)
{
	return cancel != NULL && cancel(arg);
}

/*
 * Token embeddings of ids (R rows of D), times scale, with the image
 * features img scattered into the rows of m->image_rows (img may be NULL
 * when there are none).
 */
extern CpStatus cp_model_embed_tokens(CpModel *m, CpView x, CpBuf *table,
									  const int32_t *ids, int R, int D,
									  float scale, const CpView *img,
									  CpError *err);

/* Call the trace callback (stage, layer) when one is installed. */
#define CP_TRACE(m, stage, layer, v, rows, cols) \
	do { if ((m)->trace) (m)->trace((m)->trace_arg, stage, layer, (m)->be, v, rows, cols); } while (0)

/* Run a backend op; on failure copy its message and return its status. */
#define CP_OP(be, call) \
	do { if ((call) != CP_OK) { *err = (be)->err; return err->status; } } while (0)

/* A workspace view, returning on failure. */
#define CP_WORKSPACE(m, slot, n, v) \
	do { CpStatus st_ = cp_model_workspace(m, slot, (n), &(v), err); if (st_ != CP_OK) return st_; } while (0)

#endif							/* CP_MODEL_INTERNAL_H */
