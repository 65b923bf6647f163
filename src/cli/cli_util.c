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
    case CT_EFULL: return EXIT_QUEUE_FULL;
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

/* text is the JSON itself, or @FILE (the file's contents), or - (standard input): params
 * too long or too awkward for a command line. */
int cli_parse_json_object(const char *what, const char *text, json_t **out)
{
    json_error_t je;
    json_t *v = text[0] == '@'           ? json_load_file(text + 1, JSON_REJECT_DUPLICATES, &je)
                : strcmp(text, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &je)
                                         : json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (v == NULL)
        return cli_usage_error("%s is not valid JSON: %s (%s line %d, character %d)", what, je.text,
                               text[0] == '@' ? text + 1 : "", je.line, je.position);
    if (!json_is_object(v)) {
        json_decref(v);
        return cli_usage_error("%s must be a JSON object, like {\"key\": \"value\"}", what);
    }
    *out = v;
    return -1;
}
