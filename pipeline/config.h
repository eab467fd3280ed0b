/* The project configuration: one JSON file (documented key by key in docs/config.md), checked
 * strictly, with --set overrides. Every string in us_config is owned by it and freed by
 * us_config_free. Relative paths (output, data.inputs) are already resolved against the config
 * file's folder when us_config_load returns. */
#ifndef US_PIPELINE_CONFIG_H
#define US_PIPELINE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/params.h"
#include "core/status.h"
#include "core/task.h"
#include "distill/prompts.h"
#include "distill/teacher.h"
#include "eval/cascade.h"
#include "eval/cost.h"
#include "pipeline/active.h"
#include "pipeline/serve_params.h"
#include "student/classifier.h"
#include "student/lm.h"

typedef struct us_config {
  char *path;   /* the config file as given */
  char *dir;    /* its folder, absolute */
  char *name;   /* required; [A-Za-z0-9_.-]+ */
  char *output; /* folder; default "out/<name>" */

  us_task task; /* core/task.h; strings owned by the config */

  us_prompts_params data;    /* distill/prompts.h: the data.* keys */
  us_teacher_params teacher; /* distill/teacher.h: the teacher.* keys (teacher.price.* too) */
  us_active_params label;    /* pipeline/active.h: the label.* keys (which prompts to label) */

  struct {
    /* the students' own settings: defaults and ranges are the modules' (student/classifier.h,
     * student/lm.h). student.threads, student.seed and student.dropout are stored in
     * classifier and copied to lm when the config is loaded; student.lm_dim and student.lm_lr
     * are lm.dim and lm.lr; lm.preset is owned by the config. */
    us_classifier_params classifier; /* task classify */
    us_lm_train_params lm;           /* task generate */
    double validation_fraction;      /* default 0.1 of train, for early stopping */
  } student;

  us_cost_params cost;       /* eval/cost.h */
  us_quality_params quality; /* eval/cascade.h */
  us_serve_params serve;     /* pipeline/serve_params.h: the serve.* keys */
} us_config;

/* Fills every field with its default (strings NULL where there is no default string). */
void us_config_defaults(us_config *c);

/* Loads and checks path, applying overrides ("key.path=value"; the value is JSON if it parses
 * as JSON, else a string) before checking. On error, err names the file, the key path, what was
 * expected and what was found (with "did you mean" for unknown keys), and c is left freed. */
us_status us_config_load(const char *path, const char *const *overrides, int n_overrides,
                         us_config *c, us_err *err);
void us_config_free(us_config *c);

/* us_request_render (distill/request.h) of the config's task. Caller frees both. */
us_status us_config_render(const us_config *c, const char *text, char **system, char **user,
                           us_err *err);

/* Index of label in task.labels, or -1. */
int us_config_label_index(const us_config *c, const char *label);

/* The key table, for documentation and the tests that hold docs/config.md to it. Key i's path
 * ("student.hidden"; sections such as "student" included); *param (may be NULL) receives the
 * module parameter that gives the key its kind and range, or NULL when the config reads the key
 * itself (strings, paths, labels, inputs, headers). Returns NULL when i is past the end. */
const char *us_config_key(size_t i, const us_param **param);
/* The current value of a key backed by a module parameter (item index for a list, -1 for its
 * number of items; bool as 0 or 1), read from c; NAN for any other key. */
double us_config_key_value(const us_config *c, const char *path, int index);

#endif
