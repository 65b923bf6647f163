/*
 * test_imageqa.c -- the per-image QA figures: the robust rms of Gaussian
 * noise with and without strong sources, the peak and dynamic range, blank
 * pixels, the median of even and odd counts against a sort, the beam's
 * units, the time for a 4800 x 4800 image, bad input.
 */
#define _GNU_SOURCE /* M_PI */
#include "imageqa.h"
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

/* Standard normal by Box-Muller (one value per call, the other discarded). */
static double gauss(unsigned long long *state)
{
    double u = 1.0 - uniform(state), v = uniform(state);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

static const double ARCSEC = M_PI / 180.0 / 3600.0;

static ct_beam beam_arcsec(double bmaj, double bmin, double bpa_deg)
{
    ct_beam b = {bmaj * ARCSEC, bmin * ARCSEC, bpa_deg * M_PI / 180.0};
    return b;
}

/* 1e6 pixels of noise of sigma 1 mJy: rms within 1 %; 20 strong sources in
 * the residual's last rows move it by under 2 %; the peak, its pixel and
 * the dynamic range; the beam in arcsec and degrees. */
static void test_noise_and_peak(void)
{
    const int nx = 1000, ny = 1000;
    const double sigma = 1e-3;
    size_t n = (size_t)nx * ny;
    double *res = malloc(n * sizeof *res), *rest = malloc(n * sizeof *rest);
    REQUIRE(res && rest, "no memory");
    unsigned long long s = 42;
    for (size_t p = 0; p < n; p++)
        res[p] = sigma * gauss(&s);
    memcpy(rest, res, n * sizeof *rest);
    rest[(size_t)456 * nx + 123] += 5.0;
    ct_beam b = beam_arcsec(12.5, 8.0, 30.0);
    ct_image_qa q;
    ct_err err;
    REQUIRE_OK(ct_image_qa_measure(rest, res, nx, ny, &b, 17, &q, &err), err);
    printf("  noise: rms %.6g (sigma %.6g, %+.3f %%), mean %.3g\n", q.rms_jy, sigma,
           100 * (q.rms_jy / sigma - 1), q.mean_jy);
    CHECK(fabs(q.rms_jy / sigma - 1) < 0.01, "rms %g, sigma %g", q.rms_jy, sigma);
    CHECK(fabs(q.mean_jy) < 5 * sigma / sqrt((double)n), "mean %g", q.mean_jy);
    CHECK(q.peak_x == 123 && q.peak_y == 456, "peak at (%d, %d)", q.peak_x, q.peak_y);
    CHECK(q.peak_jy == rest[(size_t)456 * nx + 123], "peak %g", q.peak_jy);
    CHECK(q.dynamic_range == q.peak_jy / q.rms_jy, "DR %g", q.dynamic_range);
    CHECK(q.dynamic_range > 4500 && q.dynamic_range < 5500, "DR %g", q.dynamic_range);
    CHECK(q.n_finite == n && q.n_blank == 0, "%zu finite, %zu blank", q.n_finite, q.n_blank);
    CHECK(q.n_components == 17, "components %zu", q.n_components);
    CHECK(fabs(q.bmaj_arcsec - 12.5) < 1e-9 && fabs(q.bmin_arcsec - 8.0) < 1e-9 &&
              fabs(q.bpa_deg - 30.0) < 1e-9,
          "beam %g x %g arcsec, pa %g deg", q.bmaj_arcsec, q.bmin_arcsec, q.bpa_deg);

    double rms0 = q.rms_jy;
    for (int k = 0; k < 20; k++)
        res[n - 1 - (size_t)k * 997] += 10.0 + k; /* 10000 sigma and more */
    REQUIRE_OK(ct_image_qa_measure(rest, res, nx, ny, &b, 17, &q, &err), err);
    printf("  with 20 sources of 10-29 Jy: rms %.6g (%+.3f %% from without)\n", q.rms_jy,
           100 * (q.rms_jy / rms0 - 1));
    CHECK(fabs(q.rms_jy / rms0 - 1) < 0.02, "rms %g with sources, %g without", q.rms_jy, rms0);
    CHECK(fabs(q.rms_jy / sigma - 1) < 0.01, "rms %g, sigma %g", q.rms_jy, sigma);

    /* Ties go to the lowest row-major index. */
    rest[(size_t)10 * nx + 900] = q.peak_jy;
    REQUIRE_OK(ct_image_qa_measure(rest, res, nx, ny, &b, 0, &q, &err), err);
    CHECK(q.peak_x == 900 && q.peak_y == 10, "tie went to (%d, %d)", q.peak_x, q.peak_y);
    free(res);
    free(rest);
}

/* NaN (and infinite) pixels are skipped and counted; a NaN where the peak
 * would be is not the peak. */
static void test_blank_pixels(void)
{
    const int nx = 400, ny = 300;
    size_t n = (size_t)nx * ny;
    double *img = malloc(n * sizeof *img);
    REQUIRE(img, "no memory");
    unsigned long long s = 3;
    for (size_t p = 0; p < n; p++)
        img[p] = gauss(&s);
    ct_beam b = beam_arcsec(10, 10, 0);
    ct_image_qa ref, q;
    ct_err err;
    /* Blank everything outside a disc (as the PB mask does), one pixel in the
     * middle, and make a corner pixel infinite. */
    size_t blank = 0;
    for (int iy = 0; iy < ny; iy++)
        for (int ix = 0; ix < nx; ix++) {
            double r2 = (ix - nx / 2.0) * (ix - nx / 2.0) + (iy - ny / 2.0) * (iy - ny / 2.0);
            if (r2 > 140.0 * 140.0) {
                img[(size_t)iy * nx + ix] = NAN;
                blank++;
            }
        }
    img[0] = INFINITY; /* already outside the disc */
    img[(size_t)(ny / 2) * nx + nx / 2] = NAN;
    blank++;
    /* The reference: the finite pixels packed into one row. */
    double *packed = malloc(n * sizeof *packed);
    REQUIRE(packed, "no memory");
    size_t m = 0;
    for (size_t p = 0; p < n; p++)
        if (isfinite(img[p]))
            packed[m++] = img[p];
    REQUIRE_OK(ct_image_qa_measure(img, img, nx, ny, &b, 0, &q, &err), err);
    REQUIRE_OK(ct_image_qa_measure(packed, packed, (int)m, 1, &b, 0, &ref, &err), err);
    printf("  %zu finite, %zu blank; rms %.6g\n", q.n_finite, q.n_blank, q.rms_jy);
    CHECK(q.n_finite == m && q.n_blank == n - m, "%zu finite, %zu blank", q.n_finite, q.n_blank);
    CHECK(q.n_blank == blank, "%zu blank, expected %zu", q.n_blank, blank);
    CHECK(q.rms_jy == ref.rms_jy && q.mean_jy == ref.mean_jy && q.peak_jy == ref.peak_jy,
          "rms %g vs %g, mean %g vs %g", q.rms_jy, ref.rms_jy, q.mean_jy, ref.mean_jy);
    CHECK(isfinite(q.peak_jy) && isfinite(q.rms_jy), "peak %g, rms %g", q.peak_jy, q.rms_jy);
    CHECK(fabs(q.rms_jy - 1) < 0.02, "rms %g", q.rms_jy);
    /* The peak's pixel is the finite maximum's. */
    size_t at = (size_t)q.peak_y * nx + (size_t)q.peak_x;
    CHECK(img[at] == q.peak_jy, "peak pixel holds %g, peak %g", img[at], q.peak_jy);
    free(img);
    free(packed);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median: odd counts the middle value, even counts the mean of the two
 * middle values; against qsort for many sizes, with and without repeats. */
static void test_median(void)
{
    double a4[4] = {4, 1, 3, 2}, a3[3] = {5, 1, 3}, a1[1] = {7}, a2[2] = {9, -1};
    CHECK(ct_median_inplace(a4, 4) == 2.5, "median of 1..4");
    CHECK(ct_median_inplace(a3, 3) == 3.0, "median of 1, 3, 5");
    CHECK(ct_median_inplace(a1, 1) == 7.0, "median of one");
    CHECK(ct_median_inplace(a2, 2) == 4.0, "median of two");
    unsigned long long s = 11;
    int bad = 0;
    for (size_t n = 1; n <= 300; n++)
        for (int repeats = 0; repeats < 2; repeats++) {
            double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
            if (!a || !b)
                abort();
            for (size_t i = 0; i < n; i++)
                a[i] = repeats ? floor(uniform(&s) * 4) : uniform(&s) - 0.5;
            memcpy(b, a, n * sizeof *b);
            qsort(b, n, sizeof *b, cmp_double);
            double expect = n % 2 ? b[n / 2] : 0.5 * (b[n / 2 - 1] + b[n / 2]);
            bad += ct_median_inplace(a, n) != expect;
            free(a);
            free(b);
        }
    CHECK(bad == 0, "%d medians differ from the sort's", bad);
    /* Sorted, reversed and constant inputs. */
    const size_t n = 100001;
    double *a = malloc(n * sizeof *a);
    REQUIRE(a, "no memory");
    for (size_t i = 0; i < n; i++)
        a[i] = (double)i;
    CHECK(ct_median_inplace(a, n) == 50000.0, "sorted");
    for (size_t i = 0; i < n; i++)
        a[i] = (double)(n - i);
    CHECK(ct_median_inplace(a, n - 1) == 50001.5, "reversed, even");
    for (size_t i = 0; i < n; i++)
        a[i] = 0.0;
    CHECK(ct_median_inplace(a, n) == 0.0, "constant");
    free(a);

    /* MAD by hand: median 3.5, deviations .5 .5 1.5 2.5 2.5 96.5, MAD 2. */
    double res[6] = {1, 2, 3, 4, 100, 6};
    ct_beam b = beam_arcsec(5, 5, 0);
    ct_image_qa q;
    ct_err err;
    REQUIRE_OK(ct_image_qa_measure(res, res, 3, 2, &b, 0, &q, &err), err);
    CHECK(fabs(q.rms_jy - 1.4826 * 2.0) < 1e-12, "rms %.17g", q.rms_jy);
    CHECK(q.peak_jy == 100 && q.peak_x == 1 && q.peak_y == 1, "peak %g at (%d, %d)", q.peak_jy,
          q.peak_x, q.peak_y);
    CHECK(fabs(q.mean_jy - 116.0 / 6) < 1e-12, "mean %g", q.mean_jy);
    /* A zero residual: rms 0, DR 0. */
    double zero[6] = {0};
    REQUIRE_OK(ct_image_qa_measure(res, zero, 3, 2, &b, 0, &q, &err), err);
    CHECK(q.rms_jy == 0 && q.dynamic_range == 0, "rms %g, DR %g", q.rms_jy, q.dynamic_range);
}

/* rms by the definition: copies, ct_median_inplace, 1.4826 MAD. */
static double reference_rms(const double *x, size_t n)
{
    double *a = malloc(n * sizeof *a);
    size_t m = 0;
    if (!a)
        abort();
    for (size_t p = 0; p < n; p++)
        if (isfinite(x[p]))
            a[m++] = x[p];
    double med = ct_median_inplace(a, m);
    m = 0;
    for (size_t p = 0; p < n; p++)
        if (isfinite(x[p]))
            a[m++] = fabs(x[p] - med);
    double mad = ct_median_inplace(a, m);
    free(a);
    return 1.4826 * mad;
}

/* Large images take the bracketed path (imageqa.c): its result must equal
 * the definition exactly, for even and odd counts, with blanks, with a
 * heavy tail, with many ties (bracket overflow) and for a constant image. */
static void test_bracketed_exact(void)
{
    const int nx = 700, ny = 500;
    size_t n = (size_t)nx * ny;
    double *x = malloc(n * sizeof *x);
    REQUIRE(x, "no memory");
    ct_beam b = beam_arcsec(10, 10, 0);
    unsigned long long s = 99;
    for (int kind = 0; kind < 5; kind++) {
        for (size_t p = 0; p < n; p++) {
            double g = gauss(&s);
            switch (kind) {
            case 0: x[p] = g; break;
            case 1: x[p] = p % 7 == 0 ? NAN : g; break;             /* blanks, odd count */
            case 2: x[p] = uniform(&s) < 0.01 ? 1e3 * g : g; break; /* heavy tail */
            case 3: x[p] = floor(2 * g); break;                     /* ties */
            default: x[p] = 0.5; break;                             /* constant */
            }
        }
        if (kind == 1)
            x[3] = NAN; /* make the count odd */
        ct_image_qa q;
        ct_err err;
        REQUIRE_OK(ct_image_qa_measure(x, x, nx, ny, &b, 0, &q, &err), err);
        double expect = reference_rms(x, n);
        CHECK(q.rms_jy == expect, "kind %d: rms %.17g, by definition %.17g (%zu finite)", kind,
              q.rms_jy, expect, q.n_finite);
    }
    free(x);
}

static void test_refusals(void)
{
    double img[4] = {1, 2, 3, 4}, nan4[4] = {NAN, NAN, NAN, NAN};
    ct_beam b = beam_arcsec(5, 5, 0), zero = {0, 0, 0}, nanb = {NAN, 1e-5, 0};
    ct_image_qa q;
    memset(&q, 0x5a, sizeof q);
    ct_image_qa before = q;
    ct_err err;
    CHECK(ct_image_qa_measure(img, img, 2, 2, NULL, 0, &q, &err) == CT_EINVAL, "NULL beam");
    CHECK(ct_image_qa_measure(img, img, 2, 2, &zero, 0, &q, &err) == CT_EINVAL, "zero beam");
    CHECK(ct_image_qa_measure(img, img, 2, 2, &nanb, 0, &q, &err) == CT_EINVAL, "NaN beam");
    CHECK(ct_image_qa_measure(img, img, 0, 2, &b, 0, &q, &err) == CT_EINVAL, "nx 0");
    CHECK(ct_image_qa_measure(img, img, 2, -3, &b, 0, &q, &err) == CT_EINVAL, "ny -3");
    CHECK(ct_image_qa_measure(NULL, img, 2, 2, &b, 0, &q, &err) == CT_EINVAL, "NULL restored");
    CHECK(ct_image_qa_measure(img, NULL, 2, 2, &b, 0, &q, &err) == CT_EINVAL, "NULL residual");
    CHECK(ct_image_qa_measure(nan4, img, 2, 2, &b, 0, &q, &err) == CT_EINVAL,
          "blank restored image accepted");
    CHECK(ct_image_qa_measure(img, nan4, 2, 2, &b, 0, &q, &err) == CT_EINVAL,
          "blank residual image accepted");
    CHECK(memcmp(&q, &before, sizeof q) == 0, "a refusal wrote *out");
    CHECK(err.code == CT_EINVAL && strstr(err.msg, "finite") != NULL, "message: %s", err.msg);
}

/* 4800 x 4800 (2.3e7 pixels) through the whole measurement: the time. */
static void test_large_image_time(void)
{
    const int n = 4800;
    size_t np = (size_t)n * n;
    double *img = malloc(np * sizeof *img);
    REQUIRE(img, "no memory");
    unsigned long long s = 5;
    for (size_t p = 0; p < np; p++)
        img[p] = uniform(&s) + uniform(&s) + uniform(&s) - 1.5;
    ct_beam b = beam_arcsec(12, 10, 45);
    ct_image_qa q;
    ct_err err;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_OK(ct_image_qa_measure(img, img, n, n, &b, 0, &q, &err), err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("  4800 x 4800: %.3f s (rms %.4f)\n", sec, q.rms_jy);
    /* Loose: sanitizer builds run several times slower. */
    CHECK(sec < 10.0, "took %g s", sec);
    free(img);
}

int main(void)
{
    RUN(test_noise_and_peak);
    RUN(test_blank_pixels);
    RUN(test_median);
    RUN(test_bracketed_exact);
    RUN(test_refusals);
    RUN(test_large_image_time);
    return tu_finish();
}
