/* Workspace schema and its migrations: one step per PRAGMA user_version, applied in order, each
 * in its own transaction. To change the schema, append a step; never edit a released one. */
#include <stdio.h>
#include <string.h>

#include "cache/cache_int.h"

/* Version 1. Small fixed-size columns come before the large text ones so that aggregate
 * queries (stats, spend) do not have to walk the overflow pages of requests and responses. */
static const char schema_v1[] =
    "CREATE TABLE prompts("
    "  id INTEGER PRIMARY KEY,"
    "  hash TEXT NOT NULL UNIQUE," /* SHA-256 hex of the normalised text */
    "  split INTEGER NOT NULL CHECK (split IN (0, 1)),"
    "  source TEXT,"
    "  gold TEXT,"
    "  text TEXT NOT NULL);"
    "CREATE INDEX prompts_by_split ON prompts(split, id);"
    "CREATE TABLE calls("
    "  key TEXT PRIMARY KEY NOT NULL," /* SHA-256 hex of the canonical request */
    "  http_status INTEGER NOT NULL,"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  cost_usd REAL NOT NULL DEFAULT 0,"
    "  latency_ms REAL NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 1,"
    "  imported INTEGER NOT NULL DEFAULT 0 CHECK (imported IN (0, 1)),"
    "  created_at REAL NOT NULL," /* epoch seconds */
    "  request TEXT NOT NULL,"
    "  response TEXT NOT NULL);"
    "CREATE INDEX calls_by_latency ON calls(imported, latency_ms);"
    "CREATE TABLE failures("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL,"
    "  prompt_id INTEGER,"
    "  http_status INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  message TEXT);"
    "CREATE INDEX failures_by_key ON failures(key);"
    "CREATE TABLE targets("
    "  key TEXT PRIMARY KEY NOT NULL REFERENCES calls(key) ON DELETE CASCADE,"
    "  prompt_id INTEGER NOT NULL,"
    "  status INTEGER NOT NULL CHECK (status IN (0, 1)),"
    "  label TEXT,"
    "  soft BLOB," /* float32 little-endian, one per task label */
    "  text TEXT);"
    "CREATE INDEX targets_by_prompt ON targets(prompt_id);"
    "CREATE TABLE runs("
    "  id INTEGER PRIMARY KEY,"
    "  command TEXT NOT NULL,"
    "  started_at REAL NOT NULL,"
    "  ended_at REAL,"
    "  status TEXT NOT NULL);"
    "CREATE TABLE curves("
    "  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    "  series TEXT NOT NULL,"
    "  x REAL NOT NULL,"
    "  y REAL NOT NULL);"
    "CREATE INDEX curves_by_series ON curves(series, run_id);"
    "CREATE TABLE results("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  updated_at REAL NOT NULL,"
    "  json TEXT NOT NULL);";

/* Version 2: self-instruct from documents. A prompt row is either a prompt the student learns
 * from (kind 0) or a document chunk the teacher writes questions about (kind 1, never listed as
 * a prompt). A question written from a chunk is a kind 0 row whose context is that chunk, so its
 * request can carry the chunk while the student sees the question alone. */
static const char schema_v2[] =
    "ALTER TABLE prompts ADD COLUMN kind INTEGER NOT NULL DEFAULT 0 CHECK (kind IN (0, 1));"
    "ALTER TABLE prompts ADD COLUMN context TEXT;"
    "DROP INDEX prompts_by_split;"
    "CREATE INDEX prompts_by_kind_split ON prompts(kind, split, id);";

/* Version 3: `understudy serve`. One row per request served (route student, teacher or cache;
 * error for a request answered with an error) and one per shadow audit (route audit, agree set).
 * prompt and answer are kept only with serve.log_prompts. */
static const char schema_v3[] =
    "CREATE TABLE served ("
    "  id INTEGER PRIMARY KEY,"
    "  created_at REAL NOT NULL,"
    "  route TEXT NOT NULL,"
    "  task INTEGER NOT NULL DEFAULT 0,"
    "  http_status INTEGER NOT NULL DEFAULT 200,"
    "  confidence REAL,"
    "  threshold REAL,"
    "  latency_ms REAL NOT NULL DEFAULT 0,"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  cost_usd REAL NOT NULL DEFAULT 0,"
    "  saved_usd REAL NOT NULL DEFAULT 0,"
    "  agree INTEGER,"
    "  prompt TEXT,"
    "  answer TEXT"
    ");"
    "CREATE INDEX served_route ON served(route, created_at);";
