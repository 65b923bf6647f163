/* caltable.c -- the caltable file (calibration.h): one HDF5 file, its layout in
 * docs/calibration.md, written under a temporary name and renamed. */
#define _GNU_SOURCE
#include "calibration.h"

#include "fsutil.h"
#include "uvh5.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FORMAT_NAME    "contimg caltable"
#define FORMAT_VERSION 1

static herr_t quiet(hid_t stack, void *data)
{
    (void)stack;
    (void)data;
    return 0;
}

static int put(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims,
               const void *buf)
{
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t d = s < 0 ? -1 : H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (d >= 0)
        H5Dclose(d);
    if (s >= 0)
        H5Sclose(s);
    return rc < 0 ? -1 : 0;
}

static int attr_double(hid_t f, const char *name, double v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_NATIVE_DOUBLE, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(s);
    return rc < 0 ? -1 : 0;
}

static int attr_string(hid_t f, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, t, v);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

ct_code ct_caltable_write(const char *path, const ct_caltable *t, ct_err *err)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return ct_fail(err, CT_EINVAL, "caltable path too long: %s", path);
    H5Eset_auto2(H5E_DEFAULT, quiet, NULL);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return ct_fail(err, CT_EIO, "cannot create %s", tmp);
    const hsize_t nc = (hsize_t)t->nchan, na = (hsize_t)t->nant, nt = (hsize_t)t->ntime,
                  nfe = CT_CAL_NFEEDS;
    const hsize_t d_freq[1] = {nc}, d_bp[4] = {nc, na, nfe, 2}, d_bpf[3] = {nc, na, nfe},
                  d_time[1] = {nt}, d_g[4] = {nt, na, nfe, 2}, d_gf[3] = {nt, na, nfe},
                  d_delay[2] = {na, nfe};
    int bad = 0;
    bad |= put(f, "freq_hz", H5T_NATIVE_DOUBLE, 1, d_freq, t->freq_hz);
    bad |= put(f, "bandpass", H5T_NATIVE_DOUBLE, 4, d_bp, t->bandpass);
    bad |= put(f, "bandpass_flag", H5T_NATIVE_UCHAR, 3, d_bpf, t->bp_flag);
    bad |= put(f, "bandpass_snr", H5T_NATIVE_DOUBLE, 3, d_bpf, t->bp_snr);
    bad |= put(f, "gain_time_jd", H5T_NATIVE_DOUBLE, 1, d_time, t->time_jd);
    bad |= put(f, "gain", H5T_NATIVE_DOUBLE, 4, d_g, t->gain);
    bad |= put(f, "gain_flag", H5T_NATIVE_UCHAR, 3, d_gf, t->g_flag);
    bad |= put(f, "delay_ns", H5T_NATIVE_DOUBLE, 2, d_delay, t->delay_ns);
    bad |= attr_string(f, "format", FORMAT_NAME);
    bad |= attr_double(f, "format_version", FORMAT_VERSION);
    bad |= attr_string(f, "feeds", "X,Y");
    bad |= attr_string(f, "axes",
                       "bandpass[channel][antenna number][feed][re,im]; "
                       "gain[interval][antenna number][feed][re,im]; "
                       "J = bandpass * gain; V_ij = J_i V J_j^*");
    bad |= attr_string(f, "source", t->source);
    bad |= attr_double(f, "refant", t->refant);
    bad |= attr_double(f, "solint_sec", t->solint_sec);
    bad |= attr_double(f, "t_start_jd", t->t_start_jd);
    bad |= attr_double(f, "t_end_jd", t->t_end_jd);
    bad |= attr_double(f, "rms_jy", t->rms_jy);
    bad |= attr_double(f, "iterations", t->iterations);
    bad |= attr_double(f, "rejected_baselines", (double)t->rejected);
    bad |= attr_double(f, "gain_rejected_baselines", (double)t->g_rejected);
    bad |= H5Fclose(f) < 0;
    if (!bad)
        bad = ct_fsync_path(tmp, false) != 0;
    if (bad || rename(tmp, path) != 0) {
        const int e = errno;
        unlink(tmp);
        return ct_fail(err, CT_EIO, "cannot write the caltable %s%s%s", path, bad ? "" : ": ",
                       bad ? "" : strerror(e));
    }
    ct_fsync_parent(path);
    return CT_OK;
}

