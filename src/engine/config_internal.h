/*
 * config_internal.h
 *	  What config.c shares with the readers of other architectures'
 *	  configurations (config_qwen.c): typed getters with config.c's rules
 *	  (absent or null keeps *out; a wrong type is CP_ERR_FORMAT naming
 *	  file and key).
 */
#ifndef CP_CONFIG_INTERNAL_H
#define CP_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config.h"

extern CpStatus cp_cfg_get_int(json_t *obj, const char *file, const char *key,
							   int *out, CpError *err);
extern CpStatus cp_cfg_get_float(json_t *obj, const char *file, const char *key,
								 float *out, CpError *err);
extern CpStatus cp_cfg_get_double(json_t *obj, const char *file, const char *key,
								  double *out, CpError *err);
extern CpStatus cp_cfg_get_string(json_t *obj, const char *file, const char *key,
								  char *buf, size_t size, CpError *err);

/*
 * A Qwen2-VL / Qwen2.5-VL family configuration (config_qwen.c): root is
 * config.json (model_type qwen2_vl, qwen2_5_vl or colqwen2), the others
 * may be NULL.  Fills cfg (already zeroed) including arch.
 */
extern CpStatus cp_config_parse_qwen(json_t *root, json_t *pre, json_t *proc,
									 json_t *tokc, CpModelConfig *cfg,
									 CpError *err);

#endif							/* CP_CONFIG_INTERNAL_H */
