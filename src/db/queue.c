/* queue.c -- see queue.h. */
#define _GNU_SOURCE
#include "queue.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- Statements -------------------------------------------------------------
 * Every operation is one prepared statement. retry_safe marks those that may
 * be repeated after the connection broke mid-call without changing anything
 * twice. */

#define TASK_COLS                                                                                  \
    "task_id, queue_name, origin_queue, task_name, params, priority, status, worker_id, "          \
    "claim_token, attempt, max_retries, timeout_sec, backoff_base_sec, backoff_max_sec, "          \
    "idempotency_key, depends_on, workflow_id, result, error, error_category, cancelled_by, "      \
    "date_part('epoch', created_at), date_part('epoch', available_at), "                           \
    "date_part('epoch', claimed_at), date_part('epoch', heartbeat_at), "                           \
    "date_part('epoch', lease_expires_at), date_part('epoch', completed_at), "                     \
    "date_part('epoch', dead_lettered_at), wait_time_sec, execution_time_sec"

/* The queue a spawn names none of (cq_spawn_defaults). */
#define CQ_DEFAULT_QUEUE "dsa110-pipeline"

/* A cq_filter: $1 queue, $2 task name, $3 status, $4 workflow id (NULL: any). */
#define LIST_WHERE                                                                                 \
    " WHERE ($1::text IS NULL OR queue_name = $1)"                                                 \
    " AND ($2::text IS NULL OR task_name = $2)"                                                    \
    " AND ($3::text IS NULL OR status = $3)"                                                       \
    " AND ($4::uuid IS NULL OR workflow_id = $4::uuid)"

enum {
    S_SPAWN,
    S_CLAIM,
    S_HEARTBEAT,
    S_COMPLETE,
    S_COMPLETE_MANY,
    S_FAIL,
    S_RELEASE,
    S_CANCEL,
    S_RETRY,
    S_GET,
    S_LIST,
    S_LIST_COUNT,
    S_REAP,
    S_STATS,
    S_CREATE_QUEUE,
    S_SET_MAX_PENDING,
    S_REQUIRE_QUEUE,
    S_COMMIT,
    S_OUTSTANDING,
    S_COUNT
};

typedef struct stmt_def {
    const char *name;
    const char *sql;
    int nparams;
    bool retry_safe;
} stmt_def;

static const stmt_def stmts[S_COUNT] = {
    [S_SPAWN] =
        {"cq_spawn",
         "SELECT task_id, created FROM absurd.spawn_task_admitted($1, $2, $3::jsonb, $4::int, "
         "$5::int, $6::int, $7, $8::uuid[], $9::uuid, $10::float8, $11::float8, "
         "$12::float8)",
         12, false},
    [S_CLAIM] = {"cq_claim",
                 "SELECT " TASK_COLS " FROM absurd.claim_tasks($1, $2, $3::int, $4::float8, "
                 "$5::text[])",
                 5, false},
    [S_HEARTBEAT] = {"cq_heartbeat",
                     "SELECT task_id FROM absurd.heartbeat_tasks($1::uuid[], $2::uuid[], "
                     "$3::float8)",
                     3, true},
    [S_COMPLETE] = {"cq_complete",
                    "SELECT task_id FROM absurd.complete_task($1::uuid, $2::uuid, $3::jsonb)", 3,
                    false},
    [S_COMPLETE_MANY] = {"cq_complete_many",
                         "SELECT task_id, outcome FROM absurd.complete_tasks($1::uuid[], "
                         "$2::uuid[], $3::jsonb[])",
                         3, false},
    [S_FAIL] = {"cq_fail", "SELECT " TASK_COLS " FROM absurd.fail_task($1::uuid, $2::uuid, $3, $4)",
                4, false},
    [S_RELEASE] = {"cq_release", "SELECT task_id FROM absurd.release_task($1::uuid, $2::uuid)", 2,
                   false},
    [S_CANCEL] = {"cq_cancel", "SELECT task_id FROM absurd.cancel_task($1::uuid, $2)", 2, false},
    [S_RETRY] = {"cq_retry", "SELECT task_id FROM absurd.retry_task($1::uuid)", 1, false},
    [S_GET] = {"cq_get", "SELECT " TASK_COLS " FROM absurd.tasks WHERE task_id = $1::uuid", 1,
               true},
    [S_LIST] = {"cq_list",
                "SELECT " TASK_COLS " FROM absurd.tasks" LIST_WHERE
                " ORDER BY CASE WHEN $7::boolean THEN seq END, created_at DESC, task_id"
                " LIMIT $5::bigint OFFSET $6::bigint",
                7, true},
    [S_LIST_COUNT] = {"cq_count", "SELECT count(*) FROM absurd.tasks" LIST_WHERE, 4, true},
    [S_REAP] = {"cq_reap", "SELECT task_id, action FROM absurd.reap_tasks($1)", 1, false},
    [S_STATS] = {"cq_stats",
                 "SELECT queue_name, pending, claimed, retrying, completed, failed, cancelled, "
                 "total, oldest_pending_sec, avg_wait_sec, avg_execution_sec "
                 "FROM absurd.queue_stats($1)",
                 1, true},
    [S_CREATE_QUEUE] = {"cq_create_queue", "SELECT absurd.create_queue($1)", 1, true},
    [S_SET_MAX_PENDING] = {"cq_set_max_pending", "SELECT absurd.set_max_pending($1, $2::int)", 2,
                           true},
    [S_REQUIRE_QUEUE] = {"cq_require_queue", "SELECT absurd._require_queue($1)", 1, true},
    [S_COMMIT] = {"cq_commit",
                  "SELECT absurd.commit_task($1::uuid, $2::uuid, $3::jsonb, $4::jsonb, $5::jsonb, "
                  "$6::boolean)",
                  6, false},
    [S_OUTSTANDING] = {"cq_outstanding",
                       "SELECT n_outstanding, next_available_sec FROM absurd.outstanding($1, "
                       "$2::text[])",
                       2, true},
};

struct cq_client {
    PGconn *conn;
    unsigned prepared; /* bit per statement prepared on this connection */
    bool listening;
    double reconnect_budget_sec;
};

/* --- Small helpers ---------------------------------------------------------- */

static const char *const status_names[] = {
    [CQ_PENDING] = "pending",     [CQ_CLAIMED] = "claimed", [CQ_RETRYING] = "retrying",
    [CQ_COMPLETED] = "completed", [CQ_FAILED] = "failed",   [CQ_CANCELLED] = "cancelled",
};

