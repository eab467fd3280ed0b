/* The MPI side of data-parallel training (student/dist.h): one rank per process, the collective
 * calls with MPI_ERRORS_RETURN so a failure becomes a message, and a watchdog thread that ends a
 * rank stuck in a collective. Without US_HAVE_MPI every function is the one-rank no-op. */
#include "student/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

#ifdef US_HAVE_MPI
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#endif

static int dist_rank = 0, dist_size = 1;
static double allreduce_seconds = 0.0, allreduce_cpu = 0.0;
static long allreduce_calls = 0;

static int env_int(const char *name) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : 0;
}

int us_dist_launched_size(void) {
  int n = env_int("OMPI_COMM_WORLD_SIZE"); /* Open MPI's mpirun */
  if (n <= 0) n = env_int("PMI_SIZE");     /* MPICH's hydra, Slurm's PMI */
  return n > 0 ? n : 1;
}

int us_dist_rank(void) {
  return dist_rank;
}

int us_dist_size(void) {
  return dist_size;
}

void us_dist_allreduce_stats(double *seconds, double *cpu_seconds, long *calls) {
  *seconds = allreduce_seconds;
  *cpu_seconds = allreduce_cpu;
  *calls = allreduce_calls;
}

#ifdef US_HAVE_MPI

bool us_dist_available(void) {
  return true;
}

static bool dist_joined = false; /* MPI_Init done by us */

static bool launched(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

/* ---- watchdog: a rank blocked in a collective longer than the timeout exits ---- */

static atomic_llong busy_since_us; /* 0: not in a collective */
static atomic_long busy_step;
static _Atomic(const char *) busy_what;
static atomic_bool watchdog_stop;
static pthread_t watchdog_thread;
static bool watchdog_running = false;
static int timeout_s = US_DIST_TIMEOUT_DEFAULT_S;

/* _exit, not MPI_Abort: MPI may be called from one thread only (MPI_THREAD_FUNNELED), and the
 * main thread is inside a collective. mpirun sees a rank leave without MPI_Finalize and stops
 * the job. */
static void *watchdog(void *unused) {
  (void)unused;
  while (!atomic_load(&watchdog_stop)) {
    us_sleep(0.25);
    long long since = atomic_load(&busy_since_us);
    if (since == 0 || us_now() * 1e6 - (double)since < timeout_s * 1e6) continue;
    long step = atomic_load(&busy_step);
    char at[48] = "";
    if (step >= 0) snprintf(at, sizeof at, " at step %ld", step + 1);
    fprintf(stderr,
            "understudy: error: rank %d of %d waited %d s in %s%s without an answer from the other "
            "ranks: one of them stopped or its node is unreachable; this rank stops, and mpirun "
            "stops the job (the last checkpoint resumes: run the same mpirun command again, with "
            "any number of ranks)\n"
            "hint: US_MPI_TIMEOUT_S sets this limit in seconds (0 waits forever)\n",
            dist_rank, dist_size, timeout_s, atomic_load(&busy_what), at);
    fflush(stderr);
    _exit(1);
  }
  return NULL;
}

static void busy_begin(const char *what, long step) {
  atomic_store(&busy_what, what);
  atomic_store(&busy_step, step);
  atomic_store(&busy_since_us, (long long)(us_now() * 1e6));
}

static void busy_end(void) {
  atomic_store(&busy_since_us, 0);
}

static us_status mpi_failed(int rc, const char *what, us_err *err) {
  char text[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return us_err_set(err, US_ERR_IO, "rank %d of %d: %s failed: %s", dist_rank, dist_size, what,
                    text);
}

us_status us_dist_init(us_err *err) {
  if (dist_joined || !launched()) return US_OK;
  int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS)
    return us_err_set(err, US_ERR_IO,
                      "MPI_Init failed (error %d): mpirun started this process but it cannot join "
                      "the job",
                      rc);
  dist_joined = true;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &dist_size);
  const char *t = getenv("US_MPI_TIMEOUT_S");
  if (t && *t) {
    char *end = NULL;
    long v = strtol(t, &end, 10);
    if (*end || v < 0 || v > INT_MAX)
      return us_err_set(err, US_ERR_CONFIG,
                        "US_MPI_TIMEOUT_S: expected whole seconds (0: wait forever), found '%s'",
                        t);
    timeout_s = (int)v;
  }
  if (dist_size > 1 && timeout_s > 0) {
    atomic_store(&busy_since_us, 0);
    atomic_store(&busy_what, "");
    if (pthread_create(&watchdog_thread, NULL, watchdog, NULL) == 0) watchdog_running = true;
  }
  return US_OK;
}

