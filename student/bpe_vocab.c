/* Byte-level BPE vocabularies imported from GGUF files ("gpt2" tokenizer model): GPT-2's
 * byte-to-unicode token strings, merges by rank that make a named token, llama.cpp's
 * pre-tokenisers, control tokens written as text in chat templates, and the serialised form kept
 * inside our model file.
 *
 * Pre-tokenisers follow llama.cpp's regular expressions on any UTF-8 text: \p{L}, \p{N} and \s
 * come from Unicode tables (student/unicode_classes.c, generated); a byte that is not valid
 * UTF-8 is an "other" character of its own, like llama.cpp's U+FFFD replacement. */
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "student/bpe_int.h"
#include "student/unicode_classes.h"

/* ---- GPT-2's byte <-> unicode map ---- */

/* Bytes that print as themselves; the others map to 256, 257, ... in byte order. */
static int byte_prints(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

static void byte_to_cp(int cp_of[256]) {
  int next = 256;
  for (int b = 0; b < 256; b++) cp_of[b] = byte_prints(b) ? b : next++;
}

/* The byte a code point stands for, or -1. */
static int cp_to_byte(unsigned cp) {
  if (cp < 256 && byte_prints((int)cp)) return (int)cp;
  if (cp < 256 || cp >= 256 + 68) return -1;
  int next = 256;
  for (int b = 0; b < 256; b++)
    if (!byte_prints(b) && (unsigned)next++ == cp) return b;
  return -1;
}

/* Decodes one UTF-8 code point at s[i..len); *n its length (1 for an invalid byte, whose value
 * is returned as 0x110000 + byte so it never equals a real code point). */
static unsigned utf8_at(const unsigned char *s, size_t len, size_t i, int *n) {
  unsigned c = s[i];
  *n = 1;
  if (c < 0x80) return c;
  int need = (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
  if (need < 0 || i + (size_t)need >= len) return 0x110000u + c;
  unsigned cp = need == 1 ? (c & 0x1f) : need == 2 ? (c & 0x0f) : (c & 0x07);
  for (int k = 1; k <= need; k++) {
    if ((s[i + (size_t)k] & 0xc0) != 0x80) {
      *n = 1;
      return 0x110000u + c;
    }
    cp = cp << 6 | (s[i + (size_t)k] & 0x3f);
  }
  *n = need + 1;
  return cp;
}

static int utf8_put(unsigned cp, unsigned char *o) {
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xc0 | cp >> 6);
    o[1] = (unsigned char)(0x80 | (cp & 0x3f));
    return 2;
  }
  o[0] = (unsigned char)(0xe0 | cp >> 12);
  o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
  o[2] = (unsigned char)(0x80 | (cp & 0x3f));
  return 3;
}

/* ---- pre-tokenisers ---- */

enum {
  C_LETTER = US_UNICODE_LETTER,
  C_DIGIT = US_UNICODE_NUMBER,
  C_SPACE = US_UNICODE_SPACE,
  C_OTHER = US_UNICODE_OTHER
};

static int cp_class(unsigned cp) {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return C_LETTER;
    if (cp >= '0' && cp <= '9') return C_DIGIT;
    if (cp == ' ' || (cp >= 9 && cp <= 13)) return C_SPACE;
    return C_OTHER;
  }
  return us__unicode_class(cp); /* invalid bytes (0x110000 + byte): other */
}

typedef struct cursor {
  const unsigned char *s;
  size_t len;
} cursor;

static unsigned cp_at(const cursor *c, size_t i, int *n) {
  return utf8_at(c->s, c->len, i, n);
}
static int cls_at(const cursor *c, size_t i) {
  int n;
  return i < c->len ? cp_class(cp_at(c, i, &n)) : -1;
}
static size_t next_at(const cursor *c, size_t i) {
  int n;
  cp_at(c, i, &n);
  return i + (size_t)n;
}
static bool is_newline(const cursor *c, size_t i) {
  return i < c->len && (c->s[i] == '\r' || c->s[i] == '\n');
}

