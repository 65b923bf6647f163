/*
 * test_queue.c -- every transition of the ABSURD state machine, through the
 * C client against a real PostgreSQL. Each test works in a queue of its own.
 */
#define _GNU_SOURCE
#include "queue.h"
#include "testutil.h"

#include <libpq-fe.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static cq_client *db;

/* Spawns a task named `name` into q; returns its id in id. */
static ct_code spawn(const char *q, const char *name, const cq_spawn_opts *base, cq_uuid id)
{
    cq_spawn_opts o = base ? *base : cq_spawn_defaults();
    o.queue = q;
    o.name = name;
    ct_err err;
    ct_code rc = cq_spawn(db, &o, id, NULL, &err);
    if (rc != CT_OK)
        fprintf(stderr, "spawn %s: %s\n", name, err.msg);
    return rc;
}

/* Claims at most `limit` tasks; returns how many, tasks in *out. */
static size_t claim(const char *q, int limit, double lease, cq_task **out)
{
    size_t n = 0;
    ct_err err;
    if (cq_claim(db, q, "test-worker", limit, lease, NULL, out, &n, &err) != CT_OK) {
        fprintf(stderr, "claim: %s\n", err.msg);
        *out = NULL;
        return 0;
    }
    return n;
}

static cq_status status_of(const char *id)
{
    cq_task t;
    ct_err err;
    if (cq_get(db, id, &t, &err) != CT_OK)
        return (cq_status)-1;
    cq_status s = t.status;
    cq_task_free(&t);
    return s;
}

static void test_idempotent_spawn(void)
{
    char q[64], q2[64];
    tu_unique_queue(db, "idem", q, sizeof q);
    tu_unique_queue(db, "idem", q2, sizeof q2);
    cq_spawn_opts o = cq_spawn_defaults();
    o.queue = q;
    o.name = "convert-uvh5-to-ms";
    o.idempotency_key = "2026-11-22T10:00:00";
    cq_uuid a, b, c;
    bool created_a = false, created_b = true, created_c = false;
    ct_err err;
    REQUIRE_OK(cq_spawn(db, &o, a, &created_a, &err), err);
    REQUIRE_OK(cq_spawn(db, &o, b, &created_b, &err), err);
    CHECK(created_a && !created_b, "first creates, second finds (%d, %d)", created_a, created_b);
    CHECK(strcmp(a, b) == 0, "same task returned: %s vs %s", a, b);
    o.queue = q2;
    REQUIRE_OK(cq_spawn(db, &o, c, &created_c, &err), err);
    CHECK(created_c && strcmp(a, c) != 0, "the key is scoped to its queue");
    cq_filter f = {.queue = q};
    cq_task *t = NULL;
    size_t n = 0;
    REQUIRE_OK(cq_list(db, &f, &t, &n, &err), err);
    CHECK(n == 1, "one task in the queue, found %zu", n);
    cq_tasks_free(t, n);
}

static void test_claim_order_and_fields(void)
{
    char q[64];
    tu_unique_queue(db, "order", q, sizeof q);
    cq_spawn_opts lo = cq_spawn_defaults(), hi = cq_spawn_defaults();
    hi.priority = 5;
    cq_uuid a, b, c;
    REQUIRE(spawn(q, "first-low", &lo, a) == CT_OK, "spawn");
    REQUIRE(spawn(q, "high", &hi, b) == CT_OK, "spawn");
    REQUIRE(spawn(q, "second-low", &lo, c) == CT_OK, "spawn");
    cq_task *t = NULL;
    double before = tu_now();
    size_t n = claim(q, 10, 60, &t);
    REQUIRE(n == 3, "claimed %zu of 3", n);
    /* The claim returns rows in update order; sort expectations by id. */
    int seen_high_first = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(t[i].status == CQ_CLAIMED && t[i].attempt == 1, "claimed, attempt 1");
        CHECK(strlen(t[i].claim_token) == CQ_UUID_LEN, "claim token issued");
        CHECK(strcmp(t[i].worker_id, "test-worker") == 0, "worker recorded");
        CHECK(fabs(t[i].lease_expires_at - (before + 60)) < 5, "lease about 60 s: %f",
              t[i].lease_expires_at - before);
        if (strcmp(t[i].id, b) == 0)
            seen_high_first = 1;
    }
    CHECK(seen_high_first, "high priority task claimed");
    cq_tasks_free(t, n);
    /* Order: claim one at a time in a fresh queue. */
    char q2[64];
    tu_unique_queue(db, "order1", q2, sizeof q2);
    REQUIRE(spawn(q2, "first-low", &lo, a) == CT_OK, "spawn");
    REQUIRE(spawn(q2, "high", &hi, b) == CT_OK, "spawn");
    REQUIRE(spawn(q2, "second-low", &lo, c) == CT_OK, "spawn");
    const char *expect[] = {b, a, c};
    for (int i = 0; i < 3; i++) {
        n = claim(q2, 1, 60, &t);
        CHECK(n == 1 && strcmp(t[0].id, expect[i]) == 0, "claim %d is %s", i,
              n ? t[0].name : "(none)");
        cq_tasks_free(t, n);
    }
    n = claim(q2, 1, 60, &t);
    CHECK(n == 0, "queue drained");
    cq_tasks_free(t, n);
}

