/* Fuzz target: the BPE tokeniser (student/bpe.h). The input starts with a serialised tokeniser
 * (u32 n_merges, then n_merges pairs of u32); what follows it is text. A tokeniser that loads
 * must encode that text and decode it back to the same bytes, decode the same bytes read as
 * token ids (ids outside the vocabulary are an error, never a crash) and serialise back to the
 * bytes it was read from. A SentencePiece tokeniser (an imported one) must encode and decode any
 * text without harm, but need not give it back: it turns U+2581 into a space and adds one in
 * front, as llama.cpp does. */
#include "fuzz_util.h"
#include "student/bpe_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  us_bpe *bpe = NULL;
  size_t used = 0;
  us_err err;
  if (us_bpe_deserialize(data, size, &used, &bpe, &err) != US_OK) return 0;
  const char *text = (const char *)data + used;
  size_t len = size - used;

  /* Round trip: encode then decode gives back the bytes. */
  int32_t *tokens = NULL;
  int n = 0;
  if (us_bpe_encode(bpe, text, len, &tokens, &n, &err) == US_OK) {
    us_buf out;
    us_buf_init(&out, 0);
    bool spm = bpe->vocab && bpe->vocab->pretok == US_BPE_PRE_SPM;
    if (us_bpe_decode(bpe, tokens, n, &out, &err) == US_OK && !spm &&
        (out.len != len || (len && memcmp(out.data, text, len) != 0))) {
      fprintf(stderr, "fuzz_bpe: encode then decode changed %zu bytes into %zu\n", len, out.len);
      abort();
    }
    us_buf_free(&out);
  }
  free(tokens);

  /* Arbitrary token ids, some outside the vocabulary. */
  int vocab = us_bpe_vocab_size(bpe);
  size_t n_ids = len / 4;
  int32_t *ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
  if (ids) {
    for (size_t i = 0; i < n_ids; i++) {
      uint32_t v;
      memcpy(&v, text + 4 * i, 4);
      ids[i] = (int32_t)v;
      int tl = 0;
      us_bpe_token_bytes(bpe, (int)(v % (uint32_t)(vocab + 2)), &tl);
    }
    us_buf out;
    us_buf_init(&out, 0);
    us_bpe_decode(bpe, ids, (int)n_ids, &out, &err);
    us_buf_free(&out);
    free(ids);
  }

  /* Serialising gives back the bytes read. */
  us_buf ser;
  us_buf_init(&ser, 0);
  if (us_bpe_serialize(bpe, &ser, &err) == US_OK &&
      (ser.len != used || memcmp(ser.data, data, used) != 0)) {
    fprintf(stderr, "fuzz_bpe: serialising gave %zu bytes, %zu were read\n", ser.len, used);
    abort();
  }
  us_buf_free(&ser);
  us_bpe_free(bpe);
  return 0;
}
