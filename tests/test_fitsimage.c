/*
 * test_fitsimage.c -- FITS images written and read back through cfitsio.
 *
 * Checked here: a 64 x 48 SIN image and a TAN image round trip exactly (pixels
 * bit for bit, NaN included; every descriptor value and string; the extra QA
 * keywords), bad descriptors are refused before anything is created, writes
 * into a missing or unwritable directory fail with CT_EIO and leave no
 * temporary file, a failed write leaves an existing file alone. The images stay
 * in the directory named on the command line with "expect.txt", the values
 * check_fitsimage.py compares astropy's reading against.
 */
#define _GNU_SOURCE
#include "fitsimage.h"
#include "fsutil.h"
#include "testutil.h"

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NX 64
#define NY 48

static const char *out_dir;
static FILE *expect;

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Entries of dir whose name contains ".tmp-". */
static int count_temps(const char *dir)
{
    DIR *dp = opendir(dir);
    if (dp == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL)
        if (strstr(e->d_name, ".tmp-") != NULL)
            n++;
    closedir(dp);
    return n;
}

static void join(char *out, size_t size, const char *dir, const char *name)
{
    if (snprintf(out, size, "%s/%s", dir, name) >= (int)size) {
        fprintf(stderr, "path too long: %s/%s\n", dir, name);
        exit(2);
    }
}

/* A pattern with structure in both axes, a few special values and two NaNs. */
static void fill(float *img)
{
    for (int y = 0; y < NY; y++)
        for (int x = 0; x < NX; x++)
            img[y * NX + x] = (float)(0.001 * x - 0.01 * y + 1e-4 * x * y);
    img[24 * NX + 32] = 1.5f;   /* the reference pixel of the SIN image */
    img[0] = -2.25f;            /* first pixel: bottom left */
    img[NY * NX - 1] = 3.0e-8f; /* last pixel: top right */
    img[10 * NX + 3] = FLT_MAX; /* extremes survive */
    img[11 * NX + 4] = 1e-42f;  /* subnormal */
    img[5 * NX + 60] = NAN;     /* blanked */
    img[40 * NX + 7] = NAN;
}

static const ct_fits_keyword sin_extra[] = {
    {"RMSNOISE", 1.234e-4, "[Jy/beam] image rms"},
    {"NCLEAN", 5000, NULL},
    {"QA_DYNR", 812.5, "dynamic range"},
};

static ct_fits_image_desc sin_desc(void)
{
    ct_fits_image_desc d = {0};
    d.nx = NX;
    d.ny = NY;
    d.ra_deg = 202.78453;
    d.dec_deg = 30.509155;
    d.cdelt_deg = 6.0 / 3600; /* 6 arcsec */
    d.projection = "SIN";
    d.freq_hz = 1.4053125e9;
    d.bandwidth_hz = 187.5e6;
    d.bmaj_deg = 0.0041;
    d.bmin_deg = 0.0032;
    d.bpa_deg = -12.5;
    d.date_obs = "2026-11-22T10:00:00.000";
    d.object = "3C286 field";
    d.extra = sin_extra;
    d.n_extra = 3;
    return d;
}

static ct_fits_image_desc tan_desc(void)
{
    ct_fits_image_desc d = {0};
    d.nx = NX;
    d.ny = NY;
    d.ra_deg = 350.866417;
    d.dec_deg = 71.0;
    d.crpix1 = 20.5;
    d.crpix2 = 30.0;
    d.cdelt_deg = 0.005;
    d.projection = "TAN";
    d.freq_hz = 1.4e9;
    d.bandwidth_hz = 250e6;
    d.bunit = "Jy/beam";
    d.date_obs = "2026-11-22T23:59:59.5";
    d.origin = "contimg mosaic";
    return d;
}

