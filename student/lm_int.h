/* Internals of the language model shared by its files and its tests: the parameter layout, the
 * activations of one (B, T) step, and each layer's forward and backward pass. */
#ifndef US_STUDENT_LM_INT_H
#define US_STUDENT_LM_INT_H

#include "core/rng.h"
#include "student/lm.h"

/* Defaults of us_lm_config's rope_base and norm_eps (a 0 there means these). */
#define US_LM_NORM_EPS 1e-5f
#define US_LM_ROPE_BASE 10000.0

/* The largest sizes the model supports: us_lm_config_check (every model, trained or loaded)
 * and the training table (us_lm_train_param_table) both read these. Vocabulary limits are
 * US_BPE_MIN_VOCAB / US_BPE_MAX_VOCAB. */
#define US_LM_MAX_LAYERS 64
#define US_LM_MAX_DIM 8192
#define US_LM_MAX_CONTEXT 8192
#define US_LM_MAX_HIDDEN 65536

/* Named views into one parameter block (gradients and AdamW moments use the same layout).
 * Norm weights come last so weight decay is one range [0, n_decay). Ckv = heads_kv * head size
 * (C without grouped-query attention); QKV = C + 2 Ckv. */
typedef struct us__lm_params {
  float *wte;  /* (V, C) token embeddings */
  float *wout; /* (V, C) output layer when untied; else the same pointer as wte (0 entries) */
  float *wqkv; /* (L, QKV, C) query (C rows), key (Ckv), value (Ckv) projections */
  float *wo;   /* (L, C, C) attention output projection */
  float *w13;  /* (L, 2F, C) SwiGLU gate (rows 0..F) and up (rows F..2F) projections */
  float *w2;   /* (L, C, F) SwiGLU down projection */
  float *ln1;  /* (L, C) RMSNorm weights before attention */
  float *ln2;  /* (L, C) RMSNorm weights before the feed-forward */
  float *lnf;  /* (C) final RMSNorm weights */
} us__lm_params;

#define US_LM_N_TENSORS 9
/* Sizes of the nine tensors above in order (wout 0 when tied); returns their sum. */
size_t us__lm_param_sizes(const us_lm_config *c, size_t sizes[US_LM_N_TENSORS]);
/* The config's effective values (its 0 fields mean the defaults). */
int us__lm_heads_kv(const us_lm_config *c);
double us__lm_rope_base(const us_lm_config *c);
float us__lm_norm_eps(const us_lm_config *c);
/* Width of one row of queries, keys and values: C + 2 Ckv. */
int us__lm_qkv_width(const us_lm_config *c);
/* Number of parameters that receive weight decay (the matrices, which come first). */
size_t us__lm_decay_count(const us_lm_config *c);
void us__lm_params_point(float *block, const us_lm_config *c, us__lm_params *p);

/* Low-rank adapters (LoRA) on the four projections of every layer: W x + scale B (A x), with
 * A (rank, in) and B (out, rank), scale = alpha / rank. One adapter per fused matrix, so the
 * query, key and value projections share A (and so do gate and up). While a model carries
 * adapters, its base weights are frozen: us__lm_backward is then called with NULL base gradients
 * and adds into lora->grad only. */
enum { US_LM_LORA_QKV, US_LM_LORA_O, US_LM_LORA_13, US_LM_LORA_2, US_LM_LORA_KINDS };

typedef struct us__lm_lora {
  int rank, layers;
  float scale;
  int in[US_LM_LORA_KINDS], out[US_LM_LORA_KINDS];
  size_t n_params;
  float *block; /* (n_params): for each kind, A (L, rank, in) then B (L, out, rank) */
  float *grad;  /* (n_params) same layout */
  float *a[US_LM_LORA_KINDS], *b[US_LM_LORA_KINDS], *ga[US_LM_LORA_KINDS], *gb[US_LM_LORA_KINDS];
} us__lm_lora;

/* Frozen projections kept in GGUF's Q8_0 blocks (student/lm_q8.c) while adapters train on a
 * quantised base: per kind, the layers' (out, in) matrices one after the other, each row in / 32
 * blocks of 34 bytes (f16 scale d, 32 int8 q; value d * q), the bytes the file holds. */
