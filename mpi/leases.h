/*
 * leases.h -- rank 0's lease keeper: a thread that heartbeats every task the
 * allocation holds and enforces each task's timeout_sec.
 *
 * It has its own database connection (a cq_client serves one thread), so a
 * coordinator busy committing, or blocked reconnecting, never lets a lease
 * lapse. Every heartbeat interval it extends the leases of all held tasks
 * in one call; a task whose lease was lost (reaped after an outage,
 * cancelled) is marked LOST, and a task running past its timeout is failed
 * with category timeout and marked TIMED_OUT. The coordinator asks before
 * it commits and drops the results of tasks it no longer holds.
 */
#ifndef CONTIMG_LEASES_H
#define CONTIMG_LEASES_H

#include "error.h"
#include "queue.h"

typedef enum ct_lease_state {
    CT_LEASE_HELD,
    CT_LEASE_LOST,
    CT_LEASE_TIMED_OUT,
    CT_LEASE_UNKNOWN, /* not (or no longer) kept */
} ct_lease_state;

typedef struct ct_leases ct_leases;

/* Connects to conninfo and starts the thread. */
ct_code ct_leases_start(const char *conninfo, double heartbeat_sec, double lease_sec,
                        double reconnect_budget_sec, ct_leases **out, ct_err *err);
/* Stops the thread and disconnects (leases of tasks still kept simply run out). */
void ct_leases_stop(ct_leases *l);

/* Starts keeping a task claimed just now; its timeout counts from now. */
ct_code ct_leases_add(ct_leases *l, const cq_task *t, ct_err *err);
/* Stops keeping a task (after it was committed, failed or released). */
void ct_leases_remove(ct_leases *l, const char *task_id);
ct_lease_state ct_leases_state(ct_leases *l, const char *task_id);

#endif
