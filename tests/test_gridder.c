/*
 * test_gridder.c -- the dirty-image gridder against a direct Fourier
 * transform of the same visibilities (the oracle that does not share the
 * gridder's method), a point source at a known pixel, the adjointness of
 * gridding and degridding, and refusal of bad input.
 */
#define _GNU_SOURCE /* M_PI */
#include "gridder.h"
#include "testutil.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A small deterministic generator: uniform in [0, 1). */
static double uniform(unsigned long long *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*state >> 11) / 9007199254740992.0;
}

/* n random uv points inside the band |u|, |v| < 1 / (2 cell); w random. */
static double *random_uvw(size_t n, double cell, unsigned long long *state)
{
    double *uvw = malloc(3 * n * sizeof *uvw);
    for (size_t k = 0; uvw && k < n; k++) {
        uvw[3 * k] = (uniform(state) - 0.5) * 0.999 / cell;
        uvw[3 * k + 1] = (uniform(state) - 0.5) * 0.999 / cell;
        uvw[3 * k + 2] = (uniform(state) - 0.5) * 100.0;
    }
    return uvw;
}

/* n - 1 at (l, m), without cancellation (sqrt(...) - 1 loses 1e-16 absolute,
 * 1e-12 of phase at w = 3000). */
static double nm1(double l, double m)
{
    double r2 = l * l + m * m;
    return -r2 / (1.0 + sqrt(1.0 - r2));
}

/* I(l, m) = sum_k w_k Re(V_k exp(-2 pi i (u l + v m + w (n - 1)))) / sum_k w_k,
 * directly (the w term dropped when use_w is 0). */
static void direct_dirty_w(int nx, int ny, double cell, const double *uvw,
                           const double complex *vis, const double *wt, size_t n, int use_w,
                           double *image)
{
    double wsum = 0;
    for (size_t k = 0; k < n; k++)
        wsum += wt[k];
    for (int iy = 0; iy < ny; iy++) {
        double m = (iy - ny / 2) * cell;
        for (int ix = 0; ix < nx; ix++) {
            double l = (ix - nx / 2) * cell, sum = 0, c = use_w ? nm1(l, m) : 0.0;
            for (size_t k = 0; k < n; k++)
                sum +=
                    wt[k] * creal(vis[k] *
                                  cexp(-2 * M_PI * I *
                                       (uvw[3 * k] * l + uvw[3 * k + 1] * m + uvw[3 * k + 2] * c)));
            image[(size_t)iy * nx + ix] = sum / wsum;
        }
    }
}

static void direct_dirty(int nx, int ny, double cell, const double *uvw, const double complex *vis,
                         const double *wt, size_t n, double *image)
{
    direct_dirty_w(nx, ny, cell, uvw, vis, wt, n, 1, image);
}

/* max |a - b| / max |b| */
static double rel_maxdiff(const double *a, const double *b, size_t n)
{
    double d = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return d / mb;
}

/* Several point sources at random (off-pixel) positions, random weights:
 * the gridder's image against the direct transform for each epsilon. */