static void test_retry_backoff_then_dead_letter_cascade(void)
{
    char q[64];
    tu_unique_queue(db, "retry", q, sizeof q);
    cq_spawn_opts o = cq_spawn_defaults();
    o.max_retries = 2;
    o.backoff_base_sec = 0.4;
    o.backoff_max_sec = 0.6;
    cq_uuid root, child, grandchild, bystander;
    REQUIRE(spawn(q, "calibration-solve", &o, root) == CT_OK, "spawn");
    cq_spawn_opts dep = cq_spawn_defaults();
    const char *d1[] = {root};
    dep.depends_on = d1;
    dep.n_depends_on = 1;
    REQUIRE(spawn(q, "calibration-apply", &dep, child) == CT_OK, "spawn");
    const char *d2[] = {child};
    dep.depends_on = d2;
    REQUIRE(spawn(q, "imaging", &dep, grandchild) == CT_OK, "spawn");
    REQUIRE(spawn(q, "unrelated", NULL, bystander) == CT_OK, "spawn");

    /* Three attempts: fail, fail, fail -> dead letter. */
    const double expected_delay[] = {0.4, 0.6}; /* 0.4 * 2^1 = 0.8 is capped at 0.6 */
    for (int attempt = 1; attempt <= 3; attempt++) {
        cq_task *t = NULL;
        size_t n = 0;
        ct_err err;
        const char *names[] = {"calibration-solve", NULL};
        REQUIRE_OK(cq_claim(db, q, "w", 10, 60, names, &t, &n, &err), err);
        REQUIRE(n == 1 && strcmp(t[0].id, root) == 0, "attempt %d claimed (%zu)", attempt, n);
        CHECK(t[0].attempt == attempt, "attempt counter %d == %d", t[0].attempt, attempt);
        cq_task after;
        double t0 = tu_now();
        ct_code rc =
            cq_fail(db, root, t[0].claim_token, "disk busy", CT_CAT_TRANSIENT, &after, &err);
        double t1 = tu_now();
        cq_tasks_free(t, n);
        REQUIRE(rc == CT_OK, "fail: %s", err.msg);
        if (attempt < 3) {
            double delay = expected_delay[attempt - 1];
            CHECK(after.status == CQ_RETRYING, "retrying after attempt %d", attempt);
            CHECK(after.available_at >= t0 + delay - 0.05 &&
                      after.available_at <= t1 + delay + 0.05,
                  "backoff %.2f s (got %.3f)", delay, after.available_at - t0);
            CHECK(strcmp(after.error_category, "transient") == 0, "category recorded");
            /* Not claimable before its backoff... */
            size_t m = claim(q, 10, 60, &t);
            bool root_claimed = false;
            for (size_t i = 0; i < m; i++) {
                root_claimed |= strcmp(t[i].id, root) == 0;
                if (strcmp(t[i].id, bystander) == 0) {
                    CHECK_OK(cq_complete(db, t[i].id, t[i].claim_token, NULL, &err), err);
                }
            }
            cq_tasks_free(t, m);
            CHECK(!root_claimed, "not claimable during backoff");
            /* ...and claimable after it. */
            double wait = after.available_at - tu_now() + 0.05;
            if (wait > 0)
                tu_sleep(wait);
        } else {
            CHECK(after.status == CQ_FAILED, "failed after max_retries");
            char dlq[80];
            snprintf(dlq, sizeof dlq, "%s-dlq", q);
            CHECK(strcmp(after.queue, dlq) == 0, "dead-lettered into %s (is %s)", dlq, after.queue);
            CHECK(strcmp(after.origin_queue, q) == 0, "origin remembered");
            CHECK(!isnan(after.dead_lettered_at), "dead_lettered_at set");
        }
        cq_task_free(&after);
    }
    /* The cascade: both descendants cancelled, recording the root as cause. */
    cq_task t;
    ct_err err;
    const char *desc[] = {child, grandchild};
    for (int i = 0; i < 2; i++) {
        REQUIRE_OK(cq_get(db, desc[i], &t, &err), err);
        CHECK(t.status == CQ_CANCELLED, "dependent %d cancelled (is %s)", i,
              cq_status_name(t.status));
        CHECK(strcmp(t.cancelled_by, root) == 0, "cause recorded");
        CHECK(t.error_category && strcmp(t.error_category, "dependency_failed") == 0,
              "category dependency_failed");
        cq_task_free(&t);
    }
    CHECK(status_of(bystander) == CQ_COMPLETED, "unrelated task untouched");

    /* Manual retry: back in its queue with a fresh budget; dependents restored. */
    REQUIRE_OK(cq_retry(db, root, &err), err);
    REQUIRE_OK(cq_get(db, root, &t, &err), err);
    CHECK(t.status == CQ_PENDING && t.attempt == 0 && strcmp(t.queue, q) == 0,
          "retried: %s attempt %d in %s", cq_status_name(t.status), t.attempt, t.queue);
    cq_task_free(&t);
    CHECK(status_of(child) == CQ_PENDING, "child restored");
    CHECK(status_of(grandchild) == CQ_PENDING, "grandchild restored");
    /* Retrying a pending task is refused. */
    CHECK(cq_retry(db, root, &err) == CT_ESTATE, "retry of pending refused");
}

static void test_permanent_and_corrupt_not_retried(void)
{
    char q[64];
    tu_unique_queue(db, "perm", q, sizeof q);
    ct_category cats[] = {CT_CAT_PERMANENT, CT_CAT_CORRUPT_INPUT};
    for (int i = 0; i < 2; i++) {
        cq_uuid id;
        REQUIRE(spawn(q, "convert-uvh5-to-ms", NULL, id) == CT_OK, "spawn");
        cq_task *t = NULL;
        size_t n = claim(q, 1, 60, &t);
        REQUIRE(n == 1, "claimed");
        cq_task after;
        ct_err err;
        REQUIRE_OK(cq_fail(db, id, t[0].claim_token, "truncated HDF5 file", cats[i], &after, &err),
                   err);
        CHECK(after.status == CQ_FAILED && after.attempt == 1, "%s fails at once on attempt 1 of 4",
              ct_category_name(cats[i]));
        CHECK(strcmp(after.error_category, ct_category_name(cats[i])) == 0, "category kept");
        CHECK(strcmp(after.error, "truncated HDF5 file") == 0, "message kept");
        cq_task_free(&after);
        cq_tasks_free(t, n);
    }
}

