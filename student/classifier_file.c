/* The classifier model file. All integers little-endian, floats IEEE-754 binary32/64.
 *
 *   offset size  field
 *   0      8     magic "USCLSF\r\n" (the CR LF catches text-mode mangling)
 *   8      4     u32 format version (4; versions 1 to 3 load too, see below)
 *   12     8     u64 body length B
 *   20     32    SHA-256 of the body
 *   52     B     body:
 *     i32 x 18   dim, word_ngrams, minn, maxn, buckets, n_hidden, hidden[4], epochs, patience,
 *                threads, quantize (0/1), storage (0: float32 rows, 1: int8 rows, 2: 4-bit
 *                rows), min_count, min_count_ngram, quantize_bits
 *     f64 x 4    dropout, lr, kd_temperature, label_smoothing
 *     u64        seed
 *     i32 x 4    lowercase, punctuation, fold_digits, fold_urls (0/1: the tokeniser)
 *     f64        class_weight
 *     i32 x 5    autotuned (0/1), folds, candidates, trainings, final_epochs   the search's
 *     f64        valid_acc                                                   record
 *     u32        length (< 256), then bytes                                  chosen setting
 *     u32        n_labels, then n_labels x (u32 length, bytes)        labels (no NUL)
 *     u32        n_words,  then n_words  x (u32 length, bytes)        vocabulary, id order
 *     u32        n_rows,   then n_rows x u32                           feature key of each row
 *     rows       storage 0: f32 [n_rows][dim]; storage 1: f32 scale [n_rows], i8 [n_rows][dim];
 *                storage 2: f32 scale [n_rows], u8 [n_rows][(dim + 1) / 2], weight 2i in the
 *                low nibble of byte i, as q + 8 with q in -8..7 (weight = scale * q)
 *     f32        dense layers: for l in 0..n_hidden: W_l [out][in], b_l [out]
 *                (in_0 = dim, out_l = hidden[l], last out = n_labels)
 *     u32        n_nb (0: no naive Bayes term)                        the naive Bayes term
 *     f32        nb_weight                                            (p.nb; classifier_nb.c)
 *     u32 x n_nb feature key of each ratio row (uni- and bigram keys, as above)
 *     f32        ratios [n_nb][n_labels]
 *   The body ends exactly there. Feature keys: word id < n_words, else
 *   n_words + hash % buckets (student/classifier_features.c).
 *
 *   Version 1 (before min counts and 4-bit rows) differs only in the parameters: 15 i32 (no
 *   min_count, min_count_ngram, quantize_bits; storage 0 or 1). It loads with min counts 1 and
 *   quantize_bits 8, and is saved again as version 4.
 *
 *   Version 2 (before the tokeniser options and automatic selection) has no tokeniser, class
 *   weight or search record: it loads with the default tokeniser (lower-case, punctuation as
 *   tokens, digits and URLs as they are), class weight 0 and no search record.
 *
 *   Version 3 (before the naive Bayes term) ends after the dense layers: it loads with no
 *   naive Bayes term (p.nb false). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/hash.h"
#include "student/classifier_int.h"

#define MAGIC "USCLSF\r\n"
#define VERSION 4u
#define N_INTS 18 /* version 2 and 3 parameters; version 1 has the first 15 */
#define N_TOK 4   /* version 3: the tokeniser's options */
#define N_TUNE 5  /* version 3: the search record's integers */
#define HEADER 52

/* ---- writing ---- */

static us_status put(us_buf *b, const void *p, size_t n) {
  return us_buf_append(b, p, n);
}
static us_status put_u32(us_buf *b, uint32_t v) {
  return put(b, &v, 4);
}
static us_status put_str(us_buf *b, const char *s) {
  uint32_t n = (uint32_t)strlen(s);
  us_status st = put_u32(b, n);
  return st != US_OK ? st : put(b, s, n);
}

static us_status write_tokeniser_and_search(const us_classifier *m, us_buf *b) {
  const us_classifier_params *p = &m->p;
  const us_autotune_info *t = &m->tune;
  int32_t tok[N_TOK] = {p->lowercase, p->punctuation, p->fold_digits, p->fold_urls};
  int32_t tune[N_TUNE] = {t->autotuned, t->folds, t->candidates, t->trainings, t->final_epochs};
  size_t chosen = strnlen(t->chosen, sizeof t->chosen - 1);
  us_status st = put(b, tok, sizeof tok);
  if (st == US_OK) st = put(b, &p->class_weight, 8);
  if (st == US_OK) st = put(b, tune, sizeof tune);
  if (st == US_OK) st = put(b, &t->valid_acc, 8);
  if (st == US_OK) st = put_u32(b, (uint32_t)chosen);
  if (st == US_OK) st = put(b, t->chosen, chosen);
  return st;
}

