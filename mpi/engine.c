/* engine.c -- see engine.h. */
#define _GNU_SOURCE
#include "engine.h"

#include "chain.h"
#include "database.h"
#include "fsutil.h"
#include "journal.h"
#include "leases.h"
#include "mpiutil.h"
#include "queue.h"
#include "schedules.h"
#include "stages.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* Set by the signal handler, read by rank 0's loop: the only way a signal
 * can reach the engine safely. */
static volatile sig_atomic_t drain_signal = 0;

static void on_signal(int sig)
{
    drain_signal = sig;
}

void ct_engine_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

enum { TAG_ASSIGN = 101, TAG_RESULT = 102, TAG_STOP = 103 };

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void nap(double sec)
{
    struct timespec ts = {(time_t)sec, (long)((sec - floor(sec)) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The nap of a rank that has waited idle_sec so far: a twentieth of that wait,
 * between 50 us and 5 ms. Whatever it is waiting for is then noticed at most 5 %
 * (or 50 us) late -- a no-op task's round trip is not stretched by naps that
 * grew during the previous commit -- while a rank that waits for minutes wakes
 * only 200 times a second and leaves its core to the ranks computing beside it
 * on an oversubscribed node. */
static double idle_nap(double idle_sec)
{
    return fmin(fmax(idle_sec / 20, 5e-5), 5e-3);
}

/* Sends the JSON text of j to rank `to`. */
static void send_json(MPI_Comm comm, const json_t *j, int to, int tag)
{
    char *text = json_dumps(j, JSON_COMPACT);
    const char *body = text ? text : "{}";
    MPI_Send(body, (int)strlen(body) + 1, MPI_CHAR, to, tag, comm);
    free(text);
}

/* Receives a JSON message that MPI_Probe/Iprobe reported in st. */
static json_t *recv_json(MPI_Comm comm, const MPI_Status *st)
{
    int n = 0;
    MPI_Get_count(st, MPI_CHAR, &n);
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL)
        return NULL;
    MPI_Recv(buf, n, MPI_CHAR, st->MPI_SOURCE, st->MPI_TAG, comm, MPI_STATUS_IGNORE);
    buf[n] = '\0';
    json_t *j = json_loads(buf, 0, NULL);
    free(buf);
    return j;
}

/* Runs one task on comm and, on comm's rank 0, describes its outcome as the
 * message the coordinator takes: {"slot", "ok", "result", "products",
 * "continue_chain"} or {"slot", "ok": false, "code", "category", "message"}. */
static json_t *run_unit(MPI_Comm comm, long slot, const char *name, const json_t *params,
                        const ct_config *cfg)
{
    double t0 = mono_now();
    ct_stage_outcome out;
    ct_err err;
    ct_err_clear(&err);
    ct_code rc = ct_stage_run(comm, name, params, cfg, &out, &err);
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rank != 0)
        return NULL;
    json_t *msg;
    if (rc == CT_OK) {
        msg = json_pack("{s:I, s:b, s:O, s:O, s:b}", "slot", (json_int_t)slot, "ok", 1, "result",
                        out.result, "products", out.products ? out.products : json_null(),
                        "continue_chain", out.continue_chain);
        ct_stage_outcome_free(&out);
    } else {
        msg = json_pack("{s:I, s:b, s:s, s:s, s:s}", "slot", (json_int_t)slot, "ok", 0, "code",
                        ct_code_name(rc), "category", ct_category_name(ct_stage_category(&err)),
                        "message", err.msg);
    }
    if (msg == NULL) /* the coordinator waits for an answer: one it can always take */
        msg = json_pack("{s:I, s:b, s:s, s:s, s:s}", "slot", (json_int_t)slot, "ok", 0, "code",
                        ct_code_name(CT_EINVAL), "category", ct_category_name(CT_CAT_PERMANENT),
                        "message",
                        rc == CT_OK ? "the stage's outcome is not valid JSON (a string that is "
                                      "not UTF-8?)"
                                    : "the stage's error message could not be encoded");
    json_object_set_new(msg, "seconds", json_real(mono_now() - t0));
    return msg;
}

/* --- Worker ranks -------------------------------------------------------------------- */

static ct_code worker_loop(MPI_Comm comm, const ct_config *cfg)
{
    for (;;) {
        MPI_Status st;
        int flag = 0;
        /* Poll with naps, not a blocking receive: an idle rank must not spin a
         * core that its neighbours on an oversubscribed node are computing on. */
        double idle_since = mono_now();
        while (MPI_Iprobe(0, MPI_ANY_TAG, comm, &flag, &st), !flag)
            nap(idle_nap(mono_now() - idle_since));
        if (st.MPI_TAG == TAG_STOP) {
            MPI_Recv(NULL, 0, MPI_CHAR, 0, TAG_STOP, comm, MPI_STATUS_IGNORE);
            return CT_OK;
        }
        json_t *a = recv_json(comm, &st);
        if (a == NULL)
            continue;
        long slot = (long)json_integer_value(json_object_get(a, "slot"));
        const json_t *ranks = json_object_get(a, "ranks");
        int n = (int)json_array_size(ranks);
        int *list = malloc((size_t)n * sizeof *list);
        for (int i = 0; list && i < n; i++)
            list[i] = (int)json_integer_value(json_array_get(ranks, (size_t)i));
        MPI_Group world, group;
        MPI_Comm sub = MPI_COMM_NULL;
        MPI_Comm_group(comm, &world);
        MPI_Group_incl(world, n, list, &group);
        /* Only the task's ranks take part; the tag keeps concurrent groups apart. */
        MPI_Comm_create_group(comm, group, (int)(slot % 30000), &sub);
        MPI_Group_free(&group);
        MPI_Group_free(&world);
        free(list);
        json_t *msg = run_unit(sub, slot, json_string_value(json_object_get(a, "name")),
                               json_object_get(a, "params"), cfg);
        if (msg) {
            send_json(comm, msg, 0, TAG_RESULT);
            json_decref(msg);
        }
        MPI_Comm_free(&sub);
        json_decref(a);
    }
}

/* --- The coordinator ----------------------------------------------------------------- */

typedef struct slot {
    long id;
    cq_task task;
    int first_rank, n_ranks; /* ranks first_rank .. first_rank + n_ranks - 1 */
    double started;
    bool in_use;
} slot;

typedef struct coordinator {
    MPI_Comm comm;
    int size;
    const ct_config *cfg;
    const ct_engine_opts *opts;
    ct_engine_summary *sum;
    char conninfo[CT_PATH_MAX + 256];
    char worker_id[320];
    char products_dir[CT_PATH_MAX]; /* absolute: spawned params must not depend on a cwd */
    cq_client *db;
    ct_leases *leases;
    ct_journal *journal;
    ct_chains *chains;
    bool *busy; /* per rank; rank 0 is never given work unless size == 1 */
    slot *slots;
    int n_slots; /* capacity: one per worker rank */
    long next_slot_id;
    int in_flight;
    bool journal_pending;
    double next_replay, next_reap;
    double last_progress;              /* when a result last came or a task was last started */
    bool disk_full;                    /* the disk guard holds claims back */
    const char *single_rank_names[32]; /* the kinds that run on one rank (claim_and_start) */
} coordinator;

static void say(const coordinator *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const coordinator *c, const char *fmt, ...)
{
    if (c->opts->quiet)
        return;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", when);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

/* host:slurm-job-id:rank, or host:pid:rank outside Slurm. */
static void make_worker_id(char *out, size_t size)
{
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    const char *job = getenv("SLURM_JOB_ID");
    if (job && job[0])
        snprintf(out, size, "%s:%s:0", host, job);
    else
        snprintf(out, size, "%s:%ld:0", host, (long)getpid());
}

/* The spawn of the chain step after task t, or NULL when the chain ends
 * here (or names no chain this engine knows: the task still completes). */
static json_t *next_spawns(coordinator *c, const cq_task *t, const json_t *result)
{
    json_t *spawns = json_array();
    const char *chain = json_string_value(json_object_get(t->params, "chain"));
    if (chain == NULL)
        return spawns;
    const char *next = NULL;
    const json_t *config = NULL;
    ct_err err;
    if (ct_chain_next(c->chains, chain, t->name, &next, &config, &err) != CT_OK) {
        say(c, "warning: task %s: %s; nothing spawned after it", t->id, err.msg);
        return spawns;
    }
    if (next == NULL)
        return spawns;
    const ct_stage_follow f = {next, chain, t->id, t->params, result, config, c->products_dir};
    json_t *spawn = ct_stage_follow_spawns(&f, &err);
    if (spawn == NULL)
        say(c, "warning: task %s: %s; nothing spawned after it", t->id, err.msg);
    else
        json_array_append_new(spawns, spawn);
    return spawns;
}

/* Records what could not reach the database, to be replayed. */
static void journal_entry(coordinator *c, json_t *entry)
{
    ct_err err;
    const char *id = json_string_value(json_object_get(entry, "task_id"));
    if (ct_journal_write(c->journal, id, entry, &err) != CT_OK) {
        /* Nothing more can be done here: the lease runs out and the task is redone. */
        fprintf(stderr, "contimg: %s\n", err.msg);
        return;
    }
    c->sum->journaled++;
    c->journal_pending = true;
    c->next_replay = mono_now() + 1.0;
}

/* Applies one journal entry (a commit or a failure). CT_ECONNECT: keep it. */
static ct_code apply_entry(coordinator *c, const json_t *e, bool replay, ct_err *err)
{
    const char *id = json_string_value(json_object_get(e, "task_id"));
    const char *token = json_string_value(json_object_get(e, "token"));
    const char *kind = json_string_value(json_object_get(e, "kind"));
    if (id == NULL || token == NULL || kind == NULL)
        return ct_fail(err, CT_EINVAL, "journal entry without task_id, token or kind");
    if (strcmp(kind, "fail") == 0) {
        ct_category cat = CT_CAT_TRANSIENT;
        ct_category_parse(json_string_value(json_object_get(e, "category")), &cat);
        cq_task after;
        ct_code rc = cq_fail(c->db, id, token, json_string_value(json_object_get(e, "message")),
                             cat, &after, err);
        if (rc == CT_OK) {
            char when[64] = "";
            if (after.status == CQ_RETRYING)
                snprintf(when, sizeof when, "; retried in %.0f s",
                         fmax(0, after.available_at - (double)time(NULL)));
            say(c, "failed    %-18s %s %s: %s%s%s", after.name, id, ct_category_name(cat),
                json_string_value(json_object_get(e, "message")),
                after.status == CQ_FAILED ? "; dead-lettered" : "", when);
            cq_task_free(&after);
        }
        return rc;
    }
    json_t *spawned = NULL;
    ct_code rc =
        cq_commit(c->db, id, token, json_object_get(e, "result"), json_object_get(e, "products"),
                  json_object_get(e, "spawns"), replay, &spawned, err);
    if (rc == CT_OK) {
        size_t i;
        json_t *s;
        char next[512] = "";
        json_array_foreach(spawned, i, s)
        {
            size_t used = strlen(next);
            snprintf(next + used, sizeof next - used, "%s%s %s%s",
                     i ? ", " : "; next: ", json_string_value(json_object_get(s, "name")),
                     json_string_value(json_object_get(s, "task_id")),
                     json_is_true(json_object_get(s, "created")) ? "" : " (existed)");
        }
        say(c, "completed %-18s %s%s%s", json_string_value(json_object_get(e, "name")), id,
            replay ? " (replayed from the journal)" : "", next);
        json_decref(spawned);
    }
    return rc;
}

/* Whether the database refused a commit for what it holds -- a row a constraint rejects
 * (SQLSTATE class 22 or 23: a group id that is not a time stamp, a path twice) or a shape
 * commit_task refuses -- rather than because the task is no longer ours. Redoing the task
 * would only be refused again. */
static bool commit_refused(const json_t *entry, ct_code rc, const ct_err *err)
{
    return strcmp(json_string_value(json_object_get(entry, "kind")), "commit") == 0 &&
           (rc == CT_EINVAL || strncmp(err->sqlstate, "22", 2) == 0 ||
            strncmp(err->sqlstate, "23", 2) == 0);
}

/* Counts a settled entry (the database took it, or refused it because the task
 * is no longer ours) and stops keeping its lease. A commit refused for what it holds
 * fails the task instead, permanent, with the database's reason: the task would otherwise
 * stay claimed and be redone, and refused, until it dead-letters with the cause lost. */
static void account(coordinator *c, const json_t *entry, ct_code rc, const ct_err *err,
                    const char *from)
{
    const char *id = json_string_value(json_object_get(entry, "task_id"));
    ct_err e2;
    if (rc != CT_OK && commit_refused(entry, rc, err)) {
        char why[CT_ERRMSG_MAX + 64];
        snprintf(why, sizeof why, "the database refused the task's commit: %s", err->msg);
        json_t *fail =
            json_pack("{s:s, s:O, s:O, s:O, s:s, s:s}", "kind", "fail", "task_id",
                      json_object_get(entry, "task_id"), "token", json_object_get(entry, "token"),
                      "name", json_object_get(entry, "name"), "category",
                      ct_category_name(CT_CAT_PERMANENT), "message", why);
        rc = apply_entry(c, fail, false, &e2);
        json_decref(fail);
        if (rc == CT_OK) {
            c->sum->failed++;
            ct_leases_remove(c->leases, id);
            return;
        }
        err = &e2;
    }
    if (rc == CT_OK) {
        if (strcmp(json_string_value(json_object_get(entry, "kind")), "fail") == 0)
            c->sum->failed++;
        else
            c->sum->completed++;
    } else {
        say(c, "dropped   %s%s: %s (another holder redoes it)", id, from, err->msg);
        c->sum->dropped++;
    }
    ct_leases_remove(c->leases, id);
}

/* Commits or fails a finished task: entry is the journal form of it. While
 * earlier entries wait in the journal, it joins them, so they land in order. */
static void settle(coordinator *c, json_t *entry)
{
    ct_err err;
    ct_code rc;
    if (c->journal_pending)
        rc = ct_fail(&err, CT_ECONNECT, "earlier results are still waiting for the database");
    else
        rc = apply_entry(c, entry, false, &err);
    if (rc == CT_ECONNECT) {
        say(c, "deferred  %s: %s; journaled", json_string_value(json_object_get(entry, "task_id")),
            err.msg);
        journal_entry(c, entry);
        return; /* the lease keeper keeps the claim alive meanwhile */
    }
    account(c, entry, rc, &err, "");
}

/* Replays journaled entries oldest first; stops at the first the database
 * still cannot take. */
static void replay_journal(coordinator *c)
{
    json_t *entries = NULL;
    ct_err err;
    if (ct_journal_entries(c->journal, &entries, &err) != CT_OK) {
        fprintf(stderr, "contimg: %s\n", err.msg);
        c->next_replay = mono_now() + 5;
        return;
    }
    size_t i;
    json_t *e;
    bool blocked = false;
    json_array_foreach(entries, i, e)
    {
        ct_code rc = apply_entry(c, e, true, &err);
        if (rc == CT_ECONNECT) {
            blocked = true;
            break;
        }
        if (rc == CT_OK)
            c->sum->replayed++;
        account(c, e, rc, &err, " from the journal");
        const char *id = json_string_value(json_object_get(e, "task_id"));
        if (ct_journal_remove(c->journal, id, &err) != CT_OK)
            fprintf(stderr, "contimg: %s\n", err.msg);
    }
    json_decref(entries);
    c->journal_pending = blocked;
    c->next_replay = mono_now() + (blocked ? 1.0 : 0);
}

/* Takes a unit's outcome message for slot s. */
static void take_result(coordinator *c, slot *s, json_t *msg)
{
    for (int r = s->first_rank; r < s->first_rank + s->n_ranks; r++)
        c->busy[r] = false;
    c->in_flight--;
    cq_task *t = &s->task;
    ct_lease_state st = ct_leases_state(c->leases, t->id);
    double secs = json_real_value(json_object_get(msg, "seconds"));
    if (st != CT_LEASE_HELD) {
        say(c, "dropped   %-18s %s after %.1f s: %s", t->name, t->id, secs,
            st == CT_LEASE_TIMED_OUT ? "it had timed out" : "its lease was lost");
        c->sum->dropped++;
        ct_leases_remove(c->leases, t->id);
    } else if (json_is_true(json_object_get(msg, "ok"))) {
        json_t *result = json_object_get(msg, "result");
        json_t *spawns = json_is_true(json_object_get(msg, "continue_chain"))
                             ? next_spawns(c, t, result)
                             : json_array();
        json_object_set_new(result, "seconds", json_real(secs));
        json_t *products = json_object_get(msg, "products");
        /* "o" takes the reference: a task without products must not leak its {}. */
        json_t *entry = json_pack(
            "{s:s, s:s, s:s, s:s, s:O, s:o, s:o}", "kind", "commit", "task_id", t->id, "token",
            t->claim_token, "name", t->name, "result", result, "products",
            json_is_object(products) ? json_incref(products) : json_object(), "spawns", spawns);
        settle(c, entry);
        json_decref(entry);
    } else {
        json_t *entry =
            json_pack("{s:s, s:s, s:s, s:s, s:O, s:O}", "kind", "fail", "task_id", t->id, "token",
                      t->claim_token, "name", t->name, "category", json_object_get(msg, "category"),
                      "message", json_object_get(msg, "message"));
        settle(c, entry);
        json_decref(entry);
    }
    cq_task_free(t);
    s->in_use = false;
}

/* Gives slot s's task to ranks first .. first + n - 1 (or runs it here). */
static void dispatch(coordinator *c, cq_task *t, int first, int n)
{
    slot *s = NULL;
    for (int i = 0; i < c->n_slots && s == NULL; i++)
        if (!c->slots[i].in_use)
            s = &c->slots[i];
    if (s == NULL || first < 0) {
        /* Cannot happen (a slot per worker rank, claims sized to the free ranks), but a
         * task must never be held with nobody working on it: give it back. */
        cq_release(c->db, t->id, t->claim_token, NULL);
        ct_leases_remove(c->leases, t->id);
        cq_task_free(t);
        return;
    }
    s->in_use = true;
    s->id = ++c->next_slot_id;
    s->task = *t;
    s->first_rank = first;
    s->n_ranks = n;
    s->started = mono_now();
    c->in_flight++;
    const char *group =
        json_string_value(json_object_get(json_object_get(t->params, "inputs"), "group_id"));
    char where[32];
    if (n > 1)
        snprintf(where, sizeof where, "ranks %d-%d", first, first + n - 1);
    else
        snprintf(where, sizeof where, "rank %d", first);
    say(c, "started   %-18s %s%s%s attempt %d on %s", t->name, t->id, group ? " group " : "",
        group ? group : "", t->attempt, where);
    if (c->size == 1) {
        json_t *msg = run_unit(MPI_COMM_SELF, s->id, t->name, t->params, c->cfg);
        take_result(c, s, msg);
        json_decref(msg);
        return;
    }
    json_t *ranks = json_array();
    for (int r = first; r < first + n; r++) {
        c->busy[r] = true;
        json_array_append_new(ranks, json_integer(r));
    }
    json_t *a = json_pack("{s:I, s:s, s:o, s:O}", "slot", (json_int_t)s->id, "name", t->name,
                          "ranks", ranks, "params", t->params);
    for (int r = first; r < first + n; r++)
        send_json(c->comm, a, r, TAG_ASSIGN);
    json_decref(a);
}

static int free_workers(const coordinator *c)
{
    if (c->size == 1)
        return c->in_flight == 0 ? 1 : 0;
    int n = 0;
    for (int r = 1; r < c->size; r++)
        n += !c->busy[r];
    return n;
}

/* The first run of n free consecutive ranks, or -1. */
static int free_run(const coordinator *c, int n)
{
    if (c->size == 1)
        return c->in_flight == 0 ? 0 : -1;
    for (int r = 1; r + n <= c->size; r++) {
        int k = 0;
        while (k < n && !c->busy[r + k])
            k++;
        if (k == n)
            return r;
    }
    return -1;
}

static int ranks_per_task(const coordinator *c)
{
    int workers = c->size == 1 ? 1 : c->size - 1;
    int per = c->opts->ranks_per_task > 0 ? c->opts->ranks_per_task : workers;
    return per < workers ? per : workers;
}

/* Claims as many tasks as there are free rank groups and starts them.
 * Returns how many were claimed (0 also when the database is away). */
/* The disk guard: no new claims while the products' or the state's filesystem is at
 * CONTIMG_DISK_GUARD full or more (1: no guard). Tasks in flight finish; claiming resumes
 * once there is room, and the log says when it stops and starts. */
static bool disk_full(coordinator *c)
{
    const char *paths[2] = {c->products_dir, c->cfg->state_dir};
    bool full = false;
    double total, avail, ratio = 0, worst = 0;
    const char *where = paths[0];
    for (int i = 0; i < 2 && c->cfg->disk_guard < 1; i++)
        if (ct_disk_usage(paths[i], &total, &avail, &ratio) == 0 && ratio >= c->cfg->disk_guard &&
            ratio >= worst) {
            full = true;
            worst = ratio;
            where = paths[i];
        }
    if (full && !c->disk_full)
        say(c, "disk guard: %s is %.1f %% full (CONTIMG_DISK_GUARD %.0f %%): not claiming", where,
            100 * worst, 100 * c->cfg->disk_guard);
    else if (!full && c->disk_full)
        say(c, "disk guard: room again: claiming");
    c->disk_full = full;
    return full;
}

static size_t claim_and_start(coordinator *c)
{
    int per = ranks_per_task(c), idle = free_workers(c);
    int limit = idle / per;
    const char *const *names = ct_stage_names();
    /* Ranks short of a whole group still take the kinds that run on one rank, one each:
     * short tasks run side by side instead of one per group (no-ops on -np 3 went from
     * 405 to the 693 tasks/s of --ranks-per-task 1). A task of such a kind claimed in a
     * whole group's place also leaves ranks free, taken here on the next pass. */
    bool single = limit == 0 && idle > 0;
    if (single) {
        limit = idle;
        names = c->single_rank_names;
    }
    if (c->opts->max_tasks > 0 && c->sum->claimed + limit > c->opts->max_tasks)
        limit = (int)(c->opts->max_tasks - c->sum->claimed);
    if (limit <= 0 || names[0] == NULL || disk_full(c))
        return 0;
    cq_task *tasks = NULL;
    size_t n = 0;
    ct_err err;
    ct_code rc = cq_claim(c->db, c->cfg->queue, c->worker_id, limit, c->cfg->lease_sec, names,
                          &tasks, &n, &err);
    if (rc != CT_OK) {
        say(c, "claim failed (will retry): %s", err.msg);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        c->sum->claimed++;
        if (ct_leases_add(c->leases, &tasks[i], &err) != CT_OK) {
            cq_release(c->db, tasks[i].id, tasks[i].claim_token, NULL);
            cq_task_free(&tasks[i]);
            continue;
        }
        /* Its paths checked, and what only the database knows, before the ranks see the
         * params. */
        if (ct_stage_prepare(c->db, c->cfg, tasks[i].name, tasks[i].params, &err) != CT_OK) {
            json_t *entry =
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kind", "fail", "task_id", tasks[i].id,
                          "token", tasks[i].claim_token, "name", tasks[i].name, "category",
                          ct_category_name(err.category), "message", err.msg);
            settle(c, entry);
            json_decref(entry);
            cq_task_free(&tasks[i]);
            continue;
        }
        int want = single ? 1 : ct_stage_max_ranks(tasks[i].name);
        int n_ranks = want < per ? want : per;
        int first = free_run(c, n_ranks);
        if (first < 0) { /* ranks are contiguous per group; fall back to one rank */
            n_ranks = 1;
            first = free_run(c, 1);
        }
        dispatch(c, &tasks[i], first, n_ranks); /* takes over tasks[i]'s fields */
    }
    free(tasks);
    return n;
}

/* Takes every outcome that has arrived; true when any did. */
static bool poll_results(coordinator *c)
{
    bool any = false;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, c->comm, &flag, &st);
        if (!flag)
            return any;
        json_t *msg = recv_json(c->comm, &st);
        long id = msg ? (long)json_integer_value(json_object_get(msg, "slot")) : -1;
        for (int i = 0; i < c->n_slots; i++)
            if (c->slots[i].in_use && c->slots[i].id == id) {
                take_result(c, &c->slots[i], msg);
                any = true;
                break;
            }
        json_decref(msg);
    }
}

