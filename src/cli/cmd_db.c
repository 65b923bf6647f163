/* cmd_db.c -- `contimg db start|stop|status|url|migrate`. */
#include "cli_util.h"
#include "commands.h"
#include "database.h"
#include "migrate.h"
#include "pgcluster.h"
#include "schedules.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

/* Parses [--json] [--help] for the db subcommands. Returns -1 to go on. */
/* --help, and the one flag --FLAG (NULL: none) that sets *set. */
static int parse_simple(int argc, char **argv, const char *usage, const char *flag, bool *set)
{
    const struct option opts[] = {{flag ? flag : "help", no_argument, NULL, flag ? 'f' : 'h'},
                                  {"help", no_argument, NULL, 'h'},
                                  {0, 0, 0, 0}};
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ch == 'f') {
            *set = true;
        } else if (ch == 'h') {
            printf("%s\n", usage);
            return EXIT_OK;
        } else {
            return cli_usage_error("%s: unknown option '%s'; see --help", argv[0],
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("%s: unexpected argument '%s'", argv[0], argv[optind]);
    return -1;
}

static int external_note(const ct_config *cfg, const char *what)
{
    char where[1024];
    ct_db_describe(cfg->database_url, where, sizeof where);
    printf("an external database is configured (%s); nothing to %s\n", where, what);
    return EXIT_OK;
}

static int db_start(int argc, char **argv, const ct_config *cfg)
{
    int rc = parse_simple(argc, argv,
                          "usage: contimg db start\n\n"
                          "Creates (first time) and starts the private PostgreSQL cluster under\n"
                          "the state directory ($CONTIMG_STATE_DIR, default ./var). Idempotent.",
                          NULL, NULL);
    if (rc >= 0)
        return rc;
    if (cfg->database_url[0])
        return external_note(cfg, "start");
    ct_err err;
    ct_pgcluster *pg = NULL;
    bool already = false;
    if (ct_pgcluster_open(cfg, &pg, &err) != CT_OK ||
        ct_pgcluster_start(pg, &already, &err) != CT_OK) {
        ct_pgcluster_close(pg);
        return cli_report(&err);
    }
    printf("PostgreSQL %s: data %s, socket %s\n", already ? "already running" : "started",
           ct_pgcluster_data_dir(pg), ct_pgcluster_socket_dir(pg));
    ct_pgcluster_close(pg);
    return EXIT_OK;
}

static int db_stop(int argc, char **argv, const ct_config *cfg)
{
    int rc = parse_simple(argc, argv, "usage: contimg db stop\n\nStops the private PostgreSQL.",
                          NULL, NULL);
    if (rc >= 0)
        return rc;
    if (cfg->database_url[0])
        return external_note(cfg, "stop");
    ct_err err;
    ct_pgcluster *pg = NULL;
    bool was = false;
    if (ct_pgcluster_open(cfg, &pg, &err) != CT_OK || ct_pgcluster_stop(pg, &was, &err) != CT_OK) {
        ct_pgcluster_close(pg);
        return cli_report(&err);
    }
    printf("PostgreSQL %s\n", was ? "stopped" : "was not running");
    ct_pgcluster_close(pg);
    return EXIT_OK;
}

static int db_status(int argc, char **argv, const ct_config *cfg)
{
    bool json = false;
    int rc = parse_simple(argc, argv,
                          "usage: contimg db status [--json]\n\n"
                          "Says whether the database is reachable and its schema version.\n"
                          "Exit 0 when reachable, 3 when not.",
                          "json", &json);
    if (rc >= 0)
        return rc;
    ct_err err;
    char conninfo[CT_PATH_MAX + 256], where[1024];
    bool external = false;
    if (ct_db_conninfo(cfg, conninfo, sizeof conninfo, &external, &err) != CT_OK)
        return cli_report(&err);
    ct_db_describe(conninfo, where, sizeof where);
    ct_pgcluster_status st = {false, false};
    const char *data_dir = NULL;
    ct_pgcluster *pg = NULL;
    if (!external) {
        if (ct_pgcluster_open(cfg, &pg, &err) != CT_OK ||
            ct_pgcluster_status_get(pg, &st, &err) != CT_OK) {
            ct_pgcluster_close(pg);
            return cli_report(&err);
        }
        data_dir = ct_pgcluster_data_dir(pg);
    }
    int version = -1;
    bool reachable =
        (external || st.running) && ct_schema_version(conninfo, &version, &err) == CT_OK;
    int code = reachable ? EXIT_OK : EXIT_DB_UNAVAILABLE;
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "kind", json_string(external ? "external" : "private"));
        json_object_set_new(o, "url", json_string(where));
        if (!external) {
            json_object_set_new(o, "data_dir", json_string(data_dir));
            json_object_set_new(o, "initialized", json_boolean(st.initialized));
            json_object_set_new(o, "running", json_boolean(st.running));
        }
        json_object_set_new(o, "reachable", json_boolean(reachable));
        json_object_set_new(o, "schema_version", reachable ? json_integer(version) : json_null());
        cli_print_json(o);
    } else {
        printf("database:       %s (%s)\n", where, external ? "external" : "private");
        if (!external)
            printf("cluster:        %s, %s\n", data_dir,
                   !st.initialized ? "not initialized"
                   : st.running    ? "running"
                                   : "stopped");
        if (reachable)
            printf("schema version: %d of %zu\n", version, ct_migration_count);
        else
            printf("reachable:      no\n");
    }
    ct_pgcluster_close(pg);
    return code;
}

