/* Chat-format JSONL export and import of teacher calls: the fine-tuning format hosted and GPU
 * trainers read, and the way logged production calls seed the cache at no cost. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache_int.h"
#include "core/clock.h"

/* ---- export --------------------------------------------------------------------------------- */

typedef struct export_state {
  FILE *f;
  const char *path;
  int64_t written;
  us_status st;
  us_err *err;
} export_state;

/* choices[0].message.content of a Chat Completions response, or NULL. */
static const cJSON *first_choice_content(const cJSON *response) {
  const cJSON *choices = cJSON_GetObjectItemCaseSensitive(response, "choices");
  const cJSON *message =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices, 0), "message");
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(message, "content");
  return cJSON_IsString(content) ? content : NULL;
}

/* The export line for one call, or NULL when the call has no messages or no answer text
 * (nothing a trainer could learn from). Caller frees. */
static char *export_line(const us_call *call) {
  char *line = NULL;
  cJSON *request = cJSON_Parse(call->request);
  cJSON *response = cJSON_Parse(call->response);
  cJSON *messages = cJSON_DetachItemFromObjectCaseSensitive(request, "messages");
  const cJSON *content = first_choice_content(response);
  if (cJSON_IsArray(messages) && content) {
    cJSON *answer = cJSON_CreateObject();
    cJSON_AddStringToObject(answer, "role", "assistant");
    cJSON_AddStringToObject(answer, "content", content->valuestring);
    cJSON_AddItemToArray(messages, answer);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "messages", messages);
    messages = NULL;
    line = cJSON_PrintUnformatted(out);
    cJSON_Delete(out);
  }
  cJSON_Delete(messages);
  cJSON_Delete(request);
  cJSON_Delete(response);
  return line;
}

static int export_one(void *user, const us_call *call) {
  export_state *x = user;
  char *line = export_line(call);
  if (!line) return 0;
  if (fputs(line, x->f) == EOF || fputc('\n', x->f) == EOF) {
    x->st = us_err_set(x->err, US_ERR_IO, "cannot write %s: %s", x->path, strerror(errno));
    free(line);
    return 1;
  }
  free(line);
  x->written++;
  return 0;
}

/* Calls whose response holds no answer text are left out (n_written says how many were
 * written). The file appears complete or not at all: written to path.tmp, then renamed. */
