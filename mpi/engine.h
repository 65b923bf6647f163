/*
 * engine.h -- the contimg engine: rank 0 coordinates, the other ranks work.
 *
 * Rank 0 is the only rank that talks to PostgreSQL. It claims tasks in
 * batches sized to its free ranks, gives each task a group of ranks (a
 * communicator made with MPI_Comm_create_group, on which the stage runs its
 * collective steps: parallel-HDF5 writes, FFTW-MPI transforms), and takes
 * each task's outcome back from the group's first rank. A finished task is
 * committed in ONE transaction: complete + products upserts + the next task
 * of its chain (queue.h: cq_commit). A failed one is recorded with its
 * category, which decides retrying.
 *
 * Beside the coordinator, a lease keeper thread (leases.h) heartbeats every
 * held task and fails those past their timeout_sec; expired leases of dead
 * engines are reaped every heartbeat interval. A commit or failure the
 * database cannot take is journaled (journal.h) and replayed until it can.
 *
 * Drain: SIGTERM, SIGINT or SIGUSR1 make rank 0 stop claiming, let the
 * tasks in flight finish for up to grace_sec, and exit 0. Tasks still
 * running then are released (pending again, no attempt spent) and the job
 * is aborted, since MPI cannot interrupt a collective stage midway: the exit
 * status is then nonzero.
 *
 * With one rank the coordinator runs each task itself on MPI_COMM_SELF.
 */
#ifndef CONTIMG_ENGINE_H
#define CONTIMG_ENGINE_H

#include "config.h"
#include "error.h"

#include <mpi.h>
#include <stdbool.h>

typedef struct ct_engine_opts {
    bool drain;         /* exit when nothing this engine can work is left */
    int ranks_per_task; /* 0: every worker rank on one task at a time */
    double grace_sec;   /* < 0: the configuration's CONTIMG_DRAIN_GRACE_SEC */
    long max_tasks;     /* stop claiming after this many tasks; 0: no limit */
    bool quiet;         /* no line per task */
} ct_engine_opts;

typedef struct ct_engine_summary {
    long claimed, completed, failed, released, dropped, journaled, replayed, reaped;
    bool signalled; /* a drain was requested by a signal */
    double seconds;
    /* Rank 0's heap in use once the coordinator has freed what it holds (glibc's count):
     * what a run leaks grows it, so two runs of different lengths tell (bench/engine, the
     * load run); the peak resident size is the process's. */
    long heap_bytes, peak_rss_kb;
} ct_engine_summary;

/* Sets the process's handlers for SIGTERM, SIGINT and SIGUSR1 to request a
 * drain (the one piece of process-wide state: a signal can only set a flag). */
void ct_engine_catch_signals(void);

/* Runs the engine on comm (collective); every rank returns the same code.
 * The summary is rank 0's. */
ct_code ct_engine_run(MPI_Comm comm, const ct_config *cfg, const ct_engine_opts *o,
                      ct_engine_summary *summary, ct_err *err);

#endif
