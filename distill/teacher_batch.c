/* The Batch API under the teacher's transport (distill/teacher_int.h): requests become JSONL
 * lines ({"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": request}),
 * uploaded to {base_url}/files with purpose "batch"; a batch is created over the file at
 * {base_url}/batches (endpoint "/v1/chat/completions", completion_window "24h") and its id
 * committed to the workspace at once; GET {base_url}/batches/{id} is polled until the batch is
 * completed, expired, cancelled or failed; then its output and error files
 * (GET {base_url}/files/{id}/content) give each request's outcome, handed to the policy as a
 * finished transfer. The policy (teacher.c) commits answers, retries and records failures as it
 * does for live transfers, so the cache keys, the commit path and the budget are the same. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "distill/teacher_int.h"

#define BATCH_ENDPOINT "/v1/chat/completions"

/* ---- JSONL ------------------------------------------------------------------------------ */

us_status us__batch_line(us_buf *out, const char *key, const char *body, us_err *err) {
  if (us_buf_printf(out, "{\"custom_id\":\"%s\",\"method\":\"POST\",\"url\":\"%s\",\"body\":%s}\n",
                    key, BATCH_ENDPOINT, body))
    return us_err_set(err, US_ERR_NOMEM, "out of memory writing a batch file");
  return US_OK;
}

bool us__batch_parse_line(const char *line, size_t len, char custom_id[65], long *status,
                          char **body, char *message, size_t message_cap) {
  *status = 0;
  *body = NULL;
  if (message_cap) message[0] = '\0';
  custom_id[0] = '\0';
  cJSON *o = cJSON_ParseWithLength(line, len);
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "custom_id");
  if (!cJSON_IsObject(o) || !cJSON_IsString(id) || strlen(id->valuestring) > 64) {
    cJSON_Delete(o);
    return false;
  }
  snprintf(custom_id, 65, "%s", id->valuestring);
  const cJSON *response = cJSON_GetObjectItemCaseSensitive(o, "response");
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(o, "error");
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(response, "status_code");
  const cJSON *rbody = cJSON_GetObjectItemCaseSensitive(response, "body");
  bool ok = true;
  if (cJSON_IsObject(response) && cJSON_IsNumber(code) && rbody) {
    *status = (long)code->valuedouble;
    *body = cJSON_PrintUnformatted(rbody);
    ok = *body != NULL;
  } else if (cJSON_IsObject(error)) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(error, "code");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(error, "message");
    snprintf(message, message_cap, "%s: %s", cJSON_IsString(c) ? c->valuestring : "error",
             cJSON_IsString(m) ? m->valuestring : "(no message)");
  } else {
    ok = false;
  }
  cJSON_Delete(o);
  return ok;
}

/* ---- the batcher ------------------------------------------------------------------------ */

