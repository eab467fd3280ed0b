/* The mock teacher's Batch API: POST /files (multipart form, purpose "batch"), POST /batches,
 * GET /batches (the list, newest first), GET /batches/{id}, GET /files/{id}/content. A batch
 * completes --batch-delay-ms after it was created; each row is then answered as the chat route
 * would answer it and billed at the batch rate (counted apart from live tokens), except rows drawn
 * to fail (--batch-fail-rate: an error-file row with status 500, on a key's first
 * --fault-max-per-key batch attempts) and, in the first --batch-expire batches, about half the
 * rows, left unanswered (error code "batch_expired", batch status "expired"). Everything is in
 * memory. */
#define _GNU_SOURCE /* memmem */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/hash.h"
#include "mock.h"

typedef struct mock_file {
  char id[32];
  char *data;
  size_t len;
} mock_file;

typedef struct mock_batch {
  char id[32], input_file_id[32], output_file_id[32], error_file_id[32];
  double created; /* monotonic seconds */
  time_t created_epoch;
  int ordinal; /* 0 for the first batch created */
  bool processed;
  char status[16];
  int total, completed, failed;
} mock_batch;

static struct {
  pthread_mutex_t lock;
  mock_file *files;
  size_t n_files, cap_files;
  mock_batch *batches;
  size_t n_batches, cap_batches;
} store = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Caller holds the lock. Takes data. */
static mock_file *add_file(char *data, size_t len) {
  if (store.n_files == store.cap_files) {
    size_t cap = store.cap_files ? store.cap_files * 2 : 16;
    mock_file *grown = realloc(store.files, cap * sizeof *grown);
    if (!grown) return NULL;
    store.files = grown;
    store.cap_files = cap;
  }
  mock_file *f = &store.files[store.n_files];
  snprintf(f->id, sizeof f->id, "file-mock%zu", store.n_files + 1);
  f->data = data;
  f->len = len;
  store.n_files++;
  return f;
}

static mock_file *find_file(const char *id) {
  for (size_t i = 0; i < store.n_files; i++)
    if (strcmp(store.files[i].id, id) == 0) return &store.files[i];
  return NULL;
}

static mock_batch *find_batch(const char *id) {
  for (size_t i = 0; i < store.n_batches; i++)
    if (strcmp(store.batches[i].id, id) == 0) return &store.batches[i];
  return NULL;
}

static char *error_json(const char *message, int *status, int code) {
  *status = code;
  return mock_error_body(message, "invalid_request_error", NULL);
}

/* The part of a multipart form named name: its content (not copied) and length. */
static bool form_part(const char *body, size_t len, const char *boundary, const char *name,
                      const char **content, size_t *content_len) {
  char delim[256], want[128];
  snprintf(delim, sizeof delim, "--%s", boundary);
  snprintf(want, sizeof want, "name=\"%s\"", name);
  const char *end = body + len, *p = body;
  size_t dl = strlen(delim);
  while (p < end) {
    const char *start = memmem(p, (size_t)(end - p), delim, dl);
    if (!start) return false;
    start += dl;
    const char *headers_end = memmem(start, (size_t)(end - start), "\r\n\r\n", 4);
    if (!headers_end) return false;
    const char *data = headers_end + 4;
    const char *next = memmem(data, (size_t)(end - data), delim, dl);
    if (!next) return false;
    if (memmem(start, (size_t)(headers_end - start), want, strlen(want))) {
      *content = data;
      *content_len = (size_t)(next - data) >= 2 ? (size_t)(next - data) - 2 : 0; /* \r\n */
      return true;
    }
    p = next;
  }
  return false;
}

