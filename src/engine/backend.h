/*
 * backend.h
 *	  Compute backend interface of the colpali engine (calm / ggml style):
 *	  a vtable of buffer and math operations.  The model definition
 *	  (model.c) uses only these operations, so that the CPU backend
 *	  (backend_cpu.c) and the CUDA backend (colpali_cuda.so) run the
 *	  same model code.
 *
 * Conventions (every backend must follow them):
 * - A CpBuf is an opaque buffer owned by the backend (host memory for the
 *   CPU backend, device memory for CUDA).  The model never dereferences it;
 *   data moves only through upload/download.
 * - Activation buffers hold float32.  Every operation takes (buffer, element
 *   offset) pairs through CpView, so one allocation can hold several tensors.
 * - Matrices are row-major.  Weights keep the PyTorch [out, in] layout:
 *   matmul computes y[M,N] = x[M,K] . W[N,K]^T (+ bias[N]) (+ y if accumulate).
 * - Weight buffers come from weight_upload, which converts the checkpoint
 *   dtype (F32/BF16/F16) once into whatever the backend computes with
 *   (CPU: fp32, possibly the mmap itself; CUDA: bf16).  A CP_WEIGHT_TABLE
 *   weight (the token embedding table) is only read row by row through
 *   embedding(); the backend may keep it in its stored dtype and convert
 *   rows on the fly.  CP_WEIGHT_VECTOR weights (norm weights, biases,
 *   position embeddings) are used by element-wise ops and must be fp32-exact.
 * - Small index arrays (token ids, row indices, sequence lengths) are host
 *   arrays; a device backend copies them itself.
 * - Operations are issued in order; a device backend may run them
 *   asynchronously, download() synchronises.  Each returns CP_OK or an error
 *   status with the message in be->err.
 * - Batched sequences are stored [B, T, ...] with T the padded length; lens
 *   (host, B entries, or NULL = all T) marks the valid prefix of each
 *   sequence.  Rows past a sequence's length are computed but meaningless.
 */
#ifndef CP_BACKEND_H
#define CP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_status.h"
#include "weights.h"

typedef struct CpBuf CpBuf;

/* A tensor inside a buffer: buffer + element offset. */
typedef struct CpView
{
	CpBuf	   *buf;
	size_t		off;			/* in elements (float32 for activations) */
} CpView;

typedef enum CpWeightKind
{
	CP_WEIGHT_MATRIX = 0,		/* right operand of matmul, [N, K] */
	CP_WEIGHT_VECTOR,			/* bias / norm weight / small table: fp32 */
	CP_WEIGHT_TABLE				/* embedding table [rows, dim]: embedding() only */
} CpWeightKind;

typedef struct CpBackend CpBackend;

struct CpBackend
{
	const char *name;			/* "cpu", "cuda" */
	void	   *impl;			/* backend private state */
	CpError		err;			/* message of the last failed operation */

	void		(*destroy) (CpBackend *be);

	/* ---- memory ---- */
	/* Activation buffer of n float32 elements (uninitialised). */
	CpStatus	(*alloc) (CpBackend *be, size_t n, CpBuf **out);
	/* Free any buffer (activation or weight); NULL is a no-op. */
	void		(*free) (CpBackend *be, CpBuf *buf);
	/* Host float32 -> buffer elements [off, off + n). */
	CpStatus	(*upload) (CpBackend *be, CpView dst, const float *src, size_t n);
	/* Buffer elements [off, off + n) -> host float32 (synchronises). */
	CpStatus	(*download) (CpBackend *be, CpView src, float *dst, size_t n);
	/*
	 * A checkpoint tensor as a weight buffer, converted once.  The tensor's
	 * data (the read-only mapping) stays valid while the buffer lives, so a
	 * backend may keep pointing at it.
	 */
	CpStatus	(*weight_upload) (CpBackend *be, const CpTensor *t,
								  CpWeightKind kind, CpBuf **out);

	/* ---- linear algebra ---- */
	/*
	 * y[M,N] = x[M,K] . W[N,K]^T + bias[N] (bias.buf may be NULL);
	 * with accumulate, the result is added to y (fused residual).
	 */
	CpStatus	(*matmul) (CpBackend *be, CpView y, CpView x, CpBuf *w,
						   CpBuf *bias, int M, int N, int K, bool accumulate);

