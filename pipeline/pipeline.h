/* The pipeline as a library: one handle holds the loaded config and the open workspace
 * (<output>/understudy.db), and every stage (prompts, label, train, eval, report, and run for all
 * five in order) is a function over it. A stage returns a us_status (with err's message on
 * failure) and fills a summary; progress reaches the caller through the callbacks of
 * us_pipeline_options. Nothing here prints or exits; cli/ turns summaries into text.
 *
 * Ownership: the handle owns its config and workspace; us_pipeline_config/us_pipeline_cache
 * borrow them until us_pipeline_close. A report summary owns its headline (free it with
 * us_pipeline_report_summary_free; a run summary with us_pipeline_run_summary_free). */
#ifndef US_PIPELINE_PIPELINE_H
#define US_PIPELINE_PIPELINE_H

#include <signal.h>
#include <stdbool.h>

#include "cache/cache.h"
#include "core/status.h"
#include "distill/prompts.h"
#include "distill/teacher.h"
#include "eval/metrics.h"
#include "pipeline/config.h"
#include "pipeline/evaluate.h"
#include "pipeline/train.h"

typedef struct us_pipeline us_pipeline;

/* The stages in the order `run` takes them, then the steps of us_pipeline_open. */
typedef enum us_pipeline_stage {
  US_STAGE_PROMPTS,
  US_STAGE_LABEL,
  US_STAGE_TRAIN,
  US_STAGE_EVAL,
  US_STAGE_REPORT,
  US_STAGE_CONFIG,    /* open: loading and checking the config */
  US_STAGE_OUTPUT,    /* open: creating the output folder */
  US_STAGE_WORKSPACE, /* open: opening <output>/understudy.db */
  US_STAGE_COUNT
} us_pipeline_stage;

/* "prompts", "label", "train", "eval", "report", "config", "output", "workspace". */
const char *us_pipeline_stage_name(us_pipeline_stage stage);

/* A one-line suggestion of what to check after stage failed with st, or NULL (e.g. for
 * US_STAGE_LABEL and US_ERR_AUTH: check the key and the base URL). Static text. */
const char *us_pipeline_hint(us_pipeline_stage stage, us_status st);

/* Loads config_path with the overrides ("key.path=value", applied in order; see us_config_load),
 * creates the output folder and opens <output>/understudy.db (creating it). On failure *out is
 * NULL, err says why and, if failed_at is non-NULL, it receives the step that failed
 * (US_STAGE_CONFIG, US_STAGE_OUTPUT or US_STAGE_WORKSPACE). */
us_status us_pipeline_open_at(const char *config_path, const char *const *overrides,
                              int n_overrides, us_pipeline **out, us_pipeline_stage *failed_at,
                              us_err *err);
us_status us_pipeline_open(const char *config_path, const char *const *overrides, int n_overrides,
                           us_pipeline **out, us_err *err);
void us_pipeline_close(us_pipeline *p); /* NULL is a no-op */

const us_config *us_pipeline_config(const us_pipeline *p);
us_cache *us_pipeline_cache(us_pipeline *p);
const char *us_pipeline_workspace_path(const us_pipeline *p); /* <output>/understudy.db */

/* The eval stage's summary: the student's answers on the test split and the headline metrics
 * (copied out of the report; per_class and confusions are NULL here). */
typedef struct us_pipeline_eval_summary {
  us_eval_summary predict;
  bool has_metrics; /* classify */
  us_classify_metrics metrics;
  bool has_generation; /* generate */
  us_generate_metrics generation;
} us_pipeline_eval_summary;

typedef struct us_pipeline_report_summary {
  char *headline; /* the report's headline (a few lines of text), owned */
  char *dir;      /* where report.md, report.json and report.html were written, owned */
} us_pipeline_report_summary;
void us_pipeline_report_summary_free(us_pipeline_report_summary *s);

typedef struct us_pipeline_run_summary us_pipeline_run_summary;

typedef struct us_pipeline_options {
  volatile sig_atomic_t *stop; /* set non-zero (e.g. from a SIGINT handler) to stop cleanly */
  bool dry_run;                /* label: contact nobody, fill the estimates (not used by run) */
  bool force;                  /* train: retrain even when up to date (not used by run) */
  void *user;                  /* passed to every callback */
  /* label: called at most ~4 times a second, and at the end */
  void (*label_progress)(void *user, const us_label_stats *s);
  /* train: one status line after each epoch (classify) or every few steps (generate) */
  void (*train_progress)(void *user, const char *line);
  /* run: before each stage, and after it with its status, err and the summary so far */
  void (*stage_begin)(void *user, us_pipeline_stage stage);
  void (*stage_end)(void *user, us_pipeline_stage stage, us_status st, const us_err *err,
                    const us_pipeline_run_summary *s);
} us_pipeline_options;

/* Zeroes o (no stop flag, no callbacks). */
void us_pipeline_options_init(us_pipeline_options *o);

/* Reads data.inputs into the workspace (distill/prompts.h). */
us_status us_pipeline_prompts(us_pipeline *p, const us_pipeline_options *opt,
                              us_prompts_stats *summary, us_err *err);
/* Has the teacher label every prompt (distill/teacher.h). On US_ERR_BUDGET, US_ERR_INTERRUPTED,
 * US_ERR_AUTH and US_ERR_NOT_FOUND the summary still counts what was done. */
us_status us_pipeline_label(us_pipeline *p, const us_pipeline_options *opt, us_label_stats *summary,
                            us_err *err);
/* Trains the student (pipeline/train.h). */
us_status us_pipeline_train(us_pipeline *p, const us_pipeline_options *opt,
                            us_train_summary *summary, us_err *err);
/* Runs the student over the test split, stores its answers and measures it (pipeline/evaluate.h).
 */
us_status us_pipeline_eval(us_pipeline *p, const us_pipeline_options *opt,
                           us_pipeline_eval_summary *summary, us_err *err);
/* Writes report.md, report.json and report.html to the output folder. */
us_status us_pipeline_report(us_pipeline *p, const us_pipeline_options *opt,
                             us_pipeline_report_summary *summary, us_err *err);

struct us_pipeline_run_summary {
  us_pipeline_stage stage; /* the stage that stopped the run, or US_STAGE_REPORT when all ran */
  bool stage_failed;       /* the run stopped because stage returned an error (false: all ran,
                              or *stop was set after stage finished) */
  us_prompts_stats prompts;
  us_label_stats label;
  us_train_summary train;
  us_pipeline_eval_summary eval;
  us_pipeline_report_summary report;
};
void us_pipeline_run_summary_free(us_pipeline_run_summary *s);

/* Runs prompts, label, train, eval and report in order over the one open workspace, stopping
 * at the first stage that fails (its status and err are returned), or with US_ERR_INTERRUPTED
 * between stages once *opt->stop is set. Every stage is idempotent, so running again resumes. */
us_status us_pipeline_run(us_pipeline *p, const us_pipeline_options *opt,
                          us_pipeline_run_summary *summary, us_err *err);

#endif
