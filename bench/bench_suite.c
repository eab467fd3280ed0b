/* The understudy side of bench/bench_suite.sh (issue 13): trains the classifier student on one
 * prepared split, with its defaults or with its automatic model selection, and prints one JSON
 * line (accuracies, training wall/CPU time, in-process prediction CPU per text). The split files
 * are written by bench/suite_data.py, so fastText sees exactly the same texts.
 *
 * usage: bench_suite --train F --valid F --test F [--model PATH] [--seed N] [--threads N]
 *                    [--autotune SECONDS] [--set key=value ...]
 *   F             one example a line: LABEL<TAB>TEXT
 *   --valid F     carved from the train split (never the test split): early stopping and
 *                 calibration with the defaults; the search's data with --autotune
 *   --model PATH  also save the trained model there (for `understudy predict` timing)
 *   --seed N      training seed (default: the student's default, 1)
 *   --threads N   training threads (default: the student's default, 2)
 *   --autotune S  automatic model selection within S seconds (0 = the defaults), on train
 *                 and valid together (see train_autotune below)
 *   --set k=v     override one default: dim word_ngrams minn maxn buckets min_count
 *                 min_count_ngram epochs lr dropout label_smoothing patience hidden */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "student/blas.h"
#include "student/classifier.h"

typedef struct split {
  us_example *ex;
  char **text;
  size_t n, cap;
} split;

static char *labels[4096];
static int n_labels;

static int label_index(const char *s) {
  for (int i = 0; i < n_labels; i++)
    if (strcmp(labels[i], s) == 0) return i;
  if (n_labels == 4096) {
    fprintf(stderr, "bench_suite: more than 4096 labels\n");
    exit(1);
  }
  labels[n_labels] = strdup(s);
  return n_labels++;
}

/* Reads LABEL<TAB>TEXT lines; a line without a tab is an error naming the file and line. */
static int load_split(const char *path, split *s) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "bench_suite: cannot open %s\n", path);
    return -1;
  }
  char *line = NULL;
  size_t cap = 0, lineno = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    lineno++;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    char *tab = strchr(line, '\t');
    if (!tab) {
      fprintf(stderr, "bench_suite: %s:%zu: expected LABEL<TAB>TEXT\n", path, lineno);
      free(line);
      fclose(f);
      return -1;
    }
    *tab = '\0';
    if (s->n == s->cap) {
      s->cap = s->cap ? 2 * s->cap : 1024;
      s->ex = realloc(s->ex, s->cap * sizeof *s->ex);
      s->text = realloc(s->text, s->cap * sizeof *s->text);
      if (!s->ex || !s->text) abort();
    }
    s->text[s->n] = strdup(tab + 1);
    s->ex[s->n] = (us_example){s->text[s->n], label_index(line), NULL};
    s->n++;
  }
  free(line);
  fclose(f);
  return 0;
}

static void split_free(split *s) {
  for (size_t i = 0; i < s->n; i++) free(s->text[i]);
  free(s->text);
  free(s->ex);
}

