/* The teacher client's transport (distill/teacher_int.h): many HTTP transfers on one thread
 * through libcurl's multi_socket interface and epoll, each slot an easy handle reused for every
 * request it carries. It knows nothing of jobs, retries or money; it holds the API key and
 * scrubs it from whatever it hands back. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "distill/teacher_int.h"

#define RESPONSE_LIMIT (16u << 20) /* a Chat Completions body past 16 MiB is not an answer */
#define POLL_MAX_MS 100

typedef struct slot {
  CURL *easy; /* created once, reused for every request the slot carries */
  void *job;  /* the policy's job; NULL while the slot is free */
  us_buf response;
  us__resp_headers headers;
  double started;
  size_t body_len; /* of the request body being sent */
  bool too_large;  /* the body passed RESPONSE_LIMIT: the transfer was cut */
  char errbuf[CURL_ERROR_SIZE];
} slot;

struct us__transport {
  CURLM *multi;
  int epoll_fd;    /* the sockets curl asks us to watch (multi_socket interface) */
  double timer_at; /* when curl wants its timeout handling; < 0: never */
  slot *slots;
  int n_slots, in_flight;
  struct curl_slist *headers;
  char *url;      /* what curl is given; may hold user:password@ */
  char *safe_url; /* the same without credentials: the only form in messages */
  char *api_key;  /* kept to scrub it from anything handed back; NULL if none */
  size_t api_key_len;
  us__batcher *batch;    /* teacher.mode "batch": requests go to batches (teacher_batch.c) */
  pthread_mutex_t *lock; /* held by the caller around every call; released during the wait */
};

/* ---- the key ------------------------------------------------------------------------- */

void us__transport_scrub(const us__transport *tr, char *s, size_t n) {
  if (!tr || !tr->api_key || tr->api_key_len < 4 || !s) return;
  size_t k = tr->api_key_len;
  char *p = s, *end = s + n;
  while ((size_t)(end - p) >= k && (p = memchr(p, tr->api_key[0], (size_t)(end - p) - k + 1))) {
    if (memcmp(p, tr->api_key, k) == 0) {
      memset(p, '*', k);
      p += k;
    } else {
      p++;
    }
  }
}

const char *us__transport_safe_url(const us__transport *tr) {
  return tr->safe_url;
}

bool us__transport_has_key(const us__transport *tr) {
  return tr->api_key != NULL;
}

/* ---- opening ------------------------------------------------------------------------- */

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

/* The key from $api_key_env; without one, only a loopback server may be asked. */
static us_status read_key(us__transport *tr, const us_teacher_params *p, bool loopback,
                          us_err *err) {
  const char *key = getenv(p->api_key_env);
  if (key && *key) {
    if (strpbrk(key, "\r\n"))
      return us_err_set(err, US_ERR_CONFIG, "$%s holds a line break; it must be the bare API key",
                        p->api_key_env);
    tr->api_key = us_strdup(key);
    tr->api_key_len = strlen(key);
    if (!tr->api_key) return us_err_set(err, US_ERR_NOMEM, "out of memory copying the API key");
  } else if (!loopback) {
    return us_err_set(err, US_ERR_AUTH,
                      "$%s is unset or empty: set it to the API key for %s "
                      "(or name another variable in teacher.api_key_env)",
                      p->api_key_env, tr->safe_url);
  }
  if (tr->api_key) { /* curl would send user:password@ as Basic auth in place of the key */
    free(tr->url);
    tr->url = us_strdup(tr->safe_url);
    if (!tr->url) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  }
  return US_OK;
}

/* Content-Type, Authorization (unless the config sets its own, as Azure's api-key setups do
 * not need it) and teacher.headers. The key lives in this list and nowhere else. */