/* Releases every task still in flight (grace period over). */
static void release_in_flight(coordinator *c)
{
    for (int i = 0; i < c->n_slots; i++) {
        if (!c->slots[i].in_use)
            continue;
        cq_task *t = &c->slots[i].task;
        ct_err err;
        ct_code rc = cq_release(c->db, t->id, t->claim_token, &err);
        say(c, "released  %-18s %s%s%s", t->name, t->id, rc ? ": " : " (pending again)",
            rc ? err.msg : "");
        if (rc == CT_OK)
            c->sum->released++;
        ct_leases_remove(c->leases, t->id);
    }
}

static void reap(coordinator *c)
{
    cq_reaped *r = NULL;
    size_t n = 0;
    ct_err err;
    if (cq_reap(c->db, c->cfg->queue, &r, &n, &err) == CT_OK) {
        for (size_t i = 0; i < n; i++)
            say(c, "reaped    %s: %s (its holder stopped heartbeating)", r[i].id, r[i].action);
        c->sum->reaped += (long)n;
    }
    free(r);
    /* A long-running engine ticks the schedules too (schedules.h: each due time fires
     * once however many tick); one that drains does not, or it would feed itself. */
    json_t *fired = NULL;
    if (!c->opts->drain && ct_schedule_tick(c->db, &fired, &err) == CT_OK) {
        size_t i;
        json_t *f;
        json_array_foreach(fired, i, f)
        {
            char line[1400];
            ct_schedule_describe(f, line, sizeof line);
            say(c, "%s", line);
        }
    }
    json_decref(fired);
    c->next_reap = mono_now() + c->cfg->heartbeat_interval_sec;
}

