/* Teacher requests: the Chat Completions body for a prompt, its canonical form (keys sorted,
 * no insignificant white space) and the cache key (SHA-256 of the canonical form). The key
 * covers the model, messages and every parameter that can change the answer; never the API
 * key or headers. */
#ifndef US_DISTILL_REQUEST_H
#define US_DISTILL_REQUEST_H

#include "cache/cache.h"
#include "core/task.h"
#include "distill/prompts.h"
#include "distill/teacher.h"

/* Canonical JSON of any JSON text: object keys sorted by byte order at every depth, numbers and
 * strings re-serialised by cJSON, no white space. Caller frees *out. */
us_status us_json_canonical(const char *json, char **out, us_err *err);

/* The system and user messages for one prompt text: task->instructions and task->template with
 * {text} and {labels} (the labels joined by ", ") filled in, in one pass (markers inside the
 * inserted text stay as they are). Caller frees both. */
us_status us_request_render(const us_task *task, const char *text, char **system, char **user,
                            us_err *err);

/* Body to send for one prompt text, already canonical, and its key. Caller frees *body. */
us_status us_request_build(const us_task *task, const us_teacher_params *teacher, const char *text,
                           char **body, char key[65], us_err *err);
/* Same, from explicit system/user messages (generation from documents). */
us_status us_request_build_messages(const us_teacher_params *teacher, const char *system,
                                    const char *user, char **body, char key[65], us_err *err);
/* The request that answers prompt p, and its key: for an ordinary prompt, us_request_build of
 * its text; for a self-instruct question (p->context set), task.instructions as the system
 * message and data.answer_template with {chunk} = the context and {question} = the text. Every
 * place that looks up a prompt's answer computes its key here, so the keys always agree.
 * Caller frees *body. */
us_status us_request_for_prompt(const us_task *task, const us_prompts_params *data,
                                const us_teacher_params *teacher, const us_prompt *p, char **body,
                                char key[65], us_err *err);
/* The request asking the teacher for data.questions_per_chunk questions about a document chunk
 * (data.question_template with {chunk} and {n}; no system message), and its key. Caller frees
 * *body. */
us_status us_request_for_chunk(const us_prompts_params *data, const us_teacher_params *teacher,
                               const char *chunk, char **body, char key[65], us_err *err);
/* Fills {chunk}, {n} and {question} in template in one pass (markers inside the inserted text
 * stay as they are); a NULL value leaves its marker. Caller frees the result; NULL when out of
 * memory. */
char *us_request_fill(const char *template_text, const char *chunk, const char *n,
                      const char *question);

/* Key and canonical body for a messages array (JSON) with the teacher's model and parameters:
 * how imported logs are keyed. Signature matches us_request_key_fn. user is a
 * const us_teacher_params*. */
us_status us_request_key_for_messages(void *user, const char *messages_json, char **body,
                                      char key[65], us_err *err);

#endif
