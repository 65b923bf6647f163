/*
 * mpiutil.h -- the one error-check idiom of contimg's collective code.
 *
 * A collective call must return the same code on every rank, or ranks part
 * ways and the job hangs. After each step that can fail locally (an
 * allocation, a read), every rank passes its own outcome to ct_mpi_agree and
 * goes on with the common one.
 */
#ifndef CONTIMG_MPIUTIL_H
#define CONTIMG_MPIUTIL_H

#include "error.h"

#include <mpi.h>

/* Every rank passes its own outcome; all get the outcome of the lowest-numbered
 * rank that failed (its code and message), or CT_OK when none did. err may be
 * NULL on ranks that do not want the message. */
ct_code ct_mpi_agree(MPI_Comm comm, ct_code rc, ct_err *err);

/* The threads one rank of `sharing` should run so that the ranks of
 * `sharing` on this node together use its cores once: the CPUs this process
 * may run on (its affinity mask, which mpirun's binding narrows) or the
 * node's online CPUs divided among those ranks, whichever is fewer; at
 * least 1. Collective over sharing. */
int ct_mpi_cpu_share(MPI_Comm sharing);

/* Called before MPI_Init. Open MPI's PMIx picks its security component by
 * trying munge first, and where munged is installed but not running it
 * retries for 2.3 s (measured) before falling back to its native one: a
 * start of `contimg image` without mpirun took 2.6 s instead of 0.3 s.
 * When munged's socket does not answer, munge cannot be used anyway, so
 * this leaves it out (PMIX_MCA_psec=^munge); a PMIX_MCA_psec already set,
 * or a munged that answers, is left alone. mpirun's own start is its
 * environment's: scripts export the same variable (tests/CMakeLists.txt).
 * It also leaves out Open MPI's lockedfile shared-file-pointer component
 * (OMPI_MCA_sharedfp=^lockedfile, unless set), which aborts the job on a long
 * path: contimg uses no shared file pointer. */
void ct_mpi_prepare_env(void);

#endif
