/* Quality metrics on plain arrays: classification agreement with the teacher (and gold),
 * per-class scores, confusions, calibration, bootstrap intervals, latency percentiles, and the
 * generation metrics (exact match, token F1, ROUGE-L, chrF, valid JSON).
 * Nothing here touches the cache or the student: the caller passes indices,
 * probabilities and strings. Structs filled by us_metrics_classify own their arrays; free them
 * with us_metrics_free. */
#ifndef US_EVAL_METRICS_H
#define US_EVAL_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

#define US_METRICS_ECE_BINS 15

typedef struct us_metrics_options {
  int top_confusions;      /* how many most-confused pairs to keep; default 10 */
  int bootstrap_resamples; /* default 1000; 0 skips the interval (lo = hi = point) */
  double ci_level;         /* default 0.95 */
  uint64_t seed;           /* bootstrap seed; default 1, so reports are reproducible */
} us_metrics_options;

void us_metrics_defaults(us_metrics_options *o);

/* Scores of one label, treating it as the positive class against the reference.
 * precision = tp / predicted, recall = tp / support, f1 = 2pr / (p + r). Where a denominator is
 * zero the score is defined as 0 (a label the student never predicts has precision 0; a label
 * absent from the reference has recall 0), as scikit-learn does with zero_division=0. */
typedef struct us_class_score {
  double precision, recall, f1;
  int support;   /* examples whose reference is this label */
  int predicted; /* examples the student gave this label (among scored examples) */
  int correct;   /* true positives */
} us_class_score;

/* One off-diagonal cell of the confusion matrix. */
typedef struct us_confusion {
  int reference; /* label index the teacher gave */
  int predicted; /* label index the student gave */
  int count;
  int example; /* index (into the caller's arrays) of the first such example */
} us_confusion;

/* One equal-width confidence bin: [lo, hi), the last bin also holds confidence 1. */
typedef struct us_calibration_bin {
  double lo, hi;
  int count;
  double mean_confidence; /* 0 when count is 0 */
  double accuracy;        /* share agreeing with the reference; 0 when count is 0 */
} us_calibration_bin;

typedef struct us_classify_metrics {
  int n;        /* examples given */
  int n_scored; /* examples with a reference label (reference >= 0); every rate below uses these */
  int n_unscored; /* examples whose reference is -1 (teacher answer unparsed or missing) */
  int n_labels;

  double agreement;    /* share of scored examples where predicted == reference */
  double agreement_lo; /* bootstrap percentile interval at options.ci_level */
  double agreement_hi;
  double ci_level;
  double macro_f1;    /* mean F1 over labels that occur in the reference or the predictions */
  int n_macro_labels; /* how many labels that mean is over */
  us_class_score *per_class; /* n_labels entries, in label order */

  us_confusion *confusions; /* most frequent first; ties by reference then predicted index */
  int n_confusions;

  us_calibration_bin calibration[US_METRICS_ECE_BINS];
  double ece; /* sum over bins of count/n_scored * |accuracy - mean_confidence| */

  /* Against gold labels, where the caller passed gold (gold[i] >= 0 marks a gold label). */
  bool has_gold;
  int n_gold;                   /* examples with a gold label */
  double student_gold_accuracy; /* predicted == gold */
  double student_gold_macro_f1;
  double teacher_gold_accuracy; /* reference == gold; an unparsed teacher answer counts as wrong */
  double teacher_gold_macro_f1;
} us_classify_metrics;

/* Computes every classification metric. reference[i] is the teacher's label index or -1;
 * predicted[i] in [0, n_labels) is the student's argmax; confidence[i] in [0, 1] its probability;
 * gold may be NULL, else gold[i] is a label index or -1. Fails with US_ERR_INPUT on an index or
 * confidence out of range (naming the example). On success the caller frees out with
 * us_metrics_free; on failure out holds nothing to free. n may be 0 (all rates 0). */
