/* Tests of the language model's GGUF export (student/lm_gguf.h), read back with our own reader:
 * llama.cpp's keys and tensor names, shapes in GGUF's order and weights bit for bit, the
 * tokeniser in GPT-2's byte spelling with unique texts, the q8_0 fallback, and the greedy decode
 * on token ids that the llama.cpp test compares against. (tests/integration/test_gguf_llama.sh
 * checks the files against llama.cpp itself.) */
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
#include <sys/stat.h>
#include <unistd.h>

#include "student/lm_gguf.h"
#include "student/lm_int.h"

/* Merges: "ab", "abc" = ab+c, "bc", "abc" again = a+bc (a duplicate text), " x". */
static us_lm *tiny_model(void) {
  int32_t pairs[] = {'a', 'b', 256, 'c', 'b', 'c', 'a', 258, ' ', 'x'};
  us_bpe *bpe = NULL;
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_bpe_from_merges(pairs, 5, &bpe, &err), US_OK);
  us_lm_config c = {2, 32, 4, 16, us_bpe_vocab_size(bpe), 40, 0, 0, 0, 0};
  assert_int_equal(us_lm_new(&c, bpe, 3, &lm, &err), US_OK);
  return lm;
}

static void temp_path(char *path) {
  strcpy(path, "/tmp/us-test-lm-gguf-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
}

static void expect_str(const us_gguf *g, const char *key, const char *want) {
  us_gguf_str s;
  us_err err;
  assert_int_equal(us_gguf_get_str(g, key, &s, &err), US_OK);
  if (!us_gguf_str_eq(s, want))
    fail_msg("%s: \"%.*s\", expected \"%s\"", key, (int)s.len, s.ptr, want);
}

static void expect_int(const us_gguf *g, const char *key, int64_t want) {
  int64_t v = -1;
  us_err err;
  assert_int_equal(us_gguf_get_int(g, key, &v, &err), US_OK);
  if (v != want) fail_msg("%s: %lld, expected %lld", key, (long long)v, (long long)want);
}

static void expect_token(const us_gguf *g, uint64_t id, const char *text, int64_t type) {
  us_gguf_str s;
  int64_t t = -1;
  us_err err;
  assert_int_equal(us_gguf_array_str(g, "tokenizer.ggml.tokens", id, &s, &err), US_OK);
  assert_int_equal(us_gguf_array_int(g, "tokenizer.ggml.token_type", id, &t, &err), US_OK);
  if (!us_gguf_str_eq(s, text) || t != type)
    fail_msg("token %llu: \"%.*s\" type %lld, expected \"%s\" type %lld", (unsigned long long)id,
             (int)s.len, s.ptr, (long long)t, text, (long long)type);
}

/* The tensor called name: its shape {ne0, ne1} (ne1 0: a vector), type, and values equal to x
 * within tol. */
static void expect_tensor(const us_gguf *g, const char *name, uint64_t ne0, uint64_t ne1,
                          uint32_t dtype, const float *x, float tol) {
  const us_gguf_tensor *t = us_gguf_find_tensor(g, name);
  if (!t) fail_msg("no tensor %s", name);
  assert_int_equal(t->n_dims, ne1 ? 2 : 1);
  assert_int_equal(t->ne[0], ne0);
  if (ne1) assert_int_equal(t->ne[1], ne1);
  if (t->dtype != dtype) fail_msg("%s: type %u, expected %u", name, t->dtype, dtype);
  uint64_t n = ne0 * (ne1 ? ne1 : 1);
  float *y = malloc(n * sizeof *y);
  us_err err;
  assert_int_equal(us_gguf_tensor_float(g, t, y, n, &err), US_OK);
  for (uint64_t i = 0; i < n; i++)
    if (!(fabsf(y[i] - x[i]) <= tol))
      fail_msg("%s[%llu]: %g, expected %g", name, (unsigned long long)i, (double)y[i],
               (double)x[i]);
  free(y);
}

static void export_should_hold_what_llama_cpp_reads(void **state) {
  (void)state;
  us_lm *lm = tiny_model();
  const us_lm_config *c = us_lm_get_config(lm);
  int C = c->dim, F = c->hidden, V = c->vocab;
  char path[64];
  temp_path(path);
  us_lm_gguf_params p;
  us_lm_gguf_params_defaults(&p);
  us_lm_gguf_report r;
  us_err err;
  assert_int_equal(us_lm_export_gguf(lm, path, &p, &r, &err), US_OK);
  assert_int_equal(r.n_tensors, 1 + 9 * 2 + 1);
  assert_int_equal(r.n_fallback_f16, 0);
  assert_int_equal(r.n_renamed, 1);
  us_gguf *g = NULL;
  assert_int_equal(us_gguf_read_file(path, &g, &err), US_OK);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(r.bytes, (uint64_t)sb.st_size);

  expect_str(g, "general.architecture", "llama");
  expect_int(g, "llama.context_length", 16);
  expect_int(g, "llama.embedding_length", 32);
  expect_int(g, "llama.block_count", 2);
  expect_int(g, "llama.feed_forward_length", 40);
  expect_int(g, "llama.attention.head_count", 4);
  expect_int(g, "llama.attention.head_count_kv", 4);
  expect_int(g, "llama.rope.dimension_count", 8);
  expect_int(g, "llama.vocab_size", V);
  expect_int(g, "general.file_type", 0);
  double f = 0;
  assert_int_equal(us_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &f, &err), US_OK);
  assert_true(fabs(f - 1e-5) < 1e-9);
  assert_int_equal(us_gguf_get_float(g, "llama.rope.freq_base", &f, &err), US_OK);
  assert_true(f == 10000.0);

  /* tokeniser */
  expect_str(g, "tokenizer.ggml.model", "gpt2");
  expect_str(g, "tokenizer.ggml.pre", US_LM_GGUF_PRE);
  expect_str(g, "tokenizer.ggml.pretokenizer",
             "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
  expect_str(g, "tokenizer.chat_template", US_LM_GGUF_CHAT_TEMPLATE);
  us_bpe_special sp = us_bpe_specials(us_lm_get_bpe(lm));
  expect_int(g, "tokenizer.ggml.bos_token_id", sp.bos);
  expect_int(g, "tokenizer.ggml.eos_token_id", sp.eos);
  expect_int(g, "tokenizer.ggml.padding_token_id", sp.pad);
  bool add_bos = false;
  assert_int_equal(us_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, &err), US_OK);
  assert_true(add_bos);
  expect_token(g, 'a', "a", 1);
  expect_token(g, ' ', "\xc4\xa0", 1); /* U+0120 */
  expect_token(g, '\n', "\xc4\x8a", 1);
  expect_token(g, 256, "ab", 1);
  expect_token(g, 257, "abc", 1);
  expect_token(g, 259, "<|dup_259|>", 5); /* "abc" again: llama.cpp needs unique texts */
  expect_token(g, 260, "\xc4\xa0x", 1);
  expect_token(g, (uint64_t)sp.bos, US_LM_GGUF_BOS, 3);
  expect_token(g, (uint64_t)sp.eos, US_LM_GGUF_EOS, 3);
  expect_token(g, (uint64_t)sp.sep, US_LM_GGUF_SEP, 3);
  expect_token(g, (uint64_t)sp.pad, US_LM_GGUF_PAD, 3);
  us_gguf_type elem;
  uint64_t n = 0;
  assert_int_equal(us_gguf_get_array(g, "tokenizer.ggml.tokens", &elem, &n, &err), US_OK);
  assert_int_equal(n, (uint64_t)V);
  assert_int_equal(us_gguf_get_array(g, "tokenizer.ggml.merges", &elem, &n, &err), US_OK);
  assert_int_equal(n, 5);
  us_gguf_str m;
  assert_int_equal(us_gguf_array_str(g, "tokenizer.ggml.merges", 1, &m, &err), US_OK);
  assert_true(us_gguf_str_eq(m, "ab c"));
  assert_int_equal(us_gguf_array_str(g, "tokenizer.ggml.merges", 4, &m, &err), US_OK);
  assert_true(us_gguf_str_eq(m, "\xc4\xa0 x"));

  /* weights: GGUF's ne = {columns, rows}, values bit for bit */
  const us__lm_params *w = &lm->w;
  assert_null(us_gguf_find_tensor(g, "output.weight")); /* tied: llama.cpp uses token_embd */
  expect_tensor(g, "token_embd.weight", C, V, US_GGUF_F32, w->wte, 0.0f);
  expect_tensor(g, "output_norm.weight", C, 0, US_GGUF_F32, w->lnf, 0.0f);
  const float *qkv1 = w->wqkv + 3 * C * C, *w13 = w->w13 + 2 * F * C;
  expect_tensor(g, "blk.1.attn_norm.weight", C, 0, US_GGUF_F32, w->ln1 + C, 0.0f);
  expect_tensor(g, "blk.1.attn_q.weight", C, C, US_GGUF_F32, qkv1, 0.0f);
  expect_tensor(g, "blk.1.attn_k.weight", C, C, US_GGUF_F32, qkv1 + C * C, 0.0f);
  expect_tensor(g, "blk.1.attn_v.weight", C, C, US_GGUF_F32, qkv1 + 2 * C * C, 0.0f);
  expect_tensor(g, "blk.1.attn_output.weight", C, C, US_GGUF_F32, w->wo + C * C, 0.0f);
  expect_tensor(g, "blk.1.ffn_norm.weight", C, 0, US_GGUF_F32, w->ln2 + C, 0.0f);
  expect_tensor(g, "blk.1.ffn_gate.weight", C, F, US_GGUF_F32, w13, 0.0f);
  expect_tensor(g, "blk.1.ffn_up.weight", C, F, US_GGUF_F32, w13 + F * C, 0.0f);
  expect_tensor(g, "blk.1.ffn_down.weight", F, C, US_GGUF_F32, w->w2 + C * F, 0.0f);
  us_gguf_free(g);

  /* q8_0: the matrices quantised, ffn_down (rows of 40) kept as f16, norms f32 */
  p.dtype = US_GGUF_Q8_0;
  assert_int_equal(us_lm_export_gguf(lm, path, &p, &r, &err), US_OK);
  assert_int_equal(r.n_fallback_f16, 2);
  assert_int_equal(us_gguf_read_file(path, &g, &err), US_OK);
  expect_int(g, "general.file_type", 7);
  expect_tensor(g, "blk.1.attn_q.weight", C, C, US_GGUF_Q8_0, qkv1, 0.1f / 127.0f);
  expect_tensor(g, "blk.1.ffn_down.weight", F, C, US_GGUF_F16, w->w2 + C * F, 1e-4f);
  expect_tensor(g, "blk.1.ffn_norm.weight", C, 0, US_GGUF_F32, w->ln2 + C, 0.0f);
  us_gguf_free(g);

  p.dtype = 2; /* q4_0 */
  assert_int_equal(us_lm_export_gguf(lm, path, &p, &r, &err), US_ERR_CONFIG);
  p.dtype = US_GGUF_F32;
  assert_int_equal(us_lm_export_gguf(lm, "/nonexistent-dir/x.gguf", &p, &r, &err), US_ERR_IO);
  assert_non_null(strstr(err.msg, "/nonexistent-dir/x.gguf"));
  unlink(path);
  us_lm_free(lm);
}

