/*
 * test_tokenizer.c
 *	  Tokenizer ids against HF tokenizers: data/tok_*.json with golden ids
 *	  written by data/gen_tokenizer_golden.py (tokenizers 0.23.3), and the
 *	  fixtures helper's Gemma tokenizer + golden prompt ids when present.
 *	  Also malformed tokenizer.json files, invalid UTF-8, limits, prompts and
 *	  a long text (run, not timed).  The byte-level BPE of Qwen2 (NFC, regex
 *	  split, GPT-2 byte mapping) against test/fixtures/qwen (generate_qwen.py).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "prompt.h"
#include "tokenizer.h"
#include "test_util.h"

static int
hexval(char c)
{
	return (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* parse "hex\tids" lines; returns number of cases checked */
static int
check_golden(const CpTokenizer *tok, const char *golden_path)
{
	size_t		len;
	char	   *data = read_file(golden_path, &len);
	char	   *line;
	char	   *save = NULL;
	int			cases = 0;

	CHECK(data != NULL, "cannot read %s", golden_path);
	if (data == NULL)
		return 0;
	for (line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
	{
		char	   *tab = strchr(line, '\t');
		char	   *text;
		size_t		tlen = 0;
		int32_t		want[20000];
		int			nwant = 0;
		int32_t    *got = NULL;
		int			ngot = 0;
		CpError		err = {0};
		CpStatus	st;
		char	   *p;
		size_t		i;

		if (tab == NULL)
			continue;
		*tab = '\0';
		text = malloc(strlen(line) / 2 + 1);
		for (i = 0; line[2 * i] && line[2 * i + 1]; i++)
			text[tlen++] = (char) (hexval(line[2 * i]) * 16 + hexval(line[2 * i + 1]));
		text[tlen] = '\0';
		for (p = tab + 1; *p && nwant < 20000;)
		{
			char	   *end;
			long		v = strtol(p, &end, 10);

			if (end == p)
				break;
			want[nwant++] = (int32_t) v;
			p = end;
		}
		st = cp_tokenizer_encode(tok, text, tlen, 0, &got, &ngot, &err);
		CHECK(st == CP_OK, "encode case %d: %s", cases, err.msg);
		if (st == CP_OK)
		{
			bool		same = (ngot == nwant);

			for (i = 0; same && i < (size_t) ngot; i++)
				same = got[i] == want[i];
			if (!same)
			{
				failures++;
				printf("FAIL %s case %d (%zu bytes \"%.40s\"): got %d ids, want %d\n",
					   golden_path, cases, tlen, text, ngot, nwant);
				for (i = 0; i < (size_t) (ngot < nwant ? ngot : nwant); i++)
					if (got[i] != want[i])
					{
						printf("  first difference at %zu: got %d want %d\n", i, got[i], want[i]);
						break;
					}
			}
		}
		free(got);
		free(text);
		cases++;
	}
	free(data);
	return cases;
}

static CpTokenizer *
load(const char *path)
{
	CpTokenizer *tok = NULL;
	CpError		err = {0};

	CHECK(cp_tokenizer_load(path, &tok, &err) == CP_OK, "load %s: %s", path, err.msg);
	return tok;
}

static void
test_golden(void)
{
	CpTokenizer *tok = load("data/tok_small.json");
	int			n;

	if (tok)
	{
		n = check_golden(tok, "data/tok_small_golden.tsv");
		CHECK(n >= 30, "golden cases: %d", n);
		printf("tok_small: %d golden cases\n", n);
		CHECK(cp_tokenizer_token_id(tok, "<bos>") == 2, "bos id");
		CHECK(cp_tokenizer_token_id(tok, "<pad>") == 0, "pad id");
		CHECK(cp_tokenizer_token_id(tok, "<0x41>") > 0, "byte token id");
		CHECK(cp_tokenizer_token_id(tok, "no such token") == -1, "unknown token");
		cp_tokenizer_free(tok);
	}
	tok = load("data/tok_features.json");
	if (tok)
	{
		n = check_golden(tok, "data/tok_features_golden.tsv");
		CHECK(n >= 20, "feature cases: %d", n);
		printf("tok_features: %d golden cases\n", n);
		cp_tokenizer_free(tok);
	}
	tok = load("data/tok_nobytes.json");
	if (tok)
	{
		n = check_golden(tok, "data/tok_nobytes_golden.tsv");
		printf("tok_nobytes: %d golden cases\n", n);
		cp_tokenizer_free(tok);
	}
}

static void
fill_cfg(CpModelConfig *cfg, int nimg, int image_id, const char *prefix)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->num_image_tokens = nimg;
	cfg->image_token_id = image_id;
	cfg->bos_token_id = 2;
	snprintf(cfg->prompt.query_prefix, sizeof(cfg->prompt.query_prefix), "%s", prefix);
	snprintf(cfg->prompt.visual_prompt_prefix, sizeof(cfg->prompt.visual_prompt_prefix), "Describe the image.");
	snprintf(cfg->prompt.query_augmentation_token, sizeof(cfg->prompt.query_augmentation_token), "<pad>");
	cfg->prompt.query_augmentation_tokens = 10;
}

