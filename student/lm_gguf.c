/* GGUF export of the language-model student: hyper-parameters, llama.cpp's tensor names and
 * shapes, and the tokeniser in llama.cpp's "gpt2" form (see student/lm_gguf.h). */
#include "student/lm_gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "student/bpe_int.h"
#include "student/lm_int.h"

void us_lm_gguf_params_defaults(us_lm_gguf_params *p) {
  memset(p, 0, sizeof *p);
  p->dtype = US_GGUF_F32;
}

/* ---- the model's shape (its config's effective values, student/lm_int.h) ---- */

static int heads_kv(const us_lm_config *c) {
  return us__lm_heads_kv(c);
}
static float rope_base(const us_lm_config *c) {
  return (float)us__lm_rope_base(c);
}
static float norm_eps(const us_lm_config *c) {
  return us__lm_norm_eps(c);
}

/* llama.cpp's file type (LLAMA_FTYPE_*) for the matrices' type. */
static uint32_t file_type(uint32_t dtype) {
  switch (dtype) {
    case US_GGUF_F16:
      return 1;
    case US_GGUF_Q8_0:
      return 7;
    case US_GGUF_BF16:
      return 32;
    default:
      return 0;
  }
}

/* ---- tokeniser ---- */

us_status us_lm_gguf_token_text(const unsigned char *bytes, int len, us_buf *out, us_err *err) {
  for (int i = 0; i < len; i++) {
    unsigned b = bytes[i], cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
      /* the n-th byte outside those ranges becomes code point 256 + n */
      unsigned n = b <= 32 ? b : b <= 160 ? 33 + (b - 127) : 33 + 34;
      cp = 256 + n;
    }
    char u[3];
    size_t k = 1;
    if (cp < 0x80) {
      u[0] = (char)cp;
    } else {
      u[0] = (char)(0xc0 | (cp >> 6));
      u[1] = (char)(0x80 | (cp & 0x3f));
      k = 2;
    }
    if (us_buf_append(out, u, k) != US_OK)
      return us_err_set(err, US_ERR_NOMEM, "gguf export: out of memory for the token texts");
  }
  return US_OK;
}

/* The byte a code point of the map stands for, or -1. */
static int byte_of(unsigned cp) {
  if ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255))
    return (int)cp;
  if (cp < 256 || cp > 256 + 67) return -1;
  unsigned n = cp - 256;
  return n <= 32 ? (int)n : n <= 66 ? (int)(127 + n - 33) : 173;
}

us_status us_lm_gguf_token_bytes(const char *text, size_t len, us_buf *out, us_err *err) {
  const unsigned char *s = (const unsigned char *)text;
  for (size_t i = 0; i < len;) {
    unsigned cp = s[i];
    size_t k = 1;
    if (cp >= 0xc0 && cp < 0xe0 && i + 1 < len && (s[i + 1] & 0xc0) == 0x80) {
      cp = (cp & 0x1f) << 6 | (s[i + 1] & 0x3f);
      k = 2;
    } else if (cp >= 0x80) {
      cp = 0x110000; /* longer sequences and stray bytes are outside the map */
    }
    int b = byte_of(cp);
    if (b < 0)
      return us_err_set(err, US_ERR_FORMAT,
                        "gguf: token text \"%.*s\": byte %zu is not in GPT-2's byte map",
                        (int)(len > 64 ? 64 : len), text, i);
    unsigned char c = (unsigned char)b;
    if (us_buf_append(out, &c, 1) != US_OK)
      return us_err_set(err, US_ERR_NOMEM, "gguf: out of memory for token bytes");
    i += k;
  }
  return US_OK;
}

/* The tokeniser's arrays: token texts and types (one buffer, offsets), merges "A B". */
typedef struct vocab_texts {
  us_buf text, merges;
  size_t *off, *moff; /* (V + 1), (n_merges + 1) */
  const char **ptr, **mptr;
  size_t *len, *mlen;
  int32_t *type;
  int n_renamed;
} vocab_texts;

