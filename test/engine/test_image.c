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
#include <sys/resource.h>

#include <jansson.h>

#include "image.h"
#include "test_util.h"

#define FIX "../fixtures/images/pillow/"

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
 * test_decode_samples
 *		Every sample of image/decode decodes to Pillow's convert("RGB").
 */
static void
test_decode_samples(void)
{
	FILE	   *f = fopen(FIX "decode/manifest.txt", "r");
	char		line[256];
	int			n = 0;

	CHECK(f != NULL, "cannot open " FIX "decode/manifest.txt");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		char		name[128],
					mode[16],
					kind[16],
					path[300];
		int			w,
					h;
		uint8_t    *bytes,
				   *want;
		size_t		len,
					wlen;
		CpImageRGB	img;
		CpError		err;
		CpStatus	st;

		if (line[0] == '#')
			continue;
		if (sscanf(line, "%127s %d %d %15s %15s", name, &w, &h, mode, kind) != 5)
		{
			CHECK(false, "bad manifest line: %s", line);
			continue;
		}
		snprintf(path, sizeof(path), FIX "decode/%s", name);
		bytes = read_file(path, &len);
		snprintf(path, sizeof(path), FIX "decode/%s.rgb", name);
		want = read_file(path, &wlen);
		CHECK(bytes != NULL && want != NULL && wlen == (size_t) w * h * 3, "missing sample %s", name);
		if (bytes == NULL || want == NULL)
		{
			free(bytes);
			free(want);
			continue;
		}
		st = cp_image_decode(bytes, len, 0, &img, &err);
		CHECK(st == CP_OK, "decode %s: %s", name, err.msg);
		if (st == CP_OK)
		{
			CHECK(img.width == w && img.height == h, "%s: %dx%d, Pillow %dx%d",
				  name, img.width, img.height, w, h);
			if (img.width == w && img.height == h)
			{
				size_t		i,
							ndiff = 0;
				int			maxd = 0;
				double		sumd = 0;

				for (i = 0; i < wlen; i++)
				{
					int			d = abs((int) img.pixels[i] - (int) want[i]);

					ndiff += d != 0;
					sumd += d;
					if (d > maxd)
						maxd = d;
				}
				/* lossy (JPEG) too: libjpeg-turbo is Pillow's decoder */
				CHECK(ndiff == 0, "%s (%s, Pillow mode %s): %zu of %zu bytes differ from Pillow, max %d, mean %.3f",
					  name, kind, mode, ndiff, wlen, maxd, sumd / wlen);
			}
			cp_image_free(&img);
		}
		free(bytes);
		free(want);
		n++;
	}
	fclose(f);
	CHECK(n >= 30, "only %d decode samples", n);
	printf("decode: %d samples compared with Pillow\n", n);
}

/*
 * test_preprocess_goldens
 *		cp_image_preprocess gives the float32 pixel values numpy computes
 *		after Pillow's resize, bit for bit.
 */