us_status us_cache_export_jsonl(us_cache *c, const char *path, int64_t *n_written, us_err *err) {
  if (n_written) *n_written = 0;
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 5);
  if (!tmp) return us_err_set(err, US_ERR_NOMEM, "out of memory exporting to %s", path);
  snprintf(tmp, plen + 5, "%s.tmp", path);
  export_state x = {fopen(tmp, "w"), path, 0, US_OK, err};
  if (!x.f) {
    us_status st = us_err_set(err, US_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    free(tmp);
    return st;
  }
  us_status st = us_cache_calls_each(c, export_one, &x, err);
  if (st == US_OK) st = x.st;
  if (st == US_OK && (fflush(x.f) != 0 || fsync(fileno(x.f)) != 0))
    st = us_err_set(err, US_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
  if (fclose(x.f) != 0 && st == US_OK)
    st = us_err_set(err, US_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
  if (st == US_OK && rename(tmp, path) != 0)
    st = us_err_set(err, US_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
  if (st) unlink(tmp);
  free(tmp);
  if (st == US_OK && n_written) *n_written = x.written;
  return st;
}

/* ---- import --------------------------------------------------------------------------------- */

/* One parsed import line: the messages sent (as JSON text) and the stored response body. */
typedef struct import_entry {
  char *messages_json;
  char *response_json;
  int prompt_tokens, completion_tokens;
} import_entry;

static void import_entry_free(import_entry *e) {
  free(e->messages_json);
  free(e->response_json);
  memset(e, 0, sizeof *e);
}

/* The Chat Completions body stored for a chat-format line, so the rest of the system reads
 * one response format. */
static char *synthetic_response(const char *content) {
  cJSON *r = cJSON_CreateObject();
  cJSON *choices = cJSON_AddArrayToObject(r, "choices");
  cJSON *first = cJSON_CreateObject();
  cJSON_AddNumberToObject(first, "index", 0);
  cJSON *message = cJSON_AddObjectToObject(first, "message");
  cJSON_AddStringToObject(message, "role", "assistant");
  cJSON_AddStringToObject(message, "content", content);
  cJSON_AddStringToObject(first, "finish_reason", "stop");
  cJSON_AddItemToArray(choices, first);
  cJSON *usage = cJSON_AddObjectToObject(r, "usage");
  cJSON_AddNumberToObject(usage, "prompt_tokens", 0);
  cJSON_AddNumberToObject(usage, "completion_tokens", 0);
  char *text = cJSON_PrintUnformatted(r);
  cJSON_Delete(r);
  return text;
}

/* {"messages":[..., {"role":"assistant","content":"..."}]} */
static const char *parse_chat_line(cJSON *messages, import_entry *e) {
  int n = cJSON_GetArraySize(messages);
  if (n < 2) return "\"messages\" needs at least one message before the assistant's answer";
  const cJSON *last = cJSON_GetArrayItem(messages, n - 1);
  const cJSON *role = cJSON_GetObjectItemCaseSensitive(last, "role");
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(last, "content");
  if (!cJSON_IsString(role) || strcmp(role->valuestring, "assistant") != 0)
    return "the last message must be the assistant's answer (role \"assistant\")";
  if (!cJSON_IsString(content)) return "the assistant's answer has no string \"content\"";
  e->response_json = synthetic_response(content->valuestring);
  cJSON_DeleteItemFromArray(messages, n - 1);
  e->messages_json = cJSON_PrintUnformatted(messages);
  return NULL;
}

/* {"request":{"messages":[...],...},"response":{...Chat Completions object...}} */
static const char *parse_response_line(const cJSON *request, const cJSON *response,
                                       import_entry *e) {
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(request, "messages");
  if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) < 1)
    return "\"request\" has no \"messages\" array";
  if (!cJSON_IsObject(response) || !first_choice_content(response))
    return "\"response\" is not a Chat Completions object with choices[0].message.content";
  const cJSON *usage = cJSON_GetObjectItemCaseSensitive(response, "usage");
  const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
  const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
  e->prompt_tokens = cJSON_IsNumber(pt) ? pt->valueint : 0;
  e->completion_tokens = cJSON_IsNumber(ct) ? ct->valueint : 0;
  e->messages_json = cJSON_PrintUnformatted(messages);
  e->response_json = cJSON_PrintUnformatted(response);
  return NULL;
}

/* Parses one line into e; returns what is wrong with it, or NULL. */
static const char *parse_import_line(const char *line, size_t len, import_entry *e) {
  cJSON *root = cJSON_ParseWithLength(line, len);
  if (!root) return "not valid JSON";
  const char *problem = NULL;
  cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
  const cJSON *request = cJSON_GetObjectItemCaseSensitive(root, "request");
  const cJSON *response = cJSON_GetObjectItemCaseSensitive(root, "response");
  if (!cJSON_IsObject(root))
    problem = "expected a JSON object";
  else if (cJSON_IsArray(messages))
    problem = parse_chat_line(messages, e);
  else if (cJSON_IsObject(request) && response)
    problem = parse_response_line(request, response, e);
  else
    problem = "expected {\"messages\":[...]} or {\"request\":{...},\"response\":{...}}";
  if (!problem && (!e->messages_json || !e->response_json)) problem = "out of memory";
  cJSON_Delete(root);
  return problem;
}

static bool blank(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') return false;
  return true;
}

typedef struct import_counts {
  int64_t imported, skipped;
} import_counts;

/* Keys and stores one parsed line as an imported, unpaid call. */
static us_status import_entry_store(us_cache *c, const import_entry *e, us_request_key_fn key_fn,
                                    void *user, import_counts *counts, us_err *err) {
  us_call call;
  memset(&call, 0, sizeof call);
  char *request = NULL;
  us_status st = key_fn(user, e->messages_json, &request, call.key, err);
  if (st) return st;
  call.request = request;
  call.response = e->response_json;
  call.http_status = 200;
  call.prompt_tokens = e->prompt_tokens;
  call.completion_tokens = e->completion_tokens;
  call.imported = true;
  call.created_at = us_epoch();
  bool existed = false;
  st = us_cache_call_put(c, &call, &existed, err);
  free(request);
  if (st == US_OK) {
    if (existed)
      counts->skipped++;
    else
      counts->imported++;
  }
  return st;
}

static us_status import_lines(us_cache *c, FILE *f, const char *path, us_request_key_fn key_fn,
                              void *user, import_counts *counts, us_err *err) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long line_no = 0;
  us_status st = US_OK;
  errno = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    line_no++;
    if (blank(line)) continue;
    import_entry e = {0};
    const char *problem = parse_import_line(line, (size_t)len, &e);
    if (problem) {
      st = us_err_set(err, US_ERR_INPUT, "%s:%ld: %s", path, line_no, problem);
    } else {
      st = import_entry_store(c, &e, key_fn, user, counts, err);
      if (st) us_err_prefix(err, "%s:%ld", path, line_no);
    }
    import_entry_free(&e);
    if (st) break;
    errno = 0;
  }
  if (st == US_OK && ferror(f))
    st = us_err_set(err, US_ERR_IO, "cannot read %s: %s", path, strerror(errno));
  free(line);
  return st;
}

/* The whole file is imported in one transaction (fast, and all-or-nothing on a bad line);
 * inside a caller's transaction it simply joins it. */
us_status us_cache_import_jsonl(us_cache *c, const char *path, us_request_key_fn key_fn, void *user,
                                int64_t *n_imported, int64_t *n_skipped, us_err *err) {
  if (n_imported) *n_imported = 0;
  if (n_skipped) *n_skipped = 0;
  FILE *f = fopen(path, "r");
  if (!f) return us_err_set(err, US_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  bool own_transaction = sqlite3_get_autocommit(c->db) != 0;
  us_status st = own_transaction ? us_cache_begin(c, err) : US_OK;
  import_counts counts = {0, 0};
  if (st == US_OK) st = import_lines(c, f, path, key_fn, user, &counts, err);
  if (own_transaction && st == US_OK) st = us_cache_commit(c, err);
  if (own_transaction && st) {
    us_err ignored;
    us_cache_rollback(c, &ignored);
  }
  fclose(f);
  if (st == US_OK) {
    if (n_imported) *n_imported = counts.imported;
    if (n_skipped) *n_skipped = counts.skipped;
  }
  return st;
}
