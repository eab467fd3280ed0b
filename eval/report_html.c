/* report.html: one self-contained page (inline CSS and SVG, no scripts, no network; a
 * Content-Security-Policy forbids any fetch) that opens with the headline, then quality,
 * cascade, cost, speed, training and data. Every piece of user text goes through us_svg_escape. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/report_int.h"
#include "eval/svg.h"

#define BLUE "#3b6ea8"
#define ORANGE "#c27c0e"
#define GREEN "#2f855a"
#define RED "#c53030"
#define GREY "#6b7280"
#define PURPLE "#7c4dbb"
#define TEAL "#0f766e"

static const char css[] =
    ":root{--ink:#1f2933;--muted:#5f6b7a;--line:#d9dee5;--bg:#f5f6f8;--card:#fff;"
    "--accent:#3b6ea8}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.5 system-ui,-apple-system,"
    "\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif}\n"
    "main{max-width:1080px;margin:0 auto;padding:32px 24px 48px}\n"
    "header h1{margin:0 0 4px;font-size:28px;line-height:1.2;overflow-wrap:anywhere}\n"
    ".kicker{text-transform:uppercase;letter-spacing:.08em;font-size:12px;color:var(--muted);"
    "margin:0}\n"
    ".meta{color:var(--muted);margin:4px 0 18px;overflow-wrap:anywhere}\n"
    ".verdict{border-radius:10px;padding:14px 18px;font-size:18px;font-weight:600;"
    "margin:0 0 16px;border:1px solid}\n"
    ".verdict.good{background:#e7f5ec;border-color:#9fd2b0;color:#1d5e3a}\n"
    ".verdict.stay{background:#fdf3e1;border-color:#f0c987;color:#7a4b06}\n"
    ".cards{display:grid;grid-template-columns:repeat(3,1fr);gap:14px;margin:0 0 24px}\n"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:10px;"
    "padding:14px 16px}\n"
    ".card h3{margin:0;font-size:12px;text-transform:uppercase;letter-spacing:.06em;"
    "color:var(--muted);font-weight:600}\n"
    ".card .big{font-size:25px;font-weight:700;margin:4px 0 2px;"
    "font-variant-numeric:tabular-nums}\n"
    ".card .sub{margin:0;color:var(--muted);font-size:13px}\n"
    "section.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;"
    "padding:18px 20px;margin:0 0 20px}\n"
    "h2{font-size:19px;margin:0 0 10px}\nh3.sub{font-size:15px;margin:16px 0 6px}\n"
    "table{border-collapse:collapse;width:100%;font-size:14px;"
    "font-variant-numeric:tabular-nums}\n"
    "th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);"
    "vertical-align:top}\n"
    "th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;"
    "letter-spacing:.04em}\n"
    "td.num,th.num{text-align:right;white-space:nowrap}\n"
    "tr.rec td{background:#eaf2fc;font-weight:600}\n"
    ".chart{width:100%;height:auto;display:block;margin:6px 0 10px}\n"
    ".chart text{font-size:12px;fill:#4a5563}\n.chart .axis{fill:#1f2933}\n"
    ".chart .legend{fill:#1f2933}\n"
    ".chart .note{font-size:11.5px;fill:#1f2933;font-weight:600}\n"
    ".chart .grid{stroke:#eceff3;stroke-width:1}\n"
    ".chart .frame{fill:none;stroke:#c5ccd6}\n"
    ".chart .series{fill:none;stroke-width:2.2;stroke-linejoin:round;stroke-linecap:round}\n"
    ".chart .rule{stroke-width:1.4;stroke-dasharray:4 3}\n"
    ".chart .track{fill:#f0f2f5}\n"
    ".two{display:grid;grid-template-columns:1fr 1fr;gap:18px}\n"
    ".caption{color:var(--muted);font-size:13px;margin:0 0 8px}\n"
    ".example{color:var(--muted);overflow-wrap:anywhere;max-width:420px}\n"
    ".label{overflow-wrap:anywhere}\n"
    "footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}\n"
    "@media (max-width:760px){.cards{grid-template-columns:1fr 1fr}"
    ".two{grid-template-columns:1fr}}\n"
    "@media print{body{background:#fff;font-size:12px}main{max-width:none;padding:0}"
    ".panel,.card,.verdict,.chart,tr{break-inside:avoid}"
    ".panel,.card{border-color:#bbb}}\n";

static us_status esc(us_buf *o, const char *s) {
  return us_svg_escape(o, s);
}

/* ---- headline ------------------------------------------------------------------------- */

static us_status card(us_buf *o, const char *title, const char *big, const char *sub) {
  us_status st = us_buf_printf(o, "<div class=\"card\"><h3>%s</h3><p class=\"big\">", title);
  if (st == US_OK) st = esc(o, big);
  if (st == US_OK) st = us_buf_puts(o, "</p><p class=\"sub\">");
  if (st == US_OK) st = esc(o, sub);
  if (st == US_OK) st = us_buf_puts(o, "</p></div>\n");
  return st;
}

