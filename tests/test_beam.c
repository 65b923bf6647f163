/*
 * test_beam.c -- the primary beam: the radial table against direct
 * evaluation, the half-power width against the analytic Airy FWHM, the
 * pblimit mask, a weighted wideband beam summed by hand, bad input.
 */
#define _GNU_SOURCE /* M_PI, j1() */
#include "beam.h"
#include "sky.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A small deterministic generator: uniform in [0, 1). */
static double uniform(unsigned long long *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*state >> 11) / 9007199254740992.0;
}

/* The Airy power written out here, independently of sky.c. */
static double airy(double sin_theta, double freq_hz)
{
    double x = M_PI * 4.65 * sin_theta * freq_hz / 299792458.0;
    if (x == 0)
        return 1.0;
    double a = 2.0 * j1(x) / x;
    return a * a;
}

#define NF 8

/* Every pixel of a wideband beam against ct_pb_value: 1e-6 relative where
 * pb >= 0.01 (main lobe and first sidelobe), and the stated 2.6e-10 absolute
 * bound everywhere, for a field out to the second sidelobe and one reaching
 * almost to the horizon. */
static void test_table_accuracy(void)
{
    double freq[NF], wt[NF];
    unsigned long long s = 7;
    for (int f = 0; f < NF; f++) {
        freq[f] = 1.311e9 + f * 187.5e6 / NF;
        wt[f] = 0.5 + uniform(&s);
    }
    const int n = 512;
    const double corners[2] = {0.12, 0.99}; /* sin(theta) at the corner */
    double *img = malloc((size_t)n * n * sizeof *img);
    double *cor = malloc((size_t)n * n * sizeof *cor);
    double *pb = malloc((size_t)n * n * sizeof *pb);
    REQUIRE(img && cor && pb, "no memory");
    for (size_t p = 0; p < (size_t)n * n; p++)
        img[p] = 1.0 + uniform(&s);
    for (int c = 0; c < 2; c++) {
        double cell = corners[c] / (sqrt(2.0) * (n / 2)) * 0.999;
        ct_err err;
        REQUIRE_OK(ct_pb_correct(img, n, n, cell, freq, wt, NF, 1e-3, cor, pb, &err), err);
        double worst_rel = 0, worst_abs = 0;
        size_t n_main = 0;
        for (int iy = 0; iy < n; iy++)
            for (int ix = 0; ix < n; ix++) {
                double l = (ix - n / 2) * cell, m = (iy - n / 2) * cell;
                size_t p = (size_t)iy * n + ix;
                double direct = ct_pb_value(sqrt(l * l + m * m), NF, freq, wt);
                double d = fabs(pb[p] - direct);
                worst_abs = fmax(worst_abs, d);
                if (direct >= 0.01) {
                    worst_rel = fmax(worst_rel, d / direct);
                    n_main++;
                }
            }
        printf("  corner sin(theta) %.2f: %zu pixels with pb >= 0.01, worst relative error %.2e "
               "there, worst absolute error %.2e\n",
               corners[c], n_main, worst_rel, worst_abs);
        CHECK(n_main > 1000, "too few pixels in the main lobe: %zu", n_main);
        CHECK(worst_rel < 1e-6, "relative error %g", worst_rel);
        CHECK(worst_abs < 2.6e-10, "absolute error %g", worst_abs);
        /* Random pixels: the corrected value is the image over the direct beam. */
        for (int k = 0; k < 1000; k++) {
            int ix = (int)(uniform(&s) * n), iy = (int)(uniform(&s) * n);
            size_t p = (size_t)iy * n + ix;
            double l = (ix - n / 2) * cell, m = (iy - n / 2) * cell;
            double direct = ct_pb_value(sqrt(l * l + m * m), NF, freq, wt);
            if (direct < 0.01)
                continue;
            CHECK(fabs(cor[p] - img[p] / direct) <= 1e-6 * fabs(img[p] / direct),
                  "pixel (%d, %d): %.15g, expected %.15g", ix, iy, cor[p], img[p] / direct);
        }
    }
    free(img);
    free(cor);
    free(pb);
}

