/* Logging hook: the library reports progress and notes through a callback the caller installs;
 * it never prints on its own. With no hook installed, messages are dropped. */
#ifndef US_CORE_LOG_H
#define US_CORE_LOG_H

typedef enum { US_LOG_DEBUG, US_LOG_INFO, US_LOG_WARN } us_log_level;

typedef void (*us_log_fn)(void *user, us_log_level level, const char *msg);

/* Installs the process-wide hook (set once at start-up, before threads). */
void us_log_set(us_log_fn fn, void *user);
void us_log(us_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
