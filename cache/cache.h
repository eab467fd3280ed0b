/* The workspace: one SQLite file per project (<output>/understudy.db, WAL, foreign keys, busy
 * timeout, migrations on PRAGMA user_version). It holds the prompts, every teacher call (keyed by
 * the SHA-256 of its canonical request), the targets parsed from those calls, failures, runs,
 * training curves and named results. Every write commits at once unless inside an explicit
 * us_cache_begin/us_cache_commit pair. All SQL is parameterised.
 *
 * Ownership: strings in rows returned by the list/get functions belong to the caller and are
 * freed by the matching *_free function. */
#ifndef US_CACHE_CACHE_H
#define US_CACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct us_cache us_cache;

/* Opens (creating if needed) the workspace at path and migrates it to the current schema.
 * A file that is not a SQLite database, or whose schema is newer than this build, is refused
 * with a message naming the path and the fix. */
us_status us_cache_open(const char *path, us_cache **out, us_err *err);
/* Opens an existing workspace at the current schema for reading only (no migration, no journal
 * change; every write fails): the MPI ranks other than rank 0 read the one rank 0 writes. */
us_status us_cache_open_read_only(const char *path, us_cache **out, us_err *err);
void us_cache_close(us_cache *c); /* NULL is a no-op */
int us_cache_schema_version(us_cache *c);

/* Optional explicit transaction (for bulk prompt inserts). */
us_status us_cache_begin(us_cache *c, us_err *err);
us_status us_cache_commit(us_cache *c, us_err *err);
us_status us_cache_rollback(us_cache *c, us_err *err);

/* ---- prompts ------------------------------------------------------------------------------ */
typedef enum { US_PROMPT_KIND_PROMPT = 0, US_PROMPT_KIND_CHUNK = 1 } us_prompt_kind;

typedef struct us_prompt {
  int64_t id;
  char hash[65]; /* SHA-256 hex of the normalised text: the identity of a prompt */
  char *text;    /* text as loaded (not normalised); for a chunk, the chunk */
  char *gold;    /* gold label or reference answer from the input, or NULL */
  char *source;  /* "file:line", "file#chunkN" or, for a self-instruct question, "file#chunkN/qK" */
  int split;     /* US_SPLIT_TRAIN or US_SPLIT_TEST */
  int kind;      /* us_prompt_kind: a prompt to learn from, or a document chunk (generate) */
  char *context; /* self-instruct question: the chunk it was written from (the teacher answers
                  * with it, the student learns without it); NULL otherwise */
} us_prompt;

/* Inserts a prompt unless one with the same hash exists (then *inserted = false and nothing
 * changes). *id receives the row id either way (may be NULL). */
us_status us_cache_prompt_add(us_cache *c, const char *hash, const char *text, const char *gold,
                              const char *source, int split, bool *inserted, int64_t *id,
                              us_err *err);
/* Inserts p (hash, text, split, kind required; gold, source, context may be NULL; p->id is
 * ignored) unless a row with the same hash exists, as us_cache_prompt_add does. */
us_status us_cache_prompt_insert(us_cache *c, const us_prompt *p, bool *inserted, int64_t *id,
                                 us_err *err);
/* Lists prompts (kind US_PROMPT_KIND_PROMPT: never chunks) ordered by id; split -1 means all.
 * Caller frees with us_prompts_free. */
us_status us_cache_prompts_list(us_cache *c, int split, us_prompt **out, size_t *n, us_err *err);
/* One page of prompts of kind (us_prompt_kind), both splits: at most limit rows with id >
 * after_id, ordered by id (keyset pagination: pass the last id read to get the next page; 0
 * for the first). *n 0 means no more. Caller frees with us_prompts_free. */
us_status us_cache_prompts_page(us_cache *c, int kind, int64_t after_id, size_t limit,
                                us_prompt **out, size_t *n, us_err *err);
/* Lists document chunks (kind US_PROMPT_KIND_CHUNK) ordered by id, as us_cache_prompts_list. */
us_status us_cache_chunks_list(us_cache *c, us_prompt **out, size_t *n, us_err *err);
void us_prompts_free(us_prompt *p, size_t n);
/* Moves prompt id to split (US_SPLIT_TRAIN or US_SPLIT_TEST): near-duplicates across the splits
 * are put together (cache/spend.c). */
