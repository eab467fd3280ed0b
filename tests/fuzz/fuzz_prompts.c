/* Fuzz target: the prompt loaders (distill/prompts.h) and the document chunker. The first byte
 * picks the format (JSONL, CSV, TSV, text, a Markdown document in a docs folder) and the next
 * the options (UTF-8 repair, a pinned split); the rest is the file, loaded into a fresh
 * workspace through us_prompts_build. The same bytes also go straight through the chunker.
 * Must never crash, leak or trip a sanitizer, whatever the bytes. */
#include <sys/stat.h>

#include "cache/cache.h"
#include "core/utf8.h"
#include "distill/prompts.h"
#include "distill/prompts_int.h"
#include "fuzz_util.h"

static us_status count_chunk(void *user, const char *chunk, size_t len, int number, us_err *err) {
  (void)chunk;
  (void)number;
  (void)err;
  *(size_t *)user += len;
  return US_OK;
}

static void load(const uint8_t *data, size_t size, const char *format, const char *ext, bool repair,
                 us_split split) {
  char dir[512], file[600], db[600];
  fuzz_temp_path(dir, sizeof dir, "prompts", "");
  mkdir(dir, 0700);
  snprintf(file, sizeof file, "%s/input%s", dir, ext);
  snprintf(db, sizeof db, "%s/ws.db", dir);
  if (fuzz_write_file(file, data, size) != 0) return;
  us_cache *cache = NULL;
  us_err err;
  if (us_cache_open(db, &cache, &err) == US_OK) {
    us_input input = {dir, split, (char *)format};
    if (strcmp(format, "docs") != 0) input.path = file;
    us_prompts_params p;
    us_prompts_params_defaults(&p);
    p.inputs = &input;
    p.n_inputs = 1;
    p.repair_utf8 = repair;
    p.chunk_chars = 200;
    us_task task = {US_TASK_CLASSIFY, NULL, 0, NULL, NULL};
    us_prompts_stats stats;
    us_prompts_build(&task, &p, dir, cache, &stats, &err);
    us_cache_close(cache);
  }
  unlink(file);
  unlink(db);
  char side[700];
  snprintf(side, sizeof side, "%s-wal", db);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", db);
  unlink(side);
  rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  static const char *const formats[][2] = {
      {"jsonl", ".jsonl"}, {"csv", ".csv"}, {"tsv", ".tsv"}, {"text", ".txt"}, {"docs", ".md"}};
  const char *const *f = formats[data[0] % 5];
  bool repair = data[1] & 1;
  us_split split = (data[1] & 6) == 2   ? US_SPLIT_TRAIN
                   : (data[1] & 6) == 4 ? US_SPLIT_TEST
                                        : US_SPLIT_AUTO;
  load(data + 2, size - 2, f[0], f[1], repair, split);
  /* the chunker's contract is valid UTF-8 (the loaders check first) */
  if (us_utf8_invalid_at((const char *)data + 2, size - 2) == size - 2) {
    size_t total = 0;
    us_err err;
    us__chunk_document((const char *)data + 2, size - 2, data[1] & 8, 200, count_chunk, &total,
                       &err);
  }
  return 0;
}
