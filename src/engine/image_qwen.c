/*
 * image_qwen.c
 *	  Qwen2-VL page preprocessing (see image_qwen.h and
 *	  docs/encoder.md#colqwen2-resize): smart_resize in the reference's
 *	  floating-point order, the Pillow-exact resize of image_resize.c, and
 *	  the patchify of Qwen2-VL's image processor.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "image_qwen.h"

/*
 * cp_qwen_image_config_default
 *		Qwen2-VL's processor defaults (the 2024 checkpoints' values).
 */
void
cp_qwen_image_config_default(CpQwenImageConfig *cfg)
{
	static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
	static const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

	memset(cfg, 0, sizeof(*cfg));
	cfg->patch_size = 14;
	cfg->merge_size = 2;
	cfg->temporal_patch_size = 2;
	cfg->min_pixels = 56 * 56;
	cfg->max_pixels = 14 * 14 * 4 * 16384;	/* 12845056 */
	cfg->rescale_factor = 1.0 / 255.0;
	memcpy(cfg->mean, mean, sizeof(mean));
	memcpy(cfg->std, std, sizeof(std));
}

/*
 * cp_qwen_max_pixels
 *		min(checkpoint max_pixels, budget_tokens visual tokens), but never
 *		below min_pixels: smart_resize needs min_pixels <= max_pixels (a
 *		small budget with small patches could otherwise invert them).
 */
int64_t
cp_qwen_max_pixels(const CpQwenImageConfig *cfg, int64_t checkpoint_max_pixels,
				   int budget_tokens)
{
	int64_t		unit = (int64_t) cfg->patch_size * cfg->merge_size;
	int64_t		budget;
	int64_t		result = checkpoint_max_pixels;

	if (budget_tokens > 0)
	{
		budget = (int64_t) budget_tokens * unit * unit;
		if (budget < result)
			result = budget;
	}
	return result < cfg->min_pixels ? cfg->min_pixels : result;
}

/*
 * cp_qwen_smart_resize
 *		See image_qwen.h.  Each line is the Python expression of
 *		transformers' smart_resize: true division in double, round() half
 *		to even (rint in the default rounding mode), floor/ceil of the
 *		left-to-right quotients.  Do not "simplify" h / beta / factor.
 */
CpStatus
cp_qwen_smart_resize(int height, int width, int factor, int64_t min_pixels,
					 int64_t max_pixels, int *out_height, int *out_width,
					 CpError *err)
{
	int64_t		h_bar;
	int64_t		w_bar;
	double		beta;
	int			big = height > width ? height : width;
	int			small = height < width ? height : width;

	if (height <= 0 || width <= 0 || factor <= 0 || max_pixels <= 0)
		return cp_error(err, CP_ERR_INVALID_ARG, "smart_resize: size %dx%d, factor %d, max_pixels %lld",
						width, height, factor, (long long) max_pixels);
	if ((double) big / (double) small > 200.0)
		return cp_error(err, CP_ERR_UNSUPPORTED,
						"image of %dx%d pixels: aspect ratio over 200 is not supported (as in the reference processor)",
						width, height);
	h_bar = (int64_t) rint((double) height / (double) factor) * factor;
	w_bar = (int64_t) rint((double) width / (double) factor) * factor;
	if (h_bar * w_bar > max_pixels)
	{
		int64_t		hf;
		int64_t		wf;

		beta = sqrt((double) ((int64_t) height * width) / (double) max_pixels);
		hf = (int64_t) floor((double) height / beta / (double) factor) * factor;
		wf = (int64_t) floor((double) width / beta / (double) factor) * factor;
		h_bar = hf > factor ? hf : factor;
		w_bar = wf > factor ? wf : factor;
	}
	else if (h_bar * w_bar < min_pixels)
	{
		beta = sqrt((double) min_pixels / (double) ((int64_t) height * width));
		h_bar = (int64_t) ceil((double) height * beta / (double) factor) * factor;
		w_bar = (int64_t) ceil((double) width * beta / (double) factor) * factor;
	}
	if (h_bar > 65536 || w_bar > 65536)
		return cp_error(err, CP_ERR_LIMIT, "smart_resize: %lldx%lld pixels is too large",
						(long long) w_bar, (long long) h_bar);
	*out_height = (int) h_bar;
	*out_width = (int) w_bar;
	return CP_OK;
}

/*
 * patchify
 *		Patchify straight from the resized RGB bytes through the per-channel
 *		lookup table (rescale + normalise of each byte value): row r = merge block (bh, bw), then (mh, mw)
 *		inside it; each row is [C][T][P][P] with the frame repeated T times.
 */
