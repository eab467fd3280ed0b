/* The teacher gateway (distill/teacher_gateway.h): requests submitted from any thread, sent
 * through the labelling transport, retried and paid for under the same rules. The gateway's
 * thread waits for the answers; a submitting thread that finds the transport free starts its
 * request itself, so it goes out at once rather than after waking that thread (on a VM, a wake-up
 * of a sleeping core is 0.1 ms at the median and 1 ms at p99). A request submitted while the
 * thread is busy waits in a queue, and an eventfd wakes the thread out of the transport's wait. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "distill/teacher_gateway.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/rng.h"
#include "distill/teacher_int.h"

#define BACKOFF_BASE_S 0.5
#define BACKOFF_CAP_S 30.0
#define RETRY_AFTER_CAP_S 60.0

typedef struct gw_job {
  struct gw_job *next;
  char *body;
  size_t len;
  us_teacher_reply_fn done;
  void *user;
  double submitted, not_before;
  int attempts;
  double worst_usd;         /* upper bound on what one attempt can cost (as labelling counts) */
  int max_out;              /* the output tokens it may be billed for */
  int unanswered;           /* attempts that may have been billed without an answer */
  char unanswered_why[256]; /* the last one's reason */
} gw_job;

struct us_teacher_gateway {
  const us_teacher_params *params;
  us__transport *transport;
  pthread_t thread;
  bool thread_started;
  int wake_fd;
  pthread_mutex_t lock; /* incoming, closing, spend, unanswered */
  gw_job *incoming;     /* submitted, not yet seen by the thread (LIFO; reordered on intake) */
  bool closing;
  us__spending spend; /* the budget, by labelling's rule (teacher_int.h) */
  int64_t unanswered; /* attempts through this gateway that may have been billed unanswered */
  /* run: the transport and what follows; held by the gateway's thread except while it sleeps,
   * and by a submitting thread that starts its request itself (run_locked) */
  pthread_mutex_t run;
  gw_job *waiting; /* ready or backing off, in submission order */
  us__bucket requests, tokens;
  us_rng rng;
};

/* The worst case of a body: labelling's bound (us__request_worst_usd), with the output bound
 * raised to what the body itself asks for when a client's request allows more than
 * teacher.max_tokens ("max_completion_tokens" or "max_tokens"). */
static double body_worst_usd(const us_teacher_params *p, const char *body, size_t len,
                             int *max_out) {
  *max_out = p->max_tokens;
  cJSON *o = cJSON_ParseWithLength(body, len);
  static const char *const keys[] = {"max_completion_tokens", "max_tokens"};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
    if (cJSON_IsNumber(v) && v->valuedouble > *max_out)
      *max_out = v->valuedouble < 1e9 ? (int)v->valuedouble : 1000000000;
  }
  cJSON_Delete(o);
  us_teacher_params q = *p;
  q.max_tokens = *max_out;
  return us__request_worst_usd(&q, len, 1.0); /* always live, never batched */
}

static void wake(us_teacher_gateway *g) {
  uint64_t one = 1;
  ssize_t n = write(g->wake_fd, &one, sizeof one);
  (void)n; /* a full counter already wakes the thread */
}

_Static_assert(sizeof(((gw_job *)0)->unanswered_why) ==
                   sizeof(((us_teacher_reply *)0)->unanswered_why),
               "reply_and_free copies one into the other");

static void reply_and_free(us_teacher_gateway *g, gw_job *j, us_teacher_reply *r) {
  (void)g;
  r->attempts = j->attempts;
  r->unanswered = j->unanswered;
  r->unanswered_usd = j->unanswered * j->worst_usd;
  memcpy(r->unanswered_why, j->unanswered_why, sizeof r->unanswered_why); /* same size */
  r->latency_ms = (us_now() - j->submitted) * 1000;
  j->done(j->user, r);
  free(r->body);
  free(j->body);
  free(j);
}

static void fail_job(us_teacher_gateway *g, gw_job *j, us_status st, long http, const char *prefix,
                     const char *why) {
  us_teacher_reply r;
  memset(&r, 0, sizeof r);
  r.status = st;
  r.http_status = http;
  snprintf(r.message, sizeof r.message, "%s%.400s", prefix, why);
  reply_and_free(g, j, &r);
}

