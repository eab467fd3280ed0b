/* The Batch API's pieces on their own: the JSONL input line for a request (custom_id = the
 * cache key, the canonical body unchanged), the output and error file lines read back, the
 * batch settings' defaults and refusals, and the workspace's batch records (schema 5). */
/* cmocka.h needs these four first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "core/buf.h"
#include "core/task.h"
#include "distill/request.h"
#include "distill/teacher.h"
#include "distill/teacher_int.h"

static void line_should_carry_the_key_and_the_canonical_body_unchanged(void **state) {
  (void)state;
  char *labels[] = {"billing", "tech"};
  us_task task = {.type = US_TASK_CLASSIFY,
                  .labels = labels,
                  .n_labels = 2,
                  .instructions = "Pick one.",
                  .template = "Classify: {text}\n\"quoted\" {labels}"};
  us_teacher_params p;
  us_teacher_params_defaults(&p);
  p.model = "gpt-x";
  char *body = NULL, key[65];
  us_err err = {0};
  assert_int_equal(us_request_build(&task, &p, "my card \u00e9 was charged", &body, key, &err),
                   US_OK);
  us_buf line;
  us_buf_init(&line, 0);
  assert_int_equal(us__batch_line(&line, key, body, &err), US_OK);
  assert_int_equal(us__batch_line(&line, key, body, &err), US_OK);
  /* one line per request, each a JSON object */
  char *nl = memchr(line.data, '\n', line.len);
  assert_non_null(nl);
  assert_int_equal((size_t)(nl - line.data + 1) * 2, line.len);
  cJSON *o = cJSON_ParseWithLength(line.data, (size_t)(nl - line.data));
  assert_non_null(o);
  assert_string_equal(cJSON_GetObjectItem(o, "custom_id")->valuestring, key);
  assert_string_equal(cJSON_GetObjectItem(o, "method")->valuestring, "POST");
  assert_string_equal(cJSON_GetObjectItem(o, "url")->valuestring, "/v1/chat/completions");
  /* the body is the live request, byte for byte: its SHA-256 is the cache key */
  assert_non_null(strstr(line.data, body));
  char *again = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "body"));
  char *canonical = NULL;
  assert_int_equal(us_json_canonical(again, &canonical, &err), US_OK);
  assert_string_equal(canonical, body);
  free(again);
  free(canonical);
  cJSON_Delete(o);
  us_buf_free(&line);
  free(body);
}

static void parse_should_read_an_output_line(void **state) {
  (void)state;
  const char *line =
      "{\"id\":\"batch_req_1\",\"custom_id\":\"abc123\",\"response\":{\"status_code\":200,"
      "\"request_id\":\"req_1\",\"body\":{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\","
      "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"billing\"},"
      "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":1,"
      "\"total_tokens\":13}}},\"error\":null}";
  char id[65], message[256];
  long status = -1;
  char *body = NULL;
  assert_true(
      us__batch_parse_line(line, strlen(line), id, &status, &body, message, sizeof message));
  assert_string_equal(id, "abc123");
  assert_int_equal(status, 200);
  assert_non_null(body);
  /* the body reads as a live response */
  char *content = NULL;
  int pt = 0, ct = 0;
  us_err err = {0};
  assert_int_equal(us_response_parse(body, NULL, 0, &content, &pt, &ct, NULL, NULL, &err), US_OK);
  assert_string_equal(content, "billing");
  assert_int_equal(pt, 12);
  assert_int_equal(ct, 1);
  free(content);
  free(body);
}

static void parse_should_read_error_lines(void **state) {
  (void)state;
  char id[65], message[256];
  long status = -1;
  char *body = NULL;
  const char *expired =
      "{\"id\":\"batch_req_2\",\"custom_id\":\"k2\",\"response\":null,\"error\":{\"code\":"
      "\"batch_expired\",\"message\":\"This request could not be executed before the "
      "completion window expired.\"}}";
  assert_true(
      us__batch_parse_line(expired, strlen(expired), id, &status, &body, message, sizeof message));
  assert_string_equal(id, "k2");
  assert_int_equal(status, 0);
  assert_null(body);
  assert_non_null(strstr(message, "batch_expired: This request"));
  const char *server =
      "{\"id\":\"batch_req_3\",\"custom_id\":\"k3\",\"response\":{\"status_code\":500,"
      "\"request_id\":\"r\",\"body\":{\"error\":{\"message\":\"oops\",\"type\":\"server_error\"}}},"
      "\"error\":null}";
  assert_true(
      us__batch_parse_line(server, strlen(server), id, &status, &body, message, sizeof message));
  assert_string_equal(id, "k3");
  assert_int_equal(status, 500);
  assert_non_null(strstr(body, "oops"));
  free(body);
  /* not output lines */
  const char *bad[] = {"", "not json", "{\"response\":null}", "[1,2]",
                       "{\"custom_id\":\"x\",\"response\":null,\"error\":null}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_false(
        us__batch_parse_line(bad[i], strlen(bad[i]), id, &status, &body, message, sizeof message));
    assert_null(body);
  }
  /* a custom_id longer than a key is refused, never truncated into another key */
  char long_id[200];
  snprintf(long_id, sizeof long_id, "{\"custom_id\":\"%080d\",\"error\":{\"code\":\"x\"}}", 7);
  assert_false(
      us__batch_parse_line(long_id, strlen(long_id), id, &status, &body, message, sizeof message));
}

