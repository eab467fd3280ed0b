/* The SQLite workspace: creation and migration, refusal of foreign files, prompts, calls,
 * failures, targets, curves, results, statistics, JSONL export/import, and durability of a
 * committed call when the writing process dies. Real files in a temporary folder. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <cjson/cJSON.h>
#include <cmocka.h>
/* clang-format on */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h" /* US__CACHE_SCHEMA_VERSION */
#include "core/buf.h"
#include "core/hash.h"

typedef struct fixture {
  char dir[64];
  char db[128];
  us_cache *cache;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f) return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/us_test_cache.XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->db, sizeof f->db, "%s/understudy.db", f->dir);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  us_cache_close(f->cache);
  DIR *d = opendir(f->dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
    unlink(path);
  }
  if (d) closedir(d);
  rmdir(f->dir);
  free(f);
  return 0;
}

/* cmocka 1.1 compares floats only; doubles are checked here, printing both values. */
#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), #a, __LINE__)
static void assert_near_at(double a, double b, double eps, const char *what, int line) {
  if (fabs(a - b) > eps) fail_msg("line %d: %s is %.17g, expected %.17g", line, what, a, b);
}

static us_cache *open_ok(const char *path) {
  us_err err = {0};
  us_cache *c = NULL;
  us_status st = us_cache_open(path, &c, &err);
  if (st) fail_msg("us_cache_open(%s): %s", path, err.msg);
  return c;
}

static void check(us_status st, const us_err *err) {
  if (st) fail_msg("%s: %s", us_status_name(st), err->msg);
}

/* Runs one SQL statement on the file directly (not through the cache) and returns the first
 * column of its first row as text, or "" if none. */
