/* cli_util.c -- see cli_util.h. */
#define _GNU_SOURCE
#include "cli_util.h"

#include <mpi.h>

#include "database.h"
#include "mpiutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_exit_code(ct_code code)
{
    switch (code) {
    case CT_OK: return EXIT_OK;
    case CT_EINVAL:
    case CT_EUNKNOWN_QUEUE: return EXIT_USAGE;
    case CT_ECONNECT: return EXIT_DB_UNAVAILABLE;
    case CT_ENOTFOUND: return EXIT_NOT_FOUND;
    case CT_ESTATE:
    case CT_ELEASE_EXPIRED:
    case CT_ENOT_HOLDER: return EXIT_REFUSED;
    case CT_EDB:
    case CT_ENOMEM:
    case CT_EIO: break;
    }
    return EXIT_FAILURE_INTERNAL;
}

int cli_report(const ct_err *err)
{
    fprintf(stderr, "contimg: %s\n", err->msg[0] ? err->msg : ct_code_name(err->code));
    return cli_exit_code(err->code);
}

int cli_vusage_error(const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "contimg: %s\n", msg);
    return EXIT_USAGE;
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int code = cli_vusage_error(fmt, ap);
    va_end(ap);
    return code;
}

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

int cli_dispatch(const char *prog, const char *usage, const cli_command *cmds, int argc,
                 char **argv, const ct_config *cfg)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf(out, "%s\n\nCommands:\n", usage);
        for (const cli_command *c = cmds; c->name; c++)
            fprintf(out, "  %-12s %s\n", c->name, c->summary);
        fprintf(out, "\nRun '%s COMMAND --help' for a command's options.\n", prog);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    for (const cli_command *c = cmds; c->name; c++)
        if (strcmp(argv[1], c->name) == 0)
            return c->run(argc - 1, argv + 1, cfg);
    return cli_usage_error("'%s' is not a %s command; see '%s --help'", argv[1], prog, prog);
}

/* strtol and strtod skip leading blanks and accept '+': an option value
 * must be the number and nothing else. */
static bool plain_number_start(const char *s)
{
    return s[0] != '\0' && !isspace((unsigned char)s[0]) && s[0] != '+';
}

