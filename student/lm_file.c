/* The language-model file, also used for training checkpoints. Layout (little endian) of
 * version 2, which this build writes:
 *
 *   offset  size        field
 *   0       4           magic "USLM"
 *   4       4           u32 format version (2)
 *   8       4           u32 flags: bit 0 = a training state follows the weights; bit 1 (only
 *                       with bit 0) = the state holds the schedule; bit 2 (only with bit 0) =
 *                       the state ends with the early-stopping record
 *   12      24          u32 layers, dim, heads, context, vocab, hidden
 *   36      4           u32 heads_kv (divides heads)
 *   40      4           u32 untied: 1 = an output matrix follows the embeddings, 0 = tied
 *   44      8           f64 rope_base
 *   52      8           f64 norm_eps
 *   60      4           u32 reserved, 0
 *   64      8           u64 n_params (must equal us_lm_param_count of the config)
 *   72      ...         tokeniser (us_bpe_serialize, student/bpe.h)
 *   ...     4*n_params  f32 weights in the us__lm_params order
 *
 * Version 1 (still read) has a 48-byte header: the six sizes, u32 0, u64 n_params at 40; its
 * model is the tied one with heads_kv = heads, rope base 10000 and epsilon 1e-5. After the
 * weights, in both versions:
 *   if flags bit 0:
 *           8*4         u64 step, epoch, cursor (next example in the epoch), seed
 *           8*4         u64 RNG state
 *           4*n_params  f32 AdamW first moments
 *           4*n_params  f32 AdamW second moments
 *   if flags bit 1:
 *           8*2         u64 planned steps, warmup steps (a resumed run keeps its schedule)
 *   if flags bit 2:
 *           8           f64 best validation loss
 *           8*5         u64 its step, checks since it, checks run, validation examples each
 *                       check covers, steps between checks
 *           4*n_params  f32 the best check's weights (a resumed run delivers what one run would)
 *   end-32  32          SHA-256 of every byte before it
 */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/bytes.h"
#include "core/hash.h"
#include "student/finite.h"
#include "student/lm_int.h"

#define LM_MAGIC "USLM"
#define LM_VERSION 2u
#define LM_HEADER_V1 48u
#define LM_HEADER 72u
#define LM_MAX_FILE ((size_t)4 << 30)

/* Floats are stored in the host order, which the build requires to be little endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "model files assume little endian");

us_status us__lm_serialize(const us_lm *lm, const us__lm_train_state *ts, us_buf *out,
                           us_err *err) {
  const us_lm_config *c = &lm->config;
  unsigned char h[LM_HEADER];
  memcpy(h, LM_MAGIC, 4);
  us_put_le32(h + 4, LM_VERSION);
  us_put_le32(h + 8, ts ? 1u | (ts->planned ? 2u : 0u) | (ts->has_best ? 4u : 0u) : 0u);
  int fields[8] = {c->layers, c->dim,    c->heads,           c->context,
                   c->vocab,  c->hidden, us__lm_heads_kv(c), c->untied};
  for (int i = 0; i < 8; i++) us_put_le32(h + 12 + 4 * i, (uint32_t)fields[i]);
  us_put_le_f64(h + 44, us__lm_rope_base(c));
  us_put_le_f64(h + 52, c->norm_eps > 0.0 ? c->norm_eps : (double)US_LM_NORM_EPS);
  us_put_le32(h + 60, 0);
  us_put_le64(h + 64, lm->n_params);
  size_t bytes = lm->n_params * sizeof(float);
  if (us_buf_reserve(out, LM_HEADER + bytes * (ts ? (ts->has_best ? 4 : 3) : 1) + 4096) != US_OK ||
      us_buf_append(out, h, sizeof h) != US_OK)
    goto nomem;
  us_status st = us_bpe_serialize(lm->bpe, out, err);
  if (st != US_OK) return st;
  if (us_buf_append(out, lm->block, bytes) != US_OK) goto nomem;
  if (ts) {
    unsigned char s[64];
    uint64_t v[8] = {ts->step,     ts->epoch,    ts->cursor,   ts->seed,
                     ts->rng.s[0], ts->rng.s[1], ts->rng.s[2], ts->rng.s[3]};
    for (int i = 0; i < 8; i++) us_put_le64(s + 8 * i, v[i]);
    if (us_buf_append(out, s, sizeof s) != US_OK || us_buf_append(out, ts->m, bytes) != US_OK ||
        us_buf_append(out, ts->v, bytes) != US_OK)
      goto nomem;
    unsigned char plan[16];
    us_put_le64(plan, ts->planned);
    us_put_le64(plan + 8, ts->warmup);
    if (ts->planned && us_buf_append(out, plan, sizeof plan) != US_OK) goto nomem;
    if (ts->has_best) {
      unsigned char e[48];
      us_put_le_f64(e, ts->best_loss);
      uint64_t w[5] = {ts->best_step, ts->bad, ts->evaluations, ts->valid_use, ts->eval_every};
      for (int i = 0; i < 5; i++) us_put_le64(e + 8 + 8 * i, w[i]);
      if (us_buf_append(out, e, sizeof e) != US_OK || us_buf_append(out, ts->best, bytes) != US_OK)
        goto nomem;
    }
  }
  unsigned char digest[32];
  us_sha256(out->data, out->len, digest);
  if (us_buf_append(out, digest, sizeof digest) != US_OK) goto nomem;
  return US_OK;
nomem:
  return us_err_set(err, US_ERR_NOMEM, "lm: out of memory serialising %zu parameters",
                    lm->n_params);
}

us_status us_lm_save(const us_lm *lm, const char *path, us_err *err) {
  us_buf b;
  us_buf_init(&b, 0);
  us_status st = us__lm_serialize(lm, NULL, &b, err);
  if (st == US_OK) st = us_write_file_atomic(path, b.data, b.len, err);
  us_buf_free(&b);
  return st;
}

/* A config the file describes but this build refuses is a corrupt file, not a bad config. */
static us_status as_format_error(us_err *err, const char *path) {
  us_err_prefix(err, "%s: bad language model header", path);
  if (err) err->code = US_ERR_FORMAT;
  return US_ERR_FORMAT;
}

