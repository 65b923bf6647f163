/* mosaic.c -- see mosaic.h. */
#define _GNU_SOURCE
#include "mosaic.h"
#include "gridkernel.h"
#include "select.h"

#include "beam.h"
#include "fitsimage.h"
#include "mpiutil.h"
#include "sky.h"
#include "skyframe.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEG          (M_PI / 180.0)
#define MAD_TO_SIGMA 1.482602218505602 /* 1 / Phi^-1(3/4): sigma of a Gaussian from its MAD */
#define AGREE_RTOL   1e-6              /* inputs must agree in frequency and cell this closely */
#define BORDER_STEPS 64 /* samples along each edge of an input when finding its footprint */
/* The beam is tabulated in y = x^2, x = pi D f sin(theta) / c, at this step and
 * interpolated linearly. The Airy power (2 J1(x) / x)^2 is an entire function of y
 * (J1(x) / x is even in x) whose second derivative in y stays below 0.05, so the
 * error is below h^2 0.05 / 8 = 1e-7; and y needs no square root per pixel:
 * sin^2(theta) = l^2 + m^2. */
#define BEAM_STEP_Y 0.004

void ct_mosaic_opts_default(ct_mosaic_opts *o)
{
    memset(o, 0, sizeof *o);
    o->tile = CT_MOSAIC_TILE_DEFAULT;
    o->cutoff = CT_MOSAIC_CUTOFF;
    o->interp = CT_MOSAIC_BICUBIC;
    o->assemble_max_bytes = 4.0 * 1073741824.0;
}

static const char *const interp_names[] = {"bicubic", "bilinear", "area"};

const char *ct_mosaic_interp_name(ct_mosaic_interp interp)
{
    return (unsigned)interp < 3 ? interp_names[interp] : "?";
}

ct_code ct_mosaic_interp_parse(const char *name, ct_mosaic_interp *out)
{
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, interp_names[i]) == 0) {
            *out = (ct_mosaic_interp)i;
            return CT_OK;
        }
    return CT_EINVAL;
}

/* --- Geometry: every direction is a unit vector ------------------------------------ */

/* One input image: its header, projection and beam. */
typedef struct input {
    const char *path;
    ct_fits_image_info info;
    ct_imgwcs wcs; /* its projection */
    /* To the common beam (plan_common_beam): convolve with the Gaussian of covariance
     * [kxx kxy; kxy kyy] (pixels^2) and scale by kscale; conv false: as it is. */
    bool conv;
    double kxx, kxy, kyy, kscale;
    double sigma, w;        /* MAD noise and 1 / sigma^2 */
    int bx0, by0, bx1, by1; /* footprint on the mosaic grid, inclusive (bx0 > bx1: none) */
} input;

/* The mosaic grid: TAN about frame g, pixel (ix, iy) at standard coordinates
 * xi = -cell (ix + 1 - crpix1), eta = cell (iy + 1 - crpix2) (radians). */
typedef struct grid {
    ct_skyframe g;
    double ra_deg, dec_deg, crpix1, crpix2, cell_rad;
    int nx, ny;
} grid;

/* The grid centred on the inputs' mean pointing, covering every footprint. */
static ct_code plan_grid(input *in, int n, int tile, grid *gr, ct_err *err)
{
    double c[3] = {0, 0, 0};
    for (int k = 0; k < n; k++)
        for (int i = 0; i < 3; i++)
            c[i] += in[k].wcs.f.p[i];
    double r = sqrt(ct_dot3(c, c));
    if (!(r > 1e-6 * n))
        return ct_fail(err, CT_EINVAL, "mosaic: the inputs' pointings cancel out (all-sky set)");
    memset(gr, 0, sizeof *gr);
    gr->ra_deg = fmod(atan2(c[1], c[0]) / DEG + 360.0, 360.0);
    gr->dec_deg = asin(fmax(-1.0, fmin(1.0, c[2] / r))) / DEG;
    ct_skyframe_make(&gr->g, gr->ra_deg, gr->dec_deg);
    gr->cell_rad = in[0].wcs.cell_rad;

    /* Standard coordinates of every input's border, in cells: each input's extent
     * (its footprint, below) and all of theirs (the grid). */
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    double(*ext)[4] = malloc((size_t)n * sizeof *ext); /* xi min, max, eta min, max */
    if (ext == NULL)
        return ct_fail(err, CT_ENOMEM, "mosaic: out of memory");
    for (int k = 0; k < n; k++) {
        const ct_fits_image_desc *d = &in[k].info.desc;
        double *e = ext[k];
        e[0] = e[2] = INFINITY, e[1] = e[3] = -INFINITY;
        for (int edge = 0; edge < 4; edge++)
            for (int j = 0; j <= BORDER_STEPS; j++) {
                double t = (double)j / BORDER_STEPS, fx, fy, s[3];
                fx = edge < 2 ? t * (d->nx - 1) : (edge == 2 ? 0 : d->nx - 1);
                fy = edge < 2 ? (edge == 0 ? 0 : d->ny - 1) : t * (d->ny - 1);
                if (!ct_imgwcs_pixel_to_dir(&in[k].wcs, fx, fy, s))
                    continue; /* a SIN image reaching past its horizon: its corners */
                double cs = ct_dot3(s, gr->g.p);
                if (cs <= 0.1) {
                    free(ext);
                    return ct_fail(err, CT_EINVAL,
                                   "mosaic: %s reaches %.0f deg from the mosaic centre; a TAN "
                                   "mosaic cannot span that much sky",
                                   in[k].path, acos(fmax(-1, fmin(1, cs))) / DEG);
                }
                double xi = ct_dot3(s, gr->g.e) / cs / gr->cell_rad;
                double eta = ct_dot3(s, gr->g.n) / cs / gr->cell_rad;
                e[0] = fmin(e[0], xi), e[1] = fmax(e[1], xi);
                e[2] = fmin(e[2], eta), e[3] = fmax(e[3], eta);
            }
        xmin = fmin(xmin, e[0]), xmax = fmax(xmax, e[1]);
        ymin = fmin(ymin, e[2]), ymax = fmax(ymax, e[3]);
    }
    /* The reference pixel at a pixel centre; the grid reaches just past the borders. */
    double east = ceil(xmax), west = ceil(-xmin), south = ceil(-ymin), north = ceil(ymax);
    if (east + west + 1 > CT_MOSAIC_MAX_SIDE || south + north + 1 > CT_MOSAIC_MAX_SIDE) {
        free(ext);
        return ct_fail(err, CT_EINVAL,
                       "mosaic: the grid would be %.0f x %.0f px of %.3g arcsec (at most %d a "
                       "side): too many or too scattered inputs",
                       east + west + 1, south + north + 1, gr->cell_rad / DEG * 3600,
                       CT_MOSAIC_MAX_SIDE);
    }
    /* A tile's CRPIX is the grid's less its origin; fitsimage.h reads a CRPIX of 0 as
     * "the default", so no tile may start exactly at the reference pixel: one more
     * column (row) on the east (south) side when one would. */
    if (fmod(1 + east, tile) == 0)
        east += 1;
    if (fmod(1 + south, tile) == 0)
        south += 1;
    gr->crpix1 = 1 + east;
    gr->crpix2 = 1 + south;
    gr->nx = (int)(east + west + 1);
    gr->ny = (int)(south + north + 1);

    /* Each input's footprint in mosaic pixels (x = crpix1 - 1 - xi, y = crpix2 - 1 +
     * eta), with a margin for the kernel. */
    for (int k = 0; k < n; k++) {
        const double *e = ext[k];
        in[k].bx0 = (int)fmax(0, floor(gr->crpix1 - 1 - e[1]) - 2);
        in[k].bx1 = (int)fmin(gr->nx - 1, ceil(gr->crpix1 - 1 - e[0]) + 2);
        in[k].by0 = (int)fmax(0, floor(gr->crpix2 - 1 + e[2]) - 2);
        in[k].by1 = (int)fmin(gr->ny - 1, ceil(gr->crpix2 - 1 + e[3]) + 2);
    }
    free(ext);
    return CT_OK;
}

