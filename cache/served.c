/* The requests `understudy serve` answered and the shadow audits it ran (schema version 3),
 * written in batches by the server's log thread and read back by the report. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"

static void bind_nullable_double(sqlite3_stmt *s, int idx, double v) {
  if (isnan(v))
    sqlite3_bind_null(s, idx);
  else
    sqlite3_bind_double(s, idx, v);
}

static us_status served_insert(us_cache *c, const us_served_row *r, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_SERVED_INSERT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_double(s, 1, r->created_at);
  sqlite3_bind_text(s, 2, r->route ? r->route : "error", -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 3, r->task ? 1 : 0);
  sqlite3_bind_int(s, 4, r->http_status);
  bind_nullable_double(s, 5, r->confidence);
  bind_nullable_double(s, 6, r->threshold);
  sqlite3_bind_double(s, 7, r->latency_ms);
  sqlite3_bind_int(s, 8, r->prompt_tokens);
  sqlite3_bind_int(s, 9, r->completion_tokens);
  sqlite3_bind_double(s, 10, r->cost_usd);
  sqlite3_bind_double(s, 11, r->saved_usd);
  if (r->agree >= 0)
    sqlite3_bind_int(s, 12, r->agree);
  else
    sqlite3_bind_null(s, 12);
  us__cache_bind_text(s, 13, r->prompt);
  us__cache_bind_text(s, 14, r->answer);
  return us__cache_step_done(c, s, err, "logging a served request");
}

us_status us_cache_served_insert(us_cache *c, const us_served_row *rows, size_t n, us_err *err) {
  us_status st = US_OK;
  for (size_t i = 0; i < n && !st; i++) st = served_insert(c, &rows[i], err);
  return st;
}

us_status us_cache_served_add(us_cache *c, const us_served_row *rows, size_t n, us_err *err) {
  if (n == 0) return US_OK;
  us_status st = us_cache_begin(c, err);
  if (!st) st = us_cache_served_insert(c, rows, n, err);
  return us__cache_end(c, st, err);
}

us_status us_cache_served_routes(us_cache *c, us_served_route *out, int max, int *n, us_err *err) {
  *n = 0;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_SERVED_ROUTES, err);
  if (!s) return US_ERR_DB;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n >= max) continue;
    us_served_route *r = &out[(*n)++];
    memset(r, 0, sizeof *r);
    const unsigned char *name = sqlite3_column_text(s, 0);
    strncpy(r->route, name ? (const char *)name : "", sizeof r->route - 1);
    r->n = sqlite3_column_int64(s, 1);
    r->cost_usd = sqlite3_column_double(s, 2);
    r->saved_usd = sqlite3_column_double(s, 3);
    r->agree = sqlite3_column_int64(s, 4);
    r->first_at = sqlite3_column_double(s, 5);
    r->last_at = sqlite3_column_double(s, 6);
  }
  us__cache_done(s);
  if (rc != SQLITE_DONE) return us__cache_db_error(c, err, "reading the served requests");
  return US_OK;
}

us_status us_cache_served_audits(us_cache *c, double **at, int **agree, size_t *n, us_err *err) {
  *at = NULL;
  *agree = NULL;
  *n = 0;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_SERVED_AUDITS, err);
  if (!s) return US_ERR_DB;
  size_t cap = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 256;
      double *a = realloc(*at, cap * sizeof *a);
      if (a) *at = a;
      int *g = realloc(*agree, cap * sizeof *g);
      if (g) *agree = g;
      if (!a || !g) {
        us__cache_done(s);
        return us_err_set(err, US_ERR_NOMEM, "out of memory reading the audits");
      }
    }
    (*at)[*n] = sqlite3_column_double(s, 0);
    (*agree)[*n] = sqlite3_column_int(s, 1);
    (*n)++;
  }
  us__cache_done(s);
  if (rc != SQLITE_DONE) return us__cache_db_error(c, err, "reading the audits");
  return US_OK;
}
