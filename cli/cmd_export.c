/* understudy export: a language-model student file as GGUF, for llama.cpp, Ollama and LM Studio
 * (docs/gguf.md). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "student/lm_gguf.h"

static const char usage_text[] =
    "usage: understudy export MODEL --format gguf [--type f32|f16|bf16|q8_0] -o FILE.gguf\n"
    "\n"
    "  MODEL               a language-model student (task.type \"generate\"), as written by\n"
    "                      `understudy train`\n"
    "  --format gguf       the output format (the only one so far)\n"
    "  --type T            matrices as f32 (default: exact), f16, bf16 or q8_0 (8-bit, about\n"
    "                      a quarter of f32); norm weights stay f32\n"
    "  --name NAME         general.name inside the file (default \"understudy student\")\n"
    "  -o, --output FILE   where to write (replaced atomically)\n"
    "\n"
    "Run it with llama.cpp (`llama-cli -m FILE.gguf`) or Ollama (README: \"Run your student in\n"
    "llama.cpp / Ollama\").\n";

static int bad_usage(const char *msg, const char *arg) {
  fprintf(stderr, "understudy: error: %s%s%s\n\n%s", msg, arg ? " " : "", arg ? arg : "",
          usage_text);
  return US_EXIT_USAGE;
}

static int parse_type(const char *v, uint32_t *dtype) {
  static const struct {
    const char *name;
    uint32_t dtype;
  } types[] = {
      {"f32", US_GGUF_F32}, {"f16", US_GGUF_F16}, {"bf16", US_GGUF_BF16}, {"q8_0", US_GGUF_Q8_0}};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp(v, types[i].name) == 0) {
      *dtype = types[i].dtype;
      return 0;
    }
  return -1;
}

int us_cmd_export(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage_text)) return US_EXIT_OK;
  const char *model = NULL, *format = NULL, *output = NULL;
  us_lm_gguf_params gp;
  us_lm_gguf_params_defaults(&gp);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (a[0] != '-') {
      if (model) return bad_usage("unexpected argument", a);
      model = a;
      continue;
    }
    if (!v) return bad_usage("missing value for", a);
    i++;
    if (!strcmp(a, "--format"))
      format = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
      output = v;
    else if (!strcmp(a, "--name"))
      gp.name = v;
    else if (!strcmp(a, "--type")) {
      if (parse_type(v, &gp.dtype) != 0)
        return bad_usage("--type expects f32, f16, bf16 or q8_0, found", v);
    } else {
      return bad_usage("unknown option", a);
    }
  }
  if (!model) return bad_usage("missing MODEL", NULL);
  if (!format || strcmp(format, "gguf") != 0)
    return bad_usage("--format expects gguf, found", format ? format : "nothing");
  if (!output) return bad_usage("missing -o FILE.gguf", NULL);
  us_lm *lm = NULL;
  us_err err;
  us_status st = us_lm_load(model, &lm, &err);
  if (st != US_OK)
    return us_cli_fail(st, &err,
                       "export takes a language-model student (task.type \"generate\"); "
                       "classifier students have no GGUF form");
  us_lm_gguf_report r;
  st = us_lm_export_gguf(lm, output, &gp, &r, &err);
  us_lm_free(lm);
  if (st != US_OK) return us_cli_fail(st, &err, NULL);
  fprintf(stderr, "export: %s: %d tensors, %.1f MB", output, r.n_tensors, (double)r.bytes / 1e6);
  if (r.n_fallback_f16)
    fprintf(stderr, "; %d matrices kept as f16 (rows not a multiple of 32 for q8_0)",
            r.n_fallback_f16);
  if (r.n_renamed)
    fprintf(stderr,
            "; %d tokens repeat an earlier token's bytes and are written as unused tokens "
            "(docs/gguf.md)",
            r.n_renamed);
  fprintf(stderr, "\n");
  return US_EXIT_OK;
}
