/* sources.c -- see sources.h. */
#define _GNU_SOURCE
#include "sources.h"
#include "fsutil.h"
#include "imageqa.h"
#include "skyframe.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEG          (M_PI / 180.0)
#define MAD_TO_SIGMA 1.482602218505602
#define FWHM_SIGMA   2.3548200450309493 /* FWHM / sigma of a Gaussian: 2 sqrt(2 ln 2) */
#define CLIP_SIGMA   3.0
#define DIP_RMS      2.0 /* a second peak needs a dip this many rms deep toward a brighter one */
#define NPAR         6   /* amplitude, x0, y0, sigma major, sigma minor, angle */

void ct_src_opts_default(ct_src_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed_sigma = 5;
    o->island_sigma = 3;
    o->max_components = 8;
}

ct_code ct_src_opts_check(const ct_src_opts *o, ct_err *err)
{
    if (!(o->seed_sigma >= 1 && o->seed_sigma <= 1000))
        return ct_fail(err, CT_EINVAL, "seed_sigma %g: must be in [1, 1000]", o->seed_sigma);
    if (!(o->island_sigma >= 0.5 && o->island_sigma <= o->seed_sigma))
        return ct_fail(err, CT_EINVAL, "island_sigma %g: must be in [0.5, seed_sigma = %g]",
                       o->island_sigma, o->seed_sigma);
    if (o->box != 0 && (o->box < 4 || o->box > 100000))
        return ct_fail(err, CT_EINVAL, "box %d: must be 0 (automatic) or 4..100000 pixels", o->box);
    if (o->max_components < 1 || o->max_components > 64)
        return ct_fail(err, CT_EINVAL, "max_components %d: must be 1..64", o->max_components);
    if (o->threads < 0 || o->threads > 4096)
        return ct_fail(err, CT_EINVAL, "threads %d: must be 0..4096", o->threads);
    return CT_OK;
}

/* --- Background and rms ---------------------------------------------------------------- */

/* The clipped median and robust sigma of v[0..n-1] (reordered; scratch holds n). false
 * when fewer than min_n values remain. */
static bool clipped_stats(double *v, size_t n, double *scratch, size_t min_n, double *med,
                          double *sig)
{
    for (int iter = 0; iter < 20; iter++) {
        if (n < min_n || n == 0)
            return false;
        memcpy(scratch, v, n * sizeof *v);
        double m = ct_median_inplace(scratch, n);
        for (size_t i = 0; i < n; i++)
            scratch[i] = fabs(v[i] - m);
        double s = MAD_TO_SIGMA * ct_median_inplace(scratch, n);
        *med = m, *sig = s;
        if (!(s > 0))
            return s == 0 && n >= min_n;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (fabs(v[i] - m) <= CLIP_SIGMA * s)
                v[k++] = v[i];
        if (k == n)
            return true;
        n = k;
    }
    return true;
}

/* The boundaries of n nearly equal parts of [0, len): part i is [edge(i), edge(i + 1)). */
static int edge(int i, int n, int len)
{
    return (int)((long long)i * len / n);
}

/* Bilinear interpolation of mesh values between part centres along one axis: the two
 * parts around pixel coordinate p and the weight of the second. */
static void bracket(double p, const double *centre, int n, int *i0, int *i1, double *t)
{
    if (n == 1 || p <= centre[0]) {
        *i0 = *i1 = 0, *t = 0;
        return;
    }
    if (p >= centre[n - 1]) {
        *i0 = *i1 = n - 1, *t = 0;
        return;
    }
    int lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (centre[mid] <= p)
            lo = mid;
        else
            hi = mid;
    }
    *i0 = lo, *i1 = hi, *t = (p - centre[lo]) / (centre[hi] - centre[lo]);
}

