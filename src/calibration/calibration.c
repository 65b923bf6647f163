/* calibration.c -- the solver and the application (calibration.h). */
#define _GNU_SOURCE
#include "calibration.h"

#include "array.h"
#include "uvh5.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Blts read at a time. */
enum { CHUNK_BLTS = 2048 };

void ct_cal_opts_default(ct_cal_opts *o)
{
    memset(o, 0, sizeof *o);
    o->refant = -1;
    o->min_snr = 3.0;
    o->max_iter = 300;
    o->tol = 1e-10;
}

ct_code ct_caltable_alloc(ct_caltable *t, int nchan, int nant, int ntime, ct_err *err)
{
    const size_t nbp = (size_t)nchan * (size_t)nant * CT_CAL_NFEEDS,
                 ng = (size_t)ntime * (size_t)nant * CT_CAL_NFEEDS;
    t->nchan = nchan;
    t->nant = nant;
    t->ntime = ntime;
    t->freq_hz = malloc(((size_t)nchan + 1) * sizeof *t->freq_hz);
    t->bandpass = malloc((nbp + 1) * sizeof *t->bandpass);
    t->bp_flag = malloc(nbp + 1);
    t->bp_snr = malloc((nbp + 1) * sizeof *t->bp_snr);
    t->time_jd = malloc(((size_t)ntime + 1) * sizeof *t->time_jd);
    t->gain = malloc((ng + 1) * sizeof *t->gain);
    t->g_flag = malloc(ng + 1);
    t->delay_ns = malloc(((size_t)nant * CT_CAL_NFEEDS + 1) * sizeof *t->delay_ns);
    if (!t->freq_hz || !t->bandpass || !t->bp_flag || !t->bp_snr || !t->time_jd || !t->gain ||
        !t->g_flag || !t->delay_ns) {
        ct_caltable_free(t);
        return ct_fail(err, CT_ENOMEM, "out of memory for a caltable of %d x %d x %d", nchan, nant,
                       ntime);
    }
    return CT_OK;
}

void ct_caltable_free(ct_caltable *t)
{
    if (!t)
        return;
    free(t->freq_hz);
    free(t->bandpass);
    free(t->bp_flag);
    free(t->bp_snr);
    free(t->time_jd);
    free(t->gain);
    free(t->g_flag);
    free(t->delay_ns);
    memset(t, 0, sizeof *t);
}

/* Feed index (0 X, 1 Y) of each side of an AIPS polarization code; -1 for a
 * code that is not a linear feed pair. */
static void feeds_of(int pol, int *p, int *q)
{
    switch (pol) {
    case -5: *p = 0, *q = 0; break; /* XX */
    case -6: *p = 1, *q = 1; break; /* YY */
    case -7: *p = 0, *q = 1; break; /* XY */
    case -8: *p = 1, *q = 0; break; /* YX */
    default: *p = *q = -1;
    }
}

/* --- The sky model at each sample --------------------------------------------- */

/* The model at one time: each source's direction and apparent flux per
 * channel are the same for every baseline of the time, so they are worked out
 * once per time; per baseline only the phase remains, and across channels
 * evenly spaced in frequency it steps by a constant factor (re-anchored
 * every ANCHOR channels, so that rounding never builds up past 1e-14): one
 * complex exponential per source and baseline instead of one per channel,
 * and no Bessel function per baseline (together half of a full-size solve). */
enum { ANCHOR = 32 };
typedef struct model_ctx {
    const ct_uvh5_header *h;
    const ct_cal_opts *o;
    ct_site site;
    double dec0;
    double last_jd;
    double *lmn; /* [n_model][3] at last_jd */
    double *amp; /* [n_model][nf] at last_jd */
    double df;   /* the channel spacing, when even; 0 when not */
} model_ctx;

