/* imaging.c -- see imaging.h. */
#define _GNU_SOURCE /* M_PI */
#include "imaging.h"

#include "beam.h"
#include "fitsimage.h"
#include "fsutil.h"
#include "imager.h"
#include "mpiutil.h"
#include "png.h"
#include "uvh5.h"
#include "visset.h"

#include <erfa.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARCSEC (M_PI / 180.0 / 3600.0)

int ct_image_slant_from_name(const char *name)
{
    if (!name)
        return -1;
    if (strcmp(name, "auto") == 0)
        return CT_IMAGER_SLANT_AUTO;
    if (strcmp(name, "off") == 0)
        return CT_IMAGER_SLANT_OFF;
    if (strcmp(name, "on") == 0)
        return CT_IMAGER_SLANT_ON;
    return -1;
}

void ct_image_opts_default(ct_image_opts *o)
{
    *o = (ct_image_opts){
        .weight = CT_WEIGHT_BRIGGS,
        .robust = 0.0,
        .niter = 1000,
        .gain = 0.1,
        .mgain = 0.5,
        .max_major = 20,
        .epsilon = 1e-4,
        .pblimit = 0.2,
    };
}

void ct_image_opts_successor(ct_image_opts *o)
{
    ct_image_opts_default(o);
    o->size = 4800;
    o->cell_arcsec = 3.0;
    o->robust = 0.5;
    o->min_uv_lambda = 1000.0;
}

int ct_image_weight_from_name(const char *name)
{
    static const char *const names[] = {[CT_WEIGHT_NATURAL] = "natural",
                                        [CT_WEIGHT_UNIFORM] = "uniform",
                                        [CT_WEIGHT_BRIGGS] = "briggs"};
    for (int k = 0; name && k < (int)(sizeof names / sizeof names[0]); k++)
        if (strcmp(name, names[k]) == 0)
            return k;
    return -1;
}

ct_code ct_image_opts_check(const ct_image_opts *o, ct_err *err)
{
    if (o->size != 0 && (o->size < 2 || o->size % 2 || o->size > 1000000))
        return ct_fail(err, CT_EINVAL,
                       "imaging: size %d must be an even number 2..1000000 "
                       "(0: automatic)",
                       o->size);
    if (!(o->cell_arcsec == 0 || (o->cell_arcsec >= 1e-4 && o->cell_arcsec <= 36000)))
        return ct_fail(err, CT_EINVAL,
                       "imaging: cell %g arcsec must be 0.0001..36000 "
                       "(0: automatic)",
                       o->cell_arcsec);
    if (o->weight != CT_WEIGHT_NATURAL && o->weight != CT_WEIGHT_UNIFORM &&
        o->weight != CT_WEIGHT_BRIGGS)
        return ct_fail(err, CT_EINVAL, "imaging: weight must be natural, uniform or briggs");
    if (!(o->robust >= -2 && o->robust <= 2))
        return ct_fail(err, CT_EINVAL, "imaging: robust %g is outside [-2, 2]", o->robust);
    if (!(o->min_uv_lambda >= 0) || isinf(o->min_uv_lambda))
        return ct_fail(err, CT_EINVAL, "imaging: min uv %g lambda must be >= 0", o->min_uv_lambda);
    if (o->niter < 0 || o->niter > 100000000)
        return ct_fail(err, CT_EINVAL, "imaging: niter %d must be 0..100000000", o->niter);
    if (!(o->threshold_jy >= 0) || isinf(o->threshold_jy))
        return ct_fail(err, CT_EINVAL, "imaging: threshold %g Jy must be >= 0", o->threshold_jy);
    if (!(o->gain > 0 && o->gain <= 1) || !(o->mgain > 0 && o->mgain <= 1))
        return ct_fail(err, CT_EINVAL, "imaging: gain %g and mgain %g must be in (0, 1]", o->gain,
                       o->mgain);
    if (o->threads < 0 || o->threads > 4096)
        return ct_fail(err, CT_EINVAL, "imaging: threads %d must be in 0..4096 (0: automatic)",
                       o->threads);
    if (o->max_major < 1)
        return ct_fail(err, CT_EINVAL, "imaging: at least one major cycle");
    if (!(o->epsilon >= 1e-14 && o->epsilon <= 1e-1))
        return ct_fail(err, CT_EINVAL, "imaging: epsilon %g is outside [1e-14, 0.1]", o->epsilon);
    if (!(o->pblimit > 0 && o->pblimit <= 1))
        return ct_fail(err, CT_EINVAL, "imaging: pblimit %g is outside (0, 1]", o->pblimit);
    if (!(o->max_bytes >= 0) || isinf(o->max_bytes))
        return ct_fail(err, CT_EINVAL, "imaging: max memory %g bytes must be >= 0", o->max_bytes);
    if (o->grid_bits != 0 && o->grid_bits != 32 && o->grid_bits != 64)
        return ct_fail(err, CT_EINVAL, "imaging: grid bits %d must be 32 or 64 (0: automatic)",
                       o->grid_bits);
    if (o->slant != CT_IMAGER_SLANT_AUTO && o->slant != CT_IMAGER_SLANT_OFF &&
        o->slant != CT_IMAGER_SLANT_ON)
        return ct_fail(err, CT_EINVAL, "imaging: slant must be auto, off or on");
    return CT_OK;
}

