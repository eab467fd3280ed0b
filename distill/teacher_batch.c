/* The Batch API under the teacher's transport (distill/teacher_int.h), in memory that does not
 * grow with the number of prompts. A request taken goes into the draft: its JSONL line
 * ({"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": request}) to a
 * temporary file, its row (key, prompt, attempt, request) to the workspace under "draft:<...>",
 * and the job is let go. A full draft (teacher.batch_max_requests requests or 200 MB) is
 * uploaded to {base_url}/files with purpose "batch" (the row becomes "pending:<file id>"), a batch
 * is created over the file at {base_url}/batches (endpoint "/v1/chat/completions",
 * completion_window "24h") and its id committed to the workspace at once. Every open batch the
 * workspace records is polled (GET {base_url}/batches/{id}) until it is completed, expired,
 * cancelled or failed; then its output and error files (GET {base_url}/files/{id}/content) are
 * streamed line by line, and each request's outcome is handed to the policy as a finished
 * transfer of a job made again from its row. The policy (teacher.c) commits answers, retries and
 * records failures as it does for live transfers, so the cache keys, the commit path and the
 * budget are the same. Memory: the draft's last DRAFT_ROWS rows, one line of a file being read,
 * and, while one batch is collected, its keys (at most 50,000 x 65 bytes). */
#include <cjson/cJSON.h>
#include <errno.h>
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
/* Draft rows written to the workspace together (one transaction). */
#define DRAFT_ROWS 1024
#define DRAFT_SLOTS 2048 /* a hash set over those rows' keys: a power of two > 2 x DRAFT_ROWS */
/* The longest line of an output or error file read: a response of the transport's limit. */
#define LINE_MAX_BYTES (16u << 20)

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

typedef struct batch {
  char *id, *input_file_id;
  char status[24];
  int64_t n; /* requests */
  double created_at, next_poll;
  int64_t completed, failed;
  bool this_run;      /* created by this run: its requests' worst cases are in the policy's sum */
  bool ended;         /* its files are to be read and its requests handed back */
  bool never_created; /* a draft or pending row whose upload or creation failed */
  char *output_file_id, *error_file_id;
  /* never created: the failed call's answer (status, body) or error text */
  long fail_status;
  char *fail_body;
  char reason[800]; /* failed batch, or a call that got no answer: why */
} batch;

/* The batch being filled. */
typedef struct draft {
  char id[64]; /* "draft:<pid>:<n>"; "" when there is none */
  FILE *file;  /* its JSONL */
  size_t n, bytes;
  us_batch_request rows[DRAFT_ROWS]; /* not written to the workspace yet */
  size_t n_rows;
  int16_t slots[DRAFT_SLOTS]; /* index into rows + 1; 0 empty */
} draft;

struct us__batcher {
  us__transport *tr;
  const us_teacher_params *p;
  us_cache *cache;
  us_label_stats *stats;
  us__batch_hooks hooks;
  bool retry_live;
  batch *batches; /* open (created or resumed), and those that ended, until collected */
  size_t n_batches, cap_batches;
  draft *d;
  int drafts;       /* drafts begun by this run (their ids) */
  us_buf line;      /* a line of the JSONL being written, or of a file being read */
  int64_t waiting;  /* requests in the draft and in batches, not handed back */
  char (*live)[65]; /* keys a batch failed, sent live when started again (retry_live) */
  size_t n_live, cap_live;
};

