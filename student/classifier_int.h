/* Internals shared by the classifier's files (features, model, training, model file) and its
 * tests; not part of the public API. */
#ifndef US_STUDENT_CLASSIFIER_INT_H
#define US_STUDENT_CLASSIFIER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "student/classifier.h"

/* ---- feature keys (student/classifier_features.c) ----
 * A feature key is a vocabulary word id (0..n_words) or n_words + hash % buckets for a word or
 * character n-gram. Only keys seen in training get an embedding row; us__keymap maps keys to
 * rows (open addressing, keys < 2^32). */
typedef struct us__keymap {
  uint32_t *keys; /* capacity slots, UINT32_MAX = empty */
  int32_t *vals;
  uint32_t mask; /* capacity - 1, capacity a power of two */
  uint32_t count;
} us__keymap;

us_status us__keymap_init(us__keymap *km, uint32_t expected, us_err *err);
void us__keymap_free(us__keymap *km);
/* Returns the value for key, or -1. */
int32_t us__keymap_get(const us__keymap *km, uint32_t key);
/* Inserts key -> val if absent; returns the stored value (-2 when full: caller sized it). */
int32_t us__keymap_put(us__keymap *km, uint32_t key, int32_t val);
/* Adds delta to key's value (inserting key -> delta if absent); returns the new value, -2 when
 * full. */
int32_t us__keymap_add(us__keymap *km, uint32_t key, int32_t delta);

/* Word vocabulary: words in id order and a map from their hash to the id. */
typedef struct us__vocab {
  char **words;
  int n_words, cap;
  int32_t *slots; /* open addressing over the word hash: word id or -1 */
  uint32_t mask;  /* slot count - 1 */
} us__vocab;

void us__vocab_free(us__vocab *v);
/* Words of texts seen at least min_count times (1: every word), in first-seen order. */
us_status us__vocab_build(us__vocab *v, const char *const *texts, size_t n, int min_count,
                          us_err *err);
/* The same with p's tokeniser options and p->min_count. */
us_status us__vocab_build_with(us__vocab *v, const us_classifier_params *p,
                               const char *const *texts, size_t n, us_err *err);
us_status us__vocab_from_words(us__vocab *v, char **words, int n_words, us_err *err);
int us__vocab_find(const us__vocab *v, const char *word, int len);

/* Calls emit(user, key) for every feature of text, in a fixed order. Returns the count. */
typedef void (*us__feature_fn)(void *user, uint32_t key);
int us__features(const us_classifier_params *p, const us__vocab *v, const char *text,
                 us__feature_fn emit, void *user);

/* h % d for any 64-bit h and d >= 1, with one multiplication by magic = us__fastmod_magic(d)
 * instead of a division (Lemire, Kaser & Kurz, "Faster remainder by direct computation"). */
__extension__ typedef unsigned __int128 us__u128;
us__u128 us__fastmod_magic(uint64_t d);
static inline uint64_t us__fastmod(uint64_t h, us__u128 magic, uint64_t d) {
  us__u128 low = magic * h;
  us__u128 bottom = ((low & UINT64_MAX) * d) >> 64;
  return (uint64_t)((bottom + (low >> 64) * d) >> 64);
}

/* ---- the model (student/classifier_model.c) ---- */
struct us_classifier {
  us_classifier_params p;
  int n_labels;
  char **labels;
  us__vocab vocab;
  /* embedding rows: row i belongs to feature key row_keys[i] (increasing) */
  int n_rows;
  uint32_t *row_keys; /* (n_rows) */
  us__keymap row_of;  /* key -> row */
  float *emb;         /* (n_rows, dim), NULL when quantised */
  int8_t *qemb;       /* when quantised: (n_rows, dim) int8, or with qbits 4 (n_rows,
                         (dim + 1) / 2) bytes, weight 2i in the low nibble, stored as q + 8 */
  int qbits;          /* 8 or 4 when quantised */
  float *qscale;      /* (n_rows) per-row scale when quantised */
  /* dense layers l = 0..n_hidden: W_l (out_l, in_l) then b_l (out_l), one block */
  int n_layers;
  int layer_in[US_CLASSIFIER_MAX_HIDDEN + 1], layer_out[US_CLASSIFIER_MAX_HIDDEN + 1];
  int64_t dense_offset[US_CLASSIFIER_MAX_HIDDEN + 1]; /* offset of W_l in dense */
  int64_t dense_count;
  float *dense;
  us_autotune_info tune; /* what the automatic search chose (autotuned false: nothing) */
  /* the naive Bayes term (p.nb; student/classifier_nb.c): n_nb == 0 when there is none */
  int n_nb;
  uint32_t *nb_keys; /* (n_nb) feature key of each ratio row, first-seen order */
  us__keymap nb_of;  /* key -> ratio row */
  float *nb_ratio;   /* (n_nb, n_labels) one-vs-rest log-count ratio r_c(f) */
  float nb_weight;   /* its weight against the network's log-probabilities */
};

