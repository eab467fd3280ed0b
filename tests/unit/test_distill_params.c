/* distill's settings: us_prompts_params (data.*) and us_teacher_params (teacher.*) — their
 * defaults pass their own checks, and every refusal names the field first, so the config loader
 * can re-label it with the config key. Also: the test split is the shared hash fraction, bit for
 * bit what it was before. */
/* cmocka.h needs these four first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "distill/prompts.h"
#include "distill/teacher.h"

/* The message starts with "<field>: " and holds every other needle. */
static void expect_refusal(us_status st, const us_err *err, const char *field, ...) {
  assert_int_equal(st, US_ERR_CONFIG);
  size_t n = strlen(field);
  if (strncmp(err->msg, field, n) != 0 || strncmp(err->msg + n, ": ", 2) != 0)
    fail_msg("message does not start with \"%s: \": %s", field, err->msg);
  va_list ap;
  va_start(ap, field);
  for (const char *needle; (needle = va_arg(ap, const char *));)
    if (!strstr(err->msg, needle)) fail_msg("message lacks \"%s\": %s", needle, err->msg);
  va_end(ap);
}

/* ---- us_prompts_params --------------------------------------------------------------------- */

static void prompts_defaults_should_pass_their_check(void **state) {
  (void)state;
  us_prompts_params p;
  us_prompts_params_defaults(&p);
  us_err err = {0};
  assert_int_equal(us_prompts_params_check(&p, &err), US_OK);
  assert_null(p.inputs);
  assert_null(p.text_field);
  assert_null(p.question_template);
  /* the string defaults pass too */
  p.question_template = US_PROMPTS_DEFAULT_QUESTION_TEMPLATE;
  p.answer_template = US_PROMPTS_DEFAULT_ANSWER_TEMPLATE;
  assert_int_equal(us_prompts_params_check(&p, &err), US_OK);
}

static void prompts_check_should_name_the_field(void **state) {
  (void)state;
  us_prompts_params p;
  us_err err = {0};

  us_prompts_params_defaults(&p);
  p.chunk_chars = 10;
  expect_refusal(us_prompts_params_check(&p, &err), &err, "chunk_chars",
                 "expected an integer in [200, 100000], found 10", NULL);

  us_prompts_params_defaults(&p);
  p.test_fraction = 0.95;
  expect_refusal(us_prompts_params_check(&p, &err), &err, "test_fraction",
                 "expected a number in [0, 0.9], found 0.95", NULL);

  us_prompts_params_defaults(&p);
  p.questions_per_chunk = 21;
  expect_refusal(us_prompts_params_check(&p, &err), &err, "questions_per_chunk", "[1, 20]",
                 "found 21", NULL);

  us_prompts_params_defaults(&p);
  p.seed = 9007199254740992ull; /* 2^53: a JSON reader would round it */
  expect_refusal(us_prompts_params_check(&p, &err), &err, "seed", "9007199254740991", NULL);

  us_prompts_params_defaults(&p);
  p.question_template = "Write {n} questions.";
  expect_refusal(us_prompts_params_check(&p, &err), &err, "question_template", "{chunk}", NULL);

  us_prompts_params_defaults(&p);
  p.answer_template = "{chunk}";
  expect_refusal(us_prompts_params_check(&p, &err), &err, "answer_template", "{question}", NULL);
}

static void prompts_table_should_hold_every_numeric_field_once(void **state) {
  (void)state;
  size_t n = 0;
  const us_param *t = us_prompts_param_table(&n);
  const char *const expected[] = {"test_fraction",       "seed",       "chunk_chars", "repair_utf8",
                                  "questions_per_chunk", "dedupe_near"};
  assert_int_equal(n, sizeof expected / sizeof expected[0]);
  for (size_t i = 0; i < n; i++) {
    assert_non_null(us_param_find(t, n, expected[i]));
    assert_non_null(t[i].doc);
    for (size_t k = i + 1; k < n; k++) assert_string_not_equal(t[i].name, t[k].name);
  }
}

/* ---- the test split ------------------------------------------------------------------------ */

/* The split as prompts.c computed it before core/hash.h had us_hash_fraction: FNV-1a of the
 * normalised text under the seed, MurmurHash3's fmix64, the top 53 bits as a fraction. */
