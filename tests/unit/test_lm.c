/* Tests of the language-model student: finite-difference gradient checks of every layer and of
 * the whole model, the golden comparison with the PyTorch reference, training, exact resume, the
 * model file's refusal of truncated and corrupt files, and generation with and without cache. */
/* cmocka.h needs these headers before it */
// clang-format off
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
/* clang-format on */
/* clang-format on */

#include "core/buf.h"
#include "core/hash.h"
#include "core/rng.h"
#include "student/blas.h"
#include "student/lm_int.h"

static void fill(float *x, size_t n, us_rng *r, float scale) {
  for (size_t i = 0; i < n; i++) x[i] = scale * (float)us_rng_normal(r);
}

static double dot(const float *a, const float *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* Compares an analytic gradient with a central difference; counts and prints mismatches. */
static int check_grad(const char *what, size_t i, double analytic, double numeric) {
  double tol = 2e-3 + 3e-2 * fabs(numeric);
  if (fabs(analytic - numeric) <= tol) return 0;
  print_message("%s[%zu]: analytic %.6g numeric %.6g\n", what, i, analytic, numeric);
  return 1;
}

/* ---- layers ---- */

static void rmsnorm_gradients_should_match_finite_differences(void **state) {
  (void)state;
  enum { N = 3, C = 8 };
  us_rng r;
  us_rng_seed(&r, 1);
  float x[N * C], w[C], out[N * C], rstd[N], dout[N * C], dx[N * C] = {0}, dw[C] = {0};
  fill(x, N * C, &r, 1.0f);
  fill(w, C, &r, 1.0f);
  fill(dout, N * C, &r, 1.0f);
  us__lm_rmsnorm_forward(out, rstd, x, w, N, C, 1e-5f);
  us__lm_rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C);
  int bad = 0;
  const float eps = 1e-2f;
  for (int pass = 0; pass < 2; pass++) {
    float *p = pass ? w : x, *g = pass ? dw : dx;
    int n = pass ? C : N * C;
    for (int i = 0; i < n; i++) {
      float keep = p[i];
      p[i] = keep + eps;
      us__lm_rmsnorm_forward(out, rstd, x, w, N, C, 1e-5f);
      double up = dot(out, dout, N * C);
      p[i] = keep - eps;
      us__lm_rmsnorm_forward(out, rstd, x, w, N, C, 1e-5f);
      double down = dot(out, dout, N * C);
      p[i] = keep;
      bad += check_grad(pass ? "dw" : "dx", (size_t)i, g[i], (up - down) / (2 * eps));
    }
  }
  assert_int_equal(bad, 0);
}

/* Attention with rotary over two rows, the first holding two packed documents; four query
 * heads over ANKV key/value heads (4: plain multi-head, 2 and 1: grouped-query). */
enum { AB = 2, AT = 5, AC = 16, ANH = 4 };
static const int32_t att_doc[AB * AT] = {0, 0, 1, 1, 1, 2, 2, 2, 2, 2};
static const int32_t att_pos[AB * AT] = {0, 1, 0, 1, 2, 0, 1, 2, 3, 4};
static int ANKV = ANH;

static int att_width(void) {
  return AC + 2 * ANKV * (AC / ANH);
}

static double attention_loss(const float *qkv_in, const float *dout, float *qkv, float *att,
                             float *out, const float *cs, const float *sn) {
  memcpy(qkv, qkv_in, sizeof(float) * AB * AT * (size_t)att_width());
  us__lm_rope(qkv, att_pos, cs, sn, AB * AT, AC, ANH, ANKV, 1);
  us__lm_attention_forward(out, att, qkv, att_doc, AB, AT, AC, ANH, ANKV);
  return dot(out, dout, AB * AT * AC);
}

static void check_attention_gradients(int nkv) {
  enum { N = AB * AT };
  ANKV = nkv;
  int W = att_width();
  us_rng r;
  us_rng_seed(&r, 2);
  float in[N * 3 * AC], qkv[N * 3 * AC], att[AB * ANH * AT * AT], out[N * AC], dout[N * AC];
  float dqkv[N * 3 * AC], dscore[AT * AT], cs[AT * 2], sn[AT * 2];
  us__lm_rope_table(cs, sn, AT, AC / ANH, 10000.0);
  fill(in, (size_t)N * W, &r, 1.0f);
  fill(dout, N * AC, &r, 1.0f);
  attention_loss(in, dout, qkv, att, out, cs, sn);
  /* the first document must not see the second: position 2 of row 0 attends only to itself */
  assert_float_equal(att[2 * AT + 2], 1.0f, 1e-6);
  assert_float_equal(att[2 * AT + 1], 0.0f, 0.0);
  us__lm_attention_backward(dqkv, dscore, dout, qkv, att, AB, AT, AC, ANH, ANKV);
  us__lm_rope(dqkv, att_pos, cs, sn, N, AC, ANH, ANKV, -1);
  int bad = 0;
  const float eps = 1e-2f;
  for (int i = 0; i < N * W; i++) {
    float keep = in[i];
    in[i] = keep + eps;
    double up = attention_loss(in, dout, qkv, att, out, cs, sn);
    in[i] = keep - eps;
    double down = attention_loss(in, dout, qkv, att, out, cs, sn);
    in[i] = keep;
    bad += check_grad("dqkv", (size_t)i, dqkv[i], (up - down) / (2 * eps));
  }
  assert_int_equal(bad, 0);
}

static void attention_with_rotary_gradients_should_match_finite_differences(void **state) {
  (void)state;
  check_attention_gradients(ANH);
}