static us_status html_cards(const us_report *r, const us__headline *h, us_buf *o) {
  char big[96], tmp[64];
  const us_cost *c = r->cost;
  us_status st = us_buf_puts(o, "<section class=\"cards\" aria-label=\"headline\">\n");
  if (c && c->size_ratio_known) {
    us__report_count(tmp, sizeof tmp, c->size_ratio);
    snprintf(big, sizeof big, "%s\xC3\x97 smaller", tmp);
  } else {
    snprintf(big, sizeof big, "size ratio unknown");
  }
  char params[48], size_sub[160];
  us__report_count(params, sizeof params, (double)r->student_params);
  snprintf(size_sub, sizeof size_sub, "%s; the student has %s parameters",
           c && c->size_ratio_known ? "than the teacher" : "set teacher.params_b to compare",
           params);
  if (st == US_OK) st = card(o, "Size", big, size_sub);
  if (r->metrics)
    us__report_pct(big, sizeof big, r->metrics->agreement);
  else if (r->generation)
    us__report_pct(big, sizeof big, r->generation->exact_match);
  else
    snprintf(big, sizeof big, "n/a");
  if (st == US_OK) st = card(o, r->metrics ? "Agreement" : "Exact match", big, h->agreement);
  char sub[160];
  snprintf(sub, sizeof sub, "student per million requests; the teacher costs %s", h->teacher_cost);
  if (st == US_OK) st = card(o, "Cost per million", h->student_cost, sub);
  const char *be = "n/a";
  if (!isnan(h->break_even_requests)) {
    us__report_count(tmp, sizeof tmp, h->break_even_requests);
    snprintf(big, sizeof big, "%s requests", tmp);
    be = isfinite(h->break_even_requests) ? big : "never";
  }
  if (st == US_OK) st = card(o, "Break-even", be, h->break_even);
  const char *save = "none";
  if (!isnan(h->monthly_savings_usd)) {
    us__report_usd(big, sizeof big, h->monthly_savings_usd);
    save = big;
  }
  if (st == US_OK) st = card(o, "Monthly savings", save, h->savings);
  const us_cascade_point *p = us__report_recommended(r);
  if (!p || !h->positive)
    snprintf(big, sizeof big, "teacher only");
  else if (p->coverage >= 1)
    snprintf(big, sizeof big, "student only");
  else
    snprintf(big, sizeof big, "%.0f%% by the student", p->coverage * 100);
  if (st == US_OK) st = card(o, "Recommended cascade", big, h->cascade);
  if (st == US_OK) st = us_buf_puts(o, "</section>\n");
  return st;
}

/* ---- quality -------------------------------------------------------------------------- */

typedef struct ranked {
  double f1;
  int label;
} ranked;

static int by_f1(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->f1 != y->f1) return x->f1 < y->f1 ? -1 : 1;
  return x->label - y->label;
}

static us_status f1_chart(const us_report *r, us_buf *o, us_err *err) {
  const us_classify_metrics *m = r->metrics;
  int n = m->n_labels;
  ranked *order = malloc((size_t)n * sizeof *order);
  const char **names = malloc((size_t)n * sizeof *names);
  double *values = malloc((size_t)n * sizeof *values);
  us_status st = US_OK;
  if (!order || !names || !values) {
    st = us_err_set(err, US_ERR_NOMEM, "report.html: out of memory");
    goto done;
  }
  for (int k = 0; k < n; k++) order[k] = (ranked){m->per_class[k].f1, k};
  qsort(order, (size_t)n, sizeof *order, by_f1);
  for (int k = 0; k < n; k++) {
    names[k] = us__report_label(r, order[k].label, "?");
    values[k] = order[k].f1;
  }
  st = us_buf_puts(o,
                   "<h3 class=\"sub\">F1 per label</h3><p class=\"caption\">Student against "
                   "teacher on the test split, weakest first.</p>\n");
  if (st == US_OK)
    st = us_svg_bar_chart(o, "F1 per label, weakest first", names, values, n, 880, US_SVG_NUMBER,
                          err);
  else
    us_err_set(err, st, "report.html: out of memory");
done:
  free(order);
  free(names);
  free(values);
  return st;
}

static us_status metric_row(us_buf *o, const char *name, const char *value) {
  return us_buf_printf(o, "<tr><td>%s</td><td class=\"num\">%s</td></tr>\n", name, value);
}

static us_status quality_table(const us_report *r, us_buf *o) {
  const us_classify_metrics *m = r->metrics;
  char v[160], a[32], lo[32], hi[32];
  us__report_pct(a, sizeof a, m->agreement);
  us__report_pct_low(lo, sizeof lo, m->agreement_lo, 0);
  us__report_pct_high(hi, sizeof hi, m->agreement_hi);
  us_status st = us_buf_puts(o,
                             "<table><thead><tr><th>measure</th><th class=\"num\">value</th>"
                             "</tr></thead><tbody>\n");
  snprintf(v, sizeof v, "%s (%.0f%% interval %s to %s)", a, m->ci_level * 100, lo, hi);
  if (st == US_OK) st = metric_row(o, "agreement with the teacher", v);
  snprintf(v, sizeof v, "%.4f (over %d labels)", m->macro_f1, m->n_macro_labels);
  if (st == US_OK) st = metric_row(o, "macro-F1", v);
  snprintf(v, sizeof v, "%.4f", m->ece);
  if (st == US_OK) st = metric_row(o, "expected calibration error (15 bins)", v);
  snprintf(v, sizeof v, "%d scored, %d without a usable teacher label", m->n_scored, m->n_unscored);
  if (st == US_OK) st = metric_row(o, "test prompts", v);
  if (m->has_gold) {
    snprintf(v, sizeof v, "%.1f%% (macro-F1 %.4f, %d prompts)", m->student_gold_accuracy * 100,
             m->student_gold_macro_f1, m->n_gold);
    if (st == US_OK) st = metric_row(o, "student accuracy against gold", v);
    snprintf(v, sizeof v, "%.1f%% (macro-F1 %.4f)", m->teacher_gold_accuracy * 100,
             m->teacher_gold_macro_f1);
    if (st == US_OK) st = metric_row(o, "teacher accuracy against gold", v);
  }
  if (st == US_OK) st = us_buf_puts(o, "</tbody></table>\n");
  return st;
}

