/*
 * test_weighting.c -- imaging weights: natural pass-through and the uv-range
 * and grid-extent cuts at their boundaries; uniform weights giving a flat
 * gridded density (points and their Hermitian conjugates); Briggs weights
 * against the formula recomputed here by brute force, their monotony in
 * density and their limits R = +2 (natural) and R = -2 (uniform); the dirty
 * image's noise against the radiometer prediction; refusal of bad input.
 */
#define _GNU_SOURCE /* M_PI */
#include "gridder.h"
#include "testutil.h"
#include "weighting.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A power of two, so that the grid's uv extent 1 / (2 CELL) = 4096 is exact. */
#define CELL (1.0 / 8192)

/* A small deterministic generator: uniform in [0, 1). */
static double uniform(unsigned long long *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*state >> 11) / 9007199254740992.0;
}

/* Standard normal (Box-Muller). */
static double gauss(unsigned long long *state)
{
    double a = uniform(state), b = uniform(state);
    return sqrt(-2 * log(1 - a)) * cos(2 * M_PI * b);
}

static ct_weight_opts opts(ct_weight_kind kind, double robust, int nx, int ny)
{
    ct_weight_opts o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.robust = robust;
    o.nx = nx;
    o.ny = ny;
    o.cell_rad = CELL;
    return o;
}

/* The cell index (row-major, ny rows of nx) of (u, v): nearest multiple of
 * du = 1 / (nx CELL), wrapped. The conjugate's cell is cell_index(-u, -v). */
static long cell_index(double u, double v, int nx, int ny)
{
    long iu = lround(u * nx * CELL), iv = lround(v * ny * CELL);
    iu = ((iu % nx) + nx) % nx;
    iv = ((iv % ny) + ny) % ny;
    return iv * nx + iu;
}

/* n random points inside the grid's extent, weights in [0.5, 2), about one in
 * ten flagged (0). spread < 1 concentrates them (Gaussian) towards u = v = 0. */
static void random_points(size_t n, double spread, unsigned long long *state, double *uvw,
                          double *w)
{
    for (size_t k = 0; k < n; k++) {
        double u, v;
        do {
            if (spread >= 1) {
                u = (uniform(state) - 0.5) * 0.999 / CELL;
                v = (uniform(state) - 0.5) * 0.999 / CELL;
            } else {
                u = gauss(state) * spread * 0.5 / CELL;
                v = gauss(state) * spread * 0.5 / CELL;
            }
        } while (fabs(u) >= 0.4995 / CELL || fabs(v) >= 0.4995 / CELL);
        uvw[3 * k] = u;
        uvw[3 * k + 1] = v;
        uvw[3 * k + 2] = (uniform(state) - 0.5) * 50;
        w[k] = uniform(state) < 0.1 ? 0.0 : 0.5 + 1.5 * uniform(state);
    }
}

/* Natural weighting returns the input weights unchanged. */
static void test_natural_passthrough(void)
{
    enum { N = 500 };
    static double uvw[3 * N], w[N], out[N];
    unsigned long long state = 11;
    random_points(N, 1.0, &state, uvw, w);
    ct_weight_opts o = opts(CT_WEIGHT_NATURAL, 0, 64, 64);
    ct_err err;
    REQUIRE_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
    size_t same = 0;
    for (size_t k = 0; k < N; k++)
        same += out[k] == w[k];
    CHECK(same == N, "%zu of %d weights passed through", same, N);

    /* in place */
    static double w2[N];
    memcpy(w2, w, sizeof w2);
    REQUIRE_OK(ct_weights_compute(&o, uvw, w2, N, w2, &err), err);
    CHECK(memcmp(w2, w, sizeof w2) == 0, "in-place natural weights changed");
}

/* The uv range is inclusive at both ends; the grid extent |u| < 1 / (2 cell)
 * is exclusive. Every kind applies the same cuts. */
