/* Writing JSON by hand where streaming beats building a cJSON tree (predict's output, JSONL
 * exports): the one string escaper, byte for byte what cJSON's printer writes. */
#ifndef US_CORE_JSON_H
#define US_CORE_JSON_H

#include <stddef.h>

#include "core/buf.h"
#include "core/status.h"

/* Appends s (NULL: "") to out as a JSON string literal, quotes included, escaped as cJSON
 * escapes it: \" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx, the rest as they are. */
us_status us_json_quote(us_buf *out, const char *s);

/* Offset of the first \u0000 escape inside a string of the JSON text[0..len), or len when there
 * is none. cJSON decodes that escape to a NUL byte, which silently cuts the string short, so
 * readers refuse such text before parsing it. */
size_t us_json_nul_escape_at(const char *text, size_t len);

#endif
