/* Internals shared by the report writers (report.c, report_json.c, report_html.c): number
 * formatting and the headline, worked out once so the three formats always say the same. */
#ifndef US_EVAL_REPORT_INT_H
#define US_EVAL_REPORT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "eval/report.h"

/* Money as a person reads it: "$1,234", "$12.50", "$0.0123", "under $0.01", "$0"; a loss
 * under a cent is "-$0.00 (under a cent)". Never scientific notation (report.json keeps the
 * exact figure). */
void us__report_usd(char *buf, size_t size, double usd);
/* A price per request, which is often a fraction of a cent: as us__report_usd from $0.01 up,
 * then plain notation with three significant digits ("$0.000495") down to a millionth of a
 * dollar, below that "under $0.000001 ($0.58 per million)". */
void us__report_usd_per_request(char *buf, size_t size, double usd);
/* "1,234,567" (rounded); "infinite" for a non-finite value. */
void us__report_count(char *buf, size_t size, double v);
/* A measured share, rounded to the nearest 0.1%: "91.2%"; a share strictly between 0 and 1 never
 * reads "0.0%" or "100.0%" (it is "under 0.1%" or "over 99.9%"). */
void us__report_pct(char *buf, size_t size, double share);
/* A lower confidence bound, rounded down (never above the bound): "94.9%" for 0.94962, with as
 * many decimals as it takes for the text to compare with the target as the decision does (a
 * bound meeting a 95.05% target reads "95.05%", not "95.0%"). target <= 0: one decimal. */
void us__report_pct_low(char *buf, size_t size, double bound, double target);
/* An upper bound, rounded up: "29.8%" for 0.29731. */
void us__report_pct_high(char *buf, size_t size, double bound);
/* A configured target, exact: "95.0%", "95.05%". */
void us__report_pct_target(char *buf, size_t size, double target);
/* "about 3 hours", "about 2.5 days", "about 4.2 months", "about 3.1 years". */
void us__report_duration(char *buf, size_t size, double months);

/* The headline, in plain words (no user text inside, so any format can use it). */
typedef struct us__headline {
  bool positive;     /* the recommendation is to switch or to use the cascade */
  char verdict[512]; /* one sentence (with the reason when the student did not learn) */
  char size[200];
  char agreement[256];
  char teacher_cost[64]; /* per million requests */
  char student_cost[64];
  char break_even[256];
  char savings[256];
  char cascade[640];
  double system_usd_per_request; /* cost of what is recommended (the teacher when staying) */
  /* For the system adopted (the recommendation, or the student when there is no cascade):
   * requests to break even (INFINITY: never) and savings a month at cost.requests_per_month;
   * both NAN when staying with the teacher or when the cost is unknown. */
  double break_even_requests;
  double monthly_savings_usd;
} us__headline;

void us__report_headline_fill(const us_report *r, us__headline *h);

/* Point of the cascade that the headline and charts call "recommended", or NULL. */
const us_cascade_point *us__report_recommended(const us_report *r);

/* Label k of the report, or fallback when there is none (no labels, k out of range, a NULL
 * entry). */
const char *us__report_label(const us_report *r, int k, const char *fallback);

/* When the student answers at point p: "never (teacher only)", "always (student only)" or
 * "confidence <at_least> 0.8123" (at_least is ">=" or "&ge;", as the format wants). */
void us__report_point_when(char *buf, size_t size, const us_cascade_point *p, const char *at_least);

#endif
