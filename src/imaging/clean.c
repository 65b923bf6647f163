/* clean.c -- see clean.h. */
#define _GNU_SOURCE /* M_PI */
#include "clean.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The main lobe: pixels at or above this fraction of the centre value. */
#define LOBE_FRACTION 0.35
/* Restoration evaluates the beam out to this many sigma of the major axis. */
#define RESTORE_SIGMAS 5.0

static const double FOUR_LN2 = 2.772588722239781; /* 4 ln 2 */

/* Whether nx by ny is a usable image size (positive, count fits in size_t and int). */
static int size_ok(int nx, int ny)
{
    return nx > 0 && ny > 0 && (size_t)nx <= (size_t)INT32_MAX / (size_t)ny;
}

/* Checks that every value is finite and that the largest lies at the centre
 * pixel and is positive; *p0 receives the centre value. */
static ct_code check_psf(const double *psf, int nx, int ny, double *p0, ct_err *err)
{
    size_t n = (size_t)nx * (size_t)ny;
    size_t c = (size_t)(ny / 2) * (size_t)nx + (size_t)(nx / 2);
    double centre = psf[c];
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(psf[i]))
            return ct_fail(err, CT_EINVAL, "PSF pixel (%zu, %zu) is not finite", i % (size_t)nx,
                           i / (size_t)nx);
        if (psf[i] > centre)
            return ct_fail(err, CT_EINVAL,
                           "PSF does not peak at the centre pixel (%d, %d): %g at (%zu, %zu) "
                           "exceeds %g",
                           nx / 2, ny / 2, psf[i], i % (size_t)nx, i / (size_t)nx, centre);
    }
    if (!(centre > 0))
        return ct_fail(err, CT_EINVAL, "PSF peak %g at the centre is not positive", centre);
    *p0 = centre;
    return CT_OK;
}

/* Solves the 3 x 3 system a x = b by Gaussian elimination with partial
 * pivoting; returns 0 when a pivot is negligible (the system is singular). */
static int solve3(double a[3][3], double b[3], double x[3])
{
    double scale = fmax(fabs(a[0][0]), fmax(fabs(a[1][1]), fabs(a[2][2])));
    if (!(scale > 0))
        return 0;
    for (int k = 0; k < 3; k++) {
        int p = k;
        for (int i = k + 1; i < 3; i++)
            if (fabs(a[i][k]) > fabs(a[p][k]))
                p = i;
        if (!(fabs(a[p][k]) > 1e-10 * scale))
            return 0;
        if (p != k) {
            for (int j = 0; j < 3; j++) {
                double t = a[k][j];
                a[k][j] = a[p][j];
                a[p][j] = t;
            }
            double t = b[k];
            b[k] = b[p];
            b[p] = t;
        }
        for (int i = k + 1; i < 3; i++) {
            double f = a[i][k] / a[k][k];
            for (int j = k; j < 3; j++)
                a[i][j] -= f * a[k][j];
            b[i] -= f * b[k];
        }
    }
    for (int k = 2; k >= 0; k--) {
        double s = b[k];
        for (int j = k + 1; j < 3; j++)
            s -= a[k][j] * x[j];
        x[k] = s / a[k][k];
    }
    return 1;
}

