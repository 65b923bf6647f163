/* gridder.c -- see gridder.h. */
#define _GNU_SOURCE /* M_PI */
#include "gridder.h"

#include <complex.h> /* before fftw3.h: fftw_complex is then double complex */
#include <fftw3.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OVERSAMPLING 2
#define MAX_SUPPORT  16
/* The w planes' spacing puts the largest phase frequency |dw (n - 1 - mid)|
 * at 1 / (2 W_OVERSAMPLING) cycles per plane: at 2 (matching u and v) the
 * three axes' errors add up to 1.4 times the kernel table's epsilon for a
 * single visibility at the lowest accuracies; at 2.5 the worst measured is
 * 0.85 of it (25 % more planes). */
#define W_OVERSAMPLING 2.5
/* More w planes than this is refused (a w range far beyond any array's). */
#define MAX_W_PLANES 100000

/* Kernel supports and betas, and the accuracy each is trusted to: about 1.5
 * times the worst max|error| / max|image| measured against a direct Fourier
 * transform for a single visibility (the hardest case: with many
 * visibilities the errors partly cancel and come out 3 to 10 times smaller),
 * over random uv points, oversampling 2, double precision. beta was tuned in
 * steps of 0.05 W against images of several point sources. A request for
 * epsilon gets the first row trusted to it; requests below 1e-13 get the
 * last row, the best this kernel reaches at oversampling 2. */
static const struct {
    int support;
    double beta;
    double epsilon;
} kernel_table[] = {
    {3, 6.3, 3e-2},     {4, 8.8, 3e-3},      {5, 11.25, 5e-4},    {6, 13.5, 8e-5},
    {7, 16.1, 8e-6},    {8, 18.4, 8e-7},     {9, 20.25, 1.3e-7},  {10, 22.5, 1.5e-8},
    {11, 25.3, 2.5e-9}, {12, 27.6, 2.5e-10}, {13, 29.9, 1.5e-11}, {14, 32.2, 1.2e-12},
    {15, 34.5, 3e-13},  {16, 35.2, 1e-13},
};

