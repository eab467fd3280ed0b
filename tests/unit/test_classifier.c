/* The classifier student: finite-difference gradient checks (with and without a hidden layer,
 * soft and hard targets, with dropout masks held fixed), targets, learning a separable problem,
 * early stopping keeping the best epoch, and bit-for-bit reproducibility with one thread. */
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

#include "classifier_examples.h"
#include "core/hash.h"
#include "core/rng.h"
#include "student/classifier.h"
#include "student/classifier_int.h"

static us_classifier_params small_params(void) {
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  p.dim = 8;
  p.buckets = 5000;
  p.epochs = 5;
  p.threads = 1;
  p.min_count_ngram = 1; /* every n-gram of these few texts gets a row */
  return p;
}

static us_classifier *train_small(us_classifier_params p, size_t n) {
  char **texts;
  us_example *ex = make_examples(n, 42, &texts);
  us_classifier *m = NULL;
  us_err err;
  us_status st = us_classifier_train(&p, label_names, 4, ex, n, NULL, 0, NULL, NULL, &m, &err);
  if (st != US_OK) fail_msg("train: %s", err.msg);
  free_examples(ex, texts, n);
  return m;
}

/* ---- gradient checks ---- */

static double loss_at(us_classifier *m, us_classifier_scratch *s, const int32_t *rows, int n,
                      const float *q, double dropout) {
  us_rng r;
  us_rng_seed(&r, 99); /* same dropout mask on every call */
  us__classifier_forward(m, s, rows, n, dropout > 0 ? &r : NULL, dropout);
  return us__classifier_loss(m, s, q);
}

static void check_gradients(int hidden, bool soft, double dropout) {
  us_classifier_params p = small_params();
  if (hidden) {
    p.n_hidden = 1;
    p.hidden[0] = hidden;
  }
  us_classifier *m = train_small(p, 60);
  us_rng r;
  us_rng_seed(&r, 5);
  /* random weights so no gradient is trivially zero */
  for (int64_t i = 0; i < (int64_t)m->n_rows * m->p.dim; i++) m->emb[i] = (float)us_rng_normal(&r);
  for (int64_t i = 0; i < m->dense_count; i++) m->dense[i] = 0.5f * (float)us_rng_normal(&r);
  us_classifier_scratch *s = us__scratch_new(m, 64);
  us_err err;
  assert_int_equal(us__classifier_text_rows(m, s, "my parcel invoice please", &err), US_OK);
  int n = s->n_rows;
  assert_true(n > 3);
  int32_t rows[64];
  memcpy(rows, s->rows, (size_t)n * sizeof *rows);
  float soft_target[4] = {0.1f, 0.6f, 0.2f, 0.1f}, q[4];
  us_example ex = {"x", 2, soft ? soft_target : NULL};
  p.kd_temperature = 2.0;
  us__classifier_target(&p, 4, &ex, q);

  float *grad_dense = calloc((size_t)m->dense_count, sizeof *grad_dense);
  float grad_bag[8] = {0};
  loss_at(m, s, rows, n, q, dropout);
  us__classifier_backward(m, s, rows, n, q, 0, grad_dense, grad_bag);

  const float h = 1e-2f;
  int checked = 0;
  int64_t stride = m->dense_count > 100 ? 3 : 1; /* every (third) dense weight */
  for (int64_t i = 0; i < m->dense_count; i += stride) {
    float old = m->dense[i];
    m->dense[i] = old + h;
    double up = loss_at(m, s, rows, n, q, dropout);
    m->dense[i] = old - h;
    double down = loss_at(m, s, rows, n, q, dropout);
    m->dense[i] = old;
    double numeric = (up - down) / (2 * h);
    if (fabs(numeric - grad_dense[i]) > 2e-3 + 2e-2 * fabs(numeric))
      fail_msg("dense[%lld]: analytic %g, numeric %g", (long long)i, grad_dense[i], numeric);
    checked++;
  }
  /* one embedding row: d loss / d emb[row] = grad_bag * (occurrences of row) / n */
  int row = rows[0], occurrences = 0;
  for (int k = 0; k < n; k++) occurrences += rows[k] == row;
  for (int i = 0; i < m->p.dim; i++) {
    float *e = m->emb + (size_t)row * m->p.dim + i, old = *e;
    *e = old + h;
    double up = loss_at(m, s, rows, n, q, dropout);
    *e = old - h;
    double down = loss_at(m, s, rows, n, q, dropout);
    *e = old;
    double numeric = (up - down) / (2 * h), analytic = grad_bag[i] * occurrences / (double)n;
    if (fabs(numeric - analytic) > 2e-3 + 2e-2 * fabs(numeric))
      fail_msg("emb[%d][%d]: analytic %g, numeric %g", row, i, analytic, numeric);
    checked++;
  }
  assert_true(checked > 20);
  free(grad_dense);
  us_classifier_scratch_free(s);
  us_classifier_free(m);
}

