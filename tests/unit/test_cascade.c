/* Cascade points and selection on hand-computed cases: ties in confidence, the cheapest
 * threshold meeting the target, the student alone, none meeting the target, a student that is
 * not cheaper, gold accuracy of the combined system, and the table rows. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "eval/cascade.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-9)

/* Four examples; the two at 0.8 tie and enter together. */
static const double conf[] = {0.9, 0.8, 0.3, 0.8};
static const double score[] = {1, 1, 0, 0};

static us_cascade_inputs inputs(double target) {
  us_cascade_inputs in = {4, conf, score, NULL, NULL, 0.01, 1.0, {target, 0}, NULL, 0};
  return in;
}

static void cascade_should_compute_every_threshold(void **state) {
  (void)state;
  us_cascade_inputs in = inputs(0.75);
  us_cascade c;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_int_equal(c.n_points, 5);
  assert_int_equal(c.points[0].kind, US_CASCADE_TEACHER_ONLY);
  NEAR(c.points[0].coverage, 0);
  NEAR(c.points[0].agreement, 1);
  NEAR(c.points[0].usd_per_request, 1.0);
  NEAR(c.points[1].threshold, 0.9);
  NEAR(c.points[1].coverage, 0.25);
  NEAR(c.points[1].agreement, 1.0);
  NEAR(c.points[1].usd_per_request, 0.76);
  NEAR(c.points[2].threshold, 0.8);
  assert_int_equal(c.points[2].answered, 3);
  NEAR(c.points[2].agreement, 0.75);
  NEAR(c.points[2].usd_per_request, 0.26);
  NEAR(c.points[3].threshold, 0.3);
  NEAR(c.points[3].agreement, 0.5);
  NEAR(c.points[3].usd_per_request, 0.01);
  assert_int_equal(c.points[4].kind, US_CASCADE_STUDENT_ONLY);
  NEAR(c.points[4].agreement, 0.5);
  assert_false(c.has_gold);
  /* the student's own answers: 1 of 1, 2 of 3, 2 of 4 */
  assert_true(isnan(c.points[0].student_agreement));
  NEAR(c.points[1].student_agreement, 1.0);
  NEAR(c.points[2].student_agreement, 2.0 / 3);
  NEAR(c.points[2].student_agreement_low, 2.0 / 3); /* confidence 0: the measure */
  NEAR(c.points[4].student_agreement, 0.5);
  /* the 0.8 threshold reaches 0.75 overall only because the teacher's own answers count as
   * agreeing: the student's answers there agree 2 times in 3, under the target. The cheapest
   * point whose own answers meet it is the 0.9 threshold. */
  assert_int_equal(c.verdict, US_CASCADE_USE_CASCADE);
  assert_int_equal(c.recommended, 1);
  us_cascade_free(&c);
}

static void cascade_should_follow_the_target(void **state) {
  (void)state;
  us_cascade c;
  us_cascade_inputs in = inputs(1.0);
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_int_equal(c.recommended, 1);
  us_cascade_free(&c);
  in = inputs(0.5);
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_int_equal(c.verdict, US_CASCADE_USE_STUDENT);
  assert_int_equal(c.recommended, c.student_only);
  us_cascade_free(&c);
}

static void cascade_should_stay_with_the_teacher_when_none_meets_the_target(void **state) {
  (void)state;
  static const double wrong[] = {0, 0, 0, 0};
  us_cascade_inputs in = inputs(0.95);
  in.student_score = wrong;
  us_cascade c;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  /* best is 0.75 at threshold 0.9: below 0.95 */
  assert_int_equal(c.verdict, US_CASCADE_STAY_BELOW_TARGET);
  assert_int_equal(c.recommended, c.teacher_only);
  NEAR(c.points[c.recommended].coverage, 0);
  NEAR(c.points[c.recommended].usd_per_request, 1.0);
  assert_int_equal(c.best_quality_threshold_point, 1);
  NEAR(c.points[1].agreement, 0.75);
  assert_non_null(strstr(us_cascade_verdict_str(c.verdict), "teacher"));
  us_cascade_free(&c);
}

