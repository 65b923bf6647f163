/* simulate.c -- see simulate.h. */
#define _GNU_SOURCE
#include "simulate.h"

#include "array.h"
#include "uvh5.h"

#include <complex.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

ct_sim_config ct_sim_defaults(void)
{
    return (ct_sim_config){
        .dec_rad = NAN,
        .noise_jy = 0,
        .sefd_jy = 5000,
        .seed = 1,
        .n_antennas = CT_DSA110_NDATA,
        .n_channels = 48,
        .n_times = 24,
        .rfi_jy = 20,
    };
}

/* --- Counter-based random numbers --------------------------------------------
 * splitmix64's finalizer over a key built from the coordinates of the
 * number: the same (seed, coordinates) always gives the same value. */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t key(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    return mix64(mix64(mix64(seed ^ mix64(a)) ^ b) ^ c);
}

/* Uniform in (0, 1). */
static double uniform(uint64_t k)
{
    return ((double)(k >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Two independent standard normals (Box-Muller) from one key. */
static void normal_pair(uint64_t k, double *a, double *b)
{
    double u1 = uniform(k), u2 = uniform(mix64(k));
    double r = sqrt(-2.0 * log(u1));
    *a = r * cos(2 * M_PI * u2);
    *b = r * sin(2 * M_PI * u2);
}

double ct_sim_delay_ns(uint64_t gains_seed, int ant, int feed)
{
    if (gains_seed == 0)
        return 0;
    return 6.0 * (uniform(key(gains_seed, 4, (uint64_t)ant, (uint64_t)feed)) - 0.5);
}

double complex ct_sim_gain(uint64_t gains_seed, int ant, int feed, double freq_hz)
{
    if (gains_seed == 0)
        return 1.0;
    /* Amplitude 1 +- 15 %, any phase, a 5 % bandpass ripple and a delay of up
     * to 3 ns, each antenna's X and Y feeds apart: what a calibration stage
     * has to undo. */
    const uint64_t a = (uint64_t)ant, f = (uint64_t)feed;
    double amp = 0.85 + 0.3 * uniform(key(gains_seed, 1, a, f));
    double phase = 2 * M_PI * uniform(key(gains_seed, 2, a, f));
    double ripple_period = 20e6 + 10e6 * uniform(key(gains_seed, 3, a, f));
    double ripple = 1.0 + 0.05 * sin(2 * M_PI * freq_hz / ripple_period);
    double delay_phase =
        2 * M_PI * ct_sim_delay_ns(gains_seed, ant, feed) * 1e-9 * (freq_hz - CT_REFERENCE_FREQ_HZ);
    return amp * ripple * cexp(I * (phase + delay_phase));
}

double complex ct_sim_gain_drift(uint64_t gains_seed, double drift, int ant, int feed, double jd)
{
    if (gains_seed == 0 || drift == 0)
        return 1.0;
    const uint64_t a = (uint64_t)ant, f = (uint64_t)feed;
    /* Hours from J2000, so that the drift is a property of the time and not of
     * a file's start: an observation an hour later sees the gains an hour on. */
    const double hours = (jd - 2451545.0) * 24.0;
    const double rate = drift * (2 * uniform(key(gains_seed, 5, a, f)) - 1);
    const double phase_deg = fmod(rate * hours, 360.0); /* rounding: 1e-7 deg at most */
    const double amp =
        1 +
        1e-4 * drift * sin(M_PI * fmod(hours, 2.0) + 2 * M_PI * uniform(key(gains_seed, 6, a, f)));
    return amp * cexp(I * phase_deg * M_PI / 180.0);
}

int ct_sim_rfi_dead_station(const ct_sim_config *cfg)
{
    if (cfg->rfi_seed == 0 || cfg->n_antennas < 1)
        return -1;
    ct_array a;
    if (ct_array_dsa110((size_t)cfg->n_antennas, &a, NULL) != CT_OK)
        return -1;
    const int i = (int)(uniform(key(cfg->rfi_seed, 10, 0, 0)) * cfg->n_antennas);
    return a.data_numbers[i < cfg->n_antennas ? i : cfg->n_antennas - 1];
}

bool ct_sim_rfi(const ct_sim_config *cfg, int dead, int sb, int t, int a1, int a2, int c, int pol,
                double complex *add, bool *is_dead)
{
    *add = 0;
    *is_dead = false;
    const uint64_t seed = cfg->rfi_seed;
    if (seed == 0)
        return false;
    if (a1 == dead || a2 == dead) {
        *is_dead = true;
        return true;
    }
    const uint64_t g = (uint64_t)sb * (uint64_t)cfg->n_channels + (uint64_t)c;
    const uint64_t where =
        key(seed, (uint64_t)t << 32 | g, (uint64_t)a1 << 16 | (uint64_t)a2, (uint64_t)pol);
    double amp = 0;
    if (uniform(key(seed, 11, g, 0)) < 0.02) /* a transmitter in this channel */
        amp += cfg->rfi_jy * (0.5 + 1.5 * uniform(key(seed, 12, g, 0)));
    if (uniform(key(seed, 14, where, 1)) < 1e-3) /* a spike */
        amp += cfg->rfi_jy * (0.2 + 0.8 * uniform(key(seed, 15, where, 2)));
    *add = a1 == a2 ? amp : amp * cexp(2 * M_PI * I * uniform(key(seed, 16, where, 3)));
    /* The burst: one phase per baseline across the band (a delay-free broadband signal,
     * as a nearby discharge gives short baselines), so a smooth fit along frequency
     * absorbs it whole; only its step in time gives it away. */
    const bool burst = t == (int)(uniform(key(seed, 13, 0, 0)) * cfg->n_times);
    if (burst) {
        const uint64_t bl = (uint64_t)t << 32 | (uint64_t)a1 << 16 | (uint64_t)a2;
        const double phase = 2 * M_PI * uniform(key(seed, 17, bl, (uint64_t)pol));
        *add += 0.5 * cfg->rfi_jy * (a1 == a2 ? 1 : cexp(I * phase));
    }
    return amp > 0 || burst;
}

/* --- One subband file ---------------------------------------------------------- */

typedef struct sim_plan {
    const ct_sim_config *cfg;
    ct_array array;
    int nbl;
    int *ant1, *ant2; /* station indices, ant1 <= ant2 */
    int dead;         /* the interference model's dead station (-1: none) */
    double (*uvw)[3]; /* per baseline: constant for a meridian drift scan */
    double *times_jd; /* per integration (mid-point) */
    double (*lmn)[3]; /* per source per time: [src * ntimes + t] */
} sim_plan;

static void plan_free(sim_plan *p)
{
    free(p->ant1);
    free(p->ant2);
    free(p->uvw);
    free(p->times_jd);
    free(p->lmn);
}

static ct_code plan_make(const ct_sim_config *cfg, sim_plan *p, ct_err *err)
{
    memset(p, 0, sizeof *p);
    p->cfg = cfg;
    ct_code rc = ct_array_dsa110((size_t)cfg->n_antennas, &p->array, err);
    p->dead = ct_sim_rfi_dead_station(cfg);
    if (rc != CT_OK)
        return rc;
    int n = cfg->n_antennas;
    p->nbl = n * (n + 1) / 2;
    p->ant1 = malloc((size_t)p->nbl * sizeof *p->ant1);
    p->ant2 = malloc((size_t)p->nbl * sizeof *p->ant2);
    p->uvw = malloc((size_t)p->nbl * sizeof *p->uvw);
    p->times_jd = malloc((size_t)cfg->n_times * sizeof *p->times_jd);
    p->lmn = malloc((cfg->n_sources ? cfg->n_sources : 1) * (size_t)cfg->n_times * sizeof *p->lmn);
    if (!p->ant1 || !p->ant2 || !p->uvw || !p->times_jd || !p->lmn) {
        plan_free(p);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    int b = 0;
    for (int i = 0; i < n; i++) {
        for (int j = i; j < n; j++, b++) {
            p->ant1[b] = p->array.data_numbers[i];
            p->ant2[b] = p->array.data_numbers[j];
            ct_uvw(p->array.offsets[p->ant1[b]], p->array.offsets[p->ant2[b]],
                   p->array.site.lon_rad, 0.0, cfg->dec_rad, p->uvw[b]);
        }
    }
    for (int t = 0; t < cfg->n_times; t++)
        p->times_jd[t] = 2440587.5 + (cfg->start_unix + (t + 0.5) * CT_INTEGRATION_SEC) / 86400.0;
    for (size_t s = 0; s < cfg->n_sources; s++) {
        for (int t = 0; t < cfg->n_times; t++) {
            double ha, dec;
            rc = ct_icrs_to_hadec(cfg->sources[s].ra_rad, cfg->sources[s].dec_rad, p->times_jd[t],
                                  cfg->dut1, &p->array.site, &ha, &dec, err);
            if (rc != CT_OK) {
                plan_free(p);
                return rc;
            }
            double *v = p->lmn[s * (size_t)cfg->n_times + (size_t)t];
            ct_lmn(ha, dec, cfg->dec_rad, &v[0], &v[1], &v[2]);
        }
    }
    return CT_OK;
}

/* The header of subband sb. */
static ct_code make_header(const sim_plan *p, int sb, ct_uvh5_header *h, ct_err *err)
{
    const ct_sim_config *cfg = p->cfg;
    memset(h, 0, sizeof *h);
    int nt = cfg->n_times, nbl = p->nbl, nf = cfg->n_channels, nblt = nt * nbl;
    h->Nants_data = cfg->n_antennas;
    h->Nants_telescope = CT_DSA110_NSTATIONS;
    h->Nbls = nbl;
    h->Nblts = nblt;
    h->Ntimes = nt;
    h->Nfreqs = nf;
    h->Npols = 2;
    h->Nspws = 1;
    h->latitude = p->array.site.lat_rad * 180 / M_PI;
    h->longitude = p->array.site.lon_rad * 180 / M_PI;
    h->altitude = p->array.site.height_m;
    h->telescope_name = strdup("OVRO_MMA");
    h->instrument = strdup("DSA");
    h->phase_type = strdup("drift");
    h->object_name = strdup("drift");
    h->version = strdup("1.1");
    if (asprintf(&h->history,
                 "Simulated by contimg simulate: dec %.6f deg, %zu sources, noise "
                 "%g Jy, seed %llu, gains seed %llu, gains drift %g.",
                 cfg->dec_rad * 180 / M_PI, cfg->n_sources, cfg->noise_jy,
                 (unsigned long long)cfg->seed, (unsigned long long)cfg->gains_seed,
                 cfg->gains_drift) < 0)
        h->history = NULL;
    h->antenna_numbers = malloc(CT_DSA110_NSTATIONS * sizeof *h->antenna_numbers);
    h->antenna_names = calloc(CT_DSA110_NSTATIONS, sizeof *h->antenna_names);
    h->antenna_positions = malloc(CT_DSA110_NSTATIONS * 3 * sizeof *h->antenna_positions);
    h->ant_1_array = malloc((size_t)nblt * sizeof(int));
    h->ant_2_array = malloc((size_t)nblt * sizeof(int));
    h->time_array = malloc((size_t)nblt * sizeof(double));
    h->integration_time = malloc((size_t)nblt * sizeof(double));
    h->uvw_array = malloc((size_t)nblt * 3 * sizeof(double));
    h->freq_array = malloc((size_t)nf * sizeof(double));
    h->channel_width = malloc((size_t)nf * sizeof(double));
    h->spw_array = malloc(sizeof(int));
    h->polarization_array = malloc(2 * sizeof(int));
    if (!h->telescope_name || !h->instrument || !h->phase_type || !h->object_name || !h->version ||
        !h->history || !h->antenna_numbers || !h->antenna_names || !h->antenna_positions ||
        !h->ant_1_array || !h->ant_2_array || !h->time_array || !h->integration_time ||
        !h->uvw_array || !h->freq_array || !h->channel_width || !h->spw_array ||
        !h->polarization_array) {
        ct_uvh5_header_free(h);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    for (int a = 0; a < CT_DSA110_NSTATIONS; a++) {
        h->antenna_numbers[a] = p->array.numbers[a];
        h->antenna_names[a] = strdup(p->array.names[a]);
        if (h->antenna_names[a] == NULL) {
            ct_uvh5_header_free(h);
            return ct_fail(err, CT_ENOMEM, "out of memory");
        }
        memcpy(&h->antenna_positions[3 * a], p->array.offsets[a], 3 * sizeof(double));
    }
    for (int t = 0; t < nt; t++) {
        for (int b = 0; b < nbl; b++) {
            size_t k = (size_t)t * nbl + b;
            h->ant_1_array[k] = p->ant1[b];
            h->ant_2_array[k] = p->ant2[b];
            h->time_array[k] = p->times_jd[t];
            h->integration_time[k] = CT_INTEGRATION_SEC;
            memcpy(&h->uvw_array[3 * k], p->uvw[b], 3 * sizeof(double));
        }
    }
    /* Subband sb covers [top - (sb+1) nf w, top - sb nf w); channels ascend. */
    double low = CT_BAND_TOP_HZ - (double)(sb + 1) * nf * CT_SB_CHANNEL_WIDTH_HZ;
    for (int c = 0; c < nf; c++) {
        h->freq_array[c] = low + (c + 0.5) * CT_SB_CHANNEL_WIDTH_HZ;
        h->channel_width[c] = CT_SB_CHANNEL_WIDTH_HZ;
    }
    h->spw_array[0] = 0;
    h->polarization_array[0] = -5; /* XX */
    h->polarization_array[1] = -6; /* YY */
    ct_code rc;
    if ((rc = ct_uvh5_keyword_set_double(h, "phase_center_dec", cfg->dec_rad, err)) != CT_OK ||
        (rc = ct_uvh5_keyword_set_double(h, "ha_phase_center", 0.0, err)) != CT_OK ||
        (rc = ct_uvh5_keyword_set_string(h, "phase_center_epoch", "HADEC", err)) != CT_OK) {
        ct_uvh5_header_free(h);
        return rc;
    }
    return CT_OK;
}

/* Fills one integration's data of subband sb: vis [nbl][nf][2] complex. */
static void fill_time(const sim_plan *p, int sb, int t, const double *freqs, double complex *model,
                      float *vis, bool *flags, float *nsamples)
{
    const ct_sim_config *cfg = p->cfg;
    int nf = cfg->n_channels;
    for (int b = 0; b < p->nbl; b++) {
        for (int c = 0; c < nf; c++)
            model[c] = 0;
        if (p->ant1[b] == p->ant2[b]) {
            /* Autocorrelation: system noise power plus the sources in the beam. */
            for (int c = 0; c < nf; c++)
                model[c] = cfg->sefd_jy;
        }
        for (size_t s = 0; s < cfg->n_sources; s++) {
            const double *v = p->lmn[s * (size_t)cfg->n_times + (size_t)t];
            if (v[2] <= 0)
                continue; /* below the horizon of the phase centre's hemisphere */
            ct_add_point_source(p->uvw[b], v[0], v[1], v[2], &cfg->sources[s], CT_DSA110_DISH_M,
                                freqs, (size_t)nf, model);
        }
        for (int c = 0; c < nf; c++) {
            for (int pol = 0; pol < 2; pol++) { /* XX: feed X of both, YY: feed Y */
                double complex g = ct_sim_gain(cfg->gains_seed, p->ant1[b], pol, freqs[c]) *
                                   conj(ct_sim_gain(cfg->gains_seed, p->ant2[b], pol, freqs[c]));
                if (cfg->gains_drift != 0)
                    g *= ct_sim_gain_drift(cfg->gains_seed, cfg->gains_drift, p->ant1[b], pol,
                                           p->times_jd[t]) *
                         conj(ct_sim_gain_drift(cfg->gains_seed, cfg->gains_drift, p->ant2[b], pol,
                                                p->times_jd[t]));
                double complex v = g * model[c];
                if (cfg->noise_jy > 0) {
                    double nr, ni;
                    uint64_t k = key(cfg->seed, (uint64_t)sb << 32 | (uint64_t)t, (uint64_t)b,
                                     (uint64_t)c << 1 | (uint64_t)pol);
                    normal_pair(k, &nr, &ni);
                    /* An autocorrelation is real: its noise is too. */
                    v += p->ant1[b] == p->ant2[b] ? cfg->noise_jy * nr
                                                  : cfg->noise_jy * (nr + I * ni);
                }
                if (cfg->rfi_seed != 0) {
                    double complex add;
                    bool is_dead;
                    if (ct_sim_rfi(cfg, p->dead, sb, t, p->ant1[b], p->ant2[b], c, pol, &add,
                                   &is_dead))
                        v = is_dead ? 0 : v + add;
                }
                size_t k = ((size_t)b * nf + c) * 2 + pol;
                vis[2 * k] = (float)creal(v);
                vis[2 * k + 1] = (float)cimag(v);
                flags[k] = cfg->flag_fraction > 0 &&
                           uniform(key(cfg->seed ^ 0x666c6167ULL, (uint64_t)sb << 32 | (uint64_t)t,
                                       (uint64_t)b, (uint64_t)c << 1 | (uint64_t)pol)) <
                               cfg->flag_fraction;
                nsamples[k] = 1.0f;
            }
        }
    }
}

static void timestamp(double unix_sec, char out[32])
{
    time_t s = (time_t)floor(unix_sec);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
}

static ct_code write_subband(const sim_plan *p, int sb, char **path_out, ct_err *err)
{
    const ct_sim_config *cfg = p->cfg;
    ct_uvh5_header h;
    ct_code rc = make_header(p, sb, &h, err);
    if (rc != CT_OK)
        return rc;
    char ts[32], *busy = NULL, *done = NULL;
    timestamp(cfg->start_unix, ts);
    if (asprintf(&busy, "%s/%s_sb%02d_incomplete.hdf5", cfg->out_dir, ts, sb) < 0 ||
        asprintf(&done, "%s/%s_sb%02d.hdf5", cfg->out_dir, ts, sb) < 0) {
        free(busy);
        ct_uvh5_header_free(&h);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    size_t per_time = (size_t)p->nbl * cfg->n_channels * 2;
    float *vis = malloc(2 * per_time * sizeof *vis);
    bool *flags = malloc(per_time * sizeof *flags);
    float *nsamples = malloc(per_time * sizeof *nsamples);
    double complex *model = malloc((size_t)cfg->n_channels * sizeof *model);
    ct_uvh5_file *f = NULL;
    if (!vis || !flags || !nsamples || !model)
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
    if (rc == CT_OK) {
        /* The correlator's 4-D layout; uvw precision as configured. */
        ct_uvh5_write_opts layout = {.shape_4d = true, .uvw_float32 = cfg->uvw_float32};
        rc = ct_uvh5_create(busy, &h, &layout, &f, err);
    }
    for (int t = 0; rc == CT_OK && t < cfg->n_times; t++) {
        fill_time(p, sb, t, h.freq_array, model, vis, flags, nsamples);
        rc = ct_uvh5_write_blts(f, (size_t)t * p->nbl, (size_t)p->nbl, vis, flags, nsamples, err);
    }
    if (rc == CT_OK) {
        rc = ct_uvh5_close(f, err);
        f = NULL;
    }
    ct_uvh5_abort(f);
    if (rc == CT_OK && rename(busy, done) != 0)
        rc = ct_fail(err, CT_EIO, "rename %s: %s", busy, strerror(errno));
    if (rc != CT_OK)
        remove(busy);
    free(vis);
    free(flags);
    free(nsamples);
    free(model);
    free(busy);
    ct_uvh5_header_free(&h);
    if (rc == CT_OK && path_out != NULL)
        *path_out = done;
    else
        free(done);
    return rc;
}

ct_code ct_simulate(const ct_sim_config *cfg, char *paths_out[16], ct_err *err)
{
    if (cfg->out_dir == NULL)
        return ct_fail(err, CT_EINVAL, "simulate: an output directory is required");
    if (!(cfg->dec_rad >= -M_PI / 2 && cfg->dec_rad <= M_PI / 2))
        return ct_fail(err, CT_EINVAL, "simulate: declination must be -90..90 degrees");
    if (cfg->n_channels < 1 || cfg->n_channels > 4096 || cfg->n_times < 1 || cfg->n_times > 10000)
        return ct_fail(err, CT_EINVAL, "simulate: channels 1..4096 and times 1..10000 per file");
    if (!(cfg->noise_jy >= 0) || !(cfg->sefd_jy >= 0))
        return ct_fail(err, CT_EINVAL, "simulate: noise and SEFD must be >= 0");
    if (!(cfg->flag_fraction >= 0 && cfg->flag_fraction <= 1))
        return ct_fail(err, CT_EINVAL, "simulate: the flagged fraction must be 0..1");
    sim_plan p;
    ct_code rc = plan_make(cfg, &p, err);
    if (rc != CT_OK)
        return rc;
    for (int sb = 0; sb < 16 && rc == CT_OK; sb++)
        rc = write_subband(&p, sb, paths_out ? &paths_out[sb] : NULL, err);
    plan_free(&p);
    return rc;
}