static void test_lease_expiry_reap_and_stale_holder(void)
{
    char q[64];
    tu_unique_queue(db, "lease", q, sizeof q);
    cq_uuid id;
    REQUIRE(spawn(q, "imaging", NULL, id) == CT_OK, "spawn");
    cq_task *t = NULL;
    size_t n = claim(q, 1, 0.3, &t);
    REQUIRE(n == 1, "claimed");
    cq_uuid stale_token;
    memcpy(stale_token, t[0].claim_token, sizeof stale_token);
    cq_tasks_free(t, n);
    tu_sleep(0.5);
    ct_err err;
    /* The holder's lease ran out: its complete and fail are refused. */
    CHECK(cq_complete(db, id, stale_token, NULL, &err) == CT_ELEASE_EXPIRED,
          "complete refused as lease_expired: %s", err.msg);
    CHECK(cq_fail(db, id, stale_token, "x", CT_CAT_TRANSIENT, NULL, &err) == CT_ELEASE_EXPIRED,
          "fail refused as lease_expired");
    bool alive = true;
    cq_uuid ids[1];
    memcpy(ids[0], id, sizeof ids[0]);
    CHECK_OK(cq_heartbeat(db, ids, &stale_token, 1, 30, &alive, &err), err);
    CHECK(!alive, "an expired lease cannot be revived by a heartbeat");
    CHECK(status_of(id) == CQ_CLAIMED, "still claimed until reaped");

    /* Reaping puts it back, attempt kept. */
    cq_reaped *r = NULL;
    size_t nr = 0;
    REQUIRE_OK(cq_reap(db, q, &r, &nr, &err), err);
    CHECK(nr == 1 && strcmp(r[0].id, id) == 0 && strcmp(r[0].action, "requeued") == 0,
          "reaped as requeued (%zu, %s)", nr, nr ? r[0].action : "-");
    free(r);
    cq_task got;
    REQUIRE_OK(cq_get(db, id, &got, &err), err);
    CHECK(got.status == CQ_PENDING && got.attempt == 1, "pending with attempt kept (%s, %d)",
          cq_status_name(got.status), got.attempt);
    CHECK(got.error_category && strcmp(got.error_category, "lease_expired") == 0,
          "category lease_expired");
    cq_task_free(&got);

    /* A new holder claims it; the stale holder is refused as not holder. */
    n = claim(q, 1, 60, &t);
    REQUIRE(n == 1 && t[0].attempt == 2, "reclaimed as attempt 2");
    CHECK(cq_complete(db, id, stale_token, NULL, &err) == CT_ENOT_HOLDER,
          "stale holder refused as not_lease_holder: %s", err.msg);
    CHECK(cq_release(db, id, stale_token, &err) == CT_ENOT_HOLDER, "stale release refused");
    json_t *result = json_pack("{s:i}", "x", 1);
    CHECK_OK(cq_complete(db, id, t[0].claim_token, result, &err), err);
    json_decref(result);
    cq_tasks_free(t, n);
    REQUIRE_OK(cq_get(db, id, &got, &err), err);
    CHECK(got.status == CQ_COMPLETED && json_integer_value(json_object_get(got.result, "x")) == 1,
          "new holder's result stored");
    cq_task_free(&got);
}

static void test_heartbeat_extends_lease(void)
{
    char q[64];
    tu_unique_queue(db, "hb", q, sizeof q);
    cq_uuid a, b;
    REQUIRE(spawn(q, "imaging", NULL, a) == CT_OK, "spawn");
    REQUIRE(spawn(q, "imaging", NULL, b) == CT_OK, "spawn");
    cq_task *t = NULL;
    size_t n = claim(q, 2, 0.6, &t);
    REQUIRE(n == 2, "claimed both");
    cq_uuid ids[2], toks[2];
    for (int i = 0; i < 2; i++) {
        memcpy(ids[i], t[i].id, sizeof ids[i]);
        memcpy(toks[i], t[i].claim_token, sizeof toks[i]);
    }
    cq_tasks_free(t, n);
    /* Lose the second one on purpose: a wrong token. */
    cq_uuid bad_toks[2];
    memcpy(bad_toks[0], toks[0], sizeof bad_toks[0]);
    snprintf(bad_toks[1], sizeof bad_toks[1], "00000000-0000-4000-8000-000000000000");
    tu_sleep(0.35);
    bool alive[2] = {false, true};
    ct_err err;
    REQUIRE_OK(cq_heartbeat(db, ids, bad_toks, 2, 0.6, alive, &err), err);
    CHECK(alive[0] && !alive[1], "one extended, one reported lost (%d, %d)", alive[0], alive[1]);
    tu_sleep(0.4); /* past the original 0.6 s lease, inside the extended one */
    CHECK_OK(cq_complete(db, ids[0], toks[0], NULL, &err), err);
    CHECK(cq_complete(db, ids[1], toks[1], NULL, &err) == CT_ELEASE_EXPIRED,
          "the other lease expired: %s", err.msg);
}

