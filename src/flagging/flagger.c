/* flagger.c -- see flagger.h: one observation's interference flags across ranks. */
#include "flagger.h"

#include "groups.h"
#include "mpiutil.h"
#include "select.h"
#include "uvh5.h"

#include <complex.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Baseline-times read (and written) at a time. */
enum { CHUNK_BLTS = 1024 };

/* Bits of the flag table g[blt][chan]. */
enum { G_NEW = 1, G_INPUT = 2 };

void ct_flag_opts_default(ct_flag_opts *o)
{
    memset(o, 0, sizeof *o);
    ct_tfflag_opts_default(&o->plane);
    o->antenna_sigma = 5.0;
    o->antenna_factor = 3.0;
    o->max_fraction = 0.5;
    o->burst_sigma = 5.0;
}

ct_code ct_flag_opts_check(const ct_flag_opts *o, ct_err *err)
{
    ct_code rc = ct_tfflag_opts_check(&o->plane, err);
    if (rc != CT_OK)
        return rc;
    if (!(o->antenna_sigma > 0) || !isfinite(o->antenna_sigma))
        return ct_fail(err, CT_EINVAL, "flagging: antenna sigma %g must be positive",
                       o->antenna_sigma);
    if (!(o->antenna_factor >= 1) || !isfinite(o->antenna_factor))
        return ct_fail(err, CT_EINVAL, "flagging: antenna factor %g must be at least 1",
                       o->antenna_factor);
    if (!(o->burst_sigma >= 0) || !isfinite(o->burst_sigma))
        return ct_fail(err, CT_EINVAL, "flagging: burst sigma %g must be 0 (off) or positive",
                       o->burst_sigma);
    if (!(o->max_fraction >= 0 && o->max_fraction <= 1))
        return ct_fail(err, CT_EINVAL, "flagging: max fraction %g outside [0, 1]", o->max_fraction);
    if (o->threads < 0)
        return ct_fail(err, CT_EINVAL, "flagging: %d threads", o->threads);
    return CT_OK;
}

void ct_flag_result_free(ct_flag_result *r)
{
    if (!r)
        return;
    free(r->ant_number);
    free(r->ant_fraction);
    free(r->ant_state);
    free(r->sub_fraction);
    free(r->time_fraction);
    memset(r, 0, sizeof *r);
}

const char *ct_flag_ant_state_name(char state)
{
    return state == 'd' ? "dead" : state == 'h' ? "hot" : state == 's' ? "subbands" : "ok";
}

/* The observation's layout, the same on every rank. */
typedef struct layout {
    const ct_uvh5_header *h;
    int npar, par[2];   /* the parallel hands' polarization indices */
    int ntime;          /* distinct times */
    double *times;      /* [ntime] ascending */
    int *tidx;          /* [Nblts] each baseline-time's time index */
    int nant, *antnum;  /* antennas with data, ascending numbers */
    int *aidx1, *aidx2; /* [Nblts] each side's antenna index */
    int nbl;            /* cross-correlation baselines, by first appearance */
    int *bl;            /* [Nblts] the cross baseline of each (-1: an auto) */
    int *bla, *blb;     /* [nbl] its antenna indices */
    long *blt_of;       /* [nbl][ntime] the baseline-time (-1: none) */
    int nsub, sub_chans;
} layout;

