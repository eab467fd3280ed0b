/* Rate limits for the teacher client: token buckets for requests and tokens per minute, and
 * reading the server's Retry-After and x-ratelimit-* response headers. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "distill/teacher_int.h"

void us__bucket_init(us__bucket *b, double per_minute, double now) {
  b->rate_per_s = per_minute > 0 ? per_minute / 60.0 : 0;
  b->capacity = b->rate_per_s > 1 ? b->rate_per_s : 1;
  b->level = b->capacity;
  b->updated = now;
}

double us__bucket_wait(us__bucket *b, double need, double now) {
  if (b->rate_per_s <= 0) return 0;
  if (now > b->updated) {
    b->level += (now - b->updated) * b->rate_per_s;
    if (b->level > b->capacity) b->level = b->capacity;
    b->updated = now;
  }
  if (need > b->capacity) need = b->capacity;
  if (b->level >= need) return 0;
  return (need - b->level) / b->rate_per_s;
}

void us__bucket_take(us__bucket *b, double amount) {
  if (b->rate_per_s > 0) b->level -= amount;
}

void us__resp_headers_reset(us__resp_headers *h) {
  h->retry_after[0] = h->retry_after_ms[0] = '\0';
  h->remaining_requests = h->remaining_tokens = h->limit_requests = h->limit_tokens = -1;
  h->reset_requests_s = h->reset_tokens_s = -1;
}

double us__duration_parse(const char *s) {
  while (*s == ' ') s++;
  if (!*s) return -1;
  double total = 0;
  bool any = false;
  while (*s && !isspace((unsigned char)*s)) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0) return -1;
    s = end;
    if (strncmp(s, "ms", 2) == 0)
      v /= 1000, s += 2;
    else if (*s == 'h')
      v *= 3600, s++;
    else if (*s == 'm')
      v *= 60, s++;
    else if (*s == 's')
      s++;
    else if (*s && !isspace((unsigned char)*s))
      return -1;
    total += v;
    any = true;
  }
  return any ? total : -1;
}

static double number_or_minus(const char *s) {
  char *end;
  double v = strtod(s, &end);
  return end == s || !isfinite(v) || v < 0 ? -1 : v;
}

void us__resp_headers_line(us__resp_headers *h, const char *line, size_t n) {
  if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response (after 100 Continue) */
    us__resp_headers_reset(h);
    return;
  }
  const char *colon = memchr(line, ':', n);
  if (!colon) return;
  size_t name_len = (size_t)(colon - line);
  const char *v = colon + 1;
  size_t vn = n - name_len - 1;
  while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
  while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' ')) vn--;
  char value[64];
  if (vn >= sizeof value) vn = sizeof value - 1;
  memcpy(value, v, vn);
  value[vn] = '\0';
#define IS(name) (name_len == sizeof(name) - 1 && strncasecmp(line, name, name_len) == 0)
  if (IS("retry-after")) {
    memcpy(h->retry_after, value, vn + 1);
  } else if (IS("retry-after-ms")) {
    if (vn < sizeof h->retry_after_ms) memcpy(h->retry_after_ms, value, vn + 1);
  } else if (IS("x-ratelimit-remaining-requests"))
    h->remaining_requests = number_or_minus(value);
  else if (IS("x-ratelimit-remaining-tokens"))
    h->remaining_tokens = number_or_minus(value);
  else if (IS("x-ratelimit-limit-requests"))
    h->limit_requests = number_or_minus(value);
  else if (IS("x-ratelimit-limit-tokens"))
    h->limit_tokens = number_or_minus(value);
  else if (IS("x-ratelimit-reset-requests"))
    h->reset_requests_s = us__duration_parse(value);
  else if (IS("x-ratelimit-reset-tokens"))
    h->reset_tokens_s = us__duration_parse(value);
#undef IS
}
