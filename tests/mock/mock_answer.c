/* What the mock teacher answers: the prompt text is recovered from the last user message through
 * the task template, the answer comes from the answers file or a hash rule over the labels, and
 * the response carries realistic usage and, on request, logprobs over the labels. Everything here
 * is a pure function of the request body, so the same body always gets the same answer. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/hash.h"
#include "mock.h"

typedef struct answer_entry {
  char *text; /* normalised prompt text; NULL when the slot is empty */
  char *answer;
} answer_entry;

/* Read-only once loaded, so the connection threads share it without a lock. */
static struct {
  answer_entry *slots;
  size_t cap;
  char *prefix, *suffix; /* the template around {text}, {labels} kept as written */
  char *prefix_rendered; /* {labels} replaced by "a, b, c" */
  char *suffix_rendered;
} answers;

static const char *labels_token = "{labels}";

/* Lower-cases ASCII, folds white space runs to one space and trims, so small differences in how
 * a loader kept the text do not lose the answers file's entry. */
static char *normalize(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(n + 1);
  if (!out) return NULL;
  size_t j = 0;
  bool space = false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (isspace(ch)) {
      space = j > 0;
      continue;
    }
    if (space) out[j++] = ' ';
    space = false;
    out[j++] = (char)tolower(ch);
  }
  out[j] = '\0';
  return out;
}

static size_t text_slot(const char *normalized) {
  size_t j = (size_t)us_hash64(normalized, strlen(normalized), 7) & (answers.cap - 1);
  while (answers.slots[j].text && strcmp(answers.slots[j].text, normalized) != 0)
    j = (j + 1) & (answers.cap - 1);
  return j;
}

static char *replace_all(const char *s, const char *what, const char *with) {
  us_buf b;
  us_buf_init(&b, 0);
  size_t wn = strlen(what);
  for (const char *p = s;;) {
    const char *hit = strstr(p, what);
    if (!hit) {
      us_buf_puts(&b, p);
      break;
    }
    us_buf_append(&b, p, (size_t)(hit - p));
    us_buf_puts(&b, with);
    p = hit + wn;
  }
  return us_buf_steal(&b);
}

static bool template_load(const mock_options *o) {
  const char *t = o->template_text ? o->template_text : "{text}";
  const char *hit = strstr(t, "{text}");
  if (!hit) {
    fprintf(stderr, "us_mock_teacher: --template must contain {text}: '%s'\n", t);
    return false;
  }
  answers.prefix = strndup(t, (size_t)(hit - t));
  answers.suffix = strdup(hit + strlen("{text}"));
  us_buf joined;
  us_buf_init(&joined, 0);
  for (int i = 0; i < o->n_labels; i++) us_buf_printf(&joined, "%s%s", i ? ", " : "", o->labels[i]);
  char *list = us_buf_steal(&joined);
  answers.prefix_rendered = replace_all(answers.prefix, labels_token, list);
  answers.suffix_rendered = replace_all(answers.suffix, labels_token, list);
  free(list);
  return answers.prefix && answers.suffix && answers.prefix_rendered && answers.suffix_rendered;
}

static bool answers_add(const char *text, const char *answer) {
  char *norm = normalize(text);
  if (!norm) return false;
  size_t j = text_slot(norm);
  if (answers.slots[j].text) { /* a later line for the same text wins */
    free(norm);
    free(answers.slots[j].answer);
  } else {
    answers.slots[j].text = norm;
  }
  answers.slots[j].answer = strdup(answer);
  return answers.slots[j].answer != NULL;
}