/* --- Noise: the median absolute deviation -------------------------------------------- */

/* Pixels the MAD looks at: every k-th, k chosen so that about this many remain. A
 * MAD from n samples has a relative standard error of about 1.1 / sqrt(n) (0.1 % here),
 * far below what weighting needs, at a quarter of the cost of two selections over a
 * 2048^2 image. */
#define MAD_SAMPLES (1u << 20)

/* 1.4826 x the MAD of the finite pixels (of every k-th); 0 when there are none. */
static double mad_sigma(const float *data, size_t npix, float *scratch)
{
    size_t n = 0, stride = npix > MAD_SAMPLES ? (npix + MAD_SAMPLES - 1) / MAD_SAMPLES : 1;
    /* An odd stride, so that it does not fall on the same columns of every row. */
    stride |= 1;
    for (size_t i = 0; i < npix; i += stride)
        if (isfinite(data[i]))
            scratch[n++] = data[i];
    if (n < MAD_SAMPLES / 16 && stride > 1) /* mostly blank: look at every pixel */
        for (size_t i = n = 0; i < npix; i++)
            if (isfinite(data[i]))
                scratch[n++] = data[i];
    if (n == 0)
        return 0;
    float med = ct_select_kthf(scratch, n, n / 2);
    for (size_t i = 0; i < n; i++)
        scratch[i] = fabsf(scratch[i] - med);
    return MAD_TO_SIGMA * ct_select_kthf(scratch, n, n / 2);
}

/* --- Resampling ---------------------------------------------------------------------- */

