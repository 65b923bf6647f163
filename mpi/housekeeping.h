/*
 * housekeeping.h -- the housekeeping stage: retention of products and logs, and the rows
 * of products whose files are gone.
 *
 * Owns what one housekeeping task does. Rank 0, which holds the database, first asks it
 * what to look at (ct_housekeeping_resolve: products.retention_plan, every products row
 * not yet expired and whether retention says its files go); the task's one rank then
 *   - removes the files of each row past its retention: a visibility file and the
 *     flagged and calibrated copies a chain plans beside it (7 d), an image and every
 *     file imaging wrote with it (ct_imaging_outputs; 30 d). Only regular files inside
 *     the products directory, and only those whose own modification time is past the
 *     retention too: a file rewritten since the plan was read is left, and so is its row.
 *     The row is kept, marked (expired_at, expired_reason);
 *   - removes the rows whose file is gone (ENOENT) and were not expired: stale rows. When
 *     more than max_missing_fraction (0.5) of the rows it checks have lost their files it
 *     removes nothing at all and fails (permanent; the next scheduled run tries again): a
 *     products disk that is not mounted must not empty the tables;
 *   - removes the regular files in the logs directory older than the logs' retention
 *     (14 d), not recursing.
 * What it did is committed with the task (products of kind "retention",
 * sql/0009_housekeeping.sql), each row only while it is as the plan read it. A crash at
 * any point is redone by the next run: a file already gone is not an error, and its row is
 * marked then.
 *
 * Params: config {vis_days, image_days, log_days (the CONTIMG_RETAIN_* settings by
 * default; 0 keeps for ever), max_missing_fraction, dry_run (report, remove nothing)}.
 */
#ifndef CONTIMG_HOUSEKEEPING_H
#define CONTIMG_HOUSEKEEPING_H

#include "stages.h"

#define CT_TASK_HOUSEKEEPING "housekeeping"

/* At spawn (ct_stage_admit): the settings in params.config are ones it knows. */
ct_code ct_housekeeping_admit(json_t *params, const ct_config *cfg, ct_err *err);

/* Rank 0: params.plan from the products tables. */
ct_code ct_housekeeping_resolve(cq_client *db, const ct_config *cfg, json_t *params, ct_err *err);

/* The task, on one rank. */
ct_code ct_housekeeping_run(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                            ct_stage_outcome *out, ct_err *err);

#endif
