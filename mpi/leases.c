/* leases.c -- see leases.h. */
#define _GNU_SOURCE
#include "leases.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct kept {
    cq_uuid id, token;
    char name[CQ_NAME_MAX + 1];
    int timeout_sec;
    double deadline; /* monotonic seconds */
    ct_lease_state state;
} kept;

struct ct_leases {
    cq_client *db;
    double heartbeat_sec, lease_sec;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stopping;
    kept *tasks;
    size_t n, cap;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Under l->mu. */
static kept *find(ct_leases *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->tasks[i].id, id) == 0)
            return &l->tasks[i];
    return NULL;
}

/* Fails the tasks past their deadline (outside the lock: a database call). */
static void enforce_timeouts(ct_leases *l)
{
    double now = mono_now();
    for (;;) {
        kept late;
        bool found = false;
        pthread_mutex_lock(&l->mu);
        for (size_t i = 0; i < l->n && !found; i++)
            if (l->tasks[i].state == CT_LEASE_HELD && now > l->tasks[i].deadline) {
                late = l->tasks[i];
                l->tasks[i].state = CT_LEASE_TIMED_OUT; /* its work is void from now on */
                found = true;
            }
        pthread_mutex_unlock(&l->mu);
        if (!found)
            return;
        char msg[256];
        snprintf(msg, sizeof msg, "timed out: still running after its timeout_sec of %d s",
                 late.timeout_sec);
        ct_err err;
        ct_code rc = cq_fail(l->db, late.id, late.token, msg, CT_CAT_TIMEOUT, NULL, &err);
        fprintf(stderr, "contimg: task %s (%s) %s%s%s\n", late.id, late.name, msg,
                rc == CT_OK ? "" : "; recording it failed: ", rc == CT_OK ? "" : err.msg);
    }
}

static void heartbeat_all(ct_leases *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = 0;
    cq_uuid *ids = malloc((l->n + 1) * sizeof *ids), *tokens = malloc((l->n + 1) * sizeof *tokens);
    for (size_t i = 0; ids && tokens && i < l->n; i++)
        if (l->tasks[i].state == CT_LEASE_HELD) {
            memcpy(ids[n], l->tasks[i].id, sizeof(cq_uuid));
            memcpy(tokens[n++], l->tasks[i].token, sizeof(cq_uuid));
        }
    pthread_mutex_unlock(&l->mu);
    bool *alive = malloc((n + 1) * sizeof *alive);
    ct_err err;
    if (n > 0 && alive && ids && tokens) {
        ct_code rc = cq_heartbeat(l->db, ids, tokens, n, l->lease_sec, alive, &err);
        if (rc != CT_OK) {
            fprintf(stderr, "contimg: heartbeat of %zu task(s) failed (retrying): %s\n", n,
                    err.msg);
        } else {
            pthread_mutex_lock(&l->mu);
            for (size_t i = 0; i < n; i++) {
                kept *k = find(l, ids[i]);
                if (!alive[i] && k && k->state == CT_LEASE_HELD &&
                    strcmp(k->token, tokens[i]) == 0) {
                    k->state = CT_LEASE_LOST;
                    fprintf(stderr, "contimg: lost the lease on task %s (%s)\n", k->id, k->name);
                }
            }
            pthread_mutex_unlock(&l->mu);
        }
    }
    free(ids);
    free(tokens);
    free(alive);
}

static void *keeper_main(void *arg)
{
    ct_leases *l = arg;
    double next_beat = mono_now() + l->heartbeat_sec;
    pthread_mutex_lock(&l->mu);
    while (!l->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000; /* timeouts are checked every 0.1 s */
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->wake, &l->mu, &until);
        if (l->stopping)
            break;
        pthread_mutex_unlock(&l->mu);
        enforce_timeouts(l);
        if (mono_now() >= next_beat) {
            heartbeat_all(l);
            next_beat = mono_now() + l->heartbeat_sec;
        }
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

ct_code ct_leases_start(const char *conninfo, double heartbeat_sec, double lease_sec,
                        double reconnect_budget_sec, ct_leases **out, ct_err *err)
{
    *out = NULL;
    ct_leases *l = calloc(1, sizeof *l);
    if (l == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    ct_code rc = cq_connect(conninfo, &l->db, err);
    if (rc != CT_OK) {
        free(l);
        return rc;
    }
    cq_set_reconnect_budget(l->db, reconnect_budget_sec);
    l->heartbeat_sec = heartbeat_sec;
    l->lease_sec = lease_sec;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->wake, NULL);
    int e = pthread_create(&l->thread, NULL, keeper_main, l);
    if (e != 0) {
        cq_disconnect(l->db);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->wake);
        free(l);
        return ct_fail(err, CT_EIO, "cannot start the lease keeper: %s", strerror(e));
    }
    *out = l;
    return CT_OK;
}

void ct_leases_stop(ct_leases *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    l->stopping = true;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    cq_disconnect(l->db);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->wake);
    free(l->tasks);
    free(l);
}

ct_code ct_leases_add(ct_leases *l, const cq_task *t, ct_err *err)
{
    pthread_mutex_lock(&l->mu);
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        kept *grown = realloc(l->tasks, cap * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&l->mu);
            return ct_fail(err, CT_ENOMEM, "out of memory");
        }
        l->tasks = grown;
        l->cap = cap;
    }
    kept *k = &l->tasks[l->n++];
    memset(k, 0, sizeof *k);
    memcpy(k->id, t->id, sizeof k->id);
    memcpy(k->token, t->claim_token, sizeof k->token);
    snprintf(k->name, sizeof k->name, "%s", t->name);
    k->timeout_sec = t->timeout_sec;
    k->deadline = mono_now() + t->timeout_sec;
    k->state = CT_LEASE_HELD;
    pthread_mutex_unlock(&l->mu);
    return CT_OK;
}

void ct_leases_remove(ct_leases *l, const char *task_id)
{
    pthread_mutex_lock(&l->mu);
    kept *k = find(l, task_id);
    if (k != NULL)
        *k = l->tasks[--l->n];
    pthread_mutex_unlock(&l->mu);
}

ct_lease_state ct_leases_state(ct_leases *l, const char *task_id)
{
    pthread_mutex_lock(&l->mu);
    kept *k = find(l, task_id);
    ct_lease_state s = k ? k->state : CT_LEASE_UNKNOWN;
    pthread_mutex_unlock(&l->mu);
    return s;
}