us_status us_dist_allreduce_sum(float *x, size_t n, long step, us_err *err) {
  if (dist_size == 1) return US_OK;
  double t0 = us_now(), cpu0 = us_thread_cpu_time();
  busy_begin("the gradient allreduce", step);
  /* one call: MPI counts are ints, so only a block beyond 2^31 floats (8 GB) takes more */
  int rc = MPI_SUCCESS;
  for (size_t at = 0; at < n && rc == MPI_SUCCESS; at += (size_t)INT_MAX) {
    size_t count = n - at < (size_t)INT_MAX ? n - at : (size_t)INT_MAX;
    rc = MPI_Allreduce(MPI_IN_PLACE, x + at, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  }
  busy_end();
  allreduce_seconds += us_now() - t0;
  allreduce_cpu += us_thread_cpu_time() - cpu0;
  allreduce_calls++;
  if (rc != MPI_SUCCESS) {
    char what[96];
    snprintf(what, sizeof what, "the gradient allreduce of step %ld (%zu floats)", step + 1, n);
    return mpi_failed(rc, what, err);
  }
  return US_OK;
}

us_status us_dist_same_u64(uint64_t value, const char *what, us_err *err) {
  if (dist_size == 1) return US_OK;
  uint64_t v[2] = {value, ~value}; /* the minimum of both: the smallest and the largest value */
  busy_begin("a consistency check", -1);
  int rc = MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
  busy_end();
  if (rc != MPI_SUCCESS) return mpi_failed(rc, "the consistency check", err);
  if (v[0] != ~v[1])
    return us_err_set(err, US_ERR_STATE,
                      "ranks disagree on %s (this is rank %d of %d): every rank must read the same "
                      "workspace and checkpoint; put the output folder on a file system every node "
                      "shares, and do not label while training",
                      what, dist_rank, dist_size);
  return US_OK;
}

us_status us_dist_any(bool flag, bool *any, us_err *err) {
  *any = flag;
  if (dist_size == 1) return US_OK;
  int v = flag ? 1 : 0;
  busy_begin("a collective decision", -1);
  int rc = MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  busy_end();
  if (rc != MPI_SUCCESS) return mpi_failed(rc, "a collective decision", err);
  *any = v != 0;
  return US_OK;
}

us_status us_dist_barrier(us_err *err) {
  if (dist_size == 1) return US_OK;
  busy_begin("a barrier", -1);
  int rc = MPI_Barrier(MPI_COMM_WORLD);
  busy_end();
  return rc == MPI_SUCCESS ? US_OK : mpi_failed(rc, "a barrier", err);
}

_Noreturn void us_dist_abort(int code) {
  fflush(stdout);
  fflush(stderr);
  if (dist_joined) MPI_Abort(MPI_COMM_WORLD, code);
  exit(code);
}

void us_dist_finalize(void) {
  if (!dist_joined) return;
  if (watchdog_running) {
    atomic_store(&watchdog_stop, true);
    pthread_join(watchdog_thread, NULL);
    watchdog_running = false;
  }
  MPI_Finalize();
  dist_joined = false;
  dist_rank = 0;
  dist_size = 1;
}

#else /* no MPI: one rank */

bool us_dist_available(void) {
  return false;
}

us_status us_dist_init(us_err *err) {
  int n = us_dist_launched_size();
  if (n > 1)
    return us_err_set(err, US_ERR_CONFIG,
                      "mpirun started %d ranks, but this understudy was built without MPI: each "
                      "rank would train alone and overwrite the others' files; install "
                      "libopenmpi-dev (scripts/deps.sh test) and rebuild with -DUS_MPI=ON",
                      n);
  return US_OK;
}

us_status us_dist_allreduce_sum(float *x, size_t n, long step, us_err *err) {
  (void)x, (void)n, (void)step, (void)err;
  return US_OK;
}

us_status us_dist_same_u64(uint64_t value, const char *what, us_err *err) {
  (void)value, (void)what, (void)err;
  return US_OK;
}

us_status us_dist_any(bool flag, bool *any, us_err *err) {
  (void)err;
  *any = flag;
  return US_OK;
}

us_status us_dist_barrier(us_err *err) {
  (void)err;
  return US_OK;
}

_Noreturn void us_dist_abort(int code) {
  fflush(stdout);
  fflush(stderr);
  exit(code);
}

void us_dist_finalize(void) {}

#endif