static void expect_image(const char *name, const ct_fits_image_desc *d, const float *img)
{
    fprintf(expect, "image %s\n", name);
    fprintf(expect, "proj %s\n", d->projection);
    fprintf(expect, "ra %.17g\ndec %.17g\n", d->ra_deg, d->dec_deg);
    fprintf(expect, "crpix %.17g %.17g\n", d->crpix1 ? d->crpix1 : NX / 2 + 1,
            d->crpix2 ? d->crpix2 : NY / 2 + 1);
    fprintf(expect, "cdelt %.17g\n", d->cdelt_deg);
    fprintf(expect, "freq %.17g %.17g\n", d->freq_hz, d->bandwidth_hz);
    fprintf(expect, "beam %.17g %.17g %.17g\n", d->bmaj_deg, d->bmin_deg, d->bpa_deg);
    fprintf(expect, "bunit %s\n", d->bunit ? d->bunit : "JY/BEAM");
    fprintf(expect, "date %s\n", d->date_obs);
    for (int i = 0; i < d->n_extra; i++)
        fprintf(expect, "extra %s %.17g\n", d->extra[i].name, d->extra[i].value);
    const int pix[][2] = {{0, 0},  {NX - 1, NY - 1}, {32, 24}, {3, 10}, {4, 11},
                          {60, 5}, {7, 40},          {13, 29}, {63, 0}};
    for (size_t i = 0; i < sizeof pix / sizeof pix[0]; i++) {
        int x = pix[i][0], y = pix[i][1];
        fprintf(expect, "pixel %d %d %.9g\n", x, y, (double)img[y * NX + x]);
    }
}

static bool same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static void check_round_trip(const char *name, const ct_fits_image_desc *d, const float *img)
{
    char path[4096];
    join(path, sizeof path, out_dir, name);
    ct_err err;
    REQUIRE_OK(ct_fits_write_image(path, d, img, &err), err);
    CHECK(count_temps(out_dir) == 0, "no temporary file left");

    ct_fits_image_info info;
    float *back = NULL;
    REQUIRE_OK(ct_fits_read_image(path, &info, &back, &err), err);
    const ct_fits_image_desc *r = &info.desc;
    CHECK(r->nx == NX && r->ny == NY, "size %d x %d", r->nx, r->ny);
    CHECK(memcmp(back, img, sizeof(float) * NX * NY) == 0, "pixels identical bit for bit");
    CHECK(isnan(back[5 * NX + 60]) && isnan(back[40 * NX + 7]), "NaN stays NaN");
    CHECK(r->ra_deg == d->ra_deg && r->dec_deg == d->dec_deg, "ra %.17g dec %.17g", r->ra_deg,
          r->dec_deg);
    double c1 = d->crpix1 ? d->crpix1 : NX / 2 + 1, c2 = d->crpix2 ? d->crpix2 : NY / 2 + 1;
    CHECK(r->crpix1 == c1 && r->crpix2 == c2, "crpix %.17g %.17g", r->crpix1, r->crpix2);
    CHECK(r->cdelt_deg == d->cdelt_deg, "cdelt %.17g", r->cdelt_deg);
    CHECK(same_str(r->projection, d->projection), "projection %s", r->projection);
    CHECK(r->freq_hz == d->freq_hz && r->bandwidth_hz == d->bandwidth_hz, "freq %.17g bw %.17g",
          r->freq_hz, r->bandwidth_hz);
    CHECK(r->bmaj_deg == d->bmaj_deg && r->bmin_deg == d->bmin_deg && r->bpa_deg == d->bpa_deg,
          "beam %.17g %.17g %.17g", r->bmaj_deg, r->bmin_deg, r->bpa_deg);
    CHECK(same_str(r->bunit, d->bunit ? d->bunit : "JY/BEAM"), "bunit %s", r->bunit);
    CHECK(same_str(r->date_obs, d->date_obs), "date %s", r->date_obs ? r->date_obs : "(none)");
    CHECK(same_str(r->object, d->object), "object %s", r->object ? r->object : "(none)");
    CHECK(same_str(r->origin, d->origin ? d->origin : "contimg"), "origin %s",
          r->origin ? r->origin : "(none)");
    CHECK(strcmp(info.telescope, "DSA-110") == 0, "telescope %s", info.telescope);
    CHECK(!isnan(info.mjd_obs), "MJD-OBS written");
    CHECK(r->n_extra == d->n_extra, "%d extra keywords", r->n_extra);
    for (int i = 0; i < r->n_extra && i < d->n_extra; i++) {
        CHECK(strcmp(r->extra[i].name, d->extra[i].name) == 0, "extra name %s", r->extra[i].name);
        CHECK(r->extra[i].value == d->extra[i].value, "extra %s = %.17g", r->extra[i].name,
              r->extra[i].value);
        CHECK(same_str(r->extra[i].comment, d->extra[i].comment), "extra comment %s",
              r->extra[i].comment ? r->extra[i].comment : "(none)");
    }

    /* The descriptor read back writes the same file again (an overwrite). */
    char again[4100];
    join(again, 4096, out_dir, name);
    strcat(again, "2");
    CHECK_OK(ct_fits_write_image(again, r, back, &err), err);
    ct_fits_image_info info2;
    float *back2 = NULL;
    CHECK_OK(ct_fits_read_image(again, &info2, &back2, &err), err);
    CHECK(back2 && memcmp(back2, img, sizeof(float) * NX * NY) == 0, "rewritten pixels identical");
    CHECK(info2.desc.ra_deg == d->ra_deg && info2.desc.n_extra == d->n_extra, "rewritten header");
    free(back2);
    unlink(again);
    free(back);
    expect_image(name, d, img);
}

