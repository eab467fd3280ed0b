/* The train stage: targets from the workspace in, student.bin and its curves out.
 *
 * A failed train never replaces a good model: the new model is written to student.bin.new, its
 * curves and "train" result go into one transaction, and student.bin.new is renamed over
 * student.bin just before that transaction commits. A crash between the rename and the commit
 * leaves the new model with the old result, whose fingerprint no longer matches, so the next
 * train trains again; it never leaves a result that vouches for a model it did not describe. */
#include "pipeline/train.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/params.h"
#include "distill/request.h"
#include "student/classifier.h"
#include "student/dist.h"
#include "student/lm.h"

char *us_train_model_path(const us_config *c) {
  us_buf b;
  us_buf_init(&b, 0);
  if (us_buf_printf(&b, "%s/student.bin", c->output)) {
    us_buf_free(&b);
    return NULL;
  }
  return us_buf_steal(&b);
}

/* Where a train stage writes its model until the stage has succeeded. */
static char *new_model_path(const char *path) {
  us_buf b;
  us_buf_init(&b, 0);
  us_buf_printf(&b, "%s.new", path);
  return us_buf_steal(&b);
}

/* A student's message that starts with one of its fields ("lr: training diverged ...") is about
 * the setting the config reads from a key: it names that key instead ("student.lr: ..."), as the
 * config does for the students' checks. Returns true when it did. */
static bool name_config_key(us_err *err, const us_param *table, size_t n_table) {
  if (!err) return false;
  size_t len = strspn(err->msg, "abcdefghijklmnopqrstuvwxyz0123456789_");
  char field[64];
  if (len == 0 || len >= sizeof field || err->msg[len] != ':') return false;
  memcpy(field, err->msg, len);
  field[len] = '\0';
  const us_param *want = us_param_find(table, n_table, field), *p = NULL;
  const char *key;
  for (size_t i = 0; want && (key = us_config_key(i, &p)); i++) {
    if (p != want) continue;
    char rest[US_ERR_MSG_MAX];
    snprintf(rest, sizeof rest, "%s", err->msg + len);
    us_err_set(err, err->code, "%s%s", key, rest);
    return true;
  }
  return false;
}

bool us_train_is_validation(const char *prompt_hash, uint64_t seed, double fraction) {
  return us_hash_fraction(prompt_hash, strlen(prompt_hash), seed ^ 0x76616c6964ull /* "valid" */) <
         fraction;
}

/* One train-split prompt with the teacher's usable answer. */
typedef struct example_row {
  char *text;
  int label;    /* classify */
  float *soft;  /* classify, n_labels or NULL */
  char *answer; /* generate */
  bool validation;
} example_row;

typedef struct example_set {
  example_row *rows;
  size_t n;
  us_buf fingerprint; /* what the model depends on: keys, labels, settings */
} example_set;

static void example_set_free(example_set *s) {
  for (size_t i = 0; i < s->n; i++) {
    free(s->rows[i].text);
    free(s->rows[i].soft);
    free(s->rows[i].answer);
  }
  free(s->rows);
  us_buf_free(&s->fingerprint);
}