static void batch_free(batch *b) {
  free(b->id);
  free(b->input_file_id);
  free(b->output_file_id);
  free(b->error_file_id);
  free(b->fail_body);
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
    if (bt->batches[i].never_created) continue;
    if (!s->batches_open++)
      snprintf(s->batch_status, sizeof s->batch_status, "%s", bt->batches[i].status);
    s->batch_requests += bt->batches[i].n;
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
                           us_label_stats *stats, const us__batch_hooks *hooks, us__batcher **out,
                           us_err *err) {
  *out = NULL;
  us__batcher *bt = calloc(1, sizeof *bt);
  if (!bt) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  bt->tr = tr, bt->p = p, bt->cache = cache, bt->stats = stats, bt->hooks = *hooks;
  bt->retry_live = p->batch_retry && strcmp(p->batch_retry, "live") == 0;
  us_buf_init(&bt->line, LINE_MAX_BYTES);
  /* the batches a killed or interrupted run left open: resumed, never sent again */
  us_batch *open = NULL;
  size_t n_open = 0;
  us_status st = us_cache_batches_open(cache, &open, &n_open, err);
  for (size_t i = 0; i < n_open && !st; i++) {
    if (strncmp(open[i].id, "draft:", 6) == 0) { /* never uploaded: nothing was sent */
      us_log(US_LOG_INFO, "forgetting %s, never uploaded (%lld requests, read again)", open[i].id,
             (long long)open[i].n_requests);
      st = us_cache_batch_delete(cache, open[i].id, err);
      continue;
    }
    batch b;
    memset(&b, 0, sizeof b);
    b.id = open[i].id;
    b.input_file_id = open[i].input_file_id;
    open[i].id = open[i].input_file_id = NULL;
    snprintf(b.status, sizeof b.status, "%s", open[i].status ? open[i].status : "?");
    b.created_at = open[i].created_at;
    b.n = open[i].n_requests;
    if (strncmp(b.id, "pending:", 8) == 0) {
      bool keep = false;
      st = adopt_pending(bt, &b, &keep, err);
      if (st || !keep) {
        batch_free(&b);
        continue;
      }
    }
    if (!push_batch(bt, &b)) {
      batch_free(&b);
      st = us_err_set(err, US_ERR_NOMEM, "out of memory resuming batches");
      break;
    }
    bt->waiting += b.n;
    us_log(US_LOG_INFO, "resuming batch %s (%lld requests, last seen %s)", b.id, (long long)b.n,
           b.status);
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

static void draft_close(us__batcher *bt) {
  if (!bt->d) return;
  for (size_t i = 0; i < bt->d->n_rows; i++) free(bt->d->rows[i].request);
  if (bt->d->file) fclose(bt->d->file);
  free(bt->d);
  bt->d = NULL;
}

void us__batcher_close(us__batcher *bt) {
  if (!bt) return;
  for (size_t i = 0; i < bt->n_batches; i++) batch_free(&bt->batches[i]);
  free(bt->batches);
  draft_close(bt);
  us_buf_free(&bt->line);
  free(bt->live);
  free(bt);
}

int us__batcher_in_flight(const us__batcher *bt) {
  return bt->waiting > 0x7fffffff ? 0x7fffffff : (int)bt->waiting;
}

static bool routed_live(const us__batcher *bt, const char *key) {
  for (size_t i = 0; i < bt->n_live; i++)
    if (memcmp(bt->live[i], key, 64) == 0) return true;
  return false;
}

/* ---- the draft -------------------------------------------------------------------------- */

static size_t key_slot(const char *key) {
  size_t h = 0;
  for (int i = 0; i < 12; i++)
    h = h * 16 + (size_t)(key[i] <= '9' ? key[i] - '0' : key[i] - 'a' + 10);
  return h & (DRAFT_SLOTS - 1);
}

/* Whether the draft's unwritten rows carry key. */
static bool draft_has(const draft *d, const char *key) {
  for (size_t s = key_slot(key);; s = (s + 1) & (DRAFT_SLOTS - 1)) {
    int16_t i = d->slots[s];
    if (!i) return false;
    if (memcmp(d->rows[i - 1].key, key, 64) == 0) return true;
  }
}

/* Writes the draft's rows to the workspace. */
static us_status draft_flush(us__batcher *bt, us_err *err) {
  draft *d = bt->d;
  if (!d || !d->n_rows) return US_OK;
  us_status st = us_cache_batch_requests_add(bt->cache, d->id, d->rows, d->n_rows, err);
  for (size_t i = 0; i < d->n_rows; i++) free(d->rows[i].request);
  d->n_rows = 0;
  memset(d->slots, 0, sizeof d->slots);
  return st;
}

static const char *temp_dir(void) {
  const char *dir = getenv("TMPDIR");
  return dir && *dir ? dir : "/tmp";
}

/* An anonymous read-write file in $TMPDIR (or /tmp): removed from the folder at once, so it goes
 * when it is closed or the process dies. */
static FILE *temp_file(void) {
  char path[4096];
  snprintf(path, sizeof path, "%s/understudy-batch-XXXXXX", temp_dir());
  int fd = mkstemp(path);
  if (fd < 0) return NULL;
  unlink(path);
  FILE *f = fdopen(fd, "w+");
  if (!f) close(fd);
  return f;
}

static us_status draft_begin(us__batcher *bt, us_err *err) {
  draft *d = calloc(1, sizeof *d);
  if (!d) return us_err_set(err, US_ERR_NOMEM, "out of memory starting a batch");
  snprintf(d->id, sizeof d->id, "draft:%ld:%d", (long)getpid(), ++bt->drafts);
  d->file = temp_file();
  if (!d->file) {
    us_status st = us_err_set(err, US_ERR_IO,
                              "cannot create a temporary file for a batch in %s: %s (set TMPDIR to "
                              "a writable folder)",
                              temp_dir(), strerror(errno));
    free(d);
    return st;
  }
  us_status st = us_cache_batch_add(bt->cache, d->id, "", "draft", NULL, 0, err);
  if (st) {
    fclose(d->file);
    free(d);
    return st;
  }
  bt->d = d;
  return US_OK;
}

static void creation_failed(batch *b, const us__call *c, const char *what) {
  b->ended = true;
  b->never_created = true;
  snprintf(b->status, sizeof b->status, "not created");
  if (c->answered) {
    b->fail_status = c->http_status;
    b->fail_body = strdup(c->body.data ? c->body.data : "");
  } else {
    snprintf(b->reason, sizeof b->reason, "%.200s: %.512s", what, c->error);
  }
}

/* Uploads the draft's file and creates a batch over it. The batch (created or not) joins the
 * batcher; one not created hands its requests back at the next collect with the failed call's
 * outcome, so the policy retries, records or stops exactly as for a live request answered the
 * same way. Fails only when the workspace cannot be written. */
static us_status draft_submit(us__batcher *bt, us_err *err) {
  draft *d = bt->d;
  if (!d) return US_OK;
  us_status st = draft_flush(bt, err);
  if (!st && fflush(d->file) != 0)
    st = us_err_set(err, US_ERR_IO, "cannot write a batch's temporary file: %s", strerror(errno));
  if (st) return st;
  batch b;
  memset(&b, 0, sizeof b);
  b.n = (int64_t)d->n;
  b.this_run = true;
  b.created_at = us_epoch();
  b.next_poll = us_now() + bt->p->batch_poll_s;
  b.id = strdup(d->id);
  us__call c;
  memset(&c, 0, sizeof c);
  us__transport_upload(bt->tr, "/files", "batch", d->file, d->bytes, &c, err);
  draft_close(bt);
  cJSON *file = c.answered && c.http_status / 100 == 2 ? cJSON_Parse(c.body.data) : NULL;
  const char *file_id = json_string(file, "id");
  cJSON *created = NULL;
  if (!b.id) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory creating a batch");
    goto done;
  }
  if (!file_id) {
    if (c.answered && c.http_status / 100 == 2) c.http_status = 502; /* not a file object */
    creation_failed(&b, &c, "uploading the batch file");
    goto push;
  }
  /* the row takes the file's name before the batch exists: a process killed after the API
   * created the batch but before its id was recorded finds it again (adopt_pending) */
  char pending[160];
  snprintf(pending, sizeof pending, "pending:%.140s", file_id);
  b.input_file_id = strdup(file_id);
  st = us_cache_batch_uploaded(bt->cache, b.id, pending, file_id, err);
  if (st) goto done; /* nothing created: the draft row is forgotten by the next run */
  free(b.id);
  b.id = strdup(pending);
  us_buf req;
  us_buf_init(&req, 0);
  us_buf_printf(&req, "{\"input_file_id\":");
  us_json_quote(&req, file_id);
  us_buf_printf(&req, ",\"endpoint\":\"%s\",\"completion_window\":\"24h\"}", BATCH_ENDPOINT);
  us_buf_free(&c.body);
  us__transport_call(bt->tr, "POST", "/batches", req.data, NULL, NULL, 0, &c, err);
  us_buf_free(&req);
  created = c.answered && c.http_status / 100 == 2 ? cJSON_Parse(c.body.data) : NULL;
  const char *id = json_string(created, "id");
  if (!id || !b.id) {
    if (c.answered && c.http_status / 100 == 2) c.http_status = 502;
    creation_failed(&b, &c, "creating the batch");
    goto push;
  }
  const char *status = json_string(created, "status");
  snprintf(b.status, sizeof b.status, "%s", status ? status : "validating");
  /* committed before anything else happens: a killed run resumes this batch */
  st = us_cache_batch_rename(bt->cache, b.id, id, b.status, err);
  free(b.id);
  b.id = strdup(id);
  if (st) {
    us_err_prefix(err,
                  "batch %s was created but could not be recorded (the next run finds it "
                  "by its input file %s)",
                  id, file_id);
    goto done;
  }
  us_log(US_LOG_INFO, "batch %s created: %lld requests", id, (long long)b.n);
  if (bt->stats) bt->stats->batches_created++;
push:
  if (!b.id || !push_batch(bt, &b)) {
    batch_free(&b);
    st = us_err_set(err, US_ERR_NOMEM, "out of memory keeping a batch");
  }
  memset(&b, 0, sizeof b);
done:
  batch_free(&b);
  cJSON_Delete(created);
  cJSON_Delete(file);
  us_buf_free(&c.body);
  update_stats(bt);
  return st;
}

us_status us__batcher_take(us__batcher *bt, void *job, const char *body, size_t len, double now,
                           bool *taken, us_err *err) {
  (void)now;
  *taken = false;
  char key[65];
  us_sha256_hex(body, len, key); /* the body is canonical: this is its cache key */
  if (bt->retry_live && routed_live(bt, key)) return US_OK;
  us_batch_request row;
  memset(&row, 0, sizeof row);
  memcpy(row.key, key, 65);
  bool open = bt->d && draft_has(bt->d, key);
  us_status st = open ? US_OK : us_cache_batch_key_open(bt->cache, key, &open, err);
  if (st) return st;
  if (open) { /* a batch carries it already: its answer comes with that batch */
    bt->hooks.taken(bt->hooks.user, job, true, &row);
    *taken = true;
    return US_OK;
  }
  us_buf_reset(&bt->line);
  st = us__batch_line(&bt->line, key, body, err);
  if (st) return st;
  if (bt->d && (bt->d->n >= (size_t)bt->p->batch_max_requests ||
                bt->d->bytes + bt->line.len > US_TEACHER_BATCH_MAX_BYTES))
    st = draft_submit(bt, err);
  if (!st && !bt->d) st = draft_begin(bt, err);
  if (st) return st;
  draft *d = bt->d;
  if (fwrite(bt->line.data, 1, bt->line.len, d->file) != bt->line.len)
    return us_err_set(err, US_ERR_IO, "cannot write a batch's temporary file: %s", strerror(errno));
  d->bytes += bt->line.len;
  bt->hooks.taken(bt->hooks.user, job, false, &row);
  row.request = malloc(len + 1);
  if (!row.request) return us_err_set(err, US_ERR_NOMEM, "out of memory queueing a batch request");
  memcpy(row.request, body, len);
  row.request[len] = '\0';
  d->rows[d->n_rows] = row;
  size_t s = key_slot(key);
  while (d->slots[s]) s = (s + 1) & (DRAFT_SLOTS - 1);
  d->slots[s] = (int16_t)(++d->n_rows);
  d->n++;
  bt->waiting++;
  *taken = true;
  if (d->n_rows == DRAFT_ROWS) st = draft_flush(bt, err);
  if (!st && d->n >= (size_t)bt->p->batch_max_requests) st = draft_submit(bt, err);
  return st;
}

/* ---- polling ------------------------------------------------------------------------------- */

static bool terminal(const char *status) {
  return strcmp(status, "completed") == 0 || strcmp(status, "expired") == 0 ||
         strcmp(status, "cancelled") == 0 || strcmp(status, "failed") == 0;
}

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

/* One look at a batch; once it ended, it is marked to be collected. */
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
  free(b->output_file_id);
  free(b->error_file_id);
  b->output_file_id = dup_or_null(json_string(o, "output_file_id"));
  b->error_file_id = dup_or_null(json_string(o, "error_file_id"));
  b->ended = true;
done:
  cJSON_Delete(o);
  us_buf_free(&c.body);
}