static void test_sin_round_trip(void)
{
    static float img[NX * NY];
    fill(img);
    ct_fits_image_desc d = sin_desc();
    check_round_trip("sin.fits", &d, img);
}

static void test_tan_round_trip(void)
{
    static float img[NX * NY];
    fill(img);
    img[24 * NX + 32] = 0.75f;
    img[29 * NX + 19] = 42.0f; /* the (0-based) reference pixel of the TAN image, rounded */
    ct_fits_image_desc d = tan_desc();
    check_round_trip("tan.fits", &d, img);
    /* Beam, object and extras were absent: they read back absent. */
    ct_fits_image_info info;
    float *back = NULL;
    char path[4096];
    join(path, sizeof path, out_dir, "tan.fits");
    ct_err err;
    REQUIRE_OK(ct_fits_read_image(path, &info, &back, &err), err);
    CHECK(info.desc.bmaj_deg == 0 && info.desc.object == NULL && info.desc.n_extra == 0,
          "optional keywords absent");
    free(back);
}

/* A slant SIN (PV2_1, PV2_2; gridkernel.h) reads back exactly; a plain one
 * reads back 0, 0; a slant on TAN, or a non-finite one, is refused. */
static void test_slant_round_trip(void)
{
    static float img[NX * NY];
    fill(img);
    ct_fits_image_desc d = sin_desc();
    d.pv2_1 = 1.295712378e-4;
    d.pv2_2 = -0.3212201413;
    char path[4096];
    join(path, sizeof path, out_dir, "slant.fits");
    ct_err err;
    REQUIRE_OK(ct_fits_write_image(path, &d, img, &err), err);
    ct_fits_image_info info;
    float *back = NULL;
    REQUIRE_OK(ct_fits_read_image(path, &info, &back, &err), err);
    CHECK(info.desc.pv2_1 == d.pv2_1 && info.desc.pv2_2 == d.pv2_2,
          "slant read back (%.17g, %.17g)", info.desc.pv2_1, info.desc.pv2_2);
    CHECK(info.desc.n_extra == d.n_extra, "PV2_i are WCS, not extra keywords (%d extras)",
          info.desc.n_extra);
    free(back);
    join(path, sizeof path, out_dir, "sin.fits");
    REQUIRE_OK(ct_fits_read_image(path, &info, &back, &err), err);
    CHECK(info.desc.pv2_1 == 0 && info.desc.pv2_2 == 0, "a plain SIN reads back no slant");
    free(back);
    ct_fits_image_desc t = tan_desc();
    t.pv2_2 = 0.3;
    join(path, sizeof path, out_dir, "tanslant.fits");
    CHECK(ct_fits_write_image(path, &t, img, &err) == CT_EINVAL, "a slant on TAN is refused");
    d.pv2_1 = NAN;
    CHECK(ct_fits_write_image(path, &d, img, &err) == CT_EINVAL, "a NaN slant is refused");
}

/* Names cfitsio would parse as extended syntax are plain file names here. */
static void test_odd_name(void)
{
    static float img[NX * NY];
    fill(img);
    ct_fits_image_desc d = sin_desc();
    char path[4096];
    join(path, sizeof path, out_dir, "odd[1].fits.gz");
    ct_err err;
    REQUIRE_OK(ct_fits_write_image(path, &d, img, &err), err);
    ct_fits_image_info info;
    float *back = NULL;
    CHECK_OK(ct_fits_read_image(path, &info, &back, &err), err);
    CHECK(back && memcmp(back, img, sizeof img) == 0, "pixels identical");
    free(back);
    FILE *fp = fopen(path, "rb");
    char head[7] = "";
    CHECK(fp && fread(head, 1, 6, fp) == 6 && memcmp(head, "SIMPLE", 6) == 0,
          "plain FITS, not compressed");
    if (fp)
        fclose(fp);
    unlink(path);
}

