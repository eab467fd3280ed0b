/* The eval and report stages. Eval runs the student over the test split (never seen in
 * training), measuring its speed on this machine, and stores its answers in the workspace
 * (result "predictions"). Building a report reads those answers, the teacher's targets, the
 * cache's real spend and the training result, and computes the metrics, cost model and cascade.
 * Ownership: us_eval_data owns everything its report points to; free it with us_eval_data_free. */
#ifndef US_PIPELINE_EVALUATE_H
#define US_PIPELINE_EVALUATE_H

#include <stdint.h>

#include "cache/cache.h"
#include "eval/report.h"
#include "pipeline/config.h"

typedef struct us_eval_summary {
  int64_t n_test;   /* test prompts */
  int64_t n_scored; /* with a usable teacher answer */
  double wall_s;    /* time to answer them all, one thread */
  double cpu_s_per_request;
} us_eval_summary;

/* Runs the student in <output>/student.bin over the test split and stores its answers. */
us_status us_eval_predict_stage(const us_config *c, us_cache *cache, us_eval_summary *summary,
                                us_err *err);

typedef struct us_eval_data us_eval_data;

/* Builds everything a report shows from the workspace. Needs the eval stage to have run. */
us_status us_eval_build(const us_config *c, us_cache *cache, us_eval_data **out, us_err *err);
const us_report *us_eval_report(const us_eval_data *d);
void us_eval_data_free(us_eval_data *d);

#endif
