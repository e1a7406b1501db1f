/*
 * encode_guc.c
 *	  Settings of the encoder and of its background worker.
 *
 * Model paths are superuser-only (PGC_SUSET + GUC_SUPERUSER_ONLY) and go
 * through a check hook: absolute, no ".." component, canonicalised.  Paths
 * never come from SQL function arguments, so an ordinary user cannot make
 * the server open a file of their choosing.
 *
 * Which process reads which setting: the process that runs the engine.  In
 * process (no preload, or colpali.use_worker = off) that is the calling
 * backend; through the worker, the model paths and pixel limit travel with
 * each request (see EncoderKey), while device, threads, max_batch and
 * max_wait_ms are the worker's own, i.e. the server configuration.
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/pg_authid.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/guc.h"

#include "colpali.h"
#include "encode.h"

char	   *colpali_model_path = NULL;
char	   *colpali_base_model_path = NULL;
int			colpali_device = CP_DEVICE_AUTO;
int			colpali_threads = 0;
int			colpali_max_image_pixels = 89478485;
int			colpali_max_visual_tokens = 0;
bool		colpali_use_worker = true;
int			colpali_max_batch = 16;
int			colpali_max_wait_ms = 5;
int			colpali_attention = CP_ATTENTION_AUTO;
int			colpali_cpu_weights = CP_WEIGHTS_AUTO;
int			colpali_cpu_precision = CP_PRECISION_FP32;
bool		colpali_cpu_amx = true;
int			colpali_debug_batch_delay_ms = 0;
int			colpali_query_format = CP_FORMAT_TRAINED;
char	   *colpali_query_prefix = NULL;
char	   *colpali_query_suffix = NULL;
int			colpali_page_format = CP_FORMAT_TRAINED;
char	   *colpali_page_prompt = NULL;

static const struct config_enum_entry device_options[] = {
	{"auto", CP_DEVICE_AUTO, false},
	{"cpu", CP_DEVICE_CPU, false},
	{"cuda", CP_DEVICE_CUDA, false},
	{NULL, 0, false}
};

static const struct config_enum_entry attention_options[] = {
	{"auto", CP_ATTENTION_AUTO, false},
	{"bidirectional", CP_ATTENTION_BIDIRECTIONAL, false},
	{"causal", CP_ATTENTION_CAUSAL, false},
	{NULL, 0, false}
};

static const struct config_enum_entry cpu_precision_options[] = {
	{"fp32", CP_PRECISION_FP32, false},
	{"bf16", CP_PRECISION_BF16, false},
	{NULL, 0, false}
};

static const struct config_enum_entry query_format_options[] = {
	{"trained", CP_FORMAT_TRAINED, false},
	{"colpali_engine", CP_FORMAT_COLPALI_ENGINE, false},
	{"transformers", CP_FORMAT_TRANSFORMERS, false},
	{"custom", CP_FORMAT_CUSTOM, false},
	{NULL, 0, false}
};

static const struct config_enum_entry page_format_options[] = {
	{"trained", CP_FORMAT_TRAINED, false},
	{"colpali_engine", CP_FORMAT_COLPALI_ENGINE, false},
	{"transformers", CP_FORMAT_TRANSFORMERS, false},
	{NULL, 0, false}
};

static const struct config_enum_entry cpu_weights_options[] = {
	{"auto", CP_WEIGHTS_AUTO, false},
	{"fp32", CP_WEIGHTS_FP32, false},
	{"lazy", CP_WEIGHTS_LAZY, false},
	{NULL, 0, false}
};

/*
 * CheckPromptText
 *		GUC check hook of the prompt texts: short enough to travel with each
 *		request (EncoderKey), and no NUL (impossible anyway) or invalid
 *		encoding (the server checked the value already).
 */
static bool
CheckPromptText(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && strlen(*newval) >= COLPALI_PROMPT_TEXT_LEN)
	{
		GUC_check_errdetail("A prompt text may have at most %d bytes.",
							COLPALI_PROMPT_TEXT_LEN - 1);
		return false;
	}
	return true;
}

