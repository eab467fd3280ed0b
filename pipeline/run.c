/* us_run (include/understudy.h): the whole pipeline behind one public call, over the pipeline
 * handle, for C programs that link libunderstudy. */
#include <stdlib.h>

#include "core/buf.h"
#include "pipeline/pipeline.h"
#include "understudy.h"

us_status us_run(const char *config_path, const char *const *overrides, int n_overrides,
                 volatile sig_atomic_t *stop, char **headline, us_err *err) {
  if (headline) *headline = NULL;
  us_pipeline *p = NULL;
  us_status st = us_pipeline_open(config_path, overrides, n_overrides, &p, err);
  if (st != US_OK) return st;
  us_pipeline_options opt;
  us_pipeline_options_init(&opt);
  opt.stop = stop;
  us_pipeline_run_summary summary;
  st = us_pipeline_run(p, &opt, &summary, err);
  if (st == US_OK && headline && summary.report.headline) {
    *headline = us_strdup(summary.report.headline);
    if (!*headline) st = us_err_set(err, US_ERR_NOMEM, "out of memory copying the headline");
  }
  us_pipeline_run_summary_free(&summary);
  us_pipeline_close(p);
  return st;
}
