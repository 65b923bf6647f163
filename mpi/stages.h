/*
 * stages.h -- the task kinds the engine works, and how each maps onto a stage.
 *
 * The stage table (stages.c) has one row per task kind: its name, the ranks
 * it can use, how to run it on a communicator of ranks (collective; its
 * outcome holds the result and the products rows its commit writes), the
 * outputs planned for it when a chain spawns it, and how it follows a
 * finished step of a chain (one task by default; the mosaic planner for
 * create-mosaic). The engine names no stage: it claims the table's kinds,
 * runs a claimed task through ct_stage_run and asks ct_stage_follow_spawns
 * what a finished one spawns. A new stage is one row and its run function.
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
 *                       see ct_stage_follow_spawns.
 *   calibration-solve   a calibrator observation -> a caltable (calibration.h)
 *                       and its registry row; products.caltables. Params:
 *                       inputs {group_id, vis_path}, outputs {caltable_path},
 *                       config {model [[ra_deg, dec_deg, flux_jy(, index)]...],
 *                       refant, solint_sec, min_snr, valid_hours (24)}.
 *   calibration-apply   an observation -> its calibrated copy. Params: inputs
 *                       {group_id, vis_path, caltable_path (else the registry's
 *                       fallback chain, resolved on rank 0, the rung recorded
 *                       in params.calibration and the result)}, outputs
 *                       {vis_path}: the next step images the calibrated file.
 *   flag-rfi            an observation -> its copy with interference and bad
 *                       inputs flagged (flagger.h). Params: inputs {group_id,
 *                       vis_path}, outputs {vis_path}, config {threshold,
 *                       rounds, eta, antenna_sigma, max_fraction}: the next step
 *                       works on the flagged file. More than max_fraction (0.5)
 *                       flagged is its quality gate: status qa_failed, nothing
 *                       written, the chain stops (as convert's gate).
 *   mosaic-plan         the head of the "nightly" chain (params {chain}): nothing
 *                       to run; its commit spawns the next step's create-mosaic
 *                       windows (the nightly-mosaic schedule starts it).
 *   validation, crossmatch, photometry
 *                       the science after imaging: science.h.
 *   publish             a product's files moved to the archive: publisher.h.
 *   housekeeping        retention of products and logs, and rows whose files are
 *                       gone (housekeeping.h); one rank, its plan resolved on rank 0.
 *   noop                does nothing (config {sleep_sec}): the engine's own
 *                       overhead, measured by bench/engine.
 *
 * Failures carry a category (error.h, a field of the error set where the
 * failure is known): damaged data is corrupt_input (not retried), bad
 * params or a group that cannot be combined is permanent, and I/O or
 * memory trouble is transient (retried after backoff).
 */
#ifndef CONTIMG_STAGES_H
#define CONTIMG_STAGES_H

#include "config.h"
#include "error.h"
#include "queue.h"

#include <jansson.h>
#include <mpi.h>
#include <stdbool.h>

#define CT_TASK_CONVERT     "convert-uvh5-to-ms"
#define CT_TASK_IMAGING     "imaging"
#define CT_TASK_MOSAIC      "create-mosaic"
#define CT_TASK_NOOP        "noop"
#define CT_TASK_CAL_SOLVE   "calibration-solve"
#define CT_TASK_CAL_APPLY   "calibration-apply"
#define CT_TASK_FLAG        "flag-rfi"
#define CT_TASK_MOSAIC_PLAN "mosaic-plan"

typedef struct ct_stage_outcome {
    json_t *result;      /* {"status", "outputs", "message", "errors", "metrics"} */
    json_t *products;    /* {"visibilities": [...]} or {"images": [...]}; NULL = none */
    bool continue_chain; /* false: the chain stops here (a failed quality gate) */
} ct_stage_outcome;

/* What a chain's next step is spawned from: a task that finished. */
typedef struct ct_stage_follow {
    const char *next;          /* the chain's next task kind */
    const char *chain;         /* the chain's name */
    const char *task_id;       /* the finished task */
    const json_t *params;      /* its params */
    const json_t *result;      /* its result (the outputs the next step reads) */
    const json_t *step_config; /* the next step's config in the chain */
    const char *products_dir;  /* where outputs are planned */
} ct_stage_follow;

enum { CT_STAGE_ANY_RANKS = 1 << 20 };

/* A row of the stage table. */
typedef struct ct_stage {
    const char *name;
    int max_ranks; /* ranks a task can use (at least 1; CT_STAGE_ANY_RANKS) */
    ct_code (*run)(MPI_Comm comm, const json_t *params, const ct_config *cfg, ct_stage_outcome *out,
                   ct_err *err);
    /* The outputs planned for a task of this kind that a chain spawns for
     * group; NULL: none. */
    void (*plan_outputs)(json_t *outputs, const char *group, const char *products_dir);
    /* The spawn entry that follows a chain step (absurd.commit_task's
     * shape); NULL: one task of this kind, ct_stage_next_params. */
    json_t *(*follow)(const ct_stage_follow *f, ct_err *err);
    /* Run by the engine's rank 0, which holds the database, on a claimed
     * task's params before its ranks get them: what only the database knows
     * (calibration-apply's caltable, from the registry's fallback chain).
     * A failure fails the task with err's category. NULL: nothing. */
    ct_code (*resolve)(cq_client *db, const ct_config *cfg, json_t *params, ct_err *err);
    /* What a spawn's params must hold, space-separated: "section.key" a non-empty string,
     * "section.key[]" a non-empty list of them (ct_stage_admit). */
    const char *spawn_keys;
    /* The stage's own admission step before the keys are checked (convert: the seed's time
     * window made one group). NULL: none. */
    ct_code (*admit)(json_t *params, const ct_config *cfg, ct_err *err);
} ct_stage;

