/* cmd_schedule.c -- `contimg schedule add|list|remove|tick` (schedules.h). */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "schedules.h"
#include "stages.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static int schedule_add(int argc, char **argv, const ct_config *cfg)
{
    static const char usage[] =
        "usage: contimg schedule add NAME --cron EXPR --task TASK_NAME [--queue Q]\n"
        "                            [--params JSON|@FILE|-] [--disabled]\n\n"
        "Adds (or replaces) a schedule: one TASK_NAME task into Q (default\n"
        "$ABSURD_QUEUE_NAME) each time EXPR comes due, with PARAMS and\n"
        "{\"schedule\": {\"name\", \"due\"}}, exactly once per due time however many\n"
        "tickers run (contimg serve, a long-running engine, contimg schedule tick).\n"
        "EXPR: five fields, minute hour day-of-month month day-of-week, UTC (e.g.\n"
        "'30 14 * * *' daily at 14:30 UTC), or @hourly, @daily, @weekly, @monthly, @yearly.";
    static const struct option opts[] = {
        {"cron", required_argument, NULL, 'c'},  {"task", required_argument, NULL, 't'},
        {"queue", required_argument, NULL, 'q'}, {"params", required_argument, NULL, 'p'},
        {"disabled", no_argument, NULL, 'd'},    {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {0, 0, 0, 0}};
    const char *cron = NULL, *task = NULL, *queue = cfg->queue, *params_s = "{}";
    bool enabled = true, json = false;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': printf("%s\n", usage); return EXIT_OK;
        case 'c': cron = optarg; break;
        case 't': task = optarg; break;
        case 'q': queue = optarg; break;
        case 'p': params_s = optarg; break;
        case 'd': enabled = false; break;
        case 'j': json = true; break;
        case ':': return cli_usage_error("schedule add: %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("schedule add: unknown option '%s'; see --help",
                                   argv[optind - 1]);
        }
    }
    if (optind + 1 != argc || !cron || !task)
        return cli_usage_error("schedule add: NAME, --cron and --task are required; see --help");
    json_t *params = NULL;
    const int bad = cli_parse_json_object("--params", params_s, &params);
    if (bad >= 0)
        return bad;
    cq_client *c = NULL;
    ct_err err;
    json_t *row = NULL;
    int rc = EXIT_OK;
    /* What each firing will spawn, checked now as a spawn is (stored as given). */
    json_t *checked = json_deep_copy(params);
    char ignored[CQ_KEY_MAX];
    const ct_code admitted = ct_stage_admit(task, checked, cfg, ignored, sizeof ignored, &err);
    json_decref(checked);
    if (admitted != CT_OK || cli_connect(cfg, &c, &err) != CT_OK ||
        ct_schedule_put(c, argv[optind], cron, queue, task, params, enabled, &row, &err) != CT_OK)
        rc = cli_report(&err);
    else if (json)
        cli_print_json(json_incref(row));
    else
        printf("schedule %s: %s %s into %s, next due %s%s\n", argv[optind], cron, task, queue,
               json_string_value(json_object_get(row, "next_run_at")),
               enabled ? "" : " (disabled)");
    json_decref(row);
    json_decref(params);
    cq_disconnect(c);
    return rc;
}

/* list, remove and tick: one optional NAME (remove: required), --json. */
static int schedule_simple(int argc, char **argv, const ct_config *cfg, const char *usage,
                           int which)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    bool json = false;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ch == 'h') {
            printf("%s\n", usage);
            return EXIT_OK;
        }
        if (ch != 'j')
            return cli_usage_error("%s: unknown option '%s'; see --help", argv[0],
                                   argv[optind - 1]);
        json = true;
    }
    if (optind + (which == 'r') != argc)
        return cli_usage_error("%s: %s", argv[0],
                               which == 'r' ? "exactly one NAME is required" : "no arguments");
    cq_client *c = NULL;
    ct_err err;
    json_t *out = NULL;
    int rc = EXIT_OK;
    if (cli_connect(cfg, &c, &err) != CT_OK ||
        (which == 'l'   ? ct_schedule_list(c, &out, &err)
         : which == 'r' ? ct_schedule_delete(c, argv[optind], &err)
                        : ct_schedule_tick(c, &out, &err)) != CT_OK) {
        rc = cli_report(&err);
    } else if (which == 'r') {
        printf("schedule %s removed\n", argv[optind]);
    } else if (json) {
        cli_print_json(json_incref(out));
    } else {
        size_t i;
        json_t *r;
        if (which == 'l')
            printf("%-24s %-16s %-22s %-24s %-25s %s\n", "NAME", "CRON", "TASK", "QUEUE",
                   "NEXT DUE", "ENABLED");
        json_array_foreach(out, i, r)
        {
            if (which == 'l')
                printf("%-24s %-16s %-22s %-24s %-25s %s\n",
                       json_string_value(json_object_get(r, "schedule_name")),
                       json_string_value(json_object_get(r, "cron")),
                       json_string_value(json_object_get(r, "task_name")),
                       json_string_value(json_object_get(r, "queue_name")),
                       json_string_value(json_object_get(r, "next_run_at")),
                       json_is_true(json_object_get(r, "enabled")) ? "yes" : "no");
            else {
                char line[1400];
                ct_schedule_describe(r, line, sizeof line);
                printf("%s\n", line);
            }
        }
        if (which == 't')
            printf("schedule tick: %zu fired\n", json_array_size(out));
    }
    json_decref(out);
    cq_disconnect(c);
    return rc;
}

static int schedule_list(int argc, char **argv, const ct_config *cfg)
{
    return schedule_simple(argc, argv, cfg,
                           "usage: contimg schedule list [--json]\n\n"
                           "Every schedule: its cron expression, task, queue, next due time.",
                           'l');
}

static int schedule_remove(int argc, char **argv, const ct_config *cfg)
{
    return schedule_simple(argc, argv, cfg,
                           "usage: contimg schedule remove NAME\n\n"
                           "Removes a schedule (exit 4 when there is none of that name); the "
                           "tasks it spawned stay.",
                           'r');
}

static int schedule_tick(int argc, char **argv, const ct_config *cfg)
{
    return schedule_simple(argc, argv, cfg,
                           "usage: contimg schedule tick [--json]\n\n"
                           "Fires every due schedule once and says which (for cron or a systemd\n"
                           "timer where no server or long-running engine ticks). Safe beside\n"
                           "other tickers: each due time spawns exactly one task.",
                           't');
}

int cmd_schedule(int argc, char **argv, const ct_config *cfg)
{
    static const cli_command sub[] = {
        {"add", "add or replace a schedule: a task on a cron expression", schedule_add},
        {"list", "every schedule and when it is next due", schedule_list},
        {"remove", "remove a schedule", schedule_remove},
        {"tick", "fire every due schedule once", schedule_tick},
        {NULL, NULL, NULL},
    };
    return cli_dispatch("contimg schedule", "usage: contimg schedule COMMAND", sub, argc, argv,
                        cfg);
}
