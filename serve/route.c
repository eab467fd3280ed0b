/* Reading and writing Chat Completions for the server: is a request the distilled task (and
 * what is its {text}), and the response objects and server-sent-event chunks it sends back. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "distill/teacher.h"
#include "serve/serve_int.h"

/* template with {text} = text and {labels} = labels in one pass, as us_request_render fills it. */
static char *fill(const char *template_text, const char *labels, const char *text,
                  size_t text_len) {
  us_buf b;
  us_buf_init(&b, 0);
  const char *t = template_text;
  us_status st = us_buf_reserve(&b, strlen(t) + text_len + strlen(labels) + 16);
  if (!st) b.data[0] = '\0'; /* reserve leaves the room unwritten */
  while (*t && !st) {
    const char *brace = strchr(t, '{');
    if (!brace) {
      st = us_buf_puts(&b, t);
      break;
    }
    if (brace > t) st = us_buf_append(&b, t, (size_t)(brace - t));
    if (st) break;
    if (strncmp(brace, "{text}", 6) == 0) {
      st = us_buf_append(&b, text, text_len);
      t = brace + 6;
    } else if (strncmp(brace, "{labels}", 8) == 0) {
      st = us_buf_puts(&b, labels);
      t = brace + 8;
    } else {
      st = us_buf_append(&b, brace, 1);
      t = brace + 1;
    }
  }
  if (st) {
    us_buf_free(&b);
    return NULL;
  }
  return us_buf_steal(&b);
}

char *us_serve_match_template(const char *template_text, const char *labels_joined,
                              const char *message) {
  if (!template_text || !message) return NULL;
  /* the message is the template's fixed text with k copies of {text}: its length gives the
   * text's length, its place after the prefix gives the text, and rendering it again must give
   * the message back byte for byte */
  char *fixed = fill(template_text, labels_joined ? labels_joined : "", "", 0);
  if (!fixed) return NULL;
  size_t k = 0;
  for (const char *t = strstr(template_text, "{text}"); t; t = strstr(t + 6, "{text}")) k++;
  size_t fixed_len = strlen(fixed), len = strlen(message);
  free(fixed);
  if (k == 0 || len < fixed_len || (len - fixed_len) % k != 0) return NULL;
  size_t text_len = (len - fixed_len) / k;
  const char *first = strstr(template_text, "{text}");
  size_t head_len = (size_t)(first - template_text);
  char *head_template = malloc(head_len + 1);
  if (!head_template) return NULL;
  memcpy(head_template, template_text, head_len);
  head_template[head_len] = '\0';
  char *head = fill(head_template, labels_joined ? labels_joined : "", "", 0);
  free(head_template);
  if (!head) return NULL;
  size_t at = strlen(head);
  bool head_ok = strncmp(message, head, at) == 0;
  free(head);
  if (!head_ok || at + text_len > len) return NULL;
  char *text = malloc(text_len + 1);
  if (!text) return NULL;
  memcpy(text, message + at, text_len);
  text[text_len] = '\0';
  char *again = fill(template_text, labels_joined ? labels_joined : "", text, text_len);
  bool same = again && strcmp(again, message) == 0;
  free(again);
  if (!same) {
    free(text);
    return NULL;
  }
  return text;
}

us_status us__route_prepare(us__server *s) {
  const char *tpl = s->config->task.template;
  const char *labels = s->labels_joined ? s->labels_joined : "";
  const char *first = tpl ? strstr(tpl, "{text}") : NULL;
  if (!first || strstr(first + 6, "{text}")) return US_OK; /* no split: the general matcher */
  size_t head_len = (size_t)(first - tpl);
  char *head_template = malloc(head_len + 1);
  if (!head_template) return US_ERR_NOMEM;
  memcpy(head_template, tpl, head_len);
  head_template[head_len] = '\0';
  /* fill reads the template left to right and "{labels}" cannot hold "{text}", so filling the
   * two sides apart gives the same bytes as filling the whole */
  s->tpl_head = fill(head_template, labels, "", 0);
  free(head_template);
  s->tpl_tail = fill(first + 6, labels, "", 0);
  if (!s->tpl_head || !s->tpl_tail) {
    us__route_unprepare(s);
    return US_ERR_NOMEM;
  }
  s->tpl_head_len = strlen(s->tpl_head);
  s->tpl_tail_len = strlen(s->tpl_tail);
  return US_OK;
}

void us__route_unprepare(us__server *s) {
  free(s->tpl_head);
  free(s->tpl_tail);
  s->tpl_head = s->tpl_tail = NULL;
}

char *us__route_match(const us__server *s, const char *message) {
  if (!message) return NULL;
  if (!s->tpl_head)
    return us_serve_match_template(s->config->task.template, s->labels_joined, message);
  /* one {text}: the message is head + text + tail */
  size_t len = strlen(message), h = s->tpl_head_len, t = s->tpl_tail_len;
  if (len < h + t || memcmp(message, s->tpl_head, h) != 0 ||
      memcmp(message + len - t, s->tpl_tail, t) != 0)
    return NULL;
  size_t text_len = len - h - t;
  char *text = malloc(text_len + 1);
  if (!text) return NULL;
  memcpy(text, message + h, text_len);
  text[text_len] = '\0';
  return text;
}

