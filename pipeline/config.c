/* The project configuration (pipeline/config.h): one table lists every key and its place in
 * us_config, and drives checking, "did you mean" suggestions and error key paths. A key backed by
 * a module's parameter (PKEY) takes its type and range from that module's table (core/params.h),
 * and every module's own *_check runs once the file is read, so a setting's range and default
 * live only in the module that uses it. */
#include "pipeline/config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/params.h"
#include "core/utf8.h"
#include "distill/request.h"

#define CONFIG_MAX_BYTES (16u << 20)
#define JSON_MAX_SAFE_INT 9007199254740991.0 /* 2^53 - 1: larger integers lose precision */
#define NO_MAX 1e300
#define KEY_PATH_MAX 512 /* longest key path in a message, "data.inputs[3].format" and the like */

static const char *const DEFAULT_CLASSIFY_INSTRUCTIONS =
    "You are a careful classifier. Reply with exactly one label from the list.";
static const char *const DEFAULT_CLASSIFY_TEMPLATE =
    "Classify this message into one of: {labels}.\nAnswer with the label only.\n\nMessage:\n{text}";
static const char *const DEFAULT_GENERATE_INSTRUCTIONS = "Answer concisely.";
static const char *const DEFAULT_GENERATE_TEMPLATE = "{text}";

/* ---- the key table --------------------------------------------------------------------------- */

typedef enum {
  K_SECTION,   /* an object holding more keys */
  K_STRING,    /* char * */
  K_NAME,      /* char *, [A-Za-z0-9_.-]+ */
  K_ENV_NAME,  /* char *, an environment variable name */
  K_URL,       /* char *, http:// or https:// */
  K_PATH,      /* char *, resolved against the config folder */
  K_TASK_TYPE, /* us_task_type */
  K_INT,       /* int */
  K_DOUBLE,    /* double */
  K_BOOL,      /* bool */
  K_U64,       /* uint64_t */
  K_SEED,      /* teacher.seed: int64_t plus has_seed */
  K_LABELS,    /* task.labels */
  K_INPUTS,    /* data.inputs */
  K_HEADERS,   /* teacher.headers */
  K_PARAM      /* a module's parameter: kind and range from its table */
} key_kind;

enum {
  F_REQUIRED = 1, /* must be present */
  F_NULLABLE = 2, /* null means "none" (or the default) */
  F_MIN_OPEN = 4, /* the minimum itself is excluded */
  F_NONEMPTY = 8  /* strings: "" refused */
};

typedef const us_param *(*param_table_fn)(size_t *n);

typedef struct key_spec {
  const char *path;
  key_kind kind;
  size_t offset; /* into us_config */
  double min, max;
  unsigned flags;
  param_table_fn table; /* K_PARAM: the module's table, and the field's name in it */
  const char *field;
} key_spec;

#define SECTION(p) \
  { p, K_SECTION, 0, 0, 0, 0, NULL, NULL }
#define KEY(p, kind, member, lo, hi, fl) \
  { p, kind, offsetof(us_config, member), lo, hi, fl, NULL, NULL }
/* A key stored in member whose kind and range are field's in the module's table. */
#define PKEY(p, member, table_fn, field_name, fl) \
  { p, K_PARAM, offsetof(us_config, member), 0, 0, fl, table_fn, field_name }
/* A key of its own kind (a string) that a module's check names by field_name, which is not in
 * the module's numeric table (student.preset is us_lm_train_params' preset). */
#define FKEY(p, kind, member, table_fn, field_name, fl) \
  { p, kind, offsetof(us_config, member), 0, 0, fl, table_fn, field_name }