static char *upload(const char *content_type, const char *body, size_t len, int *status) {
  const char *b = content_type ? strstr(content_type, "boundary=") : NULL;
  if (!content_type || strncmp(content_type, "multipart/form-data", 19) != 0 || !b)
    return error_json("expected a multipart/form-data upload", status, 400);
  char boundary[200];
  snprintf(boundary, sizeof boundary, "%s", b + 9);
  const char *purpose, *file;
  size_t purpose_len, file_len;
  if (!form_part(body, len, boundary, "purpose", &purpose, &purpose_len) ||
      !form_part(body, len, boundary, "file", &file, &file_len))
    return error_json("the form needs the fields purpose and file", status, 400);
  if (purpose_len != 5 || memcmp(purpose, "batch", 5) != 0)
    return error_json("purpose must be \"batch\"", status, 400);
  char *data = malloc(file_len + 1);
  if (!data) return error_json("out of memory", status, 500);
  memcpy(data, file, file_len);
  data[file_len] = '\0';
  pthread_mutex_lock(&store.lock);
  mock_file *f = add_file(data, file_len);
  char id[32] = "";
  if (f) snprintf(id, sizeof id, "%s", f->id);
  pthread_mutex_unlock(&store.lock);
  if (!f) {
    free(data);
    return error_json("out of memory", status, 500);
  }
  mock_ledger_batch_event("files_uploaded");
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", id);
  cJSON_AddStringToObject(o, "object", "file");
  cJSON_AddNumberToObject(o, "bytes", (double)file_len);
  cJSON_AddNumberToObject(o, "created_at", (double)time(NULL));
  cJSON_AddStringToObject(o, "filename", "batch.jsonl");
  cJSON_AddStringToObject(o, "purpose", "batch");
  char *out = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  *status = 200;
  return out;
}

/* Caller holds the lock. */
static char *batch_json(const mock_batch *b) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", b->id);
  cJSON_AddStringToObject(o, "object", "batch");
  cJSON_AddStringToObject(o, "endpoint", "/v1/chat/completions");
  cJSON_AddNullToObject(o, "errors");
  cJSON_AddStringToObject(o, "input_file_id", b->input_file_id);
  cJSON_AddStringToObject(o, "completion_window", "24h");
  cJSON_AddStringToObject(o, "status", b->status);
  if (b->output_file_id[0])
    cJSON_AddStringToObject(o, "output_file_id", b->output_file_id);
  else
    cJSON_AddNullToObject(o, "output_file_id");
  if (b->error_file_id[0])
    cJSON_AddStringToObject(o, "error_file_id", b->error_file_id);
  else
    cJSON_AddNullToObject(o, "error_file_id");
  cJSON_AddNumberToObject(o, "created_at", (double)b->created_epoch);
  cJSON_AddNumberToObject(o, "expires_at", (double)b->created_epoch + 86400);
  cJSON *counts = cJSON_AddObjectToObject(o, "request_counts");
  cJSON_AddNumberToObject(counts, "total", b->total);
  cJSON_AddNumberToObject(counts, "completed", b->completed);
  cJSON_AddNumberToObject(counts, "failed", b->failed);
  cJSON_AddNullToObject(o, "metadata");
  char *out = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return out;
}