static void
test_preprocess_goldens(void)
{
	FILE	   *f = fopen(FIX "preprocess.txt", "r");
	char		line[512];
	int			n = 0;

	CHECK(f != NULL, "cannot open " FIX "preprocess.txt");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
	{
		char		src[128],
					outname[128],
					path[300];
		CpImageConfig cfg;
		double		rf;
		uint8_t    *bytes,
				   *want;
		size_t		len,
					wlen;
		float	   *got;
		CpError		err;
		CpStatus	st;

		if (line[0] == '#')
			continue;
		memset(&cfg, 0, sizeof(cfg));
		if (sscanf(line, "%127s %d %d %lf %f %f %f %f %f %f %127s", src, &cfg.width, &cfg.height,
				   &rf, &cfg.mean[0], &cfg.mean[1], &cfg.mean[2],
				   &cfg.std[0], &cfg.std[1], &cfg.std[2], outname) != 11)
		{
			CHECK(false, "bad preprocess line: %s", line);
			continue;
		}
		cfg.rescale_factor = rf;
		cfg.resample = 3;
		cfg.do_resize = cfg.do_rescale = cfg.do_normalize = cfg.do_convert_rgb = true;
		snprintf(path, sizeof(path), FIX "decode/%s", src);
		bytes = read_file(path, &len);
		snprintf(path, sizeof(path), FIX "%s", outname);
		want = read_file(path, &wlen);
		CHECK(bytes != NULL && want != NULL && wlen == sizeof(float) * 3 * cfg.width * cfg.height,
			  "missing preprocess golden %s", outname);
		if (bytes != NULL && want != NULL && wlen == sizeof(float) * 3 * cfg.width * cfg.height)
		{
			got = malloc(wlen);
			st = cp_image_preprocess(bytes, len, &cfg, 0, got, &err);
			CHECK(st == CP_OK, "preprocess %s: %s", src, err.msg);
			if (st == CP_OK)
			{
				size_t		i,
							nd = 0;

				for (i = 0; i < wlen / sizeof(float); i++)
				{
					float		w;

					memcpy(&w, want + i * sizeof(float), sizeof(float));
					nd += (got[i] != w);
				}
				CHECK(nd == 0, "preprocess %s %dx%d: %zu values differ from numpy", src,
					  cfg.width, cfg.height, nd);
			}
			free(got);
		}
		free(bytes);
		free(want);
		n++;
	}
	fclose(f);
	CHECK(n >= 3, "only %d preprocess goldens", n);
	printf("preprocess: %d goldens compared with Pillow + numpy\n", n);
}

/*
 * expect_status
 *		Decode bytes and check the status; the message must not be empty.
 */
static void
expect_status(const char *what, const uint8_t *bytes, size_t len, int64_t max_pixels,
			  CpStatus want)
{
	CpImageRGB	img;
	CpError		err;
	CpStatus	st;

	err.msg[0] = '\0';
	st = cp_image_decode(bytes, len, max_pixels, &img, &err);
	CHECK(st == want, "%s: status %s (%s), want %s", what, cp_status_name(st), err.msg,
		  cp_status_name(want));
	if (st != CP_OK)
		CHECK(err.msg[0] != '\0' && img.pixels == NULL, "%s: no message or pixels left", what);
	cp_image_free(&img);
}

/*
 * png_with_size
 *		A valid-looking PNG signature + IHDR of the given size, then an IDAT
 *		with a few bytes (a decompression-bomb header).
 */
