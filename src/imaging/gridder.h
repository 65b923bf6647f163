/*
 * gridder.h -- visibilities to a dirty image on one rank, with a stated accuracy.
 *
 * Convention (sky.h): with uvw in wavelengths and (l, m) the direction cosines
 * of a source from the phase centre (l east, m north), the array measures
 *     V = S exp(+2 pi i (u l + v m + w (n - 1))).
 * The dirty image is the weighted adjoint of that measurement, normalized by
 * the sum of the weights:
 *     I(l, m) = sum_k w_k Re(V_k exp(-2 pi i (u_k l + v_k m + w_k (n - 1)))) / sum_k w_k,
 * n = sqrt(1 - l^2 - m^2), so a point source of flux S at a pixel centre shows
 * there with value S, anywhere in the field (the full 3-D transform, w term
 * included). ct_gridder_plan_set_wterms(plan, 0) drops the w term (the 2-D
 * approximation, exact only near the phase centre or for coplanar baselines);
 * when every w is 0 the w term vanishes and the 2-D method runs, bit for bit.
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
 * W-terms: w-stacking with the same kernel along w (an "improved
 * w-stacking"). Over the image, n - 1 runs from its value c at the corner
 * pixel up to 0; with s = n - 1 - c/2, |s| <= |c|/2. Visibilities are gridded
 * in u and v onto w planes w_j = min(w) + j dw, each with the kernel's weight
 * phi((w_k - w_j) / (dw W/2)) along w (W planes per visibility) and the
 * common phase exp(-2 pi i w_k c/2); each plane is transformed and
 * multiplied by exp(-2 pi i w_j s) in image space; the planes are summed and
 * divided by the kernel's transform at dw s as well as in l and m. The
 * spacing dw = 1 / (5 |c|/2) puts the largest |dw s| at 1/5 cycle per plane
 * (u and v reach 1/4 cycle per cell: the finer w spacing pays for the third
 * axis's error), so epsilon holds against the 3-D transform too, measured
 * down to a single visibility (tests/test_gridder.c checks it). Cost: about
 * W + (max w - min w) / dw plane transforms (a 3.5 degree field with w from
 * -13000 to 13000 wavelengths: about 70); the image must lie inside the
 * horizon, and at most 100000 planes are made (CT_EINVAL otherwise).
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

/* Whether the plan applies the w term (nonzero, the default) or ignores w
 * (0: the 2-D approximation, for comparison or coplanar arrays). */
void ct_gridder_plan_set_wterms(ct_gridder_plan *plan, int enabled);

/* The dirty image of n visibilities (see the top of this file). uvw_lambda
 * holds n rows of (u, v, w) in wavelengths; weights may be NULL for unit
 * weights, and must otherwise be finite with a positive sum. image receives
 * ny * nx doubles. Refuses non-finite coordinates. */
ct_code ct_gridder_dirty(ct_gridder_plan *plan, const double *uvw_lambda, const double complex *vis,
                         const double *weights, size_t n, double *image, ct_err *err);

/* The measurement of a model image (the adjoint of ct_gridder_dirty without
 * weights and normalization):
 *     vis_k = sum_pixels image(l, m) exp(+2 pi i (u_k l + v_k m + w_k (n - 1))),
 * to the plan's accuracy, for n rows of uvw_lambda (w ignored when the plan
 * drops the w term). */
ct_code ct_gridder_degrid(ct_gridder_plan *plan, const double *uvw_lambda, const double *image,
                          size_t n, double complex *vis, ct_err *err);

#endif
