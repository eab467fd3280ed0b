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
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* ---- a Q8_0 base kept quantised (student/lm_q8.c) ---- */

static double max_diff(const float *x, const float *y, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)x[i] - y[i]));
  return worst;
}

static void q8_base_should_stay_quantised_with_its_floats_logits_and_lora_gradients(void **state) {
  (void)state;
  us_blas_set_threads(1);
  variant v = plain();
  v.dtype = US_GGUF_Q8_0;
  char path[256];
  snprintf(path, sizeof path, "%s", tmp_path("q8.gguf"));
  write_tiny(path, &v);
  us_lm *fl = NULL, *q = NULL;
  us_err err;
  assert_int_equal(us__lm_import(path, 256, false, &fl, &err), US_OK);
  assert_int_equal(us__lm_import(path, 256, true, &q, &err), US_OK);
  assert_null(fl->q8);
  assert_non_null(q->q8);
  assert_null(q->w.wqkv);
  /* the projections are held in their file bytes: 34 per 32 weights, not 128 */
  size_t q8_bytes = 0;
  for (int k = 0; k < US_LM_LORA_KINDS; k++)
    q8_bytes += (size_t)L * (size_t)q->q8->out[k] * q->q8->row_bytes[k];
  size_t proj = fl->n_params - q->n_params;
  assert_int_equal(proj, (size_t)L * ((C + 2 * CKV) * C + C * C + 2 * F * C + C * F));
  assert_int_equal(q8_bytes * 32, proj * 34);
  assert_true(fl->base_hash != 0 && fl->base_hash == q->base_hash);
  /* logits of the kept base = logits of the same base made float, whole and in chunks of rows */
  enum { N = 12 };
  int32_t tok[N] = {TOK_START, 139, 257, 261, 258, 1, 2, 77, 200, TOK_END, 5, 261};
  us__lm_acts af, aq;
  assert_int_equal(us__lm_acts_new(&fl->config, 1, N, &af, NULL), US_OK);
  assert_int_equal(us__lm_acts_new(&q->config, 1, N, &aq, NULL), US_OK);
  assert_int_equal(us__lm_acts_q8(&aq, q, NULL), US_OK);
  our_logits(fl, &af, tok, N);
  our_logits(q, &aq, tok, N);
  double whole = max_diff(af.logits, aq.logits, (size_t)N * V);
  for (int k = 0; k < US_LM_LORA_KINDS; k++) q->q8->chunk_rows[k] = 5; /* uneven chunks */
  our_logits(q, &aq, tok, N);
  double chunked = max_diff(af.logits, aq.logits, (size_t)N * V);
  print_message("q8_0 kept: logits within %.3g (whole matrices), %.3g (chunks of 5 rows)\n", whole,
                chunked);
  assert_true(whole < 1e-5 && chunked < 1e-5);
  /* the LoRA gradient check on the kept base (through the chunked products) */
  us_rng r;
  us_rng_seed(&r, 9);
  assert_int_equal(us__lm_lora_new(q, 2, 4.0, &r, NULL), US_OK);
  us__lm_lora *lo = q->lora;
  fill(lo->block, lo->n_params, &r, 0.3f, 0); /* B non-zero, so A's gradient is too */
  assert_int_equal(us__lm_acts_lora(&aq, lo, L, NULL), US_OK);
  static int32_t tgt[N], pos[N], doc[N];
  static float mask[N];
  for (int i = 0; i < N; i++) {
    tgt[i] = i + 1 < N ? tok[i + 1] : TOK_END;
    pos[i] = i;
    doc[i] = 0;
    mask[i] = 1.0f;
  }
  us__lm_batch b = {tok, tgt, mask, pos, doc};
  us__lm_forward(q, &aq, &b, 1, N);
  memset(lo->grad, 0, lo->n_params * sizeof(float));
  us__lm_backward(q, &aq, &b, 1, N, NULL);
  int bad = 0;
  double mass = 0;
  const float eps = 1e-2f;
  for (int k = 0; k < 120; k++) {
    size_t i = k < 40 ? (size_t)k * (lo->n_params / 40) : (size_t)us_rng_below(&r, lo->n_params);
    float keep = lo->block[i];
    lo->block[i] = keep + eps;
    double up = us__lm_forward(q, &aq, &b, 1, N);
    lo->block[i] = keep - eps;
    double down = us__lm_forward(q, &aq, &b, 1, N);
    lo->block[i] = keep;
    double numeric = (up - down) / (2 * eps), analytic = lo->grad[i];
    if (fabs(analytic - numeric) > 2e-3 + 3e-2 * fabs(numeric)) {
      print_message("lora[%zu]: analytic %.6g numeric %.6g\n", i, analytic, numeric);
      bad++;
    }
    mass += fabs(analytic);
  }
  assert_int_equal(bad, 0);
  assert_true(mass > 1e-2);
  /* merging makes the base float: the merged model gives the adapted logits */
  our_logits(q, &aq, tok, N);
  static float adapted[N * V];
  memcpy(adapted, aq.logits, sizeof adapted);
  assert_int_equal(us__lm_lora_merge(q, &err), US_OK);
  assert_null(q->q8);
  assert_null(q->lora);
  assert_int_equal(q->n_params, fl->n_params);
  assert_memory_equal(q->w.wte, fl->w.wte, sizeof W.embd);
  our_logits(q, &af, tok, N);
  double merged = max_diff(adapted, af.logits, (size_t)N * V);
  print_message("q8_0 kept + LoRA merged into float: logits within %.3g\n", merged);
  assert_true(merged < 1e-4);
  us__lm_acts_free(&af);
  us__lm_acts_free(&aq);
  us_lm_free(fl);
  us_lm_free(q);
  unlink(path);
}

