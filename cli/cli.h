/* Shared by the command files of the understudy tool: flag parsing, config loading with --set,
 * error printing and exit codes. Only cli/ prints and exits. */
#ifndef US_CLI_CLI_H
#define US_CLI_CLI_H

#include <signal.h>
#include <stdbool.h>

#include "cache/cache.h"
#include "pipeline/config.h"
#include "core/status.h"

/* Exit codes: 0 success; 1 error; 2 usage; 3 budget reached; 130 interrupted (Ctrl-C). */
enum {
  US_EXIT_OK = 0,
  US_EXIT_ERROR = 1,
  US_EXIT_USAGE = 2,
  US_EXIT_BUDGET = 3,
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

/* Loads the config and opens <output>/understudy.db (creating the output folder). Prints the
 * error and returns non-zero on failure. */
int us_cli_open(const us_cli_common *common, us_config *config, us_cache **cache);

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

#endif
