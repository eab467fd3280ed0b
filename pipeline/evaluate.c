/* The eval stage (student answers on the test split, timed) and the assembly of a report from
 * the workspace. */
#include "pipeline/evaluate.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "distill/request.h"
#include "pipeline/train.h"
#include "student/blas.h"
#include "student/classifier.h"
#include "student/lm.h"

/* One test prompt as the eval stage saw it. */
typedef struct test_row {
  int64_t prompt_id;
  char key[65];
  char *text;
  char *gold;
  int has_target;
  int reference; /* classify: teacher label index, -1 unparsed */
  char *teacher; /* generate: teacher answer */
} test_row;

static void rows_free(test_row *rows, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(rows[i].text);
    free(rows[i].gold);
    free(rows[i].teacher);
  }
  free(rows);
}

/* The test split with each prompt's target for the current request. */
static us_status load_test_rows(const us_config *c, us_cache *cache, test_row **out, size_t *n_out,
                                us_err *err) {
  us_prompt *p = NULL;
  size_t n = 0;
  us_status st = us_cache_prompts_list(cache, US_SPLIT_TEST, &p, &n, err);
  if (st) return st;
  test_row *rows = calloc(n + 1, sizeof *rows);
  if (!rows) {
    us_prompts_free(p, n);
    return us_err_set(err, US_ERR_NOMEM, "out of memory loading %zu test prompts", n);
  }
  for (size_t i = 0; i < n && !st; i++) {
    test_row *r = &rows[i];
    char *body = NULL;
    st = us_request_for_prompt(&c->task, &c->data, &c->teacher, &p[i], &body, r->key, err);
    free(body);
    if (st) break;
    r->prompt_id = p[i].id;
    r->text = p[i].text;
    r->gold = p[i].gold;
    p[i].text = p[i].gold = NULL;
    r->reference = -1;
    us_target t;
    bool found = false;
    st = us_cache_target_get(cache, r->key, &t, &found, err);
    if (st || !found) continue;
    r->has_target = 1;
    if (c->task.type == US_TASK_CLASSIFY) {
      if (t.status == US_TARGET_OK && t.label) r->reference = us_config_label_index(c, t.label);
    } else if (t.text) {
      r->teacher = t.text;
      t.text = NULL;
    }
    us_target_free_fields(&t);
  }
  us_prompts_free(p, n);
  if (st) {
    rows_free(rows, n);
    return st;
  }
  *out = rows;
  *n_out = n;
  return US_OK;
}

/* ---- eval stage -------------------------------------------------------------------------- */

static us_status predict_classify(const char *path, const us_config *c, test_row *rows, size_t n,
                                  cJSON *root, us_eval_summary *sum, us_err *err) {
  us_classifier *m = NULL;
  us_status st = us_classifier_load(path, &m, err);
  if (st) return st;
  if (us_classifier_n_labels(m) != c->task.n_labels) {
    us_classifier_free(m);
    return us_err_set(err, US_ERR_STATE,
                      "%s has %d labels but the config has %d; run `understudy train` again", path,
                      us_classifier_n_labels(m), c->task.n_labels);
  }
  for (int i = 0; i < c->task.n_labels; i++)
    if (strcmp(us_classifier_label(m, i), c->task.labels[i]) != 0) {
      us_classifier_free(m);
      return us_err_set(err, US_ERR_STATE,
                        "%s was trained with other labels than the config's (label %d is \"%s\", "
                        "not \"%s\"); run `understudy train` again",
                        path, i, us_classifier_label(m, i), c->task.labels[i]);
    }
  us_classifier_scratch *s = us_classifier_scratch_new(m);
  float *probs = malloc(sizeof(float) * (size_t)c->task.n_labels);
  cJSON *pred = cJSON_AddArrayToObject(root, "predicted");
  cJSON *conf = cJSON_AddArrayToObject(root, "confidence");
  cJSON *lat = cJSON_AddArrayToObject(root, "latency_s");
  if (!s || !probs) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory running the student");
    goto done;
  }
  /* Warm up once so the first timing does not include page faults of the model. */
  if (n) us_classifier_predict_with(m, s, rows[0].text, probs, NULL);
  double cpu0 = us_thread_cpu_time(), wall0 = us_now();
  for (size_t i = 0; i < n && !st; i++) {
    double t0 = us_now();
    st = us_classifier_predict_with(m, s, rows[i].text, probs, err);
    double dt = us_now() - t0;
    int best = 0;
    for (int k = 1; k < c->task.n_labels; k++)
      if (probs[k] > probs[best]) best = k;
    cJSON_AddItemToArray(pred, cJSON_CreateNumber(best));
    cJSON_AddItemToArray(conf, cJSON_CreateNumber(probs[best]));
    cJSON_AddItemToArray(lat, cJSON_CreateNumber(dt));
  }
  sum->wall_s = us_now() - wall0;
  sum->cpu_s_per_request = n ? (us_thread_cpu_time() - cpu0) / (double)n : 0;
  cJSON_AddNumberToObject(root, "params", (double)us_classifier_param_count(m));
