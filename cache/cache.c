/* The workspace handle: opening and migrating the SQLite file, transactions, prompts, teacher
 * calls, failures and statistics. Statements are prepared once per handle (cache_int.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/assert.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/task.h"

static const char *const statement_sql[US__STMT_COUNT] = {
#define US__CACHE_STMT_SQL(name, sql) sql,
    US__CACHE_STATEMENTS(US__CACHE_STMT_SQL)
#undef US__CACHE_STMT_SQL
};

/* ---- helpers shared with the other cache files ----------------------------------------- */

us_status us__cache_db_error(us_cache *c, us_err *err, const char *what) {
  return us_err_set(err, US_ERR_DB, "workspace %s: %s: %s", c->path, what, sqlite3_errmsg(c->db));
}

sqlite3_stmt *us__cache_stmt(us_cache *c, us__cache_stmt_id id, us_err *err) {
  US_ASSERT((unsigned)id < US__STMT_COUNT);
  sqlite3_stmt *s = c->stmt[id];
  if (s) {
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
  }
  if (sqlite3_prepare_v3(c->db, statement_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
      SQLITE_OK) {
    us__cache_db_error(c, err, "preparing a statement");
    sqlite3_finalize(s);
    return NULL;
  }
  c->stmt[id] = s;
  return s;
}

void us__cache_done(sqlite3_stmt *s) {
  if (s) sqlite3_reset(s);
}

us_status us__cache_step_done(us_cache *c, sqlite3_stmt *s, us_err *err, const char *what) {
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
  }
  us_status st = rc == SQLITE_DONE ? US_OK : us__cache_db_error(c, err, what);
  sqlite3_reset(s);
  return st;
}

us_status us__cache_read_rows(us_cache *c, sqlite3_stmt *s, size_t row_size, size_t first_cap,
                              us__cache_row_fn read_row, void **rows, size_t *n, const char *what,
                              us_err *err) {
  char *array = NULL;
  size_t count = 0, cap = 0;
  us_status st = US_OK;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (count == cap) {
      size_t new_cap = cap ? cap * 2 : first_cap;
      char *grown = realloc(array, new_cap * row_size);
      if (!grown) {
        st = US_ERR_NOMEM;
        break;
      }
      array = grown;
      cap = new_cap;
    }
    char *row = array + count * row_size;
    memset(row, 0, row_size);
    count++; /* counted even when read_row fails, so its caller frees what it holds */
    if (read_row(s, row)) {
      st = US_ERR_NOMEM;
      break;
    }
  }
  if (!st && rc != SQLITE_DONE) st = us__cache_db_error(c, err, what);
  us__cache_done(s);
  *rows = array;
  *n = count;
  return st;
}

char *us__cache_column_text(sqlite3_stmt *s, int col, int *oom) {
  const unsigned char *t = sqlite3_column_text(s, col);
  if (!t) return NULL;
  size_t n = (size_t)sqlite3_column_bytes(s, col);
  char *out = malloc(n + 1);
  if (!out) {
    *oom = 1;
    return NULL;
  }
  memcpy(out, t, n);
  out[n] = '\0';
  return out;
}

int us__cache_bind_text(sqlite3_stmt *s, int idx, const char *text) {
  if (!text) return sqlite3_bind_null(s, idx);
  return sqlite3_bind_text(s, idx, text, -1, SQLITE_STATIC);
}

/* ---- open, close, transactions ----------------------------------------------------------- */

us_status us_cache_open(const char *path, us_cache **out, us_err *err) {
  *out = NULL;
  us_cache *c = calloc(1, sizeof *c);
  if (!c || !(c->path = us_strdup(path))) {
    free(c);
    return us_err_set(err, US_ERR_NOMEM, "out of memory opening workspace %s", path);
  }
  us_status st = US_OK;
  int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK) {
    int sys = c->db ? sqlite3_system_errno(c->db) : 0;
    st = us_err_set(err, US_ERR_DB, "cannot open workspace %s: %s%s%s", path,
                    c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc), sys ? ": " : "",
                    sys ? strerror(sys) : "");
    goto fail;
  }
  sqlite3_busy_timeout(c->db, 5000); /* other processes (a second run, a reader) wait, not fail */
  st = us__cache_migrate(c, err);
  if (st) goto fail;
  *out = c;
  return US_OK;
