/* Report: number formatting, the headline, the Markdown writer, and writing all three files. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "eval/report_int.h"
#include "eval/svg.h"

void us_report_init(us_report *r) {
  memset(r, 0, sizeof *r);
}

us_status us_report_escape_html(us_buf *out, const char *s) {
  return us_svg_escape(out, s);
}

const char *us__report_label(const us_report *r, int k, const char *fallback) {
  const char *label = r->labels && k >= 0 && k < r->n_labels ? r->labels[k] : NULL;
  return label ? label : fallback;
}

void us__report_point_when(char *buf, size_t size, const us_cascade_point *p,
                           const char *at_least) {
  if (p->kind == US_CASCADE_TEACHER_ONLY)
    snprintf(buf, size, "never (teacher only)");
  else if (p->kind == US_CASCADE_STUDENT_ONLY)
    snprintf(buf, size, "always (student only)");
  else
    snprintf(buf, size, "confidence %s %.4g", at_least, p->threshold);
}

/* Digits of a non-negative integer value with thousands separators. */
static void grouped(char *buf, size_t size, double v) {
  char digits[64];
  snprintf(digits, sizeof digits, "%.0f", fabs(v));
  size_t n = strlen(digits), o = 0;
  if (v < 0 && o + 1 < size) buf[o++] = '-';
  for (size_t i = 0; i < n && o + 2 < size; i++) {
    if (i > 0 && (n - i) % 3 == 0) buf[o++] = ',';
    buf[o++] = digits[i];
  }
  buf[o] = '\0';
}

void us__report_count(char *buf, size_t size, double v) {
  if (!isfinite(v)) {
    snprintf(buf, size, "infinite");
    return;
  }
  grouped(buf, size, round(v));
}

void us__report_usd(char *buf, size_t size, double usd) {
  double a = fabs(usd);
  const char *sign = usd < 0 ? "-" : "";
  char whole[48];
  if (!isfinite(usd))
    snprintf(buf, size, "n/a");
  else if (a == 0)
    snprintf(buf, size, "$0");
  else if (a >= 1000) {
    grouped(whole, sizeof whole, a);
    snprintf(buf, size, "%s$%s", sign, whole);
  } else if (a >= 0.1)
    snprintf(buf, size, "%s$%.2f", sign, a);
  else if (a >= 0.01)
    snprintf(buf, size, "%s$%.3f", sign, a);
  else
    snprintf(buf, size, usd < 0 ? "-$0.00 (under a cent)" : "under $0.01");
}

void us__report_usd_per_request(char *buf, size_t size, double usd) {
  double a = fabs(usd);
  if (!isfinite(usd) || a == 0 || a >= 0.01) {
    us__report_usd(buf, size, usd);
    return;
  }
  if (a >= 1e-6) { /* three significant digits, plain: 0.000495 has 6 decimals */
    int decimals = 2 - (int)floor(log10(a));
    snprintf(buf, size, "%s$%.*f", usd < 0 ? "-" : "", decimals, a);
    return;
  }
  char million[48];
  us__report_usd(million, sizeof million, usd * 1e6);
  snprintf(buf, size, "under $0.000001 (%s per million)", million);
}

typedef enum { ROUND_NEAREST, ROUND_DOWN, ROUND_UP } rounding;

/* Share as a percentage with `decimals` decimals. 1e-7 absorbs binary noise (0.95 * 1000 is
 * 949.9999999999999) without moving a real digit. */
static void pct_with(char *buf, size_t size, double share, int decimals, rounding how) {
  double scale = pow(10, decimals), x = share * 100 * scale;
  double v = how == ROUND_DOWN ? floor(x + 1e-7) : how == ROUND_UP ? ceil(x - 1e-7) : round(x);
  snprintf(buf, size, "%.*f%%", decimals, v / scale);
}

void us__report_pct(char *buf, size_t size, double share) {
  if (share > 0 && share < 0.0005)
    snprintf(buf, size, "under 0.1%%");
  else if (share < 1 && share >= 0.9995)
    snprintf(buf, size, "over 99.9%%");
  else
    pct_with(buf, size, share, 1, ROUND_NEAREST);
}

void us__report_pct_low(char *buf, size_t size, double bound, double target) {
  const double eps = 1e-12; /* the cascade's own tolerance when it compares with the target */
  int decimals = 1;
  if (target > 0 && bound >= target - eps)
    while (decimals < 6 &&
           floor(bound * 100 * pow(10, decimals) + 1e-7) < target * 100 * pow(10, decimals) - 1e-6)
      decimals++;
  pct_with(buf, size, bound, decimals, ROUND_DOWN);
}

void us__report_pct_high(char *buf, size_t size, double bound) {
  pct_with(buf, size, bound, 1, ROUND_UP);
}

