/* Tests of the language model's time budget, sizes and early stopping (student/lm_budget.c and
 * their use in us_lm_train): the schedule's arithmetic from a measured throughput (the clock is
 * injected, nothing here depends on real time), explicit steps winning over the budget, early
 * stopping delivering the best check's weights, a resumed run keeping its plan and its best
 * weights, "auto" picking sizes by the documented table, and the size trial between two
 * neighbouring sizes (on injected tiny sizes). */
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

#include "student/lm_int.h"

/* ---- the schedule's arithmetic ---- */

static void plan_should_fit_the_remaining_time_after_the_checks(void **state) {
  (void)state;
  /* 10 done, 100 s left, 0.5 s a step, 5 checks of 2 s: (100 - 10) / 0.5 = 180 more */
  assert_int_equal(us__lm_plan_steps(10, 100.0, 0.5, 2.0, 5), 190);
  /* no time left: no more steps, never fewer than done */
  assert_int_equal(us__lm_plan_steps(10, -5.0, 0.5, 2.0, 5), 10);
  assert_int_equal(us__lm_plan_steps(10, 8.0, 0.5, 2.0, 5), 10);
  /* an unmeasured rate plans nothing */
  assert_int_equal(us__lm_plan_steps(3, 100.0, 0.0, 0.0, 0), 3);
}

static void budget_should_time_the_first_steps_then_plan_to_end_on_time(void **state) {
  (void)state;
  us_lm_train_params p;
  us_lm_train_params_defaults(&p);
  p.train_minutes = 1; /* 60 s */
  p.warmup_steps = 100;
  p.lr = 1e-3;
  us__lm_schedule s;
  us__lm_schedule_init(&s, &p, 0.0, 0, 0, false);
  assert_true(s.from_budget);
  assert_false(s.planned);
  /* 4 s of setup, then one step a second: steps 1 and 2 warm up, then 2 s are timed */
  long done = 0;
  bool planned = false;
  while (!planned && done < 100) {
    done++;
    planned = us__lm_schedule_after_step(&s, done, 4.0 + (double)done);
  }
  assert_true(planned);
  assert_int_equal(done, 4); /* 2 timed steps make the 2 s window */
  assert_float_equal(s.sec_per_step, 1.0, 1e-9);
  /* 60 s budget, 8 s gone: 52 more steps */
  assert_int_equal(s.steps, 56);
  /* warmup cut to a fifth of the run, so the cosine still decays to its floor */
  assert_int_equal(s.warmup, 11);
  assert_float_equal(us__lm_schedule_lr(&s, &p, s.steps - 1), p.lr * p.min_lr_fraction, 1e-5);
  assert_float_equal(us__lm_schedule_lr(&s, &p, s.warmup), p.lr, 1e-9);
  /* running slower from now on: the re-plan (as often as checks would come) ends on time */
  long every = s.eval_every;
  assert_true(every >= 1);
  double now = 4.0 + (double)done;
  while (done % every != 0) {
    done++;
    now += 1.0;
    us__lm_schedule_after_step(&s, done, now);
  }
  for (int i = 0; i < every; i++) {
    done++;
    now += 3.0;
    us__lm_schedule_after_step(&s, done, now);
  }
  long left = s.steps - done;
  assert_true(s.steps < 56);
  assert_true(now + (double)left * s.sec_per_step <= 60.0 + 1e-9);
}

static void explicit_steps_should_win_over_the_budget(void **state) {
  (void)state;
  us_lm_train_params p;
  us_lm_train_params_defaults(&p);
  p.steps = 7;
  p.train_minutes = 0.001;
  us__lm_schedule s;
  us__lm_schedule_init(&s, &p, 0.0, 0, 0, true);
  assert_false(s.from_budget);
  assert_int_equal(s.steps, 7);
  for (long done = 1; done <= 7; done++)
    assert_false(us__lm_schedule_after_step(&s, done, 1000.0 * (double)done));
  us__lm_schedule_after_eval(&s, 7, 50.0, 1e6);
  assert_int_equal(s.steps, 7);
  /* a resumed run keeps the plan stored in its checkpoint */
  p.steps = 0;
  us__lm_schedule_init(&s, &p, 0.0, 1234, 50, false);
  assert_false(s.from_budget);
  assert_int_equal(s.steps, 1234);
  assert_int_equal(s.warmup, 50);
}