static bool
ids_equal_text(const CpTokenizer *tok, const int32_t *ids, int n, const char *text)
{
	int32_t    *want = NULL;
	int			nwant = 0;
	CpError		err;
	bool		same;
	int			i;

	if (cp_tokenizer_encode(tok, text, strlen(text), 0, &want, &nwant, &err) != CP_OK)
		return false;
	same = (n == nwant);
	for (i = 0; same && i < n; i++)
		same = ids[i] == want[i];
	free(want);
	return same;
}

static void
test_prompts(void)
{
	CpTokenizer *tok = load("data/tok_small.json");
	CpModelConfig cfg;
	int32_t    *ids = NULL;
	int			n = 0;
	CpError		err = {0};
	int32_t		img;

	if (tok == NULL)
		return;
	img = cp_tokenizer_token_id(tok, "<image>");
	CHECK(img > 0, "<image> id");

	/* the golden file holds the HF ids of these exact prompt strings */
	fill_cfg(&cfg, 2, img, "Question: ");
	CHECK(cp_build_image_prompt(tok, &cfg, &ids, &n, &err) == CP_OK, "image prompt: %s", err.msg);
	CHECK(ids && ids_equal_text(tok, ids, n, "<image><image><bos>Describe the image.\n"),
		  "image prompt ids");
	CHECK(n > 3 && ids[0] == img && ids[1] == img && ids[2] == 2, "image prompt layout");
	free(ids);
	ids = NULL;
	CHECK(cp_build_query_prompt(tok, &cfg, "What is X?", 10, &ids, &n, &err) == CP_OK, "query: %s", err.msg);
	CHECK(ids && ids_equal_text(tok, ids, n,
								"<bos>Question: What is X?<pad><pad><pad><pad><pad><pad><pad><pad><pad><pad>\n"),
		  "query prompt ids");
	CHECK(n >= 13 && ids[0] == 2 && ids[n - 2] == 0 && ids[n - 11] == 0,
		  "query prompt layout (bos, 10 pads, newline)");
	free(ids);
	ids = NULL;

	/* large image prompt */
	fill_cfg(&cfg, 1024, img, "Question: ");
	CHECK(cp_build_image_prompt(tok, &cfg, &ids, &n, &err) == CP_OK && n > 1026 && ids[1023] == img &&
		  ids[1024] == 2, "1024 image tokens");
	free(ids);
	ids = NULL;

	/* inconsistent image id */
	fill_cfg(&cfg, 4, img + 1, "Question: ");
	CHECK(cp_build_image_prompt(tok, &cfg, &ids, &n, &err) == CP_ERR_SHAPE, "image id mismatch: %s", err.msg);
	/* invalid UTF-8 in the query */
	CHECK(cp_build_query_prompt(tok, &cfg, "bad \xff", 5, &ids, &n, &err) == CP_ERR_FORMAT &&
		  strstr(err.msg, "byte 4"), "query bad utf8: %s", err.msg);
	cp_tokenizer_free(tok);
}

