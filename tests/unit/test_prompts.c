/* Prompt building: every loader's edge cases, normalisation, dedupe counting, split stability and
 * idempotent reruns, against a real workspace in a temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four headers above first */
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/utf8.h"
#include "distill/prompts.h"
#include "distill/prompts_int.h"
#include "pipeline/config.h"

/* ---- fixtures: a temporary folder with a config and a workspace ---------------------------- */

typedef struct fixture {
  char dir[256];
  us_config config;
  us_cache *cache;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  if (!f) return -1;
  snprintf(f->dir, sizeof f->dir, "/tmp/us_test_prompts_XXXXXX");
  if (!mkdtemp(f->dir)) return -1;
  us_config_defaults(&f->config);
  f->config.dir = us_strdup(f->dir);
  char db[512];
  snprintf(db, sizeof db, "%s/understudy.db", f->dir);
  us_err err = {0};
  if (us_cache_open(db, &f->cache, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  us_cache_close(f->cache);
  us_config_free(&f->config);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  if (system(cmd) != 0) return -1;
  free(f);
  return 0;
}

/* Writes data (len bytes; -1 for strlen) to dir/name, making folders as needed. */
static void write_file(fixture *f, const char *name, const char *data, long len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", f->dir, name);
  char *slash = strrchr(path, '/');
  *slash = '\0';
  us_err err = {0};
  assert_int_equal(us_mkdirs(path, &err), US_OK);
  *slash = '/';
  FILE *out = fopen(path, "wb"); /* a test input */
  assert_non_null(out);
  size_t n = len < 0 ? strlen(data) : (size_t)len;
  assert_int_equal(fwrite(data, 1, n, out), n);
  fclose(out);
}

/* Appends an input (relative name inside the fixture folder) to the config. */
static void add_input(fixture *f, const char *name, us_split split, const char *format) {
  us_config *c = &f->config;
  us_input *p = realloc(c->data.inputs, (size_t)(c->data.n_inputs + 1) * sizeof *p);
  assert_non_null(p);
  c->data.inputs = p;
  char path[512];
  snprintf(path, sizeof path, "%s/%s", f->dir, name);
  p[c->data.n_inputs].path = us_strdup(path);
  p[c->data.n_inputs].split = split;
  p[c->data.n_inputs].format = us_strdup(format);
  c->data.n_inputs++;
}

static us_status build(fixture *f, us_prompts_stats *s, us_err *err) {
  memset(err, 0, sizeof *err);
  return us_prompts_build(&f->config.task, &f->config.data, f->config.dir, f->cache, s, err);
}

static us_prompt *list_all(fixture *f, size_t *n) {
  us_prompt *p = NULL;
  us_err err = {0};
  assert_int_equal(us_cache_prompts_list(f->cache, -1, &p, n, &err), US_OK);
  return p;
}

static const us_prompt *find_by_source(const us_prompt *p, size_t n, const char *source) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(p[i].source, source) == 0) return &p[i];
  return NULL;
}

/* ---- normalisation and split ---------------------------------------------------------------- */

static void normalize_should_fold_case_and_unicode_spaces(void **state) {
  (void)state;
  char *a = us_prompt_normalize("  Hello\t\tWORLD \r\n again  ");
  assert_string_equal(a, "hello world again");
  /* U+00A0, U+2003 (em space), U+3000 (ideographic space), U+202F count as white space */
  char *b = us_prompt_normalize(
      "\xc2\xa0"
      "Caf\xc3\xa9\xe2\x80\x83\xe2\x80\x83Ol\xc3\xa9\xe3\x80\x80!"
      "\xe2\x80\xaf");
  assert_string_equal(b, "caf\xc3\xa9 ol\xc3\xa9 !");
  /* non-ASCII letters are left alone (É stays É), zero-width space is not white space */
  char *c = us_prompt_normalize("\xc3\x89T\xc3\x89\xe2\x80\x8bX");
  assert_string_equal(c, "\xc3\x89t\xc3\x89\xe2\x80\x8bx");
  char *d = us_prompt_normalize(" \t\xc2\xa0 ");
  assert_string_equal(d, "");
  free(a);
  free(b);
  free(c);
  free(d);
}