fail:
  us_cache_close(c);
  return st;
}

void us_cache_close(us_cache *c) {
  if (!c) return;
  for (int i = 0; i < US__STMT_COUNT; i++) sqlite3_finalize(c->stmt[i]);
  sqlite3_close(c->db);
  free(c->path);
  free(c);
}

us_status us_cache_open_read_only(const char *path, us_cache **out, us_err *err) {
  *out = NULL;
  us_cache *c = calloc(1, sizeof *c);
  if (!c || !(c->path = us_strdup(path))) {
    free(c);
    return us_err_set(err, US_ERR_NOMEM, "out of memory opening workspace %s", path);
  }
  us_status st = US_OK;
  int rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READONLY, NULL);
  if (rc != SQLITE_OK) {
    int sys = c->db ? sqlite3_system_errno(c->db) : 0;
    st = us_err_set(err, US_ERR_DB, "cannot open workspace %s read-only: %s%s%s", path,
                    c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc), sys ? ": " : "",
                    sys ? strerror(sys) : "");
    goto fail;
  }
  sqlite3_busy_timeout(c->db, 5000);
  if ((st = us__cache_check_current(c, err)) != US_OK) goto fail;
  *out = c;
  return US_OK;
fail:
  us_cache_close(c);
  return st;
}

int us_cache_schema_version(us_cache *c) {
  return c->version;
}

static us_status run_simple(us_cache *c, us__cache_stmt_id id, const char *what, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, id, err);
  if (!s) return US_ERR_DB;
  return us__cache_step_done(c, s, err, what);
}

us_status us_cache_begin(us_cache *c, us_err *err) {
  return run_simple(c, US__STMT_BEGIN, "beginning a transaction", err);
}

us_status us_cache_commit(us_cache *c, us_err *err) {
  return run_simple(c, US__STMT_COMMIT, "committing", err);
}

us_status us_cache_rollback(us_cache *c, us_err *err) {
  return run_simple(c, US__STMT_ROLLBACK, "rolling back", err);
}

us_status us__cache_end(us_cache *c, us_status st, us_err *err) {
  if (st) {
    us_cache_rollback(c, NULL); /* st already says what went wrong */
    return st;
  }
  return us_cache_commit(c, err);
}

/* ---- prompts ------------------------------------------------------------------------------ */

us_status us_cache_prompt_insert(us_cache *c, const us_prompt *p, bool *inserted, int64_t *id,
                                 us_err *err) {
  if (!p->hash[0] || !p->text || (p->split != US_SPLIT_TRAIN && p->split != US_SPLIT_TEST) ||
      (p->kind != US_PROMPT_KIND_PROMPT && p->kind != US_PROMPT_KIND_CHUNK))
    return us_err_set(err, US_ERR_INPUT,
                      "workspace %s: a prompt needs a hash, a text, split 0 (train) or 1 (test) "
                      "and kind 0 (prompt) or 1 (chunk); got split %d, kind %d",
                      c->path, p->split, p->kind);
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_PROMPT_INSERT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, p->hash, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, p->text, -1, SQLITE_STATIC);
  us__cache_bind_text(s, 3, p->gold);
  us__cache_bind_text(s, 4, p->source);
  sqlite3_bind_int(s, 5, p->split);
  sqlite3_bind_int(s, 6, p->kind);
  us__cache_bind_text(s, 7, p->context);
  us_status st = us__cache_step_done(c, s, err, "adding a prompt");
  if (st) return st;
  bool added = sqlite3_changes(c->db) > 0;
  if (inserted) *inserted = added;
  if (!id) return US_OK;
  if (added) {
    *id = sqlite3_last_insert_rowid(c->db);
    return US_OK;
  }
  s = us__cache_stmt(c, US__STMT_PROMPT_ID, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, p->hash, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *id = sqlite3_column_int64(s, 0);
  st = rc == SQLITE_ROW ? US_OK : us__cache_db_error(c, err, "looking up a prompt");
  us__cache_done(s);
  return st;
}

