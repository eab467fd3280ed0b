/* Training the classifier: vocabulary and feature rows are computed once before the first
 * epoch, then SGD with a linearly decaying learning rate (fastText's schedule) runs over
 * shuffled examples, Hogwild across threads, with early stopping on the validation slice.
 * Nothing is allocated inside the epoch loop. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "student/blas.h"
#include "student/classifier_int.h"

/* Feature rows of a set of examples: rows of example i are rows[off[i]..off[i+1]). */
typedef struct example_rows {
  int32_t *rows;
  int64_t *off;
  int max_rows;
} example_rows;

typedef struct row_builder {
  us_classifier *m;
  example_rows *er;
  int64_t len, cap;
  bool add_keys;            /* train: new keys get rows; valid: unknown keys are dropped */
  const us__keymap *counts; /* n-gram key -> occurrences in train; NULL: no pruning */
  bool failed;
} row_builder;

static void count_feature(void *user, uint32_t key) {
  (void)key;
  (*(int64_t *)user)++;
}

typedef struct key_counter {
  us__keymap *km;
  uint32_t n_words;
  bool failed;
} key_counter;

static void count_key(void *user, uint32_t key) {
  key_counter *c = user;
  if (key >= c->n_words && us__keymap_add(c->km, key, 1) == -2) c->failed = true;
}

static void add_feature(void *user, uint32_t key) {
  row_builder *b = user;
  us_classifier *m = b->m;
  int32_t row = us__keymap_get(&m->row_of, key);
  if (row < 0 && b->add_keys) {
    if (b->counts && key >= (uint32_t)m->vocab.n_words &&
        us__keymap_get(b->counts, key) < m->p.min_count_ngram)
      return; /* a rare n-gram: no row, dropped like an unseen one */
    row = us__keymap_put(&m->row_of, key, m->n_rows);
    if (row == -2) { /* cannot happen: the map was sized from the feature count */
      b->failed = true;
      return;
    }
    m->row_keys[m->n_rows++] = key;
  }
  if (row < 0) return;
  if (b->len < b->cap) b->er->rows[b->len] = row;
  b->len++;
}

static us_status build_rows(us_classifier *m, const us_example *ex, size_t n, bool add_keys,
                            const us__keymap *counts, int64_t total, example_rows *er,
                            us_err *err) {
  er->rows = malloc((size_t)(total > 0 ? total : 1) * sizeof *er->rows);
  er->off = malloc((n + 1) * sizeof *er->off);
  if (!er->rows || !er->off) return us_err_set(err, US_ERR_NOMEM, "out of memory for features");
  row_builder b = {m, er, 0, total, add_keys, counts, false};
  er->max_rows = 1;
  for (size_t i = 0; i < n; i++) {
    er->off[i] = b.len;
    us__features(&m->p, &m->vocab, ex[i].text, add_feature, &b);
    if (b.failed || b.len > total)
      return us_err_set(err, US_ERR_INTERNAL, "feature map overflow at example %zu", i);
    if (b.len - er->off[i] > er->max_rows) er->max_rows = (int)(b.len - er->off[i]);
  }
  er->off[n] = b.len;
  return US_OK;
}

/* ---- one epoch, split across threads (Hogwild) ---- */

typedef struct worker {
  us_classifier *m;
  const us_example *ex;
  const example_rows *er;
  const size_t *order;
  const float *weight; /* (n_labels) learning-rate factor of each label, NULL: all 1 */
  size_t n, start, step;
  int epoch;
  us_classifier_scratch *s;
  float *q;
  us_rng rng;
  double loss;
} worker;

static void *run_worker(void *arg) {
  worker *w = arg;
  us_classifier *m = w->m;
  const us_classifier_params *p = &m->p;
  double total_steps = (double)p->epochs * (double)w->n;
  w->loss = 0;
  for (size_t i = w->start; i < w->n; i += w->step) {
    size_t e = w->order[i];
    const int32_t *rows = w->er->rows + w->er->off[e];
    int n = (int)(w->er->off[e + 1] - w->er->off[e]);
    double progress = ((double)w->epoch * (double)w->n + (double)i) / total_steps;
    float lr = (float)(p->lr * (1.0 - progress));
    if (w->weight) lr *= w->weight[w->ex[e].label];
    us__classifier_target(p, m->n_labels, &w->ex[e], w->q);
    us__classifier_forward(m, w->s, rows, n, &w->rng, p->dropout);
    w->loss += us__classifier_loss(m, w->s, w->q);
    us__classifier_backward(m, w->s, rows, n, w->q, lr, NULL, NULL);
  }
  return NULL;
}

