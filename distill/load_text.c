/* Line-based prompt loaders (JSONL and plain text), the line reader the CSV loader shares, and
 * the UTF-8 check every line goes through. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/utf8.h"
#include "distill/prompts_int.h"

us_status us__line_checked(const us_prompts_params *d, const char *shown, long line_number,
                           char **line, size_t *len, us_buf *scratch, bool *repaired, us_err *err) {
  *repaired = false;
  size_t bad = us_utf8_invalid_at(*line, *len);
  if (bad == *len) return US_OK;
  if (!d->repair_utf8)
    return us_err_set(err, US_ERR_INPUT,
                      "%s:%ld: invalid UTF-8 at column %zu (byte 0x%02x); convert the file to "
                      "UTF-8, or set data.repair_utf8 to replace bad bytes with U+FFFD",
                      shown, line_number, bad + 1, (unsigned char)(*line)[bad]);
  us_buf_reset(scratch);
  if (us_utf8_repair(*line, *len, scratch))
    return us_err_set(err, US_ERR_NOMEM, "%s:%ld: out of memory", shown, line_number);
  *line = scratch->data;
  *len = scratch->len;
  *repaired = true;
  return US_OK;
}

/* ---- line reader ---------------------------------------------------------------------------- */

us_status us__lines_open(us__line_reader *r, const char *path, const char *shown, us_err *err) {
  memset(r, 0, sizeof *r);
  /* Opened for reading only; prompts are never written back to their source. */
  FILE *f = fopen(path, "rb");
  if (!f) return us_err_set(err, US_ERR_IO, "cannot open %s: %s", shown, strerror(errno));
  r->file = f;
  return US_OK;
}

int us__lines_next(us__line_reader *r, const char *shown, char **line, size_t *len, us_err *err) {
  errno = 0;
  ssize_t n = getline(&r->line, &r->cap, (FILE *)r->file);
  if (n < 0) {
    if (ferror((FILE *)r->file)) {
      us_err_set(err, US_ERR_IO, "cannot read %s after line %ld: %s", shown, r->number,
                 strerror(errno ? errno : EIO));
      return -1;
    }
    return 0;
  }
  r->number++;
  char *s = r->line;
  size_t l = (size_t)n;
  if (r->number == 1 && l >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
    s += 3;
    l -= 3;
  }
  if (l && s[l - 1] == '\n') l--;
  if (l && s[l - 1] == '\r') l--;
  s[l] = '\0';
  *line = s;
  *len = l;
  return 1;
}

void us__lines_close(us__line_reader *r) {
  if (r->file) fclose((FILE *)r->file);
  free(r->line);
  memset(r, 0, sizeof *r);
}

static bool is_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return false;
  return true;
}

/* ---- line-oriented loaders ------------------------------------------------------------------ */

/* What one non-blank, UTF-8-checked line becomes; where is "file:line". */
typedef us_status (*line_fn)(us__prompt_sink *sink, const char *line, size_t len, long number,
                             const char *where, us_err *err);

/* Reads path line by line, skipping blank lines, checking (or repairing) UTF-8, and hands each
 * line to fn: the loop shared by the text and JSONL loaders. */
static us_status each_line(us__prompt_sink *sink, const char *path, line_fn fn, us_err *err) {
  us__line_reader r;
  us_status st = us__lines_open(&r, path, sink->source, err);
  if (st) return st;
  us_buf scratch, where;
  us_buf_init(&scratch, 0);
  us_buf_init(&where, 0);
  char *line;
  size_t len;
  int got;
  while ((got = us__lines_next(&r, sink->source, &line, &len, err)) > 0) {
    if (is_blank(line, len)) continue;
    bool repaired;
    st =
        us__line_checked(sink->data, sink->source, r.number, &line, &len, &scratch, &repaired, err);
    if (st) goto fail;
    if (repaired) sink->stats->repaired++;
    us_buf_reset(&where);
    if (us_buf_printf(&where, "%s:%ld", sink->source, r.number)) {
      st = us_err_set(err, US_ERR_NOMEM, "%s:%ld: out of memory", sink->source, r.number);
      goto fail;
    }
    st = fn(sink, line, len, r.number, where.data, err);
    if (st) goto fail;
  }
  if (got < 0) st = err ? err->code : US_ERR_IO;
fail:
  us_buf_free(&scratch);
  us_buf_free(&where);
  us__lines_close(&r);
  return st;
}