static char *create(const mock_options *o, const char *body, size_t len, int *status) {
  cJSON *req = cJSON_ParseWithLength(body, len);
  const cJSON *file = cJSON_GetObjectItemCaseSensitive(req, "input_file_id");
  const cJSON *endpoint = cJSON_GetObjectItemCaseSensitive(req, "endpoint");
  const cJSON *window = cJSON_GetObjectItemCaseSensitive(req, "completion_window");
  char *out = NULL;
  int ordinal = -1;
  if (!cJSON_IsString(file) || !cJSON_IsString(endpoint) || !cJSON_IsString(window)) {
    out = error_json("input_file_id, endpoint and completion_window are required", status, 400);
  } else if (strcmp(endpoint->valuestring, "/v1/chat/completions") != 0) {
    out = error_json("endpoint must be /v1/chat/completions", status, 400);
  } else if (strcmp(window->valuestring, "24h") != 0) {
    out = error_json("completion_window must be 24h", status, 400);
  } else {
    pthread_mutex_lock(&store.lock);
    mock_file *f = find_file(file->valuestring);
    if (!f) {
      out = error_json("no such file", status, 404);
    } else if (store.n_batches == store.cap_batches &&
               !(store.batches =
                     realloc(store.batches, (store.cap_batches = store.cap_batches * 2 + 8) *
                                                sizeof *store.batches))) {
      out = error_json("out of memory", status, 500);
    } else {
      mock_batch *b = &store.batches[store.n_batches];
      memset(b, 0, sizeof *b);
      b->ordinal = (int)store.n_batches;
      snprintf(b->id, sizeof b->id, "batch_mock%zu", store.n_batches + 1);
      snprintf(b->input_file_id, sizeof b->input_file_id, "%s", f->id);
      snprintf(b->status, sizeof b->status, "validating");
      b->created = mono();
      b->created_epoch = time(NULL);
      for (size_t i = 0; i < f->len; i++) b->total += f->data[i] == '\n';
      store.n_batches++;
      ordinal = b->ordinal;
      out = batch_json(b);
      *status = 200;
    }
    pthread_mutex_unlock(&store.lock);
    if (*status == 200) mock_ledger_batch_event("batches_created");
    if (*status == 200 && o->batch_create_delay_ms > 0 && ordinal == o->batch_create_delay_at) {
      /* created; the answer comes later */
      struct timespec ts = {o->batch_create_delay_ms / 1000,
                            (long)(o->batch_create_delay_ms % 1000) * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  cJSON_Delete(req);
  return out;
}

/* One row's output line, appended to out or err. */
static void process_row(const mock_options *o, const mock_batch *b, const cJSON *row, us_buf *out,
                        us_buf *err, int *completed, int *failed, int line) {
  const cJSON *custom_id = cJSON_GetObjectItemCaseSensitive(row, "custom_id");
  const cJSON *body = cJSON_GetObjectItemCaseSensitive(row, "body");
  const char *cid = cJSON_IsString(custom_id) ? custom_id->valuestring : "";
  char *printed = cJSON_IsObject(body) ? cJSON_PrintUnformatted(body) : NULL;
  char key[65] = "";
  if (printed) us_sha256_hex(printed, strlen(printed), key);
  free(printed);
  cJSON *line_obj = cJSON_CreateObject();
  char rid[96];
  snprintf(rid, sizeof rid, "batch_req_%s_%d", b->id, line);
  cJSON_AddStringToObject(line_obj, "id", rid);
  cJSON_AddStringToObject(line_obj, "custom_id", cid);
  bool expired = b->ordinal < o->batch_expire && mock_unit(o->fault_seed, key, 77) < 0.5;
  us_buf *dest = err;
  if (!key[0]) {
    cJSON *e = cJSON_AddObjectToObject(line_obj, "error");
    cJSON_AddStringToObject(e, "code", "invalid_request");
    cJSON_AddStringToObject(e, "message", "the row has no body");
    cJSON_AddNullToObject(line_obj, "response");
    (*failed)++;
  } else if (expired) {
    cJSON_AddNullToObject(line_obj, "response");
    cJSON *e = cJSON_AddObjectToObject(line_obj, "error");
    cJSON_AddStringToObject(e, "code", "batch_expired");
    cJSON_AddStringToObject(e, "message",
                            "This request could not be executed before the completion window "
                            "expired.");
  } else {
    int64_t attempt = mock_ledger_batch_attempt(key);
    bool fail = attempt < o->fault_max_per_key &&
                mock_unit(o->fault_seed, key, 99 + 2 * (uint64_t)attempt) < o->batch_fail_rate;
    int ptok = 0, ctok = 0, status = 0;
    const char *type = NULL;
    char *message = NULL;
    char *answer =
        fail ? NULL : mock_response_build(o, body, key, &ptok, &ctok, &status, &type, &message);
    cJSON *resp = cJSON_AddObjectToObject(line_obj, "response");
    cJSON_AddStringToObject(resp, "request_id", rid);
    if (answer) {
      mock_ledger_bill_batch(key, ptok, ctok);
      cJSON_AddNumberToObject(resp, "status_code", 200);
      cJSON_AddItemToObject(resp, "body", cJSON_Parse(answer));
      dest = out;
      (*completed)++;
    } else {
      char *eb = fail ? mock_error_body("The server had an error processing your request.",
                                        "server_error", NULL)
                      : mock_error_body(message ? message : "bad request",
                                        type ? type : "invalid_request_error", NULL);
      cJSON_AddNumberToObject(resp, "status_code", fail ? 500 : status);
      cJSON_AddItemToObject(resp, "body", cJSON_Parse(eb ? eb : "{}"));
      free(eb);
      (*failed)++;
    }
    cJSON_AddNullToObject(line_obj, "error");
    free(answer);
    free(message);
  }
  char *text = cJSON_PrintUnformatted(line_obj);
  cJSON_Delete(line_obj);
  if (text) {
    us_buf_printf(dest, "%s\n", text);
    free(text);
  }
}

/* Caller holds the lock: answers every row of b's input file once its delay has passed. */
static void maybe_process(const mock_options *o, mock_batch *b) {
  if (b->processed) return;
  double elapsed_ms = (mono() - b->created) * 1000;
  if (elapsed_ms < o->batch_delay_ms) {
    snprintf(b->status, sizeof b->status, "%s",
             elapsed_ms < o->batch_delay_ms / 4.0 ? "validating" : "in_progress");
    return;
  }
  mock_file *f = find_file(b->input_file_id);
  us_buf out, err;
  us_buf_init(&out, 0);
  us_buf_init(&err, 0);
  const char *p = f ? f->data : "", *end = f ? f->data + f->len : p;
  int line = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    cJSON *row = cJSON_ParseWithLength(p, len);
    if (row) process_row(o, b, row, &out, &err, &b->completed, &b->failed, line++);
    cJSON_Delete(row);
    p += len + 1;
  }
  if (f) { /* read once: a million prompts need not stay in the mock's memory */
    free(f->data);
    f->data = NULL;
    f->len = 0;
  }
  bool expired = b->ordinal < o->batch_expire;
  if (out.len) {
    size_t n = out.len;
    mock_file *of = add_file(us_buf_steal(&out), n);
    if (of) {
      snprintf(b->output_file_id, sizeof b->output_file_id, "%s", of->id);
    }
  }
  if (err.len) {
    size_t n = err.len;
    mock_file *ef = add_file(us_buf_steal(&err), n);
    if (ef) {
      snprintf(b->error_file_id, sizeof b->error_file_id, "%s", ef->id);
    }
  }
  us_buf_free(&out);
  us_buf_free(&err);
  snprintf(b->status, sizeof b->status, "%s", expired ? "expired" : "completed");
  b->processed = true;
}

static char *retrieve(const mock_options *o, const char *id, int *status) {
  pthread_mutex_lock(&store.lock);
  mock_batch *b = find_batch(id);
  char *out = NULL;
  if (!b) {
    out = error_json("No batch found with that id", status, 404);
  } else {
    maybe_process(o, b);
    out = batch_json(b);
    *status = 200;
  }
  pthread_mutex_unlock(&store.lock);
  mock_ledger_batch_event("batch_polls");
  return out;
}

/* GET /batches: the newest first, as the API lists them (one page; ?limit is not read). */
static char *list(int *status) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "object", "list");
  cJSON *data = cJSON_AddArrayToObject(o, "data");
  pthread_mutex_lock(&store.lock);
  for (size_t i = store.n_batches; i-- > 0;) {
    char *one = batch_json(&store.batches[i]);
    cJSON_AddItemToArray(data, cJSON_Parse(one ? one : "{}"));
    free(one);
  }
  pthread_mutex_unlock(&store.lock);
  cJSON_AddBoolToObject(o, "has_more", false);
  char *out = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  *status = 200;
  return out;
}

