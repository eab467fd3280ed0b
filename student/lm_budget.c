/* Sizes, time budget and early stopping for the language model: the table the presets and "auto"
 * choose from, the step schedule that ends on time, and the early-stopping rule. Pure functions
 * of their inputs (the clock is passed in), so tests drive them with made-up timings. */
#include <math.h>
#include <string.h>

#include "student/lm_int.h"

/* Throughput: `bench_lm train --layers L --dim D --heads H --context 128 --batch 12 --vocab
 * 1024 --threads 1`, tokens per CPU second of the training step (docs/lm.md, "Sizes"). The
 * learning rates: nano's was tuned on SNIPS (docs/lm.md); micro's kept after a short SNIPS sweep
 * (5e-4, 1e-3, 2e-3 at 100 steps; bench/RESULTS.md); mini's beat twice the rate at 40 steps
 * (3e-4 not tried). */
static const us__lm_size SIZES[] = {
    {"nano", 2, 128, 4, 128, 1536, 3e-3, 7970.0},
    {"micro", 4, 256, 4, 256, 4096, 1e-3, 1946.0},
    {"mini", 6, 384, 6, 256, 4096, 6e-4, 649.0},
};

const us__lm_size *us__lm_sizes(size_t *n) {
  *n = sizeof SIZES / sizeof SIZES[0];
  return SIZES;
}

const us__lm_size *us__lm_size_named(const char *name) {
  for (size_t i = 0; name && i < sizeof SIZES / sizeof SIZES[0]; i++)
    if (strcmp(name, SIZES[i].name) == 0) return &SIZES[i];
  return NULL;
}

int us__lm_auto_vocab(double text_bytes) {
  if (text_bytes < 4e6) return 1024;
  return text_bytes < 32e6 ? 2048 : 4096;
}

int us__lm_auto_context(int longest) {
  int t = (longest + 63) / 64 * 64;
  if (t < 64) t = 64;
  return t > 512 ? 512 : t;
}

const us__lm_size *us__lm_auto_size(const us__lm_data_stats *d, double budget_sec, long steps,
                                    int threads) {
  size_t n;
  const us__lm_size *sizes = us__lm_sizes(&n);
  return us__lm_auto_size_from(sizes, n, d, budget_sec, steps, threads);
}

const us__lm_size *us__lm_auto_size_from(const us__lm_size *sizes, size_t n,
                                         const us__lm_data_stats *d, double budget_sec, long steps,
                                         int threads) {
  double cores = threads >= 2 ? 2.0 : 1.0;
  for (size_t i = n; i-- > 1;) {
    double tokens = budget_sec > 0 ? sizes[i].tokens_per_cpu_sec * cores * budget_sec
                                   : (double)steps * sizes[i].tokens_per_step;
    if (d->tokens > 0 && tokens >= US_LM_AUTO_MIN_EPOCHS * d->tokens) return &sizes[i];
  }
  return &sizes[0];
}

int us__lm_size_batch(const us__lm_size *size, int context) {
  int b = size->tokens_per_step / (context > 0 ? context : 1);
  return b < 1 ? 1 : b;
}

void us__lm_trial_plan_make(const us__lm_size *sizes, size_t n, const us__lm_size *pick,
                            int context, double budget_sec, int threads, long warmup_steps,
                            us__lm_trial_plan *plan) {
  memset(plan, 0, sizeof *plan);
  size_t i = (size_t)(pick - sizes);
  if (n < 2 || i >= n || !(budget_sec > 0)) return;
  plan->size[0] = pick;
  plan->size[1] = i + 1 < n ? &sizes[i + 1] : &sizes[i - 1];
  plan->seconds = US_LM_TRIAL_SHARE * budget_sec / 2;
  double cores = threads >= 2 ? 2.0 : 1.0, slowest = INFINITY;
  plan->run = true;
  for (int k = 0; k < 2; k++) {
    const us__lm_size *s = plan->size[k];
    double tokens = plan->seconds * s->tokens_per_cpu_sec * cores;
    double steps = floor(tokens / ((double)us__lm_size_batch(s, context) * context));
    plan->steps[k] = steps > 1e9 ? 1000000000L : (long)steps;
    plan->warmup[k] = plan->steps[k] / 5 < warmup_steps ? plan->steps[k] / 5 : warmup_steps;
    if (plan->steps[k] < US_LM_TRIAL_MIN_STEPS) plan->run = false;
    if (s->tokens_per_cpu_sec < slowest) slowest = s->tokens_per_cpu_sec;
  }
  /* a forward pass costs about a third of a training step's forward and backward */
  plan->eval_tokens = US_LM_TRIAL_EVAL_SHARE * plan->seconds * slowest * cores * 3;
}

/* ---- the schedule ---- */

/* Steps timed before the first plan: after two warm-up steps (caches, page faults, OpenBLAS
 * buffers), at least one step and 2 seconds, or 20 steps, whichever comes first. */
#define WARM_STEPS 2
#define WINDOW_STEPS 20
#define WINDOW_SEC 2.0
/* Before the first plan the cosine runs as if the run were this long: the first steps sit in
 * the warmup or right after it, where the rate is at its peak either way. */
#define PROVISIONAL_STEPS 1000000000L

