/* testutil.c -- see testutil.h. */
#define _GNU_SOURCE
#include "testutil.h"

#include "config.h"
#include "database.h"

#include <libpq-fe.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int tu_passed, tu_failed;

int tu_finish(void)
{
    printf("%d passed, %d failed\n", tu_passed, tu_failed);
    return tu_failed == 0 ? 0 : 1;
}

const char *tu_conninfo(void)
{
    static char conninfo[CT_PATH_MAX + 256];
    if (conninfo[0] == '\0') {
        ct_config cfg;
        ct_err err;
        bool external;
        if (ct_config_load(&cfg, &err) != CT_OK ||
            ct_db_conninfo(&cfg, conninfo, sizeof conninfo, &external, &err) != CT_OK) {
            fprintf(stderr, "test setup: %s\n", err.msg);
            exit(2);
        }
    }
    return conninfo;
}

cq_client *tu_connect(void)
{
    cq_client *c = NULL;
    ct_err err;
    if (cq_connect(tu_conninfo(), &c, &err) != CT_OK) {
        fprintf(stderr, "test setup: %s\n", err.msg);
        exit(2);
    }
    return c;
}

void tu_unique_queue(cq_client *c, const char *prefix, char *out, size_t size)
{
    static int counter;
    snprintf(out, size, "%s-%ld-%d", prefix, (long)getpid(), ++counter);
    ct_err err;
    if (cq_create_queue(c, out, &err) != CT_OK) {
        fprintf(stderr, "test setup: create queue %s: %s\n", out, err.msg);
        exit(2);
    }
}

double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void tu_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

char *tu_sql(const char *sql)
{
    PGconn *c = PQconnectdb(tu_conninfo());
    char *out = NULL;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, sql);
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_TUPLES_OK)
            out = strdup(PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
        else if (st == PGRES_COMMAND_OK)
            out = strdup("");
        else
            fprintf(stderr, "tu_sql: %s", PQerrorMessage(c));
        PQclear(r);
    }
    PQfinish(c);
    return out != NULL ? out : strdup("(sql error)");
}
