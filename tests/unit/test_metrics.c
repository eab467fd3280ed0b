/* Metrics against hand-computed cases: per-class scores with a label never predicted, a single
 * class, ties among confusions, unparsed teacher answers, ECE, bootstrap, quantiles, and the
 * generation metrics. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "eval/metrics.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-9)

static void classify_should_score_a_never_predicted_label_as_zero(void **state) {
  (void)state;
  /* labels A=0 B=1 C=2; C is never predicted */
  int ref[] = {0, 0, 0, 1, 1, 2}, pred[] = {0, 0, 1, 1, 1, 1};
  double conf[] = {0.9, 0.9, 0.6, 0.8, 0.7, 0.5};
  us_classify_metrics m;
  us_err err;
  assert_int_equal(us_metrics_classify(NULL, 6, 3, ref, pred, conf, NULL, &m, &err), US_OK);
  NEAR(m.agreement, 4.0 / 6);
  NEAR(m.per_class[0].precision, 1.0);
  NEAR(m.per_class[0].recall, 2.0 / 3);
  NEAR(m.per_class[0].f1, 0.8);
  NEAR(m.per_class[1].precision, 0.5);
  NEAR(m.per_class[1].recall, 1.0);
  NEAR(m.per_class[1].f1, 2.0 / 3);
  assert_int_equal(m.per_class[2].predicted, 0);
  assert_int_equal(m.per_class[2].support, 1);
  NEAR(m.per_class[2].precision, 0.0);
  NEAR(m.per_class[2].f1, 0.0);
  NEAR(m.macro_f1, (0.8 + 2.0 / 3 + 0.0) / 3);
  assert_int_equal(m.n_macro_labels, 3);
  /* two confusions with count 1: tie broken by reference index */
  assert_int_equal(m.n_confusions, 2);
  assert_int_equal(m.confusions[0].reference, 0);
  assert_int_equal(m.confusions[0].predicted, 1);
  assert_int_equal(m.confusions[0].example, 2);
  assert_int_equal(m.confusions[1].reference, 2);
  assert_int_equal(m.confusions[1].example, 5);
  assert_false(m.has_gold);
  us_metrics_free(&m);
}

static void classify_should_handle_a_single_class(void **state) {
  (void)state;
  int ref[] = {0, 0, 0}, pred[] = {0, 0, 0};
  double conf[] = {1.0, 1.0, 1.0};
  us_classify_metrics m;
  assert_int_equal(us_metrics_classify(NULL, 3, 1, ref, pred, conf, NULL, &m, NULL), US_OK);
  NEAR(m.agreement, 1.0);
  NEAR(m.macro_f1, 1.0);
  NEAR(m.ece, 0.0);
  assert_int_equal(m.n_confusions, 0);
  NEAR(m.agreement_lo, 1.0);
  NEAR(m.agreement_hi, 1.0);
  us_metrics_free(&m);
  /* one class present among four: macro-F1 is over labels that occur, not all four */
  int ref2[] = {2, 2}, pred2[] = {2, 2};
  assert_int_equal(us_metrics_classify(NULL, 2, 4, ref2, pred2, conf, NULL, &m, NULL), US_OK);
  NEAR(m.macro_f1, 1.0);
  assert_int_equal(m.n_macro_labels, 1);
  us_metrics_free(&m);
}

static void classify_should_order_confusion_ties_and_keep_top_k(void **state) {
  (void)state;
  /* (1->0) x2, (0->2) x2, (2->1) x1, (0->1) x1 */
  int ref[] = {1, 0, 1, 0, 2, 0, 2};
  int pred[] = {0, 2, 0, 2, 1, 1, 2};
  double conf[7] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
  us_metrics_options o;
  us_metrics_defaults(&o);
  o.top_confusions = 3;
  us_classify_metrics m;
  assert_int_equal(us_metrics_classify(&o, 7, 3, ref, pred, conf, NULL, &m, NULL), US_OK);
  assert_int_equal(m.n_confusions, 3);
  assert_int_equal(m.confusions[0].reference, 0);
  assert_int_equal(m.confusions[0].predicted, 2);
  assert_int_equal(m.confusions[0].count, 2);
  assert_int_equal(m.confusions[0].example, 1);
  assert_int_equal(m.confusions[1].reference, 1);
  assert_int_equal(m.confusions[1].count, 2);
  assert_int_equal(m.confusions[2].reference, 0);
  assert_int_equal(m.confusions[2].predicted, 1);
  us_metrics_free(&m);
}

