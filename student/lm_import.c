/* Starting from a pretrained model: a llama-architecture GGUF file (llama.cpp's conventions) read
 * into the language model with its own tokeniser (byte-level BPE or SentencePiece) and chat
 * format. Tensors are converted to float once, here (F32, F16, BF16, Q8_0), except the
 * projections of a Q8_0 file read for LoRA, which keep their Q8_0 bytes (student/lm_q8.c); the
 * query and key rows stay in the order llama.cpp stores them, which is already the
 * interleaved-pair rotary of student/lm_model.c (llama.cpp's LLAMA_ROPE_TYPE_NORM). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/bytes.h"
#include "core/hash.h"
#include "student/bpe_int.h"
#include "student/finite.h"
#include "student/gguf.h"
#include "student/lm_int.h"

/* Shortest context worth training: the chat format's tokens plus a few of each side. */
#define MIN_FREE_CONTEXT 8

typedef struct importer {
  const us_gguf *g;
  const char *path;
  us_err *err;
} importer;

static us_status get_int(const importer *im, const char *key, bool required, int64_t dflt,
                         int64_t lo, int64_t hi, int *out) {
  int64_t v = dflt;
  us_status st = us_gguf_get_int(im->g, key, &v, im->err);
  if (st == US_ERR_NOT_FOUND && !required) {
    v = dflt;
  } else if (st != US_OK) {
    return st == US_ERR_NOT_FOUND
               ? us_err_set(im->err, US_ERR_FORMAT, "%s: key %s is missing; a llama model needs it",
                            im->path, key)
               : st;
  }
  if (v < lo || v > hi)
    return us_err_set(im->err, US_ERR_FORMAT, "%s: key %s is %lld, this build reads %lld..%lld",
                      im->path, key, (long long)v, (long long)lo, (long long)hi);
  *out = (int)v;
  return US_OK;
}

static us_status get_float(const importer *im, const char *key, double dflt, double *out) {
  us_status st = us_gguf_get_float(im->g, key, out, im->err);
  if (st == US_ERR_NOT_FOUND) {
    *out = dflt;
    return US_OK;
  }
  return st;
}