static void test_bad_descriptors(void)
{
    static float img[NX * NY];
    fill(img);
    char path[4096];
    join(path, sizeof path, out_dir, "bad.fits");
    unlink(path);
    static const ct_fits_keyword bad_name[] = {{"lower", 1, NULL}};
    static const ct_fits_keyword wcs_name[] = {{"CRVAL1", 1, NULL}};
    static const ct_fits_keyword long_name[] = {{"TOOLONGNAME", 1, NULL}};
    static const ct_fits_keyword nan_value[] = {{"RMS", NAN, NULL}};
    static const ct_fits_keyword dup[] = {{"RMS", 1, NULL}, {"RMS", 2, NULL}};
    for (int i = 0;; i++) {
        ct_fits_image_desc d = sin_desc();
        const char *what;
        switch (i) {
        case 0: d.nx = 0, what = "nx 0"; break;
        case 1: d.ny = -3, what = "ny < 0"; break;
        case 2: d.cdelt_deg = 0, what = "cdelt 0"; break;
        case 3: d.cdelt_deg = -1e-3, what = "cdelt < 0"; break;
        case 4: d.projection = "ARC", what = "projection ARC"; break;
        case 5: d.projection = "sin", what = "projection lower case"; break;
        case 6: d.ra_deg = NAN, what = "ra NaN"; break;
        case 7: d.dec_deg = NAN, what = "dec NaN"; break;
        case 8: d.dec_deg = 90.5, what = "dec > 90"; break;
        case 9: d.dec_deg = -91, what = "dec < -90"; break;
        case 10: d.ra_deg = INFINITY, what = "ra inf"; break;
        case 11: d.freq_hz = 0, what = "freq 0"; break;
        case 12: d.bandwidth_hz = -1, what = "bandwidth < 0"; break;
        case 13: d.bmin_deg = 0.01, what = "bmin > bmaj"; break;
        case 14: d.date_obs = "yesterday", what = "date not ISO"; break;
        case 15: d.date_obs = "2026-13-40T10:00:00", what = "date out of range"; break;
        case 16: d.extra = bad_name, d.n_extra = 1, what = "extra lower case"; break;
        case 17: d.extra = wcs_name, d.n_extra = 1, what = "extra WCS key"; break;
        case 18: d.extra = long_name, d.n_extra = 1, what = "extra name > 8"; break;
        case 19: d.extra = nan_value, d.n_extra = 1, what = "extra NaN"; break;
        case 20: d.extra = dup, d.n_extra = 2, what = "extra twice"; break;
        case 21: d.object = "line\nbreak", what = "object not printable"; break;
        case 22: d.crpix1 = NAN, what = "crpix NaN"; break;
        default: what = NULL;
        }
        if (what == NULL)
            break;
        ct_err err = {0};
        ct_code rc = ct_fits_write_image(path, &d, img, &err);
        CHECK(rc == CT_EINVAL, "%s: %s (%s)", what, ct_code_name(rc), err.msg);
        CHECK(strchr(err.msg, '\n') == NULL && err.msg[0], "%s: one-line message", what);
        CHECK(!exists(path), "%s: nothing created", what);
    }
    ct_err err;
    ct_fits_image_desc d = sin_desc();
    CHECK(ct_fits_write_image(path, NULL, img, &err) == CT_EINVAL, "no descriptor");
    CHECK(ct_fits_write_image(path, &d, NULL, &err) == CT_EINVAL, "no data");
    CHECK(!exists(path) && count_temps(out_dir) == 0, "nothing created");

    /* A refused write leaves an existing file alone. */
    REQUIRE_OK(ct_fits_write_image(path, &d, img, &err), err);
    struct stat before, after;
    REQUIRE(stat(path, &before) == 0, "stat");
    d.cdelt_deg = 0;
    CHECK(ct_fits_write_image(path, &d, img, &err) == CT_EINVAL, "refused");
    CHECK(stat(path, &after) == 0 && after.st_ino == before.st_ino &&
              after.st_size == before.st_size,
          "existing file untouched");
    unlink(path);
}

