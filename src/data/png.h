/*
 * png.h -- 8-bit greyscale PNG images, for quick looks a browser shows (the status page
 * of `contimg serve`). Written through zlib, atomically: the file appears whole at its
 * path or not at all.
 *
 * Owns: the PNG container (signature, IHDR, IDAT, IEND, CRCs) and the render of a float
 * image to grey levels. Does not own: what the image shows (imaging.h writes the quick
 * look of each restored image).
 */
#ifndef CONTIMG_PNG_H
#define CONTIMG_PNG_H

#include "error.h"

#include <stddef.h>
#include <stdint.h>

/* Writes w x h grey levels (row 0 the top row) to path. CT_EINVAL for an empty image,
 * CT_EIO when the file cannot be written, CT_ENOMEM. */
ct_code ct_png_write_gray(const char *path, int w, int h, const uint8_t *pix, ct_err *err);

/*
 * A quick look of an nx x ny image (img[y * nx + x], y up, x as stored) at most `most`
 * pixels on a side: blocks of k x k pixels (k the smallest that fits) shown by their
 * largest value, so point sources survive; grey = asinh((v - lo) / s) / asinh((hi - lo) /
 * s) with lo = -2 rms, hi = peak, s = 3 rms (noise dark grey, sources white, the wings
 * visible). flip_x reverses the columns (FITS shows RA increasing to the left). Written
 * with ct_png_write_gray, row 0 the top (the largest y).
 */
ct_code ct_png_quicklook(const char *path, const double *img, int nx, int ny, double rms,
                         double peak, int most, int flip_x, ct_err *err);

#endif