static void
test_invalid_text(void)
{
	CpTokenizer *tok = load("data/tok_small.json");
	static const char *bad[] = {
		"\xff", "a\x80", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82",
		"ok \xf0\x9f\x98", "\xf8\x88\x80\x80\x80",
	};
	int32_t    *ids = NULL;
	int			n = 0;
	CpError		err = {0};
	size_t		i;

	if (tok == NULL)
		return;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		CpStatus	st = cp_tokenizer_encode(tok, bad[i], strlen(bad[i]), 0, &ids, &n, &err);

		CHECK(st == CP_ERR_FORMAT && ids == NULL && strstr(err.msg, "UTF-8"), "invalid utf8 %zu: %s", i, err.msg);
	}
	/* limits */
	CHECK(cp_tokenizer_encode(tok, "a b c d e f g", 13, 3, &ids, &n, &err) == CP_ERR_LIMIT, "max tokens");
	CHECK(cp_tokenizer_encode(tok, "", 0, 0, &ids, &n, &err) == CP_OK && n == 0, "empty text");
	free(ids);
	CHECK(cp_tokenizer_encode(NULL, "a", 1, 0, &ids, &n, &err) == CP_ERR_INVALID_ARG, "null tokenizer");
	cp_tokenizer_free(tok);
}

static void
expect_bad_json(const char *what, const char *json, CpStatus want, const char *needle)
{
	CpTokenizer *tok = NULL;
	CpError		err = {0};
	CpStatus	st = cp_tokenizer_load_from_memory(json, strlen(json), &tok, &err);

	CHECK(st == want && tok == NULL, "%s: got %s, want %s (%s)", what, cp_status_name(st), cp_status_name(want), err.msg);
	CHECK(needle == NULL || strstr(err.msg, needle), "%s: message \"%s\" lacks \"%s\"", what, err.msg, needle);
	cp_tokenizer_free(tok);
}

#define VOC "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"<unk>\":3}"

