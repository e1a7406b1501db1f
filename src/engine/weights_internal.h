/*
 * weights_internal.h
 *	  What weights.c (the checkpoint) shares with lora.c (the adapter merged
 *	  into it): the CpWeights structure and the helpers that add to it and
 *	  find tensors in it.  Not for other files: they use weights.h.
 */
#ifndef CP_WEIGHTS_INTERNAL_H
#define CP_WEIGHTS_INTERNAL_H

#include "weights.h"

/* One read-only file mapping. */
typedef struct CpMapping
{
	void	   *addr;
	size_t		size;
} CpMapping;

struct CpWeights
{
	CpTensor   *tensors;
	char	  **canon;			/* canonical name of each tensor (malloc'd) */
	int			count;
	int			cap;
	CpMapping  *maps;
	int			nmaps;
	void	  **owned;			/* merged / realigned data buffers */
	int			nowned;
};

/* If s starts with p, the rest of s, else s. */
extern const char *cp_strip_prefix(const char *s, const char *p);

/* Tensor name without the layout prefixes (malloc'd; NULL when out of memory). */
extern char *cp_canonical_name(const char *name);

/* Does name equal suffix (of length slen) or end with "." + suffix? */
extern bool cp_suffix_match(const char *name, const char *suffix, size_t slen);

/*
 * Index of the tensor stored as name, or whose canonical name is canon;
 * -1 when none, -2 when several match.
 */
extern int	cp_weights_find_exact(const CpWeights *w, const char *name,
								  const char *canon);

/* Take ownership of a malloc'd buffer (freed with w; freed now on failure). */
extern CpStatus cp_weights_add_owned(CpWeights *w, void *p, CpError *err);

/* Append a tensor (its name must be malloc'd; w takes it). */
extern CpStatus cp_weights_add_tensor(CpWeights *w, const CpTensor *t,
									  CpError *err);

/* Map one safetensors file and add its tensors. */
extern CpStatus cp_weights_add_file(CpWeights *w, const char *path, CpError *err);

/* Sort tensors by name and refuse duplicates (e.g. across shards). */
extern CpStatus cp_weights_sort_and_check(CpWeights *w, CpError *err);

/* dir + "/" + name into buf, CP_ERR_LIMIT when it does not fit. */
extern CpStatus cp_join_path(char *buf, size_t size, const char *dir,
							 const char *name, CpError *err);
extern bool cp_file_exists(const char *path);

/* Merge the LoRA adapter in dir into w (lora.c). */
extern CpStatus cp_lora_apply(CpWeights *w, const char *dir, CpError *err);

#endif							/* CP_WEIGHTS_INTERNAL_H */