static ct_code model_init(model_ctx *m, const ct_uvh5_header *h, const ct_cal_opts *o, ct_err *err)
{
    memset(m, 0, sizeof *m);
    m->h = h;
    m->o = o;
    const ct_uvh5_keyword *kd = ct_uvh5_keyword_find(h, "phase_center_dec");
    if (!kd || kd->is_string || !(fabs(kd->value) <= M_PI / 2))
        return ct_fail(err, CT_EINVAL, "calibration: the file has no usable phase_center_dec");
    m->dec0 = kd->value;
    m->site.lat_rad = h->latitude * M_PI / 180.0;
    m->site.lon_rad = h->longitude * M_PI / 180.0;
    m->site.height_m = h->altitude;
    ct_geodetic_to_ecef(m->site.lat_rad, m->site.lon_rad, m->site.height_m, m->site.ecef);
    m->last_jd = NAN;
    const size_t nf = (size_t)h->Nfreqs;
    m->lmn = malloc((o->n_model * 3 + 1) * sizeof *m->lmn);
    m->amp = malloc((o->n_model * nf + 1) * sizeof *m->amp);
    m->df = nf >= 2 ? (h->freq_array[nf - 1] - h->freq_array[0]) / (double)(nf - 1) : 0;
    for (size_t c = 0; c < nf && m->df != 0; c++)
        if (!(fabs(h->freq_array[c] - (h->freq_array[0] + (double)c * m->df)) <=
              1e-6 * fabs(m->df)))
            m->df = 0;
    return m->lmn && m->amp ? CT_OK : ct_fail(err, CT_ENOMEM, "out of memory");
}

/* The model's visibility on blt at every channel, into vis[nf]. */
static ct_code model_vis(model_ctx *m, size_t blt, double complex *vis, ct_err *err)
{
    const ct_uvh5_header *h = m->h;
    const double jd = h->time_array[blt];
    if (!(jd == m->last_jd)) {
        for (size_t s = 0; s < m->o->n_model; s++) {
            double ha, dec;
            ct_code rc = ct_icrs_to_hadec(m->o->model[s].ra_rad, m->o->model[s].dec_rad, jd, 0.0,
                                          &m->site, &ha, &dec, err);
            if (rc != CT_OK)
                return rc;
            ct_lmn(ha, dec, m->dec0, &m->lmn[3 * s], &m->lmn[3 * s + 1], &m->lmn[3 * s + 2]);
            ct_point_source_amplitudes(m->lmn[3 * s], m->lmn[3 * s + 1], &m->o->model[s],
                                       CT_DSA110_DISH_M, h->freq_array, (size_t)h->Nfreqs,
                                       m->amp + s * (size_t)h->Nfreqs);
        }
        m->last_jd = jd;
    }
    const int nf = h->Nfreqs;
    for (int c = 0; c < nf; c++)
        vis[c] = 0;
    const double *uvw = &h->uvw_array[3 * blt], *f = h->freq_array;
    for (size_t s = 0; s < m->o->n_model; s++) {
        const double *lmn = &m->lmn[3 * s], *amp = m->amp + s * (size_t)nf;
        if (!(lmn[2] > 0))
            continue; /* below the horizon of the phase centre's hemisphere */
        /* V = S A exp(+2 pi i f path / c), path = u l + v m + w (n - 1) in metres (sky.h). */
        const double k = 2.0 * M_PI / CT_SPEED_OF_LIGHT *
                         (uvw[0] * lmn[0] + uvw[1] * lmn[1] + uvw[2] * (lmn[2] - 1.0));
        const double complex step = m->df != 0 ? cexp(I * k * m->df) : 0;
        double complex e = 0;
        for (int c = 0; c < nf; c++) {
            e = m->df == 0 || c % ANCHOR == 0 ? cexp(I * k * f[c]) : e * step;
            vis[c] += amp[c] * e;
        }
    }
    return CT_OK;
}

/* --- StefCal on per-baseline sums -------------------------------------------- */

/* The solutions' sums per antenna pair (i, j), i < j (the solver mirrors
 * them): A = sum w V conj(M), B = sum w |M|^2, C = sum w |V|^2, n = samples,
 * at [(i nant + j) nsol + sol]: one baseline's solutions side by side, so
 * that a sample's channels, summed one after the other, fall on neighbouring
 * cells (solution-major, a channel's cells were nant^2 apart and every sample
 * a cache miss: a third of a full-size solve). */
typedef struct sums {
    double complex *A;
    double *B, *C, *n;
    size_t nsol;
} sums;