static const char *json_string(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

typedef struct entry {
  char key[65];
  void *job;        /* the policy's job; NULL until one is started for this key */
  const char *body; /* pending entries: the request (the job's, valid while it lives) */
  size_t len;
  /* outcome once the batch's files are read */
  bool has_result;
  long status;
  char *result_body;
  char *message;
} entry;

typedef struct batch {
  char *id, *input_file_id;
  char status[24];
  entry *entries; /* sorted by key */
  size_t n;
  double created_at, next_poll;
  int64_t completed, failed;
  size_t attached;  /* entries a job of this run waits on; a resumed batch none of whose
                     * requests this pass asks for is left alone (open, for the pass or run
                     * that wants it) */
  bool ended;       /* its files are read: ready to hand back */
  char reason[512]; /* failed batch: why */
} batch;

struct us__batcher {
  us__transport *tr;
  const us_teacher_params *p;
  us_cache *cache;
  us_label_stats *stats;
  bool retry_live;
  batch *batches;
  size_t n_batches, cap_batches;
  entry *pending; /* taken since the last wait: the next batch */
  size_t n_pending, cap_pending;
  char (*live)[65]; /* keys a batch failed, sent live when started again (retry_live) */
  size_t n_live, cap_live;
  int in_flight; /* jobs taken and not handed back */
};

static int entry_cmp(const void *a, const void *b) {
  return strcmp(((const entry *)a)->key, ((const entry *)b)->key);
}

static entry *find_entry(batch *b, const char *key) {
  entry probe;
  memcpy(probe.key, key, 65);
  return bsearch(&probe, b->entries, b->n, sizeof *b->entries, entry_cmp);
}

static void entry_free(entry *e) {
  free(e->result_body);
  free(e->message);
  e->result_body = e->message = NULL;
}

static void batch_free(batch *b) {
  for (size_t i = 0; i < b->n; i++) entry_free(&b->entries[i]);
  free(b->entries);
  free(b->id);
  free(b->input_file_id);
}

static bool push_batch(us__batcher *bt, batch *b) {
  if (bt->n_batches == bt->cap_batches) {
    size_t cap = bt->cap_batches ? bt->cap_batches * 2 : 4;
    batch *grown = realloc(bt->batches, cap * sizeof *grown);
    if (!grown) return false;
    bt->batches = grown;
    bt->cap_batches = cap;
  }
  bt->batches[bt->n_batches++] = *b;
  return true;
}

static void update_stats(us__batcher *bt) {
  us_label_stats *s = bt->stats;
  if (!s) return;
  s->batch_requests = s->batch_completed = s->batch_failed = 0;
  s->batch_status[0] = '\0';
  s->batches_open = 0;
  for (size_t i = 0; i < bt->n_batches; i++) {
    if (!bt->batches[i].attached) continue;
    if (!s->batches_open++)
      snprintf(s->batch_status, sizeof s->batch_status, "%s", bt->batches[i].status);
    s->batch_requests += (int64_t)bt->batches[i].n;
    s->batch_completed += bt->batches[i].completed;
    s->batch_failed += bt->batches[i].failed;
  }
}

/* A batch row still named "pending:<file>": the run that wrote it was killed between asking
 * for the batch and recording its id. The API's newest batches say whether it was created:
 * if so the row takes its id and the batch is resumed; if not the row goes and its requests
 * are sent in a new batch. Returns false to drop the batch. */
static us_status adopt_pending(us__batcher *bt, batch *b, bool *keep, us_err *err) {
  *keep = false;
  us__call c;
  us__transport_call(bt->tr, "GET", "/batches?limit=100", NULL, NULL, NULL, 0, &c, err);
  cJSON *o = c.answered && c.http_status == 200 ? cJSON_Parse(c.body.data) : NULL;
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");
  us_status st = US_OK;
  if (!cJSON_IsArray(data)) {
    st = us_err_set(err, US_ERR_HTTP,
                    "cannot tell whether the batch over file %s was created (listing the "
                    "batches: %s); nothing was sent again: run again",
                    b->input_file_id, c.answered ? "unexpected answer" : c.error);
    goto done;
  }
  const cJSON *item;
  cJSON_ArrayForEach(item, data) {
    const char *file = json_string(item, "input_file_id"), *id = json_string(item, "id");
    if (!file || !id || strcmp(file, b->input_file_id) != 0) continue;
    const char *status = json_string(item, "status");
    snprintf(b->status, sizeof b->status, "%s", status ? status : "validating");
    st = us_cache_batch_rename(bt->cache, b->id, id, b->status, err);
    if (st) goto done;
    free(b->id);
    b->id = strdup(id);
    *keep = b->id != NULL;
    goto done;
  }
  st = us_cache_batch_delete(bt->cache, b->id, err);
done:
  cJSON_Delete(o);
  us_buf_free(&c.body);
  return st;
}

us_status us__batcher_open(us__transport *tr, const us_teacher_params *p, us_cache *cache,
                           us_label_stats *stats, us__batcher **out, us_err *err) {
  *out = NULL;
  us__batcher *bt = calloc(1, sizeof *bt);
  if (!bt) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  bt->tr = tr, bt->p = p, bt->cache = cache, bt->stats = stats;
  bt->retry_live = p->batch_retry && strcmp(p->batch_retry, "live") == 0;
  /* the batches a killed or interrupted run left open: resumed, never sent again */
  us_batch *open = NULL;
  size_t n_open = 0;
  us_status st = us_cache_batches_open(cache, &open, &n_open, err);
  for (size_t i = 0; i < n_open && !st; i++) {
    batch b;
    memset(&b, 0, sizeof b);
    b.id = open[i].id;
    b.input_file_id = open[i].input_file_id;
    open[i].id = open[i].input_file_id = NULL;
    snprintf(b.status, sizeof b.status, "%s", open[i].status ? open[i].status : "?");
    b.created_at = open[i].created_at;
    b.entries = calloc(open[i].n_keys ? open[i].n_keys : 1, sizeof *b.entries);
    if (!b.entries || !push_batch(bt, &b)) {
      batch_free(&b);
      st = us_err_set(err, US_ERR_NOMEM, "out of memory resuming batches");
      break;
    }
    batch *nb = &bt->batches[bt->n_batches - 1];
    for (size_t k = 0; k < open[i].n_keys; k++)
      snprintf(nb->entries[k].key, 65, "%s", open[i].keys[k]);
    nb->n = open[i].n_keys;
    qsort(nb->entries, nb->n, sizeof *nb->entries, entry_cmp);
    if (strncmp(nb->id, "pending:", 8) == 0) {
      bool keep = false;
      st = adopt_pending(bt, nb, &keep, err);
      if (st || !keep) {
        batch_free(nb);
        bt->n_batches--;
        continue;
      }
    }
    us_log(US_LOG_INFO, "resuming batch %s (%zu requests, last seen %s)", nb->id, nb->n,
           nb->status);
  }
  us_batches_free(open, n_open);
  if (st) {
    us__batcher_close(bt);
    return st;
  }
  update_stats(bt);
  *out = bt;
  return US_OK;
}

void us__batcher_close(us__batcher *bt) {
  if (!bt) return;
  for (size_t i = 0; i < bt->n_batches; i++) batch_free(&bt->batches[i]);
  free(bt->batches);
  free(bt->pending);
  free(bt->live);
  free(bt);
}

int us__batcher_in_flight(const us__batcher *bt) {
  return bt->in_flight;
}

static bool routed_live(const us__batcher *bt, const char *key) {
  for (size_t i = 0; i < bt->n_live; i++)
    if (memcmp(bt->live[i], key, 64) == 0) return true;
  return false;
}

bool us__batcher_take(us__batcher *bt, void *job, const char *body, size_t len, double now) {
  (void)now;
  char key[65];
  us_sha256_hex(body, len, key); /* the body is canonical: this is its cache key */
  if (bt->retry_live && routed_live(bt, key)) return false;
  for (size_t i = 0; i < bt->n_batches; i++) {
    entry *e = find_entry(&bt->batches[i], key);
    if (e && !e->job) { /* an open batch carries it already: wait for that one */
      e->job = job;
      bt->batches[i].attached++;
      bt->in_flight++;
      return true;
    }
  }
  if (bt->n_pending == bt->cap_pending) {
    size_t cap = bt->cap_pending ? bt->cap_pending * 2 : 256;
    entry *grown = realloc(bt->pending, cap * sizeof *grown);
    if (!grown) return false; /* out of memory: live it is */
    bt->pending = grown;
    bt->cap_pending = cap;
  }
  entry *e = &bt->pending[bt->n_pending++];
  memset(e, 0, sizeof *e);
  memcpy(e->key, key, 65);
  e->job = job;
  e->body = body;
  e->len = len;
  bt->in_flight++;
  return true;
}

/* The error body the policy reads for a batch that failed as a whole. */
static char *error_body(const char *message) {
  us_buf b;
  us_buf_init(&b, 0);
  if (us_buf_printf(&b, "{\"error\":{\"message\":") || us_json_quote(&b, message) ||
      us_buf_printf(&b, ",\"type\":\"batch_failed\"}}")) {
    us_buf_free(&b);
    return NULL;
  }
  return us_buf_steal(&b);
}

/* A batch that could not be created: its requests come back as that call's outcome, so the
 * policy retries, records or stops exactly as for a live request answered the same way. */
static void creation_failed(batch *b, const us__call *c, const char *what) {
  b->ended = true;
  snprintf(b->status, sizeof b->status, "not created");
  for (size_t i = 0; i < b->n; i++) {
    entry *e = &b->entries[i];
    e->has_result = true;
    if (c->answered) {
      e->status = c->http_status;
      e->result_body = strdup(c->body.data ? c->body.data : "");
    } else {
      e->status = 0;
      size_t n = strlen(what) + strlen(c->error) + 8;
      e->message = malloc(n);
      if (e->message) snprintf(e->message, n, "%s: %s", what, c->error);
    }
  }
}

/* Uploads the JSONL of entries[0..n) and creates a batch over it; the batch (created or not)
 * joins the batcher, which owns entries from then on. */
static void create_batch(us__batcher *bt, entry *entries, size_t n) {
  batch b;
  memset(&b, 0, sizeof b);
  b.entries = entries;
  b.n = n;
  b.attached = n;
  b.created_at = us_epoch();
  b.next_poll = us_now() + bt->p->batch_poll_s;
  const char **keys = malloc((n ? n : 1) * sizeof *keys);
  us_buf jsonl;
  us_buf_init(&jsonl, 0);
  us__call c;
  memset(&c, 0, sizeof c);
  us_err err = {0};
  for (size_t i = 0; i < n; i++) {
    us__batch_line(&jsonl, entries[i].key, entries[i].body, &err);
    entries[i].body = NULL; /* the job's; not kept */
  }
  qsort(b.entries, b.n, sizeof *b.entries, entry_cmp);
  us__transport_call(bt->tr, "POST", "/files", NULL, "batch", jsonl.data ? jsonl.data : "",
                     jsonl.len, &c, &err);
  us_buf_free(&jsonl);
  cJSON *file = c.answered && c.http_status / 100 == 2 ? cJSON_Parse(c.body.data) : NULL;
  const char *file_id = json_string(file, "id");
  if (!file_id) {
    if (c.answered && c.http_status / 100 == 2) c.http_status = 502; /* not a file object */
    creation_failed(&b, &c, "uploading the batch file");
    goto done;
  }
  b.input_file_id = strdup(file_id);
  /* the row is written before the batch exists, under its input file: a process killed after
   * the API created the batch but before its id was recorded finds it again (adopt_pending) */
  char pending[128];
  snprintf(pending, sizeof pending, "pending:%.100s", file_id);
  for (size_t i = 0; keys && i < n; i++) keys[i] = b.entries[i].key;
  bool recorded =
      keys && us_cache_batch_add(bt->cache, pending, file_id, "creating", keys, n, &err) == US_OK;
  if (!recorded) us_log(US_LOG_WARN, "cannot record the batch about to be created: %s", err.msg);
  us_buf req;
  us_buf_init(&req, 0);
  us_buf_printf(&req, "{\"input_file_id\":");
  us_json_quote(&req, file_id);
  us_buf_printf(&req, ",\"endpoint\":\"%s\",\"completion_window\":\"24h\"}", BATCH_ENDPOINT);
  us_buf_free(&c.body);
  us__transport_call(bt->tr, "POST", "/batches", req.data, NULL, NULL, 0, &c, &err);
  us_buf_free(&req);
  cJSON *created = c.answered && c.http_status / 100 == 2 ? cJSON_Parse(c.body.data) : NULL;
  const char *id = json_string(created, "id");
  if (!id) {
    if (c.answered && c.http_status / 100 == 2) c.http_status = 502;
    if (recorded) us_cache_batch_delete(bt->cache, pending, NULL);
    creation_failed(&b, &c, "creating the batch");
    cJSON_Delete(created);
    goto done;
  }
  b.id = strdup(id);
  const char *status = json_string(created, "status");
  snprintf(b.status, sizeof b.status, "%s", status ? status : "validating");
  cJSON_Delete(created);
  if (getenv("US_TEST_BATCH_EXIT_AFTER_CREATE")) _exit(137); /* tests: a kill in the window */
  /* committed before anything else happens: a killed run resumes this batch */
  us_status st = b.id && keys ? US_OK : us_err_set(&err, US_ERR_NOMEM, "out of memory");
  if (!st)
    st = recorded ? us_cache_batch_rename(bt->cache, pending, b.id, b.status, &err)
                  : us_cache_batch_add(bt->cache, b.id, b.input_file_id, b.status, keys, n, &err);
  if (st)
    us_log(US_LOG_WARN, "batch %s was created but could not be recorded: %s", id, err.msg);
  else
    us_log(US_LOG_INFO, "batch %s created: %zu requests", b.id, n);
  if (bt->stats) bt->stats->batches_created++;
done:
  free(keys);
  cJSON_Delete(file);
  us_buf_free(&c.body);
  if (!push_batch(bt, &b)) batch_free(&b); /* out of memory: its jobs stay in flight */
}

/* Requests taken since the last wait become batches of at most batch_max_requests requests and
 * US_TEACHER_BATCH_MAX_BYTES bytes. */
static void flush_pending(us__batcher *bt) {
  size_t start = 0;
  while (start < bt->n_pending) {
    size_t end = start, bytes = 0;
    while (end < bt->n_pending && end - start < (size_t)bt->p->batch_max_requests) {
      size_t line = bt->pending[end].len + 128;
      if (end > start && bytes + line > US_TEACHER_BATCH_MAX_BYTES) break;
      bytes += line;
      end++;
    }
    entry *entries = malloc((end - start) * sizeof *entries);
    if (!entries) break; /* out of memory: try again at the next wait */
    memcpy(entries, bt->pending + start, (end - start) * sizeof *entries);
    create_batch(bt, entries, end - start);
    start = end;
  }
  memmove(bt->pending, bt->pending + start, (bt->n_pending - start) * sizeof *bt->pending);
  bt->n_pending -= start;
}

/* Reads an output or error file into the batch's entries. */
static void read_file(us__batcher *bt, batch *b, const char *file_id) {
  if (!file_id) return;
  char path[256];
  snprintf(path, sizeof path, "/files/%.200s/content", file_id);
  us__call c;
  us_err err = {0};
  us__transport_call(bt->tr, "GET", path, NULL, NULL, NULL, 0, &c, &err);
  if (!c.answered || c.http_status != 200) {
    us_log(US_LOG_WARN, "batch %s: cannot read file %s: %s", b->id, file_id,
           c.answered ? "unexpected HTTP status" : c.error);
    us_buf_free(&c.body);
    return;
  }
  const char *p = c.body.data ? c.body.data : "", *end = p + c.body.len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    char id[65], message[512];
    long status;
    char *body = NULL;
    if (len > 0 && us__batch_parse_line(p, len, id, &status, &body, message, sizeof message)) {
      entry *e = find_entry(b, id);
      if (e && !e->has_result) {
        e->has_result = true;
        e->status = status;
        e->result_body = body;
        body = NULL;
        if (!status) e->message = strdup(message);
      }
    }
    free(body);
    p += len + 1;
  }
  us_buf_free(&c.body);
}