static void cascade_should_stay_when_the_student_is_not_cheaper(void **state) {
  (void)state;
  us_cascade_inputs in = inputs(0.5);
  in.student_usd_per_request = 2.0;
  us_cascade c;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_int_equal(c.verdict, US_CASCADE_STAY_NOT_CHEAPER);
  assert_int_equal(c.recommended, c.teacher_only);
  us_cascade_free(&c);
  in.student_usd_per_request = 1.0; /* equal price is not cheaper either */
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_int_equal(c.verdict, US_CASCADE_STAY_NOT_CHEAPER);
  us_cascade_free(&c);
}

static void cascade_should_score_the_combined_system_against_gold(void **state) {
  (void)state;
  static const int student_gold[] = {1, 0, 1, -1};
  static const int teacher_gold[] = {1, 1, 0, -1};
  us_cascade_inputs in = inputs(0.75);
  in.student_gold = student_gold;
  in.teacher_gold = teacher_gold;
  us_cascade c;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_true(c.has_gold);
  assert_int_equal(c.n_gold, 3);
  NEAR(c.points[0].gold_accuracy, 2.0 / 3); /* teacher alone */
  NEAR(c.points[1].gold_accuracy, 2.0 / 3); /* student takes ex 0: same */
  NEAR(c.points[2].gold_accuracy, 1.0 / 3); /* + ex 1 (student wrong), ex 3 (no gold) */
  NEAR(c.points[3].gold_accuracy, 2.0 / 3); /* + ex 2 (student right, teacher wrong) */
  NEAR(c.points[c.student_only].gold_accuracy, 2.0 / 3); /* student alone */
  us_cascade_free(&c);
}

static void cascade_should_handle_no_data_and_bad_input(void **state) {
  (void)state;
  us_cascade_inputs in = {0, NULL, NULL, NULL, NULL, 0.01, 1.0, {0.9, 0.95}, NULL, 0};
  us_cascade c;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_int_equal(c.verdict, US_CASCADE_STAY_NO_DATA);
  assert_int_equal(c.recommended, c.teacher_only);
  us_cascade_free(&c);
  in = inputs(1.5);
  us_err err;
  assert_int_equal(us_cascade_compute(&in, &c, &err), US_ERR_INPUT);
  us_cascade_free(&c);
  in = inputs(0.9);
  in.quality.confidence = 1.0;
  assert_int_equal(us_cascade_compute(&in, &c, &err), US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "quality.confidence"));
  us_cascade_free(&c);
}

/* The case seen end to end: on 58 test prompts the two most confident answers are wrong. Measured,
 * letting the student answer the five most confident gives 56/58 = 96.6% and meets a 95% target;
 * at 95% confidence the bound is about 90.1% and the recommendation is to stay with the teacher. */
static void lower_bound_should_not_trust_a_handful_of_answers(void **state) {
  (void)state;
  enum { N = 58 };
  double cf[N], sc[N];
  for (int i = 0; i < N; i++) {
    cf[i] = 1.0 - (double)i / N;
    sc[i] = i >= 2 && i % 5 != 0; /* the two most confident wrong, then 1 in 5 */
  }
  us_cascade_inputs in = {N, cf, sc, NULL, NULL, 0.001, 1.0, {0.95, 0}, NULL, 0};
  us_cascade c;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  /* On the point estimate the five most confident give 56/58 = 96.6% overall, but the student's
   * own five answers agree 3 times in 5: no threshold holds them to 95%, so stay. */
  assert_int_equal(c.verdict, US_CASCADE_STAY_BELOW_TARGET);
  assert_int_equal(c.points[5].answered, 5);
  NEAR(c.points[5].agreement, 56.0 / 58);
  NEAR(c.points[5].agreement_low, 56.0 / 58);
  NEAR(c.points[5].student_agreement, 3.0 / 5);
  us_cascade_free(&c);
  in.quality.confidence = 0.95;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_int_equal(c.verdict, US_CASCADE_STAY_BELOW_TARGET);
  assert_int_equal(c.recommended, c.teacher_only);
  NEAR(c.points[0].agreement_low, 1.0);
  /* one-sided Wilson at z = 1.64485 for 56 of 58, worked by hand: 0.90102 */
  assert_int_equal(c.points[2].answered, 2);
  assert_true(fabs(c.points[2].agreement_low - 0.90102) < 5e-5);
  for (int k = 1; k < c.n_points; k++)
    assert_true(c.points[k].agreement_low < c.points[k].agreement);
  us_cascade_free(&c);
}

