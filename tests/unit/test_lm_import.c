/* Tests of starting from a pretrained model (student/lm_import.c, student/bpe_vocab.c, LoRA in
 * student/lm_lora.c): the tests write a tiny random llama GGUF themselves, in llama.cpp's
 * conventions (grouped-query attention, an untied output, a byte-level BPE vocabulary whose ids
 * are not the bytes, a ChatML template with a default system message), then check the weights
 * read, the logits against an independent naive forward written here from the file's tensors,
 * the tokeniser and pre-tokenisers against hand-worked splits, LoRA and full fine-tuning, the
 * saved model, and the refusals. */
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

#include "core/rng.h"
#include "student/blas.h"
#include "student/bpe_int.h"
#include "student/gguf.h"
#include "student/lm_gguf.h"
#include "student/lm_int.h"

enum { L = 2, C = 32, NH = 4, NKV = 2, HD = C / NH, CKV = NKV * HD, F = 64, NMERGE = 6 };
enum { V = 256 + NMERGE + 3, TOK_EOT = 262, TOK_START = 263, TOK_END = 264, CTX = 256 };
#define ROPE_BASE 1000.0
#define NORM_EPS 1e-5

/* ---- the tiny llama, as llama.cpp's converter would write it ---- */

typedef struct tiny {
  float embd[V * C], out[V * C], out_norm[C];
  float attn_norm[L][C], wq[L][C * C], wk[L][CKV * C], wv[L][CKV * C], wo[L][C * C];
  float ffn_norm[L][C], gate[L][F * C], up[L][F * C], down[L][C * F];
} tiny;

static tiny W;

static void fill(float *x, size_t n, us_rng *r, float scale, float offset) {
  for (size_t i = 0; i < n; i++) x[i] = offset + scale * (float)us_rng_normal(r);
}

static void make_weights(void) {
  us_rng r;
  us_rng_seed(&r, 42);
  fill(W.embd, V * C, &r, 0.5f, 0);
  fill(W.out, V * C, &r, 0.2f, 0);
  fill(W.out_norm, C, &r, 0.1f, 1);
  for (int l = 0; l < L; l++) {
    fill(W.attn_norm[l], C, &r, 0.1f, 1);
    fill(W.ffn_norm[l], C, &r, 0.1f, 1);
    fill(W.wq[l], C * C, &r, 0.2f, 0);
    fill(W.wk[l], CKV * C, &r, 0.2f, 0);
    fill(W.wv[l], CKV * C, &r, 0.2f, 0);
    fill(W.wo[l], C * C, &r, 0.2f, 0);
    fill(W.gate[l], F * C, &r, 0.2f, 0);
    fill(W.up[l], F * C, &r, 0.2f, 0);
    fill(W.down[l], C * F, &r, 0.2f, 0);
  }
}

/* Token id of byte b: reversed, so a reader that took ids for bytes would fail. */
static int byte_id(int b) {
  return 255 - b;
}

/* GPT-2's character for byte b, as UTF-8 into o; returns its length. */
static int gpt2_char(int b, char *o) {
  int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  int cp = b;
  if (!printable) {
    cp = 256;
    for (int k = 0; k < b; k++)
      if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255))) cp++;
  }
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  o[0] = (char)(0xc0 | cp >> 6);
  o[1] = (char)(0x80 | (cp & 0x3f));
  return 2;
}

static const char *TEMPLATE =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' "
    "}}{% endif %}";

/* What a test changes in the file it writes. */
typedef struct variant {
  uint32_t dtype;        /* of the matrices (norms stay f32, as llama.cpp writes them) */
  const char *arch;      /* general.architecture */
  const char *tok_model; /* tokenizer.ggml.model */
  const char *pre;       /* tokenizer.ggml.pre */
  const char *skip;      /* a tensor left out */
  const char *raw_q4;    /* a tensor written as q4_0 */
  int tied;              /* no output.weight */
} variant;

static variant plain(void) {
  variant v = {US_GGUF_F32, "llama", "gpt2", "smollm", NULL, NULL, 0};
  return v;
}

static const char *tmp_path(const char *name) {
  static char path[256];
  snprintf(path, sizeof path, "/tmp/us-test-lm-import-%d-%s", (int)getpid(), name);
  return path;
}

