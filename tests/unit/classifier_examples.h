/* The small separable classification set two unit tests share (test_classifier, test_autotune;
 * tests/data/models/classifier_v2.bin was trained on it): n texts of a filler word, a keyword of
 * the label, two filler words. Header-only: each test includes it once. */
#ifndef US_TESTS_CLASSIFIER_EXAMPLES_H
#define US_TESTS_CLASSIFIER_EXAMPLES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "student/classifier.h"

static char *label_names[] = {"billing", "shipping", "refund", "login"};

/* each label has its own keywords, shared filler words */
static const char *keywords[4][3] = {{"invoice", "charge", "payment"},
                                     {"parcel", "delivery", "courier"},
                                     {"refund", "money back", "return"},
                                     {"password", "login", "account locked"}};
static const char *filler[] = {"hello", "please", "my", "the", "help", "today", "thanks", "I"};

static inline us_example *make_examples(size_t n, uint64_t seed, char ***texts_out) {
  us_rng r;
  us_rng_seed(&r, seed);
  us_example *ex = calloc(n, sizeof *ex);
  char **texts = calloc(n, sizeof *texts);
  for (size_t i = 0; i < n; i++) {
    int label = (int)us_rng_below(&r, 4);
    char buf[256];
    snprintf(buf, sizeof buf, "%s %s %s %s", filler[us_rng_below(&r, 8)],
             keywords[label][us_rng_below(&r, 3)], filler[us_rng_below(&r, 8)],
             filler[us_rng_below(&r, 8)]);
    texts[i] = strdup(buf);
    ex[i] = (us_example){texts[i], label, NULL};
  }
  *texts_out = texts;
  return ex;
}

static inline void free_examples(us_example *ex, char **texts, size_t n) {
  for (size_t i = 0; i < n; i++) free(texts[i]);
  free(texts);
  free(ex);
}

#endif
