/* OpenBLAS wrappers (row-major) and their naive references. The only file that includes
 * <cblas.h>, so a different BLAS, or a checked build, is one file away. */
#include "student/blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/assert.h"

static CBLAS_TRANSPOSE to_trans(bool t) {
  return t ? CblasTrans : CblasNoTrans;
}

void us_blas_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  /* row-major: each leading dimension spans at least one stored row */
  US_ASSERT(m >= 0 && n >= 0 && k >= 0);
  US_ASSERT_OP(lda, >=, trans_a ? m : k);
  US_ASSERT_OP(ldb, >=, trans_b ? k : n);
  US_ASSERT_OP(ldc, >=, n);
  cblas_sgemm(CblasRowMajor, to_trans(trans_a), to_trans(trans_b), m, n, k, alpha, a, lda, b, ldb,
              beta, c, ldc);
}

void us_blas_sgemv(bool trans, int m, int n, float alpha, const float *a, int lda, const float *x,
                   float beta, float *y) {
  US_ASSERT(m >= 0 && n >= 0);
  US_ASSERT_OP(lda, >=, n);
  cblas_sgemv(CblasRowMajor, to_trans(trans), m, n, alpha, a, lda, x, 1, beta, y, 1);
}

void us_blas_saxpy(int n, float alpha, const float *x, float *y) {
  cblas_saxpy(n, alpha, x, 1, y, 1);
}

float us_blas_sdot(int n, const float *x, const float *y) {
  return cblas_sdot(n, x, 1, y, 1);
}

void us_blas_sscal(int n, float alpha, float *x) {
  cblas_sscal(n, alpha, x, 1);
}

void us_blas_sger(int m, int n, float alpha, const float *x, const float *y, float *a, int lda) {
  cblas_sger(CblasRowMajor, m, n, alpha, x, 1, y, 1, a, lda);
}

void us_blas_set_threads(int n) {
  openblas_set_num_threads(n < 1 ? 1 : n);
}

const char *us_blas_core(void) {
  const char *name = openblas_get_corename();
  return name ? name : "unknown";
}

const char *us_blas_config(void) {
  const char *config = openblas_get_config();
  return config ? config : "unknown";
}

static bool core_is_one_of(const char *core, const char *const *names) {
  for (; *names; names++)
    if (strcasecmp(core, *names) == 0) return true;
  return false;
}

const char *us_blas_better_core(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
  static const char *const avx2[] = {"Haswell",        "Zen", "SkylakeX", "Cooperlake",
                                     "SapphireRapids", NULL};
  __builtin_cpu_init();
  /* the SkylakeX kernels use AVX-512 F, BW, DQ and VL; the CPU check includes OS support */
  bool has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const char *core = us_blas_core();
  if (has_avx512 && !core_is_one_of(core, avx512)) return "SkylakeX";
  if (has_avx2 && !has_avx512 && !core_is_one_of(core, avx2)) return "Haswell";
#endif
  return NULL;
}

void us_blas_reexec_for_kernels(char **argv) {
  if (getenv("OPENBLAS_CORETYPE") || getenv("US_BLAS_KEEP_KERNELS")) return;
  const char *core = us_blas_better_core();
  if (!core || setenv("OPENBLAS_CORETYPE", core, 1) != 0) return;
  setenv("US_BLAS_REPLACED", us_blas_core(), 1); /* what OpenBLAS had picked, for --version */
  execv("/proc/self/exe", argv);
  /* exec failed (no /proc, say): carry on with the kernels already loaded */
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("US_BLAS_REPLACED");
}

/* ---- naive references ---- */

void us_blas_ref_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                       int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double sum = 0;
      for (int p = 0; p < k; p++) {
        float av = trans_a ? a[(long)p * lda + i] : a[(long)i * lda + p];
        float bv = trans_b ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
        sum += (double)av * bv;
      }
      float *cij = &c[(long)i * ldc + j];
      /* beta == 0 must ignore C's old contents (it may be uninitialised), as BLAS does */
      *cij = (float)(alpha * sum + (beta == 0.0f ? 0.0 : (double)beta * *cij));
    }
}

void us_blas_ref_sgemv(bool trans, int m, int n, float alpha, const float *a, int lda,
                       const float *x, float beta, float *y) {
  int rows = trans ? n : m, inner = trans ? m : n;
  for (int i = 0; i < rows; i++) {
    double sum = 0;
    for (int p = 0; p < inner; p++)
      sum += (double)(trans ? a[(long)p * lda + i] : a[(long)i * lda + p]) * x[p];
    y[i] = (float)(alpha * sum + (beta == 0.0f ? 0.0 : (double)beta * y[i]));
  }
}

void us_blas_ref_saxpy(int n, float alpha, const float *x, float *y) {
  for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

float us_blas_ref_sdot(int n, const float *x, const float *y) {
  double sum = 0;
  for (int i = 0; i < n; i++) sum += (double)x[i] * y[i];
  return (float)sum;
}

void us_blas_ref_sscal(int n, float alpha, float *x) {
  for (int i = 0; i < n; i++) x[i] *= alpha;
}

void us_blas_ref_sger(int m, int n, float alpha, const float *x, const float *y, float *a,
                      int lda) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) a[(long)i * lda + j] += alpha * x[i] * y[j];
}
