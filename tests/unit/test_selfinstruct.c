/* Self-instruct from documents: parsing the teacher's question lists, storing questions with the
 * split of their chunk, request keys of questions, and migrating a version 1 workspace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h" /* US__CACHE_SCHEMA_VERSION */
#include "core/buf.h"
#include "distill/prompts.h"
#include "distill/request.h"
#include "eval/metrics.h"
#include "pipeline/config.h"

typedef struct fixture {
  char dir[256];
  char db[300];
  us_config config;
  us_cache *cache;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f) return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/us_test_selfinstruct_XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  snprintf(f->db, sizeof f->db, "%s/understudy.db", f->dir);
  us_config_defaults(&f->config);
  f->config.task.type = US_TASK_GENERATE;
  f->config.teacher.model = us_strdup("teacher-model");
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  us_cache_close(f->cache);
  us_config_free(&f->config);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system(cmd) != 0) return -1;
  free(f);
  return 0;
}

static void check(us_status st, const us_err *err) {
  if (st != US_OK) fail_msg("status %d: %s", st, err->msg);
}

static void open_cache(fixture *f) {
  us_err err = {0};
  check(us_cache_open(f->db, &f->cache, &err), &err);
}

/* Parses answer with max questions and compares with the expected list (NULL-terminated). */
static void expect_questions(const char *answer, int max, const char *const *expected) {
  char **q = NULL;
  int n = 0;
  us_err err = {0};
  check(us_questions_parse(answer, max, &q, &n, &err), &err);
  int want = 0;
  while (expected[want]) want++;
  if (n != want) fail_msg("parsed %d questions from \"%s\", expected %d", n, answer, want);
  for (int i = 0; i < n; i++) assert_string_equal(q[i], expected[i]);
  for (int i = 0; i < n; i++) free(q[i]);
  free(q);
}

/* ---- question lists ------------------------------------------------------------------------ */

static void parse_should_strip_numbers_with_dots_and_parentheses(void **state) {
  (void)state;
  expect_questions(
      "1. When did the bridge open?\n2) How many lanes does it carry?\n10. Who built it?", 10,
      (const char *const[]){"When did the bridge open?", "How many lanes does it carry?",
                            "Who built it?", NULL});
}

static void parse_should_strip_bullets_quotes_and_blank_lines(void **state) {
  (void)state;
  expect_questions(
      "\n- Where do ferries leave from?\n\n  * \"How often do they run?\"\n"
      "\xe2\x80\xa2 What does a ticket cost?\r\n\n",
      5,
      (const char *const[]){"Where do ferries leave from?", "How often do they run?",
                            "What does a ticket cost?", NULL});
}

static void parse_should_skip_a_preamble_and_keep_plain_lines(void **state) {
  (void)state;
  expect_questions(
      "Here are three questions:\nQ1: What is sold at the east gate?\n"
      "What rises four metres?\nQuestion 3. Is 3.5 metres the record?",
      3,
      (const char *const[]){"What is sold at the east gate?", "What rises four metres?",
                            "Is 3.5 metres the record?", NULL});
}

static void parse_should_keep_at_most_the_number_asked(void **state) {
  (void)state;
  expect_questions("1. A?\n2. B?\n3. C?\n4. D?", 2, (const char *const[]){"A?", "B?", NULL});
  expect_questions("1. Only one?", 3, (const char *const[]){"Only one?", NULL});
  expect_questions("", 3, (const char *const[]){NULL});
  expect_questions("-5 degrees is the record?", 3,
                   (const char *const[]){"-5 degrees is the record?", NULL});
}

/* ---- storing questions ---------------------------------------------------------------------- */

