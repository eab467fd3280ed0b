/* Fuzz target: the GGUF reader (student/gguf.h). The bytes are read as a GGUF file; what loads
 * has every key looked up again by name (keys are unique, so the lookup finds the same entry),
 * every value read through the typed getters, every array element visited (the first 4096), and
 * every tensor found by name and converted to floats; f32, f16 and bf16 tensors must convert
 * back to the bytes they came from (NaN payloads aside). */
#include <math.h>

#include "fuzz_util.h"
#include "student/gguf.h"

static char key_buf[65536];

static const char *key_cstr(us_gguf_str k) {
  memcpy(key_buf, k.ptr, (size_t)k.len);
  key_buf[k.len] = '\0';
  return key_buf;
}

static void visit_kv(const us_gguf *g, uint64_t i) {
  us_gguf_str k = us_gguf_kv_key(g, i), s;
  if (memchr(k.ptr, 0, (size_t)k.len)) return; /* not reachable through a C string */
  const char *key = key_cstr(k);
  us_err err;
  if (us_gguf_find_kv(g, key) != (int64_t)i) {
    fprintf(stderr, "fuzz_gguf: key %llu not found back by name\n", (unsigned long long)i);
    abort();
  }
  int64_t v;
  double f;
  bool b;
  us_gguf_get_int(g, key, &v, &err);
  us_gguf_get_float(g, key, &f, &err);
  us_gguf_get_bool(g, key, &b, &err);
  us_gguf_get_str(g, key, &s, &err);
  us_gguf_type elem;
  uint64_t n;
  if (us_gguf_get_array(g, key, &elem, &n, &err) != US_OK) return;
  for (uint64_t e = 0; e <= n && e < 4096; e++) { /* e == n: out of range, an error */
    us_gguf_array_str(g, key, e, &s, &err);
    us_gguf_array_int(g, key, e, &v, &err);
    us_gguf_array_float(g, key, e, &f, &err);
  }
}

static void visit_tensor(const us_gguf *g, const us_gguf_tensor *t) {
  char name[US_GGUF_MAX_NAME + 1];
  memcpy(name, t->name.ptr, (size_t)t->name.len);
  name[t->name.len] = '\0';
  if (!memchr(t->name.ptr, 0, (size_t)t->name.len) && us_gguf_find_tensor(g, name) != t) {
    fprintf(stderr, "fuzz_gguf: tensor %s not found back by name\n", name);
    abort();
  }
  if (t->n_elements > (1u << 20)) return;
  float *x = malloc((size_t)t->n_elements * sizeof *x);
  unsigned char *back = malloc((size_t)t->bytes + 1);
  us_err err;
  if (x && back && us_gguf_tensor_float(g, t, x, t->n_elements, &err) == US_OK &&
      us_gguf_from_float(t->dtype, x, t->n_elements, back, &err) == US_OK &&
      t->dtype != US_GGUF_Q8_0) {
    size_t width = t->dtype == US_GGUF_F32 ? 4 : 2;
    for (uint64_t i = 0; i < t->n_elements; i++)
      if (!isnan(x[i]) && memcmp(back + i * width, t->data + i * width, width) != 0) {
        fprintf(stderr, "fuzz_gguf: tensor %s value %llu changed in a round trip\n", name,
                (unsigned long long)i);
        abort();
      }
  }
  free(x);
  free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  us_gguf *g = NULL;
  us_err err;
  if (us_gguf_read_buffer(data, size, "fuzz.gguf", &g, &err) != US_OK) {
    if (!strstr(err.msg, "fuzz.gguf")) {
      fprintf(stderr, "fuzz_gguf: message without the file name: %s\n", err.msg);
      abort();
    }
    return 0;
  }
  for (uint64_t i = 0; i < us_gguf_n_kv(g); i++) visit_kv(g, i);
  for (uint64_t i = 0; i < us_gguf_n_tensors(g); i++) visit_tensor(g, us_gguf_tensor_at(g, i));
  us_gguf_free(g);
  return 0;
}