static void test_uv_cuts(void)
{
    const double half = 0.5 / CELL; /* 4096 */
    /* (u, v, expected kept with min 500, max 2000) */
    const double pts[][3] = {
        {499, 0, 0},     {300, 400, 1}, /* r = 500 exactly */
        {-500, 0, 1},    {nextafter(500, 0), 0, 0},
        {1000, -700, 1}, {1200, 1600, 1}, /* r = 2000 exactly */
        {0, -2000, 1},   {nextafter(2000, 3000), 0, 0},
        {2001, 0, 0},    {3000, 0, 0},
    };
    enum { N = sizeof pts / sizeof pts[0] };
    double uvw[3 * N], w[N], out[N];
    for (size_t k = 0; k < N; k++) {
        uvw[3 * k] = pts[k][0];
        uvw[3 * k + 1] = pts[k][1];
        uvw[3 * k + 2] = 0;
        w[k] = 1.0 + (double)k;
    }
    const ct_weight_kind kinds[] = {CT_WEIGHT_NATURAL, CT_WEIGHT_UNIFORM, CT_WEIGHT_BRIGGS};
    ct_err err;
    for (int ki = 0; ki < 3; ki++) {
        ct_weight_opts o = opts(kinds[ki], 0.5, 64, 64);
        o.min_uv_lambda = 500;
        o.max_uv_lambda = 2000;
        REQUIRE_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
        for (size_t k = 0; k < N; k++)
            CHECK((out[k] > 0) == (pts[k][2] != 0), "kind %d point (%.17g, %g): weight %g", ki,
                  pts[k][0], pts[k][1], out[k]);
        /* max 0 and max +inf mean no upper limit */
        o.max_uv_lambda = 0;
        REQUIRE_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
        CHECK(out[N - 1] > 0 && out[N - 2] > 0 && out[0] == 0, "max 0: %g %g %g", out[N - 1],
              out[N - 2], out[0]);
        o.max_uv_lambda = INFINITY;
        REQUIRE_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
        CHECK(out[N - 1] > 0 && out[0] == 0, "max inf: %g %g", out[N - 1], out[0]);
    }

    /* the grid's extent, on u and on v, both signs */
    const double ext[][3] = {
        {half, 0, 0},
        {nextafter(half, 0), 0, 1},
        {-half, 10, 0},
        {-nextafter(half, 0), 10, 1},
        {0, half, 0},
        {5, -half, 0},
        {5, -nextafter(half, 0), 1},
        {1e6, 0, 0},
    };
    enum { NE = sizeof ext / sizeof ext[0] };
    double uvwe[3 * NE], we[NE], oute[NE];
    for (size_t k = 0; k < NE; k++) {
        uvwe[3 * k] = ext[k][0];
        uvwe[3 * k + 1] = ext[k][1];
        uvwe[3 * k + 2] = 0;
        we[k] = 2.0;
    }
    for (int ki = 0; ki < 3; ki++) {
        ct_weight_opts o = opts(kinds[ki], 0, 64, 64);
        REQUIRE_OK(ct_weights_compute(&o, uvwe, we, NE, oute, &err), err);
        for (size_t k = 0; k < NE; k++)
            CHECK((oute[k] > 0) == (ext[k][2] != 0), "kind %d extent point (%.17g, %.17g): %g", ki,
                  ext[k][0], ext[k][1], oute[k]);
    }
}

/* The sum of output weights gridded into each cell, points and conjugates. */
static double *gridded_sums(const double *uvw, const double *out, size_t n, int nx, int ny)
{
    double *g = calloc((size_t)nx * ny, sizeof *g);
    for (size_t k = 0; g && k < n; k++) {
        if (out[k] == 0)
            continue;
        g[cell_index(uvw[3 * k], uvw[3 * k + 1], nx, ny)] += out[k];
        g[cell_index(-uvw[3 * k], -uvw[3 * k + 1], nx, ny)] += out[k];
    }
    return g;
}

/* Uniform weighting over random points: every occupied cell sums to 1. */
static void test_uniform_flat(void)
{
    enum { N = 3000, NX = 32, NY = 24 };
    static double uvw[3 * N], w[N], out[N];
    unsigned long long state = 2024;
    random_points(N, 1.0, &state, uvw, w);
    ct_weight_opts o = opts(CT_WEIGHT_UNIFORM, 0, NX, NY);
    ct_err err;
    REQUIRE_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
    double *g = gridded_sums(uvw, out, N, NX, NY);
    REQUIRE(g, "out of memory");
    int occupied = 0, flat = 0;
    double worst = 0;
    for (int c = 0; c < NX * NY; c++) {
        if (g[c] == 0)
            continue;
        occupied++;
        worst = fmax(worst, fabs(g[c] - 1));
        flat += fabs(g[c] - 1) < 1e-12;
    }
    CHECK(occupied > NX * NY / 2, "only %d occupied cells", occupied);
    CHECK(flat == occupied, "%d of %d cells sum to 1 (worst |sum - 1| = %g)", flat, occupied,
          worst);
    int zero_ok = 1;
    for (size_t k = 0; k < N; k++)
        if ((w[k] == 0) != (out[k] == 0))
            zero_ok = 0;
    CHECK(zero_ok, "flagged points must get 0 and only they");
    free(g);
}

