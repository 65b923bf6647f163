/* gridkernel.c -- see gridkernel.h. */
#define _GNU_SOURCE /* M_PI */
#include "gridkernel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The w planes' spacing puts the largest phase frequency |dw (n - 1 - mid)|
 * at 1 / (2 W_OVERSAMPLING) cycles per plane: at 2 (matching u and v) the
 * three axes' errors add up to 1.4 times the kernel table's epsilon for a
 * single visibility at the lowest accuracies; at 2.5 the worst measured is
 * 0.85 of it (25 % more planes). */
#define W_OVERSAMPLING 2.5

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

double ct_gkernel_value(const ct_gkernel *k, double x)
{
    double s = 1.0 - x * x;
    return exp(k->beta * (s > 0 ? sqrt(s) - 1.0 : -1.0));
}

/* The exact value of tap i at series offset t in [-1, 1]: the kernel at
 * x = (i + (t + 1) / 2 - W/2) / (W/2), the cell's first tap sitting at the
 * fractional offset (t + 1) / 2 in [0, 1) from the kernel's left edge. */
static double tap_exact(const ct_gkernel *k, int i, double t)
{
    double h = 0.5 * k->support;
    return ct_gkernel_value(k, (i + 0.5 * (t + 1.0) - h) / h);
}

/* The Chebyshev series of every tap in powers of t (T_d's coefficients by
 * T_{d+1} = 2 t T_d - T_{d-1}, summed in long double). */
static void power_series(ct_gkernel *k)
{
    const int D = k->degree;
    long double T[CT_GKERNEL_MAX_DEGREE + 1][CT_GKERNEL_MAX_DEGREE + 1] = {{0}};
    T[0][0] = 1;
    if (D >= 1)
        T[1][1] = 1;
    for (int d = 1; d < D; d++)
        for (int m = 0; m <= d + 1; m++)
            T[d + 1][m] = (m > 0 ? 2 * T[d][m - 1] : 0) - T[d - 1][m];
    memset(k->poly, 0, sizeof k->poly);
    for (int i = 0; i < k->support; i++)
        for (int m = 0; m <= D; m++) {
            long double s = 0;
            for (int d = m; d <= D; d++)
                s += (long double)k->cheb[d][i] * T[d][m];
            k->poly[m][i] = (double)s;
        }
}

void ct_gkernel_series_general(const ct_gkernel *k, double t, double *val)
{
    const int D = k->degree;
    if (k->horner) {
        double acc[CT_GRID_MAX_SUPPORT];
        for (int i = 0; i < CT_GRID_MAX_SUPPORT; i++)
            acc[i] = k->poly[D][i];
        for (int d = D - 1; d >= 0; d--)
            for (int i = 0; i < CT_GRID_MAX_SUPPORT; i++)
                acc[i] = acc[i] * t + k->poly[d][i];
        for (int i = 0; i < CT_GRID_MAX_SUPPORT; i++)
            val[i] = acc[i];
        return;
    }
    /* Clenshaw's recurrence on the Chebyshev coefficients. */
    const int W = k->support;
    double b1[CT_GRID_MAX_SUPPORT] = {0}, b2[CT_GRID_MAX_SUPPORT] = {0};
    const double t2 = 2.0 * t;
    for (int d = D; d >= 1; d--) {
        const double *c = k->cheb[d];
        for (int i = 0; i < W; i++) {
            double b0 = c[i] + t2 * b1[i] - b2[i];
            b2[i] = b1[i];
            b1[i] = b0;
        }
    }
    for (int i = 0; i < W; i++)
        val[i] = k->cheb[0][i] + t * b1[i] - b2[i];
}

/* Chebyshev interpolation of every tap at degree k->degree. */
static void fit_series(ct_gkernel *k)
{
    const int D = k->degree, W = k->support;
    double f[CT_GKERNEL_MAX_DEGREE + 1];
    for (int i = 0; i < W; i++) {
        for (int q = 0; q <= D; q++)
            f[q] = tap_exact(k, i, cos(M_PI * (q + 0.5) / (D + 1)));
        for (int d = 0; d <= D; d++) {
            double sum = 0;
            for (int q = 0; q <= D; q++)
                sum += f[q] * cos(M_PI * d * (q + 0.5) / (D + 1));
            k->cheb[d][i] = (d == 0 ? 1.0 : 2.0) * sum / (D + 1);
        }
    }
}

