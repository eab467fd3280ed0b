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

/* The same search fed one text at a time, so the caller need not hold every text: each text
 * added keeps only its shingle hashes (8 bytes each; a short prompt has a few) and 20 band
 * hashes of 4 bytes, plus an 8-byte offset; us_neardup_find sorts one band at a time (8 bytes
 * per text) and returns the pairs by the texts' indexes in the order added. */
typedef struct us_neardup us_neardup;
us_status us_neardup_new(us_neardup **out, us_err *err);
void us_neardup_free(us_neardup *nd); /* NULL is a no-op */
/* Makes room for n texts' fixed parts at once (optional: saves the growth slack). */
us_status us_neardup_reserve(us_neardup *nd, size_t n, us_err *err);
/* Adds the next text (index: the count added before it); text is not kept. */
us_status us_neardup_add(us_neardup *nd, const char *text, us_err *err);
size_t us_neardup_count(const us_neardup *nd);
/* The bytes held (capacity included). */
size_t us_neardup_bytes(const us_neardup *nd);
us_status us_neardup_find(const us_neardup *nd, double threshold, us_neardup_pair **pairs,
                          size_t *n_pairs, us_err *err);

#endif
