/*
 * imager.h -- visibilities to images across the ranks of an MPI communicator:
 * weighting, w-stacked convolutional gridding, the distributed FFT (FFTW-MPI
 * slabs) and degridding, with the same image, bit for bit, on any number of ranks.
 *
 * Conventions and accuracy are those of the one-rank gridder (gridder.h): uvw in
 * wavelengths, V = S exp(+2 pi i (u l + v m + w (n - 1))), pixel (ix, iy) at
 * x = (ix - nx/2) cell, y = (iy - ny/2) cell of the (slant) orthographic
 * projection (x = l, y = m unless slanted: ct_imager_geom's slant), images
 * row-major [ny][nx], the
 * dirty image normalized by the sum of the imaging weights, to within the
 * requested epsilon of a direct Fourier transform.
 *
 * How the work is shared. The padded uv grid (2 nx by 2 ny, rows = v) is cut
 * into FFTW-MPI's slabs of rows, one per rank. Each rank holds every
 * visibility whose kernel touches its slab (a visibility near a slab edge is
 * held by both neighbours) and grids it onto its own rows only. The 2-D FFT
 * is a 1-D FFTW transform of each local row, FFTW-MPI's distributed
 * transpose, and a 1-D transform of each row of the transposed slab: after
 * it each rank holds a set of image columns, where the w planes are summed.
 *
 * Why the result does not depend on the rank count: every grid cell receives
 * its contributions in one fixed order (gridding tile phase, w-plane bucket,
 * global row order; see imager_body.c, setup_tiles), whichever rank or
 * thread computes it; every 1-D transform is made by the same
 * FFTW plan on the same numbers; the transposes only move data; every pixel
 * is summed over w planes by one rank; and the sums over all the data (the
 * weights' normalization, Briggs' mean density, per-channel weights) are
 * formed per density row of the uv grid and then added in row order on every
 * rank. No floating-point sum is ever split differently for a different rank
 * count, so 1, 2 or 16 ranks give the same bits (tests/test_imager.sh checks
 * 1, 2 and 4).
 *
 * Input. Each rank passes its own rows, a contiguous block of one global
 * sequence, the blocks in rank order (rank 0 the first rows); the global order
 * fixes the order of summation. A row has uvw (its baseline-time's times its
 * channel's scale: ct_imager_rows), a visibility, a natural weight (0 =
 * flagged), and two labels for the primary beam's average over the
 * observation: its channel (0..nchan-1) and its epoch (0..nepoch-1, the
 * integration), whose imaging weights the imager sums.
 *
 * Lifecycle (every call collective over the communicator, PETSc-style: every
 * rank returns the same code; a failure on one rank is reported on all, with
 * the failing rank's message): create, load, then any sequence of image /
 * set_model; destroy.
 */
#ifndef CONTIMG_IMAGER_H
#define CONTIMG_IMAGER_H

#include "clean.h"
#include "error.h"
#include "weighting.h"

#include <complex.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ct_imager ct_imager;

typedef struct ct_imager_geom {
    int nx, ny;             /* image pixels, both even, >= 2 */
    double cell_rad;        /* pixel size, direction cosine */
    double epsilon;         /* accuracy against a direct Fourier transform, [1e-14, 1e-1] */
    int no_wterms;          /* nonzero: ignore w (the 2-D approximation) */
    double max_bytes;       /* per-rank memory the grids may take; 0: 80 % of this node's
                               memory shared among the node's ranks */
    int threads;            /* OpenMP threads per rank; 0: the node's cores shared among the
                               communicator's ranks on it (ct_mpi_cpu_share) */
    int slant;              /* CT_IMAGER_SLANT_AUTO (0), _OFF or _ON: image on the slant
                               orthographic grid that fits the rows' w plane (see below) */
    int slant_nx, slant_ny; /* 0: decide the slant for this image; else as an image of
                               this size (and cell) would: a PSF imager of twice the size
                               then slants exactly when its image does */
    int grid_bits;          /* precision of the uv grids and their FFTs: 32 (single; epsilon
                               must be >= 1e-5), 64 (double), or 0: 32 where epsilon >= 1e-5,
                               else 64. Single halves the grids' memory and traffic, and the
                               held visibilities, residuals and weights and the w screens are
                               then float32 too (rounding 6e-8 of each value); the uvw, the
                               taps, every sum a pass forms and the images are double. */
} ct_imager_geom;

