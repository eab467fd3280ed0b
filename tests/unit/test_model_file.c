/* The classifier model file: round trip (plain, int8 and 4-bit), version 1 files still loading
 * (version 2 ones: tests/unit/test_autotune.c, with a file the version 2 code wrote),
 * and refusal, never a crash, of every truncation length, every flipped byte, an unknown
 * version, and checksummed-but-inconsistent bodies. Run it under ASan (-DUS_SANITIZE=ON). */
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/hash.h"
#include "core/rng.h"
#include "student/classifier.h"
#include "student/classifier_int.h"
#include "understudy.h"

static char *labels[] = {"greeting", "complaint", "question"};
static const char *texts[] = {"hello there",    "hi friend",        "good morning",
                              "this is broken", "terrible service", "I am angry",
                              "how do I pay?",  "where is it?",     "what time?"};

static us_classifier *small_model_bits(bool hidden, int bits) {
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  p.quantize_bits = bits;
  p.dim = 4;
  p.buckets = 200;
  p.minn = 3;
  p.maxn = 3;
  p.epochs = 3;
  p.threads = 1;
  if (hidden) {
    p.n_hidden = 1;
    p.hidden[0] = 3;
  }
  us_example ex[9];
  for (int i = 0; i < 9; i++) ex[i] = (us_example){texts[i], i / 3, NULL};
  us_classifier *m = NULL;
  us_err err;
  if (us_classifier_train(&p, labels, 3, ex, 9, NULL, 0, NULL, NULL, &m, &err) != US_OK)
    fail_msg("train: %s", err.msg);
  return m;
}

static us_classifier *small_model(bool hidden) {
  return small_model_bits(hidden, 8);
}

static char *tmp_path(const char *name) {
  static char path[256];
  snprintf(path, sizeof path, "/tmp/us_test_model_file_%d_%s", (int)getpid(), name);
  return path;
}

static void read_all(const char *path, char **data, size_t *len) {
  us_err err;
  if (us_read_file(path, 0, data, len, &err) != US_OK) fail_msg("%s", err.msg);
}

static void reseal_v(char *data, size_t len) { /* recompute the checksum after an edit */
  unsigned char sum[32];
  us_sha256(data + 52, len - 52, sum);
  memcpy(data + 20, sum, 32);
}

static void assert_same_predictions(const us_classifier *a, const us_classifier *b, float tol) {
  float pa[3], pb[3];
  us_err err;
  for (int i = 0; i < 9; i++) {
    assert_int_equal(us_classifier_predict(a, texts[i], pa, &err), US_OK);
    assert_int_equal(us_classifier_predict(b, texts[i], pb, &err), US_OK);
    for (int k = 0; k < 3; k++)
      if (fabsf(pa[k] - pb[k]) > tol) fail_msg("text %d label %d: %g vs %g", i, k, pa[k], pb[k]);
  }
}

static void model_should_round_trip_plain_and_quantized(void **state) {
  (void)state;
  size_t q_size[2] = {0, 0}; /* [bits == 4] */
  for (int run = 0; run < 4; run++) {
    int hidden = run & 1, bits = run < 2 ? 8 : 4;
    us_classifier *m = small_model_bits(hidden, bits), *back = NULL;
    us_classifier *plain_m = small_model_bits(hidden, bits);
    us_err err;
    char *path = tmp_path("plain.bin");
    assert_int_equal(us_classifier_save(m, path, &err), US_OK);
    assert_int_equal(us_classifier_load(path, &back, &err), US_OK);
    assert_same_predictions(m, back, 0.0f);
    assert_int_equal(us_classifier_n_labels(back), 3);
    assert_string_equal(us_classifier_label(back, 1), "complaint");
    assert_int_equal(us_classifier_param_count(back), us_classifier_param_count(m));
    assert_int_equal(us_classifier_get_params(back)->n_hidden, hidden);
    us_classifier_free(back);
    /* quantised: smaller file, nearly the same probabilities */
    char *plain;
    size_t plain_len, q_len;
    read_all(path, &plain, &plain_len);
    us_classifier_quantize(m);
    assert_int_equal(us_classifier_save(m, path, &err), US_OK);
    assert_int_equal(us_classifier_load(path, &back, &err), US_OK);
    assert_same_predictions(m, back, 0.0f);
    assert_int_equal(us_classifier_get_params(back)->quantize_bits, bits);
    /* the quantised weights stay close to the float ones (one thread: the same training) */
    assert_same_predictions(plain_m, back, bits == 8 ? 0.02f : 0.1f);
    char *q;
    read_all(path, &q, &q_len);
    assert_true(q_len < plain_len);
    if (!hidden) q_size[bits == 4] = q_len;
    free(plain);
    free(q);
    unlink(path);
    us_classifier_free(back);
    us_classifier_free(m);
    us_classifier_free(plain_m);
  }
  assert_true(q_size[1] < q_size[0]); /* 4-bit rows are half the bytes of int8 ones */
}

