/* Automatic model selection for the classifier (student/classifier_autotune.c) and what came
 * with it: the search never reads past the train examples it is given, stratified folds keep a
 * rare label in every fold, the training budget bounds the search, a fixed seed at one thread
 * gives the same choice and the same model, the model file (version 3) round-trips the choice,
 * a version 2 file written by the code before this change still loads, and training without
 * the search gives that code's model bit for bit. Also the tokeniser's options. */
/* cmocka.h needs the headers above it first */
/* clang-format off */
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

#include "classifier_examples.h"
#include "core/buf.h"
#include "core/rng.h"
#include "student/classifier.h"
#include "student/classifier_int.h"

/* The settings classifier_v2.bin was trained with. */
static us_classifier_params small_params(void) {
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  p.dim = 8;
  p.buckets = 5000;
  p.epochs = 5;
  p.threads = 1;
  p.min_count_ngram = 1;
  return p;
}

static char *source_path(const char *rel) {
  const char *src = getenv("US_SOURCE_DIR");
  us_buf b;
  us_buf_init(&b, 0);
  us_buf_printf(&b, "%s/%s", src ? src : "..", rel);
  return us_buf_steal(&b);
}

static char *tmp_path(const char *name) {
  us_buf b;
  us_buf_init(&b, 0);
  us_buf_printf(&b, "/tmp/us_test_autotune_%d_%s", (int)getpid(), name);
  return us_buf_steal(&b);
}

static void read_all(const char *path, char **data, size_t *len) {
  us_err err;
  if (us_read_file(path, 0, data, len, &err) != US_OK) fail_msg("%s", err.msg);
}

/* a and b the same model: the same rows, vocabulary and sizes, and every weight within tol (0:
 * bit for bit). A model trained on another machine matches up to float rounding (another CPU's
 * OpenBLAS kernels or libm round the last bit differently: 9e-8 at most between the version 2
 * file below and a Zen 4 machine). */
static void assert_weights_within(const us_classifier *a, const us_classifier *b, float tol) {
  assert_int_equal(a->n_rows, b->n_rows);
  assert_int_equal(a->vocab.n_words, b->vocab.n_words);
  for (int i = 0; i < a->vocab.n_words; i++)
    assert_string_equal(a->vocab.words[i], b->vocab.words[i]);
  assert_memory_equal(a->row_keys, b->row_keys, (size_t)a->n_rows * sizeof *a->row_keys);
  assert_int_equal(a->dense_count, b->dense_count);
  size_t n_emb = (size_t)a->n_rows * (size_t)a->p.dim;
  if (tol == 0) {
    assert_memory_equal(a->emb, b->emb, n_emb * sizeof(float));
    assert_memory_equal(a->dense, b->dense, (size_t)a->dense_count * sizeof(float));
    return;
  }
  for (size_t i = 0; i < n_emb; i++) assert_float_equal(a->emb[i], b->emb[i], tol);
  for (size_t i = 0; i < (size_t)a->dense_count; i++)
    assert_float_equal(a->dense[i], b->dense[i], tol);
}

static void assert_same_weights(const us_classifier *a, const us_classifier *b) {
  assert_weights_within(a, b, 0);
}

/* ---- the search ---- */

typedef struct lines {
  int candidates, winners;
  char last[512];
} lines;

static void count_line(void *user, const char *line) {
  lines *l = user;
  l->candidates += strncmp(line, "candidate ", 10) == 0;
  l->winners += strncmp(line, "chosen automatically: ", 22) == 0;
  snprintf(l->last, sizeof l->last, "%s", line);
}

static us_classifier *autotune(const us_example *ex, size_t n, int max_trainings, double seconds,
                               us_autotune_info *info, lines *seen) {
  us_classifier_params p = small_params();
  us_autotune_limits limits = {seconds, max_trainings};
  us_classifier *m = NULL;
  us_err err;
  us_status st =
      us_classifier_autotune(&p, &limits, label_names, 4, ex, n, count_line, seen, &m, info, &err);
  if (st != US_OK) fail_msg("autotune: %s", err.msg);
  return m;
}

