/* Low-rank adapters for fine-tuning a pretrained model: their parameter block, the forward and
 * backward terms the transformer adds after each adapted projection, the merge into the base
 * weights on save, and the adapters' checkpoint. Every product goes through student/blas.h.
 *
 * LoRA checkpoint, version 1 (little endian). It holds the adapters and their training state,
 * never the frozen base (hundreds of MB): the base is named by its path, size and hash, and a
 * resume against another file is refused.
 *
 *   offset  size        field
 *   0       4           magic "USLA"
 *   4       4           u32 format version (1)
 *   8       4           u32 flags: bit 0 = the best check's adapters follow the moments
 *   12      4           u32 rank
 *   16      8           f64 scale (alpha / rank)
 *   24      4           u32 layers
 *   28      16          u32 in[4]: input width of each adapted projection (qkv, o, 13, 2)
 *   44      16          u32 out[4]: output width of each
 *   60      4           u32 reserved, 0
 *   64      8           u64 n (adapter parameters: sum over kinds of layers * rank * (in + out))
 *   72      8           u64 base file size in bytes
 *   80      8           u64 base hash (us_lm.base_hash: FNV-1a of the GGUF's tensors)
 *   88      4           u32 P, length of the base's path (at most 1023)
 *   92      P           the base's path (student.init when written), not NUL-terminated
 *   ...     8*10        u64 step, epoch, cursor, seed, RNG state (4), planned steps, warmup
 *   ...     8           f64 best validation loss (early stopping; +inf before the first check)
 *   ...     8*3         u64 best step, checks without improvement, checks run
 *   ...     4*n         f32 adapters (for each kind, A (L, rank, in) then B (L, out, rank))
 *   ...     4*n         f32 AdamW first moments
 *   ...     4*n         f32 AdamW second moments
 *   if flags bit 0:
 *           4*n         f32 adapters of the best validation check
 *   end-32  32          SHA-256 of every byte before it
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/bytes.h"
#include "core/hash.h"
#include "student/blas.h"
#include "student/finite.h"
#include "student/lm_int.h"

#define LORA_MAGIC "USLA"
#define LORA_VERSION 1u
#define LORA_HEADER 92u
#define LORA_STATE (8u * 10u + 8u + 8u * 3u)

void us__lm_lora_free(us__lm_lora *lo) {
  if (!lo) return;
  free(lo->block);
  free(lo->grad);
  free(lo);
}

us_status us__lm_lora_new(us_lm *lm, int rank, double alpha, us_rng *rng, us_err *err) {
  const us_lm_config *c = &lm->config;
  if (rank < 1 || rank > c->dim)
    return us_err_set(err, US_ERR_CONFIG, "lora_rank: expected 1..%d (the model width), found %d",
                      c->dim, rank);
  us__lm_lora *lo = calloc(1, sizeof *lo);
  if (!lo) return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for the adapters");
  int C = c->dim, F = c->hidden;
  int in[US_LM_LORA_KINDS] = {C, C, C, F},
      out[US_LM_LORA_KINDS] = {us__lm_qkv_width(c), C, 2 * F, C};
  lo->rank = rank;
  lo->layers = c->layers;
  lo->scale = (float)(alpha / rank);
  size_t L = (size_t)c->layers, r = (size_t)rank, n = 0;
  for (int k = 0; k < US_LM_LORA_KINDS; k++) {
    lo->in[k] = in[k];
    lo->out[k] = out[k];
    n += L * r * ((size_t)in[k] + (size_t)out[k]);
  }
  lo->n_params = n;
  lo->block = malloc(n * sizeof(float));
  lo->grad = calloc(n + 1, sizeof(float)); /* + 1: the loss slot of lm_dist.h */
  if (!lo->block || !lo->grad) {
    us__lm_lora_free(lo);
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for %zu adapter parameters", n);
  }
  float *p = lo->block, *g = lo->grad;
  for (int k = 0; k < US_LM_LORA_KINDS; k++) {
    size_t na = L * r * (size_t)in[k], nb = L * r * (size_t)out[k];
    float bound = 1.0f / sqrtf((float)in[k]);
    lo->a[k] = p;
    lo->ga[k] = g;
    for (size_t i = 0; i < na; i++) p[i] = bound * (2.0f * (float)us_rng_uniform(rng) - 1.0f);
    lo->b[k] = p + na;
    lo->gb[k] = g + na;
    memset(p + na, 0, nb * sizeof(float));
    p += na + nb;
    g += na + nb;
  }
  us__lm_lora_free(lm->lora);
  lm->lora = lo;
  return US_OK;
}

