/* Report writers: hostile user text (a label "<script>alert(1)</script>", a run name
 * '"><img src=x onerror=alert(1)>', prompts with markup) appears only escaped in report.html and
 * report.md and verbatim in report.json, which parses with cJSON; the page loads nothing; the
 * headline never claims savings when the recommendation is to stay with the teacher.
 * With REPORT_OUT set, it also writes a realistic sample report there (the browser test uses it).
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "core/buf.h"
#include "core/rng.h"
#include "eval/report.h"

#define N_LABELS 14
#define N_TEST 700
#define EPOCHS 20

static const char *const labels[N_LABELS] = {
    "card_arrival",     "card_lost",       "<script>alert(1)</script>", "refund_request",
    "top_up_failed",    "exchange_rate",   "balance & \"fees\"",        "pin_blocked",
    "transfer_pending", "account_closure", "cash_withdrawal_wrong",     "direct_debit",
    "change_address",   "virtual_card"};
static const char *const hostile_name = "\"><img src=x onerror=alert(1)>";

/* Everything a report borrows, kept alive together. */
typedef struct sample {
  int reference[N_TEST], predicted[N_TEST], gold[N_TEST];
  double confidence[N_TEST], score[N_TEST];
  int student_gold[N_TEST], teacher_gold[N_TEST], teacher_label[N_TEST];
  const char *examples[16];
  double epochs[EPOCHS], train_loss[EPOCHS], valid_loss[EPOCHS], valid_acc[EPOCHS];
  us_classify_metrics metrics;
  us_cost cost;
  us_cascade cascade;
  us_report report;
} sample;

/* A student that is right more often when confident (quality controls how often), or, when
 * overconfident, always wrong above confidence 0.9. */
static void build(sample *s, double quality, double target, int overconfident) {
  memset(s, 0, sizeof *s);
  us_rng rng;
  us_rng_seed(&rng, 42);
  for (int i = 0; i < N_TEST; i++) {
    int truth = (int)us_rng_below(&rng, N_LABELS);
    s->gold[i] = truth;
    s->reference[i] = us_rng_uniform(&rng) < 0.97 ? truth : (truth + 1) % N_LABELS;
    if (i % 97 == 5) s->reference[i] = -1; /* an unparsed teacher answer */
    double conf = 0.35 + 0.65 * sqrt(us_rng_uniform(&rng));
    int right = us_rng_uniform(&rng) < quality * (0.55 + 0.45 * conf);
    if (overconfident && conf > 0.9) right = 0;
    int ref = s->reference[i] >= 0 ? s->reference[i] : truth;
    s->predicted[i] = right ? ref : (ref + 1 + (int)us_rng_below(&rng, 3)) % N_LABELS;
    s->confidence[i] = conf;
  }
  us_err err;
  assert_int_equal(us_metrics_classify(NULL, N_TEST, N_LABELS, s->reference, s->predicted,
                                       s->confidence, s->gold, &s->metrics, &err),
                   US_OK);
  /* the cascade takes examples with a usable teacher label */
  int n = 0;
  double conf[N_TEST];
  for (int i = 0; i < N_TEST; i++) {
    if (s->reference[i] < 0) continue;
    conf[n] = s->confidence[i];
    s->score[n] = s->predicted[i] == s->reference[i];
    s->teacher_label[n] = s->reference[i];
    s->student_gold[n] = s->predicted[i] == s->gold[i];
    s->teacher_gold[n] = s->reference[i] == s->gold[i];
    n++;
  }
  us_cost_inputs ci = {.teacher_usd_per_request = us_cost_from_tokens(180, 4, 2.5, 10),
                       .labelling_spend_usd = 3.12,
                       .cache_saved_usd = 0.84,
                       .training_cpu_seconds = 95,
                       .student_cpu_seconds_per_request = 42e-6,
                       .cost = {.cpu_usd_per_hour = 0.05, .requests_per_month = 1e6},
                       .teacher_params_b = 200,
                       .student_params = 2.1e6};
  assert_int_equal(us_cost_compute(&ci, &s->cost, &err), US_OK);
  us_cascade_inputs in = {n,
                          conf,
                          s->score,
                          s->student_gold,
                          s->teacher_gold,
                          s->cost.student_usd_per_request,
                          s->cost.teacher_usd_per_request,
                          {target, 0.95},
                          s->teacher_label,
                          N_LABELS};
  assert_int_equal(us_cascade_compute(&in, &s->cascade, &err), US_OK);
  for (int e = 0; e < EPOCHS; e++) {
    s->epochs[e] = e + 1;
    s->train_loss[e] = 2.4 * exp(-0.22 * e) + 0.08;
    s->valid_loss[e] = 2.3 * exp(-0.2 * e) + 0.21 + 0.004 * e;
    s->valid_acc[e] = 0.93 - 0.7 * exp(-0.3 * e);
  }
  for (int i = 0; i < s->metrics.n_confusions && i < 16; i++)
    s->examples[i] = i == 0   ? "my card <script>alert('x')</script> never came"
                     : i == 1 ? "\"><img src=x onerror=alert(1)> refund please"
                              : "where is my new card? it's been 2 weeks & nothing";
  us_report *r = &s->report;
  us_report_init(r);
  r->run_name = hostile_name;
  r->task = US_TASK_CLASSIFY;
  r->teacher_model = "gpt-4o-mini";
  r->student_desc = "hashed n-gram classifier, dim 100, 2^17 buckets";
  r->labels = labels;
  r->n_labels = N_LABELS;
  r->student_params = 2100000;
  r->metrics = &s->metrics;
  r->confusion_examples = s->examples;
  r->cost = &s->cost;
  r->cascade = &s->cascade;
  r->student_speed = (us_report_speed){true, {1000, 42e-6, 40e-6, 55e-6, 90e-6, 2e-4}, 23000, 1};
  r->teacher_speed = (us_report_speed){true, {800, 0.61, 0.52, 0.9, 1.8, 3.1}, 0, 0};
  r->train_loss = (us_report_series){EPOCHS, s->epochs, s->train_loss};
  r->valid_loss = (us_report_series){EPOCHS, s->epochs, s->valid_loss};
  r->valid_accuracy = (us_report_series){EPOCHS, s->epochs, s->valid_acc};
  r->counts = (us_report_counts){2800, N_TEST, 3120, 310, 70, 7, 2, 0, 0};
}

