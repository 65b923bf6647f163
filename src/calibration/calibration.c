/* calibration.c -- the solver and the application (calibration.h). */
#define _GNU_SOURCE
#include "calibration.h"

#include "array.h"
#include "mpiutil.h"
#include "select.h"
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
    o->reject_sigma = 6.0;
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
    int c0, c1;  /* the channels this rank models, [c0, c1) */
} model_ctx;

static ct_code model_init(model_ctx *m, const ct_uvh5_header *h, const ct_cal_opts *o, int c0,
                          int c1, ct_err *err)
{
    memset(m, 0, sizeof *m);
    m->h = h;
    m->o = o;
    m->c0 = c0;
    m->c1 = c1;
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

/* The model's visibility on blt at the channels [c0, c1), into vis[c0..c1). */
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
    const int nf = h->Nfreqs, c0 = m->c0, c1 = m->c1;
    for (int c = c0; c < c1; c++)
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
        /* Stepped from the anchor at or below c0, as with every channel on one
         * rank: a channel's model is the same bits whichever rank holds it. */
        for (int c = m->df == 0 ? c0 : c0 - c0 % ANCHOR; c < c1; c++) {
            e = m->df == 0 || c % ANCHOR == 0 ? cexp(I * k * f[c]) : e * step;
            if (c >= c0)
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

/* Rounds of outlier rejection at most (each leaves out the baselines within a
 * factor 2 of the worst: outliers over a range of 2^6 in residual). */
enum { REJECT_ROUNDS = 6 };

/* StefCal's iterations on the dense sums A, B (na x na) from g, for the
 * antennas not flagged. Returns the iterations taken. */
static int stefcal_iterate(const double complex *A, const double *B, int nant,
                           const unsigned char *flag, const ct_cal_opts *o, double complex *g,
                           double complex *gn)
{
    const size_t na = (size_t)nant;
    int it;
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
    return it > o->max_iter ? o->max_iter : it;
}

/* Solves one solution's gains g[nant] (flag[a] set where an antenna has no
 * data, or its SNR is below min_snr; the phase of refant, or of the first
 * antenna with data, is 0). With o->reject_sigma, a baseline whose residual
 * per sample lies more than reject_sigma robust standard deviations (1.4826
 * MAD) above the median of all is left out and the gains solved again, worst
 * first, in rounds: a broken correlator input or a baseline drowned in
 * interference would otherwise pull both its antennas' gains. Returns the iterations taken; *rms
 * the residual per unit weight, *rejected the baselines left out. */
static int stefcal(const sums *s, size_t sol, int nant, int refant, const ct_cal_opts *o,
                   double complex *g, unsigned char *flag, double *snr, double *rms, int *rejected)
{
    /* The solution's sums gathered once into full nant x nant matrices
     * (A Hermitian, B symmetric): the iterations then read rows, not cells
     * nsol apart (which made StefCal half of a full-size solve). */
    const size_t na = (size_t)nant, npair = na * (na - 1) / 2;
    double complex *gn = malloc((na + 1) * sizeof *gn), *A = malloc((na * na + 1) * sizeof *A);
    double *B = malloc((na * na + 1) * sizeof *B), *r = malloc((npair + 1) * sizeof *r),
           *rs = malloc((npair + 1) * sizeof *rs);
    unsigned char *out = calloc(npair + 1, 1); /* a baseline left out */
    *rejected = 0;
    if (!gn || !A || !B || !r || !rs || !out) {
        for (int a = 0; a < nant; a++) {
            flag[a] = 1;
            g[a] = 0;
            snr[a] = 0;
        }
        free(gn);
        free(A);
        free(B);
        free(r);
        free(rs);
        free(out);
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
    int it = stefcal_iterate(A, B, nant, flag, o, g, gn);
    double chi2 = 0, nsamp = 0;
    for (int round = 0;; round++) {
        /* The residual: per baseline C - 2 Re(conj(G) A) + |G|^2 B, G = g_i conj(g_j). */
        chi2 = 0;
        nsamp = 0;
        size_t nr = 0, p = 0;
        for (int i = 0; i < nant; i++)
            for (int j = i + 1; j < nant; j++, p++) {
                r[p] = NAN;
                const size_t k = ((size_t)i * na + (size_t)j) * s->nsol + sol;
                if (flag[i] || flag[j] || out[p] || !(s->n[k] > 0))
                    continue;
                const double complex G = g[i] * conj(g[j]);
                const double c2 =
                    s->C[k] - 2 * creal(conj(G) * s->A[k]) + creal(G * conj(G)) * s->B[k];
                chi2 += c2;
                nsamp += s->n[k];
                r[p] = fmax(c2, 0) / s->n[k];
                rs[nr++] = r[p];
            }
        if (round == REJECT_ROUNDS || !(o->reject_sigma > 0) || nr < 8)
            break;
        double rmax = 0;
        for (size_t q = 0; q < nr; q++)
            rmax = fmax(rmax, rs[q]);
        const double med = ct_select_kth(rs, nr, nr / 2);
        for (size_t q = 0; q < nr; q++)
            rs[q] = fabs(rs[q] - med);
        /* Worst first: an outlier pulls its antennas' gains, and so raises the
         * residual of their every other baseline (at high SNR above any cut);
         * leaving out only those within a factor 2 of the worst, then solving
         * again, takes the outliers and spares the baselines they pulled. */
        const double cut =
            fmax(med + o->reject_sigma * 1.4826 * ct_select_kth(rs, nr, nr / 2), 0.5 * rmax);
        int n_out = 0;
        p = 0;
        for (int i = 0; i < nant; i++)
            for (int j = i + 1; j < nant; j++, p++)
                if (r[p] > cut) {
                    out[p] = 1;
                    n_out++;
                    A[(size_t)i * na + (size_t)j] = A[(size_t)j * na + (size_t)i] = 0;
                    B[(size_t)i * na + (size_t)j] = B[(size_t)j * na + (size_t)i] = 0;
                }
        if (n_out == 0)
            break;
        *rejected += n_out;
        for (int a = 0; a < nant; a++) {
            double b = 0;
            for (int j = 0; j < nant; j++)
                b += B[(size_t)a * na + (size_t)j];
            if (!(b > 0)) {
                flag[a] = 1;
                g[a] = 0;
            }
        }
        const int more = stefcal_iterate(A, B, nant, flag, o, g, gn);
        it = it + more > o->max_iter ? o->max_iter : it + more;
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
    int nact = 0;
    for (int i = 0; i < nant; i++)
        nact += !flag[i];
    const double dof = 2 * nsamp - 2 * nact;
    const double sigma2 = dof > 0 ? fmax(chi2, 0) / dof : NAN;
    *rms = sqrt(sigma2);
    for (int i = 0; i < nant; i++) {
        if (flag[i]) {
            snr[i] = 0;
            continue;
        }
        double pw = 0;
        for (int j = 0; j < nant; j++)
            pw += B[(size_t)i * na + (size_t)j] * creal(g[j] * conj(g[j]));
        /* |g| over its standard error sqrt(sigma^2 / p); a noiseless fit: no limit. */
        snr[i] = sigma2 > 0 ? cabs(g[i]) * sqrt(pw / sigma2) : INFINITY;
        if (!(snr[i] >= o->min_snr))
            flag[i] = 1;
    }
    free(gn);
    free(A);
    free(B);
    free(r);
    free(rs);
    free(out);
    return it;
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

/* The G interval of a sample at jd: solint-long intervals from the first
 * sample's time origin_jd (so that none but perhaps the last is short, and
 * none is empty when solint is at least an integration). */
static size_t gain_interval(const ct_caltable *t, double origin_jd, double jd)
{
    if (t->ntime <= 1)
        return 0;
    const double x = (jd - origin_jd) * 86400.0 / t->solint_sec + 1e-9;
    return x <= 0 ? 0 : x >= (double)t->ntime ? (size_t)t->ntime - 1 : (size_t)x;
}

/* Accumulates the sums of the file's samples in channels [c0, c1): B's
 * solution is the channel (counted from c0) and feed; G's (for_gain) the
 * interval and feed, on the data first divided by B. */
static ct_code accumulate(reader *r, model_ctx *mc, const ct_caltable *t, const int *feed_of_pol,
                          int c0, int c1, bool for_gain, double origin_jd, sums *s, ct_err *err)
{
    const ct_uvh5_header *h = r->h;
    const int nf = h->Nfreqs, np = h->Npols, nant = t->nant;
    if (c0 >= c1)
        return CT_OK; /* a rank with no channels (more ranks than channels) reads nothing */
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
            const size_t ti = for_gain ? gain_interval(t, origin_jd, h->time_array[blt]) : 0;
            for (int c = c0; c < c1; c++) {
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
                        sol = (size_t)(c - c0) * CT_CAL_NFEEDS + (size_t)fe;
                    sums_add(s, sol, nant, a1, a2, v, m, w);
                }
            }
        }
    }
    return CT_OK;
}

/* Channels [*c0, *c1) of nchan dealt to rank of size: contiguous blocks
 * differing by at most one channel. */
static void channel_block(int nchan, int rank, int size, int *c0, int *c1)
{
    *c0 = (int)((long long)nchan * rank / size);
    *c1 = (int)((long long)nchan * (rank + 1) / size);
}

ct_code ct_cal_solve(MPI_Comm comm, const char *vispath, const ct_cal_opts *o, ct_caltable *out,
                     ct_err *err)
{
    memset(out, 0, sizeof *out);
    /* The options are the same on every rank, so every rank returns alike. */
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
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    reader r;
    model_ctx mc = {0};
    sums s = {0};
    double complex *gbuf = NULL;
    unsigned char *fbuf = NULL;
    double *sbuf = NULL;
    int *counts = NULL, *displs = NULL;
    ct_caltable *t = out;
    int nant = 0, c0 = 0, c1 = 0;
    double first = INFINITY, last = -INFINITY; /* the first and last sample's time */
    /* [0] the bandpass fits' rms summed, [1] how many, [2] usable solutions,
     * [3] baselines left out */
    double stat[4] = {0, 0, 0, 0};
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
    if (rc == CT_OK) {
        channel_block(h->Nfreqs, rank, size, &c0, &c1);
        rc = model_init(&mc, h, o, c0, c1, err);
    }
    if (rc != CT_OK)
        goto b_solved;
    if (h->Nblts < 1) {
        rc = ct_fail(err, CT_EINVAL, "no data: %s has no baseline-times", vispath);
        goto b_solved;
    }
    double t0 = INFINITY, t1 = -INFINITY;
    for (int b = 0; b < h->Nblts; b++) {
        first = fmin(first, h->time_array[b]);
        last = fmax(last, h->time_array[b]);
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
    /* G's intervals: solint long from the first sample, as many as the samples
     * reach into. */
    t->ntime =
        o->solint_sec > 0 ? (int)floor((last - first) * 86400.0 / o->solint_sec + 1e-9) + 1 : 1;
    if ((rc = ct_caltable_alloc(t, t->nchan, nant, t->ntime, err)) != CT_OK)
        goto b_solved;
    memcpy(t->freq_hz, h->freq_array, (size_t)t->nchan * sizeof *t->freq_hz);
    /* Each interval's time: the mean of its samples' (the time its G is the
     * gain of, for a drift that is near linear across it); an empty one's
     * middle. */
    for (int k = 0; k < t->ntime; k++)
        t->time_jd[k] = 0;
    size_t *count = calloc((size_t)t->ntime + 1, sizeof *count);
    if (!count) {
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
        goto b_solved;
    }
    for (int b = 0; b < h->Nblts; b++) {
        const size_t k = gain_interval(t, first, h->time_array[b]);
        t->time_jd[k] += h->time_array[b] - first;
        count[k]++;
    }
    for (int k = 0; k < t->ntime; k++)
        t->time_jd[k] = first + (count[k] ? t->time_jd[k] / (double)count[k]
                                          : (k + 0.5) * o->solint_sec / 86400.0);
    free(count);
    gbuf = malloc(((size_t)nant + 1) * sizeof *gbuf);
    fbuf = malloc((size_t)nant + 1);
    sbuf = malloc(((size_t)nant + 1) * sizeof *sbuf);
    counts = malloc((size_t)size * sizeof *counts);
    displs = malloc((size_t)size * sizeof *displs);
    if (!gbuf || !fbuf || !sbuf || !counts || !displs) {
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
        goto b_solved;
    }
    /* B: this rank's channels, every feed, over the whole observation. A
     * channel's sums come from its samples alone, so its solution is the same
     * bits on any number of ranks. */
    if ((rc = sums_alloc(&s, (size_t)(c1 - c0) * CT_CAL_NFEEDS, nant, err)) != CT_OK ||
        (rc = accumulate(&r, &mc, t, feed_of_pol, c0, c1, false, first, &s, err)) != CT_OK)
        goto b_solved;
    for (int c = c0; c < c1; c++)
        for (int p = 0; p < CT_CAL_NFEEDS; p++) {
            double rms;
            int rej;
            const int it = stefcal(&s, (size_t)(c - c0) * CT_CAL_NFEEDS + p, nant, o->refant, o,
                                   gbuf, fbuf, sbuf, &rms, &rej);
            stat[3] += rej;
            t->iterations = it > t->iterations ? it : t->iterations;
            if (isfinite(rms)) {
                stat[0] += rms;
                stat[1] += 1;
            }
            for (int a = 0; a < nant; a++) {
                const size_t k = ((size_t)c * nant + a) * CT_CAL_NFEEDS + p;
                t->bandpass[k] = gbuf[a];
                t->bp_flag[k] = fbuf[a];
                t->bp_snr[k] = sbuf[a];
                stat[2] += !fbuf[a];
            }
        }
b_solved:
    /* Every rank reaches here, failed or not: one error for all, or none. */
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto out;
    const int per_chan = nant * CT_CAL_NFEEDS;
    for (int q = 0; q < size; q++) {
        int q0, q1;
        channel_block(t->nchan, q, size, &q0, &q1);
        counts[q] = (q1 - q0) * per_chan;
        displs[q] = q0 * per_chan;
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, t->bandpass, counts, displs,
                   MPI_C_DOUBLE_COMPLEX, comm);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, t->bp_flag, counts, displs,
                   MPI_UNSIGNED_CHAR, comm);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, t->bp_snr, counts, displs, MPI_DOUBLE, comm);
    MPI_Allreduce(MPI_IN_PLACE, &t->iterations, 1, MPI_INT, MPI_MAX, comm);
    MPI_Allreduce(MPI_IN_PLACE, stat, 4, MPI_DOUBLE, MPI_SUM, comm);
    t->rejected = (long)stat[3];
    t->rms_jy = stat[1] > 0 ? stat[0] / stat[1] : NAN;
    if (stat[2] == 0) {
        rc = ct_fail(err, CT_EINVAL, "no data: no antenna has a usable bandpass solution in %s",
                     vispath);
        goto out;
    }
    fit_delays(t);
    /* G: per interval and feed, on the data divided by B; each rank sums its
     * channels, and rank 0 solves on the sums of all. */
    const size_t ng = (size_t)t->ntime * (size_t)nant * CT_CAL_NFEEDS;
    for (size_t k = 0; k < ng; k++)
        t->gain[k] = 1, t->g_flag[k] = 0;
    if (o->solint_sec > 0) {
        sums_free(&s);
        memset(&s, 0, sizeof s);
        rc = sums_alloc(&s, (size_t)t->ntime * CT_CAL_NFEEDS, nant, err);
        if (rc == CT_OK)
            rc = accumulate(&r, &mc, t, feed_of_pol, c0, c1, true, first, &s, err);
        if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
            goto out;
        const int n = (int)(s.nsol * (size_t)nant * (size_t)nant);
        MPI_Reduce(rank == 0 ? MPI_IN_PLACE : s.A, s.A, n, MPI_C_DOUBLE_COMPLEX, MPI_SUM, 0, comm);
        MPI_Reduce(rank == 0 ? MPI_IN_PLACE : s.B, s.B, n, MPI_DOUBLE, MPI_SUM, 0, comm);
        MPI_Reduce(rank == 0 ? MPI_IN_PLACE : s.C, s.C, n, MPI_DOUBLE, MPI_SUM, 0, comm);
        MPI_Reduce(rank == 0 ? MPI_IN_PLACE : s.n, s.n, n, MPI_DOUBLE, MPI_SUM, 0, comm);
        for (int k = 0; rank == 0 && k < t->ntime; k++)
            for (int p = 0; p < CT_CAL_NFEEDS; p++) {
                double rms;
                int rej;
                stefcal(&s, (size_t)k * CT_CAL_NFEEDS + p, nant, o->refant, o, gbuf, fbuf, sbuf,
                        &rms, &rej);
                t->g_rejected += rej;
                for (int a = 0; a < nant; a++) {
                    const size_t q = ((size_t)k * nant + a) * CT_CAL_NFEEDS + p;
                    t->gain[q] = gbuf[a];
                    t->g_flag[q] = fbuf[a];
                }
            }
        MPI_Bcast(t->gain, (int)ng, MPI_C_DOUBLE_COMPLEX, 0, comm);
        MPI_Bcast(t->g_flag, (int)ng, MPI_UNSIGNED_CHAR, 0, comm);
        MPI_Bcast(&t->g_rejected, 1, MPI_LONG, 0, comm);
    }
out:
    free(gbuf);
    free(fbuf);
    free(sbuf);
    free(counts);
    free(displs);
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

double complex ct_caltable_gain_at(const ct_caltable *t, int ant, int feed, double jd)
{
    const int k = nearest_interval(t, jd);
    int n = jd >= t->time_jd[k] ? k + 1 : k - 1;
    const size_t g = ((size_t)k * t->nant + ant) * CT_CAL_NFEEDS + feed;
    if (t->g_flag[g])
        return 0;
    if (n < 0 || n >= t->ntime) {
        /* Past the first or last interval's time: within the calibrator's own
         * observation the line through the two end intervals goes on (its
         * first and last samples are half an interval from them); beyond it,
         * the end's value. */
        if (jd < t->t_start_jd || jd > t->t_end_jd)
            return t->gain[g];
        n = n < 0 ? k + 1 : k - 1;
        if (n < 0 || n >= t->ntime)
            return t->gain[g];
    }
    const size_t q = ((size_t)n * t->nant + ant) * CT_CAL_NFEEDS + feed;
    const double span = t->time_jd[n] - t->time_jd[k];
    if (t->g_flag[q] || span == 0)
        return t->gain[g];
    /* Amplitude and phase apart: a straight line between two complex values
     * would shrink the amplitude wherever their phases differ. */
    const double w = (jd - t->time_jd[k]) / span;
    const double amp = (1 - w) * cabs(t->gain[g]) + w * cabs(t->gain[q]);
    const double phase = carg(t->gain[g]) + w * carg(t->gain[q] * conj(t->gain[g]));
    return amp * cexp(I * phase);
}

/* Calibrates in place the baseline-times [b0, b0 + nb) read into r's buffers:
 * inv and pw are each antenna's inverse bandpass and its power per channel and
 * feed (0 where flagged). */
static void calibrate_block(reader *r, const ct_caltable *t, size_t b0, size_t nb, const int *pfeed,
                            const int *qfeed, const double complex *inv, const double *pw,
                            ct_cal_apply_result *res)
{
    const ct_uvh5_header *h = r->h;
    const int nf = h->Nfreqs, np = h->Npols;
    for (size_t j = 0; j < nb; j++) {
        const size_t blt = b0 + j;
        const int a1 = h->ant_1_array[blt], a2 = h->ant_2_array[blt];
        const bool known = a1 >= 0 && a2 >= 0 && a1 < t->nant && a2 < t->nant;
        /* 1 / (G_1 conj(G_2)) and |G_1 G_2|^2 per polarization (0: flagged). */
        double complex ginv[8];
        double gpw[8];
        for (int pi = 0; pi < np; pi++) {
            ginv[pi] = 0;
            gpw[pi] = 0;
            if (!known)
                continue;
            const double jd = h->time_array[blt];
            const double complex g = ct_caltable_gain_at(t, a1, pfeed[pi], jd) *
                                     conj(ct_caltable_gain_at(t, a2, qfeed[pi], jd));
            const double p2 = creal(g * conj(g));
            if (p2 > 0 && isfinite(p2)) {
                ginv[pi] = conj(g) / p2;
                gpw[pi] = p2;
            }
        }
        for (int c = 0; c < nf; c++)
            for (int pi = 0; pi < np; pi++) {
                const size_t k = (j * (size_t)nf + (size_t)c) * (size_t)np + (size_t)pi;
                res->n_samples++;
                const size_t k1 = ((size_t)c * t->nant + (known ? a1 : 0)) * CT_CAL_NFEEDS +
                                  pfeed[pi],
                             k2 = ((size_t)c * t->nant + (known ? a2 : 0)) * CT_CAL_NFEEDS +
                                  qfeed[pi];
                if (!known || pw[k1] == 0 || pw[k2] == 0 || gpw[pi] == 0) {
                    res->n_flagged_by_cal += !r->fl[k];
                    r->fl[k] = true;
                    continue;
                }
                /* V / (J_1 conj(J_2)) = V (1 / B_1) conj(1 / B_2) / (G_1 conj(G_2)) */
                const double complex v =
                    CMPLX(r->vis[2 * k], r->vis[2 * k + 1]) * inv[k1] * conj(inv[k2]) * ginv[pi];
                r->vis[2 * k] = (float)creal(v);
                r->vis[2 * k + 1] = (float)cimag(v);
                r->ns[k] = (float)(r->ns[k] * pw[k1] * pw[k2] * gpw[pi]);
            }
    }
}

ct_code ct_cal_apply(MPI_Comm comm, const char *vispath, const ct_caltable *t, const char *outpath,
                     ct_cal_apply_result *res, ct_err *err)
{
    const double w0 = MPI_Wtime();
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    memset(res, 0, sizeof *res);
    reader r;
    ct_uvh5_file *out = NULL;
    double complex *inv = NULL;
    double *pw = NULL;
    char tmp[4096];
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
    /* Each antenna's inverse bandpass 1 / B per channel and feed (0 where
     * flagged) and |B|^2, once; per baseline-time the two antennas' inverse G
     * per polarization: a sample then costs three complex products (a division
     * and two moduli per sample were most of an apply). */
    const size_t nj = (size_t)t->nchan * (size_t)t->nant * CT_CAL_NFEEDS;
    if (rc == CT_OK) {
        inv = malloc((nj + 1) * sizeof *inv);
        pw = malloc((nj + 1) * sizeof *pw);
        if (!inv || !pw)
            rc = ct_fail(err, CT_ENOMEM, "out of memory for the inverse gains");
    }
    for (size_t b = 0; rc == CT_OK && b < nj; b++) {
        const double complex B = t->bandpass[b];
        const double p2 = creal(B * conj(B));
        const bool ok = !t->bp_flag[b] && p2 > 0 && isfinite(p2);
        inv[b] = ok ? conj(B) / p2 : 0;
        pw[b] = ok ? p2 : 0;
    }
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK ||
        (rc = ct_uvh5_pcreate_beside(comm, outpath, h, tmp, sizeof tmp, &out, err)) != CT_OK)
        goto done;
    /* Blocks of baseline-times dealt round-robin, one per rank a round, each
     * read, calibrated and written collectively. */
    const size_t nblt = (size_t)h->Nblts, nchunk = (nblt + CHUNK_BLTS - 1) / CHUNK_BLTS;
    const size_t rounds = (nchunk + (size_t)size - 1) / (size_t)size;
    for (size_t round = 0; round < rounds; round++) {
        const size_t c = round * (size_t)size + (size_t)rank, b0 = c * CHUNK_BLTS;
        size_t nb = 0;
        if (rc == CT_OK && c < nchunk) {
            nb = nblt - b0 < CHUNK_BLTS ? nblt - b0 : CHUNK_BLTS;
            rc = ct_uvh5_read_blts(r.f, b0, nb, r.vis, r.fl, r.ns, err);
            if (rc == CT_OK)
                calibrate_block(&r, t, b0, nb, pfeed, qfeed, inv, pw, res);
        }
        ct_err we;
        const ct_code wrc = ct_uvh5_pwrite(out, rc == CT_OK ? b0 : 0, rc == CT_OK ? nb : 0, 0,
                                           (size_t)h->Nfreqs, r.vis, r.fl, r.ns, &we);
        if (rc == CT_OK && wrc != CT_OK) {
            rc = wrc;
            if (err)
                *err = we;
        }
    }
    rc = ct_uvh5_pcommit(comm, out, rc, tmp, outpath, err);
    if (rc == CT_OK) {
        unsigned long long n[2] = {res->n_samples, res->n_flagged_by_cal};
        MPI_Allreduce(MPI_IN_PLACE, n, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
        res->n_samples = (size_t)n[0];
        res->n_flagged_by_cal = (size_t)n[1];
    }
done:
    free(inv);
    free(pw);
    reader_close(&r);
    double dt = MPI_Wtime() - w0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, comm);
    res->seconds = dt;
    return rc;
}
