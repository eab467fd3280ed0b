/* Tests of the GGUF container (student/gguf.h): every key-value type and tensor type round trips
 * through the writer and the reader, the float conversions match hand-computed values, and the
 * reader refuses truncated, overflowing, misaligned and inconsistent files with a message that
 * names the file and the fault. */
/* cmocka.h needs these headers before it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
/* clang-format on */

#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include "student/gguf.h"

static float matrix[64 * 3]; /* (3, 64) */

static void fill_matrix(void) {
  for (int i = 0; i < 64 * 3; i++) matrix[i] = sinf((float)i * 0.37f) * (float)(1 + i % 5);
}

/* A file with one key of each kind and one tensor of each writable type. */
static void build(us_buf *out, uint32_t alignment) {
  us_gguf_writer *w = NULL;
  us_err err;
  assert_int_equal(us_gguf_writer_new(alignment, &w, &err), US_OK);
  const char *toks[] = {"a", "", "\xc4\x8a", "<|sep|>"};
  int32_t ints[] = {-1, 0, 7};
  float floats[] = {0.5f, -2.0f};
  assert_int_equal(us_gguf_add_str(w, "general.architecture", "llama", &err), US_OK);
  assert_int_equal(us_gguf_add_u32(w, "llama.block_count", 2, &err), US_OK);
  assert_int_equal(us_gguf_add_i32(w, "test.i32", -5, &err), US_OK);
  assert_int_equal(us_gguf_add_u64(w, "test.u64", 1ull << 40, &err), US_OK);
  assert_int_equal(us_gguf_add_f32(w, "llama.rope.freq_base", 10000.0f, &err), US_OK);
  assert_int_equal(us_gguf_add_bool(w, "test.bool", true, &err), US_OK);
  assert_int_equal(us_gguf_add_str_array(w, "tokenizer.ggml.tokens", toks, NULL, 4, &err), US_OK);
  assert_int_equal(us_gguf_add_i32_array(w, "test.ints", ints, 3, &err), US_OK);
  assert_int_equal(us_gguf_add_f32_array(w, "test.floats", floats, 2, &err), US_OK);
  assert_int_equal(us_gguf_add_str(w, "test.bool", "again", &err), US_ERR_INPUT);
  uint64_t ne[2] = {64, 3};
  assert_int_equal(us_gguf_add_tensor(w, "w.f32", 2, ne, US_GGUF_F32, matrix, &err), US_OK);
  assert_int_equal(us_gguf_add_tensor(w, "w.f16", 2, ne, US_GGUF_F16, matrix, &err), US_OK);
  assert_int_equal(us_gguf_add_tensor(w, "w.bf16", 2, ne, US_GGUF_BF16, matrix, &err), US_OK);
  assert_int_equal(us_gguf_add_tensor(w, "w.q8_0", 2, ne, US_GGUF_Q8_0, matrix, &err), US_OK);
  uint64_t odd[1] = {5};
  assert_int_equal(us_gguf_add_tensor(w, "norm", 1, odd, US_GGUF_F32, matrix, &err), US_OK);
  assert_int_equal(us_gguf_add_tensor(w, "bad", 1, odd, US_GGUF_Q8_0, matrix, &err), US_ERR_INPUT);
  assert_int_equal(us_gguf_add_tensor(w, "norm", 1, odd, US_GGUF_F32, matrix, &err), US_ERR_INPUT);
  us_buf_init(out, 0);
  assert_int_equal(us_gguf_writer_serialize(w, out, &err), US_OK);
  us_gguf_writer_free(w);
}

