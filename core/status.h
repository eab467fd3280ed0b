/* Status codes and error messages: one table makes the enum and its names (libuv's habit).
 * Every function that can fail returns a us_status and, when given a us_err, fills its message.
 * The library never prints and never exits; cli/ prints "understudy: error: <msg>". */
#ifndef US_CORE_STATUS_H
#define US_CORE_STATUS_H

#include <stdarg.h>

#define US_STATUS_MAP(X)                       \
  X(OK, "ok")                                  \
  X(ERR_NOMEM, "out of memory")                \
  X(ERR_IO, "input/output error")              \
  X(ERR_CONFIG, "invalid configuration")       \
  X(ERR_INPUT, "invalid input data")           \
  X(ERR_FORMAT, "corrupt or unsupported file") \
  X(ERR_DB, "workspace database error")        \
  X(ERR_HTTP, "HTTP or network error")         \
  X(ERR_AUTH, "teacher rejected the API key")  \
  X(ERR_NOT_FOUND, "not found")                \
  X(ERR_BUDGET, "budget reached")              \
  X(ERR_INTERRUPTED, "interrupted")            \
  X(ERR_TEACHER, "teacher error")              \
  X(ERR_STATE, "missing earlier stage")        \
  X(ERR_USAGE, "invalid usage")                \
  X(ERR_INTERNAL, "internal error")

typedef enum {
#define US_STATUS_ENUM(name, text) US_##name,
  US_STATUS_MAP(US_STATUS_ENUM)
#undef US_STATUS_ENUM
      US_STATUS_COUNT
} us_status;

/* Message owned by the caller (usually on its stack); no global error state. */
#define US_ERR_MSG_MAX 1024
typedef struct us_err {
  us_status code;
  char msg[US_ERR_MSG_MAX];
} us_err;

/* Short fixed text for a status, e.g. "budget reached". Never NULL. */
const char *us_status_str(us_status s);
/* Stable identifier for a status, e.g. "ERR_BUDGET". Never NULL. */
const char *us_status_name(us_status s);

/* Sets err (if non-NULL) to code and a printf-formatted message; returns code, so
 * `return us_err_set(err, US_ERR_IO, "cannot open %s: %s", path, strerror(errno));` works. */
us_status us_err_set(us_err *err, us_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
us_status us_err_setv(us_err *err, us_status code, const char *fmt, va_list ap);
/* Prepends "prefix: " to an existing message (adds context on the way up); a no-op when err is
 * NULL. Returns nothing, so a caller returns the status it holds, which survives a NULL err. */
void us_err_prefix(us_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void us_err_clear(us_err *err);

#endif
