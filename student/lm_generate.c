/* Generation: [BOS] prompt [SEP] then one token at a time with a key/value cache (matrix-vector
 * products through student/blas.h), or by recomputing the whole sequence (the benchmark's
 * baseline); greedy or temperature / top-p sampling with a seeded generator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "student/blas.h"
#include "student/lm_int.h"

void us_lm_gen_params_defaults(us_lm_gen_params *p) {
  memset(p, 0, sizeof *p);
  p->max_tokens = 128;
  p->temperature = 0.0f;
  p->top_p = 1.0f;
  p->seed = 1;
}

typedef struct ranked {
  float p;
  int token;
} ranked;

/* Scratch of one generation: the KV cache and one position's activations. */
typedef struct gen_state {
  float *block;
  float *kcache, *vcache; /* (L, T, Ckv) keys after rotary, values */
  float *x, *ln, *qkv, *atty, *h13, *hact, *score, *logits, *probs, *cos_t, *sin_t;
  ranked *order;    /* (V) tokens by probability, for top-p */
  us__lm_acts acts; /* the non-cached path: (1, T) */
  us__lm_batch batch;
  int32_t *seq_pos, *seq_doc;
} gen_state;

static void gen_free(gen_state *s) {
  free(s->block);
  free(s->order);
  free(s->seq_pos);
  free(s->seq_doc);
  us__lm_acts_free(&s->acts);
}

static us_status gen_alloc(const us_lm_config *c, bool no_cache, gen_state *s, us_err *err) {
  memset(s, 0, sizeof *s);
  size_t L = (size_t)c->layers, T = (size_t)c->context, C = (size_t)c->dim, F = (size_t)c->hidden;
  size_t V = (size_t)c->vocab, hd = C / (size_t)c->heads, QKV = (size_t)us__lm_qkv_width(c);
  size_t CKV = (QKV - C) / 2;
  float **ptrs[] = {&s->kcache, &s->vcache, &s->x,      &s->ln,    &s->qkv,   &s->atty, &s->h13,
                    &s->hact,   &s->score,  &s->logits, &s->probs, &s->cos_t, &s->sin_t};
  size_t sizes[] = {L * T * CKV, L * T * CKV, C, C, QKV,        C,         2 * F,
                    F,           T,           V, V, T * hd / 2, T * hd / 2};
  size_t total = 0, n = sizeof sizes / sizeof sizes[0];
  for (size_t i = 0; i < n; i++) total += sizes[i];
  s->block = malloc(total * sizeof(float));
  s->order = malloc(V * sizeof *s->order);
  s->seq_pos = malloc(T * sizeof(int32_t));
  s->seq_doc = calloc(T, sizeof(int32_t));
  if (!s->block || !s->order || !s->seq_pos || !s->seq_doc) {
    gen_free(s);
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for generation");
  }
  float *p = s->block;
  for (size_t i = 0; i < n; i++) {
    *ptrs[i] = p;
    p += sizes[i];
  }
  for (size_t i = 0; i < T; i++) s->seq_pos[i] = (int32_t)i;
  us__lm_rope_table(s->cos_t, s->sin_t, (int)T, (int)hd, us__lm_rope_base(c));
  if (no_cache) {
    us_status st = us__lm_acts_new(c, 1, (int)T, &s->acts, err);
    if (st != US_OK) {
      gen_free(s);
      return st;
    }
  }
  return US_OK;
}

