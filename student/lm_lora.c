/* Low-rank adapters for fine-tuning a pretrained model: their parameter block, the forward and
 * backward terms the transformer adds after each adapted projection, and the merge into the base
 * weights on save. Every product goes through student/blas.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "student/blas.h"
#include "student/lm_int.h"

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

void us__lm_lora_merge(us_lm *lm) {
  us__lm_lora *lo = lm->lora;
  if (!lo) return;
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
