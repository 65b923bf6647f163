/*
 * test_mosaic.c -- primary-beam-weighted mosaics (mosaic.h) against a sky that
 * is known exactly. Run under mpirun with any number of ranks; argv[1] is a
 * directory shared by them.
 *
 * Two drift-scan fields 309 s of sidereal drift apart in RA at Dec 55 (as two
 * consecutive DSA-110 observations) each see point sources through the Airy
 * beam of their own pointing, convolved with a Gaussian restoring beam, plus
 * noise correlated on the beam's scale (white noise smoothed by the same
 * Gaussian), 2 and 4 mJy/beam. Positions are computed here from the textbook
 * trigonometric SIN and gnomonic formulas, not mosaic.c's unit vectors.
 * Checked:
 *   - fluxes within 2 % and positions within 0.1 px of the truth, for sources
 *     in the overlap, one where field A is blank (NaN), one across a tile edge;
 *   - the noise map: (mosaic - sources) / noise has rms 1 within 10 %;
 *   - the mosaic on every rank count and tile size equals the single-tile one
 *     made on one rank, bit for bit;
 *   - bad input: frequency or cell disagreeing, a missing file, an image with
 *     no finite pixel: refused with the reason, nothing written.
 */
#define _GNU_SOURCE
#include "fitsimage.h"
#include "mosaic.h"
#include "sky.h"
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEG     (M_PI / 180.0)
#define NPIX    320
#define CELL    (24.0 / 3600.0) /* deg */
#define FWHM_PX 5.0
#define FREQ    1.405e9
#define DEC0    55.0
#define RA_A    100.0
#define RA_B    (100.0 + 309.0 * 15.041 / 3600.0)
#define TILE    64

static int rank, size;
static const char *dir;

typedef struct source {
    double ra, dec, flux;
} source;

