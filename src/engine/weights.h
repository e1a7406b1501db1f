/*
 * weights.h
 *	  Read-only access to safetensors checkpoints (single file or sharded
 *	  through model.safetensors.index.json), memory-mapped, every header
 *	  offset, shape and dtype validated before use; optional colpali-engine
 *	  LoRA adapter merged at load.
 */
#ifndef CP_WEIGHTS_H
#define CP_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "cp_status.h"

#define CP_MAX_DIMS 4

typedef enum CpDType
{
	CP_DTYPE_F32 = 0,
	CP_DTYPE_F16,
	CP_DTYPE_BF16
} CpDType;

typedef struct CpTensor
{
	const char *name;			/* full name as stored in the file */
	CpDType		dtype;
	int			ndim;
	int64_t		shape[CP_MAX_DIMS];
	int64_t		numel;
	const void *data;			/* into the read-only mapping (or merged copy) */
	size_t		nbytes;
} CpTensor;

typedef struct CpWeights CpWeights;

/*
 * Open the checkpoint in dir: model.safetensors, or the shards listed by
 * model.safetensors.index.json.  If dir holds adapter_config.json +
 * adapter_model.safetensors, base_dir must name the base checkpoint; the
 * adapter's LoRA deltas (scale lora_alpha / r) are merged into copies of the
 * affected base tensors and adapter-only tensors (e.g. the 128-d projection)
 * are added.
 */
extern CpStatus cp_weights_open(const char *dir, const char *base_dir,
								CpWeights **out, CpError *err);
extern void cp_weights_close(CpWeights *w);

extern int	cp_weights_count(const CpWeights *w);
extern const CpTensor *cp_weights_at(const CpWeights *w, int i);

/*
 * Find the unique tensor whose name ends with suffix at a "." boundary (or
 * equals it).  Returns NULL if none; if several match, the shortest name
 * wins only when it is an exact match, otherwise NULL and an error message.
 * Layout differences between checkpoints (encoder.md section 4) are handled
 * by the model by trying its list of known suffixes.
 */
extern const CpTensor *cp_weights_find(const CpWeights *w, const char *suffix);

/*
 * Like cp_weights_find, but the tensor must exist with exactly the given
 * shape (ndim entries); otherwise an error naming the tensor and both shapes.
 */
extern CpStatus cp_weights_require(const CpWeights *w, const char *suffix,
								   int ndim, const int64_t *shape,
								   const CpTensor **out, CpError *err);

/* Convert count elements starting at element offset of t to float32. */
extern void cp_tensor_to_f32(const CpTensor *t, int64_t offset, int64_t count,
							 float *dst);

/* Scalar conversions used by every backend. */
extern float cp_bf16_to_f32(uint16_t h);
extern float cp_f16_to_f32(uint16_t h);
extern uint16_t cp_f32_to_bf16(float f);	/* round to nearest even */

/*
 * Parse a safetensors header held in memory (used by cp_weights_open and by
 * the fuzz harness): validates the 8-byte length, the JSON, every dtype,
 * shape and data_offsets against file_size.  On success *count tensors are
 * described in a malloc'd array (names malloc'd too; free with
 * cp_safetensors_free_header); data pointers are relative to the data
 * section (i.e. offsets), cast to const void *.
 */
extern CpStatus cp_safetensors_parse_header(const uint8_t *file, size_t file_size,
											CpTensor **tensors, int *count,
											CpError *err);
extern void cp_safetensors_free_header(CpTensor *tensors, int count);

#endif							/* CP_WEIGHTS_H */