static void layout_free(layout *l)
{
    free(l->times);
    free(l->tidx);
    free(l->antnum);
    free(l->aidx1);
    free(l->aidx2);
    free(l->bl);
    free(l->bla);
    free(l->blb);
    free(l->blt_of);
    memset(l, 0, sizeof *l);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_int(const void *a, const void *b)
{
    const int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

static ct_code layout_make(const ct_uvh5_header *h, layout *l, ct_err *err)
{
    memset(l, 0, sizeof *l);
    l->h = h;
    const size_t nblt = (size_t)h->Nblts;
    for (int p = 0; p < h->Npols; p++) {
        const int c = h->polarization_array[p];
        if ((c == -5 || c == -6 || c == -1 || c == -2) && l->npar < 2)
            l->par[l->npar++] = p;
    }
    if (l->npar == 0)
        return ct_fail(err, CT_EINVAL, "flagging: the file has no parallel-hand polarization");
    l->times = malloc((nblt + 1) * sizeof *l->times);
    l->tidx = malloc((nblt + 1) * sizeof *l->tidx);
    l->aidx1 = malloc((nblt + 1) * sizeof *l->aidx1);
    l->aidx2 = malloc((nblt + 1) * sizeof *l->aidx2);
    l->bl = malloc((nblt + 1) * sizeof *l->bl);
    l->antnum = malloc((2 * nblt + 1) * sizeof *l->antnum);
    if (!l->times || !l->tidx || !l->aidx1 || !l->aidx2 || !l->bl || !l->antnum)
        return ct_fail(err, CT_ENOMEM, "out of memory for %zu baseline-times", nblt);
    /* Times. */
    memcpy(l->times, h->time_array, nblt * sizeof *l->times);
    qsort(l->times, nblt, sizeof *l->times, cmp_double);
    for (size_t k = 0; k < nblt; k++)
        if (k == 0 || l->times[k] != l->times[l->ntime - 1])
            l->times[l->ntime++] = l->times[k];
    for (size_t k = 0; k < nblt; k++) {
        const double *at =
            bsearch(&h->time_array[k], l->times, (size_t)l->ntime, sizeof *l->times, cmp_double);
        l->tidx[k] = (int)(at - l->times);
    }
    /* Antennas. */
    int na = 0;
    for (size_t k = 0; k < nblt; k++) {
        l->antnum[na++] = h->ant_1_array[k];
        l->antnum[na++] = h->ant_2_array[k];
    }
    qsort(l->antnum, (size_t)na, sizeof *l->antnum, cmp_int);
    for (int k = 0; k < na; k++)
        if (k == 0 || l->antnum[k] != l->antnum[l->nant - 1])
            l->antnum[l->nant++] = l->antnum[k];
    for (size_t k = 0; k < nblt; k++) {
        l->aidx1[k] = (int)((int *)bsearch(&h->ant_1_array[k], l->antnum, (size_t)l->nant,
                                           sizeof(int), cmp_int) -
                            l->antnum);
        l->aidx2[k] = (int)((int *)bsearch(&h->ant_2_array[k], l->antnum, (size_t)l->nant,
                                           sizeof(int), cmp_int) -
                            l->antnum);
    }
    /* Cross baselines by first appearance; each once per time. */
    const size_t na2 = (size_t)l->nant * (size_t)l->nant;
    int *pair = malloc((na2 + 1) * sizeof *pair);
    if (!pair)
        return ct_fail(err, CT_ENOMEM, "out of memory for %d antennas", l->nant);
    for (size_t k = 0; k < na2; k++)
        pair[k] = -1;
    for (size_t k = 0; k < nblt; k++) {
        int a = l->aidx1[k], b = l->aidx2[k];
        if (a == b) {
            l->bl[k] = -1;
            continue;
        }
        if (a > b) {
            const int t = a;
            a = b;
            b = t;
        }
        int *id = &pair[(size_t)a * (size_t)l->nant + (size_t)b];
        if (*id < 0)
            *id = l->nbl++;
        l->bl[k] = *id;
    }
    free(pair);
    l->bla = malloc(((size_t)l->nbl + 1) * sizeof *l->bla);
    l->blb = malloc(((size_t)l->nbl + 1) * sizeof *l->blb);
    l->blt_of = malloc(((size_t)l->nbl * (size_t)l->ntime + 1) * sizeof *l->blt_of);
    if (!l->bla || !l->blb || !l->blt_of)
        return ct_fail(err, CT_ENOMEM, "out of memory for %d baselines", l->nbl);
    for (size_t k = 0; k < (size_t)l->nbl * (size_t)l->ntime; k++)
        l->blt_of[k] = -1;
    for (size_t k = 0; k < nblt; k++) {
        if (l->bl[k] < 0)
            continue;
        long *at = &l->blt_of[(size_t)l->bl[k] * (size_t)l->ntime + (size_t)l->tidx[k]];
        if (*at >= 0)
            return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                              "corrupt input: baseline %d-%d twice at one time (baseline-times "
                              "%ld and %zu)",
                              h->ant_1_array[k], h->ant_2_array[k], *at, k);
        *at = (long)k;
        const int a = l->aidx1[k], b = l->aidx2[k];
        l->bla[l->bl[k]] = a < b ? a : b;
        l->blb[l->bl[k]] = a < b ? b : a;
    }
    l->nsub = h->Nfreqs >= CT_SUBBANDS && h->Nfreqs % CT_SUBBANDS == 0 ? CT_SUBBANDS : 1;
    l->sub_chans = h->Nfreqs / l->nsub;
    return CT_OK;
}

/* Median of the finite values among v[0..n-1] (reordered); NAN if none. */
static float median_finite(float *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            v[k++] = v[i];
    return k ? ct_select_kthf(v, k, k / 2) : NAN;
}

/* Whether x lies beyond sigma robust deviations and the factor from the
 * values' median (log10 powers). */
static int outlier(float x, float med, float mad, const ct_flag_opts *o)
{
    const double dev = fabs((double)x - (double)med);
    return dev > o->antenna_sigma * 1.4826 * (double)mad && dev > log10(o->antenna_factor);
}

/* The inputs (see flagger.h): state[a] 'o', 'd' or 'h'; subbad[a][s]. auto_p
 * holds each antenna's autocorrelation power [a][pol][t][f] (NAN where
 * flagged or missing); zeros/cross count its cross samples. */
static ct_code judge_inputs(const layout *l, const ct_flag_opts *o, float *auto_p,
                            const unsigned long long *zeros, const unsigned long long *cross,
                            char *state, unsigned char *subbad, ct_err *err)
{
    const int na = l->nant, np = l->npar, ns = l->nsub, nt = l->ntime, nf = l->h->Nfreqs;
    const size_t plane = (size_t)nt * (size_t)nf;
    float *pw = malloc(((size_t)na * np * (ns + 1) + 1) * sizeof *pw); /* [a][p][whole, s..] */
    float *tmp = malloc(((size_t)na * (ns + 1) + plane + 1) * sizeof *tmp);
    if (!pw || !tmp) {
        free(pw);
        free(tmp);
        return ct_fail(err, CT_ENOMEM, "out of memory judging the inputs");
    }
    for (int a = 0; a < na; a++) {
        state[a] = 'o';
        if (cross[a] > 0 && zeros[a] == cross[a])
            state[a] = 'd';
        for (int p = 0; p < np; p++) {
            float *ap = auto_p + ((size_t)a * np + p) * plane,
                  *out = pw + ((size_t)a * np + p) * (ns + 1);
            memcpy(tmp, ap, plane * sizeof *tmp);
            out[0] = median_finite(tmp, plane);
            for (int s = 0; s < ns; s++) {
                size_t k = 0;
                for (int t = 0; t < nt; t++)
                    for (int f = s * l->sub_chans; f < (s + 1) * l->sub_chans; f++)
                        tmp[k++] = ap[(size_t)t * nf + f];
                out[1 + s] = median_finite(tmp, k);
            }
            if (out[0] == 0)
                state[a] = 'd';
        }
    }
    /* Hot or cold antennas, per polarization over the array's log powers. */
    for (int p = 0; p < np; p++) {
        size_t k = 0;
        for (int a = 0; a < na; a++) {
            const float x = pw[((size_t)a * np + p) * (ns + 1)];
            if (x > 0 && isfinite(x))
                tmp[k++] = log10f(x);
        }
        if (k < 3)
            continue; /* too few to say what is normal */
        const float med = ct_select_kthf(tmp, k, k / 2);
        for (size_t i = 0; i < k; i++)
            tmp[i] = fabsf(tmp[i] - med);
        const float mad = ct_select_kthf(tmp, k, k / 2);
        for (int a = 0; a < na; a++) {
            const float x = pw[((size_t)a * np + p) * (ns + 1)];
            if (state[a] == 'o' && x > 0 && isfinite(x) && outlier(log10f(x), med, mad, o))
                state[a] = 'h';
        }
    }
    /* Subbands, per antenna and polarization against its own. */
    memset(subbad, 0, (size_t)na * (size_t)ns);
    for (int a = 0; a < na && ns > 1; a++)
        for (int p = 0; p < np; p++) {
            const float *out = pw + ((size_t)a * np + p) * (ns + 1) + 1;
            size_t k = 0;
            for (int s = 0; s < ns; s++)
                if (out[s] > 0 && isfinite(out[s]))
                    tmp[k++] = log10f(out[s]);
            if (k < 3)
                continue;
            const float med = ct_select_kthf(tmp, k, k / 2);
            for (size_t i = 0; i < k; i++)
                tmp[i] = fabsf(tmp[i] - med);
            const float mad = ct_select_kthf(tmp, k, k / 2);
            for (int s = 0; s < ns; s++)
                if (out[s] == 0 ||
                    (out[s] > 0 && isfinite(out[s]) && outlier(log10f(out[s]), med, mad, o)))
                    subbad[(size_t)a * ns + s] = 1;
        }
    for (int a = 0; a < na; a++) {
        int any = 0;
        for (int s = 0; s < ns; s++)
            any |= subbad[(size_t)a * ns + s];
        if (state[a] == 'o' && any)
            state[a] = 's';
    }
    free(pw);
    free(tmp);
    return CT_OK;
}

/* OR-reduces n bytes over comm in pieces an int count holds. */
static void allreduce_bor(MPI_Comm comm, unsigned char *g, size_t n)
{
    const size_t piece = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += piece) {
        const size_t m = n - off < piece ? n - off : piece;
        MPI_Allreduce(MPI_IN_PLACE, g + off, (int)m, MPI_UNSIGNED_CHAR, MPI_BOR, comm);
    }
}

