/* The teacher client's policy: every uncached prompt becomes a job; jobs start as the free
 * slots, the rate limits and the dollar budget allow, are retried with backoff on transient
 * failures, and every answer is committed to the cache in the loop iteration it arrives in.
 * The transport (teacher_transport.c) moves the bytes; see distill/teacher_int.h. */
#define _XOPEN_SOURCE 700 /* strptime, for Retry-After dates */

#include "distill/teacher.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/utf8.h"
#include "distill/prompts.h"
#include "distill/request.h"
#include "distill/teacher_int.h"

#define BACKOFF_BASE_S 0.5
#define BACKOFF_CAP_S 30.0
#define RETRY_AFTER_CAP_S 600.0
/* Stop when this many transfers in a row, over at least this long, found no server. */
#define UNREACHABLE_STREAK 24
#define UNREACHABLE_SECONDS 10.0
#define PROGRESS_EVERY_S 0.25
#define INTERRUPT_GRACE_S 2.0
#define WAKE_MAX_S 0.1 /* the loop looks at the stop flag and the clock at least this often */

/* Upper bound on the prompt tokens of a request, from its canonical body. Every token of a
 * byte-level BPE (OpenAI's tiktoken, Llama 3, Qwen) or of a SentencePiece model with byte
 * fallback covers at least one byte of the text, so a message's tokens are at most the bytes of
 * its content. The body holds every content byte (JSON escaping only adds bytes), and per
 * message at least {"content":"","role":"user"} (29 bytes) of structure, which covers the
 * chat template's per-message tokens (OpenAI documents 3-4; open-model templates use about 5-10
 * header tokens). The fixed part covers the reply priming (3 for OpenAI) and templates that
 * inject a preamble (Llama 3.1 adds a ~25-token date block to the system message). */
#define PROMPT_BOUND_FIXED_TOKENS 64
double us__prompt_token_bound(size_t body_len) {
  return (double)body_len + PROMPT_BOUND_FIXED_TOKENS;
}

double us__request_worst_usd(const us_teacher_params *p, size_t body_len, double price_factor) {
  double in_price = p->price_input_per_mtok / 1e6 * price_factor;
  double out_price = p->price_output_per_mtok / 1e6 * price_factor;
  return us__prompt_token_bound(body_len) * in_price + p->max_tokens * out_price;
}

double us__spending_total(const us__spending *s) {
  return s->before + s->run + s->unanswered;
}

bool us__spending_admits(const us__spending *s, double worst_usd, double budget_usd) {
  return us__spending_total(s) + s->in_flight_worst + worst_usd <= budget_usd;
}

/* teacher.mode "batch": requests go through the Batch API (teacher_batch.c). */
static bool batch_mode(const us_teacher_params *p) {
  return p->mode && strcmp(p->mode, "batch") == 0;
}

/* What a request's price is multiplied by: the batch discount when every attempt of it goes
 * through batches; 1 when a retry may go live (the budget then counts the live price). */
static double worst_factor(const us_teacher_params *p) {
  bool retry_live = p->batch_retry && strcmp(p->batch_retry, "live") == 0;
  return batch_mode(p) && !retry_live ? p->price_batch_discount : 1.0;
}

/* Dry-run estimate of a message pair: ~4 characters per token (OpenAI's rule of thumb for
 * English), plus 4 tokens per message and 3 to prime the reply (OpenAI's cookbook count). */
static int64_t prompt_token_estimate(size_t chars) {
  return (int64_t)(chars + 3) / 4 + 2 * 4 + 3;
}

typedef struct job {
  struct job *next; /* the next fresh job, while this one waits in the fresh queue */
  int64_t prompt_id;
  char key[65];
  char *body; /* canonical request; freed once the job ends */
  size_t body_len;
  double worst_usd;     /* upper bound on what this request can cost */
  double bucket_tokens; /* what it counts against tokens_per_minute */
  double not_before;    /* monotonic time before which a retry may not start */
  int attempts;
  int batched; /* batch mode: 1 written to a batch, 2 joined an open batch that carries it; the
                * job leaves memory (its batch hands it back when it ends) */
} job;

/* The jobs of a pass held in memory: fresh ones (never sent) in prompt order, those in flight,
 * and those put back (retries, and jobs a stop dropped unanswered), each with the time it may
 * start again. The prompts are read from the workspace a window at a time (keyset pagination
 * by id) and only as the fresh queue runs low, so memory holds the requests in flight, the
 * retries and at most two windows of ready requests, never the whole workspace. In batch mode
 * a job leaves memory once it is in a batch (the workspace holds its request) and is made again
 * when its batch ends, so there too memory holds at most two windows and the retries. */
typedef struct job_queue {
  job *fresh_head, *fresh_tail; /* the fresh queue */
  size_t n_fresh;
  size_t n_open;   /* jobs in memory, neither answered nor recorded as failed */
  size_t max_open; /* no more jobs in memory than this */
  job **retry;     /* jobs put back; room for every job in memory (retry_cap >= n_open) */
  size_t n_retry, retry_cap;
  size_t window;    /* teacher.window: prompts read at a time */
  int64_t after_id; /* the last prompt id read */
  bool exhausted;   /* every prompt of the pass has been read */
  int64_t total;    /* prompts of the pass (include-filtered) */
  int64_t unread;   /* of which not read yet */
  int64_t jobs;     /* jobs created in the pass (each an uncached prompt) */
  int64_t pages;    /* windows read */
  size_t peak_open; /* the most jobs in memory at once */
} job_queue;

/* Why the loop stops starting requests. */
typedef struct stopping {
  bool interrupted, budget;
  double abort_at;  /* interrupted: when in-flight transfers are dropped */
  us_status fatal;  /* stops the run at once: auth, not found, unreachable, database */
  us_err fatal_err; /* its message, scrubbed of the key */
} stopping;

/* Why prompts failed in this run: the cause of each failure (its message without the "gave up
 * after N attempts: " prefix), counted by the part before any " (" detail, which for network
 * errors holds timings ("after 0 ms"); the first full message of each cause is kept to show. */
#define FAILURE_CAUSES 16
typedef struct failure_causes {
  char text[FAILURE_CAUSES][256];
  size_t key_len[FAILURE_CAUSES];
  int64_t count[FAILURE_CAUSES];
  int n;
} failure_causes;

static void causes_add(failure_causes *c, const char *message) {
  const char *p = message;
  if (strncmp(p, "gave up after ", 14) == 0) {
    const char *colon = strstr(p, ": ");
    if (colon) p = colon + 2;
  }
  char text[256];
  snprintf(text, sizeof text, "%s", p);
  const char *detail = strstr(text, " (");
  size_t key_len = detail ? (size_t)(detail - text) : strlen(text);
  for (int i = 0; i < c->n; i++)
    if (c->key_len[i] == key_len && memcmp(c->text[i], text, key_len) == 0) {
      c->count[i]++;
      return;
    }
  if (c->n == FAILURE_CAUSES) return; /* the first causes seen are enough to name the worst */
  memcpy(c->text[c->n], text, sizeof text);
  c->key_len[c->n] = key_len;
  c->count[c->n++] = 1;
}

