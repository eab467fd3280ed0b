/* The mock's self-instruct answers: a question-writing request (data.question_template) gets
 * numbered questions made from the chunk's sentences, and an answer request
 * (data.answer_template) gets the chunk's sentence sharing the most words with the question. */
#define _GNU_SOURCE /* strcasestr */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "mock.h"

#define MAX_SENTENCES 256
#define QUESTION_WORDS 8

/* Matches message against template (literal pieces around {chunk}, {n} and {question}); on a
 * match stores copies of the values in chunk / n / question (those absent stay NULL) and returns
 * true. The first piece must start the message and the last must end it; a middle piece is
 * found at its last occurrence before the tail, since the chunk may hold anything. */
static bool template_match(const char *tpl, const char *msg, char **chunk, char **n,
                           char **question) {
  static const char *const names[] = {"{chunk}", "{n}", "{question}"};
  char **slots[] = {chunk, n, question};
  *chunk = *n = *question = NULL;
  const char *t = tpl, *m = msg, *end = msg + strlen(msg);
  char **pending = NULL; /* the slot whose value ends where the next literal starts */
  for (;;) {
    const char *next = NULL;
    int which = -1;
    for (int i = 0; i < 3; i++) {
      const char *hit = strstr(t, names[i]);
      if (hit && (!next || hit < next)) next = hit, which = i;
    }
    size_t lit = next ? (size_t)(next - t) : strlen(t);
    const char *at = NULL;
    if (!pending) {
      at = strncmp(m, t, lit) == 0 ? m : NULL;
    } else if (!next) {
      at = (size_t)(end - m) >= lit && memcmp(end - lit, t, lit) == 0 ? end - lit : NULL;
    } else {
      for (const char *p = m; lit && p + lit <= end; p++)
        if (memcmp(p, t, lit) == 0) at = p;
      if (!lit) at = m;
    }
    if (!at) goto fail;
    if (pending) {
      *pending = strndup(m, (size_t)(at - m));
      if (!*pending) goto fail;
    }
    m = at + lit;
    if (!next) return m == end;
    pending = slots[which];
    t = next + strlen(names[which]);
  }
fail:
  free(*chunk), free(*n), free(*question);
  *chunk = *n = *question = NULL;
  return false;
}

/* Splits text into sentences (ending at . ? ! or a line break), trimmed, none empty. */
static int sentences_of(const char *text, char **out, int max) {
  int count = 0;
  const char *p = text;
  while (*p && count < max) {
    while (*p && isspace((unsigned char)*p)) p++;
    if (*p == '#') { /* a markdown heading names a section; it answers nothing */
      while (*p && *p != '\n') p++;
      continue;
    }
    const char *start = p;
    while (*p && *p != '\n' &&
           !((*p == '.' || *p == '?' || *p == '!') && (!p[1] || isspace((unsigned char)p[1]))))
      p++;
    const char *stop = *p && *p != '\n' ? p + 1 : p;
    while (stop > start && isspace((unsigned char)stop[-1])) stop--;
    if (stop - start >= 8) out[count++] = strndup(start, (size_t)(stop - start));
    if (*p) p++;
  }
  return count;
}

/* The first QUESTION_WORDS words of s, lower-cased, without the final punctuation. */
static void topic_of(const char *s, us_buf *b) {
  int words = 0;
  bool in_word = false;
  for (const char *p = s; *p && words <= QUESTION_WORDS; p++) {
    bool space = isspace((unsigned char)*p);
    if (!space && !in_word && ++words > QUESTION_WORDS) break;
    in_word = !space;
    if (strchr(".?!#*", *p)) continue;
    char ch = (char)tolower((unsigned char)*p);
    us_buf_append(b, &ch, 1);
  }
  while (b->len && isspace((unsigned char)b->data[b->len - 1])) b->len--;
  us_buf_append(b, "", 1);
  b->len--;
}

static char *questions_answer(const char *chunk, int n) {
  char *sent[MAX_SENTENCES];
  int ns = sentences_of(chunk, sent, MAX_SENTENCES);
  us_buf b;
  us_buf_init(&b, 0);
  us_buf_puts(&b, "");
  for (int k = 0; k < n && k < ns; k++) {
    us_buf_printf(&b, "%s%d. What does the passage say about ", k ? "\n" : "", k + 1);
    topic_of(sent[k], &b);
    us_buf_puts(&b, "?");
  }
  for (int i = 0; i < ns; i++) free(sent[i]);
  return us_buf_steal(&b);
}

/* Words of a (lower-cased, 3+ letters) that also occur in b. */
static int shared_words(const char *a, const char *b) {
  int shared = 0;
  char word[64];
  for (const char *p = a; *p;) {
    while (*p && !isalnum((unsigned char)*p)) p++;
    size_t n = 0;
    while (isalnum((unsigned char)*p)) {
      if (n + 1 < sizeof word) word[n++] = (char)tolower((unsigned char)*p);
      p++;
    }
    word[n] = '\0';
    if (n < 3) continue;
    for (const char *q = b; (q = strcasestr(q, word)) != NULL; q++) {
      bool left = q == b || !isalnum((unsigned char)q[-1]);
      bool right = !isalnum((unsigned char)q[n]);
      if (left && right) {
        shared++;
        break;
      }
    }
  }
  return shared;
}

static char *answer_from_chunk(const char *chunk, const char *question) {
  char *sent[MAX_SENTENCES];
  int ns = sentences_of(chunk, sent, MAX_SENTENCES);
  int best = -1, best_score = -1;
  for (int i = 0; i < ns; i++) {
    int score = shared_words(question, sent[i]);
    if (score > best_score) best = i, best_score = score;
  }
  char *out = strdup(best >= 0 ? sent[best] : "The passage does not say.");
  for (int i = 0; i < ns; i++) free(sent[i]);
  return out;
}

char *mock_selfinstruct_answer(const mock_options *o, const char *user_message) {
  char *chunk = NULL, *n = NULL, *question = NULL, *out = NULL;
  if (template_match(o->answer_template, user_message, &chunk, &n, &question) && chunk &&
      question) {
    out = answer_from_chunk(chunk, question);
  } else {
    free(chunk), free(n), free(question);
    if (template_match(o->question_template, user_message, &chunk, &n, &question) && chunk)
      out = questions_answer(chunk, n ? atoi(n) : 3);
  }
  free(chunk), free(n), free(question);
  return out;
}
