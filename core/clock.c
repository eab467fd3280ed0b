/* clock_gettime wrappers. */
#include "core/clock.h"

#include <errno.h>
#include <time.h>

static double ts(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double us_now(void) {
  return ts(CLOCK_MONOTONIC);
}
double us_cpu_time(void) {
  return ts(CLOCK_PROCESS_CPUTIME_ID);
}
double us_thread_cpu_time(void) {
  return ts(CLOCK_THREAD_CPUTIME_ID);
}
double us_epoch(void) {
  return ts(CLOCK_REALTIME);
}

void us_sleep(double seconds) {
  if (seconds <= 0) return;
  struct timespec t = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}