static void gradient_should_match_finite_differences_hard_target(void **state) {
  (void)state;
  check_gradients(0, false, 0);
}

static void gradient_should_match_finite_differences_soft_target(void **state) {
  (void)state;
  check_gradients(0, true, 0);
}

static void gradient_with_hidden_layer_should_match_finite_differences(void **state) {
  (void)state;
  check_gradients(16, false, 0);
  check_gradients(16, true, 0);
}

static void gradient_with_dropout_should_match_finite_differences(void **state) {
  (void)state;
  check_gradients(16, true, 0.3);
}

/* ---- targets ---- */

static void target_should_apply_temperature_and_smoothing(void **state) {
  (void)state;
  us_classifier_params p = small_params();
  float soft[3] = {0.5f, 0.25f, 0.25f}, q[4];
  p.label_smoothing = 0;
  p.kd_temperature = 2.0; /* sqrt: .7071 .5 .5, normalised */
  us__classifier_target(&p, 3, &(us_example){"x", 0, soft}, q);
  assert_true(fabsf(q[0] - 0.41421f) < 1e-4f);
  assert_true(fabsf(q[1] - 0.29289f) < 1e-4f);
  p.label_smoothing = 0.1;
  us__classifier_target(&p, 4, &(us_example){"x", 3, NULL}, q);
  assert_true(fabsf(q[3] - 0.925f) < 1e-6f);
  assert_true(fabsf(q[0] - 0.025f) < 1e-6f);
}

/* ---- learning ---- */

static void classifier_should_learn_separable_problem(void **state) {
  (void)state;
  char **train_texts, **test_texts;
  us_example *train = make_examples(400, 1, &train_texts);
  us_example *test = make_examples(200, 2, &test_texts);
  us_classifier_params p = small_params();
  p.epochs = 10;
  p.threads = 2;
  us_classifier *m = NULL;
  us_err err;
  assert_int_equal(
      us_classifier_train(&p, label_names, 4, train, 400, NULL, 0, NULL, NULL, &m, &err), US_OK);
  int right = 0;
  float probs[4];
  for (int i = 0; i < 200; i++) {
    assert_int_equal(us_classifier_predict(m, test[i].text, probs, &err), US_OK);
    int best = 0;
    for (int k = 1; k < 4; k++)
      if (probs[k] > probs[best]) best = k;
    right += best == test[i].label;
    float sum = probs[0] + probs[1] + probs[2] + probs[3];
    assert_true(fabsf(sum - 1.0f) < 1e-4f);
  }
  assert_true(right >= 196);
  assert_string_equal(us_classifier_label(m, 2), "refund");
  assert_null(us_classifier_label(m, 4));
  assert_true(us_classifier_param_count(m) > 8 * 4);
  us_classifier_free(m);
  free_examples(train, train_texts, 400);
  free_examples(test, test_texts, 200);
}

