/* skyframe.c -- see skyframe.h. */
#define _GNU_SOURCE
#include "skyframe.h"
#include "gridkernel.h"

#include <math.h>
#include <string.h>

#define DEG (M_PI / 180.0)

void ct_skyframe_make(ct_skyframe *f, double ra_deg, double dec_deg)
{
    double a = ra_deg * DEG, d = dec_deg * DEG;
    f->p[0] = cos(d) * cos(a), f->p[1] = cos(d) * sin(a), f->p[2] = sin(d);
    f->e[0] = -sin(a), f->e[1] = cos(a), f->e[2] = 0;
    f->n[0] = -sin(d) * cos(a), f->n[1] = -sin(d) * sin(a), f->n[2] = cos(d);
}

double ct_dot3(const double *a, const double *b)
{
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

void ct_radec_to_dir(double ra_deg, double dec_deg, double s[3])
{
    double a = ra_deg * DEG, d = dec_deg * DEG;
    s[0] = cos(d) * cos(a), s[1] = cos(d) * sin(a), s[2] = sin(d);
}

void ct_dir_to_radec(const double s[3], double *ra_deg, double *dec_deg)
{
    double ra = atan2(s[1], s[0]) / DEG;
    if (ra < 0)
        ra += 360.0;
    if (ra >= 360.0) /* -tiny + 360 rounds to 360 */
        ra = 0;
    *ra_deg = ra;
    *dec_deg = atan2(s[2], hypot(s[0], s[1])) / DEG;
}

double ct_dir_sep_deg(const double a[3], const double b[3])
{
    /* atan2(|a x b|, a.b): acos loses half its digits near 0. */
    double c[3] = {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
    return atan2(sqrt(ct_dot3(c, c)), ct_dot3(a, b)) / DEG;
}

ct_code ct_imgwcs_make(ct_imgwcs *w, const ct_fits_image_desc *d, const char *projection,
                       ct_err *err)
{
    memset(w, 0, sizeof *w);
    if (projection != NULL && strcmp(projection, "TAN") != 0 && strcmp(projection, "SIN") != 0)
        return ct_fail(err, CT_EINVAL, "projection %s: only SIN and TAN are supported", projection);
    if (!(d->cdelt_deg > 0) || !isfinite(d->cdelt_deg))
        return ct_fail(err, CT_EINVAL, "pixel size %g deg: must be positive", d->cdelt_deg);
    w->tan = projection != NULL && strcmp(projection, "TAN") == 0;
    w->cell_rad = d->cdelt_deg * DEG;
    /* fitsimage.h's convention: a CRPIX of 0 is the default, nx / 2 + 1. */
    w->crpix1 = d->crpix1 != 0 ? d->crpix1 : d->nx / 2 + 1;
    w->crpix2 = d->crpix2 != 0 ? d->crpix2 : d->ny / 2 + 1;
    if (!w->tan)
        w->xi = d->pv2_1, w->eta = d->pv2_2;
    ct_skyframe_make(&w->f, d->ra_deg, d->dec_deg);
    return CT_OK;
}

bool ct_imgwcs_pixel_to_dir(const ct_imgwcs *w, double fx, double fy, double s[3])
{
    double l = (w->crpix1 - 1 - fx) * w->cell_rad, m = (fy - w->crpix2 + 1) * w->cell_rad;
    double c;
    if (w->tan) {
        c = 1 / sqrt(1 + l * l + m * m);
        l *= c, m *= c;
    } else {
        if ((w->xi != 0 || w->eta != 0) && !ct_slant_to_lm(l, m, w->xi, w->eta, &l, &m))
            return false;
        double r2 = l * l + m * m;
        if (r2 >= 1)
            return false;
        c = sqrt(1 - r2);
    }
    for (int i = 0; i < 3; i++)
        s[i] = c * w->f.p[i] + l * w->f.e[i] + m * w->f.n[i];
    return true;
}

bool ct_imgwcs_dir_to_pixel(const ct_imgwcs *w, const double s[3], double *fx, double *fy)
{
    double c = ct_dot3(s, w->f.p), l = ct_dot3(s, w->f.e), m = ct_dot3(s, w->f.n);
    double x, y;
    if (w->tan) {
        if (!(c > 0))
            return false;
        x = l / c, y = m / c;
    } else {
        if (c < 0)
            return false;
        /* 1 - n as (l^2 + m^2) / (1 + n): no cancellation near the centre. */
        double one_minus_n = (l * l + m * m) / (1 + c);
        x = l + w->xi * one_minus_n, y = m + w->eta * one_minus_n;
    }
    *fx = w->crpix1 - 1 - x / w->cell_rad;
    *fy = w->crpix2 - 1 + y / w->cell_rad;
    return true;
}

void ct_imgwcs_field(const ct_imgwcs *w, int nx, int ny, double *ra_deg, double *dec_deg,
                     double *radius_deg)
{
    double c[3], s[3], r = 0;
    if (!ct_imgwcs_pixel_to_dir(w, 0.5 * (nx - 1), 0.5 * (ny - 1), c))
        for (int i = 0; i < 3; i++)
            c[i] = w->f.p[i];
    ct_dir_to_radec(c, ra_deg, dec_deg);
    for (int k = 0; k < 4; k++) {
        double fx = k & 1 ? nx - 0.5 : -0.5, fy = k & 2 ? ny - 0.5 : -0.5;
        r = ct_imgwcs_pixel_to_dir(w, fx, fy, s) ? fmax(r, ct_dir_sep_deg(c, s)) : 89;
    }
    *radius_deg = fmin(89, r + w->cell_rad / DEG);
}