static void token_text_should_follow_the_gpt2_byte_map(void **state) {
  (void)state;
  struct {
    unsigned char byte;
    const char *text;
  } cases[] = {{0, "\xc4\x80"},   {32, "\xc4\xa0"},  {'!', "!"},        {'~', "~"},
               {127, "\xc4\xa1"}, {160, "\xc5\x82"}, {161, "\xc2\xa1"}, {172, "\xc2\xac"},
               {173, "\xc5\x83"}, {174, "\xc2\xae"}, {255, "\xc3\xbf"}};
  us_err err;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    us_buf b;
    us_buf_init(&b, 0);
    assert_int_equal(us_lm_gguf_token_text(&cases[i].byte, 1, &b, &err), US_OK);
    if (strcmp(b.data, cases[i].text) != 0) fail_msg("byte %u: \"%s\"", cases[i].byte, b.data);
    us_buf_free(&b);
  }
  /* all 256 bytes spell differently, and read back */
  char seen[256][3];
  for (int i = 0; i < 256; i++) {
    unsigned char byte = (unsigned char)i;
    us_buf b;
    us_buf_init(&b, 0);
    assert_int_equal(us_lm_gguf_token_text(&byte, 1, &b, &err), US_OK);
    assert_true(b.len <= 2);
    memset(seen[i], 0, 3);
    memcpy(seen[i], b.data, b.len);
    for (int j = 0; j < i; j++) assert_string_not_equal(seen[i], seen[j]);
    us_buf back;
    us_buf_init(&back, 0);
    assert_int_equal(us_lm_gguf_token_bytes(b.data, b.len, &back, &err), US_OK);
    assert_int_equal(back.len, 1);
    assert_int_equal((unsigned char)back.data[0], byte);
    us_buf_free(&back);
    us_buf_free(&b);
  }
}