static void test_cancel_rules(void)
{
    char q[64];
    tu_unique_queue(db, "cancel", q, sizeof q);
    cq_uuid a, b, dependent;
    REQUIRE(spawn(q, "imaging", NULL, a) == CT_OK, "spawn");
    cq_task *t = NULL;
    size_t n = claim(q, 1, 60, &t);
    REQUIRE(n == 1, "claimed");
    ct_err err;
    CHECK(cq_cancel(db, a, NULL, &err) == CT_ESTATE, "cancelling a claimed task is refused");
    CHECK(status_of(a) == CQ_CLAIMED, "still claimed");
    CHECK_OK(cq_complete(db, a, t[0].claim_token, NULL, &err), err);
    cq_tasks_free(t, n);
    CHECK(cq_cancel(db, a, NULL, &err) == CT_ESTATE, "cancelling a completed task is refused");

    REQUIRE(spawn(q, "validation", NULL, b) == CT_OK, "spawn");
    cq_spawn_opts o = cq_spawn_defaults();
    const char *deps[] = {b};
    o.depends_on = deps;
    o.n_depends_on = 1;
    REQUIRE(spawn(q, "crossmatch", &o, dependent) == CT_OK, "spawn");
    CHECK_OK(cq_cancel(db, b, "operator says so", &err), err);
    CHECK(status_of(b) == CQ_CANCELLED, "pending task cancelled");
    CHECK(status_of(dependent) == CQ_CANCELLED, "its dependent cancelled too");
    CHECK_OK(cq_cancel(db, b, NULL, &err), err); /* idempotent */
    /* Spawning onto a cancelled dependency yields a cancelled task. */
    cq_uuid late;
    REQUIRE(spawn(q, "photometry", &o, late) == CT_OK, "spawn");
    CHECK(status_of(late) == CQ_CANCELLED, "spawned after its dependency died: cancelled");
    cq_uuid nobody;
    snprintf(nobody, sizeof nobody, "00000000-0000-4000-8000-000000000001");
    CHECK(cq_cancel(db, nobody, NULL, &err) == CT_ENOTFOUND, "unknown id: not found");
}

static void test_release_keeps_attempts(void)
{
    char q[64];
    tu_unique_queue(db, "release", q, sizeof q);
    cq_spawn_opts o = cq_spawn_defaults();
    o.max_retries = 0; /* one attempt: a spent attempt would dead-letter */
    cq_uuid id;
    REQUIRE(spawn(q, "imaging", &o, id) == CT_OK, "spawn");
    ct_err err;
    for (int round = 0; round < 3; round++) {
        cq_task *t = NULL;
        size_t n = claim(q, 1, 60, &t);
        REQUIRE(n == 1 && t[0].attempt == 1, "round %d: claimed as attempt 1 (%d)", round,
                n ? t[0].attempt : -1);
        CHECK_OK(cq_release(db, id, t[0].claim_token, &err), err);
        cq_tasks_free(t, n);
        cq_task got;
        REQUIRE_OK(cq_get(db, id, &got, &err), err);
        CHECK(got.status == CQ_PENDING && got.attempt == 0 && got.worker_id == NULL,
              "released: pending, attempt 0, no worker");
        cq_task_free(&got);
    }
    /* The single attempt is still there: a transient failure now dead-letters. */
    cq_task *t = NULL;
    size_t n = claim(q, 1, 60, &t);
    REQUIRE(n == 1, "claimed");
    cq_task after;
    REQUIRE_OK(cq_fail(db, id, t[0].claim_token, "x", CT_CAT_TRANSIENT, &after, &err), err);
    CHECK(after.status == CQ_FAILED, "no retries configured: failed");
    cq_task_free(&after);
    cq_tasks_free(t, n);
}

static void test_dependencies_hold_back(void)
{
    char q[64];
    tu_unique_queue(db, "deps", q, sizeof q);
    cq_uuid a, b, c;
    REQUIRE(spawn(q, "convert-uvh5-to-ms", NULL, a) == CT_OK, "spawn");
    REQUIRE(spawn(q, "convert-uvh5-to-ms", NULL, b) == CT_OK, "spawn");
    cq_spawn_opts o = cq_spawn_defaults();
    o.priority = 100; /* would be first if it were runnable */
    const char *deps[] = {a, b};
    o.depends_on = deps;
    o.n_depends_on = 2;
    REQUIRE(spawn(q, "create-mosaic", &o, c) == CT_OK, "spawn");
    cq_task *t = NULL;
    size_t n = claim(q, 10, 60, &t);
    CHECK(n == 2, "only the two independent tasks claimable (%zu)", n);
    ct_err err;
    /* Complete one: the mosaic still waits for the other. */
    CHECK_OK(cq_complete(db, t[0].id, t[0].claim_token, NULL, &err), err);
    cq_task *u = NULL;
    size_t m = claim(q, 10, 60, &u);
    CHECK(m == 0, "one dependency left: nothing claimable (%zu)", m);
    cq_tasks_free(u, m);
    CHECK_OK(cq_complete(db, t[1].id, t[1].claim_token, NULL, &err), err);
    cq_tasks_free(t, n);
    m = claim(q, 10, 60, &u);
    CHECK(m == 1 && strcmp(u[0].id, c) == 0, "dependent claimable once both completed");
    cq_tasks_free(u, m);
    /* A dependency that does not exist is refused at spawn. */
    const char *ghost[] = {"00000000-0000-4000-8000-00000000dead"};
    o.depends_on = ghost;
    o.n_depends_on = 1;
    o.queue = q;
    o.name = "x";
    cq_uuid id;
    CHECK(cq_spawn(db, &o, id, NULL, &err) == CT_EINVAL, "missing dependency refused: %s", err.msg);
}

