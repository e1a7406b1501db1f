/*
 * fuzz_config.c
 *	  libFuzzer harness of the checkpoint configuration reader
 *	  (cp_config_parse, src/engine/config.c): the input is up to four JSON
 *	  texts separated by NUL bytes, read as config.json,
 *	  preprocessor_config.json, processor_config.json and
 *	  tokenizer_config.json (a missing or empty part = file absent).  Any bytes must
 *	  give CP_OK with a configuration the forward pass can size, or a clean
 *	  error status with a message; never a crash or sanitizer report.
 *
 * Built and run by "make fuzzcheck"; seeds in test/fuzz/seeds/fuzz_config/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define NPARTS 4

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * LLVMFuzzerTestOneInput
 *		Split at NUL bytes, parse, check what a success promises.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size + 1);
	char	   *part[NPARTS] = {NULL, NULL, NULL, NULL};
	CpModelConfig cfg;
	CpError		err;
	CpStatus	st;
	size_t		pos = 0;
	int			n;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (n = 0; n < NPARTS && pos <= size; n++)
	{
		if (copy[pos] != '\0')
			part[n] = copy + pos;
		pos += strlen(copy + pos) + 1;
	}
	err.msg[0] = '\0';
	st = cp_config_parse(part[0], part[1], part[2], part[3], &cfg, &err);
	if (st != CP_OK)
	{
		if (err.msg[0] == '\0')
			__builtin_trap();
	}
	else if (cfg.arch == CP_ARCH_PALIGEMMA &&
			 (cfg.vision.hidden_size <= 0 || cfg.text.hidden_size <= 0 ||
			  cfg.vision.num_heads <= 0 || cfg.text.num_heads <= 0 ||
			  cfg.text.num_kv_heads <= 0 || cfg.embedding_dim <= 0 ||
			  cfg.image.width <= 0 || cfg.image.height <= 0 ||
			  memchr(cfg.prompt.query_prefix, '\0', sizeof(cfg.prompt.query_prefix)) == NULL))
		__builtin_trap();
	else if (cfg.arch != CP_ARCH_PALIGEMMA &&
			 (cfg.qwen.vision_hidden <= 0 || cfg.qwen.vision_heads <= 0 ||
			  cfg.qwen.vision_hidden % cfg.qwen.vision_heads != 0 ||
			  cfg.text.hidden_size <= 0 || cfg.text.num_heads <= 0 ||
			  cfg.text.num_kv_heads <= 0 || cfg.text.head_dim <= 0 ||
			  2 * (cfg.qwen.mrope_section[0] + cfg.qwen.mrope_section[1] +
				   cfg.qwen.mrope_section[2]) != cfg.text.head_dim ||
			  cfg.embedding_dim <= 0 || cfg.qwen.image.min_pixels <= 0 ||
			  cfg.qwen.image.max_pixels < cfg.qwen.image.min_pixels ||
			  memchr(cfg.prompt.query_prefix, '\0', sizeof(cfg.prompt.query_prefix)) == NULL))
		__builtin_trap();
	free(copy);
	return 0;
}
