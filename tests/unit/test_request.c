/* Canonical request bodies and cache keys: independent of key order, white space and string
 * escaping; different for every parameter that can change the answer; free of credentials.
 * The golden bodies and keys were computed independently (Python's json.dumps with sorted keys
 * and compact separators, then hashlib.sha256); if they change, every cached answer is lost. */
/* cmocka.h needs these four first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "distill/request.h"
#include "pipeline/config.h"

static void load_fixture(us_config *c, const char *const *sets, int n_sets) {
  char path[PATH_MAX];
  const char *src = getenv("US_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/tests/data/config/minimal.json", src ? src : "../..");
  us_err err = {0};
  if (us_config_load(path, sets, n_sets, c, &err) != US_OK) fail_msg("%s", err.msg);
}

static void canonical_should_equal(const char *json, const char *want) {
  char *out = NULL;
  us_err err = {0};
  if (us_json_canonical(json, &out, &err) != US_OK) fail_msg("%s", err.msg);
  assert_string_equal(out, want);
  free(out);
}

/* Key of one prompt under a config loaded with the given overrides. */
static void key_with(const char *const *sets, int n_sets, const char *text, char key[65]) {
  us_config c;
  load_fixture(&c, sets, n_sets);
  char *body = NULL;
  us_err err = {0};
  if (us_request_build(&c.task, &c.teacher, text, &body, key, &err) != US_OK)
    fail_msg("%s", err.msg);
  free(body);
  us_config_free(&c);
}

/* ---- canonical JSON -------------------------------------------------------------------------- */

static void canonical_should_sort_keys_at_every_depth(void **state) {
  (void)state;
  canonical_should_equal("{\"b\":{\"z\":1,\"a\":[{\"y\":2,\"x\":1}]},\"a\":true,\"B\":null}",
                         "{\"B\":null,\"a\":true,\"b\":{\"a\":[{\"x\":1,\"y\":2}],\"z\":1}}");
  /* arrays keep their order */
  canonical_should_equal("[3,1,2]", "[3,1,2]");
  /* byte order: "a_b" < "ab" because '_' (0x5f) < 'b' (0x62) */
  canonical_should_equal("{\"ab\":1,\"a_b\":2}", "{\"a_b\":2,\"ab\":1}");
}

static void canonical_should_ignore_white_space(void **state) {
  (void)state;
  canonical_should_equal(" {\n\t\"model\" :  \"m\",\r\n \"n\": [ 1 , 2.5 ] } \n",
                         "{\"model\":\"m\",\"n\":[1,2.5]}");
}

static void canonical_should_treat_escaped_and_raw_utf8_alike(void **state) {
  (void)state;
  char *a = NULL, *b = NULL;
  us_err err = {0};
  assert_int_equal(us_json_canonical("{\"t\":\"caf\\u00e9 \\ud83d\\ude00 \\u4e2d\"}", &a, &err),
                   US_OK);
  assert_int_equal(us_json_canonical("{\"t\":\"café 😀 中\"}", &b, &err), US_OK);
  assert_string_equal(a, b);
  assert_string_equal(a, "{\"t\":\"café 😀 中\"}");
  free(a);
  free(b);
  /* control characters and quotes come out escaped the same way either way */
  canonical_should_equal("{\"t\":\"a\\u000ab\\\"c\\/d\"}", "{\"t\":\"a\\nb\\\"c/d\"}");
}

static void canonical_should_refuse_invalid_json(void **state) {
  (void)state;
  char *out = NULL;
  us_err err = {0};
  assert_int_equal(us_json_canonical("{\"a\":1,}", &out, &err), US_ERR_INPUT);
  assert_null(out);
  assert_non_null(strstr(err.msg, "invalid JSON"));
  assert_int_equal(us_json_canonical("{\"a\":1} trailing", &out, &err), US_ERR_INPUT);
  assert_null(out);
}

/* ---- request bodies and keys ----------------------------------------------------------------- */

