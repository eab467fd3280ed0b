/* The language-model student: a small decoder-only transformer (tied embeddings, RMSNorm, rotary
 * positions, causal multi-head attention, SwiGLU) over a byte-level BPE tokeniser, trained on
 * (prompt, answer) pairs with the loss on answer tokens only. us_lm, us_lm_load, us_lm_generate,
 * us_lm_free and us_lm_gen_params are public: include/understudy.h declares them.
 *
 * Ownership: us_lm_new / us_lm_load / us_lm_train hand back a us_lm the caller frees with
 * us_lm_free (NULL is a no-op). us_lm_generate's *answer is malloc'd, the caller frees it.
 * A us_lm is not thread-safe for generation from several threads at once (OpenBLAS threads are
 * process-wide); use one handle per thread. */
#ifndef US_STUDENT_LM_H
#define US_STUDENT_LM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/params.h"
#include "core/status.h"
#include "student/bpe.h"
#include "understudy.h"

typedef struct us_lm_config {
  int layers;  /* transformer blocks */
  int dim;     /* model width C */
  int heads;   /* attention heads; dim / heads is even (rotary pairs) */
  int context; /* longest sequence T */
  int vocab;   /* tokeniser size V (bytes + merges + 4 specials) */
  int hidden;  /* SwiGLU width F; us_lm_config_hidden(dim) unless set explicitly */
  /* Pretrained llama-family models need the fields below; 0 means the default in brackets, so a
   * config written {layers, dim, heads, context, vocab, hidden} is the original model. */
  int heads_kv;     /* key/value heads for grouped-query attention, dividing heads [heads] */
  int untied;       /* 1: a separate (V, C) output matrix; 0: the output reuses the embeddings */
  double rope_base; /* rotary frequency base [10000] */
  double norm_eps;  /* RMSNorm epsilon [1e-5] */
} us_lm_config;

/* Fills layers, dim, heads, context from a preset: "nano" (2, 128, 4, 128), "micro"
 * (4, 256, 4, 256), "mini" (6, 384, 6, 256); vocab and hidden are left alone. */
us_status us_lm_config_preset(const char *name, us_lm_config *c, us_err *err);
/* The default SwiGLU width: 8/3 of dim rounded up to a multiple of 32. */
int us_lm_config_hidden(int dim);
/* Checks sizes (positive, heads divide dim, even head size, heads_kv divides heads, sane
 * limits). */
us_status us_lm_config_check(const us_lm_config *c, us_err *err);
/* Number of float parameters; a pure function of the config. */
size_t us_lm_param_count(const us_lm_config *c);

/* A fresh model with weights drawn from seed; takes ownership of bpe (freed on failure too).
 * c->vocab must equal us_bpe_vocab_size(bpe). */
us_status us_lm_new(const us_lm_config *c, us_bpe *bpe, uint64_t seed, us_lm **out, us_err *err);
const us_lm_config *us_lm_get_config(const us_lm *lm);
const us_bpe *us_lm_get_bpe(const us_lm *lm);
size_t us_lm_n_params(const us_lm *lm);

/* Model file (documented byte by byte in student/lm_file.c): magic "USLM", version, config,
 * tokeniser, weights, optional training state (checkpoints), SHA-256 of everything before it.
 * us_lm_load (include/understudy.h) refuses truncated, oversized and corrupt files, and files
 * holding a NaN or infinite weight, with a message naming the path. us_lm_generate and
 * us_lm_score fail with US_ERR_FORMAT when the weights overflow into logits that are not
 * numbers. */
us_status us_lm_save(const us_lm *lm, const char *path, us_err *err);

/* ---- starting from a pretrained model (student/lm_import.c) ---- */

