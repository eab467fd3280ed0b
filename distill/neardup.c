/* Near-duplicates by MinHash and LSH banding (distill/neardup.h). */
#include "distill/neardup.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

#define N_HASHES 120
#define BANDS 20
#define ROWS 6 /* BANDS * ROWS == N_HASHES */
#define BUCKET_WINDOW 64

static bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static int u64_cmp(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

/* The sorted, distinct shingle hashes of text (caller frees *out); false when out of memory. */
static bool shingles(const char *text, uint64_t **out, size_t *n) {
  *out = NULL;
  *n = 0;
  size_t cap = 16, n_words = 0, count = 0;
  uint64_t *words = malloc(cap * sizeof *words);
  if (!words) return false;
  for (const unsigned char *p = (const unsigned char *)text; *p;) {
    while (*p && !word_byte(*p)) p++;
    if (!*p) break;
    uint64_t h = us_hash64_start(0);
    while (*p && word_byte(*p)) {
      unsigned char c = *p++;
      if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
      h = US_FNV_STEP(h, c);
    }
    if (n_words == cap) {
      uint64_t *w = realloc(words, 2 * cap * sizeof *w);
      if (!w) {
        free(words);
        return false;
      }
      words = w, cap *= 2;
    }
    words[n_words++] = h;
  }
  size_t k = n_words < 3 ? 1 : n_words - 2;
  uint64_t *sh = malloc(k * sizeof *sh);
  if (!sh) {
    free(words);
    return false;
  }
  if (n_words < 3) {
    uint64_t h = 0x5bd1e995;
    for (size_t i = 0; i < n_words; i++) h = us_hash_mix64(h ^ words[i]) + i;
    sh[count++] = h;
  } else {
    for (size_t i = 0; i + 2 < n_words; i++)
      sh[count++] =
          us_hash_mix64(us_hash_mix64(us_hash_mix64(words[i]) ^ words[i + 1]) ^ words[i + 2]);
  }
  free(words);
  qsort(sh, count, sizeof *sh, u64_cmp);
  size_t m = 0;
  for (size_t i = 0; i < count; i++)
    if (m == 0 || sh[i] != sh[m - 1]) sh[m++] = sh[i];
  *out = sh;
  *n = m;
  return true;
}

static double jaccard_sorted(const uint64_t *a, size_t na, const uint64_t *b, size_t nb) {
  size_t i = 0, j = 0, both = 0;
  while (i < na && j < nb) {
    if (a[i] == b[j])
      both++, i++, j++;
    else if (a[i] < b[j])
      i++;
    else
      j++;
  }
  size_t either = na + nb - both;
  return either ? (double)both / (double)either : 1.0;
}

double us_neardup_jaccard(const char *a, const char *b) {
  uint64_t *sa = NULL, *sb = NULL;
  size_t na = 0, nb = 0;
  double j = -1;
  if (shingles(a, &sa, &na) && shingles(b, &sb, &nb)) j = jaccard_sorted(sa, na, sb, nb);
  free(sa);
  free(sb);
  return j;
}

/* One text in a band: the band's hash (32 bits suffice: a false collision only adds a candidate,
 * which the exact Jaccard check then drops) and the text's index. */
typedef struct band_entry {
  uint32_t hash;
  uint32_t doc;
} band_entry;

static int band_cmp(const void *x, const void *y) {
  const band_entry *a = x, *b = y;
  if (a->hash != b->hash) return a->hash < b->hash ? -1 : 1;
  return a->doc < b->doc ? -1 : a->doc > b->doc;
}

static int pair_cmp(const void *x, const void *y) {
  const us_neardup_pair *a = x, *b = y;
  if (a->a != b->a) return a->a < b->a ? -1 : 1;
  return a->b < b->b ? -1 : a->b > b->b;
}

typedef struct pair_list {
  us_neardup_pair *v;
  size_t n, cap;
} pair_list;

static bool pair_push(pair_list *l, size_t a, size_t b, double j) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 64;
    us_neardup_pair *v = realloc(l->v, cap * sizeof *v);
    if (!v) return false;
    l->v = v, l->cap = cap;
  }
  l->v[l->n++] = (us_neardup_pair){a, b, j};
  return true;
}

/* What is kept of each text added: its shingle hashes, all texts' end to end in one array
 * (text d's are shingles[start[d] .. start[d + 1])), and its BANDS band hashes (bands[d * BANDS
 * + b]). No text is kept. */
struct us_neardup {
  uint64_t *shingles;
  size_t n_shingles, shingles_cap;
  size_t *start; /* n + 1 entries */
  size_t start_cap;
  uint32_t *bands;
  size_t bands_cap;
  size_t n;
  uint64_t salt[N_HASHES];
};

us_status us_neardup_new(us_neardup **out, us_err *err) {
  *out = calloc(1, sizeof **out);
  if (!*out) return us_err_set(err, US_ERR_NOMEM, "out of memory looking for near-duplicates");
  for (int k = 0; k < N_HASHES; k++)
    (*out)->salt[k] = us_hash_mix64(0x9e3779b97f4a7c15ULL * (uint64_t)(k + 1));
  return US_OK;
}

void us_neardup_free(us_neardup *nd) {
  if (!nd) return;
  free(nd->shingles);
  free(nd->start);
  free(nd->bands);
  free(nd);
}

size_t us_neardup_count(const us_neardup *nd) {
  return nd->n;
}

