/* understudy eval CONFIG: measure the student against the teacher on the test split. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "pipeline/evaluate.h"

static const char usage[] =
    "usage: understudy eval CONFIG [--set key=value]... [--quiet]\n"
    "  Runs the student over the test split (never used in training), times it on this\n"
    "  machine, and prints its agreement with the teacher.\n";

int us_cmd_eval(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, usage);
  if (rc) return rc;
  if (argc > 1) {
    fprintf(stderr, "understudy: error: eval: unknown option '%s'\n%s", argv[1], usage);
    return US_EXIT_USAGE;
  }
  us_config c;
  us_cache *cache = NULL;
  if ((rc = us_cli_open(&common, &c, &cache))) return rc;
  us_err err = {0};
  us_eval_summary s;
  us_eval_data *d = NULL;
  us_status st = us_eval_predict_stage(&c, cache, &s, &err);
  if (!st) st = us_eval_build(&c, cache, &d, &err);
  if (st) {
    rc = us_cli_fail(st, &err, NULL);
  } else if (!common.quiet) {
    const us_report *r = us_eval_report(d);
    printf(
        "eval: %lld test prompts, %lld with a usable teacher answer; student %.1f us per "
        "prompt (one thread)\n",
        (long long)s.n_test, (long long)s.n_scored, 1e6 * s.cpu_s_per_request);
    if (r->metrics) {
      printf(
          "eval: agreement with the teacher %.2f%% (95%% CI %.2f-%.2f), macro-F1 %.3f, "
          "ECE %.3f\n",
          100 * r->metrics->agreement, 100 * r->metrics->agreement_lo,
          100 * r->metrics->agreement_hi, r->metrics->macro_f1, r->metrics->ece);
      if (r->metrics->has_gold)
        printf("eval: against gold labels: student %.2f%%, teacher %.2f%% (%d prompts)\n",
               100 * r->metrics->student_gold_accuracy, 100 * r->metrics->teacher_gold_accuracy,
               r->metrics->n_gold);
    }
    if (r->generation)
      printf("eval: exact match %.2f%%, token F1 %.3f, ROUGE-L %.3f, chrF %.3f\n",
             100 * r->generation->exact_match, r->generation->token_f1, r->generation->rouge_l,
             r->generation->chrf);
  }
  us_eval_data_free(d);
  us_cache_close(cache);
  us_config_free(&c);
  return rc;
}
