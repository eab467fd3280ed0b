/* Shared by the command files of the understudy tool: flag parsing, config loading with --set,
 * error printing and exit codes. Only cli/ prints and exits. */
#ifndef US_CLI_CLI_H
#define US_CLI_CLI_H

#include <signal.h>
#include <stdbool.h>

#include "cache/cache.h"
#include "core/status.h"
#include "pipeline/config.h"
#include "pipeline/pipeline.h"

/* Exit codes: 0 success; 1 error; 2 usage; 3 budget reached; 4 prompts left unlabelled after
 * their retries; 130 interrupted (Ctrl-C). */
enum {
  US_EXIT_OK = 0,
  US_EXIT_ERROR = 1,
  US_EXIT_USAGE = 2,
  US_EXIT_BUDGET = 3,
  US_EXIT_UNLABELLED = 4,
  US_EXIT_INTERRUPTED = 130
};

/* Set by the SIGINT/SIGTERM handler that us_cli_install_signals installs. */
extern volatile sig_atomic_t us_cli_stop;
void us_cli_install_signals(void);

/* True (after printing usage to stdout) when argv holds --help or -h. */
bool us_cli_help(int argc, char **argv, const char *usage);

/* Common options of the commands that take a CONFIG: the config path, --set overrides
 * (collected in order), --quiet, --verbose; other flags are left for the command. */
typedef struct us_cli_common {
  const char *config_path;
  const char *overrides[64];
  int n_overrides;
  bool quiet, verbose;
} us_cli_common;

/* Consumes --set K=V / --set=K=V, --quiet, --verbose and the first positional argument (the
 * config) from argv, compacting argv to what is left (argv[0] kept). Returns 0, or prints a
 * usage error and returns US_EXIT_USAGE. */
int us_cli_parse_common(int *argc, char **argv, us_cli_common *common, const char *usage);

/* Opens the pipeline (loads the config, opens <output>/understudy.db creating the output
 * folder). Prints the error and its hint and returns the exit code on failure. */
int us_cli_open(const us_cli_common *common, us_pipeline **p);

/* One command's run of one or more stages: what the printing callbacks need. */
typedef struct us_cli_session {
  const us_cli_common *common;
  us_pipeline *pipeline;
  bool dry_run;     /* label --dry-run */
  bool tty;         /* stderr is a terminal: the label progress line redraws in place */
  double last_line; /* when the last plain progress line was printed */
  bool drawn;       /* a \r progress line is on screen */
  int rc;           /* exit code of the last stage printed */
} us_cli_session;

/* Fills o: the stop flag us_cli_stop, the progress callbacks, user = s. */
void us_cli_options(us_cli_session *s, us_pipeline_options *o);

/* Before a stage: what its command prints first (train: "train: <name>" on stderr). */
void us_cli_label_begin(us_cli_session *s);
void us_cli_train_begin(us_cli_session *s);
/* After a stage: prints its summary and/or its error exactly as its command does; returns
 * (and stores in s->rc) the exit code. */
int us_cli_prompts_end(us_cli_session *s, us_status st, const us_err *err,
                       const us_prompts_stats *sum);
int us_cli_label_end(us_cli_session *s, us_status st, const us_err *err, const us_label_stats *sum);
int us_cli_train_end(us_cli_session *s, us_status st, const us_err *err,
                     const us_train_summary *sum);
int us_cli_eval_end(us_cli_session *s, us_status st, const us_err *err,
                    const us_pipeline_eval_summary *sum);
int us_cli_report_end(us_cli_session *s, us_status st, const us_err *err,
                      const us_pipeline_report_summary *sum);
/* Progress callbacks (user is the us_cli_session). */
void us_cli_label_progress(void *user, const us_label_stats *s);
void us_cli_train_progress(void *user, const char *line);
void us_cli_active_round(void *user, const us_active_round *r);

/* The usage text of `understudy prompts` (run reports flag errors as the prompts stage did). */
extern const char us_cli_prompts_usage[];

/* Prints "understudy: error: <msg>" (and "hint: <hint>" if hint) to stderr; returns the exit
 * code for st. */
int us_cli_fail(us_status st, const us_err *err, const char *hint);
int us_cli_exit_code(us_status st);

/* True when stderr is a terminal (progress lines redraw in place). */
bool us_cli_tty(void);

/* Commands, one file each (cli/cmd_<name>.c). Each gets argv with argv[0] = command name. */
int us_cmd_prompts(int argc, char **argv);
int us_cmd_label(int argc, char **argv);
int us_cmd_cache(int argc, char **argv);
int us_cmd_train(int argc, char **argv);
int us_cmd_eval(int argc, char **argv);
int us_cmd_report(int argc, char **argv);
int us_cmd_run(int argc, char **argv);
int us_cmd_predict(int argc, char **argv);
int us_cmd_generate(int argc, char **argv);
int us_cmd_serve(int argc, char **argv);
int us_cmd_export(int argc, char **argv);

#endif
