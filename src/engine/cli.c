/*
 * cli.c
 *	  colpali-encode: encode page images and query strings with the colpali
 *	  engine from the command line.
 *
 *	  colpali-encode --model DIR [--base DIR] [--threads N] [--device D]
 *					 [--weights fp32|lazy] [--precision fp32|bf16] [--batch N]
 *					 [--attention causal|bidirectional] [--no-amx]
 *					 [--image FILE ...] [--query TEXT ...]
 *	  colpali-encode --model DIR --bench [--runs N] --image FILE ... [--query TEXT]
 *
 * Each multivector is printed on its own line in the extension's text form
 * [[x,...],...], images first, then queries, in argument order.  Floats are
 * printed in the shortest %g form that reads back (strtof) to the same
 * float, so the text round-trips exactly.
 *
 * --bench times pages/s (all --image files encoded in one call, after a
 * warm-up call; median of --runs runs) and single-query latency (median of
 * --runs runs after a warm-up), each also in CPU seconds (user + system;
 * meaningful on a shared, loaded machine), then prints peak RSS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "colpali_engine.h"

/*
 * usage
 *		Print the synopsis to stderr and return 2.
 */
static int
usage(void)
{
	fprintf(stderr,
			"usage: colpali-encode --model DIR [--base DIR] [--threads N] [--device auto|cpu|cuda]\n"
			"                      [--weights fp32|lazy] [--precision fp32|bf16] [--batch N]\n"
			"                      [--attention causal|bidirectional] [--no-amx]\n"
			"                      [--image FILE ...] [--query TEXT ...]\n"
			"       colpali-encode --model DIR --bench [--runs N] --image FILE ... [--query TEXT]\n");
	return 2;
}

/*
 * format_float
 *		Shortest "%.*g" text of f that strtof reads back to the same float.
 */
static void
format_float(char *buf, size_t len, float f)
{
	int			prec;

	for (prec = 1; prec < 9; prec++)
	{
		snprintf(buf, len, "%.*g", prec, f);
		if (strtof(buf, NULL) == f)
			return;
	}
	snprintf(buf, len, "%.9g", f);
}

/*
 * print_embedding
 *		[[x,...],...] on one line.
 */
static void
print_embedding(const CpEmbedding *emb)
{
	char		buf[32];
	int			i,
				j;

	putchar('[');
	for (i = 0; i < emb->nvec; i++)
	{
		fputs(i ? ",[" : "[", stdout);
		for (j = 0; j < emb->dim; j++)
		{
			format_float(buf, sizeof(buf), emb->data[(size_t) i * emb->dim + j]);
			if (j)
				putchar(',');
			fputs(buf, stdout);
		}
		putchar(']');
	}
	fputs("]\n", stdout);
}

/*
 * read_file
 *		Whole file into a malloc'd buffer.
 */