/* 's 't 're 've 'm 'll 'd (either case when fold): the end, or 0. */
static size_t contraction(const cursor *c, size_t i, bool fold) {
  if (c->s[i] != '\'' || i + 1 >= c->len) return 0;
  char a = (char)c->s[i + 1], b = i + 2 < c->len ? (char)c->s[i + 2] : 0;
  if (fold) {
    a = (char)(a >= 'A' && a <= 'Z' ? a + 32 : a);
    b = (char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
  }
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return 0;
}

static size_t run_of(const cursor *c, size_t j, int cls, int max) {
  for (int k = 0; j < c->len && cls_at(c, j) == cls && (max <= 0 || k < max); k++)
    j = next_at(c, j);
  return j;
}

/* Whitespace at i: \s+(?!\S) then \s+ (and for llama 3, \s*[\r\n]+ first). */
static size_t spaces(const cursor *c, size_t i, bool newline_rule) {
  size_t j = i, last_start = i, last_nl = 0;
  bool any_nl = false;
  while (j < c->len && cls_at(c, j) == C_SPACE) {
    if (is_newline(c, j)) {
      any_nl = true;
      last_nl = j + 1;
    }
    last_start = j;
    j = next_at(c, j);
  }
  if (newline_rule && any_nl) return last_nl;
  if (j < c->len && last_start > i) return last_start; /* leave the last to the next piece */
  return j;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t gpt2_end(const cursor *c, size_t i) {
  size_t e = contraction(c, i, false);
  if (e) return e;
  size_t j = i;
  if (c->s[i] == ' ' && i + 1 < c->len && cls_at(c, i + 1) != C_SPACE) j = i + 1;
  int cls = cls_at(c, j);
  if (cls != C_SPACE) return run_of(c, j, cls, 0);
  return spaces(c, i, false);
}

/* llama 3 (digits 3) and qwen2 (digits 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t llama3_end(const cursor *c, size_t i, int digits) {
  size_t e = contraction(c, i, true);
  if (e) return e;
  int cls = cls_at(c, i);
  if (cls == C_LETTER) return run_of(c, i, C_LETTER, 0);
  if (cls != C_DIGIT && !is_newline(c, i)) {
    size_t j = next_at(c, i);
    if (cls_at(c, j) == C_LETTER) return run_of(c, j, C_LETTER, 0);
  }
  if (cls == C_DIGIT) return run_of(c, i, C_DIGIT, digits);
  size_t j = i;
  if (c->s[i] == ' ' && i + 1 < c->len && cls_at(c, i + 1) == C_OTHER) j = i + 1;
  if (cls_at(c, j) == C_OTHER) {
    j = run_of(c, j, C_OTHER, 0);
    while (is_newline(c, j)) j++;
    return j;
  }
  return spaces(c, i, true);
}

size_t us__bpe_pretok_end(us_bpe_pretok kind, const unsigned char *s, size_t len, size_t i) {
  cursor c = {s, len};
  switch (kind) {
    case US_BPE_PRE_SMOLLM: { /* \p{N} first: every digit alone, the text between split by GPT-2 */
      if (cls_at(&c, i) == C_DIGIT) return next_at(&c, i);
      size_t stop = i;
      while (stop < len && cls_at(&c, stop) != C_DIGIT) stop = next_at(&c, stop);
      cursor part = {s, stop};
      return gpt2_end(&part, i);
    }
    case US_BPE_PRE_LLAMA3:
      return llama3_end(&c, i, 3);
    case US_BPE_PRE_QWEN2:
      return llama3_end(&c, i, 1);
    case US_BPE_PRE_GPT2:
    default:
      return gpt2_end(&c, i);
  }
}

/* ---- building ---- */

void us__bpe_vocab_free(us__bpe_vocab *v) {
  if (!v) return;
  if (v->texts)
    for (int i = 0; i < v->n_vocab; i++) free(v->texts[i]);
  free(v->texts);
  free(v->text_lens);
  free(v->merge_result);
  free(v->types);
  free(v->sorted);
  free(v->specials_list);
  free(v->chat_tokens);
  free(v->scores);
  free(v);
}

static const us__bpe_vocab *sort_vocab; /* qsort has no context argument; building is serial */

static int text_cmp(const char *a, size_t al, const char *b, size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : (al > bl) - (al < bl);
}
static int cmp_ids(const void *x, const void *y) {
  int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
  const us__bpe_vocab *v = sort_vocab;
  int c = text_cmp(v->texts[a], v->text_lens[a], v->texts[b], v->text_lens[b]);
  return c ? c : (a > b) - (a < b);
}
static int cmp_len_desc(const void *x, const void *y) {
  int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
  const us__bpe_vocab *v = sort_vocab;
  if (v->text_lens[a] != v->text_lens[b]) return v->text_lens[a] > v->text_lens[b] ? -1 : 1;
  return (a > b) - (a < b);
}

