/* Tests of data-parallel training's arithmetic (student/lm_dist.h), without MPI: the shards of a
 * global batch cover it exactly once, and the sum of every rank's scaled loss and gradient is the
 * loss and gradient one process computes on the whole batch, for any number of ranks (uneven
 * shards, empty shards, a shard without answer tokens). tests/integration/test_train_mpi.sh runs
 * the same under mpirun. Outside mpirun, student/dist.h is one rank. */
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
/* clang-format on */

#include "core/rng.h"
#include "student/blas.h"
#include "student/dist.h"
#include "student/lm_dist.h"

#define ROWS 3
#define T 6

static void shards_should_cover_the_batch_once(void **state) {
  (void)state;
  for (int B = 1; B <= 9; B++)
    for (int size = 1; size <= 6; size++) {
      int next = 0, most = 0;
      for (int rank = 0; rank < size; rank++) {
        int first, end;
        us__lm_shard_rows(B, rank, size, &first, &end);
        assert_int_equal(first, next);
        assert_true(end >= first);
        assert_true(end - first <= B / size + 1);
        if (end - first > most) most = end - first;
        next = end;
      }
      assert_int_equal(next, B);
      assert_int_equal(most, us__lm_shard_max_rows(B, size));
    }
}

/* Three rows of T: row 0 packs two documents, row 1 has no answer token, row 2 has three. */
static us__lm_batch three_rows(void) {
  static int32_t tok[ROWS * T] = {256, 'a', 258, 'b', 256, 'c', 256, 'q', 'r',
                                  's', 't', 'u', 256, 'x', 'y', 258, 'z', 'w'};
  static int32_t tgt[ROWS * T] = {'a', 258, 'b', 257, 'c', 258, 'q', 'r', 's',
                                  't', 'u', 257, 'x', 'y', 258, 'z', 'w', 257};
  static int32_t pos[ROWS * T] = {0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5};
  static int32_t doc[ROWS * T] = {0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3};
  static float mask[ROWS * T] = {0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1};
  return (us__lm_batch){tok, tgt, mask, pos, doc};
}

static us_lm *tiny_model(void) {
  us_bpe *bpe = NULL;
  assert_int_equal(us_bpe_from_merges(NULL, 0, &bpe, NULL), US_OK);
  us_lm_config c = {2, 8, 2, T, us_bpe_vocab_size(bpe), 16, 0, 0, 0, 0};
  us_lm *lm = NULL;
  assert_int_equal(us_lm_new(&c, bpe, 5, &lm, NULL), US_OK);
  us_rng r;
  us_rng_seed(&r, 6);
  for (size_t i = 0; i < lm->n_params; i++) lm->block[i] = 0.3f * (float)us_rng_normal(&r);
  return lm;
}

static void shard_sums_should_equal_the_whole_batch(void **state) {
  (void)state;
  us_blas_set_threads(1);
  us_lm *lm = tiny_model();
  us__lm_batch batch = three_rows();
  size_t n = lm->n_params;
  float *whole = calloc(n, sizeof(float)), *sum = calloc(n, sizeof(float));
  float *part = calloc(n, sizeof(float));
  us__lm_params g;
  us__lm_acts a;
  assert_int_equal(us__lm_acts_new(&lm->config, ROWS, T, &a, NULL), US_OK);
  us__lm_params_point(whole, &lm->config, &g);
  double loss = us__lm_forward(lm, &a, &batch, ROWS, T);
  us__lm_backward(lm, &a, &batch, ROWS, T, &g);
  double norm = 0.0;
  for (size_t i = 0; i < n; i++) norm += fabs(whole[i]);
  assert_true(loss > 0.0 && norm > 1e-2);
  us__lm_params_point(part, &lm->config, &g);
  for (int size = 1; size <= 5; size++) { /* 2: rows {0}, {1, 2}; 4 and 5: empty shards */
    memset(sum, 0, n * sizeof(float));
    double loss_sum = 0.0;
    for (int rank = 0; rank < size; rank++) {
      loss_sum += us__lm_shard_forward_backward(lm, &a, &batch, ROWS, T, rank, size, part, n, &g);
      for (size_t i = 0; i < n; i++) sum[i] += part[i];
    }
    assert_float_equal(loss_sum, loss, 1e-5 * loss);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
      double d = fabs(sum[i] - whole[i]) / (1e-4 + fabs(whole[i]));
      if (d > worst) worst = d;
    }
    if (worst > 1e-3) print_message("%d ranks: worst relative gradient error %g\n", size, worst);
    assert_true(worst <= 1e-3);
  }
  us__lm_acts_free(&a);
  free(whole);
  free(sum);
  free(part);
  us_lm_free(lm);
}

