/* Internals shared by the teacher client's two rooms. The policy (teacher.c: jobs, retries and
 * their timing, budget, progress, stopping) decides what to send and when; the transport
 * (teacher_transport.c: curl multi, sockets, timers, easy handles, headers and the API key)
 * moves bytes. The rate-limit token buckets and the response-header reading (teacher_limits.c)
 * serve the policy. */
#ifndef US_DISTILL_TEACHER_INT_H
#define US_DISTILL_TEACHER_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "distill/teacher.h"

/* A token bucket refilled continuously at rate_per_s up to capacity (one second's worth, at
 * least 1, so bursts never pass the per-minute rate by more than a second's share). A request
 * that needs more than capacity may start once the bucket is full and drives it negative, so
 * the long-run rate still holds. rate_per_s 0 disables the bucket. */
typedef struct us__bucket {
  double rate_per_s, capacity, level, updated;
} us__bucket;

void us__bucket_init(us__bucket *b, double per_minute, double now);
/* Seconds to wait before need can be taken (0: now). */
double us__bucket_wait(us__bucket *b, double need, double now);
void us__bucket_take(us__bucket *b, double amount);

/* What a response's headers said about retrying and the server's own rate limits; numbers are
 * -1 when the header was absent. */
typedef struct us__resp_headers {
  char retry_after[64];
  char retry_after_ms[32];
  double remaining_requests, remaining_tokens, limit_requests, limit_tokens;
  double reset_requests_s, reset_tokens_s;
} us__resp_headers;

void us__resp_headers_reset(us__resp_headers *h);
/* Reads one raw header line ("Name: value\r\n", n bytes) into h when it is one we use. */
void us__resp_headers_line(us__resp_headers *h, const char *line, size_t n);
/* A reset duration as OpenAI writes it ("1s", "6m0s", "20ms", "1h2m3.5s", or plain seconds);
 * -1 if unparseable. */
double us__duration_parse(const char *s);

/* ---- the transport (teacher_transport.c) ------------------------------------------------------
 */

/* One curl multi handle driven through epoll (curl's socket and timer callbacks), a fixed set of
 * reusable easy handles (slots), the request headers and the API key. The key lives here and
 * nowhere else: bodies and error text are scrubbed of it before the policy sees them, and
 * us__transport_scrub lets the policy scrub anything else it stores or shows. */
typedef struct us__transport us__transport;

/* A finished transfer as the policy sees it; every pointer is valid while the callback runs. */
typedef struct us__transfer_result {
  void *job;         /* what us__transport_start was given */
  bool answered;     /* an HTTP response came back (any status) */
  bool unreachable;  /* not answered: refused, or no such host or proxy */
  const char *error; /* not answered: curl's message and detail, scrubbed */
  long http_status;  /* answered: the status code */
  char *body;        /* answered: the body, NUL-terminated, scrubbed */
  size_t body_len;
  const us__resp_headers *headers; /* what arrived of the headers (Retry-After, limits) */
  double started;                  /* us_now() when the transfer started */
} us__transfer_result;

typedef void (*us__transfer_done_fn)(void *user, const us__transfer_result *r, double now);
typedef void (*us__transfer_dropped_fn)(void *user, void *job);

/* Parses p->base_url (an http or https URL; any user:password@ is kept out of messages),
 * reads the key from $p->api_key_env (required unless the server is on loopback), builds the
 * headers (Content-Type, Authorization unless p->headers sets its own, p->headers) and slots
 * easy handles with p->timeout_s. Errors name the config key or variable, never the key. */
us_status us__transport_open(const us_teacher_params *p, int slots, us__transport **out,
                             us_err *err);
/* Ends every transfer and wipes the key and the headers from memory. NULL is a no-op. */
void us__transport_close(us__transport *tr);

/* The URL without credentials: the only form that may appear in a message. */
const char *us__transport_safe_url(const us__transport *tr);
/* Whether a key is sent (it was set in the environment). */
bool us__transport_has_key(const us__transport *tr);
/* Overwrites every occurrence of the key in s[0..n) with '*'. tr NULL is a no-op. */
void us__transport_scrub(const us__transport *tr, char *s, size_t n);

/* Adds fd (e.g. an eventfd) to the sockets us__transport_wait waits on, so another thread can
 * wake it; the caller reads fd after the wait returns. */
us_status us__transport_watch_fd(us__transport *tr, int fd, us_err *err);

/* Transfers in flight, and whether every slot is busy. */
int us__transport_in_flight(const us__transport *tr);
bool us__transport_full(const us__transport *tr);
/* Starts POSTing body[0..len) (which must stay valid until the transfer ends) on a free slot;
 * job comes back in its result. US_ERR_HTTP when curl refuses it. */
us_status us__transport_start(us__transport *tr, void *job, const char *body, size_t len,
                              double now, us_err *err);
/* Waits at most wake_s (and at most 100 ms) for socket events or curl's timer, and lets curl
 * move just the transfers that are ready. */
void us__transport_wait(us__transport *tr, double wake_s);
/* Calls done for every finished transfer, its slot already free. */
void us__transport_collect(us__transport *tr, us__transfer_done_fn done, void *user);
/* Ends every transfer in flight unanswered, calling dropped with each one's job. */
void us__transport_abort(us__transport *tr, us__transfer_dropped_fn dropped, void *user);

#endif
