/* Active labelling's selection maths (student/select.h). */
#include "student/select.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

static bool is_break(unsigned char c) {
  return c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
}

static void add_hash(float *row, int dim, uint64_t h) {
  row[h % (uint64_t)dim] += (h >> 63) ? -1.0f : 1.0f; /* signed hashing keeps collisions unbiased */
}

void us_select_features(const char *const *texts, size_t n, int dim, float *out) {
  memset(out, 0, n * (size_t)dim * sizeof *out);
  for (size_t i = 0; i < n; i++) {
    float *row = out + i * (size_t)dim;
    const unsigned char *s = (const unsigned char *)(texts[i] ? texts[i] : "");
    uint64_t prev = 0;
    bool has_prev = false;
    while (*s) {
      while (*s && is_break(*s)) s++;
      if (!*s) break;
      uint64_t h = us_hash64_start(0x73656c6563ull); /* "selec" */
      while (*s && !is_break(*s)) {
        unsigned char c = (unsigned char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
        h = US_FNV_STEP(h, c);
        s++;
      }
      h ^= h >> 29;
      h *= 0xbf58476d1ce4e5b9ull;
      h ^= h >> 32;
      add_hash(row, dim, h);
      if (has_prev) {
        uint64_t b = (prev * 0x9e3779b97f4a7c15ull) ^ h;
        b ^= b >> 31;
        b *= 0x94d049bb133111ebull;
        b ^= b >> 29;
        add_hash(row, dim, b);
      }
      prev = h;
      has_prev = true;
    }
    double norm = 0;
    for (int d = 0; d < dim; d++) norm += (double)row[d] * row[d];
    if (norm > 0) {
      float inv = (float)(1.0 / sqrt(norm));
      for (int d = 0; d < dim; d++) row[d] *= inv;
    }
  }
}

double us_select_distance(const float *a, const float *b, int dim) {
  double dot = 0;
  for (int d = 0; d < dim; d++) dot += (double)a[d] * b[d];
  double dist = 1 - dot;
  return dist < 0 ? 0 : dist > 1 ? 1 : dist;
}

size_t us_select_coverage(const float *feat, size_t n, int dim, const bool *taken, size_t k,
                          size_t *out) {
  if (n == 0 || k == 0) return 0;
  double *near = malloc(n * sizeof *near); /* distance to the nearest taken or picked row */
  bool *used = calloc(n, sizeof *used);
  if (!near || !used) {
    free(near);
    free(used);
    return 0;
  }
  size_t n_taken = 0;
  for (size_t i = 0; i < n; i++) {
    near[i] = 2; /* above any distance: nothing chosen yet */
    if (taken && taken[i]) used[i] = true, n_taken++;
  }
  if (n_taken > 0) {
    for (size_t j = 0; j < n; j++) {
      if (!used[j]) continue;
      for (size_t i = 0; i < n; i++)
        if (!used[i]) {
          double d = us_select_distance(feat + i * (size_t)dim, feat + j * (size_t)dim, dim);
          if (d < near[i]) near[i] = d;
        }
    }
  } else {
    /* the first pick: the row nearest the pool's mean, a typical prompt rather than an outlier */
    double *mean = calloc((size_t)dim, sizeof *mean);
    if (mean) {
      for (size_t i = 0; i < n; i++)
        for (int d = 0; d < dim; d++) mean[d] += feat[i * (size_t)dim + d];
      double best = -INFINITY;
      size_t at = 0;
      for (size_t i = 0; i < n; i++) {
        double dot = 0;
        for (int d = 0; d < dim; d++) dot += mean[d] * feat[i * (size_t)dim + d];
        if (dot > best) best = dot, at = i;
      }
      near[at] = 3; /* picked first below */
      free(mean);
    }
  }
  size_t picked = 0;
  while (picked < k) {
    size_t at = n;
    double best = -1;
    for (size_t i = 0; i < n; i++)
      if (!used[i] && near[i] > best) best = near[i], at = i;
    if (at == n) break;
    used[at] = true;
    out[picked++] = at;
    const float *row = feat + at * (size_t)dim;
    for (size_t i = 0; i < n; i++)
      if (!used[i]) {
        double d = us_select_distance(feat + i * (size_t)dim, row, dim);
        if (d < near[i]) near[i] = d;
      }
  }
  free(near);
  free(used);
  return picked;
}

double us_select_margin(const float *p, int n) {
  if (n < 2) return 0;
  float a = -1, b = -1; /* the two largest */
  for (int i = 0; i < n; i++) {
    if (p[i] > a) {
      b = a;
      a = p[i];
    } else if (p[i] > b) {
      b = p[i];
    }
  }
  double m = 1 - ((double)a - b);
  return m < 0 ? 0 : m > 1 ? 1 : m;
}

double us_select_entropy(const float *p, int n) {
  if (n < 2) return 0;
  double h = 0;
  for (int i = 0; i < n; i++)
    if (p[i] > 0) h -= p[i] * log(p[i]);
  h /= log(n);
  return h < 0 ? 0 : h > 1 ? 1 : h;
}

typedef struct ranked {
  size_t row;
  double u;
  size_t order; /* position in cand, for stable ties */
} ranked;

static int by_uncertainty(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->u != y->u) return x->u > y->u ? -1 : 1;
  return x->order < y->order ? -1 : x->order > y->order;
}

size_t us_select_batch(const float *feat, int dim, const size_t *cand, const double *u,
                       size_t n_cand, size_t k, double diversity, size_t *out) {
  if (n_cand == 0 || k == 0) return 0;
  ranked *r = malloc(n_cand * sizeof *r);
  double *near = malloc(n_cand * sizeof *near);
  if (!r || !near) {
    free(r);
    free(near);
    return 0;
  }
  for (size_t i = 0; i < n_cand; i++) r[i] = (ranked){cand[i], u[i], i};
  qsort(r, n_cand, sizeof *r, by_uncertainty);
  size_t m = k > n_cand / 4 ? n_cand : 4 * k; /* the most uncertain 4k */
  for (size_t i = 0; i < m; i++) near[i] = 1;
  size_t picked = 0;
  while (picked < k && picked < m) {
    size_t at = m;
    double best = -INFINITY;
    for (size_t i = 0; i < m; i++) {
      if (near[i] < 0) continue; /* picked */
      double score = (1 - diversity) * r[i].u + diversity * near[i];
      if (score > best) best = score, at = i;
    }
    if (at == m) break;
    out[picked++] = r[at].row;
    near[at] = -1;
    if (diversity > 0) {
      const float *row = feat + r[at].row * (size_t)dim;
      for (size_t i = 0; i < m; i++)
        if (near[i] >= 0) {
          double d = us_select_distance(feat + r[i].row * (size_t)dim, row, dim);
          if (d < near[i]) near[i] = d;
        }
    }
  }
  free(r);
  free(near);
  return picked;
}
