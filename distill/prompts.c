/* Prompt building: dispatches each input to its loader, normalises and dedupes what they read,
 * assigns the hash-based train/test split and stores the prompts in the workspace. */
#include "distill/prompts.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/hash.h"
#include "core/log.h"
#include "distill/prompts_int.h"

/* ---- settings ------------------------------------------------------------------------------ */

void us_prompts_params_defaults(us_prompts_params *p) {
  memset(p, 0, sizeof *p);
  p->test_fraction = 0.2;
  p->seed = 1;
  p->chunk_chars = 1500;
  p->repair_utf8 = false;
  p->questions_per_chunk = 3;
  p->dedupe_near = true;
}

#define JSON_MAX_SAFE_INT 9007199254740991.0 /* 2^53 - 1: a seed a JSON reader keeps exactly */

static const us_param PROMPTS_PARAMS[] = {
    US_PARAM(us_prompts_params, test_fraction, US_PARAM_DOUBLE, 0, 0.9, 0,
             "share of prompts held out for the test split"),
    US_PARAM(us_prompts_params, seed, US_PARAM_U64, 0, JSON_MAX_SAFE_INT, 0,
             "seed of the split hash"),
    US_PARAM(us_prompts_params, chunk_chars, US_PARAM_INT, 200, 100000, 0,
             "most characters in a document chunk"),
    US_PARAM(us_prompts_params, repair_utf8, US_PARAM_BOOL, 0, 0, 0,
             "replace invalid UTF-8 with U+FFFD instead of refusing the file"),
    US_PARAM(us_prompts_params, questions_per_chunk, US_PARAM_INT, 1, 20, 0,
             "questions asked about each document chunk (generate from docs)"),
    US_PARAM(us_prompts_params, dedupe_near, US_PARAM_BOOL, 0, 0, 0,
             "move near-duplicates across train and test to the test split"),
};

const us_param *us_prompts_param_table(size_t *n) {
  *n = sizeof PROMPTS_PARAMS / sizeof PROMPTS_PARAMS[0];
  return PROMPTS_PARAMS;
}

us_status us_prompts_params_check(const us_prompts_params *p, us_err *err) {
  size_t n;
  const us_param *table = us_prompts_param_table(&n);
  us_status st = us_params_check(table, n, p, err);
  if (st) return st;
  if (p->question_template && !strstr(p->question_template, "{chunk}"))
    return us_err_set(err, US_ERR_CONFIG,
                      "question_template: expected a template containing {chunk}, found none");
  if (p->answer_template && !strstr(p->answer_template, "{question}"))
    return us_err_set(err, US_ERR_CONFIG,
                      "answer_template: expected a template containing {question}, found none");
  return US_OK;
}

/* ---- normalisation, identity, split --------------------------------------------------------- */

/* Length of the Unicode white-space character at s (U+0009-000D, U+0020, U+0085, U+00A0,
 * U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000), or 0. */
