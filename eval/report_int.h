/* Internals shared by the report writers (report.c, report_json.c, report_html.c): number
 * formatting and the headline, worked out once so the three formats always say the same. */
#ifndef US_EVAL_REPORT_INT_H
#define US_EVAL_REPORT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "eval/report.h"

/* "$1,234.50", "$0.0123", "$2.78e-09", "$0". */
void us__report_usd(char *buf, size_t size, double usd);
/* "1,234,567" (rounded); "infinite" for a non-finite value. */
void us__report_count(char *buf, size_t size, double v);
/* "91.2%" */
void us__report_pct(char *buf, size_t size, double share);
/* "about 3 hours", "about 2.5 days", "about 4.2 months", "about 3.1 years". */
void us__report_duration(char *buf, size_t size, double months);

/* The headline, in plain words (no user text inside, so any format can use it). */
typedef struct us__headline {
  bool positive;     /* the recommendation is to switch or to use the cascade */
  char verdict[256]; /* one sentence */
  char size[200];
  char agreement[256];
  char teacher_cost[64]; /* per million requests */
  char student_cost[64];
  char break_even[256];
  char savings[256];
  char cascade[320];
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