static void dft_case(int nx, int ny, size_t n, const double *epsilons, int neps)
{
    const double cell = 2e-4;
    unsigned long long state = 12345 + (unsigned long long)nx * 7 + (unsigned long long)ny;
    double *uvw = random_uvw(n, cell, &state);
    double complex *vis = malloc(n * sizeof *vis);
    double *wt = malloc(n * sizeof *wt);
    double *dft = malloc((size_t)nx * ny * sizeof *dft);
    double *img = malloc((size_t)nx * ny * sizeof *img);
    REQUIRE(uvw && vis && wt && dft && img, "out of memory");
    enum { NSRC = 6 };
    double l0[NSRC], m0[NSRC], s0[NSRC];
    for (int s = 0; s < NSRC; s++) {
        l0[s] = (uniform(&state) - 0.5) * 0.9 * nx * cell;
        m0[s] = (uniform(&state) - 0.5) * 0.9 * ny * cell;
        s0[s] = 0.2 + uniform(&state);
    }
    for (size_t k = 0; k < n; k++) {
        wt[k] = 0.1 + uniform(&state);
        vis[k] = 0;
        for (int s = 0; s < NSRC; s++)
            vis[k] += s0[s] * cexp(2 * M_PI * I *
                                   (uvw[3 * k] * l0[s] + uvw[3 * k + 1] * m0[s] +
                                    uvw[3 * k + 2] * nm1(l0[s], m0[s])));
    }
    direct_dirty(nx, ny, cell, uvw, vis, wt, n, dft);
    for (int e = 0; e < neps; e++) {
        ct_err err;
        ct_gridder_plan *plan = NULL;
        CHECK_OK(ct_gridder_plan_create(nx, ny, cell, epsilons[e], &plan, &err), err);
        if (!plan)
            continue;
        int support;
        double beta;
        ct_gridder_plan_kernel(plan, &support, &beta);
        CHECK_OK(ct_gridder_dirty(plan, uvw, vis, wt, n, img, &err), err);
        double r = rel_maxdiff(img, dft, (size_t)nx * ny);
        printf("     %dx%d, %zu vis: epsilon %.0e -> W %d, beta %.2f: max|diff|/max|dft| %.2e\n",
               nx, ny, n, epsilons[e], support, beta, r);
        CHECK(r <= epsilons[e], "epsilon %g: achieved %g", epsilons[e], r);
        ct_gridder_plan_destroy(plan);
    }
    free(uvw);
    free(vis);
    free(wt);
    free(dft);
    free(img);
}

static void test_dirty_vs_dft(void)
{
    const double stated[] = {1e-4, 1e-6};
    dft_case(128, 128, 400, stated, 2);
    /* A non-square image catches l and m swapped. */
    dft_case(64, 96, 300, stated, 2);
    /* One and two visibilities: no averaging of the errors, the hardest case. */
    dft_case(32, 32, 1, stated, 2);
    dft_case(32, 32, 2, stated, 2);
    /* The rest of the range. */
    const double others[] = {1e-2, 1e-8, 1e-10, 1e-12};
    dft_case(128, 128, 400, others, 4);
    dft_case(32, 32, 1, others, 4);
}

/* One source at a pixel centre: the image peaks there with the source's flux,
 * and the convention's sign puts it east/north, not mirrored. */
static void test_point_source(void)
{
    const int nx = 64, ny = 48, px = 40, py = 13;
    const double cell = 1e-3, flux = 2.5;
    const size_t n = 300;
    unsigned long long state = 99;
    double *uvw = random_uvw(n, cell, &state);
    double complex *vis = malloc(n * sizeof *vis);
    double *img = malloc((size_t)nx * ny * sizeof *img);
    REQUIRE(uvw && vis && img, "out of memory");
    double l0 = (px - nx / 2) * cell, m0 = (py - ny / 2) * cell;
    for (size_t k = 0; k < n; k++)
        vis[k] =
            flux * cexp(2 * M_PI * I *
                        (uvw[3 * k] * l0 + uvw[3 * k + 1] * m0 + uvw[3 * k + 2] * nm1(l0, m0)));
    ct_err err;
    ct_gridder_plan *plan = NULL;
    CHECK_OK(ct_gridder_plan_create(nx, ny, cell, 1e-7, &plan, &err), err);
    if (plan) {
        CHECK_OK(ct_gridder_dirty(plan, uvw, vis, NULL, n, img, &err), err);
        size_t best = 0;
        for (size_t i = 1; i < (size_t)nx * ny; i++)
            if (img[i] > img[best])
                best = i;
        CHECK((int)(best % nx) == px && (int)(best / nx) == py, "peak at (%zu, %zu), not (%d, %d)",
              best % nx, best / nx, px, py);
        CHECK(fabs(img[best] - flux) <= 1e-6, "peak %.9f, flux %.9f", img[best], flux);
        CHECK(fabs(img[(size_t)py * nx + px] - flux) <= 1e-6, "value at the source %.9f",
              img[(size_t)py * nx + px]);
        ct_gridder_plan_destroy(plan);
    }
    free(uvw);
    free(vis);
    free(img);
}

/* <W V, G I> / sum W = <dirty(V), I>, G = degrid (both real inner
 * products), and degridding against the direct sum. */
