/*
 * colpali.h
 *	  Declarations shared by the PostgreSQL glue (no engine internals here).
 */
#ifndef COLPALI_H
#define COLPALI_H

#include "postgres.h"

/* Module initialisation, one per concern; called from _PG_init in colpali.c. */
extern void MvivfInit(void);		/* src/index: reloptions and GUCs */
extern void EncoderInit(void);		/* src/encode*.c: model GUCs */
extern void WorkerInit(void);		/* src/worker.c: background worker, shmem */
extern void PoolInit(void);			/* src/pool.c: colpali.pool_factor */
extern void MaxSimStreamInit(void);	/* src/maxsim_stream.c: colpali.maxsim_streaming */
extern void ProgressInit(void);		/* src/progress.c: progress table in shmem */

#endif							/* COLPALI_H */
