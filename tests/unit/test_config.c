/* The config loader: defaults, every key of a full file, each kind of error message (file, key
 * path, expected, found), --set overrides, relative paths and prompt rendering. */
/* cmocka.h needs these four first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/params.h"
#include "eval/cascade.h"
#include "eval/cost.h"
#include "pipeline/config.h"
#include "student/classifier.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static char tmp_dir[PATH_MAX];

static int make_tmp_dir(void **state) {
  (void)state;
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/us_test_config_XXXXXX");
  if (!mkdtemp(tmp_dir)) return -1;
  char *real = realpath(tmp_dir, NULL); /* /tmp may be a link; the loader reports real folders */
  if (!real) return -1;
  snprintf(tmp_dir, sizeof tmp_dir, "%s", real);
  free(real);
  return 0;
}

static int remove_tmp_dir(void **state) {
  (void)state;
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void fixture_path(const char *name, char *out, size_t cap) {
  const char *src = getenv("US_SOURCE_DIR");
  snprintf(out, cap, "%s/tests/data/config/%s", src ? src : "../..", name);
}

/* Writes json to <tmp>/<file> and returns its path in path_out. */
static void write_config(const char *file, const char *json, char *path_out, size_t cap) {
  snprintf(path_out, cap, "%s/%s", tmp_dir, file);
  FILE *f = fopen(path_out, "w");
  assert_non_null(f);
  fputs(json, f);
  fclose(f);
}

/* A valid classify config; tests break one thing at a time through --set or text edits. */
static const char *const VALID =
    "{\"name\":\"t\",\"task\":{\"labels\":[\"yes\",\"no\"]},"
    "\"data\":{\"inputs\":[\"in.jsonl\"]},\"teacher\":{\"model\":\"m\"}}";

static us_status load_json(const char *json, const char *const *sets, int n_sets, us_config *c,
                           us_err *err) {
  char path[PATH_MAX + 32];
  write_config("config.json", json, path, sizeof path);
  return us_config_load(path, sets, n_sets, c, err);
}

/* Loads VALID with the given overrides and expects an error whose message holds every needle. */
static void expect_error(const char *json, const char *const *sets, int n_sets, ...) {
  us_config c;
  us_err err = {0};
  us_status st = load_json(json ? json : VALID, sets, n_sets, &c, &err);
  if (st == US_OK) {
    us_config_free(&c);
    fail_msg("expected an error, the config loaded (first --set: %s)", n_sets ? sets[0] : "none");
  }
  assert_int_equal(st, US_ERR_CONFIG);
  if (!strstr(err.msg, tmp_dir)) fail_msg("message does not name the file: %s", err.msg);
  va_list ap;
  va_start(ap, n_sets);
  for (const char *needle; (needle = va_arg(ap, const char *));)
    if (!strstr(err.msg, needle)) fail_msg("message lacks \"%s\": %s", needle, err.msg);
  va_end(ap);
  /* c was freed by the loader; freeing again must be harmless */
  us_config_free(&c);
}

#define SET(...)                      \
  (const char *const[]){__VA_ARGS__}, \
      (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* ---- defaults -------------------------------------------------------------------------------- */

static void defaults_should_match_documented_values(void **state) {
  (void)state;
  us_config c;
  us_config_defaults(&c);
  assert_int_equal(c.task.type, US_TASK_CLASSIFY);
  assert_null(c.name);
  assert_null(c.task.labels);
  assert_string_equal(c.task.instructions,
                      "You are a careful classifier. Reply with exactly one label from the list.");
  assert_string_equal(c.task.template,
                      "Classify this message into one of: {labels}.\nAnswer with "
                      "the label only.\n\nMessage:\n{text}");
  assert_string_equal(c.data.text_field, "text");
  assert_string_equal(c.data.id_field, "id");
  assert_null(c.data.label_field);
  assert_true(c.data.test_fraction == 0.2);
  assert_int_equal(c.data.seed, 1);
  assert_int_equal(c.data.chunk_chars, 1500);
  assert_false(c.data.repair_utf8);
  assert_int_equal(c.data.questions_per_chunk, 3);
  assert_non_null(strstr(c.data.question_template, "{chunk}"));
  assert_non_null(strstr(c.data.answer_template, "{question}"));
  assert_string_equal(c.teacher.base_url, "https://api.openai.com/v1");
  assert_string_equal(c.teacher.api_key_env, "OPENAI_API_KEY");
  assert_int_equal(c.teacher.n_headers, 0);
  assert_int_equal(c.teacher.concurrency, 8);
  assert_true(c.teacher.requests_per_minute == 0 && c.teacher.tokens_per_minute == 0);
  assert_true(c.teacher.timeout_s == 60);
  assert_int_equal(c.teacher.max_retries, 6);
  assert_true(c.teacher.temperature == 0);
  assert_int_equal(c.teacher.max_tokens, 16);
  assert_false(c.teacher.has_seed);
  assert_false(c.teacher.logprobs);
  assert_int_equal(c.teacher.top_logprobs, 5);
  assert_true(c.teacher.budget_usd == 10);
  assert_true(c.teacher.price_input_per_mtok == 0 && c.teacher.price_output_per_mtok == 0);
  assert_true(c.teacher.params_b == 0);
  assert_int_equal(c.student.classifier.dim, 100);
  assert_int_equal(c.student.classifier.word_ngrams, 2);
  assert_int_equal(c.student.classifier.minn, 3);
  assert_int_equal(c.student.classifier.maxn, 5);
  assert_int_equal(c.student.classifier.buckets, 2000000);
  assert_int_equal(c.student.classifier.n_hidden, 0);
  assert_int_equal(c.student.classifier.epochs, 25);
  assert_true(c.student.classifier.lr == 1.0);
  assert_true(c.student.classifier.kd_temperature == 1);
  assert_true(c.student.validation_fraction == 0.1);
  assert_int_equal(c.student.classifier.patience, 5);
  assert_int_equal(c.student.classifier.threads, 2);
  assert_false(c.student.classifier.quantize);
  assert_true(c.student.classifier.calibrate);
  assert_null(c.student.lm.preset); /* "auto" */
  assert_int_equal(c.student.lm.layers, 0);
  assert_int_equal(c.student.lm.dim, 0);
  assert_int_equal(c.student.lm.heads, 0);
  assert_int_equal(c.student.lm.context, 0);
  assert_int_equal(c.student.lm.vocab_size, 0);
  assert_int_equal(c.student.lm.steps, 0); /* from the time budget */
  assert_true(c.student.lm.train_minutes == 10);
  assert_int_equal(c.student.lm.patience, 5);
  assert_int_equal(c.student.lm.batch_size, 0);
  assert_int_equal(c.student.lm.warmup_steps, 100);
  assert_int_equal(c.student.lm.checkpoint_every, 500);
  assert_true(c.student.lm.lr == 0); /* the preset's */
  assert_true(c.student.lm.weight_decay == 0.1);
  assert_true(c.student.lm.grad_clip == 1.0);
  assert_true(c.cost.cpu_usd_per_hour == 0.05);
  assert_true(c.cost.requests_per_month == 1e6);
  assert_true(c.quality.target_agreement == 0.95);
  assert_true(c.quality.confidence == 0.95);
  us_config_free(&c);
  us_config_free(&c); /* twice: the first free leaves it empty */
}

static void minimal_config_should_load_with_defaults_and_resolved_paths(void **state) {
  (void)state;
  char path[PATH_MAX], dir[PATH_MAX], want[PATH_MAX + 64];
  fixture_path("minimal.json", path, sizeof path);
  us_config c;
  us_err err = {0};
  assert_int_equal(us_config_load(path, NULL, 0, &c, &err), US_OK);
  fixture_path("", dir, sizeof dir);
  char *real = realpath(dir, NULL);
  assert_non_null(real);
  assert_string_equal(c.path, path);
  assert_string_equal(c.dir, real);
  assert_string_equal(c.name, "banking");
  snprintf(want, sizeof want, "%s/out/banking", real);
  assert_string_equal(c.output, want);
  assert_int_equal(c.data.n_inputs, 1);
  snprintf(want, sizeof want, "%s/prompts.jsonl", real);
  assert_string_equal(c.data.inputs[0].path, want);
  assert_int_equal(c.data.inputs[0].split, US_SPLIT_AUTO);
  assert_null(c.data.inputs[0].format);
  assert_int_equal(c.task.n_labels, 3);
  assert_string_equal(c.task.labels[2], "balance");
  assert_string_equal(c.teacher.model, "gpt-4o-mini");
  assert_int_equal(c.teacher.max_tokens, 16);
  assert_int_equal(c.student.classifier.dim, 100);
  free(real);
  us_config_free(&c);
}

static void full_config_should_read_every_key(void **state) {
  (void)state;
  char path[PATH_MAX], want[PATH_MAX + 64];
  fixture_path("full.json", path, sizeof path);
  us_config c;
  us_err err = {0};
  if (us_config_load(path, NULL, 0, &c, &err) != US_OK) fail_msg("%s", err.msg);
  assert_string_equal(c.name, "support-tickets_v2");
  snprintf(want, sizeof want, "%s/runs/tickets", c.dir);
  assert_string_equal(c.output, want);
  assert_int_equal(c.task.type, US_TASK_CLASSIFY);
  assert_int_equal(c.task.n_labels, 4);
  assert_string_equal(c.task.labels[2], "feature request");
  assert_string_equal(c.task.instructions, "Route support tickets. Labels: {labels}.");
  assert_string_equal(c.task.template, "Ticket:\n{text}\n\nOne of {labels}:");
  assert_int_equal(c.data.n_inputs, 3);
  snprintf(want, sizeof want, "%s/tickets.jsonl", c.dir);
  assert_string_equal(c.data.inputs[0].path, want);
  assert_string_equal(c.data.inputs[1].path, "/data/holdout.csv");
  assert_int_equal(c.data.inputs[1].split, US_SPLIT_TEST);
  assert_string_equal(c.data.inputs[1].format, "csv");
  snprintf(want, sizeof want, "%s", c.dir); /* "../docs": the parent folder's docs */
  *strrchr(want, '/') = '\0';
  strcat(want, "/docs");
  assert_string_equal(c.data.inputs[2].path, want);
  assert_string_equal(c.data.inputs[2].format, "docs");
  assert_int_equal(c.data.inputs[2].split, US_SPLIT_AUTO);
  assert_string_equal(c.data.text_field, "body");
  assert_string_equal(c.data.label_field, "queue");
  assert_string_equal(c.data.id_field, "ticket_id");
  assert_true(c.data.test_fraction == 0.25);
  assert_int_equal(c.data.seed, 7);
  assert_int_equal(c.data.chunk_chars, 900);
  assert_true(c.data.repair_utf8);
  assert_int_equal(c.data.questions_per_chunk, 4);
  assert_string_equal(c.data.question_template, "Passage:\n{chunk}\nWrite {n} questions.");
  assert_string_equal(c.data.answer_template, "Passage:\n{chunk}\nQ: {question}\nA:");
  assert_string_equal(c.teacher.base_url, "http://127.0.0.1:8080/v1"); /* slash stripped */
  assert_string_equal(c.teacher.model, "gpt-4o-mini");
  assert_string_equal(c.teacher.api_key_env, "MY_TEACHER_KEY");
  assert_int_equal(c.teacher.n_headers, 2);
  assert_string_equal(c.teacher.headers[0].name, "OpenAI-Organization");
  assert_string_equal(c.teacher.headers[0].value, "org-123");
  assert_string_equal(c.teacher.headers[1].name, "X-Title");
  assert_int_equal(c.teacher.concurrency, 32);
  assert_true(c.teacher.requests_per_minute == 500);
  assert_true(c.teacher.tokens_per_minute == 200000);
  assert_true(c.teacher.timeout_s == 30.5);
  assert_int_equal(c.teacher.max_retries, 3);
  assert_true(c.teacher.temperature == 0.2);
  assert_int_equal(c.teacher.max_tokens, 8);
  assert_true(c.teacher.has_seed);
  assert_int_equal(c.teacher.seed, 42);
  assert_true(c.teacher.logprobs);
  assert_int_equal(c.teacher.top_logprobs, 10);
  assert_true(c.teacher.budget_usd == 2.5);
  assert_true(c.teacher.price_input_per_mtok == 0.15);
  assert_true(c.teacher.price_output_per_mtok == 0.6);
  assert_true(c.teacher.params_b == 8);
  assert_int_equal(c.student.classifier.dim, 64);
  assert_int_equal(c.student.classifier.word_ngrams, 3);
  assert_int_equal(c.student.classifier.minn, 2);
  assert_int_equal(c.student.classifier.maxn, 4);
  assert_int_equal(c.student.classifier.buckets, 500000);
  assert_int_equal(c.student.classifier.n_hidden, 2);
  assert_int_equal(c.student.classifier.hidden[0], 128);
  assert_int_equal(c.student.classifier.hidden[1], 32);
  assert_true(c.student.classifier.dropout == 0.1);
  assert_int_equal(c.student.classifier.epochs, 10);
  assert_true(c.student.classifier.lr == 0.25);
  assert_true(c.student.classifier.kd_temperature == 2);
  assert_true(c.student.classifier.label_smoothing == 0.05);
  assert_true(c.student.validation_fraction == 0.15);
  assert_int_equal(c.student.classifier.patience, 5);
  assert_int_equal(c.student.classifier.threads, 1);
  assert_int_equal(c.student.classifier.seed, 9);
  assert_true(c.student.classifier.quantize);
  assert_false(c.student.classifier.calibrate);
  assert_string_equal(c.student.lm.preset, "micro");
  assert_int_equal(c.student.lm.layers, 6);
  assert_int_equal(c.student.lm.dim, 384);
  assert_int_equal(c.student.lm.heads, 6);
  assert_int_equal(c.student.lm.context, 512);
  assert_int_equal(c.student.lm.vocab_size, 4096);
  assert_int_equal(c.student.lm.steps, 3000);
  assert_int_equal(c.student.lm.batch_size, 8);
  assert_int_equal(c.student.lm.warmup_steps, 50);
  assert_int_equal(c.student.lm.checkpoint_every, 250);
  assert_true(c.student.lm.lr == 0.001);
  assert_true(c.student.lm.weight_decay == 0.05);
  assert_true(c.student.lm.grad_clip == 0.5);
  assert_true(c.cost.cpu_usd_per_hour == 0.1);
  assert_true(c.cost.requests_per_month == 250000);
  assert_true(c.quality.target_agreement == 0.9);
  assert_true(c.quality.confidence == 0.99);
  us_config_free(&c);
}

static void generate_task_should_get_generate_defaults(void **state) {
  (void)state;
  us_config c;
  us_err err = {0};
  const char *json =
      "{\"name\":\"g\",\"task\":{\"type\":\"generate\"},"
      "\"data\":{\"inputs\":[\"docs\"]},\"teacher\":{\"model\":\"m\"}}";
  if (load_json(json, NULL, 0, &c, &err) != US_OK) fail_msg("%s", err.msg);
  assert_int_equal(c.task.type, US_TASK_GENERATE);
  assert_int_equal(c.task.n_labels, 0);
  assert_string_equal(c.task.template, "{text}");
  assert_string_equal(c.task.instructions, "Answer concisely.");
  assert_int_equal(c.teacher.max_tokens, 512);
  us_config_free(&c);
  /* an explicit max_tokens wins over the task default */
  if (load_json(json, SET("teacher.max_tokens=64"), &c, &err) != US_OK) fail_msg("%s", err.msg);
  assert_int_equal(c.teacher.max_tokens, 64);
  us_config_free(&c);
}

/* ---- error messages -------------------------------------------------------------------------- */

static void wrong_type_should_name_file_key_expected_and_found(void **state) {
  (void)state;
  const char *json =
      "{\"name\":\"t\",\"task\":{\"labels\":[\"yes\",\"no\"]},"
      "\"data\":{\"inputs\":[\"in.jsonl\"]},"
      "\"teacher\":{\"model\":\"m\",\"concurrency\":\"eight\"}}";
  expect_error(json, NULL, 0, "config.json: teacher.concurrency: expected an integer in [1, 1024]",
               "found the string \"eight\"", NULL);
  expect_error(NULL, SET("teacher.logprobs=1"), "teacher.logprobs: expected true or false",
               "found the number 1", "(value from --set)", NULL);
  expect_error(NULL, SET("task.labels={}"), "task.labels: expected an array of label strings",
               "found an object", NULL);
  expect_error(NULL, SET("teacher=[]"), "teacher: expected an object", "found an array", NULL);
  expect_error(NULL, SET("data.inputs[0]=[5]"),
               "data.inputs[0]: expected a path string or an object", "found an array", NULL);
  expect_error(NULL, SET("task.type=summarise"), "task.type: expected \"classify\" or \"generate\"",
               "found the string \"summarise\"", NULL);
  expect_error(NULL, SET("teacher.model=null"), "teacher.model: expected a string", "found null",
               NULL);
}

/* True if s is well-formed UTF-8 (no cut or stray bytes). */
static bool utf8_is_valid(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int extra = *p < 0x80             ? 0
                : (*p & 0xE0) == 0xC0 ? 1
                : (*p & 0xF0) == 0xE0 ? 2
                : (*p & 0xF8) == 0xF0 ? 3
                                      : -1;
    if (extra < 0) return false;
    p++;
    for (int i = 0; i < extra; i++, p++)
      if ((*p & 0xC0) != 0x80) return false;
  }
  return true;
}

static void long_values_should_be_cut_at_a_character_boundary(void **state) {
  (void)state;
  us_config c;
  us_err err = {0};
  /* "x" and 21 two-byte characters: byte 40, where the excerpt stops, is the second byte of
   * the 20th character */
  const char *odd[] = {
      "teacher.concurrency=x\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
      "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
      "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"};
  assert_int_equal(load_json(VALID, odd, 1, &c, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "teacher.concurrency: expected an integer"));
  assert_non_null(strstr(err.msg, "...\""));
  assert_true(utf8_is_valid(err.msg));
}

static void out_of_range_should_name_the_range(void **state) {
  (void)state;
  expect_error(NULL, SET("teacher.temperature=3"),
               "teacher.temperature: expected a number in [0, 2]", "found the number 3", NULL);
  expect_error(NULL, SET("teacher.timeout_s=0"),
               "teacher.timeout_s: expected a number in (0, 3600]", "found the number 0", NULL);
  expect_error(NULL, SET("teacher.concurrency=2.5"), "expected an integer in [1, 1024]",
               "found the number 2.5", NULL);
  expect_error(NULL, SET("teacher.budget_usd=-1"), "teacher.budget_usd: expected a number >= 0",
               "found the number -1", NULL);
  expect_error(NULL, SET("data.test_fraction=0.95"),
               "data.test_fraction: expected a number in [0, 0.9], found the number 0.95", NULL);
  expect_error(NULL, SET("student.buckets=200000000"),
               "student.buckets: expected an integer in [1, 100000000]", NULL);
  expect_error(NULL, SET("student.hidden=[64,0]"),
               "student.hidden[1]: expected an integer in [1, 16384]", "found the number 0", NULL);
  expect_error(NULL, SET("student.hidden=[1,2,3,4,5]"),
               "student.hidden: expected an array of at most 4", NULL);
  expect_error(NULL, SET("quality.target_agreement=0"),
               "quality.target_agreement: expected a number in (0, 1]", NULL);
  expect_error(NULL, SET("quality.confidence=1"), "quality.confidence", NULL);
  expect_error(NULL, SET("teacher.top_logprobs=21"),
               "teacher.top_logprobs: expected an integer in [0, 20]", NULL);
  expect_error(NULL, SET("student.minn=5", "student.maxn=3"),
               "student.minn: expected minn <= maxn (3)", "found 5", NULL);
  expect_error(NULL, SET("student.heads=5"),
               "student.heads: expected a divisor of the model width (128, the preset's", NULL);
}

static void missing_required_key_should_be_named(void **state) {
  (void)state;
  expect_error(
      "{\"task\":{\"labels\":[\"a\",\"b\"]},\"data\":{\"inputs\":[\"x\"]},"
      "\"teacher\":{\"model\":\"m\"}}",
      NULL, 0, "name: missing required key", NULL);
  expect_error("{\"name\":\"t\",\"task\":{\"labels\":[\"a\",\"b\"]},\"data\":{\"inputs\":[\"x\"]}}",
               NULL, 0, "teacher.model: missing required key", "model name", NULL);
  expect_error("{\"name\":\"t\",\"task\":{\"labels\":[\"a\",\"b\"]},\"teacher\":{\"model\":\"m\"}}",
               NULL, 0, "data.inputs: missing required key", NULL);
  expect_error("{\"name\":\"t\",\"data\":{\"inputs\":[\"x\"]},\"teacher\":{\"model\":\"m\"}}", NULL,
               0, "task.labels: missing required key", "classify", NULL);
  expect_error(NULL, SET("data.inputs[0]={\"split\":\"test\"}"),
               "data.inputs[0]: missing required key \"path\"", NULL);
}

static void unknown_key_should_suggest_the_closest(void **state) {
  (void)state;
  expect_error(NULL, SET("teacher.concurency=4"),
               "teacher.concurency: unknown key (did you mean teacher.concurrency?)", NULL);
  expect_error(NULL, SET("studnet.dim=4"), "studnet: unknown key (did you mean student?)", NULL);
  expect_error(NULL, SET("model=gpt"), "model: unknown key (did you mean teacher.model?)", NULL);
  expect_error(NULL, SET("teacher.dim=4"), "teacher.dim: unknown key (did you mean student.dim?)",
               NULL);
  expect_error(NULL, SET("data.inputs[0]={\"path\":\"a\",\"fromat\":\"csv\"}"),
               "data.inputs[0].fromat: unknown key (did you mean data.inputs[0].format?)", NULL);
  /* nothing close: the allowed keys are listed instead */
  expect_error(NULL, SET("cost.zzzzzzzzzzzz=1"), "cost.zzzzzzzzzzzz: unknown key",
               "expected one of: cpu_usd_per_hour, requests_per_month", NULL);
}

static void bad_json_should_report_line_and_column(void **state) {
  (void)state;
  char path[PATH_MAX];
  fixture_path("bad_json.json", path, sizeof path);
  us_config c;
  us_err err = {0};
  assert_int_equal(us_config_load(path, NULL, 0, &c, &err), US_ERR_CONFIG);
  if (!strstr(err.msg, "bad_json.json:6:") || !strstr(err.msg, "invalid JSON at line 6, column"))
    fail_msg("%s", err.msg);
  expect_error("{\"name\": \"t\"} x", NULL, 0,
               "config.json:1:15: invalid JSON at line 1, column 15", NULL);
  expect_error("{\"name\": \"t\",", NULL, 0, "invalid JSON at line 1", NULL);
  expect_error("[1, 2]", NULL, 0, "expected a JSON object at the top level, found an array", NULL);
  expect_error("{\"name\":\"t\",\"name\":\"u\"}", NULL, 0, "name: key appears twice", NULL);
}

/* cJSON turns \u0000 into a NUL that silently cuts a string (or a key) short, and passes any
 * bytes through: both are refused, naming where. */
static void nul_and_invalid_utf8_should_be_refused_naming_where(void **state) {
  (void)state;
  expect_error("{\"name\":\"t\",\n \"teacher\":{\"model\":\"a\\u0000b\"}}", NULL, 0,
               "config.json:2:23: a \\u0000 escape (a NUL character) at line 2, column 23", NULL);
  expect_error("{\"name\":\"t\",\"tea\\u0000cher\":{}}", NULL, 0, "a \\u0000 escape", NULL);
  expect_error(NULL, SET("teacher.model=\"a\\u0000b\""), "--set 'teacher.model=\"a\\u0000b\"'",
               "holds \\u0000", NULL);
  char json[256];
  snprintf(json, sizeof json,
           "{\"name\":\"t\",\"task\":{\"labels\":[\"yes\",\"no\"]},\"data\":{\"inputs\":"
           "[\"in.jsonl\"]},\"teacher\":{\"model\":\"gpt\xff\xfe\"}}");
  expect_error(json, NULL, 0,
               "teacher.model: expected valid UTF-8 text, found the byte 0xff at byte 4", NULL);
  expect_error(NULL, SET("task.labels=[\"ok\", \"b\xc3(\"]"),
               "task.labels[1]: expected valid UTF-8 text, found the byte 0xc3 at byte 2",
               "(value from --set)", NULL);
  /* a raw NUL byte: written by hand, since the helpers take C strings */
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/nul.json", tmp_dir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fwrite("{\"name\":\"t\0\"}", 1, 14, f);
  fclose(f);
  us_config c;
  us_err err = {0};
  assert_int_equal(us_config_load(path, NULL, 0, &c, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "nul.json:1:11: a NUL byte at line 1, column 11"));
}

static void missing_file_should_be_an_io_error_naming_it(void **state) {
  (void)state;
  us_config c;
  us_err err = {0};
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/no_such_config.json", tmp_dir);
  assert_int_equal(us_config_load(path, NULL, 0, &c, &err), US_ERR_IO);
  assert_non_null(strstr(err.msg, "no_such_config.json"));
  us_config_free(&c);
}

static void bad_set_should_be_refused(void **state) {
  (void)state;
  expect_error(NULL, SET("teacher.concurrency"),
               "--set 'teacher.concurrency': expected key.path=value", NULL);
  expect_error(NULL, SET("=4"), "--set '=4': expected key.path=value", NULL);
  expect_error(NULL, SET("teacher..model=x"), "--set 'teacher..model=x': empty key name", NULL);
  expect_error(NULL, SET("teacher.=x"), "key path ends with '.'", NULL);
  expect_error(NULL, SET("name.first=x"),
               "--set 'name.first=x': cannot set key \"first\" inside the string \"t\"", NULL);
  expect_error(NULL, SET("data.inputs[5]=x"), "index 5 is past the end of an array of 1", NULL);
  expect_error(NULL, SET("teacher[0]=x"), "cannot index into an object", NULL);
  expect_error(NULL, SET("data.inputs[x]=y"), "expected an array index such as [0]", NULL);
  expect_error(NULL, SET("teacher.headers.Authorization=Bearer sk-1"),
               "teacher.headers.Authorization: refused", "teacher.api_key_env", NULL);
}

static void authorization_header_should_be_refused(void **state) {
  (void)state;
  expect_error(
      "{\"name\":\"t\",\"task\":{\"labels\":[\"yes\",\"no\"]},"
      "\"data\":{\"inputs\":[\"in.jsonl\"]},"
      "\"teacher\":{\"model\":\"m\",\"headers\":{\"authorization\":\"Bearer sk-x\"}}}",
      NULL, 0, "teacher.headers.authorization: refused", "read only from the environment variable",
      NULL);
  expect_error(NULL, SET("teacher.headers={\"X-A\":1}"), "teacher.headers.X-A: expected a string",
               NULL);
  expect_error(NULL, SET("teacher.headers={\"Bad Name\":\"v\"}"), "teacher.headers.Bad Name",
               "header name", NULL);
  expect_error(NULL, SET("teacher.headers={\"X-A\":\"a\\r\\nX-B: b\"}"),
               "a header value on one line", NULL);
}

static void values_should_be_checked_beyond_type(void **state) {
  (void)state;
  expect_error(NULL, SET("name=my project"), "name: expected a name of letters, digits", NULL);
  expect_error(NULL, SET("task.labels=[\"a\",\"a\"]"), "task.labels[1]: duplicate label \"a\"",
               NULL);
  expect_error(NULL, SET("task.labels=[\"a\",\"\"]"), "task.labels[1]: expected a non-empty label",
               NULL);
  expect_error(NULL, SET("task.labels=[\"only\"]"),
               "task.labels: expected at least 2 distinct labels", "found 1", NULL);
  expect_error(NULL, SET("task.template=Classify: {labels}"),
               "task.template: expected a template containing {text}", NULL);
  expect_error(NULL, SET("teacher.base_url=ftp://host/v1"),
               "teacher.base_url: expected a URL starting with http:// or https://", NULL);
  expect_error(NULL, SET("teacher.base_url=https:///"),
               "teacher.base_url: expected a URL with a host after the scheme", NULL);
  expect_error(NULL, SET("teacher.api_key_env=my-key"),
               "teacher.api_key_env: expected an environment variable name", NULL);
  expect_error(NULL, SET("student.preset=huge"), "student.preset: expected \"auto\", \"nano\"",
               NULL);
  expect_error(NULL, SET("data.inputs=[]"), "data.inputs: expected a non-empty array", NULL);
  expect_error(NULL, SET("data.inputs[0]={\"path\":\"a\",\"format\":\"xml\"}"),
               "data.inputs[0].format: expected \"jsonl\", \"csv\"", NULL);
}

/* ---- --set ----------------------------------------------------------------------------------- */

static void set_should_override_numbers_strings_nested_and_arrays(void **state) {
  (void)state;
  us_config c;
  us_err err = {0};
  const char *const *sets =
      (const char *const[]){"teacher.concurrency=4",
                            "teacher.model=llama-3.1-8b",
                            "name=2024",
                            "teacher.price.output_per_mtok=0.6", /* creates teacher.price */
                            "cost.cpu_usd_per_hour=0.02",        /* creates cost */
                            "student.hidden=[64, 32]",
                            "task.labels=[\"spam\",\"ham\",\"unsure\"]",
                            "data.inputs[0]=other.jsonl",
                            "data.inputs[1]={\"path\":\"held.csv\",\"split\":\"test\"}",
                            "teacher.seed=7",
                            "teacher.headers.X-Title=demo",
                            "task.instructions=Be brief.",
                            "data.inputs[1].format=csv",
                            "teacher.headers.X-Version=2", /* header values stay text */
                            "data.inputs[1].path=2024"};   /* so do paths */
  if (load_json(VALID, sets, 15, &c, &err) != US_OK) fail_msg("%s", err.msg);
  assert_int_equal(c.teacher.concurrency, 4);
  assert_string_equal(c.teacher.model, "llama-3.1-8b");
  assert_string_equal(c.name, "2024"); /* a string key keeps a number-looking value as text */
  assert_true(c.teacher.price_output_per_mtok == 0.6);
  assert_true(c.cost.cpu_usd_per_hour == 0.02);
  assert_int_equal(c.student.classifier.n_hidden, 2);
  assert_int_equal(c.student.classifier.hidden[1], 32);
  assert_int_equal(c.task.n_labels, 3);
  assert_string_equal(c.task.labels[2], "unsure");
  assert_int_equal(c.data.n_inputs, 2);
  char want[PATH_MAX + 32];
  snprintf(want, sizeof want, "%s/other.jsonl", tmp_dir);
  assert_string_equal(c.data.inputs[0].path, want);
  assert_string_equal(c.data.inputs[1].format, "csv");
  snprintf(want, sizeof want, "%s/2024", tmp_dir); /* held.csv, then --set path=2024 */
  assert_string_equal(c.data.inputs[1].path, want);
  assert_int_equal(c.data.inputs[1].split, US_SPLIT_TEST);
  assert_true(c.teacher.has_seed);
  assert_int_equal(c.teacher.seed, 7);
  assert_int_equal(c.teacher.n_headers, 2);
  assert_string_equal(c.teacher.headers[0].value, "demo");
  assert_string_equal(c.teacher.headers[1].name, "X-Version");
  assert_string_equal(c.teacher.headers[1].value, "2");
  assert_string_equal(c.task.instructions, "Be brief.");
  snprintf(want, sizeof want, "%s/out/2024", tmp_dir);
  assert_string_equal(c.output, want);
  us_config_free(&c);
}

static void later_set_should_win_and_null_should_clear(void **state) {
  (void)state;
  us_config c;
  us_err err = {0};
  const char *json =
      "{\"name\":\"t\",\"task\":{\"labels\":[\"yes\",\"no\"]},"
      "\"data\":{\"inputs\":[\"in.jsonl\"],\"label_field\":\"gold\"},"
      "\"teacher\":{\"model\":\"m\",\"seed\":3},\"student\":{\"preset\":\"nano\"}}";
  if (load_json(json,
                SET("teacher.concurrency=2", "teacher.concurrency=3", "teacher.seed=null",
                    "data.label_field=null", "student.preset=null"),
                &c, &err) != US_OK)
    fail_msg("%s", err.msg);
  assert_int_equal(c.teacher.concurrency, 3);
  assert_false(c.teacher.has_seed);
  assert_null(c.data.label_field);
  assert_null(c.student.lm.preset);
  us_config_free(&c);
}

/* ---- paths ----------------------------------------------------------------------------------- */

static void relative_paths_should_resolve_against_the_config_folder(void **state) {
  (void)state;
  char sub[PATH_MAX + 8], path[PATH_MAX + 32], want[PATH_MAX + 64];
  snprintf(sub, sizeof sub, "%s/sub", tmp_dir);
  assert_int_equal(mkdir(sub, 0755), 0);
  snprintf(path, sizeof path, "%s/sub/project.json", tmp_dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(
      "{\"name\":\"p\",\"output\":\"./build/o\",\"task\":{\"labels\":[\"a\",\"b\"]},"
      "\"data\":{\"inputs\":[\"./in/a.jsonl\",\"../shared.csv\",\"/abs/b.txt\","
      "{\"path\":\"docs\"}]},\"teacher\":{\"model\":\"m\"}}",
      f);
  fclose(f);
  /* load through a relative path from another working folder */
  char old_cwd[PATH_MAX];
  assert_non_null(getcwd(old_cwd, sizeof old_cwd));
  assert_int_equal(chdir(tmp_dir), 0);
  us_config c;
  us_err err = {0};
  us_status st = us_config_load("sub/project.json", NULL, 0, &c, &err);
  assert_int_equal(chdir(old_cwd), 0);
  if (st != US_OK) fail_msg("%s", err.msg);
  assert_string_equal(c.path, "sub/project.json");
  assert_string_equal(c.dir, sub);
  snprintf(want, sizeof want, "%s/build/o", sub);
  assert_string_equal(c.output, want);
  snprintf(want, sizeof want, "%s/in/a.jsonl", sub);
  assert_string_equal(c.data.inputs[0].path, want);
  snprintf(want, sizeof want, "%s/shared.csv", tmp_dir); /* "sub/../" folded */
  assert_string_equal(c.data.inputs[1].path, want);
  assert_string_equal(c.data.inputs[2].path, "/abs/b.txt");
  snprintf(want, sizeof want, "%s/docs", sub);
  assert_string_equal(c.data.inputs[3].path, want);
  us_config_free(&c);
  /* an absolute output stays as written */
  if (load_json(VALID, SET("output=/var/tmp/o"), &c, &err) != US_OK) fail_msg("%s", err.msg);
  assert_string_equal(c.output, "/var/tmp/o");
  us_config_free(&c);
}

/* ---- rendering ------------------------------------------------------------------------------- */

static void render_should_fill_text_and_labels_once(void **state) {
  (void)state;
  us_config c;
  us_err err = {0};
  if (load_json(VALID, NULL, 0, &c, &err) != US_OK) fail_msg("%s", err.msg);
  char *system = NULL, *user = NULL;
  const char *text = "Is {labels} a {text} marker?";
  assert_int_equal(us_config_render(&c, text, &system, &user, &err), US_OK);
  assert_string_equal(system,
                      "You are a careful classifier. Reply with exactly one label from the list.");
  assert_string_equal(user,
                      "Classify this message into one of: yes, no.\nAnswer with the label "
                      "only.\n\nMessage:\nIs {labels} a {text} marker?");
  /* the text is recoverable: it is everything after the fixed prefix */
  const char *marker = "\n\nMessage:\n";
  const char *at = strstr(user, marker);
  assert_non_null(at);
  assert_string_equal(at + strlen(marker), text);
  free(system);
  free(user);
  us_config_free(&c);
}

static void render_should_fill_labels_in_instructions(void **state) {
  (void)state;
  us_config c;
  us_err err = {0};
  if (load_json(VALID, SET("task.instructions=Pick from {labels}.", "task.template=<{text}>"), &c,
                &err) != US_OK)
    fail_msg("%s", err.msg);
  char *system = NULL, *user = NULL;
  assert_int_equal(us_config_render(&c, "héllo", &system, &user, &err), US_OK);
  assert_string_equal(system, "Pick from yes, no.");
  assert_string_equal(user, "<héllo>");
  free(system);
  free(user);
  us_config_free(&c);
}

static void label_index_should_find_exact_labels_only(void **state) {
  (void)state;
  us_config c;
  us_err err = {0};
  if (load_json(VALID, NULL, 0, &c, &err) != US_OK) fail_msg("%s", err.msg);
  assert_int_equal(us_config_label_index(&c, "yes"), 0);
  assert_int_equal(us_config_label_index(&c, "no"), 1);
  assert_int_equal(us_config_label_index(&c, "Yes"), -1);
  assert_int_equal(us_config_label_index(&c, ""), -1);
  assert_int_equal(us_config_label_index(&c, NULL), -1);
  us_config_free(&c);
}

/* The config's student defaults are the classifier's own (chosen by measurement): a user who
 * sets nothing trains exactly the documented student. */
static void student_defaults_should_match_the_classifier(void **state) {
  (void)state;
  us_config c;
  us_config_defaults(&c);
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  assert_int_equal(c.student.classifier.dim, p.dim);
  assert_int_equal(c.student.classifier.word_ngrams, p.word_ngrams);
  assert_int_equal(c.student.classifier.minn, p.minn);
  assert_int_equal(c.student.classifier.maxn, p.maxn);
  assert_int_equal(c.student.classifier.buckets, p.buckets);
  assert_int_equal(c.student.classifier.n_hidden, p.n_hidden);
  assert_int_equal(c.student.classifier.epochs, p.epochs);
  assert_int_equal(c.student.classifier.patience, p.patience);
  assert_int_equal(c.student.classifier.threads, p.threads);
  assert_true(c.student.classifier.lr == p.lr);
  assert_true(c.student.classifier.dropout == p.dropout);
  assert_true(c.student.classifier.kd_temperature == p.kd_temperature);
  assert_true(c.student.classifier.label_smoothing == p.label_smoothing);
  assert_true(c.student.classifier.quantize == p.quantize);
  assert_int_equal(c.student.classifier.min_count, p.min_count);
  assert_int_equal(c.student.classifier.min_count_ngram, p.min_count_ngram);
  assert_int_equal(c.student.classifier.quantize_bits, p.quantize_bits);
  us_config_free(&c);
}

/* ---- distill's keys (data.*, teacher.*) against distill's parameter tables ------------------- */
/* Every numeric key of data.* and teacher.* is backed by an entry of us_prompts_param_table or
 * us_teacher_param_table: the config's default is the module's, both ends of the range load,
 * and the value just outside it is refused with a message naming the config key. */

/* The config key of a distill table field (teacher.price_* sit in a teacher.price object). */
static void distill_config_key(bool teacher, const char *field, char *out, size_t cap) {
  if (teacher && strncmp(field, "price_", 6) == 0)
    snprintf(out, cap, "teacher.price.%s", field + 6);
  else
    snprintf(out, cap, "%s.%s", teacher ? "teacher" : "data", field);
}

/* "key=value" with value written so it reads back exactly. */
static void distill_set(const char *key, const us_param *p, double v, char *out, size_t cap) {
  if (p->kind == US_PARAM_BOOL)
    snprintf(out, cap, "%s=%s", key, v != 0 ? "true" : "false");
  else if (v == (double)(long long)v && fabs(v) < 1e16)
    snprintf(out, cap, "%s=%lld", key, (long long)v);
  else
    snprintf(out, cap, "%s=%.17g", key, v);
}

/* Loads VALID with key=v and expects it to load with the field holding v. */
static void distill_expect_accepted(bool teacher, const char *key, const us_param *p, double v) {
  char set[256];
  distill_set(key, p, v, set, sizeof set);
  const char *const sets[] = {set};
  us_config c;
  us_err err = {0};
  if (load_json(VALID, sets, 1, &c, &err) != US_OK) fail_msg("%s refused: %s", set, err.msg);
  double got = us_param_value(p, teacher ? (const void *)&c.teacher : (const void *)&c.data, 0);
  if (got != v) fail_msg("%s loaded as %.17g", set, got);
  us_config_free(&c);
}

static void distill_expect_refused(const char *key, const us_param *p, double v) {
  char set[256], needle[160];
  distill_set(key, p, v, set, sizeof set);
  if (p->kind == US_PARAM_BOOL) snprintf(set, sizeof set, "%s=2", key); /* not a bool at all */
  snprintf(needle, sizeof needle, "%s: ", key);
  expect_error(NULL, (const char *const[]){set}, 1, needle, NULL);
}

static void distill_walk_table(bool teacher, const us_param *table, size_t n) {
  us_config c;
  us_config_defaults(&c);
  us_prompts_params data_defaults;
  us_teacher_params teacher_defaults;
  us_prompts_params_defaults(&data_defaults);
  us_teacher_params_defaults(&teacher_defaults);
  const void *config_section = teacher ? (const void *)&c.teacher : (const void *)&c.data;
  const void *module = teacher ? (const void *)&teacher_defaults : (const void *)&data_defaults;
  for (size_t i = 0; i < n; i++) {
    const us_param *p = &table[i];
    char key[96];
    distill_config_key(teacher, p->name, key, sizeof key);
    double want = us_param_value(p, module, 0), got = us_param_value(p, config_section, 0);
    if (want != got) fail_msg("%s: the config's default %g is not the module's %g", key, got, want);
    if (p->kind == US_PARAM_BOOL) {
      distill_expect_accepted(teacher, key, p, 0);
      distill_expect_accepted(teacher, key, p, 1);
      distill_expect_refused(key, p, 2);
      continue;
    }
    bool open = p->flags & US_PARAM_MIN_OPEN, integer = p->kind != US_PARAM_DOUBLE;
    double lowest = open ? (integer ? p->min + 1 : nextafter(p->min, INFINITY)) : p->min;
    double below = open ? p->min : (integer ? p->min - 1 : nextafter(p->min, -INFINITY));
    distill_expect_accepted(teacher, key, p, lowest);
    distill_expect_refused(key, p, below);
    if (p->flags & US_PARAM_NO_MAX) {
      distill_expect_accepted(teacher, key, p, 1e15);
      continue;
    }
    distill_expect_accepted(teacher, key, p, p->max);
    distill_expect_refused(key, p, integer ? p->max + 1 : nextafter(p->max, INFINITY));
  }
  us_config_free(&c);
}

static void distill_keys_should_follow_the_distill_tables(void **state) {
  (void)state;
  size_t n = 0;
  const us_param *table = us_prompts_param_table(&n);
  assert_true(n > 0);
  distill_walk_table(false, table, n);
  table = us_teacher_param_table(&n);
  assert_true(n > 0);
  distill_walk_table(true, table, n);
}

static void distill_string_defaults_should_be_the_modules(void **state) {
  (void)state;
  us_config c;
  us_config_defaults(&c);
  assert_string_equal(c.data.text_field, US_PROMPTS_DEFAULT_TEXT_FIELD);
  assert_string_equal(c.data.id_field, US_PROMPTS_DEFAULT_ID_FIELD);
  assert_string_equal(c.data.question_template, US_PROMPTS_DEFAULT_QUESTION_TEMPLATE);
  assert_string_equal(c.data.answer_template, US_PROMPTS_DEFAULT_ANSWER_TEMPLATE);
  assert_null(c.data.label_field);
  assert_string_equal(c.teacher.base_url, US_TEACHER_DEFAULT_BASE_URL);
  assert_string_equal(c.teacher.api_key_env, US_TEACHER_DEFAULT_API_KEY_ENV);
  assert_int_equal(c.teacher.max_tokens, US_TEACHER_DEFAULT_MAX_TOKENS_CLASSIFY);
  us_config_free(&c);
}

/* ---- end of distill's block ------------------------------------------------------------------ */

/* ---- eval's settings: every cost.* and quality.* key against eval's own tables --------------- */

/* A value just outside e's range below (the minimum itself when it is excluded) or above. */
static double just_outside(const us_param *e, bool above) {
  double step = e->kind == US_PARAM_DOUBLE ? 1e-9 : 1;
  if (above) return e->max + (e->kind == US_PARAM_DOUBLE ? fmax(fabs(e->max) * 1e-9, step) : 1);
  return (e->flags & US_PARAM_MIN_OPEN) ? e->min : e->min - step;
}

/* Loads VALID with "<key>=<v>" and returns the stored value of e, failing on a load error. */
static double load_with(const char *key, const us_param *e, double v, size_t member) {
  char set[160], num[40];
  us_param_format(v, num, sizeof num);
  snprintf(set, sizeof set, "%s=%s", key, num);
  us_config c;
  us_err err;
  if (load_json(VALID, SET(set), &c, &err) != US_OK) fail_msg("--set %s refused: %s", set, err.msg);
  double stored = us_param_value(e, (const char *)&c + member, 0);
  us_config_free(&c);
  return stored;
}

/* For each entry of a module table behind config section prefix (stored at member of us_config):
 * the default is the module's, both ends of the range load, and a value just outside is refused
 * with a message naming the config key and the range. */
static void walk_section(const char *prefix, const us_param *t, size_t n, const void *defaults,
                         size_t member) {
  us_config d, loaded;
  us_err err;
  us_config_defaults(&d);
  if (load_json(VALID, NULL, 0, &loaded, &err) != US_OK) fail_msg("%s", err.msg);
  for (size_t i = 0; i < n; i++) {
    const us_param *e = &t[i];
    char key[96], expected[128], set[160], num[40];
    snprintf(key, sizeof key, "%s.%s", prefix, e->name);
    double want = us_param_value(e, defaults, 0);
    if (us_param_value(e, (const char *)&d + member, 0) != want ||
        us_param_value(e, (const char *)&loaded + member, 0) != want)
      fail_msg("%s: the config's default is not the module's", key);
    if (!(e->flags & US_PARAM_MIN_OPEN)) assert_true(load_with(key, e, e->min, member) == e->min);
    if (!(e->flags & US_PARAM_NO_MAX)) assert_true(load_with(key, e, e->max, member) == e->max);
    us_param_describe(e, expected, sizeof expected);
    char needle[256];
    snprintf(needle, sizeof needle, "%s: expected %s", key, expected);
    for (int above = 0; above < 2; above++) {
      if (above && (e->flags & US_PARAM_NO_MAX)) continue;
      us_param_format(just_outside(e, above), num, sizeof num);
      snprintf(set, sizeof set, "%s=%s", key, num);
      expect_error(NULL, SET(set), needle, NULL);
    }
  }
  us_config_free(&d);
  us_config_free(&loaded);
}

static void cost_and_quality_keys_should_follow_the_eval_tables(void **state) {
  (void)state;
  size_t n = 0;
  us_cost_params cost;
  us_cost_params_defaults(&cost);
  const us_param *t = us_cost_param_table(&n);
  assert_int_equal(n, 2);
  walk_section("cost", t, n, &cost, offsetof(us_config, cost));
  us_quality_params quality;
  us_quality_params_defaults(&quality);
  t = us_quality_param_table(&n);
  assert_int_equal(n, 2);
  walk_section("quality", t, n, &quality, offsetof(us_config, quality));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_should_match_documented_values),
      cmocka_unit_test(student_defaults_should_match_the_classifier),
      cmocka_unit_test(minimal_config_should_load_with_defaults_and_resolved_paths),
      cmocka_unit_test(full_config_should_read_every_key),
      cmocka_unit_test(generate_task_should_get_generate_defaults),
      cmocka_unit_test(wrong_type_should_name_file_key_expected_and_found),
      cmocka_unit_test(long_values_should_be_cut_at_a_character_boundary),
      cmocka_unit_test(out_of_range_should_name_the_range),
      cmocka_unit_test(missing_required_key_should_be_named),
      cmocka_unit_test(unknown_key_should_suggest_the_closest),
      cmocka_unit_test(bad_json_should_report_line_and_column),
      cmocka_unit_test(nul_and_invalid_utf8_should_be_refused_naming_where),
      cmocka_unit_test(missing_file_should_be_an_io_error_naming_it),
      cmocka_unit_test(bad_set_should_be_refused),
      cmocka_unit_test(authorization_header_should_be_refused),
      cmocka_unit_test(values_should_be_checked_beyond_type),
      cmocka_unit_test(set_should_override_numbers_strings_nested_and_arrays),
      cmocka_unit_test(later_set_should_win_and_null_should_clear),
      cmocka_unit_test(relative_paths_should_resolve_against_the_config_folder),
      cmocka_unit_test(render_should_fill_text_and_labels_once),
      cmocka_unit_test(render_should_fill_labels_in_instructions),
      cmocka_unit_test(label_index_should_find_exact_labels_only),
      /* distill's keys */
      cmocka_unit_test(distill_keys_should_follow_the_distill_tables),
      cmocka_unit_test(distill_string_defaults_should_be_the_modules),
      cmocka_unit_test(cost_and_quality_keys_should_follow_the_eval_tables),
  };
  return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