static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	uint8_t    *buf = NULL;
	size_t		cap = 0,
				n = 0;

	if (f == NULL)
		return NULL;
	for (;;)
	{
		size_t		got;

		if (n == cap)
		{
			uint8_t    *nb;

			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (nb == NULL)
			{
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
	{
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

/*
 * now_s
 *		Monotonic time in seconds.
 */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/*
 * cpu_s
 *		User + system CPU seconds of this process so far.
 */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
		ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

/*
 * cmp_double
 *		qsort comparator of doubles.
 */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * median
 *		Median of n timings (sorts them).
 */
static double
median(double *v, int n)
{
	qsort(v, n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/*
 * fail
 *		Report an engine error and return 1.
 */
static int
fail(const char *what, const CpError *err)
{
	fprintf(stderr, "colpali-encode: %s: %s (%s)\n", what, err->msg,
			cp_status_name(err->status));
	return 1;
}

/*
 * run_bench
 *		Time page throughput and single-query latency.
 */
static int
run_bench(CpEngine *eng, int nimg, const uint8_t **imgs, const size_t *lens,
		  const char *query, int runs, double load_s)
{
	CpEmbedding *out = calloc(nimg > 0 ? nimg : 1, sizeof(CpEmbedding));
	double	   *t = calloc(runs, sizeof(double));
	double	   *c = calloc(runs, sizeof(double));
	double		pages_med = 0,
				query_med = 0,
				pages_cpu = 0,
				query_cpu = 0,
				t0,
				c0;
	CpError		err;
	struct rusage ru;
	int			r,
				i;

	if (out == NULL || t == NULL || c == NULL)
		return 1;
	if (nimg > 0)
	{
		/* warm-up: one page */
		if (cp_engine_encode_images(eng, 1, imgs, lens, out, &err) != CP_OK)
			return fail("encoding an image", &err);
		cp_embedding_free(&out[0]);
		for (r = 0; r < runs; r++)
		{
			t0 = now_s();
			c0 = cpu_s();
			if (cp_engine_encode_images(eng, nimg, imgs, lens, out, &err) != CP_OK)
				return fail("encoding images", &err);
			t[r] = now_s() - t0;
			c[r] = cpu_s() - c0;
			for (i = 0; i < nimg; i++)
				cp_embedding_free(&out[i]);
		}
		pages_med = median(t, runs);
		pages_cpu = median(c, runs);
	}
	if (cp_engine_encode_queries(eng, 1, &query, out, &err) != CP_OK)
		return fail("encoding a query", &err);
	cp_embedding_free(&out[0]);
	for (r = 0; r < runs; r++)
	{
		t0 = now_s();
		c0 = cpu_s();
		if (cp_engine_encode_queries(eng, 1, &query, out, &err) != CP_OK)
			return fail("encoding a query", &err);
		t[r] = now_s() - t0;
		c[r] = cpu_s() - c0;
		cp_embedding_free(&out[0]);
	}
	query_med = median(t, runs);
	query_cpu = median(c, runs);
	getrusage(RUSAGE_SELF, &ru);
	printf("device=%s load_s=%.3f", cp_engine_device_name(eng), load_s);
	if (nimg > 0)
		printf(" pages=%d pages_per_s=%.4f s_per_page=%.3f cpu_s_per_page=%.3f", nimg,
			   nimg / pages_med, pages_med / nimg, pages_cpu / nimg);
	printf(" query_ms=%.2f query_cpu_ms=%.2f peak_rss_mb=%.0f runs=%d %s\n",
		   query_med * 1000.0, query_cpu * 1000.0, ru.ru_maxrss / 1024.0, runs,
		   cp_engine_kernels(eng));
	free(out);
	free(t);
	free(c);
	return 0;
}

int
main(int argc, char **argv)
{
	CpEngineOptions opts;
	CpEngine   *eng;
	CpError		err;
	const char **images = calloc(argc, sizeof(char *));
	const char **queries = calloc(argc, sizeof(char *));
	const uint8_t **bytes = calloc(argc, sizeof(uint8_t *));
	size_t	   *lens = calloc(argc, sizeof(size_t));
	CpEmbedding *out;
	int			nimg = 0,
				nq = 0,
				runs = 5,
				i;
	bool		bench = false;
	double		t0,
				load_s;

	if (images == NULL || queries == NULL || bytes == NULL || lens == NULL)
		return 1;
	memset(&opts, 0, sizeof(opts));
	opts.device = CP_DEVICE_CPU;
	for (i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;

		if (strcmp(a, "--bench") == 0)
		{
			bench = true;
			continue;
		}
		if (strcmp(a, "--no-amx") == 0)
		{
			opts.cpu_no_amx = true;
			continue;
		}
		if (v == NULL)
			return usage();
		i++;
		if (strcmp(a, "--model") == 0)
			opts.model_dir = v;
		else if (strcmp(a, "--base") == 0)
			opts.base_model_dir = v;
		else if (strcmp(a, "--threads") == 0)
			opts.threads = atoi(v);
		else if (strcmp(a, "--batch") == 0)
			opts.max_batch = atoi(v);
		else if (strcmp(a, "--runs") == 0)
			runs = atoi(v) > 0 ? atoi(v) : 1;
		else if (strcmp(a, "--image") == 0)
			images[nimg++] = v;
		else if (strcmp(a, "--query") == 0)
			queries[nq++] = v;
		else if (strcmp(a, "--device") == 0)
		{
			if (strcmp(v, "cpu") == 0)
				opts.device = CP_DEVICE_CPU;
			else if (strcmp(v, "cuda") == 0)
				opts.device = CP_DEVICE_CUDA;
			else if (strcmp(v, "auto") == 0)
				opts.device = CP_DEVICE_AUTO;
			else
				return usage();
		}
		else if (strcmp(a, "--attention") == 0)
		{
			if (strcmp(v, "causal") == 0)
				opts.attention = CP_ATTENTION_CAUSAL;
			else if (strcmp(v, "bidirectional") == 0)
				opts.attention = CP_ATTENTION_BIDIRECTIONAL;
			else
				return usage();
		}
		else if (strcmp(a, "--precision") == 0)
		{
			if (strcmp(v, "fp32") == 0)
				opts.cpu_precision = CP_PRECISION_FP32;
			else if (strcmp(v, "bf16") == 0)
				opts.cpu_precision = CP_PRECISION_BF16;
			else
				return usage();
		}
		else if (strcmp(a, "--weights") == 0)
		{
			if (strcmp(v, "fp32") == 0)
				opts.cpu_weights = CP_WEIGHTS_FP32;
			else if (strcmp(v, "lazy") == 0)
				opts.cpu_weights = CP_WEIGHTS_LAZY;
			else
				return usage();
		}
		else
			return usage();
	}
	if (opts.model_dir == NULL)
		return usage();

	for (i = 0; i < nimg; i++)
	{
		bytes[i] = read_file(images[i], &lens[i]);
		if (bytes[i] == NULL)
		{
			fprintf(stderr, "colpali-encode: cannot read \"%s\": %s\n", images[i],
					strerror(errno));
			return 1;
		}
	}

	t0 = now_s();
	if (cp_engine_open(&opts, &eng, &err) != CP_OK)
		return fail("cannot open the model", &err);
	load_s = now_s() - t0;

	if (bench)
	{
		int			rc = run_bench(eng, nimg, bytes, lens,
								   nq > 0 ? queries[0] : "What is the total revenue in 2023?",
								   runs, load_s);

		cp_engine_close(eng);
		return rc;
	}

	out = calloc((nimg > nq ? nimg : nq) + 1, sizeof(CpEmbedding));
	if (out == NULL)
		return 1;
	if (nimg > 0)
	{
		if (cp_engine_encode_images(eng, nimg, bytes, lens, out, &err) != CP_OK)
			return fail("encoding images", &err);
		for (i = 0; i < nimg; i++)
		{
			print_embedding(&out[i]);
			cp_embedding_free(&out[i]);
		}
	}
	if (nq > 0)
	{
		if (cp_engine_encode_queries(eng, nq, queries, out, &err) != CP_OK)
			return fail("encoding queries", &err);
		for (i = 0; i < nq; i++)
		{
			print_embedding(&out[i]);
			cp_embedding_free(&out[i]);
		}
	}
	cp_engine_close(eng);
	for (i = 0; i < nimg; i++)
		free((void *) bytes[i]);
	free(out);
	free(images);
	free(queries);
	free(bytes);
	free(lens);
	return 0;
}
