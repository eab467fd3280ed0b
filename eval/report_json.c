/* report.json: the whole report as data, versioned by schema_version and documented field by
 * field in docs/report.md. Non-finite numbers (an infinite break-even) are written as null. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>

#include "eval/report_int.h"

/* Every add goes through these; a failed allocation sets *ok to false and later adds are
 * skipped, so one check at the end covers the whole document. A non-finite number is written
 * as null, which is how optional numbers (perplexity, size_ratio...) say "unknown". */
typedef struct builder {
  bool ok;
} builder;

static cJSON *add(builder *b, cJSON *parent, const char *key, cJSON *item) {
  if (!item) {
    b->ok = false;
    return NULL;
  }
  if (!parent) {
    cJSON_Delete(item);
    return NULL;
  }
  bool added = key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item);
  if (!added) {
    cJSON_Delete(item);
    b->ok = false;
    return NULL;
  }
  return item;
}

static cJSON *number(double v) {
  return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}
static cJSON *string(const char *s) {
  return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static void num(builder *b, cJSON *o, const char *k, double v) {
  add(b, o, k, number(v));
}
static void str(builder *b, cJSON *o, const char *k, const char *s) {
  add(b, o, k, string(s));
}
static void flag(builder *b, cJSON *o, const char *k, bool v) {
  add(b, o, k, cJSON_CreateBool(v));
}

/* A new object under key; when the section is absent, null there instead and NULL returned. */
static cJSON *section(builder *b, cJSON *parent, const char *key, bool present) {
  if (!present) {
    add(b, parent, key, cJSON_CreateNull());
    return NULL;
  }
  return add(b, parent, key, cJSON_CreateObject());
}

static void put_classify(builder *b, cJSON *q, const us_report *r) {
  const us_classify_metrics *m = r->metrics;
  num(b, q, "n", m->n);
  num(b, q, "n_scored", m->n_scored);
  num(b, q, "n_unscored", m->n_unscored);
  num(b, q, "agreement", m->agreement);
  cJSON *ci = add(b, q, "agreement_ci", cJSON_CreateObject());
  num(b, ci, "level", m->ci_level);
  num(b, ci, "lo", m->agreement_lo);
  num(b, ci, "hi", m->agreement_hi);
  num(b, q, "macro_f1", m->macro_f1);
  num(b, q, "macro_f1_labels", m->n_macro_labels);
  num(b, q, "ece", m->ece);
  cJSON *pc = add(b, q, "per_class", cJSON_CreateArray());
  for (int k = 0; k < m->n_labels && b->ok; k++) {
    cJSON *c = add(b, pc, NULL, cJSON_CreateObject());
    str(b, c, "label", us__report_label(r, k, NULL));
    num(b, c, "precision", m->per_class[k].precision);
    num(b, c, "recall", m->per_class[k].recall);
    num(b, c, "f1", m->per_class[k].f1);
    num(b, c, "support", m->per_class[k].support);
    num(b, c, "predicted", m->per_class[k].predicted);
  }
  cJSON *cf = add(b, q, "confusions", cJSON_CreateArray());
  for (int i = 0; i < m->n_confusions && b->ok; i++) {
    cJSON *c = add(b, cf, NULL, cJSON_CreateObject());
    str(b, c, "teacher", us__report_label(r, m->confusions[i].reference, NULL));
    str(b, c, "student", us__report_label(r, m->confusions[i].predicted, NULL));
    num(b, c, "count", m->confusions[i].count);
    str(b, c, "example", r->confusion_examples ? r->confusion_examples[i] : NULL);
  }
  cJSON *cal = add(b, q, "calibration", cJSON_CreateArray());
  for (int i = 0; i < US_METRICS_ECE_BINS && b->ok; i++) {
    cJSON *c = add(b, cal, NULL, cJSON_CreateObject());
    num(b, c, "lo", m->calibration[i].lo);
    num(b, c, "hi", m->calibration[i].hi);
    num(b, c, "count", m->calibration[i].count);
    num(b, c, "mean_confidence", m->calibration[i].mean_confidence);
    num(b, c, "accuracy", m->calibration[i].accuracy);
  }
  cJSON *g = section(b, q, "gold", m->has_gold);
  if (!g) return;
  num(b, g, "n", m->n_gold);
  num(b, g, "student_accuracy", m->student_gold_accuracy);
  num(b, g, "student_macro_f1", m->student_gold_macro_f1);
  num(b, g, "teacher_accuracy", m->teacher_gold_accuracy);
  num(b, g, "teacher_macro_f1", m->teacher_gold_macro_f1);
}

static void put_generation(builder *b, cJSON *root, const us_report *r) {
  const us_generate_metrics *g = r->generation;
  cJSON *o = section(b, root, "generation", g != NULL);
  if (!o) return;
  num(b, o, "n", g->n);
  num(b, o, "exact_match", g->exact_match);
  num(b, o, "token_f1", g->token_f1);
  num(b, o, "rouge_l", g->rouge_l);
  num(b, o, "chrf", g->chrf);
  num(b, o, "json_references", g->n_json_references);
  num(b, o, "valid_json_rate", g->valid_json_rate);
  num(b, o, "json_objects", g->n_json_objects);
  num(b, o, "json_field_f1", g->json_field_f1);
  num(b, o, "perplexity", r->perplexity > 0 ? r->perplexity : NAN); /* null when unknown */
}

static void put_speed(builder *b, cJSON *o, const char *key, const us_report_speed *s) {
  cJSON *v = section(b, o, key, s->measured);
  if (!v) return;
  num(b, v, "samples", s->latency.n);
  num(b, v, "latency_mean_s", s->latency.mean);
  num(b, v, "latency_p50_s", s->latency.p50);
  num(b, v, "latency_p90_s", s->latency.p90);
  num(b, v, "latency_p99_s", s->latency.p99);
  num(b, v, "requests_per_second", s->requests_per_second);
  num(b, v, "threads", s->threads);
}

static void put_cost(builder *b, cJSON *root, const us_cost *c) {
  cJSON *o = section(b, root, "cost", c != NULL);
  if (!o) return;
  num(b, o, "teacher_usd_per_request", c->teacher_usd_per_request);
  num(b, o, "student_usd_per_request", c->student_usd_per_request);
  num(b, o, "teacher_usd_per_million", c->teacher_usd_per_million);
  num(b, o, "student_usd_per_million", c->student_usd_per_million);
  num(b, o, "labelling_spend_usd", c->labelling_spend_usd);
  num(b, o, "cache_saved_usd", c->cache_saved_usd);
  num(b, o, "batch_saved_usd", c->batch_saved_usd);
  num(b, o, "training_usd", c->training_usd);
  num(b, o, "one_off_usd", c->one_off_usd);
  flag(b, o, "breaks_even", c->breaks_even);
  num(b, o, "break_even_requests", c->break_even_requests);
  num(b, o, "break_even_months", c->break_even_months);
  num(b, o, "requests_per_month", c->requests_per_month);
  num(b, o, "teacher_usd_per_month", c->teacher_usd_per_month);
  num(b, o, "student_usd_per_month", c->student_usd_per_month);
  num(b, o, "monthly_savings_usd", c->monthly_savings_usd);
  num(b, o, "size_ratio", c->size_ratio_known ? c->size_ratio : NAN);
}

static void put_spend(builder *b, cJSON *root, const us_report_spend *s) {
  cJSON *o = section(b, root, "spend", s != NULL);
  if (!o) return;
  num(b, o, "prompt_tokens", (double)s->prompt_tokens);
  num(b, o, "cached_tokens", (double)s->cached_tokens);
  num(b, o, "completion_tokens", (double)s->completion_tokens);
  num(b, o, "reasoning_tokens", (double)s->reasoning_tokens);
  num(b, o, "input_usd", s->input_usd);
  num(b, o, "cached_input_usd", s->cached_usd);
  num(b, o, "output_usd", s->output_usd);
  num(b, o, "reasoning_usd", s->reasoning_usd);
  num(b, o, "unsplit_usd", s->unsplit_usd);
  num(b, o, "unanswered", (double)s->unanswered);
  num(b, o, "unanswered_usd", s->unanswered_usd);
}

static const char *kind_name(us_cascade_kind k) {
  return k == US_CASCADE_TEACHER_ONLY   ? "teacher_only"
         : k == US_CASCADE_STUDENT_ONLY ? "student_only"
                                        : "threshold";
}

static const char *verdict_name(us_cascade_verdict v) {
  switch (v) {
    case US_CASCADE_USE_STUDENT:
      return "use_student";
    case US_CASCADE_USE_CASCADE:
      return "use_cascade";
    case US_CASCADE_STAY_BELOW_TARGET:
      return "stay_below_target";
    case US_CASCADE_STAY_NOT_CHEAPER:
      return "stay_not_cheaper";
    case US_CASCADE_STAY_NO_DATA:
      return "stay_no_data";
    case US_CASCADE_STAY_NOT_LEARNED:
      return "stay_not_learned";
  }
  return "stay_below_target";
}

static void put_point(builder *b, cJSON *p, const us_cascade_point *pt, bool gold) {
  str(b, p, "kind", kind_name(pt->kind));
  num(b, p, "threshold", pt->threshold); /* null for the two fixed systems */
  num(b, p, "answered", pt->answered);
  num(b, p, "coverage", pt->coverage);
  num(b, p, "agreement", pt->agreement);
  num(b, p, "agreement_low", pt->agreement_low);
  num(b, p, "student_agreement", pt->student_agreement);         /* null for teacher only */
  num(b, p, "student_agreement_low", pt->student_agreement_low); /* null for teacher only */
  num(b, p, "gold_accuracy", gold ? pt->gold_accuracy : NAN);
  num(b, p, "usd_per_request", pt->usd_per_request);
}

static void put_baselines(builder *b, cJSON *o, const us_report *r, const us_cascade *k) {
  const us_cascade_baselines *bl = &k->baselines;
  cJSON *v = section(b, o, "baselines", bl->known);
  if (!v) return;
  num(b, v, "chance", bl->chance);
  num(b, v, "majority_class", bl->majority_class);
  str(b, v, "majority_label", us__report_label(r, bl->majority_label, NULL));
  num(b, v, "student_agreement", bl->student_agreement);
  num(b, v, "student_agreement_low", bl->student_agreement_low);
  flag(b, v, "beaten", bl->beaten);
}

static void put_cascade(builder *b, cJSON *root, const us_report *r, const us_cascade *k,
                        const us_cost *cost) {
  cJSON *o = section(b, root, "cascade", k != NULL);
  if (!o) return;
  num(b, o, "target_agreement", k->target_agreement);
  num(b, o, "confidence", k->confidence_level);
  num(b, o, "n", k->n);
  str(b, o, "verdict", verdict_name(k->verdict));
  str(b, o, "verdict_text", us_cascade_verdict_str(k->verdict));
  num(b, o, "recommended_index", k->recommended);
  put_baselines(b, o, r, k);
  cJSON *rec = add(b, o, "recommended", cJSON_CreateObject());
  if (k->n_points > 0) put_point(b, rec, &k->points[k->recommended], k->has_gold);
  if (k->n_points > 0 && cost) {
    /* What adopting the recommendation means in money (nothing when staying). */
    const us_cascade_point *p = &k->points[k->recommended];
    bool adopt = k->recommended != k->teacher_only;
    double saving = cost->teacher_usd_per_request - p->usd_per_request;
    num(b, rec, "break_even_requests",
        adopt ? us_cost_break_even(cost->one_off_usd, cost->teacher_usd_per_request,
                                   p->usd_per_request)
              : NAN);
    num(b, rec, "monthly_savings_usd", adopt ? saving * cost->requests_per_month : 0.0);
  }
  cJSON *pts = add(b, o, "points", cJSON_CreateArray());
  for (int i = 0; i < k->n_points && b->ok; i++)
    put_point(b, add(b, pts, NULL, cJSON_CreateObject()), &k->points[i], k->has_gold);
}

static void put_series(builder *b, cJSON *o, const char *key, const us_report_series *s) {
  cJSON *a = add(b, o, key, cJSON_CreateArray());
  for (int i = 0; i < s->n && b->ok; i++) {
    cJSON *pair = add(b, a, NULL, cJSON_CreateArray());
    add(b, pair, NULL, number(s->x[i]));
    add(b, pair, NULL, number(s->y[i]));
  }
}

static void put_headline(builder *b, cJSON *root, const us_report *r) {
  us__headline h;
  us__report_headline_fill(r, &h);
  cJSON *o = add(b, root, "headline", cJSON_CreateObject());
  flag(b, o, "positive", h.positive);
  str(b, o, "verdict", h.verdict);
  str(b, o, "size", h.size);
  str(b, o, "quality", h.agreement);
  str(b, o, "teacher_per_million", h.teacher_cost);
  str(b, o, "student_per_million", h.student_cost);
  str(b, o, "break_even", h.break_even);
  str(b, o, "savings", h.savings);
  str(b, o, "cascade", h.cascade);
}

static void put_active(builder *b, cJSON *root, const us_report_active *a) {
  cJSON *o = section(b, root, "active_labelling", a != NULL && a->n_rounds > 0);
  if (!o) return;
  num(b, o, "pool", (double)a->pool);
  num(b, o, "labelled", (double)a->labelled);
  num(b, o, "labels_saved", a->labels_saved);
  num(b, o, "dollars_saved", a->dollars_saved);
  if (a->full_pool_agreement >= 0)
    num(b, o, "full_pool_agreement", a->full_pool_agreement);
  else
    add(b, o, "full_pool_agreement", cJSON_CreateNull());
  str(b, o, "stop", a->stop);
  cJSON *rounds = add(b, o, "rounds", cJSON_CreateArray());
  for (int i = 0; i < a->n_rounds && b->ok; i++) {
    cJSON *p = add(b, rounds, NULL, cJSON_CreateObject());
    num(b, p, "round", i + 1);
    num(b, p, "labels", a->labels[i]);
    num(b, p, "dollars", a->dollars[i]);
    num(b, p, "test_agreement", a->test_agreement[i]);
    num(b, p, "valid_agreement", a->valid_agreement[i]);
  }
}

us_status us_report_json(const us_report *r, us_buf *out, us_err *err) {
  builder b = {true};
  cJSON *root = cJSON_CreateObject();
  if (!root) return us_err_set(err, US_ERR_NOMEM, "report.json: out of memory");
  num(&b, root, "schema_version", US_REPORT_SCHEMA_VERSION);
  cJSON *run = add(&b, root, "run", cJSON_CreateObject());
  str(&b, run, "name", r->run_name);
  str(&b, run, "task", us_task_type_name(r->task));
  str(&b, run, "teacher_model", r->teacher_model);
  str(&b, run, "student", r->student_desc);
  str(&b, run, "generated_at", r->generated_at);
  num(&b, run, "student_params", (double)r->student_params);
  cJSON *labels = add(&b, root, "labels", cJSON_CreateArray());
  for (int k = 0; k < r->n_labels && b.ok; k++)
    add(&b, labels, NULL, string(us__report_label(r, k, NULL)));
  put_headline(&b, root, r);
  cJSON *quality = section(&b, root, "quality", r->metrics != NULL);
  if (quality) put_classify(&b, quality, r);
  put_generation(&b, root, r);
  cJSON *speed = add(&b, root, "speed", cJSON_CreateObject());
  put_speed(&b, speed, "student", &r->student_speed);
  put_speed(&b, speed, "teacher", &r->teacher_speed);
  put_cost(&b, root, r->cost);
  put_cascade(&b, root, r, r->cascade, r->cost);
  cJSON *training = add(&b, root, "training", cJSON_CreateObject());
  put_series(&b, training, "train_loss", &r->train_loss);
  put_series(&b, training, "valid_loss", &r->valid_loss);
  put_series(&b, training, "valid_accuracy", &r->valid_accuracy);
  put_active(&b, root, r->active);
  const us_report_production *pr = r->production;
  cJSON *prod = section(&b, root, "production", pr != NULL);
  if (prod) {
    num(&b, prod, "requests", (double)pr->requests);
    cJSON *routes = add(&b, prod, "routes", cJSON_CreateObject());
    num(&b, routes, "student", (double)pr->student);
    num(&b, routes, "teacher", (double)pr->teacher);
    num(&b, routes, "cache", (double)pr->cache);
    num(&b, routes, "error", (double)pr->errors);
    num(&b, prod, "hours", pr->hours);
    num(&b, prod, "spent_usd", pr->spent_usd);
    num(&b, prod, "saved_usd", pr->saved_usd);
    num(&b, prod, "predicted_saved_usd", pr->predicted_saved_usd);
    num(&b, prod, "audits", (double)pr->audits);
    num(&b, prod, "audits_agreeing", (double)pr->audits_agreeing);
    num(&b, prod, "live_agreement",
        pr->audits ? (double)pr->audits_agreeing / (double)pr->audits : NAN);
    put_series(&b, prod, "agreement", &pr->agreement);
  }
  cJSON *data = add(&b, root, "data", cJSON_CreateObject());
  num(&b, data, "prompts_train", (double)r->counts.prompts_train);
  num(&b, data, "prompts_test", (double)r->counts.prompts_test);
  num(&b, data, "teacher_calls", (double)r->counts.teacher_calls);
  num(&b, data, "cache_hits", (double)r->counts.cache_hits);
  num(&b, data, "imported", (double)r->counts.imported);
  num(&b, data, "unparsed", (double)r->counts.unparsed);
  num(&b, data, "failures", (double)r->counts.failures);
  num(&b, data, "near_duplicates", (double)r->counts.near_duplicates);
  num(&b, data, "near_duplicates_moved", (double)r->counts.near_duplicates_moved);
  put_spend(&b, root, r->spend);
  char *text = b.ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  if (!text) return us_err_set(err, US_ERR_NOMEM, "report.json: out of memory");
  us_status st = us_buf_puts(out, text);
  if (st == US_OK) st = us_buf_puts(out, "\n");
  free(text);
  if (st != US_OK) return us_err_set(err, st, "report.json: out of memory");
  return US_OK;
}
