/*
 * test_sources.c -- source finding against images whose sources are known (issue 18).
 *
 * A restored image is simulated as the imager makes one: point sources as the restoring
 * beam scaled to their flux (Jy/beam at the peak), resolved sources as wider Gaussians,
 * and noise correlated over the beam (white noise convolved with the beam, scaled to a
 * known rms). Sources are placed at random, at least three beams apart, with
 * signal-to-noise ratios log-uniform between 3 and 500. The finder must recover them:
 *   - completeness >= 95 % of the sources at 7 sigma or more;
 *   - at most 1 % of its detections at 7 sigma or more false, and none on the negated
 *     image (the noise alone);
 *   - the flux scale within 3 % (median peak ratio), each flux within 5 of its own
 *     Condon errors and 95 % within 3 (errors honest);
 *   - positions: the median offset under 0.1 beam, every source at 20 sigma or more
 *     within 0.1 beam, RA/Dec through the projection against the injected sky position;
 *   - resolved sources: integrated flux within 3 % at 50 sigma and sizes within 5 %;
 *   - two sources a beam apart fitted as two (a blend), three rms-deep dips in between;
 *   - the background: a slope and an offset added to the image come back in the map.
 * `test_sources --write DIR` writes the image and its truth (DIR/sky.fits, DIR/truth.csv)
 * for the command-line test and bench/sources; `test_sources --night DIR` a night of
 * images with variable sources and a reference catalogue for tests/test_science.sh.
 */
#define _GNU_SOURCE
#include "fitsimage.h"
#include "refcat.h"
#include "skyframe.h"
#include "sources.h"
#include "testutil.h"

#include <fitsio.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEG    (M_PI / 180.0)
#define FWHM_S 2.3548200450309493

/* A small deterministic generator (splitmix64), so every run sees the same sky. */
typedef struct rng {
    uint64_t s;
} rng;

static double uniform(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(rng *r)
{
    return sqrt(-2 * log(uniform(r))) * cos(2 * M_PI * uniform(r));
}

typedef struct truth {
    double x, y, peak, maj_px, min_px, pa_deg, ra, dec;
} truth;

typedef struct sky {
    int n;
    float *img;
    ct_fits_image_desc d;
    double rms;
    truth *t;
    int nt;
} sky;

/* Adds a Gaussian of peak a, FWHM maj x min pixels, PA (east of north) at (x, y). */
static void add_gauss(float *img, int n, double x, double y, double a, double maj, double min,
                      double pa_deg)
{
    double sa = maj / FWHM_S, sb = min / FWHM_S, pa = pa_deg * DEG;
    /* The major axis's pixel direction: east is -x, north +y. */
    double ux = -sin(pa), uy = cos(pa);
    int r = (int)ceil(5 * sa) + 1;
    for (int j = (int)y - r; j <= (int)y + r; j++)
        for (int i = (int)x - r; i <= (int)x + r; i++) {
            if (i < 0 || j < 0 || i >= n || j >= n)
                continue;
            double dx = i - x, dy = j - y;
            double u = dx * ux + dy * uy, v = -dx * uy + dy * ux;
            img[(size_t)j * n + i] +=
                (float)(a * exp(-0.5 * (u * u / (sa * sa) + v * v / (sb * sb))));
        }
}

/* White noise convolved with the beam, scaled to rms sigma. */
static void add_noise(float *img, int n, double maj, double min, double pa_deg, double sigma,
                      rng *r)
{
    size_t np = (size_t)n * n;
    float *w = malloc(np * sizeof *w), *c = calloc(np, sizeof *c);
    for (size_t i = 0; i < np; i++)
        w[i] = (float)gauss(r);
    double sa = maj / FWHM_S, sb = min / FWHM_S, pa = pa_deg * DEG;
    double ux = -sin(pa), uy = cos(pa);
    int k = (int)ceil(4 * sa);
    int kw = 2 * k + 1;
    double *ker = malloc((size_t)kw * kw * sizeof *ker), norm = 0;
    for (int j = -k; j <= k; j++)
        for (int i = -k; i <= k; i++) {
            double u = i * ux + j * uy, v = -i * uy + j * ux;
            double g = exp(-0.5 * (u * u / (sa * sa) + v * v / (sb * sb)));
            ker[(j + k) * kw + i + k] = g;
            norm += g * g;
        }
    norm = sigma / sqrt(norm);
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            double s = 0;
            for (int j = -k; j <= k; j++) {
                int yy = (y + j + n) % n; /* periodic: the same statistics at the edges */
                const float *row = w + (size_t)yy * n;
                const double *kr = ker + (j + k) * kw + k;
                for (int i = -k; i <= k; i++)
                    s += kr[i] * row[(x + i + n) % n];
            }
            c[(size_t)y * n + x] = (float)(s * norm);
        }
    for (size_t i = 0; i < np; i++)
        img[i] += c[i];
    free(w), free(c), free(ker);
}