/* Rewrites a version 4 file of a model trained without the search or the naive Bayes term as
 * version 1 wrote it: 15 parameter ints instead of 18, none of version 3's tokeniser options and
 * search record (56 bytes after the seed when the chosen setting is empty), and none of version
 * 4's naive Bayes section (8 bytes at the end when there is no term). */
static char *as_version_1(const char *data, size_t len, size_t *out_len) {
  char *v1 = malloc(len);
  size_t seed_end = 52 + 18 * 4 + 4 * 8 + 8, v3_extra = 4 * 4 + 8 + 5 * 4 + 8 + 4;
  memcpy(v1, data, 52 + 15 * 4);
  memcpy(v1 + 52 + 15 * 4, data + 52 + 18 * 4, seed_end - (52 + 18 * 4));
  size_t v4_extra = 4 + 4;
  memcpy(v1 + seed_end - 12, data + seed_end + v3_extra, len - seed_end - v3_extra - v4_extra);
  *out_len = len - 12 - v3_extra - v4_extra;
  uint32_t version = 1;
  uint64_t body = *out_len - 52;
  memcpy(v1 + 8, &version, 4);
  memcpy(v1 + 12, &body, 8);
  unsigned char sum[32];
  us_sha256(v1 + 52, body, sum);
  memcpy(v1 + 20, sum, 32);
  return v1;
}

static void version_1_files_should_still_load(void **state) {
  (void)state;
  for (int quantized = 0; quantized < 2; quantized++) {
    us_classifier *m = small_model(true), *back = NULL;
    if (quantized) us_classifier_quantize(m);
    us_err err;
    char *path = tmp_path("v1.bin"), *data;
    size_t len, v1_len;
    assert_int_equal(us_classifier_save(m, path, &err), US_OK);
    read_all(path, &data, &len);
    char *v1 = as_version_1(data, len, &v1_len);
    assert_int_equal(us_classifier_load_buffer(v1, v1_len, "v1.bin", &back, &err), US_OK);
    assert_same_predictions(m, back, 0.0f);
    assert_int_equal(us_classifier_get_params(back)->min_count, 1);
    assert_int_equal(us_classifier_get_params(back)->min_count_ngram, 1);
    assert_int_equal(us_classifier_get_params(back)->quantize_bits, 8);
    /* saved again, it is a version 4 file */
    assert_int_equal(us_classifier_save(back, path, &err), US_OK);
    us_classifier_free(back);
    free(data);
    read_all(path, &data, &len);
    uint32_t version;
    memcpy(&version, data + 8, 4);
    assert_int_equal(version, 4);
    /* every truncation of the version 1 file is refused too */
    for (size_t n = 0; n < v1_len; n++) {
      char *copy = malloc(n ? n : 1);
      memcpy(copy, v1, n);
      back = (us_classifier *)1;
      assert_int_equal(us_classifier_load_buffer(copy, n, "v1.bin", &back, &err), US_ERR_FORMAT);
      assert_null(back);
      free(copy);
    }
    /* version 1 knew only storage 0 and 1 */
    int32_t storage = 2;
    memcpy(v1 + 52 + 14 * 4, &storage, 4);
    reseal_v(v1, v1_len);
    assert_int_equal(us_classifier_load_buffer(v1, v1_len, "v1.bin", &back, &err), US_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "storage"));
    unlink(path);
    free(v1);
    free(data);
    us_classifier_free(m);
  }
}

