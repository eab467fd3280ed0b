/* A frozen base kept quantised: while LoRA adapters train on a Q8_0 GGUF, the four projections of
 * every layer stay in the file's Q8_0 blocks (1.06 bytes a weight instead of 4), and each product
 * dequantises a chunk of rows into a scratch allocated once per activation set, then multiplies
 * through student/blas.h. The projection products of the forward and backward passes go through
 * us__lm_proj_*, which take the float path unchanged for an ordinary model. */
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/bytes.h"
#include "student/blas.h"
#include "student/gguf.h"
#include "student/lm_int.h"

/* The most floats dequantised at once: 4 MB, so the scratch stays in the caches' neighbourhood
 * and a 0.5 B model's SwiGLU matrix needs a few products rather than a 35 MB buffer. */
#define SCRATCH_FLOATS ((size_t)1 << 20)

/* The (out, in) shape of projection kind (us__lm_lora's order). */
static void kind_shape(const us_lm_config *c, int kind, int *in, int *out) {
  int C = c->dim, F = c->hidden;
  int ins[US_LM_LORA_KINDS] = {C, C, C, F},
      outs[US_LM_LORA_KINDS] = {us__lm_qkv_width(c), C, 2 * F, C};
  *in = ins[kind];
  *out = outs[kind];
}

void us__lm_q8_free(us__lm_q8 *q) {
  if (!q) return;
  for (int k = 0; k < US_LM_LORA_KINDS; k++) free(q->w[k]);
  free(q);
}

/* Points w at the non-projection tensors of a block laid out as us__lm_param_sizes with the four
 * projections left out. */
static size_t point_small(float *block, const us_lm_config *c, us__lm_params *w) {
  size_t s[US_LM_N_TENSORS];
  us__lm_param_sizes(c, s);
  memset(w, 0, sizeof *w);
  float **ptrs[US_LM_N_TENSORS] = {&w->wte, &w->wout, NULL,    NULL,   NULL,
                                   NULL,    &w->ln1,  &w->ln2, &w->lnf};
  size_t n = 0;
  for (int i = 0; i < US_LM_N_TENSORS; i++) {
    if (!ptrs[i]) continue;
    if (block) *ptrs[i] = block + n;
    n += s[i];
  }
  if (c->untied != 1) w->wout = w->wte;
  return n;
}

us_status us__lm_new_q8(const us_lm_config *c, us_bpe *bpe, us_lm **out, us_err *err) {
  *out = NULL;
  us_status st = us_lm_config_check(c, err);
  if (st == US_OK && c->vocab != us_bpe_vocab_size(bpe))
    st = us_err_set(err, US_ERR_CONFIG, "lm: vocab %d differs from the tokeniser's %d", c->vocab,
                    us_bpe_vocab_size(bpe));
  if (st == US_OK && (c->dim % US_LM_Q8_BLOCK != 0 || c->hidden % US_LM_Q8_BLOCK != 0))
    st = us_err_set(err, US_ERR_CONFIG, "lm: Q8_0 rows need dim %d and hidden %d in blocks of %d",
                    c->dim, c->hidden, US_LM_Q8_BLOCK);
  if (st != US_OK) {
    us_bpe_free(bpe);
    return st;
  }
  us_lm *lm = calloc(1, sizeof *lm);
  us__lm_q8 *q = calloc(1, sizeof *q);
  size_t n = point_small(NULL, c, &(us__lm_params){0});
  float *block = malloc(n * sizeof *block);
  bool ok = lm && q && block;
  for (int k = 0; ok && k < US_LM_LORA_KINDS; k++) {
    kind_shape(c, k, &q->in[k], &q->out[k]);
    q->row_bytes[k] = (size_t)q->in[k] / US_LM_Q8_BLOCK * US_LM_Q8_BLOCK_BYTES;
    size_t rows = SCRATCH_FLOATS / (size_t)q->in[k];
    q->chunk_rows[k] = rows < 1 ? 1 : rows > (size_t)q->out[k] ? q->out[k] : (int)rows;
    size_t need = (size_t)q->chunk_rows[k] * (size_t)q->in[k];
    if (need > q->scratch_floats) q->scratch_floats = need;
    q->w[k] = malloc((size_t)c->layers * (size_t)q->out[k] * q->row_bytes[k]);
    ok = q->w[k] != NULL;
  }
  if (!ok) {
    free(lm);
    us__lm_q8_free(q);
    free(block);
    us_bpe_free(bpe);
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for a Q8_0 model of %zu parameters",
                      us_lm_param_count(c));
  }
  lm->config = *c;
  lm->bpe = bpe;
  lm->n_params = n;
  lm->block = block;
  lm->q8 = q;
  point_small(block, c, &lm->w);
  *out = lm;
  return US_OK;
}