static void
patchify(const CpImageRGB *img, const CpQwenImageConfig *cfg,
		 float lut[3][256], int grid_h, int grid_w, float *out)
{
	int			P = cfg->patch_size;
	int			M = cfg->merge_size;
	int			T = cfg->temporal_patch_size;
	size_t		row_len = (size_t) 3 * T * P * P;
	int			bh;

	for (bh = 0; bh < grid_h / M; bh++)
	{
		int			bw;

		for (bw = 0; bw < grid_w / M; bw++)
		{
			int			mh;

			for (mh = 0; mh < M; mh++)
			{
				int			mw;

				for (mw = 0; mw < M; mw++)
				{
					size_t		r = (((size_t) bh * (grid_w / M) + bw) * M + mh) * M + mw;
					float	   *row = out + r * row_len;
					int			y0 = (bh * M + mh) * P;
					int			x0 = (bw * M + mw) * P;
					int			c;

					for (c = 0; c < 3; c++)
					{
						float	   *dst = row + (size_t) c * T * P * P;
						int			py;
						int			t;

						for (py = 0; py < P; py++)
						{
							const uint8_t *src = img->pixels + 3 * ((size_t) (y0 + py) * img->width + x0) + c;
							int			px;

							for (px = 0; px < P; px++)
								dst[py * P + px] = lut[c][src[3 * px]];
						}
						for (t = 1; t < T; t++)
							memcpy(dst + (size_t) t * P * P, dst, sizeof(float) * P * P);
					}
				}
			}
		}
	}
}

/*
 * cp_qwen_image_preprocess
 *		See image_qwen.h.
 */
CpStatus
cp_qwen_image_preprocess(const uint8_t *bytes, size_t len,
						 const CpQwenImageConfig *cfg, int64_t max_image_pixels,
						 float **out, int *grid_h, int *grid_w, CpError *err)
{
	CpImageRGB	img;
	CpImageRGB	res;
	const CpImageRGB *use = &img;
	float		lut[3][256];
	int			rh;
	int			rw;
	int			factor;
	size_t		nfloats;
	int			c;
	CpStatus	st;

	*out = NULL;
	if (cfg == NULL || cfg->patch_size <= 0 || cfg->merge_size <= 0 ||
		cfg->temporal_patch_size <= 0 || cfg->patch_size > 64 ||
		cfg->merge_size > 8 || cfg->temporal_patch_size > 8)
		return cp_error(err, CP_ERR_INVALID_ARG, "image processor patch/merge/temporal sizes are out of range");
	for (c = 0; c < 3; c++)
		if (!(cfg->std[c] != 0.0f))
			return cp_error(err, CP_ERR_INVALID_ARG, "image processor std[%d] is zero", c);
	st = cp_image_decode(bytes, len, max_image_pixels, &img, err);
	if (st != CP_OK)
		return st;
	factor = cfg->patch_size * cfg->merge_size;
	st = cp_qwen_smart_resize(img.height, img.width, factor, cfg->min_pixels,
							  cfg->max_pixels, &rh, &rw, err);
	if (st != CP_OK)
	{
		cp_image_free(&img);
		return st;
	}
	if (rh < cfg->patch_size || rw < cfg->patch_size)
	{
		cp_image_free(&img);
		return cp_error(err, CP_ERR_INVALID_ARG, "smart_resize gives %dx%d pixels (min_pixels too small?)", rw, rh);
	}
	memset(&res, 0, sizeof(res));
	if (rw != img.width || rh != img.height)
	{
		st = cp_image_resize_bicubic(&img, rw, rh, &res, err);
		if (st != CP_OK)
		{
			cp_image_free(&img);
			return st;
		}
		use = &res;
	}
	for (c = 0; c < 3; c++)
	{
		int			v;

		for (v = 0; v < 256; v++)
		{
			float		f = (float) ((double) v * cfg->rescale_factor);

			lut[c][v] = (f - cfg->mean[c]) / cfg->std[c];
		}
	}
	*grid_h = rh / cfg->patch_size;
	*grid_w = rw / cfg->patch_size;
	nfloats = (size_t) *grid_h * *grid_w * 3 * cfg->temporal_patch_size *
		cfg->patch_size * cfg->patch_size;
	*out = malloc(nfloats * sizeof(float));
	if (*out == NULL)
		st = cp_error(err, CP_ERR_NOMEM, "out of memory for %zu pixel values", nfloats);
	else
		patchify(use, cfg, lut, *grid_h, *grid_w, *out);
	cp_image_free(&img);
	cp_image_free(&res);
	return st;
}
