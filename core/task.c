/* Names and label look-up for core/task.h. */
#include "core/task.h"

#include <string.h>

const char *us_task_type_name(us_task_type t) {
  return t == US_TASK_GENERATE ? "generate" : "classify";
}

int us_task_label_index(const us_task *task, const char *label) {
  if (!label) return -1;
  for (int i = 0; i < task->n_labels; i++)
    if (strcmp(task->labels[i], label) == 0) return i;
  return -1;
}
