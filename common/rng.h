/*
 * common/rng.h — a small, seeded, reproducible random number generator.
 *
 * xoshiro256** seeded through splitmix64. A (seed, stream) pair names an
 * independent stream, so worker k of a run uses stream k and results do not
 * depend on thread scheduling. Not for cryptography.
 */
#ifndef PNX_COMMON_RNG_H
#define PNX_COMMON_RNG_H

#include <stdint.h>

typedef struct pnx_rng {
    uint64_t s[4];
} pnx_rng;

void pnx_rng_seed(pnx_rng *r, uint64_t seed, uint64_t stream);
uint64_t pnx_rng_u64(pnx_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double pnx_rng_uniform(pnx_rng *r);
/* Uniform integer in [0, n); n > 0. Unbiased (rejection). */
uint64_t pnx_rng_below(pnx_rng *r, uint64_t n);
/* Standard normal (Box–Muller, one value per call). */
double pnx_rng_normal(pnx_rng *r);
/* Fisher–Yates shuffle of n indices. */
void pnx_rng_shuffle_u32(pnx_rng *r, uint32_t *v, uint32_t n);

#endif