static void token_bytes_should_refuse_text_outside_the_map(void **state) {
  (void)state;
  const char *bad[] = {"\xe2\x82\xac", "\xc5\x84", "\x80", "\xc4", " ", "\x01"};
  us_err err;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    us_buf b;
    us_buf_init(&b, 0);
    if (us_lm_gguf_token_bytes(bad[i], strlen(bad[i]), &b, &err) != US_ERR_FORMAT)
      fail_msg("case %zu was read", i);
    us_buf_free(&b);
  }
  us_buf b;
  us_buf_init(&b, 0);
  assert_int_equal(us_lm_gguf_token_bytes("\xc4\xa0hello\xc4\x8a", 9, &b, &err), US_OK);
  assert_string_equal(b.data, " hello\n");
  us_buf_free(&b);
}

static void greedy_tokens_should_match_generate(void **state) {
  (void)state;
  us_lm *lm = tiny_model();
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  gp.max_tokens = 10;
  char *answer = NULL;
  double lp;
  us_err err;
  assert_int_equal(us_lm_generate(lm, "abc xabc", &gp, &answer, &lp, NULL, &err), US_OK);
  int32_t *in = NULL, out[10];
  int n_in = 0, n_out = 0, V = us_lm_get_config(lm)->vocab;
  assert_int_equal(us_lm_prompt_tokens(lm, "abc xabc", &in, &n_in, &err), US_OK);
  us_bpe_special sp = us_bpe_specials(us_lm_get_bpe(lm));
  assert_int_equal(in[0], sp.bos);
  assert_int_equal(in[n_in - 1], sp.sep);
  float *logits = malloc(10 * (size_t)V * sizeof *logits);
  assert_int_equal(us_lm_greedy_tokens(lm, in, n_in, 10, out, &n_out, logits, &err), US_OK);
  assert_true(n_out >= 1 && n_out <= 10);
  for (int k = 0; k < n_out; k++) {
    assert_true(out[k] != sp.bos && out[k] != sp.sep && out[k] != sp.pad);
    for (int v = 0; v < V; v++)
      assert_true(logits[k * V + v] <= logits[k * V + out[k]] || v == sp.bos || v == sp.sep ||
                  v == sp.pad);
  }
  us_buf text;
  us_buf_init(&text, 0);
  assert_int_equal(us_bpe_decode(us_lm_get_bpe(lm), out, n_out, &text, &err), US_OK);
  assert_string_equal(text.data ? text.data : "", answer);
  us_buf_free(&text);
  int32_t bad = V;
  assert_int_equal(us_lm_greedy_tokens(lm, &bad, 1, 1, out, &n_out, NULL, &err), US_ERR_INPUT);
  free(logits);
  free(in);
  free(answer);
  us_lm_free(lm);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(export_should_hold_what_llama_cpp_reads),
      cmocka_unit_test(token_text_should_follow_the_gpt2_byte_map),
      cmocka_unit_test(token_bytes_should_refuse_text_outside_the_map),
      cmocka_unit_test(greedy_tokens_should_match_generate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