typedef struct curve {
  double acc[64];
  int n;
} curve;

static void record(void *user, const us_epoch_info *e) {
  curve *c = user;
  assert_int_equal(e->epoch, c->n + 1);
  c->acc[c->n++] = e->valid_acc;
}

static void training_should_keep_best_validation_epoch(void **state) {
  (void)state;
  char **train_texts, **valid_texts;
  us_example *train = make_examples(120, 3, &train_texts);
  us_example *valid = make_examples(80, 4, &valid_texts);
  for (int i = 0; i < 80; i += 3) valid[i].label = (valid[i].label + 1) % 4; /* noisy valid */
  us_classifier_params p = small_params();
  p.epochs = 12;
  p.patience = 2;
  p.lr = 1.0;
  curve c = {.n = 0};
  us_classifier *m = NULL;
  us_err err;
  assert_int_equal(
      us_classifier_train(&p, label_names, 4, train, 120, valid, 80, record, &c, &m, &err), US_OK);
  double best = 0;
  for (int i = 0; i < c.n; i++)
    if (c.acc[i] > best) best = c.acc[i];
  int right = 0;
  float probs[4];
  for (int i = 0; i < 80; i++) {
    us_classifier_predict(m, valid[i].text, probs, &err);
    int b = 0;
    for (int k = 1; k < 4; k++)
      if (probs[k] > probs[b]) b = k;
    right += b == valid[i].label;
  }
  assert_true(fabs(right / 80.0 - best) < 1e-9);
  us_classifier_free(m);
  free_examples(train, train_texts, 120);
  free_examples(valid, valid_texts, 80);
}

/* Mean top probability minus accuracy against the (noisy) labels; *predicted receives argmaxes. */
static double confidence_gap(const us_classifier *m, const us_example *ex, int n, int *predicted) {
  double conf = 0;
  int right = 0;
  float probs[4];
  us_err err;
  for (int i = 0; i < n; i++) {
    assert_int_equal(us_classifier_predict(m, ex[i].text, probs, &err), US_OK);
    int b = 0;
    for (int k = 1; k < 4; k++)
      if (probs[k] > probs[b]) b = k;
    predicted[i] = b;
    conf += probs[b];
    right += b == ex[i].label;
  }
  return (conf - right) / n;
}

/* Temperature scaling on the validation set: the same predictions, and confidences that match
 * the accuracy on texts neither training nor calibration saw (a quarter of every set's labels
 * are replaced at random, so the best accuracy is about 81%). */
static void calibration_should_keep_predictions_and_match_confidence_to_accuracy(void **state) {
  (void)state;
  enum { NT = 400, NV = 300, NE = 600 };
  char **tt, **vt, **et;
  us_example *train = make_examples(NT, 11, &tt), *valid = make_examples(NV, 12, &vt);
  us_example *test = make_examples(NE, 13, &et);
  us_rng r;
  us_rng_seed(&r, 14);
  us_example *sets[3] = {train, valid, test};
  int sizes[3] = {NT, NV, NE};
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < sizes[k]; i++)
      if (us_rng_below(&r, 4) == 0) sets[k][i].label = (int)us_rng_below(&r, 4);
  us_classifier_params p = small_params();
  p.epochs = 10;
  us_classifier *raw = NULL, *cal = NULL;
  us_err err;
  p.calibrate = false;
  assert_int_equal(
      us_classifier_train(&p, label_names, 4, train, NT, valid, NV, NULL, NULL, &raw, &err), US_OK);
  p.calibrate = true;
  assert_int_equal(
      us_classifier_train(&p, label_names, 4, train, NT, valid, NV, NULL, NULL, &cal, &err), US_OK);
  static int pred_raw[NE], pred_cal[NE];
  double gap_raw = confidence_gap(raw, test, NE, pred_raw);
  double gap_cal = confidence_gap(cal, test, NE, pred_cal);
  assert_memory_equal(pred_raw, pred_cal, sizeof pred_raw);
  print_message("confidence - accuracy on unseen texts: %.4f uncalibrated, %.4f calibrated\n",
                gap_raw, gap_cal);
  assert_true(fabs(gap_cal) < fabs(gap_raw));
  assert_true(fabs(gap_cal) < 0.05);
  us_classifier_free(raw);
  us_classifier_free(cal);
  free_examples(train, tt, NT);
  free_examples(valid, vt, NV);
  free_examples(test, et, NE);
}

