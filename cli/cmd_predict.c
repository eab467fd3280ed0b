/* `understudy predict MODEL`: classifies JSONL ({"text": ...}) or plain text lines with a
 * classifier student and writes one JSON object per input line. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/json.h"
#include "understudy.h"

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
static const char *line_text(char *line, cJSON **json, const char *name, long lineno, us_err *err) {
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

/* ---- output, written by hand into one reused us_buf (no allocation per line) ---- */

/* A probability rounded to six decimals, printed as cJSON prints that double ("%1.15g", or the
 * integer for 0 and 1): "0.2772", "1", "9.9e-05". Hand-written for k/10^6 >= 10^-4, where %g
 * prints plain decimals; snprintf for the rest. Writes at most 32 bytes; returns the length. */
static int format_prob(float p, char *w) {
  double k = round((double)p * 1e6);
  if (!isfinite(k)) return (int)(memcpy(w, "null", 4), 4);
  if (k == 0) return (int)(memcpy(w, "0", 1), 1);
  if (k == 1e6) return (int)(memcpy(w, "1", 1), 1);
  if (k < 100 || k > 1e6) return snprintf(w, 32, "%1.15g", k / 1e6);
  long v = (long)k;
  char d[6];
  for (int i = 5; i >= 0; i--, v /= 10) d[i] = (char)('0' + v % 10);
  int n = 6;
  while (d[n - 1] == '0') n--;
  w[0] = '0';
  w[1] = '.';
  memcpy(w + 2, d, (size_t)n);
  return n + 2;
}

/* Appends {"label":L,"prob":P,"top":[{"label":L,"prob":P},...]} and a newline. The model's
 * labels as JSON literals are quoted->data + at[i], at[i + 1] - at[i] bytes for label i. */
static us_status print_result(us_buf *o, const us_buf *quoted, const size_t *at,
                              const us_prediction *top, int n) {
  char num[32];
  for (int i = -1; i < n; i++) {
    const us_prediction *t = &top[i < 0 ? 0 : i];
    size_t ql = at[t->index + 1] - at[t->index];
    int nl = format_prob(t->prob, num);
    if (us_buf_reserve(o, ql + (size_t)nl + 40) != US_OK) return US_ERR_NOMEM;
    /* room reserved: the appends below cannot fail */
    us_buf_puts(o, i < 0 ? "{\"label\":" : i == 0 ? "\"top\":[{\"label\":" : ",{\"label\":");
    us_buf_append(o, quoted->data + at[t->index], ql);
    us_buf_puts(o, ",\"prob\":");
    us_buf_append(o, num, (size_t)nl);
    us_buf_puts(o, i < 0 ? "," : "}");
  }
  return us_buf_puts(o, "]}\n");
}

/* ---- input: lines read with read(2) into one reused buffer ---- */

typedef struct reader {
  int fd;
  char *buf;
  size_t cap, start, end; /* unread bytes are buf[start..end) */
  bool eof;
} reader;

/* Flushes what is written before read(2) could block, so a program that sends one line and
 * waits for its answer gets it at once, while a file or a fast producer is answered in large
 * writes. Returns the next line (newline removed, NUL-terminated, *len bytes), NULL at the end
 * of input, on a read error (errno set) or when interrupted. */
static char *next_line(reader *r, size_t *len) {
  for (;;) {
    char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
    if (nl || (r->eof && r->end > r->start)) {
      char *line = r->buf + r->start;
      if (!nl) { /* the last line has no newline: one byte of room is kept for its NUL */
        nl = r->buf + r->end;
        r->end++;
      }
      *nl = '\0';
      *len = (size_t)(nl - line);
      r->start = (size_t)(nl - r->buf) + 1;
      return line;
    }
    if (r->eof) return NULL;
    if (r->start > 0) { /* keep the partial line at the front */
      memmove(r->buf, r->buf + r->start, r->end - r->start);
      r->end -= r->start;
      r->start = 0;
    }
    if (r->cap - r->end < 2) { /* a line longer than the buffer */
      char *b = realloc(r->buf, r->cap * 2);
      if (!b) {
        errno = ENOMEM;
        return NULL;
      }
      r->buf = b;
      r->cap *= 2;
    }
    if (fflush(stdout) != 0) return NULL;
    ssize_t got = read(r->fd, r->buf + r->end, r->cap - r->end - 1);
    if (got < 0 && errno == EINTR && !us_cli_stop) continue;
    if (got < 0) return NULL;
    if (got == 0) r->eof = true;
    r->end += (size_t)got;
  }
}