void us__report_pct_target(char *buf, size_t size, double target) {
  int decimals = 1;
  while (decimals < 6 &&
         fabs(target * 100 * pow(10, decimals) - round(target * 100 * pow(10, decimals))) > 1e-6)
    decimals++;
  pct_with(buf, size, target, decimals, ROUND_NEAREST);
}

void us__report_duration(char *buf, size_t size, double months) {
  double hours = months * 30.44 * 24;
  if (!isfinite(months))
    snprintf(buf, size, "never");
  else if (hours < 1)
    snprintf(buf, size, "under an hour");
  else if (hours < 48)
    snprintf(buf, size, "about %.0f hour%s", hours, hours < 1.5 ? "" : "s");
  else if (months < 2)
    snprintf(buf, size, "about %.1f days", hours / 24);
  else if (months < 24)
    snprintf(buf, size, "about %.1f months", months);
  else
    snprintf(buf, size, "about %.1f years", months / 12);
}

const us_cascade_point *us__report_recommended(const us_report *r) {
  if (!r->cascade || r->cascade->n_points == 0) return NULL;
  return &r->cascade->points[r->cascade->recommended];
}

static void fill_quality(const us_report *r, us__headline *h) {
  char a[32], lo[32], hi[32], n[32];
  if (r->task == US_TASK_CLASSIFY && r->metrics) {
    const us_classify_metrics *m = r->metrics;
    us__report_pct(a, sizeof a, m->agreement);
    us__report_pct_low(lo, sizeof lo, m->agreement_lo, 0);
    us__report_pct_high(hi, sizeof hi, m->agreement_hi);
    us__report_count(n, sizeof n, m->n_scored);
    snprintf(h->agreement, sizeof h->agreement,
             "%s agreement with the teacher (%.0f%% interval %s to %s) on %s test prompts", a,
             m->ci_level * 100, lo, hi, n);
  } else if (r->generation) {
    const us_generate_metrics *g = r->generation;
    us__report_pct(a, sizeof a, g->exact_match);
    us__report_count(n, sizeof n, g->n);
    snprintf(h->agreement, sizeof h->agreement,
             "%s exact match with the teacher, token F1 %.3f, chrF %.3f on %s test prompts", a,
             g->token_f1, g->chrf, n);
  } else {
    snprintf(h->agreement, sizeof h->agreement, "not measured");
  }
}

/* "97.3% (at least 95.3% with 95% confidence)", or "97.3%" when judged on the measure alone.
 * The bound is rounded down, against the target, so the text never claims more than the
 * decision used. */
static void share_and_bound(char *buf, size_t size, const us_cascade *k, double share, double low,
                            double target) {
  char a[32], l[32];
  us__report_pct(a, sizeof a, share);
  if (k->confidence_level > 0) {
    us__report_pct_low(l, sizeof l, low, target);
    snprintf(buf, size, "%s (at least %s with %.0f%% confidence)", a, l, k->confidence_level * 100);
  } else
    snprintf(buf, size, "%s", a);
}

/* The whole system's agreement with the target: "99.1% agreement (at least 98.2% with 95%
 * confidence; target 95.0%)". */
static void whole_agreement(char *buf, size_t size, const us_cascade *k, const us_cascade_point *p,
                            const char *target) {
  char a[32], l[32];
  us__report_pct(a, sizeof a, p->agreement);
  if (k->confidence_level > 0) {
    us__report_pct_low(l, sizeof l, p->agreement_low, k->target_agreement);
    snprintf(buf, size, "%s agreement (at least %s with %.0f%% confidence; target %s)", a, l,
             k->confidence_level * 100, target);
  } else
    snprintf(buf, size, "%s agreement (target %s)", a, target);
}

/* Why a student did not learn: its agreement against the majority-class and chance baselines. */
static void not_learned_reason(char *buf, size_t size, const us_cascade *k) {
  const us_cascade_baselines *b = &k->baselines;
  char student[96], majority[32], chance[32];
  share_and_bound(student, sizeof student, k, b->student_agreement, b->student_agreement_low,
                  fmax(b->chance, b->majority_class));
  us__report_pct(majority, sizeof majority, b->majority_class);
  us__report_pct(chance, sizeof chance, b->chance);
  snprintf(buf, size,
           "its agreement with the teacher, %s, is not shown to beat always answering the "
           "teacher's most common label (the majority-class baseline, %s) or answering at random "
           "(chance, %s)",
           student, majority, chance);
}

