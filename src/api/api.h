/*
 * api.h -- the seed's REST API over the queue: /absurd/... and /metrics.
 *
 * Owns: the routes and their JSON shapes, who may change the queue (a bearer token), the
 * mapping of the queue's refusals onto HTTP statuses, and a pool of database connections
 * (one per server thread at most, made as needed). Does not own: the transport (httpd.h),
 * the queue's rules (sql/, queue.h), the metric names (metrics.h).
 *
 * Routes (every answer JSON, every error {"error": "...", "code": "..."}):
 *   POST   /absurd/tasks                 spawn: {task_name, queue_name?, params?, priority?,
 *                                          max_retries?, timeout_sec?, idempotency_key?,
 *                                          depends_on?, workflow_id?, delay_sec?}
 *                                          -> 201 {task_id, status, queue_name, task_name,
 *                                          created_at}; 200 and the task the key names when
 *                                          an idempotency key is taken
 *   GET    /absurd/tasks                 ?queue_name= &status= &task_name= &workflow_id=
 *                                          &limit= (1..1000, 100) &offset= -> {tasks, total}
 *   GET    /absurd/tasks/{id}            the task (queue.h's cq_task_json, no claim token)
 *   DELETE /absurd/tasks/{id}            cancel (?reason=) -> the task
 *   POST   /absurd/tasks/{id}/retry      a failed or cancelled task again -> the task
 *   GET    /absurd/queues/{queue}/stats  {queue_name, pending, claimed, completed, failed,
 *                                          cancelled, retrying, total, ...}
 *   GET    /absurd/health                {status, enabled, queue}; 503 when the database
 *                                          does not answer
 *   GET    /metrics, /absurd/metrics     Prometheus text (metrics.h)
 * Mutations (POST, DELETE) need "Authorization: Bearer TOKEN": 401 without or with another
 * token; 403 when the server was started without one. Statuses: 400 bad JSON or values,
 * 404 unknown route, task or queue, 405 a route's wrong method, 409 not allowed in the
 * task's state, 503 the database unreachable, 500 anything else.
 */
#ifndef CONTIMG_API_H
#define CONTIMG_API_H

#include "error.h"
#include "httpd.h"

#include <jansson.h>

typedef struct ct_api_opts {
    const char *conninfo;      /* the queue's database */
    const char *queue;         /* the default queue: health, spawns naming none */
    const char *token;         /* the mutations' bearer token; NULL or "": none allowed */
    const char *products_dir;  /* watched by the disk metrics (NULL: not) */
    const char *state_dir;     /* likewise */
    int connections;           /* database connections at most (>= 1) */
    double metrics_window_sec; /* the summaries' quantiles cover this (3600) */
    double disk_guard;         /* the engines' CONTIMG_DISK_GUARD, reported as a metric */
    /* Run on each spawned task's params (a copy it may complete; tasks of a workflow too)
     * before the spawn: a failure is 400 with its message, so a task its stage would refuse
     * never enters the queue. key: the idempotency key a spawn naming none takes ("" none).
     * NULL: spawned as given. (`contimg serve` passes the stage table's, ct_stage_admit.) */
    ct_code (*admit)(void *ctx, const char *task_name, json_t *params, char *key, size_t key_size,
                     ct_err *err);
    void *admit_ctx;
} ct_api_opts;

typedef struct ct_api ct_api;

/* Checks the options and connects once (CT_ECONNECT when the database is not there). The
 * strings are copied. */
ct_code ct_api_create(const ct_api_opts *o, ct_api **out, ct_err *err);

/* The server's handler (ct_http_handler): api is the ct_api. Thread-safe. */
void ct_api_handle(void *api, const ct_http_request *req, ct_http_response *resp);

/* Closes the connections. No request may be in flight. NULL is a no-op. */
void ct_api_destroy(ct_api *a);

#endif