/* Layer shapes from params and n_labels (the one place sizes are computed). */
void us__classifier_shapes(us_classifier *m);
/* Allocates labels (copied), dense and (unless quantised) emb for n_rows rows; zero-filled. */
us_status us__classifier_alloc(us_classifier *m, us_err *err);
int us__classifier_widest(const us_classifier *m);
/* True when every weight (embedding rows, their scales when quantised, dense layers) is a finite
 * number; otherwise false, with where (cap bytes) naming the first one that is not, e.g.
 * "dense layer 1, weight 12, is nan". Reads the model once: training runs it once per epoch. */
bool us__classifier_weights_finite(const us_classifier *m, char *where, size_t cap);

/* Scratch for one forward/backward pass (per thread). */
struct us_classifier_scratch {
  int width;     /* widest layer */
  float *act;    /* (n_layers + 1, width): act[0] = bag, act[l+1] = output of layer l */
  float *mask;   /* (n_layers, width) inverted-dropout multipliers */
  float *grad;   /* (2, width) */
  float *probs;  /* (n_labels) */
  int32_t *rows; /* feature rows of the current text */
  int n_rows, cap_rows;
  int used_dropout; /* the last forward applied dropout masks */
  int32_t *nb_rows; /* naive Bayes ratio rows of the current text (grown on demand) */
  int cap_nb;
  float *nb_score; /* (n_labels) */
};

us_classifier_scratch *us__scratch_new(const us_classifier *m, int cap_rows);

/* Forward pass over rows[0..n) of the embedding table. rng NULL: no dropout (inference).
 * Leaves probabilities in s->probs and activations in s. */
void us__classifier_forward(const us_classifier *m, us_classifier_scratch *s, const int32_t *rows,
                            int n, us_rng *rng, double dropout);
/* Loss -sum q log p of the last forward pass against target q (n_labels). */
double us__classifier_loss(const us_classifier *m, const us_classifier_scratch *s, const float *q);
/* Backward pass of the last forward against target q. If grad_dense is NULL, applies SGD with
 * step lr to the dense layers and rows' embeddings directly (training); otherwise adds the
 * gradients into grad_dense (dense layout) and grad_bag (dim, the gradient of the mean bag)
 * and leaves the weights alone (gradient checks). */
void us__classifier_backward(us_classifier *m, us_classifier_scratch *s, const int32_t *rows, int n,
                             const float *q, float lr, float *grad_dense, float *grad_bag);
/* The training target: soft^(1/T) renormalised (or one-hot label), then label smoothing. */
void us__classifier_target(const us_classifier_params *p, int n_labels, const us_example *ex,
                           float *q);
/* ---- training with more in and out (student/classifier_train.c) ---- */

/* Featurised examples kept between trainings on the same train and valid examples whose feature
 * settings (tokeniser, n-grams, buckets, min counts) are the same, as the search's candidates on
 * one fold are: the vocabulary, the row keys and the rows of train and valid, for the last two
 * feature settings. One cache per (train, valid) pair, used by one thread at a time. */
typedef struct us__feature_cache us__feature_cache;
us__feature_cache *us__feature_cache_new(void); /* NULL when out of memory */
void us__feature_cache_free(us__feature_cache *c);

