/* The HTTP side of `understudy serve` (serve/serve.h): libmicrohttpd with a pool of polling
 * threads; a request for the teacher suspends its connection until the teacher gateway's thread
 * resumes it, so no worker thread ever waits on the network. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/log.h"
#include "distill/request.h"
#include "eval/cascade.h"
#include "pipeline/train.h"
#include "serve/serve_int.h"

/* Each connection's libmicrohttpd memory (request line, headers, response headers; the body
 * goes to our own buffer). libmicrohttpd zeroes all of it between two requests of a keep-alive
 * connection, so its default 32 KiB was a measurable share of a student answer. */
#define SERVE_CONNECTION_MEMORY (16u << 10)

/* A request from its first byte to its completion notice. */
typedef struct req_ctx {
  us__server *s;
  struct MHD_Connection *conn;
  double t0;
  us_buf body;
  bool too_big;
  /* the request, once read */
  char *model;
  bool stream, include_usage;
  bool task;
  char *text;        /* the task's {text} */
  double confidence; /* the student's, NAN if not asked */
  char key[65];      /* the teacher request's cache key */
  char *teacher_body;
  /* the teacher's reply, filled on the gateway's thread before the connection is resumed */
  bool waiting;
  us_teacher_reply reply;
  /* work that wakes another thread, kept until the response is on the wire (on_completed): a
   * woken thread on a busy core would otherwise run before the response is sent */
  bool has_log;       /* a teacher answer's row and call, for the log thread */
  us__log_item log;   /* owned while has_log */
  char *audit_answer; /* the student's answer to audit, or NULL */
} req_ctx;

/* ---- responses ------------------------------------------------------------------------- */

/* c as "%.6f" writes it, without printf (every student answer sends one). */
static void format_confidence(double c, char out[32]) {
  if (!(c >= 0 && c < 1e9)) {
    snprintf(out, 32, "%.6f", c);
    return;
  }
  long long micro = llround(c * 1e6);
  char *p = out + 31;
  *p = '\0';
  for (int i = 0; i < 6; i++, micro /= 10) *--p = (char)('0' + micro % 10);
  *--p = '.';
  do {
    *--p = (char)('0' + micro % 10);
    micro /= 10;
  } while (micro);
  memmove(out, p, (size_t)(out + 32 - p));
}