#define US_LM_Q8_BLOCK 32
#define US_LM_Q8_BLOCK_BYTES 34
typedef struct us__lm_q8 {
  unsigned char *w[US_LM_LORA_KINDS]; /* (L, out, in / 32 * 34) */
  int in[US_LM_LORA_KINDS], out[US_LM_LORA_KINDS];
  size_t row_bytes[US_LM_LORA_KINDS]; /* in / 32 * 34 */
  int chunk_rows[US_LM_LORA_KINDS];   /* rows dequantised at once into the scratch */
  size_t scratch_floats;              /* the scratch each activation set needs */
} us__lm_q8;

struct us_lm {
  us_lm_config config;
  us_bpe *bpe;
  size_t n_params;
  float *block; /* (n_params) */
  us__lm_params w;
  us__lm_lora *lora; /* NULL unless fine-tuning with adapters (student/lm_lora.c) */
  /* NULL, or the four projections in Q8_0: then w.wqkv, wo, w13 and w2 are NULL and block holds
   * the other tensors only (n_params counts those); us__lm_q8_expand makes it an ordinary model */
  us__lm_q8 *q8;
  /* Imported models: the GGUF's size and a 64-bit FNV-1a hash of its tensors (names, types,
   * shapes and data), which identify the base a LoRA checkpoint adapts; 0 otherwise. */
  uint64_t base_bytes, base_hash;
};

/* One packed batch: B rows of T input positions. */
typedef struct us__lm_batch {
  int32_t *tokens;  /* (B, T) input tokens */
  int32_t *targets; /* (B, T) next tokens */
  float *mask;      /* (B, T) 1 where the target is an answer token, else 0 */
  int32_t *pos;     /* (B, T) rotary position within the document */
  int32_t *doc;     /* (B, T) document id: attention only within one document */
} us__lm_batch;

/* Activations and backward scratch for up to (B, T), allocated once. */
typedef struct us__lm_acts {
  int B, T;
  float *block;
  float *rope_cos, *rope_sin; /* (T, hd/2) */
  float *x;                   /* (L+1, B*T, C) residual stream entering each block, then the last */
  float *ln1;                 /* (L, B*T, C) */
  float *rstd1;               /* (L, B*T) */
  float *qkv;                 /* (L, B*T, QKV) queries and keys after rotary */
  float *att;                 /* (L, B, NH, T, T) attention probabilities */
  float *atty;                /* (L, B*T, C) attention output before the projection */
  float *xmid;                /* (L, B*T, C) residual after attention */
  float *ln2;                 /* (L, B*T, C) */
  float *rstd2;               /* (L, B*T) */
  float *h13;                 /* (L, B*T, 2F) gate and up pre-activations */
  float *hact;                /* (L, B*T, F) silu(gate) * up */
  float *lnf;                 /* (B*T, C) */
  float *rstdf;               /* (B*T) */
  float *logits;              /* (B*T, V) logits; probabilities then dlogits after the loss */
  float *dx;                  /* (B*T, C) backward scratch from here on */
  float *dxmid;               /* (B*T, C) */
  float *dln;                 /* (B*T, C) */
  float *datty;               /* (B*T, C) */
  float *dqkv;                /* (B*T, QKV) */
  float *dh13;                /* (B*T, 2F) */
  float *dhact;               /* (B*T, F) */
  float *dscore;              /* (T, T) */
  /* Dropout, training only (inverted: kept units scaled by 1 / (1 - p), so inference needs no
   * change). With drop_p > 0 each forward draws fresh masks from drop_rng for the token
   * embeddings, the input of each attention output projection and of each SwiGLU down
   * projection, and the backward reuses them. Allocated by us__lm_acts_dropout; NULL otherwise. */
  float drop_p;
  us_rng drop_rng;
  float *drop_emb; /* (B*T, C) */
  float *drop_att; /* (L, B*T, C) 0 or 1 / (1 - p) */
  float *drop_ffn; /* (L, B*T, F) */
  /* LoRA, when the model carries adapters: us__lm_acts_lora allocates them, NULL otherwise. */
  float *lora_u;  /* (L, KINDS, B*T, rank) x A^T of each adapted projection */
  float *lora_du; /* (B*T, rank) backward scratch */
  /* A Q8_0 base (lm->q8): rows of a projection dequantised here before each product;
   * us__lm_acts_q8 allocates it once, NULL otherwise. */
  float *wq8; /* (q8->scratch_floats) */
} us__lm_acts;