us_status us_cache_prompt_add(us_cache *c, const char *hash, const char *text, const char *gold,
                              const char *source, int split, bool *inserted, int64_t *id,
                              us_err *err) {
  if (!hash) return us_err_set(err, US_ERR_INPUT, "workspace %s: a prompt needs a hash", c->path);
  us_prompt p;
  memset(&p, 0, sizeof p);
  snprintf(p.hash, sizeof p.hash, "%s", hash);
  p.text = (char *)text;
  p.gold = (char *)gold;
  p.source = (char *)source;
  p.split = split;
  p.kind = US_PROMPT_KIND_PROMPT;
  return us_cache_prompt_insert(c, &p, inserted, id, err);
}

void us_prompts_free(us_prompt *p, size_t n) {
  if (!p) return;
  for (size_t i = 0; i < n; i++) {
    free(p[i].text);
    free(p[i].gold);
    free(p[i].source);
    free(p[i].context);
  }
  free(p);
}

/* Reads one row of PROMPTS_LIST into row (a us_prompt); returns non-zero when out of memory. */
static int read_prompt(sqlite3_stmt *s, void *row) {
  us_prompt *p = row;
  int oom = 0;
  p->id = sqlite3_column_int64(s, 0);
  const unsigned char *hash = sqlite3_column_text(s, 1);
  snprintf(p->hash, sizeof p->hash, "%s", hash ? (const char *)hash : "");
  p->text = us__cache_column_text(s, 2, &oom);
  p->gold = us__cache_column_text(s, 3, &oom);
  p->source = us__cache_column_text(s, 4, &oom);
  p->split = sqlite3_column_int(s, 5);
  p->kind = sqlite3_column_int(s, 6);
  p->context = us__cache_column_text(s, 7, &oom);
  return oom;
}

static us_status list_rows(us_cache *c, int split, int kind, us_prompt **out, size_t *n,
                           us_err *err) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_PROMPTS_LIST, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_int(s, 1, split);
  sqlite3_bind_int(s, 2, kind);
  void *rows = NULL;
  size_t count = 0;
  us_status st = us__cache_read_rows(c, s, sizeof(us_prompt), 256, read_prompt, &rows, &count,
                                     "listing prompts", err);
  if (st) {
    us_prompts_free(rows, count);
    if (st == US_ERR_NOMEM)
      us_err_set(err, US_ERR_NOMEM, "out of memory listing the prompts of %s", c->path);
    return st;
  }
  *out = rows;
  *n = count;
  return US_OK;
}

us_status us_cache_prompts_list(us_cache *c, int split, us_prompt **out, size_t *n, us_err *err) {
  return list_rows(c, split, US_PROMPT_KIND_PROMPT, out, n, err);
}

/* PROMPTS_PAGE filters on +kind so SQLite walks the rowid from after_id: through the (kind,
 * split, id) index it would read and sort every row of the kind for each page (0.17 s a page at
 * a million prompts, against 0.007 s). */
us_status us_cache_prompts_page(us_cache *c, int kind, int64_t after_id, size_t limit,
                                us_prompt **out, size_t *n, us_err *err) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_PROMPTS_PAGE, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_int(s, 1, kind);
  sqlite3_bind_int64(s, 2, after_id);
  sqlite3_bind_int64(s, 3, limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit);
  void *rows = NULL;
  size_t count = 0;
  size_t first_cap = limit < 256 ? (limit ? limit : 1) : 256;
  us_status st = us__cache_read_rows(c, s, sizeof(us_prompt), first_cap, read_prompt, &rows, &count,
                                     "reading a page of prompts", err);
  if (st) {
    us_prompts_free(rows, count);
    if (st == US_ERR_NOMEM)
      us_err_set(err, US_ERR_NOMEM, "out of memory reading %zu prompts of %s", limit, c->path);
    return st;
  }
  *out = rows;
  *n = count;
  return US_OK;
}

us_status us_cache_chunks_list(us_cache *c, us_prompt **out, size_t *n, us_err *err) {
  return list_rows(c, -1, US_PROMPT_KIND_CHUNK, out, n, err);
}

static us_status select_int64(us_cache *c, sqlite3_stmt *s, int64_t *out, const char *what,
                              us_err *err) {
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int64(s, 0);
  us_status st = rc == SQLITE_ROW ? US_OK : us__cache_db_error(c, err, what);
  us__cache_done(s);
  return st;
}

