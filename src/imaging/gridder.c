/* gridder.c -- see gridder.h. */
#define _GNU_SOURCE /* M_PI */
#include "gridder.h"

#include "gridkernel.h"

#include <complex.h> /* before fftw3.h: fftw_complex is then double complex */
#include <fftw3.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ct_gridder_plan {
    int nx, ny;     /* image */
    int gx, gy;     /* padded grid */
    double cell;    /* pixel size, direction cosine */
    ct_gkernel k;   /* the kernel */
    double *corr_x; /* nx: 1 / (kernel transform) at each column */
    double *corr_y; /* ny: the same at each row */
    double complex *grid;
    fftw_plan forward, backward;
    /* w-stacking (see gridder.h), set up on first use: */
    int wterms;     /* nonzero: apply the w term (the default) */
    double *wshift; /* ny * nx: n - 1 - nm1_mid at each pixel */
    double *corr_w; /* ny * nx: 1 / (w kernel transform at dw * wshift) */
    double nm1_mid; /* the middle of the range of n - 1 over the image */
    double dw;      /* w-plane spacing, wavelengths */
};

/* Fills the plan's grid corrections for its kernel. */
static ct_code fill_corrections(ct_gridder_plan *p, ct_err *err)
{
    ct_gkernel_ft ft;
    ct_code rc = ct_gkernel_ft_init(&ft, p->k, err);
    if (rc != CT_OK)
        return rc;
    for (int ix = 0; ix < p->nx; ix++)
        p->corr_x[ix] = 1.0 / ct_gkernel_ft_at(&ft, (double)(ix - p->nx / 2) / p->gx);
    for (int iy = 0; iy < p->ny; iy++)
        p->corr_y[iy] = 1.0 / ct_gkernel_ft_at(&ft, (double)(iy - p->ny / 2) / p->gy);
    ct_gkernel_ft_free(&ft);
    return CT_OK;
}

ct_code ct_gridder_plan_create(int nx, int ny, double cell_rad, double epsilon,
                               ct_gridder_plan **out, ct_err *err)
{
    *out = NULL;
    if (nx < 2 || ny < 2 || nx % 2 || ny % 2)
        return ct_fail(err, CT_EINVAL, "image size %d x %d: both sides must be even and >= 2", nx,
                       ny);
    if (!(cell_rad > 0) || !isfinite(cell_rad) || cell_rad >= 1.0)
        return ct_fail(err, CT_EINVAL, "pixel size %g: must be in (0, 1) (direction cosine)",
                       cell_rad);
    if (!(epsilon >= 1e-14 && epsilon <= 1e-1))
        return ct_fail(err, CT_EINVAL, "gridder accuracy %g: must be in [1e-14, 1e-1]", epsilon);
    /* Estimated before anything is allocated: the padded complex grid
     * dominates; the corrections are small. */
    double bytes =
        (double)CT_GRID_OVERSAMPLING * nx * CT_GRID_OVERSAMPLING * ny * sizeof(double complex) +
        ((double)nx + ny) * sizeof(double);
    if (bytes > CT_GRIDDER_MAX_BYTES || nx > INT_MAX / CT_GRID_OVERSAMPLING ||
        ny > INT_MAX / CT_GRID_OVERSAMPLING)
        return ct_fail(
            err, CT_EINVAL, "image %d x %d needs %.3g GiB for its grid, over the %.0f GiB limit",
            nx, ny, bytes / (1024.0 * 1024 * 1024), CT_GRIDDER_MAX_BYTES / (1024.0 * 1024 * 1024));

    ct_gridder_plan *p = calloc(1, sizeof *p);
    if (!p)
        return ct_fail(err, CT_ENOMEM, "out of memory for a gridder plan");
    p->nx = nx;
    p->ny = ny;
    p->gx = CT_GRID_OVERSAMPLING * nx;
    p->gy = CT_GRID_OVERSAMPLING * ny;
    p->cell = cell_rad;
    p->wterms = 1;
    p->k = ct_gkernel_for(epsilon);
    p->corr_x = malloc(((size_t)nx + (size_t)ny) * sizeof(double));
    p->grid = fftw_malloc((size_t)p->gx * (size_t)p->gy * sizeof(double complex));
    if (!p->corr_x || !p->grid) {
        ct_gridder_plan_destroy(p);
        return ct_fail(err, CT_ENOMEM, "out of memory for a %d x %d grid",
                       CT_GRID_OVERSAMPLING * nx, CT_GRID_OVERSAMPLING * ny);
    }
    p->corr_y = p->corr_x + nx;
    ct_code rc = fill_corrections(p, err);
    if (rc != CT_OK) {
        ct_gridder_plan_destroy(p);
        return rc;
    }
    /* FFTW_ESTIMATE leaves the array alone while planning. Rows of the grid
     * are v, columns u. */
    p->forward = fftw_plan_dft_2d(p->gy, p->gx, p->grid, p->grid, FFTW_FORWARD, FFTW_ESTIMATE);
    p->backward = fftw_plan_dft_2d(p->gy, p->gx, p->grid, p->grid, FFTW_BACKWARD, FFTW_ESTIMATE);
    if (!p->forward || !p->backward) {
        ct_gridder_plan_destroy(p);
        return ct_fail(err, CT_ENOMEM, "FFTW could not plan a %d x %d transform",
                       CT_GRID_OVERSAMPLING * nx, CT_GRID_OVERSAMPLING * ny);
    }
    *out = p;
    return CT_OK;
}