static enum MHD_Result send_response(req_ctx *x, unsigned status, const char *content_type,
                                     const char *body, const char *route) {
  size_t len = body ? strlen(body) : 0;
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", content_type);
  if (route) MHD_add_response_header(r, "x-understudy-route", route);
  if (route && !isnan(x->confidence)) {
    char conf[32];
    format_confidence(x->confidence, conf);
    MHD_add_response_header(r, "x-understudy-confidence", conf);
  }
  if (strncmp(content_type, "text/event-stream", 17) == 0)
    MHD_add_response_header(r, "Cache-Control", "no-cache");
  enum MHD_Result ret = MHD_queue_response(x->conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

static void log_row(req_ctx *x, int route, int status, const char *answer, int pt, int ct,
                    double cost, double saved) {
  us__server *s = x->s;
  double dt = us_now() - x->t0;
  if (route >= 0) us__metrics_observe(s, route, dt);
  us__money_add(s, cost, saved);
  us__log_item it;
  memset(&it, 0, sizeof it);
  it.row = (us_served_row){.created_at = us_epoch(),
                           .route = route >= 0 ? us__route_names[route] : "error",
                           .task = x->task,
                           .http_status = status,
                           .confidence = x->confidence,
                           .threshold = x->task ? s->threshold : NAN,
                           .latency_ms = dt * 1000,
                           .prompt_tokens = pt,
                           .completion_tokens = ct,
                           .cost_usd = cost,
                           .saved_usd = saved,
                           .agree = -1};
  if (s->config->serve.log_prompts) {
    it.prompt = x->task ? us_strdup(x->text) : us_strdup(x->teacher_body ? x->teacher_body : "");
    it.answer = answer ? us_strdup(answer) : NULL;
  }
  us__log_push(s, &it);
}

static enum MHD_Result send_error(req_ctx *x, unsigned status, const char *type, const char *code,
                                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static enum MHD_Result send_error(req_ctx *x, unsigned status, const char *type, const char *code,
                                  const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char *body = us__route_error_body(msg, type, code);
  log_row(x, US__ROUTE_ERROR, (int)status, NULL, 0, 0, 0, 0);
  enum MHD_Result ret = send_response(x, status, "application/json", body, "error");
  free(body);
  return ret;
}

/* Rough token counts for the student's usage object (OpenAI clients expect the field). */
static int approx_tokens(const char *s) {
  return s ? (int)(strlen(s) + 3) / 4 : 0;
}

static void make_id(us__server *s, char id[64]) {
  unsigned long long n = (unsigned long long)atomic_fetch_add(&s->next_id, 1);
  char hex[17], *p = hex + 16;
  *p = '\0';
  do {
    *--p = "0123456789abcdef"[n & 15];
    n >>= 4;
  } while (n);
  memcpy(id, "chatcmpl-us", 11);
  memcpy(id + 11, p, (size_t)(hex + 17 - p));
}

/* A completion body (a teacher's or the cache's) sent as it is, or as SSE chunks. */
static enum MHD_Result send_completion_body(req_ctx *x, const char *body, const char *route) {
  if (!x->stream) return send_response(x, 200, "application/json", body, route);
  char *sse = us__route_stream_from_body(body, x->include_usage);
  if (!sse)
    return send_error(x, 502, "api_error", "teacher_malformed",
                      "the teacher's answer is not a Chat Completions object");
  enum MHD_Result ret = send_response(x, 200, "text/event-stream", sse, route);
  free(sse);
  return ret;
}

/* ---- routes ---------------------------------------------------------------------------- */

static enum MHD_Result answer_by_student(req_ctx *x, const char *answer) {
  us__server *s = x->s;
  char id[64];
  make_id(s, id);
  int pt = approx_tokens(x->text), ct = approx_tokens(answer);
  char *body =
      us__route_completion(id, x->model, us_epoch(), answer, pt, ct, x->stream, x->include_usage);
  if (!body) return send_error(x, 500, "api_error", NULL, "out of memory");
  log_row(x, US__ROUTE_STUDENT, 200, answer, pt, ct, 0, s->teacher_usd_per_request);
  enum MHD_Result ret =
      send_response(x, 200, x->stream ? "text/event-stream" : "application/json", body, "student");
  free(body);
  if (us__audit_draw(s)) x->audit_answer = us_strdup(answer); /* sent in on_completed */
  return ret;
}

/* The workspace's answer for x->key, or NULL. */
static char *cached_answer(us__server *s, const char *key, double *cost) {
  *cost = 0;
  char *body = us__recent_get(s, key);
  if (body) return body;
  if (!us__known_may_hold(s, key)) return NULL;
  us_call call;
  bool found = false;
  pthread_mutex_lock(&s->read_lock);
  us_status st = us_cache_call_get(s->read_cache, key, &call, &found, NULL);
  pthread_mutex_unlock(&s->read_lock);
  if (st || !found) return NULL;
  body = call.response;
  call.response = NULL;
  *cost = call.cost_usd;
  us_call_free_fields(&call);
  return body;
}

static void teacher_replied(void *user, us_teacher_reply *r) {
  req_ctx *x = user;
  us__log_unanswered(x->s, x->key, r);
  x->reply = *r;
  r->body = NULL; /* taken */
  MHD_resume_connection(x->conn);
}

static enum MHD_Result ask_teacher(req_ctx *x) {
  us__server *s = x->s;
  double cost = 0;
  char *cached = cached_answer(s, x->key, &cost);
  if (cached) {
    /* the answer's text only goes in the row when prompts are logged */
    char *content = s->config->serve.log_prompts ? us__route_teacher_content(cached) : NULL;
    log_row(x, US__ROUTE_CACHE, 200, content, 0, 0, 0, cost);
    enum MHD_Result ret = send_completion_body(x, cached, "cache");
    free(content);
    free(cached);
    return ret;
  }
  if (us_teacher_gateway_budget_reached(s->gateway))
    return send_error(x, 429, "insufficient_quota", "budget_reached",
                      "the teacher budget is reached ($%.4f of teacher.budget_usd $%.4f spent or "
                      "possibly billed without an answer): "
                      "the student answers only what it is sure of; raise teacher.budget_usd "
                      "and restart the server",
                      us_teacher_gateway_spent(s->gateway), s->config->teacher.budget_usd);
  x->waiting = true;
  MHD_suspend_connection(x->conn);
  if (us_teacher_gateway_submit(s->gateway, x->teacher_body, strlen(x->teacher_body),
                                teacher_replied, x)) {
    x->waiting = false;
    MHD_resume_connection(x->conn);
    return send_error(x, 503, "api_error", "shutting_down", "the server is shutting down");
  }
  return MHD_YES;
}

/* After the gateway resumed the connection: the teacher's answer, or why there is none. */
static enum MHD_Result teacher_answered(req_ctx *x) {
  us__server *s = x->s;
  us_teacher_reply *r = &x->reply;
  x->waiting = false;
  if (r->status == US_OK) {
    /* the label only for the task (a train prompt's target): mapping an answer onto the labels
     * is most of this thread's work for a request that is not the task */
    char *content = NULL, *label = NULL;
    if (x->task)
      label = us__route_teacher_answer(s, r->body, &content);
    else if (s->config->serve.log_prompts)
      content = us__route_teacher_content(r->body);
    us__recent_put(s, x->key, r->body);
    enum MHD_Result ret = send_completion_body(x, r->body, "teacher");
    double dt = us_now() - x->t0;
    us__metrics_observe(s, US__ROUTE_TEACHER, dt);
    if (r->attempts == 1) us__metrics_added(s, dt - r->wire_ms / 1000);
    us__money_add(s, r->cost_usd, 0);
    us__log_item it;
    memset(&it, 0, sizeof it);
    it.row = (us_served_row){.created_at = us_epoch(),
                             .route = "teacher",
                             .task = x->task,
                             .http_status = 200,
                             .confidence = x->confidence,
                             .threshold = x->task ? s->threshold : NAN,
                             .latency_ms = dt * 1000,
                             .prompt_tokens = r->prompt_tokens,
                             .completion_tokens = r->completion_tokens,
                             .cost_usd = r->cost_usd,
                             .agree = -1};
    if (s->config->serve.log_prompts) {
      it.prompt = us_strdup(x->task ? x->text : x->teacher_body);
      it.answer = content ? us_strdup(content) : NULL;
    }
    us__log_take_call(&it, x->key, &x->teacher_body, r);
    if (x->task) {
      it.store_prompt = true;
      it.text = us_strdup(x->text);
      it.label = s->config->task.type == US_TASK_CLASSIFY ? label : NULL;
      if (it.label) label = NULL;
      it.target_text = content;
      content = NULL;
    }
    x->log = it; /* pushed in on_completed, once the response is sent */
    x->has_log = true;
    free(label);
    free(content);
    return ret;
  }
  if (r->status == US_ERR_BUDGET)
    return send_error(x, 429, "insufficient_quota", "budget_reached", "%s", r->message);
  if (r->status == US_ERR_TEACHER && r->body && r->http_status >= 400) {
    /* the teacher's own refusal (a 400 for a bad parameter) goes back as it gave it */
    log_row(x, US__ROUTE_ERROR, (int)r->http_status, NULL, 0, 0, 0, 0);
    return send_response(x, (unsigned)r->http_status, "application/json", r->body, "teacher");
  }
  return send_error(x, 502, "api_error", "teacher_unreachable", "%s", r->message);
}

/* The distilled task (x->text set): the student when it is sure, else the teacher. */
static enum MHD_Result answer_task(req_ctx *x) {
  us__server *s = x->s;
  us__student *stu = us__student_acquire(s);
  if (stu && !atomic_load(&s->drifted) && s->threshold <= 1) {
    char *answer = NULL;
    bool owned = false;
    us_err err = {0};
    if (us__student_answer(s, stu, x->text, &answer, &owned, &x->confidence, &err) == US_OK) {
      bool sure = s->threshold <= 0 || (s->threshold < 1 && x->confidence >= s->threshold);
      if (sure) {
        enum MHD_Result ret = answer_by_student(x, answer);
        if (owned) free(answer);
        us__student_release(stu);
        return ret;
      }
    } else {
      us_log(US_LOG_WARN, "serve: the student failed on a request: %s", err.msg);
    }
    if (owned) free(answer);
  }
  us__student_release(stu);
  if (us_request_build(&s->config->task, &s->config->teacher, x->text, &x->teacher_body, x->key,
                       NULL))
    return send_error(x, 500, "api_error", NULL, "could not build the teacher request");
  return ask_teacher(x);
}

static enum MHD_Result chat_completions(req_ctx *x) {
  us__server *s = x->s;
  if (x->too_big)
    return send_error(x, 413, "invalid_request_error", "request_too_large",
                      "the request body is larger than serve.max_body_bytes (%d bytes)",
                      s->config->serve.max_body_bytes);
  us__fast_task fast;
  if (x->body.data && us__route_fast_task(s, x->body.data, x->body.len, &fast)) {
    x->model = fast.model;
    x->text = fast.text;
    x->stream = fast.stream;
    x->include_usage = fast.include_usage;
    x->task = true;
    return answer_task(x);
  }
  cJSON *req = cJSON_ParseWithLength(x->body.data ? x->body.data : "", x->body.len);
  if (!req || !cJSON_IsObject(req)) {
    cJSON_Delete(req);
    return send_error(x, 400, "invalid_request_error", "invalid_json",
                      "We could not parse the JSON body of your request: expected a JSON object "
                      "(a Chat Completions request)");
  }
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
  if (!cJSON_IsString(model) || !cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
    cJSON_Delete(req);
    return send_error(x, 400, "invalid_request_error", "missing_required_parameter",
                      "a Chat Completions request needs \"model\" (a string) and \"messages\" "
                      "(a non-empty array)");
  }
  x->model = us_strdup(model->valuestring);
  us__route_stream_flags(req, &x->stream, &x->include_usage);
  x->text = us__route_task_text(s, req);
  x->task = x->text != NULL;
  if (x->task) {
    cJSON_Delete(req);
    return answer_task(x);
  }
  /* not the task: the request as the client sent it, without streaming (the server streams
   * the answer itself), keyed like any teacher call */
  cJSON_DeleteItemFromObjectCaseSensitive(req, "stream");
  cJSON_DeleteItemFromObjectCaseSensitive(req, "stream_options");
  /* an output bound the teacher keeps, so the budget's worst case for it is real: without one
   * the teacher may write up to the model's own limit, far past what was reserved */
  if (!cJSON_GetObjectItemCaseSensitive(req, "max_tokens") &&
      !cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens") &&
      !cJSON_AddNumberToObject(req, "max_tokens", s->config->serve.max_tokens)) {
    cJSON_Delete(req);
    return send_error(x, 500, "api_error", NULL, "out of memory");
  }
  char *plain = cJSON_PrintUnformatted(req);
  cJSON_Delete(req);
  us_status st = plain ? us_json_canonical(plain, &x->teacher_body, NULL) : US_ERR_NOMEM;
  free(plain);
  if (!st) us_sha256_hex(x->teacher_body, strlen(x->teacher_body), x->key);
  if (st) return send_error(x, 500, "api_error", NULL, "could not build the teacher request");
  return ask_teacher(x);
}

static enum MHD_Result list_models(req_ctx *x) {
  const us_config *c = x->s->config;
  us_buf b;
  us_buf_init(&b, 0);
  us_buf_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":");
  us_json_quote(&b, c->teacher.model);
  us_buf_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"understudy\"}");
  if (c->serve.model) {
    us_buf_puts(&b, ",{\"id\":");
    us_json_quote(&b, c->serve.model);
    us_buf_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"understudy\"}");
  }
  us_buf_puts(&b, "]}");
  char *body = us_buf_steal(&b);
  enum MHD_Result ret = send_response(x, 200, "application/json", body, NULL);
  free(body);
  return ret;
}

