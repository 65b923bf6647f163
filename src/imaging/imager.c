/* imager.c -- see imager.h: one of the two builds of imager_body.c per
 * imager, chosen by the accuracy asked for, every call forwarded to it. */
#include "imager.h"

#include "gridkernel.h"
#include "imager_impl.h"
#include "mpiutil.h"

#include <stdlib.h>

struct ct_imager {
    ct_imp32_imager *f; /* exactly one of the two is set */
    ct_imp64_imager *d;
};

ct_code ct_imager_create(MPI_Comm comm, const ct_imager_geom *g, ct_imager **out, ct_err *err)
{
    *out = NULL;
    ct_code rc = CT_OK;
    if (g->grid_bits != 0 && g->grid_bits != 32 && g->grid_bits != 64)
        rc = ct_fail(err, CT_EINVAL, "grid precision %d bits: must be 32, 64 or 0 (automatic)",
                     g->grid_bits);
    else if (g->grid_bits == 32 && !(g->epsilon >= CT_IMAGER_SINGLE_MIN_EPS))
        rc = ct_fail(err, CT_EINVAL,
                     "gridder accuracy %g with single-precision grids: must be >= %g (or use "
                     "64-bit grids)",
                     g->epsilon, CT_IMAGER_SINGLE_MIN_EPS);
    /* A grid narrower than the kernel would wrap a kernel onto itself. */
    const int W =
        g->epsilon >= 1e-14 && g->epsilon <= 1e-1 ? ct_gkernel_for(g->epsilon).support : 0;
    if (rc == CT_OK && g->nx >= 2 && g->ny >= 2 &&
        (CT_GRID_OVERSAMPLING * (long)g->nx < W || CT_GRID_OVERSAMPLING * (long)g->ny < W))
        rc = ct_fail(err, CT_EINVAL,
                     "image %d x %d: too small for the gridding kernel at epsilon %g (%d grid "
                     "cells; at least %d pixels a side)",
                     g->nx, g->ny, g->epsilon, W,
                     (W + CT_GRID_OVERSAMPLING - 1) / CT_GRID_OVERSAMPLING);
    ct_imager *im = rc == CT_OK ? calloc(1, sizeof *im) : NULL;
    if (rc == CT_OK && !im)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for an imager");
    /* The same choice on every rank: it depends on g alone, which the
     * caller passes alike, and the create below agrees on failure. */
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK) {
        free(im);
        return rc;
    }
    const int single =
        g->grid_bits == 32 || (g->grid_bits == 0 && g->epsilon >= CT_IMAGER_SINGLE_MIN_EPS);
    rc = single ? ct_imp32_create(comm, g, &im->f, err) : ct_imp64_create(comm, g, &im->d, err);
    if (rc != CT_OK) {
        free(im);
        return rc;
    }
    *out = im;
    return CT_OK;
}

void ct_imager_destroy(ct_imager *im)
{
    if (!im)
        return;
    if (im->f)
        ct_imp32_destroy(im->f);
    else
        ct_imp64_destroy(im->d);
    free(im);
}

ct_code ct_imager_load_rows(ct_imager *im, const ct_imager_rows *rows, const ct_weight_opts *wopts,
                            ct_err *err)
{
    return im->f ? ct_imp32_load(im->f, rows, wopts, err) : ct_imp64_load(im->d, rows, wopts, err);
}

ct_code ct_imager_load(ct_imager *im, const double *uvw, const double complex *vis,
                       const double *natural_w, const int *chan, int nchan, const int *epoch,
                       int nepoch, size_t n, const ct_weight_opts *wopts, ct_err *err)
{
    const ct_imager_rows rows = {.n = n,
                                 .chan = chan,
                                 .vis = vis,
                                 .weight = natural_w,
                                 .nblt = n,
                                 .blt_uvw = uvw,
                                 .blt_epoch = epoch,
                                 .nchan = nchan,
                                 .nepoch = nepoch};
    return ct_imager_load_rows(im, &rows, wopts, err);
}

void ct_imager_on_copied(ct_imager *im, void (*fn)(void *arg), void *arg)
{
    if (im->f)
        ct_imp32_on_copied(im->f, fn, arg);
    else
        ct_imp64_on_copied(im->d, fn, arg);
}

ct_code ct_imager_image(ct_imager *im, int psf, double *image, ct_err *err)
{
    return im->f ? ct_imp32_image(im->f, psf, image, err) : ct_imp64_image(im->d, psf, image, err);
}

ct_code ct_imager_set_model(ct_imager *im, const ct_clean_components *root, ct_err *err)
{
    return im->f ? ct_imp32_set_model(im->f, root, err) : ct_imp64_set_model(im->d, root, err);
}

size_t ct_imager_nrows(const ct_imager *im)
{
    return im->f ? ct_imp32_nrows(im->f) : ct_imp64_nrows(im->d);
}

void ct_imager_row(const ct_imager *im, size_t k, double uvw[3], double complex *vis,
                   double *weight)
{
    if (im->f)
        ct_imp32_row(im->f, k, uvw, vis, weight);
    else
        ct_imp64_row(im->d, k, uvw, vis, weight);
}

void ct_imager_get_stats(const ct_imager *im, ct_imager_stats *out)
{
    if (im->f)
        ct_imp32_get_stats(im->f, out);
    else
        ct_imp64_get_stats(im->d, out);
}

const double *ct_imager_channel_weights(const ct_imager *im)
{
    return im->f ? ct_imp32_channel_weights(im->f) : ct_imp64_channel_weights(im->d);
}

const double *ct_imager_epoch_weights(const ct_imager *im)
{
    return im->f ? ct_imp32_epoch_weights(im->f) : ct_imp64_epoch_weights(im->d);
}
