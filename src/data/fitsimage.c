/*
 * fitsimage.c -- FITS images with a full WCS (see fitsimage.h).
 */
#define _GNU_SOURCE
#include "fitsimage.h"

#include "fsutil.h"

#include <erfa.h>
#include <errno.h>
#include <fitsio.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Keywords this module writes itself (or cfitsio writes for it): a caller's
 * extra keyword may not reuse them, and the reader does not report them as extra. */
static const char *const reserved_keys[] = {
    "SIMPLE",   "BITPIX",  "NAXIS",   "EXTEND",   "END",      "BSCALE",   "BZERO",    "BLANK",
    "COMMENT",  "HISTORY", "BUNIT",   "BTYPE",    "BMAJ",     "BMIN",     "BPA",      "EQUINOX",
    "RADESYS",  "SPECSYS", "RESTFRQ", "RESTFREQ", "DATE-OBS", "MJD-OBS",  "TIMESYS",  "TELESCOP",
    "INSTRUME", "ORIGIN",  "OBJECT",  "OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z", "OBSGEO-L", "OBSGEO-B",
    "OBSGEO-H", "LONPOLE", "LATPOLE", "DATE",     "EPOCH",    "RADECSYS",
};

/* Prefixes that, followed by a digit, name WCS keywords (CTYPE1, PC1_1, PV2_1, ...). */
static const char *const wcs_prefixes[] = {"NAXIS", "CTYPE", "CRVAL", "CDELT", "CRPIX", "CUNIT",
                                           "CROTA", "PC",    "CD",    "PV",    "PS"};

static bool is_reserved_key(const char *name)
{
    for (size_t i = 0; i < sizeof reserved_keys / sizeof reserved_keys[0]; i++)
        if (strcmp(name, reserved_keys[i]) == 0)
            return true;
    for (size_t i = 0; i < sizeof wcs_prefixes / sizeof wcs_prefixes[0]; i++) {
        size_t n = strlen(wcs_prefixes[i]);
        if (strncmp(name, wcs_prefixes[i], n) == 0 && name[n] >= '0' && name[n] <= '9')
            return true;
    }
    return false;
}

static bool valid_key_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n < 1 || n > 8)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* A string a FITS value can hold: printable ASCII, short enough for one card. */
static bool valid_fits_string(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 32 || s[i] > 126)
            return false;
    return true;
}

/* MJD (UTC) of an ISO date "YYYY-MM-DD[Thh:mm:ss[.sss]]"; false when it is not one. */
static bool iso_to_mjd(const char *iso, double *mjd)
{
    int status = 0, y, mo, d, h, mi;
    double s;
    if (strlen(iso) < 10 || fits_str2time((char *)iso, &y, &mo, &d, &h, &mi, &s, &status) != 0) {
        fits_clear_errmsg();
        return false;
    }
    double djm0, djm;
    if (eraCal2jd(y, mo, d, &djm0, &djm) != 0)
        return false;
    *mjd = djm + (h * 3600.0 + mi * 60.0 + s) / 86400.0;
    return true;
}