/* Reads the train split and each prompt's target for the current request. */
static us_status gather(const us_config *c, us_cache *cache, example_set *set,
                        us_train_summary *sum, us_err *err) {
  us_prompt *prompts = NULL;
  size_t n = 0;
  us_status st = us_cache_prompts_list(cache, US_SPLIT_TRAIN, &prompts, &n, err);
  if (st) return st;
  set->rows = calloc(n ? n : 1, sizeof *set->rows);
  if (!set->rows) {
    us_prompts_free(prompts, n);
    return us_err_set(err, US_ERR_NOMEM, "out of memory gathering %zu training prompts", n);
  }
  for (size_t i = 0; i < n && !st; i++) {
    char *body = NULL, key[65];
    st = us_request_for_prompt(&c->task, &c->data, &c->teacher, &prompts[i], &body, key, err);
    free(body);
    if (st) break;
    us_target t;
    bool found = false;
    st = us_cache_target_get(cache, key, &t, &found, err);
    if (st) break;
    if (!found) {
      sum->skipped_missing++;
      continue;
    }
    example_row *r = &set->rows[set->n];
    if (c->task.type == US_TASK_CLASSIFY) {
      int label = t.label && t.status == US_TARGET_OK ? us_config_label_index(c, t.label) : -1;
      if (label < 0) {
        sum->skipped_unparsed++;
        us_target_free_fields(&t);
        continue;
      }
      r->label = label;
      if (t.soft && t.n_soft == c->task.n_labels) {
        r->soft = t.soft;
        t.soft = NULL;
      }
    } else {
      if (!t.text || !t.text[0]) {
        sum->skipped_unparsed++;
        us_target_free_fields(&t);
        continue;
      }
      r->answer = us_strdup(t.text);
    }
    r->text = us_strdup(prompts[i].text);
    r->validation = us_train_is_validation(prompts[i].hash, c->student.classifier.seed,
                                           c->student.validation_fraction);
    bool fp_failed =
        us_buf_printf(&set->fingerprint, "%s %d %s\n", key, r->label, r->soft ? "soft" : "hard");
    set->n++;
    us_target_free_fields(&t);
    if (fp_failed || !r->text || (c->task.type == US_TASK_GENERATE && !r->answer))
      st = us_err_set(err, US_ERR_NOMEM, "out of memory gathering training prompts");
  }
  us_prompts_free(prompts, n);
  return st;
}

/* The config holds the students' own settings structs (pipeline/config.h). */
static void classifier_params_from_config(const us_config *c, us_classifier_params *p) {
  *p = c->student.classifier;
}

static void lm_params_from_config(const us_config *c, us_lm_train_params *p) {
  *p = c->student.lm;
}

/* The train stage searches for the classifier's setting unless the config turns it off. */
static bool autotune_on(const us_classifier_params *p) {
  return p->autotune && p->autotune_seconds != 0;
}

/* Settings that change the model go into the fingerprint. */
static void fingerprint_settings(const us_config *c, us_buf *fp) {
  if (c->task.type == US_TASK_CLASSIFY) {
    us_classifier_params p;
    classifier_params_from_config(c, &p);
    us_buf_printf(fp, "classify dim=%d wn=%d minn=%d maxn=%d b=%d h=%d", p.dim, p.word_ngrams,
                  p.minn, p.maxn, p.buckets, p.n_hidden);
    for (int i = 0; i < p.n_hidden; i++) us_buf_printf(fp, ",%d", p.hidden[i]);
    us_buf_printf(fp, " do=%g ep=%d lr=%g kd=%g ls=%g pat=%d th=%d seed=%llu q=%d vf=%g", p.dropout,
                  p.epochs, p.lr, p.kd_temperature, p.label_smoothing, p.patience, p.threads,
                  (unsigned long long)p.seed, (int)p.quantize, c->student.validation_fraction);
    us_buf_printf(fp, " mc=%d mcn=%d qb=%d cal=%d\n", p.min_count, p.min_count_ngram,
                  p.quantize_bits, (int)p.calibrate);
    /* only when not the defaults, so workspaces trained before these options stay up to date */
    if (!p.lowercase || !p.punctuation || p.fold_digits || p.fold_urls || p.class_weight > 0)
      us_buf_printf(fp, "tok=%d%d%d%d cw=%g\n", (int)p.lowercase, (int)p.punctuation,
                    (int)p.fold_digits, (int)p.fold_urls, p.class_weight);
    if (autotune_on(&p)) us_buf_printf(fp, "autotune=%g\n", p.autotune_seconds);
    for (int i = 0; i < c->task.n_labels; i++) us_buf_printf(fp, "label %s\n", c->task.labels[i]);
  } else {
    us_lm_train_params p;
    lm_params_from_config(c, &p);
    us_buf_printf(fp,
                  "generate preset=%s l=%d d=%d h=%d ctx=%d v=%d steps=%d bs=%d wu=%d lr=%g "
                  "wd=%g clip=%g seed=%llu\n",
                  p.preset ? p.preset : "-", p.layers, p.dim, p.heads, p.context, p.vocab_size,
                  p.steps, p.batch_size, p.warmup_steps, p.lr, p.weight_decay, p.grad_clip,
                  (unsigned long long)p.seed);
    /* only when set, so workspaces trained before dropout existed stay up to date */
    if (p.dropout > 0) us_buf_printf(fp, "dropout=%g\n", p.dropout);
    if (p.init) us_buf_printf(fp, "init=%s lora=%d alpha=%g\n", p.init, p.lora_rank, p.lora_alpha);
    /* a time budget, or validation examples for early stopping (both change the model) */
    if (p.steps == 0 || (c->student.validation_fraction > 0 && p.patience > 0))
      us_buf_printf(fp, "minutes=%g pat=%d vf=%g\n", p.steps == 0 ? p.train_minutes : 0.0,
                    p.patience, c->student.validation_fraction);
  }
}

