/* Classification and generation metrics on plain arrays (see metrics.h for every definition).
 * Everything is deterministic: the bootstrap draws from a seeded us_rng. */
#include "eval/metrics.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/rng.h"
#include "core/utf8.h"

void us_metrics_defaults(us_metrics_options *o) {
  o->top_confusions = 10;
  o->bootstrap_resamples = 1000;
  o->ci_level = 0.95;
  o->seed = 1;
}

void us_metrics_free(us_classify_metrics *m) {
  if (!m) return;
  free(m->per_class);
  free(m->confusions);
  m->per_class = NULL;
  m->confusions = NULL;
  m->n_confusions = 0;
}

static double ratio(double num, double den) {
  return den > 0 ? num / den : 0.0;
}

/* Per-label precision/recall/F1 of pred against truth. truth[i] < 0: example skipped.
 * pred[i] < 0: no prediction (counts in the support only). scores has n_labels entries. */
static void score_classes(int n, int n_labels, const int *truth, const int *pred,
                          us_class_score *scores, double *macro_f1, int *n_macro) {
  memset(scores, 0, (size_t)n_labels * sizeof *scores);
  for (int i = 0; i < n; i++) {
    if (truth[i] < 0) continue;
    scores[truth[i]].support++;
    if (pred[i] >= 0) scores[pred[i]].predicted++;
    if (pred[i] == truth[i]) scores[truth[i]].correct++;
  }
  double sum = 0;
  int used = 0;
  for (int k = 0; k < n_labels; k++) {
    us_class_score *s = &scores[k];
    s->precision = ratio(s->correct, s->predicted);
    s->recall = ratio(s->correct, s->support);
    s->f1 = ratio(2.0 * s->precision * s->recall, s->precision + s->recall);
    if (s->support > 0 || s->predicted > 0) {
      sum += s->f1;
      used++;
    }
  }
  *macro_f1 = ratio(sum, used);
  *n_macro = used;
}

static us_status check_inputs(int n, int n_labels, const int *reference, const int *predicted,
                              const double *confidence, const int *gold, us_err *err) {
  if (n < 0 || n_labels < 1 || n_labels > 46340)
    return us_err_set(err, US_ERR_INPUT, "metrics: need n >= 0 and 1..46340 labels, got %d, %d", n,
                      n_labels);
  if (n > 0 && (!reference || !predicted || !confidence))
    return us_err_set(err, US_ERR_INPUT, "metrics: reference, predicted and confidence required");
  for (int i = 0; i < n; i++) {
    if (reference[i] < -1 || reference[i] >= n_labels)
      return us_err_set(err, US_ERR_INPUT, "metrics: example %d: reference label %d out of range",
                        i, reference[i]);
    if (predicted[i] < 0 || predicted[i] >= n_labels)
      return us_err_set(err, US_ERR_INPUT, "metrics: example %d: predicted label %d out of range",
                        i, predicted[i]);
    if (!(confidence[i] >= 0.0 && confidence[i] <= 1.0))
      return us_err_set(err, US_ERR_INPUT, "metrics: example %d: confidence %g not in [0, 1]", i,
                        confidence[i]);
    if (gold && (gold[i] < -1 || gold[i] >= n_labels))
      return us_err_set(err, US_ERR_INPUT, "metrics: example %d: gold label %d out of range", i,
                        gold[i]);
  }
  return US_OK;
}

static int confusion_order(const void *a, const void *b) {
  const us_confusion *x = a, *y = b;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  if (x->reference != y->reference) return x->reference < y->reference ? -1 : 1;
  return (x->predicted > y->predicted) - (x->predicted < y->predicted);
}

