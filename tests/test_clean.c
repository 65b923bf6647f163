/*
 * test_clean.c -- the restoring-beam fit against Gaussians of known shape and
 * against a real PSF evaluated directly, Hogbom CLEAN recovering point
 * sources from a dirty image made with a gridded PSF, the threshold stop on
 * noise, restoration, and refusal of bad input.
 */
#define _GNU_SOURCE /* M_PI */
#include "clean.h"
#include "gridder.h"
#include "testutil.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double DEG = M_PI / 180.0;

/* A small deterministic generator: uniform in [0, 1). */
static double uniform(unsigned long long *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*state >> 11) / 9007199254740992.0;
}

static double gaussian(unsigned long long *state)
{
    double u1 = uniform(state), u2 = uniform(state);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(2 * M_PI * u2);
}

/* The elliptical Gaussian of peak 1 at offset (x, y) radians (x east, y north). */
static double gauss2d(const ct_beam *b, double x, double y)
{
    double sp = sin(b->bpa), cp = cos(b->bpa);
    double pmaj = x * sp + y * cp, pmin = x * cp - y * sp;
    return exp(-4 * log(2.0) *
               ((pmaj / b->bmaj) * (pmaj / b->bmaj) + (pmin / b->bmin) * (pmin / b->bmin)));
}

/* The difference of two position angles modulo pi, in [0, pi/2]. */
static double pa_diff(double a, double b)
{
    double d = fmod(fabs(a - b), M_PI);
    return d > M_PI / 2 ? M_PI - d : d;
}

/* Exact Gaussians of several shapes and angles: recovered to 1 % and 1 degree. */
static void test_beam_fit_gaussian(void)
{
    const int nx = 128, ny = 96;
    const double cell = 1e-5;
    const double pas[] = {0, 30, 90, 135, 170};
    const double axes[][2] = {{12, 5}, {6, 3.2}, {20, 19}};
    double *psf = malloc((size_t)nx * ny * sizeof *psf);
    REQUIRE(psf, "out of memory");
    for (size_t s = 0; s < sizeof axes / sizeof axes[0]; s++) {
        for (size_t a = 0; a < sizeof pas / sizeof pas[0]; a++) {
            ct_beam truth = {axes[s][0] * cell, axes[s][1] * cell, pas[a] * DEG};
            for (int iy = 0; iy < ny; iy++)
                for (int ix = 0; ix < nx; ix++)
                    psf[(size_t)iy * nx + ix] =
                        gauss2d(&truth, (ix - nx / 2) * cell, (iy - ny / 2) * cell);
            ct_beam fit;
            ct_err err;
            CHECK_OK(ct_beam_fit(psf, nx, ny, cell, &fit, &err), err);
            CHECK(fabs(fit.bmaj / truth.bmaj - 1) < 0.01, "bmaj %g, true %g", fit.bmaj, truth.bmaj);
            CHECK(fabs(fit.bmin / truth.bmin - 1) < 0.01, "bmin %g, true %g", fit.bmin, truth.bmin);
            CHECK(fit.bmaj >= fit.bmin, "bmaj %g < bmin %g", fit.bmaj, fit.bmin);
            CHECK(fit.bpa >= 0 && fit.bpa < M_PI, "bpa %g outside [0, pi)", fit.bpa);
            /* The angle of a nearly circular beam is poorly determined, but 20:19 still holds. */
            CHECK(pa_diff(fit.bpa, truth.bpa) < 1 * DEG, "bpa %g deg, true %g deg", fit.bpa / DEG,
                  pas[a]);
        }
    }
    /* A circular beam: equal axes, angle 0. */
    ct_beam circ = {8 * cell, 8 * cell, 0};
    for (int iy = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++)
            psf[(size_t)iy * nx + ix] = gauss2d(&circ, (ix - nx / 2) * cell, (iy - ny / 2) * cell);
    ct_beam fit;
    ct_err err;
    CHECK_OK(ct_beam_fit(psf, nx, ny, cell, &fit, &err), err);
    CHECK(fabs(fit.bmaj / circ.bmaj - 1) < 1e-6 && fabs(fit.bmin / circ.bmin - 1) < 1e-6,
          "circular: %g x %g", fit.bmaj, fit.bmin);
    /* Written without angles: elongated along l (east) is pa 90, along m (north) pa 0. */
    for (int k = 0; k < 2; k++) {
        for (int iy = 0; iy < ny; iy++) {
            for (int ix = 0; ix < nx; ix++) {
                double x = (ix - nx / 2) / (k == 0 ? 10.0 : 4.0);
                double y = (iy - ny / 2) / (k == 0 ? 4.0 : 10.0);
                psf[(size_t)iy * nx + ix] = exp(-4 * log(2.0) * (x * x + y * y));
            }
        }
        CHECK_OK(ct_beam_fit(psf, nx, ny, cell, &fit, &err), err);
        CHECK(pa_diff(fit.bpa, k == 0 ? 90 * DEG : 0) < 1e-6 && fabs(fit.bmaj / cell - 10) < 1e-6 &&
                  fabs(fit.bmin / cell - 4) < 1e-6,
              "axis-aligned %d: %g x %g px, pa %g deg", k, fit.bmaj / cell, fit.bmin / cell,
              fit.bpa / DEG);
    }
    free(psf);
}

