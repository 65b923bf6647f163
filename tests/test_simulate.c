/*
 * test_simulate.c -- the simulated observation, read back through the UVH5
 * reader and checked against what a point source must look like, with the
 * expectation computed from the file's own uvw, times and frequencies.
 */
#define _GNU_SOURCE
#include "array.h"
#include "simulate.h"
#include "sky.h"
#include "testutil.h"
#include "uvh5.h"

#include <complex.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const double start = 1795341600.0; /* 2026-11-22T10:00:00Z */

static void make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/contimg-sim-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
}

static void remove_dir(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

/* Reads all data of one file: vis (complex, [blt][freq][pol]). */
static double complex *read_all(const char *path, const ct_uvh5_header **h, ct_uvh5_file **f)
{
    ct_err err;
    if (ct_uvh5_open(path, f, &err) != CT_OK) {
        fprintf(stderr, "open %s: %s\n", path, err.msg);
        return NULL;
    }
    *h = ct_uvh5_header_get(*f);
    size_t n = (size_t)(*h)->Nblts * (*h)->Nfreqs * (*h)->Npols;
    float *raw = malloc(2 * n * sizeof *raw);
    double complex *vis = malloc(n * sizeof *vis);
    if (ct_uvh5_read_blts(*f, 0, (size_t)(*h)->Nblts, raw, NULL, NULL, &err) != CT_OK) {
        fprintf(stderr, "read %s: %s\n", path, err.msg);
        free(raw);
        free(vis);
        return NULL;
    }
    for (size_t k = 0; k < n; k++)
        vis[k] = raw[2 * k] + I * raw[2 * k + 1];
    free(raw);
    return vis;
}

static ct_sim_config small(const char *dir)
{
    ct_sim_config c = ct_sim_defaults();
    c.out_dir = dir;
    c.start_unix = start;
    c.dec_rad = 55.0 * M_PI / 180;
    c.n_antennas = 7;
    c.n_channels = 4;
    c.n_times = 3;
    return c;
}

static void test_files_and_band_layout(void)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    ct_sim_config c = small(dir);
    char *paths[16];
    ct_err err;
    REQUIRE_OK(ct_simulate(&c, paths, &err), err);
    int n_files = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n_files += e->d_name[0] != '.';
    closedir(d);
    CHECK(n_files == 16, "exactly 16 files, nothing _incomplete or temporary left (%d)", n_files);
    double prev_low = INFINITY;
    for (int sb = 0; sb < 16; sb++) {
        char expect[128];
        snprintf(expect, sizeof expect, "%s/2026-11-22T10:00:00_sb%02d.hdf5", dir, sb);
        CHECK(strcmp(paths[sb], expect) == 0, "name %s", paths[sb]);
        ct_uvh5_file *f = NULL;
        const ct_uvh5_header *h = NULL;
        double complex *vis = read_all(paths[sb], &h, &f);
        REQUIRE(vis != NULL, "readable");
        CHECK(h->Nants_data == 7 && h->Nants_telescope == 117 && h->Nbls == 28 && h->Ntimes == 3 &&
                  h->Nblts == 84 && h->Nfreqs == 4 && h->Npols == 2,
              "shape of sb%02d", sb);
        CHECK(h->polarization_array[0] == -5 && h->polarization_array[1] == -6, "XX, YY");
        CHECK(strcmp(h->telescope_name, "OVRO_MMA") == 0 && strcmp(h->instrument, "DSA") == 0,
              "telescope and instrument");
        const ct_uvh5_keyword *k = ct_uvh5_keyword_find(h, "phase_center_dec");
        CHECK(k && fabs(k->value - c.dec_rad) < 1e-12, "phase_center_dec in radians");
        k = ct_uvh5_keyword_find(h, "phase_center_epoch");
        CHECK(k && k->is_string && strcmp(k->str, "HADEC") == 0, "phase_center_epoch HADEC");
        /* Channels ascend within a file; subbands descend; no gaps. */
        for (int ch = 1; ch < 4; ch++)
            CHECK(h->freq_array[ch] - h->freq_array[ch - 1] == CT_SB_CHANNEL_WIDTH_HZ,
                  "ascending channels");
        double high = h->freq_array[3] + CT_SB_CHANNEL_WIDTH_HZ / 2;
        if (sb == 0)
            CHECK(high == 1498.75e6, "band top 1498.75 MHz (%.0f)", high);
        else
            CHECK(high == prev_low, "sb%02d meets sb%02d", sb, sb - 1);
        prev_low = h->freq_array[0] - CT_SB_CHANNEL_WIDTH_HZ / 2;
        CHECK(fabs(h->time_array[0] - (2440587.5 + (start + 0.5 * CT_INTEGRATION_SEC) / 86400)) <
                  1e-9,
              "first time is the middle of the first integration");
        for (int b = 0; b < h->Nblts; b++)
            CHECK(h->ant_1_array[b] <= h->ant_2_array[b], "ant_1 <= ant_2");
        free(vis);
        ct_uvh5_close(f, &err);
        free(paths[sb]);
    }
    CHECK(fabs(prev_low - (1498.75e6 - 64 * CT_SB_CHANNEL_WIDTH_HZ)) < 1e-3, "16 x 4 channels");
    remove_dir(dir);
}

