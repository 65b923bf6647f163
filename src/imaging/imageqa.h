/*
 * imageqa.h -- the figures stored per image in the products table.
 *
 * Images follow gridder.h: ny rows of nx, row-major. NaN pixels are blank
 * (outside the primary-beam mask, beam.h): they are skipped and counted.
 *
 * The noise is the residual image's robust rms, 1.4826 times the median
 * absolute deviation: a Gaussian's MAD is 0.6745 sigma, and unlike the
 * standard deviation the median hardly moves when a few pixels hold
 * uncleaned sources. Medians are exact and found by selection, not by
 * sorting (expected O(n)): for 65536 finite pixels or more, a sample of
 * 32768 brackets the median between two values, one branch-free pass
 * gathers the few per cent of pixels between them and quickselect finds the
 * median there; when the bracket misses or holds too many values (ties),
 * quickselect runs on a scratch copy of all finite pixels. A 4800 x 4800
 * image takes about 0.2 s. The median of an even count is the mean of the
 * two middle values.
 */
#ifndef CONTIMG_IMAGEQA_H
#define CONTIMG_IMAGEQA_H

#include "clean.h"
#include "error.h"

#include <stddef.h>

typedef struct ct_image_qa {
    double rms_jy;        /* 1.4826 * MAD of the residual image's finite pixels */
    double peak_jy;       /* largest finite value of the restored image */
    int peak_x, peak_y;   /* its pixel (ties: lowest row-major index) */
    double dynamic_range; /* peak / rms (0 when rms is 0; negative with a negative peak) */
    double bmaj_arcsec, bmin_arcsec, bpa_deg; /* the restoring beam */
    size_t n_components;                      /* CLEAN components */
    double mean_jy;  /* mean of the residual image's finite pixels (the zero level) */
    size_t n_finite; /* the residual image's finite pixels */
    size_t n_blank;  /* and the others (NaN, blanked; infinities count here too) */
} ct_image_qa;

/* Measures restored and residual (each ny rows of nx; they may be the same
 * array) and copies the beam (radians, clean.h) and n_components into *out.
 * Refuses (CT_EINVAL): nx or ny < 1, a NULL image or beam, a beam not
 * positive and finite, and an image without a finite pixel. */
ct_code ct_image_qa_measure(const double *restored, const double *residual, int nx, int ny,
                            const ct_beam *beam, size_t n_components, ct_image_qa *out,
                            ct_err *err);

/* The median of a[0..n-1] (n >= 1, all finite), reordering a: the mean of
 * the two middle values when n is even. Expected O(n). */
double ct_median_inplace(double *a, size_t n);

#endif
