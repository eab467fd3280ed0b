/* Hashing: SHA-256 (OpenSSL libcrypto) for cache keys and checksums; a fast 64-bit hash for
 * feature hashing and splits. */
#ifndef US_CORE_HASH_H
#define US_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define US_SHA256_HEX_LEN 64
/* hex must hold 65 bytes; writes 64 lowercase hex digits and a NUL. */
void us_sha256_hex(const void *data, size_t len, char hex[US_SHA256_HEX_LEN + 1]);
void us_sha256(const void *data, size_t len, unsigned char out[32]);
/* FNV-1a 64-bit, with an optional seed mixed in first. Stable across versions: the split and
 * the feature hashing depend on it, so never change it. */
uint64_t us_hash64(const void *data, size_t len, uint64_t seed);

#endif
