/*
 * clean.h -- the restoring beam, Hogbom CLEAN and restoration on one rank.
 *
 * Images follow gridder.h: ny rows by nx columns, row-major, pixel (ix, iy)
 * at l = (ix - nx/2) cell, m = (iy - ny/2) cell (l east, m north). A PSF is
 * the dirty image of unit visibilities: the same size as the image, peaking
 * at the centre pixel (nx/2, ny/2), with value 1 there when it comes from
 * ct_gridder_dirty.
 *
 * Beam fit (ct_beam_fit): the main lobe is the set of pixels at or above
 * 0.35 of the centre value that are 4-connected to the centre. With the
 * centre fixed at the peak pixel and the amplitude fixed at the centre value
 * p0, ln(p / p0) is fitted by weighted linear least squares to
 *     -(a dx^2 + b dx dy + c dy^2)
 * (dx, dy the pixel offsets from the centre), each pixel weighted by
 * (p / p0)^2 so that the fit approximates a least-squares fit of the
 * Gaussian itself rather than of its logarithm (which would favour the
 * lobe's low edge). The quadratic form's eigenvalues give the FWHMs
 * (bmaj >= bmin) and its soft eigenvector the position angle. An exact
 * Gaussian is recovered to rounding.
 *
 * Hogbom CLEAN (ct_clean_hogbom): repeatedly find the largest |residual|
 * (within the mask, ties going to the lowest row-major index), record a
 * component of gain * peak / p0 there and subtract that component times the
 * PSF shifted so that its centre lies on the peak pixel. A PSF as large as
 * the image is truncated when shifted: pixels whose offset from the
 * component falls outside it are left untouched, which for components away
 * from the centre leaves their far sidelobes in the residual (and CLEAN then
 * takes them for sources). A PSF twice the image size (psf_nx, psf_ny)
 * covers every offset; the imaging stage uses one.
 *
 * Restoration (ct_clean_restore): the residual plus every component
 * convolved with the restoring beam normalized to a peak of 1 (so a point
 * source of S Jy restores to S Jy/beam), evaluated directly at each pixel
 * within 5 sigma of the major axis (a square box of half-width
 * ceil(5 sigma_maj / cell) pixels) around each component; beyond that the
 * beam is below 4e-6 and is left out.
 */
#ifndef CONTIMG_CLEAN_H
#define CONTIMG_CLEAN_H

#include "error.h"

#include <stddef.h>

/* An elliptical Gaussian beam: FWHMs in radians (bmaj >= bmin > 0) and the
 * position angle of the major axis in radians, from north (+m) towards east
 * (+l), in [0, pi). A circular beam has bpa 0. */
typedef struct ct_beam {
    double bmaj, bmin, bpa;
} ct_beam;

/* Fits the restoring beam to the main lobe of psf (ny rows of nx, both at
 * least 3), whose pixels are cell_rad on a side (see the top of this file).
 * Refuses (CT_EINVAL) a PSF whose largest value is not at the centre pixel or
 * is not positive, non-finite values, and a main lobe too poorly sampled to
 * determine an ellipse. */
ct_code ct_beam_fit(const double *psf, int nx, int ny, double cell_rad, ct_beam *out, ct_err *err);

typedef struct ct_clean_opts {
    double gain;      /* loop gain, in (0, 1]; 0.1 by ct_clean_opts_default */
    int niter;        /* the most components to subtract, >= 0 */
    double threshold; /* stop once the peak |residual| is at or below this, in Jy/beam (>= 0) */
    /* Optional: where components may go (non-zero = allowed), mask_ny rows of
     * mask_nx, which must equal the image's; NULL cleans everywhere. */
    const unsigned char *mask;
    int mask_nx, mask_ny;
    /* The PSF's size, when larger than the image's (0: the same). A PSF of
     * twice the image's size (centre at psf_nx/2, psf_ny/2) holds every
     * offset between two pixels, so that no component's sidelobes are cut. */
    int psf_nx, psf_ny;
    int threads; /* OpenMP threads for the subtraction and the peak search (0 or 1: one);
                    the result is the same whatever they are */
    /* 0: every pixel (Hogbom's algorithm exactly). > 0: only the pixels whose
     * |residual| exceeds it when the call starts (the active set) are
     * searched and subtracted from; the others are left as they were. For a
     * minor cycle whose residual the next major cycle recomputes from the
     * visibilities anyway: a subtraction then costs the active set, not the
     * whole image (at 4800^2 pixels, 0.55 GB of residual and PSF streamed per
     * component). The active pixels get exactly Hogbom's values and the same
     * components as long as no pixel outside the set would have become the
     * peak; one that would (it rose past the peak by the PSF's negative
     * sidelobes) is found by the next major cycle instead. Meant to lie
     * below threshold (imaging.c takes half of it): pixels between the two
     * would otherwise be left above the threshold uncleaned. */
    double active_below;
} ct_clean_opts;

/* gain 0.1, niter 1000, threshold 0, no mask, a PSF of the image's size. */
void ct_clean_opts_default(ct_clean_opts *o);

typedef struct ct_clean_component {
    int ix, iy;  /* pixel */
    double flux; /* Jy, the sum of everything subtracted at this pixel */
} ct_clean_component;

/* One entry per distinct pixel, in the order the pixels were first cleaned.
 * Start from all zeros; free with ct_clean_components_free. */
typedef struct ct_clean_components {
    ct_clean_component *items;
    size_t n, cap;
} ct_clean_components;

void ct_clean_components_free(ct_clean_components *c);

typedef enum ct_clean_stop {
    CT_CLEAN_STOP_NITER,     /* subtracted niter components */
    CT_CLEAN_STOP_THRESHOLD, /* the peak |residual| fell to the threshold (or the mask is empty) */
} ct_clean_stop;

typedef struct ct_clean_result {
    int iterations;       /* components subtracted by this call */
    double peak_residual; /* the peak |residual| within the mask when it stopped */
    ct_clean_stop reason;
} ct_clean_result;

/* A short name for a stop reason ("niter", "threshold"). */
const char *ct_clean_stop_name(ct_clean_stop reason);

/* Hogbom CLEAN of residual (in: the dirty image, out: the residual) with psf
 * (nx by ny, or psf_nx by psf_ny, its largest value positive and at the
 * centre pixel).
 * Components are added to *out (merged with entries already there at the
 * same pixel, so successive calls accumulate one model). Refuses
 * (CT_EINVAL), before changing anything, gain outside (0, 1], niter < 0, a
 * negative or non-finite threshold, a mask of another size, a PSF not
 * peaking at the centre, and non-finite pixels. res may be NULL. */
ct_code ct_clean_hogbom(double *residual, const double *psf, int nx, int ny, const ct_clean_opts *o,
                        ct_clean_components *out, ct_clean_result *res, ct_err *err);

/* restored = residual + components convolved with the beam normalized to a
 * peak of 1 (see the top of this file); restored may be residual itself.
 * Refuses (CT_EINVAL) a beam that is not positive and finite, cell_rad <= 0,
 * and components outside the nx by ny image. */
ct_code ct_clean_restore(const ct_clean_components *c, const ct_beam *b, double cell_rad,
                         const double *residual, int nx, int ny, double *restored, ct_err *err);

#endif