/* The sky: n x n pixels of 2 arcsec, a 10 x 7 arcsec beam at PA 30, rms 1 mJy/beam;
 * npoint point sources and nres resolved ones (1.5 x the beam's size). */
static void make_sky(sky *s, int n, int npoint, int nres, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    rng r = {seed};
    s->n = n;
    s->rms = 1e-3;
    s->img = calloc((size_t)n * n, sizeof *s->img);
    ct_fits_image_desc *d = &s->d;
    d->nx = d->ny = n;
    d->ra_deg = 150.0, d->dec_deg = 55.0;
    d->cdelt_deg = 2.0 / 3600;
    d->projection = "SIN";
    d->freq_hz = 1.405e9, d->bandwidth_hz = 187.5e6;
    d->bmaj_deg = 10.0 / 3600, d->bmin_deg = 7.0 / 3600, d->bpa_deg = 30.0;
    d->date_obs = "2026-12-07T12:00:00";
    d->object = "test_sources";
    double bmaj = 5, bmin = 3.5; /* pixels */
    add_noise(s->img, n, bmaj, bmin, d->bpa_deg, s->rms, &r);
    s->t = calloc((size_t)(npoint + nres), sizeof *s->t);
    ct_imgwcs w;
    ct_err err;
    ct_imgwcs_make(&w, d, "SIN", &err);
    for (int k = 0; k < npoint + nres; k++) {
        truth t;
        for (int tries = 0;; tries++) {
            t.x = 12 + uniform(&r) * (n - 25), t.y = 12 + uniform(&r) * (n - 25);
            bool clear = true;
            for (int j = 0; j < s->nt && clear; j++)
                clear = hypot(s->t[j].x - t.x, s->t[j].y - t.y) >= 3 * bmaj;
            if (clear || tries > 1000)
                break;
        }
        bool res = k >= npoint;
        t.peak = s->rms * exp(log(3.0) + uniform(&r) * log(500.0 / 3.0));
        if (res)
            t.peak = s->rms * (50 + 100 * uniform(&r));
        t.maj_px = res ? 1.5 * bmaj : bmaj, t.min_px = res ? 1.5 * bmin : bmin;
        t.pa_deg = d->bpa_deg;
        add_gauss(s->img, n, t.x, t.y, t.peak, t.maj_px, t.min_px, t.pa_deg);
        double dir[3];
        ct_imgwcs_pixel_to_dir(&w, t.x, t.y, dir);
        ct_dir_to_radec(dir, &t.ra, &t.dec);
        s->t[s->nt++] = t;
    }
}

static void free_sky(sky *s)
{
    free(s->img), free(s->t);
}