int us_bpe_find_token(const us_bpe *bpe, const char *s, size_t len) {
  const us__bpe_vocab *v = bpe->vocab;
  if (!v) return -1;
  int lo = 0, hi = v->n_vocab - 1, found = -1;
  while (lo <= hi) { /* the first id with this text */
    int mid = (lo + hi) / 2, id = v->sorted[mid];
    int c = text_cmp(v->texts[id], v->text_lens[id], s, len);
    if (c < 0) {
      lo = mid + 1;
    } else {
      if (c == 0) found = id;
      hi = mid - 1;
    }
  }
  return found;
}

/* The bytes a token decodes to: control tokens none, user-defined ones their text, the others
 * their GPT-2 characters mapped back to bytes (a character outside the map: its UTF-8). */
static size_t token_bytes(const char *t, size_t n, int type, unsigned char *out) {
  if (type == 3) return 0;
  if (type == 4) {
    memcpy(out, t, n);
    return n;
  }
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    int k;
    unsigned cp = utf8_at((const unsigned char *)t, n, i, &k);
    int b = cp_to_byte(cp);
    if (b >= 0) {
      out[o++] = (unsigned char)b;
    } else {
      memcpy(out + o, t + i, (size_t)k);
      o += (size_t)k;
    }
    i += (size_t)k;
  }
  return o;
}

us_status us__bpe_vocab_build(int n_vocab, const char *const *texts, const size_t *lens,
                              const int32_t *types, int n_merges, const int32_t *triples,
                              us_bpe_pretok pretok, us_bpe_special specials, us_bpe **out,
                              us_err *err) {
  *out = NULL;
  us_bpe *bpe = calloc(1, sizeof *bpe);
  us__bpe_vocab *v = calloc(1, sizeof *v);
  if (!bpe || !v) {
    free(bpe);
    free(v);
    return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory");
  }
  bpe->vocab = v;
  v->n_vocab = n_vocab;
  v->pretok = pretok;
  v->specials = specials;
  v->chat.end = specials.eos; /* until us_bpe_set_chat */
  v->unk = -1;
  bpe->n_merges = n_merges;
  size_t nv = (size_t)n_vocab, total = 0;
  v->texts = calloc(nv, sizeof *v->texts);
  v->text_lens = malloc(nv * sizeof *v->text_lens);
  v->types = malloc(nv);
  v->sorted = malloc(nv * sizeof *v->sorted);
  v->specials_list = malloc(nv * sizeof *v->specials_list);
  v->merge_result = malloc(((size_t)n_merges + 1) * sizeof *v->merge_result);
  bpe->pairs = malloc(((size_t)n_merges + 1) * 2 * sizeof *bpe->pairs);
  bpe->tok_off = malloc((nv + 1) * sizeof *bpe->tok_off);
  if (!v->texts || !v->text_lens || !v->types || !v->sorted || !v->specials_list ||
      !v->merge_result || !bpe->pairs || !bpe->tok_off)
    goto nomem;
  for (size_t i = 0; i < nv; i++) {
    v->texts[i] = malloc(lens[i] + 1);
    if (!v->texts[i]) goto nomem;
    memcpy(v->texts[i], texts[i], lens[i]);
    v->texts[i][lens[i]] = 0;
    v->text_lens[i] = lens[i];
    v->types[i] = (uint8_t)(types ? types[i] : 1);
    v->sorted[i] = (int32_t)i;
    total += lens[i];
    if (v->types[i] == 3 || v->types[i] == 4) v->specials_list[v->n_specials_list++] = (int32_t)i;
  }
  bpe->tok_data = malloc(total ? total : 1);
  if (!bpe->tok_data) goto nomem;
  bpe->tok_off[0] = 0;
  for (size_t i = 0; i < nv; i++) {
    unsigned char *dst = bpe->tok_data + bpe->tok_off[i];
    size_t n = pretok == US_BPE_PRE_SPM
                   ? us__bpe_spm_token_bytes(v->texts[i], lens[i], v->types[i], dst)
                   : token_bytes(v->texts[i], lens[i], v->types[i], dst);
    bpe->tok_off[i + 1] = bpe->tok_off[i] + (uint32_t)n;
  }
  sort_vocab = v;
  qsort(v->sorted, nv, sizeof *v->sorted, cmp_ids);
  qsort(v->specials_list, (size_t)v->n_specials_list, sizeof(int32_t), cmp_len_desc);
  sort_vocab = NULL;
  int cp_of[256];
  byte_to_cp(cp_of);
  for (int b = 0; b < 256; b++) {
    unsigned char u[4];
    int n = utf8_put((unsigned)cp_of[b], u);
    v->byte_token[b] = us_bpe_find_token(bpe, (const char *)u, (size_t)n);
  }
  for (int m = 0; m < n_merges; m++) {
    bpe->pairs[2 * m] = triples[3 * m];
    bpe->pairs[2 * m + 1] = triples[3 * m + 1];
    v->merge_result[m] = triples[3 * m + 2];
  }
  if (us__bpe_build_ranks(bpe) != 0) goto nomem;
  *out = bpe;
  return US_OK;
nomem:
  us_bpe_free(bpe);
  return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory for a vocabulary of %d tokens", n_vocab);
}

