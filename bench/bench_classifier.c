/* Benchmarks the classifier student on a labelled data set with its defaults (or --set
 * overrides, for choosing the defaults by validation accuracy): training wall/CPU time, test
 * accuracy, model size plain and quantised, single-thread prediction throughput and latency.
 * Prints one JSON object. Also exports the exact split in fastText's format (--export DIR) so
 * bench_fasttext.sh gives both tools the same data.
 *
 * usage: bench_classifier (--csv DIR | --snips DIR) [--export DIR] [--model PATH] [--no-test]
 *                         [--repeat N] [--set key=value ...]
 *   --csv DIR     DIR/train.csv and DIR/test.csv with columns text,category (banking77)
 *   --snips DIR   DIR/{train,valid,test}/{seq.in,label}
 *   validation slice: csv: the train rows whose us_hash64(text) % 10 == 0; snips: valid/
 *   --repeat N    prediction timing repeats (median reported; default 3)
 *   --no-test     report validation accuracy only (for choosing defaults)
 *   keys: dim word_ngrams minn maxn buckets min_count min_count_ngram quantize_bits epochs lr
 *         dropout label_smoothing patience threads seed hidden (size of one hidden layer, 0 =
 *         none)
 *   The model is saved (plain, and quantised as PATH.q) in every mode; --no-test reports the
 *   validation accuracy of both and their sizes. */
#include <csv.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/hash.h"
#include "student/blas.h"
#include "student/classifier.h"

typedef struct dataset {
  char **text;
  char **label; /* label strings; mapped to indices later */
  size_t n, cap;
} dataset;

static void push(dataset *d, const char *text, size_t tl, const char *label, size_t ll) {
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 1024;
    d->text = realloc(d->text, d->cap * sizeof *d->text);
    d->label = realloc(d->label, d->cap * sizeof *d->label);
    if (!d->text || !d->label) abort();
  }
  d->text[d->n] = strndup(text, tl);
  d->label[d->n] = strndup(label, ll);
  while (ll && (label[ll - 1] == ' ' || label[ll - 1] == '\r')) d->label[d->n][--ll] = '\0';
  d->n++;
}

typedef struct csv_state {
  dataset *d;
  int field, row;
  char *text;
  size_t text_len;
} csv_state;

static void on_field(void *s, size_t len, void *data) {
  csv_state *c = data;
  if (c->row > 0 && c->field == 0) {
    free(c->text);
    c->text = strndup(s, len);
    c->text_len = len;
  } else if (c->row > 0 && c->field == 1) {
    push(c->d, c->text, c->text_len, s, len);
  }
  c->field++;
}

static void on_row(int ch, void *data) {
  (void)ch;
  csv_state *c = data;
  c->field = 0;
  c->row++;
}

static int load_csv(const char *path, dataset *d) {
  char *buf;
  size_t len;
  us_err err;
  if (us_read_file(path, 0, &buf, &len, &err) != US_OK) {
    fprintf(stderr, "bench_classifier: %s\n", err.msg);
    return -1;
  }
  struct csv_parser p;
  csv_init(&p, CSV_APPEND_NULL);
  csv_state c = {d, 0, 0, NULL, 0};
  csv_parse(&p, buf, len, on_field, on_row, &c);
  csv_fini(&p, on_field, on_row, &c);
  csv_free(&p);
  free(c.text);
  free(buf);
  return 0;
}

static int load_lines(const char *texts, const char *labels, dataset *d) {
  FILE *ft = fopen(texts, "r"), *fl = fopen(labels, "r");
  if (!ft || !fl) {
    fprintf(stderr, "bench_classifier: cannot open %s or %s\n", texts, labels);
    return -1;
  }
  char *t = NULL, *l = NULL;
  size_t tc = 0, lc = 0;
  ssize_t tn, ln;
  while ((tn = getline(&t, &tc, ft)) > 0 && (ln = getline(&l, &lc, fl)) > 0) {
    while (tn && (t[tn - 1] == '\n' || t[tn - 1] == '\r')) tn--;
    while (ln && (l[ln - 1] == '\n' || l[ln - 1] == '\r')) ln--;
    push(d, t, (size_t)tn, l, (size_t)ln);
  }
  free(t);
  free(l);
  fclose(ft);
  fclose(fl);
  return 0;
}

