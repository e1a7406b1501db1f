/*
 * stats.h
 *	  Encoder statistics (stats.c): the in-process counters of this backend.
 *	  The worker's counters live in shared memory (worker.h).
 */
#ifndef COLPALI_STATS_H
#define COLPALI_STATS_H

#include "postgres.h"

extern void LocalStatsRecord(int nitems, double elapsed_ms);

#endif							/* COLPALI_STATS_H */