static us_status build_headers(us__transport *tr, const us_teacher_params *p, us_err *err) {
  bool own_auth = false;
  us_buf line;
  us_buf_init(&line, 0);
  us_status st = US_OK;
  struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
  l = l ? curl_slist_append(l, "Expect:") : NULL; /* no 100-continue round trip */
  for (int i = 0; l && i < p->n_headers; i++) {
    const us_header *h = &p->headers[i];
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
  if (l && tr->api_key && !own_auth) {
    us_buf_reset(&line);
    if (us_buf_printf(&line, "Authorization: Bearer %s", tr->api_key)) goto nomem;
    l = curl_slist_append(l, line.data);
  }
  if (!l) goto nomem;
  tr->headers = l;
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

static size_t on_body(char *data, size_t size, size_t n, void *user) {
  slot *s = user;
  if (us_buf_append(&s->response, data, size * n)) {
    s->too_large = s->response.len + size * n > RESPONSE_LIMIT;
    return 0; /* past the limit (or out of memory): abort the transfer */
  }
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
  us__transport *tr = user;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(tr->epoll_fd, EPOLL_CTL_DEL, fd, NULL); /* curl may have closed it already */
    curl_multi_assign(tr->multi, fd, NULL);
    return 0;
  }
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  /* socket_user marks a socket already in the set; a stale registration is fixed up */
  int op = socket_user ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(tr->epoll_fd, op, fd, &ev) != 0 &&
      epoll_ctl(tr->epoll_fd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0)
    return -1;
  if (!socket_user) curl_multi_assign(tr->multi, fd, tr);
  return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *user) {
  (void)multi;
  us__transport *tr = user;
  tr->timer_at = timeout_ms < 0 ? -1 : us_now() + (double)timeout_ms / 1000.0;
  return 0;
}

static us_status setup_transfers(us__transport *tr, const us_teacher_params *p, int slots,
                                 bool https, us_err *err) {
  tr->n_slots = slots;
  tr->slots = calloc((size_t)(slots > 0 ? slots : 1), sizeof *tr->slots);
  tr->multi = curl_multi_init();
  if (!tr->slots || !tr->multi) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  tr->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (tr->epoll_fd < 0) return us_err_set(err, US_ERR_IO, "epoll_create1: %s", strerror(errno));
  tr->timer_at = -1;
  curl_multi_setopt(tr->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(tr->multi, CURLMOPT_SOCKETDATA, tr);
  curl_multi_setopt(tr->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(tr->multi, CURLMOPT_TIMERDATA, tr);
  long conns = tr->n_slots;
  curl_multi_setopt(tr->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(tr->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
  curl_multi_setopt(tr->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conns);
  curl_multi_setopt(tr->multi, CURLMOPT_MAXCONNECTS, conns);
  long timeout_ms = (long)(p->timeout_s * 1000);
  long connect_ms = timeout_ms < 30000 ? timeout_ms : 30000;
  for (int i = 0; i < tr->n_slots; i++) {
    slot *s = &tr->slots[i];
    us_buf_init(&s->response, RESPONSE_LIMIT);
    if (us_buf_reserve(&s->response, 4096)) return us_err_set(err, US_ERR_NOMEM, "out of memory");
    CURL *e = s->easy = curl_easy_init();
    if (!e) return us_err_set(err, US_ERR_HTTP, "curl_easy_init failed");
    curl_easy_setopt(e, CURLOPT_URL, tr->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, tr->headers);
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

us_status us__transport_open(const us_teacher_params *p, int slots, us__transport **out,
                             us_err *err) {
  *out = NULL;
  us__transport *tr = calloc(1, sizeof *tr);
  if (!tr) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  tr->epoll_fd = -1;
  bool loopback = false, https = false;
  us_status st = base_url_parts(p->base_url, &tr->url, &tr->safe_url, &loopback, &https, err);
  if (!st) st = read_key(tr, p, loopback, err);
  if (st) goto fail;
  if (!https && !loopback && tr->api_key)
    us_log(US_LOG_WARN, "teacher.base_url %s is plain http: the key travels unencrypted",
           tr->safe_url);
  st = build_headers(tr, p, err);
  if (!st) st = setup_transfers(tr, p, slots, https, err);
  if (st) goto fail;
  *out = tr;
  return US_OK;
fail:
  if (err) us__transport_scrub(tr, err->msg, strlen(err->msg));
  us__transport_close(tr);
  return st;
}

void us__transport_close(us__transport *tr) {
  if (!tr) return;
  us__batcher_close(tr->batch);
  for (int i = 0; tr->slots && i < tr->n_slots; i++) {
    if (tr->slots[i].easy) {
      if (tr->slots[i].job) curl_multi_remove_handle(tr->multi, tr->slots[i].easy);
      curl_easy_cleanup(tr->slots[i].easy);
    }
    us_buf_free(&tr->slots[i].response);
  }
  free(tr->slots);
  if (tr->multi) curl_multi_cleanup(tr->multi);
  if (tr->epoll_fd >= 0) close(tr->epoll_fd);
  for (struct curl_slist *l = tr->headers; l; l = l->next) explicit_bzero(l->data, strlen(l->data));
  curl_slist_free_all(tr->headers);
  free(tr->url);
  free(tr->safe_url);
  if (tr->api_key) explicit_bzero(tr->api_key, tr->api_key_len);
  free(tr->api_key);
  free(tr);
}

/* ---- transfers ----------------------------------------------------------------------- */

us_status us__transport_watch_fd(us__transport *tr, int fd, us_err *err) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(tr->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0)
    return us_err_set(err, US_ERR_IO, "epoll_ctl: %s", strerror(errno));
  return US_OK;
}

int us__transport_in_flight(const us__transport *tr) {
  return tr->in_flight + (tr->batch ? us__batcher_in_flight(tr->batch) : 0);
}

void us__transport_set_batcher(us__transport *tr, us__batcher *b) {
  tr->batch = b;
}

bool us__transport_full(const us__transport *tr) {
  return tr->in_flight >= tr->n_slots;
}

us_status us__transport_start(us__transport *tr, void *job, const char *body, size_t len,
                              double now, us_err *err) {
  if (tr->batch) {
    bool taken = false;
    us_status st = us__batcher_take(tr->batch, job, body, len, now, &taken, err);
    if (st || taken) return st;
  }
  int free_slot = 0;
  while (free_slot < tr->n_slots && tr->slots[free_slot].job) free_slot++;
  if (free_slot == tr->n_slots)
    return us_err_set(err, US_ERR_HTTP, "cannot start a transfer to %s: every slot is busy",
                      tr->safe_url);
  slot *s = &tr->slots[free_slot];
  us_buf_reset(&s->response);
  us__resp_headers_reset(&s->headers);
  s->errbuf[0] = '\0';
  s->too_large = false;
  s->job = job;
  s->started = now;
  s->body_len = len;
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
  CURLMcode mc = curl_multi_add_handle(tr->multi, s->easy);
  if (mc != CURLM_OK) {
    s->job = NULL;
    return us_err_set(err, US_ERR_HTTP, "cannot start a transfer to %s: %s", tr->safe_url,
                      curl_multi_strerror(mc));
  }
  tr->in_flight++;
  return US_OK;
}

void us__transport_set_lock(us__transport *tr, pthread_mutex_t *lock) {
  tr->lock = lock;
}

void us__transport_wait(us__transport *tr, double wake) {
  if (tr->batch) us__batcher_wait(tr->batch);
  double now = us_now();
  if (tr->timer_at >= 0 && tr->timer_at - now < wake) wake = tr->timer_at - now;
  int timeout_ms = wake <= 0 ? 0 : (int)(wake * 1000) + 1;
  if (timeout_ms > POLL_MAX_MS) timeout_ms = POLL_MAX_MS;
  struct epoll_event events[128];
  if (tr->lock) pthread_mutex_unlock(tr->lock);
  int n = epoll_wait(tr->epoll_fd, events, 128, timeout_ms);
  if (tr->lock) pthread_mutex_lock(tr->lock);
  int running = 0;
  for (int i = 0; i < n; i++) {
    int flags = (events[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                (events[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                (events[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    curl_multi_socket_action(tr->multi, events[i].data.fd, flags, &running);
  }
  us__transport_kick(tr);
}

void us__transport_kick(us__transport *tr) {
  if (tr->timer_at < 0 || us_now() < tr->timer_at) return;
  tr->timer_at = -1;
  int running = 0;
  curl_multi_socket_action(tr->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

double us__transport_timer(const us__transport *tr) {
  return tr->timer_at;
}

/* Frees s and describes what it brought back, scrubbed of the key. */
static void finish_slot(us__transport *tr, slot *s, CURLcode rc, us__transfer_result *r,
                        char *error, size_t error_cap) {
  memset(r, 0, sizeof *r);
  r->job = s->job;
  r->started = s->started;
  r->headers = &s->headers;
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &r->http_status);
  curl_off_t uploaded = 0;
  if (curl_easy_getinfo(s->easy, CURLINFO_SIZE_UPLOAD_T, &uploaded) == CURLE_OK)
    r->body_sent = uploaded >= 0 && (size_t)uploaded >= s->body_len;
  curl_multi_remove_handle(tr->multi, s->easy);
  s->job = NULL;
  tr->in_flight--;
  if (rc != CURLE_OK && s->too_large) {
    snprintf(error, error_cap, "the teacher's response was larger than %u MiB (HTTP %ld)",
             RESPONSE_LIMIT >> 20, r->http_status);
    r->error = error;
    r->too_large = true;
    return;
  }
  if (rc != CURLE_OK) {
    snprintf(error, error_cap, "%s (%s)", curl_easy_strerror(rc), s->errbuf);
    us__transport_scrub(tr, error, strlen(error));
    r->error = error;
    r->unreachable = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                     rc == CURLE_COULDNT_RESOLVE_PROXY;
    return;
  }
  us__transport_scrub(tr, s->response.data, s->response.len);
  r->answered = true;
  r->body = s->response.data;
  r->body_len = s->response.len;
}

void us__transport_collect(us__transport *tr, us__transfer_done_fn done, void *user) {
  CURLMsg *m;
  int left;
  double now = us_now();
  while ((m = curl_multi_info_read(tr->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    slot *s = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
    us__transfer_result r;
    char error[512];
    finish_slot(tr, s, m->data.result, &r, error, sizeof error);
    done(user, &r, now);
  }
  if (tr->batch) us__batcher_collect(tr->batch, done, user);
}

void us__transport_abort(us__transport *tr, us__transfer_dropped_fn dropped, void *user) {
  for (int i = 0; i < tr->n_slots; i++) {
    slot *s = &tr->slots[i];
    if (!s->job) continue;
    curl_multi_remove_handle(tr->multi, s->easy);
    void *job = s->job;
    s->job = NULL;
    tr->in_flight--;
    dropped(user, job);
  }
  if (tr->batch) us__batcher_abort(tr->batch, dropped, user);
}

/* ---- requests outside the slots (the Batch API) ------------------------------------------ */

/* Where a call's body goes: into out->body, or, once the status is 200 and a sink is set, to
 * the sink as it arrives. */
typedef struct call_sink {
  us__call *out;
  CURL *easy;
  us__call_sink_fn fn;
  void *user;
} call_sink;

static size_t on_call_body(char *data, size_t size, size_t n, void *user) {
  call_sink *cs = user;
  long code = 0;
  if (cs->fn) curl_easy_getinfo(cs->easy, CURLINFO_RESPONSE_CODE, &code);
  if (cs->fn && code == 200) return cs->fn(cs->user, data, size * n) ? size * n : 0;
  if (us_buf_append(&cs->out->body, data, size * n)) return 0;
  return size * n;
}

/* Reads the upload stream of a file part. */
static size_t on_form_read(char *buffer, size_t size, size_t n, void *arg) {
  return fread(buffer, size, n, (FILE *)arg);
}

static int on_form_seek(void *arg, curl_off_t offset, int origin) {
  return fseeko((FILE *)arg, (off_t)offset, origin) == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

/* The one implementation of the calls below: a form's file part is form_file[0..form_len), or
 * (form_stream set) stream_size bytes read from form_stream; a sink takes a 200's body. */
static us_status call(us__transport *tr, const char *method, const char *path, const char *json,
                      const char *form_purpose, const char *form_file, size_t form_len,
                      FILE *form_stream, size_t stream_size, us__call_sink_fn sink, void *sink_user,
                      us__call *out, us_err *err);

us_status us__transport_call(us__transport *tr, const char *method, const char *path,
                             const char *json, const char *form_purpose, const char *form_file,
                             size_t form_len, us__call *out, us_err *err) {
  return call(tr, method, path, json, form_purpose, form_file, form_len, NULL, 0, NULL, NULL, out,
              err);
}

us_status us__transport_upload(us__transport *tr, const char *path, const char *purpose, FILE *file,
                               size_t size, us__call *out, us_err *err) {
  rewind(file);
  return call(tr, "POST", path, NULL, purpose, "", 0, file, size, NULL, NULL, out, err);
}

us_status us__transport_get_stream(us__transport *tr, const char *path, us__call_sink_fn sink,
                                   void *user, us__call *out, us_err *err) {
  return call(tr, "GET", path, NULL, NULL, NULL, 0, NULL, 0, sink, user, out, err);
}

static us_status call(us__transport *tr, const char *method, const char *path, const char *json,
                      const char *form_purpose, const char *form_file, size_t form_len,
                      FILE *form_stream, size_t stream_size, us__call_sink_fn sink, void *sink_user,
                      us__call *out, us_err *err) {
  memset(out, 0, sizeof *out);
  us_buf_init(&out->body, (size_t)1 << 31);
  static const char suffix[] = "/chat/completions";
  size_t base_len = strlen(tr->url) - (sizeof suffix - 1); /* tr->url ends with it */
  us_buf url;
  us_buf_init(&url, 0);
  struct curl_slist *headers = NULL;
  curl_mime *mime = NULL;
  us_status st = US_OK;
  CURL *e = curl_easy_init();
  if (!e || us_buf_printf(&url, "%.*s%s", (int)base_len, tr->url, path)) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory starting a request to %s", tr->safe_url);
    goto done;
  }
  /* the slots' headers, but a form sets its own Content-Type */
  for (struct curl_slist *l = tr->headers; l; l = l->next) {
    if (form_file && strncasecmp(l->data, "Content-Type:", 13) == 0) continue;
    struct curl_slist *grown = curl_slist_append(headers, l->data);
    if (!grown) {
      st = us_err_set(err, US_ERR_NOMEM, "out of memory building request headers");
      goto done;
    }
    headers = grown;
  }
  curl_easy_setopt(e, CURLOPT_URL, url.data);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  call_sink cs = {out, e, sink, sink_user};
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_call_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &cs);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
  /* files can be large: give up only when the transfer stalls for a minute */
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_USERAGENT, "understudy/0.1");
  if (form_file) {
    mime = curl_mime_init(e);
    curl_mimepart *part = mime ? curl_mime_addpart(mime) : NULL;
    if (part) {
      curl_mime_name(part, "purpose");
      curl_mime_data(part, form_purpose, CURL_ZERO_TERMINATED);
      part = curl_mime_addpart(mime);
    }
    if (!part) {
      st = us_err_set(err, US_ERR_NOMEM, "out of memory building a file upload");
      goto done;
    }
    curl_mime_name(part, "file");
    curl_mime_filename(part, "understudy-batch.jsonl");
    curl_mime_type(part, "application/jsonl");
    if (form_stream)
      curl_mime_data_cb(part, (curl_off_t)stream_size, on_form_read, on_form_seek, NULL,
                        form_stream);
    else
      curl_mime_data(part, form_file, form_len);
    curl_easy_setopt(e, CURLOPT_MIMEPOST, mime);
  } else if (json) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, json);
  } else if (strcmp(method, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform(e);
  if (rc != CURLE_OK) {
    snprintf(out->error, sizeof out->error, "%s (%s)", curl_easy_strerror(rc), errbuf);
    us__transport_scrub(tr, out->error, strlen(out->error));
    out->unreachable = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                       rc == CURLE_COULDNT_RESOLVE_PROXY;
    goto done;
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->http_status);
  if (us_buf_append(&out->body, "", 1) == US_OK) out->body.len--; /* NUL-terminated */
  us__transport_scrub(tr, out->body.data, out->body.len);
  out->answered = true;
done:
  curl_mime_free(mime);
  for (struct curl_slist *l = headers; l; l = l->next) explicit_bzero(l->data, strlen(l->data));
  curl_slist_free_all(headers);
  if (e) curl_easy_cleanup(e);
  us_buf_free(&url);
  return st;
}