/* The longest answer stored: what a classify label or a generate answer of teacher.max_tokens
 * tokens can need (16 bytes a token is generous for any tokeniser), at least 4 KiB. A longer
 * answer comes from a server that ignored max_tokens; it is cut there, counted and reported. */
#define ANSWER_CAP_MIN_BYTES 4096
#define ANSWER_CAP_BYTES_PER_TOKEN 16
static size_t answer_cap(const us_teacher_params *p) {
  size_t cap = (size_t)p->max_tokens * ANSWER_CAP_BYTES_PER_TOKEN;
  return cap > ANSWER_CAP_MIN_BYTES ? cap : ANSWER_CAP_MIN_BYTES;
}

/* Cuts s to at most cap bytes on a UTF-8 boundary; true if it was longer. */
static bool cut_text(char *s, size_t cap) {
  if (strlen(s) <= cap) return false;
  while (cap > 0 && US_UTF8_IS_CONTINUATION((unsigned char)s[cap])) cap--;
  s[cap] = '\0';
  return true;
}

typedef struct teacher {
  const us_task *task;
  const us_prompts_params *data;
  const us_teacher_params *params;
  bool chunks; /* self-instruct phase 1: the requests ask for questions about document chunks */
  us_cache *cache;
  const us_label_options *opt;
  us_label_stats *stats;
  failure_causes *causes; /* of the whole run (both passes) */
  double started, cpu_started, last_progress;

  job_queue queue;
  us__spending spend; /* the budget, by the rule in teacher_int.h */
  stopping stop;
  us__transport *transport; /* NULL until there is something to send */
  float *soft;              /* scratch: one soft distribution over task.labels */
  bool in_txn;              /* answers of this loop pass are in an open transaction */

  us__bucket rpm, tpm;      /* teacher.requests_per_minute, teacher.tokens_per_minute */
  double hold_until;        /* the server's x-ratelimit headers asked to pause new starts */
  us_rng rng;               /* backoff jitter */
  double prefix_tokens_sum; /* dry run: shared request prefixes, for the caching estimate */
  int unreachable_streak;   /* transfers in a row that found no server to talk to */
  double unreachable_since; /* when that streak began */
} teacher;

/* ---- small helpers ------------------------------------------------------------------- */

/* Puts a job that was taken from the queue back, to start again once j->not_before passes. */
static void put_back(job_queue *q, job *j) {
  US_ASSERT(q->n_retry < q->retry_cap);
  q->retry[q->n_retry++] = j;
}

/* Scrubs the API key from s[0..n) (the transport holds it; before it opens there is none). */
static void scrub_key(const teacher *t, char *s, size_t n) {
  us__transport_scrub(t->transport, s, n);
}

static void scrub_err(const teacher *t, us_err *err) {
  if (err) scrub_key(t, err->msg, strlen(err->msg));
}

/* "$1.2345" with enough digits for small budgets. */
static const char *money(char *buf, size_t n, double usd) {
  snprintf(buf, n, usd >= 100 ? "$%.2f" : "$%.4f", usd);
  return buf;
}

/* ---- retry timing ---------------------------------------------------------------------- */

/* A non-negative decimal number filling all of s (surrounding blanks allowed); -1 otherwise. */
static double plain_number(const char *s) {
  while (*s == ' ' || *s == '\t') s++;
  if (!isdigit((unsigned char)*s)) return -1;
  char *end;
  double v = strtod(s, &end);
  while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
  if (*end || !isfinite(v) || v < 0) return -1;
  return v;
}

/* An HTTP date in any of the three forms RFC 9110 accepts, as epoch seconds; -1 otherwise. */
static double http_date(const char *s) {
  static const char *const formats[] = {
      "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
      "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850:     Sunday, 06-Nov-94 08:49:37 GMT */
      "%a %b %e %H:%M:%S %Y",      /* asctime:     Sun Nov  6 08:49:37 1994 */
  };
  while (*s == ' ' || *s == '\t') s++;
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, formats[i], &tm);
    if (!end) continue;
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
    if (*end) continue;
    return (double)timegm(&tm);
  }
  return -1;
}

double us_retry_after_parse(const char *retry_after, const char *retry_after_ms, double now_epoch) {
  if (retry_after_ms && *retry_after_ms) {
    double ms = plain_number(retry_after_ms);
    if (ms >= 0) return ms / 1000.0;
  }
  if (!retry_after || !*retry_after) return -1;
  double s = plain_number(retry_after);
  if (s >= 0) return s;
  double when = http_date(retry_after);
  if (when < 0) return -1;
  return when > now_epoch ? when - now_epoch : 0;
}

double us_backoff_delay(int attempt, double base_s, double cap_s, double u) {
  if (attempt < 0) attempt = 0;
  if (!(u >= 0)) u = 0;
  if (u >= 1) u = nextafter(1.0, 0.0);
  if (!(base_s > 0) || !(cap_s > 0)) return 0;
  double ceiling = attempt >= 60 ? cap_s : ldexp(base_s, attempt);
  if (ceiling > cap_s) ceiling = cap_s;
  return u * ceiling;
}

/* ---- the prompts and what is already cached ------------------------------------------- */

/* A response body read once: its content (NULL when the body does not parse), usage, and the
 * soft distribution, which lives in the teacher's scratch array t->soft. */
typedef struct answer {
  char *content;
  int prompt_tokens, completion_tokens;
  bool has_soft;
} answer;

static us_status answer_parse(teacher *t, const char *body, answer *a, us_err *err) {
  bool classify = t->task->type == US_TASK_CLASSIFY;
  a->has_soft = false;
  return us_response_parse(body, classify ? t->task->labels : NULL,
                           classify ? t->task->n_labels : 0, &a->content, &a->prompt_tokens,
                           &a->completion_tokens, classify ? t->soft : NULL,
                           classify ? &a->has_soft : NULL, err);
}

/* Stores the target an answer means for prompt_id: the mapped label (and soft distribution)
 * for classify, the text for generate. A body that did not parse (a->content NULL) is kept as
 * an unparsed target with the raw body as its text. */
static us_status target_store(teacher *t, const char *key, int64_t prompt_id, const char *body,
                              const answer *a, us_err *err) {
  us_target target;
  memset(&target, 0, sizeof target);
  memcpy(target.key, key, 65);
  target.prompt_id = prompt_id;
  target.text = a->content ? a->content : (char *)body;
  target.status = a->content ? US_TARGET_OK : US_TARGET_UNPARSED;
  char *structured = NULL;
  if (a->content && t->task->type == US_TASK_CLASSIFY) {
    /* teacher.structured: the answer is {"answer": label}; a server that ignored the schema
     * answered in text, which goes through the same rules */
    if (t->params->structured) structured = us_answer_structured(a->content);
    int k = us_answer_map_label(structured ? structured : a->content, t->task->labels,
                                t->task->n_labels);
    target.label = k >= 0 ? t->task->labels[k] : NULL;
    target.status = k >= 0 ? US_TARGET_OK : US_TARGET_UNPARSED;
    target.soft = a->has_soft ? t->soft : NULL;
    target.n_soft = a->has_soft ? t->task->n_labels : 0;
  }
  if (target.status == US_TARGET_UNPARSED) t->stats->unparsed++;
  /* mapped on the whole answer; stored no longer than the task can need */
  char *cut = NULL;
  size_t cap = answer_cap(t->params);
  if (strlen(target.text) > cap && (cut = malloc(cap + 1)) != NULL) {
    memcpy(cut, target.text, cap);
    cut[cap] = '\0';
    cut_text(cut, cap);
    target.text = cut;
  }
  us_status st = us_cache_target_put(t->cache, &target, err);
  free(structured);
  free(cut);
  return st;
}