static const key_spec KEYS[] = {
    KEY("name", K_NAME, name, 0, 0, F_REQUIRED),
    KEY("output", K_PATH, output, 0, 0, F_NULLABLE | F_NONEMPTY),
    SECTION("task"),
    KEY("task.type", K_TASK_TYPE, task.type, 0, 0, 0),
    KEY("task.labels", K_LABELS, task.labels, 0, 0, 0),
    KEY("task.instructions", K_STRING, task.instructions, 0, 0, 0),
    KEY("task.template", K_STRING, task.template, 0, 0, F_NONEMPTY),
    SECTION("data"),
    KEY("data.inputs", K_INPUTS, data.inputs, 0, 0, F_REQUIRED),
    KEY("data.text_field", K_STRING, data.text_field, 0, 0, F_NONEMPTY),
    KEY("data.label_field", K_STRING, data.label_field, 0, 0, F_NULLABLE | F_NONEMPTY),
    KEY("data.id_field", K_STRING, data.id_field, 0, 0, F_NULLABLE | F_NONEMPTY),
    PKEY("data.test_fraction", data.test_fraction, us_prompts_param_table, "test_fraction", 0),
    PKEY("data.seed", data.seed, us_prompts_param_table, "seed", 0),
    PKEY("data.chunk_chars", data.chunk_chars, us_prompts_param_table, "chunk_chars", 0),
    PKEY("data.repair_utf8", data.repair_utf8, us_prompts_param_table, "repair_utf8", 0),
    PKEY("data.questions_per_chunk", data.questions_per_chunk, us_prompts_param_table,
         "questions_per_chunk", 0),
    PKEY("data.dedupe_near", data.dedupe_near, us_prompts_param_table, "dedupe_near", 0),
    KEY("data.question_template", K_STRING, data.question_template, 0, 0, F_NONEMPTY),
    KEY("data.answer_template", K_STRING, data.answer_template, 0, 0, F_NONEMPTY),
    SECTION("teacher"),
    KEY("teacher.base_url", K_URL, teacher.base_url, 0, 0, 0),
    KEY("teacher.model", K_STRING, teacher.model, 0, 0, F_REQUIRED | F_NONEMPTY),
    KEY("teacher.api_key_env", K_ENV_NAME, teacher.api_key_env, 0, 0, 0),
    KEY("teacher.headers", K_HEADERS, teacher.headers, 0, 0, 0),
    PKEY("teacher.concurrency", teacher.concurrency, us_teacher_param_table, "concurrency", 0),
    PKEY("teacher.window", teacher.window, us_teacher_param_table, "window", 0),
    PKEY("teacher.requests_per_minute", teacher.requests_per_minute, us_teacher_param_table,
         "requests_per_minute", 0),
    PKEY("teacher.tokens_per_minute", teacher.tokens_per_minute, us_teacher_param_table,
         "tokens_per_minute", 0),
    PKEY("teacher.timeout_s", teacher.timeout_s, us_teacher_param_table, "timeout_s", 0),
    PKEY("teacher.max_retries", teacher.max_retries, us_teacher_param_table, "max_retries", 0),
    PKEY("teacher.temperature", teacher.temperature, us_teacher_param_table, "temperature", 0),
    PKEY("teacher.max_tokens", teacher.max_tokens, us_teacher_param_table, "max_tokens", 0),
    KEY("teacher.seed", K_SEED, teacher.seed, -JSON_MAX_SAFE_INT, JSON_MAX_SAFE_INT, F_NULLABLE),
    PKEY("teacher.logprobs", teacher.logprobs, us_teacher_param_table, "logprobs", 0),
    PKEY("teacher.top_logprobs", teacher.top_logprobs, us_teacher_param_table, "top_logprobs", 0),
    PKEY("teacher.structured", teacher.structured, us_teacher_param_table, "structured", 0),
    PKEY("teacher.budget_usd", teacher.budget_usd, us_teacher_param_table, "budget_usd", 0),
    SECTION("teacher.price"),
    PKEY("teacher.price.input_per_mtok", teacher.price_input_per_mtok, us_teacher_param_table,
         "price_input_per_mtok", 0),
    PKEY("teacher.price.output_per_mtok", teacher.price_output_per_mtok, us_teacher_param_table,
         "price_output_per_mtok", 0),
    PKEY("teacher.price.cached_input_per_mtok", teacher.price_cached_input_per_mtok,
         us_teacher_param_table, "price_cached_input_per_mtok", 0),
    PKEY("teacher.price.batch_discount", teacher.price_batch_discount, us_teacher_param_table,
         "price_batch_discount", 0),
    PKEY("teacher.params_b", teacher.params_b, us_teacher_param_table, "params_b", 0),
    FKEY("teacher.mode", K_STRING, teacher.mode, us_teacher_param_table, "mode", F_NONEMPTY),
    FKEY("teacher.batch_retry", K_STRING, teacher.batch_retry, us_teacher_param_table,
         "batch_retry", F_NONEMPTY),
    PKEY("teacher.batch_max_requests", teacher.batch_max_requests, us_teacher_param_table,
         "batch_max_requests", 0),
    PKEY("teacher.batch_poll_s", teacher.batch_poll_s, us_teacher_param_table, "batch_poll_s", 0),
    SECTION("label"),
    FKEY("label.strategy", K_STRING, label.strategy, us_active_param_table, "strategy", F_NONEMPTY),
    PKEY("label.seed_prompts", label.seed_prompts, us_active_param_table, "seed_prompts", 0),
    PKEY("label.round_prompts", label.round_prompts, us_active_param_table, "round_prompts", 0),
    PKEY("label.max_prompts", label.max_prompts, us_active_param_table, "max_prompts", 0),
    PKEY("label.min_gain", label.min_gain, us_active_param_table, "min_gain", 0),
    PKEY("label.diversity", label.diversity, us_active_param_table, "diversity", 0),
    PKEY("label.random_rounds", label.random_rounds, us_active_param_table, "random_rounds", 0),
    SECTION("student"),
    PKEY("student.dim", student.classifier.dim, us_classifier_param_table, "dim", 0),
    PKEY("student.word_ngrams", student.classifier.word_ngrams, us_classifier_param_table,
         "word_ngrams", 0),
    PKEY("student.minn", student.classifier.minn, us_classifier_param_table, "minn", 0),
    PKEY("student.maxn", student.classifier.maxn, us_classifier_param_table, "maxn", 0),
    PKEY("student.buckets", student.classifier.buckets, us_classifier_param_table, "buckets", 0),
    PKEY("student.hidden", student.classifier.hidden, us_classifier_param_table, "hidden", 0),
    PKEY("student.dropout", student.classifier.dropout, us_classifier_param_table, "dropout", 0),
    PKEY("student.epochs", student.classifier.epochs, us_classifier_param_table, "epochs", 0),
    PKEY("student.lr", student.classifier.lr, us_classifier_param_table, "lr", 0),
    PKEY("student.kd_temperature", student.classifier.kd_temperature, us_classifier_param_table,
         "kd_temperature", 0),
    PKEY("student.label_smoothing", student.classifier.label_smoothing, us_classifier_param_table,
         "label_smoothing", 0),
    KEY("student.validation_fraction", K_DOUBLE, student.validation_fraction, 0, 0.5, 0),
    PKEY("student.patience", student.classifier.patience, us_classifier_param_table, "patience", 0),
    PKEY("student.threads", student.classifier.threads, us_classifier_param_table, "threads", 0),
    PKEY("student.seed", student.classifier.seed, us_classifier_param_table, "seed", 0),
    PKEY("student.quantize", student.classifier.quantize, us_classifier_param_table, "quantize", 0),
    PKEY("student.calibrate", student.classifier.calibrate, us_classifier_param_table, "calibrate",
         0),
    PKEY("student.min_count", student.classifier.min_count, us_classifier_param_table, "min_count",
         0),
    PKEY("student.min_count_ngram", student.classifier.min_count_ngram, us_classifier_param_table,
         "min_count_ngram", 0),
    PKEY("student.quantize_bits", student.classifier.quantize_bits, us_classifier_param_table,
         "quantize_bits", 0),
    PKEY("student.lowercase", student.classifier.lowercase, us_classifier_param_table, "lowercase",
         0),
    PKEY("student.punctuation", student.classifier.punctuation, us_classifier_param_table,
         "punctuation", 0),
    PKEY("student.fold_digits", student.classifier.fold_digits, us_classifier_param_table,
         "fold_digits", 0),
    PKEY("student.fold_urls", student.classifier.fold_urls, us_classifier_param_table, "fold_urls",
         0),
    PKEY("student.class_weight", student.classifier.class_weight, us_classifier_param_table,
         "class_weight", 0),
    PKEY("student.nb", student.classifier.nb, us_classifier_param_table, "nb", 0),
    PKEY("student.autotune", student.classifier.autotune, us_classifier_param_table, "autotune", 0),
    PKEY("student.autotune_seconds", student.classifier.autotune_seconds, us_classifier_param_table,
         "autotune_seconds", 0),
    FKEY("student.preset", K_STRING, student.lm.preset, us_lm_train_param_table, "preset",
         F_NULLABLE),
    PKEY("student.layers", student.lm.layers, us_lm_train_param_table, "layers", 0),
    PKEY("student.lm_dim", student.lm.dim, us_lm_train_param_table, "dim", 0),
    PKEY("student.heads", student.lm.heads, us_lm_train_param_table, "heads", 0),
    PKEY("student.context", student.lm.context, us_lm_train_param_table, "context", 0),
    PKEY("student.vocab_size", student.lm.vocab_size, us_lm_train_param_table, "vocab_size", 0),
    PKEY("student.steps", student.lm.steps, us_lm_train_param_table, "steps", 0),
    PKEY("student.train_minutes", student.lm.train_minutes, us_lm_train_param_table,
         "train_minutes", 0),
    PKEY("student.batch_size", student.lm.batch_size, us_lm_train_param_table, "batch_size", 0),
    PKEY("student.warmup_steps", student.lm.warmup_steps, us_lm_train_param_table, "warmup_steps",
         0),
    PKEY("student.checkpoint_every", student.lm.checkpoint_every, us_lm_train_param_table,
         "checkpoint_every", 0),
    PKEY("student.lm_lr", student.lm.lr, us_lm_train_param_table, "lr", 0),
    PKEY("student.weight_decay", student.lm.weight_decay, us_lm_train_param_table, "weight_decay",
         0),
    PKEY("student.grad_clip", student.lm.grad_clip, us_lm_train_param_table, "grad_clip", 0),
    FKEY("student.init", K_PATH, student.lm.init, us_lm_train_param_table, "init",
         F_NULLABLE | F_NONEMPTY),
    PKEY("student.lora_rank", student.lm.lora_rank, us_lm_train_param_table, "lora_rank", 0),
    PKEY("student.lora_alpha", student.lm.lora_alpha, us_lm_train_param_table, "lora_alpha", 0),
    SECTION("cost"),
    PKEY("cost.cpu_usd_per_hour", cost.cpu_usd_per_hour, us_cost_param_table, "cpu_usd_per_hour",
         0),
    PKEY("cost.requests_per_month", cost.requests_per_month, us_cost_param_table,
         "requests_per_month", 0),
    SECTION("quality"),
    PKEY("quality.target_agreement", quality.target_agreement, us_quality_param_table,
         "target_agreement", 0),
    PKEY("quality.confidence", quality.confidence, us_quality_param_table, "confidence", 0),
    SECTION("serve"),
    PKEY("serve.threads", serve.threads, us_serve_param_table, "threads", 0),
    PKEY("serve.threshold", serve.threshold, us_serve_param_table, "threshold", 0),
    PKEY("serve.audit_rate", serve.audit_rate, us_serve_param_table, "audit_rate", 0),
    PKEY("serve.drift_min_audits", serve.drift_min_audits, us_serve_param_table, "drift_min_audits",
         0),
    PKEY("serve.log_prompts", serve.log_prompts, us_serve_param_table, "log_prompts", 0),
    PKEY("serve.max_body_bytes", serve.max_body_bytes, us_serve_param_table, "max_body_bytes", 0),
    PKEY("serve.max_tokens", serve.max_tokens, us_serve_param_table, "max_tokens", 0),
    PKEY("serve.reload_check_s", serve.reload_check_s, us_serve_param_table, "reload_check_s", 0),
    KEY("serve.model", K_STRING, serve.model, 0, 0, F_NULLABLE | F_NONEMPTY),
    FKEY("serve.on_drift", K_STRING, serve.on_drift, us_serve_param_table, "on_drift", 0),
    KEY("serve.api_keys_env", K_ENV_NAME, serve.api_keys_env, 0, 0, F_NULLABLE),
};
#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

/* The keys of one data.inputs object. */
static const char *const INPUT_KEYS[] = {"path", "split", "format"};
static const char *const INPUT_FORMATS[] = {"jsonl", "csv", "tsv", "text", "docs"};

