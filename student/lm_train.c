/* Training the language model: tokenising (prompt, answer) pairs, packing them into rows with a
 * document mask, AdamW with warmup and cosine decay, gradient clipping, checkpoints with exact
 * resume. Every buffer is allocated before the first step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/hash.h"
#include "student/blas.h"
#include "student/dist.h"
#include "student/finite.h"
#include "student/lm_dist.h"
#include "student/lm_int.h"

void us_lm_train_params_defaults(us_lm_train_params *p) {
  memset(p, 0, sizeof *p);
  p->preset = NULL; /* the explicit sizes below ("micro"'s) */
  p->layers = 4;
  p->dim = 256;
  p->heads = 4;
  p->context = 256;
  p->vocab_size = 2048;
  p->steps = 2000;
  p->batch_size = 16;
  p->warmup_steps = 100;
  p->lr = 3e-4;
  p->min_lr_fraction = 0.1;
  p->weight_decay = 0.1;
  p->beta1 = 0.9;
  p->beta2 = 0.95;
  p->eps = 1e-8;
  p->grad_clip = 1.0;
  p->dropout = 0.0;
  p->checkpoint_every = 500;
  p->seed = 1;
  p->threads = 2;
  p->lora_alpha = 16.0;
}

#define LP(field, kind, lo, hi, flags, doc) \
  US_PARAM(us_lm_train_params, field, kind, lo, hi, flags, doc)

/* Maxima of the sizes are the model's (lm_int.h, bpe.h); training asks for at least 8 for width
 * and context. dropout shares the classifier's range (one config key feeds both). */
static const us_param LM_TRAIN_PARAMS[] = {
    LP(layers, US_PARAM_INT, 1, US_LM_MAX_LAYERS, 0, "transformer blocks"),
    LP(dim, US_PARAM_INT, 8, US_LM_MAX_DIM, 0, "model width"),
    LP(heads, US_PARAM_INT, 1, 128, 0, "attention heads; divide dim into an even head size"),
    LP(context, US_PARAM_INT, 8, US_LM_MAX_CONTEXT, 0, "context length in tokens"),
    LP(vocab_size, US_PARAM_INT, US_BPE_MIN_VOCAB, US_BPE_MAX_VOCAB, 0, "BPE vocabulary size"),
    LP(steps, US_PARAM_INT, 1, 1000000000, 0, "optimiser steps"),
    LP(batch_size, US_PARAM_INT, 1, 65536, 0, "packed rows per step"),
    LP(warmup_steps, US_PARAM_INT, 0, 1000000000, 0, "linear learning-rate warm-up"),
    LP(lr, US_PARAM_DOUBLE, 0, 1, US_PARAM_MIN_OPEN, "peak learning rate"),
    LP(min_lr_fraction, US_PARAM_DOUBLE, 0, 1, 0, "the cosine decays to lr times this"),
    LP(weight_decay, US_PARAM_DOUBLE, 0, 10, 0, "AdamW weight decay"),
    LP(beta1, US_PARAM_DOUBLE, 0, 1, 0, "AdamW first-moment decay (below 1)"),
    LP(beta2, US_PARAM_DOUBLE, 0, 1, 0, "AdamW second-moment decay (below 1)"),
    LP(eps, US_PARAM_DOUBLE, 0, 1, US_PARAM_MIN_OPEN, "AdamW epsilon"),
    LP(grad_clip, US_PARAM_DOUBLE, 0, 1e6, 0, "gradient norm clip; 0 turns it off"),
    LP(dropout, US_PARAM_DOUBLE, 0, 0.95, 0, "dropout on embeddings, attention, SwiGLU"),
    LP(checkpoint_every, US_PARAM_INT, 0, 1000000000, 0, "steps between checkpoints; 0: none"),
    LP(resume, US_PARAM_BOOL, 0, 0, 0, "continue from checkpoint_path when it exists"),
    LP(seed, US_PARAM_U64, 0, US_PARAM_MAX_SAFE_INT, 0, "weights and data order"),
    LP(threads, US_PARAM_INT, 1, 256, 0, "OpenBLAS threads"),
    LP(lora_rank, US_PARAM_INT, 0, 1024, 0, "LoRA adapter rank; 0: full fine-tuning"),
    LP(lora_alpha, US_PARAM_DOUBLE, 0, 100000, US_PARAM_MIN_OPEN, "LoRA scale alpha / rank"),
};

