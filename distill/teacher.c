/* The teacher client: every uncached prompt becomes a Chat Completions request, sent with many
 * transfers in flight on one thread (libcurl multi), within rate limits and a dollar budget;
 * every answer is committed to the cache in the loop iteration it arrives in. */
#include "distill/teacher.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/rng.h"
#include "distill/prompts.h"
#include "distill/request.h"
#include "distill/teacher_int.h"

#define RESPONSE_LIMIT (16u << 20) /* a Chat Completions body past 16 MiB is not an answer */
#define BACKOFF_BASE_S 0.5
#define BACKOFF_CAP_S 30.0
#define RETRY_AFTER_CAP_S 600.0
/* Stop when this many transfers in a row, over at least this long, found no server. */
#define UNREACHABLE_STREAK 24
#define UNREACHABLE_SECONDS 10.0
#define PROGRESS_EVERY_S 0.25
#define INTERRUPT_GRACE_S 2.0
#define POLL_MAX_MS 100

/* Upper bound on the prompt tokens of a request, from its canonical body. Every token of a
 * byte-level BPE (OpenAI's tiktoken, Llama 3, Qwen) or of a SentencePiece model with byte
 * fallback covers at least one byte of the text, so a message's tokens are at most the bytes of
 * its content. The body holds every content byte (JSON escaping only adds bytes), and per
 * message at least {"content":"","role":"user"} (29 bytes) of structure, which covers the
 * chat template's per-message tokens (OpenAI documents 3-4; open-model templates use about 5-10
 * header tokens). The fixed part covers the reply priming (3 for OpenAI) and templates that
 * inject a preamble (Llama 3.1 adds a ~25-token date block to the system message). */
#define PROMPT_BOUND_FIXED_TOKENS 64
static double prompt_token_bound(size_t body_len) {
  return (double)body_len + PROMPT_BOUND_FIXED_TOKENS;
}

/* Dry-run estimate of a message pair: ~4 characters per token (OpenAI's rule of thumb for
 * English), plus 4 tokens per message and 3 to prime the reply (OpenAI's cookbook count). */
static int64_t prompt_token_estimate(size_t chars) {
  return (int64_t)(chars + 3) / 4 + 2 * 4 + 3;
}

typedef struct job {
  int64_t prompt_id;
  char key[65];
  char *body; /* canonical request; freed once the job ends */
  size_t body_len;
  double worst_usd;     /* upper bound on what this request can cost */
  double bucket_tokens; /* what it counts against tokens_per_minute */
  double not_before;    /* monotonic time before which a retry may not start */
  int attempts;
} job;

typedef struct slot {
  CURL *easy; /* created once, reused for every request the slot carries */
  job *job;   /* NULL while the slot is free */
  us_buf response;
  us__resp_headers headers;
  double started;
  char errbuf[CURL_ERROR_SIZE];
} slot;

typedef struct teacher {
  const us_config *c;
  bool chunks; /* self-instruct phase 1: the requests ask for questions about document chunks */
  us_cache *cache;
  const us_label_options *opt;
  us_label_stats *stats;
  double started, cpu_started;

  job *jobs;
  size_t n_jobs, next_fresh, n_open; /* n_open: jobs neither done nor failed */
  size_t *retry;                     /* indexes of jobs waiting to be retried */
  size_t n_retry;

  CURLM *multi;
  int epoll_fd;    /* the sockets curl asks us to watch (multi_socket interface) */
  double timer_at; /* when curl wants its timeout handling; < 0: never */
  slot *slots;
  int n_slots, in_flight;
  struct curl_slist *headers;
  char *url;      /* what curl is given; may hold user:password@ */
  char *safe_url; /* the same without credentials: the only form in messages */
  char *api_key;  /* kept to scrub it from anything stored or shown; NULL if none */
  size_t api_key_len;
  float *soft; /* scratch: one soft distribution over task.labels */

  double spent_before, spent_run, in_flight_worst;
  us__bucket rpm, tpm;
  double hold_until; /* the server's x-ratelimit headers asked to pause new starts */
  us_rng rng;

  bool interrupted, budget_stop, in_txn;
  double abort_at;
  double last_progress;
  int unreachable_streak;   /* transfers in a row that found no server to talk to */
  double unreachable_since; /* when that streak began */
  us_status fatal;          /* stops the run at once: auth, not found, database */
  us_err fatal_err;
} teacher;

/* ---- small helpers ------------------------------------------------------------------- */