static void fill_cascade(const us_report *r, const us_cost *c, us__headline *h) {
  const us_cascade *k = r->cascade;
  const us_cascade_point *p = us__report_recommended(r);
  char cov[32], whole[160], own[96], usd[48], target[32], reason[400];
  if (!k || !p) {
    snprintf(h->cascade, sizeof h->cascade, "not analysed");
    snprintf(h->verdict, sizeof h->verdict, "no cascade analysis: judge from the figures below");
    h->system_usd_per_request = c ? c->student_usd_per_request : 0;
    h->positive = false;
    return;
  }
  snprintf(h->verdict, sizeof h->verdict, "%s", us_cascade_verdict_str(k->verdict));
  h->positive = k->verdict == US_CASCADE_USE_STUDENT || k->verdict == US_CASCADE_USE_CASCADE;
  h->system_usd_per_request = p->usd_per_request;
  us__report_pct_target(target, sizeof target, k->target_agreement);
  us__report_usd(usd, sizeof usd, p->usd_per_request * 1e6);
  const us_cascade_point *b =
      k->best_quality_threshold_point >= 0 ? &k->points[k->best_quality_threshold_point] : NULL;
  if (k->verdict == US_CASCADE_USE_CASCADE || k->verdict == US_CASCADE_USE_STUDENT ||
      (k->verdict == US_CASCADE_STAY_BELOW_TARGET && b)) {
    const us_cascade_point *shown = k->verdict == US_CASCADE_STAY_BELOW_TARGET ? b : p;
    us__report_pct(cov, sizeof cov, shown->coverage);
    share_and_bound(own, sizeof own, k, shown->student_agreement, shown->student_agreement_low,
                    k->target_agreement);
    whole_agreement(whole, sizeof whole, k, shown, target);
  }
  if (k->verdict == US_CASCADE_USE_CASCADE) {
    snprintf(h->cascade, sizeof h->cascade,
             "student answers %s of requests (confidence >= %.4g), the teacher the rest: the "
             "student's own answers agree %s; the whole system %s, %s per million requests",
             cov, p->threshold, own, whole, usd);
  } else if (k->verdict == US_CASCADE_USE_STUDENT) {
    snprintf(h->cascade, sizeof h->cascade, "the student alone: %s, %s per million requests", whole,
             usd);
  } else if (k->verdict == US_CASCADE_STAY_NOT_LEARNED) {
    not_learned_reason(reason, sizeof reason, k);
    snprintf(h->verdict, sizeof h->verdict, "%s: %s", us_cascade_verdict_str(k->verdict), reason);
    snprintf(h->cascade, sizeof h->cascade,
             "none: the student did not learn this task, so its confidence means nothing; stay "
             "with the teacher (target %s)",
             target);
  } else if (b && k->verdict == US_CASCADE_STAY_BELOW_TARGET) {
    if (k->confidence_level > 0)
      snprintf(h->cascade, sizeof h->cascade,
               "none: no threshold is shown to reach the %s target with %.0f%% confidence (the "
               "best lets the student answer %s: its own answers agree %s; the whole system %s); "
               "stay with the teacher",
               target, k->confidence_level * 100, cov, own, whole);
    else
      snprintf(h->cascade, sizeof h->cascade,
               "none: no threshold reaches the %s target (the best lets the student answer only "
               "%s: its own answers agree %s; the whole system %s); stay with the teacher",
               target, cov, own, whole);
  } else {
    snprintf(h->cascade, sizeof h->cascade, "none: stay with the teacher (target %s)", target);
  }
}

static void fill_cost(const us_report *r, us__headline *h) {
  const us_cost *c = r->cost;
  char a[48], b[48], vol[48], when[64];
  h->break_even_requests = h->monthly_savings_usd = NAN;
  if (!c) {
    snprintf(h->teacher_cost, sizeof h->teacher_cost, "not measured");
    snprintf(h->student_cost, sizeof h->student_cost, "not measured");
    snprintf(h->break_even, sizeof h->break_even, "not measured");
    snprintf(h->savings, sizeof h->savings, "not measured");
    return;
  }
  us__report_usd(h->teacher_cost, sizeof h->teacher_cost, c->teacher_usd_per_million);
  us__report_usd(h->student_cost, sizeof h->student_cost, c->student_usd_per_million);
  us__report_count(vol, sizeof vol, c->requests_per_month);
  const char *what = r->cascade ? (h->positive ? "the recommended system" : NULL) : "the student";
  if (!what) {
    /* Staying with the teacher: no savings are claimed; say what the student alone would do. */
    us__report_usd(a, sizeof a, c->monthly_savings_usd);
    snprintf(h->savings, sizeof h->savings,
             "none claimed: the recommendation is to stay with the teacher (the student alone "
             "would change the bill by %s a month at %s requests, below the quality target)",
             a, vol);
    snprintf(h->break_even, sizeof h->break_even, "not applicable: staying with the teacher");
    return;
  }
  double per_request = h->system_usd_per_request;
  double saving = c->teacher_usd_per_request - per_request;
  double requests = us_cost_break_even(c->one_off_usd, c->teacher_usd_per_request, per_request);
  if (isfinite(requests)) {
    us__report_count(b, sizeof b, requests);
    us__report_duration(when, sizeof when,
                        c->requests_per_month > 0 ? requests / c->requests_per_month : INFINITY);
    snprintf(h->break_even, sizeof h->break_even, "after %s requests with %s (%s at %s a month)", b,
             what, when, vol);
  } else {
    snprintf(h->break_even, sizeof h->break_even,
             "never: %s does not cost less per request than the teacher", what);
  }
  h->break_even_requests = requests;
  h->monthly_savings_usd = saving * c->requests_per_month;
  us__report_usd(a, sizeof a, h->monthly_savings_usd);
  snprintf(h->savings, sizeof h->savings, "%s a month with %s at %s requests a month", a, what,
           vol);
}

