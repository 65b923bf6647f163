/*
 * publisher.h -- publishing: a finished product's files staged for the archive
 * (CONTIMG_ARCHIVE_DIR) and copied there, each exactly once, with up to max_attempts tries
 * and a backoff between them (sql/0014_publish.sql keeps the state; core/publish.h copies
 * a file; the staged file stays for retention). Used by the `publish` stage -- the last
 * step of the standard chain -- and by `contimg publish`.
 *
 * A file PRODUCTS_DIR/REL is published to ARCHIVE_DIR/REL. Two publishers never publish one
 * file: each claims its rows with FOR UPDATE SKIP LOCKED and marks them with its name; a
 * publisher that died mid-copy is taken over once its claim is stale (10 minutes).
 *
 * The stage (params inputs {group_id, image_path, pb_path, catalog_path}): rank 0 stages
 * the inputs' files and publishes them before the stage runs (its resolve, which holds
 * the database), and records what happened in params.publish; the run reports it. Files
 * waiting for a retry fail the task as transient (the queue retries it after its
 * backoff); files that used up their attempts complete it with status publish_failed and
 * their errors, the chain ending there. Without an archive the task completes, saying so.
 */
#ifndef CONTIMG_PUBLISHER_H
#define CONTIMG_PUBLISHER_H

#include "config.h"
#include "error.h"
#include "queue.h"
#include "stages.h"

#include <jansson.h>
#include <stdbool.h>

#define CT_TASK_PUBLISH "publish"

/* dest (size bytes): the archive path of src, ARCHIVE_DIR + src's path under the products
 * directory. CT_EINVAL when src is not under it (lexically) or no archive is configured. */
ct_code ct_publish_dest(const ct_config *cfg, const char *src, char *dest, size_t size,
                        ct_err *err);

/* Stages src (a product file of group, kind "image", "catalog", ...) for publishing. */
ct_code ct_publish_stage(cq_client *db, const ct_config *cfg, const char *group, const char *kind,
                         const char *src, ct_err *err);

/* Claims what is due (of srcs only, a JSON array of paths, when not NULL; at most limit),
 * copies each file and records each outcome. *report: {"claimed": n, "published": [src...],
 * "retrying": [{"src", "error", "attempts"}...], "failed": [{...}]}. */
ct_code ct_publish_run(cq_client *db, const ct_config *cfg, const char *worker, const json_t *srcs,
                       long limit, json_t **report, ct_err *err);

/* The stage table's hooks (stages.h). */
ct_code ct_publish_resolve(cq_client *db, const ct_config *cfg, json_t *params, ct_err *err);
ct_code ct_publish_stage_run(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                             ct_stage_outcome *out, ct_err *err);

#endif