/* Overwrites every occurrence of the API key in s[0..n) with '*'. */
static void scrub_key(const teacher *t, char *s, size_t n) {
  if (!t->api_key || t->api_key_len < 4 || !s) return;
  size_t k = t->api_key_len;
  char *p = s, *end = s + n;
  while ((size_t)(end - p) >= k && (p = memchr(p, t->api_key[0], (size_t)(end - p) - k + 1))) {
    if (memcmp(p, t->api_key, k) == 0) {
      memset(p, '*', k);
      p += k;
    } else {
      p++;
    }
  }
}

static void scrub_err(const teacher *t, us_err *err) {
  if (err) scrub_key(t, err->msg, strlen(err->msg));
}

/* "$1.2345" with enough digits for small budgets. */
static const char *money(char *buf, size_t n, double usd) {
  snprintf(buf, n, usd >= 100 ? "$%.2f" : "$%.4f", usd);
  return buf;
}

static us_status base_url_parts(const char *base_url, char **url, char **safe_url, bool *loopback,
                                bool *https, us_err *err) {
  us_status st = US_OK;
  char *host = NULL, *scheme = NULL, *safe = NULL;
  CURLU *u = curl_url();
  us_buf full;
  us_buf_init(&full, 0);
  if (!u || us_buf_printf(&full, "%s/chat/completions", base_url)) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory parsing teacher.base_url");
    goto fail;
  }
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, full.data, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  if (uc != CURLUE_OK) {
    /* the URL itself may hold credentials: name the key, not the value */
    st = us_err_set(err, US_ERR_CONFIG, "teacher.base_url is not a valid URL: %s",
                    curl_url_strerror(uc));
    goto fail;
  }
  if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
    st = us_err_set(err, US_ERR_CONFIG,
                    "teacher.base_url: expected an http or https URL, found "
                    "scheme \"%s\"",
                    scheme);
    goto fail;
  }
  curl_url_set(u, CURLUPART_USER, NULL, 0);
  curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
  if (curl_url_get(u, CURLUPART_URL, &safe, 0) != CURLUE_OK) {
    st = us_err_set(err, US_ERR_CONFIG, "teacher.base_url cannot be rebuilt without credentials");
    goto fail;
  }
  *https = strcasecmp(scheme, "https") == 0;
  *loopback = strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
              strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
  *safe_url = us_strdup(safe);
  *url = us_buf_steal(&full);
  if (!*safe_url) st = us_err_set(err, US_ERR_NOMEM, "out of memory");
fail:
  curl_free(host);
  curl_free(scheme);
  curl_free(safe);
  curl_url_cleanup(u);
  us_buf_free(&full);
  return st;
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
  const us_config *c = t->c;
  bool classify = c->task.type == US_TASK_CLASSIFY;
  a->has_soft = false;
  return us_response_parse(body, classify ? c->task.labels : NULL, classify ? c->task.n_labels : 0,
                           &a->content, &a->prompt_tokens, &a->completion_tokens,
                           classify ? t->soft : NULL, classify ? &a->has_soft : NULL, err);
}

/* Stores the target an answer means for prompt_id: the mapped label (and soft distribution)
 * for classify, the text for generate. A body that did not parse (a->content NULL) is kept as
 * an unparsed target with the raw body as its text. */
static us_status target_store(teacher *t, const char *key, int64_t prompt_id, const char *body,
                              const answer *a, us_err *err) {
  const us_config *c = t->c;
  us_target target;
  memset(&target, 0, sizeof target);
  memcpy(target.key, key, 65);
  target.prompt_id = prompt_id;
  target.text = a->content ? a->content : (char *)body;
  target.status = a->content ? US_TARGET_OK : US_TARGET_UNPARSED;
  if (a->content && c->task.type == US_TASK_CLASSIFY) {
    int k = us_answer_map_label(a->content, c->task.labels, c->task.n_labels);
    target.label = k >= 0 ? c->task.labels[k] : NULL;
    target.status = k >= 0 ? US_TARGET_OK : US_TARGET_UNPARSED;
    target.soft = a->has_soft ? t->soft : NULL;
    target.n_soft = a->has_soft ? c->task.n_labels : 0;
  }
  if (target.status == US_TARGET_UNPARSED) t->stats->unparsed++;
  return us_cache_target_put(t->cache, &target, err);
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
  const us_config *c = t->c;
  char *system = NULL, *user = NULL;
  us_status st = us_config_render(c, p->text, &system, &user, err);
  if (st) return st;
  size_t chars = strlen(system) + strlen(user);
  if (t->chunks || p->context)
    chars = strlen(system) +
            strlen(t->chunks ? c->data.question_template : c->data.answer_template) +
            strlen(p->text) + (p->context ? strlen(p->context) : 0);
  free(system);
  free(user);
  *est = prompt_token_estimate(chars);
  return US_OK;
}