us_status us_cache_prompt_set_split(us_cache *c, int64_t id, int split, us_err *err);
/* Counts prompts (never chunks); split -1 means all. */
us_status us_cache_prompts_count(us_cache *c, int split, int64_t *n, us_err *err);

/* ---- teacher calls ---------------------------------------------------------------------- */
typedef struct us_call {
  char key[65];   /* SHA-256 hex of the canonical request */
  char *request;  /* canonical request JSON (no key, no headers) */
  char *response; /* raw response body */
  int http_status;
  int prompt_tokens;
  int completion_tokens;
  double cost_usd; /* 0 for imported entries */
  double latency_ms;
  int attempts;
  bool imported;     /* seeded from logs: nothing was paid */
  double created_at; /* epoch seconds */
} us_call;

/* Stores a successful call; committed before it returns. Putting a key that exists is a no-op
 * (the first answer wins) and sets *existed if non-NULL. */
us_status us_cache_call_put(us_cache *c, const us_call *call, bool *existed, us_err *err);
/* Looks up a call by key; *found false if absent. Caller frees with us_call_free_fields. */
us_status us_cache_call_get(us_cache *c, const char *key, us_call *out, bool *found, us_err *err);
void us_call_free_fields(us_call *call);
us_status us_cache_call_exists(us_cache *c, const char *key, bool *found, us_err *err);
/* Calls fn(user, key) for each call stored after row *rowid (the calls table only grows), in
 * the order they were stored, and leaves *rowid at the last one read: a reader that keeps *rowid
 * sees each key once. key is valid during the call only. */
typedef void (*us_call_key_fn)(void *user, const char *key);
us_status us_cache_call_keys_since(us_cache *c, int64_t *rowid, us_call_key_fn fn, void *user,
                                   us_err *err);
/* SQLite's data_version of this connection: it changes when another connection (in this process
 * or another) commits, so a reader knows when what it read may be stale. */
us_status us_cache_data_version(us_cache *c, int64_t *version, us_err *err);

/* Records a failed attempt series for a key (never served as a hit). */
us_status us_cache_failure_put(us_cache *c, const char *key, int64_t prompt_id, int http_status,
                               const char *message, int attempts, us_err *err);
us_status us_cache_failures_count(us_cache *c, int64_t *n, us_err *err);

typedef struct us_cache_stats {
  int64_t prompts, prompts_train, prompts_test; /* prompts only, never chunks */
  int64_t chunks;                               /* document chunks (self-instruct) */
  int64_t calls, calls_imported, failures, targets, targets_unparsed;
  int64_t prompt_tokens, completion_tokens;
  double spent_usd;                      /* sum of cost_usd over calls */
  double latency_p50_ms, latency_p99_ms; /* over non-imported calls; 0 if none */
} us_cache_stats;
us_status us_cache_stats_get(us_cache *c, us_cache_stats *s, us_err *err);

/* ---- spend by kind, and requests that may have been billed without an answer -------------- */

/* What one call's tokens and dollars were by kind (cache/spend.c). Tokens: cached_tokens are
 * part of the call's prompt_tokens, reasoning_tokens part of its completion_tokens. Dollars:
 * input (uncached prompt tokens), cached input, output (visible answer), reasoning; they sum to
 * the call's cost_usd. */
typedef struct us_call_kinds {
  int cached_tokens, reasoning_tokens;
  double input_usd, cached_usd, output_usd, reasoning_usd;
} us_call_kinds;

/* Records the kinds of the call stored under key (after us_cache_call_put stored it). */
us_status us_cache_call_kinds_put(us_cache *c, const char *key, const us_call_kinds *k,
                                  us_err *err);
/* Records a request that may have been billed without an answer (timed out, connection closed
 * after its body was sent, dropped in flight) at its worst-case cost. */
us_status us_cache_unanswered_put(us_cache *c, const char *key, int64_t prompt_id, double worst_usd,
                                  const char *reason, us_err *err);

typedef struct us_cache_spend {
  int64_t prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens;
  double input_usd, cached_usd, output_usd, reasoning_usd;
  double unsplit_usd;    /* calls stored before costs were split by kind (schema < 7) */
  double total_usd;      /* sum of cost_usd: what the answers cost */
  int64_t unanswered;    /* requests that may have been billed without an answer */
  double unanswered_usd; /* their worst-case cost, counted against the budget */
} us_cache_spend;
us_status us_cache_spend_get(us_cache *c, us_cache_spend *s, us_err *err);

