/* refcat.c -- see refcat.h. */
#define _GNU_SOURCE
#include "refcat.h"
#include "skyframe.h"

#include <ctype.h>
#include <errno.h>
#include <fitsio.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ZONE_DEG 0.2
#define NZONES   900 /* 180 / ZONE_DEG */

struct ct_refcat {
    ct_refsrc *src; /* sorted by zone, then RA */
    size_t n;
    size_t zone_start[NZONES + 1];
};

static int zone_of(double dec_deg)
{
    int z = (int)floor((dec_deg + 90.0) / ZONE_DEG);
    return z < 0 ? 0 : z >= NZONES ? NZONES - 1 : z;
}

static int by_zone_ra(const void *a, const void *b)
{
    const ct_refsrc *x = a, *y = b;
    int zx = zone_of(x->dec_deg), zy = zone_of(y->dec_deg);
    if (zx != zy)
        return zx - zy;
    return (x->ra_deg > y->ra_deg) - (x->ra_deg < y->ra_deg);
}

static void name_by_position(ct_refsrc *s)
{
    double ra_h = s->ra_deg / 15, d = fabs(s->dec_deg);
    int h = (int)ra_h, m = (int)((ra_h - h) * 60);
    double sec = ((ra_h - h) * 60 - m) * 60;
    int dd = (int)d, dm = (int)((d - dd) * 60);
    double ds = ((d - dd) * 60 - dm) * 60;
    snprintf(s->id, sizeof s->id, "J%02d%02d%05.2f%c%02d%02d%04.1f", h, m, sec,
             s->dec_deg < 0 ? '-' : '+', dd, dm, ds);
}

static ct_code build(ct_refcat *c, ct_err *err)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->src[i].id[0] == '\0')
            name_by_position(&c->src[i]);
    qsort(c->src, c->n, sizeof *c->src, by_zone_ra);
    size_t i = 0;
    for (int z = 0; z <= NZONES; z++) {
        while (i < c->n && zone_of(c->src[i].dec_deg) < z)
            i++;
        c->zone_start[z] = i;
    }
    c->zone_start[NZONES] = c->n;
    (void)err;
    return CT_OK;
}

static bool position_ok(const ct_refsrc *s)
{
    return isfinite(s->ra_deg) && isfinite(s->dec_deg) && s->ra_deg >= 0 && s->ra_deg < 360 &&
           s->dec_deg >= -90 && s->dec_deg <= 90;
}

ct_code ct_refcat_from_array(const ct_refsrc *src, size_t n, ct_refcat **out, ct_err *err)
{
    *out = NULL;
    ct_refcat *c = calloc(1, sizeof *c);
    if (c == NULL || (n > 0 && (c->src = malloc(n * sizeof *c->src)) == NULL)) {
        free(c);
        return ct_fail(err, CT_ENOMEM, "reference catalogue: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (!position_ok(&src[i])) {
            ct_refcat_destroy(c);
            return ct_fail(err, CT_EINVAL, "reference source %zu: position (%g, %g) out of range",
                           i, src[i].ra_deg, src[i].dec_deg);
        }
        c->src[i] = src[i];
        c->src[i].id[CT_REFCAT_ID_MAX - 1] = '\0';
    }
    c->n = n;
    build(c, err);
    *out = c;
    return CT_OK;
}

void ct_refcat_destroy(ct_refcat *c)
{
    if (c) {
        free(c->src);
        free(c);
    }
}

size_t ct_refcat_size(const ct_refcat *c)
{
    return c->n;
}

const ct_refsrc *ct_refcat_get(const ct_refcat *c, size_t i)
{
    return i < c->n ? &c->src[i] : NULL;
}

/* --- Reading ------------------------------------------------------------------------------ */

enum { COL_ID, COL_RA, COL_DEC, COL_FLUX, COL_FLUX_ERR, COL_MAJ, COL_MIN, NCOL };