static char *content(const char *id, int *status) {
  pthread_mutex_lock(&store.lock);
  mock_file *f = find_file(id);
  char *out = NULL;
  if (!f) {
    out = error_json("No such File object", status, 404);
  } else {
    out = malloc(f->len + 1);
    if (out) {
      memcpy(out, f->data, f->len);
      out[f->len] = '\0';
    }
    *status = 200;
  }
  pthread_mutex_unlock(&store.lock);
  return out;
}

char *mock_batch_route(const mock_options *o, const char *method, const char *url,
                       const char *content_type, const char *body, size_t len, int *status) {
  bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
  const char *files = strstr(url, "/files"), *batches = strstr(url, "/batches");
  if (post && files && strcmp(files, "/files") == 0) return upload(content_type, body, len, status);
  if (post && batches && strcmp(batches, "/batches") == 0) return create(o, body, len, status);
  if (get && batches && strcmp(batches, "/batches") == 0) return list(status);
  if (get && batches && strncmp(batches, "/batches/", 9) == 0 && !strchr(batches + 9, '/'))
    return retrieve(o, batches + 9, status);
  if (get && files && strncmp(files, "/files/", 7) == 0) {
    const char *id = files + 7, *slash = strchr(id, '/');
    if (slash && strcmp(slash, "/content") == 0) {
      char fid[64];
      snprintf(fid, sizeof fid, "%.*s", (int)(slash - id), id);
      return content(fid, status);
    }
  }
  return NULL;
}
