/*
 * pool.h
 *	  Token pooling glue (pool.c) and the unpooled image encoders it wraps
 *	  (encode.c).
 */
#ifndef COLPALI_POOL_H
#define COLPALI_POOL_H

#include "postgres.h"

#include "fmgr.h"
#include "multivector.h"

/* colpali.pool_factor: the pooling of the one-argument image encoders. */
extern int	colpali_pool_factor;

extern void CheckPoolFactor(int32 factor);
extern MultiVector *PoolMultiVector(MultiVector *mv, int32 factor);
extern Datum PoolMultiVectorArray(Datum array, int32 factor);

/* encode.c: colpali_image / colpali_images before any pooling (argument 0 only). */
extern Datum colpali_image_unpooled(FunctionCallInfo fcinfo);
extern Datum colpali_images_unpooled(FunctionCallInfo fcinfo);

#endif							/* COLPALI_POOL_H */
