/* understudy eval CONFIG: measure the student against the teacher on the test split. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: understudy eval CONFIG [--set key=value]... [--quiet]\n"
    "  Runs the student over the test split (never used in training), times it on this\n"
    "  machine, and prints its agreement with the teacher.\n";

int us_cli_eval_end(us_cli_session *ss, us_status st, const us_err *err,
                    const us_pipeline_eval_summary *s) {
  if (st) return ss->rc = us_cli_fail(st, err, us_pipeline_hint(US_STAGE_EVAL, st));
  if (!ss->common->quiet) {
    printf(
        "eval: %lld test prompts, %lld with a usable teacher answer; student %.1f us per "
        "prompt (one thread)\n",
        (long long)s->predict.n_test, (long long)s->predict.n_scored,
        1e6 * s->predict.cpu_s_per_request);
    if (s->has_metrics) {
      const us_classify_metrics *m = &s->metrics;
      printf(
          "eval: agreement with the teacher %.2f%% (95%% CI %.2f-%.2f), macro-F1 %.3f, "
          "ECE %.3f\n",
          100 * m->agreement, 100 * m->agreement_lo, 100 * m->agreement_hi, m->macro_f1, m->ece);
      if (m->has_gold)
        printf("eval: against gold labels: student %.2f%%, teacher %.2f%% (%d prompts)\n",
               100 * m->student_gold_accuracy, 100 * m->teacher_gold_accuracy, m->n_gold);
    }
    if (s->has_generation)
      printf("eval: exact match %.2f%%, token F1 %.3f, ROUGE-L %.3f, chrF %.3f\n",
             100 * s->generation.exact_match, s->generation.token_f1, s->generation.rouge_l,
             s->generation.chrf);
  }
  return ss->rc = US_EXIT_OK;
}

int us_cmd_eval(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, usage);
  if (rc) return rc;
  if (argc > 1) {
    fprintf(stderr, "understudy: error: eval: unknown option '%s'\n%s", argv[1], usage);
    return US_EXIT_USAGE;
  }
  us_cli_session ss = {.common = &common};
  if ((rc = us_cli_open(&common, &ss.pipeline))) return rc;
  us_pipeline_options opt;
  us_cli_options(&ss, &opt);
  us_pipeline_eval_summary s;
  us_err err = {0};
  us_status st = us_pipeline_eval(ss.pipeline, &opt, &s, &err);
  rc = us_cli_eval_end(&ss, st, &err, &s);
  us_pipeline_close(ss.pipeline);
  return rc;
}