static void raw_sql(const char *path, const char *sql, char *out, size_t n) {
  sqlite3 *db = NULL;
  sqlite3_stmt *s = NULL;
  out[0] = '\0';
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
    snprintf(out, n, "%s", (const char *)sqlite3_column_text(s, 0));
  else
    assert_int_equal(rc, SQLITE_DONE);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

static void make_call(us_call *call, const char *key, const char *request, const char *response,
                      double latency_ms, double cost) {
  memset(call, 0, sizeof *call);
  snprintf(call->key, sizeof call->key, "%s", key);
  call->request = (char *)request;
  call->response = (char *)response;
  call->http_status = 200;
  call->prompt_tokens = 11;
  call->completion_tokens = 3;
  call->cost_usd = cost;
  call->latency_ms = latency_ms;
  call->attempts = 1;
}

static void put_call(us_cache *c, const char *key, double latency_ms, double cost) {
  us_err err = {0};
  us_call call;
  make_call(&call, key, "{\"messages\":[]}", "{\"choices\":[]}", latency_ms, cost);
  check(us_cache_call_put(c, &call, NULL, &err), &err);
}

/* ---- opening and migrating ----------------------------------------------------------------- */

static void open_should_create_migrate_and_reopen(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  assert_int_equal(us_cache_schema_version(f->cache), US__CACHE_SCHEMA_VERSION);
  check(us_cache_prompt_add(f->cache, "h1", "first", NULL, "a.txt:1", 0, NULL, NULL, &err), &err);
  us_cache_close(f->cache);
  f->cache = NULL;

  char v[64];
  raw_sql(f->db, "PRAGMA user_version", v, sizeof v);
  char want[16];
  snprintf(want, sizeof want, "%d", US__CACHE_SCHEMA_VERSION);
  assert_string_equal(v, want);
  raw_sql(f->db, "PRAGMA journal_mode", v, sizeof v);
  assert_string_equal(v, "wal");

  f->cache = open_ok(f->db);
  assert_int_equal(us_cache_schema_version(f->cache), US__CACHE_SCHEMA_VERSION);
  int64_t n = 0;
  check(us_cache_prompts_count(f->cache, -1, &n, &err), &err);
  assert_int_equal(n, 1);
}

static void open_should_refuse_a_file_that_is_not_sqlite(void **state) {
  fixture *f = *state;
  const char text[] = "name,label\nthis is a CSV file, not a workspace,x\n";
  us_err err = {0};
  check(us_write_file_atomic(f->db, text, strlen(text), &err), &err);
  us_cache *c = NULL;
  us_status st = us_cache_open(f->db, &c, &err);
  assert_int_equal(st, US_ERR_FORMAT);
  assert_null(c);
  assert_non_null(strstr(err.msg, f->db));
  assert_non_null(strstr(err.msg, "not a SQLite database"));
  assert_non_null(strstr(err.msg, "output"));
  char *after = NULL;
  size_t len = 0;
  check(us_read_file(f->db, 0, &after, &len, &err), &err);
  assert_string_equal(after, text); /* refused without writing a byte */
  free(after);
}

static void open_should_refuse_another_applications_database(void **state) {
  fixture *f = *state;
  char v[16];
  raw_sql(f->db, "CREATE TABLE invoices(id INTEGER)", v, sizeof v);
  us_err err = {0};
  us_cache *c = NULL;
  assert_int_equal(us_cache_open(f->db, &c, &err), US_ERR_FORMAT);
  assert_non_null(strstr(err.msg, f->db));
  assert_non_null(strstr(err.msg, "not an understudy workspace"));
}

static void open_should_refuse_a_newer_schema(void **state) {
  fixture *f = *state;
  us_cache_close(open_ok(f->db));
  char v[16];
  raw_sql(f->db, "PRAGMA user_version = 99", v, sizeof v);
  us_err err = {0};
  us_cache *c = NULL;
  assert_int_equal(us_cache_open(f->db, &c, &err), US_ERR_FORMAT);
  assert_null(c);
  assert_non_null(strstr(err.msg, f->db));
  assert_non_null(strstr(err.msg, "schema version 99"));
  assert_non_null(strstr(err.msg, "upgrade understudy"));
}

/* ---- prompts -------------------------------------------------------------------------------- */

static void prompt_add_should_keep_the_first_of_a_hash(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  bool inserted = false;
  int64_t id1 = 0, id2 = 0, id3 = 0;
  check(us_cache_prompt_add(f->cache, "aaa", "Hello", "greet", "in.jsonl:1", 0, &inserted, &id1,
                            &err),
        &err);
  assert_true(inserted);
  check(
      us_cache_prompt_add(f->cache, "aaa", "hello!", NULL, "in.jsonl:9", 1, &inserted, &id2, &err),
      &err);
  assert_false(inserted);
  assert_int_equal(id1, id2);
  check(us_cache_prompt_add(f->cache, "bbb", "Other", NULL, "in.jsonl:2", 1, &inserted, &id3, &err),
        &err);
  assert_true(inserted);
  assert_true(id3 != id1);
  assert_int_equal(us_cache_prompt_add(f->cache, "ccc", "x", NULL, NULL, 5, NULL, NULL, &err),
                   US_ERR_INPUT);

  us_prompt *p = NULL;
  size_t n = 0;
  check(us_cache_prompts_list(f->cache, -1, &p, &n, &err), &err);
  assert_int_equal(n, 2);
  assert_string_equal(p[0].hash, "aaa");
  assert_string_equal(p[0].text, "Hello"); /* the duplicate changed nothing */
  assert_string_equal(p[0].gold, "greet");
  assert_string_equal(p[0].source, "in.jsonl:1");
  assert_int_equal(p[0].split, 0);
  assert_null(p[1].gold);
  us_prompts_free(p, n);

  check(us_cache_prompts_list(f->cache, 1, &p, &n, &err), &err);
  assert_int_equal(n, 1);
  assert_string_equal(p[0].text, "Other");
  us_prompts_free(p, n);
  int64_t count = 0;
  check(us_cache_prompts_count(f->cache, 0, &count, &err), &err);
  assert_int_equal(count, 1);
}

/* ---- calls and failures -------------------------------------------------------------------- */

static void call_should_round_trip_every_field(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  us_call in;
  make_call(&in, "k1", "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"é\"}]}",
            "{\"choices\":[{\"message\":{\"content\":\"yes\"}}]}", 212.5, 0.00125);
  in.attempts = 3;
  in.created_at = 1700000000.25;
  bool existed = true;
  check(us_cache_call_put(f->cache, &in, &existed, &err), &err);
  assert_false(existed);

  us_call out;
  bool found = false;
  check(us_cache_call_get(f->cache, "k1", &out, &found, &err), &err);
  assert_true(found);
  assert_string_equal(out.key, "k1");
  assert_string_equal(out.request, in.request);
  assert_string_equal(out.response, in.response);
  assert_int_equal(out.http_status, 200);
  assert_int_equal(out.prompt_tokens, 11);
  assert_int_equal(out.completion_tokens, 3);
  assert_near(out.cost_usd, 0.00125, 1e-12);
  assert_near(out.latency_ms, 212.5, 1e-9);
  assert_int_equal(out.attempts, 3);
  assert_false(out.imported);
  assert_near(out.created_at, 1700000000.25, 1e-6);
  us_call_free_fields(&out);

  check(us_cache_call_get(f->cache, "k2", &out, &found, &err), &err);
  assert_false(found);
  check(us_cache_call_exists(f->cache, "k1", &found, &err), &err);
  assert_true(found);
}

static void call_put_should_keep_the_first_answer(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  us_call a, b;
  make_call(&a, "same", "{}", "{\"first\":true}", 10, 0.5);
  make_call(&b, "same", "{}", "{\"second\":true}", 20, 0.7);
  bool existed = true;
  check(us_cache_call_put(f->cache, &a, &existed, &err), &err);
  assert_false(existed);
  check(us_cache_call_put(f->cache, &b, &existed, &err), &err);
  assert_true(existed);
  us_call out;
  bool found = false;
  check(us_cache_call_get(f->cache, "same", &out, &found, &err), &err);
  assert_string_equal(out.response, "{\"first\":true}");
  assert_near(out.cost_usd, 0.5, 1e-12);
  us_call_free_fields(&out);
  us_cache_stats s;
  check(us_cache_stats_get(f->cache, &s, &err), &err);
  assert_int_equal(s.calls, 1);
  assert_near(s.spent_usd, 0.5, 1e-12); /* the second answer was never counted */
}

static void failures_should_never_be_served_as_hits(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  check(us_cache_failure_put(f->cache, "bad", 4, 400, "context too long", 1, &err), &err);
  check(us_cache_failure_put(f->cache, "bad", 4, 500, "server error", 6, &err), &err);
  check(us_cache_failure_put(f->cache, "flaky", 5, 503, "unavailable", 6, &err), &err);
  bool found = true;
  us_call out;
  check(us_cache_call_get(f->cache, "bad", &out, &found, &err), &err);
  assert_false(found);
  check(us_cache_call_exists(f->cache, "bad", &found, &err), &err);
  assert_false(found);
  int64_t n = 0;
  check(us_cache_failures_count(f->cache, &n, &err), &err);
  assert_int_equal(n, 2);                /* distinct keys still without an answer */
  put_call(f->cache, "flaky", 30, 0.01); /* a later run succeeded */
  check(us_cache_failures_count(f->cache, &n, &err), &err);
  assert_int_equal(n, 1);
}

/* ---- targets, runs, curves, results --------------------------------------------------------- */

static void target_should_store_soft_distribution_and_upsert(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  put_call(f->cache, "t1", 10, 0);
  float soft[3] = {0.125f, 0.75f, 0.125f};
  us_target t = {.prompt_id = 42,
                 .label = "billing",
                 .text = "Billing",
                 .soft = soft,
                 .n_soft = 3,
                 .status = US_TARGET_OK};
  snprintf(t.key, sizeof t.key, "t1");
  check(us_cache_target_put(f->cache, &t, &err), &err);

  us_target out;
  bool found = false;
  check(us_cache_target_get(f->cache, "t1", &out, &found, &err), &err);
  assert_true(found);
  assert_int_equal(out.prompt_id, 42);
  assert_string_equal(out.label, "billing");
  assert_string_equal(out.text, "Billing");
  assert_int_equal(out.n_soft, 3);
  for (int i = 0; i < 3; i++) assert_true(out.soft[i] == soft[i]);
  assert_int_equal(out.status, US_TARGET_OK);
  us_target_free_fields(&out);

  us_target unparsed = {.prompt_id = 42, .text = "I am not sure", .status = US_TARGET_UNPARSED};
  snprintf(unparsed.key, sizeof unparsed.key, "t1");
  check(us_cache_target_put(f->cache, &unparsed, &err), &err);
  check(us_cache_target_get(f->cache, "t1", &out, &found, &err), &err);
  assert_null(out.label);
  assert_null(out.soft);
  assert_int_equal(out.n_soft, 0);
  assert_int_equal(out.status, US_TARGET_UNPARSED);
  us_target_free_fields(&out);

  snprintf(t.key, sizeof t.key, "no-such-call");
  assert_int_equal(us_cache_target_put(f->cache, &t, &err), US_ERR_DB);
  check(us_cache_target_get(f->cache, "no-such-call", &out, &found, &err), &err);
  assert_false(found);
}

static void curves_should_come_from_the_newest_run(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  int64_t r1 = 0, r2 = 0;
  check(us_cache_run_begin(f->cache, "train", &r1, &err), &err);
  for (int i = 0; i < 4; i++)
    check(us_cache_curve_add(f->cache, r1, "train_loss", i, 10.0 - i, &err), &err);
  check(us_cache_run_end(f->cache, r1, "ok", &err), &err);
  check(us_cache_run_begin(f->cache, "train", &r2, &err), &err);
  assert_true(r2 > r1);
  check(us_cache_curve_add(f->cache, r2, "train_loss", 1, 0.5, &err), &err);
  check(us_cache_curve_add(f->cache, r2, "train_loss", 0, 0.9, &err), &err);
  check(us_cache_curve_add(f->cache, r2, "valid_acc", 0, 0.3, &err), &err);

  us_curve_point *pts = NULL;
  size_t n = 0;
  check(us_cache_curve_get(f->cache, "train_loss", &pts, &n, &err), &err);
  assert_int_equal(n, 2);
  assert_near(pts[0].x, 0, 0);
  assert_near(pts[0].y, 0.9, 1e-12);
  assert_near(pts[1].y, 0.5, 1e-12);
  free(pts);
  check(us_cache_curve_get(f->cache, "absent", &pts, &n, &err), &err);
  assert_int_equal(n, 0);
  free(pts);

  assert_int_equal(us_cache_run_end(f->cache, 999, "ok", &err), US_ERR_NOT_FOUND);
  assert_int_equal(us_cache_curve_add(f->cache, 999, "x", 0, 0, &err), US_ERR_DB);
  char v[64];
  us_cache_close(f->cache);
  f->cache = NULL;
  raw_sql(f->db, "SELECT status FROM runs WHERE id = 1", v, sizeof v);
  assert_string_equal(v, "ok");
  raw_sql(f->db, "SELECT status FROM runs WHERE id = 2", v, sizeof v);
  assert_string_equal(v, "running");
}

static void results_should_upsert_by_name(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  char *json = NULL;
  bool found = true;
  check(us_cache_result_get(f->cache, "eval", &json, &found, &err), &err);
  assert_false(found);
  assert_null(json);
  check(us_cache_result_put(f->cache, "eval", "{\"acc\":0.5}", &err), &err);
  check(us_cache_result_put(f->cache, "eval", "{\"acc\":0.9}", &err), &err);
  check(us_cache_result_put(f->cache, "train", "{\"epochs\":3}", &err), &err);
  check(us_cache_result_get(f->cache, "eval", &json, &found, &err), &err);
  assert_true(found);
  assert_string_equal(json, "{\"acc\":0.9}");
  free(json);
}

/* ---- statistics ----------------------------------------------------------------------------- */

static void stats_should_count_and_take_percentiles_over_paid_calls(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  check(us_cache_begin(f->cache, &err), &err);
  char key[32];
  for (int i = 100; i >= 1; i--) { /* inserted out of order on purpose */
    snprintf(key, sizeof key, "paid%03d", i);
    put_call(f->cache, key, i, 0.01);
  }
  for (int i = 0; i < 5; i++) {
    us_call call;
    snprintf(key, sizeof key, "imp%d", i);
    make_call(&call, key, "{}", "{}", 100000, 0);
    call.imported = true;
    check(us_cache_call_put(f->cache, &call, NULL, &err), &err);
  }
  check(us_cache_commit(f->cache, &err), &err);
  check(us_cache_prompt_add(f->cache, "p1", "a", NULL, NULL, 0, NULL, NULL, &err), &err);
  check(us_cache_prompt_add(f->cache, "p2", "b", NULL, NULL, 0, NULL, NULL, &err), &err);
  check(us_cache_prompt_add(f->cache, "p3", "c", NULL, NULL, 1, NULL, NULL, &err), &err);
  us_target t = {.prompt_id = 1, .label = "x", .status = US_TARGET_OK};
  snprintf(t.key, sizeof t.key, "paid001");
  check(us_cache_target_put(f->cache, &t, &err), &err);
  us_target u = {.prompt_id = 2, .text = "??", .status = US_TARGET_UNPARSED};
  snprintf(u.key, sizeof u.key, "paid002");
  check(us_cache_target_put(f->cache, &u, &err), &err);
  check(us_cache_failure_put(f->cache, "gone", 3, 400, "bad request", 1, &err), &err);

  us_cache_stats s;
  check(us_cache_stats_get(f->cache, &s, &err), &err);
  assert_int_equal(s.prompts, 3);
  assert_int_equal(s.prompts_train, 2);
  assert_int_equal(s.prompts_test, 1);
  assert_int_equal(s.calls, 105);
  assert_int_equal(s.calls_imported, 5);
  assert_int_equal(s.failures, 1);
  assert_int_equal(s.targets, 2);
  assert_int_equal(s.targets_unparsed, 1);
  assert_int_equal(s.prompt_tokens, 105 * 11);
  assert_int_equal(s.completion_tokens, 105 * 3);
  assert_near(s.spent_usd, 1.0, 1e-9);
  /* nearest rank over latencies 1..100 ms; the slow imported entries do not count */
  assert_near(s.latency_p50_ms, 50, 1e-9);
  assert_near(s.latency_p99_ms, 99, 1e-9);
}

static void stats_of_an_empty_workspace_should_be_zero(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  us_cache_stats s;
  check(us_cache_stats_get(f->cache, &s, &err), &err);
  assert_int_equal(s.calls, 0);
  assert_int_equal(s.prompts, 0);
  assert_near(s.latency_p50_ms, 0, 0);
  assert_near(s.latency_p99_ms, 0, 0);
}

/* ---- export and import ---------------------------------------------------------------------- */

/* A stand-in for the teacher's keying: the key is the SHA-256 of the messages JSON. */
static us_status test_key_fn(void *user, const char *messages_json, char **request_json,
                             char key[65], us_err *err) {
  int *calls = user;
  (*calls)++;
  us_sha256_hex(messages_json, strlen(messages_json), key);
  us_buf b;
  us_buf_init(&b, 0);
  us_status st = us_buf_printf(&b, "{\"messages\":%s}", messages_json);
  if (st) return us_err_set(err, st, "out of memory");
  *request_json = us_buf_steal(&b);
  return US_OK;
}

static void put_chat_call(us_cache *c, const char *user_text, const char *answer, char key[65]) {
  cJSON *messages = cJSON_CreateArray();
  cJSON *sys = cJSON_CreateObject();
  cJSON_AddStringToObject(sys, "role", "system");
  cJSON_AddStringToObject(sys, "content", "Label the ticket.");
  cJSON_AddItemToArray(messages, sys);
  cJSON *user = cJSON_CreateObject();
  cJSON_AddStringToObject(user, "role", "user");
  cJSON_AddStringToObject(user, "content", user_text);
  cJSON_AddItemToArray(messages, user);
  char *mj = cJSON_PrintUnformatted(messages);
  cJSON_Delete(messages);
  us_sha256_hex(mj, strlen(mj), key);
  char request[2048], response[1024];
  snprintf(request, sizeof request, "{\"messages\":%s}", mj);
  cJSON *r = cJSON_CreateObject();
  cJSON *choice = cJSON_CreateObject();
  cJSON *msg = cJSON_AddObjectToObject(choice, "message");
  cJSON_AddStringToObject(msg, "role", "assistant");
  cJSON_AddStringToObject(msg, "content", answer);
  cJSON_AddItemToArray(cJSON_AddArrayToObject(r, "choices"), choice);
  char *rj = cJSON_PrintUnformatted(r);
  snprintf(response, sizeof response, "%s", rj);
  cJSON_Delete(r);
  free(rj);
  free(mj);
  us_call call;
  make_call(&call, key, request, response, 100, 0.02);
  us_err err = {0};
  check(us_cache_call_put(c, &call, NULL, &err), &err);
}

typedef struct key_list {
  char keys[8][65];
  int n;
} key_list;

static int collect_key(void *user, const us_call *call) {
  key_list *k = user;
  if (k->n < 8) snprintf(k->keys[k->n++], 65, "%s", call->key);
  return 0;
}

static void export_then_import_should_give_the_same_keys(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  char keys[3][65];
  put_chat_call(f->cache, "My card was charged twice", "billing", keys[0]);
  put_chat_call(f->cache, "Ça ne marche pas \"du tout\"\nAide", "technical", keys[1]);
  put_chat_call(f->cache, "Where is my parcel?", "shipping", keys[2]);
  char path[256];
  snprintf(path, sizeof path, "%s/export.jsonl", f->dir);
  int64_t written = 0;
  check(us_cache_export_jsonl(f->cache, path, &written, &err), &err);
  assert_int_equal(written, 3);
  key_list before = {0};
  check(us_cache_calls_each(f->cache, collect_key, &before, &err), &err);
  us_cache_close(f->cache);
  f->cache = NULL;

  char *text = NULL;
  size_t len = 0;
  check(us_read_file(path, 0, &text, &len, &err), &err);
  assert_non_null(strstr(text, "{\"role\":\"assistant\",\"content\":\"billing\"}]}\n"));
  free(text);

  char fresh[256];
  snprintf(fresh, sizeof fresh, "%s/fresh.db", f->dir);
  f->cache = open_ok(fresh);
  int key_calls = 0;
  int64_t imported = 0, skipped = 0;
  check(us_cache_import_jsonl(f->cache, path, test_key_fn, &key_calls, &imported, &skipped, &err),
        &err);
  assert_int_equal(imported, 3);
  assert_int_equal(skipped, 0);
  assert_int_equal(key_calls, 3);
  key_list after = {0};
  check(us_cache_calls_each(f->cache, collect_key, &after, &err), &err);
  assert_int_equal(after.n, 3);
  for (int i = 0; i < 3; i++) assert_string_equal(after.keys[i], before.keys[i]);

  us_call call;
  bool found = false;
  check(us_cache_call_get(f->cache, keys[1], &call, &found, &err), &err);
  assert_true(found);
  assert_true(call.imported);
  assert_near(call.cost_usd, 0, 0);
  assert_int_equal(call.attempts, 0);
  cJSON *r = cJSON_Parse(call.response);
  const cJSON *content = cJSON_GetObjectItem(
      cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "choices"), 0), "message"),
      "content");
  assert_true(cJSON_IsString(content));
  assert_string_equal(content->valuestring, "technical");
  assert_non_null(cJSON_GetObjectItem(r, "usage"));
  cJSON_Delete(r);
  us_call_free_fields(&call);

  check(us_cache_import_jsonl(f->cache, path, test_key_fn, &key_calls, &imported, &skipped, &err),
        &err);
  assert_int_equal(imported, 0);
  assert_int_equal(skipped, 3);
  us_cache_stats s;
  check(us_cache_stats_get(f->cache, &s, &err), &err);
  assert_int_equal(s.calls_imported, 3);
  assert_near(s.spent_usd, 0, 0);
}