static void test_unwritable(void)
{
    static float img[NX * NY];
    fill(img);
    ct_fits_image_desc d = sin_desc();
    char path[4096], dir[4096];
    ct_err err = {0};

    join(path, sizeof path, out_dir, "no-such-dir/x.fits");
    ct_code rc = ct_fits_write_image(path, &d, img, &err);
    CHECK(rc == CT_EIO, "missing directory: %s (%s)", ct_code_name(rc), err.msg);
    CHECK(strchr(err.msg, '\n') == NULL && strstr(err.msg, "cfitsio") != NULL, "message: %s",
          err.msg);
    CHECK(!exists(path), "nothing at the path");

    /* Not a directory: fails even for root. */
    join(dir, sizeof dir, out_dir, "plainfile");
    FILE *fp = fopen(dir, "w");
    REQUIRE(fp != NULL, "create %s", dir);
    fclose(fp);
    join(path, sizeof path, dir, "x.fits");
    rc = ct_fits_write_image(path, &d, img, &err);
    CHECK(rc == CT_EIO, "parent is a file: %s (%s)", ct_code_name(rc), err.msg);
    unlink(dir);

    /* A read-only directory (not for root, whom permissions do not stop). */
    join(dir, sizeof dir, out_dir, "readonly");
    REQUIRE(mkdir(dir, 0700) == 0 || exists(dir), "mkdir %s", dir);
    chmod(dir, 0500);
    join(path, sizeof path, dir, "x.fits");
    if (geteuid() != 0) {
        rc = ct_fits_write_image(path, &d, img, &err);
        CHECK(rc == CT_EIO, "read-only directory: %s (%s)", ct_code_name(rc), err.msg);
    }
    CHECK(!exists(path) && count_temps(dir) == 0, "nothing left in the read-only directory");
    chmod(dir, 0700);
    rmdir(dir);
    CHECK(count_temps(out_dir) == 0, "no temporary file left");
}

static void test_read_errors(void)
{
    ct_fits_image_info info;
    float *data = (float *)&info; /* must be reset to NULL */
    ct_err err;
    char path[4096];
    join(path, sizeof path, out_dir, "missing.fits");
    CHECK(ct_fits_read_image(path, &info, &data, &err) == CT_ENOTFOUND, "missing: %s", err.msg);
    CHECK(data == NULL, "no data on failure");
    join(path, sizeof path, out_dir, "notfits.fits");
    FILE *fp = fopen(path, "w");
    REQUIRE(fp != NULL, "create");
    fputs("this is not a FITS file\n", fp);
    fclose(fp);
    ct_code rc = ct_fits_read_image(path, &info, &data, &err);
    /* What the file holds, not trouble reaching it: refused as invalid (corrupt input),
     * not retried as transient. */
    CHECK(rc == CT_EINVAL && data == NULL, "not FITS: %s (%s)", ct_code_name(rc), err.msg);
    CHECK(strchr(err.msg, '\n') == NULL, "one line");
    unlink(path);

    /* A header that declares far more pixels than the file holds: corrupt input, found
     * before any room is made for them (it used to ask for 160 GB and fail as out of
     * memory, which is retried). */
    static float img[NX * NY];
    fill(img);
    ct_fits_image_desc d = sin_desc();
    join(path, sizeof path, out_dir, "naxis.fits");
    REQUIRE(ct_fits_write_image(path, &d, img, &err) == CT_OK, "write: %s", err.msg);
    fp = fopen(path, "r+b");
    REQUIRE(fp != NULL, "reopen");
    char card[81];
    for (long at = 0; fread(card, 1, 80, fp) == 80; at += 80) {
        if (strncmp(card, "NAXIS1  =", 9) == 0 || strncmp(card, "NAXIS2  =", 9) == 0) {
            char key[9];
            memcpy(key, card, 8);
            key[8] = '\0';
            snprintf(card, sizeof card, "%-8s= %20d%50s", key, 200000, "");
            fseek(fp, at, SEEK_SET);
            fwrite(card, 1, 80, fp);
            fseek(fp, at + 80, SEEK_SET);
        }
    }
    fclose(fp);
    rc = ct_fits_read_image(path, &info, &data, &err);
    CHECK(rc == CT_EINVAL && err.category == CT_CAT_CORRUPT_INPUT && data == NULL &&
              strstr(err.msg, "200000 x 200000") != NULL,
          "a NAXIS past the file's end: %s (%s)", ct_code_name(rc), err.msg);
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    ct_err err;
    if (ct_remove_tree(out_dir, &err) != CT_OK || ct_mkdir_p(out_dir, 0755, &err) != CT_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    char path[4096];
    join(path, sizeof path, out_dir, "expect.txt");
    if ((expect = fopen(path, "w")) == NULL) {
        perror(path);
        return 2;
    }
    RUN(test_sin_round_trip);
    RUN(test_tan_round_trip);
    RUN(test_slant_round_trip);
    RUN(test_odd_name);
    RUN(test_bad_descriptors);
    RUN(test_unwritable);
    RUN(test_read_errors);
    fclose(expect);
    return tu_finish();
}
