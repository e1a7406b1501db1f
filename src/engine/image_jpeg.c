/*
 * image_jpeg.c
 *	  JPEG for image_decode.c: a structural check of the whole file, then
 *	  decoding with libjpeg(-turbo), the library Pillow uses, with Pillow's
 *	  settings (default islow IDCT and fancy upsampling, output RGB / gray /
 *	  Adobe CMYK), so that decoded pixels are identical: stb_image's own
 *	  JPEG decoder rounds differently (up to 8 levels off on 4:2:2 samples).
 *	  Memory is bounded by the header's size, checked against the pixel
 *	  limit before any buffer exists.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "image.h"

/* Progressive JPEGs need ~10 scans; thousands only burn CPU time. */
#define JPEG_MAX_SCANS 1000

/*
 * cp_jpeg_check
 *		Walk every JPEG marker segment and entropy-coded segment up to the
 *		end-of-image marker.  Besides truncation this rejects Huffman tables
 *		of more than 256 codes (they overflowed a buffer in stb_image 2.27's
 *		decoder, found by fuzz_image when JPEG still went through stb) and
 *		files of absurdly many progressive scans (CPU-time bombs).
 */
CpStatus
cp_jpeg_check(const uint8_t *b, size_t len, CpError *err)
{
	size_t		pos = 2;
	int			nscans = 0;

	for (;;)
	{
		int			m;
		size_t		seglen;

		if (len - pos < 2)
			return cp_error(err, CP_ERR_FORMAT, "truncated JPEG image: no end-of-image marker");
		if (b[pos] != 0xFF)
			return cp_error(err, CP_ERR_FORMAT, "corrupt JPEG image: no marker at offset %zu", pos);
		m = b[pos + 1];
		if (m == 0xFF)
		{
			pos++;				/* fill byte */
			continue;
		}
		if (m == 0xD9)
			return CP_OK;
		if (m == 0x01 || (m >= 0xD0 && m <= 0xD8))
		{
			pos += 2;
			continue;
		}
		if (len - pos < 4)
			return cp_error(err, CP_ERR_FORMAT, "truncated JPEG image: segment cut short");
		seglen = ((size_t) b[pos + 2] << 8) | b[pos + 3];
		if (seglen < 2 || seglen > len - pos - 2)
			return cp_error(err, CP_ERR_FORMAT, "truncated or corrupt JPEG image: segment at offset %zu", pos);
		if (m == 0xC4)
		{
			size_t		p = pos + 4;
			size_t		end = pos + 2 + seglen;

			while (p < end)
			{
				int			n = 0,
							i;

				if (end - p < 17)
					return cp_error(err, CP_ERR_FORMAT, "corrupt JPEG image: Huffman table cut short");
				for (i = 1; i <= 16; i++)
					n += b[p + i];
				if (n > 256)
					return cp_error(err, CP_ERR_FORMAT, "corrupt JPEG image: Huffman table of %d codes", n);
				p += 17 + (size_t) n;
			}
			if (p != end)
				return cp_error(err, CP_ERR_FORMAT, "corrupt JPEG image: Huffman table cut short");
		}
		if (m == 0xDA && ++nscans > JPEG_MAX_SCANS)
			return cp_error(err, CP_ERR_LIMIT, "JPEG image has more than %d scans", JPEG_MAX_SCANS);
		pos += 2 + seglen;
		if (m == 0xDA)
		{
			/* entropy-coded data: up to a marker other than a stuffed 00 or RSTn */
			for (;;)
			{
				const uint8_t *ff = memchr(b + pos, 0xFF, len - pos);

				if (ff == NULL || (size_t) (ff - b) + 1 >= len)
					return cp_error(err, CP_ERR_FORMAT, "truncated JPEG image: scan data cut short");
				pos = (size_t) (ff - b);
				if (b[pos + 1] == 0x00 || (b[pos + 1] >= 0xD0 && b[pos + 1] <= 0xD7) ||
					b[pos + 1] == 0xFF)
				{
					pos += (b[pos + 1] == 0xFF) ? 1 : 2;
					continue;
				}
				break;
			}
		}
	}
}

/* libjpeg error manager: longjmp out instead of exit(), never print. */
typedef struct JpegError
{
	struct jpeg_error_mgr pub;
	jmp_buf		jump;
	char		msg[JMSG_LENGTH_MAX];
} JpegError;

/*
 * jpeg_error_exit
 *		libjpeg fatal error: keep its message, return to cp_jpeg_decode.
 */
static void
jpeg_error_exit(j_common_ptr cinfo)
{
	JpegError  *je = (JpegError *) cinfo->err;

	(*cinfo->err->format_message) (cinfo, je->msg);
	longjmp(je->jump, 1);
}

/*
 * jpeg_output_message
 *		libjpeg warnings ("corrupt data", ...): ignored, as Pillow does.
 */