/* Builds every prompt's (or, in the chunk phase, every chunk's) request; cached ones get their
 * target checked, the rest become jobs (or, for a dry run, estimates). */
static us_status plan(teacher *t, us_err *err) {
  const us_config *c = t->c;
  us_prompt *prompts = NULL;
  size_t n = 0;
  us_status st = t->chunks ? us_cache_chunks_list(t->cache, &prompts, &n, err)
                           : us_cache_prompts_list(t->cache, -1, &prompts, &n, err);
  if (st) return st;
  t->stats->total += (int64_t)n;
  t->soft = calloc((size_t)(c->task.n_labels > 0 ? c->task.n_labels : 1), sizeof *t->soft);
  t->jobs = calloc(n ? n : 1, sizeof *t->jobs);
  t->retry = calloc(n ? n : 1, sizeof *t->retry);
  if (!t->jobs || !t->retry || !t->soft) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory planning %zu requests", n);
    goto done;
  }
  double in_price = c->teacher.price_input_per_mtok / 1e6;
  double out_price = c->teacher.price_output_per_mtok / 1e6;
  int typical_completion = c->task.type == US_TASK_CLASSIFY
                               ? (c->teacher.max_tokens < 3 ? c->teacher.max_tokens : 3)
                               : c->teacher.max_tokens / 4;
  for (size_t i = 0; i < n; i++) {
    if ((i & 1023) == 0) report_progress(t, us_now(), false); /* a large workspace takes a while */
    char *body = NULL, key[65];
    st = t->chunks ? us_request_for_chunk(c, prompts[i].text, &body, key, err)
                   : us_request_for_prompt(c, &prompts[i], &body, key, err);
    if (st) {
      us_err_prefix(err, "prompt %lld (%s)", (long long)prompts[i].id,
                    prompts[i].source ? prompts[i].source : "?");
      goto done;
    }
    bool cached = false;
    st = us_cache_call_exists(t->cache, key, &cached, err);
    if (!st && cached) st = ensure_cached_target(t, key, prompts[i].id, err);
    if (st) {
      free(body);
      goto done;
    }
    if (cached) {
      t->stats->cached++;
      free(body);
      continue;
    }
    job *j = &t->jobs[t->n_jobs++];
    j->prompt_id = prompts[i].id;
    memcpy(j->key, key, 65);
    j->body = body;
    j->body_len = strlen(body);
    j->worst_usd = prompt_token_bound(j->body_len) * in_price + c->teacher.max_tokens * out_price;
    j->bucket_tokens = (double)j->body_len / 4 + c->teacher.max_tokens;
    t->n_open++;
    if (t->opt->dry_run) {
      int64_t est = 0;
      st = dry_run_estimate(t, &prompts[i], &est, err);
      if (st) goto done;
      t->stats->est_prompt_tokens += est;
      t->stats->est_completion_tokens_max += c->teacher.max_tokens;
      t->stats->est_cost_low_usd += (double)est * in_price + typical_completion * out_price;
      t->stats->est_cost_high_usd += j->worst_usd;
    }
  }
done:
  us_prompts_free(prompts, n);
  return st;
}

/* ---- committing answers ---------------------------------------------------------------- */

static us_status txn_begin(teacher *t, us_err *err) {
  if (t->in_txn) return US_OK;
  us_status st = us_cache_begin(t->cache, err);
  if (!st) t->in_txn = true;
  return st;
}

static void set_fatal(teacher *t, us_status st, const us_err *err) {
  if (t->fatal) return;
  t->fatal = st;
  t->fatal_err = *err;
  scrub_err(t, &t->fatal_err);
}

/* The job is answered or recorded as failed: nothing more to send. */
static void job_end(teacher *t, job *j) {
  free(j->body);
  j->body = NULL;
  t->n_open--;
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
    set_fatal(t, st, &err);
    return;
  }
  t->stats->failed++;
  job_end(t, j);
  us_log(US_LOG_DEBUG, "prompt %lld failed after %d attempt(s): %s", (long long)j->prompt_id,
         j->attempts, msg);
}

