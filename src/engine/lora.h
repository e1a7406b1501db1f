/*
 * lora.h
 *	  PEFT LoRA adapter configuration (adapter_config.json), parsed for
 *	  merging (lora.c) and for the fuzz target fuzz_adapter_config.
 */
#ifndef CP_LORA_H
#define CP_LORA_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cp_status.h"

typedef struct CpLoraConfig
{
	double		alpha;			/* lora_alpha (PEFT default 8) */
	int			r;				/* rank (PEFT default 8) */
	bool		rslora;			/* scale alpha / sqrt(r) instead of alpha / r */
	json_t	   *targets;		/* target_modules array, borrowed from root */
	bool		have_regex;		/* target_modules was a compilable pattern */
	regex_t		regex;
	json_t	   *root;			/* the parsed file */
} CpLoraConfig;

/*
 * Parse adapter_config.json text: LoRA only (other peft_type, DoRA,
 * fan_in_fan_out, alpha_pattern and rank_pattern are CP_ERR_UNSUPPORTED),
 * wrong types CP_ERR_FORMAT.  Free lc with cp_lora_config_free whatever the
 * status.
 */
extern CpStatus cp_lora_config_parse(const char *json, size_t len,
									 CpLoraConfig *lc, CpError *err);
extern void cp_lora_config_free(CpLoraConfig *lc);

/*
 * Is module (a tensor path without "base_model.model." and ".weight") a
 * target of the adapter?  A pattern must match the whole module, a list
 * entry a suffix at a "." boundary; with neither (or an uncompilable
 * pattern) every module counts.
 */
extern bool cp_lora_targets_module(const CpLoraConfig *lc, const char *module);

#endif							/* CP_LORA_H */
