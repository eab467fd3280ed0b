/* understudy run CONFIG: every stage in order (prompts, label, train, eval, report). Each stage
 * is idempotent, so running again after a crash, Ctrl-C or budget stop resumes. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: understudy run CONFIG [--set key=value]... [--quiet]\n"
    "  Runs prompts, label, train, eval and report in order and prints the headline.\n"
    "  Safe to run again: finished work is kept and nothing is paid for twice.\n";

typedef int (*stage_fn)(int argc, char **argv);

/* Each stage parses (and compacts) its own copy of the arguments. */
static int run_stage(const char *name, stage_fn fn, int argc, char **argv) {
  char *args[160];
  int n = 0;
  args[n++] = (char *)name;
  for (int i = 1; i < argc && n < 159; i++) args[n++] = argv[i];
  args[n] = NULL;
  return fn(n, args);
}

int us_cmd_run(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  if (argc > 158) {
    fprintf(stderr, "understudy: error: run: too many arguments\n");
    return US_EXIT_USAGE;
  }
  static const struct {
    const char *name;
    stage_fn fn;
  } stages[] = {{"prompts", us_cmd_prompts},
                {"label", us_cmd_label},
                {"train", us_cmd_train},
                {"eval", us_cmd_eval},
                {"report", us_cmd_report}};
  for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
    int rc = run_stage(stages[i].name, stages[i].fn, argc, argv);
    fflush(stdout); /* keep stage output in order when stdout is a pipe */
    if (rc) {
      if (rc != US_EXIT_USAGE)
        fprintf(stderr,
                "understudy: run stopped at the %s stage; fix the above and run again "
                "(finished work is kept)\n",
                stages[i].name);
      return rc;
    }
    if (us_cli_stop) return US_EXIT_INTERRUPTED;
  }
  return 0;
}