static void test_timeout_enforced_by_reaper(void)
{
    char q[64];
    tu_unique_queue(db, "timeout", q, sizeof q);
    cq_spawn_opts o = cq_spawn_defaults();
    o.timeout_sec = 1;
    o.backoff_base_sec = 0;
    cq_uuid id;
    REQUIRE(spawn(q, "imaging", &o, id) == CT_OK, "spawn");
    cq_task *t = NULL;
    size_t n = claim(q, 1, 60, &t); /* long lease, short timeout */
    REQUIRE(n == 1, "claimed");
    cq_tasks_free(t, n);
    tu_sleep(1.2);
    cq_reaped *r = NULL;
    size_t nr = 0;
    ct_err err;
    REQUIRE_OK(cq_reap(db, q, &r, &nr, &err), err);
    CHECK(nr == 1 && strcmp(r[0].action, "retrying") == 0, "timed out: retrying (%zu)", nr);
    free(r);
    cq_task got;
    REQUIRE_OK(cq_get(db, id, &got, &err), err);
    CHECK(got.status == CQ_RETRYING && strcmp(got.error_category, "timeout") == 0,
          "category timeout");
    cq_task_free(&got);
}

static void test_reap_dead_letters_when_no_attempt_left(void)
{
    char q[64];
    tu_unique_queue(db, "reapdlq", q, sizeof q);
    cq_spawn_opts o = cq_spawn_defaults();
    o.max_retries = 0;
    cq_uuid id, dep;
    REQUIRE(spawn(q, "imaging", &o, id) == CT_OK, "spawn");
    cq_spawn_opts d = cq_spawn_defaults();
    const char *deps[] = {id};
    d.depends_on = deps;
    d.n_depends_on = 1;
    REQUIRE(spawn(q, "validation", &d, dep) == CT_OK, "spawn");
    cq_task *t = NULL;
    size_t n = claim(q, 1, 0.2, &t);
    REQUIRE(n == 1, "claimed");
    cq_tasks_free(t, n);
    tu_sleep(0.4);
    cq_reaped *r = NULL;
    size_t nr = 0;
    ct_err err;
    REQUIRE_OK(cq_reap(db, NULL, &r, &nr, &err), err);
    bool found = false;
    for (size_t i = 0; i < nr; i++)
        if (strcmp(r[i].id, id) == 0)
            found = strcmp(r[i].action, "dead_lettered") == 0;
    free(r);
    CHECK(found, "dead-lettered by the reaper");
    CHECK(status_of(id) == CQ_FAILED, "failed");
    CHECK(status_of(dep) == CQ_CANCELLED, "dependent cancelled");
}

static void test_complete_many_outcomes(void)
{
    char q[64];
    tu_unique_queue(db, "many", q, sizeof q);
    for (int i = 0; i < 3; i++) {
        cq_uuid id;
        REQUIRE(spawn(q, "imaging", NULL, id) == CT_OK, "spawn");
    }
    cq_task *t = NULL;
    size_t n = claim(q, 3, 60, &t);
    REQUIRE(n == 3, "claimed 3");
    cq_uuid ids[4], toks[4];
    for (int i = 0; i < 3; i++) {
        memcpy(ids[i], t[i].id, sizeof ids[i]);
        memcpy(toks[i], t[i].claim_token, sizeof toks[i]);
    }
    cq_tasks_free(t, n);
    snprintf(toks[1], sizeof toks[1], "00000000-0000-4000-8000-000000000002"); /* wrong */
    snprintf(ids[3], sizeof ids[3], "00000000-0000-4000-8000-000000000003");   /* unknown */
    snprintf(toks[3], sizeof toks[3], "00000000-0000-4000-8000-000000000004");
    json_t *res[4] = {json_pack("{s:i}", "n", 0), NULL, json_pack("{s:i}", "n", 2), NULL};
    cq_outcome out[4];
    ct_err err;
    REQUIRE_OK(cq_complete_many(db, ids, toks, res, 4, out, &err), err);
    CHECK(out[0] == CQ_OUT_COMPLETED && out[2] == CQ_OUT_COMPLETED, "two completed");
    CHECK(out[1] == CQ_OUT_NOT_HOLDER, "wrong token: not holder (%d)", out[1]);
    CHECK(out[3] == CQ_OUT_NOT_FOUND, "unknown id: not found (%d)", out[3]);
    cq_task got;
    REQUIRE_OK(cq_get(db, ids[2], &got, &err), err);
    CHECK(json_integer_value(json_object_get(got.result, "n")) == 2, "per-task result stored");
    cq_task_free(&got);
    CHECK(status_of(ids[1]) == CQ_CLAIMED, "refused task untouched");
    json_decref(res[0]);
    json_decref(res[2]);
}

static void test_refusals_have_distinct_codes(void)
{
    char q[64];
    tu_unique_queue(db, "bad", q, sizeof q);
    cq_spawn_opts o = cq_spawn_defaults();
    o.queue = "no-such-queue-registered";
    o.name = "imaging";
    cq_uuid id;
    ct_err err;
    CHECK(cq_spawn(db, &o, id, NULL, &err) == CT_EUNKNOWN_QUEUE, "unknown queue: %s", err.msg);
    o.queue = q;
    o.priority = -1;
    CHECK(cq_spawn(db, &o, id, NULL, &err) == CT_EINVAL, "negative priority: %s", err.msg);
    o.priority = 0;
    o.timeout_sec = 0;
    CHECK(cq_spawn(db, &o, id, NULL, &err) == CT_EINVAL, "zero timeout: %s", err.msg);
    o.timeout_sec = 10;
    char dlq[80];
    snprintf(dlq, sizeof dlq, "%s-dlq", q);
    o.queue = dlq;
    CHECK(cq_spawn(db, &o, id, NULL, &err) == CT_EINVAL, "no spawning into a DLQ: %s", err.msg);
    cq_task *t = NULL;
    size_t n = 0;
    CHECK(cq_claim(db, q, "w", 0, 60, NULL, &t, &n, &err) == CT_EINVAL, "claim limit 0");
    CHECK(cq_claim(db, q, "w", 1, -1, NULL, &t, &n, &err) == CT_EINVAL, "negative lease");
    CHECK(cq_complete(db, "nope", "nope", NULL, &err) == CT_EINVAL, "non-uuid refused locally");
    cq_task got;
    CHECK(cq_get(db, "00000000-0000-4000-8000-0000000000aa", &got, &err) == CT_ENOTFOUND,
          "not found");
}