static us_status run_epoch(worker *workers, int threads, us_err *err) {
  if (threads == 1) {
    run_worker(&workers[0]);
    return US_OK;
  }
  pthread_t tid[256];
  int started = 0;
  for (; started < threads; started++)
    if (pthread_create(&tid[started], NULL, run_worker, &workers[started]) != 0) break;
  for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
  if (started < threads)
    return us_err_set(err, US_ERR_INTERNAL, "cannot start training thread %d", started);
  return US_OK;
}

/* Index of the largest entry of q (n >= 1): the predicted label of probabilities, the teacher's
 * answer of a target. */
static int most_probable(const float *q, int n) {
  int best = 0;
  for (int k = 1; k < n; k++)
    if (q[k] > q[best]) best = k;
  return best;
}

static void evaluate(us_classifier *m, us_classifier_scratch *s, const us_example *ex,
                     const example_rows *er, size_t n, float *q, double *loss, double *acc) {
  double total = 0;
  size_t right = 0;
  for (size_t i = 0; i < n; i++) {
    us__classifier_forward(m, s, er->rows + er->off[i], (int)(er->off[i + 1] - er->off[i]), NULL,
                           0);
    us_example hard = ex[i];
    us__classifier_target(&m->p, m->n_labels, &hard, q);
    total += us__classifier_loss(m, s, q);
    right += most_probable(s->probs, m->n_labels) == most_probable(q, m->n_labels);
  }
  *loss = n ? total / (double)n : 0;
  *acc = n ? (double)right / (double)n : 0;
}

/* ---- calibration ---- */

/* Multiplies the output layer (W then b) by beta: the temperature folded into the weights. */
static void scale_output(us_classifier *m, double beta) {
  int last = m->n_layers - 1;
  float *w = m->dense + m->dense_offset[last];
  int64_t count = (int64_t)m->layer_out[last] * (m->layer_in[last] + 1);
  for (int64_t i = 0; i < count; i++) w[i] *= (float)beta;
}

/* Mean negative log-likelihood of the wanted labels under softmax(beta * logp). */
static double scaled_nll(const float *logp, const int *want, size_t n, int L, double beta) {
  double total = 0;
  for (size_t i = 0; i < n; i++) {
    const float *z = logp + i * (size_t)L;
    double mx = -INFINITY, sum = 0;
    for (int k = 0; k < L; k++) mx = fmax(mx, beta * z[k]);
    for (int k = 0; k < L; k++) sum += exp(beta * z[k] - mx);
    total += mx + log(sum) - beta * z[want[i]];
  }
  return n ? total / (double)n : 0;
}

/* Temperature scaling (Guo et al., 2017): label smoothing and early stopping leave the softmax
 * under- or over-confident. One factor beta = 1/T on the output logits is fitted on the
 * validation set by minimising the negative log-likelihood of the teacher's answers (convex in
 * beta: golden-section search on [1/20, 20]) and folded into the output layer's weights and
 * bias, so the argmax, the accuracy and the file format stay as they are. Log-probabilities
 * are logits up to a per-example constant, which the softmax ignores. Returns beta (1 when
 * there is nothing to fit). */
static double calibrate(us_classifier *m, us_classifier_scratch *s, const us_example *ex,
                        const example_rows *er, size_t n, float *q) {
  int L = m->n_labels;
  if (n == 0 || L < 2) return 1.0;
  float *logp = malloc(n * (size_t)L * sizeof *logp);
  int *want = malloc(n * sizeof *want);
  double beta = 1.0;
  if (!logp || !want) goto done; /* calibration is an improvement, not a requirement */
  for (size_t i = 0; i < n; i++) {
    us__classifier_forward(m, s, er->rows + er->off[i], (int)(er->off[i + 1] - er->off[i]), NULL,
                           0);
    us_example hard = ex[i];
    us__classifier_target(&m->p, L, &hard, q);
    want[i] = most_probable(q, L);
    for (int k = 0; k < L; k++) logp[i * (size_t)L + k] = logf(fmaxf(s->probs[k], 1e-30f));
  }
  double lo = 0.05, hi = 20.0, g = (sqrt(5.0) - 1) / 2;
  double a = hi - g * (hi - lo), b = lo + g * (hi - lo);
  double fa = scaled_nll(logp, want, n, L, a), fb = scaled_nll(logp, want, n, L, b);
  for (int it = 0; it < 60; it++) {
    if (fa <= fb) {
      hi = b, b = a, fb = fa;
      a = hi - g * (hi - lo);
      fa = scaled_nll(logp, want, n, L, a);
    } else {
      lo = a, a = b, fa = fb;
      b = lo + g * (hi - lo);
      fb = scaled_nll(logp, want, n, L, b);
    }
  }
  beta = 0.5 * (lo + hi);
  if (!(scaled_nll(logp, want, n, L, beta) < scaled_nll(logp, want, n, L, 1.0))) beta = 1.0;
  scale_output(m, beta);
done:
  free(logp);
  free(want);
  return beta;
}

