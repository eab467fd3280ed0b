/* us_mock_teacher: a loopback OpenAI Chat Completions server (libmicrohttpd, one thread per
 * connection, keep-alive) for the integration tests, the benchmark and the demo. It answers
 * deterministically, bills like a real API, counts what it billed per request key (GET /_stats,
 * POST /_reset), and injects faults on demand. Run with --help for the flags. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/hash.h"
#include "mock.h"

#define MOCK_MAX_BODY (16u << 20)
/* A Batch API input file may be 200 MB (plus the multipart form around it). */
#define MOCK_MAX_UPLOAD (210u << 20)

static mock_options opts;
static atomic_int stopping;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct request_ctx {
  us_buf body;
  bool too_big;
} request_ctx;

/* ---- helpers ------------------------------------------------------------------------------ */

/* Sleeps ms milliseconds, waking early when the server is stopping so SIGTERM is prompt. */
static void sleep_ms(int ms) {
  while (ms > 0 && !atomic_load(&stopping)) {
    int step = ms < 20 ? ms : 20;
    struct timespec ts = {0, (long)step * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
  }
}

static enum MHD_Result send_body(struct MHD_Connection *conn, int status, const char *body,
                                 size_t len, const char *retry_after, const char *retry_after_ms) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "application/json");
  if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
  if (retry_after_ms) MHD_add_response_header(r, "retry-after-ms", retry_after_ms);
  enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int status, const char *message,
                                  const char *type, const char *code) {
  char *body = mock_error_body(message, type, code);
  if (!body) return MHD_NO;
  enum MHD_Result ret = send_body(conn, status, body, strlen(body), NULL, NULL);
  free(body);
  return ret;
}

static enum MHD_Result log_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value) {
  (void)kind;
  fprintf(cls, "%s: %s\n", key, value ? value : "");
  return MHD_YES;
}

/* Appends the request line, headers and body to --log-requests: what a secret-leak test needs
 * to prove the key did reach the server. */
static void log_request(struct MHD_Connection *conn, const char *method, const char *url,
                        const request_ctx *ctx) {
  if (!opts.log_path) return;
  pthread_mutex_lock(&log_lock);
  /* The request log: appended, one block per request, for tests to search. */
  FILE *f = fopen(opts.log_path, "a");
  if (f) {
    fprintf(f, "%s %s\n", method, url);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, log_header, f);
    fprintf(f, "\n%s\n\n", ctx->body.data ? ctx->body.data : "");
    fclose(f);
  }
  pthread_mutex_unlock(&log_lock);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---- faults ------------------------------------------------------------------------------- */

typedef struct partial_body {
  char *data;
  size_t half;
} partial_body;

static ssize_t partial_read(void *cls, uint64_t pos, char *buf, size_t max) {
  partial_body *p = cls;
  if (pos >= p->half)
    return MHD_CONTENT_READER_END_WITH_ERROR; /* MHD closes the connection mid-body */
  size_t n = p->half - (size_t)pos;
  n = n < max ? n : max;
  memcpy(buf, p->data + pos, n);
  return (ssize_t)n;
}

static void partial_free(void *cls) {
  partial_body *p = cls;
  free(p->data);
  free(p);
}