struct ct_gridder_plan {
    int nx, ny;     /* image */
    int gx, gy;     /* padded grid */
    double cell;    /* pixel size, direction cosine */
    int support;    /* W, grid cells */
    double beta;    /* kernel shape */
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

/* The kernel at x in [-1, 1]. */
static double es_kernel(double x, double beta)
{
    double s = 1.0 - x * x;
    return exp(beta * (s > 0 ? sqrt(s) - 1.0 : -1.0));
}

/* n-point (n >= 2) Gauss-Legendre nodes and weights on [-1, 1]: Newton's
 * method on the Legendre polynomial from the usual cosine guess. */
static void gauss_legendre(int n, double *x, double *w)
{
    for (int i = 0; i < (n + 1) / 2; i++) {
        double z = cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1.0;
        for (int it = 0; it < 100; it++) {
            double p0 = 1.0, p1 = z;
            for (int k = 2; k <= n; k++) {
                double p2 = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            dp = n * (z * p1 - p0) / (z * z - 1.0);
            double dz = p1 / dp;
            z -= dz;
            if (fabs(dz) < 1e-16)
                break;
        }
        x[i] = -z;
        x[n - 1 - i] = z;
        w[i] = w[n - 1 - i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
}

/* The continuous Fourier transform of phi(t / h), h = support / 2, at xi
 * cycles per grid cell:
 *     2 h int_0^{pi/2} exp(beta (cos th - 1)) cos(2 pi h xi sin th) cos th dth
 * (x = sin th removes the square root's singularity at the support's edge,
 * leaving an analytic integrand for Gauss-Legendre). */
static double kernel_transform(double xi, double h, double beta, int nq, const double *qx,
                               const double *qw)
{
    double sum = 0.0;
    for (int i = 0; i < nq; i++) {
        double th = 0.25 * M_PI * (1.0 + qx[i]);
        sum += qw[i] * exp(beta * (cos(th) - 1.0)) * cos(2.0 * M_PI * h * xi * sin(th)) * cos(th);
    }
    return 2.0 * h * 0.25 * M_PI * sum;
}

/* Fills the plan's grid corrections for its support and beta. */
static ct_code fill_corrections(ct_gridder_plan *p, ct_err *err)
{
    int nq = 64 + 4 * p->support;
    double *qx = malloc(2 * (size_t)nq * sizeof *qx);
    if (!qx)
        return ct_fail(err, CT_ENOMEM, "out of memory for the gridder's quadrature");
    double *qw = qx + nq;
    gauss_legendre(nq, qx, qw);
    double h = 0.5 * p->support;
    for (int ix = 0; ix < p->nx; ix++)
        p->corr_x[ix] =
            1.0 / kernel_transform((double)(ix - p->nx / 2) / p->gx, h, p->beta, nq, qx, qw);
    for (int iy = 0; iy < p->ny; iy++)
        p->corr_y[iy] =
            1.0 / kernel_transform((double)(iy - p->ny / 2) / p->gy, h, p->beta, nq, qx, qw);
    free(qx);
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
    double bytes = (double)OVERSAMPLING * nx * OVERSAMPLING * ny * sizeof(double complex) +
                   ((double)nx + ny) * sizeof(double);
    if (bytes > CT_GRIDDER_MAX_BYTES || nx > INT_MAX / OVERSAMPLING || ny > INT_MAX / OVERSAMPLING)
        return ct_fail(
            err, CT_EINVAL, "image %d x %d needs %.3g GiB for its grid, over the %.0f GiB limit",
            nx, ny, bytes / (1024.0 * 1024 * 1024), CT_GRIDDER_MAX_BYTES / (1024.0 * 1024 * 1024));

    size_t row = 0, nrows = sizeof kernel_table / sizeof kernel_table[0];
    while (row + 1 < nrows && kernel_table[row].epsilon > epsilon)
        row++;

    ct_gridder_plan *p = calloc(1, sizeof *p);
    if (!p)
        return ct_fail(err, CT_ENOMEM, "out of memory for a gridder plan");
    p->nx = nx;
    p->ny = ny;
    p->gx = OVERSAMPLING * nx;
    p->gy = OVERSAMPLING * ny;
    p->cell = cell_rad;
    p->wterms = 1;
    p->support = kernel_table[row].support;
    p->beta = kernel_table[row].beta;
    p->corr_x = malloc(((size_t)nx + (size_t)ny) * sizeof(double));
    p->grid = fftw_malloc((size_t)p->gx * (size_t)p->gy * sizeof(double complex));
    if (!p->corr_x || !p->grid) {
        ct_gridder_plan_destroy(p);
        return ct_fail(err, CT_ENOMEM, "out of memory for a %d x %d grid", p->gx, p->gy);
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
        return ct_fail(err, CT_ENOMEM, "FFTW could not plan a %d x %d transform", p->gx, p->gy);
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
        *support = plan->support;
    if (beta)
        *beta = plan->beta;
}

/* Where one visibility's kernel falls on one axis: the W grid indices
 * (wrapped onto the periodic grid) and the kernel's values there.
 * g is the coordinate in grid cells, n the grid's length. */
static void axis_taps(const ct_gridder_plan *p, double g, int n, int *idx, double *val)
{
    double h = 0.5 * p->support;
    double first = ceil(g - h);
    double wrapped = first - n * floor(first / n); /* in [0, n) exactly: integers */
    long j = (long)wrapped;
    for (int i = 0; i < p->support; i++) {
        val[i] = es_kernel((first + i - g) / h, p->beta);
        idx[i] = (int)((j + i) % n);
    }
}

/* Adds v onto the padded grid, spread by the kernel around uv (wavelengths). */
static void grid_scatter(ct_gridder_plan *p, const double *uv, double complex v)
{
    int ix[MAX_SUPPORT], iy[MAX_SUPPORT];
    double kx[MAX_SUPPORT], ky[MAX_SUPPORT];
    axis_taps(p, uv[0] * p->gx * p->cell, p->gx, ix, kx);
    axis_taps(p, uv[1] * p->gy * p->cell, p->gy, iy, ky);
    for (int b = 0; b < p->support; b++) {
        double complex vb = v * ky[b];
        double complex *row = p->grid + (size_t)iy[b] * p->gx;
        for (int a = 0; a < p->support; a++)
            row[ix[a]] += vb * kx[a];
    }
}

/* The kernel-weighted sum of the padded grid around uv: grid_scatter's adjoint. */
static double complex grid_gather(const ct_gridder_plan *p, const double *uv)
{
    int ix[MAX_SUPPORT], iy[MAX_SUPPORT];
    double kx[MAX_SUPPORT], ky[MAX_SUPPORT];
    axis_taps(p, uv[0] * p->gx * p->cell, p->gx, ix, kx);
    axis_taps(p, uv[1] * p->gy * p->cell, p->gy, iy, ky);
    double complex sum = 0;
    for (int b = 0; b < p->support; b++) {
        const double complex *row = p->grid + (size_t)iy[b] * p->gx;
        double complex sb = 0;
        for (int a = 0; a < p->support; a++)
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

/* n - 1 at (l, m) inside the unit circle, without cancellation. */
static double n_minus_1(double l, double m)
{
    double r2 = l * l + m * m;
    return -r2 / (1.0 + sqrt(1.0 - r2));
}

/* Sets up w-stacking for the plan on first use: the plane spacing, the
 * per-pixel shifted n - 1 and the w correction. *usable becomes 0 where n - 1
 * rounds to 0 over the whole image (the w term then vanishes). */
static ct_code setup_wterms(ct_gridder_plan *p, int *usable, ct_err *err)
{
    *usable = 1;
    if (p->wshift)
        return CT_OK;
    /* The corner (-nx/2, -ny/2) is the pixel farthest from the centre; n - 1
     * runs from its value there up to 0 at the centre pixel. */
    double lc = 0.5 * p->nx * p->cell, mc = 0.5 * p->ny * p->cell;
    if (!(lc * lc + mc * mc < 1.0))
        return ct_fail(err, CT_EINVAL,
                       "image %d x %d of cell %g reaches the horizon: cannot apply w-terms", p->nx,
                       p->ny, p->cell);
    double lo = n_minus_1(lc, mc);
    if (!(lo < 0)) {
        *usable = 0;
        return CT_OK;
    }
    /* Shifting n - 1 by the middle of its range halves the largest |phase
     * frequency| the w kernel must resolve; the spacing puts that frequency
     * at 1 / (2 W_OVERSAMPLING) cycles per plane. */
    double half = -0.5 * lo;
    size_t npix = (size_t)p->nx * (size_t)p->ny;
    double *shift = malloc(npix * sizeof *shift), *corr = malloc(npix * sizeof *corr);
    int nq = 64 + 4 * p->support;
    double *qx = malloc(2 * (size_t)nq * sizeof *qx);
    if (!shift || !corr || !qx) {
        free(shift);
        free(corr);
        free(qx);
        return ct_fail(err, CT_ENOMEM, "out of memory for the w-term corrections");
    }
    double *qw = qx + nq;
    gauss_legendre(nq, qx, qw);
    p->nm1_mid = -half;
    p->dw = 1.0 / (2.0 * W_OVERSAMPLING * half);
    double h = 0.5 * p->support;
    for (int y = 0; y < p->ny; y++)
        for (int x = 0; x < p->nx; x++) {
            size_t i = (size_t)y * p->nx + x;
            shift[i] = n_minus_1((x - p->nx / 2) * p->cell, (y - p->ny / 2) * p->cell) - p->nm1_mid;
            corr[i] = 1.0 / kernel_transform(p->dw * shift[i], h, p->beta, nq, qx, qw);
        }
    free(qx);
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

/* The w planes for these rows: plane j (lo <= j <= hi) sits at
 * w = wmin + j dw; row k's kernel covers planes first_plane() .. + W - 1. */
static void plane_range(const ct_gridder_plan *p, const double *uvw, size_t n, double *wmin,
                        long *lo, long *hi)
{
    double a = INFINITY, b = -INFINITY;
    for (size_t k = 0; k < n; k++) {
        a = fmin(a, uvw[3 * k + 2]);
        b = fmax(b, uvw[3 * k + 2]);
    }
    double h = 0.5 * p->support;
    *wmin = a;
    *lo = (long)ceil(-h);
    *hi = (long)ceil((b - a) / p->dw - h) + p->support - 1;
}

static ct_code check_planes(const ct_gridder_plan *p, const double *uvw, size_t n, ct_err *err)
{
    double a = INFINITY, b = -INFINITY;
    for (size_t k = 0; k < n; k++) {
        a = fmin(a, uvw[3 * k + 2]);
        b = fmax(b, uvw[3 * k + 2]);
    }
    double planes = (b - a) / p->dw + p->support + 1;
    if (!(planes <= MAX_W_PLANES))
        return ct_fail(err, CT_EINVAL,
                       "w from %g to %g needs %.3g w planes of %g wavelengths, over %d", a, b,
                       planes, p->dw, MAX_W_PLANES);
    return CT_OK;
}

/* The w kernel's weight of plane j for a row at w, or 0 off its support. */
static double w_tap(const ct_gridder_plan *p, double w, double wmin, long j)
{
    double h = 0.5 * p->support, t = (w - wmin) / p->dw;
    double first = ceil(t - h);
    if ((double)j < first || (double)j >= first + p->support)
        return 0.0;
    return es_kernel(((double)j - t) / h, p->beta);
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
    plane_range(p, uvw, n, &wmin, &lo, &hi);
    for (long j = lo; j <= hi; j++) {
        memset(p->grid, 0, (size_t)p->gx * (size_t)p->gy * sizeof(double complex));
        int touched = 0;
        for (size_t k = 0; k < n; k++) {
            double wk = weights ? weights[k] : 1.0;
            double kw = w_tap(p, uvw[3 * k + 2], wmin, j);
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
static void degrid_w(ct_gridder_plan *p, const double *uvw, const double *image, size_t n,
                     double complex *vis)
{
    double wmin;
    long lo, hi;
    plane_range(p, uvw, n, &wmin, &lo, &hi);
    for (size_t k = 0; k < n; k++)
        vis[k] = 0;
    for (long j = lo; j <= hi; j++) {
        int touched = 0;
        for (size_t k = 0; k < n && !touched; k++)
            touched = w_tap(p, uvw[3 * k + 2], wmin, j) != 0;
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
            double kw = w_tap(p, uvw[3 * k + 2], wmin, j);
            if (kw == 0)
                continue;
            vis[k] += kw * grid_gather(p, &uvw[3 * k]);
        }
    }
    for (size_t k = 0; k < n; k++)
        vis[k] *= cexp(2.0 * M_PI * I * uvw[3 * k + 2] * p->nm1_mid);
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
        if (usable) {
            rc = check_planes(p, uvw_lambda, n, err);
            return rc != CT_OK ? rc : dirty_w(p, uvw_lambda, vis, weights, n, wsum, image, err);
        }
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
        if (usable) {
            rc = check_planes(p, uvw_lambda, n, err);
            if (rc == CT_OK)
                degrid_w(p, uvw_lambda, image, n, vis);
            return rc;
        }
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
