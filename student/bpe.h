/* Byte-level BPE tokeniser for the language-model student: 256 byte tokens, learned merges,
 * then four special tokens (BOS, EOS, SEP between prompt and answer, PAD).
 * Encoding then decoding gives back any byte string exactly.
 *
 * Ownership: us_bpe_train / us_bpe_from_merges / us_bpe_deserialize return a handle the caller
 * frees with us_bpe_free (NULL is a no-op). Token arrays returned by us_bpe_encode and strings
 * returned by us_bpe_decode are malloc'd and freed by the caller. */
#ifndef US_STUDENT_BPE_H
#define US_STUDENT_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

#define US_BPE_N_SPECIAL 4
#define US_BPE_MIN_VOCAB (256 + US_BPE_N_SPECIAL)
#define US_BPE_MAX_VOCAB 65536

typedef struct us_bpe us_bpe;

/* Token ids of the special tokens (they follow the merges). */
typedef struct us_bpe_special {
  int bos, eos, sep, pad;
} us_bpe_special;

/* Learns vocab_size - 260 merges from texts (pre-split into words on letter/digit/space/
 * punctuation boundaries, merged on word counts). Stops early when no pair occurs twice, so
 * the vocabulary can come out smaller than asked (us_bpe_vocab_size tells). */
us_status us_bpe_train(const char *const *texts, size_t n_texts, int vocab_size, us_bpe **out,
                       us_err *err);
/* Builds a tokeniser from an explicit merge list: merge i makes token 256 + i from
 * (pairs[2i], pairs[2i+1]), each an earlier token. */
us_status us_bpe_from_merges(const int32_t *pairs, int n_merges, us_bpe **out, us_err *err);
void us_bpe_free(us_bpe *bpe);

int us_bpe_vocab_size(const us_bpe *bpe);
int us_bpe_n_merges(const us_bpe *bpe);
us_bpe_special us_bpe_specials(const us_bpe *bpe);

/* Encodes len bytes of text (any bytes, NUL included) into *tokens (caller frees), *n_tokens
 * set. Never produces special tokens. */
us_status us_bpe_encode(const us_bpe *bpe, const char *text, size_t len, int32_t **tokens,
                        int *n_tokens, us_err *err);
/* Appends the bytes of tokens to out; special tokens contribute no bytes. Token ids outside the
 * vocabulary are an error. */
us_status us_bpe_decode(const us_bpe *bpe, const int32_t *tokens, int n_tokens, us_buf *out,
                        us_err *err);
/* The bytes of one token (not NUL-terminated; *len 0 for specials). Valid while bpe lives. */
const unsigned char *us_bpe_token_bytes(const us_bpe *bpe, int token, int *len);

/* Serialised form, little endian: u32 n_merges, then n_merges pairs of u32. */
us_status us_bpe_serialize(const us_bpe *bpe, us_buf *out, us_err *err);
/* Reads the serialised form from data[0..len); *used set to the bytes consumed. */
us_status us_bpe_deserialize(const unsigned char *data, size_t len, size_t *used, us_bpe **out,
                             us_err *err);

#endif
