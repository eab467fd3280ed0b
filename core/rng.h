/* Small deterministic random number generator (splitmix64 seeding a xoshiro256**). */
#ifndef US_CORE_RNG_H
#define US_CORE_RNG_H

#include <stdint.h>

typedef struct us_rng {
  uint64_t s[4];
} us_rng;

void us_rng_seed(us_rng *r, uint64_t seed);
uint64_t us_rng_u64(us_rng *r);
/* Uniform in [0, 1). */
double us_rng_uniform(us_rng *r);
float us_rng_uniformf(us_rng *r);
/* Uniform integer in [0, n); n > 0. */
uint64_t us_rng_below(us_rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
double us_rng_normal(us_rng *r);

#endif