/* Checks the header; sets the config, the flags and the header's size. */
static us_status parse_header(const unsigned char *d, size_t len, const char *path, us_lm_config *c,
                              uint32_t *flags, size_t *header, us_err *err) {
  if (len < 8 || memcmp(d, LM_MAGIC, 4) != 0)
    return us_err_set(err, US_ERR_FORMAT, "%s: not a language model file (magic is not USLM)",
                      path);
  uint32_t version = us_get_le32(d + 4);
  if (version != 1 && version != LM_VERSION)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: language model format version %u, this build reads versions 1 and %u",
                      path, version, LM_VERSION);
  *header = version == 1 ? LM_HEADER_V1 : LM_HEADER;
  if (len < *header)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: truncated language model: %zu bytes, shorter than the %zu-byte header",
                      path, len, *header);
  *flags = us_get_le32(d + 8);
  if (*flags > 7u || (*flags != 0 && !(*flags & 1u)))
    return us_err_set(err, US_ERR_FORMAT, "%s: unknown flags 0x%x in the header", path, *flags);
  memset(c, 0, sizeof *c);
  int *fields[8] = {&c->layers, &c->dim,    &c->heads,    &c->context,
                    &c->vocab,  &c->hidden, &c->heads_kv, &c->untied};
  for (int i = 0; i < (version == 1 ? 6 : 8); i++) {
    uint32_t v = us_get_le32(d + 12 + 4 * i);
    *fields[i] = v > 0x7fffffffu ? -1 : (int)v;
  }
  if (version > 1) {
    c->rope_base = us_get_le_f64(d + 44);
    c->norm_eps = us_get_le_f64(d + 52);
  }
  us_status st = us_lm_config_check(c, err);
  if (st != US_OK) return as_format_error(err, path);
  uint64_t n = us_get_le64(d + *header - 8);
  if (n != us_lm_param_count(c))
    return us_err_set(err, US_ERR_FORMAT, "%s: header says %llu parameters, its sizes give %zu",
                      path, (unsigned long long)n, us_lm_param_count(c));
  return US_OK;
}

static void free_state(us__lm_train_state *ts) {
  free(ts->m);
  free(ts->v);
  free(ts->best);
  ts->m = ts->v = ts->best = NULL;
  ts->has_best = false;
}