static uint64_t rng_state = 88172645463325252ull;
static double uniform(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static double gaussian(void)
{
    return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

/* SIN pixel (0-based) of (ra, dec) in an image centred at (ra0, dec0), CRPIX n/2+1. */
static void sin_pixel(double ra0, double dec0, double ra, double dec, double *x, double *y,
                      double *sin_theta)
{
    double da = (ra - ra0) * DEG, d = dec * DEG, d0 = dec0 * DEG;
    double l = cos(d) * sin(da), m = sin(d) * cos(d0) - cos(d) * sin(d0) * cos(da);
    *x = NPIX / 2 - l / DEG / CELL; /* CDELT1 = -CELL */
    *y = NPIX / 2 + m / DEG / CELL;
    *sin_theta = sqrt(l * l + m * m);
}

/* Gnomonic (TAN) pixel (0-based) of (ra, dec) in a mosaic header. */
static void tan_pixel(const ct_fits_image_desc *h, double ra, double dec, double *x, double *y)
{
    double da = (ra - h->ra_deg) * DEG, d = dec * DEG, d0 = h->dec_deg * DEG;
    double den = sin(d) * sin(d0) + cos(d) * cos(d0) * cos(da);
    double xi = cos(d) * sin(da) / den, eta = (sin(d) * cos(d0) - cos(d) * sin(d0) * cos(da)) / den;
    *x = h->crpix1 - 1 - xi / DEG / h->cdelt_deg;
    *y = h->crpix2 - 1 + eta / DEG / h->cdelt_deg;
}

/* (ra, dec) of 0-based mosaic pixel (x, y): the inverse gnomonic projection. */
static void tan_world(const ct_fits_image_desc *h, double x, double y, double *ra, double *dec)
{
    double xi = -(x + 1 - h->crpix1) * h->cdelt_deg * DEG;
    double eta = (y + 1 - h->crpix2) * h->cdelt_deg * DEG, d0 = h->dec_deg * DEG;
    *ra = h->ra_deg + atan2(xi, cos(d0) - eta * sin(d0)) / DEG;
    *dec = atan2(sin(d0) + eta * cos(d0), hypot(xi, cos(d0) - eta * sin(d0))) / DEG;
}

/* Smoothed white noise of rms sigma (the restoring beam's correlation). */
static void add_noise(float *img, double sigma, uint64_t seed)
{
    rng_state = seed;
    size_t n = (size_t)NPIX * NPIX;
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++)
        a[i] = gaussian();
    double s = FWHM_PX / 2.354820045, k[25], norm = 0;
    for (int j = -12; j <= 12; j++)
        norm += (k[j + 12] = exp(-0.5 * j * j / (s * s)));
    for (int y = 0; y < NPIX; y++)
        for (int x = 0; x < NPIX; x++) {
            double v = 0;
            for (int j = -12; j <= 12; j++)
                v += k[j + 12] * a[(size_t)y * NPIX + (size_t)((x + j + NPIX) % NPIX)];
            b[(size_t)y * NPIX + x] = v;
        }
    double ss = 0;
    for (int y = 0; y < NPIX; y++)
        for (int x = 0; x < NPIX; x++) {
            double v = 0;
            for (int j = -12; j <= 12; j++)
                v += k[j + 12] * b[(size_t)((y + j + NPIX) % NPIX) * NPIX + x];
            a[(size_t)y * NPIX + x] = v;
            ss += v * v;
        }
    double scale = sigma / sqrt(ss / n);
    for (size_t i = 0; i < n; i++)
        img[i] += (float)(a[i] * scale);
    (void)norm;
    free(a);
    free(b);
}

/* The restoring beam write_field gives its field (FWHM in pixels). */
static double fwhm_px = FWHM_PX;

static double beam_gauss(double dx, double dy)
{
    double s = fwhm_px / 2.354820045;
    return exp(-0.5 * (dx * dx + dy * dy) / (s * s));
}

/* Writes one field; blank: a NaN box [x0, x0+w) x [y0, y0+w) (w 0: none). */
static void write_field(const char *path, double ra0, double freq, double cell_deg, double sigma,
                        uint64_t seed, const source *src, int n_src, int bx0, int by0, int bw,
                        bool all_nan)
{
    size_t n = (size_t)NPIX * NPIX;
    float *img = calloc(n, sizeof *img);
    add_noise(img, sigma, seed);
    for (int s = 0; s < n_src; s++) {
        double x, y, st;
        sin_pixel(ra0, DEC0, src[s].ra, src[s].dec, &x, &y, &st);
        double a = ct_airy_power(st, freq, 4.65);
        for (int iy = (int)y - 15; iy <= (int)y + 15; iy++)
            for (int ix = (int)x - 15; ix <= (int)x + 15; ix++)
                if (ix >= 0 && iy >= 0 && ix < NPIX && iy < NPIX)
                    img[(size_t)iy * NPIX + ix] +=
                        (float)(src[s].flux * a * beam_gauss(ix - x, iy - y));
    }
    for (int y = by0; y < by0 + bw; y++)
        for (int x = bx0; x < bx0 + bw; x++)
            img[(size_t)y * NPIX + x] = NAN;
    if (all_nan)
        for (size_t i = 0; i < n; i++)
            img[i] = NAN;
    ct_fits_image_desc d = {.nx = NPIX,
                            .ny = NPIX,
                            .ra_deg = ra0,
                            .dec_deg = DEC0,
                            .cdelt_deg = cell_deg,
                            .projection = "SIN",
                            .freq_hz = freq,
                            .bandwidth_hz = 1.875e8,
                            .bmaj_deg = fwhm_px * CELL,
                            .bmin_deg = fwhm_px * CELL,
                            .date_obs = "2026-11-22T10:00:00"};
    ct_err err;
    if (ct_fits_write_image(path, &d, img, &err) != CT_OK) {
        fprintf(stderr, "writing %s: %s\n", path, err.msg);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    free(img);
}

/* Peak and position of the source near (ex, ey): a parabola through the log of
 * the 3 x 3 around the brightest pixel (exact for a Gaussian). */
static void measure(const float *m, int nx, int ny, double ex, double ey, double *peak, double *px,
                    double *py)
{
    int bx = (int)lround(ex), by = (int)lround(ey);
    for (int y = (int)lround(ey) - 3; y <= (int)lround(ey) + 3; y++)
        for (int x = (int)lround(ex) - 3; x <= (int)lround(ex) + 3; x++)
            if (x > 0 && y > 0 && x < nx - 1 && y < ny - 1 &&
                m[(size_t)y * nx + x] > m[(size_t)by * nx + bx])
                bx = x, by = y;
    double c = log(m[(size_t)by * nx + bx]);
    double l = log(m[(size_t)by * nx + bx - 1]), r = log(m[(size_t)by * nx + bx + 1]);
    double d = log(m[(size_t)(by - 1) * nx + bx]), u = log(m[(size_t)(by + 1) * nx + bx]);
    double ox = 0.5 * (l - r) / (l - 2 * c + r), oy = 0.5 * (d - u) / (d - 2 * c + u);
    *px = bx + ox, *py = by + oy;
    *peak = exp(c - 0.25 * (l - r) * ox - 0.25 * (d - u) * oy);
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

static bool same_maps(const char *prefix_a, const char *prefix_b)
{
    static const char *const suffix[3] = {"", "-noise", "-weight"};
    bool same = true;
    for (int i = 0; i < 3; i++) {
        char a[4300], b[4300];
        snprintf(a, sizeof a, "%s%s.fits", prefix_a, suffix[i]);
        snprintf(b, sizeof b, "%s%s.fits", prefix_b, suffix[i]);
        ct_fits_image_info ia, ib;
        float *da = NULL, *db = NULL;
        ct_err err;
        if (ct_fits_read_image(a, &ia, &da, &err) != CT_OK ||
            ct_fits_read_image(b, &ib, &db, &err) != CT_OK) {
            fprintf(stderr, "%s\n", err.msg);
            same = false;
        } else {
            same = same && ia.desc.nx == ib.desc.nx && ia.desc.ny == ib.desc.ny &&
                   ia.desc.crpix1 == ib.desc.crpix1 && ia.desc.crpix2 == ib.desc.crpix2 &&
                   memcmp(da, db, (size_t)ia.desc.nx * ia.desc.ny * sizeof *da) == 0;
        }
        free(da);
        free(db);
    }
    return same;
}

static void test_mosaic(void)
{
    char fa[4200], fb[4200], ref[4200], tiled[4200];
    path_of(fa, sizeof fa, "field-a.fits");
    path_of(fb, sizeof fb, "field-b.fits");
    path_of(ref, sizeof ref, "ref");
    path_of(tiled, sizeof tiled, "tiled");
    const char *inputs[2] = {fa, fb};
    ct_err err;
    ct_mosaic_opts o;
    ct_mosaic_opts_default(&o);

    /* 1. The grid, from the headers of noise-only fields. */
    if (rank == 0) {
        write_field(fa, RA_A, FREQ, CELL, 0.002, 11, NULL, 0, 0, 0, 0, false);
        write_field(fb, RA_B, FREQ, CELL, 0.004, 12, NULL, 0, 0, 0, 0, false);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    ct_mosaic_result r;
    o.out_prefix = tiled;
    REQUIRE_OK(ct_mosaic_make(MPI_COMM_WORLD, inputs, 2, &o, &r, &err), err);
    ct_fits_image_desc h = {.ra_deg = r.ra_deg,
                            .dec_deg = r.dec_deg,
                            .crpix1 = r.crpix1,
                            .crpix2 = r.crpix2,
                            .cdelt_deg = r.cell_arcsec / 3600};
    int nx = r.nx, ny = r.ny;
    ct_mosaic_result_free(&r);
    CHECK(nx > NPIX && ny >= NPIX - 2 && ny <= NPIX + 40, "grid %d x %d covers both fields", nx,
          ny);

    /* 2. The sky: sources in the overlap, one across the tile edge x = 2 TILE,
     * one where field A is blank. */
    double mid_ra = 0.5 * (RA_A + RA_B);
    source src[6];
    int n_src = 0;
    src[n_src++] = (source){mid_ra, DEC0 + 0.30, 1.0};
    src[n_src++] = (source){mid_ra - 0.25, DEC0 - 0.35, 0.5};
    src[n_src++] = (source){mid_ra + 0.30, DEC0 + 0.05, 0.8};
    double ra_edge, dec_edge, ra_far, dec_far;
    tan_world(&h, 2 * TILE - 0.5, 2.5 * TILE + 0.3, &ra_edge, &dec_edge); /* across x = 128 */
    tan_world(&h, 2 * TILE + 20.0, 1.5 * TILE + 0.3, &ra_far, &dec_far);  /* the same, inside */
    int edge = n_src;
    src[n_src++] = (source){ra_edge, dec_edge, 0.7};
    src[n_src++] = (source){ra_far, dec_far, 0.7};
    int blanked = n_src;
    src[n_src++] = (source){mid_ra + 0.05, DEC0 - 0.1, 0.6};
    double bx, by, st;
    sin_pixel(RA_A, DEC0, src[blanked].ra, src[blanked].dec, &bx, &by, &st);
    if (rank == 0) {
        write_field(fa, RA_A, FREQ, CELL, 0.002, 11, src, n_src, (int)bx - 20, (int)by - 20, 40,
                    false);
        write_field(fb, RA_B, FREQ, CELL, 0.004, 12, src, n_src, 0, 0, 0, false);
    }
    MPI_Barrier(MPI_COMM_WORLD);

    /* 3. The reference: one tile on rank 0 alone; then every rank, small tiles. */
    if (rank == 0) {
        ct_mosaic_opts one = o;
        one.out_prefix = ref;
        one.tile = CT_MOSAIC_TILE_MAX;
        ct_mosaic_result rr;
        CHECK_OK(ct_mosaic_make(MPI_COMM_SELF, inputs, 2, &one, &rr, &err), err);
        CHECK(rr.n_tiles == 1, "one tile, got %d", rr.n_tiles);
        ct_mosaic_result_free(&rr);
    }
    o.tile = TILE;
    REQUIRE_OK(ct_mosaic_make(MPI_COMM_WORLD, inputs, 2, &o, &r, &err), err);
    if (rank == 0) {
        CHECK(r.n_tiles == ((nx + TILE - 1) / TILE) * ((ny + TILE - 1) / TILE), "%d tiles",
              r.n_tiles);
        int used = 0;
        for (int t = 0; t < r.n_tiles; t++)
            used |= 1 << r.tiles[t].rank;
        CHECK(used == (1 << size) - 1, "every one of the %d rank(s) computed tiles (mask %x)", size,
              used);
        CHECK(same_maps(ref, tiled),
              "%d-px tiles on %d rank(s) = one tile on one rank, bit for bit", TILE, size);
        CHECK(fabs(r.sigma_jy[0] / 0.002 - 1) < 0.1 && fabs(r.sigma_jy[1] / 0.004 - 1) < 0.1,
              "MAD noise of the inputs %g, %g (2, 4 mJy)", r.sigma_jy[0], r.sigma_jy[1]);
    }
    ct_mosaic_result_free(&r);
    if (rank != 0)
        return;

    /* 4. Fluxes and positions, read back from the assembled file. */
    char path[4300];
    snprintf(path, sizeof path, "%s.fits", tiled);
    ct_fits_image_info info, ninfo;
    float *m = NULL, *noise = NULL;
    REQUIRE_OK(ct_fits_read_image(path, &info, &m, &err), err);
    snprintf(path, sizeof path, "%s-noise.fits", tiled);
    REQUIRE_OK(ct_fits_read_image(path, &ninfo, &noise, &err), err);
    CHECK(strcmp(info.projection, "TAN") == 0, "TAN, got %s", info.projection);
    double peaks[6] = {0};
    for (int s = 0; s < n_src; s++) {
        double ex, ey, peak, px, py;
        tan_pixel(&info.desc, src[s].ra, src[s].dec, &ex, &ey);
        measure(m, info.desc.nx, info.desc.ny, ex, ey, &peak, &px, &py);
        peaks[s] = peak;
        CHECK(fabs(peak / src[s].flux - 1) < 0.02, "source %d: %.4f Jy of %.4f (%.2f %%)", s, peak,
              src[s].flux, 100 * (peak / src[s].flux - 1));
        CHECK(fabs(px - ex) < 0.1 && fabs(py - ey) < 0.1,
              "source %d at (%.3f, %.3f), expected (%.3f, %.3f)", s, px, py, ex, ey);
    }
    CHECK(fabs(peaks[edge] / peaks[edge + 1] - 1) < 0.01,
          "across the tile edge %.4f Jy, inside a tile %.4f Jy", peaks[edge], peaks[edge + 1]);

    /* 5. The noise map against the noise: (mosaic - sources) / noise. */
    double sum2 = 0;
    long n = 0;
    for (int y = 8; y < info.desc.ny - 8; y++)
        for (int x = 8; x < info.desc.nx - 8; x++) {
            size_t i = (size_t)y * info.desc.nx + x;
            if (!isfinite(m[i]))
                continue;
            double model = 0;
            for (int s = 0; s < n_src; s++) {
                double ex, ey;
                tan_pixel(&info.desc, src[s].ra, src[s].dec, &ex, &ey);
                model += src[s].flux * beam_gauss(x - ex, y - ey);
            }
            double z = (m[i] - model) / noise[i];
            sum2 += z * z;
            n++;
        }
    double rms_z = sqrt(sum2 / n);
    CHECK(n > 50000 && fabs(rms_z - 1) < 0.1,
          "(mosaic - sources) / noise map: rms %.3f over %ld px (noise map true within 10 %%)",
          rms_z, n);
    free(m);
    free(noise);
}

static void test_bad_input(void)
{
    if (rank != 0)
        return;
    char fa[4200], fb[4200], other[4200], missing[4200], out[4200], file[4300];
    path_of(fa, sizeof fa, "field-a.fits");
    path_of(fb, sizeof fb, "field-b.fits");
    path_of(missing, sizeof missing, "no-such.fits");
    path_of(out, sizeof out, "bad");
    ct_mosaic_opts o;
    ct_mosaic_opts_default(&o);
    o.out_prefix = out;
    ct_mosaic_result r;
    ct_err err;

    path_of(other, sizeof other, "field-b-1350.fits");
    write_field(other, RA_B, 1.35e9, CELL, 0.004, 12, NULL, 0, 0, 0, 0, false);
    const char *freq[2] = {fa, other};
    CHECK(ct_mosaic_make(MPI_COMM_SELF, freq, 2, &o, &r, &err) == CT_EINVAL &&
              strstr(err.msg, "frequency") && strstr(err.msg, "1350.000000"),
          "frequencies disagree: %s", err.msg);

    path_of(other, sizeof other, "field-b-20as.fits");
    write_field(other, RA_B, FREQ, 20.0 / 3600, 0.004, 12, NULL, 0, 0, 0, 0, false);
    const char *cell[2] = {fa, other};
    CHECK(ct_mosaic_make(MPI_COMM_SELF, cell, 2, &o, &r, &err) == CT_EINVAL &&
              strstr(err.msg, "cell"),
          "cells disagree: %s", err.msg);

    const char *gone[2] = {fa, missing};
    CHECK(ct_mosaic_make(MPI_COMM_SELF, gone, 2, &o, &r, &err) == CT_ENOTFOUND &&
              strstr(err.msg, "no-such.fits"),
          "a missing file: %s", err.msg);

    path_of(other, sizeof other, "field-nan.fits");
    write_field(other, RA_B, FREQ, CELL, 0.004, 12, NULL, 0, 0, 0, 0, true);
    const char *nan[2] = {fa, other};
    CHECK(ct_mosaic_make(MPI_COMM_SELF, nan, 2, &o, &r, &err) == CT_EINVAL &&
              err.category == CT_CAT_CORRUPT_INPUT && strstr(err.msg, "field-nan"),
          "an image with no finite pixel: %s", err.msg);

    /* Not FITS at all (text, noise, a file cut short): corrupt input, not retried -- it was
     * transient, and retried four times. */
    const char *junk[3] = {"not fits, a note\n", NULL, NULL};
    for (int k = 0; k < 3; k++) {
        path_of(other, sizeof other, k == 0 ? "note.fits" : k == 1 ? "noise.fits" : "cut.fits");
        FILE *f = fopen(other, "wb");
        if (k == 0)
            fputs(junk[0], f);
        for (int b = 0; k == 1 && b < 10000; b++)
            fputc((b * 7919) & 0xff, f);
        if (k == 2) { /* the first 3000 bytes of a good image */
            FILE *g = fopen(fa, "rb");
            char buf[3000];
            size_t got = g ? fread(buf, 1, sizeof buf, g) : 0;
            fwrite(buf, 1, got, f);
            if (g)
                fclose(g);
        }
        fclose(f);
        const char *bad[2] = {fa, other};
        CHECK(ct_mosaic_make(MPI_COMM_SELF, bad, 2, &o, &r, &err) == CT_EINVAL &&
                  err.category == CT_CAT_CORRUPT_INPUT && strstr(err.msg, other),
              "not FITS (%d): %s", k, err.msg);
    }

    snprintf(file, sizeof file, "%s.fits", out);
    CHECK(access(file, F_OK) != 0, "nothing written for refused mosaics");
    snprintf(file, sizeof file, "%s-tile000.fits", out);
    CHECK(access(file, F_OK) != 0, "no tile written for refused mosaics");
    (void)fb;
}

/* A mosaic that fails once some of its files are written leaves none of them: here rank 0
 * cannot write the assembled weight map (a directory stands at its staged name), after
 * every tile is written. Its tiles used to stay behind under their final names, without a
 * row to own them. */
static void test_failed_write_leaves_nothing(void)
{
    char fa[4200], fb[4200], prefix[4200], block[4300];
    path_of(fa, sizeof fa, "field-a.fits");
    path_of(fb, sizeof fb, "field-b.fits");
    path_of(prefix, sizeof prefix, "failing");
    const char *inputs[2] = {fa, fb};
    if (rank == 0) {
        snprintf(block, sizeof block, "%s-weight.fits.tmp-%ld-set", prefix, (long)getpid());
        CHECK(mkdir(block, 0700) == 0, "the blocking directory %s", block);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    ct_mosaic_opts o;
    ct_mosaic_opts_default(&o);
    o.out_prefix = prefix;
    ct_mosaic_result r;
    ct_err err;
    ct_code rc = ct_mosaic_make(MPI_COMM_WORLD, inputs, 2, &o, &r, &err);
    CHECK(rc != CT_OK, "the mosaic fails on every rank (%s)", err.msg);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        DIR *d = opendir(dir);
        int left = 0;
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL)
            if (strncmp(e->d_name, "failing", 7) == 0 && strstr(block, e->d_name) == NULL) {
                fprintf(stderr, "  left behind: %s\n", e->d_name);
                left++;
            }
        if (d)
            closedir(d);
        CHECK(d != NULL && left == 0, "no tile, map or staged file left (%d)", left);
        rmdir(block);
    }
}

/* Inputs restored with different beams (5 and 7 px): the mosaic convolves the first to
 * the second's (the common beam, the largest), says so in its header, and a source in the
 * overlap keeps its flux in Jy per the common beam. */
static void test_common_beam(void)
{
    char fa[4200], fb[4200], out[4200];
    path_of(fa, sizeof fa, "cb-a.fits");
    path_of(fb, sizeof fb, "cb-b.fits");
    path_of(out, sizeof out, "cb");
    const char *inputs[2] = {fa, fb};
    double mid_ra = 0.5 * (RA_A + RA_B);
    source src[2] = {{mid_ra, DEC0 + 0.25, 1.0}, {mid_ra - 0.2, DEC0 - 0.3, 0.6}};
    if (rank == 0) {
        fwhm_px = 5.0;
        write_field(fa, RA_A, FREQ, CELL, 0.002, 21, src, 2, 0, 0, 0, false);
        fwhm_px = 7.0;
        write_field(fb, RA_B, FREQ, CELL, 0.002, 22, src, 2, 0, 0, 0, false);
        fwhm_px = FWHM_PX;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    ct_mosaic_opts o;
    ct_mosaic_opts_default(&o);
    o.out_prefix = out;
    o.tile = TILE;
    ct_mosaic_result r;
    ct_err err;
    REQUIRE_OK(ct_mosaic_make(MPI_COMM_WORLD, inputs, 2, &o, &r, &err), err);
    bool common = r.common_beam;
    double bmaj = r.beam_maj_arcsec;
    ct_mosaic_result_free(&r);
    if (rank != 0)
        return;
    CHECK(common && fabs(bmaj - 7.0 * CELL * 3600) < 1e-6, "common beam %g arcsec (want %g)", bmaj,
          7.0 * CELL * 3600);
    char path[4300];
    snprintf(path, sizeof path, "%s.fits", out);
    ct_fits_image_info info;
    float *m = NULL;
    REQUIRE_OK(ct_fits_read_image(path, &info, &m, &err), err);
    CHECK(fabs(info.desc.bmaj_deg / (7.0 * CELL) - 1) < 1e-6 &&
              fabs(info.desc.bmin_deg / (7.0 * CELL) - 1) < 1e-6,
          "header beam %g x %g deg", info.desc.bmaj_deg, info.desc.bmin_deg);
    bool said = false;
    for (int i = 0; i < CT_FITS_EXTRA_MAX; i++)
        said |= strcmp(info.extra_names[i], "BEAMCONV") == 0 && info.extra[i].value == 1;
    CHECK(said, "BEAMCONV = 1 in the header");
    for (int k = 0; k < 2; k++) {
        double ex, ey, peak, px, py;
        tan_pixel(&info.desc, src[k].ra, src[k].dec, &ex, &ey);
        measure(m, info.desc.nx, info.desc.ny, ex, ey, &peak, &px, &py);
        CHECK(fabs(peak / src[k].flux - 1) < 0.02, "source %d: %.4f Jy of %.4f per common beam", k,
              peak, src[k].flux);
        /* Its width: the common beam's (7 px of the inputs' cell, the mosaic's too). */
        int ix = (int)lround(px), iy = (int)lround(py);
        double side = m[(size_t)iy * info.desc.nx + ix + 3] / peak;
        double dx = ix + 3 - px, dy = iy - py;
        double want = exp(-0.5 * (dx * dx + dy * dy) / pow(7.0 / 2.354820045, 2));
        CHECK(fabs(side / want - 1) < 0.1, "source %d: 3 px east at %.3f of its peak (want %.3f)",
              k, side, want);
    }
    free(m);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc != 2) {
        fprintf(stderr, "usage: test_mosaic DIR\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    dir = argv[1];
    RUN(test_mosaic);
    RUN(test_common_beam);
    RUN(test_bad_input);
    RUN(test_failed_write_leaves_nothing);
    int failed = tu_failed, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    int rc = tu_finish();
    MPI_Finalize();
    return any ? 1 : rc;
}
