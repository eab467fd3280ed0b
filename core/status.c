/* Status names and the error-message helpers. */
#include "core/status.h"

#include <stdio.h>
#include <string.h>

static const char *const status_text[] = {
#define US_STATUS_TEXT(name, text) text,
    US_STATUS_MAP(US_STATUS_TEXT)
#undef US_STATUS_TEXT
};

static const char *const status_names[] = {
#define US_STATUS_NAME(name, text) #name,
    US_STATUS_MAP(US_STATUS_NAME)
#undef US_STATUS_NAME
};

const char *us_status_str(us_status s) {
  if ((int)s < 0 || s >= US_STATUS_COUNT) return "unknown status";
  return status_text[s];
}

const char *us_status_name(us_status s) {
  if ((int)s < 0 || s >= US_STATUS_COUNT) return "UNKNOWN";
  return status_names[s];
}

us_status us_err_setv(us_err *err, us_status code, const char *fmt, va_list ap) {
  if (!err) return code;
  err->code = code;
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  return code;
}

us_status us_err_set(us_err *err, us_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  us_err_setv(err, code, fmt, ap);
  va_end(ap);
  return code;
}

void us_err_prefix(us_err *err, const char *fmt, ...) {
  if (!err) return;
  char prefix[US_ERR_MSG_MAX], old[US_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  size_t n = strlen(prefix);
  if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
  memcpy(err->msg, prefix, n);
  memcpy(err->msg + n, ": ", 2);
  size_t rest = strnlen(old, sizeof old - 1);
  if (rest > sizeof err->msg - n - 3) rest = sizeof err->msg - n - 3;
  memcpy(err->msg + n + 2, old, rest);
  err->msg[n + 2 + rest] = '\0';
}

void us_err_clear(us_err *err) {
  if (!err) return;
  err->code = US_OK;
  err->msg[0] = '\0';
}