void us__report_headline_fill(const us_report *r, us__headline *h) {
  memset(h, 0, sizeof *h);
  char params[48], ratio[48];
  us__report_count(params, sizeof params, (double)r->student_params);
  if (r->cost && r->cost->size_ratio_known) {
    us__report_count(ratio, sizeof ratio, r->cost->size_ratio);
    snprintf(h->size, sizeof h->size, "%sx smaller than the teacher (student %s parameters)", ratio,
             params);
  } else
    snprintf(h->size, sizeof h->size,
             "student %s parameters (teacher size unknown: set teacher.params_b)", params);
  fill_quality(r, h);
  fill_cascade(r, r->cost, h);
  fill_cost(r, h);
}

us_status us_report_headline(const us_report *r, us_buf *out, us_err *err) {
  us__headline h;
  us__report_headline_fill(r, &h);
  us_status st = us_buf_printf(out,
                               "verdict:     %s\n"
                               "size:        %s\n"
                               "quality:     %s\n"
                               "cost:        teacher %s, student %s per million requests\n"
                               "break-even:  %s\n"
                               "savings:     %s\n"
                               "cascade:     %s\n",
                               h.verdict, h.size, h.agreement, h.teacher_cost, h.student_cost,
                               h.break_even, h.savings, h.cascade);
  if (st != US_OK) return us_err_set(err, st, "report headline: out of memory");
  return US_OK;
}

/* ---- Markdown ------------------------------------------------------------------------- */

/* User text inside a Markdown table cell: HTML-escaped (renderers pass raw HTML through), and
 * the characters Markdown gives meaning to backslash-escaped; line breaks become spaces. */
static us_status md_text(us_buf *o, const char *s) {
  us_buf tmp;
  us_buf_init(&tmp, 0);
  us_status st = us_svg_escape(&tmp, s);
  for (const char *p = tmp.data ? tmp.data : ""; *p && st == US_OK; p++) {
    if (*p == '\n' || *p == '\r' || *p == '\t')
      st = us_buf_puts(o, " ");
    else if (strchr("\\|`*_[]#!~", *p))
      st = us_buf_printf(o, "\\%c", *p);
    else
      st = us_buf_append(o, p, 1);
  }
  us_buf_free(&tmp);
  return st;
}