static void test_adjoint(void)
{
    const int nx = 64, ny = 48;
    const double cell = 5e-4;
    const size_t n = 500;
    unsigned long long state = 7;
    double *uvw = random_uvw(n, cell, &state);
    double complex *vis = malloc(n * sizeof *vis), *model = malloc(n * sizeof *model);
    double *wt = malloc(n * sizeof *wt);
    double *img = malloc((size_t)nx * ny * sizeof *img);
    double *dirty = malloc((size_t)nx * ny * sizeof *dirty);
    REQUIRE(uvw && vis && model && wt && img && dirty, "out of memory");
    double wsum = 0;
    for (size_t k = 0; k < n; k++) {
        vis[k] = (uniform(&state) - 0.5) + I * (uniform(&state) - 0.5);
        wt[k] = uniform(&state);
        wsum += wt[k];
    }
    for (size_t i = 0; i < (size_t)nx * ny; i++)
        img[i] = uniform(&state) - 0.5;
    ct_err err;
    ct_gridder_plan *plan = NULL;
    CHECK_OK(ct_gridder_plan_create(nx, ny, cell, 1e-6, &plan, &err), err);
    if (plan) {
        CHECK_OK(ct_gridder_degrid(plan, uvw, img, n, model, &err), err);
        CHECK_OK(ct_gridder_dirty(plan, uvw, vis, wt, n, dirty, &err), err);
        double lhs = 0, rhs = 0;
        for (size_t k = 0; k < n; k++)
            lhs += creal(conj(wt[k] * vis[k]) * model[k]);
        lhs /= wsum;
        for (size_t i = 0; i < (size_t)nx * ny; i++)
            rhs += dirty[i] * img[i];
        double rel = fabs(lhs - rhs) / fmax(fabs(lhs), fabs(rhs));
        printf("     adjointness: <V, G I> %.15e, <G^H V, I> %.15e, relative %.1e\n", lhs, rhs,
               rel);
        CHECK(rel <= 1e-12, "adjointness off by %g", rel);

        /* Degridding a few pixels against the direct sum over them. */
        for (size_t i = 0; i < (size_t)nx * ny; i++)
            img[i] = 0;
        img[(size_t)10 * nx + 50] = 1.0;
        img[(size_t)30 * nx + 5] = -0.5;
        img[(size_t)24 * nx + 32] = 2.0;
        CHECK_OK(ct_gridder_degrid(plan, uvw, img, n, model, &err), err);
        double worst = 0;
        for (size_t k = 0; k < n; k++) {
            double complex direct = 0;
            for (int iy = 0; iy < ny; iy++)
                for (int ix = 0; ix < nx; ix++) {
                    double v = img[(size_t)iy * nx + ix];
                    double l = (ix - nx / 2) * cell, m = (iy - ny / 2) * cell;
                    if (v != 0)
                        direct += v * cexp(2 * M_PI * I *
                                           (uvw[3 * k] * l + uvw[3 * k + 1] * m +
                                            uvw[3 * k + 2] * nm1(l, m)));
                }
            worst = fmax(worst, cabs(model[k] - direct));
        }
        printf("     degrid vs direct sum: max|diff| %.2e (sum|I| = 3.5)\n", worst);
        CHECK(worst <= 1e-6 * 3.5, "degridding off by %g", worst);
        ct_gridder_plan_destroy(plan);
    }
    free(uvw);
    free(vis);
    free(model);
    free(wt);
    free(img);
    free(dirty);
}

/* A wide field, 128 x 128 pixels 3.5 degrees across (|n - 1| up to 9e-4 at
 * the corners), |w| up to 3000 wavelengths, sources near the edges: the
 * w-stacked image against the 3-D transform, the 2-D approximation failing
 * it (the test is sensitive), adjointness and degridding with w. */
