/* tfflag.c -- see tfflag.h: one time-frequency plane's interference. */
#define _GNU_SOURCE /* M_LN2 */
#include "tfflag.h"

#include "select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The noise is measured in blocks of this many channels (see noise()). */
enum { NOISE_BLOCK = 8 };

/* Fewer unflagged samples than this leave a block's noise unknown (the other
 * blocks' median then stands in). */
enum { NOISE_MIN_SAMPLES = 16 };

struct ct_tfflag_work {
    int nt, nf;
    float complex *bg; /* [t][f] background; NAN where no unflagged sample is near */
    float *z;          /* [t][f] the statistic */
    uint8_t *cur;      /* [t][f] the flags so far */
    uint8_t *next;     /* [t][f] this window length's */
    /* The background's arrays, channel-major ([f][t]) so that every loop
     * along frequency runs over all integrations at once: the prefix sums
     * of one integration are a chain of dependent additions, those of 24 are
     * 24 independent ones side by side (the background was a third of a run
     * as one chain). */
    double complex *a, *pa; /* [f][t] the masked data, then its smoothings; [f + 1][t] */
    double *d, *pd;         /* the mask's */
    /* SumThreshold's line sums (st_pass). */
    double *sum;
    int *marked;
    float *med;       /* nf: per-block median |R|^2 */
    float *smed;      /* nf: each channel's (its block's) */
    float *tmp;       /* nt x NOISE_BLOCK */
    double *p, *rmax; /* max(nt, nf) + 1: SIR */
};

void ct_tfflag_opts_default(ct_tfflag_opts *o)
{
    o->threshold = 10.0;
    o->rho = 1.5;
    o->max_window_chan = 32;
    o->max_window_time = 16;
    o->rounds = 2;
    o->background_half = 3;
    o->eta = 0.2;
}

ct_code ct_tfflag_opts_check(const ct_tfflag_opts *o, ct_err *err)
{
    if (!(o->threshold > 0) || !isfinite(o->threshold))
        return ct_fail(err, CT_EINVAL, "flagging: threshold %g must be positive", o->threshold);
    if (!(o->rho >= 1) || !isfinite(o->rho))
        return ct_fail(err, CT_EINVAL, "flagging: rho %g must be at least 1", o->rho);
    if (o->max_window_chan < 1 || o->max_window_time < 1)
        return ct_fail(err, CT_EINVAL, "flagging: windows (%d, %d) must be at least 1",
                       o->max_window_chan, o->max_window_time);
    if (o->rounds < 1 || o->rounds > 10)
        return ct_fail(err, CT_EINVAL, "flagging: rounds %d outside 1..10", o->rounds);
    if (o->background_half < 1)
        return ct_fail(err, CT_EINVAL, "flagging: background half-width %d must be at least 1",
                       o->background_half);
    if (!(o->eta >= 0 && o->eta < 1))
        return ct_fail(err, CT_EINVAL, "flagging: eta %g outside [0, 1)", o->eta);
    return CT_OK;
}

ct_code ct_tfflag_work_create(int nt, int nf, ct_tfflag_work **out, ct_err *err)
{
    *out = NULL;
    if (nt < 1 || nf < 1)
        return ct_fail(err, CT_EINVAL, "flagging: a plane of %d x %d", nt, nf);
    ct_tfflag_work *w = calloc(1, sizeof *w);
    if (!w)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    const size_t np = (size_t)nt * (size_t)nf, nl = (size_t)(nt > nf ? nt : nf) + 1;
    w->nt = nt;
    w->nf = nf;
    w->bg = malloc(np * sizeof *w->bg);
    w->z = malloc(np * sizeof *w->z);
    w->cur = malloc(np);
    w->next = malloc(np);
    w->pa = malloc(((size_t)nf + 1) * (size_t)nt * sizeof *w->pa);
    w->pd = malloc(((size_t)nf + 1) * (size_t)nt * sizeof *w->pd);
    w->a = malloc(np * sizeof *w->a);
    w->d = malloc(np * sizeof *w->d);
    w->sum = malloc(nl * sizeof *w->sum);
    w->marked = malloc(nl * sizeof *w->marked);
    w->med = malloc((size_t)nf * sizeof *w->med);
    w->smed = malloc((size_t)nf * sizeof *w->smed);
    w->tmp = malloc(((size_t)nt * NOISE_BLOCK + nl) * sizeof *w->tmp);
    w->p = malloc(nl * sizeof *w->p);
    w->rmax = malloc(nl * sizeof *w->rmax);
    if (!w->bg || !w->z || !w->cur || !w->next || !w->pa || !w->pd || !w->a || !w->d || !w->med ||
        !w->smed || !w->tmp || !w->p || !w->rmax || !w->sum || !w->marked) {
        ct_tfflag_work_destroy(w);
        return ct_fail(err, CT_ENOMEM, "out of memory for a %d x %d plane", nt, nf);
    }
    *out = w;
    return CT_OK;
}

