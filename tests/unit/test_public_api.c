/* The README's ten-line C program, compiled and run by the test suite. example() uses only
 * include/understudy.h; main() first trains and saves a small model to run it on. */
#include <stdio.h>

#include "understudy.h"

/* ---- the program shown in docs/student.md ---- */
static int example(const char *path, const char *text) {
  us_model *model;
  us_err err;
  us_prediction top[3];
  int n;
  if (us_model_load(path, &model, &err) != US_OK) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  if (us_model_classify(model, text, 3, top, &n, &err) != US_OK) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  for (int i = 0; i < n; i++) printf("%s %.3f\n", top[i].label, top[i].prob);
  us_model_free(model);
  return 0;
}

/* ---- test fixture: a small trained model, then checks on what the API returns ---- */
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */
#include <string.h>
#include <unistd.h>

#include "student/classifier.h"

static char model_path[256];

static int make_model(void **state) {
  (void)state;
  static char *labels[] = {"card_lost", "refund", "greeting"};
  const char *texts[] = {"I lost my card",  "my card was stolen", "card missing",
                         "I want a refund", "refund my money",    "give my money back",
                         "hello",           "hi there",           "good morning"};
  us_example ex[9];
  for (int i = 0; i < 9; i++) ex[i] = (us_example){texts[i], i / 3, NULL};
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  p.dim = 16;
  p.buckets = 10000;
  p.epochs = 100;
  p.lr = 1.0;
  p.threads = 1;
  us_classifier *m = NULL;
  us_err err;
  if (us_classifier_train(&p, labels, 3, ex, 9, NULL, 0, NULL, NULL, &m, &err) != US_OK) return -1;
  snprintf(model_path, sizeof model_path, "/tmp/us_test_public_api_%d.bin", (int)getpid());
  us_status st = us_classifier_save(m, model_path, &err);
  us_classifier_free(m);
  return st == US_OK ? 0 : -1;
}

static int remove_model(void **state) {
  (void)state;
  unlink(model_path);
  return 0;
}

static void readme_example_should_run(void **state) {
  (void)state;
  assert_int_equal(example(model_path, "my card is lost"), 0);
  assert_int_equal(example("/nonexistent/student.bin", "x"), 1);
}

static void classify_should_return_sorted_top_labels(void **state) {
  (void)state;
  us_model *m;
  us_err err;
  us_prediction top[5];
  int n;
  assert_int_equal(us_model_load(model_path, &m, &err), US_OK);
  assert_int_equal(us_model_n_labels(m), 3);
  assert_string_equal(us_model_label(m, 1), "refund");
  assert_null(us_model_label(m, 3));
  assert_int_equal(us_model_classify(m, "refund my money please", 5, top, &n, &err), US_OK);
  assert_int_equal(n, 3); /* only three labels */
  assert_string_equal(top[0].label, "refund");
  assert_true(top[0].prob >= top[1].prob && top[1].prob >= top[2].prob);
  for (int i = 0; i < n; i++) { /* each prediction names its label's index in the model */
    assert_in_range(top[i].index, 0, 2);
    assert_ptr_equal(us_model_label(m, top[i].index), top[i].label);
  }
  assert_int_equal(top[0].index, 1);
  assert_true(top[1].index != top[2].index && top[1].index != 1 && top[2].index != 1);
  float sum = top[0].prob + top[1].prob + top[2].prob;
  assert_true(sum > 0.999f && sum < 1.001f);
  assert_int_equal(us_model_classify(m, "x", 0, top, &n, &err), US_ERR_USAGE);
  us_model_free(m);
  us_model_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(readme_example_should_run),
      cmocka_unit_test(classify_should_return_sorted_top_labels),
  };
  return cmocka_run_group_tests(tests, make_model, remove_model);
}
