/* Writes the model seeds of the fuzz corpora (tests/fuzz/corpus/{classifier,lm,bpe,gguf}/): tiny
 * models trained or built here, plus truncated and bit-flipped variants. Not built by default:
 *   cmake --build build --target fuzz_make_seeds && build/tests/fuzz/fuzz_make_seeds
 * tests/fuzz/corpus Rerun it after a model file format changes (the old seeds still replay; they
 * just stop reaching deep). Output is deterministic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "student/bpe.h"
#include "student/classifier.h"
#include "student/gguf.h"
#include "student/lm.h"
#include "student/lm_gguf.h"

static const char *dir;

static void die(const char *what, const us_err *err) {
  fprintf(stderr, "fuzz_make_seeds: %s: %s\n", what, err ? err->msg : "failed");
  exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t len) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) die(path, NULL);
}

static char *slurp(const char *path, size_t *len) {
  us_err err;
  char *data = NULL;
  if (us_read_file(path, 0, &data, len, &err) != US_OK) die(path, &err);
  return data;
}

/* The file; with all, also its first half, its header only, and copies with one byte changed at
 * a few offsets (the fuzz targets recompute the checksum, so these reach the parser). */
static void variants(const char *target, const char *stem, const unsigned char *d, size_t len,
                     size_t header, int all) {
  char name[256];
  snprintf(name, sizeof name, "%s.bin", stem);
  put(target, name, d, len);
  if (!all) return;
  snprintf(name, sizeof name, "%s-half.bin", stem);
  put(target, name, d, len / 2);
  snprintf(name, sizeof name, "%s-header.bin", stem);
  put(target, name, d, header < len ? header : len);
  unsigned char *copy = malloc(len);
  if (!copy) die("memory", NULL);
  size_t at[] = {header - 4, header + 2, len / 2, len - 40};
  for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
    if (at[i] >= len) continue;
    memcpy(copy, d, len);
    copy[at[i]] ^= 0x47;
    snprintf(name, sizeof name, "%s-flip%zu.bin", stem, i);
    put(target, name, copy, len);
  }
  free(copy);
}

static const char *const texts[] = {"my card was lost",      "I lost my card yesterday",
                                    "card stolen, block it", "please refund my order",
                                    "I want my money back",  "refund the fee",
                                    "what is my balance",    "how much money do I have",
                                    "show balance",          "lost card, need a new one",
                                    "refund please",         "balance check"};
static const int gold[] = {0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2};
#define N_TEXTS (sizeof texts / sizeof *texts)

static void classifier_seed(const char *stem, int hidden, int bits, int all) {
  static char l0[] = "card_lost", l1[] = "refund", l2[] = "balance";
  char *const labels[] = {l0, l1, l2};
  us_classifier_params p;
  us_classifier_params_defaults(&p);
  p.dim = 2;
  p.buckets = 32;
  p.minn = 2;
  p.maxn = 3;
  p.word_ngrams = 2;
  p.epochs = 3;
  p.threads = 1;
  p.min_count_ngram = 1;
  p.calibrate = false;
  if (bits) {
    p.quantize = true;
    p.quantize_bits = bits;
  }
  if (hidden) {
    p.n_hidden = 1;
    p.hidden[0] = hidden;
  }
  us_example ex[N_TEXTS];
  for (size_t i = 0; i < N_TEXTS; i++) ex[i] = (us_example){texts[i], gold[i], NULL};
  us_classifier *m = NULL;
  us_err err;
  if (us_classifier_train(&p, labels, 3, ex, N_TEXTS, NULL, 0, NULL, NULL, &m, &err) != US_OK)
    die("classifier train", &err);
  char path[1024];
  snprintf(path, sizeof path, "%s/classifier/.tmp.bin", dir);
  if (us_classifier_save(m, path, &err) != US_OK) die("classifier save", &err);
  us_classifier_free(m);
  size_t len;
  char *d = slurp(path, &len);
  remove(path);
  variants("classifier", stem, (unsigned char *)d, len, 52 + 18 * 4, all);
  free(d);
}

static us_bpe *tiny_bpe(void) {
  us_bpe *bpe = NULL;
  us_err err;
  if (us_bpe_train(texts, N_TEXTS, 268, &bpe, &err) != US_OK) die("bpe train", &err);
  return bpe;
}

static void lm_seed(const char *stem, int layers, int dim, int heads, int hidden, int all) {
  us_bpe *bpe = tiny_bpe();
  us_lm_config c = {layers, dim, heads, 8, us_bpe_vocab_size(bpe), hidden, 0, 0, 0, 0};
  us_lm *lm = NULL;
  us_err err;
  if (us_lm_new(&c, bpe, 7, &lm, &err) != US_OK) die("lm new", &err);
  char path[1024];
  snprintf(path, sizeof path, "%s/lm/.tmp.bin", dir);
  if (us_lm_save(lm, path, &err) != US_OK) die("lm save", &err);
  us_lm_free(lm);
  size_t len;
  char *d = slurp(path, &len);
  remove(path);
  variants("lm", stem, (unsigned char *)d, len, 48, all);
  free(d);
}

