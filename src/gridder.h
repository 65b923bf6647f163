/*
 * gridder.h -- visibilities to a dirty image on one rank, with a stated accuracy.
 *
 * Convention (sky.h): with uvw in wavelengths and (l, m) the direction cosines
 * of a source from the phase centre (l east, m north), the array measures
 *     V = S exp(+2 pi i (u l + v m + w (n - 1))).
 * The dirty image is the weighted adjoint of that measurement, normalized by
 * the sum of the weights:
 *     I(l, m) = sum_k w_k Re(V_k exp(-2 pi i (u_k l + v_k m))) / sum_k w_k,
 * so a point source of flux S at a pixel centre shows there with value S.
 * This first slice is 2-D: the w coordinate is read and ignored. W-terms
 * (w-stacking or w-projection) come next; until then the image is exact only
 * for sources close to the phase centre or for coplanar baselines.
 *
 * Images are ny rows by nx columns, row-major: pixel (ix, iy) is at
 *     l = (ix - nx/2) cell,  m = (iy - ny/2) cell,
 * rows run south to north (m increasing), columns west to east (l increasing).
 *
 * Method: convolutional gridding onto a grid padded by an oversampling factor
 * of 2 with the "exponential of semicircle" kernel
 *     phi(x) = exp(beta (sqrt(1 - x^2) - 1)),  |x| <= 1,
 * of support W cells, a 2-D FFT, division by the kernel's Fourier transform
 * (the grid correction, computed by Gauss-Legendre quadrature) and cropping.
 * W and beta are chosen from the requested epsilon: the largest |difference|
 * between the result and a direct Fourier transform at the pixel centres,
 * relative to the largest |pixel| of the direct transform, stays at or below
 * epsilon, measured down to a single visibility (tests/test_gridder.c checks
 * it). Requests below 1e-13 get the best kernel, which reaches about 1e-13.
 *
 * uv coordinates may lie anywhere (on the pixel lattice the transform is
 * periodic in u with period 1/cell, so nothing is lost at the grid's edge),
 * but pixels undersample the fringes of baselines longer than 1/(2 cell)
 * wavelengths: choose cell <= 1/(2 max|u|) to image the whole band.
 */
#ifndef CONTIMG_GRIDDER_H
#define CONTIMG_GRIDDER_H

#include "error.h"

#include <complex.h>
#include <stddef.h>

/* The most memory a plan may use (grid, FFT workspace, correction). */
#define CT_GRIDDER_MAX_BYTES (8.0 * 1024 * 1024 * 1024)

typedef struct ct_gridder_plan ct_gridder_plan;

/* Plans imaging onto an nx by ny image (both even, at least 2) of square
 * pixels cell_rad on a side (in direction cosine), to relative accuracy
 * epsilon in [1e-14, 1e-1]. Refuses, with CT_EINVAL and without allocating,
 * a plan whose memory would exceed CT_GRIDDER_MAX_BYTES. */
ct_code ct_gridder_plan_create(int nx, int ny, double cell_rad, double epsilon,
                               ct_gridder_plan **out, ct_err *err);

/* Frees a plan; NULL is ignored. */
void ct_gridder_plan_destroy(ct_gridder_plan *plan);

/* The kernel the plan chose: its support in grid cells and its beta. */
void ct_gridder_plan_kernel(const ct_gridder_plan *plan, int *support, double *beta);

/* The dirty image of n visibilities (see the top of this file). uvw_lambda
 * holds n rows of (u, v, w) in wavelengths; weights may be NULL for unit
 * weights, and must otherwise be finite with a positive sum. image receives
 * ny * nx doubles. Refuses non-finite coordinates. */
ct_code ct_gridder_dirty(ct_gridder_plan *plan, const double *uvw_lambda, const double complex *vis,
                         const double *weights, size_t n, double *image, ct_err *err);

/* The measurement of a model image (the adjoint of ct_gridder_dirty without
 * weights and normalization):
 *     vis_k = sum_pixels image(l, m) exp(+2 pi i (u_k l + v_k m)),
 * to the plan's accuracy, for n rows of uvw_lambda. */
ct_code ct_gridder_degrid(ct_gridder_plan *plan, const double *uvw_lambda, const double *image,
                          size_t n, double complex *vis, ct_err *err);

#endif
