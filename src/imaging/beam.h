/*
 * beam.h -- the primary beam of DSA-110's dishes and primary-beam correction.
 *
 * Each dish is a uniformly illuminated aperture of CT_DISH_DIAMETER_M, so
 * its power pattern at frequency f is the Airy pattern of sky.h,
 * (2 J1(x)/x)^2 with x = pi D sin(theta) f / c. The dishes point at the
 * phase centre, which is the image centre, so theta is the angle from it.
 *
 * A wideband image is the weight-averaged sum of the per-channel images,
 * each of which sees the sky attenuated by that channel's beam. The beam the
 * image carries is therefore the weighted mean of the channel beams,
 *     pb(sin_theta) = sum_f w_f Airy(sin_theta, f, D) / sum_f w_f,
 * w_f the total imaging weight at frequency f. Dividing by it is exact for
 * a flat-spectrum source; for other spectra it gives the source's flux at
 * the weighted mean of the channels' responses.
 *
 * Images follow gridder.h: ny rows of nx, pixel (ix, iy) at
 * l = (ix - nx/2) cell, m = (iy - ny/2) cell, and sin_theta = sqrt(l^2 + m^2).
 *
 * Efficiency and accuracy (ct_pb_correct): the beam depends only on the
 * radius, so it is tabulated once, with its analytic derivative, at radii
 * r_j = j h from 0 out to the image corner, and each pixel is a cubic
 * Hermite interpolation in that table. The Airy amplitude 2 J1(x)/x is the
 * Fourier transform of a distribution on [-1, 1], so the power pattern is
 * one on [-2, 2] with fourth moment 5/8, and |d^4 Airy / dx^4| <= 5/8 for
 * every x. The Hermite error is at most h^4 max|f''''| / 384; with
 * h = CT_PB_TABLE_STEP_X / k_max, k_max = pi D f_max / c, every channel is
 * sampled at steps of at most 0.02 in x and the interpolation error is below
 * 0.02^4 (5/8) / 384 = 2.6e-10 absolute, i.e. below 2.6e-8 relative wherever
 * pb >= 0.01 (tests/test_beam.c checks 1e-6 relative against direct
 * evaluation). The table has about 50 k_max r_corner points, each costing
 * n_freq Bessel evaluations: for a 4800 x 4800 image the pixels dominate.
 */
#ifndef CONTIMG_BEAM_H
#define CONTIMG_BEAM_H

#include "error.h"

#include <stddef.h>

#define CT_DISH_DIAMETER_M 4.65 /* DSA-110's dishes */

/* The radial table's step in x = pi D sin(theta) f_max / c (see above). */
#define CT_PB_TABLE_STEP_X 0.02
/* The most points the table may have (two doubles each). */
#define CT_PB_TABLE_MAX 10000000

/* The wideband power beam at sin_theta (>= 0): the weight-averaged Airy
 * power of the n_freq frequencies (Hz). weight may be NULL for equal
 * weights. With n_freq 1 this is ct_airy_power(sin_theta, f, D). The
 * caller guarantees n_freq >= 1 and a positive weight sum (ct_pb_correct
 * checks them); otherwise the result is NaN. */
double ct_pb_value(double sin_theta, size_t n_freq, const double *freq_hz, const double *weight);

/* Primary-beam correction of image (ny rows of nx, pixels cell_rad on a
 * side): corrected = image / pb where pb >= pblimit, NaN (a blanked pixel,
 * as CASA and WSClean write) elsewhere. pb_out, when not NULL, receives the
 * beam at every pixel (the same tabulated value the mask was decided on).
 * corrected may be image itself. weight may be NULL for equal weights.
 * Refuses (CT_EINVAL), before writing anything: pblimit outside (0, 1],
 * nx or ny < 1, cell_rad not positive and finite, n_freq 0, a frequency not
 * positive and finite, a weight negative or not finite, a weight sum of 0,
 * an image reaching the horizon (l^2 + m^2 >= 1 at a corner), and a table
 * of more than CT_PB_TABLE_MAX points (frequencies far above DSA-110's band
 * reaching far out; 1.5 GHz to the horizon needs about 3700). */
ct_code ct_pb_correct(const double *image, int nx, int ny, double cell_rad, const double *freq_hz,
                      const double *weight, size_t n_freq, double pblimit, double *corrected,
                      double *pb_out, ct_err *err);

/* The same for a drift scan, whose dishes point at (point_l[q], point_m[q])
 * (direction cosines from the image centre, east and north) for a share
 * point_weight[q] of the data (the imaging weight of each integration): the
 * beam is the weighted mean over the pointings of the wideband beam centred
 * on each, pb(l, m) = sum_q w_q B(|(l, m) - (l_q, m_q)|) / sum_q w_q (the
 * distance taken in the image plane: exact to second order in the offsets).
 * slant: NULL, or the image's slant projection (xi, eta) (imager.h): pixel
 * (ix, iy) then lies at the direction ct_slant_to_lm gives. threads: OpenMP
 * threads over the rows (0 or 1: one; the same bits either way). The checks of
 * ct_pb_correct, and CT_EINVAL for no pointing, a non-finite offset, or
 * weights that are negative or sum to 0. */
ct_code ct_pb_correct_drift(const double *image, int nx, int ny, double cell_rad,
                            const double *freq_hz, const double *weight, size_t n_freq,
                            const double *point_l, const double *point_m,
                            const double *point_weight, size_t n_point, const double *slant,
                            int threads, double pblimit, double *corrected, double *pb_out,
                            ct_err *err);

#endif
