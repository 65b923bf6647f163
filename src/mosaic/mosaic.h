/*
 * mosaic.h -- primary-beam-weighted linear mosaics on a TAN grid, computed in
 * tiles across the ranks of a communicator.
 *
 * Inputs are restored images NOT corrected for the primary beam (fitsimage.h
 * layout, SIN or TAN). Every image p gets a weight w_p = 1 / sigma_p^2, with
 * sigma_p = 1.4826 MAD of its finite pixels (robust against the sources),
 * and a beam A_p: the Airy power pattern of a CT_DISH_DIAMETER_M dish at the
 * image's frequency (CRVAL3), centred on its reference position (CRVAL1/2,
 * the pointing at mid-observation). On the output grid
 *
 *     M     = sum_p A_p I_p w_p / sum_p A_p^2 w_p      (Cornwell 1993)
 *     noise = 1 / sqrt(sum_p A_p^2 w_p)
 *     weight= sum_p A_p^2 w_p
 *
 * and M and noise are blank (NaN) where weight < cutoff^2 * max(weight).
 *
 * The output grid is TAN, centred on the mean of the inputs' pointings, at
 * the inputs' cell, just covering their footprints; it is cut into tiles of
 * at most `tile` pixels a side. Each tile is one unit of work: the tiles are
 * dealt to the ranks longest-first (their cost is the input area that
 * overlaps them), each rank reads every input its tiles overlap once, and
 * writes its tiles. The value of a pixel is summed over the inputs in their
 * given order whatever rank computes it, so the mosaic is the same bit for
 * bit on any number of ranks and with any tiling.
 *
 * Resampling (`interp`): each input is sampled at the exact position of the
 * output pixel centre (unit vectors, no trigonometry per pixel):
 *   bicubic   Keys' cubic convolution (a = -0.5), 4 x 4 input pixels: exact
 *             for quadratics, preserves the peak of a well-sampled beam
 *             (>= 3 px per FWHM) to better than 0.5 %. The default.
 *   bilinear  2 x 2 input pixels: faster, smooths (peaks drop up to ~2 %).
 *   area      flux-conserving: the mean of 4 x 4 bicubic samples spread over
 *             the output pixel's footprint (Jy/beam surface brightness
 *             averaged over the pixel, so sum(pixels) x pixel area is kept).
 * A sample whose taps reach outside its image or touch a NaN (blank) pixel
 * is left out: that image contributes nothing there, and a pixel no image
 * reaches is blank. Input images must agree in frequency and cell (to 1e-6);
 * otherwise the mosaic is refused with both values named.
 *
 * Files (each written under a temporary name and renamed, fitsimage.h):
 *   PREFIX-tileNNN.fits, -tileNNN-noise.fits, -tileNNN-weight.fits  every tile
 *   PREFIX.fits, PREFIX-noise.fits, PREFIX-weight.fits   the assembled mosaic,
 *       when one map fits in assemble_max_bytes (rank 0 reads the tiles back)
 * A tile file carries the mosaic's WCS with CRPIX shifted, so tiles and the
 * assembled mosaic agree pixel for pixel.
 */
#ifndef CONTIMG_MOSAIC_H
#define CONTIMG_MOSAIC_H

#include "error.h"

#include <jansson.h>
#include <mpi.h>
#include <stdbool.h>

#define CT_MOSAIC_TILE_MAX     8192
#define CT_MOSAIC_TILE_DEFAULT 2048
#define CT_MOSAIC_CUTOFF       0.1 /* beam level: weight cut at 0.01 of its maximum */
#define CT_MOSAIC_MAX_SIDE     65536

typedef enum ct_mosaic_interp {
    CT_MOSAIC_BICUBIC = 0,
    CT_MOSAIC_BILINEAR,
    CT_MOSAIC_AREA,
} ct_mosaic_interp;

typedef struct ct_mosaic_opts {
    const char *out_prefix;    /* required */
    int tile;                  /* tile side in pixels, 16..CT_MOSAIC_TILE_MAX */
    double cutoff;             /* beam cutoff in (0, 1) */
    ct_mosaic_interp interp;   /* resampling */
    double assemble_max_bytes; /* assemble when nx*ny*4 bytes fit; 0: never */
} ct_mosaic_opts;