static void conversions_should_round_to_nearest_even(void **state) {
  (void)state;
  assert_int_equal(us_gguf_f16_from_float(1.0f), 0x3c00);
  assert_int_equal(us_gguf_f16_from_float(-2.0f), 0xc000);
  assert_int_equal(us_gguf_f16_from_float(65504.0f), 0x7bff);
  assert_int_equal(us_gguf_f16_from_float(65520.0f), 0x7c00);           /* rounds to infinity */
  assert_int_equal(us_gguf_f16_from_float(5.9604645e-8f), 0x0001);      /* smallest subnormal */
  assert_int_equal(us_gguf_f16_from_float(1.0f + 1.0f / 2048), 0x3c00); /* tie to even */
  assert_int_equal(us_gguf_f16_from_float(1.0f + 3.0f / 2048), 0x3c02); /* tie to even, up */
  assert_true(isnan(us_gguf_f16_to_float(us_gguf_f16_from_float(NAN))));
  assert_true(us_gguf_f16_to_float(0x7c00) == INFINITY);
  for (int h = 0; h < 0x7c00; h++) /* every finite half survives the round trip */
    assert_int_equal(us_gguf_f16_from_float(us_gguf_f16_to_float((uint16_t)h)), h);
  assert_int_equal(us_gguf_bf16_from_float(1.0f), 0x3f80);
  assert_int_equal(us_gguf_bf16_from_float(1.00390625f), 0x3f80); /* tie to even */
  assert_true(us_gguf_bf16_to_float(0xc040) == -3.0f);
  assert_true(isnan(us_gguf_bf16_to_float(us_gguf_bf16_from_float(NAN))));
}

static void q8_0_should_match_the_reference_block(void **state) {
  (void)state;
  float x[32], y[32];
  for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) / 8.0f; /* max |x| = 2 */
  unsigned char q[34];
  us_err err;
  assert_int_equal(us_gguf_from_float(US_GGUF_Q8_0, x, 32, q, &err), US_OK);
  assert_int_equal(q[0] | q[1] << 8, us_gguf_f16_from_float(2.0f / 127.0f));
  assert_int_equal((int8_t)q[2], -127);
  assert_int_equal((int8_t)q[2 + 16], 0);
  assert_int_equal((int8_t)q[2 + 17], 8); /* 0.125 * 63.5 = 7.94 */
  assert_int_equal(us_gguf_to_float(US_GGUF_Q8_0, q, 32, y, &err), US_OK);
  for (int i = 0; i < 32; i++) assert_true(fabsf(x[i] - y[i]) <= 2.0f / 127.0f);
  x[3] = NAN;
  assert_int_equal(us_gguf_from_float(US_GGUF_Q8_0, x, 32, q, &err), US_ERR_INPUT);
  assert_int_equal(us_gguf_from_float(US_GGUF_Q8_0, x, 31, q, &err), US_ERR_FORMAT);
  uint64_t bytes = 0;
  assert_true(us_gguf_dtype_bytes(12, 512, &bytes)); /* q4_K: 144 bytes a block of 256 */
  assert_int_equal(bytes, 288);
  assert_false(us_gguf_dtype_bytes(US_GGUF_Q8_0, 33, &bytes));
  assert_false(us_gguf_dtype_bytes(99, 32, &bytes));
}