static void
test_bad_json(void)
{
	CpTokenizer *tok = NULL;
	CpError		err = {0};
	const char *good = "{\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[\"a b\"],\"unk_token\":\"<unk>\"}}";
	int32_t    *ids = NULL;
	int			n = 0;

	expect_bad_json("not json", "{\"model\":", CP_ERR_FORMAT, "JSON");
	expect_bad_json("array", "[]", CP_ERR_FORMAT, "object");
	expect_bad_json("no model", "{}", CP_ERR_FORMAT, "model");
	expect_bad_json("unigram", "{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", CP_ERR_UNSUPPORTED, "Unigram");
	expect_bad_json("wordpiece", "{\"model\":{\"type\":\"WordPiece\"," VOC "}}", CP_ERR_UNSUPPORTED, "BPE");
	expect_bad_json("no vocab", "{\"model\":{\"type\":\"BPE\",\"merges\":[]}}", CP_ERR_FORMAT, "vocab");
	expect_bad_json("no merges", "{\"model\":{\"type\":\"BPE\"," VOC "}}", CP_ERR_FORMAT, "merges");
	expect_bad_json("vocab id string", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"0\"},\"merges\":[]}}",
					CP_ERR_FORMAT, "vocab");
	expect_bad_json("vocab id negative", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}",
					CP_ERR_FORMAT, "vocab");
	expect_bad_json("merge three parts", "{\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[\"a b c\"]}}",
					CP_ERR_FORMAT, "merge 0");
	expect_bad_json("merge number", "{\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[3]}}", CP_ERR_FORMAT, "merge 0");
	expect_bad_json("merge oov", "{\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[\"a b\",[\"b\",\"c\"]]}}",
					CP_ERR_FORMAT, "merge 1");
	expect_bad_json("merge result oov", "{\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[\"b a\"]}}",
					CP_ERR_FORMAT, "merge 0");
	expect_bad_json("dropout", "{\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[],\"dropout\":0.1}}",
					CP_ERR_UNSUPPORTED, "dropout");
	expect_bad_json("subword prefix", "{\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[],\"continuing_subword_prefix\":\"##\"}}",
					CP_ERR_UNSUPPORTED, "continuing_subword_prefix");
	expect_bad_json("nfkc", "{\"normalizer\":{\"type\":\"NFKC\"},\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}",
					CP_ERR_UNSUPPORTED, "NFKC");
	expect_bad_json("regex replace", "{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\"x\"},"
					"\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}", CP_ERR_UNSUPPORTED, "regex");
	expect_bad_json("bytelevel", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}",
					CP_ERR_UNSUPPORTED, "ByteLevel");
	expect_bad_json("normalizer no type", "{\"normalizer\":{},\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}",
					CP_ERR_FORMAT, "type");
	expect_bad_json("added not array", "{\"added_tokens\":{},\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}",
					CP_ERR_FORMAT, "added_tokens");
	expect_bad_json("added no id", "{\"added_tokens\":[{\"content\":\"x\"}],\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}",
					CP_ERR_FORMAT, "added token 0");
	expect_bad_json("added id conflict", "{\"added_tokens\":[{\"id\":5,\"content\":\"a\"}],\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}",
					CP_ERR_FORMAT, "\"a\"");
	expect_bad_json("added id reused", "{\"added_tokens\":[{\"id\":2,\"content\":\"<x>\"}],\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}",
					CP_ERR_FORMAT, "another token");
	expect_bad_json("lstrip", "{\"added_tokens\":[{\"id\":9,\"content\":\"<m>\",\"lstrip\":true}],\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}",
					CP_ERR_UNSUPPORTED, "lstrip");

	/* a minimal good one, with unk fusing off, and unk token missing */
	CHECK(cp_tokenizer_load_from_memory(good, strlen(good), &tok, &err) == CP_OK, "minimal: %s", err.msg);
	if (tok)
	{
		CHECK(cp_tokenizer_encode(tok, "abxxa", 5, 0, &ids, &n, &err) == CP_OK, "minimal encode");
		/* ab, <unk>, <unk> (fuse_unk false), a */
		CHECK(n == 4 && ids[0] == 2 && ids[1] == 3 && ids[2] == 3 && ids[3] == 0, "minimal ids n=%d", n);
		free(ids);
		cp_tokenizer_free(tok);
		tok = NULL;
	}
	{
		const char *nounk = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":\"<unk>\"}}";

		CHECK(cp_tokenizer_load_from_memory(nounk, strlen(nounk), &tok, &err) == CP_OK, "no unk in vocab loads");
		if (tok)
		{
			CHECK(cp_tokenizer_encode(tok, "a", 1, 0, &ids, &n, &err) == CP_OK && n == 1, "known char ok");
			free(ids);
			CHECK(cp_tokenizer_encode(tok, "z", 1, 0, &ids, &n, &err) == CP_ERR_FORMAT && strstr(err.msg, "unk"),
				  "unk missing at encode: %s", err.msg);
			cp_tokenizer_free(tok);
			tok = NULL;
		}
	}
	CHECK(cp_tokenizer_load("data/does-not-exist.json", &tok, &err) == CP_ERR_NOT_FOUND, "missing file");
	CHECK(cp_tokenizer_load("data", &tok, &err) == CP_ERR_IO && strstr(err.msg, "regular file"), "directory: %s", err.msg);
}

/* a long text: must be fast (heap BPE), must agree with itself split at added tokens */
static void
test_long_text(void)
{
	CpTokenizer *tok = load("data/tok_small.json");
	size_t		n = 4 * 1024 * 1024;
	char	   *text;
	int32_t    *ids = NULL;
	int			nids = 0;
	CpError		err = {0};
	clock_t		t0;
	size_t		i;
	static const char *words[] = {"the ", "image ", "revenue ", "table ", "  ", "\u00e9t\u00e9 ", "x", "\U0001F600", "chart "};

	if (tok == NULL)
		return;
	text = malloc(n + 16);
	for (i = 0; i < n;)
	{
		const char *w = words[(i * 7919 / 13) % 9];
		size_t		l = strlen(w);

		memcpy(text + i, w, l);
		i += l;
	}
	n = i;
	t0 = clock();
	CHECK(cp_tokenizer_encode(tok, text, n, 0, &ids, &nids, &err) == CP_OK, "long text: %s", err.msg);
	printf("long text: %zu bytes -> %d tokens in %.2f s CPU\n", n, nids,
		   (double) (clock() - t0) / CLOCKS_PER_SEC);
	free(ids);
	/* one long run of a single repeated character (worst case for naive BPE) */
	memset(text, 'a', 1 << 20);
	t0 = clock();
	CHECK(cp_tokenizer_encode(tok, text, 1 << 20, 0, &ids, &nids, &err) == CP_OK, "run of a");
	printf("1 MB of 'a' -> %d tokens in %.2f s CPU\n", nids, (double) (clock() - t0) / CLOCKS_PER_SEC);
	free(ids);
	free(text);
	cp_tokenizer_free(tok);
}