static ct_code sums_alloc(sums *s, size_t count, int nant, ct_err *err)
{
    const size_t n = count * (size_t)nant * (size_t)nant;
    s->nsol = count;
    s->A = calloc(n + 1, sizeof *s->A);
    s->B = calloc(n + 1, sizeof *s->B);
    s->C = calloc(n + 1, sizeof *s->C);
    s->n = calloc(n + 1, sizeof *s->n);
    if (!s->A || !s->B || !s->C || !s->n)
        return ct_fail(err, CT_ENOMEM, "out of memory for %zu solutions' sums", count);
    return CT_OK;
}

static void sums_free(sums *s)
{
    free(s->A);
    free(s->B);
    free(s->C);
    free(s->n);
}

static void sums_add(sums *s, size_t sol, int nant, int i, int j, double complex v,
                     double complex m, double w)
{
    if (i > j) { /* V_ji = conj(V_ij) */
        int t = i;
        i = j;
        j = t;
        v = conj(v);
        m = conj(m);
    }
    const size_t k = ((size_t)i * (size_t)nant + (size_t)j) * s->nsol + sol;
    s->A[k] += w * v * conj(m);
    s->B[k] += w * creal(m * conj(m));
    s->C[k] += w * creal(v * conj(v));
    s->n[k] += 1;
}

/* Solves one solution's gains g[nant] (flag[a] set where an antenna has no
 * data, or its SNR is below min_snr; the phase of refant, or of the first
 * antenna with data, is 0). Returns the iterations taken; *rms the residual per
 * unit weight. */
static int stefcal(const sums *s, size_t sol, int nant, int refant, const ct_cal_opts *o,
                   double complex *g, unsigned char *flag, double *snr, double *rms)
{
    /* The solution's sums gathered once into full nant x nant matrices
     * (A Hermitian, B symmetric): the iterations then read rows, not cells
     * nsol apart (which made StefCal half of a full-size solve). */
    const size_t na = (size_t)nant;
    double complex *gn = malloc((na + 1) * sizeof *gn), *A = malloc((na * na + 1) * sizeof *A);
    double *B = malloc((na * na + 1) * sizeof *B);
    if (!gn || !A || !B) {
        for (int a = 0; a < nant; a++) {
            flag[a] = 1;
            g[a] = 0;
            snr[a] = 0;
        }
        free(gn);
        free(A);
        free(B);
        *rms = NAN;
        return 0;
    }
    for (size_t i = 0; i < na; i++) {
        A[i * na + i] = 0;
        B[i * na + i] = 0;
        for (size_t j = i + 1; j < na; j++) {
            const size_t k = (i * na + j) * s->nsol + sol;
            A[i * na + j] = s->A[k];
            A[j * na + i] = conj(s->A[k]); /* V_ji = conj(V_ij) */
            B[i * na + j] = B[j * na + i] = s->B[k];
        }
    }
    for (int a = 0; a < nant; a++) {
        double b = 0;
        for (int j = 0; j < nant; j++)
            b += B[(size_t)a * na + (size_t)j];
        flag[a] = !(b > 0);
        g[a] = flag[a] ? 0 : 1;
    }
    int it = 0;
    for (it = 1; it <= o->max_iter; it++) {
        double change = 0;
        for (int i = 0; i < nant; i++) {
            gn[i] = 0;
            if (flag[i])
                continue;
            const double complex *ai = A + (size_t)i * na;
            const double *bi = B + (size_t)i * na;
            double complex num = 0;
            double den = 0;
            /* Flagged antennas hold g = 0 and add nothing; the diagonal is 0. */
            for (int j = 0; j < nant; j++) {
                num += ai[j] * g[j];
                den += bi[j] * creal(g[j] * conj(g[j]));
            }
            gn[i] = den > 0 ? num / den : 0;
        }
        for (int i = 0; i < nant; i++) {
            if (flag[i])
                continue;
            /* StefCal: every second step the average of the last two, which
             * damps the alternation's oscillation. */
            const double complex next = it % 2 == 0 ? 0.5 * (gn[i] + g[i]) : gn[i];
            const double d = cabs(next - g[i]) / fmax(cabs(next), 1e-300);
            change = fmax(change, d);
            g[i] = next;
        }
        if (change < o->tol)
            break;
    }
    /* Phases referred to the reference antenna (the first with data if it has none). */
    int ref = refant >= 0 && refant < nant && !flag[refant] ? refant : -1;
    for (int a = 0; ref < 0 && a < nant; a++)
        if (!flag[a])
            ref = a;
    if (ref >= 0 && cabs(g[ref]) > 0) {
        const double complex rot = conj(g[ref]) / cabs(g[ref]);
        for (int a = 0; a < nant; a++)
            g[a] *= rot;
    }
    /* The residual: sum over baselines of C - 2 Re(conj(G) A) + |G|^2 B, G = g_i conj(g_j). */
    double chi2 = 0, nsamp = 0;
    int nact = 0;
    for (int i = 0; i < nant; i++) {
        nact += !flag[i];
        for (int j = i + 1; j < nant; j++) {
            if (flag[i] || flag[j])
                continue;
            const size_t k = ((size_t)i * na + (size_t)j) * s->nsol + sol;
            const double complex G = g[i] * conj(g[j]);
            chi2 += s->C[k] - 2 * creal(conj(G) * s->A[k]) + creal(G * conj(G)) * s->B[k];
            nsamp += s->n[k];
        }
    }
    const double dof = 2 * nsamp - 2 * nact;
    const double sigma2 = dof > 0 ? fmax(chi2, 0) / dof : NAN;
    *rms = sqrt(sigma2);
    for (int i = 0; i < nant; i++) {
        if (flag[i]) {
            snr[i] = 0;
            continue;
        }
        double p = 0;
        for (int j = 0; j < nant; j++)
            p += B[(size_t)i * na + (size_t)j] * creal(g[j] * conj(g[j]));
        /* |g| over its standard error sqrt(sigma^2 / p); a noiseless fit: no limit. */
        snr[i] = sigma2 > 0 ? cabs(g[i]) * sqrt(p / sigma2) : INFINITY;
        if (!(snr[i] >= o->min_snr))
            flag[i] = 1;
    }
    free(gn);
    free(A);
    free(B);
    return it > o->max_iter ? o->max_iter : it;
}

