/* Internals shared by the cache/ files: the handle, the table of prepared statements (each
 * prepared on first use and kept for the life of the handle) and the error helpers. */
#ifndef US_CACHE_CACHE_INT_H
#define US_CACHE_CACHE_INT_H

#include <sqlite3.h>

#include "cache/cache.h"

/* Newest schema this build knows; schema.c holds one migration step per version. */
#define US__CACHE_SCHEMA_VERSION 7
/* PRAGMA application_id of an understudy workspace: "USDY". */
#define US__CACHE_APPLICATION_ID 0x55534459

/* Every statement the cache runs, with its SQL. Columns are listed explicitly so the readers
 * in cache.c, targets.c and runs.c can use fixed column numbers. */
#define US__CACHE_STATEMENTS(X)                                                                 \
  X(PROMPT_INSERT,                                                                              \
    "INSERT INTO prompts(hash, text, gold, source, split, kind, context) "                      \
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(hash) DO NOTHING")                          \
  X(PROMPT_ID, "SELECT id FROM prompts WHERE hash = ?1")                                        \
  X(PROMPTS_LIST,                                                                               \
    "SELECT id, hash, text, gold, source, split, kind, context FROM prompts "                   \
    "WHERE kind = ?2 AND (?1 < 0 OR split = ?1) ORDER BY id")                                   \
  X(PROMPTS_COUNT, "SELECT COUNT(*) FROM prompts WHERE kind = 0 AND (?1 < 0 OR split = ?1)")    \
  X(PROMPTS_PAGE,                                                                               \
    "SELECT id, hash, text, gold, source, split, kind, context FROM prompts "                   \
    "WHERE +kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3")                                        \
  X(CALL_INSERT,                                                                                \
    "INSERT INTO calls(key, http_status, prompt_tokens, completion_tokens, cost_usd, "          \
    "latency_ms, attempts, imported, created_at, request, response) "                           \
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT(key) DO NOTHING")         \
  X(CALL_GET,                                                                                   \
    "SELECT key, http_status, prompt_tokens, completion_tokens, cost_usd, latency_ms, "         \
    "attempts, imported, created_at, request, response FROM calls WHERE key = ?1")              \
  X(CALL_EXISTS, "SELECT 1 FROM calls WHERE key = ?1")                                          \
  X(CALL_KEYS_SINCE, "SELECT rowid, key FROM calls WHERE rowid > ?1 ORDER BY rowid")            \
  X(DATA_VERSION, "PRAGMA data_version")                                                        \
  X(CALLS_EACH,                                                                                 \
    "SELECT key, http_status, prompt_tokens, completion_tokens, cost_usd, latency_ms, "         \
    "attempts, imported, created_at, request, response FROM calls ORDER BY key")                \
  X(FAILURE_INSERT,                                                                             \
    "INSERT INTO failures(key, prompt_id, http_status, message, attempts, created_at) "         \
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)")                                                           \
  X(FAILURES_COUNT,                                                                             \
    "SELECT COUNT(DISTINCT f.key) FROM failures f "                                             \
    "WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.key = f.key)")                             \
  X(STATS_PROMPTS,                                                                              \
    "SELECT COALESCE(SUM(kind = 0), 0), COALESCE(SUM(kind = 0 AND split = 0), 0), "             \
    "COALESCE(SUM(kind = 0 AND split = 1), 0), COALESCE(SUM(kind = 1), 0) FROM prompts")        \
  X(STATS_CALLS,                                                                                \
    "SELECT COUNT(*), COALESCE(SUM(imported), 0), COALESCE(SUM(prompt_tokens), 0), "            \
    "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cost_usd), 0.0) FROM calls")             \
  X(STATS_TARGETS, "SELECT COUNT(*), COALESCE(SUM(status = 1), 0) FROM targets")                \
  X(LATENCY_AT,                                                                                 \
    "SELECT latency_ms FROM calls WHERE imported = 0 ORDER BY latency_ms LIMIT 1 OFFSET ?1")    \
  X(TARGET_UPSERT,                                                                              \
    "INSERT INTO targets(key, prompt_id, status, label, soft, text) "                           \
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(key) DO UPDATE SET "                            \
    "prompt_id = excluded.prompt_id, status = excluded.status, label = excluded.label, "        \
    "soft = excluded.soft, text = excluded.text")                                               \
  X(TARGET_GET, "SELECT key, prompt_id, status, label, soft, text FROM targets WHERE key = ?1") \
  X(RUN_INSERT, "INSERT INTO runs(command, started_at, status) VALUES(?1, ?2, 'running')")      \
  X(RUN_END, "UPDATE runs SET ended_at = ?2, status = ?3 WHERE id = ?1")                        \
  X(CURVE_INSERT, "INSERT INTO curves(run_id, series, x, y) VALUES(?1, ?2, ?3, ?4)")            \
  X(CURVE_GET,                                                                                  \
    "SELECT x, y FROM curves WHERE series = ?1 AND run_id = "                                   \
    "(SELECT MAX(run_id) FROM curves WHERE series = ?1) ORDER BY x, rowid")                     \
  X(RESULT_UPSERT,                                                                              \
    "INSERT INTO results(name, json, updated_at) VALUES(?1, ?2, ?3) "                           \
    "ON CONFLICT(name) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at")   \
  X(RESULT_GET, "SELECT json FROM results WHERE name = ?1")                                     \
  X(SERVED_INSERT,                                                                              \
    "INSERT INTO served(created_at, route, task, http_status, confidence, threshold, "          \
    "latency_ms, prompt_tokens, completion_tokens, cost_usd, saved_usd, agree, prompt, "        \
    "answer) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)")              \
  X(SERVED_ROUTES,                                                                              \
    "SELECT route, COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(saved_usd), 0), "         \
    "COALESCE(SUM(agree), 0), MIN(created_at), MAX(created_at) FROM served GROUP BY route")     \
  X(SERVED_AUDITS, "SELECT created_at, agree FROM served WHERE route = 'audit' ORDER BY id")    \
  X(CALL_KINDS,                                                                                 \
    "UPDATE calls SET cached_tokens = ?2, reasoning_tokens = ?3, cost_input_usd = ?4, "         \
    "cost_cached_usd = ?5, cost_output_usd = ?6, cost_reasoning_usd = ?7 WHERE key = ?1")       \
  X(SPEND_CALLS,                                                                                \
    "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(cached_tokens), 0), "                 \
    "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(reasoning_tokens), 0), "                 \
    "COALESCE(SUM(cost_input_usd), 0.0), COALESCE(SUM(cost_cached_usd), 0.0), "                 \
    "COALESCE(SUM(cost_output_usd), 0.0), COALESCE(SUM(cost_reasoning_usd), 0.0), "             \
    "COALESCE(SUM(CASE WHEN cost_input_usd IS NULL THEN cost_usd ELSE 0 END), 0.0), "           \
    "COALESCE(SUM(cost_usd), 0.0) FROM calls")                                                  \
  X(UNANSWERED_INSERT,                                                                          \
    "INSERT INTO unanswered(key, prompt_id, worst_usd, created_at, reason) "                    \
    "VALUES(?1, ?2, ?3, ?4, ?5)")                                                               \
  X(UNANSWERED_SUM, "SELECT COUNT(*), COALESCE(SUM(worst_usd), 0.0) FROM unanswered")           \
  X(PROMPT_SET_SPLIT, "UPDATE prompts SET split = ?2 WHERE id = ?1")                            \
  X(BATCH_INSERT,                                                                               \
    "INSERT INTO batches(id, input_file_id, status, n_requests, created_at, updated_at) "       \
    "VALUES(?1, ?2, ?3, ?4, ?5, ?5)")                                                           \
  X(BATCH_REQUEST_INSERT, "INSERT OR IGNORE INTO batch_requests(batch_id, key) VALUES(?1, ?2)") \
  X(BATCHES_OPEN,                                                                               \
    "SELECT id, input_file_id, status, n_requests, created_at FROM batches "                    \
    "WHERE collected = 0 ORDER BY created_at, id")                                              \
  X(BATCH_KEYS, "SELECT key FROM batch_requests WHERE batch_id = ?1 ORDER BY key")              \
  X(BATCH_ROW_INSERT,                                                                           \
    "INSERT OR IGNORE INTO batch_requests(batch_id, key, prompt_id, attempts, request) "        \
    "VALUES(?1, ?2, ?3, ?4, ?5)")                                                               \
  X(BATCH_GROW, "UPDATE batches SET n_requests = n_requests + ?2 WHERE id = ?1")                \
  X(BATCH_ROW_GET,                                                                              \
    "SELECT prompt_id, attempts, request FROM batch_requests WHERE batch_id = ?1 AND key = ?2") \
  X(BATCH_KEY_OPEN,                                                                             \
    "SELECT 1 FROM batch_requests r JOIN batches b ON b.id = r.batch_id "                       \
    "WHERE r.key = ?1 AND b.collected = 0 LIMIT 1")                                             \
  X(BATCH_UPLOADED,                                                                             \
    "UPDATE batches SET id = ?2, input_file_id = ?3, status = 'creating', updated_at = ?4 "     \
    "WHERE id = ?1")                                                                            \
  X(BATCH_STATUS,                                                                               \
    "UPDATE batches SET status = ?2, completed = ?3, failed = ?4, updated_at = ?5 "             \
    "WHERE id = ?1")                                                                            \
  X(BATCH_COLLECTED,                                                                            \
    "UPDATE batches SET collected = 1, status = ?2, answered = ?3, spent_usd = ?4, "            \
    "live_usd = ?5, updated_at = ?6 WHERE id = ?1")                                             \
  X(BATCH_RENAME, "UPDATE batches SET id = ?2, status = ?3, updated_at = ?4 WHERE id = ?1")     \
  X(BATCH_DELETE, "DELETE FROM batches WHERE id = ?1")                                          \
  X(BATCH_TOTALS,                                                                               \
    "SELECT COUNT(*), COALESCE(SUM(collected = 0), 0), COALESCE(SUM(n_requests), 0), "          \
    "COALESCE(SUM(answered), 0), COALESCE(SUM(spent_usd), 0.0), "                               \
    "COALESCE(SUM(live_usd), 0.0) "                                                             \
    "FROM batches")                                                                             \
  X(BEGIN, "BEGIN IMMEDIATE")                                                                   \
  X(COMMIT, "COMMIT")                                                                           \
  X(ROLLBACK, "ROLLBACK")

