/*
 * sky.h -- where a source appears to DSA-110, and what the array sees of it.
 *
 * DSA-110 data are fringe-stopped at the meridian of date: the phase centre
 * sits at apparent (observed, refraction-free) hour angle 0 and the
 * pointing declination, at every integration. Catalogues are ICRS. ERFA
 * carries a source from ICRS to apparent hour angle and declination
 * (precession, nutation, aberration, UTC -> UT1/TT); no precession is
 * hand-rolled here.
 *
 * Visibility convention (docs: ../shared/reference/dsa110.md, measured with
 * WSClean): with uvw in wavelengths and (l, m, n) the source's direction
 * cosines relative to the phase centre (l east, m north),
 *     V = S * A * exp(+2 pi i (u l + v m + w (n - 1))).
 */
#ifndef CONTIMG_SKY_H
#define CONTIMG_SKY_H

#include "array.h"
#include "error.h"

#include <complex.h>
#include <stddef.h>

#define CT_SPEED_OF_LIGHT    299792458.0
#define CT_REFERENCE_FREQ_HZ 1.4e9 /* where source fluxes are given */

typedef struct ct_source {
    double ra_rad, dec_rad; /* ICRS */
    double flux_jy;         /* Stokes I at CT_REFERENCE_FREQ_HZ */
    double spectral_index;  /* S(nu) = flux (nu / 1.4 GHz)^alpha */
} ct_source;

/* Apparent (observed, no refraction) hour angle and declination of an ICRS
 * direction seen from site at UTC Julian date jd_utc. dut1 = UT1 - UTC in
 * seconds (0 when unknown: under 0.9 s, i.e. under 14 arcsec of hour angle). */
ct_code ct_icrs_to_hadec(double ra_rad, double dec_rad, double jd_utc, double dut1,
                         const ct_site *site, double *ha_rad, double *dec_app_rad, ct_err *err);

/* The inverse: the ICRS direction that appears at (ha, dec) at jd_utc. */
ct_code ct_hadec_to_icrs(double ha_rad, double dec_app_rad, double jd_utc, double dut1,
                         const ct_site *site, double *ra_rad, double *dec_rad, ct_err *err);

/* Direction cosines of apparent (ha, dec) relative to the phase centre at
 * (ha 0, dec0): l towards east, m towards north, n along the centre. */
void ct_lmn(double ha_rad, double dec_rad, double dec0_rad, double *l, double *m, double *n);

/* Airy power pattern (2 J1(x)/x)^2, x = pi D sin(theta) / lambda. */
double ct_airy_power(double sin_theta, double freq_hz, double dish_m);

/* The source's apparent flux at each of n frequencies (Jy): its spectrum
 * through the Airy beam of a dish_m dish at direction cosines (l, m) from the
 * pointing -- ct_add_point_source's amplitude, for a caller that keeps it
 * while the baseline changes (the same for every baseline of a time). */
void ct_point_source_amplitudes(double l, double m, const ct_source *src, double dish_m,
                                const double *freq_hz, size_t nfreq, double *amp);

/* Adds the visibility of one source to vis[k] for each of n frequencies,
 * for a baseline with uvw in metres, the source at direction cosines
 * (l, m, n) from the phase centre, where the dishes also point: the Airy
 * beam of a dish_m dish attenuates it at each frequency. */
void ct_add_point_source(const double uvw_m[3], double l, double m, double n, const ct_source *src,
                         double dish_m, const double *freq_hz, size_t nfreq, double complex *vis);

#endif
