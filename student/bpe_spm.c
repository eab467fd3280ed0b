/* SentencePiece vocabularies imported from GGUF files (tokenizer.ggml.model "llama": TinyLlama,
 * llama 2 and Mistral-style models), tokenised as llama.cpp's SPM tokeniser does: spaces become
 * U+2581, the text is cut into UTF-8 characters, then the adjacent pair whose concatenation is
 * the token of highest score merges (ties: the leftmost), until no pair is a token; a piece that
 * is no token falls back to its bytes as "<0xXX>" tokens. */
#include <stdlib.h>
#include <string.h>

#include "student/bpe_int.h"

#define SPACE_MARK "\xe2\x96\x81" /* U+2581, SentencePiece's space */

/* llama.cpp's token types */
enum { TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER_DEFINED = 4, TYPE_UNUSED = 5, TYPE_BYTE = 6 };

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* The byte of a "<0xXX>" text, or -1. */
static int byte_piece(const char *t, size_t n) {
  if (n != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return -1;
  int hi = hex_value(t[3]), lo = hex_value(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

size_t us__bpe_spm_token_bytes(const char *t, size_t n, int type, unsigned char *out) {
  if (type == TYPE_CONTROL || type == TYPE_UNUSED) return 0;
  if (type == TYPE_UNKNOWN) { /* llama.cpp prints U+2585 for it: 3 bytes, at most n for "<unk>" */
    if (n < 3) return 0;
    memcpy(out, "\xe2\x96\x85", 3);
    return 3;
  }
  int b = type == TYPE_BYTE ? byte_piece(t, n) : -1;
  if (b >= 0) {
    out[0] = (unsigned char)b;
    return 1;
  }
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (type != TYPE_USER_DEFINED && i + 3 <= n && memcmp(t + i, SPACE_MARK, 3) == 0) {
      out[o++] = ' ';
      i += 3;
    } else {
      out[o++] = (unsigned char)t[i++];
    }
  }
  return o;
}

int us__bpe_spm_byte_tokens(us_bpe *bpe) {
  us__bpe_vocab *v = bpe->vocab;
  static const char hex[] = "0123456789ABCDEF";
  int missing = 0;
  for (int b = 0; b < 256; b++) {
    char piece[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
    int id = us_bpe_find_token(bpe, piece, 6);
    if (id < 0) {
      char one = (char)b;
      id = us_bpe_find_token(bpe, &one, 1);
    }
    if (id < 0) id = v->unk;
    if (id < 0) missing = -1;
    v->byte_token[b] = id;
  }
  return missing;
}

/* ---- the merge queue ---- */

typedef struct symbol {
  size_t off, n; /* bytes of the escaped text; n 0 once merged into its left neighbour */
  int prev, next;
} symbol;

typedef struct bigram {
  float score;
  int left, right;
  size_t size;
} bigram;

static bool above(const bigram *a, const bigram *b) {
  return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct queue {
  bigram *h;
  int n;
} queue;

static void push(queue *q, bigram b) {
  int i = q->n++;
  while (i > 0 && above(&b, &q->h[(i - 1) / 2])) {
    q->h[i] = q->h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  q->h[i] = b;
}

static bigram pop(queue *q) {
  bigram top = q->h[0], last = q->h[--q->n];
  int i = 0;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= q->n) break;
    if (c + 1 < q->n && above(&q->h[c + 1], &q->h[c])) c++;
    if (!above(&q->h[c], &last)) break;
    q->h[i] = q->h[c];
    i = c;
  }
  if (q->n > 0) q->h[i] = last;
  return top;
}

typedef struct session {
  const us_bpe *bpe;
  const char *text;
  symbol *sym;
  queue q;
} session;

static void try_pair(session *s, int left, int right) {
  if (left < 0 || right < 0) return;
  size_t size = s->sym[left].n + s->sym[right].n;
  int id = us_bpe_find_token(s->bpe, s->text + s->sym[left].off, size);
  if (id < 0) return;
  push(&s->q, (bigram){s->bpe->vocab->scores[id], left, right, size});
}

/* llama.cpp's unicode_len_utf8: the length a lead byte announces (1 for continuation bytes). */
static size_t char_len(unsigned char c) {
  static const unsigned char by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return by_high_nibble[c >> 4];
}

us_status us__bpe_spm_encode(const us_bpe *bpe, const unsigned char *s, size_t len, bool prefix,
                             int32_t *out, int *n, us_err *err) {
  const us__bpe_vocab *v = bpe->vocab;
  size_t cap = 3 * len + 3, tn = 0, ns = 0;
  char *text = malloc(cap);
  symbol *sym = malloc(cap * sizeof *sym);
  bigram *heap = malloc(3 * cap * sizeof *heap);
  if (!text || !sym || !heap) {
    free(text);
    free(sym);
    free(heap);
    return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory encoding %zu bytes", len);
  }
  if (prefix) {
    memcpy(text, SPACE_MARK, 3);
    tn = 3;
  }
  for (size_t i = 0; i < len; i++) {
    if (s[i] == ' ') {
      memcpy(text + tn, SPACE_MARK, 3);
      tn += 3;
    } else {
      text[tn++] = (char)s[i];
    }
  }
  for (size_t off = 0; off < tn; ns++) {
    size_t k = char_len((unsigned char)text[off]);
    if (k > tn - off) k = tn - off;
    sym[ns] = (symbol){off, k, (int)ns - 1, off + k == tn ? -1 : (int)ns + 1};
    off += k;
  }
  session ss = {bpe, text, sym, {heap, 0}};
  for (size_t i = 1; i < ns; i++) try_pair(&ss, (int)i - 1, (int)i);
  while (ss.q.n > 0) {
    bigram b = pop(&ss.q);
    symbol *l = &sym[b.left], *r = &sym[b.right];
    if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
    l->n += r->n;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0) sym[r->next].prev = b.left;
    try_pair(&ss, l->prev, b.left);
    try_pair(&ss, b.left, l->next);
  }
  for (int i = ns ? 0 : -1; i >= 0; i = sym[i].next) {
    int id = us_bpe_find_token(bpe, text + sym[i].off, sym[i].n);
    if (id >= 0) {
      out[(*n)++] = id;
      continue;
    }
    for (size_t k = 0; k < sym[i].n; k++)
      out[(*n)++] = v->byte_token[(unsigned char)text[sym[i].off + k]];
  }
  free(text);
  free(sym);
  free(heap);
  return US_OK;
}

us_status us_bpe_from_spm(int n_vocab, const char *const *tokens, const size_t *lens,
                          const int32_t *types, const float *scores, us_bpe_special specials,
                          int unk, bool add_space_prefix, us_bpe **out, us_err *err) {
  *out = NULL;
  if (n_vocab < 1 || n_vocab > US_BPE_MAX_IMPORTED_VOCAB)
    return us_err_set(err, US_ERR_FORMAT, "tokenizer.ggml.tokens: %d tokens, expected 1..%d",
                      n_vocab, US_BPE_MAX_IMPORTED_VOCAB);
  if (specials.bos < 0 || specials.bos >= n_vocab || specials.eos < 0 || specials.eos >= n_vocab ||
      unk < -1 || unk >= n_vocab)
    return us_err_set(err, US_ERR_FORMAT,
                      "tokenizer.ggml.bos_token_id / eos_token_id / unknown_token_id: %d / %d / %d "
                      "outside 0..%d",
                      specials.bos, specials.eos, unk, n_vocab - 1);
  us_bpe *bpe = NULL;
  us_status st = us__bpe_vocab_build(n_vocab, tokens, lens, types, 0, NULL, US_BPE_PRE_SPM,
                                     specials, &bpe, err);
  if (st != US_OK) return st;
  us__bpe_vocab *v = bpe->vocab;
  v->unk = unk;
  v->add_space_prefix = add_space_prefix;
  v->text_prefix = add_space_prefix;
  v->scores = malloc((size_t)n_vocab * sizeof *v->scores);
  if (!v->scores) {
    us_bpe_free(bpe);
    return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory for %d scores", n_vocab);
  }
  for (int i = 0; i < n_vocab; i++) v->scores[i] = scores ? scores[i] : 0.0f;
  if (us__bpe_spm_byte_tokens(bpe) != 0) {
    us_bpe_free(bpe);
    return us_err_set(err, US_ERR_FORMAT,
                      "tokenizer.ggml.tokens: no <0xXX> byte tokens and no unknown token; a "
                      "SentencePiece vocabulary needs one or the other for characters outside it");
  }
  *out = bpe;
  return US_OK;
}