/* The base matrix an adapter kind modifies, layer l: (out, in). */
static float *base_matrix(us_lm *lm, int kind, int l) {
  const us__lm_lora *lo = lm->lora;
  float *base[US_LM_LORA_KINDS] = {lm->w.wqkv, lm->w.wo, lm->w.w13, lm->w.w2};
  return base[kind] + (size_t)l * (size_t)lo->out[kind] * (size_t)lo->in[kind];
}

us_status us__lm_lora_merge(us_lm *lm, us_err *err) {
  us__lm_lora *lo = lm->lora;
  if (!lo) return US_OK;
  us_status st = us__lm_q8_expand(lm, err); /* a Q8_0 base becomes float to take the product */
  if (st != US_OK) return st;
  int r = lo->rank;
  for (int k = 0; k < US_LM_LORA_KINDS; k++)
    for (int l = 0; l < lo->layers; l++) {
      int in = lo->in[k], out = lo->out[k];
      const float *A = lo->a[k] + (size_t)l * r * in, *B = lo->b[k] + (size_t)l * out * r;
      us_blas_sgemm(false, false, out, in, r, lo->scale, B, r, A, in, 1.0f, base_matrix(lm, k, l),
                    in);
    }
  us__lm_lora_free(lo);
  lm->lora = NULL;
  return US_OK;
}

us_status us__lm_acts_lora(us__lm_acts *a, const us__lm_lora *lo, int layers, us_err *err) {
  size_t N = (size_t)a->B * (size_t)a->T, r = (size_t)lo->rank;
  free(a->lora_u);
  free(a->lora_du);
  a->lora_u = malloc((size_t)layers * US_LM_LORA_KINDS * N * r * sizeof(float));
  a->lora_du = malloc(N * r * sizeof(float));
  if (!a->lora_u || !a->lora_du)
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for the adapters' activations");
  return US_OK;
}

static float *saved_u(const us__lm_lora *lo, us__lm_acts *a, int l, int kind) {
  size_t N = (size_t)a->B * (size_t)a->T;
  return a->lora_u + ((size_t)l * US_LM_LORA_KINDS + (size_t)kind) * N * (size_t)lo->rank;
}

void us__lm_lora_forward(const us__lm_lora *lo, us__lm_acts *a, int l, int kind, const float *x,
                         int N, float *y) {
  int r = lo->rank, in = lo->in[kind], out = lo->out[kind];
  const float *A = lo->a[kind] + (size_t)l * r * in, *B = lo->b[kind] + (size_t)l * out * r;
  float *u = saved_u(lo, a, l, kind);
  us_blas_sgemm(false, true, N, r, in, 1.0f, x, in, A, in, 0.0f, u, r);
  us_blas_sgemm(false, true, N, out, r, lo->scale, u, r, B, r, 1.0f, y, out);
}

void us__lm_lora_backward(const us__lm_lora *lo, us__lm_acts *a, int l, int kind, const float *dy,
                          const float *x, int N, float *dx) {
  int r = lo->rank, in = lo->in[kind], out = lo->out[kind];
  size_t la = (size_t)l * r * in, lb = (size_t)l * out * r;
  const float *A = lo->a[kind] + la, *B = lo->b[kind] + lb, *u = saved_u(lo, a, l, kind);
  float *du = a->lora_du;
  /* dB += scale dy^T u; du = scale dy B; dA += du^T x; dx += du A */
  us_blas_sgemm(true, false, out, r, N, lo->scale, dy, out, u, r, 1.0f, lo->gb[kind] + lb, r);
  us_blas_sgemm(false, false, N, r, out, lo->scale, dy, out, B, r, 0.0f, du, r);
  us_blas_sgemm(true, false, r, in, N, 1.0f, du, r, x, in, 1.0f, lo->ga[kind] + la, in);
  us_blas_sgemm(false, false, N, in, r, 1.0f, du, r, A, in, 1.0f, dx, in);
}

/* ---- checkpoints ---- */

bool us__lm_is_lora_checkpoint(const unsigned char *d, size_t len) {
  return len >= 4 && memcmp(d, LORA_MAGIC, 4) == 0;
}

