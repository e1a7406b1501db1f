/*
 * file_util.c
 *	  File reading for the JSON readers (config.c, tokenizer_load.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_util.h"

/*
 * cp_read_file
 *		See file_util.h.
 */
CpStatus
cp_read_file(const char *path, size_t max_bytes, char **out, size_t *len, CpError *err)
{
	struct stat sb;
	int			fd;
	char	   *buf;
	size_t		got = 0;

	*out = NULL;
	if (len)
		*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cp_error(err, errno == ENOENT ? CP_ERR_NOT_FOUND : CP_ERR_IO,
						"could not open \"%s\": %s", path, strerror(errno));
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
	{
		close(fd);
		return cp_error(err, CP_ERR_IO, "\"%s\" is not a regular file", path);
	}
	if ((unsigned long long) sb.st_size > max_bytes)
	{
		close(fd);
		return cp_error(err, CP_ERR_LIMIT, "\"%s\" is larger than %zu bytes", path, max_bytes);
	}
	buf = malloc((size_t) sb.st_size + 1);
	if (buf == NULL)
	{
		close(fd);
		return cp_error(err, CP_ERR_NOMEM, "out of memory reading \"%s\"", path);
	}
	while (got < (size_t) sb.st_size)
	{
		ssize_t		n = read(fd, buf + got, (size_t) sb.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			int			e = errno;

			close(fd);
			free(buf);
			return cp_error(err, CP_ERR_IO, "could not read \"%s\": %s", path,
							n < 0 ? strerror(e) : "file shrank while reading");
		}
		got += (size_t) n;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	if (len)
		*len = got;
	return CP_OK;
}
