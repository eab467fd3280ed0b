/* understudy: the command-line tool. Dispatches to one file per command (cli/cmd_*.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "student/blas.h"
#include "understudy.h"

typedef struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
    {"run", us_cmd_run, "all stages in order: prompts, label, train, eval, report"},
    {"prompts", us_cmd_prompts, "read data.inputs into the workspace (stable train/test split)"},
    {"label", us_cmd_label, "have the teacher label every prompt (cached; --dry-run to estimate)"},
    {"train", us_cmd_train, "train the student on the teacher's answers"},
    {"eval", us_cmd_eval, "measure the student against the teacher on the test split"},
    {"report", us_cmd_report, "write report.md, report.json and report.html"},
    {"predict", us_cmd_predict, "classify JSONL or text lines with a student model"},
    {"generate", us_cmd_generate, "generate text with a language-model student"},
    {"cache", us_cmd_cache, "cache stats | export FILE | import FILE"},
    {"serve", us_cmd_serve, "serve the cascade as an OpenAI-compatible endpoint"},
    {"export", us_cmd_export, "write a language-model student as GGUF (llama.cpp, Ollama)"},
};

static void usage(FILE *f) {
  fprintf(f,
          "understudy %s: distil an expensive LLM into a small CPU student\n\n"
          "usage: understudy COMMAND [CONFIG] [options]\n\ncommands:\n",
          US_VERSION_STRING);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\noptions for commands that take CONFIG:\n"
          "  --set key.path=value  override a config key (repeatable)\n"
          "  --quiet, --verbose    less or more output on stderr\n"
          "\n`understudy COMMAND --help` lists a command's own options.\n"
          "Exit status: 0 ok, 1 error, 2 usage, 3 budget reached, 4 prompts left unlabelled\n"
          "after their retries, 130 interrupted.\n");
}

int main(int argc, char **argv) {
  /* first, before any output: OpenBLAS may have loaded kernels older than this CPU */
  us_blas_reexec_for_kernels(argv);
  if (argc < 2) {
    usage(stderr);
    return US_EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("understudy %s\n", US_VERSION_STRING);
    const char *replaced = getenv("US_BLAS_REPLACED");
    printf("OpenBLAS: %s kernels (%s)\n", us_blas_core(), us_blas_config());
    if (replaced && getenv("OPENBLAS_CORETYPE"))
      printf(
          "  OpenBLAS alone picked %s kernels for this CPU; understudy chose %s (set "
          "OPENBLAS_CORETYPE to choose yourself, or US_BLAS_KEEP_KERNELS=1 to keep its pick)\n",
          replaced, getenv("OPENBLAS_CORETYPE"));
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0) {
      us_cli_install_signals();
      return commands[i].fn(argc - 1, argv + 1);
    }
  fprintf(stderr, "understudy: error: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return US_EXIT_USAGE;
}
