/* `understudy prompts CONFIG`: reads data.inputs into the workspace and prints what it did. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "distill/prompts.h"

const char us_cli_prompts_usage[] =
    "usage: understudy prompts CONFIG [--set key.path=value]... [--quiet] [--verbose]\n"
    "\n"
    "Reads every data.inputs entry (JSONL, CSV, TSV, plain text, folders of .md/.txt documents)\n"
    "into <output>/understudy.db. Exact duplicates (ignoring case and white space) are dropped;\n"
    "each prompt's train/test split comes from a hash of its text and data.seed, or from the\n"
    "input's \"split\". Running it again adds only prompts that are new.\n"
    "\n"
    "options:\n"
    "  --set key.path=value  override a config key (repeatable), e.g. --set "
    "data.test_fraction=0.3\n"
    "  --quiet               print nothing but errors\n"
    "  --verbose             also log each input as it is read\n"
    "  -h, --help            show this help\n";

int us_cli_prompts_end(us_cli_session *ss, us_status st, const us_err *err,
                       const us_prompts_stats *s) {
  if (st) return ss->rc = us_cli_fail(st, err, us_pipeline_hint(US_STAGE_PROMPTS, st));
  const us_config *config = us_pipeline_config(ss->pipeline);
  if (!ss->common->quiet) {
    printf(
        "prompts: %lld read, %lld added, %lld already present, %lld duplicates dropped, "
        "%lld empty skipped",
        (long long)s->read, (long long)s->added, (long long)s->existing, (long long)s->duplicates,
        (long long)s->empty);
    if (s->repaired) printf(", %lld repaired (invalid UTF-8)", (long long)s->repaired);
    printf("\nworkspace: %lld prompts (%lld train, %lld test) in %s/understudy.db\n",
           (long long)(s->train + s->test), (long long)s->train, (long long)s->test,
           config->output);
    if (s->near_duplicates > 0 && s->near_moved > 0)
      printf(
          "near-duplicates: %lld prompts had a near-duplicate in the other split (word "
          "3-shingle Jaccard >= 0.8); %lld train prompts moved to test (data.dedupe_near)\n",
          (long long)s->near_duplicates, (long long)s->near_moved);
    else if (s->near_duplicates > 0)
      printf(
          "near-duplicates: %lld prompts have a near-duplicate in the other split (word "
          "3-shingle Jaccard >= 0.8): the test numbers may flatter the student; "
          "data.dedupe_near moves them to test\n",
          (long long)s->near_duplicates);
    else
      printf("near-duplicates: none across train and test\n");
    if (s->chunks > 0)
      printf(
          "documents: %lld chunks kept; `understudy label` has the teacher write %d "
          "questions for each, then answer them\n",
          (long long)s->chunks, config->data.questions_per_chunk);
  }
  return ss->rc = US_EXIT_OK;
}

int us_cmd_prompts(int argc, char **argv) {
  if (us_cli_help(argc, argv, us_cli_prompts_usage)) return US_EXIT_OK;
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, us_cli_prompts_usage);
  if (rc) return rc;
  if (argc > 1) {
    fprintf(stderr, "understudy: error: prompts: unknown option '%s'\n%s", argv[1],
            us_cli_prompts_usage);
    return US_EXIT_USAGE;
  }
  us_cli_session ss = {.common = &common};
  if ((rc = us_cli_open(&common, &ss.pipeline))) return rc;
  us_pipeline_options opt;
  us_cli_options(&ss, &opt);
  us_prompts_stats s;
  us_err err = {0};
  us_status st = us_pipeline_prompts(ss.pipeline, &opt, &s, &err);
  rc = us_cli_prompts_end(&ss, st, &err, &s);
  us_pipeline_close(ss.pipeline);
  return rc;
}
