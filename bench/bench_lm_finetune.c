/* Benchmark of fine-tuning a pretrained-shaped language model (never run by ctest; prints one
 * JSON line per mode): a random-weight llama of a given shape (default SmolLM-135M's: 30 layers,
 * dim 576, 9 heads over 3 key/value heads, SwiGLU 1536, vocabulary 49152, tied output), one
 * packed batch, and per mode ("full": every weight with AdamW; "lora": rank-r adapters on the
 * four projections, base frozen) the median wall and CPU seconds of a training step (forward,
 * backward, optimiser update). CPU time (getrusage) survives a loaded machine; tokens per
 * CPU-second is the per-core figure when --threads is 1.
 *
 *   bench_lm_finetune [--layers 30 --dim 576 --heads 9 --kv-heads 3 --hidden 1536
 *                      --vocab 49152 --context 256 --batch 2 --steps 3 --threads 1 --rank 8
 *                      --mode full|lora|both]
 *
 * A pretrained base from a file, to measure memory under /usr/bin/time -v: --write-gguf FILE
 * --gguf-type f32|q8_0 writes the random model of the shape as a GGUF and exits; --init FILE
 * then starts from that file (under LoRA a Q8_0 base stays Q8_0, student/lm_q8.c) and the JSON
 * line adds the peak and the training RSS (VmHWM, VmRSS of /proc/self/status). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/clock.h"
#include "core/rng.h"
#include "student/blas.h"
#include "student/gguf.h"
#include "student/lm_gguf.h"
#include "student/lm_int.h"

typedef struct opts {
  int layers, dim, heads, kv_heads, hidden, vocab, context, batch, steps, threads, rank;
  const char *mode, *write_gguf, *gguf_type, *init;
} opts;

static int parse(int argc, char **argv, opts *o) {
  *o = (opts){30, 576, 9, 3, 1536, 49152, 256, 2, 3, 1, 8, "both", NULL, "f32", NULL};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *v = argv[i + 1];
    int *ints[] = {&o->layers,  &o->dim,   &o->heads, &o->kv_heads, &o->hidden, &o->vocab,
                   &o->context, &o->batch, &o->steps, &o->threads,  &o->rank};
    const char *names[] = {"--layers",  "--dim",   "--heads", "--kv-heads", "--hidden", "--vocab",
                           "--context", "--batch", "--steps", "--threads",  "--rank"};
    int found = 0;
    for (int k = 0; k < 11; k++)
      if (!strcmp(a, names[k])) {
        *ints[k] = atoi(v);
        found = 1;
      }
    const char **strs[] = {&o->mode, &o->write_gguf, &o->gguf_type, &o->init};
    const char *str_names[] = {"--mode", "--write-gguf", "--gguf-type", "--init"};
    for (int k = 0; k < 4; k++)
      if (!strcmp(a, str_names[k])) {
        *strs[k] = v;
        found = 1;
      }
    if (!found) return fprintf(stderr, "bench_lm_finetune: unknown option %s\n", a), -1;
  }
  if (argc % 2 == 0) return fprintf(stderr, "bench_lm_finetune: an option needs a value\n"), -1;
  return 0;
}

static double cpu_seconds(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *x, int n) {
  qsort(x, (size_t)n, sizeof *x, cmp_double);
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* A random model of the shape, its tokeniser any merge list of the vocabulary's size. */
static us_lm *random_model(const opts *o) {
  int n_merges = o->vocab - US_BPE_MIN_VOCAB;
  int32_t *pairs = malloc(sizeof(int32_t) * 2 * (size_t)(n_merges > 0 ? n_merges : 1));
  for (int m = 0; m < n_merges; m++) { /* two-byte tokens */
    pairs[2 * m] = m % 256;
    pairs[2 * m + 1] = (m / 256) % 256;
  }
  us_bpe *bpe = NULL;
  us_err err;
  if (us_bpe_from_merges(pairs, n_merges, &bpe, &err) != US_OK) {
    fprintf(stderr, "bench_lm_finetune: %s\n", err.msg);
    exit(1);
  }
  free(pairs);
  us_lm_config c = {o->layers, o->dim,      o->heads, o->context, us_bpe_vocab_size(bpe),
                    o->hidden, o->kv_heads, 0,        0,          0};
  us_lm *lm = NULL;
  if (us_lm_new(&c, bpe, 1, &lm, &err) != US_OK) {
    fprintf(stderr, "bench_lm_finetune: %s\n", err.msg);
    exit(1);
  }
  return lm;
}