/* general.architecture and the sizes. */
static us_status read_config(const importer *im, int context, us_lm_config *c) {
  us_gguf_str arch;
  us_status st = us_gguf_get_str(im->g, "general.architecture", &arch, im->err);
  if (st != US_OK) return st;
  if (!us_gguf_str_eq(arch, "llama"))
    return us_err_set(
        im->err, US_ERR_FORMAT,
        "%s: general.architecture is \"%.*s\"; understudy fine-tunes \"llama\" models "
        "only (SmolLM, SmolLM2, TinyLlama-style); convert or pick a llama-family model",
        im->path, (int)(arch.len > 40 ? 40 : arch.len), arch.ptr);
  memset(c, 0, sizeof *c);
  int file_context = 0, key_length = 0;
  if ((st = get_int(im, "llama.block_count", true, 0, 1, US_LM_MAX_LAYERS, &c->layers)) ||
      (st = get_int(im, "llama.embedding_length", true, 0, 2, US_LM_MAX_DIM, &c->dim)) ||
      (st = get_int(im, "llama.feed_forward_length", true, 0, 1, US_LM_MAX_HIDDEN, &c->hidden)) ||
      (st = get_int(im, "llama.attention.head_count", true, 0, 1, 1024, &c->heads)) ||
      (st = get_int(im, "llama.attention.head_count_kv", false, c->heads, 1, 1024, &c->heads_kv)) ||
      (st = get_int(im, "llama.context_length", false, US_LM_MAX_CONTEXT, 4, 1 << 24,
                    &file_context)) ||
      (st = get_int(im, "llama.attention.key_length", false, c->dim / c->heads, 1, 1 << 16,
                    &key_length)))
    return st;
  if (c->dim % c->heads != 0 || key_length != c->dim / c->heads)
    return us_err_set(
        im->err, US_ERR_FORMAT,
        "%s: llama.attention.key_length %d differs from embedding_length / head_count "
        "(%d / %d): head sizes other than dim / heads are not supported",
        im->path, key_length, c->dim, c->heads);
  if (c->heads % c->heads_kv != 0)
    return us_err_set(im->err, US_ERR_FORMAT,
                      "%s: llama.attention.head_count_kv %d does not divide head_count %d",
                      im->path, c->heads_kv, c->heads);
  int rope_dims = 0;
  if ((st = get_int(im, "llama.rope.dimension_count", false, key_length, 1, 1 << 16, &rope_dims)))
    return st;
  if (rope_dims != key_length)
    return us_err_set(
        im->err, US_ERR_FORMAT,
        "%s: llama.rope.dimension_count %d is not the head size %d: partial rotary is "
        "not supported",
        im->path, rope_dims, key_length);
  us_gguf_str scaling;
  if (us_gguf_get_str(im->g, "llama.rope.scaling.type", &scaling, NULL) == US_OK &&
      !us_gguf_str_eq(scaling, "none"))
    return us_err_set(im->err, US_ERR_FORMAT,
                      "%s: llama.rope.scaling.type is \"%.*s\": rope scaling is not supported",
                      im->path, (int)(scaling.len > 40 ? 40 : scaling.len), scaling.ptr);
  if ((st = get_float(im, "llama.rope.freq_base", US_LM_ROPE_BASE, &c->rope_base)) ||
      (st = get_float(im, "llama.attention.layer_norm_rms_epsilon", US_LM_NORM_EPS, &c->norm_eps)))
    return st;
  c->context = context < file_context ? context : file_context;
  if (c->context > US_LM_MAX_CONTEXT) c->context = US_LM_MAX_CONTEXT;
  c->untied = us_gguf_find_tensor(im->g, "output.weight") ? 1 : 0;
  return US_OK;
}

/* ---- tokeniser ---- */

static us_status read_pretok(const importer *im, us_bpe_pretok *out) {
  static const struct {
    const char *name;
    us_bpe_pretok kind;
  } known[] = {{"default", US_BPE_PRE_GPT2},     {"gpt2", US_BPE_PRE_GPT2},
               {"gpt-2", US_BPE_PRE_GPT2},       {"smollm", US_BPE_PRE_SMOLLM},
               {"starcoder", US_BPE_PRE_SMOLLM}, {"refact", US_BPE_PRE_SMOLLM},
               {"codeshell", US_BPE_PRE_SMOLLM}, {"llama-bpe", US_BPE_PRE_LLAMA3},
               {"llama3", US_BPE_PRE_LLAMA3},    {"qwen2", US_BPE_PRE_QWEN2}};
  us_gguf_str pre;
  us_status st = us_gguf_get_str(im->g, "tokenizer.ggml.pre", &pre, im->err);
  if (st == US_ERR_NOT_FOUND) { /* llama.cpp falls back to GPT-2's split too */
    *out = US_BPE_PRE_GPT2;
    return US_OK;
  }
  if (st != US_OK) return st;
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (us_gguf_str_eq(pre, known[i].name)) {
      *out = known[i].kind;
      return US_OK;
    }
  return us_err_set(im->err, US_ERR_FORMAT,
                    "%s: tokenizer.ggml.pre is \"%.*s\", a pre-tokeniser this build does not know; "
                    "it splits text like llama.cpp for default, gpt2, smollm, starcoder, refact, "
                    "codeshell, llama-bpe and qwen2",
                    im->path, (int)(pre.len > 40 ? 40 : pre.len), pre.ptr);
}

