/* Internals shared by the files of the mock OpenAI-compatible teacher (us_mock_teacher): its
 * options, the answer rules, the per-key ledger that counts what was billed, and fault drawing.
 * Strings returned by mock_* functions are malloc'd and freed by the caller unless noted. */
#ifndef US_TESTS_MOCK_H
#define US_TESTS_MOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOCK_MAX_LABELS 256
#define MOCK_MAX_FAULTS 16

typedef enum {
  MOCK_FAULT_NONE = 0,
  MOCK_FAULT_429,
  MOCK_FAULT_500,
  MOCK_FAULT_503,
  MOCK_FAULT_TIMEOUT,   /* sleep past the client's timeout, then close without an answer */
  MOCK_FAULT_MALFORMED, /* 200 whose body is not JSON */
  MOCK_FAULT_TRUNCATED, /* 200 whose body is valid JSON cut half-way (honest Content-Length) */
  MOCK_FAULT_PARTIAL,   /* 200 announcing the whole body, sending half, then closing */
  MOCK_FAULT_RESET,     /* close the connection without any response */
  MOCK_FAULT_SLOW,      /* answer (and bill) only after --slow-ms, as a slow model does; not in
                         * "all" */
  MOCK_FAULT_COUNT
} mock_fault;

typedef struct mock_options {
  int port;                      /* 0: ephemeral */
  const char *port_file;         /* written (atomically) once listening */
  const char *answers_path;      /* JSONL {"text","answer"} */
  const char *template_text;     /* task template with {text} (and {labels}); default "{text}" */
  const char *question_template; /* self-instruct question request ({chunk}, {n}); default
                                  * understudy's data.question_template */
  const char *answer_template;   /* self-instruct answer request ({chunk}, {question}) */
  char *labels[MOCK_MAX_LABELS];
  int n_labels;
  char *models[MOCK_MAX_LABELS]; /* accepted models; none: any model */
  int n_models;
  double answer_noise; /* fraction of answers-file entries answered with another label */
  long disagree_after; /* -1: off; else chat answers after the first N name the next label */
  int latency_ms;
  double fault_rate;
  uint64_t fault_seed;
  mock_fault faults[MOCK_MAX_FAULTS];
  int n_faults;
  int fault_max_per_key;   /* a key's attempt k may fault only while k < this (default 2) */
  int timeout_delay_ms;    /* default 5000 */
  int fail_status;         /* 0: off; else every chat request gets this status */
  const char *answer_text; /* NULL: off; else every chat answer is this text */
  long answer_bytes;       /* 0: off; else every answer is padded to this many bytes, past
                            * max_tokens (a server that ignores it) */
  const char *require_key; /* NULL: any key */
  const char *log_path;    /* append every request's headers and body */
  bool ratelimit_headers;
  int ratelimit_requests; /* advertised per-minute limits (default 10000 / 2000000) */
  int ratelimit_tokens;
  int slow_ms;            /* how long a slow fault takes (default 5000) */
  double price_input;     /* US$ per million tokens billed (/_stats billed_usd); default 0 */
  double price_output;    /* completion tokens, reasoning included */
  double price_cached;    /* cached prompt tokens; < 0 (default): the input price */
  bool prompt_cache;      /* report cached_tokens for a prefix seen before */
  int prompt_cache_min;   /* tokens a prefix needs to be cached (default 1024) */
  int prompt_cache_step;  /* cached tokens come in steps of this many (default 128) */
  int reasoning_tokens;   /* reasoning tokens added to every answer's output (default 0) */
  int batch_delay_ms;     /* a batch completes this long after it was created */
  double batch_fail_rate; /* fraction of batch rows answered with a 500 (first attempts) */
  int batch_expire;       /* the first N batches expire with about half their rows unanswered */

  /* POST /batches creates the batch, then answers batch_create_delay_ms later, for the batch of
   * ordinal batch_create_delay_at only (0: the first created) */
  int batch_create_delay_ms, batch_create_delay_at;
  bool die_with_parent;
  bool quiet;
  bool verbose;
} mock_options;

/* ---- answers (mock_answer.c) -------------------------------------------------------------- */

/* Loads the answers file (if any) and prepares the template; returns false and prints to stderr
 * on error. mock_answers_free releases what mock_answers_load built. */
bool mock_answers_load(const mock_options *o);
void mock_answers_free(void);

/* The prompt text inside a user message: the message with the template's fixed prefix and
 * suffix around {text} removed ({labels} in them matches anything). The whole message if the
 * template does not fit. */
