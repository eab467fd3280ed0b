/* Fuzz target: what `understudy serve` does with a client's POST /v1/chat/completions body
 * (serve/route.c), before any model or network is involved. The input is the body: parsed as
 * the server parses it, its stream flags read, and its {text} recovered from the task template
 * (us__route_task_text, us_serve_match_template) for a classify task with three labels; the
 * recovered text and the client's model name then go through the writers that echo them back
 * (us__route_completion, plain and SSE; us__route_error_body), and the body itself through the
 * SSE rewriter of a teacher's answer (us__route_stream_from_body). Properties: a recovered text
 * renders the user message back byte for byte, every plain JSON written parses with the
 * content and model it was given, and the fast path (us__route_fast_task) never accepts a body
 * the full parser reads differently; the prepared matcher (us__route_match) agrees with
 * us_serve_match_template.
 *
 * An input starting with "T:" fuzzes the template matcher alone: the rest up to the first
 * newline is the template, what follows is the user message. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <string.h>

#include "core/buf.h"
#include "fuzz_util.h"
#include "serve/serve_int.h"

#define N_LABELS 3

static us_config config;
static us__server server;

static void setup(void) {
  static bool done;
  if (done) return;
  done = true;
  static char spam[] = "spam", ham[] = "ham", not_sure[] = "not sure";
  static char *labels[N_LABELS] = {spam, ham, not_sure};
  static char model[] = "mock-teacher", alias[] = "student",
              instructions[] = "Answer with one label.";
  static char template_text[] =
      "Classify this message into one of: {labels}.\nMessage: {text}\nLabel:";
  static char joined[] = "spam, ham, not sure";
  memset(&config, 0, sizeof config);
  config.teacher.model = model;
  config.serve.model = alias;
  config.task.type = US_TASK_CLASSIFY;
  config.task.labels = labels;
  config.task.n_labels = N_LABELS;
  config.task.instructions = instructions;
  config.task.template = template_text;
  memset(&server, 0, sizeof server);
  server.config = &config;
  server.labels_joined = joined;
  if (us__route_prepare(&server)) abort();
}

/* template with {labels} and every {text} filled, to check a match against. */
static char *render(const char *template_text, const char *labels, const char *text) {
  us_buf b;
  us_buf_init(&b, 0);
  us_buf_puts(&b, ""); /* an empty template still gives "" */
  for (const char *t = template_text; *t;) {
    if (strncmp(t, "{text}", 6) == 0) {
      us_buf_puts(&b, text);
      t += 6;
    } else if (strncmp(t, "{labels}", 8) == 0) {
      us_buf_puts(&b, labels);
      t += 8;
    } else {
      us_buf_append(&b, t, 1);
      t++;
    }
  }
  return us_buf_steal(&b);
}

/* The server's prepared matcher (template split once at its {text}) finds what the general
 * one finds. */
static void check_prepared_match(const char *template_text, const char *labels, const char *message,
                                 const char *expected) {
  us_config c;
  us__server s;
  memset(&c, 0, sizeof c);
  memset(&s, 0, sizeof s);
  c.task.template = (char *)template_text;
  s.config = &c;
  s.labels_joined = (char *)labels;
  if (us__route_prepare(&s)) return;
  char *got = us__route_match(&s, message);
  if ((got == NULL) != (expected == NULL) || (got && strcmp(got, expected) != 0)) abort();
  free(got);
  us__route_unprepare(&s);
}

static void check_match(const char *template_text, const char *labels, const char *message) {
  char *text = us_serve_match_template(template_text, labels, message);
  check_prepared_match(template_text, labels, message, text);
  if (!text) return;
  if (strlen(text) > strlen(message)) abort();
  char *again = render(template_text, labels, text);
  if (again && strcmp(again, message) != 0) abort();
  free(again);
  free(text);
}

/* A plain completion must parse back with the content and model it was written with. */
static void check_completion(const char *model, const char *content) {
  char *body = us__route_completion("chatcmpl-fuzz", model, 1.7e9, content, 3, 1, false, false);
  if (!body) return;
  cJSON *o = cJSON_Parse(body);
  if (!o) abort();
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model");
  const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
  if (!cJSON_IsString(m) || strcmp(m->valuestring, model) != 0) abort();
  if (!cJSON_IsString(c) || strcmp(c->valuestring, content) != 0) abort();
  cJSON_Delete(o);
  free(body);
  char *sse = us__route_completion("chatcmpl-fuzz", model, 1.7e9, content, 3, 1, true, true);
  if (sse && !strstr(sse, "data: [DONE]\n\n")) abort();
  free(sse);
  char *err = us__route_error_body(content, "invalid_request_error", model);
  if (err) {
    cJSON *e = cJSON_Parse(err);
    if (!e) abort();
    cJSON_Delete(e);
  }
  free(err);
}

/* The fast path (route_fast.c) may decline anything, but what it accepts the full parser
 * accepts as the same task: same text, model and stream flags. text is NULL when the full
 * parser found no task (or no object). */
static void check_fast_path(const uint8_t *data, size_t size, const char *text, const char *model,
                            bool stream, bool include_usage) {
  us__fast_task f;
  if (!us__route_fast_task(&server, (const char *)data, size, &f)) return;
  if (!text || !model || strcmp(f.text, text) != 0 || strcmp(f.model, model) != 0 ||
      f.stream != stream || f.include_usage != include_usage)
    abort();
  free(f.text);
  free(f.model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  setup();
  if (size >= 2 && data[0] == 'T' && data[1] == ':') {
    char *s = fuzz_cstring(data + 2, size - 2);
    if (!s) return 0;
    char *nl = strchr(s, '\n');
    if (nl) {
      *nl = '\0';
      check_match(s, "a, b", nl + 1);
    }
    free(s);
    return 0;
  }
  /* the server parses exactly the bytes it received, NULs included */
  cJSON *req = cJSON_ParseWithLength((const char *)data, size);
  if (req && cJSON_IsObject(req)) {
    bool stream = false, include_usage = false;
    us__route_stream_flags(req, &stream, &include_usage);
    char *text = us__route_task_text(&server, req);
    if (text) {
      char *again = render(config.task.template, server.labels_joined, text);
      const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
      const cJSON *user = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
      const cJSON *content = cJSON_GetObjectItemCaseSensitive(user, "content");
      /* a string content must come back exactly (array parts are joined first) */
      if (again && cJSON_IsString(content) && strcmp(again, content->valuestring) != 0) abort();
      free(again);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    if (cJSON_IsString(model)) check_completion(model->valuestring, text ? text : "");
    check_fast_path(data, size, text, cJSON_IsString(model) ? model->valuestring : NULL, stream,
                    include_usage);
    free(text);
  } else {
    check_fast_path(data, size, NULL, NULL, false, false);
  }
  cJSON_Delete(req);
  /* the same bytes as a teacher's answer to stream back */
  char *body = fuzz_cstring(data, size);
  if (!body) return 0;
  char *sse = us__route_stream_from_body(body, size % 2 == 0);
  if (sse && !strstr(sse, "data: [DONE]\n\n")) abort();
  free(sse);
  free(body);
  return 0;
}