/* The body stored for an answer longer than answer_cap: the same response with the content cut
 * to the cap (so the cached call still parses and maps as before); NULL when no cut is needed
 * or the body cannot be rebuilt. Counts the cut in stats. */
static char *capped_body(teacher *t, const char *body, const answer *a) {
  size_t cap = answer_cap(t->params);
  if (!a->content || strlen(a->content) <= cap) return NULL;
  t->stats->capped++;
  cJSON *root = cJSON_Parse(body);
  cJSON *msg = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0), "message");
  char *cut = malloc(cap + 1), *out = NULL;
  if (cut && cJSON_IsObject(msg)) {
    memcpy(cut, a->content, cap);
    cut[cap] = '\0';
    cut_text(cut, cap);
    cJSON *text = cJSON_CreateString(cut);
    if (text && cJSON_ReplaceItemInObjectCaseSensitive(msg, "content", text)) {
      char *printed = cJSON_PrintUnformatted(root);
      out = printed ? us_strdup(printed) : NULL;
      cJSON_free(printed);
    } else {
      cJSON_Delete(text);
    }
  }
  free(cut);
  cJSON_Delete(root);
  return out;
}

static us_status put_target(teacher *t, const char *key, int64_t prompt_id, const char *body,
                            us_err *err) {
  answer a;
  answer_parse(t, body, &a, NULL);
  us_status st = target_store(t, key, prompt_id, body, &a, err);
  free(a.content);
  return st;
}

static us_status ensure_cached_target(teacher *t, const char *key, int64_t prompt_id, us_err *err) {
  us_target existing;
  bool found = false;
  us_status st = us_cache_target_get(t->cache, key, &existing, &found, err);
  if (st) return st;
  if (found) {
    if (existing.status == US_TARGET_UNPARSED) t->stats->unparsed++;
    us_target_free_fields(&existing);
    return US_OK;
  }
  us_call call;
  st = us_cache_call_get(t->cache, key, &call, &found, err);
  if (st || !found) return st;
  st = put_target(t, key, prompt_id, call.response, err);
  us_call_free_fields(&call);
  return st;
}

static void report_progress(teacher *t, double now, bool final);

/* Dry-run prompt tokens of one request: the rendered messages' characters. A chunk's request
 * (or a question's, which carries its chunk) counts its template around the chunk too. */
static us_status dry_run_estimate(teacher *t, const us_prompt *p, int64_t *est, us_err *err) {
  char *system = NULL, *user = NULL;
  us_status st = us_request_render(t->task, p->text, &system, &user, err);
  if (st) return st;
  size_t chars = strlen(system) + strlen(user);
  /* the shared prefix: what comes before the prompt text (providers cache prefixes only) */
  const char *in_system = *p->text ? strstr(system, p->text) : NULL;
  const char *in_user = *p->text ? strstr(user, p->text) : NULL;
  size_t prefix = in_system ? (size_t)(in_system - system)
                            : strlen(system) + (in_user ? (size_t)(in_user - user) : 0);
  if (t->chunks || p->context) prefix = strlen(system);
  t->prefix_tokens_sum += prefix ? (double)prompt_token_estimate(prefix) : 0;
  if (t->chunks || p->context)
    chars = strlen(system) +
            strlen(t->chunks ? t->data->question_template : t->data->answer_template) +
            strlen(p->text) + (p->context ? strlen(p->context) : 0);
  free(system);
  free(user);
  *est = prompt_token_estimate(chars);
  return US_OK;
}

/* Dry run: the providers' automatic prompt caching (OpenAI's rules: a shared prefix of at least
 * 1,024 tokens, reused in steps of 128) on every request after the first, priced at
 * teacher.price.cached_input_per_mtok instead of the input price. */
static void cache_estimate(teacher *t) {
  us_label_stats *s = t->stats;
  int64_t n = t->queue.jobs;
  int64_t prefix = (int64_t)(t->prefix_tokens_sum / (double)n);
  int64_t cacheable = prefix >= 1024 ? 1024 + (prefix - 1024) / 128 * 128 : 0;
  double per_token = (t->params->price_input_per_mtok - us_teacher_cached_price(t->params)) / 1e6;
  s->est_prefix_tokens += prefix;
  s->est_cached_tokens += cacheable * (n - 1);
  double saving = (double)(cacheable * (n - 1)) * per_token;
  s->est_cache_saving_usd += saving;
  s->est_cost_low_usd -= saving;
  if (s->est_cost_low_usd < 0) s->est_cost_low_usd = 0;
}

/* Whether the pass takes prompt p (active labelling labels only the prompts it asks for). */
static bool pass_takes(const teacher *t, const us_prompt *p) {
  return t->chunks || !t->opt->include || t->opt->include(t->opt->include_user, p);
}

/* Counts the prompts (or chunks) of the pass into stats->total and queue.unread: a COUNT, or,
 * when only some prompts are asked for, one read of the workspace a window at a time. */
static us_status count_pass(teacher *t, us_err *err) {
  int64_t n = 0;
  us_status st = US_OK;
  if (t->chunks) {
    us_cache_stats cs;
    st = us_cache_stats_get(t->cache, &cs, err);
    n = cs.chunks;
  } else if (!t->opt->include) {
    st = us_cache_prompts_count(t->cache, -1, &n, err);
  } else {
    for (int64_t after = 0;;) {
      us_prompt *page = NULL;
      size_t got = 0;
      st = us_cache_prompts_page(t->cache, US_PROMPT_KIND_PROMPT, after, t->queue.window, &page,
                                 &got, err);
      for (size_t i = 0; !st && i < got; i++) n += pass_takes(t, &page[i]);
      if (got) after = page[got - 1].id;
      us_prompts_free(page, got);
      if (st || got == 0) break;
    }
  }
  if (st) return st;
  t->stats->total += n;
  t->queue.total = t->queue.unread = n;
  return US_OK;
}

/* Room in the retry array for one more job in memory: every job in memory may be put back at
 * once. */
static bool reserve_retry(job_queue *q) {
  if (q->n_open < q->retry_cap) return true;
  size_t cap = q->retry_cap ? 2 * q->retry_cap : 256;
  job **grown = realloc(q->retry, cap * sizeof *grown);
  if (!grown) return false;
  q->retry = grown;
  q->retry_cap = cap;
  return true;
}

