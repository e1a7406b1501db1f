/*
 * fuzz_adapter_config.c
 *	  libFuzzer harness of the LoRA adapter configuration reader
 *	  (cp_lora_config_parse, src/engine/lora.c): any bytes as
 *	  adapter_config.json must give CP_OK with a positive rank, or a clean
 *	  error status with a message; matching module names against whatever
 *	  target_modules holds (a pattern or a list) must not crash either.
 *
 * Built and run by "make fuzzcheck"; seeds in
 * test/fuzz/seeds/fuzz_adapter_config/.
 */
#include <stdint.h>
#include <string.h>

#include "lora.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * LLVMFuzzerTestOneInput
 *		Parse, probe the target matcher, free.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const modules[] = {
		"model.language_model.model.layers.0.self_attn.q_proj",
		"custom_text_proj", "", "a.b.c"
	};
	CpLoraConfig lc;
	CpError		err;
	CpStatus	st;
	size_t		i;

	err.msg[0] = '\0';
	st = cp_lora_config_parse((const char *) data, size, &lc, &err);
	if (st != CP_OK)
	{
		if (err.msg[0] == '\0')
			__builtin_trap();
	}
	else
	{
		if (lc.r <= 0)
			__builtin_trap();
		for (i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
			(void) cp_lora_targets_module(&lc, modules[i]);
	}
	cp_lora_config_free(&lc);
	return 0;
}
