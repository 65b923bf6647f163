/*
 * photometry.h -- forced photometry at catalogue positions, and its differential
 * normalization by an ensemble of stable reference sources in the same image.
 *
 * Forced photometry: at each catalogue source inside the image (where the primary beam is
 * at least min_pb and the rms map is defined), the amplitude of the restoring beam
 * centred on the catalogue position, fitted by least squares to the background-subtracted
 * pixels within one beam FWHM of it: an unresolved source's peak, unbiased whatever its
 * flux (a non-detection gives a value about 0 with its error, which a light curve needs).
 * Its error is the local rms times the fit's noise gain for noise correlated over the
 * beam (a restored image's noise is the receiver's seen through the beam: the pixels of
 * one beam carry about one independent sample, and the fit's error is about 1.2 rms).
 * Divided by the primary beam there: the flux and its error on the sky.
 *
 * Normalization: an image's flux scale can be off by a few per cent (calibration, the
 * ionosphere); every source in it is off together. The reference sources -- measured at
 * ref_snr or more, not excluded by the caller (known variables) -- each give the ratio
 * of its flux to its baseline (the catalogue flux, or the caller's, e.g. its median over
 * earlier images); the image's factor is their median after clipping at 3 sigma, its
 * error 1.2533 sigma / sqrt(n). Every flux is divided by the factor. Fewer than
 * min_refs references: factor 1 and normalized = false.
 */
#ifndef CONTIMG_PHOTOMETRY_H
#define CONTIMG_PHOTOMETRY_H

#include "error.h"
#include "fitsimage.h"
#include "refcat.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct ct_phot_opts {
    double min_pb;  /* catalogue sources where the primary beam is at least this (0.2) */
    double ref_snr; /* references measured at least this signal-to-noise (20) */
    int min_refs;   /* fewer references: not normalized (5) */
} ct_phot_opts;

void ct_phot_opts_default(ct_phot_opts *o);
ct_code ct_phot_opts_check(const ct_phot_opts *o, ct_err *err);
/* The options present in config (NULL: none) over *o; CT_EINVAL for an unknown key or a
 * value that is not a number. */
ct_code ct_phot_opts_from_json(ct_phot_opts *o, const json_t *config, ct_err *err);

typedef struct ct_phot {
    size_t ref;                       /* index into the catalogue */
    double x, y;                      /* its pixel */
    double peak_jy, rms_jy;           /* the fitted beam amplitude and the local rms, as imaged */
    double pb;                        /* the primary beam there */
    double flux_jy, flux_err_jy;      /* peak / pb, rms / pb */
    double norm_flux_jy, norm_err_jy; /* divided by the image's factor */
    double snr;                       /* peak / rms */
} ct_phot;

typedef struct ct_phot_image {
    const float *data; /* ny x nx restored image (not primary-beam corrected) */
    const float *bkg;  /* its background map (NULL: 0) */
    const float *rms;  /* its rms map */
    const float *pb;   /* primary beam (NULL: 1 everywhere) */
    const ct_fits_image_desc *d;
    const char *projection;
} ct_phot_image;

typedef struct ct_phot_result {
    ct_phot *p; /* in catalogue order */
    size_t n;
    double factor, factor_err; /* the flux scale's factor; 1 and 0 when not normalized */
    size_t n_refs;
    bool normalized;
} ct_phot_result;

/* Forced photometry of every catalogue source inside the image, then normalization.
 * baseline (NULL: the catalogue fluxes) and exclude (NULL: none) are per catalogue
 * index. CT_EINVAL for bad options, CT_ENOMEM. */
ct_code ct_phot_measure(const ct_phot_image *im, const ct_refcat *ref, const double *baseline,
                        const bool *exclude, const ct_phot_opts *o, ct_phot_result *out,
                        ct_err *err);

void ct_phot_result_free(ct_phot_result *r);

#endif
