/* photometry.c -- see photometry.h. */
#define _GNU_SOURCE
#include "photometry.h"
#include "imageqa.h"
#include "skyframe.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define DEG          (M_PI / 180.0)
#define FWHM_SIGMA   2.3548200450309493
#define MAD_TO_SIGMA 1.482602218505602

void ct_phot_opts_default(ct_phot_opts *o)
{
    o->min_pb = 0.2;
    o->ref_snr = 20;
    o->min_refs = 5;
}

ct_code ct_phot_opts_check(const ct_phot_opts *o, ct_err *err)
{
    if (!(o->min_pb > 0 && o->min_pb <= 1))
        return ct_fail(err, CT_EINVAL, "min_pb %g: must be in (0, 1]", o->min_pb);
    if (!(o->ref_snr >= 3 && o->ref_snr <= 1e6))
        return ct_fail(err, CT_EINVAL, "ref_snr %g: must be in [3, 1e6]", o->ref_snr);
    if (o->min_refs < 1 || o->min_refs > 100000)
        return ct_fail(err, CT_EINVAL, "min_refs %d: must be 1..100000", o->min_refs);
    return CT_OK;
}

ct_code ct_phot_opts_from_json(ct_phot_opts *o, const json_t *config, ct_err *err)
{
    if (config == NULL || json_is_null(config))
        return CT_OK;
    if (!json_is_object(config))
        return ct_fail(err, CT_EINVAL, "photometry config must be an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)config, key, v)
    {
        if (!json_is_number(v))
            return ct_fail(err, CT_EINVAL, "photometry config %s must be a number", key);
        double x = json_number_value(v);
        if (strcmp(key, "min_pb") == 0)
            o->min_pb = x;
        else if (strcmp(key, "ref_snr") == 0)
            o->ref_snr = x;
        else if (strcmp(key, "min_refs") == 0)
            o->min_refs = x >= 1 && x <= 100000 ? (int)x : -1;
        else
            return ct_fail(err, CT_EINVAL, "photometry config: unknown key \"%s\"", key);
    }
    return ct_phot_opts_check(o, err);
}

/* The beam's amplitude at (x, y) by least squares over the pixels within one FWHM, and
 * *noise_gain: its error in units of the pixel noise. Restored images' noise is the
 * receiver's noise seen through the beam, correlated between pixels d apart as
 * exp(-d^2 / 4 sigma^2) along each axis of the beam; the least-squares amplitude
 * sum g v / sum g^2 then has variance sigma^2 sum_ij g_i g_j rho_ij / (sum g^2)^2 -- about
 * 1.2 sigma, against sigma / sqrt(n) were the pixels independent. NaN when no pixel is
 * finite (or out of memory). */
static double fit_amplitude(const ct_phot_image *im, double x, double y, double sa, double sb,
                            double th, double *noise_gain)
{
    const ct_fits_image_desc *d = im->d;
    int r = (int)ceil(FWHM_SIGMA * sa);
    double c = cos(th), s = sin(th), num = 0, den = 0;
    size_t cap = (size_t)(2 * r + 2) * (size_t)(2 * r + 2);
    double(*px)[3] = malloc(cap * sizeof *px); /* u, v, g of each pixel used */
    size_t n = 0;
    if (px == NULL) {
        *noise_gain = NAN;
        return NAN;
    }
    for (int j = (int)floor(y) - r; j <= (int)ceil(y) + r; j++)
        for (int i = (int)floor(x) - r; i <= (int)ceil(x) + r; i++) {
            if (i < 0 || j < 0 || i >= d->nx || j >= d->ny)
                continue;
            double dx = i - x, dy = j - y;
            double u = dx * c + dy * s, v = -dx * s + dy * c;
            double q = u * u / (sa * sa) + v * v / (sb * sb);
            if (q > FWHM_SIGMA * FWHM_SIGMA) /* outside the FWHM ellipse (2 x half width) */
                continue;
            size_t p = (size_t)j * d->nx + i;
            double val = im->data[p] - (im->bkg ? im->bkg[p] : 0);
            if (!isfinite(val))
                continue;
            double g = exp(-0.5 * q);
            num += g * val, den += g * g;
            if (n < cap)
                px[n][0] = u, px[n][1] = v, px[n][2] = g, n++;
        }
    double cov = 0;
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++) {
            double du = px[a][0] - px[b][0], dv = px[a][1] - px[b][1];
            cov += px[a][2] * px[b][2] * exp(-0.25 * (du * du / (sa * sa) + dv * dv / (sb * sb)));
        }
    free(px);
    *noise_gain = den > 0 ? sqrt(cov) / den : NAN;
    return den > 0 ? num / den : NAN;
}

