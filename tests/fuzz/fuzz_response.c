/* Fuzz target: the teacher's answer, as the label pass reads it (distill/teacher.h,
 * distill/prompts.h): the input is a Chat Completions response body, parsed with
 * us_response_parse against three labels (soft targets from logprobs included); the content it
 * gives (or, when it is not a response, the raw input) is mapped onto the labels with
 * us_answer_map_label and parsed as a list of questions with us_questions_parse. */
#include <stdbool.h>

#include "distill/prompts.h"
#include "distill/teacher.h"
#include "fuzz_util.h"

#define N_LABELS 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char spam[] = "spam", ham[] = "ham", not_sure[] = "not sure";
  char *const labels[N_LABELS] = {spam, ham, not_sure};
  char *body = fuzz_cstring(data, size);
  if (!body) return 0;
  char *content = NULL;
  int prompt_tokens = 0, completion_tokens = 0;
  float soft[N_LABELS];
  bool has_soft = false;
  us_err err;
  us_response_parse(body, labels, N_LABELS, &content, &prompt_tokens, &completion_tokens, soft,
                    &has_soft, &err);
  const char *answer = content ? content : body;
  int label = us_answer_map_label(answer, labels, N_LABELS);
  if (label < -1 || label >= N_LABELS) abort();
  char **questions = NULL;
  int n = 0;
  if (us_questions_parse(answer, 5, &questions, &n, &err) == US_OK) {
    if (n < 0 || n > 5) abort();
    for (int i = 0; i < n; i++) free(questions[i]);
    free(questions);
  }
  free(content);
  free(body);
  return 0;
}
