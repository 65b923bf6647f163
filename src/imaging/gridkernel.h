/*
 * gridkernel.h -- the gridding kernel and the w-stacking geometry shared by the
 * one-rank gridder (gridder.h) and the distributed imager (imager.h).
 *
 * Owns: the "exponential of semicircle" kernel phi(x) = exp(beta (sqrt(1 - x^2) - 1))
 * on |x| <= 1 and its table of supports W and shapes beta per accuracy epsilon
 * (gridder.h and docs/imaging.md say how it was measured); the kernel's Fourier
 * transform for the grid correction; where a visibility's kernel falls on a
 * periodic grid axis; and the w planes of improved w-stacking. Grids are
 * oversampled by CT_GRID_OVERSAMPLING; pure functions and one small
 * quadrature object, no global state.
 */
#ifndef CONTIMG_GRIDKERNEL_H
#define CONTIMG_GRIDKERNEL_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>

#define CT_GRID_OVERSAMPLING 2
#define CT_GRID_MAX_SUPPORT  16
/* More w planes than this is refused (a w range far beyond any array's). */
#define CT_GRID_MAX_W_PLANES 100000

#define CT_GKERNEL_MAX_DEGREE 32

/* The kernel and, for speed, each tap as a Chebyshev series in the
 * visibility's fractional cell offset: the W values a visibility spreads are
 * then a few multiply-adds each instead of an exp and a sqrt. The series'
 * degree is chosen when the kernel is (ct_gkernel_for) so that it stays
 * within 1/50 of the kernel's epsilon everywhere (measured on a fine grid of
 * offsets); gridding and degridding use the series, the grid correction the
 * exact kernel. */
typedef struct ct_gkernel {
    int support; /* W, grid cells */
    double beta;
    int degree;
    /* tap i at offset t in [-1, 1]: sum_d cheb[d][i] T_d(t) */
    double cheb[CT_GKERNEL_MAX_DEGREE + 1][CT_GRID_MAX_SUPPORT];
    /* The same series in powers of t, sum_d poly[d][i] t^d (taps past W are
     * 0), used when it is as accurate (horner nonzero: the lower degrees,
     * which every epsilon down to about 1e-9 needs): Horner's rule over 8 or
     * 16 taps at once is a handful of vector instructions, Clenshaw's
     * recurrence several times as many. */
    int horner;
    double poly[CT_GKERNEL_MAX_DEGREE + 1][CT_GRID_MAX_SUPPORT];
} ct_gkernel;

/* Forced inline where the compiler allows: a hot loop compiled for AVX2
 * (target_clones) then evaluates the taps at its own vector width; a call
 * out of it would run the baseline (SSE2) build of the series. */
#if defined(__GNUC__) || defined(__clang__)
#define CT_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define CT_ALWAYS_INLINE inline
#endif

/* The series at degrees past Horner's or support past 8 (gridkernel.c). */
void ct_gkernel_series_general(const ct_gkernel *k, double t, double *val);

/* The W taps at series offset t in [-1, 1] into val[CT_GRID_MAX_SUPPORT]
 * (entries past W are scratch). Inline: it runs for every visibility and
 * axis of every pass, and the common case -- Horner's rule over 8 taps --
 * is a few vector multiply-adds per degree. */
static CT_ALWAYS_INLINE void ct_gkernel_series(const ct_gkernel *k, double t, double *val)
{
    if (k->horner && k->support <= 8) {
        const int D = k->degree;
        double acc[8];
        for (int i = 0; i < 8; i++)
            acc[i] = k->poly[D][i];
        for (int d = D - 1; d >= 0; d--)
            for (int i = 0; i < 8; i++)
                acc[i] = acc[i] * t + k->poly[d][i];
        for (int i = 0; i < 8; i++)
            val[i] = acc[i];
    } else
        ct_gkernel_series_general(k, t, val);
}

/* ct_gkernel_series at three offsets at once (a visibility's u, v and w),
 * each tap by exactly the same operations, so the same bits. Why: Horner's
 * rule is a chain of dependent multiply-adds, and one chain at a time left
 * the vector units waiting on its latency (a quarter of a gridding pass,
 * measured); three chains interleaved in one loop keep them busy. */
static CT_ALWAYS_INLINE void ct_gkernel_series3(const ct_gkernel *k, const double t[3], double *v0,
                                                double *v1, double *v2)
{
    /* In explicit 4-wide vectors: left to itself, GCC vectorized two of the
     * three chains and ran the third as scalar multiply-adds through the
     * stack (a fifth of a degridding pass). Element by element the same
     * arithmetic as ct_gkernel_series. */
    typedef double v4 __attribute__((vector_size(32)));
    typedef double v4u __attribute__((vector_size(32), aligned(8)));
    if (k->horner && k->support <= 8) {
        const int D = k->degree;
        const v4 t0 = {t[0], t[0], t[0], t[0]}, t1 = {t[1], t[1], t[1], t[1]},
                 t2 = {t[2], t[2], t[2], t[2]};
        const v4 p0 = *(const v4u *)&k->poly[D][0], p1 = *(const v4u *)&k->poly[D][4];
        v4 a0 = p0, a1 = p1, b0 = p0, b1 = p1, c0 = p0, c1 = p1;
        for (int d = D - 1; d >= 0; d--) {
            const v4 q0 = *(const v4u *)&k->poly[d][0], q1 = *(const v4u *)&k->poly[d][4];
            a0 = a0 * t0 + q0;
            a1 = a1 * t0 + q1;
            b0 = b0 * t1 + q0;
            b1 = b1 * t1 + q1;
            c0 = c0 * t2 + q0;
            c1 = c1 * t2 + q1;
        }
        *(v4u *)&v0[0] = a0;
        *(v4u *)&v0[4] = a1;
        *(v4u *)&v1[0] = b0;
        *(v4u *)&v1[4] = b1;
        *(v4u *)&v2[0] = c0;
        *(v4u *)&v2[4] = c1;
    } else {
        ct_gkernel_series_general(k, t[0], v0);
        ct_gkernel_series_general(k, t[1], v1);
        ct_gkernel_series_general(k, t[2], v2);
    }
}

