/*
 * test_sky.c -- source positions, beam and visibility phase.
 *
 * Checked here: the Airy beam against the reference figures (FWHM 2.72 deg,
 * first null 3.22 deg at 1.4 GHz for 4.65 m), a source at the phase centre
 * (V = S, zero phase), ICRS <-> apparent round trips, and the sign of the
 * phase for a source east of the centre. Written to the file named on the
 * command line: site, positions and uvw, for check_sky.py to compare with
 * astropy, an independent implementation of the same astronomy.
 */
#define _GNU_SOURCE
#include "array.h"
#include "sky.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *out_path;

static double deg(double rad)
{
    return rad * 180.0 / M_PI;
}
static double rad(double d)
{
    return d * M_PI / 180.0;
}

static void test_airy_beam(void)
{
    double f = 1.4e9, d = CT_DSA110_DISH_M;
    CHECK(ct_airy_power(0, f, d) == 1.0, "peak 1");
    /* Half power at half the FWHM: find it by bisection. */
    double lo = 0, hi = rad(3);
    for (int i = 0; i < 100; i++) {
        double mid = 0.5 * (lo + hi);
        if (ct_airy_power(sin(mid), f, d) > 0.5)
            lo = mid;
        else
            hi = mid;
    }
    double fwhm = 2 * deg(lo);
    CHECK(fabs(fwhm - 2.72) < 0.01, "FWHM %.4f deg (reference 2.72)", fwhm);
    /* First null: x = 3.8317, theta = asin(3.8317 lambda / (pi D)). */
    double null = deg(asin(3.8317059702 * CT_SPEED_OF_LIGHT / f / (M_PI * d)));
    CHECK(fabs(null - 3.22) < 0.01, "first null %.4f deg (reference 3.22)", null);
    CHECK(ct_airy_power(sin(rad(null)), f, d) < 1e-12, "zero at the null");
    CHECK(ct_airy_power(sin(rad(1.0)), 1.5e9, d) < ct_airy_power(sin(rad(1.0)), 1.3e9, d),
          "narrower at higher frequency");
}

static void test_source_at_phase_centre(void)
{
    ct_site site;
    ct_dsa110_site(&site);
    double jd = 2461366.5 + 0.3; /* 2026-11-22 07:12 UTC */
    double dec0 = rad(55.0);
    double ra, dec;
    ct_err err;
    REQUIRE_OK(ct_hadec_to_icrs(0.0, dec0, jd, 0, &site, &ra, &dec, &err), err);
    double ha, dec_app;
    REQUIRE_OK(ct_icrs_to_hadec(ra, dec, jd, 0, &site, &ha, &dec_app, &err), err);
    CHECK(fabs(ha) < 1e-10 && fabs(dec_app - dec0) < 1e-10, "round trip (%.2e, %.2e rad)", ha,
          dec_app - dec0);
    /* Precession since J2000 moves the apparent position by ~20 arcmin. */
    double sep = acos(sin(dec) * sin(dec_app) + cos(dec) * cos(dec_app) * cos(0));
    CHECK(fabs(deg(dec - dec_app)) > 0.01 || sep > 0, "ICRS differs from apparent");
    double l, m, n;
    ct_lmn(ha, dec_app, dec0, &l, &m, &n);
    CHECK(fabs(l) < 1e-9 && fabs(m) < 1e-9 && fabs(n - 1) < 1e-15, "l = m = 0 at the centre");
    ct_array a;
    REQUIRE_OK(ct_array_dsa110(96, &a, &err), err);
    double freqs[4] = {1.49875e9, 1.45e9, 1.4e9, 1.31125e9};
    ct_source src = {ra, dec, 2.5, -0.7};
    double maxphase = 0, ampdev = 0;
    for (int i = 0; i < 96; i += 7) {
        for (int j = i + 1; j < 96; j += 11) {
            double uvw[3];
            ct_uvw(a.offsets[a.data_numbers[i]], a.offsets[a.data_numbers[j]], site.lon_rad, 0,
                   dec0, uvw);
            double complex v[4] = {0};
            ct_add_point_source(uvw, l, m, n, &src, CT_DSA110_DISH_M, freqs, 4, v);
            for (int k = 0; k < 4; k++) {
                double s = 2.5 * pow(freqs[k] / 1.4e9, -0.7);
                maxphase = fmax(maxphase, fabs(carg(v[k])));
                ampdev = fmax(ampdev, fabs(cabs(v[k]) - s) / s);
            }
        }
    }
    CHECK(maxphase < 1e-6, "zero phase on every baseline (max %.2e rad)", maxphase);
    CHECK(ampdev < 1e-12, "amplitude = S (nu/1.4GHz)^alpha (max rel dev %.2e)", ampdev);
}