/* ---- setup ---- */

static us_status check_examples(const us_example *ex, size_t n, int n_labels, const char *what,
                                us_err *err) {
  for (size_t i = 0; i < n; i++) {
    if (!ex[i].text) return us_err_set(err, US_ERR_INPUT, "%s example %zu has no text", what, i);
    if (!ex[i].soft && (ex[i].label < 0 || ex[i].label >= n_labels))
      return us_err_set(err, US_ERR_INPUT, "%s example %zu: label %d is not in 0..%d", what, i,
                        ex[i].label, n_labels - 1);
    if (ex[i].soft && (ex[i].label < 0 || ex[i].label >= n_labels))
      return us_err_set(err, US_ERR_INPUT, "%s example %zu: label %d is not in 0..%d", what, i,
                        ex[i].label, n_labels - 1);
  }
  return US_OK;
}

static us_status setup_model(const us_classifier_params *p, char *const *labels, int n_labels,
                             const us_example *train, size_t n_train, us_classifier **out,
                             us_err *err) {
  us_classifier *m = calloc(1, sizeof *m);
  const char **texts = malloc((n_train + 1) * sizeof *texts);
  us_status st = US_ERR_NOMEM;
  if (!m || !texts) goto nomem;
  m->p = *p;
  m->n_labels = n_labels;
  m->labels = calloc((size_t)n_labels, sizeof *m->labels);
  if (!m->labels) goto nomem;
  for (int i = 0; i < n_labels; i++)
    if (!(m->labels[i] = us_strdup(labels[i]))) goto nomem;
  for (size_t i = 0; i < n_train; i++) texts[i] = train[i].text;
  /* no texts: the vocabulary comes from a feature cache */
  if (n_train && (st = us__vocab_build_with(&m->vocab, p, texts, n_train, err)) != US_OK) goto fail;
  free(texts);
  *out = m;
  return US_OK;
nomem:
  st = us_err_set(err, US_ERR_NOMEM, "out of memory setting up the classifier");
fail:
  free(texts);
  us_classifier_free(m);
  return st;
}

static void init_weights(us_classifier *m, us_rng *rng) {
  /* embeddings uniform in +-1/dim and a zero output layer (fastText's start); hidden layers
   * Glorot-uniform so ReLUs start alive */
  float a = 1.0f / (float)m->p.dim;
  for (int64_t i = 0; i < (int64_t)m->n_rows * m->p.dim; i++)
    m->emb[i] = a * (2.0f * us_rng_uniformf(rng) - 1.0f);
  for (int l = 0; l < m->n_layers - 1; l++) {
    int in = m->layer_in[l], out = m->layer_out[l];
    float g = sqrtf(6.0f / (float)(in + out));
    float *W = m->dense + m->dense_offset[l];
    for (int64_t i = 0; i < (int64_t)in * out; i++) W[i] = g * (2.0f * us_rng_uniformf(rng) - 1.0f);
  }
}

typedef struct train_state {
  example_rows tr, va;
  size_t *order;
  worker *workers;
  float *best_emb, *best_dense, *q;
  float *weight; /* (n_labels) class weights, NULL when p->class_weight is 0 */
  us_classifier_scratch *eval_scratch;
  bool borrowed_rows; /* tr and va belong to a feature cache */
} train_state;