/* Chat formats us_lm_import_gguf recognises in tokenizer.chat_template (us_bpe_chat.kind). */
enum {
  US_LM_CHAT_NATIVE = 0, /* [BOS] prompt [SEP] answer [EOS]: models trained here */
  US_LM_CHAT_CHATML,     /* <|im_start|>user\n ... <|im_end|>\n<|im_start|>assistant\n ... */
  US_LM_CHAT_LLAMA3,     /* <|start_header_id|>user<|end_header_id|>\n\n ... <|eot_id|> */
  US_LM_CHAT_LLAMA2,     /* [BOS][INST] ... [/INST] ... [EOS] */
  US_LM_CHAT_FALLBACK, /* no or an unknown template: [BOS if add_bos_token] prompt \n answer EOS */
  US_LM_CHAT_ZEPHYR,   /* [BOS]<|user|>\n ... </s>\n<|assistant|>\n ... </s> (TinyLlama) */
};

/* Reads a llama-architecture GGUF file: hyper-parameters (grouped-query attention, rope base,
 * RMSNorm epsilon, tied or untied output), tensors of type F32, F16, BF16 or Q8_0 (converted to
 * float), its byte-level BPE tokeniser ("gpt2") and its chat format. context is the longest
 * sequence the run uses (capped by llama.context_length). Errors name the file and the key or
 * tensor: another architecture, tokeniser or pre-tokeniser, a tensor type, a missing or
 * misshapen tensor, biases, rope scaling, a truncated file. *out is freed with us_lm_free. */
us_status us_lm_import_gguf(const char *path, int context, us_lm **out, us_err *err);
/* The context `understudy generate FILE.gguf` asks for (the file's own is used when shorter). */
#define US_LM_MAX_GGUF_CONTEXT 2048
/* The model's chat format by name ("chatml", "llama3", "llama2", "fallback ...", "native ..."). */
const char *us_lm_chat_format_name(const us_lm *lm);

/* ---- training ---- */

typedef struct us_lm_example {
  const char *prompt;
  const char *answer;
} us_lm_example;

typedef struct us_lm_progress {
  long step, steps;      /* steps done so far (1-based after the first step), total planned (0 while
                            the first steps of a time budget are being timed) */
  double loss;           /* mean loss on the answer tokens of this step's batch */
  double lr;             /* learning rate used by this step */
  double tokens_per_sec; /* batch tokens (B * T) per wall second since this run started */
  double eta_sec;        /* estimated seconds left */
  size_t n_params;
  /* What the trainer chose (student/lm_budget.c): the size's name ("nano", ..., "custom"),
   * whether "auto" chose it, and the time budget the steps follow (0 when steps were given). */
  const char *preset;
  bool auto_preset;
  double budget_sec;
  bool planned_now;   /* this step (re)planned `steps` from the measured throughput */
  bool validated_now; /* this step ended with a validation check: valid_loss is fresh */
  double valid_loss;  /* the last validation loss; NAN before the first or without validation */
  long best_step;     /* the step of the best validation loss so far; 0 before */
  int trial;          /* 1 or 2 while the size trial trains its first or second size (step and
                         steps are then the trial's), else 0 */
  const char *note;   /* a line to report (a size trial's result, the choice), else NULL */
} us_lm_progress;

/* Called after every step; a non-zero return stops training (status US_ERR_INTERRUPTED, the
 * last checkpoint, if any, stays on disk for a resume). */
typedef int (*us_lm_progress_fn)(const us_lm_progress *p, void *user);

