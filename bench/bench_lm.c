/* Benchmarks of the language-model student (never run by ctest; each prints one JSON line):
 *   bench_lm train [--dim D ...]   training tokens/s and model FLOPs utilisation against the
 *                                  throughput of OpenBLAS's own sgemm measured in the same run
 *   bench_lm gen [--dim D ...]     generation tokens/s with and without the KV cache
 *   bench_lm snips --train F --test F [...]  trains on JSONL {"prompt","answer"} (see
 *                                  bench/snips_to_jsonl.py), then exact match and slot-level F1 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/rng.h"
#include "student/blas.h"
#include "student/lm_int.h"

typedef struct opts {
  const char *train, *test, *out, *preset, *valid;
  int layers, dim, heads, context, batch, vocab, steps, threads, repeats, limit, warmup, tokens;
  double lr, min_lr, wd, dropout;
} opts;

static int parse(int argc, char **argv, opts *o) {
  *o = (opts){NULL, NULL, NULL, NULL, NULL, 4,  256,  4,  256, 8, 1024,
              10,   2,    3,    0,    -1,   64, 1e-3, -1, -1,  0};
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return fprintf(stderr, "bench_lm: %s needs a value\n", a), -1;
    i++;
    if (!strcmp(a, "--train"))
      o->train = v;
    else if (!strcmp(a, "--test"))
      o->test = v;
    else if (!strcmp(a, "--valid"))
      o->valid = v;
    else if (!strcmp(a, "--out"))
      o->out = v;
    else if (!strcmp(a, "--preset"))
      o->preset = v;
    else if (!strcmp(a, "--layers"))
      o->layers = atoi(v);
    else if (!strcmp(a, "--dim"))
      o->dim = atoi(v);
    else if (!strcmp(a, "--heads"))
      o->heads = atoi(v);
    else if (!strcmp(a, "--context"))
      o->context = atoi(v);
    else if (!strcmp(a, "--batch"))
      o->batch = atoi(v);
    else if (!strcmp(a, "--vocab"))
      o->vocab = atoi(v);
    else if (!strcmp(a, "--steps"))
      o->steps = atoi(v);
    else if (!strcmp(a, "--threads"))
      o->threads = atoi(v);
    else if (!strcmp(a, "--repeats"))
      o->repeats = atoi(v);
    else if (!strcmp(a, "--limit"))
      o->limit = atoi(v);
    else if (!strcmp(a, "--warmup"))
      o->warmup = atoi(v);
    else if (!strcmp(a, "--tokens"))
      o->tokens = atoi(v);
    else if (!strcmp(a, "--lr"))
      o->lr = atof(v);
    else if (!strcmp(a, "--min-lr"))
      o->min_lr = atof(v);
    else if (!strcmp(a, "--wd"))
      o->wd = atof(v);
    else if (!strcmp(a, "--dropout"))
      o->dropout = atof(v);
    else
      return fprintf(stderr, "bench_lm: unknown option %s\n", a), -1;
  }
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *x, int n) {
  qsort(x, (size_t)n, sizeof *x, cmp_double);
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* A model with random weights and no merges beyond what the vocab size asks (all bytes). */
static us_lm *random_model(const opts *o) {
  int n_merges = o->vocab - US_BPE_MIN_VOCAB;
  int32_t *pairs = malloc(sizeof(int32_t) * 2 * (size_t)(n_merges > 0 ? n_merges : 1));
  for (int m = 0; m < n_merges; m++) { /* any valid merge list: (m % 256, previous token) */
    pairs[2 * m] = m % 256;
    pairs[2 * m + 1] = m ? 255 + m : 'a';
  }
  us_bpe *bpe = NULL;
  us_err err;
  if (us_bpe_from_merges(pairs, n_merges, &bpe, &err) != US_OK) {
    fprintf(stderr, "bench_lm: %s\n", err.msg);
    exit(1);
  }
  free(pairs);
  us_lm_config c = {
      o->layers, o->dim, o->heads, o->context, us_bpe_vocab_size(bpe), us_lm_config_hidden(o->dim),
      0,         0,      0,        0};
  us_lm *lm = NULL;
  if (us_lm_new(&c, bpe, 1, &lm, &err) != US_OK) {
    fprintf(stderr, "bench_lm: %s\n", err.msg);
    exit(1);
  }
  return lm;
}

