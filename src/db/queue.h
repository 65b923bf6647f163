/*
 * queue.h -- the C client of the ABSURD task queue (sql/0001_absurd_queue.sql).
 *
 * A cq_client is one PostgreSQL connection with its prepared statements. It
 * is NOT thread-safe: use one client per thread (as with libpq's PGconn).
 * Every operation is one call into a stored function; the rules of the queue
 * (leases, retries, dead-lettering, cascades) live in the database, not here.
 *
 * Errors: every call returns a ct_code and fills the ct_err it is given.
 * Queue refusals map to distinct codes (CT_ENOTFOUND, CT_ESTATE,
 * CT_ELEASE_EXPIRED, CT_ENOT_HOLDER, CT_EUNKNOWN_QUEUE, CT_EINVAL, CT_EFULL).
 *
 * Connection loss: before each call a broken connection is re-established
 * with capped exponential backoff (0.1 s doubling to 5 s) within the
 * client's retry budget. A call whose connection breaks mid-flight is
 * retried only when repeating it is harmless (reads, heartbeats); otherwise
 * it returns CT_ECONNECT, the outcome unknown: the caller's lease or
 * idempotency key makes a later retry safe.
 *
 * Ownership: strings and JSON passed in are borrowed for the call. Tasks
 * and arrays returned are owned by the caller and freed with the matching
 * cq_*_free function.
 */
#ifndef CONTIMG_QUEUE_H
#define CONTIMG_QUEUE_H

#include "error.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CQ_UUID_LEN 36 /* canonical text form, without the terminator */
#define CQ_NAME_MAX 127
#define CQ_KEY_MAX  256

typedef char cq_uuid[CQ_UUID_LEN + 1];

typedef enum cq_status {
    CQ_PENDING,
    CQ_CLAIMED,
    CQ_RETRYING,
    CQ_COMPLETED,
    CQ_FAILED,
    CQ_CANCELLED,
} cq_status;

const char *cq_status_name(cq_status s);
/* CT_EINVAL for a name that is not a status. */
ct_code cq_status_parse(const char *name, cq_status *out);

/* Syntax checks, done locally so bad input never reaches the database. */
bool cq_uuid_valid(const char *s);
bool cq_name_valid(const char *s); /* queue and task names: [A-Za-z0-9][A-Za-z0-9._-]{0,126} */

/* One row of absurd.tasks. Times are Unix seconds; NAN where NULL. */
typedef struct cq_task {
    cq_uuid id;
    char *queue;
    char *origin_queue;
    char *name;
    json_t *params;
    int priority;
    cq_status status;
    char *worker_id;     /* NULL when never claimed */
    cq_uuid claim_token; /* "" unless claimed */
    int attempt;
    int max_retries;
    int timeout_sec;
    double backoff_base_sec;
    double backoff_max_sec;
    char *idempotency_key; /* NULL when none */
    cq_uuid *depends_on;
    size_t n_depends_on;
    cq_uuid workflow_id;  /* "" when none */
    json_t *result;       /* NULL when none */
    char *error;          /* last failure or cancellation reason; NULL when none */
    char *error_category; /* NULL when none */
    cq_uuid cancelled_by; /* "" when none */
    double created_at, available_at, claimed_at, heartbeat_at, lease_expires_at, completed_at,
        dead_lettered_at;
    double wait_time_sec, execution_time_sec;
} cq_task;

void cq_task_free(cq_task *t);                /* frees the fields, not t */
void cq_tasks_free(cq_task *tasks, size_t n); /* frees the fields and the array */

typedef struct cq_client cq_client;

/* Connects (once, no retry) to conninfo. */
ct_code cq_connect(const char *conninfo, cq_client **out, ct_err *err);
void cq_disconnect(cq_client *c);

/* Budget in seconds for re-establishing a lost connection (default 30). */
void cq_set_reconnect_budget(cq_client *c, double seconds);

/* --- Spawning ------------------------------------------------------------ */

typedef struct cq_spawn_opts {
    const char *queue;             /* default "dsa110-pipeline" */
    const char *name;              /* required */
    const json_t *params;          /* a JSON object; NULL = {} */
    int priority;                  /* 0..1000000, higher first; default 0 */
    int max_retries;               /* default 3 */
    int timeout_sec;               /* default 3600 */
    const char *idempotency_key;   /* NULL = none */
    const char *const *depends_on; /* task ids */
    size_t n_depends_on;
    const char *workflow_id; /* NULL = none */
    double delay_sec;        /* not claimable before now + delay; default 0 */
    double backoff_base_sec; /* default 10 */
    double backoff_max_sec;  /* default 900 */
} cq_spawn_opts;

