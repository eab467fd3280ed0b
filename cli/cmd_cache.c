/* `understudy cache stats|export|import CONFIG [FILE]`: look into the workspace, write its
 * calls as chat-format JSONL, or seed it from logged calls at no cost. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "distill/request.h"

static const char usage[] =
    "usage: understudy cache stats CONFIG\n"
    "       understudy cache export CONFIG FILE\n"
    "       understudy cache import CONFIG FILE\n"
    "\n"
    "  stats   prompts, teacher calls, failures, targets, tokens, money spent and latency\n"
    "  export  write every cached call as chat-format JSONL to FILE\n"
    "          ({\"messages\":[..., {\"role\":\"assistant\",\"content\":...}]} per line)\n"
    "  import  seed the cache from FILE: chat-format lines, or {\"request\":...,\"response\":...}\n"
    "          lines holding OpenAI response objects; keyed with the config's model and\n"
    "          parameters, stored as imported at $0; keys already cached are skipped\n"
    "\n"
    "options:\n"
    "  --set key.path=value  override a config key (repeatable)\n"
    "  --quiet, --verbose    less or more output on stderr\n"
    "  --help                this text\n";

static void print_stats(const char *workspace, const us_cache_stats *s) {
  printf("workspace  %s\n", workspace);
  printf("prompts    %lld (train %lld, test %lld)\n", (long long)s->prompts,
         (long long)s->prompts_train, (long long)s->prompts_test);
  printf("calls      %lld (imported %lld, paid %lld)\n", (long long)s->calls,
         (long long)s->calls_imported, (long long)(s->calls - s->calls_imported));
  printf("failures   %lld\n", (long long)s->failures);
  printf("targets    %lld (unparsed %lld)\n", (long long)s->targets,
         (long long)s->targets_unparsed);
  printf("tokens     %lld prompt, %lld completion\n", (long long)s->prompt_tokens,
         (long long)s->completion_tokens);
  printf("spent      $%.4f\n", s->spent_usd);
  if (s->calls > s->calls_imported)
    printf("latency    p50 %.1f ms, p99 %.1f ms\n", s->latency_p50_ms, s->latency_p99_ms);
  else
    printf("latency    no paid calls yet\n");
}

static int run_stats(const us_config *config, us_cache *cache) {
  us_err err = {0};
  us_cache_stats s;
  us_status st = us_cache_stats_get(cache, &s, &err);
  if (st) return us_cli_fail(st, &err, NULL);
  char path[4096];
  snprintf(path, sizeof path, "%s/understudy.db", config->output);
  print_stats(path, &s);
  return US_EXIT_OK;
}

static int run_export(us_cache *cache, const char *file, bool quiet) {
  us_err err = {0};
  int64_t written = 0;
  us_cache_stats s;
  us_status st = us_cache_export_jsonl(cache, file, &written, &err);
  if (st == US_OK) st = us_cache_stats_get(cache, &s, &err);
  if (st) return us_cli_fail(st, &err, NULL);
  if (!quiet) {
    fprintf(stderr, "exported %lld calls to %s\n", (long long)written, file);
    if (s.calls > written)
      fprintf(stderr, "%lld calls had no answer text and were left out\n",
              (long long)(s.calls - written));
  }
  return US_EXIT_OK;
}

static int run_import(const us_config *config, us_cache *cache, const char *file, bool quiet) {
  us_err err = {0};
  int64_t imported = 0, skipped = 0;
  us_status st = us_cache_import_jsonl(cache, file, us_request_key_for_messages,
                                       (void *)&config->teacher, &imported, &skipped, &err);
  if (st)
    return us_cli_fail(st, &err,
                       st == US_ERR_INPUT ? "each line must be {\"messages\":[...]} ending with "
                                            "the assistant's answer, or "
                                            "{\"request\":{...},\"response\":{...}}; nothing "
                                            "was imported"
                                          : NULL);
  if (!quiet)
    fprintf(stderr, "imported %lld calls from %s (%lld already cached, skipped)\n",
            (long long)imported, file, (long long)skipped);
  return US_EXIT_OK;
}

int us_cmd_cache(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  if (argc < 2 || argv[1][0] == '-') {
    fprintf(stderr, "understudy: error: missing subcommand (stats, export or import)\n%s", usage);
    return US_EXIT_USAGE;
  }
  const char *sub = argv[1];
  bool stats = strcmp(sub, "stats") == 0, export = strcmp(sub, "export") == 0,
       import = strcmp(sub, "import") == 0;
  if (!stats && !export && !import) {
    fprintf(stderr, "understudy: error: unknown cache subcommand '%s'\n%s", sub, usage);
    return US_EXIT_USAGE;
  }
  /* From here argv[0] is the subcommand; parse_common takes CONFIG and the shared flags. */
  argc--;
  argv++;
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, usage);
  if (rc) return rc;
  for (int i = 1; i < argc; i++)
    if (argv[i][0] == '-') {
      fprintf(stderr, "understudy: error: unknown option '%s'\n%s", argv[i], usage);
      return US_EXIT_USAGE;
    }
  int want = stats ? 1 : 2;
  if (argc != want) {
    fprintf(stderr, "understudy: error: cache %s takes %s\n%s", sub,
            stats ? "only CONFIG" : "CONFIG and FILE", usage);
    return US_EXIT_USAGE;
  }
  us_pipeline *p = NULL;
  if ((rc = us_cli_open(&common, &p))) return rc;
  us_cache *cache = us_pipeline_cache(p);
  if (stats)
    rc = run_stats(us_pipeline_config(p), cache);
  else if (export)
    rc = run_export(cache, argv[1], common.quiet);
  else
    rc = run_import(us_pipeline_config(p), cache, argv[1], common.quiet);
  us_pipeline_close(p);
  return rc;
}
