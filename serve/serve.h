/* `understudy serve`: the cascade in production. An OpenAI-compatible HTTP endpoint
 * (libmicrohttpd, a pool of serve.threads polling threads) where the student answers the
 * distilled task when its confidence reaches the threshold, and the teacher (through the teacher
 * gateway: retries, rate limits, budget) answers the rest; exact repeats come from the workspace
 * cache. Every request is logged as a row of the workspace, the teacher's answers to the task
 * become train prompts, a share of the student's answers is audited by the teacher in the
 * background, and a falling live agreement switches everything to the teacher. See docs/serve.md.
 *
 * Nothing here prints: notes and warnings go through core/log.h's hook. */
#ifndef US_SERVE_SERVE_H
#define US_SERVE_SERVE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "pipeline/pipeline.h"

/* The default address: loopback only. */
#define US_SERVE_DEFAULT_HOST "127.0.0.1"
#define US_SERVE_DEFAULT_PORT 8080

typedef struct us_serve_ready {
  const char *host;           /* the address bound */
  int port;                   /* the port bound (the real one when 0 was asked) */
  const char *model;          /* the student file loaded */
  double threshold;           /* in force (2 when every request goes to the teacher) */
  const char *threshold_from; /* "serve.threshold" or "report.json" */
} us_serve_ready;

typedef struct us_serve_options {
  const char *host;              /* NULL: US_SERVE_DEFAULT_HOST */
  int port;                      /* 0: an ephemeral port */
  volatile sig_atomic_t *stop;   /* set (SIGTERM/SIGINT): stop accepting, drain, return */
  volatile sig_atomic_t *reload; /* set (SIGHUP): reload student.bin; the server clears it */
  void *user;
  /* once listening, before the first request is accepted */
  void (*ready)(void *user, const us_serve_ready *r);
} us_serve_options;

typedef struct us_serve_summary {
  int64_t requests;                        /* answered, errors included */
  int64_t student, teacher, cache, errors; /* by route */
  int64_t audits, audits_agreeing;
  int64_t reloads;
  double spent_usd; /* paid to the teacher while serving */
  double saved_usd; /* teacher price of what the student and the cache answered */
  bool drifted;
} us_serve_summary;

/* Serves until *o->stop is set, then stops accepting, finishes the requests in flight and the
 * background audits, writes every log row and returns US_OK. Fails before listening when the
 * student is missing or unreadable, no threshold can be found (no report.json and no
 * serve.threshold), the address cannot be bound, or a non-loopback host is asked without
 * serve.api_keys_env. */
us_status us_serve_run(us_pipeline *p, const us_serve_options *o, us_serve_summary *summary,
                       us_err *err);

/* Building blocks, exposed for the unit tests. */

/* The {text} of a user message rendered from template (with {labels} already filled in as
 * labels_joined), recovered exactly: NULL when message is not such a rendering. Caller frees. */
char *us_serve_match_template(const char *template_text, const char *labels_joined,
                              const char *message);

#endif