void ct_gridder_plan_destroy(ct_gridder_plan *plan)
{
    if (!plan)
        return;
    if (plan->forward)
        fftw_destroy_plan(plan->forward);
    if (plan->backward)
        fftw_destroy_plan(plan->backward);
    fftw_free(plan->grid);
    free(plan->corr_x);
    free(plan->wshift);
    free(plan->corr_w);
    free(plan);
}

void ct_gridder_plan_kernel(const ct_gridder_plan *plan, int *support, double *beta)
{
    if (support)
        *support = plan->k.support;
    if (beta)
        *beta = plan->k.beta;
}

/* Adds v onto the padded grid, spread by the kernel around uv (wavelengths). */
static void grid_scatter(ct_gridder_plan *p, const double *uv, double complex v)
{
    int ix[CT_GRID_MAX_SUPPORT], iy[CT_GRID_MAX_SUPPORT];
    double kx[CT_GRID_MAX_SUPPORT], ky[CT_GRID_MAX_SUPPORT];
    ct_gkernel_taps(&p->k, uv[0] * p->gx * p->cell, p->gx, ix, kx);
    ct_gkernel_taps(&p->k, uv[1] * p->gy * p->cell, p->gy, iy, ky);
    for (int b = 0; b < p->k.support; b++) {
        double complex vb = v * ky[b];
        double complex *row = p->grid + (size_t)iy[b] * p->gx;
        for (int a = 0; a < p->k.support; a++)
            row[ix[a]] += vb * kx[a];
    }
}

/* The kernel-weighted sum of the padded grid around uv: grid_scatter's adjoint. */
static double complex grid_gather(const ct_gridder_plan *p, const double *uv)
{
    int ix[CT_GRID_MAX_SUPPORT], iy[CT_GRID_MAX_SUPPORT];
    double kx[CT_GRID_MAX_SUPPORT], ky[CT_GRID_MAX_SUPPORT];
    ct_gkernel_taps(&p->k, uv[0] * p->gx * p->cell, p->gx, ix, kx);
    ct_gkernel_taps(&p->k, uv[1] * p->gy * p->cell, p->gy, iy, ky);
    double complex sum = 0;
    for (int b = 0; b < p->k.support; b++) {
        const double complex *row = p->grid + (size_t)iy[b] * p->gx;
        double complex sb = 0;
        for (int a = 0; a < p->k.support; a++)
            sb += row[ix[a]] * kx[a];
        sum += sb * ky[b];
    }
    return sum;
}

