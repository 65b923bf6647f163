/*
 * visset.h -- one UVH5 file's data as Stokes I imaging rows, phased to one fixed ICRS centre.
 *
 * Owns: reading a DSA-110 drift-scan file (sky.h: fringe-stopped at apparent hour angle
 * ha_phase_center, default 0, and declination phase_center_dec, both extra keywords) in
 * bounded chunks of baseline-times, forming Stokes I with natural weights, and re-phasing
 * every row from the file's moving meridian centre to one fixed image centre, with uvw
 * in wavelengths along ICRS axes. It does not own weighting schemes, gridding or imaging.
 *
 * Convention (sky.h, gridder.h): with (u, v, w) in wavelengths and (l, m, n) a source's
 * direction cosines from the centre (l east, m north, standard ICRS tangent-plane
 * coordinates of the source's catalogue position about the centre's),
 *     V = S exp(+2 pi i (u l + v m + w (n - 1))).
 *
 * Re-phasing. Let b be the baseline (metres) and s_hat a source's apparent direction, both
 * as vectors; the file holds V_old = S exp(2 pi i (b.s_hat - w_old) / lambda) with
 * w_old = b.s_old, s_old the apparent direction (HA 0, dec_pc) at the row's time. Per
 * integration time t (cached, not per baseline):
 *   1. b from the stored uvw: (u, v, w) are b's components along east, north and s_old of
 *      the (H, dec) frame of date, so b = u e + v n + w s_old in a local equatorial frame
 *      whose x axis is the meridian; rotated about the pole by the local Earth rotation
 *      angle (ERFA eraApco13's eral) it is in CIRS, and by the transpose of the
 *      bias-precession-nutation matrix (its bpn) in GCRS, i.e. ICRS axes.
 *   2. The new phase direction p: the centre's apparent (CIRS: light deflection and
 *      annual + diurnal aberration, eraAtciq) direction at t, back in ICRS axes by bpn^T.
 *      A source at the centre's catalogue position then lands at l = m = 0 at every t.
 *   3. V_new = V_old exp(+2 pi i (w_old - w_new)), w_new = b.p (both in wavelengths of the
 *      row's channel), which leaves V_new = S exp(2 pi i b.(s_hat - p) / lambda).
 *   4. u and v: b along E = k R e_c and N = k R n_c, where e_c, n_c are east and north at
 *      the centre's ICRS position c, R the smallest rotation taking c to p, and
 *      k = 1 - c.beta (beta: the observer's barycentric velocity over c). Why: aberration
 *      is, to first order, that rotation (a shift of ~20 arcsec) plus a scale of the sky
 *      around c by 1 - c.beta (up to 1e-4); absorbing the scale into u and v puts a
 *      source at its ICRS offset (l, m), not at (1 - c.beta)(l, m), so what is left is
 *      second order: |b|/lambda * theta^2 * |beta| cycles (theta the offset from centre;
 *      3e-4 cycle for 12000 wavelengths at 1 degree), not |b|/lambda * theta * |beta|.
 *      w stays b.p, which step 3 needs; the w-term's error is second order as well.
 * Polar motion and UT1 - UTC are taken as 0 (neither is in the files): DUT1 < 0.9 s moves
 * the whole sky by < 14 arcsec of hour angle for both the data's centre and ours alike
 * (the simulator and the pointing use the same assumption); polar motion (< 0.5 arcsec)
 * tilts the baseline frame by as much. No refraction.
 *
 * Stokes I and weights: the variance of a polarization sample is taken as 1 / nsamples
 * (arbitrary units). With XX and YY both usable, I = (XX + YY) / 2 and the natural weight
 * is 1 / var(I) = 4 / (1/n_xx + 1/n_yy); with one usable, I = that pol (exact for an
 * unpolarized sky; a linearly polarized source leaks its +-Q) and the weight is its
 * nsamples. A sample is unusable when flagged, when its nsamples <= 0 (both counted in
 * n_flagged) or when its data or nsamples are NaN/Inf (counted in n_nonfinite). Counts are
 * per polarization sample of the XX/YY pair on cross-correlations; XY/YX are ignored.
 *
 * Rows come in file order: blt ascending, then channel in file order; autocorrelation
 * rows (n_autos_dropped counts their blt-channels) and rows with no usable pol are left
 * out. Every row is a function of its own blt and channel alone, so reading consecutive
 * ranges gives, concatenated, bit for bit the rows of reading their union.
 *
 * Memory: the output (20 bytes a row, 24 bytes a baseline-time) plus CT_VISSET_CHUNK_BLTS blts
 * of file data.
 */
#ifndef CONTIMG_VISSET_H
#define CONTIMG_VISSET_H

#include "error.h"
#include "uvh5.h"

#include <complex.h>
#include <stddef.h>
#include <stdint.h>