/* Our flags onto the input's: every polarization of a channel we flagged. */
typedef struct mark_ctx {
    const unsigned char *g;
    int nf, npol;
} mark_ctx;

static void mark_new(void *ctx, size_t b0, size_t nb, bool *flags)
{
    const mark_ctx *m = ctx;
    const size_t nf = (size_t)m->nf, npol = (size_t)m->npol;
    for (size_t j = 0; j < nb; j++)
        for (size_t c = 0; c < nf; c++)
            if (m->g[(b0 + j) * nf + c] & G_NEW)
                for (size_t p = 0; p < npol; p++)
                    flags[(j * nf + c) * npol + p] = true;
}

/* ---- Broadband bursts across the array ------------------------------------------------ */

/* Channels per block of the burst search, and the reference's half window in
 * integrations: a burst up to half that long leaves the reference's median alone. */
enum { BURST_CHANS = 8, BURST_HALF = 4 };

/* One baseline's share of the burst search, while its planes are in cache: per
 * (integration, block) cell the sum of |V|^2 over its unflagged samples of every parallel
 * hand and their count (at most 2 x BURST_CHANS), in a fixed order; the largest |V|^2. */
static double burst_accumulate(const float complex *planes, const uint8_t *m, int np, int nt,
                               int nf, double *sum, uint8_t *cnt)
{
    const int nblk = (nf + BURST_CHANS - 1) / BURST_CHANS;
    const size_t plane = (size_t)nt * (size_t)nf;
    memset(sum, 0, (size_t)nt * (size_t)nblk * sizeof *sum);
    memset(cnt, 0, (size_t)nt * (size_t)nblk);
    double most = 0;
    for (int q = 0; q < np; q++)
        for (int t = 0; t < nt; t++)
            for (int c = 0; c < nf; c++) {
                const size_t i = (size_t)t * nf + c, cell = (size_t)t * nblk + c / BURST_CHANS;
                if (m[i])
                    continue;
                const float complex v = planes[(size_t)q * plane + i];
                const double p = (double)crealf(v) * crealf(v) + (double)cimagf(v) * cimagf(v);
                sum[cell] += p;
                cnt[cell]++;
                most = p > most ? p : most;
            }
    return most;
}

