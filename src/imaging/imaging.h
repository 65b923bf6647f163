/*
 * imaging.h -- the imaging stage: one combined observation (UVH5) to a
 * CLEANed, primary-beam-corrected Stokes-I image with full WCS and its QA
 * figures, on the ranks of a communicator.
 *
 * Steps (docs/imaging.md has the algorithms and their accuracy):
 *   1. read: each rank reads a contiguous range of baseline-times and turns
 *      it into Stokes-I rows phased to the pointing at mid-observation
 *      (visset.h);
 *   2. geometry, where not given: the field out to where the
 *      drift-averaged primary beam falls to pblimit; the cell a quarter of
 *      the synthesized beam's minor axis as predicted from the weighted uv
 *      moments (3-5 pixels across the fitted beam), to 0.01 arcsec and
 *      clamped to 0.1-60 arcsec; the size rounded up to an even number with
 *      no prime factor above 5;
 *   3. weights, gridding and FFT across the ranks (imager.h);
 *   4. the PSF at the image's size (twice it with psf_double), then
 *      Hogbom CLEAN in major cycles: the minor cycle (clean.h, on rank 0)
 *      stops once the peak residual falls by the major-cycle gain (mgain,
 *      0.5 by default: to half of where it started) or at the threshold or
 *      niter; the model's visibilities are then predicted by degridding and
 *      subtracted, and the residual image made again from the visibilities;
 *   5. restore with the beam fitted to the PSF; correct for the primary
 *      beam (the Airy pattern of 4.65 m dishes averaged over the channels
 *      with the imaging weights), blanking where it is below pblimit;
 *   6. QA (imageqa.h) and FITS files (fitsimage.h) from rank 0, each
 *      written under a temporary name and renamed:
 *      PREFIX-dirty.fits, -psf.fits, -model.fits, -residual.fits,
 *      -image.fits (restored) and -image-pb.fits, and the restored image's
 *      quick look PREFIX-image.png (png.h: at most 512 pixels a side).
 *
 * Every rank returns the same code. Errors: CT_EINVAL for bad options or
 * input ("corrupt input: ..." for damaged data, "no data: ..." when nothing
 * is left to image), CT_ENOTFOUND for a missing file, CT_EIO, CT_ENOMEM.
 */
#ifndef CONTIMG_IMAGING_H
#define CONTIMG_IMAGING_H

#include "clean.h"
#include "error.h"
#include "imageqa.h"
#include "imager.h"
#include "weighting.h"

#include <jansson.h>

#include <mpi.h>
#include <stddef.h>

typedef struct ct_image_opts {
    const char *out_prefix; /* output files PREFIX-*.fits */
    int size;               /* pixels per side (even); 0: the primary beam's field / cell */
    double cell_arcsec;     /* 0: a quarter of the predicted synthesized beam */
    ct_weight_kind weight;  /* Briggs by default */
    double robust;          /* 0 by default */
    double min_uv_lambda;   /* 0: none */
    int niter;              /* CLEAN components at most (1000) */
    double threshold_jy;    /* stop CLEAN at this peak residual (0) */
    double gain, mgain;     /* loop gain (0.1), major-cycle gain (0.8) */
    int max_major;          /* major cycles at most (20) */
    double epsilon;         /* gridding accuracy (1e-4) */
    double pblimit;         /* primary-beam cutoff (0.2) */
    int no_wterms;          /* nonzero: 2-D gridding */
    double max_bytes;       /* per-rank grid memory; 0: automatic (imager.h) */
    int threads;            /* per rank; 0: automatic (imager.h) */
    int psf_double;         /* nonzero: the PSF at twice the size (every offset covered) */
    int grid_bits;          /* uv grids' precision: 32, 64, or 0 (automatic, imager.h) */
    int slant;              /* CT_IMAGER_SLANT_AUTO (0), _OFF, _ON (imager.h) */
    const char *export_vis; /* NULL, or a file for the rows as imaged (one rank only) */
} ct_image_opts;

