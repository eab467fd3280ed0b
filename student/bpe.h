/* Byte-level BPE tokeniser for the language-model student: 256 byte tokens, learned merges,
 * then four special tokens (BOS, EOS, SEP between prompt and answer, PAD).
 * Encoding then decoding gives back any byte string exactly.
 *
 * Ownership: us_bpe_train / us_bpe_from_merges / us_bpe_deserialize return a handle the caller
 * frees with us_bpe_free (NULL is a no-op). Token arrays returned by us_bpe_encode and strings
 * returned by us_bpe_decode are malloc'd and freed by the caller. */
#ifndef US_STUDENT_BPE_H
#define US_STUDENT_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

#define US_BPE_N_SPECIAL 4
#define US_BPE_MIN_VOCAB (256 + US_BPE_N_SPECIAL)
#define US_BPE_MAX_VOCAB 65536
/* Imported vocabularies (us_bpe_from_vocab) may be larger: llama 3's has 128256 tokens. */
#define US_BPE_MAX_IMPORTED_VOCAB 262144
/* First u32 of a serialised imported tokeniser (a native one starts with its merge count). */
#define US_BPE_IMPORTED_MARKER 0xFFFFFFFFu

typedef struct us_bpe us_bpe;

/* Token ids of the special tokens (they follow the merges). An imported vocabulary has no SEP:
 * sep and pad are then ids generation never picks (BOS, or the file's padding token). */
typedef struct us_bpe_special {
  int bos, eos, sep, pad;
} us_bpe_special;

/* How one (prompt, answer) pair becomes tokens: head, the prompt, mid, the answer, end. The
 * native tokeniser's is [BOS] prompt [SEP] answer [EOS]; an imported one follows the model's
 * chat template (student/lm_import.c). Generation stops at end or at EOS. Pointers live as long
 * as the tokeniser. */
typedef struct us_bpe_chat {
  const int32_t *head;
  int n_head;
  const int32_t *mid;
  int n_mid;
  int end;
  int kind; /* 0 native, else an US_BPE_CHAT_* of student/lm_import.c */
} us_bpe_chat;
us_bpe_chat us_bpe_chat_format(const us_bpe *bpe);

/* Pre-tokenisers of imported byte-level BPE vocabularies (GGUF tokenizer.ggml.pre). */
typedef enum us_bpe_pretok {
  US_BPE_PRE_GPT2 = 1, /* GPT-2's: 's 't ... | ?letters | ?digits | ?other | spaces */
  US_BPE_PRE_SMOLLM,   /* GPT-2's after splitting off every digit (smollm, starcoder, refact) */
  US_BPE_PRE_LLAMA3,   /* llama 3's: up to 3 digits, newlines apart (llama-bpe) */
  US_BPE_PRE_QWEN2,    /* llama 3's with single digits (qwen2) */
  US_BPE_PRE_SPM,      /* not a pre-tokeniser: a SentencePiece vocabulary (student/bpe_spm.c) */
} us_bpe_pretok;

/* A tokeniser from a GGUF "gpt2" vocabulary: n_vocab token strings in GPT-2's byte-to-unicode
 * form (tokens[i], lens[i] bytes; types[i] is llama.cpp's token type: 3 control, 4 user-defined
 * tokens are matched as text in templates and decode to nothing / to their text), n_merges merge
 * strings "left right" in rank order. Every merge's parts and result must be tokens. specials: bos
 * and eos ids (pad may be -1). Errors name the key ("tokenizer.ggml.merges: merge 12 ..."). */
us_status us_bpe_from_vocab(int n_vocab, const char *const *tokens, const size_t *lens,
                            const int32_t *types, int n_merges, const char *const *merges,
                            const size_t *merge_lens, us_bpe_pretok pretok, us_bpe_special specials,
                            us_bpe **out, us_err *err);
/* A tokeniser from a GGUF "llama" (SentencePiece) vocabulary, tokenised as llama.cpp's SPM
 * tokeniser: spaces become U+2581 (one more in front when add_space_prefix), then the pair of
 * adjacent pieces with the highest score whose concatenation is a token merges, leftmost first;
 * pieces that are not tokens fall back to their bytes as "<0xXX>" tokens (types[i] 6), or unk
 * (-1: none). scores[i] per token; types as us_bpe_from_vocab (NULL: all normal). */
us_status us_bpe_from_spm(int n_vocab, const char *const *tokens, const size_t *lens,
                          const int32_t *types, const float *scores, us_bpe_special specials,
                          int unk, bool add_space_prefix, us_bpe **out, us_err *err);
/* Sets an imported tokeniser's chat format: head and mid are texts in which the tokeniser's
 * control and user-defined tokens are recognised (a leading BOS when bos_first), end a token.
 * SentencePiece: head is encoded as the start of a text, mid as its continuation, and prompts and
 * answers (us_bpe_encode) get the prefix space when the head is empty, ends in a control token or
 * ends in a space (which then moves into the prompt), as llama.cpp would split the rendered
 * template. */
us_status us_bpe_set_chat(us_bpe *bpe, int kind, bool bos_first, const char *head, const char *mid,
                          int end, us_err *err);
/* Encodes text, recognising control and user-defined tokens written as text (imported
 * tokenisers; the native one has none and encodes as us_bpe_encode). */
us_status us_bpe_encode_special(const us_bpe *bpe, const char *text, size_t len, int32_t **tokens,
                                int *n_tokens, us_err *err);
/* The id of the token whose text is s (imported tokenisers; control tokens by their text), or
 * -1. */
int us_bpe_find_token(const us_bpe *bpe, const char *s, size_t len);

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
/* Bytes at the start of a decoded text that its encoding added (1: the prefix space a
 * SentencePiece tokeniser puts in front of texts, when text starts with a space; else 0). */
size_t us_bpe_added_prefix(const us_bpe *bpe, const char *text, size_t len);
/* The bytes of one token (not NUL-terminated; *len 0 for specials). Valid while bpe lives. */
const unsigned char *us_bpe_token_bytes(const us_bpe *bpe, int token, int *len);

/* Serialised form, little endian: u32 n_merges, then n_merges pairs of u32. */
us_status us_bpe_serialize(const us_bpe *bpe, us_buf *out, us_err *err);
/* Reads the serialised form from data[0..len); *used set to the bytes consumed. */
us_status us_bpe_deserialize(const unsigned char *data, size_t len, size_t *used, us_bpe **out,
                             us_err *err);

#endif
