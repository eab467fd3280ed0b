/* Parameter tables: how a module states, once, the name, type, range and meaning of every
 * numeric setting of its *_params struct. The module's *_check() runs us_params_check over its
 * table (plus its own cross-field rules); the config loader (pipeline/config) maps JSON keys onto
 * table entries and reads values against the same ranges; docs/config.md is tested against the
 * tables. So a range or a default lives in exactly one place: the module's table and its
 * *_defaults().
 *
 * Messages name the field first ("hidden[0]: expected an integer in [1, 16384], found 20000"),
 * so a caller that knows the field under another name (a config key) can re-label it. */
#ifndef US_CORE_PARAMS_H
#define US_CORE_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

typedef enum {
  US_PARAM_INT,    /* int */
  US_PARAM_DOUBLE, /* double */
  US_PARAM_U64,    /* uint64_t */
  US_PARAM_BOOL,   /* bool (no range) */
  US_PARAM_INTS    /* int array at offset, its length (an int) at count_offset */
} us_param_kind;

/* The largest integer a JSON number (a double) holds exactly, 2^53 - 1: the top of seed ranges. */
#define US_PARAM_MAX_SAFE_INT 9007199254740991.0

enum {
  US_PARAM_MIN_OPEN = 1, /* the minimum itself is excluded */
  US_PARAM_NO_MAX = 2    /* no upper bound (max ignored) */
};

typedef struct us_param {
  const char *name; /* the field's name in the struct, e.g. "hidden" */
  us_param_kind kind;
  size_t offset;       /* of the field in the module's params struct */
  double min, max;     /* range of the value (of each item for US_PARAM_INTS) */
  unsigned flags;      /* US_PARAM_* */
  size_t count_offset; /* US_PARAM_INTS: offset of the item count */
  int max_count;       /* US_PARAM_INTS: most items */
  const char *doc;     /* one line: what it does (docs/config.md says more) */
} us_param;

/* Table entry helpers: US_PARAM(type, field, kind, min, max, flags, doc). */
#define US_PARAM(type, field, kind, lo, hi, fl, doc) \
  { #field, kind, offsetof(type, field), lo, hi, fl, 0, 0, doc }
#define US_PARAM_LIST(type, field, count_field, most, lo, hi, doc)                              \
  {                                                                                             \
#field, US_PARAM_INTS, offsetof(type, field), lo, hi, 0, offsetof(type, count_field), most, \
        doc                                                                                     \
  }

/* The entry named name, or NULL. */
const us_param *us_param_find(const us_param *table, size_t n, const char *name);

/* "an integer in [1, 1024]", "a number in (0, 3600]", "a number >= 0", "true or false"; for
 * US_PARAM_INTS the range of one item. */
void us_param_describe(const us_param *p, char *out, size_t cap);

/* Is v an acceptable value (integral for integer kinds, inside the range)? For US_PARAM_INTS,
 * one item. */
bool us_param_accepts(const us_param *p, double v);

/* The value of a scalar field of params (bool as 0 or 1; item index of a list). */
double us_param_value(const us_param *p, const void *params, int index);

/* Checks every field of params against the table. On the first failure returns US_ERR_CONFIG
 * with "<name>: expected <range>, found <value>" ("<name>[i]: ..." for a list item, "<name>:
 * at most N items, found M" for a long list). */
us_status us_params_check(const us_param *table, size_t n, const void *params, us_err *err);

/* Writes v as a config file would (2000000, 0.95, 1e-08), shortest exact form. */
void us_param_format(double v, char *out, size_t cap);

#endif
