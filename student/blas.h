/* Every dense linear-algebra call of the students goes through this file (OpenBLAS), with a
 * naive reference implementation of each next to it so the tests can check the wrappers.
 * Shared by the classifier and the language model. All matrices are row-major float32;
 * "trans" flags follow BLAS (false: use as stored, true: use the transpose). */
#ifndef US_STUDENT_BLAS_H
#define US_STUDENT_BLAS_H

#include <stdbool.h>

#include "understudy.h" /* us_blas_reexec_for_kernels, us_blas_core */

/* C (m x n) = alpha * op(A) (m x k) * op(B) (k x n) + beta * C.
 * lda/ldb/ldc are row strides of A, B, C as stored (row-major). */
void us_blas_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* y (len m, or n if trans) = alpha * op(A) x + beta * y, with A stored m x n (row stride lda). */
void us_blas_sgemv(bool trans, int m, int n, float alpha, const float *a, int lda, const float *x,
                   float beta, float *y);
/* y += alpha * x (length n). */
void us_blas_saxpy(int n, float alpha, const float *x, float *y);
/* Returns sum x[i] * y[i] (length n). */
float us_blas_sdot(int n, const float *x, const float *y);
/* x *= alpha (length n). */
void us_blas_sscal(int n, float alpha, float *x);
/* A (m x n, row stride lda) += alpha * x (m) y^T (n): the rank-1 update of a backward pass. */
void us_blas_sger(int m, int n, float alpha, const float *x, const float *y, float *a, int lda);

/* OpenBLAS's own thread pool size. Callers that parallelise themselves (Hogwild training, one
 * prediction per thread) set 1 so the two thread pools do not fight over the cores. */
void us_blas_set_threads(int n);

/* OpenBLAS chooses its kernels once, as it loads, from the CPU's identity. A release older than
 * the CPU (Debian 12's 0.3.21 on Sapphire Rapids, or a VM that reports a generic model) falls
 * back to "Prescott" SSE3 kernels, 3-5x slower than the AVX-512 or AVX2 ones the CPU can run.
 * us_blas_core (public, include/understudy.h): the kernels in use (e.g. "SkylakeX");
 * us_blas_config: OpenBLAS's build line. us_blas_better_core: the OPENBLAS_CORETYPE value this
 * CPU should use ("SkylakeX" or "Haswell") when the loaded kernels are older than the CPU's
 * instruction set, else NULL; us_blas_reexec_for_kernels (public) acts on it. */
const char *us_blas_config(void);
const char *us_blas_better_core(void);

/* Naive references with the same contracts, for tests (and as the specification). */
void us_blas_ref_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                       int lda, const float *b, int ldb, float beta, float *c, int ldc);
void us_blas_ref_sgemv(bool trans, int m, int n, float alpha, const float *a, int lda,
                       const float *x, float beta, float *y);
void us_blas_ref_saxpy(int n, float alpha, const float *x, float *y);
float us_blas_ref_sdot(int n, const float *x, const float *y);
void us_blas_ref_sscal(int n, float alpha, float *x);
void us_blas_ref_sger(int m, int n, float alpha, const float *x, const float *y, float *a, int lda);

#endif