static void early_stop_should_keep_the_best_and_stop_after_patience(void **state) {
  (void)state;
  us__lm_early_stop e;
  us__lm_early_stop_init(&e, 2);
  assert_int_equal(us__lm_early_stop_update(&e, 3.0, 10), 1);
  assert_int_equal(us__lm_early_stop_update(&e, 2.0, 20), 1);
  assert_int_equal(us__lm_early_stop_update(&e, 2.5, 30), 0);
  assert_int_equal(us__lm_early_stop_update(&e, 2.0, 40), -1); /* equal is not better */
  assert_int_equal(e.best_step, 20);
  assert_float_equal(e.best, 2.0, 0.0);
  us__lm_early_stop_init(&e, 0); /* patience 0: never stops, still tracks the best */
  for (int i = 0; i < 50; i++) assert_true(us__lm_early_stop_update(&e, 1.0 + i, i + 1) >= 0);
  assert_int_equal(e.best_step, 1);
}

/* ---- "auto" sizes ---- */

static void auto_should_pick_sizes_by_the_table(void **state) {
  (void)state;
  size_t n;
  const us__lm_size *sizes = us__lm_sizes(&n);
  assert_true(n >= 3);
  for (size_t i = 1; i < n; i++) {
    assert_true(sizes[i].tokens_per_cpu_sec < sizes[i - 1].tokens_per_cpu_sec);
    assert_true(sizes[i].dim > sizes[i - 1].dim);
  }
  /* SNIPS (12,859 examples of 40.6 tokens) in 10 minutes on 2 threads: the smallest */
  us__lm_data_stats snips = {12859 * 40.6, 124, 12859};
  assert_string_equal(us__lm_auto_size(&snips, 600, 0, 2)->name, "nano");
  /* each size is chosen exactly when its budgeted tokens cover US_LM_AUTO_MIN_EPOCHS passes */
  for (size_t i = 1; i < n; i++) {
    double fits = sizes[i].tokens_per_cpu_sec * 2 * 600 / US_LM_AUTO_MIN_EPOCHS;
    us__lm_data_stats d = {fits, 60, 1000};
    const us__lm_size *pick = us__lm_auto_size(&d, 600, 0, 2);
    assert_true(pick >= &sizes[i]);
    d.tokens = fits * 1.01;
    assert_true(us__lm_auto_size(&d, 600, 0, 2) < &sizes[i]);
    /* one thread gets half the tokens */
    d.tokens = fits;
    assert_true(us__lm_auto_size(&d, 600, 0, 1) < &sizes[i]);
  }
  /* with steps given, the steps' tokens decide */
  us__lm_data_stats tiny = {1000, 30, 50};
  assert_string_equal(us__lm_auto_size(&tiny, 0, 100000, 2)->name, sizes[n - 1].name);
  assert_string_equal(us__lm_auto_size(&tiny, 0, 1, 2)->name, "nano");
  assert_int_equal(us__lm_auto_context(124), 128);
  assert_int_equal(us__lm_auto_context(5), 64);
  assert_int_equal(us__lm_auto_context(5000), 512);
  assert_int_equal(us__lm_auto_vocab(1e6), 1024);
  assert_int_equal(us__lm_auto_vocab(1e7), 2048);
  assert_int_equal(us__lm_auto_vocab(1e8), 4096);
  assert_non_null(us__lm_size_named("micro"));
  assert_null(us__lm_size_named("auto"));
  assert_null(us__lm_size_named(NULL));
}

static void params_check_should_know_auto_and_zero_sizes(void **state) {
  (void)state;
  us_lm_train_params p;
  us_lm_train_params_defaults(&p);
  us_err err;
  assert_int_equal(us_lm_train_params_check(&p, &err), US_OK);
  assert_int_equal(p.steps, 0);
  assert_true(p.train_minutes > 0);
  p.preset = "auto";
  assert_int_equal(us_lm_train_params_check(&p, &err), US_OK);
  p.preset = "huge";
  assert_int_equal(us_lm_train_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "preset: expected \"auto\""));
  p.preset = NULL;
  p.heads = 3; /* no width of the table splits into 3 even heads */
  assert_int_equal(us_lm_train_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "heads:"));
  p.dim = 96; /* 96 / 3 = 32: fine once the width is given */
  assert_int_equal(us_lm_train_params_check(&p, &err), US_OK);
  p.heads = 0;
  p.dim = 100; /* the presets' heads (4, 6) do not split 100 into even heads */
  assert_int_equal(us_lm_train_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "dim:"));
  p.dim = 4;
  assert_int_equal(us_lm_train_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "dim: expected 0"));
}

