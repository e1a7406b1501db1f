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
#include <stdlib.h>

#include "image.h"

static _Thread_local int cp_stbi_assert_hits = 0;

/* Formats: those of the spec; HDR/PSD/PIC/PNM are rejected before stb. */
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_TGA
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#define STBI_ASSERT(x) ((x) ? (void) 0 : (void) cp_stbi_assert_hits++)
#define STBI_MALLOC(sz) malloc(sz)
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