ct_code ct_src_background(const float *data, int nx, int ny, int box, float *bkg, float *rms,
                          ct_err *err)
{
    if (box < 4)
        return ct_fail(err, CT_EINVAL, "background box %d: at least 4 pixels", box);
    int mx = nx / box > 0 ? nx / box : 1, my = ny / box > 0 ? ny / box : 1;
    size_t cells = (size_t)mx * my;
    size_t cap = (size_t)(edge(1, mx, nx) + 1) * (size_t)(edge(1, my, ny) + 1);
    double *mb = malloc(cells * sizeof *mb), *ms = malloc(cells * sizeof *ms);
    double *fb = malloc(cells * sizeof *fb), *fs = malloc(cells * sizeof *fs);
    unsigned char *ok = calloc(cells, 1);
    double *cx = malloc((size_t)mx * sizeof *cx), *cy = malloc((size_t)my * sizeof *cy);
    if (!mb || !ms || !fb || !fs || !ok || !cx || !cy) {
        free(mb), free(ms), free(fb), free(fs), free(ok), free(cx), free(cy);
        return ct_fail(err, CT_ENOMEM, "background: out of memory");
    }
    for (int i = 0; i < mx; i++)
        cx[i] = 0.5 * (edge(i, mx, nx) + edge(i + 1, mx, nx) - 1);
    for (int j = 0; j < my; j++)
        cy[j] = 0.5 * (edge(j, my, ny) + edge(j + 1, my, ny) - 1);
    int failed = 0;
#pragma omp parallel
    {
        double *v = malloc(2 * cap * sizeof *v);
        if (v == NULL) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (size_t c = 0; c < cells; c++) {
            if (v == NULL)
                continue;
            int i = (int)(c % (size_t)mx), j = (int)(c / (size_t)mx);
            int x0 = edge(i, mx, nx), x1 = edge(i + 1, mx, nx);
            int y0 = edge(j, my, ny), y1 = edge(j + 1, my, ny);
            size_t n = 0;
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    float p = data[(size_t)y * nx + x];
                    if (isfinite(p))
                        v[n++] = p;
                }
            /* A box mostly blank (the primary-beam cutoff) gets its neighbours' values. */
            size_t min_n = (size_t)(x1 - x0) * (size_t)(y1 - y0) / 4;
            ok[c] = clipped_stats(v, n, v + cap, min_n > 8 ? min_n : 8, &mb[c], &ms[c]);
        }
        free(v);
    }
    if (failed) {
        free(mb), free(ms), free(fb), free(fs), free(ok), free(cx), free(cy);
        return ct_fail(err, CT_ENOMEM, "background: out of memory");
    }
    size_t nok = 0;
    for (size_t c = 0; c < cells; c++)
        nok += ok[c];
    if (nok == 0) {
        free(mb), free(ms), free(fb), free(fs), free(ok), free(cx), free(cy);
        return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                          "corrupt_input: no background box of %d pixels holds enough finite "
                          "pixels to measure the noise",
                          box);
    }
    /* No median filter over the mesh: on a gradient it flattens the border cells (their
     * windows are one-sided), and the clipping already keeps a source's pixels out of its
     * box. Boxes too blank to measure start empty (NaN). */
    for (size_t c = 0; c < cells; c++) {
        fb[c] = ok[c] ? mb[c] : NAN;
        fs[c] = ok[c] ? ms[c] : NAN;
    }
    /* Cells with no valid neighbour yet: the mean of those that have, growing outward. */
    for (bool again = true; again;) {
        again = false;
        for (size_t c = 0; c < cells; c++)
            ok[c] = !isnan(fb[c]);
        for (int j = 0; j < my; j++)
            for (int i = 0; i < mx; i++) {
                size_t c = (size_t)j * mx + i;
                if (ok[c])
                    continue;
                double sb = 0, ss = 0;
                int k = 0;
                for (int dj = -1; dj <= 1; dj++)
                    for (int di = -1; di <= 1; di++) {
                        int a = i + di, b = j + dj;
                        if (a >= 0 && a < mx && b >= 0 && b < my && ok[(size_t)b * mx + a])
                            sb += fb[(size_t)b * mx + a], ss += fs[(size_t)b * mx + a], k++;
                    }
                if (k > 0)
                    fb[c] = sb / k, fs[c] = ss / k;
                else
                    again = true;
            }
    }
#pragma omp parallel for schedule(static)
    for (int y = 0; y < ny; y++) {
        int j0, j1;
        double ty;
        bracket(y, cy, my, &j0, &j1, &ty);
        for (int x = 0; x < nx; x++) {
            size_t p = (size_t)y * nx + x;
            if (!isfinite(data[p])) {
                bkg[p] = rms[p] = NAN;
                continue;
            }
            int i0, i1;
            double tx;
            bracket(x, cx, mx, &i0, &i1, &tx);
            size_t a = (size_t)j0 * mx + i0, b = (size_t)j0 * mx + i1;
            size_t c = (size_t)j1 * mx + i0, d = (size_t)j1 * mx + i1;
            bkg[p] = (float)((1 - ty) * ((1 - tx) * fb[a] + tx * fb[b]) +
                             ty * ((1 - tx) * fb[c] + tx * fb[d]));
            rms[p] = (float)((1 - ty) * ((1 - tx) * fs[a] + tx * fs[b]) +
                             ty * ((1 - tx) * fs[c] + tx * fs[d]));
        }
    }
    free(mb), free(ms), free(fb), free(fs), free(ok), free(cx), free(cy);
    return CT_OK;
}

/* --- Islands ----------------------------------------------------------------------------- */

typedef struct island {
    size_t first, n; /* its pixels: pix[first .. first + n) */
    int x0, y0, x1, y1;
    bool edge;
} island;

typedef struct islands {
    size_t *pix; /* pixel indices, island by island */
    island *is;
    size_t n, cap;
} islands;

static bool above(const float *data, const float *bkg, const float *rms, size_t p, double k)
{
    return isfinite(data[p]) && rms[p] > 0 && data[p] - bkg[p] >= k * rms[p];
}

