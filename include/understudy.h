/* understudy public API: load a student model and predict with it from a C program.
 *
 * Ownership: us_model_load returns a handle the caller frees with us_model_free (NULL is a
 * no-op). Strings returned inside results point into the model and stay valid until it is
 * freed. Functions return a us_status; on failure err (if non-NULL) holds a message naming the
 * file and the problem. */
#ifndef UNDERSTUDY_H
#define UNDERSTUDY_H

#define US_VERSION_STRING "0.1.0"

#include "core/status.h"

/* The classifier API (us_model_load / us_model_classify / us_model_free) and the language
 * model API are declared in the sections below as the students land. */

#endif
