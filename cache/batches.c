/* Batch API batches in the workspace (schema version 5): each batch's id, the request keys it
 * carries, its last seen status, and, once its results are committed, what they cost and would
 * have cost live. */
#include <stdio.h>
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
  return own_txn ? us__cache_end(c, st, err) : st;
}

void us_batches_free(us_batch *b, size_t n) {
  for (size_t i = 0; b && i < n; i++) {
    free(b[i].id);
    free(b[i].input_file_id);
    free(b[i].status);
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

us_status us_cache_batches_open(us_cache *c, us_batch **out, size_t *n, us_err *err) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCHES_OPEN, err);
  if (!s) return US_ERR_DB;
  void *rows = NULL;
  size_t count = 0;
  us_status st = us__cache_read_rows(c, s, sizeof(us_batch), 4, read_batch, &rows, &count,
                                     "listing open batches", err);
  if (st) {
    us_batches_free(rows, count);
    if (st == US_ERR_NOMEM) us_err_set(err, US_ERR_NOMEM, "out of memory listing open batches");
    return st;
  }
  *out = rows;
  *n = count;
  return US_OK;
}

us_status us_cache_batch_requests_add(us_cache *c, const char *id, const us_batch_request *rows,
                                      size_t n, us_err *err) {
  bool own_txn = sqlite3_get_autocommit(c->db) != 0;
  us_status st = own_txn ? us_cache_begin(c, err) : US_OK;
  if (st) return st;
  for (size_t i = 0; i < n && !st; i++) {
    sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_ROW_INSERT, err);
    if (!s) {
      st = US_ERR_DB;
      break;
    }
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, rows[i].key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, rows[i].prompt_id);
    sqlite3_bind_int(s, 4, rows[i].attempts);
    us__cache_bind_text(s, 5, rows[i].request);
    st = us__cache_step_done(c, s, err, "recording a batch's requests");
  }
  if (!st) {
    sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_GROW, err);
    if (!s) {
      st = US_ERR_DB;
    } else {
      sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
      sqlite3_bind_int64(s, 2, (sqlite3_int64)n);
      st = us__cache_step_done(c, s, err, "counting a batch's requests");
    }
  }
  return own_txn ? us__cache_end(c, st, err) : st;
}

us_status us_cache_batch_request_get(us_cache *c, const char *id, const char *key,
                                     us_batch_request *row, bool *found, us_err *err) {
  memset(row, 0, sizeof *row);
  *found = false;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_ROW_GET, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  us_status st = US_OK;
  if (rc == SQLITE_ROW) {
    int oom = 0;
    snprintf(row->key, sizeof row->key, "%s", key);
    row->prompt_id =
        sqlite3_column_type(s, 0) == SQLITE_NULL ? -1 : (int64_t)sqlite3_column_int64(s, 0);
    row->attempts = sqlite3_column_int(s, 1);
    row->request = us__cache_column_text(s, 2, &oom);
    if (oom)
      st = us_err_set(err, US_ERR_NOMEM, "out of memory reading batch %s's request %s", id, key);
    else
      *found = true;
  } else if (rc != SQLITE_DONE) {
    st = us__cache_db_error(c, err, "reading a batch's request");
  }
  us__cache_done(s);
  return st;
}

us_status us_cache_batch_keys(us_cache *c, const char *id, char (**keys)[65], size_t *n,
                              us_err *err) {
  *keys = NULL;
  *n = 0;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_KEYS, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  char(*out)[65] = NULL;
  size_t count = 0, cap = 0;
  us_status st = US_OK;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (count == cap) {
      cap = cap ? 2 * cap : 1024;
      char(*grown)[65] = realloc(out, cap * sizeof *grown);
      if (!grown) {
        st = us_err_set(err, US_ERR_NOMEM, "out of memory listing batch %s's requests", id);
        break;
      }
      out = grown;
    }
    const unsigned char *k = sqlite3_column_text(s, 0);
    snprintf(out[count++], 65, "%s", k ? (const char *)k : "");
  }
  if (!st && rc != SQLITE_DONE) st = us__cache_db_error(c, err, "listing a batch's requests");
  us__cache_done(s);
  if (st) {
    free(out);
    return st;
  }
  *keys = out;
  *n = count;
  return US_OK;
}

us_status us_cache_batch_key_open(us_cache *c, const char *key, bool *open, us_err *err) {
  *open = false;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_KEY_OPEN, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  us_status st = US_OK;
  if (rc == SQLITE_ROW)
    *open = true;
  else if (rc != SQLITE_DONE)
    st = us__cache_db_error(c, err, "looking a request up in the open batches");
  us__cache_done(s);
  return st;
}

us_status us_cache_batch_uploaded(us_cache *c, const char *id, const char *new_id,
                                  const char *input_file_id, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_BATCH_UPLOADED, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, new_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 3, input_file_id, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 4, us_epoch());
  return us__cache_step_done(c, s, err, "recording a batch's uploaded file");
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
