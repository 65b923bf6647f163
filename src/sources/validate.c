/* validate.c -- see validate.h. */
#define _GNU_SOURCE
#include "validate.h"
#include "imageqa.h"
#include "skyframe.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define MAD_TO_SIGMA 1.482602218505602

void ct_val_opts_default(ct_val_opts *o)
{
    memset(o, 0, sizeof *o);
    o->min_snr = 10;
    o->completeness_snr = 10;
    o->flux_ratio_min = 0.8, o->flux_ratio_max = 1.2;
    o->min_completeness = 0.8;
    o->min_matches = 3;
}

ct_code ct_val_opts_check(const ct_val_opts *o, ct_err *err)
{
    if (!(o->match_radius_arcsec >= 0 && o->match_radius_arcsec <= 3600))
        return ct_fail(err, CT_EINVAL, "match_radius_arcsec %g: must be in [0, 3600]",
                       o->match_radius_arcsec);
    if (!(o->min_snr >= 0 && o->min_snr <= 1e6) ||
        !(o->completeness_snr > 0 && o->completeness_snr <= 1e6))
        return ct_fail(err, CT_EINVAL, "min_snr %g / completeness_snr %g: out of range", o->min_snr,
                       o->completeness_snr);
    if (!(o->max_offset_arcsec >= 0 && o->max_offset_arcsec <= 3600))
        return ct_fail(err, CT_EINVAL, "max_offset_arcsec %g: must be in [0, 3600]",
                       o->max_offset_arcsec);
    if (!(o->flux_ratio_min > 0 && o->flux_ratio_min < o->flux_ratio_max &&
          o->flux_ratio_max < 1e6))
        return ct_fail(err, CT_EINVAL, "flux_ratio_min %g / flux_ratio_max %g: need 0 < min < max",
                       o->flux_ratio_min, o->flux_ratio_max);
    if (!(o->min_completeness >= 0 && o->min_completeness <= 1))
        return ct_fail(err, CT_EINVAL, "min_completeness %g: must be in [0, 1]",
                       o->min_completeness);
    if (o->min_matches < 1 || o->min_matches > 1000000)
        return ct_fail(err, CT_EINVAL, "min_matches %d: must be 1..1000000", o->min_matches);
    return CT_OK;
}

ct_code ct_val_opts_from_json(ct_val_opts *o, const json_t *config, ct_err *err)
{
    if (config == NULL || json_is_null(config))
        return CT_OK;
    if (!json_is_object(config))
        return ct_fail(err, CT_EINVAL, "validation config must be an object");
    const char *const names[] = {"match_radius_arcsec", "min_snr",        "completeness_snr",
                                 "max_offset_arcsec",   "flux_ratio_min", "flux_ratio_max",
                                 "min_completeness"};
    double *fields[] = {&o->match_radius_arcsec, &o->min_snr,        &o->completeness_snr,
                        &o->max_offset_arcsec,   &o->flux_ratio_min, &o->flux_ratio_max,
                        &o->min_completeness};
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)config, key, v)
    {
        bool known = false;
        if (strcmp(key, "min_matches") == 0) {
            if (!json_is_integer(v))
                return ct_fail(err, CT_EINVAL, "validation config min_matches must be an integer");
            json_int_t n = json_integer_value(v);
            o->min_matches = n > 1000000 || n < 0 ? -1 : (int)n;
            continue;
        }
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strcmp(key, names[i]) == 0) {
                if (!json_is_number(v))
                    return ct_fail(err, CT_EINVAL, "validation config %s must be a number", key);
                *fields[i] = json_number_value(v);
                known = true;
            }
        if (!known)
            return ct_fail(err, CT_EINVAL, "validation config: unknown key \"%s\"", key);
    }
    return ct_val_opts_check(o, err);
}

/* --- Crossmatch ---------------------------------------------------------------------------- */

static int by_sep(const void *a, const void *b)
{
    double x = ((const ct_match *)a)->sep_arcsec, y = ((const ct_match *)b)->sep_arcsec;
    return (x > y) - (x < y);
}

static int by_src(const void *a, const void *b)
{
    size_t x = ((const ct_match *)a)->src, y = ((const ct_match *)b)->src;
    return (x > y) - (x < y);
}

/* a - b in degrees of RA, wrapped into (-180, 180]. */
static double dra_deg(double a, double b)
{
    double d = fmod(a - b, 360.0);
    return d > 180 ? d - 360 : d <= -180 ? d + 360 : d;
}

