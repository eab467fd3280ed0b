/* The teacher client: labels every prompt in the workspace through an OpenAI-compatible Chat
 * Completions API, many requests in flight on one thread (libcurl multi), within rate limits and
 * a hard dollar budget, committing every answer to the cache as it arrives. */
#ifndef US_DISTILL_TEACHER_H
#define US_DISTILL_TEACHER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/cache.h"
#include "pipeline/config.h"

typedef struct us_label_stats {
  int64_t total;           /* prompts considered */
  int64_t cached;          /* answered from the cache, nothing sent */
  int64_t done;            /* answered by the teacher in this run */
  int64_t failed;          /* recorded as failed (e.g. 400) */
  int64_t unparsed;        /* answers that map onto no label */
  int64_t retries;         /* retried attempts */
  int64_t left;            /* not labelled when the run stopped */
  int64_t requests;        /* HTTP requests sent */
  double spent_usd;        /* spent in this run */
  double spent_total_usd;  /* spent in the workspace, all runs */
  int64_t chunks;          /* generate from docs: document chunks (each asked for questions once) */
  int64_t questions_added; /* generate from docs: questions stored as new prompts in this run */
  double elapsed_s;
  double cpu_s; /* process CPU seconds used by this run */
  /* --dry-run estimates */
  int64_t est_prompt_tokens, est_completion_tokens_max;
  double est_cost_low_usd, est_cost_high_usd;
} us_label_stats;

typedef void (*us_label_progress_fn)(void *user, const us_label_stats *s);

typedef struct us_label_options {
  bool dry_run;                  /* contact nobody; fill the estimates */
  volatile sig_atomic_t *stop;   /* set non-zero (e.g. by SIGINT) to stop cleanly */
  us_label_progress_fn progress; /* called at most ~4 times a second, and at the end */
  void *progress_user;
} us_label_options;

void us_label_options_defaults(us_label_options *o);

/* Labels every prompt (train and test) that has no cached answer for its current request.
 * For task generate with document chunks, first (phase 1) asks the teacher once per chunk for
 * data.questions_per_chunk questions (a cached call like any other), stores them as prompts
 * (us_prompts_add_questions), then (phase 2) answers every prompt, each question with its chunk
 * as context (us_request_for_prompt). total, cached, done, requests and spent cover both.
 * Returns US_OK when all are labelled or recorded as failed; US_ERR_BUDGET when the budget
 * stopped it (message: "budget reached: $X of $Y spent; N prompts left; raise
 * teacher.budget_usd and run again"); US_ERR_AUTH on 401/403 ("the key in $VAR was rejected");
 * US_ERR_NOT_FOUND on 404 (URL without credentials, and the model); US_ERR_INTERRUPTED when
 * *stop was set. Whatever the result, every answer received is already committed. */
us_status us_teacher_label(const us_config *c, us_cache *cache, const us_label_options *opt,
                           us_label_stats *stats, us_err *err);

/* Maps an answer onto labels: exact; then case, space and punctuation insensitive; then the
 * unique label contained in the answer. Returns the label index or -1. */
int us_answer_map_label(const char *answer, char *const *labels, int n_labels);

/* Parses a Chat Completions response body: the first choice's content (caller frees), usage
 * tokens, and, when the body carries logprobs and labels are given, a distribution over the
 * labels from the first token's top alternatives (soft must hold n_labels; *has_soft set).
 * A body that is not such a response is US_ERR_TEACHER with a message. */
us_status us_response_parse(const char *body, char *const *labels, int n_labels, char **content,
                            int *prompt_tokens, int *completion_tokens, float *soft, bool *has_soft,
                            us_err *err);

/* Seconds to wait from a Retry-After value (delta seconds or an HTTP date, relative to now_epoch)
 * or a retry-after-ms value; -1 if absent or unparseable. */
double us_retry_after_parse(const char *retry_after, const char *retry_after_ms, double now_epoch);
/* Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)]. u in [0,1). */
double us_backoff_delay(int attempt, double base_s, double cap_s, double u);

#endif
