/* Data-parallel training benchmark (never run by ctest; bench/bench_lm_mpi.sh drives it). Trains
 * the language model through the real trainer (us_lm_train) on synthetic examples, in one process
 * or under `mpirun -np N`, and prints one JSON line from rank 0:
 *   tokens_per_s        global batch tokens per wall second over the timed steps (step 1 excluded)
 *   step_s              wall seconds per step
 *   allreduce_wait_s    seconds per step inside the gradient allreduce during training: the
 *                       transfer plus the wait for the slowest rank (load imbalance, contention)
 *   allreduce_s         seconds of one allreduce of the same gradient block, timed alone after a
 *                       barrier (median of --reps): the transfer itself
 *   allreduce_min_s     the fastest of those: the transfer on an idle machine, nearly
 *   cpu_s_per_step      CPU seconds per step of this process (rank 0), all threads
 *   compute_cpu_s       the same without the CPU MPI spends polling inside the allreduce: the
 *                       forward, backward and AdamW; survives a shared machine's contention
 * Usage: [mpirun -np N] bench_lm_mpi [--dim D] [--layers L] [--heads H] [--context T]
 *        [--batch B] [--vocab V] [--steps S] [--threads K] [--reps R] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "student/dist.h"
#include "student/lm.h"

typedef struct opts {
  int dim, layers, heads, context, batch, vocab, steps, threads, reps;
} opts;

static int parse(int argc, char **argv, opts *o) {
  *o = (opts){128, 4, 4, 128, 8, 1024, 12, 1, 20};
  for (int i = 1; i + 1 < argc; i += 2) {
    int v = atoi(argv[i + 1]);
    if (!strcmp(argv[i], "--dim"))
      o->dim = v;
    else if (!strcmp(argv[i], "--layers"))
      o->layers = v;
    else if (!strcmp(argv[i], "--heads"))
      o->heads = v;
    else if (!strcmp(argv[i], "--context"))
      o->context = v;
    else if (!strcmp(argv[i], "--batch"))
      o->batch = v;
    else if (!strcmp(argv[i], "--vocab"))
      o->vocab = v;
    else if (!strcmp(argv[i], "--steps"))
      o->steps = v;
    else if (!strcmp(argv[i], "--threads"))
      o->threads = v;
    else if (!strcmp(argv[i], "--reps"))
      o->reps = v;
    else
      return fprintf(stderr, "bench_lm_mpi: unknown option %s\n", argv[i]), -1;
  }
  return argc % 2 == 1 ? 0 : (fprintf(stderr, "bench_lm_mpi: an option lacks its value\n"), -1);
}

typedef struct timing {
  double first_end, last_end, cpu_first, cpu_last, wait_first, wait_cpu_first;
  long calls_first;
} timing;

static int on_step(const us_lm_progress *p, void *user) {
  timing *t = user;
  double now = us_now(), cpu = us_cpu_time(), wait, wait_cpu;
  long calls;
  us_dist_allreduce_stats(&wait, &wait_cpu, &calls);
  if (p->step == 1) {
    t->first_end = now;
    t->cpu_first = cpu;
    t->wait_first = wait;
    t->wait_cpu_first = wait_cpu;
    t->calls_first = calls;
  }
  t->last_end = now;
  t->cpu_last = cpu;
  return 0;
}

/* Examples of about one context each, from a small vocabulary of words, so that packing fills
 * the rows and the tokeniser has merges to learn. */
