/*
 * cp_status.c
 *	  Error recording for the engine (see cp_status.h).
 */
#include <stdio.h>
#include <string.h>

#include "cp_status.h"

/*
 * cp_verror
 *		Format msg into err (if given) and return status unchanged.
 */
CpStatus
cp_verror(CpError *err, CpStatus status, const char *fmt, va_list ap)
{
	if (err != NULL)
	{
		err->status = status;
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	}
	return status;
}

/*
 * cp_error
 *		printf-style wrapper of cp_verror.
 */
CpStatus
cp_error(CpError *err, CpStatus status, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	status = cp_verror(err, status, fmt, ap);
	va_end(ap);
	return status;
}

/*
 * cp_status_name
 *		Human-readable name of a status code.
 */
const char *
cp_status_name(CpStatus status)
{
	switch (status)
	{
		case CP_OK:
			return "ok";
		case CP_ERR_INVALID_ARG:
			return "invalid argument";
		case CP_ERR_IO:
			return "I/O error";
		case CP_ERR_NOT_FOUND:
			return "not found";
		case CP_ERR_FORMAT:
			return "format error";
		case CP_ERR_UNSUPPORTED:
			return "unsupported";
		case CP_ERR_SHAPE:
			return "shape mismatch";
		case CP_ERR_LIMIT:
			return "limit exceeded";
		case CP_ERR_NOMEM:
			return "out of memory";
		case CP_ERR_CANCELLED:
			return "cancelled";
		case CP_ERR_BACKEND:
			return "backend error";
	}
	return "unknown error";
}