/* Rank 0, on a claimed task's params before its ranks get them: every path they name
 * checked (outputs inside cfg->products_dir, inputs inside the data roots: any database
 * client can write params), then the row's resolve. A failure fails the task with err's
 * category (CT_EINVAL, permanent, for a path). */
ct_code ct_stage_prepare(cq_client *db, const ct_config *cfg, const char *task_name, json_t *params,
                         ct_err *err);

/* What the stages' run functions share (stages.c, science.c). params.section.key as a
 * non-empty string, or CT_EINVAL naming it. */
ct_code ct_stage_param_str(const json_t *params, const char *section, const char *key,
                           const char **out, ct_err *err);
/* The result every stage returns: {"status": "success", "outputs", "message", "errors": [],
 * "metrics"} (takes outputs and metrics). */
json_t *ct_stage_result_new(const char *message, json_t *outputs, json_t *metrics);
/* On comm's rank 0: path's directory made, and the temporary files named after it
 * (basename + name_suffix ...) that a killed run of this task left removed (the caller
 * holds the claim, so no live writer owns one). Collective. */
ct_code ct_stage_prepare_output(MPI_Comm comm, const char *path, const char *name_suffix,
                                ct_err *err);

/* The row of a task kind; NULL for a kind no stage runs. */
const ct_stage *ct_stage_find(const char *task_name);

/* The kinds the engine claims, NULL-terminated, in table order. */
const char *const *ct_stage_names(void);

/* Those of them that run on one rank (no-ops, housekeeping, the mosaic planner) -- what
 * ranks short of a whole group can still take -- into out, NULL-terminated (at most cap - 1
 * names); returns how many. */
size_t ct_stage_single_rank_names(const char **out, size_t cap);
bool ct_stage_known(const char *task_name);

/* How many ranks a task of this kind can use (at least 1). */
int ct_stage_max_ranks(const char *task_name);

void ct_stage_outcome_free(ct_stage_outcome *o);

/* Runs one task (collective over comm). On rank 0 of comm, *out holds the
 * outcome on success; on failure every rank gets the code and message, and
 * ct_stage_category() says how the queue should treat it. */
ct_code ct_stage_run(MPI_Comm comm, const char *task_name, const json_t *params,
                     const ct_config *cfg, ct_stage_outcome *out, ct_err *err);

/* How the queue treats a failed stage (see the top of this file). */
ct_category ct_stage_category(const ct_err *err);

/* Before a task is spawned (the API, `contimg task spawn`): its params checked against its
 * stage's contract and completed, so that what the stage would refuse is refused at once
 * (CT_EINVAL, with the reason) and never fails later:
 *   - the seed's shapes translated: inputs.ms_path is inputs.vis_path (a directory, a CASA
 *     Measurement Set, is refused); convert's inputs {input_path, start_time, end_time} are
 *     the one complete observation in that window, {group_id, files} (admit_convert);
 *   - a missing inputs.group_id read from the input's name (YYYY-MM-DDTHH:MM:SS...), and a
 *     group id that is not such a time stamp refused (the products tables key on it);
 *   - outputs not given planned under cfg->products_dir, as a chain plans them;
 *   - every key of the stage's spawn_keys present; the paths as ct_stage_prepare checks
 *     them (outputs inside the products directory, inputs inside CONTIMG_DATA_ROOTS).
 * key (key_size bytes): the idempotency key a spawn naming none should take ("" for none;
 * convert's is its group id, as ingest's, so the two never convert one group twice). Kinds
 * no stage runs pass unchanged: another worker may run them. */
ct_code ct_stage_admit(const char *task_name, json_t *params, const ct_config *cfg, char *key,
                       size_t key_size, ct_err *err);

/* Appends to paths (a JSON array of strings) every visibility file a chain plans for group
 * under products_dir (convert's, the flagged and calibrated copies), each once. */
void ct_stage_planned_vis_paths(const char *group, const char *products_dir, json_t *paths);

/* The params of a convert task for one observation group (ingest); NULL when a file name
 * is not UTF-8 (JSON cannot hold it). */
json_t *ct_stage_convert_params(const char *chain, const json_t *config, const char *group_id,
                                const char *const files[16], const char *products_dir);

/* The params of the task `next` that follows a finished task of a chain:
 * inputs are the group id and the finished task's outputs, outputs are
 * planned under products_dir, config is the chain step's. */
json_t *ct_stage_next_params(const char *next, const json_t *params, const json_t *result,
                             const json_t *step_config, const char *products_dir);

/* The spawn entry (absurd.commit_task's shape) for the chain step f->next
 * after a finished task: by default one task with ct_stage_next_params,
 * keyed chain:group:next and depending on the finished task; for
 * create-mosaic the mosaic planner's entry (step config: tier,
 * images_per_mosaic, overlap; mosaics under products_dir/mosaics). NULL
 * (CT_EINVAL in err) for a kind no stage runs or a step config the planner
 * would refuse. */
json_t *ct_stage_follow_spawns(const ct_stage_follow *f, ct_err *err);

#endif
