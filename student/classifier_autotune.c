/* Automatic model selection for the classifier: a coordinate search from the given setting over
 * the choices that matter across data, each candidate scored by a stratified k-fold over the
 * train examples (the test split is never passed in), within a time or training budget; then
 * the final model is trained on all of train with the winner. Each fold keeps its featurised
 * texts (us__feature_cache), so candidates that change only training settings (lr, epochs,
 * smoothing, dim, class weights, a hidden layer) skip tokenising and hashing. Every candidate
 * is scored with and without the naive Bayes term (p.nb) from the same trainings: the term is
 * fitted after the network, so switching it costs no training. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/rng.h"
#include "student/classifier_int.h"

#define SMALL_DATA 10000    /* fewer examples: 5-fold; more: one 10% holdout slice */
#define RARE_LABEL 50       /* a label with fewer examples makes the data imbalanced */
#define AUTO_MIN_SECONDS 30 /* automatic budget: the larger of this and 10 trainings, */
#define AUTO_TRAININGS 10
#define AUTO_MAX_SECONDS 600 /* at most this */
#define FINAL_RUNS 3         /* trainings averaged into the final model of small data */

/* ---- folds ---- */

/* Train and validation examples of each fold: views into one array per fold. */
typedef struct folds {
  int k;
  us_example **tr, **va;     /* (k) */
  size_t *n_tr, *n_va;       /* (k) */
  us__feature_cache **cache; /* (k) each fold's featurised texts, shared by the candidates */
} folds;

static void folds_free(folds *f) {
  for (int i = 0; f->tr && i < f->k; i++) free(f->tr[i]);
  for (int i = 0; f->va && i < f->k; i++) free(f->va[i]);
  for (int i = 0; f->cache && i < f->k; i++) us__feature_cache_free(f->cache[i]);
  free(f->cache);
  free(f->tr);
  free(f->va);
  free(f->n_tr);
  free(f->n_va);
  memset(f, 0, sizeof *f);
}

void us__autotune_stratify(const us_example *ex, size_t n, int n_labels, int parts, uint64_t seed,
                           int *part, size_t *scratch) {
  us_rng rng;
  us_rng_seed(&rng, seed ^ 0x666f6c6473ull /* "folds" */);
  size_t next = 0;
  for (int label = 0; label < n_labels; label++) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (ex[i].label == label) scratch[m++] = i;
    for (size_t i = m; i > 1; i--) { /* Fisher-Yates */
      size_t j = (size_t)us_rng_below(&rng, i), t = scratch[i - 1];
      scratch[i - 1] = scratch[j];
      scratch[j] = t;
    }
    for (size_t i = 0; i < m; i++) part[scratch[i]] = (int)(next++ % (size_t)parts);
  }
}

/* k from the data: 5 folds for small data or a label under RARE_LABEL examples, otherwise one
 * stratified 10% holdout slice (k = 1: part 0 of 10 is the validation slice). */
static int choose_k(const us_example *ex, size_t n, int n_labels, size_t *count) {
  memset(count, 0, (size_t)n_labels * sizeof *count);
  for (size_t i = 0; i < n; i++) count[ex[i].label]++;
  size_t rarest = n;
  for (int k = 0; k < n_labels; k++)
    if (count[k] > 0 && count[k] < rarest) rarest = count[k];
  return n < SMALL_DATA || rarest < RARE_LABEL ? 5 : 1;
}

static us_status folds_make(folds *f, const us_example *ex, size_t n, int n_labels, int k,
                            uint64_t seed, us_err *err) {
  int parts = k == 1 ? 10 : k;
  int *part = malloc(n * sizeof *part);
  size_t *scratch = malloc(n * sizeof *scratch);
  f->k = k;
  f->tr = calloc((size_t)k, sizeof *f->tr);
  f->va = calloc((size_t)k, sizeof *f->va);
  f->n_tr = calloc((size_t)k, sizeof *f->n_tr);
  f->n_va = calloc((size_t)k, sizeof *f->n_va);
  f->cache = calloc((size_t)k, sizeof *f->cache);
  us_status st = US_OK;
  if (!part || !scratch || !f->tr || !f->va || !f->n_tr || !f->n_va || !f->cache) goto nomem;
  us__autotune_stratify(ex, n, n_labels, parts, seed, part, scratch);
  for (int j = 0; j < k; j++) {
    f->tr[j] = malloc(n * sizeof **f->tr);
    f->va[j] = malloc(n * sizeof **f->va);
    f->cache[j] = us__feature_cache_new();
    if (!f->tr[j] || !f->va[j] || !f->cache[j]) goto nomem;
    for (size_t i = 0; i < n; i++) {
      if (part[i] == j)
        f->va[j][f->n_va[j]++] = ex[i];
      else
        f->tr[j][f->n_tr[j]++] = ex[i];
    }
  }
  goto done;
nomem:
  st = us_err_set(err, US_ERR_NOMEM, "out of memory making %d folds of %zu examples", k, n);
done:
  free(part);
  free(scratch);
  return st;
}