/* The --set keys: a field of us_classifier_params, int or double. */
#define SET_KEY(field, is_double) \
  { #field, offsetof(us_classifier_params, field), is_double }
static const struct {
  const char *name;
  size_t offset;
  bool is_double;
} SET_KEYS[] = {
    SET_KEY(dim, false),
    SET_KEY(word_ngrams, false),
    SET_KEY(minn, false),
    SET_KEY(maxn, false),
    SET_KEY(buckets, false),
    SET_KEY(min_count, false),
    SET_KEY(min_count_ngram, false),
    SET_KEY(epochs, false),
    SET_KEY(patience, false),
    SET_KEY(lr, true),
    SET_KEY(dropout, true),
    SET_KEY(label_smoothing, true),
};

static int apply_set(us_classifier_params *p, const char *kv) {
  const char *eq = strchr(kv, '=');
  if (!eq) return -1;
  size_t len = (size_t)(eq - kv);
  double v = atof(eq + 1);
  if (len == 6 && strncmp(kv, "hidden", 6) == 0) { /* one hidden layer of this size; 0: none */
    p->n_hidden = v > 0;
    p->hidden[0] = (int)v;
    return 0;
  }
  for (size_t i = 0; i < sizeof SET_KEYS / sizeof *SET_KEYS; i++) {
    if (strlen(SET_KEYS[i].name) != len || strncmp(kv, SET_KEYS[i].name, len) != 0) continue;
    char *field = (char *)p + SET_KEYS[i].offset;
    if (SET_KEYS[i].is_double)
      *(double *)field = v;
    else
      *(int *)field = (int)v;
    return 0;
  }
  return -1;
}

/* Accuracy on s, and the CPU time per prediction (one thread, scratch reused, probabilities of
 * every label computed as `understudy predict` does), over at least min_predictions calls. */
static double evaluate(const us_classifier *m, const split *s, size_t min_predictions,
                       double *cpu_us_per_text) {
  us_classifier_scratch *scratch = us_classifier_scratch_new(m);
  float *probs = malloc((size_t)us_classifier_n_labels(m) * sizeof *probs);
  size_t right = 0, done = 0;
  us_err err;
  double c0 = us_cpu_time();
  for (int pass = 0; s->n && (pass == 0 || done < min_predictions); pass++) {
    for (size_t i = 0; i < s->n; i++, done++) {
      us_classifier_predict_with(m, scratch, s->ex[i].text, probs, &err);
      if (pass > 0) continue;
      int best = 0;
      for (int k = 1; k < us_classifier_n_labels(m); k++)
        if (probs[k] > probs[best]) best = k;
      right += best == s->ex[i].label;
    }
  }
  *cpu_us_per_text = done ? (us_cpu_time() - c0) * 1e6 / (double)done : 0;
  free(probs);
  us_classifier_scratch_free(scratch);
  return s->n ? (double)right / (double)s->n : 0;
}

/* ===== AUTOTUNE HOOK (issue 13) =====================================================
 * understudy's automatic model selection (us_classifier_autotune, student/classifier.h)
 * within `seconds`, writing a one-line description of the chosen setting into chosen. It
 * searches on train and the validation slice only (never test), with the threads of p, and
 * trains the final model on both. A build without that API answered here with an error, and
 * the bench reported understudy-autotune as skipped. */
static void print_line(void *user, const char *line) {
  (void)user;
  fprintf(stderr, "bench_suite: %s\n", line);
}

static us_status train_autotune(const us_classifier_params *p, double seconds, const split *train,
                                const split *valid, char *chosen, size_t chosen_len,
                                us_classifier **out, us_err *err) {
  /* the search makes its own stratified folds over everything it may see: train and valid */
  size_t n = train->n + valid->n;
  us_example *all = malloc((n ? n : 1) * sizeof *all);
  if (!all) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  memcpy(all, train->ex, train->n * sizeof *all);
  memcpy(all + train->n, valid->ex, valid->n * sizeof *all);
  /* US_AUTOTUNE_MAX_TRAININGS bounds the search by trainings as well (a budget that means the
   * same on a loaded machine: wall seconds at a load average of 25 buy a tenth of the search) */
  const char *cap = getenv("US_AUTOTUNE_MAX_TRAININGS");
  us_autotune_limits limits = {seconds, cap ? atoi(cap) : 0};
  us_autotune_info info;
  us_status st = us_classifier_autotune(p, &limits, labels, n_labels, all, n, print_line, NULL, out,
                                        &info, err);
  if (st == US_OK)
    snprintf(chosen, chosen_len, "%s (validation accuracy %.4f, %d-fold, %d candidates)",
             info.chosen, info.valid_acc, info.folds, info.candidates);
  free(all);
  return st;
}
/* ===== end of the autotune hook ===================================================== */

static void print_json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", (unsigned char)*s);
    else
      putchar(*s);
  }
  putchar('"');
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_suite --train F --valid F --test F [--model PATH] [--seed N] "
          "[--threads N] [--autotune SECONDS] [--set key=value ...]\n");
}