/* A message's content as one string: a string, or an array of {"type":"text","text":...} parts
 * joined. Caller frees; NULL when it has other parts (images) or none. */
static char *message_text(const cJSON *content) {
  if (cJSON_IsString(content)) return us_strdup(content->valuestring);
  if (!cJSON_IsArray(content)) return NULL;
  us_buf b;
  us_buf_init(&b, 0);
  const cJSON *part;
  cJSON_ArrayForEach(part, content) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text) ||
        us_buf_puts(&b, text->valuestring)) {
      us_buf_free(&b);
      return NULL;
    }
  }
  return us_buf_steal(&b);
}

static bool role_is(const cJSON *m, const char *role) {
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "role");
  return cJSON_IsString(r) && strcmp(r->valuestring, role) == 0;
}

char *us__route_task_text(const us__server *s, const void *request) {
  const cJSON *req = request;
  const us_config *c = s->config;
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
  if (!cJSON_IsString(model)) return NULL;
  if (strcmp(model->valuestring, c->teacher.model) != 0 &&
      !(c->serve.model && strcmp(model->valuestring, c->serve.model) == 0))
    return NULL;
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
  if (!cJSON_IsArray(messages)) return NULL;
  int n = cJSON_GetArraySize(messages);
  bool has_system = c->task.instructions && c->task.instructions[0];
  if (n != (has_system ? 2 : 1)) return NULL;
  const cJSON *user = cJSON_GetArrayItem(messages, n - 1);
  if (has_system) {
    const cJSON *sys = cJSON_GetArrayItem(messages, 0);
    if (!role_is(sys, "system") && !role_is(sys, "developer")) return NULL;
    char *system = message_text(cJSON_GetObjectItemCaseSensitive(sys, "content"));
    bool same = system && strcmp(system, c->task.instructions) == 0;
    free(system);
    if (!same) return NULL;
  }
  if (!role_is(user, "user")) return NULL;
  char *msg = message_text(cJSON_GetObjectItemCaseSensitive(user, "content"));
  char *text = us__route_match(s, msg);
  free(msg);
  return text;
}

void us__route_stream_flags(const void *request, bool *stream, bool *include_usage) {
  const cJSON *req = request;
  *stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "stream"));
  const cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
  *include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
}

/* v in decimal, as %lld writes it. */
static us_status append_int(us_buf *b, long long v) {
  char digits[24];
  char *p = digits + sizeof digits;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0) *--p = '-';
  return us_buf_append(b, p, (size_t)(digits + sizeof digits - p));
}

static cJSON *usage_object(int prompt_tokens, int completion_tokens) {
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "prompt_tokens", prompt_tokens);
  cJSON_AddNumberToObject(u, "completion_tokens", completion_tokens);
  cJSON_AddNumberToObject(u, "total_tokens", prompt_tokens + completion_tokens);
  return u;
}

static cJSON *chunk(const char *id, const char *model, double created) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", id);
  cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
  cJSON_AddNumberToObject(o, "created", floor(created));
  cJSON_AddStringToObject(o, "model", model);
  cJSON_AddStringToObject(o, "system_fingerprint", "understudy");
  return o;
}

static void sse_put(us_buf *b, cJSON *o) {
  char *text = cJSON_PrintUnformatted(o);
  if (text) {
    us_buf_puts(b, "data: ");
    us_buf_puts(b, text);
    us_buf_puts(b, "\n\n");
  }
  free(text);
  cJSON_Delete(o);
}

/* role chunk, content chunk, finish chunk, optional usage chunk, [DONE] */
static char *sse_completion(const char *id, const char *model, double created, const char *content,
                            const char *finish, int prompt_tokens, int completion_tokens,
                            bool include_usage) {
  us_buf b;
  us_buf_init(&b, 0);
  const char *deltas[2][2] = {{"role", "assistant"}, {"content", content}};
  for (int i = 0; i < 2; i++) {
    cJSON *o = chunk(id, model, created);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, c);
    cJSON_AddNumberToObject(c, "index", 0);
    cJSON *delta = cJSON_AddObjectToObject(c, "delta");
    cJSON_AddStringToObject(delta, deltas[i][0], deltas[i][1]);
    if (i == 0) cJSON_AddStringToObject(delta, "content", "");
    cJSON_AddNullToObject(c, "logprobs");
    cJSON_AddNullToObject(c, "finish_reason");
    if (include_usage) cJSON_AddNullToObject(o, "usage");
    sse_put(&b, o);
  }
  cJSON *o = chunk(id, model, created);
  cJSON *c = cJSON_CreateObject();
  cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), c);
  cJSON_AddNumberToObject(c, "index", 0);
  cJSON_AddObjectToObject(c, "delta");
  cJSON_AddNullToObject(c, "logprobs");
  cJSON_AddStringToObject(c, "finish_reason", finish ? finish : "stop");
  if (include_usage) cJSON_AddNullToObject(o, "usage");
  sse_put(&b, o);
  if (include_usage) {
    o = chunk(id, model, created);
    cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToObject(o, "usage", usage_object(prompt_tokens, completion_tokens));
    sse_put(&b, o);
  }
  us_buf_puts(&b, "data: [DONE]\n\n");
  return us_buf_steal(&b);
}

