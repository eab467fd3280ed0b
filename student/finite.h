/* Finding a non-finite float (NaN or an infinity) in a block of weights, for the students'
 * divergence checks and their model loaders. Internal to student/. */
#ifndef US_STUDENT_FINITE_H
#define US_STUDENT_FINITE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Index of the first NaN or infinity of x[0..n), or n when every value is finite. Blocks of 256
 * are first tested with an integer OR of "every exponent bit set" (which the compiler
 * vectorises), so a scan of a model costs about as much as reading it once. */
static inline size_t us__first_nonfinite(const float *x, size_t n) {
  size_t i = 0;
  for (; i + 256 <= n; i += 256) {
    uint32_t bad = 0;
    for (size_t j = 0; j < 256; j++) {
      uint32_t u;
      memcpy(&u, x + i + j, sizeof u);
      bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    if (bad) break;
  }
  for (; i < n; i++)
    if (!isfinite(x[i])) return i;
  return n;
}

#endif