/* Matrix-product FLOPs of one training step (forward 1x, backward 2x), attention at full T x T
 * as computed. */
static double step_flops(const us_lm_config *c, int B, int T) {
  double C = c->dim, F = c->hidden, V = c->vocab, N = (double)B * T;
  double per_layer = 2.0 * N * (3 * C * C + C * C + 2 * F * C + F * C) + 2.0 * 2.0 * N * T * C;
  double fwd = c->layers * per_layer + 2.0 * N * V * C;
  return 3.0 * fwd;
}

/* Scratch for timing OpenBLAS sgemm alone on the model's largest product shape
 * (N x 2F x C, as in the SwiGLU projection). */
typedef struct sgemm_probe {
  float *a, *b, *c;
  int n, m, k;
} sgemm_probe;

static void probe_init(sgemm_probe *p, int n, int m, int k) {
  p->n = n;
  p->m = m;
  p->k = k;
  p->a = malloc(sizeof(float) * (size_t)n * k);
  p->b = malloc(sizeof(float) * (size_t)m * k);
  p->c = malloc(sizeof(float) * (size_t)n * m);
  us_rng r;
  us_rng_seed(&r, 3);
  for (size_t i = 0; i < (size_t)n * k; i++) p->a[i] = us_rng_uniformf(&r);
  for (size_t i = 0; i < (size_t)m * k; i++) p->b[i] = us_rng_uniformf(&r);
}

/* GFLOP/s of `calls` products (the machine is shared: probes interleave with training steps so
 * both see the same load). */
static double probe_run(sgemm_probe *p, int calls) {
  double t0 = us_now();
  for (int i = 0; i < calls; i++)
    us_blas_sgemm(false, true, p->n, p->m, p->k, 1.0f, p->a, p->k, p->b, p->k, 0.0f, p->c, p->m);
  return calls * 2.0 * p->n * p->m * p->k / (us_now() - t0) / 1e9;
}

static void probe_free(sgemm_probe *p) {
  free(p->a);
  free(p->b);
  free(p->c);
}

static int bench_train(const opts *o) {
  us_blas_set_threads(o->threads);
  us_lm *lm = random_model(o);
  int B = o->batch, T = o->context, N = B * T;
  us__lm_acts acts;
  us_err err;
  if (us__lm_acts_new(&lm->config, B, T, &acts, &err) != US_OK) {
    fprintf(stderr, "bench_lm: %s\n", err.msg);
    return 1;
  }
  int32_t *tok = malloc(sizeof(int32_t) * (size_t)N), *tgt = malloc(sizeof(int32_t) * (size_t)N);
  int32_t *pos = malloc(sizeof(int32_t) * (size_t)N), *doc = malloc(sizeof(int32_t) * (size_t)N);
  float *mask = malloc(sizeof(float) * (size_t)N), *grad = calloc(lm->n_params, sizeof(float));
  /* the same batch bench_lm_torch.py builds: token i = (i * 7919 + 13) mod V, one document per
   * row, loss on every position */
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
  us__lm_params_point(grad, &lm->config, &g);
  double times[64], rates[64], loss = 0.0, cpu = 0.0;
  int reps = o->steps < 64 ? o->steps : 64;
  sgemm_probe probe;
  probe_init(&probe, N, 2 * lm->config.hidden, lm->config.dim);
  /* sgemm calls of about one training step's FLOPs */
  int calls =
      (int)(step_flops(&lm->config, B, T) / (2.0 * N * 2 * lm->config.hidden * lm->config.dim)) + 1;
  for (int s = 0; s < reps + 1; s++) { /* step 0 warms up */
    double t0 = us_now(), c0 = us_cpu_time();
    loss = us__lm_forward(lm, &acts, &batch, B, T);
    memset(grad, 0, lm->n_params * sizeof(float));
    us__lm_backward(lm, &acts, &batch, B, T, &g);
    for (size_t i = 0; i < lm->n_params; i++) lm->block[i] -= 1e-4f * grad[i];
    if (s > 0) times[s - 1] = us_now() - t0;
    if (s > 0) cpu += us_cpu_time() - c0; /* CPU seconds of all threads: survives a busy machine */
    double rate = probe_run(&probe, calls);
    if (s > 0) rates[s - 1] = rate;
  }
  probe_free(&probe);
  double t = median(times, reps);
  double gflops = step_flops(&lm->config, B, T) / t / 1e9;
  double peak = median(rates, reps);
  printf(
      "{\"bench\":\"lm_train\",\"blas_core\":\"%s\",\"layers\":%d,\"dim\":%d,\"heads\":%d,"
      "\"context\":%d,"
      "\"batch\":%d,\"vocab\":%d,\"params\":%zu,\"threads\":%d,\"steps\":%d,"
      "\"step_sec_median\":%.4f,\"tokens_per_sec\":%.0f,\"model_gflops\":%.2f,"
      "\"sgemm_gflops\":%.2f,\"mfu_vs_sgemm\":%.3f,\"last_loss\":%.4f,"
      "\"tokens_per_cpu_sec\":%.0f}\n",
      us_blas_core(), o->layers, o->dim, o->heads, T, B, V, lm->n_params, o->threads, reps, t,
      N / t, gflops, peak, gflops / peak, loss, cpu > 0 ? (double)N * reps / cpu : 0.0);
  free(tok);
  free(tgt);
  free(pos);
  free(doc);
  free(mask);
  free(grad);
  us__lm_acts_free(&acts);
  us_lm_free(lm);
  return 0;
}