/* ---- training with an injected clock ---- */

#define N_EX 24
static char prompts[N_EX][32], answers[N_EX][48];
static us_lm_example examples[N_EX];

static void make_examples(void) {
  for (int i = 0; i < N_EX; i++) {
    snprintf(prompts[i], sizeof prompts[i], "item %d", i * 5 + 1);
    snprintf(answers[i], sizeof answers[i], "{\"n\":\"%d\",\"c\":\"%s\"}", i,
             i % 2 ? "red" : "tan");
    examples[i] = (us_lm_example){prompts[i], answers[i]};
  }
}

static void tiny_params(us_lm_train_params *p) {
  us_lm_train_params_defaults(p);
  p->layers = 1;
  p->dim = 16;
  p->heads = 2;
  p->context = 32;
  p->vocab_size = 280;
  p->batch_size = 2;
  p->warmup_steps = 5;
  p->lr = 1e-2;
  p->threads = 1;
  p->seed = 3;
}

/* The clock advances one second per step (in the progress callback) and never otherwise. */
typedef struct fake {
  double now;
  long steps, plans, checks;
  double last_valid;
} fake;

static double fake_clock(void *user) {
  return ((fake *)user)->now;
}

static int fake_progress(const us_lm_progress *pr, void *user) {
  fake *f = user;
  f->now += 1.0;
  f->steps = pr->step;
  f->plans += pr->planned_now;
  f->checks += pr->validated_now;
  if (pr->validated_now) f->last_valid = pr->valid_loss;
  return 0;
}

static void training_should_end_when_the_budget_is_spent(void **state) {
  (void)state;
  make_examples();
  us_lm_train_params p;
  tiny_params(&p);
  p.train_minutes = 1.0; /* 60 fake seconds: 60 steps */
  fake f = {0};
  us_lm_train_info info;
  p.clock = fake_clock;
  p.clock_user = &f;
  p.progress = fake_progress;
  p.progress_user = &f;
  p.info = &info;
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &lm, &err), US_OK);
  assert_true(info.steps_from_budget);
  assert_float_equal(info.budget_sec, 60.0, 1e-9);
  assert_int_equal(info.steps_done, info.steps_planned);
  assert_int_equal(f.steps, info.steps_done);
  /* the callback's second comes after the step's clock reading: 61 readings end at 60 s */
  assert_true(info.steps_done >= 58 && info.steps_done <= 61);
  assert_true(f.plans >= 1);
  assert_float_equal(info.tokens_per_sec, 2.0 * 32, 1e-6); /* B * T per fake second */
  assert_int_equal(info.best_step, 0);                     /* no validation examples */
  assert_string_equal(info.preset, "custom");
  us_lm_free(lm);
}

static void given_steps_should_win_in_training(void **state) {
  (void)state;
  make_examples();
  us_lm_train_params p;
  tiny_params(&p);
  p.steps = 7;
  p.train_minutes = 0.001; /* far too short: ignored */
  fake f = {0};
  us_lm_train_info info;
  p.clock = fake_clock;
  p.clock_user = &f;
  p.progress = fake_progress;
  p.progress_user = &f;
  p.info = &info;
  us_lm *lm = NULL;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &lm, NULL), US_OK);
  assert_false(info.steps_from_budget);
  assert_int_equal(info.steps_done, 7);
  assert_int_equal(info.steps_planned, 7);
  assert_int_equal(f.steps, 7);
  us_lm_free(lm);
}

typedef struct stopper {
  fake f;
  long stop_at; /* progress returns 1 after this step; 0: never */
  double per_step;
  long planned;
} stopper;

static double stopper_clock(void *user) {
  return ((stopper *)user)->f.now;
}

static int stopper_progress(const us_lm_progress *pr, void *user) {
  stopper *s = user;
  s->f.now += s->per_step;
  s->f.steps = pr->step;
  if (pr->steps > 0) s->planned = pr->steps;
  return s->stop_at > 0 && pr->step == s->stop_at;
}

/* A run interrupted after a checkpoint resumes with the plan the checkpoint holds, even on a
 * machine ten times slower (which would plan far fewer steps afresh). */
