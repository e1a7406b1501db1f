/*
 * multivector_parse.h
 *	  PostgreSQL-free parsers for the multivector text and binary forms.
 *
 * multivector.c calls these and turns their status codes into ereport()s
 * with the SQLSTATEs and messages documented in README.md; the libFuzzer
 * targets test/fuzz/fuzz_multivector_text.c and fuzz_multivector_recv.c link
 * them directly.  Nothing here allocates memory, reports errors or includes
 * a PostgreSQL header.
 */
#ifndef MULTIVECTOR_PARSE_H
#define MULTIVECTOR_PARSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Limits of the type (documented in README.md, "Type").  MV_MAX_ELEMENTS
 * bounds N * D so that the longest text form of any value (16 N D + 2 N + 1
 * bytes, at most 268,468,225) stays far below PostgreSQL's 1 GB allocation
 * limit: every value can be dumped as text (pg_dump, COPY).
 */
#define MV_MAX_DIM			4096	/* D */
#define MV_MAX_VECTORS		16384	/* N */
#define MV_MAX_ELEMENTS		16777216	/* N * D, 2^24 (64 MiB of float32) */

#define MV_FORMAT_FLOAT32	0
#define MV_FORMAT_HALF		1	/* IEEE binary16: halfmultivector */
#define MV_FORMAT_BINARY	2	/* sign bits, packed: bitmultivector */

/* bytes of one bitmultivector row: D bits, MSB first, zero padding bits */
#define MV_BIT_ROW_BYTES(dim)	(((size_t) (dim) + 7) / 8)

/* the binary (network) form's header: int16, int8, int8, int32, int32 */
#define MV_BINARY_HEADER_SIZE	12

typedef enum MvParseStatus
{
	MVP_OK = 0,
	/* malformed text (22P02); each has its own detail line */
	MVP_SYNTAX_START,			/* no "[" at the start */
	MVP_SYNTAX_NO_ROWS,			/* "[]" */
	MVP_SYNTAX_ROW_START,		/* a row does not start with "[" */
	MVP_SYNTAX_EMPTY_ROW,		/* "[]" as a row */
	MVP_SYNTAX_NUMBER,			/* expected a number */
	MVP_SYNTAX_ROW_LONGER,		/* row `row` longer than row 1 (`dim`) */
	MVP_SYNTAX_AFTER_NUMBER,	/* expected "," or "]" after a number */
	MVP_SYNTAX_ROW_SHORTER,		/* row `row` shorter than row 1 (`dim`) */
	MVP_SYNTAX_AFTER_ROW,		/* expected "," or "]" after a row */
	MVP_SYNTAX_JUNK,			/* junk after the closing bracket */
	/* elements */
	MVP_OUT_OF_RANGE,			/* 22003: text `token_start`, `token_len` */
	MVP_NAN,					/* 22023 */
	MVP_INFINITE,				/* 22023 */
	/* limits (54000) */
	MVP_TOO_MANY_DIMS,
	MVP_TOO_MANY_VECTORS,
	MVP_TOO_MANY_ELEMENTS,		/* `nvec` x `dim` (binary) */
	/* malformed binary (22P03) */
	MVP_BIN_SHORT_HEADER,		/* fewer than 12 bytes (`nbytes`) */
	MVP_BIN_FORMAT,				/* element format `format` is not float32 */
	MVP_BIN_RESERVED,			/* flags or reserved field not zero */
	MVP_BIN_NO_DIM,				/* D < 1 */
	MVP_BIN_NO_VECTOR,			/* N < 1 */
	MVP_BIN_LENGTH,				/* `nbytes` of data, not 4 N D */
	/* compact formats */
	MVP_HALF_OVERFLOW,			/* 22003: a half element >= 65520 in magnitude */
	MVP_SYNTAX_BITS,			/* 22P02: a bit row must be a run of 0 and 1 */
	MVP_BIN_PADDING,			/* 22P03: padding bits of row `row` not zero */
	/* the caller's buffer is too small (a bug in the caller) */
	MVP_BUFFER_TOO_SMALL
} MvParseStatus;