static void search_should_never_read_past_the_train_examples(void **state) {
  (void)state;
  /* train and test in one array, as a caller might hold them; the search gets the train part */
  size_t n_train = 200, n_test = 100;
  char **texts;
  us_example *ex = make_examples(n_train + n_test, 7, &texts);
  us_autotune_info clean, poisoned;
  lines seen = {0};
  us_classifier *a = autotune(ex, n_train, 20, 600, &clean, &seen);
  for (size_t i = n_train; i < n_train + n_test; i++) {
    ex[i].label = 3; /* every test label poisoned, and the texts too */
    ex[i].text = "password password login account locked";
  }
  us_classifier *b = autotune(ex, n_train, 20, 600, &poisoned, &seen);
  assert_string_equal(clean.chosen, poisoned.chosen);
  assert_true(clean.valid_acc == poisoned.valid_acc);
  assert_same_weights(a, b);
  us_classifier_free(a);
  us_classifier_free(b);
  free_examples(ex, texts, n_train + n_test);
}

static void stratified_folds_should_keep_a_rare_label_in_every_fold(void **state) {
  (void)state;
  size_t n = 503;
  us_example *ex = calloc(n, sizeof *ex);
  for (size_t i = 0; i < n; i++) ex[i] = (us_example){"x", i % 2, NULL};
  size_t rare[] = {17, 101, 250, 333, 499}; /* label 2: five examples, for five folds */
  for (size_t i = 0; i < 5; i++) ex[rare[i]].label = 2;
  int *part = malloc(n * sizeof *part), size[5] = {0}, rare_in[5] = {0};
  size_t *scratch = malloc(n * sizeof *scratch);
  for (uint64_t seed = 1; seed <= 20; seed++) {
    memset(size, 0, sizeof size);
    memset(rare_in, 0, sizeof rare_in);
    us__autotune_stratify(ex, n, 3, 5, seed, part, scratch);
    for (size_t i = 0; i < n; i++) {
      assert_in_range(part[i], 0, 4);
      size[part[i]]++;
      rare_in[part[i]] += ex[i].label == 2;
    }
    for (int j = 0; j < 5; j++) {
      assert_int_equal(rare_in[j], 1);
      assert_in_range(size[j], 100, 101); /* 503 / 5, sizes differ by one at most */
    }
  }
  free(part);
  free(scratch);
  free(ex);
}

static void training_budget_should_bound_the_search(void **state) {
  (void)state;
  size_t n = 200; /* small data: 5 folds */
  char **texts;
  us_example *ex = make_examples(n, 7, &texts);
  us_autotune_info info;
  lines seen = {0};
  us_classifier *m = autotune(ex, n, 17, 600, &info, &seen); /* room for 3 candidates of 5 */
  assert_int_equal(info.folds, 5);
  /* 3 candidates of 5 trainings (fewer when one is dropped after 2 folds), and the final model's
   * 3 averaged trainings */
  assert_true(info.candidates >= 3);
  assert_true(info.trainings <= 17 + 3);
  assert_int_equal(seen.candidates, info.candidates);
  assert_int_equal(seen.winners, 1);
  assert_non_null(strstr(seen.last, "chosen automatically: "));
  assert_non_null(strstr(seen.last, "validation accuracy "));
  us_classifier_free(m);
  /* a time budget already spent after the first candidate: that one and the final trainings */
  memset(&seen, 0, sizeof seen);
  m = autotune(ex, n, 0, 1e-9, &info, &seen);
  assert_int_equal(info.candidates, 2); /* the defaults, with and without the naive Bayes term */
  assert_int_equal(info.trainings, 5 + 3);
  assert_string_equal(info.chosen, "defaults");
  us_classifier_free(m);
  free_examples(ex, texts, n);
}

static void fixed_seed_at_one_thread_should_give_the_same_choice_and_model(void **state) {
  (void)state;
  size_t n = 200;
  char **texts;
  us_example *ex = make_examples(n, 11, &texts);
  us_autotune_info a_info, b_info;
  lines seen = {0};
  us_classifier *a = autotune(ex, n, 40, 600, &a_info, &seen);
  us_classifier *b = autotune(ex, n, 40, 600, &b_info, &seen);
  assert_true(a_info.autotuned);
  assert_true(a_info.candidates > 2);
  assert_string_equal(a_info.chosen, b_info.chosen);
  assert_true(a_info.valid_acc == b_info.valid_acc);
  assert_int_equal(a_info.final_epochs, b_info.final_epochs);
  assert_same_weights(a, b);
  /* and the same file, byte for byte */
  char *pa = tmp_path("a.bin"), *pb = tmp_path("b.bin"), *da, *db;
  size_t la, lb;
  us_err err;
  assert_int_equal(us_classifier_save(a, pa, &err), US_OK);
  assert_int_equal(us_classifier_save(b, pb, &err), US_OK);
  read_all(pa, &da, &la);
  read_all(pb, &db, &lb);
  assert_int_equal(la, lb);
  assert_memory_equal(da, db, la);
  unlink(pa);
  unlink(pb);
  free(pa);
  free(pb);
  free(da);
  free(db);
  us_classifier_free(a);
  us_classifier_free(b);
  free_examples(ex, texts, n);
}

