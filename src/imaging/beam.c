/* beam.c -- see beam.h. */
#define _GNU_SOURCE /* jn() */
#include "beam.h"
#include "gridkernel.h"

#include "sky.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

/* x = pi D sin(theta) / lambda per unit sin(theta) at freq_hz. */
static double airy_k(double freq_hz)
{
    return M_PI * CT_DISH_DIAMETER_M * freq_hz / CT_SPEED_OF_LIGHT;
}

/* d/dx of the Airy power (2 J1(x)/x)^2: 2 a a' with a' = -2 J2(x)/x. */
static double airy_power_dx(double x)
{
    if (fabs(x) < 1e-8)
        return 0.0; /* a' ~ -x/4 */
    double a = 2.0 * j1(x) / x;
    return -4.0 * a * jn(2, x) / x;
}

double ct_pb_value(double sin_theta, size_t n_freq, const double *freq_hz, const double *weight)
{
    double sum = 0, wsum = 0;
    for (size_t f = 0; f < n_freq; f++) {
        double w = weight ? weight[f] : 1.0;
        if (w == 0)
            continue;
        sum += w * ct_airy_power(sin_theta, freq_hz[f], CT_DISH_DIAMETER_M);
        wsum += w;
    }
    return wsum > 0 ? sum / wsum : NAN;
}

/* The radial table (beam.h): value and d/dr at r_j = j step, j = 0..n-1. */
typedef struct pb_table {
    double step;
    size_t n;
    double *val, *der;
} pb_table;

static ct_code table_build(pb_table *t, double r_max, const double *freq_hz, const double *weight,
                           size_t n_freq, ct_err *err)
{
    double k_max = 0, wsum = 0;
    for (size_t f = 0; f < n_freq; f++) {
        k_max = fmax(k_max, airy_k(freq_hz[f]));
        wsum += weight ? weight[f] : 1.0;
    }
    t->step = CT_PB_TABLE_STEP_X / k_max;
    /* At least two nodes so that every radius has an interval. */
    double intervals = ceil(r_max / t->step);
    if (intervals + 1 > CT_PB_TABLE_MAX)
        return ct_fail(err, CT_EINVAL,
                       "primary beam: %.0f table points needed (highest frequency %g Hz out to "
                       "sin(theta) %g), more than %d",
                       intervals + 1, k_max * CT_SPEED_OF_LIGHT / (M_PI * CT_DISH_DIAMETER_M),
                       r_max, CT_PB_TABLE_MAX);
    t->n = (size_t)intervals + 2;
    t->val = calloc(t->n, sizeof *t->val);
    t->der = calloc(t->n, sizeof *t->der);
    if (!t->val || !t->der) {
        free(t->val);
        free(t->der);
        return ct_fail(err, CT_ENOMEM, "primary beam: no memory for a %zu-point table", t->n);
    }
    /* Channel by channel, so each frequency's constants are computed once. */
    for (size_t f = 0; f < n_freq; f++) {
        double w = (weight ? weight[f] : 1.0) / wsum, k = airy_k(freq_hz[f]);
        if (w == 0)
            continue;
        for (size_t j = 0; j < t->n; j++) {
            double r = (double)j * t->step;
            t->val[j] += w * ct_airy_power(r, freq_hz[f], CT_DISH_DIAMETER_M);
            t->der[j] += w * k * airy_power_dx(k * r);
        }
    }
    return CT_OK;
}

/* Cubic Hermite interpolation of the table at radius r (0 <= r <= r_max). */
static double table_eval(const pb_table *t, double r)
{
    double s = r / t->step;
    size_t j = (size_t)s;
    if (j > t->n - 2)
        j = t->n - 2;
    double u = s - (double)j, u2 = u * u, u3 = u2 * u;
    double h00 = 2 * u3 - 3 * u2 + 1, h10 = u3 - 2 * u2 + u;
    double h01 = -2 * u3 + 3 * u2, h11 = u3 - u2;
    return h00 * t->val[j] + h10 * t->step * t->der[j] + h01 * t->val[j + 1] +
           h11 * t->step * t->der[j + 1];
}

