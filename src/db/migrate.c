/* migrate.c -- see migrate.h. */
#include "migrate.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Arbitrary, fixed: serializes concurrent `contimg db migrate` runs. */
#define MIGRATE_LOCK_KEY 0x636f6e74696d67LL

static ct_code connect(const char *conninfo, PGconn **out, ct_err *err)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        ct_code rc = ct_fail(err, CT_ECONNECT, "database unavailable: %s", PQerrorMessage(c));
        PQfinish(c);
        return rc;
    }
    PGresult *r = PQexec(c, "SET client_min_messages = warning");
    PQclear(r);
    *out = c;
    return CT_OK;
}

static ct_code exec_ok(PGconn *c, const char *sql, const char *what, ct_err *err)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    ct_code rc = CT_OK;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = ct_fail(err, PQstatus(c) == CONNECTION_OK ? CT_EDB : CT_ECONNECT, "%s: %s", what,
                     PQerrorMessage(c));
    PQclear(r);
    return rc;
}

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS public.contimg_schema_migrations ("
    " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

static ct_code apply_one(PGconn *c, const ct_migration *m, int *applied, ct_err *err)
{
    char lock[128];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%lld)", MIGRATE_LOCK_KEY);
    ct_code rc;
    if ((rc = exec_ok(c, "BEGIN", "begin", err)) != CT_OK)
        return rc;
    if ((rc = exec_ok(c, lock, "lock", err)) != CT_OK ||
        (rc = exec_ok(c, create_table_sql, "create migrations table", err)) != CT_OK)
        goto rollback;

    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *p[2] = {version, m->sql};
    PGresult *r = PQexecParams(c,
                               "SELECT checksum = md5($2), checksum FROM "
                               "public.contimg_schema_migrations WHERE version = $1",
                               2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = ct_fail(err, CT_EDB, "read migrations: %s", PQerrorMessage(c));
        PQclear(r);
        goto rollback;
    }
    if (PQntuples(r) == 1) {
        int same = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        if (!same) {
            rc = ct_fail(err, CT_ESTATE,
                         "migration %s was applied with different text; migrations are "
                         "append-only (add a new one instead)",
                         m->name);
            goto rollback;
        }
        return exec_ok(c, "COMMIT", "commit", err);
    }
    PQclear(r);
    if ((rc = exec_ok(c, m->sql, m->name, err)) != CT_OK)
        goto rollback;
    const char *q[3] = {version, m->name, m->sql};
    r = PQexecParams(c,
                     "INSERT INTO public.contimg_schema_migrations (version, name, checksum) "
                     "VALUES ($1, $2, md5($3))",
                     3, NULL, q, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = ct_fail(err, CT_EDB, "record migration %s: %s", m->name, PQerrorMessage(c));
        PQclear(r);
        goto rollback;
    }
    PQclear(r);
    if ((rc = exec_ok(c, "COMMIT", "commit", err)) != CT_OK)
        return rc;
    (*applied)++;
    return CT_OK;

rollback:
    PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

static int is_undefined_table(const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return state != NULL && strcmp(state, "42P01") == 0;
}

static ct_code read_version(PGconn *c, int *version, ct_err *err)
{
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM "
                            "public.contimg_schema_migrations");
    ct_code rc = CT_OK;
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        *version = atoi(PQgetvalue(r, 0, 0));
    else if (is_undefined_table(r))
        *version = 0; /* no migrations table yet */
    else
        rc = ct_fail(err, CT_EDB, "read schema version: %s", PQerrorMessage(c));
    PQclear(r);
    return rc;
}

ct_code ct_migrate(const char *conninfo, int *applied, int *version, ct_err *err)
{
    PGconn *c = NULL;
    *applied = 0;
    ct_code rc = connect(conninfo, &c, err);
    if (rc != CT_OK)
        return rc;
    for (size_t i = 0; i < ct_migration_count && rc == CT_OK; i++)
        rc = apply_one(c, &ct_migrations[i], applied, err);
    if (rc == CT_OK)
        rc = read_version(c, version, err);
    PQfinish(c);
    return rc;
}

ct_code ct_schema_version(const char *conninfo, int *version, ct_err *err)
{
    PGconn *c = NULL;
    ct_code rc = connect(conninfo, &c, err);
    if (rc != CT_OK)
        return rc;
    rc = read_version(c, version, err);
    PQfinish(c);
    return rc;
}
