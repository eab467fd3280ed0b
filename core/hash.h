/* Hashing, one API for the whole program: SHA-256 (OpenSSL libcrypto) for cache keys and
 * checksums; FNV-1a 64 for feature hashing and hash tables; us_hash_fraction for every stable
 * "is this item in the slice" decision (test split, validation slice). */
#ifndef US_CORE_HASH_H
#define US_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define US_SHA256_HEX_LEN 64
/* hex must hold 65 bytes; writes 64 lowercase hex digits and a NUL. */
void us_sha256_hex(const void *data, size_t len, char hex[US_SHA256_HEX_LEN + 1]);
void us_sha256(const void *data, size_t len, unsigned char out[32]);

/* FNV-1a 64-bit, with an optional seed mixed in first (its eight bytes, low byte first). Stable
 * across versions: the split and the feature hashing depend on it, so never change it. */
uint64_t us_hash64(const void *data, size_t len, uint64_t seed);
/* The FNV-1a state after the seed's eight bytes: us_hash64(p, n, seed) is this state stepped
 * with US_FNV_STEP over p[0..n). For hot loops that extend a hash byte by byte. */
uint64_t us_hash64_start(uint64_t seed);
#define US_FNV_PRIME 0x100000001b3ull
#define US_FNV_STEP(h, byte) (((h) ^ (unsigned char)(byte)) * US_FNV_PRIME)

/* MurmurHash3's 64-bit finaliser (fmix64): every input bit moves every output bit. For mixing
 * hashes that are already 64 bits (shingles, table slots). Stable across versions. */
uint64_t us_hash_mix64(uint64_t h);

/* A stable fraction in [0, 1) (53 bits) for data under seed: FNV-1a through a finaliser
 * (MurmurHash3's fmix64), since FNV's high bits mix weakly for texts that differ only at the
 * end. Stable across versions: the train/test split depends on it. */
double us_hash_fraction(const void *data, size_t len, uint64_t seed);

#endif
