/*
 * database.h -- which PostgreSQL contimg talks to, and how it is named.
 *
 * CONTIMG_DATABASE_URL (or the seed's ABSURD_DATABASE_URL) selects an
 * external server; without one, the private cluster under the state
 * directory (pgcluster.h). Connection strings may hold a password, so
 * anything shown to a person goes through ct_db_describe().
 */
#ifndef CONTIMG_DATABASE_H
#define CONTIMG_DATABASE_H

#include "config.h"
#include "error.h"

#include <stdbool.h>
#include <stddef.h>

/* The libpq connection string to use; *external says which kind it is. */
ct_code ct_db_conninfo(const ct_config *cfg, char *out, size_t size, bool *external, ct_err *err);

/* A URL for the connection with any password removed, safe to print. */
void ct_db_describe(const char *conninfo, char *out, size_t size);

#endif
