/* cmd_ingest.c -- `contimg ingest`: complete subband groups become convert tasks. */
#define _GNU_SOURCE
#include "calibration.h"
#include "chain.h"
#include "cli_util.h"
#include "commands.h"
#include "fsutil.h"
#include "groups.h"
#include "stages.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: contimg ingest DIR [--watch] [--interval SECONDS] [--chain NAME]\n\n"
    "Finds the observations in DIR whose 16 subband files are all written and spawns\n"
    "the first task of their chain (convert-uvh5-to-ms), keyed by the group id: a\n"
    "group already ingested spawns nothing new. Outputs are planned under\n"
    "CONTIMG_PRODUCTS_DIR. When the queue is full (its waiting tasks at its limit:\n"
    "contimg queue limit) ingest waits for room, 1 s doubling to 30 s, and says so.\n"
    "A group that cannot be spawned for what it is (outside CONTIMG_DATA_ROOTS, a\n"
    "name that is not UTF-8, a damaged header) is skipped with one line on stderr and\n"
    "the rest go on; exit 2 when one was (0 otherwise), --watch keeps watching.\n\n"
    "  --watch               keep scanning every interval until SIGINT/SIGTERM\n"
    "  --interval SECONDS    time between scans with --watch (default 10)\n"
    "  --chain NAME          the chain to start (default CONTIMG_CHAIN, quick); auto: a\n"
    "                        calibrator's transit (the catalogue, within\n"
    "                        CONTIMG_CALIBRATOR_RADIUS_DEG of the pointing) on the\n"
    "                        \"calibrator\" chain, every other group on \"target\"\n"
    "  --tolerance SECONDS   how far apart a group's files may start (default 60)";

typedef struct ingest_ctx {
    const ct_config *cfg;
    cq_client *db;
    const char *dir;
    const char *chain;
    const char *products_dir; /* absolute */
    const char *first_task;
    const json_t *first_config;
    const ct_chains *chains;
    bool auto_chain; /* --chain auto: calibrator transits on "calibrator", the rest on "target" */
    double tolerance;
    long spawned, existing, incomplete, skipped;
} ingest_ctx;

static volatile sig_atomic_t stop_watching = 0;
static void on_stop(int sig)
{
    stop_watching = sig;
}

static ct_code spawn_group(ingest_ctx *x, const ct_group *g, ct_err *err)
{
    const char *files[CT_SUBBANDS];
    for (int s = 0; s < CT_SUBBANDS; s++)
        files[s] = g->subband[s]->path;
    ct_code rc = ct_config_check_paths(x->cfg, files, CT_SUBBANDS, err);
    if (rc != CT_OK)
        return rc;
    char why[160] = "";
    if (x->auto_chain) {
        /* A calibrator transit (the catalogue, any subband's header) or not. */
        const ct_calibrator *cal = NULL;
        double sep = NAN;
        if ((rc = ct_calibrator_in_field(files[0], x->cfg->calibrator_radius_deg, &cal, &sep,
                                         err)) != CT_OK ||
            (rc = ct_chain_first(x->chains, cal ? "calibrator" : "target", &x->first_task,
                                 &x->first_config, err)) != CT_OK)
            return rc;
        x->chain = cal ? "calibrator" : "target";
        if (strcmp(x->first_task, CT_TASK_CONVERT) != 0)
            return ct_fail(err, CT_EINVAL, "chain \"%s\" starts with %s, not " CT_TASK_CONVERT,
                           x->chain, x->first_task);
        if (cal)
            snprintf(why, sizeof why, ": %s transits %.2f deg from the pointing", cal->name, sep);
    }
    json_t *params =
        ct_stage_convert_params(x->chain, x->first_config, g->id, files, x->products_dir);
    if (params == NULL) /* JSON holds UTF-8 only: such a group would lose its files */
        return ct_fail(err, CT_EINVAL, "a file name is not valid UTF-8 (%s)", files[0]);
    cq_spawn_opts o = cq_spawn_defaults();
    o.queue = x->cfg->queue;
    o.name = x->first_task;
    o.params = params;
    o.idempotency_key = g->id;
    o.max_retries = x->cfg->max_retries;
    o.timeout_sec = x->cfg->task_timeout_sec;
    o.backoff_base_sec = x->cfg->backoff_base_sec;
    o.backoff_max_sec = x->cfg->backoff_max_sec;
    cq_uuid id;
    bool created = false;
    /* Backpressure: a full queue is waited out (the engine claims, room comes), never a
     * failure -- the observation on disk is not lost, only late. */
    for (double wait = 1;
         (rc = cq_spawn(x->db, &o, id, &created, err)) == CT_EFULL && !stop_watching;
         wait = wait * 2 > 30 ? 30 : wait * 2) {
        printf("full      queue %s: group %s waits %.0f s (%s)\n", o.queue, g->id, wait, err->msg);
        fflush(stdout);
        for (double slept = 0; slept < wait && !stop_watching; slept += 0.1)
            nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    }
    json_decref(params);
    if (rc != CT_OK)
        return rc;
    if (created) {
        x->spawned++;
        printf("spawned   %s %s for group %s (chain %s%s)\n", x->first_task, id, g->id, x->chain,
               why);
    } else {
        x->existing++;
        /* The key is the observation's time stamp: the same group in another directory (a
         * copy, a second correlator dump) is the task already queued -- said, not merged
         * in silence. */
        cq_task t;
        const char *first = NULL;
        if (cq_get(x->db, id, &t, err) == CT_OK) {
            first = json_string_value(
                json_array_get(json_object_get(json_object_get(t.params, "inputs"), "files"), 0));
            const size_t n = strlen(x->dir);
            if (first && !(strncmp(first, x->dir, n) == 0 && first[n] == '/' &&
                           strchr(first + n + 1, '/') == NULL))
                fprintf(stderr,
                        "contimg: ingest: group %s in %s is already queued from another "
                        "directory (%s, task %s); not spawned again\n",
                        g->id, x->dir, first, id);
            cq_task_free(&t);
        }
    }
    return CT_OK;
}