static void settings_should_default_and_refuse(void **state) {
  (void)state;
  us_teacher_params p;
  us_teacher_params_defaults(&p);
  assert_null(p.mode); /* US_TEACHER_DEFAULT_MODE */
  assert_string_equal(US_TEACHER_DEFAULT_MODE, "live");
  assert_string_equal(US_TEACHER_DEFAULT_BATCH_RETRY, "batch");
  assert_int_equal(p.batch_max_requests, 50000);
  assert_true(p.price_batch_discount == 0.5);
  assert_true(p.batch_poll_s > 0);
  us_err err = {0};
  assert_int_equal(us_teacher_params_check(&p, &err), US_OK);
  p.mode = "batch";
  p.batch_retry = "live";
  assert_int_equal(us_teacher_params_check(&p, &err), US_OK);
  p.mode = "bulk";
  assert_int_equal(us_teacher_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "mode: expected \"live\" or \"batch\", found \"bulk\""));
  p.mode = "batch";
  p.batch_retry = "never";
  assert_int_equal(us_teacher_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "batch_retry: expected"));
  p.batch_retry = NULL;
  p.batch_max_requests = 50001;
  assert_int_equal(us_teacher_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "batch_max_requests: "));
  p.batch_max_requests = 10;
  p.price_batch_discount = 1.5;
  assert_int_equal(us_teacher_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "price_batch_discount: "));
  p.price_batch_discount = 0.5;
  p.batch_poll_s = 0;
  assert_int_equal(us_teacher_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "batch_poll_s: "));
}

