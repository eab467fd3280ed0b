/* Byte-level BPE: training on word counts with incremental pair counts, encoding by merge rank,
 * exact decoding, and the serialised form stored inside the language-model file. */
#include "student/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/hash.h"
#include "student/bpe_int.h"

/* Longest pre-split word: bounds encoding cost on pathological input (no spaces for megabytes). */
#define WORD_MAX 64
#define TOKEN_MAX 65536      /* longest token a tokeniser file may hold, in bytes */
#define TABLE_MAX (64 << 20) /* all its tokens' bytes together */

/* ---- u64 -> int hash table (open addressing, key 0 = empty) ---- */

typedef struct u64map {
  uint64_t *keys;
  int32_t *vals;
  size_t cap, n;
} u64map;

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

static uint64_t pair_key(int32_t a, int32_t b) {
  return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static int32_t *map_slot(uint64_t *keys, int32_t *vals, size_t cap, uint64_t key, int *found) {
  size_t i = mix64(key) & (cap - 1);
  while (keys[i] && keys[i] != key) i = (i + 1) & (cap - 1);
  *found = keys[i] == key;
  keys[i] = key;
  return &vals[i];
}

static int map_lookup(const uint64_t *keys, const int32_t *vals, size_t cap, uint64_t key) {
  if (!cap) return -1;
  size_t i = mix64(key) & (cap - 1);
  while (keys[i]) {
    if (keys[i] == key) return vals[i];
    i = (i + 1) & (cap - 1);
  }
  return -1;
}

static int map_grow(u64map *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  uint64_t *keys = calloc(cap, sizeof *keys);
  int32_t *vals = malloc(cap * sizeof *vals);
  if (!keys || !vals) {
    free(keys);
    free(vals);
    return -1;
  }
  int found;
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i]) *map_slot(keys, vals, cap, m->keys[i], &found) = m->vals[i];
  free(m->keys);
  free(m->vals);
  m->keys = keys;
  m->vals = vals;
  m->cap = cap;
  return 0;
}

/* Slot for key (inserted with value -1 when new); NULL when out of memory. */
static int32_t *map_get_or_add(u64map *m, uint64_t key) {
  if ((m->n + 1) * 2 > m->cap && map_grow(m) != 0) return NULL;
  int found;
  int32_t *v = map_slot(m->keys, m->vals, m->cap, key, &found);
  if (!found) {
    *v = -1;
    m->n++;
  }
  return v;
}