/* Coordinates beyond this many grid cells lose the precision of the
 * kernel's position; no real array comes near it. */
#define MAX_GRID_COORD 1e12

static ct_code check_uv(const ct_gridder_plan *p, const double *uvw, size_t n, ct_err *err)
{
    for (size_t k = 0; k < n; k++) {
        double gu = uvw[3 * k] * p->gx * p->cell, gv = uvw[3 * k + 1] * p->gy * p->cell;
        if (!isfinite(gu) || !isfinite(gv) || !isfinite(uvw[3 * k + 2]) ||
            fabs(gu) > MAX_GRID_COORD || fabs(gv) > MAX_GRID_COORD)
            return ct_fail(err, CT_EINVAL, "visibility %zu: uvw (%g, %g, %g) is not usable", k,
                           uvw[3 * k], uvw[3 * k + 1], uvw[3 * k + 2]);
    }
    return CT_OK;
}

void ct_gridder_plan_set_wterms(ct_gridder_plan *plan, int enabled)
{
    plan->wterms = enabled != 0;
}

/* Sets up w-stacking for the plan on first use: the plane spacing, the
 * per-pixel shifted n - 1 and the w correction. *usable becomes 0 where n - 1
 * rounds to 0 over the whole image (the w term then vanishes). */
static ct_code setup_wterms(ct_gridder_plan *p, int *usable, ct_err *err)
{
    *usable = 1;
    if (p->wshift)
        return CT_OK;
    ct_code rc = ct_wstack_geometry(p->nx, p->ny, p->cell, usable, &p->nm1_mid, &p->dw, err);
    if (rc != CT_OK || !*usable)
        return rc;
    size_t npix = (size_t)p->nx * (size_t)p->ny;
    double *shift = malloc(npix * sizeof *shift), *corr = malloc(npix * sizeof *corr);
    ct_gkernel_ft ft = {0};
    if (!shift || !corr || ct_gkernel_ft_init(&ft, p->k, err) != CT_OK) {
        free(shift);
        free(corr);
        return ct_fail(err, CT_ENOMEM, "out of memory for the w-term corrections");
    }
    for (int y = 0; y < p->ny; y++)
        for (int x = 0; x < p->nx; x++) {
            size_t i = (size_t)y * p->nx + x;
            shift[i] =
                ct_n_minus_1((x - p->nx / 2) * p->cell, (y - p->ny / 2) * p->cell) - p->nm1_mid;
            corr[i] = 1.0 / ct_gkernel_ft_at(&ft, p->dw * shift[i]);
        }
    ct_gkernel_ft_free(&ft);
    p->wshift = shift;
    p->corr_w = corr;
    return CT_OK;
}

/* Whether these rows need the w term: the plan applies it and some w is not 0. */
static int needs_w(const ct_gridder_plan *p, const double *uvw, size_t n)
{
    if (!p->wterms)
        return 0;
    for (size_t k = 0; k < n; k++)
        if (uvw[3 * k + 2] != 0)
            return 1;
    return 0;
}

/* The w range of these rows, and the planes it reaches (see gridkernel.h). */
static ct_code plane_range(const ct_gridder_plan *p, const double *uvw, size_t n, double *wmin,
                           long *lo, long *hi, ct_err *err)
{
    double a = INFINITY, b = -INFINITY;
    for (size_t k = 0; k < n; k++) {
        a = fmin(a, uvw[3 * k + 2]);
        b = fmax(b, uvw[3 * k + 2]);
    }
    *wmin = a;
    return ct_wplane_range(&p->k, a, b, p->dw, lo, hi, err);
}

