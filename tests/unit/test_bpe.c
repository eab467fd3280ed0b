/* Tests of the byte-level BPE tokeniser: exact round trips on any bytes, training, the
 * serialised form and its refusal of truncated or inconsistent data. */
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

#include "core/rng.h"
#include "student/bpe.h"

static const char *const corpus[] = {
    "add sabrina salerno to the grime instrumentals playlist",
    "play the newest song by westbam on google music",
    "add this song to my playlist",
    "what is the weather in paris tomorrow",
    "book a table for four people in paris",
    "{\"artist\":\"westbam\",\"service\":\"google music\"}",
    "{\"playlist\":\"grime instrumentals\"}",
};

static us_bpe *trained(int vocab) {
  us_bpe *bpe = NULL;
  us_err err;
  assert_int_equal(us_bpe_train(corpus, sizeof corpus / sizeof corpus[0], vocab, &bpe, &err),
                   US_OK);
  return bpe;
}

static void assert_round_trip(const us_bpe *bpe, const char *text, size_t len) {
  int32_t *tok = NULL;
  int n = 0;
  us_err err;
  assert_int_equal(us_bpe_encode(bpe, text, len, &tok, &n, &err), US_OK);
  assert_true((size_t)n <= len);
  us_bpe_special sp = us_bpe_specials(bpe);
  for (int i = 0; i < n; i++) assert_true(tok[i] >= 0 && tok[i] < sp.bos);
  us_buf out;
  us_buf_init(&out, 0);
  assert_int_equal(us_bpe_decode(bpe, tok, n, &out, &err), US_OK);
  assert_int_equal(out.len, len);
  if (len) assert_memory_equal(out.data, text, len);
  us_buf_free(&out);
  free(tok);
}

static void training_should_learn_merges_that_shorten_text(void **state) {
  (void)state;
  us_bpe *bpe = trained(500);
  assert_true(us_bpe_n_merges(bpe) > 0);
  assert_int_equal(us_bpe_vocab_size(bpe), 260 + us_bpe_n_merges(bpe));
  const char *s = "add this song to my playlist";
  int32_t *tok = NULL;
  int n = 0;
  assert_int_equal(us_bpe_encode(bpe, s, strlen(s), &tok, &n, NULL), US_OK);
  assert_true(n < (int)strlen(s));
  free(tok);
  /* " playlist" occurs twice in the corpus: the word with its leading space merges into one
   * token */
  assert_int_equal(us_bpe_encode(bpe, " playlist", 9, &tok, &n, NULL), US_OK);
  assert_int_equal(n, 1);
  int len = 0;
  const unsigned char *bytes = us_bpe_token_bytes(bpe, tok[0], &len);
  assert_int_equal(len, 9);
  assert_memory_equal(bytes, " playlist", 9);
  free(tok);
  assert_round_trip(bpe, s, strlen(s));
  us_bpe_free(bpe);
}

static void specials_should_follow_the_merges(void **state) {
  (void)state;
  us_bpe *bpe = trained(280);
  us_bpe_special sp = us_bpe_specials(bpe);
  int base = 256 + us_bpe_n_merges(bpe);
  assert_int_equal(sp.bos, base);
  assert_int_equal(sp.eos, base + 1);
  assert_int_equal(sp.sep, base + 2);
  assert_int_equal(sp.pad, base + 3);
  int32_t toks[3] = {sp.bos, 'a', sp.eos};
  us_buf out;
  us_buf_init(&out, 0);
  assert_int_equal(us_bpe_decode(bpe, toks, 3, &out, NULL), US_OK);
  assert_string_equal(out.data, "a");
  int32_t bad = us_bpe_vocab_size(bpe);
  us_err err;
  assert_int_equal(us_bpe_decode(bpe, &bad, 1, &out, &err), US_ERR_INPUT);
  us_buf_free(&out);
  us_bpe_free(bpe);
}

static void random_bytes_should_round_trip_exactly(void **state) {
  (void)state;
  us_bpe *bpe = trained(400);
  us_rng rng;
  us_rng_seed(&rng, 42);
  char buf[600];
  for (int trial = 0; trial < 300; trial++) {
    size_t len = (size_t)us_rng_below(&rng, sizeof buf);
    for (size_t i = 0; i < len; i++) {
      /* mix fully random bytes with text-like stretches so merges apply too */
      if (trial % 2)
        buf[i] = (char)us_rng_below(&rng, 256);
      else
        buf[i] = "add sabrina to the playlist \"{}:,\n\t"[us_rng_below(&rng, 35)];
    }
    assert_round_trip(bpe, buf, len);
  }
  us_bpe_free(bpe);
}

