/* The character classes of llama.cpp's pre-tokenisers for any code point: letter (\p{L}),
 * number (\p{N}), White_Space (\s) or other. The table (student/unicode_classes.c) is generated
 * by scripts/gen_unicode_classes.py. */
#ifndef US_STUDENT_UNICODE_CLASSES_H
#define US_STUDENT_UNICODE_CLASSES_H

#include <stdint.h>

enum { US_UNICODE_LETTER, US_UNICODE_NUMBER, US_UNICODE_SPACE, US_UNICODE_OTHER };

/* The class of code point cp (values past U+10FFFF: other); ASCII included. */
int us__unicode_class(uint32_t cp);

#endif