/* ---- defaults -------------------------------------------------------------------------------- */

/* Defaults that depend on task.type; applied by us_config_defaults (classify) and again by
 * us_config_load for whatever the file left unset. */
static void set_string(char **slot, const char *value) {
  free(*slot);
  *slot = us_strdup(value);
}

void us_config_defaults(us_config *c) {
  memset(c, 0, sizeof *c);
  c->task.type = US_TASK_CLASSIFY;
  set_string(&c->task.instructions, DEFAULT_CLASSIFY_INSTRUCTIONS);
  set_string(&c->task.template, DEFAULT_CLASSIFY_TEMPLATE);

  us_prompts_params_defaults(&c->data); /* label_field stays NULL: "label" when present */
  set_string(&c->data.text_field, US_PROMPTS_DEFAULT_TEXT_FIELD);
  set_string(&c->data.id_field, US_PROMPTS_DEFAULT_ID_FIELD);
  set_string(&c->data.question_template, US_PROMPTS_DEFAULT_QUESTION_TEMPLATE);
  set_string(&c->data.answer_template, US_PROMPTS_DEFAULT_ANSWER_TEMPLATE);

  us_teacher_params_defaults(&c->teacher);
  set_string(&c->teacher.base_url, US_TEACHER_DEFAULT_BASE_URL);
  set_string(&c->teacher.api_key_env, US_TEACHER_DEFAULT_API_KEY_ENV);
  set_string(&c->teacher.mode, US_TEACHER_DEFAULT_MODE);
  set_string(&c->teacher.batch_retry, US_TEACHER_DEFAULT_BATCH_RETRY);

  us_active_params_defaults(&c->label);
  set_string(&c->label.strategy, US_ACTIVE_DEFAULT_STRATEGY);

  us_classifier_params_defaults(&c->student.classifier);
  us_lm_train_params_defaults(&c->student.lm);
  c->student.validation_fraction = 0.1;

  us_cost_params_defaults(&c->cost);
  us_quality_params_defaults(&c->quality);
  us_serve_params_defaults(&c->serve);
  set_string(&c->serve.on_drift, US_SERVE_DEFAULT_ON_DRIFT);
}

void us_config_free(us_config *c) {
  if (!c) return;
  free(c->path);
  free(c->dir);
  free(c->name);
  free(c->output);
  for (int i = 0; i < c->task.n_labels; i++) free(c->task.labels[i]);
  free(c->task.labels);
  free(c->task.instructions);
  free(c->task.template);
  for (int i = 0; i < c->data.n_inputs; i++) {
    free(c->data.inputs[i].path);
    free(c->data.inputs[i].format);
  }
  free(c->data.inputs);
  free(c->data.text_field);
  free(c->data.label_field);
  free(c->data.id_field);
  free(c->data.question_template);
  free(c->data.answer_template);
  free(c->teacher.base_url);
  free(c->teacher.model);
  free(c->teacher.api_key_env);
  free(c->serve.model);
  free(c->serve.on_drift);
  free(c->serve.api_keys_env);
  free(c->teacher.mode);
  free(c->teacher.batch_retry);
  for (int i = 0; i < c->teacher.n_headers; i++) {
    free(c->teacher.headers[i].name);
    free(c->teacher.headers[i].value);
  }
  free(c->teacher.headers);
  free((char *)c->student.lm.preset);
  free((char *)c->student.lm.init);
  free(c->label.strategy);
  memset(c, 0, sizeof *c);
}

/* ---- error messages -------------------------------------------------------------------------- */

typedef struct load_ctx {
  const char *file;
  const char *const *overrides;
  int n_overrides;
  us_config *c;
  us_err *err;
  bool seen[N_KEYS];
} load_ctx;

/* True if an override's key (the part before '=') is path or holds it ("student.hidden" for
 * "student.hidden[1]"). */
static bool overridden(const load_ctx *x, const char *path) {
  for (int i = 0; i < x->n_overrides; i++) {
    const char *o = x->overrides[i], *eq = o ? strchr(o, '=') : NULL;
    size_t n = eq ? (size_t)(eq - o) : 0;
    if (eq && strncmp(o, path, n) == 0 && (!path[n] || path[n] == '[' || path[n] == '.'))
      return true;
  }
  return false;
}

/* "<file>: <path>: <message>", noting when the value came from --set. */
static us_status fail(const load_ctx *x, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static us_status fail(const load_ctx *x, const char *path, const char *fmt, ...) {
  char msg[US_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return us_err_set(x->err, US_ERR_CONFIG, "%s: %s: %s%s", x->file, path, msg,
                    overridden(x, path) ? " (value from --set)" : "");
}

/* A short description of a JSON value for "found ...". */
static void describe(const cJSON *v, char *out, size_t cap) {
  if (!v) {
    snprintf(out, cap, "nothing");
  } else if (cJSON_IsString(v)) {
    char text[48];
    size_t n = 0;
    const char *s = v->valuestring;
    for (; s[n] && n < 40; n++) text[n] = ((unsigned char)s[n] < 0x20) ? '?' : s[n];
    while (n > 0 && US_UTF8_IS_CONTINUATION(s[n])) n--; /* never cut a UTF-8 character */
    text[n] = '\0';
    snprintf(out, cap, "the string \"%s%s\"", text, s[n] ? "..." : "");
  } else if (cJSON_IsNumber(v)) {
    char num[32]; /* shortest of 15 or 17 digits that reads back exactly: 0.95, not 0.9499... */
    snprintf(num, sizeof num, "%.15g", v->valuedouble);
    if (strtod(num, NULL) != v->valuedouble) snprintf(num, sizeof num, "%.17g", v->valuedouble);
    snprintf(out, cap, "the number %s", num);
  } else if (cJSON_IsBool(v)) {
    snprintf(out, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
  } else if (cJSON_IsNull(v)) {
    snprintf(out, cap, "null");
  } else if (cJSON_IsArray(v)) {
    snprintf(out, cap, "an array");
  } else {
    snprintf(out, cap, "an object");
  }
}

static us_status fail_type(const load_ctx *x, const char *path, const char *expected,
                           const cJSON *found) {
  char what[96];
  describe(found, what, sizeof what);
  return fail(x, path, "expected %s, found %s", expected, what);
}

/* Writes a bound without exponent noise: 2000000 rather than 2e+06. */
static void format_bound(double v, char *out, size_t cap) {
  if (v == floor(v) && fabs(v) < 1e16)
    snprintf(out, cap, "%.0f", v);
  else
    snprintf(out, cap, "%g", v);
}

/* "an integer in [1, 1024]", "a number in (0, 3600]", "a number >= 0". */
static void describe_range(const key_spec *k, bool integer, char *out, size_t cap) {
  char lo[32], hi[32];
  format_bound(k->min, lo, sizeof lo);
  format_bound(k->max, hi, sizeof hi);
  const char *noun = integer ? "an integer" : "a number";
  if (k->max >= NO_MAX)
    snprintf(out, cap, "%s %s %s", noun, (k->flags & F_MIN_OPEN) ? ">" : ">=", lo);
  else
    snprintf(out, cap, "%s in %c%s, %s]", noun, (k->flags & F_MIN_OPEN) ? '(' : '[', lo, hi);
}

/* ---- "did you mean" -------------------------------------------------------------------------- */

/* Edits (insert, delete, substitute, swap two neighbours) from a to b: a swapped pair such as
 * "modle" for "model" is one typo, so it stays nearer its key than any shorter one. */
static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return (size_t)-1;
  size_t d[65][65];
  for (size_t i = 0; i <= la; i++) d[i][0] = i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[la][lb];
}

static const char *leaf_of(const char *path) {
  const char *dot = strrchr(path, '.');
  return dot ? dot + 1 : path;
}

/* The parent of a table path equals prefix ("" for the top level). */
static bool is_child_of(const char *path, const char *prefix) {
  size_t n = strlen(prefix);
  if (n == 0) return strchr(path, '.') == NULL;
  return strncmp(path, prefix, n) == 0 && path[n] == '.' && strchr(path + n + 1, '.') == NULL;
}

/* Closest key in the same object, else the same name in another section. */
static const char *suggest(const char *prefix, const char *name) {
  const char *best = NULL;
  size_t best_d = (size_t)-1;
  for (size_t i = 0; i < N_KEYS; i++) {
    if (!is_child_of(KEYS[i].path, prefix)) continue;
    size_t d = edit_distance(name, leaf_of(KEYS[i].path));
    if (d < best_d) {
      best_d = d;
      best = KEYS[i].path;
    }
  }
  size_t allowed = strlen(name) / 3 > 2 ? strlen(name) / 3 : 2;
  if (best && best_d <= allowed) return best;
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(leaf_of(KEYS[i].path), name) == 0) return KEYS[i].path;
  return NULL;
}

static us_status fail_unknown(const load_ctx *x, const char *prefix, const char *name,
                              const char *path) {
  const char *s = suggest(prefix, name);
  if (s) return fail(x, path, "unknown key (did you mean %s?)", s);
  char list[700] = "";
  size_t used = 0;
  for (size_t i = 0; i < N_KEYS && used < sizeof list - 40; i++) {
    if (!is_child_of(KEYS[i].path, prefix)) continue;
    int n =
        snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", leaf_of(KEYS[i].path));
    if (n > 0) used += (size_t)n;
  }
  return fail(x, path, "unknown key (expected one of: %s)", list);
}

/* ---- typed readers --------------------------------------------------------------------------- */

static bool name_is_valid(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-') return false;
  return true;
}

static bool env_name_is_valid(const char *s) {
  if (!*s || isdigit((unsigned char)*s)) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return false;
  return true;
}

static bool in_list(const char *s, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, list[i]) == 0) return true;
  return false;
}

