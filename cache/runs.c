/* Runs of the stages, the training curves they record, and named JSON results (what the
 * report reads back). */
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/clock.h"

us_status us_cache_run_begin(us_cache *c, const char *command, int64_t *run_id, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_RUN_INSERT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, command ? command : "", -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 2, us_epoch());
  us_status st = us__cache_step_done(c, s, err, "recording the start of a run");
  if (st == US_OK && run_id) *run_id = sqlite3_last_insert_rowid(c->db);
  return st;
}

us_status us_cache_run_end(us_cache *c, int64_t run_id, const char *status, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_RUN_END, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_int64(s, 1, run_id);
  sqlite3_bind_double(s, 2, us_epoch());
  sqlite3_bind_text(s, 3, status ? status : "ok", -1, SQLITE_STATIC);
  us_status st = us__cache_step_done(c, s, err, "recording the end of a run");
  if (st == US_OK && sqlite3_changes(c->db) == 0)
    st = us_err_set(err, US_ERR_NOT_FOUND, "workspace %s: no run %lld to end", c->path,
                    (long long)run_id);
  return st;
}

us_status us_cache_curve_add(us_cache *c, int64_t run_id, const char *series, double x, double y,
                             us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_CURVE_INSERT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_int64(s, 1, run_id);
  sqlite3_bind_text(s, 2, series, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 3, x);
  sqlite3_bind_double(s, 4, y);
  return us__cache_step_done(c, s, err, "adding a curve point (does the run exist?)");
}

/* Reads one row of CURVE_GET into row (a us_curve_point). */
static int read_curve_point(sqlite3_stmt *s, void *row) {
  us_curve_point *p = row;
  p->x = sqlite3_column_double(s, 0);
  p->y = sqlite3_column_double(s, 1);
  return 0;
}

us_status us_cache_curve_get(us_cache *c, const char *series, us_curve_point **out, size_t *n,
                             us_err *err) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_CURVE_GET, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, series, -1, SQLITE_STATIC);
  void *pts = NULL;
  size_t count = 0;
  us_status st = us__cache_read_rows(c, s, sizeof(us_curve_point), 64, read_curve_point, &pts,
                                     &count, "reading a curve", err);
  if (st) {
    free(pts);
    if (st == US_ERR_NOMEM) us_err_set(err, US_ERR_NOMEM, "out of memory reading curve %s", series);
    return st;
  }
  *out = pts;
  *n = count;
  return US_OK;
}

us_status us_cache_result_put(us_cache *c, const char *name, const char *json, us_err *err) {
  if (!name || !json)
    return us_err_set(err, US_ERR_INPUT, "workspace %s: a result needs a name and JSON", c->path);
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_RESULT_UPSERT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, json, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 3, us_epoch());
  return us__cache_step_done(c, s, err, "storing a result");
}

us_status us_cache_result_get(us_cache *c, const char *name, char **json, bool *found,
                              us_err *err) {
  *json = NULL;
  *found = false;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_RESULT_GET, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  us_status st = US_OK;
  if (rc == SQLITE_ROW) {
    int oom = 0;
    *json = us__cache_column_text(s, 0, &oom);
    if (oom)
      st = us_err_set(err, US_ERR_NOMEM, "out of memory reading result %s", name);
    else
      *found = *json != NULL;
  } else if (rc != SQLITE_DONE) {
    st = us__cache_db_error(c, err, "reading a result");
  }
  us__cache_done(s);
  return st;
}
