/* cmd_queue.c -- `contimg queue stats|create|limit` and `contimg reap`. */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* --json / --help / --queue parsing shared by these commands. */
static int parse(int argc, char **argv, const char *usage, bool *json, const char **queue)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"queue", required_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ch == 'h') {
            printf("%s\n", usage);
            return EXIT_OK;
        } else if (ch == 'j') {
            *json = true;
        } else if (ch == 'q' && queue != NULL) {
            *queue = optarg;
        } else {
            return cli_usage_error("%s: %s '%s'; see --help", argv[0],
                                   ch == ':' ? "option needs a value" : "unknown option",
                                   argv[optind - 1]);
        }
    }
    return -1;
}

static json_t *real_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

static void fmt_sec(double v, char *out, size_t size)
{
    if (isnan(v))
        snprintf(out, size, "-");
    else
        snprintf(out, size, "%.3f", v);
}

static int queue_stats(int argc, char **argv, const ct_config *cfg)
{
    bool json = false;
    int rc = parse(argc, argv,
                   "usage: contimg queue stats [QUEUE] [--json]\n\n"
                   "Task counts by status, oldest pending task, mean wait and run times,\n"
                   "for one queue or every registered queue (QUEUE-dlq holds dead letters).",
                   &json, NULL);
    if (rc >= 0)
        return rc;
    const char *queue = NULL;
    if (optind < argc)
        queue = argv[optind++];
    if (optind < argc)
        return cli_usage_error("queue stats: unexpected argument '%s'", argv[optind]);
    if (queue != NULL && !cq_name_valid(queue))
        return cli_usage_error("queue name '%.60s' is invalid", queue);
    cq_client *c = NULL;
    ct_err err;
    cq_stats *s = NULL;
    size_t n = 0;
    if (cli_connect(cfg, &c, &err) != CT_OK || cq_stats_get(c, queue, &s, &n, &err) != CT_OK) {
        cq_disconnect(c);
        return cli_report(&err);
    }
    if (json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(
                a, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}",
                             "queue_name", s[i].queue, "pending", (json_int_t)s[i].pending,
                             "claimed", (json_int_t)s[i].claimed, "retrying",
                             (json_int_t)s[i].retrying, "completed", (json_int_t)s[i].completed,
                             "failed", (json_int_t)s[i].failed, "cancelled",
                             (json_int_t)s[i].cancelled, "total", (json_int_t)s[i].total,
                             "oldest_pending_sec", real_or_null(s[i].oldest_pending_sec),
                             "avg_wait_sec", real_or_null(s[i].avg_wait_sec), "avg_execution_sec",
                             real_or_null(s[i].avg_execution_sec)));
        cli_print_json(a);
    } else {
        printf("%-24s %8s %8s %8s %9s %7s %9s %7s %12s %10s %10s\n", "QUEUE", "PENDING", "CLAIMED",
               "RETRYING", "COMPLETED", "FAILED", "CANCELLED", "TOTAL", "OLDEST_PEND", "AVG_WAIT",
               "AVG_EXEC");
        for (size_t i = 0; i < n; i++) {
            char oldest[32], wait[32], exec[32];
            fmt_sec(s[i].oldest_pending_sec, oldest, sizeof oldest);
            fmt_sec(s[i].avg_wait_sec, wait, sizeof wait);
            fmt_sec(s[i].avg_execution_sec, exec, sizeof exec);
            printf("%-24s %8ld %8ld %8ld %9ld %7ld %9ld %7ld %12s %10s %10s\n", s[i].queue,
                   s[i].pending, s[i].claimed, s[i].retrying, s[i].completed, s[i].failed,
                   s[i].cancelled, s[i].total, oldest, wait, exec);
        }
    }
    free(s);
    cq_disconnect(c);
    return EXIT_OK;
}