us_status us_bpe_from_vocab(int n_vocab, const char *const *tokens, const size_t *lens,
                            const int32_t *types, int n_merges, const char *const *merges,
                            const size_t *merge_lens, us_bpe_pretok pretok, us_bpe_special specials,
                            us_bpe **out, us_err *err) {
  *out = NULL;
  if (n_vocab < 256 || n_vocab > US_BPE_MAX_IMPORTED_VOCAB)
    return us_err_set(err, US_ERR_FORMAT,
                      "tokenizer.ggml.tokens: %d tokens, expected 256..%d for byte-level BPE",
                      n_vocab, US_BPE_MAX_IMPORTED_VOCAB);
  if (specials.bos < 0 || specials.bos >= n_vocab || specials.eos < 0 || specials.eos >= n_vocab)
    return us_err_set(err, US_ERR_FORMAT,
                      "tokenizer.ggml.bos_token_id / eos_token_id: %d / %d outside 0..%d",
                      specials.bos, specials.eos, n_vocab - 1);
  /* ids are looked up on a first build without merges */
  us_bpe *probe = NULL;
  us_status st =
      us__bpe_vocab_build(n_vocab, tokens, lens, types, 0, NULL, pretok, specials, &probe, err);
  if (st != US_OK) return st;
  int32_t *triples = malloc(((size_t)n_merges + 1) * 3 * sizeof *triples);
  char *joined = NULL;
  size_t joined_cap = 0;
  if (!triples) st = us_err_set(err, US_ERR_NOMEM, "bpe: out of memory");
  for (int m = 0; st == US_OK && m < n_merges; m++) {
    const char *s = merges[m];
    size_t n = merge_lens[m], sp = 1;
    while (sp < n && s[sp] != ' ') sp++;
    if (sp >= n) {
      st =
          us_err_set(err, US_ERR_FORMAT,
                     "tokenizer.ggml.merges: merge %d \"%.*s\" is not two tokens joined by a space",
                     m, (int)(n > 60 ? 60 : n), s);
      break;
    }
    if (n > joined_cap) {
      free(joined);
      joined_cap = 2 * n;
      joined = malloc(joined_cap);
      if (!joined) {
        st = us_err_set(err, US_ERR_NOMEM, "bpe: out of memory");
        break;
      }
    }
    memcpy(joined, s, sp);
    memcpy(joined + sp, s + sp + 1, n - sp - 1);
    int a = us_bpe_find_token(probe, s, sp), b = us_bpe_find_token(probe, s + sp + 1, n - sp - 1);
    int r = us_bpe_find_token(probe, joined, n - 1);
    if (a < 0 || b < 0 || r < 0)
      st = us_err_set(err, US_ERR_FORMAT,
                      "tokenizer.ggml.merges: merge %d \"%.*s\" names a token that is not in "
                      "tokenizer.ggml.tokens",
                      m, (int)(n > 60 ? 60 : n), s);
    triples[3 * m] = a;
    triples[3 * m + 1] = b;
    triples[3 * m + 2] = r;
  }
  us_bpe_free(probe);
  free(joined);
  if (st == US_OK)
    st = us__bpe_vocab_build(n_vocab, tokens, lens, types, n_merges, triples, pretok, specials, out,
                             err);
  free(triples);
  if (st == US_OK) {
    for (int b = 0; b < 256; b++)
      if ((*out)->vocab->byte_token[b] < 0) {
        us_bpe_free(*out);
        *out = NULL;
        return us_err_set(err, US_ERR_FORMAT,
                          "tokenizer.ggml.tokens: no token for byte 0x%02x; byte-level BPE needs "
                          "all 256",
                          b);
      }
  }
  return st;
}