/* Labels 8-connected pixels island_sigma above, keeping islands with a seed_sigma pixel. */
static ct_code find_islands(const float *data, const float *bkg, const float *rms, int nx, int ny,
                            const ct_src_opts *o, int *label, islands *out, ct_err *err)
{
    size_t npix = (size_t)nx * ny;
    memset(out, 0, sizeof *out);
    out->pix = malloc(npix * sizeof *out->pix);
    if (out->pix == NULL)
        return ct_fail(err, CT_ENOMEM, "islands: out of memory");
    for (size_t p = 0; p < npix; p++)
        label[p] = -1;
    size_t used = 0;
    for (size_t start = 0; start < npix; start++) {
        if (label[start] != -1 || !above(data, bkg, rms, start, o->island_sigma))
            continue;
        /* Flood fill; the island's own slice of pix is its stack and its list. */
        size_t first = used, head = used;
        int id = (int)out->n;
        label[start] = id;
        out->pix[used++] = start;
        island is = {first, 0, nx, ny, -1, -1, false};
        bool seeded = false;
        while (head < used) {
            size_t p = out->pix[head++];
            int x = (int)(p % (size_t)nx), y = (int)(p / (size_t)nx);
            is.x0 = x < is.x0 ? x : is.x0, is.x1 = x > is.x1 ? x : is.x1;
            is.y0 = y < is.y0 ? y : is.y0, is.y1 = y > is.y1 ? y : is.y1;
            seeded |= data[p] - bkg[p] >= o->seed_sigma * rms[p];
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int a = x + dx, b = y + dy;
                    if (a < 0 || a >= nx || b < 0 || b >= ny) {
                        is.edge = true;
                        continue;
                    }
                    size_t q = (size_t)b * nx + a;
                    if (!isfinite(data[q]))
                        is.edge = true;
                    if (label[q] == -1 && above(data, bkg, rms, q, o->island_sigma)) {
                        label[q] = id;
                        out->pix[used++] = q;
                    }
                }
        }
        is.n = used - first;
        if (!seeded) { /* noise: unlabel it so that its pixels count for nothing */
            for (size_t k = first; k < used; k++)
                label[out->pix[k]] = -2;
            used = first;
            continue;
        }
        if (out->n == out->cap) {
            size_t cap = out->cap ? 2 * out->cap : 256;
            island *g = realloc(out->is, cap * sizeof *g);
            if (g == NULL)
                return ct_fail(err, CT_ENOMEM, "islands: out of memory");
            out->is = g, out->cap = cap;
        }
        out->is[out->n++] = is;
    }
    return CT_OK;
}

/* --- Gaussian fits ------------------------------------------------------------------------ */

typedef struct fitpix {
    double x, y, v; /* pixel and background-subtracted value */
} fitpix;

/* The model at pixel (x, y) and, when jac is not NULL, its derivatives by the NPAR
 * parameters of each component (jac[k * NPAR + j]). */
static double model_at(const double *par, int nc, double x, double y, double *jac)
{
    double f = 0;
    for (int k = 0; k < nc; k++) {
        const double *q = par + k * NPAR;
        double c = cos(q[5]), s = sin(q[5]);
        double dx = x - q[1], dy = y - q[2];
        double u = dx * c + dy * s, v = -dx * s + dy * c;
        double ia = 1 / (q[3] * q[3]), ib = 1 / (q[4] * q[4]);
        double e = exp(-0.5 * (u * u * ia + v * v * ib));
        double fk = q[0] * e;
        f += fk;
        if (jac) {
            double *j = jac + k * NPAR;
            j[0] = e;
            /* d(-Q/2)/dx0 = u ia c - v ib s; d(-Q/2)/dy0 = u ia s + v ib c. */
            j[1] = fk * (u * ia * c - v * ib * s);
            j[2] = fk * (u * ia * s + v * ib * c);
            j[3] = fk * u * u * ia / q[3];
            j[4] = fk * v * v * ib / q[4];
            j[5] = -fk * u * v * (ia - ib);
        }
    }
    return f;
}

static double chi2_of(const double *par, int nc, const fitpix *px, size_t n)
{
    double c = 0;
    for (size_t i = 0; i < n; i++) {
        double r = px[i].v - model_at(par, nc, px[i].x, px[i].y, NULL);
        c += r * r;
    }
    return c;
}

/* Solves the m x m symmetric positive definite system a x = b in place (b becomes x);
 * false when a is not positive definite. */
static bool cholesky_solve(double *a, double *b, int m)
{
    for (int j = 0; j < m; j++) {
        double d = a[j * m + j];
        for (int k = 0; k < j; k++)
            d -= a[j * m + k] * a[j * m + k];
        if (!(d > 0))
            return false;
        d = sqrt(d);
        a[j * m + j] = d;
        for (int i = j + 1; i < m; i++) {
            double s = a[i * m + j];
            for (int k = 0; k < j; k++)
                s -= a[i * m + k] * a[j * m + k];
            a[i * m + j] = s / d;
        }
    }
    for (int i = 0; i < m; i++) {
        double s = b[i];
        for (int k = 0; k < i; k++)
            s -= a[i * m + k] * b[k];
        b[i] = s / a[i * m + i];
    }
    for (int i = m - 1; i >= 0; i--) {
        double s = b[i];
        for (int k = i + 1; k < m; k++)
            s -= a[k * m + i] * b[k];
        b[i] = s / a[i * m + i];
    }
    return true;
}

/* Whether the parameters describe Gaussians that stay on the island's box (with a margin)
 * and have sizes between a fifth of a pixel and the box's diagonal. */
static bool params_sane(const double *par, int nc, const island *is)
{
    double diag = hypot(is->x1 - is->x0 + 3, is->y1 - is->y0 + 3);
    for (int k = 0; k < nc; k++) {
        const double *q = par + k * NPAR;
        if (!(q[0] > 0) || !(q[3] >= 0.2 && q[3] <= diag) || !(q[4] >= 0.2 && q[4] <= diag))
            return false;
        if (!(q[1] >= is->x0 - 1 && q[1] <= is->x1 + 1 && q[2] >= is->y0 - 1 && q[2] <= is->y1 + 1))
            return false;
    }
    return true;
}

/* Levenberg-Marquardt from par (nc components); false when it fails or leaves the
 * island. */