/* Logits of the next token after token at position p, using and filling the KV cache. */
static void step_cached(const us_lm *lm, gen_state *s, int token, int p) {
  const us_lm_config *c = &lm->config;
  const us__lm_params *w = &lm->w;
  int C = c->dim, F = c->hidden, NH = c->heads, NKV = us__lm_heads_kv(c), hd = C / NH;
  int T = c->context, QKV = us__lm_qkv_width(c), CKV = NKV * hd, group = NH / NKV;
  float scale = 1.0f / sqrtf((float)hd), rstd, eps = us__lm_norm_eps(c);
  int32_t pos = p;
  memcpy(s->x, w->wte + (size_t)token * C, (size_t)C * sizeof(float));
  for (int l = 0; l < c->layers; l++) {
    float *kc = s->kcache + (size_t)l * T * CKV, *vc = s->vcache + (size_t)l * T * CKV;
    us__lm_rmsnorm_forward(s->ln, &rstd, s->x, w->ln1 + (size_t)l * C, 1, C, eps);
    us_blas_sgemv(false, QKV, C, 1.0f, w->wqkv + (size_t)l * QKV * C, C, s->ln, 0.0f, s->qkv);
    us__lm_rope(s->qkv, &pos, s->cos_t, s->sin_t, 1, C, NH, NKV, 1);
    memcpy(kc + (size_t)p * CKV, s->qkv + C, (size_t)CKV * sizeof(float));
    memcpy(vc + (size_t)p * CKV, s->qkv + C + CKV, (size_t)CKV * sizeof(float));
    for (int h = 0; h < NH; h++) {
      size_t kv = (size_t)(h / group) * hd;
      us_blas_sgemv(false, p + 1, hd, scale, kc + kv, CKV, s->qkv + (size_t)h * hd, 0.0f, s->score);
      float mx = -INFINITY, sum = 0.0f;
      for (int j = 0; j <= p; j++) mx = s->score[j] > mx ? s->score[j] : mx;
      for (int j = 0; j <= p; j++) sum += (s->score[j] = expf(s->score[j] - mx));
      for (int j = 0; j <= p; j++) s->score[j] /= sum;
      us_blas_sgemv(true, p + 1, hd, 1.0f, vc + kv, CKV, s->score, 0.0f, s->atty + (size_t)h * hd);
    }
    us_blas_sgemv(false, C, C, 1.0f, w->wo + (size_t)l * C * C, C, s->atty, 1.0f, s->x);
    us__lm_rmsnorm_forward(s->ln, &rstd, s->x, w->ln2 + (size_t)l * C, 1, C, eps);
    us_blas_sgemv(false, 2 * F, C, 1.0f, w->w13 + (size_t)l * 2 * F * C, C, s->ln, 0.0f, s->h13);
    us__lm_swiglu_forward(s->hact, s->h13, 1, F);
    us_blas_sgemv(false, C, F, 1.0f, w->w2 + (size_t)l * C * F, F, s->hact, 1.0f, s->x);
  }
  us__lm_rmsnorm_forward(s->ln, &rstd, s->x, w->lnf, 1, C, eps);
  us_blas_sgemv(false, c->vocab, C, 1.0f, w->wout, C, s->ln, 0.0f, s->logits);
}

/* Logits of the next token after seq[0..n) by running the whole sequence. */
static void step_uncached(const us_lm *lm, gen_state *s, int32_t *seq, int n) {
  s->batch.tokens = seq;
  s->batch.targets = NULL;
  s->batch.pos = s->seq_pos;
  s->batch.doc = s->seq_doc;
  us__lm_forward(lm, &s->acts, &s->batch, 1, n);
  memcpy(s->logits, s->acts.logits + (size_t)(n - 1) * lm->config.vocab,
         (size_t)lm->config.vocab * sizeof(float));
}

static int cmp_ranked(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->p != y->p) return x->p > y->p ? -1 : 1;
  return x->token - y->token;
}

/* Picks the next token; returns it and sets *logprob (temperature 1, no top-p). Returns -1 when
 * the logits are not numbers (a NaN logit makes the sum NaN, an infinite one the maximum and so
 * the normaliser), which only a model whose weights overflow produces. */
static int pick(const us_lm *lm, gen_state *s, const us_lm_gen_params *gp, us_rng *rng,
                double *logprob) {
  int V = lm->config.vocab;
  us_bpe_special sp = us_bpe_specials(lm->bpe);
  s->logits[sp.bos] = s->logits[sp.sep] = s->logits[sp.pad] = -INFINITY;
  float mx = -INFINITY;
  for (int v = 0; v < V; v++) mx = s->logits[v] > mx ? s->logits[v] : mx;
  double sum = 0.0;
  for (int v = 0; v < V; v++) sum += exp((double)s->logits[v] - mx);
  double log_z = mx + log(sum);
  if (!isfinite(log_z)) return -1;
  int best = 0;
  if (gp->temperature <= 0.0f) {
    for (int v = 1; v < V; v++)
      if (s->logits[v] > s->logits[best]) best = v;
  } else {
    float inv_t = 1.0f / gp->temperature, total = 0.0f;
    for (int v = 0; v < V; v++) total += (s->probs[v] = expf((s->logits[v] - mx) * inv_t));
    for (int v = 0; v < V; v++) s->probs[v] /= total;
    int n_keep = V;
    for (int v = 0; v < V; v++) s->order[v] = (ranked){s->probs[v], v};
    if (gp->top_p > 0.0f && gp->top_p < 1.0f) {
      qsort(s->order, (size_t)V, sizeof *s->order, cmp_ranked);
      float cum = 0.0f;
      for (n_keep = 0; n_keep < V && cum < gp->top_p; n_keep++) cum += s->order[n_keep].p;
    }
    float mass = 0.0f;
    for (int i = 0; i < n_keep; i++) mass += s->order[i].p;
    float r = us_rng_uniformf(rng) * mass, acc = 0.0f;
    best = s->order[n_keep - 1].token;
    for (int i = 0; i < n_keep; i++) {
      acc += s->order[i].p;
      if (r < acc) {
        best = s->order[i].token;
        break;
      }
    }
  }
  *logprob = (double)s->logits[best] - log_z;
  return best;
}

