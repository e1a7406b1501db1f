/*
 * image_decode.c
 *	  Page image decoding to the RGB pixels Pillow gives
 *	  (docs/encoder.md#image-decode), for the preprocessing of image.h.
 *
 * PNG, GIF, BMP and TGA are decoded by stb_image (stb_image_impl.c).  JPEG
 * is decoded by libjpeg(-turbo), the library Pillow uses, with Pillow's
 * settings (default islow IDCT and fancy upsampling, output RGB / gray /
 * Adobe CMYK), so that decoded pixels are identical: stb_image's own JPEG
 * decoder rounds differently (up to 8 levels off on 4:2:2 samples).  The
 * conversion to RGB follows Pillow's Image.convert("RGB") for what Pillow
 * would have opened:
 *	- alpha is dropped, never composited; gray is replicated;
 *	- palette images are expanded (stb does it; indices past the palette
 *	  give black as in Pillow), GIF transparency does not
 *	  hide a pixel (Pillow keeps the palette index), and the first GIF frame
 *	  is placed on a canvas filled with index 0 or the transparent index
 *	  (grown to hold the frame if it sticks out, as Pillow does);
 *	- CMYK JPEG: Pillow's cmyk2rgb on Adobe-inverted samples;
 *	- 16-bit BMP: channels widened as v * 255 / max (Pillow), not by bit
 *	  replication (stb);
 *	- 16-bit PNG: Pillow keeps the high byte for RGB/RGBA/LA (as stb does),
 *	  but opens 16-bit gray as mode "I;16" whose conversion to RGB clips the
 *	  16-bit value to 255 (0..255 unchanged, 256.. become 255): done here.
 * Memory: every buffer is bounded by the header's width x height, which the
 * caller's pixel limit bounds, or by the file's size.  The one payload that
 * could inflate beyond that is PNG's zlib stream (a few kB can inflate to
 * gigabytes): stb_image's inflate buffer is not allowed to grow past what
 * the header needs (png_inflate_need, cp_stbi_grow).  GIF's LZW and TGA's
 * run-length data are written into the frame buffer and stop at its end;
 * BMP run-length compression is refused by stb_image; libjpeg allocates by
 * the header's size (progressive coefficients: 2 bytes per sample).
 * JPEG is in image_jpeg.c, the resize and normalisation in image_resize.c.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STBI_NO_STDIO
#include <stb/stb_image.h>

#include "image.h"


static const char *const kind_names[] = {"unknown", "PNG", "JPEG", "GIF", "BMP", "TGA"};

/* First GIF frame facts needed to reproduce Pillow's canvas. */
typedef struct GifFrame
{
	int			x;
	int			y;
	int			w;
	int			h;
	int			canvas_w;		/* logical screen, grown to hold the frame */
	int			canvas_h;
	int			fill_index;		/* canvas index: transparent index or 0 */
	int			pal_entries;
	uint8_t		pal[256][3];	/* the frame's palette (local or global) */
} GifFrame;

/*
 * detect_kind
 *		Recognise the image kind from its signature.  For well-known kinds we
 *		do not decode, set *other to their name.
 */