/* True when the "train" result carries this fingerprint and the model file is there. */
static bool up_to_date(us_cache *cache, const char *fingerprint, const char *model_path,
                       us_train_summary *sum) {
  char *json = NULL;
  bool found = false;
  us_err ignored;
  struct stat sb;
  if (stat(model_path, &sb) != 0) return false;
  if (us_cache_result_get(cache, "train", &json, &found, &ignored) || !found) return false;
  cJSON *root = cJSON_Parse(json);
  free(json);
  const cJSON *fp = cJSON_GetObjectItemCaseSensitive(root, "fingerprint");
  bool same = cJSON_IsString(fp) && strcmp(fp->valuestring, fingerprint) == 0;
  if (same) {
    const cJSON *it;
#define GET(field, name)                                                           \
  do {                                                                             \
    if ((it = cJSON_GetObjectItemCaseSensitive(root, name)) && cJSON_IsNumber(it)) \
      sum->field = it->valuedouble;                                                \
  } while (0)
    GET(n_train, "n_train");
    GET(n_valid, "n_valid");
    GET(n_soft, "n_soft");
    GET(epochs, "epochs");
    GET(best_valid_acc, "best_valid_acc");
    GET(final_loss, "final_loss");
    GET(wall_s, "wall_s");
    GET(cpu_s, "cpu_s");
    GET(params, "params");
    const cJSON *chosen = cJSON_GetObjectItemCaseSensitive(root, "autotune_chosen");
    if (cJSON_IsString(chosen)) {
      sum->autotune.autotuned = true;
      snprintf(sum->autotune.chosen, sizeof sum->autotune.chosen, "%s", chosen->valuestring);
      GET(autotune.valid_acc, "autotune_valid_acc");
      GET(autotune.folds, "autotune_folds");
      GET(autotune.candidates, "autotune_candidates");
      GET(autotune.trainings, "autotune_trainings");
    }
#undef GET
    sum->model_bytes = sb.st_size;
  }
  cJSON_Delete(root);
  return same;
}

static us_status save_result(us_cache *cache, const char *fingerprint, const us_train_summary *s,
                             us_err *err) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "fingerprint", fingerprint);
  cJSON_AddNumberToObject(o, "n_train", (double)s->n_train);
  cJSON_AddNumberToObject(o, "n_valid", (double)s->n_valid);
  cJSON_AddNumberToObject(o, "n_soft", (double)s->n_soft);
  cJSON_AddNumberToObject(o, "skipped_unparsed", (double)s->skipped_unparsed);
  cJSON_AddNumberToObject(o, "skipped_missing", (double)s->skipped_missing);
  cJSON_AddNumberToObject(o, "epochs", s->epochs);
  cJSON_AddNumberToObject(o, "best_valid_acc", s->best_valid_acc);
  cJSON_AddNumberToObject(o, "final_loss", s->final_loss);
  cJSON_AddNumberToObject(o, "wall_s", s->wall_s);
  cJSON_AddNumberToObject(o, "cpu_s", s->cpu_s);
  cJSON_AddNumberToObject(o, "params", (double)s->params);
  cJSON_AddNumberToObject(o, "model_bytes", (double)s->model_bytes);
  if (s->autotune.autotuned) {
    cJSON_AddStringToObject(o, "autotune_chosen", s->autotune.chosen);
    cJSON_AddNumberToObject(o, "autotune_valid_acc", s->autotune.valid_acc);
    cJSON_AddNumberToObject(o, "autotune_folds", s->autotune.folds);
    cJSON_AddNumberToObject(o, "autotune_candidates", s->autotune.candidates);
    cJSON_AddNumberToObject(o, "autotune_trainings", s->autotune.trainings);
  }
  if (s->chosen[0]) cJSON_AddStringToObject(o, "chosen", s->chosen);
  char *json = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!json) return us_err_set(err, US_ERR_NOMEM, "out of memory saving the train result");
  us_status st = us_cache_result_put(cache, "train", json, err);
  free(json);
  return st;
}

