/* Active labelling's rounds and stopping rules (pipeline/active.h); the selection maths is in
 * student/select.c, the record of picks and rounds in cache/active.c. */
#include "pipeline/active.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "distill/request.h"
#include "pipeline/config.h"
#include "pipeline/train.h"
#include "student/classifier.h"
#include "student/lm.h"
#include "student/select.h"
#include "understudy.h"

/* ---- settings ---------------------------------------------------------------------------- */

void us_active_params_defaults(us_active_params *p) {
  memset(p, 0, sizeof *p);
  p->seed_prompts = 0.1;
  p->round_prompts = 0.05;
  p->max_prompts = 1.0;
  p->min_gain = 0.25;
  p->diversity = 0.3;
  p->random_rounds = false;
}

static const us_param active_table[] = {
    US_PARAM(us_active_params, seed_prompts, US_PARAM_DOUBLE, 0, 1e9, US_PARAM_MIN_OPEN,
             "prompts in the first round: up to 1 a fraction of the train pool (at most 1000), "
             "above 1 a count"),
    US_PARAM(us_active_params, round_prompts, US_PARAM_DOUBLE, 0, 1e9, US_PARAM_MIN_OPEN,
             "prompts in every later round: a fraction of the pool or a count"),
    US_PARAM(us_active_params, max_prompts, US_PARAM_DOUBLE, 0, 1e9, US_PARAM_MIN_OPEN,
             "train prompts labelled at most: a fraction of the pool or a count"),
    US_PARAM(us_active_params, min_gain, US_PARAM_DOUBLE, 0, 100, 0,
             "stop when validation agreement gained less than this many points over two rounds"),
    US_PARAM(us_active_params, diversity, US_PARAM_DOUBLE, 0, 1, 0,
             "weight of distance to this round's other picks against uncertainty"),
    US_PARAM(us_active_params, random_rounds, US_PARAM_BOOL, 0, 1, 0,
             "pick later rounds in a fixed pseudo-random order instead (the baseline)"),
};

const us_param *us_active_param_table(size_t *n) {
  *n = sizeof active_table / sizeof active_table[0];
  return active_table;
}

static us_status check_count(const char *field, double v, us_err *err) {
  if (v > 1 && v != floor(v))
    return us_err_set(err, US_ERR_CONFIG,
                      "%s: expected a fraction of the pool (at most 1) or a whole count, found %g",
                      field, v);
  return US_OK;
}

us_status us_active_params_check(const us_active_params *p, us_err *err) {
  size_t n;
  const us_param *t = us_active_param_table(&n);
  us_status st = us_params_check(t, n, p, err);
  if (st) return st;
  if (p->strategy && strcmp(p->strategy, "all") != 0 && strcmp(p->strategy, "active") != 0)
    return us_err_set(err, US_ERR_CONFIG, "strategy: expected \"all\" or \"active\", found \"%s\"",
                      p->strategy);
  if ((st = check_count("seed_prompts", p->seed_prompts, err))) return st;
  if ((st = check_count("round_prompts", p->round_prompts, err))) return st;
  return check_count("max_prompts", p->max_prompts, err);
}

bool us_active_enabled(const us_active_params *p) {
  return p->strategy && strcmp(p->strategy, "active") == 0;
}

int64_t us_active_count(double value, int64_t n, int64_t cap) {
  int64_t k;
  if (value <= 1) {
    k = (int64_t)ceil(value * (double)n - 1e-9);
    if (cap > 0 && k > cap) k = cap;
  } else {
    k = (int64_t)value;
  }
  if (k > n) k = n;
  return k < 0 ? 0 : k;
}