/* Collects off-diagonal cells, keeps the top k. */
static us_status find_confusions(int n, int n_labels, const int *reference, const int *predicted,
                                 int top_k, us_classify_metrics *m, us_err *err) {
  size_t cells = (size_t)n_labels * (size_t)n_labels;
  int *count = calloc(cells, sizeof *count);
  int *first = malloc(cells * sizeof *first);
  us_confusion *all = NULL;
  if (!count || !first) goto nomem;
  int distinct = 0;
  for (int i = 0; i < n; i++) {
    if (reference[i] < 0 || reference[i] == predicted[i]) continue;
    size_t c = (size_t)reference[i] * (size_t)n_labels + (size_t)predicted[i];
    if (count[c]++ == 0) {
      first[c] = i;
      distinct++;
    }
  }
  all = malloc((size_t)(distinct ? distinct : 1) * sizeof *all);
  if (!all) goto nomem;
  int k = 0;
  for (size_t c = 0; c < cells; c++)
    if (count[c] > 0)
      all[k++] = (us_confusion){(int)(c / (size_t)n_labels), (int)(c % (size_t)n_labels), count[c],
                                first[c]};
  qsort(all, (size_t)distinct, sizeof *all, confusion_order);
  m->n_confusions = distinct < top_k ? distinct : (top_k > 0 ? top_k : 0);
  m->confusions = all;
  free(count);
  free(first);
  return US_OK;
nomem:
  free(count);
  free(first);
  free(all);
  return us_err_set(err, US_ERR_NOMEM, "metrics: out of memory for %d x %d confusions", n_labels,
                    n_labels);
}

static void calibrate(int n, const int *reference, const int *predicted, const double *confidence,
                      us_classify_metrics *m) {
  double conf_sum[US_METRICS_ECE_BINS] = {0}, hit_sum[US_METRICS_ECE_BINS] = {0};
  for (int b = 0; b < US_METRICS_ECE_BINS; b++) {
    m->calibration[b] = (us_calibration_bin){(double)b / US_METRICS_ECE_BINS,
                                             (double)(b + 1) / US_METRICS_ECE_BINS, 0, 0, 0};
  }
  for (int i = 0; i < n; i++) {
    if (reference[i] < 0) continue;
    int b = (int)(confidence[i] * US_METRICS_ECE_BINS);
    if (b >= US_METRICS_ECE_BINS) b = US_METRICS_ECE_BINS - 1;
    m->calibration[b].count++;
    conf_sum[b] += confidence[i];
    hit_sum[b] += reference[i] == predicted[i];
  }
  m->ece = 0;
  for (int b = 0; b < US_METRICS_ECE_BINS; b++) {
    us_calibration_bin *bin = &m->calibration[b];
    if (bin->count == 0) continue;
    bin->mean_confidence = conf_sum[b] / bin->count;
    bin->accuracy = hit_sum[b] / bin->count;
    m->ece += (double)bin->count / m->n_scored * fabs(bin->accuracy - bin->mean_confidence);
  }
}

static us_status gold_scores(const us_metrics_options *opt, int n, int n_labels,
                             const int *reference, const int *predicted, const int *gold,
                             us_classify_metrics *m, us_err *err) {
  (void)opt;
  us_class_score *scratch = malloc((size_t)n_labels * sizeof *scratch);
  if (!scratch) return us_err_set(err, US_ERR_NOMEM, "metrics: out of memory");
  int n_gold = 0, student_hits = 0, teacher_hits = 0, unused;
  for (int i = 0; i < n; i++) {
    if (gold[i] < 0) continue;
    n_gold++;
    student_hits += predicted[i] == gold[i];
    teacher_hits += reference[i] == gold[i];
  }
  m->has_gold = n_gold > 0;
  m->n_gold = n_gold;
  m->student_gold_accuracy = ratio(student_hits, n_gold);
  m->teacher_gold_accuracy = ratio(teacher_hits, n_gold);
  score_classes(n, n_labels, gold, predicted, scratch, &m->student_gold_macro_f1, &unused);
  score_classes(n, n_labels, gold, reference, scratch, &m->teacher_gold_macro_f1, &unused);
  free(scratch);
  return US_OK;
}