/* ---- what the data can tell apart ---- */

static bool ispunct_ascii(unsigned char c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
         (c >= '{' && c <= '~');
}

typedef struct data_facts {
  bool upper, punct, digits, urls; /* some text has one */
  bool imbalanced;                 /* the largest label has 3x the examples of the smallest */
} data_facts;

static bool has_url(const char *s) {
  for (; *s; s++)
    if ((*s == 'h' || *s == 'H' || *s == 'w' || *s == 'W') &&
        (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0 ||
         strncmp(s, "www.", 4) == 0))
      return true;
  return false;
}

static data_facts facts_of(const us_example *ex, size_t n, int n_labels, const size_t *count) {
  data_facts f = {0};
  for (size_t i = 0; i < n; i++) {
    for (const unsigned char *s = (const unsigned char *)ex[i].text; *s; s++) {
      f.upper |= *s >= 'A' && *s <= 'Z';
      f.digits |= *s >= '0' && *s <= '9';
      f.punct |= *s < 128 && *s != '\'' && ispunct_ascii(*s);
    }
    if (!f.urls) f.urls = has_url(ex[i].text);
  }
  size_t lo = n, hi = 0;
  for (int k = 0; k < n_labels; k++) {
    if (count[k] == 0) continue;
    lo = count[k] < lo ? count[k] : lo;
    hi = count[k] > hi ? count[k] : hi;
  }
  f.imbalanced = hi >= 3 * lo;
  return f;
}

/* ---- candidates ---- */

/* The coordinates, in the order they are searched: the ones that change the features the most
 * first (a small budget tries those), then the optimiser, then the model's size and shape. */
enum {
  C_WORD_NGRAMS,
  C_CHAR_NGRAMS,
  C_LOWERCASE,
  C_PUNCTUATION,
  C_DIGITS,
  C_URLS,
  C_LR_EPOCHS,
  C_MIN_COUNT,
  C_SMOOTHING,
  C_DIM,
  C_CLASS_WEIGHT,
  C_HIDDEN,
  N_COORDINATES
};

#define MAX_MOVES 3

/* The alternatives to cur along coordinate c (none equal to cur); returns their count. */
static int moves(int c, const us_classifier_params *cur, const data_facts *f,
                 us_classifier_params out[MAX_MOVES]) {
  int n = 0;
  us_classifier_params q = *cur;
#define ALT(stmt)                                \
  do {                                           \
    q = *cur;                                    \
    stmt;                                        \
    if (memcmp(&q, cur, sizeof q)) out[n++] = q; \
  } while (0)
  switch (c) {
    case C_WORD_NGRAMS: /* unigrams for short texts, trigrams for phrases */
      if (cur->word_ngrams != 1) ALT(q.word_ngrams = 1);
      if (cur->word_ngrams < 3) ALT(q.word_ngrams = 3);
      break;
    case C_CHAR_NGRAMS: /* none (clean, tokenised text), or shorter ones (misspellings, morphology)
                         */
      if (cur->maxn > 0) ALT(q.maxn = 0);
      if (cur->maxn == 0 || cur->minn != 2) ALT((q.minn = 2, q.maxn = 5));
      if (cur->maxn == 0 && cur->minn != 3) ALT((q.minn = 3, q.maxn = 5));
      break;
    case C_LOWERCASE: /* case only where the data has capitals */
      if (f->upper) ALT(q.lowercase = !cur->lowercase);
      break;
    case C_PUNCTUATION:
      if (f->punct) ALT(q.punctuation = !cur->punctuation);
      break;
    case C_DIGITS:
      if (f->digits) ALT(q.fold_digits = !cur->fold_digits);
      break;
    case C_URLS:
      if (f->urls) ALT(q.fold_urls = !cur->fold_urls);
      break;
    case C_LR_EPOCHS: /* a gentler rate, or more passes (early stopping keeps the best) */
      ALT(q.lr = cur->lr / 2);
      if (cur->epochs <= 5000) ALT(q.epochs = cur->epochs * 2);
      break;
    case C_MIN_COUNT: /* every n-gram, or only the frequent ones */
      if (cur->min_count_ngram != 1) ALT(q.min_count_ngram = 1);
      ALT(q.min_count_ngram = cur->min_count_ngram < 5 ? 5 : cur->min_count_ngram * 2);
      break;
    case C_SMOOTHING:
      if (cur->label_smoothing > 0) ALT(q.label_smoothing = 0);
      if (cur->label_smoothing < 0.2) ALT(q.label_smoothing = 0.2);
      break;
    case C_DIM:
      if (cur->dim >= 32) ALT(q.dim = cur->dim / 2);
      if (cur->dim <= 2048) ALT(q.dim = cur->dim * 2);
      break;
    case C_CLASS_WEIGHT: /* only where the labels are imbalanced */
      if (!f->imbalanced) break;
      if (cur->class_weight != 0.5) ALT(q.class_weight = 0.5);
      if (cur->class_weight != 1) ALT(q.class_weight = 1);
      break;
    case C_HIDDEN:
      if (cur->n_hidden > 0)
        ALT((q.n_hidden = 0, q.dropout = 0));
      else
        ALT((q.n_hidden = 1, q.hidden[0] = 256, q.dropout = 0.2));
      break;
  }
#undef ALT
  return n;
}