done:
  free(probs);
  us_classifier_scratch_free(s);
  us_classifier_free(m);
  return st;
}

static us_status predict_generate(const char *path, test_row *rows, size_t n, cJSON *root,
                                  us_eval_summary *sum, us_err *err) {
  us_lm *lm = NULL;
  us_status st = us_lm_load(path, &lm, err);
  if (st) return st;
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  /* Token-by-token decoding is matrix-vector work too small to split across threads: one
   * thread is faster (docs/lm.md), and it is what the cost model assumes. */
  us_blas_set_threads(1);
  cJSON *ans = cJSON_AddArrayToObject(root, "answers");
  cJSON *conf = cJSON_AddArrayToObject(root, "confidence");
  cJSON *lat = cJSON_AddArrayToObject(root, "latency_s");
  double cpu0 = us_thread_cpu_time(), wall0 = us_now();
  for (size_t i = 0; i < n && !st; i++) {
    char *answer = NULL;
    double mean_lp = 0;
    double t0 = us_now();
    st = us_lm_generate(lm, rows[i].text, &gp, &answer, &mean_lp, NULL, err);
    double dt = us_now() - t0;
    cJSON_AddItemToArray(ans, cJSON_CreateString(answer ? answer : ""));
    cJSON_AddItemToArray(conf, cJSON_CreateNumber(mean_lp));
    cJSON_AddItemToArray(lat, cJSON_CreateNumber(dt));
    free(answer);
  }
  sum->wall_s = us_now() - wall0;
  sum->cpu_s_per_request = n ? (us_thread_cpu_time() - cpu0) / (double)n : 0;
  /* Perplexity of the student on the teacher's answers: exp of the mean negative log-probability
   * over every scored token (answers weighted by their length). */
  double logprob_sum = 0;
  long tokens = 0;
  for (size_t i = 0; i < n && !st; i++) {
    if (!rows[i].teacher) continue;
    double mean_lp = 0;
    int n_tokens = 0;
    st = us_lm_score(lm, rows[i].text, rows[i].teacher, &mean_lp, &n_tokens, err);
    logprob_sum += mean_lp * n_tokens;
    tokens += n_tokens;
  }
  if (tokens > 0) cJSON_AddNumberToObject(root, "perplexity", exp(-logprob_sum / (double)tokens));
  cJSON_AddNumberToObject(root, "params", (double)us_lm_n_params(lm));
  us_lm_free(lm);
  return st;
}