static void every_truncation_should_be_refused_naming_the_file(void **state) {
  (void)state;
  us_classifier *m = small_model(true);
  us_err err;
  char *path = tmp_path("trunc.bin"), *data;
  size_t len;
  assert_int_equal(us_classifier_save(m, path, &err), US_OK);
  read_all(path, &data, &len);
  for (size_t n = 0; n < len; n++) {
    us_classifier *back = (us_classifier *)1;
    char *copy = malloc(n ? n : 1); /* exact size, so ASan sees any overread */
    memcpy(copy, data, n);
    us_status st = us_classifier_load_buffer(copy, n, "model.bin", &back, &err);
    if (st != US_ERR_FORMAT) fail_msg("truncated to %zu of %zu bytes: status %d", n, len, st);
    assert_null(back);
    assert_non_null(strstr(err.msg, "model.bin"));
    free(copy);
  }
  /* and from disk, the message names the path */
  assert_int_equal(us_write_file_atomic(path, data, len / 2, &err), US_OK);
  us_classifier *back = NULL;
  assert_int_equal(us_classifier_load(path, &back, &err), US_ERR_FORMAT);
  assert_non_null(strstr(err.msg, path));
  assert_non_null(strstr(err.msg, "truncated"));
  unlink(path);
  assert_int_equal(us_classifier_load(path, &back, &err), US_ERR_IO);
  assert_non_null(strstr(err.msg, path));
  free(data);
  us_classifier_free(m);
}

static void every_flipped_byte_should_be_refused(void **state) {
  (void)state;
  us_classifier *m = small_model(false);
  us_err err;
  char *path = tmp_path("flip.bin"), *data;
  size_t len;
  assert_int_equal(us_classifier_save(m, path, &err), US_OK);
  read_all(path, &data, &len);
  unlink(path);
  for (size_t i = 0; i < len; i++) {
    for (int bit = 0; bit < 8; bit += 7) {
      data[i] ^= (char)(1 << bit);
      us_classifier *back = NULL;
      us_status st = us_classifier_load_buffer(data, len, "flipped.bin", &back, &err);
      if (st != US_ERR_FORMAT) fail_msg("byte %zu bit %d flipped: status %d", i, bit, st);
      assert_non_null(strstr(err.msg, "flipped.bin"));
      data[i] ^= (char)(1 << bit);
    }
  }
  us_classifier *back = NULL;
  assert_int_equal(us_classifier_load_buffer(data, len, "ok.bin", &back, &err), US_OK);
  us_classifier_free(back);
  free(data);
  us_classifier_free(m);
}

static void reseal(char *data, size_t len) {
  reseal_v(data, len);
}

static void four_bit_file_truncations_and_flips_should_be_refused(void **state) {
  (void)state;
  us_classifier *m = small_model_bits(true, 4);
  us_classifier_quantize(m);
  us_err err;
  char *path = tmp_path("q4.bin"), *data;
  size_t len;
  assert_int_equal(us_classifier_save(m, path, &err), US_OK);
  read_all(path, &data, &len);
  unlink(path);
  int32_t storage;
  memcpy(&storage, data + 52 + 14 * 4, 4);
  assert_int_equal(storage, 2);
  for (size_t n = 0; n < len; n++) {
    us_classifier *back = (us_classifier *)1;
    char *copy = malloc(n ? n : 1);
    memcpy(copy, data, n);
    assert_int_equal(us_classifier_load_buffer(copy, n, "q4.bin", &back, &err), US_ERR_FORMAT);
    assert_null(back);
    free(copy);
  }
  for (size_t i = 0; i < len; i++) {
    data[i] ^= 1;
    us_classifier *back = NULL;
    assert_int_equal(us_classifier_load_buffer(data, len, "q4.bin", &back, &err), US_ERR_FORMAT);
    data[i] ^= 1;
  }
  /* a resealed bad quantize_bits is refused by name */
  int32_t bits = 5;
  memcpy(data + 52 + 17 * 4, &bits, 4);
  reseal(data, len);
  us_classifier *back = NULL;
  assert_int_equal(us_classifier_load_buffer(data, len, "q4.bin", &back, &err), US_ERR_FORMAT);
  assert_non_null(strstr(err.msg, "quantize_bits"));
  free(data);
  us_classifier_free(m);
}