static us_status per_class_table(const us_report *r, us_buf *o) {
  const us_classify_metrics *m = r->metrics;
  us_status st = us_buf_puts(o,
                             "<h3 class=\"sub\">Per label</h3><table><thead><tr><th>label</th>"
                             "<th class=\"num\">precision</th><th class=\"num\">recall</th>"
                             "<th class=\"num\">F1</th><th class=\"num\">support</th>"
                             "<th class=\"num\">predicted</th></tr></thead><tbody>\n");
  for (int k = 0; k < m->n_labels && st == US_OK; k++) {
    const us_class_score *s = &m->per_class[k];
    st = us_buf_puts(o, "<tr><td class=\"label\">");
    if (st == US_OK) st = esc(o, us__report_label(r, k, "?"));
    if (st == US_OK)
      st = us_buf_printf(o,
                         "</td><td class=\"num\">%.3f</td><td class=\"num\">%.3f</td>"
                         "<td class=\"num\">%.3f</td><td class=\"num\">%d</td>"
                         "<td class=\"num\">%d</td></tr>\n",
                         s->precision, s->recall, s->f1, s->support, s->predicted);
  }
  if (st == US_OK) st = us_buf_puts(o, "</tbody></table>\n");
  return st;
}

static us_status confusion_table(const us_report *r, us_buf *o) {
  const us_classify_metrics *m = r->metrics;
  if (m->n_confusions == 0)
    return us_buf_puts(o,
                       "<h3 class=\"sub\">Most confused</h3><p class=\"caption\">The student "
                       "never disagreed with the teacher on the test split.</p>\n");
  us_status st = us_buf_puts(o,
                             "<h3 class=\"sub\">Most confused</h3><table><thead><tr>"
                             "<th>teacher said</th><th>student said</th>"
                             "<th class=\"num\">count</th><th>example prompt</th></tr></thead>"
                             "<tbody>\n");
  for (int i = 0; i < m->n_confusions && st == US_OK; i++) {
    const us_confusion *c = &m->confusions[i];
    st = us_buf_puts(o, "<tr><td class=\"label\">");
    if (st == US_OK) st = esc(o, us__report_label(r, c->reference, "?"));
    if (st == US_OK) st = us_buf_puts(o, "</td><td class=\"label\">");
    if (st == US_OK) st = esc(o, us__report_label(r, c->predicted, "?"));
    if (st == US_OK)
      st = us_buf_printf(o, "</td><td class=\"num\">%d</td><td class=\"example\">", c->count);
    if (st == US_OK && r->confusion_examples && r->confusion_examples[i])
      st = esc(o, r->confusion_examples[i]);
    if (st == US_OK) st = us_buf_puts(o, "</td></tr>\n");
  }
  if (st == US_OK) st = us_buf_puts(o, "</tbody></table>\n");
  return st;
}

static us_status generation_table(const us_report *r, us_buf *o) {
  const us_generate_metrics *g = r->generation;
  char v[96];
  us_status st = us_buf_puts(o,
                             "<table><thead><tr><th>measure</th><th class=\"num\">value</th>"
                             "</tr></thead><tbody>\n");
  snprintf(v, sizeof v, "%.1f%%", g->exact_match * 100);
  if (st == US_OK) st = metric_row(o, "exact match", v);
  snprintf(v, sizeof v, "%.4f", g->token_f1);
  if (st == US_OK) st = metric_row(o, "token F1", v);
  snprintf(v, sizeof v, "%.4f", g->rouge_l);
  if (st == US_OK) st = metric_row(o, "ROUGE-L", v);
  snprintf(v, sizeof v, "%.4f", g->chrf);
  if (st == US_OK) st = metric_row(o, "chrF", v);
  snprintf(v, sizeof v, "%.1f%% of %d JSON answers", g->valid_json_rate * 100,
           g->n_json_references);
  if (st == US_OK) st = metric_row(o, "valid JSON", v);
  if (g->n_json_objects > 0) {
    snprintf(v, sizeof v, "%.1f%% over %d JSON objects", g->json_field_f1 * 100, g->n_json_objects);
    if (st == US_OK) st = metric_row(o, "JSON field F1", v);
  }
  if (r->perplexity > 0) {
    snprintf(v, sizeof v, "%.3f", r->perplexity);
    if (st == US_OK) st = metric_row(o, "perplexity on the teacher's answers", v);
  }
  snprintf(v, sizeof v, "%d", g->n);
  if (st == US_OK) st = metric_row(o, "test prompts", v);
  if (st == US_OK) st = us_buf_puts(o, "</tbody></table>\n");
  return st;
}

static us_status html_quality(const us_report *r, us_buf *o, us_err *err) {
  if (!r->metrics && !r->generation) return US_OK;
  us_status st = us_buf_puts(o,
                             "<section class=\"panel\" id=\"quality\"><h2>Quality against the "
                             "teacher</h2><p class=\"caption\">Measured on the test split only; "
                             "the student never saw these prompts.</p>\n");
  if (st == US_OK && r->metrics) st = quality_table(r, o);
  if (st == US_OK && r->metrics) {
    st = f1_chart(r, o, err);
    if (st != US_OK) return st;
  }
  if (st == US_OK && r->metrics) st = confusion_table(r, o);
  if (st == US_OK && r->metrics) st = per_class_table(r, o);
  if (st == US_OK && r->generation) st = generation_table(r, o);
  if (st == US_OK) st = us_buf_puts(o, "</section>\n");
  if (st != US_OK) return us_err_set(err, st, "report.html: out of memory");
  return US_OK;
}

/* ---- cascade -------------------------------------------------------------------------- */

