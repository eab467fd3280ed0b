/* The student route's fast path: a request shaped exactly like the distilled task (a JSON object
 * whose "messages" are objects with string "role" and "content") is recognised by one pass over
 * the body, with no parse tree. Anything it is not sure of (an escape it does not decode, a
 * content array, a number cJSON would read differently, not the task) is left to the full parser
 * (cJSON, then us__route_task_text), so the answer never depends on which path read the body:
 * what this file accepts, cJSON accepts with the same model, text and stream flags (the fuzz
 * target fuzz_serve checks both agree). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "serve/serve_int.h"

#define FAST_MAX_DEPTH 16  /* deeper values go to the full parser */
#define FAST_MAX_NUMBER 32 /* cJSON reads at most 63 characters of a number */

typedef struct scan {
  const char *p, *end;
  char *out; /* where the next decoded string goes: each is at most its raw length */
} scan;

typedef struct fast_message {
  const char *role, *content;
} fast_message;

static void skip_space(scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static bool take(scan *s, char c) {
  skip_space(s);
  if (s->p >= s->end || *s->p != c) return false;
  s->p++;
  return true;
}

static bool peek(scan *s, char c) {
  skip_space(s);
  return s->p < s->end && *s->p == c;
}

#define BYTES(c) (0x0101010101010101ULL * (c))

/* Whether one of the eight bytes of w is '"', '\\' or below 0x20 (exact: the classic zero-byte
 * tests can only misplace a hit, never invent or lose one). */
static bool has_special(uint64_t w) {
  uint64_t quote = w ^ BYTES(0x22), backslash = w ^ BYTES(0x5c);
  uint64_t control = (w - BYTES(0x20)) & ~w;
  uint64_t zero = ((quote - BYTES(1)) & ~quote) | ((backslash - BYTES(1)) & ~backslash);
  return ((control | zero) & BYTES(0x80)) != 0;
}

/* A string decoded (NUL-terminated) into s->out. False for \u escapes (cJSON's surrogate rules
 * and an escaped NUL are the full parser's business), raw control characters and bad escapes. */
static bool string(scan *s, const char **value) {
  skip_space(s);
  if (s->p >= s->end || *s->p != '"') return false;
  s->p++;
  char *o = s->out, *start = s->out;
  while (s->p < s->end) {
    /* eight plain bytes at a time: most of a request is text without a quote, a backslash or
     * a control character */
    while (s->end - s->p >= 8) {
      uint64_t w;
      memcpy(&w, s->p, 8);
      if (has_special(w)) break;
      memcpy(o, &w, 8);
      o += 8;
      s->p += 8;
    }
    if (s->p >= s->end) break;
    unsigned char c = (unsigned char)*s->p++;
    if (c == '"') {
      *o++ = '\0';
      s->out = o;
      *value = start;
      return true;
    }
    if (c < 0x20) return false;
    if (c != '\\') {
      *o++ = (char)c;
      continue;
    }
    if (s->p >= s->end) return false;
    switch (*s->p++) {
      case '"':
        *o++ = '"';
        break;
      case '\\':
        *o++ = '\\';
        break;
      case '/':
        *o++ = '/';
        break;
      case 'b':
        *o++ = '\b';
        break;
      case 'f':
        *o++ = '\f';
        break;
      case 'n':
        *o++ = '\n';
        break;
      case 'r':
        *o++ = '\r';
        break;
      case 't':
        *o++ = '\t';
        break;
      default:
        return false;
    }
  }
  return false;
}

static bool digits(scan *s) {
  const char *from = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  return s->p > from;
}

/* A number in JSON's strict grammar, short enough that cJSON reads all of it. */
static bool number(scan *s) {
  const char *from = s->p;
  if (s->p < s->end && *s->p == '-') s->p++;
  if (s->p < s->end && *s->p == '0')
    s->p++;
  else if (!digits(s))
    return false;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    if (!digits(s)) return false;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    if (!digits(s)) return false;
  }
  return s->p - from <= FAST_MAX_NUMBER;
}

static bool literal(scan *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return false;
  s->p += n;
  return true;
}

static bool value(scan *s, int depth, bool *is_true);

/* {"key": value, ...}: on_key (when not NULL) reads the value of each key itself. */
static bool object(scan *s, int depth, bool (*on_key)(scan *, const char *, int, void *),
                   void *user) {
  if (depth > FAST_MAX_DEPTH || !take(s, '{')) return false;
  if (take(s, '}')) return true;
  do {
    const char *key;
    if (!string(s, &key) || !take(s, ':')) return false;
    if (on_key ? !on_key(s, key, depth + 1, user) : !value(s, depth + 1, NULL)) return false;
  } while (take(s, ','));
  return take(s, '}');
}

