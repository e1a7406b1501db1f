/*
 * multivector_from_engine.c
 *	  Turn an embedding computed by the engine (malloc'd floats, see
 *	  colpali_engine.h) into a palloc'd multivector.  Used by the in-process
 *	  path and by the worker's client, which reads the floats from the
 *	  worker's result segment.
 */
#include "postgres.h"

#include "multivector_from_engine.h"

/*
 * EmbeddingToMultiVector
 *		Copy an engine embedding into a palloc'd multivector, checking its
 *		shape against the type's limits.
 */
MultiVector *
EmbeddingToMultiVector(const CpEmbedding *emb)
{
	MultiVector *mv;

	if (emb->data == NULL || emb->nvec < 1 || emb->dim < 1 || emb->dim > MV_MAX_DIM)
		elog(ERROR, "colpali engine returned an invalid embedding (%d x %d)",
			 emb->nvec, emb->dim);
	if (emb->nvec > MV_MAX_VECTORS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("embedding has %d vectors, more than the multivector limit of %d",
						emb->nvec, MV_MAX_VECTORS),
				 errhint("Shorten the query text.")));

	mv = InitMultiVector(emb->nvec, emb->dim);
	memcpy(mv->x, emb->data, sizeof(float) * (Size) emb->nvec * (Size) emb->dim);
	return mv;
}