static ct_code scan_once(ingest_ctx *x, ct_err *err)
{
    ct_group *groups = NULL;
    size_t n = 0;
    ct_code rc = ct_groups_scan(x->dir, x->tolerance, &groups, &n, err);
    if (rc != CT_OK)
        return rc;
    for (size_t i = 0; i < n && rc == CT_OK; i++) {
        if (ct_group_complete(&groups[i])) {
            rc = spawn_group(x, &groups[i], err);
            /* A group that cannot be spawned for what it is (a file outside the data roots,
             * a name that is not UTF-8, a damaged header) is skipped, said, and left on disk;
             * the groups beside it go on. Trouble with the database stops the scan. */
            if (rc == CT_EINVAL || rc == CT_EIO || rc == CT_ENOTFOUND) {
                fprintf(stderr, "contimg: ingest: skipped group %s: %s\n", groups[i].id, err->msg);
                x->skipped++;
                rc = CT_OK;
            }
        } else {
            char why[512];
            ct_group_problems(&groups[i], why, sizeof why);
            printf("waiting   group %s: %s\n", groups[i].id, why);
            x->incomplete++;
        }
    }
    ct_groups_free(groups, n);
    fflush(stdout);
    return rc;
}

int cmd_ingest(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {
        {"watch", no_argument, NULL, 'w'},       {"interval", required_argument, NULL, 'i'},
        {"chain", required_argument, NULL, 'c'}, {"tolerance", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},        {0, 0, 0, 0}};
    ingest_ctx x = {.cfg = cfg, .chain = cfg->chain, .tolerance = 60};
    bool watch = false;
    double interval = 10;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': printf("%s\n", usage); return EXIT_OK;
        case 'w': watch = true; break;
        case 'c': x.chain = optarg; break;
        case 'i':
            if (!cli_parse_double(optarg, 0.01, 86400, &interval))
                return cli_usage_error("--interval must be 0.01..86400 seconds, got '%s'", optarg);
            break;
        case 't':
            if (!cli_parse_double(optarg, 0.001, 86400, &x.tolerance))
                return cli_usage_error("--tolerance must be 0.001..86400 seconds, got '%s'",
                                       optarg);
            break;
        case ':': return cli_usage_error("ingest: %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("ingest: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("ingest: expected one directory (see contimg ingest --help)");
    /* Tasks carry absolute paths: the engine may run elsewhere (srun, another node). */
    char dir[CT_PATH_MAX], products[CT_PATH_MAX];
    ct_err err;
    if (ct_absolute_path(argv[optind], dir, sizeof dir, &err) != CT_OK ||
        ct_absolute_path(cfg->products_dir, products, sizeof products, &err) != CT_OK)
        return cli_report(&err);
    x.dir = dir;
    x.products_dir = products;
    ct_chains *chains = NULL;
    if (ct_chains_load(cfg->chains_file, &chains, &err) != CT_OK)
        return cli_report(&err);
    x.chains = chains;
    x.auto_chain = strcmp(x.chain, "auto") == 0;
    ct_code rc = ct_chain_first(chains, x.auto_chain ? "target" : x.chain, &x.first_task,
                                &x.first_config, &err);
    if (rc == CT_OK && x.auto_chain)
        rc = ct_chain_first(chains, "calibrator", &x.first_task, &x.first_config, &err);
    if (rc == CT_OK && strcmp(x.first_task, CT_TASK_CONVERT) != 0)
        rc = ct_fail(&err, CT_EINVAL,
                     "chain \"%s\" starts with %s; ingest starts chains that "
                     "begin with " CT_TASK_CONVERT,
                     x.chain, x.first_task);
    if (rc != CT_OK) {
        ct_chains_free(chains);
        return cli_report(&err);
    }
    if (cli_connect(cfg, &x.db, &err) != CT_OK) {
        ct_chains_free(chains);
        return cli_report(&err);
    }
    if (watch) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL);
    }
    do {
        x.incomplete = 0;
        rc = scan_once(&x, &err);
        if (rc == CT_ECONNECT && watch) { /* the database comes back; keep watching */
            fprintf(stderr, "contimg: ingest: %s\n", err.msg);
            rc = CT_OK;
        }
        for (double slept = 0; watch && rc == CT_OK && !stop_watching && slept < interval;
             slept += 0.1) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    } while (watch && rc == CT_OK && !stop_watching);
    cq_disconnect(x.db);
    ct_chains_free(chains);
    if (rc != CT_OK)
        return cli_report(&err);
    printf("ingest %s: %ld spawned, %ld already queued, %ld incomplete, %ld skipped\n", x.dir,
           x.spawned, x.existing, x.incomplete, x.skipped);
    return x.skipped ? EXIT_USAGE : EXIT_OK;
}