static us_lm_example *examples(int n, char ***texts) {
  static const char *words[] = {"charge",  "refund",  "card",    "login",     "crash",
                                "email",   "invoice", "address", "password",  "reset",
                                "account", "order",   "export",  "dashboard", "slow",
                                "twice",   "code",    "user",    "billing",   "app"};
  us_lm_example *ex = calloc((size_t)n, sizeof *ex);
  *texts = calloc((size_t)n * 2, sizeof **texts);
  unsigned x = 12345;
  for (int i = 0; i < 2 * n; i++) {
    char *s = malloc(400);
    size_t at = 0;
    for (int w = 0; w < 24 + i % 16; w++) {
      x = x * 1103515245u + 12345u;
      at += (size_t)snprintf(s + at, 400 - at, "%s%s", w ? " " : "", words[(x >> 16) % 20]);
    }
    (*texts)[i] = s;
  }
  for (int i = 0; i < n; i++) ex[i] = (us_lm_example){(*texts)[2 * i], (*texts)[2 * i + 1]};
  return ex;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  opts o;
  us_err err = {0};
  if (parse(argc, argv, &o)) return 2;
  if (us_dist_init(&err) != US_OK) return fprintf(stderr, "bench_lm_mpi: %s\n", err.msg), 1;
  char **texts = NULL;
  int n = 400;
  us_lm_example *ex = examples(n, &texts);
  us_lm_train_params p;
  us_lm_train_params_defaults(&p);
  p.layers = o.layers;
  p.dim = o.dim;
  p.heads = o.heads;
  p.context = o.context;
  p.vocab_size = o.vocab;
  p.steps = o.steps;
  p.batch_size = o.batch;
  p.warmup_steps = 2;
  p.threads = o.threads;
  p.checkpoint_every = 0;
  timing t = {0};
  p.progress = on_step;
  p.progress_user = &t;
  us_lm *lm = NULL;
  if (us_lm_train(&p, ex, (size_t)n, &lm, &err) != US_OK) {
    fprintf(stderr, "bench_lm_mpi: rank %d: %s\n", us_dist_rank(), err.msg);
    us_dist_abort(1);
  }
  double wait, wait_cpu;
  long calls;
  us_dist_allreduce_stats(&wait, &wait_cpu, &calls);
  /* the allreduce alone, on a block the size of the gradients (+ the loss slot) */
  size_t n_floats = us_lm_n_params(lm) + 1;
  float *block = calloc(n_floats, sizeof(float));
  double *alone = calloc((size_t)o.reps, sizeof(double));
  for (int r = 0; r < o.reps && us_dist_size() > 1; r++) {
    us_dist_barrier(NULL);
    double t0 = us_now();
    us_dist_allreduce_sum(block, n_floats, -1, NULL);
    alone[r] = us_now() - t0;
  }
  qsort(alone, (size_t)o.reps, sizeof(double), cmp_double);
  int timed = o.steps - 1;
  double step_s = (t.last_end - t.first_end) / timed;
  if (us_dist_rank() == 0)
    printf(
        "{\"bench\":\"lm_mpi\",\"ranks\":%d,\"threads\":%d,\"layers\":%d,\"dim\":%d,"
        "\"context\":%d,\"batch\":%d,\"params\":%zu,\"steps\":%d,\"tokens_per_s\":%.1f,"
        "\"step_s\":%.5f,\"allreduce_wait_s\":%.6f,\"allreduce_s\":%.6f,\"allreduce_mb\":%.3f,"
        "\"allreduce_min_s\":%.6f,\"cpu_s_per_step\":%.5f,\"compute_cpu_s\":%.5f}\n",
        us_dist_size(), o.threads, o.layers, o.dim, o.context, o.batch, n_floats - 1, o.steps,
        (double)o.batch * o.context / step_s, step_s,
        calls > t.calls_first ? (wait - t.wait_first) / (double)(calls - t.calls_first) : 0.0,
        us_dist_size() > 1 ? alone[o.reps / 2] : 0.0, n_floats * 4.0 / 1e6,
        us_dist_size() > 1 ? alone[0] : 0.0, (t.cpu_last - t.cpu_first) / timed,
        (t.cpu_last - t.cpu_first - (wait_cpu - t.wait_cpu_first)) / timed);
  fflush(stdout);
  us_lm_free(lm);
  free(block);
  free(alone);
  for (int i = 0; i < 2 * n; i++) free(texts[i]);
  free(texts);
  free(ex);
  us_dist_finalize();
  return 0;
}