static void resumed_run_should_keep_its_plan(void **state) {
  (void)state;
  make_examples();
  char path[] = "/tmp/us_test_lm_budget_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  unlink(path);
  us_lm_train_params p;
  tiny_params(&p);
  p.train_minutes = 1.0;
  p.checkpoint_every = 10;
  p.checkpoint_path = path;
  p.resume = true;
  stopper s = {{0}, 25, 1.0, 0};
  p.clock = stopper_clock;
  p.clock_user = &s;
  p.progress = stopper_progress;
  p.progress_user = &s;
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &lm, &err), US_ERR_INTERRUPTED);
  assert_null(lm);
  long planned = s.planned;
  assert_true(planned >= 58 && planned <= 61);
  stopper again = {{0}, 0, 10.0, 0};
  us_lm_train_info info;
  p.clock_user = &again;
  p.progress_user = &again;
  p.info = &info;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &lm, &err), US_OK);
  assert_false(info.steps_from_budget);
  assert_int_equal(info.steps_planned, planned);
  assert_int_equal(info.steps_done, planned);
  assert_int_equal(again.f.steps, planned); /* resumed from step 20, ran to the stored plan */
  us_lm_free(lm);
  unlink(path);
}

/* Validation answers the training contradicts: the same prompts with the other colour. Once the
 * model has learnt the format its validation loss falls, then rises as it memorises the training
 * colours; the delivered weights must be the best check's, not the last. */
static void early_stopping_should_deliver_the_best_checks_weights(void **state) {
  (void)state;
  make_examples();
  static char wrong[N_EX][48];
  us_lm_example valid[1];
  snprintf(wrong[0], sizeof wrong[0], "{\"n\":\"%d\",\"c\":\"%s\"}", 3, "tan"); /* train: red */
  valid[0] = (us_lm_example){prompts[3], wrong[0]};
  us_lm_train_params p;
  tiny_params(&p);
  p.steps = 400;
  p.patience = 3;
  p.valid = valid;
  p.n_valid = 1;
  fake f = {0};
  us_lm_train_info info;
  p.clock = fake_clock;
  p.clock_user = &f;
  p.progress = fake_progress;
  p.progress_user = &f;
  p.info = &info;
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &lm, &err), US_OK);
  assert_true(info.evaluations >= 4);
  assert_int_equal(info.evaluations, f.checks);
  assert_true(info.best_step > 0);
  assert_true(info.best_step < info.steps_done);
  assert_true(f.last_valid > info.best_valid_loss + 0.05); /* it did rise after the best */
  assert_true(info.stopped_early);
  assert_true(info.steps_done < 400);
  /* the delivered model scores the best loss on the validation answer, not the last */
  double lp = 0;
  assert_int_equal(us_lm_score(lm, valid[0].prompt, valid[0].answer, &lp, NULL, &err), US_OK);
  assert_float_equal(-lp, info.best_valid_loss, 1e-4);
  us_lm_free(lm);
}

/* A run stopped after a checkpoint that follows its best check, then resumed, stops where one
 * run stops and delivers the same weights (the best check's, stored in the checkpoint). */
static void resumed_run_should_deliver_the_same_best_weights(void **state) {
  (void)state;
  make_examples();
  static char wrong[48];
  snprintf(wrong, sizeof wrong, "{\"n\":\"%d\",\"c\":\"%s\"}", 3, "tan"); /* train: red */
  us_lm_example valid[1] = {{prompts[3], wrong}};
  char path[] = "/tmp/us_test_lm_budget_best_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  unlink(path);
  us_lm_train_params p;
  tiny_params(&p);
  p.steps = 400;
  p.patience = 3;
  p.valid = valid;
  p.n_valid = 1;
  stopper s = {{0}, 0, 1.0, 0};
  us_lm_train_info one, resumed;
  p.clock = stopper_clock;
  p.clock_user = &s;
  p.progress = stopper_progress;
  p.progress_user = &s;
  p.info = &one;
  us_lm *a = NULL, *b = NULL;
  us_err err;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &a, &err), US_OK);
  assert_true(one.stopped_early);
  long every = (400 + US_LM_EVALS_PER_RUN - 1) / US_LM_EVALS_PER_RUN;
  assert_true(one.best_step + every < one.steps_done);
  /* stopped one check after the best, right after that check's checkpoint */
  p.checkpoint_every = (int)every;
  p.checkpoint_path = path;
  p.resume = true;
  stopper first = {{0}, one.best_step + every, 1.0, 0};
  p.clock_user = &first;
  p.progress_user = &first;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &b, &err), US_ERR_INTERRUPTED);
  stopper again = {{0}, 0, 1.0, 0};
  p.clock_user = &again;
  p.progress_user = &again;
  p.info = &resumed;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &b, &err), US_OK);
  assert_int_equal(resumed.best_step, one.best_step);
  assert_int_equal(resumed.steps_done, one.steps_done);
  assert_int_equal(resumed.evaluations, one.evaluations);
  assert_true(resumed.stopped_early);
  assert_true(resumed.best_valid_loss == one.best_valid_loss);
  assert_memory_equal(a->block, b->block, a->n_params * sizeof(float));
  us_lm_free(a);
  us_lm_free(b);
  unlink(path);
}