/* The half-power radius at 1.4 GHz: FWHM = 1.029 lambda / D (the Airy
 * pattern's 2 x 1.6163 / pi), to 0.1 %; and the image's pixels fall on the
 * right side of it. */
static void test_fwhm(void)
{
    double f = 1.4e9, lo = 0, hi = 3.8317 / (M_PI * 4.65 * f / 299792458.0); /* first null */
    for (int k = 0; k < 200; k++) {
        double mid = 0.5 * (lo + hi);
        if (ct_pb_value(mid, 1, &f, NULL) > 0.5)
            lo = mid;
        else
            hi = mid;
    }
    double fwhm = 2 * asin(lo), expect = 1.029 * (299792458.0 / f) / CT_DISH_DIAMETER_M;
    printf("  FWHM at 1.4 GHz: %.6f deg, analytic 1.029 lambda/D = %.6f deg (%.4f %%)\n",
           fwhm * 180 / M_PI, expect * 180 / M_PI, 100 * (fwhm / expect - 1));
    CHECK(fabs(fwhm / expect - 1) < 1e-3, "FWHM %g rad, expected %g", fwhm, expect);

    const int n = 256;
    double cell = 1.5 * lo / (n / 2);
    double *img = calloc((size_t)n * n, sizeof *img), *cor = malloc((size_t)n * n * sizeof *cor);
    double *pb = malloc((size_t)n * n * sizeof *pb);
    REQUIRE(img && cor && pb, "no memory");
    ct_err err;
    REQUIRE_OK(ct_pb_correct(img, n, n, cell, &f, NULL, 1, 0.01, cor, pb, &err), err);
    int wrong = 0;
    for (int ix = 0; ix < n; ix++) {
        double r = fabs((ix - n / 2) * cell);
        if (fabs(r - lo) > 1e-9)
            wrong += (pb[(size_t)(n / 2) * n + ix] >= 0.5) != (r < lo);
    }
    CHECK(wrong == 0, "%d pixels on the wrong side of the half-power radius", wrong);
    CHECK(pb[(size_t)(n / 2) * n + n / 2] == 1.0, "centre pb %.17g",
          pb[(size_t)(n / 2) * n + n / 2]);
    free(img);
    free(cor);
    free(pb);
}

/* corrected is NaN exactly where pb < pblimit, image / pb elsewhere; and the
 * correction may run in place. */
static void test_mask(void)
{
    const int nx = 300, ny = 200;
    double freq[3] = {1.3e9, 1.4e9, 1.5e9}, wt[3] = {1, 1, 1};
    double *img = malloc((size_t)nx * ny * sizeof *img),
           *cor = malloc((size_t)nx * ny * sizeof *cor);
    double *pb = malloc((size_t)nx * ny * sizeof *pb);
    REQUIRE(img && cor && pb, "no memory");
    for (size_t p = 0; p < (size_t)nx * ny; p++)
        img[p] = 0.25 + (double)(p % 17);
    const double limits[3] = {0.2, 0.5, 0.9};
    for (int k = 0; k < 3; k++) {
        ct_err err;
        REQUIRE_OK(ct_pb_correct(img, nx, ny, 2e-4, freq, wt, 3, limits[k], cor, pb, &err), err);
        size_t bad = 0, blank = 0;
        for (size_t p = 0; p < (size_t)nx * ny; p++) {
            if (pb[p] < limits[k]) {
                bad += !isnan(cor[p]);
                blank++;
            } else {
                bad += cor[p] != img[p] / pb[p];
            }
        }
        printf("  pblimit %.2f: %zu of %d pixels blanked\n", limits[k], blank, nx * ny);
        CHECK(bad == 0, "pblimit %g: %zu pixels wrongly masked or corrected", limits[k], bad);
        CHECK(blank > 0 && blank < (size_t)nx * ny, "pblimit %g: %zu blanked", limits[k], blank);
    }
    /* In place, without pb_out: the same result. */
    double *copy = malloc((size_t)nx * ny * sizeof *copy);
    REQUIRE(copy, "no memory");
    memcpy(copy, img, (size_t)nx * ny * sizeof *copy);
    ct_err err;
    REQUIRE_OK(ct_pb_correct(copy, nx, ny, 2e-4, freq, wt, 3, limits[2], copy, NULL, &err), err);
    CHECK(memcmp(copy, cor, (size_t)nx * ny * sizeof *copy) == 0, "in place differs");
    free(copy);
    free(img);
    free(cor);
    free(pb);
}