const char *us_active_stop_reason(const us_active_params *p, const us_active_round *rounds,
                                  size_t n, int64_t max_labels, int64_t pool) {
  if (n == 0) return NULL;
  const us_active_round *last = &rounds[n - 1];
  if (last->n_labelled >= max_labels && max_labels < pool) return "max_prompts";
  if (last->n_labelled >= pool) return "pool";
  if (p->min_gain > 0 && n >= 3 && last->valid_back >= 0) {
    const us_active_round *back = &rounds[n - 3];
    double gain = 100 * (last->valid_back - back->valid_agreement);
    if (gain < p->min_gain) return "min_gain";
  }
  return NULL;
}

/* ---- the stage --------------------------------------------------------------------------- */

typedef struct stage {
  const us_config *c;
  us_cache *cache;
  const us_active_options *o;
  us_prompt *pool; /* the train split */
  size_t n_pool;
  int *round_of;       /* per pool row: the round that picked it, 0 if none */
  int64_t *picked_ids; /* sorted, for the teacher's filter */
  size_t n_picked;
  int last_round;
} stage;

static int cmp_id(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static bool include_prompt(void *user, const us_prompt *p) {
  const stage *s = user;
  if (p->split == US_SPLIT_TEST) return true;
  return bsearch(&p->id, s->picked_ids, s->n_picked, sizeof *s->picked_ids, cmp_id) != NULL;
}

static size_t pool_index(const stage *s, int64_t id) {
  size_t lo = 0, hi = s->n_pool; /* the pool is ordered by id */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->pool[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < s->n_pool && s->pool[lo].id == id ? lo : s->n_pool;
}

/* Reads the picks from the workspace into round_of, picked_ids and last_round. */
static us_status load_picks(stage *s, us_err *err) {
  int64_t *ids = NULL;
  int *rounds = NULL;
  size_t n = 0;
  us_status st = us_cache_active_picks_list(s->cache, &ids, &rounds, &n, err);
  if (st) return st;
  free(s->picked_ids);
  s->picked_ids = ids;
  s->n_picked = n;
  s->last_round = 0;
  memset(s->round_of, 0, s->n_pool * sizeof *s->round_of);
  for (size_t i = 0; i < n; i++) {
    size_t at = pool_index(s, ids[i]);
    if (at < s->n_pool) s->round_of[at] = rounds[i];
    if (rounds[i] > s->last_round) s->last_round = rounds[i];
  }
  free(rounds);
  if (s->n_picked) qsort(s->picked_ids, s->n_picked, sizeof *s->picked_ids, cmp_id);
  return US_OK;
}

static us_status store_picks(stage *s, int round, const size_t *rows, size_t n, us_err *err) {
  int64_t *ids = malloc((n ? n : 1) * sizeof *ids);
  if (!ids) return us_err_set(err, US_ERR_NOMEM, "out of memory recording %zu picks", n);
  for (size_t i = 0; i < n; i++) ids[i] = s->pool[rows[i]].id;
  us_status st = us_cache_active_picks_add(s->cache, round, ids, n, err);
  free(ids);
  return st ? st : load_picks(s, err);
}

/* The teacher's label index for prompt p, or -1 (no usable answer). */
static us_status teacher_label(const stage *s, const us_prompt *p, int *label, us_err *err) {
  char *body = NULL, key[65];
  *label = -1;
  us_status st =
      us_request_for_prompt(&s->c->task, &s->c->data, &s->c->teacher, p, &body, key, err);
  free(body);
  if (st) return st;
  us_target t;
  bool found = false;
  st = us_cache_target_get(s->cache, key, &t, &found, err);
  if (st || !found) return st;
  if (t.status == US_TARGET_OK && t.label) *label = us_config_label_index(s->c, t.label);
  us_target_free_fields(&t);
  return US_OK;
}

/* The cheap features of the pool, for distances. Caller frees. */
static float *pool_features(const stage *s) {
  float *feat = malloc((s->n_pool ? s->n_pool : 1) * US_ACTIVE_FEATURE_DIM * sizeof *feat);
  const char **texts = malloc((s->n_pool ? s->n_pool : 1) * sizeof *texts);
  if (feat && texts) {
    for (size_t i = 0; i < s->n_pool; i++) texts[i] = s->pool[i].text;
    us_select_features(texts, s->n_pool, US_ACTIVE_FEATURE_DIM, feat);
  } else {
    free(feat);
    feat = NULL;
  }
  free(texts);
  return feat;
}

/* The workspace's running total of cache hits (result "label_totals", which the teacher adds
 * each pass's hits to and the report reads), or -1 when there is none. */
static double cache_hits_total(us_cache *cache) {
  char *json = NULL;
  bool found = false;
  double total = -1;
  if (us_cache_result_get(cache, "label_totals", &json, &found, NULL) == US_OK && found) {
    const char *at = strstr(json, "\"cache_hits\":");
    if (at) total = strtod(at + 13, NULL);
  }
  free(json);
  return total;
}

/* Label the test split and every pick; stats add up. A later pass finds the answers bought by
 * the earlier passes of this call in the cache: those are not cache hits (nothing was saved),
 * so they are taken out of stats->cached and out of the workspace's running total. */
static us_status label_picks(stage *s, us_label_stats *stats, us_err *err) {
  us_label_options lo = *s->o->label;
  lo.include = include_prompt;
  lo.include_user = s;
  us_label_stats one;
  double hits_before = cache_hits_total(s->cache);
  us_status st =
      us_teacher_label(&s->c->task, &s->c->data, &s->c->teacher, s->cache, &lo, &one, err);
  int64_t bought_here = stats->done; /* answered by earlier passes of this call */
  int64_t hits = one.cached > bought_here ? one.cached - bought_here : 0;
  if (bought_here > 0 && !lo.dry_run && one.cached > 0) {
    char buf[64];
    snprintf(buf, sizeof buf, "{\"cache_hits\":%.0f}",
             (hits_before > 0 ? hits_before : 0) + (double)hits);
    us_cache_result_put(s->cache, "label_totals", buf, NULL); /* best effort, as the teacher's */
  }
  stats->total = one.total; /* the last pass covers every pick so far */
  stats->cached = hits;
  stats->done += one.done;
  stats->failed = one.failed;
  stats->unparsed += one.unparsed;
  stats->retries += one.retries;
  stats->left = one.left;
  stats->requests += one.requests;
  stats->spent_usd += one.spent_usd;
  stats->spent_total_usd = one.spent_total_usd;
  stats->elapsed_s += one.elapsed_s;
  stats->cpu_s += one.cpu_s;
  stats->est_prompt_tokens += one.est_prompt_tokens;
  stats->est_completion_tokens_max += one.est_completion_tokens_max;
  stats->est_cost_low_usd += one.est_cost_low_usd;
  stats->est_cost_high_usd += one.est_cost_high_usd;
  return st;
}

/* Agreement counters of one slice. */
typedef struct tally {
  int64_t right, n;
} tally;

static double rate(tally t) {
  return t.n ? (double)t.right / (double)t.n : 0;
}

/* Measures the trained student (classify): agreement on the validation slice of this round and
 * of two rounds back, on the test split, and the uncertainty of every unpicked pool prompt. */
static us_status measure(stage *s, us_active_round *r, double *uncertainty, us_err *err) {
  us_classifier *m = NULL;
  char *path = us_train_model_path(s->c);
  if (!path) return us_err_set(err, US_ERR_NOMEM, "out of memory measuring round %d", r->round);
  us_status st = us_classifier_load(path, &m, err);
  free(path);
  if (st) return st;
  int nl = us_classifier_n_labels(m);
  float *probs = malloc((size_t)(nl > 0 ? nl : 1) * sizeof *probs);
  us_classifier_scratch *scratch = us_classifier_scratch_new(m);
  us_prompt *test = NULL;
  size_t n_test = 0;
  tally valid = {0}, back = {0}, on_test = {0};
  if (!probs || !scratch) st = us_err_set(err, US_ERR_NOMEM, "out of memory measuring");
  for (size_t i = 0; i < s->n_pool && !st; i++) {
    const us_prompt *p = &s->pool[i];
    int picked = s->round_of[i];
    bool in_valid = picked && us_train_is_validation(p->hash, s->c->student.classifier.seed,
                                                     s->c->student.validation_fraction);
    if (picked && !in_valid) continue;
    st = us_classifier_predict_with(m, scratch, p->text, probs, err);
    if (st) break;
    if (!picked) {
      uncertainty[i] = us_select_margin(probs, nl);
      continue;
    }
    int want = -1;
    st = teacher_label(s, p, &want, err);
    if (st || want < 0) continue;
    int got = 0;
    for (int k = 1; k < nl; k++)
      if (probs[k] > probs[got]) got = k;
    valid.n++;
    valid.right += got == want;
    if (picked <= r->round - 2) {
      back.n++;
      back.right += got == want;
    }
  }
  if (!st) st = us_cache_prompts_list(s->cache, US_SPLIT_TEST, &test, &n_test, err);
  for (size_t i = 0; i < n_test && !st; i++) {
    int want = -1;
    st = teacher_label(s, &test[i], &want, err);
    if (st || want < 0) continue;
    st = us_classifier_predict_with(m, scratch, test[i].text, probs, err);
    if (st) break;
    int got = 0;
    for (int k = 1; k < nl; k++)
      if (probs[k] > probs[got]) got = k;
    on_test.n++;
    on_test.right += got == want;
  }
  r->n_valid = valid.n;
  r->valid_agreement = rate(valid);
  r->valid_back = r->round > 2 && back.n > 0 ? rate(back) : -1;
  r->test_agreement = rate(on_test);
  us_prompts_free(test, n_test);
  us_classifier_scratch_free(scratch);
  free(probs);
  us_classifier_free(m);
  return st;
}

/* A fixed pseudo-random "uncertainty" (the random-order baseline): the prompt's hash. */
static double random_score(const us_prompt *p) {
  return us_hash_fraction(p->hash, strlen(p->hash), 0x72616e646f6dull /* "random" */);
}

/* Generating the answer to every unpicked prompt would cost more than the round; this many per
 * prompt to pick are scored, the first in the fixed pseudo-random order. */
#define GENERATE_SCORED_PER_PICK 4
#define GENERATE_SCORE_TOKENS 32

typedef struct scored {
  size_t row;
  double order;
} scored;

static int by_order(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->order != y->order) return x->order < y->order ? -1 : 1;
  return x->row < y->row ? -1 : x->row > y->row;
}

/* Task generate: the student's uncertainty about an unpicked prompt is 1 - exp(mean token
 * log-prob) of its own greedy answer; only k * GENERATE_SCORED_PER_PICK prompts are scored (the
 * rest get -1, never picked). No agreement is measured (valid_back -1: the gain rule is off). */
static us_status measure_generate(stage *s, us_active_round *r, int64_t k, double *uncertainty,
                                  us_err *err) {
  r->valid_back = -1;
  for (size_t i = 0; i < s->n_pool; i++) uncertainty[i] = -1;
  if (s->c->label.random_rounds || k <= 0) return US_OK;
  char *path = us_train_model_path(s->c);
  scored *order = malloc((s->n_pool ? s->n_pool : 1) * sizeof *order);
  us_lm *lm = NULL;
  us_status st = !path || !order ? us_err_set(err, US_ERR_NOMEM, "out of memory measuring")
                                 : us_lm_load(path, &lm, err);
  free(path);
  size_t n = 0;
  for (size_t i = 0; i < s->n_pool && !st; i++)
    if (!s->round_of[i]) order[n++] = (scored){i, random_score(&s->pool[i])};
  if (!st) qsort(order, n, sizeof *order, by_order);
  size_t m = (size_t)k * GENERATE_SCORED_PER_PICK;
  if (m > n) m = n;
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  gp.max_tokens = GENERATE_SCORE_TOKENS;
  for (size_t j = 0; j < m && !st; j++) {
    char *answer = NULL;
    double mean_lp = 0;
    const us_prompt *p = &s->pool[order[j].row];
    st = us_lm_generate(lm, p->text, &gp, &answer, &mean_lp, NULL, err);
    free(answer);
    if (!st) uncertainty[order[j].row] = 1 - exp(mean_lp);
  }
  us_lm_free(lm);
  free(order);
  return st;
}

/* Picks round r + 1 from the unpicked pool. */
static us_status pick_next(stage *s, int round, int64_t k, const double *uncertainty,
                           const float *feat, us_err *err) {
  size_t *cand = malloc((s->n_pool ? s->n_pool : 1) * sizeof *cand);
  double *u = malloc((s->n_pool ? s->n_pool : 1) * sizeof *u);
  size_t *out = malloc((size_t)(k > 0 ? k : 1) * sizeof *out);
  us_status st = US_OK;
  if (!cand || !u || !out) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory picking round %d", round + 1);
    goto done;
  }
  size_t n = 0;
  bool random = s->c->label.random_rounds;
  for (size_t i = 0; i < s->n_pool; i++) {
    if (s->round_of[i]) continue;
    if (!random && uncertainty[i] < 0) continue; /* generate: not scored */
    cand[n] = i;
    u[n++] = random ? random_score(&s->pool[i]) : uncertainty[i];
  }
  size_t got = us_select_batch(feat, US_ACTIVE_FEATURE_DIM, cand, u, n, (size_t)k,
                               random ? 0 : s->c->label.diversity, out);
  if (got == 0) {
    st = us_err_set(err, US_ERR_INTERNAL, "active labelling: round %d picked nothing", round + 1);
    goto done;
  }
  st = store_picks(s, round + 1, out, got, err);
done:
  free(cand);
  free(u);
  free(out);
  return st;
}

