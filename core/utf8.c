/* The UTF-8 decoder, checker, repairer and counter of core/utf8.h. */
#include "core/utf8.h"

int us_utf8_decode(const char *str, size_t avail, uint32_t *cp) {
  const unsigned char *s = (const unsigned char *)str;
  if (avail == 0) return 0;
  unsigned c = s[0];
  int len;
  uint32_t v;
  if (c < 0x80) {
    if (cp) *cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    v = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    v = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    v = c & 0x07;
  } else {
    return 0; /* a stray continuation byte, an overlong lead (C0, C1) or F5..FF */
  }
  if ((size_t)len > avail) return 0; /* truncated sequence */
  for (int k = 1; k < len; k++) {
    if (!US_UTF8_IS_CONTINUATION(s[k])) return 0; /* also stops at a NUL */
    v = (v << 6) | (s[k] & 0x3F);
  }
  if ((len == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) || (len == 4 && v < 0x10000) ||
      v > 0x10FFFF)
    return 0;
  if (cp) *cp = v;
  return len;
}

size_t us_utf8_invalid_at(const char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    if (s[i] == '\0') return i;
    int n = us_utf8_decode(s + i, len - i, NULL);
    if (n == 0) return i;
    i += (size_t)n;
  }
  return len;
}

us_status us_utf8_repair(const char *s, size_t len, us_buf *out) {
  size_t pos = 0;
  while (pos < len) {
    size_t bad = pos + us_utf8_invalid_at(s + pos, len - pos);
    if (us_buf_append(out, s + pos, bad - pos)) return US_ERR_NOMEM;
    if (bad == len) break;
    if (us_buf_append(out, "\xef\xbf\xbd", 3)) return US_ERR_NOMEM;
    pos = bad + 1;
  }
  if (!out->data) return us_buf_append(out, "", 0); /* always a string, even when empty */
  return US_OK;
}

size_t us_utf8_count(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    if (!US_UTF8_IS_CONTINUATION(s[i])) n++;
  return n;
}