static double series_error(const ct_gkernel *k)
{
    double worst = 0, val[CT_GRID_MAX_SUPPORT];
    for (int s = 0; s <= 2000; s++) {
        double t = -1.0 + s / 1000.0;
        ct_gkernel_series(k, t, val);
        for (int i = 0; i < k->support; i++)
            worst = fmax(worst, fabs(val[i] - tap_exact(k, i, t)));
    }
    return worst;
}

ct_gkernel ct_gkernel_for(double epsilon)
{
    size_t row = 0, nrows = sizeof kernel_table / sizeof kernel_table[0];
    while (row + 1 < nrows && kernel_table[row].epsilon > epsilon)
        row++;
    ct_gkernel k;
    memset(&k, 0, sizeof k);
    k.support = kernel_table[row].support;
    k.beta = kernel_table[row].beta;
    /* The lowest degree within 1/50 of the kernel's epsilon (or the highest
     * allowed, whose error is then at the level of rounding). */
    for (k.degree = k.support; k.degree <= CT_GKERNEL_MAX_DEGREE; k.degree++) {
        fit_series(&k);
        if (series_error(&k) <= kernel_table[row].epsilon / 50 || k.degree == CT_GKERNEL_MAX_DEGREE)
            break;
    }
    /* Powers of t where they keep the same bound (they lose digits to
     * cancellation as the degree grows; Clenshaw then stays). */
    double bound = fmax(kernel_table[row].epsilon / 50, series_error(&k));
    power_series(&k);
    k.horner = 1;
    if (series_error(&k) > bound)
        k.horner = 0;
    return k;
}

long ct_gkernel_first(const ct_gkernel *k, double g)
{
    return (long)ceil(g - 0.5 * k->support);
}

/* n-point (n >= 2) Gauss-Legendre nodes and weights on [-1, 1]: Newton's
 * method on the Legendre polynomial from the usual cosine guess. */