typedef enum {
#define US__CACHE_STMT_ENUM(name, sql) US__STMT_##name,
  US__CACHE_STATEMENTS(US__CACHE_STMT_ENUM)
#undef US__CACHE_STMT_ENUM
      US__STMT_COUNT
} us__cache_stmt_id;

struct us_cache {
  sqlite3 *db;
  char *path;
  int version; /* PRAGMA user_version after migration */
  sqlite3_stmt *stmt[US__STMT_COUNT];
};

/* The prepared statement for id, reset and with its bindings cleared; NULL on failure (err
 * set). Callers reset it again when done (us__cache_done) so no read transaction lingers. */
sqlite3_stmt *us__cache_stmt(us_cache *c, us__cache_stmt_id id, us_err *err);
void us__cache_done(sqlite3_stmt *s);
/* US_ERR_DB with "workspace <path>: <what>: <sqlite message>". */
us_status us__cache_db_error(us_cache *c, us_err *err, const char *what);
/* Runs one statement that returns no rows (or ignores them): step to the end, then reset. */
us_status us__cache_step_done(us_cache *c, sqlite3_stmt *s, us_err *err, const char *what);
/* Ends the transaction us_cache_begin opened: commits when st is US_OK, else rolls back and
 * returns st unchanged. */
us_status us__cache_end(us_cache *c, us_status st, us_err *err);
/* Reads one result row of s into row (zeroed); returns non-zero when out of memory. */
typedef int (*us__cache_row_fn)(sqlite3_stmt *s, void *row);
/* The one row-listing loop: steps s (bound, from us__cache_stmt) to its end, reading each row
 * with read_row into an array of row_size-byte rows grown as needed (first_cap rows at first),
 * then resets s. *rows (caller frees, with whatever each row holds) and *n are set even on
 * failure, a row whose read failed included. US_ERR_NOMEM (err untouched: the caller names
 * what it was listing) or US_ERR_DB ("workspace <path>: <what>: <sqlite message>"). */
us_status us__cache_read_rows(us_cache *c, sqlite3_stmt *s, size_t row_size, size_t first_cap,
                              us__cache_row_fn read_row, void **rows, size_t *n, const char *what,
                              us_err *err);
/* Copy of a text column (NULL for SQL NULL); *oom set when allocation fails. */
char *us__cache_column_text(sqlite3_stmt *s, int col, int *oom);
/* Binds text, or NULL when s is NULL. */
int us__cache_bind_text(sqlite3_stmt *s, int idx, const char *text);
/* Checks the file is a workspace (or empty), sets the connection up (WAL, synchronous=FULL,
 * foreign keys) and brings its schema to US__CACHE_SCHEMA_VERSION. */
us_status us__cache_migrate(us_cache *c, us_err *err);
/* For read-only connections: refuses a file that is not a workspace at the current schema. */
us_status us__cache_check_current(us_cache *c, us_err *err);

#endif