/*
 * Fixtures (test/fixtures, written by transformers + tokenizers): the
 * Gemma-style tokenizer in both tokenizer.json forms against
 * tokenizer_golden.tsv, and the full processor prompts (page_ids, query ids
 * of manifest.json) built from each model folder's own config + tokenizer.
 */
static void
check_fixture_prompts(json_t *manifest)
{
	json_t	   *models = json_object_get(manifest, "models");
	json_t	   *goldens = json_object_get(manifest, "goldens");
	size_t		i;
	int			checked = 0;

	for (i = 0; i < json_array_size(models); i++)
	{
		json_t	   *m = json_array_get(models, i);
		const char *name = json_string_value(json_object_get(m, "name"));
		json_t	   *g = json_object_get(goldens, json_string_value(json_object_get(m, "golden")));
		json_t	   *base = json_object_get(m, "base_dir");
		char		dir[512];
		char		cfgdir[512];
		char		path[600];
		CpModelConfig cfg;
		CpTokenizer *tok = NULL;
		CpError		err = {0};
		int32_t    *ids = NULL;
		int			n = 0;
		json_t	   *want;
		json_t	   *queries;
		size_t		q;
		size_t		k;
		bool		same;

		snprintf(dir, sizeof(dir), "../fixtures/%s", json_string_value(json_object_get(m, "dir")));
		/* an adapter folder has no config.json: the base's */
		snprintf(cfgdir, sizeof(cfgdir), "../fixtures/%s", json_is_string(base) ? json_string_value(base) :
				 json_string_value(json_object_get(m, "dir")));
		if (cp_config_load(cfgdir, &cfg, &err) != CP_OK)
		{
			CHECK(0, "%s config: %s", name, err.msg);
			continue;
		}
		/* the tokenizer comes from the folder the user points at */
		snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
		CHECK(cp_tokenizer_load(path, &tok, &err) == CP_OK, "%s tokenizer: %s", name, err.msg);
		if (tok == NULL || g == NULL)
			continue;
		CHECK(strcmp(cfg.prompt.query_prefix, json_string_value(json_object_get(g, "query_prefix"))) == 0 &&
			  strcmp(cfg.prompt.visual_prompt_prefix, json_string_value(json_object_get(g, "visual_prompt_prefix"))) == 0,
			  "%s prefixes \"%s\" / \"%s\"", name, cfg.prompt.query_prefix, cfg.prompt.visual_prompt_prefix);
		want = json_object_get(g, "page_ids");
		CHECK(cp_build_image_prompt(tok, &cfg, &ids, &n, &err) == CP_OK, "%s page prompt: %s", name, err.msg);
		same = ids != NULL && (size_t) n == json_array_size(want);
		for (k = 0; same && k < (size_t) n; k++)
			same = ids[k] == json_integer_value(json_array_get(want, k));
		CHECK(same, "%s page_ids (%d ids)", name, n);
		free(ids);
		ids = NULL;
		queries = json_object_get(g, "queries");
		for (q = 0; q < json_array_size(queries); q++)
		{
			json_t	   *qq = json_array_get(queries, q);
			const char *text = json_string_value(json_object_get(qq, "text"));

			want = json_object_get(qq, "ids");
			CHECK(cp_build_query_prompt(tok, &cfg, text, json_string_length(json_object_get(qq, "text")), &ids, &n,
										&err) == CP_OK, "%s query %zu: %s", name, q, err.msg);
			same = ids != NULL && (size_t) n == json_array_size(want);
			for (k = 0; same && k < (size_t) n; k++)
				same = ids[k] == json_integer_value(json_array_get(want, k));
			CHECK(same, "%s query %zu ids (\"%.40s\", %d ids, want %zu)", name, q, text, n, json_array_size(want));
			free(ids);
			ids = NULL;
			checked++;
		}
		cp_tokenizer_free(tok);
	}
	printf("fixture prompts: %d queries + pages of %zu models checked\n", checked, json_array_size(models));
}

