/* visset.c -- see visset.h. */
#define _GNU_SOURCE
#include "visset.h"

#include "array.h"
#include "sky.h"

#include <erfa.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Splits a Julian date into ERFA's two parts, keeping precision (as sky.c does, so that
 * the same date gives the same numbers here and in the simulator). */
static void jd_split(double jd, double *a, double *b)
{
    *a = floor(jd) + 0.5;
    *b = jd - *a;
}

static void site_of(const ct_uvh5_header *h, ct_site *s)
{
    s->lat_rad = h->latitude * M_PI / 180.0;
    s->lon_rad = h->longitude * M_PI / 180.0;
    s->height_m = h->altitude;
    ct_geodetic_to_ecef(s->lat_rad, s->lon_rad, s->height_m, s->ecef);
}

/* The file's phase centre: apparent hour angle (default 0) and declination;
 * CT_EINVAL too for a file without times. */
static ct_code phase_centre(const ct_uvh5_header *h, double *ha, double *dec, ct_err *err)
{
    const ct_uvh5_keyword *kd = ct_uvh5_keyword_find(h, "phase_center_dec");
    if (kd == NULL || kd->is_string || !(fabs(kd->value) <= M_PI / 2))
        return ct_fail(err, CT_EINVAL,
                       "visset: the file has no usable phase_center_dec (radians) keyword");
    const ct_uvh5_keyword *kh = ct_uvh5_keyword_find(h, "ha_phase_center");
    *ha = 0.0;
    if (kh != NULL) {
        if (kh->is_string || !isfinite(kh->value))
            return ct_fail(err, CT_EINVAL, "visset: ha_phase_center is not a number");
        *ha = kh->value;
    }
    *dec = kd->value;
    if (h->Nblts < 1 || h->time_array == NULL)
        return ct_fail(err, CT_EINVAL, "visset: the file has no times");
    return CT_OK;
}

ct_code ct_vis_centre_of(const ct_uvh5_header *h, ct_vis_centre *out, ct_err *err)
{
    double ha, dec;
    ct_code rc = phase_centre(h, &ha, &dec, err);
    if (rc != CT_OK)
        return rc;
    double tmin = INFINITY, tmax = -INFINITY;
    for (int k = 0; k < h->Nblts; k++) {
        if (!isfinite(h->time_array[k]))
            return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                              "corrupt input: time_array holds a non-finite time");
        tmin = fmin(tmin, h->time_array[k]);
        tmax = fmax(tmax, h->time_array[k]);
    }
    ct_site site;
    site_of(h, &site);
    out->jd_mid = 0.5 * (tmin + tmax);
    return ct_hadec_to_icrs(ha, dec, out->jd_mid, 0.0, &site, &out->ra_rad, &out->dec_rad, err);
}

void ct_visset_free(ct_visset *v)
{
    if (v == NULL)
        return;
    free(v->blt);
    free(v->chan);
    free(v->vis);
    free(v->weight);
    free(v->blt_uvw);
    free(v->chan_per_m);
    memset(v, 0, sizeof *v);
}

static int cmp_jd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

ct_code ct_vis_pointings(const ct_uvh5_header *h, const ct_vis_centre *c, ct_vis_pointing *out,
                         ct_err *err)
{
    memset(out, 0, sizeof *out);
    double ha, dec;
    ct_code rc = phase_centre(h, &ha, &dec, err);
    if (rc != CT_OK)
        return rc;
    size_t nb = (size_t)h->Nblts;
    double *t = malloc(nb * sizeof *t);
    if (!t)
        return ct_fail(err, CT_ENOMEM, "out of memory for %zu times", nb);
    memcpy(t, h->time_array, nb * sizeof *t);
    qsort(t, nb, sizeof *t, cmp_jd);
    size_t n = 0;
    for (size_t k = 0; k < nb; k++)
        if (n == 0 || t[k] != t[n - 1])
            t[n++] = t[k];
    out->jd = t;
    out->n = n;
    out->l = malloc(2 * n * sizeof *out->l);
    if (!out->l) {
        ct_vis_pointing_free(out);
        return ct_fail(err, CT_ENOMEM, "out of memory for %zu pointings", n);
    }
    out->m = out->l + n;
    ct_site site;
    site_of(h, &site);
    for (size_t k = 0; k < n && rc == CT_OK; k++) {
        /* Where the dishes point at t, as an offset from the centre in the
         * image's tangent plane (SIN: l east, m north). */
        double ra, de;
        rc = ct_hadec_to_icrs(ha, dec, t[k], 0.0, &site, &ra, &de, err);
        double da = ra - c->ra_rad;
        out->l[k] = cos(de) * sin(da);
        out->m[k] = sin(de) * cos(c->dec_rad) - cos(de) * sin(c->dec_rad) * cos(da);
    }
    if (rc != CT_OK)
        ct_vis_pointing_free(out);
    return rc;
}