	/*
	 * Scaled dot-product attention, softmax in fp32.
	 * q [B,T,nh,hd], k and v [B,T,nkv,hd], out [B,T,nh,hd]; query head h
	 * uses kv head h / (nh / nkv).  Keys at t >= lens[b] are masked
	 * (lens NULL = none); output rows at t >= lens[b] are set to zero.
	 * With causal, query t also ignores keys after t.
	 */
	CpStatus	(*attention) (CpBackend *be, CpView out, CpView q, CpView k,
							  CpView v, int B, int T, int nh, int nkv, int hd,
							  float scale, const int *lens, bool causal);

	/* ---- normalisation ---- */
	/* LayerNorm over dim (biased variance): y = (x-mu)/sqrt(var+eps)*w + b. */
	CpStatus	(*layernorm) (CpBackend *be, CpView y, CpView x, CpBuf *w,
							  CpBuf *b, int rows, int dim, float eps);
	/* Gemma RMSNorm: y = x * rsqrt(mean(x^2) + eps) * (1 + w). */
	CpStatus	(*rmsnorm) (CpBackend *be, CpView y, CpView x, CpBuf *w,
							int rows, int dim, float eps);
	/* x[rows, dim] /= ||row||_2 in place (no eps, as transformers). */
	CpStatus	(*l2norm) (CpBackend *be, CpView x, int rows, int dim);

	/* ---- position ---- */
	/*
	 * Rotary embedding in place on x [B,T,nh,hd] (rotate_half form: pairs
	 * (j, j + hd/2)); position of token t is t + pos0 (PaliGemma: 1);
	 * inv_freq[i] = 1 / theta^(2i/hd), angles and cos/sin in fp32.
	 */
	CpStatus	(*rope) (CpBackend *be, CpView x, int B, int T, int nh, int hd,
						 float theta, int pos0);

	/* ---- element-wise ---- */
	/* x = gelu_tanh(x), n elements in place. */
	CpStatus	(*gelu_tanh) (CpBackend *be, CpView x, size_t n);
	/*
	 * Gated GELU: out[i] = gelu_tanh(gate[i]) * up[i], n elements; out may
	 * be gate itself.
	 */
	CpStatus	(*geglu) (CpBackend *be, CpView out, CpView gate, CpView up,
						  size_t n);
	/* y[n] += x[n] */
	CpStatus	(*add) (CpBackend *be, CpView y, CpView x, size_t n);
	/* y[r, :] += t[r mod period, :] for r < rows (position embeddings). */
	CpStatus	(*add_rows) (CpBackend *be, CpView y, CpBuf *t, int rows,
							 int period, int dim);
	/* x[n] *= s */
	CpStatus	(*scale) (CpBackend *be, CpView x, size_t n, float s);

	/* ---- gathers ---- */
	/*
	 * out[i, :] = table[ids[i], :] for i < n; ids host, each in
	 * [0, table rows) (checked by the caller).
	 */
	CpStatus	(*embedding) (CpBackend *be, CpView out, CpBuf *table,
							  const int32_t *ids, int n, int dim);
	/* dst[rows[i], :] = src[i, :] * s for i < n (image-feature merge). */
	CpStatus	(*scatter_rows) (CpBackend *be, CpView dst, CpView src,
								 const int *rows, int n, int dim, float s);
	/*
	 * Patch extraction (im2col of a stride = kernel conv): pixels
	 * [B, C, H, W] -> cols [B, (H/P)*(W/P), C*P*P], patch index
	 * py * (W/P) + px, vector order (c, ky, kx).
	 */
	CpStatus	(*im2col) (CpBackend *be, CpView cols, CpView pixels, int B,
						   int C, int H, int W, int P);