static CpImageKind
detect_kind(const uint8_t *b, size_t len, const char **other)
{
	*other = NULL;
	if (len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
		return CP_IMAGE_PNG;
	if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
		return CP_IMAGE_JPEG;
	if (len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
		return CP_IMAGE_GIF;
	if (len >= 2 && b[0] == 'B' && b[1] == 'M')
		return CP_IMAGE_BMP;

	if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
		*other = "WebP";
	else if (len >= 4 && (memcmp(b, "II*\0", 4) == 0 || memcmp(b, "MM\0*", 4) == 0))
		*other = "TIFF";
	else if (len >= 12 && memcmp(b + 4, "ftyp", 4) == 0)
		*other = "HEIF/AVIF";
	else if (len >= 4 && memcmp(b, "%PDF", 4) == 0)
		*other = "PDF (render its pages to images first)";
	else if (len >= 4 && memcmp(b, "8BPS", 4) == 0)
		*other = "PSD";
	else if (len >= 2 && b[0] == '#' && b[1] == '?')
		*other = "Radiance HDR";
	else if (len >= 4 && memcmp(b, "\0\0\1\0", 4) == 0)
		*other = "ICO";
	else if (len >= 12 && memcmp(b, "\0\0\0\x0cjP  ", 8) == 0)
		*other = "JPEG 2000";
	else if (len >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7' &&
			 (b[2] == '\n' || b[2] == ' ' || b[2] == '\r' || b[2] == '\t'))
		*other = "PNM";
	else if (len >= 5 && memcmp(b, "<svg", 4) == 0)
		*other = "SVG";
	return CP_IMAGE_UNKNOWN;
}

/*
 * stb_failure
 *		Map stb_image's last failure reason to a status and message.
 */
static CpStatus
stb_failure(CpImageKind kind, const char *what, CpError *err)
{
	const char *reason = stbi_failure_reason();
	CpStatus	status = CP_ERR_FORMAT;

	if (reason == NULL || reason[0] == '\0')
		reason = "unexpected end of data";
	if (strcmp(reason, CP_STBI_INFLATE_REFUSED) == 0)
		return cp_error(err, CP_ERR_LIMIT,
						"%s image refused: its compressed data inflates to more than its "
						"header's width and height need (a decompression bomb)",
						kind_names[kind]);
	if (strstr(reason, "not supported") != NULL)
		status = CP_ERR_UNSUPPORTED;
	else if (strstr(reason, "too large") != NULL || strstr(reason, "Very large") != NULL)
		return cp_error(err, CP_ERR_LIMIT, "%s image is too large for the decoder: %s",
						kind_names[kind], reason);
	else if (strstr(reason, "Out of memory") != NULL)
		status = CP_ERR_NOMEM;
	if (status == CP_ERR_UNSUPPORTED)
		return cp_error(err, status, "unsupported %s image: %s", kind_names[kind], reason);
	return cp_error(err, status, "corrupt or truncated %s image (%s): %s",
					kind_names[kind], what, reason);
}

static inline uint32_t
rd_be32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static inline uint32_t
rd_le32(const uint8_t *p)
{
	return ((uint32_t) p[3] << 24) | ((uint32_t) p[2] << 16) | ((uint32_t) p[1] << 8) | p[0];
}

/*
 * check_complete
 *		stb_image reads missing bytes as zeros and so decodes many truncated
 *		files "successfully"; Pillow refuses them ("image file is
 *		truncated").  Check the container structure reaches its end: JPEG
 *		segments and scans up to end-of-image (PNG: see png_prepare),
 *		the first GIF frame's data blocks, uncompressed BMP/TGA pixel data.
 */
static CpStatus
check_complete(CpImageKind kind, const uint8_t *b, size_t len, CpError *err)
{
	if (kind == CP_IMAGE_JPEG)
		return cp_jpeg_check(b, len, err);
	else if (kind == CP_IMAGE_BMP && len >= 34)
	{
		uint32_t	off = rd_le32(b + 10);
		uint32_t	hsize = rd_le32(b + 14);
		int64_t		w,
					h;
		int			bpp;
		uint32_t	comp;
		int64_t		need;

		if (hsize == 12)
			return CP_OK;		/* OS/2 1.x header: rare, leave it to stb */
		w = (int32_t) rd_le32(b + 18);
		h = (int32_t) rd_le32(b + 22);
		bpp = b[28] | (b[29] << 8);
		comp = rd_le32(b + 30);
		if (h < 0)
			h = -h;
		if (comp != 0 && comp != 3 && comp != 6)
			return CP_OK;		/* compressed: size unknown here */
		if (w <= 0 || w > (1 << 24) || h > (1 << 24) || bpp > 64)
			return CP_OK;		/* stb_image rejects these itself */
		need = (int64_t) off + ((w * bpp + 31) / 32) * 4 * h;
		if ((int64_t) len < need)
			return cp_error(err, CP_ERR_FORMAT, "truncated BMP image: %zu bytes, pixel data needs %lld",
							len, (long long) need);
	}
	else if (kind == CP_IMAGE_TGA && len >= 18)
	{
		int			type = b[2];
		int64_t		need;

		if (type == 9 || type == 10 || type == 11)
		{
			/* run-length packets: walk them until every pixel is covered */
			int			cmap_len = b[5] | (b[6] << 8);
			int			cmap_bits = b[7];
			int64_t		npix = (int64_t) (b[12] | (b[13] << 8)) * (b[14] | (b[15] << 8));
			int			px = (b[16] + 7) / 8;
			size_t		pos = 18 + (size_t) b[0] + (b[1] ? (size_t) cmap_len * ((cmap_bits + 7) / 8) : 0);

			while (npix > 0)
			{
				int			hdr,
							count;

				if (pos >= len)
					return cp_error(err, CP_ERR_FORMAT, "truncated TGA image: run-length data cut short");
				hdr = b[pos++];
				count = (hdr & 0x7f) + 1;
				pos += (size_t) px * ((hdr & 0x80) ? 1 : count);
				npix -= count;
			}
			if (pos > len)
				return cp_error(err, CP_ERR_FORMAT, "truncated TGA image: run-length data cut short");
		}
		else if (type == 1 || type == 2 || type == 3)
		{
			int			cmap_len = b[5] | (b[6] << 8);
			int			cmap_bits = b[7];
			int			w = b[12] | (b[13] << 8);
			int			h = b[14] | (b[15] << 8);
			int			bpp = b[16];

			need = 18 + (int64_t) b[0] + (b[1] ? (int64_t) cmap_len * ((cmap_bits + 7) / 8) : 0) +
				(int64_t) w * h * ((bpp + 7) / 8);
			if ((int64_t) len < need)
				return cp_error(err, CP_ERR_FORMAT, "truncated TGA image: %zu bytes, pixel data needs %lld",
								len, (long long) need);
		}
	}
	return CP_OK;
}

/*
 * png_prepare
 *		Make stb_image see what Pillow sees, in a copy when needed:
 *		- palette indices past the PLTE entries: stb_image would read its
 *		  uninitialised palette buffer there, Pillow gives black: pad PLTE
 *		  to 256 black entries (stb does not check chunk CRCs);
 *		- a file that stops after complete image data but before IEND (or
 *		  inside a trailing chunk): Pillow accepts it, stb_image needs IEND:
 *		  shorten the cut chunk and append IEND.  Truncated image data still
 *		  fails, in stb's inflate, as it does in Pillow;
 *		- empty IDAT chunks are renamed out of stb_image's way.
 *		*copy is NULL when the original bytes can be used as they are.
 */
static CpStatus
png_prepare(const uint8_t *b, size_t len, uint8_t **copy, size_t *copy_len,
			CpError *err)
{
	static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
	size_t		pos = 8;
	size_t		plte_pos = 0;
	uint32_t	plte_len = 0;
	size_t		keep;			/* bytes of the original kept as they are */
	size_t		cut_data = 0;	/* data bytes of a cut last chunk, if any */
	bool		cut = false;
	bool		has_iend = false;
	bool		empty_idat = false;
	size_t		pad,
				n;
	uint8_t    *c;

	*copy = NULL;
	*copy_len = len;
	for (;;)
	{
		uint32_t	clen;

		if (len - pos < 12)
		{
			if (len - pos >= 8)
			{
				cut = true;
				cut_data = len - pos - 8;
			}
			break;
		}
		clen = rd_be32(b + pos);
		if (memcmp(b + pos + 4, "IEND", 4) == 0)
		{
			has_iend = true;
			break;
		}
		if (clen > len - pos - 12)
		{
			cut = true;
			cut_data = clen < len - pos - 8 ? clen : len - pos - 8;
			break;
		}
		if (memcmp(b + pos + 4, "PLTE", 4) == 0 && plte_pos == 0)
		{
			plte_pos = pos;
			plte_len = clen;
		}
		if (clen == 0 && memcmp(b + pos + 4, "IDAT", 4) == 0)
			empty_idat = true;
		pos += 12 + (size_t) clen;
	}
	keep = pos;
	pad = (b[25] == 3 && plte_pos != 0 && plte_len < 768 && plte_len % 3 == 0) ? 768 - plte_len : 0;
	if (has_iend && pad == 0 && !empty_idat)
		return CP_OK;

	n = (has_iend ? len : keep + (cut ? 12 + cut_data : 0) + sizeof(iend)) + pad;
	if (n > (size_t) INT_MAX)
		return cp_error(err, CP_ERR_LIMIT, "PNG image of %zu bytes is over the decoder's limit", len);
	c = malloc(n);
	if (c == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory copying a PNG image of %zu bytes", len);
	if (pad > 0)
	{
		size_t		data_end = plte_pos + 8 + plte_len;

		memcpy(c, b, data_end);
		memset(c + data_end, 0, pad);
		c[plte_pos] = 0;
		c[plte_pos + 1] = 0;
		c[plte_pos + 2] = 768 >> 8;
		c[plte_pos + 3] = 768 & 0xff;
		memcpy(c + data_end + pad, b + data_end, (has_iend ? len : keep) - data_end);
	}
	else
		memcpy(c, b, has_iend ? len : keep);
	if (!has_iend)
	{
		uint8_t    *t = c + keep + pad;

		if (cut)
		{
			t[0] = (uint8_t) (cut_data >> 24);
			t[1] = (uint8_t) (cut_data >> 16);
			t[2] = (uint8_t) (cut_data >> 8);
			t[3] = (uint8_t) cut_data;
			memcpy(t + 4, b + keep + 4, 4 + cut_data);
			memset(t + 8 + cut_data, 0, 4);
			t += 12 + cut_data;
		}
		memcpy(t, iend, sizeof(iend));
	}
	/* empty IDAT chunks (maybe the repaired cut one) carry nothing, but make
	 * stb_image do pointer arithmetic on NULL: rename them to an ancillary
	 * chunk it skips */
	{
		pos = 8;
		while (n - pos >= 12)
		{
			uint32_t	clen = rd_be32(c + pos);

			if (memcmp(c + pos + 4, "IEND", 4) == 0 || clen > n - pos - 12)
				break;
			if (clen == 0 && memcmp(c + pos + 4, "IDAT", 4) == 0)
				c[pos + 4] = 'i';
			pos += 12 + (size_t) clen;
		}
	}
	*copy = c;
	*copy_len = n;
	return CP_OK;
}

/*
 * png_inflate_need
 *		The number of bytes a PNG's zlib stream must inflate to by its IHDR:
 *		per row a filter byte and the packed samples, for the one image or
 *		for each of the seven Adam7 passes.  0 when the header is not one
 *		stb_image accepts (it then fails on its own).
 */
static size_t
png_inflate_need(const uint8_t *b, size_t len)
{
	static const int adam7[7][4] = {	/* x0, y0, dx, dy */
		{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
		{0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}
	};
	uint64_t	w,
				h,
				need = 0;
	int			depth,
				channels,
				p;

	if (len < 29 || memcmp(b + 12, "IHDR", 4) != 0)
		return 0;
	w = rd_be32(b + 16);
	h = rd_be32(b + 20);
	depth = b[24];
	switch (b[25])
	{
		case 0:
		case 3:
			channels = 1;
			break;
		case 2:
			channels = 3;
			break;
		case 4:
			channels = 2;
			break;
		case 6:
			channels = 4;
			break;
		default:
			return 0;
	}
	if (w == 0 || h == 0 || w > (1u << 24) || h > (1u << 24) || depth > 16)
		return 0;
	if (b[28] == 0)
		return (size_t) (h * (1 + (w * channels * depth + 7) / 8));
	for (p = 0; p < 7; p++)
	{
		uint64_t	pw = (w > (uint64_t) adam7[p][0]) ?
			(w - adam7[p][0] + adam7[p][2] - 1) / adam7[p][2] : 0;
		uint64_t	ph = (h > (uint64_t) adam7[p][1]) ?
			(h - adam7[p][1] + adam7[p][3] - 1) / adam7[p][3] : 0;

		if (pw > 0 && ph > 0)
			need += ph * (1 + (pw * channels * depth + 7) / 8);
	}
	return (size_t) need;
}

/*
 * bmp16_pillow
 *		16-bit BMPs: stb_image widens 5/6-bit channels by bit replication,
 *		Pillow (BGR;15 / BGR;16 unpackers) by v * 255 / max.  Redo the
 *		pixels Pillow's way from the file.  Pillow knows only the 5-5-5 and
 *		5-6-5 layouts; other bit-field masks are refused, as Pillow does.
 */
static CpStatus
bmp16_pillow(const uint8_t *b, size_t len, CpImageRGB *img, CpError *err)
{
	uint32_t	off,
				hsize,
				comp;
	int64_t		w,
				h,
				stride,
				y;
	bool		bottom_up;
	int			gbits;

	if (len < 34)
		return CP_OK;
	off = rd_le32(b + 10);
	hsize = rd_le32(b + 14);
	comp = rd_le32(b + 30);
	if (hsize < 40 || (b[28] | (b[29] << 8)) != 16)
		return CP_OK;
	if (comp == 0)
		gbits = 5;
	else if (comp == 3)
	{
		uint32_t	rm,
					gm,
					bm;

		if (len < 66)
			return cp_error(err, CP_ERR_FORMAT, "truncated BMP image: bit-field masks cut short");
		rm = rd_le32(b + 54);
		gm = rd_le32(b + 58);
		bm = rd_le32(b + 62);
		if (rm == 0xF800 && gm == 0x7E0 && bm == 0x1F)
			gbits = 6;
		else if (rm == 0x7C00 && gm == 0x3E0 && bm == 0x1F)
			gbits = 5;
		else
			return cp_error(err, CP_ERR_UNSUPPORTED,
							"unsupported BMP image: 16-bit bit-field masks %x/%x/%x", rm, gm, bm);
	}
	else
		return CP_OK;
	w = (int32_t) rd_le32(b + 18);
	h = (int32_t) rd_le32(b + 22);
	bottom_up = h > 0;
	if (h < 0)
		h = -h;
	if (w != img->width || h != img->height)
		return cp_error(err, CP_ERR_FORMAT, "corrupt BMP image: inconsistent size");
	stride = ((w * 16 + 31) / 32) * 4;
	if ((int64_t) off + stride * h > (int64_t) len)
		return cp_error(err, CP_ERR_FORMAT, "truncated BMP image: pixel data cut short");
	for (y = 0; y < h; y++)
	{
		const uint8_t *row = b + off + (bottom_up ? h - 1 - y : y) * stride;
		uint8_t    *o = img->pixels + (size_t) y * w * 3;
		int64_t		x;

		for (x = 0; x < w; x++)
		{
			int			v = row[2 * x] | (row[2 * x + 1] << 8);

			o[3 * x + 2] = (uint8_t) ((v & 31) * 255 / 31);
			if (gbits == 6)
			{
				o[3 * x + 1] = (uint8_t) (((v >> 5) & 63) * 255 / 63);
				o[3 * x] = (uint8_t) (((v >> 11) & 31) * 255 / 31);
			}
			else
			{
				o[3 * x + 1] = (uint8_t) (((v >> 5) & 31) * 255 / 31);
				o[3 * x] = (uint8_t) (((v >> 10) & 31) * 255 / 31);
			}
		}
	}
	return CP_OK;
}

/*
 * gif_prepare
 *		Walk a GIF up to its first image descriptor: record the frame's
 *		rectangle, palette and the canvas fill index Pillow uses, and make a
 *		copy of the bytes in which transparency flags and the background
 *		index are cleared, so that stb_image draws every frame pixel with its
 *		palette colour and leaves the rest of the canvas for us to fill.
 */
static CpStatus
gif_prepare(const uint8_t *b, size_t len, GifFrame *f, uint8_t **patched,
			CpError *err)
{
	size_t		pos;
	int			gpal = 0;
	size_t		gpal_pos = 0;
	int			transparent = -1;
	size_t		gce[64];
	int			ngce = 0;
	uint8_t    *copy;
	int			i;

	*patched = NULL;
	memset(f, 0, sizeof(*f));
	if (len < 13)
		return cp_error(err, CP_ERR_FORMAT, "corrupt or truncated GIF image: header cut short");
	pos = 13;
	if (b[10] & 0x80)
	{
		gpal = 2 << (b[10] & 7);
		gpal_pos = pos;
		if (len - pos < (size_t) gpal * 3)
			return cp_error(err, CP_ERR_FORMAT, "corrupt or truncated GIF image: global palette cut short");
		pos += (size_t) gpal * 3;
	}
	for (;;)
	{
		int			tag;

		if (pos >= len)
			return cp_error(err, CP_ERR_FORMAT, "corrupt or truncated GIF image: no image data");
		tag = b[pos++];
		if (tag == 0x21)
		{
			int			label;

			if (pos >= len)
				return cp_error(err, CP_ERR_FORMAT, "corrupt or truncated GIF image: extension cut short");
			label = b[pos++];
			/* graphic control extension, in the only form stb_image accepts */
			if (label == 0xF9 && pos < len && b[pos] == 4 && len - pos > 5)
			{
				if (ngce == (int) (sizeof(gce) / sizeof(gce[0])))
					return cp_error(err, CP_ERR_UNSUPPORTED,
									"unsupported GIF image: more than %d control blocks before the first frame", ngce);
				gce[ngce++] = pos + 1;
				transparent = (b[pos + 1] & 1) ? b[pos + 4] : -1;
			}
			/* skip the data sub-blocks */
			for (;;)
			{
				size_t		sz;

				if (pos >= len)
					return cp_error(err, CP_ERR_FORMAT, "corrupt or truncated GIF image: extension cut short");
				sz = b[pos++];
				if (sz == 0)
					break;
				pos += sz;
			}
		}
		else if (tag == 0x2C)
		{
			int			lflags;

			if (len - pos < 9)
				return cp_error(err, CP_ERR_FORMAT, "corrupt or truncated GIF image: frame header cut short");
			f->x = b[pos] | (b[pos + 1] << 8);
			f->y = b[pos + 2] | (b[pos + 3] << 8);
			f->w = b[pos + 4] | (b[pos + 5] << 8);
			f->h = b[pos + 6] | (b[pos + 7] << 8);
			lflags = b[pos + 8];
			pos += 9;
			if (lflags & 0x80)
			{
				f->pal_entries = 2 << (lflags & 7);
				if (len - pos < (size_t) f->pal_entries * 3)
					return cp_error(err, CP_ERR_FORMAT, "corrupt or truncated GIF image: local palette cut short");
				memcpy(f->pal, b + pos, (size_t) f->pal_entries * 3);
			}
			else if (gpal > 0)
			{
				f->pal_entries = gpal;
				memcpy(f->pal, b + gpal_pos, (size_t) gpal * 3);
			}
			else
				return cp_error(err, CP_ERR_UNSUPPORTED,
								"unsupported GIF image: the first frame has no palette");
			if (lflags & 0x80)
				pos += (size_t) f->pal_entries * 3;
			/* LZW code size, then data sub-blocks up to an empty one */
			if (pos >= len)
				return cp_error(err, CP_ERR_FORMAT, "truncated GIF image: no frame data");
			pos++;
			for (;;)
			{
				if (pos >= len)
					return cp_error(err, CP_ERR_FORMAT, "truncated GIF image: frame data cut short");
				if (b[pos] == 0)
					break;
				pos += 1 + (size_t) b[pos];
			}
			break;
		}
		else if (tag == 0x3B)
			return cp_error(err, CP_ERR_FORMAT, "corrupt GIF image: it ends before its first frame");
		else
			return cp_error(err, CP_ERR_FORMAT, "corrupt GIF image: unknown block type 0x%02x", tag);
	}
	f->fill_index = transparent >= 0 ? transparent : 0;
	/* Pillow grows the canvas to hold a frame that sticks out of it */
	f->canvas_w = b[6] | (b[7] << 8);
	f->canvas_h = b[8] | (b[9] << 8);
	if (f->x + f->w > f->canvas_w)
		f->canvas_w = f->x + f->w;
	if (f->y + f->h > f->canvas_h)
		f->canvas_h = f->y + f->h;

	if (f->canvas_w > 0xffff || f->canvas_h > 0xffff)
		return cp_error(err, CP_ERR_UNSUPPORTED, "unsupported GIF image: frame reaches past 65535 pixels");

	copy = malloc(len);
	if (copy == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory copying a GIF image of %zu bytes", len);
	memcpy(copy, b, len);
	copy[6] = (uint8_t) (f->canvas_w & 0xff);
	copy[7] = (uint8_t) (f->canvas_w >> 8);
	copy[8] = (uint8_t) (f->canvas_h & 0xff);
	copy[9] = (uint8_t) (f->canvas_h >> 8);
	copy[11] = 0;				/* background index: stb would paint it */
	for (i = 0; i < ngce; i++)
		copy[gce[i]] &= (uint8_t) ~1;
	*patched = copy;
	return CP_OK;
}

/*
 * gif_fill_canvas
 *		Paint the canvas outside the first frame like Pillow does.
 */
static void
gif_fill_canvas(CpImageRGB *img, const GifFrame *f)
{
	uint8_t		c[3] = {0, 0, 0};
	int			y;

	if (f->fill_index < f->pal_entries)
		memcpy(c, f->pal[f->fill_index], 3);
	for (y = 0; y < img->height; y++)
	{
		uint8_t    *row = img->pixels + (size_t) y * img->width * 3;
		bool		in_rows = (y >= f->y && y < f->y + f->h);
		int			x;

		for (x = 0; x < img->width; x++)
		{
			if (in_rows && x >= f->x && x < f->x + f->w)
			{
				x = f->x + f->w - 1;
				continue;
			}
			memcpy(row + (size_t) x * 3, c, 3);
		}
	}
}

/*
 * decode_png16_gray
 *		16-bit grayscale PNG: Pillow mode "I;16", whose convert("RGB") clips
 *		each 16-bit value to 0..255.
 */
static CpStatus
decode_png16_gray(const uint8_t *bytes, size_t len, size_t inflate_need,
				  CpImageRGB *out, CpError *err)
{
	int			w,
				h;
	uint16_t   *g;
	size_t		i,
				npix;

	g = cp_stbi_load(CP_IMAGE_PNG, bytes, (int) len, &w, &h, 1, 1, inflate_need);
	if (g == NULL)
		return stb_failure(CP_IMAGE_PNG, "decoding", err);
	npix = (size_t) w * h;
	out->pixels = malloc(npix * 3);
	if (out->pixels == NULL)
	{
		stbi_image_free(g);
		return cp_error(err, CP_ERR_NOMEM, "out of memory for a %dx%d image", w, h);
	}
	for (i = 0; i < npix; i++)
	{
		uint8_t		v = g[i] > 255 ? 255 : (uint8_t) g[i];

		out->pixels[3 * i] = v;
		out->pixels[3 * i + 1] = v;
		out->pixels[3 * i + 2] = v;
	}
	stbi_image_free(g);
	out->width = w;
	out->height = h;
	return CP_OK;
}

/*
 * cp_image_decode
 *		See image.h.
 */
CpStatus
cp_image_decode(const uint8_t *bytes, size_t len, int64_t max_pixels,
				CpImageRGB *out, CpError *err)
{
	const char *other;
	CpImageKind	kind;
	int			w,
				h,
				comp,
				w2 = 0,
				h2 = 0;
	int64_t		npix;
	CpStatus	st = CP_OK;
	GifFrame	gif;
	uint8_t    *patched = NULL;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (out == NULL || (bytes == NULL && len > 0))
		return cp_error(err, CP_ERR_INVALID_ARG, "cp_image_decode: no buffer given");
	if (len == 0)
		return cp_error(err, CP_ERR_FORMAT, "empty image (0 bytes)");
	if (len > (size_t) INT_MAX)
		return cp_error(err, CP_ERR_LIMIT, "image of %zu bytes is over the decoder's limit of %d bytes",
						len, INT_MAX);

	(void) cp_stbi_take_assert_hits();
	kind = detect_kind(bytes, len, &other);
	if (kind == CP_IMAGE_UNKNOWN)
	{
		if (other != NULL)
			return cp_error(err, CP_ERR_UNSUPPORTED,
							"%s images are not supported (PNG, JPEG, BMP, GIF and TGA are)", other);
		/* TGA has no signature: accept what stb_image's TGA probe accepts */
		if (!cp_stbi_info(CP_IMAGE_TGA, bytes, (int) len, &w, &h, &comp))
			return cp_error(err, CP_ERR_UNSUPPORTED,
							"unrecognised image format (not PNG, JPEG, BMP, GIF or TGA)");
		kind = CP_IMAGE_TGA;
		if ((st = check_complete(kind, bytes, len, err)) != CP_OK)
			return st;
	}
	else if ((kind == CP_IMAGE_PNG && len < 33) || (kind == CP_IMAGE_BMP && len < 26) ||
			 (kind == CP_IMAGE_GIF && len < 13))
		return cp_error(err, CP_ERR_FORMAT, "truncated %s image: header cut short (%zu bytes)",
						kind_names[kind], len);
	else if ((st = check_complete(kind, bytes, len, err)) != CP_OK)
		return st;
	else if (kind == CP_IMAGE_JPEG)
		return cp_jpeg_decode(bytes, len, max_pixels, out, err);
	else if (!cp_stbi_info(kind, bytes, (int) len, &w, &h, &comp))
		return stb_failure(kind, "reading the header", err);

	/* stb reports a top-down BMP's height as negative */
	if (kind == CP_IMAGE_BMP && h < 0 && h > INT_MIN)
		h = -h;
	if (w <= 0 || h <= 0)
		return cp_error(err, CP_ERR_FORMAT, "%s image has no pixels (%dx%d)", kind_names[kind], w, h);
	npix = (int64_t) w * h;
	if (max_pixels > 0 && npix > max_pixels)
		return cp_error(err, CP_ERR_LIMIT,
						"%s image of %dx%d = %lld pixels is over the limit of %lld pixels",
						kind_names[kind], w, h, (long long) npix, (long long) max_pixels);
	/* stb_image needs 4 bytes per pixel to fit an int */
	if (npix > INT_MAX / 4)
		return cp_error(err, CP_ERR_LIMIT,
						"%s image of %dx%d is too large to decode (over %d pixels)",
						kind_names[kind], w, h, INT_MAX / 4);

	{
		const uint8_t *src = bytes;
		size_t		src_len = len;
		size_t		inflate_need = 0;

		if (kind == CP_IMAGE_GIF)
		{
			st = gif_prepare(bytes, len, &gif, &patched, err);
			if (st != CP_OK)
				return st;
			src = patched;
			if (gif.canvas_w != w || gif.canvas_h != h)
			{
				w = gif.canvas_w;
				h = gif.canvas_h;
				npix = (int64_t) w * h;
				if ((max_pixels > 0 && npix > max_pixels) || npix > INT_MAX / 4)
				{
					free(patched);
					return cp_error(err, CP_ERR_LIMIT,
									"GIF image of %dx%d = %lld pixels is over the limit of %lld pixels",
									w, h, (long long) npix,
									(long long) (max_pixels > 0 ? max_pixels : INT_MAX / 4));
				}
			}
		}
		else if (kind == CP_IMAGE_PNG)
		{
			st = png_prepare(bytes, len, &patched, &src_len, err);
			if (st != CP_OK)
				return st;
			if (patched != NULL)
				src = patched;
			/* bound what the image data may inflate to: no decompression bombs */
			inflate_need = png_inflate_need(bytes, len);
		}
		if (kind == CP_IMAGE_PNG && bytes[24] == 16 && bytes[25] == 0)
		{
			st = decode_png16_gray(src, src_len, inflate_need, out, err);
			w2 = out->width;
			h2 = out->height;
		}
		else if ((out->pixels = cp_stbi_load(kind, src, (int) src_len, &w2, &h2, 3, 0,
												 inflate_need)) == NULL)
			st = stb_failure(kind, "decoding", err);
		else
		{
			out->width = w2;
			out->height = h2;
			if (kind == CP_IMAGE_GIF)
				gif_fill_canvas(out, &gif);
			else if (kind == CP_IMAGE_BMP)
				st = bmp16_pillow(bytes, len, out, err);
		}
		free(patched);
	}
	if (st != CP_OK)
	{
		cp_image_free(out);
		(void) cp_stbi_take_assert_hits();
		return st;
	}
	if (cp_stbi_take_assert_hits() > 0)
	{
		cp_image_free(out);
		return cp_error(err, CP_ERR_FORMAT, "corrupt %s image (decoder consistency check failed)",
						kind_names[kind]);
	}
	if (out->width != w || out->height != h)
	{
		cp_image_free(out);
		return cp_error(err, CP_ERR_FORMAT, "corrupt %s image: header says %dx%d, data %dx%d",
						kind_names[kind], w, h, w2, h2);
	}
	return CP_OK;
}

/*
 * cp_image_free
 *		Release the pixels of an image (safe on a zeroed or freed image).
 */
void
cp_image_free(CpImageRGB *img)
{
	if (img == NULL)
		return;
	free(img->pixels);
	img->pixels = NULL;
	img->width = 0;
	img->height = 0;
}
