/* Generation on token ids: the prompt's ids and a greedy continuation with every step's logits,
 * recomputing the whole sequence per step (slow, exact: for comparisons with other runtimes). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "student/lm_int.h"

us_status us_lm_prompt_tokens(const us_lm *lm, const char *prompt, int32_t **ids, int *n_ids,
                              us_err *err) {
  *ids = NULL;
  *n_ids = 0;
  int T = lm->config.context, np = 0;
  int32_t *pt = NULL;
  us_status st = us_bpe_encode(lm->bpe, prompt, strlen(prompt), &pt, &np, err);
  if (st != US_OK) return st;
  int32_t *seq = malloc((size_t)(T + 1) * sizeof *seq);
  if (!seq) {
    free(pt);
    return us_err_set(err, US_ERR_NOMEM, "lm: out of memory");
  }
  /* as us_lm_generate: the chat format, the prompt's end, room for at least one answer token */
  int n = us__lm_format(lm->bpe, pt, np, NULL, 0, T, seq, NULL);
  free(pt);
  *ids = seq;
  *n_ids = n;
  return US_OK;
}

us_status us_lm_greedy_tokens(const us_lm *lm, const int32_t *in, int n_in, int max_new,
                              int32_t *out, int *n_out, float *logits, us_err *err) {
  *n_out = 0;
  const us_lm_config *c = &lm->config;
  int T = c->context, V = c->vocab;
  if (n_in < 1 || n_in > T)
    return us_err_set(err, US_ERR_INPUT, "lm: %d input tokens, expected 1..%d", n_in, T);
  for (int i = 0; i < n_in; i++)
    if (in[i] < 0 || in[i] >= V)
      return us_err_set(err, US_ERR_INPUT, "lm: input token %d is %d, outside 0..%d", i, (int)in[i],
                        V - 1);
  us__lm_acts acts;
  int32_t *buf = malloc(3 * (size_t)T * sizeof *buf);
  us_status st = buf ? us__lm_acts_new(c, 1, T, &acts, err)
                     : us_err_set(err, US_ERR_NOMEM, "lm: out of memory");
  if (st != US_OK) {
    free(buf);
    return st;
  }
  int32_t *seq = buf, *pos = buf + T, *doc = buf + 2 * T;
  for (int i = 0; i < T; i++) {
    pos[i] = i;
    doc[i] = 0;
  }
  memcpy(seq, in, (size_t)n_in * sizeof *seq);
  us_bpe_special sp = us_bpe_specials(lm->bpe);
  int end = us_bpe_chat_format(lm->bpe).end;
  int n = n_in;
  for (int k = 0; k < max_new && n <= T; k++) {
    us__lm_batch batch = {seq, NULL, NULL, pos, doc};
    us__lm_forward(lm, &acts, &batch, 1, n);
    const float *row = acts.logits + (size_t)(n - 1) * V;
    if (logits) memcpy(logits + (size_t)k * V, row, (size_t)V * sizeof *row);
    int best = -1;
    for (int v = 0; v < V; v++)
      if (v != sp.bos && v != sp.sep && v != sp.pad && (best < 0 || row[v] > row[best])) best = v;
    if (!isfinite(row[best])) {
      st = us_err_set(err, US_ERR_FORMAT, "lm: the model gives logits that are not numbers");
      break;
    }
    out[(*n_out)++] = best;
    if (best == sp.eos || best == end || n == T) break;
    seq[n++] = best;
  }
  us__lm_acts_free(&acts);
  free(buf);
  return st;
}
