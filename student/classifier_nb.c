/* The classifier's naive Bayes term (p.nb): Wang & Manning (2012)'s log-count ratios over
 * binarised word unigrams and bigrams, fitted on the train examples only, added to the
 * network's log-probabilities with a weight fitted on the validation slice. On short sentiment
 * and subjectivity texts a linear model over these ratios (NBSVM, MNB) beats the averaged
 * embeddings: the embedding bag squeezes tens of thousands of phrases through `dim` numbers and
 * SGD from a small train set, while the ratio is every phrase's own evidence, counted exactly.
 * Formula and storage: student/classifier_int.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "student/classifier_int.h"

us_classifier_params us__nb_feature_params(const us_classifier_params *p) {
  us_classifier_params q = *p;
  q.word_ngrams = 2;
  q.maxn = 0;
  return q;
}

void us__nb_free(us_classifier *m) {
  free(m->nb_keys);
  free(m->nb_ratio);
  us__keymap_free(&m->nb_of);
  m->nb_keys = NULL;
  m->nb_ratio = NULL;
  m->n_nb = 0;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* ---- fitting ---- */

typedef struct key_list {
  uint32_t *keys;
  int n, cap;
  bool failed;
} key_list;

static void count_one(void *user, uint32_t key) {
  (void)key;
  (*(int64_t *)user)++;
}

static void push_key(void *user, uint32_t key) {
  key_list *l = user;
  if (l->n == l->cap) {
    int cap = l->cap ? 2 * l->cap : 64;
    uint32_t *k = realloc(l->keys, (size_t)cap * sizeof *k);
    if (!k) {
      l->failed = true;
      return;
    }
    l->keys = k;
    l->cap = cap;
  }
  l->keys[l->n++] = key;
}

/* Sorts keys[0..n) and drops repeats: a text counts a feature once (binarised). */
static int unique_u32(uint32_t *keys, int n) {
  qsort(keys, (size_t)n, sizeof *keys, cmp_u32);
  int u = 0;
  for (int i = 0; i < n; i++)
    if (u == 0 || keys[i] != keys[u - 1]) keys[u++] = keys[i];
  return u;
}

/* The ratios in place of the counts: count[f][c] (texts of label c holding f) -> r_c(f). */
static void counts_to_ratios(float *count, int F, int L, const size_t *examples) {
  double *class_total = calloc((size_t)L, sizeof *class_total), all = 0;
  if (!class_total) return; /* the caller checked a larger allocation; cannot happen here */
  for (int f = 0; f < F; f++)
    for (int c = 0; c < L; c++) class_total[c] += count[(size_t)f * L + c];
  for (int c = 0; c < L; c++) all += class_total[c];
  double a = US__NB_ALPHA;
  for (int f = 0; f < F; f++) {
    float *row = count + (size_t)f * L;
    double total = 0;
    for (int c = 0; c < L; c++) total += row[c];
    for (int c = 0; c < L; c++) {
      if (examples[c] == 0) { /* one-vs-rest means nothing for a label never seen */
        row[c] = 0;
        continue;
      }
      double in = a + row[c], out = a + total - row[c];
      double in_norm = a * F + class_total[c], out_norm = a * F + all - class_total[c];
      row[c] = (float)(log(in / in_norm) - log(out / out_norm));
    }
  }
  free(class_total);
}

us_status us__nb_fit(us_classifier *m, const us_example *train, size_t n, us_err *err) {
  us__nb_free(m);
  us_classifier_params q = us__nb_feature_params(&m->p);
  int L = m->n_labels;
  int64_t total = 0;
  for (size_t i = 0; i < n; i++) us__features(&q, &m->vocab, train[i].text, count_one, &total);
  if (total >= INT32_MAX)
    return us_err_set(err, US_ERR_INPUT,
                      "train set too large for the naive Bayes term: %lld "
                      "features",
                      (long long)total);
  int32_t *rows = malloc((size_t)(total + 1) * sizeof *rows); /* each text's distinct rows */
  int64_t *off = malloc((n + 1) * sizeof *off);
  size_t *examples = calloc((size_t)L, sizeof *examples);
  key_list l = {0};
  us_status st = us__keymap_init(&m->nb_of, (uint32_t)total + 1, err);
  m->nb_keys = malloc((size_t)(total + 1) * sizeof *m->nb_keys);
  if (st != US_OK) goto fail;
  if (!rows || !off || !examples || !m->nb_keys) goto nomem;
  int64_t len = 0;
  for (size_t i = 0; i < n; i++) {
    off[i] = len;
    l.n = 0;
    us__features(&q, &m->vocab, train[i].text, push_key, &l);
    if (l.failed) goto nomem;
    int u = unique_u32(l.keys, l.n);
    for (int j = 0; j < u; j++) {
      int32_t row = us__keymap_put(&m->nb_of, l.keys[j], m->n_nb);
      if (row == m->n_nb) m->nb_keys[m->n_nb++] = l.keys[j];
      rows[len++] = row; /* never -2: the map was sized from the feature count */
    }
    examples[train[i].label]++;
  }
  off[n] = len;
  m->nb_ratio = calloc((size_t)m->n_nb * L + 1, sizeof *m->nb_ratio);
  if (!m->nb_ratio) goto nomem;
  for (size_t i = 0; i < n; i++)
    for (int64_t j = off[i]; j < off[i + 1]; j++)
      m->nb_ratio[(size_t)rows[j] * L + train[i].label] += 1;
  counts_to_ratios(m->nb_ratio, m->n_nb, L, examples);
  uint32_t *keys = realloc(m->nb_keys, ((size_t)m->n_nb + 1) * sizeof *keys);
  if (keys) m->nb_keys = keys;
  goto done;
nomem:
  st = us_err_set(err, US_ERR_NOMEM, "out of memory fitting the naive Bayes term (%lld features)",
                  (long long)total);
fail:
  us__nb_free(m);
done:
  free(l.keys);
  free(rows);
  free(off);
  free(examples);
  return st;
}

