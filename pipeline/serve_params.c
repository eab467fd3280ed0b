/* The serve settings: defaults, ranges and the one cross-field rule (pipeline/serve_params.h). */
#include "pipeline/serve_params.h"

#include <string.h>

void us_serve_params_defaults(us_serve_params *p) {
  memset(p, 0, sizeof *p);
  p->threads = 2;
  p->threshold = -1;
  p->audit_rate = 0.02;
  p->drift_min_audits = 200;
  p->log_prompts = true;
  p->max_body_bytes = 1 << 20;
  p->max_tokens = 4096;
  p->reload_check_s = 2;
}

static const us_param SERVE_PARAMS[] = {
    US_PARAM(us_serve_params, threads, US_PARAM_INT, 1, 256, 0,
             "server worker threads (each polls its own connections)"),
    US_PARAM(us_serve_params, threshold, US_PARAM_DOUBLE, -1, 1, 0,
             "student answers at or above this confidence; -1: the report's recommended "
             "threshold"),
    US_PARAM(us_serve_params, audit_rate, US_PARAM_DOUBLE, 0, 1, 0,
             "share of the student's answers checked by the teacher in the background"),
    US_PARAM(us_serve_params, drift_min_audits, US_PARAM_INT, 1, 1000000000, 0,
             "audits after which a lower bound under the target is drift"),
    US_PARAM(us_serve_params, log_prompts, US_PARAM_BOOL, 0, 0, 0,
             "keep prompt text and answers in the served rows"),
    US_PARAM(us_serve_params, max_body_bytes, US_PARAM_INT, 1024, 1 << 30, 0,
             "largest request body accepted (else 413)"),
    US_PARAM(us_serve_params, max_tokens, US_PARAM_INT, 1, 1000000, 0,
             "max_tokens added to a pass-through request that sets no output bound"),
    US_PARAM(us_serve_params, reload_check_s, US_PARAM_DOUBLE, 0, 86400, 0,
             "seconds between looks for a newer student.bin (0: SIGHUP only)"),
};

const us_param *us_serve_param_table(size_t *n) {
  *n = sizeof SERVE_PARAMS / sizeof SERVE_PARAMS[0];
  return SERVE_PARAMS;
}

us_status us_serve_params_check(const us_serve_params *p, us_err *err) {
  us_status st =
      us_params_check(SERVE_PARAMS, sizeof SERVE_PARAMS / sizeof SERVE_PARAMS[0], p, err);
  if (st) return st;
  if (p->on_drift && strcmp(p->on_drift, "teacher") != 0 && strcmp(p->on_drift, "warn") != 0)
    return us_err_set(err, US_ERR_CONFIG,
                      "on_drift: expected \"teacher\" or \"warn\", found \"%s\"", p->on_drift);
  return US_OK;
}