us_status us_metrics_classify(const us_metrics_options *opt, int n, int n_labels,
                              const int *reference, const int *predicted, const double *confidence,
                              const int *gold, us_classify_metrics *out, us_err *err) {
  us_metrics_options defaults;
  if (!opt) {
    us_metrics_defaults(&defaults);
    opt = &defaults;
  }
  memset(out, 0, sizeof *out);
  us_status st = check_inputs(n, n_labels, reference, predicted, confidence, gold, err);
  if (st != US_OK) return st;
  unsigned char *hits = malloc((size_t)(n ? n : 1));
  out->per_class = malloc((size_t)n_labels * sizeof *out->per_class);
  if (!hits || !out->per_class) {
    st = us_err_set(err, US_ERR_NOMEM, "metrics: out of memory for %d examples", n);
    goto fail;
  }
  out->n = n;
  out->n_labels = n_labels;
  out->ci_level = opt->ci_level;
  int scored = 0, agree = 0;
  for (int i = 0; i < n; i++) {
    if (reference[i] < 0) continue;
    hits[scored++] = reference[i] == predicted[i];
    agree += reference[i] == predicted[i];
  }
  out->n_scored = scored;
  out->n_unscored = n - scored;
  out->agreement = ratio(agree, scored);
  score_classes(n, n_labels, reference, predicted, out->per_class, &out->macro_f1,
                &out->n_macro_labels);
  st = us_metrics_bootstrap_mean(hits, scored, opt->bootstrap_resamples, opt->ci_level, opt->seed,
                                 &out->agreement_lo, &out->agreement_hi, err);
  if (st != US_OK) goto fail;
  if (opt->bootstrap_resamples <= 0) out->agreement_lo = out->agreement_hi = out->agreement;
  st = find_confusions(n, n_labels, reference, predicted, opt->top_confusions, out, err);
  if (st != US_OK) goto fail;
  calibrate(n, reference, predicted, confidence, out);
  if (gold) {
    st = gold_scores(opt, n, n_labels, reference, predicted, gold, out, err);
    if (st != US_OK) goto fail;
  }
  free(hits);
  return US_OK;
fail:
  free(hits);
  us_metrics_free(out);
  return st;
}