/* Keys' cubic convolution weights (a = -0.5) for the 4 taps around fraction t. */
static void cubic_weights(double t, double w[4])
{
    const double a = -0.5;
    double t1 = 1 + t, u = 1 - t, u1 = 2 - t;
    w[0] = ((a * t1 - 5 * a) * t1 + 8 * a) * t1 - 4 * a;
    w[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
    w[2] = ((a + 2) * u - (a + 3)) * u * u + 1;
    w[3] = ((a * u1 - 5 * a) * u1 + 8 * a) * u1 - 4 * a;
}

/* The input image sampled at (fx, fy) (0-based pixel coordinates); NaN when the
 * taps leave the image or touch a blank pixel. */
static double sample(const float *img, int nx, int ny, double fx, double fy,
                     ct_mosaic_interp interp)
{
    double x0 = floor(fx), y0 = floor(fy);
    if (interp == CT_MOSAIC_BILINEAR) {
        if (x0 < 0 || y0 < 0 || x0 + 1 > nx - 1 || y0 + 1 > ny - 1)
            return NAN;
        double tx = fx - x0, ty = fy - y0;
        const float *r0 = img + (size_t)y0 * nx + (size_t)x0, *r1 = r0 + nx;
        return (1 - ty) * ((1 - tx) * r0[0] + tx * r0[1]) + ty * ((1 - tx) * r1[0] + tx * r1[1]);
    }
    if (x0 < 1 || y0 < 1 || x0 + 2 > nx - 1 || y0 + 2 > ny - 1)
        return NAN;
    double wx[4], wy[4];
    cubic_weights(fx - x0, wx);
    cubic_weights(fy - y0, wy);
    const float *r = img + (size_t)(y0 - 1) * nx + (size_t)(x0 - 1);
    double v = 0;
    for (int j = 0; j < 4; j++, r += nx)
        v += wy[j] * (wx[0] * r[0] + wx[1] * r[1] + wx[2] * r[2] + wx[3] * r[3]);
    return v; /* a NaN tap makes v NaN */
}

/* The Airy power beam of one input, tabulated in sin^2(theta). */
typedef struct beam_table {
    double inv_step; /* table points per unit of sin^2(theta) */
    int n;
    double *a;
} beam_table;

static ct_code beam_table_make(beam_table *bt, double freq_hz, double max_sin, ct_err *err)
{
    double k = M_PI * CT_DISH_DIAMETER_M * freq_hz / CT_SPEED_OF_LIGHT;
    double step = BEAM_STEP_Y / (k * k), max_u = fmin(max_sin * max_sin, 1.0);
    bt->n = (int)ceil(max_u / step) + 2;
    bt->inv_step = 1 / step;
    if ((bt->a = malloc((size_t)bt->n * sizeof *bt->a)) == NULL)
        return ct_fail(err, CT_ENOMEM, "mosaic: out of memory for a beam table");
    for (int j = 0; j < bt->n; j++)
        bt->a[j] = ct_airy_power(sqrt(fmin(j * step, 1.0)), freq_hz, CT_DISH_DIAMETER_M);
    return CT_OK;
}

/* The beam at sin^2(theta) = u. */
static double beam_at(const beam_table *bt, double u)
{
    double x = u * bt->inv_step;
    int j = (int)x;
    if (j >= bt->n - 1)
        return bt->a[bt->n - 1];
    double t = x - j;
    return (1 - t) * bt->a[j] + t * bt->a[j + 1];
}

/* One tile's sums. */
typedef struct tile_acc {
    int x0, y0, nx, ny;
    double *num, *den; /* sum A I w, sum A^2 w */
} tile_acc;

/* Adds input `in` (pixels img) to the part of tile t it reaches. */
static void accumulate(tile_acc *t, const grid *gr, const input *in, const float *img,
                       const beam_table *bt, ct_mosaic_interp interp)
{
    int xa = in->bx0 > t->x0 ? in->bx0 : t->x0,
        xb = in->bx1 < t->x0 + t->nx - 1 ? in->bx1 : t->x0 + t->nx - 1;
    int ya = in->by0 > t->y0 ? in->by0 : t->y0,
        yb = in->by1 < t->y0 + t->ny - 1 ? in->by1 : t->y0 + t->ny - 1;
    if (xa > xb || ya > yb)
        return;
    const ct_fits_image_desc *d = &in->info.desc;
    /* A mosaic pixel's direction is v / |v| with v = p + xi e + eta n (grid frame);
     * its dot products with the input's frame are linear in xi and eta. */
    const ct_skyframe *g = &gr->g, *f = &in->wcs.f;
    double pp = ct_dot3(g->p, f->p), ep = ct_dot3(g->e, f->p), np_ = ct_dot3(g->n, f->p);
    double pe = ct_dot3(g->p, f->e), ee = ct_dot3(g->e, f->e), ne = ct_dot3(g->n, f->e);
    double pn = ct_dot3(g->p, f->n), en = ct_dot3(g->e, f->n), nn = ct_dot3(g->n, f->n);
    double cx = in->wcs.crpix1 - 1, cy = in->wcs.crpix2 - 1, inv_cell = 1 / in->wcs.cell_rad;
    const double sxi = d->pv2_1, seta = d->pv2_2; /* the input's SIN slant, if any */
    /* For `area`, 4 x 4 sub-samples at offsets -3/8, -1/8, 1/8, 3/8 of a pixel. */
    int nsub = interp == CT_MOSAIC_AREA ? 4 : 1;
    ct_mosaic_interp kernel = interp == CT_MOSAIC_AREA ? CT_MOSAIC_BICUBIC : interp;
    for (int iy = ya; iy <= yb; iy++) {
        double *num = t->num + (size_t)(iy - t->y0) * t->nx - t->x0;
        double *den = t->den + (size_t)(iy - t->y0) * t->nx - t->x0;
        double eta = gr->cell_rad * (iy + 1 - gr->crpix2);
        if (nsub == 1) {
            /* One sample at the pixel centre, where the beam is taken too. */
            for (int ix = xa; ix <= xb; ix++) {
                double xi = -gr->cell_rad * (ix + 1 - gr->crpix1);
                double inv = 1 / sqrt(1 + xi * xi + eta * eta);
                double c = (pp + xi * ep + eta * np_) * inv;
                double l = (pe + xi * ee + eta * ne) * inv;
                double m = (pn + xi * en + eta * nn) * inv;
                if (c <= 0)
                    continue;
                double a = beam_at(bt, l * l + m * m);
                if (in->wcs.tan)
                    l /= c, m /= c;
                else
                    l += sxi * (1 - c), m += seta * (1 - c); /* a slant SIN (PV2_1, PV2_2) */
                double v = sample(img, d->nx, d->ny, cx - l * inv_cell, cy + m * inv_cell, kernel);
                if (v != v) /* NaN: off the image, or a blank pixel */
                    continue;
                double aw = a * in->w;
                num[ix] += aw * v;
                den[ix] += aw * a;
            }
            continue;
        }
        for (int ix = xa; ix <= xb; ix++) {
            double acc = 0;
            int got = 0;
            for (int sy = 0; sy < nsub; sy++)
                for (int sx = 0; sx < nsub; sx++) {
                    double ox = nsub > 1 ? (sx + 0.5) / nsub - 0.5 : 0;
                    double oy = nsub > 1 ? (sy + 0.5) / nsub - 0.5 : 0;
                    double xi = -gr->cell_rad * (ix + ox + 1 - gr->crpix1);
                    double es = gr->cell_rad * (iy + oy + 1 - gr->crpix2);
                    double inv = 1 / sqrt(1 + xi * xi + es * es);
                    double c = (pp + xi * ep + es * np_) * inv;
                    double l = (pe + xi * ee + es * ne) * inv;
                    double m = (pn + xi * en + es * nn) * inv;
                    if (c <= 0)
                        continue;
                    if (in->wcs.tan)
                        l /= c, m /= c;
                    else
                        l += sxi * (1 - c), m += seta * (1 - c);
                    double fx = cx - l * inv_cell, fy = cy + m * inv_cell;
                    double v = sample(img, d->nx, d->ny, fx, fy, kernel);
                    if (!isfinite(v))
                        continue;
                    acc += v;
                    got++;
                }
            if (got != nsub * nsub)
                continue; /* a pixel only partly covered by this input is left to the others */
            double xi = -gr->cell_rad * (ix + 1 - gr->crpix1);
            double inv = 1 / sqrt(1 + xi * xi + eta * eta);
            double l = (pe + xi * ee + eta * ne) * inv, m = (pn + xi * en + eta * nn) * inv;
            double a_c = beam_at(bt, l * l + m * m); /* at the pixel centre */
            double aw = a_c * in->w;
            num[ix] += aw * (acc / got);
            den[ix] += aw * a_c;
        }
    }
}

/* --- Scheduling: tiles to ranks, longest first ----------------------------------------- */

static long long overlap_area(const input *in, const tile_acc *t)
{
    long long w = (long long)(in->bx1 < t->x0 + t->nx - 1 ? in->bx1 : t->x0 + t->nx - 1) -
                  (in->bx0 > t->x0 ? in->bx0 : t->x0) + 1;
    long long h = (long long)(in->by1 < t->y0 + t->ny - 1 ? in->by1 : t->y0 + t->ny - 1) -
                  (in->by0 > t->y0 ? in->by0 : t->y0) + 1;
    return w > 0 && h > 0 ? w * h : 0;
}

typedef struct tile_cost {
    int index;
    long long cost;
} tile_cost;

static int by_cost_desc(const void *a, const void *b)
{
    const tile_cost *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost > y->cost ? -1 : 1;
    return x->index - y->index;
}

/* Deals the tiles to `size` ranks: each, costliest first, to the least-loaded rank
 * (the lowest-numbered among equals). The same on every rank. */
static ct_code schedule(ct_mosaic_tile *tiles, const tile_acc *acc, int n_tiles, const input *in,
                        int n_in, int size, ct_err *err)
{
    tile_cost *tc = malloc((size_t)n_tiles * sizeof *tc);
    long long *load = calloc((size_t)size, sizeof *load);
    if (!tc || !load) {
        free(tc);
        free(load);
        return ct_fail(err, CT_ENOMEM, "mosaic: out of memory for the tile schedule");
    }
    for (int t = 0; t < n_tiles; t++) {
        tc[t].index = t;
        /* Every pixel costs a little (blanking, writing) even where no input reaches. */
        tc[t].cost = (long long)acc[t].nx * acc[t].ny / 8;
        for (int k = 0; k < n_in; k++)
            tc[t].cost += overlap_area(&in[k], &acc[t]);
    }
    qsort(tc, (size_t)n_tiles, sizeof *tc, by_cost_desc);
    for (int i = 0; i < n_tiles; i++) {
        int best = 0;
        for (int r = 1; r < size; r++)
            if (load[r] < load[best])
                best = r;
        tiles[tc[i].index].rank = best;
        load[best] += tc[i].cost;
    }
    free(tc);
    free(load);
    return CT_OK;
}

/* --- Inputs ------------------------------------------------------------------------------ */

static ct_code read_headers(input *in, const char *const *paths, int n, ct_err *err)
{
    for (int k = 0; k < n; k++) {
        in[k].path = paths[k];
        ct_code rc = ct_fits_read_image(paths[k], &in[k].info, NULL, err);
        if (rc == CT_EINVAL) {
            char why[CT_ERRMSG_MAX]; /* ct_fail must not format err->msg into itself */
            snprintf(why, sizeof why, "%s", err->msg);
            return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL, "corrupt_input: %s", why);
        }
        if (rc != CT_OK)
            return rc;
        const ct_fits_image_desc *d = &in[k].info.desc;
        if (ct_imgwcs_make(&in[k].wcs, d, in[k].info.projection, err) != CT_OK) {
            char why[CT_ERRMSG_MAX];
            snprintf(why, sizeof why, "%s", err->msg);
            return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL, "corrupt_input: %s: %s",
                              paths[k], why);
        }
        if (!(d->freq_hz > 0))
            return ct_fail(err, CT_EINVAL,
                           "mosaic: %s has no frequency axis (CRVAL3): the beam needs it",
                           paths[k]);
        if (d->nx < 4 || d->ny < 4)
            return ct_fail(err, CT_EINVAL, "mosaic: %s is %d x %d px: too small to resample",
                           paths[k], d->nx, d->ny);
        const ct_fits_image_desc *d0 = &in[0].info.desc;
        if (fabs(d->freq_hz - d0->freq_hz) > AGREE_RTOL * d0->freq_hz)
            return ct_fail(err, CT_EINVAL,
                           "mosaic: the inputs disagree in frequency: %s is at %.6f MHz, %s at "
                           "%.6f MHz (mosaic one frequency at a time)",
                           paths[0], d0->freq_hz / 1e6, paths[k], d->freq_hz / 1e6);
        if (fabs(d->cdelt_deg - d0->cdelt_deg) > AGREE_RTOL * d0->cdelt_deg)
            return ct_fail(err, CT_EINVAL,
                           "mosaic: the inputs disagree in cell: %s has %.6g arcsec, %s %.6g "
                           "arcsec",
                           paths[0], d0->cdelt_deg * 3600, paths[k], d->cdelt_deg * 3600);
    }
    return CT_OK;
}