/* B's phase slope across the band per antenna and feed (least squares on the
 * phase unwrapped along the channels), in ns. */
static void fit_delays(ct_caltable *t)
{
    for (int a = 0; a < t->nant; a++)
        for (int p = 0; p < CT_CAL_NFEEDS; p++) {
            double sx = 0, sy = 0, sxx = 0, sxy = 0, prev = 0, off = 0;
            int n = 0;
            for (int c = 0; c < t->nchan; c++) {
                const size_t k = ((size_t)c * t->nant + a) * CT_CAL_NFEEDS + p;
                if (t->bp_flag[k])
                    continue;
                double ph = carg(t->bandpass[k]) + off;
                if (n > 0) { /* unwrap against the last channel used */
                    while (ph - prev > M_PI) {
                        ph -= 2 * M_PI;
                        off -= 2 * M_PI;
                    }
                    while (ph - prev < -M_PI) {
                        ph += 2 * M_PI;
                        off += 2 * M_PI;
                    }
                }
                prev = ph;
                const double x = (t->freq_hz[c] - t->freq_hz[0]) * 1e-9; /* GHz */
                sx += x;
                sy += ph;
                sxx += x * x;
                sxy += x * ph;
                n++;
            }
            const double d = n * sxx - sx * sx;
            t->delay_ns[(size_t)a * CT_CAL_NFEEDS + p] =
                n >= 3 && d > 0 ? (n * sxy - sx * sy) / d / (2 * M_PI) : NAN;
        }
}

/* --- Solve ---------------------------------------------------------------------- */

typedef struct reader {
    ct_uvh5_file *f;
    const ct_uvh5_header *h;
    float *vis, *ns;
    bool *fl;
    double complex *model; /* [CHUNK_BLTS][nf] */
} reader;

static ct_code reader_open(reader *r, const char *path, ct_err *err)
{
    memset(r, 0, sizeof *r);
    ct_code rc = ct_uvh5_open(path, &r->f, err);
    if (rc != CT_OK)
        return rc;
    r->h = ct_uvh5_header_get(r->f);
    const size_t per = (size_t)CHUNK_BLTS * (size_t)r->h->Nfreqs * (size_t)r->h->Npols;
    r->vis = malloc(2 * per * sizeof *r->vis);
    r->ns = malloc(per * sizeof *r->ns);
    r->fl = malloc(per * sizeof *r->fl);
    r->model = malloc(((size_t)CHUNK_BLTS * (size_t)r->h->Nfreqs + 1) * sizeof *r->model);
    if (!r->vis || !r->ns || !r->fl || !r->model)
        return ct_fail(err, CT_ENOMEM, "out of memory for the reader");
    return CT_OK;
}

