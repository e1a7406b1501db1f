/*
 * fuzz_image.c
 *	  libFuzzer harness of the image decoder and preprocessing
 *	  (src/engine/image_*.c + stb_image): any bytes must give CP_OK or a clean
 *	  error status with a message, never a crash, leak or sanitizer report.
 *
 * Built and run by "make fuzzcheck" (clang, ASan + UBSan); seeds in
 * test/fuzz/seeds/fuzz_image/ (tiny images of every kind).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "image.h"

/* Small pixel limit: keeps each run fast and exercises the limit path. */
#define FUZZ_MAX_PIXELS (1 << 16)

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * LLVMFuzzerTestOneInput
 *		Decode, resize to a size taken from the input, preprocess.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CpImageRGB	img;
	CpImageRGB	res;
	CpError		err;
	CpStatus	st;
	CpImageConfig cfg;
	static float out[3 * 24 * 20];

	err.msg[0] = '\0';
	st = cp_image_decode(data, size, FUZZ_MAX_PIXELS, &img, &err);
	if (st != CP_OK)
	{
		/* every failure explains itself and leaves nothing allocated */
		if (err.msg[0] == '\0' || img.pixels != NULL)
			__builtin_trap();
		if (strstr(err.msg, "consistency check") != NULL)
			fprintf(stderr, "note: stb_image assertion caught: %s\n", err.msg);
	}
	else
	{
		int			w = 1 + (size > 0 ? data[size - 1] % 97 : 0);
		int			h = 1 + (size > 1 ? data[size - 2] % 89 : 0);

		if (img.width <= 0 || img.height <= 0 ||
			(int64_t) img.width * img.height > FUZZ_MAX_PIXELS)
			__builtin_trap();
		st = cp_image_resize_bicubic(&img, w, h, &res, &err);
		if (st != CP_OK)
			__builtin_trap();
		cp_image_free(&res);
		cp_image_free(&img);
	}

	memset(&cfg, 0, sizeof(cfg));
	cfg.width = 24;
	cfg.height = 20;
	cfg.resample = 3;
	cfg.do_resize = cfg.do_rescale = cfg.do_normalize = cfg.do_convert_rgb = true;
	cfg.rescale_factor = 1.0 / 255.0;
	cfg.mean[0] = cfg.mean[1] = cfg.mean[2] = 0.5f;
	cfg.std[0] = cfg.std[1] = cfg.std[2] = 0.5f;
	st = cp_image_preprocess(data, size, &cfg, FUZZ_MAX_PIXELS, out, &err);
	if (st == CP_OK)
	{
		size_t		i;

		for (i = 0; i < sizeof(out) / sizeof(out[0]); i++)
			if (!(out[i] >= -1.0f && out[i] <= 1.0f))
				__builtin_trap();
	}
	return 0;
}
