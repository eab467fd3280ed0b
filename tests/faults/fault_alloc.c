/* Allocation failure injection (SQLite's habit) for the understudy_faults test binary.
 *
 * The binary is linked with -Wl,--wrap=malloc,--wrap=calloc,... so every call that OUR objects
 * (libunderstudy.a and cli/) make to these functions lands here, while the shared libraries
 * (SQLite, curl, cJSON, OpenBLAS, libc itself) keep their own allocator untouched: we test our
 * error paths, not theirs. No source file of the project changes for this.
 *
 * Environment:
 *   US_FAULT_ALLOC_AT=K      the K-th allocation (1-based, counted over all wrapped functions)
 *                            returns NULL; 0 or unset: none fails
 *   US_FAULT_ALLOC_PERSIST=1 every allocation from the K-th on fails (default: only the K-th)
 *   US_FAULT_ALLOC_STATS=F   at exit, append "calls=N failed=F live=L live_bytes=B" to file F,
 *                            "failed_at CALLER..." (the stack of the call that failed), and one
 * "leak SIZE CALLER" line per allocation still live (at most 20); CALLER is a code address for
 * `addr2line -f -e understudy_faults` Allocations are counted in program order; with several
 * threads the order may vary a little between runs, which a sweep tolerates. */
#define _GNU_SOURCE
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static atomic_ulong calls;
static atomic_ulong failed;
static unsigned long fail_at;
static int persist;
static atomic_int ready;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Live allocations made through the wrappers: a chained hash table keyed by pointer. A free of
 * a pointer we never handed out (memory from libc's own getline, cJSON, SQLite) is ignored. */
typedef struct node {
  void *p;
  size_t size;
  void *caller;
  struct node *next;
} node;
#define BUCKETS 65536
static node *table[BUCKETS];
static unsigned long live;
static unsigned long long live_bytes;

extern char __executable_start; /* the load address of this (PIE) binary, from the linker */

static size_t bucket(const void *p) {
  return (size_t)(((uintptr_t)p >> 4) * 2654435761u) % BUCKETS;
}

static void setup(void) {
  if (atomic_load(&ready)) return;
  const char *at = getenv("US_FAULT_ALLOC_AT");
  const char *ps = getenv("US_FAULT_ALLOC_PERSIST");
  fail_at = at ? strtoul(at, NULL, 10) : 0;
  persist = ps && strcmp(ps, "1") == 0;
  atomic_store(&ready, 1);
}

static void *failed_stack[8];
static int failed_depth;

static int should_fail(void) {
  setup();
  unsigned long k = atomic_fetch_add(&calls, 1) + 1;
  if (fail_at == 0 || k < fail_at || (k > fail_at && !persist)) return 0;
  if (k == fail_at) {
    failed_depth = backtrace(failed_stack, 8);
  }
  atomic_fetch_add(&failed, 1);
  return 1;
}

static void track(void *p, size_t size, void *caller) {
  if (!p) return;
  node *n = __real_malloc(sizeof *n);
  if (!n) return;
  *n = (node){p, size, caller, NULL};
  pthread_mutex_lock(&lock);
  size_t b = bucket(p);
  n->next = table[b];
  table[b] = n;
  live++;
  live_bytes += size;
  pthread_mutex_unlock(&lock);
}

static void untrack(void *p) {
  if (!p) return;
  pthread_mutex_lock(&lock);
  for (node **at = &table[bucket(p)]; *at; at = &(*at)->next)
    if ((*at)->p == p) {
      node *n = *at;
      *at = n->next;
      live--;
      live_bytes -= n->size;
      __real_free(n);
      break;
    }
  pthread_mutex_unlock(&lock);
}

void *__wrap_malloc(size_t n) {
  if (should_fail()) return NULL;
  void *p = __real_malloc(n);
  track(p, n, __builtin_return_address(0));
  return p;
}

void *__wrap_calloc(size_t n, size_t size) {
  if (should_fail()) return NULL;
  void *p = __real_calloc(n, size);
  track(p, n * size, __builtin_return_address(0));
  return p;
}

void *__wrap_realloc(void *old, size_t n) {
  if (should_fail()) return NULL; /* the old block stays valid, as with a real failure */
  void *p = __real_realloc(old, n);
  if (p || n == 0) untrack(old);
  track(p, n, __builtin_return_address(0));
  return p;
}

void __wrap_free(void *p) {
  untrack(p);
  __real_free(p);
}

char *__wrap_strdup(const char *s) {
  if (should_fail()) return NULL;
  size_t n = strlen(s) + 1;
  char *p = __real_malloc(n);
  if (p) memcpy(p, s, n);
  track(p, n, __builtin_return_address(0));
  return p;
}

char *__wrap_strndup(const char *s, size_t most) {
  if (should_fail()) return NULL;
  size_t n = strnlen(s, most);
  char *p = __real_malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  track(p, n + 1, __builtin_return_address(0));
  return p;
}

__attribute__((destructor)) static void report(void) {
  const char *path = getenv("US_FAULT_ALLOC_STATS");
  if (!path || !*path) return;
  FILE *f = fopen(path, "a");
  if (!f) return;
  pthread_mutex_lock(&lock);
  fprintf(f, "calls=%lu failed=%lu live=%lu live_bytes=%llu\n", atomic_load(&calls),
          atomic_load(&failed), live, live_bytes);
  if (failed_depth > 2) { /* frame 0 is should_fail, 1 the wrapper */
    fprintf(f, "failed_at");
    for (int i = 2; i < failed_depth; i++)
      fprintf(f, " 0x%lx", (unsigned long)((char *)failed_stack[i] - &__executable_start));
    fprintf(f, "\n");
  }
  int shown = 0;
  for (size_t b = 0; b < BUCKETS && shown < 20; b++)
    for (node *n = table[b]; n && shown < 20; n = n->next, shown++)
      fprintf(f, "leak %zu 0x%lx\n", n->size,
              (unsigned long)((char *)n->caller - &__executable_start));
  pthread_mutex_unlock(&lock);
  fclose(f);
}
