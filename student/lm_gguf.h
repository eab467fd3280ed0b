/* The language-model student as a GGUF file of architecture "llama", the format llama.cpp,
 * Ollama and LM Studio run (docs/gguf.md).
 *
 * What goes in: every hyper-parameter llama.cpp reads (llama.context_length, embedding_length,
 * block_count, feed_forward_length, attention.head_count, attention.head_count_kv,
 * attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count, vocab_size); the
 * weights under llama.cpp's names (token_embd; blk.N.attn_norm, attn_q, attn_k, attn_v,
 * attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down; output_norm; no output.weight, so llama.cpp
 * ties the output to token_embd as the student does); the byte-level BPE tokeniser as a "gpt2"
 * tokeniser (tokens in GPT-2's byte-to-unicode spelling, merges "A B", token types, special ids)
 * and a Jinja chat template that renders one user message as [BOS] message [SEP], the sequence
 * the student was trained on.
 *
 * No permutation of the query and key rows is needed: the student rotates adjacent pairs
 * (2i, 2i+1) of each head by pos * base^(-2i/head_dim), which is llama.cpp's rope for "llama"
 * (LLAMA_ROPE_TYPE_NORM). Hugging Face checkpoints rotate the two halves instead, which is why
 * llama.cpp's converter permutes theirs and we do not. */
#ifndef US_STUDENT_LM_GGUF_H
#define US_STUDENT_LM_GGUF_H

#include <stdint.h>

#include "core/status.h"
#include "student/gguf.h"
#include "student/lm.h"

/* The special tokens as text: llama.cpp parses these in a prompt as the special tokens (token
 * type CONTROL) when it tokenises with special-token parsing on, as its chat paths do. */
#define US_LM_GGUF_BOS "<|bos|>"
#define US_LM_GGUF_EOS "<|eos|>"
#define US_LM_GGUF_SEP "<|sep|>"
#define US_LM_GGUF_PAD "<|pad|>"

/* tokenizer.chat_template: one user message becomes BOS, the message, SEP; an assistant message
 * its text and EOS (the student itself only ever saw one user message). */
#define US_LM_GGUF_CHAT_TEMPLATE                                                   \
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}" \
  "{{ message['content'] }}" US_LM_GGUF_SEP                                        \
  "{% elif message['role'] == 'assistant' %}"                                      \
  "{{ message['content'] }}" US_LM_GGUF_EOS "{% endif %}{% endfor %}"

/* The pre-tokeniser llama.cpp is told to use (docs/gguf.md lists where it splits text
 * differently from us_bpe_encode). */
#define US_LM_GGUF_PRE "gpt-2"
/* The same split as a regular expression, for runtimes that read one (Ollama's own engine reads
 * "tokenizer.ggml.pretokenizer" and otherwise assumes Llama 3's, which splits digits in
 * threes). */
#define US_LM_GGUF_PRE_REGEX \
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

typedef struct us_lm_gguf_params {
  uint32_t dtype;   /* matrices: US_GGUF_F32 (default), US_GGUF_F16, US_GGUF_BF16 or US_GGUF_Q8_0;
                       norm weights are always f32 */
  const char *name; /* general.name; NULL: "understudy student" */
} us_lm_gguf_params;

void us_lm_gguf_params_defaults(us_lm_gguf_params *p);

/* What an export did. */
typedef struct us_lm_gguf_report {
  int n_tensors;
  int n_fallback_f16; /* q8_0 asked for, but the row length is not a multiple of 32: f16 */
  int n_renamed;      /* tokens whose bytes repeat an earlier token's: written as unused tokens
                         "<|dup_ID|>" (llama.cpp refuses two tokens with one text) */
  uint64_t bytes;     /* file size */
} us_lm_gguf_report;

/* Writes lm to path (atomically: path.tmp, then renamed). report may be NULL. Fails with
 * US_ERR_CONFIG for an unknown dtype, US_ERR_IO naming the path. */
us_status us_lm_export_gguf(const us_lm *lm, const char *path, const us_lm_gguf_params *p,
                            us_lm_gguf_report *report, us_err *err);

/* The GGUF spelling of a token (GPT-2's byte-to-unicode map: printable bytes stay themselves,
 * the others become code points 256 and up) appended to out. */
us_status us_lm_gguf_token_text(const unsigned char *bytes, int len, us_buf *out, us_err *err);
/* The inverse: the bytes a GGUF "gpt2" token text stands for, appended to out. A text that is
 * not valid UTF-8 or holds a code point outside the map is US_ERR_FORMAT (control tokens such
 * as "<|bos|>" are spelled with ordinary characters, so they decode to their own text). */
us_status us_lm_gguf_token_bytes(const char *text, size_t len, us_buf *out, us_err *err);

#endif