/* Iterates all calls in key order (for export). Return non-zero from fn to stop early. */
typedef int (*us_call_fn)(void *user, const us_call *call);
us_status us_cache_calls_each(us_cache *c, us_call_fn fn, void *user, us_err *err);

/* Chat-format JSONL export/import ({"messages":[...,{"role":"assistant","content":...}]}).
 * Import also accepts lines holding {"request":{...},"response":{...}} (the OpenAI response
 * object form). Imported calls are keyed the same way the teacher client keys them, given the
 * model and parameters of the config, and are stored as imported with $0 cost.
 * These live in cache/export.c; key computation is passed in as a callback so cache/ never
 * needs to know the request format. */
typedef us_status (*us_request_key_fn)(void *user, const char *messages_json, char **request_json,
                                       char key[65], us_err *err);
us_status us_cache_export_jsonl(us_cache *c, const char *path, int64_t *n_written, us_err *err);
us_status us_cache_import_jsonl(us_cache *c, const char *path, us_request_key_fn key_fn, void *user,
                                int64_t *n_imported, int64_t *n_skipped, us_err *err);

/* ---- targets (what the teacher's answer means for training) -------------------------------- */
typedef enum { US_TARGET_OK = 0, US_TARGET_UNPARSED = 1 } us_target_status;

typedef struct us_target {
  char key[65]; /* the call it was parsed from */
  int64_t prompt_id;
  char *label; /* classify: the mapped label; NULL when unparsed */
  char *text;  /* raw answer text (generate: the answer) */
  float *soft; /* classify with logprobs: distribution over task.labels; NULL otherwise */
  int n_soft;
  int status; /* us_target_status */
} us_target;

/* Upserts the target parsed from call key for prompt_id. */
us_status us_cache_target_put(us_cache *c, const us_target *t, us_err *err);
/* Target for a call key; *found false if none. Caller frees with us_target_free_fields. */
us_status us_cache_target_get(us_cache *c, const char *key, us_target *out, bool *found,
                              us_err *err);
void us_target_free_fields(us_target *t);

/* ---- runs, curves and results ----------------------------------------------------------- */
us_status us_cache_run_begin(us_cache *c, const char *command, int64_t *run_id, us_err *err);
us_status us_cache_run_end(us_cache *c, int64_t run_id, const char *status, us_err *err);
/* One point of a training curve, e.g. series "train_loss", "valid_loss", "valid_acc". */
us_status us_cache_curve_add(us_cache *c, int64_t run_id, const char *series, double x, double y,
                             us_err *err);
typedef struct us_curve_point {
  double x, y;
} us_curve_point;
/* Points of the series from the newest run that has it. Caller frees *out. */
us_status us_cache_curve_get(us_cache *c, const char *series, us_curve_point **out, size_t *n,
                             us_err *err);
/* Named JSON results (e.g. "train", "eval", "speed"): upsert and fetch. Caller frees *json. */
us_status us_cache_result_put(us_cache *c, const char *name, const char *json, us_err *err);
us_status us_cache_result_get(us_cache *c, const char *name, char **json, bool *found, us_err *err);

/* ---- requests served (`understudy serve`) ---------------------------------------------- */
typedef struct us_served_row {
  double created_at; /* epoch seconds */
  const char *route; /* "student", "teacher", "cache", "error" or "audit" */
  bool task;         /* the request was the distilled task */
  int http_status;   /* what the client got */
  double confidence; /* the student's; NAN when it was not asked */
  double threshold;  /* in force; NAN when not applicable */
  double latency_ms; /* request in to response out (audit: the teacher's) */
  int prompt_tokens, completion_tokens;
  double cost_usd;    /* paid to the teacher for this request */
  double saved_usd;   /* what the teacher would have cost, for a request it did not answer */
  int agree;          /* audit: 1 the teacher agreed with the student, 0 not; -1 otherwise */
  const char *prompt; /* the {text} (or the request), or NULL (serve.log_prompts false) */
  const char *answer; /* the answer given, or NULL */
} us_served_row;

/* Appends rows[0..n) in one transaction (committed when it returns). */
us_status us_cache_served_add(us_cache *c, const us_served_row *rows, size_t n, us_err *err);
/* The same rows inside the caller's transaction (the server's log thread inserts a batch in
 * slices). */
