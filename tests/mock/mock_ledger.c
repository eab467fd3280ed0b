/* The mock teacher's books: how many requests arrived, which request keys (SHA-256 of the raw
 * body) were billed and how often, the tokens billed, the faults injected; and the deterministic
 * fault draw. One mutex guards it all: the mock is not the thing being measured. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hash.h"
#include "mock.h"

typedef struct ledger_entry {
  char key[65]; /* "" when the slot is empty */
  int64_t attempts;
  int64_t bills;
} ledger_entry;

static struct {
  pthread_mutex_t lock;
  ledger_entry *slots;
  size_t cap, used;
  int64_t requests, chat_requests, billed, prompt_tokens, completion_tokens;
  int64_t cached_tokens, reasoning_tokens;
  double billed_usd;
  int64_t faults[MOCK_FAULT_COUNT];
  int64_t connections_open, connections_total, in_flight, max_in_flight;
  int64_t minute, minute_requests, minute_tokens;
  int64_t files_uploaded, batches_created, batch_polls, batch_rows, batch_billed;
  int64_t batch_prompt_tokens, batch_completion_tokens;
} ledger = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *const fault_names[MOCK_FAULT_COUNT] = {
    "none", "429", "500", "503", "timeout", "malformed", "truncated", "partial", "reset", "slow"};

void mock_ledger_init(void) {
  pthread_mutex_lock(&ledger.lock);
  ledger.cap = 4096;
  ledger.slots = calloc(ledger.cap, sizeof *ledger.slots);
  if (!ledger.slots) {
    fprintf(stderr, "us_mock_teacher: out of memory\n");
    exit(1);
  }
  pthread_mutex_unlock(&ledger.lock);
}

void mock_ledger_free(void) {
  pthread_mutex_lock(&ledger.lock);
  free(ledger.slots);
  ledger.slots = NULL;
  ledger.cap = ledger.used = 0;
  pthread_mutex_unlock(&ledger.lock);
}

void mock_ledger_reset(void) {
  pthread_mutex_lock(&ledger.lock);
  memset(ledger.slots, 0, ledger.cap * sizeof *ledger.slots);
  ledger.used = 0;
  ledger.requests = ledger.chat_requests = ledger.billed = 0;
  ledger.prompt_tokens = ledger.completion_tokens = 0;
  ledger.cached_tokens = ledger.reasoning_tokens = 0;
  ledger.billed_usd = 0;
  memset(ledger.faults, 0, sizeof ledger.faults);
  ledger.connections_total = 0;
  ledger.max_in_flight = ledger.in_flight;
  ledger.minute_requests = ledger.minute_tokens = 0;
  ledger.files_uploaded = ledger.batches_created = ledger.batch_polls = 0;
  ledger.batch_rows = ledger.batch_billed = 0;
  ledger.batch_prompt_tokens = ledger.batch_completion_tokens = 0;
  pthread_mutex_unlock(&ledger.lock);
}

static size_t slot_index(const char *key, size_t cap) {
  return (size_t)us_hash64(key, strlen(key), 0) & (cap - 1);
}

/* Caller holds the lock. Finds or inserts key; never fails (exits on out of memory: a test
 * server that cannot count must not pretend it can). */
static ledger_entry *entry_for(const char *key) {
  if ((ledger.used + 1) * 2 > ledger.cap) {
    size_t cap = ledger.cap * 2;
    ledger_entry *slots = calloc(cap, sizeof *slots);
    if (!slots) {
      fprintf(stderr, "us_mock_teacher: out of memory\n");
      exit(1);
    }
    for (size_t i = 0; i < ledger.cap; i++) {
      if (!ledger.slots[i].key[0]) continue;
      size_t j = slot_index(ledger.slots[i].key, cap);
      while (slots[j].key[0]) j = (j + 1) & (cap - 1);
      slots[j] = ledger.slots[i];
    }
    free(ledger.slots);
    ledger.slots = slots;
    ledger.cap = cap;
  }
  size_t j = slot_index(key, ledger.cap);
  while (ledger.slots[j].key[0] && strcmp(ledger.slots[j].key, key) != 0)
    j = (j + 1) & (ledger.cap - 1);
  if (!ledger.slots[j].key[0]) {
    snprintf(ledger.slots[j].key, sizeof ledger.slots[j].key, "%s", key);
    ledger.used++;
  }
  return &ledger.slots[j];
}

