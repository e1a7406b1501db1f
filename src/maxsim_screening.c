/*
 * maxsim_screening.c
 *	  Screened exact MaxSim in the backend: the colpali.maxsim_screening
 *	  setting, the prepared screen of the current query (kept across the rows
 *	  of a scan), and the screened in-memory kernels.
 *
 * The screen (src/engine/maxsim_screen.h) runs a cheap bf16 pass (on AMX
 * tiles, else with AVX512_BF16 dot products) with a rigorous error bound
 * and sends only the document rows that can hold a query row's maximum to
 * the exact float32 kernel: the scores have the bits of the unscreened
 * kernels.  Streaming reads of stored values (maxsim_stream.c) screen each
 * batch of rows as it arrives; in-memory documents are screened here, a
 * batch at a time with interrupt checks.  Nothing is screened on CPUs
 * without AVX512_BF16, when the setting is off, for binary documents, or for
 * a query whose row norms are not finite and below 2^60.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "maxsim_compact.h"
#include "maxsim_kernels.h"
#include "maxsim_screen.h"
#include "maxsim_stream.h"
#include "multivector.h"

/*
 * Screen with one bf16 part (0) or high and low parts (1): see
 * bench/RESULTS.md for the rows each keeps and the resulting times.
 */
#define SCREEN_SPLIT 0

bool		maxsim_screening = true;

/* The prepared screen of the last query (backend lifetime). */
static MvsScreen screen;
static bool screen_valid = false;
static int	screen_available = -1;
static void *screen_buf = NULL;
static Size screen_buf_size = 0;
static void *screen_query = NULL;	/* a copy of the query it was made for */
static Size screen_query_size = 0;
static void *screen_stream = NULL;	/* stream scratch of the in-memory kernel */
static Size screen_stream_size = 0;

/*
 * MaxSimScreeningInit
 *		Define colpali.maxsim_screening (from MaxSimStreamInit).
 */
void
MaxSimScreeningInit(void)
{
	DefineCustomBoolVariable("colpali.maxsim_screening",
							 "Screens document rows with a bf16 pass before exact MaxSim.",
							 "On CPUs with AMX-BF16 (on its tiles) or AVX512_BF16, a bf16 pass "
							 "with a rigorous error bound picks the document rows that can hold a query row's maximum, "
							 "and only those go through the exact float32 kernel; the scores "
							 "are bit for bit those of the unscreened kernel.  Off runs the "
							 "exact kernel on every row (tests, benchmarks).",
							 &maxsim_screening,
							 true,
							 PGC_USERSET,
							 GUC_NOT_IN_SAMPLE,
							 NULL, NULL, NULL);
}

/*
 * MaxSimScreenFor
 *		The screen of this query (float32, nquery x dim), ready for a new
 *		document, or NULL when nothing is screened (setting off, no AMX,
 *		query norms outside the limit).  The screen of the previous query is
 *		reused when the query's values are the same, so a scan prepares it
 *		once.
 */
MvsScreen *
MaxSimScreenFor(const float *query, int nquery, int dim)
{
	Size		qbytes = sizeof(float) * (Size) nquery * dim;

	if (!maxsim_screening)
		return NULL;
	if (screen_available < 0)
	{
		screen_available = mvs_available();
		ereport(DEBUG1,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg_internal("MaxSim screening: %s",
								 !screen_available ? "no AVX512_BF16 here, every row goes through the exact kernel" :
								 mvs_uses_amx() ? "rows are screened on AMX-BF16 tiles" :
								 "rows are screened with AVX512_BF16 dot products")));
	}
	if (!screen_available)
		return NULL;
	if (!(screen_valid && screen.nquery == nquery && screen.dim == dim &&
		  screen.split == SCREEN_SPLIT &&
		  memcmp(screen_query, query, qbytes) == 0))
	{
		void	   *buf;

		screen_valid = false;
		buf = MaxSimGrowBuffer(&screen_buf, &screen_buf_size,
							   mvs_scratch_bytes(nquery, dim));
		memcpy(MaxSimGrowBuffer(&screen_query, &screen_query_size, qbytes),
			   query, qbytes);
		mvs_begin(&screen, query, nquery, dim, SCREEN_SPLIT, buf);
		screen_valid = true;
	}
	if (!screen.ok)
		return NULL;
	mvs_doc_begin(&screen);
	return &screen;
}

/*
 * MaxSimScreened
 *		MaxSim of an in-memory float32 (doc) or half (hdoc) document with the
 *		best kernel, screened, a batch of rows at a time with interrupt
 *		checks.  False (nothing computed) when not screening this query.
 */
bool
MaxSimScreened(const float *doc, const uint16 *hdoc, int ndoc,
			   const float *query, int nquery, int dim, double *score)
{
	MvsScreen  *sc = MaxSimScreenFor(query, nquery, dim);
	MvkStream	st;
	int			i0;

	if (sc == NULL)
		return false;
	mvk_stream_begin(&st, mvk_best(), query, nquery, dim,
					 MaxSimGrowBuffer(&screen_stream, &screen_stream_size,
									  sizeof(float) * mvk_stream_scratch_floats(nquery, dim)));
	for (i0 = 0; i0 < ndoc; i0 += sc->batch)
	{
		int			n = Min(sc->batch, ndoc - i0);

		CHECK_FOR_INTERRUPTS();
		if (hdoc)
			mvs_stream_half_rows(sc, &st, hdoc + (Size) i0 * dim, n);
		else
			mvs_stream_rows(sc, &st, doc + (Size) i0 * dim, n);
	}
	*score = mvk_stream_end(&st);
	return true;
}
