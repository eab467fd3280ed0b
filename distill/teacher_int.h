/* Internals shared by the teacher client's two rooms. The policy (teacher.c: jobs, retries and
 * their timing, budget, progress, stopping) decides what to send and when; the transport
 * (teacher_transport.c: curl multi, sockets, timers, easy handles, headers and the API key)
 * moves bytes. The rate-limit token buckets and the response-header reading (teacher_limits.c)
 * serve the policy. */
#ifndef US_DISTILL_TEACHER_INT_H
#define US_DISTILL_TEACHER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/buf.h"
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

/* ---- the budget (teacher.c; labelling and the serve gateway keep it by the same rule) ------ */

/* What may have been spent against teacher.budget_usd: the workspace's earlier spending, this
 * run's, the worst case of every request that may have been billed without an answer (timed
 * out, reset after its body was sent, dropped in flight; earlier runs' included), and the worst
 * case of the requests in flight. A request starts only when all of it plus its own worst case
 * stays within the budget, so the cap holds whatever the in-flight requests turn out to cost. */
typedef struct us__spending {
  double before, run, in_flight_worst;
  double unanswered;
  int64_t unanswered_before; /* how many requests earlier runs left unanswered */
} us__spending;

/* An upper bound on a request's prompt tokens from its body's length (see teacher.c). */
double us__prompt_token_bound(size_t body_len);
/* The worst-case cost of a request body_len bytes long: every prompt token bound and
 * p->max_tokens of output, at the live prices times price_factor (the batch discount, or 1). */
double us__request_worst_usd(const us_teacher_params *p, size_t body_len, double price_factor);
/* Spent or possibly billed, in-flight worst cases excluded. */
double us__spending_total(const us__spending *s);
/* Whether a request of worst case worst_usd may start now without passing budget_usd. */
bool us__spending_admits(const us__spending *s, double worst_usd, double budget_usd);

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
  bool body_sent;    /* the whole request body went out: the server may bill it */
  bool too_large;    /* not answered: the body passed the transport's size limit (16 MiB) */
  const char *error; /* not answered: curl's message and detail, scrubbed */
  long http_status;  /* answered: the status code */
  char *body;        /* answered: the body, NUL-terminated, scrubbed */
  size_t body_len;
  const us__resp_headers *headers; /* what arrived of the headers (Retry-After, limits) */
  double started;                  /* us_now() when the transfer started */
  bool batch;                      /* answered through the Batch API (priced at its discount) */
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
/* A transport used from several threads: each holds lock around every call, and
 * us__transport_wait releases it while it sleeps, so another thread can start a transfer
 * meanwhile (its sockets join the same wait). */
void us__transport_set_lock(us__transport *tr, pthread_mutex_t *lock);
/* Lets curl do what its timer asks for now (a transfer just started goes out on the caller's
 * thread instead of waiting for the next wait), if it is due. */
void us__transport_kick(us__transport *tr);
/* When curl next wants its timer handled (us_now() clock), < 0 for never. */
double us__transport_timer(const us__transport *tr);
/* Calls done for every finished transfer, its slot already free. */
void us__transport_collect(us__transport *tr, us__transfer_done_fn done, void *user);
/* Ends every transfer in flight unanswered, calling dropped with each one's job. */
void us__transport_abort(us__transport *tr, us__transfer_dropped_fn dropped, void *user);

/* One request outside the slots, waited for (the Batch API's files and batches): GET, or POST of
 * a JSON body, or (form_file set) POST of a multipart form with purpose=form_purpose and a file
 * part named "file" holding form_file[0..form_len). path is appended to teacher.base_url. */
typedef struct us__call {
  bool answered, unreachable;
  long http_status;
  us_buf body;     /* answered: the body, scrubbed (caller frees with us_buf_free) */
  char error[512]; /* not answered: curl's message, scrubbed */
} us__call;
us_status us__transport_call(us__transport *tr, const char *method, const char *path,
                             const char *json, const char *form_purpose, const char *form_file,
                             size_t form_len, us__call *out, us_err *err);
/* The same POST of a multipart form, its file part the size bytes of file (read from its start,
 * never held in memory). */
us_status us__transport_upload(us__transport *tr, const char *path, const char *purpose, FILE *file,
                               size_t size, us__call *out, us_err *err);
