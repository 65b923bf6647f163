/*
 * stages.h -- the task kinds the engine works, and how each maps onto a stage.
 *
 * A task kind knows three things: how to run its stage on a communicator of
 * ranks (collective), what its commit writes (the result, the products
 * rows), and what params the next step of a chain gets from its outputs.
 *
 *   convert-uvh5-to-ms  16 subband files -> one UVH5 file (convert.h) and its
 *                       quality gate; products.visibilities. Params:
 *                       inputs {group_id, files[16]}, outputs {vis_path}.
 *   imaging             one UVH5 file -> FITS images (imaging.h) and QA;
 *                       products.images. Params: inputs {group_id, vis_path},
 *                       outputs {image_prefix}, config {size, cell_arcsec,
 *                       weight, robust, niter, threshold_jy, gain, mgain,
 *                       epsilon, pblimit, min_uv_lambda, no_wterms, successor}.
 *   create-mosaic       FITS images -> a primary-beam-weighted TAN mosaic in
 *                       tiles (mosaic.h); products.mosaics. Params: inputs
 *                       {mosaic_id, tier, groups[], images[]}, outputs
 *                       {prefix}, config {tile, cutoff, interp}. Spawned by
 *                       the planner (sql/0003_mosaics.sql), not per task:
 *                       see ct_stage_mosaic_spawn.
 *   noop                does nothing (config {sleep_sec}): the engine's own
 *                       overhead, measured by bench/engine.
 *
 * Failures carry a category (error.h): damaged data is corrupt_input (not
 * retried), bad params or a group that cannot be combined is permanent, and
 * I/O or memory trouble is transient (retried after backoff).
 */
#ifndef CONTIMG_STAGES_H
#define CONTIMG_STAGES_H

#include "config.h"
#include "error.h"

#include <jansson.h>
#include <mpi.h>
#include <stdbool.h>

#define CT_TASK_CONVERT "convert-uvh5-to-ms"
#define CT_TASK_IMAGING "imaging"
#define CT_TASK_MOSAIC  "create-mosaic"
#define CT_TASK_NOOP    "noop"

/* The kinds the engine claims, NULL-terminated. */
const char *const *ct_stage_names(void);
bool ct_stage_known(const char *task_name);

/* How many ranks a task of this kind can use (at least 1). */
int ct_stage_max_ranks(const char *task_name);

typedef struct ct_stage_outcome {
    json_t *result;      /* {"status", "outputs", "message", "errors", "metrics"} */
    json_t *products;    /* {"visibilities": [...]} or {"images": [...]}; NULL = none */
    bool continue_chain; /* false: the chain stops here (a failed quality gate) */
} ct_stage_outcome;

void ct_stage_outcome_free(ct_stage_outcome *o);

/* Runs one task (collective over comm). On rank 0 of comm, *out holds the
 * outcome on success; on failure every rank gets the code and message, and
 * ct_stage_category() says how the queue should treat it. */
ct_code ct_stage_run(MPI_Comm comm, const char *task_name, const json_t *params,
                     const ct_config *cfg, ct_stage_outcome *out, ct_err *err);

/* How the queue treats a failed stage (see the top of this file). */
ct_category ct_stage_category(const ct_err *err);

/* The params of a convert task for one observation group (ingest). */
json_t *ct_stage_convert_params(const char *chain, const json_t *config, const char *group_id,
                                const char *const files[16], const char *products_dir);

/* The params of the task `next` that follows a finished task of a chain:
 * inputs are the group id and the finished task's outputs, outputs are
 * planned under products_dir, config is the chain step's. */
json_t *ct_stage_next_params(const char *next, const json_t *params, const json_t *result,
                             const json_t *step_config, const char *products_dir);

/* The spawn entry for a chain step create-mosaic after an imaging task: it
 * asks absurd.commit_task to run the mosaic planner (step config: tier,
 * images_per_mosaic, overlap) and spawn a create-mosaic task for each
 * complete window not yet mosaicked, writing under products_dir/mosaics.
 * NULL (CT_EINVAL in err) for a step config the planner would refuse. */
json_t *ct_stage_mosaic_spawn(const char *chain, const json_t *step_config,
                              const char *products_dir, ct_err *err);

#endif
