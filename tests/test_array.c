/*
 * test_array.c -- the DSA-110 station table and uvw geometry, checked
 * against facts that do not depend on the formulas used: station spacing,
 * the direction of east and north, and lengths preserved by rotation.
 */
#define _GNU_SOURCE
#include "array.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

static double norm3(const double v[3])
{
    return sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
}

static int station(const char *name)
{
    for (int i = 0; i < CT_DSA110_NSTATIONS; i++)
        if (strcmp(ct_dsa110_stations[i].name, name) == 0)
            return i;
    return -1;
}

static void test_table(void)
{
    int in_data = 0;
    for (int i = 0; i < CT_DSA110_NSTATIONS; i++) {
        in_data += ct_dsa110_stations[i].in_data;
        CHECK(ct_dsa110_stations[i].height_m > 1170 && ct_dsa110_stations[i].height_m < 1200,
              "%s elevation %.2f", ct_dsa110_stations[i].name, ct_dsa110_stations[i].height_m);
    }
    CHECK(in_data == 96, "96 stations carry data (%d)", in_data);
    CHECK(!ct_dsa110_stations[station("DSA-010")].in_data, "DSA-010 has no data");
    CHECK(!ct_dsa110_stations[station("DSA-060")].in_data, "DSA-060 has no data");
    CHECK(ct_dsa110_stations[station("DSA-068")].in_data, "DSA-068 has data");
}

static void test_positions(void)
{
    ct_array a;
    ct_err err;
    REQUIRE_OK(ct_array_dsa110(96, &a, &err), err);
    CHECK(a.n_data == 96 && a.n_stations == 117, "sizes");
    /* ECEF radius at 37.23 deg latitude on WGS84 plus ~1.18 km. */
    CHECK(fabs(norm3(a.site.ecef) - 6371.2e3) < 2e3, "site radius %.0f m", norm3(a.site.ecef));
    /* East-west arm: stations 0.0000648 deg of longitude apart at 37.2334 deg. */
    int s1 = station("DSA-001"), s2 = station("DSA-002");
    double d[3];
    for (int c = 0; c < 3; c++)
        d[c] = a.offsets[s2][c] - a.offsets[s1][c];
    double expect = 0.0000648 * M_PI / 180 * 6386.1e3 * cos(37.2333752 * M_PI / 180);
    CHECK(fabs(norm3(d) - expect) < 0.02, "EW spacing %.3f m, expected %.3f", norm3(d), expect);
    /* The array spans a few kilometres. */
    double maxlen = 0;
    for (int i = 0; i < CT_DSA110_NSTATIONS; i++)
        maxlen = fmax(maxlen, norm3(a.offsets[i]));
    CHECK(maxlen > 1000 && maxlen < 5000, "farthest station %.0f m from the site", maxlen);
    /* A small array still reaches the outriggers. */
    ct_array small;
    REQUIRE_OK(ct_array_dsa110(8, &small, &err), err);
    CHECK(small.n_data == 8 && small.data_numbers[0] == 0, "first pick is DSA-001");
    CHECK(small.data_numbers[7] > station("DSA-100"), "last pick is an outrigger (%d)",
          small.data_numbers[7]);
    CHECK(ct_array_dsa110(0, &small, &err) == CT_EINVAL, "0 antennas refused");
    CHECK(ct_array_dsa110(97, &small, &err) == CT_EINVAL, "97 antennas refused");
}

static void test_uvw_directions(void)
{
    ct_array a;
    ct_err err;
    REQUIRE_OK(ct_array_dsa110(96, &a, &err), err);
    double lon = a.site.lon_rad, lat = a.site.lat_rad;
    /* East-west baseline DSA-001 -> DSA-050 (the second is east) at transit. */
    int w = station("DSA-001"), e = station("DSA-050");
    double uvw[3], len;
    for (double dec = -20; dec <= 80; dec += 25) {
        ct_uvw(a.offsets[w], a.offsets[e], lon, 0.0, dec * M_PI / 180, uvw);
        double d[3];
        for (int c = 0; c < 3; c++)
            d[c] = a.offsets[e][c] - a.offsets[w][c];
        len = norm3(d);
        CHECK(uvw[0] > 0 && fabs(uvw[0] - len) < 0.01 * len, "dec %.0f: u = +%.2f (length %.2f)",
              dec, uvw[0], len);
        CHECK(fabs(uvw[1]) < 0.01 * len && fabs(uvw[2]) < 0.01 * len,
              "dec %.0f: v, w ~ 0 at transit (%.3f, %.3f)", dec, uvw[1], uvw[2]);
        CHECK(fabs(norm3(uvw) - len) < 1e-6 * len, "rotation keeps length");
    }
    /* North-south baseline DSA-052 -> DSA-102 (north), phase centre at zenith. */
    int s = station("DSA-052"), n = station("DSA-102");
    ct_uvw(a.offsets[s], a.offsets[n], lon, 0.0, lat, uvw);
    len = norm3(uvw);
    CHECK(uvw[1] > 0.999 * len, "zenith: v = +length (%.2f of %.2f)", uvw[1], len);
    CHECK(fabs(uvw[0]) < 1e-3 * len && fabs(uvw[2]) < 0.01 * len, "zenith: u, w ~ 0 (%.3f, %.3f)",
          uvw[0], uvw[2]);
    /* Six hours west of transit, an east-west baseline points its u along
     * the line of sight's perpendicular no more: w = -length * cos(dec). */
    ct_uvw(a.offsets[w], a.offsets[e], lon, M_PI / 2, 0.0, uvw);
    CHECK(fabs(uvw[2] + norm3(uvw)) < 0.02 * norm3(uvw),
          "source at HA +6h on the equator: east antenna is farther (w = %.2f)", uvw[2]);
    /* Reversing the baseline negates uvw. */
    double back[3];
    ct_uvw(a.offsets[e], a.offsets[w], lon, 0.3, 0.5, back);
    ct_uvw(a.offsets[w], a.offsets[e], lon, 0.3, 0.5, uvw);
    CHECK(back[0] == -uvw[0] && back[1] == -uvw[1] && back[2] == -uvw[2], "antisymmetric");
}

int main(void)
{
    RUN(test_table);
    RUN(test_positions);
    RUN(test_uvw_directions);
    return tu_finish();
}