us_status us__lm_parse(const unsigned char *d, size_t len, const char *path, us_lm **out,
                       us__lm_train_state *ts, bool *has_state, us_err *err) {
  *out = NULL;
  if (has_state) *has_state = false;
  us_lm_config c;
  uint32_t flags = 0;
  size_t header = 0;
  us_status st = parse_header(d, len, path, &c, &flags, &header, err);
  if (st != US_OK) return st;
  if (len < header + 4 + 32)
    return us_err_set(err, US_ERR_FORMAT, "%s: truncated language model: %zu bytes, no tokeniser",
                      path, len);
  /* what follows the tokeniser has a fixed size; a native tokeniser announces its own, an
   * imported one (marker UINT32_MAX, student/bpe.h) must fill the rest exactly */
  size_t n_params = us_lm_param_count(&c), bytes = n_params * sizeof(float);
  size_t tail = bytes + (flags ? 64 + 2 * bytes : 0) + (flags & 2u ? 16 : 0) +
                (flags & 4u ? 48 + bytes : 0) + 32;
  uint32_t n_merges = us_get_le32(d + header);
  bool imported = n_merges == UINT32_MAX;
  size_t expect = imported ? header + 4 + tail : header + 4 + 8 * (size_t)n_merges + tail;
  if ((!imported && n_merges > US_BPE_MAX_VOCAB) || len < expect)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: truncated language model: %zu bytes, its header announces %s%zu", path,
                      len, imported ? "at least " : "", expect);
  if (!imported && len > expect)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: %zu unexpected bytes after the language model (%zu expected)", path,
                      len - expect, expect);
  unsigned char digest[32];
  us_sha256(d, len - 32, digest);
  if (memcmp(digest, d + len - 32, 32) != 0)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: corrupt language model: SHA-256 checksum does not match", path);
  us_bpe *bpe = NULL;
  size_t used = 0;
  st = us_bpe_deserialize(d + header, len - header - tail, &used, &bpe, err);
  if (st == US_OK && header + used + tail != len) {
    us_bpe_free(bpe);
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: %zu unexpected bytes between the tokeniser and the weights", path,
                      len - (header + used + tail));
  }
  if (st != US_OK) {
    us_err_prefix(err, "%s", path);
    return st;
  }
  us_lm *lm = NULL;
  st = us_lm_new(&c, bpe, 0, &lm, err);
  if (st == US_ERR_CONFIG) return as_format_error(err, path);
  if (st != US_OK) {
    us_err_prefix(err, "%s", path);
    return st;
  }
  const unsigned char *p = d + header + used;
  memcpy(lm->block, p, bytes);
  p += bytes;
  /* a checksum only proves the bytes are the ones written: a diverged training or an edited and
   * resealed file holds weights that would make every logit NaN */
  size_t bad = us__first_nonfinite(lm->block, n_params);
  if (bad < n_params) {
    st = us_err_set(err, US_ERR_FORMAT,
                    "%s: corrupt language model (weight %zu is %s; every weight must be a finite "
                    "number)",
                    path, bad, isnan(lm->block[bad]) ? "NaN" : "infinite");
    us_lm_free(lm);
    return st;
  }
  if (flags && ts) {
    uint64_t v[8];
    for (int i = 0; i < 8; i++) v[i] = us_get_le64(p + 8 * i);
    ts->step = v[0];
    ts->epoch = v[1];
    ts->cursor = v[2];
    ts->seed = v[3];
    for (int i = 0; i < 4; i++) ts->rng.s[i] = v[4 + i];
    ts->m = malloc(bytes);
    ts->v = malloc(bytes);
    ts->best = flags & 4u ? malloc(bytes) : NULL;
    if (!ts->m || !ts->v || (flags & 4u && !ts->best)) {
      free_state(ts);
      us_lm_free(lm);
      return us_err_set(err, US_ERR_NOMEM, "%s: out of memory for the optimiser state", path);
    }
    memcpy(ts->m, p + 64, bytes);
    memcpy(ts->v, p + 64 + bytes, bytes);
    const unsigned char *q = p + 64 + 2 * bytes;
    ts->planned = flags & 2u ? us_get_le64(q) : 0;
    ts->warmup = flags & 2u ? us_get_le64(q + 8) : 0;
    q += flags & 2u ? 16 : 0;
    ts->has_best = flags & 4u;
    if (ts->has_best) {
      ts->best_loss = us_get_le_f64(q);
      uint64_t *w[5] = {&ts->best_step, &ts->bad, &ts->evaluations, &ts->valid_use,
                        &ts->eval_every};
      for (int i = 0; i < 5; i++) *w[i] = us_get_le64(q + 8 + 8 * i);
      memcpy(ts->best, q + 48, bytes);
    }
    if (us__first_nonfinite(ts->m, n_params) < n_params ||
        us__first_nonfinite(ts->v, n_params) < n_params ||
        (ts->best &&
         (us__first_nonfinite(ts->best, n_params) < n_params || !isfinite(ts->best_loss)))) {
      free_state(ts);
      us_lm_free(lm);
      return us_err_set(err, US_ERR_FORMAT,
                        "%s: corrupt checkpoint (an optimiser moment or a best weight is not a "
                        "finite number)",
                        path);
    }
    if (has_state) *has_state = true;
  }
  *out = lm;
  return US_OK;
}

us_status us_lm_load(const char *path, us_lm **out, us_err *err) {
  *out = NULL;
  char *data = NULL;
  size_t len = 0;
  us_status st = us_read_file(path, LM_MAX_FILE, &data, &len, err);
  if (st != US_OK) return st;
  st = us__lm_parse((const unsigned char *)data, len, path, out, NULL, NULL, err);
  free(data);
  return st;
}
