/* The log thread: served rows, teacher answers and the train prompts they make are queued by the
 * request threads and written to the workspace in batches, so no request waits on SQLite. The
 * teacher's answers also sit in a small table of recent answers until written, so an exact
 * repeat is a cache hit even before its row is on disk. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "core/log.h"

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "distill/prompts.h"
#include "serve/serve_int.h"

/* Plain rows wait until the oldest is LOG_BATCH_WAIT_MS old or LOG_BATCH_ROWS are queued, so a
 * busy server writes one transaction for thousands of rows rather than one per handful; a
 * teacher answer (paid for) waits at most LOG_PAID_WAIT_MS, so the answers of a busy teacher
 * route share one transaction and one sync of the log (group commit) rather than each paying
 * for its own; the stop is written at once. */
#define LOG_BATCH_WAIT_MS 200
#define LOG_PAID_WAIT_MS 5
#define LOG_BATCH_ROWS 4096
#define LOG_SLICE_ROWS 32    /* rows inserted between two yields of the core */
#define LOG_QUEUE_MAX 200000 /* rows queued at most; past it a request waits for the writer */

void us__log_item_free(us__log_item *it) {
  free(it->prompt);
  free(it->answer);
  free(it->call.request);
  free(it->call.response);
  free(it->text);
  free(it->label);
  free(it->target_text);
  memset(it, 0, sizeof *it);
}

/* The link that points at key's entry in its bucket, or at the bucket's end (NULL) if absent. */
static us__recent **recent_link(us__server *s, const char *key) {
  char head[4] = {key[0], key[1], key[2], 0};
  us__recent **p = &s->recent[strtoul(head, NULL, 16) % US__RECENT_SLOTS];
  while (*p && strcmp((*p)->key, key) != 0) p = &(*p)->next;
  return p;
}

/* The teacher's answer as a train prompt of the task with its target. */
static us_status store_prompt(us__server *s, const us__log_item *it, us_err *err) {
  char *norm = us_prompt_normalize(it->text);
  if (!norm) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  char hash[65];
  us_prompt_hash(norm, hash);
  free(norm);
  int64_t id = 0;
  bool inserted = false;
  us_status st = us_cache_prompt_add(s->cache, hash, it->text, NULL, "serve", US_SPLIT_TRAIN,
                                     &inserted, &id, err);
  if (st) return st;
  us_target t;
  memset(&t, 0, sizeof t);
  memcpy(t.key, it->call.key, 65);
  t.prompt_id = id;
  t.text = it->target_text ? it->target_text : "";
  bool classify = s->config->task.type == US_TASK_CLASSIFY;
  t.label = classify ? it->label : NULL;
  t.status = (classify && !it->label) || !it->target_text ? US_TARGET_UNPARSED : US_TARGET_OK;
  return us_cache_target_put(s->cache, &t, err);
}

void us__log_unanswered(us__server *s, const char *key, const us_teacher_reply *r) {
  if (r->unanswered <= 0) return;
  us__log_item it;
  memset(&it, 0, sizeof it);
  it.no_row = true;
  it.unanswered = r->unanswered;
  it.unanswered_usd = r->unanswered_usd;
  snprintf(it.unanswered_key, sizeof it.unanswered_key, "%s", key ? key : "");
  snprintf(it.unanswered_why, sizeof it.unanswered_why, "serve: %.240s", r->unanswered_why);
  us__log_push(s, &it);
}

/* The paid part of a batch: the teacher's answers (with their train prompts) and the attempts
 * that may have been billed, inside the caller's transaction. */
static us_status write_calls(us__server *s, us__log_item *items, size_t n, us_err *err) {
  us_status st = US_OK;
  for (size_t i = 0; i < n && !st; i++) {
    /* one row per attempt, each at its worst case, as labelling records them */
    for (int k = 0; k < items[i].unanswered && !st; k++)
      st = us_cache_unanswered_put(s->cache, items[i].unanswered_key, 0,
                                   items[i].unanswered_usd / items[i].unanswered,
                                   items[i].unanswered_why, err);
    if (!items[i].store_call || st) continue;
    st = us_cache_call_put(s->cache, &items[i].call, NULL, err);
    if (!st && items[i].store_prompt) st = store_prompt(s, &items[i], err);
  }
  return st;
}

/* The served rows, inside the caller's transaction, in slices with a yield between them: a
 * request thread waiting for this core gets it within one slice rather than after the batch. */
static us_status write_rows(us__server *s, const us_served_row *rows, size_t m, us_err *err) {
  us_status st = US_OK;
  for (size_t off = 0; off < m && !st; off += LOG_SLICE_ROWS) {
    if (off) sched_yield();
    st = us_cache_served_insert(s->cache, rows + off,
                                m - off < LOG_SLICE_ROWS ? m - off : LOG_SLICE_ROWS, err);
  }
  return st;
}

/* Ends the transaction the caller began and filled (st: how filling it went): committed, or
 * rolled back on any failure. */
static us_status end_transaction(us__server *s, us_status st, us_err *err) {
  if (!st) st = us_cache_commit(s->cache, err);
  if (st) us_cache_rollback(s->cache, NULL);
  return st;
}

