/* CSV and TSV prompt loader over libcsv: the header row names the fields; quoted fields may hold
 * delimiters, quotes and newlines. Lines are fed one at a time so every record and error can
 * name the line it starts on. */
#include <csv.h>
#include <stdlib.h>
#include <string.h>

#include "distill/prompts_int.h"

typedef struct csv_state {
  us__prompt_sink *sink;
  us_err *err;
  us_status st;  /* first error raised inside a callback; callbacks stop once it is set */
  char **fields; /* the record being read */
  size_t n_fields, cap_fields;
  char **header; /* names from the first record */
  size_t n_header;
  int text_col, label_col;
  long record_line;   /* line the current record started on */
  bool pending_start; /* the next non-blank line starts a record */
  bool record_repaired;
  us_buf where;
} csv_state;

static void free_fields(char **fields, size_t n) {
  for (size_t i = 0; i < n; i++) free(fields[i]);
}

static void on_field(void *s, size_t len, void *data) {
  csv_state *cs = data;
  if (cs->st) return;
  if (cs->n_fields == cs->cap_fields) {
    size_t cap = cs->cap_fields ? cs->cap_fields * 2 : 16;
    char **p = realloc(cs->fields, cap * sizeof *p);
    if (!p) goto nomem;
    cs->fields = p;
    cs->cap_fields = cap;
  }
  char *copy = malloc(len + 1);
  if (!copy) goto nomem;
  if (len) memcpy(copy, s, len);
  copy[len] = '\0';
  cs->fields[cs->n_fields++] = copy;
  return;
nomem:
  cs->st =
      us_err_set(cs->err, US_ERR_NOMEM, "%s:%ld: out of memory", cs->sink->source, cs->record_line);
}

static int column_of(const csv_state *cs, const char *name) {
  for (size_t i = 0; i < cs->n_header; i++)
    if (strcmp(cs->header[i], name) == 0) return (int)i;
  return -1;
}

/* The first record names the columns; the text column must be among them. */
static void take_header(csv_state *cs) {
  const us_prompts_params *d = cs->sink->data;
  const char *text_field = d->text_field ? d->text_field : US_PROMPTS_DEFAULT_TEXT_FIELD;
  cs->header = cs->fields;
  cs->n_header = cs->n_fields;
  cs->fields = NULL;
  cs->n_fields = cs->cap_fields = 0;
  cs->text_col = column_of(cs, text_field);
  cs->label_col = column_of(cs, d->label_field ? d->label_field : "label");
  const char *missing = NULL, *key = NULL;
  if (cs->text_col < 0) {
    missing = text_field;
    key = "data.text_field";
  } else if (cs->label_col < 0 && d->label_field) {
    missing = d->label_field;
    key = "data.label_field";
  }
  if (!missing) return;
  us_buf found;
  us_buf_init(&found, 4096);
  for (size_t i = 0; i < cs->n_header; i++)
    us_buf_printf(&found, "%s\"%s\"", i ? ", " : "", cs->header[i]);
  cs->st = us_err_set(cs->err, US_ERR_INPUT,
                      "%s:%ld: no column \"%s\" (%s) in the header row; found %s", cs->sink->source,
                      cs->record_line, missing, key, found.data ? found.data : "no columns");
  us_buf_free(&found);
}

static void on_record(int terminator, void *data) {
  (void)terminator;
  csv_state *cs = data;
  cs->pending_start = true;
  bool repaired = cs->record_repaired;
  cs->record_repaired = false;
  if (cs->st) return;
  if (!cs->header) {
    take_header(cs);
    return;
  }
  if (repaired) cs->sink->stats->repaired++;
  if ((size_t)cs->text_col >= cs->n_fields) {
    cs->st = us_err_set(cs->err, US_ERR_INPUT,
                        "%s:%ld: record has %zu field(s) but the text column \"%s\" is field %d",
                        cs->sink->source, cs->record_line, cs->n_fields, cs->header[cs->text_col],
                        cs->text_col + 1);
    goto done;
  }
  const char *gold = NULL;
  if (cs->label_col >= 0 && (size_t)cs->label_col < cs->n_fields && cs->fields[cs->label_col][0])
    gold = cs->fields[cs->label_col];
  us_buf_reset(&cs->where);
  if (us_buf_printf(&cs->where, "%s:%ld", cs->sink->source, cs->record_line)) {
    cs->st = us_err_set(cs->err, US_ERR_NOMEM, "%s: out of memory", cs->sink->source);
    goto done;
  }
  const char *text = cs->fields[cs->text_col];
  cs->st = us__prompt_emit(cs->sink, text, strlen(text), gold, cs->where.data, cs->err);
done:
  free_fields(cs->fields, cs->n_fields);
  cs->n_fields = 0;
}

