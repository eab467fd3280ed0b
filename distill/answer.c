/* Reading the teacher's answers: Chat Completions response bodies, label mapping, soft targets
 * from logprobs. Pure functions with no I/O, so the unit tests can pin them down. */

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "distill/teacher.h"

/* ---- label mapping --------------------------------------------------------------------- */

/* The rules (docs/config.md, "How answers become labels"):
 *   1. the answer equals a label once both are normalised: ASCII case folded, runs of white
 *      space made one space, white space, quotes and trailing punctuation trimmed off the ends;
 *   2. else, in a short answer (at most US_ANSWER_SHORT_WORDS words), exactly one label occurs
 *      as whole words ("The sentiment is negative."), a label inside a longer matching label
 *      ("card" in "card arrival") yielding to it, and no negation comes before it ("This is
 *      not spam" maps to nothing);
 *   3. else the answer is unmapped (-1): never guessed. */

/* Quote characters trimmed from both ends: ASCII quotes and backquote, and the UTF-8 curly
 * quotes and guillemets. Returns the byte length of the quote at s, or 0. */
static size_t quote_len(const unsigned char *s, size_t n) {
  if (n >= 1 && (s[0] == '"' || s[0] == '\'' || s[0] == '`')) return 1;
  if (n >= 2 && s[0] == 0xc2 && (s[1] == 0xab || s[1] == 0xbb)) return 2; /* « » */
  if (n >= 3 && s[0] == 0xe2 && s[1] == 0x80 && s[2] >= 0x98 && s[2] <= 0x9f) return 3;
  return 0;
}

/* Same, for a quote ending at s + n. */
static size_t quote_len_back(const unsigned char *s, size_t n) {
  if (n >= 1 && (s[n - 1] == '"' || s[n - 1] == '\'' || s[n - 1] == '`')) return 1;
  if (n >= 2 && s[n - 2] == 0xc2 && (s[n - 1] == 0xab || s[n - 1] == 0xbb)) return 2;
  if (n >= 3 && s[n - 3] == 0xe2 && s[n - 2] == 0x80 && s[n - 1] >= 0x98 && s[n - 1] <= 0x9f)
    return 3;
  return 0;
}

static bool trailing_punct(unsigned char c) {
  return c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?';
}

/* Rule 1's normal form of s into out (strlen(s) + 1 bytes). */
static void normalise(const char *s, char *out) {
  const unsigned char *b = (const unsigned char *)s;
  size_t lo = 0, hi = strlen(s);
  for (bool again = true; again && lo < hi;) {
    again = false;
    size_t q;
    while (lo < hi && isspace(b[lo])) lo++, again = true;
    while (lo < hi && (isspace(b[hi - 1]) || trailing_punct(b[hi - 1]))) hi--, again = true;
    if (lo < hi && (q = quote_len(b + lo, hi - lo)) > 0) lo += q, again = true;
    if (lo < hi && (q = quote_len_back(b + lo, hi - lo)) > 0) hi -= q, again = true;
  }
  size_t n = 0;
  for (size_t i = lo; i < hi; i++) {
    if (isspace(b[i])) {
      if (n && out[n - 1] != ' ') out[n++] = ' ';
      continue;
    }
    out[n++] = (char)(b[i] < 0x80 ? tolower(b[i]) : b[i]);
  }
  out[n] = '\0';
}

/* Word sequence of s: lower-cased runs of ASCII letters/digits and non-ASCII bytes, each word
 * NUL-terminated in buf (strlen(s) + 1 bytes) and pointed to from words (strlen(s)/2 + 1). */
static int words_of(const char *s, char *buf, char **words) {
  int n = 0;
  size_t k = 0;
  bool in = false;
  for (const unsigned char *p = (const unsigned char *)s;; p++) {
    bool w = *p && (*p >= 0x80 || isalnum(*p));
    if (w) {
      if (!in) words[n++] = buf + k;
      buf[k++] = (char)(*p < 0x80 ? tolower(*p) : *p);
      in = true;
    } else if (in) {
      buf[k++] = '\0';
      in = false;
    }
    if (!*p) break;
  }
  return n;
}