/* With enough prompts the bound is close to the measure and a cascade is still recommended,
 * one that answers less than the point estimate would (its errors must stay under the bound). */
static void lower_bound_should_pick_a_safer_threshold_on_many_prompts(void **state) {
  (void)state;
  enum { N = 4000 };
  static double cf[N], sc[N];
  for (int i = 0; i < N; i++) {
    cf[i] = 1.0 - (double)i / N;
    sc[i] = (i % 100) >= (i < N / 2 ? 1 : 40); /* 1% wrong in the confident half, 40% after */
  }
  us_cascade_inputs in = {N, cf, sc, NULL, NULL, 0.001, 0.01, {0.97, 0}, NULL, 0};
  us_cascade measured, bounded;
  assert_int_equal(us_cascade_compute(&in, &measured, NULL), US_OK);
  in.quality.confidence = 0.95;
  assert_int_equal(us_cascade_compute(&in, &bounded, NULL), US_OK);
  assert_int_equal(measured.verdict, US_CASCADE_USE_CASCADE);
  assert_int_equal(bounded.verdict, US_CASCADE_USE_CASCADE);
  const us_cascade_point *m = &measured.points[measured.recommended];
  const us_cascade_point *b = &bounded.points[bounded.recommended];
  assert_true(b->answered < m->answered);
  assert_true(b->answered > N / 2); /* still well past the clean half */
  assert_true(b->agreement_low >= 0.97 && b->agreement > b->agreement_low);
  assert_true(b->agreement - b->agreement_low < 0.01);
  assert_true(b->student_agreement_low >= 0.97);
  /* the next threshold down has a bound under the target (the pick is the cheapest) */
  const us_cascade_point *next = &bounded.points[bounded.recommended + 1];
  assert_true(fmin(next->agreement_low, next->student_agreement_low) < 0.97);
  us_cascade_free(&measured);
  us_cascade_free(&bounded);
}

static void table_rows_should_keep_the_fixed_and_recommended_points(void **state) {
  (void)state;
  enum { N = 200 };
  double cf[N], sc[N];
  for (int i = 0; i < N; i++) {
    cf[i] = (double)i / N;
    sc[i] = i >= 40; /* the 40 least confident are wrong */
  }
  us_cascade_inputs in = {N, cf, sc, NULL, NULL, 0.001, 0.01, {0.9, 0}, NULL, 0};
  us_cascade c;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_int_equal(c.n_points, N + 2);
  assert_int_equal(c.verdict, US_CASCADE_USE_CASCADE);
  /* the student's own answers must agree 90%: 160 right allow 17 wrong (160/177 = 90.4%), so
   * the threshold is at confidence 23/200 (overall 183/200; 20 wrong would be 88.9% of its own) */
  NEAR(c.points[c.recommended].threshold, 0.115);
  NEAR(c.points[c.recommended].student_agreement, 160.0 / 177);
  NEAR(c.points[c.recommended].agreement, 183.0 / 200);
  int rows[8];
  int k = us_cascade_table_rows(&c, 8, rows);
  assert_int_equal(k, 8);
  assert_int_equal(rows[0], c.teacher_only);
  assert_int_equal(rows[k - 1], c.student_only);
  int has_recommended = 0;
  for (int i = 0; i < k; i++) {
    has_recommended |= rows[i] == c.recommended;
    if (i > 0) assert_true(rows[i] > rows[i - 1]);
  }
  assert_true(has_recommended);
  us_cascade_free(&c);
}

