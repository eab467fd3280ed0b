/* Internals shared by the files of serve/: the server's state, the student it shares across
 * threads (reference-counted so a hot reload never frees a model in use), the metrics, the
 * audit and the log thread that writes the served rows. */
#ifndef US_SERVE_SERVE_INT_H
#define US_SERVE_SERVE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cache/cache.h"
#include "core/buf.h"
#include "distill/teacher_gateway.h"
#include "pipeline/config.h"
#include "serve/serve.h"
#include "understudy.h"

enum { US__ROUTE_STUDENT, US__ROUTE_TEACHER, US__ROUTE_CACHE, US__ROUTE_ERROR, US__ROUTE_COUNT };
#define US__MAX_WORKERS 256 /* serve.threads at most */
extern const char *const us__route_names[US__ROUTE_COUNT];

#define US__HIST_BUCKETS 17
extern const double us__hist_bounds[US__HIST_BUCKETS]; /* seconds; the last is +Inf */
#define US__ADDED_BUCKETS 16 /* finer below a millisecond, where the teacher route's aim is */
extern const double us__added_bounds[US__ADDED_BUCKETS];

/* One loaded student, shared by every thread that holds a reference. */
typedef struct us__student {
  atomic_int refs;
  us_model *classifier; /* task classify */
  us_lm *lm;            /* task generate */
  double mtime;         /* of student.bin when loaded */
} us__student;

/* The answers the teacher gave while their rows wait for the log thread: an exact repeat in
 * that window is still a cache hit. Buckets indexed by the key's first bytes, each a list, so
 * no answer leaves before its row is written (us__recent_forget). */
#define US__RECENT_SLOTS 1024
typedef struct us__recent {
  struct us__recent *next;
  char key[65];
  char *body;
} us__recent;

/* The keys of the answers stored in the workspace, as 64-bit hashes (serve/known.c): a key not
 * in the set is not in the workspace, so its lookup skips SQLite. Filled from the calls table at
 * start, by the log thread as it stores answers, and from rows other processes add (read every
 * tick of the main loop). broken: out of memory or a failed read; every lookup goes on. */
typedef struct us__known {
  pthread_mutex_t lock;
  uint64_t *slots; /* open addressing, 0 = empty */
  size_t cap, n;
  int64_t rowid;   /* the last calls row read (under the server's read_lock) */
  int64_t version; /* the read connection's data_version at that read (same lock) */
  bool broken;
} us__known;

/* A row waiting for the log thread, with what it owns: the served row's strings, and for a
 * teacher answer the call (and, for the task, the prompt and target) to store. */
typedef struct us__log_item {
  us_served_row row;
  char *prompt, *answer; /* owned; row.prompt/row.answer point here */
  bool store_call;       /* a teacher answer to put in the calls table */
  us_call call;          /* request and response owned */
  bool store_prompt;     /* the task: its text becomes a train prompt with this target */
  char *text;            /* the {text} */
  char *label;           /* classify: the mapped label (NULL if none); generate: NULL */
  char *target_text;     /* the answer's content */
  bool no_row;           /* nothing to add to the served rows (only what follows) */
  int unanswered;        /* teacher attempts that may have been billed without an answer */
  double unanswered_usd; /* their worst case, recorded in the workspace against the budget */
  char unanswered_key[65];
  char unanswered_why[256];
} us__log_item;