/* ---- the size trial ---- */

static void trial_plan_should_share_the_budget_and_skip_when_too_small(void **state) {
  (void)state;
  size_t n;
  const us__lm_size *sizes = us__lm_sizes(&n);
  us__lm_trial_plan plan;
  /* the smallest tries the next larger, the largest the next smaller */
  us__lm_trial_plan_make(sizes, n, &sizes[0], 128, 3600, 2, 100, &plan);
  assert_ptr_equal(plan.size[0], &sizes[0]);
  assert_ptr_equal(plan.size[1], &sizes[1]);
  assert_true(plan.run);
  assert_float_equal(plan.seconds, US_LM_TRIAL_SHARE * 3600 / 2, 1e-9);
  for (int k = 0; k < 2; k++) {
    const us__lm_size *s = plan.size[k];
    double tokens = plan.seconds * s->tokens_per_cpu_sec * 2;
    long rows = us__lm_size_batch(s, 128);
    assert_int_equal(plan.steps[k], (long)floor(tokens / (double)(rows * 128)));
    assert_true(plan.warmup[k] <= plan.steps[k] / 5 && plan.warmup[k] <= 100);
  }
  assert_true(plan.steps[0] > plan.steps[1]); /* the same time buys the smaller more steps */
  us__lm_trial_plan_make(sizes, n, &sizes[n - 1], 128, 3600, 2, 100, &plan);
  assert_ptr_equal(plan.size[1], &sizes[n - 2]);
  /* a tiny budget: too few steps for the slower size, no trial */
  us__lm_trial_plan_make(sizes, n, &sizes[0], 128, 30, 1, 100, &plan);
  assert_false(plan.run);
  assert_true(plan.steps[1] < US_LM_TRIAL_MIN_STEPS);
  /* one size, or no budget: nothing to try */
  us__lm_trial_plan_make(sizes, 1, &sizes[0], 128, 3600, 2, 100, &plan);
  assert_null(plan.size[0]);
  assert_false(plan.run);
}

/* Two tiny sizes; the budget is the fake clock's. The larger is the table's pick (it alone
 * buys the 30 passes). */
#define N_VALID 4
static char valid_prompts[N_VALID][32], valid_answers[N_VALID][48];
static us_lm_example valid_examples[N_VALID];

static void make_valid(void) {
  for (int i = 0; i < N_VALID; i++) {
    int k = N_EX + i;
    snprintf(valid_prompts[i], sizeof valid_prompts[i], "item %d", k * 5 + 1);
    snprintf(valid_answers[i], sizeof valid_answers[i], "{\"n\":\"%d\",\"c\":\"%s\"}", k,
             k % 2 ? "red" : "tan");
    valid_examples[i] = (us_lm_example){valid_prompts[i], valid_answers[i]};
  }
}

typedef struct trial_log {
  double now;
  double trial_cost; /* fake seconds a trial step takes; 0: 0.1 */
  long trial_steps[3], steps;
  int notes_trial[3], notes_kept, notes_skipped;
} trial_log;

static double trial_clock(void *user) {
  return ((trial_log *)user)->now;
}

/* A trial step costs 0.1 fake second (or trial_cost), a step of the run 1 second. */
static int trial_progress_fn(const us_lm_progress *pr, void *user) {
  trial_log *l = user;
  if (pr->note) {
    if (strstr(pr->note, "size trial 1/2")) l->notes_trial[1]++;
    if (strstr(pr->note, "size trial 2/2")) l->notes_trial[2]++;
    if (strstr(pr->note, "kept ")) l->notes_kept++;
    if (strstr(pr->note, "size trial skipped")) l->notes_skipped++;
    if (pr->trial) return 0; /* a note after a trial, not a step */
  }
  if (pr->trial) {
    l->trial_steps[pr->trial]++;
    l->now += l->trial_cost > 0 ? l->trial_cost : 0.1;
  } else {
    l->steps = pr->step;
    l->now += 1.0;
  }
  return 0;
}