static void wrong_version_and_magic_should_be_refused_clearly(void **state) {
  (void)state;
  us_classifier *m = small_model(false);
  us_err err;
  char *path = tmp_path("version.bin"), *data;
  size_t len;
  assert_int_equal(us_classifier_save(m, path, &err), US_OK);
  read_all(path, &data, &len);
  unlink(path);
  us_classifier *back = NULL;
  data[8] = 9;
  assert_int_equal(us_classifier_load_buffer(data, len, "v.bin", &back, &err), US_ERR_FORMAT);
  assert_non_null(strstr(err.msg, "version 9"));
  assert_non_null(strstr(err.msg, "versions 1 to 4"));
  assert_non_null(strstr(err.msg, "retrain"));
  data[8] = 2;
  data[0] = 'X';
  assert_int_equal(us_classifier_load_buffer(data, len, "v.bin", &back, &err), US_ERR_FORMAT);
  assert_non_null(strstr(err.msg, "magic"));
  data[0] = 'U';
  /* a body edited and resealed: dim 0, then a huge label count */
  int32_t dim = 0, saved;
  memcpy(&saved, data + 52, 4);
  memcpy(data + 52, &dim, 4);
  reseal(data, len);
  assert_int_equal(us_classifier_load_buffer(data, len, "v.bin", &back, &err), US_ERR_FORMAT);
  assert_non_null(strstr(err.msg, "dim"));
  memcpy(data + 52, &saved, 4);
  uint32_t huge = 0x7fffffff;
  memcpy(data + 52 + 72 + 32 + 8, &huge, 4);
  reseal(data, len);
  assert_int_equal(us_classifier_load_buffer(data, len, "v.bin", &back, &err), US_ERR_FORMAT);
  assert_null(back);
  free(data);
  us_classifier_free(m);
}

static void resealed_random_corruption_should_never_crash(void **state) {
  (void)state;
  us_classifier *m = small_model(true);
  us_err err;
  char *path = tmp_path("fuzz.bin"), *data;
  size_t len;
  assert_int_equal(us_classifier_save(m, path, &err), US_OK);
  read_all(path, &data, &len);
  unlink(path);
  char *copy = malloc(len);
  us_rng r;
  us_rng_seed(&r, 17);
  int refused = 0;
  for (int trial = 0; trial < 3000; trial++) {
    memcpy(copy, data, len);
    int edits = 1 + (int)us_rng_below(&r, 3);
    for (int e = 0; e < edits; e++)
      copy[52 + us_rng_below(&r, len - 52)] = (char)us_rng_below(&r, 256);
    reseal(copy, len);
    us_classifier *back = NULL;
    us_status st = us_classifier_load_buffer(copy, len, "fuzz.bin", &back, &err);
    if (st == US_OK) { /* weights may change freely; the model must still predict */
      float probs[3];
      assert_int_equal(us_classifier_predict(back, "hello?", probs, &err), US_OK);
      us_classifier_free(back);
    } else {
      assert_int_equal(st, US_ERR_FORMAT);
      refused++;
    }
  }
  assert_true(refused > 0);
  free(copy);
  free(data);
  us_classifier_free(m);
}

/* Issue 10: one weight byte changed so the weight is NaN or infinite, the checksum recomputed:
 * the loader refuses the file with US_ERR_FORMAT naming it, for a float model (the last dense
 * bias, then an embedding weight), and for a quantised one (a row scale). */
