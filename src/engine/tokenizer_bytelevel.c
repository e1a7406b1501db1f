/*
 * tokenizer_bytelevel.c
 *	  The pieces of a byte-level BPE tokenizer (Qwen2, GPT-2 family) that the
 *	  SentencePiece-style BPE of tokenizer.c lacks (docs/encoder.md#tokenizer):
 *	  NFC normalisation (utf8proc), regex pre-tokenizer splits with Unicode
 *	  classes (PCRE2 with UTF and UCP, as the Oniguruma patterns of
 *	  tokenizer.json expect), and GPT-2's byte-to-unicode mapping.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>
#include <utf8proc.h>

#include "tokenizer_internal.h"

/*
 * cp_tok_nfc
 *		Canonical composition (NFC) of s[0..n) into out (reset first).
 *		False on out-of-memory or if utf8proc refuses the text (it is valid
 *		UTF-8 here, so only memory can fail in practice).
 */
bool
cp_tok_nfc(const char *s, size_t n, CpStr *out)
{
	utf8proc_uint8_t *dst = NULL;
	utf8proc_ssize_t r;
	bool		ok;

	out->n = 0;
	if (n == 0)
		return cp_str_append(out, "", 0);
	r = utf8proc_map((const utf8proc_uint8_t *) s, (utf8proc_ssize_t) n, &dst,
					 UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	if (r < 0)
		return false;
	ok = cp_str_append(out, (const char *) dst, (size_t) r);
	free(dst);
	return ok;
}

/*
 * cp_tok_regex_compile
 *		Compile a tokenizer.json {"Regex": ...} pattern for UTF-8 text with
 *		Unicode character classes (\s, \p{L}, case folding of (?i:...)).
 */
CpStatus
cp_tok_regex_compile(const char *pattern, void **code, CpError *err)
{
	int			errcode;
	PCRE2_SIZE	erroff;
	pcre2_code *re;

	*code = NULL;
	re = pcre2_compile((PCRE2_SPTR) pattern, PCRE2_ZERO_TERMINATED,
					   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK,
					   &errcode, &erroff, NULL);
	if (re == NULL)
	{
		PCRE2_UCHAR msg[160];

		pcre2_get_error_message(errcode, msg, sizeof(msg));
		return cp_error(err, CP_ERR_UNSUPPORTED,
						"tokenizer.json: regex pattern is not supported at offset %zu: %s",
						(size_t) erroff, (const char *) msg);
	}
	/* JIT is only a speed-up; the interpreter gives the same matches */
	(void) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	*code = re;
	return CP_OK;
}

/*
 * cp_tok_regex_free
 *		Release a compiled pattern (NULL is fine).
 */
void
cp_tok_regex_free(void *code)
{
	if (code != NULL)
		pcre2_code_free((pcre2_code *) code);
}

/*
 * cp_tok_regex_find
 *		First match of the pattern in s[from..n); its bounds in *ms, *me.
 *		0: a match; 1: none; -1: out of memory or a matching error (match
 *		limit), which the caller reports.  s is valid UTF-8.
 */
int
cp_tok_regex_find(const void *code, const char *s, size_t n, size_t from,
				  size_t *ms, size_t *me)
{
	pcre2_match_data *md;
	int			rc;
	PCRE2_SIZE *ov;

	md = pcre2_match_data_create_from_pattern((const pcre2_code *) code, NULL);
	if (md == NULL)
		return -1;
	rc = pcre2_match((const pcre2_code *) code, (PCRE2_SPTR) s, n, from,
					 PCRE2_NO_UTF_CHECK, md, NULL);
	if (rc == PCRE2_ERROR_NOMATCH)
	{
		pcre2_match_data_free(md);
		return 1;
	}
	if (rc < 0)
	{
		pcre2_match_data_free(md);
		return -1;
	}
	ov = pcre2_get_ovector_pointer(md);
	*ms = ov[0];
	*me = ov[1];
	pcre2_match_data_free(md);
	return 0;
}

/*
 * byte_to_unicode
 *		GPT-2's reversible map from bytes to printable code points: the
 *		printable Latin-1 bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF)
 *		map to themselves, the other 68 bytes to U+0100.. in byte order.
 */
static uint32_t
byte_to_unicode(uint8_t b)
{
	int			k = 0;
	int			c;

	if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae)
		return b;
	for (c = 0; c < b; c++)
		if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae))
			k++;
	return 0x100 + (uint32_t) k;
}

/*
 * cp_tok_byte_level_init
 *		Fill the tokenizer's byte -> UTF-8 table (at load, before any use).
 *		All targets are below U+0800: 1 or 2 bytes.
 */
void
cp_tok_byte_level_init(CpTokenizer *tok)
{
	int			b;

	for (b = 0; b < 256; b++)
	{
		uint32_t	u = byte_to_unicode((uint8_t) b);

		if (u < 0x80)
		{
			tok->bl_enc[b][0] = (char) u;
			tok->bl_len[b] = 1;
		}
		else
		{
			tok->bl_enc[b][0] = (char) (0xc0 | (u >> 6));
			tok->bl_enc[b][1] = (char) (0x80 | (u & 0x3f));
			tok->bl_len[b] = 2;
		}
	}
}

/*
 * cp_tok_byte_level
 *		Map every byte of s[0..n) to its GPT-2 code point, UTF-8 encoded,
 *		into out (reset first).
 */
bool
cp_tok_byte_level(const CpTokenizer *tok, const char *s, size_t n, CpStr *out)
{
	size_t		i;

	out->n = 0;
	if (!cp_str_append(out, "", 0))
		return false;
	for (i = 0; i < n; i++)
	{
		uint8_t		b = (uint8_t) s[i];

		if (!cp_str_append(out, tok->bl_enc[b], tok->bl_len[b]))
			return false;
	}
	return true;
}