/* ---- scoring ---- */

typedef struct row_list {
  const us_classifier *m;
  us_classifier_scratch *s;
  int total;
} row_list;

static void collect_nb_row(void *user, uint32_t key) {
  row_list *c = user;
  int32_t row = us__keymap_get(&c->m->nb_of, key);
  if (row < 0) return;
  if (c->total < c->s->cap_nb) c->s->nb_rows[c->total] = row;
  c->total++;
}

us_status us__nb_score(const us_classifier *m, us_classifier_scratch *s, const char *text,
                       float *score, us_err *err) {
  int L = m->n_labels;
  memset(score, 0, (size_t)L * sizeof *score);
  if (m->n_nb == 0) return US_OK;
  us_classifier_params q = us__nb_feature_params(&m->p);
  row_list c = {m, s, 0};
  us__features(&q, &m->vocab, text, collect_nb_row, &c);
  if (c.total > s->cap_nb) { /* rare: a long text; grow and collect again */
    int32_t *rows = realloc(s->nb_rows, (size_t)c.total * sizeof *rows);
    if (!rows) return us_err_set(err, US_ERR_NOMEM, "out of memory for %d features", c.total);
    s->nb_rows = rows;
    s->cap_nb = c.total;
    c.total = 0;
    us__features(&q, &m->vocab, text, collect_nb_row, &c);
  }
  int32_t *rows = s->nb_rows;
  if (c.total <= 64) { /* a short text: insertion sort beats qsort's calls */
    for (int i = 1; i < c.total; i++) {
      int32_t v = rows[i];
      int j = i;
      for (; j > 0 && rows[j - 1] > v; j--) rows[j] = rows[j - 1];
      rows[j] = v;
    }
  } else {
    qsort(rows, (size_t)c.total, sizeof *rows, cmp_i32);
  }
  for (int i = 0; i < c.total; i++) {
    if (i > 0 && rows[i] == rows[i - 1]) continue; /* binarised: once per text */
    const float *r = m->nb_ratio + (size_t)rows[i] * L;
    for (int k = 0; k < L; k++) score[k] += r[k];
  }
  return US_OK;
}

void us__nb_combine(float *probs, const float *score, int n_labels, float weight) {
  float max = -INFINITY;
  for (int k = 0; k < n_labels; k++) {
    probs[k] = logf(fmaxf(probs[k], 1e-30f)) + weight * score[k];
    if (probs[k] > max) max = probs[k];
  }
  double sum = 0;
  for (int k = 0; k < n_labels; k++) {
    probs[k] = expf(probs[k] - max);
    sum += probs[k];
  }
  float inv = (float)(1.0 / sum);
  for (int k = 0; k < n_labels; k++) probs[k] *= inv;
}

/* ---- the weights ---- */

static double nll(const float *logp, const float *score, const int *want, size_t n, int L, double a,
                  double w) {
  double total = 0;
  for (size_t i = 0; i < n; i++) {
    const float *z = logp + i * (size_t)L, *s = score + i * (size_t)L;
    double mx = -INFINITY, sum = 0;
    for (int k = 0; k < L; k++) mx = fmax(mx, a * z[k] + w * s[k]);
    for (int k = 0; k < L; k++) sum += exp(a * z[k] + w * s[k] - mx);
    total += mx + log(sum) - (a * z[want[i]] + w * s[want[i]]);
  }
  return n ? total / (double)n : 0;
}

/* Golden-section search of the convex f(x) = nll at (x, w) (which 0) or (a, x) (which 1) over
 * [lo, hi]; returns the minimiser, or `at` when it is no better. */
static double golden(const float *logp, const float *score, const int *want, size_t n, int L,
                     int which, double a, double w, double lo, double hi) {
  double g = (sqrt(5.0) - 1) / 2, at = which == 0 ? a : w;
#define F(x) \
  (which == 0 ? nll(logp, score, want, n, L, (x), w) : nll(logp, score, want, n, L, a, (x)))
  double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo), f1 = F(x1), f2 = F(x2);
  for (int it = 0; it < 40; it++) {
    if (f1 <= f2) {
      hi = x2, x2 = x1, f2 = f1;
      x1 = hi - g * (hi - lo);
      f1 = F(x1);
    } else {
      lo = x1, x1 = x2, f1 = f2;
      x2 = lo + g * (hi - lo);
      f2 = F(x2);
    }
  }
  double best = 0.5 * (lo + hi);
  if (!(F(best) < F(at))) best = at;
#undef F
  return best;
}

void us__nb_fit_weights(const float *logp, const float *score, const int *want, size_t n, int L,
                        bool fit_a, double *a, double *w) {
  *a = 1.0;
  *w = 0.0;
  if (n == 0 || L < 2) return;
  /* jointly convex in (a, w): alternating one-dimensional minimisations converge */
  for (int round = 0; round < (fit_a ? 4 : 1); round++) {
    *w = golden(logp, score, want, n, L, 1, *a, *w, 0.0, 20.0);
    if (fit_a) *a = golden(logp, score, want, n, L, 0, *a, *w, 0.05, 20.0);
  }
}