us_status us_eval_predict_stage(const us_config *c, us_cache *cache, us_eval_summary *sum,
                                us_err *err) {
  memset(sum, 0, sizeof *sum);
  test_row *rows = NULL;
  size_t n = 0;
  char *path = us_train_model_path(c);
  cJSON *root = cJSON_CreateObject();
  us_status st = US_OK;
  if (!path || !root) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory evaluating the student");
    goto done;
  }
  st = load_test_rows(c, cache, &rows, &n, err);
  if (st) goto done;
  if (n == 0) {
    st = us_err_set(err, US_ERR_STATE,
                    "the test split is empty: raise data.test_fraction or pin an input to "
                    "\"split\": \"test\", then run `understudy prompts` again");
    goto done;
  }
  sum->n_test = (int64_t)n;
  cJSON *ids = cJSON_AddArrayToObject(root, "prompt_ids");
  for (size_t i = 0; i < n; i++) {
    cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)rows[i].prompt_id));
    if (rows[i].has_target) sum->n_scored++;
  }
  if (c->task.type == US_TASK_CLASSIFY)
    st = predict_classify(path, c, rows, n, root, sum, err);
  else
    st = predict_generate(path, rows, n, root, sum, err);
  if (st) {
    if (st == US_ERR_IO) us_err_prefix(err, "no student model (run `understudy train` first)");
    goto done;
  }
  cJSON_AddNumberToObject(root, "wall_s", sum->wall_s);
  cJSON_AddNumberToObject(root, "cpu_s_per_request", sum->cpu_s_per_request);
  cJSON_AddNumberToObject(root, "threads", 1);
  char *json = cJSON_PrintUnformatted(root);
  st = json ? us_cache_result_put(cache, "predictions", json, err)
            : us_err_set(err, US_ERR_NOMEM, "out of memory storing predictions");
  free(json);
done:
  cJSON_Delete(root);
  rows_free(rows, n);
  free(path);
  return st;
}

/* ---- building a report ------------------------------------------------------------------- */

struct us_eval_data {
  us_report report;
  char student_desc[512]; /* classify: the student and, when searched, what was chosen */
  char student_line[640]; /* generate: the description with what training chose */
  test_row *rows;
  size_t n_rows;
  int *reference, *predicted, *gold;
  double *confidence, *score, *latency;
  double *cascade_confidence; /* confidence of the examples the cascade scores */
  int *student_gold, *teacher_gold;
  int *cascade_label;       /* classify: the teacher's label of the examples the cascade scores */
  const char **predictions; /* generate: the student's answers (point into json) */
  const char **references;
  const char **confusion_examples;
  us_classify_metrics metrics;
  bool has_metrics;
  us_generate_metrics generation;
  us_cost cost;
  us_report_spend spend;
  us_cascade cascade;
  bool has_cascade;
  us_curve_point *curves[3];
  double *curve_xy[3][2];
  cJSON *json;          /* the stored predictions */
  double *active_xy[4]; /* labels, dollars, test and validation agreement per round */
  us_report_active active;
  char active_stop[64];
  us_report_production production; /* `understudy serve` traffic, when there was some */
  double *agreement_xy[2];
};

void us_eval_data_free(us_eval_data *d) {
  if (!d) return;
  free(d->agreement_xy[0]);
  free(d->agreement_xy[1]);
  rows_free(d->rows, d->n_rows);
  free(d->reference);
  free(d->predicted);
  free(d->gold);
  free(d->confidence);
  free(d->score);
  free(d->latency);
  free(d->cascade_confidence);
  free(d->student_gold);
  free(d->teacher_gold);
  free(d->cascade_label);
  free(d->predictions);
  free(d->references);
  free(d->confusion_examples);
  if (d->has_metrics) us_metrics_free(&d->metrics);
  if (d->has_cascade) us_cascade_free(&d->cascade);
  for (int i = 0; i < 3; i++) {
    free(d->curves[i]);
    free(d->curve_xy[i][0]);
    free(d->curve_xy[i][1]);
  }
  for (int i = 0; i < 4; i++) free(d->active_xy[i]);
  cJSON_Delete(d->json);
  free(d);
}

const us_report *us_eval_report(const us_eval_data *d) {
  return &d->report;
}

static double json_number(const cJSON *o, const char *name, double fallback) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(it) ? it->valuedouble : fallback;
}

/* Reads the stored predictions and checks they belong to the current test split. */
static us_status load_predictions(us_cache *cache, us_eval_data *d, us_err *err) {
  char *json = NULL;
  bool found = false;
  us_status st = us_cache_result_get(cache, "predictions", &json, &found, err);
  if (st) return st;
  if (!found)
    return us_err_set(err, US_ERR_STATE,
                      "the student has not been evaluated yet: run `understudy eval` first");
  d->json = cJSON_Parse(json);
  free(json);
  const cJSON *ids = cJSON_GetObjectItemCaseSensitive(d->json, "prompt_ids");
  if (!cJSON_IsArray(ids) || (size_t)cJSON_GetArraySize(ids) != d->n_rows)
    return us_err_set(err, US_ERR_STATE,
                      "the test split changed since the last evaluation: run `understudy eval` "
                      "again");
  size_t i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, ids) {
    if (!cJSON_IsNumber(it) || (int64_t)it->valuedouble != d->rows[i].prompt_id)
      return us_err_set(err, US_ERR_STATE,
                        "the test split changed since the last evaluation: run `understudy eval` "
                        "again");
    i++;
  }
  return US_OK;
}