bool cli_parse_long(const char *s, long lo, long hi, long *out)
{
    if (!plain_number_start(s))
        return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool cli_parse_double(const char *s, double lo, double hi, double *out)
{
    if (!plain_number_start(s))
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

ct_code cli_connect(const ct_config *cfg, cq_client **out, ct_err *err)
{
    char conninfo[CT_PATH_MAX + 256];
    bool external = false;
    ct_code rc = ct_db_conninfo(cfg, conninfo, sizeof conninfo, &external, err);
    if (rc != CT_OK)
        return rc;
    rc = cq_connect(conninfo, out, err);
    if (rc == CT_ECONNECT) {
        char where[1024];
        ct_db_describe(conninfo, where, sizeof where);
        if (external)
            return ct_fail(err, CT_ECONNECT, "database unavailable at %s", where);
        return ct_fail(err, CT_ECONNECT,
                       "database unavailable: the private PostgreSQL under %s is not running "
                       "(start it with 'contimg db start')",
                       cfg->state_dir);
    }
    if (rc == CT_OK)
        cq_set_reconnect_budget(*out, cfg->db_retry_sec);
    return rc;
}

void cli_worker_id(char *out, size_t size)
{
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(out, size, "%s:%ld", host, (long)getpid());
}

void cli_format_time(double t, char *out, size_t size)
{
    if (isnan(t)) {
        snprintf(out, size, "-");
        return;
    }
    time_t s = (time_t)floor(t);
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03dZ", base, (int)((t - floor(t)) * 1000));
}

static json_t *str_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

static json_t *time_or_null(double t)
{
    if (isnan(t))
        return json_null();
    char buf[40];
    cli_format_time(t, buf, sizeof buf);
    return json_string(buf);
}

static json_t *real_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

json_t *cli_task_json(const cq_task *t)
{
    json_t *deps = json_array();
    for (size_t i = 0; i < t->n_depends_on; i++)
        json_array_append_new(deps, json_string(t->depends_on[i]));
    json_t *o = json_object();
    json_object_set_new(o, "task_id", json_string(t->id));
    json_object_set_new(o, "queue_name", json_string(t->queue));
    json_object_set_new(o, "origin_queue", str_or_null(t->origin_queue));
    json_object_set_new(o, "task_name", json_string(t->name));
    json_object_set_new(o, "status", json_string(cq_status_name(t->status)));
    json_object_set_new(o, "priority", json_integer(t->priority));
    json_object_set_new(o, "params", t->params ? json_incref(t->params) : json_object());
    json_object_set_new(o, "worker_id", str_or_null(t->worker_id));
    json_object_set_new(o, "claim_token", str_or_null(t->claim_token));
    json_object_set_new(o, "attempt", json_integer(t->attempt));
    json_object_set_new(o, "max_retries", json_integer(t->max_retries));
    json_object_set_new(o, "timeout_sec", json_integer(t->timeout_sec));
    json_object_set_new(o, "backoff_base_sec", real_or_null(t->backoff_base_sec));
    json_object_set_new(o, "backoff_max_sec", real_or_null(t->backoff_max_sec));
    json_object_set_new(o, "idempotency_key", str_or_null(t->idempotency_key));
    json_object_set_new(o, "depends_on", deps);
    json_object_set_new(o, "workflow_id", str_or_null(t->workflow_id));
    json_object_set_new(o, "result", t->result ? json_incref(t->result) : json_null());
    json_object_set_new(o, "error", str_or_null(t->error));
    json_object_set_new(o, "error_category", str_or_null(t->error_category));
    json_object_set_new(o, "cancelled_by", str_or_null(t->cancelled_by));
    json_object_set_new(o, "created_at", time_or_null(t->created_at));
    json_object_set_new(o, "available_at", time_or_null(t->available_at));
    json_object_set_new(o, "claimed_at", time_or_null(t->claimed_at));
    json_object_set_new(o, "heartbeat_at", time_or_null(t->heartbeat_at));
    json_object_set_new(o, "lease_expires_at", time_or_null(t->lease_expires_at));
    json_object_set_new(o, "completed_at", time_or_null(t->completed_at));
    json_object_set_new(o, "dead_lettered_at", time_or_null(t->dead_lettered_at));
    json_object_set_new(o, "wait_time_sec", real_or_null(t->wait_time_sec));
    json_object_set_new(o, "execution_time_sec", real_or_null(t->execution_time_sec));
    return o;
}

void cli_print_json(json_t *v)
{
    /* Ten significant digits: enough for microsecond timings, no float noise. */
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
                                JSON_REAL_PRECISION(10));
    if (s != NULL) {
        puts(s);
        free(s);
    }
    json_decref(v);
}

int cli_mpi_main(const char *name, int (*body)(int argc, char **argv, const ct_config *cfg),
                 int argc, char **argv, const ct_config *cfg)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    /* FUNNELED: the engine's lease keeper is a second thread (it makes no MPI calls). */
    int provided = 0;
    if (!inited)
        ct_mpi_prepare_env();
    if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "contimg: %s: MPI_Init failed\n", name);
        return EXIT_FAILURE_INTERNAL;
    }
    int code = body(argc, argv, cfg);
    fflush(stdout);
    fflush(stderr);
    MPI_Finalized(&finalized);
    if (!inited && !finalized)
        MPI_Finalize();
    return code;
}

int cli_rank_report(int rank, const ct_err *err)
{
    return rank == 0 ? cli_report(err) : cli_exit_code(err->code);
}

int cli_rank_usage_error(int rank, const char *fmt, ...)
{
    if (rank != 0)
        return EXIT_USAGE;
    va_list ap;
    va_start(ap, fmt);
    int code = cli_vusage_error(fmt, ap);
    va_end(ap);
    return code;
}
