/* Teacher request bodies and cache keys (distill/request.h): the body is built as a cJSON tree,
 * made canonical (keys sorted at every depth, compact) and hashed with SHA-256. */
#include "distill/request.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/hash.h"

/* ---- canonical JSON -------------------------------------------------------------------------- */

typedef struct member {
  cJSON *item;
  size_t order; /* original position: keeps duplicate keys in file order */
} member;

static int member_cmp(const void *a, const void *b) {
  const member *x = a, *y = b;
  int c = strcmp(x->item->string, y->item->string);
  if (c) return c;
  return x->order < y->order ? -1 : x->order > y->order;
}

/* Sorts the members of every object under node by key (byte order), in place. cJSON keeps
 * children in a list whose head's prev points at the tail; the relinking keeps that. */
static us_status sort_keys(cJSON *node) {
  for (cJSON *c = node->child; c; c = c->next) {
    us_status st = sort_keys(c);
    if (st) return st;
  }
  if (!cJSON_IsObject(node) || !node->child) return US_OK;
  size_t n = 0;
  for (cJSON *c = node->child; c; c = c->next) n++;
  member *m = malloc(n * sizeof *m);
  if (!m) return US_ERR_NOMEM;
  size_t i = 0;
  for (cJSON *c = node->child; c; c = c->next, i++) m[i] = (member){c, i};
  qsort(m, n, sizeof *m, member_cmp);
  for (i = 0; i < n; i++) {
    m[i].item->next = i + 1 < n ? m[i + 1].item : NULL;
    m[i].item->prev = i > 0 ? m[i - 1].item : m[n - 1].item;
  }
  node->child = m[0].item;
  free(m);
  return US_OK;
}

/* Canonical text of a tree (sorted in place). Caller frees *out. */
static us_status canonical_of_tree(cJSON *root, char **out, us_err *err) {
  *out = NULL;
  if (sort_keys(root)) return us_err_set(err, US_ERR_NOMEM, "out of memory sorting JSON keys");
  char *text = cJSON_PrintUnformatted(root);
  if (!text) return us_err_set(err, US_ERR_NOMEM, "out of memory printing JSON");
  /* cJSON allocates with its own hooks; hand the caller a plain malloc'd copy */
  *out = strdup(text);
  cJSON_free(text);
  return *out ? US_OK : us_err_set(err, US_ERR_NOMEM, "out of memory printing JSON");
}

us_status us_json_canonical(const char *json, char **out, us_err *err) {
  *out = NULL;
  if (!json) return us_err_set(err, US_ERR_INPUT, "canonical JSON: no input");
  const char *stop = NULL;
  cJSON *root = cJSON_ParseWithOpts(json, &stop, 1);
  if (!root) {
    size_t at = stop && stop >= json ? (size_t)(stop - json) : 0;
    return us_err_set(err, US_ERR_INPUT, "canonical JSON: invalid JSON at byte %zu", at);
  }
  us_status st = canonical_of_tree(root, out, err);
  cJSON_Delete(root);
  return st;
}

/* ---- rendering ------------------------------------------------------------------------------- */

/* Replaces {text} and {labels} in one pass, so markers inside the inserted text stay as
 * they are. */
static us_status fill_template(const char *tpl, const char *text, const char *labels, char **out) {
  us_buf b;
  us_buf_init(&b, 0);
  us_status st = us_buf_puts(&b, "");
  for (const char *p = tpl; *p && !st;) {
    if (strncmp(p, "{text}", 6) == 0) {
      st = us_buf_puts(&b, text);
      p += 6;
    } else if (strncmp(p, "{labels}", 8) == 0) {
      st = us_buf_puts(&b, labels);
      p += 8;
    } else {
      const char *next = strchr(p + 1, '{');
      size_t n = next ? (size_t)(next - p) : strlen(p);
      st = us_buf_append(&b, p, n);
      p += n;
    }
  }
  if (st) {
    us_buf_free(&b);
    return st;
  }
  *out = us_buf_steal(&b);
  return *out ? US_OK : US_ERR_NOMEM;
}

us_status us_request_render(const us_task *task, const char *text, char **system, char **user,
                            us_err *err) {
  *system = *user = NULL;
  us_buf labels;
  us_buf_init(&labels, 0);
  us_status st = us_buf_puts(&labels, "");
  for (int i = 0; i < task->n_labels && !st; i++)
    st = us_buf_printf(&labels, "%s%s", i ? ", " : "", task->labels[i]);
  if (!st)
    st = fill_template(task->instructions ? task->instructions : "", text ? text : "", labels.data,
                       system);
  if (!st)
    st = fill_template(task->template ? task->template : "{text}", text ? text : "", labels.data,
                       user);
  us_buf_free(&labels);
  if (st) {
    free(*system);
    free(*user);
    *system = *user = NULL;
    return us_err_set(err, st, "out of memory rendering a prompt");
  }
  return US_OK;
}