static void
test_fixture_tokenizer(void)
{
	static const char *files[] = {"../fixtures/tokenizer/tokenizer.json", "../fixtures/models/tiny/tokenizer.json",
	"../fixtures/models/tiny-hf-old/tokenizer.json"};
	json_error_t jerr;
	json_t	   *manifest;
	size_t		i;

	if (access("../fixtures/tokenizer_golden.tsv", F_OK) != 0)
	{
		printf("note: ../fixtures/tokenizer_golden.tsv not present, fixture tokenizer skipped\n");
		return;
	}
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
	{
		CpTokenizer *tok = load(files[i]);

		if (tok)
		{
			int			n = check_golden(tok, "../fixtures/tokenizer_golden.tsv");

			CHECK(n >= 50, "fixture golden cases %d", n);
			printf("%s: %d golden cases\n", files[i], n);
			cp_tokenizer_free(tok);
		}
	}
	manifest = json_load_file("../fixtures/manifest.json", 0, &jerr);
	CHECK(manifest != NULL, "manifest: %s", jerr.text);
	if (manifest)
	{
		check_fixture_prompts(manifest);
		json_decref(manifest);
	}
}

#define BL_VOC "\"vocab\":{\"a\":0,\"\\u0120\":1,\"\\u0120a\":2,\"\\u010a\":3,\"\\u00c2\":4,\"\\u0143\":5,\"\\u00c3\":6,\"e\":7,\"\\u00a9\":8,\"\\u00c3\\u00a9\":9}"
#define BL_PRE(extra) "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false" extra "}"

/*
 * encode_is
 *		Encode text with tok and compare with the wanted ids.
 */
static void
encode_is(const CpTokenizer *tok, const char *what, const char *text,
		  const int32_t *want, int nwant)
{
	int32_t    *got = NULL;
	int			n = 0;
	int			i;
	CpError		err = {0};
	bool		same;

	CHECK(cp_tokenizer_encode(tok, text, strlen(text), 0, &got, &n, &err) == CP_OK, "%s: %s", what, err.msg);
	same = (n == nwant);
	for (i = 0; same && i < n; i++)
		same = got[i] == want[i];
	CHECK(same, "%s: got %d ids (first %d), want %d", what, n, n > 0 ? got[0] : -1, nwant);
	free(got);
}

/*
 * test_byte_level
 *		GPT-2's byte map on a hand-made vocabulary (space -> U+0120, newline
 *		-> U+010A, 0xAD -> U+0143, 0xC3 and 0xA9 unchanged), NFC before it,
 *		and the byte-level
 *		options that are refused.
 */
static void
test_byte_level(void)
{
	CpTokenizer *tok = NULL;
	CpError		err = {0};
	const char *json =
		"{\"normalizer\":{\"type\":\"NFC\"}," BL_PRE("") ","
		"\"model\":{\"type\":\"BPE\"," BL_VOC ",\"merges\":[[\"\\u0120\",\"a\"],[\"\\u00c3\",\"\\u00a9\"]]}}";
	const int32_t sp_a[] = {2};
	const int32_t nl_sp_a[] = {3, 2};
	const int32_t shy[] = {4, 5};
	const int32_t e_acute[] = {9};

	CHECK(cp_tokenizer_load_from_memory(json, strlen(json), &tok, &err) == CP_OK, "byte-level load: %s", err.msg);
	if (tok)
	{
		encode_is(tok, "space a", " a", sp_a, 1);
		encode_is(tok, "newline space a", "\n a", nl_sp_a, 2);
		encode_is(tok, "soft hyphen", "\xc2\xad", shy, 2);
		/* e + combining acute composes to U+00E9 (bytes C3 A9 -> U+00C3 U+00A9) */
		encode_is(tok, "nfc", "e\xcc\x81", e_acute, 1);
		cp_tokenizer_free(tok);
	}
	expect_bad_json("bytelevel prefix space", "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":false},"
					"\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}", CP_ERR_UNSUPPORTED, "add_prefix_space");
	expect_bad_json("regex contiguous", "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a+\"},\"behavior\":\"Contiguous\",\"invert\":false},"
					"\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}", CP_ERR_UNSUPPORTED, "Contiguous");
	expect_bad_json("bad regex", "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\",\"invert\":false},"
					"\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}", CP_ERR_UNSUPPORTED, "regex");
	expect_bad_json("after bytelevel", "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false},"
					"{\"type\":\"Split\",\"pattern\":{\"String\":\"a\"},\"behavior\":\"Isolated\",\"invert\":false}]},"
					"\"model\":{\"type\":\"BPE\"," VOC ",\"merges\":[]}}", CP_ERR_UNSUPPORTED, "after ByteLevel");
}

