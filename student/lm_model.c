/* The transformer itself: sizes and parameter layout, activations allocated once per (B, T), and
 * each layer's forward and backward pass; every matrix product goes through student/blas.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "student/blas.h"
#include "student/lm_int.h"

/* ---- configuration and layout ---- */

us_status us_lm_config_preset(const char *name, us_lm_config *c, us_err *err) {
  static const struct {
    const char *name;
    int layers, dim, heads, context;
  } presets[] = {{"nano", 2, 128, 4, 128}, {"micro", 4, 256, 4, 256}, {"mini", 6, 384, 6, 256}};
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
    if (name && strcmp(name, presets[i].name) == 0) {
      c->layers = presets[i].layers;
      c->dim = presets[i].dim;
      c->heads = presets[i].heads;
      c->context = presets[i].context;
      return US_OK;
    }
  return us_err_set(err, US_ERR_CONFIG,
                    "preset: expected \"nano\", \"micro\", \"mini\" or null, found \"%s\"",
                    name ? name : "(null)");
}

int us_lm_config_hidden(int dim) {
  return ((8 * dim / 3) + 31) / 32 * 32;
}

/* The limits below the maxima are the architecture's floors (tests build models of dim 4 and
 * context 4); training asks for more through us_lm_train_param_table. */
us_status us_lm_config_check(const us_lm_config *c, us_err *err) {
  if (c->layers < 1 || c->layers > US_LM_MAX_LAYERS)
    return us_err_set(err, US_ERR_CONFIG, "lm: layers %d outside 1..%d", c->layers,
                      US_LM_MAX_LAYERS);
  if (c->dim < 2 || c->dim > US_LM_MAX_DIM)
    return us_err_set(err, US_ERR_CONFIG, "lm: dim %d outside 2..%d", c->dim, US_LM_MAX_DIM);
  if (c->heads < 1 || c->dim % c->heads != 0 || (c->dim / c->heads) % 2 != 0)
    return us_err_set(err, US_ERR_CONFIG, "lm: heads %d must divide dim %d into an even head size",
                      c->heads, c->dim);
  if (c->context < 4 || c->context > US_LM_MAX_CONTEXT)
    return us_err_set(err, US_ERR_CONFIG, "lm: context %d outside 4..%d", c->context,
                      US_LM_MAX_CONTEXT);
  if (c->vocab < 256 || c->vocab > US_BPE_MAX_IMPORTED_VOCAB)
    return us_err_set(err, US_ERR_CONFIG, "lm: vocab %d outside 256..%d", c->vocab,
                      US_BPE_MAX_IMPORTED_VOCAB);
  if (c->hidden < 1 || c->hidden > US_LM_MAX_HIDDEN)
    return us_err_set(err, US_ERR_CONFIG, "lm: hidden %d outside 1..%d", c->hidden,
                      US_LM_MAX_HIDDEN);
  if (c->heads_kv < 0 || (c->heads_kv > 0 && c->heads % c->heads_kv != 0))
    return us_err_set(err, US_ERR_CONFIG, "lm: heads_kv %d must divide heads %d", c->heads_kv,
                      c->heads);
  if (c->untied != 0 && c->untied != 1)
    return us_err_set(err, US_ERR_CONFIG, "lm: untied %d is neither 0 nor 1", c->untied);
  if (!(c->rope_base >= 0.0 && c->rope_base <= 1e12) || (c->rope_base > 0.0 && c->rope_base < 1.0))
    return us_err_set(err, US_ERR_CONFIG, "lm: rope_base %g outside 1..1e12 (0: %g)", c->rope_base,
                      US_LM_ROPE_BASE);
  if (!(c->norm_eps >= 0.0 && c->norm_eps <= 1.0))
    return us_err_set(err, US_ERR_CONFIG, "lm: norm_eps %g outside 0..1 (0: %g)", c->norm_eps,
                      (double)US_LM_NORM_EPS);
  return US_OK;
}

