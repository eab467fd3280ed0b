/* The workspace's record of active labelling (label.strategy "active"): which train prompts each
 * round picked for the teacher, and what each round measured once its picks were labelled and
 * the student trained on them. Picks are committed before any of them is sent, so a rerun after
 * a crash labels exactly the same prompts (the teacher's answers are cached, so nothing is paid
 * twice) and continues the round. */
#ifndef US_CACHE_ACTIVE_H
#define US_CACHE_ACTIVE_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "core/status.h"

typedef struct us_active_round {
  int round;              /* 1-based; round 1 is the seed set */
  int64_t n_labelled;     /* train prompts picked in rounds 1..round */
  int64_t n_valid;        /* of which in the validation slice */
  double spent_usd;       /* the workspace's spend once the round was labelled */
  double valid_agreement; /* the student's agreement on the round's validation slice, 0..1 */
  double valid_back;      /* the student on the validation slice of round - 2 (stopping rule), or
                           * -1 when there is no such round */
  double test_agreement;  /* the student's agreement with the teacher on the test split, 0..1 */
  char stop[64];          /* why labelling stopped after this round, or "" */
} us_active_round;

/* Records ids as the picks of round, in one transaction (a pick already recorded keeps its
 * round). */
us_status us_cache_active_picks_add(us_cache *c, int round, const int64_t *ids, size_t n,
                                    us_err *err);
/* Every pick, ordered by round then prompt id. Caller frees *ids and *rounds. */
us_status us_cache_active_picks_list(us_cache *c, int64_t **ids, int **rounds, size_t *n,
                                     us_err *err);
/* Upserts a round's measurements. */
us_status us_cache_active_round_put(us_cache *c, const us_active_round *r, us_err *err);
/* Every measured round, in order. Caller frees *out. */
us_status us_cache_active_rounds_list(us_cache *c, us_active_round **out, size_t *n, us_err *err);

#endif