/* The beam averaged over pointings (pl, pm) with weights pw: see beam.h. */
static ct_code pb_apply(const double *image, int nx, int ny, double cell_rad, const double *freq_hz,
                        const double *weight, size_t n_freq, const double *pl, const double *pm,
                        const double *pw, size_t n_point, const double *slant, int threads,
                        double pblimit, double *corrected, double *pb_out, ct_err *err)
{
    const double xi = slant ? slant[0] : 0, eta = slant ? slant[1] : 0;
    if (!isfinite(xi) || !isfinite(eta) || fabs(xi) > 10 || fabs(eta) > 10)
        return ct_fail(err, CT_EINVAL, "primary beam: slant (%g, %g)", xi, eta);
    if (!(pblimit > 0 && pblimit <= 1))
        return ct_fail(err, CT_EINVAL, "primary beam: pblimit %g is outside (0, 1]", pblimit);
    if (nx < 1 || ny < 1)
        return ct_fail(err, CT_EINVAL, "primary beam: image size %d x %d", nx, ny);
    if (!image || !corrected)
        return ct_fail(err, CT_EINVAL, "primary beam: no image");
    if (!(cell_rad > 0) || !isfinite(cell_rad))
        return ct_fail(err, CT_EINVAL, "primary beam: cell %g rad is not positive", cell_rad);
    if (n_freq == 0 || !freq_hz)
        return ct_fail(err, CT_EINVAL, "primary beam: no frequencies");
    double wsum = 0;
    for (size_t f = 0; f < n_freq; f++) {
        if (!(freq_hz[f] > 0) || !isfinite(freq_hz[f]))
            return ct_fail(err, CT_EINVAL, "primary beam: frequency %zu is %g Hz", f, freq_hz[f]);
        double w = weight ? weight[f] : 1.0;
        if (!(w >= 0) || !isfinite(w))
            return ct_fail(err, CT_EINVAL, "primary beam: weight %zu is %g", f, w);
        wsum += w;
    }
    if (!(wsum > 0) || !isfinite(wsum))
        return ct_fail(err, CT_EINVAL, "primary beam: the weights sum to %g", wsum);
    double psum = 0;
    for (size_t q = 0; q < n_point; q++) {
        if (!isfinite(pl[q]) || !isfinite(pm[q]) || !(pw[q] >= 0) || !isfinite(pw[q]))
            return ct_fail(err, CT_EINVAL, "primary beam: pointing %zu (%g, %g) weight %g", q,
                           pl[q], pm[q], pw[q]);
        psum += pw[q];
    }
    if (!(psum > 0))
        return ct_fail(err, CT_EINVAL, "primary beam: the pointings' weights sum to %g", psum);

    /* The farthest pixel from the centre: column 0 or nx - 1, row 0 or ny - 1. */
    double dx = fmax(nx / 2, nx - 1 - nx / 2) * cell_rad;
    double dy = fmax(ny / 2, ny - 1 - ny / 2) * cell_rad;
    double r2_max = dx * dx + dy * dy;
    if (!(r2_max < 1))
        return ct_fail(err, CT_EINVAL,
                       "primary beam: the image corner is beyond the horizon (l^2 + m^2 = %g)",
                       r2_max);
    double off = 0;
    for (size_t q = 0; q < n_point; q++)
        off = fmax(off, hypot(pl[q], pm[q]));
    /* A slant moves a pixel's direction by (xi, eta) (n - 1) at most. */
    double r_max = sqrt(r2_max) + off + (fabs(xi) + fabs(eta)) * (1 - sqrt(1 - r2_max));

    pb_table t = {0};
    ct_code rc = table_build(&t, r_max, freq_hz, weight, n_freq, err);
    if (rc != CT_OK)
        return rc;
        /* Rows across the threads: every pixel is its own sum, the same bits
         * whatever they are (a drift scan's beam is a mean over its pointings,
         * 24 table look-ups a pixel: 23 million pixels took 7 s on one thread). */
#pragma omp parallel for num_threads(threads > 0 ? threads : 1) schedule(static)
    for (int iy = 0; iy < ny; iy++) {
        for (int ix = 0; ix < nx; ix++) {
            double l = (ix - nx / 2) * cell_rad, m = (iy - ny / 2) * cell_rad;
            const bool sky = (xi == 0 && eta == 0) || ct_slant_to_lm(l, m, xi, eta, &l, &m);
            size_t p = (size_t)iy * (size_t)nx + (size_t)ix;
            double pb;
            if (!sky) {
                pb = 0; /* off the sky: no beam there, and no pixel */
            } else if (n_point == 1 && pl[0] == 0 && pm[0] == 0) {
                pb = table_eval(&t, sqrt(l * l + m * m));
            } else {
                double s = 0;
                for (size_t q = 0; q < n_point; q++)
                    if (pw[q] > 0)
                        s += pw[q] * table_eval(&t, hypot(l - pl[q], m - pm[q]));
                pb = s / psum;
            }
            corrected[p] = pb >= pblimit ? image[p] / pb : NAN;
            if (pb_out)
                pb_out[p] = pb;
        }
    }
    free(t.val);
    free(t.der);
    return CT_OK;
}

ct_code ct_pb_correct(const double *image, int nx, int ny, double cell_rad, const double *freq_hz,
                      const double *weight, size_t n_freq, double pblimit, double *corrected,
                      double *pb_out, ct_err *err)
{
    const double zero = 0, one = 1;
    return pb_apply(image, nx, ny, cell_rad, freq_hz, weight, n_freq, &zero, &zero, &one, 1, NULL,
                    1, pblimit, corrected, pb_out, err);
}

ct_code ct_pb_correct_drift(const double *image, int nx, int ny, double cell_rad,
                            const double *freq_hz, const double *weight, size_t n_freq,
                            const double *point_l, const double *point_m,
                            const double *point_weight, size_t n_point, const double *slant,
                            int threads, double pblimit, double *corrected, double *pb_out,
                            ct_err *err)
{
    if (n_point == 0 || !point_l || !point_m || !point_weight)
        return ct_fail(err, CT_EINVAL, "primary beam: no pointings");
    return pb_apply(image, nx, ny, cell_rad, freq_hz, weight, n_freq, point_l, point_m,
                    point_weight, n_point, slant, threads, pblimit, corrected, pb_out, err);
}