static void minute_roll(void) {
  int64_t now = (int64_t)time(NULL) / 60;
  if (now != ledger.minute) {
    ledger.minute = now;
    ledger.minute_requests = ledger.minute_tokens = 0;
  }
}

void mock_ledger_request(void) {
  pthread_mutex_lock(&ledger.lock);
  ledger.requests++;
  minute_roll();
  ledger.minute_requests++;
  pthread_mutex_unlock(&ledger.lock);
}

int64_t mock_ledger_attempt(const char *key) {
  pthread_mutex_lock(&ledger.lock);
  ledger.chat_requests++;
  ledger_entry *e = entry_for(key);
  int64_t attempt = e->attempts++;
  pthread_mutex_unlock(&ledger.lock);
  return attempt;
}

void mock_ledger_bill(const char *key, int prompt_tokens, int completion_tokens) {
  pthread_mutex_lock(&ledger.lock);
  ledger_entry *e = entry_for(key);
  e->bills++;
  ledger.billed++;
  ledger.prompt_tokens += prompt_tokens;
  ledger.completion_tokens += completion_tokens;
  minute_roll();
  ledger.minute_tokens += prompt_tokens + completion_tokens;
  pthread_mutex_unlock(&ledger.lock);
}

void mock_ledger_bill_usage(const char *key, const mock_usage *u, double usd) {
  mock_ledger_bill(key, u->prompt, u->completion);
  pthread_mutex_lock(&ledger.lock);
  ledger.cached_tokens += u->cached;
  ledger.reasoning_tokens += u->reasoning;
  ledger.billed_usd += usd;
  pthread_mutex_unlock(&ledger.lock);
}

void mock_ledger_batch_event(const char *name) {
  pthread_mutex_lock(&ledger.lock);
  if (strcmp(name, "files_uploaded") == 0) ledger.files_uploaded++;
  if (strcmp(name, "batches_created") == 0) ledger.batches_created++;
  if (strcmp(name, "batch_polls") == 0) ledger.batch_polls++;
  pthread_mutex_unlock(&ledger.lock);
}

int64_t mock_ledger_batch_attempt(const char *key) {
  pthread_mutex_lock(&ledger.lock);
  ledger.batch_rows++;
  ledger_entry *e = entry_for(key);
  int64_t attempt = e->attempts++;
  pthread_mutex_unlock(&ledger.lock);
  return attempt;
}

void mock_ledger_bill_batch(const char *key, int prompt_tokens, int completion_tokens) {
  pthread_mutex_lock(&ledger.lock);
  ledger_entry *e = entry_for(key);
  e->bills++;
  ledger.batch_billed++;
  ledger.batch_prompt_tokens += prompt_tokens;
  ledger.batch_completion_tokens += completion_tokens;
  pthread_mutex_unlock(&ledger.lock);
}

void mock_ledger_fault(mock_fault f) {
  pthread_mutex_lock(&ledger.lock);
  ledger.faults[f]++;
  pthread_mutex_unlock(&ledger.lock);
}

void mock_ledger_connection(int delta) {
  pthread_mutex_lock(&ledger.lock);
  ledger.connections_open += delta;
  if (delta > 0) ledger.connections_total += delta;
  pthread_mutex_unlock(&ledger.lock);
}

void mock_ledger_in_flight(int delta) {
  pthread_mutex_lock(&ledger.lock);
  ledger.in_flight += delta;
  if (ledger.in_flight > ledger.max_in_flight) ledger.max_in_flight = ledger.in_flight;
  pthread_mutex_unlock(&ledger.lock);
}

void mock_ledger_minute(int64_t *requests, int64_t *tokens) {
  pthread_mutex_lock(&ledger.lock);
  minute_roll();
  *requests = ledger.minute_requests;
  *tokens = ledger.minute_tokens;
  pthread_mutex_unlock(&ledger.lock);
}