static void test_wide_field(void)
{
    const int nx = 128, ny = 128;
    const double cell = 3.5 * M_PI / 180 / nx;
    const size_t n = 1000;
    unsigned long long state = 2026;
    double *uvw = random_uvw(n, cell, &state);
    double complex *vis = malloc(n * sizeof *vis), *model = malloc(n * sizeof *model);
    double *wt = malloc(n * sizeof *wt);
    double *dft = malloc((size_t)nx * ny * sizeof *dft);
    double *img = malloc((size_t)nx * ny * sizeof *img);
    REQUIRE(uvw && vis && model && wt && dft && img, "out of memory");
    for (size_t k = 0; k < n; k++)
        uvw[3 * k + 2] = (uniform(&state) - 0.5) * 6000.0;
    /* pixel positions (fractional: off the pixel centres), near the edges and corners */
    enum { NSRC = 6 };
    const double px[NSRC] = {1.3, 126.6, 3.2, 120.4, 64.0, 0.0};
    const double py[NSRC] = {2.7, 125.1, 122.9, 5.5, 0.4, 64.0};
    const double s0[NSRC] = {1.0, 0.7, 0.5, 1.2, 0.9, 0.3};
    for (size_t k = 0; k < n; k++) {
        wt[k] = 0.1 + uniform(&state);
        vis[k] = 0;
        for (int s = 0; s < NSRC; s++) {
            double l = (px[s] - nx / 2) * cell, m = (py[s] - ny / 2) * cell;
            vis[k] +=
                s0[s] * cexp(2 * M_PI * I *
                             (uvw[3 * k] * l + uvw[3 * k + 1] * m + uvw[3 * k + 2] * nm1(l, m)));
        }
    }
    direct_dirty(nx, ny, cell, uvw, vis, wt, n, dft);
    const double eps[] = {1e-4, 1e-6};
    for (int e = 0; e < 2; e++) {
        ct_err err;
        ct_gridder_plan *plan = NULL;
        CHECK_OK(ct_gridder_plan_create(nx, ny, cell, eps[e], &plan, &err), err);
        if (!plan)
            continue;
        CHECK_OK(ct_gridder_dirty(plan, uvw, vis, wt, n, img, &err), err);
        double r = rel_maxdiff(img, dft, (size_t)nx * ny);
        ct_gridder_plan_set_wterms(plan, 0);
        CHECK_OK(ct_gridder_dirty(plan, uvw, vis, wt, n, img, &err), err);
        double r2d = rel_maxdiff(img, dft, (size_t)nx * ny);
        printf("     wide field, epsilon %.0e: w-stacked %.2e, without w %.2e (vs the 3-D DFT)\n",
               eps[e], r, r2d);
        CHECK(r <= eps[e], "w-stacked: epsilon %g, achieved %g", eps[e], r);
        CHECK(r2d > 1e-2, "the test is not sensitive to w: the 2-D image is off by only %g", r2d);
        ct_gridder_plan_destroy(plan);
    }

    /* The 2-D image is the 2-D transform: w ignored, so the oracle without w agrees. */
    {
        ct_err err;
        ct_gridder_plan *plan = NULL;
        CHECK_OK(ct_gridder_plan_create(nx, ny, cell, 1e-6, &plan, &err), err);
        if (plan) {
            ct_gridder_plan_set_wterms(plan, 0);
            direct_dirty_w(nx, ny, cell, uvw, vis, wt, n, 0, dft);
            CHECK_OK(ct_gridder_dirty(plan, uvw, vis, wt, n, img, &err), err);
            double r = rel_maxdiff(img, dft, (size_t)nx * ny);
            CHECK(r <= 1e-6, "w-terms off: %g against the 2-D transform", r);
            ct_gridder_plan_destroy(plan);
        }
    }

    /* Adjointness with w, and degridding against the 3-D direct sum. */
    ct_err err;
    ct_gridder_plan *plan = NULL;
    CHECK_OK(ct_gridder_plan_create(nx, ny, cell, 1e-6, &plan, &err), err);
    if (plan) {
        double wsum = 0;
        for (size_t k = 0; k < n; k++) {
            vis[k] = (uniform(&state) - 0.5) + I * (uniform(&state) - 0.5);
            wsum += wt[k];
        }
        for (size_t i = 0; i < (size_t)nx * ny; i++)
            dft[i] = uniform(&state) - 0.5;
        CHECK_OK(ct_gridder_degrid(plan, uvw, dft, n, model, &err), err);
        CHECK_OK(ct_gridder_dirty(plan, uvw, vis, wt, n, img, &err), err);
        double lhs = 0, rhs = 0;
        for (size_t k = 0; k < n; k++)
            lhs += creal(conj(wt[k] * vis[k]) * model[k]);
        lhs /= wsum;
        for (size_t i = 0; i < (size_t)nx * ny; i++)
            rhs += img[i] * dft[i];
        double rel = fabs(lhs - rhs) / fmax(fabs(lhs), fabs(rhs));
        printf("     adjointness with w: relative %.1e\n", rel);
        CHECK(rel <= 1e-12, "adjointness with w off by %g", rel);

        for (size_t i = 0; i < (size_t)nx * ny; i++)
            dft[i] = 0;
        const int pix[4][2] = {{0, 0}, {127, 3}, {5, 126}, {64, 64}};
        const double val[4] = {1.0, -0.5, 2.0, 0.7};
        for (int s = 0; s < 4; s++)
            dft[(size_t)pix[s][1] * nx + pix[s][0]] = val[s];
        CHECK_OK(ct_gridder_degrid(plan, uvw, dft, n, model, &err), err);
        double worst = 0;
        for (size_t k = 0; k < n; k++) {
            double complex direct = 0;
            for (int s = 0; s < 4; s++) {
                double l = (pix[s][0] - nx / 2) * cell, m = (pix[s][1] - ny / 2) * cell;
                direct += val[s] *
                          cexp(2 * M_PI * I *
                               (uvw[3 * k] * l + uvw[3 * k + 1] * m + uvw[3 * k + 2] * nm1(l, m)));
            }
            worst = fmax(worst, cabs(model[k] - direct));
        }
        printf("     degrid with w vs the 3-D sum: max|diff| %.2e (sum|I| = 4.2)\n", worst);
        CHECK(worst <= 1e-6 * 4.2, "degridding with w off by %g", worst);
        ct_gridder_plan_destroy(plan);
    }
    free(uvw);
    free(vis);
    free(model);
    free(wt);
    free(dft);
    free(img);
}