static us_status write_body(const us_classifier *m, us_buf *b) {
  const us_classifier_params *p = &m->p;
  int storage = !m->qemb ? 0 : m->qbits == 4 ? 2 : 1;
  int32_t ints[N_INTS] = {p->dim,       p->word_ngrams,      p->minn,
                          p->maxn,      p->buckets,          p->n_hidden,
                          p->hidden[0], p->hidden[1],        p->hidden[2],
                          p->hidden[3], p->epochs,           p->patience,
                          p->threads,   p->quantize ? 1 : 0, storage,
                          p->min_count, p->min_count_ngram,  p->quantize_bits};
  us_status st = put(b, ints, sizeof ints);
  double dbl[4] = {p->dropout, p->lr, p->kd_temperature, p->label_smoothing};
  if (st == US_OK) st = put(b, dbl, sizeof dbl);
  if (st == US_OK) st = put(b, &p->seed, 8);
  if (st == US_OK) st = write_tokeniser_and_search(m, b);
  if (st == US_OK) st = put_u32(b, (uint32_t)m->n_labels);
  for (int i = 0; st == US_OK && i < m->n_labels; i++) st = put_str(b, m->labels[i]);
  if (st == US_OK) st = put_u32(b, (uint32_t)m->vocab.n_words);
  for (int i = 0; st == US_OK && i < m->vocab.n_words; i++) st = put_str(b, m->vocab.words[i]);
  if (st == US_OK) st = put_u32(b, (uint32_t)m->n_rows);
  size_t rows = (size_t)m->n_rows, d = (size_t)p->dim;
  if (st == US_OK) st = put(b, m->row_keys, rows * 4);
  if (m->qemb) {
    if (st == US_OK) st = put(b, m->qscale, rows * 4);
    if (st == US_OK) st = put(b, m->qemb, rows * (storage == 2 ? (d + 1) / 2 : d));
  } else if (st == US_OK) {
    st = put(b, m->emb, rows * d * 4);
  }
  if (st == US_OK) st = put(b, m->dense, (size_t)m->dense_count * 4);
  if (st == US_OK) st = put_u32(b, (uint32_t)m->n_nb);
  if (st == US_OK) st = put(b, &m->nb_weight, 4);
  if (st == US_OK) st = put(b, m->nb_keys, (size_t)m->n_nb * 4);
  if (st == US_OK) st = put(b, m->nb_ratio, (size_t)m->n_nb * (size_t)m->n_labels * 4);
  return st;
}

us_status us_classifier_save(const us_classifier *m, const char *path, us_err *err) {
  us_buf b;
  us_buf_init(&b, 0);
  us_status st = put(&b, MAGIC, 8);
  uint32_t version = VERSION;
  uint64_t zero = 0;
  unsigned char sum[32] = {0};
  if (st == US_OK) st = put(&b, &version, 4);
  if (st == US_OK) st = put(&b, &zero, 8);
  if (st == US_OK) st = put(&b, sum, 32);
  if (st == US_OK) st = write_body(m, &b);
  if (st != US_OK) {
    us_buf_free(&b);
    return us_err_set(err, st, "cannot write model %s: out of memory", path);
  }
  uint64_t body = b.len - HEADER;
  memcpy(b.data + 12, &body, 8);
  us_sha256(b.data + HEADER, body, sum);
  memcpy(b.data + 20, sum, 32);
  st = us_write_file_atomic(path, b.data, b.len, err);
  us_buf_free(&b);
  return st;
}

/* ---- reading: every read is bounds-checked, every size is checked before use ---- */

typedef struct reader {
  const unsigned char *p;
  size_t left;
  const char *what; /* first failure */
} reader;

static bool take(reader *r, void *out, size_t n, const char *what) {
  if (r->what) return false;
  if (n > r->left) {
    r->what = what;
    return false;
  }
  if (n) memcpy(out, r->p, n); /* out may be NULL for an empty table */
  r->p += n;
  r->left -= n;
  return true;
}

