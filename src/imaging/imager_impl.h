/*
 * imager_impl.h -- inside the imager (imager.h): its two builds, one per
 * precision of the uv grids, and nothing else. imager_body.c is compiled as
 * ct_imp64_* (grids of double complex) and ct_imp32_* (float complex); each
 * function is imager.h's function of the same name, with the same contract
 * but its accuracy floor (imager.c, CT_IMAGER_SINGLE_MIN_EPS). imager.c
 * holds one of the two per imager and forwards every call to it.
 */
#ifndef CONTIMG_IMAGER_IMPL_H
#define CONTIMG_IMAGER_IMPL_H

#include "imager.h"

/* Single-precision grids are used from this epsilon up (geom->grid_bits 0):
 * float32 rounding in the cells and the FFT stays two orders below it
 * (tests/test_imager.c measures both against a direct Fourier transform). */
#define CT_IMAGER_SINGLE_MIN_EPS 1e-5

#define CT_IMAGER_DECLARE(P)                                                                       \
    typedef struct P##imager P##imager;                                                            \
    ct_code P##create(MPI_Comm comm, const ct_imager_geom *g, P##imager **out, ct_err *err);       \
    void P##destroy(P##imager *im);                                                                \
    ct_code P##load(P##imager *im, const ct_imager_rows *rows, const ct_weight_opts *wopts,        \
                    ct_err *err);                                                                  \
    void P##on_copied(P##imager *im, void (*fn)(void *arg), void *arg);                            \
    ct_code P##image(P##imager *im, int psf, double *image, ct_err *err);                          \
    ct_code P##set_model(P##imager *im, const ct_clean_components *root_components, ct_err *err);  \
    size_t P##nrows(const P##imager *im);                                                          \
    void P##row(const P##imager *im, size_t k, double uvw[3], double complex *vis,                 \
                double *weight);                                                                   \
    void P##get_stats(const P##imager *im, ct_imager_stats *out);                                  \
    const double *P##channel_weights(const P##imager *im);                                         \
    const double *P##epoch_weights(const P##imager *im);

CT_IMAGER_DECLARE(ct_imp64_)
CT_IMAGER_DECLARE(ct_imp32_)

#undef CT_IMAGER_DECLARE

#endif