/* The strings of an array key into ptrs / lens (caller frees both); *n their count. */
static us_status str_array(const importer *im, const char *key, const char ***ptrs, size_t **lens,
                           int *n) {
  us_gguf_type elem;
  uint64_t count = 0;
  us_status st = us_gguf_get_array(im->g, key, &elem, &count, im->err);
  if (st == US_ERR_NOT_FOUND)
    return us_err_set(im->err, US_ERR_FORMAT, "%s: key %s is missing; the tokeniser needs it",
                      im->path, key);
  if (st != US_OK) return st;
  if (elem != US_GGUF_STRING || count > 4u * US_BPE_MAX_IMPORTED_VOCAB)
    return us_err_set(im->err, US_ERR_FORMAT, "%s: key %s should be an array of at most %d strings",
                      im->path, key, 4 * US_BPE_MAX_IMPORTED_VOCAB);
  *ptrs = malloc((count + 1) * sizeof **ptrs);
  *lens = malloc((count + 1) * sizeof **lens);
  if (!*ptrs || !*lens) return us_err_set(im->err, US_ERR_NOMEM, "%s: out of memory", im->path);
  for (uint64_t i = 0; i < count; i++) {
    us_gguf_str s;
    if ((st = us_gguf_array_str(im->g, key, i, &s, im->err)) != US_OK) return st;
    (*ptrs)[i] = s.ptr;
    (*lens)[i] = (size_t)s.len;
  }
  *n = (int)count;
  return US_OK;
}

/* tokenizer.ggml.token_type into a new array (NULL when the key is absent: all normal). */
static us_status read_types(const importer *im, int n_tokens, int32_t **out) {
  *out = NULL;
  us_gguf_type elem;
  uint64_t n_types = 0;
  if (us_gguf_get_array(im->g, "tokenizer.ggml.token_type", &elem, &n_types, NULL) != US_OK)
    return US_OK;
  if (n_types != (uint64_t)n_tokens)
    return us_err_set(im->err, US_ERR_FORMAT,
                      "%s: tokenizer.ggml.token_type has %llu entries for %d tokens", im->path,
                      (unsigned long long)n_types, n_tokens);
  int32_t *types = malloc((size_t)(n_tokens ? n_tokens : 1) * sizeof *types);
  if (!types) return us_err_set(im->err, US_ERR_NOMEM, "%s: out of memory", im->path);
  for (int i = 0; i < n_tokens; i++) {
    int64_t v;
    us_status st = us_gguf_array_int(im->g, "tokenizer.ggml.token_type", (uint64_t)i, &v, im->err);
    if (st != US_OK) {
      free(types);
      return st;
    }
    types[i] = (int32_t)v;
  }
  *out = types;
  return US_OK;
}

/* tokenizer.ggml.scores into a new array (all 0 when absent, as llama.cpp). */
static us_status read_scores(const importer *im, int n_tokens, float **out) {
  float *scores = calloc((size_t)(n_tokens ? n_tokens : 1), sizeof *scores);
  if (!scores) return us_err_set(im->err, US_ERR_NOMEM, "%s: out of memory", im->path);
  us_gguf_type elem;
  uint64_t n = 0;
  us_status st = US_OK;
  if (us_gguf_get_array(im->g, "tokenizer.ggml.scores", &elem, &n, NULL) == US_OK) {
    if (n != (uint64_t)n_tokens)
      st = us_err_set(im->err, US_ERR_FORMAT,
                      "%s: tokenizer.ggml.scores has %llu entries for %d tokens", im->path,
                      (unsigned long long)n, n_tokens);
    for (int i = 0; st == US_OK && i < n_tokens; i++) {
      double v;
      st = us_gguf_array_float(im->g, "tokenizer.ggml.scores", (uint64_t)i, &v, im->err);
      scores[i] = (float)v;
    }
  }
  if (st != US_OK) {
    free(scores);
    return st;
  }
  *out = scores;
  return US_OK;
}

/* A SentencePiece ("llama") vocabulary: llama.cpp's defaults are BOS 1, EOS 2, unknown 0 and a
 * prefix space. */
