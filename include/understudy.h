/* understudy public API: run the whole pipeline, or load a student and predict with it, from a C
 * program.
 *
 * This header is self-contained: it defines every type it uses and includes only the C standard
 * library. Build against an installed copy with
 *   cc example.c $(pkg-config --cflags --libs understudy)
 *
 * Ownership: us_model_load returns a handle the caller frees with us_model_free (NULL is a
 * no-op). Strings returned inside results point into the model and stay valid until it is
 * freed. Functions return a us_status; on failure err (if non-NULL) holds a message naming the
 * file and the problem. The library never prints and never exits. */
#ifndef UNDERSTUDY_H
#define UNDERSTUDY_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define US_VERSION_STRING "0.1.0"

/* ---- Status codes and error messages ----
 *
 * One table makes the enum and its names (libuv's habit). */
#define US_STATUS_MAP(X)                       \
  X(OK, "ok")                                  \
  X(ERR_NOMEM, "out of memory")                \
  X(ERR_IO, "input/output error")              \
  X(ERR_CONFIG, "invalid configuration")       \
  X(ERR_INPUT, "invalid input data")           \
  X(ERR_FORMAT, "corrupt or unsupported file") \
  X(ERR_DB, "workspace database error")        \
  X(ERR_HTTP, "HTTP or network error")         \
  X(ERR_AUTH, "teacher rejected the API key")  \
  X(ERR_NOT_FOUND, "not found")                \
  X(ERR_BUDGET, "budget reached")              \
  X(ERR_INTERRUPTED, "interrupted")            \
  X(ERR_TEACHER, "teacher error")              \
  X(ERR_STATE, "missing earlier stage")        \
  X(ERR_USAGE, "invalid usage")                \
  X(ERR_INTERNAL, "internal error")            \
  X(ERR_UNLABELLED, "prompts left unlabelled")

typedef enum {
#define US_STATUS_ENUM(name, text) US_##name,
  US_STATUS_MAP(US_STATUS_ENUM)
#undef US_STATUS_ENUM
      US_STATUS_COUNT
} us_status;

/* Message owned by the caller (usually on its stack); no global error state. */
#define US_ERR_MSG_MAX 1024
typedef struct us_err {
  us_status code;
  char msg[US_ERR_MSG_MAX];
} us_err;

/* Short fixed text for a status, e.g. "budget reached". Never NULL. */
const char *us_status_str(us_status s);
/* Stable identifier for a status, e.g. "ERR_BUDGET". Never NULL. */
const char *us_status_name(us_status s);

/* ---- Classifier students (task "classify") ----
 *
 *   us_model *m; us_err err; us_prediction top[3]; int n;
 *   if (us_model_load("out/student.bin", &m, &err) != US_OK) { puts(err.msg); return 1; }
 *   us_model_classify(m, "my card was declined", 3, top, &n, &err);
 *   printf("%s %.3f\n", top[0].label, top[0].prob);
 *   us_model_free(m);
 */
typedef struct us_model us_model;

typedef struct us_prediction {
  const char *label; /* points into the model; valid until us_model_free */
  float prob;
  int index; /* the label's index in the model: us_model_label(m, index) == label */
} us_prediction;

/* Loads a classifier model file (checksummed; a truncated or corrupt file is refused with
 * US_ERR_FORMAT and a message naming it). The model is read-only afterwards:
 * us_model_classify may run on it from several threads at once. */
us_status us_model_load(const char *path, us_model **out, us_err *err);
/* Writes the top_k most probable labels of text into out[0..*n_out), most probable first;
 * *n_out = min(top_k, number of labels). top_k must be >= 1. A model whose weights overflow
 * (probabilities that are not numbers) gives US_ERR_FORMAT and no results, never garbage. */
us_status us_model_classify(const us_model *m, const char *text, int top_k, us_prediction *out,
                            int *n_out, us_err *err);
int us_model_n_labels(const us_model *m);
/* Label i, or NULL when i is out of range. */
const char *us_model_label(const us_model *m, int i);
void us_model_free(us_model *m);

