/* `understudy predict MODEL`: classifies JSONL ({"text": ...}) or plain text lines with a
 * classifier student and writes one JSON object per input line. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "include/understudy.h"

static const char predict_usage[] =
    "usage: understudy predict MODEL [--input FILE] [--top-k K]\n"
    "\n"
    "Classifies each input line with the classifier student MODEL (e.g. out/demo/student.bin).\n"
    "A line starting with '{' is JSON and must have a string field \"text\"; any other non-empty\n"
    "line is the text itself. Blank lines are skipped. Output, one JSON object per line:\n"
    "  {\"label\": L, \"prob\": P, \"top\": [{\"label\": L, \"prob\": P}, ...]}\n"
    "\n"
    "options:\n"
    "  --input FILE  read from FILE (default: standard input)\n"
    "  --top-k K     how many labels in \"top\" (default 1)\n"
    "  --help        this text\n";

/* The text of one input line: the line itself, or its JSON "text" field (into *json). */
static const char *line_text(char *line, cJSON **json, const char *name, long lineno,
                             us_err *err) {
  const char *s = line;
  while (*s == ' ' || *s == '\t') s++;
  if (*s != '{') return line;
  *json = cJSON_Parse(s);
  if (!*json) {
    us_err_set(err, US_ERR_INPUT, "%s line %ld: not valid JSON", name, lineno);
    return NULL;
  }
  const cJSON *text = cJSON_GetObjectItemCaseSensitive(*json, "text");
  if (!cJSON_IsString(text)) {
    us_err_set(err, US_ERR_INPUT, "%s line %ld: expected a string field \"text\"", name, lineno);
    return NULL;
  }
  return text->valuestring;
}

/* Six decimals are plenty for a probability and keep the lines short. */
static double round6(float p) { return round((double)p * 1e6) / 1e6; }

static us_status print_result(const us_prediction *top, int n) {
  cJSON *o = cJSON_CreateObject(), *arr = cJSON_CreateArray();
  if (!o || !arr) goto nomem;
  cJSON_AddStringToObject(o, "label", top[0].label);
  cJSON_AddNumberToObject(o, "prob", round6(top[0].prob));
  for (int i = 0; i < n; i++) {
    cJSON *t = cJSON_CreateObject();
    if (!t) goto nomem;
    cJSON_AddStringToObject(t, "label", top[i].label);
    cJSON_AddNumberToObject(t, "prob", round6(top[i].prob));
    cJSON_AddItemToArray(arr, t);
  }
  cJSON_AddItemToObject(o, "top", arr);
  arr = NULL;
  char *s = cJSON_PrintUnformatted(o);
  if (!s) goto nomem;
  puts(s);
  free(s);
  cJSON_Delete(o);
  return US_OK;
nomem:
  cJSON_Delete(arr);
  cJSON_Delete(o);
  return US_ERR_NOMEM;
}

/* flush: answer each line as it arrives (a pipe from another program), not at the end. */
static us_status predict_stream(const us_model *m, FILE *in, const char *name, int top_k,
                                bool flush, us_prediction *top, us_err *err) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long lineno = 0;
  us_status st = US_OK;
  while (st == US_OK && !us_cli_stop && (len = getline(&line, &cap, in)) >= 0) {
    lineno++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    if (strspn(line, " \t") == (size_t)len) continue;
    cJSON *json = NULL;
    const char *text = line_text(line, &json, name, lineno, err);
    int n = 0;
    if (!text) st = US_ERR_INPUT;
    else if ((st = us_model_classify(m, text, top_k, top, &n, err)) != US_OK)
      us_err_prefix(err, "%s line %ld", name, lineno);
    else if ((st = print_result(top, n)) != US_OK)
      us_err_set(err, st, "out of memory writing the result of %s line %ld", name, lineno);
    else if (flush)
      fflush(stdout);
    cJSON_Delete(json);
  }
  if (st == US_OK && ferror(in))
    st = us_err_set(err, US_ERR_IO, "cannot read %s: %s", name, strerror(errno));
  if (st == US_OK && us_cli_stop) st = us_err_set(err, US_ERR_INTERRUPTED, "interrupted");
  free(line);
  return st;
}

int us_cmd_predict(int argc, char **argv) {
  const char *model_path = NULL, *input = NULL;
  int top_k = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(predict_usage, stdout);
      return US_EXIT_OK;
    } else if (strcmp(argv[i], "--input") == 0 && i + 1 < argc) {
      input = argv[++i];
    } else if (strcmp(argv[i], "--top-k") == 0 && i + 1 < argc) {
      char *end;
      long k = strtol(argv[++i], &end, 10);
      if (*end || k < 1 || k > 100000) {
        fprintf(stderr, "understudy: error: --top-k wants a positive integer, got '%s'\n%s",
                argv[i], predict_usage);
        return US_EXIT_USAGE;
      }
      top_k = (int)k;
    } else if (argv[i][0] != '-' && !model_path) {
      model_path = argv[i];
    } else {
      fprintf(stderr, "understudy: error: unexpected argument '%s'\n%s", argv[i], predict_usage);
      return US_EXIT_USAGE;
    }
  }
  if (!model_path) {
    fprintf(stderr, "understudy: error: predict needs a MODEL file\n%s", predict_usage);
    return US_EXIT_USAGE;
  }
  us_err err;
  us_model *m = NULL;
  us_status st = us_model_load(model_path, &m, &err);
  if (st != US_OK) return us_cli_fail(st, &err, "is it a student.bin written by `understudy train`?");
  FILE *in = input ? fopen(input, "r") : stdin;
  if (!in) {
    us_err_set(&err, US_ERR_IO, "cannot open %s: %s", input, strerror(errno));
    us_model_free(m);
    return us_cli_fail(US_ERR_IO, &err, NULL);
  }
  int k = top_k < us_model_n_labels(m) ? top_k : us_model_n_labels(m);
  us_prediction *top = malloc((size_t)k * sizeof *top);
  if (!top) st = us_err_set(&err, US_ERR_NOMEM, "out of memory");
  else st = predict_stream(m, in, input ? input : "stdin", top_k, in == stdin, top, &err);
  if (in != stdin) fclose(in);
  free(top);
  us_model_free(m);
  return st == US_OK ? US_EXIT_OK : us_cli_fail(st, &err, NULL);
}
