/* Growable byte buffer with an optional size cap (curl's dynbuf habit). Always NUL-terminated. */
#ifndef US_CORE_BUF_H
#define US_CORE_BUF_H

#include <stddef.h>

#include "core/status.h"

typedef struct us_buf {
  char *data;   /* NUL-terminated; NULL until the first append */
  size_t len;   /* bytes used, not counting the NUL */
  size_t cap;   /* bytes allocated */
  size_t limit; /* 0: no limit; else appends that would pass it fail with US_ERR_NOMEM */
} us_buf;

void us_buf_init(us_buf *b, size_t limit);
void us_buf_free(us_buf *b);  /* frees data; the struct may be reused after us_buf_init */
void us_buf_reset(us_buf *b); /* len = 0, keeps the allocation */
us_status us_buf_reserve(us_buf *b, size_t extra);
us_status us_buf_append(us_buf *b, const void *data, size_t n);
us_status us_buf_puts(us_buf *b, const char *s);
us_status us_buf_printf(us_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (caller frees; "" rather than NULL when empty), resets b. */
char *us_buf_steal(us_buf *b);

/* Reads a whole file into a NUL-terminated malloc'd string (caller frees). Fails with a message
 * naming the path and strerror; refuses files over max_bytes (0: no limit). */
us_status us_read_file(const char *path, size_t max_bytes, char **out, size_t *len, us_err *err);
/* Writes data to path atomically (path.tmp, fsync, rename). */
us_status us_write_file_atomic(const char *path, const void *data, size_t len, us_err *err);
/* mkdir -p; fine if it exists. */
us_status us_mkdirs(const char *path, us_err *err);

/* strdup that returns NULL for NULL. */
char *us_strdup(const char *s);

#endif