static void retry_or_fail(us_teacher_gateway *g, gw_job *j, const us__resp_headers *h, long http,
                          const char *why, double now) {
  if (j->attempts > g->params->max_retries) {
    fail_job(g, j, US_ERR_HTTP, http, "the teacher failed after every retry: ", why);
    return;
  }
  double wait = h ? us_retry_after_parse(h->retry_after, h->retry_after_ms, us_epoch()) : -1;
  if (wait < 0)
    wait =
        us_backoff_delay(j->attempts - 1, BACKOFF_BASE_S, BACKOFF_CAP_S, us_rng_uniform(&g->rng));
  if (wait > RETRY_AFTER_CAP_S) wait = RETRY_AFTER_CAP_S;
  j->not_before = now + wait;
  j->next = g->waiting;
  g->waiting = j;
}

/* u: the body's usage (us_response_check) */
static void answered_ok(us_teacher_gateway *g, gw_job *j, const us__transfer_result *r, us_usage u,
                        double now) {
  us_teacher_reply rep;
  memset(&rep, 0, sizeof rep);
  rep.wire_ms = (now - r->started) * 1000;
  /* priced as labelling prices a call (cached input and reasoning by kind) */
  /* no usage in the body: charge the upper bounds, so the budget can only be overstated */
  if (u.prompt_tokens < 0) u.prompt_tokens = (int)us__prompt_token_bound(j->len);
  if (u.completion_tokens < 0) u.completion_tokens = j->max_out;
  if (u.cached_tokens < 0) u.cached_tokens = 0;
  if (u.reasoning_tokens < 0) u.reasoning_tokens = 0;
  us_call_cost cost;
  us_teacher_call_cost(g->params, &u, &cost);
  rep.prompt_tokens = u.prompt_tokens;
  rep.completion_tokens = u.completion_tokens;
  rep.cost_usd = cost.total_usd;
  pthread_mutex_lock(&g->lock);
  g->spend.run += rep.cost_usd;
  pthread_mutex_unlock(&g->lock);
  rep.status = US_OK;
  rep.http_status = 200;
  rep.body = malloc(r->body_len + 1);
  if (rep.body) {
    memcpy(rep.body, r->body, r->body_len + 1);
    rep.body_len = r->body_len;
  } else {
    rep.status = US_ERR_NOMEM;
    snprintf(rep.message, sizeof rep.message, "out of memory copying the teacher's answer");
  }
  reply_and_free(g, j, &rep);
}

/* An attempt that may have been billed without an answer: its worst case counts against the
 * budget from now on (the caller records it in the workspace from the reply, so later runs count
 * it too), as labelling counts it. */
static void may_be_billed(us_teacher_gateway *g, gw_job *j, const char *why) {
  pthread_mutex_lock(&g->lock);
  g->spend.unanswered += j->worst_usd;
  g->unanswered++;
  pthread_mutex_unlock(&g->lock);
  j->unanswered++;
  snprintf(j->unanswered_why, sizeof j->unanswered_why, "%.250s", why);
}

static void on_done(void *user, const us__transfer_result *r, double now) {
  us_teacher_gateway *g = user;
  gw_job *j = r->job;
  pthread_mutex_lock(&g->lock);
  g->spend.in_flight_worst -= j->worst_usd;
  if (us__transport_in_flight(g->transport) == 0) g->spend.in_flight_worst = 0; /* no drift */
  pthread_mutex_unlock(&g->lock);
  if (!r->answered) {
    /* the server had the whole request: it may have answered, and billed, after we gave up */
    if (!r->unreachable && r->body_sent) may_be_billed(g, j, r->error);
    retry_or_fail(g, j, r->headers, 0, r->error, now);
    return;
  }
  long code = r->http_status;
  if (code == 200) {
    us_usage u;
    us_err e = {0};
    if (us_response_check(r->body, &u, &e)) {
      may_be_billed(g, j, e.msg); /* a 200 is billed even if its body was unread */
      retry_or_fail(g, j, r->headers, 200, e.msg, now);
      return;
    }
    answered_ok(g, j, r, u, now);
    return;
  }
  if (code == 408 || code == 409 || code == 429 || code >= 500) {
    char why[64];
    snprintf(why, sizeof why, "HTTP %ld", code);
    retry_or_fail(g, j, r->headers, code, why, now);
    return;
  }
  /* any other answer goes back to the client as the teacher gave it */
  us_teacher_reply rep;
  memset(&rep, 0, sizeof rep);
  rep.status = US_ERR_TEACHER;
  rep.http_status = code;
  snprintf(rep.message, sizeof rep.message, "the teacher answered HTTP %ld", code);
  rep.body = malloc(r->body_len + 1);
  if (rep.body) {
    memcpy(rep.body, r->body, r->body_len + 1);
    rep.body_len = r->body_len;
  }
  reply_and_free(g, j, &rep);
}

