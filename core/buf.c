/* Growable buffers and whole-file helpers. */
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assert.h"

void us_buf_init(us_buf *b, size_t limit) {
  b->data = NULL;
  b->len = b->cap = 0;
  b->limit = limit;
}

void us_buf_free(us_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void us_buf_reset(us_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

us_status us_buf_reserve(us_buf *b, size_t extra) {
  size_t need = b->len + extra + 1;
  if (b->limit && need > b->limit + 1) return US_ERR_NOMEM;
  if (need <= b->cap) return US_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) return US_ERR_NOMEM;
  b->data = p;
  b->cap = cap;
  return US_OK;
}

us_status us_buf_append(us_buf *b, const void *data, size_t n) {
  us_status st = us_buf_reserve(b, n);
  if (st) return st;
  US_ASSERT_OP(b->len + n, <, b->cap); /* reserve left room for the NUL too */
  if (n) memcpy(b->data + b->len, data, n);
  b->len += n;
  b->data[b->len] = '\0';
  return US_OK;
}

us_status us_buf_puts(us_buf *b, const char *s) {
  return us_buf_append(b, s, strlen(s));
}

us_status us_buf_printf(us_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return US_ERR_INTERNAL;
  us_status st = us_buf_reserve(b, (size_t)n);
  if (st) return st;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return US_OK;
}

char *us_buf_steal(us_buf *b) {
  char *p = b->data;
  if (!p) p = calloc(1, 1);
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

us_status us_read_file(const char *path, size_t max_bytes, char **out, size_t *len, us_err *err) {
  *out = NULL;
  if (len) *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return us_err_set(err, US_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  us_buf b;
  us_buf_init(&b, max_bytes);
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (us_buf_append(&b, chunk, n)) {
      bool too_large = max_bytes && b.len + n > max_bytes; /* else the allocation failed */
      fclose(f);
      us_buf_free(&b);
      if (!too_large) return us_err_set(err, US_ERR_NOMEM, "out of memory reading %s", path);
      return us_err_set(err, US_ERR_INPUT, "%s is larger than the %zu-byte limit", path, max_bytes);
    }
  }
  if (ferror(f)) {
    int e = errno;
    fclose(f);
    us_buf_free(&b);
    return us_err_set(err, US_ERR_IO, "cannot read %s: %s", path, strerror(e));
  }
  fclose(f);
  if (len) *len = b.len;
  *out = us_buf_steal(&b);
  return *out ? US_OK : us_err_set(err, US_ERR_NOMEM, "out of memory reading %s", path);
}

us_status us_write_file_atomic(const char *path, const void *data, size_t len, us_err *err) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 16);
  if (!tmp) return us_err_set(err, US_ERR_NOMEM, "out of memory writing %s", path);
  snprintf(tmp, plen + 16, "%s.tmp.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    us_err_set(err, US_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    free(tmp);
    return US_ERR_IO;
  }
  const char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      us_err_set(err, US_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
      goto fail;
    }
    p += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0) {
    us_err_set(err, US_ERR_IO, "cannot flush %s: %s", tmp, strerror(errno));
    goto fail;
  }
  close(fd);
  fd = -1;
  if (rename(tmp, path) != 0) {
    us_err_set(err, US_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    goto fail;
  }
  free(tmp);
  return US_OK;
fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
  free(tmp);
  return US_ERR_IO;
}

us_status us_mkdirs(const char *path, us_err *err) {
  char *p = us_strdup(path);
  if (!p) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
      us_err_set(err, US_ERR_IO, "cannot create folder %s: %s", p, strerror(errno));
      free(p);
      return US_ERR_IO;
    }
    *s = '/';
  }
  if (mkdir(p, 0755) != 0 && errno != EEXIST) {
    us_err_set(err, US_ERR_IO, "cannot create folder %s: %s", p, strerror(errno));
    free(p);
    return US_ERR_IO;
  }
  free(p);
  return US_OK;
}

char *us_strdup(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}