ct_code ct_beam_fit(const double *psf, int nx, int ny, double cell_rad, ct_beam *out, ct_err *err)
{
    if (!psf || !out)
        return ct_fail(err, CT_EINVAL, "beam fit: NULL argument");
    if (!size_ok(nx, ny) || nx < 3 || ny < 3)
        return ct_fail(err, CT_EINVAL, "beam fit: image %d x %d is too small (at least 3 x 3)", nx,
                       ny);
    if (!(cell_rad > 0) || !isfinite(cell_rad))
        return ct_fail(err, CT_EINVAL, "beam fit: cell %g is not positive and finite", cell_rad);
    double p0;
    ct_code rc = check_psf(psf, nx, ny, &p0, err);
    if (rc != CT_OK)
        return rc;

    /* Flood fill of the main lobe from the centre (4-connected). */
    size_t n = (size_t)nx * (size_t)ny;
    const int cx = nx / 2, cy = ny / 2;
    unsigned char *seen = calloc(n, 1);
    size_t *stack = malloc(n * sizeof *stack);
    if (!seen || !stack) {
        free(seen);
        free(stack);
        return ct_fail(err, CT_ENOMEM, "beam fit: out of memory for %d x %d pixels", nx, ny);
    }
    double nrm[3][3] = {{0}}, rhs[3] = {0};
    size_t top = 0, count = 0;
    size_t start = (size_t)cy * (size_t)nx + (size_t)cx;
    stack[top++] = start;
    seen[start] = 1;
    while (top > 0) {
        size_t i = stack[--top];
        int ix = (int)(i % (size_t)nx), iy = (int)(i / (size_t)nx);
        double p = psf[i] / p0;
        double dx = ix - cx, dy = iy - cy;
        const double f[3] = {dx * dx, dx * dy, dy * dy};
        double t = -log(p), w = p * p;
        for (int r = 0; r < 3; r++) {
            for (int s = 0; s < 3; s++)
                nrm[r][s] += w * f[r] * f[s];
            rhs[r] += w * f[r] * t;
        }
        count++;
        const int nbx[4] = {ix - 1, ix + 1, ix, ix}, nby[4] = {iy, iy, iy - 1, iy + 1};
        for (int k = 0; k < 4; k++) {
            if (nbx[k] < 0 || nbx[k] >= nx || nby[k] < 0 || nby[k] >= ny)
                continue;
            size_t j = (size_t)nby[k] * (size_t)nx + (size_t)nbx[k];
            if (!seen[j] && psf[j] >= LOBE_FRACTION * p0) {
                seen[j] = 1;
                stack[top++] = j;
            }
        }
    }
    free(seen);
    free(stack);

    double q[3];
    if (!solve3(nrm, rhs, q))
        return ct_fail(err, CT_EINVAL,
                       "beam fit: the main lobe (%zu pixels above %.2f of the peak) is too "
                       "poorly sampled to fit an ellipse; use smaller cells",
                       count, LOBE_FRACTION);
    /* Q = a dx^2 + b dx dy + c dy^2 = v^T M v with M = [[a, b/2], [b/2, c]]. */
    double a = q[0], hb = 0.5 * q[1], c = q[2];
    double mean = 0.5 * (a + c), disc = hypot(0.5 * (a - c), hb);
    double lmin = mean - disc, lmax = mean + disc;
    if (!(lmin > 0) || !isfinite(lmax))
        return ct_fail(err, CT_EINVAL,
                       "beam fit: the main lobe (%zu pixels) does not fit a bounded ellipse "
                       "(eigenvalues %g, %g per pixel^2)",
                       count, lmin, lmax);
    double pa = 0;
    if (disc > 1e-12 * mean) {
        /* The eigenvector of the smaller eigenvalue is the major axis. */
        double e1x = hb, e1y = lmin - a;
        double e2x = lmin - c, e2y = hb;
        double ex = e1x, ey = e1y;
        if (hypot(e2x, e2y) > hypot(e1x, e1y)) {
            ex = e2x;
            ey = e2y;
        }
        pa = atan2(ex, ey); /* from +m (north) towards +l (east) */
        pa = fmod(pa, M_PI);
        if (pa < 0)
            pa += M_PI;
        if (pa >= M_PI)
            pa -= M_PI;
    }
    out->bmaj = sqrt(FOUR_LN2 / lmin) * cell_rad;
    out->bmin = sqrt(FOUR_LN2 / lmax) * cell_rad;
    out->bpa = pa;
    return CT_OK;
}

void ct_clean_opts_default(ct_clean_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->gain = 0.1;
    o->niter = 1000;
    o->threshold = 0;
    o->mask = NULL;
    o->psf_nx = o->psf_ny = 0;
}

void ct_clean_components_free(ct_clean_components *c)
{
    if (!c)
        return;
    free(c->items);
    c->items = NULL;
    c->n = c->cap = 0;
}