/* The defaults above. */
cq_spawn_opts cq_spawn_defaults(void);

/* Spawns one task; *created is false when the idempotency key named an
 * existing task, whose id is returned. */
ct_code cq_spawn(cq_client *c, const cq_spawn_opts *o, cq_uuid id_out, bool *created, ct_err *err);

/* Spawns n tasks in one transaction, pipelined (one round trip per batch).
 * All or none: on error nothing is spawned. ids_out may be NULL. */
ct_code cq_spawn_many(cq_client *c, const cq_spawn_opts *o, size_t n, cq_uuid *ids_out,
                      ct_err *err);

/* A workflow: a DAG of tasks spawned into queue in one transaction, all or none, with one
 * workflow id (sql/0008_workflows.sql): tasks is [{"key", "task_name", "params"?,
 * "depends_on"?: [keys listed before it], "priority"?, "max_retries"?, "timeout_sec"?}].
 * *out: {"workflow_id", "tasks": [{"key", "task_id"}]}. CT_EINVAL for a malformed graph,
 * CT_EFULL past the queue's backpressure limit (nothing spawned). */
ct_code cq_spawn_workflow(cq_client *c, const char *queue, const json_t *tasks, json_t **out,
                          ct_err *err);

/* The newest limit workflows: [{"workflow_id", "queue_name", "total", "completed", "open",
 * "failed", "created_at"}]. */
ct_code cq_workflows(cq_client *c, long limit, json_t **out, ct_err *err);

/* --- Working on tasks ---------------------------------------------------- */

/* Claims up to `limit` runnable tasks of `queue` for `worker_id` with a lease
 * of lease_sec. *n may be 0. task_names (NULL-terminated) restricts the
 * kinds claimed; NULL = any. */
ct_code cq_claim(cq_client *c, const char *queue, const char *worker_id, int limit,
                 double lease_sec, const char *const *task_names, cq_task **tasks, size_t *n,
                 ct_err *err);

/* Extends the leases of n claimed tasks. alive[i] (caller's array of n) is
 * set to whether task i still holds its lease; a lost task must stop. */
ct_code cq_heartbeat(cq_client *c, const cq_uuid *ids, const cq_uuid *tokens, size_t n,
                     double lease_sec, bool *alive, ct_err *err);

ct_code cq_complete(cq_client *c, const char *id, const char *token, const json_t *result,
                    ct_err *err);

typedef enum cq_outcome {
    CQ_OUT_COMPLETED,
    CQ_OUT_LEASE_EXPIRED,
    CQ_OUT_NOT_HOLDER,
    CQ_OUT_NOT_FOUND,
} cq_outcome;

/* Completes n tasks in one call; outcomes[i] says what happened to task i.
 * results may be NULL (no results). */
ct_code cq_complete_many(cq_client *c, const cq_uuid *ids, const cq_uuid *tokens,
                         json_t *const *results, size_t n, cq_outcome *outcomes, ct_err *err);

/* The engine's commit, in ONE transaction: completes the task, upserts its
 * products ({"visibilities": [...], "images": [...]}, NULL = none) and
 * spawns the next tasks of its chain (a JSON array of spawn specs, NULL =
 * none; see absurd.commit_task in sql/). Nothing happens unless all of it
 * does. allow_expired accepts a lease that ran out while the claim token
 * still matches (replaying a journaled commit after a database outage).
 * spawned (may be NULL) receives [{"name", "task_id", "created"}, ...].
 * Not retried when the connection breaks mid-call: CT_ECONNECT means the
 * outcome is unknown, and the caller replays it (a second commit of a
 * completed task is CT_ENOT_HOLDER). */
ct_code cq_commit(cq_client *c, const char *id, const char *token, const json_t *result,
                  const json_t *products, const json_t *spawns, bool allow_expired,
                  json_t **spawned, ct_err *err);

/* How many pending, retrying or claimed tasks of queue (restricted to task_names,
 * NULL-terminated, when not NULL) a draining engine must still wait for, and in how
 * many seconds the earliest becomes available, or a claim's lease runs out (NAN: none):
 * a task whose holder died comes back to the drain (sql/0010_drain.sql). */
ct_code cq_outstanding(cq_client *c, const char *queue, const char *const *task_names,
                       long *n_outstanding, double *next_available_sec, ct_err *err);

/* Records a failed attempt. after (may be NULL) receives the task as it is
 * now: retrying (with its next available_at) or failed (dead-lettered). */
ct_code cq_fail(cq_client *c, const char *id, const char *token, const char *message,
                ct_category category, cq_task *after, ct_err *err);

