/*
 * stb_image_impl.c
 *	  The one translation unit that compiles stb_image (Debian libstb-dev),
 *	  restricted to the formats the engine accepts.
 *
 * stb_image is third-party code: its warnings are silenced here only, and its
 * assert() calls are turned into a per-thread counter so that no input can
 * abort the process; image_decode.c treats a non-zero count as a corrupt image.
 * image_decode.c includes the same header for the declarations, with the same
 * STBI_NO_STDIO setting.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

static _Thread_local int cp_stbi_assert_hits = 0;

/*
 * Decompression-bomb guard (see cp_stbi_grow).  inflate_need is the number
 * of bytes a PNG's image data inflates to by its header (0 while loading
 * anything else); idata is the buffer of compressed IDAT bytes stb_image is
 * collecting; inflate_refused records that the guard stopped an inflation.
 */
static _Thread_local size_t cp_stbi_inflate_need = 0;
static _Thread_local void *cp_stbi_idata = NULL;
static _Thread_local bool cp_stbi_inflate_refused = false;

static void *cp_stbi_grow(void *p, size_t oldsz, size_t newsz);

/* Formats: JPEG goes through libjpeg (image_decode.c); HDR/PSD/PIC/PNM are refused. */
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_TGA
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#define STBI_ASSERT(x) ((x) ? (void) 0 : (void) cp_stbi_assert_hits++)
/* zeroed: stb_image 2.27 reads some fields of corrupt files uninitialised */
#define STBI_MALLOC(sz) calloc(1, sz)
#define STBI_REALLOC(p, newsz) realloc(p, newsz)
#define STBI_REALLOC_SIZED(p, oldsz, newsz) cp_stbi_grow(p, oldsz, newsz)
#define STBI_FREE(p) free(p)
#define STB_IMAGE_IMPLEMENTATION

#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Weverything"
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wshift-negative-value"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <stb/stb_image.h>

#if defined(__clang__)
#pragma clang diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/*
 * cp_stbi_grow
 *		stb_image's STBI_REALLOC_SIZED.  While a PNG loads, stb_image grows
 *		two buffers with it: the compressed IDAT bytes (first grown from
 *		NULL, bounded by the file's size) and the inflate output, which
 *		starts at the size the header implies and doubles on demand, without
 *		limit: a few kilobytes of zlib data can inflate to gigabytes.  Once
 *		the output buffer already holds all the bytes the header needs,
 *		more data can only be garbage the decoder would ignore: refuse to
 *		grow it, so that memory stays within twice the header's need.
 *		(The only other caller, the animated-GIF loader, is not used.)
 */
static void *
cp_stbi_grow(void *p, size_t oldsz, size_t newsz)
{
	bool		is_idata = (p == NULL || p == cp_stbi_idata);
	void	   *q;

	if (cp_stbi_inflate_need > 0 && !is_idata && oldsz >= cp_stbi_inflate_need)
	{
		cp_stbi_inflate_refused = true;
		return NULL;
	}
	q = realloc(p, newsz);
	if (q != NULL && is_idata)
		cp_stbi_idata = q;
	return q;
}

/*
 * cp_stbi_take_assert_hits
 *		Return how many stb_image assertions failed on this thread since the
 *		last call, and reset the count.
 */
int
cp_stbi_take_assert_hits(void)
{
	int			n = cp_stbi_assert_hits;

	cp_stbi_assert_hits = 0;
	return n;
}

/*
 * cp_stbi_info
 *		Header of one given kind only (stbi_info_from_memory tries every
 *		format and keeps the last one's failure reason, not ours).
 */
int
cp_stbi_info(CpImageKind kind, const uint8_t *bytes, int len, int *w, int *h,
			 int *comp)
{
	stbi__context s;

	stbi__start_mem(&s, bytes, len);
	switch (kind)
	{
		case CP_IMAGE_PNG:
			return stbi__png_info(&s, w, h, comp);
		case CP_IMAGE_GIF:
			return stbi__gif_info(&s, w, h, comp);
		case CP_IMAGE_BMP:
			return stbi__bmp_info(&s, w, h, comp);
		case CP_IMAGE_TGA:
			return stbi__tga_info(&s, w, h, comp);
		default:
			break;
	}
	return stbi__err("unknown kind", "Unknown image kind");
}

/*
 * cp_stbi_load
 *		Decode with the loader of one given kind only (stbi_load_from_memory
 *		probes every format: a file that image_decode.c checked as one kind must
 *		not be decoded as another).  req_comp as stb_image's.  want16 (PNG
 *		only) returns the 16-bit samples stb_image gives for a 16-bit PNG;
 *		otherwise 16-bit samples are reduced to their high byte as
 *		stbi_load does.  inflate_need (PNG only, 0 = no bound) is the
 *		number of bytes the image data must inflate to by the header: data
 *		that inflates to more than the decoder may use is refused with
 *		CP_STBI_INFLATE_REFUSED as the failure reason.  NULL +
 *		stbi_failure_reason() on error.
 */
void *
cp_stbi_load(CpImageKind kind, const uint8_t *bytes, int len, int *w, int *h,
			 int req_comp, int want16, size_t inflate_need)
{
	stbi__context s;
	stbi__result_info ri;
	void	   *result = NULL;
	int			comp;

	stbi__start_mem(&s, bytes, len);
	memset(&ri, 0, sizeof(ri));
	ri.bits_per_channel = 8;
	ri.channel_order = STBI_ORDER_RGB;
	ri.num_channels = 0;
	switch (kind)
	{
		case CP_IMAGE_PNG:
			cp_stbi_inflate_need = inflate_need;
			cp_stbi_idata = NULL;
			cp_stbi_inflate_refused = false;
			result = stbi__png_load(&s, w, h, &comp, req_comp, &ri);
			cp_stbi_inflate_need = 0;
			cp_stbi_idata = NULL;
			if (result == NULL && cp_stbi_inflate_refused)
				return stbi__errpuc("inflate limit", CP_STBI_INFLATE_REFUSED);
			break;
		case CP_IMAGE_GIF:
			result = stbi__gif_load(&s, w, h, &comp, req_comp, &ri);
			break;
		case CP_IMAGE_BMP:
			result = stbi__bmp_load(&s, w, h, &comp, req_comp, &ri);
			break;
		case CP_IMAGE_TGA:
			result = stbi__tga_load(&s, w, h, &comp, req_comp, &ri);
			break;
		default:
			return stbi__errpuc("unknown kind", "Unknown image kind");
	}
	if (result == NULL)
		return NULL;
	if (want16 != (ri.bits_per_channel == 16))
	{
		if (!want16 && ri.bits_per_channel == 16)
			return stbi__convert_16_to_8((stbi__uint16 *) result, *w, *h,
										 req_comp == 0 ? comp : req_comp);
		STBI_FREE(result);
		return stbi__errpuc("bad bits_per_channel", "Unexpected sample depth");
	}
	return result;
}