us_status us_cache_prompts_count(us_cache *c, int split, int64_t *n, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_PROMPTS_COUNT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_int(s, 1, split);
  return select_int64(c, s, n, "counting prompts", err);
}

/* ---- teacher calls ---------------------------------------------------------------------- */

us_status us_cache_call_put(us_cache *c, const us_call *call, bool *existed, us_err *err) {
  if (!call->request || !call->response)
    return us_err_set(err, US_ERR_INPUT, "workspace %s: call %s has no request or response",
                      c->path, call->key);
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_CALL_INSERT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, call->key, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 2, call->http_status);
  sqlite3_bind_int(s, 3, call->prompt_tokens);
  sqlite3_bind_int(s, 4, call->completion_tokens);
  sqlite3_bind_double(s, 5, call->cost_usd);
  sqlite3_bind_double(s, 6, call->latency_ms);
  sqlite3_bind_int(s, 7, call->attempts);
  sqlite3_bind_int(s, 8, call->imported ? 1 : 0);
  sqlite3_bind_double(s, 9, call->created_at > 0 ? call->created_at : us_epoch());
  sqlite3_bind_text(s, 10, call->request, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 11, call->response, -1, SQLITE_STATIC);
  us_status st = us__cache_step_done(c, s, err, "storing a teacher call");
  if (st == US_OK && existed) *existed = sqlite3_changes(c->db) == 0;
  return st;
}

/* Reads one row of CALL_GET / CALLS_EACH into out; returns non-zero when out of memory. */
static int read_call(sqlite3_stmt *s, us_call *out) {
  int oom = 0;
  memset(out, 0, sizeof *out);
  const unsigned char *key = sqlite3_column_text(s, 0);
  snprintf(out->key, sizeof out->key, "%s", key ? (const char *)key : "");
  out->http_status = sqlite3_column_int(s, 1);
  out->prompt_tokens = sqlite3_column_int(s, 2);
  out->completion_tokens = sqlite3_column_int(s, 3);
  out->cost_usd = sqlite3_column_double(s, 4);
  out->latency_ms = sqlite3_column_double(s, 5);
  out->attempts = sqlite3_column_int(s, 6);
  out->imported = sqlite3_column_int(s, 7) != 0;
  out->created_at = sqlite3_column_double(s, 8);
  out->request = us__cache_column_text(s, 9, &oom);
  out->response = us__cache_column_text(s, 10, &oom);
  return oom;
}

void us_call_free_fields(us_call *call) {
  if (!call) return;
  free(call->request);
  free(call->response);
  call->request = call->response = NULL;
}

us_status us_cache_call_get(us_cache *c, const char *key, us_call *out, bool *found, us_err *err) {
  memset(out, 0, sizeof *out);
  *found = false;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_CALL_GET, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  us_status st = US_OK;
  if (rc == SQLITE_ROW) {
    if (read_call(s, out)) {
      us_call_free_fields(out);
      st = us_err_set(err, US_ERR_NOMEM, "out of memory reading call %s from %s", key, c->path);
    } else {
      *found = true;
    }
  } else if (rc != SQLITE_DONE) {
    st = us__cache_db_error(c, err, "reading a teacher call");
  }
  us__cache_done(s);
  return st;
}

us_status us_cache_call_exists(us_cache *c, const char *key, bool *found, us_err *err) {
  *found = false;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_CALL_EXISTS, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  *found = rc == SQLITE_ROW;
  us_status st = rc == SQLITE_ROW || rc == SQLITE_DONE
                     ? US_OK
                     : us__cache_db_error(c, err, "looking up a teacher call");
  us__cache_done(s);
  return st;
}

us_status us_cache_call_keys_since(us_cache *c, int64_t *rowid, us_call_key_fn fn, void *user,
                                   us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_CALL_KEYS_SINCE, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_int64(s, 1, *rowid);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(s, 1);
    *rowid = sqlite3_column_int64(s, 0);
    if (key) fn(user, key);
  }
  us_status st =
      rc == SQLITE_DONE ? US_OK : us__cache_db_error(c, err, "listing the teacher calls' keys");
  us__cache_done(s);
  return st;
}

