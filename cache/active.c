/* Active labelling's picks and rounds (cache/active.h), tables of schema version 4. The
 * statements run a few times a round, so they are prepared per call. */
#include "cache/active.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/clock.h"

static us_status prepare(us_cache *c, const char *sql, sqlite3_stmt **s, us_err *err) {
  if (sqlite3_prepare_v2(c->db, sql, -1, s, NULL) == SQLITE_OK) return US_OK;
  us_status st = us__cache_db_error(c, err, "preparing an active-labelling statement");
  sqlite3_finalize(*s);
  *s = NULL;
  return st;
}

us_status us_cache_active_picks_add(us_cache *c, int round, const int64_t *ids, size_t n,
                                    us_err *err) {
  sqlite3_stmt *s = NULL;
  us_status st =
      prepare(c,
              "INSERT INTO active_picks(prompt_id, round, created_at) VALUES(?1, ?2, ?3) "
              "ON CONFLICT(prompt_id) DO NOTHING",
              &s, err);
  if (st) return st;
  st = us_cache_begin(c, err);
  double now = us_epoch();
  for (size_t i = 0; i < n && !st; i++) {
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, ids[i]);
    sqlite3_bind_int(s, 2, round);
    sqlite3_bind_double(s, 3, now);
    if (sqlite3_step(s) != SQLITE_DONE) st = us__cache_db_error(c, err, "recording a pick");
  }
  sqlite3_finalize(s);
  return us__cache_end(c, st, err);
}

us_status us_cache_active_picks_list(us_cache *c, int64_t **ids, int **rounds, size_t *n,
                                     us_err *err) {
  *ids = NULL;
  *rounds = NULL;
  *n = 0;
  sqlite3_stmt *s = NULL;
  us_status st =
      prepare(c, "SELECT prompt_id, round FROM active_picks ORDER BY round, prompt_id", &s, err);
  if (st) return st;
  size_t cap = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? 2 * cap : 256;
      int64_t *ni = realloc(*ids, cap * sizeof *ni);
      if (ni) *ids = ni;
      int *nr = ni ? realloc(*rounds, cap * sizeof *nr) : NULL;
      if (nr) *rounds = nr;
      if (!ni || !nr) {
        st = us_err_set(err, US_ERR_NOMEM, "out of memory reading the active-labelling picks");
        break;
      }
    }
    (*ids)[*n] = sqlite3_column_int64(s, 0);
    (*rounds)[*n] = sqlite3_column_int(s, 1);
    (*n)++;
  }
  if (!st && rc != SQLITE_DONE) st = us__cache_db_error(c, err, "reading the picks");
  sqlite3_finalize(s);
  return st;
}

us_status us_cache_active_round_put(us_cache *c, const us_active_round *r, us_err *err) {
  sqlite3_stmt *s = NULL;
  us_status st = prepare(
      c,
      "INSERT INTO active_rounds(round, n_labelled, n_valid, spent_usd, valid_agreement, "
      "valid_back, test_agreement, stop, created_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
      "ON CONFLICT(round) DO UPDATE SET n_labelled = excluded.n_labelled, "
      "n_valid = excluded.n_valid, spent_usd = excluded.spent_usd, "
      "valid_agreement = excluded.valid_agreement, valid_back = excluded.valid_back, "
      "test_agreement = excluded.test_agreement, stop = excluded.stop",
      &s, err);
  if (st) return st;
  sqlite3_bind_int(s, 1, r->round);
  sqlite3_bind_int64(s, 2, r->n_labelled);
  sqlite3_bind_int64(s, 3, r->n_valid);
  sqlite3_bind_double(s, 4, r->spent_usd);
  sqlite3_bind_double(s, 5, r->valid_agreement);
  sqlite3_bind_double(s, 6, r->valid_back);
  sqlite3_bind_double(s, 7, r->test_agreement);
  sqlite3_bind_text(s, 8, r->stop, -1, SQLITE_STATIC);
  sqlite3_bind_double(s, 9, us_epoch());
  if (sqlite3_step(s) != SQLITE_DONE) st = us__cache_db_error(c, err, "recording a round");
  sqlite3_finalize(s);
  return st;
}

us_status us_cache_active_rounds_list(us_cache *c, us_active_round **out, size_t *n, us_err *err) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = NULL;
  us_status st = prepare(c,
                         "SELECT round, n_labelled, n_valid, spent_usd, valid_agreement, "
                         "valid_back, test_agreement, stop FROM active_rounds ORDER BY round",
                         &s, err);
  if (st) return st;
  size_t cap = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? 2 * cap : 16;
      us_active_round *nr = realloc(*out, cap * sizeof *nr);
      if (!nr) {
        st = us_err_set(err, US_ERR_NOMEM, "out of memory reading the active-labelling rounds");
        break;
      }
      *out = nr;
    }
    us_active_round *r = &(*out)[(*n)++];
    memset(r, 0, sizeof *r);
    r->round = sqlite3_column_int(s, 0);
    r->n_labelled = sqlite3_column_int64(s, 1);
    r->n_valid = sqlite3_column_int64(s, 2);
    r->spent_usd = sqlite3_column_double(s, 3);
    r->valid_agreement = sqlite3_column_double(s, 4);
    r->valid_back = sqlite3_column_double(s, 5);
    r->test_agreement = sqlite3_column_double(s, 6);
    const unsigned char *stop = sqlite3_column_text(s, 7);
    if (stop) snprintf(r->stop, sizeof r->stop, "%s", (const char *)stop);
  }
  if (!st && rc != SQLITE_DONE) st = us__cache_db_error(c, err, "reading the rounds");
  sqlite3_finalize(s);
  return st;
}