static void split_should_respect_fraction_on_ten_thousand_texts(void **state) {
  (void)state;
  const double fractions[] = {0.2, 0.5, 0.05};
  for (size_t k = 0; k < 3; k++) {
    int test = 0;
    for (int i = 0; i < 10000; i++) {
      char text[64];
      snprintf(text, sizeof text, "synthetic prompt number %d", i);
      if (us_prompt_split(text, 7, fractions[k]) == US_SPLIT_TEST) test++;
    }
    /* binomial sd at 0.5 is 50 of 10,000: a tolerance of 2.5% is about 5 sd */
    double got = test / 10000.0;
    if (got < fractions[k] - 0.025 || got > fractions[k] + 0.025)
      fail_msg("fraction %.2f: %d of 10000 in test", fractions[k], test);
  }
  assert_int_equal(us_prompt_split("anything", 1, 0.0), US_SPLIT_TRAIN);
}

static void split_should_depend_on_seed_and_text_only(void **state) {
  (void)state;
  int differ = 0;
  for (int i = 0; i < 200; i++) {
    char text[64];
    snprintf(text, sizeof text, "message %d", i);
    assert_int_equal(us_prompt_split(text, 3, 0.5), us_prompt_split(text, 3, 0.5));
    if (us_prompt_split(text, 3, 0.5) != us_prompt_split(text, 4, 0.5)) differ++;
  }
  assert_true(differ > 50); /* another seed reshuffles about half */
}

/* ---- CSV and TSV ---------------------------------------------------------------------------- */

static void csv_should_handle_quotes_newlines_crlf_and_bom(void **state) {
  fixture *f = *state;
  write_file(f, "in.csv",
             "\xef\xbb\xbftext,label\r\n"
             "\"Hello, world\",greet\r\n"
             "\"two\r\nlines, \"\"quoted\"\"\",multi\r\n"
             "\r\n"
             "plain text,\r\n"
             "last one,end",
             -1);
  add_input(f, "in.csv", US_SPLIT_AUTO, NULL);
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_OK);
  assert_int_equal(s.read, 4);
  assert_int_equal(s.added, 4);
  size_t n;
  us_prompt *p = list_all(f, &n);
  assert_int_equal(n, 4);
  const us_prompt *a = find_by_source(p, n, "in.csv:2");
  assert_non_null(a);
  assert_string_equal(a->text, "Hello, world");
  assert_string_equal(a->gold, "greet");
  const us_prompt *b = find_by_source(p, n, "in.csv:3");
  assert_non_null(b);
  assert_string_equal(b->text, "two\nlines, \"quoted\"");
  assert_string_equal(b->gold, "multi");
  const us_prompt *c = find_by_source(p, n, "in.csv:6");
  assert_non_null(c);
  assert_string_equal(c->text, "plain text");
  assert_null(c->gold);
  const us_prompt *d = find_by_source(p, n, "in.csv:7");
  assert_non_null(d);
  assert_string_equal(d->text, "last one");
  us_prompts_free(p, n);
}

static void csv_should_name_a_missing_column(void **state) {
  fixture *f = *state;
  write_file(f, "data/q.csv", "question,category\nhi,a\n", -1);
  add_input(f, "data/q.csv", US_SPLIT_AUTO, NULL);
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "data/q.csv:1"));
  assert_non_null(strstr(err.msg, "\"text\""));
  assert_non_null(strstr(err.msg, "\"question\", \"category\""));
  /* with the fields named, it loads; a named label column that is absent is an error too */
  free(f->config.data.text_field);
  f->config.data.text_field = us_strdup("question");
  f->config.data.label_field = us_strdup("intent");
  assert_int_equal(build(f, &s, &err), US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "\"intent\" (data.label_field)"));
  free(f->config.data.label_field);
  f->config.data.label_field = us_strdup("category");
  assert_int_equal(build(f, &s, &err), US_OK);
  size_t n;
  us_prompt *p = list_all(f, &n);
  assert_int_equal(n, 1);
  assert_string_equal(p[0].text, "hi");
  assert_string_equal(p[0].gold, "a");
  us_prompts_free(p, n);
}

static void csv_should_report_an_unclosed_quote_with_its_line(void **state) {
  fixture *f = *state;
  write_file(f, "bad.csv", "text\nok\n\"never closed\nstill going\n", -1);
  add_input(f, "bad.csv", US_SPLIT_AUTO, NULL);
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "bad.csv:3"));
  assert_non_null(strstr(err.msg, "never closed"));
  write_file(f, "bad.csv", "text\nok\nhe said \"hi\" there\n", -1);
  assert_int_equal(build(f, &s, &err), US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "bad.csv:3: malformed quoting"));
}

