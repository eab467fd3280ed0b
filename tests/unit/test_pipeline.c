/* The pipeline library: us_pipeline_open's errors (missing config, a bad key named, an output
 * folder that cannot be made, a workspace that is not SQLite), the accessors, and
 * us_pipeline_run from C against the mock teacher (tests/mock), stage by stage, over one open
 * workspace; a rerun pays nothing; the stop flag ends a run between stages. */
/* cmocka.h needs these four first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/pipeline.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static char tmp_dir[256]; /* short, so every path built from it fits in PATH_MAX */

static int make_tmp_dir(void **state) {
  (void)state;
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/us_test_pipeline_XXXXXX");
  if (!mkdtemp(tmp_dir)) return -1;
  char *real = realpath(tmp_dir, NULL);
  if (!real) return -1;
  bool fits = strlen(real) < sizeof tmp_dir;
  if (fits) snprintf(tmp_dir, sizeof tmp_dir, "%s", real);
  free(real);
  if (!fits) return -1;
  return 0;
}

static int remove_tmp_dir(void **state) {
  (void)state;
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Writes <tmp>/<name>.json: a classify task over <tmp>/prompts.jsonl, workspace <tmp>/<name>,
 * teacher at base_url. */
static void write_config(const char *name, const char *base_url, char *path, size_t cap) {
  char text[4 * PATH_MAX];
  snprintf(text, sizeof text,
           "{\"name\": \"%s\", \"output\": \"%s/%s\",\n"
           " \"task\": {\"labels\": [\"billing\", \"tech\", \"account\"], \"template\": "
           "\"{text}\"},\n"
           " \"data\": {\"inputs\": [\"%s/prompts.jsonl\"], \"test_fraction\": 0.25},\n"
           " \"teacher\": {\"base_url\": \"%s\", \"model\": \"mock\", \"concurrency\": 4,\n"
           "             \"timeout_s\": 10, \"price\": {\"input_per_mtok\": 1, "
           "\"output_per_mtok\": 2}},\n"
           " \"student\": {\"threads\": 1, \"epochs\": 3}}\n",
           name, tmp_dir, name, tmp_dir, base_url);
  snprintf(path, cap, "%s/%s.json", tmp_dir, name);
  write_file(path, text);
}

static void write_prompts(int n) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/prompts.jsonl", tmp_dir);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  static const char *const what[] = {"my card was charged twice", "the app crashes on login",
                                     "how do I change my email", "the invoice is wrong",
                                     "please close my account"};
  for (int i = 0; i < n; i++)
    fprintf(f, "{\"id\": \"p%d\", \"text\": \"%s, ticket %d\"}\n", i, what[i % 5], i * 7 + 3);
  fclose(f);
}

/* ---- open, close, errors -------------------------------------------------------------------- */

static void open_should_name_a_missing_config(void **state) {
  (void)state;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/nope.json", tmp_dir);
  us_pipeline *p = (us_pipeline *)1;
  us_pipeline_stage at = US_STAGE_REPORT;
  us_err err = {0};
  us_status st = us_pipeline_open_at(path, NULL, 0, &p, &at, &err);
  assert_int_not_equal(st, US_OK);
  assert_null(p);
  assert_int_equal(at, US_STAGE_CONFIG);
  assert_non_null(strstr(err.msg, "nope.json"));
  assert_string_equal(us_pipeline_hint(at, st), "see docs/config.md for every key and its default");
}

static void open_should_name_a_bad_key(void **state) {
  (void)state;
  char path[PATH_MAX];
  write_config("badkey", "http://127.0.0.1:9/v1", path, sizeof path);
  const char *overrides[] = {"student.hiden=[8]"};
  us_pipeline *p = NULL;
  us_err err = {0};
  us_status st = us_pipeline_open(path, overrides, 1, &p, &err);
  assert_int_equal(st, US_ERR_CONFIG);
  assert_null(p);
  assert_non_null(strstr(err.msg, "student.hiden"));
  /* an out-of-range value names the key too, and nothing is created */
  const char *big[] = {"student.hidden=[99999]"};
  st = us_pipeline_open(path, big, 1, &p, &err);
  assert_int_equal(st, US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "student.hidden"));
  char out[PATH_MAX];
  snprintf(out, sizeof out, "%s/badkey", tmp_dir);
  assert_false(file_exists(out));
}