/* A column name's role and the factor to Jy (fluxes); -1 for none. */
static int column_role(const char *name, double *scale)
{
    static const struct {
        const char *name;
        int role;
        double scale;
    } names[] = {
        {"id", COL_ID, 1},
        {"name", COL_ID, 1},
        {"nvss", COL_ID, 1},
        {"source_id", COL_ID, 1},
        {"ra_deg", COL_RA, 1},
        {"ra", COL_RA, 1},
        {"raj2000", COL_RA, 1},
        {"_raj2000", COL_RA, 1},
        {"dec_deg", COL_DEC, 1},
        {"dec", COL_DEC, 1},
        {"dej2000", COL_DEC, 1},
        {"_dej2000", COL_DEC, 1},
        {"flux_jy", COL_FLUX, 1},
        {"int_jy", COL_FLUX, 1},
        {"peak_jy", COL_FLUX, 1},
        {"flux", COL_FLUX, 1},
        {"s1.4", COL_FLUX, 1e-3},
        {"flux_mjy", COL_FLUX, 1e-3},
        {"e_flux_jy", COL_FLUX_ERR, 1},
        {"flux_err_jy", COL_FLUX_ERR, 1},
        {"e_s1.4", COL_FLUX_ERR, 1e-3},
        {"majaxis", COL_MAJ, 1},
        {"maj_arcsec", COL_MAJ, 1},
        {"minaxis", COL_MIN, 1},
        {"min_arcsec", COL_MIN, 1},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0) {
            *scale = names[i].scale;
            return names[i].role;
        }
    return -1;
}