	/*
	 * ---- Qwen2-VL family (docs/encoder.md#colqwen2-forward) ----
	 * The CPU backends have them (backend_cpu_qwen.c); a backend that
	 * leaves one NULL cannot run ColQwen2 (the model says so).
	 */
	/* Qwen2 RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w. */
	CpStatus	(*rmsnorm_plain) (CpBackend *be, CpView y, CpView x, CpBuf *w,
								  int rows, int dim, float eps);
	/*
	 * Rotary embedding in place on x [rows, nh, hd] (rotate_half pairs
	 * (j, j + hd/2)) with per-row angle tables cos, sin [rows, hd/2]
	 * (fp32 activations; M-RoPE and 2-D vision positions are built by
	 * the model on the host).
	 */
	CpStatus	(*rotary) (CpBackend *be, CpView x, CpView cos, CpView sin,
						   int rows, int nh, int hd);
	/* out[i] = silu(gate[i]) * up[i]; out may be gate. */
	CpStatus	(*swiglu) (CpBackend *be, CpView out, CpView gate, CpView up,
						   size_t n);
	/* x = x * sigmoid(1.702 x) in place. */
	CpStatus	(*quick_gelu) (CpBackend *be, CpView x, size_t n);
	/* x = exact (erf) GELU of x in place. */
	CpStatus	(*gelu_erf) (CpBackend *be, CpView x, size_t n);

	/*
	 * ---- fused forms (optional) ----
	 * A backend that leaves one NULL gets the plain ops it stands for
	 * (cp_backend_matmul_shared, cp_backend_act_matmul below).  The CPU
	 * backend uses them in bf16 precision to round a GEMM input into the
	 * tile layout once, or straight from the activation that produces it.
	 */
	/*
	 * y[i] = x . w[i]^T + bias[i] for i < n, every product of the same x
	 * [M, K]; y[i] is [M, N[i]]; bias[i] may be NULL.
	 */
	CpStatus	(*matmul_shared) (CpBackend *be, int n, const CpView *y,
								  CpView x, CpBuf *const *w,
								  CpBuf *const *bias, int M, const int *N,
								  int K);
	/*
	 * y (+)= act(x, up) . w^T + bias, x [M, K]: act(x) = gelu_tanh(x) with
	 * CP_FUSED_GELU_TANH (up unused), gelu_tanh(x) * up with CP_FUSED_GEGLU.
	 * x (and up) may be overwritten.
	 */
	CpStatus	(*act_matmul) (CpBackend *be, CpView y, CpView x, CpView up,
							   int act, CpBuf *w, CpBuf *bias, int M, int N,
							   int K, bool accumulate);
	/*
	 * Gemma's MLP: y += (gelu_tanh(x . w_gate^T) * (x . w_up^T)) . w_down^T,
	 * x [M, K], w_gate and w_up [Ni, K], w_down [K, Ni], no biases; gate and
	 * up are [M, Ni] scratch (they may or may not be written).
	 */
	CpStatus	(*geglu_mlp) (CpBackend *be, CpView y, CpView x, CpView gate,
							  CpView up, CpBuf *w_gate, CpBuf *w_up,
							  CpBuf *w_down, int M, int Ni, int K);
};

/* Activations of act_matmul. */
#define CP_FUSED_GELU_TANH 1
#define CP_FUSED_GEGLU 2

/*
 * cp_backend_matmul_shared
 *		be->matmul_shared, or the n plain products.
 */
static inline CpStatus
cp_backend_matmul_shared(CpBackend *be, int n, const CpView *y, CpView x,
						 CpBuf *const *w, CpBuf *const *bias, int M,
						 const int *N, int K)
{
	int			i;

	if (be->matmul_shared != NULL)
		return be->matmul_shared(be, n, y, x, w, bias, M, N, K);
	for (i = 0; i < n; i++)
	{
		CpStatus	st = be->matmul(be, y[i], x, w[i], bias[i], M, N[i], K,
									false);

		if (st != CP_OK)
			return st;
	}
	return CP_OK;
}

/*
 * cp_backend_geglu_mlp
 *		be->geglu_mlp, or the gate and up products, GeGLU and the down
 *		product.
 */
static inline CpStatus
cp_backend_geglu_mlp(CpBackend *be, CpView y, CpView x, CpView gate,
					 CpView up, CpBuf *w_gate, CpBuf *w_up, CpBuf *w_down,
					 int M, int Ni, int K)
{
	CpStatus	st;

	if (be->geglu_mlp != NULL)
		return be->geglu_mlp(be, y, x, gate, up, w_gate, w_up, w_down, M, Ni, K);
	if (be->matmul_shared != NULL)
	{
		CpView		gu[2] = {gate, up};
		CpBuf	   *gu_w[2] = {w_gate, w_up};
		CpBuf	   *no_bias[2] = {NULL, NULL};
		int			gu_n[2] = {Ni, Ni};

		st = be->matmul_shared(be, 2, gu, x, gu_w, no_bias, M, gu_n, K);
	}
	else
	{
		st = be->matmul(be, gate, x, w_gate, NULL, M, Ni, K, false);
		if (st == CP_OK)
			st = be->matmul(be, up, x, w_up, NULL, M, Ni, K, false);
	}
	if (st != CP_OK)
		return st;
	if (be->act_matmul != NULL)
		return be->act_matmul(be, y, gate, up, CP_FUSED_GEGLU, w_down, NULL,
							  M, K, Ni, true);
	st = be->geglu(be, gate, gate, up, (size_t) M * Ni);
	if (st != CP_OK)
		return st;
	return be->matmul(be, y, gate, w_down, NULL, M, K, Ni, true);
}

