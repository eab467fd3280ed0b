/* Near-duplicate prompts: MinHash signatures over word 3-shingles, locality-sensitive hashing in
 * bands to find candidate pairs without comparing every pair, and the exact Jaccard similarity
 * of the candidates' shingle sets to keep those at or above a threshold. Used by the prompts
 * stage to find (and with data.dedupe_near, to close) leaks between the train and test splits. */
#ifndef US_DISTILL_NEARDUP_H
#define US_DISTILL_NEARDUP_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* The similarity at which two prompts count as near-duplicates. */
#define US_NEARDUP_JACCARD 0.8

/* Exact Jaccard similarity of the word 3-shingle sets of a and b. Words are runs of letters and
 * digits (any byte >= 0x80 counts as a letter, so UTF-8 words stay whole), compared in ASCII
 * lower case; a text of fewer than three words is one shingle of all its words. 1 for two texts
 * without words. */
double us_neardup_jaccard(const char *a, const char *b);

typedef struct us_neardup_pair {
  size_t a, b;    /* indexes into the texts, a < b */
  double jaccard; /* exact, >= the threshold */
} us_neardup_pair;

/* Every pair of texts whose exact Jaccard similarity is at least threshold, found through
 * MinHash (120 hashes) in 20 bands of 6: a pair at 0.8 is a candidate with probability 0.998,
 * at 0.5 with 0.27. Time and memory grow with n (no all-pairs pass): a band bucket holding more
 * than 64 texts compares each with the 64 before it only. *pairs (caller frees) is sorted by
 * (a, b). */
us_status us_neardup_pairs(const char *const *texts, size_t n, double threshold,
                           us_neardup_pair **pairs, size_t *n_pairs, us_err *err);

#endif