const char *cq_status_name(cq_status s)
{
    return (size_t)s < sizeof status_names / sizeof *status_names ? status_names[s] : "?";
}

ct_code cq_status_parse(const char *name, cq_status *out)
{
    for (size_t i = 0; i < sizeof status_names / sizeof *status_names; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (cq_status)i;
            return CT_OK;
        }
    }
    return CT_EINVAL;
}

bool cq_uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != CQ_UUID_LEN)
        return false;
    for (int i = 0; i < CQ_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

bool cq_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > CQ_NAME_MAX || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return false;
    return true;
}

static void sleep_sec(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Maps a failed result to a code: the queue's own CTnnn states first. */
static ct_code result_error(const PGresult *r, const char *what, ct_err *err)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (msg == NULL)
        msg = PQresultErrorMessage(r);
    ct_code code = CT_EDB;
    if (state != NULL) {
        static const struct {
            const char *state;
            ct_code code;
        } map[] = {
            {"CT001", CT_ENOTFOUND}, {"CT002", CT_ELEASE_EXPIRED}, {"CT003", CT_ENOT_HOLDER},
            {"CT004", CT_ESTATE},    {"CT005", CT_EUNKNOWN_QUEUE}, {"CT006", CT_EINVAL},
            {"CT007", CT_EFULL},     {"22P02", CT_EINVAL},         {"23514", CT_EINVAL},
            {"22001", CT_EINVAL},    {"22023", CT_EINVAL},         {"22003", CT_EINVAL},
            {"22P04", CT_EINVAL},    {"22021", CT_EINVAL},         {"23505", CT_ESTATE},
            {"42P01", CT_ESTATE},    {"42883", CT_ESTATE},         {"3F000", CT_ESTATE},
        };
        for (size_t i = 0; i < sizeof map / sizeof *map; i++)
            if (strcmp(state, map[i].state) == 0)
                code = map[i].code;
        if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
            code = CT_ECONNECT;
    }
    if (code == CT_ESTATE && state != NULL &&
        (strcmp(state, "42P01") == 0 || strcmp(state, "42883") == 0 || strcmp(state, "3F000") == 0))
        ct_fail(err, code, "%s: the queue schema is missing (run `contimg db migrate`): %s", what,
                msg);
    else if (state != NULL && strncmp(state, "CT", 2) != 0) /* PostgreSQL's own: say which */
        ct_fail(err, code, "%s: %s (SQLSTATE %s)", what, msg, state);
    else
        ct_fail(err, code, "%s: %s", what, msg);
    if (err != NULL && state != NULL && strncmp(state, "CT", 2) != 0)
        snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state);
    return code;
}

/* What every new session needs: quiet notices, and LISTEN when waiting. */
static bool session_setup(cq_client *c)
{
    PGresult *r = PQexec(c->conn, c->listening ? "SET client_min_messages = warning; "
                                                 "LISTEN absurd_tasks"
                                               : "SET client_min_messages = warning");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

/* Re-establishes the connection with capped exponential backoff (0.1 s
 * doubling to 5 s) until it works or *waited exceeds the budget. */
static ct_code reconnect(cq_client *c, double *waited, ct_err *err)
{
    double delay = 0.1;
    for (;;) {
        PQreset(c->conn);
        if (PQstatus(c->conn) == CONNECTION_OK) {
            c->prepared = 0;
            if (session_setup(c))
                return CT_OK;
        }
        if (*waited >= c->reconnect_budget_sec)
            return ct_fail(err, CT_ECONNECT, "database unavailable (gave up after %.1f s): %s",
                           *waited, PQerrorMessage(c->conn));
        sleep_sec(delay);
        *waited += delay;
        delay = fmin(delay * 2, 5.0);
    }
}

/* A connection the server closed while we were idle still reads as OK
 * until libpq looks at the socket: look first, so a call that has not been
 * sent yet is never reported as "outcome unknown". */
static ct_code ensure_connected(cq_client *c, double *waited, ct_err *err)
{
    /* The server's goodbye is an error message followed by EOF; libpq sees
     * the EOF only on a later read, so read while the socket has data. */
    for (int i = 0; i < 4 && PQstatus(c->conn) == CONNECTION_OK &&
                    PQtransactionStatus(c->conn) == PQTRANS_IDLE;
         i++) {
        struct pollfd p = {.fd = PQsocket(c->conn), .events = POLLIN};
        if (poll(&p, 1, 0) <= 0 || !PQconsumeInput(c->conn))
            break;
    }
    if (PQstatus(c->conn) != CONNECTION_OK)
        return reconnect(c, waited, err);
    return CT_OK;
}

/* Deadlock and serialization failures roll the whole statement back, so
 * running it again is always safe. */
static bool is_retryable_conflict(const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return state != NULL && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0);
}

enum { MAX_STATEMENT_TRIES = 5 };

/* Makes sure the connection is up and statement s is prepared on it.
 * Preparing changes nothing, so a connection lost meanwhile is retried. */
static ct_code ready_stmt(cq_client *c, int s, double *waited, ct_err *err)
{
    const stmt_def *d = &stmts[s];
    for (int tries = 1;; tries++) {
        ct_code rc = ensure_connected(c, waited, err);
        if (rc != CT_OK || (c->prepared & (1u << s)))
            return rc;
        PGresult *p = PQprepare(c->conn, d->name, d->sql, d->nparams, NULL);
        if (PQresultStatus(p) == PGRES_COMMAND_OK) {
            PQclear(p);
            c->prepared |= 1u << s;
            return CT_OK;
        }
        bool lost = PQstatus(c->conn) != CONNECTION_OK;
        rc = result_error(p, d->name, err);
        PQclear(p);
        if (!lost || tries >= MAX_STATEMENT_TRIES)
            return lost ? ct_fail(err, CT_ECONNECT, "connection lost while preparing %s", d->name)
                        : rc;
    }
}

/* Runs statement s. On success *out holds the result (caller clears). */
static ct_code exec_stmt(cq_client *c, int s, const char *const *vals, PGresult **out, ct_err *err)
{
    const stmt_def *d = &stmts[s];
    double waited = 0;
    *out = NULL;
    for (int tries = 1;; tries++) {
        ct_code rc = ready_stmt(c, s, &waited, err);
        if (rc != CT_OK)
            return rc;
        PGresult *r = PQexecPrepared(c->conn, d->name, d->nparams, vals, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            *out = r;
            return CT_OK;
        }
        if (PQstatus(c->conn) != CONNECTION_OK) {
            PQclear(r);
            if (d->retry_safe && tries < MAX_STATEMENT_TRIES)
                continue;
            return ct_fail(err, CT_ECONNECT,
                           "connection to the database lost during %s; its outcome is unknown",
                           d->name);
        }
        if (is_retryable_conflict(r) && tries < MAX_STATEMENT_TRIES) {
            PQclear(r);
            sleep_sec(0.01 * (1 << tries));
            continue;
        }
        rc = result_error(r, d->name, err);
        PQclear(r);
        return rc;
    }
}