/* A connection closed with SO_LINGER 0 sends a TCP reset: the client sees a transport error. */
static enum MHD_Result reset_connection(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (info) {
    struct linger lg = {1, 0};
    setsockopt(info->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  return MHD_NO;
}

/* Serves fault f for a request whose honest answer would be `good`. Never billed. */
static enum MHD_Result send_fault(struct MHD_Connection *conn, mock_fault f, const char *key,
                                  const char *good) {
  mock_ledger_fault(f);
  switch (f) {
    case MOCK_FAULT_429: {
      bool one = mock_unit(opts.fault_seed, key, 1001) < 0.5;
      bool with_ms = mock_unit(opts.fault_seed, key, 1002) < 0.5;
      char ms[32];
      snprintf(ms, sizeof ms, "%d",
               one ? 200 + (int)(mock_unit(3, key, 5) * 800) : (int)(mock_unit(3, key, 5) * 100));
      char *body = mock_error_body("Rate limit reached for requests. Please try again shortly.",
                                   "requests", "rate_limit_exceeded");
      enum MHD_Result ret =
          send_body(conn, 429, body, strlen(body), one ? "1" : "0", with_ms ? ms : NULL);
      free(body);
      return ret;
    }
    case MOCK_FAULT_500:
      return send_error(conn, 500,
                        "The server had an error while processing your request. Sorry about that!",
                        "server_error", NULL);
    case MOCK_FAULT_503:
      return send_error(conn, 503, "The engine is currently overloaded, please try again later.",
                        "server_error", NULL);
    case MOCK_FAULT_TIMEOUT:
      sleep_ms(opts.timeout_delay_ms);
      return reset_connection(conn);
    case MOCK_FAULT_MALFORMED: {
      static const char junk[] =
          "{\"id\": \"chatcmpl-mock\", \"object\": chat.completion <html>"
          "<body>502 Bad Gateway</body></html>";
      return send_body(conn, 200, junk, sizeof junk - 1, NULL, NULL);
    }
    case MOCK_FAULT_TRUNCATED:
      return send_body(conn, 200, good, strlen(good) / 2, NULL, NULL);
    case MOCK_FAULT_PARTIAL: {
      partial_body *p = malloc(sizeof *p);
      if (!p || !(p->data = strdup(good))) {
        free(p);
        return MHD_NO;
      }
      size_t len = strlen(good);
      p->half = len / 2;
      struct MHD_Response *r =
          MHD_create_response_from_callback(len, 4096, partial_read, p, partial_free);
      if (!r) {
        partial_free(p);
        return MHD_NO;
      }
      MHD_add_response_header(r, "Content-Type", "application/json");
      enum MHD_Result ret = MHD_queue_response(conn, 200, r);
      MHD_destroy_response(r);
      return ret;
    }
    case MOCK_FAULT_RESET:
    default:
      return reset_connection(conn);
  }
}

/* ---- the chat route ----------------------------------------------------------------------- */

static void add_ratelimit_headers(struct MHD_Response *r) {
  int64_t reqs, toks;
  mock_ledger_minute(&reqs, &toks);
  char v[64];
  int reset = 60 - (int)(time(NULL) % 60);
  snprintf(v, sizeof v, "%d", opts.ratelimit_requests);
  MHD_add_response_header(r, "x-ratelimit-limit-requests", v);
  snprintf(v, sizeof v, "%lld",
           (long long)(reqs < opts.ratelimit_requests ? opts.ratelimit_requests - reqs : 0));
  MHD_add_response_header(r, "x-ratelimit-remaining-requests", v);
  snprintf(v, sizeof v, "%ds", reset);
  MHD_add_response_header(r, "x-ratelimit-reset-requests", v);
  snprintf(v, sizeof v, "%d", opts.ratelimit_tokens);
  MHD_add_response_header(r, "x-ratelimit-limit-tokens", v);
  snprintf(v, sizeof v, "%lld",
           (long long)(toks < opts.ratelimit_tokens ? opts.ratelimit_tokens - toks : 0));
  MHD_add_response_header(r, "x-ratelimit-remaining-tokens", v);
  snprintf(v, sizeof v, "%ds", reset);
  MHD_add_response_header(r, "x-ratelimit-reset-tokens", v);
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, const char *body, const char *key) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  char id[48];
  snprintf(id, sizeof id, "req_%.32s", key);
  MHD_add_response_header(r, "Content-Type", "application/json");
  MHD_add_response_header(r, "x-request-id", id);
  MHD_add_response_header(r, "openai-processing-ms", "1");
  if (opts.ratelimit_headers) add_ratelimit_headers(r);
  enum MHD_Result ret = MHD_queue_response(conn, 200, r);
  MHD_destroy_response(r);
  return ret;
}

/* 401 unless the Authorization header carries the required key. The message masks the key the
 * way OpenAI does, so a client that prints the server's message leaks no full key. */
static bool key_accepted(struct MHD_Connection *conn, char *message, size_t cap) {
  if (!opts.require_key) return true;
  const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
  if (auth && strncmp(auth, "Bearer ", 7) == 0 && strcmp(auth + 7, opts.require_key) == 0)
    return true;
  const char *given = auth && strncmp(auth, "Bearer ", 7) == 0 ? auth + 7 : "";
  size_t n = strlen(given);
  if (n >= 10)
    snprintf(message, cap,
             "Incorrect API key provided: %.3s***%s. You can find your API key at "
             "https://platform.openai.com/account/api-keys.",
             given, given + n - 4);
  else
    snprintf(message, cap, "You didn't provide an API key (Authorization: Bearer KEY).");
  return false;
}

static const char *status_code_name(int status) {
  switch (status) {
    case 401:
      return "invalid_api_key";
    case 403:
      return "unsupported_country_region_territory";
    case 404:
      return "model_not_found";
    case 429:
      return "insufficient_quota";
    default:
      return NULL;
  }
}

static enum MHD_Result handle_chat(struct MHD_Connection *conn, const request_ctx *ctx) {
  char message[512];
  if (opts.fail_status) {
    snprintf(message, sizeof message, "The mock teacher answers every request with %d.",
             opts.fail_status);
    if (opts.fail_status == 401) snprintf(message, sizeof message, "Incorrect API key provided.");
    return send_error(conn, opts.fail_status, message,
                      opts.fail_status >= 500 ? "server_error" : "invalid_request_error",
                      status_code_name(opts.fail_status));
  }
  if (!key_accepted(conn, message, sizeof message))
    return send_error(conn, 401, message, "invalid_request_error", "invalid_api_key");
  if (ctx->too_big)
    return send_error(conn, 413, "request body too large", "invalid_request_error", NULL);

  const char *raw = ctx->body.data ? ctx->body.data : "";
  char key[65];
  us_sha256_hex(raw, ctx->body.len, key);
  int64_t attempt = mock_ledger_attempt(key);
  cJSON *req = cJSON_ParseWithLength(raw, ctx->body.len);
  if (!cJSON_IsObject(req)) {
    cJSON_Delete(req);
    return send_error(conn, 400, "We could not parse the JSON body of your request.",
                      "invalid_request_error", NULL);
  }
  int status = 0;
  mock_usage usage = {0, 0, 0, 0};
  const char *type = NULL;
  char *err_message = NULL;
  char *body = mock_response_build_usage(&opts, req, key, &usage, &status, &type, &err_message);
  cJSON_Delete(req);
  if (!body) {
    enum MHD_Result ret = send_error(conn, status, err_message ? err_message : "bad request", type,
                                     status_code_name(status));
    free(err_message);
    return ret;
  }
  sleep_ms(opts.latency_ms);
  mock_fault f = mock_fault_draw(&opts, key, attempt);
  enum MHD_Result ret;
  if (f == MOCK_FAULT_SLOW) {
    /* a slow model: the answer comes (and is billed) after the client may have given up */
    mock_ledger_fault(f);
    sleep_ms(opts.slow_ms);
    mock_ledger_bill_usage(key, &usage, mock_usage_usd(&opts, &usage));
    ret = send_answer(conn, body, key);
  } else if (f != MOCK_FAULT_NONE) {
    ret = send_fault(conn, f, key, body);
  } else {
    /* Billed once the answer exists, as a real API does, whether or not the client is still
     * there to read it. */
    mock_ledger_bill_usage(key, &usage, mock_usage_usd(&opts, &usage));
    ret = send_answer(conn, body, key);
  }
  free(body);
  return ret;
}

/* ---- routing ------------------------------------------------------------------------------ */

static enum MHD_Result send_models(struct MHD_Connection *conn) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "object", "list");
  cJSON *data = cJSON_AddArrayToObject(o, "data");
  int n = opts.n_models ? opts.n_models : 1;
  for (int i = 0; i < n; i++) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", opts.n_models ? opts.models[i] : "mock-teacher");
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 1700000000);
    cJSON_AddStringToObject(m, "owned_by", "understudy-mock");
    cJSON_AddItemToArray(data, m);
  }
  char *body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  enum MHD_Result ret = body ? send_body(conn, 200, body, strlen(body), NULL, NULL) : MHD_NO;
  free(body);
  return ret;
}