/* ---- plain text: one prompt per line -------------------------------------------------------- */

static us_status text_record(us__prompt_sink *sink, const char *line, size_t len, long number,
                             const char *where, us_err *err) {
  (void)number;
  return us__prompt_emit(sink, line, len, NULL, where, err);
}

us_status us__load_text(us__prompt_sink *sink, const char *path, us_err *err) {
  return each_line(sink, path, text_record, err);
}

/* ---- JSONL ---------------------------------------------------------------------------------- */

static const char *json_type_name(const cJSON *v) {
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsNull(v)) return "null";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsObject(v)) return "an object";
  return "an invalid value";
}

/* The gold field as text: a string as is, a number printed, an array or object as compact JSON
 * (a generate task's reference may be structured); null or absent gives NULL. Caller frees. */
static char *gold_text(const cJSON *v) {
  if (!v || cJSON_IsNull(v)) return NULL;
  if (cJSON_IsString(v)) return us_strdup(v->valuestring);
  if (cJSON_IsBool(v)) return us_strdup(cJSON_IsTrue(v) ? "true" : "false");
  if (cJSON_IsNumber(v)) {
    char tmp[64];
    double d = v->valuedouble;
    if (d == (double)(long long)d && d > -1e15 && d < 1e15)
      snprintf(tmp, sizeof tmp, "%lld", (long long)d);
    else
      snprintf(tmp, sizeof tmp, "%.17g", d);
    return us_strdup(tmp);
  }
  return cJSON_PrintUnformatted(v);
}

/* Parses one JSONL record and emits it. */
static us_status jsonl_record(us__prompt_sink *sink, const char *line, size_t len, long number,
                              const char *where, us_err *err) {
  const us_prompts_params *d = sink->data;
  const char *text_field = d->text_field ? d->text_field : US_PROMPTS_DEFAULT_TEXT_FIELD;
  const char *label_field = d->label_field ? d->label_field : "label";
  /* cJSON decodes \u0000 to a NUL byte, which would cut the string short: refused like a raw
   * NUL byte (us__line_checked) */
  size_t nul = us_json_nul_escape_at(line, len);
  if (nul < len)
    return us_err_set(err, US_ERR_INPUT,
                      "%s:%ld: a \\u0000 escape (a NUL character) at column %zu; a prompt cannot "
                      "hold a NUL character, remove it",
                      sink->source, number, nul + 1);
  const char *end = NULL;
  cJSON *obj = cJSON_ParseWithLengthOpts(line, len, &end, false);
  us_status st = US_OK;
  char *gold = NULL;
  if (!obj) {
    size_t column = end && end >= line ? (size_t)(end - line) + 1 : 1;
    st = us_err_set(err, US_ERR_INPUT, "%s:%ld: not valid JSON (near column %zu)", sink->source,
                    number, column);
    goto fail;
  }
  if (!cJSON_IsObject(obj)) {
    st = us_err_set(err, US_ERR_INPUT, "%s:%ld: expected a JSON object per line, found %s",
                    sink->source, number, json_type_name(obj));
    goto fail;
  }
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, text_field);
  if (!text) {
    st = us_err_set(err, US_ERR_INPUT,
                    "%s:%ld: no \"%s\" field (data.text_field names the field holding the "
                    "prompt text)",
                    sink->source, number, text_field);
    goto fail;
  }
  if (!cJSON_IsString(text)) {
    st = us_err_set(err, US_ERR_INPUT, "%s:%ld: field \"%s\" should be a string, found %s",
                    sink->source, number, text_field, json_type_name(text));
    goto fail;
  }
  gold = gold_text(cJSON_GetObjectItemCaseSensitive(obj, label_field));
  st = us__prompt_emit(sink, text->valuestring, strlen(text->valuestring), gold, where, err);
fail:
  free(gold);
  cJSON_Delete(obj);
  return st;
}

us_status us__load_jsonl(us__prompt_sink *sink, const char *path, us_err *err) {
  return each_line(sink, path, jsonl_record, err);
}