/* Reads input k's pixels. */
/* data (nx x ny) convolved in place with input in's kernel to the common beam: each
 * pixel the kernel-weighted mean of its finite neighbours (blank pixels stay blank and
 * count for nothing: the weights are renormalized), times kscale. */
static ct_code convolve_to_common(const input *in, float *data, int nx, int ny, ct_err *err)
{
    /* The kernel's inverse covariance, and its reach: 4 sigma of its widest axis. */
    double det = in->kxx * in->kyy - in->kxy * in->kxy;
    double ixx = in->kyy / det, ixy = -in->kxy / det, iyy = in->kxx / det;
    double tr = in->kxx + in->kyy;
    double lmax = tr / 2 + sqrt(fmax(0, tr * tr / 4 - det));
    int r = (int)ceil(4 * sqrt(lmax));
    int w = 2 * r + 1;
    double *k = malloc((size_t)w * w * sizeof *k);
    float *out = malloc((size_t)nx * ny * sizeof *out);
    if (k == NULL || out == NULL) {
        free(k), free(out);
        return ct_fail(err, CT_ENOMEM, "mosaic: out of memory convolving %s", in->path);
    }
    for (int j = -r; j <= r; j++)
        for (int i = -r; i <= r; i++)
            k[(j + r) * w + i + r] = exp(-0.5 * (ixx * i * i + 2 * ixy * i * j + iyy * j * j));
#pragma omp parallel for schedule(static)
    for (int y = 0; y < ny; y++)
        for (int x = 0; x < nx; x++) {
            if (!isfinite(data[(size_t)y * nx + x])) {
                out[(size_t)y * nx + x] = NAN;
                continue;
            }
            double s = 0, sw = 0;
            for (int j = -r; j <= r; j++) {
                int yy = y + j;
                if (yy < 0 || yy >= ny)
                    continue;
                const float *row = data + (size_t)yy * nx;
                const double *kr = k + (j + r) * w + r;
                for (int i = -r; i <= r; i++) {
                    int xx = x + i;
                    if (xx < 0 || xx >= nx || !isfinite(row[xx]))
                        continue;
                    s += kr[i] * row[xx], sw += kr[i];
                }
            }
            out[(size_t)y * nx + x] = (float)(in->kscale * s / sw);
        }
    memcpy(data, out, (size_t)nx * ny * sizeof *out);
    free(k), free(out);
    return CT_OK;
}