static void grouped_query_attention_gradients_should_match_finite_differences(void **state) {
  (void)state;
  check_attention_gradients(2);
  check_attention_gradients(1);
}

static void swiglu_gradients_should_match_finite_differences(void **state) {
  (void)state;
  enum { N = 3, F = 6 };
  us_rng r;
  us_rng_seed(&r, 3);
  float h13[N * 2 * F], hact[N * F], dhact[N * F], dh13[N * 2 * F];
  fill(h13, N * 2 * F, &r, 1.5f);
  fill(dhact, N * F, &r, 1.0f);
  us__lm_swiglu_backward(dh13, dhact, h13, N, F);
  int bad = 0;
  const float eps = 1e-2f;
  for (int i = 0; i < N * 2 * F; i++) {
    float keep = h13[i];
    h13[i] = keep + eps;
    us__lm_swiglu_forward(hact, h13, N, F);
    double up = dot(hact, dhact, N * F);
    h13[i] = keep - eps;
    us__lm_swiglu_forward(hact, h13, N, F);
    double down = dot(hact, dhact, N * F);
    h13[i] = keep;
    bad += check_grad("dh13", (size_t)i, dh13[i], (up - down) / (2 * eps));
  }
  assert_int_equal(bad, 0);
}

static void masked_crossentropy_gradients_should_match_finite_differences(void **state) {
  (void)state;
  enum { N = 4, V = 7 };
  us_rng r;
  us_rng_seed(&r, 4);
  float logits[N * V], work[N * V];
  const int32_t targets[N] = {1, 6, 0, 3};
  const float mask[N] = {1, 0, 1, 1};
  fill(logits, N * V, &r, 2.0f);
  memcpy(work, logits, sizeof work);
  double loss = us__lm_crossentropy_forward(work, targets, mask, N, V);
  assert_true(loss > 0.0);
  us__lm_crossentropy_backward(work, targets, mask, N, V);
  int bad = 0;
  const float eps = 1e-2f;
  float tmp[N * V];
  for (int i = 0; i < N * V; i++) {
    float keep = logits[i];
    logits[i] = keep + eps;
    memcpy(tmp, logits, sizeof tmp);
    double up = us__lm_crossentropy_forward(tmp, targets, mask, N, V);
    logits[i] = keep - eps;
    memcpy(tmp, logits, sizeof tmp);
    double down = us__lm_crossentropy_forward(tmp, targets, mask, N, V);
    logits[i] = keep;
    bad += check_grad("dlogits", (size_t)i, work[i], (up - down) / (2 * eps));
  }
  assert_int_equal(bad, 0);
  /* masked-out row 1 gets no gradient */
  for (int v = 0; v < V; v++) assert_float_equal(work[V + v], 0.0f, 0.0);
}

/* ---- whole model ---- */

static us_lm *tiny_model_config(us_lm_config c, uint64_t seed) {
  us_bpe *bpe = NULL;
  assert_int_equal(us_bpe_from_merges(NULL, 0, &bpe, NULL), US_OK);
  c.vocab = us_bpe_vocab_size(bpe);
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_new(&c, bpe, seed, &lm, &err), US_OK);
  return lm;
}

static us_lm *tiny_model(int layers, int dim, int heads, int context, int hidden, uint64_t seed) {
  us_bpe *bpe = NULL;
  assert_int_equal(us_bpe_from_merges(NULL, 0, &bpe, NULL), US_OK);
  us_lm_config c = {layers, dim, heads, context, us_bpe_vocab_size(bpe), hidden, 0, 0, 0, 0};
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_new(&c, bpe, seed, &lm, &err), US_OK);
  return lm;
}

typedef struct batch_store {
  int32_t tokens[16], targets[16], pos[16], doc[16];
  float mask[16];
  us__lm_batch b;
} batch_store;

/* Two rows of 6 (BOS 256, EOS 257, SEP 258): row 0 packs two documents, row 1 one; answer
 * targets masked in. */
static void tiny_batch(batch_store *s) {
  static const int32_t tok[12] = {256, 'a', 258, 'b', 256, 'c', 256, 'x', 'y', 258, 'z', 'w'};
  static const int32_t tgt[12] = {'a', 258, 'b', 257, 'c', 258, 'x', 'y', 258, 'z', 'w', 257};
  static const int32_t pos[12] = {0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 4, 5};
  static const int32_t doc[12] = {0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2};
  static const float mask[12] = {0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1};
  memcpy(s->tokens, tok, sizeof tok);
  memcpy(s->targets, tgt, sizeof tgt);
  memcpy(s->pos, pos, sizeof pos);
  memcpy(s->doc, doc, sizeof doc);
  memcpy(s->mask, mask, sizeof mask);
  s->b = (us__lm_batch){s->tokens, s->targets, s->mask, s->pos, s->doc};
}

/* Central differences of the whole model's loss against its backward pass. With dropout the
 * mask generator is reseeded before every forward, so each evaluation drops the same units. */
/* The plain model, or (gqa) four query heads over two key/value heads, an untied output matrix,
 * rope base 500 and epsilon 1e-3: the shapes of a pretrained llama. */