static void trial_params(us_lm_train_params *p, const us__lm_size *sizes, trial_log *l,
                         us_lm_train_info *info) {
  us_lm_train_params_defaults(p);
  p->vocab_size = 280;
  p->warmup_steps = 5;
  p->threads = 1;
  p->seed = 3;
  p->train_minutes = 2; /* 120 fake seconds: two trials of 9 s at the table's rates */
  p->sizes = sizes;
  p->n_sizes = 2;
  p->valid = valid_examples;
  p->n_valid = N_VALID;
  p->clock = trial_clock;
  p->clock_user = l;
  p->progress = trial_progress_fn;
  p->progress_user = l;
  p->info = info;
}

/* The validation loss of a model over the validation answers, weighted by their tokens (what
 * the trainer computes). */
static double valid_loss_of(const us_lm *lm) {
  double sum = 0, tokens = 0;
  for (int i = 0; i < N_VALID; i++) {
    double lp = 0;
    int n = 0;
    assert_int_equal(
        us_lm_score(lm, valid_examples[i].prompt, valid_examples[i].answer, &lp, &n, NULL), US_OK);
    sum += -lp * n;
    tokens += n;
  }
  return sum / tokens;
}

/* winner_rate: the size that should win learns at 1e-2, the other at 1e-6 (it learns nothing). */
static void check_trial(int pick_wins) {
  make_examples();
  make_valid();
  double good = 1e-2, bad = 1e-6;
  us__lm_size sizes[2] = {
      {"tinyA", 1, 16, 2, 64, 128, pick_wins ? bad : good, 2000.0},
      {"tinyB", 1, 32, 2, 64, 128, pick_wins ? good : bad, 1000.0},
  };
  us_lm_train_params p;
  trial_log l;
  us_lm_train_info info;
  memset(&l, 0, sizeof l);
  trial_params(&p, sizes, &l, &info);
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &lm, &err), US_OK);
  /* the plan: tinyB (the pick) and tinyA, 9 s each at 1000 and 2000 tokens/s of 2 x 64 */
  assert_true(info.trial_run);
  assert_string_equal(info.trial_size[0], "tinyB");
  assert_string_equal(info.trial_size[1], "tinyA");
  assert_int_equal(info.trial_steps[0], 70);
  assert_int_equal(info.trial_steps[1], 140);
  assert_int_equal(l.trial_steps[1], 70);
  assert_int_equal(l.trial_steps[2], 140);
  /* the choice: the lower validation loss, printed and stored */
  int w = pick_wins ? 0 : 1;
  assert_int_equal(info.trial_winner, w);
  assert_true(info.trial_loss[w] < info.trial_loss[1 - w]);
  assert_int_equal(l.notes_trial[1], 1);
  assert_int_equal(l.notes_trial[2], 1);
  assert_int_equal(l.notes_kept, 1);
  assert_non_null(strstr(info.trial_note, pick_wins ? "kept tinyB" : "kept tinyA"));
  assert_string_equal(info.preset, pick_wins ? "tinyB" : "tinyA");
  assert_int_equal(info.config.dim, pick_wins ? 32 : 16);
  /* the winner went on from its trial (steps counted from there) within the budget, and the
   * delivered model's validation loss is the best check's, at most the winner's trial loss */
  assert_true(info.steps_done > info.trial_steps[w]);
  assert_int_equal(l.steps, info.steps_done);
  assert_true(l.now <= 120.0 + 1.0);
  assert_true(info.best_valid_loss <= info.trial_loss[w]);
  assert_true(info.best_valid_loss < info.trial_loss[1 - w]);
  assert_float_equal(valid_loss_of(lm), info.best_valid_loss, 1e-4);
  /* deterministic: the same run again gives the same choice and weights */
  trial_log l2;
  us_lm_train_info info2;
  memset(&l2, 0, sizeof l2);
  trial_params(&p, sizes, &l2, &info2);
  us_lm *again = NULL;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &again, &err), US_OK);
  assert_true(info2.trial_loss[0] == info.trial_loss[0]);
  assert_true(info2.trial_loss[1] == info.trial_loss[1]);
  assert_int_equal(info2.steps_done, info.steps_done);
  assert_memory_equal(lm->block, again->block, lm->n_params * sizeof(float));
  us_lm_free(again);
  us_lm_free(lm);
}