static ct_code read_pixels(const input *in, float **data, ct_err *err)
{
    ct_fits_image_info info;
    ct_code rc = ct_fits_read_image(in->path, &info, data, err);
    if (rc == CT_OK && (info.desc.nx != in->info.desc.nx || info.desc.ny != in->info.desc.ny)) {
        free(*data);
        *data = NULL;
        rc = ct_fail(err, CT_EIO, "mosaic: %s changed while the mosaic was made", in->path);
    }
    if (rc == CT_OK && in->conv &&
        (rc = convolve_to_common(in, *data, info.desc.nx, info.desc.ny, err)) != CT_OK) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

/* The beam's covariance in pixels^2 (x along -RA, y along Dec; PA east of north). */
static void beam_cov(double maj_px, double min_px, double pa_deg, double *xx, double *xy,
                     double *yy)
{
    double a = maj_px / 2.3548200450309493, b = min_px / 2.3548200450309493;
    double ux = -sin(pa_deg * DEG), uy = cos(pa_deg * DEG); /* the major axis */
    double vx = uy, vy = -ux;
    *xx = a * a * ux * ux + b * b * vx * vx;
    *xy = a * a * ux * uy + b * b * vx * vy;
    *yy = a * a * uy * uy + b * b * vy * vy;
}

/* Inputs whose restoring beams differ (by more than 1 % in an axis, or 1 degree in the PA
 * of an elongated one) are brought to one common beam before they are combined: a
 * mosaic of pixels in different beams has no beam, and its fluxes none. The common beam
 * is round, of the largest major axis among them (it contains every input's beam, so each
 * needs a positive-definite kernel: the common covariance less its own); each input is
 * convolved with that kernel and scaled by the ratio of the beams' areas (Jy/beam stays
 * Jy per the new beam). res gets the common beam; the mosaic's headers say so. */
static void plan_common_beam(input *in, int n, ct_mosaic_result *res)
{
    bool all = true, differ = false;
    const ct_fits_image_desc *d0 = &in[0].info.desc;
    double big = 0;
    for (int k = 0; k < n; k++) {
        const ct_fits_image_desc *d = &in[k].info.desc;
        all &= d->bmaj_deg > 0 && d->bmin_deg > 0;
        big = fmax(big, d->bmaj_deg);
        bool round = d->bmaj_deg - d->bmin_deg < 0.01 * d->bmaj_deg;
        double dpa = fabs(fmod(d->bpa_deg - d0->bpa_deg + 540.0, 180.0) - 90.0);
        differ |= fabs(d->bmaj_deg / d0->bmaj_deg - 1) > 0.01 ||
                  fabs(d->bmin_deg / d0->bmin_deg - 1) > 0.01 || (!round && 90.0 - dpa > 1.0);
    }
    if (!all || !differ)
        return;
    res->common_beam = true;
    res->beam_maj_arcsec = res->beam_min_arcsec = big * 3600;
    res->beam_pa_deg = 0;
    for (int k = 0; k < n; k++) {
        const ct_fits_image_desc *d = &in[k].info.desc;
        double cell = d->cdelt_deg, s = big / cell / 2.3548200450309493;
        double xx, xy, yy;
        beam_cov(d->bmaj_deg / cell, d->bmin_deg / cell, d->bpa_deg, &xx, &xy, &yy);
        /* A floor of 0.01 px^2 keeps the kernel of the input with the common major axis
         * (a line, along its minor axis) invertible. */
        in[k].kxx = s * s - xx + 0.01, in[k].kxy = -xy, in[k].kyy = s * s - yy + 0.01;
        in[k].kscale = (big * big) / (d->bmaj_deg * d->bmin_deg);
        in[k].conv = !(d->bmaj_deg == big && d->bmin_deg == big);
    }
}

/* Each input's noise, measured by rank k % size and shared with all. */
static ct_code measure_noise(MPI_Comm comm, input *in, int n, ct_err *err)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    double *sig = calloc((size_t)n, sizeof *sig);
    ct_code rc = sig ? CT_OK : ct_fail(err, CT_ENOMEM, "mosaic: out of memory");
    for (int k = rank; rc == CT_OK && k < n; k += size) {
        float *data = NULL;
        if ((rc = read_pixels(&in[k], &data, err)) != CT_OK)
            break;
        size_t npix = (size_t)in[k].info.desc.nx * (size_t)in[k].info.desc.ny;
        float *scratch = malloc(npix * sizeof *scratch);
        if (scratch == NULL)
            rc = ct_fail(err, CT_ENOMEM, "mosaic: out of memory for %s", in[k].path);
        else if (!((sig[k] = mad_sigma(data, npix, scratch)) > 0))
            rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                            "corrupt_input: %s has no noise to weight it by (no finite pixels, or "
                            "most of them equal)",
                            in[k].path);
        free(scratch);
        free(data);
    }
    if ((rc = ct_mpi_agree(comm, rc, err)) == CT_OK) {
        MPI_Allreduce(MPI_IN_PLACE, sig, n, MPI_DOUBLE, MPI_SUM, comm);
        for (int k = 0; k < n; k++) {
            in[k].sigma = sig[k];
            in[k].w = 1 / (sig[k] * sig[k]);
        }
    }
    free(sig);
    return rc;
}

/* --- Output ------------------------------------------------------------------------------ */

static const char *const map_suffix[3] = {"", "-noise", "-weight"};

static void tile_path(char *out, size_t size, const char *prefix, int t, int map)
{
    snprintf(out, size, "%s-tile%03d%s.fits", prefix, t, map_suffix[map]);
}

/* A mosaic's files appear together or not at all: each map is written (atomically) under
 * its staged name, and the staged files become their names only once every rank has
 * written all of its own (publish). A failure removes what was staged and leaves an
 * earlier run's files as they were -- a failed attempt used to leave final-named tiles
 * without a row. A crash leaves staged names, which hold ".tmp-" and go with the stage's
 * stale temporaries when the task runs again. */
static void staged_path(char *out, size_t size, const char *final)
{
    snprintf(out, size, "%s.tmp-%ld-set", final, (long)getpid());
}

static ct_code write_staged(const char *final, const ct_fits_image_desc *d, const float *data,
                            ct_err *err)
{
    char staged[4096 + 64];
    staged_path(staged, sizeof staged, final);
    return ct_fits_write_image(staged, d, data, err);
}

static void publish_one(const char *final, bool keep, ct_code *rc, ct_err *err)
{
    char staged[4096 + 64];
    staged_path(staged, sizeof staged, final);
    if (keep && *rc == CT_OK && rename(staged, final) != 0)
        *rc = ct_fail(err, CT_EIO, "mosaic: cannot rename %s to %s: %s", staged, final,
                      strerror(errno));
    else if (!keep || *rc != CT_OK)
        unlink(staged);
}

/* Renames (keep) or removes this rank's staged files: its tiles' maps, and on rank 0 the
 * assembled maps. Local: the caller agrees on the outcome. */
static ct_code publish(const char *prefix, const ct_mosaic_result *res, int rank, bool keep,
                       ct_err *err)
{
    ct_code rc = CT_OK;
    char final[4096 + 32];
    for (int t = 0; res->tiles && t < res->n_tiles; t++)
        for (int map = 0; map < 3 && res->tiles[t].rank == rank; map++) {
            tile_path(final, sizeof final, prefix, t, map);
            publish_one(final, keep, &rc, err);
        }
    for (int map = 0; map < 3 && rank == 0 && (res->assembled || !keep); map++) {
        snprintf(final, sizeof final, "%s%s.fits", prefix, map_suffix[map]);
        publish_one(final, keep, &rc, err);
    }
    return rc;
}

/* The header of map `map` for the pixels starting at (x0, y0). */
static void map_desc(ct_fits_image_desc *d, ct_fits_keyword *kw, const grid *gr, const input *in,
                     int n_in, const ct_mosaic_result *res, int map, int x0, int y0, int nx, int ny)
{
    memset(d, 0, sizeof *d);
    d->nx = nx, d->ny = ny;
    d->ra_deg = gr->ra_deg, d->dec_deg = gr->dec_deg;
    d->crpix1 = gr->crpix1 - x0, d->crpix2 = gr->crpix2 - y0;
    d->cdelt_deg = gr->cell_rad / DEG;
    d->projection = "TAN";
    d->freq_hz = in[0].info.desc.freq_hz;
    d->bandwidth_hz = in[0].info.desc.bandwidth_hz > 0 ? in[0].info.desc.bandwidth_hz : 1;
    /* The inputs' mean restoring beam (a linear mosaic's beam varies a little). */
    double bmaj = 0, bmin = 0, bpa = 0;
    int nb = 0;
    for (int k = 0; k < n_in; k++)
        if (in[k].info.desc.bmaj_deg > 0 && in[k].info.desc.bmin_deg > 0) {
            bmaj += in[k].info.desc.bmaj_deg, bmin += in[k].info.desc.bmin_deg;
            bpa += in[k].info.desc.bpa_deg, nb++;
        }
    if (nb == n_in)
        d->bmaj_deg = bmaj / nb, d->bmin_deg = bmin / nb, d->bpa_deg = bpa / nb;
    if (res->common_beam) /* every input convolved to it */
        d->bmaj_deg = res->beam_maj_arcsec / 3600, d->bmin_deg = res->beam_min_arcsec / 3600,
        d->bpa_deg = res->beam_pa_deg;
    d->bunit = map == 2 ? "(JY/BEAM)**-2" : "JY/BEAM";
    d->date_obs = res->date_start[0] ? res->date_start : NULL;
    d->object = map == 0 ? "mosaic" : map == 1 ? "mosaic noise" : "mosaic weight";
    kw[0] = (ct_fits_keyword){"NIMAGES", n_in, "images combined"};
    kw[1] = (ct_fits_keyword){"CUTOFF", res->cutoff, "blank below CUTOFF^2 x max weight"};
    kw[2] = (ct_fits_keyword){"MAXWT", res->max_weight, "max sum A^2/sigma^2 [(Jy/beam)^-2]"};
    kw[3] = (ct_fits_keyword){"BEAMCONV", res->common_beam ? 1 : 0,
                              "1: inputs convolved to BMAJ/BMIN/BPA"};
    d->extra = kw;
    d->n_extra = 4;
}