const char *ct_clean_stop_name(ct_clean_stop reason)
{
    switch (reason) {
    case CT_CLEAN_STOP_NITER: return "niter";
    case CT_CLEAN_STOP_THRESHOLD: return "threshold";
    }
    return "unknown";
}

/* Appends a component, growing the array; returns 0 when out of memory. */
static int append_component(ct_clean_components *c, int ix, int iy, double flux)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        ct_clean_component *items = realloc(c->items, cap * sizeof *items);
        if (!items)
            return 0;
        c->items = items;
        c->cap = cap;
    }
    c->items[c->n].ix = ix;
    c->items[c->n].iy = iy;
    c->items[c->n].flux = flux;
    c->n++;
    return 1;
}

/* Row iy's largest |residual| within the mask and its first column (-1: none). */
static void row_peak(const double *residual, const unsigned char *mask, int nx, int iy,
                     double *peak, long *arg)
{
    const double *r = residual + (size_t)iy * (size_t)nx;
    const unsigned char *m = mask ? mask + (size_t)iy * (size_t)nx : NULL;
    double best = 0;
    long at = -1;
    for (int ix = 0; ix < nx; ix++) {
        if (m && !m[ix])
            continue;
        double v = fabs(r[ix]);
        if (at < 0 || v > best) {
            best = v;
            at = ix;
        }
    }
    *peak = best;
    *arg = at;
}

/* Whether CLEAN stops before another component, and why: no peak (an empty
 * mask) or one at the threshold, or niter components made. */
static bool stops(bool no_peak, double peak_abs, int iter, const ct_clean_opts *o,
                  ct_clean_stop *reason)
{
    if (no_peak || peak_abs <= o->threshold) {
        *reason = CT_CLEAN_STOP_THRESHOLD;
        return true;
    }
    if (iter >= o->niter) {
        *reason = CT_CLEAN_STOP_NITER;
        return true;
    }
    return false;
}

static void set_result(ct_clean_result *res, int iter, double peak_abs, ct_clean_stop reason)
{
    if (res) {
        res->iterations = iter;
        res->peak_residual = peak_abs;
        res->reason = reason;
    }
}

/* Adds flux at pixel (px, py), whose entry in out->items is *slot (-1 for
 * none yet): to that entry, or as a new one. */
static bool record_component(ct_clean_components *out, long *slot, int px, int py, double flux)
{
    if (*slot >= 0) {
        out->items[*slot].flux += flux;
        return true;
    }
    if (!append_component(out, px, py, flux))
        return false;
    *slot = (long)(out->n - 1);
    return true;
}

/* Hogbom's loop over the active set only (ct_clean_opts.active_below): the
 * pixels above it at the start, in index order, so that the first of equal
 * peaks is the one the whole-image search picks, and each subtracted by the
 * same product as there. */