/* With LoRA adapters the shards' sums are the whole batch's adapter gradient (the base frozen:
 * no base gradient), which is what lm_train.c allreduces under mpirun. */
static void lora_shard_sums_should_equal_the_whole_batch(void **state) {
  (void)state;
  us_blas_set_threads(1);
  us_lm *lm = tiny_model();
  us_rng r;
  us_rng_seed(&r, 7);
  assert_int_equal(us__lm_lora_new(lm, 2, 4.0, &r, NULL), US_OK);
  us__lm_lora *lo = lm->lora;
  for (size_t i = 0; i < lo->n_params; i++) lo->block[i] = 0.3f * (float)us_rng_normal(&r);
  us__lm_batch batch = three_rows();
  size_t n = lo->n_params;
  float *whole = calloc(n, sizeof(float)), *sum = calloc(n, sizeof(float));
  us__lm_acts a;
  assert_int_equal(us__lm_acts_new(&lm->config, ROWS, T, &a, NULL), US_OK);
  assert_int_equal(us__lm_acts_lora(&a, lo, lm->config.layers, NULL), US_OK);
  double loss = us__lm_forward(lm, &a, &batch, ROWS, T);
  memset(lo->grad, 0, n * sizeof(float));
  us__lm_backward(lm, &a, &batch, ROWS, T, NULL);
  memcpy(whole, lo->grad, n * sizeof(float));
  double norm = 0.0;
  for (size_t i = 0; i < n; i++) norm += fabs(whole[i]);
  assert_true(loss > 0.0 && norm > 1e-2);
  for (int size = 1; size <= 4; size++) {
    memset(sum, 0, n * sizeof(float));
    double loss_sum = 0.0;
    for (int rank = 0; rank < size; rank++) {
      loss_sum +=
          us__lm_shard_forward_backward(lm, &a, &batch, ROWS, T, rank, size, lo->grad, n, NULL);
      for (size_t i = 0; i < n; i++) sum[i] += lo->grad[i];
    }
    assert_float_equal(loss_sum, loss, 1e-5 * loss);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++)
      worst = fmax(worst, fabs(sum[i] - whole[i]) / (1e-4 + fabs(whole[i])));
    if (worst > 1e-3)
      print_message("LoRA, %d ranks: worst relative gradient error %g\n", size, worst);
    assert_true(worst <= 1e-3);
  }
  us__lm_acts_free(&a);
  free(whole);
  free(sum);
  us_lm_free(lm);
}

static void one_rank_should_be_a_no_op_outside_mpirun(void **state) {
  (void)state;
  if (us_dist_launched_size() > 1) skip(); /* this test runs outside mpirun */
  assert_int_equal(us_dist_init(NULL), US_OK);
  assert_int_equal(us_dist_size(), 1);
  assert_int_equal(us_dist_rank(), 0);
  float x[3] = {1, 2, 3};
  assert_int_equal(us_dist_allreduce_sum(x, 3, 0, NULL), US_OK);
  assert_float_equal(x[2], 3.0f, 0.0f);
  assert_int_equal(us_dist_same_u64(42, "a value", NULL), US_OK);
  bool any = true;
  assert_int_equal(us_dist_any(false, &any, NULL), US_OK);
  assert_false(any);
  assert_int_equal(us_dist_barrier(NULL), US_OK);
  us_dist_finalize();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(shards_should_cover_the_batch_once),
      cmocka_unit_test(shard_sums_should_equal_the_whole_batch),
      cmocka_unit_test(lora_shard_sums_should_equal_the_whole_batch),
      cmocka_unit_test(one_rank_should_be_a_no_op_outside_mpirun),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
