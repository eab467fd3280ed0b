/* GGUF v3 container (the model file of llama.cpp and ggml): typed key-values, tensor infos and
 * aligned tensor data, written and read with every size checked. This module knows the
 * container only; student/lm_gguf.c maps the language model onto it.
 *
 * Layout (little endian; "string" is u64 length + bytes, no NUL):
 *   u32 magic "GGUF" (bytes 47 47 55 46), u32 version 3, u64 tensor_count, u64 kv_count
 *   kv_count times: string key, u32 value type (us_gguf_type), value
 *     scalar: its bytes (bool: one byte 0 or 1); string: a string;
 *     array: u32 element type (not an array), u64 count, the elements back to back
 *   tensor_count times: string name (1..63 bytes), u32 n_dims (1..4), u64 ne[n_dims] (ne[0] is
 *     the fastest-varying dimension: a row-major (rows, cols) matrix has ne = {cols, rows}),
 *     u32 tensor type (us_gguf_dtype), u64 offset into the data section
 *   zero padding to the alignment (u32 key "general.alignment", a power of two; default 32)
 *   data section: each tensor at its offset, offsets in order, each padded to the alignment
 *     (the layout ggml itself writes and insists on).
 *
 * Ownership: us_gguf_read_file / us_gguf_read_buffer return a handle freed with us_gguf_free
 * (NULL is a no-op); every pointer it hands out (keys, strings, tensor data) lives as long as the
 * handle. us_gguf_writer_new returns a writer freed with us_gguf_writer_free; it copies keys and
 * values at once, but only remembers the tensor data pointers: they must stay valid until the
 * writer has written. */
#ifndef US_STUDENT_GGUF_H
#define US_STUDENT_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

#define US_GGUF_VERSION 3
#define US_GGUF_DEFAULT_ALIGNMENT 32
#define US_GGUF_MAX_DIMS 4
#define US_GGUF_MAX_NAME 63 /* tensor name bytes (ggml's GGML_MAX_NAME is 64 with the NUL) */

/* Key-value types. */
typedef enum us_gguf_type {
  US_GGUF_UINT8 = 0,
  US_GGUF_INT8 = 1,
  US_GGUF_UINT16 = 2,
  US_GGUF_INT16 = 3,
  US_GGUF_UINT32 = 4,
  US_GGUF_INT32 = 5,
  US_GGUF_FLOAT32 = 6,
  US_GGUF_BOOL = 7,
  US_GGUF_STRING = 8,
  US_GGUF_ARRAY = 9,
  US_GGUF_UINT64 = 10,
  US_GGUF_INT64 = 11,
  US_GGUF_FLOAT64 = 12,
} us_gguf_type;

/* Tensor types (ggml's numbering). The reader knows the block size of many more ggml types, so
 * it can check and skip them; conversion to and from float covers these four. */
typedef enum us_gguf_dtype {
  US_GGUF_F32 = 0,
  US_GGUF_F16 = 1,
  US_GGUF_Q8_0 = 8, /* blocks of 32: f16 scale d, then 32 int8 q; x = d * q */
  US_GGUF_BF16 = 30,
} us_gguf_dtype;

/* Name of a tensor type ("f32", "q4_K", ...) or NULL when unknown. */
const char *us_gguf_dtype_name(uint32_t dtype);
/* Bytes of n elements of a tensor type; fails (false) for unknown types, n not a multiple of the
 * type's block size, or overflow. */
bool us_gguf_dtype_bytes(uint32_t dtype, uint64_t n, uint64_t *bytes);

/* Scalar conversions (round to nearest even; NaN stays NaN, overflow becomes infinity). */
uint16_t us_gguf_f16_from_float(float x);
float us_gguf_f16_to_float(uint16_t h);
uint16_t us_gguf_bf16_from_float(float x);
float us_gguf_bf16_to_float(uint16_t h);
/* n floats (a multiple of 32 for Q8_0) to and from a tensor type; out holds
 * us_gguf_dtype_bytes(dtype, n) bytes. Unknown or unsupported types: US_ERR_FORMAT. */
us_status us_gguf_from_float(uint32_t dtype, const float *in, uint64_t n, void *out, us_err *err);
us_status us_gguf_to_float(uint32_t dtype, const void *in, uint64_t n, float *out, us_err *err);

/* ---- reading ---- */

typedef struct us_gguf us_gguf;

/* A string inside the file: not NUL-terminated. */
typedef struct us_gguf_str {
  const char *ptr;
  uint64_t len;
} us_gguf_str;

typedef struct us_gguf_tensor {
  us_gguf_str name;
  uint32_t n_dims;
  uint64_t ne[US_GGUF_MAX_DIMS]; /* unused dimensions are 1 */
  uint32_t dtype;                /* us_gguf_dtype or another ggml type */
  uint64_t n_elements;
  uint64_t offset, bytes; /* within the data section */
  const unsigned char *data;
} us_gguf_tensor;

/* Reads and checks a whole file: magic, version, every count, length and offset against the
 * bytes that are there (no overflow), value and tensor types, unique keys and tensor names,
 * alignment, and that all tensor data is present. Errors (US_ERR_IO, US_ERR_FORMAT) start with
 * the path and say what is wrong and where ("at byte N"). */