static const void *view(reader *r, size_t n, const char *what) {
  if (r->what) return NULL;
  if (n > r->left) {
    r->what = what;
    return NULL;
  }
  const void *p = r->p;
  r->p += n;
  r->left -= n;
  return p;
}

/* Reads count length-prefixed strings into a new array of malloc'd strings. */
static char **take_strings(reader *r, uint32_t count, const char *what) {
  if (count > r->left / 4) { /* each needs at least its length */
    r->what = what;
    return NULL;
  }
  char **out = calloc((size_t)count + 1, sizeof *out);
  if (!out) {
    r->what = "memory";
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    uint32_t len;
    const char *s;
    if (!take(r, &len, 4, what) || !(s = view(r, len, what))) break;
    if (len == 0 || memchr(s, '\0', len)) {
      r->what = what;
      break;
    }
    if (!(out[i] = malloc((size_t)len + 1))) {
      r->what = "memory";
      break;
    }
    memcpy(out[i], s, len);
    out[i][len] = '\0';
  }
  if (r->what) {
    for (uint32_t i = 0; i < count; i++) free(out[i]);
    free(out);
    return NULL;
  }
  return out;
}

static const char *check_params(const us_classifier_params *p, int storage) {
  if (p->dim < 1 || p->dim > 4096) return "dim out of range";
  if (p->word_ngrams < 1 || p->word_ngrams > 8) return "word_ngrams out of range";
  if (p->maxn != 0 && (p->minn < 1 || p->maxn < p->minn || p->maxn > 32))
    return "minn/maxn out of range";
  if (p->buckets < 1 || p->buckets > (1 << 30)) return "buckets out of range";
  if (p->n_hidden < 0 || p->n_hidden > US_CLASSIFIER_MAX_HIDDEN) return "n_hidden out of range";
  for (int l = 0; l < p->n_hidden; l++)
    if (p->hidden[l] < 1 || p->hidden[l] > US_CLASSIFIER_MAX_HIDDEN_SIZE)
      return "hidden size out of range";
  if (storage < 0 || storage > 2) return "unknown row storage";
  if (p->min_count < 1 || p->min_count_ngram < 1) return "min counts out of range";
  if (p->quantize_bits != 8 && p->quantize_bits != 4) return "quantize_bits out of range";
  return NULL;
}

/* Version 3's tokeniser options and search record; earlier versions get the tokeniser they
 * were written with and no record. */
static const char *read_tokeniser_and_search(reader *r, uint32_t version, us_classifier *m) {
  us_classifier_params *p = &m->p;
  us_autotune_info *t = &m->tune;
  memset(t, 0, sizeof *t);
  p->lowercase = p->punctuation = true;
  p->fold_digits = p->fold_urls = false;
  p->class_weight = 0;
  if (version < 3) return NULL;
  int32_t tok[N_TOK], tune[N_TUNE];
  uint32_t len;
  if (!take(r, tok, sizeof tok, "tokeniser options") ||
      !take(r, &p->class_weight, 8, "class weight") || !take(r, tune, sizeof tune, "search") ||
      !take(r, &t->valid_acc, 8, "search") || !take(r, &len, 4, "search"))
    return r->what;
  for (int i = 0; i < N_TOK; i++)
    if (tok[i] != 0 && tok[i] != 1) return "tokeniser option not 0 or 1";
  if (tune[0] != 0 && tune[0] != 1) return "search flag not 0 or 1";
  if (!(p->class_weight >= 0 && p->class_weight <= 1)) return "class weight out of range";
  if (len >= sizeof t->chosen) return "chosen setting too long";
  if (!take(r, t->chosen, len, "chosen setting")) return r->what;
  t->chosen[len] = '\0';
  p->lowercase = tok[0], p->punctuation = tok[1], p->fold_digits = tok[2], p->fold_urls = tok[3];
  t->autotuned = tune[0], t->folds = tune[1], t->candidates = tune[2];
  t->trainings = tune[3], t->final_epochs = tune[4];
  return NULL;
}

