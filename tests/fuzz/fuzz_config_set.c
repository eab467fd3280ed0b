/* Fuzz target: the config loader's --set overrides (pipeline/config.h). A small valid config is
 * written once per process; each line of the input (at most 8, cut at the first NUL as a
 * command line would) is one "key.path=value" override applied to it. */
#include "fuzz_util.h"
#include "pipeline/config.h"

#define MAX_OVERRIDES 8

static const char base_config[] =
    "{\n"
    "  \"name\": \"fuzz\",\n"
    "  \"task\": {\"labels\": [\"card_lost\", \"refund\", \"balance\"]},\n"
    "  \"data\": {\"inputs\": [\"prompts.jsonl\"]},\n"
    "  \"teacher\": {\"model\": \"gpt-4o-mini\"}\n"
    "}\n";

static char base_path[512];

static void remove_base(void) {
  unlink(base_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!base_path[0]) {
    fuzz_temp_path(base_path, sizeof base_path, "config-set", ".json");
    if (fuzz_write_file(base_path, base_config, sizeof base_config - 1) != 0) {
      base_path[0] = '\0';
      return 0;
    }
    atexit(remove_base);
  }
  char *text = fuzz_cstring(data, size);
  if (!text) return 0;
  const char *overrides[MAX_OVERRIDES];
  int n = 0;
  for (char *line = text; line && n < MAX_OVERRIDES;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    overrides[n++] = line;
    line = nl ? nl + 1 : NULL;
  }
  us_config c;
  us_err err;
  if (us_config_load(base_path, overrides, n, &c, &err) == US_OK) us_config_free(&c);
  free(text);
  return 0;
}
