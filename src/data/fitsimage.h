/*
 * fitsimage.h -- FITS images with a full world coordinate system, via cfitsio.
 *
 * The layout is WSClean's: a primary HDU of 32-bit floats (BITPIX -32) with
 * NAXIS 4 -- RA---SIN (or TAN), DEC--SIN (or TAN), FREQ, STOKES -- the last two
 * of length 1 (CRVAL3 = centre frequency, CDELT3 = bandwidth, CRVAL4 = 1 =
 * Stokes I). Pixel data are row-major [ny][nx], x along RA (CDELT1 < 0: east
 * is to the left), y along DEC. NaN pixels are written as NaN (blanked).
 *
 * Written keywords: the WCS (CTYPE/CRVAL/CDELT/CRPIX/CUNIT of the four axes),
 * RADESYS 'ICRS', SPECSYS 'TOPOCENT', RESTFRQ, BUNIT, BTYPE, BMAJ/BMIN/BPA,
 * DATE-OBS (UTC, the FITS default time scale) with the matching MJD-OBS (so
 * that WCSLIB has nothing to "fix"), TELESCOP 'DSA-110', INSTRUME 'DSA',
 * ORIGIN, OBJECT, and any extra numeric keywords the caller adds (QA figures).
 * Files open in astropy.io.fits and astropy.wcs without a single warning.
 *
 * Writing is atomic: the file is made as "<path>.tmp-<pid>-<n>", fsync'd and
 * renamed onto path; on any failure nothing is left at path (an existing file
 * there is untouched) and the temporary file is removed.
 */
#ifndef CONTIMG_FITSIMAGE_H
#define CONTIMG_FITSIMAGE_H

#include "error.h"

/* A numeric header keyword added by the caller: a FITS name of 1-8
 * characters from A-Z 0-9 '-' '_' (not one this module writes itself), a
 * finite value and an optional comment. */
typedef struct ct_fits_keyword {
    const char *name;
    double value;
    const char *comment; /* NULL for none */
} ct_fits_keyword;

typedef struct ct_fits_image_desc {
    int nx, ny;                         /* pixels; data row-major [ny][nx], y = DEC axis */
    double ra_deg, dec_deg;             /* reference position (phase centre), ICRS */
    double crpix1, crpix2;              /* 1-based reference pixel; 0: nx/2+1, ny/2+1 */
    double cdelt_deg;                   /* pixel size > 0: CDELT1 = -cdelt, CDELT2 = +cdelt */
    const char *projection;             /* "SIN" (images) or "TAN" (mosaics); NULL: SIN */
    double pv2_1, pv2_2;                /* SIN only: the slant (xi, eta), PV2_1 and PV2_2,
                                           written when not both 0 (gridkernel.h) */
    double freq_hz, bandwidth_hz;       /* centre frequency and bandwidth (both > 0) */
    double bmaj_deg, bmin_deg, bpa_deg; /* restoring beam (FWHM; BPA east of north); 0: none */
    const char *bunit;                  /* NULL: "JY/BEAM" */
    const char *date_obs;               /* ISO UTC "YYYY-MM-DDThh:mm:ss[.sss]"; NULL: none */
    const char *object;                 /* NULL: none */
    const char *origin;                 /* NULL: "contimg" */
    const ct_fits_keyword *extra;       /* n_extra caller keywords */
    int n_extra;
} ct_fits_image_desc;

/* Writes the image data[ny][nx] (nx*ny floats) to path, atomically.
 * CT_EINVAL for a bad descriptor (nx or ny < 1, cdelt <= 0, a projection
 * other than SIN/TAN, non-finite or out-of-range RA/Dec, a bad frequency,
 * beam, date or extra keyword), before anything is created; CT_EIO when
 * cfitsio or the file system fails; CT_ENOMEM. */
ct_code ct_fits_write_image(const char *path, const ct_fits_image_desc *d, const float *data,
                            ct_err *err);

#define CT_FITS_STR_MAX   72 /* a FITS string value, NUL included */
#define CT_FITS_EXTRA_MAX 32 /* extra keywords kept by the reader */

/* What ct_fits_read_image found. desc's string and extra pointers point into
 * this same struct (its buffers below), so desc can be passed straight back to
 * ct_fits_write_image; a copy of the struct keeps pointing into the original. */
typedef struct ct_fits_image_info {
    ct_fits_image_desc desc;
    char projection[8];
    char bunit[CT_FITS_STR_MAX];
    char date_obs[CT_FITS_STR_MAX];
    char object[CT_FITS_STR_MAX];
    char origin[CT_FITS_STR_MAX];
    char telescope[CT_FITS_STR_MAX];
    double mjd_obs; /* MJD-OBS, or NaN when absent */
    /* Numeric keywords other than the ones this module writes itself, in file order. */
    ct_fits_keyword extra[CT_FITS_EXTRA_MAX];
    char extra_names[CT_FITS_EXTRA_MAX][12];
    char extra_comments[CT_FITS_EXTRA_MAX][CT_FITS_STR_MAX];
} ct_fits_image_info;

/* Reads an image in the layout above into *info and a malloc'd
 * data[ny][nx] (*data_out; the caller frees it), or only its header when
 * data_out is NULL. CT_ENOTFOUND when path
 * does not exist, CT_EINVAL when the file is not such an image (axes, WCS) or
 * not FITS at all (a header cfitsio cannot parse, a file cut short), CT_EIO for
 * any other cfitsio failure (reaching the file), CT_ENOMEM. */
ct_code ct_fits_read_image(const char *path, ct_fits_image_info *info, float **data_out,
                           ct_err *err);

#endif