void ct_vis_pointing_free(ct_vis_pointing *p)
{
    if (!p)
        return;
    free(p->jd);
    free(p->l);
    memset(p, 0, sizeof *p);
}

long ct_vis_pointing_index(const ct_vis_pointing *p, double jd)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p->jd[mid] < jd)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->n && p->jd[lo] == jd ? (long)lo : -1;
}

/* --- Per-time geometry --------------------------------------------------------------- */

/* What one integration time needs: the matrix taking a stored uvw (metres, old centre)
 * to the new uvw (metres; u and v carry the aberration scale, w does not: visset.h). */
typedef struct epoch {
    double jd;
    double m[3][3];
} epoch;

/* What is fixed for a read: the old centre and the new one. */
typedef struct geom_in {
    ct_site site;
    double ha_pc, dec_pc; /* the file's phase centre, apparent */
    double ra_c, dec_c;   /* the new centre, ICRS */
} geom_in;

static void mat_mul(const double a[3][3], const double b[3][3], double out[3][3])
{
    double r[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            r[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
    memcpy(out, r, sizeof r);
}

static void mat_vec(const double m[3][3], const double v[3], double out[3])
{
    double r[3];
    for (int i = 0; i < 3; i++)
        r[i] = m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2];
    memcpy(out, r, sizeof r);
}

static ct_code epoch_make(const geom_in *g, double jd, epoch *e, ct_err *err)
{
    double u1, u2, eo;
    eraASTROM a;
    jd_split(jd, &u1, &u2);
    /* The same call the simulator's ct_icrs_to_hadec makes inside eraAtco13: no polar
     * motion, UT1 = UTC, pressure 0 (no refraction). */
    if (eraApco13(u1, u2, 0.0, g->site.lon_rad, g->site.lat_rad, g->site.height_m, 0, 0, 0, 0, 0, 0,
                  &a, &eo) < 0)
        return ct_fail(err, CT_EINVAL, "visset: time JD %.6f is outside what ERFA accepts", jd);
    e->jd = jd;

    /* Old uvw -> baseline in the local equatorial frame (x: meridian, z: pole): the
     * columns are east, north and the old centre at hour angle ha_pc (array.h's ct_uvw
     * with longitude 0; its rows are orthonormal, so the inverse is the transpose). */
    double sh = sin(g->ha_pc), ch = cos(g->ha_pc), sd = sin(g->dec_pc), cd = cos(g->dec_pc);
    double l[3][3] = {{sh, -sd * ch, cd * ch}, {ch, sd * sh, -cd * sh}, {0, cd, sd}};
    /* Local -> CIRS: the meridian lies at CIRS right ascension eral (ERFA's observed
     * hour angle is eral - ra with polar motion 0). */
    double se = sin(a.eral), ce = cos(a.eral);
    double z[3][3] = {{ce, -se, 0}, {se, ce, 0}, {0, 0, 1}};
    /* CIRS -> GCRS (ICRS axes): bpn is GCRS -> CIRS. */
    double bt[3][3];
    eraTr(a.bpn, bt);
    double t[3][3];
    mat_mul(z, l, t);
    mat_mul(bt, t, t);

    /* The new phase direction p: the centre as it appears at jd, in ICRS axes. */
    double ri, di, pc[3], p[3], c[3];
    eraAtciq(g->ra_c, g->dec_c, 0, 0, 0, 0, &a, &ri, &di);
    eraS2c(ri, di, pc);
    eraTrxp(a.bpn, pc, p);
    eraS2c(g->ra_c, g->dec_c, c);

    /* R, the smallest rotation taking c to p: I + [x] + [x]^2 / (1 + c.p), x = c cross p
     * (Rodrigues' formula without the angle, exact and well conditioned for the ~1e-4 rad
     * the centre moves). */
    double x[3];
    eraPxp(c, p, x);
    double kx[3][3] = {{0, -x[2], x[1]}, {x[2], 0, -x[0]}, {-x[1], x[0], 0}};
    double kx2[3][3], r[3][3];
    mat_mul(kx, kx, kx2);
    double q = 1.0 / (1.0 + eraPdp(c, p));
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            r[i][j] = (i == j) + kx[i][j] + kx2[i][j] * q;
    /* East and north at c, rotated with it and scaled by the aberration's local
     * magnification (visset.h, step 4). */
    double sr = sin(g->ra_c), cr = cos(g->ra_c), sdc = sin(g->dec_c), cdc = cos(g->dec_c);
    double ec[3] = {-sr, cr, 0}, nc[3] = {-sdc * cr, -sdc * sr, cdc};
    double k = 1.0 - eraPdp(c, a.v);
    double er[3], nr[3];
    mat_vec(r, ec, er);
    mat_vec(r, nc, nr);
    double basis[3][3];
    for (int i = 0; i < 3; i++) {
        basis[0][i] = k * er[i];
        basis[1][i] = k * nr[i];
        basis[2][i] = p[i];
    }
    mat_mul(basis, t, e->m);
    return CT_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The distinct times of blts [b0, b0 + n), each with its geometry, sorted by time. */
static ct_code epochs_make(const ct_uvh5_header *h, const geom_in *g, size_t b0, size_t n,
                           epoch **out, size_t *n_out, ct_err *err)
{
    double *t = malloc((n ? n : 1) * sizeof *t);
    if (t == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        t[k] = h->time_array[b0 + k];
        if (!isfinite(t[k])) {
            free(t);
            return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                              "corrupt input: time_array holds a non-finite time");
        }
    }
    qsort(t, n, sizeof *t, cmp_double);
    size_t m = 0;
    for (size_t k = 0; k < n; k++)
        if (m == 0 || t[k] != t[m - 1])
            t[m++] = t[k];
    epoch *e = malloc((m ? m : 1) * sizeof *e);
    if (e == NULL) {
        free(t);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k < m; k++) {
        ct_code rc = epoch_make(g, t[k], &e[k], err);
        if (rc != CT_OK) {
            free(t);
            free(e);
            return rc;
        }
    }
    free(t);
    *out = e;
    *n_out = m;
    return CT_OK;
}

/* The epoch of time jd, which epochs_make put in the table. */
static const epoch *epoch_find(const epoch *e, size_t n, double jd)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (e[mid].jd <= jd)
            lo = mid;
        else
            hi = mid;
    }
    return &e[lo];
}