static bool value(scan *s, int depth, bool *is_true) {
  if (is_true) *is_true = false;
  skip_space(s);
  if (s->p >= s->end || depth > FAST_MAX_DEPTH) return false;
  const char *ignored;
  switch (*s->p) {
    case '{':
      return object(s, depth, NULL, NULL);
    case '[':
      s->p++;
      if (take(s, ']')) return true;
      do {
        if (!value(s, depth + 1, NULL)) return false;
      } while (take(s, ','));
      return take(s, ']');
    case '"':
      return string(s, &ignored);
    case 't':
      return literal(s, "true") && (!is_true || (*is_true = true));
    case 'f':
      return literal(s, "false");
    case 'n':
      return literal(s, "null");
    default:
      return number(s);
  }
}

/* One message: the first "role" and "content", both strings (else the full parser decides). */
static bool message_key(scan *s, const char *key, int depth, void *user) {
  fast_message *m = user;
  if (strcmp(key, "role") == 0 && !m->role) return string(s, &m->role);
  if (strcmp(key, "content") == 0 && !m->content) return string(s, &m->content);
  return value(s, depth, NULL);
}

typedef struct fast_request {
  const char *model;
  bool has_messages, has_stream, has_options, has_include_usage;
  int n_messages;
  fast_message messages[2];
  bool stream, include_usage;
} fast_request;

static bool options_key(scan *s, const char *key, int depth, void *user) {
  fast_request *r = user;
  bool first = strcmp(key, "include_usage") == 0 && !r->has_include_usage;
  bool is_true = false;
  if (!value(s, depth, &is_true)) return false;
  if (first) {
    r->has_include_usage = true;
    r->include_usage = is_true;
  }
  return true;
}

static bool messages(scan *s, int depth, fast_request *r) {
  if (!take(s, '[')) return false;
  if (take(s, ']')) return false; /* empty: the full parser answers 400 */
  do {
    fast_message m = {NULL, NULL};
    if (!peek(s, '{') || !object(s, depth + 1, message_key, &m)) return false;
    if (!m.role || !m.content || r->n_messages == 2) return false; /* not the task's shape */
    r->messages[r->n_messages++] = m;
  } while (take(s, ','));
  return take(s, ']');
}

static bool request_key(scan *s, const char *key, int depth, void *user) {
  fast_request *r = user;
  if (strcmp(key, "model") == 0 && !r->model) return string(s, &r->model);
  if (strcmp(key, "messages") == 0 && !r->has_messages) {
    r->has_messages = true;
    return messages(s, depth, r);
  }
  if (strcmp(key, "stream") == 0 && !r->has_stream) {
    r->has_stream = true;
    return value(s, depth, &r->stream);
  }
  if (strcmp(key, "stream_options") == 0 && !r->has_options) {
    /* cJSON finds include_usage only in an object; the first stream_options counts */
    r->has_options = true;
    return peek(s, '{') ? object(s, depth, options_key, r) : value(s, depth, NULL);
  }
  return value(s, depth, NULL);
}

static bool role_is(const char *role, const char *want) {
  return strcmp(role, want) == 0;
}

bool us__route_fast_task(const us__server *s, const char *body, size_t len, us__fast_task *out) {
  memset(out, 0, sizeof *out);
  char *scratch = malloc(len + 1);
  if (!scratch) return false;
  scan sc = {body, body + len, scratch};
  fast_request r;
  memset(&r, 0, sizeof r);
  bool ok = object(&sc, 0, request_key, &r);
  skip_space(&sc);
  ok = ok && sc.p == sc.end && r.model && r.has_messages;
  const us_config *c = s->config;
  ok = ok && (strcmp(r.model, c->teacher.model) == 0 ||
              (c->serve.model && strcmp(r.model, c->serve.model) == 0));
  bool has_system = c->task.instructions && c->task.instructions[0];
  ok = ok && r.n_messages == (has_system ? 2 : 1);
  if (ok && has_system) {
    const fast_message *sys = &r.messages[0];
    ok = (role_is(sys->role, "system") || role_is(sys->role, "developer")) &&
         strcmp(sys->content, c->task.instructions) == 0;
  }
  const fast_message *user = ok ? &r.messages[r.n_messages - 1] : NULL;
  if (ok && role_is(user->role, "user")) {
    out->text = us__route_match(s, user->content);
    out->model = out->text ? us_strdup(r.model) : NULL;
  }
  free(scratch);
  if (!out->text || !out->model) {
    free(out->text);
    free(out->model);
    memset(out, 0, sizeof *out);
    return false;
  }
  out->stream = r.stream;
  out->include_usage = r.include_usage;
  return true;
}