/* A source off the phase centre: V = S A exp(2 pi i f/c (u l + v m + w (n-1))),
 * with uvw, time and frequency taken from the file. */
static void test_offset_source_phase(void)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    ct_sim_config c = small(dir);
    c.n_antennas = 12;
    c.sefd_jy = 0;
    ct_site site;
    ct_dsa110_site(&site);
    double mid_jd = 2440587.5 + (start + 1.5 * CT_INTEGRATION_SEC) / 86400;
    ct_source src[2];
    ct_err err;
    /* 0.8 deg east and 0.5 deg north of the centre at mid-observation. */
    REQUIRE_OK(ct_hadec_to_icrs(-0.8 * M_PI / 180, c.dec_rad + 0.5 * M_PI / 180, mid_jd, 0, &site,
                                &src[0].ra_rad, &src[0].dec_rad, &err),
               err);
    src[0].flux_jy = 3.0;
    src[0].spectral_index = -0.7;
    c.sources = src;
    c.n_sources = 1;
    char *paths[16];
    REQUIRE_OK(ct_simulate(&c, paths, &err), err);
    double worst_phase = 0, worst_amp = 0;
    int checked = 0;
    for (int sb = 0; sb < 16; sb += 5) {
        ct_uvh5_file *f = NULL;
        const ct_uvh5_header *h = NULL;
        double complex *vis = read_all(paths[sb], &h, &f);
        REQUIRE(vis != NULL, "readable");
        for (int b = 0; b < h->Nblts; b++) {
            if (h->ant_1_array[b] == h->ant_2_array[b])
                continue;
            double ha, dec, l, m, n;
            REQUIRE_OK(ct_icrs_to_hadec(src[0].ra_rad, src[0].dec_rad, h->time_array[b], 0, &site,
                                        &ha, &dec, &err),
                       err);
            ct_lmn(ha, dec, c.dec_rad, &l, &m, &n);
            const double *uvw = &h->uvw_array[3 * b];
            for (int ch = 0; ch < h->Nfreqs; ch++) {
                double fr = h->freq_array[ch];
                double amp = 3.0 * pow(fr / 1.4e9, -0.7) *
                             ct_airy_power(sqrt(l * l + m * m), fr, CT_DSA110_DISH_M);
                double phase = 2 * M_PI * fr / CT_SPEED_OF_LIGHT *
                               (uvw[0] * l + uvw[1] * m + uvw[2] * (n - 1));
                for (int p = 0; p < 2; p++) {
                    double complex v = vis[((size_t)b * h->Nfreqs + ch) * 2 + p];
                    double dphi = carg(v * cexp(-I * phase));
                    worst_phase = fmax(worst_phase, fabs(dphi));
                    worst_amp = fmax(worst_amp, fabs(cabs(v) - amp) / amp);
                    checked++;
                }
            }
        }
        free(vis);
        ct_uvh5_close(f, &err);
    }
    for (int sb = 0; sb < 16; sb++)
        free(paths[sb]);
    /* uvw is stored float64 by default; float32 (the correlator's) would
     * still keep the phase within a few milliradians at these offsets. */
    CHECK(checked > 1000, "%d samples", checked);
    CHECK(worst_phase < 2e-3, "phase matches 2 pi (ul + vm + w(n-1)) (worst %.2e rad)",
          worst_phase);
    CHECK(worst_amp < 1e-5, "amplitude S (nu/1.4)^alpha A(theta) (worst rel %.2e)", worst_amp);
    remove_dir(dir);
}

/* Noise: deterministic for a seed, of the requested size. Gains: closure
 * phases of a point source at the centre stay zero. */