/* Uniform weights for hand-placed cells: 10 points vs 1, a point and one in
 * its mirrored cell, the self-conjugate cell at the origin, and a flagged or
 * uv-cut point not counting towards the density. */
static void test_uniform_counts(void)
{
    const double du = 1.0 / (64 * CELL), dv = 1.0 / (64 * CELL); /* 128 lambda */
    enum { N = 17 };
    double uvw[3 * N] = {0}, w[N], out[N];
    unsigned long long state = 7;
    size_t k = 0;
    for (; k < 10; k++) { /* ten in cell (3, 5) */
        uvw[3 * k] = (3 + 0.6 * (uniform(&state) - 0.5)) * du;
        uvw[3 * k + 1] = (5 + 0.6 * (uniform(&state) - 0.5)) * dv;
        w[k] = 1;
    }
    uvw[3 * k] = -7.2 * du, uvw[3 * k + 1] = 2.1 * dv, w[k++] = 1;  /* 10: alone */
    uvw[3 * k] = 4.1 * du, uvw[3 * k + 1] = 6.2 * dv, w[k++] = 1;   /* 11: with 12's conjugate */
    uvw[3 * k] = -3.9 * du, uvw[3 * k + 1] = -5.8 * dv, w[k++] = 3; /* 12: conjugate cell of 11 */
    uvw[3 * k] = 0.1 * du, uvw[3 * k + 1] = -0.2 * dv, w[k++] = 2;  /* 13: the origin */
    uvw[3 * k] = 3 * du, uvw[3 * k + 1] = 5 * dv, w[k++] = 0;       /* 14: flagged, in (3, 5) */
    uvw[3 * k] = -7 * du, uvw[3 * k + 1] = 2 * dv, w[k++] = 0;      /* 15: flagged, with 10 */
    uvw[3 * k] = 5000, uvw[3 * k + 1] = 0, w[k++] = 1;              /* 16: outside the grid */
    REQUIRE(k == N, "setup");
    ct_weight_opts o = opts(CT_WEIGHT_UNIFORM, 0, 64, 64);
    ct_err err;
    REQUIRE_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
    for (k = 0; k < 10; k++)
        CHECK(fabs(out[k] - 0.1) < 1e-15, "dense point %zu: %g, not 1/10", k, out[k]);
    CHECK(fabs(out[10] - 1) < 1e-15, "lone point: %g, not 1", out[10]);
    /* W = 1 + 3 in both the cell of 11 and that of 12 */
    CHECK(fabs(out[11] - 0.25) < 1e-15, "point 11: %g, not 1/4", out[11]);
    CHECK(fabs(out[12] - 0.75) < 1e-15, "point 12: %g, not 3/4", out[12]);
    /* the origin's cell is its own mirror: W = 2 + 2 */
    CHECK(fabs(out[13] - 0.5) < 1e-15, "origin point: %g, not 1/2", out[13]);
    CHECK(out[14] == 0 && out[15] == 0 && out[16] == 0, "cut points: %g %g %g", out[14], out[15],
          out[16]);

    /* unequal natural weights in one cell: w / sum w */
    for (k = 0; k < 10; k++)
        w[k] = 1.0 + (double)k;
    REQUIRE_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
    for (k = 0; k < 10; k++)
        CHECK(fabs(out[k] - w[k] / 55) < 1e-15, "dense point %zu: %g, not %g", k, out[k],
              w[k] / 55);
}

/* Briggs weights against 1 / (1 + W f^2) with W and f^2 recomputed here by
 * brute force, for several R; monotone in density. */
