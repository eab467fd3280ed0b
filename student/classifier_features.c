/* Feature extraction for the classifier: tokens (lower-cased, ASCII punctuation split off as
 * its own token; options keep case, drop punctuation, fold digits and URLs), the word
 * vocabulary, word n-grams and character n-grams hashed into buckets.
 * Keys are stable across versions: they are saved in model files. */
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/utf8.h"
#include "student/classifier_int.h"

#define MAX_TOKEN 64 /* longer tokens are cut (their n-grams still count) */
#define MAX_NGRAM_WORDS 8

/* ---- key map (uint32 key -> int32) ---- */

static uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

us_status us__keymap_init(us__keymap *km, uint32_t expected, us_err *err) {
  uint32_t cap = 16;
  while (cap < expected * 2u && cap < (1u << 31)) cap <<= 1;
  km->keys = malloc((size_t)cap * sizeof *km->keys);
  km->vals = malloc((size_t)cap * sizeof *km->vals);
  if (!km->keys || !km->vals) {
    us__keymap_free(km);
    return us_err_set(err, US_ERR_NOMEM, "out of memory for a feature map of %u keys", expected);
  }
  memset(km->keys, 0xff, (size_t)cap * sizeof *km->keys);
  km->mask = cap - 1;
  km->count = 0;
  return US_OK;
}

void us__keymap_free(us__keymap *km) {
  free(km->keys);
  free(km->vals);
  km->keys = NULL;
  km->vals = NULL;
  km->mask = km->count = 0;
}

int32_t us__keymap_get(const us__keymap *km, uint32_t key) {
  if (!km->keys) return -1;
  for (uint32_t i = mix32(key) & km->mask;; i = (i + 1) & km->mask) {
    if (km->keys[i] == key) return km->vals[i];
    if (km->keys[i] == UINT32_MAX) return -1;
  }
}

int32_t us__keymap_put(us__keymap *km, uint32_t key, int32_t val) {
  if (km->count * 2 > km->mask) return -2;
  for (uint32_t i = mix32(key) & km->mask;; i = (i + 1) & km->mask) {
    if (km->keys[i] == key) return km->vals[i];
    if (km->keys[i] == UINT32_MAX) {
      km->keys[i] = key;
      km->vals[i] = val;
      km->count++;
      return val;
    }
  }
}

int32_t us__keymap_add(us__keymap *km, uint32_t key, int32_t delta) {
  for (uint32_t i = mix32(key) & km->mask;; i = (i + 1) & km->mask) {
    if (km->keys[i] == key) return km->vals[i] += delta;
    if (km->keys[i] == UINT32_MAX) {
      if (km->count * 2 > km->mask) return -2;
      km->keys[i] = key;
      km->vals[i] = delta;
      km->count++;
      return delta;
    }
  }
}

us__u128 us__fastmod_magic(uint64_t d) {
  return ~(us__u128)0 / d + 1;
}

/* ---- tokens ---- */

