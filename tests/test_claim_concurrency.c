/*
 * test_claim_concurrency.c -- 8 processes, each with its own connection,
 * claim and complete 10,000 tasks concurrently. Every task must be claimed
 * exactly once: no task twice (attempt stays 1, ids unique across workers)
 * and none left behind.
 */
#define _GNU_SOURCE
#include "queue.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { WORKERS = 8, TASKS = 10000 };

/* Worker w claims with batch size 1, 2, 5, ... so the mix varies. */
static const int batch_sizes[WORKERS] = {1, 2, 5, 10, 1, 20, 50, 100};

static int worker(const char *q, int w, int out_fd)
{
    cq_client *c = tu_connect();
    char name[32];
    snprintf(name, sizeof name, "worker-%d", w);
    ct_err err;
    int empty_rounds = 0;
    while (empty_rounds < 3) {
        cq_task *t = NULL;
        size_t n = 0;
        if (cq_claim(c, q, name, batch_sizes[w], 120, NULL, &t, &n, &err) != CT_OK) {
            fprintf(stderr, "%s: claim: %s\n", name, err.msg);
            return 1;
        }
        if (n == 0) {
            /* Others may hold locks on the last rows for a moment. */
            empty_rounds++;
            tu_sleep(0.05);
            continue;
        }
        empty_rounds = 0;
        cq_uuid *ids = calloc(n, sizeof *ids), *toks = calloc(n, sizeof *toks);
        cq_outcome *out = calloc(n, sizeof *out);
        for (size_t i = 0; i < n; i++) {
            memcpy(ids[i], t[i].id, sizeof ids[i]);
            memcpy(toks[i], t[i].claim_token, sizeof toks[i]);
            char line[CQ_UUID_LEN + 2];
            snprintf(line, sizeof line, "%s\n", t[i].id);
            if (write(out_fd, line, CQ_UUID_LEN + 1) != CQ_UUID_LEN + 1)
                return 1;
        }
        ct_code rc = cq_complete_many(c, ids, toks, NULL, n, out, &err);
        int bad = rc != CT_OK;
        for (size_t i = 0; i < n && !bad; i++)
            bad = out[i] != CQ_OUT_COMPLETED;
        free(ids);
        free(toks);
        free(out);
        cq_tasks_free(t, n);
        if (bad) {
            fprintf(stderr, "%s: complete failed: %s\n", name, rc ? err.msg : "an outcome");
            return 1;
        }
    }
    cq_disconnect(c);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_ten_thousand_claimed_exactly_once(void)
{
    cq_client *c = tu_connect();
    char q[64];
    tu_unique_queue(c, "conc", q, sizeof q);
    cq_spawn_opts *o = calloc(TASKS, sizeof *o);
    for (int i = 0; i < TASKS; i++) {
        o[i] = cq_spawn_defaults();
        o[i].queue = q;
        o[i].name = "convert-uvh5-to-ms";
        o[i].priority = i % 7;
    }
    ct_err err;
    ct_code rc = cq_set_max_pending(c, q, 0, &err); /* 10000 waiting on purpose */
    if (rc == CT_OK)
        rc = cq_spawn_many(c, o, TASKS, NULL, &err);
    free(o);
    REQUIRE(rc == CT_OK, "spawn: %s", err.msg);

    char path[WORKERS][64];
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        snprintf(path[w], sizeof path[w], "/tmp/contimg-conc-%ld-%d", (long)getpid(), w);
        pids[w] = fork();
        if (pids[w] == 0) {
            FILE *f = fopen(path[w], "w");
            _exit(f ? worker(q, w, fileno(f)) : 1);
        }
    }
    int ok_workers = 0;
    for (int w = 0; w < WORKERS; w++) {
        int st = 0;
        waitpid(pids[w], &st, 0);
        ok_workers += WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    CHECK(ok_workers == WORKERS, "all %d workers finished cleanly (%d)", WORKERS, ok_workers);

    /* Gather every claimed id. */
    char **ids = calloc(TASKS * 2, sizeof *ids);
    size_t n = 0;
    int per_worker_nonzero = 0;
    for (int w = 0; w < WORKERS; w++) {
        FILE *f = fopen(path[w], "r");
        char line[64];
        size_t before = n;
        while (f && fgets(line, sizeof line, f) && n < TASKS * 2) {
            line[strcspn(line, "\n")] = '\0';
            ids[n++] = strdup(line);
        }
        per_worker_nonzero += n > before;
        if (f)
            fclose(f);
        unlink(path[w]);
    }
    CHECK(n == TASKS, "%zu claims for %d tasks", n, TASKS);
    qsort(ids, n, sizeof *ids, cmp_str);
    size_t dups = 0;
    for (size_t i = 1; i < n; i++)
        dups += strcmp(ids[i - 1], ids[i]) == 0;
    CHECK(dups == 0, "no task claimed twice (%zu duplicates)", dups);
    CHECK(per_worker_nonzero >= 2, "work was shared (%d workers claimed)", per_worker_nonzero);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);

    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FILTER (WHERE status = 'completed' AND attempt = 1) || '/' || "
             "count(*) FROM absurd.tasks WHERE queue_name = '%s'",
             q);
    char *counts = tu_sql(sql);
    CHECK(strcmp(counts, "10000/10000") == 0,
          "every task completed on its first and only claim (%s)", counts);
    free(counts);
    cq_disconnect(c);
}

int main(void)
{
    RUN(test_ten_thousand_claimed_exactly_once);
    return tu_finish();
}
