/* understudy run CONFIG: every stage in order (prompts, label, train, eval, report). Each stage
 * is idempotent, so running again after a crash, Ctrl-C or budget stop resumes. */
#include <stdio.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: understudy run CONFIG [--set key=value]... [--quiet]\n"
    "  Runs prompts, label, train, eval and report in order and prints the headline.\n"
    "  Safe to run again: finished work is kept and nothing is paid for twice.\n";

static void stage_begin(void *user, us_pipeline_stage stage) {
  us_cli_session *ss = user;
  if (stage == US_STAGE_LABEL) us_cli_label_begin(ss);
  if (stage == US_STAGE_TRAIN) us_cli_train_begin(ss);
}

/* Prints each stage's summary (or error) as its own command does, as soon as it ends. */
static void stage_end(void *user, us_pipeline_stage stage, us_status st, const us_err *err,
                      const us_pipeline_run_summary *s) {
  us_cli_session *ss = user;
  switch (stage) {
    case US_STAGE_PROMPTS:
      us_cli_prompts_end(ss, st, err, &s->prompts);
      break;
    case US_STAGE_LABEL:
      us_cli_label_end(ss, st, err, &s->label);
      break;
    case US_STAGE_TRAIN:
      us_cli_train_end(ss, st, err, &s->train);
      break;
    case US_STAGE_EVAL:
      us_cli_eval_end(ss, st, err, &s->eval);
      break;
    case US_STAGE_REPORT:
      us_cli_report_end(ss, st, err, &s->report);
      break;
    default:
      break;
  }
  fflush(stdout); /* keep stage output in order when stdout is a pipe */
}

static int stopped_at(const char *stage, int rc) {
  if (rc != US_EXIT_USAGE)
    fprintf(stderr,
            "understudy: run stopped at the %s stage; fix the above and run again "
            "(finished work is kept)\n",
            stage);
  return rc;
}

/* The config and workspace are opened once and every stage runs over them (us_pipeline_run).
 * Flag errors read as they always have: those of the first stage, prompts. */
int us_cmd_run(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  if (argc > 158) {
    fprintf(stderr, "understudy: error: run: too many arguments\n");
    return US_EXIT_USAGE;
  }
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, usage);
  if (rc) return rc;
  if (argc > 1) {
    fprintf(stderr, "understudy: error: run: unknown option '%s'\n%s", argv[1], usage);
    return US_EXIT_USAGE;
  }
  us_cli_session ss = {.common = &common};
  if ((rc = us_cli_open(&common, &ss.pipeline)))
    return stopped_at(us_pipeline_stage_name(US_STAGE_PROMPTS), rc);
  us_pipeline_options opt;
  us_cli_options(&ss, &opt);
  opt.stage_begin = stage_begin;
  opt.stage_end = stage_end;
  us_pipeline_run_summary s;
  us_err err = {0};
  us_status st = us_pipeline_run(ss.pipeline, &opt, &s, &err);
  if (st && s.stage_failed)
    rc = stopped_at(us_pipeline_stage_name(s.stage), ss.rc);
  else
    rc = us_cli_exit_code(st); /* all ran, or Ctrl-C between stages: nothing more to say */
  us_pipeline_run_summary_free(&s);
  us_pipeline_close(ss.pipeline);
  return rc;
}
