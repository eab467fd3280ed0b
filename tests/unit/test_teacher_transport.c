/* The teacher client's transport (distill/teacher_int.h) on its own: opening refuses what it
 * cannot use with messages that name the config key or variable and never the key or a
 * password; the key is scrubbed; a transfer to a closed loopback port comes back unanswered
 * and marked unreachable. No network beyond loopback. */
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
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "distill/teacher.h"
#include "distill/teacher_int.h"

#define KEY_VAR "US_TEST_TRANSPORT_KEY"
#define SECRET "sk-test-secret-4242"

static void params_for(us_teacher_params *p, const char *base_url) {
  us_teacher_params_defaults(p);
  p->base_url = (char *)base_url;
  p->api_key_env = KEY_VAR;
  p->model = "m";
  p->timeout_s = 5;
}

static void open_should_refuse_a_missing_key_for_a_remote_server(void **state) {
  (void)state;
  unsetenv(KEY_VAR);
  us_teacher_params p;
  params_for(&p, "https://user:hunter2@example.invalid/v1");
  us__transport *tr = NULL;
  us_err err = {0};
  assert_int_equal(us__transport_open(&p, 2, &tr, &err), US_ERR_AUTH);
  assert_null(tr);
  assert_non_null(strstr(err.msg, "$" KEY_VAR));
  assert_non_null(strstr(err.msg, "https://example.invalid/v1/chat/completions"));
  assert_null(strstr(err.msg, "hunter2"));
}

static void open_should_refuse_other_schemes_and_broken_keys(void **state) {
  (void)state;
  us_teacher_params p;
  us__transport *tr = NULL;
  us_err err = {0};
  params_for(&p, "ftp://127.0.0.1/v1");
  assert_int_equal(us__transport_open(&p, 1, &tr, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "teacher.base_url: expected an http or https URL"));

  setenv(KEY_VAR, SECRET "\n", 1);
  params_for(&p, "http://127.0.0.1:1/v1");
  assert_int_equal(us__transport_open(&p, 1, &tr, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "$" KEY_VAR " holds a line break"));
  assert_null(strstr(err.msg, SECRET));
  unsetenv(KEY_VAR);
}

static void open_should_refuse_a_header_with_a_line_break(void **state) {
  (void)state;
  setenv(KEY_VAR, SECRET, 1);
  us_teacher_params p;
  params_for(&p, "http://127.0.0.1:1/v1");
  us_header h = {"X-Bad\nName", "v"};
  p.headers = &h;
  p.n_headers = 1;
  us__transport *tr = NULL;
  us_err err = {0};
  assert_int_equal(us__transport_open(&p, 1, &tr, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "teacher.headers."));
  assert_null(tr);
  unsetenv(KEY_VAR);
}

static void scrub_should_hide_every_copy_of_the_key(void **state) {
  (void)state;
  setenv(KEY_VAR, SECRET, 1);
  us_teacher_params p;
  params_for(&p, "http://127.0.0.1:1/v1");
  us__transport *tr = NULL;
  us_err err = {0};
  assert_int_equal(us__transport_open(&p, 2, &tr, &err), US_OK);
  assert_true(us__transport_has_key(tr));
  char text[] = "a " SECRET " b " SECRET;
  us__transport_scrub(tr, text, strlen(text));
  assert_null(strstr(text, SECRET));
  assert_string_equal(text, "a ******************* b *******************");
  us__transport_scrub(NULL, text, strlen(text)); /* before a transport exists: nothing to do */
  us__transport_close(tr);
  us__transport_close(NULL);
  unsetenv(KEY_VAR);
}

typedef struct seen {
  int calls;
  us__transfer_result last;
  char error[512];
} seen;

static void on_done(void *user, const us__transfer_result *r, double now) {
  (void)now;
  seen *s = user;
  s->calls++;
  s->last = *r;
  snprintf(s->error, sizeof s->error, "%s", r->error ? r->error : "");
}

static void closed_port_should_come_back_unreachable(void **state) {
  (void)state;
  unsetenv(KEY_VAR); /* loopback: no key needed */
  us_teacher_params p;
  params_for(&p, "http://127.0.0.1:1/v1");
  us__transport *tr = NULL;
  us_err err = {0};
  assert_int_equal(us__transport_open(&p, 1, &tr, &err), US_OK);
  assert_false(us__transport_has_key(tr));
  assert_string_equal(us__transport_safe_url(tr), "http://127.0.0.1:1/v1/chat/completions");
  int job = 7;
  const char body[] = "{}";
  assert_int_equal(us__transport_start(tr, &job, body, 2, us_now(), &err), US_OK);
  assert_int_equal(us__transport_in_flight(tr), 1);
  assert_true(us__transport_full(tr));
  assert_int_equal(us__transport_start(tr, &job, body, 2, us_now(), &err), US_ERR_HTTP);
  seen s = {0};
  double until = us_now() + 5;
  while (s.calls == 0 && us_now() < until) {
    us__transport_wait(tr, 0.1);
    us__transport_collect(tr, on_done, &s);
  }
  assert_int_equal(s.calls, 1);
  assert_ptr_equal(s.last.job, &job);
  assert_false(s.last.answered);
  assert_true(s.last.unreachable);
  assert_true(s.error[0] != '\0');
  assert_int_equal(us__transport_in_flight(tr), 0);
  us__transport_close(tr);
}

static void dropped(void *user, void *job) {
  int *count = user;
  assert_non_null(job);
  (*count)++;
}

static void abort_should_hand_back_every_job_in_flight(void **state) {
  (void)state;
  unsetenv(KEY_VAR);
  us_teacher_params p;
  params_for(&p, "http://127.0.0.1:1/v1");
  us__transport *tr = NULL;
  us_err err = {0};
  assert_int_equal(us__transport_open(&p, 3, &tr, &err), US_OK);
  int jobs[3];
  for (int i = 0; i < 3; i++)
    assert_int_equal(us__transport_start(tr, &jobs[i], "{}", 2, us_now(), &err), US_OK);
  int count = 0;
  us__transport_abort(tr, dropped, &count);
  assert_int_equal(count, 3);
  assert_int_equal(us__transport_in_flight(tr), 0);
  assert_false(us__transport_full(tr));
  us__transport_close(tr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(open_should_refuse_a_missing_key_for_a_remote_server),
      cmocka_unit_test(open_should_refuse_other_schemes_and_broken_keys),
      cmocka_unit_test(open_should_refuse_a_header_with_a_line_break),
      cmocka_unit_test(scrub_should_hide_every_copy_of_the_key),
      cmocka_unit_test(closed_port_should_come_back_unreachable),
      cmocka_unit_test(abort_should_hand_back_every_job_in_flight),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