static us_status read_spm(const importer *im, us_bpe **out) {
  const char **tokens = NULL;
  size_t *lens = NULL;
  int32_t *types = NULL;
  float *scores = NULL;
  int n = 0, unk = 0, pad = -1;
  us_bpe_special sp = {1, 2, 1, 1};
  bool prefix = true;
  us_status st;
  if ((st = str_array(im, "tokenizer.ggml.tokens", &tokens, &lens, &n)) ||
      (st = get_int(im, "tokenizer.ggml.bos_token_id", false, 1, 0, n - 1, &sp.bos)) ||
      (st = get_int(im, "tokenizer.ggml.eos_token_id", false, 2, 0, n - 1, &sp.eos)) ||
      (st = get_int(im, "tokenizer.ggml.unknown_token_id", false, n > 0 ? 0 : -1, -1, n - 1,
                    &unk)) ||
      (st = get_int(im, "tokenizer.ggml.padding_token_id", false, -1, -1, n - 1, &pad)) ||
      (st = read_types(im, n, &types)) || (st = read_scores(im, n, &scores)))
    goto done;
  if (us_gguf_get_bool(im->g, "tokenizer.ggml.add_space_prefix", &prefix, NULL) != US_OK)
    prefix = true;
  sp.sep = sp.bos;
  sp.pad = pad >= 0 && pad != sp.eos ? pad : sp.bos;
  st = us_bpe_from_spm(n, tokens, lens, types, scores, sp, unk, prefix, out, im->err);
  if (st != US_OK) us_err_prefix(im->err, "%s", im->path);
done:
  free(tokens);
  free(lens);
  free(types);
  free(scores);
  return st;
}

static us_status read_tokeniser(const importer *im, us_bpe **out) {
  us_gguf_str model;
  us_status st = us_gguf_get_str(im->g, "tokenizer.ggml.model", &model, im->err);
  if (st == US_ERR_NOT_FOUND)
    return us_err_set(im->err, US_ERR_FORMAT,
                      "%s: key tokenizer.ggml.model is missing: the file carries no tokeniser",
                      im->path);
  if (st != US_OK) return st;
  if (us_gguf_str_eq(model, "llama")) return read_spm(im, out);
  if (!us_gguf_str_eq(model, "gpt2"))
    return us_err_set(im->err, US_ERR_FORMAT,
                      "%s: tokenizer.ggml.model is \"%.*s\"; this build reads byte-level BPE "
                      "(\"gpt2\") and SentencePiece (\"llama\") tokenisers only",
                      im->path, (int)(model.len > 40 ? 40 : model.len), model.ptr);
  us_bpe_pretok pretok = US_BPE_PRE_GPT2;
  if ((st = read_pretok(im, &pretok)) != US_OK) return st;
  const char **tokens = NULL, **merges = NULL;
  size_t *tok_lens = NULL, *merge_lens = NULL;
  int32_t *types = NULL;
  int n_tokens = 0, n_merges = 0;
  us_bpe_special sp = {0, 0, 0, 0};
  int pad = -1;
  if ((st = str_array(im, "tokenizer.ggml.tokens", &tokens, &tok_lens, &n_tokens)) ||
      (st = str_array(im, "tokenizer.ggml.merges", &merges, &merge_lens, &n_merges)) ||
      (st = get_int(im, "tokenizer.ggml.bos_token_id", true, 0, 0, n_tokens - 1, &sp.bos)) ||
      (st = get_int(im, "tokenizer.ggml.eos_token_id", true, 0, 0, n_tokens - 1, &sp.eos)) ||
      (st = get_int(im, "tokenizer.ggml.padding_token_id", false, -1, -1, n_tokens - 1, &pad)))
    goto done;
  if ((st = read_types(im, n_tokens, &types)) != US_OK) goto done;
  /* no separator: generation never picks BOS, nor the padding token when it is not EOS */
  sp.sep = sp.bos;
  sp.pad = pad >= 0 && pad != sp.eos ? pad : sp.bos;
  st = us_bpe_from_vocab(n_tokens, tokens, tok_lens, types, n_merges, merges, merge_lens, pretok,
                         sp, out, im->err);
  if (st != US_OK) us_err_prefix(im->err, "%s", im->path);
done:
  free(tokens);
  free(tok_lens);
  free(merges);
  free(merge_lens);
  free(types);
  return st;
}