static ct_code hogbom_active(double *residual, const double *psf, int nx, int ny, int pnx, int pny,
                             double p0, const ct_clean_opts *o, ct_clean_components *out,
                             ct_clean_result *res, ct_err *err)
{
    const size_t n = (size_t)nx * (size_t)ny;
    const int cx = pnx / 2, cy = pny / 2;
    const int threads = o->threads > 0 ? o->threads : 1;
    size_t na = 0;
    for (size_t i = 0; i < n; i++)
        na += (!o->mask || o->mask[i]) && fabs(residual[i]) > o->active_below;
    size_t *act = malloc((na + 1) * sizeof *act);
    if (!act)
        return ct_fail(err, CT_ENOMEM, "clean: out of memory for %zu active pixels", na);
    na = 0;
    for (size_t i = 0; i < n; i++)
        if ((!o->mask || o->mask[i]) && fabs(residual[i]) > o->active_below)
            act[na++] = i;
    /* Each active pixel's entry in out->items (-1: none), found by bisection
     * in the (sorted) active list: a whole-image table was a tenth of a
     * second per minor cycle at 4800^2 pixels. */
    long *where = malloc((na + 1) * sizeof *where);
    if (!where) {
        free(act);
        return ct_fail(err, CT_ENOMEM, "clean: out of memory for %zu active pixels", na);
    }
    for (size_t k = 0; k < na; k++)
        where[k] = -1;
    for (size_t c = 0; c < out->n; c++) {
        const size_t i = (size_t)out->items[c].iy * (size_t)nx + (size_t)out->items[c].ix;
        size_t lo = 0, hi = na;
        while (lo < hi) {
            const size_t mid = lo + (hi - lo) / 2;
            if (act[mid] < i)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < na && act[lo] == i)
            where[lo] = (long)c;
    }
    int iter = 0;
    double peak_abs = 0;
    ct_clean_stop reason;
    for (;;) {
        size_t best = n, kbest = 0;
        peak_abs = 0;
        for (size_t k = 0; k < na; k++) {
            double v = fabs(residual[act[k]]);
            if (best == n || v > peak_abs) {
                best = act[k];
                kbest = k;
                peak_abs = v;
            }
        }
        if (stops(best == n, peak_abs, iter, o, &reason))
            break;
        const int px = (int)(best % (size_t)nx), py = (int)(best / (size_t)nx);
        const double flux = o->gain * residual[best] / p0;
#pragma omp parallel for num_threads(na > 65536 ? threads : 1) schedule(static)
        for (size_t k = 0; k < na; k++) {
            const long ix = (long)(act[k] % (size_t)nx), iy = (long)(act[k] / (size_t)nx);
            const long ox = ix - px + cx, oy = iy - py + cy;
            if (ox >= 0 && ox < pnx && oy >= 0 && oy < pny)
                residual[act[k]] -= flux * psf[(size_t)oy * (size_t)pnx + (size_t)ox];
        }
        if (!record_component(out, &where[kbest], px, py, flux)) {
            free(act);
            free(where);
            return ct_fail(err, CT_ENOMEM, "clean: out of memory for %zu components", out->n + 1);
        }
        iter++;
    }
    free(act);
    free(where);
    set_result(res, iter, peak_abs, reason);
    return CT_OK;
}

