/* The student the server shares across threads: loaded once, reference-counted, swapped for a
 * newer student.bin (SIGHUP or a newer file on disk) while requests keep using the old one until
 * they finish, so a reload drops nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "serve/serve_int.h"

static double file_mtime(const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0) return -1;
  return (double)sb.st_mtim.tv_sec + (double)sb.st_mtim.tv_nsec / 1e9;
}

us_status us__student_load(us__server *s, us__student **out, us_err *err) {
  *out = NULL;
  us__student *st = calloc(1, sizeof *st);
  if (!st) return us_err_set(err, US_ERR_NOMEM, "out of memory");
  st->mtime = file_mtime(s->model_path);
  us_status rc = s->config->task.type == US_TASK_CLASSIFY
                     ? us_model_load(s->model_path, &st->classifier, err)
                     : us_lm_load(s->model_path, &st->lm, err);
  if (rc) {
    free(st);
    return rc;
  }
  atomic_init(&st->refs, 1);
  *out = st;
  return US_OK;
}

us__student *us__student_acquire(us__server *s) {
  pthread_mutex_lock(&s->student_lock);
  us__student *st = s->student;
  if (st) atomic_fetch_add(&st->refs, 1);
  pthread_mutex_unlock(&s->student_lock);
  return st;
}

void us__student_release(us__student *st) {
  if (!st || atomic_fetch_sub(&st->refs, 1) != 1) return;
  us_model_free(st->classifier);
  us_lm_free(st->lm);
  free(st);
}

void us__student_maybe_reload(us__server *s, bool force) {
  double mtime = file_mtime(s->model_path);
  us__student *cur = us__student_acquire(s);
  bool newer = cur && mtime > cur->mtime;
  us__student_release(cur);
  if (!force && !newer) return;
  us__student *fresh = NULL;
  us_err err = {0};
  if (us__student_load(s, &fresh, &err)) {
    us_log(US_LOG_WARN, "serve: keeping the student in use: reloading %s failed: %s", s->model_path,
           err.msg);
    if (newer && cur) {
      /* do not try the same broken file again until it changes */
      pthread_mutex_lock(&s->student_lock);
      if (s->student) s->student->mtime = mtime;
      pthread_mutex_unlock(&s->student_lock);
    }
    return;
  }
  pthread_mutex_lock(&s->student_lock);
  us__student *old = s->student;
  s->student = fresh;
  pthread_mutex_unlock(&s->student_lock);
  us__student_release(old);
  atomic_fetch_add(&s->reloads, 1);
  us__audit_reset(s);
  us_log(US_LOG_INFO, "serve: reloaded the student from %s", s->model_path);
}

us_status us__student_answer(const us__server *s, const us__student *st, const char *text,
                             char **answer, bool *owned, double *confidence, us_err *err) {
  *answer = NULL;
  *owned = false;
  *confidence = 0;
  if (st->classifier) {
    us_prediction pred;
    int n = 0;
    us_status rc = us_model_classify(st->classifier, text, 1, &pred, &n, err);
    if (rc) return rc;
    if (n < 1) return us_err_set(err, US_ERR_INTERNAL, "the student gave no label");
    *answer = (char *)pred.label;
    *confidence = pred.prob;
    return US_OK;
  }
  us_lm_gen_params gp;
  us_lm_gen_params_defaults(&gp);
  (void)s;
  double mean_lp = 0;
  us_status rc = us_lm_generate(st->lm, text, &gp, answer, &mean_lp, NULL, err);
  if (rc) return rc;
  *owned = true;
  /* the cascade was fitted on the mean token log-probability; its exponent orders the same
   * and lies in [0, 1] like a classifier's probability */
  *confidence = exp(mean_lp);
  return US_OK;
}