/* Waits for work: a NOTIFY, the next retry coming due, or the poll interval. */
static void idle_wait(coordinator *c, double at_most)
{
    bool woken = false;
    ct_err err;
    double wait = fmin(c->cfg->poll_interval_sec, at_most);
    if (wait <= 0)
        return;
    if (cq_wait(c->db, c->cfg->queue, wait, &woken, &err) != CT_OK)
        nap(wait);
}

static ct_code connect_db(coordinator *c, ct_err *err)
{
    bool external = false;
    ct_code rc = ct_db_conninfo(c->cfg, c->conninfo, sizeof c->conninfo, &external, err);
    if (rc != CT_OK)
        return rc;
    double waited = 0, delay = 0.2;
    while ((rc = cq_connect(c->conninfo, &c->db, err)) == CT_ECONNECT &&
           waited < c->cfg->db_retry_sec) {
        nap(delay);
        waited += delay;
        delay = fmin(delay * 2, 5);
    }
    if (rc != CT_OK)
        return rc;
    /* Short: a commit that cannot get through is journaled, not waited for. */
    cq_set_reconnect_budget(c->db, fmin(c->cfg->db_retry_sec, 2.0));
    return CT_OK;
}

static ct_code coordinator_loop(coordinator *c, ct_err *err)
{
    double grace = c->opts->grace_sec >= 0 ? c->opts->grace_sec : c->cfg->drain_grace_sec;
    bool draining = false;
    double drain_deadline = 0;
    replay_journal(c);
    reap(c);
    for (;;) {
        double now = mono_now();
        if (drain_signal && !draining) {
            draining = true;
            c->sum->signalled = true;
            drain_deadline = now + grace;
            say(c, "draining  on signal %d: no more claims; %d task(s) in flight get %.0f s",
                (int)drain_signal, c->in_flight, grace);
        }
        bool progressed = poll_results(c);
        if (progressed)
            c->last_progress = mono_now();
        if (c->journal_pending && now >= c->next_replay)
            replay_journal(c);
        if (draining) {
            if (c->in_flight == 0 && !c->journal_pending)
                return CT_OK;
            if (mono_now() > drain_deadline) {
                release_in_flight(c);
                return ct_fail(err, CT_ESTATE,
                               "drain: %d task(s) still running after the %.0f s grace period "
                               "were released",
                               c->in_flight, grace);
            }
            nap(0.005);
            continue;
        }
        if (now >= c->next_reap)
            reap(c);
        size_t claimed = c->journal_pending ? 0 : claim_and_start(c);
        if (claimed > 0 || progressed) {
            c->last_progress = mono_now();
            continue;
        }
        if (c->in_flight > 0) {
            nap(idle_nap(mono_now() - c->last_progress));
            continue;
        }
        bool limit_reached = c->opts->max_tasks > 0 && c->sum->claimed >= c->opts->max_tasks;
        if (c->opts->drain || limit_reached) {
            long left = 0;
            double next = NAN;
            ct_code rc = limit_reached ? CT_OK
                                       : cq_outstanding(c->db, c->cfg->queue, ct_stage_names(),
                                                        &left, &next, err);
            if (rc == CT_OK && left == 0 && !c->journal_pending)
                return CT_OK;
            if (rc == CT_OK && !isnan(next) && next <= 0)
                reap(c); /* a lease that ran out (its holder died): the task comes back now */
            idle_wait(c, isnan(next) ? c->cfg->poll_interval_sec : fmax(next, 0.1));
            continue;
        }
        idle_wait(c, c->cfg->poll_interval_sec);
    }
}