static void request_should_match_the_golden_body_and_key(void **state) {
  (void)state;
  us_config c;
  load_fixture(&c, NULL, 0);
  char *body = NULL, key[65];
  us_err err = {0};
  assert_int_equal(
      us_request_build(&c.task, &c.teacher, "I lost my card in Zürich", &body, key, &err), US_OK);
  assert_string_equal(
      body,
      "{\"max_tokens\":16,\"messages\":[{\"content\":\"You are a careful classifier. Reply "
      "with exactly one label from the list.\",\"role\":\"system\"},{\"content\":\"Classify "
      "this message into one of: card_lost, refund, balance.\\nAnswer with the label "
      "only.\\n\\nMessage:\\nI lost my card in Zürich\",\"role\":\"user\"}],\"model\":"
      "\"gpt-4o-mini\",\"temperature\":0}");
  assert_string_equal(key, "688f8d7960fb5f3248bc39efe72a3cf7e5278d6886f5683bda893655aef691aa");
  free(body);
  us_config_free(&c);
}

/* teacher.structured: a response_format JSON schema whose answer is an enum of the labels; off,
 * the body (and key) is the golden one above. */
static void structured_should_send_an_enum_of_the_labels(void **state) {
  (void)state;
  us_config c;
  load_fixture(&c, (const char *const[]){"teacher.structured=true"}, 1);
  char *body = NULL, key[65];
  us_err err = {0};
  assert_int_equal(
      us_request_build(&c.task, &c.teacher, "I lost my card in Zürich", &body, key, &err), US_OK);
  assert_non_null(
      strstr(body,
             "\"response_format\":{\"json_schema\":{\"name\":\"label\",\"schema\":{"
             "\"additionalProperties\":false,\"properties\":{\"answer\":{\"enum\":[\"card_lost\","
             "\"refund\",\"balance\"],\"type\":\"string\"}},\"required\":[\"answer\"],\"type\":"
             "\"object\"},\"strict\":true},\"type\":\"json_schema\"}"));
  assert_string_not_equal(key, "688f8d7960fb5f3248bc39efe72a3cf7e5278d6886f5683bda893655aef691aa");
  free(body);
  us_config_free(&c);
  load_fixture(&c, (const char *const[]){"teacher.structured=false"}, 1);
  assert_int_equal(
      us_request_build(&c.task, &c.teacher, "I lost my card in Zürich", &body, key, &err), US_OK);
  assert_null(strstr(body, "response_format"));
  assert_string_equal(key, "688f8d7960fb5f3248bc39efe72a3cf7e5278d6886f5683bda893655aef691aa");
  free(body);
  us_config_free(&c);
}

static void seed_and_logprobs_should_appear_only_when_set(void **state) {
  (void)state;
  us_config c;
  load_fixture(
      &c,
      (const char *const[]){"teacher.temperature=0.7", "teacher.seed=42", "teacher.logprobs=true"},
      3);
  char *body = NULL, key[65];
  us_err err = {0};
  assert_int_equal(
      us_request_build(&c.task, &c.teacher, "I lost my card in Zürich", &body, key, &err), US_OK);
  assert_non_null(strstr(body, "\"logprobs\":true,"));
  assert_non_null(strstr(body, "\"seed\":42,"));
  assert_non_null(strstr(body, "\"temperature\":0.7,\"top_logprobs\":5}"));
  assert_string_equal(key, "42201e10036f01124cfa9058e97fcf20e55d5ec8e7c1cbaeba379af14ecbeee8");
  free(body);
  us_config_free(&c);
  load_fixture(&c, NULL, 0);
  assert_int_equal(us_request_build(&c.task, &c.teacher, "x", &body, key, &err), US_OK);
  assert_null(strstr(body, "seed"));
  assert_null(strstr(body, "logprobs"));
  free(body);
  us_config_free(&c);
}