static bool lm_fit(double *par, int nc, const fitpix *px, size_t n, const island *is)
{
    int m = nc * NPAR;
    if (n <= (size_t)m)
        return false;
    double *jtj = malloc((size_t)m * m * sizeof *jtj), *a = malloc((size_t)m * m * sizeof *a);
    double *jtr = malloc((size_t)m * sizeof *jtr), *step = malloc((size_t)m * sizeof *step);
    double *jac = malloc((size_t)m * sizeof *jac), *trial = malloc((size_t)m * sizeof *trial);
    bool ok = jtj && a && jtr && step && jac && trial;
    double lambda = 1e-3, chi2 = ok ? chi2_of(par, nc, px, n) : 0;
    bool converged = false;
    for (int iter = 0; ok && iter < 200 && !converged; iter++) {
        memset(jtj, 0, (size_t)m * m * sizeof *jtj);
        memset(jtr, 0, (size_t)m * sizeof *jtr);
        for (size_t i = 0; i < n; i++) {
            double r = px[i].v - model_at(par, nc, px[i].x, px[i].y, jac);
            for (int p = 0; p < m; p++) {
                jtr[p] += jac[p] * r;
                for (int q = 0; q <= p; q++)
                    jtj[p * m + q] += jac[p] * jac[q];
            }
        }
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++)
                jtj[p * m + q] = jtj[q * m + p];
        for (;;) {
            memcpy(a, jtj, (size_t)m * m * sizeof *a);
            memcpy(step, jtr, (size_t)m * sizeof *step);
            for (int p = 0; p < m; p++)
                a[p * m + p] += lambda * (jtj[p * m + p] > 0 ? jtj[p * m + p] : 1e-12);
            bool solved = cholesky_solve(a, step, m);
            double c2 = INFINITY;
            if (solved) {
                for (int p = 0; p < m; p++)
                    trial[p] = par[p] + step[p];
                if (params_sane(trial, nc, is))
                    c2 = chi2_of(trial, nc, px, n);
            }
            if (c2 <= chi2) {
                double gain = chi2 - c2;
                memcpy(par, trial, (size_t)m * sizeof *par);
                converged = gain <= 1e-10 * chi2 || c2 == 0;
                chi2 = c2;
                lambda = fmax(lambda / 10, 1e-12);
                break;
            }
            lambda *= 10;
            if (lambda > 1e12) {
                converged = true; /* no step improves: a minimum to within rounding */
                break;
            }
        }
    }
    free(jtj), free(a), free(jtr), free(step), free(jac), free(trial);
    return ok && converged && params_sane(par, nc, is);
}

/* --- Per island -------------------------------------------------------------------------- */

typedef struct ctx {
    const float *data, *bkg, *rms;
    const int *label;
    int nx, ny;
    const ct_src_opts *o;
    const ct_imgwcs *wcs;
    double cell_arcsec;
    double beam_sa, beam_sb, beam_th; /* the restoring beam in pixels (sigmas) and angle */
} ctx;

typedef struct peakpix {
    int x, y;
    double v;
} peakpix;

static int by_value_desc(const void *a, const void *b)
{
    double x = ((const peakpix *)a)->v, y = ((const peakpix *)b)->v;
    return (x < y) - (x > y);
}

static double resid(const ctx *c, int x, int y)
{
    size_t p = (size_t)y * c->nx + x;
    return (double)c->data[p] - c->bkg[p];
}

/* The significant peaks of island id, brightest first, at most max. */
static int island_peaks(const ctx *c, const island *is, const size_t *pix, int id, peakpix *out,
                        int max)
{
    int n = 0, cap = max * 8;
    peakpix *cand = malloc((size_t)cap * sizeof *cand);
    if (cand == NULL)
        return 0;
    for (size_t k = 0; k < is->n; k++) {
        size_t p = pix[k];
        int x = (int)(p % (size_t)c->nx), y = (int)(p / (size_t)c->nx);
        double v = resid(c, x, y);
        if (v < c->o->seed_sigma * c->rms[p])
            continue;
        bool is_max = true;
        for (int dy = -1; dy <= 1 && is_max; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int a = x + dx, b = y + dy;
                if ((dx || dy) && a >= 0 && a < c->nx && b >= 0 && b < c->ny &&
                    c->label[(size_t)b * c->nx + a] == id && resid(c, a, b) > v) {
                    is_max = false;
                    break;
                }
            }
        if (!is_max)
            continue;
        if (n == cap) { /* keep the brightest cap candidates */
            qsort(cand, (size_t)n, sizeof *cand, by_value_desc);
            if (v <= cand[n - 1].v)
                continue;
            n--;
        }
        cand[n++] = (peakpix){x, y, v};
    }
    qsort(cand, (size_t)n, sizeof *cand, by_value_desc);
    int kept = 0;
    for (int i = 0; i < n && kept < max; i++) {
        bool separate = true;
        double need = DIP_RMS * c->rms[(size_t)cand[i].y * c->nx + cand[i].x];
        for (int j = 0; j < kept && separate; j++) {
            /* The lowest point on the line to a brighter kept peak. */
            double len = hypot(out[j].x - cand[i].x, out[j].y - cand[i].y);
            int steps = (int)ceil(len * 2);
            double low = cand[i].v;
            for (int s = 1; s < steps; s++) {
                double t = (double)s / steps;
                int x = (int)lround(cand[i].x + t * (out[j].x - cand[i].x));
                int y = (int)lround(cand[i].y + t * (out[j].y - cand[i].y));
                double v = c->label[(size_t)y * c->nx + x] == id ? resid(c, x, y) : -INFINITY;
                low = v < low ? v : low;
            }
            separate = cand[i].v - low >= need;
        }
        if (separate)
            out[kept++] = cand[i];
    }
    free(cand);
    return kept;
}