static ct_code coordinator_run(MPI_Comm comm, const ct_config *cfg, const ct_engine_opts *o,
                               ct_engine_summary *sum, ct_err *err)
{
    coordinator c;
    memset(&c, 0, sizeof c);
    c.comm = comm;
    ct_stage_single_rank_names(c.single_rank_names,
                               sizeof c.single_rank_names / sizeof c.single_rank_names[0]);
    MPI_Comm_size(comm, &c.size);
    c.cfg = cfg;
    c.opts = o;
    c.sum = sum;
    make_worker_id(c.worker_id, sizeof c.worker_id);
    char journal_dir[CT_PATH_MAX + 16];
    snprintf(journal_dir, sizeof journal_dir, "%s/journal", cfg->state_dir);
    c.n_slots = c.size > 1 ? c.size - 1 : 1;
    c.last_progress = mono_now();
    c.busy = calloc((size_t)c.size, sizeof *c.busy);
    c.slots = calloc((size_t)c.n_slots, sizeof *c.slots);
    ct_code rc = (c.busy && c.slots) ? CT_OK : ct_fail(err, CT_ENOMEM, "out of memory");
    if (rc == CT_OK)
        rc = ct_absolute_path(cfg->products_dir, c.products_dir, sizeof c.products_dir, err);
    if (rc == CT_OK)
        rc = ct_chains_load(cfg->chains_file, &c.chains, err);
    if (rc == CT_OK)
        rc = ct_journal_open(journal_dir, &c.journal, err);
    if (rc == CT_OK)
        rc = connect_db(&c, err);
    if (rc == CT_OK)
        rc = ct_leases_start(c.conninfo, cfg->heartbeat_interval_sec, cfg->lease_sec,
                             fmin(cfg->db_retry_sec, 1.0), &c.leases, err);
    if (rc == CT_OK) {
        say(&c, "engine    %s on %d rank%s, queue %s, %d rank%s per task%s", c.worker_id, c.size,
            c.size > 1 ? "s" : "", cfg->queue, ranks_per_task(&c),
            ranks_per_task(&c) > 1 ? "s" : "", o->drain ? ", until drained" : "");
        rc = coordinator_loop(&c, err);
    }
    ct_leases_stop(c.leases);
    cq_disconnect(c.db);
    ct_journal_close(c.journal);
    ct_chains_free(c.chains);
    free(c.busy);
    free(c.slots);
    return rc;
}