static void file_should_round_trip(void **state) {
  (void)state;
  for (int pass = 0; pass < 2; pass++) {
    uint32_t alignment = pass ? 64 : 0;
    us_buf b;
    build(&b, alignment);
    us_gguf *g = NULL;
    us_err err;
    assert_int_equal(us_gguf_read_buffer(b.data, b.len, "mem.gguf", &g, &err), US_OK);
    assert_int_equal(us_gguf_alignment(g), pass ? 64 : 32);
    assert_int_equal(us_gguf_n_kv(g), pass ? 10 : 9);
    us_gguf_str s;
    int64_t i;
    double f;
    bool flag;
    assert_int_equal(us_gguf_get_str(g, "general.architecture", &s, &err), US_OK);
    assert_true(us_gguf_str_eq(s, "llama"));
    assert_int_equal(us_gguf_get_int(g, "llama.block_count", &i, &err), US_OK);
    assert_int_equal(i, 2);
    assert_int_equal(us_gguf_get_int(g, "test.i32", &i, &err), US_OK);
    assert_int_equal(i, -5);
    assert_int_equal(us_gguf_get_int(g, "test.u64", &i, &err), US_OK);
    assert_int_equal(i, 1ll << 40);
    assert_int_equal(us_gguf_get_float(g, "llama.rope.freq_base", &f, &err), US_OK);
    assert_true(f == 10000.0);
    assert_int_equal(us_gguf_get_bool(g, "test.bool", &flag, &err), US_OK);
    assert_true(flag);
    assert_int_equal(us_gguf_get_int(g, "general.architecture", &i, &err), US_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "mem.gguf"));
    assert_int_equal(us_gguf_get_int(g, "nope", &i, &err), US_ERR_NOT_FOUND);
    us_gguf_type elem;
    uint64_t n;
    assert_int_equal(us_gguf_get_array(g, "tokenizer.ggml.tokens", &elem, &n, &err), US_OK);
    assert_int_equal(elem, US_GGUF_STRING);
    assert_int_equal(n, 4);
    assert_int_equal(us_gguf_array_str(g, "tokenizer.ggml.tokens", 1, &s, &err), US_OK);
    assert_int_equal(s.len, 0);
    assert_int_equal(us_gguf_array_str(g, "tokenizer.ggml.tokens", 3, &s, &err), US_OK);
    assert_true(us_gguf_str_eq(s, "<|sep|>"));
    assert_int_equal(us_gguf_array_str(g, "tokenizer.ggml.tokens", 4, &s, &err), US_ERR_FORMAT);
    assert_int_equal(us_gguf_array_int(g, "test.ints", 0, &i, &err), US_OK);
    assert_int_equal(i, -1);
    assert_int_equal(us_gguf_array_float(g, "test.floats", 1, &f, &err), US_OK);
    assert_true(f == -2.0);
    assert_int_equal(us_gguf_array_int(g, "test.floats", 0, &i, &err), US_ERR_FORMAT);

    assert_int_equal(us_gguf_n_tensors(g), 5);
    float back[64 * 3];
    const char *names[] = {"w.f32", "w.f16", "w.bf16", "w.q8_0"};
    float tol[] = {0.0f, 3e-3f, 2e-2f, 5.0f / 127.0f};
    for (int t = 0; t < 4; t++) {
      const us_gguf_tensor *ti = us_gguf_find_tensor(g, names[t]);
      assert_non_null(ti);
      assert_int_equal(ti->n_dims, 2);
      assert_int_equal(ti->ne[0], 64);
      assert_int_equal(ti->ne[1], 3);
      assert_int_equal(ti->offset % us_gguf_alignment(g), 0);
      assert_int_equal(us_gguf_tensor_float(g, ti, back, 64 * 3, &err), US_OK);
      for (int k = 0; k < 64 * 3; k++) assert_true(fabsf(back[k] - matrix[k]) <= tol[t]);
    }
    const us_gguf_tensor *norm = us_gguf_find_tensor(g, "norm");
    assert_non_null(norm);
    assert_int_equal(us_gguf_tensor_float(g, norm, back, 6, &err), US_ERR_FORMAT);
    assert_null(us_gguf_find_tensor(g, "absent"));
    us_gguf_free(g);

    /* the file form: written atomically, read back the same */
    char path[] = "/tmp/us-test-gguf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    us_gguf_writer *w = NULL;
    assert_int_equal(us_gguf_writer_new(alignment, &w, &err), US_OK);
    uint64_t ne[2] = {64, 3};
    assert_int_equal(us_gguf_add_tensor(w, "m", 2, ne, US_GGUF_F16, matrix, &err), US_OK);
    assert_int_equal(us_gguf_writer_write(w, path, &err), US_OK);
    us_gguf_writer_free(w);
    assert_int_equal(us_gguf_read_file(path, &g, &err), US_OK);
    assert_int_equal(us_gguf_n_tensors(g), 1);
    us_gguf_free(g);
    unlink(path);
    assert_int_equal(us_gguf_read_file(path, &g, &err), US_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    us_buf_free(&b);
  }
}

/* Reads b, expecting US_ERR_FORMAT and a message holding both the name and what. */
static void expect_refused(const us_buf *b, size_t len, const char *what) {
  us_gguf *g = NULL;
  us_err err;
  assert_int_equal(us_gguf_read_buffer(b->data, len, "bad.gguf", &g, &err), US_ERR_FORMAT);
  assert_null(g);
  if (!strstr(err.msg, "bad.gguf") || !strstr(err.msg, what)) fail_msg("message: %s", err.msg);
}