/* ---- classifier ------------------------------------------------------------------------- */

typedef struct epoch_log {
  us_epoch_info *epochs;
  int n, cap;
  const us_train_options *opt;
} epoch_log;

static void on_epoch(void *user, const us_epoch_info *e) {
  epoch_log *log = user;
  if (log->n < log->cap) log->epochs[log->n++] = *e;
  if (log->opt && log->opt->progress) {
    char line[256];
    snprintf(line, sizeof line,
             "epoch %3d  train loss %.4f  valid loss %.4f  valid acc %.2f%%  lr %.3g  %.1fs",
             e->epoch, e->train_loss, e->valid_loss, 100 * e->valid_acc, e->lr, e->seconds);
    log->opt->progress(log->opt->progress_user, line);
  }
}

/* The run and its curves, inside the stage's transaction (us_train_stage commits it). */
static us_status store_curves(us_cache *cache, const epoch_log *log, us_err *err) {
  int64_t run_id = 0;
  us_status st = us_cache_run_begin(cache, "train", &run_id, err);
  for (int i = 0; i < log->n && !st; i++) {
    const us_epoch_info *e = &log->epochs[i];
    st = us_cache_curve_add(cache, run_id, "train_loss", e->epoch, e->train_loss, err);
    if (!st) st = us_cache_curve_add(cache, run_id, "valid_loss", e->epoch, e->valid_loss, err);
    if (!st) st = us_cache_curve_add(cache, run_id, "valid_acc", e->epoch, e->valid_acc, err);
  }
  if (!st) st = us_cache_run_end(cache, run_id, "ok", err);
  return st;
}

static us_status train_classifier(const us_config *c, us_cache *cache, const example_set *set,
                                  const us_train_options *opt, const char *path,
                                  us_train_summary *sum, us_err *err) {
  us_example *train = calloc(set->n + 1, sizeof *train);
  us_example *valid = calloc(set->n + 1, sizeof *valid);
  epoch_log log = {calloc((size_t)c->student.classifier.epochs + 1, sizeof(us_epoch_info)), 0,
                   c->student.classifier.epochs + 1, opt};
  us_classifier *model = NULL;
  us_status st = US_OK;
  if (!train || !valid || !log.epochs) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory preparing %zu examples", set->n);
    goto done;
  }
  size_t nt = 0, nv = 0;
  for (size_t i = 0; i < set->n; i++) {
    us_example *e = set->rows[i].validation ? &valid[nv++] : &train[nt++];
    e->text = set->rows[i].text;
    e->label = set->rows[i].label;
    e->soft = set->rows[i].soft;
    if (e->soft && !set->rows[i].validation) sum->n_soft++;
  }
  sum->n_train = (int64_t)nt;
  sum->n_valid = (int64_t)nv;
  us_classifier_params p;
  classifier_params_from_config(c, &p);
  double wall0 = us_now(), cpu0 = us_cpu_time();
  if (autotune_on(&p)) { /* the search makes its own folds over the whole train split */
    for (size_t i = 0; i < nv; i++) train[nt + i] = valid[i];
    us_autotune_limits limits = {p.autotune_seconds, 0};
    us_autotune_info info;
    st = us_classifier_autotune(&p, &limits, c->task.labels, c->task.n_labels, train, nt + nv,
                                opt ? opt->progress : NULL, opt ? opt->progress_user : NULL, &model,
                                &info, err);
    if (!st) {
      sum->autotune = info;
      sum->n_train = (int64_t)(nt + nv);
      sum->n_valid = 0;
      log.n = 0;
    }
  } else {
    st = us_classifier_train(&p, c->task.labels, c->task.n_labels, train, nt, valid, nv, on_epoch,
                             &log, &model, err);
  }
  sum->wall_s = us_now() - wall0;
  sum->cpu_s = us_cpu_time() - cpu0;
  if (st) {
    size_t n_table;
    const us_param *table = us_classifier_param_table(&n_table);
    if (!name_config_key(err, table, n_table)) us_err_prefix(err, "training the classifier");
    goto done;
  }
  sum->epochs = sum->autotune.autotuned ? sum->autotune.final_epochs : log.n;
  if (sum->autotune.autotuned) sum->best_valid_acc = sum->autotune.valid_acc;
  for (int i = 0; i < log.n; i++) {
    if (log.epochs[i].valid_acc > sum->best_valid_acc)
      sum->best_valid_acc = log.epochs[i].valid_acc;
    sum->final_loss = log.epochs[i].train_loss;
  }
  sum->params = us_classifier_param_count(model);
  st = us_classifier_save(model, path, err);
  if (!st) st = us_cache_begin(cache, err);
  if (!st && (st = store_curves(cache, &log, err)) != US_OK) us_cache_rollback(cache, NULL);
