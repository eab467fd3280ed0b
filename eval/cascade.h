/* The confidence cascade: the student answers when its confidence reaches a threshold and the
 * teacher answers the rest. For every threshold: coverage, quality against the teacher (and
 * gold), blended cost; and the recommendation, which is the cheapest threshold meeting the
 * quality target, or plainly "stay with the teacher" when none does. */
#ifndef US_EVAL_CASCADE_H
#define US_EVAL_CASCADE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/params.h"
#include "core/status.h"

/* The quality settings (config section "quality"; ranges in us_quality_param_table). */
typedef struct us_quality_params {
  double target_agreement; /* agreement with the teacher a recommended threshold must reach */
  double confidence;       /* a threshold qualifies only when the one-sided lower bound of its
                              agreement at this confidence meets the target; 0 judges on the
                              point estimate */
} us_quality_params;

/* target_agreement 0.95, confidence 0.95. */
void us_quality_params_defaults(us_quality_params *p);
/* Every field of us_quality_params with its range; *n set to the number of entries. Static. */
const us_param *us_quality_param_table(size_t *n);
/* US_ERR_CONFIG with "<field>: expected ..., found ..." when a field is out of range. */
us_status us_quality_params_check(const us_quality_params *p, us_err *err);

typedef enum {
  US_CASCADE_TEACHER_ONLY, /* threshold +inf: the student never answers (and is not run) */
  US_CASCADE_THRESHOLD,    /* the student answers when confidence >= threshold */
  US_CASCADE_STUDENT_ONLY  /* threshold -inf: the student answers everything */
} us_cascade_kind;

typedef struct us_cascade_point {
  us_cascade_kind kind;
  double threshold;         /* +INFINITY / -INFINITY for the two fixed systems */
  int answered;             /* examples the student answers */
  double coverage;          /* answered / n */
  double agreement;         /* combined system vs teacher: deferred examples count as agreeing */
  double agreement_low;     /* one-sided lower confidence bound on agreement at the analysis's
                               confidence level (Wilson, over all n examples); 1 for teacher only,
                               equal to agreement at level 0 */
  double gold_accuracy;     /* combined system vs gold over examples with gold; 0 if no gold */
  double usd_per_request;   /* student cost (it runs first on every request, unless teacher only)
                               + (1 - coverage) x teacher cost */
  double student_agreement; /* agreement of the student's own answers with the teacher's
                               (over the answered examples only); NAN for teacher only */
  double student_agreement_low; /* its one-sided lower bound (Wilson over `answered`), equal to
                                   student_agreement at level 0; NAN for teacher only */
} us_cascade_point;

typedef enum {
  US_CASCADE_USE_STUDENT, /* the student alone meets the target and is cheaper */
  US_CASCADE_USE_CASCADE, /* a threshold with 0 < coverage < 1 is the cheapest that meets it */
  US_CASCADE_STAY_BELOW_TARGET, /* no threshold where the student answers meets the target */
  US_CASCADE_STAY_NOT_CHEAPER,  /* some meet the target, but none costs less than the teacher */
  US_CASCADE_STAY_NO_DATA,      /* no examples */
  US_CASCADE_STAY_NOT_LEARNED   /* the student alone does not beat the majority-class or the
                                   chance baseline: whatever its confidence says, it did not
                                   learn the task */
} us_cascade_verdict;

typedef struct us_cascade_inputs {
  int n;
  const double *confidence;    /* per example; any scale where higher means surer (a probability,
                                  or a mean token log-probability for generation) */
  const double *student_score; /* per example quality of the student's answer against the
                                  teacher's, in [0, 1]: 1 agrees, 0 does not (or a partial score) */
  const int *student_gold; /* NULL, or per example 1 student right vs gold, 0 wrong, -1 no gold */
  const int *teacher_gold; /* same for the teacher; required when student_gold is given */
  double student_usd_per_request;
  double teacher_usd_per_request;
  us_quality_params quality; /* the target and the confidence level (config section "quality") */
  /* Classify only, for the baselines: the teacher's label per example (0..n_labels-1) and the
   * number of labels. NULL / 0 (generation) skips the baseline check. */
  const int *teacher_label;
  int n_labels;
} us_cascade_inputs;

/* What a student that learned nothing would score against the teacher (classify only). */
typedef struct us_cascade_baselines {
  bool known;                   /* false without teacher labels (generation): no check */
  double chance;                /* 1 / n_labels: answering a label at random */
  double majority_class;        /* share of the teacher's most common label: always answering it */
  int majority_label;           /* that label's index */
  double student_agreement;     /* the student alone (every example) */
  double student_agreement_low; /* its lower bound at the analysis's confidence level */
  bool beaten; /* the student's lower bound is above both baselines (or it always agrees) */
} us_cascade_baselines;

typedef struct us_cascade {
  us_cascade_point *points; /* [0] teacher only, then thresholds from the highest distinct
                               confidence down (coverage rising), last the student only */
  int n_points;
  int teacher_only; /* index of the teacher-only point (0) */
  int student_only; /* index of the student-only point (n_points - 1) */
  int recommended;  /* index of the recommended point; teacher_only when staying */
  us_cascade_verdict verdict;
  double target_agreement;
  double confidence_level; /* quality.confidence as given in the inputs */
  int n;
  bool has_gold;
  int n_gold;
  int best_quality_threshold_point; /* point with coverage > 0 of highest quality, the lower of
                                       agreement_low and student_agreement_low (for the message
                                       when none meets the target); -1 if n is 0 */
  us_cascade_baselines baselines;
} us_cascade;

/* Computes every point and the recommendation. A point qualifies when both the whole system's
 * agreement and the agreement of the student's own answers reach the target (their lower bounds
 * at quality.confidence > 0): deferred requests always agree with the teacher, so the whole
 * system alone would let any student, even one always wrong, take up to (1 - target) of the
 * traffic. With teacher labels, a student whose agreement does not beat the majority-class and
 * chance baselines gets US_CASCADE_STAY_NOT_LEARNED. Caller frees out with us_cascade_free (also on
 * failure, where it is empty). Examples whose teacher answer is unusable should be left out by
 * the caller: the teacher is taken to agree with itself on every example given. */
us_status us_cascade_compute(const us_cascade_inputs *in, us_cascade *out, us_err *err);

/* z with P(Z <= z) = level for a standard normal Z (1.645 for 0.95), by bisection; 0 for
 * level <= 0.5. */
double us_normal_quantile(double level);
/* One-sided Wilson lower bound of a share of hits (may be fractional) out of n at z, clamped to
 * [0, hits / n]; 0 when n is 0. The cascade's bounds and serve's live agreement use it. */
double us_wilson_low(double hits, double n, double z);
void us_cascade_free(us_cascade *c);

/* A short, plain sentence for the verdict, e.g. "stay with the teacher: no threshold reaches
 * the quality target". Static string. */
const char *us_cascade_verdict_str(us_cascade_verdict v);

/* Picks at most max_rows point indices for a readable table: teacher only, student only, the
 * recommended point, and thresholds spread evenly in coverage, in point order. Returns how many
 * were written to rows. */
int us_cascade_table_rows(const us_cascade *c, int max_rows, int *rows);

#endif