/*
 * A broadband signal of one phase across the band (a discharge near short baselines) is
 * smooth along frequency, so each baseline's background absorbs it; it shows only as a
 * step in time of the array's power. Per integration and block of BURST_CHANS channels,
 * the mean power of the unflagged cross-correlation samples over every baseline and
 * parallel hand; a cell whose mean exceeds the median of its BURST_HALF neighbours on
 * each side by more than sigma times the larger of the block's robust spread in time
 * (1.4826 MAD of those excesses: the sky's own drift) and the reference's error of the
 * mean (reference / sqrt(samples): the noise's) is a burst, flagged on every baseline.
 * The baselines' sums (burst_accumulate: mine of them, ncell cells each) are added in
 * 64-bit fixed point at a scale agreed from the largest power over all ranks (most, this
 * rank's), so the totals are exact and the same in any order: the flags are the same on
 * any number of ranks. Collective. *cells: the (integration, block) cells flagged.
 */
static ct_code find_bursts(MPI_Comm comm, const layout *l, int mine, int nt, int nf,
                           const double *bsum, const uint8_t *bcnt, double most, double sigma,
                           unsigned char *g, size_t *cells, ct_err *err)
{
    *cells = 0;
    const int nblk = (nf + BURST_CHANS - 1) / BURST_CHANS;
    const size_t ncell = (size_t)nt * (size_t)nblk;
    long long *sum = calloc(2 * ncell + 1, sizeof *sum), *cnt = sum + ncell;
    double *r = malloc((2 * (size_t)nt + 1) * sizeof *r);
    float *sp = malloc((2 * (size_t)nt + 1) * sizeof *sp);
    unsigned char *hit = calloc(ncell + 1, 1);
    int bad = sum == NULL || r == NULL || sp == NULL || hit == NULL;
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, comm);
    if (bad) {
        free(sum);
        free(r);
        free(sp);
        free(hit);
        return ct_fail(err, CT_ENOMEM, "out of memory for the burst search");
    }
    long long total = 0;
    for (size_t i = 0; i < (size_t)mine * ncell; i++)
        total += bcnt[i];
    MPI_Allreduce(MPI_IN_PLACE, &most, 1, MPI_DOUBLE, MPI_MAX, comm);
    MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_LONG_LONG, MPI_SUM, comm);
    /* A baseline's cell sum is at most its count x most: each below 2^62 / total x its
     * count, so no total can overflow. */
    const double scale = most > 0 && total > 0 ? ldexp(1.0, 62) / (most * (double)total) : 0;
    for (int lb = 0; lb < mine; lb++)
        for (size_t c = 0; c < ncell; c++) {
            sum[c] += llround(bsum[(size_t)lb * ncell + c] * scale);
            cnt[c] += bcnt[(size_t)lb * ncell + c];
        }
    MPI_Allreduce(MPI_IN_PLACE, sum, (int)(2 * ncell), MPI_LONG_LONG, MPI_SUM, comm);
    /* Every rank alike from here: the same sums. */
    double *mean = r, *ref = r + nt;
    for (int k = 0; k < nblk && scale > 0; k++) {
        for (int t = 0; t < nt; t++) {
            const size_t cell = (size_t)t * nblk + k;
            mean[t] = cnt[cell] > 0 ? (double)sum[cell] / scale / (double)cnt[cell] : NAN;
        }
        int nex = 0;
        for (int t = 0; t < nt; t++) {
            float *nb = sp + nt;
            int n = 0;
            for (int u = t - BURST_HALF; u <= t + BURST_HALF; u++)
                if (u != t && u >= 0 && u < nt && isfinite(mean[u]))
                    nb[n++] = (float)mean[u];
            ref[t] =
                n >= 3 && isfinite(mean[t]) ? ct_select_kthf(nb, (size_t)n, (size_t)n / 2) : NAN;
            if (isfinite(ref[t]))
                sp[nex++] = (float)fabs(mean[t] - ref[t]);
        }
        if (nex < 3)
            continue;
        const double spread = 1.4826 * ct_select_kthf(sp, (size_t)nex, (size_t)nex / 2);
        for (int t = 0; t < nt; t++) {
            const size_t cell = (size_t)t * nblk + k;
            if (!isfinite(ref[t]))
                continue;
            const double noise = ref[t] / sqrt((double)cnt[cell]);
            if (mean[t] - ref[t] > sigma * (spread > noise ? spread : noise))
                hit[cell] = 1;
        }
    }
    for (size_t k = 0; k < (size_t)l->h->Nblts; k++) {
        if (l->bl[k] < 0)
            continue;
        const int t = l->tidx[k];
        for (int c = 0; c < nf; c++)
            if (hit[(size_t)t * nblk + c / BURST_CHANS])
                g[k * (size_t)nf + c] |= G_NEW;
    }
    for (size_t i = 0; i < ncell; i++)
        *cells += hit[i];
    free(sum);
    free(r);
    free(sp);
    free(hit);
    return CT_OK;
}

