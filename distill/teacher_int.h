/* Internals shared by the teacher client's files: the rate-limit token buckets and the
 * x-ratelimit-* header reading (teacher_limits.c), used by the transfer loop (teacher.c). */
#ifndef US_DISTILL_TEACHER_INT_H
#define US_DISTILL_TEACHER_INT_H

#include <stdbool.h>
#include <stddef.h>

/* A token bucket refilled continuously at rate_per_s up to capacity (one second's worth, at
 * least 1, so bursts never pass the per-minute rate by more than a second's share). A request
 * that needs more than capacity may start once the bucket is full and drives it negative, so
 * the long-run rate still holds. rate_per_s 0 disables the bucket. */
typedef struct us__bucket {
  double rate_per_s, capacity, level, updated;
} us__bucket;

void us__bucket_init(us__bucket *b, double per_minute, double now);
/* Seconds to wait before need can be taken (0: now). */
double us__bucket_wait(us__bucket *b, double need, double now);
void us__bucket_take(us__bucket *b, double amount);

/* What a response's headers said about retrying and the server's own rate limits; numbers are
 * -1 when the header was absent. */
typedef struct us__resp_headers {
  char retry_after[64];
  char retry_after_ms[32];
  double remaining_requests, remaining_tokens, limit_requests, limit_tokens;
  double reset_requests_s, reset_tokens_s;
} us__resp_headers;

void us__resp_headers_reset(us__resp_headers *h);
/* Reads one raw header line ("Name: value\r\n", n bytes) into h when it is one we use. */
void us__resp_headers_line(us__resp_headers *h, const char *line, size_t n);
/* A reset duration as OpenAI writes it ("1s", "6m0s", "20ms", "1h2m3.5s", or plain seconds);
 * -1 if unparseable. */
double us__duration_parse(const char *s);

#endif