static void free_state(train_state *t, int threads) {
  if (!t->borrowed_rows) {
    free(t->tr.rows);
    free(t->tr.off);
    free(t->va.rows);
    free(t->va.off);
  }
  free(t->order);
  for (int i = 0; t->workers && i < threads; i++) {
    us_classifier_scratch_free(t->workers[i].s);
    free(t->workers[i].q);
  }
  free(t->workers);
  free(t->best_emb);
  free(t->best_dense);
  free(t->q);
  free(t->weight);
  us_classifier_scratch_free(t->eval_scratch);
}

/* Class weighting for imbalanced labels: label k's examples step the weights by
 * (n / (n_labels * count_k))^power times the learning rate (1 for every label when they are
 * balanced), capped at 10 so that a label seen once cannot blow the step up; labels absent from
 * train get weight 1. NULL when power is 0 (or out of memory: weighting is an option, not a
 * requirement). */
static float *class_weights(const us_example *train, size_t n, int n_labels, double power) {
  if (power <= 0) return NULL;
  float *w = calloc((size_t)n_labels, sizeof *w);
  if (!w) return NULL;
  for (size_t i = 0; i < n; i++) w[train[i].label] += 1;
  for (int k = 0; k < n_labels; k++)
    w[k] = w[k] > 0 ? (float)fmin(10.0, pow((double)n / (n_labels * (double)w[k]), power)) : 1;
  return w;
}

/* Feature rows of train and valid (after the vocabulary): row keys, the key map, the rows. */
static us_status prepare_features(us_classifier *m, train_state *t, const us_example *train,
                                  size_t n_train, const us_example *valid, size_t n_valid,
                                  us_err *err) {
  int64_t total_train = 0, total_valid = 0;
  for (size_t i = 0; i < n_train; i++)
    us__features(&m->p, &m->vocab, train[i].text, count_feature, &total_train);
  for (size_t i = 0; i < n_valid; i++)
    us__features(&m->p, &m->vocab, valid[i].text, count_feature, &total_valid);
  if (total_train >= INT32_MAX)
    return us_err_set(err, US_ERR_INPUT, "train set too large: %lld features",
                      (long long)total_train);
  us_status st = us__keymap_init(&m->row_of, (uint32_t)total_train + 1, err);
  if (st != US_OK) return st;
  m->row_keys = malloc((size_t)(total_train + 1) * sizeof *m->row_keys);
  if (!m->row_keys) return us_err_set(err, US_ERR_NOMEM, "out of memory for feature keys");
  us__keymap counts = {0};
  if (m->p.min_count_ngram > 1) { /* occurrences of every n-gram key, for pruning */
    if ((st = us__keymap_init(&counts, (uint32_t)total_train + 1, err)) != US_OK) return st;
    key_counter kc = {&counts, (uint32_t)m->vocab.n_words, false};
    for (size_t i = 0; i < n_train; i++)
      us__features(&m->p, &m->vocab, train[i].text, count_key, &kc);
    if (kc.failed) {
      us__keymap_free(&counts);
      return us_err_set(err, US_ERR_INTERNAL, "n-gram count map overflow");
    }
  }
  st = build_rows(m, train, n_train, true, counts.keys ? &counts : NULL, total_train, &t->tr, err);
  us__keymap_free(&counts);
  if (st != US_OK) return st;
  if ((st = build_rows(m, valid, n_valid, false, NULL, total_valid, &t->va, err)) != US_OK)
    return st;
  uint32_t *keys = realloc(m->row_keys, (size_t)(m->n_rows + 1) * sizeof *keys);
  if (keys) m->row_keys = keys;
  return US_OK;
}

/* Weights, and every buffer the epochs use (after the features). */
static us_status prepare_buffers(us_classifier *m, train_state *t, const us_example *train,
                                 size_t n_train, us_err *err) {
  us_status st;
  if ((st = us__classifier_alloc(m, err)) != US_OK) return st;
  int threads = m->p.threads, cap = t->tr.max_rows;
  t->order = malloc(n_train * sizeof *t->order);
  t->workers = calloc((size_t)threads, sizeof *t->workers);
  t->best_emb = malloc(((size_t)m->n_rows * m->p.dim + 1) * sizeof *t->best_emb);
  t->best_dense = malloc((size_t)m->dense_count * sizeof *t->best_dense);
  t->q = malloc((size_t)m->n_labels * sizeof *t->q);
  t->eval_scratch = us__scratch_new(m, 1);
  if (!t->order || !t->workers || !t->best_emb || !t->best_dense || !t->q || !t->eval_scratch)
    return us_err_set(err, US_ERR_NOMEM, "out of memory for training buffers");
  for (int i = 0; i < threads; i++) {
    t->workers[i].s = us__scratch_new(m, cap);
    t->workers[i].q = malloc((size_t)m->n_labels * sizeof(float));
    if (!t->workers[i].s || !t->workers[i].q)
      return us_err_set(err, US_ERR_NOMEM, "out of memory for training buffers");
  }
  for (size_t i = 0; i < n_train; i++) t->order[i] = i;
  t->weight = class_weights(train, n_train, m->n_labels, m->p.class_weight);
  return US_OK;
}