static int is_space(unsigned char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}
static int is_punct(unsigned char c) {
  return c < 128 && c != '\'' &&
         ((c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
          (c >= '{' && c <= '~'));
}

/* The tokeniser's options, read once from the params (the defaults: lower-case, punctuation
 * as tokens, digits and URLs as they are). */
typedef struct tok_opts {
  bool lowercase, punctuation, fold_digits, fold_urls;
} tok_opts;

static tok_opts tok_opts_of(const us_classifier_params *p) {
  return (tok_opts){p->lowercase, p->punctuation, p->fold_digits, p->fold_urls};
}

#define URL_WORD "<url>"

/* True when s starts with prefix, ASCII case-insensitively. */
static bool starts_with_nocase(const unsigned char *s, const char *prefix) {
  for (; *prefix; s++, prefix++) {
    unsigned char c = *s >= 'A' && *s <= 'Z' ? (unsigned char)(*s + 32) : *s;
    if (c != (unsigned char)*prefix) return false;
  }
  return true;
}

static bool is_url_start(const unsigned char *s) {
  return starts_with_nocase(s, "http://") || starts_with_nocase(s, "https://") ||
         starts_with_nocase(s, "www.");
}

/* Reads the next token from *pos into tok (at most MAX_TOKEN bytes, lower-cased, digits and
 * URLs folded as o says); returns its length, 0 at the end of the text. */
static int next_token(const char **pos, char tok[MAX_TOKEN], const tok_opts *o) {
  const unsigned char *s = (const unsigned char *)*pos;
  while (*s && (is_space(*s) || (!o->punctuation && is_punct(*s)))) s++;
  if (!*s) {
    *pos = (const char *)s;
    return 0;
  }
  int n = 0;
  if (o->fold_urls && is_url_start(s)) { /* the whole URL, up to the next space */
    while (*s && !is_space(*s)) s++;
    memcpy(tok, URL_WORD, sizeof URL_WORD - 1);
    *pos = (const char *)s;
    return (int)sizeof URL_WORD - 1;
  }
  if (is_punct(*s)) {
    tok[n++] = (char)*s++;
  } else {
    for (; *s && !is_space(*s) && !is_punct(*s); s++) {
      if (n >= MAX_TOKEN) continue;
      unsigned char c = *s;
      if (o->lowercase && c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
      if (o->fold_digits && c >= '0' && c <= '9') c = '0';
      tok[n++] = (char)c;
    }
  }
  *pos = (const char *)s;
  return n;
}

/* ---- vocabulary ---- */

void us__vocab_free(us__vocab *v) {
  for (int i = 0; i < v->n_words; i++) free(v->words[i]);
  free(v->words);
  free(v->slots);
  memset(v, 0, sizeof *v);
}

static uint64_t word_hash(const char *w, int len) {
  return us_hash64(w, (size_t)len, 0);
}

static int vocab_find_hashed(const us__vocab *v, const char *word, int len, uint64_t h) {
  if (!v->slots) return -1;
  for (uint32_t i = (uint32_t)h & v->mask;; i = (i + 1) & v->mask) {
    int32_t id = v->slots[i];
    if (id < 0) return -1;
    if (strncmp(v->words[id], word, (size_t)len) == 0 && v->words[id][len] == '\0') return id;
  }
}

int us__vocab_find(const us__vocab *v, const char *word, int len) {
  return vocab_find_hashed(v, word, len, word_hash(word, len));
}

static us_status vocab_grow_slots(us__vocab *v, us_err *err) {
  uint32_t cap = v->slots ? (v->mask + 1) * 2 : 1024;
  int32_t *slots = malloc((size_t)cap * sizeof *slots);
  if (!slots) return us_err_set(err, US_ERR_NOMEM, "out of memory for the vocabulary");
  memset(slots, 0xff, (size_t)cap * sizeof *slots);
  for (int id = 0; id < v->n_words; id++) {
    uint32_t i = (uint32_t)word_hash(v->words[id], (int)strlen(v->words[id])) & (cap - 1);
    while (slots[i] >= 0) i = (i + 1) & (cap - 1);
    slots[i] = id;
  }
  free(v->slots);
  v->slots = slots;
  v->mask = cap - 1;
  return US_OK;
}

/* Adds word (taking ownership of the malloc'd copy) if absent. */
static us_status vocab_add(us__vocab *v, const char *word, int len, us_err *err) {
  if (us__vocab_find(v, word, len) >= 0) return US_OK;
  if (!v->slots || (uint32_t)(v->n_words + 1) * 2 > v->mask + 1) {
    us_status st = vocab_grow_slots(v, err);
    if (st != US_OK) return st;
  }
  if (v->n_words == v->cap) {
    int cap = v->cap ? v->cap * 2 : 1024;
    char **w = realloc(v->words, (size_t)cap * sizeof *w);
    if (!w) return us_err_set(err, US_ERR_NOMEM, "out of memory for the vocabulary");
    v->words = w;
    v->cap = cap;
  }
  char *copy = malloc((size_t)len + 1);
  if (!copy) return us_err_set(err, US_ERR_NOMEM, "out of memory for the vocabulary");
  memcpy(copy, word, (size_t)len);
  copy[len] = '\0';
  uint32_t i = (uint32_t)word_hash(word, len) & v->mask;
  while (v->slots[i] >= 0) i = (i + 1) & v->mask;
  v->slots[i] = v->n_words;
  v->words[v->n_words++] = copy;
  return US_OK;
}

us_status us__vocab_build(us__vocab *v, const char *const *texts, size_t n, int min_count,
                          us_err *err) {
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  p.min_count = min_count;
  return us__vocab_build_with(v, &p, texts, n, err);
}

us_status us__vocab_build_with(us__vocab *v, const us_classifier_params *p,
                               const char *const *texts, size_t n, us_err *err) {
  char tok[MAX_TOKEN];
  tok_opts o = tok_opts_of(p);
  int min_count = p->min_count;
  for (size_t i = 0; i < n; i++) {
    const char *pos = texts[i];
    int len;
    while ((len = next_token(&pos, tok, &o)) > 0) {
      us_status st = vocab_add(v, tok, len, err);
      if (st != US_OK) return st;
    }
  }
  if (min_count <= 1 || v->n_words == 0) return US_OK;
  /* a second pass counts, then the vocabulary is rebuilt from the frequent words in id order */
  int *count = calloc((size_t)v->n_words, sizeof *count);
  if (!count) return us_err_set(err, US_ERR_NOMEM, "out of memory counting words");
  for (size_t i = 0; i < n; i++) {
    const char *pos = texts[i];
    int len;
    while ((len = next_token(&pos, tok, &o)) > 0) count[us__vocab_find(v, tok, len)]++;
  }
  us__vocab all = *v;
  memset(v, 0, sizeof *v);
  us_status st = US_OK;
  for (int id = 0; st == US_OK && id < all.n_words; id++)
    if (count[id] >= min_count) st = vocab_add(v, all.words[id], (int)strlen(all.words[id]), err);
  free(count);
  us__vocab_free(&all);
  return st;
}

us_status us__vocab_from_words(us__vocab *v, char **words, int n_words, us_err *err) {
  for (int i = 0; i < n_words; i++) {
    int len = (int)strlen(words[i]);
    if (us__vocab_find(v, words[i], len) >= 0)
      return us_err_set(err, US_ERR_FORMAT, "vocabulary word %d ('%.40s') is repeated", i,
                        words[i]);
    us_status st = vocab_add(v, words[i], len, err);
    if (st != US_OK) return st;
  }
  return US_OK;
}

/* ---- features ----
 * Keys must not change between versions (model files hold them): a key is us_hash64 of the
 * n-gram's bytes (FNV-1a after eight seed bytes) modulo buckets. The hash is computed here
 * incrementally (us_hash64_start, then US_FNV_STEP: a longer n-gram continues the state of its
 * prefix) and the modulo by multiplication; test_classifier checks both against us_hash64 and %. */

typedef struct feature_ctx {
  const us_classifier_params *p;
  uint32_t base; /* n_words */
  uint64_t buckets;
  us__u128 magic;
  uint64_t h1; /* us_hash64_start(1), the state char n-grams start from */
  us__feature_fn emit;
  void *user;
} feature_ctx;

static inline uint32_t bucket_key(const feature_ctx *c, uint64_t h) {
  return c->base + (uint32_t)us__fastmod(h, c->magic, c->buckets);
}

/* Character n-grams of "<tok>", minn..maxn UTF-8 characters each. */
static int char_ngrams(const feature_ctx *c, const char *tok, int len) {
  unsigned char w[MAX_TOKEN + 2];
  int wl = len + 2, count = 0, minn = c->p->minn, maxn = c->p->maxn;
  w[0] = '<';
  memcpy(w + 1, tok, (size_t)len);
  w[wl - 1] = '>';
  for (int i = 0; i < wl; i++) {
    if (US_UTF8_IS_CONTINUATION(w[i])) continue; /* not the start of a character */
    uint64_t h = c->h1;
    int j = i;
    for (int n = 1; n <= maxn && j < wl; n++) {
      do { /* one UTF-8 character */
        h = US_FNV_STEP(h, w[j]);
        j++;
      } while (j < wl && US_UTF8_IS_CONTINUATION(w[j]));
      if (n >= minn) {
        c->emit(c->user, bucket_key(c, h));
        count++;
      }
    }
  }
  return count;
}

int us__features(const us_classifier_params *p, const us__vocab *v, const char *text,
                 us__feature_fn emit, void *user) {
  char tok[MAX_TOKEN];
  uint64_t recent[MAX_NGRAM_WORDS] = {0}; /* hashes of the last tokens, most recent first */
  int n_seen = 0, count = 0, len;
  int max_ngram = p->word_ngrams < MAX_NGRAM_WORDS ? p->word_ngrams : MAX_NGRAM_WORDS;
  feature_ctx c = {p, (uint32_t)v->n_words, (uint64_t)p->buckets, 0, 0, emit, user};
  if (p->maxn > 0 || max_ngram > 1) c.magic = us__fastmod_magic(c.buckets);
  if (p->maxn > 0) c.h1 = us_hash64_start(1);
  tok_opts o = tok_opts_of(p);
  const char *pos = text ? text : "";
  while ((len = next_token(&pos, tok, &o)) > 0) {
    uint64_t h = word_hash(tok, len);
    int id = vocab_find_hashed(v, tok, len, h);
    if (id >= 0) {
      emit(user, (uint32_t)id);
      count++;
    }
    if (p->maxn > 0) count += char_ngrams(&c, tok, len);
    if (max_ngram < 2) continue;
    memmove(recent + 1, recent, (MAX_NGRAM_WORDS - 1) * sizeof recent[0]);
    recent[0] = h;
    n_seen++;
    uint64_t g = h;
    for (int n = 2; n <= max_ngram && n <= n_seen; n++) {
      g = g * 116049371u + recent[n - 1];
      emit(user, bucket_key(&c, g ^ (uint64_t)n));
      count++;
    }
  }
  return count;
}
