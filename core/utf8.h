/* UTF-8: the one decoder every module uses (prompt checking and repair, report escaping, text
 * metrics, character n-grams). Strict: overlong forms, surrogates and code points above
 * U+10FFFF are invalid. */
#ifndef US_CORE_UTF8_H
#define US_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

/* Length (1 to 4) of the valid UTF-8 sequence at s, reading at most avail bytes, and its code
 * point in *cp (may be NULL); 0 when the bytes there are not one (truncated, a stray
 * continuation byte, an overlong form, a surrogate, above U+10FFFF) or avail is 0. A NUL byte is
 * a valid one-byte sequence with code point 0. */
int us_utf8_decode(const char *s, size_t avail, uint32_t *cp);

/* Offset of the first byte of s[0..len) that starts no valid sequence, or of the first NUL;
 * len when all of it is valid text. */
size_t us_utf8_invalid_at(const char *s, size_t len);

/* Appends s[0..len) to out with every byte that starts no valid sequence replaced by U+FFFD;
 * out always ends up holding a NUL-terminated string, even for len 0. */
us_status us_utf8_repair(const char *s, size_t len, us_buf *out);

/* Number of characters (bytes that are not continuation bytes) in s[0..len). */
size_t us_utf8_count(const char *s, size_t len);

/* True for a continuation byte (10xxxxxx): not the start of a character. */
#define US_UTF8_IS_CONTINUATION(c) (((unsigned char)(c)&0xC0) == 0x80)

#endif