static us_status md_quality(const us_report *r, us_buf *o) {
  const us_classify_metrics *m = r->metrics;
  us_status st = US_OK;
  char a[32], lo[32], hi[32];
  if (m) {
    us__report_pct(a, sizeof a, m->agreement);
    us__report_pct_low(lo, sizeof lo, m->agreement_lo, 0);
    us__report_pct_high(hi, sizeof hi, m->agreement_hi);
    st = us_buf_printf(o,
                       "\n## Quality against the teacher (test split)\n\n"
                       "| measure | value |\n|---|---|\n"
                       "| agreement | %s (%.0f%% bootstrap interval %s to %s) |\n"
                       "| macro-F1 | %.4f (over %d labels) |\n"
                       "| expected calibration error | %.4f (15 bins) |\n"
                       "| test prompts scored | %d (%d without a usable teacher label) |\n",
                       a, m->ci_level * 100, lo, hi, m->macro_f1, m->n_macro_labels, m->ece,
                       m->n_scored, m->n_unscored);
    if (st == US_OK && m->has_gold)
      st = us_buf_printf(o,
                         "| student accuracy vs gold | %.1f%% (macro-F1 %.4f, %d prompts) |\n"
                         "| teacher accuracy vs gold | %.1f%% (macro-F1 %.4f) |\n",
                         m->student_gold_accuracy * 100, m->student_gold_macro_f1, m->n_gold,
                         m->teacher_gold_accuracy * 100, m->teacher_gold_macro_f1);
    if (st == US_OK)
      st = us_buf_puts(o,
                       "\n### Per label\n\n| label | precision | recall | F1 | support | "
                       "predicted |\n|---|---|---|---|---|---|\n");
    for (int k = 0; k < m->n_labels && st == US_OK; k++) {
      const us_class_score *s = &m->per_class[k];
      st = us_buf_puts(o, "| ");
      if (st == US_OK) st = md_text(o, us__report_label(r, k, "?"));
      if (st == US_OK)
        st = us_buf_printf(o, " | %.3f | %.3f | %.3f | %d | %d |\n", s->precision, s->recall, s->f1,
                           s->support, s->predicted);
    }
    if (st == US_OK && m->n_confusions > 0)
      st = us_buf_puts(o,
                       "\n### Most confused\n\n| teacher said | student said | count | "
                       "example |\n|---|---|---|---|\n");
    for (int i = 0; i < m->n_confusions && st == US_OK; i++) {
      const us_confusion *c = &m->confusions[i];
      st = us_buf_puts(o, "| ");
      if (st == US_OK) st = md_text(o, us__report_label(r, c->reference, "?"));
      if (st == US_OK) st = us_buf_puts(o, " | ");
      if (st == US_OK) st = md_text(o, us__report_label(r, c->predicted, "?"));
      if (st == US_OK) st = us_buf_printf(o, " | %d | ", c->count);
      if (st == US_OK && r->confusion_examples && r->confusion_examples[i])
        st = md_text(o, r->confusion_examples[i]);
      if (st == US_OK) st = us_buf_puts(o, " |\n");
    }
  }
  if (st == US_OK && r->generation) {
    const us_generate_metrics *g = r->generation;
    st = us_buf_printf(o,
                       "\n## Quality against the teacher (test split)\n\n"
                       "| measure | value |\n|---|---|\n| exact match | %.1f%% |\n"
                       "| token F1 | %.4f |\n| ROUGE-L | %.4f |\n| chrF | %.4f |\n"
                       "| valid JSON | %.1f%% of %d JSON answers |\n| prompts | %d |\n",
                       g->exact_match * 100, g->token_f1, g->rouge_l, g->chrf,
                       g->valid_json_rate * 100, g->n_json_references, g->n);
    if (st == US_OK && g->n_json_objects > 0)
      st = us_buf_printf(o, "| JSON field F1 | %.1f%% over %d JSON objects |\n",
                         g->json_field_f1 * 100, g->n_json_objects);
    if (st == US_OK && r->perplexity > 0)
      st = us_buf_printf(o, "| perplexity on the teacher's answers | %.3f |\n", r->perplexity);
  }
  return st;
}

/* The student alone against the majority-class and chance baselines (classify). */
static us_status md_baselines(const us_report *r, us_buf *o) {
  const us_cascade *k = r->cascade;
  const us_cascade_baselines *b = &k->baselines;
  if (!b->known) return US_OK;
  char student[32], low[32], majority[32], chance[32];
  us__report_pct(student, sizeof student, b->student_agreement);
  us__report_pct_low(low, sizeof low, b->student_agreement_low, fmax(b->chance, b->majority_class));
  us__report_pct(majority, sizeof majority, b->majority_class);
  us__report_pct(chance, sizeof chance, b->chance);
  us_status st =
      us_buf_printf(o,
                    "\nBaselines: the student alone agrees with the teacher on %s%s%s%s"
                    ". Always answering the teacher's most common label (",
                    student, k->confidence_level > 0 ? " (at least " : "",
                    k->confidence_level > 0 ? low : "", k->confidence_level > 0 ? ")" : "");
  if (st == US_OK) st = md_text(o, us__report_label(r, b->majority_label, "?"));
  if (st == US_OK)
    st = us_buf_printf(o,
                       ") agrees on %s (the majority-class baseline); answering at random, on %s "
                       "(chance). %s\n",
                       majority, chance,
                       b->beaten ? "The student beats both."
                                 : "The student is not shown to beat them: it did not learn this "
                                   "task, and its confidence cannot pick answers to trust.");
  return st;
}