static us_status read_number(const load_ctx *x, const key_spec *k, const char *path, const cJSON *v,
                             bool integer, double *out) {
  char expected[96];
  describe_range(k, integer, expected, sizeof expected);
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return fail_type(x, path, expected, v);
  double d = v->valuedouble;
  if (integer && d != floor(d)) return fail_type(x, path, expected, v);
  bool low = (k->flags & F_MIN_OPEN) ? d <= k->min : d < k->min;
  if (low || d > k->max) return fail_type(x, path, expected, v);
  *out = d;
  return US_OK;
}

static us_status read_string(const load_ctx *x, const key_spec *k, const char *path, const cJSON *v,
                             char **slot) {
  if (!cJSON_IsString(v)) return fail_type(x, path, "a string", v);
  const char *s = v->valuestring;
  if ((k->flags & F_NONEMPTY) && !*s) return fail_type(x, path, "a non-empty string", v);
  switch (k->kind) {
    case K_NAME:
      if (!name_is_valid(s))
        return fail_type(x, path, "a name of letters, digits, '_', '.' and '-'", v);
      break;
    case K_ENV_NAME:
      if (!env_name_is_valid(s))
        return fail_type(x, path, "an environment variable name such as OPENAI_API_KEY", v);
      break;
    case K_URL: {
      size_t scheme = strncmp(s, "http://", 7) == 0 ? 7 : strncmp(s, "https://", 8) == 0 ? 8 : 0;
      if (!scheme) return fail_type(x, path, "a URL starting with http:// or https://", v);
      if (!s[scheme] || s[scheme] == '/')
        return fail_type(x, path, "a URL with a host after the scheme", v);
      break;
    }
    default:
      break;
  }
  char *copy = us_strdup(s);
  if (!copy) return us_err_set(x->err, US_ERR_NOMEM, "out of memory reading %s", x->file);
  free(*slot);
  *slot = copy;
  return US_OK;
}

static us_status read_labels(const load_ctx *x, const char *path, const cJSON *v) {
  us_config *c = x->c;
  if (!cJSON_IsArray(v)) return fail_type(x, path, "an array of label strings", v);
  int n = cJSON_GetArraySize(v);
  c->task.labels = calloc(n > 0 ? (size_t)n : 1, sizeof *c->task.labels);
  if (!c->task.labels) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
  char item_path[KEY_PATH_MAX];
  int i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    snprintf(item_path, sizeof item_path, "%.300s[%d]", path, i);
    if (!cJSON_IsString(e) || !e->valuestring[0])
      return fail_type(x, item_path, "a non-empty label string", e);
    if (strpbrk(e->valuestring, "\r\n")) return fail_type(x, item_path, "a label on one line", e);
    for (int j = 0; j < c->task.n_labels; j++)
      if (strcmp(c->task.labels[j], e->valuestring) == 0)
        return fail(x, item_path,
                    "duplicate label \"%s\" (already %s[%d]); labels must be distinct",
                    e->valuestring, path, j);
    c->task.labels[i] = us_strdup(e->valuestring);
    if (!c->task.labels[i]) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
    c->task.n_labels = i + 1;
  }
  return US_OK;
}

/* One data.inputs item: "path" or {"path": ..., "split": ..., "format": ...}. */
static us_status read_input(const load_ctx *x, const char *path, const cJSON *v, us_input *in) {
  in->split = US_SPLIT_AUTO;
  if (cJSON_IsString(v)) {
    if (!v->valuestring[0]) return fail_type(x, path, "a non-empty file or folder path", v);
    in->path = us_strdup(v->valuestring);
    return in->path ? US_OK : us_err_set(x->err, US_ERR_NOMEM, "out of memory");
  }
  if (!cJSON_IsObject(v))
    return fail_type(x, path, "a path string or an object {\"path\", \"split\", \"format\"}", v);
  char sub[KEY_PATH_MAX];
  for (const cJSON *e = v->child; e; e = e->next) {
    snprintf(sub, sizeof sub, "%.300s.%.100s", path, e->string);
    if (strcmp(e->string, "path") == 0) {
      if (!cJSON_IsString(e) || !e->valuestring[0])
        return fail_type(x, sub, "a non-empty file or folder path", e);
      free(in->path);
      in->path = us_strdup(e->valuestring);
      if (!in->path) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
    } else if (strcmp(e->string, "split") == 0) {
      if (cJSON_IsNull(e)) continue;
      if (!cJSON_IsString(e) ||
          (strcmp(e->valuestring, "train") != 0 && strcmp(e->valuestring, "test") != 0))
        return fail_type(x, sub, "\"train\", \"test\" or null", e);
      in->split = strcmp(e->valuestring, "test") == 0 ? US_SPLIT_TEST : US_SPLIT_TRAIN;
    } else if (strcmp(e->string, "format") == 0) {
      if (cJSON_IsNull(e)) continue;
      if (!cJSON_IsString(e) ||
          !in_list(e->valuestring, INPUT_FORMATS, sizeof INPUT_FORMATS / sizeof *INPUT_FORMATS))
        return fail_type(x, sub, "\"jsonl\", \"csv\", \"tsv\", \"text\", \"docs\" or null", e);
      free(in->format);
      in->format = us_strdup(e->valuestring);
      if (!in->format) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
    } else {
      const char *best = NULL;
      for (size_t i = 0; i < 3; i++)
        if (edit_distance(e->string, INPUT_KEYS[i]) <= 2) best = INPUT_KEYS[i];
      if (best) return fail(x, sub, "unknown key (did you mean %s.%s?)", path, best);
      return fail(x, sub, "unknown key (expected one of: path, split, format)");
    }
  }
  if (!in->path)
    return fail(x, path, "missing required key \"path\" (expected a file or folder path)");
  return US_OK;
}

static us_status read_inputs(const load_ctx *x, const char *path, const cJSON *v) {
  us_config *c = x->c;
  const char *expected = "a non-empty array of input files or folders";
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) return fail_type(x, path, expected, v);
  int n = cJSON_GetArraySize(v);
  c->data.inputs = calloc((size_t)n, sizeof *c->data.inputs);
  if (!c->data.inputs) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
  char item_path[KEY_PATH_MAX];
  int i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    snprintf(item_path, sizeof item_path, "%.300s[%d]", path, i);
    c->data.n_inputs = i + 1; /* counted before reading so a failure still frees it */
    us_status st = read_input(x, item_path, e, &c->data.inputs[i]);
    if (st) return st;
  }
  return US_OK;
}

static bool header_name_is_valid(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == ':') return false;
  return true;
}