static void put64(us_buf *b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; i++) b->data[at + (size_t)i] = (char)(v >> (8 * i));
}

static void reader_should_refuse_broken_files(void **state) {
  (void)state;
  us_buf b;
  build(&b, 0);
  /* every truncation (the last tensor, 5 floats, needs no padding after it: llama.cpp does not
   * ask for it either) */
  for (size_t len = 0; len < b.len - 12; len++) {
    us_gguf *g = NULL;
    us_err err;
    if (us_gguf_read_buffer(b.data, len, "cut.gguf", &g, &err) == US_OK)
      fail_msg("a file cut at %zu of %zu bytes was read", len, b.len);
    assert_non_null(strstr(err.msg, "cut.gguf"));
  }
  us_buf c;
  us_buf_init(&c, 0);
  us_buf_append(&c, b.data, b.len);
  c.data[0] = 'X';
  expect_refused(&c, c.len, "not a GGUF file");
  memcpy(c.data, b.data, b.len);
  c.data[4] = 2;
  expect_refused(&c, c.len, "version 2");
  memcpy(c.data, b.data, b.len);
  put64(&c, 8, UINT64_MAX); /* tensor count */
  expect_refused(&c, c.len, "cannot fit");
  memcpy(c.data, b.data, b.len);
  put64(&c, 24, UINT64_MAX - 3); /* length of the first key */
  expect_refused(&c, c.len, "not a complete GGUF file");
  memcpy(c.data, b.data, b.len);
  put64(&c, 24, 0); /* empty key */
  expect_refused(&c, c.len, "key of 0 bytes");
  /* first key "general.architecture" (20 bytes): type at 52, value length at 56 */
  memcpy(c.data, b.data, b.len);
  c.data[52] = 13;
  expect_refused(&c, c.len, "unknown value type 13");
  memcpy(c.data, b.data, b.len);
  put64(&c, 56, UINT64_MAX);
  expect_refused(&c, c.len, "not a complete GGUF file");
  us_buf_free(&c);
  us_buf_free(&b);
}

