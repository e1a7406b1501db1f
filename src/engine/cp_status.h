/*
 * cp_status.h
 *	  Status codes and error messages of the colpali engine.
 *
 * The engine never exits, aborts or prints: every fallible function returns a
 * CpStatus and, on failure, fills a CpError with a one-line message that
 * names what is wrong (file, tensor, offset, ...).  The PostgreSQL glue maps
 * the status to an SQLSTATE (see src/encode_errors.c).
 */
#ifndef CP_STATUS_H
#define CP_STATUS_H

#include <stdarg.h>
#include <stddef.h>

typedef enum CpStatus
{
	CP_OK = 0,
	CP_ERR_INVALID_ARG,			/* caller passed something impossible */
	CP_ERR_IO,					/* open/read/mmap failed (errno text in msg) */
	CP_ERR_NOT_FOUND,			/* missing file or tensor */
	CP_ERR_FORMAT,				/* malformed file or input (corrupt image, bad JSON, ...) */
	CP_ERR_UNSUPPORTED,			/* well-formed but not supported (dtype, image kind) */
	CP_ERR_SHAPE,				/* tensor or config shapes inconsistent */
	CP_ERR_LIMIT,				/* input over a limit (pixels, text length) */
	CP_ERR_NOMEM,				/* allocation failed */
	CP_ERR_CANCELLED,			/* the cancel callback asked to stop */
	CP_ERR_BACKEND				/* compute backend failure (CUDA, BLAS) */
} CpStatus;

#define CP_ERROR_MSG_LEN 512

typedef struct CpError
{
	CpStatus	status;
	char		msg[CP_ERROR_MSG_LEN];
} CpError;

/* Record an error (err may be NULL) and return status, for "return cp_error(...)". */
extern CpStatus cp_error(CpError *err, CpStatus status, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));
extern CpStatus cp_verror(CpError *err, CpStatus status, const char *fmt, va_list ap);

/* Short English name of a status, e.g. "format error". */
extern const char *cp_status_name(CpStatus status);

#endif							/* CP_STATUS_H */
