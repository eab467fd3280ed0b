/* serve/: recovering {text} from a rendered template exactly, the Wilson lower bound of the
 * audit, and the promise the server leans on: one loaded classifier answers from many threads at
 * once exactly as it answers from one (run under TSan with -fsanitize=thread where it builds);
 * the teacher answers kept until written and the set of stored keys. */
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */
#include <string.h>
#include <unistd.h>

#include "eval/cascade.h"
#include "serve/serve.h"
#include "serve/serve_int.h"
#include "student/classifier.h"
#include "understudy.h"

static void template_match_should_recover_the_text_exactly(void **state) {
  (void)state;
  const char *tpl = "Classify into one of: {labels}.\nMessage: {text}\nLabel:";
  const char *labels = "a, b";
  char *t =
      us_serve_match_template(tpl, labels, "Classify into one of: a, b.\nMessage: hi {x}\nLabel:");
  assert_non_null(t);
  assert_string_equal(t, "hi {x}");
  free(t);
  /* text holding the template's own markers and suffix */
  t = us_serve_match_template(tpl, labels,
                              "Classify into one of: a, b.\nMessage: {text}\nLabel: x\nLabel:");
  assert_non_null(t);
  assert_string_equal(t, "{text}\nLabel: x");
  free(t);
  t = us_serve_match_template(tpl, labels, "Classify into one of: a, b.\nMessage: \nLabel:");
  assert_non_null(t);
  assert_string_equal(t, "");
  free(t);
}

static void template_match_should_refuse_anything_else(void **state) {
  (void)state;
  const char *tpl = "Classify into one of: {labels}.\nMessage: {text}\nLabel:";
  assert_null(
      us_serve_match_template(tpl, "a, b", "Classify into one of: a, c.\nMessage: x\nLabel:"));
  assert_null(us_serve_match_template(tpl, "a, b", "Message: x\nLabel:"));
  assert_null(us_serve_match_template(tpl, "a, b", ""));
  assert_null(us_serve_match_template(tpl, "a, b", NULL));
  assert_null(us_serve_match_template("no marker", "a", "no marker"));
  /* {text} twice: both copies must be the same text */
  char *t = us_serve_match_template("{text} = {text}", "", "ab = ab");
  assert_non_null(t);
  assert_string_equal(t, "ab");
  free(t);
  assert_null(us_serve_match_template("{text} = {text}", "", "ab = cd"));
}

static void wilson_low_should_match_known_values(void **state) {
  (void)state;
  assert_true(us_wilson_low(0, 0, 1.645) == 0);
  /* all agreeing: n / (n + z^2) */
  assert_true(fabs(us_wilson_low(100, 100, 1.645) - 100 / (100 + 1.645 * 1.645)) < 1e-9);
  /* 56 of 58 at z = 1.645 is about 0.901 (the report's worked example) */
  double low = us_wilson_low(56, 58, 1.6448536269514722);
  assert_true(low > 0.895 && low < 0.905);
  assert_true(us_wilson_low(50, 100, 0) == 0.5);
}

/* ---- the request fast path ---------------------------------------------------------------- */

/* The fast path (serve/route_fast.c) against the full parser on bodies it must take and bodies
 * it must leave to cJSON; whenever it takes one, it finds what cJSON + us__route_task_text find. */
