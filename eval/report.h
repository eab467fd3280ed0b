/* Report writers: one us_report in, report.md, report.json (schema in docs/report.md) and a
 * self-contained report.html with inline SVG charts out.
 * Ownership: us_report only borrows. Every pointer in it belongs to the caller and must stay
 * valid while a writer runs; the writers never keep or free any of it. NULL sections are
 * omitted (JSON: null). Every piece of user text is escaped for the format it lands in. */
#ifndef US_EVAL_REPORT_H
#define US_EVAL_REPORT_H

#include <stdbool.h>

#include "core/buf.h"
#include "core/status.h"
#include "core/task.h"
#include "eval/cascade.h"
#include "eval/cost.h"
#include "eval/metrics.h"

#define US_REPORT_SCHEMA_VERSION 1

/* A curve of (x, y) points, e.g. loss against epoch. */
typedef struct us_report_series {
  int n;
  const double *x;
  const double *y;
} us_report_series;

/* Measured speed of one side. */
typedef struct us_report_speed {
  bool measured;              /* false: shown as "not measured" */
  us_latency latency;         /* seconds per request */
  double requests_per_second; /* throughput; 0 if not measured */
  int threads;                /* threads used for the measurement (0 = unknown) */
} us_report_speed;

typedef struct us_report_counts {
  long prompts_train, prompts_test;
  long teacher_calls;   /* paid calls made in this workspace */
  long cache_hits;      /* answers served from the cache instead of a paid call */
  long imported;        /* answers imported from logs */
  long unparsed;        /* teacher answers that named no known label */
  long failures;        /* requests that failed for good */
  long near_duplicates; /* prompts with a near-duplicate (word 3-shingle Jaccard >= 0.8) in the
                         * other split, as the prompts stage found them */
  long near_duplicates_moved; /* of those, moved to the test split by data.dedupe_near */
} us_report_counts;

/* Active labelling (label.strategy "active"): the learning curve, one point per round, and what
 * labelling only part of the train pool saved. */
typedef struct us_report_active {
  int n_rounds;
  const double *labels;          /* train prompts labelled after each round */
  const double *dollars;         /* the workspace's spend after each round */
  const double *test_agreement;  /* the student against the teacher on the test split, 0..1 */
  const double *valid_agreement; /* on the round's validation slice, 0..1 */
  long pool;                     /* train prompts in the pool */
  long labelled;                 /* of which labelled */
  double labels_saved;           /* pool - labelled */
  double dollars_saved;          /* labels_saved at the mean paid cost of a teacher call */
  double full_pool_agreement;    /* test agreement with the whole pool labelled; < 0: unknown */
  const char *stop;              /* why labelling stopped ("max_prompts", "pool", "min_gain"), or
                                    NULL while it goes on */
} us_report_active;
/* `understudy serve` in the workspace: what the cascade did with real traffic. */
typedef struct us_report_production {
  long requests;                        /* answered (errors included) */
  long student, teacher, cache, errors; /* by route */
  long audits, audits_agreeing;         /* shadow audits of student answers */
  double spent_usd;                     /* paid to the teacher while serving (audits included) */
  double saved_usd;                     /* teacher price of what the student and cache answered */
  double predicted_saved_usd;           /* the report's recommended cascade applied to the same
                                           number of requests; NAN when there is no prediction */
  double hours;                         /* from the first served request to the last */
  us_report_series agreement;           /* x: hours since the first audit, y: the live agreement
                                           (cumulative share of audits agreeing) */
} us_report_production;
/* What labelling paid, by kind, and what may have been billed without an answer. */
typedef struct us_report_spend {
  long prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens;
  double input_usd;      /* prompt tokens not served from the provider's cache */
  double cached_usd;     /* prompt tokens served from it (teacher.price.cached_input_per_mtok) */
  double output_usd;     /* visible answer tokens */
  double reasoning_usd;  /* reasoning tokens, priced as output */
  double unsplit_usd;    /* calls recorded before spend was split by kind */
  long unanswered;       /* requests that may have been billed without an answer */
  double unanswered_usd; /* their worst-case cost (counted against teacher.budget_usd) */
} us_report_spend;

typedef struct us_report {
  const char *run_name; /* config name */
  us_task_type task;
  const char *teacher_model; /* may be NULL */
  const char *student_desc;  /* one line describing the student, may be NULL */
  const char *generated_at;  /* timestamp text, may be NULL (kept out for reproducible files) */
  const char *const *labels; /* n_labels entries (classify) */
  int n_labels;
  long student_params; /* parameter count */

  const us_classify_metrics *metrics;    /* classify: student vs teacher on the test split */
  const char *const *confusion_examples; /* NULL, or metrics->n_confusions prompt texts (each
                                            may be NULL), one example per confused pair */
  const us_generate_metrics *generation; /* generate */
  double perplexity;                     /* generate: student perplexity on teacher answers; 0
                                            if unknown */

  us_report_speed student_speed, teacher_speed;
  const us_cost *cost;
  const us_cascade *cascade;
  us_report_series train_loss, valid_loss, valid_accuracy; /* x: epoch or step */
  us_report_counts counts;
  const us_report_active *active;         /* NULL unless the train prompts were labelled actively */
  const us_report_production *production; /* NULL: the student was never served */
  const us_report_spend *spend;           /* NULL: omitted */
} us_report;

/* Zeroes r (all sections absent). */
void us_report_init(us_report *r);

/* Each writer appends one whole document to out. */
us_status us_report_markdown(const us_report *r, us_buf *out, us_err *err);
us_status us_report_json(const us_report *r, us_buf *out, us_err *err);
us_status us_report_html(const us_report *r, us_buf *out, us_err *err);

/* Writes dir/report.md, dir/report.json and dir/report.html (each atomically; dir is created). */
us_status us_report_write(const us_report *r, const char *dir, us_err *err);

/* The headline as a few plain lines of text (for the terminal after `understudy run`). */
us_status us_report_headline(const us_report *r, us_buf *out, us_err *err);

/* Appends s to out escaped for HTML/XML text and attribute values (& < > " '); invalid UTF-8
 * bytes and control characters other than tab and newline become U+FFFD. */
us_status us_report_escape_html(us_buf *out, const char *s);

#endif