/* ---- chat format ---- */

static bool contains(us_gguf_str s, const char *needle) {
  size_t n = strlen(needle);
  for (uint64_t i = 0; i + n <= s.len; i++)
    if (memcmp(s.ptr + i, needle, n) == 0) return true;
  return false;
}

/* ChatML templates that add a default system message when the conversation has none (SmolLM2's):
 * the literal text between "<|im_start|>system" and the next "<|im_end|>", with the Jinja
 * escape \n turned into a newline; "" when there is none or it holds an expression. */
static void default_system(us_gguf_str t, char *out, size_t cap) {
  out[0] = 0;
  const char *start = "<|im_start|>system";
  size_t sl = strlen(start);
  for (uint64_t i = 0; i + sl <= t.len; i++) {
    if (memcmp(t.ptr + i, start, sl) != 0) continue;
    size_t j = (size_t)i + sl, o = 0;
    for (; j + 10 <= t.len && memcmp(t.ptr + j, "<|im_end|>", 10) != 0; j++) {
      char ch = t.ptr[j];
      if (ch == '{' || ch == '}' || ch == '\'' || ch == '"') return; /* an expression */
      if (ch == '\\' && j + 1 < t.len && t.ptr[j + 1] == 'n') {
        ch = '\n';
        j++;
      }
      if (o + 1 >= cap) return;
      out[o++] = ch;
    }
    out[o] = 0;
    if (o < 2 || out[0] != '\n') out[0] = 0; /* "<|im_start|>system\n..." expected */
    return;
  }
}

static us_status set_chat(const importer *im, us_bpe *bpe) {
  us_gguf_str t = {"", 0};
  us_status st = us_gguf_get_str(im->g, "tokenizer.chat_template", &t, NULL);
  us_gguf_str model = {"", 0};
  us_gguf_get_str(im->g, "tokenizer.ggml.model", &model, NULL);
  bool add_bos = us_gguf_str_eq(model, "llama"); /* llama.cpp's default for SentencePiece */
  if (us_gguf_get_bool(im->g, "tokenizer.ggml.add_bos_token", &add_bos, NULL) != US_OK)
    add_bos = us_gguf_str_eq(model, "llama");
  us_bpe_special sp = us_bpe_specials(bpe);
  bool have = st == US_OK;
  if (have && contains(t, "<|im_start|>") && us_bpe_find_token(bpe, "<|im_end|>", 10) >= 0) {
    char sys[1024], head[1100];
    default_system(t, sys, sizeof sys);
    snprintf(head, sizeof head, "%s%s%suser\n", sys[0] ? "<|im_start|>system" : "", sys,
             sys[0] ? "<|im_end|>\n<|im_start|>" : "<|im_start|>");
    return us_bpe_set_chat(bpe, US_LM_CHAT_CHATML, add_bos, head,
                           "<|im_end|>\n<|im_start|>assistant\n",
                           us_bpe_find_token(bpe, "<|im_end|>", 10), im->err);
  }
  if (have && contains(t, "<|start_header_id|>") && us_bpe_find_token(bpe, "<|eot_id|>", 10) >= 0)
    return us_bpe_set_chat(bpe, US_LM_CHAT_LLAMA3, true,
                           "<|start_header_id|>user<|end_header_id|>\n\n",
                           "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
                           us_bpe_find_token(bpe, "<|eot_id|>", 10), im->err);
  if (have && contains(t, "<|user|>") && contains(t, "<|assistant|>")) { /* zephyr, TinyLlama's */
    const char *eos = bpe->vocab->texts[sp.eos];
    int len = (int)bpe->vocab->text_lens[sp.eos];
    char mid[256];
    snprintf(mid, sizeof mid, "%.*s\n<|assistant|>\n", len > 200 ? 0 : len, eos);
    return us_bpe_set_chat(bpe, US_LM_CHAT_ZEPHYR, add_bos, "<|user|>\n", mid, sp.eos, im->err);
  }
  if (have && contains(t, "[INST]"))
    return us_bpe_set_chat(bpe, US_LM_CHAT_LLAMA2, true, "[INST] ", " [/INST]", sp.eos, im->err);
  /* no template, or one not recognised: documented fallback (docs/lm.md) */
  return us_bpe_set_chat(bpe, US_LM_CHAT_FALLBACK, add_bos, "", "\n", sp.eos, im->err);
}