/* Where needle (nn words) first occurs as a contiguous run of hay (nh words), or -1. */
static int words_find(char **hay, int nh, char **needle, int nn) {
  if (nn == 0 || nn > nh) return -1;
  for (int i = 0; i + nn <= nh; i++) {
    int j = 0;
    while (j < nn && strcmp(hay[i + j], needle[j]) == 0) j++;
    if (j == nn) return i;
  }
  return -1;
}

/* A word that negates what follows it. Contractions split at the apostrophe ("isn't" is
 * "isn" "t"), so their halves count too. */
static bool is_negation(const char *w) {
  static const char *const neg[] = {"not",    "no",      "never", "neither", "nor",    "none",
                                    "cannot", "without", "t",     "isn",     "aren",   "wasn",
                                    "weren",  "don",     "doesn", "didn",    "couldn", "shouldn",
                                    "wouldn", "hardly",  "non",   "nt"};
  for (size_t i = 0; i < sizeof neg / sizeof neg[0]; i++)
    if (strcmp(w, neg[i]) == 0) return true;
  return false;
}

typedef struct word_seq {
  char *buf;
  char **words;
  int n;
} word_seq;

static bool word_seq_make(const char *s, word_seq *w) {
  size_t len = strlen(s);
  w->buf = malloc(len + 1);
  w->words = malloc((len / 2 + 1) * sizeof *w->words);
  if (!w->buf || !w->words) return false;
  w->n = words_of(s, w->buf, w->words);
  return true;
}

static void word_seq_free(word_seq *w) {
  free(w->buf);
  free(w->words);
}

/* Whether s has more than most words (as words_of counts them), without allocating: a huge
 * answer is ruled out by rule 2 before any copy of it is made. */
static bool more_words_than(const char *s, int most) {
  int n = 0;
  bool in = false;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    bool w = *p >= 0x80 || isalnum(*p);
    if (w && !in && ++n > most) return true;
    in = w;
  }
  return false;
}

/* Rule 2. Returns the one label, or -1. */
static int map_contained(const char *answer, char *const *labels, int n_labels) {
  if (more_words_than(answer, US_ANSWER_SHORT_WORDS)) return -1;
  int result = -1;
  word_seq a = {0}, *ls = calloc((size_t)n_labels, sizeof *ls);
  int *at = calloc((size_t)n_labels, sizeof *at);
  if (!ls || !at || !word_seq_make(answer, &a)) goto done;
  if (a.n == 0 || a.n > US_ANSWER_SHORT_WORDS) goto done;
  for (int i = 0; i < n_labels; i++) {
    if (!word_seq_make(labels[i], &ls[i])) goto done;
    at[i] = words_find(a.words, a.n, ls[i].words, ls[i].n);
  }
  int survivors = 0, last = -1;
  for (int i = 0; i < n_labels; i++) {
    if (at[i] < 0) continue;
    bool inside_other = false;
    for (int j = 0; j < n_labels && !inside_other; j++)
      inside_other = j != i && at[j] >= 0 && ls[j].n > ls[i].n &&
                     words_find(ls[j].words, ls[j].n, ls[i].words, ls[i].n) >= 0;
    if (inside_other) continue;
    for (int w = 0; w < at[i]; w++)
      if (is_negation(a.words[w])) goto done; /* "not spam", "isn't positive": never guessed */
    survivors++, last = i;
  }
  if (survivors == 1) result = last;
done:
  word_seq_free(&a);
  if (ls)
    for (int i = 0; i < n_labels; i++) word_seq_free(&ls[i]);
  free(ls);
  free(at);
  return result;
}