static void check_model_gradients(float dropout, int gqa) {
  us_blas_set_threads(1);
  us_lm_config cfg = {2, 8, 2, 6, 0, 16, 0, 0, 0, 0};
  if (gqa) cfg = (us_lm_config){2, 16, 4, 6, 0, 16, 2, 1, 500.0, 1e-3};
  us_lm *lm = tiny_model_config(cfg, 5);
  int C = lm->config.dim;
  us_rng r;
  us_rng_seed(&r, 6);
  fill(lm->block, lm->n_params, &r, 0.3f); /* larger than the init, so every path matters */
  us__lm_acts a;
  assert_int_equal(us__lm_acts_new(&lm->config, 2, 6, &a, NULL), US_OK);
  assert_int_equal(us__lm_acts_dropout(&a, &lm->config, dropout, NULL), US_OK);
  batch_store bs;
  tiny_batch(&bs);
  float *grad = calloc(lm->n_params, sizeof(float));
  us__lm_params g;
  us__lm_params_point(grad, &lm->config, &g);
  us_rng_seed(&a.drop_rng, 77);
  double loss = us__lm_forward(lm, &a, &bs.b, 2, 6);
  us__lm_backward(lm, &a, &bs.b, 2, 6, &g);
  assert_true(loss > 0.0);
  if (dropout > 0) { /* the masks did drop something, and kept units are scaled */
    size_t n = 2 * 6 * (size_t)C, zeros = 0;
    for (size_t i = 0; i < n; i++) {
      zeros += a.drop_emb[i] == 0.0f;
      if (a.drop_emb[i] != 0.0f) assert_float_equal(a.drop_emb[i], 1.0f / (1.0f - dropout), 1e-6);
    }
    assert_true(zeros > 0 && zeros < n);
  }
  /* every tensor: its first entries, a sample, and the embedding (and output) rows of used
   * tokens */
  size_t sizes[US_LM_N_TENSORS], off = 0;
  us__lm_param_sizes(&lm->config, sizes);
  int bad = 0, checked = 0, expect = 0;
  double grad_mass = 0.0;
  const float eps = 1e-2f;
  for (int t = 0; t < US_LM_N_TENSORS; t++) {
    for (int k = 0; k < 40 && sizes[t] > 0; k++) {
      size_t i = off + (k < 8 ? (size_t)k : (size_t)us_rng_below(&r, sizes[t]));
      if (t <= 1 && k >= 8 && k < 24) i = off + (size_t)('a' + k % 3) * C + (size_t)(k % C);
      float keep = lm->block[i];
      lm->block[i] = keep + eps;
      us_rng_seed(&a.drop_rng, 77);
      double up = us__lm_forward(lm, &a, &bs.b, 2, 6);
      lm->block[i] = keep - eps;
      us_rng_seed(&a.drop_rng, 77);
      double down = us__lm_forward(lm, &a, &bs.b, 2, 6);
      lm->block[i] = keep;
      bad += check_grad("param", i, grad[i], (up - down) / (2 * eps));
      grad_mass += fabs(grad[i]);
      checked++;
    }
    off += sizes[t];
    expect += sizes[t] > 0 ? 40 : 0;
  }
  assert_int_equal(bad, 0);
  assert_int_equal(checked, gqa ? 360 : 320);
  assert_int_equal(checked, expect);
  assert_true(grad_mass > 1e-2);
  free(grad);
  us__lm_acts_free(&a);
  us_lm_free(lm);
}

static void model_gradients_should_match_finite_differences(void **state) {
  (void)state;
  check_model_gradients(0.0f, 0);
}

static void gqa_untied_model_gradients_should_match_finite_differences(void **state) {
  (void)state;
  check_model_gradients(0.0f, 1);
}

static void model_gradients_with_dropout_should_match_finite_differences(void **state) {
  (void)state;
  check_model_gradients(0.3f, 0);
}

/* LoRA on a grouped-query untied model: the adapters' gradients match central differences, the
 * frozen base receives none, and merging the adapters gives the logits the adapted forward gave. */
static void lora_gradients_should_match_finite_differences_and_merge_exactly(void **state) {
  (void)state;
  us_blas_set_threads(1);
  us_lm_config cfg = {2, 16, 4, 6, 0, 16, 2, 1, 500.0, 1e-3};
  us_lm *lm = tiny_model_config(cfg, 5);
  us_rng r;
  us_rng_seed(&r, 8);
  fill(lm->block, lm->n_params, &r, 0.3f);
  assert_int_equal(us__lm_lora_new(lm, 2, 4.0, &r, NULL), US_OK);
  us__lm_lora *lo = lm->lora;
  for (size_t i = 0; i < lo->n_params; i++) assert_true(isfinite(lo->block[i]));
  fill(lo->block, lo->n_params, &r, 0.3f); /* B non-zero, so A's gradient is too */
  us__lm_acts a;
  assert_int_equal(us__lm_acts_new(&lm->config, 2, 6, &a, NULL), US_OK);
  assert_int_equal(us__lm_acts_lora(&a, lo, lm->config.layers, NULL), US_OK);
  batch_store bs;
  tiny_batch(&bs);
  double loss = us__lm_forward(lm, &a, &bs.b, 2, 6);
  assert_true(loss > 0.0);
  us__lm_backward(lm, &a, &bs.b, 2, 6, NULL);
  int bad = 0;
  double mass = 0.0;
  const float eps = 1e-2f;
  for (int k = 0; k < 200; k++) {
    size_t i = k < 40 ? (size_t)k * (lo->n_params / 40) : (size_t)us_rng_below(&r, lo->n_params);
    float keep = lo->block[i];
    lo->block[i] = keep + eps;
    double up = us__lm_forward(lm, &a, &bs.b, 2, 6);
    lo->block[i] = keep - eps;
    double down = us__lm_forward(lm, &a, &bs.b, 2, 6);
    lo->block[i] = keep;
    bad += check_grad("lora", i, lo->grad[i], (up - down) / (2 * eps));
    mass += fabs(lo->grad[i]);
  }
  assert_int_equal(bad, 0);
  assert_true(mass > 1e-2);
  /* merged: same logits without the adapters */
  bs.b.targets = NULL;
  us__lm_forward(lm, &a, &bs.b, 2, 6);
  size_t nl = (size_t)12 * lm->config.vocab;
  float *before = malloc(nl * sizeof(float));
  memcpy(before, a.logits, nl * sizeof(float));
  assert_int_equal(us__lm_lora_merge(lm, NULL), US_OK);
  assert_null(lm->lora);
  us__lm_forward(lm, &a, &bs.b, 2, 6);
  for (size_t i = 0; i < nl; i++) assert_float_equal(a.logits[i], before[i], 1e-4);
  free(before);
  us__lm_acts_free(&a);
  us_lm_free(lm);
}