static bool terminal(const char *status) {
  return strcmp(status, "completed") == 0 || strcmp(status, "expired") == 0 ||
         strcmp(status, "cancelled") == 0 || strcmp(status, "failed") == 0;
}

/* One look at a batch; once it ended, its files are read. */
static void poll_batch(us__batcher *bt, batch *b) {
  char path[256];
  snprintf(path, sizeof path, "/batches/%.200s", b->id);
  us__call c;
  us_err err = {0};
  us__transport_call(bt->tr, "GET", path, NULL, NULL, NULL, 0, &c, &err);
  cJSON *o = c.answered && c.http_status == 200 ? cJSON_Parse(c.body.data) : NULL;
  const char *status = json_string(o, "status");
  if (!status) {
    us_log(US_LOG_WARN, "batch %s: cannot read its status (%s); trying again in %.0f s", b->id,
           c.answered ? "unexpected answer" : c.error, bt->p->batch_poll_s);
    if (c.answered && c.http_status == 404) { /* the API forgot it: its requests go again */
      b->ended = true;
      snprintf(b->status, sizeof b->status, "unknown");
    }
    goto done;
  }
  snprintf(b->status, sizeof b->status, "%s", status);
  const cJSON *counts = cJSON_GetObjectItemCaseSensitive(o, "request_counts");
  const cJSON *done_n = cJSON_GetObjectItemCaseSensitive(counts, "completed");
  const cJSON *failed_n = cJSON_GetObjectItemCaseSensitive(counts, "failed");
  if (cJSON_IsNumber(done_n)) b->completed = (int64_t)done_n->valuedouble;
  if (cJSON_IsNumber(failed_n)) b->failed = (int64_t)failed_n->valuedouble;
  us_cache_batch_status(bt->cache, b->id, b->status, b->completed, b->failed, NULL);
  if (!terminal(status)) goto done;
  if (strcmp(status, "failed") == 0) {
    const cJSON *errors = cJSON_GetObjectItemCaseSensitive(o, "errors");
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(errors, "data"), 0);
    const char *m = json_string(first, "message");
    snprintf(b->reason, sizeof b->reason, "batch %s failed: %s", b->id,
             m ? m : "the API gave no reason");
  }
  read_file(bt, b, json_string(o, "output_file_id"));
  read_file(bt, b, json_string(o, "error_file_id"));
  b->ended = true;
