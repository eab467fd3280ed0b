/* The pipeline handle and its stages: the config and workspace are opened once, and each stage
 * calls into distill/, pipeline/train, pipeline/evaluate and eval/report over them. */
#include "pipeline/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "pipeline/active.h"
#include "student/dist.h"

struct us_pipeline {
  us_config config;
  us_cache *cache;
  char *workspace; /* <output>/understudy.db */
};

static const char *const stage_names[US_STAGE_COUNT] = {"prompts", "label",  "train",  "eval",
                                                        "report",  "config", "output", "workspace"};

const char *us_pipeline_stage_name(us_pipeline_stage stage) {
  return stage >= 0 && stage < US_STAGE_COUNT ? stage_names[stage] : "unknown";
}

const char *us_pipeline_hint(us_pipeline_stage stage, us_status st) {
  if (st == US_OK) return NULL;
  switch (stage) {
    case US_STAGE_CONFIG:
      return "see docs/config.md for every key and its default";
    case US_STAGE_OUTPUT:
      return "check the config's \"output\" folder";
    case US_STAGE_PROMPTS:
      return st == US_ERR_CONFIG ? "see docs/config.md for data.inputs and its formats" : NULL;
    case US_STAGE_LABEL:
      if (st == US_ERR_AUTH)
        return "check the key's value and that teacher.base_url is the API it belongs to";
      if (st == US_ERR_NOT_FOUND)
        return "teacher.base_url usually ends in /v1; the model must be one the API serves";
      if (st == US_ERR_UNLABELLED)
        return "fix the cause and run again: answers are kept, only the failed prompts are sent";
      return NULL;
    default:
      return NULL;
  }
}

us_status us_pipeline_open_at(const char *config_path, const char *const *overrides,
                              int n_overrides, us_pipeline **out, us_pipeline_stage *failed_at,
                              us_err *err) {
  *out = NULL;
  us_pipeline *p = calloc(1, sizeof *p);
  if (!p) {
    if (failed_at) *failed_at = US_STAGE_CONFIG;
    return us_err_set(err, US_ERR_NOMEM, "out of memory opening the pipeline");
  }
  us_pipeline_stage at = US_STAGE_CONFIG;
  us_status st = us_config_load(config_path, overrides, n_overrides, &p->config, err);
  if (st) {
    free(p); /* us_config_load leaves the config freed on error */
    if (failed_at) *failed_at = at;
    return st;
  }
  at = US_STAGE_OUTPUT;
  st = us_mkdirs(p->config.output, err);
  if (!st) {
    at = US_STAGE_WORKSPACE;
    us_buf path;
    us_buf_init(&path, 0);
    if (us_buf_printf(&path, "%s/understudy.db", p->config.output))
      st = us_err_set(err, US_ERR_NOMEM, "out of memory opening the workspace");
    p->workspace = us_buf_steal(&path);
  }
  if (!st) /* under mpirun, rank 0 writes the workspace and the other ranks only read it */
    st = us_dist_rank() > 0 ? us_cache_open_read_only(p->workspace, &p->cache, err)
                            : us_cache_open(p->workspace, &p->cache, err);
  if (st) {
    if (failed_at) *failed_at = at;
    us_pipeline_close(p);
    return st;
  }
  *out = p;
  return US_OK;
}

us_status us_pipeline_open(const char *config_path, const char *const *overrides, int n_overrides,
                           us_pipeline **out, us_err *err) {
  return us_pipeline_open_at(config_path, overrides, n_overrides, out, NULL, err);
}

void us_pipeline_close(us_pipeline *p) {
  if (!p) return;
  us_cache_close(p->cache);
  us_config_free(&p->config);
  free(p->workspace);
  free(p);
}

const us_config *us_pipeline_config(const us_pipeline *p) {
  return &p->config;
}

us_cache *us_pipeline_cache(us_pipeline *p) {
  return p->cache;
}

const char *us_pipeline_workspace_path(const us_pipeline *p) {
  return p->workspace;
}

void us_pipeline_options_init(us_pipeline_options *o) {
  memset(o, 0, sizeof *o);
}

static const us_pipeline_options *options_or_default(const us_pipeline_options *opt,
                                                     us_pipeline_options *fallback) {
  if (opt) return opt;
  us_pipeline_options_init(fallback);
  return fallback;
}

us_status us_pipeline_prompts(us_pipeline *p, const us_pipeline_options *opt,
                              us_prompts_stats *summary, us_err *err) {
  (void)opt;
  memset(summary, 0, sizeof *summary);
  return us_prompts_build(&p->config.task, &p->config.data, p->config.dir, p->cache, summary, err);
}

us_status us_pipeline_label(us_pipeline *p, const us_pipeline_options *opt, us_label_stats *summary,
                            us_err *err) {
  us_pipeline_options none;
  opt = options_or_default(opt, &none);
  us_label_options lo;
  us_label_options_defaults(&lo);
  lo.dry_run = opt->dry_run;
  lo.stop = opt->stop;
  lo.progress = opt->label_progress;
  lo.progress_user = opt->user;
  memset(summary, 0, sizeof *summary);
  if (us_active_enabled(&p->config.label)) {
    us_train_options to = {
        .stop = opt->stop, .progress = opt->train_progress, .progress_user = opt->user};
    us_active_options ao = {
        .label = &lo, .train = &to, .round_done = opt->active_round, .user = opt->user};
    return us_active_label(&p->config, p->cache, &ao, summary, err);
  }
  return us_teacher_label(&p->config.task, &p->config.data, &p->config.teacher, p->cache, &lo,
                          summary, err);
}