us_status us_gguf_read_file(const char *path, us_gguf **out, us_err *err);
/* The same on len bytes in memory (copied); name stands for the path in messages. */
us_status us_gguf_read_buffer(const void *data, size_t len, const char *name, us_gguf **out,
                              us_err *err);
void us_gguf_free(us_gguf *g);

const char *us_gguf_name(const us_gguf *g); /* the path or name given to the reader */
uint32_t us_gguf_alignment(const us_gguf *g);

uint64_t us_gguf_n_kv(const us_gguf *g);
us_gguf_str us_gguf_kv_key(const us_gguf *g, uint64_t i);
us_gguf_type us_gguf_kv_type(const us_gguf *g, uint64_t i);
/* Index of key, or -1. */
int64_t us_gguf_find_kv(const us_gguf *g, const char *key);

/* Typed getters by key. Missing keys are US_ERR_NOT_FOUND; a value of another type or out of
 * range is US_ERR_FORMAT; both messages name the file and the key. get_int accepts every
 * integer type, get_float FLOAT32 and FLOAT64, get_bool BOOL. */
us_status us_gguf_get_int(const us_gguf *g, const char *key, int64_t *out, us_err *err);
us_status us_gguf_get_float(const us_gguf *g, const char *key, double *out, us_err *err);
us_status us_gguf_get_bool(const us_gguf *g, const char *key, bool *out, us_err *err);
us_status us_gguf_get_str(const us_gguf *g, const char *key, us_gguf_str *out, us_err *err);
/* An array: its element type and length. */
us_status us_gguf_get_array(const us_gguf *g, const char *key, us_gguf_type *elem, uint64_t *n,
                            us_err *err);
/* Element i of the array under key (which get_array has found): a string, any integer, any
 * float. Wrong element type or i out of range: US_ERR_FORMAT. */
us_status us_gguf_array_str(const us_gguf *g, const char *key, uint64_t i, us_gguf_str *out,
                            us_err *err);
us_status us_gguf_array_int(const us_gguf *g, const char *key, uint64_t i, int64_t *out,
                            us_err *err);
us_status us_gguf_array_float(const us_gguf *g, const char *key, uint64_t i, double *out,
                              us_err *err);

uint64_t us_gguf_n_tensors(const us_gguf *g);
const us_gguf_tensor *us_gguf_tensor_at(const us_gguf *g, uint64_t i);
/* The tensor called name, or NULL. */
const us_gguf_tensor *us_gguf_find_tensor(const us_gguf *g, const char *name);
/* Converts a tensor to n floats; n must equal its element count (else US_ERR_FORMAT naming the
 * file, the tensor and both counts). */
us_status us_gguf_tensor_float(const us_gguf *g, const us_gguf_tensor *t, float *out, uint64_t n,
                               us_err *err);

/* True when s holds exactly the C string c. */
bool us_gguf_str_eq(us_gguf_str s, const char *c);

/* ---- writing ---- */

typedef struct us_gguf_writer us_gguf_writer;

/* alignment: a power of two (0: 32); other than 32 it is written as "general.alignment". */
us_status us_gguf_writer_new(uint32_t alignment, us_gguf_writer **out, us_err *err);
void us_gguf_writer_free(us_gguf_writer *w);

/* Key-values, written in the order added. Keys must be non-empty, at most 65535 bytes and
 * unique (US_ERR_INPUT otherwise). */
us_status us_gguf_add_u32(us_gguf_writer *w, const char *key, uint32_t v, us_err *err);
us_status us_gguf_add_i32(us_gguf_writer *w, const char *key, int32_t v, us_err *err);
us_status us_gguf_add_u64(us_gguf_writer *w, const char *key, uint64_t v, us_err *err);
us_status us_gguf_add_f32(us_gguf_writer *w, const char *key, float v, us_err *err);
us_status us_gguf_add_bool(us_gguf_writer *w, const char *key, bool v, us_err *err);
us_status us_gguf_add_str(us_gguf_writer *w, const char *key, const char *v, us_err *err);
/* Arrays: n strings (lens[i] bytes each, or strlen when lens is NULL), int32, float32. */
us_status us_gguf_add_str_array(us_gguf_writer *w, const char *key, const char *const *v,
                                const size_t *lens, uint64_t n, us_err *err);
us_status us_gguf_add_i32_array(us_gguf_writer *w, const char *key, const int32_t *v, uint64_t n,
                                us_err *err);
us_status us_gguf_add_f32_array(us_gguf_writer *w, const char *key, const float *v, uint64_t n,
                                us_err *err);

/* A tensor of n_dims dimensions ne[] (ne[0] fastest), stored as dtype. From floats: data holds
 * the product of ne floats, converted on write. Raw: data already holds
 * us_gguf_dtype_bytes(dtype, count) bytes of that type. The pointer is kept, not copied. */
us_status us_gguf_add_tensor(us_gguf_writer *w, const char *name, uint32_t n_dims,
                             const uint64_t *ne, uint32_t dtype, const float *data, us_err *err);
us_status us_gguf_add_tensor_raw(us_gguf_writer *w, const char *name, uint32_t n_dims,
                                 const uint64_t *ne, uint32_t dtype, const void *data, us_err *err);

/* The whole file into out (appended), or to path (path.tmp, then renamed into place). */
us_status us_gguf_writer_serialize(const us_gguf_writer *w, us_buf *out, us_err *err);
us_status us_gguf_writer_write(const us_gguf_writer *w, const char *path, us_err *err);

#endif