/* Moves submitted jobs to the end of the waiting list, in submission order. */
static bool intake(us_teacher_gateway *g) {
  pthread_mutex_lock(&g->lock);
  gw_job *in = g->incoming;
  g->incoming = NULL;
  bool closing = g->closing;
  pthread_mutex_unlock(&g->lock);
  gw_job *rev = NULL;
  while (in) {
    gw_job *n = in->next;
    in->next = rev;
    rev = in;
    in = n;
  }
  gw_job **tail = &g->waiting;
  while (*tail) tail = &(*tail)->next;
  *tail = rev;
  return closing;
}

/* Starts every waiting job whose time has come while a slot, the rate limits and the budget
 * allow; returns the seconds until the next one could start. */
static double start_ready(us_teacher_gateway *g, double now) {
  double wake_in = 0.1;
  gw_job **pp = &g->waiting;
  while (*pp) {
    gw_job *j = *pp;
    if (j->not_before > now) {
      if (j->not_before - now < wake_in) wake_in = j->not_before - now;
      pp = &j->next;
      continue;
    }
    if (us__transport_full(g->transport)) break;
    /* the budget as labelling keeps it: spent, possibly billed, the worst case in flight and
     * this request's must all fit */
    pthread_mutex_lock(&g->lock);
    bool admitted = us__spending_admits(&g->spend, j->worst_usd, g->params->budget_usd);
    us__spending sp = g->spend;
    pthread_mutex_unlock(&g->lock);
    if (!admitted) {
      /* in-flight requests usually cost less than their worst case: wait for them */
      if (us__transport_in_flight(g->transport) > 0) break;
      *pp = j->next;
      char why[320];
      snprintf(why, sizeof why,
               "$%.4f of $%.4f spent (including up to $%.4f for requests that may have been "
               "billed without an answer), and this request may cost up to $%.4f; raise "
               "teacher.budget_usd",
               us__spending_total(&sp), g->params->budget_usd, sp.unanswered, j->worst_usd);
      fail_job(g, j, US_ERR_BUDGET, 0, "the teacher budget is reached: ", why);
      continue;
    }
    double need = (double)j->len / 4 + g->params->max_tokens;
    double w = us__bucket_wait(&g->requests, 1, now);
    double wt = us__bucket_wait(&g->tokens, need, now);
    if (wt > w) w = wt;
    if (w > 0) {
      if (w < wake_in) wake_in = w;
      break;
    }
    us_err err = {0};
    pthread_mutex_lock(&g->lock);
    g->spend.in_flight_worst += j->worst_usd;
    pthread_mutex_unlock(&g->lock);
    if (us__transport_start(g->transport, j, j->body, j->len, now, &err)) {
      pthread_mutex_lock(&g->lock);
      g->spend.in_flight_worst -= j->worst_usd;
      pthread_mutex_unlock(&g->lock);
      *pp = j->next;
      fail_job(g, j, US_ERR_HTTP, 0, "", err.msg);
      continue;
    }
    us__bucket_take(&g->requests, 1);
    us__bucket_take(&g->tokens, need);
    j->attempts++;
    *pp = j->next;
  }
  return wake_in;
}

static void *gateway_main(void *arg) {
  us_teacher_gateway *g = arg;
  pthread_mutex_lock(&g->run);
  for (;;) {
    bool closing = intake(g);
    if (closing && !g->waiting && us__transport_in_flight(g->transport) == 0) break;
    double wake_in = start_ready(g, us_now());
    us__transport_wait(g->transport, wake_in); /* releases run while it sleeps */
    uint64_t count;
    while (read(g->wake_fd, &count, sizeof count) > 0) {
    }
    us__transport_collect(g->transport, on_done, g);
  }
  pthread_mutex_unlock(&g->run);
  return NULL;
}

/* On a submitting thread that holds run: the queue's requests start now, and the gateway's
 * thread is woken only if something is left for it to time (a rate limit, a backoff, curl's
 * timer within its longest sleep). */
