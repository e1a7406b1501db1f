/*
 * test_image.c
 *	  Tests of the image preprocessing (src/engine/image.c) against goldens
 *	  computed by Pillow (test/fixtures/image_goldens.py) and the processor
 *	  goldens of test/fixtures/generate.py when present.
 *
 * Run from test/engine (make enginecheck); returns non-zero on failure.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"

#define FIX "../fixtures/image/"

static int	failures = 0;
static int	checks = 0;

#define CHECK(cond, ...) \
	do { \
		checks++; \
		if (!(cond)) \
		{ \
			failures++; \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/*
 * synth
 *		Synthetic RGB pixels; mirrors synth() in image_goldens.py.
 */
static void
synth(uint8_t *out, int w, int h, int pattern, uint64_t seed)
{
	uint64_t	s = seed;
	size_t		i = 0;
	int			x,
				y,
				c;

	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			for (c = 0; c < 3; c++)
			{
				int			r,
							v;

				s = s * 6364136223846793005ULL + 1442695040888963407ULL;
				r = (int) (s >> 56);
				if (pattern == 0)
					v = r;
				else if (pattern == 1)
					v = ((x * 255) / (w - 1 > 1 ? w - 1 : 1) + (y * 97) / (h > 1 ? h : 1) +
						 c * 40 + (r & 7)) & 255;
				else
					v = ((x / 3 + y / 5 + c) % 4) ? 255 : (r & 31);
				out[i++] = (uint8_t) v;
			}
}

/*
 * fnv1a64
 *		FNV-1a 64-bit hash, as in image_goldens.py.
 */
static uint64_t
fnv1a64(const uint8_t *p, size_t n)
{
	uint64_t	h = 0xcbf29ce484222325ULL;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * read_file
 *		Whole file into a malloc'd buffer; NULL if missing.
 */
static uint8_t *read_file(const char *path, size_t *len) __attribute__((unused));
static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf;
	long		n;

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
	*len = (size_t) n;
	return buf;
}

/*
 * test_resize_goldens
 *		Every case of resize_goldens.txt hashes like Pillow's output.
 */
static void
test_resize_goldens(void)
{
	FILE	   *f = fopen(FIX "resize_goldens.txt", "r");
	char		line[256];
	int			ncases = 0;

	CHECK(f != NULL, "cannot open " FIX "resize_goldens.txt");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		int			iw,
					ih,
					ow,
					oh,
					pattern;
		unsigned long long seed,
					want;
		CpImageRGB	src,
					dst;
		CpError		err;
		CpStatus	st;

		if (line[0] == '#')
			continue;
		if (sscanf(line, "%d %d %d %d %d %llu %llx", &iw, &ih, &ow, &oh, &pattern, &seed, &want) != 7)
		{
			CHECK(false, "bad golden line: %s", line);
			continue;
		}
		src.width = iw;
		src.height = ih;
		src.pixels = malloc((size_t) iw * ih * 3);
		synth(src.pixels, iw, ih, pattern, seed);
		st = cp_image_resize_bicubic(&src, ow, oh, &dst, &err);
		CHECK(st == CP_OK, "resize %dx%d -> %dx%d: %s", iw, ih, ow, oh, err.msg);
		if (st == CP_OK)
		{
			uint64_t	got = fnv1a64(dst.pixels, (size_t) ow * oh * 3);

			CHECK(got == want && dst.width == ow && dst.height == oh,
				  "resize %dx%d -> %dx%d (pattern %d) differs from Pillow (hash %016llx, want %016llx)",
				  iw, ih, ow, oh, pattern, (unsigned long long) got, want);
			cp_image_free(&dst);
		}
		free(src.pixels);
		ncases++;
	}
	fclose(f);
	CHECK(ncases >= 100, "only %d resize cases", ncases);
	printf("resize: %d cases compared with Pillow\n", ncases);
}

/*
 * main
 */
int
main(void)
{
	test_resize_goldens();
	printf("%d checks, %d failures\n", checks, failures);
	return failures == 0 ? 0 : 1;
}
