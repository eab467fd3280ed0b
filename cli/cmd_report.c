/* understudy report CONFIG: write report.md, report.json and report.html. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "pipeline/evaluate.h"

static const char usage[] =
    "usage: understudy report CONFIG [--set key=value]... [--quiet]\n"
    "  Writes <output>/report.md, report.json and report.html (one self-contained file) from\n"
    "  the workspace, and prints the headline.\n";

int us_cmd_report(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, usage);
  if (rc) return rc;
  if (argc > 1) {
    fprintf(stderr, "understudy: error: report: unknown option '%s'\n%s", argv[1], usage);
    return US_EXIT_USAGE;
  }
  us_config c;
  us_cache *cache = NULL;
  if ((rc = us_cli_open(&common, &c, &cache))) return rc;
  us_err err = {0};
  us_eval_data *d = NULL;
  us_buf headline;
  us_buf_init(&headline, 0);
  us_status st = us_eval_build(&c, cache, &d, &err);
  if (!st) st = us_report_write(us_eval_report(d), c.output, &err);
  if (!st) st = us_report_headline(us_eval_report(d), &headline, &err);
  if (st) {
    rc = us_cli_fail(st, &err, NULL);
  } else {
    if (!common.quiet) fputs(headline.data ? headline.data : "", stdout);
    printf("report: %s/report.html (also report.md, report.json)\n", c.output);
  }
  us_buf_free(&headline);
  us_eval_data_free(d);
  us_cache_close(cache);
  us_config_free(&c);
  return rc;
}