static void cache_should_keep_open_batches_until_collected(void **state) {
  (void)state;
  char path[] = "/tmp/us-test-batch-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  unlink(path);
  us_cache *c = NULL;
  us_err err = {0};
  assert_int_equal(us_cache_open(path, &c, &err), US_OK);
  assert_true(us_cache_schema_version(c) >= 5);
  const char *keys[] = {"bbb", "aaa", "ccc"};
  assert_int_equal(us_cache_batch_add(c, "batch_1", "file-1", "validating", keys, 3, &err), US_OK);
  assert_int_equal(us_cache_batch_add(c, "batch_2", "file-2", "validating", keys, 1, &err), US_OK);
  /* inside the caller's transaction, rolled back with it */
  assert_int_equal(us_cache_begin(c, &err), US_OK);
  assert_int_equal(us_cache_batch_add(c, "batch_3", "file-3", "validating", keys, 2, &err), US_OK);
  assert_int_equal(us_cache_rollback(c, &err), US_OK);
  us_batch *open = NULL;
  size_t n = 0;
  assert_int_equal(us_cache_batches_open(c, &open, &n, &err), US_OK);
  assert_int_equal(n, 2);
  assert_string_equal(open[0].id, "batch_1");
  assert_string_equal(open[0].input_file_id, "file-1");
  assert_int_equal(open[0].n_requests, 3);
  char(*got)[65] = NULL;
  size_t n_got = 0;
  assert_int_equal(us_cache_batch_keys(c, "batch_1", &got, &n_got, &err), US_OK);
  assert_int_equal(n_got, 3);
  assert_string_equal(got[0], "aaa"); /* sorted */
  assert_string_equal(got[2], "ccc");
  free(got);
  assert_int_equal(open[1].n_requests, 1);
  us_batches_free(open, n);
  bool in_open = false;
  assert_int_equal(us_cache_batch_key_open(c, "ccc", &in_open, &err), US_OK);
  assert_true(in_open);
  assert_int_equal(us_cache_batch_status(c, "batch_1", "in_progress", 2, 0, &err), US_OK);
  assert_int_equal(us_cache_batch_collected(c, "batch_1", "completed", 3, 0.5, 1.0, &err), US_OK);
  assert_int_equal(us_cache_batches_open(c, &open, &n, &err), US_OK);
  assert_int_equal(n, 1);
  assert_string_equal(open[0].id, "batch_2");
  us_batches_free(open, n);
  /* a pending row becomes the batch, its requests with it; or goes, with them */
  assert_int_equal(us_cache_batch_add(c, "pending:file-9", "file-9", "creating", keys, 2, &err),
                   US_OK);
  assert_int_equal(us_cache_batch_rename(c, "pending:file-9", "batch_9", "validating", &err),
                   US_OK);
  assert_int_equal(us_cache_batch_add(c, "pending:file-8", "file-8", "creating", keys, 1, &err),
                   US_OK);
  assert_int_equal(us_cache_batch_delete(c, "pending:file-8", &err), US_OK);
  assert_int_equal(us_cache_batches_open(c, &open, &n, &err), US_OK);
  assert_int_equal(n, 2);
  assert_string_equal(open[1].id, "batch_9");
  assert_int_equal(open[1].n_requests, 2);
  assert_string_equal(open[1].status, "validating");
  us_batches_free(open, n);
  assert_int_equal(us_cache_batch_collected(c, "batch_9", "completed", 0, 0, 0, &err), US_OK);
  assert_int_equal(us_cache_batch_key_open(c, "ccc", &in_open, &err), US_OK);
  assert_false(in_open); /* batch_1 and batch_9 are collected, batch_2 carries only "bbb" */
  us_batch_totals t;
  assert_int_equal(us_cache_batch_totals(c, &t, &err), US_OK);
  assert_int_equal(t.batches, 3);
  assert_int_equal(t.open, 1);
  assert_int_equal(t.requests, 6);
  assert_int_equal(t.answered, 3);
  assert_true(t.live_usd - t.spent_usd == 0.5);
  /* a draft filled in parts, uploaded, then created: its rows keep prompt, attempt, request */
  assert_int_equal(us_cache_batch_add(c, "draft:1", "", "draft", NULL, 0, &err), US_OK);
  us_batch_request rows[2] = {{"k1", 7, 1, "{\"a\":1}"}, {"k2", 8, 3, "{\"b\":2}"}};
  assert_int_equal(us_cache_batch_requests_add(c, "draft:1", rows, 1, &err), US_OK);
  assert_int_equal(us_cache_batch_requests_add(c, "draft:1", rows + 1, 1, &err), US_OK);
  assert_int_equal(us_cache_batch_uploaded(c, "draft:1", "pending:file-7", "file-7", &err), US_OK);
  assert_int_equal(us_cache_batch_rename(c, "pending:file-7", "batch_7", "validating", &err),
                   US_OK);
  us_batch_request row;
  bool found = false;
  assert_int_equal(us_cache_batch_request_get(c, "batch_7", "k2", &row, &found, &err), US_OK);
  assert_true(found);
  assert_int_equal(row.prompt_id, 8);
  assert_int_equal(row.attempts, 3);
  assert_string_equal(row.request, "{\"b\":2}");
  free(row.request);
  assert_int_equal(us_cache_batch_request_get(c, "batch_7", "k3", &row, &found, &err), US_OK);
  assert_false(found);
  assert_int_equal(us_cache_batches_open(c, &open, &n, &err), US_OK);
  assert_int_equal(n, 2);
  assert_string_equal(open[1].id, "batch_7");
  assert_string_equal(open[1].input_file_id, "file-7");
  assert_int_equal(open[1].n_requests, 2);
  us_batches_free(open, n);
  assert_int_equal(us_cache_batch_collected(c, "batch_7", "completed", 2, 0, 0, &err), US_OK);
  us_cache_close(c);
  /* the batches survive a reopen (what a killed run resumes from) */
  assert_int_equal(us_cache_open(path, &c, &err), US_OK);
  assert_int_equal(us_cache_batches_open(c, &open, &n, &err), US_OK);
  assert_int_equal(n, 1);
  us_batches_free(open, n);
  us_cache_close(c);
  char side[4200];
  unlink(path);
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(line_should_carry_the_key_and_the_canonical_body_unchanged),
      cmocka_unit_test(parse_should_read_an_output_line),
      cmocka_unit_test(parse_should_read_error_lines),
      cmocka_unit_test(settings_should_default_and_refuse),
      cmocka_unit_test(cache_should_keep_open_batches_until_collected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