const char *us_lm_chat_format_name(const us_lm *lm) {
  switch (us_bpe_chat_format(lm->bpe).kind) {
    case US_LM_CHAT_CHATML:
      return "chatml";
    case US_LM_CHAT_LLAMA3:
      return "llama3";
    case US_LM_CHAT_LLAMA2:
      return "llama2";
    case US_LM_CHAT_ZEPHYR:
      return "zephyr";
    case US_LM_CHAT_FALLBACK:
      return "fallback (prompt, newline, answer, EOS)";
    default:
      return "native ([BOS] prompt [SEP] answer [EOS])";
  }
}

/* ---- tensors ---- */

/* Tensor name, of ggml shape {ne0, ne1} (ne1 0: a vector of ne0) and a type this build reads. */
static us_status find_tensor(const importer *im, const char *name, uint64_t ne0, uint64_t ne1,
                             const us_gguf_tensor **out) {
  const us_gguf_tensor *t = us_gguf_find_tensor(im->g, name);
  if (!t)
    return us_err_set(im->err, US_ERR_FORMAT, "%s: tensor %s is missing; a llama model needs it",
                      im->path, name);
  uint32_t want_dims = ne1 ? 2 : 1;
  bool shape_ok = t->ne[0] == ne0 && t->ne[1] == (ne1 ? ne1 : 1) && t->ne[2] == 1 && t->ne[3] == 1;
  if (!shape_ok || t->n_dims > want_dims)
    return us_err_set(im->err, US_ERR_FORMAT,
                      "%s: tensor %s has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu] "
                      "from the file's hyper-parameters",
                      im->path, name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                      (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                      (unsigned long long)ne0, (unsigned long long)(ne1 ? ne1 : 1));
  if (t->dtype != US_GGUF_F32 && t->dtype != US_GGUF_F16 && t->dtype != US_GGUF_BF16 &&
      t->dtype != US_GGUF_Q8_0) {
    const char *type = us_gguf_dtype_name(t->dtype);
    return us_err_set(im->err, US_ERR_FORMAT,
                      "%s: tensor %s has type %s (%u); this build reads f32, f16, bf16 and q8_0: "
                      "use the model's f16 or q8_0 GGUF",
                      im->path, name, type ? type : "unknown", t->dtype);
  }
  *out = t;
  return US_OK;
}

/* Converts tensor name into dst (floats). */
static us_status load_tensor(const importer *im, const char *name, uint64_t ne0, uint64_t ne1,
                             float *dst) {
  const us_gguf_tensor *t = NULL;
  us_status st = find_tensor(im, name, ne0, ne1, &t);
  return st != US_OK ? st : us_gguf_tensor_float(im->g, t, dst, t->n_elements, im->err);
}

/* Copies a Q8_0 tensor's bytes to dst as they are, refusing a scale that is not finite. */
static us_status load_q8(const importer *im, const char *name, uint64_t ne0, uint64_t ne1,
                         unsigned char *dst) {
  const us_gguf_tensor *t = NULL;
  us_status st = find_tensor(im, name, ne0, ne1, &t);
  if (st != US_OK) return st;
  if (t->dtype != US_GGUF_Q8_0)
    return us_err_set(im->err, US_ERR_FORMAT, "%s: tensor %s is not q8_0 like the others", im->path,
                      name);
  for (uint64_t b = 0; b < t->bytes; b += US_LM_Q8_BLOCK_BYTES)
    if ((us_get_le16(t->data + b) & 0x7c00u) == 0x7c00u)
      return us_err_set(im->err, US_ERR_FORMAT, "%s: tensor %s: a block scale is not finite",
                        im->path, name);
  memcpy(dst, t->data, t->bytes);
  return US_OK;
}

/* Tensors a llama model may carry that this build does not compute: refused, not ignored. */
static us_status refuse_extras(const importer *im) {
  for (uint64_t i = 0; i < us_gguf_n_tensors(im->g); i++) {
    const us_gguf_tensor *t = us_gguf_tensor_at(im->g, i);
    bool bias = t->name.len > 5 && memcmp(t->name.ptr + t->name.len - 5, ".bias", 5) == 0;
    if (bias || us_gguf_str_eq(t->name, "rope_freqs.weight"))
      return us_err_set(im->err, US_ERR_FORMAT,
                        "%s: tensor %.*s is not supported (biases and rope frequency factors are "
                        "not part of the llama model this build trains)",
                        im->path, (int)t->name.len, t->name.ptr);
  }
  return US_OK;
}

static us_status load_weights(const importer *im, us_lm *lm) {
  const us_lm_config *c = &lm->config;
  const us__lm_params *w = &lm->w;
  const us__lm_q8 *q = lm->q8;
  uint64_t C = (uint64_t)c->dim, F = (uint64_t)c->hidden, V = (uint64_t)c->vocab;
  uint64_t CKV = (uint64_t)us__lm_heads_kv(c) * (C / (uint64_t)c->heads);
  uint64_t QKV = C + 2 * CKV;
  us_status st = refuse_extras(im);
  if (st == US_OK) st = load_tensor(im, "token_embd.weight", C, V, w->wte);
  if (st == US_OK && c->untied) st = load_tensor(im, "output.weight", C, V, w->wout);
  if (st == US_OK) st = load_tensor(im, "output_norm.weight", C, 0, w->lnf);
  for (int l = 0; st == US_OK && l < c->layers; l++) {
    size_t L = (size_t)l;
    /* float destinations (NULL for a Q8_0 base's projections: their rows go to q8) */
    float *qkv = q ? NULL : w->wqkv + L * QKV * C, *w13 = q ? NULL : w->w13 + L * 2 * F * C;
    struct {
      const char *part;
      uint64_t ne0, ne1;
      float *dst;
      int kind;     /* the projection, -1 for a norm */
      uint64_t row; /* first row within the fused matrix */
    } parts[] = {
        {"attn_norm", C, 0, w->ln1 + L * C, -1, 0},
        {"attn_q", C, C, qkv, US_LM_LORA_QKV, 0},
        {"attn_k", C, CKV, q ? NULL : qkv + C * C, US_LM_LORA_QKV, C},
        {"attn_v", C, CKV, q ? NULL : qkv + (C + CKV) * C, US_LM_LORA_QKV, C + CKV},
        {"attn_output", C, C, q ? NULL : w->wo + L * C * C, US_LM_LORA_O, 0},
        {"ffn_norm", C, 0, w->ln2 + L * C, -1, 0},
        {"ffn_gate", C, F, w13, US_LM_LORA_13, 0},
        {"ffn_up", C, F, q ? NULL : w13 + F * C, US_LM_LORA_13, F},
        {"ffn_down", F, C, q ? NULL : w->w2 + L * C * F, US_LM_LORA_2, 0},
    };
    for (size_t k = 0; st == US_OK && k < sizeof parts / sizeof parts[0]; k++) {
      char name[96];
      snprintf(name, sizeof name, "blk.%d.%s.weight", l, parts[k].part);
      int kind = parts[k].kind;
      if (q && kind >= 0) {
        size_t row = L * (size_t)q->out[kind] + (size_t)parts[k].row;
        st = load_q8(im, name, parts[k].ne0, parts[k].ne1, q->w[kind] + row * q->row_bytes[kind]);
      } else {
        st = load_tensor(im, name, parts[k].ne0, parts[k].ne1, parts[k].dst);
      }
    }
  }
  return st;
}

/* True when every projection of every layer is Q8_0, so LoRA can keep them as they are. */
static bool projections_q8(const importer *im, int layers) {
  static const char *parts[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                "ffn_gate", "ffn_up", "ffn_down"};
  for (int l = 0; l < layers; l++)
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
      char name[96];
      snprintf(name, sizeof name, "blk.%d.%s.weight", l, parts[k]);
      const us_gguf_tensor *t = us_gguf_find_tensor(im->g, name);
      if (!t || t->dtype != US_GGUF_Q8_0) return false;
    }
  return true;
}