long us__lm_plan_steps(long done, double remaining_sec, double sec_per_step, double sec_per_eval,
                       long evals_left) {
  if (!(sec_per_step > 0)) return done;
  double left = remaining_sec - (double)evals_left * (sec_per_eval > 0 ? sec_per_eval : 0);
  double more = left > 0 ? floor(left / sec_per_step) : 0;
  if (more > 1e9 - (double)done) more = 1e9 - (double)done;
  return done + (long)more;
}

static long eval_interval(long steps) {
  long every = (steps + US_LM_EVALS_PER_RUN - 1) / US_LM_EVALS_PER_RUN;
  return every < 1 ? 1 : every;
}

void us__lm_schedule_init(us__lm_schedule *s, const us_lm_train_params *p, double now,
                          long resumed_planned, long resumed_warmup, bool validation) {
  memset(s, 0, sizeof *s);
  s->start = now;
  s->window_first = -1;
  s->budget_sec = p->train_minutes * 60.0;
  if (p->steps > 0) {
    s->steps = p->steps;
    s->warmup = p->warmup_steps;
    s->planned = s->fixed = true;
    s->budget_sec = 0;
  } else if (resumed_planned > 0) {
    s->steps = resumed_planned;
    s->warmup = resumed_warmup;
    s->planned = s->fixed = true;
  } else {
    s->steps = PROVISIONAL_STEPS;
    s->warmup = p->warmup_steps;
    s->from_budget = true;
  }
  s->validation = validation;
  if (validation && s->planned) s->eval_every = eval_interval(s->steps);
}

/* Plans the total from the measured rate: what the remaining time allows after the checks. */
static void plan(us__lm_schedule *s, long done, double now) {
  double remaining = s->budget_sec - (now - s->start);
  long evals = 0;
  if (s->validation) {
    /* checks still to come: US_LM_EVALS_PER_RUN over the run, fewer as it advances */
    double share = s->planned && s->steps > 0 ? 1.0 - (double)done / (double)s->steps : 1.0;
    evals = (long)ceil(US_LM_EVALS_PER_RUN * (share > 0 ? share : 0));
  }
  long steps = us__lm_plan_steps(done, remaining, s->sec_per_step, s->sec_per_eval, evals);
  if (!s->planned) {
    /* warmup at most a fifth of the run, so a short budget still decays */
    if (s->warmup > steps / 5) s->warmup = steps / 5 > done ? steps / 5 : done;
    s->eval_every = eval_interval(steps); /* checks with validation, re-plans either way */
  }
  s->steps = steps;
  s->planned = true;
}

/* Re-plans from the rate over every step since the timing window opened, checks excluded. */
static void replan(us__lm_schedule *s, long done, double now) {
  long n = done - s->window_first;
  double dt = now - s->window_start - s->evals_seconds;
  if (n > 0 && dt > 0) s->sec_per_step = dt / (double)n;
  plan(s, done, now);
}

bool us__lm_schedule_after_step(us__lm_schedule *s, long done, double now) {
  if (!s->from_budget || s->fixed) return false;
  if (s->planned) {
    /* without validation checks to re-plan at, re-plan as often as they would have come */
    if (s->validation || done % s->eval_every != 0) return false;
    replan(s, done, now);
    return true;
  }
  if (s->window_first < 0) {
    if (done >= WARM_STEPS) {
      s->window_first = done;
      s->window_start = now;
    }
    return false;
  }
  long n = done - s->window_first;
  double dt = now - s->window_start;
  if (n < 1 || (n < WINDOW_STEPS && dt < WINDOW_SEC)) return false;
  s->sec_per_step = dt / (double)n;
  plan(s, done, now);
  return true;
}

void us__lm_schedule_after_eval(us__lm_schedule *s, long done, double seconds, double now) {
  s->sec_per_eval = seconds;
  if (!s->from_budget || !s->planned || s->fixed) return;
  s->evals_seconds += seconds;
  replan(s, done, now);
}

double us__lm_schedule_lr(const us__lm_schedule *s, const us_lm_train_params *p, long step) {
  if (step < s->warmup) return p->lr * (double)(step + 1) / (double)s->warmup;
  long from = s->decay_from > s->warmup ? s->decay_from : s->warmup;
  double span = (double)(s->steps - from);
  double progress = step <= from ? 0.0 : span > 0 ? (double)(step - from) / span : 1.0;
  if (progress > 1.0) progress = 1.0;
  double min_lr = p->lr * p->min_lr_fraction;
  return min_lr + 0.5 * (p->lr - min_lr) * (1.0 + cos(3.141592653589793 * progress));
}

bool us__lm_schedule_eval_due(const us__lm_schedule *s, long done) {
  if (!s->planned || !s->validation) return false;
  return done >= s->steps || (s->eval_every > 0 && done % s->eval_every == 0);
}

/* ---- early stopping ---- */

void us__lm_early_stop_init(us__lm_early_stop *e, int patience) {
  e->best = INFINITY;
  e->best_step = 0;
  e->bad = 0;
  e->patience = patience;
}

int us__lm_early_stop_update(us__lm_early_stop *e, double loss, long done) {
  if (loss < e->best) {
    e->best = loss;
    e->best_step = done;
    e->bad = 0;
    return 1;
  }
  e->bad++;
  return e->patience > 0 && e->bad >= e->patience ? -1 : 0;
}
