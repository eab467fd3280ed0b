/* The teacher client: labels every prompt in the workspace through an OpenAI-compatible Chat
 * Completions API, many requests in flight on one thread (libcurl multi), within rate limits and
 * a hard dollar budget, committing every answer to the cache as it arrives. */
#ifndef US_DISTILL_TEACHER_H
#define US_DISTILL_TEACHER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/cache.h"
#include "core/params.h"
#include "core/status.h"
#include "core/task.h"
#include "distill/prompts.h"

/* One extra request header (teacher.headers). */
typedef struct us_header {
  char *name;
  char *value;
} us_header;

/* How to reach and pay the teacher (the config's teacher.* keys). Strings and headers belong to
 * whoever filled the struct (the config owns and frees them); the client only reads them. */
typedef struct us_teacher_params {
  char *base_url;     /* NULL: US_TEACHER_DEFAULT_BASE_URL; no trailing slash */
  char *model;        /* the teacher's model name; the config requires it */
  char *api_key_env;  /* NULL: US_TEACHER_DEFAULT_API_KEY_ENV */
  us_header *headers; /* extra headers */
  int n_headers;
  int concurrency;            /* requests in flight */
  int window;                 /* prompts read from the workspace at a time; the requests built
                               * ahead of sending are at most two windows */
  double requests_per_minute; /* 0 = unlimited */
  double tokens_per_minute;   /* 0 = unlimited */
  double timeout_s;           /* per request */
  int max_retries;            /* retries of one request after the first attempt */
  double temperature;
  int max_tokens; /* US_TEACHER_DEFAULT_MAX_TOKENS_CLASSIFY, or _GENERATE for task generate */
  bool has_seed;
  int64_t seed;                 /* sent only if has_seed */
  bool logprobs;                /* ask for logprobs (soft targets for classify) */
  int top_logprobs;             /* alternatives per token when logprobs */
  bool structured;              /* classify: response_format with an enum of the labels */
  double budget_usd;            /* hard cap on what the workspace spends, all runs */
  double price_input_per_mtok;  /* US$ per million prompt tokens (teacher.price.input_per_mtok) */
  double price_output_per_mtok; /* US$ per million completion tokens (reasoning included) */
  double price_cached_input_per_mtok; /* US$ per million prompt tokens read from the provider's
                                       * prompt cache; US_TEACHER_PRICE_SAME_AS_INPUT (-1): the
                                       * input price */
  double params_b;                    /* teacher size in billions of parameters; 0 = unknown */
  /* The Batch API (teacher.mode "batch"): requests go in JSONL files to {base_url}/batches. */
  char *mode;                  /* "live" or "batch"; NULL: US_TEACHER_DEFAULT_MODE */
  char *batch_retry;           /* rows a batch failed or left: "batch" (the next batch) or "live" */
  int batch_max_requests;      /* most requests in one batch (the API's limit is 50,000) */
  double batch_poll_s;         /* seconds between two looks at a batch's status */
  double price_batch_discount; /* a batch answer costs this fraction of the live price */
} us_teacher_params;

/* The string defaults, which us_teacher_params_defaults leaves NULL for the owner to copy, and
 * the max_tokens default of each task type. */
#define US_TEACHER_DEFAULT_BASE_URL "https://api.openai.com/v1"
#define US_TEACHER_DEFAULT_API_KEY_ENV "OPENAI_API_KEY"
#define US_TEACHER_DEFAULT_MODE "live"
#define US_TEACHER_DEFAULT_BATCH_RETRY "batch"
/* The Batch API's limit on one input file. */
#define US_TEACHER_BATCH_MAX_BYTES (200u * 1000u * 1000u)
#define US_TEACHER_DEFAULT_MAX_TOKENS_CLASSIFY 16
#define US_TEACHER_DEFAULT_MAX_TOKENS_GENERATE 512

/* teacher.price.cached_input_per_mtok's default: "the input price". */
#define US_TEACHER_PRICE_SAME_AS_INPUT (-1.0)

/* Every number and flag at its default (max_tokens that of task classify); strings NULL. */
void us_teacher_params_defaults(us_teacher_params *p);
/* The numeric fields with their ranges (static; *n receives the count). teacher.seed is not in
 * it (a signed 64-bit value with has_seed; checked by us_teacher_params_check). */