/*
 * test_qwen_tokenizer
 *		The tiny Qwen2-style tokenizer of test/fixtures/qwen in both merge
 *		spellings and as shipped in each model folder: every golden string
 *		gives the ids of HF tokenizers; special ids as the manifest says.
 */
static void
test_qwen_tokenizer(void)
{
	const char *files[] = {
		"../fixtures/qwen/tokenizer/tokenizer.json",
		"../fixtures/qwen/tokenizer/tokenizer_string_merges.json",
		"../fixtures/qwen/models/colqwen2-hub2024/tokenizer.json",
		"../fixtures/qwen/models/colqwen2-t5/tokenizer.json",
		"../fixtures/qwen/models/colqwen2_5-hub2024/tokenizer.json",
	};
	json_error_t jerr;
	json_t	   *manifest = json_load_file("../fixtures/qwen/manifest.json", 0, &jerr);
	json_t	   *special;
	size_t		i;

	CHECK(manifest != NULL, "qwen manifest: %s", jerr.text);
	if (manifest == NULL)
		return;
	special = json_object_get(json_object_get(manifest, "tokenizer"), "special_ids");
	CHECK(json_object_size(special) >= 14, "special ids in the manifest");
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
	{
		CpTokenizer *tok = load(files[i]);
		const char *key;
		json_t	   *val;
		int			n;

		if (tok == NULL)
			continue;
		n = check_golden(tok, "../fixtures/qwen/tokenizer_golden.tsv");
		CHECK(n >= 60, "qwen golden cases %d", n);
		printf("%s: %d golden cases\n", files[i], n);
		if (i == 0)
		{
			/* long runs through the regex split (run, not timed) */
			size_t		len = 1 << 20;
			char	   *big = malloc(len + 1);
			int32_t    *ids = NULL;
			int			nids = 0;
			CpError		err = {0};
			size_t		k;
			clock_t		t0 = clock();

			for (k = 0; k < len; k++)
				big[k] = (k / 4096) % 2 ? " \t\n x\xc3\xa9"[k % 8] : ' ';
			for (k = len - 8; k < len; k++)
				big[k] = 'x';	/* no split UTF-8 at the end */
			big[len] = '\0';
			CHECK(cp_tokenizer_encode(tok, big, len, 0, &ids, &nids, &err) == CP_OK && nids > 0,
				  "1 MB of whitespace runs: %s", err.msg);
			printf("qwen: 1 MB of whitespace runs -> %d tokens in %.2f s CPU\n", nids,
				   (double) (clock() - t0) / CLOCKS_PER_SEC);
			free(ids);
			free(big);
		}
		json_object_foreach(special, key, val)
			CHECK(cp_tokenizer_token_id(tok, key) == json_integer_value(val),
				  "%s: id of %s is %d, manifest says %d", files[i], key,
				  cp_tokenizer_token_id(tok, key), (int) json_integer_value(val));
		cp_tokenizer_free(tok);
	}
	json_decref(manifest);
}

int
main(void)
{
	test_golden();
	test_prompts();
	test_invalid_text();
	test_bad_json();
	test_long_text();
	test_fixture_tokenizer();
	test_byte_level();
	test_qwen_tokenizer();
	if (failures)
	{
		printf("test_tokenizer: %d failure(s)\n", failures);
		return 1;
	}
	printf("test_tokenizer: ok\n");
	return 0;
}