static ct_code validate(const ct_fits_image_desc *d, ct_err *err)
{
    if (d == NULL)
        return ct_fail(err, CT_EINVAL, "FITS image: no descriptor");
    if (d->nx < 1 || d->ny < 1)
        return ct_fail(err, CT_EINVAL, "FITS image: size %d x %d (each must be >= 1)", d->nx,
                       d->ny);
    if ((uint64_t)d->nx * (uint64_t)d->ny > (uint64_t)SIZE_MAX / sizeof(float) / 2)
        return ct_fail(err, CT_EINVAL, "FITS image: size %d x %d too large", d->nx, d->ny);
    if (!isfinite(d->ra_deg) || !isfinite(d->dec_deg) || d->dec_deg < -90 || d->dec_deg > 90)
        return ct_fail(err, CT_EINVAL, "FITS image: bad reference position (%g, %g) deg", d->ra_deg,
                       d->dec_deg);
    if (!isfinite(d->crpix1) || !isfinite(d->crpix2))
        return ct_fail(err, CT_EINVAL, "FITS image: reference pixel not finite");
    if (!(d->cdelt_deg > 0) || !isfinite(d->cdelt_deg) || d->cdelt_deg >= 180)
        return ct_fail(err, CT_EINVAL, "FITS image: pixel size %g deg (must be in (0, 180))",
                       d->cdelt_deg);
    const char *proj = d->projection ? d->projection : "SIN";
    if (strcmp(proj, "SIN") != 0 && strcmp(proj, "TAN") != 0)
        return ct_fail(err, CT_EINVAL, "FITS image: projection '%.16s' (SIN or TAN)", proj);
    if (!isfinite(d->pv2_1) || !isfinite(d->pv2_2) || fabs(d->pv2_1) > 10 || fabs(d->pv2_2) > 10 ||
        ((d->pv2_1 != 0 || d->pv2_2 != 0) && strcmp(proj, "SIN") != 0))
        return ct_fail(err, CT_EINVAL, "FITS image: slant (%g, %g): finite, within 10, SIN only",
                       d->pv2_1, d->pv2_2);
    if (!(d->freq_hz > 0) || !isfinite(d->freq_hz) || !(d->bandwidth_hz > 0) ||
        !isfinite(d->bandwidth_hz))
        return ct_fail(err, CT_EINVAL, "FITS image: frequency %g Hz, bandwidth %g Hz (both > 0)",
                       d->freq_hz, d->bandwidth_hz);
    bool beam = d->bmaj_deg != 0 || d->bmin_deg != 0 || d->bpa_deg != 0;
    if (beam && (!(d->bmaj_deg > 0) || !(d->bmin_deg > 0) || d->bmin_deg > d->bmaj_deg ||
                 !isfinite(d->bmaj_deg) || !isfinite(d->bpa_deg)))
        return ct_fail(err, CT_EINVAL,
                       "FITS image: beam %g x %g deg, PA %g (need bmaj >= bmin > 0)", d->bmaj_deg,
                       d->bmin_deg, d->bpa_deg);
    const char *strs[3] = {d->bunit, d->object, d->origin};
    for (int i = 0; i < 3; i++)
        if (strs[i] && !valid_fits_string(strs[i], 68))
            return ct_fail(err, CT_EINVAL,
                           "FITS image: string value not printable ASCII of <= 68 chars");
    double mjd;
    if (d->date_obs && !iso_to_mjd(d->date_obs, &mjd))
        return ct_fail(err, CT_EINVAL, "FITS image: DATE-OBS '%.40s' is not an ISO UTC date",
                       d->date_obs);
    if (d->n_extra < 0 || (d->n_extra > 0 && d->extra == NULL))
        return ct_fail(err, CT_EINVAL, "FITS image: bad extra keyword list");
    for (int i = 0; i < d->n_extra; i++) {
        const ct_fits_keyword *k = &d->extra[i];
        if (!valid_key_name(k->name) || is_reserved_key(k->name))
            return ct_fail(err, CT_EINVAL, "FITS image: extra keyword name '%.16s' not allowed",
                           k->name ? k->name : "(null)");
        if (!isfinite(k->value))
            return ct_fail(err, CT_EINVAL, "FITS image: extra keyword %s is not finite", k->name);
        if (k->comment && !valid_fits_string(k->comment, 47))
            return ct_fail(err, CT_EINVAL, "FITS image: comment of %s too long or not ASCII",
                           k->name);
        for (int j = 0; j < i; j++)
            if (strcmp(d->extra[j].name, k->name) == 0)
                return ct_fail(err, CT_EINVAL, "FITS image: extra keyword %s given twice", k->name);
    }
    return CT_OK;
}

/* One line from a cfitsio status and the oldest message on its stack. */
static ct_code fits_fail(ct_err *err, int status, const char *what, const char *path, int errnum)
{
    char text[FLEN_STATUS] = "", detail[FLEN_ERRMSG] = "";
    fits_get_errstatus(status, text);
    if (fits_read_errmsg(detail) == 0)
        detail[0] = '\0';
    fits_clear_errmsg();
    size_t n = strlen(detail);
    while (n > 0 && (detail[n - 1] == ' ' || detail[n - 1] == ':'))
        detail[--n] = '\0';
    /* What the file holds (a header cfitsio cannot parse, data past a file cut short or
     * never FITS) fails the same way again: corrupt input, CT_EINVAL. Trouble reaching the
     * file is CT_EIO and worth a retry. */
    struct stat st;
    const bool short_file = (status == END_OF_FILE || status == READ_ERROR) && path &&
                            stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
                            (st.st_size == 0 || st.st_size % 2880 != 0);
    const ct_code code = (status >= 200 && status < 500) || short_file ? CT_EINVAL : CT_EIO;
    return ct_fail(err, code, "%s %s: %s (cfitsio %d)%s%s%s%s", what, path, text, status,
                   detail[0] ? ": " : "", detail, errnum ? ": " : "",
                   errnum ? strerror(errnum) : "");
}

