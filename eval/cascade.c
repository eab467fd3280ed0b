/* Cascade analysis: one pass over the examples sorted by confidence gives every threshold. */
#include "eval/cascade.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void us_quality_params_defaults(us_quality_params *p) {
  p->target_agreement = 0.95;
  p->confidence = 0.95;
}

static const us_param QUALITY_PARAMS[] = {
    US_PARAM(us_quality_params, target_agreement, US_PARAM_DOUBLE, 0, 1, US_PARAM_MIN_OPEN,
             "agreement with the teacher the cascade must reach"),
    US_PARAM(us_quality_params, confidence, US_PARAM_DOUBLE, 0, 0.999, 0,
             "confidence of the lower bound on agreement that must meet the target; 0: the "
             "measured agreement alone"),
};

const us_param *us_quality_param_table(size_t *n) {
  *n = sizeof QUALITY_PARAMS / sizeof QUALITY_PARAMS[0];
  return QUALITY_PARAMS;
}

us_status us_quality_params_check(const us_quality_params *p, us_err *err) {
  return us_params_check(QUALITY_PARAMS, sizeof QUALITY_PARAMS / sizeof QUALITY_PARAMS[0], p, err);
}

void us_cascade_free(us_cascade *c) {
  if (!c) return;
  free(c->points);
  c->points = NULL;
  c->n_points = 0;
}

const char *us_cascade_verdict_str(us_cascade_verdict v) {
  switch (v) {
    case US_CASCADE_USE_STUDENT:
      return "switch to the student: it alone meets the quality target";
    case US_CASCADE_USE_CASCADE:
      return "use the cascade: the student answers when confident, the teacher the rest";
    case US_CASCADE_STAY_BELOW_TARGET:
      return "stay with the teacher: no threshold reaches the quality target";
    case US_CASCADE_STAY_NOT_CHEAPER:
      return "stay with the teacher: no threshold that reaches the quality target costs less";
    case US_CASCADE_STAY_NO_DATA:
      return "stay with the teacher: there are no test examples to judge the student on";
    case US_CASCADE_STAY_NOT_LEARNED:
      return "stay with the teacher: the student did not learn this task";
  }
  return "stay with the teacher";
}

/* Sort key: confidence descending, then index, so ties are deterministic. */
typedef struct ranked {
  double confidence;
  int index;
} ranked;

static int ranked_order(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->confidence != y->confidence) return x->confidence > y->confidence ? -1 : 1;
  return (x->index > y->index) - (x->index < y->index);
}

static us_status check_inputs(const us_cascade_inputs *in, us_err *err) {
  if (in->n < 0 || (in->n > 0 && (!in->confidence || !in->student_score)))
    return us_err_set(err, US_ERR_INPUT, "cascade: need n >= 0, confidences and scores");
  if (in->student_gold && !in->teacher_gold)
    return us_err_set(err, US_ERR_INPUT, "cascade: student gold flags given without the teacher's");
  us_err why;
  if (us_quality_params_check(&in->quality, &why) != US_OK)
    return us_err_set(err, US_ERR_INPUT, "cascade: quality.%s", why.msg);
  if (!(in->student_usd_per_request >= 0) || !(in->teacher_usd_per_request >= 0) ||
      !isfinite(in->student_usd_per_request) || !isfinite(in->teacher_usd_per_request))
    return us_err_set(err, US_ERR_INPUT, "cascade: per-request costs must be finite and >= 0");
  if (in->n_labels < 0 || (in->n_labels > 0 && in->n > 0 && !in->teacher_label))
    return us_err_set(err, US_ERR_INPUT, "cascade: n_labels given without the teacher's labels");
  for (int i = 0; i < in->n; i++) {
    if (in->n_labels > 0 && (in->teacher_label[i] < 0 || in->teacher_label[i] >= in->n_labels))
      return us_err_set(err, US_ERR_INPUT, "cascade: example %d: teacher label %d not in [0, %d)",
                        i, in->teacher_label[i], in->n_labels);
    if (!isfinite(in->confidence[i]))
      return us_err_set(err, US_ERR_INPUT, "cascade: example %d: confidence is not finite", i);
    if (!(in->student_score[i] >= 0 && in->student_score[i] <= 1))
      return us_err_set(err, US_ERR_INPUT, "cascade: example %d: score %g not in [0, 1]", i,
                        in->student_score[i]);
  }
  return US_OK;
}

static int has_gold(const us_cascade_inputs *in, int i) {
  return in->student_gold && in->student_gold[i] >= 0 && in->teacher_gold[i] >= 0;
}