static void dropout_should_drop_at_its_rate_and_keep_the_mean(void **state) {
  (void)state;
  enum { n = 200001 }; /* odd: the last random word is used in part */
  float *x = malloc(n * sizeof *x), *mask = malloc(n * sizeof *mask);
  us_rng r;
  us_rng_seed(&r, 3);
  const float ps[3] = {0.1f, 0.25f, 0.5f};
  for (int k = 0; k < 3; k++) {
    for (size_t i = 0; i < n; i++) x[i] = 2.0f;
    us__lm_dropout_forward(x, mask, n, ps[k], &r);
    size_t zeros = 0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
      zeros += x[i] == 0.0f;
      sum += x[i];
      assert_float_equal(x[i], 2.0f * mask[i], 0.0);
    }
    /* binomial: 5 standard deviations are under 0.006 at this n */
    assert_true(fabs((double)zeros / n - ps[k]) < 0.006);
    assert_true(fabs(sum / n - 2.0) < 0.03);
  }
  us_lm_train_params p;
  us_lm_train_params_defaults(&p);
  p.dropout = 0.96; /* above the one dropout range both students share, [0, 0.95] */
  us_lm_example ex = {"a", "b"};
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_train(&p, &ex, 1, &lm, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "dropout"));
  assert_null(lm);
  free(x);
  free(mask);
}

static void packing_should_equal_separate_rows(void **state) {
  (void)state;
  us_blas_set_threads(1);
  us_lm *lm = tiny_model(2, 8, 2, 6, 16, 7);
  us__lm_acts a;
  assert_int_equal(us__lm_acts_new(&lm->config, 2, 6, &a, NULL), US_OK);
  batch_store bs;
  tiny_batch(&bs);
  bs.b.targets = NULL; /* keep the logits (the loss turns them into probabilities) */
  us__lm_forward(lm, &a, &bs.b, 2, 6);
  int V = lm->config.vocab;
  float *packed = malloc(sizeof(float) * 2 * (size_t)V);
  memcpy(packed, a.logits + 4 * (size_t)V, sizeof(float) * 2 * (size_t)V); /* doc 1: pos 4, 5 */
  /* the same document alone at the start of a row */
  int32_t tok[6] = {256, 'c', 259, 259, 259, 259}, pos[6] = {0, 1, 0, 0, 0, 0};
  int32_t doc[6] = {0, 0, 1, 2, 3, 4};
  us__lm_batch one = {tok, NULL, NULL, pos, doc};
  us__lm_forward(lm, &a, &one, 1, 6);
  for (int i = 0; i < 2 * V; i++) assert_float_equal(packed[i], a.logits[i], 1e-5);
  free(packed);
  us__lm_acts_free(&a);
  us_lm_free(lm);
}

static void param_count_should_follow_the_layout(void **state) {
  (void)state;
  us_lm_config c = {0};
  assert_int_equal(us_lm_config_preset("nano", &c, NULL), US_OK);
  c.vocab = 1024;
  c.hidden = us_lm_config_hidden(c.dim);
  assert_int_equal(c.hidden, 352);
  size_t C = 128, F = 352, L = 2, V = 1024;
  size_t expect = V * C + L * (4 * C * C + 3 * F * C + 2 * C) + C;
  assert_int_equal(us_lm_param_count(&c), expect);
  us_err err;
  assert_int_equal(us_lm_config_preset("huge", &c, &err), US_ERR_CONFIG);
  c.heads = 3;
  assert_int_equal(us_lm_config_check(&c, &err), US_ERR_CONFIG);
}

/* ---- golden comparison with tests/reference/reference.py ---- */

/* Deterministic weights both sides can compute: w[i] = 0.1 * sin(0.7 * i + 0.3) for matrices,
 * 1 + 0.05 * cos(i) for norm weights (i is the index in the whole block). */
static void golden_weights(us_lm *lm) {
  size_t n_decay = us__lm_decay_count(&lm->config);
  for (size_t i = 0; i < lm->n_params; i++)
    lm->block[i] = i < n_decay ? (float)(0.1 * sin(0.7 * (double)i + 0.3))
                               : (float)(1.0 + 0.05 * cos((double)i));
}