static void auto_should_keep_the_pick_when_it_validates_better(void **state) {
  (void)state;
  check_trial(1);
}

static void auto_should_switch_to_the_neighbour_when_it_validates_better(void **state) {
  (void)state;
  check_trial(0);
}

static void auto_should_skip_the_trial_on_a_tiny_budget(void **state) {
  (void)state;
  make_examples();
  make_valid();
  us__lm_size sizes[2] = {
      {"tinyA", 1, 16, 2, 64, 128, 1e-2, 2000.0},
      {"tinyB", 1, 32, 2, 64, 128, 1e-2, 1000.0},
  };
  us_lm_train_params p;
  trial_log l;
  us_lm_train_info info;
  memset(&l, 0, sizeof l);
  trial_params(&p, sizes, &l, &info);
  p.train_minutes = 0.2; /* 12 s: 0.9 s a trial buys tinyB 7 steps */
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &lm, &err), US_OK);
  assert_false(info.trial_run);
  assert_non_null(strstr(info.trial_note, "size trial skipped: the budget is too small"));
  assert_non_null(strstr(info.trial_note, "tinyB from the table"));
  assert_int_equal(l.notes_skipped, 1);
  assert_int_equal(l.trial_steps[1] + l.trial_steps[2], 0);
  assert_string_equal(info.preset, "tinyB");
  assert_true(info.steps_done > 0);
  us_lm_free(lm);
}

/* A machine ten times slower than the table's rates: each trial stops after twice its share of
 * wall time (2 x 9 s of 1-s steps), the same wall time for both, and the choice is still made. */
static void slow_machine_should_cap_each_trial_at_twice_its_share(void **state) {
  (void)state;
  make_examples();
  make_valid();
  us__lm_size sizes[2] = {
      {"tinyA", 1, 16, 2, 64, 128, 1e-2, 2000.0},
      {"tinyB", 1, 32, 2, 64, 128, 1e-2, 1000.0},
  };
  us_lm_train_params p;
  trial_log l;
  us_lm_train_info info;
  memset(&l, 0, sizeof l);
  l.trial_cost = 1.0;
  trial_params(&p, sizes, &l, &info);
  us_lm *lm = NULL;
  us_err err;
  assert_int_equal(us_lm_train(&p, examples, N_EX, &lm, &err), US_OK);
  assert_true(info.trial_run);
  assert_int_equal(info.trial_steps[0], 18);
  assert_int_equal(info.trial_steps[1], 18);
  assert_float_equal(info.trial_sec[0], 18.0, 1e-9);
  assert_float_equal(info.trial_sec[1], 18.0, 1e-9);
  assert_string_equal(info.preset, info.trial_size[info.trial_winner]);
  assert_true(l.now <= 120.0 + 1.0);
  us_lm_free(lm);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(plan_should_fit_the_remaining_time_after_the_checks),
      cmocka_unit_test(budget_should_time_the_first_steps_then_plan_to_end_on_time),
      cmocka_unit_test(explicit_steps_should_win_over_the_budget),
      cmocka_unit_test(early_stop_should_keep_the_best_and_stop_after_patience),
      cmocka_unit_test(auto_should_pick_sizes_by_the_table),
      cmocka_unit_test(params_check_should_know_auto_and_zero_sizes),
      cmocka_unit_test(training_should_end_when_the_budget_is_spent),
      cmocka_unit_test(given_steps_should_win_in_training),
      cmocka_unit_test(early_stopping_should_deliver_the_best_checks_weights),
      cmocka_unit_test(resumed_run_should_keep_its_plan),
      cmocka_unit_test(resumed_run_should_deliver_the_same_best_weights),
      cmocka_unit_test(trial_plan_should_share_the_budget_and_skip_when_too_small),
      cmocka_unit_test(auto_should_keep_the_pick_when_it_validates_better),
      cmocka_unit_test(auto_should_switch_to_the_neighbour_when_it_validates_better),
      cmocka_unit_test(auto_should_skip_the_trial_on_a_tiny_budget),
      cmocka_unit_test(slow_machine_should_cap_each_trial_at_twice_its_share),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