static void
jpeg_output_message(j_common_ptr cinfo)
{
	(void) cinfo;
}

/*
 * cp_jpeg_decode
 *		Decode a JPEG with libjpeg exactly as Pillow's JpegDecode does (no
 *		scaling, no draft mode; out_color_space RGB, GRAYSCALE or CMYK by
 *		the number of components) and convert to RGB as convert("RGB").
 */
CpStatus
cp_jpeg_decode(const uint8_t *bytes, size_t len, int64_t max_pixels, CpImageRGB *out,
			CpError *err)
{
	struct jpeg_decompress_struct cinfo;
	JpegError	je;
	uint8_t    *volatile pixels = NULL;
	uint8_t    *volatile row = NULL;
	CpStatus	st = CP_OK;
	int			w,
				h,
				nc;
	int64_t		npix;

	memset(&cinfo, 0, sizeof(cinfo));
	cinfo.err = jpeg_std_error(&je.pub);
	je.pub.error_exit = jpeg_error_exit;
	je.pub.output_message = jpeg_output_message;
	je.msg[0] = '\0';
	if (setjmp(je.jump))
	{
		jpeg_destroy_decompress(&cinfo);
		free(pixels);
		free(row);
		return cp_error(err, CP_ERR_FORMAT, "corrupt JPEG image: %s", je.msg);
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, bytes, (unsigned long) len);
	(void) jpeg_read_header(&cinfo, TRUE);
	w = (int) cinfo.image_width;
	h = (int) cinfo.image_height;
	nc = cinfo.num_components;
	npix = (int64_t) w * h;
	if (w <= 0 || h <= 0)
		st = cp_error(err, CP_ERR_FORMAT, "JPEG image has no pixels (%dx%d)", w, h);
	else if (max_pixels > 0 && npix > max_pixels)
		st = cp_error(err, CP_ERR_LIMIT, "JPEG image of %dx%d = %lld pixels is over the limit of %lld pixels",
					  w, h, (long long) npix, (long long) max_pixels);
	else if (npix > INT_MAX / 4)
		st = cp_error(err, CP_ERR_LIMIT, "JPEG image of %dx%d is too large to decode (over %d pixels)",
					  w, h, INT_MAX / 4);
	else if (nc != 1 && nc != 3 && nc != 4)
		st = cp_error(err, CP_ERR_UNSUPPORTED, "unsupported JPEG image: %d colour components", nc);
	if (st != CP_OK)
	{
		jpeg_destroy_decompress(&cinfo);
		return st;
	}
	cinfo.out_color_space = nc == 1 ? JCS_GRAYSCALE : (nc == 3 ? JCS_RGB : JCS_CMYK);
	(void) jpeg_start_decompress(&cinfo);
	if ((int) cinfo.output_width != w || (int) cinfo.output_height != h ||
		cinfo.output_components != (nc == 3 ? 3 : nc))
	{
		jpeg_destroy_decompress(&cinfo);
		return cp_error(err, CP_ERR_FORMAT, "corrupt JPEG image: unexpected output geometry");
	}
	pixels = malloc((size_t) npix * 3);
	if (nc != 3)
		row = malloc((size_t) w * nc);
	if (pixels == NULL || (nc != 3 && row == NULL))
	{
		jpeg_destroy_decompress(&cinfo);
		free(pixels);
		free(row);
		return cp_error(err, CP_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
	}
	while (cinfo.output_scanline < cinfo.output_height)
	{
		uint8_t    *dst = pixels + (size_t) cinfo.output_scanline * w * 3;
		JSAMPROW	r = (nc == 3) ? dst : row;
		int			x;

		if (jpeg_read_scanlines(&cinfo, &r, 1) != 1)
			break;
		if (nc == 1)
		{
			for (x = 0; x < w; x++)
				dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
		}
		else if (nc == 4)
		{
			/* Pillow: rawmode "CMYK;I" (Adobe inverted), then cmyk2rgb */
			for (x = 0; x < w; x++)
			{
				int			nk = row[4 * x + 3];	/* 255 - (255 - K) */
				int			c;

				for (c = 0; c < 3; c++)
				{
					int			t = (255 - row[4 * x + c]) * nk + 128;
					int			v = nk - (((t >> 8) + t) >> 8);

					dst[3 * x + c] = (uint8_t) (v < 0 ? 0 : v);
				}
			}
		}
	}
	if (cinfo.output_scanline < cinfo.output_height)
	{
		jpeg_destroy_decompress(&cinfo);
		free(pixels);
		free(row);
		return cp_error(err, CP_ERR_FORMAT, "truncated JPEG image: decoder stopped at row %u of %d",
						cinfo.output_scanline, h);
	}
	(void) jpeg_finish_decompress(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	free(row);
	out->pixels = pixels;
	out->width = w;
	out->height = h;
	return CP_OK;
}