static void gauss_legendre(int n, double *x, double *w)
{
    for (int i = 0; i < (n + 1) / 2; i++) {
        double z = cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1.0;
        for (int it = 0; it < 100; it++) {
            double p0 = 1.0, p1 = z;
            for (int q = 2; q <= n; q++) {
                double p2 = ((2.0 * q - 1.0) * z * p1 - (q - 1.0) * p0) / q;
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

ct_code ct_gkernel_ft_init(ct_gkernel_ft *ft, ct_gkernel k, ct_err *err)
{
    ft->k = k;
    ft->nq = 64 + 4 * k.support;
    ft->x = malloc(2 * (size_t)ft->nq * sizeof *ft->x);
    if (!ft->x)
        return ct_fail(err, CT_ENOMEM, "out of memory for the gridder's quadrature");
    ft->w = ft->x + ft->nq;
    gauss_legendre(ft->nq, ft->x, ft->w);
    /* What does not depend on xi, once: x becomes sin(th) at each node, w the
     * node's weight times exp(beta (cos th - 1)) cos th. */
    for (int i = 0; i < ft->nq; i++) {
        double th = 0.25 * M_PI * (1.0 + ft->x[i]);
        ft->w[i] *= exp(k.beta * (cos(th) - 1.0)) * cos(th);
        ft->x[i] = sin(th);
    }
    return CT_OK;
}

void ct_gkernel_ft_free(ct_gkernel_ft *ft)
{
    free(ft->x);
    ft->x = ft->w = NULL;
}

/* With h = W / 2 the transform is
 *     2 h int_0^{pi/2} exp(beta (cos th - 1)) cos(2 pi h xi sin th) cos th dth
 * (x = sin th removes the square root's singularity at the support's edge,
 * leaving an analytic integrand for Gauss-Legendre). */
double ct_gkernel_ft_at(const ct_gkernel_ft *ft, double xi)
{
    double h = 0.5 * ft->k.support, sum = 0.0, f = 2.0 * M_PI * h * xi;
    for (int i = 0; i < ft->nq; i++)
        sum += ft->w[i] * cos(f * ft->x[i]);
    return 2.0 * h * 0.25 * M_PI * sum;
}

double ct_n_minus_1(double l, double m)
{
    double r2 = l * l + m * m;
    return -r2 / (1.0 + sqrt(1.0 - r2));
}

bool ct_slant_to_lm(double x, double y, double xi, double eta, double *l, double *m)
{
    double nm1 = 0, lc = x, mc = y;
    for (int it = 0; it < 60; it++) {
        if (!(lc * lc + mc * mc < 1.0))
            return false;
        double next = ct_n_minus_1(lc, mc);
        lc = x + xi * next;
        mc = y + eta * next;
        /* Settled to rounding (an exact fixed point may not exist: the
         * last bits can alternate; 1e-14 of n - 1 is far below any
         * phase that matters: 1e-13 of a cycle at w = 1e4). */
        if (it > 0 && fabs(next - nm1) <= 1e-14 * fabs(next)) {
            *l = lc;
            *m = mc;
            return lc * lc + mc * mc < 1.0;
        }
        nm1 = next;
    }
    return false; /* no fixed point: the slant is too strong this far out */
}

ct_code ct_wstack_geometry(int nx, int ny, double cell, int *usable, double *nm1_mid, double *dw,
                           ct_err *err)
{
    *usable = 1;
    /* The corner (-nx/2, -ny/2) is the pixel farthest from the centre. */
    double lc = 0.5 * nx * cell, mc = 0.5 * ny * cell;
    if (!(lc * lc + mc * mc < 1.0))
        return ct_fail(err, CT_EINVAL,
                       "image %d x %d of cell %g reaches the horizon: cannot apply w-terms", nx, ny,
                       cell);
    double lo = ct_n_minus_1(lc, mc);
    if (!(lo < 0)) {
        *usable = 0;
        return CT_OK;
    }
    ct_wstack_spacing(lo, nm1_mid, dw);
    return CT_OK;
}

void ct_wstack_spacing(double lo, double *nm1_mid, double *dw)
{
    /* Shifting n - 1 by the middle of its range halves the largest |phase
     * frequency| the w kernel must resolve. */
    double half = -0.5 * lo;
    *nm1_mid = -half;
    *dw = 1.0 / (2.0 * W_OVERSAMPLING * half);
}

long ct_wplane_first(const ct_gkernel *k, double w, double wmin, double dw)
{
    return (long)ceil((w - wmin) / dw - 0.5 * k->support);
}

double ct_wplane_tap(const ct_gkernel *k, double w, double wmin, double dw, long j)
{
    double h = 0.5 * k->support, t = (w - wmin) / dw;
    double first = ceil(t - h);
    if ((double)j < first || (double)j >= first + k->support)
        return 0.0;
    /* From the series, as ct_wplane_taps: the same numbers either way. */
    double val[CT_GRID_MAX_SUPPORT];
    ct_gkernel_series(k, 2.0 * (first - t + h) - 1.0, val);
    return val[j - (long)first];
}

ct_code ct_wplane_range(const ct_gkernel *k, double wmin, double wmax, double dw, long *lo,
                        long *hi, ct_err *err)
{
    double planes = (wmax - wmin) / dw + k->support + 1;
    if (!(planes <= CT_GRID_MAX_W_PLANES))
        return ct_fail(err, CT_EINVAL,
                       "w from %g to %g needs %.3g w planes of %g wavelengths, over %d", wmin, wmax,
                       planes, dw, CT_GRID_MAX_W_PLANES);
    double h = 0.5 * k->support;
    *lo = (long)ceil(-h);
    *hi = (long)ceil((wmax - wmin) / dw - h) + k->support - 1;
    return CT_OK;
}