/* Condon (1997): rho^2 for exponents (am, an) of the major and minor terms. */
static double condon_rho(double maj, double min, double beam2, double snr, double am, double an)
{
    double r2 = maj * min / (4 * beam2) * pow(1 + beam2 / (maj * maj), am) *
                pow(1 + beam2 / (min * min), an) * snr * snr;
    return sqrt(r2);
}

/* Fills s from component q (pixels; the angle in pixel axes) at the island. */
static void describe(const ctx *c, const double *q, ct_src *s)
{
    double sa = q[3], sb = q[4], th = q[5];
    if (sb > sa) { /* major first */
        double t = sa;
        sa = sb, sb = t, th += M_PI / 2;
    }
    int xi = (int)lround(fmin(fmax(q[1], 0), c->nx - 1));
    int yi = (int)lround(fmin(fmax(q[2], 0), c->ny - 1));
    size_t p = (size_t)yi * c->nx + xi;
    double rms = isfinite(c->rms[p]) && c->rms[p] > 0 ? c->rms[p] : NAN;
    s->x = q[1], s->y = q[2];
    s->peak_jy = q[0];
    s->rms_jy = rms;
    s->background_jy = c->bkg[p];
    s->snr = q[0] / rms;
    double fmaj = sa * FWHM_SIGMA, fmin_ = sb * FWHM_SIGMA; /* pixels */
    double bmaj = c->beam_sa * FWHM_SIGMA, bmin = c->beam_sb * FWHM_SIGMA;
    s->maj_arcsec = fmaj * c->cell_arcsec, s->min_arcsec = fmin_ * c->cell_arcsec;
    /* Pixel axis (cos th, sin th) points east -cos th, north sin th. */
    double pa = atan2(-cos(th), sin(th)) / DEG;
    pa = fmod(pa, 180.0);
    s->pa_deg = pa < 0 ? pa + 180.0 : pa;
    s->int_jy = q[0] * fmaj * fmin_ / (bmaj * bmin);
    /* Errors (Condon 1997), with the restoring beam as the noise's correlation. */
    double beam2 = bmaj * bmin;
    double rho_a = condon_rho(fmaj, fmin_, beam2, s->snr, 1.5, 1.5);
    double rho_maj = condon_rho(fmaj, fmin_, beam2, s->snr, 2.5, 0.5);
    double rho_min = condon_rho(fmaj, fmin_, beam2, s->snr, 0.5, 2.5);
    s->peak_err_jy = q[0] * M_SQRT2 / rho_a;
    double e_maj = M_SQRT2 / rho_maj, e_min = M_SQRT2 / rho_min; /* relative size errors */
    s->int_err_jy =
        fabs(s->int_jy) *
        sqrt(pow(M_SQRT2 / rho_a, 2) + beam2 / (fmaj * fmin_) * (e_maj * e_maj + e_min * e_min));
    double ex = sa * M_SQRT2 / rho_maj * c->cell_arcsec; /* along the major axis */
    double ey = sb * M_SQRT2 / rho_min * c->cell_arcsec;
    double sp = sin(s->pa_deg * DEG), cp = cos(s->pa_deg * DEG);
    s->ra_err_arcsec = sqrt(ex * ex * sp * sp + ey * ey * cp * cp);
    s->dec_err_arcsec = sqrt(ex * ex * cp * cp + ey * ey * sp * sp);
    double dir[3];
    if (ct_imgwcs_pixel_to_dir(c->wcs, q[1], q[2], dir))
        ct_dir_to_radec(dir, &s->ra_deg, &s->dec_deg);
    else
        s->ra_deg = s->dec_deg = NAN;
}

/* The island's moments as one component (the fallback when the fit fails). */
static void moments(const ctx *c, const island *is, const size_t *pix, double *q)
{
    double sw = 0, sx = 0, sy = 0, peak = -INFINITY;
    for (size_t k = 0; k < is->n; k++) {
        int x = (int)(pix[k] % (size_t)c->nx), y = (int)(pix[k] / (size_t)c->nx);
        double v = resid(c, x, y);
        peak = v > peak ? v : peak;
        if (v > 0)
            sw += v, sx += v * x, sy += v * y;
    }
    double mx = sx / sw, my = sy / sw, xx = 0, yy = 0, xy = 0;
    for (size_t k = 0; k < is->n; k++) {
        int x = (int)(pix[k] % (size_t)c->nx), y = (int)(pix[k] / (size_t)c->nx);
        double v = resid(c, x, y);
        if (v > 0)
            xx += v * (x - mx) * (x - mx), yy += v * (y - my) * (y - my),
                xy += v * (x - mx) * (y - my);
    }
    xx /= sw, yy /= sw, xy /= sw;
    /* Moments of pixels above a threshold understate a Gaussian's size: at least the
     * beam's. */
    double tr = xx + yy, det = xx * yy - xy * xy, disc = sqrt(fmax(0, tr * tr / 4 - det));
    double la = tr / 2 + disc, lb = tr / 2 - disc;
    q[0] = peak, q[1] = mx, q[2] = my;
    q[3] = fmax(sqrt(fmax(la, 0)), c->beam_sa);
    q[4] = fmax(sqrt(fmax(lb, 0)), c->beam_sb);
    q[5] = 0.5 * atan2(2 * xy, xx - yy);
}