static int double_order(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double us_metrics_quantile_sorted(const double *sorted, int n, double q) {
  if (n <= 0) return NAN;
  if (q <= 0) return sorted[0];
  if (q >= 1) return sorted[n - 1];
  double pos = q * (n - 1);
  int i = (int)pos;
  if (i >= n - 1) return sorted[n - 1];
  double frac = pos - i;
  return sorted[i] + frac * (sorted[i + 1] - sorted[i]);
}

us_status us_metrics_bootstrap_mean(const unsigned char *hits, int n, int resamples, double level,
                                    uint64_t seed, double *lo, double *hi, us_err *err) {
  *lo = *hi = 0;
  if (n <= 0 || resamples <= 0) return US_OK;
  if (!(level > 0 && level < 1))
    return us_err_set(err, US_ERR_INPUT, "bootstrap: level %g not in (0, 1)", level);
  double *means = malloc((size_t)resamples * sizeof *means);
  if (!means) return us_err_set(err, US_ERR_NOMEM, "bootstrap: out of memory");
  us_rng rng;
  us_rng_seed(&rng, seed);
  for (int r = 0; r < resamples; r++) {
    long sum = 0;
    for (int i = 0; i < n; i++) sum += hits[us_rng_below(&rng, (uint64_t)n)];
    means[r] = (double)sum / n;
  }
  qsort(means, (size_t)resamples, sizeof *means, double_order);
  *lo = us_metrics_quantile_sorted(means, resamples, (1 - level) / 2);
  *hi = us_metrics_quantile_sorted(means, resamples, (1 + level) / 2);
  free(means);
  return US_OK;
}

us_status us_metrics_latency(const double *seconds, int n, us_latency *out, us_err *err) {
  memset(out, 0, sizeof *out);
  if (n <= 0) return US_OK;
  double *s = malloc((size_t)n * sizeof *s);
  if (!s) return us_err_set(err, US_ERR_NOMEM, "latency: out of memory for %d samples", n);
  memcpy(s, seconds, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, double_order);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += s[i];
  out->n = n;
  out->mean = sum / n;
  out->p50 = us_metrics_quantile_sorted(s, n, 0.50);
  out->p90 = us_metrics_quantile_sorted(s, n, 0.90);
  out->p99 = us_metrics_quantile_sorted(s, n, 0.99);
  out->max = s[n - 1];
  free(s);
  return US_OK;
}

/* ---- generation ------------------------------------------------------------------------ */

static int is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool us_metrics_exact_match(const char *prediction, const char *reference) {
  const char *a = prediction ? prediction : "", *b = reference ? reference : "";
  while (is_space((unsigned char)*a)) a++;
  while (is_space((unsigned char)*b)) b++;
  size_t la = strlen(a), lb = strlen(b);
  while (la > 0 && is_space((unsigned char)a[la - 1])) la--;
  while (lb > 0 && is_space((unsigned char)b[lb - 1])) lb--;
  return la == lb && memcmp(a, b, la) == 0;
}

/* A token: its hash (lower-cased bytes) and where it sits, for exact comparison. */
typedef struct token {
  uint64_t hash;
  const char *start;
  size_t len;
} token;

static int is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static unsigned char lower(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int token_equal(const token *a, const token *b) {
  if (a->hash != b->hash || a->len != b->len) return 0;
  for (size_t i = 0; i < a->len; i++)
    if (lower((unsigned char)a->start[i]) != lower((unsigned char)b->start[i])) return 0;
  return 1;
}

/* Splits text into tokens (caller frees *out; *out may be NULL when *n is 0). */
static us_status tokenize(const char *text, token **out, size_t *n, us_err *err) {
  *out = NULL;
  *n = 0;
  const unsigned char *p = (const unsigned char *)(text ? text : "");
  size_t cap = 0;
  while (*p) {
    if (!is_word_byte(*p)) {
      p++;
      continue;
    }
    const unsigned char *start = p;
    uint64_t h = 1469598103934665603ull;
    while (*p && is_word_byte(*p)) h = (h ^ lower(*p++)) * 1099511628211ull;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      token *grown = realloc(*out, cap * sizeof *grown);
      if (!grown) {
        free(*out);
        *out = NULL;
        *n = 0;
        return us_err_set(err, US_ERR_NOMEM, "tokenize: out of memory");
      }
      *out = grown;
    }
    (*out)[(*n)++] = (token){h, (const char *)start, (size_t)(p - start)};
  }
  return US_OK;
}

static int token_order(const void *a, const void *b) {
  const token *x = a, *y = b;
  if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  for (size_t i = 0; i < x->len; i++) {
    unsigned char cx = lower((unsigned char)x->start[i]), cy = lower((unsigned char)y->start[i]);
    if (cx != cy) return cx < cy ? -1 : 1;
  }
  return 0;
}

static double f1_of(double common, double n_pred, double n_ref) {
  if (n_pred == 0 && n_ref == 0) return 1.0;
  if (common == 0) return 0.0;
  double p = common / n_pred, r = common / n_ref;
  return 2 * p * r / (p + r);
}

us_status us_metrics_token_f1(const char *prediction, const char *reference, double *f1,
                              us_err *err) {
  token *a = NULL, *b = NULL;
  size_t na, nb;
  *f1 = 0;
  us_status st = tokenize(prediction, &a, &na, err);
  if (st == US_OK) st = tokenize(reference, &b, &nb, err);
  if (st != US_OK) goto done;
  if (na) qsort(a, na, sizeof *a, token_order);
  if (nb) qsort(b, nb, sizeof *b, token_order);
  size_t i = 0, j = 0, common = 0;
  while (i < na && j < nb) {
    int c = token_order(&a[i], &b[j]);
    if (c == 0) {
      common++;
      i++;
      j++;
    } else if (c < 0) {
      i++;
    } else {
      j++;
    }
  }
  *f1 = f1_of((double)common, (double)na, (double)nb);
done:
  free(a);
  free(b);
  return st;
}

us_status us_metrics_rouge_l(const char *prediction, const char *reference, double *f1,
                             us_err *err) {
  token *a = NULL, *b = NULL;
  size_t na, nb;
  size_t *row = NULL;
  *f1 = 0;
  us_status st = tokenize(prediction, &a, &na, err);
  if (st == US_OK) st = tokenize(reference, &b, &nb, err);
  if (st != US_OK) goto done;
  row = calloc(nb + 1, sizeof *row); /* LCS lengths for the previous prefix of a */
  if (!row) {
    st = us_err_set(err, US_ERR_NOMEM, "rouge-l: out of memory");
    goto done;
  }
  for (size_t i = 0; i < na; i++) {
    size_t diagonal = 0; /* row[j] of the previous i, one column left */
    for (size_t j = 1; j <= nb; j++) {
      size_t above = row[j];
      if (token_equal(&a[i], &b[j - 1]))
        row[j] = diagonal + 1;
      else if (row[j - 1] > row[j])
        row[j] = row[j - 1];
      diagonal = above;
    }
  }
  *f1 = f1_of((double)row[nb], (double)na, (double)nb);
done:
  free(row);
  free(a);
  free(b);
  return st;
}

/* Decodes UTF-8 into code points, dropping whitespace; a byte that starts no valid sequence is
 * one unit of its own (0xDC00 + byte, like Python's surrogateescape). */
static us_status code_points(const char *text, uint32_t **out, size_t *n, us_err *err) {
  const char *p = text ? text : "";
  size_t len = strlen(p);
  *out = malloc((len ? len : 1) * sizeof **out);
  *n = 0;
  if (!*out) return us_err_set(err, US_ERR_NOMEM, "chrf: out of memory");
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    int step = us_utf8_decode(p + i, len - i, &cp);
    if (step == 0) {
      cp = 0xDC00 + (unsigned char)p[i];
      step = 1;
    }
    i += (size_t)step;
    if (cp < 0x80 && is_space((unsigned char)cp)) continue;
    (*out)[(*n)++] = cp;
  }
  return US_OK;
}

