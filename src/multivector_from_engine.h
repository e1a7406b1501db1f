/*
 * multivector_from_engine.h
 *	  Engine embeddings to multivector values (multivector_from_engine.c).
 */
#ifndef COLPALI_MULTIVECTOR_FROM_ENGINE_H
#define COLPALI_MULTIVECTOR_FROM_ENGINE_H

#include "postgres.h"

#include "colpali_engine.h"
#include "multivector.h"

extern MultiVector *EmbeddingToMultiVector(const CpEmbedding *emb);

#endif							/* COLPALI_MULTIVECTOR_FROM_ENGINE_H */
