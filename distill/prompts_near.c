/* The prompts stage's near-duplicate pass (distill/prompts_int.h): near-duplicates across the
 * train and test splits are counted, and with data.dedupe_near moved to the test split, so the
 * test numbers cannot be flattered by a prompt the student trained on in all but a few words. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/task.h"
#include "distill/neardup.h"
#include "distill/prompts_int.h"

static size_t find_root(size_t *parent, size_t x) {
  while (parent[x] != x) x = parent[x] = parent[parent[x]];
  return x;
}

/* Adds this run's moves to the workspace's running count (result "near_duplicates"). */
static us_status record(us_cache *cache, const us_prompts_stats *stats, us_err *err) {
  char *json = NULL;
  bool found = false;
  double moved = 0;
  us_status st = us_cache_result_get(cache, "near_duplicates", &json, &found, err);
  if (st) return st;
  if (found) {
    cJSON *o = cJSON_Parse(json);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "moved");
    if (cJSON_IsNumber(m)) moved = m->valuedouble;
    cJSON_Delete(o);
  }
  free(json);
  char buf[160];
  snprintf(buf, sizeof buf, "{\"near_duplicates\":%lld,\"moved\":%.0f,\"jaccard\":%g}",
           (long long)stats->near_duplicates, moved + (double)stats->near_moved,
           US_NEARDUP_JACCARD);
  return us_cache_result_put(cache, "near_duplicates", buf, err);
}

/* Every prompt's id and split, read a window at a time into nd (the texts are not kept). */
#define NEAR_WINDOW 4096
static us_status read_prompts(us_cache *cache, us_neardup *nd, int64_t **ids,
                              unsigned char **splits, size_t *n, us_err *err) {
  size_t cap = 0;
  *ids = NULL, *splits = NULL, *n = 0;
  for (int64_t after = 0;;) {
    us_prompt *page = NULL;
    size_t got = 0;
    us_status st =
        us_cache_prompts_page(cache, US_PROMPT_KIND_PROMPT, after, NEAR_WINDOW, &page, &got, err);
    if (!st && *n + got > cap) {
      size_t c = cap ? cap : NEAR_WINDOW;
      while (c < *n + got) c *= 2;
      int64_t *i2 = realloc(*ids, c * sizeof *i2);
      if (i2) *ids = i2;
      unsigned char *s2 = i2 ? realloc(*splits, c) : NULL;
      if (s2) *splits = s2;
      if (!i2 || !s2)
        st = us_err_set(err, US_ERR_NOMEM, "out of memory looking for near-duplicates");
      else
        cap = c;
    }
    for (size_t i = 0; !st && i < got; i++) {
      st = us_neardup_add(nd, page[i].text, err);
      (*ids)[*n] = page[i].id;
      (*splits)[(*n)++] = (unsigned char)page[i].split;
    }
    if (got) after = page[got - 1].id;
    us_prompts_free(page, got);
    if (st || got < NEAR_WINDOW) return st;
  }
}

us_status us__prompts_near_duplicates(const us_prompts_params *data, us_cache *cache,
                                      us_prompts_stats *stats, us_err *err) {
  double started = us_now();
  int64_t *ids = NULL;
  unsigned char *split = NULL;
  size_t n = 0;
  size_t *parent = NULL;
  unsigned char *spans = NULL, *crosses = NULL;
  us_neardup_pair *pairs = NULL;
  size_t n_pairs = 0;
  us_neardup *nd = NULL;
  int64_t count = 0;
  us_status st = us_neardup_new(&nd, err);
  if (!st) st = us_cache_prompts_count(cache, -1, &count, err);
  if (!st) st = us_neardup_reserve(nd, (size_t)count, err);
  if (!st) st = read_prompts(cache, nd, &ids, &split, &n, err);
  if (!st) st = us_neardup_find(nd, US_NEARDUP_JACCARD, &pairs, &n_pairs, err);
  us_log(US_LOG_DEBUG, "prompts: near-duplicates among %zu prompts: %zu bytes of signatures", n,
         nd ? us_neardup_bytes(nd) : 0);
  us_neardup_free(nd);
  if (st) goto done;
  parent = malloc((n ? n : 1) * sizeof *parent);
  spans = calloc(n ? n : 1, 1); /* per group root: bit 0 train, bit 1 test */
  crosses = calloc(n ? n : 1, 1);
  if (!parent || !spans || !crosses) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory looking for near-duplicates");
    goto done;
  }
  for (size_t i = 0; i < n; i++) parent[i] = i;
  /* groups: prompts joined by near-duplicate pairs, within or across the splits */
  for (size_t k = 0; k < n_pairs; k++) {
    size_t a = find_root(parent, pairs[k].a), b = find_root(parent, pairs[k].b);
    if (a != b) parent[a] = b;
  }
  /* a prompt counts when a near-duplicate of its own is in the other split */
  for (size_t k = 0; k < n_pairs; k++)
    if (split[pairs[k].a] != split[pairs[k].b]) crosses[pairs[k].a] = crosses[pairs[k].b] = 1;
  for (size_t i = 0; i < n; i++) {
    stats->near_duplicates += crosses[i];
    spans[find_root(parent, i)] |= split[i] == US_SPLIT_TEST ? 2 : 1;
  }
  if (data->dedupe_near) {
    st = us_cache_begin(cache, err);
    for (size_t i = 0; i < n && !st; i++) {
      if (split[i] != US_SPLIT_TRAIN || spans[find_root(parent, i)] != 3) continue;
      st = us_cache_prompt_set_split(cache, ids[i], US_SPLIT_TEST, err);
      stats->near_moved++;
    }
    if (st)
      us_cache_rollback(cache, NULL);
    else
      st = us_cache_commit(cache, err);
    if (st) goto done;
  }
  st = record(cache, stats, err);
done:
  stats->near_seconds = us_now() - started;
  free(pairs);
  free(crosses);
  free(spans);
  free(parent);
  free(split);
  free(ids);
  return st;
}
