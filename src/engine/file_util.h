/*
 * file_util.h
 *	  Reading a whole (bounded) file, for the JSON readers (config,
 *	  tokenizer).
 */
#ifndef CP_FILE_UTIL_H
#define CP_FILE_UTIL_H

#include <stddef.h>

#include "cp_status.h"

/*
 * Read a whole regular file into a malloc'd NUL-terminated buffer.
 * Absent -> CP_ERR_NOT_FOUND; not a regular file or unreadable -> CP_ERR_IO;
 * larger than max_bytes -> CP_ERR_LIMIT.  *len (may be NULL) gets the size.
 */
extern CpStatus cp_read_file(const char *path, size_t max_bytes, char **out,
							 size_t *len, CpError *err);

#endif							/* CP_FILE_UTIL_H */