static void add_matrix(us_gguf_writer *w, const variant *v, const char *name, const float *data,
                       uint64_t ne0, uint64_t ne1, void *q4) {
  us_err err;
  uint64_t ne[2] = {ne0, ne1};
  if (v->skip && strcmp(v->skip, name) == 0) return;
  if (v->raw_q4 && strcmp(v->raw_q4, name) == 0) {
    assert_int_equal(us_gguf_add_tensor_raw(w, name, 2, ne, 2 /* q4_0 */, q4, &err), US_OK);
    return;
  }
  uint32_t dtype = ne1 > 1 ? v->dtype : US_GGUF_F32;
  assert_int_equal(us_gguf_add_tensor(w, name, ne1 > 1 ? 2 : 1, ne, dtype, data, &err), US_OK);
}

static void write_tiny(const char *path, const variant *v) {
  us_gguf_writer *w = NULL;
  us_err err;
  assert_int_equal(us_gguf_writer_new(0, &w, &err), US_OK);
  assert_int_equal(us_gguf_add_str(w, "general.architecture", v->arch, &err), US_OK);
  assert_int_equal(us_gguf_add_u32(w, "llama.block_count", L, &err), US_OK);
  assert_int_equal(us_gguf_add_u32(w, "llama.context_length", CTX, &err), US_OK);
  assert_int_equal(us_gguf_add_u32(w, "llama.embedding_length", C, &err), US_OK);
  assert_int_equal(us_gguf_add_u32(w, "llama.feed_forward_length", F, &err), US_OK);
  assert_int_equal(us_gguf_add_u32(w, "llama.attention.head_count", NH, &err), US_OK);
  assert_int_equal(us_gguf_add_u32(w, "llama.attention.head_count_kv", NKV, &err), US_OK);
  assert_int_equal(us_gguf_add_f32(w, "llama.rope.freq_base", (float)ROPE_BASE, &err), US_OK);
  assert_int_equal(
      us_gguf_add_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)NORM_EPS, &err), US_OK);
  /* vocabulary: bytes (reversed ids), merges, then the control tokens */
  static char store[V][16];
  const char *toks[V];
  int32_t types[V];
  for (int b = 0; b < 256; b++) {
    int n = gpt2_char(b, store[byte_id(b)]);
    store[byte_id(b)][n] = 0;
    types[byte_id(b)] = 1;
  }
  const char *merged[NMERGE] = {"\xc4\xa0t",
                                "he",
                                "\xc4\xa0the",
                                "at",
                                "\xc4\xa0"
                                "c",
                                "\xc4\xa0"
                                "cat"};
  const char *merges[NMERGE] = {"\xc4\xa0 t",
                                "h e",
                                "\xc4\xa0t he",
                                "a t",
                                "\xc4\xa0 c",
                                "\xc4\xa0"
                                "c at"};
  for (int m = 0; m < NMERGE; m++) {
    snprintf(store[256 + m], sizeof store[0], "%s", merged[m]);
    types[256 + m] = 1;
  }
  snprintf(store[TOK_EOT], sizeof store[0], "<|endoftext|>");
  snprintf(store[TOK_START], sizeof store[0], "<|im_start|>");
  snprintf(store[TOK_END], sizeof store[0], "<|im_end|>");
  types[TOK_EOT] = types[TOK_START] = types[TOK_END] = 3;
  for (int i = 0; i < V; i++) toks[i] = store[i];
  assert_int_equal(us_gguf_add_str(w, "tokenizer.ggml.model", v->tok_model, &err), US_OK);
  assert_int_equal(us_gguf_add_str(w, "tokenizer.ggml.pre", v->pre, &err), US_OK);
  assert_int_equal(us_gguf_add_str_array(w, "tokenizer.ggml.tokens", toks, NULL, V, &err), US_OK);
  assert_int_equal(us_gguf_add_i32_array(w, "tokenizer.ggml.token_type", types, V, &err), US_OK);
  assert_int_equal(us_gguf_add_str_array(w, "tokenizer.ggml.merges", merges, NULL, NMERGE, &err),
                   US_OK);
  assert_int_equal(us_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", TOK_START, &err), US_OK);
  assert_int_equal(us_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", TOK_END, &err), US_OK);
  assert_int_equal(us_gguf_add_u32(w, "tokenizer.ggml.padding_token_id", TOK_EOT, &err), US_OK);
  assert_int_equal(us_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", false, &err), US_OK);
  assert_int_equal(us_gguf_add_str(w, "tokenizer.chat_template", TEMPLATE, &err), US_OK);
  /* tensors, in llama.cpp's names and shapes (ne0 = input width) */
  static unsigned char q4[(size_t)V * C / 32 * 18];
  add_matrix(w, v, "token_embd.weight", W.embd, C, V, q4);
  add_matrix(w, v, "output_norm.weight", W.out_norm, C, 1, q4);
  if (!v->tied) add_matrix(w, v, "output.weight", W.out, C, V, q4);
  for (int l = 0; l < L; l++) {
    char name[64];
#define T(part, data, a, b)                                 \
  snprintf(name, sizeof name, "blk.%d." part ".weight", l); \
  add_matrix(w, v, name, data, a, b, q4)
    T("attn_norm", W.attn_norm[l], C, 1);
    T("attn_q", W.wq[l], C, C);
    T("attn_k", W.wk[l], C, CKV);
    T("attn_v", W.wv[l], C, CKV);
    T("attn_output", W.wo[l], C, C);
    T("ffn_norm", W.ffn_norm[l], C, 1);
    T("ffn_gate", W.gate[l], C, F);
    T("ffn_up", W.up[l], C, F);
    T("ffn_down", W.down[l], F, C);
#undef T
  }
  assert_int_equal(us_gguf_writer_write(w, path, &err), US_OK);
  us_gguf_writer_free(w);
}

/* ---- an independent forward pass from the file's tensors (doubles, naive loops) ---- */

static void rmsnorm(double *o, const double *x, const float *w) {
  double ss = 0;
  for (int i = 0; i < C; i++) ss += x[i] * x[i];
  double r = 1.0 / sqrt(ss / C + NORM_EPS);
  for (int i = 0; i < C; i++) o[i] = x[i] * r * w[i];
}

static void matvec(double *o, const float *m, const double *x, int rows, int cols) {
  for (int i = 0; i < rows; i++) {
    double s = 0;
    for (int j = 0; j < cols; j++) s += (double)m[(size_t)i * cols + j] * x[j];
    o[i] = s;
  }
}

/* llama.cpp's LLAMA_ROPE_TYPE_NORM: pairs (2i, 2i+1) of each head rotated by p * base^(-2i/hd) */
static void rope(double *v, int heads, int p) {
  for (int h = 0; h < heads; h++)
    for (int i = 0; i < HD / 2; i++) {
      double th = p * pow(ROPE_BASE, -2.0 * i / HD), c = cos(th), s = sin(th);
      double *x = v + h * HD + 2 * i, x0 = x[0], x1 = x[1];
      x[0] = x0 * c - x1 * s;
      x[1] = x0 * s + x1 * c;
    }
}

/* Logits (n, V) of tokens[0..n) with the weights W (as written, before any rounding). */
static void reference_logits(const int32_t *tokens, int n, const tiny *w, double *logits) {
  static double x[CTX][C], k[L][CTX][CKV], vv[L][CTX][CKV];
  double h[C], q[C], a[C], o[C], g[F], u[F];
  for (int t = 0; t < n; t++)
    for (int i = 0; i < C; i++) x[t][i] = w->embd[(size_t)tokens[t] * C + i];
  for (int l = 0; l < L; l++) {
    for (int t = 0; t < n; t++) {
      rmsnorm(h, x[t], w->attn_norm[l]);
      matvec(k[l][t], w->wk[l], h, CKV, C);
      matvec(vv[l][t], w->wv[l], h, CKV, C);
      rope(k[l][t], NKV, t);
    }
    for (int t = 0; t < n; t++) {
      rmsnorm(h, x[t], w->attn_norm[l]);
      matvec(q, w->wq[l], h, C, C);
      rope(q, NH, t);
      for (int hh = 0; hh < NH; hh++) {
        int kv = hh / (NH / NKV);
        double s[CTX], mx = -1e300, sum = 0;
        for (int j = 0; j <= t; j++) {
          s[j] = 0;
          for (int i = 0; i < HD; i++) s[j] += q[hh * HD + i] * k[l][j][kv * HD + i];
          s[j] /= sqrt((double)HD);
          mx = s[j] > mx ? s[j] : mx;
        }
        for (int j = 0; j <= t; j++) sum += (s[j] = exp(s[j] - mx));
        for (int i = 0; i < HD; i++) {
          double acc = 0;
          for (int j = 0; j <= t; j++) acc += s[j] / sum * vv[l][j][kv * HD + i];
          a[hh * HD + i] = acc;
        }
      }
      matvec(o, w->wo[l], a, C, C);
      for (int i = 0; i < C; i++) h[i] = x[t][i] + o[i]; /* h: the residual after attention */
      double hn[C];
      rmsnorm(hn, h, w->ffn_norm[l]);
      matvec(g, w->gate[l], hn, F, C);
      matvec(u, w->up[l], hn, F, C);
      double act[F];
      for (int i = 0; i < F; i++) act[i] = g[i] / (1 + exp(-g[i])) * u[i];
      matvec(o, w->down[l], act, C, F);
      for (int i = 0; i < C; i++) x[t][i] = h[i] + o[i];
    }
  }
  for (int t = 0; t < n; t++) {
    rmsnorm(h, x[t], w->out_norm);
    matvec(logits + (size_t)t * V, w->out, h, V, C);
  }
}

/* Our forward on one row of tokens; logits left in a->logits. */
static void our_logits(const us_lm *lm, us__lm_acts *a, int32_t *tokens, int n) {
  int32_t pos[CTX], doc[CTX];
  for (int i = 0; i < n; i++) {
    pos[i] = i;
    doc[i] = 0;
  }
  us__lm_batch b = {tokens, NULL, NULL, pos, doc};
  us__lm_forward(lm, a, &b, 1, n);
}

static double max_logit_error(const us_lm *lm, const tiny *w) {
  int32_t tokens[12] = {TOK_START, 139, 257, 261, 258, 1, 2, 77, 200, TOK_END, 5, 261};
  static double ref[12 * V];
  reference_logits(tokens, 12, w, ref);
  us__lm_acts a;
  assert_int_equal(us__lm_acts_new(&lm->config, 1, 12, &a, NULL), US_OK);
  our_logits(lm, &a, tokens, 12);
  double worst = 0;
  for (int i = 0; i < 12 * V; i++) {
    double e = fabs(a.logits[i] - ref[i]);
    worst = e > worst ? e : worst;
  }
  us__lm_acts_free(&a);
  return worst;
}

/* ---- tests ---- */

static void import_should_read_every_tensor_where_our_forward_expects_it(void **state) {
  (void)state;
  us_blas_set_threads(1);
  variant v = plain();
  const char *path = tmp_path("f32.gguf");
  write_tiny(path, &v);
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_import_gguf(path, 1000, &lm, &err), US_OK);
  const us_lm_config *c = &lm->config;
  assert_int_equal(c->layers, L);
  assert_int_equal(c->dim, C);
  assert_int_equal(c->heads, NH);
  assert_int_equal(c->heads_kv, NKV);
  assert_int_equal(c->hidden, F);
  assert_int_equal(c->vocab, V);
  assert_int_equal(c->context, CTX); /* capped by the file's */
  assert_int_equal(c->untied, 1);
  assert_true(fabs(c->rope_base - ROPE_BASE) < 1e-3);
  assert_memory_equal(lm->w.wte, W.embd, sizeof W.embd);
  assert_memory_equal(lm->w.wout, W.out, sizeof W.out);
  assert_memory_equal(lm->w.wqkv + (size_t)(C + 2 * CKV) * C + C * C, W.wk[1], sizeof W.wk[1]);
  assert_memory_equal(lm->w.w13 + (size_t)2 * F * C + F * C, W.up[1], sizeof W.up[1]);
  /* fine-tuning 0 steps: our forward on the weights read equals the file's model */
  double e = max_logit_error(lm, &W);
  print_message("f32: largest logit difference from the reference forward %.3g\n", e);
  assert_true(e < 1e-4);
  assert_string_equal(us_lm_chat_format_name(lm), "chatml");
  us_lm_free(lm);
  unlink(path);
}

static void round_trip(float *x, size_t n, uint32_t dtype) {
  uint64_t bytes = 0;
  assert_true(us_gguf_dtype_bytes(dtype, n, &bytes));
  void *q = malloc(bytes);
  assert_int_equal(us_gguf_from_float(dtype, x, n, q, NULL), US_OK);
  assert_int_equal(us_gguf_to_float(dtype, q, n, x, NULL), US_OK);
  free(q);
}

static void round_matrices(tiny *t, uint32_t dtype) {
  round_trip(t->embd, V * C, dtype);
  round_trip(t->out, V * C, dtype);
  for (int l = 0; l < L; l++) {
    round_trip(t->wq[l], C * C, dtype);
    round_trip(t->wk[l], CKV * C, dtype);
    round_trip(t->wv[l], CKV * C, dtype);
    round_trip(t->wo[l], C * C, dtype);
    round_trip(t->gate[l], F * C, dtype);
    round_trip(t->up[l], F * C, dtype);
    round_trip(t->down[l], C * F, dtype);
  }
}

static void f16_bf16_and_q8_0_tensors_should_import_as_their_values(void **state) {
  (void)state;
  us_blas_set_threads(1);
  const uint32_t types[3] = {US_GGUF_F16, US_GGUF_BF16, US_GGUF_Q8_0};
  for (int k = 0; k < 3; k++) {
    variant v = plain();
    v.dtype = types[k];
    v.tied = k == 2; /* and the tied output once */
    const char *path = tmp_path("typed.gguf");
    write_tiny(path, &v);
    us_lm *lm = NULL;
    us_err err;
    assert_int_equal(us_lm_import_gguf(path, 256, &lm, &err), US_OK);
    assert_int_equal(lm->config.untied, v.tied ? 0 : 1);
    assert_true(lm->w.wout == lm->w.wte || !v.tied);
    /* the reference runs on the file's values (each matrix rounded to its type and back), so
     * what is compared is the reading, not the rounding */
    static tiny ref;
    ref = W;
    if (v.tied) memcpy(ref.out, ref.embd, sizeof ref.out);
    round_matrices(&ref, types[k]);
    double e = max_logit_error(lm, &ref), e_floats = max_logit_error(lm, &W);
    print_message(
        "%s: largest logit difference %.3g from the file's values, %.3g from the floats "
        "before rounding\n",
        us_gguf_dtype_name(types[k]), e, e_floats);
    assert_true(e < 1e-4);
    assert_true(e_floats > 10 * e); /* they were rounded: the comparison above has teeth */
    us_lm_free(lm);
    unlink(path);
  }
}

static void encode(const us_bpe *bpe, const char *s, int32_t *out, int *n) {
  int32_t *t = NULL;
  assert_int_equal(us_bpe_encode(bpe, s, strlen(s), &t, n, NULL), US_OK);
  memcpy(out, t, (size_t)*n * sizeof *t);
  free(t);
}

static void imported_tokeniser_should_merge_by_rank_and_round_trip_bytes(void **state) {
  (void)state;
  variant v = plain();
  const char *path = tmp_path("tok.gguf");
  write_tiny(path, &v);
  us_lm *lm = NULL;
  assert_int_equal(us_lm_import_gguf(path, 256, &lm, NULL), US_OK);
  const us_bpe *bpe = lm->bpe;
  int32_t t[64];
  int n;
  encode(bpe, "the cat", t, &n); /* the, " cat": t + he, then " c" "at" -> " cat" */
  assert_int_equal(n, 3);
  assert_int_equal(t[0], byte_id('t'));
  assert_int_equal(t[1], 257);
  assert_int_equal(t[2], 261);
  encode(bpe, " the", t, &n);
  assert_int_equal(n, 1);
  assert_int_equal(t[0], 258);
  /* control tokens are not recognised in user text, only in templates */
  encode(bpe, "<|im_end|>", t, &n);
  assert_true(n > 1);
  int32_t *s = NULL;
  assert_int_equal(us_bpe_encode_special(bpe, "a<|im_end|>\n", 12, &s, &n, NULL), US_OK);
  assert_int_equal(n, 3);
  assert_int_equal(s[1], TOK_END);
  free(s);
  /* any bytes round trip; control tokens decode to nothing */
  const char *text = "caf\xc3\xa9 \t\n the cat's 12345 \xff\x01!";
  encode(bpe, text, t, &n);
  t[n++] = TOK_END;
  us_buf b;
  us_buf_init(&b, 0);
  assert_int_equal(us_bpe_decode(bpe, t, n, &b, NULL), US_OK);
  assert_int_equal(b.len, strlen(text));
  assert_memory_equal(b.data, text, b.len);
  us_buf_free(&b);
  /* the chat format: SmolLM2's default system message, then user ... assistant */
  us_bpe_chat f = us_bpe_chat_format(bpe);
  assert_int_equal(f.head[0], TOK_START);
  assert_int_equal(f.end, TOK_END);
  assert_int_equal(f.mid[0], TOK_END);
  us_buf_init(&b, 0);
  assert_int_equal(us_bpe_decode(bpe, f.head, f.n_head, &b, NULL), US_OK);
  const char *head =
      "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
      "Face\nuser\n"; /* control tokens decode to nothing */
  assert_int_equal(b.len, strlen(head));
  assert_memory_equal(b.data, head, b.len);
  us_buf_free(&b);
  us_lm_free(lm);
  unlink(path);
}

/* Splits text with a pre-tokeniser and compares with the expected pieces joined by '|'. */
static void expect_split(us_bpe_pretok kind, const char *text, const char *expect) {
  char got[512];
  size_t o = 0, len = strlen(text);
  for (size_t i = 0; i < len;) {
    size_t j = us__bpe_pretok_end(kind, (const unsigned char *)text, len, i);
    assert_true(j > i);
    if (i) got[o++] = '|';
    memcpy(got + o, text + i, j - i);
    o += j - i;
    i = j;
  }
  got[o] = 0;
  if (strcmp(got, expect) != 0) print_message("pre-tokeniser %d: got [%s]\n", (int)kind, got);
  assert_string_equal(got, expect);
}

/* Outside ASCII the classes come from Unicode's tables: a fraction and Arabic-Indic digits are
 * numbers, a combining accent is not a letter, an ideographic space is whitespace. */
static void pre_tokenisers_should_use_unicode_classes(void **state) {
  (void)state;
  expect_split(US_BPE_PRE_GPT2, "caf\xc3\xa9 \xc2\xbd \xd9\xa3\xd9\xa4 x",
               "caf\xc3\xa9| \xc2\xbd| \xd9\xa3\xd9\xa4| x");
  expect_split(US_BPE_PRE_GPT2, "e\xcc\x81t\xe3\x80\x80y", "e|\xcc\x81|t|\xe3\x80\x80|y");
  expect_split(US_BPE_PRE_QWEN2, "\xd9\xa3\xd9\xa4\xce\xb1", "\xd9\xa3|\xd9\xa4|\xce\xb1");
  expect_split(US_BPE_PRE_GPT2,
               "a\xff"
               "b",
               "a|\xff"
               "|b"); /* invalid UTF-8: other */
}

/* llama 3 (llama.cpp's ignore_merges): a piece that is a token is that token, even when the
 * merges would not reach it; the others merge by rank. */
static void llama3_should_take_whole_pieces_that_are_tokens(void **state) {
  (void)state;
  enum { V = 259 };
  char texts[V][4];
  const char *ptrs[V];
  size_t lens[V];
  int next = 256;
  for (int b = 0; b < 256; b++) {
    bool prints = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    unsigned cp = prints ? (unsigned)b : (unsigned)next++;
    if (cp < 0x80) {
      texts[b][0] = (char)cp, lens[b] = 1;
    } else {
      texts[b][0] = (char)(0xc0 | cp >> 6), texts[b][1] = (char)(0x80 | (cp & 0x3f)), lens[b] = 2;
    }
  }
  memcpy(texts[256], "bc", 2), memcpy(texts[257], "ab", 2), memcpy(texts[258], "abc", 3);
  lens[256] = lens[257] = 2, lens[258] = 3;
  for (int i = 0; i < V; i++) ptrs[i] = texts[i];
  const char *merges[] = {"b c", "a b", "ab c"};
  size_t merge_lens[] = {3, 3, 4};
  us_bpe_special sp = {256, 256, 256, 256};
  for (int k = 0; k < 2; k++) {
    us_bpe *bpe = NULL;
    us_bpe_pretok pre = k ? US_BPE_PRE_LLAMA3 : US_BPE_PRE_GPT2;
    assert_int_equal(
        us_bpe_from_vocab(V, ptrs, lens, NULL, 3, merges, merge_lens, pre, sp, &bpe, NULL), US_OK);
    int32_t *t = NULL;
    int n = 0;
    assert_int_equal(us_bpe_encode(bpe, "abc", 3, &t, &n, NULL), US_OK);
    if (k) {
      assert_int_equal(n, 1);
      assert_int_equal(t[0], 258);
    } else { /* b c first, then nothing merges a with bc */
      assert_int_equal(n, 2);
      assert_int_equal(t[0], 'a');
      assert_int_equal(t[1], 256);
    }
    free(t);
    us_bpe_free(bpe);
  }
}

static void pre_tokenisers_should_split_like_llama_cpp(void **state) {
  (void)state;
  /* worked by hand from llama.cpp's regular expressions (src/llama-vocab.cpp) */
  const char *text = "It's  hello world 12345!!\n\nok ()x";
  expect_split(US_BPE_PRE_GPT2, text, "It|'s| | hello| world| 12345|!!|\n|\n|ok| ()|x");
  expect_split(US_BPE_PRE_SMOLLM, text, "It|'s| | hello| world| |1|2|3|4|5|!!|\n|\n|ok| ()|x");
  expect_split(US_BPE_PRE_LLAMA3, text, "It|'s| | hello| world| |123|45|!!\n\n|ok| ()|x");
  expect_split(US_BPE_PRE_QWEN2, text, "It|'s| | hello| world| |1|2|3|4|5|!!\n\n|ok| ()|x");
  expect_split(US_BPE_PRE_GPT2, "a \n b", "a| \n| b");
  expect_split(US_BPE_PRE_LLAMA3, "a \n b", "a| \n| b");
  expect_split(US_BPE_PRE_LLAMA3, "x(hello) 'RE", "x|(hello|)| '|RE");
  expect_split(US_BPE_PRE_LLAMA3, "I'RE", "I|'RE");
  expect_split(US_BPE_PRE_GPT2, "caf\xc3\xa9 na\xc3\xafve", "caf\xc3\xa9| na\xc3\xafve");
}

static const us_lm_example EX[] = {
    {"the cat", "the cat sat on the mat"},    {"a cat", "a cat is a small animal"},
    {"the dog", "the dog ran after the cat"}, {"my cat", "my cat likes the sun"},
    {"one cat", "one cat, two cats"},         {"the hat", "the hat is on the cat"},
};

static void train_params(us_lm_train_params *p, const char *init, int rank, int steps,
                         float *losses) {
  us_lm_train_params_defaults(p);
  p->init = init;
  p->lora_rank = rank;
  p->lora_alpha = 8;
  p->steps = steps;
  p->batch_size = 2;
  p->warmup_steps = 2;
  p->lr = rank ? 1e-2 : 2e-3;
  p->context = 160;
  p->threads = 1;
  p->checkpoint_every = 0;
  p->losses = losses;
}

static double mean(const float *x, int n) {
  double s = 0;
  for (int i = 0; i < n; i++) s += x[i];
  return s / n;
}

static void lora_and_full_fine_tuning_should_lower_the_loss_and_save_a_loadable_model(void **s) {
  (void)s;
  variant v = plain();
  v.dtype = US_GGUF_Q8_0;
  char path[256];
  snprintf(path, sizeof path, "%s", tmp_path("train.gguf"));
  write_tiny(path, &v);
  us_lm *base = NULL;
  assert_int_equal(us_lm_import_gguf(path, 160, &base, NULL), US_OK);
  for (int rank = 4; rank >= 0; rank -= 4) {
    enum { STEPS = 40 };
    float losses[STEPS];
    us_lm_train_params p;
    train_params(&p, path, rank, STEPS, losses);
    us_lm *lm = NULL;
    us_err err;
    us_status st = us_lm_train(&p, EX, 6, &lm, &err);
    if (st != US_OK) print_message("%s\n", err.msg);
    assert_int_equal(st, US_OK);
    double first = mean(losses, 5), last = mean(losses + STEPS - 5, 5);
    print_message("rank %d: loss %.3f -> %.3f\n", rank, first, last);
    assert_true(last < 0.7 * first);
    assert_null(lm->lora); /* merged */
    assert_int_equal(lm->n_params, base->n_params);
    if (rank) { /* only the adapted projections moved */
      assert_memory_equal(lm->w.wte, base->w.wte, sizeof W.embd);
      assert_memory_equal(lm->w.ln1, base->w.ln1, L * C * sizeof(float));
      assert_memory_not_equal(lm->w.wqkv, base->w.wqkv, (size_t)(C + 2 * CKV) * C * sizeof(float));
    }
    /* the saved model keeps the imported tokeniser and chat format */
    const char *saved = tmp_path("tuned.uslm");
    assert_int_equal(us_lm_save(lm, saved, &err), US_OK);
    us_lm *back = NULL;
    assert_int_equal(us_lm_load(saved, &back, &err), US_OK);
    assert_string_equal(us_lm_chat_format_name(back), "chatml");
    us_lm_gen_params gp;
    us_lm_gen_params_defaults(&gp);
    gp.max_tokens = 12;
    char *a1, *a2;
    double lp1, lp2;
    assert_int_equal(us_lm_generate(lm, "the cat", &gp, &a1, &lp1, NULL, NULL), US_OK);
    assert_int_equal(us_lm_generate(back, "the cat", &gp, &a2, &lp2, NULL, NULL), US_OK);
    assert_string_equal(a1, a2);
    print_message("rank %d: \"the cat\" -> \"%s\"\n", rank, a1);
    free(a1);
    free(a2);
    int32_t t1[64], t2[64];
    int n1, n2;
    encode(lm->bpe, "the cat's hat", t1, &n1);
    encode(back->bpe, "the cat's hat", t2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(t1, t2, (size_t)n1 * sizeof *t1);
    unlink(saved);
    us_lm_free(back);
    us_lm_free(lm);
  }
  us_lm_free(base);
  unlink(path);
}

/* An imported model exported again as GGUF (student/lm_gguf.c: GQA, untied output, the file's
 * own vocabulary, merges and chat format) reads back with the same weights, tokens and logits. */
static void imported_model_should_export_to_gguf_and_read_back_the_same(void **state) {
  (void)state;
  us_blas_set_threads(1);
  variant v = plain();
  char path[256], out[256];
  snprintf(path, sizeof path, "%s", tmp_path("in.gguf"));
  snprintf(out, sizeof out, "%s", tmp_path("out.gguf"));
  write_tiny(path, &v);
  us_lm *lm = NULL, *back = NULL;
  us_err err;
  assert_int_equal(us_lm_import_gguf(path, 1000, &lm, &err), US_OK);
  us_lm_gguf_params gp;
  us_lm_gguf_params_defaults(&gp);
  us_status st = us_lm_export_gguf(lm, out, &gp, NULL, &err);
  if (st != US_OK) print_message("%s\n", err.msg);
  assert_int_equal(st, US_OK);
  assert_int_equal(us_lm_import_gguf(out, 1000, &back, &err), US_OK);
  assert_int_equal(back->n_params, lm->n_params);
  assert_memory_equal(back->block, lm->block, lm->n_params * sizeof(float));
  assert_int_equal(back->config.heads_kv, NKV);
  assert_int_equal(back->config.untied, 1);
  assert_string_equal(us_lm_chat_format_name(back), "chatml");
  int32_t t1[64], t2[64];
  int n1, n2;
  encode(lm->bpe, "the cat's 12 hats", t1, &n1);
  encode(back->bpe, "the cat's 12 hats", t2, &n2);
  assert_int_equal(n1, n2);
  assert_memory_equal(t1, t2, (size_t)n1 * sizeof *t1);
  assert_true(max_logit_error(back, &W) < 1e-4);
  us_lm_free(back);
  us_lm_free(lm);
  unlink(path);
  unlink(out);
}

static void expect_refusal(const variant *v, const char *key) {
  const char *path = tmp_path("bad.gguf");
  write_tiny(path, v);
  us_lm *lm = NULL;
  us_err err;
  us_status st = us_lm_import_gguf(path, 256, &lm, &err);
  assert_int_not_equal(st, US_OK);
  assert_null(lm);
  print_message("%s\n", err.msg);
  assert_non_null(strstr(err.msg, path));
  assert_non_null(strstr(err.msg, key));
  unlink(path);
}

static void unsupported_files_should_be_refused_naming_the_file_and_key(void **state) {
  (void)state;
  variant v = plain();
  v.arch = "qwen2";
  expect_refusal(&v, "general.architecture is \"qwen2\"");
  v = plain();
  v.tok_model = "rwkv";
  expect_refusal(&v, "tokenizer.ggml.model is \"rwkv\"");
  v = plain();
  v.pre = "made-up";
  expect_refusal(&v, "tokenizer.ggml.pre is \"made-up\"");
  v = plain();
  v.raw_q4 = "blk.1.ffn_up.weight";
  expect_refusal(&v, "blk.1.ffn_up.weight has type q4_0");
  v = plain();
  v.skip = "blk.0.attn_k.weight";
  expect_refusal(&v, "tensor blk.0.attn_k.weight is missing");
  /* a truncated file: the container reader's message names the file */
  v = plain();
  const char *path = tmp_path("cut.gguf");
  write_tiny(path, &v);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fclose(f);
  assert_int_equal(truncate(path, len - 100), 0);
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_import_gguf(path, 256, &lm, &err), US_ERR_FORMAT);
  print_message("%s\n", err.msg);
  assert_non_null(strstr(err.msg, path));
  unlink(path);
  assert_int_equal(us_lm_import_gguf("/nonexistent/model.gguf", 256, &lm, &err), US_ERR_IO);
  /* adapters without a pretrained model are a configuration error */
  us_lm_train_params p;
  train_params(&p, NULL, 4, 5, NULL);
  assert_int_equal(us_lm_train_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "lora_rank"));
}

int main(void) {
  make_weights();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(import_should_read_every_tensor_where_our_forward_expects_it),
      cmocka_unit_test(f16_bf16_and_q8_0_tensors_should_import_as_their_values),
      cmocka_unit_test(imported_tokeniser_should_merge_by_rank_and_round_trip_bytes),
      cmocka_unit_test(pre_tokenisers_should_split_like_llama_cpp),
      cmocka_unit_test(pre_tokenisers_should_use_unicode_classes),
      cmocka_unit_test(llama3_should_take_whole_pieces_that_are_tokens),
      cmocka_unit_test(lora_and_full_fine_tuning_should_lower_the_loss_and_save_a_loadable_model),
      cmocka_unit_test(imported_model_should_export_to_gguf_and_read_back_the_same),
      cmocka_unit_test(unsupported_files_should_be_refused_naming_the_file_and_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
