/*
 * migrate.h -- the schema, as numbered migrations carried in the binary.
 *
 * sql/NNNN_name.sql files are embedded at build time (sql/embed.cmake).
 * ct_migrate() applies those not yet recorded in contimg_schema_migrations,
 * each in its own transaction under an advisory lock, so two concurrent
 * runs apply each migration once. A recorded migration whose text has since
 * changed is refused: migrations are append-only.
 */
#ifndef CONTIMG_MIGRATE_H
#define CONTIMG_MIGRATE_H

#include "error.h"

#include <stddef.h>

typedef struct ct_migration {
    int version;
    const char *name;
    const char *sql;
} ct_migration;

extern const ct_migration ct_migrations[];
extern const size_t ct_migration_count;

/* Applies pending migrations over a new connection to conninfo. Reports the
 * number applied now and the schema version after. */
ct_code ct_migrate(const char *conninfo, int *applied, int *version, ct_err *err);

/* The highest applied version, 0 for an empty database. */
ct_code ct_schema_version(const char *conninfo, int *version, ct_err *err);

#endif