/* Reads dataset name, whose shape must be dims[rank], into buf. */
static int get(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims, void *buf)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0)
        return -1;
    hid_t s = H5Dget_space(d);
    hsize_t got[4] = {0, 0, 0, 0};
    int ok = s >= 0 && H5Sget_simple_extent_ndims(s) == rank;
    if (ok)
        H5Sget_simple_extent_dims(s, got, NULL);
    for (int i = 0; ok && i < rank; i++)
        ok = got[i] == dims[i];
    ok = ok && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
    if (s >= 0)
        H5Sclose(s);
    H5Dclose(d);
    return ok ? 0 : -1;
}

static int get_dims(hid_t f, const char *name, int rank, hsize_t *dims)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0)
        return -1;
    hid_t s = H5Dget_space(d);
    int ok = s >= 0 && H5Sget_simple_extent_ndims(s) == rank;
    if (ok)
        H5Sget_simple_extent_dims(s, dims, NULL);
    if (s >= 0)
        H5Sclose(s);
    H5Dclose(d);
    return ok ? 0 : -1;
}

static int read_attr_double(hid_t f, const char *name, double *v)
{
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    herr_t rc = H5Aread(a, H5T_NATIVE_DOUBLE, v);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

static int read_attr_string(hid_t f, const char *name, char *out, size_t size)
{
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    hid_t t = H5Aget_type(a);
    int ok = t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t);
    size_t n = ok ? H5Tget_size(t) : 0;
    char *buf = ok ? calloc(n + 1, 1) : NULL;
    ok = buf && H5Aread(a, t, buf) >= 0;
    if (ok)
        snprintf(out, size, "%s", buf);
    free(buf);
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    return ok ? 0 : -1;
}

ct_code ct_caltable_read(const char *path, ct_caltable *t, ct_err *err)
{
    memset(t, 0, sizeof *t);
    if (access(path, F_OK) != 0)
        return ct_fail(err, CT_ENOTFOUND, "no caltable at %s", path);
    H5Eset_auto2(H5E_DEFAULT, quiet, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                          "corrupt input: %s: not an HDF5 file", path);
    char format[64] = "";
    double version = 0, v;
    hsize_t dbp[4], dg[4];
    int bad = read_attr_string(f, "format", format, sizeof format) ||
              strcmp(format, FORMAT_NAME) != 0 || read_attr_double(f, "format_version", &version) ||
              version != FORMAT_VERSION || get_dims(f, "bandpass", 4, dbp) ||
              get_dims(f, "gain", 4, dg) || dbp[2] != CT_CAL_NFEEDS || dbp[3] != 2 ||
              dg[1] != dbp[1] || dg[2] != dbp[2] || dg[3] != 2 || dbp[0] < 1 || dbp[1] < 1 ||
              dg[0] < 1 || dbp[0] > 1000000 || dbp[1] > 100000 || dg[0] > 10000000;
    if (!bad) {
        if (ct_caltable_alloc(t, (int)dbp[0], (int)dbp[1], (int)dg[0], err) != CT_OK) {
            H5Fclose(f);
            return CT_ENOMEM;
        }
        const hsize_t d_freq[1] = {dbp[0]}, d_bpf[3] = {dbp[0], dbp[1], dbp[2]},
                      d_time[1] = {dg[0]}, d_gf[3] = {dg[0], dg[1], dg[2]},
                      d_delay[2] = {dbp[1], dbp[2]};
        bad = get(f, "freq_hz", H5T_NATIVE_DOUBLE, 1, d_freq, t->freq_hz) ||
              get(f, "bandpass", H5T_NATIVE_DOUBLE, 4, dbp, t->bandpass) ||
              get(f, "bandpass_flag", H5T_NATIVE_UCHAR, 3, d_bpf, t->bp_flag) ||
              get(f, "bandpass_snr", H5T_NATIVE_DOUBLE, 3, d_bpf, t->bp_snr) ||
              get(f, "gain_time_jd", H5T_NATIVE_DOUBLE, 1, d_time, t->time_jd) ||
              get(f, "gain", H5T_NATIVE_DOUBLE, 4, dg, t->gain) ||
              get(f, "gain_flag", H5T_NATIVE_UCHAR, 3, d_gf, t->g_flag) ||
              get(f, "delay_ns", H5T_NATIVE_DOUBLE, 2, d_delay, t->delay_ns) ||
              read_attr_string(f, "source", t->source, sizeof t->source) ||
              read_attr_double(f, "refant", &v);
        t->refant = bad ? -1 : (int)v;
        bad = bad || read_attr_double(f, "solint_sec", &t->solint_sec) ||
              read_attr_double(f, "t_start_jd", &t->t_start_jd) ||
              read_attr_double(f, "t_end_jd", &t->t_end_jd) ||
              read_attr_double(f, "rms_jy", &t->rms_jy) || read_attr_double(f, "iterations", &v);
        t->iterations = bad ? 0 : (int)v;
        /* Outlier counts: absent from tables written before they were kept. */
        t->rejected = !bad && read_attr_double(f, "rejected_baselines", &v) == 0 ? (long)v : 0;
        t->g_rejected =
            !bad && read_attr_double(f, "gain_rejected_baselines", &v) == 0 ? (long)v : 0;
    }
    H5Fclose(f);
    if (bad) {
        ct_caltable_free(t);
        return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                          "corrupt input: %s is not a contimg caltable (format %d)", path,
                          FORMAT_VERSION);
    }
    return CT_OK;
}