/* ---- Language-model students (task "generate") ----
 *
 *   us_lm *lm; us_err err; us_lm_gen_params gp; char *answer; double conf;
 *   if (us_lm_load("out/student.uslm", &lm, &err) != US_OK) { puts(err.msg); return 1; }
 *   us_lm_gen_params_defaults(&gp);  // greedy, 128 tokens at most
 *   us_lm_generate(lm, "add abba to my workout playlist", &gp, &answer, &conf, NULL, &err);
 *   printf("%s (mean log-prob %.3f)\n", answer, conf);
 *   free(answer);
 *   us_lm_free(lm);
 *
 * A us_lm is not thread-safe for generation from several threads at once (OpenBLAS threads are
 * process-wide); use one handle per thread. */
typedef struct us_lm us_lm;

typedef struct us_lm_gen_params {
  int max_tokens;    /* answer tokens at most (EOS included); default 128 */
  float temperature; /* 0: greedy (default); else sampling */
  float top_p;       /* nucleus sampling mass; default 1 (off) */
  uint64_t seed;     /* sampling seed; default 1 */
  bool no_cache;     /* recompute the whole sequence per token (benchmark only) */
} us_lm_gen_params;

void us_lm_gen_params_defaults(us_lm_gen_params *p);

/* Loads a language-model file (magic "USLM", checksummed); refuses truncated, oversized and
 * corrupt files with a message naming the path. The caller frees *out with us_lm_free. */
us_status us_lm_load(const char *path, us_lm **out, us_err *err);
/* Generates the answer to prompt ([BOS] prompt [SEP] ... until EOS, max_tokens or the context
 * is full). *answer (caller frees) holds the decoded bytes; *mean_logprob the mean natural-log
 * probability, under the model at temperature 1, of the answer tokens produced (EOS included),
 * 0 when none (the cascade's confidence); n_tokens (may be NULL) the number of tokens
 * produced. Logits that are not numbers (an overflowing model) give US_ERR_FORMAT. */
us_status us_lm_generate(const us_lm *lm, const char *prompt, const us_lm_gen_params *gp,
                         char **answer, double *mean_logprob, int *n_tokens, us_err *err);
/* NULL is a no-op. */
void us_lm_free(us_lm *lm);

/* ---- OpenBLAS kernels ----
 *
 * OpenBLAS picks its kernels when it loads. Debian 12's 0.3.21 falls back to SSE3 kernels, 3-5x
 * slower, on CPUs it does not know (Sapphire Rapids; VMs reporting a generic model). */

/* For a program's main, before anything else: when the loaded kernels are older than the CPU's
 * instruction set and neither OPENBLAS_CORETYPE nor US_BLAS_KEEP_KERNELS is set, sets
 * OPENBLAS_CORETYPE ("SkylakeX" or "Haswell") and re-executes the program once (same pid,
 * arguments and environment otherwise) so OpenBLAS loads the faster kernels; US_BLAS_REPLACED
 * then names the kernels OpenBLAS had picked on its own. Returns when nothing needed doing or
 * the exec failed (then the slower kernels stay). */
void us_blas_reexec_for_kernels(char **argv);
/* The OpenBLAS kernels in use, e.g. "SkylakeX". */
const char *us_blas_core(void);

/* ---- The whole pipeline ----
 *
 *   us_err err; char *headline;
 *   const char *sets[] = {"teacher.budget_usd=20"};
 *   if (us_run("my.json", sets, 1, NULL, &headline, &err) != US_OK) { puts(err.msg); return 1; }
 *   puts(headline);  // also in <output>/report.md
 *   free(headline);
 *
 * Runs prompts, label, train, eval and report for a project config, exactly as `understudy run
 * CONFIG --set ...` does, with the config loaded and the workspace opened once; prints nothing.
 * The teacher's API key is read from the environment variable the config names. stop (may be
 * NULL) is checked between stages and between teacher requests: set it (e.g. from a SIGINT
 * handler) to stop cleanly with US_ERR_INTERRUPTED. Every stage is idempotent, so calling again
 * after an error, a stop or US_ERR_BUDGET resumes without paying twice. US_ERR_UNLABELLED: the
 * label stage ended with prompts that failed after their retries (the message names how many
 * and the most common cause); the run stops there. On success *headline
 * (if headline is non-NULL) is the report's headline, malloc'd, the caller frees it. */
us_status us_run(const char *config_path, const char *const *overrides, int n_overrides,
                 volatile sig_atomic_t *stop, char **headline, us_err *err);

#ifdef __cplusplus
}
#endif

#endif