/* ---- encoding ---- */

/* Plain text (no control tokens) appended at out + *n. llama 3's vocabularies skip the merges
 * of a piece that is a token as a whole (llama.cpp's ignore_merges). */
static us_status encode_plain(const us_bpe *bpe, const unsigned char *s, size_t len, int32_t *out,
                              int *n, us_err *err) {
  const us__bpe_vocab *v = bpe->vocab;
  char *whole = NULL; /* the piece in GPT-2's characters: at most 2 bytes a byte */
  int cp_of[256];
  if (v->pretok == US_BPE_PRE_LLAMA3 && len > 0) {
    whole = malloc(2 * len);
    if (!whole) return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory encoding %zu bytes", len);
    byte_to_cp(cp_of);
  }
  for (size_t i = 0; i < len;) {
    size_t j = us__bpe_pretok_end(v->pretok, s, len, i);
    if (j <= i) j = i + 1;
    int wn = (int)(j - i), id = -1;
    if (whole) {
      size_t wl = 0;
      for (size_t k = i; k < j; k++)
        wl += (size_t)utf8_put((unsigned)cp_of[s[k]], (unsigned char *)whole + wl);
      id = us_bpe_find_token(bpe, whole, wl);
    }
    if (id >= 0) {
      out[(*n)++] = id;
    } else {
      for (int k = 0; k < wn; k++) out[*n + k] = v->byte_token[s[i + (size_t)k]];
      *n += us__bpe_merge_piece(bpe, out + *n, wn, v->merge_result);
    }
    i = j;
  }
  free(whole);
  return US_OK;
}

/* The longest control or user-defined token whose text starts s[0..len), or -1. */
static int special_at(const us__bpe_vocab *v, const unsigned char *s, size_t len) {
  for (int k = 0; k < v->n_specials_list; k++) {
    int id = v->specials_list[k];
    size_t n = v->text_lens[id];
    if (n > 0 && n <= len && memcmp(s, v->texts[id], n) == 0) return id;
  }
  return -1;
}

/* One fragment of text between control tokens. SentencePiece: a prefix space when the
 * fragment starts the text or follows a control token (prev_special), as llama.cpp. */
static us_status encode_fragment(const us_bpe *bpe, const unsigned char *s, size_t len,
                                 bool prev_special, int32_t *out, int *n, us_err *err) {
  const us__bpe_vocab *v = bpe->vocab;
  if (v->pretok != US_BPE_PRE_SPM) return encode_plain(bpe, s, len, out, n, err);
  if (len == 0) return US_OK;
  return us__bpe_spm_encode(bpe, s, len, v->add_space_prefix && prev_special, out, n, err);
}

/* Encodes text (control tokens recognised when specials); at_start: the text starts a
 * sequence (SentencePiece's prefix space). */
static us_status encode_text(const us_bpe *bpe, const char *text, size_t len, bool specials,
                             bool at_start, int32_t **tokens, int *n_tokens, us_err *err) {
  *tokens = NULL;
  *n_tokens = 0;
  /* byte-level BPE: never more tokens than bytes; SentencePiece: a space is 3 bytes, each a
   * token at worst, and every fragment (one more than the control tokens, each at least a byte)
   * may get a 3-byte prefix */
  size_t cap = bpe->vocab->pretok == US_BPE_PRE_SPM ? 7 * len + 3 : len;
  int32_t *out = malloc((cap ? cap : 1) * sizeof *out);
  if (!out) return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory encoding %zu bytes", len);
  const unsigned char *s = (const unsigned char *)text;
  int n = 0;
  size_t plain = 0;
  bool prev_special = at_start;
  us_status st = US_OK;
  for (size_t i = 0; specials && i < len && st == US_OK; i++) {
    int id = special_at(bpe->vocab, s + i, len - i);
    if (id < 0) continue;
    st = encode_fragment(bpe, s + plain, i - plain, prev_special, out, &n, err);
    out[n++] = id;
    prev_special = true;
    i += bpe->vocab->text_lens[id] - 1;
    plain = i + 1;
  }
  if (st == US_OK && plain < len)
    st = encode_fragment(bpe, s + plain, len - plain, prev_special, out, &n, err);
  if (st != US_OK) {
    free(out);
    return st;
  }
  *tokens = out;
  *n_tokens = n;
  return US_OK;
}