/* The fewest significant digits (15..17) that give back exactly v. */
static int sig_digits(double v)
{
    char buf[40];
    for (int p = 15; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*G", p, v);
        if (strtod(buf, NULL) == v)
            return p;
    }
    return 17;
}

static void key_dbl(fitsfile *f, const char *name, double v, const char *comment, int *status)
{
    fits_write_key_dbl(f, name, v, -sig_digits(v), comment, status);
}

static void key_str(fitsfile *f, const char *name, const char *v, const char *comment, int *status)
{
    fits_write_key_str(f, name, v, comment, status);
}

static void write_header(fitsfile *f, const ct_fits_image_desc *d, int *st)
{
    const char *proj = d->projection ? d->projection : "SIN";
    char ctype1[16], ctype2[16];
    snprintf(ctype1, sizeof ctype1, "RA---%s", proj);
    snprintf(ctype2, sizeof ctype2, "DEC--%s", proj);
    double crpix1 = d->crpix1 != 0 ? d->crpix1 : d->nx / 2 + 1;
    double crpix2 = d->crpix2 != 0 ? d->crpix2 : d->ny / 2 + 1;

    key_str(f, "BUNIT", d->bunit ? d->bunit : "JY/BEAM", "units of the pixel values", st);
    key_str(f, "BTYPE", "Intensity", NULL, st);
    if (d->bmaj_deg > 0) {
        key_dbl(f, "BMAJ", d->bmaj_deg, "[deg] restoring beam major axis FWHM", st);
        key_dbl(f, "BMIN", d->bmin_deg, "[deg] restoring beam minor axis FWHM", st);
        key_dbl(f, "BPA", d->bpa_deg, "[deg] restoring beam position angle, E of N", st);
    }
    key_str(f, "CTYPE1", ctype1, "right ascension", st);
    key_dbl(f, "CRVAL1", d->ra_deg, "[deg]", st);
    key_dbl(f, "CDELT1", -d->cdelt_deg, "[deg] RA increases to the left", st);
    key_dbl(f, "CRPIX1", crpix1, NULL, st);
    key_str(f, "CUNIT1", "deg", NULL, st);
    key_str(f, "CTYPE2", ctype2, "declination", st);
    key_dbl(f, "CRVAL2", d->dec_deg, "[deg]", st);
    key_dbl(f, "CDELT2", d->cdelt_deg, "[deg]", st);
    key_dbl(f, "CRPIX2", crpix2, NULL, st);
    key_str(f, "CUNIT2", "deg", NULL, st);
    if (d->pv2_1 != 0 || d->pv2_2 != 0) {
        key_dbl(f, "PV2_1", d->pv2_1, "SIN slant xi: x = l + xi (1 - n)", st);
        key_dbl(f, "PV2_2", d->pv2_2, "SIN slant eta: y = m + eta (1 - n)", st);
    }
    key_str(f, "CTYPE3", "FREQ", "topocentric frequency", st);
    key_dbl(f, "CRVAL3", d->freq_hz, "[Hz] centre frequency", st);
    key_dbl(f, "CDELT3", d->bandwidth_hz, "[Hz] bandwidth", st);
    key_dbl(f, "CRPIX3", 1.0, NULL, st);
    key_str(f, "CUNIT3", "Hz", NULL, st);
    key_str(f, "CTYPE4", "STOKES", NULL, st);
    key_dbl(f, "CRVAL4", 1.0, "Stokes I", st);
    key_dbl(f, "CDELT4", 1.0, NULL, st);
    key_dbl(f, "CRPIX4", 1.0, NULL, st);
    key_str(f, "RADESYS", "ICRS", "celestial reference frame", st);
    key_str(f, "SPECSYS", "TOPOCENT", "frequencies as observed at the site", st);
    key_dbl(f, "RESTFRQ", d->freq_hz, "[Hz]", st);

    /* No OBSGEO-*: WCSLIB (7.12, under Debian's astropy) completes a partial set and
     * astropy reports that as a fix, while its geodetic conversion differs from ERFA's
     * by metres, so no full set passes either. TELESCOP names the site. */
    if (d->date_obs) {
        double mjd = 0;
        (void)iso_to_mjd(d->date_obs, &mjd); /* validated before */
        key_str(f, "DATE-OBS", d->date_obs, "start of the observation (UTC)", st);
        key_dbl(f, "MJD-OBS", mjd, "[d] DATE-OBS as MJD", st);
    }
    key_str(f, "TELESCOP", "DSA-110", NULL, st);
    key_str(f, "INSTRUME", "DSA", NULL, st);
    key_str(f, "ORIGIN", d->origin ? d->origin : "contimg", NULL, st);
    if (d->object)
        key_str(f, "OBJECT", d->object, NULL, st);
    for (int i = 0; i < d->n_extra; i++)
        key_dbl(f, d->extra[i].name, d->extra[i].value, d->extra[i].comment, st);
}