int us__lm_heads_kv(const us_lm_config *c) {
  return c->heads_kv > 0 ? c->heads_kv : c->heads;
}
double us__lm_rope_base(const us_lm_config *c) {
  return c->rope_base > 0.0 ? c->rope_base : US_LM_ROPE_BASE;
}
float us__lm_norm_eps(const us_lm_config *c) {
  return c->norm_eps > 0.0 ? (float)c->norm_eps : US_LM_NORM_EPS;
}
int us__lm_qkv_width(const us_lm_config *c) {
  return c->dim + 2 * us__lm_heads_kv(c) * (c->dim / c->heads);
}

size_t us__lm_param_sizes(const us_lm_config *c, size_t s[US_LM_N_TENSORS]) {
  size_t L = (size_t)c->layers, C = (size_t)c->dim, F = (size_t)c->hidden, V = (size_t)c->vocab;
  size_t QKV = (size_t)us__lm_qkv_width(c);
  s[0] = V * C;                      /* wte */
  s[1] = c->untied == 1 ? V * C : 0; /* wout */
  s[2] = L * QKV * C;                /* wqkv */
  s[3] = L * C * C;                  /* wo */
  s[4] = L * 2 * F * C;              /* w13 */
  s[5] = L * C * F;                  /* w2 */
  s[6] = L * C;                      /* ln1 */
  s[7] = L * C;                      /* ln2 */
  s[8] = C;                          /* lnf */
  size_t total = 0;
  for (int i = 0; i < US_LM_N_TENSORS; i++) total += s[i];
  return total;
}

size_t us_lm_param_count(const us_lm_config *c) {
  size_t s[US_LM_N_TENSORS];
  return us__lm_param_sizes(c, s);
}

size_t us__lm_decay_count(const us_lm_config *c) {
  size_t s[US_LM_N_TENSORS], n = 0;
  us__lm_param_sizes(c, s);
  for (int i = 0; i < 6; i++) n += s[i];
  return n;
}

void us__lm_params_point(float *block, const us_lm_config *c, us__lm_params *p) {
  size_t s[US_LM_N_TENSORS];
  us__lm_param_sizes(c, s);
  float **ptrs[US_LM_N_TENSORS] = {&p->wte, &p->wout, &p->wqkv, &p->wo, &p->w13,
                                   &p->w2,  &p->ln1,  &p->ln2,  &p->lnf};
  for (int i = 0; i < US_LM_N_TENSORS; i++) {
    *ptrs[i] = block;
    block += s[i];
  }
  if (c->untied != 1) p->wout = p->wte;
}

us_status us_lm_new(const us_lm_config *c, us_bpe *bpe, uint64_t seed, us_lm **out, us_err *err) {
  *out = NULL;
  us_status st = us_lm_config_check(c, err);
  if (st == US_OK && c->vocab != us_bpe_vocab_size(bpe))
    st = us_err_set(err, US_ERR_CONFIG, "lm: vocab %d differs from the tokeniser's %d", c->vocab,
                    us_bpe_vocab_size(bpe));
  if (st != US_OK) {
    us_bpe_free(bpe);
    return st;
  }
  us_lm *lm = calloc(1, sizeof *lm);
  size_t n = us_lm_param_count(c);
  float *block = lm ? malloc(n * sizeof *block) : NULL;
  if (!block) {
    free(lm);
    us_bpe_free(bpe);
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for %zu parameters", n);
  }
  lm->config = *c;
  lm->bpe = bpe;
  lm->n_params = n;
  lm->block = block;
  us__lm_params_point(block, c, &lm->w);
  us_rng rng;
  us_rng_seed(&rng, seed);
  us__lm_init_weights(lm, &rng);
  *out = lm;
  return US_OK;
}