static void key_should_be_the_sha256_of_a_canonical_body(void **state) {
  (void)state;
  us_config c;
  load_fixture(&c, NULL, 0);
  char *body = NULL, *again = NULL, *second = NULL, key[65], key2[65], digest[65];
  us_err err = {0};
  assert_int_equal(us_request_build(&c.task, &c.teacher, "hello", &body, key, &err), US_OK);
  /* the body is already canonical: canonicalising it again changes nothing */
  assert_int_equal(us_json_canonical(body, &again, &err), US_OK);
  assert_string_equal(body, again);
  us_sha256_hex(body, strlen(body), digest);
  assert_string_equal(key, digest);
  /* the build is deterministic */
  assert_int_equal(us_request_build(&c.task, &c.teacher, "hello", &second, key2, &err), US_OK);
  assert_string_equal(second, body);
  assert_string_equal(key2, key);
  free(body);
  free(again);
  free(second);
  us_config_free(&c);
}

static void every_answer_changing_parameter_should_change_the_key(void **state) {
  (void)state;
  char base[65], k[65];
  key_with(NULL, 0, "hello", base);
  static const char *const variants[] = {
      "teacher.temperature=0.5", "teacher.model=gpt-4o",      "teacher.max_tokens=17",
      "teacher.seed=1",          "teacher.logprobs=true",     "task.instructions=Be terse.",
      "task.template=>{text}",   "task.labels=[\"a\",\"b\"]",
  };
  for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
    key_with((const char *const[]){variants[i]}, 1, "hello", k);
    if (strcmp(k, base) == 0) fail_msg("--set %s did not change the key", variants[i]);
  }
  key_with(NULL, 0, "hello!", k);
  assert_string_not_equal(k, base);
  /* logprobs on: top_logprobs matters too */
  char lp5[65], lp3[65];
  key_with((const char *const[]){"teacher.logprobs=true"}, 1, "hello", lp5);
  key_with((const char *const[]){"teacher.logprobs=true", "teacher.top_logprobs=3"}, 2, "hello",
           lp3);
  assert_string_not_equal(lp5, lp3);
}

static void settings_that_cannot_change_the_answer_should_keep_the_key(void **state) {
  (void)state;
  char base[65], k[65];
  key_with(NULL, 0, "hello", base);
  static const char *const same[] = {
      "teacher.concurrency=64",
      "teacher.timeout_s=5",
      "teacher.budget_usd=1",
      "teacher.base_url=http://127.0.0.1:9/v1",
      "teacher.api_key_env=OTHER_KEY",
      "teacher.headers={\"api-key\":\"hdr-secret\"}",
      "teacher.top_logprobs=3", /* logprobs off */
      "student.epochs=3",
  };
  for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
    key_with((const char *const[]){same[i]}, 1, "hello", k);
    if (strcmp(k, base) != 0) fail_msg("--set %s changed the key", same[i]);
  }
}

static void headers_and_api_key_should_not_be_in_the_body(void **state) {
  (void)state;
  setenv("US_TEST_REQUEST_KEY", "sk-test-do-not-leak", 1);
  us_config c;
  load_fixture(&c,
               (const char *const[]){"teacher.api_key_env=US_TEST_REQUEST_KEY",
                                     "teacher.headers={\"api-key\":\"hdr-do-not-leak\"}"},
               2);
  char *body = NULL, key[65];
  us_err err = {0};
  assert_int_equal(us_request_build(&c.task, &c.teacher, "hello", &body, key, &err), US_OK);
  assert_null(strstr(body, "sk-test-do-not-leak"));
  assert_null(strstr(body, "hdr-do-not-leak"));
  assert_null(strstr(body, "api-key"));
  assert_null(strstr(body, "US_TEST_REQUEST_KEY"));
  assert_null(strstr(body, "Authorization"));
  free(body);
  us_config_free(&c);
  unsetenv("US_TEST_REQUEST_KEY");
}