double us_normal_quantile(double level) {
  if (level <= 0.5) return 0;
  double lo = 0.0, hi = 40.0;
  for (int i = 0; i < 200; i++) {
    double mid = 0.5 * (lo + hi);
    if (0.5 * erfc(-mid / sqrt(2.0)) < level)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

double us_wilson_low(double hits, double n, double z) {
  if (n <= 0) return 0.0;
  double p = hits / n, z2 = z * z;
  double centre = p + z2 / (2.0 * n);
  double spread = z * sqrt(p * (1.0 - p) / n + z2 / (4.0 * (double)n * n));
  double low = (centre - spread) / (1.0 + z2 / n);
  return low < 0 ? 0 : low > p ? p : low;
}

/* Lower bound of the combined agreement. Every test prompt either agrees or not (the deferred
 * ones always do), so the bound is Wilson's on the combined share over all n prompts: it
 * accounts both for the student's errors and for how few prompts a threshold was judged on
 * (2 wrong answers out of 58 prompts is 96.6% measured but under 90.1% at 95% confidence).
 * Teacher only is exactly 1; z = 0 gives the measured share. */
static double combined_low(double score, int answered, int n, double z) {
  if (n == 0) return 0.0;
  if (answered == 0) return 1.0;
  double agreeing = score + (n - answered);
  return z > 0 ? us_wilson_low(agreeing, n, z) : agreeing / n;
}

/* Lower bound of the agreement of the student's own answers: Wilson's over the answered
 * prompts only, so a handful of answers, or answers no better than chance, cannot pass. */
static double student_low(double score, int answered, double z) {
  if (answered == 0) return NAN;
  return z > 0 ? us_wilson_low(score, answered, z) : score / answered;
}

/* Walks examples in falling confidence; a point after each run of equal confidences. */
static void fill_points(const us_cascade_inputs *in, const ranked *order, us_cascade *c) {
  int n = in->n, n_gold = 0, teacher_gold_hits = 0;
  for (int i = 0; i < n; i++)
    if (has_gold(in, i)) {
      n_gold++;
      teacher_gold_hits += in->teacher_gold[i] > 0;
    }
  c->n_gold = n_gold;
  c->has_gold = n_gold > 0;
  double gold_den = n_gold > 0 ? n_gold : 1, n_den = n > 0 ? n : 1;
  double z = in->quality.confidence > 0 ? us_normal_quantile(in->quality.confidence) : 0.0;
  c->points[0] = (us_cascade_point){.kind = US_CASCADE_TEACHER_ONLY,
                                    .threshold = INFINITY,
                                    .agreement = 1.0,
                                    .agreement_low = 1.0,
                                    .student_agreement = NAN,
                                    .student_agreement_low = NAN,
                                    .gold_accuracy = teacher_gold_hits / gold_den,
                                    .usd_per_request = in->teacher_usd_per_request};
  int k = 1, gold_hits = teacher_gold_hits; /* gold hits of the combined system so far */
  double score = 0;
  for (int r = 0; r < n; r++) {
    int i = order[r].index;
    score += in->student_score[i];
    if (has_gold(in, i)) gold_hits += (in->student_gold[i] > 0) - (in->teacher_gold[i] > 0);
    if (r + 1 < n && order[r + 1].confidence == order[r].confidence) continue;
    int answered = r + 1;
    double coverage = answered / n_den;
    c->points[k++] =
        (us_cascade_point){.kind = US_CASCADE_THRESHOLD,
                           .threshold = order[r].confidence,
                           .answered = answered,
                           .coverage = coverage,
                           .agreement = (score + (n - answered)) / n_den,
                           .agreement_low = combined_low(score, answered, n, z),
                           .student_agreement = score / answered,
                           .student_agreement_low = student_low(score, answered, z),
                           .gold_accuracy = gold_hits / gold_den,
                           .usd_per_request = in->student_usd_per_request +
                                              (1 - coverage) * in->teacher_usd_per_request};
  }
  c->points[k] = (us_cascade_point){.kind = US_CASCADE_STUDENT_ONLY,
                                    .threshold = -INFINITY,
                                    .answered = n,
                                    .coverage = n > 0 ? 1.0 : 0.0,
                                    .agreement = n > 0 ? score / n_den : 0.0,
                                    .agreement_low = combined_low(score, n, n, z),
                                    .student_agreement = n > 0 ? score / n_den : NAN,
                                    .student_agreement_low = student_low(score, n, z),
                                    .gold_accuracy = gold_hits / gold_den,
                                    .usd_per_request = in->student_usd_per_request};
  c->n_points = k + 1;
  if (n == 0) c->points[k].agreement = c->points[k].agreement_low = 0;
}

/* Chance and the majority class against the student alone. The student beats them when the
 * lower bound of its agreement is above both (or it agrees on every example: a task whose
 * teacher always answers the same label is learned by a student that does too). */
static us_status fill_baselines(const us_cascade_inputs *in, us_cascade *c, us_err *err) {
  us_cascade_baselines *b = &c->baselines;
  memset(b, 0, sizeof *b);
  b->majority_label = -1;
  if (in->n_labels <= 0 || in->n == 0) return US_OK;
  int *count = calloc((size_t)in->n_labels, sizeof *count);
  if (!count)
    return us_err_set(err, US_ERR_NOMEM, "cascade: out of memory for %d labels", in->n_labels);
  for (int i = 0; i < in->n; i++) count[in->teacher_label[i]]++;
  int best = 0;
  for (int k = 1; k < in->n_labels; k++)
    if (count[k] > count[best]) best = k;
  const us_cascade_point *alone = &c->points[c->n_points - 1];
  b->known = true;
  b->chance = 1.0 / in->n_labels;
  b->majority_label = best;
  b->majority_class = (double)count[best] / in->n;
  b->student_agreement = alone->student_agreement;
  b->student_agreement_low = alone->student_agreement_low;
  double bar = fmax(b->chance, b->majority_class);
  b->beaten = alone->student_agreement >= 1.0 || b->student_agreement_low > bar;
  free(count);
  return US_OK;
}

static int cheaper(double a, double b) {
  return a < b - 1e-12 * fmax(fabs(a), fabs(b));
}

/* What a point is judged on: the lower of the whole system's bound and the bound on the
 * student's own answers (the latter is the binding one unless the student answers nearly all). */
static double point_quality(const us_cascade_point *p) {
  return fmin(p->agreement_low, p->student_agreement_low);
}

/* Cheapest point where the student answers and the target is met by both lower bounds (the
 * point estimates at confidence 0); ties go to the higher quality, then to the later point
 * (more coverage, and the plain student-only system). */
static void recommend(us_cascade *c) {
  const double eps = 1e-12;
  int best = -1, best_quality = -1;
  for (int k = c->n_points - 1; k >= 1; k--) {
    const us_cascade_point *p = &c->points[k];
    if (p->answered == 0) continue;
    double q = point_quality(p);
    if (best_quality < 0 || q > point_quality(&c->points[best_quality]) ||
        (q == point_quality(&c->points[best_quality]) &&
         p->agreement_low > c->points[best_quality].agreement_low))
      best_quality = k;
    if (q < c->target_agreement - eps) continue;
    if (best < 0 || cheaper(p->usd_per_request, c->points[best].usd_per_request) ||
        (!cheaper(c->points[best].usd_per_request, p->usd_per_request) &&
         q > point_quality(&c->points[best])))
      best = k;
  }
  c->best_quality_threshold_point = best_quality;
  c->recommended = c->teacher_only;
  if (c->n == 0)
    c->verdict = US_CASCADE_STAY_NO_DATA;
  else if (c->baselines.known && !c->baselines.beaten)
    c->verdict = US_CASCADE_STAY_NOT_LEARNED;
  else if (best < 0)
    c->verdict = US_CASCADE_STAY_BELOW_TARGET;
  else if (!cheaper(c->points[best].usd_per_request, c->points[c->teacher_only].usd_per_request))
    c->verdict = US_CASCADE_STAY_NOT_CHEAPER;
  else {
    c->recommended = best;
    c->verdict = c->points[best].coverage >= 1.0 ? US_CASCADE_USE_STUDENT : US_CASCADE_USE_CASCADE;
  }
}

us_status us_cascade_compute(const us_cascade_inputs *in, us_cascade *out, us_err *err) {
  memset(out, 0, sizeof *out);
  out->best_quality_threshold_point = -1;
  us_status st = check_inputs(in, err);
  if (st != US_OK) return st;
  ranked *order = malloc((size_t)(in->n ? in->n : 1) * sizeof *order);
  out->points = malloc((size_t)(in->n + 2) * sizeof *out->points);
  if (!order || !out->points) {
    free(order);
    us_cascade_free(out);
    return us_err_set(err, US_ERR_NOMEM, "cascade: out of memory for %d examples", in->n);
  }
  for (int i = 0; i < in->n; i++) order[i] = (ranked){in->confidence[i], i};
  qsort(order, (size_t)in->n, sizeof *order, ranked_order);
  out->n = in->n;
  out->target_agreement = in->quality.target_agreement;
  out->confidence_level = in->quality.confidence;
  fill_points(in, order, out);
  out->teacher_only = 0;
  out->student_only = out->n_points - 1;
  free(order);
  st = fill_baselines(in, out, err);
  if (st != US_OK) {
    us_cascade_free(out);
    return st;
  }
  recommend(out);
  return US_OK;
}

static void add_row(int *rows, int *n, int max_rows, int k) {
  for (int i = 0; i < *n; i++)
    if (rows[i] == k) return;
  if (*n < max_rows) rows[(*n)++] = k;
}

static int int_order(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

int us_cascade_table_rows(const us_cascade *c, int max_rows, int *rows) {
  int n = 0;
  if (max_rows <= 0 || c->n_points == 0) return 0;
  add_row(rows, &n, max_rows, c->teacher_only);
  add_row(rows, &n, max_rows, c->student_only);
  add_row(rows, &n, max_rows, c->recommended);
  int spread = max_rows - n;
  for (int s = 1; s <= spread && n < max_rows; s++) {
    double level = (double)s / (spread + 1);
    for (int k = 1; k < c->student_only; k++)
      if (c->points[k].coverage >= level) {
        add_row(rows, &n, max_rows, k);
        break;
      }
  }
  qsort(rows, (size_t)n, sizeof *rows, int_order);
  return n;
}