ct_code ct_flag_observation(MPI_Comm comm, const char *vispath, const char *outpath,
                            const ct_flag_opts *o, ct_flag_result *res, ct_err *err)
{
    const double w0 = MPI_Wtime();
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    memset(res, 0, sizeof *res);
    res->ranks = size;
    const int threads = o->threads > 0 ? o->threads : ct_mpi_cpu_share(comm);
    res->threads = threads;
    ct_uvh5_file *f = NULL;
    layout l = {0};
    float *vis = NULL, *auto_p = NULL;
    bool *fl = NULL;
    float complex *planes = NULL;
    uint8_t *masks = NULL;
    unsigned char *g = NULL, *subbad = NULL;
    double *bsum = NULL;
    uint8_t *bcnt = NULL;
    unsigned long long *cnt = NULL;
    char *state = NULL;
    ct_code rc = ct_flag_opts_check(o, err);
    if (rc == CT_OK)
        rc = ct_uvh5_open(vispath, &f, err);
    const ct_uvh5_header *h = rc == CT_OK ? ct_uvh5_header_get(f) : NULL;
    if (rc == CT_OK)
        rc = layout_make(h, &l, err);
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto done;

    /* 1. Read: every rank the whole file once, keeping its own baselines'
     * planes, every antenna's autocorrelation power, and the input's flags. */
    const int nf = h->Nfreqs, npol = h->Npols, nt = l.ntime, np = l.npar, na = l.nant;
    const size_t nblt = (size_t)h->Nblts, plane = (size_t)nt * (size_t)nf;
    const int mine = l.nbl > rank ? (l.nbl - rank + size - 1) / size : 0;
    const size_t per = (size_t)CHUNK_BLTS * (size_t)nf * (size_t)npol;
    vis = malloc(2 * per * sizeof *vis);
    fl = malloc(per * sizeof *fl);
    planes = malloc(((size_t)mine * np * plane + 1) * sizeof *planes);
    masks = malloc((size_t)mine * np * plane + 1);
    auto_p = malloc(((size_t)na * np * plane + 1) * sizeof *auto_p);
    g = calloc(nblt * (size_t)nf + 1, 1);
    cnt = calloc(2 * (size_t)na + 1, sizeof *cnt); /* zeros, then cross samples */
    state = malloc((size_t)na + 1);
    subbad = malloc((size_t)na * (size_t)l.nsub + 1);
    if (!vis || !fl || !planes || !masks || !auto_p || !g || !cnt || !state || !subbad)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %d baselines' planes", mine);
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto done;
    for (size_t k = 0; k < (size_t)na * np * plane; k++)
        auto_p[k] = NAN;
    memset(masks, 1, (size_t)mine * np * plane); /* a missing sample stays flagged */
    for (size_t b0 = 0; rc == CT_OK && b0 < nblt; b0 += CHUNK_BLTS) {
        const size_t nb = nblt - b0 < CHUNK_BLTS ? nblt - b0 : CHUNK_BLTS;
        if ((rc = ct_uvh5_read_blts(f, b0, nb, vis, fl, NULL, err)) != CT_OK) /* no nsamples */
            break;
        for (size_t j = 0; j < nb; j++) {
            const size_t k = b0 + j;
            const int t = l.tidx[k], b = l.bl[k];
            const size_t row = j * (size_t)nf * (size_t)npol;
            for (int c = 0; c < nf; c++) {
                int all = 1;
                for (int p = 0; p < npol; p++)
                    all &= fl[row + (size_t)c * npol + p];
                if (all && b >= 0)
                    g[k * (size_t)nf + c] |= G_INPUT;
            }
            if (b < 0) { /* an autocorrelation: its power */
                for (int q = 0; q < np; q++) {
                    float *ap = auto_p + ((size_t)l.aidx1[k] * np + q) * plane + (size_t)t * nf;
                    for (int c = 0; c < nf; c++) {
                        const size_t i = row + (size_t)c * npol + (size_t)l.par[q];
                        ap[c] = fl[i] || !isfinite(vis[2 * i]) ? NAN : fabsf(vis[2 * i]);
                    }
                }
                continue;
            }
            if (b % size != rank)
                continue;
            const size_t lb = (size_t)(b / size);
            for (int q = 0; q < np; q++) {
                float complex *pv = planes + (lb * np + q) * plane + (size_t)t * nf;
                uint8_t *pm = masks + (lb * np + q) * plane + (size_t)t * nf;
                for (int c = 0; c < nf; c++) {
                    const size_t i = row + (size_t)c * npol + (size_t)l.par[q];
                    const float re = vis[2 * i], im = vis[2 * i + 1];
                    const int bad = !isfinite(re) || !isfinite(im) || (re == 0 && im == 0);
                    pv[c] = bad ? 0 : CMPLXF(re, im);
                    pm[c] = fl[i] || bad;
                    if (!fl[i]) {
                        cnt[l.bla[b]] += re == 0 && im == 0;
                        cnt[l.blb[b]] += re == 0 && im == 0;
                        cnt[na + l.bla[b]]++;
                        cnt[na + l.blb[b]]++;
                    }
                }
            }
        }
    }
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto done;
    MPI_Allreduce(MPI_IN_PLACE, cnt, 2 * na, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
    res->t_read = MPI_Wtime() - w0;

    /* 2. The inputs, then each baseline's planes. */
    const double w1 = MPI_Wtime();
    rc = judge_inputs(&l, o, auto_p, cnt, cnt + na, state, subbad, err);
    free(auto_p);
    auto_p = NULL;
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto done;
    int no_mem = 0;
    /* The burst search's per-baseline sums, made while each baseline is in cache. */
    const size_t ncell = (size_t)nt * (size_t)((nf + BURST_CHANS - 1) / BURST_CHANS);
    double most = 0;
    if (o->burst_sigma > 0) {
        bsum = malloc(((size_t)mine * ncell + 1) * sizeof *bsum);
        bcnt = malloc((size_t)mine * ncell + 1);
        if (bsum == NULL || bcnt == NULL)
            rc = ct_fail(err, CT_ENOMEM, "out of memory for the burst search's sums");
    }
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto done;
#pragma omp parallel num_threads(threads)
    {
        ct_tfflag_work *w = NULL;
        ct_err e;
        if (ct_tfflag_work_create(nt, nf, &w, &e) != CT_OK) {
#pragma omp atomic write
            no_mem = 1;
        }
#pragma omp for schedule(dynamic, 1) reduction(max : most)
        for (int lb = 0; lb < mine; lb++) {
            if (!w)
                continue;
            const int b = lb * size + rank, a1 = l.bla[b], a2 = l.blb[b];
            const int whole =
                state[a1] == 'd' || state[a1] == 'h' || state[a2] == 'd' || state[a2] == 'h';
            uint8_t *m0 = masks + (size_t)lb * np * plane;
            for (int q = 0; q < np; q++) {
                uint8_t *m = m0 + (size_t)q * plane;
                for (int s = 0; s < l.nsub; s++)
                    if (whole || subbad[(size_t)a1 * l.nsub + s] || subbad[(size_t)a2 * l.nsub + s])
                        for (int t = 0; t < nt; t++)
                            memset(m + (size_t)t * nf + (size_t)s * l.sub_chans, 1,
                                   (size_t)l.sub_chans);
                if (!whole)
                    ct_tfflag_plane(w, &o->plane, nt, nf, planes + ((size_t)lb * np + q) * plane,
                                    m);
                if (q > 0)
                    for (size_t i = 0; i < plane; i++)
                        m0[i] |= m[i];
            }
            if (bsum) {
                const double p =
                    burst_accumulate(planes + (size_t)lb * np * plane, m0, np, nt, nf,
                                     bsum + (size_t)lb * ncell, bcnt + (size_t)lb * ncell);
                most = p > most ? p : most;
            }
            for (int t = 0; t < nt; t++) {
                const long k = l.blt_of[(size_t)b * nt + t];
                if (k < 0)
                    continue;
                unsigned char *gr = g + (size_t)k * nf;
                for (int c = 0; c < nf; c++)
                    gr[c] |= m0[(size_t)t * nf + c] ? G_NEW : 0;
            }
        }
        ct_tfflag_work_destroy(w);
    }
    if (no_mem)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the threads' planes");
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto done;
    if (o->burst_sigma > 0)
        rc = find_bursts(comm, &l, mine, nt, nf, bsum, bcnt, most, o->burst_sigma, g,
                         &res->n_burst_cells, err);
    free(bsum);
    free(bcnt);
    bsum = NULL;
    bcnt = NULL;
    /* A bad input's autocorrelations too (every rank alike). */
    for (size_t k = 0; k < nblt; k++)
        if (l.bl[k] < 0 && state[l.aidx1[k]] != 'o')
            for (int c = 0; c < nf; c++)
                if (state[l.aidx1[k]] != 's' ||
                    subbad[(size_t)l.aidx1[k] * l.nsub + c / l.sub_chans])
                    g[k * (size_t)nf + c] |= G_NEW;
    free(planes);
    free(masks);
    planes = NULL;
    masks = NULL;
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto done;
    allreduce_bor(comm, g, nblt * (size_t)nf);
    res->t_detect = MPI_Wtime() - w1;

    /* 3. QA, the same on every rank. */
    res->nant = na;
    res->nsub = l.nsub;
    res->ntime = nt;
    res->ant_number = malloc(((size_t)na + 1) * sizeof *res->ant_number);
    res->ant_fraction = calloc((size_t)na + 1, sizeof *res->ant_fraction);
    res->ant_state = calloc((size_t)na + 1, 1);
    res->sub_fraction = calloc((size_t)l.nsub + 1, sizeof *res->sub_fraction);
    res->time_fraction = calloc((size_t)nt + 1, sizeof *res->time_fraction);
    double *den = calloc((size_t)na + (size_t)l.nsub + (size_t)nt + 1, sizeof *den);
    if (!res->ant_number || !res->ant_fraction || !res->ant_state || !res->sub_fraction ||
        !res->time_fraction || !den) {
        free(den);
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the QA");
        goto done;
    }
    for (int a = 0; a < na; a++) {
        res->ant_number[a] = l.antnum[a];
        res->ant_state[a] = state[a];
    }
    for (size_t k = 0; k < nblt; k++) {
        if (l.bl[k] < 0)
            continue;
        const int a1 = l.aidx1[k], a2 = l.aidx2[k], t = l.tidx[k];
        for (int c = 0; c < nf; c++) {
            const unsigned char x = g[k * (size_t)nf + c];
            const int s = c / l.sub_chans, flagged = x != 0;
            res->n_samples++;
            res->n_flagged_in += (x & G_INPUT) != 0;
            res->n_flagged += flagged;
            res->ant_fraction[a1] += flagged;
            res->ant_fraction[a2] += flagged;
            res->sub_fraction[s] += flagged;
            res->time_fraction[t] += flagged;
            den[a1]++;
            den[a2]++;
            den[na + s]++;
            den[na + l.nsub + t]++;
        }
    }
    for (int a = 0; a < na; a++)
        res->ant_fraction[a] = den[a] > 0 ? res->ant_fraction[a] / den[a] : 0;
    for (int s = 0; s < l.nsub; s++)
        res->sub_fraction[s] = den[na + s] > 0 ? res->sub_fraction[s] / den[na + s] : 0;
    for (int t = 0; t < nt; t++)
        res->time_fraction[t] =
            den[na + l.nsub + t] > 0 ? res->time_fraction[t] / den[na + l.nsub + t] : 0;
    free(den);
    res->fraction = res->n_samples ? (double)res->n_flagged / (double)res->n_samples : 0;
    res->gate_passed = res->fraction <= o->max_fraction;
    if (!res->gate_passed) {
        rc = ct_fail_as(err, CT_CAT_PERMANENT, CT_EINVAL,
                        "qa gate: %.1f %% of %s's cross-correlation samples flagged, more than "
                        "the %.1f %% allowed",
                        100.0 * res->fraction, vispath, 100.0 * o->max_fraction);
        goto done;
    }

    /* 4. The copy: the input's every byte (the kernel copies), then its flags with ours
     * added. One rank: the flags are a few percent of the file and the copy is the disk's. */
    const double w2 = MPI_Wtime();
    if (rank == 0) {
        mark_ctx mc = {.g = g, .nf = nf, .npol = npol};
        rc = ct_uvh5_copy_reflag(vispath, outpath, mark_new, &mc, err);
    }
    rc = ct_mpi_agree(comm, rc, err);
    res->t_write = MPI_Wtime() - w2;
done:
    if (f)
        ct_uvh5_close(f, NULL);
    layout_free(&l);
    free(vis);
    free(fl);
    free(planes);
    free(masks);
    free(bsum);
    free(bcnt);
    free(auto_p);
    free(g);
    free(cnt);
    free(state);
    free(subbad);
    double dt = MPI_Wtime() - w0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, comm);
    res->seconds = dt;
    return rc;
}