done:
  cJSON_Delete(o);
  us_buf_free(&c.body);
}

void us__batcher_wait(us__batcher *bt) {
  if (bt->n_pending) flush_pending(bt);
  double now = us_now();
  for (size_t i = 0; i < bt->n_batches; i++) {
    batch *b = &bt->batches[i];
    if (b->ended || !b->id || !b->attached || now < b->next_poll) continue;
    poll_batch(bt, b);
    b->next_poll = us_now() + bt->p->batch_poll_s;
  }
  update_stats(bt);
}

static void route_live(us__batcher *bt, const char *key) {
  if (!bt->retry_live || routed_live(bt, key)) return;
  if (bt->n_live == bt->cap_live) {
    size_t cap = bt->cap_live ? bt->cap_live * 2 : 64;
    char(*grown)[65] = realloc(bt->live, cap * sizeof *grown);
    if (!grown) return;
    bt->live = grown;
    bt->cap_live = cap;
  }
  memcpy(bt->live[bt->n_live++], key, 65);
}

/* What one answer cost (and would have cost live), from its usage. */
static void answer_cost(const us__batcher *bt, const char *body, double *spent, double *live) {
  int pt = 0, ct = 0;
  char *content = NULL;
  us_err ignored = {0};
  us_response_parse(body, NULL, 0, &content, &pt, &ct, NULL, NULL, &ignored);
  free(content);
  double cost = (pt > 0 ? pt : 0) * bt->p->price_input_per_mtok / 1e6 +
                (ct > 0 ? ct : 0) * bt->p->price_output_per_mtok / 1e6;
  *live += cost;
  *spent += cost * bt->p->price_batch_discount;
}

