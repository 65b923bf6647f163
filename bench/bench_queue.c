/*
 * bench_queue.c -- throughput and latency of the ABSURD queue through its C
 * client (src/queue.h). A benchmark, not a test: it prints figures and fails
 * only when the queue refuses or loses work.
 *
 * Measurements (each on its own queue, TAG-<what>, so real queues are never
 * touched; TAG defaults to bench-<pid>):
 *
 *   spawn    tasks/s of single cq_spawn calls, then of cq_spawn_many batches.
 *   claim    tasks/s of cq_claim(limit=B) + one cq_complete_many per claim,
 *            for each B of --batches; for B=1 also with cq_complete.
 *   latency  p50/p99 spawn-to-claim latency of a claimer that sleeps in
 *            cq_wait (LISTEN/NOTIFY) while a spawner spawns one task every
 *            --interval-ms.
 *   pool     tops --queue up for --runs timed runs at batch B at --rate
 *            tasks/s (or at the rate of a warm-up through the client);
 *            `claim --queue Q` then runs on it as it is, and so can
 *            queue_raw.sh --pool (run_queue_bench.sh has both drain one pool
 *            in turn).
 *   prefill  spawns --count tasks into --queue.
 *   cleanup  deletes the tasks and queues named TAG-*.
 *
 * Throughput runs use --clients processes, each with its own connection,
 * released together after they have all connected; a run lasts --seconds
 * or until its queue runs dry, and the rate is tasks done over the time
 * actually taken (connection time excluded, as pgbench does). Every timed
 * claim run is preceded by VACUUM ANALYZE and CHECKPOINT (--no-vacuum).
 *
 * The client library is the thing measured. Housekeeping the client has no
 * call for (VACUUM, deleting the bench's own queues) goes through libpq.
 */
#define _GNU_SOURCE
#include "config.h"
#include "database.h"
#include "queue.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LEASE_SEC   300.0
#define MAX_CLIENTS 64
#define MAX_BATCHES 16

/* --- Settings ------------------------------------------------------------- */

typedef struct settings {
    char conninfo[CT_PATH_MAX + 256];
    char tag[64];
    double seconds;
    int clients;
    int batches[MAX_BATCHES];
    int n_batches;
    int spawn_batch;
    int samples;
    double interval_ms;
    bool json;
    bool keep;
    bool vacuum;
    int runs;      /* pool: timed runs the pool is for */
    double rate;   /* pool: expected tasks/s; 0 = measure by a warm-up */
    char complete; /* 'b'oth (batch 1: cq_complete_many and cq_complete), 'm'any, 'o'ne */
    /* claim, pool, prefill: --queue; prefill: --count */
    const char *queue;
    long count;
} settings;

