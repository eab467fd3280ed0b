/* The shadow audit: a share (serve.audit_rate) of the student's answers is also asked of the
 * teacher in the background. Their agreement since the student was loaded is the live agreement;
 * when its one-sided Wilson lower bound falls under quality.target_agreement, the server warns
 * once and, with serve.on_drift "teacher", sends every request to the teacher until a new
 * student is loaded. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"
#include "distill/request.h"
#include "eval/cascade.h"
#include "eval/metrics.h"
#include "serve/serve_int.h"

typedef struct audit_job {
  us__server *s;
  char *text;
  char *student_answer;
  double confidence;
  char key[65];
  char *body;
} audit_job;

bool us__audit_draw(us__server *s) {
  double rate = s->config->serve.audit_rate;
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  /* a deterministic, evenly spread draw: request k is audited when floor(k * rate) steps */
  int_fast64_t k = atomic_fetch_add(&s->audit_draw, 1);
  return floor((double)(k + 1) * rate) > floor((double)k * rate);
}

void us__audit_live(us__server *s, int64_t *n, int64_t *agreeing, double *agreement, double *low) {
  pthread_mutex_lock(&s->audit_lock);
  *n = s->audits;
  *agreeing = s->audits_agreeing;
  pthread_mutex_unlock(&s->audit_lock);
  *agreement = *n ? (double)*agreeing / (double)*n : NAN;
  *low = *n ? us_wilson_low((double)*agreeing, (double)*n, s->z) : NAN;
}

void us__audit_reset(us__server *s) {
  pthread_mutex_lock(&s->audit_lock);
  s->audits = s->audits_agreeing = 0;
  s->armed = false;
  s->drift_warned = false;
  pthread_mutex_unlock(&s->audit_lock);
  atomic_store(&s->drifted, false);
}

static bool answers_agree(const us__server *s, const char *student, const char *teacher) {
  if (!student || !teacher) return false;
  if (s->config->task.type == US_TASK_CLASSIFY) return strcmp(student, teacher) == 0;
  double f1 = 0;
  return us_metrics_token_f1(student, teacher, &f1, NULL) == US_OK && f1 >= 0.5;
}

static void judge(us__server *s, bool agree) {
  double target = s->config->quality.target_agreement;
  pthread_mutex_lock(&s->audit_lock);
  s->audits++;
  s->audits_total++;
  if (agree) {
    s->audits_agreeing++;
    s->audits_agreeing_total++;
  }
  double low = us_wilson_low((double)s->audits_agreeing, (double)s->audits, s->z);
  if (low >= target) s->armed = true;
  bool drift = (s->armed || s->audits >= s->config->serve.drift_min_audits) && low < target;
  bool warn = drift && !s->drift_warned;
  if (warn) s->drift_warned = true;
  int64_t n = s->audits, k = s->audits_agreeing;
  pthread_mutex_unlock(&s->audit_lock);
  if (!warn) return;
  if (s->drift_to_teacher) atomic_store(&s->drifted, true);
  us_log(US_LOG_WARN,
         "serve: drift: the teacher agreed with %lld of the last %lld audited student answers "
         "(%.1f%%, lower bound %.1f%% < quality.target_agreement %.1f%%); %s",
         (long long)k, (long long)n, 100.0 * (double)k / (double)n, 100 * low, 100 * target,
         s->drift_to_teacher ? "every request now goes to the teacher until the student is "
                               "retrained (understudy train, then SIGHUP)"
                             : "serve.on_drift is \"warn\": the student keeps answering");
}

static void audit_done(void *user, us_teacher_reply *r) {
  audit_job *j = user;
  us__server *s = j->s;
  us__log_unanswered(s, j->key, r);
  if (r->status == US_OK) {
    char *content = NULL;
    char *teacher = us__route_teacher_answer(s, r->body, &content);
    bool agree = answers_agree(s, j->student_answer, teacher);
    judge(s, agree);
    us__money_add(s, r->cost_usd, 0);
    us__recent_put(s, j->key, r->body);
    us__log_item it;
    memset(&it, 0, sizeof it);
    it.row = (us_served_row){.created_at = us_epoch(),
                             .route = "audit",
                             .task = true,
                             .http_status = 200,
                             .confidence = j->confidence,
                             .threshold = s->threshold,
                             .latency_ms = r->latency_ms,
                             .prompt_tokens = r->prompt_tokens,
                             .completion_tokens = r->completion_tokens,
                             .cost_usd = r->cost_usd,
                             .agree = agree ? 1 : 0};
    if (s->config->serve.log_prompts) {
      it.prompt = us_strdup(j->text);
      it.answer = teacher ? us_strdup(teacher) : NULL;
    }
    us__log_take_call(&it, j->key, &j->body, r);
    it.store_prompt = true;
    it.text = j->text;
    j->text = NULL;
    it.label = s->config->task.type == US_TASK_CLASSIFY ? teacher : NULL;
    if (s->config->task.type != US_TASK_CLASSIFY) free(teacher);
    it.target_text = content;
    us__log_push(s, &it);
  } else if (r->status != US_ERR_BUDGET) {
    us_log(US_LOG_DEBUG, "serve: an audit got no answer: %s", r->message);
  }
  free(j->text);
  free(j->student_answer);
  free(j->body);
  free(j);
}

void us__audit_submit(us__server *s, const char *text, const char *student_answer,
                      double confidence) {
  if (us_teacher_gateway_budget_reached(s->gateway)) return;
  audit_job *j = calloc(1, sizeof *j);
  if (!j) return;
  j->s = s;
  j->text = us_strdup(text);
  j->student_answer = us_strdup(student_answer);
  j->confidence = confidence;
  if (!j->text || !j->student_answer ||
      us_request_build(&s->config->task, &s->config->teacher, text, &j->body, j->key, NULL) ||
      us_teacher_gateway_submit(s->gateway, j->body, strlen(j->body), audit_done, j)) {
    free(j->text);
    free(j->student_answer);
    free(j->body);
    free(j);
  }
}