/* Copies the n numbers of a stored array into out (which holds n). */
static us_status json_doubles(const cJSON *root, const char *name, double *out, size_t n,
                              us_err *err) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, name);
  if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != n)
    return us_err_set(err, US_ERR_STATE,
                      "the stored evaluation lacks \"%s\": run `understudy eval` again", name);
  size_t i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, a) out[i++] = cJSON_IsNumber(it) ? it->valuedouble : 0;
  return US_OK;
}

static us_status build_classify(const us_config *c, us_eval_data *d, us_err *err) {
  size_t n = d->n_rows;
  us_status st = json_doubles(d->json, "confidence", d->confidence, n, err);
  if (st) return st;
  double *pred = malloc(sizeof(double) * (n + 1));
  if (!pred) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  st = json_doubles(d->json, "predicted", pred, n, err);
  bool any_gold = false;
  for (size_t i = 0; i < n && !st; i++) {
    d->predicted[i] = (int)pred[i];
    if (d->predicted[i] < 0 || d->predicted[i] >= c->task.n_labels)
      st = us_err_set(err, US_ERR_STATE,
                      "stored prediction %zu is out of range: run "
                      "`understudy eval` again",
                      i);
    d->reference[i] = d->rows[i].reference;
    d->gold[i] = d->rows[i].gold ? us_config_label_index(c, d->rows[i].gold) : -1;
    if (d->gold[i] >= 0) any_gold = true;
  }
  free(pred);
  if (st) return st;
  us_metrics_options mo;
  us_metrics_defaults(&mo);
  st = us_metrics_classify(&mo, (int)n, c->task.n_labels, d->reference, d->predicted, d->confidence,
                           any_gold ? d->gold : NULL, &d->metrics, err);
  if (st) return st;
  d->has_metrics = true;
  d->report.metrics = &d->metrics;
  d->confusion_examples = calloc((size_t)d->metrics.n_confusions + 1, sizeof(char *));
  if (!d->confusion_examples) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  for (int k = 0; k < d->metrics.n_confusions; k++) {
    int ex = d->metrics.confusions[k].example;
    d->confusion_examples[k] = ex >= 0 && (size_t)ex < n ? d->rows[ex].text : NULL;
  }
  d->report.confusion_examples = d->confusion_examples;
  return US_OK;
}

static us_status build_generate(us_eval_data *d, us_err *err) {
  size_t n = d->n_rows;
  us_status st = json_doubles(d->json, "confidence", d->confidence, n, err);
  if (st) return st;
  const cJSON *ans = cJSON_GetObjectItemCaseSensitive(d->json, "answers");
  if (!cJSON_IsArray(ans) || (size_t)cJSON_GetArraySize(ans) != n)
    return us_err_set(err, US_ERR_STATE,
                      "the stored evaluation lacks the student's answers: "
                      "run `understudy eval` again");
  d->predictions = calloc(n + 1, sizeof(char *));
  d->references = calloc(n + 1, sizeof(char *));
  if (!d->predictions || !d->references) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  size_t i = 0, k = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, ans) {
    if (d->rows[i].teacher) {
      d->predictions[k] = cJSON_IsString(it) ? it->valuestring : "";
      d->references[k] = d->rows[i].teacher;
      k++;
    }
    i++;
  }
  st = us_metrics_generate((int)k, d->predictions, d->references, &d->generation, err);
  if (st) return st;
  d->report.generation = &d->generation;
  d->report.perplexity = json_number(d->json, "perplexity", 0);
  return US_OK;
}