static void questions_should_inherit_the_split_and_context_of_their_chunk(void **state) {
  fixture *f = *state;
  open_cache(f);
  us_err err = {0};
  f->config.data.questions_per_chunk = 2;
  us_prompt chunk = {.text = "The tower opens at nine. Tickets are sold at the gate.",
                     .source = "docs/a.md#chunk4",
                     .split = US_SPLIT_TEST,
                     .kind = US_PROMPT_KIND_CHUNK};
  snprintf(chunk.hash, sizeof chunk.hash, "%064d", 1);
  check(us_cache_prompt_insert(f->cache, &chunk, NULL, &chunk.id, &err), &err);
  int64_t added = 0;
  check(us_prompts_add_questions(&f->config.data, f->cache, &chunk,
                                 "1. When does the tower open?\n2. Where are tickets sold?\n"
                                 "3. One too many?",
                                 &added, &err),
        &err);
  assert_int_equal(added, 2);
  check(us_prompts_add_questions(&f->config.data, f->cache, &chunk,
                                 "1. When does the tower open?\n2. Where are tickets sold?", &added,
                                 &err),
        &err);
  assert_int_equal(added, 0); /* a rerun stores nothing twice */

  us_prompt *p = NULL;
  size_t n = 0;
  check(us_cache_prompts_list(f->cache, -1, &p, &n, &err), &err);
  assert_int_equal(n, 2); /* the chunk itself is not a prompt */
  assert_string_equal(p[0].text, "When does the tower open?");
  assert_string_equal(p[0].source, "docs/a.md#chunk4/q1");
  assert_string_equal(p[1].source, "docs/a.md#chunk4/q2");
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(p[i].split, US_SPLIT_TEST);
    assert_int_equal(p[i].kind, US_PROMPT_KIND_PROMPT);
    assert_string_equal(p[i].context, chunk.text);
  }
  us_prompts_free(p, n);
  int64_t train = -1;
  check(us_cache_prompts_count(f->cache, US_SPLIT_TRAIN, &train, &err), &err);
  assert_int_equal(train, 0);
  check(us_cache_chunks_list(f->cache, &p, &n, &err), &err);
  assert_int_equal(n, 1);
  assert_string_equal(p[0].source, "docs/a.md#chunk4");
  us_prompts_free(p, n);
  us_cache_stats cs;
  check(us_cache_stats_get(f->cache, &cs, &err), &err);
  assert_int_equal(cs.prompts, 2);
  assert_int_equal(cs.chunks, 1);
}

/* ---- request keys ---------------------------------------------------------------------------- */

static void question_keys_should_differ_from_plain_ones_and_be_stable(void **state) {
  fixture *f = *state;
  us_err err = {0};
  us_prompt plain = {.text = "When does the tower open?"};
  us_prompt question = plain;
  question.context = "The tower opens at nine.";
  char *b1 = NULL, *b2 = NULL, *b3 = NULL, k1[65], k2[65], k3[65];
  check(us_request_for_prompt(&f->config.task, &f->config.data, &f->config.teacher, &plain, &b1, k1,
                              &err),
        &err);
  check(us_request_for_prompt(&f->config.task, &f->config.data, &f->config.teacher, &question, &b2,
                              k2, &err),
        &err);
  check(us_request_for_prompt(&f->config.task, &f->config.data, &f->config.teacher, &question, &b3,
                              k3, &err),
        &err);
  assert_string_not_equal(k1, k2);
  assert_string_equal(k2, k3);
  assert_string_equal(b2, b3);
  assert_non_null(strstr(b2, "The tower opens at nine."));
  assert_non_null(strstr(b2, "Question: When does the tower open?"));

  char *plain_body = NULL, plain_key[65];
  check(us_request_build(&f->config.task, &f->config.teacher, plain.text, &plain_body, plain_key,
                         &err),
        &err);
  assert_string_equal(plain_key, k1); /* an ordinary prompt keeps the key it always had */

  question.context = "The tower opens at ten.";
  char *b4 = NULL, k4[65];
  check(us_request_for_prompt(&f->config.task, &f->config.data, &f->config.teacher, &question, &b4,
                              k4, &err),
        &err);
  assert_string_not_equal(k4, k2); /* the chunk is part of the key */

  char *c1 = NULL, *c2 = NULL, ck1[65], ck2[65];
  check(us_request_for_chunk(&f->config.data, &f->config.teacher, "The tower opens at nine.", &c1,
                             ck1, &err),
        &err);
  f->config.data.questions_per_chunk = 5;
  check(us_request_for_chunk(&f->config.data, &f->config.teacher, "The tower opens at nine.", &c2,
                             ck2, &err),
        &err);
  assert_string_not_equal(ck1, ck2);
  assert_non_null(strstr(c2, "Write 5 different questions"));
  free(b1), free(b2), free(b3), free(b4), free(plain_body), free(c1), free(c2);
}