ct_code ct_phot_measure(const ct_phot_image *im, const ct_refcat *ref, const double *baseline,
                        const bool *exclude, const ct_phot_opts *o, ct_phot_result *out,
                        ct_err *err)
{
    memset(out, 0, sizeof *out);
    out->factor = 1;
    ct_code rc = ct_phot_opts_check(o, err);
    if (rc != CT_OK)
        return rc;
    const ct_fits_image_desc *d = im->d;
    ct_imgwcs w;
    if ((rc = ct_imgwcs_make(&w, d, im->projection, err)) != CT_OK)
        return rc;
    double cell = d->cdelt_deg;
    bool has_beam = d->bmaj_deg > 0 && d->bmin_deg > 0;
    double sa = (has_beam ? d->bmaj_deg / cell : 3) / FWHM_SIGMA;
    double sb = (has_beam ? d->bmin_deg / cell : 3) / FWHM_SIGMA;
    double bpa = has_beam ? d->bpa_deg * DEG : 0;
    double th = atan2(cos(bpa), -sin(bpa));
    double fra, fdec, frad;
    ct_imgwcs_field(&w, d->nx, d->ny, &fra, &fdec, &frad);
    size_t *idx, k;
    if ((rc = ct_refcat_cone(ref, fra, fdec, frad, &idx, &k, err)) != CT_OK)
        return rc;
    out->p = malloc((k ? k : 1) * sizeof *out->p);
    double *ratio = malloc((k ? k : 1) * sizeof *ratio),
           *scratch = malloc((k ? k : 1) * sizeof *scratch);
    if (out->p == NULL || ratio == NULL || scratch == NULL) {
        free(idx), free(ratio), free(scratch);
        ct_phot_result_free(out);
        return ct_fail(err, CT_ENOMEM, "photometry: out of memory");
    }
    /* In catalogue order, so results are the same whatever the cone's order. */
    for (size_t a = 1; a < k; a++)
        for (size_t b = a; b > 0 && idx[b - 1] > idx[b]; b--) {
            size_t t = idx[b];
            idx[b] = idx[b - 1], idx[b - 1] = t;
        }
    size_t nr = 0;
    for (size_t j = 0; j < k; j++) {
        const ct_refsrc *r = ct_refcat_get(ref, idx[j]);
        double dir[3], fx, fy;
        ct_radec_to_dir(r->ra_deg, r->dec_deg, dir);
        if (!ct_imgwcs_dir_to_pixel(&w, dir, &fx, &fy))
            continue;
        int x = (int)lround(fx), y = (int)lround(fy);
        if (x < 0 || y < 0 || x >= d->nx || y >= d->ny)
            continue;
        size_t p = (size_t)y * d->nx + x;
        double rms = im->rms[p], pb = im->pb ? im->pb[p] : 1.0;
        if (!(rms > 0) || !(pb >= o->min_pb))
            continue;
        double gain;
        double a = fit_amplitude(im, fx, fy, sa, sb, th, &gain);
        if (!isfinite(a))
            continue;
        ct_phot *q = &out->p[out->n++];
        q->ref = idx[j], q->x = fx, q->y = fy;
        q->peak_jy = a, q->rms_jy = rms * gain, q->pb = pb, q->snr = a / q->rms_jy;
        q->flux_jy = a / pb, q->flux_err_jy = q->rms_jy / pb;
        double base = baseline ? baseline[idx[j]] : r->flux_jy;
        if (q->snr >= o->ref_snr && base > 0 && !(exclude && exclude[idx[j]]))
            ratio[nr++] = q->flux_jy / base;
    }
    free(idx);
    /* The median ratio, clipped at 3 sigma until it settles. */
    for (int iter = 0; iter < 10 && nr >= (size_t)o->min_refs; iter++) {
        memcpy(scratch, ratio, nr * sizeof *ratio);
        double m = ct_median_inplace(scratch, nr);
        for (size_t i = 0; i < nr; i++)
            scratch[i] = fabs(ratio[i] - m);
        double s = MAD_TO_SIGMA * ct_median_inplace(scratch, nr);
        out->factor = m, out->factor_err = 1.2533 * s / sqrt((double)nr);
        out->n_refs = nr;
        out->normalized = true;
        size_t kept = 0;
        for (size_t i = 0; i < nr; i++)
            if (fabs(ratio[i] - m) <= 3 * s)
                ratio[kept++] = ratio[i];
        if (kept == nr || kept < (size_t)o->min_refs)
            break;
        nr = kept;
    }
    if (!out->normalized || !(out->factor > 0)) {
        out->factor = 1, out->factor_err = 0, out->normalized = false;
        out->n_refs = nr;
    }
    for (size_t i = 0; i < out->n; i++) {
        ct_phot *q = &out->p[i];
        q->norm_flux_jy = q->flux_jy / out->factor;
        double rel = out->factor_err / out->factor;
        q->norm_err_jy = sqrt(pow(q->flux_err_jy / out->factor, 2) + pow(q->norm_flux_jy * rel, 2));
    }
    free(ratio), free(scratch);
    return CT_OK;
}

void ct_phot_result_free(ct_phot_result *r)
{
    free(r->p);
    r->p = NULL, r->n = 0;
}