void ct_tfflag_work_destroy(ct_tfflag_work *w)
{
    if (!w)
        return;
    free(w->bg);
    free(w->z);
    free(w->cur);
    free(w->next);
    free(w->pa);
    free(w->pd);
    free(w->a);
    free(w->d);
    free(w->sum);
    free(w->marked);
    free(w->med);
    free(w->smed);
    free(w->tmp);
    free(w->p);
    free(w->rmax);
    free(w);
}

/* One box of 2 h + 1 channels over a and d (clipped at the ends), in place,
 * every integration at once, through prefix sums (in double: the differences
 * of long sums lose nothing that matters at float32 data). */
static void box(ct_tfflag_work *w, int nt, int nf, int h)
{
    const size_t T = (size_t)nt;
    for (size_t t = 0; t < T; t++) {
        w->pa[t] = 0;
        w->pd[t] = 0;
    }
    for (int f = 0; f < nf; f++) {
        const double complex *af = w->a + (size_t)f * T, *p0 = w->pa + (size_t)f * T;
        const double *df = w->d + (size_t)f * T, *q0 = w->pd + (size_t)f * T;
        double complex *p1 = w->pa + ((size_t)f + 1) * T;
        double *q1 = w->pd + ((size_t)f + 1) * T;
        for (size_t t = 0; t < T; t++) {
            p1[t] = p0[t] + af[t];
            q1[t] = q0[t] + df[t];
        }
    }
    for (int f = 0; f < nf; f++) {
        const int lo = f - h < 0 ? 0 : f - h, hi = f + h + 1 > nf ? nf : f + h + 1;
        const double complex *ph = w->pa + (size_t)hi * T, *pl = w->pa + (size_t)lo * T;
        const double *qh = w->pd + (size_t)hi * T, *ql = w->pd + (size_t)lo * T;
        double complex *af = w->a + (size_t)f * T;
        double *df = w->d + (size_t)f * T;
        for (size_t t = 0; t < T; t++) {
            af[t] = ph[t] - pl[t];
            df[t] = qh[t] - ql[t];
        }
    }
}

/* The background of each integration (see tfflag.h) under the flags cur. */
static void background(ct_tfflag_work *w, int nt, int nf, int h, const float complex *vis)
{
    for (int t = 0; t < nt; t++)
        for (int f = 0; f < nf; f++) {
            const size_t i = (size_t)t * nf + f, k = (size_t)f * nt + t;
            w->a[k] = w->cur[i] ? 0 : (double complex)vis[i];
            w->d[k] = w->cur[i] ? 0 : 1;
        }
    for (int pass = 0; pass < 3; pass++)
        box(w, nt, nf, h);
    for (int t = 0; t < nt; t++)
        for (int f = 0; f < nf; f++) {
            const size_t k = (size_t)f * nt + t;
            w->bg[(size_t)t * nf + f] =
                w->d[k] > 1e-9 ? (float complex)(w->a[k] / w->d[k]) : (float complex)NAN;
        }
}

static int usable(const ct_tfflag_work *w, size_t i)
{
    return !w->cur[i] && !isnan(crealf(w->bg[i]));
}

static float power(const float complex *vis, const ct_tfflag_work *w, size_t i)
{
    const float complex r = vis[i] - w->bg[i];
    return crealf(r) * crealf(r) + cimagf(r) * cimagf(r);
}

/* The noise: smed[f], the median |R|^2 over the unflagged samples of the
 * block of NOISE_BLOCK channels (all integrations) that holds f; a block with
 * fewer than NOISE_MIN_SAMPLES takes the median of the others. Returns 0 when
 * none has enough. Blocks, not a running median per channel: the same
 * robustness and bandpass-following (DSA-110's subbands are 48 channels, six
 * blocks) at a quickselect per block instead of two sorts per channel, which
 * were a third of a run. */