static void tsv_should_split_on_tabs_only(void **state) {
  fixture *f = *state;
  write_file(f, "in.tsv", "id\ttext\tlabel\n1\tcommas, stay, inside\tx\n2\tmy 5\" screen\ty\n", -1);
  add_input(f, "in.tsv", US_SPLIT_AUTO, NULL);
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_OK);
  size_t n;
  us_prompt *p = list_all(f, &n);
  assert_int_equal(n, 2);
  const us_prompt *a = find_by_source(p, n, "in.tsv:2");
  assert_non_null(a);
  assert_string_equal(a->text, "commas, stay, inside");
  assert_string_equal(a->gold, "x");
  assert_string_equal(find_by_source(p, n, "in.tsv:3")->text, "my 5\" screen");
  us_prompts_free(p, n);
}

/* ---- JSONL and text ------------------------------------------------------------------------- */

static void jsonl_should_read_text_and_gold(void **state) {
  fixture *f = *state;
  write_file(f, "m.jsonl",
             "{\"id\":\"a1\",\"text\":\"Where is my \\u00e9 order?\",\"label\":\"refund\"}\n"
             "\n"
             "{\"text\":\"no label here\"}\n"
             "{\"text\":\"numeric label\",\"label\":3}\n",
             -1);
  add_input(f, "m.jsonl", US_SPLIT_AUTO, NULL);
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_OK);
  assert_int_equal(s.read, 3);
  size_t n;
  us_prompt *p = list_all(f, &n);
  assert_int_equal(n, 3);
  const us_prompt *a = find_by_source(p, n, "m.jsonl:1");
  assert_string_equal(a->text, "Where is my \xc3\xa9 order?");
  assert_string_equal(a->gold, "refund");
  assert_null(find_by_source(p, n, "m.jsonl:3")->gold);
  assert_string_equal(find_by_source(p, n, "m.jsonl:4")->gold, "3");
  us_prompts_free(p, n);
}

static void jsonl_should_name_file_and_line_of_bad_records(void **state) {
  fixture *f = *state;
  static const struct {
    const char *data, *expect;
  } cases[] = {
      {"{\"text\":\"ok\"}\n[1,2]\n", "expected a JSON object per line, found an array"},
      {"{\"text\":\"ok\"}\n{\"body\":\"x\"}\n", "no \"text\" field"},
      {"{\"text\":\"ok\"}\n{\"text\": 12}\n", "should be a string, found a number"},
      {"{\"text\":\"ok\"}\n{\"text\": \"unterminated}\n", "not valid JSON"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "bad%zu.jsonl", i);
    write_file(f, name, cases[i].data, -1);
    us_config *c = &f->config;
    for (int k = 0; k < c->data.n_inputs; k++) {
      free(c->data.inputs[k].path);
      free(c->data.inputs[k].format);
    }
    c->data.n_inputs = 0;
    add_input(f, name, US_SPLIT_AUTO, NULL);
    us_prompts_stats s;
    us_err err;
    assert_int_equal(build(f, &s, &err), US_ERR_INPUT);
    char where[64];
    snprintf(where, sizeof where, "%s:2: ", name);
    if (!strstr(err.msg, where) || !strstr(err.msg, cases[i].expect))
      fail_msg("case %zu: got \"%s\"", i, err.msg);
  }
}

static void text_should_take_one_prompt_per_line_skipping_blanks(void **state) {
  fixture *f = *state;
  write_file(f, "lines.txt", "first line\r\n\r\n   \nsecond line\nthird", -1);
  add_input(f, "lines.txt", US_SPLIT_AUTO, "text");
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_OK);
  assert_int_equal(s.read, 3);
  assert_int_equal(s.empty, 0);
  size_t n;
  us_prompt *p = list_all(f, &n);
  assert_int_equal(n, 3);
  assert_string_equal(find_by_source(p, n, "lines.txt:1")->text, "first line");
  assert_string_equal(find_by_source(p, n, "lines.txt:4")->text, "second line");
  assert_string_equal(find_by_source(p, n, "lines.txt:5")->text, "third");
  us_prompts_free(p, n);
}

static void unknown_extension_should_ask_for_a_format(void **state) {
  fixture *f = *state;
  write_file(f, "data.xml", "<a/>", -1);
  add_input(f, "data.xml", US_SPLIT_AUTO, NULL);
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "data.xml"));
  assert_non_null(strstr(err.msg, "\"format\""));
}

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

