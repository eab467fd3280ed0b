/* Prices that match the invoice: the usage kinds read from a response (cached prompt tokens,
 * reasoning tokens inside or outside completion_tokens), the cost of a call by kind, and
 * teacher.price.cached_input_per_mtok's "same as input" default. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "distill/request.h"
#include "distill/teacher.h"

static void usage_should_read_cached_and_reasoning_tokens(void **state) {
  (void)state;
  us_usage u;
  us_response_usage(
      "{\"choices\":[],\"usage\":{\"prompt_tokens\":2000,\"completion_tokens\":300,"
      "\"total_tokens\":2300,\"prompt_tokens_details\":{\"cached_tokens\":1536},"
      "\"completion_tokens_details\":{\"reasoning_tokens\":256}}}",
      &u);
  assert_int_equal(u.prompt_tokens, 2000);
  assert_int_equal(u.cached_tokens, 1536);
  assert_int_equal(u.completion_tokens, 300); /* OpenAI: reasoning is inside completion */
  assert_int_equal(u.reasoning_tokens, 256);
}

static void usage_should_add_reasoning_a_provider_reports_outside_completion(void **state) {
  (void)state;
  us_usage u;
  /* total = prompt + completion + reasoning: the reasoning was not in completion_tokens */
  us_response_usage(
      "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":115,"
      "\"completion_tokens_details\":{\"reasoning_tokens\":100}}}",
      &u);
  assert_int_equal(u.completion_tokens, 105);
  assert_int_equal(u.reasoning_tokens, 100);
  /* more reasoning than completion tokens, no total: outside too */
  us_response_usage(
      "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,"
      "\"completion_tokens_details\":{\"reasoning_tokens\":40}}}",
      &u);
  assert_int_equal(u.completion_tokens, 45);
}

static void usage_should_default_the_kinds_to_zero_and_cap_cached(void **state) {
  (void)state;
  us_usage u;
  us_response_usage("{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2}}", &u);
  assert_int_equal(u.cached_tokens, 0);
  assert_int_equal(u.reasoning_tokens, 0);
  us_response_usage(
      "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,"
      "\"prompt_tokens_details\":{\"cached_tokens\":99}}}",
      &u);
  assert_int_equal(u.cached_tokens, 10);
  us_response_usage("{\"choices\":[]}", &u);
  assert_int_equal(u.prompt_tokens, -1);
  assert_int_equal(u.completion_tokens, -1);
  us_response_usage("not json", &u);
  assert_int_equal(u.prompt_tokens, -1);
}

static void cost_should_price_each_kind(void **state) {
  (void)state;
  us_teacher_params p;
  us_teacher_params_defaults(&p);
  p.price_input_per_mtok = 2.5;
  p.price_output_per_mtok = 10;
  p.price_cached_input_per_mtok = 1.25;
  us_usage u = {2000, 300, 1536, 256};
  us_call_cost c;
  us_teacher_call_cost(&p, &u, &c);
  assert_true(fabs(c.input_usd - 464 * 2.5 / 1e6) < 1e-15);
  assert_true(fabs(c.cached_usd - 1536 * 1.25 / 1e6) < 1e-15);
  assert_true(fabs(c.output_usd - 44 * 10 / 1e6) < 1e-15);
  assert_true(fabs(c.reasoning_usd - 256 * 10 / 1e6) < 1e-15);
  assert_true(fabs(c.total_usd - (464 * 2.5 + 1536 * 1.25 + 300 * 10) / 1e6) < 1e-15);
}

static void cached_price_should_default_to_the_input_price(void **state) {
  (void)state;
  us_teacher_params p;
  us_teacher_params_defaults(&p);
  assert_true(p.price_cached_input_per_mtok == US_TEACHER_PRICE_SAME_AS_INPUT);
  p.price_input_per_mtok = 3;
  assert_true(us_teacher_cached_price(&p) == 3);
  us_usage u = {1000, 0, 1000, 0};
  us_call_cost c;
  us_teacher_call_cost(&p, &u, &c);
  assert_true(fabs(c.total_usd - 1000 * 3 / 1e6) < 1e-15); /* as billed before the key existed */
  p.price_cached_input_per_mtok = 0;                       /* a provider that caches for free */
  assert_true(us_teacher_cached_price(&p) == 0);
  us_err err = {0};
  assert_int_equal(us_teacher_params_check(&p, &err), US_OK);
}

static void cached_price_check_should_refuse_other_negatives(void **state) {
  (void)state;
  us_teacher_params p;
  us_teacher_params_defaults(&p);
  us_err err = {0};
  assert_int_equal(us_teacher_params_check(&p, &err), US_OK);
  p.price_cached_input_per_mtok = -0.5;
  assert_int_equal(us_teacher_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "price_cached_input_per_mtok: "));
  assert_non_null(strstr(err.msg, "-1 for the input price"));
  p.price_cached_input_per_mtok = -2;
  assert_int_equal(us_teacher_params_check(&p, &err), US_ERR_CONFIG);
  assert_int_equal(strncmp(err.msg, "price_cached_input_per_mtok: ", 29), 0);
}