void us__lm_init_weights(us_lm *lm, us_rng *rng) {
  const us_lm_config *c = &lm->config;
  size_t s[US_LM_N_TENSORS];
  us__lm_param_sizes(c, s);
  float scale[6] = {0.02f, 0.02f,
                    0.02f, 0.02f / sqrtf(2.0f * (float)c->layers),
                    0.02f, 0.02f / sqrtf(2.0f * (float)c->layers)};
  float *p = lm->block;
  for (int t = 0; t < 6; t++)
    for (size_t i = 0; i < s[t]; i++) *p++ = scale[t] * (float)us_rng_normal(rng);
  for (int t = 6; t < US_LM_N_TENSORS; t++)
    for (size_t i = 0; i < s[t]; i++) *p++ = 1.0f;
}

void us_lm_free(us_lm *lm) {
  if (!lm) return;
  us_bpe_free(lm->bpe);
  us__lm_lora_free(lm->lora);
  us__lm_q8_free(lm->q8);
  free(lm->block);
  free(lm);
}

const us_lm_config *us_lm_get_config(const us_lm *lm) {
  return &lm->config;
}
const us_bpe *us_lm_get_bpe(const us_lm *lm) {
  return lm->bpe;
}
size_t us_lm_n_params(const us_lm *lm) {
  return lm->n_params;
}

int us__lm_format(const us_bpe *bpe, const int32_t *prompt, int np, const int32_t *answer, int na,
                  int T, int32_t *seq, int *answer_from) {
  us_bpe_chat f = us_bpe_chat_format(bpe);
  int fixed = f.n_head + f.n_mid, n = 0, keep;
  if (answer) { /* T + 1 tokens: the format's, the prompt's, the answer's and the end token */
    int room = T - fixed;
    if (na > room - 1) na = room - 1;
    keep = np < room - na ? np : room - na;
  } else { /* a slot left for the first new token */
    keep = np < T - fixed - 1 ? np : T - fixed - 1;
  }
  if (keep < 0) keep = 0;
  for (int j = 0; j < f.n_head; j++) seq[n++] = f.head[j];
  for (int j = np - keep; j < np; j++) seq[n++] = prompt[j];
  for (int j = 0; j < f.n_mid; j++) seq[n++] = f.mid[j];
  if (answer_from) *answer_from = n - 1;
  if (answer) {
    for (int j = 0; j < na; j++) seq[n++] = answer[j];
    seq[n++] = f.end;
  }
  return n;
}

/* ---- activations ---- */

us_status us__lm_acts_new(const us_lm_config *c, int B, int T, us__lm_acts *a, us_err *err) {
  memset(a, 0, sizeof *a);
  size_t L = (size_t)c->layers, C = (size_t)c->dim, F = (size_t)c->hidden, V = (size_t)c->vocab;
  size_t NH = (size_t)c->heads, hd = C / NH, N = (size_t)B * (size_t)T, Tz = (size_t)T;
  size_t QKV = (size_t)us__lm_qkv_width(c);
  float **ptrs[] = {&a->rope_cos, &a->rope_sin, &a->x,     &a->ln1,    &a->rstd1, &a->qkv,
                    &a->att,      &a->atty,     &a->xmid,  &a->ln2,    &a->rstd2, &a->h13,
                    &a->hact,     &a->lnf,      &a->rstdf, &a->logits, &a->dx,    &a->dxmid,
                    &a->dln,      &a->datty,    &a->dqkv,  &a->dh13,   &a->dhact, &a->dscore};
  size_t sizes[] = {Tz * hd / 2,
                    Tz * hd / 2,
                    (L + 1) * N * C,
                    L * N * C,
                    L * N,
                    L * N * QKV,
                    L * (size_t)B * NH * Tz * Tz,
                    L * N * C,
                    L * N * C,
                    L * N * C,
                    L * N,
                    L * N * 2 * F,
                    L * N * F,
                    N * C,
                    N,
                    N * V,
                    N * C,
                    N * C,
                    N * C,
                    N * C,
                    N * QKV,
                    N * 2 * F,
                    N * F,
                    Tz * Tz};
  size_t total = 0, n = sizeof sizes / sizeof sizes[0];
  for (size_t i = 0; i < n; i++) total += sizes[i];
  a->block = malloc(total * sizeof(float));
  if (!a->block)
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for activations (%zu MB) of B=%d T=%d",
                      total * sizeof(float) >> 20, B, T);
  float *p = a->block;
  for (size_t i = 0; i < n; i++) {
    *ptrs[i] = p;
    p += sizes[i];
  }
  a->B = B;
  a->T = T;
  us__lm_rope_table(a->rope_cos, a->rope_sin, T, (int)hd, us__lm_rope_base(c));
  return US_OK;
}

