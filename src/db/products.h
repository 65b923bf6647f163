/*
 * products.h -- the client of the products tables (sql/0002_products.sql,
 * sql/0003_mosaics.sql): what the pipeline has made, and the mosaic planner.
 *
 * Owns the SQL of every read of products.* and of the planner's functions
 * outside the engine's commit (absurd.commit_task writes the rows); the
 * command line and any later front door (an HTTP API) go through it, over
 * the queue client's connection and its one policy for lost connections
 * and SQLSTATEs (queue.h, cq_query_json). Rows come back as JSON arrays of
 * objects, the columns' names as keys.
 */
#ifndef CONTIMG_PRODUCTS_H
#define CONTIMG_PRODUCTS_H

#include "error.h"
#include "queue.h"

#include <jansson.h>
#include <stdbool.h>

/* The products tables. */
typedef enum ct_products_kind {
    CT_PRODUCTS_IMAGES,       /* products.images: a restored image and its QA */
    CT_PRODUCTS_VISIBILITIES, /* products.visibilities: a converted observation */
    CT_PRODUCTS_MOSAICS,      /* products.mosaics */
    CT_PRODUCTS_CALTABLES,    /* products.caltables */
} ct_products_kind;

/* "images", "visibilities", "mosaics", "caltables" <-> the kind; parse
 * returns CT_EINVAL for another name. */
const char *ct_products_kind_name(ct_products_kind kind);
ct_code ct_products_kind_parse(const char *name, ct_products_kind *out);

/* The rows of one products table, newest first (updated_at), every column
 * (images: group_id, image_path, pb_path, vis_path, nx, ny, cell_arcsec,
 * ra_deg, dec_deg, freq_hz, rms_jy, peak_jy, dynamic_range,
 * beam_major_arcsec, beam_minor_arcsec, n_vis, n_components, qa_passed,
 * n_writes, updated_at); of one observation group (NULL: all; a mosaic is
 * of every group it covers), at most limit (>= 1) rows. */
ct_code ct_products_list(cq_client *c, ct_products_kind kind, const char *group, long limit,
                         json_t **rows, ct_err *err);

/* Registers a caltable solved outside a task (products.register_caltable):
 * row has path, group_id, kind, source, obs_start, obs_end, valid_until
 * (ISO times) and qa; an upsert on the path. *out: the row as stored. */
ct_code ct_products_register_caltable(cq_client *c, const json_t *row, json_t **out, ct_err *err);

/* The fallback chain (products.find_caltable) for an observation at time_iso:
 * {path, rung ("active", "nearest" or "stale"), age_hours, warning, ...}, or
 * JSON null when no caltable qualifies; stale_hours the "nearest" rung's
 * reach. */
ct_code ct_products_find_caltable(cq_client *c, const char *time_iso, double stale_hours,
                                  json_t **out, ct_err *err);

/* What housekeeping looks at (products.retention_plan, sql/0009_housekeeping.sql): days
 * {"visibilities": d, "images": d} (0 or absent: kept); *out {"as_of" (Unix seconds, the
 * database's clock), "rows": [{"kind", "key", "path", "updated_at", "expired"}]}: every
 * row not yet expired, and whether retention says its files go (never one an unfinished
 * task reads). */
ct_code ct_products_retention_plan(cq_client *c, const json_t *days, json_t **out, ct_err *err);

/* The mosaic planner's windows over the registered images that passed QA
 * (products.plan_mosaics): tier "quicklook", "science" or "deep";
 * per_mosaic images a window (0: the tier's most) overlapping by overlap;
 * in window order: mosaic_id, window_index, n_images, complete,
 * first_group, last_group, ... CT_EINVAL for values the planner refuses. */
ct_code ct_products_plan_mosaics(cq_client *c, const char *tier, long per_mosaic, long overlap,
                                 const char *queue, json_t **rows, ct_err *err);

/* Spawns a create-mosaic task on queue for each complete window not yet
 * mosaicked (absurd.spawn_mosaics; keyed by mosaic id, so a second call
 * spawns nothing twice), writing under out_dir: the spawned tasks' rows. */
ct_code ct_products_spawn_mosaics(cq_client *c, const char *tier, long per_mosaic, long overlap,
                                  const char *queue, const char *out_dir, json_t **rows,
                                  ct_err *err);

/* Publishing (sql/0014_publish.sql). Stages the file src for dest (an upsert: a file
 * already staged, publishing or published is left as it is; a failed one starts over):
 * *out the row. CT_EINVAL for a path that is not absolute or has "." or "..". */
ct_code ct_products_stage_publication(cq_client *c, const char *src, const char *dest,
                                      const char *kind, const char *group, int max_attempts,
                                      json_t **out, ct_err *err);

/* Claims up to limit files due (of srcs only, a JSON array of paths, when not NULL), and
 * those whose claim is older than stale_sec: *rows, a JSON array of the claimed rows. */
ct_code ct_products_claim_publications(cq_client *c, const char *worker, long limit,
                                       const json_t *srcs, double stale_sec, json_t **rows,
                                       ct_err *err);

/* Records a claimed file's outcome (error NULL: published, bytes its size), the error
 * kept and a retry after backoff_sec x 2^(attempts - 1) otherwise (final: failed at once,
 * for a refusal no retry can change): status (size bytes)
 * gets the row's status after -- "published", "staged" (to retry), "failed" -- or "" when
 * the claim was no longer worker's. */
ct_code ct_products_finish_publication(cq_client *c, const char *src, const char *worker,
                                       const char *error, long long bytes, double backoff_sec,
                                       bool final, char *status, size_t size, ct_err *err);

#endif