static void fill_should_leave_markers_inside_inserted_text(void **state) {
  (void)state;
  char *s = us_request_fill("[{chunk}] {question} {n} {other}", "a {question} b", NULL, "q?");
  assert_non_null(s);
  assert_string_equal(s, "[a {question} b] q? {n} {other}");
  free(s);
}

/* ---- slot-level F1 of JSON answers ------------------------------------------------------------
 */

static void json_field_f1_should_count_matching_key_value_pairs(void **state) {
  (void)state;
  int m, p, e;
  us_metrics_json_fields("{\"artist\":\"westbam\",\"service\":\"spotify\"}",
                         "{\"service\":\"google music\",\"artist\":\"westbam\"}", &m, &p, &e);
  assert_int_equal(m, 1);
  assert_int_equal(p, 2);
  assert_int_equal(e, 2);
  us_metrics_json_fields("not json", "{\"a\":\"x\"}", &m, &p, &e);
  assert_int_equal(m, 0);
  assert_int_equal(p, 0);
  assert_int_equal(e, 1);
  us_metrics_json_fields("{\"a\":\"x\",\"a\":\"x\"}", "{\"a\":\"x\"}", &m, &p, &e);
  assert_int_equal(m, 1); /* a reference pair is matched once */
  assert_int_equal(p, 2);

  const char *pred[] = {"{\"a\":\"1\",\"b\":\"2\"}", "{\"c\":\"3\"}", "plain", "[1]"};
  const char *ref[] = {"{\"a\":\"1\",\"b\":\"9\"}", "{\"c\":\"3\",\"d\":\"4\"}", "plain", "[1]"};
  us_generate_metrics g;
  us_err err = {0};
  check(us_metrics_generate(4, pred, ref, &g, &err), &err);
  assert_int_equal(g.n_json_objects, 2);
  /* matched 2, predicted 3, expected 4: 2 * 2 / 7 */
  assert_true(g.json_field_f1 > 4.0 / 7 - 1e-12 && g.json_field_f1 < 4.0 / 7 + 1e-12);
  check(us_metrics_generate(1, (const char *[]){"plain"}, (const char *[]){"plain"}, &g, &err),
        &err);
  assert_int_equal(g.n_json_objects, 0);
  assert_true(g.json_field_f1 == 0);
}

/* ---- migration ------------------------------------------------------------------------------ */

static void exec_sql(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s", msg);
  sqlite3_close(db);
}