/* One prompt read from the workspace: a cached request gets its target checked; the rest
 * becomes a fresh job (or, for a dry run, an estimate and nothing kept). */
static us_status plan_one(teacher *t, const us_prompt *p, us_err *err) {
  char *body = NULL, key[65];
  us_status st = t->chunks ? us_request_for_chunk(t->data, t->params, p->text, &body, key, err)
                           : us_request_for_prompt(t->task, t->data, t->params, p, &body, key, err);
  if (st) {
    us_err_prefix(err, "prompt %lld (%s)", (long long)p->id, p->source ? p->source : "?");
    return st;
  }
  bool cached = false;
  st = us_cache_call_exists(t->cache, key, &cached, err);
  if (!st && cached) st = ensure_cached_target(t, key, p->id, err);
  if (st || cached) {
    if (!st) t->stats->cached++;
    free(body);
    return st;
  }
  size_t body_len = strlen(body);
  double worst = us__request_worst_usd(t->params, body_len, worst_factor(t->params));
  t->queue.jobs++;
  if (t->opt->dry_run) {
    free(body);
    int64_t est = 0;
    st = dry_run_estimate(t, p, &est, err);
    if (st) return st;
    double in_price = t->params->price_input_per_mtok / 1e6 * worst_factor(t->params);
    double out_price = t->params->price_output_per_mtok / 1e6 * worst_factor(t->params);
    int typical_completion = t->task->type == US_TASK_CLASSIFY
                                 ? (t->params->max_tokens < 3 ? t->params->max_tokens : 3)
                                 : t->params->max_tokens / 4;
    t->stats->est_prompt_tokens += est;
    t->stats->est_completion_tokens_max += t->params->max_tokens;
    t->stats->est_cost_low_usd += (double)est * in_price + typical_completion * out_price;
    t->stats->est_cost_high_usd += worst;
    return US_OK;
  }
  job_queue *q = &t->queue;
  if (!reserve_retry(q)) {
    free(body);
    return us_err_set(err, US_ERR_NOMEM, "out of memory queueing %zu requests", q->n_open + 1);
  }
  job *j = calloc(1, sizeof *j);
  if (!j) {
    free(body);
    return us_err_set(err, US_ERR_NOMEM, "out of memory queueing %zu requests", q->n_open + 1);
  }
  j->prompt_id = p->id;
  memcpy(j->key, key, 65);
  j->body = body;
  j->body_len = body_len;
  j->worst_usd = worst;
  j->bucket_tokens = (double)body_len / 4 + t->params->max_tokens;
  if (q->fresh_tail)
    q->fresh_tail->next = j;
  else
    q->fresh_head = j;
  q->fresh_tail = j;
  q->n_fresh++;
  q->n_open++;
  if (q->n_open > q->peak_open) q->peak_open = q->n_open;
  return US_OK;
}

/* Whether the fresh queue should be topped up: it is under half a window (or empty) and there
 * is room for more jobs in memory. A dry run reads everything. */
static bool wants_refill(const teacher *t) {
  const job_queue *q = &t->queue;
  if (q->exhausted) return false;
  if (t->opt->dry_run) return true;
  return (q->n_fresh == 0 || q->n_fresh * 2 < q->window) && q->n_open < q->max_open;
}

/* Reads windows of prompts (id > after_id, in id order) until the fresh queue holds half a
 * window, memory holds max_open jobs, or the pass has read everything. A window of cached
 * prompts (a resumed run) is passed over in the same call, reporting progress as it goes. */
static us_status refill(teacher *t, us_err *err) {
  job_queue *q = &t->queue;
  while (wants_refill(t)) {
    if (t->opt->stop && *t->opt->stop) return US_OK; /* the loop sees it and stops */
    size_t room = t->opt->dry_run ? q->window : q->max_open - q->n_open;
    size_t limit = room < q->window ? room : q->window;
    us_prompt *page = NULL;
    size_t got = 0;
    us_status st =
        us_cache_prompts_page(t->cache, t->chunks ? US_PROMPT_KIND_CHUNK : US_PROMPT_KIND_PROMPT,
                              q->after_id, limit, &page, &got, err);
    for (size_t i = 0; !st && i < got; i++) {
      q->after_id = page[i].id;
      if (!pass_takes(t, &page[i])) continue;
      q->unread--;
      st = plan_one(t, &page[i], err);
    }
    us_prompts_free(page, got);
    if (st) return st;
    q->pages++;
    if (got < limit) q->exhausted = true;
    report_progress(t, us_now(), false); /* a large resumed workspace takes a while */
  }
  return US_OK;
}

/* ---- committing answers ---------------------------------------------------------------- */

static us_status txn_begin(teacher *t, us_err *err) {
  if (t->in_txn) return US_OK;
  us_status st = us_cache_begin(t->cache, err);
  if (!st) t->in_txn = true;
  return st;
}

/* Stops the run at once (nothing new starts, what is in flight is dropped) with st and the
 * message, scrubbed of the key; the first stop wins. j, when given, was taken from the queue
 * and not answered: it goes back, so it counts as left for the next run. */
