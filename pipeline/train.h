/* The train stage: gathers the teacher's targets for the train split from the workspace and
 * trains the student (the classifier for task classify, the language model for task generate),
 * saving it to <output>/student.bin with its training curves and a "train" result in the cache.
 * The stage is idempotent: when the model file exists and was trained on the same targets with
 * the same settings (a fingerprint stored in the "train" result), it does nothing. A failed stage
 * (a diverged training, a full disk, a workspace error) leaves student.bin, the curves and the
 * "train" result as they were: the new model is written to student.bin.new and renamed over
 * student.bin just before the transaction holding its curves and result commits. A student that
 * fails naming one of its settings ("lr: training diverged ...") is reported with the config key
 * ("student.lr: training diverged ..."). */
#ifndef US_PIPELINE_TRAIN_H
#define US_PIPELINE_TRAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/cache.h"
#include "pipeline/config.h"
#include "student/classifier.h"

typedef struct us_train_summary {
  bool up_to_date;          /* nothing to do: the model matches its inputs */
  int64_t n_train;          /* examples trained on */
  int64_t n_valid;          /* examples held out of the train split for early stopping */
  int64_t n_soft;           /* examples with a soft (logprobs) target */
  int64_t skipped_unparsed; /* train prompts whose teacher answer named no label */
  int64_t skipped_missing;  /* train prompts with no teacher answer yet (failed or not labelled) */
  int epochs;               /* epochs or steps run */
  double best_valid_acc;    /* classify: validation accuracy of the kept weights */
  double final_loss;
  double wall_s, cpu_s;      /* training time, CPU over all threads */
  int64_t params;            /* student parameter count */
  int64_t model_bytes;       /* size of student.bin */
  us_autotune_info autotune; /* classify: what the automatic search chose (autotuned false: off) */
  char model_path[4096];
  char chosen[512]; /* generate: the size, steps and time budget the trainer chose, else "" */
} us_train_summary;

typedef struct us_train_options {
  bool force;                  /* retrain even when up to date */
  volatile sig_atomic_t *stop; /* checked between steps (generate) */
  /* Called after each epoch (classify) or every few steps (generate) with a one-line status. */
  void (*progress)(void *user, const char *line);
  void *progress_user;
} us_train_options;

us_status us_train_stage(const us_config *c, us_cache *cache, const us_train_options *opt,
                         us_train_summary *summary, us_err *err);

/* The path of the student model in the output folder. Caller frees; NULL when out of memory. */
char *us_train_model_path(const us_config *c);

/* Is this train-split prompt in the validation slice? A hash of the prompt's identity, so the
 * slice is stable as prompts are added. */
bool us_train_is_validation(const char *prompt_hash, uint64_t seed, double fraction);

#endif