static us_status predict_stream(const us_model *m, int fd, const char *name, int top_k,
                                us_prediction *top, us_err *err) {
  us_status st = US_OK;
  int n_labels = us_model_n_labels(m);
  us_buf quoted, o; /* the labels as JSON literals, one after the other; one output line */
  us_buf_init(&quoted, 0);
  us_buf_init(&o, 0);
  size_t *at = malloc(((size_t)n_labels + 1) * sizeof *at);
  reader r = {fd, malloc(65536), 65536, 0, 0, false};
  if (!at || !r.buf) goto nomem;
  for (int i = 0; i < n_labels; i++) {
    at[i] = quoted.len;
    if (us_json_quote(&quoted, us_model_label(m, i)) != US_OK) goto nomem;
  }
  at[n_labels] = quoted.len;
  long lineno = 0;
  char *line;
  size_t len;
  errno = 0;
  while (!us_cli_stop && (line = next_line(&r, &len)) != NULL) {
    lineno++;
    while (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
    if (strspn(line, " \t") == len) continue;
    cJSON *json = NULL;
    const char *text = line_text(line, &json, name, lineno, err);
    int n = 0;
    us_buf_reset(&o);
    if (!text)
      st = US_ERR_INPUT;
    else if ((st = us_model_classify(m, text, top_k, top, &n, err)) != US_OK)
      us_err_prefix(err, "%s line %ld", name, lineno);
    else if (print_result(&o, &quoted, at, top, n) != US_OK)
      st = us_err_set(err, US_ERR_NOMEM, "out of memory writing the result of %s line %ld", name,
                      lineno);
    else if (fwrite(o.data, 1, o.len, stdout) != o.len)
      st = us_err_set(err, US_ERR_IO, "cannot write the result of %s line %ld: %s", name, lineno,
                      strerror(errno));
    cJSON_Delete(json);
    if (st != US_OK) break;
    errno = 0;
  }
  if (st == US_OK && us_cli_stop)
    st = us_err_set(err, US_ERR_INTERRUPTED, "interrupted");
  else if (st == US_OK && errno == ENOMEM)
    goto nomem;
  else if (st == US_OK && ferror(stdout))
    st = us_err_set(err, US_ERR_IO, "cannot write the results: %s", strerror(errno));
  else if (st == US_OK && errno != 0)
    st = us_err_set(err, US_ERR_IO, "cannot read %s: %s", name, strerror(errno));
  if (st == US_OK && fflush(stdout) != 0)
    st = us_err_set(err, US_ERR_IO, "cannot write the results: %s", strerror(errno));
  goto done;
nomem:
  st = us_err_set(err, US_ERR_NOMEM, "out of memory reading %s", name);
done:
  us_buf_free(&quoted);
  us_buf_free(&o);
  free(at);
  free(r.buf);
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
  if (st != US_OK)
    return us_cli_fail(st, &err, "is it a student.bin written by `understudy train`?");
  /* the input, read line by line and never written */
  int fd = input ? open(input, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
  if (fd < 0) {
    us_err_set(&err, US_ERR_IO, "cannot open %s: %s", input, strerror(errno));
    us_model_free(m);
    return us_cli_fail(US_ERR_IO, &err, NULL);
  }
  int k = top_k < us_model_n_labels(m) ? top_k : us_model_n_labels(m);
  us_prediction *top = malloc((size_t)k * sizeof *top);
  if (!top)
    st = us_err_set(&err, US_ERR_NOMEM, "out of memory");
  else
    st = predict_stream(m, fd, input ? input : "stdin", top_k, top, &err);
  if (input) close(fd);
  free(top);
  us_model_free(m);
  return st == US_OK ? US_EXIT_OK : us_cli_fail(st, &err, NULL);
}