/* Version 4: active labelling (label.strategy "active"). The train prompts each round picked for
 * the teacher (committed before any is sent, so a rerun labels the same ones), and what each
 * round measured. */
static const char schema_v4[] =
    "CREATE TABLE active_picks("
    "  prompt_id INTEGER PRIMARY KEY REFERENCES prompts(id) ON DELETE CASCADE,"
    "  round INTEGER NOT NULL,"
    "  created_at REAL NOT NULL);"
    "CREATE INDEX active_picks_by_round ON active_picks(round, prompt_id);"
    "CREATE TABLE active_rounds("
    "  round INTEGER PRIMARY KEY,"
    "  n_labelled INTEGER NOT NULL,"
    "  n_valid INTEGER NOT NULL,"
    "  spent_usd REAL NOT NULL,"
    "  valid_agreement REAL NOT NULL,"
    "  valid_back REAL NOT NULL,"
    "  test_agreement REAL NOT NULL,"
    "  stop TEXT NOT NULL DEFAULT '',"
    "  created_at REAL NOT NULL);";
/* Version 5: the Batch API. A batch's id is committed the moment the API returns it, with the
 * request keys it carries, so a process killed while it runs resumes polling it instead of
 * paying for the requests again. Just before the batch is created, its row is written as
 * "pending:<input file id>" and renamed to the batch's id once it exists: a process killed in
 * between finds the batch by its input file. collected: its output and error files were read and
 * every answer committed (answered of them; spent_usd what they cost, live_usd what they would have
 * cost live). */
static const char schema_v5[] =
    "CREATE TABLE batches("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  input_file_id TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  n_requests INTEGER NOT NULL,"
    "  completed INTEGER NOT NULL DEFAULT 0,"
    "  failed INTEGER NOT NULL DEFAULT 0,"
    "  collected INTEGER NOT NULL DEFAULT 0 CHECK (collected IN (0, 1)),"
    "  answered INTEGER NOT NULL DEFAULT 0,"
    "  spent_usd REAL NOT NULL DEFAULT 0,"
    "  live_usd REAL NOT NULL DEFAULT 0,"
    "  created_at REAL NOT NULL,"
    "  updated_at REAL NOT NULL);"
    "CREATE TABLE batch_requests("
    "  batch_id TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE ON UPDATE CASCADE,"
    "  key TEXT NOT NULL,"
    "  PRIMARY KEY (batch_id, key));"
    "CREATE INDEX batch_requests_by_key ON batch_requests(key);";
/* Version 6: prices that match the invoice, and a budget that holds when requests time out.
 * Each call keeps its tokens and cost by kind (cached input, reasoning); NULL costs mark calls
 * stored before the split, whose cost stays whole. `unanswered` holds every request that may
 * have been billed without an answer (timed out, reset after its body was sent), at its
 * worst-case cost, which counts against teacher.budget_usd. */
static const char schema_v6[] =
    "ALTER TABLE calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE calls ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE calls ADD COLUMN cost_input_usd REAL;"
    "ALTER TABLE calls ADD COLUMN cost_cached_usd REAL;"
    "ALTER TABLE calls ADD COLUMN cost_output_usd REAL;"
    "ALTER TABLE calls ADD COLUMN cost_reasoning_usd REAL;"
    "CREATE TABLE unanswered("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL,"
    "  prompt_id INTEGER,"
    "  worst_usd REAL NOT NULL,"
    "  created_at REAL NOT NULL,"
    "  reason TEXT);";

/* Version 7: a batch's requests in full. Each row keeps the prompt it answers, the attempt it
 * is and the canonical request, so the answers of a batch are committed from its output file
 * alone (streamed line by line) without holding any request in memory while the batch runs.
 * Rows of batches recorded before this version have them NULL. A batch row whose id starts
 * with "draft:" is being filled and was never uploaded: a run that finds one deletes it. */
static const char schema_v7[] =
    "ALTER TABLE batch_requests ADD COLUMN prompt_id INTEGER;"
    "ALTER TABLE batch_requests ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE batch_requests ADD COLUMN request TEXT;";

typedef struct migration_step {
  int version; /* user_version once the step is applied */
  const char *sql;
} migration_step;

static const migration_step migration_steps[] = {
    {1, schema_v1}, {2, schema_v2}, {3, schema_v3}, {4, schema_v4},
    {5, schema_v5}, {6, schema_v6}, {7, schema_v7},
};

static us_status pragma_int(us_cache *c, const char *pragma, int *out, us_err *err) {
  sqlite3_stmt *s = NULL;
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA %s", pragma);
  if (sqlite3_prepare_v2(c->db, sql, -1, &s, NULL) != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
    us_status st = us__cache_db_error(c, err, pragma);
    sqlite3_finalize(s);
    return st;
  }
  *out = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return US_OK;
}