char *us__route_completion(const char *id, const char *model, double created, const char *content,
                           int prompt_tokens, int completion_tokens, bool stream,
                           bool include_usage) {
  if (stream)
    return sse_completion(id, model, created, content, "stop", prompt_tokens, completion_tokens,
                          include_usage);
  /* written directly, without printf: this is every student answer's path, and formatting
   * numbers through printf (and cJSON's sprintf-then-sscanf) was a measurable share of it */
  us_buf b;
  us_buf_init(&b, 0);
  us_status st = us_buf_reserve(&b, 384 + strlen(content) + strlen(model));
  if (!st) st = us_buf_puts(&b, "{\"id\":");
  if (!st) st = us_json_quote(&b, id);
  if (!st) st = us_buf_puts(&b, ",\"object\":\"chat.completion\",\"created\":");
  if (!st) st = append_int(&b, (long long)floor(created));
  if (!st) st = us_buf_puts(&b, ",\"model\":");
  if (!st) st = us_json_quote(&b, model);
  if (!st)
    st = us_buf_puts(&b,
                     ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
  if (!st) st = us_json_quote(&b, content);
  if (!st)
    st = us_buf_puts(&b,
                     ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
                     "\"usage\":{\"prompt_tokens\":");
  if (!st) st = append_int(&b, prompt_tokens);
  if (!st) st = us_buf_puts(&b, ",\"completion_tokens\":");
  if (!st) st = append_int(&b, completion_tokens);
  if (!st) st = us_buf_puts(&b, ",\"total_tokens\":");
  if (!st) st = append_int(&b, (long long)prompt_tokens + completion_tokens);
  if (!st) st = us_buf_puts(&b, "},\"system_fingerprint\":\"understudy\"}");
  if (st) {
    us_buf_free(&b);
    return NULL;
  }
  return us_buf_steal(&b);
}

char *us__route_stream_from_body(const char *body, bool include_usage) {
  cJSON *o = cJSON_Parse(body);
  if (!o) return NULL;
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
  const cJSON *created = cJSON_GetObjectItemCaseSensitive(o, "created");
  const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
  const cJSON *finish = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
  const cJSON *usage = cJSON_GetObjectItemCaseSensitive(o, "usage");
  const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
  const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
  char *out = NULL;
  if (cJSON_IsString(content))
    out = sse_completion(cJSON_IsString(id) ? id->valuestring : "chatcmpl-understudy",
                         cJSON_IsString(model) ? model->valuestring : "",
                         cJSON_IsNumber(created) ? created->valuedouble : 0, content->valuestring,
                         cJSON_IsString(finish) ? finish->valuestring : "stop",
                         cJSON_IsNumber(pt) ? pt->valueint : 0,
                         cJSON_IsNumber(ct) ? ct->valueint : 0, include_usage);
  cJSON_Delete(o);
  return out;
}

char *us__route_error_body(const char *message, const char *type, const char *code) {
  us_buf b;
  us_buf_init(&b, 0);
  us_buf_puts(&b, "{\"error\":{\"message\":");
  us_json_quote(&b, message);
  us_buf_puts(&b, ",\"type\":");
  us_json_quote(&b, type);
  us_buf_puts(&b, ",\"param\":null,\"code\":");
  if (code)
    us_json_quote(&b, code);
  else
    us_buf_puts(&b, "null");
  us_buf_puts(&b, "}}");
  return us_buf_steal(&b);
}

char *us__route_teacher_content(const char *body) {
  char *content = NULL;
  int pt, ct;
  if (us_response_parse(body, NULL, 0, &content, &pt, &ct, NULL, NULL, NULL)) {
    free(content);
    return NULL;
  }
  return content;
}

char *us__route_teacher_answer(const us__server *s, const char *body, char **content_out) {
  char *content = NULL;
  int pt, ct;
  if (content_out) *content_out = NULL;
  if (us_response_parse(body, NULL, 0, &content, &pt, &ct, NULL, NULL, NULL) || !content) {
    free(content);
    return NULL;
  }
  char *answer = NULL;
  if (s->config->task.type == US_TASK_CLASSIFY) {
    int k = us_answer_map_label(content, s->config->task.labels, s->config->task.n_labels);
    answer = k >= 0 ? us_strdup(s->config->task.labels[k]) : NULL;
  } else {
    answer = us_strdup(content);
  }
  if (content_out)
    *content_out = content;
  else
    free(content);
  return answer;
}