void us__lm_acts_free(us__lm_acts *a) {
  free(a->block);
  free(a->drop_emb);
  free(a->drop_att);
  free(a->drop_ffn);
  free(a->lora_u);
  free(a->lora_du);
  free(a->wq8);
  memset(a, 0, sizeof *a);
}

us_status us__lm_acts_dropout(us__lm_acts *a, const us_lm_config *c, float p, us_err *err) {
  if (!(p >= 0.0f && p < 1.0f))
    return us_err_set(err, US_ERR_CONFIG, "lm: dropout %g outside [0, 1)", (double)p);
  a->drop_p = p;
  if (p == 0.0f) return US_OK;
  size_t N = (size_t)a->B * (size_t)a->T, L = (size_t)c->layers;
  if (!a->drop_emb) a->drop_emb = malloc(N * (size_t)c->dim * sizeof(float));
  if (!a->drop_att) a->drop_att = malloc(L * N * (size_t)c->dim * sizeof(float));
  if (!a->drop_ffn) a->drop_ffn = malloc(L * N * (size_t)c->hidden * sizeof(float));
  if (!a->drop_emb || !a->drop_att || !a->drop_ffn)
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for the dropout masks");
  return US_OK;
}

void us__lm_dropout_forward(float *x, float *mask, size_t n, float p, us_rng *r) {
  /* four 16-bit draws per random word; a unit drops when its draw is below p * 65536 */
  uint32_t below = (uint32_t)(p * 65536.0f + 0.5f);
  float keep = 1.0f / (1.0f - p);
  for (size_t i = 0; i < n; i += 4) {
    uint64_t u = us_rng_u64(r);
    size_t end = n - i < 4 ? n - i : 4;
    for (size_t k = 0; k < end; k++, u >>= 16) {
      float m = (uint32_t)(u & 0xffffu) < below ? 0.0f : keep;
      mask[i + k] = m;
      x[i + k] *= m;
    }
  }
}

/* ---- layers ---- */

void us__lm_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C,
                            float eps) {
  for (int n = 0; n < N; n++) {
    const float *xn = x + (size_t)n * C;
    float *on = out + (size_t)n * C;
    float ss = 0.0f;
    for (int i = 0; i < C; i++) ss += xn[i] * xn[i];
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    for (int i = 0; i < C; i++) on[i] = xn[i] * r * w[i];
    rstd[n] = r;
  }
}

void us__lm_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
                             const float *w, const float *rstd, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float *xn = x + (size_t)n * C, *dn = dout + (size_t)n * C;
    float *dxn = dx + (size_t)n * C;
    float r = rstd[n], dot = 0.0f;
    for (int i = 0; i < C; i++) dot += dn[i] * w[i] * xn[i];
    float k = dot * r * r * r / (float)C;
    for (int i = 0; i < C; i++) {
      dxn[i] += dn[i] * w[i] * r - xn[i] * k;
      if (dw) dw[i] += dn[i] * xn[i] * r;
    }
  }
}

void us__lm_rope_table(float *cos_t, float *sin_t, int T, int hd, double base) {
  int half = hd / 2;
  for (int p = 0; p < T; p++)
    for (int i = 0; i < half; i++) {
      double freq = pow(base, -2.0 * i / hd);
      cos_t[p * half + i] = (float)cos(p * freq);
      sin_t[p * half + i] = (float)sin(p * freq);
    }
}