static int u64_order(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Sorted hashes of every order-gram of cp (count = n - order + 1). */
static void gram_hashes(const uint32_t *cp, size_t n, int order, uint64_t *out) {
  for (size_t i = 0; i + (size_t)order <= n; i++)
    out[i] = us_hash64(cp + i, (size_t)order * sizeof *cp, (uint64_t)order);
  qsort(out, n - (size_t)order + 1, sizeof *out, u64_order);
}

us_status us_metrics_chrf(const char *prediction, const char *reference, double *score,
                          us_err *err) {
  uint32_t *a = NULL, *b = NULL;
  uint64_t *ga = NULL, *gb = NULL;
  size_t na = 0, nb = 0;
  *score = 0;
  us_status st = code_points(prediction, &a, &na, err);
  if (st == US_OK) st = code_points(reference, &b, &nb, err);
  if (st != US_OK) goto done;
  if (na == 0 || nb == 0) {
    *score = na == nb ? 1.0 : 0.0;
    goto done;
  }
  ga = malloc(na * sizeof *ga);
  gb = malloc(nb * sizeof *gb);
  if (!ga || !gb) {
    st = us_err_set(err, US_ERR_NOMEM, "chrf: out of memory");
    goto done;
  }
  double precision = 0, recall = 0;
  int orders = 0;
  for (int order = 1; order <= 6; order++) {
    if ((size_t)order > na || (size_t)order > nb) break;
    size_t ca = na - (size_t)order + 1, cb = nb - (size_t)order + 1, i = 0, j = 0, common = 0;
    gram_hashes(a, na, order, ga);
    gram_hashes(b, nb, order, gb);
    while (i < ca && j < cb) {
      if (ga[i] == gb[j]) {
        common++;
        i++;
        j++;
      } else if (ga[i] < gb[j]) {
        i++;
      } else {
        j++;
      }
    }
    precision += (double)common / ca;
    recall += (double)common / cb;
    orders++;
  }
  precision /= orders;
  recall /= orders;
  const double beta2 = 4.0;
  double den = beta2 * precision + recall;
  *score = den > 0 ? (1 + beta2) * precision * recall / den : 0.0;
done:
  free(a);
  free(b);
  free(ga);
  free(gb);
  return st;
}

bool us_metrics_is_json(const char *text) {
  if (!text) return false;
  const char *end = NULL;
  cJSON *v = cJSON_ParseWithOpts(text, &end, 0);
  if (!v) return false;
  cJSON_Delete(v);
  while (end && is_space((unsigned char)*end)) end++;
  return end && *end == '\0';
}

/* The text parsed as a JSON object (whole text, surrounding space allowed), or NULL. */
static cJSON *json_object_of(const char *text) {
  const char *end = NULL;
  cJSON *v = text ? cJSON_ParseWithOpts(text, &end, 0) : NULL;
  while (v && end && is_space((unsigned char)*end)) end++;
  if (v && cJSON_IsObject(v) && end && *end == '\0') return v;
  cJSON_Delete(v);
  return NULL;
}

void us_metrics_json_fields(const char *prediction, const char *reference, int *matched,
                            int *predicted, int *expected) {
  *matched = *predicted = *expected = 0;
  cJSON *ref = json_object_of(reference), *pred = json_object_of(prediction);
  const cJSON *x;
  cJSON_ArrayForEach(x, ref)(*expected)++;
  cJSON_ArrayForEach(x, pred)(*predicted)++;
  if (ref && pred && *expected > 0) {
    /* duplicate keys are pairs of their own: each reference pair is matched at most once */
    unsigned char *used = calloc((size_t)*expected, 1);
    cJSON_ArrayForEach(x, pred) {
      int k = 0;
      for (const cJSON *y = ref->child; y && used; y = y->next, k++)
        if (!used[k] && strcmp(x->string, y->string) == 0 && cJSON_Compare(x, y, 1)) {
          used[k] = 1;
          (*matched)++;
          break;
        }
    }
    free(used);
  }
  cJSON_Delete(ref);
  cJSON_Delete(pred);
}

us_status us_metrics_generate(int n, const char *const *predictions, const char *const *references,
                              us_generate_metrics *out, us_err *err) {
  memset(out, 0, sizeof *out);
  if (n < 0 || (n > 0 && (!predictions || !references)))
    return us_err_set(err, US_ERR_INPUT, "generation metrics: need n >= 0 and both arrays");
  int json_ok = 0;
  int64_t fields_matched = 0, fields_predicted = 0, fields_expected = 0;
  for (int i = 0; i < n; i++) {
    const char *p = predictions[i] ? predictions[i] : "", *r = references[i] ? references[i] : "";
    double tf, rl, cf;
    us_status st = us_metrics_token_f1(p, r, &tf, err);
    if (st == US_OK) st = us_metrics_rouge_l(p, r, &rl, err);
    if (st == US_OK) st = us_metrics_chrf(p, r, &cf, err);
    if (st != US_OK) {
      us_err_prefix(err, "pair %d", i);
      return st;
    }
    out->exact_match += us_metrics_exact_match(p, r);
    out->token_f1 += tf;
    out->rouge_l += rl;
    out->chrf += cf;
    if (us_metrics_is_json(r)) {
      out->n_json_references++;
      json_ok += us_metrics_is_json(p);
    }
    cJSON *ref = json_object_of(r);
    if (ref) {
      int m, np, ne;
      us_metrics_json_fields(p, r, &m, &np, &ne);
      out->n_json_objects++;
      fields_matched += m, fields_predicted += np, fields_expected += ne;
      cJSON_Delete(ref);
    }
  }
  out->n = n;
  if (n > 0) {
    out->exact_match /= n;
    out->token_f1 /= n;
    out->rouge_l /= n;
    out->chrf /= n;
  }
  out->valid_json_rate = ratio(json_ok, out->n_json_references);
  /* micro-F1 = 2 matched / (predicted + expected) */
  if (fields_predicted + fields_expected > 0)
    out->json_field_f1 =
        2.0 * (double)fields_matched / (double)(fields_predicted + fields_expected);
  else if (out->n_json_objects > 0)
    out->json_field_f1 = 1.0; /* every reference is {} and so is every prediction */
  return US_OK;
}
