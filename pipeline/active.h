/* Active labelling (label.strategy "active"): instead of paying the teacher for every train
 * prompt, label a seed set chosen for coverage of the pool, train the student, pick the next
 * label.round_prompts by the student's uncertainty mixed with diversity, and repeat until
 * label.max_prompts, the budget, or until the student's validation agreement stops gaining
 * (label.min_gain over the last two rounds). The test split is always labelled in full; the
 * validation slice is the picked prompts that us_train_is_validation puts in it. Picks are
 * committed to the workspace (cache/active.h) before they are sent, so a rerun after a crash
 * labels the same prompts (cached: nothing paid twice) and continues the round. */
#ifndef US_PIPELINE_ACTIVE_H
#define US_PIPELINE_ACTIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "cache/active.h"
#include "core/params.h"
#include "core/status.h"
#include "distill/teacher.h"

/* The label.* settings. A "prompts" value up to 1 is a fraction of the train pool, above 1 a
 * count. */
typedef struct us_active_params {
  char *strategy;       /* "all" or "active"; NULL: US_ACTIVE_DEFAULT_STRATEGY */
  double seed_prompts;  /* first round; a fraction is capped at US_ACTIVE_SEED_CAP prompts */
  double round_prompts; /* every later round */
  double max_prompts;   /* train prompts labelled at most */
  double min_gain;      /* points of validation agreement over two rounds; 0: rule off */
  double diversity;     /* weight of distance against uncertainty when picking, 0..1 */
  bool random_rounds;   /* later rounds in a fixed pseudo-random order (the baseline) */
} us_active_params;

#define US_ACTIVE_DEFAULT_STRATEGY "all"
#define US_ACTIVE_SEED_CAP 1000
#define US_ACTIVE_FEATURE_DIM 256 /* hashed features for distances (student/select.h) */

void us_active_params_defaults(us_active_params *p);
const us_param *us_active_param_table(size_t *n);
/* The table, then: strategy is "all" or "active" (or NULL); a count above 1 is whole. Messages
 * start with the field name. */
us_status us_active_params_check(const us_active_params *p, us_err *err);
/* Is p's strategy "active"? */
bool us_active_enabled(const us_active_params *p);

/* A "prompts" value over a pool of n: a fraction (value <= 1) rounds up, at most cap when cap
 * > 0; a count is at most n. */
int64_t us_active_count(double value, int64_t n, int64_t cap);

/* Why labelling stops after the newest of rounds[0..n) (NULL: go on): "max_prompts" when
 * max_labels are labelled, "pool" when the pool is, "min_gain" when the newest student's
 * agreement on the validation slice of two rounds back (valid_back) is less than p->min_gain
 * points above what the student of that round scored on it (its valid_agreement). */
const char *us_active_stop_reason(const us_active_params *p, const us_active_round *rounds,
                                  size_t n, int64_t max_labels, int64_t pool);

/* The stage. label: the teacher's options (dry_run estimates the test split and the seed set,
 * records nothing); train: the student's (progress lines); round_done (may be NULL) is called
 * once per round measured in this call. */
struct us_config;
struct us_train_options;
typedef struct us_active_options {
  const us_label_options *label;
  const struct us_train_options *train;
  void (*round_done)(void *user, const us_active_round *r);
  void *user;
} us_active_options;

/* Runs (or resumes) the rounds until a stop rule holds. stats add up every round's teacher
 * pass (total: the test split plus the picked train prompts). Returns what the teacher or the
 * train stage returned when one fails (US_ERR_BUDGET, US_ERR_INTERRUPTED, ...): every answer
 * and pick so far is kept, and a rerun continues. */
us_status us_active_label(const struct us_config *c, us_cache *cache, const us_active_options *o,
                          us_label_stats *stats, us_err *err);

#endif
