/* The classifier student: fastText-style hashed word and character n-grams, an embedding bag
 * (mean), optional ReLU hidden layers with dropout, softmax over the labels; trained on hard
 * labels or on a teacher's soft distribution.
 *
 * Ownership: us_classifier_train / us_classifier_load return a handle the caller frees with
 * us_classifier_free (NULL is a no-op). Label strings returned by us_classifier_label point into
 * the model and stay valid until it is freed. A trained or loaded model is read-only:
 * us_classifier_predict may be called from many threads at once on one model. */
#ifndef US_STUDENT_CLASSIFIER_H
#define US_STUDENT_CLASSIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/params.h"
#include "core/status.h"

#define US_CLASSIFIER_MAX_HIDDEN 4 /* hidden layers at most */
/* The widest hidden layer, for training and for loading a model file alike (a wider one would
 * save a file the loader refuses): a 16384 x 16384 layer is 2^28 floats, 1 GiB, already past
 * what a CPU student is for; 65536 would be 16 GiB a layer. */
#define US_CLASSIFIER_MAX_HIDDEN_SIZE 16384

typedef struct us_classifier us_classifier;

typedef struct us_classifier_params {
  int dim;         /* embedding size */
  int word_ngrams; /* word n-grams 1..word_ngrams (1: unigrams only) */
  int minn, maxn;  /* character n-grams of "<word>", minn..maxn; maxn 0 disables them */
  int buckets;     /* hash space for n-grams (rows are only stored for n-grams seen in training) */
  int min_count;   /* words seen fewer times in the train set get no vocabulary entry (their
                      character n-grams still count); fastText's -minCount */
  int min_count_ngram; /* word and character n-gram keys seen fewer times get no row */
  int hidden[US_CLASSIFIER_MAX_HIDDEN]; /* ReLU hidden layer sizes */
  int n_hidden;                         /* 0: embedding bag straight to softmax */
  double dropout;                       /* on the input of every dense layer, training only */
  int epochs;                           /* maximum passes over the train set */
  double lr;                            /* initial learning rate */
  double kd_temperature;                /* applied to the teacher's soft distribution */
  double label_smoothing;               /* 0..1 */
  int patience;                         /* epochs without validation gain before stopping */
  int threads;                          /* training threads (Hogwild); 1 is reproducible */
  uint64_t seed;
  bool quantize;     /* save the embedding table quantised, with a per-row scale */
  int quantize_bits; /* 8 (int8) or 4 (two weights a byte) for us_classifier_quantize */
  bool calibrate;    /* temperature scaling fitted on the validation set (when there is one) */
  /* the tokeniser (classifier_features.c); the defaults are the tokeniser these options predate */
  bool lowercase;      /* fold ASCII A-Z to a-z */
  bool punctuation;    /* ASCII punctuation is a token of its own (true) or a separator (false) */
  bool fold_digits;    /* every ASCII digit reads as 0: "2019" and "1998" are one word, "0000" */
  bool fold_urls;      /* a token starting http://, https:// or www. is the one word "<url>" */
  double class_weight; /* examples weighted by (n / (n_labels * count of their label))^this: 0
                          counts every example once, 1 balances the labels (capped at 10x) */
  bool nb; /* add a naive Bayes term: log-count ratios of binarised word uni- and bigrams from
              the train examples (Wang & Manning 2012), its weight fitted on the validation
              slice (1 without one); classifier_nb.c */
  /* automatic model selection (classifier_autotune.c; read by the train stage, not by
   * us_classifier_train) */
  bool autotune;           /* choose the setting on the train split before training */
  double autotune_seconds; /* search budget: -1 automatic (the larger of 30 s and 10 single
                              trainings, at most 600 s); 0 turns the search off */
} us_classifier_params;

/* The student's defaults (chosen by measurement on banking77; see docs/student.md). THE
 * defaults: the config (student.*) starts from these. */