/* A hand-built file: header, one key, one tensor info; fields patched per case. */
static void small_file(us_buf *b, uint32_t align_type, uint32_t alignment, uint64_t offset,
                       uint32_t dtype, uint64_t cols, size_t data_bytes, const char *name) {
  us_buf_init(b, 0);
  unsigned char hdr[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
  us_buf_append(b, hdr, 24);
  unsigned char k[8] = {17};
  us_buf_append(b, k, 8);
  us_buf_append(b, "general.alignment", 17);
  unsigned char t[4] = {(unsigned char)align_type},
                v[4] = {(unsigned char)alignment, (unsigned char)(alignment >> 8)};
  us_buf_append(b, t, 4);
  us_buf_append(b, v, 4);
  unsigned char n[8] = {(unsigned char)strlen(name)};
  us_buf_append(b, n, 8);
  us_buf_append(b, name, strlen(name));
  unsigned char dims[4] = {1};
  us_buf_append(b, dims, 4);
  unsigned char ne[8];
  for (int i = 0; i < 8; i++) ne[i] = (unsigned char)(cols >> (8 * i));
  us_buf_append(b, ne, 8);
  unsigned char ty[4] = {(unsigned char)dtype};
  us_buf_append(b, ty, 4);
  unsigned char off[8];
  for (int i = 0; i < 8; i++) off[i] = (unsigned char)(offset >> (8 * i));
  us_buf_append(b, off, 8);
  size_t a = alignment ? alignment : 32;
  while (b->len % a) us_buf_append(b, "", 1);
  for (size_t i = 0; i < data_bytes; i++) us_buf_append(b, "\0", 1);
}

static void reader_should_check_alignment_and_tensor_data(void **state) {
  (void)state;
  us_buf b;
  us_gguf *g = NULL;
  us_err err;
  small_file(&b, US_GGUF_UINT32, 64, 0, US_GGUF_F32, 4, 16, "t");
  assert_int_equal(us_gguf_read_buffer(b.data, b.len, "ok.gguf", &g, &err), US_OK);
  assert_int_equal(us_gguf_alignment(g), 64);
  us_gguf_free(g);
  us_buf_free(&b);
  small_file(&b, US_GGUF_UINT32, 48, 0, US_GGUF_F32, 4, 16, "t");
  expect_refused(&b, b.len, "not a power of two");
  us_buf_free(&b);
  small_file(&b, US_GGUF_INT32, 64, 0, US_GGUF_F32, 4, 16, "t");
  expect_refused(&b, b.len, "expected a uint32");
  us_buf_free(&b);
  small_file(&b, US_GGUF_UINT32, 32, 32, US_GGUF_F32, 4, 64, "t");
  expect_refused(&b, b.len, "data offset 32, expected 0");
  us_buf_free(&b);
  small_file(&b, US_GGUF_UINT32, 32, 0, US_GGUF_F32, 4, 15, "t");
  expect_refused(&b, b.len, "not a complete GGUF file");
  us_buf_free(&b);
  small_file(&b, US_GGUF_UINT32, 32, 0, US_GGUF_Q8_0, 16, 64, "t");
  expect_refused(&b, b.len, "not whole q8_0 blocks");
  us_buf_free(&b);
  small_file(&b, US_GGUF_UINT32, 32, 0, 77, 16, 64, "t");
  expect_refused(&b, b.len, "unknown tensor type 77");
  us_buf_free(&b);
  small_file(&b, US_GGUF_UINT32, 32, 0, US_GGUF_F32, 0, 64, "t");
  expect_refused(&b, b.len, "dimension 0 is 0");
  us_buf_free(&b);
  small_file(&b, US_GGUF_UINT32, 32, 0, US_GGUF_F32, UINT64_MAX / 2, 64, "t");
  expect_refused(&b, b.len, "overflow");
  us_buf_free(&b);
  small_file(&b, US_GGUF_UINT32, 32, 0, US_GGUF_F32, 4, 16,
             "a-name-longer-than-sixty-three-bytes-is-refused-by-ggml-and-by-us");
  expect_refused(&b, b.len, "name of 65 bytes");
  us_buf_free(&b);
  /* a q4_K tensor is read (its size known) but not converted */
  small_file(&b, US_GGUF_UINT32, 32, 0, 12, 256, 144, "q");
  assert_int_equal(us_gguf_read_buffer(b.data, b.len, "k.gguf", &g, &err), US_OK);
  float out[256];
  assert_int_equal(us_gguf_tensor_float(g, us_gguf_find_tensor(g, "q"), out, 256, &err),
                   US_ERR_FORMAT);
  assert_non_null(strstr(err.msg, "q4_K"));
  assert_non_null(strstr(err.msg, "k.gguf"));
  us_gguf_free(g);
  us_buf_free(&b);
}

static void reader_should_refuse_duplicates(void **state) {
  (void)state;
  us_buf b;
  us_buf_init(&b, 0);
  unsigned char hdr[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  us_buf_append(&b, hdr, 24);
  for (int i = 0; i < 2; i++) {
    unsigned char kv[8 + 3 + 4 + 4] = {3, 0, 0, 0, 0, 0, 0, 0, 'a', '.', 'b', 4, 0, 0, 0, 7};
    us_buf_append(&b, kv, sizeof kv);
  }
  expect_refused(&b, b.len, "key \"a.b\" appears twice");
  b.data[b.len - 9] = 'c'; /* the second key becomes "a.c" */
  us_gguf *g = NULL;
  us_err err;
  assert_int_equal(us_gguf_read_buffer(b.data, b.len, "ok.gguf", &g, &err), US_OK);
  int64_t v = 0;
  assert_int_equal(us_gguf_get_int(g, "a.c", &v, &err), US_OK);
  assert_int_equal(v, 7);
  us_gguf_free(g);
  us_buf_free(&b);
}

int main(void) {
  fill_matrix();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(conversions_should_round_to_nearest_even),
      cmocka_unit_test(q8_0_should_match_the_reference_block),
      cmocka_unit_test(file_should_round_trip),
      cmocka_unit_test(reader_should_refuse_broken_files),
      cmocka_unit_test(reader_should_check_alignment_and_tensor_data),
      cmocka_unit_test(reader_should_refuse_duplicates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
