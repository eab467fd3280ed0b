/* Data-parallel training of the language model (student/dist.h carries the MPI side): every rank
 * packs the same global batch, computes the forward and backward pass of its own rows, and one
 * allreduce over the gradient block sums the shards; every rank then takes the same AdamW step.
 * Shared by lm_train.c and the tests. */
#ifndef US_STUDENT_LM_DIST_H
#define US_STUDENT_LM_DIST_H

#include "student/lm_int.h"

/* Rows [*first, *end) of a global batch of B rows that rank `rank` of `size` computes: B split
 * into size contiguous parts that differ by at most one row (empty when B < size). */
void us__lm_shard_rows(int B, int rank, int size, int *first, int *end);
/* The most rows one rank computes, ceil(B / size): the rows its activations need. */
int us__lm_shard_max_rows(int B, int size);

/* Forward and backward over this rank's rows of the global batch (B rows of T tokens) into grad
 * (n floats in the layout g points into; zeroed first). The gradient and the returned loss are
 * this shard's shares: scaled by the shard's answer tokens over the whole batch's, so that their
 * sums over all ranks are the mean loss of the global batch and its gradient, as one process
 * computes them. An empty shard, or one without answer tokens, contributes zeros. */
double us__lm_shard_forward_backward(const us_lm *lm, us__lm_acts *a, const us__lm_batch *batch,
                                     int B, int T, int rank, int size, float *grad, size_t n,
                                     const us__lm_params *g);

/* One data-parallel step on this rank (us_dist_rank of us_dist_size): the shard's forward and
 * backward, then ONE us_dist_allreduce_sum over grad[0 .. n + 1): the gradient block with this
 * shard's loss share in its extra last slot (grad holds n + 1 floats). *loss receives the global
 * batch's loss; grad[0 .. n) its gradient, the same on every rank. step names the step in
 * messages. */
us_status us__lm_dist_step(const us_lm *lm, us__lm_acts *a, const us__lm_batch *batch, int B, int T,
                           float *grad, size_t n, const us__lm_params *g, long step, double *loss,
                           us_err *err);

#endif
