/* The JSON string escaper of core/json.h. */
#include "core/json.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static char short_escape(unsigned char c) {
  switch (c) {
    case '"':
      return '"';
    case '\\':
      return '\\';
    case '\b':
      return 'b';
    case '\f':
      return 'f';
    case '\n':
      return 'n';
    case '\r':
      return 'r';
    case '\t':
      return 't';
    default:
      return 0;
  }
}

us_status us_json_quote(us_buf *out, const char *s) {
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  size_t need = 2;
  for (const unsigned char *q = p; *q; q++) need += short_escape(*q) ? 2 : *q < 0x20 ? 6 : 1;
  if (us_buf_reserve(out, need)) return US_ERR_NOMEM;
  char *w = out->data + out->len;
  *w++ = '"';
  for (; *p; p++) {
    char e = short_escape(*p);
    if (e) {
      *w++ = '\\';
      *w++ = e;
    } else if (*p < 0x20) {
      w += snprintf(w, 7, "\\u%04x", *p);
    } else {
      *w++ = (char)*p;
    }
  }
  *w++ = '"';
  *w = '\0';
  out->len = (size_t)(w - out->data);
  return US_OK;
}

size_t us_json_nul_escape_at(const char *text, size_t len) {
  bool in_string = false;
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '"') {
      in_string = !in_string;
    } else if (in_string && text[i] == '\\' && i + 1 < len) {
      if (text[i + 1] == 'u' && i + 5 < len && memcmp(text + i + 2, "0000", 4) == 0) return i;
      i++; /* the escaped character, whatever it is */
    }
  }
  return len;
}