/* A plausible snapshot-ish uv coverage: 24 antennas over an elongated, rotated
 * footprint, three short hour-angle steps (uv rotated), at 21 cm. Returns
 * malloc'd rows of (u, v, w); *n receives the count. */
static double *make_uvw(size_t *n)
{
    enum { NANT = 24, NSTEP = 3 };
    unsigned long long state = 2024;
    double x[NANT], y[NANT];
    const double rot = 25 * DEG, lambda = 0.21;
    for (int a = 0; a < NANT; a++) {
        double e = (uniform(&state) - 0.5) * 1600, nn = (uniform(&state) - 0.5) * 600;
        x[a] = e * cos(rot) - nn * sin(rot);
        y[a] = e * sin(rot) + nn * cos(rot);
    }
    size_t nb = NANT * (NANT - 1) / 2;
    double *uvw = malloc(3 * nb * NSTEP * sizeof *uvw);
    if (!uvw)
        return NULL;
    size_t k = 0;
    for (int s = 0; s < NSTEP; s++) {
        double h = (s - 1) * 0.08;
        for (int i = 0; i < NANT; i++) {
            for (int j = i + 1; j < NANT; j++) {
                double u = (x[j] - x[i]) / lambda, v = (y[j] - y[i]) / lambda;
                uvw[3 * k] = u * cos(h) - v * sin(h);
                uvw[3 * k + 1] = u * sin(h) + v * cos(h);
                uvw[3 * k + 2] = 0;
                k++;
            }
        }
    }
    *n = k;
    return uvw;
}

/* The PSF directly: sum_k cos(2 pi (u l + v m)) / n. */
static double direct_psf(const double *uvw, size_t n, double l, double m)
{
    double s = 0;
    for (size_t k = 0; k < n; k++)
        s += cos(2 * M_PI * (uvw[3 * k] * l + uvw[3 * k + 1] * m));
    return s / (double)n;
}

enum { NX = 256, NY = 256 };
static const double CELL = 1.5e-5;

/* The PSF of make_uvw's coverage on NX x NY pixels of CELL. */
static double *make_psf(const double *uvw, size_t n)
{
    double *psf = malloc((size_t)NX * NY * sizeof *psf);
    double complex *ones = malloc(n * sizeof *ones);
    ct_gridder_plan *plan = NULL;
    ct_err err;
    int ok = psf && ones && ct_gridder_plan_create(NX, NY, CELL, 1e-8, &plan, &err) == CT_OK;
    for (size_t k = 0; ok && k < n; k++)
        ones[k] = 1;
    if (ok)
        ok = ct_gridder_dirty(plan, uvw, ones, NULL, n, psf, &err) == CT_OK;
    ct_gridder_plan_destroy(plan);
    free(ones);
    if (!ok) {
        fprintf(stderr, "make_psf: %s\n", err.msg);
        free(psf);
        return NULL;
    }
    return psf;
}

/* The fit to a real PSF: the PSF, evaluated directly on the fitted half-power
 * ellipse, is 0.5 within 5 %. */
