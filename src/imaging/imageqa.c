/* imageqa.c -- see imageqa.h. */
#define _GNU_SOURCE /* M_PI */
#include "imageqa.h"
#include "select.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define MAD_TO_SIGMA 1.4826 /* 1 / Phi^-1(3/4): a Gaussian's sigma over its MAD */

/* The statistic's values: the finite pixels x of an image, or |x - centre|. */
typedef struct pixel_values {
    const double *x;
    size_t n;        /* pixels */
    size_t n_finite; /* of which finite: the values */
    int absdev;
    double centre;
} pixel_values;

static double value_of(const pixel_values *v, double x)
{
    return v->absdev ? fabs(x - v->centre) : x;
}

/* The median of a[0..n_a-1] given that the values' median ranks k_hi and
 * (for an even count) k_hi - 1 fall at ranks k_hi, k_hi - 1 of a. */
static double median_at(double *a, size_t n_a, size_t k_hi, int even)
{
    double upper = ct_select_kth(a, n_a, k_hi);
    if (!even)
        return upper;
    /* a[0..k_hi-1] are smaller: the lower middle value is their largest. */
    double lower = a[0];
    for (size_t i = 1; i < k_hi; i++)
        lower = fmax(lower, a[i]);
    return 0.5 * (lower + upper);
}

double ct_median_inplace(double *a, size_t n)
{
    return median_at(a, n, n / 2, n % 2 == 0);
}

/* Below this many values the scratch copy is cheap enough. */
#define BRACKET_MIN_VALUES ((size_t)1 << 16)
#define BRACKET_SAMPLE     ((size_t)1 << 15)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One pass of the fast path: counts the values below lo and gathers those
 * in [lo, hi] into buf, without data-dependent branches (half the values
 * fall either way, so a branch would mispredict at random). buf has room
 * for cap + 1 values, the last a slot for the unconditional store. Returns 0
 * when more than cap values fall in [lo, hi]. absdev is a constant at each
 * call, so the compiler makes two loops of this. */
static inline int gather(const pixel_values *v, int absdev, double lo, double hi, double *buf,
                         size_t cap, size_t *below, size_t *n_buf)
{
    size_t nb = 0, n_in = 0;
    for (size_t p = 0; p < v->n; p++) {
        double x = v->x[p];
        double y = absdev ? fabs(x - v->centre) : x;
        /* x - x is 0 only for finite x: NaN and infinite pixels count
         * nowhere. */
        int finite = (x - x) == 0.0;
        nb += (size_t)(finite & (y < lo));
        buf[n_in] = y;
        n_in += (size_t)(finite & (y >= lo) & (y <= hi));
        if (n_in > cap)
            return 0;
    }
    *below = nb;
    *n_buf = n_in;
    return 1;
}

/* The fast path: a sample of the values brackets the median ranks between
 * two values lo and hi (six standard deviations of the sample's rank either
 * side); one pass counts the values below lo and gathers those in [lo, hi],
 * typically a few per cent, and the median is selected among them. Returns
 * 0 when the bracket missed or held too many values (ties), and the caller
 * falls back to selecting in a full copy: the result is exact either way. */
static int median_bracketed(const pixel_values *v, double *out)
{
    size_t m = v->n_finite, k_hi = m / 2, k_lo = (m - 1) / 2;
    double *sample = malloc(BRACKET_SAMPLE * sizeof *sample);
    if (!sample)
        return 0;
    size_t got = 0;
    uint64_t state = 0x2545f4914f6cdd1dULL ^ (uint64_t)m;
    for (size_t tries = 0; tries < 8 * BRACKET_SAMPLE && got < BRACKET_SAMPLE; tries++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        double x = v->x[(size_t)((state >> 11) % (uint64_t)v->n)];
        if (isfinite(x))
            sample[got++] = value_of(v, x);
    }
    if (got < BRACKET_SAMPLE / 2) {
        free(sample);
        return 0;
    }
    qsort(sample, got, sizeof *sample, cmp_double);
    double r = (double)k_lo / (double)m * (double)got, margin = 3.0 * sqrt((double)got) + 16.0;
    double lo = r - margin < 0 ? -INFINITY : sample[(size_t)(r - margin)];
    double hi = r + margin >= (double)(got - 1) ? INFINITY : sample[(size_t)(r + margin)];
    free(sample);
    /* Room for twice the expected share. */
    size_t cap = (size_t)(2.0 * (2.0 * margin / (double)got) * (double)m) + 4096;
    double *buf = malloc((cap + 1) * sizeof *buf);
    if (!buf)
        return 0;
    size_t below = 0, n_buf = 0;
    int fits = v->absdev ? gather(v, 1, lo, hi, buf, cap, &below, &n_buf)
                         : gather(v, 0, lo, hi, buf, cap, &below, &n_buf);
    if (!fits) {
        free(buf);
        return 0;
    }
    int ok = below <= k_lo && k_hi < below + n_buf;
    if (ok)
        *out = median_at(buf, n_buf, k_hi - below, m % 2 == 0);
    free(buf);
    return ok;
}