static void golden_should_match_pytorch_reference(void **state) {
  (void)state;
  us_blas_set_threads(1);
  const char *src = getenv("US_SOURCE_DIR");
  assert_non_null(src);
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/reference/golden_tiny.bin", src);
  char *data = NULL;
  size_t len = 0;
  us_err err;
  assert_int_equal(us_read_file(path, 0, &data, &len, &err), US_OK);
  us_lm *lm = tiny_model(2, 8, 2, 6, 16, 1);
  golden_weights(lm);
  us__lm_acts a;
  assert_int_equal(us__lm_acts_new(&lm->config, 2, 6, &a, NULL), US_OK);
  batch_store bs;
  tiny_batch(&bs);
  int V = lm->config.vocab, N = 12;
  /* golden file: f32 logits (N, V), f64 loss, f32 grads (n_params) */
  assert_int_equal(len, sizeof(float) * ((size_t)N * V + lm->n_params) + sizeof(double));
  const float *ref_logits = (const float *)data;
  double ref_loss;
  memcpy(&ref_loss, data + sizeof(float) * (size_t)N * V, sizeof ref_loss);
  const float *ref_grad = (const float *)(data + sizeof(float) * (size_t)N * V + sizeof(double));
  bs.b.targets = NULL;
  us__lm_forward(lm, &a, &bs.b, 2, 6);
  for (int i = 0; i < N * V; i++) assert_float_equal(a.logits[i], ref_logits[i], 1e-4);
  bs.b.targets = bs.targets;
  double loss = us__lm_forward(lm, &a, &bs.b, 2, 6);
  assert_float_equal(loss, ref_loss, 1e-5);
  float *grad = calloc(lm->n_params, sizeof(float));
  us__lm_params g;
  us__lm_params_point(grad, &lm->config, &g);
  us__lm_backward(lm, &a, &bs.b, 2, 6, &g);
  double max_ref = 0.0;
  for (size_t i = 0; i < lm->n_params; i++) {
    assert_float_equal(grad[i], ref_grad[i], 1e-5 + 1e-3 * fabs(ref_grad[i]));
    if (fabs(ref_grad[i]) > max_ref) max_ref = fabs(ref_grad[i]);
  }
  assert_true(max_ref > 1e-3);
  free(grad);
  free(data);
  us__lm_acts_free(&a);
  us_lm_free(lm);
}

/* ---- training, resume, model file, generation ---- */

#define N_FACTS 12
static char fact_prompts[N_FACTS][32], fact_answers[N_FACTS][48];
static us_lm_example facts[N_FACTS];

static void make_facts(void) {
  static const char *const colours[] = {"red", "blue", "green", "gold"};
  for (int i = 0; i < N_FACTS; i++) {
    snprintf(fact_prompts[i], sizeof fact_prompts[i], "item %d", i * 7 + 3);
    snprintf(fact_answers[i], sizeof fact_answers[i], "{\"colour\":\"%s\",\"n\":\"%d\"}",
             colours[i % 4], i);
    facts[i].prompt = fact_prompts[i];
    facts[i].answer = fact_answers[i];
  }
}

static void small_params(us_lm_train_params *p, int steps) {
  us_lm_train_params_defaults(p);
  p->preset = NULL;
  p->layers = 2;
  p->dim = 32;
  p->heads = 2;
  p->context = 32;
  p->vocab_size = 300;
  p->steps = steps;
  p->batch_size = 4;
  p->warmup_steps = 10;
  p->lr = 5e-3;
  p->threads = 1;
  p->seed = 9;
}

static us_lm *trained_model;

static void training_should_memorise_answers_and_generate_them(void **state) {
  (void)state;
  make_facts();
  us_lm_train_params p;
  small_params(&p, 250);
  float losses[250];
  p.losses = losses;
  us_err err;
  assert_int_equal(us_lm_train(&p, facts, N_FACTS, &trained_model, &err), US_OK);
  assert_true(losses[249] < 0.2f * losses[0]);
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  int right = 0;
  for (int i = 0; i < N_FACTS; i++) {
    char *ans = NULL;
    double lp = 0.0;
    int n = 0;
    assert_int_equal(us_lm_generate(trained_model, facts[i].prompt, &gp, &ans, &lp, &n, &err),
                     US_OK);
    assert_true(lp <= 0.0);
    assert_true(n >= 1);
    right += strcmp(ans, facts[i].answer) == 0;
    free(ans);
  }
  assert_true(right >= N_FACTS - 1);
}

static void cached_and_uncached_generation_should_agree(void **state) {
  (void)state;
  assert_non_null(trained_model);
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  for (int i = 0; i < 4; i++) {
    char *a1 = NULL, *a2 = NULL;
    double lp1, lp2;
    int n1, n2;
    gp.no_cache = false;
    assert_int_equal(us_lm_generate(trained_model, facts[i].prompt, &gp, &a1, &lp1, &n1, NULL),
                     US_OK);
    gp.no_cache = true;
    assert_int_equal(us_lm_generate(trained_model, facts[i].prompt, &gp, &a2, &lp2, &n2, NULL),
                     US_OK);
    assert_string_equal(a1, a2);
    assert_int_equal(n1, n2);
    assert_float_equal(lp1, lp2, 1e-3);
    free(a1);
    free(a2);
  }
}

static void score_should_match_generation_and_prefer_the_right_answer(void **state) {
  (void)state;
  assert_non_null(trained_model);
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  char *ans = NULL;
  double gen_lp, right, wrong;
  int n_gen, n_score;
  assert_int_equal(us_lm_generate(trained_model, facts[2].prompt, &gp, &ans, &gen_lp, &n_gen, NULL),
                   US_OK);
  assert_int_equal(us_lm_score(trained_model, facts[2].prompt, ans, &right, &n_score, NULL), US_OK);
  assert_int_equal(n_score, n_gen); /* answer tokens + EOS, when it ended with EOS */
  assert_float_equal(right, gen_lp, 1e-3);
  assert_int_equal(us_lm_score(trained_model, facts[2].prompt, facts[7].answer, &wrong, NULL, NULL),
                   US_OK);
  assert_true(wrong < right - 0.5);
  free(ans);
}

