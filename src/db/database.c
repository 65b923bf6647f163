/* database.c -- see database.h. */
#include "database.h"

#include "pgcluster.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

ct_code ct_db_conninfo(const ct_config *cfg, char *out, size_t size, bool *external, ct_err *err)
{
    if (cfg->database_url[0] != '\0') {
        *external = true;
        char *msg = NULL;
        PQconninfoOption *opts = PQconninfoParse(cfg->database_url, &msg);
        if (opts == NULL) {
            /* libpq's message may quote the string; do not repeat it. */
            PQfreemem(msg);
            return ct_fail(err, CT_EINVAL,
                           "CONTIMG_DATABASE_URL is not a valid PostgreSQL "
                           "connection URL or string");
        }
        PQconninfoFree(opts);
        if (strlen(cfg->database_url) >= size)
            return ct_fail(err, CT_EINVAL, "CONTIMG_DATABASE_URL is too long");
        snprintf(out, size, "%s", cfg->database_url);
        return CT_OK;
    }
    *external = false;
    ct_pgcluster *pg = NULL;
    ct_code rc = ct_pgcluster_open(cfg, &pg, err);
    if (rc != CT_OK)
        return rc;
    snprintf(out, size, "%s", ct_pgcluster_conninfo(pg));
    ct_pgcluster_close(pg);
    return CT_OK;
}

/* Percent-encodes what a URL component cannot hold as it is. */
static void url_encode(const char *s, char *out, size_t size)
{
    size_t n = 0;
    for (; *s && n + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c))
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, size - n, "%%%02X", c);
    }
    out[n] = '\0';
}

void ct_db_describe(const char *conninfo, char *out, size_t size)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    if (opts == NULL) {
        snprintf(out, size, "(unparseable connection string)");
        return;
    }
    const char *host = NULL, *port = NULL, *db = NULL, *user = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
    }
    char ehost[1024] = "", edb[256] = "", euser[256] = "";
    url_encode(db ? db : "", edb, sizeof edb);
    url_encode(user ? user : "", euser, sizeof euser);
    if (host && host[0] == '/') {
        /* A socket directory goes in the query string. */
        url_encode(host, ehost, sizeof ehost);
        snprintf(out, size, "postgresql:///%s?host=%s%s%s%s%s", edb, ehost, user ? "&user=" : "",
                 user ? euser : "", port ? "&port=" : "", port ? port : "");
    } else {
        url_encode(host ? host : "", ehost, sizeof ehost);
        snprintf(out, size, "postgresql://%s%s%s%s%s/%s", user ? euser : "", user ? "@" : "", ehost,
                 port ? ":" : "", port ? port : "", edb);
    }
    PQconninfoFree(opts);
}
