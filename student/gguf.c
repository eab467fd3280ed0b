/* GGUF v3 container: tensor types and their float conversions, the checking reader, and the
 * writer (layout in student/gguf.h). */
#include "student/gguf.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/bytes.h"

/* ---- tensor types ---- */

static const struct {
  uint32_t id;
  const char *name;
  uint32_t block, bytes; /* elements per block, bytes per block */
} dtypes[] = {
    {0, "f32", 1, 4},         {1, "f16", 1, 2},       {2, "q4_0", 32, 18},
    {3, "q4_1", 32, 20},      {6, "q5_0", 32, 22},    {7, "q5_1", 32, 24},
    {8, "q8_0", 32, 34},      {9, "q8_1", 32, 36},    {10, "q2_K", 256, 84},
    {11, "q3_K", 256, 110},   {12, "q4_K", 256, 144}, {13, "q5_K", 256, 176},
    {14, "q6_K", 256, 210},   {15, "q8_K", 256, 292}, {20, "iq4_nl", 32, 18},
    {23, "iq4_xs", 256, 136}, {24, "i8", 1, 1},       {25, "i16", 1, 2},
    {26, "i32", 1, 4},        {27, "i64", 1, 8},      {28, "f64", 1, 8},
    {30, "bf16", 1, 2},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

static int dtype_index(uint32_t id) {
  for (size_t i = 0; i < N_DTYPES; i++)
    if (dtypes[i].id == id) return (int)i;
  return -1;
}

const char *us_gguf_dtype_name(uint32_t dtype) {
  int i = dtype_index(dtype);
  return i < 0 ? NULL : dtypes[i].name;
}

static const char *dname(uint32_t dtype) {
  const char *n = us_gguf_dtype_name(dtype);
  return n ? n : "unknown";
}

bool us_gguf_dtype_bytes(uint32_t dtype, uint64_t n, uint64_t *bytes) {
  int i = dtype_index(dtype);
  if (i < 0 || n % dtypes[i].block != 0) return false;
  uint64_t blocks = n / dtypes[i].block;
  if (blocks > UINT64_MAX / dtypes[i].bytes) return false;
  *bytes = blocks * dtypes[i].bytes;
  return true;
}

static uint32_t float_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return u;
}

static float bits_float(uint32_t u) {
  float x;
  memcpy(&x, &u, 4);
  return x;
}

