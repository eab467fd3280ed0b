/* Always-on assertions for broken invariants (never for bad input, network faults or corrupt
 * files: those are errors returned to the caller). On failure prints the expression, file and
 * line, and the two values for US_ASSERT_OP, then aborts. Not compiled out by NDEBUG. */
#ifndef US_CORE_ASSERT_H
#define US_CORE_ASSERT_H

_Noreturn void us__assert_fail(const char *expr, const char *file, int line, const char *values);
_Noreturn void us__assert_op_fail(const char *expr, const char *file, int line, double a, double b);

#define US_ASSERT(cond) ((cond) ? (void)0 : us__assert_fail(#cond, __FILE__, __LINE__, NULL))

/* US_ASSERT_OP(n, <=, cap) prints both values when it fails (libuv's habit). */
#define US_ASSERT_OP(a, op, b) \
  (((a)op(b))                  \
       ? (void)0               \
       : us__assert_op_fail(#a " " #op " " #b, __FILE__, __LINE__, (double)(a), (double)(b)))

#endif
