/*
 * weights.h
 *	  Read-only access to safetensors checkpoints (single file or sharded
 *	  through model.safetensors.index.json), memory-mapped, every header
 *	  offset, shape and dtype validated before use; optional colpali-engine
 *	  LoRA adapter merged at load.
 */
#ifndef CP_WEIGHTS_H
#define CP_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_status.h"
#include "dtype.h"

#define CP_MAX_DIMS 6

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
	const void *data;			/* into the read-only mapping (or merged copy);
								 * aligned to the element size */
	size_t		nbytes;
} CpTensor;

typedef struct CpWeights CpWeights;

/*
 * Open the checkpoint in dir: model.safetensors, or the shards listed by
 * model.safetensors.index.json.  If dir holds adapter_config.json +
 * adapter_model.safetensors, base_dir must name the base checkpoint; the
 * adapter's LoRA deltas (scale lora_alpha / r) are merged into copies of the
 * affected base tensors and adapter-only tensors (e.g. the 128-d projection)
 * are added.  With base_dir NULL, the adapter's base_model_name_or_path is
 * used when it names a local folder (absolute, inside dir, or a sibling of
 * dir named like its last path component).
 */
extern CpStatus cp_weights_open(const char *dir, const char *base_dir,
								CpWeights **out, CpError *err);
extern void cp_weights_close(CpWeights *w);

/*
 * The local base checkpoint folder named by dir/adapter_config.json's
 * base_model_name_or_path (absolute, inside dir, or a sibling of dir), into
 * buf; false if there is none.
 */
extern bool cp_adapter_base_dir(const char *dir, char *buf, size_t size);

extern int	cp_weights_count(const CpWeights *w);
extern const CpTensor *cp_weights_at(const CpWeights *w, int i);

/*
 * Find the unique tensor whose name ends with suffix at a "." boundary (or
 * equals it).  Returns NULL if none; if several match, the one whose name
 * equals suffix wins, otherwise NULL (ambiguous; cp_weights_lookup says so).
 *
 * Every tensor is matched under its stored name and under a canonical name
 * that removes the layout prefixes of docs/encoder.md#tensor-names
 * ("base_model.model.", "vlm.", "model.", "model.model.", "vlm.model.",
 * "language_model.model." -> "language_model.", and "vision_tower.X" ->
 * "vision_tower.vision_model.X" for transformers 5), so the canonical suffixes
 *	 vision_tower.vision_model.encoder.layers.N.self_attn.q_proj.weight
 *	 multi_modal_projector.linear.weight
 *	 language_model.layers.N.mlp.up_proj.weight
 *	 language_model.embed_tokens.weight, language_model.norm.weight
 *	 custom_text_proj.weight | embedding_proj_layer.weight
 * work with every supported layout.  Bare suffixes such as
 * "layers.0.self_attn.q_proj.weight" are ambiguous (vision and text).
 */
extern const CpTensor *cp_weights_find(const CpWeights *w, const char *suffix);

/* Same as cp_weights_find, with CP_ERR_NOT_FOUND / CP_ERR_FORMAT (ambiguous). */
extern CpStatus cp_weights_lookup(const CpWeights *w, const char *suffix,
								  const CpTensor **out, CpError *err);

/*
 * Like cp_weights_find, but the tensor must exist with exactly the given
 * shape (ndim entries); otherwise an error naming the tensor and both shapes.
 */
extern CpStatus cp_weights_require(const CpWeights *w, const char *suffix,
								   int ndim, const int64_t *shape,
								   const CpTensor **out, CpError *err);

/*
 * Convert count elements starting at element offset of t to float32.
 * An out-of-range request (offset < 0, offset + count > numel) writes nothing.
 */
extern void cp_tensor_to_f32(const CpTensor *t, int64_t offset, int64_t count,
							 float *dst);

/* Whole tensor as a malloc'd float32 array (*out, numel floats). */
extern CpStatus cp_tensor_load_f32(const CpTensor *t, float **out, CpError *err);

/* A shape as "[a, b, c]" into buf (for messages; cut to size). */
extern void cp_format_shape(char *buf, size_t size, int ndim,
							const int64_t *shape);

/* "F32", "F16", "BF16". */
extern const char *cp_dtype_name(CpDType dtype);
extern size_t cp_dtype_size(CpDType dtype);


/*
 * Parse a safetensors header held in memory (used by cp_weights_open and by
 * the fuzz harness): validates the 8-byte length, the JSON, every dtype,
 * shape and data_offsets against file_size; tensors may not overlap.  On
 * success *count tensors are described in a malloc'd array sorted by offset
 * (names malloc'd too; free with cp_safetensors_free_header); data pointers
 * are byte offsets relative to the data section (file + 8 + header length),
 * cast to const void *; *data_start (may be NULL) receives that section's
 * offset in the file.  Tensors of other valid safetensors dtypes (I64, U8,
 * BOOL, F64, ...) are validated and left out; an unknown dtype is an error.
 */
extern CpStatus cp_safetensors_parse_header(const uint8_t *file, size_t file_size,
											CpTensor **tensors, int *count,
											size_t *data_start, CpError *err);
extern void cp_safetensors_free_header(CpTensor *tensors, int count);

#endif							/* CP_WEIGHTS_H */
