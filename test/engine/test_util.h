/*
 * test_util.h
 *	  What the standalone engine tests share: a CHECK macro that counts
 *	  checks and failures, and reading a whole file.  Header-only, since each
 *	  test is a program of its own.
 */
#ifndef COLPALI_TEST_UTIL_H
#define COLPALI_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int	checks = 0;
static int	failures = 0;

/* Count a check; on failure print file:line and a printf-style message. */
#define CHECK(cond, ...) \
	do { \
		checks++; \
		if (!(cond)) \
		{ \
			failures++; \
			printf("FAIL %s:%d: ", __FILE__, __LINE__); \
			printf(__VA_ARGS__); \
			printf("\n"); \
		} \
	} while (0)

/*
 * read_file
 *		Whole file into a malloc'd buffer, NUL after the last byte (so text
 *		files are C strings); NULL if it cannot be read.
 */
static inline void *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf;
	long		n;

	*len = 0;
	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
	{
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t) n + 1);
	if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	*len = (size_t) n;
	return buf;
}

#endif							/* COLPALI_TEST_UTIL_H */