/* The w-stacked dirty image: for each plane, the visibilities gridded in u
 * and v with their w kernel weight, the FFT, and the phase screen
 * exp(-2 pi i w_j (n - 1 - nm1_mid)); the planes summed; the common phase
 * exp(-2 pi i w nm1_mid) applied per visibility; the corrections in u, v, w. */
static ct_code dirty_w(ct_gridder_plan *p, const double *uvw, const double complex *vis,
                       const double *weights, size_t n, double wsum, double *image, ct_err *err)
{
    size_t npix = (size_t)p->nx * (size_t)p->ny;
    double complex *acc = calloc(npix, sizeof *acc);
    if (!acc)
        return ct_fail(err, CT_ENOMEM, "out of memory for the w-stacked image");
    double wmin;
    long lo, hi;
    ct_code rc = plane_range(p, uvw, n, &wmin, &lo, &hi, err);
    if (rc != CT_OK) {
        free(acc);
        return rc;
    }
    for (long j = lo; j <= hi; j++) {
        memset(p->grid, 0, (size_t)p->gx * (size_t)p->gy * sizeof(double complex));
        int touched = 0;
        for (size_t k = 0; k < n; k++) {
            double wk = weights ? weights[k] : 1.0;
            double kw = ct_wplane_tap(&p->k, uvw[3 * k + 2], wmin, p->dw, j);
            if (wk == 0 || kw == 0)
                continue;
            touched = 1;
            grid_scatter(p, &uvw[3 * k],
                         wk * kw * vis[k] * cexp(-2.0 * M_PI * I * uvw[3 * k + 2] * p->nm1_mid));
        }
        if (!touched)
            continue;
        fftw_execute(p->forward);
        double wj = wmin + (double)j * p->dw;
        for (int y = 0; y < p->ny; y++) {
            int gyi = (y - p->ny / 2 + p->gy) % p->gy;
            const double complex *row = p->grid + (size_t)gyi * p->gx;
            for (int x = 0; x < p->nx; x++) {
                int gxi = (x - p->nx / 2 + p->gx) % p->gx;
                size_t i = (size_t)y * p->nx + x;
                acc[i] += row[gxi] * cexp(-2.0 * M_PI * I * wj * p->wshift[i]);
            }
        }
    }
    for (int y = 0; y < p->ny; y++) {
        double cy = p->corr_y[y] / wsum;
        for (int x = 0; x < p->nx; x++) {
            size_t i = (size_t)y * p->nx + x;
            image[i] = creal(acc[i]) * p->corr_x[x] * cy * p->corr_w[i];
        }
    }
    free(acc);
    return CT_OK;
}

/* The adjoint of dirty_w without weights and normalization. */
static ct_code degrid_w(ct_gridder_plan *p, const double *uvw, const double *image, size_t n,
                        double complex *vis, ct_err *err)
{
    double wmin;
    long lo, hi;
    ct_code rc = plane_range(p, uvw, n, &wmin, &lo, &hi, err);
    if (rc != CT_OK)
        return rc;
    for (size_t k = 0; k < n; k++)
        vis[k] = 0;
    for (long j = lo; j <= hi; j++) {
        int touched = 0;
        for (size_t k = 0; k < n && !touched; k++)
            touched = ct_wplane_tap(&p->k, uvw[3 * k + 2], wmin, p->dw, j) != 0;
        if (!touched)
            continue;
        double wj = wmin + (double)j * p->dw;
        memset(p->grid, 0, (size_t)p->gx * (size_t)p->gy * sizeof(double complex));
        for (int y = 0; y < p->ny; y++) {
            int gyi = (y - p->ny / 2 + p->gy) % p->gy;
            double complex *row = p->grid + (size_t)gyi * p->gx;
            for (int x = 0; x < p->nx; x++) {
                int gxi = (x - p->nx / 2 + p->gx) % p->gx;
                size_t i = (size_t)y * p->nx + x;
                row[gxi] = image[i] * p->corr_x[x] * p->corr_y[y] * p->corr_w[i] *
                           cexp(2.0 * M_PI * I * wj * p->wshift[i]);
            }
        }
        fftw_execute(p->backward);
        for (size_t k = 0; k < n; k++) {
            double kw = ct_wplane_tap(&p->k, uvw[3 * k + 2], wmin, p->dw, j);
            if (kw == 0)
                continue;
            vis[k] += kw * grid_gather(p, &uvw[3 * k]);
        }
    }
    for (size_t k = 0; k < n; k++)
        vis[k] *= cexp(2.0 * M_PI * I * uvw[3 * k + 2] * p->nm1_mid);
    return CT_OK;
}