/* Backpressure: a queue's waiting tasks stop at its limit for spawns from outside,
 * batches included (all or none), while a taken key still answers, claiming makes room,
 * and the engine's own spawns (commit_task's next steps) always go in. */
static void test_backpressure(void)
{
    char q[64];
    tu_unique_queue(db, "full", q, sizeof q);
    ct_err err;
    REQUIRE_OK(cq_set_max_pending(db, q, 3, &err), err);
    cq_uuid id;
    cq_spawn_opts keyed = cq_spawn_defaults();
    keyed.idempotency_key = "k";
    CHECK(spawn(q, "imaging", &keyed, id) == CT_OK && spawn(q, "imaging", NULL, id) == CT_OK &&
              spawn(q, "imaging", NULL, id) == CT_OK,
          "three spawns fit a limit of 3");
    cq_spawn_opts o = cq_spawn_defaults();
    o.queue = q;
    o.name = "imaging";
    CHECK(cq_spawn(db, &o, id, NULL, &err) == CT_EFULL && strstr(err.msg, "full") &&
              ct_code_category(err.code) == CT_CAT_TRANSIENT,
          "the fourth refused, transient: %s", err.msg);
    cq_uuid first;
    bool created = true;
    keyed.queue = q;
    keyed.name = "imaging";
    CHECK(cq_spawn(db, &keyed, first, &created, &err) == CT_OK && !created,
          "a taken key answers with its task when full: %s", err.msg);
    cq_task *t = NULL;
    REQUIRE(claim(q, 1, 60, &t) == 1, "claim one");
    /* Room for one: a batch of two is refused whole, then one fits. */
    cq_spawn_opts two[2] = {o, o};
    CHECK(cq_spawn_many(db, two, 2, NULL, &err) == CT_EFULL, "a batch past the limit refused");
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM absurd.tasks WHERE queue_name = '%s' AND status = 'pending'", q);
    char *n = tu_sql(sql);
    CHECK(strcmp(n, "2") == 0, "nothing of the refused batch written (%s pending)", n);
    free(n);
    CHECK_OK(cq_spawn_many(db, two, 1, NULL, &err), err);
    /* Full again; the claimed task's commit spawns its chain's next step regardless. */
    char spawns[512];
    snprintf(spawns, sizeof spawns, "[{\"queue\": \"%s\", \"name\": \"next-step\"}]", q);
    json_t *sp = json_loads(spawns, 0, NULL);
    CHECK_OK(cq_commit(db, t[0].id, t[0].claim_token, NULL, NULL, sp, false, NULL, &err), err);
    json_decref(sp);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM absurd.tasks WHERE queue_name = '%s' AND status = 'pending'", q);
    n = tu_sql(sql);
    CHECK(strcmp(n, "4") == 0, "the chain's step went in past the limit (%s pending)", n);
    free(n);
    cq_tasks_free(t, 1);
    REQUIRE_OK(cq_set_max_pending(db, q, 0, &err), err);
    CHECK(cq_spawn(db, &o, id, NULL, &err) == CT_OK, "limit 0: no limit");
    CHECK(cq_set_max_pending(db, q, -1, &err) == CT_EINVAL, "a negative limit refused");
}

static void test_spawn_many_is_atomic(void)
{
    char q[64];
    tu_unique_queue(db, "batch", q, sizeof q);
    ct_err lerr; /* two batches of 600 pass a limit of 1000: this test is about atomicity */
    REQUIRE_OK(cq_set_max_pending(db, q, 0, &lerr), lerr);
    enum { N = 600 };
    cq_spawn_opts *o = calloc(N, sizeof *o);
    cq_uuid *ids = calloc(N, sizeof *ids);
    for (int i = 0; i < N; i++) {
        o[i] = cq_spawn_defaults();
        o[i].queue = q;
        o[i].name = "imaging";
    }
    ct_err err;
    CHECK_OK(cq_spawn_many(db, o, N, ids, &err), err);
    CHECK(cq_uuid_valid(ids[0]) && cq_uuid_valid(ids[N - 1]), "ids returned");
    o[N - 5].queue = "not-registered-anywhere"; /* one bad spawn late in the batch */
    CHECK(cq_spawn_many(db, o, N, ids, &err) == CT_EUNKNOWN_QUEUE, "batch refused: %s", err.msg);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM absurd.tasks WHERE queue_name = '%s'", q);
    char *count = tu_sql(sql);
    CHECK(strcmp(count, "600") == 0, "only the first batch landed (%s)", count);
    free(count);
    /* The client is usable after a failed pipeline. */
    cq_stats *s = NULL;
    size_t ns = 0;
    CHECK_OK(cq_stats_get(db, q, &s, &ns, &err), err);
    CHECK(ns == 1 && s[0].pending == 600 && s[0].total == 600, "stats: 600 pending");
    free(s);
    free(o);
    free(ids);
}