/* Baseline-times read from the file at a time. */
#define CT_VISSET_CHUNK_BLTS 256

typedef struct ct_vis_centre {
    double ra_rad, dec_rad; /* ICRS */
    double jd_mid;          /* UTC Julian date */
} ct_vis_centre;

/* The pointing at mid-observation: the file's phase centre (apparent HA ha_phase_center,
 * default 0, at phase_center_dec) at the midpoint of the file's time range, converted to
 * ICRS by ct_hadec_to_icrs with UT1 - UTC = 0, from the file's site. CT_EINVAL when the
 * header lacks a usable phase_center_dec or has no valid times. */
ct_code ct_vis_centre_of(const ct_uvh5_header *h, ct_vis_centre *out, ct_err *err);

/* Where the dishes point at each of the file's distinct times: a drift scan's
 * pointing (the phase centre, apparent HA 0 at phase_center_dec) moves east
 * across the sky with time. jd[k] ascending (UTC Julian dates), and the
 * pointing's offset from the centre c in the image's tangent plane: l[k]
 * east, m[k] north (direction cosines, SIN projection, ICRS). */
typedef struct ct_vis_pointing {
    size_t n;
    double *jd, *l, *m;
} ct_vis_pointing;

ct_code ct_vis_pointings(const ct_uvh5_header *h, const ct_vis_centre *c, ct_vis_pointing *out,
                         ct_err *err);
void ct_vis_pointing_free(ct_vis_pointing *p);
/* The index k with jd[k] == jd exactly, or -1. */
long ct_vis_pointing_index(const ct_vis_pointing *p, double jd);

/* Rows as a baseline-time and a channel: a row's uvw in wavelengths is its baseline-time's
 * (metres) times its channel's frequency / c, the one product ct_visset_uvw forms (and the
 * imager's ct_imager_rows takes as it is). Why: 20 bytes a row instead of 68 -- the rows are
 * most of the memory of a whole observation (5.7e7 after DSA-110's uv cut). */
typedef struct ct_visset {
    size_t n;                        /* rows kept */
    uint32_t *blt;                   /* n: its baseline-time, index into blt_uvw */
    int *chan;                       /* n: its channel (index into the header's freq_array) */
    float complex *vis;              /* n: Stokes I, Jy, phased to the centre (formed in
                                        double, rounded once: the file's data are float32) */
    float *weight;                   /* n: natural weight, > 0 */
    size_t blt_start, nblt;          /* the file's baseline-times [blt_start, +nblt) read */
    double *blt_uvw;                 /* nblt x 3: metres, relative to the centre, ICRS axes
                                        (u and v with the aberration scale, see above) */
    double *chan_per_m;              /* the header's Nfreqs: frequency / c (1 / metres) */
    size_t n_flagged;                /* pol samples dropped: flagged or nsamples <= 0 */
    size_t n_nonfinite;              /* pol samples dropped: NaN/Inf data or nsamples */
    size_t n_autos_dropped;          /* autocorrelation blt-channels left out */
    size_t n_uv_cut;                 /* rows left out below min_uv_lambda */
    double freq_min_hz, freq_max_hz; /* of the file's channels (centres) */
    double bandwidth_hz;             /* sum over channels of |channel_width| */
} ct_visset;

/* Row k's uvw in wavelengths. */
static inline void ct_visset_uvw(const ct_visset *v, size_t k, double uvw[3])
{
    const double *b = v->blt_uvw + 3 * (size_t)v->blt[k], s = v->chan_per_m[v->chan[k]];
    uvw[0] = b[0] * s;
    uvw[1] = b[1] * s;
    uvw[2] = b[2] * s;
}

/* Frees the arrays and zeroes *v; safe on a zeroed visset and on NULL. */
void ct_visset_free(ct_visset *v);

/*
 * Reads baseline-times [blt_start, blt_start + n_blt) of the open file f (n_blt
 * (size_t)-1: to the end) into *out (overwritten; free it with ct_visset_free), phased to
 * centre *c. Rows shorter than min_uv_lambda (sqrt(u^2 + v^2) < min_uv_lambda, the very
 * test of weighting.h's ct_weight_kept; 0 keeps all) are left out as they are read: an
 * imager that cuts them anyway then never holds them (a third of a full DSA-110
 * observation below 1000 wavelengths). A range with no usable data gives n == 0 and
 * CT_OK. CT_EINVAL for a range outside the file, a file without XX/YY or
 * phase_center_dec, or a negative or non-finite cut; CT_ENOMEM, CT_EIO when the data
 * cannot be read; *out is then empty.
 */
ct_code ct_visset_read(ct_uvh5_file *f, size_t blt_start, size_t n_blt, const ct_vis_centre *c,
                       double min_uv_lambda, ct_visset *out, ct_err *err);

#endif
