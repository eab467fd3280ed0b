/* understudy report CONFIG: write report.md, report.json and report.html. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: understudy report CONFIG [--set key=value]... [--quiet]\n"
    "  Writes <output>/report.md, report.json and report.html (one self-contained file) from\n"
    "  the workspace, and prints the headline.\n";

int us_cli_report_end(us_cli_session *ss, us_status st, const us_err *err,
                      const us_pipeline_report_summary *s) {
  if (st) return ss->rc = us_cli_fail(st, err, us_pipeline_hint(US_STAGE_REPORT, st));
  if (!ss->common->quiet) fputs(s->headline ? s->headline : "", stdout);
  printf("report: %s/report.html (also report.md, report.json)\n", s->dir);
  return ss->rc = US_EXIT_OK;
}

int us_cmd_report(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, usage);
  if (rc) return rc;
  if (argc > 1) {
    fprintf(stderr, "understudy: error: report: unknown option '%s'\n%s", argv[1], usage);
    return US_EXIT_USAGE;
  }
  us_cli_session ss = {.common = &common};
  if ((rc = us_cli_open(&common, &ss.pipeline))) return rc;
  us_pipeline_options opt;
  us_cli_options(&ss, &opt);
  us_pipeline_report_summary s;
  us_err err = {0};
  us_status st = us_pipeline_report(ss.pipeline, &opt, &s, &err);
  rc = us_cli_report_end(&ss, st, &err, &s);
  us_pipeline_report_summary_free(&s);
  us_pipeline_close(ss.pipeline);
  return rc;
}