void us__batcher_wait(us__batcher *bt) {
  if (bt->d) {
    us_err err = {0};
    if (draft_submit(bt, &err)) /* its rows stay in the workspace as a draft: read again */
      us_log(US_LOG_WARN, "cannot create a batch: %s", err.msg);
  }
  double now = us_now();
  for (size_t i = 0; i < bt->n_batches; i++) {
    batch *b = &bt->batches[i];
    if (b->ended || now < b->next_poll) continue;
    poll_batch(bt, b);
    b->next_poll = us_now() + bt->p->batch_poll_s;
  }
  update_stats(bt);
}

/* ---- collecting ---------------------------------------------------------------------------- */

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

/* The batch being collected: its keys (sorted) and which have had their outcome. */
typedef struct collecting {
  us__batcher *bt;
  batch *b;
  char (*keys)[65];
  bool *seen;
  size_t n;
  us__transfer_done_fn done;
  void *user;
  int64_t answered;
  double spent, live;
  bool broken;       /* a request could not be handed back: the batch stays open */
  char *failed_body; /* a failed batch: the error body its unanswered requests get */
} collecting;

static int key_cmp(const void *a, const void *b) {
  return strcmp(a, b);
}

/* Hands one request back with its outcome: status and body (answered), or message. */
static void hand_back(collecting *co, const char *key, long status, const char *body,
                      const char *message) {
  us__batcher *bt = co->bt;
  batch *b = co->b;
  char(*k)[65] = bsearch(key, co->keys, co->n, sizeof *co->keys, key_cmp);
  if (!k || co->seen[k - co->keys]) return;
  co->seen[k - co->keys] = true;
  us_err err = {0};
  bool answered_before = false;
  if (us_cache_call_exists(bt->cache, key, &answered_before, &err) == US_OK && answered_before)
    return; /* committed by an earlier look at this batch, or bought live since */
  us_batch_request row;
  bool found = false;
  if (us_cache_batch_request_get(bt->cache, b->id, key, &row, &found, &err) || !found) {
    co->broken = true;
    return;
  }
  void *job = bt->hooks.revive(bt->hooks.user, &row, b->this_run);
  free(row.request);
  if (!job) {
    co->broken = true;
    return;
  }
  us__transfer_result r;
  memset(&r, 0, sizeof r);
  r.job = job;
  r.started = us_now() - (us_epoch() - b->created_at);
  us__resp_headers h;
  us__resp_headers_reset(&h);
  /* a row to retry goes in the next batch with every other one of this batch: no backoff (the
   * batch was the wait) */
  snprintf(h.retry_after, sizeof h.retry_after, "0");
  r.headers = &h;
  r.batch = true;
  if (status) {
    r.answered = true;
    r.http_status = status;
    r.body = (char *)body;
    r.body_len = strlen(body);
    if (status == 200) {
      co->answered++;
      answer_cost(bt, body, &co->spent, &co->live);
    } else {
      route_live(bt, key);
    }
  } else {
    r.error = message;
    route_live(bt, key);
  }
  co->done(co->user, &r, us_now());
}