/* Mosaic, noise and weight of one tile from its sums (in place: num becomes M). */
static void finish_tile(tile_acc *t, double threshold, float *m, float *noise, float *weight,
                        long long *n_blank, double *noise_min)
{
    size_t n = (size_t)t->nx * t->ny;
    for (size_t i = 0; i < n; i++) {
        double den = t->den[i];
        weight[i] = (float)den;
        if (den >= threshold && den > 0) {
            m[i] = (float)(t->num[i] / den);
            noise[i] = (float)(1 / sqrt(den));
            if (noise[i] < *noise_min)
                *noise_min = noise[i];
        } else {
            m[i] = noise[i] = NAN;
            (*n_blank)++;
        }
    }
}

/* The assembled maps (collective): each rank sends rank 0 its tiles' maps (kept in
 * maps[t], 3 planes of the tile's pixels), map by map and in tile order; rank 0
 * places them and writes each map. */
static ct_code assemble(MPI_Comm comm, const grid *gr, const input *in, int n_in,
                        ct_mosaic_result *res, float *const *maps, const char *prefix, ct_err *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    size_t npix = (size_t)gr->nx * gr->ny;
    float *all = NULL, *scratch = NULL;
    ct_code rc = CT_OK;
    if (rank == 0) {
        size_t biggest = 0;
        for (int t = 0; t < res->n_tiles; t++)
            if (res->tiles[t].rank != 0 && (size_t)res->tiles[t].nx * res->tiles[t].ny > biggest)
                biggest = (size_t)res->tiles[t].nx * res->tiles[t].ny;
        all = malloc(npix * sizeof *all);
        scratch = biggest ? malloc(biggest * sizeof *scratch) : NULL;
        if (!all || (biggest && !scratch))
            rc = ct_fail(err, CT_ENOMEM, "mosaic: out of memory to assemble %d x %d px", gr->nx,
                         gr->ny);
    }
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK) {
        free(all);
        free(scratch);
        return rc;
    }
    for (int map = 0; map < 3; map++) {
        for (int t = 0; t < res->n_tiles; t++) {
            const ct_mosaic_tile *tl = &res->tiles[t];
            size_t np = (size_t)tl->nx * tl->ny; /* <= 8192^2 < INT_MAX */
            if (rank != 0) {
                if (tl->rank == rank)
                    MPI_Send(maps[t] + map * np, (int)np, MPI_FLOAT, 0, 0, comm);
                continue;
            }
            const float *src = maps[t] + map * np;
            float *recv = NULL;
            if (tl->rank != 0) {
                /* Straight into place when the tile spans the mosaic's width. */
                recv = tl->nx == gr->nx ? all + (size_t)tl->y0 * gr->nx : scratch;
                /* One tag: MPI keeps one sender's messages in order. */
                MPI_Recv(recv, (int)np, MPI_FLOAT, tl->rank, 0, comm, MPI_STATUS_IGNORE);
                src = recv;
            }
            if (src != all + (size_t)tl->y0 * gr->nx)
                for (int y = 0; y < tl->ny; y++)
                    memcpy(all + (size_t)(tl->y0 + y) * gr->nx + tl->x0, src + (size_t)y * tl->nx,
                           (size_t)tl->nx * sizeof *all);
        }
        if (rank != 0 || rc != CT_OK)
            continue;
        if (map == 1) {
            /* The median noise over unblanked pixels. */
            float *v = malloc(npix * sizeof *v);
            if (v) {
                size_t n = 0;
                for (size_t i = 0; i < npix; i++)
                    if (isfinite(all[i]))
                        v[n++] = all[i];
                if (n > 0)
                    res->noise_med_jy = ct_select_kthf(v, n, n / 2);
                free(v);
            }
        }
        ct_fits_image_desc d;
        ct_fits_keyword kw[4];
        map_desc(&d, kw, gr, in, n_in, res, map, 0, 0, gr->nx, gr->ny);
        char path[4096 + 32];
        snprintf(path, sizeof path, "%s%s.fits", prefix, map_suffix[map]);
        rc = write_staged(path, &d, all, err);
    }
    free(all);
    free(scratch);
    return rc;
}

/* --- The whole ----------------------------------------------------------------------------- */

ct_code ct_mosaic_opts_check(const ct_mosaic_opts *o, ct_err *err)
{
    if (o->tile < 16 || o->tile > CT_MOSAIC_TILE_MAX)
        return ct_fail(err, CT_EINVAL, "mosaic: tile side %d px is outside 16..%d", o->tile,
                       CT_MOSAIC_TILE_MAX);
    if (!(o->cutoff > 0 && o->cutoff < 1))
        return ct_fail(err, CT_EINVAL, "mosaic: cutoff %g is outside (0, 1)", o->cutoff);
    if ((unsigned)o->interp > CT_MOSAIC_AREA)
        return ct_fail(err, CT_EINVAL, "mosaic: interp must be bicubic, bilinear or area");
    if (!(o->assemble_max_bytes >= 0))
        return ct_fail(err, CT_EINVAL, "mosaic: assembly limit %g bytes must be >= 0",
                       o->assemble_max_bytes);
    return CT_OK;
}

