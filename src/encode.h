/*
 * encode.h
 *	  Declarations shared by the encoder glue: settings and engine options
 *	  (encode_guc.c), status-to-SQLSTATE mapping (encode_errors.c) and the
 *	  in-process engine (encode_inprocess.c).  The background worker's client
 *	  side has worker_client.h, the statistics stats.h.
 */
#ifndef COLPALI_ENCODE_H
#define COLPALI_ENCODE_H

#include "postgres.h"

#include "colpali_engine.h"
#include "multivector.h"

/* What an encoding request carries: page images or query strings. */
typedef enum EncodeKind
{
	ENCODE_IMAGES = 0,
	ENCODE_QUERIES = 1,
	ENCODE_MODEL_INFO = 2		/* no inputs: load the model, describe it */
} EncodeKind;

/* In which step an engine error happened (selects SQLSTATE and hint). */
typedef enum EncodePhase
{
	PHASE_LOAD = 0,				/* cp_engine_open: checkpoint files */
	PHASE_ENCODE = 1			/* cp_engine_encode_*: the input */
} EncodePhase;

/* Settings (encode_guc.c). */
extern char *colpali_model_path;
extern char *colpali_base_model_path;
extern int	colpali_device;
extern int	colpali_threads;
extern int	colpali_max_image_pixels;
extern int	colpali_max_visual_tokens;
extern bool colpali_use_worker;
extern int	colpali_max_batch;
extern int	colpali_max_wait_ms;
extern int	colpali_attention;
extern int	colpali_cpu_weights;
extern int	colpali_cpu_precision;
extern bool colpali_cpu_amx;
extern int	colpali_debug_batch_delay_ms;
extern int	colpali_query_format;
extern char *colpali_query_prefix;
extern char *colpali_query_suffix;
extern int	colpali_page_format;
extern char *colpali_page_prompt;

/* Longest prompt setting (query prefix / suffix, page prompt) + 1, in bytes. */
#define COLPALI_PROMPT_TEXT_LEN		256

/* Longest query text accepted, in bytes (a query is a sentence, not a book). */
#define COLPALI_MAX_QUERY_BYTES		(64 * 1024)
/* Largest image accepted, in bytes (before the pixel limit is checked). */
#define COLPALI_MAX_IMAGE_BYTES		((Size) 256 * 1024 * 1024)

/*
 * Engine identity: what must match for a loaded engine to be reused.  A new
 * setting that changes the engine's output belongs here: requests travel to
 * the worker with it, the worker batches by it, both engines reopen when it
 * changes, and colpali_query's kept results are keyed by it (encode.c).
 */
typedef struct EncoderKey
{
	char		model_path[MAXPGPATH];
	char		base_model_path[MAXPGPATH];
	int64		max_image_pixels;
	int32		attention;		/* CpAttentionMode */
	int32		cpu_weights;	/* CpWeightMode */
	int32		cpu_precision;	/* CpPrecision */
	int32		cpu_amx;		/* colpali.cpu_amx: 1 = AMX tiles where usable */
	int32		max_visual_tokens;	/* ColQwen2 page budget; 0 = 768 */
	int32		query_format;	/* CpPromptFormat */
	int32		page_format;	/* CpPromptFormat */
	char		query_prefix[COLPALI_PROMPT_TEXT_LEN];	/* UTF-8, custom format */
	char		query_suffix[COLPALI_PROMPT_TEXT_LEN];
	char		page_prompt[COLPALI_PROMPT_TEXT_LEN];	/* "" = checkpoint's */
} EncoderKey;

extern void EncoderKeyFromSettings(EncoderKey *key);
extern void EncoderEngineOptions(const EncoderKey *key, CpDevice device,
								 CpEngineOptions *opts);
extern bool EncoderMayShowModelPath(void);

/* What colpali_model_info() reports (model_info.c), copied from CpModelInfo. */
typedef struct EncoderModelInfo
{
	char		architecture[32];
	int32		embedding_dim;
	int32		page_rows;
	int32		visual_tokens;
	char		query_format[512];
	char		page_format[1024];
	char		precision[8];
	char		device[16];
	char		kernels[256];
} EncoderModelInfo;

extern void EncoderModelInfoFromEngine(const CpEngine *engine,
									   EncoderModelInfo *info);

/* encode_errors.c */
pg_noreturn extern void ReportEncoderError(CpStatus status, const char *msg,
										   EncodePhase phase, EncodeKind kind,
										   const char *model_path);

/* encode_inprocess.c: the engine of the calling backend */
extern void EncodeInProcess(EncodeKind kind, int n, const uint8 *const *inputs,
							const size_t *lengths, MultiVector **out);
extern void ModelInfoInProcess(EncoderModelInfo *info);

#endif							/* COLPALI_ENCODE_H */