/* "key=value" for every field of q that differs from base (the config's key names), or
 * "defaults" when none does. */
static void describe(const us_classifier_params *q, const us_classifier_params *base, char *out,
                     size_t cap) {
  size_t len = 0;
  out[0] = '\0';
#define SAY(...)                                                               \
  do {                                                                         \
    if (len < cap) len += (size_t)snprintf(out + len, cap - len, __VA_ARGS__); \
  } while (0)
  if (q->word_ngrams != base->word_ngrams) SAY(" word_ngrams=%d", q->word_ngrams);
  if (q->maxn != base->maxn || (q->maxn > 0 && q->minn != base->minn)) {
    if (q->maxn == 0)
      SAY(" maxn=0");
    else
      SAY(" minn=%d maxn=%d", q->minn, q->maxn);
  }
  if (q->lowercase != base->lowercase) SAY(" lowercase=%s", q->lowercase ? "true" : "false");
  if (q->punctuation != base->punctuation)
    SAY(" punctuation=%s", q->punctuation ? "true" : "false");
  if (q->fold_digits != base->fold_digits)
    SAY(" fold_digits=%s", q->fold_digits ? "true" : "false");
  if (q->fold_urls != base->fold_urls) SAY(" fold_urls=%s", q->fold_urls ? "true" : "false");
  if (q->lr != base->lr) SAY(" lr=%g", q->lr);
  if (q->epochs != base->epochs) SAY(" epochs=%d", q->epochs);
  if (q->min_count_ngram != base->min_count_ngram) SAY(" min_count_ngram=%d", q->min_count_ngram);
  if (q->label_smoothing != base->label_smoothing) SAY(" label_smoothing=%g", q->label_smoothing);
  if (q->dim != base->dim) SAY(" dim=%d", q->dim);
  if (q->class_weight != base->class_weight) SAY(" class_weight=%g", q->class_weight);
  if (q->n_hidden != base->n_hidden || memcmp(q->hidden, base->hidden, sizeof q->hidden)) {
    SAY(" hidden=[");
    for (int i = 0; i < q->n_hidden; i++) SAY(i ? ",%d" : "%d", q->hidden[i]);
    SAY("]");
  }
  if (q->dropout != base->dropout) SAY(" dropout=%g", q->dropout);
  if (q->nb != base->nb) SAY(" nb=%s", q->nb ? "true" : "false");
#undef SAY
  if (!out[0])
    snprintf(out, cap, "defaults");
  else
    memmove(out, out + 1, strlen(out)); /* the leading space */
}

/* ---- scoring ---- */

/* A side of a candidate: the setting without or with the naive Bayes term (p.nb). One set of
 * trainings scores both (us__train_extra.nb_probe), so the term costs the search nothing. */
typedef struct side {
  double acc;       /* validation accuracy over all folds (correct / examples) */
  double mean_beta; /* calibration factor, mean over the folds */
  double mean_nb;   /* the naive Bayes term's weight, mean over the folds (nb side) */
} side;