static void import_should_read_the_response_object_form(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  const char line[] =
      "{\"request\":{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]},"
      "\"response\":{\"id\":\"c1\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
      "\"assistant\",\"content\":\"hello\"},\"finish_reason\":\"stop\"}],"
      "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}}\n";
  char path[256];
  snprintf(path, sizeof path, "%s/logs.jsonl", f->dir);
  check(us_write_file_atomic(path, line, strlen(line), &err), &err);
  int key_calls = 0;
  int64_t imported = 0, skipped = 0;
  check(us_cache_import_jsonl(f->cache, path, test_key_fn, &key_calls, &imported, &skipped, &err),
        &err);
  assert_int_equal(imported, 1);
  const char messages[] = "[{\"role\":\"user\",\"content\":\"hi\"}]";
  char key[65];
  us_sha256_hex(messages, strlen(messages), key);
  us_call call;
  bool found = false;
  check(us_cache_call_get(f->cache, key, &call, &found, &err), &err);
  assert_true(found);
  assert_string_equal(call.request, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
  assert_non_null(strstr(call.response, "\"id\":\"c1\""));
  assert_int_equal(call.prompt_tokens, 9);
  assert_int_equal(call.completion_tokens, 2);
  assert_true(call.imported);
  us_call_free_fields(&call);
}

static void import_should_name_the_malformed_line_and_import_nothing(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  const char text[] =
      "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\","
      "\"content\":\"b\"}]}\n"
      "\n"
      "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":"
      "\"b\"}]}\n";
  char path[256];
  snprintf(path, sizeof path, "%s/bad.jsonl", f->dir);
  check(us_write_file_atomic(path, text, strlen(text), &err), &err);
  int key_calls = 0;
  int64_t imported = 0, skipped = 0;
  us_status st =
      us_cache_import_jsonl(f->cache, path, test_key_fn, &key_calls, &imported, &skipped, &err);
  assert_int_equal(st, US_ERR_INPUT);
  char where[300];
  snprintf(where, sizeof where, "%s:3:", path);
  assert_non_null(strstr(err.msg, where));
  assert_non_null(strstr(err.msg, "assistant"));
  us_cache_stats s;
  check(us_cache_stats_get(f->cache, &s, &err), &err);
  assert_int_equal(s.calls, 0);

  const char not_json[] = "{\"messages\": [\n";
  check(us_write_file_atomic(path, not_json, strlen(not_json), &err), &err);
  st = us_cache_import_jsonl(f->cache, path, test_key_fn, &key_calls, &imported, &skipped, &err);
  assert_int_equal(st, US_ERR_INPUT);
  snprintf(where, sizeof where, "%s:1: not valid JSON", path);
  assert_non_null(strstr(err.msg, where));
}

/* ---- transactions and sharing --------------------------------------------------------------- */

static void rollback_should_discard_and_other_handles_should_see_commits(void **state) {
  fixture *f = *state;
  us_err err = {0};
  f->cache = open_ok(f->db);
  us_cache *reader = open_ok(f->db);
  check(us_cache_begin(f->cache, &err), &err);
  put_call(f->cache, "undone", 10, 1.0);
  check(us_cache_rollback(f->cache, &err), &err);
  put_call(f->cache, "kept", 10, 1.0);
  bool found = true;
  check(us_cache_call_exists(reader, "undone", &found, &err), &err);
  assert_false(found);
  check(us_cache_call_exists(reader, "kept", &found, &err), &err);
  assert_true(found); /* committed at once, visible to another connection */
  us_cache_close(reader);
}

/* ---- durability ----------------------------------------------------------------------------- */

/* The child opens the workspace, stores a call and dies without closing anything. */
static void child_put_and_die(const char *db, const char *key, int ready_fd, bool wait_for_kill) {
  us_err err = {0};
  us_cache *c = NULL;
  if (us_cache_open(db, &c, &err)) _exit(2);
  us_call call;
  make_call(&call, key, "{\"messages\":[]}", "{\"answer\":\"paid for\"}", 50, 0.03);
  if (us_cache_call_put(c, &call, NULL, &err)) _exit(3);
  if (!wait_for_kill) _exit(9);
  if (write(ready_fd, "k", 1) != 1) _exit(4);
  for (;;) pause();
}

static void committed_call_should_survive_the_death_of_its_writer(void **state) {
  fixture *f = *state;
  us_cache_close(open_ok(f->db)); /* the parent created it, like an earlier run */

  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) child_put_and_die(f->db, "exit-key", -1, false);
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 9);

  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    child_put_and_die(f->db, "killed-key", fds[1], true);
  }
  close(fds[1]);
  char byte = 0;
  assert_int_equal(read(fds[0], &byte, 1), 1);
  close(fds[0]);
  assert_int_equal(kill(pid, SIGKILL), 0);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));

  f->cache = open_ok(f->db);
  us_err err = {0};
  const char *keys[] = {"exit-key", "killed-key"};
  for (int i = 0; i < 2; i++) {
    us_call out;
    bool found = false;
    check(us_cache_call_get(f->cache, keys[i], &out, &found, &err), &err);
    if (!found) fail_msg("call %s was committed but is gone", keys[i]);
    assert_string_equal(out.response, "{\"answer\":\"paid for\"}");
    us_call_free_fields(&out);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(open_should_create_migrate_and_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(open_should_refuse_a_file_that_is_not_sqlite, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(open_should_refuse_another_applications_database, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(open_should_refuse_a_newer_schema, setup, teardown),
      cmocka_unit_test_setup_teardown(prompt_add_should_keep_the_first_of_a_hash, setup, teardown),
      cmocka_unit_test_setup_teardown(call_should_round_trip_every_field, setup, teardown),
      cmocka_unit_test_setup_teardown(call_put_should_keep_the_first_answer, setup, teardown),
      cmocka_unit_test_setup_teardown(failures_should_never_be_served_as_hits, setup, teardown),
      cmocka_unit_test_setup_teardown(target_should_store_soft_distribution_and_upsert, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(curves_should_come_from_the_newest_run, setup, teardown),
      cmocka_unit_test_setup_teardown(results_should_upsert_by_name, setup, teardown),
      cmocka_unit_test_setup_teardown(stats_should_count_and_take_percentiles_over_paid_calls,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(stats_of_an_empty_workspace_should_be_zero, setup, teardown),
      cmocka_unit_test_setup_teardown(export_then_import_should_give_the_same_keys, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(import_should_read_the_response_object_form, setup, teardown),
      cmocka_unit_test_setup_teardown(import_should_name_the_malformed_line_and_import_nothing,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(rollback_should_discard_and_other_handles_should_see_commits,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(committed_call_should_survive_the_death_of_its_writer, setup,
                                      teardown),
  };
  return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