const us_param *us_teacher_param_table(size_t *n);
/* The table's ranges, then: the seed (when has_seed) is an integer JSON keeps exactly; mode is
 * NULL, "live" or "batch"; batch_retry NULL, "batch" or "live". Messages
 * start with the field name ("concurrency: expected an integer in [1, 1024], found 0"). */
us_status us_teacher_params_check(const us_teacher_params *p, us_err *err);

/* A response's usage, with the kinds providers bill differently. */
typedef struct us_usage {
  int prompt_tokens;     /* -1 when the body carries none */
  int completion_tokens; /* -1 when absent; always includes reasoning_tokens (see below) */
  int cached_tokens;     /* of prompt_tokens, read from the provider's prompt cache; 0 if absent */
  int reasoning_tokens;  /* of completion_tokens, spent reasoning; 0 if absent */
} us_usage;

/* Reads usage from a Chat Completions body: prompt_tokens_details.cached_tokens (capped at
 * prompt_tokens) and completion_tokens_details.reasoning_tokens. OpenAI counts reasoning inside
 * completion_tokens; a provider whose total_tokens shows them outside it (total = prompt +
 * completion + reasoning), or that reports more reasoning than completion tokens, gets them
 * added, so completion_tokens always holds every output token billed. Fields absent: -1 / 0. */
void us_response_usage(const char *body, us_usage *u);

/* The price per million cached prompt tokens: price_cached_input_per_mtok, or the input price
 * when it is US_TEACHER_PRICE_SAME_AS_INPUT. */
double us_teacher_cached_price(const us_teacher_params *p);

/* What one call cost by kind (and in total, cost->total_usd) under p's prices; usage fields
 * must be >= 0. Reasoning tokens are output tokens, priced at the output price. */
typedef struct us_call_cost {
  double input_usd, cached_usd, output_usd, reasoning_usd, total_usd;
} us_call_cost;
void us_teacher_call_cost(const us_teacher_params *p, const us_usage *u, us_call_cost *cost);

typedef struct us_label_stats {
  int64_t total;            /* prompts considered */
  int64_t cached;           /* answered from the cache, nothing sent */
  int64_t done;             /* answered by the teacher in this run */
  int64_t failed;           /* recorded as failed (e.g. 400) */
  int64_t unparsed;         /* answers that map onto no label (unmapped: raw answer kept) */
  int64_t capped;           /* answers longer than answer_cap_bytes, stored cut to it */
  int64_t answer_cap;       /* bytes: the longest answer stored (16 x max_tokens, >= 4 KiB) */
  char top_failure[256];    /* the most common cause of this run's failures ("" if none) */
  int64_t top_failures;     /* how many failed of that cause */
  int64_t retries;          /* retried attempts */
  int64_t left;             /* not labelled when the run stopped */
  int64_t requests;         /* HTTP requests sent */
  double spent_usd;         /* spent in this run */
  double spent_total_usd;   /* spent in the workspace, all runs */
  int64_t cached_tokens;    /* prompt tokens of this run's answers read from the prompt cache */
  int64_t reasoning_tokens; /* completion tokens of this run's answers spent reasoning */
  int64_t unanswered;       /* requests of this run that may have been billed without an answer */
  double unanswered_usd;    /* their worst-case cost (counted against the budget) */
  int64_t unanswered_total; /* the same, workspace-wide, all runs */
  double unanswered_total_usd;
  int64_t chunks;          /* generate from docs: document chunks (each asked for questions once) */
  int64_t questions_added; /* generate from docs: questions stored as new prompts in this run */
  double elapsed_s;
  double cpu_s; /* process CPU seconds used by this run */
  /* teacher.mode "batch" */
  int64_t batches_created; /* batches created in this run */
  int64_t batches_open;    /* batches waited for now (created or resumed) */
  int64_t batch_requests;  /* requests in those */
  int64_t batch_completed; /* of which the API reports done */
  int64_t batch_failed;    /* and failed */
  char batch_status[24];   /* the oldest open batch's status ("in_progress", ...) */
  double batch_saved_usd;  /* what this run's batch answers would have cost more live */
  /* --dry-run estimates */
  int64_t est_prompt_tokens, est_completion_tokens_max;
  double est_cost_low_usd, est_cost_high_usd;
  /* --dry-run prompt caching: the requests' mean shared prefix (system message and the template
   * before the prompt text, ~4 characters a token), the prompt tokens expected from the
   * provider's cache (a prefix of at least 1,024 tokens, counted in steps of 128, on every
   * request after the first) and what that saves at teacher.price.cached_input_per_mtok
   * (already taken off est_cost_low_usd) */
  int64_t est_prefix_tokens, est_cached_tokens;
  double est_cache_saving_usd;
} us_label_stats;

