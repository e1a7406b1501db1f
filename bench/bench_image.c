/*
 * bench_image.c
 *	  CPU time of the engine's page preprocessing (decode, Pillow-exact
 *	  BICUBIC resize to 448x448, rescale/normalise) on given image files:
 *	  best of 20 runs (CPU time and best-of are robust on a shared machine;
 *	  run with OMP_NUM_THREADS=1 to compare with single-threaded Pillow).
 *
 *	  cc -O2 -fopenmp -Isrc/engine -o build/bench_image bench/bench_image.c \
 *		build/libcolpali_engine.a -lopenblas -ljansson -ljpeg -lpcre2-8 -lutf8proc -lm
 *	  build/bench_image page.png page.jpg	(bench/bench_image.py runs both sides)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int
main(int argc, char **argv)
{
	int			a;

	for (a = 1; a < argc; a++)
	{
		FILE	   *f = fopen(argv[a], "rb");
		uint8_t    *buf;
		long		n;
		int			reps = 20,
					r;
		double		t0,
					td = 1e30,
					tr = 1e30,
					tp = 1e30,
					t;
		CpImageConfig cfg;
		CpImageRGB	img,
					res;
		CpError		err;
		float	   *out = malloc(sizeof(float) * 3 * 448 * 448);

		if (f == NULL)
			return 1;
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		fseek(f, 0, SEEK_SET);
		buf = malloc(n);
		if (fread(buf, 1, n, f) != (size_t) n)
			return 1;
		fclose(f);
		memset(&cfg, 0, sizeof(cfg));
		cfg.width = cfg.height = 448;
		cfg.resample = 3;
		cfg.do_resize = cfg.do_rescale = cfg.do_normalize = cfg.do_convert_rgb = true;
		cfg.rescale_factor = 1.0 / 255;
		cfg.mean[0] = cfg.mean[1] = cfg.mean[2] = 0.5f;
		cfg.std[0] = cfg.std[1] = cfg.std[2] = 0.5f;
		for (r = 0; r < reps; r++)
		{
			t0 = now_ms();
			if (cp_image_decode(buf, n, 0, &img, &err) != CP_OK)
			{
				fprintf(stderr, "%s: %s\n", argv[a], err.msg);
				return 1;
			}
			t = now_ms() - t0;
			td = t < td ? t : td;
			t0 = now_ms();
			cp_image_resize_bicubic(&img, 448, 448, &res, &err);
			t = now_ms() - t0;
			tr = t < tr ? t : tr;
			cp_image_free(&res);
			cp_image_free(&img);
			t0 = now_ms();
			if (cp_image_preprocess(buf, n, &cfg, 0, out, &err) != CP_OK)
				return 1;
			t = now_ms() - t0;
			tp = t < tp ? t : tp;
		}
		printf("C      %-28s decode %7.2f ms  resize %6.2f ms  full preprocess %7.2f ms\n",
			   argv[a], td, tr, tp);
		free(buf);
		free(out);
	}
	return 0;
}