/* With every w 0 the w-stacking plan runs the 2-D method: the same bits as
 * with the w term switched off; and an image reaching the horizon is refused
 * w-stacking but still images coplanar data. */
static void test_coplanar_and_horizon(void)
{
    const int nx = 64, ny = 64;
    const double cell = 1e-3;
    const size_t n = 200;
    unsigned long long state = 31;
    double *uvw = random_uvw(n, cell, &state);
    double complex *vis = malloc(n * sizeof *vis);
    double *a = malloc((size_t)nx * ny * sizeof *a), *b = malloc((size_t)nx * ny * sizeof *b);
    REQUIRE(uvw && vis && a && b, "out of memory");
    for (size_t k = 0; k < n; k++) {
        uvw[3 * k + 2] = 0;
        vis[k] = uniform(&state) + I * uniform(&state);
    }
    ct_err err;
    ct_gridder_plan *plan = NULL;
    REQUIRE_OK(ct_gridder_plan_create(nx, ny, cell, 1e-6, &plan, &err), err);
    CHECK_OK(ct_gridder_dirty(plan, uvw, vis, NULL, n, a, &err), err);
    ct_gridder_plan_set_wterms(plan, 0);
    CHECK_OK(ct_gridder_dirty(plan, uvw, vis, NULL, n, b, &err), err);
    size_t same = 0;
    for (size_t i = 0; i < (size_t)nx * ny; i++)
        same += memcmp(&a[i], &b[i], sizeof a[i]) == 0;
    CHECK(same == (size_t)nx * ny, "w = 0: %zu of %d pixels differ from the 2-D path",
          (size_t)nx * ny - same, nx * ny);
    ct_gridder_plan_destroy(plan);

    /* 64 pixels of 0.03: corners beyond the horizon */
    REQUIRE_OK(ct_gridder_plan_create(nx, ny, 0.03, 1e-4, &plan, &err), err);
    CHECK_OK(ct_gridder_dirty(plan, uvw, vis, NULL, n, a, &err), err);
    uvw[2] = 10.0;
    CHECK(ct_gridder_dirty(plan, uvw, vis, NULL, n, a, &err) == CT_EINVAL,
          "w-stacking an image beyond the horizon is refused");
    CHECK(ct_gridder_degrid(plan, uvw, a, n, vis, &err) == CT_EINVAL,
          "degridding with w beyond the horizon is refused");
    ct_gridder_plan_set_wterms(plan, 0);
    CHECK_OK(ct_gridder_dirty(plan, uvw, vis, NULL, n, a, &err), err);
    ct_gridder_plan_destroy(plan);

    /* a w range needing millions of planes is refused, not run */
    REQUIRE_OK(ct_gridder_plan_create(nx, ny, cell, 1e-4, &plan, &err), err);
    uvw[2] = 1e12;
    CHECK(ct_gridder_dirty(plan, uvw, vis, NULL, n, a, &err) == CT_EINVAL,
          "w = 1e12 is refused (too many planes)");
    CHECK(ct_gridder_degrid(plan, uvw, a, n, vis, &err) == CT_EINVAL,
          "degridding w = 1e12 is refused");
    ct_gridder_plan_destroy(plan);
    free(uvw);
    free(vis);
    free(a);
    free(b);
}

