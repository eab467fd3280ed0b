/* Tests of the language model's time budget, sizes and early stopping (student/lm_budget.c and
 * their use in us_lm_train): the schedule's arithmetic from a measured throughput (the clock is
 * injected, nothing here depends on real time), explicit steps winning over the budget, early
 * stopping delivering the best check's weights, a resumed run keeping its plan, and "auto"
 * picking sizes by the documented table. */
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
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