us_status us_lm_generate(const us_lm *lm, const char *prompt, const us_lm_gen_params *gp,
                         char **answer, double *mean_logprob, int *n_tokens, us_err *err) {
  *answer = NULL;
  *mean_logprob = 0.0;
  if (n_tokens) *n_tokens = 0;
  const us_lm_config *c = &lm->config;
  int T = c->context;
  us_bpe_special sp = us_bpe_specials(lm->bpe);
  int end = us_bpe_chat_format(lm->bpe).end;
  int32_t *pt = NULL, *seq = malloc((size_t)(T + 1) * sizeof *seq);
  int np = 0;
  gen_state s;
  us_status st = seq ? US_OK : us_err_set(err, US_ERR_NOMEM, "lm: out of memory");
  if (st == US_OK) st = us_bpe_encode(lm->bpe, prompt, strlen(prompt), &pt, &np, err);
  if (st != US_OK) {
    free(seq);
    return st;
  }
  st = gen_alloc(c, gp->no_cache, &s, err);
  if (st != US_OK) {
    free(seq);
    free(pt);
    return st;
  }
  /* keep the prompt's end and leave room for at least one answer token */
  int n = us__lm_format(lm->bpe, pt, np, NULL, 0, T, seq, NULL);
  free(pt);
  us_rng rng;
  us_rng_seed(&rng, gp->seed);
  int fed = 0, produced = 0;
  double sum_lp = 0.0;
  us_buf out;
  us_buf_init(&out, 0);
  while (produced < gp->max_tokens && n <= T) {
    if (gp->no_cache) {
      step_uncached(lm, &s, seq, n);
    } else {
      for (; fed < n; fed++) step_cached(lm, &s, seq[fed], fed);
    }
    double lp;
    int tok = pick(lm, &s, gp, &rng, &lp);
    if (tok < 0) {
      st = us_err_set(err, US_ERR_FORMAT,
                      "lm: the model gives logits that are not numbers at answer token %d: its "
                      "weights overflow or are corrupt; retrain it with a lower learning rate",
                      produced + 1);
      break;
    }
    sum_lp += lp;
    produced++;
    if (tok == sp.eos || tok == end) break;
    if (us_bpe_decode(lm->bpe, &tok, 1, &out, err) != US_OK) {
      st = US_ERR_NOMEM;
      break;
    }
    if (n == T) break;
    seq[n++] = tok;
  }
  gen_free(&s);
  free(seq);
  if (st != US_OK) {
    us_buf_free(&out);
    return st;
  }
  size_t added = us_bpe_added_prefix(lm->bpe, out.data, out.len);
  if (added) { /* SentencePiece's prefix space */
    memmove(out.data, out.data + added, out.len - added + 1);
    out.len -= added;
  }
  *answer = us_buf_steal(&out);
  if (!*answer) return us_err_set(err, US_ERR_NOMEM, "lm: out of memory");
  *mean_logprob = produced ? sum_lp / produced : 0.0;
  if (n_tokens) *n_tokens = produced;
  return US_OK;
}

us_status us_lm_score(const us_lm *lm, const char *prompt, const char *answer, double *mean_logprob,
                      int *n_tokens, us_err *err) {
  *mean_logprob = 0.0;
  if (n_tokens) *n_tokens = 0;
  int T = lm->config.context;
  int32_t *pt = NULL, *at = NULL;
  int np = 0, na = 0;
  us_status st = us_bpe_encode(lm->bpe, prompt, strlen(prompt), &pt, &np, err);
  if (st == US_OK) st = us_bpe_encode(lm->bpe, answer, strlen(answer), &at, &na, err);
  us__lm_acts acts = {0};
  int32_t *buf = malloc(sizeof(int32_t) * 4 * (size_t)(T + 1));
  float *mask = malloc(sizeof(float) * (size_t)T);
  if (st == US_OK && (!buf || !mask)) st = us_err_set(err, US_ERR_NOMEM, "lm: out of memory");
  if (st == US_OK) st = us__lm_acts_new(&lm->config, 1, T, &acts, err);
  if (st != US_OK) goto done;
  /* the same cut and format as training */
  int32_t *seq = buf, *pos = buf + (T + 1), *doc = buf + 2 * (T + 1);
  int sep = 0, n = us__lm_format(lm->bpe, pt, np, at, na, T, seq, &sep);
  for (int j = 0; j < n - 1; j++) {
    pos[j] = j;
    doc[j] = 0;
    mask[j] = j >= sep ? 1.0f : 0.0f;
  }
  us__lm_batch batch = {seq, seq + 1, mask, pos, doc};
  double loss = us__lm_forward(lm, &acts, &batch, 1, n - 1);
  if (!isfinite(loss)) {
    st = us_err_set(err, US_ERR_FORMAT,
                    "lm: the model scores the answer as not a number: its weights overflow or are "
                    "corrupt; retrain it with a lower learning rate");
    goto done;
  }
  *mean_logprob = -loss;
  if (n_tokens) *n_tokens = n - 1 - sep;
done:
  us__lm_acts_free(&acts);
  free(buf);
  free(mask);
  free(pt);
  free(at);
  return st;
}
