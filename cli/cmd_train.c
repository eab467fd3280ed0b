/* understudy train CONFIG [--force]: train the student on the teacher's answers. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "pipeline/train.h"

static const char usage[] =
    "usage: understudy train CONFIG [--force] [--set key=value]... [--quiet]\n"
    "  Trains the student on the teacher's answers for the train split and writes\n"
    "  <output>/student.bin. Does nothing when the model is up to date.\n"
    "  --force   retrain even when the model is up to date\n";

static void print_line(void *user, const char *line) {
  const us_cli_common *common = user;
  if (!common->quiet) fprintf(stderr, "  %s\n", line);
}

int us_cmd_train(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, usage);
  if (rc) return rc;
  us_train_options opt = {.stop = &us_cli_stop, .progress = print_line, .progress_user = &common};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--force")) {
      opt.force = true;
    } else {
      fprintf(stderr, "understudy: error: train: unknown option '%s'\n%s", argv[i], usage);
      return US_EXIT_USAGE;
    }
  }
  us_config c;
  us_cache *cache = NULL;
  if ((rc = us_cli_open(&common, &c, &cache))) return rc;
  us_train_summary s;
  us_err err = {0};
  if (!common.quiet) fprintf(stderr, "train: %s\n", c.name);
  us_status st = us_train_stage(&c, cache, &opt, &s, &err);
  if (st) {
    rc = us_cli_fail(st, &err, NULL);
  } else if (!common.quiet) {
    if (s.up_to_date)
      printf("train: %s is up to date (%lld examples; --force retrains)\n", s.model_path,
             (long long)s.n_train);
    else if (c.task.type == US_TASK_CLASSIFY)
      printf(
          "train: %s: trained on %lld examples, %lld held out for early stopping (%lld "
          "trained on the teacher's soft distribution); %d epochs; best validation accuracy "
          "%.2f%%; %.1f s (%.1f CPU s); %lld parameters, %.1f MB\n",
          s.model_path, (long long)s.n_train, (long long)s.n_valid, (long long)s.n_soft, s.epochs,
          100 * s.best_valid_acc, s.wall_s, s.cpu_s, (long long)s.params,
          (double)s.model_bytes / 1e6);
    else /* the language model has no held-out slice, soft targets or validation accuracy */
      printf("train: %s: trained on %lld examples; %d steps; %.1f s (%.1f CPU s); %lld "
             "parameters, %.1f MB\n",
             s.model_path, (long long)s.n_train, s.epochs, s.wall_s, s.cpu_s, (long long)s.params,
             (double)s.model_bytes / 1e6);
    if (s.skipped_unparsed || s.skipped_missing)
      printf(
          "train: skipped %lld prompts whose teacher answer named no label and %lld with no "
          "answer yet\n",
          (long long)s.skipped_unparsed, (long long)s.skipped_missing);
  }
  us_cache_close(cache);
  us_config_free(&c);
  return rc;
}