static bool answers_file_load(const char *path) {
  /* The answers file: one {"text": ..., "answer": ...} object per line. */
  FILE *f = fopen(path, "r");
  if (!f) {
    perror(path);
    return false;
  }
  size_t lines = 0;
  int ch;
  while ((ch = fgetc(f)) != EOF) lines += ch == '\n';
  rewind(f);
  answers.cap = 1024;
  while (answers.cap < 2 * (lines + 1)) answers.cap *= 2;
  answers.slots = calloc(answers.cap, sizeof *answers.slots);
  char *line = NULL;
  size_t line_cap = 0;
  long no = 0;
  bool ok = answers.slots != NULL;
  while (ok && getline(&line, &line_cap, f) >= 0) {
    no++;
    if (strspn(line, " \t\r\n") == strlen(line)) continue;
    cJSON *j = cJSON_Parse(line);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
    const cJSON *answer = cJSON_GetObjectItemCaseSensitive(j, "answer");
    if (!cJSON_IsString(text) || !cJSON_IsString(answer)) {
      fprintf(stderr, "us_mock_teacher: %s:%ld: expected {\"text\": string, \"answer\": string}\n",
              path, no);
      ok = false;
    } else {
      ok = answers_add(text->valuestring, answer->valuestring);
    }
    cJSON_Delete(j);
  }
  free(line);
  fclose(f);
  return ok;
}

bool mock_answers_load(const mock_options *o) {
  if (!template_load(o)) return false;
  if (!o->answers_path) return true;
  return answers_file_load(o->answers_path);
}

void mock_answers_free(void) {
  for (size_t i = 0; i < answers.cap; i++) {
    free(answers.slots[i].text);
    free(answers.slots[i].answer);
  }
  free(answers.slots);
  free(answers.prefix);
  free(answers.suffix);
  free(answers.prefix_rendered);
  free(answers.suffix_rendered);
  memset(&answers, 0, sizeof answers);
}

static bool starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool ends_with(const char *s, size_t n, const char *suffix) {
  size_t k = strlen(suffix);
  return k <= n && memcmp(s + n - k, suffix, k) == 0;
}

/* Matches pattern (literal pieces separated by {labels}, each {labels} matching anything) at
 * the start of s; returns the length matched or -1. The pattern must not end with {labels}. */
static long match_prefix_wild(const char *s, const char *pattern) {
  const char *hit = strstr(pattern, labels_token);
  if (!hit) return starts_with(s, pattern) ? (long)strlen(pattern) : -1;
  size_t first = (size_t)(hit - pattern);
  if (strncmp(s, pattern, first) != 0) return -1;
  const char *p = s + first;
  const char *rest = hit + strlen(labels_token);
  while (*rest) {
    const char *next = strstr(rest, labels_token);
    size_t piece = next ? (size_t)(next - rest) : strlen(rest);
    char *lit = strndup(rest, piece);
    const char *found = lit ? strstr(p, lit) : NULL;
    free(lit);
    if (!found) return -1;
    p = found + piece;
    rest = next ? next + strlen(labels_token) : rest + piece;
  }
  return (long)(p - s);
}

char *mock_extract_text(const char *msg) {
  size_t n = strlen(msg);
  const char *pre = answers.prefix_rendered, *suf = answers.suffix_rendered;
  if (pre && suf && starts_with(msg, pre) && ends_with(msg, n, suf) &&
      strlen(pre) + strlen(suf) <= n)
    return strndup(msg + strlen(pre), n - strlen(pre) - strlen(suf));
  /* The labels were joined some other way: treat {labels} as a wildcard. The suffix usually has
   * no {labels}; when it does, only its literal tail is stripped. */
  if (answers.prefix) {
    size_t plen = strlen(answers.prefix);
    bool ends_wild = plen >= strlen(labels_token) &&
                     strcmp(answers.prefix + plen - strlen(labels_token), labels_token) == 0;
    long start = ends_wild ? -1 : match_prefix_wild(msg, answers.prefix);
    if (start >= 0) {
      const char *tail = strrchr(answers.suffix, '}');
      const char *lit = strstr(answers.suffix, labels_token) && tail ? tail + 1 : answers.suffix;
      size_t k = strlen(lit);
      if (ends_with(msg, n, lit) && (size_t)start + k <= n) {
        size_t end = n - k;
        if (lit != answers.suffix) { /* cut at the suffix's first literal piece */
          size_t first = strcspn(answers.suffix, "{");
          char *head = strndup(answers.suffix, first);
          const char *h = head && first ? strstr(msg + start, head) : NULL;
          if (h && (size_t)(h - msg) < end) end = (size_t)(h - msg);
          free(head);
        }
        return strndup(msg + start, end - (size_t)start);
      }
    }
  }
  return strdup(msg);
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n <= max) return n;
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
  return max;
}