us_status us__lm_lora_serialize(const us_lm *lm, const us__lm_train_state *ts,
                                const us__lm_lora_ckpt *ck, us_buf *out, us_err *err) {
  const us__lm_lora *lo = lm->lora;
  size_t path_len = strlen(ck->base_path), bytes = lo->n_params * sizeof(float);
  if (path_len >= sizeof ck->base_path) path_len = sizeof ck->base_path - 1;
  unsigned char h[LORA_HEADER], s[LORA_STATE];
  memcpy(h, LORA_MAGIC, 4);
  us_put_le32(h + 4, LORA_VERSION);
  us_put_le32(h + 8, ck->best ? 1u : 0u);
  us_put_le32(h + 12, (uint32_t)lo->rank);
  us_put_le_f64(h + 16, (double)lo->scale);
  us_put_le32(h + 24, (uint32_t)lo->layers);
  for (int k = 0; k < US_LM_LORA_KINDS; k++) {
    us_put_le32(h + 28 + 4 * k, (uint32_t)lo->in[k]);
    us_put_le32(h + 44 + 4 * k, (uint32_t)lo->out[k]);
  }
  us_put_le32(h + 60, 0);
  us_put_le64(h + 64, lo->n_params);
  us_put_le64(h + 72, ck->base_bytes);
  us_put_le64(h + 80, ck->base_hash);
  us_put_le32(h + 88, (uint32_t)path_len);
  uint64_t v[10] = {ts->step,     ts->epoch,    ts->cursor,   ts->seed,    ts->rng.s[0],
                    ts->rng.s[1], ts->rng.s[2], ts->rng.s[3], ts->planned, ts->warmup};
  for (int i = 0; i < 10; i++) us_put_le64(s + 8 * i, v[i]);
  us_put_le_f64(s + 80, ck->best_loss);
  us_put_le64(s + 88, ck->best_step);
  us_put_le64(s + 96, ck->bad);
  us_put_le64(s + 104, ck->evaluations);
  if (us_buf_reserve(out, out->len + LORA_HEADER + path_len + LORA_STATE + 4 * bytes + 32) !=
          US_OK ||
      us_buf_append(out, h, sizeof h) != US_OK ||
      us_buf_append(out, ck->base_path, path_len) != US_OK ||
      us_buf_append(out, s, sizeof s) != US_OK || us_buf_append(out, lo->block, bytes) != US_OK ||
      us_buf_append(out, ts->m, bytes) != US_OK || us_buf_append(out, ts->v, bytes) != US_OK ||
      (ck->best && us_buf_append(out, ck->best, bytes) != US_OK))
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory serialising %zu adapter parameters",
                      lo->n_params);
  unsigned char digest[32];
  us_sha256(out->data, out->len, digest);
  if (us_buf_append(out, digest, sizeof digest) != US_OK)
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory serialising the adapters");
  return US_OK;
}

/* The adapters' shapes in the file against the run's: a different rank, alpha or model is a
 * configuration change, not a corrupt file. */
static us_status check_shape(const unsigned char *d, const char *path, const us__lm_lora *lo,
                             us_err *err) {
  uint32_t rank = us_get_le32(d + 12);
  double scale = us_get_le_f64(d + 16);
  if (rank != (uint32_t)lo->rank || fabs(scale - (double)lo->scale) > 1e-6 * fabs(scale))
    return us_err_set(err, US_ERR_CONFIG,
                      "%s: a LoRA checkpoint of rank %u and scale %g (alpha / rank), this run asks "
                      "rank %d and scale %g; set student.lora_rank and student.lora_alpha as they "
                      "were, or delete the checkpoint to start over",
                      path, rank, scale, lo->rank, (double)lo->scale);
  bool same = us_get_le32(d + 24) == (uint32_t)lo->layers;
  for (int k = 0; k < US_LM_LORA_KINDS; k++)
    same = same && us_get_le32(d + 28 + 4 * k) == (uint32_t)lo->in[k] &&
           us_get_le32(d + 44 + 4 * k) == (uint32_t)lo->out[k];
  if (!same || us_get_le64(d + 64) != lo->n_params)
    return us_err_set(err, US_ERR_CONFIG,
                      "%s: the LoRA checkpoint's adapters are for a model of another shape than "
                      "student.init's; delete the checkpoint to start over",
                      path);
  return US_OK;
}

