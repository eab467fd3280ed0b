/* Cost arithmetic: per-request prices, one-off costs, break-even and monthly savings. */
#include "eval/cost.h"

#include <math.h>
#include <string.h>

void us_cost_params_defaults(us_cost_params *p) {
  p->cpu_usd_per_hour = 0.05;
  p->requests_per_month = 1e6;
}

static const us_param COST_PARAMS[] = {
    US_PARAM(us_cost_params, cpu_usd_per_hour, US_PARAM_DOUBLE, 0, 1e6, 0,
             "price of one CPU-hour, for the student's training and inference cost"),
    US_PARAM(us_cost_params, requests_per_month, US_PARAM_DOUBLE, 0, 1e15, 0,
             "expected traffic, for break-even and monthly savings"),
};

const us_param *us_cost_param_table(size_t *n) {
  *n = sizeof COST_PARAMS / sizeof COST_PARAMS[0];
  return COST_PARAMS;
}

us_status us_cost_params_check(const us_cost_params *p, us_err *err) {
  return us_params_check(COST_PARAMS, sizeof COST_PARAMS / sizeof COST_PARAMS[0], p, err);
}

double us_cost_teacher_per_request(double paid_usd, long paid_calls) {
  return paid_calls > 0 ? paid_usd / (double)paid_calls : 0.0;
}

double us_cost_from_tokens(double input_tokens, double output_tokens, double input_usd_per_mtok,
                           double output_usd_per_mtok) {
  return (input_tokens * input_usd_per_mtok + output_tokens * output_usd_per_mtok) / 1e6;
}

double us_cost_break_even(double one_off_usd, double teacher_usd_per_request,
                          double system_usd_per_request) {
  double saving = teacher_usd_per_request - system_usd_per_request;
  if (!(saving > 0)) return INFINITY;
  return one_off_usd / saving;
}

static us_status check(const char *name, double v, us_err *err) {
  if (isfinite(v) && v >= 0) return US_OK;
  return us_err_set(err, US_ERR_INPUT, "cost model: %s must be a finite number >= 0, got %g", name,
                    v);
}

us_status us_cost_compute(const us_cost_inputs *in, us_cost *out, us_err *err) {
  memset(out, 0, sizeof *out);
  us_err why;
  if (us_cost_params_check(&in->cost, &why) != US_OK)
    return us_err_set(err, US_ERR_INPUT, "cost model: cost.%s", why.msg);
  const struct {
    const char *name;
    double v;
  } fields[] = {
      {"teacher dollars per request", in->teacher_usd_per_request},
      {"labelling spend", in->labelling_spend_usd},
      {"cache savings", in->cache_saved_usd},
      {"batch savings", in->batch_saved_usd},
      {"training CPU seconds", in->training_cpu_seconds},
      {"student CPU seconds per request", in->student_cpu_seconds_per_request},
      {"teacher.params_b", in->teacher_params_b},
      {"student parameter count", in->student_params},
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    us_status st = check(fields[i].name, fields[i].v, err);
    if (st != US_OK) return st;
  }
  double usd_per_cpu_second = in->cost.cpu_usd_per_hour / 3600.0;
  out->teacher_usd_per_request = in->teacher_usd_per_request;
  out->student_usd_per_request = in->student_cpu_seconds_per_request * usd_per_cpu_second;
  out->teacher_usd_per_million = out->teacher_usd_per_request * 1e6;
  out->student_usd_per_million = out->student_usd_per_request * 1e6;
  out->training_usd = in->training_cpu_seconds * usd_per_cpu_second;
  out->labelling_spend_usd = in->labelling_spend_usd;
  out->cache_saved_usd = in->cache_saved_usd;
  out->batch_saved_usd = in->batch_saved_usd;
  out->one_off_usd = in->labelling_spend_usd + out->training_usd;
  out->saving_per_request = out->teacher_usd_per_request - out->student_usd_per_request;
  out->break_even_requests = us_cost_break_even(out->one_off_usd, out->teacher_usd_per_request,
                                                out->student_usd_per_request);
  out->breaks_even = isfinite(out->break_even_requests);
  out->requests_per_month = in->cost.requests_per_month;
  out->break_even_months = out->breaks_even && in->cost.requests_per_month > 0
                               ? out->break_even_requests / in->cost.requests_per_month
                               : INFINITY;
  out->teacher_usd_per_month = out->teacher_usd_per_request * in->cost.requests_per_month;
  out->student_usd_per_month = out->student_usd_per_request * in->cost.requests_per_month;
  out->monthly_savings_usd = out->teacher_usd_per_month - out->student_usd_per_month;
  out->size_ratio_known = in->teacher_params_b > 0 && in->student_params > 0;
  out->size_ratio = out->size_ratio_known ? in->teacher_params_b * 1e9 / in->student_params : 0.0;
  return US_OK;
}
