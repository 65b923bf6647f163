/* array.c -- see array.h. */
#include "array.h"

#include <erfa.h>
#include <erfam.h>
#include <math.h>
#include <string.h>

void ct_geodetic_to_ecef(double lat_rad, double lon_rad, double height_m, double xyz[3])
{
    /* ERFA_WGS84 = 1; the only failure is an invalid ellipsoid or height. */
    if (eraGd2gc(ERFA_WGS84, lon_rad, lat_rad, height_m, xyz) != 0)
        xyz[0] = xyz[1] = xyz[2] = NAN;
}

void ct_dsa110_site(ct_site *site)
{
    double lat = 0, lon = 0, h = 0;
    for (int i = 0; i < CT_DSA110_NSTATIONS; i++) {
        lat += ct_dsa110_stations[i].lat_deg;
        lon += ct_dsa110_stations[i].lon_deg;
        h += ct_dsa110_stations[i].height_m;
    }
    site->lat_rad = lat / CT_DSA110_NSTATIONS * ERFA_DD2R;
    site->lon_rad = lon / CT_DSA110_NSTATIONS * ERFA_DD2R;
    site->height_m = h / CT_DSA110_NSTATIONS;
    ct_geodetic_to_ecef(site->lat_rad, site->lon_rad, site->height_m, site->ecef);
}

ct_code ct_array_dsa110(size_t n_data, ct_array *out, ct_err *err)
{
    if (n_data < 1 || n_data > CT_DSA110_NDATA)
        return ct_fail(err, CT_EINVAL, "antennas with data must be 1..%d, got %zu", CT_DSA110_NDATA,
                       n_data);
    memset(out, 0, sizeof *out);
    ct_dsa110_site(&out->site);
    out->n_stations = CT_DSA110_NSTATIONS;
    int with_data[CT_DSA110_NDATA], k = 0;
    for (int i = 0; i < CT_DSA110_NSTATIONS; i++) {
        const ct_station *s = &ct_dsa110_stations[i];
        double xyz[3];
        ct_geodetic_to_ecef(s->lat_deg * ERFA_DD2R, s->lon_deg * ERFA_DD2R, s->height_m, xyz);
        for (int c = 0; c < 3; c++)
            out->offsets[i][c] = xyz[c] - out->site.ecef[c];
        out->numbers[i] = i;
        out->names[i] = s->name;
        if (s->in_data && k < CT_DSA110_NDATA)
            with_data[k++] = i;
    }
    /* Evenly spaced picks: index floor(j * 96 / n) for j = 0..n-1. */
    out->n_data = n_data;
    for (size_t j = 0; j < n_data; j++)
        out->data_numbers[j] = with_data[j * (size_t)k / n_data];
    return CT_OK;
}

void ct_uvw(const double a[3], const double b[3], double lon_rad, double ha_rad, double dec_rad,
            double uvw[3])
{
    double x = b[0] - a[0], y = b[1] - a[1], z = b[2] - a[2];
    /* Thompson, Moran & Swenson eq. 4.1 measure H from the X axis, which for
     * ECEF is the Greenwich meridian: H_greenwich = H_local - east longitude. */
    double h = ha_rad - lon_rad;
    double sh = sin(h), ch = cos(h), sd = sin(dec_rad), cd = cos(dec_rad);
    uvw[0] = sh * x + ch * y;
    uvw[1] = -sd * ch * x + sd * sh * y + cd * z;
    uvw[2] = cd * ch * x - cd * sh * y + sd * z;
}
