/*
 * science.h -- the stages after imaging (issue 18), rows of the stage table (stages.h):
 *
 *   validation   a restored image -> its sources (sources.h), a CSV catalogue beside it,
 *                and its validation against the reference catalogue (validate.h);
 *                products.catalogs, products.sources, products.validations. Params:
 *                inputs {group_id, image_path, pb_path (the primary-beam-corrected
 *                twin: the beam is their ratio)}, outputs {catalog_path}, config
 *                {"sources": {seed_sigma, island_sigma, box, max_components},
 *                "thresholds": {match_radius_arcsec, min_snr, completeness_snr,
 *                max_offset_arcsec, flux_ratio_min, flux_ratio_max, min_completeness,
 *                min_matches}}. A failed validation is recorded (status failed, the
 *                reasons) and the chain goes on: it judges the image, it does not stop
 *                the night.
 *   crossmatch   the catalogue validation wrote -> each source's reference catalogue
 *                entry (validate.h's crossmatch); products.sources.ref_id. Params:
 *                inputs {group_id, image_path, catalog_path}, config
 *                {match_radius_arcsec (0: half the beam)}.
 *   photometry   a restored image -> forced photometry at every reference source in it,
 *                normalized by the image's stable references (photometry.h);
 *                products.photometry and the light curves' variability. Params: inputs
 *                {group_id, image_path, pb_path}, config {min_pb, ref_snr, min_refs}.
 *
 * The reference catalogue is CONTIMG_REFCAT (never a path from params: any database
 * client writes those). Without one, validation records status no_catalog and the other
 * two finish with nothing to do, saying so. Each runs on one rank. Damaged images are
 * corrupt_input; a catalogue that cannot be read is permanent (configuration).
 */
#ifndef CONTIMG_SCIENCE_H
#define CONTIMG_SCIENCE_H

#include "stages.h"

#define CT_TASK_VALIDATION "validation"
#define CT_TASK_CROSSMATCH "crossmatch"
#define CT_TASK_PHOTOMETRY "photometry"

/* The catalogue beside an image PREFIX-image.fits: PREFIX + this (housekeeping removes it
 * with the image). */
#define CT_SCIENCE_CATALOG_SUFFIX "-sources.csv"

ct_code ct_science_validation(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                              ct_stage_outcome *out, ct_err *err);
ct_code ct_science_crossmatch(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                              ct_stage_outcome *out, ct_err *err);
ct_code ct_science_photometry(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                              ct_stage_outcome *out, ct_err *err);

/* The catalogue validation writes for group: products_dir/images/GROUP-sources.csv,
 * beside the image. */
void ct_science_validation_outputs(json_t *outputs, const char *group, const char *products_dir);

#endif