ct_code cq_query_json(cq_client *c, const char *what, const char *sql, int n,
                      const char *const *vals, bool retry_safe, json_t **out, ct_err *err)
{
    double waited = 0;
    *out = NULL;
    for (int tries = 1;; tries++) {
        ct_code rc = ensure_connected(c, &waited, err);
        if (rc != CT_OK)
            return rc;
        PGresult *r = PQexecParams(c->conn, sql, n, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            if (PQntuples(r) != 1 || PQnfields(r) != 1 || PQgetisnull(r, 0, 0))
                rc = ct_fail(err, CT_EDB, "%s: the database answered %d rows, not one value", what,
                             PQntuples(r));
            else if (!(*out = json_loads(PQgetvalue(r, 0, 0), JSON_DECODE_ANY, NULL)))
                rc = ct_fail(err, CT_EDB, "%s: the database answered something other than JSON",
                             what);
            PQclear(r);
            return rc;
        }
        if (PQstatus(c->conn) != CONNECTION_OK) {
            PQclear(r);
            if (retry_safe && tries < MAX_STATEMENT_TRIES)
                continue;
            return ct_fail(err, CT_ECONNECT,
                           "connection to the database lost during %s; its outcome is unknown",
                           what);
        }
        if (is_retryable_conflict(r) && tries < MAX_STATEMENT_TRIES) {
            PQclear(r);
            sleep_sec(0.01 * (1 << tries));
            continue;
        }
        rc = result_error(r, what, err);
        PQclear(r);
        return rc;
    }
}

/* --- Decoding rows ------------------------------------------------------------ */

static char *dup_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

static double num_or_nan(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NAN : strtod(PQgetvalue(r, row, col), NULL);
}

static void copy_uuid(const PGresult *r, int row, int col, cq_uuid out)
{
    out[0] = '\0';
    if (!PQgetisnull(r, row, col))
        snprintf(out, sizeof(cq_uuid), "%s", PQgetvalue(r, row, col));
}

static json_t *json_or_null(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    const char *text = PQgetvalue(r, row, col);
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    /* jsonb holds integers of any size, jansson only 64-bit ones: read those
     * as reals rather than losing the whole document. */
    if (v == NULL)
        v = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
    return v;
}

/* "{a,b,c}" -> array of uuids. */
static ct_code parse_uuid_array(const char *text, cq_uuid **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t len = strlen(text);
    if (len <= 2)
        return CT_OK;
    size_t cap = (len + 1) / (CQ_UUID_LEN + 1) + 1;
    cq_uuid *a = calloc(cap, sizeof *a);
    if (a == NULL)
        return CT_ENOMEM;
    const char *p = text + 1;
    while (*n < cap && (size_t)(p - text) + CQ_UUID_LEN < len) {
        memcpy(a[*n], p, CQ_UUID_LEN);
        a[*n][CQ_UUID_LEN] = '\0';
        (*n)++;
        p += CQ_UUID_LEN + 1;
    }
    *out = a;
    return CT_OK;
}