static us_status md_cascade(const us_report *r, us_buf *o) {
  const us_cascade *k = r->cascade;
  if (!k) return US_OK;
  int rows[16];
  int n = us_cascade_table_rows(k, 16, rows);
  bool bound = k->confidence_level > 0;
  char rule[256] = "", target[32];
  us__report_pct_target(target, sizeof target, k->target_agreement);
  if (bound)
    snprintf(rule, sizeof rule,
             " A threshold qualifies when the lower %.0f%% confidence bounds of the whole "
             "system's agreement and of the agreement of the student's own answers both meet "
             "the target.",
             k->confidence_level * 100);
  else
    snprintf(rule, sizeof rule,
             " A threshold qualifies when the whole system's agreement and the agreement of the "
             "student's own answers both meet the target.");
  us_status st = us_buf_printf(o, "\n## Cascade\n\nTarget agreement %s.%s Verdict: %s.\n", target,
                               rule, us_cascade_verdict_str(k->verdict));
  if (st == US_OK) st = md_baselines(r, o);
  if (st == US_OK)
    st =
        us_buf_printf(o,
                      "\n| student answers when | coverage | agreement |%s its answers agree |%s%s "
                      "cost per million |\n|---|---|---|%s---|%s%s---|\n",
                      bound ? " lower bound |" : "", bound ? " their lower bound |" : "",
                      k->has_gold ? " accuracy vs gold |" : "", bound ? "---|" : "",
                      bound ? "---|" : "", k->has_gold ? "---|" : "");
  for (int i = 0; i < n && st == US_OK; i++) {
    const us_cascade_point *p = &k->points[rows[i]];
    char when[48], usd[48], gold[32] = "", low[32] = "", cov[32], agr[32], own[32] = "n/a",
                            own_low[32] = "n/a", cell[40] = "", own_cell[40] = "";
    us__report_point_when(when, sizeof when, p, ">=");
    us__report_usd(usd, sizeof usd, p->usd_per_request * 1e6);
    us__report_pct(cov, sizeof cov, p->coverage);
    us__report_pct(agr, sizeof agr, p->agreement);
    if (p->answered > 0) {
      us__report_pct(own, sizeof own, p->student_agreement);
      us__report_pct_low(own_low, sizeof own_low, p->student_agreement_low, k->target_agreement);
    }
    if (bound) {
      us__report_pct_low(low, sizeof low, p->agreement_low, k->target_agreement);
      snprintf(cell, sizeof cell, " %s |", low);
      snprintf(own_cell, sizeof own_cell, " %s |", own_low);
    }
    if (k->has_gold) snprintf(gold, sizeof gold, " %.1f%% |", p->gold_accuracy * 100);
    st = us_buf_printf(o, "| %s%s | %s | %s |%s %s |%s%s %s |\n", when,
                       rows[i] == k->recommended ? " **(recommended)**" : "", cov, agr, cell, own,
                       own_cell, gold, usd);
  }
  return st;
}

static us_status md_cost(const us_report *r, us_buf *o) {
  const us_cost *c = r->cost;
  if (!c) return US_OK;
  char t[80], s[80], lab[48], saved[48], train[48], once[48], be[48], tm[48], sm[48], bs[48];
  us__report_usd_per_request(t, sizeof t, c->teacher_usd_per_request);
  us__report_usd_per_request(s, sizeof s, c->student_usd_per_request);
  us__report_usd(lab, sizeof lab, c->labelling_spend_usd);
  us__report_usd(saved, sizeof saved, c->cache_saved_usd);
  us__report_usd(train, sizeof train, c->training_usd);
  us__report_usd(once, sizeof once, c->one_off_usd);
  us__report_count(be, sizeof be, c->break_even_requests);
  us__report_usd(tm, sizeof tm, c->teacher_usd_per_month);
  us__report_usd(sm, sizeof sm, c->student_usd_per_month);
  us_status st = us_buf_printf(
      o,
      "\n## Cost\n\n| item | value |\n|---|---|\n"
      "| teacher per request | %s |\n| student per request | %s |\n"
      "| labelling spend paid | %s |\n| saved by the cache and imports | %s |\n"
      "| training (CPU) | %s |\n| one-off total | %s |\n"
      "| student alone breaks even after | %s requests |\n"
      "| teacher per month | %s |\n| student alone per month | %s |\n",
      t, s, lab, saved, train, once, c->breaks_even ? be : "never (not cheaper)", tm, sm);
  if (st == US_OK && c->batch_saved_usd > 0) {
    us__report_usd(bs, sizeof bs, c->batch_saved_usd);
    st = us_buf_printf(o, "| saved by the Batch API's discount | %s |\n", bs);
  }
  return st;
}