/* ---- labels ---- */

static char *labels[4096];
static int n_labels;

static int label_index(const char *s) {
  for (int i = 0; i < n_labels; i++)
    if (strcmp(labels[i], s) == 0) return i;
  if (n_labels == 4096) abort();
  labels[n_labels] = strdup(s);
  return n_labels++;
}

static us_example *examples(const dataset *d, size_t *n) {
  us_example *ex = calloc(d->n + 1, sizeof *ex);
  for (size_t i = 0; i < d->n; i++)
    ex[i] = (us_example){d->text[i], label_index(d->label[i]), NULL};
  *n = d->n;
  return ex;
}

/* fastText's tutorial preprocessing: punctuation split off, lower case. */
static void write_fasttext(const char *path, const dataset *d) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  for (size_t i = 0; i < d->n; i++) {
    fprintf(f, "__label__%s ", d->label[i]);
    for (const char *s = d->text[i]; *s; s++) {
      char c = *s;
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
      if (strchr(".!?,'/()\"", c))
        fprintf(f, " %c ", c);
      else
        fputc(c >= 'A' && c <= 'Z' ? c + 32 : c, f);
    }
    fputc('\n', f);
  }
  fclose(f);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static long file_size(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fclose(f);
  return n;
}

static void on_epoch(void *user, const us_epoch_info *e) {
  (void)user;
  fprintf(stderr, "epoch %2d loss %.4f valid loss %.4f acc %.4f lr %.4f %.2fs\n", e->epoch,
          e->train_loss, e->valid_loss, e->valid_acc, e->lr, e->seconds);
}

static int apply_set(us_classifier_params *p, const char *kv) {
  char key[64];
  const char *eq = strchr(kv, '=');
  if (!eq || eq - kv >= (long)sizeof key) return -1;
  memcpy(key, kv, (size_t)(eq - kv));
  key[eq - kv] = '\0';
  double v = atof(eq + 1);
#define INT_KEY(k) else if (strcmp(key, #k) == 0) p->k = (int)v;
#define DBL_KEY(k) else if (strcmp(key, #k) == 0) p->k = v;
  if (strcmp(key, "hidden") == 0) {
    p->n_hidden = v > 0;
    p->hidden[0] = (int)v;
  }
  /* clang-format off */
  INT_KEY(dim) INT_KEY(word_ngrams) INT_KEY(minn) INT_KEY(maxn) INT_KEY(buckets)
  INT_KEY(min_count) INT_KEY(min_count_ngram) INT_KEY(quantize_bits) INT_KEY(epochs)
  INT_KEY(patience) INT_KEY(threads) DBL_KEY(lr) DBL_KEY(dropout) DBL_KEY(label_smoothing)
  else if (strcmp(key, "seed") == 0) p->seed = (uint64_t)v;
  /* clang-format on */
  else return -1;
  return 0;
}

static double accuracy(const us_classifier *m, const us_example *ex, size_t n) {
  us_classifier_scratch *s = us_classifier_scratch_new(m);
  float *probs = malloc((size_t)us_classifier_n_labels(m) * sizeof *probs);
  size_t right = 0;
  us_err err;
  for (size_t i = 0; i < n; i++) {
    us_classifier_predict_with(m, s, ex[i].text, probs, &err);
    int best = 0;
    for (int k = 1; k < us_classifier_n_labels(m); k++)
      if (probs[k] > probs[best]) best = k;
    right += best == ex[i].label;
  }
  free(probs);
  us_classifier_scratch_free(s);
  return n ? (double)right / (double)n : 0;
}

