/* The teacher client for one request at a time, from any thread: what `understudy serve` sends
 * to the teacher (requests it does not answer itself, and shadow audits). One thread drives the
 * same transport as labelling (teacher_transport.c) with the same policy: retries with backoff
 * and Retry-After, the per-minute rate limits, and the hard budget (teacher.budget_usd, counted
 * from what the workspace already spent). Nothing here touches the workspace: the caller stores
 * what it wants from the reply. */
#ifndef US_DISTILL_TEACHER_GATEWAY_H
#define US_DISTILL_TEACHER_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "distill/teacher.h"

typedef struct us_teacher_gateway us_teacher_gateway;

/* What came back for one request. */
typedef struct us_teacher_reply {
  us_status status; /* US_OK: the teacher answered 200; US_ERR_BUDGET: refused before sending;
                       US_ERR_TEACHER: it answered another status (body and http_status hold
                       its answer); US_ERR_HTTP: unreachable or timed out after every retry */
  long http_status; /* the teacher's last status, 0 if none */
  char *body;       /* the teacher's last body (scrubbed of the key), or NULL; owned by the
                       reply until the callback returns: take it by setting it to NULL */
  size_t body_len;
  int prompt_tokens, completion_tokens; /* billed (upper bounds when the body had no usage) */
  double cost_usd;                      /* what this request cost (0 unless status is US_OK) */
  double latency_ms;                    /* submit to reply, retries included */
  double wire_ms; /* the answered attempt alone, from its start on the transport to its end */
  int attempts;
  int unanswered;        /* attempts that may have been billed without an answer (timed out or
                            reset after the body was sent, or an unreadable 200) */
  double unanswered_usd; /* their worst-case cost, counted against the budget: the caller
                            records them (us_cache_unanswered_put) so later runs count them */
  char unanswered_why[256];
  char message[512]; /* not US_OK: why, for a log line or an error object (no key in it) */
} us_teacher_reply;

/* Called once per submitted request, on the gateway's thread or, when the request is settled
 * while it is submitted (started at once and refused by the budget, say), on the submitting
 * thread inside us_teacher_gateway_submit; must not block for long nor submit. */
typedef void (*us_teacher_reply_fn)(void *user, us_teacher_reply *reply);

/* Opens the transport for p (key from $p->api_key_env, as labelling does) and starts the
 * gateway's thread. spent_usd: what the workspace has already spent (counts against
 * p->budget_usd). The gateway keeps a pointer to p, which must outlive it. */
us_status us_teacher_gateway_open(const us_teacher_params *p, double spent_usd,
                                  us_teacher_gateway **out, us_err *err);
/* Finishes every request already submitted (each gets its callback), then stops the thread,
 * closes the transport and frees g. NULL is a no-op. */
void us_teacher_gateway_close(us_teacher_gateway *g);

/* Queues body[0..len) (copied) for the teacher, and starts it on the caller's thread when the
 * gateway's thread is not at work; done(user, reply) follows exactly once (see
 * us_teacher_reply_fn). Returns US_ERR_NOMEM or US_ERR_STATE (closing) without calling done. */
us_status us_teacher_gateway_submit(us_teacher_gateway *g, const char *body, size_t len,
                                    us_teacher_reply_fn done, void *user);

/* The budget is kept as labelling keeps it: a request starts only if spent_usd at open, what was
 * paid through the gateway, the worst case of every attempt that may have been billed without an
 * answer, the worst case of the requests in flight and its own worst case stay within
 * p->budget_usd; otherwise it waits for the requests in flight, or, with none, gets
 * US_ERR_BUDGET. */

/* What the gateway has counted, for /metrics. */
typedef struct us_teacher_gateway_spend {
  double paid_usd;            /* paid through this gateway (answers) */
  int64_t unanswered;         /* attempts that may have been billed without an answer */
  double unanswered_usd;      /* their worst case */
  double in_flight_worst_usd; /* the worst case of the requests in flight now */
} us_teacher_gateway_spend;
void us_teacher_gateway_budget(us_teacher_gateway *g, us_teacher_gateway_spend *out);

/* spent_usd at open, plus what was paid and what may have been billed through this gateway;
 * whether that reached the budget. */
double us_teacher_gateway_spent(us_teacher_gateway *g);
bool us_teacher_gateway_budget_reached(us_teacher_gateway *g);

#endif