static void test_beam_fit_real_psf(void)
{
    size_t n;
    double *uvw = make_uvw(&n);
    double *psf = uvw ? make_psf(uvw, n) : NULL;
    REQUIRE(uvw && psf, "setup failed");
    CHECK(fabs(psf[(size_t)(NY / 2) * NX + NX / 2] - 1) < 1e-7, "psf centre %g",
          psf[(size_t)(NY / 2) * NX + NX / 2]);
    ct_beam fit;
    ct_err err;
    CHECK_OK(ct_beam_fit(psf, NX, NY, CELL, &fit, &err), err);
    printf("     real PSF: bmaj %.2f px, bmin %.2f px, bpa %.1f deg\n", fit.bmaj / CELL,
           fit.bmin / CELL, fit.bpa / DEG);
    CHECK(fit.bmin / CELL > 3, "beam %g px is too poorly sampled for this test", fit.bmin / CELL);
    /* The array's short axis points 25 degrees west of north (pa 155): the beam's long axis. */
    CHECK(pa_diff(fit.bpa, 155 * DEG) < 10 * DEG, "bpa %g deg, expected near 155", fit.bpa / DEG);
    double worst = 0;
    for (int t = 0; t < 72; t++) {
        /* A point on the half-power ellipse: (a cos, b sin) in the beam frame. */
        double th = t * 5 * DEG;
        double pmaj = 0.5 * fit.bmaj * cos(th), pmin = 0.5 * fit.bmin * sin(th);
        double sp = sin(fit.bpa), cp = cos(fit.bpa);
        double l = pmaj * sp + pmin * cp, m = pmaj * cp - pmin * sp;
        double v = direct_psf(uvw, n, l, m);
        worst = fmax(worst, fabs(v / 0.5 - 1));
    }
    printf("     real PSF on the fitted half-power ellipse: worst |psf/0.5 - 1| = %.3f\n", worst);
    CHECK(worst < 0.05, "worst relative departure %g", worst);
    free(psf);
    free(uvw);
}