static void test_briggs_formula(void)
{
    enum { N = 1500, NX = 48, NY = 64 };
    static double uvw[3 * N], w[N], out[N], wk[N];
    static long ck[N], cc[N];
    unsigned long long state = 99;
    random_points(N, 0.3, &state, uvw, w);
    /* W_k: the natural weight of every point and conjugate landing in k's cell */
    double wsum = 0;
    for (size_t k = 0; k < N; k++) {
        ck[k] = cell_index(uvw[3 * k], uvw[3 * k + 1], NX, NY);
        cc[k] = cell_index(-uvw[3 * k], -uvw[3 * k + 1], NX, NY);
        wsum += w[k];
    }
    for (size_t k = 0; k < N; k++) {
        wk[k] = 0;
        for (size_t j = 0; j < N; j++)
            wk[k] += w[j] * ((ck[j] == ck[k]) + (cc[j] == ck[k]));
    }
    double *grid = calloc((size_t)NX * NY, sizeof *grid);
    REQUIRE(grid, "out of memory");
    for (size_t k = 0; k < N; k++) {
        grid[ck[k]] += w[k];
        grid[cc[k]] += w[k];
    }
    double sw2 = 0;
    for (int c = 0; c < NX * NY; c++)
        sw2 += grid[c] * grid[c];
    free(grid);
    double wmin = INFINITY, wmax = 0;
    for (size_t k = 0; k < N; k++)
        if (w[k] > 0)
            wmin = fmin(wmin, wk[k]), wmax = fmax(wmax, wk[k]);
    CHECK(wmax > 10 * wmin, "densities should vary: %g to %g", wmin, wmax);

    const double robusts[] = {-2, -1, 0, 0.5, 1, 2};
    ct_err err;
    for (size_t r = 0; r < sizeof robusts / sizeof robusts[0]; r++) {
        ct_weight_opts o = opts(CT_WEIGHT_BRIGGS, robusts[r], NX, NY);
        REQUIRE_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
        double s = 5 * pow(10, -robusts[r]);
        double f2 = s * s / (sw2 / (2 * wsum));
        double worst = 0;
        for (size_t k = 0; k < N; k++) {
            double expect = w[k] > 0 ? w[k] / (1 + wk[k] * f2) : 0;
            worst = fmax(worst, fabs(out[k] - expect) / fmax(expect, 1e-300));
        }
        CHECK(worst < 1e-12, "R = %g: worst relative error %g against the formula", robusts[r],
              worst);
        /* out / natural strictly decreases with density */
        size_t bad = 0;
        for (size_t i = 0; i < 400; i++)
            for (size_t j = 0; j < 400; j++)
                if (w[i] > 0 && w[j] > 0 && wk[i] > wk[j] * (1 + 1e-9) &&
                    !(out[i] / w[i] < out[j] / w[j]))
                    bad++;
        CHECK(bad == 0, "R = %g: %zu pairs not monotone in density", robusts[r], bad);
    }
}

/* The limits: one cell of 10 points among 200 lone points. Uniform gives the
 * dense points 1/10 of a lone point's weight, natural 1; Briggs moves from
 * near uniform (R = -2) to near natural (R = +2), monotonically in R. */
static void test_briggs_limits(void)
{
    enum { NS = 200, ND = 10, N = NS + ND, NX = 64 };
    const double du = 1.0 / (NX * CELL);
    double uvw[3 * N] = {0}, w[N], out[N];
    size_t k = 0;
    for (int iu = 1; iu <= 20; iu++) /* 200 cells in one quadrant: no mirrors occupied */
        for (int iv = 1; iv <= 10; iv++, k++) {
            uvw[3 * k] = (iu + 0.2) * du;
            uvw[3 * k + 1] = (iv - 0.1) * du;
            w[k] = 1;
        }
    for (int d = 0; d < ND; d++, k++) {
        uvw[3 * k] = (-10 + 0.03 * d) * du;
        uvw[3 * k + 1] = (5 - 0.02 * d) * du;
        w[k] = 1;
    }
    ct_err err;
    ct_weight_opts o = opts(CT_WEIGHT_UNIFORM, 0, NX, NX);
    REQUIRE_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
    double uni = out[N - 1] / out[0];
    CHECK(fabs(uni - 0.1) < 1e-14, "uniform dense / sparse = %g", uni);

    double prev = 0;
    int monotone = 1;
    double at[3] = {0};
    for (double r = -2; r <= 2.0001; r += 0.25) {
        o = opts(CT_WEIGHT_BRIGGS, r, NX, NX);
        REQUIRE_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
        double ratio = out[N - 1] / out[0];
        if (!(ratio > prev))
            monotone = 0;
        prev = ratio;
        if (fabs(r + 2) < 1e-9)
            at[0] = ratio;
        if (fabs(r) < 1e-9)
            at[1] = ratio;
        if (fabs(r - 2) < 1e-9)
            at[2] = ratio;
    }
    CHECK(monotone, "dense / sparse weight must increase with R");
    CHECK(fabs(at[0] - uni) < 0.05 * uni, "R = -2: dense / sparse %g, uniform %g", at[0], uni);
    CHECK(fabs(at[2] - 1) < 0.02, "R = +2: dense / sparse %g, natural 1", at[2]);
    CHECK(at[1] > at[0] && at[1] < at[2], "R = 0: %g not between %g and %g", at[1], at[0], at[2]);
}

