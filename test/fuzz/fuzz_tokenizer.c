/*
 * fuzz_tokenizer.c
 *	  libFuzzer harness for the tokenizer.  First byte even: the input is a
 *	  tokenizer.json document, optionally followed by a NUL and a text that
 *	  is encoded with it when it loads.  First byte odd: the rest is a text
 *	  encoded (and wrapped in the ColPali query prompt) with a small built-in
 *	  Gemma-style tokenizer that has every feature we support.  A seed holds
 *	  the byte-level Qwen2-style fixture tokenizer (NFC, regex, ByteLevel).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prompt.h"
#include "tokenizer.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char builtin_json[] =
"{\"version\":\"1.0\",\"added_tokens\":["
"{\"id\":0,\"content\":\"<pad>\",\"normalized\":false,\"special\":true},"
"{\"id\":1,\"content\":\"<eos>\",\"normalized\":false,\"special\":true},"
"{\"id\":2,\"content\":\"<bos>\",\"normalized\":false,\"special\":true},"
"{\"id\":3,\"content\":\"<unk>\",\"normalized\":false,\"special\":true},"
"{\"id\":4,\"content\":\"\\n\",\"normalized\":false,\"special\":false},"
"{\"id\":5,\"content\":\"\\n\\n\",\"normalized\":false,\"special\":false},"
"{\"id\":6,\"content\":\"\xe2\x96\x81\xe2\x96\x81\",\"normalized\":false,\"special\":false},"
"{\"id\":40,\"content\":\"<image>\",\"normalized\":false,\"special\":true},"
"{\"id\":41,\"content\":\"<loc0000>\",\"normalized\":true,\"special\":false},"
"{\"id\":42,\"content\":\"a b\",\"normalized\":true,\"special\":false}],"
"\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":["
"{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
"\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\"x\"},\"behavior\":\"MergedWithPrevious\",\"invert\":false},"
"\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
"\"vocab\":{\"<pad>\":0,\"<eos>\":1,\"<bos>\":2,\"<unk>\":3,\"\\n\":4,\"\\n\\n\":5,\"\xe2\x96\x81\xe2\x96\x81\":6,"
"\"a\":7,\"b\":8,\"c\":9,\"ab\":10,\"bc\":11,\"abc\":12,\"\xe2\x96\x81\":13,\"\xe2\x96\x81" "a\":14,"
"\"<0x00>\":15,\"<0x41>\":16,\"<0xC3>\":17,\"<0xA9>\":18,\"<0xE2>\":19,\"<0x96>\":20,\"<0x81>\":21,"
"\"x\":22,\"xx\":23,\"<image>\":40,\"<loc0000>\":41},"
"\"merges\":[\"a b\",\"b c\",[\"ab\",\"c\"],[\"\xe2\x96\x81\",\"a\"],\"\xe2\x96\x81 \xe2\x96\x81\",\"x x\"]}}";

static CpTokenizer *builtin = NULL;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CpError		err;
	int32_t    *ids = NULL;
	int			n = 0;

	if (size < 1)
		return 0;
	if (data[0] & 1)
	{
		CpModelConfig cfg;

		if (builtin == NULL &&
			cp_tokenizer_load_from_memory(builtin_json, sizeof(builtin_json) - 1, &builtin, &err) != CP_OK)
			abort();			/* the built-in document must load */
		if (cp_tokenizer_encode(builtin, (const char *) data + 1, size - 1, 0, &ids, &n, &err) == CP_OK)
			free(ids);
		memset(&cfg, 0, sizeof(cfg));
		cfg.num_image_tokens = 3;
		cfg.image_token_id = 40;
		strcpy(cfg.prompt.query_prefix, "Question: ");
		strcpy(cfg.prompt.visual_prompt_prefix, "Describe the image.");
		strcpy(cfg.prompt.query_augmentation_token, "<pad>");
		cfg.prompt.query_augmentation_tokens = 10;
		if (cp_build_query_prompt(builtin, &cfg, (const char *) data + 1, size - 1, &ids, &n, &err) == CP_OK)
			free(ids);
		if (cp_build_image_prompt(builtin, &cfg, &ids, &n, &err) == CP_OK)
			free(ids);
	}
	else
	{
		const uint8_t *nul = memchr(data + 1, 0, size - 1);
		size_t		jlen = nul ? (size_t) (nul - (data + 1)) : size - 1;
		CpTokenizer *tok = NULL;

		if (cp_tokenizer_load_from_memory((const char *) data + 1, jlen, &tok, &err) == CP_OK)
		{
			static const char *texts[] = {"", "a b c", "abc  \xe2\x96\x81x\n\n<bos>\xc3\xa9\xf0\x9f\x98\x80", "<pad>a b<loc0000>"};
			size_t		i;

			for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
				if (cp_tokenizer_encode(tok, texts[i], strlen(texts[i]), 0, &ids, &n, &err) == CP_OK)
					free(ids);
			if (nul != NULL &&
				cp_tokenizer_encode(tok, (const char *) nul + 1, size - (size_t) (nul + 1 - data), 1000, &ids, &n, &err) == CP_OK)
				free(ids);
			cp_tokenizer_free(tok);
		}
	}
	return 0;
}
