/* The prompts stage's near-duplicate pass (distill/prompts_int.h): near-duplicates across the
 * train and test splits are counted, and with data.dedupe_near moved to the test split, so the
 * test numbers cannot be flattered by a prompt the student trained on in all but a few words. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
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

us_status us__prompts_near_duplicates(const us_prompts_params *data, us_cache *cache,
                                      us_prompts_stats *stats, us_err *err) {
  double started = us_now();
  us_prompt *p = NULL;
  size_t n = 0;
  us_status st = us_cache_prompts_list(cache, -1, &p, &n, err);
  if (st) return st;
  const char **texts = malloc((n ? n : 1) * sizeof *texts);
  size_t *parent = malloc((n ? n : 1) * sizeof *parent);
  unsigned char *spans = calloc(n ? n : 1, 1); /* per group root: bit 0 train, bit 1 test */
  us_neardup_pair *pairs = NULL;
  size_t n_pairs = 0;
  if (!texts || !parent || !spans) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory looking for near-duplicates");
    goto done;
  }
  for (size_t i = 0; i < n; i++) texts[i] = p[i].text, parent[i] = i;
  st = us_neardup_pairs(texts, n, US_NEARDUP_JACCARD, &pairs, &n_pairs, err);
  if (st) goto done;
  /* groups: prompts joined by near-duplicate pairs, within or across the splits */
  for (size_t k = 0; k < n_pairs; k++) {
    size_t a = find_root(parent, pairs[k].a), b = find_root(parent, pairs[k].b);
    if (a != b) parent[a] = b;
  }
  /* a prompt counts when a near-duplicate of its own is in the other split */
  unsigned char *crosses = calloc(n ? n : 1, 1);
  if (!crosses) {
    st = us_err_set(err, US_ERR_NOMEM, "out of memory looking for near-duplicates");
    goto done;
  }
  for (size_t k = 0; k < n_pairs; k++)
    if (p[pairs[k].a].split != p[pairs[k].b].split) crosses[pairs[k].a] = crosses[pairs[k].b] = 1;
  for (size_t i = 0; i < n; i++) {
    stats->near_duplicates += crosses[i];
    spans[find_root(parent, i)] |= p[i].split == US_SPLIT_TEST ? 2 : 1;
  }
  free(crosses);
  if (data->dedupe_near) {
    st = us_cache_begin(cache, err);
    for (size_t i = 0; i < n && !st; i++) {
      if (p[i].split != US_SPLIT_TRAIN || spans[find_root(parent, i)] != 3) continue;
      st = us_cache_prompt_set_split(cache, p[i].id, US_SPLIT_TEST, err);
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
  free(spans);
  free(parent);
  free(texts);
  us_prompts_free(p, n);
  return st;
}
