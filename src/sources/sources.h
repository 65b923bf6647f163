/*
 * sources.h -- source finding on a restored image: background and noise maps, islands,
 * Gaussian fits, a catalogue.
 *
 * Steps (docs/science.md has the methods and their measured accuracy):
 *   1. background and rms maps: the image cut into boxes (box pixels a side, by default
 *      about 10 restoring beams); in each, the median and 1.4826 x the median absolute
 *      deviation of its finite pixels, clipped at 3 sigma until they settle (sources
 *      lift the mean and the standard deviation, hardly the median; no median filter
 *      over the mesh, which flattens a gradient at the borders); boxes with too few
 *      finite pixels filled from their neighbours, and the mesh interpolated bilinearly
 *      between box centres to every pixel;
 *   2. islands: 8-connected pixels at least island_sigma local rms above the background,
 *      kept when one of them reaches seed_sigma;
 *   3. Gaussian fits: each island's significant peaks (local maxima at seed_sigma or more
 *      that a dip of at least 2 rms separates from every brighter one, at most
 *      max_components) fitted together, by Levenberg-Marquardt with an analytic Jacobian,
 *      as elliptical Gaussians on the island and one pixel around it; a fit that fails
 *      or wanders off its island is replaced by the island's moments (flag
 *      CT_SRC_MOMENTS);
 *   4. errors after Condon (1997, PASP 109, 166): peak, integrated flux and position from
 *      the fit's signal-to-noise and the beam, the local rms as the pixel noise;
 *   5. positions on the sky through the image's projection (skyframe.h).
 * Integrated flux is peak x (fitted major x minor) / (beam major x minor): an unresolved
 * source has integrated = peak. Pixels are fitsimage.h's: data[ny][nx], NaN blank.
 */
#ifndef CONTIMG_SOURCES_H
#define CONTIMG_SOURCES_H

#include "error.h"
#include "fitsimage.h"

#include <jansson.h>
#include <stddef.h>

typedef struct ct_src_opts {
    double seed_sigma;   /* an island needs a pixel this many rms above background (5) */
    double island_sigma; /* its pixels are this many rms above (3) */
    int box;             /* background box, pixels a side; 0: about 10 beams (>= 16) */
    int max_components;  /* Gaussians fitted per island, at most (8) */
    int threads;         /* OpenMP threads for the fits; 0: all */
} ct_src_opts;

void ct_src_opts_default(ct_src_opts *o);
/* Every bound in one place (the command line and a task's config): CT_EINVAL naming the
 * option. */
ct_code ct_src_opts_check(const ct_src_opts *o, ct_err *err);

enum {
    CT_SRC_MOMENTS = 1, /* the Gaussian fit failed; position, size and flux are moments */
    CT_SRC_EDGE = 2,    /* the island touches the image's edge or a blank pixel */
    CT_SRC_BLEND = 4,   /* one of several Gaussians fitted to one island */
};

typedef struct ct_src {
    double ra_deg, dec_deg;
    double ra_err_arcsec, dec_err_arcsec; /* 1 sigma, on the sky (RA's times cos Dec) */
    double x, y;                          /* 0-based pixel of the centre */
    double peak_jy, peak_err_jy;          /* per beam */
    double int_jy, int_err_jy;
    double maj_arcsec, min_arcsec, pa_deg; /* fitted FWHM; PA east of north, [0, 180) */
    double rms_jy, background_jy;          /* the local maps at the centre */
    double snr;                            /* peak / local rms */
    int island;                            /* 0-based island number */
    int n_pixels;                          /* the island's pixels */
    int flags;                             /* CT_SRC_* */
} ct_src;

typedef struct ct_src_catalog {
    ct_src *src; /* sorted by peak, brightest first */
    size_t n;
    size_t n_islands;
    double rms_jy; /* median of the rms map over finite pixels */
    double beam_maj_arcsec, beam_min_arcsec, beam_pa_deg; /* the header's restoring beam */
    int box;                                              /* the background box used */
    double seconds;                                       /* wall time of ct_src_find */
} ct_src_catalog;

/* Background and rms maps of data[ny][nx] (each ny x nx, NaN where the image is blank) in
 * boxes of box pixels. CT_EINVAL for box < 4 or an image without enough finite pixels
 * for one box; CT_ENOMEM. */
ct_code ct_src_background(const float *data, int nx, int ny, int box, float *bkg, float *rms,
                          ct_err *err);

/* Finds the sources of image data (the header d: beam, projection, cell; projection
 * "SIN" or "TAN"). The restoring beam comes from d (BMAJ/BMIN/BPA); an image without one
 * is assumed to have a round beam of 3 pixels FWHM. bkg and rms, when not NULL, receive
 * the maps (ny x nx). CT_EINVAL for bad options or an image that cannot be searched (a
 * corrupt_input category: no finite pixels, no noise); CT_ENOMEM. */
ct_code ct_src_find(const float *data, const ct_fits_image_desc *d, const char *projection,
                    const ct_src_opts *o, ct_src_catalog *out, float *bkg, float *rms, ct_err *err);

void ct_src_catalog_free(ct_src_catalog *c);

/* {"sources": [{"ra_deg", "dec_deg", "ra_err_arcsec", "dec_err_arcsec", "x", "y",
 * "peak_jy", "peak_err_jy", "int_jy", "int_err_jy", "maj_arcsec", "min_arcsec", "pa_deg",
 * "rms_jy", "background_jy", "snr", "island", "flags"}...], "rms_jy", "n_islands",
 * "beam": {"maj_arcsec", "min_arcsec", "pa_deg"}, "box", "seconds"}; NULL when out of
 * memory. */
json_t *ct_src_catalog_json(const ct_src_catalog *c);

/* Reads the source-finding options present in config (a JSON object; NULL: none:
 * seed_sigma, island_sigma, box, max_components) over *o, then checks them. CT_EINVAL for
 * an unknown key or a value of the wrong type. */
ct_code ct_src_opts_from_json(ct_src_opts *o, const json_t *config, ct_err *err);

/* Reads back a catalogue ct_src_catalog_write_csv wrote (the sources, in its order: the
 * n-th row is source n); the image-level figures (rms, beam) are not in it and stay 0.
 * CT_ENOTFOUND, CT_EINVAL (not such a file: the line), CT_ENOMEM. */
ct_code ct_src_catalog_read_csv(const char *path, ct_src_catalog *out, ct_err *err);

/* Writes the catalogue as CSV (a header line, then one line per source, the JSON's
 * fields in its order), atomically: under a temporary name, fsync'd, renamed. CT_EIO. */
ct_code ct_src_catalog_write_csv(const ct_src_catalog *c, const char *path, ct_err *err);

#endif