static void reader_close(reader *r)
{
    if (r->f)
        ct_uvh5_close(r->f, NULL);
    free(r->vis);
    free(r->ns);
    free(r->fl);
    free(r->model);
    memset(r, 0, sizeof *r);
}

/* Accumulates the sums of every sample of the file: bucket(c, time index)
 * picks the solution, and with bp the data are first divided by it (G). */
static ct_code accumulate(reader *r, model_ctx *mc, const ct_caltable *t, const int *feed_of_pol,
                          bool for_gain, sums *s, ct_err *err)
{
    const ct_uvh5_header *h = r->h;
    const int nf = h->Nfreqs, np = h->Npols, nant = t->nant;
    for (size_t b0 = 0; b0 < (size_t)h->Nblts; b0 += CHUNK_BLTS) {
        const size_t nb = (size_t)h->Nblts - b0 < CHUNK_BLTS ? (size_t)h->Nblts - b0 : CHUNK_BLTS;
        ct_code rc = ct_uvh5_read_blts(r->f, b0, nb, r->vis, r->fl, r->ns, err);
        for (size_t j = 0; rc == CT_OK && j < nb; j++)
            rc = model_vis(mc, b0 + j, r->model + j * (size_t)nf, err);
        if (rc != CT_OK)
            return rc;
        for (size_t j = 0; j < nb; j++) {
            const size_t blt = b0 + j;
            const int a1 = h->ant_1_array[blt], a2 = h->ant_2_array[blt];
            if (a1 == a2 || a1 < 0 || a2 < 0 || a1 >= nant || a2 >= nant)
                continue;
            size_t ti = 0;
            if (for_gain && t->ntime > 1) {
                const double x = (h->time_array[blt] - t->t_start_jd) * 86400.0 / t->solint_sec;
                ti = x <= 0 ? 0 : (size_t)x >= (size_t)t->ntime ? (size_t)t->ntime - 1 : (size_t)x;
            }
            for (int c = 0; c < nf; c++) {
                const double complex m = r->model[j * (size_t)nf + (size_t)c];
                for (int pi = 0; pi < np; pi++) {
                    const int fe = feed_of_pol[pi];
                    if (fe < 0)
                        continue;
                    const size_t k = ((j * (size_t)nf + (size_t)c) * (size_t)np + (size_t)pi);
                    const float re = r->vis[2 * k], im = r->vis[2 * k + 1];
                    double w = r->ns[k];
                    if (r->fl[k] || !(w > 0) || !isfinite(re) || !isfinite(im))
                        continue;
                    double complex v = CMPLX(re, im);
                    size_t sol;
                    if (for_gain) {
                        const size_t k1 = ((size_t)c * nant + a1) * CT_CAL_NFEEDS + fe,
                                     k2 = ((size_t)c * nant + a2) * CT_CAL_NFEEDS + fe;
                        if (t->bp_flag[k1] || t->bp_flag[k2])
                            continue;
                        const double complex bb = t->bandpass[k1] * conj(t->bandpass[k2]);
                        v /= bb;
                        w *= creal(bb * conj(bb));
                        sol = ti * CT_CAL_NFEEDS + (size_t)fe;
                    } else
                        sol = (size_t)c * CT_CAL_NFEEDS + (size_t)fe;
                    sums_add(s, sol, nant, a1, a2, v, m, w);
                }
            }
        }
    }
    return CT_OK;
}