static enum MHD_Result health(req_ctx *x) {
  us__student *st = us__student_acquire(x->s);
  bool ready = st != NULL;
  us__student_release(st);
  char body[256];
  snprintf(body, sizeof body, "{\"status\":\"%s\",\"student\":%s,\"drift\":%s}",
           ready ? "ok" : "loading", ready ? "true" : "false",
           atomic_load(&x->s->drifted) ? "true" : "false");
  return send_response(x, ready ? 200 : 503, "application/json", body, NULL);
}

static enum MHD_Result metrics(req_ctx *x) {
  char *text = us__metrics_text(x->s);
  enum MHD_Result ret =
      send_response(x, 200, "text/plain; version=0.0.4; charset=utf-8", text, NULL);
  free(text);
  return ret;
}

/* Constant-time comparison of the presented key with each allowed one. */
static bool authorised(us__server *s, struct MHD_Connection *conn) {
  if (!s->api_keys) return true;
  const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
  if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
  const char *key = h + 7;
  size_t len = strlen(key);
  bool ok = false;
  for (char **k = s->api_keys; *k; k++) {
    size_t klen = strlen(*k);
    unsigned char diff = (unsigned char)(klen != len);
    for (size_t i = 0; i < klen; i++) diff |= (unsigned char)((*k)[i] ^ (i < len ? key[i] : 0));
    ok |= diff == 0;
  }
  return ok;
}