/* Distinguishes writers in one process that target the same path. */
static atomic_ulong tmp_seq;

ct_code ct_fits_write_image(const char *path, const ct_fits_image_desc *d, const float *data,
                            ct_err *err)
{
    if (path == NULL || path[0] == '\0' || data == NULL)
        return ct_fail(err, CT_EINVAL, "FITS image: no path or no data");
    ct_code rc = validate(d, err);
    if (rc != CT_OK)
        return rc;

    size_t n = strlen(path) + 64;
    char *tmp = malloc(n);
    if (tmp == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp-%ld-%lu", path, (long)getpid(),
             (unsigned long)atomic_fetch_add(&tmp_seq, 1));

    /* A disk file: the name is taken as it is, never parsed as cfitsio's
     * extended syntax (brackets, compression suffixes, "mem://"). */
    fitsfile *f = NULL;
    int status = 0;
    errno = 0;
    if (fits_create_diskfile(&f, tmp, &status) != 0) {
        int e = errno;
        rc = fits_fail(err, status, "cannot create", tmp, e);
        free(tmp);
        return rc;
    }
    long naxes[4] = {d->nx, d->ny, 1, 1};
    fits_create_img(f, FLOAT_IMG, 4, naxes, &status);
    write_header(f, d, &status);
    /* cfitsio takes a non-const buffer; it copies before any byte swapping. */
    fits_write_img(f, TFLOAT, 1, (LONGLONG)d->nx * d->ny, (void *)data, &status);
    if (status != 0)
        rc = fits_fail(err, status, "cannot write", tmp, 0);
    int cstatus = 0;
    if (fits_close_file(f, &cstatus) != 0 && rc == CT_OK)
        rc = fits_fail(err, cstatus, "cannot close", tmp, 0);
    if (rc == CT_OK && ct_fsync_path(tmp, false) < 0)
        rc = ct_fail(err, CT_EIO, "fsync %s: %s", tmp, strerror(errno));
    if (rc == CT_OK && rename(tmp, path) < 0)
        rc = ct_fail(err, CT_EIO, "rename %s -> %s: %s", tmp, path, strerror(errno));
    if (rc == CT_OK)
        ct_fsync_parent(path);
    else
        (void)unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- reading ---- */

/* Copies src into dst[size], cut short when it does not fit. */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool read_dbl(fitsfile *f, const char *name, double *v, int *status)
{
    if (*status != 0)
        return false;
    if (fits_read_key_dbl(f, name, v, NULL, status) == KEY_NO_EXIST) {
        *status = 0;
        fits_clear_errmsg();
        return false;
    }
    return *status == 0;
}

static bool read_str(fitsfile *f, const char *name, char *out, size_t size, int *status)
{
    char v[FLEN_VALUE] = "";
    if (*status != 0)
        return false;
    if (fits_read_key_str(f, name, v, NULL, status) == KEY_NO_EXIST) {
        *status = 0;
        fits_clear_errmsg();
        return false;
    }
    if (*status != 0)
        return false;
    copy_str(out, size, v);
    return true;
}

static ct_code read_extras(fitsfile *f, ct_fits_image_info *info, int *status)
{
    int nkeys = 0;
    if (fits_get_hdrspace(f, &nkeys, NULL, status) != 0)
        return CT_EIO;
    int k = 0;
    for (int i = 1; i <= nkeys && k < CT_FITS_EXTRA_MAX; i++) {
        char name[FLEN_KEYWORD], value[FLEN_VALUE], comment[FLEN_COMMENT];
        if (fits_read_keyn(f, i, name, value, comment, status) != 0)
            return CT_EIO;
        char type = 0;
        int ts = 0;
        if (!valid_key_name(name) || is_reserved_key(name) || value[0] == '\0' ||
            fits_get_keytype(value, &type, &ts) != 0 || (type != 'I' && type != 'F')) {
            fits_clear_errmsg();
            continue;
        }
        for (char *p = value; *p; p++)
            if (*p == 'D')
                *p = 'E';
        copy_str(info->extra_names[k], sizeof info->extra_names[k], name);
        copy_str(info->extra_comments[k], sizeof info->extra_comments[k], comment);
        info->extra[k].name = info->extra_names[k];
        info->extra[k].value = strtod(value, NULL);
        info->extra[k].comment = comment[0] ? info->extra_comments[k] : NULL;
        k++;
    }
    info->desc.extra = k ? info->extra : NULL;
    info->desc.n_extra = k;
    return CT_OK;
}

ct_code ct_fits_read_image(const char *path, ct_fits_image_info *info, float **data_out,
                           ct_err *err)
{
    if (path == NULL || info == NULL)
        return ct_fail(err, CT_EINVAL, "FITS image: no path or no output");
    if (data_out)
        *data_out = NULL;
    memset(info, 0, sizeof *info);
    info->mjd_obs = NAN;
    if (access(path, F_OK) != 0)
        return ct_fail(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s: %s", path,
                       strerror(errno));

    fitsfile *f = NULL;
    int status = 0;
    if (fits_open_diskfile(&f, path, READONLY, &status) != 0)
        return fits_fail(err, status, "cannot open", path, 0);

    ct_code rc = CT_OK;
    ct_fits_image_desc *d = &info->desc;
    float *data = NULL;
    int bitpix = 0, naxis = 0;
    long naxes[4] = {0, 0, 0, 0};
    char ctype[4][FLEN_VALUE] = {"", "", "", ""};
    double cdelt1 = 0, v;

    fits_get_img_param(f, 4, &bitpix, &naxis, naxes, &status);
    if (status != 0) {
        rc = fits_fail(err, status, "cannot read image header of", path, 0);
        goto done;
    }
    if (naxis < 2 || naxis > 4 || naxes[0] < 1 || naxes[1] < 1 || naxes[0] > INT32_MAX ||
        naxes[1] > INT32_MAX || (naxis > 2 && naxes[2] != 1) || (naxis > 3 && naxes[3] != 1)) {
        rc = ct_fail(err, CT_EINVAL, "%s: not a single-plane image (NAXIS %d)", path, naxis);
        goto done;
    }
    for (int i = 0; i < naxis; i++) {
        char key[16];
        snprintf(key, sizeof key, "CTYPE%d", i + 1);
        read_str(f, key, ctype[i], sizeof ctype[i], &status);
    }
    if (status == 0 &&
        (strlen(ctype[0]) != 8 || strncmp(ctype[0], "RA---", 5) != 0 ||
         strncmp(ctype[1], "DEC--", 5) != 0 || strcmp(ctype[0] + 5, ctype[1] + 5) != 0 ||
         (strcmp(ctype[0] + 5, "SIN") != 0 && strcmp(ctype[0] + 5, "TAN") != 0))) {
        rc = ct_fail(err, CT_EINVAL, "%s: axes '%s', '%s' (want RA---SIN/TAN, DEC--SIN/TAN)", path,
                     ctype[0], ctype[1]);
        goto done;
    }
    d->nx = (int)naxes[0];
    d->ny = (int)naxes[1];
    copy_str(info->projection, sizeof info->projection, ctype[0] + 5);
    d->projection = info->projection;
    bool ok =
        read_dbl(f, "CRVAL1", &d->ra_deg, &status) & read_dbl(f, "CRVAL2", &d->dec_deg, &status) &
        read_dbl(f, "CRPIX1", &d->crpix1, &status) & read_dbl(f, "CRPIX2", &d->crpix2, &status) &
        read_dbl(f, "CDELT1", &cdelt1, &status) & read_dbl(f, "CDELT2", &d->cdelt_deg, &status);
    /* Square pixels, RA to the left; other writers round CDELT1 and CDELT2 apart in
     * the last digit (astropy keeps 20 characters, minus sign included). */
    if (status == 0 &&
        (!ok || !(d->cdelt_deg > 0) || fabs(cdelt1 + d->cdelt_deg) > 1e-12 * d->cdelt_deg)) {
        rc = ct_fail(err, CT_EINVAL,
                     "%s: celestial WCS incomplete or not square with RA to the left", path);
        goto done;
    }
    read_dbl(f, "PV2_1", &d->pv2_1, &status);
    read_dbl(f, "PV2_2", &d->pv2_2, &status);
    if (status == 0 &&
        (!isfinite(d->pv2_1) || !isfinite(d->pv2_2) || fabs(d->pv2_1) > 10 || fabs(d->pv2_2) > 10 ||
         ((d->pv2_1 != 0 || d->pv2_2 != 0) && strcmp(info->projection, "SIN")))) {
        rc = ct_fail(err, CT_EINVAL, "%s: PV2_1, PV2_2 (%g, %g): a SIN slant within 10", path,
                     d->pv2_1, d->pv2_2);
        goto done;
    }
    if (naxis > 2 && strcmp(ctype[2], "FREQ") == 0) {
        read_dbl(f, "CRVAL3", &d->freq_hz, &status);
        read_dbl(f, "CDELT3", &d->bandwidth_hz, &status);
    }
    read_dbl(f, "BMAJ", &d->bmaj_deg, &status);
    read_dbl(f, "BMIN", &d->bmin_deg, &status);
    read_dbl(f, "BPA", &d->bpa_deg, &status);
    if (read_str(f, "BUNIT", info->bunit, sizeof info->bunit, &status))
        d->bunit = info->bunit;
    if (read_str(f, "DATE-OBS", info->date_obs, sizeof info->date_obs, &status))
        d->date_obs = info->date_obs;
    if (read_str(f, "OBJECT", info->object, sizeof info->object, &status))
        d->object = info->object;
    if (read_str(f, "ORIGIN", info->origin, sizeof info->origin, &status))
        d->origin = info->origin;
    read_str(f, "TELESCOP", info->telescope, sizeof info->telescope, &status);
    if (read_dbl(f, "MJD-OBS", &v, &status))
        info->mjd_obs = v;
    if (status == 0)
        read_extras(f, info, &status);
    if (status != 0) {
        rc = fits_fail(err, status, "cannot read header of", path, 0);
        goto done;
    }

    if (data_out == NULL)
        goto done; /* the header is all the caller wants */
    size_t npix = (size_t)d->nx * (size_t)d->ny;
    /* The pixels the header declares must be in the file before room is made for them: a
     * damaged NAXIS would otherwise ask for gigabytes, and fail as out of memory -- retried
     * as transient -- instead of as the corrupt input it is (seen triaging fuzz_fits). */
    LONGLONG head_at = 0, data_at = 0, data_end = 0;
    struct stat st;
    const long long need = (long long)npix * (bitpix < 0 ? -bitpix : bitpix) / 8;
    if (fits_get_hduaddrll(f, &head_at, &data_at, &data_end, &status) == 0 &&
        stat(path, &st) == 0 && (long long)data_at + need > (long long)st.st_size) {
        /* (The pixels themselves, not the padding to 2880 bytes some writers leave off.) */
        rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                        "corrupt input: %s: its header declares %d x %d pixels (%lld bytes) but "
                        "the file holds %lld",
                        path, d->nx, d->ny, need, (long long)st.st_size);
        goto done;
    }
    if ((data = malloc(npix * sizeof *data)) == NULL) {
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %d x %d pixels", d->nx, d->ny);
        goto done;
    }
    /* No null value: NaN pixels come back as NaN. */
    int anynul = 0;
    if (fits_read_img(f, TFLOAT, 1, (LONGLONG)npix, NULL, data, &anynul, &status) != 0) {
        rc = fits_fail(err, status, "cannot read pixels of", path, 0);
        goto done;
    }

done:
    status = 0;
    fits_close_file(f, &status);
    if (rc != CT_OK) {
        free(data);
        memset(info, 0, sizeof *info);
        info->mjd_obs = NAN;
        return rc;
    }
    if (data_out)
        *data_out = data;
    return CT_OK;
}