static void classify_should_skip_unparsed_and_score_gold(void **state) {
  (void)state;
  int ref[] = {0, -1, 1, 1}, pred[] = {0, 1, 1, 0}, gold[] = {0, 1, 0, -1};
  double conf[] = {0.9, 0.9, 0.9, 0.9};
  us_classify_metrics m;
  assert_int_equal(us_metrics_classify(NULL, 4, 2, ref, pred, conf, gold, &m, NULL), US_OK);
  assert_int_equal(m.n_scored, 3);
  assert_int_equal(m.n_unscored, 1);
  NEAR(m.agreement, 2.0 / 3);
  assert_true(m.has_gold);
  assert_int_equal(m.n_gold, 3);
  NEAR(m.student_gold_accuracy, 2.0 / 3); /* examples 0, 1 right; 2 wrong */
  NEAR(m.teacher_gold_accuracy, 1.0 / 3); /* unparsed (example 1) counts as wrong */
  /* student vs gold: label 0 P=1/1 R=1/2 F=2/3; label 1 P=1/2 R=1 F=2/3 */
  NEAR(m.student_gold_macro_f1, 2.0 / 3);
  us_metrics_free(&m);
}

static void classify_should_compute_ece_on_a_hand_example(void **state) {
  (void)state;
  int ref[] = {0, 0, 0, 0, 1, 1}, pred[] = {0, 1, 0, 0, 1, 1};
  double conf[] = {0.95, 0.95, 0.55, 0.55, 1.0, 0.0};
  us_classify_metrics m;
  assert_int_equal(us_metrics_classify(NULL, 6, 2, ref, pred, conf, NULL, &m, NULL), US_OK);
  /* bin 14: 0.95, 0.95, 1.0 with hits 1,0,1; bin 8: 0.55 x2 hits 1,1; bin 0: 0.0 hit 1 */
  assert_int_equal(m.calibration[14].count, 3);
  assert_int_equal(m.calibration[8].count, 2);
  assert_int_equal(m.calibration[0].count, 1);
  NEAR(m.calibration[14].mean_confidence, 2.9 / 3);
  NEAR(m.calibration[14].accuracy, 2.0 / 3);
  double expect = 3.0 / 6 * fabs(2.0 / 3 - 2.9 / 3) + 2.0 / 6 * 0.45 + 1.0 / 6 * 1.0;
  NEAR(m.ece, expect);
  us_metrics_free(&m);
}

static void classify_should_refuse_out_of_range_input(void **state) {
  (void)state;
  int ref[] = {0, 3}, pred[] = {0, 0};
  double conf[] = {0.5, 0.5};
  us_classify_metrics m;
  us_err err;
  assert_int_equal(us_metrics_classify(NULL, 2, 3, ref, pred, conf, NULL, &m, &err), US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "example 1"));
  int ref2[] = {0, 0};
  double bad[] = {0.5, 1.5};
  assert_int_equal(us_metrics_classify(NULL, 2, 3, ref2, pred, bad, NULL, &m, &err), US_ERR_INPUT);
}

static double width_for(int n, double *lo, double *hi) {
  unsigned char *hits = malloc((size_t)n);
  for (int i = 0; i < n; i++) hits[i] = (i % 5) != 0; /* 80% */
  assert_int_equal(us_metrics_bootstrap_mean(hits, n, 1000, 0.95, 7, lo, hi, NULL), US_OK);
  free(hits);
  return *hi - *lo;
}

static void bootstrap_should_contain_the_estimate_and_narrow_with_n(void **state) {
  (void)state;
  double lo1, hi1, lo2, hi2, lo3, hi3;
  double w100 = width_for(100, &lo1, &hi1), w1000 = width_for(1000, &lo2, &hi2);
  assert_true(lo1 <= 0.8 && 0.8 <= hi1);
  assert_true(lo2 <= 0.8 && 0.8 <= hi2);
  assert_true(w1000 < w100 * 0.6); /* ~ 1/sqrt(10) */
  /* normal approximation: 2 x 1.96 x sqrt(0.16/100) = 0.157 */
  assert_true(w100 > 0.11 && w100 < 0.2);
  width_for(100, &lo3, &hi3);
  assert_true(lo3 == lo1 && hi3 == hi1); /* fixed seed: reproducible */
}

