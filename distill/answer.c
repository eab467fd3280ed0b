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

/* Lower-cased ASCII with white space and ASCII punctuation removed; other bytes (UTF-8) kept.
 * out holds at least strlen(s) + 1 bytes. */
static void squash(const char *s, char *out) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p < 0x80 && (isspace(*p) || ispunct(*p) || iscntrl(*p))) continue;
    out[n++] = (char)(*p < 0x80 ? tolower(*p) : *p);
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

/* True when needle (nn words) occurs as a contiguous run of hay (nh words). */
static bool words_contain(char **hay, int nh, char **needle, int nn) {
  if (nn == 0 || nn > nh) return false;
  for (int i = 0; i + nn <= nh; i++) {
    int j = 0;
    while (j < nn && strcmp(hay[i + j], needle[j]) == 0) j++;
    if (j == nn) return true;
  }
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

/* Third rule: the labels whose words occur in the answer; a label whose words are themselves
 * contained in another matching label's words ("card" inside "card arrival") yields to it.
 * Returns the one survivor, or -1 if none or several. */
static int map_contained(const char *answer, char *const *labels, int n_labels) {
  int result = -1;
  word_seq a = {0}, *ls = calloc((size_t)n_labels, sizeof *ls);
  bool *hit = calloc((size_t)n_labels, sizeof *hit);
  if (!ls || !hit || !word_seq_make(answer, &a)) goto done;
  for (int i = 0; i < n_labels; i++) {
    if (!word_seq_make(labels[i], &ls[i])) goto done;
    hit[i] = words_contain(a.words, a.n, ls[i].words, ls[i].n);
  }
  int survivors = 0, last = -1;
  for (int i = 0; i < n_labels; i++) {
    if (!hit[i]) continue;
    bool inside_other = false;
    for (int j = 0; j < n_labels && !inside_other; j++)
      inside_other = j != i && hit[j] && ls[j].n > ls[i].n &&
                     words_contain(ls[j].words, ls[j].n, ls[i].words, ls[i].n);
    if (!inside_other) survivors++, last = i;
  }
  if (survivors == 1) result = last;
done:
  word_seq_free(&a);
  if (ls)
    for (int i = 0; i < n_labels; i++) word_seq_free(&ls[i]);
  free(ls);
  free(hit);
  return result;
}

int us_answer_map_label(const char *answer, char *const *labels, int n_labels) {
  if (!answer || !labels || n_labels <= 0) return -1;
  for (int i = 0; i < n_labels; i++)
    if (strcmp(answer, labels[i]) == 0) return i;

  size_t alen = strlen(answer);
  char *sa = malloc(alen + 1);
  if (!sa) return -1;
  squash(answer, sa);
  int found = -1, count = 0;
  for (int i = 0; i < n_labels && sa[0]; i++) {
    char *sl = malloc(strlen(labels[i]) + 1);
    if (!sl) break;
    squash(labels[i], sl);
    if (sl[0] && strcmp(sa, sl) == 0) found = i, count++;
    free(sl);
  }
  free(sa);
  if (count == 1) return found;
  if (count > 1) return -1; /* two labels that differ only in case or punctuation */
  return map_contained(answer, labels, n_labels);
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

us_status us_response_parse(const char *body, char *const *labels, int n_labels, char **content,
                            int *prompt_tokens, int *completion_tokens, float *soft, bool *has_soft,
                            us_err *err) {
  *content = NULL;
  *prompt_tokens = *completion_tokens = -1;
  if (has_soft) *has_soft = false;
  if (!body) return us_err_set(err, US_ERR_TEACHER, "empty response body");
  size_t len = strlen(body);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
  if (!root)
    return us_err_set(err, US_ERR_TEACHER,
                      "response is not valid JSON (malformed or truncated at byte %zu of %zu)",
                      end ? (size_t)(end - body) : (size_t)0, len);
  us_status st = US_OK;
  const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
  const cJSON *choice = cJSON_GetArrayItem(choices, 0);
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(msg, "content");
  if (!cJSON_IsObject(root) || !cJSON_IsArray(choices) || !cJSON_IsString(text)) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *em = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (cJSON_IsString(em))
      st = us_err_set(err, US_ERR_TEACHER, "response carries an error: %.300s", em->valuestring);
    else
      st = us_err_set(err, US_ERR_TEACHER, "response has no %s",
                      !cJSON_IsArray(choices) || !choice ? "\"choices\" array"
                                                         : "choices[0].message.content string");
    goto done;
  }
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

void us_response_usage(const char *body, us_usage *u) {
  u->prompt_tokens = u->completion_tokens = -1;
  u->cached_tokens = u->reasoning_tokens = 0;
  cJSON *root = body ? cJSON_Parse(body) : NULL;
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
  cJSON_Delete(root);
}
