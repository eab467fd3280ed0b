/* docs/config.md against the config's key table and the modules' parameter tables: every key is
 * documented, every documented key exists, and for every key a module owns the documented
 * default and range are the module's own (so the docs cannot drift from the code). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "core/buf.h"
#include "core/params.h"
#include "pipeline/config.h"

static char *docs;

static int read_docs(void **state) {
  (void)state;
  const char *src = getenv("US_SOURCE_DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/docs/config.md", src ? src : ".");
  size_t len;
  us_err err;
  if (us_read_file(path, 0, &docs, &len, &err) != US_OK) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  return 0;
}

static int free_docs(void **state) {
  (void)state;
  free(docs);
  return 0;
}

/* The cells of the table row documenting key ("| `key` | type | default | range | meaning |"),
 * copied into cells[0..5); false when there is no such row. */
static bool doc_row(const char *key, char cells[5][1024]) {
  char start[256];
  snprintf(start, sizeof start, "\n| `%s` |", key);
  const char *row = strstr(docs, start);
  if (!row) return false;
  row += 2; /* past "\n|" */
  for (int i = 0; i < 5; i++) {
    const char *end = strstr(row, " |");
    if (!end) return false;
    while (*row == ' ') row++;
    size_t n = (size_t)(end - row) < 1023 ? (size_t)(end - row) : 1023;
    memcpy(cells[i], row, n);
    cells[i][n] = '\0';
    row = end + 2;
  }
  return true;
}

/* A number as the docs write it: 1500, 0.95, 3e-4, 1e9, 10^9, 2^53-1, -(2^53-1). */
static bool doc_number(const char *s, const char **end, double *v) {
  while (*s == ' ' || *s == '`') s++;
  bool neg = *s == '-', paren;
  if (neg) s++;
  if ((paren = *s == '(')) s++;
  char *e;
  if (strncmp(s, "2^53-1", 6) == 0) {
    *v = US_PARAM_MAX_SAFE_INT;
    s += 6;
  } else if (strncmp(s, "10^", 3) == 0) {
    *v = pow(10, (double)strtol(s + 3, &e, 10));
    s = e;
  } else {
    *v = strtod(s, &e);
    if (e == s) return false;
    s = e;
  }
  if (paren && *s++ != ')') return false;
  if (neg) *v = -*v;
  *end = s;
  return true;
}

/* Checks a range cell ("[1, 1024]", "(0, 3600]", ">= 0", "at most 4 sizes, each [1, 16384]")
 * against the parameter. */
static void check_range(const char *key, const char *cell, const us_param *p) {
  if (p->kind == US_PARAM_BOOL) return;
  const char *s = cell;
  double lo, hi;
  if (strncmp(s, ">=", 2) == 0 || strncmp(s, "> ", 2) == 0) {
    bool open = s[1] != '=';
    if (!doc_number(s + (open ? 1 : 2), &s, &lo)) fail_msg("%s: cannot read range '%s'", key, cell);
    if (!(p->flags & US_PARAM_NO_MAX) || lo != p->min || open != !!(p->flags & US_PARAM_MIN_OPEN))
      fail_msg("%s: docs say '%s', the module's table says min %g max %g", key, cell, p->min,
               p->max);
    return;
  }
  while (*s && !((*s == '[' || *s == '(') && (s[1] == '-' || (s[1] >= '0' && s[1] <= '9')))) s++;
  if (!*s) fail_msg("%s: no range in '%s'", key, cell);
  bool open = *s == '(';
  if (!doc_number(s + 1, &s, &lo) || strncmp(s, ", ", 2) != 0 || !doc_number(s + 2, &s, &hi) ||
      *s != ']')
    fail_msg("%s: cannot read range '%s'", key, cell);
  if (lo != p->min || hi != p->max || open != !!(p->flags & US_PARAM_MIN_OPEN) ||
      (p->flags & US_PARAM_NO_MAX))
    fail_msg("%s: docs say '%s', the module's table says %c%.17g, %.17g]", key, cell,
             (p->flags & US_PARAM_MIN_OPEN) ? '(' : '[', p->min, p->max);
}

/* Checks a default cell ("`100`", "`1.0`", "`false`", "`[]`", "classify `16`, generate `512`")
 * against the value us_config_defaults gives. */
static void check_default(const char *key, const char *cell, const us_param *p, double value,
                          int count) {
  const char *s = strstr(cell, "classify `");
  s = s ? s + 9 : strchr(cell, '`');
  if (!s) fail_msg("%s: no default in '%s'", key, cell);
  s++;
  if (p->kind == US_PARAM_BOOL) {
    bool doc_true = strncmp(s, "true`", 5) == 0, doc_false = strncmp(s, "false`", 6) == 0;
    if (!(doc_true || doc_false) || doc_true != (value != 0))
      fail_msg("%s: docs say default %s, the module's is %s", key, cell,
               value != 0 ? "true" : "false");
    return;
  }
  if (p->kind == US_PARAM_INTS) {
    if (strncmp(s, "[]`", 3) != 0 || count != 0)
      fail_msg("%s: docs say default %s, the module's has %d items", key, cell, count);
    return;
  }
  double v;
  if (!doc_number(s, &s, &v)) fail_msg("%s: cannot read default '%s'", key, cell);
  if (v != value && fabs(v - value) > 1e-12 * fabs(value))
    fail_msg("%s: docs say default %s, the module's is %.17g", key, cell, value);
}

static void every_key_should_be_documented_with_the_modules_default_and_range(void **state) {
  (void)state;
  us_config c;
  us_config_defaults(&c);
  const us_param *p;
  const char *key;
  int checked = 0;
  for (size_t i = 0; (key = us_config_key(i, &p)); i++) {
    char cells[5][1024];
    if (!doc_row(key, cells)) fail_msg("docs/config.md has no row for the key %s", key);
    if (!p) continue;
    check_range(key, cells[3], p);
    int count = p->kind == US_PARAM_INTS ? (int)us_config_key_value(&c, key, -1) : 0;
    check_default(key, cells[2], p, us_config_key_value(&c, key, 0), count);
    checked++;
  }
  us_config_free(&c);
  print_message("checked the default and range of %d module-owned keys\n", checked);
}

static void every_documented_key_should_exist(void **state) {
  (void)state;
  static const char *const input_keys[] = {"path", "split", "format"};
  for (const char *row = strstr(docs, "\n| `"); row; row = strstr(row + 1, "\n| `")) {
    const char *name = row + 4, *end = strchr(name, '`');
    char key[256];
    size_t n = (size_t)(end - name) < 255 ? (size_t)(end - name) : 255;
    memcpy(key, name, n);
    key[n] = '\0';
    bool known = false;
    for (size_t i = 0; i < 3; i++) known |= strcmp(key, input_keys[i]) == 0;
    const char *k;
    for (size_t i = 0; !known && (k = us_config_key(i, NULL)); i++) known = strcmp(k, key) == 0;
    if (!known) fail_msg("docs/config.md documents %s, which the config does not know", key);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_key_should_be_documented_with_the_modules_default_and_range),
      cmocka_unit_test(every_documented_key_should_exist),
  };
  return cmocka_run_group_tests(tests, read_docs, free_docs);
}