static us_status read_result(us_cache *cache, const char *name, cJSON **out, us_err *err) {
  char *json = NULL;
  bool found = false;
  *out = NULL;
  us_status st = us_cache_result_get(cache, name, &json, &found, err);
  if (st || !found) return st;
  *out = cJSON_Parse(json);
  free(json);
  return US_OK;
}

/* Spend by kind, what may have been billed without an answer, and the near-duplicates the
 * prompts stage found (result "near_duplicates"). */
static us_status build_spend(us_cache *cache, us_eval_data *d, us_err *err) {
  us_cache_spend sp;
  us_status st = us_cache_spend_get(cache, &sp, err);
  if (st) return st;
  d->spend = (us_report_spend){
      .prompt_tokens = (long)sp.prompt_tokens,
      .cached_tokens = (long)sp.cached_tokens,
      .completion_tokens = (long)sp.completion_tokens,
      .reasoning_tokens = (long)sp.reasoning_tokens,
      .input_usd = sp.input_usd,
      .cached_usd = sp.cached_usd,
      .output_usd = sp.output_usd,
      .reasoning_usd = sp.reasoning_usd,
      .unsplit_usd = sp.unsplit_usd,
      .unanswered = (long)sp.unanswered,
      .unanswered_usd = sp.unanswered_usd,
  };
  d->report.spend = &d->spend;
  cJSON *near = NULL;
  st = read_result(cache, "near_duplicates", &near, err);
  if (st) return st;
  d->report.counts.near_duplicates = (long)json_number(near, "near_duplicates", 0);
  d->report.counts.near_duplicates_moved = (long)json_number(near, "moved", 0);
  cJSON_Delete(near);
  return US_OK;
}

static us_status build_cost(const us_config *c, us_cache *cache, us_eval_data *d,
                            const us_cache_stats *s, us_err *err) {
  cJSON *train = NULL, *label = NULL;
  us_status st = read_result(cache, "train", &train, err);
  if (!st) st = read_result(cache, "label_totals", &label, err);
  if (st) goto done;
  long paid = (long)(s->calls - s->calls_imported);
  double teacher = us_cost_teacher_per_request(s->spent_usd, paid);
  if (teacher <= 0 && s->calls > 0)
    teacher =
        us_cost_from_tokens((double)s->prompt_tokens / (double)s->calls,
                            (double)s->completion_tokens / (double)s->calls,
                            c->teacher.price_input_per_mtok, c->teacher.price_output_per_mtok);
  double hits = json_number(label, "cache_hits", 0);
  d->report.counts.cache_hits = (long)hits;
  us_batch_totals batches;
  st = us_cache_batch_totals(cache, &batches, err);
  if (st) goto done;
  us_cost_inputs in = {
      .teacher_usd_per_request = teacher,
      .labelling_spend_usd = s->spent_usd,
      .cache_saved_usd = (hits + (double)s->calls_imported) * teacher,
      .batch_saved_usd =
          batches.live_usd > batches.spent_usd ? batches.live_usd - batches.spent_usd : 0,
      .training_cpu_seconds = json_number(train, "cpu_s", 0),
      .student_cpu_seconds_per_request = json_number(d->json, "cpu_s_per_request", 0),
      .cost = c->cost,
      .teacher_params_b = c->teacher.params_b,
      .student_params = json_number(d->json, "params", 0),
  };
  d->report.student_params = (long)in.student_params;
  const cJSON *chosen = cJSON_GetObjectItemCaseSensitive(train, "autotune_chosen");
  if (cJSON_IsString(chosen))
    snprintf(d->student_desc, sizeof d->student_desc,
             "fastText-style classifier: hashed word and character n-grams, embedding bag, "
             "softmax; chosen automatically: %s, validation accuracy %.2f%% (%g-fold, %g "
             "settings tried)",
             chosen->valuestring, 100 * json_number(train, "autotune_valid_acc", 0),
             json_number(train, "autotune_folds", 0), json_number(train, "autotune_candidates", 0));
  const cJSON *lm_chosen = cJSON_GetObjectItemCaseSensitive(train, "chosen");
  if (cJSON_IsString(lm_chosen))
    snprintf(d->student_line, sizeof d->student_line,
             "decoder-only transformer with a byte-level BPE tokeniser; %s",
             lm_chosen->valuestring);
  st = us_cost_compute(&in, &d->cost, err);
  if (!st) d->report.cost = &d->cost;
done:
  cJSON_Delete(train);
  cJSON_Delete(label);
  return st;
}

