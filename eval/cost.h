/* The cost model: what a request costs from the teacher and from the student, what building the
 * student cost, when it pays for itself, and what it saves a month. Pure arithmetic on numbers
 * the caller measured (the cache's real spend, measured CPU seconds). */
#ifndef US_EVAL_COST_H
#define US_EVAL_COST_H

#include <stdbool.h>
#include <stddef.h>

#include "core/params.h"
#include "core/status.h"

/* The cost settings (config section "cost"; ranges in us_cost_param_table). */
typedef struct us_cost_params {
  double cpu_usd_per_hour;   /* price of one CPU-hour, for the student's training and inference */
  double requests_per_month; /* expected traffic, for break-even and monthly savings */
} us_cost_params;

/* cpu_usd_per_hour 0.05, requests_per_month 1e6. */
void us_cost_params_defaults(us_cost_params *p);
/* Every field of us_cost_params with its range; *n set to the number of entries. Static. */
const us_param *us_cost_param_table(size_t *n);
/* US_ERR_CONFIG with "<field>: expected ..., found ..." when a field is out of range. */
us_status us_cost_params_check(const us_cost_params *p, us_err *err);

typedef struct us_cost_inputs {
  double teacher_usd_per_request; /* measured: see us_cost_teacher_per_request */
  double labelling_spend_usd;     /* teacher spend actually paid to label (not hits or imports) */
  double cache_saved_usd;         /* what cache hits and imported answers would have cost */
  double batch_saved_usd;         /* what the Batch API's answers would have cost more live */
  double training_cpu_seconds;    /* measured CPU seconds of training (all threads) */
  double student_cpu_seconds_per_request; /* measured, single thread */
  us_cost_params cost;                    /* the settings (config section "cost") */
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
  double batch_saved_usd;
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

/* Fills out from in. Fails with US_ERR_INPUT if any input is negative or not finite, or
 * in->cost fails us_cost_params_check ("cost model: cost.<field>: ..."). */
us_status us_cost_compute(const us_cost_inputs *in, us_cost *out, us_err *err);

#endif