/* The kernel trusted to epsilon (requests below the table's best get the best). */
ct_gkernel ct_gkernel_for(double epsilon);

/* phi(x) for x in [-1, 1] (0 outside the semicircle's root, exp(-beta) at the edge). */
double ct_gkernel_value(const ct_gkernel *k, double x);

/* Where the kernel around coordinate g (in grid cells) falls on an axis of n
 * cells: the W wrapped indices idx[] and the kernel's values val[] there (from
 * the series; val has room for CT_GRID_MAX_SUPPORT). Inline, as the series. */
static inline void ct_gkernel_taps(const ct_gkernel *k, double g, int n, int *idx, double *val)
{
    double h = 0.5 * k->support;
    double first = __builtin_ceil(g - h);
    double wrapped = first - n * __builtin_floor(first / n); /* in [0, n) exactly: integers */
    long j = (long)wrapped;
    /* first - g + h in (0, 1]: the first tap's offset from the kernel's edge. */
    ct_gkernel_series(k, 2.0 * (first - g + h) - 1.0, val);
    for (int i = 0; i < k->support; i++)
        idx[i] = (int)(j + i < n ? j + i : (j + i) % n);
}

/* The index of the first of the W cells the kernel around g covers (not wrapped). */
long ct_gkernel_first(const ct_gkernel *k, double g);

/* The kernel's continuous Fourier transform, by Gauss-Legendre quadrature. */
typedef struct ct_gkernel_ft {
    ct_gkernel k;
    int nq;
    double *x, *w; /* per quadrature node: sin(theta), and the weight with the kernel folded in */
} ct_gkernel_ft;

ct_code ct_gkernel_ft_init(ct_gkernel_ft *ft, ct_gkernel k, ct_err *err);
void ct_gkernel_ft_free(ct_gkernel_ft *ft);
/* The transform of phi(t / (W/2)) at xi cycles per grid cell. */
double ct_gkernel_ft_at(const ct_gkernel_ft *ft, double xi);

/* n - 1 = sqrt(1 - l^2 - m^2) - 1 inside the unit circle, without cancellation. */
double ct_n_minus_1(double l, double m);

/* The slant orthographic projection (FITS "SIN" with PV2_1 = xi, PV2_2 =
 * eta; Calabretta & Greisen 2002, section 5.1.5): the image coordinates of
 * direction (l, m) are x = l + xi (1 - n), y = m + eta (1 - n). Why an imager
 * wants it: for an array whose baselines lie close to one plane, w = -xi u -
 * eta v + w' with small w', and u x + v y + w' (n - 1) = u l + v m + w (n - 1)
 * exactly, so gridding (u, v, w') onto a grid uniform in (x, y) images the
 * same sky with a w range as small as w''s. ct_slant_to_lm inverts it: the
 * (l, m) of (x, y), by fixed-point iteration to the last bit (each step
 * gains about a factor |xi l + eta m| / n); false beyond the horizon, or
 * where the iteration does not settle (|xi l + eta m| near n: a slant far too
 * strong for the field). With xi = eta = 0 it is the identity. */
bool ct_slant_to_lm(double x, double y, double xi, double eta, double *l, double *m);

/* The w-stacking geometry of an nx by ny image of cell (see gridder.h): n - 1
 * runs from its value at the corner pixel up to 0; nm1_mid is the middle of
 * that range and dw the plane spacing. *usable = 0 when n - 1 rounds to 0 over
 * the whole image (the w term then vanishes). CT_EINVAL when the image reaches
 * the horizon. */
ct_code ct_wstack_geometry(int nx, int ny, double cell, int *usable, double *nm1_mid, double *dw,
                           ct_err *err);

/* The same from the least n - 1 over an image (lo < 0), wherever it lies
 * (a slant grid's farthest pixel need not be a corner). */
void ct_wstack_spacing(double lo, double *nm1_mid, double *dw);

/* Planes: plane j sits at w = wmin + j dw; a row at w is spread over planes
 * ct_wplane_first(..) .. + W - 1 with weight ct_wplane_tap(..). */
long ct_wplane_first(const ct_gkernel *k, double w, double wmin, double dw);
double ct_wplane_tap(const ct_gkernel *k, double w, double wmin, double dw, long j);
/* All W weights at once, from the series: val[i] for plane first + i (val
 * of CT_GRID_MAX_SUPPORT); returns first. */
static CT_ALWAYS_INLINE long ct_wplane_taps(const ct_gkernel *k, double w, double wmin, double dw,
                                            double *val)
{
    double h = 0.5 * k->support, t = (w - wmin) / dw;
    double first = __builtin_ceil(t - h);
    ct_gkernel_series(k, 2.0 * (first - t + h) - 1.0, val);
    return (long)first;
}
/* The planes [*lo, *hi] that rows with w in [wmin, wmax] reach; CT_EINVAL
 * beyond CT_GRID_MAX_W_PLANES. */
ct_code ct_wplane_range(const ct_gkernel *k, double wmin, double wmax, double dw, long *lo,
                        long *hi, ct_err *err);

#endif