uint16_t us_gguf_f16_from_float(float x) {
  uint32_t u = float_bits(x), sign = (u >> 16) & 0x8000u, mag = u & 0x7fffffffu;
  if (mag > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
  if (mag >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504: inf */
  if (mag < 0x38800000u) {                                   /* below 2^-14: subnormal */
    float scaled = fabsf(x) * 16777216.0f;                   /* 2^24: units of 2^-24 */
    return (uint16_t)(sign | (uint32_t)lrintf(scaled));      /* nearest even */
  }
  uint32_t r = mag + 0xfffu + ((mag >> 13) & 1u); /* round to nearest even on 13 dropped bits */
  return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float us_gguf_f16_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    float v = (float)m / 16777216.0f; /* m * 2^-24 */
    return sign ? -v : v;
  }
  if (e == 31) return bits_float(sign | 0x7f800000u | (m << 13));
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t us_gguf_bf16_from_float(float x) {
  uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float us_gguf_bf16_to_float(uint16_t h) {
  return bits_float((uint32_t)h << 16);
}

/* ggml's reference Q8_0: d = max|x| / 127, q = round(x / d). */
static void quantize_q8_0(const float *in, uint64_t n, unsigned char *out) {
  for (uint64_t b = 0; b < n / 32; b++, in += 32, out += 34) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
      if (fabsf(in[j]) > amax) amax = fabsf(in[j]);
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    us_put_le16(out, us_gguf_f16_from_float(d));
    for (int j = 0; j < 32; j++) out[2 + j] = (unsigned char)(int8_t)roundf(in[j] * id);
  }
}

us_status us_gguf_from_float(uint32_t dtype, const float *in, uint64_t n, void *out, us_err *err) {
  unsigned char *o = out;
  uint64_t bytes;
  if (!us_gguf_dtype_bytes(dtype, n, &bytes))
    return us_err_set(err, US_ERR_FORMAT, "gguf: %llu values do not fit tensor type %s",
                      (unsigned long long)n, dname(dtype));
  switch (dtype) {
    case US_GGUF_F32:
      for (uint64_t i = 0; i < n; i++) {
        uint32_t u = float_bits(in[i]);
        for (int k = 0; k < 4; k++) o[4 * i + k] = (unsigned char)(u >> (8 * k));
      }
      return US_OK;
    case US_GGUF_F16:
      for (uint64_t i = 0; i < n; i++) us_put_le16(o + 2 * i, us_gguf_f16_from_float(in[i]));
      return US_OK;
    case US_GGUF_BF16:
      for (uint64_t i = 0; i < n; i++) us_put_le16(o + 2 * i, us_gguf_bf16_from_float(in[i]));
      return US_OK;
    case US_GGUF_Q8_0:
      for (uint64_t i = 0; i < n; i++)
        if (!isfinite(in[i]))
          return us_err_set(err, US_ERR_INPUT, "gguf: value %llu is %g: q8_0 needs finite values",
                            (unsigned long long)i, (double)in[i]);
      quantize_q8_0(in, n, o);
      return US_OK;
    default:
      return us_err_set(
          err, US_ERR_FORMAT,
          "gguf: cannot write tensor type %s (understudy writes f32, f16, bf16, q8_0)",
          dname(dtype));
  }
}

us_status us_gguf_to_float(uint32_t dtype, const void *in, uint64_t n, float *out, us_err *err) {
  const unsigned char *p = in;
  uint64_t bytes;
  const char *name = dname(dtype);
  if (!us_gguf_dtype_bytes(dtype, n, &bytes))
    return us_err_set(err, US_ERR_FORMAT, "gguf: %llu values do not fit tensor type %s (%u)",
                      (unsigned long long)n, name, dtype);
  switch (dtype) {
    case US_GGUF_F32:
      for (uint64_t i = 0; i < n; i++) {
        const unsigned char *q = p + 4 * i;
        out[i] = bits_float((uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                            (uint32_t)q[3] << 24);
      }
      return US_OK;
    case US_GGUF_F16:
      for (uint64_t i = 0; i < n; i++) out[i] = us_gguf_f16_to_float(us_get_le16(p + 2 * i));
      return US_OK;
    case US_GGUF_BF16:
      for (uint64_t i = 0; i < n; i++) out[i] = us_gguf_bf16_to_float(us_get_le16(p + 2 * i));
      return US_OK;
    case US_GGUF_Q8_0:
      for (uint64_t b = 0; b < n / 32; b++, p += 34) {
        float d = us_gguf_f16_to_float(us_get_le16(p));
        for (int j = 0; j < 32; j++) out[32 * b + (uint64_t)j] = d * (float)(int8_t)p[2 + j];
      }
      return US_OK;
    default:
      return us_err_set(err, US_ERR_FORMAT,
                        "gguf: cannot read tensor type %s (understudy reads f32, f16, bf16, q8_0); "
                        "convert the model with llama.cpp's llama-quantize to one of them",
                        name);
  }
}

/* ---- reading ---- */

typedef struct sorted_name {
  us_gguf_str name;
  uint64_t index;
} sorted_name;

typedef struct kv_entry {
  us_gguf_str key;
  us_gguf_type type;
  us_gguf_type elem;           /* arrays: element type */
  uint64_t n;                  /* arrays: element count */
  const unsigned char *value;  /* first byte of the value (arrays: of the first element) */
  const unsigned char **items; /* string arrays: each element's length field */
} kv_entry;

struct us_gguf {
  char *name;
  unsigned char *data;
  size_t len;
  uint32_t alignment;
  uint64_t n_kv, n_tensors;
  kv_entry *kv;
  us_gguf_tensor *tensors;
  struct sorted_name *kv_sorted;     /* keys in order, for lookups and the duplicate check */
  struct sorted_name *tensor_sorted; /* tensor names in order */
};

typedef struct cursor {
  const unsigned char *d;
  size_t len, pos;
  const char *name;
  us_err *err;
} cursor;

static us_status truncated(cursor *c, const char *what, uint64_t need) {
  return us_err_set(c->err, US_ERR_FORMAT,
                    "%s: not a complete GGUF file: %s needs %llu bytes at byte %zu, the file "
                    "ends at %zu",
                    c->name, what, (unsigned long long)need, c->pos, c->len);
}

static us_status take(cursor *c, uint64_t n, const char *what, const unsigned char **p) {
  if (n > c->len - c->pos) return truncated(c, what, n);
  *p = c->d + c->pos;
  c->pos += (size_t)n;
  return US_OK;
}

static uint64_t le(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static us_status read_u32(cursor *c, const char *what, uint32_t *v) {
  const unsigned char *p = NULL;
  us_status st = take(c, 4, what, &p);
  if (st == US_OK) *v = us_get_le32(p);
  return st;
}

static us_status read_u64(cursor *c, const char *what, uint64_t *v) {
  const unsigned char *p = NULL;
  us_status st = take(c, 8, what, &p);
  if (st == US_OK) *v = us_get_le64(p);
  return st;
}

static us_status read_str(cursor *c, const char *what, us_gguf_str *s) {
  uint64_t n;
  const unsigned char *p = NULL;
  us_status st = read_u64(c, what, &n);
  if (st == US_OK) st = take(c, n, what, &p);
  if (st == US_OK) {
    s->ptr = (const char *)p;
    s->len = n;
  }
  return st;
}

/* Bytes of one scalar of type t; 0 for strings, arrays and unknown types. */
static uint64_t scalar_size(uint32_t t) {
  static const unsigned char sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  return t < sizeof sizes ? sizes[t] : 0;
}

static const char *type_name(uint32_t t) {
  static const char *const names[] = {"uint8",  "int8",    "uint16", "int16",  "uint32",
                                      "int32",  "float32", "bool",   "string", "array",
                                      "uint64", "int64",   "float64"};
  return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* Checks one value of type t (not an array) at the cursor and steps over it. */
static us_status skip_value(cursor *c, uint32_t t, us_gguf_str key) {
  if (t == US_GGUF_STRING) {
    us_gguf_str s;
    return read_str(c, "a string value", &s);
  }
  uint64_t size = scalar_size(t);
  const unsigned char *p = NULL;
  us_status st = take(c, size, "a value", &p);
  if (st == US_OK && t == US_GGUF_BOOL && *p > 1)
    return us_err_set(c->err, US_ERR_FORMAT,
                      "%s: key \"%.*s\": bool value %u at byte %zu is neither 0 nor 1", c->name,
                      (int)(key.len > 200 ? 200 : key.len), key.ptr, *p, c->pos - 1);
  return st;
}

static int str_cmp(us_gguf_str a, us_gguf_str b) {
  uint64_t n = a.len < b.len ? a.len : b.len;
  int r = n ? memcmp(a.ptr, b.ptr, (size_t)n) : 0;
  if (r) return r;
  return a.len < b.len ? -1 : a.len > b.len;
}

bool us_gguf_str_eq(us_gguf_str s, const char *c) {
  size_t n = strlen(c);
  return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

static int cmp_sorted(const void *a, const void *b) {
  return str_cmp(((const sorted_name *)a)->name, ((const sorted_name *)b)->name);
}

#define SHOW(s) (int)((s).len > 200 ? 200 : (s).len), (s).ptr

static us_status read_kv(cursor *c, kv_entry *e) {
  uint32_t t;
  us_status st = read_str(c, "a key", &e->key);
  if (st == US_OK && (e->key.len == 0 || e->key.len > 65535))
    return us_err_set(c->err, US_ERR_FORMAT, "%s: key of %llu bytes before byte %zu (1..65535)",
                      c->name, (unsigned long long)e->key.len, c->pos);
  if (st == US_OK) st = read_u32(c, "a value type", &t);
  if (st != US_OK) return st;
  if (t > US_GGUF_FLOAT64)
    return us_err_set(c->err, US_ERR_FORMAT, "%s: key \"%.*s\": unknown value type %u", c->name,
                      SHOW(e->key), t);
  e->type = (us_gguf_type)t;
  if (t != US_GGUF_ARRAY) {
    e->value = c->d + c->pos;
    return skip_value(c, t, e->key);
  }
  uint32_t et;
  if ((st = read_u32(c, "an array type", &et)) != US_OK ||
      (st = read_u64(c, "an array length", &e->n)) != US_OK)
    return st;
  if (et > US_GGUF_FLOAT64 || et == US_GGUF_ARRAY)
    return us_err_set(c->err, US_ERR_FORMAT,
                      "%s: key \"%.*s\": array of %s (%u), expected scalars or strings", c->name,
                      SHOW(e->key), type_name(et), et);
  e->elem = (us_gguf_type)et;
  e->value = c->d + c->pos;
  uint64_t least = et == US_GGUF_STRING ? 8 : scalar_size(et);
  if (e->n > (c->len - c->pos) / least)
    return us_err_set(c->err, US_ERR_FORMAT,
                      "%s: key \"%.*s\": array of %llu %s at byte %zu is longer than the file",
                      c->name, SHOW(e->key), (unsigned long long)e->n, type_name(et), c->pos);
  if (et != US_GGUF_STRING) {
    const unsigned char *p = NULL;
    if ((st = take(c, e->n * least, "an array", &p)) != US_OK) return st;
    if (et == US_GGUF_BOOL)
      for (uint64_t i = 0; i < e->n; i++)
        if (p[i] > 1)
          return us_err_set(c->err, US_ERR_FORMAT,
                            "%s: key \"%.*s\": bool element %llu is %u, neither 0 nor 1", c->name,
                            SHOW(e->key), (unsigned long long)i, p[i]);
    return US_OK;
  }
  e->items = malloc((size_t)(e->n ? e->n : 1) * sizeof *e->items);
  if (!e->items) return us_err_set(c->err, US_ERR_NOMEM, "%s: out of memory", c->name);
  for (uint64_t i = 0; i < e->n && st == US_OK; i++) {
    e->items[i] = c->d + c->pos;
    st = skip_value(c, US_GGUF_STRING, e->key);
  }
  return st;
}

static us_status read_tensor_info(cursor *c, us_gguf_tensor *t, uint64_t index) {
  us_status st = read_str(c, "a tensor name", &t->name);
  if (st != US_OK) return st;
  if (t->name.len == 0 || t->name.len > US_GGUF_MAX_NAME)
    return us_err_set(c->err, US_ERR_FORMAT, "%s: tensor %llu: name of %llu bytes (1..%d)", c->name,
                      (unsigned long long)index, (unsigned long long)t->name.len, US_GGUF_MAX_NAME);
  if ((st = read_u32(c, "a tensor's dimension count", &t->n_dims)) != US_OK) return st;
  if (t->n_dims < 1 || t->n_dims > US_GGUF_MAX_DIMS)
    return us_err_set(c->err, US_ERR_FORMAT, "%s: tensor \"%.*s\": %u dimensions (1..%d)", c->name,
                      SHOW(t->name), t->n_dims, US_GGUF_MAX_DIMS);
  t->n_elements = 1;
  for (int d = 0; d < US_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
  for (uint32_t d = 0; d < t->n_dims; d++) {
    if ((st = read_u64(c, "a tensor dimension", &t->ne[d])) != US_OK) return st;
    if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX / t->n_elements)
      return us_err_set(c->err, US_ERR_FORMAT,
                        "%s: tensor \"%.*s\": dimension %u is %llu (zero or the element count "
                        "overflows)",
                        c->name, SHOW(t->name), d, (unsigned long long)t->ne[d]);
    t->n_elements *= t->ne[d];
  }
  if ((st = read_u32(c, "a tensor type", &t->dtype)) != US_OK ||
      (st = read_u64(c, "a tensor offset", &t->offset)) != US_OK)
    return st;
  int k = dtype_index(t->dtype);
  if (k < 0)
    return us_err_set(c->err, US_ERR_FORMAT, "%s: tensor \"%.*s\": unknown tensor type %u", c->name,
                      SHOW(t->name), t->dtype);
  if (t->ne[0] % dtypes[k].block != 0)
    return us_err_set(c->err, US_ERR_FORMAT,
                      "%s: tensor \"%.*s\": %llu columns are not whole %s blocks of %u", c->name,
                      SHOW(t->name), (unsigned long long)t->ne[0], dtypes[k].name, dtypes[k].block);
  if (!us_gguf_dtype_bytes(t->dtype, t->n_elements, &t->bytes))
    return us_err_set(c->err, US_ERR_FORMAT,
                      "%s: tensor \"%.*s\": %llu values of %s overflow the byte count", c->name,
                      SHOW(t->name), (unsigned long long)t->n_elements, dtypes[k].name);
  return US_OK;
}

/* The alignment from "general.alignment" (default 32): a uint32 power of two. */
static us_status read_alignment(us_gguf *g, us_err *err) {
  g->alignment = US_GGUF_DEFAULT_ALIGNMENT;
  int64_t i = us_gguf_find_kv(g, "general.alignment");
  if (i < 0) return US_OK;
  const kv_entry *e = &g->kv[i];
  if (e->type != US_GGUF_UINT32)
    return us_err_set(err, US_ERR_FORMAT, "%s: general.alignment is a %s, expected a uint32",
                      g->name, type_name(e->type));
  uint32_t a = (uint32_t)le(e->value, 4);
  if (a == 0 || (a & (a - 1)) != 0)
    return us_err_set(err, US_ERR_FORMAT, "%s: general.alignment %u is not a power of two", g->name,
                      a);
  g->alignment = a;
  return US_OK;
}

/* Tensor data: offsets in order, each at the running total padded to the alignment (as ggml
 * writes them and requires), all inside the file. */
static us_status place_tensors(us_gguf *g, size_t infos_end, us_err *err) {
  uint64_t a = g->alignment, start = ((uint64_t)infos_end + a - 1) / a * a, at = 0;
  if (start > g->len && g->n_tensors > 0)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: not a complete GGUF file: the tensor data should start at byte %llu, "
                      "the file ends at %zu",
                      g->name, (unsigned long long)start, g->len);
  for (uint64_t i = 0; i < g->n_tensors; i++) {
    us_gguf_tensor *t = &g->tensors[i];
    if (t->offset != at)
      return us_err_set(err, US_ERR_FORMAT,
                        "%s: tensor \"%.*s\": data offset %llu, expected %llu (tensors in order, "
                        "each padded to %llu bytes)",
                        g->name, SHOW(t->name), (unsigned long long)t->offset,
                        (unsigned long long)at, (unsigned long long)a);
    if (t->bytes > g->len - start || t->offset > g->len - start - t->bytes)
      return us_err_set(err, US_ERR_FORMAT,
                        "%s: not a complete GGUF file: tensor \"%.*s\" needs bytes %llu..%llu, "
                        "the file ends at %zu",
                        g->name, SHOW(t->name), (unsigned long long)(start + t->offset),
                        (unsigned long long)(start + t->offset + t->bytes), g->len);
    t->data = g->data + start + t->offset;
    at = (t->offset + t->bytes + a - 1) / a * a;
  }
  return US_OK;
}

/* Sorts the names of n items (index i named names(i)) into *out and refuses duplicates. */
static us_status sort_names(const us_gguf *g, uint64_t n, bool keys, sorted_name **out,
                            us_err *err) {
  sorted_name *s = malloc((size_t)(n ? n : 1) * sizeof *s);
  if (!s) return us_err_set(err, US_ERR_NOMEM, "%s: out of memory", g->name);
  *out = s;
  for (uint64_t i = 0; i < n; i++) {
    s[i].name = keys ? g->kv[i].key : g->tensors[i].name;
    s[i].index = i;
  }
  qsort(s, (size_t)n, sizeof *s, cmp_sorted);
  for (uint64_t i = 1; i < n; i++)
    if (str_cmp(s[i - 1].name, s[i].name) == 0)
      return us_err_set(err, US_ERR_FORMAT, "%s: %s \"%.*s\" appears twice", g->name,
                        keys ? "key" : "tensor", SHOW(s[i].name));
  return US_OK;
}

static us_status parse(us_gguf *g, us_err *err) {
  cursor c = {g->data, g->len, 0, g->name, err};
  const unsigned char *magic = NULL;
  uint32_t version;
  us_status st = take(&c, 4, "the magic", &magic);
  if (st == US_OK && memcmp(magic, "GGUF", 4) != 0)
    return us_err_set(err, US_ERR_FORMAT, "%s: not a GGUF file (the first bytes are not \"GGUF\")",
                      g->name);
  if (st == US_OK) st = read_u32(&c, "the version", &version);
  if (st == US_OK && version != US_GGUF_VERSION)
    return us_err_set(err, US_ERR_FORMAT, "%s: GGUF version %u, understudy reads version %d",
                      g->name, version, US_GGUF_VERSION);
  if (st == US_OK) st = read_u64(&c, "the tensor count", &g->n_tensors);
  if (st == US_OK) st = read_u64(&c, "the key-value count", &g->n_kv);
  if (st != US_OK) return st;
  /* a key-value takes at least 13 bytes (key length, one key byte, type), a tensor info 29 */
  if (g->n_kv > (g->len - c.pos) / 13 || g->n_tensors > (g->len - c.pos) / 29)
    return us_err_set(err, US_ERR_FORMAT,
                      "%s: %llu key-values and %llu tensors cannot fit in %zu bytes", g->name,
                      (unsigned long long)g->n_kv, (unsigned long long)g->n_tensors, g->len);
  g->kv = calloc((size_t)(g->n_kv ? g->n_kv : 1), sizeof *g->kv);
  g->tensors = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *g->tensors);
  if (!g->kv || !g->tensors) return us_err_set(err, US_ERR_NOMEM, "%s: out of memory", g->name);
  for (uint64_t i = 0; i < g->n_kv && st == US_OK; i++) st = read_kv(&c, &g->kv[i]);
  for (uint64_t i = 0; i < g->n_tensors && st == US_OK; i++)
    st = read_tensor_info(&c, &g->tensors[i], i);
  if (st == US_OK) st = sort_names(g, g->n_kv, true, &g->kv_sorted, err);
  if (st == US_OK) st = sort_names(g, g->n_tensors, false, &g->tensor_sorted, err);
  if (st == US_OK) st = read_alignment(g, err);
  if (st == US_OK) st = place_tensors(g, c.pos, err);
  return st;
}

us_status us_gguf_read_buffer(const void *data, size_t len, const char *name, us_gguf **out,
                              us_err *err) {
  *out = NULL;
  us_gguf *g = calloc(1, sizeof *g);
  if (!g) return us_err_set(err, US_ERR_NOMEM, "%s: out of memory", name);
  g->name = us_strdup(name ? name : "(buffer)");
  g->data = malloc(len ? len : 1);
  if (!g->name || !g->data) {
    us_gguf_free(g);
    return us_err_set(err, US_ERR_NOMEM, "%s: out of memory for %zu bytes", name, len);
  }
  if (len) memcpy(g->data, data, len);
  g->len = len;
  us_status st = parse(g, err);
  if (st != US_OK) {
    us_gguf_free(g);
    return st;
  }
  *out = g;
  return US_OK;
}

us_status us_gguf_read_file(const char *path, us_gguf **out, us_err *err) {
  *out = NULL;
  char *data = NULL;
  size_t len = 0;
  us_status st = us_read_file(path, 0, &data, &len, err);
  if (st != US_OK) return st;
  us_gguf *g = calloc(1, sizeof *g);
  if (!g || !(g->name = us_strdup(path))) {
    free(g);
    free(data);
    return us_err_set(err, US_ERR_NOMEM, "%s: out of memory", path);
  }
  g->data = (unsigned char *)data; /* taken over: no second copy of a large model */
  g->len = len;
  if ((st = parse(g, err)) != US_OK) {
    us_gguf_free(g);
    return st;
  }
  *out = g;
  return US_OK;
}

void us_gguf_free(us_gguf *g) {
  if (!g) return;
  if (g->kv)
    for (uint64_t i = 0; i < g->n_kv; i++) free(g->kv[i].items);
  free(g->kv);
  free(g->kv_sorted);
  free(g->tensors);
  free(g->tensor_sorted);
  free(g->data);
  free(g->name);
  free(g);
}

const char *us_gguf_name(const us_gguf *g) {
  return g->name;
}
uint32_t us_gguf_alignment(const us_gguf *g) {
  return g->alignment;
}
uint64_t us_gguf_n_kv(const us_gguf *g) {
  return g->n_kv;
}
us_gguf_str us_gguf_kv_key(const us_gguf *g, uint64_t i) {
  return g->kv[i].key;
}
us_gguf_type us_gguf_kv_type(const us_gguf *g, uint64_t i) {
  return g->kv[i].type;
}

int64_t us_gguf_find_kv(const us_gguf *g, const char *key) {
  us_gguf_str k = {key, strlen(key)};
  size_t lo = 0, hi = (size_t)g->n_kv;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = str_cmp(g->kv_sorted[mid].name, k);
    if (r == 0) return (int64_t)g->kv_sorted[mid].index;
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

static us_status find(const us_gguf *g, const char *key, const kv_entry **e, us_err *err) {
  int64_t i = us_gguf_find_kv(g, key);
  if (i < 0) return us_err_set(err, US_ERR_NOT_FOUND, "%s: no key \"%s\"", g->name, key);
  *e = &g->kv[i];
  return US_OK;
}

/* Any integer value at p of type t into *out; false when t is not an integer type or the value
 * does not fit int64. */
static bool int_value(uint32_t t, const unsigned char *p, int64_t *out) {
  switch (t) {
    case US_GGUF_UINT8:
      *out = p[0];
      return true;
    case US_GGUF_INT8:
      *out = (int8_t)p[0];
      return true;
    case US_GGUF_UINT16:
      *out = (int64_t)le(p, 2);
      return true;
    case US_GGUF_INT16:
      *out = (int16_t)le(p, 2);
      return true;
    case US_GGUF_UINT32:
      *out = (int64_t)le(p, 4);
      return true;
    case US_GGUF_INT32:
      *out = (int32_t)le(p, 4);
      return true;
    case US_GGUF_INT64:
      *out = (int64_t)le(p, 8);
      return true;
    case US_GGUF_UINT64: {
      uint64_t v = le(p, 8);
      *out = (int64_t)v;
      return v <= (uint64_t)INT64_MAX;
    }
    default:
      return false;
  }
}

static bool float_value(uint32_t t, const unsigned char *p, double *out) {
  if (t == US_GGUF_FLOAT32) {
    *out = bits_float((uint32_t)le(p, 4));
    return true;
  }
  if (t == US_GGUF_FLOAT64) {
    uint64_t u = le(p, 8);
    memcpy(out, &u, 8);
    return true;
  }
  return false;
}

static us_status wrong_type(const us_gguf *g, const char *key, uint32_t found, const char *want,
                            us_err *err) {
  return us_err_set(err, US_ERR_FORMAT, "%s: key \"%s\" is a %s, expected %s", g->name, key,
                    type_name(found), want);
}

us_status us_gguf_get_int(const us_gguf *g, const char *key, int64_t *out, us_err *err) {
  const kv_entry *e = NULL;
  us_status st = find(g, key, &e, err);
  if (st == US_OK && !int_value(e->type, e->value, out))
    return wrong_type(g, key, e->type, "an integer that fits int64", err);
  return st;
}

us_status us_gguf_get_float(const us_gguf *g, const char *key, double *out, us_err *err) {
  const kv_entry *e = NULL;
  us_status st = find(g, key, &e, err);
  if (st == US_OK && !float_value(e->type, e->value, out))
    return wrong_type(g, key, e->type, "a float32 or float64", err);
  return st;
}

us_status us_gguf_get_bool(const us_gguf *g, const char *key, bool *out, us_err *err) {
  const kv_entry *e = NULL;
  us_status st = find(g, key, &e, err);
  if (st == US_OK && e->type != US_GGUF_BOOL) return wrong_type(g, key, e->type, "a bool", err);
  if (st == US_OK) *out = e->value[0] != 0;
  return st;
}

static us_gguf_str str_at(const unsigned char *p) {
  us_gguf_str s = {(const char *)p + 8, le(p, 8)};
  return s;
}

us_status us_gguf_get_str(const us_gguf *g, const char *key, us_gguf_str *out, us_err *err) {
  const kv_entry *e = NULL;
  us_status st = find(g, key, &e, err);
  if (st == US_OK && e->type != US_GGUF_STRING) return wrong_type(g, key, e->type, "a string", err);
  if (st == US_OK) *out = str_at(e->value);
  return st;
}

us_status us_gguf_get_array(const us_gguf *g, const char *key, us_gguf_type *elem, uint64_t *n,
                            us_err *err) {
  const kv_entry *e = NULL;
  us_status st = find(g, key, &e, err);
  if (st == US_OK && e->type != US_GGUF_ARRAY) return wrong_type(g, key, e->type, "an array", err);
  if (st == US_OK) {
    *elem = e->elem;
    *n = e->n;
  }
  return st;
}

/* The array under key and its element i; fails on a missing key, a non-array or i too big. */
static us_status element(const us_gguf *g, const char *key, uint64_t i, const kv_entry **e,
                         us_err *err) {
  us_status st = find(g, key, e, err);
  if (st == US_OK && (*e)->type != US_GGUF_ARRAY)
    return wrong_type(g, key, (*e)->type, "an array", err);
  if (st == US_OK && i >= (*e)->n)
    return us_err_set(err, US_ERR_FORMAT, "%s: key \"%s\": element %llu of an array of %llu",
                      g->name, key, (unsigned long long)i, (unsigned long long)(*e)->n);
  return st;
}

us_status us_gguf_array_str(const us_gguf *g, const char *key, uint64_t i, us_gguf_str *out,
                            us_err *err) {
  const kv_entry *e = NULL;
  us_status st = element(g, key, i, &e, err);
  if (st == US_OK && e->elem != US_GGUF_STRING)
    return wrong_type(g, key, e->elem, "an array of strings", err);
  if (st == US_OK) *out = str_at(e->items[i]);
  return st;
}

us_status us_gguf_array_int(const us_gguf *g, const char *key, uint64_t i, int64_t *out,
                            us_err *err) {
  const kv_entry *e = NULL;
  us_status st = element(g, key, i, &e, err);
  if (st == US_OK && !int_value(e->elem, e->value + i * scalar_size(e->elem), out))
    return us_err_set(err, US_ERR_FORMAT, "%s: key \"%s\": element %llu is not an int64 integer",
                      g->name, key, (unsigned long long)i);
  return st;
}

us_status us_gguf_array_float(const us_gguf *g, const char *key, uint64_t i, double *out,
                              us_err *err) {
  const kv_entry *e = NULL;
  us_status st = element(g, key, i, &e, err);
  if (st == US_OK && !float_value(e->elem, e->value + i * scalar_size(e->elem), out))
    return wrong_type(g, key, e->elem, "an array of float32 or float64", err);
  return st;
}

uint64_t us_gguf_n_tensors(const us_gguf *g) {
  return g->n_tensors;
}

const us_gguf_tensor *us_gguf_tensor_at(const us_gguf *g, uint64_t i) {
  return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const us_gguf_tensor *us_gguf_find_tensor(const us_gguf *g, const char *name) {
  us_gguf_str k = {name, strlen(name)};
  size_t lo = 0, hi = (size_t)g->n_tensors;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = str_cmp(g->tensor_sorted[mid].name, k);
    if (r == 0) return &g->tensors[g->tensor_sorted[mid].index];
    if (r < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

us_status us_gguf_tensor_float(const us_gguf *g, const us_gguf_tensor *t, float *out, uint64_t n,
                               us_err *err) {
  if (n != t->n_elements)
    return us_err_set(err, US_ERR_FORMAT, "%s: tensor \"%.*s\" holds %llu values, expected %llu",
                      g->name, SHOW(t->name), (unsigned long long)t->n_elements,
                      (unsigned long long)n);
  us_status st = us_gguf_to_float(t->dtype, t->data, n, out, err);
  if (st != US_OK) us_err_prefix(err, "%s: tensor \"%.*s\"", g->name, SHOW(t->name));
  return st;
}

/* ---- writing ---- */

typedef struct tensor_entry {
  char name[US_GGUF_MAX_NAME + 1];
  uint32_t n_dims, dtype;
  uint64_t ne[US_GGUF_MAX_DIMS], n_elements, bytes, offset;
  const void *data;
  bool raw; /* data already in dtype; else floats */
} tensor_entry;

struct us_gguf_writer {
  uint32_t alignment;
  us_buf kv;
  uint64_t n_kv;
  char **keys;
  tensor_entry *tensors;
  uint64_t n_tensors, cap_tensors, data_size;
};

static us_status put_le(us_buf *b, uint64_t v, int bytes) {
  unsigned char p[8];
  for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
  return us_buf_append(b, p, (size_t)bytes);
}

static us_status put_str(us_buf *b, const char *s, size_t len) {
  us_status st = put_le(b, len, 8);
  return st == US_OK && len ? us_buf_append(b, s, len) : st;
}

us_status us_gguf_writer_new(uint32_t alignment, us_gguf_writer **out, us_err *err) {
  *out = NULL;
  if (alignment == 0) alignment = US_GGUF_DEFAULT_ALIGNMENT;
  if ((alignment & (alignment - 1)) != 0)
    return us_err_set(err, US_ERR_INPUT, "gguf: alignment %u is not a power of two", alignment);
  us_gguf_writer *w = calloc(1, sizeof *w);
  if (!w) return us_err_set(err, US_ERR_NOMEM, "gguf: out of memory");
  w->alignment = alignment;
  us_buf_init(&w->kv, 0);
  if (alignment != US_GGUF_DEFAULT_ALIGNMENT) {
    us_status st = us_gguf_add_u32(w, "general.alignment", alignment, err);
    if (st != US_OK) {
      us_gguf_writer_free(w);
      return st;
    }
  }
  *out = w;
  return US_OK;
}

void us_gguf_writer_free(us_gguf_writer *w) {
  if (!w) return;
  for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
  free(w->keys);
  free(w->tensors);
  us_buf_free(&w->kv);
  free(w);
}

/* Appends the key and type of a new key-value after checking the key. */
static us_status begin_kv(us_gguf_writer *w, const char *key, us_gguf_type t, us_err *err) {
  size_t len = key ? strlen(key) : 0;
  if (len == 0 || len > 65535)
    return us_err_set(err, US_ERR_INPUT, "gguf: key of %zu bytes (1..65535)", len);
  for (uint64_t i = 0; i < w->n_kv; i++)
    if (strcmp(w->keys[i], key) == 0)
      return us_err_set(err, US_ERR_INPUT, "gguf: key \"%s\" added twice", key);
  char **keys = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *keys);
  if (!keys) return us_err_set(err, US_ERR_NOMEM, "gguf: out of memory");
  w->keys = keys;
  if (!(keys[w->n_kv] = us_strdup(key)))
    return us_err_set(err, US_ERR_NOMEM, "gguf: out of memory");
  w->n_kv++;
  us_status st = put_str(&w->kv, key, len);
  if (st == US_OK) st = put_le(&w->kv, t, 4);
  if (st != US_OK) return us_err_set(err, st, "gguf: out of memory for key \"%s\"", key);
  return US_OK;
}

static us_status end_kv(us_status st, const char *key, us_err *err) {
  return st == US_OK ? US_OK : us_err_set(err, st, "gguf: out of memory for key \"%s\"", key);
}

us_status us_gguf_add_u32(us_gguf_writer *w, const char *key, uint32_t v, us_err *err) {
  us_status st = begin_kv(w, key, US_GGUF_UINT32, err);
  return st != US_OK ? st : end_kv(put_le(&w->kv, v, 4), key, err);
}

us_status us_gguf_add_i32(us_gguf_writer *w, const char *key, int32_t v, us_err *err) {
  us_status st = begin_kv(w, key, US_GGUF_INT32, err);
  return st != US_OK ? st : end_kv(put_le(&w->kv, (uint32_t)v, 4), key, err);
}

us_status us_gguf_add_u64(us_gguf_writer *w, const char *key, uint64_t v, us_err *err) {
  us_status st = begin_kv(w, key, US_GGUF_UINT64, err);
  return st != US_OK ? st : end_kv(put_le(&w->kv, v, 8), key, err);
}

us_status us_gguf_add_f32(us_gguf_writer *w, const char *key, float v, us_err *err) {
  us_status st = begin_kv(w, key, US_GGUF_FLOAT32, err);
  return st != US_OK ? st : end_kv(put_le(&w->kv, float_bits(v), 4), key, err);
}

us_status us_gguf_add_bool(us_gguf_writer *w, const char *key, bool v, us_err *err) {
  us_status st = begin_kv(w, key, US_GGUF_BOOL, err);
  return st != US_OK ? st : end_kv(put_le(&w->kv, v ? 1 : 0, 1), key, err);
}

us_status us_gguf_add_str(us_gguf_writer *w, const char *key, const char *v, us_err *err) {
  us_status st = begin_kv(w, key, US_GGUF_STRING, err);
  return st != US_OK ? st : end_kv(put_str(&w->kv, v, strlen(v)), key, err);
}

static us_status begin_array(us_gguf_writer *w, const char *key, us_gguf_type elem, uint64_t n,
                             us_err *err) {
  us_status st = begin_kv(w, key, US_GGUF_ARRAY, err);
  if (st != US_OK) return st;
  st = put_le(&w->kv, elem, 4);
  if (st == US_OK) st = put_le(&w->kv, n, 8);
  return end_kv(st, key, err);
}

us_status us_gguf_add_str_array(us_gguf_writer *w, const char *key, const char *const *v,
                                const size_t *lens, uint64_t n, us_err *err) {
  us_status st = begin_array(w, key, US_GGUF_STRING, n, err);
  for (uint64_t i = 0; i < n && st == US_OK; i++)
    st = end_kv(put_str(&w->kv, v[i], lens ? lens[i] : strlen(v[i])), key, err);
  return st;
}

us_status us_gguf_add_i32_array(us_gguf_writer *w, const char *key, const int32_t *v, uint64_t n,
                                us_err *err) {
  us_status st = begin_array(w, key, US_GGUF_INT32, n, err);
  for (uint64_t i = 0; i < n && st == US_OK; i++)
    st = end_kv(put_le(&w->kv, (uint32_t)v[i], 4), key, err);
  return st;
}

us_status us_gguf_add_f32_array(us_gguf_writer *w, const char *key, const float *v, uint64_t n,
                                us_err *err) {
  us_status st = begin_array(w, key, US_GGUF_FLOAT32, n, err);
  for (uint64_t i = 0; i < n && st == US_OK; i++)
    st = end_kv(put_le(&w->kv, float_bits(v[i]), 4), key, err);
  return st;
}

static us_status add_tensor(us_gguf_writer *w, const char *name, uint32_t n_dims,
                            const uint64_t *ne, uint32_t dtype, const void *data, bool raw,
                            us_err *err) {
  size_t len = name ? strlen(name) : 0;
  if (len == 0 || len > US_GGUF_MAX_NAME)
    return us_err_set(err, US_ERR_INPUT, "gguf: tensor name of %zu bytes (1..%d)", len,
                      US_GGUF_MAX_NAME);
  if (n_dims < 1 || n_dims > US_GGUF_MAX_DIMS)
    return us_err_set(err, US_ERR_INPUT, "gguf: tensor %s: %u dimensions (1..%d)", name, n_dims,
                      US_GGUF_MAX_DIMS);
  for (uint64_t i = 0; i < w->n_tensors; i++)
    if (strcmp(w->tensors[i].name, name) == 0)
      return us_err_set(err, US_ERR_INPUT, "gguf: tensor %s added twice", name);
  tensor_entry t = {.n_dims = n_dims, .dtype = dtype, .data = data, .raw = raw, .n_elements = 1};
  memcpy(t.name, name, len + 1);
  for (int d = 0; d < US_GGUF_MAX_DIMS; d++) t.ne[d] = (uint32_t)d < n_dims ? ne[d] : 1;
  for (uint32_t d = 0; d < n_dims; d++) {
    if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX / t.n_elements)
      return us_err_set(err, US_ERR_INPUT, "gguf: tensor %s: dimension %u is %llu", name, d,
                        (unsigned long long)ne[d]);
    t.n_elements *= ne[d];
  }
  int k = dtype_index(dtype);
  if (k < 0 || (!raw && dtype != US_GGUF_F32 && dtype != US_GGUF_F16 && dtype != US_GGUF_BF16 &&
                dtype != US_GGUF_Q8_0))
    return us_err_set(err, US_ERR_INPUT, "gguf: tensor %s: cannot write type %u from floats", name,
                      dtype);
  if (ne[0] % dtypes[k].block != 0 || !us_gguf_dtype_bytes(dtype, t.n_elements, &t.bytes))
    return us_err_set(err, US_ERR_INPUT,
                      "gguf: tensor %s: %llu columns are not whole %s blocks of %u", name,
                      (unsigned long long)ne[0], dtypes[k].name, dtypes[k].block);
  if (w->n_tensors == w->cap_tensors) {
    uint64_t cap = w->cap_tensors ? 2 * w->cap_tensors : 16;
    tensor_entry *p = realloc(w->tensors, (size_t)cap * sizeof *p);
    if (!p) return us_err_set(err, US_ERR_NOMEM, "gguf: out of memory");
    w->tensors = p;
    w->cap_tensors = cap;
  }
  t.offset = w->data_size;
  w->data_size = (t.offset + t.bytes + w->alignment - 1) / w->alignment * w->alignment;
  w->tensors[w->n_tensors++] = t;
  return US_OK;
}

us_status us_gguf_add_tensor(us_gguf_writer *w, const char *name, uint32_t n_dims,
                             const uint64_t *ne, uint32_t dtype, const float *data, us_err *err) {
  return add_tensor(w, name, n_dims, ne, dtype, data, false, err);
}

us_status us_gguf_add_tensor_raw(us_gguf_writer *w, const char *name, uint32_t n_dims,
                                 const uint64_t *ne, uint32_t dtype, const void *data,
                                 us_err *err) {
  return add_tensor(w, name, n_dims, ne, dtype, data, true, err);
}

/* Where serialised bytes go: a buffer or a file. */
typedef struct sink {
  us_buf *buf;
  FILE *file;
  const char *path;
} sink;

static us_status emit(sink *s, const void *p, size_t n, us_err *err) {
  if (n == 0) return US_OK;
  if (s->buf) {
    us_status st = us_buf_append(s->buf, p, n);
    return st == US_OK ? st : us_err_set(err, st, "gguf: out of memory writing the file");
  }
  if (fwrite(p, 1, n, s->file) != n)
    return us_err_set(err, US_ERR_IO, "%s: write failed: %s", s->path, strerror(errno));
  return US_OK;
}

static us_status emit_zeros(sink *s, uint64_t n, us_err *err) {
  static const unsigned char zeros[64];
  us_status st = US_OK;
  while (n > 0 && st == US_OK) {
    size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
    st = emit(s, zeros, k, err);
    n -= k;
  }
  return st;
}

/* Header, key-values and tensor infos. */
static us_status emit_head(const us_gguf_writer *w, sink *s, uint64_t *written, us_err *err) {
  us_buf h;
  us_buf_init(&h, 0);
  us_status st = us_buf_append(&h, "GGUF", 4);
  if (st == US_OK) st = put_le(&h, US_GGUF_VERSION, 4);
  if (st == US_OK) st = put_le(&h, w->n_tensors, 8);
  if (st == US_OK) st = put_le(&h, w->n_kv, 8);
  if (st == US_OK && w->kv.len) st = us_buf_append(&h, w->kv.data, w->kv.len);
  for (uint64_t i = 0; i < w->n_tensors && st == US_OK; i++) {
    const tensor_entry *t = &w->tensors[i];
    st = put_str(&h, t->name, strlen(t->name));
    if (st == US_OK) st = put_le(&h, t->n_dims, 4);
    for (uint32_t d = 0; d < t->n_dims && st == US_OK; d++) st = put_le(&h, t->ne[d], 8);
    if (st == US_OK) st = put_le(&h, t->dtype, 4);
    if (st == US_OK) st = put_le(&h, t->offset, 8);
  }
  if (st != US_OK) st = us_err_set(err, st, "gguf: out of memory for the header");
  if (st == US_OK) st = emit(s, h.data, h.len, err);
  *written = h.len;
  us_buf_free(&h);
  return st;
}

/* One tensor's data, converted from floats in chunks. */
static us_status emit_tensor(const tensor_entry *t, sink *s, unsigned char *scratch, us_err *err) {
  if (t->raw) return emit(s, t->data, (size_t)t->bytes, err);
  const uint64_t chunk = 4096; /* elements; a multiple of every block size */
  const float *src = t->data;
  us_status st = US_OK;
  for (uint64_t at = 0; at < t->n_elements && st == US_OK; at += chunk) {
    uint64_t n = t->n_elements - at < chunk ? t->n_elements - at : chunk, bytes;
    us_gguf_dtype_bytes(t->dtype, n, &bytes);
    st = us_gguf_from_float(t->dtype, src + at, n, scratch, err);
    if (st == US_OK) st = emit(s, scratch, (size_t)bytes, err);
  }
  return st;
}

static us_status emit_all(const us_gguf_writer *w, sink *s, us_err *err) {
  uint64_t head = 0, a = w->alignment;
  us_status st = emit_head(w, s, &head, err);
  if (st == US_OK) st = emit_zeros(s, (head + a - 1) / a * a - head, err);
  unsigned char *scratch = malloc(4096 * 4);
  if (!scratch && st == US_OK) st = us_err_set(err, US_ERR_NOMEM, "gguf: out of memory");
  uint64_t at = 0;
  for (uint64_t i = 0; i < w->n_tensors && st == US_OK; i++) {
    const tensor_entry *t = &w->tensors[i];
    st = emit_zeros(s, t->offset - at, err);
    if (st == US_OK) st = emit_tensor(t, s, scratch, err);
    at = t->offset + t->bytes;
  }
  /* pad the last tensor too, so the data section is whole blocks of the alignment */
  if (st == US_OK) st = emit_zeros(s, w->data_size - at, err);
  free(scratch);
  return st;
}

us_status us_gguf_writer_serialize(const us_gguf_writer *w, us_buf *out, us_err *err) {
  sink s = {out, NULL, NULL};
  return emit_all(w, &s, err);
}

us_status us_gguf_writer_write(const us_gguf_writer *w, const char *path, us_err *err) {
  size_t n = strlen(path) + 5;
  char *tmp = malloc(n);
  if (!tmp) return us_err_set(err, US_ERR_NOMEM, "%s: out of memory", path);
  snprintf(tmp, n, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    us_status st = us_err_set(err, US_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return st;
  }
  sink s = {NULL, f, tmp};
  us_status st = emit_all(w, &s, err);
  if (st == US_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
    st = us_err_set(err, US_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
  if (fclose(f) != 0 && st == US_OK)
    st = us_err_set(err, US_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
  if (st == US_OK && rename(tmp, path) != 0)
    st = us_err_set(err, US_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
  if (st != US_OK) remove(tmp);
  free(tmp);
  return st;
}