static FILE *human; /* stdout, or stderr under --json */

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double real_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_until_mono(double t)
{
    struct timespec ts = {(time_t)t, (long)((t - floor(t)) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void die(const char *what, const ct_err *err)
{
    fprintf(stderr, "bench_queue: %s: %s\n", what, err ? err->msg : "failed");
    exit(1);
}

static void queue_name(char *out, size_t size, const settings *s, const char *what)
{
    snprintf(out, size, "%s-%s", s->tag, what);
}

static cq_client *connect_or_die(const settings *s)
{
    cq_client *c = NULL;
    ct_err err;
    if (cq_connect(s->conninfo, &c, &err) != CT_OK)
        die("connect", &err);
    return c;
}

/* --- Housekeeping through libpq ---------------------------------------------- */

/* Runs one statement; a failure ends the benchmark unless `may_fail`. */
static bool sql_run(const settings *s, const char *sql, const char *param, bool may_fail)
{
    PGconn *conn = PQconnectdb(s->conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "bench_queue: connect: %s", PQerrorMessage(conn));
        exit(1);
    }
    PQclear(PQexec(conn, "SET client_min_messages = warning"));
    const char *v[1] = {param};
    PGresult *r = PQexecParams(conn, sql, param ? 1 : 0, NULL, param ? v : NULL, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok && !may_fail) {
        fprintf(stderr, "bench_queue: %s: %s", sql, PQerrorMessage(conn));
        exit(1);
    }
    PQclear(r);
    PQfinish(conn);
    return ok;
}

static void sql_or_die(const settings *s, const char *sql, const char *param)
{
    sql_run(s, sql, param, false);
}

/* Before every timed run: VACUUM ANALYZE, so dead tuples of the previous
 * run and stale statistics favour no one, then CHECKPOINT (when the role
 * may), so every run starts with the same full-page-write debt. */
static void vacuum(const settings *s)
{
    if (!s->vacuum)
        return;
    sql_or_die(s, "VACUUM (ANALYZE) absurd.tasks", NULL);
    sql_run(s, "CHECKPOINT", NULL, true);
}

static void cleanup(const settings *s)
{
    char prefix[80];
    snprintf(prefix, sizeof prefix, "%s-", s->tag);
    sql_or_die(s,
               "WITH q AS (SELECT queue_name FROM absurd.queues"
               "            WHERE left(queue_name, length($1)) = $1)"
               " DELETE FROM absurd.tasks t USING q"
               "  WHERE t.queue_name = q.queue_name OR t.origin_queue = q.queue_name",
               prefix);
    sql_or_die(s,
               "DELETE FROM absurd.queues WHERE left(queue_name, length($1)) = $1"
               " AND dlq_name IS NOT NULL",
               prefix);
    sql_or_die(s, "DELETE FROM absurd.queues WHERE left(queue_name, length($1)) = $1", prefix);
    vacuum(s);
}

/* --- Worker processes ---------------------------------------------------------- */

typedef struct work_result {
    int ok;
    long tasks;
    bool dry;                     /* the queue ran out of tasks before the deadline */
    double t_end;                 /* CLOCK_MONOTONIC, comparable across processes */
    long rounds;                  /* claim runs: claims that got tasks */
    double claim_s, complete_s;   /* time claiming (and freeing) and completing */
    char msg[CT_ERRMSG_MAX + 64]; /* < PIPE_BUF: one atomic write */
} work_result;

/* Runs in a child until mono_now() >= deadline; fills r. */
typedef void (*work_fn)(cq_client *c, int idx, double deadline, const void *arg, work_result *r);

static bool write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

typedef struct run_result {
    long tasks;
    double seconds;
    bool dry;
    long rounds;
    double claim_s, complete_s;
} run_result;

/* Forks `clients` workers, each with its own connection, releases them
 * together once all have connected, and sums their work. */
static run_result run_workers(const settings *s, int clients, double seconds, work_fn fn,
                              const void *arg)
{
    int ready[2], go[2], res[2];
    if (pipe(ready) || pipe(go) || pipe(res)) {
        perror("bench_queue: pipe");
        exit(1);
    }
    fflush(NULL);
    pid_t pids[MAX_CLIENTS];
    for (int i = 0; i < clients; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("bench_queue: fork");
            exit(1);
        }
        if (pid == 0) {
            close(ready[0]);
            close(go[1]);
            close(res[0]);
            cq_client *c = connect_or_die(s);
            char b = 'r', x;
            if (!write_all(ready[1], &b, 1))
                _exit(1);
            close(ready[1]);            /* a worker that dies before this shows as EOF */
            if (read(go[0], &x, 1) < 0) /* EOF when the parent closes go[1] */
                _exit(1);
            double deadline = mono_now() + seconds;
            work_result r;
            memset(&r, 0, sizeof r);
            r.ok = 1;
            fn(c, i, deadline, arg, &r);
            if (!r.t_end)
                r.t_end = mono_now();
            cq_disconnect(c);
            _exit(write_all(res[1], &r, sizeof r) ? 0 : 1);
        }
        pids[i] = pid;
    }
    close(ready[1]);
    close(go[0]);
    close(res[1]);
    for (int i = 0; i < clients; i++) {
        char b;
        if (!read_all(ready[0], &b, 1)) {
            fprintf(stderr, "bench_queue: a worker failed to start\n");
            exit(1);
        }
    }
    double t0 = mono_now();
    close(go[1]);
    run_result out = {0, 0, false, 0, 0, 0};
    double t_end = t0;
    bool failed = false;
    for (int i = 0; i < clients; i++) {
        work_result r;
        if (!read_all(res[0], &r, sizeof r)) {
            fprintf(stderr, "bench_queue: a worker died\n");
            failed = true;
            break;
        }
        if (!r.ok) {
            fprintf(stderr, "bench_queue: worker: %s\n", r.msg);
            failed = true;
        }
        out.tasks += r.tasks;
        out.dry = out.dry || r.dry;
        out.rounds += r.rounds;
        out.claim_s += r.claim_s;
        out.complete_s += r.complete_s;
        t_end = fmax(t_end, r.t_end);
    }
    for (int i = 0; i < clients; i++)
        waitpid(pids[i], NULL, 0);
    close(ready[0]);
    close(res[0]);
    if (failed)
        exit(1);
    out.seconds = t_end - t0;
    return out;
}

static void work_fail(work_result *r, const char *what, const ct_err *err)
{
    r->ok = 0;
    snprintf(r->msg, sizeof r->msg, "%s: %s", what, err->msg);
}

/* --- Spawning -------------------------------------------------------------------- */

typedef struct spawn_arg {
    const char *queue;
    int batch; /* 0: single cq_spawn calls */
} spawn_arg;

static void spawn_work(cq_client *c, int idx, double deadline, const void *argp, work_result *r)
{
    const spawn_arg *a = argp;
    cq_spawn_opts o = cq_spawn_defaults();
    o.queue = a->queue;
    o.name = "bench";
    ct_err err;
    if (a->batch == 0) {
        while (mono_now() < deadline) {
            cq_uuid id;
            if (cq_spawn(c, &o, id, NULL, &err) != CT_OK) {
                work_fail(r, "cq_spawn", &err);
                return;
            }
            r->tasks++;
        }
        return;
    }
    cq_spawn_opts *many = malloc((size_t)a->batch * sizeof *many);
    for (int i = 0; i < a->batch; i++)
        many[i] = o;
    while (mono_now() < deadline) {
        if (cq_spawn_many(c, many, (size_t)a->batch, NULL, &err) != CT_OK) {
            work_fail(r, "cq_spawn_many", &err);
            break;
        }
        r->tasks += a->batch;
    }
    free(many);
}

/* Spawns n tasks into queue (registering it first): one connection,
 * cq_spawn_many calls of 1000, each its own transaction. Tasks of one
 * transaction share created_at and are claimed among themselves in task_id
 * (random UUID) order, so how a pool is built changes how scattered a claim
 * batch is on disk: queue_raw.sh builds its pools the same way. */
static double prefill(const settings *s, const char *queue, long n)
{
    enum { CHUNK = 1000 };
    cq_client *c = connect_or_die(s);
    ct_err err;
    if (cq_create_queue(c, queue, &err) != CT_OK ||
        cq_set_max_pending(c, queue, 0, &err) != CT_OK) /* the bench fills it on purpose */
        die("cq_create_queue", &err);
    double t0 = mono_now();
    cq_spawn_opts o = cq_spawn_defaults();
    o.queue = queue;
    o.name = "bench";
    cq_spawn_opts *many = malloc(CHUNK * sizeof *many);
    for (int k = 0; k < CHUNK; k++)
        many[k] = o;
    while (n > 0) {
        size_t k = n < CHUNK ? (size_t)n : CHUNK;
        if (cq_spawn_many(c, many, k, NULL, &err) != CT_OK)
            die("cq_spawn_many", &err);
        n -= (long)k;
    }
    free(many);
    cq_disconnect(c);
    return mono_now() - t0;
}

/* --- Output --------------------------------------------------------------------- */

static void emit(const settings *s, json_t *o)
{
    if (s->json) {
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        fflush(stdout);
        free(text);
    }
    json_decref(o);
}

static void bench_spawn(const settings *s)
{
    char q[CQ_NAME_MAX + 1];
    queue_name(q, sizeof q, s, "spawn");
    cq_client *c = connect_or_die(s);
    ct_err err;
    if (cq_create_queue(c, q, &err) != CT_OK ||
        cq_set_max_pending(c, q, 0, &err) != CT_OK) /* the bench fills it on purpose */
        die("cq_create_queue", &err);
    cq_disconnect(c);
    int variants[2] = {0, s->spawn_batch};
    for (int v = 0; v < 2; v++) {
        spawn_arg a = {q, variants[v]};
        run_result r = run_workers(s, s->clients, s->seconds, spawn_work, &a);
        double rate = (double)r.tasks / r.seconds;
        char call[48];
        if (variants[v] == 0)
            snprintf(call, sizeof call, "cq_spawn (1 per call)");
        else
            snprintf(call, sizeof call, "cq_spawn_many (%d per call)", variants[v]);
        fprintf(human, "spawn    %-36s %9.0f tasks/s  (%ld tasks, %.2f s, %d client%s)\n", call,
                rate, r.tasks, r.seconds, s->clients, s->clients == 1 ? "" : "s");
        fflush(human);
        emit(s, json_pack("{s:s, s:s, s:i, s:i, s:I, s:f, s:f}", "measure", "spawn", "call",
                          variants[v] ? "cq_spawn_many" : "cq_spawn", "batch",
                          variants[v] ? variants[v] : 1, "clients", s->clients, "tasks",
                          (json_int_t)r.tasks, "seconds", r.seconds, "tasks_per_sec", rate));
    }
    vacuum(s);
}

/* --- Claim + complete ----------------------------------------------------------- */

typedef struct claim_arg {
    const char *queue;
    const char *tag;
    int batch;
    bool single;    /* cq_complete per task instead of one cq_complete_many */
    long max_tasks; /* per worker; 0 = no limit */
} claim_arg;

static void claim_work(cq_client *c, int idx, double deadline, const void *argp, work_result *r)
{
    const claim_arg *a = argp;
    char worker[96];
    snprintf(worker, sizeof worker, "%s-w%d", a->tag, idx);
    cq_uuid *ids = malloc((size_t)a->batch * sizeof *ids);
    cq_uuid *tokens = malloc((size_t)a->batch * sizeof *tokens);
    cq_outcome *outcomes = malloc((size_t)a->batch * sizeof *outcomes);
    ct_err err;
    while (mono_now() < deadline && (a->max_tasks == 0 || r->tasks < a->max_tasks)) {
        cq_task *t = NULL;
        size_t n = 0;
        double t0 = mono_now();
        if (cq_claim(c, a->queue, worker, a->batch, LEASE_SEC, NULL, &t, &n, &err) != CT_OK) {
            work_fail(r, "cq_claim", &err);
            break;
        }
        double t1 = mono_now();
        if (n == 0) {
            r->dry = true;
            break;
        }
        if (a->single) {
            for (size_t i = 0; i < n && r->ok; i++) {
                if (cq_complete(c, t[i].id, t[i].claim_token, NULL, &err) != CT_OK)
                    work_fail(r, "cq_complete", &err);
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                memcpy(ids[i], t[i].id, sizeof ids[i]);
                memcpy(tokens[i], t[i].claim_token, sizeof tokens[i]);
            }
            if (cq_complete_many(c, ids, tokens, NULL, n, outcomes, &err) != CT_OK)
                work_fail(r, "cq_complete_many", &err);
            for (size_t i = 0; i < n && r->ok; i++)
                if (outcomes[i] != CQ_OUT_COMPLETED) {
                    r->ok = 0;
                    snprintf(r->msg, sizeof r->msg, "task %s was not completed (outcome %d)",
                             ids[i], (int)outcomes[i]);
                }
        }
        double t2 = mono_now();
        cq_tasks_free(t, n); /* freeing what cq_claim built counts as claiming */
        if (!r->ok)
            break;
        r->rounds++;
        r->claim_s += (t1 - t0) + (mono_now() - t2);
        r->complete_s += t2 - t1;
        r->tasks += (long)n;
    }
    r->t_end = mono_now();
    free(ids);
    free(tokens);
    free(outcomes);
}

/* Tasks of queue q that are still pending. */
static long pending_count(const settings *s, const char *q)
{
    PGconn *conn = PQconnectdb(s->conninfo);
    const char *v[1] = {q};
    PGresult *r = PQexecParams(conn,
                               "SELECT count(*) FROM absurd.tasks"
                               " WHERE queue_name = $1 AND status = 'pending'",
                               1, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_queue: counting pending tasks: %s", PQerrorMessage(conn));
        exit(1);
    }
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(conn);
    return n;
}

/* Makes sure q holds enough pending tasks for `runs` timed runs of
 * --seconds at `rate` tasks/s, with 25% to spare. With rate 0 the rate is
 * first measured by a warm-up through the client on a small pool (taking
 * at most half of it, for at most 2 s), and 50% is spared, since a warm-up
 * runs slower than the runs that follow. A run that still drains its queue
 * reports the rate over the time it lasted. */
static void make_pool(const settings *s, const char *q, int batch, bool single, int runs,
                      double rate)
{
    const char *how = "given";
    if (rate <= 0) {
        claim_arg a = {q, s->tag, batch, single, 0};
        long pool = 200L * batch * s->clients;
        if (pool < 1000)
            pool = 1000;
        prefill(s, q, pool);
        a.max_tasks = pool / 2 / s->clients;
        run_result w = run_workers(s, s->clients, 2.0, claim_work, &a);
        rate = (double)w.tasks / w.seconds;
        how = "warm-up";
    } else {
        prefill(s, q, 0); /* registers q */
    }
    long have = pending_count(s, q);
    double spare = strcmp(how, "warm-up") == 0 ? 1.5 : 1.25; /* a warm-up runs slow */
    long want = (long)ceil(rate * s->seconds * runs * spare) + 2L * batch * s->clients;
    double t = want > have ? prefill(s, q, want - have) : 0;
    fprintf(human, "pool     %ld pending tasks in %s (for %.0f tasks/s, %s; %ld added in %.1f s)\n",
            want > have ? want : have, q, rate, how, want > have ? want - have : 0, t);
    fflush(human);
}

static void bench_claim_one(const settings *s, int batch, bool single)
{
    char q[CQ_NAME_MAX + 1], what[32];
    snprintf(what, sizeof what, "b%d%s", batch, single ? "-one" : "");
    if (s->queue != NULL) {
        snprintf(q, sizeof q, "%s", s->queue); /* made by `pool` or prefill */
    } else {
        queue_name(q, sizeof q, s, what);
        make_pool(s, q, batch, single, 1, 0);
    }
    claim_arg a = {q, s->tag, batch, single, 0};
    vacuum(s);

    run_result r = run_workers(s, s->clients, s->seconds, claim_work, &a);
    double rate = (double)r.tasks / r.seconds;
    double claim_ms = r.rounds ? r.claim_s / r.rounds * 1e3 : 0;
    double complete_ms = r.rounds ? r.complete_s / r.rounds * 1e3 : 0;
    fprintf(human,
            "claim    batch %-3d + %-16s     %9.0f tasks/s  (%ld tasks, %.2f s, %d client%s%s; "
            "per round: claim %.3f ms, complete %.3f ms)\n",
            batch, single ? "cq_complete x B" : "cq_complete_many", rate, r.tasks, r.seconds,
            s->clients, s->clients == 1 ? "" : "s", r.dry ? ", queue ran dry" : "", claim_ms,
            complete_ms);
    fflush(human);
    emit(s, json_pack("{s:s, s:i, s:s, s:i, s:I, s:f, s:f, s:b, s:f, s:f, s:s}", "measure", "claim",
                      "batch", batch, "complete", single ? "cq_complete" : "cq_complete_many",
                      "clients", s->clients, "tasks", (json_int_t)r.tasks, "seconds", r.seconds,
                      "tasks_per_sec", rate, "dry", r.dry, "claim_ms", claim_ms, "complete_ms",
                      complete_ms, "queue", q));
}

static void bench_claim(const settings *s)
{
    int n = s->queue != NULL ? 1 : s->n_batches; /* a given queue: one batch size */
    for (int i = 0; i < n; i++) {
        if (s->complete != 'o')
            bench_claim_one(s, s->batches[i], false);
        if (s->batches[i] == 1 && s->complete != 'm' && (s->complete == 'o' || s->queue == NULL))
            bench_claim_one(s, 1, true);
    }
}

/* --- Spawn-to-claim latency ------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[n]. */
static double percentile(const double *v, int n, double p)
{
    int k = (int)ceil(p / 100.0 * n);
    return v[k < 1 ? 0 : k > n ? n - 1 : k - 1];
}

static void claimer(const settings *s, const char *q, int ready_fd, int res_fd)
{
    cq_client *c = connect_or_die(s);
    ct_err err;
    bool woken;
    if (cq_wait(c, q, 0, &woken, &err) != CT_OK) /* LISTEN now, before any spawn */
        die("cq_wait", &err);
    char b = 'r';
    if (!write_all(ready_fd, &b, 1))
        _exit(1);
    double *lat = calloc((size_t)s->samples, sizeof *lat);
    int got = 0, wakes = 0, empty = 0;
    double give_up = mono_now() + s->samples * s->interval_ms / 1000.0 + 30;
    char worker[96];
    snprintf(worker, sizeof worker, "%s-claimer", s->tag);
    while (got < s->samples && mono_now() < give_up) {
        cq_task *t = NULL;
        size_t n = 0;
        if (cq_claim(c, q, worker, 16, LEASE_SEC, NULL, &t, &n, &err) != CT_OK)
            die("cq_claim", &err);
        double now = real_now();
        if (n == 0) {
            empty++;
            if (cq_wait(c, q, 1.0, &woken, &err) != CT_OK)
                die("cq_wait", &err);
            wakes += woken;
            continue;
        }
        cq_uuid ids[16], tokens[16];
        cq_outcome out[16];
        for (size_t i = 0; i < n; i++) {
            json_t *ts = json_object_get(t[i].params, "spawned_at");
            if (got < s->samples && json_is_real(ts))
                lat[got++] = now - json_real_value(ts);
            memcpy(ids[i], t[i].id, sizeof ids[i]);
            memcpy(tokens[i], t[i].claim_token, sizeof tokens[i]);
        }
        if (cq_complete_many(c, ids, tokens, NULL, n, out, &err) != CT_OK)
            die("cq_complete_many", &err);
        cq_tasks_free(t, n);
    }
    int hdr[3] = {got, wakes, empty};
    if (!write_all(res_fd, hdr, sizeof hdr) || !write_all(res_fd, lat, (size_t)got * sizeof *lat))
        _exit(1);
    free(lat);
    cq_disconnect(c);
    _exit(0);
}

static void bench_latency(const settings *s)
{
    char q[CQ_NAME_MAX + 1];
    queue_name(q, sizeof q, s, "latency");
    cq_client *c = connect_or_die(s);
    ct_err err;
    if (cq_create_queue(c, q, &err) != CT_OK ||
        cq_set_max_pending(c, q, 0, &err) != CT_OK) /* the bench fills it on purpose */
        die("cq_create_queue", &err);
    int ready[2], res[2];
    if (pipe(ready) || pipe(res)) {
        perror("bench_queue: pipe");
        exit(1);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_queue: fork");
        exit(1);
    }
    if (pid == 0) {
        close(ready[0]);
        close(res[0]);
        claimer(s, q, ready[1], res[1]);
    }
    close(ready[1]);
    close(res[1]);
    char b;
    if (!read_all(ready[0], &b, 1)) {
        fprintf(stderr, "bench_queue: the claimer failed to start\n");
        exit(1);
    }
    cq_spawn_opts o = cq_spawn_defaults();
    o.queue = q;
    o.name = "bench-latency";
    double t0 = mono_now() + 0.05, spawn_call = 0;
    for (int i = 0; i < s->samples; i++) {
        sleep_until_mono(t0 + i * s->interval_ms / 1000.0);
        double t = real_now();
        json_t *p = json_pack("{s:f}", "spawned_at", t);
        o.params = p;
        cq_uuid id;
        if (cq_spawn(c, &o, id, NULL, &err) != CT_OK)
            die("cq_spawn", &err);
        spawn_call += real_now() - t;
        json_decref(p);
    }
    int hdr[3];
    double *lat = calloc((size_t)s->samples, sizeof *lat);
    if (!read_all(res[0], hdr, sizeof hdr) ||
        !read_all(res[0], lat, (size_t)hdr[0] * sizeof *lat)) {
        fprintf(stderr, "bench_queue: the claimer died\n");
        exit(1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    cq_disconnect(c);
    int n = hdr[0];
    if (n < s->samples)
        fprintf(stderr, "bench_queue: only %d of %d latency samples arrived\n", n, s->samples);
    if (n == 0)
        exit(1);
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += lat[i];
    double p50 = percentile(lat, n, 50), p99 = percentile(lat, n, 99);
    fprintf(human,
            "latency  spawn-to-claim via cq_wait (NOTIFY)  p50 %.2f ms  p99 %.2f ms  "
            "(min %.2f, mean %.2f, max %.2f ms; %d samples every %.0f ms; cq_spawn call "
            "%.2f ms mean)\n",
            p50 * 1e3, p99 * 1e3, lat[0] * 1e3, sum / n * 1e3, lat[n - 1] * 1e3, n, s->interval_ms,
            spawn_call / s->samples * 1e3);
    fflush(human);
    emit(s, json_pack("{s:s, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:i}", "measure", "latency",
                      "samples", n, "interval_ms", s->interval_ms, "p50_ms", p50 * 1e3, "p99_ms",
                      p99 * 1e3, "min_ms", lat[0] * 1e3, "mean_ms", sum / n * 1e3, "max_ms",
                      lat[n - 1] * 1e3, "spawn_call_ms", spawn_call / s->samples * 1e3, "wakeups",
                      hdr[1]));
    free(lat);
}

/* --- Main ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_queue [OPTIONS] [spawn] [claim] [latency]   (default: all three)\n"
               "       bench_queue [OPTIONS] prefill --queue Q --count N\n"
               "       bench_queue [OPTIONS] pool --queue Q --batches B [--runs R] [--rate T]\n"
               "       bench_queue [OPTIONS] cleanup\n"
               "\n"
               "Measures the ABSURD queue through its C client on queues named TAG-*.\n"
               "The database is the one contimg uses ($CONTIMG_DATABASE_URL, else the\n"
               "private cluster under $CONTIMG_STATE_DIR).\n"
               "\n"
               "  --seconds S        length of each timed run (default 5)\n"
               "  --clients N        worker processes, one connection each (default 1)\n"
               "  --batches LIST     claim batch sizes, comma-separated (default 1,10,100)\n"
               "  --complete HOW     claim: many (cq_complete_many), one (cq_complete; batch 1)\n"
               "                     or both (default: many, and at batch 1 also one)\n"
               "  --spawn-batch K    tasks per cq_spawn_many call (default 100)\n"
               "  --samples N        latency samples (default 200)\n"
               "  --interval-ms M    time between latency spawns (default 20)\n"
               "  --tag TAG          queue name prefix (default bench-PID)\n"
               "  --queue Q          claim: use Q as it is (no prefill; one batch size);\n"
               "                     prefill, pool: the queue to fill\n"
               "  --count N          prefill: spawn N tasks\n"
               "  --runs R           pool: top Q up for R timed runs at batch B (default 1)\n"
               "  --rate T           pool: ... at T tasks/s (default: measure it by a\n"
               "                     warm-up through the client)\n"
               "  --keep             leave the TAG-* queues and tasks in place\n"
               "  --no-vacuum        skip VACUUM ANALYZE + CHECKPOINT before each timed run\n"
               "  --json             one JSON object per measurement on stdout (text on stderr)\n");
}

static void parse_batches(settings *s, const char *text)
{
    s->n_batches = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int b = atoi(tok);
        if (b < 1 || b > 10000 || s->n_batches == MAX_BATCHES) {
            fprintf(stderr, "bench_queue: bad --batches '%s'\n", text);
            exit(2);
        }
        s->batches[s->n_batches++] = b;
    }
    free(copy);
    if (s->n_batches == 0) {
        fprintf(stderr, "bench_queue: bad --batches '%s'\n", text);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    settings s;
    memset(&s, 0, sizeof s);
    s.seconds = 5;
    s.clients = 1;
    s.spawn_batch = 100;
    s.samples = 200;
    s.interval_ms = 20;
    s.vacuum = true;
    s.complete = 'b';
    s.runs = 1;
    snprintf(s.tag, sizeof s.tag, "bench-%ld", (long)getpid());
    parse_batches(&s, "1,10,100");

    enum {
        O_SECONDS = 1000,
        O_CLIENTS,
        O_BATCHES,
        O_SPAWN_BATCH,
        O_SAMPLES,
        O_INTERVAL,
        O_TAG,
        O_KEEP,
        O_NO_VACUUM,
        O_JSON,
        O_QUEUE,
        O_COUNT,
        O_COMPLETE,
        O_RUNS,
        O_RATE,
        O_HELP
    };
    static const struct option opts[] = {
        {"seconds", required_argument, NULL, O_SECONDS},
        {"clients", required_argument, NULL, O_CLIENTS},
        {"batches", required_argument, NULL, O_BATCHES},
        {"spawn-batch", required_argument, NULL, O_SPAWN_BATCH},
        {"samples", required_argument, NULL, O_SAMPLES},
        {"interval-ms", required_argument, NULL, O_INTERVAL},
        {"tag", required_argument, NULL, O_TAG},
        {"keep", no_argument, NULL, O_KEEP},
        {"no-vacuum", no_argument, NULL, O_NO_VACUUM},
        {"json", no_argument, NULL, O_JSON},
        {"queue", required_argument, NULL, O_QUEUE},
        {"count", required_argument, NULL, O_COUNT},
        {"complete", required_argument, NULL, O_COMPLETE},
        {"runs", required_argument, NULL, O_RUNS},
        {"rate", required_argument, NULL, O_RATE},
        {"help", no_argument, NULL, O_HELP},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case O_SECONDS: s.seconds = atof(optarg); break;
        case O_CLIENTS: s.clients = atoi(optarg); break;
        case O_BATCHES: parse_batches(&s, optarg); break;
        case O_SPAWN_BATCH: s.spawn_batch = atoi(optarg); break;
        case O_SAMPLES: s.samples = atoi(optarg); break;
        case O_INTERVAL: s.interval_ms = atof(optarg); break;
        case O_TAG: snprintf(s.tag, sizeof s.tag, "%s", optarg); break;
        case O_KEEP: s.keep = true; break;
        case O_NO_VACUUM: s.vacuum = false; break;
        case O_JSON: s.json = true; break;
        case O_QUEUE: s.queue = optarg; break;
        case O_COUNT: s.count = atol(optarg); break;
        case O_RUNS: s.runs = atoi(optarg); break;
        case O_RATE: s.rate = atof(optarg); break;
        case O_COMPLETE:
            s.complete = strcmp(optarg, "many") == 0   ? 'm'
                         : strcmp(optarg, "one") == 0  ? 'o'
                         : strcmp(optarg, "both") == 0 ? 'b'
                                                       : '?';
            break;
        case 'h':
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (s.complete == '?' || (s.complete == 'o' && s.batches[0] != 1)) {
        fprintf(stderr, "bench_queue: --complete is many, one (batch 1) or both\n");
        return 2;
    }
    if (!(s.seconds > 0) || s.clients < 1 || s.clients > MAX_CLIENTS || s.spawn_batch < 1 ||
        s.samples < 1 || !(s.interval_ms >= 0)) {
        fprintf(stderr, "bench_queue: bad option value; see --help\n");
        return 2;
    }
    if (!cq_name_valid(s.tag) || strlen(s.tag) > 60) {
        fprintf(stderr, "bench_queue: --tag must be a short queue name\n");
        return 2;
    }
    human = s.json ? stderr : stdout;

    ct_config cfg;
    ct_err err;
    bool external = false;
    if (ct_config_load(&cfg, &err) != CT_OK ||
        ct_db_conninfo(&cfg, s.conninfo, sizeof s.conninfo, &external, &err) != CT_OK)
        die("configuration", &err);

    bool do_spawn = false, do_claim = false, do_latency = false;
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "spawn") == 0) {
            do_spawn = true;
        } else if (strcmp(argv[i], "claim") == 0) {
            do_claim = true;
        } else if (strcmp(argv[i], "latency") == 0) {
            do_latency = true;
        } else if (strcmp(argv[i], "all") == 0) {
            do_spawn = do_claim = do_latency = true;
        } else if (strcmp(argv[i], "prefill") == 0) {
            if (s.queue == NULL || !cq_name_valid(s.queue) || s.count < 0) {
                fprintf(stderr, "bench_queue: prefill needs --queue NAME and --count N\n");
                return 2;
            }
            double t = prefill(&s, s.queue, s.count);
            vacuum(&s);
            fprintf(human, "prefill  %ld tasks into %s in %.2f s\n", s.count, s.queue, t);
            return 0;
        } else if (strcmp(argv[i], "pool") == 0) {
            if (s.queue == NULL || !cq_name_valid(s.queue) || s.runs < 1) {
                fprintf(stderr, "bench_queue: pool needs --queue NAME (and --runs N >= 1)\n");
                return 2;
            }
            make_pool(&s, s.queue, s.batches[0], s.complete == 'o', s.runs, s.rate);
            return 0;
        } else if (strcmp(argv[i], "cleanup") == 0) {
            cleanup(&s);
            return 0;
        } else {
            fprintf(stderr, "bench_queue: unknown measurement '%s'; see --help\n", argv[i]);
            return 2;
        }
    }
    if (!do_spawn && !do_claim && !do_latency)
        do_spawn = do_claim = do_latency = true;

    signal(SIGPIPE, SIG_IGN);
    if (do_spawn)
        bench_spawn(&s);
    if (do_claim)
        bench_claim(&s);
    if (do_latency)
        bench_latency(&s);
    if (!s.keep)
        cleanup(&s);
    return 0;
}