/* The longest answers-file text inside normalised message m, or NULL: linear, but only reached
 * when the template did not give the text back exactly. */
static const answer_entry *contained_entry(const char *m) {
  const answer_entry *best = NULL;
  size_t best_len = 0;
  for (size_t i = 0; i < answers.cap; i++) {
    const answer_entry *e = &answers.slots[i];
    if (!e->text) continue;
    size_t n = strlen(e->text);
    if (n > best_len && strstr(m, e->text)) {
      best = e;
      best_len = n;
    }
  }
  return best;
}

char *mock_answer_for(const mock_options *o, const char *text) {
  char *norm = normalize(text);
  if (!norm) return NULL;
  char *out = NULL;
  if (answers.slots) {
    const answer_entry *e = &answers.slots[text_slot(norm)];
    if (!e->text) e = contained_entry(norm);
    if (e && e->text) {
      bool noisy = o->n_labels > 1 && mock_unit(17, e->text, 1) < o->answer_noise;
      out = strdup(
          noisy ? o->labels[(size_t)(mock_unit(17, e->text, 2) * o->n_labels) % (size_t)o->n_labels]
                : e->answer);
    }
  }
  uint64_t h = us_hash64(norm, strlen(norm), 0);
  if (!out && o->n_labels > 0) out = strdup(o->labels[h % (uint64_t)o->n_labels]);
  if (!out) {
    us_buf b;
    us_buf_init(&b, 0);
    us_buf_puts(&b, "In short: ");
    us_buf_append(&b, norm, utf8_cut(norm, 60));
    us_buf_printf(&b, " (note %u).", (unsigned)(h % 1000));
    out = us_buf_steal(&b);
  }
  free(norm);
  return out;
}

char *mock_error_body(const char *message, const char *type, const char *code) {
  cJSON *o = cJSON_CreateObject();
  cJSON *e = cJSON_AddObjectToObject(o, "error");
  cJSON_AddStringToObject(e, "message", message);
  cJSON_AddStringToObject(e, "type", type);
  cJSON_AddNullToObject(e, "param");
  if (code)
    cJSON_AddStringToObject(e, "code", code);
  else
    cJSON_AddNullToObject(e, "code");
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

/* The text of a message's content: a string, or the text parts of a content array. */
static char *content_text(const cJSON *content) {
  if (cJSON_IsString(content)) return strdup(content->valuestring);
  if (!cJSON_IsArray(content)) return NULL;
  us_buf b;
  us_buf_init(&b, 0);
  us_buf_puts(&b, "");
  const cJSON *part;
  cJSON_ArrayForEach(part, content) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
    if (cJSON_IsString(t)) us_buf_puts(&b, t->valuestring);
  }
  return us_buf_steal(&b);
}

static cJSON *logprob_entry(const char *token, double logprob, bool with_top) {
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "token", token);
  cJSON_AddNumberToObject(e, "logprob", logprob);
  cJSON *bytes = cJSON_AddArrayToObject(e, "bytes");
  for (const unsigned char *p = (const unsigned char *)token; *p; p++)
    cJSON_AddItemToArray(bytes, cJSON_CreateNumber(*p));
  if (with_top) cJSON_AddArrayToObject(e, "top_logprobs");
  return e;
}

/* A fixed distribution over the labels (and the answer, if it is no label) that puts most of
 * the mass on the answer; the top_logprobs most likely, best first. */