static void one_thread_with_fixed_seed_should_be_bit_for_bit_reproducible(void **state) {
  (void)state;
  us_classifier_params p = small_params();
  p.n_hidden = 1;
  p.hidden[0] = 12;
  p.dropout = 0.2;
  us_classifier *a = train_small(p, 200), *b = train_small(p, 200);
  assert_int_equal(a->n_rows, b->n_rows);
  assert_memory_equal(a->emb, b->emb, (size_t)a->n_rows * a->p.dim * sizeof(float));
  assert_memory_equal(a->dense, b->dense, (size_t)a->dense_count * sizeof(float));
  p.seed = 2;
  us_classifier *c = train_small(p, 200);
  assert_true(memcmp(a->dense, c->dense, (size_t)a->dense_count * sizeof(float)) != 0);
  us_classifier_free(a);
  us_classifier_free(b);
  us_classifier_free(c);
}

static void train_should_refuse_bad_labels_and_params(void **state) {
  (void)state;
  us_classifier_params p = small_params();
  us_example ex[2] = {{"a b", 0, NULL}, {"c d", 7, NULL}};
  us_classifier *m = NULL;
  us_err err;
  assert_int_equal(us_classifier_train(&p, label_names, 4, ex, 2, NULL, 0, NULL, NULL, &m, &err),
                   US_ERR_INPUT);
  assert_non_null(strstr(err.msg, "label 7"));
  assert_null(m);
  p.dropout = 1.5;
  ex[1].label = 1;
  assert_int_equal(us_classifier_train(&p, label_names, 4, ex, 2, NULL, 0, NULL, NULL, &m, &err),
                   US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "dropout"));
  p = small_params();
  assert_int_equal(us_classifier_train(&p, label_names, 4, ex, 0, NULL, 0, NULL, NULL, &m, &err),
                   US_ERR_INPUT);
}

static void record_loss(void *user, const us_epoch_info *e) {
  (void)user;
  if (!isfinite(e->train_loss) || !isfinite(e->valid_loss))
    fail_msg("epoch %d reported a loss that is not a number", e->epoch);
}

/* Issue 10: a learning rate the data cannot take (the config allows up to 100) stops training
 * with a message that starts with the field to lower (the config puts its key there), instead of
 * returning a model of NaN weights; no epoch with a NaN loss is reported. */
static void diverging_training_should_stop_naming_the_learning_rate(void **state) {
  (void)state;
  us_classifier_params p = small_params();
  p.lr = 100;
  p.epochs = 20;
  p.label_smoothing = 0;
  p.n_hidden = 1;
  p.hidden[0] = 16;
  char **texts;
  us_example *ex = make_examples(200, 42, &texts);
  us_classifier *m = (us_classifier *)1;
  us_err err;
  assert_int_equal(
      us_classifier_train(&p, label_names, 4, ex, 160, ex + 160, 40, record_loss, NULL, &m, &err),
      US_ERR_CONFIG);
  assert_null(m);
  assert_true(strncmp(err.msg, "lr: training diverged in epoch ", 31) == 0);
  assert_non_null(strstr(err.msg, "lower it"));
  free_examples(ex, texts, 200);
}

