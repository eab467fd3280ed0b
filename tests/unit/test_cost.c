/* Cost model arithmetic against hand-computed figures: per-request prices, one-off cost,
 * break-even, monthly savings, size ratio, and the cases where the student never pays off. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "eval/cost.h"

#define NEAR(a, b) assert_true(fabs((double)(a) - (double)(b)) <= 1e-9 * (1 + fabs((double)(b))))

static us_cost_inputs sample(void) {
  us_cost_inputs in = {0};
  in.teacher_usd_per_request = us_cost_teacher_per_request(1.0005, 1000); /* $0.0010005 */
  in.labelling_spend_usd = 1.9;
  in.cache_saved_usd = 0.7;
  in.training_cpu_seconds = 100;             /* at $3.60/h = $0.001/s: $0.10 */
  in.student_cpu_seconds_per_request = 5e-4; /* $5e-7 per request */
  in.cost.cpu_usd_per_hour = 3.6;
  in.cost.requests_per_month = 1e6;
  in.teacher_params_b = 70;
  in.student_params = 2e6;
  return in;
}

static void cost_should_match_hand_arithmetic(void **state) {
  (void)state;
  us_cost_inputs in = sample();
  us_cost c;
  assert_int_equal(us_cost_compute(&in, &c, NULL), US_OK);
  NEAR(c.teacher_usd_per_request, 0.0010005);
  NEAR(c.student_usd_per_request, 5e-7);
  NEAR(c.teacher_usd_per_million, 1000.5);
  NEAR(c.student_usd_per_million, 0.5);
  NEAR(c.training_usd, 0.1);
  NEAR(c.one_off_usd, 2.0);
  NEAR(c.saving_per_request, 0.001);
  assert_true(c.breaks_even);
  NEAR(c.break_even_requests, 2000);
  NEAR(c.break_even_months, 0.002);
  NEAR(c.teacher_usd_per_month, 1000.5);
  NEAR(c.student_usd_per_month, 0.5);
  NEAR(c.monthly_savings_usd, 1000);
  NEAR(c.cache_saved_usd, 0.7);
  assert_true(c.size_ratio_known);
  NEAR(c.size_ratio, 35000);
}

static void cost_should_report_no_break_even_when_the_student_costs_more(void **state) {
  (void)state;
  us_cost_inputs in = sample();
  in.student_cpu_seconds_per_request = 2; /* $0.002 > $0.0010005 */
  us_cost c;
  assert_int_equal(us_cost_compute(&in, &c, NULL), US_OK);
  assert_false(c.breaks_even);
  assert_true(isinf(c.break_even_requests));
  assert_true(isinf(c.break_even_months));
  NEAR(c.monthly_savings_usd, 1000.5 - 2000);
  /* equal prices never break even either */
  assert_true(isinf(us_cost_break_even(1.0, 0.5, 0.5)));
  NEAR(us_cost_break_even(0.0, 0.5, 0.25), 0.0);
}

static void cost_should_leave_size_ratio_unknown_without_params(void **state) {
  (void)state;
  us_cost_inputs in = sample();
  in.teacher_params_b = 0;
  us_cost c;
  assert_int_equal(us_cost_compute(&in, &c, NULL), US_OK);
  assert_false(c.size_ratio_known);
  NEAR(c.size_ratio, 0);
  in = sample();
  in.cost.requests_per_month = 0;
  assert_int_equal(us_cost_compute(&in, &c, NULL), US_OK);
  assert_true(c.breaks_even);
  assert_true(isinf(c.break_even_months));
}

static void cost_should_refuse_negative_or_nan_inputs(void **state) {
  (void)state;
  us_cost_inputs in = sample();
  in.cost.cpu_usd_per_hour = -1;
  us_cost c;
  us_err err;
  assert_int_equal(us_cost_compute(&in, &c, &err), US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "cost.cpu_usd_per_hour"));
  in = sample();
  in.teacher_usd_per_request = NAN;
  assert_int_equal(us_cost_compute(&in, &c, &err), US_ERR_INPUT);
}

static void cost_params_should_default_and_name_the_field_out_of_range(void **state) {
  (void)state;
  us_cost_params p;
  us_cost_params_defaults(&p);
  NEAR(p.cpu_usd_per_hour, 0.05);
  NEAR(p.requests_per_month, 1e6);
  assert_int_equal(us_cost_params_check(&p, NULL), US_OK);
  size_t n = 0;
  const us_param *t = us_cost_param_table(&n);
  assert_int_equal(n, 2);
  assert_string_equal(t[0].name, "cpu_usd_per_hour");
  assert_string_equal(t[1].name, "requests_per_month");
  us_err err;
  p.cpu_usd_per_hour = -0.5;
  assert_int_equal(us_cost_params_check(&p, &err), US_ERR_CONFIG);
  assert_string_equal(err.msg, "cpu_usd_per_hour: expected a number in [0, 1000000], found -0.5");
  p.cpu_usd_per_hour = NAN;
  assert_int_equal(us_cost_params_check(&p, &err), US_ERR_CONFIG);
  assert_true(strncmp(err.msg, "cpu_usd_per_hour: ", 18) == 0);
  us_cost_params_defaults(&p);
  p.requests_per_month = 2e15;
  assert_int_equal(us_cost_params_check(&p, &err), US_ERR_CONFIG);
  assert_string_equal(err.msg,
                      "requests_per_month: expected a number in [0, 1000000000000000], found "
                      "2000000000000000");
  /* the cost model refuses the same settings, naming the config key */
  us_cost_inputs in = sample();
  in.cost.requests_per_month = -1;
  us_cost c;
  assert_int_equal(us_cost_compute(&in, &c, &err), US_ERR_INPUT);
  assert_string_equal(err.msg,
                      "cost model: cost.requests_per_month: expected a number in [0, "
                      "1000000000000000], found -1");
}

static void teacher_price_helpers_should_match_hand_values(void **state) {
  (void)state;
  NEAR(us_cost_from_tokens(1000, 100, 2.5, 10), 0.0035);
  NEAR(us_cost_teacher_per_request(3.0, 0), 0.0);
  NEAR(us_cost_teacher_per_request(3.0, 1200), 0.0025);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cost_should_match_hand_arithmetic),
      cmocka_unit_test(cost_should_report_no_break_even_when_the_student_costs_more),
      cmocka_unit_test(cost_should_leave_size_ratio_unknown_without_params),
      cmocka_unit_test(cost_should_refuse_negative_or_nan_inputs),
      cmocka_unit_test(cost_params_should_default_and_name_the_field_out_of_range),
      cmocka_unit_test(teacher_price_helpers_should_match_hand_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
