/*
 * prompt_format.c
 *	  Which prompt a query or page gets: the prompt formats of
 *	  docs/encoder.md#prompt-formats turned into the text the prompt builders
 *	  (prompt_paligemma.c, prompt_qwen2.c) wrap around a query or a page, and
 *	  a readable description of it for model-info reports.
 *
 * A query prompt is always query_before + text + query_after, tokenized as
 * one string (special-token strings inside become those tokens):
 *
 *	format			ColPali								ColQwen2 / ColQwen2.5
 *	trained			<bos>Question: q<pad>x10\n			Query: q<|endoftext|>x10
 *	colpali_engine	<bos>q<pad>x10						q<|endoftext|>x10
 *	transformers	<bos>Question: q<pad>x10\n			Query: q<|endoftext|>x10\n
 *	custom			prefix q suffix						prefix q suffix
 *
 * ("Question: " / "Query: " is the checkpoint's processor_config.json
 * query_prefix when it sets one.)  A ColPali page is <image>xN, then <bos>
 * (twice with colpali_engine, whose prompt carries its own <bos> before the
 * one the PaliGemma processor inserts), the instruction and "\n"; a ColQwen2
 * page is the same in every format.  The instruction is the checkpoint's
 * visual_prompt_prefix ("Describe the image.") unless a page prompt is given.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prompt.h"

/*
 * copy_text
 *		strlcpy that reports truncation as CP_ERR_LIMIT.
 */
static CpStatus
copy_text(char *dst, size_t size, const char *src, const char *what, CpError *err)
{
	size_t		n = strlen(src);

	if (n >= size)
		return cp_error(err, CP_ERR_LIMIT, "%s is longer than %zu bytes", what, size - 1);
	memcpy(dst, src, n + 1);
	return CP_OK;
}

/*
 * format_name
 *		The setting's spelling of a format.
 */
static const char *
format_name(CpPromptFormat f)
{
	switch (f)
	{
		case CP_FORMAT_TRAINED:
			return "trained";
		case CP_FORMAT_COLPALI_ENGINE:
			return "colpali_engine";
		case CP_FORMAT_TRANSFORMERS:
			return "transformers";
		case CP_FORMAT_CUSTOM:
			return "custom";
	}
	return "?";
}

/*
 * append_visible
 *		Append text to buf (of size size, NUL-terminated) with newlines,
 *		tabs and other control bytes written as escapes, so a description
 *		stays on one line.
 */