static void features_should_lowercase_and_split_punctuation(void **state) {
  (void)state;
  us_classifier_params p = small_params();
  us_classifier *m = train_small(p, 40);
  int id = us__vocab_find(&m->vocab, "parcel", 6);
  assert_true(id >= 0);
  /* "PARCEL?" is the word "parcel" and the token "?" */
  us_classifier_scratch *s = us__scratch_new(m, 4);
  us_err err;
  assert_int_equal(us__classifier_text_rows(m, s, "PARCEL?", &err), US_OK);
  int32_t word_row = us__keymap_get(&m->row_of, (uint32_t)id);
  bool found = false;
  for (int i = 0; i < s->n_rows; i++) found |= s->rows[i] == word_row;
  assert_true(found);
  assert_true(s->cap_rows >= s->n_rows); /* grew past its 4 rows */
  us_classifier_scratch_free(s);
  us_classifier_free(m);
}

static void fastmod_should_equal_the_remainder(void **state) {
  (void)state;
  us_rng r;
  us_rng_seed(&r, 5);
  uint64_t ds[] = {
      1, 2, 3, 7, 200, 5000, 2000000, 775647, (1u << 30), UINT32_MAX, UINT64_MAX / 3, UINT64_MAX};
  for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
    us__u128 magic = us__fastmod_magic(ds[k]);
    uint64_t edge[] = {0, 1, ds[k] - 1, ds[k], ds[k] + 1, UINT64_MAX, UINT64_MAX - 1};
    for (size_t e = 0; e < sizeof edge / sizeof edge[0]; e++)
      assert_true(us__fastmod(edge[e], magic, ds[k]) == edge[e] % ds[k]);
    for (int i = 0; i < 20000; i++) {
      uint64_t h = us_rng_u64(&r);
      if (us__fastmod(h, magic, ds[k]) != h % ds[k])
        fail_msg("%llu %% %llu", (unsigned long long)h, (unsigned long long)ds[k]);
    }
  }
}

/* The keys of version 1 files: every n-gram's key from a plain us_hash64 and %. */
typedef struct keys {
  uint32_t k[256];
  int n;
} keys;

static void add_key(void *user, uint32_t key) {
  keys *ks = user;
  if (ks->n < 256) ks->k[ks->n] = key;
  ks->n++;
}

static void char_ngram_keys_should_match_the_reference_hash(void **state) {
  (void)state;
  us_classifier_params p = small_params();
  p.word_ngrams = 1;
  p.minn = 2;
  p.maxn = 4;
  p.buckets = 2000003;
  us__vocab v = {0};
  us_err err;
  const char *text = "Zoë cafe";
  assert_int_equal(us__vocab_build(&v, &text, 1, 1, &err), US_OK);
  keys got = {.n = 0};
  us__features(&p, &v, text, add_key, &got);
  keys want = {.n = 0};
  const char *words[] = {"zoë", "cafe"};
  for (int w = 0; w < 2; w++) {
    add_key(&want, (uint32_t)us__vocab_find(&v, words[w], (int)strlen(words[w])));
    char buf[16];
    int len = snprintf(buf, sizeof buf, "<%s>", words[w]);
    for (int i = 0; i < len; i++) {
      if (((unsigned char)buf[i] & 0xC0) == 0x80) continue;
      int j = i;
      for (int n = 1; n <= p.maxn && j < len; n++) {
        j++;
        while (j < len && ((unsigned char)buf[j] & 0xC0) == 0x80) j++;
        if (n >= p.minn)
          add_key(&want, (uint32_t)v.n_words +
                             (uint32_t)(us_hash64(buf + i, (size_t)(j - i), 1) % p.buckets));
      }
    }
  }
  assert_int_equal(got.n, want.n);
  assert_true(got.n > 10);
  assert_memory_equal(got.k, want.k, (size_t)got.n * sizeof got.k[0]);
  us__vocab_free(&v);
}