static void write_batch(us__server *s, us__log_item *items, size_t n) {
  us_err err = {0};
  bool any_call = false;
  for (size_t i = 0; i < n; i++) any_call |= items[i].store_call || items[i].unanswered > 0;
  us_served_row *rows = malloc((n ? n : 1) * sizeof *rows);
  size_t m = 0;
  for (size_t i = 0; rows && i < n; i++)
    if (!items[i].no_row) rows[m++] = items[i].row;
  if (!any_call && m == 0) {
    free(rows);
    return;
  }
  pthread_mutex_lock(&s->db_lock);
  /* the answers and the rows in one transaction, so one sync of the log per batch (group
   * commit): a busy server's paid answers share it rather than each paying for two */
  us_status st = us_cache_begin(s->cache, &err);
  if (!st && any_call) st = write_calls(s, items, n, &err);
  if (!st) st = write_rows(s, rows, m, &err);
  st = end_transaction(s, st, &err);
  if (st) {
    /* apart, so rows that cannot be written never cost the answers their place */
    if (any_call) {
      err.msg[0] = '\0';
      st = us_cache_begin(s->cache, &err);
      if (!st) st = write_calls(s, items, n, &err);
      if (end_transaction(s, st, &err))
        us_log(US_LOG_WARN, "serve: could not store the teacher's answers: %s", err.msg);
    }
    err.msg[0] = '\0';
    st = m ? us_cache_begin(s->cache, &err) : US_OK;
    if (m && !st) st = write_rows(s, rows, m, &err);
    if (m && end_transaction(s, st, &err))
      us_log(US_LOG_WARN, "serve: could not log %zu served requests: %s", m, err.msg);
  }
  pthread_mutex_unlock(&s->db_lock);
  free(rows);
  /* the answers are on disk (or could not be put there): the known keys take them over from the
   * recent table, in that order, so a lookup always finds a stored key in one or the other */
  for (size_t i = 0; i < n; i++)
    if (items[i].store_call) us__known_add(s, items[i].call.key);
  for (size_t i = 0; i < n; i++)
    if (items[i].store_call) us__recent_forget(s, items[i].call.key);
  /* the commit changed the workspace: the set reads past it now, on this thread, so the next
   * teacher request's lookup finds the workspace unchanged since the set's last read */
  us__known_refresh(s, true);
}

/* abs + ms, for pthread_cond_timedwait */
static struct timespec after_ms(struct timespec abs, long ms) {
  abs.tv_nsec += ms * 1000000L;
  while (abs.tv_nsec >= 1000000000L) {
    abs.tv_sec++;
    abs.tv_nsec -= 1000000000L;
  }
  return abs;
}

static bool earlier(struct timespec a, struct timespec b) {
  return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

/* Waits (log_lock held) until the queue is worth writing: see LOG_BATCH_WAIT_MS and
 * LOG_PAID_WAIT_MS. */
static void wait_for_batch(us__server *s) {
  while (!s->log_stop && !s->log_urgent && s->log_n < LOG_BATCH_ROWS) {
    if (s->log_n == 0) {
      pthread_cond_wait(&s->log_cond, &s->log_lock);
      continue;
    }
    struct timespec ts = after_ms(s->log_first, LOG_BATCH_WAIT_MS);
    if (s->log_paid) {
      struct timespec paid = after_ms(s->log_paid_first, LOG_PAID_WAIT_MS);
      if (earlier(paid, ts)) ts = paid;
    }
    if (pthread_cond_timedwait(&s->log_cond, &s->log_lock, &ts) == ETIMEDOUT) break;
  }
}

/* The writer asks the scheduler for a short slice (Linux 6.12+ reads sched_runtime as the slice
 * of a normal thread; older kernels ignore it): a request thread woken on the writer's core then
 * waits at most that long, where it waited out a default slice (2-4 ms, the server's p99 at one
 * connection: bench/RESULTS.md). Its priority stays normal: at nice 19 it fell behind on a busy
 * machine and the full queue stalled the requests. The yields between slices of rows do the same
 * on any kernel. */
static void short_slice(void) {
#ifdef SYS_sched_setattr
  struct {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
  } attr = {.size = 48, .policy = 0 /* SCHED_OTHER */, .runtime = 100 * 1000 /* ns */};
  if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0)
    us_log(US_LOG_DEBUG, "serve: the log thread keeps the default slice: %s", strerror(errno));
#endif
}

static void *log_main(void *arg) {
  us__server *s = arg;
  short_slice();
  pthread_mutex_lock(&s->log_lock);
  for (;;) {
    wait_for_batch(s);
    if (s->log_n == 0 && s->log_stop) break;
    us__log_item *items = s->log_items;
    size_t n = s->log_n;
    s->log_items = NULL;
    s->log_n = s->log_cap = 0;
    s->log_urgent = s->log_paid = false;
    pthread_cond_broadcast(&s->log_drained);
    pthread_mutex_unlock(&s->log_lock);
    if (n) write_batch(s, items, n);
    for (size_t i = 0; i < n; i++) us__log_item_free(&items[i]);
    free(items);
    pthread_mutex_lock(&s->log_lock);
  }
  pthread_mutex_unlock(&s->log_lock);
  return NULL;
}

