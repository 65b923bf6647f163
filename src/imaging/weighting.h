/*
 * weighting.h -- imaging weights: natural, uniform and Briggs (robust), with a
 * uv-range cut, computed from the density of the data on the imaging grid.
 *
 * Inputs. uvw_lambda holds n rows of (u, v, w) in wavelengths (w is not
 * read); natural_w holds the n natural weights (for instance
 * nsamples / sigma^2), 0 for flagged data. The weights go to the dirty imager
 * (gridder.h) as they are; the imager normalizes by their sum, so only their
 * ratios matter for the image.
 *
 * Which points are kept. A point k is kept when all of these hold, and gets
 * out_w[k] = 0 otherwise:
 *   - natural_w[k] > 0 (zero means flagged);
 *   - the uv range, inclusive at both ends, on the baseline length
 *     r = sqrt(u^2 + v^2):  min_uv_lambda <= r <= max_uv_lambda
 *     (min_uv_lambda = 0 means no lower limit; max_uv_lambda = 0 or +inf means
 *     no upper limit);
 *   - the point lies inside the uv extent of the imaging grid:
 *     |u| < 1 / (2 cell_rad) and |v| < 1 / (2 cell_rad). Pixels of size cell
 *     undersample the fringes of longer baselines, which therefore cannot be
 *     imaged; the cut is made for every kind of weighting, so that changing
 *     the weighting never changes which data are in the image.
 *
 * The uv grid. The density is counted on the FFT grid of the image: nx by ny
 * cells of size du = 1 / (nx cell_rad), dv = 1 / (ny cell_rad). Point (u, v)
 * falls into cell
 *     (iu, iv) = (floor(u / du + 1/2) mod nx, floor(v / dv + 1/2) mod ny),
 * i.e. cells are centred on multiples of (du, dv), and indices wrap as the
 * FFT grid does (the cell at u = +nx du / 2 is the one at -nx du / 2). The
 * imager grids every visibility together with its Hermitian conjugate at
 * (-u, -v), so both count: a kept point contributes its natural weight to its
 * own cell and to the mirrored cell (-iu mod nx, -iv mod ny) (twice to a cell
 * that is its own mirror, such as the one at u = v = 0). W_c is the sum so
 * formed in cell c, and W_k the value of W in point k's cell; the mirrored
 * cell holds the same W, so a point and its conjugate get the same weight.
 *
 * The weights, for a kept point k (w_k = natural_w[k]):
 *   natural:  out_k = w_k.
 *   uniform:  out_k = w_k / W_k.
 *             Then in every occupied cell the output weights of the points
 *             and conjugates gridded there sum to exactly 1: a flat density.
 *   Briggs:   out_k = w_k / (1 + W_k f^2),
 *             f^2 = (5 10^(-R))^2 / (sum_c W_c^2 / sum_g w_g),
 *             where sum_g runs over everything gridded, points and
 *             conjugates, so sum_g w_g = 2 sum_k w_k, and
 *             sum_c W_c^2 / sum_g w_g is the mean density seen by a gridded
 *             visibility (unchanged by the Hermitian doubling). R = robust in
 *             [-2, 2]: as R -> +2, W f^2 -> 0 and the weights tend to natural;
 *             as R -> -2, W f^2 >> 1 and they tend to uniform (times the
 *             constant 1 / f^2). R = 0 is the DSA-110 contimg default, 0.5 that
 *             of the continuum successor (with min_uv_lambda = 1000).
 *
 * The only state is the density grid, built and freed within one call, so
 * there is no handle.
 */
#ifndef CONTIMG_WEIGHTING_H
#define CONTIMG_WEIGHTING_H

#include "error.h"

#include <stddef.h>

/* The most memory the density grid (nx * ny doubles) may use. */
#define CT_WEIGHT_MAX_BYTES (4.0 * 1024 * 1024 * 1024)

typedef enum { CT_WEIGHT_NATURAL, CT_WEIGHT_UNIFORM, CT_WEIGHT_BRIGGS } ct_weight_kind;

typedef struct ct_weight_opts {
    ct_weight_kind kind;
    double robust;                       /* Briggs robust R in [-2, 2]; read only for Briggs */
    double min_uv_lambda, max_uv_lambda; /* uv range on sqrt(u^2 + v^2), wavelengths, inclusive;
                                            min 0 = none; max 0 or +inf = none */
    int nx, ny;                          /* the imaging grid (as for the gridder) */
    double cell_rad;                     /* its pixel size, direction cosine */
} ct_weight_opts;

/* Computes n imaging weights into out_w (see the top of this file). out_w may
 * be the same array as natural_w. Refuses with CT_EINVAL, leaving out_w
 * untouched: an unknown kind; for Briggs a robust outside [-2, 2] or NaN;
 * nx or ny below 2; cell_rad not positive and finite; a uv range that is
 * negative, NaN, or has min > max (with a max set); a negative, NaN or
 * infinite natural weight; a non-finite u or v; NULL arrays; and n == 0 or no
 * point kept ("no data left after weighting / uv cut": empty or fully flagged
 * data). CT_ENOMEM when the density grid cannot be allocated, CT_EINVAL when
 * it would exceed CT_WEIGHT_MAX_BYTES. */
ct_code ct_weights_compute(const ct_weight_opts *o, const double *uvw_lambda,
                           const double *natural_w, size_t n, double *out_w, ct_err *err);

/* The pieces ct_weights_compute is made of, for the distributed imager
 * (imager.h), which counts the density across ranks but must weight alike. */

/* The option checks of ct_weights_compute (everything but the data). */
ct_code ct_weight_opts_check(const ct_weight_opts *o, ct_err *err);
/* Whether a point is kept (natural_w > 0, inside the uv range and the grid). */
int ct_weight_kept(const ct_weight_opts *o, double u, double v, double natural_w);
/* The unwrapped cell numbers (floor(u / du + 1/2), floor(v / dv + 1/2)). */
void ct_weight_cell(const ct_weight_opts *o, double u, double v, long long *iu, long long *iv);
/* Briggs f^2 from sum_k w_k W_k and sum_k w_k over the kept points. */
double ct_weight_briggs_f2(double robust, double sum_wW, double sum_w);
/* A kept point's output weight, given W in its cell (f2 is read for Briggs only). */
double ct_weight_final(const ct_weight_opts *o, double natural_w, double cell_W, double f2);

#endif