static enum MHD_Result route(struct MHD_Connection *conn, const char *url, const char *method,
                             request_ctx *ctx) {
  bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
  if (get && strcmp(url, "/_stats") == 0) {
    char *json = mock_ledger_json();
    enum MHD_Result ret = json ? send_body(conn, 200, json, strlen(json), NULL, NULL) : MHD_NO;
    free(json);
    return ret;
  }
  if (post && strcmp(url, "/_reset") == 0) {
    mock_ledger_reset();
    static const char ok[] = "{\"reset\":true}";
    return send_body(conn, 200, ok, sizeof ok - 1, NULL, NULL);
  }
  mock_ledger_request();
  log_request(conn, method, url, ctx);
  if (post && ends_with(url, "/chat/completions")) {
    mock_ledger_in_flight(1);
    enum MHD_Result ret = handle_chat(conn, ctx);
    mock_ledger_in_flight(-1);
    return ret;
  }
  if (get && ends_with(url, "/models")) return send_models(conn);
  int status = 0;
  const char *content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
  char *batch_body = mock_batch_route(&opts, method, url, content_type,
                                      ctx->body.data ? ctx->body.data : "", ctx->body.len, &status);
  if (batch_body || status) {
    char message[512];
    if (!key_accepted(conn, message, sizeof message)) {
      free(batch_body);
      return send_error(conn, 401, message, "invalid_request_error", "invalid_api_key");
    }
    enum MHD_Result ret =
        batch_body ? send_body(conn, status, batch_body, strlen(batch_body), NULL, NULL) : MHD_NO;
    free(batch_body);
    return ret;
  }
  char message[512];
  snprintf(message, sizeof message, "Invalid URL (%s %.400s)", method, url);
  return send_error(conn, 404, message, "invalid_request_error", NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  (void)cls;
  (void)version;
  request_ctx *ctx = *con_cls;
  if (!ctx) {
    ctx = calloc(1, sizeof *ctx);
    if (!ctx) return MHD_NO;
    const char *files = strstr(url, "/files");
    us_buf_init(&ctx->body,
                files && strcmp(files, "/files") == 0 ? MOCK_MAX_UPLOAD : MOCK_MAX_BODY);
    *con_cls = ctx;
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (!ctx->too_big && us_buf_append(&ctx->body, upload_data, *upload_data_size) != US_OK)
      ctx->too_big = true;
    *upload_data_size = 0;
    return MHD_YES;
  }
  return route(conn, url, method, ctx);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)cls;
  (void)conn;
  (void)toe;
  request_ctx *ctx = *con_cls;
  if (ctx) {
    us_buf_free(&ctx->body);
    free(ctx);
    *con_cls = NULL;
  }
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  (void)cls;
  (void)conn;
  (void)socket_context;
  mock_ledger_connection(toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

/* ---- flags -------------------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "us_mock_teacher: a loopback OpenAI Chat Completions server for tests and demos\n\n"
          "usage: us_mock_teacher [options]\n"
          "  --port N              port to listen on; 0 (default) picks a free one\n"
          "  --port-file FILE      write the bound port to FILE (atomically) once listening\n"
          "  --host 127.0.0.1      the only address accepted (loopback only)\n"
          "  --answers FILE        JSONL {\"text\": ..., \"answer\": ...}: answers by prompt text\n"
          "  --template STRING     the task template, with {text} (and {labels}); the prompt\n"
          "                        text is what fills {text} in the last user message\n"
          "                        (default \"{text}\")\n"
          "  --question-template S self-instruct question request, with {chunk} and {n}\n"
          "                        (default understudy's data.question_template); answered\n"
          "                        with numbered questions from the chunk's sentences\n"
          "  --answer-template S   self-instruct answer request, with {chunk} and {question}\n"
          "                        (default understudy's data.answer_template); answered with\n"
          "                        the chunk's sentence sharing the most words with the question\n"
          "  --labels a,b,c        labels; a text with no --answers entry gets\n"
          "                        labels[hash(text) %% n]\n"
          "  --answer-noise P      answer this fraction of --answers texts with another label\n"
          "                        (fixed per text: a teacher that is sometimes wrong)\n"
          "  --models a,b          accepted models (others get 404); default any\n");
  fprintf(f,
          "  --disagree-after N    answer the label after the usual one once N chat requests\n"
          "                        were answered (a teacher that drifts from the student)\n"
          "  --latency-ms N        delay before every chat answer (default 0)\n"
          "  --fault-rate P        probability that an attempt faults (default 0)\n"
          "  --fault-seed S        seed of the fault draw (default 1)\n"
          "  --faults LIST         faults drawn from: 429,500,503,timeout,malformed,truncated,\n"
          "                        partial,reset,slow or all (all but slow; default\n"
          "                        429,500,503)\n"
          "  --fault-max-per-key K a key's k-th attempt may fault only while k < K (default 2)\n"
          "  --timeout-delay-ms N  how long a timeout fault stalls before closing (default 5000)\n"
          "  --slow-ms N           how long a slow fault takes before it answers, billed, even\n"
          "                        if the client has gone (default 5000)\n"
          "  --price-input D, --price-output D, --price-cached D   US$ per million prompt,\n"
          "                        completion (reasoning included) and cached prompt tokens, for\n"
          "                        /_stats billed_usd (default 0; cached: the input price)\n"
          "  --prompt-cache        report usage.prompt_tokens_details.cached_tokens: the tokens\n"
          "                        before the prompt text, when that prefix was seen before\n"
          "  --prompt-cache-min N, --prompt-cache-step N   a prefix is cached from N tokens\n"
          "                        (default 1024), in steps of N (default 128)\n"
          "  --reasoning-tokens N  add N reasoning tokens to every answer (within max_tokens)\n"
          "  --fail-status CODE    answer every chat request with CODE and an error body\n"
          "  --answer-text TEXT    answer every chat request with TEXT\n"
          "  --answer-bytes N      pad every answer to N bytes, ignoring max_tokens\n"
          "  --require-key VALUE   401 unless Authorization: Bearer VALUE\n"
          "  --log-requests FILE   append every request's line, headers and body to FILE\n"
          "  --ratelimit-headers   send x-ratelimit-limit/remaining/reset-* headers\n"
          "  --ratelimit-requests N, --ratelimit-tokens N   advertised per-minute limits\n"
          "  --batch-delay-ms N    a batch completes N ms after it is created (default 0)\n"
          "  --batch-create-delay-ms N  POST /batches creates the batch, then answers N ms\n"
          "                        later (a client killed meanwhile never learns its id)\n"
          "  --batch-create-delay-at K  ... for the K-th batch created only (0-based; default 0)\n"
          "  --batch-fail-rate P   fraction of batch rows answered with a 500 on a key's first\n"
          "                        --fault-max-per-key batch attempts (default 0)\n"
          "  --batch-expire N      the first N batches expire, about half their rows unanswered\n"
          "  --die-with-parent     exit when the parent process exits\n"
          "  --quiet               no start-up line on stderr\n"
          "  --verbose             also log connection errors (libmicrohttpd) on stderr\n\n"
          "routes: POST <any>/chat/completions, GET <any>/models, POST <any>/files,\n"
          "  POST <any>/batches, GET <any>/batches[/ID], GET <any>/files/ID/content,\n"
          "  GET /_stats, POST /_reset\n"
          "Stops cleanly on SIGTERM or SIGINT.\n");
}

static int split_list(char *s, char **out, int max) {
  int n = 0;
  for (char *save = NULL, *tok = strtok_r(s, ",", &save); tok && n < max;
       tok = strtok_r(NULL, ",", &save))
    out[n++] = tok;
  return n;
}

static bool parse_int(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

static bool parse_faults(char *list) {
  opts.n_faults = 0;
  if (strcmp(list, "all") == 0) {
    for (int f = 1; f < MOCK_FAULT_COUNT; f++)
      if (f != MOCK_FAULT_SLOW) opts.faults[opts.n_faults++] = (mock_fault)f;
    return true;
  }
  char *names[MOCK_MAX_FAULTS];
  int n = split_list(list, names, MOCK_MAX_FAULTS);
  for (int i = 0; i < n; i++) {
    mock_fault f = mock_fault_parse(names[i]);
    if (f == MOCK_FAULT_NONE) {
      fprintf(stderr, "us_mock_teacher: unknown fault '%s' in --faults\n", names[i]);
      return false;
    }
    opts.faults[opts.n_faults++] = f;
  }
  return true;
}

/* Returns 0 to run, or the exit status. */
static int parse_flags(int argc, char **argv) {
  opts.template_text = "{text}";
  opts.question_template =
      "Here is a passage from a document:\n\n{chunk}\n\nWrite {n} different questions that the "
      "passage answers. Put each question on its own line, without numbering.";
  opts.answer_template =
      "Answer the question using only the passage below.\n\nPassage:\n{chunk}\n\nQuestion: "
      "{question}";
  opts.fault_seed = 1;
  opts.fault_max_per_key = 2;
  opts.timeout_delay_ms = 5000;
  opts.disagree_after = -1;
  opts.slow_ms = 5000;
  opts.price_cached = -1;
  opts.prompt_cache_min = 1024;
  opts.prompt_cache_step = 128;
  opts.ratelimit_requests = 10000;
  opts.ratelimit_tokens = 2000000;
  static char default_faults[] = "429,500,503";
  parse_faults(default_faults);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    char *v = i + 1 < argc ? argv[i + 1] : NULL;
    long n = 0;
    bool takes = true, ok = v != NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return -1;
    } else if (strcmp(a, "--ratelimit-headers") == 0) {
      opts.ratelimit_headers = true, takes = false, ok = true;
    } else if (strcmp(a, "--die-with-parent") == 0) {
      opts.die_with_parent = true, takes = false, ok = true;
    } else if (strcmp(a, "--prompt-cache") == 0) {
      opts.prompt_cache = true, takes = false, ok = true;
    } else if (strcmp(a, "--quiet") == 0) {
      opts.quiet = true, takes = false, ok = true;
    } else if (strcmp(a, "--verbose") == 0) {
      opts.verbose = true, takes = false, ok = true;
    } else if (!v) {
      ok = false;
    } else if (strcmp(a, "--port") == 0) {
      ok = parse_int(v, 0, 65535, &n), opts.port = (int)n;
    } else if (strcmp(a, "--port-file") == 0) {
      opts.port_file = v;
    } else if (strcmp(a, "--host") == 0) {
      if (strcmp(v, "127.0.0.1") != 0) {
        fprintf(stderr,
                "us_mock_teacher: --host %s refused: the mock listens on 127.0.0.1 "
                "only\n",
                v);
        return 2;
      }
    } else if (strcmp(a, "--answers") == 0) {
      opts.answers_path = v;
    } else if (strcmp(a, "--template") == 0) {
      opts.template_text = v;
    } else if (strcmp(a, "--question-template") == 0) {
      opts.question_template = v;
    } else if (strcmp(a, "--answer-template") == 0) {
      opts.answer_template = v;
    } else if (strcmp(a, "--labels") == 0) {
      opts.n_labels = split_list(v, opts.labels, MOCK_MAX_LABELS);
    } else if (strcmp(a, "--models") == 0) {
      opts.n_models = split_list(v, opts.models, MOCK_MAX_LABELS);
    } else if (strcmp(a, "--answer-noise") == 0) {
      char *end;
      opts.answer_noise = strtod(v, &end);
      ok = end != v && !*end && opts.answer_noise >= 0 && opts.answer_noise <= 1;
    } else if (strcmp(a, "--disagree-after") == 0) {
      char *end;
      opts.disagree_after = strtol(v, &end, 10);
      ok = end != v && !*end && opts.disagree_after >= 0;
    } else if (strcmp(a, "--latency-ms") == 0) {
      ok = parse_int(v, 0, 600000, &n), opts.latency_ms = (int)n;
    } else if (strcmp(a, "--fault-rate") == 0) {
      char *end;
      opts.fault_rate = strtod(v, &end);
      ok = end != v && !*end && opts.fault_rate >= 0 && opts.fault_rate <= 1;
    } else if (strcmp(a, "--fault-seed") == 0) {
      ok = parse_int(v, 0, 0x7fffffffL, &n), opts.fault_seed = (uint64_t)n;
    } else if (strcmp(a, "--faults") == 0) {
      if (!parse_faults(v)) return 2;
    } else if (strcmp(a, "--fault-max-per-key") == 0) {
      ok = parse_int(v, 0, 1000, &n), opts.fault_max_per_key = (int)n;
    } else if (strcmp(a, "--timeout-delay-ms") == 0) {
      ok = parse_int(v, 0, 600000, &n), opts.timeout_delay_ms = (int)n;
    } else if (strcmp(a, "--slow-ms") == 0) {
      ok = parse_int(v, 0, 600000, &n), opts.slow_ms = (int)n;
    } else if (strcmp(a, "--prompt-cache-min") == 0) {
      ok = parse_int(v, 0, 10000000, &n), opts.prompt_cache_min = (int)n;
    } else if (strcmp(a, "--prompt-cache-step") == 0) {
      ok = parse_int(v, 1, 10000000, &n), opts.prompt_cache_step = (int)n;
    } else if (strcmp(a, "--reasoning-tokens") == 0) {
      ok = parse_int(v, 0, 1000000, &n), opts.reasoning_tokens = (int)n;
    } else if (strcmp(a, "--price-input") == 0 || strcmp(a, "--price-output") == 0 ||
               strcmp(a, "--price-cached") == 0) {
      char *end;
      double d = strtod(v, &end);
      ok = end != v && !*end && d >= 0 && d <= 1e6;
      *(a[8] == 'i'   ? &opts.price_input
        : a[8] == 'o' ? &opts.price_output
                      : &opts.price_cached) = d;
    } else if (strcmp(a, "--fail-status") == 0) {
      ok = parse_int(v, 400, 599, &n), opts.fail_status = (int)n;
    } else if (strcmp(a, "--answer-text") == 0) {
      opts.answer_text = v;
    } else if (strcmp(a, "--answer-bytes") == 0) {
      ok = parse_int(v, 1, 100000000L, &n), opts.answer_bytes = n;
    } else if (strcmp(a, "--require-key") == 0) {
      opts.require_key = v;
    } else if (strcmp(a, "--log-requests") == 0) {
      opts.log_path = v;
    } else if (strcmp(a, "--batch-create-delay-at") == 0) {
      ok = parse_int(v, 0, 1000000L, &n), opts.batch_create_delay_at = (int)n;
    } else if (strcmp(a, "--batch-create-delay-ms") == 0) {
      ok = parse_int(v, 0, 86400000L, &n), opts.batch_create_delay_ms = (int)n;
    } else if (strcmp(a, "--batch-delay-ms") == 0) {
      ok = parse_int(v, 0, 86400000L, &n), opts.batch_delay_ms = (int)n;
    } else if (strcmp(a, "--batch-fail-rate") == 0) {
      char *end;
      opts.batch_fail_rate = strtod(v, &end);
      ok = end != v && !*end && opts.batch_fail_rate >= 0 && opts.batch_fail_rate <= 1;
    } else if (strcmp(a, "--batch-expire") == 0) {
      ok = parse_int(v, 0, 1000000L, &n), opts.batch_expire = (int)n;
    } else if (strcmp(a, "--ratelimit-requests") == 0) {
      ok = parse_int(v, 1, 1000000000L, &n), opts.ratelimit_requests = (int)n;
    } else if (strcmp(a, "--ratelimit-tokens") == 0) {
      ok = parse_int(v, 1, 2000000000L, &n), opts.ratelimit_tokens = (int)n;
    } else {
      fprintf(stderr, "us_mock_teacher: unknown option '%s' (try --help)\n", a);
      return 2;
    }
    if (!ok) {
      fprintf(stderr, "us_mock_teacher: %s needs a valid value%s%s%s\n", a, v ? " (got '" : "",
              v ? v : "", v ? "')" : "");
      return 2;
    }
    i += takes;
  }
  return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

static bool write_port_file(const char *path, int port) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  /* The port file: written whole under a temporary name, then renamed, so a reader never sees a
   * partial number. */
  FILE *f = fopen(tmp, "w");
  if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0) {
    fprintf(stderr, "us_mock_teacher: cannot write %s: %s\n", tmp, strerror(errno));
    return false;
  }
  if (rename(tmp, path) != 0) {
    fprintf(stderr, "us_mock_teacher: cannot rename %s to %s: %s\n", tmp, path, strerror(errno));
    unlink(tmp);
    return false;
  }
  return true;
}