int us_answer_map_label(const char *answer, char *const *labels, int n_labels) {
  if (!answer || !labels || n_labels <= 0) return -1;
  for (int i = 0; i < n_labels; i++)
    if (strcmp(answer, labels[i]) == 0) return i;

  char *na = malloc(strlen(answer) + 1);
  if (!na) return -1;
  normalise(answer, na);
  int found = -1, count = 0;
  for (int i = 0; i < n_labels && na[0]; i++) {
    char *nl = malloc(strlen(labels[i]) + 1);
    if (!nl) break;
    normalise(labels[i], nl);
    if (nl[0] && strcmp(na, nl) == 0) found = i, count++;
    free(nl);
  }
  free(na);
  if (count == 1) return found;
  if (count > 1) return -1; /* two labels that differ only in case or quoting */
  return map_contained(answer, labels, n_labels);
}

char *us_answer_structured(const char *content) {
  if (!content) return NULL;
  cJSON *root = cJSON_Parse(content);
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "answer");
  char *out = cJSON_IsObject(root) && cJSON_IsString(a) ? us_strdup(a->valuestring) : NULL;
  cJSON_Delete(root);
  return out;
}

/* ---- response bodies ------------------------------------------------------------------- */

/* Which label a logprob alternative's token stands for. The rule: the token with surrounding
 * white space trimmed either equals a label exactly, or is a non-empty case-insensitive prefix
 * of exactly one label (tokenisers often split "negative" into "neg" + "ative", so the first
 * token is all the alternatives show). Anything else stands for no label and is dropped. */
static int token_label(const char *token, char *const *labels, int n_labels) {
  while (*token && isspace((unsigned char)*token)) token++;
  size_t n = strlen(token);
  while (n && isspace((unsigned char)token[n - 1])) n--;
  if (n == 0) return -1;
  for (int i = 0; i < n_labels; i++)
    if (strlen(labels[i]) == n && memcmp(labels[i], token, n) == 0) return i;
  int found = -1, count = 0;
  for (int i = 0; i < n_labels; i++)
    if (strlen(labels[i]) >= n && strncasecmp(labels[i], token, n) == 0) found = i, count++;
  return count == 1 ? found : -1;
}

/* Distribution over labels from choices[0].logprobs.content[0].top_logprobs: each alternative's
 * probability exp(logprob) goes to the label its token stands for (summed when several tokens
 * stand for one label), then the masses are normalised to sum to 1. False if no alternative
 * stands for any label. */
static bool soft_from_logprobs(const cJSON *choice, char *const *labels, int n_labels,
                               float *soft) {
  const cJSON *lp = cJSON_GetObjectItemCaseSensitive(choice, "logprobs");
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(lp, "content");
  const cJSON *top =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(content, 0), "top_logprobs");
  if (!cJSON_IsArray(top)) return false;
  double *mass = calloc((size_t)n_labels, sizeof *mass);
  if (!mass) return false;
  double total = 0;
  const cJSON *alt;
  cJSON_ArrayForEach(alt, top) {
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(alt, "token");
    const cJSON *lpv = cJSON_GetObjectItemCaseSensitive(alt, "logprob");
    if (!cJSON_IsString(tok) || !cJSON_IsNumber(lpv)) continue;
    int k = token_label(tok->valuestring, labels, n_labels);
    if (k < 0 || !isfinite(lpv->valuedouble) || lpv->valuedouble > 0) continue;
    double p = exp(lpv->valuedouble);
    mass[k] += p;
    total += p;
  }
  bool ok = total > 0;
  for (int i = 0; ok && i < n_labels; i++) soft[i] = (float)(mass[i] / total);
  free(mass);
  return ok;
}

static int usage_tokens(const cJSON *usage, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(usage, name);
  if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9) return -1;
  return (int)v->valuedouble;
}

/* Parses body as JSON; NULL with the error set when it is not. */
static cJSON *parse_body(const char *body, us_err *err) {
  if (!body) {
    us_err_set(err, US_ERR_TEACHER, "empty response body");
    return NULL;
  }
  size_t len = strlen(body);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
  if (!root)
    us_err_set(err, US_ERR_TEACHER,
               "response is not valid JSON (malformed or truncated at byte %zu of %zu)",
               end ? (size_t)(end - body) : (size_t)0, len);
  return root;
}

