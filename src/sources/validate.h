/*
 * validate.h -- an image's sources against a reference catalogue: the crossmatch, and
 * the validation built on it (astrometry, flux scale, completeness) with QA thresholds.
 *
 * Crossmatch: every pair of a found source and a catalogue source closer than the match
 * radius, taken closest first, each source and each catalogue entry at most once.
 * Validation, over the matches whose source has at least min_snr:
 *   astrometry   the median offset in RA (times cos Dec) and in Dec, source minus
 *                catalogue, and the scatter (1.4826 x the MAD of each, in quadrature);
 *   flux scale   the median of integrated flux (primary-beam corrected) over catalogue
 *                flux, and its scatter;
 *   completeness of the catalogue sources inside the image (where the primary beam and
 *                the rms map are defined) whose catalogue flux times the primary beam
 *                reaches completeness_snr times the local rms: the fraction matched.
 * Status "passed", "failed" (with the reasons, each a threshold broken) or
 * "insufficient" (fewer than min_matches usable matches: nothing to judge by, not a
 * failure of the image). A failed validation is a result, not an error: the caller
 * records it and goes on.
 */
#ifndef CONTIMG_VALIDATE_H
#define CONTIMG_VALIDATE_H

#include "error.h"
#include "fitsimage.h"
#include "refcat.h"
#include "sources.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct ct_val_opts {
    double match_radius_arcsec; /* 0: half the restoring beam's major axis */
    double min_snr;             /* matches that count for astrometry and flux scale (10) */
    double completeness_snr;    /* expected at least this signal-to-noise (10) */
    double max_offset_arcsec;   /* QA: the median offset at most (0: a fifth of the beam) */
    double flux_ratio_min, flux_ratio_max; /* QA: the flux scale within (0.8, 1.2) */
    double min_completeness;               /* QA: at least (0.8) */
    int min_matches;                       /* fewer usable: "insufficient" (3) */
} ct_val_opts;

void ct_val_opts_default(ct_val_opts *o);
/* CT_EINVAL naming the option (the command line and a task's config). */
ct_code ct_val_opts_check(const ct_val_opts *o, ct_err *err);
/* Reads the options present in config (a JSON object; NULL: none) over *o. CT_EINVAL for
 * a key that is not a number or unknown. */
ct_code ct_val_opts_from_json(ct_val_opts *o, const json_t *config, ct_err *err);

typedef struct ct_match {
    size_t src, ref;                            /* indices into the catalogue and the reference */
    double sep_arcsec, dra_arcsec, ddec_arcsec; /* source minus reference */
} ct_match;

/* The crossmatch of cat and ref within radius_arcsec: *m (malloc'd; NULL when none),
 * sorted by source index. CT_ENOMEM. */
ct_code ct_crossmatch(const ct_src_catalog *cat, const ct_refcat *ref, double radius_arcsec,
                      ct_match **m, size_t *n, ct_err *err);

/* The image the sources came from. */
typedef struct ct_val_image {
    const ct_fits_image_desc *d;
    const char *projection;
    const float *rms; /* ny x nx: ct_src_find's rms map */
    const float *pb;  /* ny x nx primary beam (NULL: 1 everywhere); blank (NaN) outside */
} ct_val_image;

typedef struct ct_validation {
    ct_match *m;
    size_t n_matches;
    double radius_arcsec;
    size_t n_sources, n_astrometry; /* matches with at least min_snr */
    size_t n_ref_in_field, n_expected, n_expected_found;
    double offset_ra_arcsec, offset_dec_arcsec, offset_arcsec, scatter_arcsec;
    double flux_ratio, flux_ratio_scatter;
    double completeness; /* NaN when nothing was expected */
    const char *status;  /* "passed", "failed", "insufficient" */
    char reason[256];    /* why, for failed and insufficient */
} ct_validation;

/* Validates cat (found on im) against ref. CT_EINVAL for bad options; CT_ENOMEM. */
ct_code ct_validate(const ct_val_image *im, const ct_src_catalog *cat, const ct_refcat *ref,
                    const ct_val_opts *o, ct_validation *out, ct_err *err);

void ct_validation_free(ct_validation *v);

/* {"status", "reason", "n_sources", "n_matches", "n_astrometry", "offset_ra_arcsec",
 * "offset_dec_arcsec", "offset_arcsec", "scatter_arcsec", "flux_ratio",
 * "flux_ratio_scatter", "n_ref_in_field", "n_expected", "n_expected_found",
 * "completeness", "radius_arcsec", "thresholds": {...}} and, with matches, "matches":
 * [{"source", "ref_id", "sep_arcsec", "dra_arcsec", "ddec_arcsec", "ref_flux_jy",
 * "int_jy"}...]; NULL when out of memory. */
json_t *ct_validation_json(const ct_validation *v, const ct_val_opts *o, const ct_src_catalog *cat,
                           const ct_refcat *ref, bool matches);

/* The primary beam of an imaging run as the ratio of its restored image to its
 * primary-beam-corrected one (imaging.h: image-pb = image / pb), pixel by pixel, into pb
 * (n values; NaN where either is blank or the restored pixel is 0: those take the mean of
 * their finite neighbours in a second pass). */
void ct_pb_from_images(const float *restored, const float *pbcor, int nx, int ny, float *pb);

#endif
