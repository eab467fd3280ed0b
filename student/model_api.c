/* The public API of include/understudy.h for classifier students: a thin layer over
 * student/classifier.h that returns the top labels. */
#include <stdlib.h>

#include "include/understudy.h"
#include "student/classifier.h"

struct us_model {
  us_classifier *classifier;
};

us_status us_model_load(const char *path, us_model **out, us_err *err) {
  *out = NULL;
  us_model *m = calloc(1, sizeof *m);
  if (!m) return us_err_set(err, US_ERR_NOMEM, "out of memory loading %s", path);
  us_status st = us_classifier_load(path, &m->classifier, err);
  if (st != US_OK) {
    free(m);
    return st;
  }
  *out = m;
  return US_OK;
}

us_status us_model_classify(const us_model *m, const char *text, int top_k, us_prediction *out,
                            int *n_out, us_err *err) {
  *n_out = 0;
  if (top_k < 1) return us_err_set(err, US_ERR_USAGE, "top_k must be >= 1, got %d", top_k);
  if (!text) return us_err_set(err, US_ERR_INPUT, "text is NULL");
  int n = us_classifier_n_labels(m->classifier);
  float *probs = malloc((size_t)n * sizeof *probs);
  if (!probs) return us_err_set(err, US_ERR_NOMEM, "out of memory for %d labels", n);
  us_status st = us_classifier_predict(m->classifier, text, probs, err);
  if (st == US_OK) {
    int k = top_k < n ? top_k : n;
    for (int i = 0; i < k; i++) { /* selection of the k best; ties go to the lower index */
      int best = -1;
      for (int j = 0; j < n; j++)
        if (probs[j] >= 0 && (best < 0 || probs[j] > probs[best])) best = j;
      out[i].label = us_classifier_label(m->classifier, best);
      out[i].prob = probs[best];
      probs[best] = -1;
    }
    *n_out = k;
  }
  free(probs);
  return st;
}

int us_model_n_labels(const us_model *m) { return us_classifier_n_labels(m->classifier); }

const char *us_model_label(const us_model *m, int i) {
  return us_classifier_label(m->classifier, i);
}

void us_model_free(us_model *m) {
  if (!m) return;
  us_classifier_free(m->classifier);
  free(m);
}