/* ---- the feature cache (the search's candidates on one fold) ---- */

#define CACHE_SLOTS 2 /* the best setting's features and one alternative's */

typedef struct cache_slot {
  bool filled;
  uint64_t used;
  us_classifier_params key; /* the feature settings (same_features) */
  char **words;             /* the vocabulary, id order */
  int n_words, n_rows;
  uint32_t *row_keys; /* (n_rows) */
  example_rows tr, va;
} cache_slot;

struct us__feature_cache {
  cache_slot slot[CACHE_SLOTS];
  uint64_t clock;
};

us__feature_cache *us__feature_cache_new(void) {
  return calloc(1, sizeof(us__feature_cache));
}

static void slot_clear(cache_slot *c) {
  for (int i = 0; c->words && i < c->n_words; i++) free(c->words[i]);
  free(c->words);
  free(c->row_keys);
  free(c->tr.rows);
  free(c->tr.off);
  free(c->va.rows);
  free(c->va.off);
  memset(c, 0, sizeof *c);
}

void us__feature_cache_free(us__feature_cache *c) {
  if (!c) return;
  for (int i = 0; i < CACHE_SLOTS; i++) slot_clear(&c->slot[i]);
  free(c);
}

/* The settings the vocabulary, row keys and rows depend on. */
static bool same_features(const us_classifier_params *a, const us_classifier_params *b) {
  return a->lowercase == b->lowercase && a->punctuation == b->punctuation &&
         a->fold_digits == b->fold_digits && a->fold_urls == b->fold_urls &&
         a->word_ngrams == b->word_ngrams && a->minn == b->minn && a->maxn == b->maxn &&
         a->buckets == b->buckets && a->min_count == b->min_count &&
         a->min_count_ngram == b->min_count_ngram;
}

static cache_slot *cache_find(us__feature_cache *c, const us_classifier_params *p) {
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (c->slot[i].filled && same_features(&c->slot[i].key, p)) {
      c->slot[i].used = ++c->clock;
      return &c->slot[i];
    }
  return NULL;
}

/* The vocabulary, row keys and key map of a cached slot into m (after labels); t borrows its
 * rows. */
static us_status setup_from_slot(us_classifier *m, train_state *t, const cache_slot *c,
                                 us_err *err) {
  us_status st = us__vocab_from_words(&m->vocab, c->words, c->n_words, err);
  if (st != US_OK) return st;
  if ((st = us__keymap_init(&m->row_of, (uint32_t)c->n_rows + 1, err)) != US_OK) return st;
  m->row_keys = malloc(((size_t)c->n_rows + 1) * sizeof *m->row_keys);
  if (!m->row_keys) return us_err_set(err, US_ERR_NOMEM, "out of memory for feature keys");
  memcpy(m->row_keys, c->row_keys, (size_t)c->n_rows * sizeof *m->row_keys);
  for (int i = 0; i < c->n_rows; i++) us__keymap_put(&m->row_of, c->row_keys[i], i);
  m->n_rows = c->n_rows;
  t->tr = c->tr;
  t->va = c->va;
  t->borrowed_rows = true;
  return US_OK;
}

/* Keeps m's features and t's rows in the least recently used slot (t then borrows them). Out of
 * memory only means nothing is kept. */