static size_t space_len(const unsigned char *s) {
  if (*s == ' ' || (*s >= 0x09 && *s <= 0x0d)) return 1;
  if (s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
  if (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3;
  if (s[0] == 0xe2 && s[1] == 0x80 &&
      ((s[2] >= 0x80 && s[2] <= 0x8a) || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf))
    return 3;
  if (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) return 3;
  if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3;
  return 0;
}

char *us_prompt_normalize(const char *text) {
  size_t n = strlen(text);
  char *out = malloc(n + 1);
  if (!out) return NULL;
  const unsigned char *s = (const unsigned char *)text;
  size_t o = 0;
  bool pending_space = false;
  while (*s) {
    size_t sp = space_len(s); /* reads at most 3 bytes, stopping at a NUL by the byte tests */
    if (sp) {
      pending_space = o > 0;
      s += sp;
      continue;
    }
    if (pending_space) out[o++] = ' ';
    pending_space = false;
    out[o++] = (char)((*s < 0x80) ? tolower(*s) : *s);
    s++;
  }
  out[o] = '\0';
  return out;
}

void us_prompt_hash(const char *normalized, char hash[65]) {
  us_sha256_hex(normalized, strlen(normalized), hash);
}

int us_prompt_split(const char *normalized, uint64_t seed, double test_fraction) {
  return us_hash_fraction(normalized, strlen(normalized), seed) < test_fraction ? US_SPLIT_TEST
                                                                                : US_SPLIT_TRAIN;
}

/* ---- the rows met in this run: one bit per row id -------------------------------------------- */

/* Sets id's bit; *was_set tells whether it was set already. Non-zero when out of memory. */
static int mark_met(us__prompt_sink *sink, int64_t id, bool *was_set) {
  size_t byte = (size_t)(id < 0 ? 0 : id) / 8;
  if (byte >= sink->met_cap) {
    size_t cap = sink->met_cap ? sink->met_cap : 4096;
    while (cap <= byte) cap *= 2;
    unsigned char *grown = realloc(sink->met, cap);
    if (!grown) return 1;
    memset(grown + sink->met_cap, 0, cap - sink->met_cap);
    sink->met = grown;
    sink->met_cap = cap;
  }
  unsigned char bit = (unsigned char)(1u << (id & 7));
  *was_set = (sink->met[byte] & bit) != 0;
  sink->met[byte] |= bit;
  return 0;
}

/* ---- the sink ------------------------------------------------------------------------------- */

/* A chunk's identity: the hash of its normalised text behind a marker, so a chunk and a prompt
 * (or a question) with the same text stay two rows. */
static void chunk_hash(const char *normalized, char hash[65]) {
  us_buf b;
  us_buf_init(&b, 0);
  if (us_buf_puts(&b, "chunk\n") || us_buf_puts(&b, normalized)) {
    us_buf_free(&b);
    us_prompt_hash(normalized, hash); /* out of memory: still a stable identity */
    return;
  }
  us_sha256_hex(b.data, b.len, hash);
  us_buf_free(&b);
}

us_status us__prompt_emit(us__prompt_sink *sink, const char *text, size_t len, const char *gold,
                          const char *where, us_err *err) {
  sink->stats->read++;
  char *copy = malloc(len + 1);
  if (!copy) return us_err_set(err, US_ERR_NOMEM, "%s: out of memory", where);
  memcpy(copy, text, len);
  copy[len] = '\0';
  char *norm = us_prompt_normalize(copy);
  us_status st = US_OK;
  if (!norm) {
    st = us_err_set(err, US_ERR_NOMEM, "%s: out of memory", where);
    goto done;
  }
  if (!norm[0]) {
    sink->stats->empty++;
    goto done;
  }
  char hash[65];
  if (sink->kind == US_PROMPT_KIND_CHUNK)
    chunk_hash(norm, hash);
  else
    us_prompt_hash(norm, hash);
  int split = sink->split != US_SPLIT_AUTO
                  ? sink->split
                  : us_prompt_split(norm, sink->data->seed, sink->data->test_fraction);
  bool inserted = false;
  int64_t id = 0;
  us_prompt row = {.text = copy,
                   .gold = (char *)gold,
                   .source = (char *)where,
                   .split = split,
                   .kind = sink->kind};
  memcpy(row.hash, hash, sizeof row.hash);
  st = us_cache_prompt_insert(sink->cache, &row, &inserted, &id, err);
  if (st) {
    us_err_prefix(err, "%s", where);
    goto done;
  }
  /* the workspace's unique hash finds the row; one bit per row id says whether this run has
   * met it already (a duplicate) */
  bool met = false;
  if (mark_met(sink, id, &met)) {
    st = us_err_set(err, US_ERR_NOMEM, "%s: out of memory", where);
    goto done;
  }
  if (met)
    sink->stats->duplicates++;
  else if (inserted)
    sink->stats->added++;
  else
    sink->stats->existing++;
done:
  free(norm);
  free(copy);
  return st;
}

const char *us__prompt_display_path(const char *base_dir, const char *path) {
  if (!base_dir || !base_dir[0]) return path;
  size_t n = strlen(base_dir);
  while (n > 1 && base_dir[n - 1] == '/') n--;
  if (strncmp(path, base_dir, n) == 0 && path[n] == '/' && path[n + 1]) return path + n + 1;
  return path;
}

/* ---- inputs --------------------------------------------------------------------------------- */

typedef enum { FMT_JSONL, FMT_CSV, FMT_TSV, FMT_TEXT, FMT_DOCS } input_format;

static bool ends_with_ci(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static us_status input_format_of(const us_input *in, const char *shown, input_format *out,
                                 us_err *err) {
  static const struct {
    const char *name;
    input_format format;
  } names[] = {{"jsonl", FMT_JSONL}, {"json", FMT_JSONL}, {"csv", FMT_CSV},
               {"tsv", FMT_TSV},     {"text", FMT_TEXT},  {"docs", FMT_DOCS}};
  if (in->format) {
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (strcmp(in->format, names[i].name) == 0) {
        *out = names[i].format;
        return US_OK;
      }
    return us_err_set(err, US_ERR_CONFIG,
                      "data.inputs: %s: unknown format \"%s\" (expected jsonl, csv, tsv, text or "
                      "docs)",
                      shown, in->format);
  }
  struct stat sb;
  if (stat(in->path, &sb) != 0)
    return us_err_set(err, US_ERR_IO, "cannot read input %s: %s", shown, strerror(errno));
  if (S_ISDIR(sb.st_mode)) {
    *out = FMT_DOCS;
    return US_OK;
  }
  static const struct {
    const char *ext;
    input_format format;
  } exts[] = {{".jsonl", FMT_JSONL},
              {".json", FMT_JSONL},
              {".csv", FMT_CSV},
              {".tsv", FMT_TSV},
              {".txt", FMT_TEXT}};
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
    if (ends_with_ci(in->path, exts[i].ext)) {
      *out = exts[i].format;
      return US_OK;
    }
  return us_err_set(err, US_ERR_CONFIG,
                    "data.inputs: cannot tell the format of %s from its name (expected .jsonl, "
                    ".json, .csv, .tsv, .txt or a folder); give it as {\"path\": ..., \"format\": "
                    "\"jsonl\"|\"csv\"|\"tsv\"|\"text\"|\"docs\"}",
                    shown);
}

/* Loads one single-file input inside one transaction (far faster than a commit per prompt). */
static us_status load_file(us__prompt_sink *sink, input_format format, const char *path,
                           us_err *err) {
  us_status st = us_cache_begin(sink->cache, err);
  if (st) return st;
  switch (format) {
    case FMT_JSONL:
      st = us__load_jsonl(sink, path, err);
      break;
    case FMT_CSV:
      st = us__load_csv(sink, path, ',', err);
      break;
    case FMT_TSV:
      st = us__load_csv(sink, path, '\t', err);
      break;
    default:
      st = us__load_text(sink, path, err);
      break;
  }
  if (st) {
    us_cache_rollback(sink->cache, NULL);
    return st;
  }
  return us_cache_commit(sink->cache, err);
}

us_status us_prompts_build(const us_task *task, const us_prompts_params *data, const char *base_dir,
                           us_cache *cache, us_prompts_stats *stats, us_err *err) {
  memset(stats, 0, sizeof *stats);
  us__prompt_sink sink = {.data = data, .base_dir = base_dir, .cache = cache, .stats = stats};
  us_status st = US_OK;
  if (data->n_inputs < 1) {
    st = us_err_set(err, US_ERR_CONFIG, "data.inputs: expected at least one file or folder");
    goto fail;
  }
  for (int i = 0; i < data->n_inputs; i++) {
    const us_input *in = &data->inputs[i];
    const char *shown = us__prompt_display_path(base_dir, in->path);
    input_format format = FMT_TEXT;
    st = input_format_of(in, shown, &format, err);
    if (st) goto fail;
    sink.split = in->split;
    sink.source = shown;
    sink.kind = format == FMT_DOCS && task->type == US_TASK_GENERATE ? US_PROMPT_KIND_CHUNK
                                                                     : US_PROMPT_KIND_PROMPT;
    int64_t before = stats->read;
    if (format == FMT_DOCS)
      st = us__load_docs(&sink, in->path, err);
    else
      st = load_file(&sink, format, in->path, err);
    if (st) goto fail;
    us_log(US_LOG_DEBUG, "prompts: %s: %lld records", shown, (long long)(stats->read - before));
  }
  st = us__prompts_near_duplicates(data, cache, stats, err);
  if (st) goto fail;
  st = us_cache_prompts_count(cache, US_SPLIT_TRAIN, &stats->train, err);
  if (!st) st = us_cache_prompts_count(cache, US_SPLIT_TEST, &stats->test, err);
  us_cache_stats cs;
  if (!st) st = us_cache_stats_get(cache, &cs, err);
  if (!st) stats->chunks = cs.chunks;
fail:
  free(sink.met);
  return st;
}

/* ---- self-instruct questions ---------------------------------------------------------------- */

/* Length of a list marker at the start of s ("12.", "3)", "Q2:", "Question 2.", "-", "*", "•")
 * with the spaces after it, or 0. A number must be followed by a space to count, so a question
 * that starts with "3.5 percent" keeps its number. */
static size_t marker_len(const char *s) {
  size_t i = 0;
  if (s[0] == '-' || s[0] == '*' || s[0] == '+') {
    i = 1;
  } else if (strncmp(s, "\xe2\x80\xa2", 3) == 0) {
    i = 3;
  } else {
    if (strncasecmp(s, "question", 8) == 0)
      i = 8;
    else if (s[0] == 'Q' || s[0] == 'q')
      i = 1;
    while (i > 0 && s[i] == ' ') i++;
    size_t start = i;
    while (isdigit((unsigned char)s[i])) i++;
    if (i == start || (s[i] != '.' && s[i] != ')' && s[i] != ':')) return 0;
    i++;
  }
  if (s[i] && s[i] != ' ' && s[i] != '\t') return 0;
  while (s[i] == ' ' || s[i] == '\t') i++;
  return i;
}

/* The question on one line (trimmed, marker and quotes removed), or NULL when the line holds
 * none. Caller frees. */
static char *question_of_line(const char *line, size_t len) {
  while (len && isspace((unsigned char)*line)) line++, len--;
  while (len && isspace((unsigned char)line[len - 1])) len--;
  char *s = strndup(line, len);
  if (!s) return NULL;
  size_t m = marker_len(s);
  memmove(s, s + m, strlen(s + m) + 1);
  len = strlen(s);
  while (len >= 2 && ((s[0] == '"' && s[len - 1] == '"') || (s[0] == '\'' && s[len - 1] == '\''))) {
    memmove(s, s + 1, len - 2);
    s[len -= 2] = '\0';
  }
  while (len && isspace((unsigned char)s[len - 1])) s[--len] = '\0';
  if (!len || s[len - 1] == ':') {
    free(s);
    return strdup("");
  }
  return s;
}

us_status us_questions_parse(const char *answer, int max, char ***out, int *n, us_err *err) {
  *out = NULL;
  *n = 0;
  char **list = calloc((size_t)(max > 0 ? max : 1), sizeof *list);
  if (!list) return us_err_set(err, US_ERR_NOMEM, "out of memory parsing questions");
  int count = 0;
  for (const char *p = answer ? answer : ""; *p && count < max;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char *q = question_of_line(p, len);
    if (!q) {
      for (int i = 0; i < count; i++) free(list[i]);
      free(list);
      return us_err_set(err, US_ERR_NOMEM, "out of memory parsing questions");
    }
    if (q[0])
      list[count++] = q;
    else
      free(q);
    p += len + (nl ? 1 : 0);
  }
  *out = list;
  *n = count;
  return US_OK;
}

us_status us_prompts_add_questions(const us_prompts_params *data, us_cache *cache,
                                   const us_prompt *chunk, const char *answer, int64_t *added,
                                   us_err *err) {
  char **questions = NULL;
  int n = 0;
  if (added) *added = 0;
  us_status st = us_questions_parse(answer, data->questions_per_chunk, &questions, &n, err);
  if (st) return st;
  us_buf source;
  us_buf_init(&source, 0);
  for (int k = 0; k < n && !st; k++) {
    char *norm = us_prompt_normalize(questions[k]);
    us_buf_reset(&source);
    if (!norm || us_buf_printf(&source, "%s/q%d", chunk->source ? chunk->source : "?", k + 1)) {
      free(norm);
      st = us_err_set(err, US_ERR_NOMEM, "out of memory storing questions");
      break;
    }
    us_prompt q = {.text = questions[k],
                   .source = source.data,
                   .split = chunk->split,
                   .kind = US_PROMPT_KIND_PROMPT,
                   .context = chunk->text};
    us_prompt_hash(norm, q.hash);
    free(norm);
    bool inserted = false;
    st = us_cache_prompt_insert(cache, &q, &inserted, NULL, err);
    if (st) us_err_prefix(err, "%s", source.data);
    if (!st && inserted && added) (*added)++;
  }
  us_buf_free(&source);
  for (int k = 0; k < n; k++) free(questions[k]);
  free(questions);
  return st;
}