/* Fits island id; its sources into out (at most max_components), returns how many. */
static int fit_island(const ctx *c, const island *is, const size_t *pix, int id, ct_src *out)
{
    int maxc = c->o->max_components;
    peakpix *pk = malloc((size_t)maxc * sizeof *pk);
    if (pk == NULL)
        return -1;
    int nc = island_peaks(c, is, pix, id, pk, maxc);
    if (nc == 0) { /* a seed pixel that is not a maximum of its own: the brightest pixel */
        nc = 1;
        pk[0].v = -INFINITY;
        for (size_t k = 0; k < is->n; k++) {
            int x = (int)(pix[k] % (size_t)c->nx), y = (int)(pix[k] / (size_t)c->nx);
            if (resid(c, x, y) > pk[0].v)
                pk[0] = (peakpix){x, y, resid(c, x, y)};
        }
    }
    /* The island and a one-pixel ring around it that no other island holds. */
    int x0 = is->x0 - 1 > 0 ? is->x0 - 1 : 0, x1 = is->x1 + 1 < c->nx ? is->x1 + 1 : c->nx - 1;
    int y0 = is->y0 - 1 > 0 ? is->y0 - 1 : 0, y1 = is->y1 + 1 < c->ny ? is->y1 + 1 : c->ny - 1;
    size_t cap = (size_t)(x1 - x0 + 1) * (size_t)(y1 - y0 + 1), n = 0;
    fitpix *px = malloc(cap * sizeof *px);
    double *par = malloc((size_t)nc * NPAR * sizeof *par);
    if (px == NULL || par == NULL) {
        free(pk), free(px), free(par);
        return -1;
    }
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            size_t p = (size_t)y * c->nx + x;
            if (!isfinite(c->data[p]) || !isfinite(c->bkg[p]))
                continue;
            bool take = c->label[p] == id;
            for (int dy = -1; dy <= 1 && !take && c->label[p] < 0; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int a = x + dx, b = y + dy;
                    if (a >= 0 && a < c->nx && b >= 0 && b < c->ny &&
                        c->label[(size_t)b * c->nx + a] == id) {
                        take = true;
                        break;
                    }
                }
            if (take)
                px[n++] = (fitpix){x, y, resid(c, x, y)};
        }
    for (int k = 0; k < nc; k++) {
        double *q = par + k * NPAR;
        q[0] = pk[k].v, q[1] = pk[k].x, q[2] = pk[k].y;
        q[3] = c->beam_sa, q[4] = c->beam_sb, q[5] = c->beam_th;
    }
    int flags = (is->edge ? CT_SRC_EDGE : 0) | (nc > 1 ? CT_SRC_BLEND : 0);
    if (!lm_fit(par, nc, px, n, is)) {
        /* One Gaussian may still fit where several did not; else the moments. */
        nc = 1;
        par[0] = pk[0].v, par[1] = pk[0].x, par[2] = pk[0].y;
        par[3] = c->beam_sa, par[4] = c->beam_sb, par[5] = c->beam_th;
        flags &= ~CT_SRC_BLEND;
        if (!lm_fit(par, 1, px, n, is)) {
            moments(c, is, pix, par);
            flags |= CT_SRC_MOMENTS;
        }
    }
    for (int k = 0; k < nc; k++) {
        memset(&out[k], 0, sizeof out[k]);
        describe(c, par + k * NPAR, &out[k]);
        out[k].island = id;
        out[k].n_pixels = (int)is->n;
        out[k].flags = flags;
    }
    free(pk), free(px), free(par);
    return nc;
}

static int by_peak_desc(const void *a, const void *b)
{
    double x = ((const ct_src *)a)->peak_jy, y = ((const ct_src *)b)->peak_jy;
    return (x < y) - (x > y);
}