static void cache_store(us__feature_cache *c, const us_classifier *m, train_state *t) {
  cache_slot *s = &c->slot[0];
  for (int i = 1; i < CACHE_SLOTS; i++)
    if (c->slot[i].used < s->used) s = &c->slot[i];
  slot_clear(s);
  s->words = calloc((size_t)m->vocab.n_words + 1, sizeof *s->words);
  s->row_keys = malloc(((size_t)m->n_rows + 1) * sizeof *s->row_keys);
  if (!s->words || !s->row_keys) goto fail;
  for (s->n_words = 0; s->n_words < m->vocab.n_words; s->n_words++)
    if (!(s->words[s->n_words] = us_strdup(m->vocab.words[s->n_words]))) goto fail;
  memcpy(s->row_keys, m->row_keys, (size_t)m->n_rows * sizeof *s->row_keys);
  s->n_rows = m->n_rows;
  s->key = m->p;
  s->tr = t->tr;
  s->va = t->va;
  t->borrowed_rows = true;
  s->filled = true;
  s->used = ++c->clock;
  return;
fail:
  slot_clear(s);
}

/* Once per epoch, before the epoch is reported or kept: a learning rate too high for the data
 * makes the weights overflow, and from then on every loss, probability and weight is NaN. Stops
 * with a message that starts with the field to change (the config names its key there). */
static us_status check_divergence(const us_classifier *m, const us_classifier_params *p,
                                  const us_epoch_info *info, us_err *err) {
  char where[128];
  bool loss_ok = isfinite(info->train_loss);
  if (loss_ok && us__classifier_weights_finite(m, where, sizeof where)) return US_OK;
  us_classifier_params d;
  us_classifier_params_defaults(&d);
  return us_err_set(err, US_ERR_CONFIG,
                    "lr: training diverged in epoch %d (%s): a learning rate of %g is too high "
                    "for this data; lower it (to %g, say) and train again",
                    info->epoch, loss_ok ? where : "the training loss is not a number", p->lr,
                    p->lr > d.lr ? d.lr : p->lr / 10);
}

static void shuffle(size_t *order, size_t n, us_rng *rng) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)us_rng_below(rng, i);
    size_t tmp = order[i - 1];
    order[i - 1] = order[j];
    order[j] = tmp;
  }
}

/* The epochs of one training from the weights in m: shuffled SGD, early stopping on valid
 * (patience), the best epoch's weights left in m. run (0 for a single training) varies the
 * workers' dropout streams between averaged runs. */
static us_status run_epochs(us_classifier *m, train_state *t, const us_example *train,
                            size_t n_train, const us_example *valid, size_t n_valid, us_rng *rng,
                            uint64_t run, us_epoch_fn on_epoch, void *user, int *best_epoch_out,
                            double *best_acc_out, us_err *err) {
  const us_classifier_params *p = &m->p;
  size_t emb_bytes = (size_t)m->n_rows * m->p.dim * sizeof(float);
  size_t dense_bytes = (size_t)m->dense_count * sizeof(float);
  double best_acc = -1, best_loss = INFINITY;
  int since_best = 0, best_epoch = 0;
  us_status st = US_OK;
  for (int epoch = 0; epoch < p->epochs; epoch++) {
    double t0 = us_now();
    shuffle(t->order, n_train, rng);
    for (int i = 0; i < p->threads; i++) {
      worker *w = &t->workers[i];
      w->m = m;
      w->ex = train;
      w->er = &t->tr;
      w->order = t->order;
      w->weight = t->weight;
      w->n = n_train;
      w->start = (size_t)i;
      w->step = (size_t)p->threads;
      w->epoch = epoch;
      us_rng_seed(&w->rng, p->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(epoch * 256 + i + 1)) ^
                               (0xe7037ed1a0b428dbull * run));
    }
    if ((st = run_epoch(t->workers, p->threads, err)) != US_OK) return st;
    us_epoch_info info = {.epoch = epoch + 1};
    for (int i = 0; i < p->threads; i++) info.train_loss += t->workers[i].loss;
    info.train_loss /= (double)n_train;
    info.lr = p->lr * (1.0 - (double)(epoch + 1) / p->epochs);
    if ((st = check_divergence(m, p, &info, err)) != US_OK) return st;
    evaluate(m, t->eval_scratch, valid, &t->va, n_valid, t->q, &info.valid_loss, &info.valid_acc);
    info.seconds = us_now() - t0;
    if (on_epoch) on_epoch(user, &info);
    bool better = n_valid == 0 || info.valid_acc > best_acc ||
                  (info.valid_acc == best_acc && info.valid_loss < best_loss);
    if (better) {
      best_acc = info.valid_acc;
      best_loss = info.valid_loss;
      best_epoch = epoch + 1;
      since_best = 0;
      if (emb_bytes) memcpy(t->best_emb, m->emb, emb_bytes);
      memcpy(t->best_dense, m->dense, dense_bytes);
    } else if (++since_best > p->patience) {
      break;
    }
  }
  if (emb_bytes) memcpy(m->emb, t->best_emb, emb_bytes);
  memcpy(m->dense, t->best_dense, dense_bytes);
  *best_epoch_out = best_epoch;
  *best_acc_out = best_acc;
  return US_OK;
}