/* The median of the values (n_finite >= 1). */
static ct_code median_of(const pixel_values *v, double *out, ct_err *err)
{
    if (v->n_finite >= BRACKET_MIN_VALUES && median_bracketed(v, out))
        return CT_OK;
    double *scratch = malloc(v->n_finite * sizeof *scratch);
    if (!scratch)
        return ct_fail(err, CT_ENOMEM, "image QA: no memory for %zu pixels", v->n_finite);
    size_t m = 0;
    for (size_t p = 0; p < v->n; p++)
        if (isfinite(v->x[p]))
            scratch[m++] = value_of(v, v->x[p]);
    *out = ct_median_inplace(scratch, m);
    free(scratch);
    return CT_OK;
}

ct_code ct_image_qa_measure(const double *restored, const double *residual, int nx, int ny,
                            const ct_beam *beam, size_t n_components, ct_image_qa *out, ct_err *err)
{
    if (nx < 1 || ny < 1)
        return ct_fail(err, CT_EINVAL, "image QA: image size %d x %d", nx, ny);
    if (!restored || !residual || !out)
        return ct_fail(err, CT_EINVAL, "image QA: no image");
    if (!beam)
        return ct_fail(err, CT_EINVAL, "image QA: no restoring beam");
    if (!(beam->bmaj > 0 && beam->bmin > 0) || !isfinite(beam->bmaj) || !isfinite(beam->bmin) ||
        !isfinite(beam->bpa))
        return ct_fail(err, CT_EINVAL, "image QA: restoring beam %g x %g rad, pa %g", beam->bmaj,
                       beam->bmin, beam->bpa);
    size_t n = (size_t)nx * (size_t)ny;

    ct_image_qa q = {0};
    size_t peak_at = 0;
    int have_peak = 0;
    double sum = 0;
    for (size_t p = 0; p < n; p++) {
        if (isfinite(restored[p]) && (!have_peak || restored[p] > q.peak_jy)) {
            q.peak_jy = restored[p];
            peak_at = p;
            have_peak = 1;
        }
        if (isfinite(residual[p])) {
            q.n_finite++;
            sum += residual[p];
        }
    }
    if (!have_peak)
        return ct_fail(err, CT_EINVAL, "image QA: the restored image has no finite pixel");
    if (q.n_finite == 0)
        return ct_fail(err, CT_EINVAL, "image QA: the residual image has no finite pixel");
    q.n_blank = n - q.n_finite;
    q.peak_x = (int)(peak_at % (size_t)nx);
    q.peak_y = (int)(peak_at / (size_t)nx);

    q.mean_jy = sum / (double)q.n_finite;
    pixel_values v = {residual, n, q.n_finite, 0, 0.0};
    double med, mad;
    ct_code rc = median_of(&v, &med, err);
    if (rc != CT_OK)
        return rc;
    v.absdev = 1;
    v.centre = med;
    if ((rc = median_of(&v, &mad, err)) != CT_OK)
        return rc;
    q.rms_jy = MAD_TO_SIGMA * mad;

    q.dynamic_range = q.rms_jy > 0 ? q.peak_jy / q.rms_jy : 0.0;
    q.bmaj_arcsec = beam->bmaj * (180.0 / M_PI) * 3600.0;
    q.bmin_arcsec = beam->bmin * (180.0 / M_PI) * 3600.0;
    q.bpa_deg = beam->bpa * (180.0 / M_PI);
    q.n_components = n_components;
    *out = q;
    return CT_OK;
}