static void min_counts_should_prune_rare_words_and_ngrams(void **state) {
  (void)state;
  char **texts;
  us_example *ex = make_examples(200, 9, &texts);
  /* one rare word: seen once in the train set */
  free(texts[0]);
  texts[0] = strdup("hello invoice xylophonist");
  ex[0].text = texts[0];
  us_classifier_params p = small_params();
  p.epochs = 2;
  p.buckets = 2000000; /* no collisions between the rare and the frequent n-grams */
  us_classifier *all = NULL, *pruned = NULL, *words = NULL;
  us_err err;
  assert_int_equal(
      us_classifier_train(&p, label_names, 4, ex, 200, NULL, 0, NULL, NULL, &all, &err), US_OK);
  p.min_count = 2;
  assert_int_equal(
      us_classifier_train(&p, label_names, 4, ex, 200, NULL, 0, NULL, NULL, &words, &err), US_OK);
  p.min_count_ngram = 2;
  assert_int_equal(
      us_classifier_train(&p, label_names, 4, ex, 200, NULL, 0, NULL, NULL, &pruned, &err), US_OK);
  assert_true(us__vocab_find(&all->vocab, "xylophonist", 11) >= 0);
  assert_int_equal(us__vocab_find(&words->vocab, "xylophonist", 11), -1);
  assert_true(us__vocab_find(&words->vocab, "invoice", 7) >= 0);
  assert_int_equal(words->vocab.n_words, all->vocab.n_words - 1);
  /* the rare word's own n-grams ("xyl", "lop", ...) are gone, frequent ones stay */
  assert_true(pruned->n_rows < words->n_rows);
  assert_true(words->n_rows < all->n_rows);
  keys ks = {.n = 0};
  us__features(&pruned->p, &pruned->vocab, "xylophonist", add_key, &ks);
  int kept = 0;
  for (int i = 0; i < ks.n && i < 256; i++) kept += us__keymap_get(&pruned->row_of, ks.k[i]) >= 0;
  assert_int_equal(kept, 0);
  ks.n = 0;
  us__features(&pruned->p, &pruned->vocab, "invoice", add_key, &ks);
  for (int i = 0; i < ks.n && i < 256; i++)
    assert_true(us__keymap_get(&pruned->row_of, ks.k[i]) >= 0);
  /* still learns the problem */
  float probs[4];
  assert_int_equal(us_classifier_predict(pruned, "my invoice please", probs, &err), US_OK);
  assert_true(probs[0] > probs[1] && probs[0] > probs[2] && probs[0] > probs[3]);
  p.min_count = 0;
  us_classifier *bad = NULL;
  assert_int_equal(
      us_classifier_train(&p, label_names, 4, ex, 200, NULL, 0, NULL, NULL, &bad, &err),
      US_ERR_CONFIG);
  us_classifier_free(all);
  us_classifier_free(words);
  us_classifier_free(pruned);
  free_examples(ex, texts, 200);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(gradient_should_match_finite_differences_hard_target),
      cmocka_unit_test(gradient_should_match_finite_differences_soft_target),
      cmocka_unit_test(gradient_with_hidden_layer_should_match_finite_differences),
      cmocka_unit_test(gradient_with_dropout_should_match_finite_differences),
      cmocka_unit_test(target_should_apply_temperature_and_smoothing),
      cmocka_unit_test(classifier_should_learn_separable_problem),
      cmocka_unit_test(training_should_keep_best_validation_epoch),
      cmocka_unit_test(calibration_should_keep_predictions_and_match_confidence_to_accuracy),
      cmocka_unit_test(one_thread_with_fixed_seed_should_be_bit_for_bit_reproducible),
      cmocka_unit_test(train_should_refuse_bad_labels_and_params),
      cmocka_unit_test(diverging_training_should_stop_naming_the_learning_rate),
      cmocka_unit_test(features_should_lowercase_and_split_punctuation),
      cmocka_unit_test(fastmod_should_equal_the_remainder),
      cmocka_unit_test(char_ngram_keys_should_match_the_reference_hash),
      cmocka_unit_test(min_counts_should_prune_rare_words_and_ngrams),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
