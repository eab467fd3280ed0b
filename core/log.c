/* The logging hook. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

static us_log_fn log_fn;
static void *log_user;

void us_log_set(us_log_fn fn, void *user) {
  log_fn = fn;
  log_user = user;
}

void us_log(us_log_level level, const char *fmt, ...) {
  if (!log_fn) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  log_fn(log_user, level, msg);
}
