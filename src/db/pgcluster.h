/*
 * pgcluster.h -- the private PostgreSQL cluster behind `contimg db start`.
 *
 * With no database URL configured, contimg keeps its own cluster under the
 * state directory: initdb'd on first start, listening on a Unix socket only
 * (no TCP), socket directory mode 0700, and run as an unprivileged OS user
 * (CONTIMG_PG_OS_USER, default "postgres") when contimg is invoked as root.
 * No password exists: only the socket's owner (and root) can connect.
 *
 * Paths: STATE/pg/data (cluster), STATE/pg/run (socket), STATE/pg/postgres.log.
 * When the server's OS user cannot reach STATE (e.g. a clone under /root),
 * the cluster lives in /var/lib/contimg/pg-HASH instead, HASH naming STATE;
 * when the socket path would exceed the kernel's limit, the socket goes to
 * /tmp/contimg-pg-HASH. Both are deterministic, so every command finds them.
 */
#ifndef CONTIMG_PGCLUSTER_H
#define CONTIMG_PGCLUSTER_H

#include "config.h"
#include "error.h"

#include <stdbool.h>

#define CT_PG_DATABASE "contimg"
#define CT_PG_ROLE     "contimg"

typedef struct ct_pgcluster ct_pgcluster;

typedef struct ct_pgcluster_status {
    bool initialized; /* a cluster exists on disk */
    bool running;     /* its postmaster is up */
} ct_pgcluster_status;

/* Resolves the cluster's paths and tools for cfg's state directory. Creates
 * nothing. */
ct_code ct_pgcluster_open(const ct_config *cfg, ct_pgcluster **out, ct_err *err);
void ct_pgcluster_close(ct_pgcluster *pg);

/* Initializes the cluster if needed, starts it if it is not running and
 * creates the contimg database. Idempotent. *already is set when it was
 * running before the call. */
ct_code ct_pgcluster_start(ct_pgcluster *pg, bool *already, ct_err *err);

/* Stops the server (fast shutdown). Idempotent: a stopped cluster is fine. */
ct_code ct_pgcluster_stop(ct_pgcluster *pg, bool *was_running, ct_err *err);

ct_code ct_pgcluster_status_get(ct_pgcluster *pg, ct_pgcluster_status *st, ct_err *err);

/* libpq key=value connection string for the contimg database. */
const char *ct_pgcluster_conninfo(const ct_pgcluster *pg);
const char *ct_pgcluster_data_dir(const ct_pgcluster *pg);
const char *ct_pgcluster_socket_dir(const ct_pgcluster *pg);
const char *ct_pgcluster_log_path(const ct_pgcluster *pg);

#endif