/*
 * cp_backend_act_matmul
 *		be->act_matmul, or the activation in place on x and the product.
 */
static inline CpStatus
cp_backend_act_matmul(CpBackend *be, CpView y, CpView x, CpView up, int act,
					  CpBuf *w, CpBuf *bias, int M, int N, int K,
					  bool accumulate)
{
	CpStatus	st;

	if (be->act_matmul != NULL)
		return be->act_matmul(be, y, x, up, act, w, bias, M, N, K, accumulate);
	if (act == CP_FUSED_GEGLU)
		st = be->geglu(be, x, x, up, (size_t) M * K);
	else
		st = be->gelu_tanh(be, x, (size_t) M * K);
	if (st != CP_OK)
		return st;
	return be->matmul(be, y, x, w, bias, M, N, K, accumulate);
}

/* Backend constructors. */
typedef struct CpBackendOptions
{
	int			threads;		/* 0 = library default */
	/*
	 * CPU: how bf16/f16 matmul weights are held: false = converted to fp32
	 * once at upload; true = kept as mapped and converted tile by tile in
	 * matmul (half the resident memory).  F32 weights are always used in
	 * place when suitably aligned.
	 */
	bool		lazy_convert;
	/* CPU: no hand-written SIMD kernels (tests compare both paths). */
	bool		no_simd;
	/*
	 * CPU: matmul with activations rounded to bf16 and bf16 weights (exact
	 * products, fp32 sums; gemm_bf16.c) where the CPU has AVX512_BF16,
	 * for ~2x the arithmetic rate.  Everything else stays fp32.  Ignored
	 * by the CUDA backend (which always multiplies in bf16).
	 */
	bool		bf16_matmul;
	/*
	 * CPU: no AMX tiles even where they exist (tests, measurements): bf16
	 * precision on AVX512_BF16, fp32 on the AVX-512 FMA kernels.
	 */
	bool		no_amx;
	/*
	 * CPU, fp32 precision on AMX: bf16 terms each activation is split into
	 * for the tile products (gemm_amx.h); 0 = CP_AMX_SPLIT_TERMS (3, exact).
	 * 2 (16 bits of each activation) exists only to measure what the third
	 * term costs and buys.
	 */
	int			fp32_split_terms;
} CpBackendOptions;

extern CpStatus cp_backend_cpu_create(const CpBackendOptions *opts,
									  CpBackend **out, CpError *err);
/*
 * Names of the kernels a CPU backend runs, as key=value words:
 * "gemm=openblas:SkylakeX gemm_few_rows=avx512f bf16_gemm=amx-bf16
 * elementwise=avx512f" (gemm_few_rows: fp32 products of few rows with bf16
 * weights; bf16_gemm=none when the bf16 precision is off or cannot run).
 */
extern const char *cp_backend_cpu_kernels(const CpBackend *be);
/* The naive reference ops of backend_cpu_ref.c (test oracle, slow). */
extern CpStatus cp_backend_cpu_ref_create(const CpBackendOptions *opts,
										  CpBackend **out, CpError *err);

/* Convenience: a view at the start of a buffer. */
static inline CpView
cp_view(CpBuf *buf, size_t off)
{
	CpView		v;

	v.buf = buf;
	v.off = off;
	return v;
}

/*
 * Name of the symbol a CUDA backend library (colpali_cuda.so) exports, of
 * type CpBackendCreateFn; the engine dlopen()s the library and calls it.
 */
#define CP_CUDA_BACKEND_SYMBOL "cp_backend_cuda_create"
typedef CpStatus (*CpBackendCreateFn) (const CpBackendOptions *opts,
									   CpBackend **out, CpError *err);

#endif							/* CP_BACKEND_H */
