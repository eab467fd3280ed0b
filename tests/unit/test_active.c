/* Active labelling: the selection maths (student/select.h) on hand-made pools (coverage picks one
 * prompt per cluster before a second from any, uncertainty orders margin and entropy, a batch
 * skips near-copies when diversity is on), the settings (pipeline/active.h: counts and
 * fractions, the check) and the stopping rules, and the workspace's record of picks and rounds
 * (cache/active.h, schema 4). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* cmocka.h needs the headers above it first */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "cache/active.h"
#include "cache/cache.h"
#include "core/buf.h"
#include "eval/report.h"
#include "pipeline/active.h"
#include "student/select.h"

#define DIM 256

/* Three clusters of near-identical prompts, of different sizes. */
static const char *const pool[] = {
    "my card was declined at the shop",
    "my card was declined at the store",
    "my card was declined at a shop",
    "my card got declined at the shop",
    "how do I change my PIN",
    "how can I change my PIN",
    "what is the exchange rate for euros",
    "what's the exchange rate for euros today",
};
#define N_POOL (sizeof pool / sizeof pool[0])

static int cluster_of(size_t i) {
  return i < 4 ? 0 : i < 6 ? 1 : 2;
}

static void features_should_be_normalised_and_alike_for_near_copies(void **state) {
  (void)state;
  float f[N_POOL * DIM];
  us_select_features(pool, N_POOL, DIM, f);
  for (size_t i = 0; i < N_POOL; i++) {
    double norm = 0;
    for (int d = 0; d < DIM; d++) norm += (double)f[i * DIM + d] * f[i * DIM + d];
    assert_true(fabs(norm - 1) < 1e-5);
  }
  /* same cluster: closer than any other cluster */
  double near = us_select_distance(f, f + 1 * DIM, DIM);
  double far = us_select_distance(f, f + 4 * DIM, DIM);
  assert_true(near < far);
  assert_true(us_select_distance(f, f, DIM) < 1e-6);
  /* case and punctuation do not matter */
  const char *two[] = {"How do I change my PIN?", "how do i change my pin"};
  float g[2 * DIM];
  us_select_features(two, 2, DIM, g);
  assert_true(us_select_distance(g, g + DIM, DIM) < 1e-6);
  const char *empty[] = {"", "?!"};
  us_select_features(empty, 2, DIM, g);
  for (int d = 0; d < 2 * DIM; d++) assert_true(g[d] == 0);
}

static void coverage_should_pick_every_cluster_before_a_second_from_one(void **state) {
  (void)state;
  float f[N_POOL * DIM];
  us_select_features(pool, N_POOL, DIM, f);
  size_t out[N_POOL];
  assert_int_equal(us_select_coverage(f, N_POOL, DIM, NULL, 3, out), 3);
  bool seen[3] = {false, false, false};
  for (int i = 0; i < 3; i++) seen[cluster_of(out[i])] = true;
  assert_true(seen[0] && seen[1] && seen[2]);
  /* the first pick is a typical prompt: from the biggest cluster */
  assert_int_equal(cluster_of(out[0]), 0);
  /* deterministic */
  size_t again[3];
  us_select_coverage(f, N_POOL, DIM, NULL, 3, again);
  assert_memory_equal(out, again, sizeof again);
  /* with clusters 0 and 1 taken, the next pick covers cluster 2 */
  bool taken[N_POOL] = {true, false, false, false, true};
  assert_int_equal(us_select_coverage(f, N_POOL, DIM, taken, 1, out), 1);
  assert_int_equal(cluster_of(out[0]), 2);
  /* never more than the pool */
  assert_int_equal(us_select_coverage(f, N_POOL, DIM, taken, 100, out), N_POOL - 2);
  for (size_t i = 0; i < N_POOL - 2; i++) assert_true(out[i] != 0 && out[i] != 4);
}