static us_status count_objects(us_cache *c, int *n, us_err *err) {
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(c->db, "SELECT COUNT(*) FROM sqlite_schema", -1, &s, NULL) != SQLITE_OK ||
      sqlite3_step(s) != SQLITE_ROW) {
    us_status st = us__cache_db_error(c, err, "reading the schema");
    sqlite3_finalize(s);
    return st;
  }
  *n = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return US_OK;
}

static us_status exec(us_cache *c, const char *sql, const char *what, us_err *err) {
  char *msg = NULL;
  if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) == SQLITE_OK) return US_OK;
  us_err_set(err, US_ERR_DB, "workspace %s: %s: %s", c->path, what,
             msg ? msg : sqlite3_errmsg(c->db));
  sqlite3_free(msg);
  return US_ERR_DB;
}

/* Refuses files that are not understudy workspaces before anything is written to them. */
static us_status check_identity(us_cache *c, int *version, us_err *err) {
  int app_id = 0, objects = 0;
  us_status st = pragma_int(c, "application_id", &app_id, err);
  if (st && sqlite3_errcode(c->db) == SQLITE_NOTADB)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s is not a SQLite database, so not an understudy workspace; move it "
                      "away or point the config's \"output\" at another folder",
                      c->path);
  if (st == US_OK) st = pragma_int(c, "user_version", version, err);
  if (st == US_OK && app_id == 0) st = count_objects(c, &objects, err);
  if (st) return st;
  if (app_id != US__CACHE_APPLICATION_ID && (app_id != 0 || objects > 0))
    return us_err_set(err, US_ERR_FORMAT,
                      "%s is a SQLite database but not an understudy workspace; move it away "
                      "or point the config's \"output\" at another folder",
                      c->path);
  if (*version > US__CACHE_SCHEMA_VERSION)
    return us_err_set(err, US_ERR_FORMAT,
                      "workspace %s has schema version %d but this build of understudy knows "
                      "versions up to %d; upgrade understudy, or point the config's \"output\" "
                      "at another folder",
                      c->path, *version, US__CACHE_SCHEMA_VERSION);
  return US_OK;
}

/* Applies one step; re-reads user_version under the write lock, since another process may
 * have migrated the file while this one waited. */
static us_status apply_step(us_cache *c, const migration_step *step, us_err *err) {
  us_status st = exec(c, "BEGIN IMMEDIATE", "starting a migration", err);
  if (st) return st;
  int version = 0;
  st = pragma_int(c, "user_version", &version, err);
  if (st == US_OK && version < step->version) {
    char what[64], sql[128];
    snprintf(what, sizeof what, "migrating to schema version %d", step->version);
    st = exec(c, step->sql, what, err);
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d",
             US__CACHE_APPLICATION_ID, step->version);
    if (st == US_OK) st = exec(c, sql, what, err);
  }
  if (st == US_OK) st = exec(c, "COMMIT", "committing a migration", err);
  if (st) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  return st;
}

us_status us__cache_migrate(us_cache *c, us_err *err) {
  int version = 0;
  us_status st = check_identity(c, &version, err);
  if (st) return st;
  /* WAL: readers never block the writer. synchronous=FULL: a call is on disk when its commit
   * returns, so neither a killed process nor a power cut loses a paid answer. */
  st = exec(c, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON",
            "setting up the connection", err);
  if (st) return st;
  size_t n_steps = sizeof migration_steps / sizeof migration_steps[0];
  for (size_t i = 0; i < n_steps; i++) {
    if (migration_steps[i].version <= version) continue;
    st = apply_step(c, &migration_steps[i], err);
    if (st) return st;
    version = migration_steps[i].version;
  }
  c->version = version;
  return US_OK;
}

us_status us__cache_check_current(us_cache *c, us_err *err) {
  int version = 0;
  us_status st = check_identity(c, &version, err);
  if (st) return st;
  if (version != US__CACHE_SCHEMA_VERSION)
    return us_err_set(err, US_ERR_STATE,
                      "workspace %s has schema version %d, not this build's %d, and a read-only "
                      "reader cannot migrate it; open it once read-write first (any understudy "
                      "command without mpirun, e.g. `understudy cache stats CONFIG`)",
                      c->path, version, US__CACHE_SCHEMA_VERSION);
  c->version = version;
  return exec(c, "PRAGMA foreign_keys = ON", "setting up the connection", err);
}
