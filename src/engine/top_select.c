/*
 * top_select.c
 *	  The k best of n float scores by radix selection (see top_select.h).
 */
#include "top_select.h"

#include <string.h>

/* Order-preserving key of a float: unsigned comparison of keys orders the floats. */
static inline uint32_t
ScoreKey(float f)
{
	uint32_t	bits;

	memcpy(&bits, &f, sizeof(bits));
	if (bits == 0x80000000u)
		bits = 0;				/* -0 ranks as +0 */
	return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

int
cp_top_select(const float *score, int n, int k, int *idx, uint32_t *work)
{
	/* three digits of the key, most significant first: 11, 11 and 10 bits */
	static const int shifts[3] = {21, 10, 0};
	static const int widths[3] = {11, 11, 10};
	uint32_t	prefix = 0;		/* the digits of the k-th best key found so far */
	uint32_t	mask = 0;		/* the bits of the key those digits cover */
	int			need = k;		/* winners still to take among keys == prefix */
	int			pass;
	int			i;
	int			out = 0;

	if (k <= 0 || n <= 0)
		return 0;
	if (k >= n)
	{
		for (i = 0; i < n; i++)
			idx[i] = i;
		return n;
	}

	for (pass = 0; pass < 3; pass++)
	{
		int			nbins = 1 << widths[pass];
		uint32_t	digitMask = (uint32_t) (nbins - 1);
		int			b;

		memset(work, 0, sizeof(uint32_t) * nbins);
		for (i = 0; i < n; i++)
		{
			uint32_t	key = ScoreKey(score[i]);

			if ((key & mask) == prefix)
				work[(key >> shifts[pass]) & digitMask]++;
		}

		/*
		 * The bin holding the need-th best of the keys that share the
		 * prefix: the bins above it are all winners.
		 */
		for (b = nbins - 1; b > 0 && work[b] < (uint32_t) need; b--)
			need -= (int) work[b];
		prefix |= (uint32_t) b << shifts[pass];
		mask |= digitMask << shifts[pass];
		/* every key of that bin wins: no need to tell them apart */
		if (work[b] == (uint32_t) need)
			break;
	}

	/*
	 * Keys above the prefix win; of those equal to it (equal scores once
	 * the prefix is the whole key) the first need in index order.
	 */
	for (i = 0; i < n; i++)
	{
		uint32_t	key = ScoreKey(score[i]) & mask;

		if (key > prefix || (key == prefix && need-- > 0))
			idx[out++] = i;
	}
	return out;
}
