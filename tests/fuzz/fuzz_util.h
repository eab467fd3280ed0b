/* Helpers shared by the fuzz targets (tests/fuzz/fuzz_*.c): a temporary file per process and
 * the checksum fix-up that lets the fuzzer reach past a model file's SHA-256 check. */
#ifndef US_FUZZ_UTIL_H
#define US_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One fixed path per process and stem: $TMPDIR (or /tmp)/us-fuzz-<stem>-<pid><ext>. */
static inline const char *fuzz_temp_path(char *out, size_t cap, const char *stem, const char *ext) {
  const char *dir = getenv("TMPDIR");
  if (!dir || !*dir) dir = "/tmp";
  snprintf(out, cap, "%s/us-fuzz-%s-%ld%s", dir, stem, (long)getpid(), ext);
  return out;
}

/* Writes data to path (replacing it); 0 on success. */
static inline int fuzz_write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  size_t put = size ? fwrite(data, 1, size, f) : 0;
  int bad = fclose(f) != 0 || put != size;
  return bad ? -1 : 0;
}

/* Overwrites the 32 bytes at digest_at with the SHA-256 of buf[from..len), when they fit. */
static inline void fuzz_fix_sha256(uint8_t *buf, size_t len, size_t digest_at, size_t from) {
  if (len < from || len < digest_at + 32) return;
  unsigned char sum[32];
  us_sha256(buf + from, len - from, sum);
  memcpy(buf + digest_at, sum, 32);
}

/* A NUL-terminated copy of data (cut at its first NUL, as a C string API sees it); NULL when out
 * of memory. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t n = nul ? (size_t)(nul - data) : size;
  char *s = malloc(n + 1);
  if (!s) return NULL;
  if (n) memcpy(s, data, n);
  s[n] = '\0';
  return s;
}

#endif