/* One line of an output or error file. */
static void take_line(collecting *co, char *line, size_t len) {
  us__transport_scrub(co->bt->tr, line, len);
  char id[65], message[512], full[600] = "";
  long status;
  char *body = NULL;
  if (len > 0 && us__batch_parse_line(line, len, id, &status, &body, message, sizeof message)) {
    if (!status) snprintf(full, sizeof full, "batch %s %s: %s", co->b->id, co->b->status, message);
    hand_back(co, id, status, body ? body : "", full);
  }
  free(body);
}

/* The transport's sink: cuts the stream into lines. */
static bool on_file_data(void *user, const char *data, size_t n) {
  collecting *co = user;
  us_buf *line = &co->bt->line;
  while (n > 0) {
    const char *nl = memchr(data, '\n', n);
    size_t part = nl ? (size_t)(nl - data) : n;
    if (us_buf_append(line, data, part)) return false; /* a line past LINE_MAX_BYTES */
    if (nl) {
      take_line(co, line->data, line->len);
      us_buf_reset(line);
      part++;
    }
    data += part;
    n -= part;
  }
  return true;
}

/* Streams one of the batch's files through take_line; false when it could not be read whole. */
static bool read_file(collecting *co, const char *file_id) {
  if (!file_id) return true;
  char path[256];
  snprintf(path, sizeof path, "/files/%.200s/content", file_id);
  us__call c;
  us_err err = {0};
  us_buf_reset(&co->bt->line);
  us__transport_get_stream(co->bt->tr, path, on_file_data, co, &c, &err);
  bool ok = c.answered && c.http_status == 200;
  if (ok && co->bt->line.len) take_line(co, co->bt->line.data, co->bt->line.len); /* no \n */
  us_buf_reset(&co->bt->line);
  if (!ok)
    us_log(US_LOG_WARN, "batch %s: cannot read file %s (%s); trying again in %.0f s", co->b->id,
           file_id, c.answered ? "unexpected HTTP status" : c.error, co->bt->p->batch_poll_s);
  us_buf_free(&c.body);
  return ok;
}