static void feature_cache_should_give_the_same_model_as_featurising_afresh(void **state) {
  (void)state;
  size_t n = 160;
  char **texts;
  us_example *ex = make_examples(n, 3, &texts);
  us__feature_cache *cache = us__feature_cache_new();
  us_classifier_params p = small_params(), other = small_params();
  other.word_ngrams = 3; /* other features: a second slot */
  us_err err;
  for (int round = 0; round < 3; round++) { /* miss, miss, then hits */
    const us_classifier_params *q = round == 1 ? &other : &p;
    us_classifier *fresh = NULL, *cached = NULL;
    us__train_extra plain = {0}, with = {.cache = cache};
    us_classifier_params trained = *q;
    trained.lr = round == 2 ? 0.5 : q->lr; /* a training setting: the features are reused */
    assert_int_equal(us__classifier_train_ex(&trained, label_names, 4, ex + 40, n - 40, ex, 40,
                                             NULL, NULL, &plain, &fresh, &err),
                     US_OK);
    assert_int_equal(us__classifier_train_ex(&trained, label_names, 4, ex + 40, n - 40, ex, 40,
                                             NULL, NULL, &with, &cached, &err),
                     US_OK);
    assert_same_weights(fresh, cached);
    assert_int_equal(plain.best_epoch, with.best_epoch);
    assert_true(plain.best_acc == with.best_acc);
    us_classifier_free(fresh);
    us_classifier_free(cached);
  }
  us__feature_cache_free(cache);
  free_examples(ex, texts, n);
}

/* ---- the model file ---- */

static void model_file_should_round_trip_the_chosen_setting(void **state) {
  (void)state;
  size_t n = 200;
  char **texts;
  us_example *ex = make_examples(n, 5, &texts);
  us_autotune_info info;
  lines seen = {0};
  us_classifier *m = autotune(ex, n, 60, 600, &info, &seen), *back = NULL;
  us_err err;
  char *path = tmp_path("tuned.bin");
  assert_int_equal(us_classifier_save(m, path, &err), US_OK);
  assert_int_equal(us_classifier_load(path, &back, &err), US_OK);
  const us_autotune_info *t = us_classifier_autotune_info(back);
  assert_true(t->autotuned);
  assert_string_equal(t->chosen, info.chosen);
  assert_true(t->valid_acc == info.valid_acc);
  assert_int_equal(t->folds, info.folds);
  assert_int_equal(t->candidates, info.candidates);
  assert_int_equal(t->trainings, info.trainings);
  assert_int_equal(t->final_epochs, info.final_epochs);
  const us_classifier_params *p = us_classifier_get_params(m), *q = us_classifier_get_params(back);
  assert_int_equal(p->lowercase, q->lowercase);
  assert_int_equal(p->punctuation, q->punctuation);
  assert_int_equal(p->fold_digits, q->fold_digits);
  assert_int_equal(p->fold_urls, q->fold_urls);
  assert_true(p->class_weight == q->class_weight);
  assert_same_weights(m, back);
  /* a tokeniser option and a search record that are not 0/1 are refused */
  us_classifier_free(back);
  us_classifier_params tok = small_params();
  tok.fold_digits = true;
  tok.lowercase = false;
  tok.class_weight = 0.5;
  us_classifier *plain = NULL;
  assert_int_equal(
      us_classifier_train(&tok, label_names, 4, ex, n, NULL, 0, NULL, NULL, &plain, &err), US_OK);
  assert_int_equal(us_classifier_save(plain, path, &err), US_OK);
  assert_int_equal(us_classifier_load(path, &back, &err), US_OK);
  assert_false(us_classifier_autotune_info(back)->autotuned);
  assert_true(us_classifier_get_params(back)->fold_digits);
  assert_false(us_classifier_get_params(back)->lowercase);
  assert_true(us_classifier_get_params(back)->class_weight == 0.5);
  assert_same_weights(plain, back);
  unlink(path);
  free(path);
  us_classifier_free(back);
  us_classifier_free(plain);
  us_classifier_free(m);
  free_examples(ex, texts, n);
}