static us_status cascade_chart(const us_report *r, us_buf *o, us_err *err) {
  const us_cascade *k = r->cascade;
  int n = k->n_points;
  double *x = malloc((size_t)n * sizeof *x), *cov = malloc((size_t)n * sizeof *cov);
  double *agr = malloc((size_t)n * sizeof *agr), *cost = malloc((size_t)n * sizeof *cost);
  double *gold = malloc((size_t)n * sizeof *gold), *low = malloc((size_t)n * sizeof *low);
  double *own = malloc((size_t)n * sizeof *own);
  us_status st = US_OK;
  if (!x || !cov || !agr || !cost || !gold || !low || !own) {
    st = us_err_set(err, US_ERR_NOMEM, "report.html: out of memory");
    goto done;
  }
  double teacher = k->points[k->teacher_only].usd_per_request;
  int m = 0;
  for (int i = 0; i < n; i++) {
    const us_cascade_point *p = &k->points[i];
    if (p->kind != US_CASCADE_THRESHOLD) continue;
    x[m] = p->threshold;
    cov[m] = p->coverage;
    agr[m] = p->agreement;
    low[m] = p->agreement_low;
    own[m] = p->student_agreement;
    gold[m] = p->gold_accuracy;
    cost[m] = teacher > 0 ? p->usd_per_request / teacher : NAN;
    m++;
  }
  char low_name[64];
  snprintf(low_name, sizeof low_name, "agreement, lower %.0f%% bound", k->confidence_level * 100);
  us_svg_line lines[6] = {
      {"coverage", x, cov, m, BLUE, false},
      {"agreement with the teacher", x, agr, m, GREEN, false},
      {"agreement of the student's answers", x, own, m, TEAL, false},
      {"cost as a share of teacher-only", x, cost, teacher > 0 ? m : 0, ORANGE, true},
  };
  int n_lines = 4;
  if (k->confidence_level > 0) lines[n_lines++] = (us_svg_line){low_name, x, low, m, GREEN, true};
  if (k->has_gold) lines[n_lines++] = (us_svg_line){"accuracy vs gold", x, gold, m, PURPLE, true};
  char target[64], rec[96];
  snprintf(target, sizeof target, "target %.1f%%", k->target_agreement * 100);
  const us_cascade_point *p = &k->points[k->recommended];
  snprintf(rec, sizeof rec, "recommended: %.4g", p->threshold);
  us_svg_rule rules[2] = {{false, k->target_agreement, target, RED, true},
                          {true, p->threshold, rec, GREY, true}};
  us_svg_chart c;
  us_svg_chart_init(&c);
  c.title = "Cascade: coverage, agreement and cost against the confidence threshold";
  c.x_label = "confidence threshold (the student answers at or above it)";
  c.y_label = "share";
  c.y_format = US_SVG_PERCENT;
  c.y_min = 0;
  c.width = 880;
  c.height = 360;
  c.lines = lines;
  c.n_lines = n_lines;
  c.rules = rules;
  c.n_rules = p->kind == US_CASCADE_THRESHOLD ? 2 : 1;
  st = us_svg_line_chart(o, &c, err);
done:
  free(x);
  free(cov);
  free(agr);
  free(cost);
  free(gold);
  free(low);
  free(own);
  return st;
}

static us_status cascade_table(const us_report *r, us_buf *o) {
  const us_cascade *k = r->cascade;
  int rows[16];
  int n = us_cascade_table_rows(k, 16, rows);
  bool bound = k->confidence_level > 0;
  us_status st = us_buf_printf(
      o,
      "<table><thead><tr><th>student answers when</th>"
      "<th class=\"num\">coverage</th><th class=\"num\">agreement</th>"
      "%s<th class=\"num\">its answers agree</th>%s%s<th class=\"num\">cost per million</th>"
      "</tr></thead><tbody>\n",
      bound ? "<th class=\"num\">lower bound</th>" : "",
      bound ? "<th class=\"num\">their lower bound</th>" : "",
      k->has_gold ? "<th class=\"num\">accuracy vs gold</th>" : "");
  for (int i = 0; i < n && st == US_OK; i++) {
    const us_cascade_point *p = &k->points[rows[i]];
    char when[64], usd[48], gold[64] = "", low[64] = "", own_low[64] = "", cov[32], agr[32],
                            own[32] = "n/a", v[32] = "n/a";
    us__report_point_when(when, sizeof when, p, "&ge;");
    us__report_usd(usd, sizeof usd, p->usd_per_request * 1e6);
    us__report_pct(cov, sizeof cov, p->coverage);
    us__report_pct(agr, sizeof agr, p->agreement);
    if (p->answered > 0) us__report_pct(own, sizeof own, p->student_agreement);
    if (bound) {
      us__report_pct_low(v, sizeof v, p->agreement_low, k->target_agreement);
      snprintf(low, sizeof low, "<td class=\"num\">%s</td>", v);
      snprintf(v, sizeof v, "n/a");
      if (p->answered > 0)
        us__report_pct_low(v, sizeof v, p->student_agreement_low, k->target_agreement);
      snprintf(own_low, sizeof own_low, "<td class=\"num\">%s</td>", v);
    }
    if (k->has_gold)
      snprintf(gold, sizeof gold, "<td class=\"num\">%.1f%%</td>", p->gold_accuracy * 100);
    st = us_buf_printf(o,
                       "<tr%s><td>%s%s</td><td class=\"num\">%s</td>"
                       "<td class=\"num\">%s</td>%s<td class=\"num\">%s</td>%s%s"
                       "<td class=\"num\">%s</td></tr>\n",
                       rows[i] == k->recommended ? " class=\"rec\"" : "", when,
                       rows[i] == k->recommended ? " &mdash; recommended" : "", cov, agr, low, own,
                       own_low, gold, usd);
  }
  if (st == US_OK) st = us_buf_puts(o, "</tbody></table>\n");
  return st;
}

