/*
 * golden_format.h
 *	  The engine prompt format of a ColQwen2 golden query (the "format" of
 *	  test/fixtures/qwen/manifest.json queries[]), applied to a config copy:
 *	  training, engine-0.3.18, transformers, or custom with
 *	  generate_qwen.py's CUSTOM_PREFIX / CUSTOM_SUFFIX
 *	  (docs/encoder.md#prompt-formats).  Header-only, for the ColQwen2
 *	  engine tests.
 */
#ifndef GOLDEN_FORMAT_H
#define GOLDEN_FORMAT_H

#include <string.h>

#include "colpali_engine.h"
#include "config.h"
#include "prompt.h"

#define GOLDEN_CUSTOM_PREFIX "Find: "
#define GOLDEN_CUSTOM_SUFFIX "<|endoftext|><|endoftext|><|endoftext|>"

/* false if fmt is unknown or the format does not apply */
static inline bool
golden_query_format(CpModelConfig *cfg, const char *fmt)
{
	CpPromptFormat f;
	char		qd[512];
	char		pd[512];
	CpError		err;

	if (fmt == NULL)
		return false;
	if (strcmp(fmt, "training") == 0)
		f = CP_FORMAT_TRAINED;
	else if (strcmp(fmt, "engine-0.3.18") == 0)
		f = CP_FORMAT_COLPALI_ENGINE;
	else if (strcmp(fmt, "transformers") == 0)
		f = CP_FORMAT_TRANSFORMERS;
	else if (strcmp(fmt, "custom") == 0)
		f = CP_FORMAT_CUSTOM;
	else
		return false;
	memset(&err, 0, sizeof(err));
	return cp_prompt_apply_format(cfg, f, GOLDEN_CUSTOM_PREFIX, GOLDEN_CUSTOM_SUFFIX,
								  CP_FORMAT_TRAINED, NULL, qd, pd, sizeof(qd),
								  &err) == CP_OK;
}

#endif							/* GOLDEN_FORMAT_H */