/* ---- LoRA checkpoints ---- */

enum { CK_STEPS = 24 };

typedef struct stopper {
  long stop_at, kill_at;
} stopper;

static int stop_or_kill(const us_lm_progress *pr, void *user) {
  const stopper *s = user;
  if (pr->step == s->kill_at) raise(SIGKILL); /* as kill -9: no cleanup, nothing flushed */
  return pr->step == s->stop_at;
}

/* A LoRA run of CK_STEPS on init with two held-out validation examples (so the best check's
 * adapters are part of the state); checkpoints every `every` steps to ckpt when non-NULL. */
static us_status lora_run(const char *init, const char *ckpt, int every, bool resume, stopper *s,
                          float *losses, us_lm **out, us_err *err) {
  us_lm_train_params p;
  train_params(&p, init, 4, CK_STEPS, losses);
  static const us_lm_example valid[] = {{"the cat", "99 (!) 17 zq"}, {"my hat", "ZZ xw 4 4 4"}};
  static us_lm_train_info info;
  p.valid = valid; /* unlike the training answers: the best check comes early */
  p.n_valid = 2;
  p.info = &info;
  p.patience = 0;
  p.checkpoint_path = ckpt;
  p.checkpoint_every = ckpt ? every : 0;
  p.resume = resume;
  p.progress = s ? stop_or_kill : NULL;
  p.progress_user = s;
  us_status st = us_lm_train(&p, EX, 4, out, err);
  if (st == US_OK) print_message("best validation check after step %ld\n", info.best_step);
  return st;
}