typedef void (*us_label_progress_fn)(void *user, const us_label_stats *s);

typedef struct us_label_options {
  bool dry_run;                  /* contact nobody; fill the estimates */
  volatile sig_atomic_t *stop;   /* set non-zero (e.g. by SIGINT) to stop cleanly */
  us_label_progress_fn progress; /* called at most ~4 times a second, and at the end */
  void *progress_user;
  /* When non-NULL, only the prompts for which include returns true are labelled (and counted
   * in total); active labelling passes the test split and the picked train prompts. */
  bool (*include)(void *user, const us_prompt *p);
  void *include_user;
} us_label_options;

void us_label_options_defaults(us_label_options *o);

/* Labels every prompt (train and test) that has no cached answer for its current request.
 * For task generate with document chunks, first (phase 1) asks the teacher once per chunk for
 * data.questions_per_chunk questions (a cached call like any other), stores them as prompts
 * (us_prompts_add_questions), then (phase 2) answers every prompt, each question with its chunk
 * as context (us_request_for_prompt). total, cached, done, requests and spent cover both.
 * Returns US_OK when every prompt has its answer (mapped or not); US_ERR_BUDGET when the budget
 * stopped it (message: "budget reached: $X of $Y spent; N prompts left; raise
 * teacher.budget_usd and run again"); US_ERR_AUTH on 401/403 ("the key in $VAR was rejected");
 * US_ERR_NOT_FOUND on 404 (URL without credentials, and the model); US_ERR_INTERRUPTED when
 * *stop was set; US_ERR_UNLABELLED when the run finished but some prompts failed after their
 * retries (message: how many, and the most common cause, also in stats->top_failure). Whatever
 * the result, every answer received is already committed. */
us_status us_teacher_label(const us_task *task, const us_prompts_params *data,
                           const us_teacher_params *teacher, us_cache *cache,
                           const us_label_options *opt, us_label_stats *stats, us_err *err);

/* Maps an answer onto labels (the rules are in docs/config.md): exact; then equal once case,
 * white space, surrounding quotes and trailing punctuation are normalised; then, in an answer
 * of at most US_ANSWER_SHORT_WORDS words, the one label found as whole words with no negation
 * ("not", "isn't", ...) before it. Returns the label index, or -1: unmapped, never guessed. */
#define US_ANSWER_SHORT_WORDS 10
int us_answer_map_label(const char *answer, char *const *labels, int n_labels);

/* The "answer" string of a structured answer ({"answer": "..."}, teacher.structured), or NULL
 * when content is not such an object. Caller frees. */
char *us_answer_structured(const char *content);

/* Parses a Chat Completions response body: the first choice's content (caller frees), usage
 * tokens, and, when the body carries logprobs and labels are given, a distribution over the
 * labels from the first token's top alternatives (soft must hold n_labels; *has_soft set).
 * A body that is not such a response is US_ERR_TEACHER with a message. */
us_status us_response_parse(const char *body, char *const *labels, int n_labels, char **content,
                            int *prompt_tokens, int *completion_tokens, float *soft, bool *has_soft,
                            us_err *err);
/* Whether body is such a response (as us_response_parse decides), with its usage as
 * us_response_usage reads it (left at -1 / 0 when it is not): one parse for both. */
us_status us_response_check(const char *body, us_usage *u, us_err *err);

/* Seconds to wait from a Retry-After value (delta seconds or an HTTP date, relative to now_epoch)
 * or a retry-after-ms value; -1 if absent or unparseable. */
double us_retry_after_parse(const char *retry_after, const char *retry_after_ms, double now_epoch);
/* Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)]. u in [0,1). */
double us_backoff_delay(int attempt, double base_s, double cap_s, double u);

#endif
