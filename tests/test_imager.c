/* test_imager.c -- the distributed imager (imager.h) on the ranks it is run
 * with: its dirty image, PSF and residual after a model against the one-rank
 * gridder and weighting (which tests/test_gridder.c and test_weighting.c check
 * against a direct Fourier transform and the weighting formulas) and against a
 * direct Fourier transform of its own; bad input refused on every rank alike.
 *
 *   test_imager OUT_FILE EPSILON
 *
 * Rank 0 writes the images to OUT_FILE (raw doubles), so that
 * tests/test_imager.sh can compare the runs on 1, 2 and 4 ranks byte for byte.
 */
#define _GNU_SOURCE
#include "gridder.h"
#include "gridkernel.h"
#include "imager.h"
#include "testutil.h"
#include "weighting.h"

#include <complex.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NX     64
#define NY     64
#define NROWS  3000
#define NCHAN  4
#define NEPOCH 3

static int rank, size;
static double epsilon;
static const char *out_path;
static int threads = 1; /* per rank */

static uint64_t rng_state;
static double uniform01(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

typedef struct {
    double uvw[3 * NROWS];
    double complex vis[NROWS];
    double wt[NROWS];
    int chan[NROWS];
    int epoch[NROWS];
} dataset;

/* A field of 3 degrees, w up to 2000 wavelengths, three sources, noise, 5 %
 * flagged: the same data on every rank. */
static const double cell = 3.0 * M_PI / 180.0 / NX;
static const struct {
    int ix, iy;
    double flux;
} sources[] = {{32, 32, 2.0}, {10, 50, 1.0}, {55, 5, 0.5}};

static void make_data(dataset *d)
{
    rng_state = 12345;
    double umax = 0.45 / cell;
    for (int k = 0; k < NROWS; k++) {
        double *p = d->uvw + 3 * k;
        p[0] = (2 * uniform01() - 1) * umax;
        p[1] = (2 * uniform01() - 1) * umax;
        p[2] = (2 * uniform01() - 1) * 2000.0;
        d->vis[k] = 0.05 * ((uniform01() - 0.5) + I * (uniform01() - 0.5));
        for (size_t s = 0; s < sizeof sources / sizeof sources[0]; s++) {
            double l = (sources[s].ix - NX / 2) * cell, m = (sources[s].iy - NY / 2) * cell;
            double n = sqrt(1 - l * l - m * m);
            d->vis[k] +=
                sources[s].flux * cexp(2 * M_PI * I * (p[0] * l + p[1] * m + p[2] * (n - 1)));
        }
        d->wt[k] = uniform01() < 0.05 ? 0.0 : 0.5 + uniform01();
        d->chan[k] = k % NCHAN;
        d->epoch[k] = k / (NROWS / NEPOCH + 1);
    }
}

/* This rank's block: contiguous, deliberately uneven. */
static void block_of(int r, int *first, int *count)
{
    int a = (int)((long)NROWS * r / size) + (r > 0 ? 7 * (r % 2) : 0);
    int b = r + 1 == size ? NROWS : (int)((long)NROWS * (r + 1) / size) + 7 * ((r + 1) % 2);
    *first = a;
    *count = b - a;
}

/* The direct Fourier transform at direction (l, m): the weighted adjoint of
 * the rows with weights w (0: left out), normalized by wsum. */
static double dft_at(const dataset *d, const double *w, double wsum, double l, double m)
{
    const double n1 = sqrt(1 - l * l - m * m) - 1;
    double s = 0;
    for (int k = 0; k < NROWS; k++) {
        const double *p = d->uvw + 3 * k;
        if (w[k] > 0)
            s += w[k] * creal(d->vis[k] * cexp(-2 * M_PI * I * (p[0] * l + p[1] * m + p[2] * n1)));
    }
    return s / wsum;
}

static ct_weight_opts briggs(void)
{
    return (ct_weight_opts){.kind = CT_WEIGHT_BRIGGS,
                            .robust = 0.0,
                            .nx = NX,
                            .ny = NY,
                            .cell_rad = cell,
                            .min_uv_lambda = 20.0};
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

static double max_diff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

static const ct_clean_component model_items[] = {{32, 32, 1.9}, {10, 50, 0.9}, {55, 5, 0.45}};

/* The residual is updated in place by what changed since the last model
 * (imager.h): a list that grew as CLEAN grows one (new entries, changed
 * fluxes), one that did not (shifted pixels), and the empty model must each
 * give, up to rounding (the prediction is linear), the residual of setting
 * that model at once: want_resid for model_items, want_dirty for none. The
 * imager is left with model_items set. */
static void test_model_updates(ct_imager *im, const double *want_dirty, const double *want_resid,
                               double tol)
{
    ct_err err;
    static double img[NX * NY];
    const double peak = rank == 0 ? max_abs(want_dirty, NX * NY) : 1;
    ct_clean_component half[3], moved[3];
    for (int c = 0; c < 3; c++) {
        half[c] = model_items[c];
        half[c].flux *= 0.5;
        moved[c] = model_items[c];
        moved[c].ix = (moved[c].ix + 7) % NX;
    }
    ct_clean_components grown_from = {half, 2, 2}, moved_list = {moved, 3, 3}, none = {0};
    ct_clean_components items = {(ct_clean_component *)model_items, 3, 3};
    const struct {
        const char *what;
        ct_clean_components *before, *after;
        const double *want;
    } cases[] = {{"grown list", &grown_from, &items, want_resid},
                 {"other list", &moved_list, &items, want_resid},
                 {"emptied", &items, &none, want_dirty},
                 {"from empty", &none, &items, want_resid}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        CHECK_OK(ct_imager_set_model(im, cases[k].before, &err), err);
        CHECK_OK(ct_imager_set_model(im, cases[k].after, &err), err);
        CHECK_OK(ct_imager_image(im, 0, img, &err), err);
        if (rank == 0) {
            const double e = max_diff(img, cases[k].want, NX * NY) / peak;
            printf("model update, %s: %.2e of the peak\n", cases[k].what, e);
            CHECK(e <= tol, "model update, %s: %g of the peak (tolerance %g)", cases[k].what, e,
                  tol);
        }
    }
    /* A bad component is refused before anything changes. */
    ct_clean_component off = {NX, 0, 1.0};
    ct_clean_components bad = {&off, 1, 1};
    CHECK(ct_imager_set_model(im, &bad, &err) == CT_EINVAL, "a component off the image accepted");
    CHECK_OK(ct_imager_image(im, 0, img, &err), err);
    if (rank == 0)
        CHECK(max_diff(img, want_resid, NX * NY) / peak <= tol, "a refused model changed the "
                                                                "residual");
}

/* The rows a caller handed to ct_imager_load, poisoned and freed by the
 * on-copied hook: what the imager reads of them after it would show. */
typedef struct hooked_rows {
    double *uvw, *wt;
    double complex *vis;
    int calls;
    size_t n;
} hooked_rows;

static void poison_rows(void *arg)
{
    hooked_rows *h = arg;
    for (size_t i = 0; i < h->n; i++) {
        h->uvw[3 * i] = h->uvw[3 * i + 1] = h->uvw[3 * i + 2] = NAN;
        h->wt[i] = NAN;
        h->vis[i] = NAN;
    }
    h->calls++;
}

/* A load whose caller frees its rows at the hook images the same bits. */
static void test_on_copied(const dataset *d, int first, int count, const double *dirty)
{
    ct_err err;
    ct_imager *im = NULL;
    ct_imager_geom g = {
        .nx = NX, .ny = NY, .cell_rad = cell, .epsilon = epsilon, .threads = threads};
    REQUIRE_OK(ct_imager_create(MPI_COMM_WORLD, &g, &im, &err), err);
    hooked_rows h = {malloc(3 * (size_t)count * sizeof(double) + 8),
                     malloc((size_t)count * sizeof(double) + 8),
                     malloc((size_t)count * sizeof(double complex) + 16), 0, (size_t)count};
    REQUIRE(h.uvw && h.wt && h.vis, "out of memory");
    memcpy(h.uvw, d->uvw + 3 * first, 3 * (size_t)count * sizeof(double));
    memcpy(h.wt, d->wt + first, (size_t)count * sizeof(double));
    memcpy(h.vis, d->vis + first, (size_t)count * sizeof(double complex));
    ct_imager_on_copied(im, poison_rows, &h);
    ct_weight_opts wo = briggs();
    CHECK_OK(ct_imager_load(im, h.uvw, h.vis, h.wt, d->chan + first, NCHAN, d->epoch + first,
                            NEPOCH, (size_t)count, &wo, &err),
             err);
    CHECK(h.calls == 1, "the hook ran %d times, not once", h.calls);
    static double again[NX * NY];
    CHECK_OK(ct_imager_image(im, 0, again, &err), err);
    /* A second load without a new hook calls nothing. */
    h.calls = 0;
    CHECK_OK(ct_imager_load(im, d->uvw + 3 * first, d->vis + first, d->wt + first, d->chan + first,
                            NCHAN, d->epoch + first, NEPOCH, (size_t)count, &wo, &err),
             err);
    CHECK(h.calls == 0, "a hook ran for a second load");
    ct_imager_destroy(im);
    if (rank == 0)
        CHECK(memcmp(again, dirty, sizeof again) == 0,
              "a load whose rows were freed at the hook imaged other bits (max diff %g)",
              max_diff(again, dirty, (size_t)NX * NY));
    free(h.uvw);
    free(h.wt);
    free(h.vis);
}

/* A non-square image whose grid has an odd number of gridding tiles along v
 * (52 cells: 3 tiles, the last of 20 cells) and a remainder along u (100
 * cells: 6 tiles, the last of 20), its sides 2 mod 4 (single-precision rows
 * not 64-byte aligned: FFTW's unaligned plans), v wrapping round the grid:
 * its dirty image against a direct Fourier transform on one rank, and into
 * OUT_FILE after the others for the byte-for-byte comparison across ranks. */
enum { ONX = 50, ONY = 26 };

static void test_odd_geometry(const dataset *d, int first, int count, double *dirty)
{
    ct_err err;
    ct_imager *im = NULL;
    ct_imager_geom g = {
        .nx = ONX, .ny = ONY, .cell_rad = cell, .epsilon = epsilon, .threads = threads};
    REQUIRE_OK(ct_imager_create(MPI_COMM_WORLD, &g, &im, &err), err);
    ct_weight_opts wo = briggs();
    wo.nx = ONX;
    wo.ny = ONY;
    CHECK_OK(ct_imager_load(im, d->uvw + 3 * first, d->vis + first, d->wt + first, d->chan + first,
                            NCHAN, d->epoch + first, NEPOCH, (size_t)count, &wo, &err),
             err);
    CHECK_OK(ct_imager_image(im, 0, dirty, &err), err);
    ct_imager_destroy(im);
    if (size != 1)
        return;
    static double w[NROWS];
    REQUIRE_OK(ct_weights_compute(&wo, d->uvw, d->wt, NROWS, w, &err), err);
    double wsum = 0, dmax = 0, derr = 0;
    for (int k = 0; k < NROWS; k++)
        wsum += w[k];
    static double dft[ONX * ONY];
    for (int y = 0; y < ONY; y++)
        for (int x = 0; x < ONX; x++) {
            dft[y * ONX + x] = dft_at(d, w, wsum, (x - ONX / 2) * cell, (y - ONY / 2) * cell);
            dmax = fmax(dmax, fabs(dft[y * ONX + x]));
        }
    derr = max_diff(dirty, dft, ONX * ONY) / dmax;
    printf("%d x %d (odd tile count, sides 2 mod 4) against a direct Fourier transform: %.2e at "
           "epsilon %g\n",
           ONX, ONY, derr, epsilon);
    CHECK(derr <= epsilon, "%d x %d: DFT error %g above epsilon %g", ONX, ONY, derr, epsilon);
}

/* Rows confined to |u|, |v| < 0.14 / cell (the data's u and v times 0.3):
 * on one rank every kernel lies inside a narrow band of each grid row, so
 * the imager keeps compact rows (imager_body.c, compact); on more ranks it
 * keeps whole ones. The dirty image and the residual after a model, into
 * out[0 .. 2 NX NY): the files of 1, 2 and 4 ranks must then agree bit for
 * bit (test_imager.sh), and one rank checks both against a direct Fourier
 * transform. */
static void test_compact_rows(const dataset *d, int first, int count, double *out)
{
    static dataset s;
    s = *d;
    for (int k = 0; k < NROWS; k++) {
        s.uvw[3 * k] *= 0.3;
        s.uvw[3 * k + 1] *= 0.3;
    }
    ct_err err;
    ct_imager *im = NULL;
    ct_imager_geom g = {
        .nx = NX, .ny = NY, .cell_rad = cell, .epsilon = epsilon, .threads = threads};
    REQUIRE_OK(ct_imager_create(MPI_COMM_WORLD, &g, &im, &err), err);
    ct_weight_opts wo = briggs();
    CHECK_OK(ct_imager_load(im, s.uvw + 3 * first, s.vis + first, s.wt + first, s.chan + first,
                            NCHAN, s.epoch + first, NEPOCH, (size_t)count, &wo, &err),
             err);
    double *dirty = out, *resid = out + NX * NY;
    CHECK_OK(ct_imager_image(im, 0, dirty, &err), err);
    ct_clean_components comps = {(ct_clean_component *)model_items, 3, 3};
    CHECK_OK(ct_imager_set_model(im, &comps, &err), err);
    CHECK_OK(ct_imager_image(im, 0, resid, &err), err);
    ct_imager_stats st;
    ct_imager_get_stats(im, &st);
    ct_imager_destroy(im);
    if (size == 1)
        CHECK(st.row_cells < 2 * NX, "one rank, rows in a narrow band: %d of %d cells a row",
              st.row_cells, 2 * NX);
    else
        CHECK(st.row_cells == 2 * NX, "%d ranks: %d of %d cells a row", size, st.row_cells, 2 * NX);
    if (size != 1)
        return;
    static double w[NROWS];
    REQUIRE_OK(ct_weights_compute(&wo, s.uvw, s.wt, NROWS, w, &err), err);
    double wsum = 0;
    for (int k = 0; k < NROWS; k++)
        wsum += w[k];
    static dataset r; /* the exact residual: less the model's own transform */
    r = s;
    for (int k = 0; k < NROWS; k++) {
        const double *p = s.uvw + 3 * k;
        for (int c = 0; c < 3; c++) {
            const double l = (model_items[c].ix - NX / 2) * cell,
                         m = (model_items[c].iy - NY / 2) * cell, n1 = sqrt(1 - l * l - m * m) - 1;
            r.vis[k] -=
                model_items[c].flux * cexp(2 * M_PI * I * (p[0] * l + p[1] * m + p[2] * n1));
        }
    }
    double dmax = 0, derr = 0, rerr = 0;
    for (int y = 0; y < NY; y++)
        for (int x = 0; x < NX; x++) {
            const double l = (x - NX / 2) * cell, m = (y - NY / 2) * cell;
            const double a = dft_at(&s, w, wsum, l, m), b = dft_at(&r, w, wsum, l, m);
            dmax = fmax(dmax, fabs(a));
            derr = fmax(derr, fabs(dirty[y * NX + x] - a));
            rerr = fmax(rerr, fabs(resid[y * NX + x] - b));
        }
    printf("compact rows (%d of %d cells): dirty %.2e, residual %.2e of the peak against a direct "
           "Fourier transform at epsilon %g\n",
           st.row_cells, 2 * NX, derr / dmax, rerr / dmax, epsilon);
    CHECK(derr <= epsilon * dmax && rerr <= 2 * epsilon * dmax,
          "compact rows: dirty %g, residual %g of the peak (epsilon %g)", derr / dmax, rerr / dmax,
          epsilon);
}

static void test_images(void)
{
    static dataset d;
    make_data(&d);
    int first, count;
    block_of(rank, &first, &count);
    ct_err err;
    ct_imager *im = NULL;
    ct_imager_geom g = {
        .nx = NX, .ny = NY, .cell_rad = cell, .epsilon = epsilon, .threads = threads};
    REQUIRE_OK(ct_imager_create(MPI_COMM_WORLD, &g, &im, &err), err);
    ct_weight_opts wo = briggs();
    CHECK_OK(ct_imager_load(im, d.uvw + 3 * first, d.vis + first, d.wt + first, d.chan + first,
                            NCHAN, d.epoch + first, NEPOCH, (size_t)count, &wo, &err),
             err);
    static double dirty[NX * NY], psf[NX * NY], resid[NX * NY];
    CHECK_OK(ct_imager_image(im, 0, dirty, &err), err);
    CHECK_OK(ct_imager_image(im, 1, psf, &err), err);
    ct_clean_components comps = {(ct_clean_component *)model_items, 3, 3};
    CHECK_OK(ct_imager_set_model(im, &comps, &err), err);
    CHECK_OK(ct_imager_image(im, 0, resid, &err), err);
    test_model_updates(im, dirty, resid, epsilon >= 1e-5 ? 1e-6 : 1e-12);
    ct_imager_stats st;
    ct_imager_get_stats(im, &st);
    double cw[NCHAN], ew[NEPOCH];
    memcpy(cw, ct_imager_channel_weights(im), sizeof cw);
    memcpy(ew, ct_imager_epoch_weights(im), sizeof ew);
    ct_imager_destroy(im);
    test_on_copied(&d, first, count, dirty);
    static double odd[ONX * ONY];
    test_odd_geometry(&d, first, count, odd);
    static double narrow[2 * NX * NY];
    test_compact_rows(&d, first, count, narrow);

    if (rank == 0) {
        FILE *f = fopen(out_path, "wb");
        CHECK(f && fwrite(dirty, sizeof dirty, 1, f) == 1 && fwrite(psf, sizeof psf, 1, f) == 1 &&
                  fwrite(resid, sizeof resid, 1, f) == 1 && fwrite(odd, sizeof odd, 1, f) == 1 &&
                  fwrite(narrow, sizeof narrow, 1, f) == 1 && fclose(f) == 0,
              "cannot write %s", out_path);
        printf("ranks %d x threads %d: %zu rows, %ld w planes, support %d, weight sum %.17g, "
               "row cells %d\n",
               size, st.threads, st.n_rows, st.w_planes, st.support, st.weight_sum, st.row_cells);
        CHECK(st.threads == threads, "threads %d, asked for %d", st.threads, threads);
        CHECK(st.slant_xi == 0 && st.slant_eta == 0,
              "rows with w off any plane slanted by (%g, %g)", st.slant_xi, st.slant_eta);
    }
    if (size != 1)
        return;

    /* The one-rank gridder and weighting on the same data. */
    static double w[NROWS], sdirty[NX * NY], spsf[NX * NY], sresid[NX * NY];
    static double complex ones[NROWS], pred[NROWS], rvis[NROWS];
    REQUIRE_OK(ct_weights_compute(&wo, d.uvw, d.wt, NROWS, w, &err), err);
    size_t kept = 0;
    double wsum = 0, chan_sum[NCHAN] = {0}, epoch_sum[NEPOCH] = {0};
    for (int k = 0; k < NROWS; k++) {
        kept += w[k] > 0;
        wsum += w[k];
        chan_sum[d.chan[k]] += w[k];
        epoch_sum[d.epoch[k]] += w[k];
        ones[k] = 1;
    }
    CHECK(st.n_rows == kept, "rows %zu, expected %zu", st.n_rows, kept);
    CHECK(fabs(st.weight_sum - wsum) <= 1e-12 * wsum, "weight sum %g vs %g", st.weight_sum, wsum);
    for (int c = 0; c < NCHAN; c++)
        CHECK(fabs(cw[c] - chan_sum[c]) <= 1e-12 * wsum, "channel %d: %g vs %g", c, cw[c],
              chan_sum[c]);
    for (int e = 0; e < NEPOCH; e++)
        CHECK(fabs(ew[e] - epoch_sum[e]) <= 1e-12 * wsum, "epoch %d: %g vs %g", e, ew[e],
              epoch_sum[e]);
    ct_gridder_plan *plan = NULL;
    REQUIRE_OK(ct_gridder_plan_create(NX, NY, cell, epsilon, &plan, &err), err);
    CHECK_OK(ct_gridder_dirty(plan, d.uvw, d.vis, w, NROWS, sdirty, &err), err);
    CHECK_OK(ct_gridder_dirty(plan, d.uvw, ones, w, NROWS, spsf, &err), err);
    static double model[NX * NY];
    for (int c = 0; c < 3; c++)
        model[model_items[c].iy * NX + model_items[c].ix] = model_items[c].flux;
    CHECK_OK(ct_gridder_degrid(plan, d.uvw, model, NROWS, pred, &err), err);
    for (int k = 0; k < NROWS; k++)
        rvis[k] = d.vis[k] - pred[k];
    CHECK_OK(ct_gridder_dirty(plan, d.uvw, rvis, w, NROWS, sresid, &err), err);
    ct_gridder_plan_destroy(plan);
    double peak = max_abs(sdirty, NX * NY);
    double e1 = max_diff(dirty, sdirty, NX * NY) / peak, e2 = max_diff(psf, spsf, NX * NY);
    double e3 = max_diff(resid, sresid, NX * NY) / peak;
    printf("against the one-rank gridder: dirty %.2e, psf %.2e, residual %.2e (of the peak)\n", e1,
           e2, e3);
    /* Single-precision grids (chosen from epsilon 1e-5 up) differ from the
     * double-precision gridder by float rounding only: orders of magnitude
     * below epsilon, and far above the double build's 1e-12. */
    const int want_bits = epsilon >= 1e-5 ? 32 : 64;
    CHECK(st.grid_bits == want_bits, "grids of %d bits at epsilon %g, expected %d", st.grid_bits,
          epsilon, want_bits);
    const double tol = st.grid_bits == 32 ? 1e-6 : 1e-12;
    CHECK(e1 <= tol && e2 <= tol && e3 <= tol, "dirty %g psf %g residual %g (tolerance %g)", e1, e2,
          e3, tol);

    if (st.grid_bits == 32) {
        /* The same data on grids of 64 bits, asked for: the double gridder's bits. */
        ct_imager_geom g64 = {.nx = NX,
                              .ny = NY,
                              .cell_rad = cell,
                              .epsilon = epsilon,
                              .threads = threads,
                              .grid_bits = 64};
        ct_imager *im64 = NULL;
        static double dirty64[NX * NY];
        REQUIRE_OK(ct_imager_create(MPI_COMM_WORLD, &g64, &im64, &err), err);
        CHECK_OK(ct_imager_load(im64, d.uvw, d.vis, d.wt, d.chan, NCHAN, d.epoch, NEPOCH, NROWS,
                                &wo, &err),
                 err);
        CHECK_OK(ct_imager_image(im64, 0, dirty64, &err), err);
        ct_imager_stats st64;
        ct_imager_get_stats(im64, &st64);
        ct_imager_destroy(im64);
        double e64 = max_diff(dirty64, sdirty, NX * NY) / peak;
        printf("64-bit grids asked for at epsilon %g: dirty %.2e of the peak from the gridder\n",
               epsilon, e64);
        CHECK(st64.grid_bits == 64 && e64 <= 1e-12, "64-bit grids: %d bits, dirty %g",
              st64.grid_bits, e64);
    }

    /* A direct Fourier transform with the w term, at every pixel. */
    double dmax = 0, derr = 0;
    static double dft[NX * NY];
    for (int y = 0; y < NY; y++)
        for (int x = 0; x < NX; x++) {
            dft[y * NX + x] = dft_at(&d, w, wsum, (x - NX / 2) * cell, (y - NY / 2) * cell);
            dmax = fmax(dmax, fabs(dft[y * NX + x]));
        }
    derr = max_diff(dirty, dft, NX * NY) / dmax;
    printf("against a direct Fourier transform: max|diff|/peak %.2e at epsilon %g\n", derr,
           epsilon);
    CHECK(derr <= epsilon, "DFT error %g above epsilon %g", derr, epsilon);
    /* The model took out 95 % of each source: 5 % is left, in the residual
     * image as in the dirty one (the sources' sidelobes and the noise add
     * the same there). */
    for (int s = 0; s < 3; s++) {
        size_t p = (size_t)sources[s].iy * NX + sources[s].ix;
        double left = dirty[p] - model_items[s].flux;
        printf("source %d: dirty %.4f residual %.4f (expected about %.4f)\n", s, dirty[p], resid[p],
               left);
    }
}

/* Rows near one plane, w = -xi u - eta v + a little (as DSA-110's, whose
 * baselines lie in the ground's plane: w = 0.32 v at Dec 55): the imager
 * fits the plane, grids w' on the slant orthographic grid (imager.h) with
 * fewer w planes than the plain grid needs, and every pixel matches a
 * direct Fourier transform at the direction the slant projection gives it
 * (ct_slant_to_lm), to epsilon. Sources are put at true directions; the
 * slant moves a corner pixel's direction by about a pixel here, so a wrong
 * mapping fails the transform by far more than epsilon. Rank 0 writes the
 * image to OUT_FILE.slant (compared across rank counts by test_imager.sh). */
static void test_slant(void)
{
    static dataset d;
    const double xi_true = 0.3, eta_true = -1.2;
    rng_state = 777;
    const double umax = 0.45 / cell;
    const double src[3][3] = {{0.0, 0.0, 1.5}, {-0.022, 0.018, 1.0}, {0.02, -0.024, 0.7}};
    for (int k = 0; k < NROWS; k++) {
        double *p = d.uvw + 3 * k;
        p[0] = (2 * uniform01() - 1) * umax;
        p[1] = (2 * uniform01() - 1) * umax;
        p[2] = -xi_true * p[0] - eta_true * p[1] + (2 * uniform01() - 1) * 30.0;
        d.vis[k] = 0.02 * ((uniform01() - 0.5) + I * (uniform01() - 0.5));
        for (int s = 0; s < 3; s++) {
            double l = src[s][0], m = src[s][1], n1 = sqrt(1 - l * l - m * m) - 1;
            d.vis[k] += src[s][2] * cexp(2 * M_PI * I * (p[0] * l + p[1] * m + p[2] * n1));
        }
        d.wt[k] = uniform01() < 0.05 ? 0.0 : 0.5 + uniform01();
        d.chan[k] = k % NCHAN;
        d.epoch[k] = k / (NROWS / NEPOCH + 1);
    }
    int first, count;
    block_of(rank, &first, &count);
    ct_err err;
    ct_weight_opts wo = briggs();
    static double dirty[NX * NY], plain[NX * NY];
    ct_imager_stats st[2];
    for (int mode = 0; mode < 2; mode++) {
        ct_imager *im = NULL;
        ct_imager_geom g = {.nx = NX,
                            .ny = NY,
                            .cell_rad = cell,
                            .epsilon = epsilon,
                            .threads = threads,
                            .slant = mode ? CT_IMAGER_SLANT_OFF : CT_IMAGER_SLANT_ON};
        REQUIRE_OK(ct_imager_create(MPI_COMM_WORLD, &g, &im, &err), err);
        CHECK_OK(ct_imager_load(im, d.uvw + 3 * first, d.vis + first, d.wt + first, d.chan + first,
                                NCHAN, d.epoch + first, NEPOCH, (size_t)count, &wo, &err),
                 err);
        CHECK_OK(ct_imager_image(im, 0, mode ? plain : dirty, &err), err);
        ct_imager_get_stats(im, &st[mode]);
        if (mode == 0 && count > 0) {
            /* Rows come back with the w they were loaded with. */
            double uvw[3], wt, maxd = 0;
            double complex v;
            size_t nr = ct_imager_nrows(im);
            for (size_t k = 0; k < nr; k++) {
                ct_imager_row(im, k, uvw, &v, &wt);
                /* the row's own w, from its u and v and the noise bound */
                maxd = fmax(maxd, fabs(uvw[2] + xi_true * uvw[0] + eta_true * uvw[1]));
            }
            CHECK(maxd <= 30.0 + 1e-9 * umax, "rows' w as loaded: off the plane by %g", maxd);
        }
        ct_imager_destroy(im);
    }
    if (rank != 0)
        return;
    printf("slant: xi %.6f eta %.6f (true %.1f, %.1f); w planes %ld slanted, %ld plain\n",
           st[0].slant_xi, st[0].slant_eta, xi_true, eta_true, st[0].w_planes, st[1].w_planes);
    CHECK(fabs(st[0].slant_xi - xi_true) < 1e-2 && fabs(st[0].slant_eta - eta_true) < 1e-2,
          "fitted slant (%g, %g), rows on (%g, %g)", st[0].slant_xi, st[0].slant_eta, xi_true,
          eta_true);
    CHECK(st[1].slant_xi == 0 && st[1].slant_eta == 0, "slant OFF gave (%g, %g)", st[1].slant_xi,
          st[1].slant_eta);
    CHECK(st[0].w_planes < st[1].w_planes, "w planes: %ld slanted, not fewer than %ld plain",
          st[0].w_planes, st[1].w_planes);
    FILE *f = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s.slant", out_path);
    f = fopen(path, "wb");
    CHECK(f && fwrite(dirty, sizeof dirty, 1, f) == 1 && fclose(f) == 0, "cannot write %s", path);
    if (size != 1)
        return;
    static double w[NROWS], dft[NX * NY];
    REQUIRE_OK(ct_weights_compute(&wo, d.uvw, d.wt, NROWS, w, &err), err);
    double wsum = 0, dmax = 0;
    for (int k = 0; k < NROWS; k++)
        wsum += w[k];
    double moved = 0;
    for (int y = 0; y < NY; y++)
        for (int x = 0; x < NX; x++) {
            double l = 0, m = 0;
            const double px = (x - NX / 2) * cell, py = (y - NY / 2) * cell;
            CHECK(ct_slant_to_lm(px, py, st[0].slant_xi, st[0].slant_eta, &l, &m),
                  "pixel (%d, %d) off the sky", x, y);
            moved = fmax(moved, hypot(l - px, m - py) / cell);
            dft[y * NX + x] = dft_at(&d, w, wsum, l, m);
            dmax = fmax(dmax, fabs(dft[y * NX + x]));
        }
    const double derr = max_diff(dirty, dft, NX * NY) / dmax;
    printf("slant: against a direct Fourier transform at the slant directions: %.2e at epsilon "
           "%g (directions up to %.2f px from the plain grid's)\n",
           derr, epsilon, moved);
    CHECK(derr <= epsilon, "slant: DFT error %g above epsilon %g", derr, epsilon);
    CHECK(moved > 0.5, "slant moved directions by %g px only: the test would not see a bad map",
          moved);
}

/* Bad input: refused on every rank with the same code. */
static void test_refusals(void)
{
    static dataset d;
    make_data(&d);
    int first, count;
    block_of(rank, &first, &count);
    ct_err err;
    ct_imager *im = NULL;
    ct_imager_geom huge = {.nx = 1 << 20, .ny = 1 << 20, .cell_rad = 1e-7, .epsilon = 1e-4};
    CHECK(ct_imager_create(MPI_COMM_WORLD, &huge, &im, &err) == CT_EINVAL && !im,
          "a 2^20 image was not refused: %s", err.msg);
    CHECK(strstr(err.msg, "GiB") != NULL, "message: %s", err.msg);
    ct_imager_geom bad = {.nx = 63, .ny = 64, .cell_rad = cell, .epsilon = 1e-4};
    CHECK(ct_imager_create(MPI_COMM_WORLD, &bad, &im, &err) == CT_EINVAL, "odd size accepted");
    bad.nx = 64;
    bad.cell_rad = -1;
    CHECK(ct_imager_create(MPI_COMM_WORLD, &bad, &im, &err) == CT_EINVAL, "cell < 0 accepted");
    bad.cell_rad = 0.1; /* 64 x 0.1 rad reaches past the horizon */
    CHECK(ct_imager_create(MPI_COMM_WORLD, &bad, &im, &err) == CT_EINVAL, "horizon accepted");
    bad.cell_rad = cell;
    bad.nx = bad.ny = 2; /* a 4-cell grid under a 6-cell kernel */
    CHECK(ct_imager_create(MPI_COMM_WORLD, &bad, &im, &err) == CT_EINVAL && !im &&
              strstr(err.msg, "too small"),
          "a 2 x 2 image at epsilon 1e-4 accepted: %s", err.msg);
    bad.nx = bad.ny = 64;
    bad.grid_bits = 16;
    CHECK(ct_imager_create(MPI_COMM_WORLD, &bad, &im, &err) == CT_EINVAL && !im,
          "16-bit grids accepted");
    bad.grid_bits = 32;
    bad.epsilon = 1e-7; /* beyond what float32 grids hold */
    CHECK(ct_imager_create(MPI_COMM_WORLD, &bad, &im, &err) == CT_EINVAL && !im &&
              strstr(err.msg, "single-precision"),
          "single-precision grids at epsilon 1e-7 accepted: %s", err.msg);

    ct_imager_geom g = {.nx = NX, .ny = NY, .cell_rad = cell, .epsilon = 1e-4};
    REQUIRE_OK(ct_imager_create(MPI_COMM_WORLD, &g, &im, &err), err);
    ct_weight_opts wo = briggs();
    static double zero[NROWS];
    CHECK(ct_imager_load(im, d.uvw + 3 * first, d.vis + first, zero, d.chan + first, NCHAN,
                         d.epoch + first, NEPOCH, (size_t)count, &wo, &err) == CT_EINVAL &&
              strstr(err.msg, "no data"),
          "fully flagged data: %s", err.msg);
    /* A NaN on the last rank only: every rank refuses. */
    if (rank == size - 1)
        d.vis[first + count - 1] = NAN;
    CHECK(ct_imager_load(im, d.uvw + 3 * first, d.vis + first, d.wt + first, d.chan + first, NCHAN,
                         d.epoch + first, NEPOCH, (size_t)count, &wo, &err) == CT_EINVAL &&
              strstr(err.msg, "corrupt input") && err.category == CT_CAT_CORRUPT_INPUT,
          "NaN visibility: %s", err.msg);
    double dummy[NX * NY];
    CHECK(ct_imager_image(im, 0, dummy, &err) == CT_ESTATE, "image without data: %s", err.msg);
    ct_imager_destroy(im);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: test_imager OUT_FILE EPSILON [THREADS]\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    out_path = argv[1];
    epsilon = atof(argv[2]);
    threads = argc == 4 ? atoi(argv[3]) : 1;
    RUN(test_images);
    RUN(test_slant);
    RUN(test_refusals);
    int failed = tu_failed, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int rc = tu_finish();
    MPI_Finalize();
    return any ? 1 : rc;
}