us_status us__lm_acts_new(const us_lm_config *c, int B, int T, us__lm_acts *a, us_err *err);
void us__lm_acts_free(us__lm_acts *a);
/* Turns dropout on with probability p in [0, 1) (0: off) for activations made by acts_new. */
us_status us__lm_acts_dropout(us__lm_acts *a, const us_lm_config *c, float p, us_err *err);
/* x *= mask, with a fresh mask of n entries: each 0 with probability p, else 1 / (1 - p). */
void us__lm_dropout_forward(float *x, float *mask, size_t n, float p, us_rng *r);

/* Creates adapters of rank r and scale alpha / r for lm (A uniform in +-1/sqrt(in) from rng, B
 * zero, so the model's outputs are unchanged until the first step). */
us_status us__lm_lora_new(us_lm *lm, int rank, double alpha, us_rng *rng, us_err *err);
/* Folds the adapters into the base weights (W += scale B A) and frees them; a Q8_0 base is
 * made float first (us__lm_q8_expand: fails only out of memory). */
us_status us__lm_lora_merge(us_lm *lm, us_err *err);
void us__lm_lora_free(us__lm_lora *lo);
us_status us__lm_acts_lora(us__lm_acts *a, const us__lm_lora *lo, int layers, us_err *err);
/* y (N, out) += scale (x A_l^T) B_l^T, keeping x A_l^T for the backward. */
void us__lm_lora_forward(const us__lm_lora *lo, us__lm_acts *a, int l, int kind, const float *x,
                         int N, float *y);
/* Given dy (N, out) and the forward's x (N, in): adds into the adapters' gradients, and
 * dx (N, in) += scale dy B_l A_l. */
void us__lm_lora_backward(const us__lm_lora *lo, us__lm_acts *a, int l, int kind, const float *dy,
                          const float *x, int N, float *dx);

/* ---- a Q8_0 base (student/lm_q8.c) ---- */

/* us_lm_import_gguf, keeping the projections in Q8_0 (lm->q8) when keep_q8 is set and all of
 * them are Q8_0 in the file (LoRA: the base is frozen); else every tensor becomes float. */
us_status us__lm_import(const char *path, int context, bool keep_q8, us_lm **out, us_err *err);

/* A model for the importer with the projections in Q8_0: block holds every other tensor (sizes of
 * us__lm_param_sizes with the four projections at 0), q8 the projections' bytes (uninitialised,
 * the importer copies the file's rows in). Takes bpe as us_lm_new does. */
us_status us__lm_new_q8(const us_lm_config *c, us_bpe *bpe, us_lm **out, us_err *err);
void us__lm_q8_free(us__lm_q8 *q);
/* Turns a Q8_0-base model into an ordinary one: the whole float block, the projections
 * dequantised in place of their Q8_0 bytes (freed). No-op without q8. */
us_status us__lm_q8_expand(us_lm *lm, us_err *err);
/* The dequantisation scratch of a Q8_0-base model (no-op otherwise), allocated once. */
us_status us__lm_acts_q8(us__lm_acts *a, const us_lm *lm, us_err *err);
/* Rows [r0, r1) of the projection kind of layer l as floats into dst ((r1 - r0), in). */
void us__lm_q8_rows(const us__lm_q8 *q, int kind, int l, int r0, int r1, float *dst);
/* The projections, float or Q8_0 alike: y (N, out) = x (N, in) W_l^T + beta y, and
 * dx (N, in) = dy (N, out) W_l (overwrites). */
void us__lm_proj_forward(const us_lm *lm, us__lm_acts *a, int kind, int l, const float *x, int N,
                         float beta, float *y);
void us__lm_proj_backward(const us_lm *lm, us__lm_acts *a, int kind, int l, const float *dy, int N,
                          float *dx);

/* Layers. N = rows; forward writes its outputs, backward ADDS into dx/dw where noted. */
void us__lm_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C,
                            float eps);
/* dx += , dw += (dw may be NULL: frozen weights) */
void us__lm_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x,
                             const float *w, const float *rstd, int N, int C);