static us_status build_cascade(const us_config *c, us_eval_data *d, us_err *err) {
  size_t k = 0;
  bool any_gold = false;
  for (size_t i = 0; i < d->n_rows; i++) {
    double score;
    if (c->task.type == US_TASK_CLASSIFY) {
      if (d->reference[i] < 0) continue;
      score = d->predicted[i] == d->reference[i];
      d->cascade_label[k] = d->reference[i];
      d->student_gold[k] = d->gold[i] >= 0 ? d->predicted[i] == d->gold[i] : -1;
      d->teacher_gold[k] = d->gold[i] >= 0 ? d->reference[i] == d->gold[i] : -1;
      if (d->gold[i] >= 0) any_gold = true;
    } else {
      if (!d->rows[i].teacher) continue;
      score = us_metrics_exact_match(d->predictions[k], d->references[k]);
    }
    d->score[k] = score;
    d->cascade_confidence[k] = d->confidence[i];
    k++;
  }
  us_cascade_inputs in = {
      .n = (int)k,
      .confidence = d->cascade_confidence,
      .student_score = d->score,
      .student_gold = any_gold ? d->student_gold : NULL,
      .teacher_gold = any_gold ? d->teacher_gold : NULL,
      .student_usd_per_request = d->cost.student_usd_per_request,
      .teacher_usd_per_request = d->cost.teacher_usd_per_request,
      .quality = c->quality,
      /* the majority-class and chance baselines: a student that does not beat them is not
       * recommended for any share of the traffic */
      .teacher_label = c->task.type == US_TASK_CLASSIFY ? d->cascade_label : NULL,
      .n_labels = c->task.type == US_TASK_CLASSIFY ? c->task.n_labels : 0,
  };
  us_status st = us_cascade_compute(&in, &d->cascade, err);
  d->has_cascade = true;
  if (!st) d->report.cascade = &d->cascade;
  return st;
}

static us_status build_curves(us_cache *cache, us_eval_data *d, us_err *err) {
  static const char *const names[3] = {"train_loss", "valid_loss", "valid_acc"};
  us_report_series *series[3] = {&d->report.train_loss, &d->report.valid_loss,
                                 &d->report.valid_accuracy};
  for (int i = 0; i < 3; i++) {
    size_t n = 0;
    us_status st = us_cache_curve_get(cache, names[i], &d->curves[i], &n, err);
    if (st) return st;
    d->curve_xy[i][0] = malloc(sizeof(double) * (n + 1));
    d->curve_xy[i][1] = malloc(sizeof(double) * (n + 1));
    if (!d->curve_xy[i][0] || !d->curve_xy[i][1])
      return us_err_set(err, US_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
      d->curve_xy[i][0][k] = d->curves[i][k].x;
      d->curve_xy[i][1][k] = d->curves[i][k].y;
    }
    *series[i] = (us_report_series){(int)n, d->curve_xy[i][0], d->curve_xy[i][1]};
  }
  return US_OK;
}

/* Active labelling's rounds (cache/active.h): the learning curve, and the labels and dollars
 * saved against labelling the whole pool (the pool not labelled, at the mean paid call's cost). */