static void uncertainty_should_order_sure_before_unsure(void **state) {
  (void)state;
  const float sure[4] = {0.97f, 0.01f, 0.01f, 0.01f};
  const float torn[4] = {0.45f, 0.44f, 0.1f, 0.01f};
  const float flat[4] = {0.25f, 0.25f, 0.25f, 0.25f};
  assert_true(us_select_margin(sure, 4) < us_select_margin(torn, 4));
  assert_true(us_select_margin(torn, 4) <= us_select_margin(flat, 4));
  assert_true(fabs(us_select_margin(flat, 4) - 1) < 1e-9);
  assert_true(fabs(us_select_margin(sure, 4) - 0.04) < 1e-6);
  assert_true(us_select_entropy(sure, 4) < us_select_entropy(torn, 4));
  assert_true(us_select_entropy(torn, 4) < us_select_entropy(flat, 4));
  assert_true(fabs(us_select_entropy(flat, 4) - 1) < 1e-6);
  assert_true(us_select_margin(sure, 1) == 0);
}

static void batch_should_follow_uncertainty_and_skip_near_copies_with_diversity(void **state) {
  (void)state;
  float f[N_POOL * DIM];
  us_select_features(pool, N_POOL, DIM, f);
  size_t cand[N_POOL];
  /* cluster 0 is the most uncertain, then cluster 2, then cluster 1 */
  double u[N_POOL] = {0.9, 0.89, 0.88, 0.87, 0.2, 0.1, 0.6, 0.5};
  for (size_t i = 0; i < N_POOL; i++) cand[i] = i;
  size_t out[3];
  /* diversity 0: pure uncertainty order, all from cluster 0 */
  assert_int_equal(us_select_batch(f, DIM, cand, u, N_POOL, 3, 0, out), 3);
  assert_int_equal(out[0], 0);
  assert_int_equal(out[1], 1);
  assert_int_equal(out[2], 2);
  /* diversity on: the most uncertain first, then a different cluster before a near-copy */
  assert_int_equal(us_select_batch(f, DIM, cand, u, N_POOL, 3, 0.5, out), 3);
  assert_int_equal(out[0], 0);
  assert_int_equal(cluster_of(out[1]), 2);
  bool clusters[3] = {false, false, false};
  for (int i = 0; i < 3; i++) clusters[cluster_of(out[i])] = true;
  assert_true(clusters[0] && clusters[2]);
  /* candidates are row indices: a subset maps back to its rows */
  size_t sub[2] = {5, 7};
  double su[2] = {0.1, 0.2};
  assert_int_equal(us_select_batch(f, DIM, sub, su, 2, 5, 0.3, out), 2);
  assert_int_equal(out[0], 7);
  assert_int_equal(out[1], 5);
  assert_int_equal(us_select_batch(f, DIM, sub, su, 0, 5, 0.3, out), 0);
}

static void counts_should_read_fractions_and_whole_counts(void **state) {
  (void)state;
  assert_int_equal(us_active_count(0.1, 12859, 1000), 1000); /* 10%, capped */
  assert_int_equal(us_active_count(0.1, 5000, 1000), 500);
  assert_int_equal(us_active_count(0.05, 101, 0), 6); /* rounds up */
  assert_int_equal(us_active_count(1.0, 777, 0), 777);
  assert_int_equal(us_active_count(250, 777, 0), 250);
  assert_int_equal(us_active_count(2000, 777, 0), 777);
  assert_int_equal(us_active_count(0.5, 0, 0), 0);
}

static void settings_should_have_defaults_and_checks(void **state) {
  (void)state;
  us_active_params p;
  us_active_params_defaults(&p);
  us_err err = {0};
  assert_int_equal(us_active_params_check(&p, &err), US_OK);
  assert_false(us_active_enabled(&p));
  assert_true(fabs(p.min_gain - 0.25) < 1e-12);
  p.strategy = "active";
  assert_true(us_active_enabled(&p));
  assert_int_equal(us_active_params_check(&p, &err), US_OK);
  p.strategy = "some";
  assert_int_equal(us_active_params_check(&p, &err), US_ERR_CONFIG);
  assert_non_null(strstr(err.msg, "strategy: expected \"all\" or \"active\""));
  p.strategy = NULL;
  p.round_prompts = 2.5;
  assert_int_equal(us_active_params_check(&p, &err), US_ERR_CONFIG);
  assert_true(strncmp(err.msg, "round_prompts:", 14) == 0);
  p.round_prompts = 0;
  assert_int_equal(us_active_params_check(&p, &err), US_ERR_CONFIG);
  assert_true(strncmp(err.msg, "round_prompts:", 14) == 0);
  us_active_params_defaults(&p);
  p.min_gain = -1;
  assert_int_equal(us_active_params_check(&p, &err), US_ERR_CONFIG);
  assert_true(strncmp(err.msg, "min_gain:", 9) == 0);
}

