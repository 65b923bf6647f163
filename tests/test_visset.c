/*
 * test_visset.c -- Stokes I rows phased to a fixed ICRS centre, checked against the model
 * V = S A exp(+2 pi i (u l + v m + w (n - 1))) with (l, m, n) computed here from the
 * sources' and the centre's ICRS positions (tangent-plane direction cosines), not from
 * the apparent-place chain the module and the simulator use; row order, splitting of
 * blt ranges, flags, NaNs and an all-flagged file.
 */
#define _GNU_SOURCE
#include "array.h"
#include "simulate.h"
#include "sky.h"
#include "testutil.h"
#include "uvh5.h"
#include "visset.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double start = 1795341600.0; /* 2026-11-22T10:00:00Z */
static const double dec_pc = 55.0 * M_PI / 180;
enum { NANT = 12, NCHAN = 4, NTIMES = 6 };

/* Shared by the tests: one simulated observation. */
static char dir[64];
static char *paths[16];
static ct_source sources[2];
static ct_vis_centre expected_centre;

static void remove_dir(const char *d)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", d);
}

/* The pointing's ICRS position at mid-observation, computed as the simulator times its
 * integrations: the source at the centre sits there. */
static int simulate(void)
{
    ct_err err;
    snprintf(dir, sizeof dir, "/tmp/contimg-visset-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    ct_site site;
    ct_dsa110_site(&site);
    expected_centre.jd_mid = 2440587.5 + (start + 0.5 * NTIMES * CT_INTEGRATION_SEC) / 86400.0;
    if (ct_hadec_to_icrs(0, dec_pc, expected_centre.jd_mid, 0, &site, &expected_centre.ra_rad,
                         &expected_centre.dec_rad, &err) != CT_OK)
        return -1;
    double ra = expected_centre.ra_rad, dec = expected_centre.dec_rad;
    sources[0] = (ct_source){ra, dec, 1.0, 0.0};
    /* About 1 degree away: 0.6 deg north, 0.8 deg east. */
    sources[1] = (ct_source){ra + 0.8 * M_PI / 180 / cos(dec), dec + 0.6 * M_PI / 180, 2.0, -0.7};
    ct_sim_config c = ct_sim_defaults();
    c.out_dir = dir;
    c.start_unix = start;
    c.dec_rad = dec_pc;
    c.sources = sources;
    c.n_sources = 2;
    c.n_antennas = NANT;
    c.n_channels = NCHAN;
    c.n_times = NTIMES;
    c.uvw_float32 = true; /* the correlator's layout: uvw rounded to float32 */
    if (ct_simulate(&c, paths, &err) != CT_OK) {
        fprintf(stderr, "simulate: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* Direction cosines of (ra, dec) about (ra0, dec0), ICRS, l east, m north. */
static void icrs_lmn(double ra, double dec, double ra0, double dec0, double *l, double *m,
                     double *n)
{
    double da = ra - ra0;
    *l = cos(dec) * sin(da);
    *m = sin(dec) * cos(dec0) - cos(dec) * sin(dec0) * cos(da);
    *n = sin(dec) * sin(dec0) + cos(dec) * cos(dec0) * cos(da);
}

static double angle_between(double ra1, double dec1, double ra2, double dec2)
{
    double l, m, n;
    icrs_lmn(ra1, dec1, ra2, dec2, &l, &m, &n);
    return atan2(sqrt(l * l + m * m), n);
}

/*
 * Every row of two subbands (top and bottom of the band) against the model. The beam
 * attenuation A is the simulator's own (the Airy power at the source's apparent offset
 * from the pointing at the row's time): the phases, which this module is about, are
 * computed independently.
 */
static void test_model(void)
{
    ct_err err;
    ct_site site;
    ct_dsa110_site(&site);
    for (int which = 0; which < 2; which++) {
        const char *path = paths[which == 0 ? 0 : 15];
        ct_uvh5_file *f = NULL;
        REQUIRE_OK(ct_uvh5_open(path, &f, &err), err);
        const ct_uvh5_header *h = ct_uvh5_header_get(f);
        ct_vis_centre c;
        CHECK_OK(ct_vis_centre_of(h, &c, &err), err);
        double off =
            angle_between(c.ra_rad, c.dec_rad, expected_centre.ra_rad, expected_centre.dec_rad);
        CHECK(off < 1e-9 && fabs(c.jd_mid - expected_centre.jd_mid) < 1e-8,
              "centre off by %.3g rad, jd %.9f vs %.9f", off, c.jd_mid, expected_centre.jd_mid);
        ct_visset v;
        CHECK_OK(ct_visset_read(f, 0, (size_t)-1, &c, 0, &v, &err), err);
        size_t ncross = NANT * (NANT - 1) / 2;
        CHECK(v.n == ncross * NTIMES * NCHAN, "rows %zu", v.n);
        CHECK(v.n_autos_dropped == NANT * NTIMES * NCHAN, "autos %zu", v.n_autos_dropped);
        CHECK(v.n_flagged == 0 && v.n_nonfinite == 0, "dropped %zu %zu", v.n_flagged,
              v.n_nonfinite);
        CHECK(v.freq_min_hz == h->freq_array[0] && v.freq_max_hz == h->freq_array[NCHAN - 1],
              "freq range");
        CHECK(fabs(v.bandwidth_hz - NCHAN * CT_SB_CHANNEL_WIDTH_HZ) < 1e-6, "bandwidth %g",
              v.bandwidth_hz);
        if (v.n != ncross * NTIMES * NCHAN) {
            ct_visset_free(&v);
            ct_uvh5_close(f, NULL);
            continue;
        }
        double max_err = 0, max_len = 0, max_scale = 0, max_w = 0;
        int bad_meta = 0;
        size_t r = 0;
        for (size_t blt = 0; blt < (size_t)h->Nblts; blt++) {
            if (h->ant_1_array[blt] == h->ant_2_array[blt])
                continue;
            double t = h->time_array[blt];
            double lmn[2][3], lmn_app[2][3];
            for (int s = 0; s < 2; s++) {
                icrs_lmn(sources[s].ra_rad, sources[s].dec_rad, c.ra_rad, c.dec_rad, &lmn[s][0],
                         &lmn[s][1], &lmn[s][2]);
                double ha, dec;
                ct_icrs_to_hadec(sources[s].ra_rad, sources[s].dec_rad, t, 0, &site, &ha, &dec,
                                 NULL);
                ct_lmn(ha, dec, dec_pc, &lmn_app[s][0], &lmn_app[s][1], &lmn_app[s][2]);
            }
            const double *uo = &h->uvw_array[3 * blt];
            double len_m = sqrt(uo[0] * uo[0] + uo[1] * uo[1] + uo[2] * uo[2]);
            for (int ch = 0; ch < NCHAN; ch++, r++) {
                double fr = h->freq_array[ch];
                double uvw[3];
                ct_visset_uvw(&v, r, uvw);
                if (v.chan[r] != ch || v.blt_start + v.blt[r] != blt || v.weight[r] != 2.0)
                    bad_meta++;
                double complex model = 0;
                for (int s = 0; s < 2; s++) {
                    double sin_t =
                        sqrt(lmn_app[s][0] * lmn_app[s][0] + lmn_app[s][1] * lmn_app[s][1]);
                    double amp = sources[s].flux_jy *
                                 pow(fr / CT_REFERENCE_FREQ_HZ, sources[s].spectral_index) *
                                 ct_airy_power(sin_t, fr, CT_DSA110_DISH_M);
                    double ph =
                        2 * M_PI *
                        (uvw[0] * lmn[s][0] + uvw[1] * lmn[s][1] + uvw[2] * (lmn[s][2] - 1));
                    model += amp * cexp(I * ph);
                }
                double e = cabs(v.vis[r] - model);
                max_err = fmax(max_err, e);
                double len = len_m * fr / CT_SPEED_OF_LIGHT;
                double len_new = sqrt(uvw[0] * uvw[0] + uvw[1] * uvw[1] + uvw[2] * uvw[2]);
                max_len = fmax(max_len, len);
                /* A rotation and the aberration's ~1e-4 scale of u and v: lengths agree. */
                max_scale = fmax(max_scale, fabs(len_new / len - 1));
                max_w = fmax(max_w, fabs(uvw[2]));
            }
        }
        printf("  %s: %zu rows, max |V - model| %.3g Jy (3 Jy total), longest baseline %.0f "
               "wavelengths, max |w| %.0f, max length change %.2g\n",
               which == 0 ? "sb00" : "sb15", v.n, max_err, max_len, max_w, max_scale);
        CHECK(bad_meta == 0, "%d rows with a wrong channel, baseline-time or weight", bad_meta);
        /* Tolerance: float32 data (6e-8 of 3 Jy; float32 uvw add ~1e-5 cycle) and what
         * visset.h leaves of aberration,
         * its second-order term 2 pi |b| theta^2 |beta| = 2 pi 9600 (0.0175)^2 1e-4 =
         * 1.8e-3 rad on the off-centre source's S A < 1.4 Jy: 2.5e-3 Jy; 3e-3 Jy allowed
         * (measured: 4e-8 Jy with the centre source alone, 7e-4 Jy with both).
         * Without the aberration scale of u and v the error is 0.05 Jy; with the opposite
         * phase-rotation sign, 4.6 Jy. */
        CHECK(max_err < 3e-3, "max |V - model| = %.3g Jy", max_err);
        CHECK(max_scale < 2e-4, "uvw length changed by %.3g", max_scale);
        ct_visset_free(&v);
        CHECK_OK(ct_uvh5_close(f, &err), err);
    }
}

/* Row ra of a and rb of b: the same place (file baseline-time, channel, uvw bit for bit). */
static int same_place(const ct_visset *a, size_t ra, const ct_visset *b, size_t rb)
{
    double ua[3], ub[3];
    ct_visset_uvw(a, ra, ua);
    ct_visset_uvw(b, rb, ub);
    return memcmp(ua, ub, sizeof ua) == 0 && a->chan[ra] == b->chan[rb] &&
           a->blt_start + a->blt[ra] == b->blt_start + b->blt[rb];
}

static int same_rows(const ct_visset *a, size_t ra, const ct_visset *b, size_t rb, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!same_place(a, ra + k, b, rb + k))
            return 0;
    return memcmp(&a->vis[ra], &b->vis[rb], n * sizeof *a->vis) == 0 &&
           memcmp(&a->weight[ra], &b->weight[rb], n * sizeof *a->weight) == 0;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Reading consecutive ranges gives the rows of the whole, bit for bit, in order; ranges
 * cross the reader's chunk boundary (256 blts; the file has 468). */
static void test_split(void)
{
    ct_err err;
    ct_uvh5_file *f = NULL;
    REQUIRE_OK(ct_uvh5_open(paths[3], &f, &err), err);
    const ct_uvh5_header *h = ct_uvh5_header_get(f);
    size_t nblt = (size_t)h->Nblts;
    CHECK(nblt > CT_VISSET_CHUNK_BLTS, "the file should span more than one chunk");
    ct_vis_centre c;
    CHECK_OK(ct_vis_centre_of(h, &c, &err), err);
    ct_visset all;
    CHECK_OK(ct_visset_read(f, 0, (size_t)-1, &c, 0, &all, &err), err);
    size_t cuts[][4] = {{0, 100, nblt, 0}, {0, 1, 300, nblt}, {0, 257, nblt, 0}};
    for (int k = 0; k < 3; k++) {
        size_t row = 0;
        int ok = 1;
        for (int p = 0; p < 3 && cuts[k][p + 1] != 0; p++) {
            ct_visset part;
            size_t n = cuts[k][p + 1] - cuts[k][p];
            /* The last part also by "to the end". */
            if (cuts[k][p + 1] == nblt && p > 0)
                n = (size_t)-1;
            CHECK_OK(ct_visset_read(f, cuts[k][p], n, &c, 0, &part, &err), err);
            if (row + part.n > all.n || (part.n && !same_rows(&all, row, &part, 0, part.n)))
                ok = 0;
            row += part.n;
            ct_visset_free(&part);
        }
        CHECK(ok && row == all.n, "split %d: rows differ (%zu of %zu)", k, row, all.n);
    }
    /* A uv cut at the median length: the rows at or above it, in order and
     * bit for bit; every other row counted as cut. */
    {
        double *len = malloc((all.n + 1) * sizeof *len);
        REQUIRE(len, "out of memory");
        for (size_t k = 0; k < all.n; k++) {
            double uvw[3];
            ct_visset_uvw(&all, k, uvw);
            len[k] = sqrt(uvw[0] * uvw[0] + uvw[1] * uvw[1]);
        }
        double *sorted = malloc((all.n + 1) * sizeof *sorted);
        REQUIRE(sorted, "out of memory");
        memcpy(sorted, len, all.n * sizeof *len);
        qsort(sorted, all.n, sizeof *sorted, cmp_double);
        const double cut = sorted[all.n / 2];
        free(sorted);
        ct_visset cv;
        CHECK_OK(ct_visset_read(f, 0, (size_t)-1, &c, cut, &cv, &err), err);
        size_t m = 0, bad = 0;
        for (size_t k = 0; k < all.n; k++) {
            if (len[k] < cut)
                continue;
            if (m >= cv.n || !same_rows(&all, k, &cv, m, 1))
                bad++;
            m++;
        }
        CHECK(cut > 0 && m == cv.n && bad == 0 && cv.n_uv_cut == all.n - m && cv.n < all.n,
              "uv cut %g: %zu rows (want %zu), %zu differ, %zu cut", cut, cv.n, m, bad,
              cv.n_uv_cut);
        ct_visset_free(&cv);
        free(len);
        CHECK(ct_visset_read(f, 0, (size_t)-1, &c, -1, &cv, &err) == CT_EINVAL,
              "negative uv cut refused");
    }
    /* Empty range, a range past the end. */
    ct_visset e;
    CHECK_OK(ct_visset_read(f, nblt, 0, &c, 0, &e, &err), err);
    CHECK(e.n == 0, "empty range");
    ct_visset_free(&e);
    CHECK(ct_visset_read(f, 10, nblt, &c, 0, &e, &err) == CT_EINVAL, "range past the end");
    CHECK(ct_visset_read(f, nblt + 1, (size_t)-1, &c, 0, &e, &err) == CT_EINVAL, "start past end");
    /* A header without phase_center_dec has no centre. */
    ct_uvh5_header bare = *h;
    bare.n_extra = 0;
    bare.extra = NULL;
    CHECK(ct_vis_centre_of(&bare, &c, &err) == CT_EINVAL, "no phase_center_dec");
    ct_visset_free(&all);
    ct_uvh5_close(f, NULL);
}

typedef void (*edit_fn)(const ct_uvh5_header *h, float *vis, bool *flags, float *ns);

/* Copies src to dst, data edited on the way. */
static int copy_edited(const char *src, const char *dst, edit_fn edit)
{
    ct_err err;
    ct_uvh5_file *in = NULL, *out = NULL;
    if (ct_uvh5_open(src, &in, &err) != CT_OK)
        return -1;
    const ct_uvh5_header *h = ct_uvh5_header_get(in);
    size_t n = (size_t)h->Nblts * h->Nfreqs * h->Npols;
    float *vis = malloc(2 * n * sizeof *vis), *ns = malloc(n * sizeof *ns);
    bool *flags = malloc(n * sizeof *flags);
    ct_uvh5_write_opts layout = ct_uvh5_layout(in);
    int rc = -1;
    if (vis && ns && flags &&
        ct_uvh5_read_blts(in, 0, (size_t)h->Nblts, vis, flags, ns, &err) == CT_OK) {
        edit(h, vis, flags, ns);
        if (ct_uvh5_create(dst, h, &layout, &out, &err) == CT_OK &&
            ct_uvh5_write_blts(out, 0, (size_t)h->Nblts, vis, flags, ns, &err) == CT_OK) {
            rc = ct_uvh5_close(out, &err) == CT_OK ? 0 : -1;
            out = NULL;
        }
    }
    if (rc != 0)
        fprintf(stderr, "copy %s: %s\n", src, err.msg);
    ct_uvh5_abort(out);
    ct_uvh5_close(in, NULL);
    free(vis);
    free(ns);
    free(flags);
    return rc;
}

/* Sample index of (blt, channel, pol) in a [blt][freq][pol] buffer. */
static size_t at(const ct_uvh5_header *h, size_t blt, size_t ch, size_t pol)
{
    return (blt * (size_t)h->Nfreqs + ch) * (size_t)h->Npols + pol;
}

/* blts 1, 2, 3 are the cross-correlations of the first antenna (blt 0 is its auto). */
static void edit_some(const ct_uvh5_header *h, float *vis, bool *flags, float *ns)
{
    flags[at(h, 1, 0, 0)] = true;                         /* XX flagged: row from YY */
    flags[at(h, 1, 1, 0)] = flags[at(h, 1, 1, 1)] = true; /* both: row dropped */
    vis[2 * at(h, 2, 0, 1)] = NAN;                        /* YY NaN: row from XX */
    vis[2 * at(h, 2, 2, 0) + 1] = INFINITY;               /* XX Inf and ... */
    ns[at(h, 2, 2, 1)] = NAN;                             /* ... YY nsamples NaN: dropped */
    ns[at(h, 3, 3, 0)] = 0;                               /* XX nsamples 0: row from YY */
    ns[at(h, 3, 3, 1)] = 3;                               /* weighing 3 */
    ns[at(h, 3, 1, 0)] = 2;                               /* both: 4 / (1/2 + 1/1) */
}

static void edit_all(const ct_uvh5_header *h, float *vis, bool *flags, float *ns)
{
    (void)vis;
    (void)ns;
    memset(flags, 1, (size_t)h->Nblts * h->Nfreqs * h->Npols * sizeof *flags);
}

static void test_flags(void)
{
    ct_err err;
    char p_some[128], p_all[128];
    snprintf(p_some, sizeof p_some, "%s/some.hdf5", dir);
    snprintf(p_all, sizeof p_all, "%s/all.hdf5", dir);
    REQUIRE(copy_edited(paths[5], p_some, edit_some) == 0, "copy");
    REQUIRE(copy_edited(paths[5], p_all, edit_all) == 0, "copy");

    ct_uvh5_file *f0 = NULL, *f1 = NULL, *f2 = NULL;
    REQUIRE_OK(ct_uvh5_open(paths[5], &f0, &err), err);
    REQUIRE_OK(ct_uvh5_open(p_some, &f1, &err), err);
    REQUIRE_OK(ct_uvh5_open(p_all, &f2, &err), err);
    ct_vis_centre c;
    CHECK_OK(ct_vis_centre_of(ct_uvh5_header_get(f0), &c, &err), err);
    ct_visset v0, v1, v2;
    CHECK_OK(ct_visset_read(f0, 0, (size_t)-1, &c, 0, &v0, &err), err);
    CHECK_OK(ct_visset_read(f1, 0, (size_t)-1, &c, 0, &v1, &err), err);
    CHECK_OK(ct_visset_read(f2, 0, (size_t)-1, &c, 0, &v2, &err), err);

    CHECK(v1.n == v0.n - 2, "rows %zu, expected %zu", v1.n, v0.n - 2);
    CHECK(v1.n_flagged == 4 && v1.n_nonfinite == 3, "flagged %zu (4), non-finite %zu (3)",
          v1.n_flagged, v1.n_nonfinite);
    if (v1.n == v0.n - 2) {
        /* Rows of blt 1 start at 0 (blt 0 is an auto): original rows 0..11 are blts
         * 1..3 x 4 channels; rows 1 (blt 1 ch 1) and 6 (blt 2 ch 2) are gone. */
        size_t map[10] = {0, 2, 3, 4, 5, 7, 8, 9, 10, 11};
        double want_w[10] = {1, 2, 2, 1, 2, 2, 2, 8.0 / 3, 2, 3};
        int ok = 1;
        for (int k = 0; k < 10; k++) {
            /* The simulator's XX and YY are equal (unit gains, no noise), so one pol gives
             * the same Stokes I, bit for bit. */
            if (!same_place(&v0, map[k], &v1, (size_t)k) || v1.vis[k] != v0.vis[map[k]] ||
                v1.weight[k] != (float)want_w[k]) {
                fprintf(stderr, "row %d: weight %g (want %g)\n", k, v1.weight[k], want_w[k]);
                ok = 0;
            }
        }
        CHECK(ok, "edited rows");
        CHECK(same_rows(&v0, 12, &v1, 10, v1.n - 10), "untouched rows equal");
    }
    size_t ncross_samples = (size_t)NANT * (NANT - 1) / 2 * NTIMES * NCHAN * 2;
    CHECK(v2.n == 0 && v2.vis == NULL && v2.n_flagged == ncross_samples,
          "all flagged: %zu rows, %zu flagged of %zu", v2.n, v2.n_flagged, ncross_samples);
    CHECK(v2.bandwidth_hz > 0, "frequencies are reported without data");
    ct_visset_free(&v0);
    ct_visset_free(&v1);
    ct_visset_free(&v2);
    ct_uvh5_close(f0, NULL);
    ct_uvh5_close(f1, NULL);
    ct_uvh5_close(f2, NULL);
}

int main(void)
{
    if (simulate() != 0) {
        fprintf(stderr, "simulation failed\n");
        if (dir[0])
            remove_dir(dir);
        return 1;
    }
    RUN(test_model);
    RUN(test_split);
    RUN(test_flags);
    for (int k = 0; k < 16; k++)
        free(paths[k]);
    remove_dir(dir);
    return tu_finish();
}