us_status us_pipeline_train(us_pipeline *p, const us_pipeline_options *opt,
                            us_train_summary *summary, us_err *err) {
  us_pipeline_options none;
  opt = options_or_default(opt, &none);
  us_train_options to = {.force = opt->force,
                         .stop = opt->stop,
                         .progress = opt->train_progress,
                         .progress_user = opt->user};
  memset(summary, 0, sizeof *summary);
  return us_train_stage(&p->config, p->cache, &to, summary, err);
}

us_status us_pipeline_eval(us_pipeline *p, const us_pipeline_options *opt,
                           us_pipeline_eval_summary *summary, us_err *err) {
  (void)opt;
  memset(summary, 0, sizeof *summary);
  us_status st = us_eval_predict_stage(&p->config, p->cache, &summary->predict, err);
  us_eval_data *d = NULL;
  if (!st) st = us_eval_build(&p->config, p->cache, &d, err);
  if (st) return st;
  const us_report *r = us_eval_report(d);
  if (r->metrics) {
    summary->has_metrics = true;
    summary->metrics = *r->metrics;
    summary->metrics.per_class = NULL; /* owned by d */
    summary->metrics.confusions = NULL;
    summary->metrics.n_confusions = 0;
  }
  if (r->generation) {
    summary->has_generation = true;
    summary->generation = *r->generation;
  }
  us_eval_data_free(d);
  return US_OK;
}

void us_pipeline_report_summary_free(us_pipeline_report_summary *s) {
  if (!s) return;
  free(s->headline);
  free(s->dir);
  s->headline = s->dir = NULL;
}

us_status us_pipeline_report(us_pipeline *p, const us_pipeline_options *opt,
                             us_pipeline_report_summary *summary, us_err *err) {
  (void)opt;
  memset(summary, 0, sizeof *summary);
  us_eval_data *d = NULL;
  us_buf headline;
  us_buf_init(&headline, 0);
  us_status st = us_eval_build(&p->config, p->cache, &d, err);
  if (!st) st = us_report_write(us_eval_report(d), p->config.output, err);
  if (!st) st = us_report_headline(us_eval_report(d), &headline, err);
  if (!st) {
    summary->headline = us_buf_steal(&headline);
    summary->dir = us_strdup(p->config.output);
    if (!summary->headline || !summary->dir) {
      us_pipeline_report_summary_free(summary);
      st = us_err_set(err, US_ERR_NOMEM, "out of memory writing the report");
    }
  }
  us_buf_free(&headline);
  us_eval_data_free(d);
  return st;
}

void us_pipeline_run_summary_free(us_pipeline_run_summary *s) {
  if (s) us_pipeline_report_summary_free(&s->report);
}

static us_status run_stage(us_pipeline *p, const us_pipeline_options *opt, us_pipeline_stage stage,
                           us_pipeline_run_summary *s, us_err *err) {
  switch (stage) {
    case US_STAGE_PROMPTS:
      return us_pipeline_prompts(p, opt, &s->prompts, err);
    case US_STAGE_LABEL:
      return us_pipeline_label(p, opt, &s->label, err);
    case US_STAGE_TRAIN:
      return us_pipeline_train(p, opt, &s->train, err);
    case US_STAGE_EVAL:
      return us_pipeline_eval(p, opt, &s->eval, err);
    case US_STAGE_REPORT:
      return us_pipeline_report(p, opt, &s->report, err);
    default:
      return us_err_set(err, US_ERR_INTERNAL, "run: %s is not a stage",
                        us_pipeline_stage_name(stage));
  }
}

us_status us_pipeline_run(us_pipeline *p, const us_pipeline_options *opt,
                          us_pipeline_run_summary *summary, us_err *err) {
  us_pipeline_options none;
  opt = options_or_default(opt, &none);
  /* run never estimates instead of labelling, nor retrains what is up to date */
  us_pipeline_options o = *opt;
  o.dry_run = false;
  o.force = false;
  memset(summary, 0, sizeof *summary);
  for (int i = US_STAGE_PROMPTS; i <= US_STAGE_REPORT; i++) {
    us_pipeline_stage stage = (us_pipeline_stage)i;
    summary->stage = stage;
    if (o.stage_begin) o.stage_begin(o.user, stage);
    us_status st = run_stage(p, &o, stage, summary, err);
    summary->stage_failed = st != US_OK;
    if (o.stage_end) o.stage_end(o.user, stage, st, err, summary);
    if (st) return st;
    if (o.stop && *o.stop)
      return us_err_set(err, US_ERR_INTERRUPTED, "interrupted after the %s stage",
                        us_pipeline_stage_name(stage));
  }
  return US_OK;
}