int main(int argc, char **argv) {
  int rc = parse_flags(argc, argv);
  if (rc) return rc < 0 ? 0 : rc;
  if (!mock_answers_load(&opts)) return 1;
  mock_ledger_init();

  /* Signals are taken by sigwait in this thread only; the server threads inherit the mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  pid_t parent = getppid();
  if (opts.die_with_parent && (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent))
    return 0;

  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)opts.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                   (opts.verbose ? MHD_USE_ERROR_LOG : 0);
  struct MHD_Daemon *d = MHD_start_daemon(
      flags, (uint16_t)opts.port, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
      MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024), MHD_OPTION_NOTIFY_COMPLETED, on_completed,
      NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "us_mock_teacher: cannot listen on 127.0.0.1:%d: %s\n", opts.port,
            strerror(errno));
    rc = 1;
    goto done;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  int port = info ? (int)info->port : opts.port;
  if (opts.port_file && !write_port_file(opts.port_file, port)) {
    rc = 1;
    goto stop;
  }
  if (!opts.quiet)
    fprintf(stderr, "us_mock_teacher: listening on http://127.0.0.1:%d/v1 (pid %ld)\n", port,
            (long)getpid());
  int sig = 0;
  sigwait(&set, &sig);
  if (!opts.quiet) fprintf(stderr, "us_mock_teacher: stopping (signal %d)\n", sig);
stop:
  atomic_store(&stopping, 1);
  MHD_stop_daemon(d);
done:
  mock_ledger_free();
  mock_answers_free();
  return rc;
}