/* classifier_v2.bin was written by the code before this change (version 2 files) from
 * make_examples(120, 42) and small_params(), the first 20 examples as the validation slice, on
 * another machine: the same model up to float rounding (assert_weights_within). */
static void version_2_file_should_load_and_training_without_search_should_match_it(void **state) {
  (void)state;
  char *path = source_path("tests/data/models/classifier_v2.bin"), *data;
  size_t len;
  read_all(path, &data, &len);
  uint32_t version;
  memcpy(&version, data + 8, 4);
  assert_int_equal(version, 2);
  us_classifier *old = NULL, *now = NULL;
  us_err err;
  assert_int_equal(us_classifier_load_buffer(data, len, path, &old, &err), US_OK);
  const us_classifier_params *op = us_classifier_get_params(old);
  assert_true(op->lowercase && op->punctuation && !op->fold_digits && !op->fold_urls);
  assert_true(op->class_weight == 0);
  assert_false(us_classifier_autotune_info(old)->autotuned);
  /* today's trainer with the search off (us_classifier_train): the same model */
  char **texts;
  us_example *ex = make_examples(120, 42, &texts);
  us_classifier_params p = small_params();
  assert_int_equal(us_classifier_train(&p, label_names, 4, ex, 120, ex, 20, NULL, NULL, &now, &err),
                   US_OK);
  assert_weights_within(old, now, 1e-5f);
  float a[4], b[4];
  for (size_t i = 0; i < 120; i++) {
    assert_int_equal(us_classifier_predict(old, ex[i].text, a, &err), US_OK);
    assert_int_equal(us_classifier_predict(now, ex[i].text, b, &err), US_OK);
    for (int k = 0; k < 4; k++) assert_float_equal(a[k], b[k], 1e-5);
  }
  free_examples(ex, texts, 120);
  us_classifier_free(old);
  us_classifier_free(now);
  free(data);
  free(path);
}

/* ---- the tokeniser's options ---- */

static void vocabulary_of(const char *text, us_classifier_params p, char *out, size_t cap) {
  us__vocab v = {0};
  us_err err;
  assert_int_equal(us__vocab_build_with(&v, &p, &text, 1, &err), US_OK);
  size_t len = 0;
  out[0] = '\0';
  for (int i = 0; i < v.n_words && len < cap; i++)
    len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "|" : "", v.words[i]);
  us__vocab_free(&v);
}

static void tokeniser_options_should_fold_digits_urls_case_and_punctuation(void **state) {
  (void)state;
  const char *text = "Call 555-1234 NOW, see https://Example.com/x?a=1 or www.spam.biz!";
  char got[512];
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  vocabulary_of(text, p, got, sizeof got);
  assert_string_equal(got,
                      "call|555|-|1234|now|,|see|https|:|/|example|.|com|x|?|a|=|1|or|www|"
                      "spam|biz|!");
  p.fold_digits = true;
  p.fold_urls = true;
  vocabulary_of(text, p, got, sizeof got);
  assert_string_equal(got, "call|000|-|0000|now|,|see|<url>|or"); /* a URL runs to a space */
  p.punctuation = false;
  p.lowercase = false;
  vocabulary_of(text, p, got, sizeof got);
  assert_string_equal(got, "Call|000|0000|NOW|see|<url>|or");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(search_should_never_read_past_the_train_examples),
      cmocka_unit_test(stratified_folds_should_keep_a_rare_label_in_every_fold),
      cmocka_unit_test(training_budget_should_bound_the_search),
      cmocka_unit_test(fixed_seed_at_one_thread_should_give_the_same_choice_and_model),
      cmocka_unit_test(feature_cache_should_give_the_same_model_as_featurising_afresh),
      cmocka_unit_test(model_file_should_round_trip_the_chosen_setting),
      cmocka_unit_test(version_2_file_should_load_and_training_without_search_should_match_it),
      cmocka_unit_test(tokeniser_options_should_fold_digits_urls_case_and_punctuation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