static void invalid_utf8_and_nul_should_round_trip(void **state) {
  (void)state;
  us_bpe *bpe = trained(400);
  const char cases[][16] = {"\xff\xfe\xfd", "a\xc3(b", "\xe2\x82", "caf\xc3\xa9 \xed\xa0\x80",
                            "\xf0\x28\x8c\x28"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    assert_round_trip(bpe, cases[i], strlen(cases[i]));
  const char with_nul[] = {'a', 'd', 'd', '\0', ' ', 's', '\0', '\0'};
  assert_round_trip(bpe, with_nul, sizeof with_nul);
  assert_round_trip(bpe, "", 0);
  char longword[5000];
  memset(longword, 'a', sizeof longword);
  assert_round_trip(bpe, longword, sizeof longword);
  us_bpe_free(bpe);
}

static void serialised_form_should_give_the_same_tokeniser(void **state) {
  (void)state;
  us_bpe *bpe = trained(350);
  us_buf b;
  us_buf_init(&b, 0);
  assert_int_equal(us_bpe_serialize(bpe, &b, NULL), US_OK);
  us_bpe *back = NULL;
  size_t used = 0;
  assert_int_equal(us_bpe_deserialize((unsigned char *)b.data, b.len, &used, &back, NULL), US_OK);
  assert_int_equal(used, b.len);
  assert_int_equal(us_bpe_vocab_size(back), us_bpe_vocab_size(bpe));
  const char *s = corpus[5];
  int32_t *t1, *t2;
  int n1, n2;
  assert_int_equal(us_bpe_encode(bpe, s, strlen(s), &t1, &n1, NULL), US_OK);
  assert_int_equal(us_bpe_encode(back, s, strlen(s), &t2, &n2, NULL), US_OK);
  assert_int_equal(n1, n2);
  assert_memory_equal(t1, t2, (size_t)n1 * sizeof *t1);
  free(t1);
  free(t2);
  for (size_t len = 0; len < b.len; len++) {
    us_bpe *cut = NULL;
    us_err err;
    assert_int_equal(us_bpe_deserialize((unsigned char *)b.data, len, &used, &cut, &err),
                     US_ERR_FORMAT);
    assert_null(cut);
  }
  us_bpe_free(back);
  us_buf_free(&b);
  us_bpe_free(bpe);
}

static void merges_referring_to_later_tokens_should_be_refused(void **state) {
  (void)state;
  int32_t pairs[4] = {'a', 'b', 'c', 300};
  us_bpe *bpe = NULL;
  us_err err;
  assert_int_equal(us_bpe_from_merges(pairs, 2, &bpe, &err), US_ERR_FORMAT);
  assert_null(bpe);
  assert_non_null(strstr(err.msg, "merge 1"));
  int32_t ok[4] = {'a', 'b', 256, 'c'};
  assert_int_equal(us_bpe_from_merges(ok, 2, &bpe, &err), US_OK);
  int32_t *t = NULL;
  int n = 0;
  assert_int_equal(us_bpe_encode(bpe, "abc", 3, &t, &n, NULL), US_OK);
  assert_int_equal(n, 1);
  assert_int_equal(t[0], 257);
  free(t);
  us_bpe_free(bpe);
}

/* A corrupt tokeniser whose merges each join the last token with itself doubles the token's
 * length every merge: 32 merges would ask for 4 GiB and wrap 32-bit offsets (found by fuzzing). */
static void merges_that_double_a_token_past_the_limit_should_be_refused(void **state) {
  (void)state;
  int32_t pairs[64];
  pairs[0] = pairs[1] = 'a';
  for (int m = 1; m < 32; m++) pairs[2 * m] = pairs[2 * m + 1] = 255 + m;
  us_bpe *bpe = NULL;
  us_err err;
  assert_int_equal(us_bpe_from_merges(pairs, 32, &bpe, &err), US_ERR_FORMAT);
  assert_null(bpe);
  assert_non_null(strstr(err.msg, "merge 16 makes a token of 131072 bytes"));
  assert_int_equal(us_bpe_from_merges(pairs, 16, &bpe, &err), US_OK); /* 65536 bytes: allowed */
  us_bpe_free(bpe);
}

static void vocab_size_out_of_range_should_be_refused(void **state) {
  (void)state;
  us_bpe *bpe = NULL;
  us_err err;
  assert_int_equal(us_bpe_train(corpus, 1, 100, &bpe, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "vocab_size"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(training_should_learn_merges_that_shorten_text),
      cmocka_unit_test(merges_that_double_a_token_past_the_limit_should_be_refused),
      cmocka_unit_test(specials_should_follow_the_merges),
      cmocka_unit_test(random_bytes_should_round_trip_exactly),
      cmocka_unit_test(invalid_utf8_and_nul_should_round_trip),
      cmocka_unit_test(serialised_form_should_give_the_same_tokeniser),
      cmocka_unit_test(merges_referring_to_later_tokens_should_be_refused),
      cmocka_unit_test(vocab_size_out_of_range_should_be_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