/* ---- the naive Bayes term (classifier_nb.c) ---- */

/* After training and calibration: fits the ratio table on train (never on valid), then its
 * weight w with the network's factor a on valid, or takes w from x->fixed_nb_weight (1 without
 * either). With p->nb the model keeps the table and a is folded into its output layer (*beta,
 * *acc follow); with only x->nb_probe the model is left as it was and x->nb_* say what the term
 * would have given. */
static us_status naive_bayes(us_classifier *m, train_state *t, const us_example *train,
                             size_t n_train, const us_example *valid, size_t n_valid,
                             us__train_extra *x, double *beta, double *acc, us_err *err) {
  us_status st = us__nb_fit(m, train, n_train, err);
  if (st != US_OK) return st;
  int L = m->n_labels;
  double a = 1.0, w = x && x->fixed_nb_weight > 0 ? x->fixed_nb_weight : 1.0;
  if (n_valid > 0 && L > 1 && !(x && x->fixed_nb_weight > 0)) {
    us_classifier_scratch *s = t->eval_scratch;
    float *logp = malloc(n_valid * (size_t)L * sizeof *logp);
    float *score = malloc(n_valid * (size_t)L * sizeof *score);
    int *want = malloc(n_valid * sizeof *want);
    if (!logp || !score || !want) {
      free(logp), free(score), free(want);
      return us_err_set(err, US_ERR_NOMEM, "out of memory weighing the naive Bayes term");
    }
    for (size_t i = 0; i < n_valid && st == US_OK; i++) {
      us__classifier_forward(m, s, t->va.rows + t->va.off[i],
                             (int)(t->va.off[i + 1] - t->va.off[i]), NULL, 0);
      us_example hard = valid[i];
      us__classifier_target(&m->p, L, &hard, t->q);
      want[i] = most_probable(t->q, L);
      for (int k = 0; k < L; k++) logp[i * (size_t)L + k] = logf(fmaxf(s->probs[k], 1e-30f));
      st = us__nb_score(m, s, valid[i].text, score + i * (size_t)L, err);
    }
    if (st == US_OK) {
      us__nb_fit_weights(logp, score, want, n_valid, L, m->p.calibrate, &a, &w);
      size_t right = 0;
      for (size_t i = 0; i < n_valid; i++) {
        const float *z = logp + i * (size_t)L, *sc = score + i * (size_t)L;
        int best = 0;
        for (int k = 1; k < L; k++)
          if (a * z[k] + w * sc[k] > a * z[best] + w * sc[best]) best = k;
        right += best == want[i];
      }
      if (x) {
        x->nb_acc = (double)right / (double)n_valid;
        x->nb_beta = *beta * a;
        x->nb_weight_found = w;
      }
    }
    free(logp), free(score), free(want);
    if (st != US_OK) return st;
  }
  if (!m->p.nb) { /* a probe: the model stays the network alone */
    us__nb_free(m);
    return US_OK;
  }
  if (a != 1.0) scale_output(m, a);
  *beta *= a;
  m->nb_weight = (float)w;
  if (x && n_valid > 0 && !(x->fixed_nb_weight > 0)) *acc = x->nb_acc;
  return US_OK;
}

us_status us_classifier_train(const us_classifier_params *p, char *const *labels, int n_labels,
                              const us_example *train, size_t n_train, const us_example *valid,
                              size_t n_valid, us_epoch_fn on_epoch, void *user, us_classifier **out,
                              us_err *err) {
  return us__classifier_train_ex(p, labels, n_labels, train, n_train, valid, n_valid, on_epoch,
                                 user, NULL, out, err);
}

