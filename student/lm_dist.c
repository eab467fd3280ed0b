/* Data-parallel steps of the language model: each rank's shard of the global batch, scaled so
 * that one sum over the ranks gives exactly what one process computes on the whole batch. */
#include "student/lm_dist.h"

#include <math.h>
#include <string.h>

#include "student/dist.h"

void us__lm_shard_rows(int B, int rank, int size, int *first, int *end) {
  *first = (int)((long)B * rank / size);
  *end = (int)((long)B * (rank + 1) / size);
}

int us__lm_shard_max_rows(int B, int size) {
  return (B + size - 1) / size;
}

static double mask_sum(const float *mask, size_t n) {
  double w = 0.0;
  for (size_t i = 0; i < n; i++) w += mask[i];
  return w;
}

double us__lm_shard_forward_backward(const us_lm *lm, us__lm_acts *a, const us__lm_batch *batch,
                                     int B, int T, int rank, int size, float *grad, size_t n,
                                     const us__lm_params *g) {
  memset(grad, 0, n * sizeof(float));
  int first, end;
  us__lm_shard_rows(B, rank, size, &first, &end);
  size_t at = (size_t)first * T, rows = (size_t)(end - first);
  /* the loss is a mean over the batch's answer tokens: each shard's mean weighs by its share */
  double whole = mask_sum(batch->mask, (size_t)B * T);
  double mine = mask_sum(batch->mask + at, rows * T);
  if (rows == 0 || mine == 0.0 || whole == 0.0) return 0.0;
  us__lm_batch shard = {batch->tokens + at, batch->targets + at, batch->mask + at, batch->pos + at,
                        batch->doc + at};
  double loss = us__lm_forward(lm, a, &shard, (int)rows, T);
  if (!isfinite(loss)) return loss; /* the sum is not finite either: every rank stops alike */
  us__lm_backward(lm, a, &shard, (int)rows, T, g);
  float share = (float)(mine / whole);
  for (size_t i = 0; i < n; i++) grad[i] *= share;
  return loss * (mine / whole);
}

us_status us__lm_dist_step(const us_lm *lm, us__lm_acts *a, const us__lm_batch *batch, int B, int T,
                           float *grad, size_t n, const us__lm_params *g, long step, double *loss,
                           us_err *err) {
  double mine =
      us__lm_shard_forward_backward(lm, a, batch, B, T, us_dist_rank(), us_dist_size(), grad, n, g);
  grad[n] = (float)mine;
  us_status st = us_dist_allreduce_sum(grad, n + 1, step, err);
  *loss = grad[n];
  return st;
}