ct_code ct_clean_hogbom(double *residual, const double *psf, int nx, int ny, const ct_clean_opts *o,
                        ct_clean_components *out, ct_clean_result *res, ct_err *err)
{
    if (!residual || !psf || !o || !out)
        return ct_fail(err, CT_EINVAL, "clean: NULL argument");
    if (!size_ok(nx, ny))
        return ct_fail(err, CT_EINVAL, "clean: bad image size %d x %d", nx, ny);
    if (!(o->gain > 0 && o->gain <= 1))
        return ct_fail(err, CT_EINVAL, "clean: gain %g is outside (0, 1]", o->gain);
    if (o->niter < 0)
        return ct_fail(err, CT_EINVAL, "clean: niter %d is negative", o->niter);
    if (!(o->threshold >= 0) || !isfinite(o->threshold))
        return ct_fail(err, CT_EINVAL, "clean: threshold %g is not a finite value >= 0",
                       o->threshold);
    const int pnx = o->psf_nx ? o->psf_nx : nx, pny = o->psf_ny ? o->psf_ny : ny;
    if (pnx < nx || pny < ny || !size_ok(pnx, pny))
        return ct_fail(err, CT_EINVAL, "clean: PSF %d x %d is smaller than the image %d x %d", pnx,
                       pny, nx, ny);
    if (o->mask && (o->mask_nx != nx || o->mask_ny != ny))
        return ct_fail(err, CT_EINVAL, "clean: mask is %d x %d, the image %d x %d", o->mask_nx,
                       o->mask_ny, nx, ny);
    if (out->n > 0 && !out->items)
        return ct_fail(err, CT_EINVAL, "clean: component list has entries but no storage");
    for (size_t k = 0; k < out->n; k++) {
        const ct_clean_component *q = &out->items[k];
        if (q->ix < 0 || q->ix >= nx || q->iy < 0 || q->iy >= ny)
            return ct_fail(err, CT_EINVAL, "clean: existing component (%d, %d) is outside %d x %d",
                           q->ix, q->iy, nx, ny);
    }
    double p0;
    ct_code rc = check_psf(psf, pnx, pny, &p0, err);
    if (rc != CT_OK)
        return rc;
    size_t n = (size_t)nx * (size_t)ny;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(residual[i]))
            return ct_fail(err, CT_EINVAL, "clean: dirty image pixel (%zu, %zu) is not finite",
                           i % (size_t)nx, i / (size_t)nx);

    if (!(o->active_below >= 0) || !isfinite(o->active_below))
        return ct_fail(err, CT_EINVAL, "clean: active_below %g is not a finite value >= 0",
                       o->active_below);
    if (o->active_below > 0)
        return hogbom_active(residual, psf, nx, ny, pnx, pny, p0, o, out, res, err);
    /* Where each pixel's component lives in out->items, -1 for none. */
    long *where = malloc(n * sizeof *where);
    if (!where)
        return ct_fail(err, CT_ENOMEM, "clean: out of memory for %d x %d pixels", nx, ny);
    for (size_t i = 0; i < n; i++)
        where[i] = -1;
    for (size_t k = 0; k < out->n; k++)
        where[(size_t)out->items[k].iy * (size_t)nx + (size_t)out->items[k].ix] = (long)k;

    const int cx = pnx / 2, cy = pny / 2;
    const unsigned char *mask = o->mask;
    const int threads = o->threads > 0 ? o->threads : 1;
    /* Per row, its largest |residual| in the mask and where (the first of
     * equals; -1 for none). The peak is the first row's of the largest, the
     * same pixel a scan of the whole image in index order picks. A
     * subtraction then rescans only the rows it changed, in the same pass
     * (one read and write of each such row, not two), the rows dealt to the
     * threads: every pixel's arithmetic is the same whatever they are. */
    double *rmax = malloc((size_t)ny * sizeof *rmax);
    long *rarg = malloc((size_t)ny * sizeof *rarg);
    if (!rmax || !rarg) {
        free(where);
        free(rmax);
        free(rarg);
        return ct_fail(err, CT_ENOMEM, "clean: out of memory for %d rows", ny);
    }
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int iy = 0; iy < ny; iy++)
        row_peak(residual, mask, nx, iy, &rmax[iy], &rarg[iy]);
    int iter = 0;
    double peak_abs = 0;
    ct_clean_stop reason;
    for (;;) {
        /* The largest |residual| in the mask; the first (lowest index) wins ties. */
        size_t best = n;
        peak_abs = 0;
        for (int iy = 0; iy < ny; iy++)
            if (rarg[iy] >= 0 && (best == n || rmax[iy] > peak_abs)) {
                best = (size_t)iy * (size_t)nx + (size_t)rarg[iy];
                peak_abs = rmax[iy];
            }
        if (stops(best == n, peak_abs, iter, o, &reason))
            break;
        int px = (int)(best % (size_t)nx), py = (int)(best / (size_t)nx);
        double flux = o->gain * residual[best] / p0;

        /* residual(ix, iy) -= flux psf(ix - px + cx, iy - py + cy), where that exists. */
        int y0 = py - cy > 0 ? py - cy : 0, y1 = py - cy + pny < ny ? py - cy + pny : ny;
        int x0 = px - cx > 0 ? px - cx : 0, x1 = px - cx + pnx < nx ? px - cx + pnx : nx;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int iy = y0; iy < y1; iy++) {
            double *r = residual + (size_t)iy * (size_t)nx;
            const double *p = psf + (size_t)(iy - py + cy) * (size_t)pnx;
            for (int ix = x0; ix < x1; ix++)
                r[ix] -= flux * p[ix - px + cx];
            row_peak(residual, mask, nx, iy, &rmax[iy], &rarg[iy]);
        }

        if (!record_component(out, &where[best], px, py, flux)) {
            free(where);
            free(rmax);
            free(rarg);
            return ct_fail(err, CT_ENOMEM, "clean: out of memory for %zu components", out->n + 1);
        }
        iter++;
    }
    free(where);
    free(rmax);
    free(rarg);
    set_result(res, iter, peak_abs, reason);
    return CT_OK;
}