static void version_1_workspace_should_migrate_in_place(void **state) {
  fixture *f = *state;
  /* the version 1 prompts table exactly as released, with one prompt and its answer */
  exec_sql(f->db,
           "CREATE TABLE prompts(id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE,"
           "  split INTEGER NOT NULL CHECK (split IN (0, 1)), source TEXT, gold TEXT,"
           "  text TEXT NOT NULL);"
           "CREATE INDEX prompts_by_split ON prompts(split, id);"
           "CREATE TABLE calls(key TEXT PRIMARY KEY NOT NULL, http_status INTEGER NOT NULL,"
           "  prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL "
           "  DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0, latency_ms REAL NOT NULL DEFAULT 0,"
           "  attempts INTEGER NOT NULL DEFAULT 1, imported INTEGER NOT NULL DEFAULT 0 CHECK "
           "  (imported IN (0, 1)), created_at REAL NOT NULL, request TEXT NOT NULL,"
           "  response TEXT NOT NULL);"
           "CREATE INDEX calls_by_latency ON calls(imported, latency_ms);"
           "CREATE TABLE failures(id INTEGER PRIMARY KEY, key TEXT NOT NULL, prompt_id INTEGER,"
           "  http_status INTEGER NOT NULL, attempts INTEGER NOT NULL, created_at REAL NOT NULL,"
           "  message TEXT);"
           "CREATE INDEX failures_by_key ON failures(key);"
           "CREATE TABLE targets(key TEXT PRIMARY KEY NOT NULL REFERENCES calls(key) ON DELETE "
           "  CASCADE, prompt_id INTEGER NOT NULL, status INTEGER NOT NULL CHECK (status IN "
           "  (0, 1)), label TEXT, soft BLOB, text TEXT);"
           "CREATE INDEX targets_by_prompt ON targets(prompt_id);"
           "CREATE TABLE runs(id INTEGER PRIMARY KEY, command TEXT NOT NULL, started_at REAL NOT "
           "  NULL, ended_at REAL, status TEXT NOT NULL);"
           "CREATE TABLE curves(run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
           "  series TEXT NOT NULL, x REAL NOT NULL, y REAL NOT NULL);"
           "CREATE INDEX curves_by_series ON curves(series, run_id);"
           "CREATE TABLE results(name TEXT PRIMARY KEY NOT NULL, updated_at REAL NOT NULL,"
           "  json TEXT NOT NULL);"
           "INSERT INTO prompts(hash, split, source, gold, text) VALUES('h-old', 1, 'a.txt:3',"
           "  'yes', 'an old prompt');"
           "INSERT INTO calls(key, http_status, created_at, request, response) VALUES('k-old',"
           "  200, 1.0, '{}', '{\"choices\":[]}');"
           "PRAGMA application_id = 1431520345; PRAGMA user_version = 1;");
  open_cache(f);
  assert_int_equal(us_cache_schema_version(f->cache), US__CACHE_SCHEMA_VERSION);
  us_err err = {0};
  us_prompt *p = NULL;
  size_t n = 0;
  check(us_cache_prompts_list(f->cache, -1, &p, &n, &err), &err);
  assert_int_equal(n, 1);
  assert_string_equal(p[0].text, "an old prompt");
  assert_string_equal(p[0].gold, "yes");
  assert_string_equal(p[0].source, "a.txt:3");
  assert_int_equal(p[0].split, US_SPLIT_TEST);
  assert_int_equal(p[0].kind, US_PROMPT_KIND_PROMPT);
  assert_null(p[0].context);
  us_prompts_free(p, n);
  bool found = false;
  check(us_cache_call_exists(f->cache, "k-old", &found, &err), &err);
  assert_true(found);
  /* the new columns take values */
  us_prompt chunk = {.text = "a chunk", .split = US_SPLIT_TRAIN, .kind = US_PROMPT_KIND_CHUNK};
  snprintf(chunk.hash, sizeof chunk.hash, "h-chunk");
  check(us_cache_prompt_insert(f->cache, &chunk, NULL, NULL, &err), &err);
  check(us_cache_chunks_list(f->cache, &p, &n, &err), &err);
  assert_int_equal(n, 1);
  us_prompts_free(p, n);
  us_cache_close(f->cache);
  f->cache = NULL;
  open_cache(f); /* a second open finds it current and changes nothing */
  int64_t count = 0;
  check(us_cache_prompts_count(f->cache, -1, &count, &err), &err);
  assert_int_equal(count, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_should_strip_numbers_with_dots_and_parentheses),
      cmocka_unit_test(parse_should_strip_bullets_quotes_and_blank_lines),
      cmocka_unit_test(parse_should_skip_a_preamble_and_keep_plain_lines),
      cmocka_unit_test(parse_should_keep_at_most_the_number_asked),
      cmocka_unit_test_setup_teardown(questions_should_inherit_the_split_and_context_of_their_chunk,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(question_keys_should_differ_from_plain_ones_and_be_stable,
                                      setup, teardown),
      cmocka_unit_test(fill_should_leave_markers_inside_inserted_text),
      cmocka_unit_test(json_field_f1_should_count_matching_key_value_pairs),
      cmocka_unit_test_setup_teardown(version_1_workspace_should_migrate_in_place, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