us_status us__bpe_vocab_encode(const us_bpe *bpe, const char *text, size_t len, bool specials,
                               int32_t **tokens, int *n_tokens, us_err *err) {
  return encode_text(bpe, text, len, specials, specials || bpe->vocab->text_prefix, tokens,
                     n_tokens, err);
}

us_status us_bpe_encode_special(const us_bpe *bpe, const char *text, size_t len, int32_t **tokens,
                                int *n_tokens, us_err *err) {
  if (!bpe->vocab) return us_bpe_encode(bpe, text, len, tokens, n_tokens, err);
  return us__bpe_vocab_encode(bpe, text, len, true, tokens, n_tokens, err);
}

us_status us_bpe_set_chat(us_bpe *bpe, int kind, bool bos_first, const char *head, const char *mid,
                          int end, us_err *err) {
  us__bpe_vocab *v = bpe->vocab;
  if (!v) return us_err_set(err, US_ERR_INPUT, "bpe: the native tokeniser's chat format is fixed");
  if (end < 0 || end >= v->n_vocab)
    return us_err_set(err, US_ERR_FORMAT, "bpe: chat end token %d outside 0..%d", end,
                      v->n_vocab - 1);
  int32_t *h = NULL, *m = NULL;
  int nh = 0, nm = 0;
  size_t head_len = strlen(head);
  bool spm = v->pretok == US_BPE_PRE_SPM;
  /* SentencePiece: a head ending in a space leaves it to the prompt's prefix space */
  bool space_moves = spm && v->add_space_prefix && head_len > 0 && head[head_len - 1] == ' ';
  if (space_moves) head_len--;
  us_status st = encode_text(bpe, head, head_len, true, true, &h, &nh, err);
  if (st == US_OK) st = encode_text(bpe, mid, strlen(mid), true, !spm, &m, &nm, err);
  if (st == US_OK && spm) {
    int last = nh > 0 ? h[nh - 1] : bos_first ? v->specials.bos : -1;
    bool after_control = last < 0 || v->types[last] == 3 || v->types[last] == 4;
    v->text_prefix = v->add_space_prefix && (space_moves || after_control);
  }
  int32_t *all = st == US_OK ? malloc((size_t)(nh + nm + 1) * sizeof *all) : NULL;
  if (st == US_OK && !all) st = us_err_set(err, US_ERR_NOMEM, "bpe: out of memory");
  if (st == US_OK) {
    int k = 0;
    if (bos_first) all[k++] = v->specials.bos;
    memcpy(all + k, h, (size_t)nh * sizeof *all);
    memcpy(all + k + nh, m, (size_t)nm * sizeof *all);
    free(v->chat_tokens);
    v->chat_tokens = all;
    v->chat = (us_bpe_chat){all, k + nh, all + k + nh, nm, end, kind};
  }
  free(h);
  free(m);
  return st;
}

/* ---- serialised form ----
 *   u32 marker 0xFFFFFFFF, u32 n_vocab, u32 n_merges, u32 pretok,
 *   i32 bos, eos, sep, pad, u32 chat kind, u32 n_head, u32 n_mid, i32 end,
 *   n_vocab times: u8 type, u32 length, the text;
 *   n_merges times: i32 left, right, result;
 *   n_head + n_mid times: i32 token (head then mid);
 *   SentencePiece (pretok US_BPE_PRE_SPM) only: u32 flags (1 add_space_prefix, 2 text_prefix),
 *   i32 unk, n_vocab times: f32 score */