void us__lm_q8_rows(const us__lm_q8 *q, int kind, int l, int r0, int r1, float *dst) {
  size_t nb = (size_t)q->in[kind] / US_LM_Q8_BLOCK;
  const unsigned char *p =
      q->w[kind] + ((size_t)l * (size_t)q->out[kind] + (size_t)r0) * q->row_bytes[kind];
  for (size_t b = 0; b < (size_t)(r1 - r0) * nb; b++, p += US_LM_Q8_BLOCK_BYTES) {
    float d = us_gguf_f16_to_float(us_get_le16(p));
    const int8_t *qs = (const int8_t *)(const void *)(p + 2);
    for (int j = 0; j < US_LM_Q8_BLOCK; j++) *dst++ = d * (float)qs[j];
  }
}

us_status us__lm_q8_expand(us_lm *lm, us_err *err) {
  us__lm_q8 *q = lm->q8;
  if (!q) return US_OK;
  const us_lm_config *c = &lm->config;
  size_t n = us_lm_param_count(c), s[US_LM_N_TENSORS];
  us__lm_param_sizes(c, s);
  /* grown in place (no second copy of the float tensors at the peak): the small block's layout
   * is the full one without the projections, so only the norms move to the end */
  float *block = realloc(lm->block, n * sizeof *block);
  if (!block)
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory making %zu Q8_0 weights float", n);
  size_t norms = s[6] + s[7] + s[8];
  memmove(block + n - norms, block + s[0] + s[1], norms * sizeof(float));
  us__lm_params_point(block, c, &lm->w);
  lm->block = block;
  lm->n_params = n;
  float *dst[US_LM_LORA_KINDS] = {lm->w.wqkv, lm->w.wo, lm->w.w13, lm->w.w2};
  for (int k = 0; k < US_LM_LORA_KINDS; k++) {
    for (int l = 0; l < c->layers; l++)
      us__lm_q8_rows(q, k, l, 0, q->out[k], dst[k] + (size_t)l * q->out[k] * q->in[k]);
    free(q->w[k]);
    q->w[k] = NULL;
  }
  us__lm_q8_free(q);
  lm->q8 = NULL;
  return US_OK;
}

us_status us__lm_acts_q8(us__lm_acts *a, const us_lm *lm, us_err *err) {
  if (!lm->q8) return US_OK;
  free(a->wq8);
  a->wq8 = malloc(lm->q8->scratch_floats * sizeof(float));
  if (!a->wq8)
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for the Q8_0 scratch (%zu floats)",
                      lm->q8->scratch_floats);
  return US_OK;
}

/* The float matrix of projection kind, layer l (an ordinary model). */
static const float *float_matrix(const us_lm *lm, int kind, int l, int in, int out) {
  const float *base[US_LM_LORA_KINDS] = {lm->w.wqkv, lm->w.wo, lm->w.w13, lm->w.w2};
  return base[kind] + (size_t)l * (size_t)out * (size_t)in;
}

void us__lm_proj_forward(const us_lm *lm, us__lm_acts *a, int kind, int l, const float *x, int N,
                         float beta, float *y) {
  int in, out;
  kind_shape(&lm->config, kind, &in, &out);
  const us__lm_q8 *q = lm->q8;
  if (!q) {
    us_blas_sgemm(false, true, N, out, in, 1.0f, x, in, float_matrix(lm, kind, l, in, out), in,
                  beta, y, out);
    return;
  }
  US_ASSERT(a->wq8 != NULL);
  for (int r0 = 0; r0 < out; r0 += q->chunk_rows[kind]) {
    int r1 = r0 + q->chunk_rows[kind] < out ? r0 + q->chunk_rows[kind] : out;
    us__lm_q8_rows(q, kind, l, r0, r1, a->wq8);
    us_blas_sgemm(false, true, N, r1 - r0, in, 1.0f, x, in, a->wq8, in, beta, y + r0, out);
  }
}

void us__lm_proj_backward(const us_lm *lm, us__lm_acts *a, int kind, int l, const float *dy, int N,
                          float *dx) {
  int in, out;
  kind_shape(&lm->config, kind, &in, &out);
  const us__lm_q8 *q = lm->q8;
  if (!q) {
    us_blas_sgemm(false, false, N, in, out, 1.0f, dy, out, float_matrix(lm, kind, l, in, out), in,
                  0.0f, dx, in);
    return;
  }
  US_ASSERT(a->wq8 != NULL);
  for (int r0 = 0; r0 < out; r0 += q->chunk_rows[kind]) {
    int r1 = r0 + q->chunk_rows[kind] < out ? r0 + q->chunk_rows[kind] : out;
    us__lm_q8_rows(q, kind, l, r0, r1, a->wq8);
    us_blas_sgemm(false, false, N, in, r1 - r0, 1.0f, dy + r0, out, a->wq8, in,
                  r0 == 0 ? 0.0f : 1.0f, dx, in);
  }
}