ct_code ct_engine_run(MPI_Comm comm, const ct_config *cfg, const ct_engine_opts *o,
                      ct_engine_summary *summary, ct_err *err)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    ct_engine_summary local;
    memset(&local, 0, sizeof local);
    double t0 = mono_now();
    /* Threads per rank for the stages, unless configured: the node's cores
     * shared among the ranks that compute on it. With workers, the
     * coordinator mostly waits on the database, so it is not counted. */
    ct_config run_cfg = *cfg;
    {
        MPI_Comm computing;
        MPI_Comm_split(comm, size > 1 && rank == 0 ? MPI_UNDEFINED : 0, rank, &computing);
        int share = computing != MPI_COMM_NULL ? ct_mpi_cpu_share(computing) : 1;
        if (computing != MPI_COMM_NULL)
            MPI_Comm_free(&computing);
        if (run_cfg.threads == 0)
            run_cfg.threads = share;
    }
    cfg = &run_cfg;
    ct_code rc;
    if (rank == 0) {
        rc = coordinator_run(comm, cfg, o, &local, err);
        if (rc == CT_ESTATE && local.signalled) {
            /* Ranks are inside a stage that cannot be interrupted: end the job. */
            fprintf(stderr, "contimg: %s; aborting the job\n", err->msg);
            fflush(NULL);
            MPI_Abort(comm, 75);
        }
        for (int r = 1; r < size; r++)
            MPI_Send(NULL, 0, MPI_CHAR, r, TAG_STOP, comm);
        const struct mallinfo2 mi = mallinfo2();
        struct rusage ru;
        local.heap_bytes = (long)(mi.uordblks + mi.hblkhd);
        local.peak_rss_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    } else {
        rc = worker_loop(comm, cfg);
    }
    local.seconds = mono_now() - t0;
    if (summary)
        *summary = local;
    /* Every rank learns the coordinator's outcome. */
    int code = (int)rc;
    MPI_Bcast(&code, 1, MPI_INT, 0, comm);
    char msg[CT_ERRMSG_MAX];
    if (rank == 0)
        snprintf(msg, sizeof msg, "%s", rc == CT_OK ? "" : err->msg);
    MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm);
    if (code != CT_OK && rank != 0)
        ct_fail(err, (ct_code)code, "%s", msg);
    return (ct_code)code;
}
