/* xoshiro256** seeded through splitmix64; reproducible across platforms. */
#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void us_rng_seed(us_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t us_rng_u64(us_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double us_rng_uniform(us_rng *r) {
  return (double)(us_rng_u64(r) >> 11) * 0x1.0p-53;
}
float us_rng_uniformf(us_rng *r) {
  return (float)(us_rng_u64(r) >> 40) * 0x1.0p-24f;
}

uint64_t us_rng_below(us_rng *r, uint64_t n) {
  return n ? us_rng_u64(r) % n : 0;
}

double us_rng_normal(us_rng *r) {
  double u1 = us_rng_uniform(r), u2 = us_rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