done:
  us_classifier_free(model);
  free(train);
  free(valid);
  free(log.epochs);
  return st;
}

/* ---- language model --------------------------------------------------------------------- */

typedef struct lm_progress_state {
  const us_train_options *opt;
  us_curve_point *losses;
  long n, cap;
  double last_report;
  bool oom; /* the loss curve could not grow: it ends early, training goes on */
} lm_progress_state;

/* One line on what the trainer chose, the first time it plans and at every validation check. */
static void report_choice(lm_progress_state *s, const us_lm_progress *p) {
  char line[256];
  if (p->planned_now && s->opt && s->opt->progress) {
    if (p->budget_sec > 0)
      snprintf(line, sizeof line,
               "%s size %s (%zu parameters): %ld steps planned to end within %.1f min at %.0f "
               "tok/s",
               p->auto_preset ? "auto" : "preset", p->preset, p->n_params, p->steps,
               p->budget_sec / 60, p->tokens_per_sec);
    else
      snprintf(line, sizeof line, "%s size %s (%zu parameters): %ld steps",
               p->auto_preset ? "auto" : "preset", p->preset, p->n_params, p->steps);
    s->opt->progress(s->opt->progress_user, line);
  }
  if (p->validated_now && s->opt && s->opt->progress) {
    snprintf(line, sizeof line, "step %ld/%ld  validation loss %.4f  best at step %ld", p->step,
             p->steps, p->valid_loss, p->best_step);
    s->opt->progress(s->opt->progress_user, line);
  }
}

