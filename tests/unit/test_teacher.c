/* Unit tests of the teacher client's pure parts: label mapping, Chat Completions response
 * parsing (with soft targets from logprobs), Retry-After parsing and full-jitter backoff. */
/* cmocka.h needs the headers before it */
/* clang-format off */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
/* clang-format on */

#include "distill/teacher.h"
#include "distill/teacher_int.h"

static char *sentiment[] = {"positive", "negative", "neutral"};
static char *intents[] = {"card_arrival", "card", "Top-Up Failed", "exchange rate"};

/* ---- label mapping ----------------------------------------------------------------------- */

static void map_should_take_exact_match(void **state) {
  (void)state;
  assert_int_equal(us_answer_map_label("negative", sentiment, 3), 1);
  assert_int_equal(us_answer_map_label("card", intents, 4), 1);
}

static void map_should_ignore_case_space_and_punctuation(void **state) {
  (void)state;
  assert_int_equal(us_answer_map_label("  Positive.\n", sentiment, 3), 0);
  assert_int_equal(us_answer_map_label("NEUTRAL!", sentiment, 3), 2);
  assert_int_equal(us_answer_map_label("card arrival", intents, 4), 0);
  assert_int_equal(us_answer_map_label("top up failed", intents, 4), 2);
  assert_int_equal(us_answer_map_label("\"exchange_rate\"", intents, 4), 3);
}

static void map_should_find_unique_contained_label(void **state) {
  (void)state;
  assert_int_equal(us_answer_map_label("The sentiment is negative.", sentiment, 3), 1);
  assert_int_equal(us_answer_map_label("Label: neutral (low confidence)", sentiment, 3), 2);
  /* "card" lies inside "card arrival": the longer label wins */
  assert_int_equal(us_answer_map_label("This is about card arrival.", intents, 4), 0);
  assert_int_equal(us_answer_map_label("a lost card", intents, 4), 1);
}

static void map_should_require_whole_words(void **state) {
  (void)state;
  /* "nonpositive" contains "positive" as bytes but not as a word */
  assert_int_equal(us_answer_map_label("nonpositive", sentiment, 3), -1);
  assert_int_equal(us_answer_map_label("cardboard", intents, 4), -1);
}

static void map_should_refuse_ambiguous_or_empty(void **state) {
  (void)state;
  assert_int_equal(us_answer_map_label("positive or negative", sentiment, 3), -1);
  assert_int_equal(us_answer_map_label("I cannot tell.", sentiment, 3), -1);
  assert_int_equal(us_answer_map_label("", sentiment, 3), -1);
  assert_int_equal(us_answer_map_label("...", sentiment, 3), -1);
  assert_int_equal(us_answer_map_label(NULL, sentiment, 3), -1);
  char *twins[] = {"a-b", "A B"};
  assert_int_equal(us_answer_map_label("ab", twins, 2), -1);
  assert_int_equal(us_answer_map_label("A B", twins, 2), 1);
}

/* Issue 10, defect 3: a negated label, a non-label that contains a label as a word, and a
 * long answer are unmapped, never guessed. */
/* teacher.structured: the answer string of {"answer": ...}; anything else is not structured. */
static void structured_answer_should_be_read(void **state) {
  (void)state;
  char *a = us_answer_structured("{\"answer\":\"ham\"}");
  assert_non_null(a);
  assert_string_equal(a, "ham");
  free(a);
  assert_null(us_answer_structured("ham"));
  assert_null(us_answer_structured("{\"label\":\"ham\"}"));
  assert_null(us_answer_structured("[\"ham\"]"));
  assert_null(us_answer_structured(NULL));
}