/* A weighted wideband beam against the sum written out by hand; one
 * frequency is the plain Airy power; zero-weight channels drop out. */
static void test_wideband_hand_sum(void)
{
    double freq[3] = {1.31e9, 1.405e9, 1.499e9}, wt[3] = {1.0, 2.0, 3.0};
    for (int k = 0; k <= 20; k++) {
        double st = k * 0.004;
        double hand =
            (1.0 * airy(st, 1.31e9) + 2.0 * airy(st, 1.405e9) + 3.0 * airy(st, 1.499e9)) / 6.0;
        double got = ct_pb_value(st, 3, freq, wt);
        CHECK(fabs(got - hand) <= 1e-14, "sin(theta) %g: %.17g, by hand %.17g", st, got, hand);
        CHECK(ct_pb_value(st, 1, freq + 1, wt + 1) ==
                  ct_airy_power(st, 1.405e9, CT_DISH_DIAMETER_M),
              "one frequency is not the Airy power at %g", st);
        double wz[3] = {0, 1, 0};
        CHECK(fabs(ct_pb_value(st, 3, freq, wz) - airy(st, 1.405e9)) <= 1e-15,
              "zero weights do not drop out at %g", st);
    }
    /* Through the image: the pixel 40 columns east of the centre. */
    const int n = 128;
    double cell = 5e-4, img[128 * 128], cor[128 * 128], pb[128 * 128];
    for (int p = 0; p < n * n; p++)
        img[p] = 1.0;
    ct_err err;
    REQUIRE_OK(ct_pb_correct(img, n, n, cell, freq, wt, 3, 1e-3, cor, pb, &err), err);
    double st = 40 * cell;
    double hand =
        (1.0 * airy(st, 1.31e9) + 2.0 * airy(st, 1.405e9) + 3.0 * airy(st, 1.499e9)) / 6.0;
    double got = pb[(size_t)(n / 2) * n + n / 2 + 40];
    CHECK(fabs(got - hand) <= 1e-6 * hand, "pixel: %.12g, by hand %.12g", got, hand);
    CHECK(fabs(cor[(size_t)(n / 2) * n + n / 2 + 40] - 1.0 / hand) <= 1e-6 / hand,
          "corrected %.12g", cor[(size_t)(n / 2) * n + n / 2 + 40]);
}

