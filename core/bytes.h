/* Little-endian fixed-width integers and doubles in byte buffers: the one copy every file format
 * (the language model, the tokeniser, GGUF) reads and writes them with. */
#ifndef US_CORE_BYTES_H
#define US_CORE_BYTES_H

#include <stdint.h>
#include <string.h>

static inline void us_put_le16(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}

static inline uint16_t us_get_le16(const unsigned char *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}

static inline void us_put_le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline void us_put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t us_get_le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t us_get_le64(const unsigned char *p) {
  return (uint64_t)us_get_le32(p) | (uint64_t)us_get_le32(p + 4) << 32;
}

static inline void us_put_le_f64(unsigned char *p, double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  us_put_le64(p, u);
}

static inline double us_get_le_f64(const unsigned char *p) {
  uint64_t u = us_get_le64(p);
  double v;
  memcpy(&v, &u, sizeof v);
  return v;
}

#endif