static cJSON *logprobs_build(const mock_options *o, const char *text, const char *answer, int top) {
  int n = o->n_labels, answer_at = -1;
  for (int i = 0; i < n; i++)
    if (strcmp(o->labels[i], answer) == 0) answer_at = i;
  int m = n + (answer_at < 0);
  const char **tok = calloc((size_t)m, sizeof *tok);
  double *p = calloc((size_t)m, sizeof *p);
  cJSON *lp = cJSON_CreateObject();
  if (!tok || !p || !lp) {
    free(tok);
    free(p);
    cJSON_Delete(lp);
    return NULL;
  }
  for (int i = 0; i < n; i++) tok[i] = o->labels[i];
  if (answer_at < 0) tok[answer_at = n] = answer;
  double mass = 0.55 + 0.4 * mock_unit(11, text, 1), rest = 0;
  for (int i = 0; i < m; i++)
    if (i != answer_at) {
      double u = mock_unit(13, text, 2 + (uint64_t)i);
      p[i] = u * u + 0.01;
      rest += p[i];
    }
  for (int i = 0; i < m; i++) p[i] = i == answer_at ? mass : (1 - mass) * p[i] / rest;
  cJSON *content = cJSON_AddArrayToObject(lp, "content");
  cJSON *first = logprob_entry(answer, log(mass), true);
  cJSON_AddItemToArray(content, first);
  cJSON *tops = cJSON_GetObjectItemCaseSensitive(first, "top_logprobs");
  for (int k = 0; k < top && k < m; k++) { /* selection by mass, ties by index */
    int best = -1;
    for (int i = 0; i < m; i++)
      if (p[i] >= 0 && (best < 0 || p[i] > p[best])) best = i;
    cJSON_AddItemToArray(tops, logprob_entry(tok[best], log(p[best]), false));
    p[best] = -1;
  }
  free(tok);
  free(p);
  return lp;
}

static char *reject(int code, int *status, const char **type, char **message, const char *fmt,
                    const char *arg) {
  char buf[512];
  snprintf(buf, sizeof buf, fmt, arg);
  *status = code;
  *type = code >= 500 ? "server_error" : "invalid_request_error";
  *message = strdup(buf);
  return NULL;
}

static bool model_known(const mock_options *o, const char *model) {
  if (o->n_models == 0) return true;
  for (int i = 0; i < o->n_models; i++)
    if (strcmp(o->models[i], model) == 0) return true;
  return false;
}

/* Prompt tokens: about a token per 4 bytes of each message, plus the chat format's overhead. */
static int count_prompt_tokens(const cJSON *messages, char **last_user) {
  int tokens = 3;
  const cJSON *m;
  cJSON_ArrayForEach(m, messages) {
    char *text = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"));
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!text || !cJSON_IsString(role)) {
      free(text);
      return -1;
    }
    tokens += 4 + (int)((strlen(text) + 3) / 4);
    if (strcmp(role->valuestring, "user") == 0) {
      free(*last_user);
      *last_user = text;
    } else {
      free(text);
    }
  }
  return tokens;
}

/* --prompt-cache: the prefixes seen so far (64-bit hashes, open addressing; once full, new
 * prefixes are not remembered). */
#define PREFIX_SLOTS 8192
static uint64_t prefix_seen[PREFIX_SLOTS];
static pthread_mutex_t prefix_lock = PTHREAD_MUTEX_INITIALIZER;

static bool prefix_check_and_add(uint64_t h) {
  if (h == 0) h = 1;
  pthread_mutex_lock(&prefix_lock);
  bool seen = false;
  for (size_t i = h & (PREFIX_SLOTS - 1), n = 0; n < PREFIX_SLOTS / 2;
       i = (i + 1) & (PREFIX_SLOTS - 1), n++) {
    if (prefix_seen[i] == h) {
      seen = true;
      break;
    }
    if (prefix_seen[i] == 0) {
      prefix_seen[i] = h;
      break;
    }
  }
  pthread_mutex_unlock(&prefix_lock);
  return seen;
}

/* Prompt tokens a provider would read from its cache: the tokens before the prompt text (every
 * message but the last user message, and that message up to the text), counted as
 * count_prompt_tokens does, when the same prefix (and model) came before; at least
 * prompt_cache_min, in steps of prompt_cache_step. */
static int cached_prefix_tokens(const mock_options *o, const cJSON *model, const cJSON *messages,
                                const char *text) {
  if (!o->prompt_cache) return 0;
  uint64_t h = us_hash64(model->valuestring, strlen(model->valuestring), 7);
  int tokens = 3, n = cJSON_GetArraySize(messages), i = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, messages) {
    char *content = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"));
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!content || !cJSON_IsString(role)) {
      free(content);
      return 0;
    }
    size_t len = strlen(content);
    if (++i == n) {
      const char *at = text && *text ? strstr(content, text) : NULL;
      len = at ? (size_t)(at - content) : 0;
      tokens += 4 + (int)(len / 4);
    } else {
      tokens += 4 + (int)((len + 3) / 4);
    }
    h = us_hash64(role->valuestring, strlen(role->valuestring), h);
    h = us_hash64(content, len, h ^ 0x9e3779b97f4a7c15ULL);
    free(content);
  }
  if (tokens < o->prompt_cache_min || !prefix_check_and_add(h)) return 0;
  int step = o->prompt_cache_step > 0 ? o->prompt_cache_step : 1;
  return o->prompt_cache_min + (tokens - o->prompt_cache_min) / step * step;
}