static void vocab_free(vocab_texts *v) {
  us_buf_free(&v->text);
  us_buf_free(&v->merges);
  free(v->off);
  free(v->moff);
  free(v->ptr);
  free(v->mptr);
  free(v->len);
  free(v->mlen);
  free(v->type);
}

/* Index of a token whose text equals token t's among those already placed in the table (open
 * addressing on a hash of the text), or -1 after placing t. */
static int text_seen(const vocab_texts *v, int32_t *table, size_t cap, int t) {
  const char *s = v->text.data + v->off[t];
  size_t n = v->off[t + 1] - v->off[t];
  size_t i = us_hash64(s, n, 0x9e37) & (cap - 1);
  for (; table[i] >= 0; i = (i + 1) & (cap - 1)) {
    int o = table[i];
    if (v->off[o + 1] - v->off[o] == n && memcmp(v->text.data + v->off[o], s, n) == 0) return o;
  }
  table[i] = t;
  return -1;
}

/* An imported vocabulary (student/bpe_vocab.c) goes back out as it came in: the file's token
 * strings and types, and its merges spelled from them. */
static us_status vocab_imported(const us_bpe *bpe, vocab_texts *v, us_err *err) {
  const us__bpe_vocab *iv = bpe->vocab;
  int V = iv->n_vocab, M = bpe->n_merges;
  v->ptr = malloc((size_t)V * sizeof *v->ptr);
  v->len = malloc((size_t)V * sizeof *v->len);
  v->type = malloc((size_t)V * sizeof *v->type);
  v->moff = malloc((size_t)(M + 1) * sizeof *v->moff);
  v->mptr = malloc((size_t)(M ? M : 1) * sizeof *v->mptr);
  v->mlen = malloc((size_t)(M ? M : 1) * sizeof *v->mlen);
  if (!v->ptr || !v->len || !v->type || !v->moff || !v->mptr || !v->mlen)
    return us_err_set(err, US_ERR_NOMEM, "gguf export: out of memory for the tokeniser");
  for (int t = 0; t < V; t++) {
    v->ptr[t] = iv->texts[t];
    v->len[t] = iv->text_lens[t];
    v->type[t] = iv->types[t];
  }
  v->moff[0] = 0;
  us_status st = US_OK;
  for (int m = 0; m < M && st == US_OK; m++) {
    int a = bpe->pairs[2 * m], b = bpe->pairs[2 * m + 1];
    st = us_buf_append(&v->merges, iv->texts[a], iv->text_lens[a]);
    if (st == US_OK) st = us_buf_append(&v->merges, " ", 1);
    if (st == US_OK) st = us_buf_append(&v->merges, iv->texts[b], iv->text_lens[b]);
    v->moff[m + 1] = v->merges.len;
  }
  if (st != US_OK) return us_err_set(err, st, "gguf export: out of memory for the tokeniser");
  for (int m = 0; m < M; m++) {
    v->mptr[m] = v->merges.data + v->moff[m];
    v->mlen[m] = v->moff[m + 1] - v->moff[m];
  }
  return US_OK;
}

/* Token texts and types into v (allocated by vocab_build); a text that repeats an earlier
 * one becomes "<|dup_ID|>", type UNUSED. */
static us_status token_texts(const us_bpe *bpe, vocab_texts *v, int32_t *table, size_t cap,
                             us_err *err) {
  int V = us_bpe_vocab_size(bpe);
  us_bpe_special sp = us_bpe_specials(bpe);
  us_status st = US_OK;
  v->off[0] = 0;
  for (int t = 0; t < V && st == US_OK; t++) {
    int len = 0;
    const unsigned char *b = us_bpe_token_bytes(bpe, t, &len);
    const char *special = t == sp.bos   ? US_LM_GGUF_BOS
                          : t == sp.eos ? US_LM_GGUF_EOS
                          : t == sp.sep ? US_LM_GGUF_SEP
                          : t == sp.pad ? US_LM_GGUF_PAD
                                        : NULL;
    v->type[t] = special ? 3 : 1; /* llama.cpp's CONTROL, NORMAL */
    size_t before = v->text.len;
    st = special ? us_buf_puts(&v->text, special) : us_lm_gguf_token_text(b, len, &v->text, err);
    v->off[t + 1] = v->text.len;
    if (st == US_OK && text_seen(v, table, cap, t) >= 0) {
      /* two merges spelled the same bytes: llama.cpp needs unique texts */
      v->text.len = before;
      st = us_buf_printf(&v->text, "<|dup_%d|>", t);
      v->off[t + 1] = v->text.len;
      v->type[t] = 5; /* UNUSED */
      v->n_renamed++;
      if (st == US_OK) text_seen(v, table, cap, t);
    }
  }
  return st;
}