/* A 200 with a well-formed body: store the call (cost from its usage), then its target. */
static void record_answer(teacher *t, job *j, slot *s, const answer *a, double now) {
  const us_config *c = t->c;
  int prompt_tokens = a->prompt_tokens, completion_tokens = a->completion_tokens;
  /* no usage in the body: charge the upper bounds, so the budget can only be overstated */
  if (prompt_tokens < 0) prompt_tokens = (int)prompt_token_bound(j->body_len);
  if (completion_tokens < 0) completion_tokens = c->teacher.max_tokens;
  double cost = prompt_tokens * c->teacher.price_input_per_mtok / 1e6 +
                completion_tokens * c->teacher.price_output_per_mtok / 1e6;
  us_call call;
  memset(&call, 0, sizeof call);
  memcpy(call.key, j->key, 65);
  call.request = j->body;
  call.response = s->response.data;
  call.http_status = 200;
  call.prompt_tokens = prompt_tokens;
  call.completion_tokens = completion_tokens;
  call.cost_usd = cost;
  call.latency_ms = (now - s->started) * 1000;
  call.attempts = j->attempts;
  call.created_at = us_epoch();
  us_err err = {0};
  bool existed = false;
  us_status st = txn_begin(t, &err);
  if (!st) st = us_cache_call_put(t->cache, &call, &existed, &err);
  if (!st) st = target_store(t, j->key, j->prompt_id, s->response.data, a, &err);
  if (st) {
    set_fatal(t, st, &err);
    return;
  }
  /* paid either way, even if another process stored the same key first */
  t->spent_run += cost;
  t->stats->spent_usd += cost;
  t->stats->done++;
  job_end(t, j);
}

/* Network error, timeout, 408/409/429/5xx or a malformed 200: retry later, or give up. */
static void retry_or_fail(teacher *t, job *j, const slot *s, int http_status, const char *why,
                          double now) {
  if (j->attempts > t->c->teacher.max_retries) {
    char msg[512];
    snprintf(msg, sizeof msg, "gave up after %d attempts: %s", j->attempts, why);
    record_failure(t, j, http_status, msg);
    return;
  }
  double wait = us_retry_after_parse(s->headers.retry_after, s->headers.retry_after_ms, us_epoch());
  if (wait < 0)
    wait =
        us_backoff_delay(j->attempts - 1, BACKOFF_BASE_S, BACKOFF_CAP_S, us_rng_uniform(&t->rng));
  if (wait > RETRY_AFTER_CAP_S) wait = RETRY_AFTER_CAP_S;
  j->not_before = now + wait;
  t->retry[t->n_retry++] = (size_t)(j - t->jobs);
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
  double conc = t->c->teacher.concurrency;
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

static void on_done(teacher *t, slot *s, CURLcode rc, double now) {
  job *j = s->job;
  long code = 0;
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_multi_remove_handle(t->multi, s->easy);
  s->job = NULL;
  t->in_flight--;
  t->in_flight_worst -= j->worst_usd;
  if (t->in_flight == 0) t->in_flight_worst = 0; /* no drift from float sums */
  char msg[512];
  if (rc != CURLE_OK) {
    snprintf(msg, sizeof msg, "%s (%s)", curl_easy_strerror(rc), s->errbuf);
    scrub_key(t, msg, strlen(msg));
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
        rc == CURLE_COULDNT_RESOLVE_PROXY) {
      /* A server that refuses or does not exist would only burn every prompt's retries:
       * after a run of such failures with no answer between them, stop and say so. */
      if (t->unreachable_streak++ == 0) t->unreachable_since = now;
      if (t->unreachable_streak >= UNREACHABLE_STREAK &&
          now - t->unreachable_since >= UNREACHABLE_SECONDS) {
        us_err e = {0};
        us_err_set(&e, US_ERR_HTTP,
                   "cannot reach the teacher at %s: %s (%d attempts in a row); every answer so "
                   "far is saved: check teacher.base_url and that the server is up, then run "
                   "again",
                   t->safe_url, msg, t->unreachable_streak);
        t->retry[t->n_retry++] = (size_t)(j - t->jobs); /* not answered: left */
        set_fatal(t, US_ERR_HTTP, &e);
        return;
      }
    }
    retry_or_fail(t, j, s, 0, msg, now);
    return;
  }
  t->unreachable_streak = 0;
  watch_server_limits(t, &s->headers, j, now);
  scrub_key(t, s->response.data, s->response.len);
  if (code == 200) {
    us_err err = {0};
    answer a;
    if (answer_parse(t, s->response.data, &a, &err))
      retry_or_fail(t, j, s, 200, err.msg, now);
    else
      record_answer(t, j, s, &a, now);
    free(a.content);
    return;
  }
  server_message(s->response.data, msg, sizeof msg);
  scrub_key(t, msg, strlen(msg));
  us_err err = {0};
  if (code == 401 || code == 403) {
    if (t->api_key)
      us_err_set(&err, US_ERR_AUTH, "the key in $%s was rejected (HTTP %ld) by %s: %s",
                 t->c->teacher.api_key_env, code, t->safe_url, msg);
    else
      us_err_set(&err, US_ERR_AUTH,
                 "no key was sent ($%s is unset or empty) and %s answered "
                 "HTTP %ld: %s",
                 t->c->teacher.api_key_env, t->safe_url, code, msg);
    t->retry[t->n_retry++] = (size_t)(j - t->jobs); /* not answered: left for the next run */
    set_fatal(t, US_ERR_AUTH, &err);
    return;
  }
  if (code == 404) {
    us_err_set(&err, US_ERR_NOT_FOUND,
               "%s answered HTTP 404 for model \"%s\" (%s): check "
               "teacher.base_url and teacher.model",
               t->safe_url, t->c->teacher.model, msg);
    t->retry[t->n_retry++] = (size_t)(j - t->jobs);
    set_fatal(t, US_ERR_NOT_FOUND, &err);
    return;
  }
  if (code == 408 || code == 409 || code == 429 || code >= 500) {
    char why[600];
    snprintf(why, sizeof why, "HTTP %ld: %s", code, msg);
    retry_or_fail(t, j, s, (int)code, why, now);
    return;
  }
  char why[600];
  snprintf(why, sizeof why, "HTTP %ld: %s", code, msg);
  record_failure(t, j, (int)code, why);
}

