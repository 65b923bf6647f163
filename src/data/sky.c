/* sky.c -- see sky.h. */
#define _GNU_SOURCE /* j1() */
#include "sky.h"

#include <erfa.h>
#include <math.h>

/* Splits a Julian date into ERFA's two parts, keeping precision. */
static void jd_split(double jd, double *a, double *b)
{
    *a = floor(jd) + 0.5;
    *b = jd - *a;
}

ct_code ct_icrs_to_hadec(double ra_rad, double dec_rad, double jd_utc, double dut1,
                         const ct_site *site, double *ha_rad, double *dec_app_rad, ct_err *err)
{
    double u1, u2, aob, zob, hob, dob, rob, eo;
    jd_split(jd_utc, &u1, &u2);
    /* No proper motion, parallax or radial velocity; pressure 0 switches
     * refraction off; polar motion unknown (0). */
    int j = eraAtco13(ra_rad, dec_rad, 0, 0, 0, 0, u1, u2, dut1, site->lon_rad, site->lat_rad,
                      site->height_m, 0, 0, 0, 0, 0, 0, &aob, &zob, &hob, &dob, &rob, &eo);
    if (j < 0)
        return ct_fail(err, CT_EINVAL, "time JD %.6f is outside what ERFA accepts", jd_utc);
    *ha_rad = hob;
    *dec_app_rad = dob;
    return CT_OK;
}

ct_code ct_hadec_to_icrs(double ha_rad, double dec_app_rad, double jd_utc, double dut1,
                         const ct_site *site, double *ra_rad, double *dec_rad, ct_err *err)
{
    double u1, u2;
    jd_split(jd_utc, &u1, &u2);
    int j = eraAtoc13("H", ha_rad, dec_app_rad, u1, u2, dut1, site->lon_rad, site->lat_rad,
                      site->height_m, 0, 0, 0, 0, 0, 0, ra_rad, dec_rad);
    if (j < 0)
        return ct_fail(err, CT_EINVAL, "time JD %.6f is outside what ERFA accepts", jd_utc);
    return CT_OK;
}

void ct_lmn(double ha_rad, double dec_rad, double dec0_rad, double *l, double *m, double *n)
{
    /* Hour angle grows westward, so a source east of the meridian (ha < 0)
     * has l > 0. */
    double sh = sin(ha_rad), ch = cos(ha_rad);
    double sd = sin(dec_rad), cd = cos(dec_rad), sd0 = sin(dec0_rad), cd0 = cos(dec0_rad);
    *l = -cd * sh;
    *m = sd * cd0 - cd * sd0 * ch;
    *n = sd * sd0 + cd * cd0 * ch;
}

double ct_airy_power(double sin_theta, double freq_hz, double dish_m)
{
    double x = M_PI * dish_m * sin_theta * freq_hz / CT_SPEED_OF_LIGHT;
    if (fabs(x) < 1e-8)
        return 1.0;
    double a = 2.0 * j1(x) / x;
    return a * a;
}

/* The source's flux at f seen through the beam at sin(theta) from the pointing. */
static double apparent_flux(const ct_source *src, double sin_theta, double f, double dish_m)
{
    double flux = src->flux_jy * pow(f / CT_REFERENCE_FREQ_HZ, src->spectral_index);
    return flux * ct_airy_power(sin_theta, f, dish_m);
}

void ct_point_source_amplitudes(double l, double m, const ct_source *src, double dish_m,
                                const double *freq_hz, size_t nfreq, double *amp)
{
    double sin_theta = sqrt(fmin(1.0, l * l + m * m));
    for (size_t k = 0; k < nfreq; k++)
        amp[k] = apparent_flux(src, sin_theta, freq_hz[k], dish_m);
}

void ct_add_point_source(const double uvw_m[3], double l, double m, double n, const ct_source *src,
                         double dish_m, const double *freq_hz, size_t nfreq, double complex *vis)
{
    /* Path difference in metres; the phase per frequency is 2 pi f / c times it. */
    double path = uvw_m[0] * l + uvw_m[1] * m + uvw_m[2] * (n - 1.0);
    double sin_theta = sqrt(fmin(1.0, l * l + m * m));
    for (size_t k = 0; k < nfreq; k++) {
        double f = freq_hz[k];
        double amp = apparent_flux(src, sin_theta, f, dish_m);
        double phase = 2.0 * M_PI * f / CT_SPEED_OF_LIGHT * path;
        vis[k] += amp * (cos(phase) + I * sin(phase));
    }
}