static us_status md_active(const us_report *r, us_buf *o) {
  const us_report_active *a = r->active;
  if (!a || a->n_rounds == 0) return US_OK;
  char saved[48], full[64] = "";
  us__report_usd(saved, sizeof saved, a->dollars_saved);
  if (a->full_pool_agreement >= 0)
    snprintf(full, sizeof full, "; test agreement with the whole pool labelled: %.2f%%",
             100 * a->full_pool_agreement);
  us_status st = us_buf_printf(
      o,
      "\n## Active labelling\n\nLabelled %ld of %ld train prompts (%.1f%%): %.0f labels and "
      "about %s saved against labelling the whole pool%s. %s%s%s\n\n"
      "| round | train labels | spent | test agreement | validation agreement |\n"
      "|---|---|---|---|---|\n",
      a->labelled, a->pool, a->pool ? 100.0 * (double)a->labelled / (double)a->pool : 0,
      a->labels_saved, saved, full, a->stop ? "Stopped: " : "Still labelling.",
      a->stop ? a->stop : "", a->stop ? "." : "");
  for (int i = 0; i < a->n_rounds && st == US_OK; i++) {
    char usd[48];
    us__report_usd(usd, sizeof usd, a->dollars[i]);
    st = us_buf_printf(o, "| %d | %.0f | %s | %.2f%% | %.2f%% |\n", i + 1, a->labels[i], usd,
                       100 * a->test_agreement[i], 100 * a->valid_agreement[i]);
  }
  return st;
}

static us_status md_speed_row(us_buf *o, const char *who, const us_report_speed *s) {
  if (!s->measured) return us_buf_printf(o, "| %s | not measured | | |\n", who);
  return us_buf_printf(o, "| %s | %.4g ms | %.4g ms | %.4g/s |\n", who, s->latency.p50 * 1e3,
                       s->latency.p99 * 1e3, s->requests_per_second);
}

static us_status md_rest(const us_report *r, us_buf *o) {
  us_status st = us_buf_puts(o,
                             "\n## Speed\n\n| | latency p50 | latency p99 | throughput |\n"
                             "|---|---|---|---|\n");
  if (st == US_OK) st = md_speed_row(o, "student (this machine)", &r->student_speed);
  if (st == US_OK) st = md_speed_row(o, "teacher (from the cache)", &r->teacher_speed);
  const us_report_series *curves[] = {&r->train_loss, &r->valid_loss, &r->valid_accuracy};
  const char *names[] = {"training loss", "validation loss", "validation accuracy"};
  if (st == US_OK && (r->train_loss.n || r->valid_loss.n || r->valid_accuracy.n))
    st = us_buf_puts(o,
                     "\n## Training\n\n| curve | points | last x | last value |\n"
                     "|---|---|---|---|\n");
  for (int i = 0; i < 3 && st == US_OK; i++)
    if (curves[i]->n > 0)
      st = us_buf_printf(o, "| %s | %d | %g | %.4f |\n", names[i], curves[i]->n,
                         curves[i]->x[curves[i]->n - 1], curves[i]->y[curves[i]->n - 1]);
  const us_report_counts *c = &r->counts;
  if (st == US_OK)
    st = us_buf_printf(o,
                       "\n## Data\n\n| | count |\n|---|---|\n| prompts (train) | %ld |\n"
                       "| prompts (test) | %ld |\n| paid teacher calls | %ld |\n"
                       "| cache hits | %ld |\n| imported answers | %ld |\n"
                       "| unparsed teacher answers | %ld |\n| failed requests | %ld |\n"
                       "| near-duplicates across train and test | %ld |\n"
                       "| near-duplicates moved to test (data.dedupe_near) | %ld |\n",
                       c->prompts_train, c->prompts_test, c->teacher_calls, c->cache_hits,
                       c->imported, c->unparsed, c->failures, c->near_duplicates,
                       c->near_duplicates_moved);
  return st;
}

static us_status md_spend(const us_report *r, us_buf *o) {
  const us_report_spend *s = r->spend;
  if (!s) return US_OK;
  char in[48], ca[48], out[48], re[48], un[48], worst[48];
  us__report_usd(in, sizeof in, s->input_usd);
  us__report_usd(ca, sizeof ca, s->cached_usd);
  us__report_usd(out, sizeof out, s->output_usd);
  us__report_usd(re, sizeof re, s->reasoning_usd);
  us__report_usd(un, sizeof un, s->unsplit_usd);
  us__report_usd(worst, sizeof worst, s->unanswered_usd);
  us_status st =
      us_buf_printf(o,
                    "\n## Labelling spend by kind\n\n| kind | tokens | spend |\n|---|---|---|\n"
                    "| input | %ld | %s |\n| cached input | %ld | %s |\n| output | %ld | %s |\n"
                    "| reasoning | %ld | %s |\n",
                    s->prompt_tokens - s->cached_tokens, in, s->cached_tokens, ca,
                    s->completion_tokens - s->reasoning_tokens, out, s->reasoning_tokens, re);
  if (st == US_OK && s->unsplit_usd > 0)
    st = us_buf_printf(o, "| recorded before kinds were kept | | %s |\n", un);
  if (st == US_OK && s->unanswered > 0)
    st = us_buf_printf(o,
                       "\n%ld requests may have been billed without an answer: up to %s "
                       "(counted against the budget).\n",
                       s->unanswered, worst);
  return st;
}

