/*
 * image.h
 *	  Page image preprocessing, bit-compatible with transformers'
 *	  SiglipImageProcessor (slow/PIL path) running on Pillow 13: decode
 *	  (stb_image for PNG/GIF/BMP/TGA, libjpeg-turbo for JPEG as in Pillow),
 *	  convert to RGB like Pillow's convert("RGB"), resize with a bit-exact
 *	  reimplementation of Pillow's BICUBIC, rescale and normalise.
 */
#ifndef CP_IMAGE_H
#define CP_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "cp_status.h"

/* 8-bit interleaved RGB image (Pillow mode "RGB"), malloc'd pixels. */
typedef struct CpImageRGB
{
	int			width;
	int			height;
	uint8_t    *pixels;			/* height * width * 3 */
} CpImageRGB;

/*
 * Decode PNG/JPEG/BMP/GIF(first frame)/TGA bytes to RGB, with the pixels
 * Image.open(bytes).convert("RGB") gives in Pillow 13.  Images with more
 * than max_pixels pixels (0 = no limit) are rejected with CP_ERR_LIMIT from
 * their header, before any pixel buffer is allocated (images over the
 * decoder's own limit of INT_MAX/4 pixels too).  Corrupt/truncated/empty ->
 * CP_ERR_FORMAT; other kinds (WebP, TIFF, PDF, ...) and unsupported variants
 * -> CP_ERR_UNSUPPORTED.  Always a message in err; out->pixels NULL on error.
 */
extern CpStatus cp_image_decode(const uint8_t *bytes, size_t len,
								int64_t max_pixels, CpImageRGB *out,
								CpError *err);
extern void cp_image_free(CpImageRGB *img);

/*
 * Pillow (>= 13) Image.resize((w, h), Resampling.BICUBIC) on an RGB image,
 * bit-exact.  OpenMP-parallel over rows.
 */
extern CpStatus cp_image_resize_bicubic(const CpImageRGB *src, int width,
										int height, CpImageRGB *dst,
										CpError *err);

/*
 * Full preprocessing: decode, RGB, resize to cfg->width x cfg->height
 * (cfg->resample must be 3 = BICUBIC; no resize when the size is already
 * right, CP_ERR_SHAPE when it is not and do_resize is off), rescale as
 * float32(u8 * (double) rescale_factor), normalise in float32
 * (x - mean) / std; writes planar CHW float32 into out
 * (3 * cfg->height * cfg->width floats), i.e. pixel_values[0].
 */
extern CpStatus cp_image_preprocess(const uint8_t *bytes, size_t len,
									const CpImageConfig *cfg,
									int64_t max_pixels, float *out,
									CpError *err);

/*
 * Internal, for stb_image_impl.c and image_*.c only.
 */
typedef enum CpImageKind
{
	CP_IMAGE_UNKNOWN = 0,
	CP_IMAGE_PNG,
	CP_IMAGE_JPEG,
	CP_IMAGE_GIF,
	CP_IMAGE_BMP,
	CP_IMAGE_TGA
} CpImageKind;

/* JPEG (image_jpeg.c): structural check of the whole file, and decoding. */
extern CpStatus cp_jpeg_check(const uint8_t *b, size_t len, CpError *err);
extern CpStatus cp_jpeg_decode(const uint8_t *bytes, size_t len,
							   int64_t max_pixels, CpImageRGB *out,
							   CpError *err);

/* stb_image assertion failures on this thread since the last call (reset). */
extern int	cp_stbi_take_assert_hits(void);

/* stb_image's header parser for one kind; 0 + stbi_failure_reason() on error. */
extern int	cp_stbi_info(CpImageKind kind, const uint8_t *bytes, int len,
						 int *w, int *h, int *comp);

/*
 * stb_image's decoder for one kind; malloc'd samples or NULL on error.
 * inflate_need: for PNG, the bytes its image data inflates to by the header
 * (0 = unbounded); more is refused with this failure reason.
 */
#define CP_STBI_INFLATE_REFUSED "image data inflates beyond what the header's size needs"
extern void *cp_stbi_load(CpImageKind kind, const uint8_t *bytes, int len,
						  int *w, int *h, int req_comp, int want16,
						  size_t inflate_need);

#endif							/* CP_IMAGE_H */