static void map_free(u64map *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

/* ---- pre-splitting into words ---- */

enum { CLS_LETTER, CLS_DIGIT, CLS_SPACE, CLS_OTHER };

static int byte_class(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return CLS_LETTER;
  if (c >= '0' && c <= '9') return CLS_DIGIT;
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') return CLS_SPACE;
  return CLS_OTHER;
}

/* End of the word that starts at i: an optional leading space then a run of one class; a run
 * of whitespace leaves its last space to the word after it (GPT-2's habit, which on SNIPS
 * trained better than spaces as words of their own: 64% against 48% slot F1 at equal budget,
 * the sequences being a third shorter). At most WORD_MAX bytes. */
static size_t word_end(const unsigned char *s, size_t len, size_t i) {
  size_t j = i;
  if (s[j] == ' ' && j + 1 < len && byte_class(s[j + 1]) != CLS_SPACE) j++;
  int cls = byte_class(s[j]);
  j++;
  while (j < len && j - i < WORD_MAX && byte_class(s[j]) == cls) j++;
  if (cls == CLS_SPACE && j < len && j - i > 1 && s[j - 1] == ' ' && byte_class(s[j]) != CLS_SPACE)
    j--;
  return j;
}

/* ---- token byte table and merge ranks ---- */

int us__bpe_build_ranks(us_bpe *bpe) {
  u64map ranks = {0};
  for (int m = 0; m < bpe->n_merges; m++) {
    int32_t *v = map_get_or_add(&ranks, pair_key(bpe->pairs[2 * m], bpe->pairs[2 * m + 1]));
    if (!v) {
      map_free(&ranks);
      return -1;
    }
    if (*v < 0) *v = m;
  }
  bpe->rank_keys = ranks.keys;
  bpe->rank_vals = ranks.vals;
  bpe->rank_cap = ranks.cap;
  return 0;
}

static us_status build_tables(us_bpe *bpe, us_err *err) {
  int vocab = us_bpe_vocab_size(bpe);
  bpe->tok_off = malloc((size_t)(vocab + 1) * sizeof *bpe->tok_off);
  size_t total = 256;
  uint32_t *lens = malloc((size_t)vocab * sizeof *lens);
  if (!bpe->tok_off || !lens) goto nomem;
  for (int t = 0; t < 256; t++) lens[t] = 1;
  for (int m = 0; m < bpe->n_merges; m++) {
    /* Merges that join a token with itself double its length: a corrupt file could ask for
     * gigabytes (and wrap the 32-bit offsets). Our tokens are words of at most WORD_MAX bytes;
     * TOKEN_MAX leaves room for other tokenisers' longer tokens. */
    size_t len = (size_t)lens[bpe->pairs[2 * m]] + lens[bpe->pairs[2 * m + 1]];
    if (len > TOKEN_MAX || total + len > TABLE_MAX) {
      free(lens);
      return us_err_set(err, US_ERR_FORMAT,
                        "bpe: merge %d makes a token of %zu bytes (%zu bytes in all so far); "
                        "tokens are at most %d bytes and %d MiB in all: the tokeniser is corrupt",
                        m, len, total + len, TOKEN_MAX, TABLE_MAX >> 20);
    }
    lens[256 + m] = (uint32_t)len;
    total += len;
  }
  for (int t = 256 + bpe->n_merges; t < vocab; t++) lens[t] = 0;
  bpe->tok_data = malloc(total);
  if (!bpe->tok_data) goto nomem;
  bpe->tok_off[0] = 0;
  for (int t = 0; t < vocab; t++) bpe->tok_off[t + 1] = bpe->tok_off[t] + lens[t];
  for (int t = 0; t < 256; t++) bpe->tok_data[t] = (unsigned char)t;
  for (int m = 0; m < bpe->n_merges; m++) {
    int a = bpe->pairs[2 * m], b = bpe->pairs[2 * m + 1];
    unsigned char *dst = bpe->tok_data + bpe->tok_off[256 + m];
    memcpy(dst, bpe->tok_data + bpe->tok_off[a], lens[a]);
    memcpy(dst + lens[a], bpe->tok_data + bpe->tok_off[b], lens[b]);
  }
  free(lens);
  lens = NULL;
  if (us__bpe_build_ranks(bpe) != 0) goto nomem;
  bpe->chat_native[0] = 256 + bpe->n_merges;     /* BOS */
  bpe->chat_native[1] = 256 + bpe->n_merges + 2; /* SEP */
  return US_OK;
nomem:
  free(lens);
  return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory building the token table");
}

us_status us_bpe_from_merges(const int32_t *pairs, int n_merges, us_bpe **out, us_err *err) {
  *out = NULL;
  if (n_merges < 0 || n_merges + US_BPE_MIN_VOCAB > US_BPE_MAX_VOCAB)
    return us_err_set(err, US_ERR_FORMAT, "bpe: %d merges is outside 0..%d", n_merges,
                      US_BPE_MAX_VOCAB - US_BPE_MIN_VOCAB);
  for (int m = 0; m < n_merges; m++)
    for (int k = 0; k < 2; k++)
      if (pairs[2 * m + k] < 0 || pairs[2 * m + k] >= 256 + m)
        return us_err_set(err, US_ERR_FORMAT,
                          "bpe: merge %d refers to token %d, expected an earlier token (< %d)", m,
                          (int)pairs[2 * m + k], 256 + m);
  us_bpe *bpe = calloc(1, sizeof *bpe);
  if (!bpe) return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory");
  bpe->n_merges = n_merges;
  bpe->pairs = malloc((size_t)(n_merges ? n_merges : 1) * 2 * sizeof *bpe->pairs);
  if (!bpe->pairs) {
    us_bpe_free(bpe);
    return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory");
  }
  if (n_merges) memcpy(bpe->pairs, pairs, (size_t)n_merges * 2 * sizeof *pairs);
  us_status st = build_tables(bpe, err);
  if (st != US_OK) {
    us_bpe_free(bpe);
    return st;
  }
  *out = bpe;
  return US_OK;
}

void us_bpe_free(us_bpe *bpe) {
  if (!bpe) return;
  free(bpe->pairs);
  free(bpe->tok_off);
  free(bpe->tok_data);
  free(bpe->rank_keys);
  free(bpe->rank_vals);
  us__bpe_vocab_free(bpe->vocab);
  free(bpe);
}

int us_bpe_vocab_size(const us_bpe *bpe) {
  if (bpe->vocab) return bpe->vocab->n_vocab;
  return 256 + bpe->n_merges + US_BPE_N_SPECIAL;
}

us_bpe_chat us_bpe_chat_format(const us_bpe *bpe) {
  if (bpe->vocab) return bpe->vocab->chat;
  us_bpe_chat c = {bpe->chat_native, 1, bpe->chat_native + 1, 1, 256 + bpe->n_merges + 1, 0};
  return c;
}
int us_bpe_n_merges(const us_bpe *bpe) {
  return bpe->n_merges;
}

us_bpe_special us_bpe_specials(const us_bpe *bpe) {
  if (bpe->vocab) return bpe->vocab->specials;
  int base = 256 + bpe->n_merges;
  us_bpe_special s = {base, base + 1, base + 2, base + 3};
  return s;
}

const unsigned char *us_bpe_token_bytes(const us_bpe *bpe, int token, int *len) {
  if (token < 0 || token >= us_bpe_vocab_size(bpe)) {
    *len = 0;
    return bpe->tok_data;
  }
  *len = (int)(bpe->tok_off[token + 1] - bpe->tok_off[token]);
  return bpe->tok_data + bpe->tok_off[token];
}

/* ---- training ---- */

typedef struct pair_stat {
  int32_t a, b;
  int64_t count;
  int32_t *words; /* words that contained the pair at some point (may be stale) */
  int n_words, cap_words;
} pair_stat;

typedef struct trainer {
  u64map index; /* pair key -> index into stats */
  pair_stat *stats;
  int n_stats, cap_stats;
} trainer;

/* Adds delta to the count of (a, b), recording word w when add_word. Returns -1 on no memory. */
static int pair_add(trainer *tr, int32_t a, int32_t b, int64_t delta, int32_t w, int add_word) {
  int32_t *slot = map_get_or_add(&tr->index, pair_key(a, b));
  if (!slot) return -1;
  if (*slot < 0) {
    if (tr->n_stats == tr->cap_stats) {
      int cap = tr->cap_stats ? tr->cap_stats * 2 : 4096;
      pair_stat *s = realloc(tr->stats, (size_t)cap * sizeof *s);
      if (!s) return -1;
      tr->stats = s;
      tr->cap_stats = cap;
    }
    pair_stat *p = &tr->stats[tr->n_stats];
    memset(p, 0, sizeof *p);
    p->a = a;
    p->b = b;
    *slot = tr->n_stats++;
  }
  pair_stat *p = &tr->stats[*slot];
  p->count += delta;
  if (add_word && (p->n_words == 0 || p->words[p->n_words - 1] != w)) {
    if (p->n_words == p->cap_words) {
      int cap = p->cap_words ? p->cap_words * 2 : 4;
      int32_t *ws = realloc(p->words, (size_t)cap * sizeof *ws);
      if (!ws) return -1;
      p->words = ws;
      p->cap_words = cap;
    }
    p->words[p->n_words++] = w;
  }
  return 0;
}

typedef struct word_table {
  u64map index; /* hash of bytes -> word id (collisions resolved by comparing bytes) */
  const unsigned char **ptr;
  int32_t *len;
  int64_t *count;
  int n, cap;
} word_table;

static int word_add(word_table *wt, const unsigned char *s, int len) {
  uint64_t h = us_hash64(s, (size_t)len, 0x5eed);
  for (;;) {
    int32_t *slot = map_get_or_add(&wt->index, h ? h : 1);
    if (!slot) return -1;
    if (*slot < 0) {
      if (wt->n == wt->cap) {
        int cap = wt->cap ? wt->cap * 2 : 4096;
        const unsigned char **p = realloc(wt->ptr, (size_t)cap * sizeof *p);
        if (p) wt->ptr = p;
        int32_t *l = realloc(wt->len, (size_t)cap * sizeof *l);
        if (l) wt->len = l;
        int64_t *c = realloc(wt->count, (size_t)cap * sizeof *c);
        if (c) wt->count = c;
        if (!p || !l || !c) return -1;
        wt->cap = cap;
      }
      wt->ptr[wt->n] = s;
      wt->len[wt->n] = len;
      wt->count[wt->n] = 1;
      *slot = wt->n++;
      return 0;
    }
    if (wt->len[*slot] == len && memcmp(wt->ptr[*slot], s, (size_t)len) == 0) {
      wt->count[*slot]++;
      return 0;
    }
    h = mix64(h + 0x9e3779b97f4a7c15ull); /* a different word with the same hash: rehash */
  }
}

/* Rewrites word w (symbols sym[0..*n)) merging (a, b) -> t and updates the pair counts. */
static int merge_word(trainer *tr, int32_t *sym, int32_t *n, int64_t wc, int32_t w, int32_t a,
                      int32_t b, int32_t t) {
  for (int i = 0; i + 1 < *n; i++)
    if (pair_add(tr, sym[i], sym[i + 1], -wc, w, 0) != 0) return -1;
  int out = 0;
  for (int i = 0; i < *n; i++) {
    if (i + 1 < *n && sym[i] == a && sym[i + 1] == b) {
      sym[out++] = t;
      i++;
    } else {
      sym[out++] = sym[i];
    }
  }
  *n = out;
  for (int i = 0; i + 1 < out; i++)
    if (pair_add(tr, sym[i], sym[i + 1], wc, w, sym[i] == t || sym[i + 1] == t) != 0) return -1;
  return 0;
}

us_status us_bpe_train(const char *const *texts, size_t n_texts, int vocab_size, us_bpe **out,
                       us_err *err) {
  *out = NULL;
  if (vocab_size < US_BPE_MIN_VOCAB || vocab_size > US_BPE_MAX_VOCAB)
    return us_err_set(err, US_ERR_CONFIG, "bpe: vocab_size %d is outside %d..%d", vocab_size,
                      US_BPE_MIN_VOCAB, US_BPE_MAX_VOCAB);
  us_status st = US_ERR_NOMEM;
  int target = vocab_size - US_BPE_MIN_VOCAB, n_merges = 0;
  word_table wt = {0};
  trainer tr = {0};
  int32_t *sym = NULL, *sym_off = NULL, *sym_len = NULL, *stamp = NULL, *merges = NULL;
  for (size_t k = 0; k < n_texts; k++) {
    const unsigned char *s = (const unsigned char *)texts[k];
    size_t len = strlen(texts[k]);
    for (size_t i = 0; i < len;) {
      size_t j = word_end(s, len, i);
      if (word_add(&wt, s + i, (int)(j - i)) != 0) goto fail;
      i = j;
    }
  }
  size_t total = 0;
  for (int w = 0; w < wt.n; w++) total += (size_t)wt.len[w];
  sym = malloc((total ? total : 1) * sizeof *sym);
  sym_off = malloc((size_t)(wt.n + 1) * sizeof *sym_off);
  sym_len = malloc((size_t)(wt.n + 1) * sizeof *sym_len);
  stamp = malloc((size_t)(wt.n + 1) * sizeof *stamp);
  merges = malloc((size_t)(target ? target : 1) * 2 * sizeof *merges);
  if (!sym || !sym_off || !sym_len || !stamp || !merges) goto fail;
  size_t off = 0;
  for (int w = 0; w < wt.n; w++) {
    sym_off[w] = (int32_t)off;
    sym_len[w] = wt.len[w];
    stamp[w] = -1;
    for (int i = 0; i < wt.len[w]; i++) sym[off + (size_t)i] = wt.ptr[w][i];
    for (int i = 0; i + 1 < wt.len[w]; i++)
      if (pair_add(&tr, sym[off + (size_t)i], sym[off + (size_t)i + 1], wt.count[w], w, 1) != 0)
        goto fail;
    off += (size_t)wt.len[w];
  }
  for (; n_merges < target; n_merges++) {
    int best = -1;
    for (int p = 0; p < tr.n_stats; p++) {
      const pair_stat *ps = &tr.stats[p];
      if (best < 0 || ps->count > tr.stats[best].count ||
          (ps->count == tr.stats[best].count &&
           pair_key(ps->a, ps->b) < pair_key(tr.stats[best].a, tr.stats[best].b)))
        best = p;
    }
    if (best < 0 || tr.stats[best].count < 2) break;
    int32_t a = tr.stats[best].a, b = tr.stats[best].b, t = 256 + n_merges;
    merges[2 * n_merges] = a;
    merges[2 * n_merges + 1] = b;
    /* The word list of (a, b) never grows during this merge: new pairs all contain t. */
    int32_t *words = tr.stats[best].words;
    int n_words = tr.stats[best].n_words;
    for (int k = 0; k < n_words; k++) {
      int32_t w = words[k];
      if (stamp[w] == n_merges) continue;
      stamp[w] = n_merges;
      if (merge_word(&tr, sym + sym_off[w], &sym_len[w], wt.count[w], w, a, b, t) != 0) goto fail;
    }
    free(tr.stats[best].words);
    tr.stats[best].words = NULL;
    tr.stats[best].n_words = tr.stats[best].cap_words = 0;
    tr.stats[best].count = 0;
  }
  st = us_bpe_from_merges(merges, n_merges, out, err);
  goto done;
fail:
  us_err_set(err, US_ERR_NOMEM, "bpe: out of memory while training on %zu texts", n_texts);
done:
  for (int p = 0; p < tr.n_stats; p++) free(tr.stats[p].words);
  free(tr.stats);
  map_free(&tr.index);
  map_free(&wt.index);
  free(wt.ptr);
  free(wt.len);
  free(wt.count);
  free(sym);
  free(sym_off);
  free(sym_len);
  free(stamp);
  free(merges);
  return st;
}

/* ---- encoding and decoding ---- */

static int rank_of(const us_bpe *bpe, int32_t a, int32_t b) {
  return map_lookup(bpe->rank_keys, bpe->rank_vals, bpe->rank_cap, pair_key(a, b));
}

int us__bpe_merge_piece(const us_bpe *bpe, int32_t *sym, int n, const int32_t *result) {
  for (;;) {
    int best = -1, best_rank = -1;
    for (int i = 0; i + 1 < n; i++) {
      int r = rank_of(bpe, sym[i], sym[i + 1]);
      if (r >= 0 && (best_rank < 0 || r < best_rank)) {
        best_rank = r;
        best = i;
      }
    }
    if (best < 0) return n;
    int32_t a = sym[best], b = sym[best + 1], t = result ? result[best_rank] : 256 + best_rank;
    int out = 0;
    for (int i = 0; i < n; i++) {
      if (i + 1 < n && sym[i] == a && sym[i + 1] == b) {
        sym[out++] = t;
        i++;
      } else {
        sym[out++] = sym[i];
      }
    }
    n = out;
  }
}

us_status us_bpe_encode(const us_bpe *bpe, const char *text, size_t len, int32_t **tokens,
                        int *n_tokens, us_err *err) {
  *tokens = NULL;
  *n_tokens = 0;
  if (len > (size_t)0x7fffffff)
    return us_err_set(err, US_ERR_INPUT, "bpe: text of %zu bytes is too long to encode", len);
  if (bpe->vocab) return us__bpe_vocab_encode(bpe, text, len, false, tokens, n_tokens, err);
  int32_t *out = malloc((len ? len : 1) * sizeof *out); /* never more tokens than bytes */
  if (!out) return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory encoding %zu bytes", len);
  const unsigned char *s = (const unsigned char *)text;
  int n = 0;
  for (size_t i = 0; i < len;) {
    size_t j = word_end(s, len, i);
    int wn = (int)(j - i);
    for (int k = 0; k < wn; k++) out[n + k] = s[i + (size_t)k];
    n += us__bpe_merge_piece(bpe, out + n, wn, NULL);
    i = j;
  }
  *tokens = out;
  *n_tokens = n;
  return US_OK;
}

size_t us_bpe_added_prefix(const us_bpe *bpe, const char *text, size_t len) {
  return bpe->vocab && bpe->vocab->text_prefix && len > 0 && text[0] == ' ' ? 1 : 0;
}

us_status us_bpe_decode(const us_bpe *bpe, const int32_t *tokens, int n_tokens, us_buf *out,
                        us_err *err) {
  int vocab = us_bpe_vocab_size(bpe);
  for (int i = 0; i < n_tokens; i++) {
    if (tokens[i] < 0 || tokens[i] >= vocab)
      return us_err_set(err, US_ERR_INPUT, "bpe: token %d at position %d is outside 0..%d",
                        (int)tokens[i], i, vocab - 1);
    int len;
    const unsigned char *b = us_bpe_token_bytes(bpe, tokens[i], &len);
    if (len && us_buf_append(out, b, (size_t)len) != US_OK)
      return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory decoding %d tokens", n_tokens);
  }
  return US_OK;
}

/* ---- serialised form ---- */

us_status us_bpe_serialize(const us_bpe *bpe, us_buf *out, us_err *err) {
  if (bpe->vocab) return us__bpe_vocab_serialize(bpe, out, err);
  unsigned char b[8];
  us_put_le32(b, (uint32_t)bpe->n_merges);
  if (us_buf_append(out, b, 4) != US_OK) goto nomem;
  for (int m = 0; m < bpe->n_merges; m++) {
    us_put_le32(b, (uint32_t)bpe->pairs[2 * m]);
    us_put_le32(b + 4, (uint32_t)bpe->pairs[2 * m + 1]);
    if (us_buf_append(out, b, 8) != US_OK) goto nomem;
  }
  return US_OK;
nomem:
  return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory serialising the tokeniser");
}

us_status us_bpe_deserialize(const unsigned char *data, size_t len, size_t *used, us_bpe **out,
                             us_err *err) {
  *out = NULL;
  if (len < 4)
    return us_err_set(err, US_ERR_FORMAT, "bpe: tokeniser needs 4 header bytes, %zu left", len);
  uint32_t n = us_get_le32(data);
  if (n == US_BPE_IMPORTED_MARKER) return us__bpe_vocab_deserialize(data, len, used, out, err);
  if (n > US_BPE_MAX_VOCAB - US_BPE_MIN_VOCAB)
    return us_err_set(err, US_ERR_FORMAT, "bpe: %u merges is more than the maximum %d", n,
                      US_BPE_MAX_VOCAB - US_BPE_MIN_VOCAB);
  if ((len - 4) / 8 < n)
    return us_err_set(err, US_ERR_FORMAT, "bpe: %u merges need %zu bytes, only %zu left", n,
                      (size_t)n * 8, len - 4);
  int32_t *pairs = malloc(((size_t)n ? n : 1) * 2 * sizeof *pairs);
  if (!pairs) return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory");
  for (uint32_t m = 0; m < n; m++) {
    uint32_t a = us_get_le32(data + 4 + 8 * m), b = us_get_le32(data + 8 + 8 * m);
    pairs[2 * m] = a > 0x7fffffff ? -1 : (int32_t)a;
    pairs[2 * m + 1] = b > 0x7fffffff ? -1 : (int32_t)b;
  }
  us_status st = us_bpe_from_merges(pairs, (int)n, out, err);
  free(pairs);
  if (st == US_OK) *used = 4 + (size_t)n * 8;
  return st;
}