/*
 * HasParentComponent
 *		True if any "/"-separated component of path is "..".  (Core's
 *		path_contains_parent_reference expects an already canonicalised path,
 *		and canonicalisation would silently resolve "/a/../b" to "/b".)
 */
static bool
HasParentComponent(const char *path)
{
	const char *p = path;

	while (*p)
	{
		const char *end = strchr(p, '/');
		size_t		len = end ? (size_t) (end - p) : strlen(p);

		if (len == 2 && p[0] == '.' && p[1] == '.')
			return true;
		if (end == NULL)
			break;
		p = end + 1;
	}
	return false;
}

/*
 * CheckModelPath
 *		Check hook of colpali.model_path and colpali.base_model_path: empty
 *		(not configured) or an absolute path without ".." components, which
 *		is canonicalised in place (canonicalize_path only shortens).
 */
static bool
CheckModelPath(char **newval, void **extra, GucSource source)
{
	char	   *path = *newval;

	if (path == NULL || path[0] == '\0')
		return true;
	if (strlen(path) >= MAXPGPATH)
	{
		GUC_check_errdetail("The path is longer than %d bytes.", MAXPGPATH - 1);
		return false;
	}
	if (!is_absolute_path(path))
	{
		GUC_check_errdetail("The model path must be absolute.");
		return false;
	}
	if (HasParentComponent(path))
	{
		GUC_check_errdetail("The model path must not contain \"..\" components.");
		return false;
	}
	canonicalize_path(path);
	return true;
}

/*
 * EncoderInit
 *		Define the colpali.* settings of the encoder and the worker.  Called
 *		from _PG_init before the prefix is reserved.
 */