us_status us_metrics_classify(const us_metrics_options *opt, int n, int n_labels,
                              const int *reference, const int *predicted, const double *confidence,
                              const int *gold, us_classify_metrics *out, us_err *err);
void us_metrics_free(us_classify_metrics *m);

/* Bootstrap percentile interval for the mean of 0/1 outcomes hits[0..n): `resamples` resamples
 * drawn with us_rng seeded by seed; lo and hi are the (1-level)/2 and (1+level)/2 quantiles
 * (linear interpolation). n == 0 gives 0, 0. */
us_status us_metrics_bootstrap_mean(const unsigned char *hits, int n, int resamples, double level,
                                    uint64_t seed, double *lo, double *hi, us_err *err);

/* Quantile q in [0, 1] of an ascending array, linear interpolation between closest ranks (the
 * numpy default). NaN when n is 0. */
double us_metrics_quantile_sorted(const double *sorted, int n, double q);

typedef struct us_latency {
  int n;
  double mean, p50, p90, p99, max; /* seconds; all 0 when n is 0 */
} us_latency;

/* Summary of latency samples (seconds, any order; the input is not modified). */
us_status us_metrics_latency(const double *seconds, int n, us_latency *out, us_err *err);

/* ---- generation: one prediction against one reference ---------------------------------- */

/* Equal after trimming leading and trailing ASCII whitespace (bytes otherwise compared exactly). */
bool us_metrics_exact_match(const char *prediction, const char *reference);

/* Token F1 (SQuAD style): both texts lower-cased (ASCII) and split into runs of letters and
 * digits (bytes >= 0x80 count as letters, so UTF-8 words stay whole); F1 of the multiset
 * overlap. Both empty: 1. One empty: 0. */
us_status us_metrics_token_f1(const char *prediction, const char *reference, double *f1,
                              us_err *err);

/* ROUGE-L F1 over the same tokens: longest common subsequence length l, precision l/|pred|,
 * recall l/|ref|, harmonic mean. Both empty: 1. One empty: 0. */
us_status us_metrics_rouge_l(const char *prediction, const char *reference, double *f1,
                             us_err *err);

/* chrF (Popovic 2015): character n-grams for n = 1..6 over UTF-8 code points with whitespace
 * removed; precision and recall are averaged over the orders that both texts are long enough
 * for, then F-beta with beta = 2 (recall weighs twice). In [0, 1], not x100. Both empty: 1.
 * One empty: 0. Invalid UTF-8 bytes count as one character each. */
us_status us_metrics_chrf(const char *prediction, const char *reference, double *score,
                          us_err *err);

/* True if text is one complete JSON value (cJSON), surrounding whitespace allowed. */
bool us_metrics_is_json(const char *text);

typedef struct us_generate_metrics {
  int n;              /* pairs scored */
  double exact_match; /* means over the n pairs */
  double token_f1;
  double rouge_l;
  double chrf;
  int n_json_references;  /* pairs whose reference is valid JSON */
  double valid_json_rate; /* share of those whose prediction is valid JSON too; 0 if none */
  int n_json_objects;     /* pairs whose reference is a JSON object */
  double json_field_f1;   /* micro-F1 over the top-level (key, value) pairs of those objects: a
                           * predicted pair counts when the reference has the same key with an
                           * equal value (each reference pair matched once); a prediction that is
                           * not a JSON object predicts no pair; 0 if no reference is an object */
} us_generate_metrics;

/* Top-level (key, value) pairs of prediction that match reference (both JSON objects; a text
 * that is not one has no pairs): *matched, *predicted and *expected pair counts. */
void us_metrics_json_fields(const char *prediction, const char *reference, int *matched,
                            int *predicted, int *expected);

/* Means of the generation metrics over n (prediction, reference) pairs. A NULL string counts
 * as "". */
us_status us_metrics_generate(int n, const char *const *predictions, const char *const *references,
                              us_generate_metrics *out, us_err *err);

#endif