/* Merges as "A B" in the token texts. The tokeniser's serialised form (u32 n_merges, then the
 * pairs as u32) gives the merge list without a new getter. */
static us_status merge_texts(const us_bpe *bpe, vocab_texts *v, us_err *err) {
  int M = us_bpe_n_merges(bpe);
  us_buf ser;
  us_buf_init(&ser, 0);
  us_status st = us_bpe_serialize(bpe, &ser, err);
  v->moff[0] = 0;
  for (int m = 0; m < M && st == US_OK; m++) {
    const unsigned char *p = (const unsigned char *)ser.data + 4 + 8 * (size_t)m;
    uint32_t a = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    uint32_t b = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    st = us_buf_append(&v->merges, v->text.data + v->off[a], v->off[a + 1] - v->off[a]);
    if (st == US_OK) st = us_buf_append(&v->merges, " ", 1);
    if (st == US_OK)
      st = us_buf_append(&v->merges, v->text.data + v->off[b], v->off[b + 1] - v->off[b]);
    v->moff[m + 1] = v->merges.len;
  }
  us_buf_free(&ser);
  return st;
}

static us_status vocab_build(const us_bpe *bpe, vocab_texts *v, us_err *err) {
  memset(v, 0, sizeof *v);
  us_buf_init(&v->text, 0);
  us_buf_init(&v->merges, 0);
  if (bpe->vocab) return vocab_imported(bpe, v, err);
  int V = us_bpe_vocab_size(bpe), M = us_bpe_n_merges(bpe);
  size_t cap = 1; /* the duplicate-text table: a power of two, at most half full */
  while (cap < 2 * (size_t)V) cap <<= 1;
  int32_t *table = malloc(cap * sizeof *table);
  v->off = malloc((size_t)(V + 1) * sizeof *v->off);
  v->moff = malloc((size_t)(M + 1) * sizeof *v->moff);
  v->ptr = malloc((size_t)V * sizeof *v->ptr);
  v->mptr = malloc((size_t)(M ? M : 1) * sizeof *v->mptr);
  v->len = malloc((size_t)V * sizeof *v->len);
  v->mlen = malloc((size_t)(M ? M : 1) * sizeof *v->mlen);
  v->type = malloc((size_t)V * sizeof *v->type);
  us_status st = US_OK;
  if (!table || !v->off || !v->moff || !v->ptr || !v->mptr || !v->len || !v->mlen || !v->type)
    st = US_ERR_NOMEM;
  for (size_t i = 0; i < cap && st == US_OK; i++) table[i] = -1;
  if (st == US_OK) st = token_texts(bpe, v, table, cap, err);
  free(table);
  if (st == US_OK) st = merge_texts(bpe, v, err);
  if (st != US_OK) return us_err_set(err, st, "gguf export: out of memory for the tokeniser");
  for (int t = 0; t < V; t++) {
    v->ptr[t] = v->text.data + v->off[t];
    v->len[t] = v->off[t + 1] - v->off[t];
  }
  for (int m = 0; m < M; m++) {
    v->mptr[m] = v->merges.data + v->moff[m];
    v->mlen[m] = v->moff[m + 1] - v->moff[m];
  }
  return US_OK;
}

/* A Jinja chat template rendering the imported model's chat format (the one it was fine-tuned
 * in); a default system message the original template carried is not reproduced. */