/* One AdamW update over n parameters (the trainer's arithmetic, without clipping). */
static void adamw(float *w, const float *g, float *m, float *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    m[i] = 0.9f * m[i] + 0.1f * g[i];
    v[i] = 0.95f * v[i] + 0.05f * g[i] * g[i];
    w[i] -= 1e-5f * (m[i] / (sqrtf(v[i]) + 1e-8f) + 0.1f * w[i]);
  }
}

/* A field of /proc/self/status in MB (VmHWM: the peak resident set; VmRSS: now). */
static double status_mb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double kb = -1;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, field, n) && line[n] == ':') kb = atof(line + n + 1);
  if (f) fclose(f);
  return kb / 1024.0;
}

static int write_gguf(const opts *o) {
  us_lm *lm = random_model(o);
  us_lm_gguf_params gp;
  us_lm_gguf_params_defaults(&gp);
  gp.dtype = strcmp(o->gguf_type, "q8_0") == 0 ? US_GGUF_Q8_0 : US_GGUF_F32;
  us_err err;
  us_status st = us_lm_export_gguf(lm, o->write_gguf, &gp, NULL, &err);
  if (st != US_OK) fprintf(stderr, "bench_lm_finetune: %s\n", err.msg);
  us_lm_free(lm);
  return st == US_OK ? 0 : 1;
}

