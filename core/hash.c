/* SHA-256 through libcrypto's EVP interface, and FNV-1a. */
#include "core/hash.h"

#include <openssl/evp.h>
#include <pthread.h>

/* SHA-256 fetched from the provider once: EVP_sha256() looks it up again on every digest
 * (a lock and a search, most of the cost of hashing a request body). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void) {
  sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); /* kept for the process's life */
}

void us_sha256(const void *data, size_t len, unsigned char out[32]) {
  unsigned int n = 32;
  pthread_once(&sha256_once, fetch_sha256);
  EVP_Digest(data, len, out, &n, sha256_md ? sha256_md : EVP_sha256(), NULL);
}

void us_sha256_hex(const void *data, size_t len, char hex[US_SHA256_HEX_LEN + 1]) {
  static const char digits[] = "0123456789abcdef";
  unsigned char d[32];
  us_sha256(data, len, d);
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[64] = '\0';
}

uint64_t us_hash64_start(uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int i = 0; i < 8; i++) h = US_FNV_STEP(h, (seed >> (8 * i)) & 0xff);
  return h;
}

uint64_t us_hash64(const void *data, size_t len, uint64_t seed) {
  const unsigned char *p = data;
  uint64_t h = us_hash64_start(seed);
  for (size_t i = 0; i < len; i++) h = US_FNV_STEP(h, p[i]);
  return h;
}

uint64_t us_hash_mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

double us_hash_fraction(const void *data, size_t len, uint64_t seed) {
  uint64_t h = us_hash_mix64(us_hash64(data, len, seed));
  return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}