/* What went wrong, and where: the fields named by the status are set. */
typedef struct MvParseError
{
	MvParseStatus status;
	int			row;			/* 1-based row (ROW_LONGER, ROW_SHORTER) */
	int			dim;			/* D (row 1's length, or the header's) */
	int32_t		nvec;			/* N from a binary header */
	int			format;			/* element format from a binary header */
	size_t		nbytes;			/* bytes available (BIN_SHORT_HEADER, BIN_LENGTH) */
	size_t		token_start;	/* OUT_OF_RANGE: the number's offset ... */
	size_t		token_len;		/* ... and length in the input */
} MvParseError;

/*
 * mv_text_max_elements
 *		An upper bound on the number of elements of a text of `len` bytes (each
 *		element takes at least a digit and a "," or "]"), capped at
 *		MV_MAX_ELEMENTS: a buffer of this many floats is always enough for
 *		mv_parse_text.
 */
extern size_t mv_text_max_elements(size_t len);

/*
 * mv_parse_text
 *		Parse the NUL-terminated text form '[[x,...],...]' into `out` (room for
 *		`cap` floats), row-major; set *nvec and *dim.  Limits are checked while
 *		parsing, in the order the input is read, so a huge input fails early.
 *		Returns MVP_OK or the first error (details in *err).
 */
extern MvParseStatus mv_parse_text(const char *lit, float *out, size_t cap,
								   int *nvec, int *dim, MvParseError *err);

/*
 * mv_parse_binary_header
 *		Read and check the 12-byte big-endian header at the start of `data`
 *		(`len` bytes available): format, flags, reserved, D and N at least 1,
 *		the limits.  Sets *nvec and *dim.
 */
extern MvParseStatus mv_parse_binary_header(const uint8_t *data, size_t len,
											int *nvec, int *dim,
											MvParseError *err);

/*
 * mv_parse_binary_data
 *		Check that the `len` bytes after the header are exactly nvec x dim
 *		big-endian float4s, and convert them into `out` (nvec * dim floats),
 *		rejecting NaN and infinities.  The header must have passed
 *		mv_parse_binary_header.
 */
extern MvParseStatus mv_parse_binary_data(const uint8_t *data, size_t len,
										  int nvec, int dim, float *out,
										  MvParseError *err);

/*
 * mv_parse_text_half
 *		As mv_parse_text, for halfmultivector: each number is read as a double
 *		and rounded once to the nearest half (ties to even); a finite number
 *		that rounds beyond the half range is MVP_HALF_OVERFLOW (token set),
 *		one below the smallest subnormal becomes +-0.
 */
extern MvParseStatus mv_parse_text_half(const char *lit, uint16_t *out,
										size_t cap, int *nvec, int *dim,
										MvParseError *err);

/*
 * mv_bits_text_max_bytes, mv_parse_text_bits
 *		The bitmultivector text form '[0101...,1100...]': rows of '0' and
 *		'1' characters (character k is dimension k), separated by commas,
 *		whitespace allowed around brackets and commas.  Packs row-major,
 *		MV_BIT_ROW_BYTES(D) bytes a row, dimension k in byte k / 8 at bit
 *		7 - k % 8, padding bits zero.  `out` has room for `cap` bytes;
 *		mv_bits_text_max_bytes(strlen(lit)) is always enough.
 */
extern size_t mv_bits_text_max_bytes(size_t len);
extern MvParseStatus mv_parse_text_bits(const char *lit, uint8_t *out,
										size_t cap, int *nvec, int *dim,
										MvParseError *err);

/*
 * mv_parse_binary_header_format
 *		mv_parse_binary_header for an expected element format `want`
 *		(MV_FORMAT_*); any other format is MVP_BIN_FORMAT.
 */
extern MvParseStatus mv_parse_binary_header_format(const uint8_t *data,
												   size_t len, int want,
												   int *nvec, int *dim,
												   MvParseError *err);

/*
 * mv_parse_binary_half, mv_parse_binary_bits
 *		The data after the header: nvec x dim big-endian binary16 (no Inf or
 *		NaN patterns), or nvec rows of MV_BIT_ROW_BYTES(dim) bytes with zero
 *		padding bits.  The length must match exactly.
 */
extern MvParseStatus mv_parse_binary_half(const uint8_t *data, size_t len,
										  int nvec, int dim, uint16_t *out,
										  MvParseError *err);
extern MvParseStatus mv_parse_binary_bits(const uint8_t *data, size_t len,
										  int nvec, int dim, uint8_t *out,
										  MvParseError *err);

#endif							/* MULTIVECTOR_PARSE_H */