double mock_usage_usd(const mock_options *o, const mock_usage *u) {
  double cached_price = o->price_cached < 0 ? o->price_input : o->price_cached;
  /* the same order of operations as understudy's us_teacher_call_cost */
  double input = (double)(u->prompt - u->cached) * o->price_input / 1e6;
  double cached = (double)u->cached * cached_price / 1e6;
  double output = (double)(u->completion - u->reasoning) * o->price_output / 1e6;
  double reasoning = (double)u->reasoning * o->price_output / 1e6;
  return input + cached + output + reasoning;
}

char *mock_response_build(const mock_options *o, const void *request, const char *key,
                          int *prompt_tokens, int *completion_tokens, int *status,
                          const char **error_type, char **error_message) {
  mock_usage u = {0, 0, 0, 0};
  char *body = mock_response_build_usage(o, request, key, &u, status, error_type, error_message);
  *prompt_tokens = u.prompt;
  *completion_tokens = u.completion;
  return body;
}

char *mock_response_build_usage(const mock_options *o, const void *request, const char *key,
                                mock_usage *out, int *status, const char **error_type,
                                char **error_message) {
  const cJSON *req = request;
  const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
  const cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
  if (!cJSON_IsString(model))
    return reject(400, status, error_type, error_message, "%s", "you must provide a model");
  if (!model_known(o, model->valuestring))
    return reject(404, status, error_type, error_message,
                  "The model `%s` does not exist or you do not have access to it.",
                  model->valuestring);
  if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0)
    return reject(400, status, error_type, error_message, "%s",
                  "'messages' must be a non-empty array");
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "stream")))
    return reject(400, status, error_type, error_message, "%s",
                  "this mock does not stream; send \"stream\": false");
  char *user = NULL;
  int ptok = count_prompt_tokens(messages, &user);
  if (ptok < 0 || !user) {
    free(user);
    return reject(400, status, error_type, error_message, "%s",
                  "every message needs a role and a content; one must be from the user");
  }
  char *text = mock_extract_text(user);
  int cached = cached_prefix_tokens(o, model, messages, text);
  if (cached > ptok) cached = ptok;
  char *answer = o->answer_text ? strdup(o->answer_text) : mock_selfinstruct_answer(o, user);
  if (!answer && text) answer = mock_answer_for(o, text);
  free(user);
  static atomic_long answered;
  if (answer && o->disagree_after >= 0 && atomic_fetch_add(&answered, 1) >= o->disagree_after) {
    /* a teacher that changed its mind: the label after the usual one */
    for (int k = 0; k < o->n_labels; k++)
      if (strcmp(answer, o->labels[k]) == 0) {
        free(answer);
        answer = strdup(o->labels[(k + 1) % o->n_labels]);
        break;
      }
  }
  /* response_format with a JSON schema (structured outputs): the answer as {"answer": ...} */
  const cJSON *format = cJSON_GetObjectItemCaseSensitive(req, "response_format");
  const cJSON *ftype = cJSON_GetObjectItemCaseSensitive(format, "type");
  if (answer && cJSON_IsString(ftype) && strcmp(ftype->valuestring, "json_schema") == 0) {
    cJSON *wrapped = cJSON_CreateObject();
    cJSON_AddStringToObject(wrapped, "answer", answer);
    char *printed = cJSON_PrintUnformatted(wrapped);
    cJSON_Delete(wrapped);
    free(answer);
    answer = printed ? strdup(printed) : NULL;
    cJSON_free(printed);
  }
  if (!answer) {
    free(text);
    return reject(500, status, error_type, error_message, "%s", "mock out of memory");
  }
  int ctok = (int)(strlen(answer) / 4) + 1;
  const char *finish = "stop";
  const cJSON *max = cJSON_GetObjectItemCaseSensitive(req, "max_completion_tokens");
  if (!cJSON_IsNumber(max)) max = cJSON_GetObjectItemCaseSensitive(req, "max_tokens");
  if (cJSON_IsNumber(max) && max->valuedouble >= 1 && ctok > (int)max->valuedouble) {
    ctok = (int)max->valuedouble;
    answer[utf8_cut(answer, (size_t)ctok * 4)] = '\0';
    finish = "length";
  }
  /* reasoning happens before the answer and shares max_tokens with it */
  int reasoning = o->reasoning_tokens;
  if (cJSON_IsNumber(max) && max->valuedouble >= 1 && ctok + reasoning > (int)max->valuedouble)
    reasoning = (int)max->valuedouble - ctok;
  if (reasoning < 0) reasoning = 0;
  ctok += reasoning;
  if (o->answer_bytes > 0 && strlen(answer) < (size_t)o->answer_bytes) {
    size_t have = strlen(answer), want = (size_t)o->answer_bytes;
    char *padded = realloc(answer, want + 1);
    if (!padded) {
      free(answer);
      free(text);
      return reject(500, status, error_type, error_message, "%s", "mock out of memory");
    }
    for (size_t i = have; i < want; i++) padded[i] = i % 8 == 7 ? ' ' : 'x';
    padded[want] = '\0';
    answer = padded;
  }

  cJSON *o_resp = cJSON_CreateObject();
  char id[64];
  snprintf(id, sizeof id, "chatcmpl-mock%.24s", key);
  cJSON_AddStringToObject(o_resp, "id", id);
  cJSON_AddStringToObject(o_resp, "object", "chat.completion");
  cJSON_AddNumberToObject(o_resp, "created", (double)time(NULL));
  cJSON_AddStringToObject(o_resp, "model", model->valuestring);
  cJSON_AddStringToObject(o_resp, "system_fingerprint", "fp_us_mock");
  cJSON *choices = cJSON_AddArrayToObject(o_resp, "choices");
  cJSON *choice = cJSON_CreateObject();
  cJSON_AddItemToArray(choices, choice);
  cJSON_AddNumberToObject(choice, "index", 0);
  cJSON *msg = cJSON_AddObjectToObject(choice, "message");
  cJSON_AddStringToObject(msg, "role", "assistant");
  cJSON_AddStringToObject(msg, "content", answer);
  cJSON_AddNullToObject(msg, "refusal");
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "logprobs"))) {
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(req, "top_logprobs");
    int k = cJSON_IsNumber(top) ? (int)top->valuedouble : 0;
    k = k < 0 ? 0 : k > 20 ? 20 : k;
    cJSON *lp = logprobs_build(o, text, answer, k);
    if (lp)
      cJSON_AddItemToObject(choice, "logprobs", lp);
    else
      cJSON_AddNullToObject(choice, "logprobs");
  } else {
    cJSON_AddNullToObject(choice, "logprobs");
  }
  cJSON_AddStringToObject(choice, "finish_reason", finish);
  cJSON *usage = cJSON_AddObjectToObject(o_resp, "usage");
  cJSON_AddNumberToObject(usage, "prompt_tokens", ptok);
  cJSON_AddNumberToObject(usage, "completion_tokens", ctok);
  cJSON_AddNumberToObject(usage, "total_tokens", ptok + ctok);
  cJSON *pdetails = cJSON_AddObjectToObject(usage, "prompt_tokens_details");
  cJSON_AddNumberToObject(pdetails, "cached_tokens", cached);
  cJSON *cdetails = cJSON_AddObjectToObject(usage, "completion_tokens_details");
  cJSON_AddNumberToObject(cdetails, "reasoning_tokens", reasoning);
  char *body = cJSON_PrintUnformatted(o_resp);
  cJSON_Delete(o_resp);
  free(text);
  free(answer);
  out->prompt = ptok;
  out->completion = ctok;
  out->cached = cached;
  out->reasoning = reasoning;
  if (!body) return reject(500, status, error_type, error_message, "%s", "mock out of memory");
  *status = 200;
  return body;
}
