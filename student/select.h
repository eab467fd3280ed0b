/* The maths of active labelling, on plain arrays (no workspace, no teacher): cheap text features
 * for measuring how alike two prompts are, a seed set chosen for coverage of the pool
 * (farthest-first), the student's uncertainty about one prompt, and a batch chosen by
 * uncertainty mixed with diversity (so a round does not buy many near-copies of one confusing
 * prompt). Everything is deterministic: the same inputs give the same picks. */
#ifndef US_STUDENT_SELECT_H
#define US_STUDENT_SELECT_H

#include <stdbool.h>
#include <stddef.h>

/* Hashed bag of lower-cased words and word bigrams (a word is a run of bytes that are not ASCII
 * space or punctuation), L2-normalised: dim floats per text into out (n * dim). A text with no
 * word gets the zero vector. */
void us_select_features(const char *const *texts, size_t n, int dim, float *out);

/* Cosine distance 1 - a.b of two L2-normalised feature rows, clamped to [0, 1]. */
double us_select_distance(const float *a, const float *b, int dim);

/* Farthest-first coverage: picks up to k rows of feat (n rows of dim) that are not taken
 * (taken may be NULL), each the row farthest from every taken or already picked row; with none
 * taken, the first is the row nearest the pool's mean. Ties go to the lowest index. Writes the
 * picked indices to out in pick order and returns how many (less than k only when the pool runs
 * out). O(n * k * dim). */
size_t us_select_coverage(const float *feat, size_t n, int dim, const bool *taken, size_t k,
                          size_t *out);

/* Uncertainty of a distribution p over n labels, in [0, 1], higher is less sure:
 * margin: 1 - (p_top - p_second); entropy: -sum p log p / log n. */
double us_select_margin(const float *p, int n);
double us_select_entropy(const float *p, int n);

/* Picks up to k of the n_cand candidates (cand: row indices into feat; u: their uncertainty,
 * higher first), greedily maximising (1 - diversity) * u + diversity * d, where d is the
 * candidate's distance to the nearest row picked so far in this batch (1 before the first
 * pick). Only the 4k most uncertain candidates are considered, so diversity reorders the
 * uncertain ones rather than reaching for sure ones. diversity is in [0, 1]; 0 is pure
 * uncertainty order. Writes row indices (values of cand) to out; returns how many. */
size_t us_select_batch(const float *feat, int dim, const size_t *cand, const double *u,
                       size_t n_cand, size_t k, double diversity, size_t *out);

#endif
