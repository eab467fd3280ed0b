/* Range checking and describing for the parameter tables of core/params.h. */
#include "core/params.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const us_param *us_param_find(const us_param *table, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(table[i].name, name) == 0) return &table[i];
  return NULL;
}

void us_param_format(double v, char *out, size_t cap) {
  if (v == floor(v) && fabs(v) < 1e16) {
    snprintf(out, cap, "%.0f", v);
    return;
  }
  snprintf(out, cap, "%.15g", v); /* shortest of 15 or 17 digits that reads back exactly */
  if (strtod(out, NULL) != v) snprintf(out, cap, "%.17g", v);
}

static bool integral(const us_param *p) {
  return p->kind != US_PARAM_DOUBLE;
}

void us_param_describe(const us_param *p, char *out, size_t cap) {
  if (p->kind == US_PARAM_BOOL) {
    snprintf(out, cap, "true or false");
    return;
  }
  char lo[32], hi[32];
  us_param_format(p->min, lo, sizeof lo);
  us_param_format(p->max, hi, sizeof hi);
  const char *noun = integral(p) ? "an integer" : "a number";
  if (p->flags & US_PARAM_NO_MAX)
    snprintf(out, cap, "%s %s %s", noun, (p->flags & US_PARAM_MIN_OPEN) ? ">" : ">=", lo);
  else
    snprintf(out, cap, "%s in %c%s, %s]", noun, (p->flags & US_PARAM_MIN_OPEN) ? '(' : '[', lo, hi);
}

bool us_param_accepts(const us_param *p, double v) {
  if (p->kind == US_PARAM_BOOL) return v == 0 || v == 1;
  if (!isfinite(v)) return false;
  if (integral(p) && v != floor(v)) return false;
  if ((p->flags & US_PARAM_MIN_OPEN) ? v <= p->min : v < p->min) return false;
  return (p->flags & US_PARAM_NO_MAX) || v <= p->max;
}

double us_param_value(const us_param *p, const void *params, int index) {
  const char *at = (const char *)params + p->offset;
  switch (p->kind) {
    case US_PARAM_INT:
      return *(const int *)at;
    case US_PARAM_DOUBLE:
      return *(const double *)at;
    case US_PARAM_U64:
      return (double)*(const uint64_t *)at;
    case US_PARAM_BOOL:
      return *(const bool *)at ? 1 : 0;
    case US_PARAM_INTS:
      return ((const int *)at)[index];
  }
  return NAN;
}

static us_status out_of_range(const us_param *p, const char *name, double v, us_err *err) {
  char expected[96], found[32];
  us_param_describe(p, expected, sizeof expected);
  us_param_format(v, found, sizeof found);
  return us_err_set(err, US_ERR_CONFIG, "%s: expected %s, found %s", name, expected, found);
}

us_status us_params_check(const us_param *table, size_t n, const void *params, us_err *err) {
  for (size_t i = 0; i < n; i++) {
    const us_param *p = &table[i];
    if (p->kind != US_PARAM_INTS) {
      double v = us_param_value(p, params, 0);
      if (!us_param_accepts(p, v)) return out_of_range(p, p->name, v, err);
      continue;
    }
    int count = *(const int *)((const char *)params + p->count_offset);
    if (count < 0 || count > p->max_count)
      return us_err_set(err, US_ERR_CONFIG, "%s: at most %d items, found %d", p->name, p->max_count,
                        count);
    for (int k = 0; k < count; k++) {
      double v = us_param_value(p, params, k);
      char name[96];
      snprintf(name, sizeof name, "%s[%d]", p->name, k);
      if (!us_param_accepts(p, v)) return out_of_range(p, name, v, err);
    }
  }
  return US_OK;
}
