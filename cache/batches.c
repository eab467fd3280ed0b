/* Batch API batches in the workspace (schema version 5): each batch's id, the request keys it
 * carries, its last seen status, and, once its results are committed, what they cost and would
 * have cost live. */
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/buf.h"
#include "core/clock.h"

us_status us_cache_batch_add(us_cache *c, const char *id, const char *input_file_id,
                             const char *status, const char *const *keys, size_t n, us_err *err) {
  bool own_txn = sqlite3_get_autocommit(c->db) != 0;
  us_status st = own_txn ? us_cache_begin(c, err) : US_OK;
  if (st) return st;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_INSERT, err);
  if (!s) {
    st = US_ERR_DB;
    goto done;
  }
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, input_file_id ? input_file_id : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, status ? status : "validating", -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 4, (sqlite3_int64)n);
  sqlite3_bind_double(s, 5, us_epoch());
  st = us__cache_step_done(c, s, err, "recording a batch");
  for (size_t i = 0; i < n && !st; i++) {
    s = us__cache_stmt(c, US__STMT_BATCH_REQUEST_INSERT, err);
    if (!s) {
      st = US_ERR_DB;
      break;
    }
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, keys[i], -1, SQLITE_STATIC);
    st = us__cache_step_done(c, s, err, "recording a batch's requests");
  }
done:
  if (own_txn) {
    if (st)
      us_cache_rollback(c, NULL);
    else
      st = us_cache_commit(c, err);
  }
  return st;
}

void us_batches_free(us_batch *b, size_t n) {
  for (size_t i = 0; b && i < n; i++) {
    free(b[i].id);
    free(b[i].input_file_id);
    free(b[i].status);
    for (size_t k = 0; k < b[i].n_keys; k++) free(b[i].keys[k]);
    free(b[i].keys);
  }
  free(b);
}

static int read_batch(sqlite3_stmt *s, void *row) {
  us_batch *b = row;
  int oom = 0;
  b->id = us__cache_column_text(s, 0, &oom);
  b->input_file_id = us__cache_column_text(s, 1, &oom);
  b->status = us__cache_column_text(s, 2, &oom);
  b->n_requests = sqlite3_column_int64(s, 3);
  b->created_at = sqlite3_column_double(s, 4);
  return oom;
}

static int read_key(sqlite3_stmt *s, void *row) {
  int oom = 0;
  *(char **)row = us__cache_column_text(s, 0, &oom);
  return oom;
}

us_status us_cache_batches_open(us_cache *c, us_batch **out, size_t *n, us_err *err) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCHES_OPEN, err);
  if (!s) return US_ERR_DB;
  void *rows = NULL;
  size_t count = 0;
  us_status st = us__cache_read_rows(c, s, sizeof(us_batch), 4, read_batch, &rows, &count,
                                     "listing open batches", err);
  us_batch *b = rows;
  for (size_t i = 0; i < count && !st; i++) {
    s = us__cache_stmt(c, US__STMT_BATCH_KEYS, err);
    if (!s) {
      st = US_ERR_DB;
      break;
    }
    sqlite3_bind_text(s, 1, b[i].id, -1, SQLITE_STATIC);
    void *keys = NULL;
    st = us__cache_read_rows(c, s, sizeof(char *), 64, read_key, &keys, &b[i].n_keys,
                             "listing a batch's requests", err);
    b[i].keys = keys;
  }
  if (st) {
    us_batches_free(b, count);
    if (st == US_ERR_NOMEM) us_err_set(err, US_ERR_NOMEM, "out of memory listing open batches");
    return st;
  }
  *out = b;
  *n = count;
  return US_OK;
}

us_status us_cache_batch_status(us_cache *c, const char *id, const char *status, int64_t completed,
                                int64_t failed, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_STATUS, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, status, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 3, completed);
  sqlite3_bind_int64(s, 4, failed);
  sqlite3_bind_double(s, 5, us_epoch());
  return us__cache_step_done(c, s, err, "updating a batch's status");
}

us_status us_cache_batch_collected(us_cache *c, const char *id, const char *status,
                                   int64_t answered, double spent_usd, double live_usd,
                                   us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_COLLECTED, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, status, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 3, answered);
  sqlite3_bind_double(s, 4, spent_usd);
  sqlite3_bind_double(s, 5, live_usd);
  sqlite3_bind_double(s, 6, us_epoch());
  return us__cache_step_done(c, s, err, "recording a batch's results");
}

us_status us_cache_batch_rename(us_cache *c, const char *id, const char *new_id, const char *status,
                                us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_RENAME, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, new_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, status, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 4, us_epoch());
  return us__cache_step_done(c, s, err, "recording a batch's id");
}

us_status us_cache_batch_delete(us_cache *c, const char *id, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_DELETE, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  return us__cache_step_done(c, s, err, "forgetting a batch");
}

us_status us_cache_batch_totals(us_cache *c, us_batch_totals *t, us_err *err) {
  memset(t, 0, sizeof *t);
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_TOTALS, err);
  if (!s) return US_ERR_DB;
  int rc = sqlite3_step(s);
  if (rc != SQLITE_ROW) {
    us_status st = us__cache_db_error(c, err, "reading batch totals");
    sqlite3_reset(s);
    return st;
  }
  t->batches = sqlite3_column_int64(s, 0);
  t->open = sqlite3_column_int64(s, 1);
  t->requests = sqlite3_column_int64(s, 2);
  t->answered = sqlite3_column_int64(s, 3);
  t->spent_usd = sqlite3_column_double(s, 4);
  t->live_usd = sqlite3_column_double(s, 5);
  sqlite3_reset(s);
  return US_OK;
}
