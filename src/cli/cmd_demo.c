/*
 * cmd_demo.c -- `contimg demo`: the main job until the pipeline stages exist.
 *
 * Spawns the seed's standard chain for one observation group as a workflow
 * of dependent tasks, then works it as a worker would: claim, heartbeat,
 * complete; one task fails transiently on its first attempt and comes back
 * after its backoff. Ends with the queue-stats table.
 */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const standard_chain[] = {
    "convert-uvh5-to-ms", "calibration-solve", "calibration-apply", "imaging",
    "validation",         "crossmatch",        "photometry",
};
enum { CHAIN_LEN = sizeof standard_chain / sizeof standard_chain[0] };

/* A random v4 UUID for the workflow id (not security-relevant). */
static void make_uuid(cq_uuid out)
{
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(b, 1, sizeof b, f) : 0;
    if (f)
        fclose(f);
    for (size_t i = got; i < sizeof b; i++)
        b[i] = (unsigned char)(rand() ^ (int)time(NULL));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, sizeof(cq_uuid),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

static ct_code spawn_chain(cq_client *c, const ct_config *cfg, const char *group,
                           const cq_uuid workflow, cq_uuid ids[CHAIN_LEN], ct_err *err)
{
    for (int i = 0; i < CHAIN_LEN; i++) {
        char key[CQ_KEY_MAX];
        snprintf(key, sizeof key, "demo:%s:%s", workflow, standard_chain[i]);
        json_t *params =
            json_pack("{s:{}, s:{s:s}, s:{}}", "config", "inputs", "group_id", group, "outputs");
        cq_spawn_opts o = cq_spawn_defaults();
        o.queue = cfg->queue;
        o.name = standard_chain[i];
        o.params = params;
        o.idempotency_key = key;
        o.workflow_id = workflow;
        o.backoff_base_sec = 0.5;
        const char *dep = i > 0 ? ids[i - 1] : NULL;
        o.depends_on = dep ? &dep : NULL;
        o.n_depends_on = dep ? 1 : 0;
        ct_code rc = cq_spawn(c, &o, ids[i], NULL, err);
        json_decref(params);
        if (rc != CT_OK)
            return rc;
        printf("spawned  %-20s %s%s%s\n", standard_chain[i], ids[i], dep ? "  after " : "",
               dep ? standard_chain[i - 1] : "");
    }
    return CT_OK;
}

/* Works the workflow until every task of it is completed. */
static ct_code work(cq_client *c, const ct_config *cfg, const cq_uuid workflow, ct_err *err)
{
    char worker[300];
    cli_worker_id(worker, sizeof worker);
    int done = 0;
    bool failed_once = false;
    while (done < CHAIN_LEN) {
        cq_task *t = NULL;
        size_t n = 0;
        ct_code rc = cq_claim(c, cfg->queue, worker, 4, cfg->lease_sec, NULL, &t, &n, err);
        if (rc != CT_OK)
            return rc;
        for (size_t i = 0; i < n && rc == CT_OK; i++) {
            if (strcmp(t[i].workflow_id, workflow) != 0) {
                /* Somebody else's task: hand it back untouched. */
                rc = cq_release(c, t[i].id, t[i].claim_token, err);
                continue;
            }
            printf("claimed  %-20s attempt %d\n", t[i].name, t[i].attempt);
            if (!failed_once && strcmp(t[i].name, "validation") == 0) {
                failed_once = true;
                cq_task after;
                rc = cq_fail(c, t[i].id, t[i].claim_token,
                             "demo: simulated transient failure (disk busy)", CT_CAT_TRANSIENT,
                             &after, err);
                if (rc == CT_OK) {
                    char when[40];
                    cli_format_time(after.available_at, when, sizeof when);
                    printf("failed   %-20s transient; retried from %s (backoff)\n", t[i].name,
                           when);
                    cq_task_free(&after);
                }
                continue;
            }
            json_t *result =
                json_pack("{s:s, s:{s:s}, s:s, s:[]}", "status", "success", "outputs", "stage",
                          t[i].name, "message", "demo task completed", "errors");
            rc = cq_complete(c, t[i].id, t[i].claim_token, result, err);
            json_decref(result);
            if (rc == CT_OK) {
                printf("complete %-20s\n", t[i].name);
                done++;
            }
        }
        cq_tasks_free(t, n);
        if (rc != CT_OK)
            return rc;
        if (n == 0 && done < CHAIN_LEN) {
            bool woken = false;
            if ((rc = cq_wait(c, cfg->queue, cfg->poll_interval_sec, &woken, err)) != CT_OK)
                return rc;
        }
    }
    return CT_OK;
}

int cmd_demo(int argc, char **argv, const ct_config *cfg)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: contimg demo\n\n"
               "Spawns the standard chain (%s ... %s) for one simulated\n"
               "observation group as a workflow, works it through the queue (claim,\n"
               "complete, one transient failure retried after backoff) and prints the\n"
               "queue statistics. Needs a running, migrated database.\n",
               standard_chain[0], standard_chain[CHAIN_LEN - 1]);
        return EXIT_OK;
    }
    if (argc > 1)
        return cli_usage_error("demo: unexpected argument '%s'", argv[1]);
    cq_client *c = NULL;
    ct_err err;
    cq_uuid workflow, ids[CHAIN_LEN];
    make_uuid(workflow);
    char group[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(group, sizeof group, "%Y-%m-%dT%H:%M:%S", &tm);
    if (cli_connect(cfg, &c, &err) != CT_OK)
        return cli_report(&err);
    printf("workflow %s for observation group %s on queue %s\n", workflow, group, cfg->queue);
    if (spawn_chain(c, cfg, group, workflow, ids, &err) != CT_OK ||
        work(c, cfg, workflow, &err) != CT_OK) {
        cq_disconnect(c);
        return cli_report(&err);
    }
    cq_disconnect(c);
    printf("\n");
    char *stats_argv[] = {"queue", "stats", NULL};
    return cmd_queue(2, stats_argv, cfg);
}