ct_code ct_mosaic_opts_from_json(const json_t *config, ct_mosaic_opts *o, ct_err *err)
{
    ct_mosaic_opts_default(o);
    if (config == NULL)
        return CT_OK;
    if (!json_is_object(config))
        return ct_fail(err, CT_EINVAL, "params.config must be an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)config, key, v)
    {
        const double d = json_number_value(v);
        if (strcmp(key, "interp") == 0 &&
            ct_mosaic_interp_parse(json_string_value(v), &o->interp) == CT_OK)
            continue;
        if (strcmp(key, "tile") == 0 && json_is_number(v) && d == floor(d) && fabs(d) <= 2e9)
            o->tile = (int)d;
        else if (strcmp(key, "cutoff") == 0 && json_is_number(v))
            o->cutoff = d;
        else if (strcmp(key, "tier") != 0 && strcmp(key, "images_per_mosaic") != 0 &&
                 strcmp(key, "overlap") != 0)
            return ct_fail(err, CT_EINVAL,
                           "config.%s: unknown mosaic option, or a value of the wrong type", key);
    }
    return ct_mosaic_opts_check(o, err);
}

static ct_code check_opts(const ct_mosaic_opts *o, int n_images, ct_err *err)
{
    if (o == NULL || o->out_prefix == NULL || !o->out_prefix[0])
        return ct_fail(err, CT_EINVAL, "mosaic: no output prefix");
    if (strlen(o->out_prefix) > 4000)
        return ct_fail(err, CT_EINVAL, "mosaic: output prefix too long");
    if (n_images < 1)
        return ct_fail(err, CT_EINVAL, "mosaic: no input images");
    return ct_mosaic_opts_check(o, err);
}

static double now_sec(void)
{
    return MPI_Wtime();
}

ct_code ct_mosaic_make(MPI_Comm comm, const char *const *images, int n_images,
                       const ct_mosaic_opts *o, ct_mosaic_result *res, ct_err *err)
{
    double t_start = now_sec();
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    memset(res, 0, sizeof *res);
    res->noise_med_jy = NAN;
    res->ranks = size;
    ct_code rc = check_opts(o, n_images, err);
    if (rc != CT_OK)
        return rc; /* the same on every rank: the arguments are */

    input *in = calloc((size_t)n_images, sizeof *in);
    tile_acc *acc = NULL;
    float **tile_maps = NULL; /* this rank's tiles' finished maps, kept for assembling */
    int n_tiles = 0;
    grid gr;
    rc = in ? read_headers(in, images, n_images, err)
            : ct_fail(err, CT_ENOMEM, "mosaic: out of memory");
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto out;
    if ((rc = plan_grid(in, n_images, o->tile, &gr, err)) != CT_OK)
        goto out; /* deterministic: the same on every rank */
    plan_common_beam(in, n_images, res);

    double t0 = now_sec();
    if ((rc = measure_noise(comm, in, n_images, err)) != CT_OK)
        goto out;
    res->t_stats = now_sec() - t0;

    /* The tiles, row-major, and who computes each. */
    res->tiles_x = (gr.nx + o->tile - 1) / o->tile;
    res->tiles_y = (gr.ny + o->tile - 1) / o->tile;
    n_tiles = res->tiles_x * res->tiles_y;
    res->tiles = calloc((size_t)n_tiles, sizeof *res->tiles);
    acc = calloc((size_t)n_tiles, sizeof *acc);
    res->sigma_jy = malloc((size_t)n_images * sizeof *res->sigma_jy);
    rc = res->tiles && acc && res->sigma_jy ? CT_OK
                                            : ct_fail(err, CT_ENOMEM, "mosaic: out of memory");
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto out;
    res->n_tiles = n_tiles;
    for (int t = 0; t < n_tiles; t++) {
        tile_acc *a = &acc[t];
        a->x0 = (t % res->tiles_x) * o->tile;
        a->y0 = (t / res->tiles_x) * o->tile;
        a->nx = gr.nx - a->x0 < o->tile ? gr.nx - a->x0 : o->tile;
        a->ny = gr.ny - a->y0 < o->tile ? gr.ny - a->y0 : o->tile;
        res->tiles[t].x0 = a->x0, res->tiles[t].y0 = a->y0;
        res->tiles[t].nx = a->nx, res->tiles[t].ny = a->ny;
        tile_path(res->tiles[t].path, sizeof res->tiles[t].path, o->out_prefix, t, 0);
    }
    rc = schedule(res->tiles, acc, n_tiles, in, n_images, size, err);
    for (int t = 0; rc == CT_OK && t < n_tiles; t++) {
        if (res->tiles[t].rank != rank)
            continue;
        size_t np = (size_t)acc[t].nx * acc[t].ny;
        acc[t].num = calloc(np, sizeof(double));
        acc[t].den = calloc(np, sizeof(double));
        if (!acc[t].num || !acc[t].den)
            rc = ct_fail(err, CT_ENOMEM, "mosaic: out of memory for a %d x %d tile", acc[t].nx,
                         acc[t].ny);
    }

    /* Each input this rank's tiles reach: read once, added to each of them, in order. */
    for (int k = 0; rc == CT_OK && k < n_images; k++) {
        bool needed = false;
        for (int t = 0; t < n_tiles && !needed; t++)
            needed = res->tiles[t].rank == rank && overlap_area(&in[k], &acc[t]) > 0;
        if (!needed)
            continue;
        double tr = now_sec();
        float *img = NULL;
        if ((rc = read_pixels(&in[k], &img, err)) != CT_OK)
            break;
        res->t_read += now_sec() - tr;
        tr = now_sec();
        const ct_fits_image_desc *d = &in[k].info.desc;
        /* The beam out to the input's farthest corner from its centre. */
        /* The beam out to the image corner farthest from its pointing (CRVAL). */
        double max_sin = 0.01;
        for (int corner = 0; corner < 4; corner++) {
            double s[3];
            if (!ct_imgwcs_pixel_to_dir(&in[k].wcs, corner & 1 ? d->nx + 1 : -2,
                                        corner & 2 ? d->ny + 1 : -2, s))
                max_sin = 1;
            else
                max_sin =
                    fmax(max_sin,
                         sqrt(fmax(0, 1 - ct_dot3(s, in[k].wcs.f.p) * ct_dot3(s, in[k].wcs.f.p))));
        }
        beam_table bt;
        if ((rc = beam_table_make(&bt, d->freq_hz, fmin(1, max_sin + 0.01), err)) == CT_OK) {
            for (int t = 0; t < n_tiles; t++)
                if (res->tiles[t].rank == rank)
                    accumulate(&acc[t], &gr, &in[k], img, &bt, o->interp);
            free(bt.a);
        }
        free(img);
        res->t_resample += now_sec() - tr;
    }
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto out;

    /* The weight's maximum over the whole mosaic sets the blanking level. */
    double max_w = 0;
    for (int t = 0; t < n_tiles; t++)
        if (res->tiles[t].rank == rank)
            for (size_t i = 0, np = (size_t)acc[t].nx * acc[t].ny; i < np; i++)
                if (acc[t].den[i] > max_w)
                    max_w = acc[t].den[i];
    MPI_Allreduce(MPI_IN_PLACE, &max_w, 1, MPI_DOUBLE, MPI_MAX, comm);
    res->max_weight = max_w;
    res->cutoff = o->cutoff;
    res->interp = ct_mosaic_interp_name(o->interp);
    res->nx = gr.nx, res->ny = gr.ny, res->n_images = n_images;
    res->ra_deg = gr.ra_deg, res->dec_deg = gr.dec_deg;
    res->crpix1 = gr.crpix1, res->crpix2 = gr.crpix2;
    res->cell_arcsec = gr.cell_rad / DEG * 3600;
    res->freq_hz = in[0].info.desc.freq_hz;
    res->bandwidth_hz = in[0].info.desc.bandwidth_hz;
    for (int k = 0; k < n_images; k++) {
        res->sigma_jy[k] = in[k].sigma;
        const char *dt = in[k].info.date_obs;
        if (!dt[0])
            continue;
        if (!res->date_start[0] || strcmp(dt, res->date_start) < 0)
            snprintf(res->date_start, sizeof res->date_start, "%s", dt);
        if (strcmp(dt, res->date_end) > 0)
            snprintf(res->date_end, sizeof res->date_end, "%s", dt);
    }
    if (!(max_w > 0)) {
        rc = ct_fail(err, CT_EINVAL, "mosaic: no input reaches any pixel of the grid");
        goto out;
    }

    /* This rank's tiles, finished and written. */
    double tw = now_sec();
    double threshold = o->cutoff * o->cutoff * max_w, noise_min = INFINITY;
    long long n_blank = 0;
    bool assemble_it = (double)gr.nx * gr.ny * 4 <= o->assemble_max_bytes;
    tile_maps = calloc((size_t)n_tiles, sizeof *tile_maps);
    if (tile_maps == NULL)
        rc = ct_fail(err, CT_ENOMEM, "mosaic: out of memory");
    for (int t = 0; rc == CT_OK && t < n_tiles; t++) {
        if (res->tiles[t].rank != rank)
            continue;
        size_t np = (size_t)acc[t].nx * acc[t].ny;
        float *maps = malloc(3 * np * sizeof *maps);
        if (maps == NULL) {
            rc = ct_fail(err, CT_ENOMEM, "mosaic: out of memory for a tile's maps");
            break;
        }
        finish_tile(&acc[t], threshold, maps, maps + np, maps + 2 * np, &n_blank, &noise_min);
        free(acc[t].num);
        free(acc[t].den);
        acc[t].num = acc[t].den = NULL;
        for (int map = 0; map < 3 && rc == CT_OK; map++) {
            ct_fits_image_desc d;
            ct_fits_keyword kw[4];
            map_desc(&d, kw, &gr, in, n_images, res, map, acc[t].x0, acc[t].y0, acc[t].nx,
                     acc[t].ny);
            char path[4096 + 32];
            tile_path(path, sizeof path, o->out_prefix, t, map);
            rc = write_staged(path, &d, maps + map * np, err);
        }
        if (assemble_it)
            tile_maps[t] = maps; /* until rank 0 has it */
        else
            free(maps);
    }
    res->t_write = now_sec() - tw;
    MPI_Allreduce(MPI_IN_PLACE, &n_blank, 1, MPI_LONG_LONG, MPI_SUM, comm);
    MPI_Allreduce(MPI_IN_PLACE, &noise_min, 1, MPI_DOUBLE, MPI_MIN, comm);
    res->n_blank = n_blank;
    res->noise_min_jy = noise_min;
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto out;

    /* Rank 0 assembles the maps when one fits in the allowance. */
    double ta = now_sec();
    if (assemble_it) {
        rc = assemble(comm, &gr, in, n_images, res, tile_maps, o->out_prefix, err);
        if (rc == CT_OK && rank == 0) {
            res->assembled = true;
            snprintf(res->path, sizeof res->path, "%s.fits", o->out_prefix);
        }
    }
    res->t_assemble = now_sec() - ta;
    rc = ct_mpi_agree(comm, rc, err);
    MPI_Bcast(&res->noise_med_jy, 1, MPI_DOUBLE, 0, comm);

out:
    /* Every rank reaches here on every path (the failures above are agreed), so the
     * staged files are published or removed everywhere together. */
    if (rc == CT_OK)
        rc = ct_mpi_agree(comm, publish(o->out_prefix, res, rank, true, err), err);
    else
        publish(o->out_prefix, res, rank, false, NULL);
    for (int t = 0; acc && t < n_tiles; t++) {
        free(acc[t].num);
        free(acc[t].den);
        if (tile_maps)
            free(tile_maps[t]);
    }
    free(tile_maps);
    free(acc);
    free(in);
    if (rc != CT_OK)
        ct_mosaic_result_free(res);
    res->seconds = now_sec() - t_start;
    return rc;
}

void ct_mosaic_result_free(ct_mosaic_result *res)
{
    if (res == NULL)
        return;
    free(res->tiles);
    free(res->sigma_jy);
    res->tiles = NULL;
    res->sigma_jy = NULL;
    res->n_tiles = 0;
}

json_t *ct_mosaic_result_json(const ct_mosaic_result *r)
{
    json_t *tiles = json_array();
    for (int t = 0; t < r->n_tiles; t++)
        json_array_append_new(tiles, json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "path",
                                               r->tiles[t].path, "x0", r->tiles[t].x0, "y0",
                                               r->tiles[t].y0, "nx", r->tiles[t].nx, "ny",
                                               r->tiles[t].ny, "rank", r->tiles[t].rank));
    json_t *sig = json_array();
    for (int k = 0; k < r->n_images && r->sigma_jy; k++)
        json_array_append_new(sig, json_real(r->sigma_jy[k]));
    json_t *o = json_pack(
        "{s:s?, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:f, s:o, s:I, "
        "s:s, s:s, s:o, s:o, s:b}",
        "path", r->assembled ? r->path : NULL, "nx", r->nx, "ny", r->ny, "n_images", r->n_images,
        "ranks", r->ranks, "ra_deg", r->ra_deg, "dec_deg", r->dec_deg, "crpix1", r->crpix1,
        "crpix2", r->crpix2, "cell_arcsec", r->cell_arcsec, "freq_hz", r->freq_hz, "cutoff",
        r->cutoff, "max_weight", r->max_weight, "interp", r->interp ? r->interp : "?",
        "noise_min_jy", r->noise_min_jy, "noise_jy",
        isfinite(r->noise_med_jy) ? json_real(r->noise_med_jy) : json_null(), "n_blank",
        (json_int_t)r->n_blank, "date_start", r->date_start, "date_end", r->date_end, "tiles",
        tiles, "sigma_jy", sig, "assembled", r->assembled);
    json_object_set_new(o, "common_beam",
                        r->common_beam
                            ? json_pack("{s:f, s:f, s:f}", "maj_arcsec", r->beam_maj_arcsec,
                                        "min_arcsec", r->beam_min_arcsec, "pa_deg", r->beam_pa_deg)
                            : json_null());
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_object_set_new(o, "timings",
                        json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "stats", r->t_stats, "read",
                                  r->t_read, "resample", r->t_resample, "write", r->t_write,
                                  "assemble", r->t_assemble, "total", r->seconds));
    double px = (double)r->nx * r->ny;
    json_object_set_new(o, "pixels_per_sec_per_rank",
                        json_real(r->seconds > 0 ? px / r->seconds / r->ranks : 0));
    return o;
}