static void stop_with(teacher *t, job *j, us_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void stop_with(teacher *t, job *j, us_status st, const char *fmt, ...) {
  if (j) put_back(&t->queue, j);
  if (t->stop.fatal) return;
  char msg[US_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  us_err_set(&t->stop.fatal_err, st, "%s", msg);
  t->stop.fatal = st;
  scrub_err(t, &t->stop.fatal_err);
}

/* The job is answered or recorded as failed: nothing more to send; j is freed. */
static void job_end(teacher *t, job *j) {
  free(j->body);
  free(j);
  t->queue.n_open--;
}

static void record_failure(teacher *t, job *j, int http_status, const char *message) {
  us_err err = {0};
  char msg[512];
  snprintf(msg, sizeof msg, "%s", message);
  scrub_key(t, msg, strlen(msg));
  us_status st = txn_begin(t, &err);
  if (!st)
    st = us_cache_failure_put(t->cache, j->key, j->prompt_id, http_status, msg, j->attempts, &err);
  if (st) {
    stop_with(t, j, st, "%s", err.msg); /* not recorded: left for the next run */
    return;
  }
  t->stats->failed++;
  causes_add(t->causes, msg);
  us_log(US_LOG_DEBUG, "prompt %lld failed after %d attempt(s): %s", (long long)j->prompt_id,
         j->attempts, msg);
  job_end(t, j);
}

/* A request that may have been billed without an answer: its worst case counts against the
 * budget from now on, in this run and every later one (the row is in the workspace). */
static void may_be_billed(teacher *t, job *j, const char *why) {
  us_err err = {0};
  char reason[256];
  snprintf(reason, sizeof reason, "%s", why);
  scrub_key(t, reason, strlen(reason));
  us_status st = txn_begin(t, &err);
  if (!st) st = us_cache_unanswered_put(t->cache, j->key, j->prompt_id, j->worst_usd, reason, &err);
  if (st) stop_with(t, NULL, st, "%s", err.msg);
  t->spend.unanswered += j->worst_usd; /* counted even if the row could not be stored */
  t->stats->unanswered++;
  t->stats->unanswered_usd += j->worst_usd;
}

/* A 200 with a well-formed body: store the call (cost from its usage, by kind), then its
 * target. */
static void record_answer(teacher *t, job *j, const us__transfer_result *r, const answer *a,
                          double now) {
  us_usage u;
  us_response_usage(r->body, &u);
  /* no usage in the body: charge the upper bounds, so the budget can only be overstated */
  if (u.prompt_tokens < 0) {
    u.prompt_tokens = (int)us__prompt_token_bound(j->body_len);
    u.cached_tokens = 0;
  }
  if (u.completion_tokens < 0) {
    u.completion_tokens = t->params->max_tokens;
    u.reasoning_tokens = 0;
  }
  int prompt_tokens = u.prompt_tokens, completion_tokens = u.completion_tokens;
  us_call_cost parts;
  us_teacher_call_cost(t->params, &u, &parts);
  if (r->batch) { /* every kind at the batch discount */
    double d = t->params->price_batch_discount;
    parts.input_usd *= d, parts.cached_usd *= d, parts.output_usd *= d, parts.reasoning_usd *= d;
    parts.total_usd *= d;
  }
  double cost = parts.total_usd;
  us_call call;
  memset(&call, 0, sizeof call);
  memcpy(call.key, j->key, 65);
  char *capped = capped_body(t, r->body, a);
  call.request = j->body;
  call.response = capped ? capped : r->body;
  call.http_status = 200;
  call.prompt_tokens = prompt_tokens;
  call.completion_tokens = completion_tokens;
  call.cost_usd = cost;
  call.latency_ms = (now - r->started) * 1000;
  call.attempts = j->attempts;
  call.created_at = us_epoch();
  us_err err = {0};
  bool existed = false;
  us_status st = txn_begin(t, &err);
  if (!st) st = us_cache_call_put(t->cache, &call, &existed, &err);
  if (!st && !existed) {
    us_call_kinds kinds = {u.cached_tokens,  u.reasoning_tokens, parts.input_usd,
                           parts.cached_usd, parts.output_usd,   parts.reasoning_usd};
    st = us_cache_call_kinds_put(t->cache, j->key, &kinds, &err);
  }
  if (!st) st = target_store(t, j->key, j->prompt_id, r->body, a, &err);
  free(capped);
  if (st) {
    stop_with(t, j, st, "%s", err.msg); /* not stored: left for the next run */
    return;
  }
  /* paid either way, even if another process stored the same key first */
  t->spend.run += cost;
  t->stats->spent_usd += cost;
  t->stats->cached_tokens += u.cached_tokens;
  t->stats->reasoning_tokens += u.reasoning_tokens;
  t->stats->done++;
  job_end(t, j);
}

/* Network error, timeout, 408/409/429/5xx or a malformed 200: retry later, or give up. */
static void retry_or_fail(teacher *t, job *j, const us__resp_headers *h, int http_status,
                          const char *why, double now) {
  if (j->attempts > t->params->max_retries) {
    char msg[512];
    snprintf(msg, sizeof msg, "gave up after %d attempts: %s", j->attempts, why);
    record_failure(t, j, http_status, msg);
    return;
  }
  double wait = us_retry_after_parse(h->retry_after, h->retry_after_ms, us_epoch());
  if (wait < 0)
    wait =
        us_backoff_delay(j->attempts - 1, BACKOFF_BASE_S, BACKOFF_CAP_S, us_rng_uniform(&t->rng));
  if (wait > RETRY_AFTER_CAP_S) wait = RETRY_AFTER_CAP_S;
  j->not_before = now + wait;
  put_back(&t->queue, j);
  t->stats->retries++;
}

/* The server's message from an error body ({"error":{"message":...}}), else the body's start. */
static void server_message(const char *body, char *out, size_t n) {
  us_err e = {0};
  char *content = NULL;
  int pt, ct;
  if (!body || !*body) {
    snprintf(out, n, "(empty body)");
    return;
  }
  us_response_parse(body, NULL, 0, &content, &pt, &ct, NULL, NULL, &e);
  free(content);
  const char *prefix = "response carries an error: ";
  if (strncmp(e.msg, prefix, strlen(prefix)) == 0)
    snprintf(out, n, "%.300s", e.msg + strlen(prefix));
  else
    snprintf(out, n, "%.300s", body);
}

/* Pauses new starts when the server says its own limits are nearly used up: fewer requests
 * left than we keep in flight (or under 5% of the limit), or fewer tokens than a full round of
 * in-flight requests could use; until the server's reset time (1 s if it gave none). */
static void watch_server_limits(teacher *t, const us__resp_headers *h, const job *j, double now) {
  double conc = t->params->concurrency;
  if (h->remaining_requests >= 0 &&
      (h->remaining_requests < conc ||
       (h->limit_requests > 0 && h->remaining_requests < 0.05 * h->limit_requests))) {
    double until = now + (h->reset_requests_s >= 0 ? h->reset_requests_s : 1.0);
    if (until > t->hold_until) t->hold_until = until;
  }
  if (h->remaining_tokens >= 0 &&
      (h->remaining_tokens < conc * j->bucket_tokens ||
       (h->limit_tokens > 0 && h->remaining_tokens < 0.05 * h->limit_tokens))) {
    double until = now + (h->reset_tokens_s >= 0 ? h->reset_tokens_s : 1.0);
    if (until > t->hold_until) t->hold_until = until;
  }
}

/* What to do with a finished transfer: store the answer, retry, record a failure, or stop. */
static void on_done(void *user, const us__transfer_result *r, double now) {
  teacher *t = user;
  job *j = r->job;
  t->spend.in_flight_worst -= j->worst_usd;
  if (us__transport_in_flight(t->transport) == 0) t->spend.in_flight_worst = 0; /* no float drift */
  const char *url = us__transport_safe_url(t->transport);
  if (!r->answered) {
    if (r->too_large) { /* asking again would pay for the same flood: record it */
      record_failure(t, j, (int)r->http_status, r->error);
      return;
    }
    if (r->unreachable) {
      /* A server that refuses or does not exist would only burn every prompt's retries:
       * after a run of such failures with no answer between them, stop and say so. */
      if (t->unreachable_streak++ == 0) t->unreachable_since = now;
      if (t->unreachable_streak >= UNREACHABLE_STREAK &&
          now - t->unreachable_since >= UNREACHABLE_SECONDS) {
        stop_with(t, j, US_ERR_HTTP,
                  "cannot reach the teacher at %s: %s (%d attempts in a row); every answer so "
                  "far is saved: check teacher.base_url and that the server is up, then run "
                  "again",
                  url, r->error, t->unreachable_streak);
        return;
      }
    }
    /* the server had the whole request: it may have answered, and billed, after we gave up */
    if (!r->unreachable && r->body_sent) may_be_billed(t, j, r->error);
    retry_or_fail(t, j, r->headers, 0, r->error, now);
    return;
  }
  t->unreachable_streak = 0;
  watch_server_limits(t, r->headers, j, now);
  long code = r->http_status;
  if (code == 200) {
    us_err err = {0};
    answer a;
    us_status parsed = answer_parse(t, r->body, &a, &err);
    if (parsed) may_be_billed(t, j, err.msg); /* a 200 is billed even if its body was unread */
    if (parsed == US_ERR_NOMEM) /* ours, not the teacher's: asking again would only pay again */
      stop_with(t, j, US_ERR_NOMEM, "%s", err.msg);
    else if (parsed)
      retry_or_fail(t, j, r->headers, 200, err.msg, now);
    else
      record_answer(t, j, r, &a, now);
    free(a.content);
    return;
  }
  char msg[512];
  server_message(r->body, msg, sizeof msg);
  scrub_key(t, msg, strlen(msg));
  const char *env = t->params->api_key_env;
  if ((code == 401 || code == 403) && us__transport_has_key(t->transport)) {
    stop_with(t, j, US_ERR_AUTH, "the key in $%s was rejected (HTTP %ld) by %s: %s", env, code, url,
              msg);
    return;
  }
  if (code == 401 || code == 403) {
    stop_with(t, j, US_ERR_AUTH,
              "no key was sent ($%s is unset or empty) and %s answered HTTP %ld: %s", env, url,
              code, msg);
    return;
  }
  if (code == 404) {
    stop_with(t, j, US_ERR_NOT_FOUND,
              "%s answered HTTP 404 for model \"%s\" (%s): check teacher.base_url and "
              "teacher.model",
              url, t->params->model, msg);
    return;
  }
  char why[600];
  snprintf(why, sizeof why, "HTTP %ld: %s", code, msg);
  if (code == 408 || code == 409 || code == 429 || code >= 500)
    retry_or_fail(t, j, r->headers, (int)code, why, now);
  else
    record_failure(t, j, (int)code, why);
}

/* Commits what this loop pass wrote. */
static void commit_pass(teacher *t) {
  if (t->in_txn) {
    us_err err = {0};
    t->in_txn = false;
    us_status st = us_cache_commit(t->cache, &err);
    if (st) stop_with(t, NULL, st, "%s", err.msg);
  }
}

/* Handles every finished transfer; the answers of one pass are committed together. */
static void drain(teacher *t) {
  us__transport_collect(t->transport, on_done, t);
  commit_pass(t);
}

/* ---- starting requests ----------------------------------------------------------------- */

/* The next job allowed to start by its own timing: a retry whose wait is over, else the next
 * fresh one. *wake gets the time until a waiting retry comes due when there is none. */
static job *next_job(teacher *t, double now, double *wake, size_t *retry_pos) {
  for (size_t i = 0; i < t->queue.n_retry; i++) {
    job *j = t->queue.retry[i];
    if (j->not_before <= now) {
      *retry_pos = i;
      return j;
    }
    if (j->not_before - now < *wake) *wake = j->not_before - now;
  }
  *retry_pos = (size_t)-1;
  return t->queue.fresh_head;
}

/* Counted before the transport takes the job: a batch records its attempt as it takes it. */
static us_status start(teacher *t, job *j, double now, us_err *err) {
  j->attempts++;
  us_status st = us__transport_start(t->transport, j, j->body, j->body_len, now, err);
  if (st) {
    j->attempts--;
    j->batched = 0;
    return st;
  }
  t->spend.in_flight_worst += j->worst_usd;
  us__bucket_take(&t->rpm, 1);
  us__bucket_take(&t->tpm, j->bucket_tokens);
  t->stats->requests++;
  return US_OK;
}

/* Batch mode: a job the batcher took leaves memory. One that joined an open batch sent nothing,
 * and its worst case is counted by whoever wrote that batch's row. */
static void batched_release(teacher *t, job *j) {
  if (j->batched == 2) {
    t->spend.in_flight_worst -= j->worst_usd;
    t->stats->requests--;
  }
  free(j->body);
  free(j);
  t->queue.n_open--;
}

/* Starts as many requests as the free slots, the rate limits and the budget allow. Returns the
 * seconds until something may change (a retry due, a bucket refilled, a hold over). */
static double start_ready(teacher *t, double now) {
  double wake = 1.0;
  if (wants_refill(t)) { /* e.g. every job in memory ended without a new one starting */
    us_err err = {0};
    us_status st = refill(t, &err);
    if (st) {
      stop_with(t, NULL, st, "%s", err.msg);
      return wake;
    }
  }
  while (!us__transport_full(t->transport)) {
    size_t pos;
    job *j = next_job(t, now, &wake, &pos);
    if (!j) break;
    if (now < t->hold_until) {
      if (t->hold_until - now < wake) wake = t->hold_until - now;
      break;
    }
    double w = us__bucket_wait(&t->rpm, 1, now);
    double wt = us__bucket_wait(&t->tpm, j->bucket_tokens, now);
    if (wt > w) w = wt;
    if (w > 0) {
      if (w < wake) wake = w;
      break;
    }
    if (!us__spending_admits(&t->spend, j->worst_usd, t->params->budget_usd)) {
      /* in-flight requests usually cost less than their worst case: wait for them */
      if (us__transport_in_flight(t->transport) == 0) t->stop.budget = true;
      break;
    }
    us_err err = {0};
    if (start(t, j, now, &err)) {
      stop_with(t, NULL, US_ERR_HTTP, "%s", err.msg); /* j stays queued: left */
      break;
    }
    job_queue *q = &t->queue;
    if (pos != (size_t)-1) {
      q->retry[pos] = q->retry[--q->n_retry];
    } else {
      q->fresh_head = j->next;
      if (!q->fresh_head) q->fresh_tail = NULL;
      j->next = NULL;
      q->n_fresh--;
    }
    if (j->batched) batched_release(t, j);
    if (wants_refill(t)) { /* keep half a window ready behind the requests in flight */
      us_err err2 = {0};
      us_status st = refill(t, &err2);
      if (st) {
        stop_with(t, NULL, st, "%s", err2.msg);
        break;
      }
    }
  }
  return wake;
}

/* ---- batch mode: jobs leave memory in a batch and come back when it ends ------------------ */

static void batch_taken(void *user, void *job_ptr, bool joined, us_batch_request *row) {
  (void)user;
  job *j = job_ptr;
  j->batched = joined ? 2 : 1;
  row->prompt_id = j->prompt_id;
  row->attempts = j->attempts;
}

static void *batch_revive(void *user, const us_batch_request *row, bool counted) {
  teacher *t = user;
  job_queue *q = &t->queue;
  if (!reserve_retry(q)) return NULL;
  job *j = calloc(1, sizeof *j);
  /* a row recorded before schema 7 has no request: the answer is stored without it */
  char *body = strdup(row->request ? row->request : "");
  if (!j || !body) {
    free(j);
    free(body);
    return NULL;
  }
  j->prompt_id = row->prompt_id;
  memcpy(j->key, row->key, 65);
  j->body = body;
  j->body_len = strlen(body);
  j->attempts = row->attempts > 0 ? row->attempts : 1;
  j->worst_usd = us__request_worst_usd(t->params, j->body_len, worst_factor(t->params));
  j->bucket_tokens = (double)j->body_len / 4 + t->params->max_tokens;
  /* a batch of an earlier run: its worst case was never counted in this run's sum */
  if (!counted) t->spend.in_flight_worst += j->worst_usd;
  q->n_open++;
  if (q->n_open > q->peak_open) q->peak_open = q->n_open;
  return j;
}

/* ---- the loop ------------------------------------------------------------------------ */

static void report_progress(teacher *t, double now, bool final) {
  if (!final && (!t->opt->progress || now - t->last_progress < PROGRESS_EVERY_S)) return;
  us_label_stats *s = t->stats;
  s->left = (int64_t)t->queue.n_open + (t->queue.unread > 0 ? t->queue.unread : 0);
  if (t->transport && batch_mode(t->params)) /* requests in batches, not in memory */
    s->left += us__transport_in_flight(t->transport);
  s->spent_total_usd = t->spend.before + t->spend.run;
  s->unanswered_total = t->spend.unanswered_before + s->unanswered;
  s->unanswered_total_usd = t->spend.unanswered;
  s->elapsed_s = now - t->started;
  s->cpu_s = us_cpu_time() - t->cpu_started; /* a system call: not on every pass */
  t->last_progress = now;
  if (!t->opt->progress) return;
  t->opt->progress(t->opt->progress_user, s);
}

/* A transfer dropped unanswered: its job goes back in the queue, left for the next run. Its
 * body may have reached the server, which bills it either way. */
static void requeue(void *user, void *dropped) {
  teacher *t = user;
  job *j = dropped;
  may_be_billed(t, j, "dropped in flight (stopped)");
  put_back(&t->queue, j);
}

static void abort_in_flight(teacher *t) {
  us__transport_abort(t->transport, requeue, t);
  t->spend.in_flight_worst = 0;
  commit_pass(t);
}

/* The transfer loop: start what may start, move the transfers, take in what finished. */
static void run_loop(teacher *t) {
  for (;;) {
    double now = us_now();
    if (t->opt->stop && *t->opt->stop && !t->stop.interrupted) {
      t->stop.interrupted = true;
      t->stop.abort_at = now + INTERRUPT_GRACE_S;
    }
    int in_flight = us__transport_in_flight(t->transport);
    if (t->stop.interrupted && in_flight && now >= t->stop.abort_at) abort_in_flight(t);
    double wake = WAKE_MAX_S;
    if (!t->stop.interrupted && !t->stop.budget && !t->stop.fatal) {
      double w = start_ready(t, now);
      if (w < wake) wake = w;
    }
    bool nothing_to_start = t->stop.interrupted || t->stop.budget || t->stop.fatal ||
                            (t->queue.n_open == 0 && t->queue.exhausted);
    if (us__transport_in_flight(t->transport) == 0 && nothing_to_start) break;
    us__transport_wait(t->transport, wake);
    drain(t);
    if (t->stop.fatal) abort_in_flight(t);
    report_progress(t, us_now(), false);
  }
}

/* ---- entry point ----------------------------------------------------------------------- */

void us_label_options_defaults(us_label_options *o) {
  memset(o, 0, sizeof *o);
}

static void teacher_free(teacher *t) {
  /* the transport first: in-flight jobs are reachable only through the queue from here on */
  us__transport_close(t->transport);
  job_queue *q = &t->queue;
  for (size_t i = 0; i < q->n_retry; i++) {
    free(q->retry[i]->body);
    free(q->retry[i]);
  }
  for (job *j = q->fresh_head, *next; j; j = next) {
    next = j->next;
    free(j->body);
    free(j);
  }
  free(q->retry);
  free(t->soft);
}

static us_status finish(teacher *t, us_err *err) {
  char spent[32], budget[32];
  report_progress(t, us_now(), true);
  int64_t left = t->stats->left;
  if (t->stop.fatal) {
    *err = t->stop.fatal_err;
    return t->stop.fatal;
  }
  if (t->stop.budget && left > 0 && t->spend.unanswered > 0) {
    char worst[32];
    return us_err_set(err, US_ERR_BUDGET,
                      "budget reached: %s of %s spent, plus up to %s for requests that may have "
                      "been billed without an answer; %lld prompts left; "
                      "raise teacher.budget_usd and run again",
                      money(spent, sizeof spent, t->spend.before + t->spend.run),
                      money(budget, sizeof budget, t->params->budget_usd),
                      money(worst, sizeof worst, t->spend.unanswered), (long long)left);
  }
  if (t->stop.budget && left > 0)
    return us_err_set(err, US_ERR_BUDGET,
                      "budget reached: %s of %s spent; %lld prompts left; "
                      "raise teacher.budget_usd and run again",
                      money(spent, sizeof spent, t->spend.before + t->spend.run),
                      money(budget, sizeof budget, t->params->budget_usd), (long long)left);
  if (t->stop.interrupted && left > 0)
    return us_err_set(err, US_ERR_INTERRUPTED,
                      "interrupted: %lld prompts left; every answer so "
                      "far is saved, run again to resume",
                      (long long)left);
  return US_OK;
}

/* Adds this run's cache hits to the workspace's running total (result "label_totals"), which
 * the report turns into what the cache saved. Best effort: the answers are already safe. */
static void record_cache_hits(us_cache *cache, int64_t hits) {
  char *json = NULL;
  bool found = false;
  double total = 0;
  if (us_cache_result_get(cache, "label_totals", &json, &found, NULL) == US_OK && found) {
    cJSON *o = cJSON_Parse(json);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "cache_hits");
    if (cJSON_IsNumber(h)) total = h->valuedouble;
    cJSON_Delete(o);
  }
  free(json);
  char buf[64];
  snprintf(buf, sizeof buf, "{\"cache_hits\":%.0f}", total + (double)hits);
  us_cache_result_put(cache, "label_totals", buf, NULL);
}

/* One labelling pass over the prompts, or (chunks) over the document chunks. stats accumulate
 * across passes; started and cpu_started are those of the whole run. */
static us_status label_pass(const us_task *task, const us_prompts_params *data,
                            const us_teacher_params *params, us_cache *cache,
                            const us_label_options *opt, us_label_stats *stats, bool chunks,
                            failure_causes *causes, double started, double cpu_started,
                            us_err *err) {
  teacher t;
  memset(&t, 0, sizeof t);
  t.causes = causes;
  t.task = task, t.data = data, t.params = params;
  t.cache = cache, t.opt = opt, t.stats = stats, t.chunks = chunks;
  t.started = started;
  t.cpu_started = cpu_started;
  us_rng_seed(&t.rng, (uint64_t)(us_epoch() * 1e6) ^ ((uint64_t)getpid() << 32));

  us_cache_stats cs;
  us_status st = us_cache_stats_get(cache, &cs, err);
  if (st) goto done;
  t.spend.before = cs.spent_usd;
  us_cache_spend sp;
  st = us_cache_spend_get(cache, &sp, err);
  if (st) goto done;
  t.spend.unanswered = sp.unanswered_usd;
  t.spend.unanswered_before = sp.unanswered - stats->unanswered; /* not this run's earlier pass */
  t.queue.window = (size_t)params->window;
  /* the requests in flight, the retries and two windows of ready ones (batch mode: a job in a
   * batch is not in memory) */
  t.queue.max_open = 2 * t.queue.window + (size_t)params->concurrency;
  t.soft = calloc((size_t)(task->n_labels > 0 ? task->n_labels : 1), sizeof *t.soft);
  if (!t.soft) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory starting to label");
    goto done;
  }
  st = count_pass(&t, err);
  if (!st) st = refill(&t, err);
  if (!st && opt->dry_run && t.queue.jobs > 0) cache_estimate(&t);
  /* batch mode: every batch the workspace holds open is waited for, whatever this run asks */
  us_batch_totals batches = {0};
  if (!st && !opt->dry_run && batch_mode(params)) st = us_cache_batch_totals(cache, &batches, err);
  if (st || opt->dry_run || (t.queue.n_open == 0 && batches.open == 0)) {
    if (!st) report_progress(&t, us_now(), true);
    if (!st && opt->stop && *opt->stop && !t.queue.exhausted) {
      t.stop.interrupted = true; /* stopped while passing over cached prompts */
      st = finish(&t, err);
    }
    goto done;
  }

  /* no more slots than requests to send */
  int64_t to_send = t.queue.unread + (int64_t)t.queue.n_open;
  int slots = params->concurrency < to_send ? params->concurrency : (int)to_send;
  st = us__transport_open(params, slots > 0 ? slots : 1, &t.transport, err);
  if (!st && batch_mode(params)) {
    us__batcher *batcher = NULL;
    us__batch_hooks hooks = {&t, batch_taken, batch_revive};
    st = us__batcher_open(t.transport, params, cache, stats, &hooks, &batcher, err);
    if (!st) us__transport_set_batcher(t.transport, batcher);
  }
  if (st) goto done;
  /* batch mode: the requests go in files, not at a rate */
  bool unlimited = batch_mode(params);
  us__bucket_init(&t.rpm, unlimited ? 0 : params->requests_per_minute, us_now());
  us__bucket_init(&t.tpm, unlimited ? 0 : params->tokens_per_minute, us_now());
  run_loop(&t);
  st = finish(&t, err);
done:
  us_log(US_LOG_DEBUG,
         "label: %lld %s read in %lld windows of %zu; at most %zu requests held at once "
         "(concurrency %d)",
         (long long)t.queue.total, chunks ? "chunks" : "prompts", (long long)t.queue.pages,
         t.queue.window, t.queue.peak_open, params->concurrency);
  if (st && st != US_ERR_BUDGET && st != US_ERR_INTERRUPTED) scrub_err(&t, err);
  if (t.in_txn) us_cache_rollback(cache, NULL);
  teacher_free(&t);
  return st;
}