static int bench_gen(const opts *o) {
  us_blas_set_threads(o->threads);
  us_lm *lm = random_model(o);
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  gp.max_tokens = o->tokens;
  gp.temperature = 1.0f; /* random weights: sample so EOS does not stop it at once */
  double rate[2][32];
  int reps = o->repeats < 32 ? o->repeats : 32;
  for (int mode = 0; mode < 2; mode++)
    for (int r = 0; r < reps; r++) {
      gp.no_cache = mode == 1;
      gp.seed = (uint64_t)r + 1;
      char *ans = NULL;
      double lp;
      int n = 0;
      us_err err;
      double t0 = us_now();
      if (us_lm_generate(lm, "hello", &gp, &ans, &lp, &n, &err) != US_OK) {
        fprintf(stderr, "bench_lm: %s\n", err.msg);
        return 1;
      }
      rate[mode][r] = n / (us_now() - t0);
      free(ans);
    }
  double cached = median(rate[0], reps), uncached = median(rate[1], reps);
  printf(
      "{\"bench\":\"lm_generate\",\"blas_core\":\"%s\",\"layers\":%d,\"dim\":%d,\"context\":%d,"
      "\"params\":%zu,"
      "\"threads\":%d,\"max_tokens\":%d,\"tokens_per_sec_cached\":%.1f,"
      "\"tokens_per_sec_uncached\":%.1f,\"speedup\":%.2f}\n",
      us_blas_core(), o->layers, o->dim, o->context, lm->n_params, o->threads, o->tokens, cached,
      uncached, cached / uncached);
  us_lm_free(lm);
  return 0;
}

/* ---- snips: train, generate, exact match and slot F1 ---- */

typedef struct dataset {
  us_lm_example *ex;
  size_t n;
  char *text;
} dataset;