size_t us_neardup_bytes(const us_neardup *nd) {
  return nd->shingles_cap * sizeof *nd->shingles + nd->start_cap * sizeof *nd->start +
         nd->bands_cap * sizeof *nd->bands;
}

/* Grows *p to hold need elements: to exactly need when nothing is held yet (a reserve), else by
 * half again. */
static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : need;
  while (c < need) c += c / 2 + 1024;
  void *q = realloc(*p, c * elem);
  if (!q) return false;
  *p = q;
  *cap = c;
  return true;
}

us_status us_neardup_reserve(us_neardup *nd, size_t n, us_err *err) {
  if (!grow((void **)&nd->start, &nd->start_cap, n + 1, sizeof(size_t)) ||
      !grow((void **)&nd->bands, &nd->bands_cap, n * BANDS, sizeof(uint32_t)))
    return us_err_set(err, US_ERR_NOMEM,
                      "out of memory looking for near-duplicates among %zu prompts", n);
  return US_OK;
}

us_status us_neardup_add(us_neardup *nd, const char *text, us_err *err) {
  uint64_t *sh = NULL;
  size_t nsh = 0;
  if (nd->n >= UINT32_MAX || !shingles(text ? text : "", &sh, &nsh) ||
      !grow((void **)&nd->shingles, &nd->shingles_cap, nd->n_shingles + nsh, sizeof(uint64_t)) ||
      !grow((void **)&nd->start, &nd->start_cap, nd->n + 2, sizeof(size_t)) ||
      !grow((void **)&nd->bands, &nd->bands_cap, (nd->n + 1) * BANDS, sizeof(uint32_t))) {
    free(sh);
    return us_err_set(err, US_ERR_NOMEM,
                      "out of memory looking for near-duplicates among %zu prompts", nd->n + 1);
  }
  uint64_t mins[N_HASHES];
  for (int k = 0; k < N_HASHES; k++) mins[k] = UINT64_MAX;
  for (size_t i = 0; i < nsh; i++)
    for (int k = 0; k < N_HASHES; k++) {
      uint64_t h = us_hash_mix64(sh[i] ^ nd->salt[k]);
      if (h < mins[k]) mins[k] = h;
    }
  for (int b = 0; b < BANDS; b++) {
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)b;
    for (int r = 0; r < ROWS; r++) h = us_hash_mix64(h ^ mins[b * ROWS + r]);
    nd->bands[nd->n * BANDS + (size_t)b] = (uint32_t)(h >> 32);
  }
  if (nd->n == 0) nd->start[0] = 0;
  memcpy(nd->shingles + nd->n_shingles, sh, nsh * sizeof *sh);
  nd->n_shingles += nsh;
  nd->start[++nd->n] = nd->n_shingles;
  free(sh);
  return US_OK;
}

us_status us_neardup_find(const us_neardup *nd, double threshold, us_neardup_pair **pairs,
                          size_t *n_pairs, us_err *err) {
  *pairs = NULL;
  *n_pairs = 0;
  size_t n = nd->n;
  pair_list found = {0};
  band_entry *e = malloc((n ? n : 1) * sizeof *e); /* one band at a time */
  if (!e) goto nomem;
  for (int b = 0; b < BANDS; b++) {
    for (size_t d = 0; d < n; d++)
      e[d] = (band_entry){nd->bands[d * BANDS + (size_t)b], (uint32_t)d};
    qsort(e, n, sizeof *e, band_cmp);
    for (size_t first = 0; first < n;) {
      size_t end = first + 1;
      while (end < n && e[end].hash == e[first].hash) end++;
      for (size_t i = first + 1; i < end; i++) {
        size_t from = i - first > BUCKET_WINDOW ? i - BUCKET_WINDOW : first;
        for (size_t k = from; k < i; k++) {
          size_t x = e[k].doc, y = e[i].doc;
          double j = jaccard_sorted(nd->shingles + nd->start[x], nd->start[x + 1] - nd->start[x],
                                    nd->shingles + nd->start[y], nd->start[y + 1] - nd->start[y]);
          if (j >= threshold && !pair_push(&found, x < y ? x : y, x < y ? y : x, j)) goto nomem;
        }
      }
      first = end;
    }
  }
  free(e);
  /* a pair found in several bands is kept once */
  if (found.n) qsort(found.v, found.n, sizeof *found.v, pair_cmp);
  size_t m = 0;
  for (size_t i = 0; i < found.n; i++)
    if (m == 0 || found.v[i].a != found.v[m - 1].a || found.v[i].b != found.v[m - 1].b)
      found.v[m++] = found.v[i];
  *pairs = found.v;
  *n_pairs = m;
  return US_OK;
nomem:
  free(e);
  free(found.v);
  return us_err_set(err, US_ERR_NOMEM,
                    "out of memory looking for near-duplicates among %zu prompts", n);
}

us_status us_neardup_pairs(const char *const *texts, size_t n, double threshold,
                           us_neardup_pair **pairs, size_t *n_pairs, us_err *err) {
  *pairs = NULL;
  *n_pairs = 0;
  us_neardup *nd = NULL;
  us_status st = us_neardup_new(&nd, err);
  for (size_t d = 0; d < n && !st; d++) st = us_neardup_add(nd, texts[d], err);
  if (!st) st = us_neardup_find(nd, threshold, pairs, n_pairs, err);
  us_neardup_free(nd);
  return st;
}
