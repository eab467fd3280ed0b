/* The failure path of core/assert.h: the one place the library may print and abort, because a
 * broken invariant means the program can no longer be trusted to continue. */
#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void us__assert_fail(const char *expr, const char *file, int line, const char *values) {
  fprintf(stderr, "understudy: internal error: assertion failed: %s (%s:%d)%s%s\n", expr, file,
          line, values ? ": " : "", values ? values : "");
  fprintf(stderr, "hint: this is a bug in understudy; please report it with the command run\n");
  abort();
}

_Noreturn void us__assert_op_fail(const char *expr, const char *file, int line, double a,
                                  double b) {
  char values[96];
  snprintf(values, sizeof values, "%.17g vs %.17g", a, b);
  us__assert_fail(expr, file, line, values);
}