/* Single-thread prediction over the test texts, repeat times; medians of throughput and p99. */
static void latency(const us_classifier *m, const us_example *ex, size_t n, int repeat,
                    double *per_sec, double *p50_us, double *p99_us) {
  us_classifier_scratch *s = us_classifier_scratch_new(m);
  float *probs = malloc((size_t)us_classifier_n_labels(m) * sizeof *probs);
  double *t = malloc(n * sizeof *t), rates[32], p50[32], p99[32];
  us_err err;
  if (repeat > 32) repeat = 32;
  for (int r = 0; r < repeat; r++) {
    double start = us_now();
    for (size_t i = 0; i < n; i++) {
      double t0 = us_now();
      us_classifier_predict_with(m, s, ex[i].text, probs, &err);
      t[i] = us_now() - t0;
    }
    rates[r] = (double)n / (us_now() - start);
    qsort(t, n, sizeof *t, cmp_double);
    p50[r] = t[n / 2] * 1e6;
    p99[r] = t[(size_t)((double)(n - 1) * 0.99)] * 1e6;
  }
  qsort(rates, (size_t)repeat, sizeof *rates, cmp_double);
  qsort(p50, (size_t)repeat, sizeof *p50, cmp_double);
  qsort(p99, (size_t)repeat, sizeof *p99, cmp_double);
  *per_sec = rates[repeat / 2];
  *p50_us = p50[repeat / 2];
  *p99_us = p99[repeat / 2];
  free(t);
  free(probs);
  us_classifier_scratch_free(s);
}

