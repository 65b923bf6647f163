/*
 * test_png.c -- the PNG quick looks (src/data/png.h), decoded here with zlib on their own:
 * the chunk CRCs, the header, every pixel of a small image, where a point source lands
 * (flipped as a FITS viewer shows it), the stretch's ends, and atomic writing.
 */
#define _POSIX_C_SOURCE 200809L
#include "png.h"
#include "testutil.h"

#include <zlib.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Decodes an 8-bit greyscale, non-interlaced PNG written whole; NULL when it is not one. */
static uint8_t *decode(const char *path, int *w, int *h)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t buf[1 << 20];
    const size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 8 || memcmp(buf, sig, 8) != 0)
        return NULL;
    uint8_t *idat = malloc(n);
    size_t nidat = 0;
    *w = *h = 0;
    int end = 0;
    for (size_t at = 8; at + 12 <= n && !end;) {
        const uint32_t len = rd32(buf + at);
        const uint8_t *type = buf + at + 4, *data = buf + at + 8;
        if (at + 12 + len > n)
            break;
        if (crc32(crc32(0, type, 4), data, len) != rd32(data + len)) {
            free(idat);
            return NULL;
        }
        if (memcmp(type, "IHDR", 4) == 0) {
            if (len != 13 || data[8] != 8 || data[9] != 0 || data[12] != 0) {
                free(idat);
                return NULL;
            }
            *w = (int)rd32(data);
            *h = (int)rd32(data + 4);
        } else if (memcmp(type, "IDAT", 4) == 0) {
            memcpy(idat + nidat, data, len);
            nidat += len;
        } else if (memcmp(type, "IEND", 4) == 0)
            end = 1;
        at += 12 + len;
    }
    uLongf raw_n = (uLongf)(*w + 1) * (uLongf)*h;
    uint8_t *raw = malloc(raw_n + 1), *pix = malloc((size_t)*w * (size_t)*h + 1);
    const int ok = end && *w > 0 && uncompress(raw, &raw_n, idat, nidat) == Z_OK &&
                   raw_n == (uLongf)(*w + 1) * (uLongf)*h;
    for (int y = 0; ok && y < *h; y++) {
        if (raw[(size_t)y * (*w + 1)] != 0) { /* the writer uses no filter */
            free(pix);
            pix = NULL;
            break;
        }
        memcpy(pix + (size_t)y * *w, raw + (size_t)y * (*w + 1) + 1, (size_t)*w);
    }
    free(idat);
    free(raw);
    if (!ok) {
        free(pix);
        return NULL;
    }
    return pix;
}

static void test_gray_round_trip(void)
{
    char path[] = "/tmp/ct-png-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    enum { W = 7, H = 3 };
    uint8_t pix[W * H];
    for (int i = 0; i < W * H; i++)
        pix[i] = (uint8_t)(i * 12);
    ct_err err;
    REQUIRE_OK(ct_png_write_gray(path, W, H, pix, &err), err);
    int w, h;
    uint8_t *back = decode(path, &w, &h);
    REQUIRE(back != NULL, "a valid PNG (CRCs, header, zlib stream)");
    CHECK(w == W && h == H && memcmp(back, pix, sizeof pix) == 0, "every pixel back (%d x %d)", w,
          h);
    free(back);
    CHECK(ct_png_write_gray(path, 0, 3, pix, &err) == CT_EINVAL, "an empty image refused");
    CHECK(ct_png_write_gray("/nonexistent-dir/x.png", W, H, pix, &err) == CT_EIO,
          "an unwritable path: CT_EIO (%s)", err.msg);
    unlink(path);
}

/* A 1000 x 600 image of noise-free zeros with one source: blocks of 2 (at most 512 a side)
 * keep it at one pixel, the brightest, in the flipped place; the background sits at the
 * stretch's -2 rms floor's grey. */
static void test_quicklook(void)
{
    char path[] = "/tmp/ct-png-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    enum { NX = 1000, NY = 600 };
    double *img = calloc((size_t)NX * NY, sizeof *img);
    const int sx = 101, sy = 450;
    img[(size_t)sy * NX + sx] = 5.0;
    img[(size_t)10 * NX + 900] = NAN; /* a blanked pixel does not spoil its block */
    ct_err err;
    REQUIRE_OK(ct_png_quicklook(path, img, NX, NY, 0.01, 5.0, 512, 1, &err), err);
    int w, h;
    uint8_t *pix = decode(path, &w, &h);
    REQUIRE(pix != NULL, "a valid PNG");
    CHECK(w == 500 && h == 300, "blocks of 2: %d x %d", w, h);
    const int px = w - 1 - sx / 2, py = h - 1 - sy / 2;
    int best = -1, bi = -1;
    for (int i = 0; i < w * h; i++)
        if (pix[i] > best)
            best = pix[i], bi = i;
    CHECK(best == 255 && bi == py * w + px, "the source white at (%d, %d): %d at (%d, %d)", px, py,
          best, bi % w, bi / w);
    /* Zero sits 2 rms above the floor: asinh(2/3) / asinh(5.02/0.03) of full scale. */
    const int zero = (int)lround(255 * asinh(2.0 / 3) / asinh(5.02 / 0.03));
    CHECK(pix[0] == zero, "the background grey %d (want %d)", pix[0], zero);
    free(pix);
    free(img);
    unlink(path);
}

int main(void)
{
    RUN(test_gray_round_trip);
    RUN(test_quicklook);
    return tu_finish();
}