static us_status read_headers(const load_ctx *x, const char *path, const cJSON *v) {
  us_config *c = x->c;
  if (!cJSON_IsObject(v)) return fail_type(x, path, "an object of header names to strings", v);
  int n = cJSON_GetArraySize(v);
  c->teacher.headers = calloc(n > 0 ? (size_t)n : 1, sizeof *c->teacher.headers);
  if (!c->teacher.headers) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
  char sub[KEY_PATH_MAX];
  for (const cJSON *e = v->child; e; e = e->next) {
    snprintf(sub, sizeof sub, "%.300s.%.100s", path, e->string);
    if (strcasecmp(e->string, "Authorization") == 0)
      return fail(x, sub,
                  "refused: the API key is read only from the environment variable named "
                  "by teacher.api_key_env, never from the config file");
    if (!header_name_is_valid(e->string))
      return fail(x, sub, "expected a header name without spaces, ':' or control characters");
    if (!cJSON_IsString(e)) return fail_type(x, sub, "a string header value", e);
    if (strpbrk(e->valuestring, "\r\n")) return fail_type(x, sub, "a header value on one line", e);
    us_header *h = &c->teacher.headers[c->teacher.n_headers];
    h->name = us_strdup(e->string);
    h->value = us_strdup(e->valuestring);
    c->teacher.n_headers++;
    if (!h->name || !h->value) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
  }
  return US_OK;
}

/* ---- module parameters ----------------------------------------------------------------------- */

static const us_param *param_of(const key_spec *k) {
  size_t n = 0;
  const us_param *table = k->table(&n);
  return us_param_find(table, n, k->field);
}

/* One number for p, checked against the module's kind and range. */
static us_status read_param_number(const load_ctx *x, const us_param *p, const char *path,
                                   const cJSON *v, double *out) {
  char expected[96];
  us_param_describe(p, expected, sizeof expected);
  if (!cJSON_IsNumber(v) || !us_param_accepts(p, v->valuedouble))
    return fail_type(x, path, expected, v);
  *out = v->valuedouble;
  return US_OK;
}

/* An array of integers for a US_PARAM_INTS field: the items at the member, the count where the
 * module's table says it is relative to them. */
static us_status read_param_list(const load_ctx *x, const us_param *p, const char *path,
                                 const cJSON *v, char *slot) {
  char expected[64];
  snprintf(expected, sizeof expected, "an array of at most %d %s", p->max_count,
           p->max_count == 1 ? "integer" : "integers");
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > p->max_count)
    return fail_type(x, path, expected, v);
  char item_path[KEY_PATH_MAX];
  int i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    snprintf(item_path, sizeof item_path, "%.300s[%d]", path, i);
    double d;
    us_status st = read_param_number(x, p, item_path, e, &d);
    if (st) return st;
    ((int *)slot)[i] = (int)d;
  }
  *(int *)(slot + (p->count_offset - p->offset)) = i;
  return US_OK;
}

static us_status read_param(const load_ctx *x, const key_spec *k, const char *path,
                            const cJSON *v) {
  const us_param *p = param_of(k);
  char *slot = (char *)x->c + k->offset;
  double d;
  us_status st;
  if (!p)
    return us_err_set(x->err, US_ERR_INTERNAL, "config key %s: no field %s in its module's table",
                      path, k->field);
  switch (p->kind) {
    case US_PARAM_BOOL:
      if (!cJSON_IsBool(v)) return fail_type(x, path, "true or false", v);
      *(bool *)slot = cJSON_IsTrue(v);
      return US_OK;
    case US_PARAM_INTS:
      return read_param_list(x, p, path, v, slot);
    case US_PARAM_INT:
      if ((st = read_param_number(x, p, path, v, &d))) return st;
      *(int *)slot = (int)d;
      return US_OK;
    case US_PARAM_DOUBLE:
      if ((st = read_param_number(x, p, path, v, &d))) return st;
      *(double *)slot = d;
      return US_OK;
    case US_PARAM_U64:
      if ((st = read_param_number(x, p, path, v, &d))) return st;
      *(uint64_t *)slot = (uint64_t)d;
      return US_OK;
  }
  return us_err_set(x->err, US_ERR_INTERNAL, "config key %s has no reader", path);
}

/* Stores one value into the config after checking its type and range. */
static us_status read_key(load_ctx *x, const key_spec *k, const char *path, const cJSON *v) {
  void *slot = (char *)x->c + k->offset;
  double d;
  us_status st;
  if (cJSON_IsNull(v) && (k->flags & F_NULLABLE)) {
    if (k->kind == K_SEED) {
      x->c->teacher.has_seed = false;
    } else {
      free(*(char **)slot);
      *(char **)slot = NULL;
    }
    return US_OK;
  }
  switch (k->kind) {
    case K_STRING:
    case K_NAME:
    case K_ENV_NAME:
    case K_URL:
    case K_PATH:
      return read_string(x, k, path, v, (char **)slot);
    case K_TASK_TYPE:
      if (!cJSON_IsString(v) ||
          (strcmp(v->valuestring, "classify") != 0 && strcmp(v->valuestring, "generate") != 0))
        return fail_type(x, path, "\"classify\" or \"generate\"", v);
      *(us_task_type *)slot =
          strcmp(v->valuestring, "generate") == 0 ? US_TASK_GENERATE : US_TASK_CLASSIFY;
      return US_OK;
    case K_INT:
      if ((st = read_number(x, k, path, v, true, &d))) return st;
      *(int *)slot = (int)d;
      return US_OK;
    case K_DOUBLE:
      if ((st = read_number(x, k, path, v, false, &d))) return st;
      *(double *)slot = d;
      return US_OK;
    case K_U64:
      if ((st = read_number(x, k, path, v, true, &d))) return st;
      *(uint64_t *)slot = (uint64_t)d;
      return US_OK;
    case K_SEED:
      if ((st = read_number(x, k, path, v, true, &d))) return st;
      *(int64_t *)slot = (int64_t)d;
      x->c->teacher.has_seed = true;
      return US_OK;
    case K_BOOL:
      if (!cJSON_IsBool(v)) return fail_type(x, path, "true or false", v);
      *(bool *)slot = cJSON_IsTrue(v);
      return US_OK;
    case K_LABELS:
      return read_labels(x, path, v);
    case K_INPUTS:
      return read_inputs(x, path, v);
    case K_HEADERS:
      return read_headers(x, path, v);
    case K_PARAM:
      return read_param(x, k, path, v);
    case K_SECTION:
      break;
  }
  return us_err_set(x->err, US_ERR_INTERNAL, "config key %s has no reader", path);
}

static const key_spec *find_key(const char *path) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (strcmp(KEYS[i].path, path) == 0) return &KEYS[i];
  return NULL;
}

/* Checks every member of obj (whose key path is prefix, "" at the top) in file order. */
static us_status read_object(load_ctx *x, const cJSON *obj, const char *prefix) {
  char path[KEY_PATH_MAX];
  for (const cJSON *e = obj->child; e; e = e->next) {
    if (*prefix)
      snprintf(path, sizeof path, "%.300s.%.200s", prefix, e->string);
    else
      snprintf(path, sizeof path, "%.200s", e->string);
    for (const cJSON *p = obj->child; p != e; p = p->next)
      if (strcmp(p->string, e->string) == 0)
        return fail(x, path, "key appears twice in the same object");
    const key_spec *k = find_key(path);
    if (!k) return fail_unknown(x, prefix, e->string, path);
    us_status st;
    if (k->kind == K_SECTION) {
      if (!cJSON_IsObject(e)) return fail_type(x, path, "an object", e);
      st = read_object(x, e, path);
    } else {
      x->seen[k - KEYS] = true;
      st = read_key(x, k, path, e);
    }
    if (st) return st;
  }
  return US_OK;
}

/* ---- --set overrides ------------------------------------------------------------------------- */

/* A parsed override target: names and [index] steps of "a.b[2].c". */
typedef struct override_step {
  char name[128]; /* "" for an index step */
  long index;
} override_step;

#define MAX_OVERRIDE_STEPS 16