static us_active_round round_at(int round, int64_t labelled, double valid, double back) {
  us_active_round r = {.round = round, .n_labelled = labelled};
  r.valid_agreement = valid;
  r.valid_back = back;
  return r;
}

static void stopping_rules_should_hold(void **state) {
  (void)state;
  us_active_params p;
  us_active_params_defaults(&p);
  us_active_round r[4] = {round_at(1, 100, 0.80, -1), round_at(2, 150, 0.84, -1),
                          round_at(3, 200, 0.86, 0.85), round_at(4, 250, 0.87, 0.8525)};
  /* going on: not enough rounds for the gain rule */
  assert_null(us_active_stop_reason(&p, r, 1, 1000, 1000));
  assert_null(us_active_stop_reason(&p, r, 2, 1000, 1000));
  /* round 3 scores 85% on round 1's slice, round 1 scored 80%: +5 points */
  assert_null(us_active_stop_reason(&p, r, 3, 1000, 1000));
  /* round 4 scores 85.25% on round 2's slice, round 2 scored 84%: +1.25 points */
  assert_null(us_active_stop_reason(&p, r, 4, 1000, 1000));
  p.min_gain = 1.5;
  assert_string_equal(us_active_stop_reason(&p, r, 4, 1000, 1000), "min_gain");
  /* exactly the minimum gain goes on; a loss stops */
  p.min_gain = 1.25;
  assert_null(us_active_stop_reason(&p, r, 4, 1000, 1000));
  r[3].valid_back = 0.83;
  p.min_gain = 0.25;
  assert_string_equal(us_active_stop_reason(&p, r, 4, 1000, 1000), "min_gain");
  /* 0 turns the gain rule off */
  p.min_gain = 0;
  assert_null(us_active_stop_reason(&p, r, 4, 1000, 1000));
  /* the label cap and the pool */
  assert_string_equal(us_active_stop_reason(&p, r, 4, 250, 1000), "max_prompts");
  assert_string_equal(us_active_stop_reason(&p, r, 4, 250, 250), "pool");
  assert_string_equal(us_active_stop_reason(&p, r, 2, 1000, 150), "pool");
  assert_null(us_active_stop_reason(&p, r, 0, 0, 0));
}