static bool is_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t') return false;
  return true;
}

/* Feeds one line (and the newline getline took off) to the parser. */
static us_status feed_line(struct csv_parser *p, csv_state *cs, const char *line, size_t len,
                           long number) {
  if (cs->pending_start && !is_blank(line, len)) {
    cs->record_line = number;
    cs->pending_start = false;
  }
  if (csv_parse(p, line, len, on_field, on_record, cs) != len ||
      csv_parse(p, "\n", 1, on_field, on_record, cs) != 1) {
    if (!cs->st && csv_error(p) == CSV_EPARSE)
      cs->st = us_err_set(cs->err, US_ERR_INPUT,
                          "%s:%ld: malformed quoting (a \" inside an unquoted field, or text "
                          "after a closing \"); quote the whole field and double the quotes "
                          "inside it",
                          cs->sink->source, number);
    else if (!cs->st)
      cs->st = us_err_set(cs->err, US_ERR_NOMEM, "%s:%ld: %s", cs->sink->source, number,
                          csv_strerror(csv_error(p)));
  }
  return cs->st;
}

us_status us__load_csv(us__prompt_sink *sink, const char *path, char delimiter, us_err *err) {
  csv_state cs = {.sink = sink, .err = err, .pending_start = true, .record_line = 1};
  us_buf_init(&cs.where, 0);
  us_buf scratch;
  us_buf_init(&scratch, 0);
  struct csv_parser parser;
  /* CSV: strict (RFC 4180) quoting, since a lenient parser would let one stray or unclosed
   * quote swallow every record after it without a word. TSV writers mostly leave quotes in
   * fields as they are ('5" screen'), so there a quote inside a field is just a character. */
  unsigned char options = delimiter == ',' ? CSV_STRICT | CSV_STRICT_FINI : CSV_STRICT_FINI;
  if (csv_init(&parser, options) != 0)
    return us_err_set(err, US_ERR_NOMEM, "%s: out of memory", sink->source);
  csv_set_delim(&parser, (unsigned char)delimiter);
  us__line_reader r;
  us_status st = us__lines_open(&r, path, sink->source, err);
  if (st) goto fail;
  char *line;
  size_t len;
  int got;
  while ((got = us__lines_next(&r, sink->source, &line, &len, err)) > 0) {
    bool repaired;
    st =
        us__line_checked(sink->data, sink->source, r.number, &line, &len, &scratch, &repaired, err);
    if (st) goto fail;
    cs.record_repaired |= repaired;
    st = feed_line(&parser, &cs, line, len, r.number);
    if (st) goto fail;
  }
  if (got < 0) {
    st = err ? err->code : US_ERR_IO;
    goto fail;
  }
  if (csv_fini(&parser, on_field, on_record, &cs) != 0 && !cs.st)
    cs.st = us_err_set(err, US_ERR_INPUT, "%s:%ld: quoted field never closed (a missing \")",
                       sink->source, cs.record_line);
  st = cs.st;
  if (!st && !cs.header)
    st = us_err_set(err, US_ERR_INPUT, "%s: empty file (expected a header row naming the columns)",
                    sink->source);
fail:
  csv_free(&parser);
  us__lines_close(&r);
  free_fields(cs.fields, cs.n_fields);
  free(cs.fields);
  free_fields(cs.header, cs.n_header);
  free(cs.header);
  us_buf_free(&cs.where);
  us_buf_free(&scratch);
  return st;
}