/* Hands back every request of the batches that ended, then records each batch as collected
 * (in the transaction the policy opened for their answers, when it did). */
void us__batcher_collect(us__batcher *bt, us__transfer_done_fn done, void *user) {
  size_t kept = 0;
  for (size_t i = 0; i < bt->n_batches; i++) {
    batch *b = &bt->batches[i];
    if (!b->ended || !b->attached) {
      bt->batches[kept++] = *b;
      continue;
    }
    int64_t answered = 0;
    double spent = 0, live = 0;
    char *failed_body = b->reason[0] ? error_body(b->reason) : NULL;
    for (size_t k = 0; k < b->n; k++) {
      entry *e = &b->entries[k];
      if (!e->job) continue; /* nothing asked for it in this run (cached since, or not started) */
      us__transfer_result r;
      memset(&r, 0, sizeof r);
      r.job = e->job;
      r.started = us_now() - (us_epoch() - b->created_at);
      us__resp_headers h;
      us__resp_headers_reset(&h);
      /* a row to retry goes in the next batch with every other one of this batch: no backoff
       * (the batch was the wait) */
      snprintf(h.retry_after, sizeof h.retry_after, "0");
      r.headers = &h;
      r.batch = true;
      char message[600];
      if (e->has_result && e->status) {
        r.answered = true;
        r.http_status = e->status;
        r.body = e->result_body ? e->result_body : "";
        r.body_len = strlen(r.body);
        if (e->status == 200) {
          answered++;
          answer_cost(bt, r.body, &spent, &live);
        } else {
          route_live(bt, e->key);
        }
      } else if (failed_body) {
        r.answered = true;
        r.http_status = 400;
        r.body = failed_body;
        r.body_len = strlen(failed_body);
      } else {
        snprintf(message, sizeof message, "batch %s %s: %s", b->id ? b->id : "(none)", b->status,
                 e->message ? e->message : "no answer for this request");
        r.error = message;
        route_live(bt, e->key);
      }
      bt->in_flight--;
      b->attached--;
      e->job = NULL;
      done(user, &r, us_now());
    }
    free(failed_body);
    if (b->id) us_cache_batch_collected(bt->cache, b->id, b->status, answered, spent, live, NULL);
    if (bt->stats) bt->stats->batch_saved_usd += live - spent;
    batch_free(b);
  }
  bt->n_batches = kept;
  update_stats(bt);
}

void us__batcher_abort(us__batcher *bt, us__transfer_dropped_fn dropped, void *user) {
  for (size_t i = 0; i < bt->n_batches; i++)
    for (size_t k = 0; k < bt->batches[i].n; k++) {
      entry *e = &bt->batches[i].entries[k];
      if (!e->job) continue;
      void *job = e->job;
      e->job = NULL;
      bt->in_flight--;
      bt->batches[i].attached--;
      dropped(user, job);
    }
  for (size_t i = 0; i < bt->n_pending; i++) {
    bt->in_flight--;
    dropped(user, bt->pending[i].job);
  }
  bt->n_pending = 0;
}
