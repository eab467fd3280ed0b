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
  p->preset = NULL; /* "auto"; the sizes, vocab_size, batch_size and lr left at 0 follow it */
  p->steps = 0;     /* from train_minutes */
  p->train_minutes = 10;
  p->warmup_steps = 100;
  p->min_lr_fraction = 0.1;
  p->weight_decay = 0.1;
  p->beta1 = 0.9;
  p->beta2 = 0.95;
  p->eps = 1e-8;
  p->grad_clip = 1.0;
  p->dropout = 0.0;
  p->patience = 5;
  p->checkpoint_every = 500;
  p->seed = 1;
  p->threads = 2;
  p->lora_alpha = 16.0;
}

#define LP(field, kind, lo, hi, flags, doc) \
  US_PARAM(us_lm_train_params, field, kind, lo, hi, flags, doc)

/* Maxima of the sizes are the model's (lm_int.h, bpe.h); 0 leaves a size, the batch and the rate
 * to the preset (us_lm_train_params_check asks at least 8 of a given width and context). dropout
 * and patience share the classifier's ranges (one config key feeds both). */
static const us_param LM_TRAIN_PARAMS[] = {
    LP(layers, US_PARAM_INT, 0, US_LM_MAX_LAYERS, 0, "transformer blocks; 0: the preset's"),
    LP(dim, US_PARAM_INT, 0, US_LM_MAX_DIM, 0, "model width; 0: the preset's"),
    LP(heads, US_PARAM_INT, 0, 128, 0, "attention heads; divide dim into an even head size"),
    LP(context, US_PARAM_INT, 0, US_LM_MAX_CONTEXT, 0, "context length in tokens; 0: the preset's"),
    LP(vocab_size, US_PARAM_INT, 0, US_BPE_MAX_VOCAB, 0, "BPE vocabulary size; 0: from the text"),
    LP(steps, US_PARAM_INT, 0, 1000000000, 0, "optimiser steps; 0: from train_minutes"),
    LP(train_minutes, US_PARAM_DOUBLE, 0, 10080, US_PARAM_MIN_OPEN,
       "wall-time budget of the training when steps is 0"),
    LP(batch_size, US_PARAM_INT, 0, 65536, 0, "packed rows per step; 0: the preset's"),
    LP(warmup_steps, US_PARAM_INT, 0, 1000000000, 0, "linear learning-rate warm-up"),
    LP(lr, US_PARAM_DOUBLE, 0, 1, 0, "peak learning rate; 0: the preset's"),
    LP(min_lr_fraction, US_PARAM_DOUBLE, 0, 1, 0, "the cosine decays to lr times this"),
    LP(weight_decay, US_PARAM_DOUBLE, 0, 10, 0, "AdamW weight decay"),
    LP(beta1, US_PARAM_DOUBLE, 0, 1, 0, "AdamW first-moment decay (below 1)"),
    LP(beta2, US_PARAM_DOUBLE, 0, 1, 0, "AdamW second-moment decay (below 1)"),
    LP(eps, US_PARAM_DOUBLE, 0, 1, US_PARAM_MIN_OPEN, "AdamW epsilon"),
    LP(grad_clip, US_PARAM_DOUBLE, 0, 1e6, 0, "gradient norm clip; 0 turns it off"),
    LP(dropout, US_PARAM_DOUBLE, 0, 0.95, 0, "dropout on embeddings, attention, SwiGLU"),
    LP(patience, US_PARAM_INT, 0, 1000, 0, "validation checks without improvement; 0: no stop"),
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

/* The size table of this run: the injected one (tests), else student/lm_budget.c's. */
static const us__lm_size *size_table(const us_lm_train_params *p, size_t *n) {
  if (p->sizes && p->n_sizes > 0) {
    *n = p->n_sizes;
    return p->sizes;
  }
  return us__lm_sizes(n);
}

static const us__lm_size *size_named(const us_lm_train_params *p, const char *name) {
  size_t n;
  const us__lm_size *sizes = size_table(p, &n);
  for (size_t i = 0; name && i < n; i++)
    if (strcmp(name, sizes[i].name) == 0) return &sizes[i];
  return NULL;
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
  if (p->dim > 0 && p->dim < 8)
    return us_err_set(err, US_ERR_CONFIG, "dim: expected 0 (the preset's) or at least 8, found %d",
                      p->dim);
  if (p->context > 0 && p->context < 8)
    return us_err_set(err, US_ERR_CONFIG,
                      "context: expected 0 (the preset's) or at least 8, found %d", p->context);
  if (p->vocab_size > 0 && p->vocab_size < US_BPE_MIN_VOCAB)
    return us_err_set(err, US_ERR_CONFIG,
                      "vocab_size: expected 0 (from the text) or at least %d, found %d",
                      US_BPE_MIN_VOCAB, p->vocab_size);
  const us__lm_size *named = size_named(p, p->preset);
  if (p->preset && !named && strcmp(p->preset, "auto") != 0)
    return us_err_set(err, US_ERR_CONFIG,
                      "preset: expected \"auto\", \"nano\", \"micro\", \"mini\" or null, found "
                      "\"%s\"",
                      p->preset);
  /* heads against every width the run can have: the given one, else the preset's (all of the
   * table's under "auto") */
  size_t n_sizes;
  const us__lm_size *sizes = size_table(p, &n_sizes);
  for (size_t i = 0; i < n_sizes; i++) {
    if (named && &sizes[i] != named) continue;
    int dim = p->dim > 0 ? p->dim : sizes[i].dim, heads = p->heads > 0 ? p->heads : sizes[i].heads;
    if (dim % heads == 0 && (dim / heads) % 2 == 0) continue;
    if (p->heads == 0)
      return us_err_set(err, US_ERR_CONFIG,
                        "dim: expected a width that the preset's %d heads divide into an even head "
                        "size, found %d; set heads too",
                        heads, dim);
    return us_err_set(err, US_ERR_CONFIG,
                      "heads: expected a divisor of the model width (%d%s) that leaves an even "
                      "head size, found %d",
                      dim, p->dim > 0 ? "" : ", the preset's; set dim too", heads);
    if (p->dim > 0 && p->heads > 0) break;
  }
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
  const us_lm_train_params *p; /* the caller's, with the preset's batch and rate filled in (eff) */
  us_lm_train_params eff;
  const us_lm_train_params *caller; /* as given */
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
  /* sizes, schedule, validation (student/lm_budget.c) */
  const us__lm_size *size; /* the preset the run follows */
  bool auto_preset, custom;
  us__lm_data_stats stats;
  us__lm_schedule sched;
  corpus valid;     /* up to US_LM_VALID_MAX validation examples */
  size_t valid_use; /* the first this many are checked (fewer on a tight budget) */
  float *best;      /* (n_params) weights of the best validation check; NULL without validation */
  us__lm_early_stop early;
  double valid_loss; /* the last check's; NAN before */
  int evaluations;
  double tokens_per_sec; /* measured for the plan */
  bool resumed;          /* from a checkpoint */
  /* the size trial (us__lm_trial_plan): what it did, and a line for the next progress call */
  us__lm_trial_plan trial;
  bool trial_ran;
  long trial_steps[2];
  double trial_sec[2], trial_loss[2];
  int trial_winner;
  char trial_note[160];
  char note[256];
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
static us_status diverged(const trainer *t, long step, const char *what, us_err *err) {
  const us_lm_train_params *p = t->p;
  return us_err_set(err, US_ERR_CONFIG,
                    "lr: training diverged at step %ld of %ld (%s): a peak learning rate of %g is "
                    "too high for this data; lower it (to %g, say) and train again",
                    step, t->sched.steps, what, p->lr, p->lr / 10);
}

/* The weights are checked before every checkpoint and at the end (every step's loss and gradient
 * norm are checked already, so only the last update can slip through): a scan of the block. */
static us_status check_weights(const trainer *t, const float *w, size_t n, long step, us_err *err) {
  size_t bad = us__first_nonfinite(w, n);
  if (bad == n) return US_OK;
  char what[96];
  snprintf(what, sizeof what, "%s %zu is %s", t->lm->lora ? "adapter weight" : "weight", bad,
           isnan(w[bad]) ? "NaN" : "infinite");
  return diverged(t, step, what, err);
}

/* The adapters' checkpoint (student/lm_lora.c): adapters, moments, schedule, the best check, and
 * what identifies the base, which is not copied. */
static us_status serialize_adapters(const trainer *t, us_buf *b, us_err *err) {
  us__lm_lora_ckpt ck;
  memset(&ck, 0, sizeof ck);
  snprintf(ck.base_path, sizeof ck.base_path, "%s", t->p->init);
  ck.base_bytes = t->lm->base_bytes;
  ck.base_hash = t->lm->base_hash;
  ck.best_loss = t->early.best;
  ck.best_step = (uint64_t)t->early.best_step;
  ck.bad = (uint64_t)t->early.bad;
  ck.evaluations = (uint64_t)t->evaluations;
  ck.best = t->best && t->early.best_step > 0 ? t->best : NULL;
  return us__lm_lora_serialize(t->lm, &t->ts, &ck, b, err);
}

static us_status save_checkpoint(trainer *t, us_err *err) {
  if (us_dist_rank() != 0) return US_OK; /* under MPI, rank 0 writes for every rank */
  us_buf b;
  us_buf_init(&b, 0);
  us_status st;
  if (t->lm->lora) {
    st = serialize_adapters(t, &b, err);
  } else {
    /* the early-stopping record, so that a resumed run delivers what one run would */
    t->ts.has_best = t->best && t->early.best_step > 0;
    if (t->ts.has_best) {
      t->ts.best_loss = t->early.best;
      t->ts.best_step = (uint64_t)t->early.best_step;
      t->ts.bad = (uint64_t)t->early.bad;
      t->ts.evaluations = (uint64_t)t->evaluations;
      t->ts.valid_use = t->valid_use;
      t->ts.eval_every = (uint64_t)t->sched.eval_every;
      t->ts.best = t->best; /* borrowed for the write */
    }
    st = us__lm_serialize(t->lm, &t->ts, &b, err);
    t->ts.best = NULL;
  }
  if (st == US_OK) st = us_write_file_atomic(t->p->checkpoint_path, b.data, b.len, err);
  us_buf_free(&b);
  if (st != US_OK) us_err_prefix(err, "lm: checkpoint");
  return st;
}

/* ---- sizes: explicit fields, then the named preset, then "auto" (student/lm_budget.c) ---- */

static double text_bytes(const us_lm_example *ex, size_t n) {
  double bytes = 0;
  for (size_t i = 0; i < n; i++) bytes += (double)(strlen(ex[i].prompt) + strlen(ex[i].answer));
  return bytes;
}

/* Token counts of the examples as training sees them (BOS prompt SEP answer EOS). */
static us_status data_stats(const us_bpe *bpe, const us_lm_example *ex, size_t n,
                            us__lm_data_stats *d, us_err *err) {
  memset(d, 0, sizeof *d);
  for (size_t i = 0; i < n; i++) {
    int32_t *tok = NULL;
    int np = 0, na = 0;
    us_status st = us_bpe_encode(bpe, ex[i].prompt, strlen(ex[i].prompt), &tok, &np, err);
    free(tok);
    tok = NULL;
    if (st == US_OK) st = us_bpe_encode(bpe, ex[i].answer, strlen(ex[i].answer), &tok, &na, err);
    free(tok);
    if (st != US_OK) return st;
    d->tokens += np + na + 3;
    if (np + na + 3 > d->longest) d->longest = np + na + 3;
  }
  d->n = n;
  return US_OK;
}

/* Picks the preset (named, or "auto" from the data and the budget) and fills the trainer's
 * effective batch and rate; c receives the sizes a fresh model gets (given fields win). */
static void choose_size(trainer *t, us_lm_config *c) {
  const us_lm_train_params *p = t->p;
  size_t n;
  const us__lm_size *sizes = size_table(p, &n);
  t->size = size_named(p, p->preset);
  t->auto_preset = t->size == NULL;
  if (t->auto_preset)
    t->size = us__lm_auto_size_from(sizes, n, &t->stats, p->steps > 0 ? 0 : p->train_minutes * 60.0,
                                    p->steps, p->threads);
  c->layers = p->layers > 0 ? p->layers : t->size->layers;
  c->dim = p->dim > 0 ? p->dim : t->size->dim;
  c->heads = p->heads > 0 ? p->heads : t->size->heads;
  c->context = p->context > 0   ? p->context
               : t->auto_preset ? us__lm_auto_context(t->stats.longest)
                                : t->size->context;
  c->hidden = us_lm_config_hidden(c->dim);
  t->custom = p->layers > 0 || p->dim > 0 || p->heads > 0;
}

/* The batch and rate the run uses: given, else the preset's for the model's context. */
static void effective_params(trainer *t) {
  t->eff = *t->p;
  int T = t->lm->config.context;
  if (t->eff.batch_size == 0) {
    t->eff.batch_size = t->size->tokens_per_step / T;
    if (t->eff.batch_size < 1) t->eff.batch_size = 1;
  }
  if (t->eff.lr == 0) t->eff.lr = t->size->lr;
  t->p = &t->eff;
}

/* A pretrained model from p->init, with adapters when p->lora_rank > 0 (the base then frozen, and
 * kept in Q8_0 when the file's projections are). A full fine-tune resumes from its checkpoint
 * like a fresh model; an adapter run reads its own checkpoint later (resume_adapters). */
static us_status trainer_pretrained(trainer *t, const us_lm_example *ex, size_t n, us_err *err) {
  const us_lm_train_params *p = t->p;
  us_status st;
  if ((st = us__lm_import(p->init, p->context, p->lora_rank > 0, &t->lm, err)) != US_OK) {
    us_err_prefix(err, "init");
    return st;
  }
  /* the sizes are the file's; the preset only lends its tokens per step (and the budget's plan) */
  if ((st = data_stats(t->lm->bpe, ex, n, &t->stats, err)) != US_OK) return st;
  us_lm_config unused = {0};
  choose_size(t, &unused);
  t->custom = true;
  bool rate_given = p->lr > 0;
  effective_params(t);
  /* a pretrained model is fine-tuned at the previous fixed default, not a fresh preset's rate */
  if (!rate_given) t->eff.lr = US_LM_FINETUNE_LR;
  p = t->p;
  t->ts.seed = p->seed;
  us_rng_seed(&t->ts.rng, p->seed ^ 0xda7aull);
  if (p->lora_rank > 0) {
    us_rng r;
    us_rng_seed(&r, p->seed ^ 0x10aull);
    if ((st = us__lm_lora_new(t->lm, p->lora_rank, p->lora_alpha, &r, err)) != US_OK) return st;
  }
  size_t n_trained = t->lm->lora ? t->lm->lora->n_params : t->lm->n_params;
  t->ts.m = calloc(n_trained, sizeof(float));
  t->ts.v = calloc(n_trained, sizeof(float));
  if (!t->ts.m || !t->ts.v)
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for the optimiser state");
  return US_OK;
}

static us_status fresh_state(trainer *t, us_err *err);

/* The model and optimiser state: from the checkpoint when resuming, else fresh. Either way the
 * preset is chosen again from the same data, so a resumed run has the same batch and rate. */
static us_status trainer_model(trainer *t, const us_lm_example *ex, size_t n, us_err *err) {
  const us_lm_train_params *p = t->p;
  FILE *f = (p->resume && p->checkpoint_path && p->lora_rank == 0) ? fopen(p->checkpoint_path, "rb")
                                                                   : NULL;
  /* an adapter run imports its base first; resume_adapters then reads its checkpoint */
  us_status st = US_OK;
  us_lm_config c = {0};
  if (f) {
    fclose(f);
    char *data = NULL;
    size_t len = 0;
    st = us_read_file(p->checkpoint_path, 0, &data, &len, err);
    if (st != US_OK) return st;
    bool has_state = false;
    if (us__lm_is_lora_checkpoint((unsigned char *)data, len)) {
      free(data);
      return us_err_set(err, US_ERR_CONFIG,
                        "%s: a LoRA checkpoint, but lora_rank is 0 (full training); set "
                        "student.lora_rank as it was, or delete the checkpoint to start over",
                        p->checkpoint_path);
    }
    st = us__lm_parse((unsigned char *)data, len, p->checkpoint_path, &t->lm, &t->ts, &has_state,
                      err);
    free(data);
    if (st == US_OK && !has_state)
      st = us_err_set(err, US_ERR_FORMAT,
                      "%s: a model file without a training state cannot be resumed",
                      p->checkpoint_path);
    if (st == US_OK) st = data_stats(t->lm->bpe, ex, n, &t->stats, err);
    if (st != US_OK) return st;
    choose_size(t, &c);
    /* "auto" may have kept the size trial's other size: the checkpoint's sizes say which */
    size_t n_sizes;
    const us__lm_size *sizes = size_table(p, &n_sizes);
    for (size_t i = 0; t->auto_preset && !t->custom && i < n_sizes; i++)
      if (sizes[i].layers == t->lm->config.layers && sizes[i].dim == t->lm->config.dim &&
          sizes[i].heads == t->lm->config.heads)
        t->size = &sizes[i];
    t->resumed = true;
    effective_params(t);
    return US_OK;
  }
  if (p->init) return trainer_pretrained(t, ex, n, err);
  const char **texts = malloc((2 * n + 1) * sizeof *texts);
  if (!texts) return us_err_set(err, US_ERR_NOMEM, "lm: out of memory");
  for (size_t i = 0; i < n; i++) {
    texts[2 * i] = ex[i].prompt;
    texts[2 * i + 1] = ex[i].answer;
  }
  us_bpe *bpe = NULL;
  int vocab = p->vocab_size > 0 ? p->vocab_size : us__lm_auto_vocab(text_bytes(ex, n));
  st = us_bpe_train(texts, 2 * n, vocab, &bpe, err);
  free(texts);
  if (st == US_OK) st = data_stats(bpe, ex, n, &t->stats, err);
  if (st != US_OK) {
    us_bpe_free(bpe);
    return st;
  }
  choose_size(t, &c);
  c.vocab = us_bpe_vocab_size(bpe);
  st = us_lm_new(&c, bpe, p->seed, &t->lm, err);
  if (st != US_OK) return st;
  return fresh_state(t, err);
}

/* The batch and rate of the run, zero optimiser moments, the data order's seed. */
static us_status fresh_state(trainer *t, us_err *err) {
  effective_params(t);
  t->ts.m = calloc(t->lm->n_params, sizeof(float));
  t->ts.v = calloc(t->lm->n_params, sizeof(float));
  if (!t->ts.m || !t->ts.v)
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for the optimiser state");
  t->ts.seed = t->p->seed;
  us_rng_seed(&t->ts.rng, t->p->seed ^ 0xda7aull);
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
  /* the best check's trainable weights: the model's, or the adapters' */
  size_t n_trainable = lo ? lo->n_params : t->lm->n_params;
  if (t->valid.n > 0 && t->ts.best) { /* a resumed run's best weights */
    t->best = t->ts.best;
    t->ts.best = NULL;
  } else if (t->valid.n > 0) {
    t->best = malloc(n_trainable * sizeof(float));
  }
  if (!t->batch.tokens || !t->batch.targets || !t->batch.pos || !t->batch.doc || !t->batch.mask ||
      !t->row || !t->perm || (!lo && !t->grad) || (t->valid.n > 0 && !t->best))
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory for the training buffers");
  if (lo) {
    t->params = lo->block;
    t->grads = lo->grad;
    t->n_train = t->n_decay = lo->n_params;
    if ((st = us__lm_acts_q8(&t->acts, t->lm, err)) != US_OK) return st;
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
  free(t->best);
  free(t->ts.best);
  free(t->ts.m);
  free(t->ts.v);
  corpus_free(&t->data);
  corpus_free(&t->valid);
}

static double clock_now(const trainer *t) {
  return t->p->clock ? t->p->clock(t->p->clock_user) : us_now();
}

/* The clock every decision of the schedule reads. Under MPI it is rank 0's reading on every rank
 * (one small allreduce), so that all ranks plan the same steps, check at the same steps and stop
 * together; a rank that planned alone would wait forever in the gradient allreduce. */
static double shared_clock(const trainer *t) {
  double now = clock_now(t);
  if (us_dist_size() <= 1) return now;
  float x[2] = {0.0f, 0.0f};
  if (us_dist_rank() == 0) {
    double hi = floor(now / 65536.0) * 65536.0; /* exact in a float; the rest to ~4 ms */
    x[0] = (float)hi;
    x[1] = (float)(now - hi);
  }
  us_err e;
  long step = t->ts.step > 0 ? (long)t->ts.step - 1 : -1; /* the step just done, for messages */
  if (us_dist_allreduce_sum(x, 2, step, &e) != US_OK) return now; /* the next one fails too */
  return (double)x[0] + (double)x[1];
}

/* ---- validation and early stopping ---- */

/* Packs validation examples from *at on into up to B rows (in order, each example once); returns
 * the rows filled. */
static int pack_valid(trainer *t, size_t *at) {
  us_bpe_special sp = us_bpe_specials(t->lm->bpe);
  int T = t->T, rows = 0;
  int32_t doc_id = 0;
  /* at most the rows the activations hold (under MPI a rank's shard of B) */
  for (int b = 0; b < t->acts.B && *at < t->valid_use; b++, rows++) {
    int32_t *pos = t->batch.pos + (size_t)b * T, *doc = t->batch.doc + (size_t)b * T;
    float *mask = t->batch.mask + (size_t)b * T;
    for (int j = 0; j <= T; j++) t->row[j] = sp.pad;
    for (int j = 0; j < T; j++) {
      pos[j] = 0;
      doc[j] = -1 - j;
      mask[j] = 0.0f;
    }
    int used = 0;
    while (*at < t->valid_use) {
      size_t e = *at;
      int len = (int)(t->valid.start[e + 1] - t->valid.start[e]);
      if (used + len > T + 1) break;
      memcpy(t->row + used, t->valid.tokens + t->valid.start[e], (size_t)len * sizeof(int32_t));
      for (int j = used; j < used + len && j < T; j++) {
        pos[j] = j - used;
        doc[j] = doc_id;
      }
      for (int j = used + t->valid.sep[e]; j < used + len - 1; j++) mask[j] = 1.0f;
      used += len;
      doc_id++;
      (*at)++;
    }
    memcpy(t->batch.tokens + (size_t)b * T, t->row, (size_t)T * sizeof(int32_t));
    memcpy(t->batch.targets + (size_t)b * T, t->row + 1, (size_t)T * sizeof(int32_t));
  }
  return rows;
}

/* Mean loss over the validation answers' tokens (and EOS), dropout off. */
static double validation_loss(trainer *t) {
  float drop = t->acts.drop_p;
  t->acts.drop_p = 0.0f;
  double sum = 0.0, weight = 0.0;
  size_t at = 0;
  int rows;
  while ((rows = pack_valid(t, &at)) > 0) {
    double w = 0.0;
    for (size_t i = 0; i < (size_t)rows * t->T; i++) w += t->batch.mask[i];
    double loss = us__lm_forward(t->lm, &t->acts, &t->batch, rows, t->T);
    sum += loss * w;
    weight += w;
  }
  t->acts.drop_p = drop;
  return weight > 0 ? sum / weight : NAN;
}

/* With a time budget the checks may take a tenth of it: one validation batch is timed (once, when
 * the schedule is first planned) and as many examples are kept as US_LM_EVALS_PER_RUN checks of
 * that cost allow, at least 32. The loss of every check is over the same examples. */
static void fit_validation_to_budget(trainer *t) {
  if (!t->sched.from_budget || t->valid.n == 0) return;
  float drop = t->acts.drop_p;
  t->acts.drop_p = 0.0f;
  double t0 = shared_clock(t);
  size_t at = 0;
  int rows = pack_valid(t, &at);
  us__lm_forward(t->lm, &t->acts, &t->batch, rows, t->T);
  double dt = shared_clock(t) - t0;
  t->acts.drop_p = drop;
  double per_check = 0.1 * t->sched.budget_sec / US_LM_EVALS_PER_RUN;
  if (!(dt > 0) || at == 0) return;
  double fit = per_check / dt * (double)at;
  size_t use = fit < 32 ? 32 : fit > (double)t->valid.n ? t->valid.n : (size_t)fit;
  t->valid_use = use < t->valid.n ? use : t->valid.n;
}

/* A validation check after step `done`: keeps the best weights; returns -1 when patience has run
 * out, else 0. */
static int validation_check(trainer *t, long done) {
  double t0 = shared_clock(t);
  t->valid_loss = validation_loss(t);
  t->evaluations++;
  int verdict =
      isfinite(t->valid_loss) ? us__lm_early_stop_update(&t->early, t->valid_loss, done) : 0;
  if (verdict == 1) memcpy(t->best, t->params, t->n_train * sizeof(float));
  double now = shared_clock(t);
  us__lm_schedule_after_eval(&t->sched, done, now - t0, now);
  return verdict < 0 ? -1 : 0;
}

/* ---- the run ---- */

static void fill_info(const trainer *t, bool stopped_early, us_lm_train_info *info) {
  memset(info, 0, sizeof *info);
  snprintf(info->preset, sizeof info->preset, "%s", t->custom ? "custom" : t->size->name);
  info->auto_preset = t->auto_preset;
  info->config = t->lm->config;
  info->steps_planned = t->sched.steps;
  info->steps_done = (long)t->ts.step;
  info->steps_from_budget = t->sched.from_budget;
  info->budget_sec = t->sched.from_budget ? t->sched.budget_sec : 0;
  info->tokens_per_sec = t->sched.sec_per_step > 0 ? t->B * t->T / t->sched.sec_per_step : 0;
  info->train_tokens = t->stats.tokens;
  info->evaluations = t->evaluations;
  info->valid_examples = t->best ? t->valid_use : 0;
  info->best_step = t->best ? t->early.best_step : 0;
  info->best_valid_loss = t->best && t->early.best_step > 0 ? t->early.best : NAN;
  info->stopped_early = stopped_early;
  info->trial_run = t->trial_ran;
  for (int k = 0; k < 2 && t->trial.size[0]; k++) {
    snprintf(info->trial_size[k], sizeof info->trial_size[k], "%s", t->trial.size[k]->name);
    info->trial_steps[k] = t->trial_ran ? t->trial_steps[k] : 0;
    info->trial_sec[k] = t->trial_sec[k];
    info->trial_loss[k] = t->trial_ran ? t->trial_loss[k] : NAN;
  }
  info->trial_winner = t->trial_winner;
  snprintf(info->trial_note, sizeof info->trial_note, "%s", t->trial_note);
}

/* One optimiser step on the next batch; the loss in *loss. */
static us_status train_step(trainer *t, long step, double *loss, double *lr, us_err *err) {
  next_batch(t);
  /* dropout masks depend only on the seed and the step, so a resumed run draws the same ones */
  us_rng_seed(&t->acts.drop_rng, t->ts.seed ^ (0xD1B54A32D192ED03ull * ((uint64_t)step + 1)) ^
                                     (0x9E3779B97F4A7C15ull * (uint64_t)us_dist_rank()));
  const us__lm_params *g = t->lm->lora ? NULL : &t->g; /* adapters: the base is frozen */
  bool dist = us_dist_size() > 1;
  if (dist) {
    /* this rank's shard, then one allreduce of the gradient block (student/lm_dist.h) */
    us_status st = us__lm_dist_step(t->lm, &t->acts, &t->batch, t->B, t->T, t->grads, t->n_train, g,
                                    step, loss, err);
    if (st != US_OK) return st;
  } else {
    *loss = us__lm_forward(t->lm, &t->acts, &t->batch, t->B, t->T);
  }
  if (!isfinite(*loss)) return diverged(t, step + 1, "the loss is not a number", err);
  if (!dist) {
    memset(t->grads, 0, t->n_train * sizeof(float));
    us__lm_backward(t->lm, &t->acts, &t->batch, t->B, t->T, g);
  }
  *lr = us__lm_schedule_lr(&t->sched, t->p, step);
  if (!adamw_step(t, *lr)) return diverged(t, step + 1, "the gradient is not a number", err);
  t->ts.step = (uint64_t)step + 1;
  return US_OK;
}

/* Under MPI, every rank must start from the same model, optimiser state, data and position in
 * it: a rank that read another checkpoint or other examples would train something else. */
static us_status same_start(const trainer *t, us_err *err) {
  const us_lm *lm = t->lm;
  uint64_t h = us_hash64(lm->block, lm->n_params * sizeof(float), lm->n_params);
  h = us_hash64(&lm->base_hash, sizeof lm->base_hash, h);
  if (lm->lora) h = us_hash64(lm->lora->block, lm->lora->n_params * sizeof(float), h);
  h = us_hash64(t->ts.m, t->n_train * sizeof(float), h);
  uint64_t where[3] = {t->ts.step, t->ts.epoch, t->ts.cursor};
  h = us_hash64(where, sizeof where, h);
  h = us_hash64(t->data.tokens, t->data.start[t->data.n] * sizeof(int32_t), h);
  h = us_hash64(t->data.start, (t->data.n + 1) * sizeof(size_t), h);
  return us_dist_same_u64(h, "the model, the checkpoint or the training examples", err);
}

/* An adapter run with resume set continues from its checkpoint when one exists: adapters,
 * moments, step and data position, schedule, and the best check (student/lm_lora.c refuses one
 * written against another base). */
static us_status resume_adapters(trainer *t, us_err *err) {
  const us_lm_train_params *p = t->p;
  if (!t->lm->lora || !p->resume || !p->checkpoint_path) return US_OK;
  FILE *f = fopen(p->checkpoint_path, "rb");
  if (!f) return US_OK; /* nothing to resume: a fresh run */
  fclose(f);
  char *data = NULL;
  size_t len = 0;
  us_status st = us_read_file(p->checkpoint_path, 0, &data, &len, err);
  if (st != US_OK) return st;
  const unsigned char *d = (const unsigned char *)data;
  us__lm_lora_ckpt ck;
  memset(&ck, 0, sizeof ck);
  if (len >= 4 && memcmp(d, "USLM", 4) == 0)
    st = us_err_set(err, US_ERR_CONFIG,
                    "%s: a full fine-tuning checkpoint, but lora_rank is %d; set "
                    "student.lora_rank to 0 as it was, or delete the checkpoint to start over",
                    p->checkpoint_path, p->lora_rank);
  else
    st = us__lm_lora_parse(d, len, p->checkpoint_path, t->lm, p->init, &t->ts, &ck, err);
  free(data);
  if (st != US_OK) return st;
  t->early.best = ck.best_loss;
  t->early.best_step = (long)ck.best_step;
  t->early.bad = (int)ck.bad;
  t->evaluations = (int)ck.evaluations;
  if (t->best && ck.best_out) memcpy(t->best, ck.best_out, t->n_train * sizeof(float));
  free(ck.best_out);
  return US_OK;
}

/* ---- data and buffers ---- */

/* Tokenises the training and validation examples and allocates the step's buffers. */
static us_status trainer_data(trainer *t, const us_lm_example *ex, size_t n, us_err *err) {
  const us_lm_train_params *p = t->caller;
  int T = t->lm->config.context;
  us_status st = corpus_build(t->lm->bpe, ex, n, T, &t->data, err);
  size_t n_valid = p->valid ? (p->n_valid < US_LM_VALID_MAX ? p->n_valid : US_LM_VALID_MAX) : 0;
  if (st == US_OK && n_valid > 0)
    st = corpus_build(t->lm->bpe, p->valid, n_valid, T, &t->valid, err);
  t->valid_use = t->valid.n;
  if (st == US_OK) st = trainer_alloc(t, err);
  return st;
}

/* ---- the size trial ("auto" with a time budget; us__lm_trial_plan in lm_int.h) ---- */

/* A trainer for the neighbouring size: a copy of the tokeniser, the same context, data and
 * validation examples, fresh weights from the same seed. */
static us_status trainer_neighbour(trainer *u, const trainer *t, const us__lm_size *size,
                                   const us_lm_example *ex, size_t n, us_err *err) {
  memset(u, 0, sizeof *u);
  u->p = u->caller = t->caller;
  u->size = size;
  u->auto_preset = true;
  u->stats = t->stats;
  u->valid_loss = NAN;
  us_lm_config c = t->lm->config;
  c.layers = size->layers;
  c.dim = size->dim;
  c.heads = size->heads;
  c.hidden = us_lm_config_hidden(c.dim);
  us_buf b;
  us_buf_init(&b, 0);
  us_bpe *bpe = NULL;
  size_t used = 0;
  us_status st = us_bpe_serialize(t->lm->bpe, &b, err);
  if (st == US_OK) st = us_bpe_deserialize((const unsigned char *)b.data, b.len, &used, &bpe, err);
  us_buf_free(&b);
  if (st == US_OK) st = us_lm_new(&c, bpe, t->caller->seed, &u->lm, err);
  if (st == US_OK) st = fresh_state(u, err);
  if (st == US_OK) st = trainer_data(u, ex, n, err);
  return st;
}

/* A progress call for a trial step (which: 1 or 2) or a note; non-zero: stop. */
static int trial_progress(const trainer *t, int which, long step, long steps, double loss,
                          double lr, const char *note) {
  const us_lm_train_params *p = t->p;
  if (!p->progress) return 0;
  us_lm_progress pr;
  memset(&pr, 0, sizeof pr);
  pr.step = step;
  pr.steps = steps;
  pr.loss = loss;
  pr.lr = lr;
  pr.n_params = t->lm->n_params;
  pr.preset = t->size->name;
  pr.auto_preset = true;
  pr.budget_sec = p->train_minutes * 60.0;
  pr.valid_loss = t->valid_loss;
  pr.trial = which;
  pr.note = note;
  return p->progress(&pr, p->progress_user);
}

/* Trains t for `steps` steps (warmup, then the peak rate: the winner's cosine is planned after),
 * or until cap_sec of wall time have passed (a machine much slower than the table's rates), then
 * scores the validation examples; *done the steps run, *sec their wall time. */
static us_status run_trial(trainer *t, int which, long steps, long warmup, double cap_sec,
                           long *done, double *sec, us_err *err) {
  memset(&t->sched, 0, sizeof t->sched);
  t->sched.steps = t->sched.decay_from = steps;
  t->sched.warmup = warmup;
  t->sched.planned = t->sched.fixed = true;
  shuffle_epoch(t);
  double t0 = shared_clock(t), now = t0;
  long step = 0;
  for (; step < steps && now - t0 < cap_sec; step++) {
    double loss = 0, lr = 0;
    us_status st = train_step(t, step, &loss, &lr, err);
    if (st != US_OK) return st;
    if (trial_progress(t, which, step + 1, steps, loss, lr, NULL) != 0)
      return us_err_set(err, US_ERR_INTERRUPTED,
                        "lm: training stopped at step %ld of %ld of the size trial of %s", step + 1,
                        steps, t->size->name);
    now = shared_clock(t);
  }
  *done = step;
  *sec = now - t0;
  t->valid_loss = validation_loss(t);
  return US_OK;
}

/* The validation examples both trials score: as many as US_LM_TRIAL_EVAL_SHARE of a trial
 * allows at the table's rate (at least 32), the same for both sizes and on any load. */
static size_t trial_valid_use(const trainer *t) {
  double mean = (double)t->valid.start[t->valid.n] / (double)t->valid.n;
  double fit = mean > 0 ? t->trial.eval_tokens / mean : (double)t->valid.n;
  size_t use = fit < 32 ? 32 : fit > (double)t->valid.n ? t->valid.n : (size_t)fit;
  return use < t->valid.n ? use : t->valid.n;
}

static void describe_trial(const trainer *t, int k, long steps, double sec, double loss, char *out,
                           size_t cap) {
  snprintf(out, cap,
           "size trial %d/2: %s (%d layers, dim %d, %zu parameters): %ld steps in %.1f s, "
           "validation loss %.4f on %zu examples",
           k + 1, t->size->name, t->lm->config.layers, t->lm->config.dim, t->lm->n_params, steps,
           sec, loss, t->valid_use);
}

/* Trains the table's pick (t) and its neighbour for the same share of the budget, keeps the one
 * with the lower validation loss in t (weights, optimiser state, data position) and frees the
 * other. */
static us_status size_trial(trainer *t, const us_lm_example *ex, size_t n, us_err *err) {
  us__lm_trial_plan plan = t->trial;
  trainer u;
  us_status st = trainer_neighbour(&u, t, plan.size[1], ex, n, err);
  double sec[2] = {0, 0}, loss[2] = {NAN, NAN};
  long done[2] = {0, 0};
  trainer *side[2] = {t, &u};
  if (st == US_OK) t->valid_use = u.valid_use = trial_valid_use(t);
  for (int k = 0; k < 2 && st == US_OK; k++) {
    st = run_trial(side[k], k + 1, plan.steps[k], plan.warmup[k], US_LM_TRIAL_CAP * plan.seconds,
                   &done[k], &sec[k], err);
    if (st != US_OK) break;
    loss[k] = side[k]->valid_loss;
    describe_trial(side[k], k, done[k], sec[k], loss[k], t->note, sizeof t->note);
    if (trial_progress(side[k], k + 1, done[k], plan.steps[k], 0, 0, t->note) != 0)
      st = us_err_set(err, US_ERR_INTERRUPTED, "lm: training stopped after the size trial of %s",
                      side[k]->size->name);
  }
  t->note[0] = '\0';
  if (st == US_OK) {
    int w = loss[1] < loss[0] ? 1 : 0; /* a tie, or a NaN, keeps the table's pick */
    char note[160];
    snprintf(note, sizeof note, "kept %s by validation loss (%.4f against %.4f for %s)",
             plan.size[w]->name, loss[w], loss[1 - w], plan.size[1 - w]->name);
    if (w == 1) { /* the neighbour continues; the pick is freed */
      trainer keep = u;
      u = *t;
      *t = keep;
      t->p = &t->eff;
      u.p = &u.eff;
    }
    t->trial = plan;
    t->trial_ran = true;
    t->trial_winner = w;
    for (int k = 0; k < 2; k++) {
      t->trial_steps[k] = done[k];
      t->trial_sec[k] = sec[k];
      t->trial_loss[k] = loss[k];
    }
    snprintf(t->trial_note, sizeof t->trial_note, "%s", note);
    snprintf(t->note, sizeof t->note, "size trial: %s; it trains on for the rest of the budget",
             note);
  }
  us_lm_free(u.lm);
  trainer_free(&u);
  return st;
}

/* Runs the size trial when "auto" follows a time budget; otherwise, or when the budget is too
 * small, leaves the table's pick and a note saying why. */
static us_status maybe_trial(trainer *t, const us_lm_example *ex, size_t n, us_err *err) {
  const us_lm_train_params *p = t->p;
  if (!t->auto_preset || t->custom || t->resumed || p->init || p->steps > 0) return US_OK;
  size_t n_sizes;
  const us__lm_size *sizes = size_table(p, &n_sizes);
  us__lm_trial_plan_make(sizes, n_sizes, t->size, t->lm->config.context, p->train_minutes * 60.0,
                         p->threads, p->warmup_steps, &t->trial);
  const us__lm_trial_plan *pl = &t->trial;
  char why[128] = "";
  if (!pl->size[0])
    snprintf(why, sizeof why, "the table has one size");
  else if (t->valid.n == 0)
    snprintf(why, sizeof why, "no validation examples");
  else if (us_dist_size() > 1)
    snprintf(why, sizeof why, "not under mpirun");
  else if (!pl->run)
    snprintf(why, sizeof why,
             "the budget is too small (%.1f s each buys %s %ld and %s %ld steps; %d needed)",
             pl->seconds, pl->size[0]->name, pl->steps[0], pl->size[1]->name, pl->steps[1],
             US_LM_TRIAL_MIN_STEPS);
  if (!why[0]) return size_trial(t, ex, n, err);
  snprintf(t->trial_note, sizeof t->trial_note, "size trial skipped: %s; %s from the table", why,
           t->size->name);
  snprintf(t->note, sizeof t->note, "%s", t->trial_note);
  return US_OK;
}

/* The trial's winner goes on: its warmup is done, the cosine starts at its last step, and its
 * trial check is the first of the run's early stopping (on the same examples). */
static void continue_winner(trainer *t) {
  t->sched.warmup = t->trial.warmup[t->trial_winner];
  t->sched.decay_from = (long)t->ts.step;
  t->evaluations = 1;
  if (isfinite(t->valid_loss) &&
      us__lm_early_stop_update(&t->early, t->valid_loss, (long)t->ts.step) == 1)
    memcpy(t->best, t->params, t->n_train * sizeof(float));
}

/* A resumed run takes up early stopping where the checkpoint left it. */
static void restore_early_stop(trainer *t) {
  if (!t->best || !t->ts.has_best) return;
  t->early.best = t->ts.best_loss;
  t->early.best_step = (long)t->ts.best_step;
  t->early.bad = (int)t->ts.bad;
  t->evaluations = (int)t->ts.evaluations;
  if (t->ts.valid_use > 0 && t->ts.valid_use < t->valid.n) t->valid_use = (size_t)t->ts.valid_use;
  if (t->ts.eval_every > 0 && t->sched.validation) t->sched.eval_every = (long)t->ts.eval_every;
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
  t.p = t.caller = p;
  t.valid_loss = NAN;
  double start = shared_clock(&t);
  us_blas_set_threads(p->threads > 0 ? p->threads : 1);
  us_status st = trainer_model(&t, examples, n, err);
  if (st == US_OK) st = trainer_data(&t, examples, n, err);
  if (st == US_OK) st = maybe_trial(&t, examples, n, err);
  if (st != US_OK) goto fail;
  p = t.p; /* the preset's batch and rate filled in (the trial's winner's) */
  us__lm_early_stop_init(&t.early, p->patience);
  if ((st = resume_adapters(&t, err)) != US_OK) goto fail;
  us__lm_schedule_init(&t.sched, p, start, (long)t.ts.planned, (long)t.ts.warmup, t.valid.n > 0);
  if (t.trial_ran)
    continue_winner(&t);
  else
    restore_early_stop(&t);
  shuffle_epoch(&t);
  if (us_dist_size() > 1 && (st = same_start(&t, err)) != US_OK) goto fail;
  double t0 = clock_now(&t);
  long first = (long)t.ts.step;
  bool stopped_early = false;
  for (long step = first; step < t.sched.steps; step++) {
    double loss = 0, lr = 0;
    if ((st = train_step(&t, step, &loss, &lr, err)) != US_OK) goto fail;
    if (p->losses && p->steps > 0 && step < p->steps) p->losses[step] = (float)loss;
    double now = shared_clock(&t);
    bool planned_now = us__lm_schedule_after_step(&t.sched, step + 1, now);
    if (planned_now && t.tokens_per_sec == 0) {
      t.tokens_per_sec = t.B * t.T / t.sched.sec_per_step;
      if (!t.trial_ran) fit_validation_to_budget(&t); /* a trial fixed the examples */
    }
    if (t.sched.from_budget && t.sched.planned) {
      t.ts.planned = (uint64_t)t.sched.steps;
      t.ts.warmup = (uint64_t)t.sched.warmup;
    }
    bool validated_now = us__lm_schedule_eval_due(&t.sched, step + 1);
    if (validated_now && validation_check(&t, step + 1) < 0) stopped_early = true;
    if (p->checkpoint_every > 0 && p->checkpoint_path &&
        t.ts.step % (uint64_t)p->checkpoint_every == 0 &&
        ((st = check_weights(&t, t.params, t.n_train, step + 1, err)) != US_OK ||
         (st = save_checkpoint(&t, err)) != US_OK))
      goto fail;
    if (p->progress) {
      double dt = clock_now(&t) - t0, done = (double)(step + 1 - first);
      /* before the first plan: no total yet, and the budget's end is the estimate */
      double eta = t.sched.planned
                       ? (done > 0 ? dt / done * (double)(t.sched.steps - step - 1) : 0.0)
                       : t.sched.budget_sec - (clock_now(&t) - t.sched.start);
      us_lm_progress pr = {step + 1,
                           t.sched.planned ? t.sched.steps : 0,
                           loss,
                           lr,
                           dt > 0 ? done * t.B * t.T / dt : 0.0,
                           eta > 0 ? eta : 0.0,
                           us_lm_param_count(&t.lm->config),
                           t.custom ? "custom" : t.size->name,
                           t.auto_preset,
                           t.sched.from_budget ? t.sched.budget_sec : 0,
                           planned_now,
                           validated_now,
                           t.valid_loss,
                           t.early.best_step,
                           0,
                           t.note[0] ? t.note : NULL};
      int stop = p->progress(&pr, p->progress_user);
      t.note[0] = '\0';
      if (stop != 0) {
        st = us_err_set(err, US_ERR_INTERRUPTED, "lm: training stopped at step %ld of %ld",
                        step + 1, t.sched.steps);
        goto fail;
      }
    }
    if (stopped_early) break;
  }
  /* deliver the best check's weights (the last check may be it) */
  if (t.best && t.early.best_step > 0 && t.early.best_step != (long)t.ts.step)
    memcpy(t.params, t.best, t.n_train * sizeof(float));
  /* the adapters become part of the returned weights (a Q8_0 base becomes float), after the
   * activations are gone so that the float copy does not add to their peak */
  us__lm_acts_free(&t.acts);
  if ((st = us__lm_lora_merge(t.lm, err)) != US_OK) goto fail;
  if ((st = check_weights(&t, t.lm->block, t.lm->n_params, (long)t.ts.step, err)) != US_OK)
    goto fail;
  if (p->info) fill_info(&t, stopped_early, p->info);
  *out = t.lm;
  t.lm = NULL;
fail:
  us_lm_free(t.lm);
  trainer_free(&t);
  return st;
}