/* Rotates each adjacent pair (2i, 2i+1) of every query head (NH of them) and key head (NKV) of
 * qkv (N, C + 2 NKV hd) by pos * base^(-2i/hd), llama.cpp's LLAMA_ROPE_TYPE_NORM; sign -1
 * applies the inverse (the backward pass of the rotation). */
void us__lm_rope(float *qkv, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                 int C, int NH, int NKV, int sign);
void us__lm_rope_table(float *cos_t, float *sin_t, int T, int hd, double base);
/* Causal attention within documents, query head h reading key/value head h / (NH / NKV):
 * att (B, NH, T, T), out (B*T, C). */
void us__lm_attention_forward(float *out, float *att, const float *qkv, const int32_t *doc, int B,
                              int T, int C, int NH, int NKV);
/* Writes dqkv (B*T, C + 2 NKV hd) (overwrites); dscore is (T, T) scratch. */
void us__lm_attention_backward(float *dqkv, float *dscore, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int NH, int NKV);
void us__lm_swiglu_forward(float *hact, const float *h13, int N, int F);
/* Writes dh13 (overwrites). */
void us__lm_swiglu_backward(float *dh13, const float *dhact, const float *h13, int N, int F);
/* Turns logits (N, V) into probabilities and returns the masked mean cross-entropy. */
double us__lm_crossentropy_forward(float *logits, const int32_t *targets, const float *mask, int N,
                                   int V);
/* Turns probabilities into dloss/dlogits in place. */
void us__lm_crossentropy_backward(float *probs, const int32_t *targets, const float *mask, int N,
                                  int V);

/* Lays out one example as the tokeniser's chat format (us_bpe_chat_format): head, the prompt's
 * last tokens, mid, then (answer non-NULL) the answer's first tokens and the end token, cut to at
 * most T + 1 tokens keeping at least one answer slot. seq holds T + 1 entries. Returns the
 * length; *answer_from (may be NULL) receives the position whose target is the first answer
 * token (the last of mid). Without an answer the sequence leaves room for one new token. */
int us__lm_format(const us_bpe *bpe, const int32_t *prompt, int np, const int32_t *answer, int na,
                  int T, int32_t *seq, int *answer_from);

/* Whole model on a batch of (B, T) with B <= a->B, T <= a->T; returns the loss when
 * batch->targets is non-NULL (else 0, logits left in a->logits). */
double us__lm_forward(const us_lm *lm, us__lm_acts *a, const us__lm_batch *batch, int B, int T);
/* Adds the gradients of the loss of the last forward into grads (same layout as lm->w). */
void us__lm_backward(const us_lm *lm, us__lm_acts *a, const us__lm_batch *batch, int B, int T,
                     const us__lm_params *grads);

/* Fresh weights: N(0, 0.02) matrices, output projections scaled by 1/sqrt(2L), norms 1. */
void us__lm_init_weights(us_lm *lm, us_rng *rng);

/* Serialised model without touching the disk (used by us_lm_save and checkpoints). The
 * training state, when non-NULL, is appended. */
typedef struct us__lm_train_state {
  uint64_t step, epoch, cursor, seed;
  us_rng rng;
  float *m, *v;             /* (n_params) AdamW moments */
  uint64_t planned, warmup; /* the schedule a resumed run keeps; planned 0: not stored */
  /* Early stopping (file flag bit 2), so that a resumed run delivers what one run would: the
   * best check's loss, step and weights, the checks since it, the checks run, the validation
   * examples each covers and the steps between checks. has_best false: nothing stored. */
  bool has_best;
  double best_loss;
  uint64_t best_step, bad, evaluations, valid_use, eval_every;
  float *best; /* (n_params) the best check's weights; allocated by us__lm_parse */
} us__lm_train_state;

us_status us__lm_serialize(const us_lm *lm, const us__lm_train_state *ts, us_buf *out, us_err *err);
/* Parses data (len bytes, named path in messages). When ts is non-NULL and the file holds a
 * training state, fills it, allocating ts->m, ts->v and (with an early-stopping record)
 * ts->best (caller frees), and sets *has_state. */
us_status us__lm_parse(const unsigned char *data, size_t len, const char *path, us_lm **out,
                       us__lm_train_state *ts, bool *has_state, us_err *err);

/* ---- LoRA checkpoints (student/lm_lora.c; layout documented there) ---- */

