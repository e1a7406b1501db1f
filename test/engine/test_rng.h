/*
 * test_rng.h
 *	  The xorshift64 generator the MaxSim engine tests draw their data from:
 *	  the same sequence on every machine.  Header-only, since each test is a
 *	  program of its own; define TEST_RNG_SEED before including it for
 *	  another sequence.
 */
#ifndef COLPALI_TEST_RNG_H
#define COLPALI_TEST_RNG_H

#include <math.h>
#include <stdint.h>

#ifndef TEST_RNG_SEED
#define TEST_RNG_SEED 88172645463325252ULL
#endif

static uint64_t test_rng_state = TEST_RNG_SEED;

/* The next 64 random bits. */
static inline uint64_t
Next(void)
{
	test_rng_state ^= test_rng_state << 13;
	test_rng_state ^= test_rng_state >> 7;
	test_rng_state ^= test_rng_state << 17;
	return test_rng_state;
}

/* Uniform in [0, 1), from the top 53 bits of the next draw. */
static inline double
Uniform(void)
{
	return (Next() >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box-Muller, one of the pair), from two uniform draws. */
static inline double
Gauss(void)
{
	double		u = Uniform() + 1e-300;

	return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * Uniform());
}

#endif							/* COLPALI_TEST_RNG_H */