/* What identifies the base: the file's size and a hash of every tensor's name, type, shape and
 * bytes (a file re-quantised, fine-tuned or re-exported hashes differently). */
static void identify(const importer *im, us_lm *lm) {
  struct stat sb;
  lm->base_bytes = stat(im->path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
  uint64_t h = us_hash64("understudy base", 15, 0);
  for (uint64_t i = 0; i < us_gguf_n_tensors(im->g); i++) {
    const us_gguf_tensor *t = us_gguf_tensor_at(im->g, i);
    uint64_t info[1 + US_GGUF_MAX_DIMS] = {t->dtype};
    memcpy(info + 1, t->ne, sizeof t->ne);
    h = us_hash64(t->name.ptr, (size_t)t->name.len, h);
    h = us_hash64(info, sizeof info, h);
    h = us_hash64(t->data, (size_t)t->bytes, h);
  }
  lm->base_hash = h;
}

us_status us__lm_import(const char *path, int context, bool keep_q8, us_lm **out, us_err *err) {
  *out = NULL;
  us_gguf *g = NULL;
  us_status st = us_gguf_read_file(path, &g, err);
  if (st != US_OK) return st;
  importer im = {g, path, err};
  us_lm_config c;
  us_bpe *bpe = NULL;
  us_lm *lm = NULL;
  if ((st = read_config(&im, context, &c)) != US_OK || (st = read_tokeniser(&im, &bpe)) != US_OK ||
      (st = set_chat(&im, bpe)) != US_OK)
    goto done;
  us_bpe_chat f = us_bpe_chat_format(bpe);
  c.vocab = us_bpe_vocab_size(bpe);
  if (c.context < f.n_head + f.n_mid + MIN_FREE_CONTEXT) {
    st = us_err_set(err, US_ERR_CONFIG,
                    "context: %d tokens leave no room: %s's chat format takes %d; raise "
                    "student.context",
                    c.context, path, f.n_head + f.n_mid + 1);
    goto done;
  }
  if ((st = us_lm_config_check(&c, err)) != US_OK) {
    us_err_prefix(err, "%s", path);
    if (err) err->code = US_ERR_FORMAT;
    st = US_ERR_FORMAT;
    goto done;
  }
  st = keep_q8 && projections_q8(&im, c.layers) ? us__lm_new_q8(&c, bpe, &lm, err)
                                                : us_lm_new(&c, bpe, 0, &lm, err);
  bpe = NULL; /* us_lm_new took it */
  if (st == US_OK) st = load_weights(&im, lm);
  if (st == US_OK) {
    size_t bad = us__first_nonfinite(lm->block, lm->n_params);
    if (bad < lm->n_params)
      st = us_err_set(err, US_ERR_FORMAT, "%s: weight %zu is not a finite number", path, bad);
  }
  if (st == US_OK) identify(&im, lm);
done:
  us_bpe_free(bpe);
  us_gguf_free(g);
  if (st != US_OK) {
    us_lm_free(lm);
    return st;
  }
  *out = lm;
  return US_OK;
}

us_status us_lm_import_gguf(const char *path, int context, us_lm **out, us_err *err) {
  return us__lm_import(path, context, false, out, err);
}