char *mock_ledger_json(void) {
  cJSON *o = cJSON_CreateObject();
  cJSON *faults = cJSON_CreateObject();
  if (!o || !faults) {
    cJSON_Delete(o);
    cJSON_Delete(faults);
    return NULL;
  }
  pthread_mutex_lock(&ledger.lock);
  int64_t keys = 0, multi = 0, max_bills = 0, max_attempts = 0;
  for (size_t i = 0; i < ledger.cap; i++) {
    const ledger_entry *e = &ledger.slots[i];
    if (!e->key[0]) continue;
    keys += e->bills > 0;
    multi += e->bills > 1;
    if (e->bills > max_bills) max_bills = e->bills;
    if (e->attempts > max_attempts) max_attempts = e->attempts;
  }
  cJSON_AddNumberToObject(o, "requests", (double)ledger.requests);
  cJSON_AddNumberToObject(o, "chat_requests", (double)ledger.chat_requests);
  cJSON_AddNumberToObject(o, "billed", (double)ledger.billed);
  cJSON_AddNumberToObject(o, "billed_keys", (double)keys);
  cJSON_AddNumberToObject(o, "keys_billed_more_than_once", (double)multi);
  cJSON_AddNumberToObject(o, "max_bills_per_key", (double)max_bills);
  cJSON_AddNumberToObject(o, "max_attempts_per_key", (double)max_attempts);
  cJSON_AddNumberToObject(o, "prompt_tokens", (double)ledger.prompt_tokens);
  cJSON_AddNumberToObject(o, "completion_tokens", (double)ledger.completion_tokens);
  cJSON_AddNumberToObject(o, "cached_tokens", (double)ledger.cached_tokens);
  cJSON_AddNumberToObject(o, "reasoning_tokens", (double)ledger.reasoning_tokens);
  cJSON_AddNumberToObject(o, "billed_usd", ledger.billed_usd);
  int64_t total_faults = 0;
  for (int f = 1; f < MOCK_FAULT_COUNT; f++) {
    cJSON_AddNumberToObject(faults, fault_names[f], (double)ledger.faults[f]);
    total_faults += ledger.faults[f];
  }
  cJSON_AddNumberToObject(o, "faults_total", (double)total_faults);
  cJSON_AddItemToObject(o, "faults", faults);
  cJSON_AddNumberToObject(o, "connections_total", (double)ledger.connections_total);
  cJSON_AddNumberToObject(o, "connections_open", (double)ledger.connections_open);
  cJSON_AddNumberToObject(o, "in_flight", (double)ledger.in_flight);
  cJSON_AddNumberToObject(o, "max_in_flight", (double)ledger.max_in_flight);
  cJSON_AddNumberToObject(o, "files_uploaded", (double)ledger.files_uploaded);
  cJSON_AddNumberToObject(o, "batches_created", (double)ledger.batches_created);
  cJSON_AddNumberToObject(o, "batch_polls", (double)ledger.batch_polls);
  cJSON_AddNumberToObject(o, "batch_rows", (double)ledger.batch_rows);
  cJSON_AddNumberToObject(o, "batch_billed", (double)ledger.batch_billed);
  cJSON_AddNumberToObject(o, "batch_prompt_tokens", (double)ledger.batch_prompt_tokens);
  cJSON_AddNumberToObject(o, "batch_completion_tokens", (double)ledger.batch_completion_tokens);
  pthread_mutex_unlock(&ledger.lock);
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return text;
}

double mock_unit(uint64_t seed, const char *key, uint64_t salt) {
  uint64_t h = us_hash64(key, strlen(key), seed ^ (salt * 0x9e3779b97f4a7c15ULL));
  /* splitmix64 finaliser: FNV's low bits alone are poorly mixed */
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return (double)(h >> 11) / 9007199254740992.0;
}

mock_fault mock_fault_draw(const mock_options *o, const char *key, int64_t attempt) {
  if (o->n_faults == 0 || o->fault_rate <= 0 || attempt >= o->fault_max_per_key)
    return MOCK_FAULT_NONE;
  if (mock_unit(o->fault_seed, key, 2 * (uint64_t)attempt + 1) >= o->fault_rate)
    return MOCK_FAULT_NONE;
  double u = mock_unit(o->fault_seed, key, 2 * (uint64_t)attempt + 2);
  int i = (int)(u * o->n_faults);
  return o->faults[i < o->n_faults ? i : o->n_faults - 1];
}

const char *mock_fault_name(mock_fault f) {
  return f >= 0 && f < MOCK_FAULT_COUNT ? fault_names[f] : "none";
}

mock_fault mock_fault_parse(const char *name) {
  for (int f = 1; f < MOCK_FAULT_COUNT; f++)
    if (strcmp(name, fault_names[f]) == 0) return (mock_fault)f;
  return MOCK_FAULT_NONE;
}