/* The detection nearest truth t within half a beam (NULL for none). */
static const ct_src *match(const ct_src_catalog *c, const truth *t, double beam_arcsec)
{
    const ct_src *best = NULL;
    double best_d = 0.5 * beam_arcsec;
    double a[3], b[3];
    ct_radec_to_dir(t->ra, t->dec, a);
    for (size_t i = 0; i < c->n; i++) {
        ct_radec_to_dir(c->src[i].ra_deg, c->src[i].dec_deg, b);
        double dd = ct_dir_sep_deg(a, b) * 3600;
        if (dd < best_d)
            best_d = dd, best = &c->src[i];
    }
    return best;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n == 0 ? NAN : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void test_point_sources(void)
{
    sky s;
    make_sky(&s, 1024, 260, 0, 42);
    ct_src_opts o;
    ct_src_opts_default(&o);
    ct_src_catalog c;
    ct_err err;
    REQUIRE_OK(ct_src_find(s.img, &s.d, "SIN", &o, &c, NULL, NULL, &err), err);
    double beam = 10.0; /* arcsec, major */
    CHECK(fabs(c.rms_jy / s.rms - 1) < 0.05, "rms %g against %g", c.rms_jy, s.rms);
    int above = 0, found = 0, nf = 0, npos = 0;
    double *ratio = malloc((size_t)s.nt * sizeof *ratio), *off = malloc((size_t)s.nt * sizeof *off);
    int within3 = 0, nerr = 0;
    bool *used = calloc(c.n, sizeof *used);
    for (int k = 0; k < s.nt; k++) {
        const truth *t = &s.t[k];
        const ct_src *m = match(&c, t, beam);
        if (m)
            used[m - c.src] = true;
        if (t->peak / s.rms < 7)
            continue;
        above++;
        if (!m)
            continue;
        found++;
        ratio[nf++] = m->peak_jy / t->peak;
        double a[3], b[3];
        ct_radec_to_dir(t->ra, t->dec, a);
        ct_radec_to_dir(m->ra_deg, m->dec_deg, b);
        double d_arcsec = ct_dir_sep_deg(a, b) * 3600;
        off[npos++] = d_arcsec / beam;
        if (t->peak / s.rms >= 20)
            CHECK(d_arcsec < 0.1 * beam, "source at SNR %.0f off by %.2f arcsec (x %.2f y %.2f)",
                  t->peak / s.rms, d_arcsec, t->x, t->y);
        double z = fabs(m->peak_jy - t->peak) / m->peak_err_jy;
        within3 += z < 3;
        nerr++;
        CHECK(z < 5, "peak %.4g +- %.2g against %.4g (SNR %.0f)", m->peak_jy, m->peak_err_jy,
              t->peak, t->peak / s.rms);
        /* Pixel positions agree with the sky's through the projection. */
        CHECK(hypot(m->x - t->x, m->y - t->y) * 2.0 - d_arcsec < 1e-6, "pixel and sky disagree");
    }
    int det7 = 0, false7 = 0;
    for (size_t i = 0; i < c.n; i++)
        if (c.src[i].snr >= 7) {
            det7++;
            false7 += !used[i];
        }
    double completeness = (double)found / above;
    double med_ratio = median(ratio, nf), med_off = median(off, npos);
    printf("  %d sources at >= 7 sigma: %d found (%.1f %%); %d detections >= 7 sigma, %d false; "
           "flux ratio median %.4f; offset median %.3f beam; %d of %d within 3 errors; %.2f s\n",
           above, found, 100 * completeness, det7, false7, med_ratio, med_off, within3, nerr,
           c.seconds);
    CHECK(above >= 150, "only %d sources above 7 sigma", above);
    CHECK(completeness >= 0.95, "completeness %.3f", completeness);
    CHECK(false7 <= 0.01 * det7, "%d of %d detections false", false7, det7);
    CHECK(fabs(med_ratio - 1) < 0.03, "flux scale %.4f", med_ratio);
    CHECK(med_off < 0.1, "median offset %.3f beam", med_off);
    CHECK(within3 >= 0.95 * nerr, "only %d of %d peaks within 3 errors", within3, nerr);
    /* Point sources: integrated = peak within their errors (within 3 % at 300 sigma and
     * more, where the errors are below 1 %); sizes and angle the beam's. */
    int bright = 0;
    for (size_t i = 0; i < c.n; i++) {
        const ct_src *m = &c.src[i];
        if (m->snr < 100 || (m->flags & CT_SRC_BLEND))
            continue;
        CHECK(fabs(m->int_jy - m->peak_jy) < 4 * m->int_err_jy, "int %.4g +- %.2g, peak %.4g",
              m->int_jy, m->int_err_jy, m->peak_jy);
        if (m->snr < 300)
            continue;
        bright++;
        CHECK(fabs(m->int_jy / m->peak_jy - 1) < 0.03, "int/peak %.4f at SNR %.0f",
              m->int_jy / m->peak_jy, m->snr);
        CHECK(fabs(m->maj_arcsec / 10 - 1) < 0.03 && fabs(m->min_arcsec / 7 - 1) < 0.03,
              "size %.2f x %.2f arcsec", m->maj_arcsec, m->min_arcsec);
        double dpa = fmod(fabs(m->pa_deg - 30) + 90, 180) - 90;
        CHECK(fabs(dpa) < 3, "PA %.1f", m->pa_deg);
    }
    CHECK(bright >= 10, "%d bright sources", bright);
    /* Sorted brightest first. */
    for (size_t i = 1; i < c.n; i++)
        CHECK(c.src[i].peak_jy <= c.src[i - 1].peak_jy, "order at %zu", i);

    /* The noise alone: the negated image. */
    size_t np = (size_t)s.n * s.n;
    for (size_t i = 0; i < np; i++)
        s.img[i] = -s.img[i];
    ct_src_catalog neg;
    REQUIRE_OK(ct_src_find(s.img, &s.d, "SIN", &o, &neg, NULL, NULL, &err), err);
    int neg7 = 0;
    for (size_t i = 0; i < neg.n; i++)
        neg7 += neg.src[i].snr >= 7;
    printf("  negated image: %zu detections, %d at >= 7 sigma\n", neg.n, neg7);
    CHECK(neg7 == 0, "%d detections >= 7 sigma in noise", neg7);
    ct_src_catalog_free(&neg);
    ct_src_catalog_free(&c);
    free(ratio), free(off), free(used);
    free_sky(&s);
}

static void test_resolved(void)
{
    sky s;
    make_sky(&s, 512, 0, 30, 7);
    ct_src_opts o;
    ct_src_opts_default(&o);
    ct_src_catalog c;
    ct_err err;
    REQUIRE_OK(ct_src_find(s.img, &s.d, "SIN", &o, &c, NULL, NULL, &err), err);
    double ratios[64];
    int n = 0;
    for (int k = 0; k < s.nt; k++) {
        const ct_src *m = match(&c, &s.t[k], 10);
        CHECK(m != NULL, "resolved source %d not found", k);
        if (!m)
            continue;
        double want = s.t[k].peak * 1.5 * 1.5; /* integrated: peak x area ratio */
        ratios[n++] = m->int_jy / want;
        CHECK(fabs(m->int_jy / want - 1) < 0.03 + 3 * m->int_err_jy / want,
              "integrated %.4g +- %.2g against %.4g", m->int_jy, m->int_err_jy, want);
        CHECK(fabs(m->maj_arcsec / 15 - 1) < 0.05 && fabs(m->min_arcsec / 10.5 - 1) < 0.05,
              "size %.2f x %.2f against 15 x 10.5", m->maj_arcsec, m->min_arcsec);
    }
    double med = median(ratios, n);
    printf("  %d resolved sources: integrated flux ratio median %.4f\n", n, med);
    CHECK(fabs(med - 1) < 0.03, "integrated flux scale %.4f", med);
    ct_src_catalog_free(&c);
    free_sky(&s);
}

static void test_blend_and_background(void)
{
    sky s;
    make_sky(&s, 256, 0, 0, 3);
    /* Two sources 1.4 beams apart (14 arcsec = 7 px along x), and a background slope. */
    add_gauss(s.img, s.n, 100, 128, 0.2, 5, 3.5, 30);
    add_gauss(s.img, s.n, 107, 128, 0.1, 5, 3.5, 30);
    for (int y = 0; y < s.n; y++)
        for (int x = 0; x < s.n; x++)
            s.img[(size_t)y * s.n + x] += (float)(0.01 + 2e-5 * x);
    ct_src_opts o;
    ct_src_opts_default(&o);
    size_t np = (size_t)s.n * s.n;
    float *bkg = malloc(np * sizeof *bkg), *rms = malloc(np * sizeof *rms);
    ct_src_catalog c;
    ct_err err;
    REQUIRE_OK(ct_src_find(s.img, &s.d, "SIN", &o, &c, bkg, rms, &err), err);
    CHECK(c.n == 2, "%zu sources, not 2", c.n);
    if (c.n == 2) {
        CHECK(c.src[0].flags & CT_SRC_BLEND, "not a blend: flags %d", c.src[0].flags);
        CHECK(fabs(c.src[0].x - 100) < 0.2 && fabs(c.src[1].x - 107) < 0.3, "x %.2f %.2f",
              c.src[0].x, c.src[1].x);
        CHECK(fabs(c.src[0].peak_jy / 0.2 - 1) < 0.03 && fabs(c.src[1].peak_jy / 0.1 - 1) < 0.05,
              "peaks %.4g %.4g", c.src[0].peak_jy, c.src[1].peak_jy);
    }
    /* The map follows the slope (5 rms across the image): a straight line fitted to it
     * away from the edges has the slope and offset put in, and no point strays by more
     * than the noise of one box's median (each box holds ~120 beams: 0.11 rms). */
    double sx = 0, sy = 0, sxx = 0, sxy = 0, worst = 0;
    int cnt = 0;
    for (int y = 40; y < s.n - 40; y += 4)
        for (int x = 40; x < s.n - 40; x += 4) {
            double b = bkg[(size_t)y * s.n + x];
            sx += x, sy += b, sxx += (double)x * x, sxy += x * b, cnt++;
            worst = fmax(worst, fabs(b - (0.01 + 2e-5 * x)));
        }
    double slope = (cnt * sxy - sx * sy) / (cnt * sxx - sx * sx);
    double level = sy / cnt - (0.01 + 2e-5 * sx / cnt); /* mean map minus mean truth */
    printf("  background: slope %.4g (2e-5), level %+.3f rms, worst %.2f rms\n", slope,
           level / s.rms, worst / s.rms);
    CHECK(fabs(slope / 2e-5 - 1) < 0.1 && fabs(level) < 0.1 * s.rms,
          "background slope %.4g, level off by %.3g", slope, level);
    CHECK(worst < 0.5 * s.rms, "background off by %.3g Jy at worst (rms %.3g)", worst, s.rms);
    CHECK(fabs(rms[(size_t)128 * s.n + 200] / s.rms - 1) < 0.15, "rms map %.4g",
          rms[(size_t)128 * s.n + 200]);
    ct_src_catalog_free(&c);
    free(bkg), free(rms);
    free_sky(&s);
}

static void test_refusals(void)
{
    ct_src_opts o;
    ct_src_opts_default(&o);
    ct_err err;
    o.island_sigma = 6; /* above the seed */
    CHECK(ct_src_opts_check(&o, &err) == CT_EINVAL, "island above seed accepted");
    ct_src_opts_default(&o);
    o.box = 2;
    CHECK(ct_src_opts_check(&o, &err) == CT_EINVAL, "box 2 accepted");
    ct_src_opts_default(&o);
    /* All blank: corrupt input, nothing found. */
    int n = 64;
    float *img = malloc((size_t)n * n * sizeof *img);
    for (int i = 0; i < n * n; i++)
        img[i] = NAN;
    ct_fits_image_desc d = {.nx = n,
                            .ny = n,
                            .ra_deg = 10,
                            .dec_deg = 20,
                            .cdelt_deg = 1.0 / 3600,
                            .freq_hz = 1.4e9,
                            .bandwidth_hz = 1e6};
    ct_src_catalog c;
    CHECK(ct_src_find(img, &d, "SIN", &o, &c, NULL, NULL, &err) == CT_EINVAL &&
              err.category == CT_CAT_CORRUPT_INPUT,
          "blank image: %s", err.msg);
    /* Constant: no noise to measure against. */
    for (int i = 0; i < n * n; i++)
        img[i] = 1;
    CHECK(ct_src_find(img, &d, "SIN", &o, &c, NULL, NULL, &err) == CT_EINVAL,
          "flat image accepted");
    CHECK(ct_src_find(img, &d, "ARC", &o, &c, NULL, NULL, &err) == CT_EINVAL, "ARC accepted");
    free(img);
}

/* n random sources over the sphere (uniform on it), fluxes 1..100 mJy. */
static ct_refsrc *random_sky(size_t n, uint64_t seed)
{
    rng r = {seed};
    ct_refsrc *a = calloc(n, sizeof *a);
    for (size_t i = 0; i < n; i++) {
        a[i].ra_deg = 360 * uniform(&r);
        a[i].dec_deg = asin(2 * uniform(&r) - 1) / DEG;
        a[i].flux_jy = 1e-3 * (1 + 99 * uniform(&r));
    }
    return a;
}

static int by_index(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The cone search against a scan of every source: the same sources, at the equator, at RA
 * 0 (both sides), near and at the poles, for small and large radii. */
static void test_cone_search(void)
{
    size_t n = 200000;
    ct_refsrc *a = random_sky(n, 5);
    ct_refcat *c;
    ct_err err;
    REQUIRE_OK(ct_refcat_from_array(a, n, &c, &err), err);
    const double centres[][3] = {{10, 0, 1},     {0.05, 30, 2},  {359.9, -45, 3}, {180, 89.5, 1},
                                 {45, -89.9, 2}, {200, 90, 0.5}, {90, 60, 10},    {300, -10, 45}};
    for (size_t k = 0; k < sizeof centres / sizeof centres[0]; k++) {
        size_t *idx, m;
        REQUIRE_OK(ct_refcat_cone(c, centres[k][0], centres[k][1], centres[k][2], &idx, &m, &err),
                   err);
        double u[3], w[3];
        ct_radec_to_dir(centres[k][0], centres[k][1], u);
        size_t want = 0;
        for (size_t i = 0; i < ct_refcat_size(c); i++) {
            const ct_refsrc *s = ct_refcat_get(c, i);
            ct_radec_to_dir(s->ra_deg, s->dec_deg, w);
            want += ct_dot3(u, w) >= cos(centres[k][2] * DEG);
        }
        qsort(idx, m, sizeof *idx, by_index);
        bool dup = false;
        for (size_t i = 1; i < m; i++)
            dup |= idx[i] == idx[i - 1];
        CHECK(m == want && !dup, "cone (%g, %g) r %g: %zu found, %zu by scan%s", centres[k][0],
              centres[k][1], centres[k][2], m, want, dup ? ", duplicates" : "");
        free(idx);
    }
    ct_refcat_destroy(c);
    free(a);
}

/* The text and FITS forms, NVSS's columns as VizieR gives them, and refusals. */
static void test_refcat_files(void)
{
    char dir[] = "/tmp/refcat-XXXXXX", path[256];
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/nvss.tsv", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "# VizieR-like NVSS\nRAJ2000\tDEJ2000\tS1.4\te_S1.4\tMajAxis\tNVSS\n"
               "12 30 49.42\t+12 23 28.0\t 220.5\t6.6\t50.0\t123049+122328\n"
               "00 00 01.00\t-00 30 00.0\t3.1\t0.5\t\t000001-003000\n"
               "06 46 19.31\t-22 41 60.0\t2.5\t0.5\t\t064619-224200\n");
    fclose(f);
    ct_refcat *c;
    ct_err err;
    REQUIRE_OK(ct_refcat_open(path, &c, &err), err);
    CHECK(ct_refcat_size(c) == 3, "%zu rows (seconds of 60.0, a rounding, read)",
          ct_refcat_size(c));
    for (size_t i = 0; i < ct_refcat_size(c); i++) {
        const ct_refsrc *s = ct_refcat_get(c, i);
        if (strcmp(s->id, "123049+122328") == 0)
            CHECK(fabs(s->ra_deg - 187.7059167) < 1e-6 && fabs(s->dec_deg - 12.3911111) < 1e-6 &&
                      fabs(s->flux_jy - 0.2205) < 1e-9 && fabs(s->flux_err_jy - 0.0066) < 1e-9 &&
                      s->maj_arcsec == 50,
                  "M87 row: %.7f %.7f %g", s->ra_deg, s->dec_deg, s->flux_jy);
        else if (strcmp(s->id, "064619-224200") == 0)
            CHECK(fabs(s->dec_deg + 22.7) < 1e-9, "-22 41 60.0 is %.9f", s->dec_deg);
        else
            CHECK(strcmp(s->id, "000001-003000") == 0 && fabs(s->dec_deg + 0.5) < 1e-9 &&
                      fabs(s->ra_deg - 15.0 / 3600) < 1e-9,
                  "second row %s %.9f %.9f", s->id, s->ra_deg, s->dec_deg);
    }
    ct_refcat_destroy(c);
    /* Decimal degrees, no names: named by position. */
    snprintf(path, sizeof path, "%s/plain.csv", dir);
    f = fopen(path, "w");
    fprintf(f, "ra_deg,dec_deg,flux_jy\n187.7059167,12.3911111,0.22\n");
    fclose(f);
    REQUIRE_OK(ct_refcat_open(path, &c, &err), err);
    CHECK(strcmp(ct_refcat_get(c, 0)->id, "J123049.42+122328.0") == 0, "named %s",
          ct_refcat_get(c, 0)->id);
    ct_refcat_destroy(c);
    /* Every field quoted, as spreadsheets write CSV. */
    f = fopen(path, "w");
    fprintf(f, "\"id\",\"ra_deg\",\"dec_deg\",\"flux_jy\"\n\"Q1\",\"10.5\",\"-20\",\"0.25\"\n");
    fclose(f);
    REQUIRE_OK(ct_refcat_open(path, &c, &err), err);
    CHECK(strcmp(ct_refcat_get(c, 0)->id, "Q1") == 0 && ct_refcat_get(c, 0)->flux_jy == 0.25 &&
              ct_refcat_get(c, 0)->dec_deg == -20,
          "quoted fields: %s %g", ct_refcat_get(c, 0)->id, ct_refcat_get(c, 0)->flux_jy);
    ct_refcat_destroy(c);
    /* Refusals, with the line. */
    const char *bad[] = {"ra,dec\n1,2\n", "ra,dec,flux_jy\n400,2,1\n", "ra,dec,flux_jy\n1,2,x\n",
                         "ra,dec,flux_jy\n1,2,-1\n", "ra,dec,flux_jy\n1,2\n"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        f = fopen(path, "w");
        fputs(bad[k], f);
        fclose(f);
        CHECK(ct_refcat_open(path, &c, &err) == CT_EINVAL && (k == 0 || strstr(err.msg, "line 2")),
              "bad catalogue %zu: %s", k, err.msg);
    }
    snprintf(path, sizeof path, "%s/none.csv", dir);
    CHECK(ct_refcat_open(path, &c, &err) == CT_ENOTFOUND, "missing: %s", err.msg);
    /* A FITS binary table: RA/Dec as numbers, the name as text, S1.4 in mJy. */
    snprintf(path, sizeof path, "%s/cat.fits", dir);
    fitsfile *ff;
    int st = 0;
    char *ttype[] = {"NVSS", "RAJ2000", "DEJ2000", "S1.4"}, *tform[] = {"14A", "D", "D", "E"};
    char *tunit[] = {"", "deg", "deg", "mJy"};
    fits_create_file(&ff, path, &st);
    fits_create_tbl(ff, BINARY_TBL, 0, 4, ttype, tform, tunit, "NVSS", &st);
    char *names[] = {"A", "B", "C"};
    double ra[] = {10.5, 359.99, 0.01}, de[] = {-20, 45, 45};
    float s14[] = {12.5f, 3.0f, 1000.0f};
    fits_write_col(ff, TSTRING, 1, 1, 1, 3, names, &st);
    fits_write_col(ff, TDOUBLE, 2, 1, 1, 3, ra, &st);
    fits_write_col(ff, TDOUBLE, 3, 1, 1, 3, de, &st);
    fits_write_col(ff, TFLOAT, 4, 1, 1, 3, s14, &st);
    fits_close_file(ff, &st);
    REQUIRE(st == 0, "writing the FITS table: cfitsio %d", st);
    REQUIRE_OK(ct_refcat_open(path, &c, &err), err);
    CHECK(ct_refcat_size(c) == 3, "%zu FITS rows", ct_refcat_size(c));
    size_t *idx, m;
    REQUIRE_OK(ct_refcat_cone(c, 0, 45, 0.05, &idx, &m, &err), err);
    CHECK(m == 2, "the two sources either side of RA 0: %zu", m);
    bool flux_ok = false;
    for (size_t i = 0; i < ct_refcat_size(c); i++)
        flux_ok |= strcmp(ct_refcat_get(c, i)->id, "C") == 0 &&
                   fabs(ct_refcat_get(c, i)->flux_jy - 1.0) < 1e-9;
    CHECK(flux_ok, "S1.4 in mJy read as Jy");
    free(idx);
    ct_refcat_destroy(c);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

/* `test_sources --cone-bench N`: a zone-indexed cone search against a scan of every
 * source, over N random sources, 3 degree cones (bench/README.md, "bench/sources"). */
static int cone_bench(size_t n)
{
    ct_refsrc *a = random_sky(n, 9);
    ct_refcat *c;
    ct_err err;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (ct_refcat_from_array(a, n, &c, &err) != CT_OK)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double build = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    rng r = {3};
    int q = 200;
    size_t found = 0, scanned = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < q; k++) {
        size_t *idx, m;
        ct_refcat_cone(c, 360 * uniform(&r), asin(2 * uniform(&r) - 1) / DEG, 3, &idx, &m, &err);
        found += m;
        free(idx);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double cone = ((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec)) / q;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < 20; k++) {
        double u[3], w[3];
        ct_radec_to_dir(360 * uniform(&r), asin(2 * uniform(&r) - 1) / DEG, u);
        for (size_t i = 0; i < n; i++) {
            ct_radec_to_dir(a[i].ra_deg, a[i].dec_deg, w);
            scanned += ct_dot3(u, w) >= cos(3 * DEG);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double scan = ((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec)) / 20;
    printf("%zu sources: index built in %.3f s; 3-degree cone %.3f ms (%.0f sources each), a "
           "scan %.1f ms (%.0f x)\n",
           n, build, 1e3 * cone, (double)found / q, 1e3 * scan, scan / cone);
    ct_refcat_destroy(c);
    free(a);
    return 0;
}

/* DIR/sky.fits and DIR/truth.csv for the command-line test and the benchmark. */
static int write_sky(const char *dir, int n, int npoint)
{
    sky s;
    make_sky(&s, n, npoint, 0, 42);
    char path[4096];
    snprintf(path, sizeof path, "%s/sky.fits", dir);
    ct_err err;
    if (ct_fits_write_image(path, &s.d, s.img, &err) != CT_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    snprintf(path, sizeof path, "%s/truth.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    fprintf(f, "ra_deg,dec_deg,peak_jy,x,y,snr\n");
    for (int k = 0; k < s.nt; k++)
        fprintf(f, "%.9f,%.9f,%.6g,%.4f,%.4f,%.3f\n", s.t[k].ra, s.t[k].dec, s.t[k].peak, s.t[k].x,
                s.t[k].y, s.t[k].peak / s.rms);
    fclose(f);
    free_sky(&s);
    return 0;
}

/* A night of twelve images of one field (the strip DSA-110 sees again at each transit):
 * DIR/img-K.fits (K = 00..11, 20 minutes apart), the reference catalogue DIR/refcat.csv
 * (its sources at 20 to 200 sigma, at least three beams apart) and the truth DIR/night.csv
 * (each source's name and whether it varies, and each image's flux-scale error). Ten of
 * the sources vary sinusoidally with amplitude 0.3 (modulation index 0.21); every image
 * carries a flux-scale error drawn with a 5 % rms (sources and noise alike, as a gain
 * error would). */
static int write_night(const char *dir, int nimg)
{
    enum { N = 384, NSRC = 90, NVAR = 10 };
    rng r = {2026};
    double beam_px = 5, scale[64];
    truth t[NSRC];
    double phase[NSRC];
    int nt = 0;
    sky base;
    make_sky(&base, N, 0, 0, 1); /* the header */
    ct_imgwcs w;
    ct_err err;
    ct_imgwcs_make(&w, &base.d, "SIN", &err);
    while (nt < NSRC) {
        double x = 14 + uniform(&r) * (N - 29), y = 14 + uniform(&r) * (N - 29);
        bool clear = true;
        for (int j = 0; j < nt && clear; j++)
            clear = hypot(t[j].x - x, t[j].y - y) >= 3 * beam_px;
        if (!clear)
            continue;
        t[nt].x = x, t[nt].y = y;
        t[nt].peak = 1e-3 * (20 + 180 * uniform(&r));
        phase[nt] = 2 * M_PI * uniform(&r);
        double u[3];
        ct_imgwcs_pixel_to_dir(&w, x, y, u);
        ct_dir_to_radec(u, &t[nt].ra, &t[nt].dec);
        nt++;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/refcat.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return 1;
    fprintf(f, "name,ra_deg,dec_deg,flux_jy\n");
    for (int k = 0; k < nt; k++)
        fprintf(f, "SRC%03d,%.9f,%.9f,%.6g\n", k, t[k].ra, t[k].dec, t[k].peak);
    fclose(f);
    snprintf(path, sizeof path, "%s/night.csv", dir);
    f = fopen(path, "w");
    if (!f)
        return 1;
    fprintf(f, "kind,name,value\n");
    for (int k = 0; k < nt; k++)
        fprintf(f, "source,SRC%03d,%d\n", k, k < NVAR);
    for (int i = 0; i < nimg && i < 64; i++) {
        scale[i] = 1 + 0.05 * gauss(&r);
        fprintf(f, "scale,img-%02d,%.6f\n", i, scale[i]);
    }
    fclose(f);
    for (int i = 0; i < nimg && i < 64; i++) {
        sky s;
        make_sky(&s, N, 0, 0, 100 + (uint64_t)i); /* fresh noise */
        char date[32];
        snprintf(date, sizeof date, "2026-12-07T%02d:%02d:00", 2 + i / 3, (i % 3) * 20);
        s.d.date_obs = date;
        for (int k = 0; k < nt; k++) {
            double a = t[k].peak;
            if (k < NVAR)
                a *= 1 + 0.3 * sin(2 * M_PI * i / nimg + phase[k]);
            add_gauss(s.img, N, t[k].x, t[k].y, a, beam_px, 3.5, 30);
        }
        for (size_t p = 0; p < (size_t)N * N; p++)
            s.img[p] = (float)(s.img[p] * scale[i]);
        snprintf(path, sizeof path, "%s/img-%02d.fits", dir, i);
        int rc = ct_fits_write_image(path, &s.d, s.img, &err);
        free_sky(&s);
        if (rc != CT_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    }
    free_sky(&base);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--cone-bench") == 0)
        return cone_bench((size_t)atol(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "--night") == 0)
        return write_night(argv[2], argc >= 4 ? atoi(argv[3]) : 12);
    if (argc >= 3 && strcmp(argv[1], "--write") == 0)
        return write_sky(argv[2], argc >= 4 ? atoi(argv[3]) : 1024,
                         argc >= 5 ? atoi(argv[4]) : 260);
    RUN(test_refusals);
    RUN(test_cone_search);
    RUN(test_refcat_files);
    RUN(test_point_sources);
    RUN(test_resolved);
    RUN(test_blend_and_background);
    return tu_finish();
}