static const char *read_params(reader *r, uint32_t version, us_classifier_params *p, int *storage) {
  int32_t ints[N_INTS] = {0};
  double dbl[4];
  size_t n_ints = version == 1 ? 15 : N_INTS;
  if (!take(r, ints, n_ints * 4, "parameters") || !take(r, dbl, sizeof dbl, "parameters") ||
      !take(r, &p->seed, 8, "parameters"))
    return r->what;
  if (version == 1) { /* before min counts and 4-bit rows */
    if (ints[14] != 0 && ints[14] != 1) return "unknown row storage";
    ints[15] = ints[16] = 1;
    ints[17] = 8;
  }
  p->min_count = ints[15], p->min_count_ngram = ints[16], p->quantize_bits = ints[17];
  p->dim = ints[0], p->word_ngrams = ints[1], p->minn = ints[2], p->maxn = ints[3];
  p->buckets = ints[4], p->n_hidden = ints[5];
  for (int l = 0; l < 4; l++) p->hidden[l] = ints[6 + l];
  p->epochs = ints[10], p->patience = ints[11], p->threads = ints[12];
  p->quantize = ints[13] != 0;
  *storage = ints[14];
  p->dropout = dbl[0], p->lr = dbl[1], p->kd_temperature = dbl[2], p->label_smoothing = dbl[3];
  return check_params(p, *storage);
}

/* Rows, keys and dense weights (after labels and vocabulary). */
static const char *read_weights(reader *r, us_classifier *m, int storage, us_err *err) {
  uint32_t n_rows;
  if (!take(r, &n_rows, 4, "row count")) return r->what;
  size_t d = (size_t)m->p.dim;
  size_t q_bytes = storage == 2 ? (d + 1) / 2 : d; /* per quantised row */
  size_t row_bytes = storage ? q_bytes + 4 : d * 4;
  if (n_rows > r->left / (4 + row_bytes)) return "row count larger than the file";
  m->n_rows = (int)n_rows;
  m->row_keys = malloc(((size_t)n_rows + 1) * 4);
  if (!m->row_keys) return "memory";
  if (!take(r, m->row_keys, (size_t)n_rows * 4, "row keys")) return "row keys";
  if (us__keymap_init(&m->row_of, n_rows + 1, err) != US_OK) return "memory";
  uint64_t limit = (uint64_t)m->vocab.n_words + (uint64_t)m->p.buckets;
  for (uint32_t i = 0; i < n_rows; i++) {
    if (m->row_keys[i] >= limit) return "row key out of range";
    if (us__keymap_put(&m->row_of, m->row_keys[i], (int32_t)i) != (int32_t)i)
      return "repeated row key";
  }
  if (storage) {
    m->qscale = malloc(((size_t)n_rows + 1) * 4);
    m->qemb = malloc((size_t)n_rows * q_bytes + 1);
    if (!m->qscale || !m->qemb) return "memory";
    m->qbits = storage == 2 ? 4 : 8;
    if (!take(r, m->qscale, (size_t)n_rows * 4, "row scales") ||
        !take(r, m->qemb, (size_t)n_rows * q_bytes, "rows"))
      return r->what;
  }
  if (us__classifier_alloc(m, err) != US_OK) return "memory";
  if (!storage && !take(r, m->emb, (size_t)n_rows * d * 4, "rows")) return r->what;
  if ((uint64_t)m->dense_count > r->left / 4) return "dense layers";
  take(r, m->dense, (size_t)m->dense_count * 4, "dense layers");
  if (r->what) return r->what;
  return NULL;
}

/* Version 4's naive Bayes term (after the dense layers); earlier versions have none. */
static const char *read_naive_bayes(reader *r, uint32_t version, us_classifier *m, us_err *err) {
  m->p.nb = false;
  if (version < 4) return NULL;
  uint32_t n_nb;
  if (!take(r, &n_nb, 4, "naive Bayes term") || !take(r, &m->nb_weight, 4, "naive Bayes term"))
    return r->what;
  size_t row_bytes = 4 + (size_t)m->n_labels * 4;
  if (n_nb > r->left / row_bytes) return "naive Bayes row count larger than the file";
  if (n_nb == 0) return NULL;
  m->p.nb = true;
  m->nb_keys = malloc((size_t)n_nb * 4);
  m->nb_ratio = malloc((size_t)n_nb * (size_t)m->n_labels * 4);
  if (!m->nb_keys || !m->nb_ratio) return "memory";
  m->n_nb = (int)n_nb;
  if (!take(r, m->nb_keys, (size_t)n_nb * 4, "naive Bayes keys") ||
      !take(r, m->nb_ratio, (size_t)n_nb * (size_t)m->n_labels * 4, "naive Bayes ratios"))
    return r->what;
  if (us__keymap_init(&m->nb_of, n_nb + 1, err) != US_OK) return "memory";
  uint64_t limit = (uint64_t)m->vocab.n_words + (uint64_t)m->p.buckets;
  for (uint32_t i = 0; i < n_nb; i++) {
    if (m->nb_keys[i] >= limit) return "naive Bayes key out of range";
    if (us__keymap_put(&m->nb_of, m->nb_keys[i], (int32_t)i) != (int32_t)i)
      return "repeated naive Bayes key";
  }
  return NULL;
}