/* Each refusal, leaving the outputs untouched. */
static void test_refusals(void)
{
    double img[16] = {0}, cor[16], pb[16], f = 1.4e9, w = 1.0;
    for (int k = 0; k < 16; k++)
        cor[k] = pb[k] = -7.0;
    ct_err err;
#define REFUSED(call, what)                                                                        \
    CHECK((call) == CT_EINVAL, "%s accepted", what);                                               \
    CHECK(cor[0] == -7.0 && pb[0] == -7.0 && cor[15] == -7.0, "%s wrote output", what)
    REFUSED(ct_pb_correct(img, 4, 4, 1e-3, &f, &w, 1, 0.0, cor, pb, &err), "pblimit 0");
    REFUSED(ct_pb_correct(img, 4, 4, 1e-3, &f, &w, 1, -0.1, cor, pb, &err), "pblimit -0.1");
    REFUSED(ct_pb_correct(img, 4, 4, 1e-3, &f, &w, 1, 1.01, cor, pb, &err), "pblimit 1.01");
    REFUSED(ct_pb_correct(img, 4, 4, 1e-3, &f, &w, 1, NAN, cor, pb, &err), "pblimit NaN");
    REFUSED(ct_pb_correct(img, 0, 4, 1e-3, &f, &w, 1, 0.1, cor, pb, &err), "nx 0");
    REFUSED(ct_pb_correct(img, 4, -1, 1e-3, &f, &w, 1, 0.1, cor, pb, &err), "ny -1");
    REFUSED(ct_pb_correct(img, 4, 4, 0.0, &f, &w, 1, 0.1, cor, pb, &err), "cell 0");
    REFUSED(ct_pb_correct(img, 4, 4, -1e-3, &f, &w, 1, 0.1, cor, pb, &err), "cell < 0");
    REFUSED(ct_pb_correct(img, 4, 4, NAN, &f, &w, 1, 0.1, cor, pb, &err), "cell NaN");
    REFUSED(ct_pb_correct(img, 4, 4, 1e-3, &f, &w, 0, 0.1, cor, pb, &err), "no frequency");
    REFUSED(ct_pb_correct(img, 4, 4, 1e-3, NULL, &w, 1, 0.1, cor, pb, &err), "NULL frequencies");
    double fbad[3] = {0.0, -1e9, NAN};
    for (int k = 0; k < 3; k++) {
        REFUSED(ct_pb_correct(img, 4, 4, 1e-3, &fbad[k], &w, 1, 0.1, cor, pb, &err),
                "bad frequency");
    }
    double f2[2] = {1.3e9, 1.4e9}, wzero[2] = {0, 0}, wneg[2] = {2, -1}, wnan[2] = {1, NAN};
    REFUSED(ct_pb_correct(img, 4, 4, 1e-3, f2, wzero, 2, 0.1, cor, pb, &err), "weights sum 0");
    REFUSED(ct_pb_correct(img, 4, 4, 1e-3, f2, wneg, 2, 0.1, cor, pb, &err), "negative weight");
    REFUSED(ct_pb_correct(img, 4, 4, 1e-3, f2, wnan, 2, 0.1, cor, pb, &err), "NaN weight");
    /* Corner at (2 cell)^2 * 2: 0.5 at cell 0.5, 1 exactly at cell sqrt(1/8). */
    REFUSED(ct_pb_correct(img, 4, 4, sqrt(0.125), &f, &w, 1, 0.1, cor, pb, &err), "horizon");
    REFUSED(ct_pb_correct(img, 4, 4, 0.6, &f, &w, 1, 0.1, cor, pb, &err), "beyond horizon");
    double fhuge = 1e16;
    REFUSED(ct_pb_correct(img, 4, 4, 0.3, &fhuge, &w, 1, 0.1, cor, pb, &err), "huge table");
#undef REFUSED
    CHECK_OK(ct_pb_correct(img, 4, 4, 0.3, &f, &w, 1, 1e-3, cor, pb, &err), err);
}

/* A 4800 x 4800 image with 48 channels, in place: the time, for the report. */
static void test_large_image_time(void)
{
    const int n = 4800;
    double freq[48], *img = malloc((size_t)n * n * sizeof *img);
    REQUIRE(img, "no memory");
    for (int f = 0; f < 48; f++)
        freq[f] = 1.311e9 + f * 3.9e6;
    for (size_t p = 0; p < (size_t)n * n; p++)
        img[p] = 1.0;
    struct timespec t0, t1;
    ct_err err;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_OK(
        ct_pb_correct(img, n, n, 1.5 / 3600 * M_PI / 180, freq, NULL, 48, 0.05, img, NULL, &err),
        err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("  4800 x 4800, 48 channels: %.3f s\n", sec);
    CHECK(sec < 10.0, "took %g s", sec);
    free(img);
}

int main(void)
{
    RUN(test_table_accuracy);
    RUN(test_fwhm);
    RUN(test_mask);
    RUN(test_wideband_hand_sum);
    RUN(test_refusals);
    RUN(test_large_image_time);
    return tu_finish();
}