/* The workspace keeps each call's kinds and every request that may have been billed without an
 * answer; a call stored without kinds (before schema 6) keeps its cost whole ("unsplit"). */
static void workspace_should_sum_spend_by_kind_and_unanswered(void **state) {
  (void)state;
  char dir[] = "/tmp/us-test-pricing.XXXXXX", path[64];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/understudy.db", dir);
  us_cache *c = NULL;
  us_err err = {0};
  assert_int_equal(us_cache_open(path, &c, &err), US_OK);
  us_call call;
  memset(&call, 0, sizeof call);
  call.request = "{}", call.response = "{}", call.http_status = 200, call.attempts = 1;
  snprintf(call.key, sizeof call.key, "k1");
  call.prompt_tokens = 2000, call.completion_tokens = 300, call.cost_usd = 0.0062;
  assert_int_equal(us_cache_call_put(c, &call, NULL, &err), US_OK);
  us_call_kinds kinds = {1536, 256, 0.00116, 0.00192, 0.00044, 0.00256};
  assert_int_equal(us_cache_call_kinds_put(c, "k1", &kinds, &err), US_OK);
  snprintf(call.key, sizeof call.key, "k2"); /* an older call: no kinds */
  call.prompt_tokens = 10, call.completion_tokens = 2, call.cost_usd = 0.5;
  assert_int_equal(us_cache_call_put(c, &call, NULL, &err), US_OK);
  assert_int_equal(us_cache_unanswered_put(c, "k3", 7, 0.25, "timed out", &err), US_OK);
  assert_int_equal(us_cache_unanswered_put(c, "k3", 7, 0.25, "reset", &err), US_OK);
  us_cache_spend s;
  assert_int_equal(us_cache_spend_get(c, &s, &err), US_OK);
  assert_int_equal(s.prompt_tokens, 2010);
  assert_int_equal(s.cached_tokens, 1536);
  assert_int_equal(s.completion_tokens, 302);
  assert_int_equal(s.reasoning_tokens, 256);
  assert_true(fabs(s.input_usd - 0.00116) < 1e-12 && fabs(s.cached_usd - 0.00192) < 1e-12);
  assert_true(fabs(s.output_usd - 0.00044) < 1e-12 && fabs(s.reasoning_usd - 0.00256) < 1e-12);
  assert_true(fabs(s.unsplit_usd - 0.5) < 1e-12);
  assert_true(fabs(s.total_usd - 0.5062) < 1e-12);
  assert_int_equal(s.unanswered, 2); /* each attempt may have been billed */
  assert_true(fabs(s.unanswered_usd - 0.5) < 1e-12);
  us_cache_close(c);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

/* Providers cache a request's prefix: two prompts' bodies must agree byte for byte through the
 * system message (instructions with the labels) and the template up to the prompt text. */
static void requests_should_share_a_byte_identical_prefix(void **state) {
  (void)state;
  char *labels[] = {"billing", "tech", "other"};
  us_task task = {.type = US_TASK_CLASSIFY,
                  .labels = labels,
                  .n_labels = 3,
                  .instructions = "Sort messages. Labels: {labels}. Answer with one label.",
                  .template = "Labels: {labels}\nMessage: {text}\nLabel:"};
  us_teacher_params p;
  us_teacher_params_defaults(&p);
  p.model = "m";
  char *a = NULL, *b = NULL, ka[65], kb[65];
  us_err err = {0};
  assert_int_equal(us_request_build(&task, &p, "my card was charged twice", &a, ka, &err), US_OK);
  assert_int_equal(us_request_build(&task, &p, "the app crashes", &b, kb, &err), US_OK);
  size_t common = 0;
  while (a[common] && a[common] == b[common]) common++;
  const char *text = strstr(a, "my card was charged twice");
  assert_non_null(text);
  assert_int_equal(common, (size_t)(text - a)); /* everything before the text is shared */
  const char *sys = strstr(a, "Sort messages. Labels: billing, tech, other.");
  const char *user = strstr(a, "Labels: billing, tech, other\\nMessage: ");
  assert_non_null(sys);
  assert_non_null(user);
  assert_true(sys < user && user < text); /* system message first, then the template's head */
  free(a);
  free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(usage_should_read_cached_and_reasoning_tokens),
      cmocka_unit_test(usage_should_add_reasoning_a_provider_reports_outside_completion),
      cmocka_unit_test(usage_should_default_the_kinds_to_zero_and_cap_cached),
      cmocka_unit_test(cost_should_price_each_kind),
      cmocka_unit_test(cached_price_should_default_to_the_input_price),
      cmocka_unit_test(cached_price_check_should_refuse_other_negatives),
      cmocka_unit_test(workspace_should_sum_spend_by_kind_and_unanswered),
      cmocka_unit_test(requests_should_share_a_byte_identical_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