/* Handles every finished transfer; the answers of one pass are committed together. */
static void drain(teacher *t) {
  CURLMsg *m;
  int left;
  double now = us_now();
  while ((m = curl_multi_info_read(t->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    slot *s = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
    on_done(t, s, m->data.result, now);
  }
  if (t->in_txn) {
    us_err err = {0};
    t->in_txn = false;
    us_status st = us_cache_commit(t->cache, &err);
    if (st) set_fatal(t, st, &err);
  }
}

/* ---- starting requests ----------------------------------------------------------------- */

/* The next job allowed to start by its own timing: a retry whose wait is over, else the next
 * fresh one. *wake gets the time until a waiting retry comes due when there is none. */
static job *next_job(teacher *t, double now, double *wake, size_t *retry_pos) {
  for (size_t i = 0; i < t->n_retry; i++) {
    job *j = &t->jobs[t->retry[i]];
    if (j->not_before <= now) {
      *retry_pos = i;
      return j;
    }
    if (j->not_before - now < *wake) *wake = j->not_before - now;
  }
  *retry_pos = (size_t)-1;
  return t->next_fresh < t->n_jobs ? &t->jobs[t->next_fresh] : NULL;
}

static us_status start(teacher *t, slot *s, job *j, double now) {
  us_buf_reset(&s->response);
  us__resp_headers_reset(&s->headers);
  s->errbuf[0] = '\0';
  s->job = j;
  s->started = now;
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, j->body);
  CURLMcode mc = curl_multi_add_handle(t->multi, s->easy);
  if (mc != CURLM_OK) {
    s->job = NULL;
    return us_err_set(&t->fatal_err, US_ERR_HTTP, "cannot start a transfer to %s: %s", t->safe_url,
                      curl_multi_strerror(mc));
  }
  j->attempts++;
  t->in_flight++;
  t->in_flight_worst += j->worst_usd;
  us__bucket_take(&t->rpm, 1);
  us__bucket_take(&t->tpm, j->bucket_tokens);
  t->stats->requests++;
  return US_OK;
}

/* Starts as many requests as the free slots, the rate limits and the budget allow. Returns the
 * seconds until something may change (a retry due, a bucket refilled, a hold over). */
static double start_ready(teacher *t, double now) {
  double wake = 1.0;
  int free_slot = 0;
  while (t->in_flight < t->n_slots) {
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
    double total = t->spent_before + t->spent_run + t->in_flight_worst + j->worst_usd;
    if (total > t->c->teacher.budget_usd) {
      /* in-flight requests usually cost less than their worst case: wait for them */
      if (t->in_flight == 0) t->budget_stop = true;
      break;
    }
    while (t->slots[free_slot].job) free_slot++;
    if (start(t, &t->slots[free_slot], j, now)) {
      t->fatal = US_ERR_HTTP;
      break;
    }
    if (pos != (size_t)-1)
      t->retry[pos] = t->retry[--t->n_retry];
    else
      t->next_fresh++;
  }
  return wake;
}

/* ---- transfers ------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *user) {
  slot *s = user;
  if (us_buf_append(&s->response, data, size * n)) return 0; /* past the limit: abort */
  return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *user) {
  slot *s = user;
  us__resp_headers_line(&s->headers, data, size * n);
  return size * n;
}

