/* /metrics in Prometheus's text format: requests and latency by route, money, the live
 * agreement of the audit and the threshold in force. Counters are atomics bumped by the request
 * threads; the text is built on demand. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/buf.h"
#include "serve/serve_int.h"

const char *const us__route_names[US__ROUTE_COUNT] = {"student", "teacher", "cache", "error"};
const double us__hist_bounds[US__HIST_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,  0.005,
                                                  0.01,   0.025,   0.05,   0.1,   0.25,    0.5,
                                                  1,      2.5,     5,      10,    INFINITY};

const double us__added_bounds[US__ADDED_BUCKETS] = {
    0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015,
    0.002,   0.003,  0.005,  0.01,   0.025,  0.1,     1,     INFINITY};

static int bucket_of(const double *bounds, int n, double seconds) {
  int b = 0;
  while (b < n - 1 && seconds > bounds[b]) b++;
  return b;
}

void us__metrics_added(us__server *s, double seconds) {
  if (seconds < 0) seconds = 0; /* two clocks' readings a microsecond apart */
  atomic_fetch_add(&s->added_hist[bucket_of(us__added_bounds, US__ADDED_BUCKETS, seconds)], 1);
  atomic_fetch_add(&s->added_sum_us, (int_fast64_t)(seconds * 1e6));
}

void us__metrics_observe(us__server *s, int route, double seconds) {
  atomic_fetch_add(&s->requests[route], 1);
  atomic_fetch_add(&s->hist[route][bucket_of(us__hist_bounds, US__HIST_BUCKETS, seconds)], 1);
  atomic_fetch_add(&s->hist_sum_us[route], (int_fast64_t)(seconds * 1e6));
}

/* *a += v as one compare-and-swap loop (C11's += on an atomic double wants libatomic). */
static void add_double(_Atomic double *a, double v) {
  double old = atomic_load(a);
  while (!atomic_compare_exchange_weak(a, &old, old + v)) {
  }
}

void us__money_add(us__server *s, double spent, double saved) {
  if (spent != 0) add_double(&s->spent_usd, spent);
  if (saved != 0) add_double(&s->saved_usd, saved);
}

static void gauge(us_buf *b, const char *name, const char *help, double v) {
  /* Prometheus spells the missing value NaN */
  if (isnan(v))
    us_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s NaN\n", name, help, name, name);
  else
    us_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.12g\n", name, help, name, name, v);
}

/* A histogram's bucket, sum and count lines, in Prometheus's text format; label (such as
 * route="teacher") goes inside the braces of every line, or NULL for none. */
static void histogram(us_buf *b, const char *name, const char *label, const double *bounds,
                      const atomic_int_fast64_t *counts, int n, const atomic_int_fast64_t *sum_us) {
  const char *sep = label ? "," : "";
  if (!label) label = "";
  long long cum = 0;
  for (int i = 0; i < n; i++) {
    cum += (long long)atomic_load(&counts[i]);
    if (isinf(bounds[i]))
      us_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %lld\n", name, label, sep, cum);
    else
      us_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %lld\n", name, label, sep, bounds[i], cum);
  }
  const char *open = *label ? "{" : "", *close = *label ? "}" : "";
  us_buf_printf(b, "%s_sum%s%s%s %.6f\n", name, open, label, close,
                (double)atomic_load(sum_us) / 1e6);
  us_buf_printf(b, "%s_count%s%s%s %lld\n", name, open, label, close, cum);
}

