/*
 * stb_image_impl.c
 *	  The one translation unit that compiles stb_image (Debian libstb-dev),
 *	  restricted to the formats the engine accepts.
 *
 * stb_image is third-party code: its warnings are silenced here only, and its
 * assert() calls are turned into a per-thread counter so that no input can
 * abort the process; image.c treats a non-zero count as a corrupt image.
 * image.c includes the same header for the declarations, with the same
 * STBI_NO_STDIO setting.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

static _Thread_local int cp_stbi_assert_hits = 0;

/* Formats: JPEG goes through libjpeg (image.c); HDR/PSD/PIC/PNM are refused. */
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
 *		probes every format: a file that image.c checked as one kind must
 *		not be decoded as another).  req_comp as stb_image's.  want16 (PNG
 *		only) returns the 16-bit samples stb_image gives for a 16-bit PNG;
 *		otherwise 16-bit samples are reduced to their high byte as
 *		stbi_load does.  NULL + stbi_failure_reason() on error.
 */
void *
cp_stbi_load(CpImageKind kind, const uint8_t *bytes, int len, int *w, int *h,
			 int req_comp, int want16)
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
			result = stbi__png_load(&s, w, h, &comp, req_comp, &ri);
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
