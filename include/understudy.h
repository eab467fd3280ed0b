/* understudy public API: load a student model and predict with it from a C program.
 *
 * Ownership: us_model_load returns a handle the caller frees with us_model_free (NULL is a
 * no-op). Strings returned inside results point into the model and stay valid until it is
 * freed. Functions return a us_status; on failure err (if non-NULL) holds a message naming the
 * file and the problem. */
#ifndef UNDERSTUDY_H
#define UNDERSTUDY_H

#define US_VERSION_STRING "0.1.0"

#include "core/status.h"

/* ---- Classifier students (task "classify"): owner classifier engineer ----
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
} us_prediction;

/* Loads a classifier model file (checksummed; a truncated or corrupt file is refused with
 * US_ERR_FORMAT and a message naming it). The model is read-only afterwards:
 * us_model_classify may run on it from several threads at once. */
us_status us_model_load(const char *path, us_model **out, us_err *err);
/* Writes the top_k most probable labels of text into out[0..*n_out), most probable first;
 * *n_out = min(top_k, number of labels). top_k must be >= 1. */
us_status us_model_classify(const us_model *m, const char *text, int top_k, us_prediction *out,
                            int *n_out, us_err *err);
int us_model_n_labels(const us_model *m);
/* Label i, or NULL when i is out of range. */
const char *us_model_label(const us_model *m, int i);
void us_model_free(us_model *m);

/* ---- Language-model students (task "generate"): owner LM engineer ----
 *
 *   us_lm *lm; us_err err; us_lm_gen_params gp; char *answer; double conf;
 *   if (us_lm_load("out/student.uslm", &lm, &err) != US_OK) { puts(err.msg); return 1; }
 *   us_lm_gen_params_defaults(&gp);  // greedy, 128 tokens at most
 *   us_lm_generate(lm, "add abba to my workout playlist", &gp, &answer, &conf, NULL, &err);
 *   printf("%s (mean log-prob %.3f)\n", answer, conf);
 *   free(answer);
 *   us_lm_free(lm);
 *
 * student/lm.h declares them with their contracts: us_lm_load, us_lm_generate (answer malloc'd,
 * caller frees; mean token log-probability as the cascade's confidence), us_lm_free, plus
 * us_lm_train and us_lm_save for the pipeline. One us_lm per thread for generation. */
#include "student/lm.h"

/* ---- OpenBLAS kernels ----
 *
 * OpenBLAS picks its kernels when it loads. Debian 12's 0.3.21 falls back to SSE3 kernels, 3-5x
 * slower, on CPUs it does not know (Sapphire Rapids; VMs reporting a generic model). Call
 *   us_blas_reexec_for_kernels(argv);
 * first thing in main: when the loaded kernels are older than the CPU and OPENBLAS_CORETYPE is
 * unset, it sets it and re-executes the program once (returning otherwise). us_blas_core()
 * names the kernels in use. */
#include "student/blas.h"

#endif
