/* Time: monotonic wall seconds, process and thread CPU seconds, wall-clock epoch seconds. */
#ifndef US_CORE_CLOCK_H
#define US_CORE_CLOCK_H

double us_now(void);      /* monotonic seconds */
double us_cpu_time(void); /* CPU seconds used by this process (all threads) */
double us_thread_cpu_time(void);
double us_epoch(void); /* seconds since 1970 */
void us_sleep(double seconds);

#endif