static void test_noise_and_gains(void)
{
    char d1[64], d2[64], d3[64];
    make_dir(d1, sizeof d1);
    make_dir(d2, sizeof d2);
    make_dir(d3, sizeof d3);
    ct_sim_config c = small(d1);
    c.n_antennas = 10;
    c.noise_jy = 0.5;
    c.seed = 42;
    ct_source none = {0, -M_PI / 2, 0.0, 0}; /* zero flux: noise only */
    c.sources = &none;
    c.n_sources = 1;
    c.sefd_jy = 0;
    char *p1[16], *p2[16], *p3[16];
    ct_err err;
    REQUIRE_OK(ct_simulate(&c, p1, &err), err);
    c.out_dir = d2;
    REQUIRE_OK(ct_simulate(&c, p2, &err), err);
    c.out_dir = d3;
    c.seed = 43;
    REQUIRE_OK(ct_simulate(&c, p3, &err), err);
    bool same = true, differs = false;
    double sum2 = 0;
    long count = 0;
    for (int sb = 0; sb < 16; sb++) {
        ct_uvh5_file *f1, *f2, *f3;
        const ct_uvh5_header *h1, *h2, *h3;
        double complex *a = read_all(p1[sb], &h1, &f1), *b = read_all(p2[sb], &h2, &f2),
                       *x = read_all(p3[sb], &h3, &f3);
        REQUIRE(a && b && x, "readable");
        size_t n = (size_t)h1->Nblts * h1->Nfreqs * h1->Npols;
        for (size_t k = 0; k < n; k++) {
            same &= a[k] == b[k];
            differs |= a[k] != x[k];
            size_t blt = k / ((size_t)h1->Nfreqs * h1->Npols);
            if (h1->ant_1_array[blt] != h1->ant_2_array[blt]) {
                sum2 += creal(a[k]) * creal(a[k]) + cimag(a[k]) * cimag(a[k]);
                count += 2;
            }
        }
        free(a);
        free(b);
        free(x);
        ct_uvh5_close(f1, &err);
        ct_uvh5_close(f2, &err);
        ct_uvh5_close(f3, &err);
        free(p1[sb]);
        free(p2[sb]);
        free(p3[sb]);
    }
    CHECK(same, "same seed, same data");
    CHECK(differs, "another seed, other data");
    double sigma = sqrt(sum2 / (double)count);
    CHECK(fabs(sigma - 0.5) < 0.02, "noise sigma %.4f (0.5 requested, %ld samples)", sigma, count);

    /* Gains on, no noise, a source at the centre at mid-observation. */
    ct_sim_config g = small(d1);
    g.n_antennas = 9;
    g.gains_seed = 7;
    g.sefd_jy = 0;
    ct_site site;
    ct_dsa110_site(&site);
    ct_source src = {0, 0, 5.0, 0};
    double mid_jd = 2440587.5 + (start + 1.5 * CT_INTEGRATION_SEC) / 86400;
    REQUIRE_OK(ct_hadec_to_icrs(0, g.dec_rad, mid_jd, 0, &site, &src.ra_rad, &src.dec_rad, &err),
               err);
    g.sources = &src;
    g.n_sources = 1;
    char *pg[16];
    remove_dir(d1);
    make_dir(d1, sizeof d1);
    g.out_dir = d1;
    REQUIRE_OK(ct_simulate(&g, pg, &err), err);
    ct_uvh5_file *f;
    const ct_uvh5_header *h;
    double complex *v = read_all(pg[3], &h, &f);
    REQUIRE(v != NULL, "readable");
    int nb = h->Nbls, na = 9;
    double worst_closure = 0, largest_phase = 0;
    /* The middle time's baselines, channel 0, XX: (i, j), i <= j, over the
     * 9 antennas in ascending order. */
    double complex vis9[9][9] = {{0}};
    int b = nb;
    for (int i = 0; i < na; i++)
        for (int j = i; j < na; j++, b++)
            vis9[i][j] = v[(size_t)b * h->Nfreqs * 2];
    for (int i = 0; i < na; i++) {
        for (int j = i + 1; j < na; j++) {
            largest_phase = fmax(largest_phase, fabs(carg(vis9[i][j])));
            for (int k = j + 1; k < na; k++) {
                double closure = carg(vis9[i][j] * vis9[j][k] * conj(vis9[i][k]));
                worst_closure = fmax(worst_closure, fabs(closure));
            }
        }
    }
    CHECK(largest_phase > 0.5, "gains change the phases (largest %.3f rad)", largest_phase);
    CHECK(worst_closure < 1e-5, "closure phases stay zero (worst %.2e rad)", worst_closure);
    free(v);
    ct_uvh5_close(f, &err);
    for (int sb = 0; sb < 16; sb++)
        free(pg[sb]);
    remove_dir(d1);
    remove_dir(d2);
    remove_dir(d3);
}

