/* Fuzz target: the config loader (pipeline/config.h). The input is a config file, written to a
 * temporary file (one fixed path per process) and loaded with no overrides; a config that loads
 * is freed again. Must never crash, leak or trip a sanitizer, whatever the bytes. */
#include "fuzz_util.h"
#include "pipeline/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[512];
  fuzz_temp_path(path, sizeof path, "config", ".json");
  if (fuzz_write_file(path, data, size) != 0) return 0;
  us_config c;
  us_err err;
  if (us_config_load(path, NULL, 0, &c, &err) == US_OK) us_config_free(&c);
  unlink(path);
  return 0;
}