/* dst += flux * psf shifted to (px, py), truncated like CLEAN's subtraction. */
static void add_shifted(double *dst, const double *psf, int px, int py, double flux)
{
    for (int iy = 0; iy < NY; iy++) {
        int jy = iy - py + NY / 2;
        if (jy < 0 || jy >= NY)
            continue;
        for (int ix = 0; ix < NX; ix++) {
            int jx = ix - px + NX / 2;
            if (jx >= 0 && jx < NX)
                dst[(size_t)iy * NX + ix] += flux * psf[(size_t)jy * NX + jx];
        }
    }
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* Five point sources spanning 10x in flux: CLEAN finds their fluxes to 1 %,
 * and the restored image peaks at each with its flux to 1 %. */
static void test_clean_point_sources(void)
{
    enum { NSRC = 5 };
    const int sx[NSRC] = {100, 160, 70, 190, 140}, sy[NSRC] = {140, 100, 70, 180, 200};
    const double sf[NSRC] = {10, 5, 3, 2, 1};
    size_t n;
    double *uvw = make_uvw(&n);
    double *psf = uvw ? make_psf(uvw, n) : NULL;
    double *img = malloc((size_t)NX * NY * sizeof *img);
    double *restored = malloc((size_t)NX * NY * sizeof *restored);
    REQUIRE(uvw && psf && img && restored, "setup failed");
    memset(img, 0, (size_t)NX * NY * sizeof *img);
    for (int s = 0; s < NSRC; s++)
        add_shifted(img, psf, sx[s], sy[s], sf[s]);

    ct_clean_opts o;
    ct_clean_opts_default(&o);
    o.gain = 0.1;
    o.niter = 20000;
    o.threshold = 1e-3;
    ct_clean_components comps = {0};
    ct_clean_result res;
    ct_err err;
    CHECK_OK(ct_clean_hogbom(img, psf, NX, NY, &o, &comps, &res, &err), err);
    printf("     clean: %d iterations, %zu components, peak residual %.2e, stopped by %s\n",
           res.iterations, comps.n, res.peak_residual, ct_clean_stop_name(res.reason));
    CHECK(res.reason == CT_CLEAN_STOP_THRESHOLD, "stopped by %s", ct_clean_stop_name(res.reason));
    CHECK(res.peak_residual < o.threshold, "peak residual %g", res.peak_residual);
    CHECK(max_abs(img, (size_t)NX * NY) < o.threshold, "residual max %g",
          max_abs(img, (size_t)NX * NY));
    double total = 0;
    for (size_t k = 0; k < comps.n; k++)
        total += comps.items[k].flux;
    for (int s = 0; s < NSRC; s++) {
        double near = 0;
        for (size_t k = 0; k < comps.n; k++)
            if (abs(comps.items[k].ix - sx[s]) <= 1 && abs(comps.items[k].iy - sy[s]) <= 1)
                near += comps.items[k].flux;
        printf("     source %d at (%d, %d): true %.3f, components within 1 px %.5f\n", s, sx[s],
               sy[s], sf[s], near);
        CHECK(fabs(near / sf[s] - 1) < 0.01, "source %d: %g vs %g", s, near, sf[s]);
    }
    CHECK(fabs(total - 21) < 0.21, "total component flux %g", total);

    ct_beam beam;
    CHECK_OK(ct_beam_fit(psf, NX, NY, CELL, &beam, &err), err);
    CHECK_OK(ct_clean_restore(&comps, &beam, CELL, img, NX, NY, restored, &err), err);
    for (int s = 0; s < NSRC; s++) {
        double v = restored[(size_t)sy[s] * NX + sx[s]];
        /* The local maximum within 3 pixels is the source's own pixel. */
        double lmax = -INFINITY;
        for (int dy = -3; dy <= 3; dy++)
            for (int dx = -3; dx <= 3; dx++)
                lmax = fmax(lmax, restored[(size_t)(sy[s] + dy) * NX + sx[s] + dx]);
        CHECK(v == lmax, "source %d: restored peak is off its pixel (%g < %g)", s, v, lmax);
        CHECK(fabs(v / sf[s] - 1) < 0.01, "source %d: restored %g vs %g", s, v, sf[s]);
    }
    /* Restoring in place gives the same image. */
    CHECK_OK(ct_clean_restore(&comps, &beam, CELL, img, NX, NY, img, &err), err);
    CHECK(memcmp(img, restored, (size_t)NX * NY * sizeof *img) == 0, "in-place restore differs");

    /* A second call continues the same model: components merge per pixel. */
    size_t before = comps.n;
    memset(img, 0, (size_t)NX * NY * sizeof *img);
    add_shifted(img, psf, sx[0], sy[0], 1.0);
    o.threshold = 0.05;
    CHECK_OK(ct_clean_hogbom(img, psf, NX, NY, &o, &comps, &res, &err), err);
    CHECK(comps.n == before, "components %zu, before %zu (no new pixels expected)", comps.n,
          before);
    ct_clean_components_free(&comps);
    free(uvw);
    free(psf);
    free(img);
    free(restored);
}

/* A minor cycle on the active set only (ct_clean_opts.active_below): on five
 * sources cleaned to 0.15 of the peak (a major cycle at mgain 0.85), the
 * same components bit for bit as Hogbom over the whole image, the active
 * pixels' residuals the same bits, and every other pixel untouched. */
static void test_clean_active_set(void)
{
    enum { NSRC = 5 };
    const int sx[NSRC] = {100, 160, 70, 190, 140}, sy[NSRC] = {140, 100, 70, 180, 200};
    const double sf[NSRC] = {10, 5, 3, 2, 1};
    size_t n;
    double *uvw = make_uvw(&n);
    double *psf = uvw ? make_psf(uvw, n) : NULL;
    const size_t np = (size_t)NX * NY;
    double *dirty = calloc(np, sizeof *dirty), *a = malloc(np * sizeof *a),
           *b = malloc(np * sizeof *b);
    REQUIRE(uvw && psf && dirty && a && b, "setup failed");
    for (int s = 0; s < NSRC; s++)
        add_shifted(dirty, psf, sx[s], sy[s], sf[s]);
    memcpy(a, dirty, np * sizeof *a);
    memcpy(b, dirty, np * sizeof *b);
    ct_clean_opts o;
    ct_clean_opts_default(&o);
    o.niter = 5000;
    o.threshold = 0.15 * max_abs(dirty, np); /* into the 5, 3 and 2 Jy sources */
    o.threads = 2;
    ct_clean_components ca = {0}, cb = {0};
    ct_clean_result ra, rb;
    ct_err err;
    CHECK_OK(ct_clean_hogbom(a, psf, NX, NY, &o, &ca, &ra, &err), err);
    o.active_below = 0.5 * o.threshold;
    CHECK_OK(ct_clean_hogbom(b, psf, NX, NY, &o, &cb, &rb, &err), err);
    size_t nact = 0, same_act = 0, same_rest = 0;
    for (size_t i = 0; i < np; i++) {
        if (fabs(dirty[i]) > o.active_below) {
            nact++;
            same_act += memcmp(&a[i], &b[i], sizeof a[i]) == 0;
        } else
            same_rest += memcmp(&dirty[i], &b[i], sizeof b[i]) == 0;
    }
    printf("     active set: %zu of %zu pixels; %d iterations (whole image %d), %zu components\n",
           nact, np, rb.iterations, ra.iterations, cb.n);
    CHECK(nact > 0 && nact < np / 10, "active set %zu of %zu", nact, np);
    CHECK(ra.iterations == rb.iterations && ra.reason == rb.reason && ca.n == cb.n &&
              memcmp(ca.items, cb.items, ca.n * sizeof *ca.items) == 0,
          "components differ from the whole image's (%d / %d iterations, %zu / %zu)", ra.iterations,
          rb.iterations, ca.n, cb.n);
    CHECK(same_act == nact, "%zu of %zu active residuals differ", nact - same_act, nact);
    CHECK(same_rest == np - nact, "%zu inactive pixels changed", np - nact - same_rest);
    o.active_below = -1;
    CHECK(ct_clean_hogbom(b, psf, NX, NY, &o, &cb, &rb, &err) == CT_EINVAL,
          "a negative active_below is refused");
    ct_clean_components_free(&ca);
    ct_clean_components_free(&cb);
    free(uvw);
    free(psf);
    free(dirty);
    free(a);
    free(b);
}

/* The same from a real dirty image: five point sources imaged by the gridder.
 * The PSF is only as large as the image, so CLEAN is confined by a mask to the
 * central half, where every pixel's offset from every component lies inside
 * the PSF image and the subtraction is exact. */
static void test_clean_dirty_imaged(void)
{
    enum { NSRC = 5 };
    const int sx[NSRC] = {100, 160, 80, 180, 130}, sy[NSRC] = {140, 100, 75, 170, 185};
    const double sf[NSRC] = {1, 10, 4, 2.5, 6};
    size_t n;
    double *uvw = make_uvw(&n);
    double *psf = uvw ? make_psf(uvw, n) : NULL;
    double *img = malloc((size_t)NX * NY * sizeof *img);
    double *restored = malloc((size_t)NX * NY * sizeof *restored);
    double complex *vis = malloc(n * sizeof *vis);
    unsigned char *mask = calloc((size_t)NX * NY, 1);
    REQUIRE(uvw && psf && img && restored && vis && mask, "setup failed");
    for (size_t k = 0; k < n; k++) {
        vis[k] = 0;
        for (int s = 0; s < NSRC; s++) {
            double l = (sx[s] - NX / 2) * CELL, m = (sy[s] - NY / 2) * CELL;
            vis[k] += sf[s] * cexp(2 * M_PI * I * (uvw[3 * k] * l + uvw[3 * k + 1] * m));
        }
    }
    ct_gridder_plan *plan = NULL;
    ct_err err;
    REQUIRE_OK(ct_gridder_plan_create(NX, NY, CELL, 1e-8, &plan, &err), err);
    CHECK_OK(ct_gridder_dirty(plan, uvw, vis, NULL, n, img, &err), err);
    ct_gridder_plan_destroy(plan);
    for (int iy = NY / 4; iy < 3 * NY / 4; iy++)
        for (int ix = NX / 4; ix < 3 * NX / 4; ix++)
            mask[(size_t)iy * NX + ix] = 1;

    ct_clean_opts o;
    ct_clean_opts_default(&o);
    o.niter = 20000;
    o.threshold = 1e-3;
    o.mask = mask;
    o.mask_nx = NX;
    o.mask_ny = NY;
    ct_clean_components comps = {0};
    ct_clean_result res;
    CHECK_OK(ct_clean_hogbom(img, psf, NX, NY, &o, &comps, &res, &err), err);
    printf("     dirty-imaged: %d iterations, %zu components, peak residual %.2e, stopped by %s\n",
           res.iterations, comps.n, res.peak_residual, ct_clean_stop_name(res.reason));
    CHECK(res.reason == CT_CLEAN_STOP_THRESHOLD && res.peak_residual < o.threshold,
          "stopped by %s at %g", ct_clean_stop_name(res.reason), res.peak_residual);
    double mpeak = 0;
    for (size_t i = 0; i < (size_t)NX * NY; i++)
        if (mask[i])
            mpeak = fmax(mpeak, fabs(img[i]));
    CHECK(mpeak < o.threshold, "residual in the mask %g", mpeak);
    for (int s = 0; s < NSRC; s++) {
        double near = 0;
        for (size_t k = 0; k < comps.n; k++)
            if (abs(comps.items[k].ix - sx[s]) <= 1 && abs(comps.items[k].iy - sy[s]) <= 1)
                near += comps.items[k].flux;
        CHECK(fabs(near / sf[s] - 1) < 0.01, "source %d: %g vs %g", s, near, sf[s]);
    }
    ct_beam beam;
    CHECK_OK(ct_beam_fit(psf, NX, NY, CELL, &beam, &err), err);
    CHECK_OK(ct_clean_restore(&comps, &beam, CELL, img, NX, NY, restored, &err), err);
    double worst = 0;
    for (int s = 0; s < NSRC; s++) {
        double v = restored[(size_t)sy[s] * NX + sx[s]];
        worst = fmax(worst, fabs(v / sf[s] - 1));
        CHECK(fabs(v / sf[s] - 1) < 0.01, "source %d: restored %g vs %g", s, v, sf[s]);
    }
    printf("     dirty-imaged: worst restored peak |S'/S - 1| = %.2e\n", worst);
    ct_clean_components_free(&comps);
    free(uvw);
    free(psf);
    free(img);
    free(restored);
    free(vis);
    free(mask);
}

/* Noise only: CLEAN stops at the threshold, reports it, and leaves every
 * pixel at or below it; niter and the mask bound it as stated. */
static void test_clean_noise_threshold(void)
{
    size_t n;
    double *uvw = make_uvw(&n);
    double *psf = uvw ? make_psf(uvw, n) : NULL;
    double *img = malloc((size_t)NX * NY * sizeof *img);
    double *copy = malloc((size_t)NX * NY * sizeof *copy);
    double complex *vis = malloc(n * sizeof *vis);
    unsigned char *mask = calloc((size_t)NX * NY, 1);
    REQUIRE(uvw && psf && img && copy && vis && mask, "setup failed");
    unsigned long long state = 77;
    for (size_t k = 0; k < n; k++)
        vis[k] = gaussian(&state) + I * gaussian(&state);
    ct_gridder_plan *plan = NULL;
    ct_err err;
    REQUIRE_OK(ct_gridder_plan_create(NX, NY, CELL, 1e-8, &plan, &err), err);
    CHECK_OK(ct_gridder_dirty(plan, uvw, vis, NULL, n, img, &err), err);
    ct_gridder_plan_destroy(plan);
    double ss = 0;
    for (size_t i = 0; i < (size_t)NX * NY; i++)
        ss += img[i] * img[i];
    double rms = sqrt(ss / ((double)NX * NY));
    memcpy(copy, img, (size_t)NX * NY * sizeof *img);

    ct_clean_opts o;
    ct_clean_opts_default(&o);
    o.niter = 100000;
    o.threshold = 3 * rms;
    ct_clean_components comps = {0};
    ct_clean_result res;
    CHECK_OK(ct_clean_hogbom(img, psf, NX, NY, &o, &comps, &res, &err), err);
    printf("     noise rms %.4f: threshold %.4f, %d iterations, peak residual %.4f, stopped by "
           "%s\n",
           rms, o.threshold, res.iterations, res.peak_residual, ct_clean_stop_name(res.reason));
    CHECK(res.reason == CT_CLEAN_STOP_THRESHOLD, "stopped by %s", ct_clean_stop_name(res.reason));
    CHECK(res.iterations > 0 && res.iterations < o.niter, "iterations %d", res.iterations);
    CHECK(res.peak_residual <= o.threshold, "peak %g", res.peak_residual);
    CHECK(max_abs(img, (size_t)NX * NY) <= o.threshold, "residual max %g",
          max_abs(img, (size_t)NX * NY));
    ct_clean_components_free(&comps);

    /* niter bounds it: exactly 7 components, reason niter. */
    memcpy(img, copy, (size_t)NX * NY * sizeof *img);
    o.niter = 7;
    o.threshold = 0;
    CHECK_OK(ct_clean_hogbom(img, psf, NX, NY, &o, &comps, &res, &err), err);
    CHECK(res.reason == CT_CLEAN_STOP_NITER && res.iterations == 7, "%s after %d",
          ct_clean_stop_name(res.reason), res.iterations);
    double first = comps.n ? comps.items[0].flux : 0;
    double peak0 = max_abs(copy, (size_t)NX * NY);
    CHECK(comps.n > 0 && fabs(fabs(first) - 0.1 * peak0) < 1e-6 * peak0,
          "first component %g, peak %g", first, peak0);
    ct_clean_components_free(&comps);

    /* niter 0: nothing changes. */
    memcpy(img, copy, (size_t)NX * NY * sizeof *img);
    o.niter = 0;
    CHECK_OK(ct_clean_hogbom(img, psf, NX, NY, &o, &comps, &res, &err), err);
    CHECK(res.iterations == 0 && comps.n == 0 && res.reason == CT_CLEAN_STOP_NITER &&
              memcmp(img, copy, (size_t)NX * NY * sizeof *img) == 0,
          "niter 0 changed something");

    /* A mask: components only inside a 20 x 20 box. */
    for (int iy = 100; iy < 120; iy++)
        for (int ix = 30; ix < 50; ix++)
            mask[(size_t)iy * NX + ix] = 1;
    memcpy(img, copy, (size_t)NX * NY * sizeof *img);
    o.niter = 100000;
    o.threshold = rms;
    o.mask = mask;
    o.mask_nx = NX;
    o.mask_ny = NY;
    CHECK_OK(ct_clean_hogbom(img, psf, NX, NY, &o, &comps, &res, &err), err);
    int inside = 1;
    for (size_t k = 0; k < comps.n; k++)
        inside &= mask[(size_t)comps.items[k].iy * NX + comps.items[k].ix];
    CHECK(inside && comps.n > 0, "%zu components, all inside the mask: %d", comps.n, inside);
    double mpeak = 0;
    for (size_t i = 0; i < (size_t)NX * NY; i++)
        if (mask[i])
            mpeak = fmax(mpeak, fabs(img[i]));
    CHECK(res.reason == CT_CLEAN_STOP_THRESHOLD && mpeak <= o.threshold &&
              res.peak_residual == mpeak,
          "masked: %s, peak in mask %g, reported %g", ct_clean_stop_name(res.reason), mpeak,
          res.peak_residual);
    ct_clean_components_free(&comps);
    free(uvw);
    free(psf);
    free(img);
    free(copy);
    free(vis);
    free(mask);
}

/* Equal peaks: the lowest row-major index is cleaned first. */
static void test_tie_break(void)
{
    enum { N = 16 };
    double psf[N * N] = {0}, img[N * N] = {0};
    psf[(N / 2) * N + N / 2] = 1;
    img[3 * N + 9] = -2;
    img[3 * N + 4] = 2;
    img[10 * N + 1] = 2;
    ct_clean_opts o;
    ct_clean_opts_default(&o);
    o.gain = 1;
    o.niter = 1;
    ct_clean_components comps = {0};
    ct_clean_result res;
    ct_err err;
    CHECK_OK(ct_clean_hogbom(img, psf, N, N, &o, &comps, &res, &err), err);
    CHECK(comps.n == 1 && comps.items[0].ix == 4 && comps.items[0].iy == 3 &&
              comps.items[0].flux == 2,
          "first component (%d, %d)", comps.n ? comps.items[0].ix : -1,
          comps.n ? comps.items[0].iy : -1);
    CHECK(img[3 * N + 4] == 0, "not subtracted");
    /* With gain 1 and a delta PSF everything is removed exactly. */
    o.niter = 10;
    CHECK_OK(ct_clean_hogbom(img, psf, N, N, &o, &comps, &res, &err), err);
    CHECK(comps.n == 3 && res.iterations == 2 && res.reason == CT_CLEAN_STOP_THRESHOLD &&
              res.peak_residual == 0,
          "%zu components, %d iterations", comps.n, res.iterations);
    CHECK(comps.n == 3 && comps.items[1].ix == 9 && comps.items[1].flux == -2,
          "negative component");
    ct_clean_components_free(&comps);
}

static void test_bad_input(void)
{
    enum { N = 16 };
    double psf[N * N] = {0}, img[N * N] = {0}, out[N * N];
    psf[(N / 2) * N + N / 2] = 1;
    psf[(N / 2) * N + N / 2 + 1] = 0.5;
    img[5] = 1;
    ct_clean_opts o;
    ct_clean_opts_default(&o);
    ct_clean_components comps = {0};
    ct_clean_result res;
    ct_err err;
    const double gains[] = {0, -0.1, 1.0001, NAN};
    for (int g = 0; g < 4; g++) {
        o.gain = gains[g];
        CHECK(ct_clean_hogbom(img, psf, N, N, &o, &comps, &res, &err) == CT_EINVAL,
              "gain %g accepted", gains[g]);
    }
    CHECK(img[5] == 1, "refused call changed the image");
    ct_clean_opts_default(&o);
    o.niter = -1;
    CHECK(ct_clean_hogbom(img, psf, N, N, &o, &comps, &res, &err) == CT_EINVAL,
          "niter -1 accepted");
    ct_clean_opts_default(&o);
    o.threshold = -1;
    CHECK(ct_clean_hogbom(img, psf, N, N, &o, &comps, &res, &err) == CT_EINVAL,
          "negative threshold accepted");
    ct_clean_opts_default(&o);
    unsigned char mask[N * N];
    memset(mask, 1, sizeof mask);
    o.mask = mask;
    o.mask_nx = N;
    o.mask_ny = N / 2;
    CHECK(ct_clean_hogbom(img, psf, N, N, &o, &comps, &res, &err) == CT_EINVAL,
          "mask of another size accepted");
    ct_clean_opts_default(&o);
    CHECK(ct_clean_hogbom(img, psf, 0, N, &o, &comps, &res, &err) == CT_EINVAL,
          "zero width accepted");
    CHECK(ct_clean_hogbom(img, psf, N, -4, &o, &comps, &res, &err) == CT_EINVAL,
          "negative height accepted");
    /* The same buffers read as 8 x 32: the peak is no longer at the centre. */
    CHECK(ct_clean_hogbom(img, psf, N / 2, 2 * N, &o, &comps, &res, &err) == CT_EINVAL,
          "PSF read with the wrong shape accepted");
    /* PSF peaking off centre. */
    double off[N * N] = {0};
    off[(N / 2) * N + N / 2] = 1;
    off[(N / 2 + 1) * N + N / 2] = 1.01;
    CHECK(ct_clean_hogbom(img, off, N, N, &o, &comps, &res, &err) == CT_EINVAL,
          "off-centre PSF accepted");
    ct_beam b;
    CHECK(ct_beam_fit(off, N, N, 1e-5, &b, &err) == CT_EINVAL, "beam fit: off-centre accepted");
    /* A negative PSF and a non-finite pixel. */
    double neg[N * N];
    for (int i = 0; i < N * N; i++)
        neg[i] = -1;
    CHECK(ct_clean_hogbom(img, neg, N, N, &o, &comps, &res, &err) == CT_EINVAL,
          "non-positive PSF accepted");
    img[7] = NAN;
    CHECK(ct_clean_hogbom(img, psf, N, N, &o, &comps, &res, &err) == CT_EINVAL,
          "NaN pixel accepted");
    img[7] = 0;
    CHECK(comps.n == 0, "refused calls added components");
    /* Beam fit: a delta PSF has no resolvable lobe; bad cell. */
    double delta[N * N] = {0};
    delta[(N / 2) * N + N / 2] = 1;
    CHECK(ct_beam_fit(delta, N, N, 1e-5, &b, &err) == CT_EINVAL, "beam fit: delta accepted");
    CHECK(ct_beam_fit(psf, N, N, 0, &b, &err) == CT_EINVAL, "beam fit: cell 0 accepted");
    /* Restore: bad beam, component outside the image. */
    ct_beam bad = {0, 1e-5, 0}, good = {3e-5, 2e-5, 0};
    CHECK(ct_clean_restore(&comps, &bad, 1e-5, img, N, N, out, &err) == CT_EINVAL,
          "restore: zero beam accepted");
    ct_clean_component c1 = {N, 0, 1.0};
    ct_clean_components outside = {&c1, 1, 1};
    CHECK(ct_clean_restore(&outside, &good, 1e-5, img, N, N, out, &err) == CT_EINVAL,
          "restore: component outside accepted");
    CHECK(ct_clean_restore(&comps, &good, -1, img, N, N, out, &err) == CT_EINVAL,
          "restore: negative cell accepted");
}

int main(void)
{
    RUN(test_beam_fit_gaussian);
    RUN(test_beam_fit_real_psf);
    RUN(test_clean_point_sources);
    RUN(test_clean_active_set);
    RUN(test_clean_dirty_imaged);
    RUN(test_clean_noise_threshold);
    RUN(test_tie_break);
    RUN(test_bad_input);
    return tu_finish();
}