us_status us__bpe_vocab_serialize(const us_bpe *bpe, us_buf *out, us_err *err) {
  const us__bpe_vocab *v = bpe->vocab;
  unsigned char h[48], b[12];
  uint32_t f[12] = {US_BPE_IMPORTED_MARKER,    (uint32_t)v->n_vocab,      (uint32_t)bpe->n_merges,
                    (uint32_t)v->pretok,       (uint32_t)v->specials.bos, (uint32_t)v->specials.eos,
                    (uint32_t)v->specials.sep, (uint32_t)v->specials.pad, (uint32_t)v->chat.kind,
                    (uint32_t)v->chat.n_head,  (uint32_t)v->chat.n_mid,   (uint32_t)v->chat.end};
  for (int i = 0; i < 12; i++) us_put_le32(h + 4 * i, f[i]);
  if (us_buf_append(out, h, sizeof h) != US_OK) goto nomem;
  for (int i = 0; i < v->n_vocab; i++) {
    b[0] = v->types[i];
    us_put_le32(b + 1, (uint32_t)v->text_lens[i]);
    if (us_buf_append(out, b, 5) != US_OK ||
        us_buf_append(out, v->texts[i], v->text_lens[i]) != US_OK)
      goto nomem;
  }
  for (int m = 0; m < bpe->n_merges; m++) {
    us_put_le32(b, (uint32_t)bpe->pairs[2 * m]);
    us_put_le32(b + 4, (uint32_t)bpe->pairs[2 * m + 1]);
    us_put_le32(b + 8, (uint32_t)v->merge_result[m]);
    if (us_buf_append(out, b, 12) != US_OK) goto nomem;
  }
  for (int i = 0; i < v->chat.n_head + v->chat.n_mid; i++) {
    us_put_le32(b, (uint32_t)v->chat.head[i]);
    if (us_buf_append(out, b, 4) != US_OK) goto nomem;
  }
  if (v->pretok != US_BPE_PRE_SPM) return US_OK;
  us_put_le32(b, (v->add_space_prefix ? 1u : 0u) | (v->text_prefix ? 2u : 0u));
  us_put_le32(b + 4, (uint32_t)v->unk);
  if (us_buf_append(out, b, 8) != US_OK) goto nomem;
  for (int i = 0; i < v->n_vocab; i++) {
    uint32_t bits;
    memcpy(&bits, &v->scores[i], 4);
    us_put_le32(b, bits);
    if (us_buf_append(out, b, 4) != US_OK) goto nomem;
  }
  return US_OK;
nomem:
  return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory serialising the tokeniser");
}

/* The SentencePiece tail of the serialised form at d[0..len); *at advanced past it. */
static us_status spm_deserialize(us_bpe *bpe, const unsigned char *d, size_t len, size_t *at,
                                 us_err *err) {
  us__bpe_vocab *v = bpe->vocab;
  if (len < 8 || (len - 8) / 4 < (size_t)v->n_vocab)
    return us_err_set(err, US_ERR_FORMAT, "bpe: SentencePiece tokeniser truncated in its scores");
  uint32_t flags = us_get_le32(d);
  int32_t unk = (int32_t)us_get_le32(d + 4);
  if (flags > 3u)
    return us_err_set(err, US_ERR_FORMAT, "bpe: SentencePiece flags 0x%x unknown", flags);
  if (unk < -1 || unk >= v->n_vocab)
    return us_err_set(err, US_ERR_FORMAT, "bpe: unknown token %d outside the vocabulary", (int)unk);
  v->add_space_prefix = flags & 1u;
  v->text_prefix = flags & 2u;
  v->unk = unk;
  v->scores = malloc((size_t)v->n_vocab * sizeof *v->scores);
  if (!v->scores) return us_err_set(err, US_ERR_NOMEM, "bpe: out of memory");
  for (int i = 0; i < v->n_vocab; i++) {
    uint32_t bits = us_get_le32(d + 8 + 4 * (size_t)i);
    memcpy(&v->scores[i], &bits, 4);
  }
  if (us__bpe_spm_byte_tokens(bpe) != 0)
    return us_err_set(err, US_ERR_FORMAT,
                      "bpe: SentencePiece tokeniser without byte tokens or unk");
  *at += 8 + 4 * (size_t)v->n_vocab;
  return US_OK;
}