typedef struct score {
  bool ok;           /* false: the training diverged on some fold, or the candidate was dropped */
  bool dropped;      /* dropped after the first folds: far below the best */
  double acc;        /* the better side's accuracy (for dropping) */
  side plain, nb;    /* without and with the naive Bayes term */
  double mean_epoch; /* best epoch, mean over the folds */
  double seconds;
} score;

/* One fold's training, run on a thread of its own: each fold trains on one thread, so a
 * candidate's score is the same at any thread count. */
typedef struct fold_job {
  const us_classifier_params *q;
  const folds *f;
  char *const *labels;
  int n_labels, fold;
  us__train_extra x;
  us_status st;
  us_err err;
} fold_job;

static void *run_fold(void *arg) {
  fold_job *j = arg;
  us_classifier *m = NULL;
  j->x.cache = j->f->cache[j->fold];
  j->st = us__classifier_train_ex(j->q, j->labels, j->n_labels, j->f->tr[j->fold],
                                  j->f->n_tr[j->fold], j->f->va[j->fold], j->f->n_va[j->fold], NULL,
                                  NULL, &j->x, &m, &j->err);
  us_classifier_free(m);
  return NULL;
}

/* Runs jobs[0..n) with up to `threads` at a time (the calling thread included). */
static void run_folds(fold_job *jobs, int n, int threads) {
  pthread_t tid[8];
  int started = 0;
  for (int i = 1; i < n && started < threads - 1 && started < 8; i++)
    if (pthread_create(&tid[started], NULL, run_fold, &jobs[i]) == 0)
      started++;
    else
      break;
  run_fold(&jobs[0]);
  for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
  for (int i = started + 1; i < n; i++) run_fold(&jobs[i]); /* the ones no thread took */
}

/* Trains q on every fold, the folds on up to q->threads threads (one thread each; with one fold,
 * that fold's training gets the threads). After the first two folds a candidate far below the
 * best so far (2.5 standard errors of those folds' accuracy) is dropped without the others: a
 * clearly bad setting costs two trainings, not k. A diverged training drops the candidate, except
 * the first (the setting the search starts from: its message names the setting to change); any
 * other error stops the search. */
static us_status evaluate(const us_classifier_params *q, const folds *f, char *const *labels,
                          int n_labels, double best_acc, score *sc, int *trainings, us_err *err) {
  double t0 = us_now(), right = 0, right_nb = 0, total = 0, epochs = 0, beta = 0, beta_nb = 0,
         weight_nb = 0;
  memset(sc, 0, sizeof *sc);
  us_classifier_params one = *q;
  if (f->k > 1) one.threads = 1;
  fold_job jobs[16];
  int k = f->k < 16 ? f->k : 16, threads = q->threads;
  for (int j = 0; j < k; j++)
    jobs[j] = (fold_job){
        .q = &one, .f = f, .labels = labels, .n_labels = n_labels, .fold = j, .x.nb_probe = true};
  for (int done = 0; done < k;) {
    int batch = done == 0 && k > 2 ? 2 : k - done; /* the first two folds, then the rest */
    run_folds(jobs + done, batch, f->k > 1 ? threads : 1);
    for (int j = done; j < done + batch; j++) {
      (*trainings)++;
      if (jobs[j].st == US_ERR_CONFIG && best_acc >= 0) { /* diverged: out, the search goes on */
        sc->seconds = us_now() - t0;
        return US_OK;
      }
      if (jobs[j].st != US_OK) {
        *err = jobs[j].err;
        return jobs[j].st;
      }
      right += jobs[j].x.plain_acc * (double)f->n_va[j];
      right_nb += jobs[j].x.nb_acc * (double)f->n_va[j];
      total += (double)f->n_va[j];
      epochs += jobs[j].x.best_epoch;
      beta += jobs[j].x.plain_beta;
      beta_nb += jobs[j].x.nb_beta;
      weight_nb += jobs[j].x.nb_weight_found;
    }
    done += batch;
    double acc = total > 0 ? fmax(right, right_nb) / total : 0;
    double se = sqrt(fmax(best_acc * (1 - best_acc), 1e-4) / fmax(total, 1));
    if (done < k && best_acc >= 0 && acc < best_acc - 2.5 * se) { /* clearly worse: dropped */
      sc->acc = acc;
      sc->dropped = true;
      sc->seconds = us_now() - t0;
      return US_OK;
    }
  }
  sc->ok = true;
  sc->plain = (side){total > 0 ? right / total : 0, beta / k, 0};
  sc->nb = (side){total > 0 ? right_nb / total : 0, beta_nb / k, weight_nb / k};
  sc->acc = fmax(sc->plain.acc, sc->nb.acc);
  sc->mean_epoch = epochs / k;
  sc->seconds = us_now() - t0;
  return US_OK;
}

