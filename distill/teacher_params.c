/* The teacher's settings (distill/teacher.h): the one place their defaults and ranges live. The
 * config loader reads teacher.* keys against this table and runs us_teacher_params_check. */
#include <stddef.h>
#include <string.h>

#include "distill/teacher.h"

#define JSON_MAX_SAFE_INT 9007199254740991.0 /* 2^53 - 1: larger integers lose precision */

void us_teacher_params_defaults(us_teacher_params *p) {
  memset(p, 0, sizeof *p);
  p->concurrency = 8;
  p->window = 4096;
  p->requests_per_minute = 0;
  p->tokens_per_minute = 0;
  p->timeout_s = 60;
  p->max_retries = 6;
  p->temperature = 0;
  p->max_tokens = US_TEACHER_DEFAULT_MAX_TOKENS_CLASSIFY;
  p->has_seed = false;
  p->logprobs = false;
  p->top_logprobs = 5;
  p->budget_usd = 10;
  p->price_input_per_mtok = 0;
  p->price_output_per_mtok = 0;
  p->price_cached_input_per_mtok = US_TEACHER_PRICE_SAME_AS_INPUT;
  p->params_b = 0;
  p->mode = NULL;
  p->batch_retry = NULL;
  p->batch_max_requests = 50000;
  p->batch_poll_s = 30;
  p->price_batch_discount = 0.5;
}

static const us_param TEACHER_PARAMS[] = {
    US_PARAM(us_teacher_params, concurrency, US_PARAM_INT, 1, 1024, 0, "requests in flight"),
    US_PARAM(us_teacher_params, window, US_PARAM_INT, 1, 1000000, 0,
             "prompts read from the workspace at a time while labelling"),
    US_PARAM(us_teacher_params, requests_per_minute, US_PARAM_DOUBLE, 0, 1e9, 0,
             "most requests started per minute; 0 = unlimited"),
    US_PARAM(us_teacher_params, tokens_per_minute, US_PARAM_DOUBLE, 0, 1e12, 0,
             "most tokens sent per minute; 0 = unlimited"),
    US_PARAM(us_teacher_params, timeout_s, US_PARAM_DOUBLE, 0, 3600, US_PARAM_MIN_OPEN,
             "seconds one request may take"),
    US_PARAM(us_teacher_params, max_retries, US_PARAM_INT, 0, 100, 0,
             "retries of one request after its first attempt"),
    US_PARAM(us_teacher_params, temperature, US_PARAM_DOUBLE, 0, 2, 0, "sampling temperature"),
    US_PARAM(us_teacher_params, max_tokens, US_PARAM_INT, 1, 1000000, 0,
             "most tokens in one answer"),
    US_PARAM(us_teacher_params, logprobs, US_PARAM_BOOL, 0, 0, 0,
             "ask for log-probabilities (soft targets for classify)"),
    US_PARAM(us_teacher_params, structured, US_PARAM_BOOL, 0, 0, 0,
             "classify: constrain the answer to the labels with a JSON schema (structured "
             "outputs)"),
    US_PARAM(us_teacher_params, top_logprobs, US_PARAM_INT, 0, 20, 0,
             "alternatives per token when logprobs is on"),
    US_PARAM(us_teacher_params, budget_usd, US_PARAM_DOUBLE, 0, 0, US_PARAM_NO_MAX,
             "hard cap in US dollars on what the workspace spends"),
    US_PARAM(us_teacher_params, price_input_per_mtok, US_PARAM_DOUBLE, 0, 1e6, 0,
             "US dollars per million prompt tokens"),
    US_PARAM(us_teacher_params, price_output_per_mtok, US_PARAM_DOUBLE, 0, 1e6, 0,
             "US dollars per million completion tokens"),
    US_PARAM(us_teacher_params, price_cached_input_per_mtok, US_PARAM_DOUBLE, -1, 1e6, 0,
             "US dollars per million cached prompt tokens; -1 = the input price"),
    US_PARAM(us_teacher_params, params_b, US_PARAM_DOUBLE, 0, 1e6, 0,
             "teacher size in billions of parameters; 0 = unknown"),
    US_PARAM(us_teacher_params, batch_max_requests, US_PARAM_INT, 1, 50000, 0,
             "most requests in one batch (teacher.mode \"batch\")"),
    US_PARAM(us_teacher_params, batch_poll_s, US_PARAM_DOUBLE, 0, 3600, US_PARAM_MIN_OPEN,
             "seconds between two looks at a batch's status"),
    US_PARAM(us_teacher_params, price_batch_discount, US_PARAM_DOUBLE, 0, 1, 0,
             "a batch answer costs this fraction of the live price"),
};

const us_param *us_teacher_param_table(size_t *n) {
  *n = sizeof TEACHER_PARAMS / sizeof TEACHER_PARAMS[0];
  return TEACHER_PARAMS;
}

us_status us_teacher_params_check(const us_teacher_params *p, us_err *err) {
  size_t n;
  const us_param *table = us_teacher_param_table(&n);
  us_status st = us_params_check(table, n, p, err);
  if (st) return st;
  double cached = p->price_cached_input_per_mtok;
  if (cached < 0 && cached != US_TEACHER_PRICE_SAME_AS_INPUT)
    return us_err_set(err, US_ERR_CONFIG,
                      "price_cached_input_per_mtok: expected a number in [0, 1e6], or -1 for the "
                      "input price, found %g",
                      cached);
  if (p->has_seed &&
      (p->seed < -(int64_t)JSON_MAX_SAFE_INT || p->seed > (int64_t)JSON_MAX_SAFE_INT))
    return us_err_set(err, US_ERR_CONFIG,
                      "seed: expected an integer in [-9007199254740991, 9007199254740991], "
                      "found %lld",
                      (long long)p->seed);
  if (p->mode && strcmp(p->mode, "live") != 0 && strcmp(p->mode, "batch") != 0)
    return us_err_set(err, US_ERR_CONFIG, "mode: expected \"live\" or \"batch\", found \"%.100s\"",
                      p->mode);
  if (p->batch_retry && strcmp(p->batch_retry, "batch") != 0 && strcmp(p->batch_retry, "live") != 0)
    return us_err_set(err, US_ERR_CONFIG,
                      "batch_retry: expected \"batch\" or \"live\", found \"%.100s\"",
                      p->batch_retry);
  return US_OK;
}

double us_teacher_cached_price(const us_teacher_params *p) {
  return p->price_cached_input_per_mtok < 0 ? p->price_input_per_mtok
                                            : p->price_cached_input_per_mtok;
}

void us_teacher_call_cost(const us_teacher_params *p, const us_usage *u, us_call_cost *cost) {
  int cached = u->cached_tokens < u->prompt_tokens ? u->cached_tokens : u->prompt_tokens;
  int reasoning =
      u->reasoning_tokens < u->completion_tokens ? u->reasoning_tokens : u->completion_tokens;
  cost->input_usd = (double)(u->prompt_tokens - cached) * p->price_input_per_mtok / 1e6;
  cost->cached_usd = (double)cached * us_teacher_cached_price(p) / 1e6;
  cost->output_usd = (double)(u->completion_tokens - reasoning) * p->price_output_per_mtok / 1e6;
  cost->reasoning_usd = (double)reasoning * p->price_output_per_mtok / 1e6;
  cost->total_usd = cost->input_usd + cost->cached_usd + cost->output_usd + cost->reasoning_usd;
}