const us_param *us_lm_train_param_table(size_t *n) {
  *n = sizeof LM_TRAIN_PARAMS / sizeof LM_TRAIN_PARAMS[0];
  return LM_TRAIN_PARAMS;
}

us_status us_lm_train_params_check(const us_lm_train_params *p, us_err *err) {
  size_t n;
  const us_param *table = us_lm_train_param_table(&n);
  us_status st = us_params_check(table, n, p, err);
  if (st != US_OK) return st;
  if (p->beta1 >= 1)
    return us_err_set(err, US_ERR_CONFIG, "beta1: expected below 1, found %g", p->beta1);
  if (p->beta2 >= 1)
    return us_err_set(err, US_ERR_CONFIG, "beta2: expected below 1, found %g", p->beta2);
  if (p->lora_rank > 0 && !p->init)
    return us_err_set(err, US_ERR_CONFIG,
                      "lora_rank: adapters need a pretrained model to adapt; set init to a GGUF "
                      "file, or lora_rank to 0");
  us_lm_config c;
  if (p->preset && (st = us_lm_config_preset(p->preset, &c, err)) != US_OK)
    return st; /* "preset: expected ..." */
  /* checked with a preset too (the sizes are then unused), as the config always has */
  if (p->dim % p->heads != 0 || (p->dim / p->heads) % 2 != 0)
    return us_err_set(err, US_ERR_CONFIG,
                      "heads: expected a divisor of the model width (%d) that leaves an even head "
                      "size, found %d",
                      p->dim, p->heads);
  return US_OK;
}

/* Tokenised examples in the tokeniser's chat format (natively [BOS] prompt [SEP] answer [EOS]),
 * cut to at most T + 1 tokens. */
typedef struct corpus {
  int32_t *tokens;
  size_t *start; /* (n + 1) offsets into tokens */
  int32_t *sep;  /* index within each example of the position whose target is the answer's first */
  size_t n;
} corpus;

/* Safe to call twice: corpus_build frees on failure and trainer_free again. */
static void corpus_free(corpus *k) {
  free(k->tokens);
  free(k->start);
  free(k->sep);
  memset(k, 0, sizeof *k);
}

static us_status corpus_build(const us_bpe *bpe, const us_lm_example *ex, size_t n, int T,
                              corpus *k, us_err *err) {
  memset(k, 0, sizeof *k);
  size_t cap = n * (size_t)(T + 1);
  k->tokens = malloc((cap ? cap : 1) * sizeof *k->tokens);
  k->start = malloc((n + 1) * sizeof *k->start);
  k->sep = malloc((n ? n : 1) * sizeof *k->sep);
  if (!k->tokens || !k->start || !k->sep) {
    corpus_free(k);
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory tokenising %zu examples", n);
  }
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    int32_t *pt = NULL, *at_ = NULL;
    int np = 0, na = 0, from = 0;
    us_status st = us_bpe_encode(bpe, ex[i].prompt, strlen(ex[i].prompt), &pt, &np, err);
    if (st == US_OK) st = us_bpe_encode(bpe, ex[i].answer, strlen(ex[i].answer), &at_, &na, err);
    if (st != US_OK) {
      free(pt);
      corpus_free(k);
      return st;
    }
    k->start[i] = at;
    at += (size_t)us__lm_format(bpe, pt, np, at_, na, T, k->tokens + at, &from);
    k->sep[i] = from;
    free(pt);
    free(at_);
  }
  k->start[n] = at;
  k->n = n;
  return US_OK;
}

/* Training state that lives across steps; allocated once. */
typedef struct trainer {
  const us_lm_train_params *p;
  us_lm *lm;
  corpus data;
  us__lm_acts acts;
  us__lm_batch batch;
  int32_t *row; /* (T + 1) scratch for one packed row */
  size_t *perm; /* (n) example order of the current epoch */
  float *grad;  /* (n_params) full training's gradients; NULL with adapters */
  us__lm_params g;
  /* what AdamW updates: the model's block, or the adapters' (lm->lora) with the base frozen */
  float *params, *grads;
  size_t n_train, n_decay;
  us__lm_train_state ts;
  int B, T;
} trainer;