static void sampling_should_be_seeded_and_respect_limits(void **state) {
  (void)state;
  assert_non_null(trained_model);
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  gp.temperature = 1.5f;
  gp.seed = 77;
  char *a1 = NULL, *a2 = NULL, *g = NULL;
  double lp;
  int n;
  assert_int_equal(us_lm_generate(trained_model, "item 3", &gp, &a1, &lp, &n, NULL), US_OK);
  assert_int_equal(us_lm_generate(trained_model, "item 3", &gp, &a2, &lp, &n, NULL), US_OK);
  assert_string_equal(a1, a2);
  free(a1);
  free(a2);
  gp.top_p = 1e-4f; /* only the most likely token survives: greedy */
  assert_int_equal(us_lm_generate(trained_model, "item 3", &gp, &a1, &lp, &n, NULL), US_OK);
  us_lm_gen_params greedy;
  us_lm_gen_params_defaults(&greedy);
  assert_int_equal(us_lm_generate(trained_model, "item 3", &greedy, &g, &lp, &n, NULL), US_OK);
  assert_string_equal(a1, g);
  free(a1);
  free(g);
  greedy.max_tokens = 2;
  assert_int_equal(us_lm_generate(trained_model, "item 3", &greedy, &g, &lp, &n, NULL), US_OK);
  assert_true(n <= 2);
  free(g);
  /* a prompt longer than the context keeps its end */
  char longp[400];
  memset(longp, 'q', sizeof longp - 1);
  longp[sizeof longp - 1] = '\0';
  greedy.max_tokens = 100;
  assert_int_equal(us_lm_generate(trained_model, longp, &greedy, &g, &lp, &n, NULL), US_OK);
  assert_true(n >= 1 && n <= trained_model->config.context);
  free(g);
}

static char tmp_path[256];

static const char *tmp_file(const char *name) {
  snprintf(tmp_path, sizeof tmp_path, "test_lm_%d_%s", (int)getpid(), name);
  return tmp_path;
}

static void model_file_should_round_trip_and_refuse_damage(void **state) {
  (void)state;
  assert_non_null(trained_model);
  us_lm *lm = tiny_model(1, 4, 2, 4, 8, 3); /* small, so every truncation length is cheap */
  char path[300];
  snprintf(path, sizeof path, "%s", tmp_file("tiny.uslm"));
  us_err err;
  assert_int_equal(us_lm_save(lm, path, &err), US_OK);
  us_lm *back = NULL;
  assert_int_equal(us_lm_load(path, &back, &err), US_OK);
  assert_int_equal(back->n_params, lm->n_params);
  assert_memory_equal(back->block, lm->block, lm->n_params * sizeof(float));
  us_lm_free(back);
  char *data = NULL;
  size_t len = 0;
  assert_int_equal(us_read_file(path, 0, &data, &len, &err), US_OK);
  for (size_t cut = 0; cut < len; cut++) {
    us_lm *bad = NULL;
    assert_int_equal(us__lm_parse((unsigned char *)data, cut, path, &bad, NULL, NULL, &err),
                     US_ERR_FORMAT);
    assert_null(bad);
    assert_non_null(strstr(err.msg, path));
  }
  unsigned char *copy = malloc(len + 1);
  memcpy(copy, data, len);
  copy[len] = 0;
  assert_int_equal(us__lm_parse(copy, len + 1, path, &back, NULL, NULL, &err), US_ERR_FORMAT);
  for (size_t at = 0; at < len; at += 7) { /* a flipped bit anywhere is refused */
    memcpy(copy, data, len);
    copy[at] ^= 0x10;
    assert_int_equal(us__lm_parse(copy, len, path, &back, NULL, NULL, &err), US_ERR_FORMAT);
    assert_null(back);
  }
  copy[0] = data[0];
  memcpy(copy, data, len);
  copy[100] ^= 1;
  assert_int_equal(us__lm_parse(copy, len, path, &back, NULL, NULL, &err), US_ERR_FORMAT);
  assert_non_null(strstr(err.msg, "checksum"));
  free(copy);
  free(data);
  /* and the trained model survives a save and load with identical generation */
  assert_int_equal(us_lm_save(trained_model, path, &err), US_OK);
  assert_int_equal(us_lm_load(path, &back, &err), US_OK);
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  char *a1, *a2;
  double lp1, lp2;
  assert_int_equal(us_lm_generate(trained_model, facts[5].prompt, &gp, &a1, &lp1, NULL, NULL),
                   US_OK);
  assert_int_equal(us_lm_generate(back, facts[5].prompt, &gp, &a2, &lp2, NULL, NULL), US_OK);
  assert_string_equal(a1, a2);
  assert_true(lp1 == lp2);
  free(a1);
  free(a2);
  us_lm_free(back);
  assert_int_equal(us_lm_load("/nonexistent/x.uslm", &back, &err), US_ERR_IO);
  unlink(path);
  us_lm_free(lm);
}

/* A version-1 file (48-byte header, no grouped-query fields) made from a version-2 one: it
 * loads as the same tied model; and a grouped-query, untied model round-trips through version 2
 * with its generation unchanged. */
