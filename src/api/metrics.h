/*
 * metrics.h -- the pipeline's state in the Prometheus text format (version 0.0.4).
 *
 * Owns: the metric names, types, help lines and labels (the seed's names: absurd_* for the
 * queue, contimg_* for the stages, the disks and the calibration), rendered from
 * absurd.metrics_snapshot's JSON (sql/0005_metrics.sql) and the filesystem. Does not own:
 * the query (the caller runs it), HTTP (api.h), the alert rules (docs/prometheus/).
 *
 * Counters end in _total and only grow while rows are kept; every other family is a
 * gauge or a summary whose quantiles cover the snapshot's window. A figure the database
 * has no value for (no claim yet, no caltable) is left out, not written as 0.
 */
#ifndef CONTIMG_METRICS_H
#define CONTIMG_METRICS_H

#include <jansson.h>
#include <stddef.h>

/* A directory whose filesystem is watched: role names it in the labels. */
typedef struct ct_metrics_disk {
    const char *role; /* "products", "state" */
    const char *path;
} ct_metrics_disk;

/*
 * The exposition, a malloc'd NUL-terminated string (NULL when out of memory). snapshot is
 * absurd.metrics_snapshot's answer, NULL when the database did not answer
 * (contimg_database_up 0; the disks are still reported). staging: a directory whose
 * regular files' bytes are contimg_staging_bytes (NULL: none). disk_guard: the engines'
 * CONTIMG_DISK_GUARD, as contimg_disk_guard_ratio (the fraction full at which they stop
 * claiming; 1: no guard).
 */
char *ct_metrics_render(const json_t *snapshot, const ct_metrics_disk *disks, size_t ndisks,
                        const char *staging, double disk_guard);

#endif