static void open_should_create_the_workspace_once(void **state) {
  (void)state;
  char path[PATH_MAX], db[PATH_MAX];
  write_config("fresh", "http://127.0.0.1:9/v1", path, sizeof path);
  snprintf(db, sizeof db, "%s/fresh/understudy.db", tmp_dir);
  us_pipeline *p = NULL;
  us_err err = {0};
  assert_int_equal(us_pipeline_open(path, NULL, 0, &p, &err), US_OK);
  assert_non_null(p);
  assert_string_equal(us_pipeline_config(p)->name, "fresh");
  assert_non_null(us_pipeline_cache(p));
  assert_string_equal(us_pipeline_workspace_path(p), db);
  assert_true(file_exists(db));
  us_pipeline_close(p);
  us_pipeline_close(NULL); /* a no-op */
}

static void open_should_say_which_step_failed(void **state) {
  (void)state;
  char path[PATH_MAX];
  write_config("steps", "http://127.0.0.1:9/v1", path, sizeof path);
  us_pipeline *p = NULL;
  us_pipeline_stage at = US_STAGE_COUNT;
  us_err err = {0};
  /* the output folder under a regular file cannot be made */
  char blocker[PATH_MAX], set[PATH_MAX + 32];
  snprintf(blocker, sizeof blocker, "%s/blocker", tmp_dir);
  write_file(blocker, "x");
  snprintf(set, sizeof set, "output=\"%s/out\"", blocker);
  const char *o1[] = {set};
  assert_int_not_equal(us_pipeline_open_at(path, o1, 1, &p, &at, &err), US_OK);
  assert_null(p);
  assert_int_equal(at, US_STAGE_OUTPUT);
  assert_string_equal(us_pipeline_hint(at, US_ERR_IO), "check the config's \"output\" folder");
  /* a workspace that is not a SQLite database */
  char dir[PATH_MAX], db[PATH_MAX + 16];
  snprintf(dir, sizeof dir, "%s/steps", tmp_dir);
  mkdir(dir, 0755);
  snprintf(db, sizeof db, "%s/understudy.db", dir);
  write_file(db, "this is not a database, and it is long enough to have a header of sorts\n");
  us_status st = us_pipeline_open_at(path, NULL, 0, &p, &at, &err);
  assert_int_not_equal(st, US_OK);
  assert_null(p);
  assert_int_equal(at, US_STAGE_WORKSPACE);
  assert_non_null(strstr(err.msg, "understudy.db"));
}

static void stage_names_and_hints(void **state) {
  (void)state;
  static const char *const names[] = {"prompts", "label",  "train",  "eval",
                                      "report",  "config", "output", "workspace"};
  for (int i = 0; i < US_STAGE_COUNT; i++)
    assert_string_equal(us_pipeline_stage_name((us_pipeline_stage)i), names[i]);
  assert_string_equal(us_pipeline_stage_name(US_STAGE_COUNT), "unknown");
  assert_null(us_pipeline_hint(US_STAGE_TRAIN, US_ERR_IO));
  assert_null(us_pipeline_hint(US_STAGE_CONFIG, US_OK));
  assert_non_null(strstr(us_pipeline_hint(US_STAGE_LABEL, US_ERR_AUTH), "teacher.base_url"));
  assert_non_null(strstr(us_pipeline_hint(US_STAGE_LABEL, US_ERR_NOT_FOUND), "/v1"));
  assert_non_null(strstr(us_pipeline_hint(US_STAGE_PROMPTS, US_ERR_CONFIG), "data.inputs"));
  assert_null(us_pipeline_hint(US_STAGE_PROMPTS, US_ERR_IO));
}

/* ---- run against the mock teacher ------------------------------------------------------------ */

static pid_t mock_pid = -1;
static char mock_url[64];