/* The student alone against the majority-class and chance baselines (classify). */
static us_status html_baselines(const us_report *r, us_buf *o) {
  const us_cascade *k = r->cascade;
  const us_cascade_baselines *b = &k->baselines;
  if (!b->known) return US_OK;
  char student[32], low[48] = "", majority[32], chance[32];
  us__report_pct(student, sizeof student, b->student_agreement);
  if (k->confidence_level > 0) {
    char v[32];
    us__report_pct_low(v, sizeof v, b->student_agreement_low, fmax(b->chance, b->majority_class));
    snprintf(low, sizeof low, " (at least %s)", v);
  }
  us__report_pct(majority, sizeof majority, b->majority_class);
  us__report_pct(chance, sizeof chance, b->chance);
  us_status st = us_buf_printf(o,
                               "<p class=\"caption\">Baselines: the student alone agrees with the "
                               "teacher on %s%s. Always answering the teacher's most common label "
                               "(",
                               student, low);
  if (st == US_OK) st = esc(o, us__report_label(r, b->majority_label, "?"));
  if (st == US_OK)
    st = us_buf_printf(o,
                       ") agrees on %s (the majority-class baseline); answering at random, on %s "
                       "(chance). %s</p>\n",
                       majority, chance,
                       b->beaten ? "The student beats both."
                                 : "The student is not shown to beat them: it did not learn this "
                                   "task, and its confidence cannot pick answers to trust.");
  return st;
}

static us_status html_cascade(const us_report *r, const us__headline *h, us_buf *o, us_err *err) {
  if (!r->cascade) return US_OK;
  us_status st = us_buf_puts(o,
                             "<section class=\"panel\" id=\"cascade\"><h2>Cascade</h2>"
                             "<p class=\"caption\">The student answers when its confidence "
                             "reaches the threshold; the teacher answers the rest. ");
  if (st == US_OK) st = esc(o, h->cascade);
  if (st == US_OK) st = us_buf_puts(o, ".</p>\n");
  if (st == US_OK) st = html_baselines(r, o);
  if (st == US_OK) {
    st = cascade_chart(r, o, err);
    if (st != US_OK) return st;
  }
  if (st == US_OK) st = cascade_table(r, o);
  if (st == US_OK) st = us_buf_puts(o, "</section>\n");
  if (st != US_OK) return us_err_set(err, st, "report.html: out of memory");
  return US_OK;
}

/* ---- cost ----------------------------------------------------------------------------- */

#define COST_POINTS 61

static us_status cost_chart(const us_report *r, const us__headline *h, us_buf *o, us_err *err) {
  const us_cost *c = r->cost;
  double be = c->break_even_requests,
         month = c->requests_per_month > 0 ? c->requests_per_month : 1e6;
  double lo = 10, hi = month * 12;
  if (isfinite(be) && be > 0) lo = fmin(lo, be / 10), hi = fmax(hi, be * 10);
  lo = fmax(1, pow(10, floor(log10(lo))));
  hi = pow(10, ceil(log10(hi)));
  double x[COST_POINTS], teacher[COST_POINTS], student[COST_POINTS], system[COST_POINTS];
  const us_cascade_point *p = us__report_recommended(r);
  bool show_cascade = p && h->positive && p->coverage < 1;
  for (int i = 0; i < COST_POINTS; i++) {
    x[i] = pow(10, log10(lo) + (log10(hi) - log10(lo)) * i / (COST_POINTS - 1));
    teacher[i] = c->teacher_usd_per_request * x[i];
    student[i] = c->one_off_usd + c->student_usd_per_request * x[i];
    system[i] = show_cascade ? c->one_off_usd + p->usd_per_request * x[i] : NAN;
  }
  us_svg_line lines[3] = {
      {"teacher only", x, teacher, COST_POINTS, RED, false},
      {"student only", x, student, COST_POINTS, BLUE, false},
      {"recommended cascade", x, system, show_cascade ? COST_POINTS : 0, GREEN, true}};
  char month_text[64], be_text[96], count[48];
  us__report_count(count, sizeof count, month);
  snprintf(month_text, sizeof month_text, "one month: %s", count);
  us_svg_rule rule = {true, month, month_text, GREY, false};
  double sys = show_cascade ? p->usd_per_request : c->student_usd_per_request;
  double sys_be = us_cost_break_even(c->one_off_usd, c->teacher_usd_per_request, sys);
  us__report_count(count, sizeof count, sys_be);
  snprintf(be_text, sizeof be_text, "break-even: %s requests", count);
  us_svg_mark mark = {sys_be, c->teacher_usd_per_request * sys_be, be_text, GREEN};
  us_svg_chart ch;
  us_svg_chart_init(&ch);
  ch.title = "Total cost against requests served, one-off costs included";
  ch.x_label = "requests served (log scale)";
  ch.y_label = "total cost (log scale)";
  ch.log_x = ch.log_y = true;
  ch.x_min = lo;
  ch.x_max = hi;
  ch.x_format = US_SVG_COUNT;
  ch.y_format = US_SVG_USD;
  ch.width = 880;
  ch.height = 360;
  ch.lines = lines;
  ch.n_lines = show_cascade ? 3 : 2;
  ch.rules = &rule;
  ch.n_rules = 1;
  ch.marks = &mark;
  ch.n_marks = isfinite(sys_be) && sys_be > 0 ? 1 : 0;
  return us_svg_line_chart(o, &ch, err);
}

static us_status cost_row(us_buf *o, const char *name, double usd) {
  char v[48];
  us__report_usd(v, sizeof v, usd);
  return metric_row(o, name, v);
}

static us_status price_row(us_buf *o, const char *name, double usd) {
  char v[80];
  us__report_usd_per_request(v, sizeof v, usd);
  return metric_row(o, name, v);
}