static int load_jsonl(const char *path, dataset *d) {
  size_t len = 0;
  us_err err;
  memset(d, 0, sizeof *d);
  if (us_read_file(path, 0, &d->text, &len, &err) != US_OK) {
    fprintf(stderr, "bench_lm: %s\n", err.msg);
    return -1;
  }
  size_t cap = 1024;
  d->ex = malloc(cap * sizeof *d->ex);
  for (char *line = strtok(d->text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *j = cJSON_Parse(line);
    cJSON *p = cJSON_GetObjectItem(j, "prompt"), *a = cJSON_GetObjectItem(j, "answer");
    if (!cJSON_IsString(p) || !cJSON_IsString(a)) {
      cJSON_Delete(j);
      continue;
    }
    if (d->n == cap) d->ex = realloc(d->ex, (cap *= 2) * sizeof *d->ex);
    d->ex[d->n].prompt = us_strdup(p->valuestring);
    d->ex[d->n].answer = us_strdup(a->valuestring);
    d->n++;
    cJSON_Delete(j);
  }
  return 0;
}

static void free_dataset(dataset *d) {
  for (size_t i = 0; i < d->n; i++) {
    free((char *)d->ex[i].prompt);
    free((char *)d->ex[i].answer);
  }
  free(d->ex);
  free(d->text);
}

/* Matching (key, value) string pairs between two JSON objects (a multiset match). */
static void slot_counts(const char *pred, const char *gold, int *n_pred, int *n_gold, int *n_match,
                        int *valid) {
  cJSON *p = cJSON_Parse(pred), *g = cJSON_Parse(gold);
  *valid = cJSON_IsObject(p);
  *n_pred = *n_gold = *n_match = 0;
  int used[64] = {0};
  cJSON *gi;
  cJSON_ArrayForEach(gi, g)(*n_gold)++;
  if (*valid) {
    cJSON *pi;
    cJSON_ArrayForEach(pi, p) {
      (*n_pred)++;
      int k = 0;
      cJSON_ArrayForEach(gi, g) {
        if (k < 64 && !used[k] && cJSON_IsString(pi) && cJSON_IsString(gi) &&
            !strcmp(pi->string, gi->string) && !strcmp(pi->valuestring, gi->valuestring)) {
          used[k] = 1;
          (*n_match)++;
          break;
        }
        k++;
      }
    }
  }
  cJSON_Delete(p);
  cJSON_Delete(g);
}

static int print_progress(const us_lm_progress *p, void *user) {
  (void)user;
  if (p->step % 50 == 0 || p->step == p->steps)
    fprintf(stderr, "step %ld/%ld loss %.4f lr %.2e %.0f tok/s eta %.0fs\n", p->step, p->steps,
            p->loss, p->lr, p->tokens_per_sec, p->eta_sec);
  return 0;
}

/* Prints the mean and largest example length in tokens (BOS prompt SEP answer EOS), so the
 * context can be chosen to fit. */
static void token_lengths(const us_lm *lm, const dataset *d) {
  long sum = 0, sum_answer = 0;
  int max = 0, max_answer = 0;
  for (size_t i = 0; i < d->n; i++) {
    int32_t *t = NULL;
    int np = 0, na = 0;
    us_err err;
    if (us_bpe_encode(lm->bpe, d->ex[i].prompt, strlen(d->ex[i].prompt), &t, &np, &err) != US_OK)
      return;
    free(t);
    t = NULL;
    if (us_bpe_encode(lm->bpe, d->ex[i].answer, strlen(d->ex[i].answer), &t, &na, &err) != US_OK)
      return;
    free(t);
    int len = np + na + 3;
    sum += len;
    sum_answer += na + 1;
    if (len > max) max = len;
    if (na + 1 > max_answer) max_answer = na + 1;
  }
  fprintf(stderr, "tokens per example: mean %.1f, max %d; answer+EOS mean %.1f, max %d\n",
          d->n ? (double)sum / (double)d->n : 0.0, max,
          d->n ? (double)sum_answer / (double)d->n : 0.0, max_answer);
}

static int bench_snips(const opts *o) {
  dataset tr, te, va = {0};
  if (!o->train || !o->test) return fprintf(stderr, "bench_lm snips: --train and --test\n"), 2;
  if (load_jsonl(o->train, &tr) != 0 || load_jsonl(o->test, &te) != 0) return 1;
  if (o->valid && load_jsonl(o->valid, &va) != 0) return 1;
  us_lm_train_params p;
  us_lm_train_params_defaults(&p);
  p.preset = o->preset;
  p.layers = o->layers;
  p.dim = o->dim;
  p.heads = o->heads;
  p.context = o->context;
  p.vocab_size = o->vocab;
  p.steps = o->steps;
  p.batch_size = o->batch;
  p.lr = o->lr;
  p.threads = o->threads;
  p.warmup_steps = o->warmup >= 0 ? o->warmup : o->steps / 20;
  if (o->min_lr >= 0) p.min_lr_fraction = o->min_lr;
  if (o->wd >= 0) p.weight_decay = o->wd;
  p.dropout = o->dropout;
  p.progress = print_progress;
  us_lm_train_info info;
  p.info = &info;
  p.valid = va.ex; /* --valid: early stopping and the best check's loss (student/lm_budget.c) */
  p.n_valid = va.n;
  us_lm *lm = NULL;
  us_err err;
  double t0 = us_now(), c0 = us_cpu_time();
  if (us_lm_train(&p, tr.ex, tr.n, &lm, &err) != US_OK) {
    fprintf(stderr, "bench_lm: %s\n", err.msg);
    return 1;
  }
  double train_sec = us_now() - t0, train_cpu = us_cpu_time() - c0;
  if (o->out && us_lm_save(lm, o->out, &err) != US_OK) fprintf(stderr, "bench_lm: %s\n", err.msg);
  token_lengths(lm, &tr);
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  size_t n_test = o->limit > 0 && (size_t)o->limit < te.n ? (size_t)o->limit : te.n;
  int exact = 0, valid = 0, tp = 0, np = 0, ng = 0, gen_tokens = 0;
  double gen_t0 = us_now();
  for (size_t i = 0; i < n_test; i++) {
    char *ans = NULL;
    double lp;
    int n = 0, a, b, c, v;
    if (us_lm_generate(lm, te.ex[i].prompt, &gp, &ans, &lp, &n, &err) != US_OK) {
      fprintf(stderr, "bench_lm: %s\n", err.msg);
      return 1;
    }
    gen_tokens += n;
    exact += strcmp(ans, te.ex[i].answer) == 0;
    slot_counts(ans, te.ex[i].answer, &a, &b, &c, &v);
    np += a;
    ng += b;
    tp += c;
    valid += v;
    free(ans);
  }
  double gen_sec = us_now() - gen_t0;
  double prec = np ? (double)tp / np : 0, rec = ng ? (double)tp / ng : 0;
  printf(
      "{\"bench\":\"lm_snips\",\"blas_core\":\"%s\",\"dropout\":%g,\"params\":%zu,\"layers\":%d,"
      "\"dim\":%d,\"context\":%d,"
      "\"vocab\":%d,\"steps\":%d,\"batch\":%d,\"train_examples\":%zu,\"train_sec\":%.1f,"
      "\"train_cpu_sec\":%.1f,\"test_examples\":%zu,\"exact_match\":%.4f,\"slot_precision\":%.4f,"
      "\"slot_recall\":%.4f,\"slot_f1\":%.4f,\"valid_json\":%.4f,\"gen_tokens_per_sec\":%.1f,"
      "\"lr\":%g,\"steps_done\":%ld,\"best_valid_loss\":%.4f,\"best_step\":%ld}\n",
      us_blas_core(), o->dropout, lm->n_params, lm->config.layers, lm->config.dim,
      lm->config.context, lm->config.vocab, o->steps, o->batch, tr.n, train_sec, train_cpu, n_test,
      (double)exact / n_test, prec, rec, prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0.0,
      (double)valid / n_test, gen_tokens / gen_sec, p.lr, info.steps_done, info.best_valid_loss,
      info.best_step);
  us_lm_free(lm);
  free_dataset(&va);
  free_dataset(&tr);
  free_dataset(&te);
  return 0;
}

int main(int argc, char **argv) {
  us_blas_reexec_for_kernels(argv); /* the same kernels as the understudy binary */
  opts o;
  if (argc < 2 || parse(argc, argv, &o) != 0) {
    fprintf(stderr,
            "usage: bench_lm train|gen|snips [--dim D --layers L --heads H --context T "
            "--batch B --vocab V --steps S --threads N --repeats R --tokens N]\n"
            "       bench_lm snips --train F.jsonl --test F.jsonl [--valid F.jsonl] [--preset P] "
            "[--lr X] "
            "[--warmup W] [--min-lr F] [--wd X] [--dropout P] [--limit N] [--out MODEL]\n");
    return 2;
  }
  if (!strcmp(argv[1], "train")) return bench_train(&o);
  if (!strcmp(argv[1], "gen")) return bench_gen(&o);
  if (!strcmp(argv[1], "snips")) return bench_snips(&o);
  fprintf(stderr, "bench_lm: unknown mode %s\n", argv[1]);
  return 2;
}