/* Gives a claimed task back without spending an attempt. */
ct_code cq_release(cq_client *c, const char *id, const char *token, ct_err *err);

/* --- Operating ----------------------------------------------------------- */

ct_code cq_cancel(cq_client *c, const char *id, const char *reason, ct_err *err);
ct_code cq_retry(cq_client *c, const char *id, ct_err *err);
ct_code cq_get(cq_client *c, const char *id, cq_task *out, ct_err *err);

typedef struct cq_filter {
    const char *queue; /* NULL = all */
    const char *name;  /* NULL = all */
    bool has_status;
    cq_status status;
    const char *workflow_id; /* NULL = all */
    long limit;              /* default 100 */
    long offset;
    bool spawn_order; /* oldest first, in the order spawned (a batch's or workflow's own) */
} cq_filter;

/* Tasks matching f, newest first (or as spawn_order says). */
ct_code cq_list(cq_client *c, const cq_filter *f, cq_task **tasks, size_t *n, ct_err *err);

/* How many tasks match f, its limit and offset aside: the total behind cq_list's pages. */
ct_code cq_count(cq_client *c, const cq_filter *f, long *total, ct_err *err);

typedef struct cq_reaped {
    cq_uuid id;
    char action[16]; /* "requeued", "retrying" or "dead_lettered" */
} cq_reaped;

/* Returns expired leases and timed-out tasks to the queue (queue NULL = all). */
ct_code cq_reap(cq_client *c, const char *queue, cq_reaped **out, size_t *n, ct_err *err);

typedef struct cq_stats {
    char queue[CQ_NAME_MAX + 1];
    long pending, claimed, retrying, completed, failed, cancelled, total;
    double oldest_pending_sec; /* NAN when nothing is pending */
    double avg_wait_sec, avg_execution_sec;
} cq_stats;

/* Per-queue counts; queue NULL = every registered queue. */
ct_code cq_stats_get(cq_client *c, const char *queue, cq_stats **out, size_t *n, ct_err *err);

/* Backpressure (sql/0006_backpressure.sql): the most tasks queue may hold waiting to be
 * claimed (pending or retrying; 1000 for a new queue, 0: no limit). cq_spawn and
 * cq_spawn_many beyond it fail with CT_EFULL and write nothing (a taken idempotency key
 * still answers with its task); the engine's own spawns (the next step of a chain, the
 * mosaic planner's) are never refused. */
ct_code cq_set_max_pending(cq_client *c, const char *queue, long max_pending, ct_err *err);

/* One round trip: the database answers and queue is registered (CT_EUNKNOWN_QUEUE when
 * it is not). For health checks. */
ct_code cq_ping(cq_client *c, const char *queue, ct_err *err);

/* Registers a queue and its dead-letter queue (QUEUE-dlq); idempotent. */
ct_code cq_create_queue(cq_client *c, const char *queue, ct_err *err);

/* --- Other clients of the same connection -------------------------------- */

/* Runs sql (parameters $1..$n as text, NULL for SQL NULL) on the queue's
 * connection, with its policy -- a lost connection re-established within
 * the reconnect budget, deadlocks and serialization failures retried, and
 * the one SQLSTATE map of this client -- for a statement whose answer is
 * one row of one JSON value, into *out (the caller decrefs). retry_safe:
 * the statement may run again after a connection was lost mid-way (reads,
 * idempotent writes); otherwise such a loss is CT_ECONNECT, "outcome
 * unknown". what names it in messages. For the products client
 * (products.h) and others of this layer; not for SQL built from input. */
ct_code cq_query_json(cq_client *c, const char *what, const char *sql, int n,
                      const char *const *vals, bool retry_safe, json_t **out, ct_err *err);

/* --- JSON ---------------------------------------------------------------- */

/* Unix seconds as "2026-11-22T16:40:01.123Z" (UTC), or "-" for NAN. */
void cq_format_time(double unix_sec, char *out, size_t size);

/* A task as a JSON object (new reference): the table's column names, times as above,
 * absent values null. The claim token only with with_claim_token: whoever holds it can
 * complete or fail the claim, so it is for the operator's own command line, not for an
 * answer over the network. */
json_t *cq_task_json(const cq_task *t, bool with_claim_token);

/* --- Waiting ------------------------------------------------------------- */

/* Waits up to timeout_sec for a spawn notification on `queue` (LISTENing
 * on first use). *woken is false on timeout. Claimers still poll: a
 * notification is a hint that work may be there, never a promise. */
ct_code cq_wait(cq_client *c, const char *queue, double timeout_sec, bool *woken, ct_err *err);

#endif
