/* Data-parallel training over MPI ranks (`mpirun -np N understudy train CONFIG`): the few
 * collective operations the trainer needs, behind an interface that hides MPI. Built with MPI
 * only when CMake found it (option US_MPI); without it, and in any process that mpirun did not
 * start, there is one rank and every call here is a no-op. mpi.h stays inside dist.c.
 *
 * The state is the process's: MPI itself is once per process. us_dist_init is called once by the
 * tool (cli/) before anything else touches the workspace; the library's trainer only asks
 * us_dist_size() / us_dist_rank(). Every collective (allreduce, barrier, same_u64, any) must be
 * called by every rank in the same order; a rank that fails on its own calls us_dist_abort, never
 * us_dist_finalize (which would wait for ranks blocked in a collective).
 *
 * A rank that waits longer than US_MPI_TIMEOUT_S seconds (default 300; 0: forever) inside one
 * collective prints an error naming the operation and the step, and exits; mpirun then stops the
 * job. A rank that dies (kill -9) is noticed by mpirun itself, which stops the others. */
#ifndef US_STUDENT_DIST_H
#define US_STUDENT_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define US_DIST_TIMEOUT_DEFAULT_S 300

/* The job size mpirun announced in the environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE or
 * PMIX_SIZE... as set by Open MPI and MPICH launchers), or 1 when not started by mpirun. Needs
 * no MPI: the tool uses it to refuse commands other than train under mpirun. */
int us_dist_launched_size(void);
/* True when this build can run under mpirun (built with MPI). */
bool us_dist_available(void);

/* Joins the MPI job when mpirun started this process (a no-op otherwise, or when called twice).
 * Fails with US_ERR_CONFIG when mpirun started more than one rank but this build has no MPI, and
 * with US_ERR_IO when MPI_Init fails. */
us_status us_dist_init(us_err *err);
int us_dist_rank(void); /* 0 .. size - 1; 0 without MPI */
int us_dist_size(void); /* 1 without MPI */

/* x[0..n) = the sum over every rank of x[0..n), in place; one MPI_Allreduce. step (>= 0) names
 * the training step in a timeout message. */
us_status us_dist_allreduce_sum(float *x, size_t n, long step, us_err *err);
/* Fails on every rank alike (US_ERR_STATE, "ranks disagree on WHAT: ...") unless every rank
 * passed the same value: the check that all ranks read the same data and checkpoint. */
us_status us_dist_same_u64(uint64_t value, const char *what, us_err *err);
/* True on every rank when flag is true on at least one (a collective decision). */
us_status us_dist_any(bool flag, bool *any, us_err *err);
us_status us_dist_barrier(us_err *err);

/* Wall seconds and CPU seconds (this thread's: MPI polls while it waits) spent inside
 * us_dist_allreduce_sum, and its number of calls, since the process started. */
void us_dist_allreduce_stats(double *seconds, double *cpu_seconds, long *calls);

/* Stops the whole job with exit status code (MPI_Abort); never returns. Without MPI: exit. */
_Noreturn void us_dist_abort(int code);
/* Leaves the MPI job after success on every rank (MPI_Finalize); a no-op without MPI. */
void us_dist_finalize(void);

#endif