static void non_finite_weights_should_be_refused_naming_the_file(void **state) {
  (void)state;
  char *path = tmp_path("nan.bin"), *data;
  size_t len;
  us_err err;
  for (int nan = 0; nan < 2; nan++) {
    us_classifier *m = small_model(true), *back = NULL;
    assert_int_equal(us_classifier_save(m, path, &err), US_OK);
    read_all(path, &data, &len);
    /* the last float of the file is the last bias; a high byte 0x7f with the next bit set makes
     * its exponent all ones (the 0x38 -> 0x7f) */
    unsigned char *w = (unsigned char *)data + len - 4;
    w[3] = 0x7f;
    w[2] = 0x80;
    w[1] = 0;
    w[0] = nan ? 1 : 0; /* a mantissa: NaN; none: +infinity */
    reseal_v(data, len);
    assert_int_equal(us_classifier_load_buffer(data, len, "nan.bin", &back, &err), US_ERR_FORMAT);
    assert_null(back);
    assert_non_null(strstr(err.msg, "nan.bin"));
    assert_non_null(strstr(err.msg, "finite"));
    free(data);
    /* an embedding weight, in memory then saved (saving does not judge) */
    m->emb[1] = nan ? NAN : INFINITY;
    assert_int_equal(us_classifier_save(m, path, &err), US_OK);
    assert_int_equal(us_classifier_load(path, &back, &err), US_ERR_FORMAT);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "embedding weight 1"));
    us_classifier_free(m);
    /* a quantised model's row scale */
    m = small_model_bits(false, nan ? 4 : 8);
    us_classifier_quantize(m);
    m->qscale[2] = nan ? NAN : -INFINITY;
    assert_int_equal(us_classifier_save(m, path, &err), US_OK);
    assert_int_equal(us_classifier_load(path, &back, &err), US_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "row scale 2"));
    us_classifier_free(m);
  }
  unlink(path);
}

/* Issue 10: finite weights that overflow (here every embedding weight 1 and one output row of
 * 3e38) load, but give NaN probabilities: us_classifier_predict and the public
 * us_model_classify return an error, never a ranking of NaNs or a write at index -1. */
static void overflowing_weights_should_fail_prediction_not_crash(void **state) {
  (void)state;
  us_classifier *m = small_model(false);
  for (int64_t i = 0; i < (int64_t)m->n_rows * m->p.dim; i++) m->emb[i] = 1.0f;
  for (int j = 0; j < m->p.dim; j++) m->dense[j] = 3e38f; /* W row 0 */
  float probs[3];
  us_err err;
  assert_int_equal(us_classifier_predict(m, "hello there", probs, &err), US_ERR_FORMAT);
  assert_non_null(strstr(err.msg, "not a number"));
  char *path = tmp_path("overflow.bin");
  assert_int_equal(us_classifier_save(m, path, &err), US_OK);
  us_classifier_free(m);
  us_model *model = NULL;
  assert_int_equal(us_model_load(path, &model, &err), US_OK); /* every weight is finite */
  us_prediction top[3] = {{NULL, 0, 0}};
  int n = -1;
  for (int k = 1; k <= 3; k++) {
    assert_int_equal(us_model_classify(model, "hello there", k, top, &n, &err), US_ERR_FORMAT);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err.msg, "retrain"));
  }
  /* the pool's scratch survives: a good text still fails cleanly again */
  assert_int_equal(us_model_classify(model, "good morning", 3, top, &n, &err), US_ERR_FORMAT);
  us_model_free(model);
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(model_should_round_trip_plain_and_quantized),
      cmocka_unit_test(version_1_files_should_still_load),
      cmocka_unit_test(four_bit_file_truncations_and_flips_should_be_refused),
      cmocka_unit_test(every_truncation_should_be_refused_naming_the_file),
      cmocka_unit_test(every_flipped_byte_should_be_refused),
      cmocka_unit_test(wrong_version_and_magic_should_be_refused_clearly),
      cmocka_unit_test(resealed_random_corruption_should_never_crash),
      cmocka_unit_test(non_finite_weights_should_be_refused_naming_the_file),
      cmocka_unit_test(overflowing_weights_should_fail_prediction_not_crash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