/* Trims spaces, in place. */
static char *trim_space(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Trims spaces and one pair of double quotes (a field's), in place. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* Splits line at delim into at most max fields (pointers into line). */
static int split(char *line, char delim, char **field, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        char *q = strchr(p, delim);
        if (q)
            *q = '\0';
        field[n++] = trim(p);
        if (!q)
            break;
        p = q + 1;
    }
    return n;
}

/* Decimal degrees, or sexagesimal (hours for RA). NaN when it is neither. */
static double parse_angle(const char *s, bool hours)
{
    char *end;
    bool sexa = strchr(s, ' ') || strchr(s, ':');
    if (!sexa) {
        double v = strtod(s, &end);
        return end != s && *end == '\0' ? v : NAN;
    }
    bool neg = false;
    while (*s == ' ')
        s++;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    double part[3] = {0, 0, 0};
    int k = 0;
    const char *p = s;
    while (*p && k < 3) {
        while (*p == ' ' || *p == ':')
            p++;
        if (!*p)
            break;
        part[k] = strtod(p, &end);
        if (end == p || part[k] < 0)
            return NAN;
        p = end, k++;
    }
    while (*p == ' ')
        p++;
    /* Seconds of 60.0 are a rounding of 59.95 and more, as catalogues print them. */
    if (k == 0 || *p != '\0' || (k > 1 && part[1] >= 60) || (k > 2 && part[2] > 60))
        return NAN;
    double v = part[0] + part[1] / 60 + part[2] / 3600;
    v *= hours ? 15 : 1;
    return neg ? -v : v;
}

static ct_code read_text(const char *path, ct_refcat **out, ct_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return ct_fail(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s: %s", path,
                       strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int col[NCOL];
    double scale[NCOL] = {1, 1, 1, 1, 1, 1, 1};
    for (int i = 0; i < NCOL; i++)
        col[i] = -1;
    char delim = 0;
    ct_refcat *c = calloc(1, sizeof *c);
    size_t have = 0;
    ct_code rc = c ? CT_OK : ct_fail(err, CT_ENOMEM, "reference catalogue: out of memory");
    char *field[256];
    while (rc == CT_OK && (len = getline(&line, &cap, f)) != -1) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *t = trim_space(line); /* quotes are each field's (split) */
        if (*t == '\0' || *t == '#')
            continue;
        if (delim == 0) { /* the header */
            delim = strchr(t, ',') ? ',' : strchr(t, '\t') ? '\t' : strchr(t, ';') ? ';' : '|';
            int nf = split(t, delim, field, 256);
            for (int i = 0; i < nf; i++) {
                double s = 1;
                int role = column_role(field[i], &s);
                if (role >= 0 && col[role] < 0)
                    col[role] = i, scale[role] = s;
            }
            if (col[COL_RA] < 0 || col[COL_DEC] < 0 || col[COL_FLUX] < 0)
                rc = ct_fail(err, CT_EINVAL,
                             "%s: line %ld: the header names no %s column (see refcat.h for the "
                             "names read)",
                             path, lineno,
                             col[COL_RA] < 0    ? "RA"
                             : col[COL_DEC] < 0 ? "Dec"
                                                : "flux");
            continue;
        }
        int nf = split(t, delim, field, 256);
        ct_refsrc s;
        memset(&s, 0, sizeof s);
        for (int r = 0; r < NCOL && rc == CT_OK; r++) {
            if (col[r] < 0)
                continue;
            if (col[r] >= nf) {
                rc = ct_fail(err, CT_EINVAL, "%s: line %ld: %d fields, the header has more", path,
                             lineno, nf);
                break;
            }
            const char *v = field[col[r]];
            char *end;
            double x;
            switch (r) {
            case COL_ID: snprintf(s.id, sizeof s.id, "%s", v); break;
            case COL_RA: s.ra_deg = parse_angle(v, strchr(v, ' ') || strchr(v, ':')); break;
            case COL_DEC: s.dec_deg = parse_angle(v, false); break;
            default:
                x = *v ? strtod(v, &end) : 0;
                if (*v && *end != '\0')
                    rc = ct_fail(err, CT_EINVAL, "%s: line %ld: '%s' is not a number", path, lineno,
                                 v);
                x *= scale[r];
                if (r == COL_FLUX)
                    s.flux_jy = x;
                else if (r == COL_FLUX_ERR)
                    s.flux_err_jy = x;
                else if (r == COL_MAJ)
                    s.maj_arcsec = x;
                else
                    s.min_arcsec = x;
            }
        }
        if (rc != CT_OK)
            break;
        if (isfinite(s.ra_deg) && s.ra_deg >= 360 && s.ra_deg < 360 + 1e-9)
            s.ra_deg = 0;
        if (!position_ok(&s)) {
            rc = ct_fail(err, CT_EINVAL, "%s: line %ld: position (%s, %s) out of range", path,
                         lineno, field[col[COL_RA]], field[col[COL_DEC]]);
            break;
        }
        if (!(s.flux_jy > 0) || !isfinite(s.flux_jy)) {
            rc = ct_fail(err, CT_EINVAL, "%s: line %ld: flux %s is not positive", path, lineno,
                         field[col[COL_FLUX]]);
            break;
        }
        if (c->n == have) {
            have = have ? 2 * have : 4096;
            ct_refsrc *g = realloc(c->src, have * sizeof *g);
            if (g == NULL) {
                rc = ct_fail(err, CT_ENOMEM, "reference catalogue: out of memory");
                break;
            }
            c->src = g;
        }
        c->src[c->n++] = s;
    }
    if (rc == CT_OK && ferror(f))
        rc = ct_fail(err, CT_EIO, "%s: read error", path);
    if (rc == CT_OK && delim == 0)
        rc = ct_fail(err, CT_EINVAL, "%s: no header line", path);
    free(line);
    fclose(f);
    if (rc != CT_OK) {
        ct_refcat_destroy(c);
        return rc;
    }
    build(c, err);
    *out = c;
    return CT_OK;
}

/* A FITS binary or ASCII table (the first table HDU): the same column names as the text
 * form (TTYPEn); positions as numbers (degrees) or strings (sexagesimal, as VizieR writes
 * NVSS's RAJ2000/DEJ2000), other columns numbers. */
static ct_code read_fits(const char *path, ct_refcat **out, ct_err *err)
{
    *out = NULL;
    fitsfile *f = NULL;
    int status = 0;
    char name[FLEN_VALUE], msg[FLEN_STATUS];
    /* "name[...]" would be cfitsio's extended syntax: the file is taken as it is. */
    char disk[PATH_MAX + 16];
    snprintf(disk, sizeof disk, "file://%s", path);
    if (fits_open_table(&f, disk, READONLY, &status)) {
        fits_get_errstatus(status, msg);
        return ct_fail(err, access(path, F_OK) == 0 ? CT_EINVAL : CT_ENOTFOUND,
                       "%s: not a FITS table (cfitsio %d: %s)", path, status, msg);
    }
    long nrows = 0;
    int ncols = 0;
    fits_get_num_rows(f, &nrows, &status);
    fits_get_num_cols(f, &ncols, &status);
    int col[NCOL];
    double scale[NCOL] = {1, 1, 1, 1, 1, 1, 1};
    bool text[NCOL] = {false};
    for (int i = 0; i < NCOL; i++)
        col[i] = -1;
    for (int c = 1; c <= ncols && status == 0; c++) {
        char key[FLEN_KEYWORD];
        snprintf(key, sizeof key, "TTYPE%d", c);
        int st = 0;
        if (fits_read_key(f, TSTRING, key, name, NULL, &st))
            continue;
        double sc = 1;
        int role = column_role(trim(name), &sc);
        if (role >= 0 && col[role] < 0) {
            int type = 0;
            long repeat = 0, width = 0;
            fits_get_coltype(f, c, &type, &repeat, &width, &status);
            col[role] = c, scale[role] = sc, text[role] = type == TSTRING;
        }
    }
    ct_code rc = CT_OK;
    if (status == 0 && (col[COL_RA] < 0 || col[COL_DEC] < 0 || col[COL_FLUX] < 0))
        rc = ct_fail(err, CT_EINVAL, "%s: the table has no %s column (see refcat.h)", path,
                     col[COL_RA] < 0    ? "RA"
                     : col[COL_DEC] < 0 ? "Dec"
                                        : "flux");
    ct_refcat *c = calloc(1, sizeof *c);
    if (rc == CT_OK &&
        (c == NULL || (nrows > 0 && (c->src = calloc((size_t)nrows, sizeof *c->src)) == NULL)))
        rc = ct_fail(err, CT_ENOMEM, "%s: out of memory for %ld rows", path, nrows);
    double *v = rc == CT_OK ? malloc((size_t)(nrows > 0 ? nrows : 1) * sizeof *v) : NULL;
    char **strs = NULL;
    if (rc == CT_OK && v == NULL)
        rc = ct_fail(err, CT_ENOMEM, "%s: out of memory", path);
    for (int r = 0; r < NCOL && rc == CT_OK && status == 0 && nrows > 0; r++) {
        if (col[r] < 0)
            continue;
        if (text[r]) {
            int type = 0;
            long repeat = 0, width = 0;
            fits_get_coltype(f, col[r], &type, &repeat, &width, &status);
            /* An ASCII table's column says its width in width (repeat is 1). */
            long chars = repeat > width ? repeat : width;
            strs = calloc((size_t)nrows, sizeof *strs);
            for (long i = 0; strs && i < nrows; i++)
                if ((strs[i] = calloc((size_t)chars + 1, 1)) == NULL)
                    break;
            if (strs == NULL || strs[nrows - 1] == NULL) {
                rc = ct_fail(err, CT_ENOMEM, "%s: out of memory", path);
            } else {
                fits_read_col(f, TSTRING, col[r], 1, 1, nrows, NULL, strs, NULL, &status);
                for (long i = 0; i < nrows && status == 0 && rc == CT_OK; i++) {
                    ct_refsrc *src = &c->src[i];
                    char *t = trim(strs[i]);
                    if (r == COL_ID)
                        snprintf(src->id, sizeof src->id, "%s", t);
                    else if (r == COL_RA || r == COL_DEC)
                        *(r == COL_RA ? &src->ra_deg : &src->dec_deg) =
                            parse_angle(t, r == COL_RA && (strchr(t, ' ') || strchr(t, ':')));
                    else
                        rc = ct_fail(err, CT_EINVAL, "%s: column %d holds text, not numbers", path,
                                     col[r]);
                }
            }
            for (long i = 0; strs && i < nrows; i++)
                free(strs[i]);
            free(strs);
            strs = NULL;
            continue;
        }
        double nul = NAN;
        int anynul = 0;
        fits_read_col(f, TDOUBLE, col[r], 1, 1, nrows, &nul, v, &anynul, &status);
        for (long i = 0; i < nrows && status == 0; i++) {
            ct_refsrc *src = &c->src[i];
            double x = v[i] * (r == COL_RA || r == COL_DEC ? 1 : scale[r]);
            switch (r) {
            case COL_ID: snprintf(src->id, sizeof src->id, "%.0f", v[i]); break;
            case COL_RA: src->ra_deg = x; break;
            case COL_DEC: src->dec_deg = x; break;
            case COL_FLUX: src->flux_jy = x; break;
            case COL_FLUX_ERR: src->flux_err_jy = isfinite(x) ? x : 0; break;
            case COL_MAJ: src->maj_arcsec = isfinite(x) ? x : 0; break;
            default: src->min_arcsec = isfinite(x) ? x : 0;
            }
        }
    }
    if (rc == CT_OK && status != 0) {
        fits_get_errstatus(status, msg);
        rc = ct_fail(err, CT_EINVAL, "%s: reading the table: cfitsio %d: %s", path, status, msg);
    }
    for (long i = 0; rc == CT_OK && i < nrows; i++) {
        ct_refsrc *src = &c->src[i];
        if (isfinite(src->ra_deg) && src->ra_deg >= 360 && src->ra_deg < 360 + 1e-9)
            src->ra_deg = 0;
        if (!position_ok(src))
            rc = ct_fail(err, CT_EINVAL, "%s: row %ld: position (%g, %g) out of range", path, i + 1,
                         src->ra_deg, src->dec_deg);
        else if (!(src->flux_jy > 0) || !isfinite(src->flux_jy))
            rc = ct_fail(err, CT_EINVAL, "%s: row %ld: flux %g is not positive", path, i + 1,
                         src->flux_jy);
    }
    free(v);
    int st = 0;
    fits_close_file(f, &st);
    if (rc != CT_OK || status != 0) {
        ct_refcat_destroy(c);
        return rc != CT_OK ? rc : ct_fail(err, CT_EINVAL, "%s: not a readable table", path);
    }
    c->n = (size_t)nrows;
    build(c, err);
    *out = c;
    return CT_OK;
}

ct_code ct_refcat_open(const char *path, ct_refcat **out, ct_err *err)
{
    /* FITS by its first bytes, whatever the name: "SIMPLE  =". */
    char magic[10] = {0};
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ct_fail(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s: %s", path,
                       strerror(errno));
    size_t got = fread(magic, 1, 9, f);
    fclose(f);
    if (got == 9 && strncmp(magic, "SIMPLE  =", 9) == 0)
        return read_fits(path, out, err);
    return read_text(path, out, err);
}

/* --- Cone search -------------------------------------------------------------------------- */

/* The first source of zone z at RA >= ra. */
static size_t lower_ra(const ct_refcat *c, int z, double ra)
{
    size_t lo = c->zone_start[z], hi = c->zone_start[z + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->src[mid].ra_deg < ra)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

typedef struct hits {
    size_t *idx, n, cap;
} hits;

static bool take(hits *h, size_t i)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        size_t *g = realloc(h->idx, cap * sizeof *g);
        if (g == NULL)
            return false;
        h->idx = g, h->cap = cap;
    }
    h->idx[h->n++] = i;
    return true;
}