/* Hands back every request of an ended batch, then records it as collected (in the transaction
 * the policy opened for its answers, when it did). false: it stays open, to be read again. */
static bool collect_batch(us__batcher *bt, batch *b, us__transfer_done_fn done, void *user) {
  collecting co;
  memset(&co, 0, sizeof co);
  co.bt = bt, co.b = b, co.done = done, co.user = user;
  us_err err = {0};
  if (us_cache_batch_keys(bt->cache, b->id, &co.keys, &co.n, &err) ||
      !(co.seen = calloc(co.n ? co.n : 1, 1))) {
    us_log(US_LOG_WARN, "batch %s: cannot list its requests: %s", b->id, err.msg);
    free(co.keys);
    return false;
  }
  bool ok = read_file(&co, b->output_file_id) && read_file(&co, b->error_file_id);
  if (ok) {
    char *failed = NULL;
    if (b->reason[0] && !b->never_created) {
      us_buf fb;
      us_buf_init(&fb, 0);
      if (!us_buf_printf(&fb, "{\"error\":{\"message\":") && !us_json_quote(&fb, b->reason) &&
          !us_buf_printf(&fb, ",\"type\":\"batch_failed\"}}"))
        failed = us_buf_steal(&fb);
      us_buf_free(&fb);
    }
    char message[1100];
    snprintf(message, sizeof message, "batch %.200s %s: %s", b->id, b->status,
             b->reason[0] ? b->reason : "no answer for this request");
    for (size_t i = 0; i < co.n; i++) {
      if (co.seen[i]) continue;
      if (b->never_created && b->fail_status)
        hand_back(&co, co.keys[i], b->fail_status, b->fail_body ? b->fail_body : "", NULL);
      else if (failed)
        hand_back(&co, co.keys[i], 400, failed, NULL);
      else
        hand_back(&co, co.keys[i], 0, NULL, message);
    }
    free(failed);
  }
  free(co.keys);
  free(co.seen);
  if (!ok || co.broken) return false;
  if (b->never_created)
    us_cache_batch_delete(bt->cache, b->id, NULL); /* never a batch: its rows go */
  else
    us_cache_batch_collected(bt->cache, b->id, b->status, co.answered, co.spent, co.live, NULL);
  if (bt->stats) bt->stats->batch_saved_usd += co.live - co.spent;
  return true;
}