static long file_size(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static void expect_same_run(const float *ref, const us_lm *ref_lm, const float *got,
                            const us_lm *got_lm, int from, const char *what) {
  double dl = 0;
  for (int i = from; i < CK_STEPS; i++) dl = fmax(dl, fabs((double)ref[i] - got[i]));
  double dw = max_diff(ref_lm->block, got_lm->block, ref_lm->n_params);
  print_message("%s: losses of steps %d..%d within %.3g, merged weights within %.3g\n", what,
                from + 1, CK_STEPS, dl, dw);
  assert_int_equal(got_lm->n_params, ref_lm->n_params);
  assert_true(dl <= 1e-6);
  assert_true(dw <= 1e-6);
}

static void lora_checkpoint_should_resume_exactly_after_a_stop_or_kill_9(void **state) {
  (void)state;
  variant v = plain();
  v.dtype = US_GGUF_Q8_0;
  char base[256], other[256], ckpt[256];
  snprintf(base, sizeof base, "%s", tmp_path("ck-base.gguf"));
  snprintf(other, sizeof other, "%s", tmp_path("ck-other.gguf"));
  snprintf(ckpt, sizeof ckpt, "%s", tmp_path("lora.ckpt"));
  write_tiny(base, &v);
  unlink(ckpt);
  us_err err;
  /* straight through */
  float ref[CK_STEPS], got[CK_STEPS];
  us_lm *ref_lm = NULL, *lm = NULL;
  assert_int_equal(lora_run(base, NULL, 0, false, NULL, ref, &ref_lm, &err), US_OK);
  /* stopped after step 12 (a checkpoint every 6), then resumed */
  stopper s = {CK_STEPS / 2, -1};
  assert_int_equal(lora_run(base, ckpt, 6, false, &s, got, &lm, &err), US_ERR_INTERRUPTED);
  long size = file_size(ckpt);
  print_message("LoRA checkpoint %ld bytes, base %ld bytes\n", size, file_size(base));
  /* adapters, moments and the best check's adapters, the header and the base's path: no base */
  long n = (long)L * 4 * ((C + C + 2 * CKV) + (C + C) + (C + 2 * F) + (F + C));
  assert_int_equal(size, 92 + (long)strlen(base) + 112 + 16 * n + 32);
  memset(got, 0, sizeof got);
  assert_int_equal(lora_run(base, ckpt, 6, true, NULL, got, &lm, &err), US_OK);
  assert_true(got[CK_STEPS / 2 - 1] == 0.0f); /* steps before the checkpoint did not run again */
  expect_same_run(ref, ref_lm, got, lm, CK_STEPS / 2, "stopped at 12, resumed");
  us_lm_free(lm);
  lm = NULL;
  /* killed with SIGKILL after step 15, between the checkpoints of steps 12 and 18 */
  unlink(ckpt);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    stopper k = {-1, 15};
    us_lm *never = NULL;
    lora_run(base, ckpt, 6, false, &k, NULL, &never, NULL);
    _exit(0); /* not reached */
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  memset(got, 0, sizeof got);
  assert_int_equal(lora_run(base, ckpt, 6, true, NULL, got, &lm, &err), US_OK);
  assert_true(got[11] == 0.0f && got[12] != 0.0f); /* resumed from step 12's checkpoint */
  expect_same_run(ref, ref_lm, got, lm, 12, "killed after 15, resumed from 12");
  us_lm_free(lm);
  lm = NULL;
  /* another base under the same checkpoint: refused, naming both files and the fix */
  variant f32 = plain();
  write_tiny(other, &f32);
  assert_int_equal(lora_run(other, ckpt, 6, true, NULL, NULL, &lm, &err), US_ERR_CONFIG);
  print_message("%s\n", err.msg);
  assert_non_null(strstr(err.msg, ckpt));
  assert_non_null(strstr(err.msg, base));
  assert_non_null(strstr(err.msg, other));
  assert_non_null(strstr(err.msg, "point student.init at the file"));
  /* another rank: refused by name; a full fine-tune does not take a LoRA checkpoint either */
  us_lm_train_params p;
  train_params(&p, base, 8, CK_STEPS, NULL);
  p.checkpoint_path = ckpt;
  p.resume = true;
  assert_int_equal(us_lm_train(&p, EX, 4, &lm, &err), US_ERR_CONFIG);
  print_message("%s\n", err.msg);
  assert_non_null(strstr(err.msg, "student.lora_rank"));
  p.lora_rank = 0;
  assert_int_equal(us_lm_train(&p, EX, 4, &lm, &err), US_ERR_CONFIG);
  print_message("%s\n", err.msg);
  assert_non_null(strstr(err.msg, "a LoRA checkpoint"));
  /* a damaged checkpoint is refused, not trained from */
  FILE *fp = fopen(ckpt, "r+b");
  assert_non_null(fp);
  fseek(fp, 200, SEEK_SET);
  fputc(0x5a, fp);
  fclose(fp);
  assert_int_equal(lora_run(base, ckpt, 6, true, NULL, NULL, &lm, &err), US_ERR_FORMAT);
  print_message("%s\n", err.msg);
  assert_non_null(strstr(err.msg, "SHA-256"));
  assert_null(lm);
  us_lm_free(ref_lm);
  unlink(ckpt);
  unlink(base);
  unlink(other);
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
      cmocka_unit_test(q8_base_should_stay_quantised_with_its_floats_logits_and_lora_gradients),
      cmocka_unit_test(lora_checkpoint_should_resume_exactly_after_a_stop_or_kill_9),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