static double now_sec(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The median of the finite values of a (n of them; reordering a copy); NaN when there are
 * none. CT_ENOMEM. */
static ct_code finite_median(const float *a, size_t n, double *out, ct_err *err)
{
    double *v = malloc(n * sizeof *v);
    if (v == NULL)
        return ct_fail(err, CT_ENOMEM, "sources: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(a[i]))
            v[k++] = a[i];
    *out = k ? ct_median_inplace(v, k) : NAN;
    free(v);
    return CT_OK;
}

ct_code ct_src_find(const float *data, const ct_fits_image_desc *d, const char *projection,
                    const ct_src_opts *o, ct_src_catalog *out, float *bkg_out, float *rms_out,
                    ct_err *err)
{
    memset(out, 0, sizeof *out);
    ct_code rc = ct_src_opts_check(o, err);
    if (rc != CT_OK)
        return rc;
    if (d->nx < 4 || d->ny < 4)
        return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                          "corrupt_input: a %d x %d image is too small to search", d->nx, d->ny);
    ct_imgwcs wcs;
    if ((rc = ct_imgwcs_make(&wcs, d, projection, err)) != CT_OK)
        return rc;
    double t0 = now_sec();
    double cell = d->cdelt_deg;
    ctx c = {
        .data = data, .nx = d->nx, .ny = d->ny, .o = o, .wcs = &wcs, .cell_arcsec = cell * 3600};
    bool has_beam = d->bmaj_deg > 0 && d->bmin_deg > 0 && isfinite(d->bmaj_deg);
    double bmaj = has_beam ? d->bmaj_deg / cell : 3, bmin = has_beam ? d->bmin_deg / cell : 3;
    double bpa = has_beam ? d->bpa_deg * DEG : 0;
    c.beam_sa = bmaj / FWHM_SIGMA, c.beam_sb = bmin / FWHM_SIGMA;
    c.beam_th = atan2(cos(bpa), -sin(bpa)); /* PA's direction (east sin, north cos) in pixels */
    out->beam_maj_arcsec = bmaj * cell * 3600, out->beam_min_arcsec = bmin * cell * 3600;
    out->beam_pa_deg = has_beam ? d->bpa_deg : 0;
    int box = o->box;
    if (box == 0)
        box = (int)fmax(16, ceil(10 * bmaj));
    out->box = box;
    if (o->threads > 0)
        omp_set_num_threads(o->threads);

    size_t npix = (size_t)d->nx * d->ny;
    float *bkg = bkg_out ? bkg_out : malloc(npix * sizeof *bkg);
    float *rms = rms_out ? rms_out : malloc(npix * sizeof *rms);
    int *label = malloc(npix * sizeof *label);
    islands isl = {0};
    if (bkg == NULL || rms == NULL || label == NULL) {
        rc = ct_fail(err, CT_ENOMEM, "sources: out of memory for a %d x %d image", d->nx, d->ny);
        goto done;
    }
    if ((rc = ct_src_background(data, d->nx, d->ny, box, bkg, rms, err)) != CT_OK)
        goto done;
    if ((rc = finite_median(rms, npix, &out->rms_jy, err)) != CT_OK)
        goto done;
    if (!(out->rms_jy > 0)) {
        rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                        "corrupt_input: the image has no noise (rms %g): nothing to measure a "
                        "source against",
                        out->rms_jy);
        goto done;
    }
    c.bkg = bkg, c.rms = rms, c.label = label;
    if ((rc = find_islands(data, bkg, rms, d->nx, d->ny, o, label, &isl, err)) != CT_OK)
        goto done;
    out->n_islands = isl.n;
    int maxc = o->max_components;
    ct_src *all = malloc((isl.n ? isl.n : 1) * (size_t)maxc * sizeof *all);
    int *count = calloc(isl.n ? isl.n : 1, sizeof *count);
    if (all == NULL || count == NULL) {
        free(all), free(count);
        rc = ct_fail(err, CT_ENOMEM, "sources: out of memory for %zu islands", isl.n);
        goto done;
    }
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < isl.n; i++) {
        count[i] =
            fit_island(&c, &isl.is[i], isl.pix + isl.is[i].first, (int)i, all + i * (size_t)maxc);
        if (count[i] < 0) {
#pragma omp atomic write
            failed = 1;
        }
    }
    if (failed) {
        free(all), free(count);
        rc = ct_fail(err, CT_ENOMEM, "sources: out of memory fitting islands");
        goto done;
    }
    size_t n = 0;
    for (size_t i = 0; i < isl.n; i++)
        for (int k = 0; k < count[i]; k++)
            all[n++] = all[i * (size_t)maxc + k];
    free(count);
    qsort(all, n, sizeof *all, by_peak_desc);
    out->src = all, out->n = n;
    out->seconds = now_sec() - t0;
done:
    if (bkg != bkg_out)
        free(bkg);
    if (rms != rms_out)
        free(rms);
    free(label), free(isl.pix), free(isl.is);
    if (rc != CT_OK)
        ct_src_catalog_free(out);
    return rc;
}

void ct_src_catalog_free(ct_src_catalog *c)
{
    free(c->src);
    c->src = NULL, c->n = 0;
}

/* --- Output -------------------------------------------------------------------------------- */

/* The catalogue's columns, in the JSON's and the CSV's order. */
/* clang-format off */
#define SRC_COLUMNS(X)                                                                             \
    X(ra_deg, "%.9f") X(dec_deg, "%.9f") X(ra_err_arcsec, "%.4g") X(dec_err_arcsec, "%.4g")       \
    X(x, "%.4f") X(y, "%.4f") X(peak_jy, "%.6g") X(peak_err_jy, "%.4g") X(int_jy, "%.6g")         \
    X(int_err_jy, "%.4g") X(maj_arcsec, "%.4f") X(min_arcsec, "%.4f") X(pa_deg, "%.3f")           \
    X(rms_jy, "%.4g") X(background_jy, "%.4g") X(snr, "%.3f")
/* clang-format on */

