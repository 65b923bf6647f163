/* weighting.c -- see weighting.h. */
#include "weighting.h"

#include <math.h>
#include <stdlib.h>

/* Cell number i wrapped to an index in [0, n), as on the periodic FFT grid. */
static long long wrap(long long i, int n)
{
    long long r = i % n;
    return r < 0 ? r + n : r;
}

/* Whether a point is kept (weight > 0, inside the uv range and the grid). */
int ct_weight_kept(const ct_weight_opts *o, double u, double v, double w)
{
    if (!(w > 0))
        return 0;
    double half = 0.5 / o->cell_rad;
    if (fabs(u) >= half || fabs(v) >= half)
        return 0;
    double r = sqrt(u * u + v * v);
    if (r < o->min_uv_lambda)
        return 0;
    if (o->max_uv_lambda > 0 && !isinf(o->max_uv_lambda) && r > o->max_uv_lambda)
        return 0;
    return 1;
}

/* The unwrapped cell numbers of (u, v): floor(u / du + 1/2), floor(v / dv + 1/2). */
void ct_weight_cell(const ct_weight_opts *o, double u, double v, long long *iu, long long *iv)
{
    *iu = (long long)floor(u * o->nx * o->cell_rad + 0.5);
    *iv = (long long)floor(v * o->ny * o->cell_rad + 0.5);
}

double ct_weight_briggs_f2(double robust, double sum_wW, double sum_w)
{
    double s = 5.0 * pow(10.0, -robust);
    return s * s / (sum_wW / sum_w);
}

double ct_weight_final(const ct_weight_opts *o, double natural_w, double cell_W, double f2)
{
    switch (o->kind) {
    case CT_WEIGHT_UNIFORM: return natural_w / cell_W;
    case CT_WEIGHT_BRIGGS: return natural_w / (1.0 + cell_W * f2);
    default: return natural_w;
    }
}

ct_code ct_weight_opts_check(const ct_weight_opts *o, ct_err *err)
{
    if (!o)
        return ct_fail(err, CT_EINVAL, "weights: NULL argument");
    if (o->kind != CT_WEIGHT_NATURAL && o->kind != CT_WEIGHT_UNIFORM && o->kind != CT_WEIGHT_BRIGGS)
        return ct_fail(err, CT_EINVAL, "weights: unknown weighting kind %d", (int)o->kind);
    if (o->kind == CT_WEIGHT_BRIGGS && !(o->robust >= -2 && o->robust <= 2))
        return ct_fail(err, CT_EINVAL, "weights: Briggs robust %g is outside [-2, 2]", o->robust);
    if (o->nx < 2 || o->ny < 2)
        return ct_fail(err, CT_EINVAL, "weights: grid %d x %d is smaller than 2 x 2", o->nx, o->ny);
    if (!(o->cell_rad > 0) || isinf(o->cell_rad))
        return ct_fail(err, CT_EINVAL, "weights: cell %g rad is not positive and finite",
                       o->cell_rad);
    if (!(o->min_uv_lambda >= 0) || isinf(o->min_uv_lambda))
        return ct_fail(err, CT_EINVAL, "weights: minimum uv %g lambda is not finite and >= 0",
                       o->min_uv_lambda);
    if (!(o->max_uv_lambda >= 0))
        return ct_fail(err, CT_EINVAL, "weights: maximum uv %g lambda is negative or NaN",
                       o->max_uv_lambda);
    if (o->max_uv_lambda > 0 && o->min_uv_lambda > o->max_uv_lambda)
        return ct_fail(err, CT_EINVAL, "weights: minimum uv %g lambda exceeds maximum %g lambda",
                       o->min_uv_lambda, o->max_uv_lambda);
    if (o->kind != CT_WEIGHT_NATURAL &&
        (double)o->nx * (double)o->ny * sizeof(double) > CT_WEIGHT_MAX_BYTES)
        return ct_fail(err, CT_EINVAL, "weights: density grid %d x %d exceeds %.0f bytes", o->nx,
                       o->ny, CT_WEIGHT_MAX_BYTES);
    return CT_OK;
}