static int on_lm_step(const us_lm_progress *p, void *user) {
  lm_progress_state *s = user;
  if (p->note && s->opt && s->opt->progress) s->opt->progress(s->opt->progress_user, p->note);
  if (p->trial) { /* the size trial: its steps are not the run's curve */
    double now = us_now();
    if (s->opt && s->opt->progress && !p->note && (now - s->last_report > 2.0 || p->step == 1)) {
      char line[128];
      snprintf(line, sizeof line, "size trial %d/2 (%s): step %ld/%ld  loss %.4f", p->trial,
               p->preset, p->step, p->steps, p->loss);
      s->opt->progress(s->opt->progress_user, line);
      s->last_report = now;
    }
    return s->opt && s->opt->stop && *s->opt->stop ? 1 : 0;
  }
  if (s->n == s->cap && !s->oom) {
    long cap = s->cap ? 2 * s->cap : 1024;
    us_curve_point *grown = realloc(s->losses, (size_t)cap * sizeof *grown);
    if (grown) {
      s->losses = grown;
      s->cap = cap;
    } else {
      s->oom = true;
    }
  }
  if (s->n < s->cap) s->losses[s->n++] = (us_curve_point){(double)p->step, p->loss};
  if (p->step == 1 && p->budget_sec == 0) {
    us_lm_progress first = *p;
    first.planned_now = true; /* steps given: the choice is known from the first step */
    report_choice(s, &first);
  } else {
    report_choice(s, p);
  }
  double now = us_now();
  if (s->opt && s->opt->progress && (now - s->last_report > 2.0 || p->step == p->steps)) {
    char line[256];
    if (p->steps > 0)
      snprintf(line, sizeof line, "step %ld/%ld  loss %.4f  lr %.3g  %.0f tok/s  ETA %.0fs",
               p->step, p->steps, p->loss, p->lr, p->tokens_per_sec, p->eta_sec);
    else
      snprintf(line, sizeof line, "step %ld (timing the first steps)  loss %.4f  %.0f tok/s",
               p->step, p->loss, p->tokens_per_sec);
    s->opt->progress(s->opt->progress_user, line);
    s->last_report = now;
  }
  return s->opt && s->opt->stop && *s->opt->stop ? 1 : 0;
}

/* "auto size nano (2 layers, dim 128, 4 heads, context 128, vocab 1024); 3120 of 3120 steps
 * planned for 10.0 min at 5200 tok/s; best validation loss 0.0412 at step 2808 of 20 checks" */
static void describe_lm_choice(const us_lm_train_info *in, char *out, size_t cap) {
  const us_lm_config *k = &in->config;
  int len = snprintf(out, cap, "%s size %s (%d layers, dim %d, %d heads, context %d, vocab %d); ",
                     in->auto_preset ? "auto" : "preset", in->preset, k->layers, k->dim, k->heads,
                     k->context, k->vocab);
  if (len < 0 || (size_t)len >= cap) return;
  if (in->steps_from_budget)
    len += snprintf(out + len, cap - (size_t)len,
                    "%ld of %ld steps planned for %.1f min at %.0f tok/s", in->steps_done,
                    in->steps_planned, in->budget_sec / 60, in->tokens_per_sec);
  else
    len += snprintf(out + len, cap - (size_t)len, "%ld of %ld steps", in->steps_done,
                    in->steps_planned);
  if (len < 0 || (size_t)len >= cap) return;
  if (in->best_step > 0)
    len += snprintf(out + len, cap - (size_t)len,
                    "; best validation loss %.4f at step %ld (%d checks of %zu examples)%s",
                    in->best_valid_loss, in->best_step, in->evaluations, in->valid_examples,
                    in->stopped_early ? "; stopped early" : "");
  if (len < 0 || (size_t)len >= cap) return;
  /* the size trial: "; size trial: nano 1.2345 (467 steps) vs micro 1.4567 (42 steps), kept nano"
   */
  if (in->trial_run)
    snprintf(out + len, cap - (size_t)len,
             "; size trial: %s %.4f (%ld steps) vs %s %.4f (%ld steps), kept %s", in->trial_size[0],
             in->trial_loss[0], in->trial_steps[0], in->trial_size[1], in->trial_loss[1],
             in->trial_steps[1], in->trial_size[in->trial_winner]);
  else if (in->trial_note[0])
    snprintf(out + len, cap - (size_t)len, "; %s", in->trial_note);
}

/* Removes checkpoints of other trainings (other data or settings) from the output folder: a
 * checkpoint resumes only the training it was written by. */
static void remove_stale_checkpoints(const char *dir, const char *keep_name) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t len = strlen(e->d_name);
    if (strncmp(e->d_name, "student-", 8) != 0 || len < 5 ||
        strcmp(e->d_name + len - 5, ".ckpt") != 0 || strcmp(e->d_name, keep_name) == 0)
      continue;
    us_buf path;
    us_buf_init(&path, 0);
    if (us_buf_printf(&path, "%s/%s", dir, e->d_name) == US_OK) unlink(path.data);
    us_buf_free(&path);
  }
  closedir(d);
}