ct_code ct_clean_restore(const ct_clean_components *c, const ct_beam *b, double cell_rad,
                         const double *residual, int nx, int ny, double *restored, ct_err *err)
{
    if (!c || !b || !residual || !restored)
        return ct_fail(err, CT_EINVAL, "restore: NULL argument");
    if (!size_ok(nx, ny))
        return ct_fail(err, CT_EINVAL, "restore: bad image size %d x %d", nx, ny);
    if (!(cell_rad > 0) || !isfinite(cell_rad))
        return ct_fail(err, CT_EINVAL, "restore: cell %g is not positive and finite", cell_rad);
    if (!(b->bmaj > 0) || !(b->bmin > 0) || !isfinite(b->bmaj) || !isfinite(b->bmin) ||
        !isfinite(b->bpa))
        return ct_fail(err, CT_EINVAL, "restore: beam (%g, %g, %g) is not positive and finite",
                       b->bmaj, b->bmin, b->bpa);
    if (c->n > 0 && !c->items)
        return ct_fail(err, CT_EINVAL, "restore: component list has entries but no storage");
    for (size_t k = 0; k < c->n; k++) {
        const ct_clean_component *q = &c->items[k];
        if (q->ix < 0 || q->ix >= nx || q->iy < 0 || q->iy >= ny || !isfinite(q->flux))
            return ct_fail(err, CT_EINVAL, "restore: component %zu at (%d, %d) is outside %d x %d",
                           k, q->ix, q->iy, nx, ny);
    }

    /* The beam on a (2h+1)^2 box of pixel offsets, h = ceil(5 sigma_maj / cell),
     * no wider than the image needs. */
    double bmaj = fmax(b->bmaj, b->bmin), bmin = fmin(b->bmaj, b->bmin);
    double sigma = bmaj / sqrt(8.0 * log(2.0));
    double hd = ceil(RESTORE_SIGMAS * sigma / cell_rad);
    int lim = nx > ny ? nx : ny;
    int h = hd < (double)lim ? (int)hd : lim;
    size_t side = 2 * (size_t)h + 1;
    double *kern = malloc(side * side * sizeof *kern);
    if (!kern)
        return ct_fail(err, CT_ENOMEM, "restore: out of memory for a %zu-pixel beam", side);
    double sp = sin(b->bpa), cp = cos(b->bpa);
    for (int dy = -h; dy <= h; dy++) {
        for (int dx = -h; dx <= h; dx++) {
            double x = dx * cell_rad, y = dy * cell_rad;
            double pmaj = x * sp + y * cp, pmin = x * cp - y * sp;
            double qf = (pmaj / bmaj) * (pmaj / bmaj) + (pmin / bmin) * (pmin / bmin);
            kern[(size_t)(dy + h) * side + (size_t)(dx + h)] = exp(-FOUR_LN2 * qf);
        }
    }

    size_t n = (size_t)nx * (size_t)ny;
    if (restored != residual)
        memmove(restored, residual, n * sizeof *restored);
    for (size_t k = 0; k < c->n; k++) {
        const ct_clean_component *q = &c->items[k];
        int y0 = q->iy - h > 0 ? q->iy - h : 0, y1 = q->iy + h + 1 < ny ? q->iy + h + 1 : ny;
        int x0 = q->ix - h > 0 ? q->ix - h : 0, x1 = q->ix + h + 1 < nx ? q->ix + h + 1 : nx;
        for (int iy = y0; iy < y1; iy++) {
            double *r = restored + (size_t)iy * (size_t)nx;
            const double *kr = kern + (size_t)(iy - q->iy + h) * side;
            for (int ix = x0; ix < x1; ix++)
                r[ix] += q->flux * kr[ix - q->ix + h];
        }
    }
    free(kern);
    return CT_OK;
}
