/* png.c -- see png.h. */
#define _POSIX_C_SOURCE 200809L
#include "png.h"

#include "fsutil.h"

#include <zlib.h>

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_ulong tmp_seq;

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One chunk: length, type, data, the CRC of type and data. */
static int chunk(FILE *f, const char type[4], const uint8_t *data, size_t n)
{
    uint8_t head[8], tail[4];
    be32(head, (uint32_t)n);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (n)
        crc = crc32(crc, data, (uInt)n);
    be32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (n == 0 || fwrite(data, 1, n, f) == n) &&
           fwrite(tail, 1, 4, f) == 4;
}

ct_code ct_png_write_gray(const char *path, int w, int h, const uint8_t *pix, ct_err *err)
{
    if (w < 1 || h < 1 || w > 16384 || h > 16384) /* one IDAT chunk, well under 2^31 bytes */
        return ct_fail(err, CT_EINVAL, "png: a %d x %d image", w, h);
    /* The raw scanlines: a filter byte (0: none) before each row. */
    const size_t row = (size_t)w + 1, raw_n = row * (size_t)h;
    uint8_t *raw = malloc(raw_n);
    uLongf z_n = compressBound((uLong)raw_n);
    uint8_t *z = malloc(z_n);
    if (raw == NULL || z == NULL) {
        free(raw);
        free(z);
        return ct_fail(err, CT_ENOMEM, "out of memory for a %d x %d png", w, h);
    }
    for (int y = 0; y < h; y++) {
        raw[(size_t)y * row] = 0;
        memcpy(raw + (size_t)y * row + 1, pix + (size_t)y * (size_t)w, (size_t)w);
    }
    const int zrc = compress2(z, &z_n, raw, (uLong)raw_n, 6);
    free(raw);
    if (zrc != Z_OK) {
        free(z);
        return ct_fail(err, CT_ENOMEM, "png: zlib failed (%d)", zrc);
    }
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%lu", path, (long)getpid(),
                 (unsigned long)atomic_fetch_add(&tmp_seq, 1)) >= (int)sizeof tmp) {
        free(z);
        return ct_fail(err, CT_EINVAL, "png: path too long: %s", path);
    }
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        free(z);
        return ct_fail(err, CT_EIO, "cannot create %s: %s", tmp, strerror(errno));
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13];
    be32(ihdr, (uint32_t)w);
    be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  /* bits per sample */
    ihdr[9] = 0;  /* greyscale */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering, each row's filter byte */
    ihdr[12] = 0; /* not interlaced */
    int ok = fwrite(sig, 1, 8, f) == 8 && chunk(f, "IHDR", ihdr, sizeof ihdr) &&
             chunk(f, "IDAT", z, z_n) && chunk(f, "IEND", NULL, 0);
    free(z);
    ok = (fflush(f) == 0) & ok;
    ok = (fsync(fileno(f)) == 0) & ok;
    ok = (fclose(f) == 0) & ok;
    if (!ok || rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        return ct_fail(err, CT_EIO, "cannot write %s: %s", path, strerror(e));
    }
    ct_fsync_parent(path);
    return CT_OK;
}

ct_code ct_png_quicklook(const char *path, const double *img, int nx, int ny, double rms,
                         double peak, int most, int flip_x, ct_err *err)
{
    if (nx < 1 || ny < 1 || most < 1)
        return ct_fail(err, CT_EINVAL, "png: a %d x %d quick look of at most %d", nx, ny, most);
    const int big = nx > ny ? nx : ny, k = (big + most - 1) / most;
    const int w = (nx + k - 1) / k, h = (ny + k - 1) / k;
    uint8_t *pix = malloc((size_t)w * (size_t)h);
    if (pix == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory for a quick look");
    const double s = rms > 0 && isfinite(rms) ? 3 * rms : 1e-30, lo = -2 * (s / 3);
    const double hi = isfinite(peak) && peak > lo ? peak : lo + s, norm = asinh((hi - lo) / s);
    for (int oy = 0; oy < h; oy++)
        for (int ox = 0; ox < w; ox++) {
            double v = -INFINITY;
            for (int y = oy * k; y < oy * k + k && y < ny; y++)
                for (int x = ox * k; x < ox * k + k && x < nx; x++) {
                    const double p = img[(size_t)y * nx + x];
                    v = isfinite(p) && p > v ? p : v;
                }
            double g = isfinite(v) ? asinh((v - lo) / s) / norm : 0;
            g = g < 0 ? 0 : g > 1 ? 1 : g;
            const int col = flip_x ? w - 1 - ox : ox;
            pix[(size_t)(h - 1 - oy) * w + col] = (uint8_t)lround(255 * g);
        }
    const ct_code rc = ct_png_write_gray(path, w, h, pix, err);
    free(pix);
    return rc;
}