ct_code ct_crossmatch(const ct_src_catalog *cat, const ct_refcat *ref, double radius_arcsec,
                      ct_match **m, size_t *n, ct_err *err)
{
    *m = NULL, *n = 0;
    size_t cap = 0, np = 0;
    ct_match *pairs = NULL;
    for (size_t i = 0; i < cat->n; i++) {
        const ct_src *s = &cat->src[i];
        if (!isfinite(s->ra_deg))
            continue;
        size_t *idx, k;
        ct_code rc =
            ct_refcat_cone(ref, s->ra_deg, s->dec_deg, radius_arcsec / 3600, &idx, &k, err);
        if (rc != CT_OK) {
            free(pairs);
            return rc;
        }
        double a[3];
        ct_radec_to_dir(s->ra_deg, s->dec_deg, a);
        for (size_t j = 0; j < k; j++) {
            if (np == cap) {
                cap = cap ? 2 * cap : 256;
                ct_match *g = realloc(pairs, cap * sizeof *g);
                if (g == NULL) {
                    free(idx), free(pairs);
                    return ct_fail(err, CT_ENOMEM, "crossmatch: out of memory");
                }
                pairs = g;
            }
            const ct_refsrc *r = ct_refcat_get(ref, idx[j]);
            double b[3];
            ct_radec_to_dir(r->ra_deg, r->dec_deg, b);
            pairs[np++] =
                (ct_match){i, idx[j], ct_dir_sep_deg(a, b) * 3600,
                           dra_deg(s->ra_deg, r->ra_deg) * cos(r->dec_deg * M_PI / 180) * 3600,
                           (s->dec_deg - r->dec_deg) * 3600};
        }
        free(idx);
    }
    /* Closest first, each side at most once. */
    qsort(pairs, np, sizeof *pairs, by_sep);
    bool *src_used = calloc(cat->n ? cat->n : 1, 1);
    bool *ref_used = calloc(ct_refcat_size(ref) ? ct_refcat_size(ref) : 1, 1);
    if (src_used == NULL || ref_used == NULL) {
        free(pairs), free(src_used), free(ref_used);
        return ct_fail(err, CT_ENOMEM, "crossmatch: out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < np; i++)
        if (!src_used[pairs[i].src] && !ref_used[pairs[i].ref]) {
            src_used[pairs[i].src] = ref_used[pairs[i].ref] = true;
            pairs[k++] = pairs[i];
        }
    free(src_used), free(ref_used);
    qsort(pairs, k, sizeof *pairs, by_src);
    if (k == 0) {
        free(pairs);
        pairs = NULL;
    }
    *m = pairs, *n = k;
    return CT_OK;
}

/* --- Validation ---------------------------------------------------------------------------- */

static double median_of(double *v, size_t n)
{
    return n ? ct_median_inplace(v, n) : NAN;
}

/* 1.4826 x the MAD of v[0..n-1] about m (reorders v). */
static double mad_sigma(double *v, size_t n, double m)
{
    for (size_t i = 0; i < n; i++)
        v[i] = fabs(v[i] - m);
    return n ? MAD_TO_SIGMA * ct_median_inplace(v, n) : NAN;
}

static double pb_at(const ct_val_image *im, int x, int y)
{
    return im->pb ? im->pb[(size_t)y * im->d->nx + x] : 1.0;
}

static void add_reason(ct_validation *v, const char *what)
{
    size_t len = strlen(v->reason);
    snprintf(v->reason + len, sizeof v->reason - len, "%s%s", len ? "; " : "", what);
}

ct_code ct_validate(const ct_val_image *im, const ct_src_catalog *cat, const ct_refcat *ref,
                    const ct_val_opts *o, ct_validation *out, ct_err *err)
{
    memset(out, 0, sizeof *out);
    ct_code rc = ct_val_opts_check(o, err);
    if (rc != CT_OK)
        return rc;
    const ct_fits_image_desc *d = im->d;
    double beam = cat->beam_maj_arcsec > 0 ? cat->beam_maj_arcsec : 3 * d->cdelt_deg * 3600;
    out->radius_arcsec = o->match_radius_arcsec > 0 ? o->match_radius_arcsec : 0.5 * beam;
    out->n_sources = cat->n;
    if ((rc = ct_crossmatch(cat, ref, out->radius_arcsec, &out->m, &out->n_matches, err)) != CT_OK)
        return rc;
    ct_imgwcs w;
    if ((rc = ct_imgwcs_make(&w, d, im->projection, err)) != CT_OK) {
        ct_validation_free(out);
        return rc;
    }
    size_t nm = out->n_matches;
    double *ra = malloc((nm + 1) * sizeof *ra), *de = malloc((nm + 1) * sizeof *de);
    double *fr = malloc((nm + 1) * sizeof *fr);
    if (!ra || !de || !fr) {
        free(ra), free(de), free(fr);
        ct_validation_free(out);
        return ct_fail(err, CT_ENOMEM, "validation: out of memory");
    }
    size_t na = 0, nf = 0;
    for (size_t i = 0; i < nm; i++) {
        const ct_src *s = &cat->src[out->m[i].src];
        if (!(s->snr >= o->min_snr))
            continue;
        ra[na] = out->m[i].dra_arcsec, de[na] = out->m[i].ddec_arcsec, na++;
        int x = (int)lround(s->x), y = (int)lround(s->y);
        double pb = x >= 0 && y >= 0 && x < d->nx && y < d->ny ? pb_at(im, x, y) : NAN;
        if (pb > 0)
            fr[nf++] = s->int_jy / pb / ct_refcat_get(ref, out->m[i].ref)->flux_jy;
    }
    out->n_astrometry = na;
    out->offset_ra_arcsec = median_of(ra, na);
    out->offset_dec_arcsec = median_of(de, na);
    out->offset_arcsec = hypot(out->offset_ra_arcsec, out->offset_dec_arcsec);
    out->scatter_arcsec =
        hypot(mad_sigma(ra, na, out->offset_ra_arcsec), mad_sigma(de, na, out->offset_dec_arcsec));
    out->flux_ratio = median_of(fr, nf);
    out->flux_ratio_scatter = mad_sigma(fr, nf, out->flux_ratio);
    free(ra), free(de), free(fr);

    /* Completeness: the catalogue sources inside the image, expected bright enough. */
    double fra, fdec, frad;
    ct_imgwcs_field(&w, d->nx, d->ny, &fra, &fdec, &frad);
    size_t *idx, k;
    if ((rc = ct_refcat_cone(ref, fra, fdec, frad, &idx, &k, err)) != CT_OK) {
        ct_validation_free(out);
        return rc;
    }
    bool *matched = calloc(ct_refcat_size(ref) ? ct_refcat_size(ref) : 1, 1);
    if (matched == NULL) {
        free(idx);
        ct_validation_free(out);
        return ct_fail(err, CT_ENOMEM, "validation: out of memory");
    }
    for (size_t i = 0; i < nm; i++)
        matched[out->m[i].ref] = true;
    for (size_t j = 0; j < k; j++) {
        const ct_refsrc *r = ct_refcat_get(ref, idx[j]);
        double s[3], fx, fy;
        ct_radec_to_dir(r->ra_deg, r->dec_deg, s);
        if (!ct_imgwcs_dir_to_pixel(&w, s, &fx, &fy))
            continue;
        int x = (int)lround(fx), y = (int)lround(fy);
        if (x < 0 || y < 0 || x >= d->nx || y >= d->ny)
            continue;
        double rms = im->rms[(size_t)y * d->nx + x], pb = pb_at(im, x, y);
        if (!(rms > 0) || !(pb > 0))
            continue;
        out->n_ref_in_field++;
        if (r->flux_jy * pb >= o->completeness_snr * rms) {
            out->n_expected++;
            out->n_expected_found += matched[idx[j]];
        }
    }
    free(idx), free(matched);
    out->completeness = out->n_expected ? (double)out->n_expected_found / out->n_expected : NAN;

    double max_off = o->max_offset_arcsec > 0 ? o->max_offset_arcsec : 0.2 * beam;
    if (na < (size_t)o->min_matches) {
        out->status = "insufficient";
        snprintf(out->reason, sizeof out->reason,
                 "%zu match(es) at >= %g sigma, fewer than %d: nothing to judge by", na, o->min_snr,
                 o->min_matches);
        return CT_OK;
    }
    char why[128];
    if (out->offset_arcsec > max_off) {
        snprintf(why, sizeof why, "astrometry: median offset %.3g arcsec > %.3g",
                 out->offset_arcsec, max_off);
        add_reason(out, why);
    }
    if (!(out->flux_ratio >= o->flux_ratio_min && out->flux_ratio <= o->flux_ratio_max)) {
        snprintf(why, sizeof why, "flux scale: %.4g outside [%.3g, %.3g]", out->flux_ratio,
                 o->flux_ratio_min, o->flux_ratio_max);
        add_reason(out, why);
    }
    if (out->n_expected >= (size_t)o->min_matches && out->completeness < o->min_completeness) {
        snprintf(why, sizeof why, "completeness: %.3g < %.3g (%zu of %zu)", out->completeness,
                 o->min_completeness, out->n_expected_found, out->n_expected);
        add_reason(out, why);
    }
    out->status = out->reason[0] ? "failed" : "passed";
    return CT_OK;
}

void ct_validation_free(ct_validation *v)
{
    free(v->m);
    v->m = NULL, v->n_matches = 0;
}

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *ct_validation_json(const ct_validation *v, const ct_val_opts *o, const ct_src_catalog *cat,
                           const ct_refcat *ref, bool matches)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:o, s:o, "
        "s:{s:o, s:f, s:f, s:f, s:f, s:f, s:i}}",
        "status", v->status ? v->status : "", "reason", v->reason, "n_sources",
        (json_int_t)v->n_sources, "n_matches", (json_int_t)v->n_matches, "n_astrometry",
        (json_int_t)v->n_astrometry, "offset_ra_arcsec", num(v->offset_ra_arcsec),
        "offset_dec_arcsec", num(v->offset_dec_arcsec), "offset_arcsec", num(v->offset_arcsec),
        "scatter_arcsec", num(v->scatter_arcsec), "flux_ratio", num(v->flux_ratio),
        "flux_ratio_scatter", num(v->flux_ratio_scatter), "n_ref_in_field",
        (json_int_t)v->n_ref_in_field, "n_expected", (json_int_t)v->n_expected, "n_expected_found",
        (json_int_t)v->n_expected_found, "completeness", num(v->completeness), "radius_arcsec",
        num(v->radius_arcsec), "thresholds", "max_offset_arcsec",
        o->max_offset_arcsec > 0 ? json_real(o->max_offset_arcsec) : json_null(), "min_snr",
        o->min_snr, "completeness_snr", o->completeness_snr, "flux_ratio_min", o->flux_ratio_min,
        "flux_ratio_max", o->flux_ratio_max, "min_completeness", o->min_completeness, "min_matches",
        o->min_matches);
    if (j == NULL || !matches || ref == NULL)
        return j;
    json_t *list = json_array();
    for (size_t i = 0; list && i < v->n_matches; i++) {
        const ct_match *m = &v->m[i];
        const ct_refsrc *r = ct_refcat_get(ref, m->ref);
        json_array_append_new(list, json_pack("{s:I, s:s, s:f, s:f, s:f, s:f, s:o}", "source",
                                              (json_int_t)m->src, "ref_id", r->id, "sep_arcsec",
                                              m->sep_arcsec, "dra_arcsec", m->dra_arcsec,
                                              "ddec_arcsec", m->ddec_arcsec, "ref_flux_jy",
                                              r->flux_jy, "int_jy", num(cat->src[m->src].int_jy)));
    }
    json_object_set_new(j, "matches", list ? list : json_null());
    return j;
}

void ct_pb_from_images(const float *restored, const float *pbcor, int nx, int ny, float *pb)
{
    size_t n = (size_t)nx * ny;
    for (size_t i = 0; i < n; i++) {
        float a = restored[i], b = pbcor[i];
        pb[i] = isfinite(a) && isfinite(b) && a != 0 && b != 0 ? a / b : NAN;
    }
    /* Pixels where the restored image is exactly 0 (rare) take their neighbours' mean;
     * blank ones (outside the beam's cutoff) stay blank. */
    for (int y = 0; y < ny; y++)
        for (int x = 0; x < nx; x++) {
            size_t i = (size_t)y * nx + x;
            if (isfinite(pb[i]) || !isfinite(pbcor[i]))
                continue;
            double s = 0;
            int k = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int a = x + dx, b = y + dy;
                    if (a >= 0 && b >= 0 && a < nx && b < ny && isfinite(pb[(size_t)b * nx + a]))
                        s += pb[(size_t)b * nx + a], k++;
                }
            if (k)
                pb[i] = (float)(s / k);
        }
}