typedef struct us__server {
  const us_config *config;
  us_cache *cache;
  pthread_mutex_t db_lock; /* the workspace handle is one connection: one user at a time */
  us_cache *read_cache;    /* a second connection for cache lookups: WAL readers never wait
                              for the log thread's commits */
  pthread_mutex_t read_lock;
  char *model_path;
  char *labels_joined; /* task.labels joined by ", " */
  /* task.template split at its one {text}, both sides filled (us__route_prepare); NULL when it
   * has several {text} and the general matcher runs */
  char *tpl_head, *tpl_tail;
  size_t tpl_head_len, tpl_tail_len;

  /* the student and when to reload it */
  pthread_mutex_t student_lock;
  us__student *student;
  atomic_int_fast64_t reloads;

  /* routing */
  double threshold; /* the student answers when confidence >= threshold */
  const char *threshold_from;
  atomic_bool drifted;            /* on_drift "teacher": everything to the teacher */
  bool drift_to_teacher;          /* serve.on_drift is "teacher" */
  double teacher_usd_per_request; /* what the teacher costs a task request on average */
  us_teacher_gateway *gateway;
  pthread_mutex_t recent_lock;
  us__recent *recent[US__RECENT_SLOTS];
  us__known known;

  /* client keys (serve.api_keys_env), NULL-terminated, or NULL */
  char **api_keys;

  /* metrics */
  atomic_int_fast64_t requests[US__ROUTE_COUNT];
  atomic_int_fast64_t hist[US__ROUTE_COUNT][US__HIST_BUCKETS];
  atomic_int_fast64_t hist_sum_us[US__ROUTE_COUNT];
  /* what the server adds to a teacher answer given at the first attempt: the request's time
   * here less the teacher's own time on the wire (us__metrics_added) */
  atomic_int_fast64_t added_hist[US__ADDED_BUCKETS];
  atomic_int_fast64_t added_sum_us;
  atomic_int_fast64_t in_flight;
  atomic_int_fast64_t next_id;
  /* open connections by serving thread, numbered in the order each first took one: the thread
   * is known by its libmicrohttpd worker (worker_index in server.c) */
  const void *_Atomic workers[US__MAX_WORKERS];
  atomic_int_fast64_t worker_connections[US__MAX_WORKERS];
  bool accept_warned;                  /* a failed accept was logged (once) */
  _Atomic double spent_usd, saved_usd; /* += is one compare-and-swap: no lock per request */

  /* audit */
  pthread_mutex_t audit_lock;
  int64_t audits, audits_agreeing; /* since the student was loaded */
  int64_t audits_total, audits_agreeing_total;
  bool armed;        /* the live bound has reached the target once */
  bool drift_warned; /* the warning is logged once per student */
  double z;          /* one-sided normal quantile of quality.confidence */
  atomic_int_fast64_t audit_draw;

  /* the log thread */
  pthread_mutex_t log_lock;
  pthread_cond_t log_cond;    /* to the writer: rows to write */
  pthread_cond_t log_drained; /* to the request threads: the writer took the queue */
  us__log_item *log_items;
  size_t log_n, log_cap;
  struct timespec log_first;      /* when the oldest queued row came (CLOCK_REALTIME) */
  bool log_urgent;                /* write now (the queue is full) */
  bool log_paid;                  /* a teacher answer is queued: write it soon (LOG_PAID_WAIT_MS) */
  struct timespec log_paid_first; /* when the oldest queued answer came (CLOCK_REALTIME) */
  bool log_stop;
  pthread_t log_thread;
  bool log_started;
  uint64_t log_dropped;
} us__server;

/* ---- student.c ---- */
us_status us__student_load(us__server *s, us__student **out, us_err *err);
us__student *us__student_acquire(us__server *s);
void us__student_release(us__student *st);
/* Loads student.bin again if it is newer than the one in use (or force); swaps it in. */
void us__student_maybe_reload(us__server *s, bool force);
/* The student's answer for text: classify the label (static, in the model), generate a malloc'd
 * string (*owned set); confidence in [0, 1]. */
us_status us__student_answer(const us__server *s, const us__student *st, const char *text,
                             char **answer, bool *owned, double *confidence, us_err *err);

/* ---- log.c ---- */
us_status us__log_start(us__server *s, us_err *err);
void us__log_stop(us__server *s); /* writes every row still queued */
/* Queues item (taking what it owns). Never blocks on the workspace, only (rarely) on a full
 * queue until the writer has taken it, so no row is ever dropped for want of room. */
void us__log_push(us__server *s, us__log_item *item);
void us__log_item_free(us__log_item *item);
/* Fills item->call with a teacher answer to store (taking *request and r->body, which are left
 * NULL) and sets store_call. */
void us__log_take_call(us__log_item *item, const char *key, char **request, us_teacher_reply *r);
/* Queues the attempts of a teacher reply that may have been billed without an answer (if any),
 * so the workspace counts their worst case against the budget as labelling's rows are. */
void us__log_unanswered(us__server *s, const char *key, const us_teacher_reply *r);
void us__recent_put(us__server *s, const char *key, const char *body);
char *us__recent_get(us__server *s, const char *key);   /* copy or NULL */
void us__recent_forget(us__server *s, const char *key); /* its row is written */
void us__recent_free(us__server *s);