static us_status build_active(const us_config *c, us_cache *cache, us_eval_data *d,
                              const us_cache_stats *s, us_err *err) {
  /* generate: the rounds measure no agreement, so there is no curve to show */
  if (!us_active_enabled(&c->label) || c->task.type != US_TASK_CLASSIFY) return US_OK;
  us_active_round *rounds = NULL;
  size_t n = 0;
  us_status st = us_cache_active_rounds_list(cache, &rounds, &n, err);
  if (st || n == 0) {
    free(rounds);
    return st;
  }
  for (int i = 0; i < 4; i++)
    if (!(d->active_xy[i] = malloc(n * sizeof(double)))) {
      free(rounds);
      return us_err_set(err, US_ERR_NOMEM, "out of memory building the learning curve");
    }
  us_report_active *a = &d->active;
  a->full_pool_agreement = -1;
  for (size_t i = 0; i < n; i++) {
    d->active_xy[0][i] = (double)rounds[i].n_labelled;
    d->active_xy[1][i] = rounds[i].spent_usd;
    d->active_xy[2][i] = rounds[i].test_agreement;
    d->active_xy[3][i] = rounds[i].valid_agreement;
    if (rounds[i].n_labelled >= s->prompts_train) a->full_pool_agreement = rounds[i].test_agreement;
  }
  a->n_rounds = (int)n;
  a->labels = d->active_xy[0];
  a->dollars = d->active_xy[1];
  a->test_agreement = d->active_xy[2];
  a->valid_agreement = d->active_xy[3];
  a->pool = (long)s->prompts_train;
  a->labelled = (long)rounds[n - 1].n_labelled;
  a->labels_saved = (double)(a->pool - a->labelled);
  int64_t paid = s->calls - s->calls_imported;
  a->dollars_saved = paid > 0 ? a->labels_saved * s->spent_usd / (double)paid : 0;
  snprintf(d->active_stop, sizeof d->active_stop, "%s", rounds[n - 1].stop);
  a->stop = d->active_stop[0] ? d->active_stop : NULL;
  d->report.active = a;
  free(rounds);
  return US_OK;
}

#define AGREEMENT_POINTS_MAX 200

/* The served rows of `understudy serve` (cache/served.c): requests by route, money, and the live
 * agreement of the shadow audit after each audit (at most AGREEMENT_POINTS_MAX points). */
static us_status build_production(us_cache *cache, us_eval_data *d, us_err *err) {
  us_served_route routes[8];
  int n_routes = 0;
  us_status st = us_cache_served_routes(cache, routes, 8, &n_routes, err);
  if (st || n_routes == 0) return st;
  us_report_production *p = &d->production;
  double first = INFINITY, last = -INFINITY;
  for (int i = 0; i < n_routes; i++) {
    const us_served_route *r = &routes[i];
    if (strcmp(r->route, "audit") == 0) {
      p->audits = (long)r->n;
      p->audits_agreeing = (long)r->agree;
      p->spent_usd += r->cost_usd;
      continue;
    }
    long *slot = strcmp(r->route, "student") == 0   ? &p->student
                 : strcmp(r->route, "teacher") == 0 ? &p->teacher
                 : strcmp(r->route, "cache") == 0   ? &p->cache
                                                    : &p->errors;
    *slot += (long)r->n;
    p->requests += (long)r->n;
    p->spent_usd += r->cost_usd;
    p->saved_usd += r->saved_usd;
    if (r->first_at < first) first = r->first_at;
    if (r->last_at > last) last = r->last_at;
  }
  p->hours = last > first ? (last - first) / 3600 : 0;
  p->predicted_saved_usd = NAN;
  if (d->has_cascade && d->cascade.n_points > 0) {
    const us_cascade_point *rec = &d->cascade.points[d->cascade.recommended];
    double answered = (double)(p->student + p->teacher + p->cache);
    p->predicted_saved_usd = answered * (d->cost.teacher_usd_per_request - rec->usd_per_request);
  }
  double *at = NULL;
  int *agree = NULL;
  size_t n = 0;
  st = us_cache_served_audits(cache, &at, &agree, &n, err);
  if (!st && n > 0) {
    size_t points = n < AGREEMENT_POINTS_MAX ? n : AGREEMENT_POINTS_MAX;
    d->agreement_xy[0] = malloc(points * sizeof(double));
    d->agreement_xy[1] = malloc(points * sizeof(double));
    if (!d->agreement_xy[0] || !d->agreement_xy[1]) {
      st = us_err_set(err, US_ERR_NOMEM, "out of memory");
    } else {
      size_t k = 0;
      long agreeing = 0;
      for (size_t i = 0; i < n; i++) {
        agreeing += agree[i] != 0;
        /* the last audit of each of `points` equal slices */
        if ((i + 1) * points / n != i * points / n && k < points) {
          d->agreement_xy[0][k] = (at[i] - at[0]) / 3600;
          d->agreement_xy[1][k] = (double)agreeing / (double)(i + 1);
          k++;
        }
      }
      p->agreement = (us_report_series){(int)k, d->agreement_xy[0], d->agreement_xy[1]};
    }
  }
  free(at);
  free(agree);
  if (!st) d->report.production = p;
  return st;
}