/* The radiometer equation through the gridder: with complex noise of standard
 * deviation sigma_k per component and any weights out_k, every pixel of the
 * dirty image has variance sum out_k^2 sigma_k^2 / (sum out_k)^2 (for natural
 * weights 1 / sigma^2 this is 1 / sum w). The mean square over the image must
 * match it within 10 % for each kind of weighting. */
static void test_noise_oracle(void)
{
    enum { N = 2000, NPIX = 64, NREAL = 4 };
    static double uvw[3 * N], w[N], out[N], sig[N], img[NPIX * NPIX];
    static double complex vis[N];
    unsigned long long state = 4242;
    random_points(N, 0.4, &state, uvw, w);
    for (size_t k = 0; k < N; k++) {
        sig[k] = 0.5 + 1.5 * uniform(&state);
        w[k] = w[k] > 0 ? 1 / (sig[k] * sig[k]) : 0;
    }
    ct_gridder_plan *plan = NULL;
    ct_err err;
    REQUIRE_OK(ct_gridder_plan_create(NPIX, NPIX, CELL, 1e-6, &plan, &err), err);
    const ct_weight_kind kinds[] = {CT_WEIGHT_NATURAL, CT_WEIGHT_UNIFORM, CT_WEIGHT_BRIGGS};
    for (int ki = 0; ki < 3; ki++) {
        ct_weight_opts o = opts(kinds[ki], 0, NPIX, NPIX);
        CHECK_OK(ct_weights_compute(&o, uvw, w, N, out, &err), err);
        double s1 = 0, s2 = 0, ms = 0, sumw = 0;
        for (size_t k = 0; k < N; k++) {
            s1 += out[k];
            s2 += out[k] * out[k] * sig[k] * sig[k];
            sumw += w[k];
        }
        /* the mean square over the image and over NREAL noise realizations */
        for (int r = 0; r < NREAL; r++) {
            for (size_t k = 0; k < N; k++)
                vis[k] = sig[k] * (gauss(&state) + I * gauss(&state));
            CHECK_OK(ct_gridder_dirty(plan, uvw, vis, out, N, img, &err), err);
            for (int p = 0; p < NPIX * NPIX; p++)
                ms += img[p] * img[p];
        }
        ms /= (double)NREAL * NPIX * NPIX;
        double predicted = s2 / (s1 * s1);
        if (kinds[ki] == CT_WEIGHT_NATURAL)
            CHECK(fabs(predicted * sumw - 1) < 1e-12, "natural: predicted %g, 1/sum w %g",
                  predicted, 1 / sumw);
        CHECK(fabs(sqrt(ms / predicted) - 1) < 0.10, "kind %d: image rms %g, predicted %g", ki,
              sqrt(ms), sqrt(predicted));
    }
    ct_gridder_plan_destroy(plan);
}

static void expect_einval(const ct_weight_opts *o, const double *uvw, const double *w, size_t n,
                          const char *what)
{
    double out[4] = {-1, -1, -1, -1};
    ct_err err;
    ct_err_clear(&err);
    ct_code rc = ct_weights_compute(o, uvw, w, n, out, &err);
    CHECK(rc == CT_EINVAL && err.code == CT_EINVAL, "%s: rc %d", what, (int)rc);
    CHECK(err.msg[0] != '\0' && strchr(err.msg, '\n') == NULL, "%s: message '%s'", what, err.msg);
    CHECK(out[0] == -1 && out[3] == -1, "%s: output touched", what);
}