ct_code ct_cal_solve(const char *vispath, const ct_cal_opts *o, ct_caltable *out, ct_err *err)
{
    memset(out, 0, sizeof *out);
    if (!o || o->n_model == 0 || !o->model)
        return ct_fail(err, CT_EINVAL, "calibration: no sky model (give at least one component)");
    if (!(o->solint_sec >= 0) || isinf(o->solint_sec) || !(o->min_snr >= 0) || o->max_iter < 1 ||
        !(o->tol > 0))
        return ct_fail(err, CT_EINVAL,
                       "calibration: solint, min SNR, iterations or tolerance "
                       "out of range");
    for (size_t s = 0; s < o->n_model; s++)
        if (!isfinite(o->model[s].ra_rad) || !(fabs(o->model[s].dec_rad) <= M_PI / 2) ||
            !(o->model[s].flux_jy > 0) || !isfinite(o->model[s].spectral_index))
            return ct_fail(err, CT_EINVAL,
                           "calibration: model component %zu is not a position "
                           "and a positive flux",
                           s);
    reader r;
    model_ctx mc = {0};
    sums s = {0};
    double complex *gbuf = NULL;
    unsigned char *fbuf = NULL;
    double *sbuf = NULL;
    ct_code rc = reader_open(&r, vispath, err);
    const ct_uvh5_header *h = r.h;
    int feed_of_pol[8] = {-1, -1, -1, -1, -1, -1, -1, -1}, have[2] = {0, 0};
    for (int pi = 0; rc == CT_OK && pi < h->Npols && pi < 8; pi++) {
        int p, q;
        feeds_of(h->polarization_array[pi], &p, &q);
        if (p >= 0 && p == q) {
            feed_of_pol[pi] = p;
            have[p] = 1;
        }
    }
    if (rc == CT_OK && (!have[0] || !have[1] || h->Npols > 8))
        rc = ct_fail(err, CT_EINVAL, "calibration: %s has no XX and YY to solve on", vispath);
    if (rc == CT_OK)
        rc = model_init(&mc, h, o, err);
    if (rc != CT_OK)
        goto out;
    ct_caltable *t = out;
    int nant = 0;
    double t0 = INFINITY, t1 = -INFINITY;
    for (int b = 0; b < h->Nblts; b++) {
        nant = h->ant_1_array[b] + 1 > nant ? h->ant_1_array[b] + 1 : nant;
        nant = h->ant_2_array[b] + 1 > nant ? h->ant_2_array[b] + 1 : nant;
        const double half = 0.5 * h->integration_time[b] / 86400.0;
        t0 = fmin(t0, h->time_array[b] - half);
        t1 = fmax(t1, h->time_array[b] + half);
    }
    t->nant = nant;
    t->nchan = h->Nfreqs;
    t->refant = o->refant;
    t->solint_sec = o->solint_sec;
    t->t_start_jd = t0;
    t->t_end_jd = t1;
    snprintf(t->source, sizeof t->source, "%s", h->object_name ? h->object_name : "model");
    const double span = (t1 - t0) * 86400.0;
    t->ntime = o->solint_sec > 0 ? (int)ceil(span / o->solint_sec - 1e-9) : 1;
    t->ntime = t->ntime < 1 ? 1 : t->ntime;
    const size_t ng = (size_t)t->ntime * (size_t)nant * CT_CAL_NFEEDS;
    if ((rc = ct_caltable_alloc(t, t->nchan, nant, t->ntime, err)) != CT_OK)
        goto out;
    memcpy(t->freq_hz, h->freq_array, (size_t)t->nchan * sizeof *t->freq_hz);
    for (int k = 0; k < t->ntime; k++)
        t->time_jd[k] = t->ntime == 1 ? 0.5 * (t0 + t1)
                                      : fmin(t0 + (k + 0.5) * o->solint_sec / 86400.0,
                                             0.5 * (t0 + k * o->solint_sec / 86400.0 + t1));
    /* B: every channel and feed over the whole observation. */
    if ((rc = sums_alloc(&s, (size_t)t->nchan * CT_CAL_NFEEDS, nant, err)) != CT_OK ||
        (rc = accumulate(&r, &mc, t, feed_of_pol, false, &s, err)) != CT_OK)
        goto out;
    double rms_sum = 0;
    int rms_n = 0, usable = 0;
    gbuf = malloc(((size_t)nant + 1) * sizeof *gbuf);
    fbuf = malloc((size_t)nant + 1);
    sbuf = malloc(((size_t)nant + 1) * sizeof *sbuf);
    if (!gbuf || !fbuf || !sbuf) {
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
        goto out;
    }
    for (int c = 0; c < t->nchan; c++)
        for (int p = 0; p < CT_CAL_NFEEDS; p++) {
            double rms;
            const int it = stefcal(&s, (size_t)c * CT_CAL_NFEEDS + p, nant, o->refant, o, gbuf,
                                   fbuf, sbuf, &rms);
            t->iterations = it > t->iterations ? it : t->iterations;
            if (isfinite(rms)) {
                rms_sum += rms;
                rms_n++;
            }
            for (int a = 0; a < nant; a++) {
                const size_t k = ((size_t)c * nant + a) * CT_CAL_NFEEDS + p;
                t->bandpass[k] = gbuf[a];
                t->bp_flag[k] = fbuf[a];
                t->bp_snr[k] = sbuf[a];
                usable += !fbuf[a];
            }
        }
    t->rms_jy = rms_n ? rms_sum / rms_n : NAN;
    if (usable == 0) {
        rc = ct_fail(err, CT_EINVAL, "no data: no antenna has a usable bandpass solution in %s",
                     vispath);
        goto out;
    }
    fit_delays(t);
    /* G: per interval and feed, on the data divided by B. */
    for (size_t k = 0; k < ng; k++)
        t->gain[k] = 1, t->g_flag[k] = 0;
    if (o->solint_sec > 0) {
        sums_free(&s);
        memset(&s, 0, sizeof s);
        if ((rc = sums_alloc(&s, (size_t)t->ntime * CT_CAL_NFEEDS, nant, err)) != CT_OK ||
            (rc = accumulate(&r, &mc, t, feed_of_pol, true, &s, err)) != CT_OK)
            goto out;
        for (int k = 0; k < t->ntime; k++)
            for (int p = 0; p < CT_CAL_NFEEDS; p++) {
                double rms;
                stefcal(&s, (size_t)k * CT_CAL_NFEEDS + p, nant, o->refant, o, gbuf, fbuf, sbuf,
                        &rms);
                for (int a = 0; a < nant; a++) {
                    const size_t q = ((size_t)k * nant + a) * CT_CAL_NFEEDS + p;
                    t->gain[q] = gbuf[a];
                    t->g_flag[q] = fbuf[a];
                }
            }
    }
out:
    free(gbuf);
    free(fbuf);
    free(sbuf);
    sums_free(&s);
    free(mc.lmn);
    free(mc.amp);
    reader_close(&r);
    if (rc != CT_OK)
        ct_caltable_free(out);
    return rc;
}

