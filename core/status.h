/* Status codes and error messages: the helpers that fill a us_err (the status table itself is
 * public, in include/understudy.h). Every function that can fail returns a us_status and, when
 * given a us_err, fills its message. The library never prints and never exits; cli/ prints
 * "understudy: error: <msg>". */
#ifndef US_CORE_STATUS_H
#define US_CORE_STATUS_H

#include <stdarg.h>

/* us_status (the US_STATUS_MAP table), us_err, us_status_str and us_status_name are public:
 * include/understudy.h defines them. */
#include "understudy.h"

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