void us_classifier_params_defaults(us_classifier_params *p);

/* The range of every numeric and bool field (core/params.h), n receives the entry count. THE
 * ranges: the config reads student.* values against them. */
const us_param *us_classifier_param_table(size_t *n);

/* Checks p against the table, then the rules across fields: while character n-grams are on
 * (maxn > 0), 1 <= minn <= maxn; quantize_bits is 4 or 8. Fails with US_ERR_CONFIG and a
 * message starting with the field's name ("minn: ..."). us_classifier_train runs it first. */
us_status us_classifier_params_check(const us_classifier_params *p, us_err *err);

/* One training example: text, the hard label (index into labels; used when soft is NULL) and an
 * optional soft target, n_labels probabilities (the teacher's distribution). */
typedef struct us_example {
  const char *text;
  int label;
  const float *soft;
} us_example;

typedef struct us_epoch_info {
  int epoch; /* 1-based */
  double train_loss, valid_loss, valid_acc, lr, seconds;
} us_epoch_info;

typedef void (*us_epoch_fn)(void *user, const us_epoch_info *e);

/* Trains a classifier over labels[0..n_labels). valid (may be empty) drives early stopping and
 * the returned model holds the weights of the best validation epoch (by accuracy, then loss);
 * never pass the test split. on_epoch (may be NULL) is called after every epoch, from the
 * calling thread. Fails with US_ERR_INPUT on a bad label or empty train set, US_ERR_CONFIG on
 * bad params, and US_ERR_CONFIG with a message starting "lr: training diverged" when the loss
 * or a weight stops being a finite number (checked once per epoch, before on_epoch sees it). */
us_status us_classifier_train(const us_classifier_params *p, char *const *labels, int n_labels,
                              const us_example *train, size_t n_train, const us_example *valid,
                              size_t n_valid, us_epoch_fn on_epoch, void *user, us_classifier **out,
                              us_err *err);

/* ---- automatic model selection (student/classifier_autotune.c) ---- */

/* What the search chose and how it measured it; stored in the model file (version 3 on). */
typedef struct us_autotune_info {
  bool autotuned;   /* false: the model was trained with the settings it was given */
  double valid_acc; /* mean validation accuracy of the chosen setting over the folds */
  int folds;        /* k of the stratified k-fold (1: one stratified holdout slice) */
  int candidates;   /* settings scored: each setting trained on the folds is scored twice, without
                       and with the naive Bayes term (p.nb), from the same trainings */
  int trainings;    /* trainings run by the search (trained settings x folds, at most) */
  int final_epochs; /* epochs of the final training on all the data (carried over) */
  char chosen[256]; /* the chosen setting where it differs from the defaults, e.g.
                       "maxn=0 word_ngrams=3 lr=0.5" ("defaults" when it does not) */
} us_autotune_info;

/* Limits of one search. seconds: as us_classifier_params.autotune_seconds (-1 automatic, 0
 * off); max_trainings caps the trainings the search runs (0: no cap beyond the time budget),
 * for a search that must not depend on the machine's speed (tests, benchmarks). */
typedef struct us_autotune_limits {
  double seconds;
  int max_trainings;
} us_autotune_limits;

/* Called with one line per setting scored ("candidate 3: maxn=0  valid acc 81.52% (5 folds)
 * 1.8s", then "candidate 3 with nb: maxn=0 nb=true ...") and one for the winner. */
typedef void (*us_autotune_fn)(void *user, const char *line);