static int split_before_the_redesign(const char *normalized, uint64_t seed, double fraction) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int i = 0; i < 8; i++) h = (h ^ ((seed >> (8 * i)) & 0xff)) * 0x100000001b3ull;
  for (const unsigned char *p = (const unsigned char *)normalized; *p; p++)
    h = (h ^ *p) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  double u = (double)(h >> 11) * (1.0 / 9007199254740992.0);
  return u < fraction ? US_SPLIT_TEST : US_SPLIT_TRAIN;
}

static void split_should_be_bit_identical_to_the_hash_fraction(void **state) {
  (void)state;
  char text[64];
  const double fractions[] = {0, 0.1, 0.2, 0.5, 0.9};
  const uint64_t seeds[] = {0, 1, 7, 9007199254740991ull};
  for (int i = 0; i < 2000; i++) {
    snprintf(text, sizeof text, "how do i reset my card pin %d?", i);
    for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++)
      for (size_t f = 0; f < sizeof fractions / sizeof fractions[0]; f++) {
        int split = us_prompt_split(text, seeds[k], fractions[f]);
        double u = us_hash_fraction(text, strlen(text), seeds[k]);
        assert_int_equal(split, u < fractions[f] ? US_SPLIT_TEST : US_SPLIT_TRAIN);
        assert_int_equal(split, split_before_the_redesign(text, seeds[k], fractions[f]));
      }
  }
}

/* ---- us_teacher_params --------------------------------------------------------------------- */

static void teacher_defaults_should_pass_their_check(void **state) {
  (void)state;
  us_teacher_params p;
  us_teacher_params_defaults(&p);
  us_err err = {0};
  assert_int_equal(us_teacher_params_check(&p, &err), US_OK);
  assert_null(p.base_url);
  assert_null(p.model);
  assert_null(p.api_key_env);
  assert_int_equal(p.max_tokens, US_TEACHER_DEFAULT_MAX_TOKENS_CLASSIFY);
  p.max_tokens = US_TEACHER_DEFAULT_MAX_TOKENS_GENERATE;
  assert_int_equal(us_teacher_params_check(&p, &err), US_OK);
}

static void teacher_check_should_name_the_field(void **state) {
  (void)state;
  us_teacher_params p;
  us_err err = {0};

  us_teacher_params_defaults(&p);
  p.concurrency = 0;
  expect_refusal(us_teacher_params_check(&p, &err), &err, "concurrency",
                 "expected an integer in [1, 1024], found 0", NULL);

  us_teacher_params_defaults(&p);
  p.timeout_s = 0;
  expect_refusal(us_teacher_params_check(&p, &err), &err, "timeout_s",
                 "expected a number in (0, 3600], found 0", NULL);

  us_teacher_params_defaults(&p);
  p.budget_usd = -1;
  expect_refusal(us_teacher_params_check(&p, &err), &err, "budget_usd",
                 "expected a number >= 0, found -1", NULL);

  us_teacher_params_defaults(&p);
  p.top_logprobs = 21;
  expect_refusal(us_teacher_params_check(&p, &err), &err, "top_logprobs", "[0, 20]", NULL);

  us_teacher_params_defaults(&p);
  p.price_output_per_mtok = 2e6;
  expect_refusal(us_teacher_params_check(&p, &err), &err, "price_output_per_mtok", "[0, 1000000]",
                 NULL);

  us_teacher_params_defaults(&p);
  p.has_seed = true;
  p.seed = INT64_MIN;
  expect_refusal(us_teacher_params_check(&p, &err), &err, "seed", "-9007199254740991", NULL);
  p.has_seed = false; /* an unset seed is never looked at */
  assert_int_equal(us_teacher_params_check(&p, &err), US_OK);
}

static void teacher_budget_should_have_no_upper_bound(void **state) {
  (void)state;
  us_teacher_params p;
  us_teacher_params_defaults(&p);
  p.budget_usd = 1e12;
  us_err err = {0};
  assert_int_equal(us_teacher_params_check(&p, &err), US_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(prompts_defaults_should_pass_their_check),
      cmocka_unit_test(prompts_check_should_name_the_field),
      cmocka_unit_test(prompts_table_should_hold_every_numeric_field_once),
      cmocka_unit_test(split_should_be_bit_identical_to_the_hash_fraction),
      cmocka_unit_test(teacher_defaults_should_pass_their_check),
      cmocka_unit_test(teacher_check_should_name_the_field),
      cmocka_unit_test(teacher_budget_should_have_no_upper_bound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