/* Labelling spend by kind, and what may have been billed without an answer. */
static us_status html_spend(const us_report *r, us_buf *o, us_err *err) {
  const us_report_spend *s = r->spend;
  if (!s) return US_OK;
  us_status st = us_buf_puts(o,
                             "<section class=\"panel\" id=\"spend\"><h2>Labelling spend by kind"
                             "</h2><table><tbody>\n");
  if (st == US_OK) st = cost_row(o, "input", s->input_usd);
  if (st == US_OK) st = cost_row(o, "cached input", s->cached_usd);
  if (st == US_OK) st = cost_row(o, "output", s->output_usd);
  if (st == US_OK) st = cost_row(o, "reasoning", s->reasoning_usd);
  if (st == US_OK && s->unsplit_usd > 0)
    st = cost_row(o, "recorded before kinds were kept", s->unsplit_usd);
  if (st == US_OK && s->unanswered > 0) {
    char name[128];
    snprintf(name, sizeof name, "%ld requests may have been billed without an answer: up to",
             s->unanswered);
    st = cost_row(o, name, s->unanswered_usd);
  }
  if (st == US_OK) st = us_buf_puts(o, "</tbody></table></section>\n");
  if (st != US_OK) return us_err_set(err, st, "report.html: out of memory");
  return US_OK;
}

static us_status html_cost(const us_report *r, const us__headline *h, us_buf *o, us_err *err) {
  const us_cost *c = r->cost;
  if (!c) return US_OK;
  us_status st = us_buf_puts(o,
                             "<section class=\"panel\" id=\"cost\"><h2>Cost</h2>"
                             "<p class=\"caption\">The teacher's price per request comes from "
                             "the real usage recorded in the cache; the student's from CPU time "
                             "measured on this machine. The student lines start at the one-off "
                             "cost (labelling paid plus training).");
  if (st == US_OK && c->teacher_usd_per_request <= 0)
    st = us_buf_puts(o,
                     " The teacher's price is $0 (no prices configured), so nothing can be "
                     "saved and no teacher line is drawn.");
  if (st == US_OK) st = us_buf_puts(o, "</p>\n");
  if (st == US_OK) {
    st = cost_chart(r, h, o, err);
    if (st != US_OK) return st;
  }
  char v[96], n[48];
  if (st == US_OK)
    st = us_buf_puts(o,
                     "<table><thead><tr><th>item</th><th class=\"num\">value</th></tr></thead>"
                     "<tbody>\n");
  if (st == US_OK) st = price_row(o, "teacher, per request", c->teacher_usd_per_request);
  if (st == US_OK) st = price_row(o, "student, per request", c->student_usd_per_request);
  if (st == US_OK) st = cost_row(o, "labelling spend actually paid", c->labelling_spend_usd);
  if (st == US_OK) st = cost_row(o, "saved by cache hits and imports", c->cache_saved_usd);
  if (st == US_OK && c->batch_saved_usd > 0)
    st = cost_row(o, "saved by the Batch API's discount", c->batch_saved_usd);
  if (st == US_OK) st = cost_row(o, "training (measured CPU time)", c->training_usd);
  if (st == US_OK) st = cost_row(o, "one-off total", c->one_off_usd);
  us__report_count(n, sizeof n, c->break_even_requests);
  snprintf(v, sizeof v, "%s requests", n);
  if (st == US_OK)
    st = metric_row(o, "student alone breaks even after", c->breaks_even ? v : "never");
  us__report_count(n, sizeof n, c->requests_per_month);
  snprintf(v, sizeof v, "teacher only, per month (%s requests)", n);
  if (st == US_OK) st = cost_row(o, v, c->teacher_usd_per_month);
  if (st == US_OK) st = cost_row(o, "student only, per month", c->student_usd_per_month);
  if (st == US_OK) st = us_buf_puts(o, "</tbody></table></section>\n");
  if (st != US_OK) return us_err_set(err, st, "report.html: out of memory");
  return US_OK;
}

/* ---- speed, training, data -------------------------------------------------------------- */

/* "42 us", "3.1 ms", "1.2 s" */
static void duration(char *buf, size_t size, double seconds) {
  if (seconds < 1e-3)
    snprintf(buf, size, "%.3g \xC2\xB5s", seconds * 1e6);
  else if (seconds < 1)
    snprintf(buf, size, "%.3g ms", seconds * 1e3);
  else
    snprintf(buf, size, "%.3g s", seconds);
}

static us_status speed_row(us_buf *o, const char *who, const us_report_speed *s) {
  if (!s->measured)
    return us_buf_printf(o,
                         "<tr><td>%s</td><td class=\"num\" colspan=\"3\">not measured</td>"
                         "</tr>\n",
                         who);
  char p50[32], p99[32], count[48], rate[64] = "n/a";
  duration(p50, sizeof p50, s->latency.p50);
  duration(p99, sizeof p99, s->latency.p99);
  if (s->requests_per_second > 0) {
    us__report_count(count, sizeof count, s->requests_per_second);
    snprintf(rate, sizeof rate, "%s per second", count);
  }
  return us_buf_printf(o,
                       "<tr><td>%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td>"
                       "<td class=\"num\">%s</td></tr>\n",
                       who, p50, p99, rate);
}