/* Self-instruct between the passes: the questions of every chunk whose question call is cached
 * become prompts. Reading them from the cache (not from this run's answers) makes a rerun, or a
 * run after an interrupted one, store exactly the same questions without asking again. */
static us_status expand_questions(const us_prompts_params *data, const us_teacher_params *params,
                                  us_cache *cache, us_label_stats *stats, us_err *err) {
  us_prompt *chunks = NULL;
  size_t n = 0;
  us_status st = us_cache_chunks_list(cache, &chunks, &n, err);
  if (st || n == 0) goto done;
  st = us_cache_begin(cache, err);
  for (size_t i = 0; i < n && !st; i++) {
    char *body = NULL, key[65];
    st = us_request_for_chunk(data, params, chunks[i].text, &body, key, err);
    free(body);
    us_call call;
    bool found = false;
    if (!st) st = us_cache_call_get(cache, key, &call, &found, err);
    if (st || !found) continue;
    char *content = NULL;
    int pt = 0, ct = 0;
    us_err ignored = {0};
    if (us_response_parse(call.response, NULL, 0, &content, &pt, &ct, NULL, NULL, &ignored) ==
        US_OK) {
      int64_t added = 0;
      st = us_prompts_add_questions(data, cache, &chunks[i], content, &added, err);
      stats->questions_added += added;
    }
    free(content);
    us_call_free_fields(&call);
  }
  if (st)
    us_cache_rollback(cache, NULL);
  else
    st = us_cache_commit(cache, err);
done:
  us_prompts_free(chunks, n);
  return st;
}