/* The first choice of a parsed response and its content string, or US_ERR_TEACHER saying what
 * the body holds instead. */
static us_status first_choice(const cJSON *root, const cJSON **choice, const cJSON **text,
                              us_err *err) {
  const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
  *choice = cJSON_GetArrayItem(choices, 0);
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(*choice, "message");
  *text = cJSON_GetObjectItemCaseSensitive(msg, "content");
  if (cJSON_IsObject(root) && cJSON_IsArray(choices) && cJSON_IsString(*text)) return US_OK;
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
  const cJSON *em = cJSON_GetObjectItemCaseSensitive(e, "message");
  if (cJSON_IsString(em))
    return us_err_set(err, US_ERR_TEACHER, "response carries an error: %.300s", em->valuestring);
  return us_err_set(err, US_ERR_TEACHER, "response has no %s",
                    !cJSON_IsArray(choices) || !*choice ? "\"choices\" array"
                                                        : "choices[0].message.content string");
}

us_status us_response_parse(const char *body, char *const *labels, int n_labels, char **content,
                            int *prompt_tokens, int *completion_tokens, float *soft, bool *has_soft,
                            us_err *err) {
  *content = NULL;
  *prompt_tokens = *completion_tokens = -1;
  if (has_soft) *has_soft = false;
  cJSON *root = parse_body(body, err);
  if (!root) return US_ERR_TEACHER;
  const cJSON *choice, *text;
  us_status st = first_choice(root, &choice, &text, err);
  if (st) goto done;
  *content = us_strdup(text->valuestring);
  if (!*content) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory copying the response content");
    goto done;
  }
  const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
  *prompt_tokens = usage_tokens(usage, "prompt_tokens");
  *completion_tokens = usage_tokens(usage, "completion_tokens");
  if (soft && has_soft && labels && n_labels > 0)
    *has_soft = soft_from_logprobs(choice, labels, n_labels, soft);
done:
  cJSON_Delete(root);
  return st;
}

static void usage_of(const cJSON *root, us_usage *u) {
  u->prompt_tokens = u->completion_tokens = -1;
  u->cached_tokens = u->reasoning_tokens = 0;
  const cJSON *usage = cJSON_GetObjectItemCaseSensitive(root, "usage");
  if (cJSON_IsObject(usage)) {
    u->prompt_tokens = usage_tokens(usage, "prompt_tokens");
    u->completion_tokens = usage_tokens(usage, "completion_tokens");
    int total = usage_tokens(usage, "total_tokens");
    int cached = usage_tokens(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details"),
                              "cached_tokens");
    int reasoning = usage_tokens(
        cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details"), "reasoning_tokens");
    if (cached > 0 && u->prompt_tokens >= 0)
      u->cached_tokens = cached < u->prompt_tokens ? cached : u->prompt_tokens;
    if (reasoning > 0 && u->completion_tokens >= 0) {
      u->reasoning_tokens = reasoning;
      bool outside =
          reasoning > u->completion_tokens ||
          (total >= 0 && u->prompt_tokens >= 0 &&
           (int64_t)total == (int64_t)u->prompt_tokens + u->completion_tokens + reasoning);
      if (outside) u->completion_tokens += reasoning;
    }
  }
}

void us_response_usage(const char *body, us_usage *u) {
  cJSON *root = body ? cJSON_Parse(body) : NULL;
  usage_of(root, u);
  cJSON_Delete(root);
}

us_status us_response_check(const char *body, us_usage *u, us_err *err) {
  usage_of(NULL, u);
  cJSON *root = parse_body(body, err);
  if (!root) return US_ERR_TEACHER;
  const cJSON *choice, *text;
  us_status st = first_choice(root, &choice, &text, err);
  if (!st) usage_of(root, u);
  cJSON_Delete(root);
  return st;
}