us_status us__lm_lora_parse(const unsigned char *d, size_t len, const char *path, us_lm *lm,
                            const char *init_path, us__lm_train_state *ts, us__lm_lora_ckpt *ck,
                            us_err *err) {
  us__lm_lora *lo = lm->lora;
  if (!us__lm_is_lora_checkpoint(d, len))
    return us_err_set(err, US_ERR_FORMAT, "%s: not a LoRA checkpoint (magic is not USLA)", path);
  if (len < LORA_HEADER + 32)
    return us_err_set(err, US_ERR_FORMAT, "%s: truncated LoRA checkpoint: %zu bytes", path, len);
  uint32_t version = us_get_le32(d + 4), flags = us_get_le32(d + 8);
  if (version != LORA_VERSION)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: LoRA checkpoint format version %u, this build reads version %u", path,
                      version, LORA_VERSION);
  if (flags > 1u)
    return us_err_set(err, US_ERR_FORMAT, "%s: unknown flags 0x%x in the header", path, flags);
  unsigned char digest[32];
  us_sha256(d, len - 32, digest);
  if (memcmp(digest, d + len - 32, 32) != 0)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: corrupt LoRA checkpoint: SHA-256 checksum does not match", path);
  us_status st = check_shape(d, path, lo, err);
  if (st != US_OK) return st;
  size_t path_len = us_get_le32(d + 88), n = lo->n_params, bytes = n * sizeof(float);
  size_t expect = LORA_HEADER + path_len + LORA_STATE + (3 + (flags & 1u)) * bytes + 32;
  if (path_len >= sizeof ck->base_path || len != expect)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: LoRA checkpoint of %zu bytes, its header announces %zu", path, len,
                      expect);
  memcpy(ck->base_path, d + LORA_HEADER, path_len);
  ck->base_path[path_len] = 0;
  ck->base_bytes = us_get_le64(d + 72);
  ck->base_hash = us_get_le64(d + 80);
  if (ck->base_bytes != lm->base_bytes || ck->base_hash != lm->base_hash)
    return us_err_set(
        err, US_ERR_CONFIG,
        "%s: these adapters were trained on %s (%llu bytes, tensor hash %016llx), but "
        "student.init is %s (%llu bytes, tensor hash %016llx), another model: point "
        "student.init at the file the run started from, or delete the checkpoint to start over",
        path, ck->base_path, (unsigned long long)ck->base_bytes, (unsigned long long)ck->base_hash,
        init_path, (unsigned long long)lm->base_bytes, (unsigned long long)lm->base_hash);
  const unsigned char *s = d + LORA_HEADER + path_len, *p = s + LORA_STATE;
  uint64_t v[10];
  for (int i = 0; i < 10; i++) v[i] = us_get_le64(s + 8 * i);
  float *m = malloc(bytes ? bytes : 1), *vv = malloc(bytes ? bytes : 1);
  float *best = flags & 1u ? malloc(bytes ? bytes : 1) : NULL;
  if (!m || !vv || ((flags & 1u) && !best)) {
    free(m);
    free(vv);
    free(best);
    return us_err_set(err, US_ERR_NOMEM, "%s: out of memory for the optimiser state", path);
  }
  memcpy(m, p + bytes, bytes);
  memcpy(vv, p + 2 * bytes, bytes);
  if (best) memcpy(best, p + 3 * bytes, bytes);
  memcpy(lo->block, p, bytes); /* p need not be aligned for floats */
  bool finite = us__first_nonfinite(lo->block, n) == n && us__first_nonfinite(m, n) == n &&
                us__first_nonfinite(vv, n) == n;
  if (!finite || (best && us__first_nonfinite(best, n) < n)) {
    free(m);
    free(vv);
    free(best);
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: corrupt LoRA checkpoint (an adapter or optimiser value is not a finite "
                      "number)",
                      path);
  }
  ts->step = v[0];
  ts->epoch = v[1];
  ts->cursor = v[2];
  ts->seed = v[3];
  for (int i = 0; i < 4; i++) ts->rng.s[i] = v[4 + i];
  ts->planned = v[8];
  ts->warmup = v[9];
  free(ts->m);
  free(ts->v);
  ts->m = m;
  ts->v = vv;
  ck->best_loss = us_get_le_f64(s + 80);
  ck->best_step = us_get_le64(s + 88);
  ck->bad = us_get_le64(s + 96);
  ck->evaluations = us_get_le64(s + 104);
  ck->best_out = best;
  return US_OK;
}