/* --- Apply ---------------------------------------------------------------------- */

/* The interval of G nearest to jd. */
static int nearest_interval(const ct_caltable *t, double jd)
{
    int best = 0;
    for (int k = 1; k < t->ntime; k++)
        if (fabs(t->time_jd[k] - jd) < fabs(t->time_jd[best] - jd))
            best = k;
    return best;
}

ct_code ct_cal_apply(const char *vispath, const ct_caltable *t, const char *outpath,
                     ct_cal_apply_result *res, ct_err *err)
{
    struct timespec w0;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    memset(res, 0, sizeof *res);
    reader r;
    ct_uvh5_file *out = NULL;
    ct_code rc = reader_open(&r, vispath, err);
    const ct_uvh5_header *h = r.h;
    int pfeed[8], qfeed[8];
    for (int pi = 0; rc == CT_OK && pi < h->Npols; pi++) {
        if (pi >= 8) {
            rc = ct_fail(err, CT_EINVAL, "calibration: more than 8 polarizations");
            break;
        }
        feeds_of(h->polarization_array[pi], &pfeed[pi], &qfeed[pi]);
        if (pfeed[pi] < 0)
            rc = ct_fail(err, CT_EINVAL, "calibration: polarization %d is not of linear feeds",
                         h->polarization_array[pi]);
    }
    if (rc == CT_OK && h->Nfreqs != t->nchan)
        rc = ct_fail(err, CT_EINVAL, "calibration: %s has %d channels, the caltable %d", vispath,
                     h->Nfreqs, t->nchan);
    for (int c = 0; rc == CT_OK && c < t->nchan; c++)
        if (!(fabs(h->freq_array[c] - t->freq_hz[c]) <= 1e3))
            rc = ct_fail(err, CT_EINVAL,
                         "calibration: channel %d is at %.6f MHz in %s, %.6f MHz in the caltable",
                         c, h->freq_array[c] / 1e6, vispath, t->freq_hz[c] / 1e6);
    if (rc == CT_OK) {
        const ct_uvh5_write_opts layout = ct_uvh5_layout(r.f);
        rc = ct_uvh5_create(outpath, h, &layout, &out, err);
    }
    const int nf = rc == CT_OK ? h->Nfreqs : 0, np = rc == CT_OK ? h->Npols : 0;
    /* Per interval, each antenna's inverse gain 1 / (B G) per channel and feed
     * (0 where flagged) and |B G|^2: a sample then costs two complex products
     * (a division and two moduli per sample were most of an apply). */
    const size_t nj = (size_t)t->nchan * (size_t)t->nant * CT_CAL_NFEEDS;
    double complex *inv = rc == CT_OK ? malloc((nj + 1) * sizeof *inv) : NULL;
    double *pw = rc == CT_OK ? malloc((nj + 1) * sizeof *pw) : NULL;
    if (rc == CT_OK && (!inv || !pw))
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the inverse gains");
    int cur = -1;
    for (size_t b0 = 0; rc == CT_OK && b0 < (size_t)h->Nblts; b0 += CHUNK_BLTS) {
        const size_t nb = (size_t)h->Nblts - b0 < CHUNK_BLTS ? (size_t)h->Nblts - b0 : CHUNK_BLTS;
        if ((rc = ct_uvh5_read_blts(r.f, b0, nb, r.vis, r.fl, r.ns, err)) != CT_OK)
            break;
        for (size_t j = 0; j < nb; j++) {
            const size_t blt = b0 + j;
            const int a1 = h->ant_1_array[blt], a2 = h->ant_2_array[blt];
            const int ti = nearest_interval(t, h->time_array[blt]);
            if (ti != cur) {
                for (int c = 0; c < t->nchan; c++)
                    for (int a = 0; a < t->nant; a++)
                        for (int p = 0; p < CT_CAL_NFEEDS; p++) {
                            const size_t b = ((size_t)c * t->nant + a) * CT_CAL_NFEEDS + p,
                                         g = ((size_t)ti * t->nant + a) * CT_CAL_NFEEDS + p;
                            const double complex J = t->bandpass[b] * t->gain[g];
                            const double p2 = creal(J * conj(J));
                            const bool ok =
                                !t->bp_flag[b] && !t->g_flag[g] && p2 > 0 && isfinite(p2);
                            inv[b] = ok ? conj(J) / p2 : 0;
                            pw[b] = ok ? p2 : 0;
                        }
                cur = ti;
            }
            const bool known = a1 >= 0 && a2 >= 0 && a1 < t->nant && a2 < t->nant;
            for (int c = 0; c < nf; c++)
                for (int pi = 0; pi < np; pi++) {
                    const size_t k = (j * (size_t)nf + (size_t)c) * (size_t)np + (size_t)pi;
                    res->n_samples++;
                    const size_t k1 = ((size_t)c * t->nant + (known ? a1 : 0)) * CT_CAL_NFEEDS +
                                      pfeed[pi],
                                 k2 = ((size_t)c * t->nant + (known ? a2 : 0)) * CT_CAL_NFEEDS +
                                      qfeed[pi];
                    if (!known || pw[k1] == 0 || pw[k2] == 0) {
                        res->n_flagged_by_cal += !r.fl[k];
                        r.fl[k] = true;
                        continue;
                    }
                    /* V / (J_1 conj(J_2)) = V (1 / J_1) conj(1 / J_2) */
                    const double complex v =
                        CMPLX(r.vis[2 * k], r.vis[2 * k + 1]) * inv[k1] * conj(inv[k2]);
                    r.vis[2 * k] = (float)creal(v);
                    r.vis[2 * k + 1] = (float)cimag(v);
                    r.ns[k] = (float)(r.ns[k] * pw[k1] * pw[k2]);
                }
        }
        rc = ct_uvh5_write_blts(out, b0, nb, r.vis, r.fl, r.ns, err);
    }
    if (rc == CT_OK) {
        rc = ct_uvh5_close(out, err);
        out = NULL;
    }
    if (out)
        ct_uvh5_abort(out);
    free(inv);
    free(pw);
    reader_close(&r);
    struct timespec w1;
    clock_gettime(CLOCK_MONOTONIC, &w1);
    res->seconds = (double)(w1.tv_sec - w0.tv_sec) + 1e-9 * (double)(w1.tv_nsec - w0.tv_nsec);
    return rc;
}