/* <output>/student-<fingerprint>.ckpt: the checkpoint of the training with this fingerprint. */
static void checkpoint_name(const char *fingerprint, char *name, size_t cap) {
  snprintf(name, cap, "student-%.16s.ckpt", fingerprint);
}

/* Trains the language model, checkpointing to <output>/student-<fingerprint>.ckpt so that an
 * interrupted training resumes exactly, and only with the same data and settings. The
 * checkpoint stays until the stage has succeeded (us_train_stage removes it), except after a
 * divergence, which resuming would only repeat. */
static us_status train_lm(const us_config *c, us_cache *cache, const example_set *set,
                          const us_train_options *opt, const char *path, const char *fingerprint,
                          us_train_summary *sum, us_err *err) {
  us_lm_example *ex = calloc(set->n + 1, sizeof *ex);
  us_lm_train_params p;
  lm_params_from_config(c, &p);
  lm_progress_state state = {opt, NULL, 0, 0, 0, false};
  us_buf ckpt;
  us_buf_init(&ckpt, 0);
  us_lm *lm = NULL;
  us_status st = US_OK;
  if (!ex) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory preparing %zu examples", set->n);
    goto done;
  }
  /* training examples first, the validation slice (early stopping) after them */
  size_t n = 0, n_valid = 0;
  for (size_t i = 0; i < set->n; i++)
    if (!set->rows[i].validation) ex[n++] = (us_lm_example){set->rows[i].text, set->rows[i].answer};
  for (size_t i = 0; i < set->n; i++)
    if (set->rows[i].validation)
      ex[n + n_valid++] = (us_lm_example){set->rows[i].text, set->rows[i].answer};
  p.valid = ex + n;
  p.n_valid = n_valid;
  us_lm_train_info info;
  p.info = &info;
  sum->n_train = (int64_t)n;
  sum->n_valid = (int64_t)(set->n - n);
  char ckpt_name[64];
  checkpoint_name(fingerprint, ckpt_name, sizeof ckpt_name);
  if (us_dist_rank() == 0) remove_stale_checkpoints(c->output, ckpt_name);
  if (us_buf_printf(&ckpt, "%s/%s", c->output, ckpt_name)) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory naming the checkpoint %s", ckpt_name);
    goto done;
  }
  p.checkpoint_path = ckpt.data;
  p.resume = true;
  p.progress = on_lm_step;
  p.progress_user = &state;
  double wall0 = us_now(), cpu0 = us_cpu_time();
  st = us_lm_train(&p, ex, n, &lm, err);
  sum->wall_s = us_now() - wall0;
  sum->cpu_s = us_cpu_time() - cpu0;
  if (st) {
    size_t n_table;
    const us_param *table = us_lm_train_param_table(&n_table);
    if (st == US_ERR_CONFIG && us_dist_rank() == 0)
      unlink(ckpt.data); /* diverged: resuming would diverge again */
    if (st != US_ERR_INTERRUPTED && !name_config_key(err, table, n_table))
      us_err_prefix(err, "training the language model");
    goto done;
  }
  sum->epochs = (int)state.n;
  sum->final_loss = state.n ? state.losses[state.n - 1].y : 0;
  sum->params = (int64_t)us_lm_n_params(lm);
  describe_lm_choice(&info, sum->chosen, sizeof sum->chosen);
  if (us_dist_rank() != 0) goto done; /* under mpirun, rank 0 writes the model and the rows */
  st = us_lm_save(lm, path, err);
  if (st) goto done;
  /* the run and its curve, inside the stage's transaction (us_train_stage commits it) */
  if ((st = us_cache_begin(cache, err)) != US_OK) goto done;
  int64_t run_id = 0;
  st = us_cache_run_begin(cache, "train", &run_id, err);
  for (long i = 0; i < state.n && !st; i++)
    st = us_cache_curve_add(cache, run_id, "train_loss", state.losses[i].x, state.losses[i].y, err);
  if (!st) st = us_cache_run_end(cache, run_id, "ok", err);
  if (st) us_cache_rollback(cache, NULL);
done:
  us_lm_free(lm);
  free(ex);
  free(state.losses);
  us_buf_free(&ckpt);
  return st;
}