static void test_uvw_precision_on_disk(void)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    ct_sim_config c = small(dir);
    char *paths[16];
    ct_err err;
    for (int f32 = 0; f32 < 2; f32++) {
        c.uvw_float32 = f32;
        REQUIRE_OK(ct_simulate(&c, paths, &err), err);
        ct_uvh5_file *f = NULL;
        REQUIRE_OK(ct_uvh5_open(paths[0], &f, &err), err);
        ct_uvh5_write_opts layout = ct_uvh5_layout(f);
        CHECK(layout.shape_4d, "the correlator's 4-D data shape");
        CHECK(layout.uvw_float32 == (f32 == 1), "uvw stored as float%d", f32 ? 32 : 64);
        ct_uvh5_close(f, &err);
        for (int sb = 0; sb < 16; sb++)
            free(paths[sb]);
    }
    remove_dir(dir);
}

static void test_flags(void)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    ct_sim_config c = small(dir);
    c.n_antennas = 10;
    c.flag_fraction = 0.2;
    char *paths[16];
    ct_err err;
    REQUIRE_OK(ct_simulate(&c, paths, &err), err);
    long flagged = 0, total = 0;
    for (int sb = 0; sb < 16; sb++) {
        ct_uvh5_file *f = NULL;
        REQUIRE_OK(ct_uvh5_open(paths[sb], &f, &err), err);
        const ct_uvh5_header *h = ct_uvh5_header_get(f);
        size_t n = (size_t)h->Nblts * h->Nfreqs * h->Npols;
        bool *flags = malloc(n * sizeof *flags);
        CHECK_OK(ct_uvh5_read_blts(f, 0, (size_t)h->Nblts, NULL, flags, NULL, &err), err);
        for (size_t k = 0; k < n; k++)
            flagged += flags[k];
        total += (long)n;
        free(flags);
        ct_uvh5_close(f, &err);
        free(paths[sb]);
    }
    double frac = (double)flagged / (double)total;
    /* 16 x 165 x 4 x 2 = 21120 samples: 3 sigma of a binomial is 0.008. */
    CHECK(fabs(frac - 0.2) < 0.01, "flagged fraction %.4f of %ld (0.2 requested)", frac, total);
    remove_dir(dir);
    c.flag_fraction = 1.5;
    CHECK(ct_simulate(&c, NULL, &err) == CT_EINVAL, "fraction above 1 refused");
}

/* Interference: the same observation with and without --rfi-seed differs
 * exactly where ct_sim_rfi's truth mask says and by what it says, the dead
 * antenna's data are zero, and each kind of interference is there. */