static size_t
png_with_size(uint8_t *buf, uint32_t w, uint32_t h)
{
	static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	static const uint8_t tail[] = {0, 0, 0, 2, 'I', 'D', 'A', 'T', 0x78, 0x9c, 0, 0, 0, 0,
	0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
	size_t		n = 0;

	memcpy(buf, sig, 8);
	n = 8;
	memcpy(buf + n, "\0\0\0\x0dIHDR", 8);
	n += 8;
	buf[n++] = w >> 24;
	buf[n++] = w >> 16;
	buf[n++] = w >> 8;
	buf[n++] = w;
	buf[n++] = h >> 24;
	buf[n++] = h >> 16;
	buf[n++] = h >> 8;
	buf[n++] = h;
	memcpy(buf + n, "\x08\x02\x00\x00\x00", 5);	/* 8-bit RGB */
	n += 5;
	memset(buf + n, 0, 4);		/* CRC: not checked by the decoder */
	n += 4;
	memcpy(buf + n, tail, sizeof(tail));
	return n + sizeof(tail);
}

/* Bit writer for a raw deflate stream: bits go in LSB first. */
typedef struct BitWriter
{
	uint8_t    *buf;
	size_t		nbits;
} BitWriter;

/*
 * put_bits
 *		Append the low n bits of v, least significant first (deflate's
 *		order for headers); Huffman codes are passed bit-reversed.
 */
static void
put_bits(BitWriter *bw, uint32_t v, int n)
{
	int			i;

	for (i = 0; i < n; i++, bw->nbits++)
		if ((v >> i) & 1)
			bw->buf[bw->nbits / 8] |= (uint8_t) (1 << (bw->nbits % 8));
}

/*
 * put_code
 *		Append a Huffman code of n bits, most significant bit first.
 */
static void
put_code(BitWriter *bw, uint32_t code, int n)
{
	int			i;

	for (i = n - 1; i >= 0; i--)
		put_bits(bw, (code >> i) & 1, 1);
}

/*
 * zlib_zeros
 *		A zlib stream that inflates to n zero bytes, written by hand with
 *		deflate's fixed Huffman codes (RFC 1951 3.2.6): one literal 0, then
 *		copies of 258 bytes at distance 1 (13 bits each), then literals.
 *		About 160 times smaller than what it inflates to.  malloc'd,
 *		length in *len.
 */
static uint8_t *
zlib_zeros(size_t n, size_t *len)
{
	BitWriter	bw;
	size_t		done = 0;

	bw.buf = calloc(20 + 258 + n / 150, 1);
	bw.nbits = 0;
	put_bits(&bw, 0x78, 8);		/* CMF: deflate, 32K window */
	put_bits(&bw, 0x01, 8);		/* FLG: no dictionary, check bits */
	put_bits(&bw, 1, 1);		/* BFINAL */
	put_bits(&bw, 1, 2);		/* BTYPE 01: fixed Huffman codes */
	while (done < n)
	{
		if (done > 0 && n - done >= 258)
		{
			put_code(&bw, 0xC5, 8);	/* length symbol 285: 258 bytes */
			put_code(&bw, 0, 5);	/* distance symbol 0: distance 1 */
			done += 258;
		}
		else
		{
			put_code(&bw, 0x30, 8);	/* literal 0 */
			done++;
		}
	}
	put_code(&bw, 0, 7);		/* end of block */
	*len = (bw.nbits + 7) / 8;
	/* Adler-32 of n zeros, big-endian: sum a = 1, sum b = n (mod 65521) */
	bw.buf[*len] = (uint8_t) ((n % 65521) >> 8);
	bw.buf[*len + 1] = (uint8_t) (n % 65521);
	bw.buf[*len + 2] = 0;
	bw.buf[*len + 3] = 1;
	*len += 4;
	return bw.buf;
}

/*
 * png_inflating_to
 *		A PNG of w x h pixels (depth, colour type and interlace as given)
 *		whose one IDAT chunk inflates to `inflated` zero bytes: a valid
 *		all-black image when `inflated` is what the header needs, a
 *		decompression bomb when it is much more.  CRCs are left zero (the
 *		decoder does not check them).  malloc'd, length in *len.
 */
static uint8_t *
png_inflating_to(uint32_t w, uint32_t h, int depth, int colour, int interlace,
				 size_t inflated, size_t *len)
{
	size_t		zlen;
	uint8_t    *z = zlib_zeros(inflated, &zlen);
	uint8_t    *p = calloc(8 + 25 + 12 + zlen + 12, 1);
	uint8_t    *q = p;
	int			i;

	memcpy(q, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
	q += 16;
	for (i = 0; i < 4; i++)
	{
		q[i] = (uint8_t) (w >> (24 - 8 * i));
		q[4 + i] = (uint8_t) (h >> (24 - 8 * i));
	}
	q[8] = (uint8_t) depth;
	q[9] = (uint8_t) colour;
	q[12] = (uint8_t) interlace;
	q += 13 + 4;
	for (i = 0; i < 4; i++)
		q[i] = (uint8_t) (zlen >> (24 - 8 * i));
	memcpy(q + 4, "IDAT", 4);
	memcpy(q + 8, z, zlen);
	q += 8 + zlen + 4;
	memcpy(q, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
	q += 12;
	free(z);
	*len = (size_t) (q - p);
	return p;
}

/*
 * peak_rss_mb
 *		The process's peak resident set so far, in MB.
 */
static long
peak_rss_mb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024;
}

/*
 * test_inflate_bombs
 *		PNG image data that inflates to far more than the header's width and
 *		height need is refused with CP_ERR_LIMIT, without the memory: a 1x1
 *		PNG of ~400 kB inflating to 64 MB (2 GB works the same, it only
 *		takes longer to build), an interlaced and a 16-bit gray one.  The
 *		same images with exactly the data their header needs decode.  Runs
 *		first, so that the peak RSS measures the bombs.
 */
static void
test_inflate_bombs(void)
{
	static const struct
	{
		const char *what;
		uint32_t	w,
					h;
		int			depth,
					colour,
					interlace;
		size_t		need;		/* inflated bytes the header needs */
	}			cases[] = {
		{"1x1 RGB", 1, 1, 8, 2, 0, 1 + 3},
		{"100x60 RGB interlaced", 100, 60, 8, 2, 1, 0},
		{"37x23 gray 16-bit", 37, 23, 16, 0, 0, 23 * (1 + 37 * 2)},
		{"33x17 gray 1-bit interlaced", 33, 17, 1, 0, 1, 0},
	};
	long		rss0 = peak_rss_mb();
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		size_t		need = cases[i].need,
					len;
		uint8_t    *png;
		char		what[128];

		if (need == 0)
		{
			/* Adam7: seven passes, each row a filter byte + packed samples */
			static const int a7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
			{0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
			int			ch = cases[i].colour == 2 ? 3 : 1,
						p;

			for (p = 0; p < 7; p++)
			{
				size_t		pw = (cases[i].w + a7[p][2] - 1 - a7[p][0]) / a7[p][2],
							ph = (cases[i].h + a7[p][3] - 1 - a7[p][1]) / a7[p][3];

				if (pw > 0 && ph > 0)
					need += ph * (1 + (pw * ch * cases[i].depth + 7) / 8);
			}
		}
		png = png_inflating_to(cases[i].w, cases[i].h, cases[i].depth, cases[i].colour,
							   cases[i].interlace, need, &len);
		snprintf(what, sizeof(what), "%s PNG, data inflating to the %zu bytes it needs",
				 cases[i].what, need);
		expect_status(what, png, len, 0, CP_OK);
		free(png);

		png = png_inflating_to(cases[i].w, cases[i].h, cases[i].depth, cases[i].colour,
							   cases[i].interlace, (size_t) 64 << 20, &len);
		snprintf(what, sizeof(what), "%s PNG of %zu bytes inflating to 64 MB", cases[i].what, len);
		expect_status(what, png, len, 0, CP_ERR_LIMIT);
		free(png);
	}
	CHECK(peak_rss_mb() - rss0 < 24, "decoding the bombs raised the peak RSS from %ld to %ld MB",
		  rss0, peak_rss_mb());
}

/*
 * test_errors
 *		Empty, truncated, corrupt, unsupported and oversized inputs give the
 *		right status, a message, and never crash.
 */
static void
test_errors(void)
{
	static const char *const samples[] = {"rgb.png", "palette.png", "gray16.png", "baseline420.jpg",
		"progressive.jpg", "cmyk.jpg", "gray.jpg", "rgb.bmp", "palette.bmp", "pillow_trns.gif", "subframe.gif",
	"rgb_rle.tga", "rgb.tga"};
	uint8_t		buf[256];
	uint8_t    *bytes;
	size_t		len,
				i;
	CpImageRGB	img;
	CpError		err;
	CpStatus	st;
	CpImageConfig cfg;
	float		out[3 * 4 * 4];
	static const uint8_t junk[] = "this is not an image at all, just some text bytes";

	expect_status("empty", (const uint8_t *) "", 0, 0, CP_ERR_FORMAT);
	expect_status("NULL with length", NULL, 10, 0, CP_ERR_INVALID_ARG);
	expect_status("text", junk, sizeof(junk) - 1, 0, CP_ERR_UNSUPPORTED);
	expect_status("PDF", (const uint8_t *) "%PDF-1.7\n%\xe2\xe3", 14, 0, CP_ERR_UNSUPPORTED);
	expect_status("WebP", (const uint8_t *) "RIFF\x10\0\0\0WEBPVP8 ", 16, 0, CP_ERR_UNSUPPORTED);
	expect_status("TIFF", (const uint8_t *) "II*\0\x08\0\0\0", 8, 0, CP_ERR_UNSUPPORTED);
	expect_status("PNG signature only", (const uint8_t *) "\x89PNG\r\n\x1a\n", 8, 0, CP_ERR_FORMAT);
	expect_status("JPEG SOI only", (const uint8_t *) "\xff\xd8\xff", 3, 0, CP_ERR_FORMAT);
	expect_status("JPEG SOI + EOI", (const uint8_t *) "\xff\xd8\xff\xd9", 4, 0, CP_ERR_FORMAT);
	expect_status("GIF header only", (const uint8_t *) "GIF89a\x01\0\x01\0\0\0\0;", 14, 0, CP_ERR_FORMAT);
	expect_status("BMP magic only", (const uint8_t *) "BM", 2, 0, CP_ERR_FORMAT);

	/* BMP run-length data is not decoded (so cannot inflate): refused */
	{
		uint8_t		bmp[70];

		memset(bmp, 0, sizeof(bmp));
		memcpy(bmp, "BM", 2);
		bmp[2] = sizeof(bmp);
		bmp[10] = 54;			/* pixel data offset */
		bmp[14] = 40;			/* BITMAPINFOHEADER */
		bmp[18] = 4;			/* 4 x 4 */
		bmp[22] = 4;
		bmp[26] = 1;			/* planes */
		bmp[28] = 8;			/* 8 bits per pixel */
		bmp[30] = 1;			/* BI_RLE8 */
		memcpy(bmp + 54, "\xff\x00\xff\x00\xff\x00\xff\x00\x00\x01", 10);
		expect_status("BMP with RLE8 data", bmp, sizeof(bmp), 0, CP_ERR_UNSUPPORTED);
	}

	/* decompression bombs: rejected from the header, nothing allocated */
	len = png_with_size(buf, 100000, 100000);
	expect_status("PNG 100000x100000, limit 89478485", buf, len, 89478485, CP_ERR_LIMIT);
	expect_status("PNG 100000x100000, no limit", buf, len, 0, CP_ERR_LIMIT);
	len = png_with_size(buf, 0, 10);
	expect_status("PNG 0x10", buf, len, 0, CP_ERR_FORMAT);
	len = png_with_size(buf, 1000, 1000);
	expect_status("PNG 1000x1000 with no data", buf, len, 0, CP_ERR_FORMAT);

	/* the pixel limit is inclusive */
	bytes = read_file(FIX "decode/rgb.png", &len);
	CHECK(bytes != NULL, "rgb.png missing");
	if (bytes != NULL)
	{
		expect_status("37x23 PNG, limit 850", bytes, len, 850, CP_ERR_LIMIT);
		expect_status("37x23 PNG, limit 851", bytes, len, 851, CP_OK);
		free(bytes);
	}
	/* Pillow opens a PNG that stops after complete image data (no IEND,
	 * even a cut CRC): so do we, with the same pixels */
	bytes = read_file(FIX "decode/palette_short.png", &len);
	CHECK(bytes != NULL, "palette_short.png missing");
	if (bytes != NULL)
	{
		CpImageRGB	full,
					cut;
		size_t		k;

		CHECK(cp_image_decode(bytes, len, 0, &full, &err) == CP_OK, "palette_short.png: %s", err.msg);
		for (k = 12; k <= 16 && full.pixels != NULL; k += 4)
		{
			st = cp_image_decode(bytes, len - k, 0, &cut, &err);
			CHECK(st == CP_OK && memcmp(cut.pixels, full.pixels, (size_t) full.width * full.height * 3) == 0,
				  "PNG without its last %zu bytes: %s", k, st == CP_OK ? "pixels differ" : err.msg);
			cp_image_free(&cut);
		}
		cp_image_free(&full);
		free(bytes);
	}
	/* an empty IDAT chunk before IEND changes nothing */
	bytes = read_file(FIX "decode/rgb.png", &len);
	if (bytes != NULL && len > 12)
	{
		CpImageRGB	full,
					alt;
		uint8_t    *b2 = malloc(len + 12);

		memcpy(b2, bytes, len - 12);
		memcpy(b2 + len - 12, "\0\0\0\0IDAT\0\0\0\0", 12);
		memcpy(b2 + len, bytes + len - 12, 12);
		CHECK(cp_image_decode(bytes, len, 0, &full, &err) == CP_OK, "rgb.png: %s", err.msg);
		st = cp_image_decode(b2, len + 12, 0, &alt, &err);
		CHECK(st == CP_OK && full.pixels != NULL &&
			  memcmp(alt.pixels, full.pixels, (size_t) full.width * full.height * 3) == 0,
			  "PNG with an empty IDAT: %s", st == CP_OK ? "pixels differ" : err.msg);
		cp_image_free(&alt);
		cp_image_free(&full);
		free(b2);
	}
	free(bytes);
	bytes = read_file(FIX "decode/progressive.jpg", &len);
	CHECK(bytes != NULL, "progressive.jpg missing");
	if (bytes != NULL)
	{
		expect_status("37x23 JPEG, limit 850", bytes, len, 850, CP_ERR_LIMIT);
		expect_status("37x23 JPEG, limit 851", bytes, len, 851, CP_OK);
		free(bytes);
	}
	bytes = read_file(FIX "decode/rgb.png", &len);
	if (bytes != NULL)
	{
		/* corrupt zlib stream: replace the IDAT payload with 0xff bytes */
		for (i = 8; i + 8 < len; i++)
			if (memcmp(bytes + i, "IDAT", 4) == 0)
			{
				memset(bytes + i + 4, 0xff, len - i - 4 > 40 ? 40 : len - i - 4);
				break;
			}
		expect_status("PNG with corrupt IDAT", bytes, len, 0, CP_ERR_FORMAT);
		free(bytes);
	}

	/* truncations and byte flips of every kind: clean status, no crash */
	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
	{
		char		path[300];
		size_t		cut;
		int			bad = 0;

		snprintf(path, sizeof(path), FIX "decode/%s", samples[i]);
		bytes = read_file(path, &len);
		CHECK(bytes != NULL, "%s missing", path);
		if (bytes == NULL)
			continue;
		for (cut = 0; cut < len; cut += (cut < 64 ? 1 : 7))
		{
			err.msg[0] = '\0';
			st = cp_image_decode(bytes, cut, 0, &img, &err);
			if (st != CP_OK && (err.msg[0] == '\0' || img.pixels != NULL))
				bad++;
			if (st != CP_OK && st != CP_ERR_FORMAT && st != CP_ERR_UNSUPPORTED)
				bad++;
			cp_image_free(&img);
		}
		/* half a file is refused, as Pillow refuses truncated files */
		st = cp_image_decode(bytes, len / 2, 0, &img, &err);
		CHECK(st == CP_ERR_FORMAT, "%s cut in half: %s (%s)", samples[i], cp_status_name(st), err.msg);
		cp_image_free(&img);
		for (cut = 0; cut < len; cut++)
		{
			uint8_t		save = bytes[cut];

			bytes[cut] ^= (uint8_t) (0x5a + cut);
			st = cp_image_decode(bytes, len, 1 << 20, &img, &err);
			if (st != CP_OK && (err.msg[0] == '\0' || img.pixels != NULL))
				bad++;
			cp_image_free(&img);
			bytes[cut] = save;
		}
		CHECK(bad == 0, "%s: %d truncations/flips without a clean status", samples[i], bad);
		free(bytes);
	}

	/* inputs found by fuzz_image (see test/fuzz/seeds/fuzz_image/regress_*) */
	{
		static const char *const regress[] = {"regress_jpeg_dht_257.jpg",
		"regress_jpeg_fill_before_soi.bin", "regress_jpeg_undefined_huffman.bin",
		"regress_png_empty_idat.png", "regress_png_cut_empty_idat.png", "regress_png16_empty_idat.png"};

		for (i = 0; i < sizeof(regress) / sizeof(regress[0]); i++)
		{
			char		path[300];

			snprintf(path, sizeof(path), "../fuzz/seeds/fuzz_image/%s", regress[i]);
			bytes = read_file(path, &len);
			CHECK(bytes != NULL, "%s missing", path);
			if (bytes == NULL)
				continue;
			err.msg[0] = '\0';
			st = cp_image_decode(bytes, len, 1 << 20, &img, &err);
			CHECK(st == CP_OK ? img.pixels != NULL : (err.msg[0] != '\0' && img.pixels == NULL),
				  "%s: %s", regress[i], cp_status_name(st));
			cp_image_free(&img);
			free(bytes);
		}
	}

	/* preprocess: bad configurations */
	memset(&cfg, 0, sizeof(cfg));
	cfg.width = cfg.height = 4;
	cfg.do_resize = true;
	cfg.resample = 2;
	bytes = read_file(FIX "decode/rgb.png", &len);
	if (bytes != NULL)
	{
		st = cp_image_preprocess(bytes, len, &cfg, 0, out, &err);
		CHECK(st == CP_ERR_UNSUPPORTED, "resample 2: %s", cp_status_name(st));
		cfg.resample = 3;
		cfg.do_resize = false;
		st = cp_image_preprocess(bytes, len, &cfg, 0, out, &err);
		CHECK(st == CP_ERR_SHAPE, "no resize, wrong size: %s", cp_status_name(st));
		cfg.do_resize = true;
		st = cp_image_preprocess(bytes, len, &cfg, 100, out, &err);
		CHECK(st == CP_ERR_LIMIT, "preprocess over the pixel limit: %s", cp_status_name(st));
		st = cp_image_preprocess(bytes, len, &cfg, 0, out, &err);
		CHECK(st == CP_OK, "preprocess to 4x4: %s", err.msg);
		free(bytes);
	}
	printf("errors: done\n");
}

/*
 * decode_path
 *		Decode a file into img; false (and a failed check) on any error.
 */
static bool
decode_path(const char *path, CpImageRGB *img)
{
	size_t		len;
	uint8_t    *bytes = read_file(path, &len);
	CpError		err;
	CpStatus	st;

	CHECK(bytes != NULL, "cannot read %s", path);
	if (bytes == NULL)
		return false;
	st = cp_image_decode(bytes, len, 0, img, &err);
	free(bytes);
	CHECK(st == CP_OK, "decode %s: %s", path, err.msg);
	return st == CP_OK;
}

/*
 * image_file
 *		The file of images[] entry `name` in the fixtures manifest.
 */
static const char *
image_file(json_t *manifest, const char *name)
{
	json_t	   *images = json_object_get(manifest, "images");
	size_t		i;
	json_t	   *e;

	json_array_foreach(images, i, e)
	{
		if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
			return json_string_value(json_object_get(e, "file"));
	}
	return NULL;
}

/*
 * test_fixture_goldens
 *		The shared fixtures (test/fixtures/generate.py, transformers'
 *		Pillow-backend processor): decoded RGB, 448x448 resize and the
 *		processor's pixel_values, all identical.
 */
static void
test_fixture_goldens(void)
{
	json_error_t jerr;
	json_t	   *m = json_load_file("../fixtures/manifest.json", 0, &jerr);
	json_t	   *arr,
			   *e;
	size_t		i;
	int			ndec = 0,
				nres = 0,
				npix = 0;
	char		path[512];

	CHECK(m != NULL, "cannot load ../fixtures/manifest.json: %s", jerr.text);
	if (m == NULL)
		return;

	/* decoding: Image.open(f).convert("RGB") */
	arr = json_object_get(m, "images");
	json_array_foreach(arr, i, e)
	{
		const char *file = json_string_value(json_object_get(e, "file"));
		const char *dec = json_string_value(json_object_get(e, "decoded_rgb"));
		CpImageRGB	a,
					b;

		if (file == NULL || dec == NULL || strcmp(file, dec) == 0)
			continue;
		snprintf(path, sizeof(path), "../fixtures/%s", file);
		if (!decode_path(path, &a))
			continue;
		snprintf(path, sizeof(path), "../fixtures/%s", dec);
		if (decode_path(path, &b))
		{
			CHECK(a.width == b.width && a.height == b.height &&
				  memcmp(a.pixels, b.pixels, (size_t) a.width * a.height * 3) == 0,
				  "%s decodes differently from Pillow's convert(\"RGB\")", file);
			cp_image_free(&b);
		}
		cp_image_free(&a);
		ndec++;
	}

	/* resize to 448x448 */
	arr = json_object_get(m, "resized448");
	arr = json_object_get(arr, "entries");
	json_array_foreach(arr, i, e)
	{
		const char *file = image_file(m, json_string_value(json_object_get(e, "image")));
		CpImageRGB	a,
					r,
					g;
		CpError		err;

		CHECK(file != NULL, "resized448 entry %zu: unknown image", i);
		if (file == NULL)
			continue;
		snprintf(path, sizeof(path), "../fixtures/%s", file);
		if (!decode_path(path, &a))
			continue;
		CHECK(cp_image_resize_bicubic(&a, 448, 448, &r, &err) == CP_OK, "resize %s: %s", file, err.msg);
		snprintf(path, sizeof(path), "../fixtures/%s",
				 json_string_value(json_object_get(e, "file")));
		if (r.pixels != NULL && decode_path(path, &g))
		{
			size_t		k,
						nd = 0;

			for (k = 0; k < (size_t) 448 * 448 * 3; k++)
				nd += r.pixels[k] != g.pixels[k];
			CHECK(nd == 0, "%s resized to 448x448: %zu bytes differ from Pillow", file, nd);
			cp_image_free(&g);
		}
		cp_image_free(&r);
		cp_image_free(&a);
		nres++;
	}

	/* processor pixel_values */
	arr = json_object_get(m, "pixel_values");
	{
		CpImageConfig cfg;
		int			c;

		memset(&cfg, 0, sizeof(cfg));
		cfg.width = (int) json_integer_value(json_object_get(arr, "width"));
		cfg.height = (int) json_integer_value(json_object_get(arr, "height"));
		cfg.resample = 3;
		cfg.do_resize = cfg.do_rescale = cfg.do_normalize = cfg.do_convert_rgb = true;
		cfg.rescale_factor = 1.0 / 255.0;
		for (c = 0; c < 3; c++)
		{
			cfg.mean[c] = 0.5f;
			cfg.std[c] = 0.5f;
		}
		arr = json_object_get(arr, "entries");
		json_array_foreach(arr, i, e)
		{
			const char *file = image_file(m, json_string_value(json_object_get(e, "image")));
			size_t		n = (size_t) 3 * cfg.width * cfg.height,
						len,
						wlen,
						k,
						nd = 0;
			uint8_t    *bytes,
					   *want;
			float	   *got;
			CpError		err;
			CpStatus	st;

			if (file == NULL || cfg.width <= 0)
				continue;
			snprintf(path, sizeof(path), "../fixtures/%s", file);
			bytes = read_file(path, &len);
			snprintf(path, sizeof(path), "../fixtures/%s",
					 json_string_value(json_object_get(e, "file")));
			want = read_file(path, &wlen);
			CHECK(bytes != NULL && want != NULL && wlen == n * sizeof(float),
				  "pixel_values golden for %s missing", file);
			if (bytes != NULL && want != NULL && wlen == n * sizeof(float))
			{
				got = malloc(n * sizeof(float));
				st = cp_image_preprocess(bytes, len, &cfg, 0, got, &err);
				CHECK(st == CP_OK, "preprocess %s: %s", file, err.msg);
				if (st == CP_OK)
				{
					for (k = 0; k < n; k++)
					{
						float		w;

						memcpy(&w, want + k * sizeof(float), sizeof(float));
						nd += got[k] != w;
					}
					CHECK(nd == 0, "%s: %zu of %zu pixel values differ from the processor's",
						  file, nd, n);
				}
				free(got);
			}
			free(bytes);
			free(want);
			npix++;
		}
	}
	json_decref(m);
	printf("fixtures: %d decoded, %d resized, %d pixel_values compared with transformers/Pillow\n",
		   ndec, nres, npix);
}

/*
 * main
 */
int
main(void)
{
	test_inflate_bombs();
	test_resize_goldens();
	test_decode_samples();
	test_preprocess_goldens();
	test_fixture_goldens();
	test_errors();
	printf("%d checks, %d failures\n", checks, failures);
	return failures == 0 ? 0 : 1;
}