static ct_code decode_task(const PGresult *r, int row, cq_task *t, ct_err *err)
{
    memset(t, 0, sizeof *t);
    int k = 0;
    copy_uuid(r, row, k++, t->id);
    t->queue = dup_or_null(r, row, k++);
    t->origin_queue = dup_or_null(r, row, k++);
    t->name = dup_or_null(r, row, k++);
    t->params = json_or_null(r, row, k++);
    t->priority = atoi(PQgetvalue(r, row, k++));
    if (cq_status_parse(PQgetvalue(r, row, k++), &t->status) != CT_OK)
        t->status = CQ_PENDING;
    t->worker_id = dup_or_null(r, row, k++);
    copy_uuid(r, row, k++, t->claim_token);
    t->attempt = atoi(PQgetvalue(r, row, k++));
    t->max_retries = atoi(PQgetvalue(r, row, k++));
    t->timeout_sec = atoi(PQgetvalue(r, row, k++));
    t->backoff_base_sec = num_or_nan(r, row, k++);
    t->backoff_max_sec = num_or_nan(r, row, k++);
    t->idempotency_key = dup_or_null(r, row, k++);
    if (parse_uuid_array(PQgetvalue(r, row, k++), &t->depends_on, &t->n_depends_on) != CT_OK)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    copy_uuid(r, row, k++, t->workflow_id);
    t->result = json_or_null(r, row, k++);
    t->error = dup_or_null(r, row, k++);
    t->error_category = dup_or_null(r, row, k++);
    copy_uuid(r, row, k++, t->cancelled_by);
    double *times[] = {&t->created_at,       &t->available_at,     &t->claimed_at,
                       &t->heartbeat_at,     &t->lease_expires_at, &t->completed_at,
                       &t->dead_lettered_at, &t->wait_time_sec,    &t->execution_time_sec};
    for (size_t i = 0; i < sizeof times / sizeof *times; i++)
        *times[i] = num_or_nan(r, row, k++);
    if (t->queue == NULL || t->name == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    return CT_OK;
}

void cq_task_free(cq_task *t)
{
    if (t == NULL)
        return;
    free(t->queue);
    free(t->origin_queue);
    free(t->name);
    json_decref(t->params);
    free(t->worker_id);
    free(t->idempotency_key);
    free(t->depends_on);
    json_decref(t->result);
    free(t->error);
    free(t->error_category);
    memset(t, 0, sizeof *t);
}

void cq_tasks_free(cq_task *tasks, size_t n)
{
    for (size_t i = 0; tasks != NULL && i < n; i++)
        cq_task_free(&tasks[i]);
    free(tasks);
}

static ct_code decode_tasks(const PGresult *r, cq_task **out, size_t *n, ct_err *err)
{
    int rows = PQntuples(r);
    *out = NULL;
    *n = 0;
    if (rows == 0)
        return CT_OK;
    cq_task *a = calloc((size_t)rows, sizeof *a);
    if (a == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    for (int i = 0; i < rows; i++) {
        ct_code rc = decode_task(r, i, &a[i], err);
        if (rc != CT_OK) {
            cq_tasks_free(a, (size_t)i + 1);
            return rc;
        }
    }
    *out = a;
    *n = (size_t)rows;
    return CT_OK;
}

/* --- Encoding parameters ------------------------------------------------------ */

/* A growable text buffer for array literals. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
} strbuf;

static bool sb_add(strbuf *b, const char *text, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (s == NULL)
            return false;
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = '\0';
    return true;
}

/* {"a","b"} with elements quoted and escaped as array-literal syntax needs. */
static char *array_literal(const char *const *items, size_t n)
{
    strbuf b = {0};
    bool ok = sb_add(&b, "{", 1);
    for (size_t i = 0; ok && i < n; i++) {
        if (items[i] == NULL) {
            ok = sb_add(&b, i ? ",NULL" : "NULL", i ? 5 : 4);
            continue;
        }
        ok = sb_add(&b, i ? ",\"" : "\"", i ? 2 : 1);
        /* Copy runs that need no escaping whole. */
        for (const char *p = items[i]; ok && *p;) {
            size_t run = strcspn(p, "\"\\");
            ok = sb_add(&b, p, run);
            p += run;
            if (ok && *p) {
                char esc[2] = {'\\', *p++};
                ok = sb_add(&b, esc, 2);
            }
        }
        ok = ok && sb_add(&b, "\"", 1);
    }
    ok = ok && sb_add(&b, "}", 1);
    if (!ok) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static char *uuid_array_literal(const cq_uuid *ids, size_t n)
{
    const char **p = malloc((n ? n : 1) * sizeof *p);
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = ids[i];
    char *s = array_literal(p, n);
    free(p);
    return s;
}

static void ignore_notice(void *arg, const char *message) {}

/* --- Lifecycle ---------------------------------------------------------------- */

ct_code cq_connect(const char *conninfo, cq_client **out, ct_err *err)
{
    *out = NULL;
    cq_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    c->reconnect_budget_sec = 30;
    c->conn = PQconnectdb(conninfo);
    /* Errors reach the caller as ct_err; libpq's notices (a server's
     * goodbye, for one) must not also be printed on stderr. */
    PQsetNoticeProcessor(c->conn, ignore_notice, NULL);
    if (PQstatus(c->conn) != CONNECTION_OK) {
        ct_code rc = ct_fail(err, CT_ECONNECT, "database unavailable: %s", PQerrorMessage(c->conn));
        cq_disconnect(c);
        return rc;
    }
    if (!session_setup(c)) {
        /* A server that went away between the connect and the setup (it crashed: the
         * fault harness) is unavailable, exit 3, not a database error of ours. */
        ct_code code = PQstatus(c->conn) == CONNECTION_BAD ? CT_ECONNECT : CT_EDB;
        ct_code rc = ct_fail(err, code, "%s: %s",
                             code == CT_ECONNECT ? "database unavailable" : "session setup failed",
                             PQerrorMessage(c->conn));
        cq_disconnect(c);
        return rc;
    }
    *out = c;
    return CT_OK;
}

void cq_disconnect(cq_client *c)
{
    if (c == NULL)
        return;
    PQfinish(c->conn);
    free(c);
}

void cq_set_reconnect_budget(cq_client *c, double seconds)
{
    c->reconnect_budget_sec = seconds < 0 ? 0 : seconds;
}

/* --- Spawning ----------------------------------------------------------------- */

cq_spawn_opts cq_spawn_defaults(void)
{
    return (cq_spawn_opts){
        .queue = CQ_DEFAULT_QUEUE,
        .priority = 0,
        .max_retries = 3,
        .timeout_sec = 3600,
        .backoff_base_sec = 10,
        .backoff_max_sec = 900,
    };
}

/* Text parameters of one spawn; strings owned by the struct. */
typedef struct spawn_params {
    char priority[16], max_retries[16], timeout[16], delay[32], base[32], max[32];
    char *params;
    char *deps;
    const char *vals[12];
} spawn_params;

static void spawn_params_free(spawn_params *p)
{
    free(p->params);
    free(p->deps);
}

static ct_code spawn_params_make(const cq_spawn_opts *o, spawn_params *p, ct_err *err)
{
    memset(p, 0, sizeof *p);
    if (o->name == NULL || !cq_name_valid(o->name))
        return ct_fail(err, CT_EINVAL, "task name must match [A-Za-z0-9][A-Za-z0-9._-]{0,126}");
    if (o->params != NULL && !json_is_object(o->params))
        return ct_fail(err, CT_EINVAL, "task params must be a JSON object");
    for (size_t i = 0; i < o->n_depends_on; i++)
        if (!cq_uuid_valid(o->depends_on[i]))
            return ct_fail(err, CT_EINVAL, "dependency \"%s\" is not a task id (UUID)",
                           o->depends_on[i]);
    if (o->workflow_id != NULL && !cq_uuid_valid(o->workflow_id))
        return ct_fail(err, CT_EINVAL, "workflow id is not a UUID");
    p->params = o->params ? json_dumps(o->params, JSON_COMPACT) : strdup("{}");
    p->deps = array_literal(o->depends_on, o->n_depends_on);
    if (p->params == NULL || p->deps == NULL) {
        spawn_params_free(p);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    snprintf(p->priority, sizeof p->priority, "%d", o->priority);
    snprintf(p->max_retries, sizeof p->max_retries, "%d", o->max_retries);
    snprintf(p->timeout, sizeof p->timeout, "%d", o->timeout_sec);
    snprintf(p->delay, sizeof p->delay, "%.17g", o->delay_sec);
    snprintf(p->base, sizeof p->base, "%.17g", o->backoff_base_sec);
    snprintf(p->max, sizeof p->max, "%.17g", o->backoff_max_sec);
    const char *v[12] = {o->queue ? o->queue : CQ_DEFAULT_QUEUE,
                         o->name,
                         p->params,
                         p->priority,
                         p->max_retries,
                         p->timeout,
                         o->idempotency_key,
                         p->deps,
                         o->workflow_id,
                         p->delay,
                         p->base,
                         p->max};
    memcpy(p->vals, v, sizeof v);
    return CT_OK;
}

ct_code cq_spawn(cq_client *c, const cq_spawn_opts *o, cq_uuid id_out, bool *created, ct_err *err)
{
    spawn_params p;
    ct_code rc = spawn_params_make(o, &p, err);
    if (rc != CT_OK)
        return rc;
    PGresult *r = NULL;
    rc = exec_stmt(c, S_SPAWN, p.vals, &r, err);
    spawn_params_free(&p);
    if (rc != CT_OK)
        return rc;
    copy_uuid(r, 0, 0, id_out);
    if (created)
        *created = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    return CT_OK;
}

/* Reads results up to and including the next sync point. The first error
 * seen is reported; ids (may be NULL) receive spawn results in order. */
static ct_code drain_pipeline(cq_client *c, cq_uuid *ids, size_t *next, ct_code rc, ct_err *err)
{
    for (;;) {
        PGresult *r = PQgetResult(c->conn);
        if (PQstatus(c->conn) != CONNECTION_OK) {
            /* libpq's own error carries no SQLSTATE: say what it is. */
            PQclear(r);
            return ct_fail(err, CT_ECONNECT,
                           "connection to the database lost during a spawn batch; "
                           "its outcome is unknown");
        }
        if (r == NULL)
            continue; /* end of one query's results */
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return rc;
        }
        if (st == PGRES_TUPLES_OK) {
            if (PQnfields(r) == 2 && PQntuples(r) == 1) {
                if (ids != NULL)
                    copy_uuid(r, 0, 0, ids[*next]);
                (*next)++;
            }
        } else if (st != PGRES_COMMAND_OK && rc == CT_OK) {
            rc = st == PGRES_PIPELINE_ABORTED ? ct_fail(err, CT_EDB, "pipeline aborted")
                                              : result_error(r, "spawn", err);
        }
        PQclear(r);
    }
}

ct_code cq_spawn_many(cq_client *c, const cq_spawn_opts *o, size_t n, cq_uuid *ids_out, ct_err *err)
{
    /* Prepare the statement (and connect) outside the pipeline. */
    double waited = 0;
    ct_code rc = ready_stmt(c, S_SPAWN, &waited, err);
    if (rc != CT_OK)
        return rc;
    if (!PQenterPipelineMode(c->conn))
        return ct_fail(err, CT_EDB, "could not enter pipeline mode");
    /* One explicit transaction over chunks of at most 256 queries, so the
     * result stream never backs up against the request stream. */
    enum { CHUNK = 256 };
    size_t done = 0;
    rc = CT_OK;
    if (!PQsendQueryParams(c->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0))
        rc = ct_fail(err, CT_ECONNECT, "send: %s", PQerrorMessage(c->conn));
    /* Backpressure for the batch as a whole, per queue it spawns into (sql/0006). */
    for (size_t i = 0; rc == CT_OK && i < n; i++) {
        const char *q = o[i].queue ? o[i].queue : CQ_DEFAULT_QUEUE;
        bool seen = false;
        size_t count = 0;
        for (size_t k = 0; k < n && !seen; k++) {
            const char *qk = o[k].queue ? o[k].queue : CQ_DEFAULT_QUEUE;
            seen = k < i && strcmp(qk, q) == 0;
            count += strcmp(qk, q) == 0;
        }
        if (seen)
            continue;
        char cnt[32];
        snprintf(cnt, sizeof cnt, "%zu", count);
        const char *v[2] = {q, cnt};
        if (!PQsendQueryParams(c->conn, "SELECT absurd.admit_batch($1, $2::bigint)", 2, NULL, v,
                               NULL, NULL, 0))
            rc = ct_fail(err, CT_ECONNECT, "send: %s", PQerrorMessage(c->conn));
    }
    for (size_t i = 0; rc == CT_OK && i < n; i += CHUNK) {
        size_t end = i + CHUNK < n ? i + CHUNK : n;
        for (size_t k = i; rc == CT_OK && k < end; k++) {
            spawn_params p;
            if ((rc = spawn_params_make(&o[k], &p, err)) != CT_OK)
                break;
            if (!PQsendQueryPrepared(c->conn, stmts[S_SPAWN].name, 12, p.vals, NULL, NULL, 0))
                rc = ct_fail(err, CT_ECONNECT, "send: %s", PQerrorMessage(c->conn));
            spawn_params_free(&p);
        }
        if (!PQpipelineSync(c->conn) && rc == CT_OK)
            rc = ct_fail(err, CT_ECONNECT, "sync: %s", PQerrorMessage(c->conn));
        rc = drain_pipeline(c, ids_out, &done, rc, err);
    }
    const char *finish = rc == CT_OK ? "COMMIT" : "ROLLBACK";
    if (PQsendQueryParams(c->conn, finish, 0, NULL, NULL, NULL, NULL, 0) &&
        PQpipelineSync(c->conn)) {
        ct_err scratch;
        ct_code frc = drain_pipeline(c, NULL, &done, CT_OK, rc == CT_OK ? err : &scratch);
        if (rc == CT_OK)
            rc = frc;
    } else if (rc == CT_OK) {
        rc = ct_fail(err, CT_ECONNECT, "send: %s", PQerrorMessage(c->conn));
    }
    if (!PQexitPipelineMode(c->conn) && rc == CT_OK)
        rc = ct_fail(err, CT_EDB, "could not leave pipeline mode: %s", PQerrorMessage(c->conn));
    return rc;
}

/* --- Working on tasks --------------------------------------------------------- */

ct_code cq_claim(cq_client *c, const char *queue, const char *worker_id, int limit,
                 double lease_sec, const char *const *task_names, cq_task **tasks, size_t *n,
                 ct_err *err)
{
    *tasks = NULL;
    *n = 0;
    char lim[16], lease[32];
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(lease, sizeof lease, "%.17g", lease_sec);
    char *names = NULL;
    if (task_names != NULL) {
        size_t k = 0;
        while (task_names[k])
            k++;
        if ((names = array_literal(task_names, k)) == NULL)
            return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    const char *v[5] = {queue, worker_id, lim, lease, names};
    PGresult *r = NULL;
    ct_code rc = exec_stmt(c, S_CLAIM, v, &r, err);
    free(names);
    if (rc != CT_OK)
        return rc;
    rc = decode_tasks(r, tasks, n, err);
    PQclear(r);
    return rc;
}

ct_code cq_heartbeat(cq_client *c, const cq_uuid *ids, const cq_uuid *tokens, size_t n,
                     double lease_sec, bool *alive, ct_err *err)
{
    char *a = uuid_array_literal(ids, n), *b = uuid_array_literal(tokens, n);
    char lease[32];
    snprintf(lease, sizeof lease, "%.17g", lease_sec);
    ct_code rc;
    PGresult *r = NULL;
    if (a == NULL || b == NULL) {
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
    } else {
        const char *v[3] = {a, b, lease};
        rc = exec_stmt(c, S_HEARTBEAT, v, &r, err);
    }
    free(a);
    free(b);
    if (rc != CT_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        alive[i] = false;
        for (int row = 0; row < PQntuples(r); row++)
            if (strcmp(PQgetvalue(r, row, 0), ids[i]) == 0)
                alive[i] = true;
    }
    PQclear(r);
    return CT_OK;
}

/* Runs a statement whose rows are not needed. */
static ct_code exec_simple(cq_client *c, int s, const char *const *v, ct_err *err)
{
    PGresult *r = NULL;
    ct_code rc = exec_stmt(c, s, v, &r, err);
    PQclear(r);
    return rc;
}

static ct_code require_uuid(const char *what, const char *s, ct_err *err)
{
    if (!cq_uuid_valid(s))
        return ct_fail(err, CT_EINVAL, "%s \"%s\" is not a UUID", what, s ? s : "");
    return CT_OK;
}

ct_code cq_complete(cq_client *c, const char *id, const char *token, const json_t *result,
                    ct_err *err)
{
    ct_code rc;
    if ((rc = require_uuid("task id", id, err)) || (rc = require_uuid("claim token", token, err)))
        return rc;
    char *res = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (result != NULL && res == NULL)
        return ct_fail(err, CT_ENOMEM, "could not encode the result as JSON");
    const char *v[3] = {id, token, res};
    rc = exec_simple(c, S_COMPLETE, v, err);
    free(res);
    return rc;
}

/* JSON text of j, or of `empty` when j is NULL; NULL only when out of memory. */
static char *json_text(const json_t *j, const char *empty)
{
    return j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : strdup(empty);
}

ct_code cq_commit(cq_client *c, const char *id, const char *token, const json_t *result,
                  const json_t *products, const json_t *spawns, bool allow_expired,
                  json_t **spawned, ct_err *err)
{
    ct_code rc;
    if (spawned)
        *spawned = NULL;
    if ((rc = require_uuid("task id", id, err)) || (rc = require_uuid("claim token", token, err)))
        return rc;
    char *res = json_text(result, "null"), *prod = json_text(products, "{}"),
         *sp = json_text(spawns, "[]");
    if (res == NULL || prod == NULL || sp == NULL) {
        rc = ct_fail(err, CT_ENOMEM, "could not encode the commit as JSON");
    } else {
        const char *v[6] = {id,   token, result ? res : NULL,
                            prod, sp,    allow_expired ? "true" : "false"};
        PGresult *r = NULL;
        rc = exec_stmt(c, S_COMMIT, v, &r, err);
        if (rc == CT_OK && spawned != NULL && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
            json_t *out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
            *spawned = out ? json_incref(json_object_get(out, "spawned")) : NULL;
            json_decref(out);
        }
        PQclear(r);
    }
    free(res);
    free(prod);
    free(sp);
    return rc;
}

ct_code cq_outstanding(cq_client *c, const char *queue, const char *const *task_names,
                       long *n_outstanding, double *next_available_sec, ct_err *err)
{
    size_t nn = 0;
    while (task_names && task_names[nn])
        nn++;
    char *names = task_names ? array_literal(task_names, nn) : NULL;
    if (task_names && names == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    const char *v[2] = {queue, names};
    PGresult *r = NULL;
    ct_code rc = exec_stmt(c, S_OUTSTANDING, v, &r, err);
    if (rc == CT_OK) {
        *n_outstanding = atol(PQgetvalue(r, 0, 0));
        *next_available_sec = num_or_nan(r, 0, 1);
    }
    PQclear(r);
    free(names);
    return rc;
}

ct_code cq_complete_many(cq_client *c, const cq_uuid *ids, const cq_uuid *tokens,
                         json_t *const *results, size_t n, cq_outcome *outcomes, ct_err *err)
{
    char *a = uuid_array_literal(ids, n), *b = uuid_array_literal(tokens, n), *res = NULL;
    ct_code rc = CT_OK;
    if (results != NULL) {
        char **texts = calloc(n ? n : 1, sizeof *texts);
        if (texts != NULL) {
            bool ok = true;
            /* A NULL result stays SQL NULL, as with cq_complete. */
            for (size_t i = 0; i < n && ok; i++)
                ok = results[i] == NULL ||
                     (texts[i] = json_dumps(results[i], JSON_COMPACT | JSON_ENCODE_ANY)) != NULL;
            if (ok)
                res = array_literal((const char *const *)texts, n);
            for (size_t i = 0; i < n; i++)
                free(texts[i]);
            free(texts);
        }
        if (res == NULL)
            rc = ct_fail(err, CT_ENOMEM, "out of memory");
    }
    PGresult *r = NULL;
    if (rc == CT_OK && (a == NULL || b == NULL))
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
    if (rc == CT_OK) {
        const char *v[3] = {a, b, res};
        rc = exec_stmt(c, S_COMPLETE_MANY, v, &r, err);
    }
    free(a);
    free(b);
    free(res);
    if (rc != CT_OK)
        return rc;
    /* complete_tasks answers one row per input, in input order. */
    int rows = PQntuples(r);
    if (rows != (int)n) {
        PQclear(r);
        return ct_fail(err, CT_EDB, "complete_tasks answered %d rows for %zu tasks", rows, n);
    }
    for (size_t i = 0; i < n; i++) {
        const char *o = PQgetvalue(r, (int)i, 1);
        outcomes[i] = strcmp(o, "completed") == 0       ? CQ_OUT_COMPLETED
                      : strcmp(o, "lease_expired") == 0 ? CQ_OUT_LEASE_EXPIRED
                      : strcmp(o, "not_holder") == 0    ? CQ_OUT_NOT_HOLDER
                                                        : CQ_OUT_NOT_FOUND;
    }
    PQclear(r);
    return CT_OK;
}

ct_code cq_fail(cq_client *c, const char *id, const char *token, const char *message,
                ct_category category, cq_task *after, ct_err *err)
{
    ct_code rc;
    if ((rc = require_uuid("task id", id, err)) || (rc = require_uuid("claim token", token, err)))
        return rc;
    const char *v[4] = {id, token, message ? message : "", ct_category_name(category)};
    PGresult *r = NULL;
    if ((rc = exec_stmt(c, S_FAIL, v, &r, err)) != CT_OK)
        return rc;
    if (after != NULL)
        rc = decode_task(r, 0, after, err);
    PQclear(r);
    return rc;
}

ct_code cq_release(cq_client *c, const char *id, const char *token, ct_err *err)
{
    ct_code rc;
    if ((rc = require_uuid("task id", id, err)) || (rc = require_uuid("claim token", token, err)))
        return rc;
    const char *v[2] = {id, token};
    return exec_simple(c, S_RELEASE, v, err);
}

/* --- Operating ----------------------------------------------------------------- */

ct_code cq_cancel(cq_client *c, const char *id, const char *reason, ct_err *err)
{
    ct_code rc = require_uuid("task id", id, err);
    if (rc != CT_OK)
        return rc;
    const char *v[2] = {id, reason ? reason : "cancelled by operator"};
    return exec_simple(c, S_CANCEL, v, err);
}

ct_code cq_retry(cq_client *c, const char *id, ct_err *err)
{
    ct_code rc = require_uuid("task id", id, err);
    if (rc != CT_OK)
        return rc;
    const char *v[1] = {id};
    return exec_simple(c, S_RETRY, v, err);
}

ct_code cq_get(cq_client *c, const char *id, cq_task *out, ct_err *err)
{
    ct_code rc = require_uuid("task id", id, err);
    if (rc != CT_OK)
        return rc;
    const char *v[1] = {id};
    PGresult *r = NULL;
    if ((rc = exec_stmt(c, S_GET, v, &r, err)) != CT_OK)
        return rc;
    if (PQntuples(r) != 1)
        rc = ct_fail(err, CT_ENOTFOUND, "task %s not found", id);
    else
        rc = decode_task(r, 0, out, err);
    PQclear(r);
    return rc;
}

/* Checks f and makes the statement values of LIST_WHERE (v[0..3]), then limit and
 * offset (v[4], v[5], in lim and off). */
static ct_code filter_values(cq_client *c, const cq_filter *f, const char *v[7], char lim[32],
                             char off[32], ct_err *err)
{
    ct_code rc;
    if (f->queue != NULL) {
        const char *q[1] = {f->queue};
        if ((rc = exec_simple(c, S_REQUIRE_QUEUE, q, err)) != CT_OK)
            return rc;
    }
    if (f->workflow_id != NULL && (rc = require_uuid("workflow id", f->workflow_id, err)))
        return rc;
    snprintf(lim, 32, "%ld", f->limit > 0 ? f->limit : 100);
    snprintf(off, 32, "%ld", f->offset > 0 ? f->offset : 0);
    v[0] = f->queue;
    v[1] = f->name;
    v[2] = f->has_status ? cq_status_name(f->status) : NULL;
    v[3] = f->workflow_id;
    v[4] = lim;
    v[5] = off;
    v[6] = f->spawn_order ? "true" : "false";
    return CT_OK;
}

ct_code cq_list(cq_client *c, const cq_filter *f, cq_task **tasks, size_t *n, ct_err *err)
{
    *tasks = NULL;
    *n = 0;
    const char *v[7];
    char lim[32], off[32];
    PGresult *r = NULL;
    ct_code rc = filter_values(c, f, v, lim, off, err);
    if (rc == CT_OK && (rc = exec_stmt(c, S_LIST, v, &r, err)) == CT_OK) {
        rc = decode_tasks(r, tasks, n, err);
        PQclear(r);
    }
    return rc;
}

ct_code cq_spawn_workflow(cq_client *c, const char *queue, const json_t *tasks, json_t **out,
                          ct_err *err)
{
    *out = NULL;
    if (!json_is_array(tasks))
        return ct_fail(err, CT_EINVAL, "a workflow's tasks must be a JSON array");
    char *t = json_dumps(tasks, JSON_COMPACT);
    if (t == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    const char *v[2] = {queue, t};
    /* One statement, one transaction: a lost connection leaves the outcome unknown. */
    const ct_code rc =
        cq_query_json(c, "cq_spawn_workflow", "SELECT absurd.spawn_workflow($1, $2::jsonb)::json",
                      2, v, false, out, err);
    free(t);
    return rc;
}

ct_code cq_workflows(cq_client *c, long limit, json_t **out, ct_err *err)
{
    char n[32];
    snprintf(n, sizeof n, "%ld", limit);
    const char *v[1] = {n};
    return cq_query_json(c, "cq_workflows", "SELECT absurd.workflows($1::int)::json", 1, v, true,
                         out, err);
}

ct_code cq_set_max_pending(cq_client *c, const char *queue, long max_pending, ct_err *err)
{
    char n[32];
    snprintf(n, sizeof n, "%ld", max_pending);
    const char *v[2] = {queue, n};
    return exec_simple(c, S_SET_MAX_PENDING, v, err);
}

ct_code cq_ping(cq_client *c, const char *queue, ct_err *err)
{
    const char *v[1] = {queue};
    return exec_simple(c, S_REQUIRE_QUEUE, v, err);
}

ct_code cq_count(cq_client *c, const cq_filter *f, long *total, ct_err *err)
{
    *total = 0;
    const char *v[7];
    char lim[32], off[32];
    PGresult *r = NULL;
    ct_code rc = filter_values(c, f, v, lim, off, err);
    if (rc == CT_OK && (rc = exec_stmt(c, S_LIST_COUNT, v, &r, err)) == CT_OK) {
        *total = atol(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    return rc;
}

ct_code cq_reap(cq_client *c, const char *queue, cq_reaped **out, size_t *n, ct_err *err)
{
    *out = NULL;
    *n = 0;
    const char *v[1] = {queue};
    PGresult *r = NULL;
    ct_code rc = exec_stmt(c, S_REAP, v, &r, err);
    if (rc != CT_OK)
        return rc;
    int rows = PQntuples(r);
    if (rows > 0) {
        cq_reaped *a = calloc((size_t)rows, sizeof *a);
        if (a == NULL) {
            PQclear(r);
            return ct_fail(err, CT_ENOMEM, "out of memory");
        }
        for (int i = 0; i < rows; i++) {
            copy_uuid(r, i, 0, a[i].id);
            snprintf(a[i].action, sizeof a[i].action, "%s", PQgetvalue(r, i, 1));
        }
        *out = a;
        *n = (size_t)rows;
    }
    PQclear(r);
    return CT_OK;
}

ct_code cq_stats_get(cq_client *c, const char *queue, cq_stats **out, size_t *n, ct_err *err)
{
    *out = NULL;
    *n = 0;
    const char *v[1] = {queue};
    PGresult *r = NULL;
    ct_code rc = exec_stmt(c, S_STATS, v, &r, err);
    if (rc != CT_OK)
        return rc;
    int rows = PQntuples(r);
    cq_stats *a = calloc(rows > 0 ? (size_t)rows : 1, sizeof *a);
    if (a == NULL) {
        PQclear(r);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    for (int i = 0; i < rows; i++) {
        snprintf(a[i].queue, sizeof a[i].queue, "%s", PQgetvalue(r, i, 0));
        long *counts[] = {&a[i].pending, &a[i].claimed,   &a[i].retrying, &a[i].completed,
                          &a[i].failed,  &a[i].cancelled, &a[i].total};
        for (int k = 0; k < 7; k++)
            *counts[k] = atol(PQgetvalue(r, i, 1 + k));
        a[i].oldest_pending_sec = num_or_nan(r, i, 8);
        a[i].avg_wait_sec = num_or_nan(r, i, 9);
        a[i].avg_execution_sec = num_or_nan(r, i, 10);
    }
    PQclear(r);
    *out = a;
    *n = (size_t)rows;
    return CT_OK;
}

ct_code cq_create_queue(cq_client *c, const char *queue, ct_err *err)
{
    /* 123 leaves room for the "-dlq" twin within the 127-character limit. */
    if (!cq_name_valid(queue) || strlen(queue) > 123)
        return ct_fail(err, CT_EINVAL,
                       "queue name must be 1-123 characters of [A-Za-z0-9._-], starting with a "
                       "letter or digit");
    const char *v[1] = {queue};
    return exec_simple(c, S_CREATE_QUEUE, v, err);
}

/* --- Waiting -------------------------------------------------------------------- */

static bool take_notifications(cq_client *c, const char *queue)
{
    bool hit = false;
    PGnotify *nf;
    PQconsumeInput(c->conn);
    while ((nf = PQnotifies(c->conn)) != NULL) {
        if (strcmp(nf->relname, "absurd_tasks") == 0 && strcmp(nf->extra, queue) == 0)
            hit = true;
        PQfreemem(nf);
    }
    return hit;
}

ct_code cq_wait(cq_client *c, const char *queue, double timeout_sec, bool *woken, ct_err *err)
{
    *woken = false;
    if (!c->listening) {
        PGresult *r = NULL;
        double waited = 0;
        ct_code rc;
        if ((rc = ensure_connected(c, &waited, err)) != CT_OK)
            return rc;
        r = PQexec(c->conn, "LISTEN absurd_tasks");
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        rc = ok ? CT_OK : result_error(r, "listen", err);
        PQclear(r);
        if (!ok)
            return rc;
        c->listening = true;
    }
    double deadline = now_sec() + timeout_sec;
    for (;;) {
        if (take_notifications(c, queue)) {
            *woken = true;
            return CT_OK;
        }
        if (PQstatus(c->conn) != CONNECTION_OK) {
            /* A notification may have been lost with the connection: wake
             * the caller so it looks for work. */
            double waited = 0;
            ct_code rc = reconnect(c, &waited, err);
            *woken = rc == CT_OK;
            return rc;
        }
        double left = deadline - now_sec();
        if (left <= 0)
            return CT_OK;
        struct pollfd p = {.fd = PQsocket(c->conn), .events = POLLIN};
        int ms = (int)ceil(fmin(left, 3600.0) * 1000);
        if (poll(&p, 1, ms) < 0 && errno != EINTR)
            return ct_fail(err, CT_EIO, "poll: %s", strerror(errno));
    }
}

/* --- JSON ---------------------------------------------------------------- */

void cq_format_time(double t, char *out, size_t size)
{
    if (isnan(t)) {
        snprintf(out, size, "-");
        return;
    }
    time_t s = (time_t)floor(t);
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03dZ", base, (int)((t - floor(t)) * 1000));
}

static json_t *str_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

static json_t *time_or_null(double t)
{
    if (isnan(t))
        return json_null();
    char buf[40];
    cq_format_time(t, buf, sizeof buf);
    return json_string(buf);
}

static json_t *real_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

json_t *cq_task_json(const cq_task *t, bool with_claim_token)
{
    json_t *deps = json_array();
    for (size_t i = 0; i < t->n_depends_on; i++)
        json_array_append_new(deps, json_string(t->depends_on[i]));
    json_t *o = json_object();
    json_object_set_new(o, "task_id", json_string(t->id));
    json_object_set_new(o, "queue_name", json_string(t->queue));
    json_object_set_new(o, "origin_queue", str_or_null(t->origin_queue));
    json_object_set_new(o, "task_name", json_string(t->name));
    json_object_set_new(o, "status", json_string(cq_status_name(t->status)));
    json_object_set_new(o, "priority", json_integer(t->priority));
    json_object_set_new(o, "params", t->params ? json_incref(t->params) : json_object());
    json_object_set_new(o, "worker_id", str_or_null(t->worker_id));
    if (with_claim_token)
        json_object_set_new(o, "claim_token", str_or_null(t->claim_token));
    json_object_set_new(o, "attempt", json_integer(t->attempt));
    json_object_set_new(o, "max_retries", json_integer(t->max_retries));
    json_object_set_new(o, "timeout_sec", json_integer(t->timeout_sec));
    json_object_set_new(o, "backoff_base_sec", real_or_null(t->backoff_base_sec));
    json_object_set_new(o, "backoff_max_sec", real_or_null(t->backoff_max_sec));
    json_object_set_new(o, "idempotency_key", str_or_null(t->idempotency_key));
    json_object_set_new(o, "depends_on", deps);
    json_object_set_new(o, "workflow_id", str_or_null(t->workflow_id));
    json_object_set_new(o, "result", t->result ? json_incref(t->result) : json_null());
    json_object_set_new(o, "error", str_or_null(t->error));
    json_object_set_new(o, "error_category", str_or_null(t->error_category));
    json_object_set_new(o, "cancelled_by", str_or_null(t->cancelled_by));
    json_object_set_new(o, "created_at", time_or_null(t->created_at));
    json_object_set_new(o, "available_at", time_or_null(t->available_at));
    json_object_set_new(o, "claimed_at", time_or_null(t->claimed_at));
    json_object_set_new(o, "heartbeat_at", time_or_null(t->heartbeat_at));
    json_object_set_new(o, "lease_expires_at", time_or_null(t->lease_expires_at));
    json_object_set_new(o, "completed_at", time_or_null(t->completed_at));
    json_object_set_new(o, "dead_lettered_at", time_or_null(t->dead_lettered_at));
    json_object_set_new(o, "wait_time_sec", real_or_null(t->wait_time_sec));
    json_object_set_new(o, "execution_time_sec", real_or_null(t->execution_time_sec));
    return o;
}