/* What a training chose and did (filled by us_lm_train when params->info is set). */
typedef struct us_lm_train_info {
  char preset[16];        /* the size's name ("nano", "micro", "mini") or "custom" */
  bool auto_preset;       /* chosen by preset "auto" from the data and the time budget */
  us_lm_config config;    /* the model's sizes */
  long steps_planned;     /* the schedule's last total */
  long steps_done;        /* optimiser steps actually run (fewer after an early stop) */
  bool steps_from_budget; /* steps followed the time budget (false: given, or resumed) */
  double budget_sec;      /* train_minutes in seconds (0 when steps were given) */
  double tokens_per_sec;  /* batch tokens per wall second measured for the plan */
  double train_tokens;    /* tokens of the training examples (BOS prompt SEP answer EOS) */
  int evaluations;        /* validation checks run */
  size_t valid_examples;  /* validation examples each check covers */
  long best_step;         /* step of the delivered weights' validation loss; 0: no validation */
  double best_valid_loss; /* NAN without validation examples */
  bool stopped_early;     /* patience ran out before the planned steps */
  /* The size trial of "auto" (docs/lm.md): [0] the table's pick, [1] its neighbour, each trained
   * trial_sec wall seconds (trial_steps steps), then scored on the same validation examples.
   * trial_run false: skipped, trial_note says why ("" when "auto" with a budget did not apply). */
  bool trial_run;
  char trial_size[2][16];
  long trial_steps[2];
  double trial_sec[2];
  double trial_loss[2];
  int trial_winner; /* 0 or 1 */
  char trial_note[160];
} us_lm_train_info;

/* Defaults (us_lm_train_params_defaults) are the config's (docs/config.md, student.*): preset
 * "auto" (NULL), every size 0 (from the preset), steps 0 (from train_minutes = 10), 100 warmup
 * steps, lr 0 and batch_size 0 (from the preset), weight decay 0.1, clip 1, a checkpoint every
 * 500 steps, patience 5 validation checks. */
typedef struct us_lm_train_params {
  const char *preset;              /* "auto" | "nano" | "micro" | "mini"; NULL is "auto" */
  int layers, dim, heads, context; /* 0: the preset's; non-zero wins over the preset */
  int vocab_size;                  /* tokeniser size; 0: from the size of the text */
  int steps;                       /* optimiser steps; 0: as many as train_minutes allow */
  double train_minutes;            /* wall-time budget of the whole training when steps is 0 */
  int batch_size;                  /* packed rows of `context` tokens per step; 0: the preset's */
  int warmup_steps;                /* linear warmup (at most a fifth of a budgeted run) */
  double lr;                       /* peak learning rate; 0: the preset's */
  double min_lr_fraction;          /* cosine decays to lr * this; default 0.1 */
  double weight_decay;             /* AdamW, on matrices only */
  double beta1, beta2, eps;        /* default 0.9, 0.95, 1e-8 */
  double grad_clip;                /* global norm; 0 disables */
  double dropout;                  /* on embeddings, attention and SwiGLU outputs; default 0 */
  int patience; /* validation checks in a row without a better loss before stopping; 0: never */
  int checkpoint_every;        /* steps; 0: never; none are written without checkpoint_path */
  const char *checkpoint_path; /* where checkpoints go (model file + training state) */
  bool resume;                 /* continue from checkpoint_path when it exists */
  uint64_t seed;               /* weights and data order; default 1 */
  int threads;                 /* OpenBLAS threads; default 2 */
  const char *init;            /* a llama GGUF to start from (us_lm_import_gguf); NULL: fresh
                                  weights. Its sizes and tokeniser replace the fields above
                                  (context is capped by the file's) */
  int lora_rank;               /* > 0: train low-rank adapters of this rank on the attention and
                                  feed-forward projections, base weights frozen (kept in Q8_0
                                  when the file's projections are), merged on return, checkpoints
                                  holding the adapters only (student/lm_lora.c); 0: full
                                  training */
  double lora_alpha;           /* adapter scale alpha / rank; default 16 */
  us_lm_progress_fn progress;  /* may be NULL */
  void *progress_user;
  float *losses; /* optional, with steps given: losses[step] receives each step's loss */
  /* Optional validation examples (never trained on): their answers' loss is checked
   * US_LM_EVALS_PER_RUN times a run (at most US_LM_VALID_MAX of them), the best weights are
   * kept and delivered, and training stops after `patience` checks without improvement. */
  const us_lm_example *valid;
  size_t n_valid;
  us_lm_train_info *info;      /* optional: what was chosen and done */
  double (*clock)(void *user); /* seconds; NULL: us_now. Tests inject their own. */
  void *clock_user;
  /* The size table the presets and "auto" choose from (student/lm_int.h, smallest first); NULL:
   * the built-in one (student/lm_budget.c). Tests inject tiny sizes. */
  const struct us__lm_size *sizes;
  size_t n_sizes;
} us_lm_train_params;