static void expect_refused(int nx, int ny, double cell, double eps, const char *what)
{
    ct_err err;
    ct_err_clear(&err);
    ct_gridder_plan *plan = (ct_gridder_plan *)&err; /* must be reset to NULL */
    ct_code rc = ct_gridder_plan_create(nx, ny, cell, eps, &plan, &err);
    CHECK(rc == CT_EINVAL && err.code == CT_EINVAL, "%s: code %d", what, (int)rc);
    CHECK(plan == NULL, "%s: a plan came back", what);
    CHECK(err.msg[0] != '\0', "%s: no message", what);
    ct_gridder_plan_destroy(rc == CT_OK ? plan : NULL);
}

static void test_bad_input(void)
{
    expect_refused(63, 64, 1e-3, 1e-6, "odd nx");
    expect_refused(64, 65, 1e-3, 1e-6, "odd ny");
    expect_refused(0, 64, 1e-3, 1e-6, "zero nx");
    expect_refused(-2, 64, 1e-3, 1e-6, "negative nx");
    expect_refused(64, 64, 0.0, 1e-6, "zero cell");
    expect_refused(64, 64, -1e-3, 1e-6, "negative cell");
    expect_refused(64, 64, NAN, 1e-6, "NaN cell");
    expect_refused(64, 64, 1e-3, 1.0, "epsilon 1");
    expect_refused(64, 64, 1e-3, 1e-15, "epsilon 1e-15");
    expect_refused(64, 64, 1e-3, NAN, "NaN epsilon");
    /* 16384^2 pixels need a 16 GiB grid: refused before allocating. */
    expect_refused(16384, 16384, 1e-5, 1e-6, "16 GiB grid");
    expect_refused(1 << 30, 1 << 30, 1e-9, 1e-6, "absurd image");

    ct_err err;
    ct_gridder_plan *plan = NULL;
    REQUIRE_OK(ct_gridder_plan_create(8, 8, 1e-2, 1e-4, &plan, &err), err);
    double uvw[6] = {1, 2, 0, NAN, 0, 0}, img[64];
    double complex vis[2] = {1, 1};
    double zero[2] = {0, 0};
    CHECK(ct_gridder_dirty(plan, uvw, vis, NULL, 2, img, &err) == CT_EINVAL, "a NaN u is refused");
    CHECK(ct_gridder_dirty(plan, uvw, vis, zero, 1, img, &err) == CT_EINVAL,
          "weights summing to zero are refused");
    CHECK(ct_gridder_degrid(plan, uvw, img, 2, vis, &err) == CT_EINVAL,
          "degridding refuses a NaN u");
    ct_gridder_plan_destroy(plan);
    ct_gridder_plan_destroy(NULL);
}

int main(void)
{
    RUN(test_dirty_vs_dft);
    RUN(test_point_source);
    RUN(test_adjoint);
    RUN(test_wide_field);
    RUN(test_coplanar_and_horizon);
    RUN(test_bad_input);
    return tu_finish();
}