/* The slant projection (gridkernel.h, ct_slant_to_lm). A load fits the plane
 * w = -xi u - eta v through the kept rows (least squares, unit weights, sums
 * in density-row order: the same bits on any rank count) and, with AUTO,
 * grids w' = w + xi u + eta v onto a grid uniform in x = l + xi (1 - n),
 * y = m + eta (1 - n) when that at least halves the w planes (DSA-110 at
 * Dec 55: a w range 40 x smaller, 27 w planes -> 8 at 4800 px of 3"; a
 * 512 px image of 20" keeps its plain grid: 11 -> 7). Pixel (ix, iy)
 * is then at x = (ix - nx/2) cell, y = (iy - ny/2) cell and at the direction
 * ct_slant_to_lm gives; the FITS header says so with PV2_1 = xi, PV2_2 = eta.
 * OFF keeps the plain SIN grid (xi = eta = 0); ON slants whenever a plane
 * fits (not for rows all on a line, nor without w-terms). Either way only a
 * field within 45 degrees of the centre whose slant is mild there (|xi l +
 * eta m| <= n / 2 at its corners, so that ct_slant_to_lm settles fast) is
 * slanted; the others keep the plain grid. */
enum { CT_IMAGER_SLANT_AUTO = 0, CT_IMAGER_SLANT_OFF = 1, CT_IMAGER_SLANT_ON = 2 };

/* Plans the imaging. Refuses (CT_EINVAL), before allocating anything large,
 * nonsense geometry and an image whose grids would not fit in max_bytes. */
ct_code ct_imager_create(MPI_Comm comm, const ct_imager_geom *g, ct_imager **out, ct_err *err);

/* Collective; NULL is ignored (on every rank alike). */
void ct_imager_destroy(ct_imager *im);

/* A rank's rows as an observation has them: each row a baseline-time and a
 * channel, its uvw the baseline-time's uvw times the channel's scale (for a
 * UVH5 file metres times frequency / c: the very product visset.h forms, so
 * the rows are the same bits as a uvw per row). Why: the imager then holds
 * 6 bytes of geometry per row (a 4-byte index and a 2-byte channel) instead
 * of 32, and its records travel 24 bytes instead of 48 -- 1.5 GB less at the
 * production geometry, at every peak. The table of baseline-times is small
 * (4560 baselines x 24 integrations: 2.6 MB) and every rank gets all of it.
 * Global baseline-time k is rank r's local k - (the ranks before r's nblt). */
typedef struct ct_imager_rows {
    size_t n;                   /* this rank's rows */
    const uint32_t *blt;        /* n: index into this rank's table (< nblt); NULL: row i is
                                   baseline-time i (nblt == n, the rows' own uvw) */
    const int *chan;            /* n: 0..nchan-1 */
    const double complex *vis;  /* n, or NULL and vis_f */
    const double *weight;       /* n: natural weight, >= 0 (0 = flagged); or NULL and weight_f */
    const float complex *vis_f; /* the same in float32 (visset.h's: 12 bytes a row less) */
    const float *weight_f;
    size_t nblt;              /* this rank's baseline-times */
    const double *blt_uvw;    /* nblt x 3 */
    const int *blt_epoch;     /* nblt: 0..nepoch-1, the integration for the primary beam */
    const double *chan_scale; /* nchan: finite; NULL: all 1 */
    int nchan, nepoch;        /* the same on every rank; nchan <= 65535 */
} ct_imager_rows;

/* Takes this rank's rows (see the top of this file and ct_imager_rows),
 * computes the imaging weights and shares the rows out among the slabs. The
 * labels: a row's channel, and its baseline-time's epoch. wopts' cell must
 * be the image's and its density grid (nx, ny) must divide the padded grid
 * (2 nx, 2 ny of the image): normally the image's own size; an imager of
 * twice the size (for a PSF that covers every offset, clean.h) loaded with
 * the first one's wopts weights every row exactly alike, bit for bit.
 * Refuses with CT_EINVAL a non-finite uvw, scale, weight or weighted
 * visibility, an index or label out of range, more than 2^32 - 1
 * baseline-times in all, and data with nothing left after flags and uv cuts
 * ("no data"). What is needed is copied. */