/* ---- request bodies -------------------------------------------------------------------------- */

/* teacher.structured for a classify task: a response_format whose JSON schema makes the answer
 * {"answer": one of the labels}. Added only when structured is on, so the bodies (and cache
 * keys) of every other config stay as they were. */
static bool add_response_format(cJSON *root, const us_task *task) {
  cJSON *format = cJSON_AddObjectToObject(root, "response_format");
  cJSON *js = format ? cJSON_AddObjectToObject(format, "json_schema") : NULL;
  cJSON *schema = js ? cJSON_AddObjectToObject(js, "schema") : NULL;
  cJSON *props = schema ? cJSON_AddObjectToObject(schema, "properties") : NULL;
  cJSON *answer = props ? cJSON_AddObjectToObject(props, "answer") : NULL;
  cJSON *labels = answer ? cJSON_AddArrayToObject(answer, "enum") : NULL;
  cJSON *required = schema ? cJSON_AddArrayToObject(schema, "required") : NULL;
  if (!labels || !required || !cJSON_AddStringToObject(format, "type", "json_schema") ||
      !cJSON_AddStringToObject(js, "name", "label") || !cJSON_AddTrueToObject(js, "strict") ||
      !cJSON_AddStringToObject(schema, "type", "object") ||
      !cJSON_AddFalseToObject(schema, "additionalProperties") ||
      !cJSON_AddStringToObject(answer, "type", "string"))
    return false;
  cJSON *req = cJSON_CreateString("answer");
  if (!req) return false;
  cJSON_AddItemToArray(required, req);
  for (int i = 0; i < task->n_labels; i++) {
    cJSON *l = cJSON_CreateString(task->labels[i]);
    if (!l) return false;
    cJSON_AddItemToArray(labels, l);
  }
  return true;
}

/* Takes ownership of messages (a JSON array) and wraps it in the body with the config's model
 * and every parameter that can change the answer. Never the API key or headers. structured,
 * when given, is the classify task whose labels teacher.structured constrains the answer to. */
static us_status build_body(const us_teacher_params *teacher, const us_task *structured,
                            cJSON *messages, char **body, char key[65], us_err *err) {
  *body = NULL;
  cJSON *root = cJSON_CreateObject();
  if (!root) {
    cJSON_Delete(messages);
    return us_err_set(err, US_ERR_NOMEM, "out of memory building a request");
  }
  cJSON_AddItemToObject(root, "messages", messages);
  bool ok = cJSON_AddStringToObject(root, "model", teacher->model ? teacher->model : "") &&
            cJSON_AddNumberToObject(root, "temperature", teacher->temperature) &&
            cJSON_AddNumberToObject(root, "max_tokens", teacher->max_tokens);
  if (ok && teacher->has_seed)
    ok = cJSON_AddNumberToObject(root, "seed", (double)teacher->seed) != NULL;
  if (ok && teacher->logprobs)
    ok = cJSON_AddTrueToObject(root, "logprobs") &&
         cJSON_AddNumberToObject(root, "top_logprobs", teacher->top_logprobs);
  if (ok && structured && teacher->structured && structured->type == US_TASK_CLASSIFY &&
      structured->n_labels > 0)
    ok = add_response_format(root, structured);
  us_status st = ok ? canonical_of_tree(root, body, err)
                    : us_err_set(err, US_ERR_NOMEM, "out of memory building a request");
  cJSON_Delete(root);
  if (st) return st;
  us_sha256_hex(*body, strlen(*body), key);
  return US_OK;
}

static bool add_message(cJSON *messages, const char *role, const char *content) {
  cJSON *m = cJSON_CreateObject();
  if (!m) return false;
  cJSON_AddItemToArray(messages, m);
  return cJSON_AddStringToObject(m, "role", role) && cJSON_AddStringToObject(m, "content", content);
}

static us_status build_messages(const us_teacher_params *teacher, const us_task *structured,
                                const char *system, const char *user, char **body, char key[65],
                                us_err *err) {
  *body = NULL;
  cJSON *messages = cJSON_CreateArray();
  bool ok = messages != NULL;
  /* an empty task.instructions means no system message at all */
  if (ok && system && *system) ok = add_message(messages, "system", system);
  if (ok) ok = add_message(messages, "user", user ? user : "");
  if (!ok) {
    cJSON_Delete(messages);
    return us_err_set(err, US_ERR_NOMEM, "out of memory building a request");
  }
  return build_body(teacher, structured, messages, body, key, err);
}

us_status us_request_build_messages(const us_teacher_params *teacher, const char *system,
                                    const char *user, char **body, char key[65], us_err *err) {
  return build_messages(teacher, NULL, system, user, body, key, err);
}