static us_status training_charts(const us_report *r, us_buf *o, us_err *err) {
  us_svg_line loss[2] = {
      {"training loss", r->train_loss.x, r->train_loss.y, r->train_loss.n, BLUE, false},
      {"validation loss", r->valid_loss.x, r->valid_loss.y, r->valid_loss.n, ORANGE, false}};
  us_svg_line acc = {"validation accuracy",
                     r->valid_accuracy.x,
                     r->valid_accuracy.y,
                     r->valid_accuracy.n,
                     GREEN,
                     false};
  us_svg_chart c;
  us_svg_chart_init(&c);
  c.title = "Training and validation loss";
  c.x_label = "epoch";
  c.y_label = "loss";
  c.width = 440;
  c.height = 280;
  c.lines = loss;
  c.n_lines = 2;
  us_status st = us_buf_puts(o, "<div class=\"two\"><div>");
  if (st == US_OK) st = us_svg_line_chart(o, &c, err);
  if (st != US_OK) return st;
  c.title = "Validation accuracy";
  c.y_label = "accuracy";
  c.y_format = US_SVG_PERCENT;
  c.lines = &acc;
  c.n_lines = 1;
  st = us_buf_puts(o, "</div><div>");
  if (st == US_OK) st = us_svg_line_chart(o, &c, err);
  if (st != US_OK) return st;
  st = us_buf_puts(o, "</div></div>\n");
  return st;
}

/* Active labelling: agreement against labels bought and against dollars, and what was saved. */
static us_status html_active(const us_report *r, us_buf *o, us_err *err) {
  const us_report_active *a = r->active;
  if (!a || a->n_rounds == 0) return US_OK;
  char saved[48], labels_saved[48], of[48], pool[48];
  us__report_usd(saved, sizeof saved, a->dollars_saved);
  us__report_count(labels_saved, sizeof labels_saved, a->labels_saved);
  us__report_count(of, sizeof of, (double)a->labelled);
  us__report_count(pool, sizeof pool, (double)a->pool);
  us_status st = us_buf_printf(o,
                               "<section class=\"panel\" id=\"active\"><h2>Active labelling</h2>"
                               "<p class=\"caption\">Labelled %s of %s train prompts: %s labels "
                               "and about %s saved against labelling the whole pool. ",
                               of, pool, labels_saved, saved);
  if (st == US_OK && a->full_pool_agreement >= 0)
    st = us_buf_printf(o, "With the whole pool labelled the test agreement is %.2f%%. ",
                       100 * a->full_pool_agreement);
  if (st == US_OK && a->stop) {
    st = us_buf_puts(o, "Stopped: ");
    if (st == US_OK) st = esc(o, a->stop);
    if (st == US_OK) st = us_buf_puts(o, ".");
  }
  if (st == US_OK) st = us_buf_puts(o, "</p>\n<div class=\"two\"><div>");
  if (st != US_OK) return us_err_set(err, st, "report.html: out of memory");
  us_svg_line by_labels = {"test agreement", a->labels, a->test_agreement,
                           a->n_rounds,      GREEN,     false};
  us_svg_line by_dollars = {"test agreement", a->dollars, a->test_agreement,
                            a->n_rounds,      BLUE,       false};
  us_svg_rule full = {false, a->full_pool_agreement, "whole pool", ORANGE, true};
  us_svg_chart c;
  us_svg_chart_init(&c);
  c.title = "Test agreement against labels bought";
  c.x_label = "train prompts labelled";
  c.y_label = "agreement";
  c.x_format = US_SVG_COUNT;
  c.y_format = US_SVG_PERCENT;
  c.width = 440;
  c.height = 280;
  c.lines = &by_labels;
  c.n_lines = 1;
  if (a->full_pool_agreement >= 0) {
    c.rules = &full;
    c.n_rules = 1;
  }
  st = us_svg_line_chart(o, &c, err);
  if (st != US_OK) return st;
  c.title = "Test agreement against dollars spent";
  c.x_label = "dollars spent (test split included)";
  c.x_format = US_SVG_USD;
  c.lines = &by_dollars;
  st = us_buf_puts(o, "</div><div>");
  if (st == US_OK) st = us_svg_line_chart(o, &c, err);
  if (st != US_OK) return st;
  st = us_buf_puts(o, "</div></div></section>\n");
  if (st != US_OK) return us_err_set(err, st, "report.html: out of memory");
  return US_OK;
}

/* The "In production" panel: routes, money, and the live agreement over time. */
static us_status html_production(const us_report *r, us_buf *o, us_err *err) {
  const us_report_production *p = r->production;
  if (!p) return US_OK;
  us_status st = us_buf_printf(o,
                               "<section class=\"panel\" id=\"production\"><h2>In production</h2>"
                               "<p class=\"caption\">understudy serve answered %ld requests over "
                               "%.1f hours.</p><table><tbody>\n",
                               p->requests, p->hours);
  const struct {
    const char *name;
    long value;
  } routes[] = {{"answered by the student", p->student},
                {"answered by the teacher", p->teacher},
                {"answered from the cache", p->cache},
                {"errors", p->errors}};
  for (size_t i = 0; i < sizeof routes / sizeof routes[0] && st == US_OK; i++) {
    char v[48];
    us__report_count(v, sizeof v, (double)routes[i].value);
    st = metric_row(o, routes[i].name, v);
  }
  char v[64];
  snprintf(v, sizeof v, "$%.4f", p->spent_usd);
  if (st == US_OK) st = metric_row(o, "paid to the teacher", v);
  snprintf(v, sizeof v, "$%.4f", p->saved_usd);
  if (st == US_OK) st = metric_row(o, "saved (realised)", v);
  if (isfinite(p->predicted_saved_usd)) {
    snprintf(v, sizeof v, "$%.4f", p->predicted_saved_usd);
    if (st == US_OK) st = metric_row(o, "saved (the recommended cascade's prediction)", v);
  }
  if (p->audits)
    snprintf(v, sizeof v, "%ld of %ld (%.1f%%)", p->audits_agreeing, p->audits,
             100.0 * (double)p->audits_agreeing / (double)p->audits);
  else
    snprintf(v, sizeof v, "no audits");
  if (st == US_OK) st = metric_row(o, "teacher agreed with audited student answers", v);
  if (st == US_OK) st = us_buf_puts(o, "</tbody></table>\n");
  if (st == US_OK && p->agreement.n > 1) {
    us_svg_line line = {"live agreement", p->agreement.x, p->agreement.y,
                        p->agreement.n,   BLUE,           false};
    us_svg_chart c;
    us_svg_chart_init(&c);
    c.title = "Live agreement with the teacher (shadow audit)";
    c.x_label = "hours since the first audit";
    c.y_label = "agreement";
    c.y_format = US_SVG_PERCENT;
    c.lines = &line;
    c.n_lines = 1;
    st = us_svg_line_chart(o, &c, err);
  }
  if (st == US_OK) st = us_buf_puts(o, "</section>\n");
  return st;
}

