/*
 * skyframe.h -- an image's pixels and the sky's directions.
 *
 * Every direction is a unit vector (ICRS). A projection's frame is its reference
 * direction p with the local east and north unit vectors e and n there: a direction s
 * has SIN coordinates (l, m) = (s.e, s.n), TAN coordinates (s.e, s.n) / (s.p), and lies
 * acos(s.p) from p. An image (fitsimage.h's layout: x along -RA, CDELT1 = -cell) maps
 * its 0-based pixel (fx, fy) to (l, m) = ((crpix1 - 1 - fx) cell, (fy - crpix2 + 1) cell),
 * through the slant (PV2_1, PV2_2; gridkernel.h) for SIN images that carry one. The
 * mosaic resamples images through it; source finding and photometry place sources and
 * catalogue positions with it, so a source and its pixel agree to the last bit.
 */
#ifndef CONTIMG_SKYFRAME_H
#define CONTIMG_SKYFRAME_H

#include "error.h"
#include "fitsimage.h"

#include <stdbool.h>

typedef struct ct_skyframe {
    double p[3], e[3], n[3];
} ct_skyframe;

void ct_skyframe_make(ct_skyframe *f, double ra_deg, double dec_deg);
double ct_dot3(const double *a, const double *b);
void ct_radec_to_dir(double ra_deg, double dec_deg, double s[3]);
/* RA in [0, 360), Dec in [-90, 90]. */
void ct_dir_to_radec(const double s[3], double *ra_deg, double *dec_deg);
/* The angle between two directions, in degrees (accurate at small angles too). */
double ct_dir_sep_deg(const double a[3], const double b[3]);

typedef struct ct_imgwcs {
    ct_skyframe f;
    bool tan;        /* TAN, else SIN */
    double cell_rad; /* pixel size */
    double crpix1, crpix2;
    double xi, eta; /* SIN's slant, PV2_1 and PV2_2 (0 for none) */
} ct_imgwcs;

/* The projection of image d (projection "SIN" or "TAN"; NULL: SIN; a CRPIX of 0 is
 * fitsimage.h's default, n / 2 + 1). CT_EINVAL for any
 * other projection or a cell that is not positive. */
ct_code ct_imgwcs_make(ct_imgwcs *w, const ct_fits_image_desc *d, const char *projection,
                       ct_err *err);

/* The direction of pixel (fx, fy) (0-based, fractional); false past a SIN image's
 * horizon. */
bool ct_imgwcs_pixel_to_dir(const ct_imgwcs *w, double fx, double fy, double s[3]);

/* The pixel of direction s; false when s is on the far side of the projection (TAN:
 * 90 degrees or more from p; SIN: past the horizon). */
bool ct_imgwcs_dir_to_pixel(const ct_imgwcs *w, const double s[3], double *fx, double *fy);

/* The cone holding an nx x ny image: the direction of its centre pixel and the largest
 * separation from it to a pixel's corner, plus one pixel (degrees; at most 89); where the
 * image reaches past a SIN horizon, 89. Catalogue searches over an image start here, not
 * at CRPIX (a mosaic's or a cut-out's reference pixel need not be its centre). */
void ct_imgwcs_field(const ct_imgwcs *w, int nx, int ny, double *ra_deg, double *dec_deg,
                     double *radius_deg);

#endif