us_status us__classifier_train_ex(const us_classifier_params *p, char *const *labels, int n_labels,
                                  const us_example *train, size_t n_train, const us_example *valid,
                                  size_t n_valid, us_epoch_fn on_epoch, void *user,
                                  us__train_extra *x, us_classifier **out, us_err *err) {
  *out = NULL;
  us_status st = us_classifier_params_check(p, err);
  if (st != US_OK) {
    us_err_prefix(err, "classifier");
    return st;
  }
  if (n_labels < 1 || !labels) return us_err_set(err, US_ERR_INPUT, "classifier: no labels");
  for (int i = 0; i < n_labels; i++)
    if (!labels[i]) return us_err_set(err, US_ERR_INPUT, "classifier: label %d is NULL", i);
  if (n_train == 0) return us_err_set(err, US_ERR_INPUT, "classifier: the train set is empty");
  if ((st = check_examples(train, n_train, n_labels, "train", err)) != US_OK) return st;
  if ((st = check_examples(valid, n_valid, n_labels, "validation", err)) != US_OK) return st;

  us_classifier *m = NULL;
  train_state t = {0};
  cache_slot *hit = x && x->cache ? cache_find(x->cache, p) : NULL;
  if ((st = setup_model(p, labels, n_labels, hit ? NULL : train, hit ? 0 : n_train, &m, err)) !=
      US_OK)
    return st;
  if (hit) {
    st = setup_from_slot(m, &t, hit, err);
  } else {
    st = prepare_features(m, &t, train, n_train, valid, n_valid, err);
    if (st == US_OK && x && x->cache) cache_store(x->cache, m, &t);
  }
  if (st == US_OK) st = prepare_buffers(m, &t, train, n_train, err);
  if (st != US_OK) goto fail;
  us_blas_set_threads(1); /* our threads are the parallelism; BLAS calls here are small */

  size_t emb_bytes = (size_t)m->n_rows * m->p.dim * sizeof(float);
  int runs = x && x->average_runs > 1 ? x->average_runs : 1, best_epoch = 0;
  double best_acc = -1;
  float *sum_emb = NULL, *sum_dense = NULL;
  if (runs > 1) {
    sum_emb = calloc((size_t)m->n_rows * m->p.dim + 1, sizeof *sum_emb);
    sum_dense = calloc((size_t)m->dense_count, sizeof *sum_dense);
    if (!sum_emb || !sum_dense) {
      st = us_err_set(err, US_ERR_NOMEM, "out of memory averaging %d trainings", runs);
      goto fail_runs;
    }
  }
  for (int r = 0; r < runs; r++) {
    us_rng rng;
    us_rng_seed(&rng, p->seed);
    init_weights(m, &rng); /* every run from the same start: their weights stay comparable */
    if (r > 0) us_rng_seed(&rng, p->seed ^ (0xa0761d6478bd642full * (uint64_t)r));
    st = run_epochs(m, &t, train, n_train, valid, n_valid, &rng, (uint64_t)r, on_epoch, user,
                    &best_epoch, &best_acc, err);
    if (st != US_OK) goto fail_runs;
    if (runs == 1) break;
    const float *e = m->emb;
    for (size_t i = 0; i < emb_bytes / sizeof(float); i++) sum_emb[i] += e[i];
    for (int64_t i = 0; i < m->dense_count; i++) sum_dense[i] += m->dense[i];
  }
  if (runs > 1) { /* the mean of the runs' weights */
    for (size_t i = 0; i < emb_bytes / sizeof(float); i++) m->emb[i] = sum_emb[i] / (float)runs;
    for (int64_t i = 0; i < m->dense_count; i++) m->dense[i] = sum_dense[i] / (float)runs;
  }
  free(sum_emb);
  free(sum_dense);
  double beta = 1.0;
  if (x && x->fixed_beta > 0) {
    beta = x->fixed_beta;
    if (beta != 1.0) scale_output(m, beta);
  } else if (p->calibrate) {
    beta = calibrate(m, t.eval_scratch, valid, &t.va, n_valid, t.q);
  }
  if (x) {
    x->plain_acc = n_valid ? best_acc : 0;
    x->plain_beta = beta;
  }
  if ((p->nb || (x && x->nb_probe)) &&
      (st = naive_bayes(m, &t, train, n_train, valid, n_valid, x, &beta, &best_acc, err)) != US_OK)
    goto fail;
  if (x) {
    x->best_epoch = best_epoch;
    x->best_acc = n_valid ? best_acc : 0;
    x->beta = beta;
  }
  free_state(&t, p->threads);
  if (p->quantize) us_classifier_quantize(m);
  *out = m;
  return US_OK;
fail_runs:
  free(sum_emb);
  free(sum_dense);
fail:
  free_state(&t, p->threads);
  us_classifier_free(m);
  return st;
}
