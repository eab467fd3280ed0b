/* The keys the workspace holds answers for (serve_int.h, us__known): a set in memory, so a
 * request whose answer is certainly not stored (every request a busy teacher route sees) costs a
 * hash lookup rather than a SQLite read, which after each commit of the log thread starts on a
 * fresh page cache. The set holds a 64-bit hash of each key: a collision only sends a lookup on
 * to the workspace, which decides. */
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/log.h"
#include "serve/serve_int.h"

#define KNOWN_INITIAL_SLOTS 1024 /* a power of two; doubled at half full */

static uint64_t key_hash(const char *key) {
  uint64_t h = us_hash_mix64(us_hash64(key, strlen(key), 0));
  return h ? h : 1; /* 0 marks an empty slot */
}

/* Inserts h (lock held); false when the table could not grow (the set is then given up). */
static bool insert(us__known *k, uint64_t h) {
  if ((k->n + 1) * 2 > k->cap) {
    size_t cap = k->cap ? k->cap * 2 : KNOWN_INITIAL_SLOTS;
    uint64_t *grown = calloc(cap, sizeof *grown);
    if (!grown) return false;
    for (size_t i = 0; i < k->cap; i++) {
      if (!k->slots[i]) continue;
      size_t j = (size_t)k->slots[i] & (cap - 1);
      while (grown[j]) j = (j + 1) & (cap - 1);
      grown[j] = k->slots[i];
    }
    free(k->slots);
    k->slots = grown;
    k->cap = cap;
  }
  size_t j = (size_t)h & (k->cap - 1);
  while (k->slots[j] && k->slots[j] != h) j = (j + 1) & (k->cap - 1);
  if (!k->slots[j]) {
    k->slots[j] = h;
    k->n++;
  }
  return true;
}

/* Without memory for the set every lookup goes to the workspace, as it did before the set. */
static void give_up(us__known *k, const char *why) {
  if (!k->broken)
    us_log(US_LOG_WARN, "serve: every cache lookup goes to the workspace from now on: %s", why);
  k->broken = true;
  free(k->slots);
  k->slots = NULL;
  k->cap = k->n = 0;
}

void us__known_add(us__server *s, const char *key) {
  us__known *k = &s->known;
  uint64_t h = key_hash(key);
  pthread_mutex_lock(&k->lock);
  if (!k->broken && !insert(k, h)) give_up(k, "out of memory for the set of stored keys");
  pthread_mutex_unlock(&k->lock);
}

bool us__known_has(us__server *s, const char *key) {
  us__known *k = &s->known;
  uint64_t h = key_hash(key);
  pthread_mutex_lock(&k->lock);
  bool maybe = k->broken;
  if (!maybe) {
    size_t j = (size_t)h & (k->cap - 1);
    while (k->slots[j] && k->slots[j] != h) j = (j + 1) & (k->cap - 1);
    maybe = k->slots[j] == h;
  }
  pthread_mutex_unlock(&k->lock);
  return maybe;
}

static void add_key(void *user, const char *key) {
  us__known_add(user, key);
}

/* Reads the keys committed since the last read (read_lock held); with only_if_changed, only when
 * the workspace's data_version moved (one cheap PRAGMA when nothing did). */
static us_status refresh_locked(us__server *s, bool only_if_changed, us_err *err) {
  int64_t version = 0;
  us_status st = us_cache_data_version(s->read_cache, &version, err);
  if (st) return st;
  if (only_if_changed && version == s->known.version) return US_OK;
  /* the version is read first: a commit after it is seen by the next call */
  st = us_cache_call_keys_since(s->read_cache, &s->known.rowid, add_key, s, err);
  if (!st) s->known.version = version;
  return st;
}

static void give_up_on(us__server *s, const us_err *err) {
  pthread_mutex_lock(&s->known.lock);
  give_up(&s->known, err->msg); /* a key it missed must not read as absent */
  pthread_mutex_unlock(&s->known.lock);
}

bool us__known_may_hold(us__server *s, const char *key) {
  if (us__known_has(s, key)) return true;
  /* absent from the set: it may have been stored since the set was read */
  us_err err = {0};
  pthread_mutex_lock(&s->read_lock);
  us_status st = refresh_locked(s, true, &err);
  pthread_mutex_unlock(&s->read_lock);
  if (st) {
    give_up_on(s, &err);
    return true;
  }
  return us__known_has(s, key);
}

void us__known_refresh(us__server *s, bool only_if_changed) {
  pthread_mutex_lock(&s->known.lock);
  bool broken = s->known.broken;
  pthread_mutex_unlock(&s->known.lock);
  if (broken) return;
  us_err err = {0};
  pthread_mutex_lock(&s->read_lock);
  us_status st = refresh_locked(s, only_if_changed, &err);
  pthread_mutex_unlock(&s->read_lock);
  if (st) give_up_on(s, &err);
}

void us__known_init(us__server *s) {
  us__known *k = &s->known;
  pthread_mutex_init(&k->lock, NULL);
  k->slots = calloc(KNOWN_INITIAL_SLOTS, sizeof *k->slots);
  k->cap = k->slots ? KNOWN_INITIAL_SLOTS : 0;
  if (!k->slots) give_up(k, "out of memory for the set of stored keys");
}

void us__known_free(us__server *s) {
  free(s->known.slots);
  s->known.slots = NULL;
  pthread_mutex_destroy(&s->known.lock);
}
