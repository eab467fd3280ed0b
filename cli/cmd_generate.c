/* understudy generate: answer one prompt, or a JSONL file of prompts, with a language-model
 * student file. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "student/blas.h"
#include "student/lm.h"

static const char usage_text[] =
    "usage: understudy generate MODEL --prompt TEXT [options]\n"
    "       understudy generate MODEL --input FILE.jsonl [--output FILE.jsonl] [options]\n"
    "\n"
    "  --prompt TEXT       answer one prompt; the answer is printed on stdout\n"
    "  --input FILE        JSONL with a \"prompt\" (or \"text\") field per line; writes JSONL\n"
    "                      {\"prompt\", \"answer\", \"mean_logprob\"} per line\n"
    "  --output FILE       where the batch form writes (default: stdout)\n"
    "  --max-tokens N      answer tokens at most, end token included (default 128)\n"
    "  --temperature T     0 is greedy (default 0)\n"
    "  --top-p P           nucleus sampling mass when sampling (default 1: off)\n"
    "  --seed S            sampling seed (default 1)\n"
    "  --threads N         OpenBLAS threads (default 1: one token's matrix-vector products are\n"
    "                      too small to share, and 1 thread was 4x faster on 2 busy cores)\n"
    "  --no-cache          recompute the whole sequence per token (slow; for comparison)\n"
    "  --trace FILE        with --prompt: also write the greedy decode on token ids as JSON\n"
    "                      {\"input\": [ids], \"output\": [ids], \"logits\": [[step logits]]}\n"
    "                      (for comparing with another runtime, e.g. llama.cpp on the GGUF\n"
    "                      export)\n";

typedef struct gen_opts {
  const char *model, *prompt, *input, *output, *trace;
  int threads;
  us_lm_gen_params gp;
} gen_opts;

static int bad_usage(const char *msg, const char *arg) {
  fprintf(stderr, "understudy: error: %s%s%s\n\n%s", msg, arg ? " " : "", arg ? arg : "",
          usage_text);
  return US_EXIT_USAGE;
}

static int parse_number(const char *flag, const char *v, double lo, double hi, double *out) {
  char *end = NULL;
  double x = v ? strtod(v, &end) : 0.0;
  if (!v || end == v || *end || x < lo || x > hi) {
    fprintf(stderr, "understudy: error: %s expects a number in [%g, %g], found '%s'\n", flag, lo,
            hi, v ? v : "");
    return -1;
  }
  *out = x;
  return 0;
}

static int parse_args(int argc, char **argv, gen_opts *o) {
  memset(o, 0, sizeof *o);
  us_lm_gen_params_defaults(&o->gp);
  o->threads = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    double x;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(usage_text, stdout);
      return -2;
    } else if (!strcmp(a, "--no-cache")) {
      o->gp.no_cache = true;
      continue;
    } else if (a[0] != '-') {
      if (o->model) return bad_usage("unexpected argument", a);
      o->model = a;
      continue;
    }
    if (!v) return bad_usage("missing value for", a);
    i++;
    if (!strcmp(a, "--prompt"))
      o->prompt = v;
    else if (!strcmp(a, "--input"))
      o->input = v;
    else if (!strcmp(a, "--output"))
      o->output = v;
    else if (!strcmp(a, "--trace"))
      o->trace = v;
    else if (!strcmp(a, "--max-tokens")) {
      if (parse_number(a, v, 1, 1e6, &x)) return US_EXIT_USAGE;
      o->gp.max_tokens = (int)x;
    } else if (!strcmp(a, "--temperature")) {
      if (parse_number(a, v, 0, 100, &x)) return US_EXIT_USAGE;
      o->gp.temperature = (float)x;
    } else if (!strcmp(a, "--top-p")) {
      if (parse_number(a, v, 0, 1, &x)) return US_EXIT_USAGE;
      o->gp.top_p = (float)x;
    } else if (!strcmp(a, "--threads")) {
      if (parse_number(a, v, 1, 256, &x)) return US_EXIT_USAGE;
      o->threads = (int)x;
    } else if (!strcmp(a, "--seed")) {
      if (parse_number(a, v, 0, 1.8e19, &x)) return US_EXIT_USAGE;
      o->gp.seed = (uint64_t)x;
    } else {
      return bad_usage("unknown option", a);
    }
  }
  if (!o->model) return bad_usage("missing MODEL", NULL);
  if (!o->prompt == !o->input) return bad_usage("give exactly one of --prompt or --input", NULL);
  if (o->trace && !o->prompt) return bad_usage("--trace needs --prompt", NULL);
  return 0;
}

/* Generates for every line of the input; stops at the first bad line with its number. */
static int run_batch(const us_lm *lm, const gen_opts *o) {
  us_err err;
  char *data = NULL;
  size_t len = 0;
  us_status st = us_read_file(o->input, 0, &data, &len, &err);
  if (st != US_OK) return us_cli_fail(st, &err, NULL);
  FILE *out = o->output ? fopen(o->output, "w") : stdout;
  if (!out) {
    free(data);
    us_err_set(&err, US_ERR_IO, "cannot write %s", o->output);
    return us_cli_fail(US_ERR_IO, &err, NULL);
  }
  int rc = US_EXIT_OK, line_no = 0;
  char *save = NULL;
  for (char *line = strtok_r(data, "\n", &save); line && rc == US_EXIT_OK;
       line = strtok_r(NULL, "\n", &save)) {
    line_no++;
    if (us_cli_stop) {
      rc = US_EXIT_INTERRUPTED;
      break;
    }
    if (strspn(line, " \t\r") == strlen(line)) continue;
    cJSON *j = cJSON_Parse(line);
    cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    if (!cJSON_IsString(p)) p = cJSON_GetObjectItemCaseSensitive(j, "text");
    if (!cJSON_IsString(p)) {
      us_err_set(&err, US_ERR_INPUT,
                 "%s:%d: expected a JSON object with a string \"prompt\" or "
                 "\"text\"",
                 o->input, line_no);
      rc = us_cli_fail(US_ERR_INPUT, &err, NULL);
    } else {
      char *answer = NULL;
      double lp = 0.0;
      st = us_lm_generate(lm, p->valuestring, &o->gp, &answer, &lp, NULL, &err);
      if (st != US_OK) {
        rc = us_cli_fail(st, &err, NULL);
      } else {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "prompt", p->valuestring);
        cJSON_AddStringToObject(r, "answer", answer);
        cJSON_AddNumberToObject(r, "mean_logprob", lp);
        char *s = cJSON_PrintUnformatted(r);
        fprintf(out, "%s\n", s ? s : "{}");
        free(s);
        cJSON_Delete(r);
        free(answer);
      }
    }
    cJSON_Delete(j);
  }
  if (out != stdout && fclose(out) != 0 && rc == US_EXIT_OK) {
    us_err_set(&err, US_ERR_IO, "cannot finish writing %s", o->output);
    rc = us_cli_fail(US_ERR_IO, &err, NULL);
  }
  free(data);
  return rc;
}

