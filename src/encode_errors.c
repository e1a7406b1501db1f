/*
 * encode_errors.c
 *	  Turn an engine status (CpStatus + message) into an ereport with an
 *	  SQLSTATE, errmsg, errdetail and errhint.
 *
 * The engine never reports anything itself; its one-line message (which
 * names the file, tensor or input at fault) becomes the errdetail.  The same
 * function serves the in-process path and the worker path (the worker ships
 * status and message back through shared memory).
 */
#include "postgres.h"

#include "encode.h"

/*
 * EncoderSqlState
 *		SQLSTATE of an engine status.  Format and shape errors are corrupt
 *		checkpoint files while loading, but bad user input while encoding.
 */
static int
EncoderSqlState(CpStatus status, EncodePhase phase)
{
	switch (status)
	{
		case CP_OK:
			return ERRCODE_SUCCESSFUL_COMPLETION;
		case CP_ERR_INVALID_ARG:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case CP_ERR_IO:
			return ERRCODE_IO_ERROR;
		case CP_ERR_NOT_FOUND:
			return phase == PHASE_LOAD ? ERRCODE_UNDEFINED_FILE :
				ERRCODE_INVALID_PARAMETER_VALUE;
		case CP_ERR_FORMAT:
		case CP_ERR_SHAPE:
			return phase == PHASE_LOAD ? ERRCODE_DATA_CORRUPTED :
				ERRCODE_INVALID_BINARY_REPRESENTATION;
		case CP_ERR_UNSUPPORTED:
			return ERRCODE_FEATURE_NOT_SUPPORTED;
		case CP_ERR_LIMIT:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case CP_ERR_NOMEM:
			return ERRCODE_OUT_OF_MEMORY;
		case CP_ERR_CANCELLED:
			return ERRCODE_QUERY_CANCELED;
		case CP_ERR_BACKEND:
			return ERRCODE_SYSTEM_ERROR;
	}
	return ERRCODE_INTERNAL_ERROR;
}

/*
 * EncoderHint
 *		A sentence telling the user what to do, or NULL.
 */
static const char *
EncoderHint(CpStatus status, EncodePhase phase, EncodeKind kind)
{
	if (phase == PHASE_LOAD)
	{
		switch (status)
		{
			case CP_ERR_IO:
			case CP_ERR_NOT_FOUND:
				return "Check that colpali.model_path names a complete ColPali checkpoint folder that the server can read.";
			case CP_ERR_FORMAT:
			case CP_ERR_SHAPE:
				return "The checkpoint files look damaged or incomplete; download the checkpoint again.";
			case CP_ERR_UNSUPPORTED:
				return "Use a ColPali checkpoint in one of the layouts listed in the documentation.";
			case CP_ERR_BACKEND:
				return "Set colpali.device = cpu to encode without the GPU.";
			default:
				return NULL;
		}
	}
	switch (status)
	{
		case CP_ERR_FORMAT:
		case CP_ERR_SHAPE:
			return kind == ENCODE_IMAGES ?
				"Pass the bytes of a PNG, JPEG, BMP, GIF or TGA file." : NULL;
		case CP_ERR_UNSUPPORTED:
			return kind == ENCODE_IMAGES ?
				"Convert the image to PNG or JPEG." : NULL;
		case CP_ERR_LIMIT:
			return kind == ENCODE_IMAGES ?
				"Downscale the image, or ask an administrator to raise colpali.max_image_pixels." :
				"Shorten the query text.";
		default:
			return NULL;
	}
}

/*
 * ReportEncoderError
 *		ereport(ERROR) for a failed engine call.  msg is the engine's message
 *		(may be empty); model_path names the checkpoint for load failures.
 *
 * A load failure names the superuser-only model path, and the engine's
 * message may quote the files (a JSON parse error shows the start of
 * whatever file config.json is or links to).  Roles that may not read the
 * setting get the status and the hint only; the details go to the server
 * log (errdetail_log).
 */
void
ReportEncoderError(CpStatus status, const char *msg, EncodePhase phase,
				   EncodeKind kind, const char *model_path)
{
	const char *hint = EncoderHint(status, phase, kind);
	const char *what = kind == ENCODE_IMAGES ? "image" : "query";

	if (status == CP_ERR_CANCELLED)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling statement due to user request")));

	if (phase == PHASE_LOAD && EncoderMayShowModelPath())
		ereport(ERROR,
				(errcode(EncoderSqlState(status, phase)),
				 errmsg("could not load colpali model \"%s\": %s",
						model_path ? model_path : "", cp_status_name(status)),
				 (msg && msg[0]) ? errdetail("%s", msg) : 0,
				 hint ? errhint("%s", hint) : 0));
	if (phase == PHASE_LOAD)
		ereport(ERROR,
				(errcode(EncoderSqlState(status, phase)),
				 errmsg("could not load the colpali model: %s", cp_status_name(status)),
				 errdetail("The model path and the reason are shown to superusers and in the server log."),
				 errdetail_log("Model \"%s\": %s", model_path ? model_path : "",
							   (msg && msg[0]) ? msg : cp_status_name(status)),
				 hint ? errhint("%s", hint) : 0));

	ereport(ERROR,
			(errcode(EncoderSqlState(status, phase)),
			 errmsg("could not encode %s: %s", what, cp_status_name(status)),
			 (msg && msg[0]) ? errdetail("%s", msg) : 0,
			 hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}
