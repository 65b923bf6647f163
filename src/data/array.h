/*
 * array.h -- where the antennas are: the DSA-110 station table and the
 * geometry built on it (ECEF positions, baselines, uvw).
 *
 * Frames: antenna positions are ECEF (ITRF/WGS84) offsets in metres from
 * the site, as UVH5 stores them. uvw follows the UVH5/Measurement Set
 * convention: for baseline ant_1 -> ant_2, (u, v, w) = projection of
 * pos(ant_2) - pos(ant_1), u east, v north, w towards the phase centre.
 */
#ifndef CONTIMG_ARRAY_H
#define CONTIMG_ARRAY_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>

#define CT_DSA110_NSTATIONS 117
#define CT_DSA110_NDATA     96
#define CT_DSA110_DISH_M    4.65

typedef struct ct_station {
    const char *name; /* "DSA-001" ... */
    double lat_deg, lon_deg, height_m;
    bool in_data; /* one of the 96 the correlator writes */
} ct_station;

extern const ct_station ct_dsa110_stations[CT_DSA110_NSTATIONS];

/* The site: the mean of the 117 stations' geodetic coordinates. (Files from
 * the telescope carry their own site, which readers take from the file.) */
typedef struct ct_site {
    double lat_rad, lon_rad, height_m;
    double ecef[3];
} ct_site;

void ct_dsa110_site(ct_site *site);

/* WGS84 geodetic to ECEF metres. */
void ct_geodetic_to_ecef(double lat_rad, double lon_rad, double height_m, double xyz[3]);

/* The antennas of an observation: all 117 stations of the telescope, of
 * which n_data carry data. */
typedef struct ct_array {
    ct_site site;
    size_t n_stations;
    int numbers[CT_DSA110_NSTATIONS]; /* antenna number = station index (0-based) */
    const char *names[CT_DSA110_NSTATIONS];
    double offsets[CT_DSA110_NSTATIONS][3]; /* ECEF offsets from the site, metres */
    size_t n_data;
    int data_numbers[CT_DSA110_NDATA]; /* the antennas with data, ascending */
} ct_array;

/* The DSA-110 array with n_data antennas carrying data (1..96). Fewer than
 * 96 (for small test observations) are chosen evenly along the 96 in
 * station order, so a small array still spans both arms and outriggers. */
ct_code ct_array_dsa110(size_t n_data, ct_array *out, ct_err *err);

/* uvw (metres) of the baseline from ECEF offset a to b, for a phase centre at
 * local apparent hour angle `ha_rad` and declination `dec_rad`, at a site
 * of east longitude lon_rad. ECEF axes are used as the equatorial X, Y, Z
 * (polar motion ignored: below a metre-scale error at 10 km). */
void ct_uvw(const double a[3], const double b[3], double lon_rad, double ha_rad, double dec_rad,
            double uvw[3]);

#endif