static void invalid_utf8_should_fail_naming_file_and_line(void **state) {
  fixture *f = *state;
  write_file(f, "u.txt", "fine\nalso fine\nbad \xff byte\n", -1);
  add_input(f, "u.txt", US_SPLIT_AUTO, NULL);
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "u.txt:3"));
  assert_non_null(strstr(err.msg, "UTF-8"));
  /* the failed file's transaction was rolled back: nothing half-loaded */
  int64_t count = -1;
  assert_int_equal(us_cache_prompts_count(f->cache, -1, &count, &err), US_OK);
  assert_int_equal(count, 0);
}

static void invalid_utf8_should_be_repaired_when_configured(void **state) {
  fixture *f = *state;
  /* a stray 0xFF, a truncated 3-byte sequence, an overlong '/' and a UTF-16 surrogate */
  write_file(f, "u.jsonl",
             "{\"text\":\"bad \xff byte\"}\n"
             "{\"text\":\"cut \xe2\x82\"}\n"
             "{\"text\":\"over \xc0\xaf long\"}\n"
             "{\"text\":\"sur \xed\xa0\x80 gate\"}\n"
             "{\"text\":\"good \xe2\x82\xac\"}\n",
             -1);
  add_input(f, "u.jsonl", US_SPLIT_AUTO, NULL);
  f->config.data.repair_utf8 = true;
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_OK);
  assert_int_equal(s.read, 5);
  assert_int_equal(s.repaired, 4);
  size_t n;
  us_prompt *p = list_all(f, &n);
  assert_int_equal(n, 5);
  assert_string_equal(find_by_source(p, n, "u.jsonl:1")->text, "bad \xef\xbf\xbd byte");
  assert_string_equal(find_by_source(p, n, "u.jsonl:2")->text, "cut \xef\xbf\xbd\xef\xbf\xbd");
  assert_string_equal(find_by_source(p, n, "u.jsonl:3")->text,
                      "over \xef\xbf\xbd\xef\xbf\xbd long");
  assert_string_equal(find_by_source(p, n, "u.jsonl:5")->text, "good \xe2\x82\xac");
  for (size_t i = 0; i < n; i++)
    assert_int_equal(us_utf8_invalid_at(p[i].text, strlen(p[i].text)), strlen(p[i].text));
  us_prompts_free(p, n);
}

/* ---- documents ------------------------------------------------------------------------------ */

typedef struct chunks {
  char *items[256];
  int n;
} chunks;

static us_status collect(void *user, const char *chunk, size_t len, int number, us_err *err) {
  (void)err;
  chunks *c = user;
  assert_int_equal(number, c->n + 1);
  assert_int_equal(strlen(chunk), len);
  assert_true(c->n < 256);
  c->items[c->n++] = us_strdup(chunk);
  return US_OK;
}

static void free_chunks(chunks *c) {
  for (int i = 0; i < c->n; i++) free(c->items[i]);
  c->n = 0;
}

static void chunker_should_break_at_headings_and_paragraphs(void **state) {
  (void)state;
  const char *doc =
      "# Guide\n\n## Billing\n\nBills arrive monthly.\n\nPay by card.\n\n"
      "## Roaming\nRoaming works abroad.\n```\n# not a heading\n\ncode\n```\n\n"
      "Setext title\n============\n\nUnder setext.\n";
  chunks c = {0};
  us_err err = {0};
  assert_int_equal(us__chunk_document(doc, strlen(doc), true, 200, collect, &c, &err), US_OK);
  assert_int_equal(c.n, 3);
  /* consecutive headings stay together with the body that follows them */
  assert_string_equal(c.items[0], "# Guide\n\n## Billing\n\nBills arrive monthly.\n\nPay by card.");
  assert_string_equal(c.items[1],
                      "## Roaming\n\nRoaming works abroad.\n```\n# not a heading\n\ncode\n```");
  assert_string_equal(c.items[2], "Setext title\n============\n\nUnder setext.");
  free_chunks(&c);
  /* a tight limit packs whole paragraphs and never splits one that fits */
  const char *paras = "aaaa aaaa\n\nbbbb bbbb\n\ncccc cccc\n\ndddd";
  assert_int_equal(us__chunk_document(paras, strlen(paras), false, 20, collect, &c, &err), US_OK);
  assert_int_equal(c.n, 2);
  assert_string_equal(c.items[0], "aaaa aaaa\n\nbbbb bbbb");
  assert_string_equal(c.items[1], "cccc cccc\n\ndddd");
  free_chunks(&c);
}