/* What a LoRA checkpoint holds besides the adapters and us__lm_train_state: the base it adapts
 * (never the base itself) and the best validation check so far. */
typedef struct us__lm_lora_ckpt {
  char base_path[1024];           /* student.init when written (for messages) */
  uint64_t base_bytes, base_hash; /* us_lm's, of the base the adapters were trained on */
  double best_loss;               /* early stopping's state (us__lm_early_stop) */
  uint64_t best_step, bad, evaluations;
  const float *best; /* serialise: (n_params) adapters of the best check, or NULL */
  float *best_out;   /* parse: malloc'd copy when the file holds them (caller frees), else NULL */
} us__lm_lora_ckpt;

/* Serialises lm->lora, the training state (ts->m, ts->v over the adapters) and ck. */
us_status us__lm_lora_serialize(const us_lm *lm, const us__lm_train_state *ts,
                                const us__lm_lora_ckpt *ck, us_buf *out, us_err *err);
/* Reads a LoRA checkpoint (path in messages) into lm->lora (same rank, scale and shapes, else
 * US_ERR_CONFIG naming what differs), ts (allocating ts->m, ts->v; frees what they held) and ck.
 * A base other than lm's (size or hash) is refused naming both files. */
us_status us__lm_lora_parse(const unsigned char *d, size_t len, const char *path, us_lm *lm,
                            const char *init_path, us__lm_train_state *ts, us__lm_lora_ckpt *ck,
                            us_err *err);
/* True when the bytes start as a LoRA checkpoint. */
bool us__lm_is_lora_checkpoint(const unsigned char *d, size_t len);

/* ---- sizes, time budget and early stopping (student/lm_budget.c) ---- */

/* One size the presets and "auto" choose from (docs/lm.md has the measured table). */
typedef struct us__lm_size {
  const char *name;
  int layers, dim, heads, context; /* context: the named preset's; "auto" fits it to the data */
  int tokens_per_step;             /* batch rows * context */
  double lr;                       /* peak learning rate */
  double tokens_per_cpu_sec;       /* training throughput per core, measured (docs/lm.md) */
} us__lm_size;

/* The sizes, smallest first; n receives the count. */
const us__lm_size *us__lm_sizes(size_t *n);
/* The named size, or NULL ("auto", NULL and unknown names). */
const us__lm_size *us__lm_size_named(const char *name);

/* What "auto" looks at: the examples after tokenising. */
typedef struct us__lm_data_stats {
  double tokens; /* all examples' tokens (BOS prompt SEP answer EOS) */
  int longest;   /* the longest example's tokens */
  size_t n;      /* examples */
} us__lm_data_stats;

/* The tokeniser size for text_bytes bytes of prompts and answers: 1024 below 4 MB, 2048 below
 * 32 MB, else 4096. */
int us__lm_auto_vocab(double text_bytes);
/* The context for "auto": the longest example rounded up to a multiple of 64, at most 512. */
int us__lm_auto_context(int longest);
/* The "auto" size: the largest whose budgeted tokens (tokens_per_cpu_sec * threads (at most 2)
 * * budget_sec) give at least US_LM_AUTO_MIN_EPOCHS passes over the data, else the smallest.
 * With a budget of 0 (steps given) it asks the same of the given steps. */
#define US_LM_AUTO_MIN_EPOCHS 30.0
const us__lm_size *us__lm_auto_size(const us__lm_data_stats *d, double budget_sec, long steps,
                                    int threads);
/* The same over another table (sizes[0..n), smallest first; tests inject tiny ones). */
const us__lm_size *us__lm_auto_size_from(const us__lm_size *sizes, size_t n,
                                         const us__lm_data_stats *d, double budget_sec, long steps,
                                         int threads);

/* The size trial of "auto" with a time budget: the table's pick and its neighbour (the next
 * larger, or the next smaller when the pick is the largest) each train for the same share of
 * the budget's wall time, warmup then the peak rate, and the lower validation loss wins; the
 * winner continues with a cosine planned over the time left. The trial steps follow the table's
 * measured rates, not the clock, so the choice is the same on any machine at least half as fast
 * as the table (slower ones stop each trial after US_LM_TRIAL_CAP times its share). */
