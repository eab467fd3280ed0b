/* Targets: what each teacher answer means for training (mapped label, raw text, soft
 * distribution). The soft distribution is stored as a BLOB of float32 in little-endian order,
 * 4 bytes per label, so a workspace reads the same on any machine. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_int.h"

static void float_to_le(float f, unsigned char out[4]) {
  uint32_t u;
  memcpy(&u, &f, 4);
  for (int i = 0; i < 4; i++) out[i] = (unsigned char)(u >> (8 * i));
}

static float float_from_le(const unsigned char in[4]) {
  uint32_t u = 0;
  for (int i = 0; i < 4; i++) u |= (uint32_t)in[i] << (8 * i);
  float f;
  memcpy(&f, &u, 4);
  return f;
}

us_status us_cache_target_put(us_cache *c, const us_target *t, us_err *err) {
  if (t->status != US_TARGET_OK && t->status != US_TARGET_UNPARSED)
    return us_err_set(err, US_ERR_INPUT, "workspace %s: target %s has unknown status %d", c->path,
                      t->key, t->status);
  if (t->n_soft < 0 || (t->n_soft > 0 && !t->soft))
    return us_err_set(err, US_ERR_INPUT,
                      "workspace %s: target %s has %d soft values but none given", c->path, t->key,
                      t->n_soft);
  unsigned char *blob = NULL;
  if (t->n_soft > 0) {
    blob = malloc((size_t)t->n_soft * 4);
    if (!blob) return us_err_set(err, US_ERR_NOMEM, "out of memory storing target %s", t->key);
    for (int i = 0; i < t->n_soft; i++) float_to_le(t->soft[i], blob + 4 * i);
  }
  us_status st = US_ERR_DB;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_TARGET_UPSERT, err);
  if (s) {
    sqlite3_bind_text(s, 1, t->key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, t->prompt_id);
    sqlite3_bind_int(s, 3, t->status);
    us__cache_bind_text(s, 4, t->label);
    if (blob)
      sqlite3_bind_blob(s, 5, blob, t->n_soft * 4, SQLITE_STATIC);
    else
      sqlite3_bind_null(s, 5);
    us__cache_bind_text(s, 6, t->text);
    st = us__cache_step_done(c, s, err, "storing a target (is its call stored?)");
  }
  free(blob);
  return st;
}

void us_target_free_fields(us_target *t) {
  if (!t) return;
  free(t->label);
  free(t->text);
  free(t->soft);
  t->label = t->text = NULL;
  t->soft = NULL;
  t->n_soft = 0;
}

/* Reads one TARGET_GET row into out; returns non-zero when out of memory. */
static int read_target(sqlite3_stmt *s, us_target *out) {
  int oom = 0;
  const unsigned char *key = sqlite3_column_text(s, 0);
  snprintf(out->key, sizeof out->key, "%s", key ? (const char *)key : "");
  out->prompt_id = sqlite3_column_int64(s, 1);
  out->status = sqlite3_column_int(s, 2);
  out->label = us__cache_column_text(s, 3, &oom);
  const unsigned char *blob = sqlite3_column_blob(s, 4);
  int bytes = sqlite3_column_bytes(s, 4);
  if (blob && bytes >= 4) {
    out->n_soft = bytes / 4;
    out->soft = malloc((size_t)out->n_soft * sizeof(float));
    if (!out->soft) {
      out->n_soft = 0;
      oom = 1;
    } else {
      for (int i = 0; i < out->n_soft; i++) out->soft[i] = float_from_le(blob + 4 * i);
    }
  }
  out->text = us__cache_column_text(s, 5, &oom);
  return oom;
}

us_status us_cache_target_get(us_cache *c, const char *key, us_target *out, bool *found,
                              us_err *err) {
  memset(out, 0, sizeof *out);
  *found = false;
  sqlite3_stmt *s = us__cache_stmt(c, US__STMT_TARGET_GET, err);
  if (!s) return US_ERR_DB;
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  us_status st = US_OK;
  if (rc == SQLITE_ROW) {
    if (read_target(s, out)) {
      us_target_free_fields(out);
      st = us_err_set(err, US_ERR_NOMEM, "out of memory reading target %s from %s", key, c->path);
    } else {
      *found = true;
    }
  } else if (rc != SQLITE_DONE) {
    st = us__cache_db_error(c, err, "reading a target");
  }
  us__cache_done(s);
  return st;
}