static void chunker_should_split_a_huge_paragraph_at_sentences_then_words(void **state) {
  (void)state;
  us_buf doc;
  us_buf_init(&doc, 0);
  us_buf_puts(&doc, "# Title\n\n");
  for (int i = 0; i < 300; i++) us_buf_printf(&doc, "Sentence number %d is here. ", i);
  us_buf_puts(&doc, "\n\n");
  for (int i = 0; i < 120; i++) us_buf_puts(&doc, "word\xc3\xa9 "); /* no sentence end */
  us_buf_puts(&doc, "\n\n");
  for (int i = 0; i < 500; i++) us_buf_puts(&doc, "\xe2\x82\xac"); /* one 500-char word */
  chunks c = {0};
  us_err err = {0};
  const int max = 200;
  assert_int_equal(us__chunk_document(doc.data, doc.len, true, max, collect, &c, &err), US_OK);
  assert_true(c.n > 40);
  size_t sentences = 0, words = 0, euros = 0;
  for (int i = 0; i < c.n; i++) {
    size_t chars = us_utf8_count(c.items[i], strlen(c.items[i]));
    if (chars > (size_t)max) fail_msg("chunk %d has %zu chars", i + 1, chars);
    assert_int_equal(us_utf8_invalid_at(c.items[i], strlen(c.items[i])), strlen(c.items[i]));
    if (strstr(c.items[i], "Sentence")) {
      /* cut at sentence ends only: each chunk starts a sentence and ends one */
      const char *body = strncmp(c.items[i], "# Title\n\n", 9) == 0 ? c.items[i] + 9 : c.items[i];
      assert_int_equal(strncmp(body, "Sentence number ", 16), 0);
      assert_int_equal(c.items[i][strlen(c.items[i]) - 1], '.');
      for (const char *q = c.items[i]; (q = strstr(q, "Sentence")); q++) sentences++;
    }
    if (strstr(c.items[i], "word")) {
      assert_int_equal(strncmp(c.items[i], "word\xc3\xa9", 6), 0);
      for (const char *q = c.items[i]; (q = strstr(q, "word")); q++) words++;
    }
    for (const char *q = c.items[i]; (q = strstr(q, "\xe2\x82\xac")); q += 3) euros++;
  }
  assert_int_equal(strncmp(c.items[0], "# Title\n\nSentence number 0 is here.", 34), 0);
  assert_int_equal(sentences, 300); /* nothing lost, nothing doubled */
  assert_int_equal(words, 120);
  assert_int_equal(euros, 500);
  free_chunks(&c);
  us_buf_free(&doc);
}

static void docs_folder_should_load_sorted_chunks_with_sources(void **state) {
  fixture *f = *state;
  write_file(f, "docs/b.md", "# B\n\nSecond document.\n", -1);
  write_file(f, "docs/a/deep.txt", "Plain # text\n\nstays one paragraph each.\n", -1);
  write_file(f, "docs/.hidden/x.md", "# never read\n", -1);
  write_file(f, "docs/image.png", "\x89PNG", 4);
  add_input(f, "docs", US_SPLIT_AUTO, NULL);
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_OK);
  assert_int_equal(s.read, 2);
  size_t n;
  us_prompt *p = list_all(f, &n);
  assert_int_equal(n, 2);
  assert_string_equal(p[0].source, "docs/a/deep.txt#chunk1"); /* sorted: a/ before b.md */
  assert_string_equal(p[0].text, "Plain # text\n\nstays one paragraph each.");
  assert_string_equal(p[1].source, "docs/b.md#chunk1");
  assert_string_equal(p[1].text, "# B\n\nSecond document.");
  us_prompts_free(p, n);
}

/* ---- dedupe, reruns, split stability -------------------------------------------------------- */

static void duplicates_should_be_dropped_and_counted(void **state) {
  fixture *f = *state;
  write_file(f, "d.txt", "Hello there\n  hello   THERE \nhello\xc2\xa0there\nsomething else\n", -1);
  write_file(f, "d.jsonl", "{\"text\":\"HELLO THERE\"}\n{\"text\":\" \"}\n", -1);
  add_input(f, "d.txt", US_SPLIT_AUTO, NULL);
  add_input(f, "d.jsonl", US_SPLIT_AUTO, NULL);
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_OK);
  assert_int_equal(s.read, 6);
  assert_int_equal(s.added, 2);
  assert_int_equal(s.duplicates, 3);
  assert_int_equal(s.empty, 1);
  assert_int_equal(s.existing, 0);
  assert_int_equal(s.train + s.test, 2);
  size_t n;
  us_prompt *p = list_all(f, &n);
  assert_string_equal(p[0].text, "Hello there"); /* the first one read is kept as loaded */
  us_prompts_free(p, n);
  /* a rerun adds nothing: the same records are now already present */
  assert_int_equal(build(f, &s, &err), US_OK);
  assert_int_equal(s.added, 0);
  assert_int_equal(s.existing, 2);
  assert_int_equal(s.duplicates, 3);
  assert_int_equal(s.train + s.test, 2);
}