static const char *imported_template(int kind) {
  switch (kind) {
    case US_LM_CHAT_CHATML:
      return "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
             "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if "
             "add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    case US_LM_CHAT_LLAMA3:
      return "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + "
             "message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' "
             "}}{% endfor %}{% if add_generation_prompt %}{{ "
             "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
    case US_LM_CHAT_LLAMA2:
      return "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ "
             "'[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + "
             "eos_token }}{% endif %}{% endfor %}";
    case US_LM_CHAT_ZEPHYR:
      return "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ "
             "'<|user|>\\n' + message['content'] + eos_token + '\\n' }}{% else %}{{ "
             "'<|assistant|>\\n' + message['content'] + eos_token + '\\n' }}{% endif %}{% "
             "endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";
    default:
      return "{% for message in messages %}{{ message['content'] }}{% if message['role'] == "
             "'user' %}{{ '\\n' }}{% else %}{{ eos_token }}{% endif %}{% endfor %}";
  }
}

static us_status add_imported_tokenizer(us_gguf_writer *w, const us_bpe *bpe, const vocab_texts *v,
                                        us_err *err) {
  static const char *pre_names[] = {"", "gpt2", "smollm", "llama-bpe", "qwen2"};
  const us__bpe_vocab *iv = bpe->vocab;
  us_bpe_chat chat = us_bpe_chat_format(bpe);
  uint64_t V = (uint64_t)iv->n_vocab, M = (uint64_t)bpe->n_merges;
  bool spm = iv->pretok == US_BPE_PRE_SPM;
  us_status st = us_gguf_add_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2", err);
  if (st == US_OK && !spm)
    st = us_gguf_add_str(w, "tokenizer.ggml.pre", pre_names[iv->pretok], err);
  if (st == US_OK) st = us_gguf_add_str_array(w, "tokenizer.ggml.tokens", v->ptr, v->len, V, err);
  if (st == US_OK) st = us_gguf_add_i32_array(w, "tokenizer.ggml.token_type", v->type, V, err);
  if (st == US_OK && !spm)
    st = us_gguf_add_str_array(w, "tokenizer.ggml.merges", v->mptr, v->mlen, M, err);
  if (st == US_OK && spm)
    st = us_gguf_add_f32_array(w, "tokenizer.ggml.scores", iv->scores, V, err);
  if (st == US_OK && spm)
    st = us_gguf_add_bool(w, "tokenizer.ggml.add_space_prefix", iv->add_space_prefix, err);
  if (st == US_OK && spm && iv->unk >= 0)
    st = us_gguf_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)iv->unk, err);
  if (st == US_OK)
    st = us_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)iv->specials.bos, err);
  if (st == US_OK)
    st = us_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)iv->specials.eos, err);
  if (st == US_OK && iv->specials.pad != iv->specials.bos)
    st = us_gguf_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)iv->specials.pad, err);
  bool bos_first = chat.n_head > 0 && chat.head[0] == iv->specials.bos;
  /* the templates below write BOS themselves, except ChatML and the fallback; a ChatML head may
   * start with BOS because BOS is <|im_start|> */
  bool bos_in_template = chat.kind != US_LM_CHAT_FALLBACK &&
                         (chat.kind != US_LM_CHAT_CHATML ||
                          us_bpe_find_token(bpe, "<|im_start|>", 12) == iv->specials.bos);
  if (st == US_OK)
    st = us_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", bos_first && !bos_in_template, err);
  if (st == US_OK)
    st = us_gguf_add_str(w, "tokenizer.chat_template", imported_template(chat.kind), err);
  return st;
}