us_status us__log_start(us__server *s, us_err *err) {
  if (pthread_create(&s->log_thread, NULL, log_main, s) != 0)
    return us_err_set(err, US_ERR_INTERNAL, "cannot start the log thread: %s", strerror(errno));
  s->log_started = true;
  pthread_setname_np(s->log_thread, "us-log"); /* named in top, perf and gdb */
  return US_OK;
}

void us__log_stop(us__server *s) {
  if (!s->log_started) return;
  pthread_mutex_lock(&s->log_lock);
  s->log_stop = true;
  pthread_cond_signal(&s->log_cond);
  pthread_mutex_unlock(&s->log_lock);
  pthread_join(s->log_thread, NULL);
  s->log_started = false;
  if (s->log_dropped)
    us_log(US_LOG_WARN, "serve: %llu log rows were dropped (the workspace could not keep up)",
           (unsigned long long)s->log_dropped);
}

void us__log_push(us__server *s, us__log_item *item) {
  item->row.prompt = item->prompt;
  item->row.answer = item->answer;
  pthread_mutex_lock(&s->log_lock);
  while (s->log_n == s->log_cap) {
    size_t cap = s->log_cap ? s->log_cap * 2 : 256;
    us__log_item *grown =
        s->log_n < LOG_QUEUE_MAX ? realloc(s->log_items, cap * sizeof *grown) : NULL;
    if (grown) {
      s->log_items = grown;
      s->log_cap = cap;
      break;
    }
    if (s->log_n == 0 || !s->log_started) {
      /* out of memory with nothing queued: there is no writer to wait for */
      s->log_dropped++;
      pthread_mutex_unlock(&s->log_lock);
      us__log_item_free(item);
      return;
    }
    /* full (or out of memory): wait until the writer takes the queue, then start a new one */
    s->log_urgent = true;
    pthread_cond_signal(&s->log_cond);
    pthread_cond_wait(&s->log_drained, &s->log_lock);
  }
  if (s->log_n == 0) clock_gettime(CLOCK_REALTIME, &s->log_first);
  s->log_items[s->log_n++] = *item;
  /* a teacher answer (or an attempt that may be billed) is written at once; plain rows wait for the
   * batch, the writer being woken only by the first of them (to time the batch) or a full batch */
  bool paid = item->store_call || item->unanswered > 0, first_paid = paid && !s->log_paid;
  if (first_paid) {
    s->log_paid = true;
    clock_gettime(CLOCK_REALTIME, &s->log_paid_first);
  }
  if (first_paid || s->log_n == 1 || s->log_n == LOG_BATCH_ROWS) pthread_cond_signal(&s->log_cond);
  pthread_mutex_unlock(&s->log_lock);
  memset(item, 0, sizeof *item);
}

void us__recent_put(us__server *s, const char *key, const char *body) {
  char *copy = us_strdup(body);
  us__recent *fresh = malloc(sizeof *fresh);
  if (!copy || !fresh) {
    free(copy);
    free(fresh);
    return; /* the repeat then waits for the row on disk */
  }
  pthread_mutex_lock(&s->recent_lock);
  us__recent **p = recent_link(s, key);
  if (*p) { /* the same request answered twice: the later answer */
    free((*p)->body);
    (*p)->body = copy;
    free(fresh);
  } else {
    fresh->next = NULL;
    memcpy(fresh->key, key, 65);
    fresh->body = copy;
    *p = fresh;
  }
  pthread_mutex_unlock(&s->recent_lock);
}

char *us__recent_get(us__server *s, const char *key) {
  pthread_mutex_lock(&s->recent_lock);
  us__recent *r = *recent_link(s, key);
  char *copy = r ? us_strdup(r->body) : NULL;
  pthread_mutex_unlock(&s->recent_lock);
  return copy;
}

void us__recent_forget(us__server *s, const char *key) {
  pthread_mutex_lock(&s->recent_lock);
  us__recent **p = recent_link(s, key);
  us__recent *r = *p;
  if (r) *p = r->next;
  pthread_mutex_unlock(&s->recent_lock);
  if (r) free(r->body);
  free(r);
}

void us__recent_free(us__server *s) {
  for (int i = 0; i < US__RECENT_SLOTS; i++) {
    while (s->recent[i]) {
      us__recent *r = s->recent[i];
      s->recent[i] = r->next;
      free(r->body);
      free(r);
    }
  }
}

void us__log_take_call(us__log_item *item, const char *key, char **request, us_teacher_reply *r) {
  item->store_call = true;
  memcpy(item->call.key, key, 65);
  item->call.request = *request;
  *request = NULL;
  item->call.response = r->body;
  r->body = NULL;
  item->call.http_status = 200;
  item->call.prompt_tokens = r->prompt_tokens;
  item->call.completion_tokens = r->completion_tokens;
  item->call.cost_usd = r->cost_usd;
  item->call.latency_ms = r->latency_ms;
  item->call.attempts = r->attempts;
  item->call.created_at = us_epoch();
}