void us__batcher_collect(us__batcher *bt, us__transfer_done_fn done, void *user) {
  for (size_t i = 0; i < bt->n_batches;) {
    batch *b = &bt->batches[i];
    if (!b->ended) {
      i++;
      continue;
    }
    if (!collect_batch(bt, b, done, user)) {
      b->ended = false; /* looked at again at the next poll */
      b->next_poll = us_now() + bt->p->batch_poll_s;
      i++;
      continue;
    }
    bt->waiting -= b->n;
    batch_free(b);
    bt->batches[i] = bt->batches[--bt->n_batches];
    break; /* one batch a call: the policy commits its answers before the next is read */
  }
  update_stats(bt);
}

void us__batcher_abort(us__batcher *bt, us__transfer_dropped_fn dropped, void *user) {
  (void)dropped, (void)user;
  if (bt->d) {
    us_cache_batch_delete(bt->cache, bt->d->id, NULL);
    bt->waiting -= (int64_t)bt->d->n;
    draft_close(bt);
  }
  for (size_t i = 0; i < bt->n_batches; i++) {
    if (bt->batches[i].never_created) us_cache_batch_delete(bt->cache, bt->batches[i].id, NULL);
    batch_free(&bt->batches[i]);
  }
  bt->n_batches = 0;
  bt->waiting = 0;
  update_stats(bt);
}