static void map_should_never_guess(void **state) {
  (void)state;
  char *spam[] = {"spam", "ham"};
  char *ab[] = {"a", "b"};
  assert_int_equal(us_answer_map_label("This is not spam.", spam, 2), -1);
  assert_int_equal(us_answer_map_label("It is not positive", sentiment, 3), -1);
  assert_int_equal(us_answer_map_label("definitely_not_a_label", ab, 2), -1);
  assert_int_equal(us_answer_map_label("It isn't spam", spam, 2), -1);
  assert_int_equal(us_answer_map_label("Never negative", sentiment, 3), -1);
  assert_int_equal(us_answer_map_label("spam, not ham", spam, 2), -1);
  assert_int_equal(us_answer_map_label("Having read the whole message twice, I would say that on "
                                       "balance it is spam",
                                       spam, 2),
                   -1);
  /* what is still mapped */
  assert_int_equal(us_answer_map_label("'Spam'", spam, 2), 0);
  assert_int_equal(us_answer_map_label("\xe2\x80\x9cham\xe2\x80\x9d.", spam, 2), 1);
  assert_int_equal(us_answer_map_label("  HAM !", spam, 2), 1);
  assert_int_equal(us_answer_map_label("Answer: spam", spam, 2), 0);
  assert_int_equal(us_answer_map_label("b", ab, 2), 1);
}

/* ---- response parsing -------------------------------------------------------------------- */

static const char *valid_body =
    "{\"id\":\"x\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
    "{\"role\":\"assistant\",\"content\":\"negative\"},\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":57,\"completion_tokens\":2,\"total_tokens\":59}}";

static void parse_should_read_content_and_usage(void **state) {
  (void)state;
  char *content = NULL;
  int pt = 0, ct = 0;
  float soft[3] = {-1, -1, -1};
  bool has_soft = true;
  us_err err = {0};
  assert_int_equal(
      us_response_parse(valid_body, sentiment, 3, &content, &pt, &ct, soft, &has_soft, &err),
      US_OK);
  assert_string_equal(content, "negative");
  assert_int_equal(pt, 57);
  assert_int_equal(ct, 2);
  assert_false(has_soft);
  free(content);
}

static void parse_should_report_missing_usage_as_unknown(void **state) {
  (void)state;
  const char *body = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"hi\"}}]}";
  char *content = NULL;
  int pt = 0, ct = 0;
  us_err err = {0};
  assert_int_equal(us_response_parse(body, NULL, 0, &content, &pt, &ct, NULL, NULL, &err), US_OK);
  assert_string_equal(content, "hi");
  assert_int_equal(pt, -1);
  assert_int_equal(ct, -1);
  free(content);
}

static void parse_should_refuse_malformed_and_truncated(void **state) {
  (void)state;
  size_t n = strlen(valid_body);
  char *truncated = malloc(n);
  memcpy(truncated, valid_body, n - 20);
  truncated[n - 20] = '\0';
  const char *bad[] = {truncated,
                       "",
                       "not json",
                       "[1,2]",
                       "{\"choices\":[]}",
                       "{\"choices\":[{\"message\":{\"content\":null}}]}",
                       "{\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *content = (char *)"sentinel";
    int pt, ct;
    us_err err = {0};
    assert_int_equal(us_response_parse(bad[i], sentiment, 3, &content, &pt, &ct, NULL, NULL, &err),
                     US_ERR_TEACHER);
    assert_null(content);
    assert_true(strlen(err.msg) > 0);
  }
  us_err err = {0};
  char *content;
  int pt, ct;
  us_response_parse(bad[6], sentiment, 3, &content, &pt, &ct, NULL, NULL, &err);
  assert_non_null(strstr(err.msg, "overloaded"));
  us_response_parse(truncated, sentiment, 3, &content, &pt, &ct, NULL, NULL, &err);
  assert_non_null(strstr(err.msg, "truncated"));
  free(truncated);
}