static int noise(ct_tfflag_work *w, int nt, int nf, const float complex *vis)
{
    const int nb = (nf + NOISE_BLOCK - 1) / NOISE_BLOCK;
    size_t good = 0;
    for (int b = 0; b < nb; b++) {
        const int f0 = b * NOISE_BLOCK, f1 = f0 + NOISE_BLOCK < nf ? f0 + NOISE_BLOCK : nf;
        size_t k = 0;
        for (int t = 0; t < nt; t++)
            for (int f = f0; f < f1; f++) {
                const size_t i = (size_t)t * nf + f;
                if (usable(w, i))
                    w->tmp[k++] = power(vis, w, i);
            }
        w->med[b] = k >= NOISE_MIN_SAMPLES ? ct_select_kthf(w->tmp, k, k / 2) : NAN;
        if (!isnan(w->med[b]))
            w->smed[good++] = w->med[b];
    }
    if (good == 0)
        return 0;
    const float all = ct_select_kthf(w->smed, good, good / 2);
    for (int f = 0; f < nf; f++) {
        const float m = w->med[f / NOISE_BLOCK];
        w->smed[f] = isnan(m) ? all : m;
    }
    return 1;
}

/* SumThreshold with windows of M along the outer axis of [nout][nin] arrays,
 * every inner line at once (their sums side by side, so that the loops
 * vectorize): a window whose sum (flagged samples counting chi) passes M chi
 * sets its samples in out. Each line's sum is formed as one line alone would
 * form it. */
static void st_pass(ct_tfflag_work *w, const float *restrict z, const uint8_t *restrict m,
                    uint8_t *restrict out, int nout, int nin, int M, double chi)
{
    if (M > nout)
        return;
    double *restrict sum = w->sum;
    int *restrict marked = w->marked; /* per line: samples below this are set already */
    for (int j = 0; j < nin; j++) {
        sum[j] = 0;
        marked[j] = 0;
    }
    for (int o = 0; o < M; o++) {
        const float *restrict zo = z + (size_t)o * nin;
        const uint8_t *restrict mo = m + (size_t)o * nin;
        for (int j = 0; j < nin; j++) {
            /* Both loads unconditional: a select, which vectorizes. */
            const double zz = zo[j];
            sum[j] += mo[j] ? chi : zz;
        }
    }
    const double limit = M * chi;
    int any = 0; /* some window of this position passes: rare, so looked for in bulk */
    for (int j = 0; j < nin; j++)
        any |= sum[j] > limit;
    for (int i = 0;; i++) {
        for (int j = 0; any && j < nin; j++)
            if (sum[j] > limit) {
                for (int o = i > marked[j] ? i : marked[j]; o < i + M; o++)
                    out[(size_t)o * nin + j] = 1;
                marked[j] = i + M;
            }
        if (i + M >= nout)
            break;
        const float *restrict zi = z + (size_t)i * nin, *restrict zn = z + (size_t)(i + M) * nin;
        const uint8_t *restrict mi = m + (size_t)i * nin, *restrict mn = m + (size_t)(i + M) * nin;
        any = 0;
        for (int j = 0; j < nin; j++) {
            const double a = zn[j], b = zi[j];
            sum[j] += (mn[j] ? chi : a) - (mi[j] ? chi : b);
            any |= sum[j] > limit;
        }
    }
}

/* SumThreshold along one contiguous line of n samples (a row: windows along
 * frequency): the windows of M whose sum passes M chi set their samples in
 * out. The same sums as st_pass forms for one of its lines. */
static void st_line(const float *z, const uint8_t *m, uint8_t *out, int n, int M, double chi)
{
    if (M > n)
        return;
    double sum = 0;
    for (int j = 0; j < M; j++)
        sum += m[j] ? chi : (double)z[j];
    int marked = 0; /* samples below this are set already */
    for (int i = 0;; i++) {
        if (sum > M * chi) {
            for (int j = i > marked ? i : marked; j < i + M; j++)
                out[j] = 1;
            marked = i + M;
        }
        if (i + M >= n)
            break;
        sum += (m[i + M] ? chi : (double)z[i + M]) - (m[i] ? chi : (double)z[i]);
    }
}

