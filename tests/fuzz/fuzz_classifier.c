/* Fuzz target: the classifier model loader (student/classifier.h) and prediction on what it
 * loads, through the library API and the public one (include/understudy.h, which reads a file).
 * The input is a model file whose SHA-256 (bytes 20..52, over the body from byte 52) is
 * recomputed first, so the fuzzer explores the body instead of the checksum: a corrupt file
 * with a valid checksum is exactly what the loader must still refuse or handle. */
#include "fuzz_util.h"
#include "student/classifier.h"
#include "understudy.h"

#define HEADER 52
#define DIGEST_AT 20
#define TOP_K 3

static const char *const texts[] = {"", "hello world", "my card was lost, please refund me"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  fuzz_fix_sha256(buf, size, DIGEST_AT, HEADER);

  us_classifier *m = NULL;
  us_err err;
  if (us_classifier_load_buffer(buf, size, "fuzz", &m, &err) == US_OK) {
    int n = us_classifier_n_labels(m);
    float *probs = malloc(((size_t)n + 1) * sizeof *probs);
    for (size_t i = 0; probs && i < sizeof texts / sizeof *texts; i++)
      us_classifier_predict(m, texts[i], probs, &err);
    free(probs);
    us_classifier_free(m);

    /* The public API over the same bytes (it loads from a file). */
    char path[512];
    fuzz_temp_path(path, sizeof path, "classifier", ".bin");
    us_model *pm = NULL;
    us_status st =
        fuzz_write_file(path, buf, size) == 0 ? us_model_load(path, &pm, &err) : US_ERR_IO;
    unlink(path); /* read whole by now: a crash below leaves no file behind */
    if (st == US_OK) {
      us_prediction out[TOP_K];
      int n_out = 0;
      for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        us_model_classify(pm, texts[i], TOP_K, out, &n_out, &err);
      us_model_free(pm);
    }
  }
  free(buf);
  return 0;
}
