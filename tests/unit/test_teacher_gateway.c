/* The teacher gateway (distill/teacher_gateway.h) on its own, against loopback only: a request
 * submitted while the gateway's thread sleeps is started (here: refused by the budget) on the
 * submitting thread, inside us_teacher_gateway_submit, rather than after waking that thread; and
 * requests submitted from several threads at once, some started by their submitter and some by
 * the gateway's thread, each get their callback exactly once. */
/* cmocka.h needs these four first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "distill/teacher.h"
#include "distill/teacher_gateway.h"

#define BODY "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

static void params_for(us_teacher_params *p, const char *base_url) {
  us_teacher_params_defaults(p);
  p->base_url = (char *)base_url;
  p->api_key_env = "US_TEST_GATEWAY_KEY_UNSET";
  p->model = "m";
  p->timeout_s = 5;
  p->max_retries = 0;
  p->price_input_per_mtok = 1000; /* so a request has a worst case above the budget below */
  p->price_output_per_mtok = 1000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {0, ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* One submission: where and when its callback ran. */
typedef struct sub {
  pthread_t submitter;
  atomic_bool inside; /* the submitter is inside us_teacher_gateway_submit */
  atomic_int calls;
  bool on_submitter; /* the callback ran on the submitting thread, inside submit */
  us_status status;
} sub;

static void on_reply(void *user, us_teacher_reply *r) {
  sub *s = user;
  s->on_submitter = atomic_load(&s->inside) && pthread_equal(pthread_self(), s->submitter);
  s->status = r->status;
  atomic_fetch_add(&s->calls, 1);
}

static void submit(us_teacher_gateway *g, sub *s) {
  s->submitter = pthread_self();
  atomic_store(&s->inside, true);
  assert_int_equal(us_teacher_gateway_submit(g, BODY, strlen(BODY), on_reply, s), US_OK);
  atomic_store(&s->inside, false);
}

static void wait_for_calls(sub *subs, int n) {
  for (int waited = 0; waited < 10000; waited += 5) {
    int done = 0;
    for (int i = 0; i < n; i++) done += atomic_load(&subs[i].calls) > 0;
    if (done == n) return;
    sleep_ms(5);
  }
}

static void a_sleeping_gateway_should_let_the_submitter_start_its_request(void **state) {
  (void)state;
  us_teacher_params p;
  params_for(&p, "http://127.0.0.1:1/v1");
  p.budget_usd = 1e-9; /* every request is refused before it is sent: no network at all */
  us_teacher_gateway *g = NULL;
  us_err err = {0};
  assert_int_equal(us_teacher_gateway_open(&p, 0, &g, &err), US_OK);
  enum { N = 20 };
  sub subs[N];
  memset(subs, 0, sizeof subs);
  int on_submitter = 0;
  for (int i = 0; i < N; i++) {
    sleep_ms(2); /* the gateway's thread is asleep in its wait by now */
    submit(g, &subs[i]);
  }
  wait_for_calls(subs, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&subs[i].calls), 1);
    assert_int_equal(subs[i].status, US_ERR_BUDGET);
    on_submitter += subs[i].on_submitter;
  }
  /* the gateway's thread holds the transport only for microseconds in each of its 100 ms
   * waits: all but a rare few of the 20 are settled by their submitter (none at all when every
   * request waits for that thread) */
  assert_true(on_submitter >= N / 2);
  us_teacher_gateway_close(g);
}

typedef struct burst {
  us_teacher_gateway *g;
  sub *subs;
  int n;
} burst;

static void *burst_main(void *arg) {
  burst *b = arg;
  for (int i = 0; i < b->n; i++) submit(b->g, &b->subs[i]);
  return NULL;
}

static void submissions_from_many_threads_should_each_be_answered_once(void **state) {
  (void)state;
  us_teacher_params p;
  params_for(&p, "http://127.0.0.1:1/v1"); /* closed: every transfer fails at once */
  p.budget_usd = 1000;
  p.concurrency = 3;
  us_teacher_gateway *g = NULL;
  us_err err = {0};
  assert_int_equal(us_teacher_gateway_open(&p, 0, &g, &err), US_OK);
  enum { THREADS = 4, EACH = 50 };
  static sub subs[THREADS * EACH];
  memset(subs, 0, sizeof subs);
  pthread_t t[THREADS];
  burst b[THREADS];
  for (int i = 0; i < THREADS; i++) {
    b[i] = (burst){g, subs + i * EACH, EACH};
    assert_int_equal(pthread_create(&t[i], NULL, burst_main, &b[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  wait_for_calls(subs, THREADS * EACH);
  for (int i = 0; i < THREADS * EACH; i++) {
    assert_int_equal(atomic_load(&subs[i].calls), 1);
    assert_int_equal(subs[i].status, US_ERR_HTTP); /* unreachable, no retries */
  }
  us_teacher_gateway_spend sp;
  us_teacher_gateway_budget(g, &sp);
  assert_true(sp.paid_usd == 0);
  assert_true(sp.in_flight_worst_usd == 0);
  us_teacher_gateway_close(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_sleeping_gateway_should_let_the_submitter_start_its_request),
      cmocka_unit_test(submissions_from_many_threads_should_each_be_answered_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