static us_status add_tokenizer(us_gguf_writer *w, const us_bpe *bpe, const vocab_texts *v,
                               us_err *err) {
  if (bpe->vocab) return add_imported_tokenizer(w, bpe, v, err);
  us_bpe_special sp = us_bpe_specials(bpe);
  uint64_t V = (uint64_t)us_bpe_vocab_size(bpe), M = (uint64_t)us_bpe_n_merges(bpe);
  us_status st = us_gguf_add_str(w, "tokenizer.ggml.model", "gpt2", err);
  if (st == US_OK) st = us_gguf_add_str(w, "tokenizer.ggml.pre", US_LM_GGUF_PRE, err);
  if (st == US_OK)
    st = us_gguf_add_str(w, "tokenizer.ggml.pretokenizer", US_LM_GGUF_PRE_REGEX, err);
  if (st == US_OK) st = us_gguf_add_str_array(w, "tokenizer.ggml.tokens", v->ptr, v->len, V, err);
  if (st == US_OK) st = us_gguf_add_i32_array(w, "tokenizer.ggml.token_type", v->type, V, err);
  if (st == US_OK) st = us_gguf_add_str_array(w, "tokenizer.ggml.merges", v->mptr, v->mlen, M, err);
  if (st == US_OK) st = us_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)sp.bos, err);
  if (st == US_OK) st = us_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)sp.eos, err);
  if (st == US_OK)
    st = us_gguf_add_u32(w, "tokenizer.ggml.seperator_token_id", (uint32_t)sp.sep, err);
  if (st == US_OK)
    st = us_gguf_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)sp.pad, err);
  if (st == US_OK) st = us_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", true, err);
  if (st == US_OK) st = us_gguf_add_bool(w, "tokenizer.ggml.add_eos_token", false, err);
  if (st == US_OK)
    st = us_gguf_add_str(w, "tokenizer.chat_template", US_LM_GGUF_CHAT_TEMPLATE, err);
  return st;
}

/* ---- hyper-parameters and tensors ---- */

static us_status add_hparams(us_gguf_writer *w, const us_lm_config *c, const us_lm_gguf_params *p,
                             us_err *err) {
  us_status st = us_gguf_add_str(w, "general.architecture", "llama", err);
  if (st == US_OK)
    st = us_gguf_add_str(w, "general.name", p->name ? p->name : "understudy student", err);
  if (st == US_OK) st = us_gguf_add_u32(w, "general.file_type", file_type(p->dtype), err);
  if (st == US_OK && p->dtype == US_GGUF_Q8_0)
    st = us_gguf_add_u32(w, "general.quantization_version", 2, err);
  struct {
    const char *key;
    int value;
  } ints[] = {{"llama.context_length", c->context},
              {"llama.embedding_length", c->dim},
              {"llama.block_count", c->layers},
              {"llama.feed_forward_length", c->hidden},
              {"llama.attention.head_count", c->heads},
              {"llama.attention.head_count_kv", heads_kv(c)},
              {"llama.rope.dimension_count", c->dim / c->heads},
              {"llama.vocab_size", c->vocab}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0] && st == US_OK; i++)
    st = us_gguf_add_u32(w, ints[i].key, (uint32_t)ints[i].value, err);
  if (st == US_OK)
    st = us_gguf_add_f32(w, "llama.attention.layer_norm_rms_epsilon", norm_eps(c), err);
  if (st == US_OK) st = us_gguf_add_f32(w, "llama.rope.freq_base", rope_base(c), err);
  return st;
}

/* A (rows, cols) row-major matrix as GGUF ne = {cols, rows}, in dtype (f16 when q8_0 does not
 * fit the row length). */
static us_status add_matrix(us_gguf_writer *w, const char *name, const float *x, int rows, int cols,
                            uint32_t dtype, us_lm_gguf_report *r, us_err *err) {
  uint64_t ne[2] = {(uint64_t)cols, (uint64_t)rows};
  if (dtype == US_GGUF_Q8_0 && cols % 32 != 0) {
    dtype = US_GGUF_F16;
    r->n_fallback_f16++;
  }
  r->n_tensors++;
  return us_gguf_add_tensor(w, name, 2, ne, dtype, x, err);
}

