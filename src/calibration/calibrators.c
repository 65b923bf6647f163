/* calibrators.c -- the calibrator catalogue (calibration.h). */
#define _GNU_SOURCE
#include "calibration.h"

#include "array.h"
#include "uvh5.h"

#include <math.h>
#include <string.h>
#include <strings.h>

/* The VLA flux-density standards north of declination -30 (DSA-110's sky), J2000
 * positions, and the spectra of Perley & Butler (2017, ApJS 230, 7; their
 * Table 6): log10 S[Jy] = sum_k a_k (log10 nu[GHz])^k. At 1.4 GHz these give
 * 3C48 16.3 Jy, 3C138 8.6, 3C147 22.2, 3C196 14.4, 3C286 15.1, 3C295 22.5
 * (tests/test_units.c holds them to the literature's round 1.4 GHz figures,
 * within 4 %: a mistyped coefficient would show). */
static const ct_calibrator catalogue[] = {
    {"3C48", 24.42208, 33.15976, 4, {1.3253, -0.7553, -0.1914, 0.0498}},
    {"3C138", 80.29119, 16.63946, 5, {1.0088, -0.4981, -0.1550, -0.0100, 0.0223}},
    {"3C147", 85.65057, 49.85201, 6, {1.4516, -0.6961, -0.2007, 0.0640, -0.0464, 0.0289}},
    {"3C196", 123.40014, 48.21738, 5, {1.2872, -0.8530, -0.1534, -0.0200, 0.0201}},
    {"3C286", 202.78454, 30.50916, 4, {1.2481, -0.4507, -0.1798, 0.0357}},
    {"3C295", 212.83550, 52.20277, 5, {1.4701, -0.7658, -0.2780, -0.0347, 0.0399}},
};

size_t ct_calibrator_count(void)
{
    return sizeof catalogue / sizeof catalogue[0];
}

const ct_calibrator *ct_calibrator_at(size_t i)
{
    return i < ct_calibrator_count() ? &catalogue[i] : NULL;
}

const ct_calibrator *ct_calibrator_find(const char *name)
{
    for (size_t i = 0; name && i < ct_calibrator_count(); i++)
        if (strcasecmp(catalogue[i].name, name) == 0)
            return &catalogue[i];
    return NULL;
}

double ct_calibrator_flux(const ct_calibrator *c, double freq_hz)
{
    const double x = log10(freq_hz / 1e9);
    double s = 0, p = 1;
    for (int k = 0; k < c->ncoef; k++, p *= x)
        s += c->coef[k] * p;
    return pow(10.0, s);
}

void ct_calibrator_source(const ct_calibrator *c, ct_source *out)
{
    /* The spectrum's slope at the reference frequency: across DSA-110's band the
     * curvature the power law leaves out is at most 0.1 % (3C295 at 1.28 GHz). */
    const double x = log10(CT_REFERENCE_FREQ_HZ / 1e9);
    double slope = 0, p = 1;
    for (int k = 1; k < c->ncoef; k++, p *= x)
        slope += k * c->coef[k] * p;
    out->ra_rad = c->ra_deg * M_PI / 180.0;
    out->dec_rad = c->dec_deg * M_PI / 180.0;
    out->flux_jy = ct_calibrator_flux(c, CT_REFERENCE_FREQ_HZ);
    out->spectral_index = slope;
}

ct_code ct_calibrator_in_field(const char *vispath, double max_sep_deg, const ct_calibrator **out,
                               double *sep_deg, ct_err *err)
{
    *out = NULL;
    *sep_deg = NAN;
    ct_uvh5_file *f = NULL;
    ct_code rc = ct_uvh5_open(vispath, &f, err);
    if (rc != CT_OK)
        return rc;
    const ct_uvh5_header *h = ct_uvh5_header_get(f);
    const ct_uvh5_keyword *kd = ct_uvh5_keyword_find(h, "phase_center_dec");
    double lo = INFINITY, hi = -INFINITY;
    for (int b = 0; b < h->Nblts; b++) {
        lo = fmin(lo, h->time_array[b]);
        hi = fmax(hi, h->time_array[b]);
    }
    if (!kd || kd->is_string || !(fabs(kd->value) <= M_PI / 2) || !isfinite(lo))
        rc = ct_fail(err, CT_EINVAL, "calibration: %s has no usable pointing or times", vispath);
    /* Where the dishes point at mid-observation: hour angle 0 at the pointing
     * declination (sky.h), as ICRS. */
    double ra = 0, dec = 0;
    if (rc == CT_OK) {
        ct_site site;
        site.lat_rad = h->latitude * M_PI / 180.0;
        site.lon_rad = h->longitude * M_PI / 180.0;
        site.height_m = h->altitude;
        ct_geodetic_to_ecef(site.lat_rad, site.lon_rad, site.height_m, site.ecef);
        rc = ct_hadec_to_icrs(0.0, kd->value, 0.5 * (lo + hi), 0.0, &site, &ra, &dec, err);
    }
    ct_uvh5_close(f, NULL);
    if (rc != CT_OK)
        return rc;
    for (size_t i = 0; i < ct_calibrator_count(); i++) {
        const double r = catalogue[i].ra_deg * M_PI / 180.0,
                     d = catalogue[i].dec_deg * M_PI / 180.0;
        const double c = sin(dec) * sin(d) + cos(dec) * cos(d) * cos(ra - r);
        const double sep = acos(fmax(-1.0, fmin(1.0, c))) * 180.0 / M_PI;
        if (sep <= max_sep_deg && !(sep >= *sep_deg)) {
            *out = &catalogue[i];
            *sep_deg = sep;
        }
    }
    return CT_OK;
}