us_status us_cache_data_version(us_cache *c, int64_t *version, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_DATA_VERSION, err);
  if (!s) return US_ERR_DB;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *version = sqlite3_column_int64(s, 0);
  us__cache_done(s);
  return rc == SQLITE_ROW ? US_OK : us__cache_db_error(c, err, "reading the data version");
}

us_status us_cache_calls_each(us_cache *c, us_call_fn fn, void *user, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_CALLS_EACH, err);
  if (!s) return US_ERR_DB;
  us_status st = US_OK;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    us_call call;
    if (read_call(s, &call)) {
      us_call_free_fields(&call);
      st = us_err_set(err, US_ERR_NOMEM, "out of memory reading the calls of %s", c->path);
      break;
    }
    int stop = fn(user, &call);
    us_call_free_fields(&call);
    if (stop) break;
  }
  if (st == US_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
    st = us__cache_db_error(c, err, "reading teacher calls");
  us__cache_done(s);
  return st;
}

/* ---- failures and statistics --------------------------------------------------------------- */

us_status us_cache_failure_put(us_cache *c, const char *key, int64_t prompt_id, int http_status,
                               const char *message, int attempts, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_FAILURE_INSERT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, prompt_id);
  sqlite3_bind_int(s, 3, http_status);
  us__cache_bind_text(s, 4, message);
  sqlite3_bind_int(s, 5, attempts);
  sqlite3_bind_double(s, 6, us_epoch());
  return us__cache_step_done(c, s, err, "recording a failed call");
}

/* Keys that failed and have no successful call since: what is still owed by the teacher. */
us_status us_cache_failures_count(us_cache *c, int64_t *n, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_FAILURES_COUNT, err);
  if (!s) return US_ERR_DB;
  return select_int64(c, s, n, "counting failures", err);
}

/* Nearest-rank percentile p (0..1) of the latency of the n non-imported calls. */
static us_status latency_percentile(us_cache *c, int64_t n, double p, double *out, us_err *err) {
  *out = 0;
  if (n <= 0) return US_OK;
  int64_t rank = (int64_t)ceil(p * (double)n);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_LATENCY_AT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_int64(s, 1, rank - 1);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) *out = sqlite3_column_double(s, 0);
  us_status st = rc == SQLITE_ROW ? US_OK : us__cache_db_error(c, err, "reading latencies");
  us__cache_done(s);
  return st;
}

static us_status stats_row(us_cache *c, us__cache_stmt_id id, int64_t *v, int nv, double *d,
                           us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, id, err);
  if (!s) return US_ERR_DB;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    for (int i = 0; i < nv; i++) v[i] = sqlite3_column_int64(s, i);
    if (d) *d = sqlite3_column_double(s, nv);
  }
  us_status st = rc == SQLITE_ROW ? US_OK : us__cache_db_error(c, err, "reading statistics");
  us__cache_done(s);
  return st;
}

us_status us_cache_stats_get(us_cache *c, us_cache_stats *out, us_err *err) {
  memset(out, 0, sizeof *out);
  int64_t p[4] = {0}, calls[4] = {0}, t[2] = {0}, paid;
  double spent = 0;
  us_status st = stats_row(c, US__STMT_STATS_PROMPTS, p, 4, NULL, err);
  if (st == US_OK) st = stats_row(c, US__STMT_STATS_CALLS, calls, 4, &spent, err);
  if (st == US_OK) st = stats_row(c, US__STMT_STATS_TARGETS, t, 2, NULL, err);
  if (st == US_OK) st = us_cache_failures_count(c, &out->failures, err);
  if (st) return st;
  out->prompts = p[0];
  out->prompts_train = p[1];
  out->prompts_test = p[2];
  out->chunks = p[3];
  out->calls = calls[0];
  out->calls_imported = calls[1];
  out->prompt_tokens = calls[2];
  out->completion_tokens = calls[3];
  out->spent_usd = spent;
  out->targets = t[0];
  out->targets_unparsed = t[1];
  paid = out->calls - out->calls_imported;
  st = latency_percentile(c, paid, 0.50, &out->latency_p50_ms, err);
  if (st == US_OK) st = latency_percentile(c, paid, 0.99, &out->latency_p99_ms, err);
  return st;
}