void ct_cal_time_iso(double jd, char *iso, size_t size)
{
    const double unix_sec = (jd - 2440587.5) * 86400.0, whole = floor(unix_sec);
    const time_t w = (time_t)whole;
    struct tm tm;
    gmtime_r(&w, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    int ms = (int)floor((unix_sec - whole) * 1000);
    snprintf(iso, size, "%s.%03dZ", base, ms > 999 ? 999 : ms);
}

json_t *ct_caltable_registry_row(const ct_caltable *t, const char *path, double valid_hours)
{
    char group[32], t0[48], t1[48], until[48];
    /* The group: the observation's first second, as the subband files name it. */
    const time_t first = (time_t)floor((t->t_start_jd - 2440587.5) * 86400.0 + 0.5);
    struct tm tm;
    gmtime_r(&first, &tm);
    strftime(group, sizeof group, "%Y-%m-%dT%H:%M:%S", &tm);
    ct_cal_time_iso(t->t_start_jd, t0, sizeof t0);
    ct_cal_time_iso(t->t_end_jd, t1, sizeof t1);
    ct_cal_time_iso(t->t_end_jd + valid_hours / 24.0, until, sizeof until);
    const size_t nbp = (size_t)t->nchan * (size_t)t->nant * CT_CAL_NFEEDS;
    size_t flagged = 0, ants = 0;
    for (size_t k = 0; k < nbp; k++)
        flagged += t->bp_flag[k];
    for (int a = 0; a < t->nant; a++) {
        int any = 0;
        for (int c = 0; c < t->nchan && !any; c++)
            any = !t->bp_flag[((size_t)c * t->nant + a) * CT_CAL_NFEEDS];
        ants += (size_t)any;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:I, s:f, s:f, s:i, s:f, s:I}}",
                     "path", path, "group_id", group, "kind",
                     t->ntime > 1 ? "bandpass+gain" : "bandpass", "source", t->source, "obs_start",
                     t0, "obs_end", t1, "valid_until", until, "qa", "antennas", (json_int_t)ants,
                     "flagged_fraction", nbp ? (double)flagged / (double)nbp : 1.0, "rms_jy",
                     t->rms_jy, "iterations", t->iterations, "solint_sec", t->solint_sec,
                     "rejected_baselines", (json_int_t)(t->rejected + t->g_rejected));
}

ct_code ct_cal_obs_middle_iso(const char *vispath, char *iso, size_t size, ct_err *err)
{
    ct_uvh5_file *f = NULL;
    ct_code rc = ct_uvh5_open(vispath, &f, err);
    if (rc != CT_OK)
        return rc;
    const ct_uvh5_header *h = ct_uvh5_header_get(f);
    double lo = INFINITY, hi = -INFINITY;
    for (int b = 0; b < h->Nblts; b++) {
        lo = fmin(lo, h->time_array[b]);
        hi = fmax(hi, h->time_array[b]);
    }
    ct_uvh5_close(f, NULL);
    ct_cal_time_iso(0.5 * (lo + hi), iso, size);
    return CT_OK;
}