void
EncoderInit(void)
{
	DefineCustomStringVariable("colpali.model_path",
							   "Checkpoint folder of the ColPali model.",
							   "A Hugging Face checkpoint folder (config.json, "
							   "*.safetensors, tokenizer.json, ...) or a LoRA "
							   "adapter folder; absolute path. Empty means no "
							   "model is configured.",
							   &colpali_model_path,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   CheckModelPath, NULL, NULL);

	DefineCustomStringVariable("colpali.base_model_path",
							   "Base checkpoint folder for a LoRA adapter in colpali.model_path.",
							   "Absolute path; empty when colpali.model_path is a full checkpoint.",
							   &colpali_base_model_path,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY,
							   CheckModelPath, NULL, NULL);

	DefineCustomEnumVariable("colpali.device",
							 "Device the background worker encodes on.",
							 "auto uses CUDA when available, else the CPU. "
							 "Encoding inside a backend (no worker) always uses the CPU.",
							 &colpali_device,
							 CP_DEVICE_AUTO,
							 device_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("colpali.threads",
							"CPU threads used by one encoding call.",
							"0 lets the engine choose (all cores).",
							&colpali_threads,
							0, 0, 1024,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("colpali.max_image_pixels",
							"Largest image, in pixels, that the encoder decodes.",
							"Protects against decompression bombs; larger images "
							"are rejected before any pixel buffer is allocated. "
							"0 disables the limit.",
							&colpali_max_image_pixels,
							89478485, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("colpali.max_visual_tokens",
							"ColQwen2 / ColQwen2.5: most visual tokens per page.",
							"Pages are resized (smart_resize) to at most this many merged "
							"28x28 patches, and never beyond the checkpoint's max_pixels. "
							"0 means 768, the budget these models were trained with. "
							"No effect on ColPali, whose pages have a fixed size.",
							&colpali_max_visual_tokens,
							0, 0, 16384,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("colpali.query_format",
							 "Prompt a query is wrapped in before it is encoded.",
							 "trained is the prompt the published checkpoints were trained "
							 "with (ColPali: <bos>Question: q<pad>x10 and a newline; ColQwen2: "
							 "Query: q<|endoftext|>x10); colpali_engine and transformers are "
							 "what those Python packages build; custom uses "
							 "colpali.query_prefix + q + colpali.query_suffix. Pages and "
							 "queries of one index must be encoded alike.",
							 &colpali_query_format,
							 CP_FORMAT_TRAINED,
							 query_format_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("colpali.query_prefix",
							   "Text before the query when colpali.query_format is custom.",
							   "Tokenized together with the query; special tokens such as "
							   "<bos> are written out.",
							   &colpali_query_prefix,
							   "",
							   PGC_SUSET,
							   0,
							   CheckPromptText, NULL, NULL);

	DefineCustomStringVariable("colpali.query_suffix",
							   "Text after the query when colpali.query_format is custom.",
							   "For example ten <|endoftext|> (ColQwen2) or <pad> (ColPali) "
							   "query augmentation tokens.",
							   &colpali_query_suffix,
							   "",
							   PGC_SUSET,
							   0,
							   CheckPromptText, NULL, NULL);

	DefineCustomEnumVariable("colpali.page_format",
							 "Prompt a page image is encoded with.",
							 "trained and transformers give ColPali pages one <bos>, "
							 "colpali_engine two (as colpali-engine 0.3.18); ColQwen2 pages "
							 "are the same in every format.",
							 &colpali_page_format,
							 CP_FORMAT_TRAINED,
							 page_format_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("colpali.page_prompt",
							   "Instruction after the image in the page prompt.",
							   "Empty uses the checkpoint's, normally \"Describe the image.\".",
							   &colpali_page_prompt,
							   "",
							   PGC_SUSET,
							   0,
							   CheckPromptText, NULL, NULL);

	DefineCustomBoolVariable("colpali.use_worker",
							 "Send encoding requests to the background worker when it runs.",
							 "Off encodes inside the calling backend on the CPU.",
							 &colpali_use_worker,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("colpali.attention",
							 "Attention mask of the language model over the prompt.",
							 "auto follows the checkpoint's config.json (bidirectional "
							 "when unset, as ColPali was trained); causal reproduces "
							 "transformers called without token_type_ids.",
							 &colpali_attention,
							 CP_ATTENTION_AUTO,
							 attention_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("colpali.cpu_weights",
							 "How the CPU engine holds bf16/f16 weights.",
							 "fp32 converts them once at load (more memory, faster); "
							 "lazy keeps them mapped and converts tile by tile; auto "
							 "lets the engine choose.",
							 &colpali_cpu_weights,
							 CP_WEIGHTS_AUTO,
							 cpu_weights_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomEnumVariable("colpali.cpu_precision",
							 "Arithmetic of the CPU encoder's matrix products.",
							 "fp32 reproduces the reference implementation; bf16 rounds "
							 "the activations entering each weight matrix product to "
							 "bfloat16 (exact products, float32 sums, everything else "
							 "float32) for about twice the page throughput on CPUs with "
							 "AVX512_BF16; elsewhere it computes as fp32.",
							 &colpali_cpu_precision,
							 CP_PRECISION_FP32,
							 cpu_precision_options,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("colpali.cpu_amx",
							 "Lets the CPU encoder and mvivf index scans use AMX tiles where the CPU has them.",
							 "off runs the AVX-512 kernels instead: slower, but fp32 "
							 "precision then keeps no packed copy of the weight "
							 "matrices in the encoding process, and mvivf scans "
							 "score residual codes with their 16-bit tables (on, "
							 "they use int8 products: AMX tiles, or AVX-512 VNNI "
							 "on CPUs without AMX).",
							 &colpali_cpu_amx,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("colpali.debug_batch_delay_ms",
							"Developer option: the worker sleeps this long before each batch.",
							"Makes requests stay in flight long enough for tests of "
							"cancellation and worker exit. Leave at 0.",
							&colpali_debug_batch_delay_ms,
							0, 0, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	DefineCustomIntVariable("colpali.max_batch",
							"Most page images the worker encodes in one batch.",
							NULL,
							&colpali_max_batch,
							16, 1, 256,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("colpali.max_wait_ms",
							"Longest time the worker waits to fill a batch.",
							"Counted from the arrival of the oldest waiting request.",
							&colpali_max_wait_ms,
							5, 0, 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/*
 * PromptTextToUtf8
 *		Copy a prompt setting into a key field in UTF-8, what the engine
 *		reads (the setting is in the server encoding).
 */
static void
PromptTextToUtf8(char *dst, const char *value)
{
	char	   *utf8;

	if (value == NULL)
		value = "";
	utf8 = pg_server_to_any(value, strlen(value), PG_UTF8);
	if (strlen(utf8) >= COLPALI_PROMPT_TEXT_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a colpali prompt setting is longer than %d bytes in UTF-8",
						COLPALI_PROMPT_TEXT_LEN - 1)));
	strlcpy(dst, utf8, COLPALI_PROMPT_TEXT_LEN);
	if (utf8 != value)
		pfree(utf8);
}

/*
 * EncoderKeyFromSettings
 *		Fill *key from this session's settings.
 */
void
EncoderKeyFromSettings(EncoderKey *key)
{
	memset(key, 0, sizeof(EncoderKey));
	strlcpy(key->model_path, colpali_model_path ? colpali_model_path : "",
			MAXPGPATH);
	strlcpy(key->base_model_path,
			colpali_base_model_path ? colpali_base_model_path : "", MAXPGPATH);
	key->max_image_pixels = colpali_max_image_pixels;
	key->attention = colpali_attention;
	key->cpu_weights = colpali_cpu_weights;
	key->cpu_precision = colpali_cpu_precision;
	key->cpu_amx = colpali_cpu_amx ? 1 : 0;
	key->max_visual_tokens = colpali_max_visual_tokens;
	key->query_format = colpali_query_format;
	key->page_format = colpali_page_format;
	PromptTextToUtf8(key->query_prefix, colpali_query_prefix);
	PromptTextToUtf8(key->query_suffix, colpali_query_suffix);
	PromptTextToUtf8(key->page_prompt, colpali_page_prompt);
}

/*
 * EncoderEngineOptions
 *		Engine options for the model of key on device, with this process's
 *		threads and batch size: the one place where settings become
 *		CpEngineOptions, for the in-process engine and the worker alike.
 *		The options point into *key, which must outlive cp_engine_open; the
 *		caller sets the cancel callback.
 */
void
EncoderEngineOptions(const EncoderKey *key, CpDevice device,
					 CpEngineOptions *opts)
{
	memset(opts, 0, sizeof(CpEngineOptions));
	opts->model_dir = key->model_path;
	opts->base_model_dir = key->base_model_path[0] ? key->base_model_path : NULL;
	opts->device = device;
	opts->threads = colpali_threads;
	opts->max_image_pixels = key->max_image_pixels;
	opts->cancel = NULL;
	opts->cancel_arg = NULL;
	opts->cpu_weights = (CpWeightMode) key->cpu_weights;
	opts->cpu_precision = (CpPrecision) key->cpu_precision;
	opts->cpu_no_amx = (key->cpu_amx == 0);
	opts->max_batch = colpali_max_batch;
	opts->attention = (CpAttentionMode) key->attention;
	opts->max_visual_tokens = key->max_visual_tokens;
	opts->query_format = (CpPromptFormat) key->query_format;
	opts->query_prefix = key->query_prefix;
	opts->query_suffix = key->query_suffix;
	opts->page_format = (CpPromptFormat) key->page_format;
	opts->page_prompt = key->page_prompt;
}

/*
 * EncoderMayShowModelPath
 *		May the current role see the model path (and what the checkpoint
 *		files contain)?  The same rule as SHOW applies to a superuser-only
 *		setting: superusers and members of pg_read_all_settings.
 */
bool
EncoderMayShowModelPath(void)
{
	return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS);
}