/* Chooses a setting for this data, starting from p, and trains the final model with it on all
 * of train (never pass the test split: it is the only data the search sees). A coordinate search
 * over word n-grams, character n-grams (none included), the tokeniser (only the options the
 * data can tell apart), learning rate and epochs, rare-feature pruning, label smoothing, embedding
 * size, class weighting (imbalanced labels only) and a hidden layer, each candidate scored by the
 * accuracy of a stratified k-fold over train (k = 5 under 10,000 examples or with a label under
 * 50 examples; otherwise one stratified 10% holdout slice), every candidate on the same folds,
 * each candidate scored both without and with the naive Bayes term (p.nb) from the same
 * trainings (the term's ratios fitted on each fold's train part, its weight on its validation
 * part),
 * the folds on up to p->threads threads, one thread each. A change is kept only when it beats
 * the best by a quarter of a standard error; a candidate far below it after two folds is dropped.
 * The final model is trained on all of train with the chosen setting, for the epochs early
 * stopping found (mean over the folds) and with the mean of the folds' calibration temperatures;
 * with k > 1 (small data) it averages the weights of 3 such trainings from the same start.
 * With p->threads 1 the same data and seed give the same choice and the same model (at more
 * threads, the same choice whenever the budget is counted in trainings). info (may be NULL)
 * receives what was chosen; *out the model, with info stored in it. Errors as
 * us_classifier_train. */
us_status us_classifier_autotune(const us_classifier_params *p, const us_autotune_limits *limits,
                                 char *const *labels, int n_labels, const us_example *train,
                                 size_t n_train, us_autotune_fn on_line, void *user,
                                 us_classifier **out, us_autotune_info *info, us_err *err);

/* The search's record of a model (autotuned false for a model trained without it). */
const us_autotune_info *us_classifier_autotune_info(const us_classifier *m);

/* Model file (format in student/classifier_file.c's header comment, summarised there byte by
 * byte). Saving writes atomically; a model trained with p->quantize (or passed to
 * us_classifier_quantize) is saved with quantised rows (p->quantize_bits). Loading checks magic,
 * version (4; versions 1 to 3 still load), every size and the SHA-256 checksum; a truncated or
 * corrupt file fails with US_ERR_FORMAT naming the path, an unknown version names it; so does a
 * file holding a weight or row scale that is NaN or infinite. */
us_status us_classifier_save(const us_classifier *m, const char *path, us_err *err);
us_status us_classifier_load(const char *path, us_classifier **out, us_err *err);
/* Reads a model from memory (what us_classifier_load does after reading the file); name is
 * used in error messages. */
us_status us_classifier_load_buffer(const void *data, size_t len, const char *name,
                                    us_classifier **out, us_err *err);
void us_classifier_free(us_classifier *m);

/* Quantises the embedding table in place (p.quantize_bits: int8 or 4-bit, per-row scale) so
 * predictions use the same weights a quantised file holds; later saves write that form. */
void us_classifier_quantize(us_classifier *m);

int us_classifier_n_labels(const us_classifier *m);
/* Label i (0 <= i < n_labels), or NULL when out of range. */
const char *us_classifier_label(const us_classifier *m, int i);
const us_classifier_params *us_classifier_get_params(const us_classifier *m);
/* Number of stored weights (embedding rows kept times dim, the dense layers, and the naive
 * Bayes ratios (n-grams times labels) when p.nb). */
int64_t us_classifier_param_count(const us_classifier *m);

/* Per-thread scratch memory for prediction, so a server predicts without allocating. */
typedef struct us_classifier_scratch us_classifier_scratch;
us_classifier_scratch *us_classifier_scratch_new(const us_classifier *m);
void us_classifier_scratch_free(us_classifier_scratch *s);

/* Writes n_labels probabilities for text into probs. Thread-safe; allocates its scratch per
 * call (use us_classifier_predict_with to avoid that). Fails with US_ERR_FORMAT, leaving probs
 * alone, when the model's weights overflow into probabilities that are not numbers. */
us_status us_classifier_predict(const us_classifier *m, const char *text, float *probs,
                                us_err *err);
/* Same, with scratch from us_classifier_scratch_new(m), one per thread. */
us_status us_classifier_predict_with(const us_classifier *m, us_classifier_scratch *s,
                                     const char *text, float *probs, us_err *err);

#endif
