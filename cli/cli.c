/* Helpers shared by the command files: options, config and workspace opening, errors. */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

volatile sig_atomic_t us_cli_stop = 0;

static void on_signal(int sig) {
  (void)sig;
  us_cli_stop = 1;
}

void us_cli_install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static void log_to_stderr(void *user, us_log_level level, const char *msg) {
  const us_cli_common *common = user;
  if (level == US_LOG_DEBUG && !(common && common->verbose)) return;
  if (level == US_LOG_INFO && common && common->quiet) return;
  fprintf(stderr, "%s%s\n", level == US_LOG_WARN ? "understudy: warning: " : "", msg);
}

bool us_cli_help(int argc, char **argv, const char *usage) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage, stdout);
      return true;
    }
  return false;
}

int us_cli_parse_common(int *argc, char **argv, us_cli_common *common, const char *usage) {
  memset(common, 0, sizeof *common);
  int out = 1;
  for (int i = 1; i < *argc; i++) {
    const char *a = argv[i];
    const char *set = NULL;
    if (strcmp(a, "--set") == 0) {
      if (i + 1 >= *argc) {
        fprintf(stderr, "understudy: error: --set needs key.path=value\n%s", usage);
        return US_EXIT_USAGE;
      }
      set = argv[++i];
    } else if (strncmp(a, "--set=", 6) == 0) {
      set = a + 6;
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
      common->quiet = true;
      continue;
    } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
      common->verbose = true;
      continue;
    } else if (a[0] != '-' && !common->config_path) {
      common->config_path = a;
      continue;
    } else {
      argv[out++] = argv[i];
      continue;
    }
    if (!strchr(set, '=')) {
      fprintf(stderr, "understudy: error: --set %s: expected key.path=value\n", set);
      return US_EXIT_USAGE;
    }
    if (common->n_overrides >= 64) {
      fprintf(stderr, "understudy: error: more than 64 --set overrides\n");
      return US_EXIT_USAGE;
    }
    common->overrides[common->n_overrides++] = set;
  }
  *argc = out;
  argv[out] = NULL;
  if (!common->config_path) {
    fprintf(stderr, "understudy: error: missing CONFIG (a JSON file; see docs/config.md)\n%s",
            usage);
    return US_EXIT_USAGE;
  }
  static us_cli_common saved;
  saved = *common;
  us_log_set(log_to_stderr, &saved);
  return 0;
}

int us_cli_open(const us_cli_common *common, us_pipeline **p) {
  us_err err = {0};
  us_pipeline_stage at = US_STAGE_CONFIG;
  us_status st = us_pipeline_open_at(common->config_path, common->overrides, common->n_overrides, p,
                                     &at, &err);
  return st ? us_cli_fail(st, &err, us_pipeline_hint(at, st)) : 0;
}

void us_cli_options(us_cli_session *s, us_pipeline_options *o) {
  us_pipeline_options_init(o);
  o->stop = &us_cli_stop;
  o->dry_run = s->dry_run;
  o->user = s;
  o->label_progress = us_cli_label_progress;
  o->train_progress = us_cli_train_progress;
}

int us_cli_exit_code(us_status st) {
  switch (st) {
    case US_OK:
      return US_EXIT_OK;
    case US_ERR_BUDGET:
      return US_EXIT_BUDGET;
    case US_ERR_UNLABELLED:
      return US_EXIT_UNLABELLED;
    case US_ERR_INTERRUPTED:
      return US_EXIT_INTERRUPTED;
    case US_ERR_USAGE:
      return US_EXIT_USAGE;
    default:
      return US_EXIT_ERROR;
  }
}

int us_cli_fail(us_status st, const us_err *err, const char *hint) {
  const char *msg = err && err->msg[0] ? err->msg : us_status_str(st);
  if (st == US_ERR_INTERRUPTED)
    fprintf(stderr, "understudy: %s\n", msg);
  else
    fprintf(stderr, "understudy: error: %s\n", msg);
  if (hint) fprintf(stderr, "hint: %s\n", hint);
  return us_cli_exit_code(st);
}

bool us_cli_tty(void) {
  return isatty(STDERR_FILENO) != 0;
}