us_status us__bpe_vocab_deserialize(const unsigned char *d, size_t len, size_t *used, us_bpe **out,
                                    us_err *err) {
  *out = NULL;
  if (len < 48)
    return us_err_set(err, US_ERR_FORMAT, "bpe: imported tokeniser needs 48 header bytes, %zu left",
                      len);
  uint32_t f[12];
  for (int i = 0; i < 12; i++) f[i] = us_get_le32(d + 4 * i);
  uint32_t nv = f[1], nm = f[2], nh = f[9], nmid = f[10];
  if (nv < (f[3] == US_BPE_PRE_SPM ? 1u : 256u) || nv > US_BPE_MAX_IMPORTED_VOCAB ||
      nm > 4 * US_BPE_MAX_IMPORTED_VOCAB || f[3] < US_BPE_PRE_GPT2 || f[3] > US_BPE_PRE_SPM ||
      nh > 1024 || nmid > 1024)
    return us_err_set(err, US_ERR_FORMAT,
                      "bpe: imported tokeniser header out of range (%u tokens, %u merges, "
                      "pre-tokeniser %u)",
                      nv, nm, f[3]);
  for (int i = 4; i < 8; i++)
    if (f[i] >= nv)
      return us_err_set(err, US_ERR_FORMAT, "bpe: special token %u outside the vocabulary", f[i]);
  const char **texts = malloc(nv * sizeof *texts);
  size_t *lens = malloc(nv * sizeof *lens);
  int32_t *types = malloc(nv * sizeof *types), *triples = malloc(((size_t)nm + 1) * 12);
  us_status st = US_OK;
  if (!texts || !lens || !types || !triples) {
    st = us_err_set(err, US_ERR_NOMEM, "bpe: out of memory");
    goto done;
  }
  size_t at = 48;
  for (uint32_t i = 0; i < nv; i++) {
    if (len - at < 5 || (len - at - 5) < us_get_le32(d + at + 1)) {
      st = us_err_set(err, US_ERR_FORMAT, "bpe: imported tokeniser truncated at token %u", i);
      goto done;
    }
    types[i] = d[at];
    lens[i] = us_get_le32(d + at + 1);
    texts[i] = (const char *)d + at + 5;
    at += 5 + lens[i];
  }
  if ((len - at) / 12 < nm || (len - at - 12 * (size_t)nm) / 4 < (size_t)nh + nmid) {
    st = us_err_set(err, US_ERR_FORMAT, "bpe: imported tokeniser truncated in its merges");
    goto done;
  }
  for (size_t i = 0; i < 3 * (size_t)nm; i++) {
    triples[i] = (int32_t)us_get_le32(d + at + 4 * i);
    if (triples[i] < 0 || (uint32_t)triples[i] >= nv) {
      st = us_err_set(err, US_ERR_FORMAT, "bpe: imported merge %zu names token %d", i / 3,
                      (int)triples[i]);
      goto done;
    }
  }
  at += 12 * (size_t)nm;
  us_bpe_special sp = {(int)f[4], (int)f[5], (int)f[6], (int)f[7]};
  st = us__bpe_vocab_build((int)nv, texts, lens, types, (int)nm, triples, (us_bpe_pretok)f[3], sp,
                           out, err);
  if (st != US_OK) goto done;
  us__bpe_vocab *v = (*out)->vocab;
  v->chat_tokens = malloc(((size_t)nh + nmid + 1) * sizeof(int32_t));
  if (!v->chat_tokens) {
    st = us_err_set(err, US_ERR_NOMEM, "bpe: out of memory");
    goto done;
  }
  for (size_t i = 0; i < (size_t)nh + nmid; i++, at += 4) {
    v->chat_tokens[i] = (int32_t)us_get_le32(d + at);
    if (v->chat_tokens[i] < 0 || (uint32_t)v->chat_tokens[i] >= nv) {
      st = us_err_set(err, US_ERR_FORMAT, "bpe: chat format token %d outside the vocabulary",
                      (int)v->chat_tokens[i]);
      goto done;
    }
  }
  if (f[11] >= nv) {
    st = us_err_set(err, US_ERR_FORMAT, "bpe: chat end token %u outside the vocabulary", f[11]);
    goto done;
  }
  v->chat =
      (us_bpe_chat){v->chat_tokens, (int)nh, v->chat_tokens + nh, (int)nmid, (int)f[11], (int)f[8]};
  if (v->pretok == US_BPE_PRE_SPM) {
    st = spm_deserialize(*out, d + at, len - at, &at, err);
    if (st != US_OK) goto done;
  }
  *used = at;
done:
  if (st != US_OK) {
    us_bpe_free(*out);
    *out = NULL;
  }
  free(texts);
  free(lens);
  free(types);
  free(triples);
  return st;
}