/* Under mpirun (student/dist.h) every rank takes the same decision: train unless every rank
 * found the model up to date. Only the language model trains data-parallel. */
static us_status dist_agree(const us_config *c, bool *fresh, us_err *err) {
  if (us_dist_size() == 1) return US_OK;
  if (c->task.type != US_TASK_GENERATE)
    return us_err_set(err, US_ERR_CONFIG,
                      "task.type: data-parallel training under mpirun is for the language model "
                      "(\"generate\"); the classifier trains in one process: run `understudy "
                      "train CONFIG` without mpirun");
  bool stale = false;
  us_status st = us_dist_any(!*fresh, &stale, err);
  *fresh = !stale;
  return st;
}

us_status us_train_stage(const us_config *c, us_cache *cache, const us_train_options *opt,
                         us_train_summary *sum, us_err *err) {
  memset(sum, 0, sizeof *sum);
  example_set set = {0};
  us_buf_init(&set.fingerprint, 0);
  char *path = us_train_model_path(c), *tmp = NULL;
  if (!path) {
    us_buf_free(&set.fingerprint);
    return us_err_set(err, US_ERR_NOMEM, "out of memory training the student");
  }
  snprintf(sum->model_path, sizeof sum->model_path, "%s", path);
  us_status st = gather(c, cache, &set, sum, err);
  if (st) goto done;
  size_t n_usable = set.n;
  if (n_usable == 0) {
    st = us_err_set(err, US_ERR_STATE,
                    "no training examples: none of the train split's prompts has a usable teacher "
                    "answer (%lld unlabelled, %lld unparsed); run `understudy label` first",
                    (long long)sum->skipped_missing, (long long)sum->skipped_unparsed);
    goto done;
  }
  /* room for every settings line first, so that none of them can fail to be appended */
  size_t room = 1024 + (c->student.lm.preset ? strlen(c->student.lm.preset) : 0);
  for (int i = 0; i < c->task.n_labels; i++) room += strlen(c->task.labels[i]) + 8;
  if (us_buf_reserve(&set.fingerprint, room)) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory fingerprinting the training settings");
    goto done;
  }
  fingerprint_settings(c, &set.fingerprint);
  char fp[65];
  us_sha256_hex(set.fingerprint.data, set.fingerprint.len, fp);
  bool fresh = !(opt && opt->force) && up_to_date(cache, fp, path, sum);
  if ((st = dist_agree(c, &fresh, err)) != US_OK) goto done;
  if (fresh) {
    sum->up_to_date = true;
    goto done;
  }
  /* On success the trainers leave the model in student.bin.new and the run and its curves in an
   * open transaction, which the result joins; the rename comes last before the commit. */
  if (!(tmp = new_model_path(path))) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory");
    goto done;
  }
  if (c->task.type == US_TASK_CLASSIFY)
    st = train_classifier(c, cache, &set, opt, tmp, sum, err);
  else
    st = train_lm(c, cache, &set, opt, tmp, fp, sum, err);
  if (st || us_dist_rank() != 0) { /* under mpirun, only rank 0 writes */
    if (st && us_dist_rank() == 0) unlink(tmp);
    goto done;
  }
  struct stat sb;
  if (stat(tmp, &sb) == 0) sum->model_bytes = sb.st_size;
  st = save_result(cache, fp, sum, err);
  if (!st && rename(tmp, path) != 0)
    st = us_err_set(err, US_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
  if (!st) st = us_cache_commit(cache, err);
  if (st) {
    us_cache_rollback(cache, NULL);
    unlink(tmp);
    goto done;
  }
  if (c->task.type == US_TASK_GENERATE) { /* the model is saved: a later --force starts afresh */
    char name[64];
    checkpoint_name(fp, name, sizeof name);
    us_buf ckpt;
    us_buf_init(&ckpt, 0);
    if (us_buf_printf(&ckpt, "%s/%s", c->output, name) == US_OK) unlink(ckpt.data);
    us_buf_free(&ckpt);
  }
done:
  example_set_free(&set);
  free(path);
  free(tmp);
  return st;
}