static void parse_should_turn_logprobs_into_soft_distribution(void **state) {
  (void)state;
  /* "neg" (prefix of one label) and " negative" (exact after trim) both go to negative; "pos"
   * to positive; "ne" is a prefix of two labels and "maybe" of none: both dropped. */
  const char *body =
      "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"negative\"},"
      "\"logprobs\":{\"content\":[{\"token\":\"neg\",\"logprob\":-0.2,\"top_logprobs\":["
      "{\"token\":\"neg\",\"logprob\":-0.2},{\"token\":\" negative\",\"logprob\":-3.0},"
      "{\"token\":\"Pos\",\"logprob\":-2.0},{\"token\":\"ne\",\"logprob\":-2.5},"
      "{\"token\":\"maybe\",\"logprob\":-1.5}]}]}}],"
      "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1}}";
  char *content = NULL;
  int pt, ct;
  float soft[3];
  bool has_soft = false;
  us_err err = {0};
  assert_int_equal(us_response_parse(body, sentiment, 3, &content, &pt, &ct, soft, &has_soft, &err),
                   US_OK);
  assert_true(has_soft);
  double neg = exp(-0.2) + exp(-3.0), pos = exp(-2.0), sum = neg + pos;
  assert_float_equal(soft[0] + soft[1] + soft[2], 1.0, 1e-6);
  assert_float_equal(soft[1], neg / sum, 1e-6);
  assert_float_equal(soft[0], pos / sum, 1e-6);
  assert_float_equal(soft[2], 0.0, 1e-9);
  free(content);
}

static void parse_should_skip_soft_when_no_token_names_a_label(void **state) {
  (void)state;
  const char *body =
      "{\"choices\":[{\"message\":{\"content\":\"x\"},\"logprobs\":{\"content\":[{"
      "\"top_logprobs\":[{\"token\":\"x\",\"logprob\":-0.1}]}]}}]}";
  char *content = NULL;
  int pt, ct;
  float soft[3];
  bool has_soft = true;
  assert_int_equal(us_response_parse(body, sentiment, 3, &content, &pt, &ct, soft, &has_soft, NULL),
                   US_OK);
  assert_false(has_soft);
  free(content);
}

/* ---- Retry-After ------------------------------------------------------------------------- */

static void retry_after_should_read_seconds(void **state) {
  (void)state;
  assert_float_equal(us_retry_after_parse("7", NULL, 1e9), 7.0, 1e-9);
  assert_float_equal(us_retry_after_parse(" 0 ", NULL, 1e9), 0.0, 1e-9);
  assert_float_equal(us_retry_after_parse("1.5", "", 1e9), 1.5, 1e-9);
}