us_status us_teacher_label(const us_task *task, const us_prompts_params *data,
                           const us_teacher_params *params, us_cache *cache,
                           const us_label_options *opt, us_label_stats *stats, us_err *err) {
  us_label_options defaults;
  if (!opt) {
    us_label_options_defaults(&defaults);
    opt = &defaults;
  }
  us_label_stats local;
  if (!stats) stats = &local;
  us_teacher_params filled = *params; /* NULL strings mean their defaults */
  if (!filled.base_url) filled.base_url = US_TEACHER_DEFAULT_BASE_URL;
  if (!filled.api_key_env) filled.api_key_env = US_TEACHER_DEFAULT_API_KEY_ENV;
  if (!filled.model) filled.model = "";
  params = &filled;
  memset(stats, 0, sizeof *stats);
  failure_causes causes;
  memset(&causes, 0, sizeof causes);
  double started = us_now(), cpu_started = us_cpu_time();
  us_status st = US_OK;
  if (task->type == US_TASK_GENERATE) {
    us_cache_stats cs;
    st = us_cache_stats_get(cache, &cs, err);
    stats->chunks = st ? 0 : cs.chunks;
    if (!st && cs.chunks > 0) {
      st = label_pass(task, data, params, cache, opt, stats, true, &causes, started, cpu_started,
                      err);
      /* whatever phase 1 got is kept; phase 2 waits until every chunk has its questions */
      us_err expand_err = {0};
      us_status expanded =
          opt->dry_run ? US_OK : expand_questions(data, params, cache, stats, &expand_err);
      if (!st && expanded) {
        st = expanded;
        *err = expand_err;
      }
    }
  }
  if (!st)
    st = label_pass(task, data, params, cache, opt, stats, false, &causes, started, cpu_started,
                    err);
  if (!opt->dry_run && stats->cached > 0) record_cache_hits(cache, stats->cached);
  stats->answer_cap = (int64_t)answer_cap(params);
  int top = -1;
  for (int i = 0; i < causes.n; i++)
    if (top < 0 || causes.count[i] > causes.count[top]) top = i;
  if (top >= 0) {
    snprintf(stats->top_failure, sizeof stats->top_failure, "%s", causes.text[top]);
    stats->top_failures = causes.count[top];
  }
  /* every request was sent and retried, yet some prompts have no answer: not a success */
  if (!st && stats->failed > 0)
    st = us_err_set(err, US_ERR_UNLABELLED,
                    "%lld of %lld prompts remain unlabelled after their retries; the most common "
                    "cause (%lld of %lld): %s",
                    (long long)stats->failed, (long long)stats->total,
                    (long long)stats->top_failures, (long long)stats->failed,
                    stats->top_failure[0] ? stats->top_failure : "unknown");
  return st;
}