static void
append_visible(char *buf, size_t size, const char *text)
{
	size_t		at = strlen(buf);

	for (const unsigned char *p = (const unsigned char *) text; *p && at + 5 < size; p++)
	{
		if (*p == '\n')
			at += snprintf(buf + at, size - at, "\\n");
		else if (*p == '\t')
			at += snprintf(buf + at, size - at, "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			at += snprintf(buf + at, size - at, "\\x%02x", *p);
		else
			buf[at++] = (char) *p;
		buf[at] = '\0';
	}
}

/*
 * append_repeated
 *		Append token x count ("<pad>x10") to a description.
 */
static void
append_repeated(char *buf, size_t size, const char *token, int count)
{
	char		n[16];

	if (count <= 0)
		return;
	append_visible(buf, size, token);
	if (count > 1)
	{
		snprintf(n, sizeof(n), "x%d", count);
		append_visible(buf, size, n);
	}
}

/*
 * apply_query_format
 *		query_before / query_after of one query format, and its description.
 */
static CpStatus
apply_query_format(CpPromptConfig *p, bool colpali, CpPromptFormat query_format,
				   const char *custom_prefix, const char *custom_suffix,
				   char *query_desc, size_t desc_size, CpError *err)
{
	const char *aug = p->query_augmentation_token;
	int			naug = p->query_augmentation_tokens;
	bool		newline;
	const char *prefix;
	size_t		at;
	CpStatus	st;

	if (naug < 0 || naug > 1024)
		return cp_error(err, CP_ERR_INVALID_ARG, "%d query augmentation tokens", naug);
	query_desc[0] = '\0';
	snprintf(query_desc, desc_size, "%s: ", format_name(query_format));
	if (query_format == CP_FORMAT_CUSTOM)
	{
		st = copy_text(p->query_before, sizeof(p->query_before),
					   custom_prefix ? custom_prefix : "", "the query prefix", err);
		if (st == CP_OK)
			st = copy_text(p->query_after, sizeof(p->query_after),
						   custom_suffix ? custom_suffix : "", "the query suffix", err);
		if (st != CP_OK)
			return st;
		append_visible(query_desc, desc_size, p->query_before);
		append_visible(query_desc, desc_size, "{query}");
		append_visible(query_desc, desc_size, p->query_after);
	}
	else
	{
		prefix = (query_format == CP_FORMAT_COLPALI_ENGINE) ? "" : p->query_prefix;
		newline = colpali ? (query_format != CP_FORMAT_COLPALI_ENGINE)
			: (query_format == CP_FORMAT_TRANSFORMERS);
		if (snprintf(p->query_before, sizeof(p->query_before), "%s%s",
					 colpali ? "<bos>" : "", prefix) >= (int) sizeof(p->query_before))
			return cp_error(err, CP_ERR_LIMIT, "the query prefix is too long");
		at = 0;
		p->query_after[0] = '\0';
		for (int i = 0; i < naug; i++)
		{
			size_t		alen = strlen(aug);

			if (at + alen + 2 > sizeof(p->query_after))
				return cp_error(err, CP_ERR_LIMIT, "the query augmentation is too long");
			memcpy(p->query_after + at, aug, alen);
			at += alen;
		}
		if (newline)
			p->query_after[at++] = '\n';
		p->query_after[at] = '\0';
		append_visible(query_desc, desc_size, p->query_before);
		append_visible(query_desc, desc_size, "{query}");
		append_repeated(query_desc, desc_size, aug, naug);
		if (newline)
			append_visible(query_desc, desc_size, "\n");
	}
	return CP_OK;
}

/*
 * cp_prompt_apply_format
 *		Fill cfg->prompt's query_before / query_after / page_bos /
 *		visual_prompt_prefix for the chosen formats (see the file header),
 *		and describe them in query_desc / page_desc (desc_size bytes each).
 *		cfg->prompt.query_prefix, query_augmentation_token(s) and
 *		visual_prompt_prefix hold the checkpoint's values on entry.
 */
CpStatus
cp_prompt_apply_format(CpModelConfig *cfg, CpPromptFormat query_format,
					   const char *custom_prefix, const char *custom_suffix,
					   CpPromptFormat page_format, const char *page_prompt,
					   char *query_desc, char *page_desc, size_t desc_size,
					   CpError *err)
{
	CpPromptConfig *p = &cfg->prompt;
	bool		colpali = (cfg->arch == CP_ARCH_PALIGEMMA);
	CpStatus	st;

	if ((int) query_format < CP_FORMAT_TRAINED || query_format > CP_FORMAT_CUSTOM ||
		(int) page_format < CP_FORMAT_TRAINED || page_format > CP_FORMAT_CUSTOM)
		return cp_error(err, CP_ERR_INVALID_ARG, "unknown prompt format");
	st = apply_query_format(p, colpali, query_format, custom_prefix,
							custom_suffix, query_desc, desc_size, err);
	if (st != CP_OK)
		return st;

	/* pages */
	if (page_prompt != NULL && page_prompt[0] != '\0')
	{
		st = copy_text(p->visual_prompt_prefix, sizeof(p->visual_prompt_prefix),
					   page_prompt, "the page prompt", err);
		if (st != CP_OK)
			return st;
	}
	if (page_format == CP_FORMAT_CUSTOM)
		page_format = CP_FORMAT_TRAINED;
	p->page_bos = (colpali && page_format == CP_FORMAT_COLPALI_ENGINE) ? 2 : 1;
	page_desc[0] = '\0';
	snprintf(page_desc, desc_size, "%s: ", format_name(page_format));
	if (colpali)
	{
		append_repeated(page_desc, desc_size, "<image>", cfg->num_image_tokens);
		append_repeated(page_desc, desc_size, "<bos>", p->page_bos);
		append_visible(page_desc, desc_size, p->visual_prompt_prefix);
		append_visible(page_desc, desc_size, "\n");
	}
	else
	{
		append_visible(page_desc, desc_size, "<|im_start|>user\n<|vision_start|><|image_pad|>x{grid_h*grid_w/4}<|vision_end|>");
		append_visible(page_desc, desc_size, p->visual_prompt_prefix);
		append_visible(page_desc, desc_size, "<|im_end|><|endoftext|>");
	}
	p->format_set = true;
	return CP_OK;
}

/*
 * cp_query_prompt_text
 *		The text of a query's prompt, query_before + text + query_after, in
 *		a malloc'd NUL-terminated *out of *out_len bytes (the trained format
 *		when none was applied).
 */
CpStatus
cp_query_prompt_text(const CpModelConfig *cfg, const char *text, size_t len,
					 char **out, size_t *out_len, CpError *err)
{
	CpPromptConfig local;
	const CpPromptConfig *p = &cfg->prompt;
	char		desc[8];
	size_t		blen;
	size_t		alen;
	char	   *buf;

	*out = NULL;
	*out_len = 0;
	if (!p->format_set)
	{
		CpStatus	st;

		local = cfg->prompt;
		st = apply_query_format(&local, cfg->arch == CP_ARCH_PALIGEMMA,
								CP_FORMAT_TRAINED, NULL, NULL, desc, sizeof(desc), err);
		if (st != CP_OK)
			return st;
		p = &local;
	}
	blen = strlen(p->query_before);
	alen = strlen(p->query_after);
	buf = malloc(blen + len + alen + 1);
	if (buf == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory building a prompt");
	memcpy(buf, p->query_before, blen);
	if (len > 0)
		memcpy(buf + blen, text, len);
	memcpy(buf + blen + len, p->query_after, alen);
	buf[blen + len + alen] = '\0';
	*out = buf;
	*out_len = blen + len + alen;
	return CP_OK;
}
