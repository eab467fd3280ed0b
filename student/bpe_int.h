/* Internals of the tokeniser shared by student/bpe.c (native vocabularies) and
 * student/bpe_vocab.c (vocabularies imported from GGUF files). */
#ifndef US_STUDENT_BPE_INT_H
#define US_STUDENT_BPE_INT_H

#include "student/bpe.h"

/* An imported vocabulary: arbitrary token ids, merges that make a given token, a byte-to-token
 * map and a pre-tokeniser. */
typedef struct us__bpe_vocab {
  int n_vocab;
  int32_t *merge_result;   /* (n_merges) the token merge m makes */
  int32_t byte_token[256]; /* the token of each single byte */
  uint8_t *types;          /* (n_vocab) llama.cpp token types */
  char **texts;            /* (n_vocab) the token strings as the file holds them */
  size_t *text_lens;
  int32_t *sorted;        /* (n_vocab) ids sorted by text, for us_bpe_find_token */
  int32_t *specials_list; /* control and user-defined ids, longest text first */
  int n_specials_list;
  us_bpe_pretok pretok;
  us_bpe_special specials;
  us_bpe_chat chat;
  int32_t *chat_tokens; /* head then mid */
  /* SentencePiece vocabularies (pretok US_BPE_PRE_SPM) only: */
  float *scores;         /* (n_vocab) merge priority of each piece */
  int unk;               /* the unknown token, -1 when none */
  bool add_space_prefix; /* the file's tokenizer.ggml.add_space_prefix */
  bool text_prefix;      /* us_bpe_encode's texts start with a prefix space (us_bpe_set_chat) */
} us__bpe_vocab;

struct us_bpe {
  int n_merges;
  int32_t *pairs;          /* (n_merges, 2) */
  uint32_t *tok_off;       /* (vocab + 1) offsets into tok_data */
  unsigned char *tok_data; /* bytes of every token, concatenated */
  uint64_t *rank_keys;     /* open-addressing table: pair key -> merge rank */
  int32_t *rank_vals;
  size_t rank_cap;
  int32_t chat_native[2]; /* BOS, SEP: the native chat format's head and mid */
  us__bpe_vocab *vocab;   /* NULL for a native tokeniser */
};

/* Builds the pair -> rank table from bpe->pairs; -1 when out of memory. */
int us__bpe_build_ranks(us_bpe *bpe);
/* Applies the merges to one piece of n symbols in rank order; returns its new length. A merge of
 * rank r makes token result[r], or 256 + r when result is NULL (the native tokeniser). */
int us__bpe_merge_piece(const us_bpe *bpe, int32_t *sym, int n, const int32_t *result);

void us__bpe_vocab_free(us__bpe_vocab *v);
us_status us__bpe_vocab_encode(const us_bpe *bpe, const char *text, size_t len, bool specials,
                               int32_t **tokens, int *n_tokens, us_err *err);
/* Builds the tokeniser of an imported vocabulary from texts, types and merges as (left, right,
 * result) ids; takes nothing. */
us_status us__bpe_vocab_build(int n_vocab, const char *const *texts, const size_t *lens,
                              const int32_t *types, int n_merges, const int32_t *triples,
                              us_bpe_pretok pretok, us_bpe_special specials, us_bpe **out,
                              us_err *err);

/* SentencePiece (student/bpe_spm.c). */
/* The bytes piece t[0..n) of type decodes to, into out (at most n bytes); their count. */
size_t us__bpe_spm_token_bytes(const char *t, size_t n, int type, unsigned char *out);
/* Sets byte_token[] from the "<0xXX>" tokens (else the one-byte token, else unk); -1 when a byte
 * has none of them. */
int us__bpe_spm_byte_tokens(us_bpe *bpe);
/* Appends the tokens of text s[0..len) at out + *n (room for 3 * len + 3), with a prefix
 * space first when prefix. */
us_status us__bpe_spm_encode(const us_bpe *bpe, const unsigned char *s, size_t len, bool prefix,
                             int32_t *out, int *n, us_err *err);
us_status us__bpe_vocab_serialize(const us_bpe *bpe, us_buf *out, us_err *err);
us_status us__bpe_vocab_deserialize(const unsigned char *data, size_t len, size_t *used,
                                    us_bpe **out, us_err *err);
/* End (byte index) of the pre-tokeniser piece of text[0..len) starting at i < len. */
size_t us__bpe_pretok_end(us_bpe_pretok kind, const unsigned char *s, size_t len, size_t i);

#endif