void ct_tfflag_sumthreshold(ct_tfflag_work *w, const ct_tfflag_opts *o, int nt, int nf,
                            const float *z, double chi1, uint8_t *mask)
{
    const size_t np = (size_t)nt * (size_t)nf;
    const int mmax =
        o->max_window_chan > o->max_window_time ? o->max_window_chan : o->max_window_time;
    double chi = chi1;
    for (int M = 1; M <= mmax; M *= 2, chi /= o->rho) {
        memcpy(w->next, mask, np);
        /* Along time, every channel at once; along frequency, row by row
         * (contiguous already: a transposed copy cost more than it gave). */
        if (M <= o->max_window_time)
            st_pass(w, z, mask, w->next, nt, nf, M, chi);
        if (M <= o->max_window_chan)
            for (int t = 0; t < nt; t++)
                st_line(z + (size_t)t * nf, mask + (size_t)t * nf, w->next + (size_t)t * nf, nf, M,
                        chi);
        memcpy(mask, w->next, np);
    }
}

/* SIR along one line: out[i] set where some interval holding i is flagged
 * for at least 1 - eta of its length, i.e. where the sum of
 * (flag - (1 - eta)) over it is >= 0 (prefix sums p: the largest p right of
 * i less the smallest left of it). */
static void sir_line(ct_tfflag_work *w, const uint8_t *m, uint8_t *out, size_t s, int n, double eta)
{
    double *p = w->p, *rmax = w->rmax;
    p[0] = 0;
    for (int k = 0; k < n; k++)
        p[k + 1] = p[k] + (m[(size_t)k * s] ? eta : eta - 1.0);
    rmax[n] = p[n];
    for (int k = n - 1; k >= 1; k--)
        rmax[k] = p[k] > rmax[k + 1] ? p[k] : rmax[k + 1];
    double lmin = p[0];
    for (int i = 0; i < n; i++) {
        lmin = p[i] < lmin ? p[i] : lmin;
        if (rmax[i + 1] - lmin >= 0)
            out[(size_t)i * s] = 1;
    }
}

void ct_tfflag_sir(ct_tfflag_work *w, int nt, int nf, double eta, uint8_t *mask)
{
    const size_t np = (size_t)nt * (size_t)nf;
    memcpy(w->next, mask, np);
    for (int t = 0; t < nt; t++)
        sir_line(w, mask + (size_t)t * nf, w->next + (size_t)t * nf, 1, nf, eta);
    for (int f = 0; f < nf; f++)
        sir_line(w, mask + f, w->next + f, (size_t)nf, nt, eta);
    memcpy(mask, w->next, np);
}

void ct_tfflag_plane(ct_tfflag_work *w, const ct_tfflag_opts *o, int nt, int nf,
                     const float complex *vis, uint8_t *mask)
{
    const size_t np = (size_t)nt * (size_t)nf;
    memcpy(w->cur, mask, np);
    for (int r = 0; r < o->rounds; r++) {
        background(w, nt, nf, o->background_half, vis);
        /* The noise once, from the first round's residuals: its medians are
         * robust to what is still unflagged, and they were a third of the
         * work when made every round. */
        if ((r == 0 || r == o->rounds - 1) && !noise(w, nt, nf, vis))
            break; /* nothing left to judge by */
        for (int f = 0; f < nf; f++) {
            /* z = |R|^2 / (2 sigma^2) - 1 with 2 sigma^2 = smed / ln 2; no
             * noise (noiseless data): nothing is judged there. */
            const float k = w->smed[f] > 0 && isfinite(w->smed[f]) ? (float)M_LN2 / w->smed[f] : 0;
            for (int t = 0; t < nt; t++) {
                const size_t i = (size_t)t * nf + f;
                w->z[i] = usable(w, i) && k > 0 ? power(vis, w, i) * k - 1.0f : 0.0f;
            }
        }
        const double factor =
            o->rounds > 1 ? pow(2.0, (double)(o->rounds - 1 - r) / (double)(o->rounds - 1)) : 1.0;
        ct_tfflag_sumthreshold(w, o, nt, nf, w->z, o->threshold * factor, w->cur);
    }
    if (o->eta > 0)
        ct_tfflag_sir(w, nt, nf, o->eta, w->cur);
    for (size_t i = 0; i < np; i++)
        mask[i] |= w->cur[i] ? 1 : 0;
}