static void test_bad_input(void)
{
    double uvw[12] = {100, 50, 0, -300, 20, 0, 700, 700, 0, 10, -10, 0};
    double w[4] = {1, 2, 3, 4};
    ct_weight_opts good = opts(CT_WEIGHT_BRIGGS, 0, 64, 64), o;
    double out[4];
    ct_err err;
    CHECK_OK(ct_weights_compute(&good, uvw, w, 4, out, &err), err);

    o = good, o.robust = 2.5;
    expect_einval(&o, uvw, w, 4, "robust 2.5");
    o = good, o.robust = -2.01;
    expect_einval(&o, uvw, w, 4, "robust -2.01");
    o = good, o.robust = NAN;
    expect_einval(&o, uvw, w, 4, "robust NaN");
    o = good, o.kind = (ct_weight_kind)7;
    expect_einval(&o, uvw, w, 4, "unknown kind");
    o = good, o.nx = 1;
    expect_einval(&o, uvw, w, 4, "nx 1");
    o = good, o.ny = 0;
    expect_einval(&o, uvw, w, 4, "ny 0");
    o = good, o.cell_rad = 0;
    expect_einval(&o, uvw, w, 4, "cell 0");
    o = good, o.cell_rad = -1e-4;
    expect_einval(&o, uvw, w, 4, "cell negative");
    o = good, o.cell_rad = NAN;
    expect_einval(&o, uvw, w, 4, "cell NaN");
    o = good, o.min_uv_lambda = 2000, o.max_uv_lambda = 1000;
    expect_einval(&o, uvw, w, 4, "min > max");
    o = good, o.min_uv_lambda = -1;
    expect_einval(&o, uvw, w, 4, "min negative");
    o = good, o.max_uv_lambda = NAN;
    expect_einval(&o, uvw, w, 4, "max NaN");
    o = good, o.nx = o.ny = 1 << 20;
    expect_einval(&o, uvw, w, 4, "grid too large");

    double wbad[4] = {1, -0.5, 3, 4};
    expect_einval(&good, uvw, wbad, 4, "negative weight");
    wbad[1] = NAN;
    expect_einval(&good, uvw, wbad, 4, "NaN weight");
    wbad[1] = INFINITY;
    expect_einval(&good, uvw, wbad, 4, "infinite weight");
    double uvwbad[12];
    memcpy(uvwbad, uvw, sizeof uvwbad);
    uvwbad[4] = NAN;
    expect_einval(&good, uvwbad, w, 4, "NaN v");
    expect_einval(NULL, uvw, w, 4, "NULL options");

    /* empty and fully flagged or cut data */
    expect_einval(&good, uvw, w, 0, "n = 0");
    double zero[4] = {0, 0, 0, 0};
    for (int kind = 0; kind < 3; kind++) {
        o = good, o.kind = (ct_weight_kind)kind;
        expect_einval(&o, uvw, zero, 4, "all flagged");
        ct_err e2;
        ct_weights_compute(&o, uvw, zero, 4, out, &e2);
        CHECK(strstr(e2.msg, "no data left") != NULL, "message '%s'", e2.msg);
    }
    o = good, o.min_uv_lambda = 5000;
    expect_einval(&o, uvw, w, 4, "all cut by min uv");
    o = good, o.cell_rad = 1e-3; /* extent 500 lambda: only (700, 700) is outside */
    CHECK_OK(ct_weights_compute(&o, uvw, w, 4, out, &err), err);
    CHECK(out[2] == 0 && out[0] > 0 && out[1] > 0 && out[3] > 0, "extent cut: %g %g %g %g", out[0],
          out[1], out[2], out[3]);
    o.max_uv_lambda = 50;
    o.min_uv_lambda = 20;
    expect_einval(&o, uvw, w, 4, "all cut by range and extent");
}

int main(void)
{
    RUN(test_natural_passthrough);
    RUN(test_uv_cuts);
    RUN(test_uniform_flat);
    RUN(test_uniform_counts);
    RUN(test_briggs_formula);
    RUN(test_briggs_limits);
    RUN(test_noise_oracle);
    RUN(test_bad_input);
    return tu_finish();
}