int main(int argc, char **argv) {
  us_blas_reexec_for_kernels(argv); /* the same kernels as the understudy binary */
  const char *csv = NULL, *snips = NULL, *export_dir = NULL, *model_path = "bench_student.bin";
  bool no_test = false;
  int repeat = 3;
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--csv") == 0 && i + 1 < argc)
      csv = argv[++i];
    else if (strcmp(argv[i], "--snips") == 0 && i + 1 < argc)
      snips = argv[++i];
    else if (strcmp(argv[i], "--export") == 0 && i + 1 < argc)
      export_dir = argv[++i];
    else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
      model_path = argv[++i];
    else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
      repeat = atoi(argv[++i]);
    else if (strcmp(argv[i], "--no-test") == 0)
      no_test = true;
    else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
      if (apply_set(&p, argv[++i]) != 0) {
        fprintf(stderr, "bench_classifier: bad --set %s\n", argv[i]);
        return 2;
      }
    } else {
      fprintf(stderr,
              "usage: bench_classifier (--csv DIR | --snips DIR) [--export DIR] "
              "[--model PATH] [--no-test] [--repeat N] [--set key=value ...]\n");
      return 2;
    }
  }
  if (repeat < 1) repeat = 1;
  dataset all = {0}, train = {0}, valid = {0}, test = {0};
  char path[4096], path2[4096];
  if (csv) {
    snprintf(path, sizeof path, "%s/train.csv", csv);
    if (load_csv(path, &all)) return 1;
    snprintf(path, sizeof path, "%s/test.csv", csv);
    if (load_csv(path, &test)) return 1;
    for (size_t i = 0; i < all.n; i++) {
      bool is_valid = us_hash64(all.text[i], strlen(all.text[i]), 0) % 10 == 0;
      push(is_valid ? &valid : &train, all.text[i], strlen(all.text[i]), all.label[i],
           strlen(all.label[i]));
    }
  } else if (snips) {
    const char *parts[3] = {"train", "valid", "test"};
    dataset *sets[3] = {&train, &valid, &test};
    for (int k = 0; k < 3; k++) {
      snprintf(path, sizeof path, "%s/%s/seq.in", snips, parts[k]);
      snprintf(path2, sizeof path2, "%s/%s/label", snips, parts[k]);
      if (load_lines(path, path2, sets[k])) return 1;
    }
  } else {
    fprintf(stderr, "bench_classifier: give --csv DIR or --snips DIR\n");
    return 2;
  }
  if (export_dir) {
    snprintf(path, sizeof path, "%s/train.txt", export_dir);
    write_fasttext(path, &train);
    snprintf(path, sizeof path, "%s/valid.txt", export_dir);
    write_fasttext(path, &valid);
    snprintf(path, sizeof path, "%s/test.txt", export_dir);
    write_fasttext(path, &test);
  }
  size_t n_train, n_valid, n_test;
  us_example *tr = examples(&train, &n_train), *va = examples(&valid, &n_valid),
             *te = examples(&test, &n_test);
  us_classifier *m = NULL;
  us_err err;
  double w0 = us_now(), c0 = us_cpu_time();
  if (us_classifier_train(&p, labels, n_labels, tr, n_train, va, n_valid, on_epoch, NULL, &m,
                          &err) != US_OK) {
    fprintf(stderr, "bench_classifier: %s\n", err.msg);
    return 1;
  }
  double train_wall = us_now() - w0, train_cpu = us_cpu_time() - c0;
  double valid_acc = accuracy(m, va, n_valid);
  printf(
      "{\"tool\":\"understudy\",\"n_train\":%zu,\"n_valid\":%zu,\"n_test\":%zu,"
      "\"n_labels\":%d,\"params\":{\"dim\":%d,\"word_ngrams\":%d,\"minn\":%d,\"maxn\":%d,"
      "\"buckets\":%d,\"min_count\":%d,\"min_count_ngram\":%d,\"quantize_bits\":%d,"
      "\"hidden\":%d,\"dropout\":%g,\"epochs\":%d,\"lr\":%g,"
      "\"label_smoothing\":%g,\"threads\":%d},\"valid_acc\":%.5f,\"train_wall_s\":%.3f,"
      "\"train_cpu_s\":%.3f,\"param_count\":%lld",
      n_train, n_valid, n_test, n_labels, p.dim, p.word_ngrams, p.minn, p.maxn, p.buckets,
      p.min_count, p.min_count_ngram, p.quantize_bits, p.n_hidden ? p.hidden[0] : 0, p.dropout,
      p.epochs, p.lr, p.label_smoothing, p.threads, valid_acc, train_wall, train_cpu,
      (long long)us_classifier_param_count(m));
  double acc = no_test ? 0 : accuracy(m, te, n_test);
  if (us_classifier_save(m, model_path, &err) != US_OK) {
    fprintf(stderr, "bench_classifier: %s\n", err.msg);
    return 1;
  }
  long plain = file_size(model_path);
  us_classifier_quantize(m);
  snprintf(path, sizeof path, "%s.q", model_path);
  if (us_classifier_save(m, path, &err) != US_OK) {
    fprintf(stderr, "bench_classifier: %s\n", err.msg);
    return 1;
  }
  us_classifier *q = NULL;
  if (us_classifier_load(path, &q, &err) != US_OK) {
    fprintf(stderr, "bench_classifier: %s\n", err.msg);
    return 1;
  }
  printf(",\"valid_acc_quantized\":%.5f,\"model_bytes\":%ld,\"model_bytes_quantized\":%ld",
         accuracy(q, va, n_valid), plain, file_size(path));
  if (!no_test) {
    double qacc = accuracy(q, te, n_test), per_sec, p50, p99;
    latency(q, te, n_test, repeat, &per_sec, &p50, &p99);
    printf(
        ",\"test_acc\":%.5f,\"test_acc_quantized\":%.5f,\"predict_per_sec\":%.1f,"
        "\"predict_p50_us\":%.2f,\"predict_p99_us\":%.2f",
        acc, qacc, per_sec, p50, p99);
  }
  us_classifier_free(q);
  printf("}\n");
  us_classifier_free(m);
  return 0;
}