char *mock_extract_text(const char *user_message);

/* The answer for a prompt text: the answers file's entry (or, when the text is not one, the
 * longest entry the text contains, so an unknown template still finds its answer), replaced by
 * another label for a fixed --answer-noise fraction of texts; else labels[hash(text) % n]; else
 * a short deterministic sentence built from the text. */
char *mock_answer_for(const mock_options *o, const char *text);

/* What one answer bills: cached_tokens are part of prompt, reasoning part of completion. */
typedef struct mock_usage {
  int prompt, completion, cached, reasoning;
} mock_usage;

/* Dollars for u at the --price-* flags. */
double mock_usage_usd(const mock_options *o, const mock_usage *u);

/* mock_response_build with the whole usage (cached prompt tokens when --prompt-cache saw the
 * request's prefix before, reasoning tokens from --reasoning-tokens). */
char *mock_response_build_usage(const mock_options *o, const void *request, const char *key,
                                mock_usage *usage, int *status, const char **error_type,
                                char **error_message);

/* The Chat Completions response body for a parsed request (a cJSON object, passed as void* so
 * this header needs no cJSON). Fills the token counts billed. Returns NULL with *status and
 * *error_message (static text) set when the request is not acceptable. */
char *mock_response_build(const mock_options *o, const void *request, const char *key,
                          int *prompt_tokens, int *completion_tokens, int *status,
                          const char **error_type, char **error_message);

/* The answer to a self-instruct request (mock_selfinstruct.c), or NULL when user_message fits
 * neither template: for a question request, up to {n} numbered questions ("1. What does the
 * passage say about <first words of sentence k>?"), one per sentence of the chunk; for an
 * answer request, the chunk's sentence sharing the most words with the question. */
char *mock_selfinstruct_answer(const mock_options *o, const char *user_message);

/* An OpenAI-style error body. */
char *mock_error_body(const char *message, const char *type, const char *code);

/* ---- the Batch API (mock_batch.c) --------------------------------------------------------- */

/* The response body for a Batch API route (POST /files, POST /batches, GET /batches/{id},
 * GET /files/{id}/content), with *status; NULL when url is none of them. */
char *mock_batch_route(const mock_options *o, const char *method, const char *url,
                       const char *content_type, const char *body, size_t len, int *status);

/* ---- ledger and faults (mock_ledger.c) -------------------------------------------------- */

void mock_ledger_init(void);
void mock_ledger_free(void);
void mock_ledger_reset(void);
/* Counts one received request on a route that is not a control route (/_stats, /_reset). */
void mock_ledger_request(void);
/* Counts one chat attempt for key; returns its 0-based attempt number. */
int64_t mock_ledger_attempt(const char *key);
/* Records a billed (200, valid body) answer for key. */
void mock_ledger_bill(const char *key, int prompt_tokens, int completion_tokens);
/* The same with the kinds and the dollars billed (/_stats cached_tokens, reasoning_tokens,
 * billed_usd). */
void mock_ledger_bill_usage(const char *key, const mock_usage *u, double usd);
void mock_ledger_fault(mock_fault f);
/* The Batch API's books: one more of "files_uploaded", "batches_created" or "batch_polls"; a
 * batch row's attempt for key (0-based; not a chat request); a batch row billed at the batch
 * rate (its tokens counted apart from the live ones, in batch_prompt_tokens and
 * batch_completion_tokens; the key's bills counted with the live ones). */
void mock_ledger_batch_event(const char *name);
int64_t mock_ledger_batch_attempt(const char *key);
void mock_ledger_bill_batch(const char *key, int prompt_tokens, int completion_tokens);
void mock_ledger_connection(int delta);
void mock_ledger_in_flight(int delta);
/* Requests and tokens seen in the current minute (for x-ratelimit-remaining-*). */
void mock_ledger_minute(int64_t *requests, int64_t *tokens);
/* The /_stats JSON. */
char *mock_ledger_json(void);

/* The fault for attempt `attempt` of key (MOCK_FAULT_NONE mostly); deterministic in
 * (fault_seed, key, attempt). */
mock_fault mock_fault_draw(const mock_options *o, const char *key, int64_t attempt);
/* A number in [0, 1) fixed by (seed, key, salt). */
double mock_unit(uint64_t seed, const char *key, uint64_t salt);
const char *mock_fault_name(mock_fault f);
mock_fault mock_fault_parse(const char *name);

#endif