static void shuffle_epoch(trainer *t) {
  us_rng r;
  us_rng_seed(&r, t->ts.seed ^ (0x9E3779B97F4A7C15ull * (t->ts.epoch + 1)));
  for (size_t i = 0; i < t->data.n; i++) t->perm[i] = i;
  for (size_t i = t->data.n; i > 1; i--) {
    size_t j = (size_t)us_rng_below(&r, i);
    size_t tmp = t->perm[i - 1];
    t->perm[i - 1] = t->perm[j];
    t->perm[j] = tmp;
  }
}

/* Packs the next examples into B rows; an example that does not fit starts the next row. */
static void next_batch(trainer *t) {
  us_bpe_special sp = us_bpe_specials(t->lm->bpe);
  int T = t->T;
  int32_t doc_id = 0;
  for (int b = 0; b < t->B; b++) {
    int32_t *tok = t->batch.tokens + (size_t)b * T, *tgt = t->batch.targets + (size_t)b * T;
    int32_t *pos = t->batch.pos + (size_t)b * T, *doc = t->batch.doc + (size_t)b * T;
    float *mask = t->batch.mask + (size_t)b * T;
    for (int j = 0; j <= T; j++) t->row[j] = sp.pad;
    for (int j = 0; j < T; j++) {
      pos[j] = 0;
      doc[j] = -1 - j; /* padding attends only to itself */
      mask[j] = 0.0f;
    }
    int used = 0;
    for (;;) {
      size_t e = t->perm[t->ts.cursor];
      int len = (int)(t->data.start[e + 1] - t->data.start[e]);
      if (used + len > T + 1) break;
      memcpy(t->row + used, t->data.tokens + t->data.start[e], (size_t)len * sizeof(int32_t));
      for (int j = used; j < used + len && j < T; j++) {
        pos[j] = j - used;
        doc[j] = doc_id;
      }
      for (int j = used + t->data.sep[e]; j < used + len - 1; j++) mask[j] = 1.0f;
      used += len;
      doc_id++;
      if (++t->ts.cursor == t->data.n) {
        t->ts.cursor = 0;
        t->ts.epoch++;
        shuffle_epoch(t);
      }
    }
    memcpy(tok, t->row, (size_t)T * sizeof(int32_t));
    memcpy(tgt, t->row + 1, (size_t)T * sizeof(int32_t));
  }
}

static double lr_at(const us_lm_train_params *p, long step) {
  if (step < p->warmup_steps) return p->lr * (double)(step + 1) / (double)p->warmup_steps;
  double span = (double)(p->steps - p->warmup_steps);
  double progress = span > 0 ? (double)(step - p->warmup_steps) / span : 1.0;
  if (progress > 1.0) progress = 1.0;
  double min_lr = p->lr * p->min_lr_fraction;
  return min_lr + 0.5 * (p->lr - min_lr) * (1.0 + cos(3.141592653589793 * progress));
}

/* Clips the global gradient norm, then one AdamW update over the whole block. Returns false,
 * leaving the weights alone, when the gradient is not finite (the norm is a sum over all of
 * it, so the check costs nothing). */