/* The tiny language model exported as GGUF (f32; q8_0 needs rows of 32, so f16 stands in). */
static void lm_gguf_seed(const char *stem, uint32_t dtype, int all) {
  us_bpe *bpe = tiny_bpe();
  us_lm_config c = {1, 2, 1, 8, us_bpe_vocab_size(bpe), 2, 0, 0, 0, 0};
  us_lm *lm = NULL;
  us_err err;
  if (us_lm_new(&c, bpe, 7, &lm, &err) != US_OK) die("lm new", &err);
  char path[1024];
  snprintf(path, sizeof path, "%s/gguf/.tmp.gguf", dir);
  us_lm_gguf_params p;
  us_lm_gguf_params_defaults(&p);
  p.dtype = dtype;
  if (us_lm_export_gguf(lm, path, &p, NULL, &err) != US_OK) die("lm gguf export", &err);
  us_lm_free(lm);
  size_t len;
  char *d = slurp(path, &len);
  remove(path);
  variants("gguf", stem, (unsigned char *)d, len, 24, all);
  free(d);
}

static void bpe_seed(const char *name, us_bpe *bpe, const char *text) {
  us_buf b;
  us_buf_init(&b, 0);
  us_err err;
  if (us_bpe_serialize(bpe, &b, &err) != US_OK || us_buf_puts(&b, text) != US_OK)
    die("bpe serialize", &err);
  put("bpe", name, b.data, b.len);
  us_buf_free(&b);
}

/* A GGUF file with a key of every kind the writer makes and a tensor of each writable type. */
static void gguf_seed(const char *stem, uint32_t alignment, int all) {
  static float x[64 * 2];
  for (int i = 0; i < 64 * 2; i++) x[i] = (float)((i * 37) % 19 - 9) / 4.0f;
  us_gguf_writer *w = NULL;
  us_err err;
  const char *toks[] = {"a", "b", "ab", "<|bos|>"};
  int32_t types[] = {1, 1, 1, 3};
  float scores[] = {0.0f, -1.0f};
  uint64_t ne[2] = {64, 2}, norm[1] = {3};
  if (us_gguf_writer_new(alignment, &w, &err) != US_OK ||
      us_gguf_add_str(w, "general.architecture", "llama", &err) != US_OK ||
      us_gguf_add_u32(w, "llama.block_count", 1, &err) != US_OK ||
      us_gguf_add_i32(w, "test.i32", -3, &err) != US_OK ||
      us_gguf_add_u64(w, "test.u64", 5, &err) != US_OK ||
      us_gguf_add_f32(w, "llama.rope.freq_base", 10000.0f, &err) != US_OK ||
      us_gguf_add_bool(w, "test.bool", true, &err) != US_OK ||
      us_gguf_add_str_array(w, "tokenizer.ggml.tokens", toks, NULL, 4, &err) != US_OK ||
      us_gguf_add_i32_array(w, "tokenizer.ggml.token_type", types, 4, &err) != US_OK ||
      us_gguf_add_f32_array(w, "test.scores", scores, 2, &err) != US_OK ||
      us_gguf_add_tensor(w, "a.f32", 2, ne, US_GGUF_F32, x, &err) != US_OK ||
      us_gguf_add_tensor(w, "a.f16", 2, ne, US_GGUF_F16, x, &err) != US_OK ||
      us_gguf_add_tensor(w, "a.bf16", 2, ne, US_GGUF_BF16, x, &err) != US_OK ||
      us_gguf_add_tensor(w, "a.q8_0", 2, ne, US_GGUF_Q8_0, x, &err) != US_OK ||
      us_gguf_add_tensor(w, "norm", 1, norm, US_GGUF_F32, x, &err) != US_OK)
    die("gguf", &err);
  us_buf b;
  us_buf_init(&b, 0);
  if (us_gguf_writer_serialize(w, &b, &err) != US_OK) die("gguf serialize", &err);
  us_gguf_writer_free(w);
  variants("gguf", stem, (unsigned char *)b.data, b.len, 24, all);
  us_buf_free(&b);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_FOLDER (holding classifier/ lm/ bpe/ gguf/)\n", argv[0]);
    return 2;
  }
  dir = argv[1];
  classifier_seed("tiny", 0, 0, 1);
  classifier_seed("hidden", 3, 0, 0);
  classifier_seed("int8", 0, 8, 0);
  classifier_seed("int4", 0, 4, 0);
  lm_seed("tiny", 1, 2, 1, 2, 1);
  lm_seed("two-layers", 2, 4, 2, 4, 0);
  gguf_seed("kinds", 0, 1);
  gguf_seed("align64", 64, 0);
  lm_gguf_seed("lm-f32", US_GGUF_F32, 1);
  lm_gguf_seed("lm-q8_0", US_GGUF_Q8_0, 0);

  us_bpe *none = NULL, *chain = NULL;
  us_err err;
  int32_t pairs[] = {'a', 'b', 256, 'c', 257, 257, ' ', 't', 'h', 'e'};
  if (us_bpe_from_merges(NULL, 0, &none, &err) != US_OK ||
      us_bpe_from_merges(pairs, 5, &chain, &err) != US_OK)
    die("bpe", &err);
  us_bpe *trained = tiny_bpe();
  bpe_seed("empty.bin", none, "");
  bpe_seed("bytes.bin", none, "plain text \xff\xfe\x01 bytes");
  bpe_seed("chain.bin", chain, "abcabcabc the abc");
  bpe_seed("trained.bin", trained, "my card was lost, refund my balance");
  bpe_seed("trained-utf8.bin", trained, "caf\xc3\xa9 \xe2\x82\xac 100, card lost \xf0\x9f\x98\x80");
  us_bpe_free(none);
  us_bpe_free(chain);
  us_bpe_free(trained);
  return 0;
}
