/* The job being distilled: classify into labels, or generate an answer. Every layer needs it
 * (the teacher's request, the student's outputs, the report's metrics), so it lives here; the
 * config (pipeline/config) fills it from the "task" keys and owns its strings. */
#ifndef US_CORE_TASK_H
#define US_CORE_TASK_H

typedef enum { US_TASK_CLASSIFY, US_TASK_GENERATE } us_task_type;

/* Which side of the fixed train/test split a prompt is on (AUTO: decided by its hash). */
typedef enum { US_SPLIT_AUTO = -1, US_SPLIT_TRAIN = 0, US_SPLIT_TEST = 1 } us_split;

typedef struct us_task {
  us_task_type type; /* "classify" (default) | "generate" */
  char **labels;     /* classify: >= 2 distinct non-empty labels */
  int n_labels;
  char *instructions; /* the system message */
  char *template;     /* the user message; contains {text}; {labels} is the comma list */
} us_task;

/* "classify" or "generate". */
const char *us_task_type_name(us_task_type t);
/* Index of label in task->labels, or -1. */
int us_task_label_index(const us_task *task, const char *label);

#endif