int main(int argc, char **argv) {
  us_blas_reexec_for_kernels(argv); /* the same kernels as the understudy binary */
  const char *train_path = NULL, *valid_path = NULL, *test_path = NULL, *model_path = NULL;
  double autotune = 0;
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      usage();
      return 2;
    }
    i++;
    if (strcmp(a, "--train") == 0)
      train_path = v;
    else if (strcmp(a, "--valid") == 0)
      valid_path = v;
    else if (strcmp(a, "--test") == 0)
      test_path = v;
    else if (strcmp(a, "--model") == 0)
      model_path = v;
    else if (strcmp(a, "--seed") == 0)
      p.seed = strtoull(v, NULL, 10);
    else if (strcmp(a, "--threads") == 0)
      p.threads = atoi(v);
    else if (strcmp(a, "--autotune") == 0)
      autotune = atof(v);
    else if (strcmp(a, "--set") == 0 && apply_set(&p, v) == 0)
      continue;
    else {
      usage();
      return 2;
    }
  }
  if (!train_path || !valid_path || !test_path) {
    usage();
    return 2;
  }
  split train = {0}, valid = {0}, test = {0};
  if (load_split(train_path, &train) || load_split(valid_path, &valid) ||
      load_split(test_path, &test))
    return 1;
  us_classifier *m = NULL;
  us_err err;
  char chosen[1024] = "defaults";
  double w0 = us_now(), c0 = us_cpu_time();
  us_status st = autotune > 0
                     ? train_autotune(&p, autotune, &train, &valid, chosen, sizeof chosen, &m, &err)
                     : us_classifier_train(&p, labels, n_labels, train.ex, train.n, valid.ex,
                                           valid.n, NULL, NULL, &m, &err);
  double wall = us_now() - w0, cpu = us_cpu_time() - c0;
  if (st != US_OK) {
    /* a JSON line the harness records as skipped or failed, with the reason */
    printf("{\"tool\":\"understudy\",\"autotune_seconds\":%g,\"error\":", autotune);
    print_json_string(err.msg);
    printf("}\n");
    return 3;
  }
  double valid_us, test_us;
  double valid_acc = evaluate(m, &valid, 0, &valid_us);
  double test_acc = evaluate(m, &test, 20000, &test_us);
  if (model_path && us_classifier_save(m, model_path, &err) != US_OK) {
    fprintf(stderr, "bench_suite: %s\n", err.msg);
    return 1;
  }
  const us_classifier_params *q = us_classifier_get_params(m);
  printf(
      "{\"tool\":\"understudy\",\"n_train\":%zu,\"n_valid\":%zu,\"n_test\":%zu,"
      "\"n_labels\":%d,\"seed\":%llu,\"threads\":%d,\"autotune_seconds\":%g,"
      "\"params\":{\"dim\":%d,\"word_ngrams\":%d,\"minn\":%d,\"maxn\":%d,"
      "\"min_count_ngram\":%d,\"hidden\":%d,\"epochs\":%d,\"lr\":%g,\"label_smoothing\":%g},"
      "\"valid_acc\":%.5f,\"test_acc\":%.5f,\"train_wall_s\":%.3f,\"train_cpu_s\":%.3f,"
      "\"predict_cpu_us\":%.3f,\"param_count\":%lld",
      train.n, valid.n, test.n, n_labels, (unsigned long long)p.seed, p.threads, autotune, q->dim,
      q->word_ngrams, q->minn, q->maxn, q->min_count_ngram, q->n_hidden ? q->hidden[0] : 0,
      q->epochs, q->lr, q->label_smoothing, valid_acc, test_acc, wall, cpu, test_us,
      (long long)us_classifier_param_count(m));
  /* the chosen setting last, escaped: the autotune's description is free text */
  printf(",\"chosen\":");
  print_json_string(chosen);
  printf("}\n");
  us_classifier_free(m);
  split_free(&train);
  split_free(&valid);
  split_free(&test);
  for (int i = 0; i < n_labels; i++) free(labels[i]);
  return 0;
}