/* curl's socket callback: mirror its interest in a socket into the epoll set. Only sockets
 * with events are then handed to curl, so a pass costs what is ready, not what is in flight. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *user, void *socket_user) {
  (void)easy;
  teacher *t = user;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(t->epoll_fd, EPOLL_CTL_DEL, fd, NULL); /* curl may have closed it already */
    curl_multi_assign(t->multi, fd, NULL);
    return 0;
  }
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  /* socket_user marks a socket already in the set; a stale registration is fixed up */
  int op = socket_user ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(t->epoll_fd, op, fd, &ev) != 0 &&
      epoll_ctl(t->epoll_fd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0)
    return -1;
  if (!socket_user) curl_multi_assign(t->multi, fd, t);
  return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *user) {
  (void)multi;
  teacher *t = user;
  t->timer_at = timeout_ms < 0 ? -1 : us_now() + (double)timeout_ms / 1000.0;
  return 0;
}

static us_status setup_transfers(teacher *t, bool https, us_err *err) {
  const us_config *c = t->c;
  /* no more easy handles than requests to send */
  t->n_slots = (size_t)c->teacher.concurrency < t->n_jobs ? c->teacher.concurrency : (int)t->n_jobs;
  t->slots = calloc((size_t)t->n_slots, sizeof *t->slots);
  t->multi = curl_multi_init();
  if (!t->slots || !t->multi) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  t->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (t->epoll_fd < 0) return us_err_set(err, US_ERR_IO, "epoll_create1: %s", strerror(errno));
  t->timer_at = -1;
  curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
  curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
  long conns = t->n_slots;
  curl_multi_setopt(t->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
  curl_multi_setopt(t->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conns);
  curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, conns);
  long timeout_ms = (long)(c->teacher.timeout_s * 1000);
  long connect_ms = timeout_ms < 30000 ? timeout_ms : 30000;
  for (int i = 0; i < t->n_slots; i++) {
    slot *s = &t->slots[i];
    us_buf_init(&s->response, RESPONSE_LIMIT);
    if (us_buf_reserve(&s->response, 4096)) return us_err_set(err, US_ERR_NOMEM, "out of memory");
    CURL *e = s->easy = curl_easy_init();
    if (!e) return us_err_set(err, US_ERR_HTTP, "curl_easy_init failed");
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, https ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT,
                     "understudy/"
                     "0.1");
  }
  return US_OK;
}

/* Content-Type, Authorization (unless the config sets its own, as Azure's api-key setups do
 * not need it) and teacher.headers. The key lives in this list and nowhere else. */
static us_status build_headers(teacher *t, us_err *err) {
  const us_config *c = t->c;
  bool own_auth = false;
  us_buf line;
  us_buf_init(&line, 0);
  us_status st = US_OK;
  struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
  l = l ? curl_slist_append(l, "Expect:") : NULL; /* no 100-continue round trip */
  for (int i = 0; l && i < c->teacher.n_headers; i++) {
    const us_header *h = &c->teacher.headers[i];
    if (strcasecmp(h->name, "Authorization") == 0) own_auth = true;
    us_buf_reset(&line);
    if (strpbrk(h->name, "\r\n:") || strpbrk(h->value, "\r\n")) {
      st = us_err_set(err, US_ERR_CONFIG,
                      "teacher.headers.%s: a header name or value cannot "
                      "hold a line break (or a ':' in the name)",
                      h->name);
      goto fail;
    }
    if (us_buf_printf(&line, "%s: %s", h->name, h->value)) goto nomem;
    l = curl_slist_append(l, line.data);
  }
  if (l && t->api_key && !own_auth) {
    us_buf_reset(&line);
    if (us_buf_printf(&line, "Authorization: Bearer %s", t->api_key)) goto nomem;
    l = curl_slist_append(l, line.data);
  }
  if (!l) goto nomem;
  t->headers = l;
  l = NULL;
  goto fail;
nomem:
  st = us_err_set(err, US_ERR_NOMEM, "out of memory building request headers");
fail:
  if (line.data) explicit_bzero(line.data, line.cap);
  us_buf_free(&line);
  curl_slist_free_all(l);
  return st;
}

static void report_progress(teacher *t, double now, bool final) {
  if (!final && (!t->opt->progress || now - t->last_progress < PROGRESS_EVERY_S)) return;
  us_label_stats *s = t->stats;
  s->left = (int64_t)t->n_open;
  s->spent_total_usd = t->spent_before + t->spent_run;
  s->elapsed_s = now - t->started;
  s->cpu_s = us_cpu_time() - t->cpu_started; /* a system call: not on every pass */
  t->last_progress = now;
  if (!t->opt->progress) return;
  t->opt->progress(t->opt->progress_user, s);
}

