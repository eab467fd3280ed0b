/* understudy train CONFIG [--force]: train the student on the teacher's answers. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: understudy train CONFIG [--force] [--set key=value]... [--quiet]\n"
    "  Trains the student on the teacher's answers for the train split and writes\n"
    "  <output>/student.bin. Does nothing when the model is up to date.\n"
    "  --force   retrain even when the model is up to date\n";

void us_cli_train_progress(void *user, const char *line) {
  const us_cli_session *ss = user;
  if (!ss->common->quiet) fprintf(stderr, "  %s\n", line);
}

void us_cli_train_begin(us_cli_session *ss) {
  if (!ss->common->quiet) fprintf(stderr, "train: %s\n", us_pipeline_config(ss->pipeline)->name);
}

int us_cli_train_end(us_cli_session *ss, us_status st, const us_err *err,
                     const us_train_summary *s) {
  if (st) return ss->rc = us_cli_fail(st, err, us_pipeline_hint(US_STAGE_TRAIN, st));
  if (!ss->common->quiet) {
    if (s->up_to_date)
      printf("train: %s is up to date (%lld examples; --force retrains)\n", s->model_path,
             (long long)s->n_train);
    else if (us_pipeline_config(ss->pipeline)->task.type == US_TASK_CLASSIFY)
      printf(
          "train: %s: trained on %lld examples, %lld held out for early stopping (%lld "
          "trained on the teacher's soft distribution); %d epochs; best validation accuracy "
          "%.2f%%; %.1f s (%.1f CPU s); %lld parameters, %.1f MB\n",
          s->model_path, (long long)s->n_train, (long long)s->n_valid, (long long)s->n_soft,
          s->epochs, 100 * s->best_valid_acc, s->wall_s, s->cpu_s, (long long)s->params,
          (double)s->model_bytes / 1e6);
    else /* the language model has no soft targets or validation accuracy */
      printf(
          "train: %s: trained on %lld examples, %lld held out for early stopping; %d steps; "
          "%.1f s (%.1f CPU s); %lld parameters, %.1f MB\n",
          s->model_path, (long long)s->n_train, (long long)s->n_valid, s->epochs, s->wall_s,
          s->cpu_s, (long long)s->params, (double)s->model_bytes / 1e6);
    if (s->chosen[0]) printf("train: %s\n", s->chosen);
    if (s->skipped_unparsed || s->skipped_missing)
      printf(
          "train: skipped %lld prompts whose teacher answer named no label and %lld with no "
          "answer yet\n",
          (long long)s->skipped_unparsed, (long long)s->skipped_missing);
  }
  return ss->rc = US_EXIT_OK;
}

int us_cmd_train(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, usage);
  if (rc) return rc;
  bool force = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--force")) {
      force = true;
    } else {
      fprintf(stderr, "understudy: error: train: unknown option '%s'\n%s", argv[i], usage);
      return US_EXIT_USAGE;
    }
  }
  us_cli_session ss = {.common = &common};
  if ((rc = us_cli_open(&common, &ss.pipeline))) return rc;
  us_pipeline_options opt;
  us_cli_options(&ss, &opt);
  opt.force = force;
  us_train_summary s;
  us_err err = {0};
  us_cli_train_begin(&ss);
  us_status st = us_pipeline_train(ss.pipeline, &opt, &s, &err);
  rc = us_cli_train_end(&ss, st, &err, &s);
  us_pipeline_close(ss.pipeline);
  return rc;
}
