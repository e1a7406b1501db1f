/*
 * toast_stream.h
 *	  Reading an out-of-line TOAST value chunk by chunk, in order
 *	  (src/toast_stream.c): the TOAST heap is walked where the chunks lie as
 *	  a value written in one go puts them, the TOAST index is asked
 *	  elsewhere; the checks and ERRORs are those of detoasting.
 */
#ifndef TOAST_STREAM_H
#define TOAST_STREAM_H

#include "postgres.h"

/* Takes the next len bytes of the value; false stops the read. */
typedef bool (*ToastFeed) (void *arg, const char *data, Size len);

/* colpali.maxsim_toast_walk: off asks the TOAST index for every chunk. */
extern bool toast_stream_walk;

/*
 * ToastStreamValue
 *		Feed the bytes of the out-of-line, uncompressed value `tp` to
 *		feed(arg, ...) in order.  Returns 1 when every byte was fed, 0 when
 *		the feed stopped the read, -1 (nothing fed) when the TOAST table is
 *		not heap.  A missing or malformed chunk is an ERROR (data_corrupted).
 */
extern int	ToastStreamValue(const struct varatt_external *tp, ToastFeed feed,
							 void *arg);

#endif							/* TOAST_STREAM_H */