static us_status add_vector(us_gguf_writer *w, const char *name, const float *x, int n,
                            us_lm_gguf_report *r, us_err *err) {
  uint64_t ne[1] = {(uint64_t)n};
  r->n_tensors++;
  return us_gguf_add_tensor(w, name, 1, ne, US_GGUF_F32, x, err);
}

static us_status add_weights(us_gguf_writer *w, const us_lm *lm, uint32_t dtype,
                             us_lm_gguf_report *r, us_err *err) {
  const us_lm_config *c = &lm->config;
  const us__lm_params *p = &lm->w;
  int C = c->dim, F = c->hidden, Ckv = heads_kv(c) * (C / c->heads);
  us_status st = add_matrix(w, "token_embd.weight", p->wte, c->vocab, C, dtype, r, err);
  for (int l = 0; l < c->layers && st == US_OK; l++) {
    const float *qkv = p->wqkv + (size_t)l * (C + 2 * Ckv) * C;
    const float *w13 = p->w13 + (size_t)l * 2 * F * C;
    struct {
      const char *name;
      const float *x;
      int rows, cols; /* cols 0: a norm vector of rows */
    } t[] = {
        {"attn_norm", p->ln1 + (size_t)l * C, C, 0},
        {"attn_q", qkv, C, C},
        {"attn_k", qkv + (size_t)C * C, Ckv, C},
        {"attn_v", qkv + (size_t)(C + Ckv) * C, Ckv, C},
        {"attn_output", p->wo + (size_t)l * C * C, C, C},
        {"ffn_norm", p->ln2 + (size_t)l * C, C, 0},
        {"ffn_gate", w13, F, C},
        {"ffn_up", w13 + (size_t)F * C, F, C},
        {"ffn_down", p->w2 + (size_t)l * C * F, C, F},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0] && st == US_OK; i++) {
      char name[64];
      snprintf(name, sizeof name, "blk.%d.%s.weight", l, t[i].name);
      st = t[i].cols ? add_matrix(w, name, t[i].x, t[i].rows, t[i].cols, dtype, r, err)
                     : add_vector(w, name, t[i].x, t[i].rows, r, err);
    }
  }
  if (st == US_OK) st = add_vector(w, "output_norm.weight", p->lnf, C, r, err);
  /* A tied output layer has no "output.weight": llama.cpp then uses token_embd. */
  if (st == US_OK && c->untied)
    st = add_matrix(w, "output.weight", p->wout, c->vocab, C, dtype, r, err);
  return st;
}

us_status us_lm_export_gguf(const us_lm *lm, const char *path, const us_lm_gguf_params *p,
                            us_lm_gguf_report *report, us_err *err) {
  us_lm_gguf_report r = {0};
  if (report) *report = r;
  if (p->dtype != US_GGUF_F32 && p->dtype != US_GGUF_F16 && p->dtype != US_GGUF_BF16 &&
      p->dtype != US_GGUF_Q8_0)
    return us_err_set(err, US_ERR_CONFIG,
                      "gguf export: tensor type %u: expected f32, f16, bf16 or q8_0", p->dtype);
  us_gguf_writer *w = NULL;
  vocab_texts v;
  us_status st = vocab_build(lm->bpe, &v, err);
  if (st == US_OK) st = us_gguf_writer_new(US_GGUF_DEFAULT_ALIGNMENT, &w, err);
  if (st == US_OK) st = add_hparams(w, &lm->config, p, err);
  if (st == US_OK) st = add_tokenizer(w, lm->bpe, &v, err);
  if (st == US_OK) st = add_weights(w, lm, p->dtype, &r, err);
  if (st == US_OK) st = us_gguf_writer_write(w, path, err);
  if (st != US_OK) us_err_prefix(err, "%s", path);
  r.n_renamed = v.n_renamed;
  us_gguf_writer_free(w);
  vocab_free(&v);
  if (st != US_OK) return st;
  FILE *f = fopen(path, "rb");
  if (f && fseek(f, 0, SEEK_END) == 0) r.bytes = (uint64_t)ftell(f);
  if (f) fclose(f);
  if (report) *report = r;
  return US_OK;
}
