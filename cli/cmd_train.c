/* understudy train CONFIG [--force]: train the student on the teacher's answers. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"
#include "student/dist.h"

static const char usage[] =
    "usage: understudy train CONFIG [--force] [--set key=value]... [--quiet]\n"
    "  Trains the student on the teacher's answers for the train split and writes\n"
    "  <output>/student.bin. Does nothing when the model is up to date.\n"
    "  --force   retrain even when the model is up to date\n"
    "  Data-parallel (language model): mpirun -np N understudy train CONFIG; rank 0\n"
    "  prints, writes the checkpoints, the model and the workspace (docs/scale.md).\n";

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
    if (s->autotune.autotuned && !s->up_to_date) /* "held out" above is 0: the search folds */
      printf(
          "train: chosen automatically: %s, validation accuracy %.2f%% (%d-fold, %d settings "
          "tried; student.autotune=false trains the settings as given)\n",
          s->autotune.chosen, 100 * s->autotune.valid_acc, s->autotune.folds,
          s->autotune.candidates);
    if (s->chosen[0]) printf("train: %s\n", s->chosen);
    if (s->skipped_unparsed || s->skipped_missing)
      printf(
          "train: skipped %lld prompts whose teacher answer named no label and %lld with no "
          "answer yet\n",
          (long long)s->skipped_unparsed, (long long)s->skipped_missing);
  }
  return ss->rc = US_EXIT_OK;
}

/* The ranks other than 0 under mpirun: warnings only, tagged with the rank. */
static void rank_log(void *user, us_log_level level, const char *msg) {
  (void)user;
  if (level == US_LOG_WARN)
    fprintf(stderr, "understudy: warning (rank %d of %d): %s\n", us_dist_rank(), us_dist_size(),
            msg);
}

/* Under mpirun a rank that fails stops the job (the others may be waiting for it in a
 * collective); after success every rank leaves MPI together. */
static int dist_exit(int rc) {
  if (rc != US_EXIT_OK && us_dist_size() > 1) us_dist_abort(rc);
  us_dist_finalize();
  return rc;
}

/* Rank 0 creates and migrates the workspace before the other ranks open it read-only. */
static int dist_open(const us_cli_common *common, us_pipeline **p) {
  us_err err = {0};
  int rc = us_dist_rank() == 0 ? us_cli_open(common, p) : 0;
  if (!rc && us_dist_barrier(&err) != US_OK) rc = us_cli_fail(err.code, &err, NULL);
  if (!rc && us_dist_rank() > 0) rc = us_cli_open(common, p);
  return rc;
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
  us_err err = {0};
  if (us_dist_init(&err) != US_OK) return us_cli_fail(err.code, &err, NULL);
  if (us_dist_rank() > 0) { /* rank 0 speaks for the job */
    common.quiet = true;
    us_log_set(rank_log, NULL);
  }
  us_cli_session ss = {.common = &common};
  if ((rc = dist_open(&common, &ss.pipeline))) return dist_exit(rc);
  us_pipeline_options opt;
  us_cli_options(&ss, &opt);
  opt.force = force;
  us_train_summary s;
  us_cli_train_begin(&ss);
  us_status st = us_pipeline_train(ss.pipeline, &opt, &s, &err);
  if (st && us_dist_rank() > 0)
    us_err_prefix(&err, "rank %d of %d", us_dist_rank(), us_dist_size());
  rc = us_cli_train_end(&ss, st, &err, &s);
  us_pipeline_close(ss.pipeline);
  return dist_exit(rc);
}