/* tile CT_MOSAIC_TILE_DEFAULT, cutoff CT_MOSAIC_CUTOFF, bicubic, assemble up to 4 GiB. */
void ct_mosaic_opts_default(ct_mosaic_opts *o);

/* "bicubic", "bilinear", "area" <-> the enum; parse returns CT_EINVAL otherwise. */
const char *ct_mosaic_interp_name(ct_mosaic_interp interp);
ct_code ct_mosaic_interp_parse(const char *name, ct_mosaic_interp *out);

/* The one check of the options' bounds, for the command line and a task's
 * params.config alike (the output prefix and the inputs are ct_mosaic_make's
 * to check). CT_EINVAL naming the option. */
ct_code ct_mosaic_opts_check(const ct_mosaic_opts *o, ct_err *err);

/* params.config (NULL: none) over the defaults, then checked: tile (a whole
 * number), cutoff, interp ("bicubic", "bilinear", "area"); the planner's
 * keys (tier, images_per_mosaic, overlap) are a chain step's and pass
 * untouched. Anything else, or a value of the wrong type, is CT_EINVAL. */
ct_code ct_mosaic_opts_from_json(const json_t *config, ct_mosaic_opts *o, ct_err *err);

typedef struct ct_mosaic_tile {
    int x0, y0, nx, ny; /* pixels of the mosaic (0-based, x along RA, y along Dec) */
    int rank;           /* the rank that computed it */
    char path[4096];    /* its mosaic file (the noise and weight maps: -noise, -weight) */
} ct_mosaic_tile;

typedef struct ct_mosaic_result {
    int nx, ny, n_images, ranks;
    double ra_deg, dec_deg, crpix1, crpix2; /* the TAN grid (FITS 1-based CRPIX) */
    double cell_arcsec, freq_hz, bandwidth_hz, cutoff;
    const char *interp;
    bool common_beam; /* the inputs' beams differed: each convolved to this one */
    double beam_maj_arcsec, beam_min_arcsec, beam_pa_deg;
    double max_weight;   /* max of sum A^2 w (1/Jy^2) */
    double noise_min_jy; /* the deepest unblanked pixel's noise */
    double noise_med_jy; /* median noise over unblanked pixels (NaN when not assembled) */
    long long n_blank;   /* blank pixels of the mosaic */
    double *sigma_jy;    /* n_images: each input's MAD noise */
    char date_start[72]; /* earliest and latest input DATE-OBS ("" when none) */
    char date_end[72];
    int n_tiles, tiles_x, tiles_y;
    ct_mosaic_tile *tiles; /* n_tiles, row-major */
    bool assembled;
    char path[4096]; /* PREFIX.fits (or "" when not assembled) */
    double t_stats, t_read, t_resample, t_write, t_assemble, seconds;
} ct_mosaic_result;

/* Makes the mosaic of images[0..n_images-1] (collective over comm: every rank
 * passes the same arguments; rank 0 gets the complete result, the others
 * their share). Errors, the same on every rank: CT_EINVAL for bad options,
 * inputs that disagree in frequency or cell, a grid too large, or an image
 * with no usable pixels (message starting "corrupt_input"), CT_ENOTFOUND for
 * a missing file, CT_EIO, CT_ENOMEM. Inputs are checked before anything is
 * written; a failure while writing (a full disk) can leave some tiles of the
 * new mosaic beside older ones -- every file complete, never partial -- and a
 * rerun replaces them. */
ct_code ct_mosaic_make(MPI_Comm comm, const char *const *images, int n_images,
                       const ct_mosaic_opts *o, ct_mosaic_result *res, ct_err *err);

void ct_mosaic_result_free(ct_mosaic_result *res);

/* The result as JSON (new reference): grid, noise, tiles, timings. */
json_t *ct_mosaic_result_json(const ct_mosaic_result *res);

#endif