static void workspace_should_keep_picks_and_rounds(void **state) {
  (void)state;
  char dir[] = "/tmp/us-test-active.XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[512];
  snprintf(path, sizeof path, "%s/understudy.db", dir);
  us_err err = {0};
  us_cache *c = NULL;
  assert_int_equal(us_cache_open(path, &c, &err), US_OK);
  assert_true(us_cache_schema_version(c) >= 4); /* 4 is active labelling's step */
  int64_t ids[4];
  for (int i = 0; i < 4; i++) {
    char hash[16];
    snprintf(hash, sizeof hash, "h%d", i);
    assert_int_equal(us_cache_prompt_add(c, hash, "text", NULL, NULL, 0, NULL, &ids[i], &err),
                     US_OK);
  }
  int64_t first[2] = {ids[2], ids[0]}, second[2] = {ids[1], ids[0]};
  assert_int_equal(us_cache_active_picks_add(c, 1, first, 2, &err), US_OK);
  assert_int_equal(us_cache_active_picks_add(c, 2, second, 2, &err), US_OK); /* ids[0] stays 1 */
  int64_t *got = NULL;
  int *rounds = NULL;
  size_t n = 0;
  assert_int_equal(us_cache_active_picks_list(c, &got, &rounds, &n, &err), US_OK);
  assert_int_equal(n, 3);
  assert_int_equal(got[0], ids[0]);
  assert_int_equal(rounds[0], 1);
  assert_int_equal(got[1], ids[2]);
  assert_int_equal(rounds[1], 1);
  assert_int_equal(got[2], ids[1]);
  assert_int_equal(rounds[2], 2);
  free(got);
  free(rounds);
  us_active_round r = round_at(1, 2, 0.5, -1);
  r.test_agreement = 0.75;
  r.spent_usd = 0.01;
  assert_int_equal(us_cache_active_round_put(c, &r, &err), US_OK);
  snprintf(r.stop, sizeof r.stop, "min_gain");
  r.test_agreement = 0.8;
  assert_int_equal(us_cache_active_round_put(c, &r, &err), US_OK); /* upsert */
  us_active_round *list = NULL;
  assert_int_equal(us_cache_active_rounds_list(c, &list, &n, &err), US_OK);
  assert_int_equal(n, 1);
  assert_int_equal(list[0].round, 1);
  assert_true(fabs(list[0].test_agreement - 0.8) < 1e-12);
  assert_true(list[0].valid_back < 0);
  assert_string_equal(list[0].stop, "min_gain");
  free(list);
  us_cache_close(c);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

static void report_should_show_the_learning_curve_and_the_savings(void **state) {
  (void)state;
  static const double labels[3] = {100, 150, 200}, dollars[3] = {0.5, 0.75, 1.0};
  static const double test[3] = {0.8, 0.85, 0.9}, valid[3] = {0.7, 0.75, 0.8};
  us_report_active a = {3, labels, dollars, test, valid, 200, 200, 0, 0, 0.9, "pool"};
  us_report r;
  us_report_init(&r);
  r.run_name = "curve";
  us_err err = {0};
  us_buf md, json, html;
  us_buf_init(&md, 0);
  us_buf_init(&json, 0);
  us_buf_init(&html, 0);
  /* absent: no section, JSON null */
  assert_int_equal(us_report_markdown(&r, &md, &err), US_OK);
  assert_null(strstr(md.data, "Active labelling"));
  assert_int_equal(us_report_json(&r, &json, &err), US_OK);
  assert_non_null(strstr(json.data, "\"active_labelling\":\tnull"));
  us_buf_free(&md);
  us_buf_free(&json);
  us_buf_init(&md, 0);
  us_buf_init(&json, 0);
  r.active = &a;
  assert_int_equal(us_report_markdown(&r, &md, &err), US_OK);
  assert_non_null(strstr(md.data, "## Active labelling"));
  assert_non_null(strstr(md.data, "Labelled 200 of 200 train prompts (100.0%)"));
  assert_non_null(strstr(md.data, "whole pool labelled: 90.00%"));
  assert_non_null(strstr(md.data, "| 2 | 150 | $0.75 | 85.00% | 75.00% |"));
  assert_non_null(strstr(md.data, "Stopped: pool."));
  assert_int_equal(us_report_json(&r, &json, &err), US_OK);
  assert_non_null(strstr(json.data, "\"full_pool_agreement\":\t0.9"));
  assert_non_null(strstr(json.data, "\"stop\":\t\"pool\""));
  assert_int_equal(us_report_html(&r, &html, &err), US_OK);
  assert_non_null(strstr(html.data, "Test agreement against labels bought"));
  assert_non_null(strstr(html.data, "whole pool"));
  /* still labelling, full pool unknown: no reference, no stop */
  a.full_pool_agreement = -1;
  a.stop = NULL;
  a.labelled = 150;
  a.labels_saved = 50;
  us_buf_free(&md);
  us_buf_init(&md, 0);
  assert_int_equal(us_report_markdown(&r, &md, &err), US_OK);
  assert_non_null(strstr(md.data, "Still labelling."));
  assert_null(strstr(md.data, "whole pool labelled:"));
  us_buf_free(&md);
  us_buf_free(&json);
  us_buf_free(&html);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(features_should_be_normalised_and_alike_for_near_copies),
      cmocka_unit_test(coverage_should_pick_every_cluster_before_a_second_from_one),
      cmocka_unit_test(uncertainty_should_order_sure_before_unsure),
      cmocka_unit_test(batch_should_follow_uncertainty_and_skip_near_copies_with_diversity),
      cmocka_unit_test(counts_should_read_fractions_and_whole_counts),
      cmocka_unit_test(settings_should_have_defaults_and_checks),
      cmocka_unit_test(stopping_rules_should_hold),
      cmocka_unit_test(workspace_should_keep_picks_and_rounds),
      cmocka_unit_test(report_should_show_the_learning_curve_and_the_savings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
