/* Fuzz target: the language-model file loader (student/lm.h, format in student/lm_file.c) and
 * generation with what it loads. The input is a model file whose trailing SHA-256 (its last 32
 * bytes, over every byte before them) is recomputed first, so the fuzzer explores the header,
 * tokeniser and weights instead of the checksum. It is written to a temporary file (one fixed
 * path per process) and loaded with us_lm_load; a model that loads generates 4 tokens greedily
 * and scores one answer. */
#include "fuzz_util.h"
#include "student/lm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  if (size) memcpy(buf, data, size);
  if (size >= 32) { /* the digest covers [0, size - 32): recompute over exactly that */
    unsigned char sum[32];
    us_sha256(buf, size - 32, sum);
    memcpy(buf + size - 32, sum, 32);
  }
  char path[512];
  fuzz_temp_path(path, sizeof path, "lm", ".bin");
  int written = fuzz_write_file(path, buf, size);
  free(buf);
  if (written != 0) return 0;

  us_lm *lm = NULL;
  us_err err;
  us_status st = us_lm_load(path, &lm, &err);
  unlink(path); /* read whole by now: a crash below leaves no file behind */
  if (st == US_OK) {
    us_lm_gen_params gp;
    us_lm_gen_params_defaults(&gp);
    gp.max_tokens = 4;
    char *answer = NULL;
    double logprob = 0;
    int n_tokens = 0;
    us_lm_generate(lm, "hi there", &gp, &answer, &logprob, &n_tokens, &err);
    free(answer);
    us_lm_score(lm, "hi there", "ok", &logprob, &n_tokens, &err);
    us_lm_free(lm);
  }
  return 0;
}