static void fast_path_should_agree_with_the_full_parser(void **state) {
  (void)state;
  static char spam[] = "spam", ham[] = "ham";
  static char *labels[] = {spam, ham};
  us_config c;
  us__server s;
  memset(&c, 0, sizeof c);
  memset(&s, 0, sizeof s);
  c.teacher.model = "mock-teacher";
  c.serve.model = "student";
  c.task.type = US_TASK_CLASSIFY;
  c.task.labels = labels;
  c.task.n_labels = 2;
  c.task.instructions = "One label.";
  c.task.template = "Into: {labels}.\nMessage: {text}\nLabel:";
  s.config = &c;
  s.labels_joined = "spam, ham";
  assert_int_equal(us__route_prepare(&s), US_OK);
#define SYS "{\"role\":\"system\",\"content\":\"One label.\"}"
#define USER(t) "{\"role\":\"user\",\"content\":\"Into: spam, ham.\\nMessage: " t "\\nLabel:\"}"
  struct {
    const char *body;
    bool fast; /* the fast path must take it */
  } cases[] = {
      {"{\"model\":\"mock-teacher\",\"messages\":[" SYS "," USER("win now") "]}", true},
      {" {\"max_tokens\":16,\"temperature\":0.5e-3,\"model\":\"student\",\"stream\":true,"
       "\"stream_options\":{\"include_usage\":true},\"messages\":[" SYS
       "," USER("a \\\"b\\\" \\/ \\t") "],"
                                       "\"user\":null,\"n\":[1,{\"x\":[]}],\"logprobs\":false}\n",
       true},
      /* the first of duplicate keys counts, as cJSON finds it */
      {"{\"model\":\"mock-teacher\",\"model\":\"other\",\"stream\":false,\"stream\":true,"
       "\"stream_options\":[],\"stream_options\":{\"include_usage\":true},\"messages\":[" SYS
       "," USER("x") "]}",
       true},
      {"{\"model\":\"mock-teacher\",\"messages\":[" SYS "," USER("") "]}", true},
      /* left to the full parser: an escape it does not decode, content parts, trailing bytes,
       * malformed or not the task */
      {"{\"model\":\"mock-teacher\",\"messages\":[" SYS "," USER("caf\\u00e9") "]}", false},
      {"{\"model\":\"mock-teacher\",\"messages\":[" SYS
       ",{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Into: spam, ham.\\nMessage: "
       "x\\nLabel:\"}]}]}",
       false},
      {"{\"model\":\"mock-teacher\",\"messages\":[" SYS "," USER("x") "]} trailing", false},
      {"{\"model\":\"mock-teacher\",\"messages\":[" SYS "," USER("x") "],}", false},
      {"{\"model\":\"mock-teacher\",\"messages\":[" SYS "," USER("x") "]", false},
      {"{\"model\":\"mock-teacher\",\"n\":01,\"messages\":[" SYS "," USER("x") "]}", false},
      {"{\"model\":\"gpt-x\",\"messages\":[" SYS "," USER("x") "]}", false},
      {"{\"model\":\"mock-teacher\",\"messages\":[" USER("x") "]}", false},
      {"{\"model\":\"mock-teacher\",\"messages\":[" SYS "," SYS "," USER("x") "]}", false},
      {"{\"model\":\"mock-teacher\",\"messages\":[]}", false},
      {"[1,2]", false},
      {"", false},
  };
#undef SYS
#undef USER
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *body = cases[i].body;
    us__fast_task f;
    bool took = us__route_fast_task(&s, body, strlen(body), &f);
    if (took != cases[i].fast) fail_msg("case %zu: the fast path %s it", i, took ? "took" : "left");
    if (!took) continue;
    cJSON *req = cJSON_Parse(body);
    assert_non_null(req);
    char *text = us__route_task_text(&s, req);
    assert_non_null(text);
    assert_string_equal(f.text, text);
    assert_string_equal(f.model, cJSON_GetObjectItemCaseSensitive(req, "model")->valuestring);
    bool stream, include_usage;
    us__route_stream_flags(req, &stream, &include_usage);
    assert_int_equal(f.stream, stream);
    assert_int_equal(f.include_usage, include_usage);
    free(text);
    free(f.text);
    free(f.model);
    cJSON_Delete(req);
  }
  us__route_unprepare(&s);
}

/* ---- the shared classifier ---------------------------------------------------------------- */

static us_model *shared;
static const char *const probe[] = {
    "I lost my card", "refund please",       "hello there",       "card",
    "money back now", "good morning to you", "stolen card refund"};
#define N_PROBE (sizeof probe / sizeof probe[0])
static us_prediction expected[N_PROBE][3];

static void *hammer(void *arg) {
  (void)arg;
  for (int round = 0; round < 2000; round++) {
    size_t i = (size_t)round % N_PROBE;
    us_prediction out[3];
    int n = 0;
    us_err err;
    if (us_model_classify(shared, probe[i], 3, out, &n, &err) != US_OK || n != 3) return (void *)1;
    for (int k = 0; k < 3; k++)
      if (out[k].index != expected[i][k].index || out[k].prob != expected[i][k].prob)
        return (void *)1;
  }
  return NULL;
}