static us_status md_production(const us_report *r, us_buf *o) {
  const us_report_production *p = r->production;
  if (!p) return US_OK;
  double agreement = p->audits ? (double)p->audits_agreeing / (double)p->audits : NAN;
  us_status st = us_buf_printf(
      o,
      "\n## In production\n\n`understudy serve` answered %ld requests over %.1f hours.\n\n"
      "| route | requests | share |\n|---|---|---|\n"
      "| student | %ld | %.1f%% |\n| teacher | %ld | %.1f%% |\n| cache | %ld | %.1f%% |\n"
      "| error | %ld | %.1f%% |\n\n| | US$ |\n|---|---|\n| paid to the teacher | %.4f |\n"
      "| saved (realised) | %.4f |\n",
      p->requests, p->hours, p->student, p->requests ? 100.0 * p->student / p->requests : 0.0,
      p->teacher, p->requests ? 100.0 * p->teacher / p->requests : 0.0, p->cache,
      p->requests ? 100.0 * p->cache / p->requests : 0.0, p->errors,
      p->requests ? 100.0 * p->errors / p->requests : 0.0, p->spent_usd, p->saved_usd);
  if (st == US_OK && isfinite(p->predicted_saved_usd))
    st = us_buf_printf(o, "| saved (the recommended cascade's prediction) | %.4f |\n",
                       p->predicted_saved_usd);
  if (st == US_OK && p->audits)
    st = us_buf_printf(o,
                       "\nShadow audit: the teacher agreed with %ld of %ld audited student "
                       "answers (%.1f%%).\n",
                       p->audits_agreeing, p->audits, 100 * agreement);
  else if (st == US_OK)
    st = us_buf_puts(o, "\nShadow audit: no student answer was audited.\n");
  return st;
}

us_status us_report_markdown(const us_report *r, us_buf *o, us_err *err) {
  us__headline h;
  us__report_headline_fill(r, &h);
  us_status st = us_buf_puts(o, "# understudy report: ");
  if (st == US_OK) st = md_text(o, r->run_name ? r->run_name : "unnamed run");
  if (st == US_OK) st = us_buf_printf(o, "\n\nTask: %s. Teacher: ", us_task_type_name(r->task));
  if (st == US_OK) st = md_text(o, r->teacher_model ? r->teacher_model : "unknown");
  if (st == US_OK && r->student_desc) st = us_buf_puts(o, ". Student: ");
  if (st == US_OK && r->student_desc) st = md_text(o, r->student_desc);
  if (st == US_OK && r->generated_at) st = us_buf_puts(o, ". Generated ");
  if (st == US_OK && r->generated_at) st = md_text(o, r->generated_at);
  if (st == US_OK)
    st = us_buf_printf(o,
                       ".\n\n## Headline\n\n**%s.**\n\n- Size: %s\n- Quality: %s\n"
                       "- Cost per million requests: teacher %s, student %s\n- Break-even: %s\n"
                       "- Monthly savings: %s\n- Recommended cascade: %s\n",
                       h.verdict, h.size, h.agreement, h.teacher_cost, h.student_cost, h.break_even,
                       h.savings, h.cascade);
  if (st == US_OK) st = md_quality(r, o);
  if (st == US_OK) st = md_cascade(r, o);
  if (st == US_OK) st = md_cost(r, o);
  if (st == US_OK) st = md_active(r, o);
  if (st == US_OK) st = md_production(r, o);
  if (st == US_OK) st = md_spend(r, o);
  if (st == US_OK) st = md_rest(r, o);
  if (st != US_OK) return us_err_set(err, st, "report.md: out of memory");
  return US_OK;
}

static us_status write_one(const char *dir, const char *name, const us_buf *b, us_err *err) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
    return us_err_set(err, US_ERR_IO, "report folder path too long: %s", dir);
  return us_write_file_atomic(path, b->data ? b->data : "", b->len, err);
}

us_status us_report_write(const us_report *r, const char *dir, us_err *err) {
  us_buf md, json, html;
  us_buf_init(&md, 0);
  us_buf_init(&json, 0);
  us_buf_init(&html, 0);
  us_status st = us_mkdirs(dir, err);
  if (st == US_OK) st = us_report_markdown(r, &md, err);
  if (st == US_OK) st = us_report_json(r, &json, err);
  if (st == US_OK) st = us_report_html(r, &html, err);
  if (st == US_OK) st = write_one(dir, "report.md", &md, err);
  if (st == US_OK) st = write_one(dir, "report.json", &json, err);
  if (st == US_OK) st = write_one(dir, "report.html", &html, err);
  us_buf_free(&md);
  us_buf_free(&json);
  us_buf_free(&html);
  return st;
}