us_status us_request_build(const us_task *task, const us_teacher_params *teacher, const char *text,
                           char **body, char key[65], us_err *err) {
  char *system = NULL, *user = NULL;
  *body = NULL;
  us_status st = us_request_render(task, text, &system, &user, err);
  if (!st) st = build_messages(teacher, task, system, user, body, key, err);
  free(system);
  free(user);
  return st;
}

/* Copies one logged message as {role, content}, the only fields a live call sends, so fields
 * a logging tool added (name, refusal, tool_calls: null) do not change the key. An empty system
 * message is dropped, as a live call with empty task.instructions sends none. */
static us_status copy_message(const cJSON *m, int i, cJSON *out, us_err *err) {
  const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
  if (!cJSON_IsObject(m) || !cJSON_IsString(role) || !cJSON_IsString(content))
    return us_err_set(err, US_ERR_INPUT,
                      "messages[%d]: expected an object with string \"role\" and \"content\"", i);
  if (strcmp(role->valuestring, "system") == 0 && !content->valuestring[0]) return US_OK;
  if (!add_message(out, role->valuestring, content->valuestring))
    return us_err_set(err, US_ERR_NOMEM, "out of memory building a request");
  return US_OK;
}

us_status us_request_key_for_messages(void *user, const char *messages_json, char **body,
                                      char key[65], us_err *err) {
  const us_teacher_params *teacher = user;
  *body = NULL;
  cJSON *in = messages_json ? cJSON_Parse(messages_json) : NULL;
  if (!cJSON_IsArray(in) || cJSON_GetArraySize(in) == 0) {
    cJSON_Delete(in);
    return us_err_set(err, US_ERR_INPUT, "messages: expected a non-empty JSON array of messages");
  }
  cJSON *messages = cJSON_CreateArray();
  us_status st = messages ? US_OK : us_err_set(err, US_ERR_NOMEM, "out of memory");
  int i = 0;
  for (const cJSON *m = in->child; m && !st; m = m->next, i++)
    st = copy_message(m, i, messages, err);
  cJSON_Delete(in);
  if (st) {
    cJSON_Delete(messages);
    return st;
  }
  return build_body(teacher, NULL, messages, body, key, err);
}

/* ---- self-instruct requests ------------------------------------------------------------------ */

char *us_request_fill(const char *template_text, const char *chunk, const char *n,
                      const char *question) {
  static const char *const names[] = {"{chunk}", "{n}", "{question}"};
  const char *values[] = {chunk, n, question};
  us_buf b;
  us_buf_init(&b, 0);
  us_status st = us_buf_puts(&b, "");
  for (const char *p = template_text; *p && !st;) {
    size_t i = 0;
    while (i < 3 && !(values[i] && strncmp(p, names[i], strlen(names[i])) == 0)) i++;
    if (i < 3) {
      st = us_buf_puts(&b, values[i]);
      p += strlen(names[i]);
      continue;
    }
    const char *next = strchr(p + 1, '{');
    size_t len = next ? (size_t)(next - p) : strlen(p);
    st = us_buf_append(&b, p, len);
    p += len;
  }
  if (st) {
    us_buf_free(&b);
    return NULL;
  }
  return us_buf_steal(&b);
}

us_status us_request_for_prompt(const us_task *task, const us_prompts_params *data,
                                const us_teacher_params *teacher, const us_prompt *p, char **body,
                                char key[65], us_err *err) {
  *body = NULL;
  if (!p->context) return us_request_build(task, teacher, p->text, body, key, err);
  char *system = NULL, *user = NULL;
  us_status st = us_request_render(task, p->text, &system, &user, err);
  free(user);
  if (st) return st;
  user = us_request_fill(
      data->answer_template ? data->answer_template : US_PROMPTS_DEFAULT_ANSWER_TEMPLATE,
      p->context, NULL, p->text);
  st = user ? us_request_build_messages(teacher, system, user, body, key, err)
            : us_err_set(err, US_ERR_NOMEM, "out of memory rendering data.answer_template");
  free(system);
  free(user);
  return st;
}

us_status us_request_for_chunk(const us_prompts_params *data, const us_teacher_params *teacher,
                               const char *chunk, char **body, char key[65], us_err *err) {
  *body = NULL;
  char n[16];
  snprintf(n, sizeof n, "%d", data->questions_per_chunk);
  char *user = us_request_fill(
      data->question_template ? data->question_template : US_PROMPTS_DEFAULT_QUESTION_TEMPLATE,
      chunk, n, NULL);
  if (!user) return us_err_set(err, US_ERR_NOMEM, "out of memory rendering data.question_template");
  us_status st = us_request_build_messages(teacher, NULL, user, body, key, err);
  free(user);
  return st;
}
