/* Tests of SentencePiece vocabularies (student/bpe_spm.c): merges by score with ties to the left,
 * the prefix space, byte fallback, exact round trips on any bytes (invalid UTF-8 included) and
 * the serialised form. llama.cpp itself checks the same tokeniser in
 * tests/integration/test_lm_import_spm.sh. */
/* cmocka.h needs these headers before it */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
/* clang-format on */

#include "core/rng.h"
#include "student/bpe.h"

#define MARK "\xe2\x96\x81"

/* <unk> <s> </s>, the 256 byte tokens (ids 3..258), then pieces with scores. */
static us_bpe *tiny(void) {
  static const struct {
    const char *text;
    float score;
  } pieces[] = {{MARK, -5},     {"a", -4},         {"b", -4},           {"c", -4},
                {MARK "a", -3}, {"ab", -1},        {"bc", -0.5f},       {MARK "ab", -2},
                {"abc", -0.1f}, {"aa", -1},        {"caf\xc3\xa9", -1}, {"ca", -1},
                {"caf", -1},    {"f\xc3\xa9", -6}, {"\xc3\xa9", -7}};
  enum { NP = sizeof pieces / sizeof pieces[0], V = 3 + 256 + NP };
  static char bytes[256][7];
  const char *texts[V];
  size_t lens[V];
  int32_t types[V];
  float scores[V];
  texts[0] = "<unk>", texts[1] = "<s>", texts[2] = "</s>";
  types[0] = 2, types[1] = types[2] = 3;
  for (int b = 0; b < 256; b++) {
    snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
    texts[3 + b] = bytes[b];
    types[3 + b] = 6;
  }
  for (int i = 0; i < NP; i++) {
    texts[259 + i] = pieces[i].text;
    types[259 + i] = 1;
    scores[259 + i] = pieces[i].score;
  }
  for (int i = 0; i < V; i++) {
    lens[i] = strlen(texts[i]);
    if (i < 259) scores[i] = 0;
  }
  us_bpe *bpe = NULL;
  us_bpe_special sp = {1, 2, 1, 1};
  assert_int_equal(us_bpe_from_spm(V, texts, lens, types, scores, sp, 0, true, &bpe, NULL), US_OK);
  return bpe;
}

static int id_of(const us_bpe *bpe, const char *s) {
  int id = us_bpe_find_token(bpe, s, strlen(s));
  assert_true(id >= 0);
  return id;
}

static void encode_is(const us_bpe *bpe, const char *text, const int *want, int n_want) {
  int32_t *t = NULL;
  int n = 0;
  assert_int_equal(us_bpe_encode(bpe, text, strlen(text), &t, &n, NULL), US_OK);
  assert_int_equal(n, n_want);
  for (int i = 0; i < n; i++) assert_int_equal(t[i], want[i]);
  free(t);
}

static void pairs_should_merge_by_score_then_leftmost(void **state) {
  (void)state;
  us_bpe *bpe = tiny();
  /* "▁abc": bc (-0.5) first, then a+bc = abc (-0.1); ▁abc is no token */
  int want1[] = {id_of(bpe, MARK), id_of(bpe, "abc")};
  encode_is(bpe, "abc", want1, 2);
  /* "▁aaa": ▁a (-3) loses to aa (-1) twice; the leftmost aa wins */
  int want2[] = {id_of(bpe, MARK), id_of(bpe, "aa"), id_of(bpe, "a")};
  encode_is(bpe, "aaa", want2, 3);
  us_bpe_free(bpe);
}

static void unknown_characters_should_fall_back_to_bytes(void **state) {
  (void)state;
  us_bpe *bpe = tiny();
  /* "▁é d": é alone is a piece; "d" is not: <0x64>; the spaces are pieces */
  int want[] = {id_of(bpe, MARK), id_of(bpe, "\xc3\xa9"), id_of(bpe, MARK), 3 + 'd'};
  encode_is(bpe, "\xc3\xa9 d", want, 4);
  int want2[] = {id_of(bpe, MARK), id_of(bpe, "caf\xc3\xa9")};
  encode_is(bpe, "caf\xc3\xa9", want2, 2);
  us_bpe_free(bpe);
}