static ct_code validate(const ct_weight_opts *o, const double *uvw, const double *nat, size_t n,
                        const double *out, ct_err *err)
{
    if (!o || !out || (n > 0 && (!uvw || !nat)))
        return ct_fail(err, CT_EINVAL, "weights: NULL argument");
    ct_code rc = ct_weight_opts_check(o, err);
    if (rc != CT_OK)
        return rc;
    for (size_t k = 0; k < n; k++) {
        double w = nat[k];
        if (!(w >= 0) || isinf(w))
            return ct_fail(err, CT_EINVAL,
                           "weights: natural weight %g of row %zu is not finite "
                           "and >= 0",
                           w, k);
        if (!isfinite(uvw[3 * k]) || !isfinite(uvw[3 * k + 1]))
            return ct_fail(err, CT_EINVAL, "weights: non-finite uv coordinate in row %zu", k);
    }
    return CT_OK;
}

ct_code ct_weights_compute(const ct_weight_opts *o, const double *uvw_lambda,
                           const double *natural_w, size_t n, double *out_w, ct_err *err)
{
    ct_code rc = validate(o, uvw_lambda, natural_w, n, out_w, err);
    if (rc != CT_OK)
        return rc;
    size_t nkept = 0;
    for (size_t k = 0; k < n; k++)
        nkept += (size_t)ct_weight_kept(o, uvw_lambda[3 * k], uvw_lambda[3 * k + 1], natural_w[k]);
    if (nkept == 0)
        return ct_fail(err, CT_EINVAL,
                       "weights: no data left after weighting / uv cut "
                       "(%zu rows, all flagged or outside the uv range or grid)",
                       n);

    if (o->kind == CT_WEIGHT_NATURAL) {
        for (size_t k = 0; k < n; k++)
            out_w[k] = ct_weight_kept(o, uvw_lambda[3 * k], uvw_lambda[3 * k + 1], natural_w[k])
                           ? natural_w[k]
                           : 0.0;
        return CT_OK;
    }

    const int nx = o->nx, ny = o->ny;
    double *grid = calloc((size_t)nx * (size_t)ny, sizeof *grid);
    if (!grid)
        return ct_fail(err, CT_ENOMEM, "weights: cannot allocate a %d x %d density grid", nx, ny);

    /* W_c: each kept point in its cell and, as its conjugate, in the mirrored cell. */
    double wsum = 0;
    for (size_t k = 0; k < n; k++) {
        double u = uvw_lambda[3 * k], v = uvw_lambda[3 * k + 1], w = natural_w[k];
        if (!ct_weight_kept(o, u, v, w))
            continue;
        long long iu, iv;
        ct_weight_cell(o, u, v, &iu, &iv);
        grid[wrap(iv, ny) * nx + wrap(iu, nx)] += w;
        grid[wrap(-iv, ny) * nx + wrap(-iu, nx)] += w;
        wsum += w;
    }

    /* Briggs: sum_c W_c^2 = sum over gridded g of w_g W_g = 2 sum_k w_k W_k, and
     * sum_g w_g = 2 sum_k w_k, so the mean density is sum_k w_k W_k / sum_k w_k. */
    double f2 = 0;
    if (o->kind == CT_WEIGHT_BRIGGS) {
        double sw2 = 0;
        for (size_t k = 0; k < n; k++) {
            double u = uvw_lambda[3 * k], v = uvw_lambda[3 * k + 1], w = natural_w[k];
            if (!ct_weight_kept(o, u, v, w))
                continue;
            long long iu, iv;
            ct_weight_cell(o, u, v, &iu, &iv);
            sw2 += w * grid[wrap(iv, ny) * nx + wrap(iu, nx)];
        }
        f2 = ct_weight_briggs_f2(o->robust, sw2, wsum);
    }

    for (size_t k = 0; k < n; k++) {
        double u = uvw_lambda[3 * k], v = uvw_lambda[3 * k + 1], w = natural_w[k];
        if (!ct_weight_kept(o, u, v, w)) {
            out_w[k] = 0.0;
            continue;
        }
        long long iu, iv;
        ct_weight_cell(o, u, v, &iu, &iv);
        double wc = grid[wrap(iv, ny) * nx + wrap(iu, nx)];
        out_w[k] = ct_weight_final(o, w, wc, f2);
    }
    free(grid);
    return CT_OK;
}