/* ---- known.c ---- */
void us__known_init(us__server *s);
void us__known_free(us__server *s);
/* Reads the keys of calls stored since the last refresh (by anyone) into the set; with
 * only_if_changed, only when the workspace changed since. The log thread calls it so after each
 * commit: the read that a commit makes necessary is then its own, not the next request's (about
 * 0.1 ms of SQLite page reads, two thirds of a teacher request's time in the server at one
 * connection). */
void us__known_refresh(us__server *s, bool only_if_changed);
void us__known_add(us__server *s, const char *key);
/* False only when no answer for key is stored: a key not in the set is looked for again after
 * reading the keys committed since (by this server's log thread or another process), when the
 * workspace changed since the last read; true: look in the workspace. */
bool us__known_may_hold(us__server *s, const char *key);
/* Whether key is in the set as it stands (no workspace read). */
bool us__known_has(us__server *s, const char *key);

/* ---- metrics.c ---- */
void us__metrics_observe(us__server *s, int route, double seconds);
void us__metrics_added(us__server *s, double seconds);
char *us__metrics_text(us__server *s); /* Prometheus text format; caller frees */
void us__money_add(us__server *s, double spent, double saved);

/* ---- audit.c ---- */
/* Whether this student answer should be audited (serve.audit_rate). */
bool us__audit_draw(us__server *s);
/* Sends the task request for text to the teacher in the background; the answer is compared with
 * the student's and logged. Never blocks the caller. */
void us__audit_submit(us__server *s, const char *text, const char *student_answer,
                      double confidence);
/* The live agreement and its lower bound since the student was loaded (NAN when no audits). */
void us__audit_live(us__server *s, int64_t *n, int64_t *agreeing, double *agreement, double *low);
/* A new student: the live agreement starts over and routing returns to the cascade. */
void us__audit_reset(us__server *s);

/* ---- route.c ---- */
/* Splits task.template once for us__route_match; unprepare frees what it made. */
us_status us__route_prepare(us__server *s);
void us__route_unprepare(us__server *s);
/* us_serve_match_template(task.template, labels_joined, message), prepared. Caller frees. */
char *us__route_match(const us__server *s, const char *message);
/* The {text} when the request is the distilled task (model, system and user messages), else
 * NULL. request is a parsed cJSON object (void* so this header needs no cJSON). */
char *us__route_task_text(const us__server *s, const void *request);
/* Whether a parsed request asks for a stream, and for usage in the stream. */
void us__route_stream_flags(const void *request, bool *stream, bool *include_usage);
/* A Chat Completions object (or, streaming, its SSE chunks) answering with content. */
char *us__route_completion(const char *id, const char *model, double created, const char *content,
                           int prompt_tokens, int completion_tokens, bool stream,
                           bool include_usage);
/* The SSE form of a teacher's Chat Completions body; NULL when it does not parse. */
char *us__route_stream_from_body(const char *body, bool include_usage);
/* The OpenAI error object. Caller frees. */
char *us__route_error_body(const char *message, const char *type, const char *code);
/* The content of a teacher's body; NULL if none. Caller frees. */
char *us__route_teacher_content(const char *body);
/* The mapped label (classify) or content (generate) of a teacher's body; NULL if none. */
char *us__route_teacher_answer(const us__server *s, const char *body, char **content);

/* ---- listen.c ---- */
struct MHD_Daemon;
/* host:port as an address to bind; *loopback when it is one of this machine's loopbacks. */
us_status us__listen_resolve(const char *host, int port, struct sockaddr_storage *out,
                             bool *loopback, us_err *err);
/* A listening socket bound to addr (non-blocking), or -1 with errno set. */
int us__listen_open(const struct sockaddr_storage *addr);
/* The port a socket is bound to, or -1. */
int us__listen_port(int fd);
/* Waits up to timeout_ms for connections on lfd and hands each to d's pool. A failed accept
 * (out of descriptors) is warned once and paused on: the socket stays readable meanwhile. */
void us__listen_accept(us__server *s, struct MHD_Daemon *d, int lfd, int timeout_ms);

/* ---- route_fast.c ---- */
typedef struct us__fast_task {
  char *model, *text; /* owned */
  bool stream, include_usage;
} us__fast_task;
/* True when body (len bytes, not NUL-terminated) is certainly the distilled task: *out then
 * holds what the full parser and us__route_task_text would have found. False: nothing is
 * allocated and the full parser decides (malformed, not the task, or a shape it leaves alone). */
bool us__route_fast_task(const us__server *s, const char *body, size_t len, us__fast_task *out);

#endif