/* Valid UTF-8 comes back exactly. (Invalid UTF-8 next to a space does not, here as in llama.cpp:
 * the space becomes U+2581 before the text is cut into characters, and a broken character that
 * swallows it falls back to bytes; it must still encode and decode without harm.) */
static void utf8_should_round_trip_and_any_bytes_should_encode(void **state) {
  (void)state;
  us_bpe *bpe = tiny();
  us_rng rng;
  us_rng_seed(&rng, 5);
  static const char *const units[] = {
      "a", "b", "c", " ", "\xc3\xa9", "\t", "\n", "\xe6\x9d\xb1", "\xf0\x9f\x98\x80", "  "};
  for (int trial = 0; trial < 200; trial++) {
    char text[64];
    size_t len = 0;
    bool valid = trial % 2 == 0;
    for (int k = (int)us_rng_below(&rng, 12); k > 0; k--) {
      if (valid) {
        const char *u = units[us_rng_below(&rng, sizeof units / sizeof units[0])];
        memcpy(text + len, u, strlen(u));
        len += strlen(u);
      } else {
        text[len++] = (char)us_rng_below(&rng, 256);
      }
    }
    int32_t *t = NULL;
    int n = 0;
    assert_int_equal(us_bpe_encode(bpe, text, len, &t, &n, NULL), US_OK);
    us_buf out;
    us_buf_init(&out, 0);
    for (int i = 0; i < n; i++) /* token by token, as generation decodes */
      assert_int_equal(us_bpe_decode(bpe, t + i, 1, &out, NULL), US_OK);
    size_t added = us_bpe_added_prefix(bpe, out.data, out.len);
    if (len > 0) assert_int_equal(added, 1); /* the prefix space */
    if (valid) {
      assert_int_equal(out.len - added, len);
      assert_memory_equal(out.data + added, text, len);
    }
    us_buf_free(&out);
    free(t);
  }
  us_bpe_free(bpe);
}

static void serialised_form_should_give_the_same_tokeniser(void **state) {
  (void)state;
  us_bpe *bpe = tiny();
  us_buf buf;
  us_buf_init(&buf, 0);
  assert_int_equal(us_bpe_serialize(bpe, &buf, NULL), US_OK);
  us_bpe *back = NULL;
  size_t used = 0;
  assert_int_equal(us_bpe_deserialize((const unsigned char *)buf.data, buf.len, &used, &back, NULL),
                   US_OK);
  assert_int_equal(used, buf.len);
  const char *text = "abc aaa caf\xc3\xa9 \xc3\xa9 d\xff";
  int32_t *a = NULL, *b = NULL;
  int na = 0, nb = 0;
  assert_int_equal(us_bpe_encode(bpe, text, strlen(text), &a, &na, NULL), US_OK);
  assert_int_equal(us_bpe_encode(back, text, strlen(text), &b, &nb, NULL), US_OK);
  assert_int_equal(na, nb);
  assert_memory_equal(a, b, (size_t)na * sizeof *a);
  for (size_t cut = 0; cut < buf.len; cut += 97) { /* truncated: an error, never a crash */
    us_bpe *x = NULL;
    assert_int_not_equal(us_bpe_deserialize((const unsigned char *)buf.data, cut, &used, &x, NULL),
                         US_OK);
  }
  free(a);
  free(b);
  us_bpe_free(back);
  us_buf_free(&buf);
  us_bpe_free(bpe);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pairs_should_merge_by_score_then_leftmost),
      cmocka_unit_test(unknown_characters_should_fall_back_to_bytes),
      cmocka_unit_test(utf8_should_round_trip_and_any_bytes_should_encode),
      cmocka_unit_test(serialised_form_should_give_the_same_tokeniser),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
