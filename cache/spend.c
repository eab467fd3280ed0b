/* Spend by kind (cached input, reasoning), the requests that may have been billed without an
 * answer, and moving a prompt between splits (cache/cache.h). Kept apart from cache.c so the call
 * table's main paths stay as they were: the kinds are written by a second statement in the same
 * transaction. */
#include <stdio.h>
#include <string.h>

#include "cache/cache_int.h"
#include "core/clock.h"

us_status us_cache_call_kinds_put(us_cache *c, const char *key, const us_call_kinds *k,
                                  us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_CALL_KINDS, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 2, k->cached_tokens);
  sqlite3_bind_int(s, 3, k->reasoning_tokens);
  sqlite3_bind_double(s, 4, k->input_usd);
  sqlite3_bind_double(s, 5, k->cached_usd);
  sqlite3_bind_double(s, 6, k->output_usd);
  sqlite3_bind_double(s, 7, k->reasoning_usd);
  return us__cache_step_done(c, s, err, "storing a call's tokens by kind");
}

us_status us_cache_unanswered_put(us_cache *c, const char *key, int64_t prompt_id, double worst_usd,
                                  const char *reason, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_UNANSWERED_INSERT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, prompt_id);
  sqlite3_bind_double(s, 3, worst_usd);
  sqlite3_bind_double(s, 4, us_epoch());
  us__cache_bind_text(s, 5, reason);
  return us__cache_step_done(c, s, err, "recording a request that may have been billed");
}

us_status us_cache_spend_get(us_cache *c, us_cache_spend *out, us_err *err) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_SPEND_CALLS, err);
  if (!s) return US_ERR_DB;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    out->prompt_tokens = sqlite3_column_int64(s, 0);
    out->cached_tokens = sqlite3_column_int64(s, 1);
    out->completion_tokens = sqlite3_column_int64(s, 2);
    out->reasoning_tokens = sqlite3_column_int64(s, 3);
    out->input_usd = sqlite3_column_double(s, 4);
    out->cached_usd = sqlite3_column_double(s, 5);
    out->output_usd = sqlite3_column_double(s, 6);
    out->reasoning_usd = sqlite3_column_double(s, 7);
    out->unsplit_usd = sqlite3_column_double(s, 8);
    out->total_usd = sqlite3_column_double(s, 9);
  }
  us_status st = rc == SQLITE_ROW ? US_OK : us__cache_db_error(c, err, "reading spend by kind");
  us__cache_done(s);
  if (st) return st;
  s = us__cache_stmt(c, US__STMT_UNANSWERED_SUM, err);
  if (!s) return US_ERR_DB;
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    out->unanswered = sqlite3_column_int64(s, 0);
    out->unanswered_usd = sqlite3_column_double(s, 1);
  }
  st = rc == SQLITE_ROW ? US_OK : us__cache_db_error(c, err, "reading unanswered requests");
  us__cache_done(s);
  return st;
}

us_status us_cache_prompt_set_split(us_cache *c, int64_t id, int split, us_err *err) {
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_PROMPT_SET_SPLIT, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_int64(s, 1, id);
  sqlite3_bind_int(s, 2, split);
  return us__cache_step_done(c, s, err, "moving a prompt to another split");
}