void us__lm_rope(float *qkv, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                 int C, int NH, int NKV, int sign) {
  int hd = C / NH, half = hd / 2, width = C + 2 * NKV * hd;
  for (int n = 0; n < N; n++) {
    const float *cs = cos_t + (size_t)pos[n] * half, *sn = sin_t + (size_t)pos[n] * half;
    float *v = qkv + (size_t)n * width;
    for (int h = 0; h < NH + NKV; h++, v += hd) /* queries, then keys: contiguous */
      for (int i = 0; i < half; i++) {
        float c = cs[i], s = sign > 0 ? sn[i] : -sn[i];
        float x0 = v[2 * i], x1 = v[2 * i + 1];
        v[2 * i] = x0 * c - x1 * s;
        v[2 * i + 1] = x0 * s + x1 * c;
      }
  }
}

void us__lm_attention_forward(float *out, float *att, const float *qkv, const int32_t *doc, int B,
                              int T, int C, int NH, int NKV) {
  int hd = C / NH, ckv = NKV * hd, width = C + 2 * ckv, group = NH / NKV;
  float scale = 1.0f / sqrtf((float)hd);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const float *row0 = qkv + (size_t)b * T * width;
      const float *q = row0 + (size_t)h * hd, *k = row0 + C + (size_t)(h / group) * hd;
      const float *v = k + ckv;
      float *p = att + ((size_t)b * NH + h) * T * T;
      us_blas_sgemm(false, true, T, T, hd, scale, q, width, k, width, 0.0f, p, T);
      const int32_t *d = doc + (size_t)b * T;
      for (int i = 0; i < T; i++) {
        float *row = p + (size_t)i * T, mx = -INFINITY, sum = 0.0f;
        for (int j = 0; j <= i; j++)
          if (d[j] == d[i] && row[j] > mx) mx = row[j];
        for (int j = 0; j < T; j++) {
          float e = (j <= i && d[j] == d[i]) ? expf(row[j] - mx) : 0.0f;
          row[j] = e;
          sum += e;
        }
        float inv = 1.0f / sum;
        for (int j = 0; j <= i; j++) row[j] *= inv;
      }
      us_blas_sgemm(false, false, T, hd, T, 1.0f, p, T, v, width, 0.0f,
                    out + (size_t)b * T * C + (size_t)h * hd, C);
    }
}

/* Query heads sharing a key/value head add into its gradient: the first of each group writes
 * (beta 0), the others accumulate. */
void us__lm_attention_backward(float *dqkv, float *dscore, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int NH, int NKV) {
  int hd = C / NH, ckv = NKV * hd, width = C + 2 * ckv, group = NH / NKV;
  float scale = 1.0f / sqrtf((float)hd);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      size_t row0 = (size_t)b * T * width, qoff = row0 + (size_t)h * hd;
      size_t koff = row0 + C + (size_t)(h / group) * hd, voff = koff + ckv;
      const float *q = qkv + qoff, *k = qkv + koff, *v = qkv + voff;
      const float *p = att + ((size_t)b * NH + h) * T * T;
      const float *dy = dout + (size_t)b * T * C + (size_t)h * hd;
      float beta = h % group == 0 ? 0.0f : 1.0f;
      /* dP = dY V^T; dV = P^T dY */
      us_blas_sgemm(false, true, T, T, hd, 1.0f, dy, C, v, width, 0.0f, dscore, T);
      us_blas_sgemm(true, false, T, hd, T, 1.0f, p, T, dy, C, beta, dqkv + voff, width);
      /* softmax backward: dS = P * (dP - sum_j P dP) */
      for (int i = 0; i < T; i++) {
        const float *pr = p + (size_t)i * T;
        float *dr = dscore + (size_t)i * T, dot = 0.0f;
        for (int j = 0; j <= i; j++) dot += pr[j] * dr[j];
        for (int j = 0; j < T; j++) dr[j] = j <= i ? pr[j] * (dr[j] - dot) : 0.0f;
      }
      /* dQ = scale dS K; dK = scale dS^T Q */
      us_blas_sgemm(false, false, T, hd, T, scale, dscore, T, k, width, 0.0f, dqkv + qoff, width);
      us_blas_sgemm(true, false, T, hd, T, scale, dscore, T, q, width, beta, dqkv + koff, width);
    }
}