static enum MHD_Result dispatch(req_ctx *x, const char *method, const char *url) {
  bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
  if (get && strcmp(url, "/health") == 0) return health(x);
  bool known = strcmp(url, "/v1/chat/completions") == 0 || strcmp(url, "/v1/models") == 0 ||
               strcmp(url, "/metrics") == 0;
  if (known && !authorised(x->s, x->conn))
    return send_error(x, 401, "invalid_request_error", "invalid_api_key",
                      "missing or unknown API key: send one of the keys in $%s as "
                      "\"Authorization: Bearer KEY\"",
                      x->s->config->serve.api_keys_env);
  if (post && strcmp(url, "/v1/chat/completions") == 0) return chat_completions(x);
  if (get && strcmp(url, "/v1/models") == 0) return list_models(x);
  if (get && strcmp(url, "/metrics") == 0) return metrics(x);
  return send_error(x, 404, "invalid_request_error", "unknown_url",
                    "Unknown request URL: %.16s %.200s. understudy serves POST "
                    "/v1/chat/completions, GET /v1/models, /health and /metrics.",
                    method, url);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  (void)version;
  us__server *s = cls;
  req_ctx *x = *con_cls;
  if (!x) {
    x = calloc(1, sizeof *x);
    if (!x) return MHD_NO;
    x->s = s;
    x->conn = conn;
    x->t0 = us_now();
    x->confidence = NAN;
    us_buf_init(&x->body, (size_t)s->config->serve.max_body_bytes);
    /* the body's room at once, rather than doubling up to it */
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    long long want = cl ? strtoll(cl, NULL, 10) : 0; /* saturates; atoll may not */
    if (want > 0 && want <= s->config->serve.max_body_bytes) us_buf_reserve(&x->body, (size_t)want);
    atomic_fetch_add(&s->in_flight, 1);
    *con_cls = x;
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (!x->too_big && us_buf_append(&x->body, upload_data, *upload_data_size)) {
      x->too_big = true;
      us_buf_free(&x->body);
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (x->waiting) return teacher_answered(x);
  return dispatch(x, method, url);
}

/* The number of the serving thread that runs worker, given at its first connection. */
static int worker_index(us__server *s, const void *worker) {
  for (int i = 0; i < US__MAX_WORKERS; i++) {
    const void *w = atomic_load(&s->workers[i]);
    if (w == worker) return i;
    if (!w) {
      const void *none = NULL;
      if (atomic_compare_exchange_strong(&s->workers[i], &none, worker)) return i;
      if (none == worker) return i; /* another connection of the same thread won the slot */
    }
  }
  return -1;
}

/* Counts each serving thread's open connections (understudy_connections in /metrics). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  us__server *s = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
    int i = info ? worker_index(s, info->daemon) : -1;
    *socket_context = (void *)(intptr_t)(i + 1);
    if (i >= 0) atomic_fetch_add(&s->worker_connections[i], 1);
  } else {
    int i = (int)(intptr_t)*socket_context - 1;
    if (i >= 0) atomic_fetch_sub(&s->worker_connections[i], 1);
  }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)conn;
  (void)toe;
  us__server *s = cls;
  req_ctx *x = *con_cls;
  if (!x) return;
  /* also when the client went away: the answer was paid for, the row happened */
  if (x->has_log) us__log_push(s, &x->log);
  if (x->audit_answer && x->text) us__audit_submit(s, x->text, x->audit_answer, x->confidence);
  free(x->audit_answer);
  us_buf_free(&x->body);
  free(x->model);
  free(x->text);
  free(x->teacher_body);
  free(x->reply.body);
  free(x);
  *con_cls = NULL;
  atomic_fetch_sub(&s->in_flight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
  us_log(US_LOG_DEBUG, "serve: libmicrohttpd: %s", msg);
}

/* ---- setup ----------------------------------------------------------------------------- */

static us_status read_api_keys(us__server *s, us_err *err) {
  const char *env = s->config->serve.api_keys_env;
  if (!env) return US_OK;
  const char *v = getenv(env);
  if (!v || !*v)
    return us_err_set(err, US_ERR_CONFIG,
                      "serve.api_keys_env names $%s, which is unset or empty: set it to the "
                      "keys clients must send (comma separated)",
                      env);
  size_t n = 1;
  for (const char *p = v; *p; p++) n += *p == ',';
  s->api_keys = calloc(n + 1, sizeof *s->api_keys);
  if (!s->api_keys) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  size_t k = 0;
  for (const char *p = v; *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    while (len && p[0] == ' ') p++, len--;
    while (len && p[len - 1] == ' ') len--;
    if (len) {
      s->api_keys[k] = malloc(len + 1);
      if (!s->api_keys[k]) return us_err_set(err, US_ERR_NOMEM, "out of memory");
      memcpy(s->api_keys[k], p, len);
      s->api_keys[k++][len] = '\0';
    }
    if (!e) break;
    p = e + 1;
  }
  if (k == 0) return us_err_set(err, US_ERR_CONFIG, "$%s (serve.api_keys_env) holds no key", env);
  return US_OK;
}

/* The recommended cascade threshold from <output>/report.json, on the confidence scale the
 * server uses ([0, 1]; a language model's mean log-probability is exponentiated). */
static us_status report_threshold(us__server *s, double *out, us_err *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/report.json", s->config->output);
  char *text = NULL;
  size_t len = 0;
  us_err why = {0};
  if (us_read_file(path, 64u << 20, &text, &len, &why))
    return us_err_set(err, US_ERR_STATE,
                      "no threshold: serve.threshold is unset and %s cannot be read (%s); run "
                      "`understudy report` (or `run`) first, or set serve.threshold",
                      path, why.msg);
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  const cJSON *rec = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(root, "cascade"), "recommended");
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(rec, "kind");
  const cJSON *thr = cJSON_GetObjectItemCaseSensitive(rec, "threshold");
  us_status st = US_OK;
  if (!cJSON_IsString(kind)) {
    st = us_err_set(err, US_ERR_STATE,
                    "%s has no recommended cascade (cascade.recommended.kind); run `understudy "
                    "report` again, or set serve.threshold",
                    path);
  } else if (strcmp(kind->valuestring, "teacher_only") == 0) {
    *out = 2; /* nothing reaches it: every request goes to the teacher */
  } else if (strcmp(kind->valuestring, "student_only") == 0) {
    *out = 0;
  } else if (cJSON_IsNumber(thr)) {
    *out = s->config->task.type == US_TASK_GENERATE ? exp(thr->valuedouble) : thr->valuedouble;
  } else {
    st = us_err_set(err, US_ERR_STATE, "%s: cascade.recommended.threshold is not a number", path);
  }
  cJSON_Delete(root);
  return st;
}

static us_status server_init(us__server *s, us_pipeline *p, us_err *err) {
  s->config = us_pipeline_config(p);
  s->cache = us_pipeline_cache(p);
  pthread_mutex_init(&s->db_lock, NULL);
  pthread_mutex_init(&s->read_lock, NULL);
  pthread_mutex_init(&s->student_lock, NULL);
  pthread_mutex_init(&s->recent_lock, NULL);
  pthread_mutex_init(&s->audit_lock, NULL);
  pthread_mutex_init(&s->log_lock, NULL);
  pthread_cond_init(&s->log_cond, NULL);
  pthread_cond_init(&s->log_drained, NULL);
  us__known_init(s);
  const us_config *c = s->config;
  s->drift_to_teacher = !c->serve.on_drift || strcmp(c->serve.on_drift, "teacher") == 0;
  s->z = us_normal_quantile(c->quality.confidence);
  us_buf b;
  us_buf_init(&b, 0);
  for (int i = 0; i < c->task.n_labels; i++) {
    if (i) us_buf_puts(&b, ", ");
    us_buf_puts(&b, c->task.labels[i]);
  }
  s->labels_joined = us_buf_steal(&b);
  s->model_path = us_train_model_path(c);
  if (!s->labels_joined || !s->model_path || us__route_prepare(s))
    return us_err_set(err, US_ERR_NOMEM, "out of memory");
  us_status st = read_api_keys(s, err);
  if (st) return st;
  if (c->serve.threshold >= 0) {
    s->threshold = c->serve.threshold;
    s->threshold_from = "serve.threshold";
  } else {
    if ((st = report_threshold(s, &s->threshold, err))) return st;
    s->threshold_from = "report.json";
  }
  if ((st = us__student_load(s, &s->student, err))) {
    us_err_prefix(err, "the student %s (run `understudy train` first)", s->model_path);
    return st;
  }
  if ((st = us_cache_open(us_pipeline_workspace_path(p), &s->read_cache, err))) return st;
  us__known_refresh(s, false);
  us_cache_stats stats;
  if ((st = us_cache_stats_get(s->cache, &stats, err))) return st;
  int64_t paid = stats.calls - stats.calls_imported;
  s->teacher_usd_per_request = paid > 0 ? stats.spent_usd / (double)paid : 0;
  /* the budget counts what the answers cost and what may have been billed without one, as
   * labelling counts it */
  us_cache_spend spend;
  if ((st = us_cache_spend_get(s->cache, &spend, err))) return st;
  double spent = spend.total_usd + spend.unanswered_usd;
  if ((st = us_teacher_gateway_open(&c->teacher, spent, &s->gateway, err))) return st;
  return us__log_start(s, err);
}

static void server_free(us__server *s) {
  us_teacher_gateway_close(s->gateway); /* every audit answered and queued */
  us__log_stop(s);
  us__student_release(s->student);
  us__recent_free(s);
  for (char **k = s->api_keys; k && *k; k++) {
    explicit_bzero(*k, strlen(*k));
    free(*k);
  }
  free(s->api_keys);
  us__route_unprepare(s);
  free(s->labels_joined);
  free(s->model_path);
  us_cache_close(s->read_cache);
  us__known_free(s);
  pthread_mutex_destroy(&s->db_lock);
  pthread_mutex_destroy(&s->read_lock);
  pthread_mutex_destroy(&s->student_lock);
  pthread_mutex_destroy(&s->recent_lock);
  pthread_mutex_destroy(&s->audit_lock);
  pthread_mutex_destroy(&s->log_lock);
  pthread_cond_destroy(&s->log_cond);
  pthread_cond_destroy(&s->log_drained);
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* Stops accepting, lets the requests in flight finish (the teacher's included, within its
 * timeout and retries), then stops the daemon. */
static void drain(us__server *s, struct MHD_Daemon *d, int lfd) {
  close(lfd);
  const us_teacher_params *t = &s->config->teacher;
  double limit = us_now() + t->timeout_s * (t->max_retries + 1) + 30;
  while (atomic_load(&s->in_flight) > 0 && us_now() < limit) sleep_s(0.01);
  MHD_stop_daemon(d);
}

us_status us_serve_run(us_pipeline *p, const us_serve_options *o, us_serve_summary *summary,
                       us_err *err) {
  memset(summary, 0, sizeof *summary);
  const us_config *c = us_pipeline_config(p);
  const char *host = o->host ? o->host : US_SERVE_DEFAULT_HOST;
  struct sockaddr_storage addr;
  bool loopback = false;
  us_status st = us__listen_resolve(host, o->port, &addr, &loopback, err);
  if (st) return st;
  if (!loopback && !c->serve.api_keys_env)
    return us_err_set(err, US_ERR_CONFIG,
                      "refusing to bind %s without client keys: anyone who can reach it could "
                      "spend the teacher budget; set serve.api_keys_env to a variable holding "
                      "the keys clients must send, or bind 127.0.0.1",
                      host);
  us__server *s = calloc(1, sizeof *s);
  if (!s) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  st = server_init(s, p, err);
  struct MHD_Daemon *d = NULL;
  int lfd = -1;
  if (!st) {
    lfd = us__listen_open(&addr);
    if (lfd < 0)
      st = us_err_set(err, US_ERR_IO,
                      "cannot listen on %s port %d: %s (another server on that port? choose "
                      "another with --port, or 0 for any free one)",
                      host, o->port, strerror(errno));
  }
  if (!st) {
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned)c->serve.threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                         MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                         MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVE_CONNECTION_MEMORY,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)4096, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!d) st = us_err_set(err, US_ERR_IO, "cannot start the HTTP server: %s", strerror(errno));
  }
  if (st) {
    if (lfd >= 0) close(lfd);
    server_free(s);
    free(s);
    return st;
  }
  if (o->ready) {
    us_serve_ready r = {.host = host,
                        .port = us__listen_port(lfd),
                        .model = s->model_path,
                        .threshold = s->threshold,
                        .threshold_from = s->threshold_from};
    o->ready(o->user, &r);
  }
  double next_look = us_now() + c->serve.reload_check_s;
  while (!(o->stop && *o->stop)) {
    us__listen_accept(s, d, lfd, 20);
    if (o->reload && *o->reload) {
      *o->reload = 0;
      us__student_maybe_reload(s, true);
    } else if (c->serve.reload_check_s > 0 && us_now() >= next_look) {
      us__student_maybe_reload(s, false);
      next_look = us_now() + c->serve.reload_check_s;
    }
  }
  drain(s, d, lfd);
  us_teacher_gateway_close(s->gateway);
  s->gateway = NULL;
  us__log_stop(s);
  summary->student = atomic_load(&s->requests[US__ROUTE_STUDENT]);
  summary->teacher = atomic_load(&s->requests[US__ROUTE_TEACHER]);
  summary->cache = atomic_load(&s->requests[US__ROUTE_CACHE]);
  summary->errors = atomic_load(&s->requests[US__ROUTE_ERROR]);
  summary->requests = summary->student + summary->teacher + summary->cache + summary->errors;
  summary->audits = s->audits_total;
  summary->audits_agreeing = s->audits_agreeing_total;
  summary->reloads = atomic_load(&s->reloads);
  summary->spent_usd = s->spent_usd;
  summary->saved_usd = s->saved_usd;
  summary->drifted = atomic_load(&s->drifted);
  server_free(s);
  free(s);
  return US_OK;
}