#define US_LM_TRIAL_SHARE 0.15     /* of the budget, for both trials together */
#define US_LM_TRIAL_MIN_STEPS 40   /* each trial needs this many steps, else no trial */
#define US_LM_TRIAL_EVAL_SHARE 0.1 /* a trial's validation check may cost this much of it */
#define US_LM_TRIAL_CAP                                             \
  2.0 /* a trial stops after this many times its share of wall time \
         (a machine much slower than the table) */
typedef struct us__lm_trial_plan {
  const us__lm_size *size[2]; /* [0] the table's pick, [1] its neighbour; NULL: none */
  long steps[2];              /* steps each trains: seconds at the table's rate */
  long warmup[2];             /* a fifth of those steps, at most the run's warmup */
  double seconds;             /* each trial's share of the budget */
  double eval_tokens;         /* tokens a check may score: US_LM_TRIAL_EVAL_SHARE of a trial */
  bool run;                   /* both trials have US_LM_TRIAL_MIN_STEPS steps */
} us__lm_trial_plan;
/* Plans the trial of pick (an entry of sizes[0..n)) at the given context, budget and threads;
 * warmup_steps is the run's. */
void us__lm_trial_plan_make(const us__lm_size *sizes, size_t n, const us__lm_size *pick,
                            int context, double budget_sec, int threads, long warmup_steps,
                            us__lm_trial_plan *plan);
/* Rows of `context` tokens a step of this size packs (tokens_per_step / context, at least 1). */
int us__lm_size_batch(const us__lm_size *size, int context);

/* The step schedule: warmup, then cosine to the planned total. With a time budget the total is
 * planned once the first steps are timed and re-planned at every validation check. */
typedef struct us__lm_schedule {
  long steps;           /* planned total (a provisional guess before the first plan) */
  long warmup;          /* warmup steps */
  bool from_budget;     /* steps follow budget_sec */
  bool planned;         /* a plan from measured steps exists (or steps were given / resumed) */
  bool fixed;           /* never re-planned (steps given, or a resumed run's schedule) */
  double budget_sec;    /* of the whole training, from start */
  double start;         /* clock at the start of us_lm_train */
  long window_first;    /* first step of the timing window */
  double window_start;  /* clock when the window started */
  double sec_per_step;  /* measured */
  double sec_per_eval;  /* measured by the last validation check, or estimated */
  double evals_seconds; /* spent in validation checks since the window started */
  long eval_every;      /* steps between validation checks; 0: none */
  long decay_from;      /* the cosine starts here (the warmup's end when later; a trial's
                           winner continues from its trial's last step) */
  bool validation;      /* there are validation examples to check */
} us__lm_schedule;

/* Steps that fit: done + (remaining_sec - evals_left * sec_per_eval) / sec_per_step, at least
 * done (never fewer than already run) and at most 1e9. */
long us__lm_plan_steps(long done, double remaining_sec, double sec_per_step, double sec_per_eval,
                       long evals_left);
/* Sets the schedule up at the start of a run: steps given (p->steps > 0), resumed with a stored
 * plan (resumed_planned > 0), or from the budget. */
void us__lm_schedule_init(us__lm_schedule *s, const us_lm_train_params *p, double now,
                          long resumed_planned, long resumed_warmup, bool validation);
/* After step `done` (1-based) ended at `now`: times the first steps and plans. Returns true when
 * it (re)planned. */
bool us__lm_schedule_after_step(us__lm_schedule *s, long done, double now);
/* A validation check took `seconds`; re-plans the remaining steps at `now`. */
void us__lm_schedule_after_eval(us__lm_schedule *s, long done, double seconds, double now);
/* The learning rate of step (0-based) under the schedule. */
double us__lm_schedule_lr(const us__lm_schedule *s, const us_lm_train_params *p, long step);
/* True when a validation check is due after step `done`. */
bool us__lm_schedule_eval_due(const us__lm_schedule *s, long done);

/* Early stopping: the best validation loss, its step, the checks since. */
typedef struct us__lm_early_stop {
  double best;
  long best_step;
  int bad, patience;
} us__lm_early_stop;
void us__lm_early_stop_init(us__lm_early_stop *e, int patience);
/* Records a check's loss after step `done`: 1 when it is the best so far (keep the weights),
 * 0 when not, -1 when patience has run out (stop; deliver the best). */
int us__lm_early_stop_update(us__lm_early_stop *e, double loss, long done);

#endif