static us_status html_rest(const us_report *r, us_buf *o, us_err *err) {
  us_status st = html_production(r, o, err);
  if (st != US_OK) return st;
  st = us_buf_puts(o,
                   "<section class=\"panel\" id=\"speed\"><h2>Speed</h2><table>"
                   "<thead><tr><th></th><th class=\"num\">latency p50</th>"
                   "<th class=\"num\">latency p99</th><th class=\"num\">throughput"
                   "</th></tr></thead><tbody>\n");
  if (st == US_OK) st = speed_row(o, "student, one thread on this machine", &r->student_speed);
  if (st == US_OK) st = speed_row(o, "teacher, from the cache", &r->teacher_speed);
  if (st == US_OK) st = us_buf_puts(o, "</tbody></table></section>\n");
  if (st == US_OK && (r->train_loss.n || r->valid_loss.n || r->valid_accuracy.n)) {
    st = us_buf_puts(o,
                     "<section class=\"panel\" id=\"training\"><h2>Training</h2>"
                     "<p class=\"caption\">Validation uses a slice of the training split; "
                     "the test split is never seen in training.</p>\n");
    if (st == US_OK) st = training_charts(r, o, err);
    if (st != US_OK) return st;
    st = us_buf_puts(o, "</section>\n");
  }
  const us_report_counts *c = &r->counts;
  const struct {
    const char *name;
    long value;
  } counts[] = {{"prompts (train)", c->prompts_train},
                {"prompts (test)", c->prompts_test},
                {"paid teacher calls", c->teacher_calls},
                {"cache hits", c->cache_hits},
                {"imported answers", c->imported},
                {"unparsed teacher answers", c->unparsed},
                {"failed requests", c->failures},
                {"near-duplicates across train and test", c->near_duplicates},
                {"near-duplicates moved to test", c->near_duplicates_moved}};
  if (st == US_OK)
    st = us_buf_puts(o, "<section class=\"panel\" id=\"data\"><h2>Data</h2><table><tbody>\n");
  for (size_t i = 0; i < sizeof counts / sizeof counts[0] && st == US_OK; i++) {
    char v[48];
    us__report_count(v, sizeof v, (double)counts[i].value);
    st = metric_row(o, counts[i].name, v);
  }
  if (st == US_OK) st = us_buf_puts(o, "</tbody></table></section>\n");
  if (st != US_OK) return us_err_set(err, st, "report.html: out of memory");
  return US_OK;
}

static us_status html_head(const us_report *r, const us__headline *h, us_buf *o) {
  const char *name = r->run_name ? r->run_name : "unnamed run";
  us_status st = us_buf_puts(o,
                             "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                             "<meta name=\"viewport\" content=\"width=device-width, "
                             "initial-scale=1\">\n<meta http-equiv=\"Content-Security-Policy\" "
                             "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
                             "<title>understudy report: ");
  if (st == US_OK) st = esc(o, name);
  if (st == US_OK)
    st = us_buf_printf(o,
                       "</title>\n<style>\n%s</style>\n</head>\n<body><main>\n"
                       "<header><p class=\"kicker\">understudy report</p><h1>",
                       css);
  if (st == US_OK) st = esc(o, name);
  if (st == US_OK)
    st = us_buf_printf(
        o, "</h1><p class=\"meta\">Task: %s &middot; teacher: ", us_task_type_name(r->task));
  if (st == US_OK) st = esc(o, r->teacher_model ? r->teacher_model : "unknown");
  if (st == US_OK && r->student_desc) st = us_buf_puts(o, " &middot; student: ");
  if (st == US_OK && r->student_desc) st = esc(o, r->student_desc);
  if (st == US_OK && r->generated_at) st = us_buf_puts(o, " &middot; generated ");
  if (st == US_OK && r->generated_at) st = esc(o, r->generated_at);
  if (st == US_OK)
    st = us_buf_printf(o, "</p></header>\n<p class=\"verdict %s\">", h->positive ? "good" : "stay");
  if (st == US_OK) st = esc(o, h->verdict);
  if (st == US_OK) st = us_buf_puts(o, "</p>\n");
  return st;
}

us_status us_report_html(const us_report *r, us_buf *o, us_err *err) {
  us__headline h;
  us__report_headline_fill(r, &h);
  us_status st = html_head(r, &h, o);
  if (st == US_OK) st = html_cards(r, &h, o);
  if (st != US_OK) return us_err_set(err, st, "report.html: out of memory");
  st = html_quality(r, o, err);
  if (st == US_OK) st = html_cascade(r, &h, o, err);
  if (st == US_OK) st = html_cost(r, &h, o, err);
  if (st == US_OK) st = html_active(r, o, err);
  if (st == US_OK) st = html_spend(r, o, err);
  if (st == US_OK) st = html_rest(r, o, err);
  if (st != US_OK) return st;
  st = us_buf_printf(o,
                     "<footer>understudy &middot; report schema %d &middot; this page loads "
                     "nothing from the network</footer>\n</main></body></html>\n",
                     US_REPORT_SCHEMA_VERSION);
  if (st != US_OK) return us_err_set(err, st, "report.html: out of memory");
  return US_OK;
}
