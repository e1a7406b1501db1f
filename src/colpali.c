/*
 * colpali.c
 *	  Module entry point: PG_MODULE_MAGIC and _PG_init, which hands over to
 *	  the initialisation function of each concern.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "colpali.h"

#if PG_VERSION_NUM >= 180000
PG_MODULE_MAGIC_EXT(.name = "colpali",.version = COLPALI_VERSION);
#else
PG_MODULE_MAGIC;
#endif

void		_PG_init(void);

/*
 * _PG_init
 *		Define settings of every concern, then reserve the "colpali." prefix
 *		so that misspelt settings are reported.
 */
void
_PG_init(void)
{
	EncoderInit();
	WorkerInit();
	ProgressInit();
	MvivfInit();
	PoolInit();
	MaxSimStreamInit();
	MarkGUCPrefixReserved("colpali");
	MarkGUCPrefixReserved("mvivf");
}