typedef struct us__train_extra {
  /* in */
  double fixed_beta;        /* > 0: the calibration factor to fold into the output layer instead of
                               fitting one on valid (the final training of a search has no valid) */
  us__feature_cache *cache; /* may be NULL: featurise from scratch */
  int average_runs;         /* > 1: this many trainings from the same initial weights with different
                               shuffles, their weights averaged (less dependence on one seed's luck) */
  double fixed_nb_weight;   /* > 0 with p->nb: the naive Bayes term's weight, not fitted on valid */
  bool nb_probe;            /* also score the other side of p->nb on valid (nb_* below), without
                               changing the model: the search gets both for one training */
  /* out */
  int best_epoch;  /* 1-based epoch whose weights were kept */
  double best_acc; /* its validation accuracy (0 without valid), with the NB term when p->nb */
  double beta;     /* calibration factor applied (1: none) */
  /* with nb_probe and a validation set: both sides */
  double plain_acc, plain_beta;            /* without the naive Bayes term */
  double nb_acc, nb_beta, nb_weight_found; /* with it (beta: the network's factor beside it) */
} us__train_extra;

/* us_classifier_train with extra inputs and outputs (x may be NULL: the same as it). */
us_status us__classifier_train_ex(const us_classifier_params *p, char *const *labels, int n_labels,
                                  const us_example *train, size_t n_train, const us_example *valid,
                                  size_t n_valid, us_epoch_fn on_epoch, void *user,
                                  us__train_extra *x, us_classifier **out, us_err *err);

/* ---- the naive Bayes term (student/classifier_nb.c) ----
 * Wang & Manning (2012)'s log-count ratio over binarised word unigrams and bigrams: for label c
 * and feature f, with counts over the train examples (each text counts a feature once),
 * p = alpha + count in c's texts, q = alpha + count in the other texts, r_c(f) = log(p(f) /
 * |p|_1) - log(q(f) / |q|_1), alpha = 1; r_c = 0 for a label with no train example. A text's
 * score for c is the sum of r_c over its distinct features; prediction is softmax(log p_net +
 * nb_weight * score). */
#define US__NB_ALPHA 1.0

/* The feature settings of the NB term: p's tokeniser, word uni- and bigrams, no char n-grams. */
us_classifier_params us__nb_feature_params(const us_classifier_params *p);
/* Fits m's ratio table from train (hard labels) and nothing else; m's vocabulary and labels
 * are set. Replaces a table m had. */
us_status us__nb_fit(us_classifier *m, const us_example *train, size_t n, us_err *err);
/* score[0..n_labels) for text (s->nb_rows grows on demand); all 0 when m has no table. */
us_status us__nb_score(const us_classifier *m, us_classifier_scratch *s, const char *text,
                       float *score, us_err *err);
/* probs <- softmax(log probs + weight * score), in place. */
void us__nb_combine(float *probs, const float *score, int n_labels, float weight);
/* Fits (a, w) minimising the mean negative log-likelihood of want[i] under softmax(a * logp_i +
 * w * score_i) on n examples (jointly convex: alternating golden-section searches, a in
 * [1/20, 20], w in [0, 20]); logp and score are (n, L). fit_a false: a stays 1. */
void us__nb_fit_weights(const float *logp, const float *score, const int *want, size_t n, int L,
                        bool fit_a, double *a, double *w);
void us__nb_free(us_classifier *m);

/* ---- automatic selection (student/classifier_autotune.c) ----
 * Deals the examples into `parts` stratified parts: each label's examples in a seeded random
 * order go round-robin, the count carrying over from one label to the next, so every label with
 * at least `parts` examples is in every part and the parts' sizes differ by one at most. part[i]
 * receives example i's part; scratch holds n entries. */
void us__autotune_stratify(const us_example *ex, size_t n, int n_labels, int parts, uint64_t seed,
                           int *part, size_t *scratch);

/* Rows of text's features that have embeddings, into s->rows (grows it; may allocate). */
us_status us__classifier_text_rows(const us_classifier *m, us_classifier_scratch *s,
                                   const char *text, us_err *err);

#endif
