/*
 * worker_client.h
 *	  The client side of the background worker protocol (worker_client.c):
 *	  how a backend hands an encoding request to the worker and waits.
 */
#ifndef COLPALI_WORKER_CLIENT_H
#define COLPALI_WORKER_CLIENT_H

#include "postgres.h"

#include "encode.h"
#include "multivector.h"

extern bool WorkerAvailable(void);
extern void WorkerEncode(EncodeKind kind, int n, const uint8 *const *inputs,
						 const size_t *lengths, MultiVector **out);
extern void WorkerModelInfo(EncoderModelInfo *info);

#endif							/* COLPALI_WORKER_CLIENT_H */