/* Issue 10, defect 11: a student that is always wrong when confident. On 1,000 prompts,
 * letting it answer its 30 most confident costs 30 disagreements out of 1,000: 97% overall with
 * a lower bound of about 95.9%, which used to meet a 95% target. Its own answers agree 0%. */
static void cascade_should_hold_the_students_own_answers_to_the_target(void **state) {
  (void)state;
  enum { N = 1000 };
  static double cf[N], sc[N];
  for (int i = 0; i < N; i++) {
    cf[i] = 1.0 - (double)i / N;
    sc[i] = i >= 60; /* the 60 most confident answers are all wrong */
  }
  us_cascade_inputs in = {N, cf, sc, NULL, NULL, 0.001, 1.0, {0.95, 0.95}, NULL, 0};
  us_cascade c;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_true(c.points[30].agreement_low >= 0.95); /* the whole system alone would pass */
  assert_int_equal(c.verdict, US_CASCADE_STAY_BELOW_TARGET);
  assert_int_equal(c.recommended, c.teacher_only);
  NEAR(c.points[30].student_agreement, 0);
  NEAR(c.points[30].student_agreement_low, 0);
  us_cascade_free(&c);
}

/* The 5-choice QA case from the issue: 1,221 test prompts, the student agrees with the teacher on
 * 21.6% (chance is 20%), and its 60 most confident answers include 16 right ones. The whole
 * system's bound passed 95% at 4.9% coverage and the verdict read "use the cascade". */
static void cascade_should_say_a_student_at_chance_did_not_learn(void **state) {
  (void)state;
  enum { N = 1221 };
  static double cf[N], sc[N];
  static int label[N];
  for (int i = 0; i < N; i++) {
    cf[i] = 0.6 - 0.4 * (double)i / N;
    sc[i] = i % 37 < 8; /* 8 in 37: 21.6% */
    label[i] = i % 5;   /* the teacher's labels, nearly uniform: majority 245/1221 */
  }
  us_cascade_inputs in = {N, cf, sc, NULL, NULL, 1e-9, 1e-3, {0.95, 0.95}, NULL, 0};
  us_cascade c;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_int_equal(c.verdict, US_CASCADE_STAY_BELOW_TARGET); /* the student-answer rule alone */
  assert_true(c.points[60].agreement_low >= 0.95);           /* what used to pass */
  assert_false(c.baselines.known);
  us_cascade_free(&c);
  in.teacher_label = label;
  in.n_labels = 5;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_int_equal(c.verdict, US_CASCADE_STAY_NOT_LEARNED);
  assert_int_equal(c.recommended, c.teacher_only);
  assert_true(c.baselines.known);
  NEAR(c.baselines.chance, 0.2);
  NEAR(c.baselines.majority_class, 245.0 / N);
  assert_int_equal(c.baselines.majority_label, 0);
  NEAR(c.baselines.student_agreement, c.points[c.student_only].agreement);
  assert_true(c.baselines.student_agreement > 0.2);           /* measured, it is above chance... */
  assert_true(c.baselines.student_agreement_low < 245.0 / N); /* ...but not shown to beat it */
  assert_false(c.baselines.beaten);
  assert_string_equal(us_cascade_verdict_str(c.verdict),
                      "stay with the teacher: the student did not learn this task");
  us_cascade_free(&c);
  /* the same student on a 2-label task it learned far better than chance is judged as before */
  for (int i = 0; i < N; i++) {
    sc[i] = i % 50 != 49;
    label[i] = i % 3 == 0;
  }
  in.n_labels = 2;
  assert_int_equal(us_cascade_compute(&in, &c, NULL), US_OK);
  assert_true(c.baselines.beaten);
  NEAR(c.baselines.chance, 0.5);
  assert_true(c.verdict == US_CASCADE_USE_STUDENT || c.verdict == US_CASCADE_USE_CASCADE);
  us_cascade_free(&c);
  /* labels outside [0, n_labels) are refused */
  label[3] = 7;
  us_err err;
  assert_int_equal(us_cascade_compute(&in, &c, &err), US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "example 3: teacher label 7"));
  us_cascade_free(&c);
}