/* A GET whose body, when the status is 200, goes to sink as it arrives (out->body stays empty;
 * the sink scrubs what it keeps); any other status's body lands in out->body. The sink returns
 * false to stop the transfer (out->answered false then). */
typedef bool (*us__call_sink_fn)(void *user, const char *data, size_t n);
us_status us__transport_get_stream(us__transport *tr, const char *path, us__call_sink_fn sink,
                                   void *user, us__call *out, us_err *err);

/* ---- the Batch API (teacher_batch.c) ----------------------------------------------------------
 * With teacher.mode "batch" the transport hands every request it is asked to start to a batcher,
 * which streams it into the batch being filled (a draft: its JSONL line to a temporary file, its
 * row (key, prompt, attempt, request) to the workspace) and lets the job go: a request in a batch
 * lives in the workspace, not in memory. A draft is uploaded and created as a batch when it holds
 * teacher.batch_max_requests requests or US_TEACHER_BATCH_MAX_BYTES bytes, or at the next wait;
 * the batch's id is committed the moment the API returns it. Every open batch recorded in the
 * workspace (this run's, and those earlier runs left, whether or not this run asks for their
 * requests) is polled every teacher.batch_poll_s; once one ends, its output and error files are
 * streamed line by line and each request's outcome is handed back through us__transport_collect
 * as a finished transfer (batch set) of a job the policy makes again from the workspace's row. A
 * request whose key an open batch carries is never written again: it waits for that batch. With
 * teacher.batch_retry "live", a request a batch failed or left unanswered goes to the live slots
 * when it is started again. */
typedef struct us__batcher us__batcher;

/* How the batcher reaches the policy's jobs. */
typedef struct us__batch_hooks {
  void *user;
  /* job went into a batch (joined: an open batch carries its request already, nothing was
   * written); row gets its prompt id and attempt. The job is the policy's to free. */
  void (*taken)(void *user, void *job, bool joined, us_batch_request *row);
  /* A job again for a request a batch carried, to hand back through done. counted: the batch
   * is this run's, so the request's worst case is still in the policy's in-flight sum. NULL when
   * out of memory. */
  void *(*revive)(void *user, const us_batch_request *row, bool counted);
} us__batch_hooks;

us_status us__batcher_open(us__transport *tr, const us_teacher_params *p, us_cache *cache,
                           us_label_stats *stats, const us__batch_hooks *hooks, us__batcher **out,
                           us_err *err);
void us__batcher_close(us__batcher *b);
/* Takes a request into a batch (*taken true) or leaves it to the live slots (false). Fails when
 * the workspace or the temporary file cannot be written, or a batch cannot be created. */
us_status us__batcher_take(us__batcher *b, void *job, const char *body, size_t len, double now,
                           bool *taken, us_err *err);
/* Requests in the draft and in open batches, not handed back yet. */
int us__batcher_in_flight(const us__batcher *b);
/* Creates a batch of the draft; polls open batches when due. */
void us__batcher_wait(us__batcher *b);
/* Streams the files of a batch that ended and hands back every request it carried; one batch a
 * call, so the policy commits each batch's answers on their own. */
void us__batcher_collect(us__batcher *b, us__transfer_done_fn done, void *user);
/* Forgets the draft (its jobs are gone; the prompts are read again by the next run) and stops
 * waiting for the open batches (they stay open in the workspace for the next run). */
void us__batcher_abort(us__batcher *b, us__transfer_dropped_fn dropped, void *user);
/* Attaches a batcher to tr: from now on tr hands requests to it (us__transport_close closes
 * it). */
void us__transport_set_batcher(us__transport *tr, us__batcher *b);

/* JSONL of the Batch API (pure, for tests). One input line for a canonical request body:
 * {"custom_id":key,"method":"POST","url":"/v1/chat/completions","body":body}\n appended to out. */
us_status us__batch_line(us_buf *out, const char *key, const char *body, us_err *err);
/* One line of an output or error file: its custom_id (copied, at most 64 characters), and
 * either a response (*status its status_code, *body its body as JSON text, caller frees) or an
 * error (*status 0, *body NULL, message "code: message"). false when the line is not one. */
bool us__batch_parse_line(const char *line, size_t len, char custom_id[65], long *status,
                          char **body, char *message, size_t message_cap);

#endif
