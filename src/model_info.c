/*
 * model_info.c
 *	  colpali_model_info(): what the encoder computes for the session's
 *	  settings: the model family chosen from the checkpoint, the embedding
 *	  width, how many rows a page gets, the query and page prompt formats
 *	  (docs/encoder.md#prompt-formats), the precision and the device and
 *	  kernels it runs on.
 *
 * The answer comes from the engine that would encode: the background
 * worker's when colpali_query would use it (a request of kind
 * ENCODE_MODEL_INFO, which loads the model there if needed), else the
 * backend's own.  The model path is not shown (superuser-only setting).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "encode.h"
#include "worker_client.h"

PG_FUNCTION_INFO_V1(colpali_model_info);

/*
 * EncoderModelInfoFromEngine
 *		Copy an open engine's CpModelInfo into fixed-size fields (they
 *		travel through shared memory from the worker).
 */
void
EncoderModelInfoFromEngine(const CpEngine *engine, EncoderModelInfo *info)
{
	CpModelInfo mi;

	cp_engine_model_info(engine, &mi);
	memset(info, 0, sizeof(EncoderModelInfo));
	strlcpy(info->architecture, mi.architecture, sizeof(info->architecture));
	info->embedding_dim = mi.embedding_dim;
	info->page_rows = mi.page_rows;
	info->visual_tokens = mi.visual_tokens;
	strlcpy(info->query_format, mi.query_format, sizeof(info->query_format));
	strlcpy(info->page_format, mi.page_format, sizeof(info->page_format));
	strlcpy(info->precision, mi.precision, sizeof(info->precision));
	strlcpy(info->device, mi.device, sizeof(info->device));
	strlcpy(info->kernels, mi.kernels, sizeof(info->kernels));
}

/*
 * colpali_model_info
 *		One row describing the configured model as the encoder sees it.
 */
Datum
colpali_model_info(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	EncoderModelInfo info;
	Datum		values[10];
	bool		nulls[10] = {0};
	bool		worker;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (colpali_model_path == NULL || colpali_model_path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no colpali model is configured"),
				 errhint("A superuser must set colpali.model_path to a checkpoint folder.")));

	worker = colpali_use_worker && WorkerAvailable();
	if (worker)
		WorkerModelInfo(&info);
	else
		ModelInfoInProcess(&info);

	values[0] = CStringGetTextDatum(info.architecture);
	values[1] = Int32GetDatum(info.embedding_dim);
	values[2] = Int32GetDatum(info.page_rows);
	values[3] = Int32GetDatum(info.visual_tokens);
	values[4] = CStringGetTextDatum(info.query_format);
	values[5] = CStringGetTextDatum(info.page_format);
	values[6] = CStringGetTextDatum(info.precision);
	values[7] = CStringGetTextDatum(info.device);
	values[8] = CStringGetTextDatum(info.kernels);
	values[9] = CStringGetTextDatum(worker ? "worker" : "in-process");
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
