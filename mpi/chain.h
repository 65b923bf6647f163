/*
 * chain.h -- which task follows which: the pipeline's chains as configuration.
 *
 * A chain is a named list of steps; a step is a task name and the `config`
 * object its tasks get in their params. When the engine commits a task of
 * chain C, it spawns the step after the task's own in C, in the same
 * transaction. The built-in chains are the seed pipeline's, each flagging
 * interference (flag-rfi) before anything uses the data:
 *
 *   standard   convert -> flag-rfi -> calibration-solve -> calibration-apply
 *              -> imaging -> validation -> crossmatch -> photometry
 *   quick      convert -> flag-rfi -> imaging -> create-mosaic (once a mosaic's
 *              window of images is complete: the planner of sql/0003_mosaics.sql)
 *   calibrator convert -> flag-rfi -> calibration-solve
 *   target     convert -> flag-rfi -> calibration-apply -> imaging
 *   nightly    mosaic-plan -> create-mosaic {tier science}: every complete
 *              window of 100 images not yet mosaicked (the nightly-mosaic
 *              schedule that `contimg db migrate` installs starts it)
 *
 * (convert is the task name convert-uvh5-to-ms.) A chains file replaces
 * them all: a JSON object of chain name to an array of steps, each step
 * either "task-name" or {"task": "task-name", "config": {...}}.
 */
#ifndef CONTIMG_CHAIN_H
#define CONTIMG_CHAIN_H

#include "error.h"

#include <jansson.h>

typedef struct ct_chains ct_chains;

/* Loads the chains of path, or the built-in ones when path is NULL or "".
 * CT_EINVAL names what is malformed; CT_ENOTFOUND for a missing file. */
ct_code ct_chains_load(const char *path, ct_chains **out, ct_err *err);
void ct_chains_free(ct_chains *c);

/* The first step of chain `name`; CT_ENOTFOUND when there is no such chain.
 * *task and *config are borrowed from c (config may be NULL). */
ct_code ct_chain_first(const ct_chains *c, const char *name, const char **task,
                       const json_t **config, ct_err *err);

/* The step after `task` in chain `name`: *next is NULL when task is the
 * last. CT_ENOTFOUND when there is no such chain or task is not in it. */
ct_code ct_chain_next(const ct_chains *c, const char *name, const char *task, const char **next,
                      const json_t **config, ct_err *err);

#endif
