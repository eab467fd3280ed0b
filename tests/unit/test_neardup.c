/* Near-duplicates (distill/neardup.h): the exact Jaccard similarity of word 3-shingle sets on
 * pairs whose value is known, and the MinHash/LSH search finding planted pairs at and above 0.8
 * (and none below) among many unrelated prompts, quickly. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "distill/neardup.h"

static void jaccard_should_match_known_pairs(void **state) {
  (void)state;
  /* {abc, bcd, cde} and {abc, bcd, cdf}: 2 shared of 4 */
  assert_true(fabs(us_neardup_jaccard("a b c d e", "a b c d f") - 0.5) < 1e-12);
  /* case, white space and punctuation do not matter */
  assert_true(us_neardup_jaccard("The quick brown fox jumps over the lazy dog",
                                 "the QUICK, brown  fox... jumps over the lazy dog!") == 1.0);
  /* 11 words, the last one changed: 9 shingles each, 8 shared: 8 / 10 */
  const char *a = "please tell me why my card payment was declined at the shop";
  const char *b = "please tell me why my card payment was declined at the store";
  assert_true(fabs(us_neardup_jaccard(a, b) - 9.0 / 11.0) < 1e-12); /* 12 words: 9 of 11 */
  assert_true(fabs(us_neardup_jaccard("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11",
                                      "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 xx") -
                   0.8) < 1e-12);
  /* a word changed in the middle breaks three shingles: 6 shared of 12 */
  assert_true(fabs(us_neardup_jaccard("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11",
                                      "w1 w2 w3 w4 w5 xx w7 w8 w9 w10 w11") -
                   0.5) < 1e-12);
  assert_true(us_neardup_jaccard("hi there", "Hi, there!") == 1.0);
  assert_true(us_neardup_jaccard("hi there", "hi you") == 0.0);
  assert_true(us_neardup_jaccard("", "") == 1.0);
  assert_true(us_neardup_jaccard("", "some words here") == 0.0);
  /* UTF-8 words stay whole */
  assert_true(us_neardup_jaccard("café crème brûlée s'il vous plaît",
                                 "CAFÉ crème brûlée s'il vous plaît") < 1.0);
  assert_true(us_neardup_jaccard("café crème brûlée s'il vous plaît",
                                 "café crème brûlée s il vous plaît") == 1.0);
}

/* n sentences of 12 words drawn from a 5,000-word vocabulary: unrelated to each other. */
static char **random_texts(size_t n, uint64_t seed) {
  us_rng rng;
  us_rng_seed(&rng, seed);
  char **t = malloc(n * sizeof *t);
  assert_non_null(t);
  for (size_t i = 0; i < n; i++) {
    char buf[256];
    size_t len = 0;
    for (int w = 0; w < 12; w++)
      len += (size_t)snprintf(buf + len, sizeof buf - len, "%sw%u", w ? " " : "",
                              (unsigned)(us_rng_uniform(&rng) * 5000));
    t[i] = strdup(buf);
  }
  return t;
}

static void free_texts(char **t, size_t n) {
  for (size_t i = 0; i < n; i++) free(t[i]);
  free(t);
}

static void pairs_should_find_planted_near_duplicates_only(void **state) {
  (void)state;
  size_t n = 2000;
  char **t = random_texts(n, 7);
  /* plant: 10 + i gets 1000 + i's text with its last word changed (12 words: 9 of 11 shingles
   * shared, J = 0.82), for i < 20; 500 + i with a middle word changed (7 of 13, J = 0.54) */
  for (size_t i = 0; i < 20; i++) {
    free(t[10 + i]);
    char buf[300];
    snprintf(buf, sizeof buf, "%s changed", t[1000 + i]);
    *strrchr(buf, ' ') = '\0';
    *strrchr(buf, ' ') = '\0';
    strcat(buf, " changed");
    t[10 + i] = strdup(buf);
  }
  for (size_t i = 0; i < 20; i++) {
    free(t[500 + i]);
    char *copy = strdup(t[1500 + i]), buf[300] = "";
    int w = 0;
    for (char *save = NULL, *tok = strtok_r(copy, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save), w++) {
      strcat(buf, w ? " " : "");
      strcat(buf, w == 6 ? "middle" : tok);
    }
    free(copy);
    t[500 + i] = strdup(buf);
  }
  us_neardup_pair *pairs = NULL;
  size_t np = 0;
  us_err err = {0};
  assert_int_equal(
      us_neardup_pairs((const char *const *)t, n, US_NEARDUP_JACCARD, &pairs, &np, &err), US_OK);
  assert_int_equal(np, 20);
  for (size_t i = 0; i < np; i++) {
    assert_int_equal(pairs[i].a, 10 + i);
    assert_int_equal(pairs[i].b, 1000 + i);
    assert_true(fabs(pairs[i].jaccard - 9.0 / 11.0) < 1e-12);
  }
  free(pairs);
  /* at a lower threshold the middle-word pairs (0.54) are found by the same search */
  assert_int_equal(us_neardup_pairs((const char *const *)t, n, 0.45, &pairs, &np, &err), US_OK);
  size_t middle = 0;
  for (size_t i = 0; i < np; i++) middle += pairs[i].a >= 500 && pairs[i].a < 520;
  assert_true(middle >= 2); /* a candidate with probability 0.27 each: 20 give ~5 */
  free(pairs);
  free_texts(t, n);
}

static void pairs_should_stay_fast_at_100k_prompts(void **state) {
  (void)state;
  size_t n = 100000;
  char **t = random_texts(n, 11);
  for (size_t i = 0; i < 100; i++) { /* 100 exact copies under other case and punctuation */
    free(t[n - 1 - i]);
    char buf[300];
    snprintf(buf, sizeof buf, "%s!", t[i]);
    buf[0] = 'W';
    t[n - 1 - i] = strdup(buf);
  }
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  us_neardup_pair *pairs = NULL;
  size_t np = 0;
  us_err err = {0};
  assert_int_equal(
      us_neardup_pairs((const char *const *)t, n, US_NEARDUP_JACCARD, &pairs, &np, &err), US_OK);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  print_message("100,000 prompts: %zu near-duplicate pairs in %.2f s\n", np, s);
  assert_int_equal(np, 100);
  /* all pairs would be 5e9 comparisons (minutes); the banded search takes seconds even on a
   * loaded machine */
  assert_true(s < 30);
  free(pairs);
  free_texts(t, n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(jaccard_should_match_known_pairs),
      cmocka_unit_test(pairs_should_find_planted_near_duplicates_only),
      cmocka_unit_test(pairs_should_stay_fast_at_100k_prompts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