static void quality_params_should_default_and_name_the_field_out_of_range(void **state) {
  (void)state;
  us_quality_params p;
  us_quality_params_defaults(&p);
  NEAR(p.target_agreement, 0.95);
  NEAR(p.confidence, 0.95);
  assert_int_equal(us_quality_params_check(&p, NULL), US_OK);
  size_t n = 0;
  const us_param *t = us_quality_param_table(&n);
  assert_int_equal(n, 2);
  assert_string_equal(t[0].name, "target_agreement");
  assert_string_equal(t[1].name, "confidence");
  us_err err;
  p.target_agreement = 0;
  assert_int_equal(us_quality_params_check(&p, &err), US_ERR_CONFIG);
  assert_string_equal(err.msg, "target_agreement: expected a number in (0, 1], found 0");
  p.target_agreement = 1; /* the top is allowed: the student must agree every time */
  assert_int_equal(us_quality_params_check(&p, NULL), US_OK);
  p.confidence = 0.9995;
  assert_int_equal(us_quality_params_check(&p, &err), US_ERR_CONFIG);
  assert_string_equal(err.msg, "confidence: expected a number in [0, 0.999], found 0.9995");
  p.confidence = 0; /* judged on the point estimate */
  assert_int_equal(us_quality_params_check(&p, NULL), US_OK);
  /* the cascade refuses the same settings, naming the config key */
  us_cascade_inputs in = inputs(1.5);
  us_cascade c;
  assert_int_equal(us_cascade_compute(&in, &c, &err), US_ERR_INPUT);
  assert_string_equal(err.msg,
                      "cascade: quality.target_agreement: expected a number in (0, 1], found 1.5");
  us_cascade_free(&c);
}

static void bounds_should_match_hand_values(void **state) {
  (void)state;
  assert_true(fabs(us_normal_quantile(0.95) - 1.6448536) < 1e-6);
  assert_true(us_normal_quantile(0.5) == 0);
  /* 56 of 58 agreeing: 96.6% measured, about 90.1% at 95% confidence (the cascade's example) */
  double low = us_wilson_low(56, 58, us_normal_quantile(0.95));
  assert_true(fabs(low - 0.90102) < 1e-5);
  assert_true(us_wilson_low(0, 0, 1.645) == 0);
  assert_true(us_wilson_low(5, 5, 0) == 1); /* z 0: the measured share */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bounds_should_match_hand_values),
      cmocka_unit_test(cascade_should_compute_every_threshold),
      cmocka_unit_test(cascade_should_follow_the_target),
      cmocka_unit_test(cascade_should_stay_with_the_teacher_when_none_meets_the_target),
      cmocka_unit_test(cascade_should_stay_when_the_student_is_not_cheaper),
      cmocka_unit_test(cascade_should_score_the_combined_system_against_gold),
      cmocka_unit_test(cascade_should_handle_no_data_and_bad_input),
      cmocka_unit_test(table_rows_should_keep_the_fixed_and_recommended_points),
      cmocka_unit_test(lower_bound_should_not_trust_a_handful_of_answers),
      cmocka_unit_test(lower_bound_should_pick_a_safer_threshold_on_many_prompts),
      cmocka_unit_test(quality_params_should_default_and_name_the_field_out_of_range),
      cmocka_unit_test(cascade_should_hold_the_students_own_answers_to_the_target),
      cmocka_unit_test(cascade_should_say_a_student_at_chance_did_not_learn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
