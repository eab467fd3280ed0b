/* The public API of include/understudy.h for classifier students: a thin layer over
 * student/classifier.h that returns the top labels.
 *
 * us_model_classify keeps its prediction scratch (feature rows, activations, probabilities) in
 * a small pool inside the model, taken and given back with atomic exchanges, so classifying
 * allocates nothing once the pool holds a scratch per concurrent caller (beyond POOL callers
 * at once, the extra ones allocate and free their own). */
#include <stdatomic.h>
#include <stdlib.h>

#include "student/classifier.h"
#include "understudy.h"

enum { POOL = 8 };

typedef struct work {
  us_classifier_scratch *scratch;
  float probs[]; /* n_labels */
} work;

struct us_model {
  us_classifier *classifier;
  _Atomic(work *) pool[POOL]; /* NULL: empty slot */
};

static void work_free(work *w) {
  if (!w) return;
  us_classifier_scratch_free(w->scratch);
  free(w);
}

static work *work_take(const us_model *m) {
  us_model *mm = (us_model *)m; /* the pool is the one mutable part, and it is atomic */
  for (int i = 0; i < POOL; i++) {
    work *w = atomic_exchange(&mm->pool[i], NULL);
    if (w) return w;
  }
  int n = us_classifier_n_labels(m->classifier);
  work *w = malloc(sizeof *w + (size_t)n * sizeof w->probs[0]);
  if (!w) return NULL;
  if (!(w->scratch = us_classifier_scratch_new(m->classifier))) {
    free(w);
    return NULL;
  }
  return w;
}

static void work_give(const us_model *m, work *w) {
  us_model *mm = (us_model *)m;
  for (int i = 0; i < POOL; i++) {
    work *empty = NULL;
    if (atomic_compare_exchange_strong(&mm->pool[i], &empty, w)) return;
  }
  work_free(w);
}

us_status us_model_load(const char *path, us_model **out, us_err *err) {
  *out = NULL;
  us_model *m = calloc(1, sizeof *m);
  if (!m) return us_err_set(err, US_ERR_NOMEM, "out of memory loading %s", path);
  us_status st = us_classifier_load(path, &m->classifier, err);
  if (st != US_OK) {
    free(m);
    return st;
  }
  for (int i = 0; i < POOL; i++) atomic_init(&m->pool[i], NULL);
  *out = m;
  return US_OK;
}

us_status us_model_classify(const us_model *m, const char *text, int top_k, us_prediction *out,
                            int *n_out, us_err *err) {
  *n_out = 0;
  if (top_k < 1) return us_err_set(err, US_ERR_USAGE, "top_k must be >= 1, got %d", top_k);
  if (!text) return us_err_set(err, US_ERR_INPUT, "text is NULL");
  int n = us_classifier_n_labels(m->classifier);
  work *w = work_take(m);
  if (!w) return us_err_set(err, US_ERR_NOMEM, "out of memory for %d labels", n);
  float *probs = w->probs;
  us_status st = us_classifier_predict_with(m->classifier, w->scratch, text, probs, err);
  if (st == US_OK) {
    int k = top_k < n ? top_k : n;
    for (int i = 0; i < k && st == US_OK; i++) { /* the k best; ties go to the lower index */
      int best = -1;
      for (int j = 0; j < n; j++)
        if (probs[j] >= 0 && (best < 0 || probs[j] > probs[best])) best = j;
      if (best < 0) { /* only with probabilities that are not numbers, which predict refuses */
        st = us_err_set(err, US_ERR_INTERNAL, "no probability left to rank for prediction %d", i);
        break;
      }
      out[i].label = us_classifier_label(m->classifier, best);
      out[i].prob = probs[best];
      out[i].index = best;
      probs[best] = -1;
    }
    if (st == US_OK) *n_out = k;
  }
  work_give(m, w);
  return st;
}

int us_model_n_labels(const us_model *m) {
  return us_classifier_n_labels(m->classifier);
}

const char *us_model_label(const us_model *m, int i) {
  return us_classifier_label(m->classifier, i);
}

void us_model_free(us_model *m) {
  if (!m) return;
  for (int i = 0; i < POOL; i++) work_free(atomic_load(&m->pool[i]));
  us_classifier_free(m->classifier);
  free(m);
}