ct_code ct_image_opts_from_json(const json_t *config, ct_image_opts *o, ct_err *err)
{
    ct_image_opts_default(o);
    if (config == NULL)
        return CT_OK;
    if (!json_is_object(config))
        return ct_fail(err, CT_EINVAL, "params.config must be an object");
    if (json_is_true(json_object_get(config, "successor")))
        ct_image_opts_successor(o);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)config, key, v)
    {
        const double d = json_number_value(v);
        const bool num = json_is_number(v), flag = json_is_boolean(v);
        const char *name = json_string_value(v);
        /* Integers that a double holds exactly, and within an int. */
        const bool whole = num && d == floor(d) && fabs(d) <= 2e9;
        if (strcmp(key, "successor") == 0 && flag)
            continue;
        if (strcmp(key, "weight") == 0 && ct_image_weight_from_name(name) >= 0)
            o->weight = (ct_weight_kind)ct_image_weight_from_name(name);
        else if (strcmp(key, "slant") == 0 && ct_image_slant_from_name(name) >= 0)
            o->slant = ct_image_slant_from_name(name);
        else if (strcmp(key, "no_wterms") == 0 && flag)
            o->no_wterms = json_is_true(v);
        else if (strcmp(key, "psf_double") == 0 && flag)
            o->psf_double = json_is_true(v);
        else if (strcmp(key, "size") == 0 && whole)
            o->size = (int)d;
        else if (strcmp(key, "niter") == 0 && whole)
            o->niter = (int)d;
        else if (strcmp(key, "cell_arcsec") == 0 && num)
            o->cell_arcsec = d;
        else if (strcmp(key, "robust") == 0 && num)
            o->robust = d;
        else if (strcmp(key, "threshold_jy") == 0 && num)
            o->threshold_jy = d;
        else if (strcmp(key, "gain") == 0 && num)
            o->gain = d;
        else if (strcmp(key, "mgain") == 0 && num)
            o->mgain = d;
        else if (strcmp(key, "epsilon") == 0 && num)
            o->epsilon = d;
        else if (strcmp(key, "pblimit") == 0 && num)
            o->pblimit = d;
        else if (strcmp(key, "min_uv_lambda") == 0 && num)
            o->min_uv_lambda = d;
        else
            return ct_fail(err, CT_EINVAL,
                           "config.%s: unknown imaging option, or a value of the wrong type", key);
    }
    return ct_image_opts_check(o, err);
}

/* "YYYY-MM-DDThh:mm:ss.sss" of a UTC Julian date. */
static void iso_date(double jd, char *out, size_t n)
{
    int iy, im, id, hmsf[4];
    if (eraD2dtf("UTC", 3, jd, 0.0, &iy, &im, &id, hmsf) < 0) {
        snprintf(out, n, "%s", "");
        return;
    }
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03d", iy, im, id, hmsf[0], hmsf[1], hmsf[2],
             hmsf[3]);
}

/* The image as FITS wants it: 32-bit floats, with the x axis reversed so
 * that RA increases to the left (CDELT1 < 0): our column ix lies at
 * l = (ix - nx/2) cell, east positive, and FITS column nx - 1 - ix then has
 * the reference pixel nx/2 (1-based) at our centre column. */
static ct_code write_fits(const char *path, const ct_fits_image_desc *d, const double *img,
                          ct_err *err)
{
    float *f = malloc((size_t)d->nx * d->ny * sizeof *f);
    if (!f)
        return ct_fail(err, CT_ENOMEM, "out of memory writing %s", path);
    for (int y = 0; y < d->ny; y++)
        for (int x = 0; x < d->nx; x++)
            f[(size_t)y * d->nx + (d->nx - 1 - x)] = (float)img[(size_t)y * d->nx + x];
    ct_code rc = ct_fits_write_image(path, d, f, err);
    free(f);
    return rc;
}

typedef struct products {
    double *psf, *dirty, *residual, *model, *restored, *pbcor;
    double *psf2; /* the PSF CLEAN uses: psf_n by psf_n (2n, or n as psf) */
    /* The dirty image while the imager lives, in float32: the file holds
     * float32 (fitsimage.h), so nothing that is written is lost, and the
     * major cycles' peak is 92 MB lower at 4800^2; dirty is made from it
     * for writing. */
    float *dirty_f;
    int psf_n;
} products;