static bool adamw_step(trainer *t, double lr) {
  const us_lm_train_params *p = t->p;
  size_t n = t->n_train, n_decay = t->n_decay;
  double norm2 = 0.0;
  for (size_t i = 0; i < n; i++) norm2 += (double)t->grads[i] * t->grads[i];
  double norm = sqrt(norm2);
  if (!isfinite(norm)) return false;
  float clip = (p->grad_clip > 0 && norm > p->grad_clip) ? (float)(p->grad_clip / norm) : 1.0f;
  double step = (double)t->ts.step + 1.0;
  float b1 = (float)p->beta1, b2 = (float)p->beta2;
  float c1 = (float)(1.0 - pow(p->beta1, step)), c2 = (float)(1.0 - pow(p->beta2, step));
  float flr = (float)lr, wd = (float)p->weight_decay, eps = (float)p->eps;
  float *w = t->params, *m = t->ts.m, *v = t->ts.v;
  for (size_t i = 0; i < n; i++) {
    float g = t->grads[i] * clip;
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    float update = (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    w[i] -= flr * (update + (i < n_decay ? wd * w[i] : 0.0f));
  }
  return true;
}

/* A learning rate too high for the data makes the loss, the gradient or the weights overflow;
 * from then on everything is NaN. The message starts with the field to change (the config names
 * its key there). */
static us_status diverged(const us_lm_train_params *p, long step, const char *what, us_err *err) {
  us_lm_train_params d;
  us_lm_train_params_defaults(&d);
  return us_err_set(err, US_ERR_CONFIG,
                    "lr: training diverged at step %ld of %d (%s): a peak learning rate of %g is "
                    "too high for this data; lower it (to %g, say) and train again",
                    step, p->steps, what, p->lr, p->lr > d.lr ? d.lr : p->lr / 10);
}

/* The weights are checked before every checkpoint and at the end (every step's loss and gradient
 * norm are checked already, so only the last update can slip through): a scan of the block. */
static us_status check_weights(const trainer *t, long step, us_err *err) {
  size_t bad = us__first_nonfinite(t->lm->block, t->lm->n_params);
  if (bad == t->lm->n_params) return US_OK;
  char what[96];
  snprintf(what, sizeof what, "weight %zu is %s", bad,
           isnan(t->lm->block[bad]) ? "NaN" : "infinite");
  return diverged(t->p, step, what, err);
}

static us_status save_checkpoint(trainer *t, us_err *err) {
  if (us_dist_rank() != 0) return US_OK; /* under MPI, rank 0 writes for every rank */
  if (t->lm->lora) return US_OK;         /* adapter runs write no checkpoints (docs/lm.md) */
  us_buf b;
  us_buf_init(&b, 0);
  us_status st = us__lm_serialize(t->lm, &t->ts, &b, err);
  if (st == US_OK) st = us_write_file_atomic(t->p->checkpoint_path, b.data, b.len, err);
  us_buf_free(&b);
  if (st != US_OK) us_err_prefix(err, "lm: checkpoint");
  return st;
}

/* A pretrained model from p->init, with adapters when p->lora_rank > 0. (A full fine-tune
 * resumes from its checkpoint like a fresh model; an adapter run writes none and starts over.) */
static us_status trainer_pretrained(trainer *t, us_err *err) {
  const us_lm_train_params *p = t->p;
  us_status st;
  if ((st = us_lm_import_gguf(p->init, p->context, &t->lm, err)) != US_OK) {
    us_err_prefix(err, "init");
    return st;
  }
  t->ts.seed = p->seed;
  us_rng_seed(&t->ts.rng, p->seed ^ 0xda7aull);
  if (p->lora_rank > 0) {
    us_rng r;
    us_rng_seed(&r, p->seed ^ 0x10aull);
    if ((st = us__lm_lora_new(t->lm, p->lora_rank, p->lora_alpha, &r, err)) != US_OK) return st;
  }
  size_t n = t->lm->lora ? t->lm->lora->n_params : t->lm->n_params;
  t->ts.m = calloc(n, sizeof(float));
  t->ts.v = calloc(n, sizeof(float));
  if (!t->ts.m || !t->ts.v)
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for the optimiser state");
  return US_OK;
}

/* The model and optimiser state: from the checkpoint when resuming, else fresh. */
static us_status trainer_model(trainer *t, const us_lm_example *ex, size_t n, us_err *err) {
  const us_lm_train_params *p = t->p;
  FILE *f = (p->resume && p->checkpoint_path && p->lora_rank == 0) ? fopen(p->checkpoint_path, "rb")
                                                                   : NULL;
  if (f) {
    fclose(f);
    char *data = NULL;
    size_t len = 0;
    us_status st = us_read_file(p->checkpoint_path, 0, &data, &len, err);
    if (st != US_OK) return st;
    bool has_state = false;
    st = us__lm_parse((unsigned char *)data, len, p->checkpoint_path, &t->lm, &t->ts, &has_state,
                      err);
    free(data);
    if (st == US_OK && !has_state)
      st = us_err_set(err, US_ERR_FORMAT,
                      "%s: a model file without a training state cannot be resumed",
                      p->checkpoint_path);
    return st;
  }
  if (p->init) return trainer_pretrained(t, err);
  us_lm_config c = {0};
  us_status st = p->preset ? us_lm_config_preset(p->preset, &c, err) : US_OK;
  if (st != US_OK) return st;
  if (!p->preset) {
    c.layers = p->layers;
    c.dim = p->dim;
    c.heads = p->heads;
    c.context = p->context;
  }
  const char **texts = malloc((2 * n + 1) * sizeof *texts);
  if (!texts) return us_err_set(err, US_ERR_NOMEM, "lm: out of memory");
  for (size_t i = 0; i < n; i++) {
    texts[2 * i] = ex[i].prompt;
    texts[2 * i + 1] = ex[i].answer;
  }
  us_bpe *bpe = NULL;
  st = us_bpe_train(texts, 2 * n, p->vocab_size, &bpe, err);
  free(texts);
  if (st != US_OK) return st;
  c.vocab = us_bpe_vocab_size(bpe);
  c.hidden = us_lm_config_hidden(c.dim);
  st = us_lm_new(&c, bpe, p->seed, &t->lm, err);
  if (st != US_OK) return st;
  t->ts.m = calloc(t->lm->n_params, sizeof(float));
  t->ts.v = calloc(t->lm->n_params, sizeof(float));
  if (!t->ts.m || !t->ts.v)
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for the optimiser state");
  t->ts.seed = p->seed;
  us_rng_seed(&t->ts.rng, p->seed ^ 0xda7aull);
  return US_OK;
}

static us_status trainer_alloc(trainer *t, us_err *err) {
  const us_lm_config *c = &t->lm->config;
  t->B = t->p->batch_size;
  t->T = c->context;
  size_t N = (size_t)t->B * t->T;
  /* under MPI a rank computes its shard of the B rows only (all of them alone) */
  int rows = us__lm_shard_max_rows(t->B, us_dist_size());
  us_status st = us__lm_acts_new(c, rows, t->T, &t->acts, err);
  if (st == US_OK) st = us__lm_acts_dropout(&t->acts, c, (float)t->p->dropout, err);
  if (st != US_OK) return st;
  t->batch.tokens = malloc(N * sizeof(int32_t));
  t->batch.targets = malloc(N * sizeof(int32_t));
  t->batch.pos = malloc(N * sizeof(int32_t));
  t->batch.doc = malloc(N * sizeof(int32_t));
  t->batch.mask = malloc(N * sizeof(float));
  t->row = malloc((size_t)(t->T + 1) * sizeof(int32_t));
  t->perm = malloc((t->data.n ? t->data.n : 1) * sizeof(size_t));
  const us__lm_lora *lo = t->lm->lora;
  /* + 1: the loss slot of lm_dist.h (the LoRA gradient block has one too) */
  t->grad = lo ? NULL : malloc((t->lm->n_params + 1) * sizeof(float));
  if (!t->batch.tokens || !t->batch.targets || !t->batch.pos || !t->batch.doc || !t->batch.mask ||
      !t->row || !t->perm || (!lo && !t->grad))
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for the training buffers");
  if (lo) {
    t->params = lo->block;
    t->grads = lo->grad;
    t->n_train = t->n_decay = lo->n_params;
    return us__lm_acts_lora(&t->acts, lo, c->layers, err);
  }
  us__lm_params_point(t->grad, c, &t->g);
  t->params = t->lm->block;
  t->grads = t->grad;
  t->n_train = t->lm->n_params;
  t->n_decay = us__lm_decay_count(c);
  return US_OK;
}

static void trainer_free(trainer *t) {
  us__lm_acts_free(&t->acts);
  free(t->batch.tokens);
  free(t->batch.targets);
  free(t->batch.pos);
  free(t->batch.doc);
  free(t->batch.mask);
  free(t->row);
  free(t->perm);
  free(t->grad);
  free(t->ts.m);
  free(t->ts.v);
  corpus_free(&t->data);
}

/* Under MPI, every rank must start from the same model, optimiser state, data and position in
 * it: a rank that read another checkpoint or other examples would train something else. */
static us_status same_start(const trainer *t, us_err *err) {
  const us_lm *lm = t->lm;
  uint64_t h = us_hash64(lm->block, lm->n_params * sizeof(float), lm->n_params);
  h = us_hash64(t->ts.m, lm->n_params * sizeof(float), h);
  uint64_t where[3] = {t->ts.step, t->ts.epoch, t->ts.cursor};
  h = us_hash64(where, sizeof where, h);
  h = us_hash64(t->data.tokens, t->data.start[t->data.n] * sizeof(int32_t), h);
  h = us_hash64(t->data.start, (t->data.n + 1) * sizeof(size_t), h);
  return us_dist_same_u64(h, "the model, the checkpoint or the training examples", err);
}

us_status us_lm_train(const us_lm_train_params *p, const us_lm_example *examples, size_t n,
                      us_lm **out, us_err *err) {
  *out = NULL;
  if (n == 0) return us_err_set(err, US_ERR_INPUT, "lm: no training examples");
  us_status check = us_lm_train_params_check(p, err);
  if (check != US_OK) {
    us_err_prefix(err, "lm");
    return check;
  }
  trainer t;
  memset(&t, 0, sizeof t);
  t.p = p;
  us_blas_set_threads(p->threads > 0 ? p->threads : 1);
  us_status st = trainer_model(&t, examples, n, err);
  if (st == US_OK) st = corpus_build(t.lm->bpe, examples, n, t.lm->config.context, &t.data, err);
  if (st == US_OK) st = trainer_alloc(&t, err);
  if (st != US_OK) goto fail;
  shuffle_epoch(&t);
  bool dist = us_dist_size() > 1;
  if (dist && (st = same_start(&t, err)) != US_OK) goto fail;
  double t0 = us_now();
  long first = (long)t.ts.step;
  for (long step = first; step < p->steps; step++) {
    next_batch(&t);
    /* dropout masks depend only on the seed and the step, so a resumed run draws the same ones */
    us_rng_seed(&t.acts.drop_rng, t.ts.seed ^ (0xD1B54A32D192ED03ull * ((uint64_t)step + 1)) ^
                                      (0x9E3779B97F4A7C15ull * (uint64_t)us_dist_rank()));
    double loss = 0.0;
    if (dist)
      st = us__lm_dist_step(t.lm, &t.acts, &t.batch, t.B, t.T, t.grads, t.n_train,
                            t.lm->lora ? NULL : &t.g, step, &loss, err);
    else
      loss = us__lm_forward(t.lm, &t.acts, &t.batch, t.B, t.T);
    if (st != US_OK) goto fail;
    if (!isfinite(loss)) {
      st = diverged(p, step + 1, "the loss is not a number", err);
      goto fail;
    }
    if (!dist) {
      memset(t.grads, 0, t.n_train * sizeof(float));
      us__lm_backward(t.lm, &t.acts, &t.batch, t.B, t.T, t.lm->lora ? NULL : &t.g);
    }
    double lr = lr_at(p, step);
    if (!adamw_step(&t, lr)) {
      st = diverged(p, step + 1, "the gradient is not a number", err);
      goto fail;
    }
    t.ts.step = (uint64_t)step + 1;
    if (p->losses) p->losses[step] = (float)loss;
    if (p->checkpoint_every > 0 && p->checkpoint_path &&
        t.ts.step % (uint64_t)p->checkpoint_every == 0 &&
        ((st = check_weights(&t, step + 1, err)) != US_OK ||
         (st = save_checkpoint(&t, err)) != US_OK))
      goto fail;
    if (p->progress) {
      double dt = us_now() - t0, done = (double)(step + 1 - first);
      us_lm_progress pr = {step + 1,
                           p->steps,
                           loss,
                           lr,
                           dt > 0 ? done * t.B * t.T / dt : 0.0,
                           done > 0 ? dt / done * (double)(p->steps - step - 1) : 0.0,
                           t.lm->n_params};
      if (p->progress(&pr, p->progress_user) != 0) {
        st = us_err_set(err, US_ERR_INTERRUPTED, "lm: training stopped at step %ld of %d", step + 1,
                        p->steps);
        goto fail;
      }
    }
  }
  us__lm_lora_merge(t.lm); /* the adapters become part of the returned weights */
  if ((st = check_weights(&t, (long)t.ts.step, err)) != US_OK) goto fail;
  *out = t.lm;
  t.lm = NULL;
fail:
  us_lm_free(t.lm);
  trainer_free(&t);
  return st;
}