char *us__metrics_text(us__server *s) {
  us_buf b;
  us_buf_init(&b, 0);
  us_buf_puts(&b,
              "# HELP understudy_requests_total Requests answered, by route (student, teacher, "
              "cache, error).\n# TYPE understudy_requests_total counter\n");
  for (int r = 0; r < US__ROUTE_COUNT; r++)
    us_buf_printf(&b, "understudy_requests_total{route=\"%s\"} %lld\n", us__route_names[r],
                  (long long)atomic_load(&s->requests[r]));
  us_buf_puts(&b,
              "# HELP understudy_request_duration_seconds Time from the request's arrival to its "
              "response, by route.\n# TYPE understudy_request_duration_seconds histogram\n");
  for (int r = 0; r < US__ROUTE_COUNT; r++) {
    char label[64];
    snprintf(label, sizeof label, "route=\"%s\"", us__route_names[r]);
    histogram(&b, "understudy_request_duration_seconds", label, us__hist_bounds, s->hist[r],
              US__HIST_BUCKETS, &s->hist_sum_us[r]);
  }
  us_buf_puts(
      &b,
      "# HELP understudy_teacher_added_seconds What the server adds to a teacher answer: "
      "the request's time from its arrival to its response, less the teacher's own time "
      "for it on the wire; waits for teacher.concurrency or the rate limits are in it (answers "
      "at the first attempt).\n"
      "# TYPE understudy_teacher_added_seconds histogram\n");
  histogram(&b, "understudy_teacher_added_seconds", NULL, us__added_bounds, s->added_hist,
            US__ADDED_BUCKETS, &s->added_sum_us);
  double spent = s->spent_usd, saved = s->saved_usd;
  us_buf_printf(&b,
                "# HELP understudy_teacher_spent_usd_total Dollars paid to the teacher while "
                "serving (audits included).\n# TYPE understudy_teacher_spent_usd_total counter\n"
                "understudy_teacher_spent_usd_total %.10f\n",
                spent);
  us_buf_printf(&b,
                "# HELP understudy_saved_usd_total Dollars saved against sending every request to "
                "the teacher.\n# TYPE understudy_saved_usd_total counter\n"
                "understudy_saved_usd_total %.10f\n",
                saved);
  us_teacher_gateway_spend gs = {0};
  if (s->gateway) us_teacher_gateway_budget(s->gateway, &gs);
  us_buf_printf(&b,
                "# HELP understudy_teacher_unanswered_total Teacher requests that may have been "
                "billed without an answer (timed out or reset after the body was sent).\n"
                "# TYPE understudy_teacher_unanswered_total counter\n"
                "understudy_teacher_unanswered_total %lld\n"
                "# HELP understudy_teacher_unanswered_usd_total Their worst-case cost, counted "
                "against teacher.budget_usd.\n"
                "# TYPE understudy_teacher_unanswered_usd_total counter\n"
                "understudy_teacher_unanswered_usd_total %.10f\n",
                (long long)gs.unanswered, gs.unanswered_usd);
  gauge(&b, "understudy_teacher_in_flight_worst_usd",
        "Worst-case cost of the teacher requests in flight, reserved against the budget.",
        gs.in_flight_worst_usd);
  gauge(&b, "understudy_teacher_budget_usd", "teacher.budget_usd.", s->config->teacher.budget_usd);
  int64_t n = 0, agreeing = 0;
  double agreement, low;
  us__audit_live(s, &n, &agreeing, &agreement, &low);
  us_buf_printf(&b,
                "# HELP understudy_audits_total Student answers audited by the teacher since the "
                "student was loaded.\n# TYPE understudy_audits_total counter\n"
                "understudy_audits_total %lld\n"
                "# HELP understudy_audit_agreements_total Audits where the teacher agreed.\n"
                "# TYPE understudy_audit_agreements_total counter\n"
                "understudy_audit_agreements_total %lld\n",
                (long long)n, (long long)agreeing);
  gauge(&b, "understudy_live_agreement",
        "Share of audited student answers the teacher agreed with.", agreement);
  gauge(&b, "understudy_live_agreement_lower_bound",
        "One-sided Wilson lower bound of the live agreement at quality.confidence.", low);
  gauge(&b, "understudy_target_agreement", "quality.target_agreement.",
        s->config->quality.target_agreement);
  gauge(&b, "understudy_threshold",
        "Confidence at or above which the student answers (above 1: never).", s->threshold);
  gauge(&b, "understudy_drift", "1 when drift switched every request to the teacher.",
        atomic_load(&s->drifted) ? 1 : 0);
  gauge(&b, "understudy_student_reloads", "Students swapped in since the server started.",
        (double)atomic_load(&s->reloads));
  gauge(&b, "understudy_requests_in_flight", "Requests being answered.",
        (double)atomic_load(&s->in_flight));
  us_buf_puts(&b,
              "# HELP understudy_connections Open client connections, by serving thread "
              "(numbered in the order each took its first).\n"
              "# TYPE understudy_connections gauge\n");
  for (int i = 0; i < US__MAX_WORKERS && atomic_load(&s->workers[i]); i++)
    us_buf_printf(&b, "understudy_connections{thread=\"%d\"} %lld\n", i,
                  (long long)atomic_load(&s->worker_connections[i]));
  return us_buf_steal(&b);
}