ct_code ct_refcat_cone(const ct_refcat *c, double ra_deg, double dec_deg, double radius_deg,
                       size_t **idx, size_t *n, ct_err *err)
{
    *idx = NULL, *n = 0;
    if (!isfinite(ra_deg) || !(dec_deg >= -90 && dec_deg <= 90) || !(radius_deg >= 0) ||
        !(radius_deg < 90))
        return ct_fail(err, CT_EINVAL, "cone (%g, %g) radius %g deg: out of range", ra_deg, dec_deg,
                       radius_deg);
    ra_deg = fmod(fmod(ra_deg, 360) + 360, 360);
    double centre[3], cos_r = cos(radius_deg * M_PI / 180);
    ct_radec_to_dir(ra_deg, dec_deg, centre);
    hits h = {0};
    double lo = dec_deg - radius_deg, hi = dec_deg + radius_deg;
    for (int z = zone_of(fmax(lo, -90)); z <= zone_of(fmin(hi, 90)); z++) {
        /* The RA half-width at the zone's edge farthest from the equator. */
        double zlo = -90 + z * ZONE_DEG, zhi = zlo + ZONE_DEG;
        double far = fmax(fabs(fmax(zlo, lo)), fabs(fmin(zhi, hi)));
        double cd = cos(fmin(far, 90) * M_PI / 180);
        double half =
            cd > 1e-9 ? asin(fmin(1, sin(radius_deg * M_PI / 180) / cd)) * 180 / M_PI : 180;
        if (fabs(far) + radius_deg >= 89.999 || half >= 180 || cd <= sin(radius_deg * M_PI / 180))
            half = 180;
        double ranges[3][2];
        int nr = 0;
        if (half >= 180) {
            ranges[nr][0] = 0, ranges[nr][1] = 360, nr++;
        } else {
            double a = ra_deg - half, b = ra_deg + half;
            if (a < 0) {
                ranges[nr][0] = a + 360, ranges[nr][1] = 360, nr++;
                a = 0;
            }
            if (b >= 360) {
                ranges[nr][0] = 0, ranges[nr][1] = b - 360, nr++;
                b = 360;
            }
            ranges[nr][0] = a, ranges[nr][1] = b, nr++;
        }
        for (int r = 0; r < nr; r++)
            for (size_t i = lower_ra(c, z, ranges[r][0]);
                 i < c->zone_start[z + 1] && c->src[i].ra_deg <= ranges[r][1]; i++) {
                double s[3];
                ct_radec_to_dir(c->src[i].ra_deg, c->src[i].dec_deg, s);
                if (ct_dot3(s, centre) >= cos_r && !take(&h, i)) {
                    free(h.idx);
                    return ct_fail(err, CT_ENOMEM, "cone search: out of memory");
                }
            }
    }
    *idx = h.idx, *n = h.n;
    return CT_OK;
}
