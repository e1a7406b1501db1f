/*
 * image_resize.c
 *	  Pillow's BICUBIC resize reimplemented bit for bit, and the
 *	  processor's rescale and normalisation (docs/encoder.md#image-resize,
 *	  #image-normalise): 22-bit fixed-point coefficients, two separable
 *	  passes with a uint8 image between them (pass order as Pillow 13
 *	  chooses it), each pass skipped when the size along its axis does not
 *	  change.
 */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

/*
 * The filter weights must be computed exactly as Pillow's C code computes
 * them in double precision: no fused multiply-add contraction.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize ("fp-contract=off")
#endif

#define PRECISION_BITS (32 - 8 - 2)

/* Coefficients of one resampling axis, as Pillow's precompute_coeffs. */
typedef struct ResampleAxis
{
	int			ksize;
	int		   *bounds;			/* per output index: first input, count */
	int32_t    *kk;				/* out_size * ksize fixed-point weights */
} ResampleAxis;

/*
 * bicubic_filter
 *		Pillow's cubic convolution kernel, a = -0.5, same operation order.
 */
static inline double
bicubic_filter(double x)
{
	const double a = -0.5;

	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

/*
 * axis_free
 *		Release the arrays of a ResampleAxis.
 */
static void
axis_free(ResampleAxis *ax)
{
	free(ax->bounds);
	free(ax->kk);
	ax->bounds = NULL;
	ax->kk = NULL;
}

/*
 * precompute_coeffs
 *		Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box
 *		(0, in_size): double weights normalised to sum 1, then rounded half
 *		away from zero to PRECISION_BITS fixed point.
 */
static CpStatus
precompute_coeffs(int in_size, int out_size, ResampleAxis *ax, CpError *err)
{
	double		scale,
				filterscale,
				support,
				ss;
	double	   *w;
	int			xx;

	scale = (double) in_size / out_size;
	filterscale = scale < 1.0 ? 1.0 : scale;
	support = 2.0 * filterscale;
	ax->ksize = (int) ceil(support) * 2 + 1;
	ax->bounds = malloc(sizeof(int) * 2 * (size_t) out_size);
	ax->kk = calloc((size_t) out_size * ax->ksize, sizeof(int32_t));
	w = malloc(sizeof(double) * ax->ksize);
	if (ax->bounds == NULL || ax->kk == NULL || w == NULL)
	{
		free(w);
		axis_free(ax);
		return cp_error(err, CP_ERR_NOMEM, "out of memory for resampling coefficients (%d -> %d)",
						in_size, out_size);
	}
	ss = 1.0 / filterscale;
	for (xx = 0; xx < out_size; xx++)
	{
		double		center = (xx + 0.5) * scale;
		double		ww = 0.0;
		int32_t    *k = ax->kk + (size_t) xx * ax->ksize;
		int			xmin,
					xmax,
					x;

		xmin = (int) (center - support + 0.5);
		if (xmin < 0)
			xmin = 0;
		xmax = (int) (center + support + 0.5);
		if (xmax > in_size)
			xmax = in_size;
		xmax -= xmin;
		for (x = 0; x < xmax; x++)
		{
			w[x] = bicubic_filter((x + xmin - center + 0.5) * ss);
			ww += w[x];
		}
		for (x = 0; x < xmax; x++)
		{
			double		v = w[x];

			if (ww != 0.0)
				v /= ww;
			if (v < 0)
				k[x] = (int32_t) (-0.5 + v * (1 << PRECISION_BITS));
			else
				k[x] = (int32_t) (0.5 + v * (1 << PRECISION_BITS));
		}
		ax->bounds[2 * xx] = xmin;
		ax->bounds[2 * xx + 1] = xmax;
	}
	free(w);
	return CP_OK;
}

/*
 * clip8
 *		Fixed-point accumulator to uint8: floor shift then clamp.
 */
static inline uint8_t
clip8(int32_t acc)
{
	int32_t		v = acc >> PRECISION_BITS;

	return v < 0 ? 0 : (v > 255 ? 255 : (uint8_t) v);
}

/*
 * resample_horizontal
 *		Rows [first, first + nrows) of src (src_w wide), resampled along x
 *		into dst (out_w x nrows).
 */
static void
resample_horizontal(const uint8_t *src, int src_w, int first, int nrows,
					int out_w, const ResampleAxis *ax, uint8_t *dst)
{
	int			y;

#pragma omp parallel for schedule(static) if ((int64_t) nrows * out_w > 200000)
	for (y = 0; y < nrows; y++)
	{
		const uint8_t *in = src + (size_t) (y + first) * src_w * 3;
		uint8_t    *o = dst + (size_t) y * out_w * 3;
		int			xx;

		for (xx = 0; xx < out_w; xx++)
		{
			const int32_t *k = ax->kk + (size_t) xx * ax->ksize;
			const uint8_t *p = in + (size_t) ax->bounds[2 * xx] * 3;
			int			n = ax->bounds[2 * xx + 1];
			int32_t		s0 = 1 << (PRECISION_BITS - 1);
			int32_t		s1 = s0;
			int32_t		s2 = s0;
			int			x;

			for (x = 0; x < n; x++)
			{
				s0 += p[3 * x] * k[x];
				s1 += p[3 * x + 1] * k[x];
				s2 += p[3 * x + 2] * k[x];
			}
			o[3 * xx] = clip8(s0);
			o[3 * xx + 1] = clip8(s1);
			o[3 * xx + 2] = clip8(s2);
		}
	}
}

/*
 * resample_vertical
 *		src (width x any rows) resampled along y into dst (width x out_h);
 *		bounds are relative to the first row of src.  Accumulates whole rows
 *		at a time (integer sums: same result as Pillow's per-pixel order).
 */
static CpStatus
resample_vertical(const uint8_t *src, int width, int out_h,
				  const ResampleAxis *ax, uint8_t *dst, CpError *err)
{
	size_t		rowlen = (size_t) width * 3;
	int			yy;
	bool		nomem = false;

#pragma omp parallel if ((int64_t) out_h * width > 200000)
	{
		int32_t    *acc = malloc(sizeof(int32_t) * rowlen);

		if (acc == NULL)
		{
#pragma omp atomic write
			nomem = true;
		}
#pragma omp for schedule(static)
		for (yy = 0; yy < out_h; yy++)
		{
			const int32_t *k = ax->kk + (size_t) yy * ax->ksize;
			int			ymin = ax->bounds[2 * yy];
			int			n = ax->bounds[2 * yy + 1];
			uint8_t    *o = dst + (size_t) yy * rowlen;
			size_t		i;
			int			y;

			if (acc == NULL)
				continue;
			for (i = 0; i < rowlen; i++)
				acc[i] = 1 << (PRECISION_BITS - 1);
			for (y = 0; y < n; y++)
			{
				const uint8_t *row = src + (size_t) (ymin + y) * rowlen;
				int32_t		ky = k[y];

				for (i = 0; i < rowlen; i++)
					acc[i] += row[i] * ky;
			}
			for (i = 0; i < rowlen; i++)
				o[i] = clip8(acc[i]);
		}
		free(acc);
	}
	if (nomem)
		return cp_error(err, CP_ERR_NOMEM, "out of memory for a resampling row buffer");
	return CP_OK;
}

/*
 * horizontal_first
 *		Pass order of Pillow >= 13.0: when the height shrinks by more than
 *		twice as many pixels as the width, the vertical pass runs first.
 *		(Pillow <= 12.x always ran the horizontal pass first; the uint8
 *		intermediate makes the two orders differ by a level here and there.)
 */
static bool
horizontal_first(int in_w, int in_h, int out_w, int out_h)
{
	return !((in_h - out_h) > 0 && (in_h - out_h) > (in_w - out_w) * 2);
}

/*
 * cp_image_resize_bicubic
 *		See image.h.  Mirrors Pillow 13's ImagingResampleInner: coefficients
 *		for both axes; a pass is skipped when its size does not change; with
 *		the horizontal pass first it covers only the source rows the vertical
 *		pass reads; a plain copy when the size is equal.
 */
CpStatus
cp_image_resize_bicubic(const CpImageRGB *src, int width, int height,
						CpImageRGB *dst, CpError *err)
{
	ResampleAxis hor = {0, NULL, NULL};
	ResampleAxis ver = {0, NULL, NULL};
	bool		need_h,
				need_v;
	uint8_t    *tmp = NULL;
	CpStatus	st;

	if (dst == NULL)
		return cp_error(err, CP_ERR_INVALID_ARG, "cp_image_resize_bicubic: no output image");
	memset(dst, 0, sizeof(*dst));
	if (src == NULL || src->pixels == NULL || src->width <= 0 || src->height <= 0)
		return cp_error(err, CP_ERR_INVALID_ARG, "cp_image_resize_bicubic: empty source image");
	if (width <= 0 || height <= 0 || width > (1 << 20) || height > (1 << 20) ||
		(int64_t) width * height > INT_MAX / 4)
		return cp_error(err, CP_ERR_INVALID_ARG, "cp_image_resize_bicubic: bad target size %dx%d",
						width, height);

	dst->pixels = malloc((size_t) width * height * 3);
	if (dst->pixels == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory for a %dx%d image", width, height);
	dst->width = width;
	dst->height = height;

	need_h = (width != src->width);
	need_v = (height != src->height);
	if (!need_h && !need_v)
	{
		memcpy(dst->pixels, src->pixels, (size_t) width * height * 3);
		return CP_OK;
	}

	st = precompute_coeffs(src->width, width, &hor, err);
	if (st == CP_OK)
		st = precompute_coeffs(src->height, height, &ver, err);
	if (st != CP_OK)
		goto fail;

	if (!need_h)
		st = resample_vertical(src->pixels, width, height, &ver, dst->pixels, err);
	else if (!need_v)
		resample_horizontal(src->pixels, src->width, 0, height, width, &hor, dst->pixels);
	else if (horizontal_first(src->width, src->height, width, height))
	{
		/* only the source rows the vertical pass reads */
		int			first = ver.bounds[0];
		int			last = ver.bounds[2 * (height - 1)] + ver.bounds[2 * (height - 1) + 1];
		int			i;

		tmp = malloc((size_t) width * (last - first) * 3);
		if (tmp == NULL)
			st = cp_error(err, CP_ERR_NOMEM, "out of memory for a %dx%d resampling buffer",
						  width, last - first);
		else
		{
			for (i = 0; i < height; i++)
				ver.bounds[2 * i] -= first;
			resample_horizontal(src->pixels, src->width, first, last - first, width, &hor, tmp);
			st = resample_vertical(tmp, width, height, &ver, dst->pixels, err);
		}
	}
	else
	{
		tmp = malloc((size_t) src->width * height * 3);
		if (tmp == NULL)
			st = cp_error(err, CP_ERR_NOMEM, "out of memory for a %dx%d resampling buffer",
						  src->width, height);
		else
		{
			st = resample_vertical(src->pixels, src->width, height, &ver, tmp, err);
			if (st == CP_OK)
				resample_horizontal(tmp, src->width, 0, height, width, &hor, dst->pixels);
		}
	}
	if (st != CP_OK)
		goto fail;
	free(tmp);
	axis_free(&hor);
	axis_free(&ver);
	return CP_OK;

fail:
	free(tmp);
	axis_free(&hor);
	axis_free(&ver);
	cp_image_free(dst);
	return st;
}

/*
 * cp_image_preprocess
 *		See image.h.  Rescale as transformers does it (float64 product cast
 *		to float32), normalise in float32, planar CHW output.
 */
CpStatus
cp_image_preprocess(const uint8_t *bytes, size_t len, const CpImageConfig *cfg,
					int64_t max_pixels, float *out, CpError *err)
{
	CpImageRGB	img;
	CpImageRGB	res;
	const CpImageRGB *use = &img;
	float		lut[3][256];
	size_t		plane,
				i;
	int			c;
	CpStatus	st;

	if (cfg == NULL || out == NULL)
		return cp_error(err, CP_ERR_INVALID_ARG, "cp_image_preprocess: no config or output buffer");
	if (cfg->width <= 0 || cfg->height <= 0 || cfg->width > 16384 || cfg->height > 16384)
		return cp_error(err, CP_ERR_INVALID_ARG, "image processor size %dx%d is out of range",
						cfg->width, cfg->height);
	if (cfg->do_resize && cfg->resample != 3)
		return cp_error(err, CP_ERR_UNSUPPORTED,
						"image processor resample %d is not supported (only 3 = BICUBIC)",
						cfg->resample);
	for (c = 0; c < 3; c++)
		if (cfg->do_normalize && !(cfg->std[c] != 0.0f))
			return cp_error(err, CP_ERR_INVALID_ARG, "image processor std[%d] is zero", c);

	st = cp_image_decode(bytes, len, max_pixels, &img, err);
	if (st != CP_OK)
		return st;
	memset(&res, 0, sizeof(res));
	if (img.width != cfg->width || img.height != cfg->height)
	{
		if (!cfg->do_resize)
		{
			st = cp_error(err, CP_ERR_SHAPE, "image is %dx%d but the processor expects %dx%d and does not resize",
						  img.width, img.height, cfg->width, cfg->height);
			cp_image_free(&img);
			return st;
		}
		st = cp_image_resize_bicubic(&img, cfg->width, cfg->height, &res, err);
		cp_image_free(&img);
		if (st != CP_OK)
			return st;
		use = &res;
	}

	for (c = 0; c < 3; c++)
	{
		int			v;

		for (v = 0; v < 256; v++)
		{
			float		f;

			if (cfg->do_rescale)
				f = (float) ((double) v * cfg->rescale_factor);
			else
				f = (float) v;
			if (cfg->do_normalize)
				f = (f - cfg->mean[c]) / cfg->std[c];
			lut[c][v] = f;
		}
	}
	plane = (size_t) cfg->width * cfg->height;
	for (i = 0; i < plane; i++)
	{
		const uint8_t *p = use->pixels + 3 * i;

		out[i] = lut[0][p[0]];
		out[plane + i] = lut[1][p[1]];
		out[2 * plane + i] = lut[2][p[2]];
	}
	cp_image_free(&img);
	cp_image_free(&res);
	return CP_OK;
}