/* --- Reading ------------------------------------------------------------------------- */

/* Whether one pol sample can be used; counts the reason when it cannot. */
static bool usable(const float *vis, bool flag, float ns, ct_visset *v)
{
    if (flag) {
        v->n_flagged++;
        return false;
    }
    if (!isfinite(vis[0]) || !isfinite(vis[1]) || !isfinite(ns)) {
        v->n_nonfinite++;
        return false;
    }
    if (ns <= 0) {
        v->n_flagged++;
        return false;
    }
    return true;
}

ct_code ct_visset_read(ct_uvh5_file *f, size_t blt_start, size_t n_blt, const ct_vis_centre *c,
                       double min_uv_lambda, ct_visset *out, ct_err *err)
{
    memset(out, 0, sizeof *out);
    const ct_uvh5_header *h = f ? ct_uvh5_header_get(f) : NULL;
    if (h == NULL || c == NULL)
        return ct_fail(err, CT_EINVAL, "visset: a file open for reading and a centre are needed");
    size_t nblts = (size_t)h->Nblts, nf = (size_t)h->Nfreqs, np = (size_t)h->Npols;
    if (blt_start > nblts)
        return ct_fail(err, CT_EINVAL, "visset: blt %zu is past the file's %zu", blt_start, nblts);
    if (n_blt == (size_t)-1)
        n_blt = nblts - blt_start;
    if (n_blt > nblts - blt_start)
        return ct_fail(err, CT_EINVAL, "visset: blts [%zu, +%zu) run past the file's %zu",
                       blt_start, n_blt, nblts);
    if (!(min_uv_lambda >= 0) || isinf(min_uv_lambda))
        return ct_fail(err, CT_EINVAL, "visset: min uv %g: must be finite and >= 0", min_uv_lambda);
    if (!isfinite(c->ra_rad) || !(fabs(c->dec_rad) <= M_PI / 2))
        return ct_fail(err, CT_EINVAL, "visset: the centre is not a valid direction");
    if (n_blt >= UINT32_MAX)
        return ct_fail(err, CT_EINVAL, "visset: %zu baseline-times at once: read fewer", n_blt);

    int ixx = -1, iyy = -1;
    for (size_t p = 0; p < np; p++) {
        if (h->polarization_array[p] == -5)
            ixx = (int)p;
        if (h->polarization_array[p] == -6)
            iyy = (int)p;
    }
    if (ixx < 0 && iyy < 0)
        return ct_fail(err, CT_EINVAL, "visset: the file has neither XX nor YY (AIPS -5, -6)");

    geom_in g;
    ct_code rc = phase_centre(h, &g.ha_pc, &g.dec_pc, err);
    if (rc != CT_OK)
        return rc;
    site_of(h, &g.site);
    g.ra_c = c->ra_rad;
    g.dec_c = c->dec_rad;

    out->freq_min_hz = INFINITY;
    out->freq_max_hz = -INFINITY;
    for (size_t k = 0; k < nf; k++) {
        out->freq_min_hz = fmin(out->freq_min_hz, h->freq_array[k]);
        out->freq_max_hz = fmax(out->freq_max_hz, h->freq_array[k]);
        out->bandwidth_hz += fabs(h->channel_width[k]);
    }

    /* At most one row per cross-correlation blt and channel. */
    size_t n_cross = 0;
    for (size_t k = blt_start; k < blt_start + n_blt; k++)
        n_cross += h->ant_1_array[k] != h->ant_2_array[k];
    size_t cap = n_cross * nf;
    epoch *ep = NULL;
    size_t n_ep = 0;
    size_t chunk = n_blt < CT_VISSET_CHUNK_BLTS ? n_blt : CT_VISSET_CHUNK_BLTS;
    size_t per_chunk = chunk * nf * np > 0 ? chunk * nf * np : 1;
    float *vis = malloc(per_chunk * 2 * sizeof *vis);
    bool *flags = malloc(per_chunk * sizeof *flags);
    float *ns = malloc(per_chunk * sizeof *ns);
    out->blt_start = blt_start;
    out->nblt = n_blt;
    out->blt_uvw = malloc((3 * n_blt + 1) * sizeof *out->blt_uvw);
    out->chan_per_m = malloc((nf + 1) * sizeof *out->chan_per_m);
    if (cap > 0) {
        out->vis = malloc(cap * sizeof *out->vis);
        out->weight = malloc(cap * sizeof *out->weight);
        out->chan = malloc(cap * sizeof *out->chan);
        out->blt = malloc(cap * sizeof *out->blt);
    }
    if (!vis || !flags || !ns || !out->blt_uvw || !out->chan_per_m ||
        (cap > 0 && (!out->vis || !out->weight || !out->chan || !out->blt)))
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
    for (size_t ch = 0; rc == CT_OK && ch < nf; ch++)
        out->chan_per_m[ch] = h->freq_array[ch] / CT_SPEED_OF_LIGHT;
    if (rc == CT_OK)
        rc = epochs_make(h, &g, blt_start, n_blt, &ep, &n_ep, err);

    size_t n = 0;
    for (size_t b0 = blt_start; rc == CT_OK && b0 < blt_start + n_blt; b0 += chunk) {
        size_t nb = blt_start + n_blt - b0 < chunk ? blt_start + n_blt - b0 : chunk;
        rc = ct_uvh5_read_blts(f, b0, nb, vis, flags, ns, err);
        for (size_t j = 0; rc == CT_OK && j < nb; j++) {
            size_t blt = b0 + j;
            double *uvw = out->blt_uvw + 3 * (blt - blt_start);
            if (h->ant_1_array[blt] == h->ant_2_array[blt]) {
                out->n_autos_dropped += nf;
                uvw[0] = uvw[1] = uvw[2] = 0;
                continue;
            }
            const epoch *e = epoch_find(ep, n_ep, h->time_array[blt]);
            mat_vec(e->m, &h->uvw_array[3 * blt], uvw);
            /* Metres of path to add: V_new = V_old exp(+2 pi i (w_old - w_new) / lambda). */
            double dw = h->uvw_array[3 * blt + 2] - uvw[2];
            for (size_t ch = 0; ch < nf; ch++) {
                size_t base = (j * nf + ch) * np;
                bool ux =
                    ixx >= 0 && usable(&vis[2 * (base + (size_t)ixx)], flags[base + (size_t)ixx],
                                       ns[base + (size_t)ixx], out);
                bool uy =
                    iyy >= 0 && usable(&vis[2 * (base + (size_t)iyy)], flags[base + (size_t)iyy],
                                       ns[base + (size_t)iyy], out);
                if (!ux && !uy)
                    continue;
                double complex vi;
                double w;
                if (ux && uy) {
                    const float *a = &vis[2 * (base + (size_t)ixx)];
                    const float *bb = &vis[2 * (base + (size_t)iyy)];
                    vi = 0.5 * (((double)a[0] + bb[0]) + I * ((double)a[1] + bb[1]));
                    w = 4.0 / (1.0 / ns[base + (size_t)ixx] + 1.0 / ns[base + (size_t)iyy]);
                } else {
                    size_t ip = base + (size_t)(ux ? ixx : iyy);
                    vi = vis[2 * ip] + I * (double)vis[2 * ip + 1];
                    w = ns[ip];
                }
                const double per_m = out->chan_per_m[ch];
                const double u = uvw[0] * per_m, v = uvw[1] * per_m;
                if (sqrt(u * u + v * v) < min_uv_lambda) {
                    out->n_uv_cut++;
                    continue;
                }
                double ph = 2.0 * M_PI * dw * per_m, sn, cs;
                sincos(ph, &sn, &cs);
                out->vis[n] = (float complex)(vi * (cs + I * sn));
                out->weight[n] = (float)w;
                out->chan[n] = (int)ch;
                out->blt[n] = (uint32_t)(blt - blt_start);
                n++;
            }
        }
    }
    free(vis);
    free(flags);
    free(ns);
    free(ep);
    if (rc != CT_OK) {
        ct_visset_free(out);
        return rc;
    }
    out->n = n;
    if (n == 0) {
        /* Nothing usable: no rows, which the imager reports as "no data". */
        free(out->vis);
        free(out->weight);
        free(out->chan);
        free(out->blt);
        out->vis = NULL;
        out->weight = NULL;
        out->chan = NULL;
        out->blt = NULL;
    } else if (n < cap) {
        /* Give back what dropped rows left unused; shrinking cannot fail in practice, and
         * when it does the larger block is still valid. */
        float complex *vv = realloc(out->vis, n * sizeof *vv);
        float *wt = realloc(out->weight, n * sizeof *wt);
        int *chn = realloc(out->chan, n * sizeof *chn);
        uint32_t *bl = realloc(out->blt, n * sizeof *bl);
        out->chan = chn ? chn : out->chan;
        out->blt = bl ? bl : out->blt;
        out->vis = vv ? vv : out->vis;
        out->weight = wt ? wt : out->weight;
    }
    return CT_OK;
}