static us_status override_fail(const load_ctx *x, const char *spec, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static us_status override_fail(const load_ctx *x, const char *spec, const char *fmt, ...) {
  char msg[US_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return us_err_set(x->err, US_ERR_CONFIG, "%s: --set '%.300s': %s", x->file, spec, msg);
}

static us_status parse_override_key(const load_ctx *x, const char *spec, size_t key_len,
                                    override_step *steps, int *n_steps) {
  int n = 0;
  size_t i = 0;
  while (i < key_len) {
    if (n >= MAX_OVERRIDE_STEPS) return override_fail(x, spec, "key path is too deep");
    size_t start = i;
    while (i < key_len && spec[i] != '.' && spec[i] != '[') i++;
    size_t len = i - start;
    if (len == 0) return override_fail(x, spec, "empty key name in the key path");
    if (len >= sizeof steps[n].name) return override_fail(x, spec, "key name is too long");
    memcpy(steps[n].name, spec + start, len);
    steps[n].name[len] = '\0';
    steps[n++].index = -1;
    while (i < key_len && spec[i] == '[') {
      if (n >= MAX_OVERRIDE_STEPS) return override_fail(x, spec, "key path is too deep");
      char *end;
      long idx = strtol(spec + i + 1, &end, 10);
      if (end == spec + i + 1 || *end != ']' || idx < 0 || end > spec + key_len)
        return override_fail(x, spec, "expected an array index such as [0] in the key path");
      steps[n].name[0] = '\0';
      steps[n++].index = idx;
      i = (size_t)(end - spec) + 1;
    }
    if (i < key_len) {
      if (spec[i] != '.') return override_fail(x, spec, "expected '.' after ']' in the key path");
      i++;
      if (i == key_len) return override_fail(x, spec, "key path ends with '.'");
    }
  }
  *n_steps = n;
  return US_OK;
}

/* The value of an override: JSON if it parses, else the text as a string. A value meant for a
 * string key stays a string even if it looks like a number (--set name=2024). */
static bool key_wants_string(const char *key, size_t key_len) {
  char path[256];
  snprintf(path, sizeof path, "%.*s", (int)(key_len < 255 ? key_len : 255), key);
  const key_spec *k = find_key(path);
  if (k)
    return k->kind == K_STRING || k->kind == K_NAME || k->kind == K_ENV_NAME || k->kind == K_URL ||
           k->kind == K_PATH || k->kind == K_TASK_TYPE;
  /* free-form places whose values are strings: header values, data.inputs[N].path and the like */
  if (strncmp(path, "teacher.headers.", 16) == 0) return true;
  if (strncmp(path, "data.inputs[", 12) == 0) {
    const char *close = strchr(path, ']');
    if (!close) return false;
    if (close[1] == '\0') return true; /* data.inputs[N]=file */
    return in_list(leaf_of(path), INPUT_KEYS, sizeof INPUT_KEYS / sizeof *INPUT_KEYS);
  }
  return false;
}

static cJSON *override_value(const char *key, size_t key_len, const char *text) {
  const char *end = NULL;
  cJSON *v = cJSON_ParseWithOpts(text, &end, 1);
  if (v && key_wants_string(key, key_len) && (cJSON_IsNumber(v) || cJSON_IsBool(v))) {
    cJSON_Delete(v);
    v = NULL;
  }
  return v ? v : cJSON_CreateString(text);
}

/* Follows steps[0 .. n-2] from root, creating missing objects, to the node that will hold the
 * last step. */
static us_status override_parent(const load_ctx *x, const char *spec, cJSON *root,
                                 const override_step *steps, int n, cJSON **parent) {
  cJSON *cur = root;
  char what[96];
  for (int i = 0; i + 1 < n; i++) {
    if (steps[i].index >= 0) {
      cJSON *item = cJSON_IsArray(cur) ? cJSON_GetArrayItem(cur, (int)steps[i].index) : NULL;
      describe(cur, what, sizeof what);
      if (!cJSON_IsArray(cur)) return override_fail(x, spec, "cannot index into %s", what);
      if (!item)
        return override_fail(x, spec, "index %ld is past the end of an array of %d", steps[i].index,
                             cJSON_GetArraySize(cur));
      cur = item;
      continue;
    }
    if (!cJSON_IsObject(cur)) {
      describe(cur, what, sizeof what);
      return override_fail(x, spec, "cannot set key \"%s\" inside %s", steps[i].name, what);
    }
    cJSON *child = cJSON_GetObjectItemCaseSensitive(cur, steps[i].name);
    if (!child && steps[i + 1].index >= 0)
      return override_fail(x, spec, "\"%s\" is not an array that exists", steps[i].name);
    if (!child) child = cJSON_AddObjectToObject(cur, steps[i].name);
    if (!child) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
    cur = child;
  }
  *parent = cur;
  return US_OK;
}

/* Puts value (owned from here on) at the last step under parent; [length] appends. */
static us_status override_place(const load_ctx *x, const char *spec, cJSON *parent,
                                const override_step *step, cJSON *value) {
  char what[96];
  describe(parent, what, sizeof what);
  if (step->index < 0) {
    if (!cJSON_IsObject(parent)) {
      cJSON_Delete(value);
      return override_fail(x, spec, "cannot set key \"%s\" inside %s", step->name, what);
    }
    if (cJSON_GetObjectItemCaseSensitive(parent, step->name))
      cJSON_ReplaceItemInObjectCaseSensitive(parent, step->name, value); /* keeps the key */
    else
      cJSON_AddItemToObject(parent, step->name, value);
    return US_OK;
  }
  int size = cJSON_IsArray(parent) ? cJSON_GetArraySize(parent) : -1;
  if (size < 0 || step->index > size) {
    cJSON_Delete(value);
    if (size < 0) return override_fail(x, spec, "cannot index into %s", what);
    return override_fail(x, spec, "index %ld is past the end of an array of %d", step->index, size);
  }
  if (step->index == size)
    cJSON_AddItemToArray(parent, value);
  else
    cJSON_ReplaceItemInArray(parent, (int)step->index, value);
  return US_OK;
}

static us_status apply_override(const load_ctx *x, cJSON *root, const char *spec) {
  const char *eq = spec ? strchr(spec, '=') : NULL;
  if (!eq) return override_fail(x, spec ? spec : "", "expected key.path=value");
  size_t key_len = (size_t)(eq - spec);
  if (key_len == 0) return override_fail(x, spec, "expected key.path=value, the key is empty");
  override_step steps[MAX_OVERRIDE_STEPS];
  int n = 0;
  cJSON *parent = NULL;
  us_status st = parse_override_key(x, spec, key_len, steps, &n);
  if (!st) st = override_parent(x, spec, root, steps, n, &parent);
  if (st) return st;
  if (us_json_nul_escape_at(eq + 1, strlen(eq + 1)) < strlen(eq + 1))
    return override_fail(x, spec, "the value holds \\u0000 (a NUL character), which no key takes");
  cJSON *value = override_value(spec, key_len, eq + 1);
  if (!value) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
  return override_place(x, spec, parent, &steps[n - 1], value);
}

/* ---- paths ----------------------------------------------------------------------------------- */

/* Absolute folder of the config file. */
static char *config_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *folder;
  if (!slash)
    folder = us_strdup(".");
  else if (slash == path)
    folder = us_strdup("/");
  else {
    folder = malloc((size_t)(slash - path) + 1);
    if (folder) {
      memcpy(folder, path, (size_t)(slash - path));
      folder[slash - path] = '\0';
    }
  }
  if (!folder) {
    errno = ENOMEM;
    return NULL;
  }
  char *abs = realpath(folder, NULL);
  free(folder);
  return abs;
}

/* Folds "." and "name/.." segments of an absolute path in place, so messages and reports show
 * /work/out/demo rather than /work/configs/../out/demo. */
static void fold_dot_segments(char *path) {
  if (path[0] != '/') return;
  char *out = path + 1;
  const char *in = path + 1;
  while (*in) {
    const char *end = strchr(in, '/');
    size_t len = end ? (size_t)(end - in) : strlen(in);
    if (len == 0 || (len == 1 && in[0] == '.')) {
      /* skip empty and "." segments */
    } else if (len == 2 && in[0] == '.' && in[1] == '.') {
      if (out > path + 1) {
        out--; /* drop the previous segment and its slash */
        while (out > path + 1 && out[-1] != '/') out--;
      }
    } else {
      memmove(out, in, len);
      out += len;
      *out++ = '/';
    }
    if (!end) break; /* the slash written above may stand where the NUL was */
    in = end + 1;
  }
  if (out > path + 1) out--; /* no trailing slash */
  *out = '\0';
}

/* dir + "/" + p unless p is absolute; leading "./" dropped. Caller frees. */
static char *resolve_path(const char *dir, const char *p) {
  if (p[0] == '/') return us_strdup(p);
  while (p[0] == '.' && p[1] == '/') {
    p += 2;
    while (*p == '/') p++;
  }
  if (!*p || strcmp(p, ".") == 0) return us_strdup(dir);
  us_buf b;
  us_buf_init(&b, 0);
  if (us_buf_printf(&b, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", p)) {
    us_buf_free(&b);
    return NULL;
  }
  fold_dot_segments(b.data);
  b.len = strlen(b.data);
  return us_buf_steal(&b);
}

static us_status resolve_paths(load_ctx *x) {
  us_config *c = x->c;
  char *out;
  if (c->output)
    out = resolve_path(c->dir, c->output);
  else {
    us_buf b;
    us_buf_init(&b, 0);
    if (us_buf_printf(&b, "%s%sout/%s", c->dir, strcmp(c->dir, "/") == 0 ? "" : "/", c->name)) {
      us_buf_free(&b);
      return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
    }
    out = us_buf_steal(&b);
  }
  if (!out) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
  free(c->output);
  c->output = out;
  for (int i = 0; i < c->data.n_inputs; i++) {
    char *p = resolve_path(c->dir, c->data.inputs[i].path);
    if (!p) return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
    free(c->data.inputs[i].path);
    c->data.inputs[i].path = p;
  }
  return US_OK;
}

/* ---- checks across keys ---------------------------------------------------------------------- */

static bool was_set(const load_ctx *x, const char *path) {
  const key_spec *k = find_key(path);
  return k && x->seen[k - KEYS];
}

static us_status check_required(load_ctx *x) {
  static const struct {
    const char *path, *expected;
  } required[] = {
      {"name", "a name of letters, digits, '_', '.' and '-'"},
      {"data.inputs", "a non-empty array of input files or folders"},
      {"teacher.model", "a string, the teacher's model name"},
  };
  for (size_t i = 0; i < sizeof required / sizeof *required; i++)
    if (!was_set(x, required[i].path))
      return fail(x, required[i].path, "missing required key (expected %s)", required[i].expected);
  if (x->c->task.type == US_TASK_CLASSIFY && !was_set(x, "task.labels"))
    return fail(x, "task.labels",
                "missing required key (expected an array of at least 2 distinct "
                "labels when task.type is \"classify\")");
  return US_OK;
}

/* Fills task-dependent defaults the file left unset. */
static us_status apply_task_defaults(load_ctx *x) {
  us_config *c = x->c;
  bool gen = c->task.type == US_TASK_GENERATE;
  if (!was_set(x, "task.instructions"))
    set_string(&c->task.instructions,
               gen ? DEFAULT_GENERATE_INSTRUCTIONS : DEFAULT_CLASSIFY_INSTRUCTIONS);
  if (!was_set(x, "task.template"))
    set_string(&c->task.template, gen ? DEFAULT_GENERATE_TEMPLATE : DEFAULT_CLASSIFY_TEMPLATE);
  if (!was_set(x, "teacher.max_tokens"))
    c->teacher.max_tokens =
        gen ? US_TEACHER_DEFAULT_MAX_TOKENS_GENERATE : US_TEACHER_DEFAULT_MAX_TOKENS_CLASSIFY;
  if (!c->task.instructions || !c->task.template)
    return us_err_set(x->err, US_ERR_NOMEM, "out of memory");
  return US_OK;
}

static us_status check_consistency(load_ctx *x) {
  us_config *c = x->c;
  if (c->task.type == US_TASK_CLASSIFY && c->task.n_labels < 2)
    return fail(x, "task.labels", "expected at least 2 distinct labels, found %d",
                c->task.n_labels);
  if (!strstr(c->task.template, "{text}"))
    return fail(x, "task.template", "expected a template containing {text}, found none");
  size_t n = strlen(c->teacher.base_url);
  while (n > 0 && c->teacher.base_url[n - 1] == '/') c->teacher.base_url[--n] = '\0';
  return US_OK;
}

/* student.threads, student.seed, student.dropout and student.patience are read into the
 * classifier's settings and hold for the language model too. */
static void share_student_settings(us_config *c) {
  c->student.lm.dropout = c->student.classifier.dropout;
  c->student.lm.patience = c->student.classifier.patience;
  c->student.lm.threads = c->student.classifier.threads;
  c->student.lm.seed = c->student.classifier.seed;
}

/* ---- the modules' own checks ---------------------------------------------------------------- */

/* A module's check over its params struct inside us_config (a static wrapper around the
 * module's us_X_params_check). */
typedef us_status (*params_check_fn)(const void *params, us_err *err);
typedef struct check_spec {
  size_t offset;
  param_table_fn table;
  params_check_fn check;
} check_spec;
#define CHECK(member, table_fn, fn) \
  { offsetof(us_config, member), table_fn, fn }

static us_status check_prompts(const void *p, us_err *err) {
  return us_prompts_params_check(p, err);
}
static us_status check_teacher(const void *p, us_err *err) {
  return us_teacher_params_check(p, err);
}
static us_status check_active(const void *p, us_err *err) {
  return us_active_params_check(p, err);
}
static us_status check_classifier(const void *p, us_err *err) {
  return us_classifier_params_check(p, err);
}
static us_status check_lm(const void *p, us_err *err) {
  return us_lm_train_params_check(p, err);
}
static us_status check_cost(const void *p, us_err *err) {
  return us_cost_params_check(p, err);
}
static us_status check_quality(const void *p, us_err *err) {
  return us_quality_params_check(p, err);
}

static us_status check_serve(const void *p, us_err *err) {
  return us_serve_params_check(p, err);
}

/* Both students are checked whatever the task, as the config always has (a classify config with
 * student.heads 5 is refused too). */
static const check_spec CHECKS[] = {
    CHECK(data, us_prompts_param_table, check_prompts),
    CHECK(teacher, us_teacher_param_table, check_teacher),
    CHECK(label, us_active_param_table, check_active),
    CHECK(student.classifier, us_classifier_param_table, check_classifier),
    CHECK(student.lm, us_lm_train_param_table, check_lm),
    CHECK(cost, us_cost_param_table, check_cost),
    CHECK(quality, us_quality_param_table, check_quality),
    CHECK(serve, us_serve_param_table, check_serve),
    {0, NULL, NULL} /* end */
};

/* The config key stored through table's field, or NULL. A field the table does not list (a
 * string such as question_template) is the key of that name in the section of table's keys. */
static const char *key_of_field(param_table_fn table, const char *field, size_t len) {
  const char *section = NULL;
  for (size_t i = 0; i < N_KEYS; i++) {
    if (KEYS[i].table != table || !KEYS[i].field) continue;
    if (strlen(KEYS[i].field) == len && strncmp(KEYS[i].field, field, len) == 0)
      return KEYS[i].path;
    if (!section) section = KEYS[i].path;
  }
  size_t n = section ? strcspn(section, ".") : 0;
  for (size_t i = 0; section && i < N_KEYS; i++) {
    const char *k = KEYS[i].path;
    if (strncmp(k, section, n) == 0 && k[n] == '.' && strlen(k + n + 1) == len &&
        strncmp(k + n + 1, field, len) == 0)
      return k;
  }
  return NULL;
}

/* Runs every module's check; its message starts with a field name, which becomes the key. */
static us_status run_module_checks(load_ctx *x) {
  for (const check_spec *ck = CHECKS; ck->check; ck++) {
    us_err e;
    us_err_clear(&e);
    if (ck->check((const char *)x->c + ck->offset, &e) == US_OK) continue;
    size_t len = strspn(e.msg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
    const char *key = key_of_field(ck->table, e.msg, len);
    if (!key) return us_err_set(x->err, e.code, "%s: %s", x->file, e.msg);
    return us_err_set(x->err, US_ERR_CONFIG, "%s: %s%s%s", x->file, key, e.msg + len,
                      overridden(x, key) ? " (value from --set)" : "");
  }
  return US_OK;
}

/* ---- text ---------------------------------------------------------------------------------- */

/* Every key name and string in the document, overrides applied, must be valid UTF-8: it goes
 * into requests, the workspace and reports. Names the key path of the first that is not. */
static us_status check_text(const load_ctx *x, const cJSON *node, const char *path) {
  char child[KEY_PATH_MAX];
  int i = 0;
  for (const cJSON *e = node->child; e; e = e->next, i++) {
    if (cJSON_IsObject(node)) {
      if (us_utf8_invalid_at(e->string, strlen(e->string)) < strlen(e->string))
        return fail(x, *path ? path : "(top level)",
                    "a key name is not valid UTF-8; save the config as UTF-8");
      snprintf(child, sizeof child, *path ? "%.300s.%.200s" : "%.0s%.200s", path, e->string);
    } else {
      snprintf(child, sizeof child, "%.300s[%d]", path, i);
    }
    if (cJSON_IsString(e) &&
        us_utf8_invalid_at(e->valuestring, strlen(e->valuestring)) < strlen(e->valuestring)) {
      size_t bad = us_utf8_invalid_at(e->valuestring, strlen(e->valuestring));
      return fail(x, child, "expected valid UTF-8 text, found the byte 0x%02x at byte %zu",
                  (unsigned char)e->valuestring[bad], bad + 1);
    }
    us_status st = check_text(x, e, child);
    if (st) return st;
  }
  return US_OK;
}

/* ---- loading --------------------------------------------------------------------------------- */

/* "invalid JSON at line L, column C near '...'" for the byte where parsing stopped; the excerpt
 * is the text of that line around it. */
/* The 1-based line and column (in bytes) of text[off], and where that line starts. */
static void line_col(const char *text, size_t off, int *line, size_t *col, size_t *line_start) {
  *line = 1;
  *line_start = 0;
  for (size_t i = 0; i < off; i++)
    if (text[i] == '\n') {
      (*line)++;
      *line_start = i + 1;
    }
  *col = off - *line_start + 1;
}

/* Text cJSON would read wrongly: a \u0000 escape (decoded to a NUL that cuts the string, and
 * with it a key, short) or a raw NUL byte. Invalid UTF-8 inside strings is refused later, with
 * the key path (check_text). */
static us_status check_raw_text(const load_ctx *x, const char *text, size_t len) {
  size_t nul =
      memchr(text, '\0', len) ? (size_t)((const char *)memchr(text, '\0', len) - text) : len;
  size_t esc = us_json_nul_escape_at(text, len);
  if (nul == len && esc == len) return US_OK;
  size_t off = nul < esc ? nul : esc, col, line_start;
  int line;
  line_col(text, off, &line, &col, &line_start);
  return us_err_set(x->err, US_ERR_CONFIG,
                    "%s:%d:%zu: %s at line %d, column %zu; no key takes a NUL character, remove it",
                    x->file, line, col,
                    nul < esc ? "a NUL byte" : "a \\u0000 escape (a NUL character)", line, col);
}

static us_status fail_json(const load_ctx *x, const char *text, size_t len, const char *stop) {
  size_t off = stop && stop >= text && stop <= text + len ? (size_t)(stop - text) : len;
  int line;
  size_t col, line_start;
  line_col(text, off, &line, &col, &line_start);
  if (off >= len)
    return us_err_set(x->err, US_ERR_CONFIG,
                      "%s:%d:%zu: invalid JSON at line %d, column %zu: unexpected end of file",
                      x->file, line, col, line, col);
  size_t from = off - line_start > 20 ? off - 20 : line_start;
  char near[48];
  size_t n = 0;
  for (size_t i = from; i < len && n < 40 && text[i] != '\n'; i++)
    near[n++] = (unsigned char)text[i] < 0x20 ? ' ' : text[i];
  while (n > 0 && near[n - 1] == ' ') n--;
  near[n] = '\0';
  return us_err_set(x->err, US_ERR_CONFIG,
                    "%s:%d:%zu: invalid JSON at line %d, column %zu near '%s'", x->file, line, col,
                    line, col, near);
}

static us_status load_tree(load_ctx *x, cJSON **root) {
  char *text = NULL;
  size_t len = 0;
  us_status st = us_read_file(x->file, CONFIG_MAX_BYTES, &text, &len, x->err);
  if (st) {
    us_err_prefix(x->err, "config");
    return st;
  }
  if ((st = check_raw_text(x, text, len))) {
    free(text);
    return st;
  }
  const char *stop = NULL;
  *root = cJSON_ParseWithLengthOpts(text, len, &stop, 0);
  if (*root && stop && (size_t)(stop - text) < len) {
    /* trailing text after the document: allowed only if it is white space */
    const char *p = stop;
    while (p < text + len && isspace((unsigned char)*p)) p++;
    if (p < text + len) {
      cJSON_Delete(*root);
      *root = NULL;
      stop = p;
    }
  }
  if (!*root) st = fail_json(x, text, len, stop);
  free(text);
  return st;
}

us_status us_config_load(const char *path, const char *const *overrides, int n_overrides,
                         us_config *c, us_err *err) {
  us_config_defaults(c);
  if (!c->task.instructions || !c->task.template || !c->data.text_field || !c->data.id_field ||
      !c->data.question_template || !c->data.answer_template || !c->teacher.base_url ||
      !c->teacher.api_key_env || !c->label.strategy || !c->serve.on_drift) {
    us_config_free(c);
    return us_err_set(err, US_ERR_NOMEM, "out of memory loading %s", path ? path : "config");
  }
  load_ctx x = {
      .file = path, .overrides = overrides, .n_overrides = n_overrides, .c = c, .err = err};
  cJSON *root = NULL;
  us_status st = US_OK;
  if (!path) return us_err_set(err, US_ERR_USAGE, "no config file given");
  if ((st = load_tree(&x, &root))) goto fail;
  c->path = us_strdup(path);
  c->dir = config_dir(path);
  if (!c->path || (!c->dir && errno == ENOMEM)) {
    st = us_err_set(err, US_ERR_NOMEM, "%s: out of memory loading the config", path);
    goto fail;
  }
  if (!c->dir) {
    st = us_err_set(err, US_ERR_IO, "%s: cannot find the config's folder", path);
    goto fail;
  }
  if (!cJSON_IsObject(root)) {
    char what[96];
    describe(root, what, sizeof what);
    st = us_err_set(err, US_ERR_CONFIG, "%s: expected a JSON object at the top level, found %s",
                    path, what);
    goto fail;
  }
  for (int i = 0; i < n_overrides; i++)
    if ((st = apply_override(&x, root, overrides[i]))) goto fail;
  if ((st = check_text(&x, root, ""))) goto fail;
  if ((st = read_object(&x, root, ""))) goto fail;
  if ((st = check_required(&x))) goto fail;
  if ((st = apply_task_defaults(&x))) goto fail;
  share_student_settings(c);
  if ((st = run_module_checks(&x))) goto fail;
  if ((st = check_consistency(&x))) goto fail;
  if ((st = resolve_paths(&x))) goto fail;
  cJSON_Delete(root);
  return US_OK;
fail:
  cJSON_Delete(root);
  us_config_free(c);
  return st;
}

/* ---- rendering ------------------------------------------------------------------------------- */

us_status us_config_render(const us_config *c, const char *text, char **system, char **user,
                           us_err *err) {
  return us_request_render(&c->task, text, system, user, err);
}

int us_config_label_index(const us_config *c, const char *label) {
  return us_task_label_index(&c->task, label);
}

/* ---- the key table, for documentation ------------------------------------------------------- */

const char *us_config_key(size_t i, const us_param **param) {
  if (i >= N_KEYS) return NULL;
  if (param) *param = KEYS[i].kind == K_PARAM ? param_of(&KEYS[i]) : NULL;
  return KEYS[i].path;
}

double us_config_key_value(const us_config *c, const char *path, int index) {
  const key_spec *k = find_key(path);
  const us_param *p = k && k->kind == K_PARAM ? param_of(k) : NULL;
  if (!p) return NAN;
  /* the module's struct starts p->offset bytes before the field the key is stored in */
  const char *base = (const char *)c + k->offset - p->offset;
  if (p->kind == US_PARAM_INTS && index < 0) return *(const int *)(base + p->count_offset);
  return us_param_value(p, base, index);
}