ct_code ct_gridder_dirty(ct_gridder_plan *plan, const double *uvw_lambda, const double complex *vis,
                         const double *weights, size_t n, double *image, ct_err *err)
{
    ct_gridder_plan *p = plan;
    ct_code rc = check_uv(p, uvw_lambda, n, err);
    if (rc != CT_OK)
        return rc;
    double wsum = 0.0;
    for (size_t k = 0; k < n; k++) {
        double wk = weights ? weights[k] : 1.0;
        if (!isfinite(wk))
            return ct_fail(err, CT_EINVAL, "visibility %zu: weight %g is not finite", k, wk);
        wsum += wk;
    }
    if (!(wsum > 0))
        return ct_fail(err, CT_EINVAL, "the %zu weights sum to %g: nothing to image", n, wsum);
    if (needs_w(p, uvw_lambda, n)) {
        int usable;
        rc = setup_wterms(p, &usable, err);
        if (rc != CT_OK)
            return rc;
        if (usable)
            return dirty_w(p, uvw_lambda, vis, weights, n, wsum, image, err);
    }

    memset(p->grid, 0, (size_t)p->gx * (size_t)p->gy * sizeof(double complex));
    for (size_t k = 0; k < n; k++) {
        double wk = weights ? weights[k] : 1.0;
        if (wk == 0)
            continue;
        grid_scatter(p, &uvw_lambda[3 * k], wk * vis[k]);
    }
    fftw_execute(p->forward);
    for (int y = 0; y < p->ny; y++) {
        int gyi = (y - p->ny / 2 + p->gy) % p->gy;
        const double complex *row = p->grid + (size_t)gyi * p->gx;
        double cy = p->corr_y[y] / wsum;
        for (int x = 0; x < p->nx; x++) {
            int gxi = (x - p->nx / 2 + p->gx) % p->gx;
            image[(size_t)y * p->nx + x] = creal(row[gxi]) * p->corr_x[x] * cy;
        }
    }
    return CT_OK;
}

ct_code ct_gridder_degrid(ct_gridder_plan *plan, const double *uvw_lambda, const double *image,
                          size_t n, double complex *vis, ct_err *err)
{
    ct_gridder_plan *p = plan;
    ct_code rc = check_uv(p, uvw_lambda, n, err);
    if (rc != CT_OK)
        return rc;
    if (needs_w(p, uvw_lambda, n)) {
        int usable;
        rc = setup_wterms(p, &usable, err);
        if (rc != CT_OK)
            return rc;
        if (usable)
            return degrid_w(p, uvw_lambda, image, n, vis, err);
    }
    memset(p->grid, 0, (size_t)p->gx * (size_t)p->gy * sizeof(double complex));
    for (int y = 0; y < p->ny; y++) {
        int gyi = (y - p->ny / 2 + p->gy) % p->gy;
        double complex *row = p->grid + (size_t)gyi * p->gx;
        for (int x = 0; x < p->nx; x++) {
            int gxi = (x - p->nx / 2 + p->gx) % p->gx;
            row[gxi] = image[(size_t)y * p->nx + x] * p->corr_x[x] * p->corr_y[y];
        }
    }
    fftw_execute(p->backward);
    for (size_t k = 0; k < n; k++)
        vis[k] = grid_gather(p, &uvw_lambda[3 * k]);
    return CT_OK;
}
