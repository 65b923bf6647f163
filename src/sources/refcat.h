/*
 * refcat.h -- a reference catalogue (NVSS or one like it) in memory, with a zone index
 * for cone searches.
 *
 * Read from a FITS table (the first table extension; known by its first bytes) or a
 * delimited text file (comma, semicolon, tab or '|'; lines starting with '#' skipped)
 * whose first line names the columns -- the table's TTYPEn -- matched without regard to
 * case:
 *   position  ra_deg / ra / raj2000 / _raj2000 and dec_deg / dec / dej2000 / _dej2000, in
 *             decimal degrees or sexagesimal ("hh mm ss.s", "hh:mm:ss.s"; "+dd mm ss");
 *   flux      flux_jy / int_jy / peak_jy / flux (Jy), or s1.4 / flux_mjy (mJy: NVSS's
 *             S1.4 from VizieR), with its error e_flux_jy / flux_err_jy (Jy) or e_s1.4
 *             (mJy);
 *   optional  id / name / nvss (the source's name), majaxis / maj_arcsec and minaxis /
 *             min_arcsec (deconvolved sizes, arcsec).
 * A source without a name is named by its position (Jhhmmss.ss+ddmmss.s). Rows with a
 * position out of range, a flux that is not a positive number, or a missing field are
 * refused with the file's line number (CT_EINVAL: a catalogue is configuration).
 *
 * The index: the sky cut into declination zones of 0.2 degrees, sources sorted by RA in
 * each; a cone search binary-searches the RA range in each zone it touches (both sides of
 * RA 0 where it wraps; whole zones near a pole), then checks the true separation
 * (bench/README.md, "bench/sources": the time against a scan).
 */
#ifndef CONTIMG_REFCAT_H
#define CONTIMG_REFCAT_H

#include "error.h"

#include <stddef.h>

#define CT_REFCAT_ID_MAX 32

typedef struct ct_refsrc {
    double ra_deg, dec_deg;
    double flux_jy, flux_err_jy;   /* error 0 when the catalogue has none */
    double maj_arcsec, min_arcsec; /* 0 when unresolved or not given */
    char id[CT_REFCAT_ID_MAX];
} ct_refsrc;

typedef struct ct_refcat ct_refcat;

/* Reads path. CT_ENOTFOUND, CT_EINVAL (a malformed file: the line and why), CT_EIO,
 * CT_ENOMEM. */
ct_code ct_refcat_open(const char *path, ct_refcat **out, ct_err *err);

/* A catalogue of n sources copied from src (tests, and catalogues built in memory); ids
 * left empty are made from the positions. */
ct_code ct_refcat_from_array(const ct_refsrc *src, size_t n, ct_refcat **out, ct_err *err);

void ct_refcat_destroy(ct_refcat *c);

size_t ct_refcat_size(const ct_refcat *c);
const ct_refsrc *ct_refcat_get(const ct_refcat *c, size_t i);

/* The sources within radius_deg (< 90) of (ra_deg, dec_deg): their indices into *idx
 * (malloc'd, the caller frees; NULL when none), in no particular order. CT_EINVAL for a
 * bad centre or radius, CT_ENOMEM. */
ct_code ct_refcat_cone(const ct_refcat *c, double ra_deg, double dec_deg, double radius_deg,
                       size_t **idx, size_t *n, ct_err *err);

#endif