static void version_one_files_should_load_and_gqa_models_round_trip(void **state) {
  (void)state;
  us_lm *lm = tiny_model(1, 8, 2, 8, 16, 4);
  us_buf b;
  us_buf_init(&b, 0);
  us_err err;
  assert_int_equal(us__lm_serialize(lm, NULL, &b, &err), US_OK);
  assert_int_equal(b.data[4], 2);
  size_t v1_len = b.len - 24;
  unsigned char *v1 = malloc(v1_len);
  memcpy(v1, b.data, 36);
  v1[4] = 1;
  memset(v1 + 36, 0, 4);
  memcpy(v1 + 40, b.data + 64, 8);               /* n_params */
  memcpy(v1 + 48, b.data + 72, b.len - 72 - 32); /* tokeniser and weights */
  us_sha256(v1, v1_len - 32, v1 + v1_len - 32);
  us_lm *old = NULL;
  assert_int_equal(us__lm_parse(v1, v1_len, "v1.uslm", &old, NULL, NULL, &err), US_OK);
  assert_int_equal(old->n_params, lm->n_params);
  assert_memory_equal(old->block, lm->block, lm->n_params * sizeof(float));
  assert_int_equal(us__lm_heads_kv(&old->config), 2);
  assert_int_equal(old->config.untied, 0);
  us_lm_free(old);
  v1[4] = 3; /* an unknown version is refused by name */
  us_sha256(v1, v1_len - 32, v1 + v1_len - 32);
  assert_int_equal(us__lm_parse(v1, v1_len, "v3.uslm", &old, NULL, NULL, &err), US_ERR_FORMAT);
  assert_non_null(strstr(err.msg, "version 3"));
  free(v1);
  us_buf_free(&b);
  us_lm_free(lm);

  us_lm_config cfg = {2, 16, 4, 16, 0, 24, 2, 1, 5000.0, 1e-6};
  lm = tiny_model_config(cfg, 9);
  char path[300];
  snprintf(path, sizeof path, "%s", tmp_file("gqa.uslm"));
  assert_int_equal(us_lm_save(lm, path, &err), US_OK);
  us_lm *back = NULL;
  assert_int_equal(us_lm_load(path, &back, &err), US_OK);
  assert_int_equal(back->config.heads_kv, 2);
  assert_int_equal(back->config.untied, 1);
  assert_true(back->config.rope_base == 5000.0 && back->config.norm_eps == 1e-6);
  assert_memory_equal(back->block, lm->block, lm->n_params * sizeof(float));
  assert_true(back->w.wout != back->w.wte);
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  gp.max_tokens = 6;
  char *a1, *a2;
  double lp1, lp2;
  assert_int_equal(us_lm_generate(lm, "ab", &gp, &a1, &lp1, NULL, NULL), US_OK);
  assert_int_equal(us_lm_generate(back, "ab", &gp, &a2, &lp2, NULL, NULL), US_OK);
  assert_string_equal(a1, a2);
  free(a2);
  gp.no_cache = true; /* the cached grouped-query path agrees with the whole-sequence one */
  assert_int_equal(us_lm_generate(back, "ab", &gp, &a2, &lp2, NULL, NULL), US_OK);
  assert_string_equal(a1, a2);
  assert_float_equal(lp1, lp2, 1e-4);
  free(a1);
  free(a2);
  unlink(path);
  us_lm_free(back);
  us_lm_free(lm);
}

static int stop_at_six(const us_lm_progress *p, void *user) {
  (void)user;
  return p->step >= 6;
}

static void check_resume(float dropout) {
  make_facts();
  char ckpt[300];
  snprintf(ckpt, sizeof ckpt, "%s", tmp_file("ckpt.uslm"));
  unlink(ckpt);
  us_lm_train_params p;
  small_params(&p, 12);
  p.warmup_steps = 3;
  p.dropout = dropout;
  float full[12], resumed[12] = {0};
  p.losses = full;
  us_lm *a = NULL, *b = NULL;
  us_err err;
  assert_int_equal(us_lm_train(&p, facts, N_FACTS, &a, &err), US_OK);
  /* interrupted at step 6 right after the checkpoint, then resumed */
  p.losses = resumed;
  p.checkpoint_every = 6;
  p.checkpoint_path = ckpt;
  p.progress = stop_at_six;
  assert_int_equal(us_lm_train(&p, facts, N_FACTS, &b, &err), US_ERR_INTERRUPTED);
  assert_null(b);
  p.progress = NULL;
  p.resume = true;
  assert_int_equal(us_lm_train(&p, facts, N_FACTS, &b, &err), US_OK);
  for (int i = 0; i < 12; i++) assert_true(full[i] == resumed[i]);
  assert_memory_equal(a->block, b->block, a->n_params * sizeof(float));
  assert_true(full[11] < full[0]);
  if (dropout > 0) { /* the dropout run differs from one without */
    float plain[12];
    us_lm *c = NULL;
    small_params(&p, 12);
    p.warmup_steps = 3;
    p.losses = plain;
    assert_int_equal(us_lm_train(&p, facts, N_FACTS, &c, &err), US_OK);
    assert_true(plain[0] != full[0] || plain[11] != full[11]);
    us_lm_free(c);
  }
  us_lm_free(a);
  us_lm_free(b);
  unlink(ckpt);
}

static void resume_should_give_the_same_losses_as_one_run(void **state) {
  (void)state;
  check_resume(0.0f);
}

static void resume_with_dropout_should_give_the_same_losses_as_one_run(void **state) {
  (void)state;
  check_resume(0.2f);
}

/* Issue 10: a file whose weight was changed to NaN or an infinity and resealed is refused with
 * US_ERR_FORMAT naming it; a model whose weights are finite but overflow (huge) makes
 * generation and scoring fail with an error, never produce garbage. */