static int run(const opts *o, int lora) {
  us_err err;
  us_lm *lm = NULL;
  if (!o->init) {
    lm = random_model(o);
  } else if (us__lm_import(o->init, o->context, lora, &lm, &err) != US_OK) {
    fprintf(stderr, "bench_lm_finetune: %s\n", err.msg);
    return 1;
  }
  int B = o->batch, T = lm->config.context, N = B * T;
  us__lm_acts acts;
  if (us__lm_acts_new(&lm->config, B, T, &acts, &err) != US_OK ||
      us__lm_acts_q8(&acts, lm, &err) != US_OK) {
    fprintf(stderr, "bench_lm_finetune: %s\n", err.msg);
    return 1;
  }
  float *grad = NULL;
  size_t n_train = lm->n_params;
  if (lora) {
    us_rng r;
    us_rng_seed(&r, 5);
    if (us__lm_lora_new(lm, o->rank, 2.0 * o->rank, &r, &err) != US_OK ||
        us__lm_acts_lora(&acts, lm->lora, lm->config.layers, &err) != US_OK) {
      fprintf(stderr, "bench_lm_finetune: %s\n", err.msg);
      return 1;
    }
    n_train = lm->lora->n_params;
  } else {
    grad = calloc(lm->n_params, sizeof(float));
  }
  float *m = calloc(n_train, sizeof(float)), *v = calloc(n_train, sizeof(float));
  int32_t *tok = malloc(sizeof(int32_t) * (size_t)N), *tgt = malloc(sizeof(int32_t) * (size_t)N);
  int32_t *pos = malloc(sizeof(int32_t) * (size_t)N), *doc = malloc(sizeof(int32_t) * (size_t)N);
  float *mask = malloc(sizeof(float) * (size_t)N);
  int V = lm->config.vocab;
  for (int i = 0; i < N; i++) {
    tok[i] = (int32_t)(((long)i * 7919 + 13) % V);
    tgt[i] = (int32_t)(((long)(i + 1) * 7919 + 13) % V);
    pos[i] = i % T;
    doc[i] = i / T;
    mask[i] = 1.0f;
  }
  us__lm_batch batch = {tok, tgt, mask, pos, doc};
  us__lm_params g;
  if (grad) us__lm_params_point(grad, &lm->config, &g);
  double wall[32], cpu[32], loss = 0;
  int reps = o->steps < 32 ? o->steps : 32;
  for (int s = 0; s <= reps; s++) { /* step 0 warms up */
    double t0 = us_now(), c0 = cpu_seconds();
    loss = us__lm_forward(lm, &acts, &batch, B, T);
    if (lora) {
      memset(lm->lora->grad, 0, n_train * sizeof(float));
      us__lm_backward(lm, &acts, &batch, B, T, NULL);
      adamw(lm->lora->block, lm->lora->grad, m, v, n_train);
    } else {
      memset(grad, 0, lm->n_params * sizeof(float));
      us__lm_backward(lm, &acts, &batch, B, T, &g);
      adamw(lm->block, grad, m, v, n_train);
    }
    if (s > 0) {
      wall[s - 1] = us_now() - t0;
      cpu[s - 1] = cpu_seconds() - c0;
    }
  }
  double w = median(wall, reps), c = median(cpu, reps);
  double rss_train = status_mb("VmRSS"), rss_peak = status_mb("VmHWM");
  /* bytes the run holds: weights, optimiser moments and gradients of what trains, activations */
  size_t train_bytes = n_train * sizeof(float) * (lora ? 4 : 3);
  double weight_bytes = (double)lm->n_params * sizeof(float); /* + a Q8_0 base's projections */
  for (int k = 0; lm->q8 && k < US_LM_LORA_KINDS; k++)
    weight_bytes += (double)lm->config.layers * lm->q8->out[k] * (double)lm->q8->row_bytes[k];
  if (o->init) {
    bool kept = lm->q8 != NULL;
    /* what the trainer does on return: the activations freed, the adapters merged (a Q8_0 base
     * made float first) */
    us__lm_acts_free(&acts);
    double c0 = cpu_seconds();
    if (lora && us__lm_lora_merge(lm, &err) != US_OK) {
      fprintf(stderr, "bench_lm_finetune: %s\n", err.msg);
      return 1;
    }
    printf(
        "{\"bench\":\"lm_finetune_base\",\"init\":\"%s\",\"base\":\"%s\","
        "\"rss_training_mb\":%.0f,\"rss_peak_training_mb\":%.0f,\"merge_cpu_sec\":%.3f,"
        "\"rss_peak_after_merge_mb\":%.0f}\n",
        o->init, kept ? "q8_0 kept" : "float", rss_train, rss_peak, cpu_seconds() - c0,
        status_mb("VmHWM"));
  }
  printf(
      "{\"bench\":\"lm_finetune\",\"mode\":\"%s\",\"rank\":%d,\"layers\":%d,\"dim\":%d,"
      "\"heads\":%d,\"kv_heads\":%d,\"hidden\":%d,\"vocab\":%d,\"context\":%d,\"batch\":%d,"
      "\"params\":%zu,\"trained_params\":%zu,\"threads\":%d,\"steps\":%d,"
      "\"step_wall_sec\":%.3f,\"step_cpu_sec\":%.3f,\"tokens_per_wall_sec\":%.1f,"
      "\"tokens_per_cpu_sec\":%.1f,\"weights_mb\":%.0f,\"training_state_mb\":%.0f,"
      "\"blas_core\":\"%s\",\"loss\":%.3f}\n",
      lora ? "lora" : "full", lora ? o->rank : 0, o->layers, o->dim, o->heads, o->kv_heads,
      o->hidden, V, T, B, us_lm_param_count(&lm->config), n_train, o->threads, reps, w, c, N / w,
      N / c, weight_bytes / 1e6, train_bytes / 1e6, us_blas_core(), loss);
  fflush(stdout);
  free(tok);
  free(tgt);
  free(pos);
  free(doc);
  free(mask);
  free(grad);
  free(m);
  free(v);
  us__lm_acts_free(&acts);
  us_lm_free(lm);
  return 0;
}

int main(int argc, char **argv) {
  opts o;
  if (parse(argc, argv, &o) != 0) return 2;
  us_blas_set_threads(o.threads);
  if (o.write_gguf) return write_gguf(&o);
  int rc = 0;
  if (strcmp(o.mode, "lora") != 0) rc |= run(&o, 0);
  if (strcmp(o.mode, "full") != 0) rc |= run(&o, 1);
  return rc;
}