static int db_url(int argc, char **argv, const ct_config *cfg)
{
    int rc = parse_simple(argc, argv,
                          "usage: contimg db url\n\n"
                          "Prints the database URL (any password removed) for psql and other "
                          "clients.",
                          NULL, NULL);
    if (rc >= 0)
        return rc;
    ct_err err;
    char conninfo[CT_PATH_MAX + 256], where[1024];
    bool external = false;
    if (ct_db_conninfo(cfg, conninfo, sizeof conninfo, &external, &err) != CT_OK)
        return cli_report(&err);
    ct_db_describe(conninfo, where, sizeof where);
    puts(where);
    return EXIT_OK;
}

/* The schedules a fresh installation has (docs/operations.md): housekeeping at 03:30 UTC,
 * and at 15:00 UTC (the morning after the night at OVRO) the nightly chain, whose planning
 * step spawns the night's science-tier mosaics. */
static const struct {
    const char *name, *cron, *task, *params;
} default_schedules[] = {
    {"housekeeping", "30 3 * * *", "housekeeping", "{}"},
    {"nightly-mosaic", "0 15 * * *", "mosaic-plan", "{\"chain\": \"nightly\"}"},
};

/* Adds each default schedule that does not exist yet, for cfg's queue (registered if it is
 * not). An operator's change stands, a disabled schedule included; a removed one is added
 * again, so the way to turn a default off is to disable it. */
static ct_code add_default_schedules(const ct_config *cfg, ct_err *err)
{
    cq_client *c = NULL;
    json_t *have = NULL;
    ct_code rc;
    if ((rc = cli_connect(cfg, &c, err)) != CT_OK || (rc = cq_create_queue(c, cfg->queue, err)) ||
        (rc = ct_schedule_list(c, &have, err))) {
        cq_disconnect(c);
        return rc;
    }
    for (size_t i = 0; rc == CT_OK && i < sizeof default_schedules / sizeof *default_schedules;
         i++) {
        bool exists = false;
        size_t j;
        const json_t *row;
        json_array_foreach(have, j, row)
        {
            exists = exists || strcmp(json_string_value(json_object_get(row, "schedule_name")),
                                      default_schedules[i].name) == 0;
        }
        if (exists)
            continue;
        json_t *params = json_loads(default_schedules[i].params, 0, NULL);
        rc = ct_schedule_put(c, default_schedules[i].name, default_schedules[i].cron, cfg->queue,
                             default_schedules[i].task, params, true, NULL, err);
        json_decref(params);
        if (rc == CT_OK)
            printf("default schedule %s: %s '%s' into queue %s\n", default_schedules[i].name,
                   default_schedules[i].task, default_schedules[i].cron, cfg->queue);
    }
    json_decref(have);
    cq_disconnect(c);
    return rc;
}

static int db_migrate(int argc, char **argv, const ct_config *cfg)
{
    bool no_defaults = false;
    int rc = parse_simple(argc, argv,
                          "usage: contimg db migrate [--no-default-schedules]\n\n"
                          "Applies the schema migrations not yet applied, each in a transaction.\n"
                          "Safe to run at any time and concurrently. Then adds the default\n"
                          "schedules that do not exist yet, for $ABSURD_QUEUE_NAME: housekeeping\n"
                          "(30 3 * * *) and nightly-mosaic (0 15 * * *), UTC. A schedule of that\n"
                          "name, changed or disabled by an operator, is left as it is (a removed\n"
                          "one comes back: disable it instead).\n\n"
                          "  --no-default-schedules  add none (a test database, a second queue)",
                          "no-default-schedules", &no_defaults);
    if (rc >= 0)
        return rc;
    ct_err err;
    char conninfo[CT_PATH_MAX + 256];
    bool external = false;
    int applied = 0, version = 0;
    if (ct_db_conninfo(cfg, conninfo, sizeof conninfo, &external, &err) != CT_OK ||
        ct_migrate(conninfo, &applied, &version, &err) != CT_OK)
        return cli_report(&err);
    printf("schema at version %d (%d migration%s applied now)\n", version, applied,
           applied == 1 ? "" : "s");
    if (!no_defaults && add_default_schedules(cfg, &err) != CT_OK)
        return cli_report(&err);
    return EXIT_OK;
}

int cmd_db(int argc, char **argv, const ct_config *cfg)
{
    static const cli_command sub[] = {
        {"start", "create and start the private PostgreSQL", db_start},
        {"stop", "stop the private PostgreSQL", db_stop},
        {"status", "is the database reachable, and at which schema version", db_status},
        {"url", "print the database URL (no password)", db_url},
        {"migrate", "apply pending schema migrations", db_migrate},
        {NULL, NULL, NULL},
    };
    return cli_dispatch("contimg db", "usage: contimg db COMMAND", sub, argc, argv, cfg);
}