us_status us_cache_served_insert(us_cache *c, const us_served_row *rows, size_t n, us_err *err);

/* Per route: requests, dollars paid, dollars saved, audits agreeing (route "audit"), first and
 * last time. */
typedef struct us_served_route {
  char route[16];
  int64_t n;
  double cost_usd, saved_usd;
  int64_t agree;
  double first_at, last_at;
} us_served_route;
/* Every route with rows (at most max of them). */
us_status us_cache_served_routes(us_cache *c, us_served_route *out, int max, int *n, us_err *err);
/* The audits in order: time and 1/0 agreement. Caller frees *x and *agree. */
us_status us_cache_served_audits(us_cache *c, double **at, int **agree, size_t *n, us_err *err);
/* ---- Batch API batches (cache/batches.c) ---------------------------------------------------- */
typedef struct us_batch {
  char *id, *input_file_id, *status; /* as the API named them; status as last seen */
  int64_t n_requests;
  double created_at; /* epoch seconds */
} us_batch;

/* One request a batch carries: its key (the custom_id), the prompt it answers, which attempt it
 * is, and the canonical request (NULL, and prompt_id -1, in rows of batches recorded before
 * schema version 7). */
typedef struct us_batch_request {
  char key[65];
  int64_t prompt_id;
  int attempts;
  char *request;
} us_batch_request;

/* Records a batch the API has just created, with the keys of its requests, in one transaction
 * (or in the caller's, when one is open). keys may be NULL when n is 0 (a batch row to fill with
 * us_cache_batch_requests_add). */
us_status us_cache_batch_add(us_cache *c, const char *id, const char *input_file_id,
                             const char *status, const char *const *keys, size_t n, us_err *err);
/* Adds rows[0..n) to batch id (a key it already carries is left as it is) and counts them in its
 * n_requests, in one transaction (or in the caller's). */
us_status us_cache_batch_requests_add(us_cache *c, const char *id, const us_batch_request *rows,
                                      size_t n, us_err *err);
/* The row of batch id for key: *found false when the batch does not carry it. row->request is
 * the caller's to free. */
us_status us_cache_batch_request_get(us_cache *c, const char *id, const char *key,
                                     us_batch_request *row, bool *found, us_err *err);
/* The keys batch id carries, sorted, as one array of n 65-byte strings (caller frees *keys). */
us_status us_cache_batch_keys(us_cache *c, const char *id, char (**keys)[65], size_t *n,
                              us_err *err);
/* Whether a batch not collected yet (created, pending or draft) carries key. */
us_status us_cache_batch_key_open(us_cache *c, const char *key, bool *open, us_err *err);
/* The file of batch id (a draft) was uploaded: the row becomes new_id ("pending:<file id>")
 * with status "creating", its requests with it. */
us_status us_cache_batch_uploaded(us_cache *c, const char *id, const char *new_id,
                                  const char *input_file_id, us_err *err);
/* Batches whose results were not collected yet, oldest first. Caller frees with
 * us_batches_free. */
us_status us_cache_batches_open(us_cache *c, us_batch **out, size_t *n, us_err *err);
void us_batches_free(us_batch *b, size_t n);
/* Updates the status and request counts last seen. */
us_status us_cache_batch_status(us_cache *c, const char *id, const char *status, int64_t completed,
                                int64_t failed, us_err *err);
/* Marks a batch collected: its results are committed (answered of them, costing spent_usd, which
 * would have cost live_usd live). Call it in the transaction that commits the answers. */
us_status us_cache_batch_collected(us_cache *c, const char *id, const char *status,
                                   int64_t answered, double spent_usd, double live_usd,
                                   us_err *err);

/* Gives the batch row id the batch's real id (and status): the pending row written just before
 * the batch was created becomes that batch. */
us_status us_cache_batch_rename(us_cache *c, const char *id, const char *new_id, const char *status,
                                us_err *err);
/* Forgets a batch row and its requests (a pending row whose batch was never created). */
us_status us_cache_batch_delete(us_cache *c, const char *id, us_err *err);

typedef struct us_batch_totals {
  int64_t batches, open, requests, answered;
  double spent_usd, live_usd; /* saved = live_usd - spent_usd */
} us_batch_totals;
us_status us_cache_batch_totals(us_cache *c, us_batch_totals *t, us_err *err);

#endif