static void non_finite_weights_should_be_refused_and_overflow_should_fail_generation(void **state) {
  (void)state;
  us_lm *lm = tiny_model(1, 4, 2, 4, 8, 3);
  char path[300];
  snprintf(path, sizeof path, "%s", tmp_file("nan.uslm"));
  us_err err;
  assert_int_equal(us_lm_save(lm, path, &err), US_OK);
  char *data = NULL;
  size_t len = 0;
  assert_int_equal(us_read_file(path, 0, &data, &len, &err), US_OK);
  /* the last weight sits just before the checksum; its high byte 0x7f with the next bit set
   * makes the exponent all ones: an infinity or a NaN */
  size_t last = len - 32 - 4;
  unsigned char *d = (unsigned char *)data;
  for (int nan = 0; nan < 2; nan++) {
    d[last + 3] = 0x7f;
    d[last + 2] = 0x80;
    d[last + 1] = 0;
    d[last] = nan ? 1 : 0;
    us_sha256(d, len - 32, d + len - 32);
    us_lm *bad = NULL;
    assert_int_equal(us__lm_parse(d, len, path, &bad, NULL, NULL, &err), US_ERR_FORMAT);
    assert_null(bad);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "finite"));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, len, f), len);
    fclose(f);
    assert_int_equal(us_lm_load(path, &bad, &err), US_ERR_FORMAT);
    assert_null(bad);
  }
  free(data);
  unlink(path);
  /* finite but overflowing: final norm weights of 3e38 times token embeddings of 1 (tied with
   * the output layer) make every logit infinite */
  size_t n_wte = (size_t)lm->config.vocab * (size_t)lm->config.dim;
  for (size_t i = 0; i < n_wte; i++) lm->w.wte[i] = 1.0f;
  for (int i = 0; i < lm->config.dim; i++) lm->w.lnf[i] = 3e38f;
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  for (int mode = 0; mode < 3; mode++) {
    gp.no_cache = mode == 1;
    gp.temperature = mode == 2 ? 1.0f : 0.0f;
    gp.top_p = mode == 2 ? 0.9f : 1.0f;
    char *answer = (char *)1;
    double lp = 0;
    err.msg[0] = 0;
    assert_int_equal(us_lm_generate(lm, "ab", &gp, &answer, &lp, NULL, &err), US_ERR_FORMAT);
    assert_null(answer);
    assert_non_null(strstr(err.msg, "not numbers"));
  }
  double lp = 0;
  assert_int_equal(us_lm_score(lm, "ab", "c", &lp, NULL, &err), US_ERR_FORMAT);
  us_lm_free(lm);
}

/* Issue 10: a learning rate the data cannot take stops training with a message that starts with
 * the field to lower (the config puts its key there), instead of returning NaN weights. lr 1 with
 * a weight decay of 10 and no clipping multiplies every matrix by about -9 a step. */
static void diverging_training_should_stop_naming_the_learning_rate(void **state) {
  (void)state;
  make_facts();
  char ckpt[300];
  snprintf(ckpt, sizeof ckpt, "%s", tmp_file("diverge.uslm"));
  unlink(ckpt);
  us_lm_train_params p;
  small_params(&p, 200);
  p.lr = 1;
  p.weight_decay = 10;
  p.grad_clip = 0;
  p.warmup_steps = 0;
  p.checkpoint_every = 1;
  p.checkpoint_path = ckpt;
  us_lm *lm = (us_lm *)1;
  us_err err;
  assert_int_equal(us_lm_train(&p, facts, N_FACTS, &lm, &err), US_ERR_CONFIG);
  assert_null(lm);
  assert_true(strncmp(err.msg, "lr: training diverged at step ", 30) == 0);
  assert_non_null(strstr(err.msg, "lower it"));
  /* every checkpoint written on the way holds finite weights: it loads */
  us_lm *back = NULL;
  assert_int_equal(us_lm_load(ckpt, &back, &err), US_OK);
  us_lm_free(back);
  unlink(ckpt);
}

static int teardown_model(void **state) {
  (void)state;
  us_lm_free(trained_model);
  trained_model = NULL;
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rmsnorm_gradients_should_match_finite_differences),
      cmocka_unit_test(attention_with_rotary_gradients_should_match_finite_differences),
      cmocka_unit_test(grouped_query_attention_gradients_should_match_finite_differences),
      cmocka_unit_test(swiglu_gradients_should_match_finite_differences),
      cmocka_unit_test(masked_crossentropy_gradients_should_match_finite_differences),
      cmocka_unit_test(model_gradients_should_match_finite_differences),
      cmocka_unit_test(gqa_untied_model_gradients_should_match_finite_differences),
      cmocka_unit_test(lora_gradients_should_match_finite_differences_and_merge_exactly),
      cmocka_unit_test(model_gradients_with_dropout_should_match_finite_differences),
      cmocka_unit_test(dropout_should_drop_at_its_rate_and_keep_the_mean),
      cmocka_unit_test(packing_should_equal_separate_rows),
      cmocka_unit_test(param_count_should_follow_the_layout),
      cmocka_unit_test(golden_should_match_pytorch_reference),
      cmocka_unit_test(training_should_memorise_answers_and_generate_them),
      cmocka_unit_test(cached_and_uncached_generation_should_agree),
      cmocka_unit_test(score_should_match_generation_and_prefer_the_right_answer),
      cmocka_unit_test(sampling_should_be_seeded_and_respect_limits),
      cmocka_unit_test(model_file_should_round_trip_and_refuse_damage),
      cmocka_unit_test(version_one_files_should_load_and_gqa_models_round_trip),
      cmocka_unit_test(resume_should_give_the_same_losses_as_one_run),
      cmocka_unit_test(resume_with_dropout_should_give_the_same_losses_as_one_run),
      cmocka_unit_test(non_finite_weights_should_be_refused_and_overflow_should_fail_generation),
      cmocka_unit_test(diverging_training_should_stop_naming_the_learning_rate),
  };
  return cmocka_run_group_tests(tests, NULL, teardown_model);
}