static void products_free(products *p)
{
    free(p->psf2);
    free(p->psf);
    free(p->dirty);
    free(p->dirty_f);
    free(p->residual);
    free(p->model);
    free(p->restored);
    free(p->pbcor);
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* Writes the six images and, with export_vis, the rows as imaged. */
/* The FITS files in the order write_products holds their pixels, then the quick look. */
const char *const ct_imaging_outputs[] = {"dirty.fits",    "psf.fits",   "model.fits",
                                          "residual.fits", "image.fits", "image-pb.fits",
                                          "image.png",     NULL};

static ct_code write_products(const ct_image_opts *o, const ct_image_result *r, const products *p,
                              const char *object, ct_err *err)
{
    ct_fits_keyword qa[] = {
        {"NVIS", (double)r->n_vis, "visibilities imaged (Stokes I rows)"},
        {"NCOMP", (double)r->qa.n_components, "CLEAN components"},
        {"NITER", (double)r->iterations, "CLEAN iterations"},
        {"NMAJOR", (double)r->major_cycles, "major cycles"},
        {"RMSNOISE", r->qa.rms_jy, "Jy/beam, 1.4826 MAD of the residual"},
        {"PEAKFLUX", r->qa.peak_jy, "Jy/beam, restored image"},
        {"DYNRANGE", r->qa.dynamic_range, "peak / rms"},
        {"ROBUST", o->robust, "Briggs robust (if Briggs)"},
        {"GRIDEPS", o->epsilon, "gridding accuracy"},
        {"PBLIMIT", o->pblimit, "primary-beam cutoff"},
    };
    ct_fits_image_desc d = {
        .nx = r->nx,
        .ny = r->ny,
        .ra_deg = r->ra_deg,
        .dec_deg = r->dec_deg,
        .crpix1 = r->nx / 2,
        .crpix2 = r->ny / 2 + 1,
        .cdelt_deg = r->cell_arcsec / 3600.0,
        .projection = "SIN",
        .pv2_1 = r->slant_xi,
        .pv2_2 = r->slant_eta,
        .freq_hz = r->freq_hz,
        .bandwidth_hz = r->bandwidth_hz,
        .bmaj_deg = r->beam.bmaj * 180.0 / M_PI,
        .bmin_deg = r->beam.bmin * 180.0 / M_PI,
        .bpa_deg = r->beam.bpa * 180.0 / M_PI,
        .date_obs = r->date_obs[0] ? r->date_obs : NULL,
        .object = object,
        .extra = qa,
        .n_extra = (int)(sizeof qa / sizeof qa[0]),
    };
    /* In ct_imaging_outputs' order: its FITS files, then the quick look. */
    const struct {
        const double *img;
        const char *bunit;
    } files[] = {
        {p->dirty, NULL},    {p->psf, NULL},      {p->model, "JY/PIXEL"},
        {p->residual, NULL}, {p->restored, NULL}, {p->pbcor, NULL},
    };
    /* The set is all there or none of it: each file is written (atomically) under a staged
     * name, and the staged files are renamed to their names only once every one is written.
     * A failure removes what was staged and leaves the files of an earlier run as they were;
     * a crash leaves staged names, which hold ".tmp-" and go when the task is run again. */
    enum { NFILES = sizeof files / sizeof files[0] + 1 };
    char final[NFILES][4096], staged[NFILES][4200];
    size_t n = 0;
    ct_code rc = CT_OK;
    for (size_t i = 0; i < NFILES; i++) {
        if (snprintf(final[i], sizeof final[i], "%s-%s", o->out_prefix, ct_imaging_outputs[i]) >=
                (int)sizeof final[i] ||
            snprintf(staged[i], sizeof staged[i], "%s.tmp-%ld-set", final[i], (long)getpid()) >=
                (int)sizeof staged[i])
            return ct_fail(err, CT_EINVAL, "imaging: output prefix too long");
    }
    for (; rc == CT_OK && n < NFILES - 1; n++) {
        d.bunit = files[n].bunit;
        rc = write_fits(staged[n], &d, files[n].img, err);
    }
    /* The restored image's quick look, as a FITS viewer shows it (RA to the left), for the
     * status page of `contimg serve`. */
    if (rc == CT_OK && (rc = ct_png_quicklook(staged[n], p->restored, r->nx, r->ny, r->qa.rms_jy,
                                              r->qa.peak_jy, 512, 1, err)) == CT_OK)
        n++;
    for (size_t i = 0; rc == CT_OK && i < n; i++) { /* what would refuse a rename, first */
        struct stat st;
        if (lstat(final[i], &st) == 0 && !S_ISREG(st.st_mode))
            rc = ct_fail(err, CT_EINVAL, "imaging: %s stands where %s goes",
                         S_ISDIR(st.st_mode) ? "a directory" : "something not a file", final[i]);
    }
    for (size_t i = 0; rc == CT_OK && i < n; i++)
        if (rename(staged[i], final[i]) != 0)
            rc = ct_fail(err, CT_EIO, "imaging: cannot rename %s to %s: %s", staged[i], final[i],
                         strerror(errno));
    if (rc == CT_OK)
        ct_fsync_parent(final[0]);
    for (size_t i = 0; rc != CT_OK && i < n; i++)
        unlink(staged[i]);
    return rc;
}

/* The rows as imaged, for a peer gridder: n rows of little-endian doubles
 * (u, v, w in wavelengths, re, im, imaging weight), written atomically. */
static ct_code export_rows(const char *path, const ct_imager *im, ct_err *err)
{
    size_t n = ct_imager_nrows(im);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return ct_fail(err, CT_EIO, "cannot create %s: %s", tmp, strerror(errno));
    int ok = 1;
    for (size_t k = 0; k < n && ok; k++) {
        double row[6];
        double complex v;
        ct_imager_row(im, k, row, &v, &row[5]);
        row[3] = creal(v);
        row[4] = cimag(v);
        ok = fwrite(row, sizeof row, 1, f) == 1;
    }
    ok = (fflush(f) == 0) & ok;
    ok = (fsync(fileno(f)) == 0) & ok;
    ok = (fclose(f) == 0) & ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return ct_fail(err, CT_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    return CT_OK;
}

/* ---- the default geometry ---- */

/* The drift-averaged wideband beam (equal weights over channels and
 * integrations: the imaging weights are not known yet) at (l, m). */
static double drift_beam(double l, double m, const double *freq, size_t nfreq,
                         const ct_vis_pointing *pt)
{
    double s = 0;
    for (size_t q = 0; q < pt->n; q++)
        s += ct_pb_value(hypot(l - pt->l[q], m - pt->m[q]), nfreq, freq, NULL);
    return s / (double)pt->n;
}

/* How far from the centre, along +-l and +-m, the beam stays at or above
 * pblimit: the field's half-width (direction cosine). */
static double beam_half_width(const double *freq, size_t nfreq, const ct_vis_pointing *pt,
                              double pblimit)
{
    const double dirs[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};
    double widest = 0;
    for (int d = 0; d < 4; d++) {
        /* Out in steps of 1e-3 (0.06 deg) to the first below the limit, then bisection. */
        double lo = 0, hi = 1e-3;
        while (hi < 0.5 &&
               drift_beam(hi * dirs[d][0], hi * dirs[d][1], freq, nfreq, pt) >= pblimit) {
            lo = hi;
            hi += 1e-3;
        }
        for (int it = 0; it < 40; it++) {
            double mid = 0.5 * (lo + hi);
            if (drift_beam(mid * dirs[d][0], mid * dirs[d][1], freq, nfreq, pt) >= pblimit)
                lo = mid;
            else
                hi = mid;
        }
        widest = fmax(widest, lo);
    }
    return widest;
}

/* The smallest even n' >= n whose only prime factors are 2, 3 and 5 (the
 * sizes FFTW transforms fastest). */
static int smooth_even(int n)
{
    for (int m = n + (n & 1);; m += 2) {
        int r = m;
        while (r % 2 == 0)
            r /= 2;
        while (r % 3 == 0)
            r /= 3;
        while (r % 5 == 0)
            r /= 5;
        if (r == 1)
            return m;
    }
}

/* The synthesized beam's minor FWHM (radians), predicted before imaging
 * from the curvature of the PSF at its peak: with weights w_k,
 * PSF(l) ~ 1 - 2 pi^2 l^T M l, M the weighted second moments of (u, v), so
 * its narrowest Gaussian has FWHM sqrt(2 ln 2) / (pi sqrt(max eig M)). The
 * weights are those of the requested kind, from a density of row counts on
 * uv cells of 1 / field (the imaging grid's), gathered as integers so that
 * the figure is the same bits on any number of ranks. This is the
 * resolution of the data, which the pixels must sample; with well-filled
 * coverage (a full observation) the fitted beam agrees with it to a few per
 * cent. With sparse coverage (a few antennas, channels or integrations) the
 * PSF's main lobe, to which the restoring beam is fitted, is a broad plateau
 * under the narrow spike of the longest baselines, and the fitted beam can
 * then be several times wider: more pixels across it, never too few. */
static ct_code predicted_beam(MPI_Comm comm, const ct_visset *vs, const ct_image_opts *o,
                              double uvmax, double field, double *fwhm, ct_err *err)
{
    double du = 1.0 / field;
    long half = (long)ceil(uvmax / du) + 1;
    if (half > 2048) { /* a coarser density, no more than 4097^2 cells */
        du = uvmax / 2047.0;
        half = 2048;
    }
    const long side = 2 * half + 1;
    int *cnt = calloc((size_t)side * (size_t)side, sizeof *cnt);
    ct_code rc = cnt ? CT_OK : ct_fail(err, CT_ENOMEM, "out of memory for the uv density");
    for (size_t k = 0; rc == CT_OK && k < vs->n; k++) {
        double uvw[3];
        ct_visset_uvw(vs, k, uvw);
        const double u = uvw[0], v = uvw[1];
        if (hypot(u, v) < o->min_uv_lambda)
            continue;
        long iu = lround(u / du), iv = lround(v / du);
        if (labs(iu) > half - 1 || labs(iv) > half - 1)
            continue;
        cnt[(iv + half) * side + iu + half]++; /* the row and its conjugate */
        cnt[(-iv + half) * side - iu + half]++;
    }
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK) {
        free(cnt);
        return rc;
    }
    MPI_Allreduce(MPI_IN_PLACE, cnt, (int)(side * side), MPI_INT, MPI_SUM, comm);
    double s1 = 0, s2 = 0;
    for (long c = 0; c < side * side; c++) {
        s1 += cnt[c];
        s2 += (double)cnt[c] * cnt[c];
    }
    double f2 =
        o->weight == CT_WEIGHT_BRIGGS && s1 > 0 ? ct_weight_briggs_f2(o->robust, s2, s1) : 0;
    double sw = 0, a = 0, b = 0, c2 = 0;
    for (long iv = -half; iv <= half; iv++)
        for (long iu = -half; iu <= half; iu++) {
            double n = cnt[(iv + half) * side + iu + half];
            if (n == 0)
                continue;
            double w = o->weight == CT_WEIGHT_NATURAL   ? n
                       : o->weight == CT_WEIGHT_UNIFORM ? 1.0
                                                        : n / (1.0 + n * f2);
            double u = iu * du, v = iv * du;
            sw += w;
            a += w * u * u;
            b += w * u * v;
            c2 += w * v * v;
        }
    free(cnt);
    if (!(sw > 0))
        return ct_fail(err, CT_EINVAL, "no data: nothing left to image after flags and the uv cut");
    a /= sw;
    b /= sw;
    c2 /= sw;
    double eig = 0.5 * (a + c2) + sqrt(0.25 * (a - c2) * (a - c2) + b * b);
    *fwhm = sqrt(2.0 * log(2.0)) / (M_PI * sqrt(eig));
    return CT_OK;
}

/* The rows read for the imager, freed by it once it has copied them. */
typedef struct caller_rows {
    ct_visset *vs;
    int **epoch;
} caller_rows;

static void free_caller_rows(void *arg)
{
    caller_rows *c = arg;
    ct_visset_free(c->vs);
    free(*c->epoch);
    *c->epoch = NULL;
}

/* Keeps only the rows the imager would keep (ct_weight_kept: unflagged, on
 * the grid, inside the uv cuts), in their order, and gives the rest of the
 * arrays back: the imager drops the others at once anyway, so the result is
 * the same bits, but they never cost the load its records. (The short rows
 * are already gone: ct_visset_read cuts them as it reads; what goes here
 * is what the geometry decides, rows past the grid's edge.) A shrink that
 * realloc refuses keeps the bigger block. */
static void keep_imaged_rows(ct_visset *vs, const ct_weight_opts *wo)
{
    size_t m = 0;
    for (size_t k = 0; k < vs->n; k++) {
        double uvw[3];
        ct_visset_uvw(vs, k, uvw);
        if (!ct_weight_kept(wo, uvw[0], uvw[1], vs->weight[k]))
            continue;
        vs->blt[m] = vs->blt[k];
        vs->vis[m] = vs->vis[k];
        vs->weight[m] = vs->weight[k];
        vs->chan[m] = vs->chan[k];
        m++;
    }
    vs->n = m;
    void *p;
    if ((p = realloc(vs->blt, (m + 1) * sizeof *vs->blt)))
        vs->blt = p;
    if ((p = realloc(vs->vis, (m + 1) * sizeof *vs->vis)))
        vs->vis = p;
    if ((p = realloc(vs->weight, (m + 1) * sizeof *vs->weight)))
        vs->weight = p;
    if ((p = realloc(vs->chan, (m + 1) * sizeof *vs->chan)))
        vs->chan = p;
}

/* The visset's rows as the imager takes them (blt_epoch: per baseline-time). */
static ct_imager_rows imager_rows(const ct_visset *vs, const int *blt_epoch, int nchan, int nepoch)
{
    return (ct_imager_rows){.n = vs->n,
                            .blt = vs->blt,
                            .chan = vs->chan,
                            .vis_f = vs->vis,
                            .weight_f = vs->weight,
                            .nblt = vs->nblt,
                            .blt_uvw = vs->blt_uvw,
                            .blt_epoch = blt_epoch,
                            .chan_scale = vs->chan_per_m,
                            .nchan = nchan,
                            .nepoch = nepoch};
}

/* Rank 0's minor cycle: Hogbom until the peak residual falls by mgain (or
 * the threshold, or niter). Returns 0 when nothing more is to be done. */
static int minor_cycle(const ct_image_opts *o, ct_image_result *r, products *p, int n, int threads,
                       ct_clean_components *comps, ct_err *err, ct_code *rc)
{
    double peak = max_abs(p->residual, (size_t)n * n);
    if (r->iterations >= o->niter) {
        r->stop_reason = "niter";
        return 0;
    }
    if (peak <= o->threshold_jy) {
        r->stop_reason = "threshold";
        return 0;
    }
    if (r->major_cycles >= o->max_major) {
        r->stop_reason = "major cycles";
        return 0;
    }
    ct_clean_opts co;
    ct_clean_opts_default(&co);
    co.gain = o->gain;
    co.niter = o->niter - r->iterations;
    co.threshold = fmax(o->threshold_jy, (1.0 - o->mgain) * peak);
    /* The major cycle after this one recomputes the residual from the
     * visibilities, so the minor cycle need only keep the pixels that can
     * become peaks: those above half its stopping level (clean.h). At the
     * production geometry that is a few thousand of 23 million pixels. */
    co.active_below = 0.5 * co.threshold;
    co.psf_nx = co.psf_ny = p->psf_n;
    co.threads = threads;
    ct_clean_result cr;
    *rc = ct_clean_hogbom(p->residual, p->psf2 ? p->psf2 : p->psf, n, n, &co, comps, &cr, err);
    if (*rc != CT_OK)
        return 0;
    r->iterations += cr.iterations;
    if (cr.iterations == 0) {
        r->stop_reason = "threshold";
        return 0;
    }
    return 1;
}

ct_code ct_image_observation(MPI_Comm comm, const char *visfile, const ct_image_opts *o,
                             ct_image_result *res, ct_err *err)
{
    double t_start = MPI_Wtime();
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    memset(res, 0, sizeof *res);
    res->ranks = size;
    res->stop_reason = "niter";
    ct_code rc = !o->out_prefix || !o->out_prefix[0]
                     ? ct_fail(err, CT_EINVAL, "imaging: no output prefix")
                     : ct_image_opts_check(o, err);
    if (rc == CT_OK && o->export_vis && size != 1)
        rc = ct_fail(err, CT_EINVAL, "imaging: --export-vis runs on one rank only");
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        return rc;

    /* 1. Read this rank's baseline-times. */
    ct_uvh5_file *f = NULL;
    ct_visset vs = {0};
    ct_vis_centre centre = {0};
    ct_vis_pointing pt = {0};
    int *epoch = NULL;
    rc = ct_uvh5_open(visfile, &f, err);
    const ct_uvh5_header *h = rc == CT_OK ? ct_uvh5_header_get(f) : NULL;
    if (rc == CT_OK)
        rc = ct_vis_centre_of(h, &centre, err);
    if (rc == CT_OK) {
        size_t nb = (size_t)h->Nblts, b0 = nb * (size_t)rank / (size_t)size,
               b1 = nb * ((size_t)rank + 1) / (size_t)size;
        rc = ct_visset_read(f, b0, b1 - b0, &centre, o->min_uv_lambda, &vs, err);
    }
    if (rc == CT_OK)
        rc = ct_vis_pointings(h, &centre, &pt, err);
    /* Each baseline-time's epoch: the integration, for the primary beam's average. */
    if (rc == CT_OK && !(epoch = malloc((vs.nblt + 1) * sizeof *epoch)))
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %zu baseline-times", vs.nblt);
    for (size_t k = 0; rc == CT_OK && k < vs.nblt; k++)
        if ((epoch[k] = (int)ct_vis_pointing_index(&pt, h->time_array[vs.blt_start + k])) < 0)
            rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                            "corrupt input: baseline-time %zu has no time", vs.blt_start + k);
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto out;
    unsigned long long cnt[2] = {vs.n_flagged, vs.n_nonfinite}, tot[2];
    MPI_Allreduce(cnt, tot, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
    res->n_flagged = (size_t)tot[0];
    res->n_nonfinite = (size_t)tot[1];
    res->ra_deg = centre.ra_rad * 180.0 / M_PI;
    res->dec_deg = centre.dec_rad * 180.0 / M_PI;
    res->freq_hz = 0.5 * (vs.freq_min_hz + vs.freq_max_hz);
    res->bandwidth_hz = vs.bandwidth_hz;
    {
        double t0 = INFINITY;
        for (int i = 0; i < h->Nblts; i++)
            t0 = fmin(t0, h->time_array[i] - 0.5 * h->integration_time[i] / 86400.0);
        iso_date(t0, res->date_obs, sizeof res->date_obs);
    }
    res->t_read = MPI_Wtime() - t_start;

    /* 2. Geometry, where not given: the field out to where the drift-averaged
     * primary beam falls to pblimit, the cell a quarter of the synthesized
     * beam's predicted minor axis (3-5 pixels across the beam as fitted),
     * the size rounded up to an FFT-friendly even number. */
    double uvmax = 0;
    for (size_t k = 0; k < vs.n; k++) {
        double uvw[3];
        ct_visset_uvw(&vs, k, uvw);
        double r = hypot(uvw[0], uvw[1]);
        if (r >= o->min_uv_lambda)
            uvmax = fmax(uvmax, r);
    }
    MPI_Allreduce(MPI_IN_PLACE, &uvmax, 1, MPI_DOUBLE, MPI_MAX, comm);
    double cell = o->cell_arcsec * ARCSEC;
    double half_width = 0;
    if (o->cell_arcsec == 0 || o->size == 0)
        half_width = beam_half_width(h->freq_array, (size_t)h->Nfreqs, &pt, o->pblimit);
    if (o->cell_arcsec == 0) {
        double fwhm = 0;
        if (!(uvmax > 0))
            rc = ct_fail(err, CT_EINVAL, "no data: no unflagged baseline to set the cell from");
        else
            rc = predicted_beam(comm, &vs, o, uvmax, 2 * half_width, &fwhm, err);
        /* To 0.01 arcsec, so that headers and logs read plainly. */
        cell = round(fwhm / 4.0 / ARCSEC * 100.0) / 100.0 * ARCSEC;
        cell = fmin(fmax(cell, 0.1 * ARCSEC), 60.0 * ARCSEC);
    }
    int n = o->size;
    if (rc == CT_OK && n == 0) {
        double want = 2 * ceil(half_width / cell);
        if (want > 1e6)
            rc = ct_fail(err, CT_EINVAL, "imaging: %.0f pixels per side is absurd", want);
        else
            n = smooth_even((int)want);
    }
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        goto out;
    res->nx = res->ny = n;
    res->cell_arcsec = cell / ARCSEC;

    /* 3. With psf_double, the PSF at twice the image's size, so that CLEAN
     * subtracts every component's sidelobes over the whole image (clean.h),
     * with the very weights of the image; then the imager itself. By default
     * the PSF is the image's size, as WSClean's: a component far from the
     * centre then leaves the far part of its sidelobes in the residual of
     * the minor cycle, which the next major cycle, working from the
     * visibilities, takes out (and a bigger PSF costs the work of about two
     * more passes over the data). */
    ct_weight_opts wo = {.kind = o->weight,
                         .robust = o->robust,
                         .min_uv_lambda = o->min_uv_lambda,
                         .nx = n,
                         .ny = n,
                         .cell_rad = cell};
    size_t npix = (size_t)n * n;
    keep_imaged_rows(&vs, &wo);
    const ct_imager_rows rows = imager_rows(&vs, epoch, h->Nfreqs, (int)pt.n);
    double *psf2 = NULL;
    {
        ct_imager *big = NULL;
        ct_err e2;
        ct_imager_geom g2 = {.nx = 2 * n,
                             .ny = 2 * n,
                             .cell_rad = cell,
                             .epsilon = o->epsilon,
                             .no_wterms = o->no_wterms,
                             .max_bytes = o->max_bytes,
                             .threads = o->threads,
                             .grid_bits = o->grid_bits,
                             .slant = o->slant,
                             /* slanted exactly when the image is */
                             .slant_nx = n,
                             .slant_ny = n};
        /* Without CLEAN the big PSF has no use: the image-sized one gives the beam. */
        ct_code r2 =
            o->niter > 0 && o->psf_double ? ct_imager_create(comm, &g2, &big, &e2) : CT_EINVAL;
        if (r2 == CT_OK) {
            if (rank == 0 && !(psf2 = malloc(4 * npix * sizeof *psf2)))
                r2 = ct_fail(&e2, CT_ENOMEM, "out of memory for the PSF");
            if ((r2 = ct_mpi_agree(comm, r2, &e2)) == CT_OK)
                r2 = ct_imager_load_rows(big, &rows, &wo, &e2);
            if (r2 == CT_OK)
                r2 = ct_imager_image(big, 1, psf2, &e2);
            ct_imager_get_stats(big, &res->psf_stats);
            ct_imager_destroy(big);
        }
        if (r2 != CT_OK) {
            /* Too large for memory, or reaching the horizon: CLEAN with a
             * PSF of the image's size (far sidelobes cut, see clean.h). */
            free(psf2);
            psf2 = NULL;
        }
        res->psf_size = psf2 ? 2 * n : n;
    }
    ct_imager *im = NULL;
    ct_imager_geom g = {.nx = n,
                        .ny = n,
                        .cell_rad = cell,
                        .epsilon = o->epsilon,
                        .no_wterms = o->no_wterms,
                        .max_bytes = o->max_bytes,
                        .threads = o->threads,
                        .grid_bits = o->grid_bits,
                        .slant = o->slant};
    if ((rc = ct_imager_create(comm, &g, &im, err)) != CT_OK) {
        free(psf2);
        goto out;
    }
    /* The rows go as soon as the imager holds its copy (lowers the peak). */
    caller_rows held = {&vs, &epoch};
    ct_imager_on_copied(im, free_caller_rows, &held);
    rc = ct_imager_load_rows(im, &rows, &wo, err);
    char object[72] = "";
    if (h->object_name)
        snprintf(object, sizeof object, "%s", h->object_name);
    ct_visset_free(&vs);
    free(epoch);
    epoch = NULL;
    if (rc != CT_OK) {
        ct_imager_destroy(im);
        free(psf2);
        goto out;
    }

    /* The rows as imaged go out now, before any model: the imager holds
     * the residual in place of the loaded visibilities (imager.h). One rank
     * only (checked above). */
    if (o->export_vis) {
        double t0 = MPI_Wtime();
        rc = export_rows(o->export_vis, im, err);
        res->t_write = MPI_Wtime() - t0;
        if (rc != CT_OK) {
            ct_imager_destroy(im);
            free(psf2);
            goto out;
        }
    }

    {
        ct_imager_stats st = {0};
        ct_imager_get_stats(im, &st);
        res->slant_xi = st.slant_xi;
        res->slant_eta = st.slant_eta;
        res->threads = st.threads;
    }

    /* 4. PSF, dirty image, CLEAN in major cycles (rank 0 holds the images). */
    products p = {0};
    p.psf2 = psf2;
    p.psf_n = res->psf_size;
    if (rank == 0) {
        p.psf = malloc(npix * sizeof(double));
        p.dirty_f = malloc(npix * sizeof *p.dirty_f);
        p.residual = malloc(npix * sizeof(double));
        p.model = calloc(npix, sizeof(double));
        p.restored = malloc(npix * sizeof(double));
        p.pbcor = malloc(npix * sizeof(double));
        if (!p.psf || !p.dirty_f || !p.residual || !p.model || !p.restored || !p.pbcor)
            rc = ct_fail(err, CT_ENOMEM, "out of memory for %d x %d images", n, n);
    }
    if ((rc = ct_mpi_agree(comm, rc, err)) == CT_OK && res->psf_size == n)
        rc = ct_imager_image(im, 1, p.psf, err);
    if (rc == CT_OK && rank == 0 && res->psf_size != n) {
        /* The image-sized PSF written out is the big one's centre. */
        for (int y = 0; y < n; y++)
            memcpy(p.psf + (size_t)y * n, psf2 + (size_t)(y + n / 2) * 2 * n + n / 2,
                   (size_t)n * sizeof(double));
    }
    if (rc == CT_OK && rank == 0)
        rc = ct_beam_fit(p.psf, n, n, cell, &res->beam, err);
    if ((rc = ct_mpi_agree(comm, rc, err)) == CT_OK)
        rc = ct_imager_image(im, 0, p.residual, err);
    if (rc == CT_OK && rank == 0)
        for (size_t k = 0; k < npix; k++)
            p.dirty_f[k] = (float)p.residual[k];
    ct_clean_components comps = {0};
    double t_clean = 0;
    while (rc == CT_OK) {
        int go = 0;
        if (rank == 0) {
            double t0 = MPI_Wtime();
            ct_imager_stats st = {0};
            ct_imager_get_stats(im, &st);
            go = minor_cycle(o, res, &p, n, st.threads, &comps, err, &rc);
            t_clean += MPI_Wtime() - t0;
        }
        if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
            break;
        MPI_Bcast(&go, 1, MPI_INT, 0, comm);
        if (!go)
            break;
        res->major_cycles++;
        rc = ct_imager_set_model(im, &comps, err);
        if (rc == CT_OK)
            rc = ct_imager_image(im, 0, p.residual, err);
    }

    /* 5. The imager's work is done: its figures, the imaging weights the
     * primary beam averages with and any exported rows are taken from it,
     * and it goes before the restored and primary-beam images are made, so
     * that those never sit beside its rows and grids. */
    {
        ct_imager_stats st = {0};
        ct_imager_get_stats(im, &st);
        res->n_vis = st.n_rows;
        res->w_planes = st.w_planes;
        res->support = st.support;
        res->plane_group = st.plane_group;
        res->grid_bits = st.grid_bits;
        res->grid_row_cells = st.row_cells;
        res->threads = st.threads;
        res->grid_passes = st.grid_passes;
        res->epsilon = o->epsilon;
        res->t_weights = st.t_weights;
        res->t_grid = st.t_grid;
        res->t_fft = st.t_fft;
        res->t_degrid = st.t_degrid;
    }
    double *pb_w = NULL; /* the channels' imaging weights, then the epochs' */
    if (rc == CT_OK && rank == 0) {
        const size_t nc = (size_t)h->Nfreqs;
        if (!(pb_w = malloc((nc + pt.n + 1) * sizeof *pb_w)))
            rc = ct_fail(err, CT_ENOMEM, "out of memory");
        else {
            memcpy(pb_w, ct_imager_channel_weights(im), nc * sizeof *pb_w);
            memcpy(pb_w + nc, ct_imager_epoch_weights(im), pt.n * sizeof *pb_w);
        }
    }
    rc = ct_mpi_agree(comm, rc, err);
    ct_imager_destroy(im);

    /* 6. Restore, primary beam, QA, files (rank 0). */
    if (rc == CT_OK && rank == 0) {
        if (!(p.dirty = malloc(npix * sizeof(double))))
            rc = ct_fail(err, CT_ENOMEM, "out of memory for %d x %d images", n, n);
        for (size_t k = 0; p.dirty && k < npix; k++)
            p.dirty[k] = p.dirty_f[k];
        free(p.dirty_f);
        p.dirty_f = NULL;
    }
    if (rc == CT_OK && rank == 0) {
        double t0 = MPI_Wtime();
        rc = ct_clean_restore(&comps, &res->beam, cell, p.residual, n, n, p.restored, err);
        for (size_t c = 0; c < comps.n; c++)
            p.model[(size_t)comps.items[c].iy * n + comps.items[c].ix] = comps.items[c].flux;
        if (rc == CT_OK)
            rc = ct_pb_correct_drift(p.restored, n, n, cell, h->freq_array, pb_w, (size_t)h->Nfreqs,
                                     pt.l, pt.m, pb_w + h->Nfreqs, pt.n,
                                     (const double[2]){res->slant_xi, res->slant_eta}, res->threads,
                                     o->pblimit, p.pbcor, NULL, err);
        if (rc == CT_OK)
            rc = ct_image_qa_measure(p.restored, p.residual, n, n, &res->beam, comps.n, &res->qa,
                                     err);
        t_clean += MPI_Wtime() - t0;
        t0 = MPI_Wtime();
        if (rc == CT_OK)
            rc = write_products(o, res, &p, object[0] ? object : NULL, err);
        res->t_write += MPI_Wtime() - t0;
    }
    rc = ct_mpi_agree(comm, rc, err);
    MPI_Bcast(&res->qa, (int)sizeof res->qa, MPI_BYTE, 0, comm);
    res->t_clean = t_clean;
    free(pb_w);
    ct_clean_components_free(&comps);
    products_free(&p);
out:
    ct_visset_free(&vs);
    ct_vis_pointing_free(&pt);
    free(epoch);
    if (f)
        ct_uvh5_close(f, NULL);
    res->t_total = MPI_Wtime() - t_start;
    {
        struct rusage ru;
        double mine = getrusage(RUSAGE_SELF, &ru) == 0 ? 1024.0 * (double)ru.ru_maxrss : 0;
        MPI_Allreduce(&mine, &res->peak_rss_bytes, 1, MPI_DOUBLE, MPI_SUM, comm);
    }
    return rc;
}

json_t *ct_image_result_json(const ct_image_result *r)
{
    json_t *t = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "read", r->t_read, "weights",
                          r->t_weights, "grid", r->t_grid, "fft", r->t_fft, "degrid", r->t_degrid,
                          "clean", r->t_clean, "write", r->t_write, "total", r->t_total);
    json_t *qa =
        json_pack("{s:f, s:f, s:i, s:i, s:f, s:f, s:f, s:f, s:I, s:f, s:I, s:I}", "rms_jy",
                  r->qa.rms_jy, "peak_jy", r->qa.peak_jy, "peak_x", r->qa.peak_x, "peak_y",
                  r->qa.peak_y, "dynamic_range", r->qa.dynamic_range, "bmaj_arcsec",
                  r->qa.bmaj_arcsec, "bmin_arcsec", r->qa.bmin_arcsec, "bpa_deg", r->qa.bpa_deg,
                  "n_components", (json_int_t)r->qa.n_components, "mean_jy", r->qa.mean_jy,
                  "n_finite", (json_int_t)r->qa.n_finite, "n_blank", (json_int_t)r->qa.n_blank);
    json_t *o =
        json_pack("{s:I, s:I, s:I, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:s}", "n_vis",
                  (json_int_t)r->n_vis, "n_flagged", (json_int_t)r->n_flagged, "n_nonfinite",
                  (json_int_t)r->n_nonfinite, "nx", r->nx, "ny", r->ny, "cell_arcsec",
                  r->cell_arcsec, "centre_ra_deg", r->ra_deg, "centre_dec_deg", r->dec_deg,
                  "freq_hz", r->freq_hz, "bandwidth_hz", r->bandwidth_hz, "date_obs", r->date_obs);
    json_object_set_new(o, "w_planes", json_integer(r->w_planes));
    json_object_set_new(o, "support", json_integer(r->support));
    json_object_set_new(o, "psf_size", json_integer(r->psf_size));
    json_object_set_new(o, "plane_group", json_integer(r->plane_group));
    json_object_set_new(o, "grid_bits", json_integer(r->grid_bits));
    json_object_set_new(o, "grid_row_cells", json_integer(r->grid_row_cells));
    json_object_set_new(o, "slant_xi", json_real(r->slant_xi));
    json_object_set_new(o, "slant_eta", json_real(r->slant_eta));
    json_object_set_new(o, "grid_passes", json_integer(r->grid_passes));
    json_object_set_new(o, "epsilon", json_real(r->epsilon));
    json_object_set_new(o, "ranks", json_integer(r->ranks));
    json_object_set_new(o, "threads", json_integer(r->threads));
    json_object_set_new(o, "major_cycles", json_integer(r->major_cycles));
    json_object_set_new(o, "peak_rss_bytes", json_integer((json_int_t)r->peak_rss_bytes));
    json_object_set_new(o, "iterations", json_integer(r->iterations));
    json_object_set_new(o, "stop_reason", json_string(r->stop_reason ? r->stop_reason : ""));
    json_object_set_new(o, "qa", qa);
    json_object_set_new(o, "timings", t);
    return o;
}