ct_code ct_imager_load_rows(ct_imager *im, const ct_imager_rows *rows, const ct_weight_opts *wopts,
                            ct_err *err);

/* The same with a uvw per row (uvw[3 k .. 3 k + 2]) and an epoch per row:
 * ct_imager_load_rows with blt NULL and chan_scale NULL. */
ct_code ct_imager_load(ct_imager *im, const double *uvw, const double complex *vis,
                       const double *natural_w, const int *chan, int nchan, const int *epoch,
                       int nepoch, size_t n, const ct_weight_opts *wopts, ct_err *err);

/* Lets the next load call fn(arg) as soon as it holds its own copy
 * of the rows (before it shares them out among the slabs), so that a caller
 * can free its arrays there: the caller's rows and the imager's copies are
 * then never all in memory at once. fn is called on every rank whose load
 * gets that far, at most once per load, and never after a load has failed before it; a caller
 * frees what is left after the load either way. NULL fn: no call. */
void ct_imager_on_copied(ct_imager *im, void (*fn)(void *arg), void *arg);

/* The dirty image of the residual visibilities (the loaded ones less the
 * model's prediction, see ct_imager_set_model), or with psf nonzero the PSF
 * (every visibility 1), into image[ny * nx] on rank 0 (others may pass NULL). */
ct_code ct_imager_image(ct_imager *im, int psf, double *image, ct_err *err);

/* Replaces the model by the components (rank 0's are used; others may pass
 * NULL): the residual visibilities become the loaded ones less the model's
 * predicted visibilities (degridded, to the same epsilon). The residual is
 * held in place of the loaded visibilities and updated by the prediction of
 * what changed since the last model (a list that CLEAN grew: the new
 * entries and the changed fluxes), so its error is epsilon of the sum of
 * the changes' fluxes. Refused (bad components, on every rank) before
 * anything changes; a failure after that (out of memory moving grid rows)
 * leaves the imager without rows (CT_ESTATE until loaded again). */
ct_code ct_imager_set_model(ct_imager *im, const ct_clean_components *root_components, ct_err *err);

/* The rows this rank holds, as imaged: on one rank, every kept row once (in
 * the imager's order); on more, rows near slab edges are held by two ranks.
 * Row k < ct_imager_nrows(): its uvw (w as loaded, also when slanted),
 * residual visibility (the loaded one until a model is set) and imaging
 * weight (both at the grids' precision: float32-rounded where grid_bits is
 * 32). */
size_t ct_imager_nrows(const ct_imager *im);
void ct_imager_row(const ct_imager *im, size_t k, double uvw[3], double complex *vis,
                   double *weight);

typedef struct ct_imager_stats {
    size_t n_rows;     /* rows imaged, over all ranks */
    double weight_sum; /* sum of the imaging weights */
    long w_planes;     /* planes per transform (1 without w-terms) */
    int support;       /* kernel support W */
    int plane_group;   /* w planes gridded at once (memory allowing, up to 2 W) */
    int grid_passes;   /* images made (ct_imager_image calls) */
    int ranks;
    int threads;                /* per rank */
    int grid_bits;              /* 32 or 64: the precision of the uv grids (ct_imager_geom) */
    int row_cells;              /* cells of a grid row a pass writes: the padded grid's width,
                                   or on one rank, where no kernel wraps round the u edge, the
                                   rows' used columns or the image's, whichever is more */
    double slant_xi, slant_eta; /* the projection's PV2_1, PV2_2 (0, 0: plain SIN) */
    /* Seconds on this rank, summed over calls: */
    double t_weights, t_grid, t_fft, t_degrid, t_comm;
} ct_imager_stats;

void ct_imager_get_stats(const ct_imager *im, ct_imager_stats *out);

/* The sums of the imaging weights per channel (nchan values) and per epoch
 * (nepoch), the same on every rank: the weights of the primary beam's average
 * over the band and over the drift. */
const double *ct_imager_channel_weights(const ct_imager *im);
const double *ct_imager_epoch_weights(const ct_imager *im);

#endif