static void test_notify_wakes_waiter(void)
{
    char q[64];
    tu_unique_queue(db, "notify", q, sizeof q);
    ct_err err;
    bool woken = true;
    /* Start listening, with nothing to hear. */
    CHECK_OK(cq_wait(db, q, 0.05, &woken, &err), err);
    CHECK(!woken, "no spawn, no wake-up");
    pid_t pid = fork();
    if (pid == 0) {
        tu_sleep(0.3);
        cq_client *other = tu_connect();
        cq_uuid id;
        cq_spawn_opts o = cq_spawn_defaults();
        o.queue = q;
        o.name = "imaging";
        int rc = cq_spawn(other, &o, id, NULL, &err) == CT_OK ? 0 : 1;
        cq_disconnect(other);
        _exit(rc);
    }
    double t0 = tu_now();
    CHECK_OK(cq_wait(db, q, 30, &woken, &err), err);
    double waited = tu_now() - t0;
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "spawner succeeded");
    /* A missed notification would time out after 30 s with woken false. */
    CHECK(woken, "woken by the spawn's NOTIFY (after %.3f s)", waited);
    CHECK(waited < 25, "woke long before the timeout (%.3f s)", waited);
    cq_task *t = NULL;
    size_t n = claim(q, 1, 60, &t);
    CHECK(n == 1, "the spawned task is there");
    cq_tasks_free(t, n);
}

static void test_reconnects_after_backend_loss(void)
{
    char q[64];
    tu_unique_queue(db, "reconn", q, sizeof q);
    cq_uuid id;
    REQUIRE(spawn(q, "imaging", NULL, id) == CT_OK, "spawn");
    /* Kill our own backend from another session, as a server restart would. */
    char *killed = tu_sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE application_name = 'contimg-test-victim'");
    free(killed);
    cq_client *victim = NULL;
    ct_err err;
    char ci[8192];
    snprintf(ci, sizeof ci, "%s application_name=contimg-test-victim", tu_conninfo());
    REQUIRE_OK(cq_connect(ci, &victim, &err), err);
    cq_task got;
    REQUIRE_OK(cq_get(victim, id, &got, &err), err);
    cq_task_free(&got);
    killed = tu_sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'contimg-test-victim'");
    CHECK(strcmp(killed, "1") == 0, "victim backend terminated (%s)", killed);
    free(killed);
    /* A read is retried over a new connection. */
    ct_code rc = cq_get(victim, id, &got, &err);
    CHECK(rc == CT_OK, "read after reconnect: %s", err.msg);
    if (rc == CT_OK)
        cq_task_free(&got);
    cq_disconnect(victim);
}

/* A spawn committed while a cascade is under way, two levels below the
 * failed task, is cancelled too (the cascade repeats until nothing changes). */
static void test_cascade_sees_concurrent_spawn(void)
{
    char q[64];
    tu_unique_queue(db, "race", q, sizeof q);
    cq_uuid a, b;
    REQUIRE(spawn(q, "calibration-solve", NULL, a) == CT_OK, "spawn");
    cq_spawn_opts o = cq_spawn_defaults();
    const char *deps[] = {a};
    o.depends_on = deps;
    o.n_depends_on = 1;
    REQUIRE(spawn(q, "calibration-apply", &o, b) == CT_OK, "spawn");
    /* Session X spawns T onto B inside an open transaction (it holds B FOR SHARE). */
    PGconn *x = PQconnectdb(tu_conninfo());
    REQUIRE(PQstatus(x) == CONNECTION_OK, "connect");
    char sql[512];
    snprintf(sql, sizeof sql,
             "BEGIN; SELECT task_id FROM absurd.spawn_task('%s', 'imaging', '{}', 0, 3, 3600, "
             "NULL, ARRAY['%s']::uuid[])",
             q, b);
    PGresult *r = PQexec(x, sql);
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK, "spawn in open transaction: %s",
            PQerrorMessage(x));
    cq_uuid t;
    snprintf(t, sizeof t, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    /* Meanwhile, an operator cancels A: its cascade waits on B's row lock. */
    pid_t pid = fork();
    if (pid == 0) {
        cq_client *c = tu_connect();
        ct_err e;
        int rc = cq_cancel(c, a, "operator", &e) == CT_OK ? 0 : 1;
        cq_disconnect(c);
        _exit(rc);
    }
    tu_sleep(0.5);
    PQclear(PQexec(x, "COMMIT"));
    PQfinish(x);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "cancel succeeded");
    CHECK(status_of(b) == CQ_CANCELLED, "direct dependent cancelled");
    CHECK(status_of(t) == CQ_CANCELLED, "concurrently spawned grandchild cancelled too (is %s)",
          cq_status_name(status_of(t)));
}

/* cancelled_by names the root cause, so retrying the root restores tasks
 * spawned onto, or re-cancelled through, an intermediate task. */