static int queue_create(int argc, char **argv, const ct_config *cfg)
{
    bool json = false;
    int rc = parse(argc, argv,
                   "usage: contimg queue create QUEUE\n\n"
                   "Registers a queue and its dead-letter queue QUEUE-dlq. Idempotent.",
                   &json, NULL);
    if (rc >= 0)
        return rc;
    if (optind + 1 != argc)
        return cli_usage_error("queue create: exactly one queue name is required");
    const char *queue = argv[optind];
    if (!cq_name_valid(queue))
        return cli_usage_error("queue name '%.60s' is invalid", queue);
    cq_client *c = NULL;
    ct_err err;
    if (cli_connect(cfg, &c, &err) != CT_OK || cq_create_queue(c, queue, &err) != CT_OK) {
        cq_disconnect(c);
        return cli_report(&err);
    }
    printf("queue %s (dead letters: %s-dlq)\n", queue, queue);
    cq_disconnect(c);
    return EXIT_OK;
}

static int queue_limit(int argc, char **argv, const ct_config *cfg)
{
    bool json = false;
    int rc = parse(argc, argv,
                   "usage: contimg queue limit QUEUE N\n\n"
                   "Backpressure: at most N tasks of QUEUE may wait to be claimed (pending or\n"
                   "retrying); spawns beyond it from outside (task spawn, ingest, the HTTP API)\n"
                   "are refused (exit 6; HTTP 503) and ingest waits. The engine's own spawns, the\n"
                   "next steps of chains, always go in. 0: no limit. A new queue's is 1000.",
                   &json, NULL);
    if (rc >= 0)
        return rc;
    long n = 0;
    if (optind + 2 != argc || !cli_parse_long(argv[optind + 1], 0, 1000000000, &n))
        return cli_usage_error("queue limit: want QUEUE and a whole number N >= 0");
    const char *queue = argv[optind];
    cq_client *c = NULL;
    ct_err err;
    if (cli_connect(cfg, &c, &err) != CT_OK || cq_set_max_pending(c, queue, n, &err) != CT_OK) {
        cq_disconnect(c);
        return cli_report(&err);
    }
    if (n)
        printf("queue %s: at most %ld tasks waiting\n", queue, n);
    else
        printf("queue %s: no limit on waiting tasks\n", queue);
    cq_disconnect(c);
    return EXIT_OK;
}

int cmd_queue(int argc, char **argv, const ct_config *cfg)
{
    static const cli_command sub[] = {
        {"stats", "task counts and timings per queue", queue_stats},
        {"create", "register a queue and its dead-letter queue", queue_create},
        {"limit", "backpressure: the most tasks a queue may hold waiting", queue_limit},
        {NULL, NULL, NULL},
    };
    return cli_dispatch("contimg queue", "usage: contimg queue COMMAND", sub, argc, argv, cfg);
}

int cmd_reap(int argc, char **argv, const ct_config *cfg)
{
    bool json = false;
    const char *queue = NULL;
    int rc = parse(argc, argv,
                   "usage: contimg reap [--queue Q] [--json]\n\n"
                   "Returns claimed tasks whose lease expired to their queue (attempt kept;\n"
                   "dead-lettered when no attempt is left) and fails tasks that ran past\n"
                   "their timeout with category timeout. Prints what it did.",
                   &json, &queue);
    if (rc >= 0)
        return rc;
    if (optind < argc)
        return cli_usage_error("reap: unexpected argument '%s'", argv[optind]);
    if (queue != NULL && !cq_name_valid(queue))
        return cli_usage_error("queue name '%.60s' is invalid", queue);
    cq_client *c = NULL;
    ct_err err;
    cq_reaped *r = NULL;
    size_t n = 0;
    if (cli_connect(cfg, &c, &err) != CT_OK || cq_reap(c, queue, &r, &n, &err) != CT_OK) {
        cq_disconnect(c);
        return cli_report(&err);
    }
    if (json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(
                a, json_pack("{s:s, s:s}", "task_id", r[i].id, "action", r[i].action));
        cli_print_json(a);
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s %s\n", r[i].id, r[i].action);
        printf("reaped %zu task%s\n", n, n == 1 ? "" : "s");
    }
    free(r);
    cq_disconnect(c);
    return EXIT_OK;
}