/* --trace: the prompt's ids, the greedy continuation on ids and every step's logits. */
static us_status write_trace(const us_lm *lm, const gen_opts *o, us_err *err) {
  int32_t *in = NULL, *out = NULL;
  int n_in = 0, n_out = 0, V = us_lm_get_config(lm)->vocab, max = o->gp.max_tokens;
  float *logits = NULL;
  us_status st = us_lm_prompt_tokens(lm, o->prompt, &in, &n_in, err);
  if (st == US_OK) {
    out = malloc((size_t)max * sizeof *out);
    logits = malloc((size_t)max * (size_t)V * sizeof *logits);
    if (!out || !logits) st = us_err_set(err, US_ERR_NOMEM, "out of memory for --trace");
  }
  if (st == US_OK) st = us_lm_greedy_tokens(lm, in, n_in, max, out, &n_out, logits, err);
  FILE *f = st == US_OK ? fopen(o->trace, "w") : NULL;
  if (st == US_OK && !f) st = us_err_set(err, US_ERR_IO, "cannot write %s", o->trace);
  if (f) {
    fprintf(f, "{\"input\": [");
    for (int i = 0; i < n_in; i++) fprintf(f, "%s%d", i ? ", " : "", (int)in[i]);
    fprintf(f, "],\n \"output\": [");
    for (int i = 0; i < n_out; i++) fprintf(f, "%s%d", i ? ", " : "", (int)out[i]);
    fprintf(f, "],\n \"logits\": [");
    for (int k = 0; k < n_out; k++) {
      fprintf(f, "%s[", k ? ",\n  " : "");
      for (int v = 0; v < V; v++) fprintf(f, "%s%.9g", v ? ", " : "", (double)logits[k * V + v]);
      fprintf(f, "]");
    }
    fprintf(f, "]}\n");
    if (fclose(f) != 0) st = us_err_set(err, US_ERR_IO, "cannot finish writing %s", o->trace);
  }
  free(in);
  free(out);
  free(logits);
  return st;
}

int us_cmd_generate(int argc, char **argv) {
  gen_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc == -2) return US_EXIT_OK;
  if (rc != 0) return rc;
  us_blas_set_threads(o.threads);
  us_lm *lm = NULL;
  us_err err;
  /* a pretrained GGUF runs as it is, with its own tokeniser and chat format (docs/lm.md) */
  size_t ml = strlen(o.model);
  us_status st = ml > 5 && !strcmp(o.model + ml - 5, ".gguf")
                     ? us_lm_import_gguf(o.model, US_LM_MAX_GGUF_CONTEXT, &lm, &err)
                     : us_lm_load(o.model, &lm, &err);
  if (st != US_OK)
    return us_cli_fail(st, &err,
                       "the model file is written by `understudy train` for a "
                       "task.type \"generate\" config");
  if (o.prompt) {
    char *answer = NULL;
    double lp = 0.0;
    st = us_lm_generate(lm, o.prompt, &o.gp, &answer, &lp, NULL, &err);
    if (st == US_OK && o.trace) st = write_trace(lm, &o, &err);
    if (st == US_OK) {
      printf("%s\n", answer);
      rc = US_EXIT_OK;
    } else {
      rc = us_cli_fail(st, &err, NULL);
    }
    free(answer);
  } else {
    rc = run_batch(lm, &o);
  }
  us_lm_free(lm);
  return rc;
}