static void one_classifier_should_answer_many_threads_alike(void **state) {
  (void)state;
  static char *labels[] = {"card_lost", "refund", "greeting"};
  const char *texts[] = {"I lost my card",  "my card was stolen", "card missing",
                         "I want a refund", "refund my money",    "give my money back",
                         "hello",           "hi there",           "good morning"};
  us_example ex[9];
  for (int i = 0; i < 9; i++) ex[i] = (us_example){texts[i], i / 3, NULL};
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  p.dim = 16;
  p.buckets = 10000;
  p.epochs = 50;
  p.threads = 1;
  us_classifier *m = NULL;
  us_err err;
  assert_int_equal(us_classifier_train(&p, labels, 3, ex, 9, NULL, 0, NULL, NULL, &m, &err), US_OK);
  char path[256];
  snprintf(path, sizeof path, "/tmp/us_test_serve_%d.bin", (int)getpid());
  assert_int_equal(us_classifier_save(m, path, &err), US_OK);
  us_classifier_free(m);
  assert_int_equal(us_model_load(path, &shared, &err), US_OK);
  unlink(path);
  for (size_t i = 0; i < N_PROBE; i++) {
    int n = 0;
    assert_int_equal(us_model_classify(shared, probe[i], 3, expected[i], &n, &err), US_OK);
    assert_int_equal(n, 3);
  }
  pthread_t th[8];
  for (int t = 0; t < 8; t++) assert_int_equal(pthread_create(&th[t], NULL, hammer, NULL), 0);
  int bad = 0;
  for (int t = 0; t < 8; t++) {
    void *r = NULL;
    pthread_join(th[t], &r);
    bad += r != NULL;
  }
  assert_int_equal(bad, 0);
  us_model_free(shared);
}

/* A key of 64 hex digits whose first three (the recent table's bucket) are "abc". */
static void colliding_key(int i, char key[65]) {
  snprintf(key, 65, "abc%061d", i);
}

static void recent_answers_should_stay_until_their_row_is_written(void **state) {
  (void)state;
  static us__server s; /* big: not on the stack */
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.recent_lock, NULL);
  char key[65], body[32];
  /* many answers in one bucket: none pushes another out before it is written */
  for (int i = 0; i < 50; i++) {
    colliding_key(i, key);
    snprintf(body, sizeof body, "answer %d", i);
    us__recent_put(&s, key, body);
  }
  for (int i = 0; i < 50; i++) {
    colliding_key(i, key);
    snprintf(body, sizeof body, "answer %d", i);
    char *got = us__recent_get(&s, key);
    assert_non_null(got);
    assert_string_equal(got, body);
    free(got);
  }
  colliding_key(7, key);
  us__recent_put(&s, key, "answered again"); /* the same request twice: the later answer */
  char *got = us__recent_get(&s, key);
  assert_string_equal(got, "answered again");
  free(got);
  us__recent_forget(&s, key);
  assert_null(us__recent_get(&s, key));
  colliding_key(8, key);
  got = us__recent_get(&s, key);
  assert_string_equal(got, "answer 8");
  free(got);
  us__recent_free(&s);
  assert_null(us__recent_get(&s, key));
  pthread_mutex_destroy(&s.recent_lock);
}

static void known_keys_should_never_miss_a_key_added(void **state) {
  (void)state;
  static us__server s;
  memset(&s, 0, sizeof s);
  us__known_init(&s);
  char key[65];
  /* past several doublings of the table */
  for (int i = 0; i < 20000; i += 2) {
    snprintf(key, sizeof key, "%064x", i * 2654435761u);
    us__known_add(&s, key);
  }
  int false_hits = 0;
  for (int i = 0; i < 20000; i++) {
    snprintf(key, sizeof key, "%064x", i * 2654435761u);
    bool maybe = us__known_has(&s, key);
    if (i % 2 == 0)
      assert_true(maybe);
    else
      false_hits += maybe;
  }
  assert_int_equal(false_hits, 0); /* 64-bit hashes of 20,000 keys do not collide */
  us__known_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(template_match_should_recover_the_text_exactly),
      cmocka_unit_test(template_match_should_refuse_anything_else),
      cmocka_unit_test(wilson_low_should_match_known_values),
      cmocka_unit_test(fast_path_should_agree_with_the_full_parser),
      cmocka_unit_test(one_classifier_should_answer_many_threads_alike),
      cmocka_unit_test(recent_answers_should_stay_until_their_row_is_written),
      cmocka_unit_test(known_keys_should_never_miss_a_key_added),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