static const us_active_round *find_round(const us_active_round *rounds, size_t n, int round) {
  const us_active_round *at = NULL;
  for (size_t i = 0; i < n; i++)
    if (rounds[i].round == round) at = &rounds[i];
  return at;
}

us_status us_active_label(const us_config *c, us_cache *cache, const us_active_options *o,
                          us_label_stats *stats, us_err *err) {
  memset(stats, 0, sizeof *stats);
  stage s = {.c = c, .cache = cache, .o = o};
  us_active_round *rounds = NULL;
  size_t n_rounds = 0;
  float *feat = NULL;
  double *uncertainty = NULL;
  us_status st = us_cache_prompts_list(cache, US_SPLIT_TRAIN, &s.pool, &s.n_pool, err);
  if (st) return st;
  s.round_of = calloc(s.n_pool ? s.n_pool : 1, sizeof *s.round_of);
  uncertainty = calloc(s.n_pool ? s.n_pool : 1, sizeof *uncertainty);
  if (!s.round_of || !uncertainty) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory planning active labelling");
    goto done;
  }
  if ((st = load_picks(&s, err))) goto done;
  int64_t pool = (int64_t)s.n_pool;
  int64_t max_labels = us_active_count(c->label.max_prompts, pool, 0);
  if (s.n_pool > 0) {
    feat = pool_features(&s);
    if (!feat) {
      st = us_err_set(err, US_ERR_NOMEM, "out of memory computing features of %zu prompts",
                      s.n_pool);
      goto done;
    }
  }
  if (s.n_picked == 0 && s.n_pool > 0) {
    int64_t k = us_active_count(c->label.seed_prompts, pool, US_ACTIVE_SEED_CAP);
    if (k > max_labels) k = max_labels;
    size_t *rows = malloc((size_t)(k > 0 ? k : 1) * sizeof *rows);
    if (!rows) {
      st = us_err_set(err, US_ERR_NOMEM, "out of memory choosing the seed set");
      goto done;
    }
    size_t got = us_select_coverage(feat, s.n_pool, US_ACTIVE_FEATURE_DIM, NULL, (size_t)k, rows);
    if (o->label->dry_run) { /* estimate the test split and the seed set, record nothing */
      int64_t *ids = malloc((got ? got : 1) * sizeof *ids);
      if (!ids) {
        free(rows);
        st = us_err_set(err, US_ERR_NOMEM, "out of memory choosing the seed set");
        goto done;
      }
      for (size_t i = 0; i < got; i++) ids[i] = s.pool[rows[i]].id;
      qsort(ids, got, sizeof *ids, cmp_id);
      free(s.picked_ids);
      s.picked_ids = ids;
      s.n_picked = got;
      free(rows);
      st = label_picks(&s, stats, err);
      goto done;
    }
    st = store_picks(&s, 1, rows, got, err);
    free(rows);
    if (st) goto done;
  }
  for (;;) {
    st = label_picks(&s, stats, err);
    if (st || o->label->dry_run || s.n_pool == 0) goto done;
    if (o->label->stop && *o->label->stop) {
      st = us_err_set(err, US_ERR_INTERRUPTED, "interrupted in round %d; run again to resume",
                      s.last_round);
      goto done;
    }
    free(rounds);
    rounds = NULL;
    if ((st = us_cache_active_rounds_list(cache, &rounds, &n_rounds, err))) goto done;
    const us_active_round *done_round = find_round(rounds, n_rounds, s.last_round);
    /* stopped before, and the rules still say so (a raised label.max_prompts goes on) */
    if (done_round && done_round->stop[0] &&
        us_active_stop_reason(&c->label, rounds, n_rounds, max_labels, pool))
      goto done;

    us_train_summary ts;
    us_train_options to = {0};
    if (o->train) to = *o->train;
    to.force = false;
    /* a round's model only picks the next prompts: it trains with the settings as given, and the
     * search for the classifier's setting (student.autotune) waits for the train stage after
     * the last round, which then trains again with it */
    us_config round_config = *c;
    round_config.student.classifier.autotune = false;
    if ((st = us_train_stage(&round_config, cache, &to, &ts, err))) goto done;

    us_active_round r = {.round = s.last_round, .n_labelled = (int64_t)s.n_picked};
    us_cache_stats cs;
    if ((st = us_cache_stats_get(cache, &cs, err))) goto done;
    r.spent_usd = cs.spent_usd;
    int64_t next_k = us_active_count(c->label.round_prompts, pool, 0);
    if (next_k > max_labels - (int64_t)s.n_picked) next_k = max_labels - (int64_t)s.n_picked;
    if (c->task.type == US_TASK_CLASSIFY)
      st = measure(&s, &r, uncertainty, err);
    else
      st = measure_generate(&s, &r, next_k, uncertainty, err);
    if (st) goto done;
    /* the stopping rules see every round so far and this one */
    us_active_round *grown = realloc(rounds, (n_rounds + 1) * sizeof *grown);
    if (!grown) {
      st = us_err_set(err, US_ERR_NOMEM, "out of memory recording round %d", r.round);
      goto done;
    }
    rounds = grown;
    size_t n_upto = 0;
    for (size_t i = 0; i < n_rounds; i++)
      if (rounds[i].round < r.round) rounds[n_upto++] = rounds[i];
    rounds[n_upto++] = r;
    n_rounds = n_upto;
    const char *why = us_active_stop_reason(&c->label, rounds, n_rounds, max_labels, pool);
    if (why) snprintf(r.stop, sizeof r.stop, "%s", why);
    if ((st = us_cache_active_round_put(cache, &r, err))) goto done;
    if (o->round_done) o->round_done(o->user, &r);
    if (why) goto done;
    if ((st = pick_next(&s, r.round, next_k, uncertainty, feat, err))) goto done;
  }
done:
  free(rounds);
  free(feat);
  free(uncertainty);
  free(s.round_of);
  free(s.picked_ids);
  us_prompts_free(s.pool, s.n_pool);
  return st;
}