void us__lm_swiglu_forward(float *hact, const float *h13, int N, int F) {
  for (int n = 0; n < N; n++) {
    const float *g = h13 + (size_t)n * 2 * F, *u = g + F;
    float *o = hact + (size_t)n * F;
    for (int i = 0; i < F; i++) o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
  }
}

void us__lm_swiglu_backward(float *dh13, const float *dhact, const float *h13, int N, int F) {
  for (int n = 0; n < N; n++) {
    const float *g = h13 + (size_t)n * 2 * F, *u = g + F, *d = dhact + (size_t)n * F;
    float *dg = dh13 + (size_t)n * 2 * F, *du = dg + F;
    for (int i = 0; i < F; i++) {
      float sig = 1.0f / (1.0f + expf(-g[i]));
      du[i] = d[i] * g[i] * sig;
      dg[i] = d[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    }
  }
}

double us__lm_crossentropy_forward(float *logits, const int32_t *targets, const float *mask, int N,
                                   int V) {
  double loss = 0.0, weight = 0.0;
  for (int n = 0; n < N; n++) {
    float *row = logits + (size_t)n * V, mx = -INFINITY, sum = 0.0f;
    for (int v = 0; v < V; v++)
      if (row[v] > mx) mx = row[v];
    for (int v = 0; v < V; v++) {
      row[v] = expf(row[v] - mx);
      sum += row[v];
    }
    float inv = 1.0f / sum;
    for (int v = 0; v < V; v++) row[v] *= inv;
    if (mask[n] != 0.0f) {
      loss -= mask[n] * log((double)row[targets[n]] + 1e-30);
      weight += mask[n];
    }
  }
  return weight > 0.0 ? loss / weight : 0.0;
}

void us__lm_crossentropy_backward(float *probs, const int32_t *targets, const float *mask, int N,
                                  int V) {
  double weight = 0.0;
  for (int n = 0; n < N; n++) weight += mask[n];
  float inv = weight > 0.0 ? (float)(1.0 / weight) : 0.0f;
  for (int n = 0; n < N; n++) {
    float *row = probs + (size_t)n * V, k = mask[n] * inv;
    for (int v = 0; v < V; v++) row[v] *= k;
    row[targets[n]] -= k;
  }
}

/* ---- whole model ---- */

/* The backward pass of dropout: dx *= the forward's mask (n entries). */
static void dropout_backward(float *dx, const float *mask, size_t n) {
  for (size_t i = 0; i < n; i++) dx[i] *= mask[i];
}

double us__lm_forward(const us_lm *lm, us__lm_acts *a, const us__lm_batch *batch, int B, int T) {
  const us_lm_config *c = &lm->config;
  const us__lm_params *w = &lm->w;
  const us__lm_lora *lo = lm->lora;
  int C = c->dim, F = c->hidden, V = c->vocab, NH = c->heads, NKV = us__lm_heads_kv(c), N = B * T;
  int QKV = us__lm_qkv_width(c);
  float eps = us__lm_norm_eps(c);
  size_t NC = (size_t)N * C;
  for (int n = 0; n < N; n++)
    memcpy(a->x + (size_t)n * C, w->wte + (size_t)batch->tokens[n] * C, (size_t)C * sizeof(float));
  if (a->drop_p > 0.0f) us__lm_dropout_forward(a->x, a->drop_emb, NC, a->drop_p, &a->drop_rng);
  for (int l = 0; l < c->layers; l++) {
    float *xin = a->x + l * NC, *xout = a->x + (l + 1) * NC;
    float *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * (size_t)QKV * N, *atty = a->atty + l * NC;
    float *xmid = a->xmid + l * NC, *ln2 = a->ln2 + l * NC;
    float *h13 = a->h13 + (size_t)l * N * 2 * F, *hact = a->hact + (size_t)l * N * F;
    float *att = a->att + (size_t)l * B * NH * T * T;
    /* attention block: xmid = xin + Wo attention(rope(Wqkv rmsnorm(xin))) */
    us__lm_rmsnorm_forward(ln1, a->rstd1 + (size_t)l * N, xin, w->ln1 + (size_t)l * C, N, C, eps);
    us__lm_proj_forward(lm, a, US_LM_LORA_QKV, l, ln1, N, 0.0f, qkv);
    if (lo) us__lm_lora_forward(lo, a, l, US_LM_LORA_QKV, ln1, N, qkv);
    us__lm_rope(qkv, batch->pos, a->rope_cos, a->rope_sin, N, C, NH, NKV, 1);
    us__lm_attention_forward(atty, att, qkv, batch->doc, B, T, C, NH, NKV);
    if (a->drop_p > 0.0f)
      us__lm_dropout_forward(atty, a->drop_att + l * NC, NC, a->drop_p, &a->drop_rng);
    memcpy(xmid, xin, NC * sizeof(float));
    us__lm_proj_forward(lm, a, US_LM_LORA_O, l, atty, N, 1.0f, xmid);
    if (lo) us__lm_lora_forward(lo, a, l, US_LM_LORA_O, atty, N, xmid);
    /* feed-forward block: xout = xmid + W2 swiglu(W13 rmsnorm(xmid)) */
    us__lm_rmsnorm_forward(ln2, a->rstd2 + (size_t)l * N, xmid, w->ln2 + (size_t)l * C, N, C, eps);
    us__lm_proj_forward(lm, a, US_LM_LORA_13, l, ln2, N, 0.0f, h13);
    if (lo) us__lm_lora_forward(lo, a, l, US_LM_LORA_13, ln2, N, h13);
    us__lm_swiglu_forward(hact, h13, N, F);
    if (a->drop_p > 0.0f)
      us__lm_dropout_forward(hact, a->drop_ffn + (size_t)l * N * F, (size_t)N * F, a->drop_p,
                             &a->drop_rng);
    memcpy(xout, xmid, NC * sizeof(float));
    us__lm_proj_forward(lm, a, US_LM_LORA_2, l, hact, N, 1.0f, xout);
    if (lo) us__lm_lora_forward(lo, a, l, US_LM_LORA_2, hact, N, xout);
  }
  us__lm_rmsnorm_forward(a->lnf, a->rstdf, a->x + c->layers * NC, w->lnf, N, C, eps);
  us_blas_sgemm(false, true, N, V, C, 1.0f, a->lnf, C, w->wout, C, 0.0f, a->logits, V);
  if (!batch->targets) return 0.0;
  return us__lm_crossentropy_forward(a->logits, batch->targets, batch->mask, N, V);
}

/* dW += dY^T X for one projection, skipped when the base weights are frozen (g NULL). */
static void weight_grad(const us__lm_params *g, float *dw, const float *dy, const float *x, int N,
                        int out, int in) {
  if (g) us_blas_sgemm(true, false, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in);
}

void us__lm_backward(const us_lm *lm, us__lm_acts *a, const us__lm_batch *batch, int B, int T,
                     const us__lm_params *g) {
  const us_lm_config *c = &lm->config;
  const us__lm_params *w = &lm->w;
  const us__lm_lora *lo = lm->lora;
  int C = c->dim, F = c->hidden, V = c->vocab, NH = c->heads, NKV = us__lm_heads_kv(c), N = B * T;
  int QKV = us__lm_qkv_width(c);
  size_t NC = (size_t)N * C;
  float *dlnf = g ? g->lnf : NULL, *dln1 = NULL, *dln2 = NULL;
  /* loss and output layer (the embeddings when tied) */
  us__lm_crossentropy_backward(a->logits, batch->targets, batch->mask, N, V);
  if (g) us_blas_sgemm(true, false, V, C, N, 1.0f, a->logits, V, a->lnf, C, 1.0f, g->wout, C);
  us_blas_sgemm(false, false, N, C, V, 1.0f, a->logits, V, w->wout, C, 0.0f, a->dln, C);
  memset(a->dx, 0, NC * sizeof(float));
  us__lm_rmsnorm_backward(a->dx, dlnf, a->dln, a->x + c->layers * NC, w->lnf, a->rstdf, N, C);
  for (int l = c->layers - 1; l >= 0; l--) {
    const float *xin = a->x + l * NC, *ln1 = a->ln1 + l * NC, *qkv = a->qkv + l * (size_t)QKV * N;
    const float *atty = a->atty + l * NC, *xmid = a->xmid + l * NC, *ln2 = a->ln2 + l * NC;
    const float *h13 = a->h13 + (size_t)l * N * 2 * F, *hact = a->hact + (size_t)l * N * F;
    const float *att = a->att + (size_t)l * B * NH * T * T;
    size_t lw = (size_t)l;
    if (g) {
      dln1 = g->ln1 + lw * C;
      dln2 = g->ln2 + lw * C;
    }
    /* feed-forward block (a->dx holds dloss/dxout) */
    memcpy(a->dxmid, a->dx, NC * sizeof(float));
    weight_grad(g, g ? g->w2 + lw * C * F : NULL, a->dx, hact, N, C, F);
    us__lm_proj_backward(lm, a, US_LM_LORA_2, l, a->dx, N, a->dhact);
    if (lo) us__lm_lora_backward(lo, a, l, US_LM_LORA_2, a->dx, hact, N, a->dhact);
    if (a->drop_p > 0.0f) dropout_backward(a->dhact, a->drop_ffn + lw * N * F, (size_t)N * F);
    us__lm_swiglu_backward(a->dh13, a->dhact, h13, N, F);
    weight_grad(g, g ? g->w13 + lw * 2 * F * C : NULL, a->dh13, ln2, N, 2 * F, C);
    us__lm_proj_backward(lm, a, US_LM_LORA_13, l, a->dh13, N, a->dln);
    if (lo) us__lm_lora_backward(lo, a, l, US_LM_LORA_13, a->dh13, ln2, N, a->dln);
    us__lm_rmsnorm_backward(a->dxmid, dln2, a->dln, xmid, w->ln2 + lw * C, a->rstd2 + lw * N, N, C);
    /* attention block (a->dxmid holds dloss/dxmid) */
    memcpy(a->dx, a->dxmid, NC * sizeof(float));
    weight_grad(g, g ? g->wo + lw * C * C : NULL, a->dxmid, atty, N, C, C);
    us__lm_proj_backward(lm, a, US_LM_LORA_O, l, a->dxmid, N, a->datty);
    if (lo) us__lm_lora_backward(lo, a, l, US_LM_LORA_O, a->dxmid, atty, N, a->datty);
    if (a->drop_p > 0.0f) dropout_backward(a->datty, a->drop_att + lw * NC, NC);
    us__lm_attention_backward(a->dqkv, a->dscore, a->datty, qkv, att, B, T, C, NH, NKV);
    us__lm_rope(a->dqkv, batch->pos, a->rope_cos, a->rope_sin, N, C, NH, NKV, -1);
    weight_grad(g, g ? g->wqkv + lw * QKV * C : NULL, a->dqkv, ln1, N, QKV, C);
    us__lm_proj_backward(lm, a, US_LM_LORA_QKV, l, a->dqkv, N, a->dln);
    if (lo) us__lm_lora_backward(lo, a, l, US_LM_LORA_QKV, a->dqkv, ln1, N, a->dln);
    us__lm_rmsnorm_backward(a->dx, dln1, a->dln, xin, w->ln1 + lw * C, a->rstd1 + lw * N, N, C);
  }
  /* token embeddings */
  if (!g) return;
  if (a->drop_p > 0.0f) dropout_backward(a->dx, a->drop_emb, NC);
  for (int n = 0; n < N; n++) {
    float *row = g->wte + (size_t)batch->tokens[n] * C;
    const float *d = a->dx + (size_t)n * C;
    for (int i = 0; i < C; i++) row[i] += d[i];
  }
}