static void adding_inputs_should_not_move_existing_prompts(void **state) {
  fixture *f = *state;
  us_buf a, b;
  us_buf_init(&a, 0);
  us_buf_init(&b, 0);
  for (int i = 0; i < 400; i++) us_buf_printf(&a, "customer message %d about billing\n", i);
  for (int i = 0; i < 400; i++) us_buf_printf(&b, "another message %d about roaming\n", i);
  write_file(f, "a.txt", a.data, -1);
  write_file(f, "b.txt", b.data, -1);
  add_input(f, "a.txt", US_SPLIT_AUTO, NULL);
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_OK);
  size_t n1;
  us_prompt *before = list_all(f, &n1);
  assert_int_equal(n1, 400);
  assert_true(s.test > 40 && s.test < 130); /* 0.2 of 400 = 80 */
  add_input(f, "b.txt", US_SPLIT_AUTO, NULL);
  assert_int_equal(build(f, &s, &err), US_OK);
  assert_int_equal(s.added, 400);
  assert_int_equal(s.existing, 400);
  size_t n2;
  us_prompt *after = list_all(f, &n2);
  assert_int_equal(n2, 800);
  for (size_t i = 0; i < n1; i++) {
    assert_string_equal(after[i].hash, before[i].hash);
    assert_int_equal(after[i].split, before[i].split);
    char *norm = us_prompt_normalize(before[i].text);
    assert_int_equal(before[i].split, us_prompt_split(norm, 1, 0.2));
    free(norm);
  }
  us_prompts_free(before, n1);
  us_prompts_free(after, n2);
  us_buf_free(&a);
  us_buf_free(&b);
}

static void pinned_split_should_be_honoured(void **state) {
  fixture *f = *state;
  us_buf a;
  us_buf_init(&a, 0);
  us_buf_puts(&a, "text,label\n");
  for (int i = 0; i < 100; i++) us_buf_printf(&a, "held out %d,x\n", i);
  write_file(f, "test.csv", a.data, -1);
  us_buf_reset(&a);
  us_buf_puts(&a, "text,label\n");
  for (int i = 0; i < 100; i++) us_buf_printf(&a, "training %d,y\n", i);
  write_file(f, "train.csv", a.data, -1);
  us_buf_free(&a);
  add_input(f, "train.csv", US_SPLIT_TRAIN, NULL);
  add_input(f, "test.csv", US_SPLIT_TEST, NULL);
  f->config.data.test_fraction = 0.5;
  us_prompts_stats s;
  us_err err;
  assert_int_equal(build(f, &s, &err), US_OK);
  assert_int_equal(s.train, 100);
  assert_int_equal(s.test, 100);
  size_t n;
  us_prompt *p = list_all(f, &n);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(p[i].split,
                     strncmp(p[i].text, "held", 4) == 0 ? US_SPLIT_TEST : US_SPLIT_TRAIN);
  us_prompts_free(p, n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(normalize_should_fold_case_and_unicode_spaces),
      cmocka_unit_test(split_should_respect_fraction_on_ten_thousand_texts),
      cmocka_unit_test(split_should_depend_on_seed_and_text_only),
      cmocka_unit_test(chunker_should_break_at_headings_and_paragraphs),
      cmocka_unit_test(chunker_should_split_a_huge_paragraph_at_sentences_then_words),
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(csv_should_handle_quotes_newlines_crlf_and_bom),
      T(csv_should_name_a_missing_column),
      T(csv_should_report_an_unclosed_quote_with_its_line),
      T(tsv_should_split_on_tabs_only),
      T(jsonl_should_read_text_and_gold),
      T(jsonl_should_name_file_and_line_of_bad_records),
      T(text_should_take_one_prompt_per_line_skipping_blanks),
      T(unknown_extension_should_ask_for_a_format),
      T(invalid_utf8_should_fail_naming_file_and_line),
      T(invalid_utf8_should_be_repaired_when_configured),
      T(docs_folder_should_load_sorted_chunks_with_sources),
      T(duplicates_should_be_dropped_and_counted),
      T(adding_inputs_should_not_move_existing_prompts),
      T(pinned_split_should_be_honoured),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