static void abort_in_flight(teacher *t) {
  for (int i = 0; i < t->n_slots; i++) {
    slot *s = &t->slots[i];
    if (!s->job) continue;
    curl_multi_remove_handle(t->multi, s->easy);
    t->retry[t->n_retry++] = (size_t)(s->job - t->jobs); /* never answered: left */
    s->job = NULL;
    t->in_flight--;
  }
  t->in_flight_worst = 0;
}

/* Waits for socket events (or curl's timer, or until something may start) and lets curl
 * handle just those sockets. */
static void move_transfers(teacher *t, double wake) {
  double now = us_now();
  if (t->timer_at >= 0 && t->timer_at - now < wake) wake = t->timer_at - now;
  int timeout_ms = wake <= 0 ? 0 : (int)(wake * 1000) + 1;
  if (timeout_ms > POLL_MAX_MS) timeout_ms = POLL_MAX_MS;
  struct epoll_event events[128];
  int n = epoll_wait(t->epoll_fd, events, 128, timeout_ms);
  int running = 0;
  for (int i = 0; i < n; i++) {
    int flags = (events[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                (events[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                (events[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    curl_multi_socket_action(t->multi, events[i].data.fd, flags, &running);
  }
  if (t->timer_at >= 0 && us_now() >= t->timer_at) {
    t->timer_at = -1;
    curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }
}

/* The transfer loop: start what may start, move the transfers, take in what finished. */
static void run_loop(teacher *t) {
  for (;;) {
    double now = us_now();
    if (t->opt->stop && *t->opt->stop && !t->interrupted) {
      t->interrupted = true;
      t->abort_at = now + INTERRUPT_GRACE_S;
    }
    if (t->interrupted && t->in_flight && now >= t->abort_at) abort_in_flight(t);
    double wake = POLL_MAX_MS / 1000.0;
    if (!t->interrupted && !t->budget_stop && !t->fatal) {
      double w = start_ready(t, now);
      if (w < wake) wake = w;
    }
    bool nothing_to_start = t->interrupted || t->budget_stop || t->fatal || t->n_open == 0;
    if (t->in_flight == 0 && nothing_to_start) break;
    move_transfers(t, wake);
    drain(t);
    if (t->fatal) abort_in_flight(t);
    report_progress(t, us_now(), false);
  }
}

/* ---- entry point ----------------------------------------------------------------------- */

void us_label_options_defaults(us_label_options *o) {
  memset(o, 0, sizeof *o);
}

static void teacher_free(teacher *t) {
  for (int i = 0; t->slots && i < t->n_slots; i++) {
    if (t->slots[i].easy) {
      if (t->slots[i].job) curl_multi_remove_handle(t->multi, t->slots[i].easy);
      curl_easy_cleanup(t->slots[i].easy);
    }
    us_buf_free(&t->slots[i].response);
  }
  free(t->slots);
  if (t->multi) curl_multi_cleanup(t->multi);
  if (t->epoll_fd >= 0) close(t->epoll_fd);
  for (struct curl_slist *l = t->headers; l; l = l->next) explicit_bzero(l->data, strlen(l->data));
  curl_slist_free_all(t->headers);
  for (size_t i = 0; t->jobs && i < t->n_jobs; i++) free(t->jobs[i].body);
  free(t->jobs);
  free(t->retry);
  free(t->soft);
  free(t->url);
  free(t->safe_url);
  if (t->api_key) explicit_bzero(t->api_key, t->api_key_len);
  free(t->api_key);
}

static us_status finish(teacher *t, us_err *err) {
  char spent[32], budget[32];
  report_progress(t, us_now(), true);
  if (t->fatal) {
    *err = t->fatal_err;
    return t->fatal;
  }
  if (t->budget_stop && t->n_open > 0)
    return us_err_set(err, US_ERR_BUDGET,
                      "budget reached: %s of %s spent; %zu prompts left; "
                      "raise teacher.budget_usd and run again",
                      money(spent, sizeof spent, t->spent_before + t->spent_run),
                      money(budget, sizeof budget, t->c->teacher.budget_usd), t->n_open);
  if (t->interrupted && t->n_open > 0)
    return us_err_set(err, US_ERR_INTERRUPTED,
                      "interrupted: %zu prompts left; every answer so "
                      "far is saved, run again to resume",
                      t->n_open);
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
static us_status label_pass(const us_config *c, us_cache *cache, const us_label_options *opt,
                            us_label_stats *stats, bool chunks, double started, double cpu_started,
                            us_err *err) {
  teacher t;
  memset(&t, 0, sizeof t);
  t.epoll_fd = -1;
  t.c = c, t.cache = cache, t.opt = opt, t.stats = stats, t.chunks = chunks;
  t.started = started;
  t.cpu_started = cpu_started;
  us_rng_seed(&t.rng, (uint64_t)(us_epoch() * 1e6) ^ ((uint64_t)getpid() << 32));

  us_cache_stats cs;
  us_status st = us_cache_stats_get(cache, &cs, err);
  if (st) goto done;
  t.spent_before = cs.spent_usd;
  st = plan(&t, err);
  if (st || opt->dry_run || t.n_jobs == 0) {
    if (!st) report_progress(&t, us_now(), true);
    goto done;
  }

  bool loopback = false, https = false;
  st = base_url_parts(c->teacher.base_url, &t.url, &t.safe_url, &loopback, &https, err);
  if (st) goto done;
  const char *key = getenv(c->teacher.api_key_env);
  if (key && *key) {
    if (strpbrk(key, "\r\n")) {
      st = us_err_set(err, US_ERR_CONFIG, "$%s holds a line break; it must be the bare API key",
                      c->teacher.api_key_env);
      goto done;
    }
    t.api_key = us_strdup(key);
    t.api_key_len = strlen(key);
    if (!t.api_key) {
      st = us_err_set(err, US_ERR_NOMEM, "out of memory copying the API key");
      goto done;
    }
  } else if (!loopback) {
    st = us_err_set(err, US_ERR_AUTH,
                    "$%s is unset or empty: set it to the API key for %s "
                    "(or name another variable in teacher.api_key_env)",
                    c->teacher.api_key_env, t.safe_url);
    goto done;
  }
  if (t.api_key) { /* curl would send user:password@ as Basic auth in place of the key */
    free(t.url);
    t.url = us_strdup(t.safe_url);
    if (!t.url) {
      st = us_err_set(err, US_ERR_NOMEM, "out of memory");
      goto done;
    }
  }
  if (!https && !loopback && t.api_key)
    us_log(US_LOG_WARN, "teacher.base_url %s is plain http: the key travels unencrypted",
           t.safe_url);
  st = build_headers(&t, err);
  if (!st) st = setup_transfers(&t, https, err);
  if (st) goto done;
  us__bucket_init(&t.rpm, c->teacher.requests_per_minute, us_now());
  us__bucket_init(&t.tpm, c->teacher.tokens_per_minute, us_now());
  run_loop(&t);
  st = finish(&t, err);
done:
  if (st && st != US_ERR_BUDGET && st != US_ERR_INTERRUPTED) scrub_err(&t, err);
  if (t.in_txn) us_cache_rollback(cache, NULL);
  teacher_free(&t);
  return st;
}

/* Self-instruct between the passes: the questions of every chunk whose question call is cached
 * become prompts. Reading them from the cache (not from this run's answers) makes a rerun, or a
 * run after an interrupted one, store exactly the same questions without asking again. */
static us_status expand_questions(const us_config *c, us_cache *cache, us_label_stats *stats,
                                  us_err *err) {
  us_prompt *chunks = NULL;
  size_t n = 0;
  us_status st = us_cache_chunks_list(cache, &chunks, &n, err);
  if (st || n == 0) goto done;
  st = us_cache_begin(cache, err);
  for (size_t i = 0; i < n && !st; i++) {
    char *body = NULL, key[65];
    st = us_request_for_chunk(c, chunks[i].text, &body, key, err);
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
      st = us_prompts_add_questions(c, cache, &chunks[i], content, &added, err);
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

us_status us_teacher_label(const us_config *c, us_cache *cache, const us_label_options *opt,
                           us_label_stats *stats, us_err *err) {
  us_label_options defaults;
  if (!opt) {
    us_label_options_defaults(&defaults);
    opt = &defaults;
  }
  us_label_stats local;
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  double started = us_now(), cpu_started = us_cpu_time();
  us_status st = US_OK;
  if (c->task.type == US_TASK_GENERATE) {
    us_cache_stats cs;
    st = us_cache_stats_get(cache, &cs, err);
    stats->chunks = st ? 0 : cs.chunks;
    if (!st && cs.chunks > 0) {
      st = label_pass(c, cache, opt, stats, true, started, cpu_started, err);
      /* whatever phase 1 got is kept; phase 2 waits until every chunk has its questions */
      us_err expand_err = {0};
      us_status expanded = opt->dry_run ? US_OK : expand_questions(c, cache, stats, &expand_err);
      if (!st && expanded) {
        st = expanded;
        *err = expand_err;
      }
    }
  }
  if (!st) st = label_pass(c, cache, opt, stats, false, started, cpu_started, err);
  if (!opt->dry_run && stats->cached > 0) record_cache_hits(cache, stats->cached);
  return st;
}