static void test_retry_restores_by_root_cause(void)
{
    char q[64];
    tu_unique_queue(db, "root", q, sizeof q);
    cq_uuid a, b, t;
    REQUIRE(spawn(q, "calibration-solve", NULL, a) == CT_OK, "spawn");
    cq_spawn_opts o = cq_spawn_defaults();
    const char *da[] = {a};
    o.depends_on = da;
    o.n_depends_on = 1;
    REQUIRE(spawn(q, "calibration-apply", &o, b) == CT_OK, "spawn");
    ct_err err;
    REQUIRE_OK(cq_cancel(db, a, NULL, &err), err);
    const char *db_[] = {b};
    o.depends_on = db_;
    REQUIRE(spawn(q, "imaging", &o, t) == CT_OK, "spawn onto the cascade-cancelled task");
    cq_task got;
    REQUIRE_OK(cq_get(db, t, &got, &err), err);
    CHECK(got.status == CQ_CANCELLED && strcmp(got.cancelled_by, a) == 0,
          "cancelled, naming the root %s (got %s)", a, got.cancelled_by);
    cq_task_free(&got);
    REQUIRE_OK(cq_retry(db, a, &err), err);
    CHECK(status_of(b) == CQ_PENDING && status_of(t) == CQ_PENDING,
          "retrying the root restores the whole chain");

    /* Two roots: T depends on X (root R1) and Y (root R2). */
    cq_uuid r1, r2, xx, yy, tt;
    REQUIRE(spawn(q, "r1", NULL, r1) == CT_OK, "spawn");
    REQUIRE(spawn(q, "r2", NULL, r2) == CT_OK, "spawn");
    const char *d1[] = {r1}, *d2[] = {r2};
    o.depends_on = d1;
    REQUIRE(spawn(q, "x", &o, xx) == CT_OK, "spawn");
    o.depends_on = d2;
    REQUIRE(spawn(q, "y", &o, yy) == CT_OK, "spawn");
    const char *dxy[] = {xx, yy};
    o.depends_on = dxy;
    o.n_depends_on = 2;
    REQUIRE(spawn(q, "t", &o, tt) == CT_OK, "spawn");
    REQUIRE_OK(cq_cancel(db, r1, NULL, &err), err);
    REQUIRE_OK(cq_cancel(db, r2, NULL, &err), err);
    REQUIRE_OK(cq_retry(db, r1, &err), err);
    CHECK(status_of(xx) == CQ_PENDING, "X restored");
    CHECK(status_of(tt) == CQ_CANCELLED, "T still blocked by Y's root");
    REQUIRE_OK(cq_retry(db, r2, &err), err);
    CHECK(status_of(yy) == CQ_PENDING, "Y restored");
    CHECK(status_of(tt) == CQ_PENDING, "T restored once both roots are retried (is %s)",
          cq_status_name(status_of(tt)));
}

/* After the server drops an idle connection, the next call reconnects
 * before sending: it succeeds instead of reporting an unknown outcome. */
static void test_idle_connection_loss_is_not_an_unknown_outcome(void)
{
    char q[64];
    tu_unique_queue(db, "idle", q, sizeof q);
    cq_client *c = NULL;
    ct_err err;
    char ci[8192];
    snprintf(ci, sizeof ci, "%s application_name=contimg-test-idle", tu_conninfo());
    REQUIRE_OK(cq_connect(ci, &c, &err), err);
    cq_spawn_opts o = cq_spawn_defaults();
    o.queue = q;
    o.name = "imaging";
    cq_uuid id;
    REQUIRE_OK(cq_spawn(c, &o, id, NULL, &err), err);
    free(tu_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'contimg-test-idle'"));
    tu_sleep(0.2);
    cq_task *t = NULL;
    size_t n = 0;
    ct_code rc = cq_claim(c, q, "w", 1, 60, NULL, &t, &n, &err);
    CHECK(rc == CT_OK && n == 1, "claim after an idle disconnect: %s", rc ? err.msg : "ok");
    cq_tasks_free(t, n);
    /* And a spawn batch, which has its own path. */
    free(tu_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'contimg-test-idle'"));
    tu_sleep(0.2);
    cq_spawn_opts batch[3] = {o, o, o};
    rc = cq_spawn_many(c, batch, 3, NULL, &err);
    CHECK(rc == CT_OK, "spawn batch after an idle disconnect: %s", rc ? err.msg : "ok");
    cq_disconnect(c);
}

/* jsonb keeps integers of any size; the client must not lose the params. */
static void test_huge_integer_params_survive(void)
{
    char q[64];
    tu_unique_queue(db, "bignum", q, sizeof q);
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT task_id FROM absurd.spawn_task('%s', 'imaging', "
             "'{\"x\": 123456789012345678901234567890, \"y\": 7}')",
             q);
    free(tu_sql(sql));
    cq_task *t = NULL;
    size_t n = claim(q, 1, 60, &t);
    REQUIRE(n == 1, "claimed");
    CHECK(t[0].params != NULL, "params decoded");
    CHECK(json_integer_value(json_object_get(t[0].params, "y")) == 7 ||
              json_real_value(json_object_get(t[0].params, "y")) == 7.0,
          "small values intact");
    CHECK(fabs(json_real_value(json_object_get(t[0].params, "x")) / 1.2345678901234568e29 - 1) <
              1e-12,
          "huge integer kept as a real");
    cq_tasks_free(t, n);
}

int main(void)
{
    db = tu_connect();
    RUN(test_idempotent_spawn);
    RUN(test_claim_order_and_fields);
    RUN(test_retry_backoff_then_dead_letter_cascade);
    RUN(test_permanent_and_corrupt_not_retried);
    RUN(test_lease_expiry_reap_and_stale_holder);
    RUN(test_heartbeat_extends_lease);
    RUN(test_cancel_rules);
    RUN(test_release_keeps_attempts);
    RUN(test_dependencies_hold_back);
    RUN(test_timeout_enforced_by_reaper);
    RUN(test_reap_dead_letters_when_no_attempt_left);
    RUN(test_complete_many_outcomes);
    RUN(test_refusals_have_distinct_codes);
    RUN(test_spawn_many_is_atomic);
    RUN(test_backpressure);
    RUN(test_notify_wakes_waiter);
    RUN(test_reconnects_after_backend_loss);
    RUN(test_cascade_sees_concurrent_spawn);
    RUN(test_retry_restores_by_root_cause);
    RUN(test_idle_connection_loss_is_not_an_unknown_outcome);
    RUN(test_huge_integer_params_survive);
    cq_disconnect(db);
    return tu_finish();
}