static void run_locked(us_teacher_gateway *g) {
  intake(g);
  double now = us_now();
  start_ready(g, now);
  us__transport_kick(g->transport);
  us__transport_collect(g->transport, on_done, g);
  double timer = us__transport_timer(g->transport);
  bool later = g->waiting != NULL || (timer >= 0 && timer - us_now() < 0.1);
  pthread_mutex_unlock(&g->run);
  if (later) wake(g);
}

us_status us_teacher_gateway_open(const us_teacher_params *p, double spent_usd,
                                  us_teacher_gateway **out, us_err *err) {
  *out = NULL;
  us_teacher_gateway *g = calloc(1, sizeof *g);
  if (!g) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  g->params = p;
  g->spend.before = spent_usd;
  g->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  pthread_mutex_init(&g->lock, NULL);
  pthread_mutex_init(&g->run, NULL);
  us_rng_seed(&g->rng, (uint64_t)(us_epoch() * 1e6));
  double now = us_now();
  us__bucket_init(&g->requests, p->requests_per_minute, now);
  us__bucket_init(&g->tokens, p->tokens_per_minute, now);
  us_status st = US_OK;
  if (g->wake_fd < 0) st = us_err_set(err, US_ERR_IO, "eventfd: %s", strerror(errno));
  if (!st) st = us__transport_open(p, p->concurrency, &g->transport, err);
  if (!st) st = us__transport_watch_fd(g->transport, g->wake_fd, err);
  if (!st) us__transport_set_lock(g->transport, &g->run);
  if (!st && pthread_create(&g->thread, NULL, gateway_main, g) != 0)
    st = us_err_set(err, US_ERR_INTERNAL, "cannot start the teacher thread");
  if (st) {
    us_teacher_gateway_close(g);
    return st;
  }
  g->thread_started = true;
  pthread_setname_np(g->thread, "us-teacher"); /* named in top, perf and gdb */
  *out = g;
  return US_OK;
}

void us_teacher_gateway_close(us_teacher_gateway *g) {
  if (!g) return;
  if (g->thread_started) {
    pthread_mutex_lock(&g->lock);
    g->closing = true;
    pthread_mutex_unlock(&g->lock);
    wake(g);
    pthread_join(g->thread, NULL);
  }
  us__transport_close(g->transport);
  if (g->wake_fd >= 0) close(g->wake_fd);
  pthread_mutex_destroy(&g->lock);
  pthread_mutex_destroy(&g->run);
  free(g);
}

us_status us_teacher_gateway_submit(us_teacher_gateway *g, const char *body, size_t len,
                                    us_teacher_reply_fn done, void *user) {
  gw_job *j = calloc(1, sizeof *j);
  char *copy = malloc(len + 1);
  if (!j || !copy) {
    free(j);
    free(copy);
    return US_ERR_NOMEM;
  }
  memcpy(copy, body, len);
  copy[len] = '\0';
  j->body = copy;
  j->len = len;
  j->done = done;
  j->user = user;
  j->submitted = us_now();
  j->worst_usd = body_worst_usd(g->params, copy, len, &j->max_out);
  pthread_mutex_lock(&g->lock);
  if (g->closing) {
    pthread_mutex_unlock(&g->lock);
    free(copy);
    free(j);
    return US_ERR_STATE;
  }
  j->next = g->incoming;
  g->incoming = j;
  pthread_mutex_unlock(&g->lock);
  if (pthread_mutex_trylock(&g->run) == 0)
    run_locked(g); /* the thread sleeps: start it here */
  else
    wake(g); /* the thread is at work: it takes the queue when it next looks */
  return US_OK;
}

double us_teacher_gateway_spent(us_teacher_gateway *g) {
  pthread_mutex_lock(&g->lock);
  double s = us__spending_total(&g->spend);
  pthread_mutex_unlock(&g->lock);
  return s;
}

void us_teacher_gateway_budget(us_teacher_gateway *g, us_teacher_gateway_spend *out) {
  pthread_mutex_lock(&g->lock);
  out->paid_usd = g->spend.run;
  out->unanswered = g->unanswered;
  out->unanswered_usd = g->spend.unanswered;
  out->in_flight_worst_usd = g->spend.in_flight_worst;
  pthread_mutex_unlock(&g->lock);
}

bool us_teacher_gateway_budget_reached(us_teacher_gateway *g) {
  return us_teacher_gateway_spent(g) >= g->params->budget_usd;
}
