/* The OpenBLAS wrappers agree with their naive references, for every transpose combination and
 * with non-trivial strides, alpha and beta. */
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "student/blas.h"

static void fill(us_rng *r, float *x, int n) {
  for (int i = 0; i < n; i++) x[i] = (float)us_rng_normal(r);
}

static void assert_close(const float *a, const float *b, int n) {
  for (int i = 0; i < n; i++) {
    float tol = 1e-4f * (1.0f + fabsf(b[i]));
    if (fabsf(a[i] - b[i]) > tol) fail_msg("index %d: blas %g, reference %g", i, a[i], b[i]);
  }
}

static void sgemm_should_match_reference_for_all_transposes(void **state) {
  (void)state;
  us_rng r;
  us_rng_seed(&r, 7);
  enum { M = 5, N = 7, K = 9, PAD = 3 };
  float a[(K + PAD) * (K + PAD)], b[(K + PAD) * (N + PAD)];
  float c1[M * (N + PAD)], c2[M * (N + PAD)];
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      int lda = (ta ? M : K) + PAD, ldb = (tb ? K : N) + PAD, ldc = N + PAD;
      fill(&r, a, (int)(sizeof a / sizeof a[0]));
      fill(&r, b, (int)(sizeof b / sizeof b[0]));
      fill(&r, c1, M * ldc);
      memcpy(c2, c1, sizeof c1);
      us_blas_sgemm(ta, tb, M, N, K, 0.7f, a, lda, b, ldb, 0.3f, c1, ldc);
      us_blas_ref_sgemm(ta, tb, M, N, K, 0.7f, a, lda, b, ldb, 0.3f, c2, ldc);
      assert_close(c1, c2, M * ldc);
    }
}

static void sgemm_with_zero_beta_should_ignore_old_output(void **state) {
  (void)state;
  float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
  float c[4] = {NAN, NAN, NAN, NAN}, ref[4] = {NAN, NAN, NAN, NAN};
  us_blas_sgemm(false, false, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
  us_blas_ref_sgemm(false, false, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, ref, 2);
  /* by hand: [1 2;3 4][5 6;7 8] = [19 22;43 50] */
  float want[4] = {19, 22, 43, 50};
  assert_close(c, want, 4);
  assert_close(ref, want, 4);
}

static void sgemv_should_match_reference_both_ways(void **state) {
  (void)state;
  us_rng r;
  us_rng_seed(&r, 11);
  enum { M = 6, N = 4, LDA = 5 };
  float a[M * LDA], x[M], y1[M], y2[M];
  fill(&r, a, M * LDA);
  for (int t = 0; t < 2; t++) {
    fill(&r, x, M);
    fill(&r, y1, M);
    memcpy(y2, y1, sizeof y1);
    us_blas_sgemv(t, M, N, -1.5f, a, LDA, x, 0.5f, y1);
    us_blas_ref_sgemv(t, M, N, -1.5f, a, LDA, x, 0.5f, y2);
    assert_close(y1, y2, t ? N : M);
  }
}

static void vector_ops_should_match_reference(void **state) {
  (void)state;
  us_rng r;
  us_rng_seed(&r, 3);
  enum { N = 37 };
  float x[N], y1[N], y2[N];
  fill(&r, x, N);
  fill(&r, y1, N);
  memcpy(y2, y1, sizeof y1);
  us_blas_saxpy(N, 0.25f, x, y1);
  us_blas_ref_saxpy(N, 0.25f, x, y2);
  assert_close(y1, y2, N);
  float d1 = us_blas_sdot(N, x, y1), d2 = us_blas_ref_sdot(N, x, y2);
  assert_close(&d1, &d2, 1);
  us_blas_sscal(N, -2.0f, y1);
  us_blas_ref_sscal(N, -2.0f, y2);
  assert_close(y1, y2, N);
  float dot_by_hand = us_blas_sdot(3, (float[]){1, 2, 3}, (float[]){4, 5, 6});
  assert_true(fabsf(dot_by_hand - 32.0f) < 1e-6f);
}

static void sger_should_match_reference(void **state) {
  (void)state;
  us_rng r;
  us_rng_seed(&r, 5);
  enum { M = 4, N = 6, LDA = 8 };
  float x[M], y[N], a1[M * LDA], a2[M * LDA];
  fill(&r, x, M);
  fill(&r, y, N);
  fill(&r, a1, M * LDA);
  memcpy(a2, a1, sizeof a1);
  us_blas_sger(M, N, 0.9f, x, y, a1, LDA);
  us_blas_ref_sger(M, N, 0.9f, x, y, a2, LDA);
  assert_close(a1, a2, M * LDA);
}

int main(void) {
  us_blas_set_threads(1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sgemm_should_match_reference_for_all_transposes),
      cmocka_unit_test(sgemm_with_zero_beta_should_ignore_old_output),
      cmocka_unit_test(sgemv_should_match_reference_both_ways),
      cmocka_unit_test(vector_ops_should_match_reference),
      cmocka_unit_test(sger_should_match_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