/* Starts tests/us_mock_teacher on an ephemeral loopback port; false if it is not built. */
static bool start_mock(void) {
  const char *bin_dir = getenv("US_BINARY_DIR");
  char mock[PATH_MAX], port_file[PATH_MAX];
  snprintf(mock, sizeof mock, "%s/tests/us_mock_teacher", bin_dir ? bin_dir : "..");
  if (access(mock, X_OK) != 0) return false;
  snprintf(port_file, sizeof port_file, "%s/mock.port", tmp_dir);
  mock_pid = fork();
  assert_true(mock_pid >= 0);
  if (mock_pid == 0) {
    if (!freopen("/dev/null", "w", stderr)) _exit(126);
    execl(mock, mock, "--port", "0", "--port-file", port_file, "--die-with-parent", "--quiet",
          "--labels", "billing,tech,account", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) { /* up to 10 s */
    FILE *f = fopen(port_file, "r");
    int port = 0;
    if (f) {
      if (fscanf(f, "%d", &port) != 1) port = 0;
      fclose(f);
    }
    if (port > 0) {
      snprintf(mock_url, sizeof mock_url, "http://127.0.0.1:%d/v1", port);
      return true;
    }
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  fail_msg("the mock teacher wrote no port file in 10 s");
  return false;
}

static void stop_mock(void) {
  if (mock_pid <= 0) return;
  kill(mock_pid, SIGTERM);
  waitpid(mock_pid, NULL, 0);
  mock_pid = -1;
}

typedef struct seen {
  int begun[US_STAGE_COUNT], ended[US_STAGE_COUNT];
  us_status status[US_STAGE_COUNT];
  int order[16], n; /* stages in the order they began */
  int label_progress, train_progress;
  us_cache *cache; /* the handle's workspace, the same for every stage */
  us_pipeline *p;
  bool same_cache;
} seen;

static void on_begin(void *user, us_pipeline_stage stage) {
  seen *s = user;
  s->begun[stage]++;
  if (s->n < 16) s->order[s->n++] = stage;
  if (us_pipeline_cache(s->p) != s->cache) s->same_cache = false;
}

static void on_end(void *user, us_pipeline_stage stage, us_status st, const us_err *err,
                   const us_pipeline_run_summary *sum) {
  seen *s = user;
  (void)err;
  s->ended[stage]++;
  s->status[stage] = st;
  assert_int_equal(sum->stage, stage);
}

static void on_label(void *user, const us_label_stats *st) {
  (void)st;
  ((seen *)user)->label_progress++;
}

static void on_train(void *user, const char *line) {
  assert_non_null(line);
  ((seen *)user)->train_progress++;
}

static void options_for(seen *s, us_pipeline *p, us_pipeline_options *o) {
  memset(s, 0, sizeof *s);
  s->p = p;
  s->cache = us_pipeline_cache(p);
  s->same_cache = true;
  us_pipeline_options_init(o);
  o->user = s;
  o->stage_begin = on_begin;
  o->stage_end = on_end;
  o->label_progress = on_label;
  o->train_progress = on_train;
}

static void run_should_take_every_stage_over_one_workspace(void **state) {
  (void)state;
  if (!start_mock()) skip();
  write_prompts(80);
  char path[PATH_MAX], file[PATH_MAX + 32];
  write_config("run", mock_url, path, sizeof path);
  us_pipeline *p = NULL;
  us_err err = {0};
  assert_int_equal(us_pipeline_open(path, NULL, 0, &p, &err), US_OK);

  seen s;
  us_pipeline_options o;
  options_for(&s, p, &o);
  us_pipeline_run_summary sum;
  us_status st = us_pipeline_run(p, &o, &sum, &err);
  if (st) fail_msg("run: %s", err.msg);
  assert_int_equal(sum.stage, US_STAGE_REPORT);
  assert_false(sum.stage_failed);
  for (int i = US_STAGE_PROMPTS; i <= US_STAGE_REPORT; i++) {
    assert_int_equal(s.begun[i], 1);
    assert_int_equal(s.ended[i], 1);
    assert_int_equal(s.status[i], US_OK);
    assert_int_equal(s.order[i], i);
  }
  assert_int_equal(s.n, 5);
  assert_true(s.same_cache);
  assert_true(s.label_progress > 0);
  assert_true(s.train_progress > 0);
  assert_int_equal(sum.prompts.read, 80);
  assert_int_equal(sum.prompts.added, 80);
  assert_int_equal(sum.label.total, 80);
  assert_int_equal(sum.label.done, 80);
  assert_int_equal(sum.label.cached, 0);
  assert_false(sum.train.up_to_date);
  assert_true(sum.train.n_train > 0);
  assert_int_equal(sum.eval.predict.n_test, sum.prompts.test);
  assert_true(sum.eval.has_metrics);
  assert_false(sum.eval.has_generation);
  assert_null(sum.eval.metrics.per_class);
  assert_non_null(sum.report.headline);
  assert_non_null(strstr(sum.report.headline, "agreement"));
  snprintf(file, sizeof file, "%s/run", tmp_dir);
  assert_string_equal(sum.report.dir, file);
  static const char *const files[] = {"student.bin", "report.md", "report.json", "report.html"};
  for (size_t i = 0; i < 4; i++) {
    snprintf(file, sizeof file, "%s/run/%s", tmp_dir, files[i]);
    assert_true(file_exists(file));
  }
  us_pipeline_run_summary_free(&sum);

  /* again on the same handle: everything cached, nothing retrained */
  options_for(&s, p, &o);
  assert_int_equal(us_pipeline_run(p, &o, &sum, &err), US_OK);
  assert_int_equal(sum.prompts.added, 0);
  assert_int_equal(sum.prompts.existing, 80);
  assert_int_equal(sum.label.cached, 80);
  assert_int_equal(sum.label.requests, 0);
  assert_true(sum.train.up_to_date);
  us_pipeline_run_summary_free(&sum);

  /* the stages one by one, as the commands call them */
  us_prompts_stats ps;
  assert_int_equal(us_pipeline_prompts(p, NULL, &ps, &err), US_OK);
  assert_int_equal(ps.existing, 80);
  us_label_stats ls;
  us_pipeline_options dry;
  us_pipeline_options_init(&dry);
  dry.dry_run = true;
  assert_int_equal(us_pipeline_label(p, &dry, &ls, &err), US_OK);
  assert_int_equal(ls.cached, 80);
  us_train_summary ts;
  us_pipeline_options force;
  us_pipeline_options_init(&force);
  force.force = true;
  assert_int_equal(us_pipeline_train(p, &force, &ts, &err), US_OK);
  assert_false(ts.up_to_date);
  us_pipeline_eval_summary es;
  assert_int_equal(us_pipeline_eval(p, NULL, &es, &err), US_OK);
  assert_true(es.has_metrics);
  us_pipeline_report_summary rs;
  assert_int_equal(us_pipeline_report(p, NULL, &rs, &err), US_OK);
  assert_non_null(rs.headline);
  us_pipeline_report_summary_free(&rs);
  us_pipeline_report_summary_free(&rs); /* twice is harmless */
  us_pipeline_close(p);
  stop_mock();
}

static void run_should_stop_between_stages(void **state) {
  (void)state;
  write_prompts(20);
  char path[PATH_MAX];
  write_config("stop", "http://127.0.0.1:9/v1", path, sizeof path); /* nobody answers there */
  us_pipeline *p = NULL;
  us_err err = {0};
  assert_int_equal(us_pipeline_open(path, NULL, 0, &p, &err), US_OK);
  seen s;
  us_pipeline_options o;
  options_for(&s, p, &o);
  volatile sig_atomic_t stop = 1;
  o.stop = &stop;
  us_pipeline_run_summary sum;
  assert_int_equal(us_pipeline_run(p, &o, &sum, &err), US_ERR_INTERRUPTED);
  assert_int_equal(sum.stage, US_STAGE_PROMPTS);
  assert_false(sum.stage_failed);
  assert_int_equal(sum.prompts.added, 20);
  assert_int_equal(s.ended[US_STAGE_PROMPTS], 1);
  assert_int_equal(s.begun[US_STAGE_LABEL], 0);
  us_pipeline_run_summary_free(&sum);
  us_pipeline_close(p);
}

static void run_should_stop_at_a_failing_stage(void **state) {
  (void)state;
  write_prompts(20);
  char path[PATH_MAX];
  write_config("fail", "http://127.0.0.1:9/v1", path, sizeof path);
  us_pipeline *p = NULL;
  us_err err = {0};
  assert_int_equal(us_pipeline_open(path, NULL, 0, &p, &err), US_OK);
  /* train before anything is labelled: the train stage names what is missing */
  us_train_summary ts;
  us_status st = us_pipeline_train(p, NULL, &ts, &err);
  assert_int_not_equal(st, US_OK);
  assert_true(err.msg[0] != '\0');
  /* a report before eval fails and says which stage to run */
  us_pipeline_report_summary rs;
  st = us_pipeline_report(p, NULL, &rs, &err);
  assert_int_not_equal(st, US_OK);
  assert_null(rs.headline);
  assert_non_null(strstr(err.msg, "understudy eval"));
  us_pipeline_close(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(open_should_name_a_missing_config),
      cmocka_unit_test(open_should_name_a_bad_key),
      cmocka_unit_test(open_should_create_the_workspace_once),
      cmocka_unit_test(open_should_say_which_step_failed),
      cmocka_unit_test(stage_names_and_hints),
      cmocka_unit_test(run_should_take_every_stage_over_one_workspace),
      cmocka_unit_test(run_should_stop_between_stages),
      cmocka_unit_test(run_should_stop_at_a_failing_stage),
  };
  int rc = cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
  stop_mock();
  return rc;
}