static void retry_after_should_read_http_dates(void **state) {
  (void)state;
  /* Sun, 06 Nov 1994 08:49:37 GMT is 784111777 seconds after the epoch */
  double now = 784111777.0 - 30;
  assert_float_equal(us_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", NULL, now), 30, 1e-9);
  assert_float_equal(us_retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", NULL, now), 30, 1e-9);
  assert_float_equal(us_retry_after_parse("Sun Nov  6 08:49:37 1994", NULL, now), 30, 1e-9);
  /* a date in the past means "now" */
  assert_float_equal(us_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", NULL, now + 100), 0,
                     1e-9);
}

static void retry_after_should_prefer_milliseconds(void **state) {
  (void)state;
  assert_float_equal(us_retry_after_parse("5", "250", 0), 0.25, 1e-9);
  assert_float_equal(us_retry_after_parse(NULL, "1500", 0), 1.5, 1e-9);
  /* garbage ms falls back to the seconds header */
  assert_float_equal(us_retry_after_parse("3", "soon", 0), 3.0, 1e-9);
}

static void retry_after_should_reject_garbage(void **state) {
  (void)state;
  assert_true(us_retry_after_parse(NULL, NULL, 0) < 0);
  assert_true(us_retry_after_parse("", "", 0) < 0);
  assert_true(us_retry_after_parse("soon", NULL, 0) < 0);
  assert_true(us_retry_after_parse("-5", NULL, 0) < 0);
  assert_true(us_retry_after_parse("5 apples", NULL, 0) < 0);
  assert_true(us_retry_after_parse("Sun, 06 Nov 1994", NULL, 0) < 0);
  assert_true(us_retry_after_parse(NULL, "-1", 0) < 0);
}

/* ---- backoff ----------------------------------------------------------------------------- */

static void backoff_should_stay_within_cap(void **state) {
  (void)state;
  for (int attempt = 0; attempt < 200; attempt++)
    for (double u = 0; u < 1; u += 0.125) {
      double d = us_backoff_delay(attempt, 0.5, 20, u);
      assert_true(d >= 0);
      assert_true(d <= 20);
    }
  assert_true(us_backoff_delay(1000000, 0.5, 20, 0.999999) <= 20);
  assert_true(us_backoff_delay(3, 0.5, 20, 0.999999) > 3.99);
}

static void backoff_should_span_full_jitter_range(void **state) {
  (void)state;
  /* full jitter: u = 0 gives no wait at all, u near 1 the whole window base * 2^attempt */
  assert_float_equal(us_backoff_delay(4, 0.5, 60, 0.0), 0.0, 1e-12);
  assert_float_equal(us_backoff_delay(4, 0.5, 60, 0.5), 4.0, 1e-12);
  assert_true(us_backoff_delay(4, 0.5, 60, 0.9999) > 7.99);
  assert_true(us_backoff_delay(4, 0.5, 60, 1.0) < 8.0); /* u is clamped below 1 */
}

static void backoff_should_grow_with_attempt(void **state) {
  (void)state;
  double prev = us_backoff_delay(0, 0.25, 1000, 0.75);
  assert_float_equal(prev, 0.1875, 1e-12);
  for (int attempt = 1; attempt < 10; attempt++) {
    double d = us_backoff_delay(attempt, 0.25, 1000, 0.75);
    assert_float_equal(d, 2 * prev, 1e-9);
    prev = d;
  }
  /* once the window reaches the cap, it stays there */
  assert_float_equal(us_backoff_delay(20, 0.25, 1000, 0.5), 500, 1e-9);
}

/* ---- rate limits ------------------------------------------------------------------------- */

static void duration_should_read_openai_reset_forms(void **state) {
  (void)state;
  assert_float_equal(us__duration_parse("1s"), 1.0, 1e-9);
  assert_float_equal(us__duration_parse("20ms"), 0.02, 1e-9);
  assert_float_equal(us__duration_parse("6m0s"), 360.0, 1e-9);
  assert_float_equal(us__duration_parse("1h2m3.5s"), 3723.5, 1e-9);
  assert_float_equal(us__duration_parse("12"), 12.0, 1e-9);
  assert_true(us__duration_parse("") < 0);
  assert_true(us__duration_parse("soon") < 0);
  assert_true(us__duration_parse("5x") < 0);
}

static void headers_should_read_retry_and_rate_limits(void **state) {
  (void)state;
  us__resp_headers h;
  us__resp_headers_reset(&h);
  const char *lines[] = {"HTTP/1.1 429 Too Many Requests\r\n",
                         "Retry-After: 7\r\n",
                         "retry-after-ms: 6500\r\n",
                         "X-RateLimit-Remaining-Requests: 3\r\n",
                         "x-ratelimit-limit-requests: 500\r\n",
                         "x-ratelimit-reset-requests: 1m30s\r\n",
                         "x-ratelimit-remaining-tokens: 1200\r\n",
                         "Content-Type: x\r\n"};
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
    us__resp_headers_line(&h, lines[i], strlen(lines[i]));
  assert_string_equal(h.retry_after, "7");
  assert_string_equal(h.retry_after_ms, "6500");
  assert_float_equal(h.remaining_requests, 3, 1e-9);
  assert_float_equal(h.limit_requests, 500, 1e-9);
  assert_float_equal(h.reset_requests_s, 90, 1e-9);
  assert_float_equal(h.remaining_tokens, 1200, 1e-9);
  assert_true(h.limit_tokens < 0);
  assert_true(h.reset_tokens_s < 0);
  /* a new status line (after 100 Continue, or the next response) forgets the old headers */
  us__resp_headers_line(&h, "HTTP/1.1 200 OK\r\n", 17);
  assert_string_equal(h.retry_after, "");
  assert_true(h.remaining_requests < 0);
}

static void bucket_should_refill_at_its_rate(void **state) {
  (void)state;
  us__bucket b;
  us__bucket_init(&b, 120, 100.0); /* 2 per second, holds one second's worth */
  assert_float_equal(us__bucket_wait(&b, 1, 100.0), 0, 1e-12);
  us__bucket_take(&b, 1);
  assert_float_equal(us__bucket_wait(&b, 1, 100.0), 0, 1e-12);
  us__bucket_take(&b, 1);
  /* empty: the next request waits half a second */
  assert_float_equal(us__bucket_wait(&b, 1, 100.0), 0.5, 1e-9);
  assert_float_equal(us__bucket_wait(&b, 1, 100.25), 0.25, 1e-9);
  assert_float_equal(us__bucket_wait(&b, 1, 100.5), 0, 1e-9);
  /* never fuller than its capacity, however long it sat idle */
  assert_float_equal(us__bucket_wait(&b, 2, 1000.0), 0, 1e-9);
  us__bucket_take(&b, 2);
  assert_float_equal(us__bucket_wait(&b, 1, 1000.0), 0.5, 1e-9);
}

static void bucket_should_admit_requests_larger_than_capacity(void **state) {
  (void)state;
  us__bucket b;
  us__bucket_init(&b, 600, 0.0); /* 10 tokens a second */
  /* 50 tokens needed, 10 held: it may start once the bucket is full, then the debt is repaid */
  assert_float_equal(us__bucket_wait(&b, 50, 0.0), 0, 1e-12);
  us__bucket_take(&b, 50);
  assert_float_equal(us__bucket_wait(&b, 50, 0.0), 5.0, 1e-9);
  us__bucket b_off;
  us__bucket_init(&b_off, 0, 0.0); /* 0: no limit */
  us__bucket_take(&b_off, 1e9);
  assert_float_equal(us__bucket_wait(&b_off, 1e9, 0.0), 0, 1e-12);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(map_should_take_exact_match),
      cmocka_unit_test(map_should_ignore_case_space_and_punctuation),
      cmocka_unit_test(map_should_find_unique_contained_label),
      cmocka_unit_test(map_should_require_whole_words),
      cmocka_unit_test(map_should_refuse_ambiguous_or_empty),
      cmocka_unit_test(map_should_never_guess),
      cmocka_unit_test(structured_answer_should_be_read),
      cmocka_unit_test(parse_should_read_content_and_usage),
      cmocka_unit_test(parse_should_report_missing_usage_as_unknown),
      cmocka_unit_test(parse_should_refuse_malformed_and_truncated),
      cmocka_unit_test(parse_should_turn_logprobs_into_soft_distribution),
      cmocka_unit_test(parse_should_skip_soft_when_no_token_names_a_label),
      cmocka_unit_test(retry_after_should_read_seconds),
      cmocka_unit_test(retry_after_should_read_http_dates),
      cmocka_unit_test(retry_after_should_prefer_milliseconds),
      cmocka_unit_test(retry_after_should_reject_garbage),
      cmocka_unit_test(backoff_should_stay_within_cap),
      cmocka_unit_test(backoff_should_span_full_jitter_range),
      cmocka_unit_test(backoff_should_grow_with_attempt),
      cmocka_unit_test(duration_should_read_openai_reset_forms),
      cmocka_unit_test(headers_should_read_retry_and_rate_limits),
      cmocka_unit_test(bucket_should_refill_at_its_rate),
      cmocka_unit_test(bucket_should_admit_requests_larger_than_capacity),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