static const char *read_body(reader *r, uint32_t version, us_classifier *m, us_err *err) {
  int storage = 0;
  const char *bad = read_params(r, version, &m->p, &storage);
  if (!bad) bad = read_tokeniser_and_search(r, version, m);
  if (bad) return bad;
  uint32_t n_labels, n_words;
  if (!take(r, &n_labels, 4, "label count")) return r->what;
  if (n_labels < 1 || n_labels > 1000000) return "label count out of range";
  if (!(m->labels = take_strings(r, n_labels, "labels"))) return r->what;
  m->n_labels = (int)n_labels;
  if (!take(r, &n_words, 4, "vocabulary size")) return r->what;
  if (n_words > (uint32_t)INT32_MAX - (uint32_t)m->p.buckets) return "vocabulary too large";
  char **words = n_words ? take_strings(r, n_words, "vocabulary") : NULL;
  if (n_words && !words) return r->what;
  us_status st = us__vocab_from_words(&m->vocab, words, (int)n_words, err);
  for (uint32_t i = 0; i < n_words; i++) free(words[i]);
  free(words);
  if (st != US_OK) return st == US_ERR_NOMEM ? "memory" : "repeated vocabulary word";
  if ((bad = read_weights(r, m, storage, err)) != NULL) return bad;
  if ((bad = read_naive_bayes(r, version, m, err)) != NULL) return bad;
  if (r->left != 0) return "trailing bytes after the weights";
  return NULL;
}

us_status us_classifier_load_buffer(const void *data, size_t len, const char *name,
                                    us_classifier **out, us_err *err) {
  *out = NULL;
  const unsigned char *b = data;
  if (len < HEADER)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: not a classifier model (%zu bytes, shorter than the %d-byte header)",
                      name, len, HEADER);
  if (memcmp(b, MAGIC, 8) != 0)
    return us_err_set(err, US_ERR_FORMAT, "%s: not a classifier model (bad magic)", name);
  uint32_t version;
  uint64_t body;
  memcpy(&version, b + 8, 4);
  memcpy(&body, b + 12, 8);
  if (version < 1 || version > VERSION)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: model format version %u, this build reads versions 1 to %u: "
                      "retrain the model with this build, or load it with the build that wrote it",
                      name, version, VERSION);
  if (body != len - HEADER)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: truncated or padded model: header says %llu body bytes, file has %zu",
                      name, (unsigned long long)body, len - HEADER);
  unsigned char sum[32];
  us_sha256(b + HEADER, (size_t)body, sum);
  if (memcmp(sum, b + 20, 32) != 0)
    return us_err_set(err, US_ERR_FORMAT, "%s: checksum mismatch: the model file is corrupt", name);
  us_classifier *m = calloc(1, sizeof *m);
  if (!m) return us_err_set(err, US_ERR_NOMEM, "%s: out of memory", name);
  reader r = {b + HEADER, (size_t)body, NULL};
  us_err inner;
  const char *bad = read_body(&r, version, m, &inner);
  if (bad) {
    us_classifier_free(m);
    if (strcmp(bad, "memory") == 0)
      return us_err_set(err, US_ERR_NOMEM, "%s: out of memory loading the model", name);
    return us_err_set(err, US_ERR_FORMAT, "%s: corrupt model (%s)", name, bad);
  }
  /* a checksum only proves the bytes are the ones written: a diverged training or an edited and
   * resealed file holds weights that would turn every prediction into NaN */
  char where[128];
  if (!us__classifier_weights_finite(m, where, sizeof where)) {
    us_classifier_free(m);
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: corrupt model (%s; every weight must be a finite number)", name, where);
  }
  *out = m;
  return US_OK;
}

us_status us_classifier_load(const char *path, us_classifier **out, us_err *err) {
  char *data;
  size_t len;
  *out = NULL;
  us_status st = us_read_file(path, 0, &data, &len, err);
  if (st != US_OK) return st;
  st = us_classifier_load_buffer(data, len, path, out, err);
  free(data);
  return st;
}
