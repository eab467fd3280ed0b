/* The cost model: what a request costs from the teacher and from the student, what building the
 * student cost, when it pays for itself, and what it saves a month. Pure arithmetic on numbers
 * the caller measured (the cache's real spend, measured CPU seconds). Owned by eval. */
#ifndef US_EVAL_COST_H
#define US_EVAL_COST_H

#include <stdbool.h>

#include "core/status.h"

typedef struct us_cost_inputs {
  double teacher_usd_per_request; /* measured: see us_cost_teacher_per_request */
  double labelling_spend_usd;     /* teacher spend actually paid to label (not hits or imports) */
  double cache_saved_usd;         /* what cache hits and imported answers would have cost */
  double training_cpu_seconds;    /* measured CPU seconds of training (all threads) */
  double student_cpu_seconds_per_request; /* measured, single thread */
  double cpu_usd_per_hour;                /* cost.cpu_usd_per_hour */
  double requests_per_month;              /* cost.requests_per_month */
  double teacher_params_b;                /* teacher.params_b; 0 = unknown */
  double student_params;                  /* the student's parameter count */
} us_cost_inputs;

typedef struct us_cost {
  double teacher_usd_per_request;
  double student_usd_per_request; /* CPU seconds per request x price per CPU-second */
  double teacher_usd_per_million; /* per million requests */
  double student_usd_per_million;
  double training_usd;        /* training CPU seconds x price per CPU-second */
  double one_off_usd;         /* labelling spend + training */
  double saving_per_request;  /* teacher - student; may be negative */
  bool breaks_even;           /* false when the student is not cheaper per request */
  double break_even_requests; /* one_off / saving_per_request; INFINITY if !breaks_even */
  double break_even_months;   /* at requests_per_month; INFINITY if !breaks_even or 0 volume */
  double requests_per_month;
  double teacher_usd_per_month;
  double student_usd_per_month;
  double monthly_savings_usd; /* teacher - student per month; negative if the student costs more */
  double cache_saved_usd;
  double labelling_spend_usd;
  bool size_ratio_known; /* false when teacher.params_b or the student size is 0 */
  double size_ratio;     /* teacher parameters / student parameters; 0 if unknown */
} us_cost;

/* Mean teacher price of one request from the cache: total spend of the calls really paid for,
 * divided by their number (cache hits and imported entries excluded by the caller). 0 when
 * paid_calls is 0 (use us_cost_from_tokens then). */
double us_cost_teacher_per_request(double paid_usd, long paid_calls);

/* Price of one request from mean token counts and the prices per million tokens. */
double us_cost_from_tokens(double input_tokens, double output_tokens, double input_usd_per_mtok,
                           double output_usd_per_mtok);

/* Requests after which a system costing system_usd_per_request, having spent one_off_usd up
 * front, has cost less in total than the teacher alone. INFINITY if it never does. */
double us_cost_break_even(double one_off_usd, double teacher_usd_per_request,
                          double system_usd_per_request);

/* Fills out from in. Fails with US_ERR_INPUT if any input is negative or not finite. */
us_status us_cost_compute(const us_cost_inputs *in, us_cost *out, us_err *err);

#endif