#define US_LM_EVALS_PER_RUN 20
/* The learning rate of a fine-tune from student.init when student.lr is not given (0): the old
 * fixed default, not a fresh preset's rate. */
#define US_LM_FINETUNE_LR 3e-4
#define US_LM_VALID_MAX 512

/* THE defaults (the config's student.* start from these); string and pointer fields NULL. */
void us_lm_train_params_defaults(us_lm_train_params *p);

/* The range of every numeric and bool field (core/params.h); n receives the entry count. */
const us_param *us_lm_train_param_table(size_t *n);

/* Checks p against the table, then: preset is NULL, "auto" or a known name; heads divide dim
 * into an even head size (a size left at 0 is the preset's; under "auto" heads must suit every
 * width the table can choose); beta1, beta2 below 1. Fails with US_ERR_CONFIG and a
 * message starting with the field's name ("heads: ..."). us_lm_train runs it first. */
us_status us_lm_train_params_check(const us_lm_train_params *p, us_err *err);

/* Trains a tokeniser on the examples' prompts and answers (unless resuming), then the model;
 * *out is the trained model. Fails with US_ERR_CONFIG and a message starting "lr: training
 * diverged" when a step's loss or gradient norm, or the weights (scanned before every
 * checkpoint and at the end), stop being finite; no checkpoint holds non-finite weights. Examples
 * longer than the context lose prompt tokens from the left (then answer tokens from the right).
 * Packing: several examples per row, each attending only to itself (document mask) with rotary
 * positions restarting at 0, so packing changes nothing numerically compared with one example per
 * row.
 * Sizes and time (student/lm_budget.c, docs/lm.md): the vocabulary follows the text's size, the
 * "auto" size the tokens of the examples and the budget; with steps 0 the trainer times its
 * first steps after two warm-up steps, plans the step count and the cosine schedule to end
 * within train_minutes of the call, and re-plans at every validation check; a resumed run keeps
 * the checkpoint's plan. With validation examples it delivers the weights of the best check. */
us_status us_lm_train(const us_lm_train_params *p, const us_lm_example *examples, size_t n,
                      us_lm **out, us_err *err);

/* ---- generation: us_lm_generate (include/understudy.h) ---- */

/* Teacher-forced score of a given answer: *mean_logprob is the mean natural-log probability of
 * the answer's tokens and EOS after [BOS] prompt [SEP] (exp(-x) is the perplexity); *n_tokens
 * (may be NULL) how many tokens were scored. Cut to the context as in training. */
us_status us_lm_score(const us_lm *lm, const char *prompt, const char *answer, double *mean_logprob,
                      int *n_tokens, us_err *err);

/* ---- generation on token ids (student/lm_trace.c): what us_lm_generate does, step by step, for
 * comparing with other runtimes (the GGUF test feeds the same ids to llama.cpp) ---- */

/* The ids us_lm_generate feeds the model for prompt: BOS, the prompt's tokens (cut from the left
 * to leave room for an answer), SEP. *ids is malloc'd (caller frees). */
us_status us_lm_prompt_tokens(const us_lm *lm, const char *prompt, int32_t **ids, int *n_ids,
                              us_err *err);
/* Greedy continuation of in[0..n_in) as us_lm_generate picks it (BOS, SEP and PAD never chosen;
 * the first highest logit wins), recomputing the whole sequence per step: up to max_new ids
 * into out (EOS included when reached; fewer when the context fills), *n_out set. logits, when
 * non-NULL, holds (max_new, vocab) floats and receives each step's raw logits. */
us_status us_lm_greedy_tokens(const us_lm *lm, const int32_t *in, int n_in, int max_new,
                              int32_t *out, int *n_out, float *logits, us_err *err);

#endif