static void say(us_autotune_fn on_line, void *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(us_autotune_fn on_line, void *user, const char *fmt, ...) {
  if (!on_line) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  on_line(user, line);
}

/* ---- the search ---- */

typedef struct search {
  const us_classifier_params *start;
  const folds *f;
  char *const *labels;
  int n_labels;
  us_autotune_fn on_line;
  void *user;
  double t0, budget; /* seconds; budget < 0: not known until the first candidate */
  int max_trainings, trainings, candidates; /* candidates: settings trained on the folds */
  int scored;                               /* settings scored: two a candidate (nb or not) */
  size_t n_valid;                           /* validation examples over all folds */
  us_classifier_params best;
  score best_score; /* acc: best_side's */
  side best_side;   /* the side of best_score that best is */
} search;

/* True when one more candidate fits: max_trainings counts the folds it trains, the time budget
 * the mean time of the candidates so far, with room left for the final training. */
static bool fits(const search *s, double final_seconds) {
  if (s->max_trainings > 0 && s->trainings + s->f->k > s->max_trainings) return false;
  if (s->candidates == 0 || s->budget < 0) return true;
  double mean = (us_now() - s->t0) / s->candidates;
  return us_now() - s->t0 + mean + final_seconds <= s->budget;
}

/* Weighs one side of a scored candidate against the best so far (first: it is the start). A
 * change must beat the best by a quarter of a standard error of its accuracy: a difference
 * well inside the validation noise keeps the setting we started from. */
static void consider(search *s, const us_classifier_params *q, const score *sc, const side *sd,
                     const char *tag, bool first) {
  char what[256];
  describe(q, s->start, what, sizeof what);
  double b = s->best_score.acc, se = sqrt(b * (1 - b) / (double)s->n_valid);
  bool better = first || sd->acc > b + 0.25 * se;
  s->scored++;
  say(s->on_line, s->user,
      "candidate %d%s: %s  valid acc %.2f%% (%d fold%s, best epoch %.1f)%s  %.1fs", s->candidates,
      tag, what, 100 * sd->acc, s->f->k, s->f->k > 1 ? "s" : "", sc->mean_epoch,
      better && !first ? "  better" : "", sc->seconds);
  if (better) {
    s->best = *q;
    s->best_score = *sc;
    s->best_score.acc = sd->acc;
    s->best_side = *sd;
  }
}

/* Scores q on the folds: both q and q with the naive Bayes term switched (the same trainings),
 * q first. */
static us_status try_candidate(search *s, const us_classifier_params *q, us_err *err) {
  score sc;
  us_status st = evaluate(q, s->f, s->labels, s->n_labels, s->candidates ? s->best_score.acc : -1,
                          &sc, &s->trainings, err);
  if (st != US_OK) return st;
  s->candidates++;
  if (!sc.ok) {
    char what[256];
    describe(q, s->start, what, sizeof what);
    say(s->on_line, s->user, "candidate %d: %s  %s  %.1fs", s->candidates, what,
        sc.dropped ? "dropped after two folds (far below the best)" : "diverged", sc.seconds);
    return US_OK;
  }
  us_classifier_params other = *q;
  other.nb = !q->nb;
  consider(s, q, &sc, q->nb ? &sc.nb : &sc.plain, "", s->candidates == 1);
  consider(s, &other, &sc, q->nb ? &sc.plain : &sc.nb, q->nb ? " without nb" : " with nb", false);
  return US_OK;
}

/* The budget in seconds once the first candidate's time is known. */
static double budget_of(double seconds, double candidate_seconds, int k, double n_all,
                        double n_fold) {
  if (seconds > 0) return seconds;
  double one = candidate_seconds / k * (n_fold > 0 ? n_all / n_fold : 1); /* on all the data */
  double auto_budget = fmax(AUTO_MIN_SECONDS, AUTO_TRAININGS * one);
  return fmin(auto_budget, AUTO_MAX_SECONDS);
}

us_status us_classifier_autotune(const us_classifier_params *p, const us_autotune_limits *limits,
                                 char *const *labels, int n_labels, const us_example *train,
                                 size_t n_train, us_autotune_fn on_line, void *user,
                                 us_classifier **out, us_autotune_info *info, us_err *err) {
  *out = NULL;
  us_status st = us_classifier_params_check(p, err);
  if (st != US_OK) {
    us_err_prefix(err, "classifier");
    return st;
  }
  if (n_labels < 1 || !labels) return us_err_set(err, US_ERR_INPUT, "classifier: no labels");
  if (n_train == 0) return us_err_set(err, US_ERR_INPUT, "classifier: the train set is empty");
  for (size_t i = 0; i < n_train; i++)
    if (!train[i].text || train[i].label < 0 || train[i].label >= n_labels)
      return us_err_set(err, US_ERR_INPUT, "train example %zu: no text or label %d not in 0..%d", i,
                        train[i].label, n_labels - 1);
  size_t *count = malloc((size_t)n_labels * sizeof *count);
  if (!count) return us_err_set(err, US_ERR_NOMEM, "out of memory counting labels");
  int k = choose_k(train, n_train, n_labels, count);
  data_facts facts = facts_of(train, n_train, n_labels, count);
  free(count);
  folds f = {0};
  if ((st = folds_make(&f, train, n_train, n_labels, k, p->seed, err)) != US_OK) goto done;

  search s = {.start = p,
              .f = &f,
              .labels = labels,
              .n_labels = n_labels,
              .on_line = on_line,
              .user = user,
              .t0 = us_now(),
              .budget = -1,
              .best = *p};
  s.max_trainings = limits ? limits->max_trainings : 0;
  for (int j = 0; j < k; j++) s.n_valid += f.n_va[j];
  double seconds = limits ? limits->seconds : -1;
  if ((st = try_candidate(&s, p, err)) != US_OK) goto done;
  double n_fold = (double)f.n_tr[0];
  s.budget = budget_of(seconds, us_now() - s.t0, k, (double)n_train, n_fold);
  /* small data (k > 1) depends more on one seed's luck: its final model averages the weights
   * of FINAL_RUNS trainings from the same start (on CR, 5 seeds: spread 1.3 -> 0.8 points) */
  int final_runs = k > 1 ? FINAL_RUNS : 1;
  double final_seconds =
      final_runs * (us_now() - s.t0) / k * (double)n_train / (n_fold > 0 ? n_fold : 1);
  bool out_of_budget = seconds == 0;
  for (int c = 0; c < N_COORDINATES && !out_of_budget; c++) {
    us_classifier_params alt[MAX_MOVES], from = s.best;
    int n = moves(c, &from, &facts, alt);
    for (int i = 0; i < n; i++) {
      if (!fits(&s, final_seconds)) {
        out_of_budget = true;
        break;
      }
      if ((st = try_candidate(&s, &alt[i], err)) != US_OK) goto done;
    }
  }
  if (!s.best_score.ok) {
    st = us_err_set(err, US_ERR_CONFIG,
                    "lr: training diverged with every setting tried; lower student.lr");
    goto done;
  }

  /* the final model: all of train, the epochs early stopping found, the folds' temperature */
  us_classifier_params final = s.best;
  final.epochs = (int)lround(s.best_score.mean_epoch);
  if (final.epochs < 1) final.epochs = 1;
  if (final.nb && !(s.best_side.mean_nb > 0)) final.nb = false; /* a weight of 0: no term */
  us__train_extra x = {.fixed_beta = final.calibrate || final.nb ? s.best_side.mean_beta : 1.0,
                       .fixed_nb_weight = final.nb ? s.best_side.mean_nb : 0,
                       .average_runs = final_runs};
  if ((st = us__classifier_train_ex(&final, labels, n_labels, train, n_train, NULL, 0, NULL, NULL,
                                    &x, out, err)) != US_OK)
    goto done;
  us_autotune_info *t = &(*out)->tune;
  t->autotuned = true;
  t->valid_acc = s.best_side.acc;
  t->folds = k;
  t->candidates = s.scored;
  t->trainings = s.trainings + final_runs;
  t->final_epochs = final.epochs;
  describe(&s.best, p, t->chosen, sizeof t->chosen);
  say(on_line, user,
      "chosen automatically: %s, validation accuracy %.2f%% (%d candidates, %d trainings, "
      "%d fold%s, final %d epochs on %zu examples, %.1fs)",
      t->chosen, 100 * t->valid_acc, t->candidates, t->trainings, k, k > 1 ? "s" : "", final.epochs,
      n_train, us_now() - s.t0);
  if (info) *info = *t;
done:
  folds_free(&f);
  return st;
}

const us_autotune_info *us_classifier_autotune_info(const us_classifier *m) {
  return &m->tune;
}