static void test_phase_sign(void)
{
    /* A source a little east of the centre, east-west baseline pointing east:
     * u > 0, l > 0, so the phase is positive (+2 pi u l). */
    double uvw[3] = {100.0, 0, 0};
    double l = 1e-4, m = 0, n = sqrt(1 - l * l);
    ct_source src = {0, 0, 1.0, 0};
    double f = 1.4e9;
    double complex v = 0;
    ct_add_point_source(uvw, l, m, n, &src, CT_DSA110_DISH_M, &f, 1, &v);
    double expect = 2 * M_PI * 100.0 * l * f / CT_SPEED_OF_LIGHT;
    CHECK(fabs(carg(v) - expect) < 1e-9, "phase +2 pi u l: %.6f vs %.6f", carg(v), expect);
}

/* Writes values for check_sky.py. */
static void test_write_for_astropy(void)
{
    FILE *f = fopen(out_path, "w");
    REQUIRE(f != NULL, "open %s", out_path);
    ct_site site;
    ct_dsa110_site(&site);
    fprintf(f, "SITE %.15g %.15g %.15g %.6f %.6f %.6f\n", site.lon_rad, site.lat_rad, site.height_m,
            site.ecef[0], site.ecef[1], site.ecef[2]);
    const double srcs[][2] = {{10.0, 41.0},    {83.63, 22.01},   {187.7, 12.39},
                              {299.87, 40.73}, {201.37, -43.02}, {30.0, 85.0}};
    const double jds[] = {2461366.5, 2461366.5 + 0.137, 2461500.25, 2460676.5};
    ct_err err;
    for (size_t s = 0; s < sizeof srcs / sizeof *srcs; s++) {
        for (size_t t = 0; t < sizeof jds / sizeof *jds; t++) {
            double ha, dec;
            REQUIRE_OK(ct_icrs_to_hadec(rad(srcs[s][0]), rad(srcs[s][1]), jds[t], 0, &site, &ha,
                                        &dec, &err),
                       err);
            fprintf(f, "DIR %.15g %.15g %.10f %.15g %.15g\n", rad(srcs[s][0]), rad(srcs[s][1]),
                    jds[t], ha, dec);
        }
    }
    ct_array a;
    REQUIRE_OK(ct_array_dsa110(96, &a, &err), err);
    for (int k = 0; k < 40; k++) {
        int i = a.data_numbers[(k * 7) % 96], j = a.data_numbers[(k * 13 + 5) % 96];
        double dec0 = rad(-30 + 3 * k), uvw[3];
        ct_uvw(a.offsets[i], a.offsets[j], site.lon_rad, 0, dec0, uvw);
        fprintf(f, "UVW %.6f %.6f %.6f %.6f %.6f %.6f %.15g %.9f %.9f %.9f\n", a.offsets[i][0],
                a.offsets[i][1], a.offsets[i][2], a.offsets[j][0], a.offsets[j][1], a.offsets[j][2],
                dec0, uvw[0], uvw[1], uvw[2]);
    }
    CHECK(fclose(f) == 0, "written");
}

int main(int argc, char **argv)
{
    out_path = argc > 1 ? argv[1] : "sky_values.txt";
    RUN(test_airy_beam);
    RUN(test_source_at_phase_centre);
    RUN(test_phase_sign);
    RUN(test_write_for_astropy);
    return tu_finish();
}