static us_status build_speed(us_eval_data *d, const us_cache_stats *s, us_err *err) {
  size_t n = d->n_rows;
  us_status st = json_doubles(d->json, "latency_s", d->latency, n, err);
  if (st) return st;
  st = us_metrics_latency(d->latency, (int)n, &d->report.student_speed.latency, err);
  if (st) return st;
  double wall = json_number(d->json, "wall_s", 0);
  d->report.student_speed.measured = n > 0;
  d->report.student_speed.requests_per_second = wall > 0 ? (double)n / wall : 0;
  d->report.student_speed.threads = 1;
  if (s->latency_p50_ms > 0) {
    d->report.teacher_speed.measured = true;
    d->report.teacher_speed.latency.n = (int)(s->calls - s->calls_imported);
    d->report.teacher_speed.latency.p50 = s->latency_p50_ms / 1000;
    d->report.teacher_speed.latency.p99 = s->latency_p99_ms / 1000;
  }
  return US_OK;
}

us_status us_eval_build(const us_config *c, us_cache *cache, us_eval_data **out, us_err *err) {
  *out = NULL;
  us_eval_data *d = calloc(1, sizeof *d);
  if (!d) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  us_report_init(&d->report);
  us_status st = load_test_rows(c, cache, &d->rows, &d->n_rows, err);
  if (!st) st = load_predictions(cache, d, err);
  if (st) goto fail;
  size_t n = d->n_rows + 1;
  d->reference = calloc(n, sizeof(int));
  d->predicted = calloc(n, sizeof(int));
  d->gold = calloc(n, sizeof(int));
  d->student_gold = calloc(n, sizeof(int));
  d->teacher_gold = calloc(n, sizeof(int));
  d->cascade_label = calloc(n, sizeof(int));
  d->confidence = calloc(n, sizeof(double));
  d->score = calloc(n, sizeof(double));
  d->latency = calloc(n, sizeof(double));
  d->cascade_confidence = calloc(n, sizeof(double));
  if (!d->reference || !d->predicted || !d->gold || !d->student_gold || !d->teacher_gold ||
      !d->cascade_label || !d->confidence || !d->score || !d->latency || !d->cascade_confidence) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory building the report");
    goto fail;
  }
  us_cache_stats s;
  st = us_cache_stats_get(cache, &s, err);
  if (st) goto fail;
  st = c->task.type == US_TASK_CLASSIFY ? build_classify(c, d, err) : build_generate(d, err);
  if (!st) st = build_cost(c, cache, d, &s, err);
  if (!st) st = build_cascade(c, d, err);
  if (!st) st = build_curves(cache, d, err);
  if (!st) st = build_speed(d, &s, err);
  if (!st) st = build_active(c, cache, d, &s, err);
  if (!st) st = build_production(cache, d, err);
  if (st) goto fail;
  us_report *r = &d->report;
  r->run_name = c->name;
  r->task = c->task.type;
  r->teacher_model = c->teacher.model;
  r->labels = (const char *const *)c->task.labels;
  r->n_labels = c->task.n_labels;
  r->student_desc = d->student_desc[0] ? d->student_desc
                    : c->task.type == US_TASK_CLASSIFY
                        ? "fastText-style classifier: hashed word and character n-grams, "
                          "embedding bag, softmax"
                    : d->student_line[0]
                        ? d->student_line
                        : "decoder-only transformer with a byte-level BPE tokeniser";
  r->counts.prompts_train = (long)s.prompts_train;
  r->counts.prompts_test = (long)s.prompts_test;
  r->counts.teacher_calls = (long)(s.calls - s.calls_imported);
  r->counts.imported = (long)s.calls_imported;
  r->counts.unparsed = (long)s.targets_unparsed;
  r->counts.failures = (long)s.failures;
  st = build_spend(cache, d, err);
  if (st) goto fail;
  *out = d;
  return US_OK;
fail:
  us_eval_data_free(d);
  return st;
}
