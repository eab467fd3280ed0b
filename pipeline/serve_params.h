/* The settings of `understudy serve` (config section "serve", docs/serve.md). They live here,
 * in pipeline/, because the config that reads them is here and must not reach up into serve/;
 * serve/ reads them from us_config.serve. */
#ifndef US_PIPELINE_SERVE_PARAMS_H
#define US_PIPELINE_SERVE_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/params.h"
#include "core/status.h"

typedef struct us_serve_params {
  int threads;           /* libmicrohttpd worker threads (each polls its own connections) */
  double threshold;      /* the student answers when confidence >= threshold; -1: the report's
                            recommended cascade threshold (report.json) */
  double audit_rate;     /* share of the student's answers also sent to the teacher */
  int drift_min_audits;  /* audits after which a low bound counts as drift even if it was never
                            above the target */
  bool log_prompts;      /* keep the prompt text and answer in the served rows */
  int max_body_bytes;    /* larger request bodies are refused with 413 */
  int max_tokens;        /* output bound added to a pass-through request that sets none, so the
                            budget's worst case for it is a real bound */
  double reload_check_s; /* how often to look for a newer student.bin (0: only on SIGHUP) */
  char *model;           /* model name of the task besides teacher.model; NULL: none */
  char *on_drift;        /* "teacher" (route everything to the teacher) or "warn"; NULL: the
                            default US_SERVE_DEFAULT_ON_DRIFT */
  char *api_keys_env;    /* environment variable with the client keys (comma separated); NULL:
                            no keys required (loopback only) */
} us_serve_params;

#define US_SERVE_DEFAULT_ON_DRIFT "teacher"

/* Every number and flag at its default; strings NULL. */
void us_serve_params_defaults(us_serve_params *p);
/* The numeric and boolean fields with their ranges (static; *n receives the count). */
const us_param *us_serve_param_table(size_t *n);
/* The table's ranges, then on_drift is "teacher" or "warn" ("on_drift: ..."). */
us_status us_serve_params_check(const us_serve_params *p, us_err *err);

#endif