static void test_rfi(void)
{
    char d1[64], d2[64];
    make_dir(d1, sizeof d1);
    make_dir(d2, sizeof d2);
    ct_sim_config c = small(d1);
    c.n_antennas = 10;
    c.n_channels = 8;
    c.n_times = 6;
    c.noise_jy = 1.0;
    c.seed = 5;
    ct_sim_config r = c;
    r.out_dir = d2;
    r.rfi_seed = 3;
    char *pc[16], *pr[16];
    ct_err err;
    REQUIRE_OK(ct_simulate(&c, pc, &err), err);
    REQUIRE_OK(ct_simulate(&r, pr, &err), err);
    const int dead = ct_sim_rfi_dead_station(&r);
    CHECK(dead >= 0 && ct_sim_rfi_dead_station(&c) == -1, "a dead antenna (%d) with the seed only",
          dead);
    long masked = 0, total = 0, wrong = 0, dead_samples = 0, nb_channels = 0, spikes = 0;
    bool burst_time[64] = {false};
    for (int sb = 0; sb < 16; sb++) {
        ct_uvh5_file *fc = NULL, *fr = NULL;
        const ct_uvh5_header *hc = NULL, *hr = NULL;
        double complex *vc = read_all(pc[sb], &hc, &fc), *vr = read_all(pr[sb], &hr, &fr);
        REQUIRE(vc && vr, "subband %d readable", sb);
        for (int c_ = 0; c_ < hr->Nfreqs; c_++) {
            /* A transmitter's channel: every sample of a live cross-correlation in it. */
            bool all = true;
            for (int blt = 0; blt < hr->Nblts && all; blt++) {
                double complex add;
                bool is_dead;
                const int a1 = hr->ant_1_array[blt], a2 = hr->ant_2_array[blt];
                if (a1 != dead && a2 != dead)
                    all = ct_sim_rfi(&r, dead, sb, blt / hr->Nbls, a1, a2, c_, 0, &add, &is_dead);
            }
            nb_channels += all;
        }
        for (int blt = 0; blt < hr->Nblts; blt++) {
            const int t = blt / hr->Nbls, a1 = hr->ant_1_array[blt], a2 = hr->ant_2_array[blt];
            for (int c_ = 0; c_ < hr->Nfreqs; c_++)
                for (int pol = 0; pol < hr->Npols; pol++) {
                    const size_t k = ((size_t)blt * hr->Nfreqs + c_) * hr->Npols + pol;
                    double complex add;
                    bool is_dead;
                    const bool hit = ct_sim_rfi(&r, dead, sb, t, a1, a2, c_, pol, &add, &is_dead);
                    total++;
                    masked += hit;
                    dead_samples += is_dead;
                    if (!hit)
                        wrong += vr[k] != vc[k];
                    else if (is_dead)
                        wrong += vr[k] != 0;
                    else {
                        wrong += cabs(vr[k] - vc[k] - add) > 1e-5 * (cabs(add) + cabs(vc[k]));
                        spikes += cabs(add) < r.rfi_jy * 0.5 * 0.999; /* below any channel's */
                    }
                }
        }
        /* The burst: every live sample of one integration. */
        for (int t = 0; t < hr->Ntimes && t < 64; t++) {
            double complex add;
            bool is_dead, every = true;
            for (int c_ = 0; c_ < hr->Nfreqs && every; c_++)
                every = ct_sim_rfi(&r, dead, sb, t, hr->ant_1_array[0] == dead ? 1 : 0,
                                   hr->ant_1_array[0] == dead ? 2 : 1, c_, 1, &add, &is_dead);
            burst_time[t] |= every;
        }
        ct_uvh5_close(fc, &err);
        ct_uvh5_close(fr, &err);
        free(vc);
        free(vr);
        free(pc[sb]);
        free(pr[sb]);
    }
    int bursts = 0;
    for (int t = 0; t < 64; t++)
        bursts += burst_time[t];
    CHECK(wrong == 0, "the data differ exactly where the truth mask says, by its value (%ld wrong)",
          wrong);
    CHECK(dead_samples > 0 && nb_channels >= 1 && bursts == 1 && spikes > 0,
          "each kind present: dead antenna (%ld samples), transmitter channels (%ld), bursts "
          "(%d), spikes (%ld)",
          dead_samples, nb_channels, bursts, spikes);
    CHECK(masked < total / 2, "interference in %ld of %ld samples", masked, total);
    printf(
        "     interference in %ld of %ld samples: dead %ld, transmitter channels %ld, bursts %d, "
        "spikes %ld\n",
        masked, total, dead_samples, nb_channels, bursts, spikes);
    remove_dir(d1);
    remove_dir(d2);
}

static void test_bad_config(void)
{
    ct_sim_config c = small("/tmp");
    ct_err err;
    c.dec_rad = NAN;
    CHECK(ct_simulate(&c, NULL, &err) == CT_EINVAL, "declination required");
    c = small("/tmp");
    c.n_antennas = 97;
    CHECK(ct_simulate(&c, NULL, &err) == CT_EINVAL, "97 antennas refused");
    c = small("/nonexistent-dir/contimg");
    ct_source s = {0, 0, 1, 0};
    c.sources = &s;
    c.n_sources = 1;
    CHECK(ct_simulate(&c, NULL, &err) != CT_OK, "unwritable directory: %s", err.msg);
    CHECK(access("/nonexistent-dir", F_OK) != 0, "nothing created");
}

int main(void)
{
    RUN(test_files_and_band_layout);
    RUN(test_offset_source_phase);
    RUN(test_noise_and_gains);
    RUN(test_uvw_precision_on_disk);
    RUN(test_flags);
    RUN(test_rfi);
    RUN(test_bad_config);
    return tu_finish();
}