static void release(sample *s) {
  us_metrics_free(&s->metrics);
  us_cascade_free(&s->cascade);
}

static char *render(const us_report *r,
                    us_status (*writer)(const us_report *, us_buf *, us_err *)) {
  us_buf b;
  us_buf_init(&b, 0);
  us_err err;
  assert_int_equal(writer(r, &b, &err), US_OK);
  return us_buf_steal(&b);
}

static int contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (const char *p = hay; *p; p++) {
    size_t i = 0;
    while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i])) i++;
    if (i == n) return 1;
  }
  return 0;
}

static void html_should_show_user_text_only_escaped(void **state) {
  (void)state;
  sample *s = malloc(sizeof *s);
  build(s, 0.97, 0.95, 0);
  char *html = render(&s->report, us_report_html);
  assert_false(contains_ci(html, "<script"));
  assert_false(contains_ci(html, "<img"));
  assert_false(contains_ci(html, "onerror=alert(1)>"));
  assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  assert_non_null(strstr(html, "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
  assert_non_null(strstr(html, "balance &amp; &quot;fees&quot;"));
  assert_non_null(strstr(html, "alert(&#39;x&#39;)")); /* the confusion example */
  /* self-contained: no fetchable reference of any kind */
  assert_false(contains_ci(html, "src=\""));
  assert_false(contains_ci(html, "href=\""));
  assert_false(contains_ci(html, "url("));
  assert_false(contains_ci(html, "@import"));
  assert_non_null(strstr(html, "default-src 'none'"));
  /* the four charts */
  assert_non_null(strstr(html, "aria-label=\"Training and validation loss\""));
  assert_non_null(strstr(html, "aria-label=\"Total cost against requests served"));
  assert_non_null(strstr(html, "aria-label=\"Cascade: coverage"));
  assert_non_null(strstr(html, "aria-label=\"F1 per label, weakest first\""));
  assert_non_null(strstr(html, "<th class=\"num\">lower bound</th>"));
  assert_non_null(strstr(html, "agreement, lower 95% bound"));
  free(html);
  char *md = render(&s->report, us_report_markdown);
  assert_non_null(strstr(md,
                         "lower 95% confidence bounds of the whole system's agreement and of the "
                         "agreement of the student's own answers"));
  assert_non_null(strstr(md, "| its answers agree | their lower bound |"));
  assert_non_null(strstr(md, "Baselines: the student alone agrees"));
  assert_non_null(strstr(md, "The student beats both."));
  assert_non_null(strstr(md, "| lower bound |"));
  assert_false(contains_ci(md, "<script"));
  assert_false(contains_ci(md, "<img"));
  assert_non_null(strstr(md, "&lt;script&gt;alert(1)&lt;/script&gt;"));
  free(md);
  release(s);
  free(s);
}

static const cJSON *at(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  assert_non_null(v);
  return v;
}

static void json_should_parse_and_hold_user_text_verbatim(void **state) {
  (void)state;
  sample *s = malloc(sizeof *s);
  build(s, 0.97, 0.95, 0);
  char *text = render(&s->report, us_report_json);
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  assert_int_equal(at(root, "schema_version")->valueint, 1);
  assert_string_equal(at(at(root, "run"), "name")->valuestring, hostile_name);
  const cJSON *ls = at(root, "labels");
  assert_int_equal(cJSON_GetArraySize(ls), N_LABELS);
  assert_string_equal(cJSON_GetArrayItem(ls, 2)->valuestring, "<script>alert(1)</script>");
  const cJSON *q = at(root, "quality");
  assert_true(fabs(at(q, "agreement")->valuedouble - s->metrics.agreement) < 1e-12);
  assert_int_equal(cJSON_GetArraySize(at(q, "per_class")), N_LABELS);
  const cJSON *first = cJSON_GetArrayItem(at(q, "confusions"), 0);
  assert_string_equal(at(first, "example")->valuestring,
                      "my card <script>alert('x')</script> never came");
  assert_true(cJSON_IsObject(at(q, "gold")));
  const cJSON *cascade = at(root, "cascade");
  assert_int_equal(cJSON_GetArraySize(at(cascade, "points")), s->cascade.n_points);
  assert_true(cJSON_IsNull(at(cJSON_GetArrayItem(at(cascade, "points"), 0), "threshold")));
  /* the confidence bound: recorded, and below the measure for the student alone */
  assert_true(fabs(at(cascade, "confidence")->valuedouble - 0.95) < 1e-12);
  const cJSON *alone = cJSON_GetArrayItem(at(cascade, "points"), s->cascade.student_only);
  assert_true(at(alone, "agreement_low")->valuedouble < at(alone, "agreement")->valuedouble);
  assert_true(at(alone, "agreement_low")->valuedouble > 0.5);
  assert_non_null(
      strstr(at(at(root, "headline"), "cascade")->valuestring, "% confidence; target 95.0%)"));
  assert_int_equal(cJSON_GetArraySize(at(at(root, "training"), "train_loss")), EPOCHS);
  assert_true(at(at(root, "cost"), "size_ratio")->valuedouble > 90000);
  cJSON_Delete(root);
  free(text);
  release(s);
  free(s);
}

static void reports_should_say_plainly_when_none_meets_the_target(void **state) {
  (void)state;
  sample *s = malloc(sizeof *s);
  build(s, 0.9, 0.999, 1); /* every threshold includes a wrong answer */
  assert_true(s->cascade.verdict == US_CASCADE_STAY_BELOW_TARGET);
  us_buf b;
  us_buf_init(&b, 0);
  assert_int_equal(us_report_headline(&s->report, &b, NULL), US_OK);
  assert_non_null(strstr(b.data, "stay with the teacher"));
  assert_non_null(strstr(b.data, "none claimed"));
  us_buf_free(&b);
  char *html = render(&s->report, us_report_html);
  assert_non_null(strstr(html, "class=\"verdict stay\""));
  assert_non_null(strstr(html, "<p class=\"big\">teacher only</p>"));
  free(html);
  char *text = render(&s->report, us_report_json);
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *c = at(root, "cascade");
  assert_string_equal(at(c, "verdict")->valuestring, "stay_below_target");
  assert_string_equal(at(at(c, "recommended"), "kind")->valuestring, "teacher_only");
  assert_false(cJSON_IsTrue(at(at(root, "headline"), "positive")));
  cJSON_Delete(root);
  free(text);
  release(s);
  free(s);
}

static void json_should_write_infinite_break_even_as_null(void **state) {
  (void)state;
  sample *s = malloc(sizeof *s);
  build(s, 0.97, 0.95, 0);
  us_cost_inputs ci = {.teacher_usd_per_request = 0,
                       .student_cpu_seconds_per_request = 1e-4,
                       .cost = {.cpu_usd_per_hour = 0.05, .requests_per_month = 1e6}};
  assert_int_equal(us_cost_compute(&ci, &s->cost, NULL), US_OK);
  char *text = render(&s->report, us_report_json);
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *cost = at(root, "cost");
  assert_true(cJSON_IsFalse(at(cost, "breaks_even")));
  assert_true(cJSON_IsNull(at(cost, "break_even_requests")));
  assert_true(cJSON_IsNull(at(cost, "size_ratio")));
  cJSON_Delete(root);
  free(text);
  char *html = render(&s->report, us_report_html); /* $0 teacher: no log-scale failure */
  assert_non_null(strstr(html, "no teacher line is drawn"));
  free(html);
  release(s);
  free(s);
}

static void escape_should_replace_invalid_utf8_and_controls(void **state) {
  (void)state;
  us_buf b;
  us_buf_init(&b, 0);
  assert_int_equal(us_report_escape_html(&b, "a\x01<\xff\xc3\xa9\xe2\x82'\"&\n"), US_OK);
  assert_string_equal(b.data,
                      "a\xEF\xBF\xBD&lt;\xEF\xBF\xBD\xc3\xa9\xEF\xBF\xBD\xEF\xBF\xBD&#39;"
                      "&quot;&amp;\n");
  us_buf_free(&b);
}

static void write_should_produce_three_files(void **state) {
  (void)state;
  sample *s = malloc(sizeof *s);
  build(s, 0.97, 0.95, 0);
  const char *out = getenv("REPORT_OUT");
  char tmp[] = "/tmp/us_report_XXXXXX";
  const char *dir = out && *out ? out : mkdtemp(tmp);
  assert_non_null(dir);
  if (out && *out) {
    s->report.run_name = "demo-banking <b>&</b>"; /* readable, and still hostile */
    s->report.generated_at = "2026-11-30 12:00 UTC";
  }
  us_err err;
  assert_int_equal(us_report_write(&s->report, dir, &err), US_OK);
  const char *names[] = {"report.md", "report.json", "report.html"};
  for (int i = 0; i < 3; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(us_read_file(path, 0, &data, &len, &err), US_OK);
    assert_true(len > 1000);
    free(data);
    if (!(out && *out)) unlink(path);
  }
  if (!(out && *out)) rmdir(dir);
  release(s);
  free(s);
}

static void writers_should_handle_an_empty_and_a_generation_report(void **state) {
  (void)state;
  us_report r;
  us_report_init(&r);
  us_status (*writers[])(const us_report *, us_buf *, us_err *) = {
      us_report_html, us_report_markdown, us_report_json, us_report_headline};
  for (int w = 0; w < 4; w++) free(render(&r, writers[w])); /* every section absent */
  char *text = render(&r, us_report_json);
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  assert_true(cJSON_IsNull(at(root, "quality")));
  assert_true(cJSON_IsNull(at(root, "cascade")));
  cJSON_Delete(root);
  free(text);
  /* generation: confidence is a mean token log-probability, so thresholds are negative */
  const char *pred[] = {"{\"city\": \"Paris\"}", "{\"city\": \"Rome\"}", "{\"city\": "};
  const char *ref[] = {"{\"city\": \"Paris\"}", "{\"city\": \"Roma\"}", "{\"city\": \"Oslo\"}"};
  us_generate_metrics g;
  assert_int_equal(us_metrics_generate(3, pred, ref, &g, NULL), US_OK);
  double conf[] = {-0.05, -0.4, -2.5}, score[3];
  for (int i = 0; i < 3; i++) score[i] = us_metrics_exact_match(pred[i], ref[i]);
  us_cascade cascade;
  us_cascade_inputs in = {3, conf, score, NULL, NULL, 1e-5, 1e-3, {0.9, 0}, NULL, 0};
  assert_int_equal(us_cascade_compute(&in, &cascade, NULL), US_OK);
  assert_int_equal(cascade.verdict, US_CASCADE_USE_CASCADE);
  r.task = US_TASK_GENERATE;
  r.run_name = "slots";
  r.generation = &g;
  r.perplexity = 1.7;
  r.cascade = &cascade;
  char *html = render(&r, us_report_html);
  assert_non_null(strstr(html, "Exact match"));
  assert_non_null(strstr(html, "aria-label=\"Cascade: coverage"));
  free(html);
  text = render(&r, us_report_json);
  root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *gen = at(root, "generation");
  assert_true(fabs(at(gen, "exact_match")->valuedouble - 1.0 / 3) < 1e-12);
  assert_true(fabs(at(at(at(root, "cascade"), "recommended"), "threshold")->valuedouble + 0.05) <
              1e-12);
  /* judged on the point estimate: no bound in the headline */
  assert_non_null(
      strstr(at(at(root, "headline"), "cascade")->valuestring, "100.0% agreement (target 90.0%)"));
  cJSON_Delete(root);
  free(text);
  us_cascade_free(&cascade);
}

/* Issue 10, defect 8: the best threshold's bound is 0.94962 against a 95% target, and its
 * measured agreement 0.99963. The headline used to read "(the best, 100.0% agreement, at least
 * 95.0%, ...)" next to "no threshold is shown to reach the 95.0% target". */
static void headline_should_never_round_a_bound_over_the_target(void **state) {
  (void)state;
  us_cascade_point points[3] = {{.kind = US_CASCADE_TEACHER_ONLY,
                                 .threshold = INFINITY,
                                 .agreement = 1,
                                 .agreement_low = 1,
                                 .student_agreement = NAN,
                                 .student_agreement_low = NAN,
                                 .usd_per_request = 1e-3},
                                {.kind = US_CASCADE_THRESHOLD,
                                 .threshold = 0.8,
                                 .answered = 300,
                                 .coverage = 0.3,
                                 .agreement = 0.99963,
                                 .agreement_low = 0.94962,
                                 .student_agreement = 0.99877,
                                 .student_agreement_low = 0.94962,
                                 .usd_per_request = 7e-4},
                                {.kind = US_CASCADE_STUDENT_ONLY,
                                 .threshold = -INFINITY,
                                 .answered = 1000,
                                 .coverage = 1,
                                 .agreement = 0.6,
                                 .agreement_low = 0.57,
                                 .student_agreement = 0.6,
                                 .student_agreement_low = 0.57,
                                 .usd_per_request = 1e-9}};
  us_cascade c = {.points = points,
                  .n_points = 3,
                  .teacher_only = 0,
                  .student_only = 2,
                  .recommended = 0,
                  .verdict = US_CASCADE_STAY_BELOW_TARGET,
                  .target_agreement = 0.95,
                  .confidence_level = 0.95,
                  .n = 1000,
                  .best_quality_threshold_point = 1};
  us_classify_metrics m;
  memset(&m, 0, sizeof m);
  m.agreement = 0.99963;
  m.agreement_lo = 0.94962;
  m.agreement_hi = 0.99961;
  m.ci_level = 0.95;
  m.n_scored = 1000;
  us_report r;
  us_report_init(&r);
  r.cascade = &c;
  r.metrics = &m;
  us_buf b;
  us_buf_init(&b, 0);
  assert_int_equal(us_report_headline(&r, &b, NULL), US_OK);
  assert_null(strstr(b.data, "at least 95.0%")); /* a bound never rounds up to the target */
  assert_non_null(strstr(b.data, "at least 94.9% with 95% confidence"));
  assert_null(strstr(b.data, "100.0% agreement")); /* nor a measure short of all to "all" */
  assert_non_null(strstr(b.data, "over 99.9% agreement"));
  assert_non_null(strstr(b.data, "interval 94.9% to 100.0%")); /* lower down, upper up */
  us_buf_free(&b);
  char *md = render(&r, us_report_markdown);
  assert_null(strstr(md, "95.0% |"));
  assert_non_null(strstr(md, "| 94.9% |"));
  free(md);
  char *html = render(&r, us_report_html);
  assert_null(strstr(html, ">95.0%<"));
  assert_non_null(strstr(html, ">94.9%<"));
  free(html);
  /* met: a bound of 0.95071 against a 95.05% target reads with the digits that show it */
  c.target_agreement = 0.9505;
  points[1].agreement_low = points[1].student_agreement_low = 0.95071;
  c.recommended = 1;
  c.verdict = US_CASCADE_USE_CASCADE;
  us_buf_init(&b, 0);
  assert_int_equal(us_report_headline(&r, &b, NULL), US_OK);
  assert_non_null(strstr(b.data, "at least 95.07% with 95% confidence; target 95.05%)"));
  us_buf_free(&b);
}

/* Issue 10, defect 11: a student no better than chance gets "stay with the teacher: the student
 * did not learn this task" with the reason in every format, and report.json the baselines. */
static void reports_should_say_the_student_did_not_learn_and_why(void **state) {
  (void)state;
  sample *s = malloc(sizeof *s);
  build(s, 0.0, 0.95, 0); /* never agrees with the teacher */
  assert_int_equal(s->cascade.verdict, US_CASCADE_STAY_NOT_LEARNED);
  us_buf b;
  us_buf_init(&b, 0);
  assert_int_equal(us_report_headline(&s->report, &b, NULL), US_OK);
  assert_non_null(strstr(b.data,
                         "verdict:     stay with the teacher: the student did not learn "
                         "this task: its agreement with the teacher, 0.0%"));
  assert_non_null(strstr(b.data, "(the majority-class baseline, "));
  assert_non_null(strstr(b.data, "(chance, 7.1%)"));
  assert_non_null(strstr(b.data, "none claimed"));
  us_buf_free(&b);
  char *md = render(&s->report, us_report_markdown);
  assert_non_null(strstr(md, "**stay with the teacher: the student did not learn this task: "));
  assert_non_null(strstr(md, "The student is not shown to beat them"));
  free(md);
  char *html = render(&s->report, us_report_html);
  assert_non_null(strstr(html, "class=\"verdict stay\""));
  assert_non_null(strstr(html, "did not learn this task"));
  assert_non_null(strstr(html, "<p class=\"big\">teacher only</p>"));
  free(html);
  char *text = render(&s->report, us_report_json);
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  const cJSON *c = at(root, "cascade");
  assert_string_equal(at(c, "verdict")->valuestring, "stay_not_learned");
  const cJSON *base = at(c, "baselines");
  assert_true(fabs(at(base, "chance")->valuedouble - 1.0 / N_LABELS) < 1e-12);
  assert_true(at(base, "majority_class")->valuedouble >= 1.0 / N_LABELS);
  assert_true(cJSON_IsString(at(base, "majority_label")));
  assert_true(cJSON_IsFalse(at(base, "beaten")));
  const cJSON *p1 = cJSON_GetArrayItem(at(c, "points"), 1);
  assert_true(cJSON_IsNumber(at(p1, "student_agreement")));
  assert_true(cJSON_IsNumber(at(p1, "student_agreement_low")));
  assert_true(cJSON_IsNull(at(cJSON_GetArrayItem(at(c, "points"), 0), "student_agreement")));
  cJSON_Delete(root);
  free(text);
  release(s);
  free(s);
}

/* Issue 10, defect 12: the student's cost per million requests was shown as "$9.92e-05". */
static void money_should_read_as_a_person_reads_it(void **state) {
  (void)state;
  sample *s = malloc(sizeof *s);
  build(s, 0.97, 0.95, 0);
  s->cost.student_usd_per_request = 9.92e-11;
  s->cost.student_usd_per_million = 9.92e-05;
  s->cost.student_usd_per_month = 9.92e-05;
  us_buf b;
  us_buf_init(&b, 0);
  assert_int_equal(us_report_headline(&s->report, &b, NULL), US_OK);
  assert_non_null(strstr(b.data, ", student under $0.01 per million requests"));
  us_buf_free(&b);
  char *md = render(&s->report, us_report_markdown);
  char *html = render(&s->report, us_report_html);
  const char *docs[] = {md, html};
  for (int d = 0; d < 2; d++)
    for (const char *p = strchr(docs[d], '$'); p; p = strchr(p + 1, '$')) {
      size_t digits = strspn(p + 1, "-0123456789.,");
      assert_false(digits > 0 && (p[1 + digits] == 'e' || p[1 + digits] == 'E'));
    }
  assert_non_null(
      strstr(md, "| student per request | under $0.000001 (under $0.01 per million) |"));
  assert_non_null(strstr(md, "| student alone per month | under $0.01 |"));
  free(md);
  free(html);
  /* report.json keeps the exact figures */
  char *text = render(&s->report, us_report_json);
  cJSON *root = cJSON_Parse(text);
  assert_non_null(root);
  assert_true(at(at(root, "cost"), "student_usd_per_million")->valuedouble == 9.92e-05);
  assert_true(at(at(root, "cost"), "student_usd_per_request")->valuedouble == 9.92e-11);
  cJSON_Delete(root);
  free(text);
  release(s);
  free(s);
  /* plain notation for prices per request, three significant digits */
  s = malloc(sizeof *s);
  build(s, 0.97, 0.95, 0);
  s->cost.teacher_usd_per_request = 4.95e-4;
  md = render(&s->report, us_report_markdown);
  assert_non_null(strstr(md, "| teacher per request | $0.000495 |"));
  free(md);
  release(s);
  free(s);
}

static void reports_should_show_spend_by_kind_and_near_duplicates(void **state) {
  (void)state;
  sample *s = malloc(sizeof *s);
  build(s, 0.97, 0.95, 0);
  us_report_spend spend = {.prompt_tokens = 20000,
                           .cached_tokens = 15000,
                           .completion_tokens = 700,
                           .reasoning_tokens = 600,
                           .input_usd = 0.0125,
                           .cached_usd = 0.00375,
                           .output_usd = 0.001,
                           .reasoning_usd = 0.006,
                           .unanswered = 3,
                           .unanswered_usd = 0.48};
  s->report.spend = &spend;
  s->report.counts.near_duplicates = 12;
  s->report.counts.near_duplicates_moved = 5;
  char *md = render(&s->report, us_report_markdown);
  assert_non_null(strstr(md, "## Labelling spend by kind"));
  assert_non_null(strstr(md, "| cached input | 15000 |"));
  assert_non_null(strstr(md, "| reasoning | 600 |"));
  assert_non_null(strstr(md, "| input | 5000 |"));
  assert_non_null(strstr(md, "3 requests may have been billed without an answer: up to $0.48"));
  assert_non_null(strstr(md, "| near-duplicates across train and test | 12 |"));
  char *html = render(&s->report, us_report_html);
  assert_non_null(strstr(html, "Labelling spend by kind"));
  assert_non_null(strstr(html, "cached input"));
  assert_non_null(strstr(html, "3 requests may have been billed without an answer"));
  char *json = render(&s->report, us_report_json);
  cJSON *root = cJSON_Parse(json);
  assert_non_null(root);
  assert_true(fabs(at(at(root, "spend"), "cached_input_usd")->valuedouble - 0.00375) < 1e-12);
  assert_int_equal(at(at(root, "spend"), "reasoning_tokens")->valueint, 600);
  assert_int_equal(at(at(root, "spend"), "unanswered")->valueint, 3);
  assert_int_equal(at(at(root, "data"), "near_duplicates")->valueint, 12);
  assert_int_equal(at(at(root, "data"), "near_duplicates_moved")->valueint, 5);
  cJSON_Delete(root);
  s->report.spend = NULL; /* absent: JSON null, no section */
  free(json);
  json = render(&s->report, us_report_json);
  root = cJSON_Parse(json);
  assert_true(cJSON_IsNull(at(root, "spend")));
  cJSON_Delete(root);
  free(json);
  free(html);
  free(md);
  release(s);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(html_should_show_user_text_only_escaped),
      cmocka_unit_test(json_should_parse_and_hold_user_text_verbatim),
      cmocka_unit_test(reports_should_say_plainly_when_none_meets_the_target),
      cmocka_unit_test(json_should_write_infinite_break_even_as_null),
      cmocka_unit_test(escape_should_replace_invalid_utf8_and_controls),
      cmocka_unit_test(write_should_produce_three_files),
      cmocka_unit_test(writers_should_handle_an_empty_and_a_generation_report),
      cmocka_unit_test(headline_should_never_round_a_bound_over_the_target),
      cmocka_unit_test(reports_should_say_the_student_did_not_learn_and_why),
      cmocka_unit_test(money_should_read_as_a_person_reads_it),
      cmocka_unit_test(reports_should_show_spend_by_kind_and_near_duplicates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