static void empty_instructions_should_send_no_system_message(void **state) {
  (void)state;
  us_config c;
  load_fixture(&c, (const char *const[]){"task.instructions="}, 1);
  char *body = NULL, key[65];
  us_err err = {0};
  assert_int_equal(us_request_build(&c.task, &c.teacher, "hello", &body, key, &err), US_OK);
  assert_null(strstr(body, "\"system\""));
  assert_non_null(strstr(body, "\"role\":\"user\""));
  free(body);
  us_config_free(&c);
}

/* ---- imported logs --------------------------------------------------------------------------- */

static void logged_messages_should_get_the_live_key(void **state) {
  (void)state;
  us_config c;
  load_fixture(&c, NULL, 0);
  char *live = NULL, *imported = NULL, live_key[65], imported_key[65];
  us_err err = {0};
  assert_int_equal(
      us_request_build(&c.task, &c.teacher, "I lost my card in Zürich", &live, live_key, &err),
      US_OK);
  /* as a logging tool might write it: other key order, white space, escapes, extra fields */
  const char *logged =
      "[ {\"content\": \"You are a careful classifier. Reply with exactly one label from the "
      "list.\", \"role\": \"system\", \"name\": null},\n"
      "  {\"role\": \"user\", \"content\": \"Classify this message into one of: card_lost, refund, "
      "balance.\\nAnswer with the label only.\\n\\nMessage:\\nI lost my card in Z\\u00fcrich\"} ]";
  assert_int_equal(us_request_key_for_messages(&c.teacher, logged, &imported, imported_key, &err),
                   US_OK);
  assert_string_equal(imported, live);
  assert_string_equal(imported_key, live_key);
  free(live);
  free(imported);
  /* built from explicit messages, the same */
  char *explicit = NULL, explicit_key[65];
  char *system = NULL, *user = NULL;
  assert_int_equal(us_config_render(&c, "I lost my card in Zürich", &system, &user, &err), US_OK);
  assert_int_equal(
      us_request_build_messages(&c.teacher, system, user, &explicit, explicit_key, &err), US_OK);
  assert_string_equal(explicit_key, live_key);
  free(system);
  free(user);
  free(explicit);
  us_config_free(&c);
}

static void logged_messages_should_be_checked(void **state) {
  (void)state;
  us_config c;
  load_fixture(&c, NULL, 0);
  char *body = NULL, key[65];
  us_err err = {0};
  assert_int_equal(us_request_key_for_messages(&c.teacher, "{\"role\":\"user\"}", &body, key, &err),
                   US_ERR_INPUT);
  assert_null(body);
  assert_int_equal(us_request_key_for_messages(&c.teacher, "[]", &body, key, &err), US_ERR_INPUT);
  assert_int_equal(us_request_key_for_messages(&c.teacher, "[{\"role\":\"user\",\"content\":[1]}]",
                                               &body, key, &err),
                   US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "messages[0]"));
  assert_int_equal(us_request_key_for_messages(&c.teacher, "not json", &body, key, &err),
                   US_ERR_INPUT);
  assert_null(body);
  us_config_free(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(canonical_should_sort_keys_at_every_depth),
      cmocka_unit_test(canonical_should_ignore_white_space),
      cmocka_unit_test(canonical_should_treat_escaped_and_raw_utf8_alike),
      cmocka_unit_test(canonical_should_refuse_invalid_json),
      cmocka_unit_test(request_should_match_the_golden_body_and_key),
      cmocka_unit_test(seed_and_logprobs_should_appear_only_when_set),
      cmocka_unit_test(key_should_be_the_sha256_of_a_canonical_body),
      cmocka_unit_test(every_answer_changing_parameter_should_change_the_key),
      cmocka_unit_test(settings_that_cannot_change_the_answer_should_keep_the_key),
      cmocka_unit_test(headers_and_api_key_should_not_be_in_the_body),
      cmocka_unit_test(empty_instructions_should_send_no_system_message),
      cmocka_unit_test(logged_messages_should_get_the_live_key),
      cmocka_unit_test(logged_messages_should_be_checked),
      cmocka_unit_test(structured_should_send_an_enum_of_the_labels),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