static void quantile_should_interpolate_linearly(void **state) {
  (void)state;
  double s[] = {1, 2, 3, 4};
  NEAR(us_metrics_quantile_sorted(s, 4, 0.5), 2.5);
  NEAR(us_metrics_quantile_sorted(s, 4, 0.0), 1.0);
  NEAR(us_metrics_quantile_sorted(s, 4, 1.0), 4.0);
  assert_true(isnan(us_metrics_quantile_sorted(s, 0, 0.5)));
  double v[100];
  for (int i = 0; i < 100; i++) v[99 - i] = i + 1; /* unsorted input */
  us_latency l;
  assert_int_equal(us_metrics_latency(v, 100, &l, NULL), US_OK);
  NEAR(l.p50, 50.5);
  NEAR(l.p99, 99.01);
  NEAR(l.mean, 50.5);
  NEAR(l.max, 100);
  NEAR(v[0], 100); /* input untouched */
}

static void generation_metrics_should_match_hand_values(void **state) {
  (void)state;
  double x;
  assert_true(us_metrics_exact_match("  a b \n", "a b"));
  assert_false(us_metrics_exact_match("a", "A"));
  assert_int_equal(us_metrics_token_f1("The cat sat.", "the cat is here", &x, NULL), US_OK);
  NEAR(x, 4.0 / 7);
  assert_int_equal(us_metrics_token_f1("", "", &x, NULL), US_OK);
  NEAR(x, 1.0);
  assert_int_equal(us_metrics_token_f1("a", "", &x, NULL), US_OK);
  NEAR(x, 0.0);
  assert_int_equal(us_metrics_token_f1("a a b", "a b b", &x, NULL), US_OK);
  NEAR(x, 2.0 / 3); /* multiset overlap: a, b */
  assert_int_equal(us_metrics_rouge_l("a b c d", "a c b d", &x, NULL), US_OK);
  NEAR(x, 0.75);
  assert_int_equal(us_metrics_rouge_l("x y", "a b c", &x, NULL), US_OK);
  NEAR(x, 0.0);
  assert_int_equal(us_metrics_chrf("ab", "ab", &x, NULL), US_OK);
  NEAR(x, 1.0);
  assert_int_equal(us_metrics_chrf("ab", "ac", &x, NULL), US_OK);
  NEAR(x, 0.25);
  assert_int_equal(us_metrics_chrf("abc", "ab", &x, NULL), US_OK);
  NEAR(x, 0.875);
  assert_int_equal(us_metrics_chrf("a b", "ab", &x, NULL), US_OK);
  NEAR(x, 1.0);
  assert_int_equal(us_metrics_chrf("\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9", &x, NULL), US_OK);
  NEAR(x, 1.0);
  assert_int_equal(us_metrics_chrf("\xc3", "\xc3\xa9", &x, NULL), US_OK); /* truncated UTF-8 */
  NEAR(x, 0.0);
  /* an overlong form is two bad bytes, each its own unit: the 0xAF is shared, the 0xC0 is not */
  assert_int_equal(us_metrics_chrf("\xc0\xaf", "\xaf", &x, NULL), US_OK);
  NEAR(x, 5.0 / 6);
  assert_int_equal(us_metrics_chrf("\xed\xa0\x80", "\xed\xa0\x80", &x, NULL),
                   US_OK); /* surrogate */
  NEAR(x, 1.0);
  assert_true(us_metrics_is_json(" {\"a\": [1, 2]} \n"));
  assert_false(us_metrics_is_json("{\"a\": 1"));
  assert_false(us_metrics_is_json("{\"a\": 1} trailing"));
  const char *pred[] = {"{\"a\": 1}", "hello world", "{broken"};
  const char *ref[] = {"{\"a\": 1}", "hello there", "{\"b\": 2}"};
  us_generate_metrics g;
  assert_int_equal(us_metrics_generate(3, pred, ref, &g, NULL), US_OK);
  NEAR(g.exact_match, 1.0 / 3);
  assert_int_equal(g.n_json_references, 2);
  NEAR(g.valid_json_rate, 0.5);
  /* token F1: 1, 0.5, ("broken" vs "b 2") 0 */
  NEAR(g.token_f1, 1.5 / 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(classify_should_score_a_never_predicted_label_as_zero),
      cmocka_unit_test(classify_should_handle_a_single_class),
      cmocka_unit_test(classify_should_order_confusion_ties_and_keep_top_k),
      cmocka_unit_test(classify_should_skip_unparsed_and_score_gold),
      cmocka_unit_test(classify_should_compute_ece_on_a_hand_example),
      cmocka_unit_test(classify_should_refuse_out_of_range_input),
      cmocka_unit_test(bootstrap_should_contain_the_estimate_and_narrow_with_n),
      cmocka_unit_test(quantile_should_interpolate_linearly),
      cmocka_unit_test(generation_metrics_should_match_hand_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