/* JSON has no NaN: null for a value that is not finite. */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *ct_src_catalog_json(const ct_src_catalog *c)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < c->n; i++) {
        const ct_src *s = &c->src[i];
        json_t *o = json_object();
#define X(name, fmt) json_object_set_new(o, #name, num(s->name));
        SRC_COLUMNS(X)
#undef X
        json_object_set_new(o, "island", json_integer(s->island));
        json_object_set_new(o, "flags", json_integer(s->flags));
        if (json_array_append_new(list, o) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return json_pack("{s:o, s:o, s:I, s:{s:o, s:o, s:o}, s:i, s:f}", "sources", list, "rms_jy",
                     num(c->rms_jy), "n_islands", (json_int_t)c->n_islands, "beam", "maj_arcsec",
                     num(c->beam_maj_arcsec), "min_arcsec", num(c->beam_min_arcsec), "pa_deg",
                     num(c->beam_pa_deg), "box", c->box, "seconds", c->seconds);
}

ct_code ct_src_catalog_write_csv(const ct_src_catalog *c, const char *path, ct_err *err)
{
    char tmp[PATH_MAX + 64];
    if (!ct_temp_name(tmp, sizeof tmp, path))
        return ct_fail(err, CT_EINVAL, "catalogue path too long: %s", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return ct_fail(err, CT_EIO, "%s: %s", tmp, strerror(errno));
    const char *sep = "";
#define X(name, fmt) fprintf(f, "%s%s", sep, #name), sep = ",";
    SRC_COLUMNS(X)
#undef X
    fprintf(f, ",island,flags\n");
    for (size_t i = 0; i < c->n; i++) {
        const ct_src *s = &c->src[i];
        sep = "";
#define X(name, fmt)                                                                               \
    fputs(sep, f);                                                                                 \
    if (isfinite(s->name))                                                                         \
        fprintf(f, fmt, s->name);                                                                  \
    sep = ",";
        SRC_COLUMNS(X)
#undef X
        fprintf(f, ",%d,%d\n", s->island, s->flags);
    }
    bool ok = fflush(f) == 0 && !ferror(f) && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) & ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ct_fail(err, CT_EIO, "%s: %s", path, strerror(e));
    }
    ct_fsync_parent(path);
    return CT_OK;
}

ct_code ct_src_opts_from_json(ct_src_opts *o, const json_t *config, ct_err *err)
{
    if (config != NULL && !json_is_null(config)) {
        if (!json_is_object(config))
            return ct_fail(err, CT_EINVAL, "source-finding config must be an object");
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)config, key, v)
        {
            bool whole = strcmp(key, "box") == 0 || strcmp(key, "max_components") == 0;
            if (whole ? !json_is_integer(v) : !json_is_number(v))
                return ct_fail(err, CT_EINVAL, "source-finding config %s must be %s", key,
                               whole ? "a whole number" : "a number");
            if (strcmp(key, "seed_sigma") == 0)
                o->seed_sigma = json_number_value(v);
            else if (strcmp(key, "island_sigma") == 0)
                o->island_sigma = json_number_value(v);
            else if (whole) {
                json_int_t n = json_integer_value(v);
                int x = n < 0 || n > 1000000 ? -1 : (int)n;
                *(strcmp(key, "box") == 0 ? &o->box : &o->max_components) = x;
            } else
                return ct_fail(err, CT_EINVAL, "source-finding config: unknown key \"%s\"", key);
        }
    }
    return ct_src_opts_check(o, err);
}

ct_code ct_src_catalog_read_csv(const char *path, ct_src_catalog *out, ct_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ct_fail(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s: %s", path,
                       strerror(errno));
    static const char *const cols[] = {
#define X(name, fmt) #name,
        SRC_COLUMNS(X)
#undef X
    };
    enum { NC = sizeof cols / sizeof cols[0] };
    char *line = NULL;
    size_t cap = 0, have = 0;
    long lineno = 0;
    ct_code rc = CT_OK;
    while (rc == CT_OK && getline(&line, &cap, f) != -1) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (lineno == 1) { /* the header: ours, in our order */
            char *save = NULL, *tok = strtok_r(line, ",", &save);
            for (int i = 0; i < NC + 2 && rc == CT_OK; i++, tok = strtok_r(NULL, ",", &save)) {
                const char *want = i < NC ? cols[i] : i == NC ? "island" : "flags";
                if (tok == NULL || strcmp(tok, want) != 0)
                    rc = ct_fail(err, CT_EINVAL,
                                 "%s: not a contimg source catalogue (column %d "
                                 "is not %s)",
                                 path, i + 1, want);
            }
            continue;
        }
        if (out->n == have) {
            have = have ? 2 * have : 256;
            ct_src *g = realloc(out->src, have * sizeof *g);
            if (g == NULL) {
                rc = ct_fail(err, CT_ENOMEM, "%s: out of memory", path);
                break;
            }
            out->src = g;
        }
        ct_src *s = &out->src[out->n];
        memset(s, 0, sizeof *s);
        double *field[] = {
#define X(name, fmt) &s->name,
            SRC_COLUMNS(X)
#undef X
        };
        /* strtok_r would skip empty fields (a value that was not finite): split by hand. */
        char *p = line;
        for (int i = 0; i < NC + 2 && rc == CT_OK; i++) {
            char *comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            else if (i < NC + 1)
                rc = ct_fail(err, CT_EINVAL, "%s: line %ld: %d fields, not %d", path, lineno, i + 1,
                             NC + 2);
            char *end;
            double v = *p ? strtod(p, &end) : NAN;
            if (*p && *end != '\0')
                rc = ct_fail(err, CT_EINVAL, "%s: line %ld: '%s' is not a number", path, lineno, p);
            if (i < NC)
                *field[i] = v;
            else if (!(v >= 0 && v <= 1e9 && v == floor(v)))
                rc = ct_fail(err, CT_EINVAL, "%s: line %ld: %s '%s' is not a whole number", path,
                             lineno, i == NC ? "island" : "flags", p);
            else if (i == NC)
                s->island = (int)v;
            else
                s->flags = (int)v;
            p = comma ? comma + 1 : p + strlen(p);
        }
        out->n++;
    }
    if (rc == CT_OK && lineno == 0)
        rc = ct_fail(err, CT_EINVAL, "%s: empty: not a contimg source catalogue", path);
    free(line);
    fclose(f);
    if (rc != CT_OK)
        ct_src_catalog_free(out);
    return rc;
}