/* CT_IMAGER_SLANT_* for "auto", "off" or "on"; -1 for anything else (NULL too). */
int ct_image_slant_from_name(const char *name);

/* CT_WEIGHT_* for "natural", "uniform" or "briggs"; -1 for anything else. */
int ct_image_weight_from_name(const char *name);

/* The one check of an option set, whoever filled it (the command line, a
 * task's params.config, a chain's step): every bound in one place, so that
 * what `contimg image` accepts a task accepts too. CT_EINVAL naming the
 * option (by its params.config key) and the value. The output prefix is
 * not checked here (a chain's config has none yet); ct_image_observation
 * checks it too. */
ct_code ct_image_opts_check(const ct_image_opts *o, ct_err *err);

/* params.config (a JSON object; NULL: none) over the defaults, or over the
 * successor's settings when it has "successor": true, then checked
 * (ct_image_opts_check). Keys: size, cell_arcsec, weight ("natural",
 * "uniform", "briggs"), robust, niter, threshold_jy, gain, mgain, epsilon,
 * pblimit, min_uv_lambda, no_wterms, psf_double (booleans), slant ("auto",
 * "off", "on"), successor. An unknown key, or a value of the wrong type, is
 * refused (CT_EINVAL). out_prefix and export_vis are left NULL. */
ct_code ct_image_opts_from_json(const json_t *config, ct_image_opts *o, ct_err *err);

/* The seed pipeline's defaults (above). */
void ct_image_opts_default(ct_image_opts *o);
/* The continuum successor's settings: 4800 pixels of 3 arcsec, Briggs 0.5,
 * min uv 1000 lambda (the rest as the defaults). */
void ct_image_opts_successor(ct_image_opts *o);

typedef struct ct_image_result {
    int nx, ny;
    double cell_arcsec;
    double ra_deg, dec_deg; /* the image centre, ICRS */
    double freq_hz, bandwidth_hz;
    char date_obs[32];
    size_t n_vis;                  /* rows imaged */
    size_t n_flagged, n_nonfinite; /* samples dropped (visset.h) */
    long w_planes;
    int support, ranks, threads, major_cycles, iterations;
    int plane_group;            /* w planes gridded at once (imager.h) */
    int grid_bits;              /* 32 or 64: the uv grids' precision (imager.h) */
    int grid_row_cells;         /* cells of a grid row a pass writes (imager.h's row_cells) */
    double slant_xi, slant_eta; /* the projection's PV2_1, PV2_2 (0, 0: plain SIN; imager.h) */
    int grid_passes;            /* images the imager made (the PSF not counted: psf_stats) */
    double epsilon;             /* the gridding accuracy asked for */
    int psf_size;               /* pixels per side of the PSF CLEAN used: nx, or with psf_double
                                   2 nx (nx when that did not fit in memory) */
    ct_imager_stats psf_stats;  /* the PSF imager's figures */
    const char *stop_reason;    /* "niter", "threshold" or "major cycles" */
    ct_beam beam;
    ct_image_qa qa;
    /* Seconds (rank 0): */
    double t_read, t_weights, t_grid, t_fft, t_degrid, t_clean, t_write, t_total;
    /* The peak resident memory of the imaging ranks' processes so far
     * (getrusage), summed over the ranks: an upper bound of what they held
     * at once. For `contimg image` the run's own peak; in a long-lived
     * engine, the worker's peak over every task it has run. */
    double peak_rss_bytes;
} ct_image_result;

/* Images the UVH5 file visfile (collective over comm). */
ct_code ct_image_observation(MPI_Comm comm, const char *visfile, const ct_image_opts *o,
                             ct_image_result *res, ct_err *err);

/* The result as JSON (what `contimg image --json` prints and the engine
 * stores): geometry, counts, "qa" and "timings" objects. NULL when out of
 * memory. */
json_t *ct_image_result_json(const ct_image_result *r);

/* Every file imaging writes for an output prefix, as PREFIX-NAME (NULL-terminated): what
 * housekeeping removes with an image past its retention. */
extern const char *const ct_imaging_outputs[];

#endif
